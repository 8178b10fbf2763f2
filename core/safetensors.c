/* safetensors.c - the safetensors file format (see safetensors.h).
 *
 * What this is: a writer that replaces a file atomically (temporary file
 * in the same directory, fsync, rename, fsync of the directory), and a
 * reader that loads a whole file and validates it strictly before any
 * tensor is handed out: header length against the file and the 100 MB
 * limit, the JSON itself (parsed by jansson, duplicate keys rejected,
 * errors reported as byte offsets in the file), dtypes, shapes, byte
 * counts, and that the tensors tile the data exactly, with no overlap,
 * hole, missing or trailing byte.
 * What this is not: a JSON parser (jansson reads and writes the header),
 * nor a converter: tensor bytes go in and out unchanged, little-endian,
 * on a little-endian host.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "safetensors.h"

typedef unsigned long long ull;   /* for printing uint64_t */

#define NOMEM(path, err) mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", path)

/* ---- dtypes ------------------------------------------------------------- */

static const char *const dtype_names[MLTK_ST_N_DTYPES] = {
    "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
    "I32", "U32", "F32", "F64", "I64", "U64"
};
static const unsigned char dtype_sizes[MLTK_ST_N_DTYPES] = {
    1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8
};

const char *mltk_st_dtype_name(mltk_st_dtype dt)
{
    return (unsigned)dt < MLTK_ST_N_DTYPES ? dtype_names[dt] : "?";
}

size_t mltk_st_dtype_size(mltk_st_dtype dt)
{
    return (unsigned)dt < MLTK_ST_N_DTYPES ? dtype_sizes[dt] : 0;
}

int mltk_st_dtype_parse(const char *name)
{
    for (int i = 0; name && i < MLTK_ST_N_DTYPES; i++)
        if (strcmp(name, dtype_names[i]) == 0)
            return i;
    return -1;
}

/* numel(shape) * size into *bytes; -1 when that passes 64 bits. */
static int shape_bytes(const int64_t *shape, int ndim, size_t size, uint64_t *bytes)
{
    uint64_t b = size;
    for (int i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (d && b > UINT64_MAX / d)
            return -1;
        b *= d;
    }
    *bytes = b;
    return 0;
}

/* ---- strings: UTF-8, duplicates ---------------------------------------- */

/* jansson takes only well-formed UTF-8 (no overlong forms, no surrogates,
 * nothing above U+10FFFF) as a string. */
static int utf8_valid(const char *s)
{
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

typedef struct named { const char *s; int i; } named;   /* a string, its index */

static int named_cmp(const void *a, const void *b)
{
    const named *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* Sort v[0..n) by string, then index; the position of the second of the
 * first duplicate pair in v, or -1. */
static int sort_find_dup(named *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, named_cmp);
    for (int k = 1; k < n; k++)
        if (strcmp(v[k - 1].s, v[k].s) == 0)
            return k;
    return -1;
}

/* ---- writing ------------------------------------------------------------ */

#define INVALID(...) mltk_errf(err, MLTK_ERR_INVALID, __VA_ARGS__)

static int check_entries(const mltk_st_entry *t, int n, const char *const *kv,
                         int n_meta, const char *path, char **err)
{
    if (n < 0 || n_meta < 0 || (n && !t) || (n_meta && !kv))
        return INVALID("%s: invalid tensor or metadata list", path);
    for (int i = 0; i < n; i++) {
        const char *name = t[i].name;
        uint64_t bytes = 0;
        if (!name || !utf8_valid(name) || strcmp(name, "__metadata__") == 0)
            return INVALID("%s: tensor %d: name %s", path, i,
                           name ? "is not valid UTF-8 or is '__metadata__'" : "is NULL");
        if ((unsigned)t[i].dtype >= MLTK_ST_N_DTYPES)
            return INVALID("%s: tensor '%s': invalid dtype %d", path, name,
                           (int)t[i].dtype);
        if (t[i].ndim < 0 || t[i].ndim > MLTK_ST_MAX_DIMS)
            return INVALID("%s: tensor '%s': ndim %d is not in 0..%d", path, name,
                           t[i].ndim, MLTK_ST_MAX_DIMS);
        for (int d = 0; d < t[i].ndim; d++)
            if (t[i].shape[d] < 0)
                return INVALID("%s: tensor '%s': negative dimension %d", path, name, d);
        if (shape_bytes(t[i].shape, t[i].ndim, mltk_st_dtype_size(t[i].dtype), &bytes)
            || bytes != (uint64_t)t[i].nbytes || (bytes && !t[i].data))
            return INVALID("%s: tensor '%s': %zu bytes given at %p, but its shape and "
                           "dtype %s need %llu", path, name, t[i].nbytes, t[i].data,
                           mltk_st_dtype_name(t[i].dtype), (ull)bytes);
    }
    for (int i = 0; i < 2 * n_meta; i++)
        if (!kv[i] || !utf8_valid(kv[i]))
            return INVALID("%s: metadata %s %d is %s", path, i % 2 ? "value" : "key",
                           i / 2, kv[i] ? "not valid UTF-8" : "NULL");
    int rc = MLTK_OK, k;
    named *v = malloc(((size_t)(n > n_meta ? n : n_meta) + 1) * sizeof *v);
    if (!v)
        return NOMEM(path, err);
    for (int i = 0; i < n; i++)
        v[i] = (named){ t[i].name, i };
    if ((k = sort_find_dup(v, n)) >= 0)
        rc = INVALID("%s: tensor '%s': name given twice", path, v[k].s);
    for (int i = 0; i < n_meta; i++)
        v[i] = (named){ kv[2 * i], i };
    if (!rc && (k = sort_find_dup(v, n_meta)) >= 0)
        rc = INVALID("%s: metadata key '%s' given twice", path, v[k].s);
    free(v);
    return rc;
}

/* The 8-byte length and the JSON header, padded with spaces to a multiple
 * of 8 bytes, in one malloc()ed buffer of *len bytes; NULL when out of
 * memory.  Metadata first, then the tensors in the caller's order. */
static char *build_header(size_t *len, const mltk_st_entry *t, int n,
                          const char *const *kv, int n_meta)
{
    json_t *top = json_object(), *meta = n_meta ? json_object() : NULL;
    int bad = !top || (n_meta && json_object_set_new(top, "__metadata__", meta));
    for (int i = 0; !bad && i < n_meta; i++)
        bad = json_object_set_new(meta, kv[2 * i], json_string(kv[2 * i + 1]));
    json_int_t off = 0;
    for (int i = 0; !bad && i < n; i++) {
        json_t *shape = json_array();
        for (int d = 0; shape && d < t[i].ndim; d++)
            if (json_array_append_new(shape, json_integer(t[i].shape[d]))) {
                json_decref(shape);
                shape = NULL;
            }
        json_int_t end = off + (json_int_t)t[i].nbytes;
        bad = !shape || json_object_set_new(top, t[i].name,
                                            json_pack("{s:s, s:o, s:[I, I]}",
                                                      "dtype", mltk_st_dtype_name(t[i].dtype),
                                                      "shape", shape,
                                                      "data_offsets", off, end));
        off = end;
    }
    char *text = bad ? NULL : json_dumps(top, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(top);
    size_t tlen = text ? strlen(text) : 0, hlen = (tlen + 7) / 8 * 8;
    char *b = text ? malloc(8 + hlen) : NULL;
    if (b) {
        for (int i = 0; i < 8; i++)
            b[i] = (char)((uint64_t)hlen >> (8 * i));
        memcpy(b + 8, text, tlen);
        memset(b + 8 + tlen, ' ', hlen - tlen);
        *len = 8 + hlen;
    }
    free(text);
    return b;
}

static int write_all(int fd, const void *p, size_t n)
{
    for (const char *c = p; n;) {
        ssize_t w = write(fd, c, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int mltk_st_write(const char *path, const mltk_st_entry *t, int n,
                  const char *const *meta_kv, int n_meta, char **err)
{
    if (!path || !*path)
        return INVALID("safetensors: no file name");
    int rc = check_entries(t, n, meta_kv, n_meta, path, err);
    if (rc)
        return rc;
    size_t hdr_len = 0;
    char *hdr = build_header(&hdr_len, t, n, meta_kv, n_meta);
    char *tmp = mltk_strfmt("%s.tmp.%ld", path, (long)getpid());
    if (!hdr || !tmp) {
        free(hdr);
        free(tmp);
        return NOMEM(path, err);
    }

    const char *what = NULL;
    int e = 0, fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno == EEXIST && unlink(tmp) == 0)   /* a killed writer's, our pid */
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0)
        what = "cannot create temporary file";
    for (int i = -1; !what && i < n; i++)         /* -1: the header */
        if (write_all(fd, i < 0 ? hdr : t[i].data, i < 0 ? hdr_len : t[i].nbytes))
            what = "cannot write temporary file";
    if (!what && fsync(fd))
        what = "cannot sync temporary file";
    e = errno;
    if (fd >= 0 && close(fd) && !what) {
        what = "cannot close temporary file";
        e = errno;
    }
    if (!what && rename(tmp, path)) {
        what = "cannot rename temporary file";
        e = errno;
    }
    if (what) {
        if (fd >= 0)
            unlink(tmp);
        rc = mltk_errf(err, MLTK_ERR_IO, "%s: %s %s: %s", path, what, tmp, strerror(e));
    } else {
        /* make the rename last: fsync the directory, where that means anything */
        const char *slash = strrchr(path, '/');
        int dlen = !slash ? 0 : slash == path ? 1 : (int)(slash - path);
        char *dir = slash ? mltk_strfmt("%.*s", dlen, path) : mltk_strdup(".");
        fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        if (fd < 0 || (fsync(fd) && errno != EINVAL && errno != ENOTSUP))
            rc = mltk_errf(err, MLTK_ERR_IO, "%s: written, but its directory could "
                           "not be synced: %s", path, dir ? strerror(errno) : "no memory");
        if (fd >= 0)
            close(fd);
        free(dir);
    }
    free(tmp);
    free(hdr);
    return rc;
}

/* ---- reading and validating --------------------------------------------- */

struct mltk_st_file {
    unsigned char  *bytes;    /* the whole file */
    size_t          size;
    mltk_st_tensor *t;
    int             n;
    int            *by_name;  /* tensor indices sorted by name */
    char          **meta;     /* key, value, key, value, ... */
    int             n_meta;
};

typedef struct span { uint64_t b, e; int i; } span;   /* tensor i's data_offsets */

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->b != y->b)
        return x->b < y->b ? -1 : 1;
    return (x->e > y->e) - (x->e < y->e);
}

#define BAD(...) mltk_errf(err, MLTK_ERR_DATA, __VA_ARGS__)

/* "an object", "an integer", ... for messages */
static const char *kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:  return "an object";
    case JSON_ARRAY:   return "an array";
    case JSON_STRING:  return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL:    return "a real number";
    case JSON_TRUE:    return "true";
    case JSON_FALSE:   return "false";
    default:           return "null";
    }
}

/* v as an integer in 0..INT64_MAX into *out, else -1 (jansson's integers
 * are 64-bit: a larger one is already a parse error) */
static int get_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* "PATH: header: tensor 'NAME': ..." */
#define TBAD(fmt, ...) BAD("%s: header: tensor '%s': " fmt, path, name, ##__VA_ARGS__)

/* One tensor's entry {"dtype", "shape", "data_offsets"} into *t and *sp. */
static int parse_tensor(const char *path, const char *name, json_t *v,
                        mltk_st_tensor *t, span *sp, char **err)
{
    if (!json_is_object(v))
        return TBAD("expected an object, found %s", kind(v));
    const char *key;
    json_t *m;
    json_object_foreach(v, key, m)   /* jansson rejected duplicate keys */
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets"))
            return TBAD("unknown key '%s'", key);
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
           *offs = json_object_get(v, "data_offsets");
    if (!dt || !shape || !offs)
        return TBAD("missing '%s'", !dt ? "dtype" : !shape ? "shape" : "data_offsets");
    if (!json_is_string(dt))
        return TBAD("dtype must be a string, found %s", kind(dt));
    const char *dts = json_string_value(dt);
    int d = mltk_st_dtype_parse(dts);
    if (d < 0) {
        const char *hint = NULL;   /* "f32" is F32 first, I32 second */
        for (int k = 0; k < MLTK_ST_N_DTYPES && !hint; k++)
            if (strcasecmp(dts, dtype_names[k]) == 0)
                hint = dtype_names[k];
        if (!hint)
            hint = mltk_did_you_mean(dts, dtype_names, MLTK_ST_N_DTYPES);
        return TBAD("unknown dtype '%s'%s%s%s", dts, hint ? "; did you mean '" : "",
                    hint ? hint : "", hint ? "'?" : "");
    }
    t->dtype = (mltk_st_dtype)d;
    if (!json_is_array(shape))
        return TBAD("shape must be an array, found %s", kind(shape));
    if (json_array_size(shape) > MLTK_ST_MAX_DIMS)
        return TBAD("shape has %zu dimensions, at most %d are supported",
                    json_array_size(shape), MLTK_ST_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    for (int k = 0; k < t->ndim; k++) {
        uint64_t u;
        json_t *dim = json_array_get(shape, (size_t)k);
        if (get_u64(dim, &u))
            return TBAD("shape[%d] must be a non-negative integer, found %s%s", k,
                        json_is_integer(dim) ? "a negative one" : kind(dim),
                        json_is_real(dim) ? " (only integers are allowed in a header)" : "");
        t->shape[k] = (int64_t)u;
    }
    uint64_t need, size = mltk_st_dtype_size(t->dtype);
    if (shape_bytes(t->shape, t->ndim, size, &need) || need > SIZE_MAX)
        return TBAD("shape is too large");
    if (!json_is_array(offs) || json_array_size(offs) != 2
        || get_u64(json_array_get(offs, 0), &sp->b) || get_u64(json_array_get(offs, 1), &sp->e))
        return TBAD("data_offsets must be [begin, end], two non-negative integers");
    if (sp->b > sp->e)
        return TBAD("data_offsets [%llu, %llu] end before they begin", (ull)sp->b,
                    (ull)sp->e);
    if (sp->e - sp->b != need)
        return TBAD("data_offsets [%llu, %llu] hold %llu bytes, but %llu elements of "
                    "%s need %llu", (ull)sp->b, (ull)sp->e, (ull)(sp->e - sp->b),
                    (ull)(need / size), dtype_names[d], (ull)need);
    t->nbytes = (size_t)need;
    return 0;
}

/* v's members, copied into f->meta. */
static int parse_metadata(mltk_st_file *f, const char *path, json_t *v, char **err)
{
    if (!json_is_object(v))
        return BAD("%s: header: __metadata__ must be an object, found %s", path, kind(v));
    f->meta = calloc(2 * json_object_size(v) + 1, sizeof *f->meta);
    if (!f->meta)
        return NOMEM(path, err);
    const char *key;
    json_t *m;
    json_object_foreach(v, key, m) {   /* jansson rejected duplicate keys */
        if (!json_is_string(m))
            return BAD("%s: header: __metadata__: value of '%s' must be a string, found %s",
                       path, key, kind(m));
        f->meta[2 * f->n_meta] = mltk_strdup(key);
        f->meta[2 * f->n_meta + 1] = mltk_strdup(json_string_value(m));
        f->n_meta++;
        if (!f->meta[2 * f->n_meta - 2] || !f->meta[2 * f->n_meta - 1])
            return NOMEM(path, err);
    }
    return 0;
}

/* Validate the parsed header `top` (an object, its members in file order)
 * against data of `data_size` bytes at file offset `data_off`; fill f's
 * tensors and metadata. */
static int validate(mltk_st_file *f, const char *path, json_t *top, size_t data_off,
                    size_t data_size, char **err)
{
    size_t cap = json_object_size(top) + 1;
    named *nm = malloc(cap * sizeof *nm);
    span *sp = malloc(cap * sizeof *sp);
    f->t = calloc(cap, sizeof *f->t);
    f->by_name = malloc(cap * sizeof *f->by_name);
    int rc = nm && sp && f->t && f->by_name ? 0 : NOMEM(path, err), n = 0;
    const char *key;
    json_t *v;
    json_object_foreach(top, key, v) {
        if (rc)
            break;
        if (strcmp(key, "__metadata__") == 0) {
            rc = parse_metadata(f, path, v, err);
            continue;
        }
        rc = parse_tensor(path, key, v, &f->t[n], &sp[n], err);
        if (!(f->t[n].name = mltk_strdup(key)) && !rc)
            rc = NOMEM(path, err);
        sp[n].i = n;
        f->n = ++n;
    }

/* the tensors must tile [0, data_size) exactly */
    if (!rc)
        qsort(sp, (size_t)n, sizeof *sp, span_cmp);
    uint64_t end = 0;
    for (int k = 0; k < n && !rc; k++) {
        const char *name = f->t[sp[k].i].name;
        if (sp[k].b < end)
            rc = TBAD("data_offsets [%llu, %llu] overlap tensor '%s' [%llu, %llu]",
                      (ull)sp[k].b, (ull)sp[k].e, f->t[sp[k - 1].i].name,
                      (ull)sp[k - 1].b, (ull)sp[k - 1].e);
        else if (sp[k].b > end)
            rc = TBAD("data_offsets [%llu, %llu] leave bytes [%llu, %llu) before it "
                      "unused", (ull)sp[k].b, (ull)sp[k].e, (ull)end, (ull)sp[k].b);
        end = sp[k].e;
    }
    if (!rc && end > data_size)
        rc = BAD("%s: truncated: expected %llu bytes of tensor data, found %zu", path,
                 (ull)end, data_size);
    else if (!rc && end < data_size)
        rc = BAD("%s: offset %llu: expected %llu bytes of tensor data, found %zu "
                 "(trailing bytes after the last tensor)", path,
                 (ull)(data_off + end), (ull)end, data_size);
    for (int k = 0; k < n && !rc; k++) {
        f->t[sp[k].i].data = f->bytes + data_off + sp[k].b;
        nm[k] = (named){ f->t[k].name, k };
    }
    if (!rc)
        sort_find_dup(nm, n);
    for (int k = 0; k < n && !rc; k++)
        f->by_name[k] = nm[k].i;
    free(nm);
    free(sp);
    return rc;
}

/* The whole file into f->bytes. */
static int read_all(mltk_st_file *f, const char *path, char **err)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
    if (fd < 0 || fstat(fd, &st))
        rc = mltk_errf(err, MLTK_ERR_IO, "%s: cannot open file: %s", path,
                       strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = mltk_errf(err, MLTK_ERR_IO, "%s: not a regular file", path);
    else if (!(f->bytes = malloc(st.st_size ? (size_t)st.st_size : 1)))
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory for %lld bytes",
                       path, (long long)st.st_size);
    while (!rc && f->size < (size_t)st.st_size) {
        ssize_t r = read(fd, f->bytes + f->size, (size_t)st.st_size - f->size);
        if (r < 0 && errno != EINTR)
            rc = mltk_errf(err, MLTK_ERR_IO, "%s: cannot read file: %s", path,
                           strerror(errno));
        if (r == 0)
            break;                   /* shrank since fstat: validation sees it */
        f->size += r > 0 ? (size_t)r : 0;
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

/* c for a message: "'x'", or "byte 0xNN" when it is not printable */
static const char *show(char *buf, size_t cap, unsigned char c)
{
    snprintf(buf, cap, c >= 0x20 && c < 0x7f ? "'%c'" : "byte 0x%02x", c);
    return buf;
}

/* The JSON header of hlen bytes at file offset 8 into *top. */
static int parse_header(json_t **top, const char *path, const unsigned char *h,
                        size_t hlen, char **err)
{
    char c[16];
    json_error_t je;
    /* as the reference implementation: the header starts with '{' */
    if (!hlen)
        return BAD("%s: offset 8: header ends where '{' starting the header was expected",
                   path);
    if (h[0] != '{')
        return BAD("%s: offset 8: expected '{' starting the header, found %s", path,
                   show(c, sizeof c, h[0]));
    /* jansson's position is a byte count from the start of the header:
     * where it stopped on an error, how much it used on success */
    *top = json_loadb((const char *)h, hlen, JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK,
                      &je);
    if (!*top)
        return BAD("%s: offset %zu: %s", path, 8 + (size_t)je.position, je.text);
    size_t end = (size_t)je.position;
    while (end < hlen && h[end] && strchr(" \t\n\r", h[end]))
        end++;
    if (end < hlen)
        return BAD("%s: offset %zu: expected nothing but spaces after the header, found %s",
                   path, 8 + end, show(c, sizeof c, h[end]));
    return 0;
}

int mltk_st_open(mltk_st_file **out, const char *path, char **err)
{
    *out = NULL;
    mltk_st_file *f = calloc(1, sizeof *f);
    if (!f)
        return NOMEM(path, err);
    json_t *top = NULL;
    uint64_t hlen = 0;
    int rc = read_all(f, path, err);
    for (int i = 7; !rc && f->size >= 8 && i >= 0; i--)
        hlen = hlen << 8 | f->bytes[i];
    if (rc)
        goto out;
    if (f->size < 8)
        rc = BAD("%s: offset 0: file has %zu bytes, too short for the 8-byte header "
                 "length", path, f->size);
    else if (hlen > MLTK_ST_MAX_HEADER)
        rc = BAD("%s: offset 0: header length %llu is beyond the limit of %u bytes",
                 path, (ull)hlen, MLTK_ST_MAX_HEADER);
    else if (hlen > f->size - 8)
        rc = BAD("%s: offset 0: header length %llu is beyond the end of the file "
                 "(%zu bytes after the length)", path, (ull)hlen, f->size - 8);
    if (!rc)
        rc = parse_header(&top, path, f->bytes + 8, (size_t)hlen, err);
    if (!rc)
        rc = validate(f, path, top, 8 + (size_t)hlen, f->size - 8 - (size_t)hlen, err);
out:
    json_decref(top);
    if (rc)
        mltk_st_close(f);
    else
        *out = f;
    return rc;
}

void mltk_st_close(mltk_st_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n; i++)
        free((char *)f->t[i].name);
    for (int i = 0; i < 2 * f->n_meta; i++)
        free(f->meta[i]);
    free(f->meta);
    free(f->t);
    free(f->by_name);
    free(f->bytes);
    free(f);
}

/* ---- accessors ---------------------------------------------------------- */

int mltk_st_count(const mltk_st_file *f) { return f ? f->n : 0; }
int mltk_st_meta_count(const mltk_st_file *f) { return f ? f->n_meta : 0; }

const mltk_st_tensor *mltk_st_get(const mltk_st_file *f, int i)
{
    return f && i >= 0 && i < f->n ? &f->t[i] : NULL;
}

const mltk_st_tensor *mltk_st_find(const mltk_st_file *f, const char *name)
{
    for (int lo = 0, hi = f && name ? f->n : 0; lo < hi;) {
        int mid = lo + (hi - lo) / 2, c = strcmp(name, f->t[f->by_name[mid]].name);
        if (c == 0)
            return &f->t[f->by_name[mid]];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *mltk_st_meta_key(const mltk_st_file *f, int i)
{
    return i >= 0 && i < mltk_st_meta_count(f) ? f->meta[2 * i] : NULL;
}

const char *mltk_st_meta_value(const mltk_st_file *f, int i)
{
    return i >= 0 && i < mltk_st_meta_count(f) ? f->meta[2 * i + 1] : NULL;
}

const char *mltk_st_meta(const mltk_st_file *f, const char *key)
{
    for (int i = 0; key && i < mltk_st_meta_count(f); i++)
        if (strcmp(f->meta[2 * i], key) == 0)
            return f->meta[2 * i + 1];
    return NULL;
}
