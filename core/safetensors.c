/* safetensors.c - the safetensors file format (see safetensors.h).
 *
 * What this is: a writer that replaces a file atomically (temporary file
 * in the same directory, fsync, rename, fsync of the directory), and a
 * reader that loads a whole file and validates it strictly before any
 * tensor is handed out: header length against the file and the 100 MB
 * limit, the JSON itself (with a small parser for what a header holds,
 * reporting byte offsets), dtypes, shapes, byte counts, and that the
 * tensors tile the data exactly, with no overlap, hole, missing or
 * trailing byte.
 * What this is not: a general JSON library (no floating-point values are
 * kept, nesting stops at a small depth), nor a converter: tensor bytes go
 * in and out unchanged, little-endian, on a little-endian host.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* ---- strings: a growing buffer, UTF-8, JSON escapes, duplicates --------- */

typedef struct sbuf {
    char  *s;
    size_t len, cap;
    int    oom;
} sbuf;

static void sb_add(sbuf *b, const void *p, size_t n)
{
    if (!b->oom && b->len + n + 1 > b->cap) {
        size_t cap = 2 * (b->len + n) + 16;
        char *s = realloc(b->s, cap);
        b->oom = !s;
        b->s = s ? s : b->s;
        b->cap = s ? cap : b->cap;
    }
    if (b->oom)
        return;
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static MLTK_PRINTF(2, 3) void sb_fmt(sbuf *b, const char *fmt, ...)
{
    char tmp[64];   /* enough for every use below */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Length of the well-formed UTF-8 sequence at p (at most `avail` bytes),
 * or 0: no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
    unsigned c = p[0], lo = 0x80, hi = 0xBF;
    size_t n;
    if (c < 0x80)
        return 1;
    if (c < 0xC2 || c > 0xF4)
        return 0;
    n = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (c == 0xE0 || c == 0xF0)
        lo = c == 0xE0 ? 0xA0 : 0x90;   /* overlong */
    if (c == 0xED || c == 0xF4)
        hi = c == 0xED ? 0x9F : 0x8F;   /* surrogates, beyond U+10FFFF */
    if (avail < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

static int utf8_valid(const char *s)
{
    size_t len = strlen(s), n;
    for (size_t i = 0; i < len; i += n)
        if (!(n = utf8_seq((const unsigned char *)s + i, len - i)))
            return 0;
    return 1;
}

/* s as a JSON string, quotes included; UTF-8 passes through. */
static void sb_json(sbuf *b, const char *s)
{
    static const char from[] = "\"\\\b\f\n\r\t", to[] = "\"\\bfnrt";
    sb_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *e = strchr(from, *p);
        if (e)
            sb_fmt(b, "\\%c", to[e - from]);
        else if (*p < 0x20)
            sb_fmt(b, "\\u%04x", *p);
        else
            sb_add(b, p, 1);
    }
    sb_add(b, "\"", 1);
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

/* The 8-byte length and the padded JSON header, in one buffer. */
static void build_header(sbuf *b, const mltk_st_entry *t, int n,
                         const char *const *kv, int n_meta)
{
    sb_add(b, "\0\0\0\0\0\0\0\0{", 9);
    for (int i = 0; i < n_meta; i++) {
        sb_fmt(b, "%s", i ? "," : "\"__metadata__\":{");
        sb_json(b, kv[2 * i]);
        sb_add(b, ":", 1);
        sb_json(b, kv[2 * i + 1]);
    }
    if (n_meta)
        sb_fmt(b, "%s", n ? "}," : "}");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (i)
            sb_add(b, ",", 1);
        sb_json(b, t[i].name);
        sb_fmt(b, ":{\"dtype\":\"%s\",\"shape\":[", mltk_st_dtype_name(t[i].dtype));
        for (int d = 0; d < t[i].ndim; d++)
            sb_fmt(b, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        sb_fmt(b, "],\"data_offsets\":[%llu,", (ull)off);
        off += t[i].nbytes;
        sb_fmt(b, "%llu]}", (ull)off);
    }
    sb_add(b, "}", 1);
    while (!b->oom && b->len % 8)
        sb_add(b, " ", 1);
    for (int i = 0; !b->oom && i < 8; i++)
        b->s[i] = (char)((uint64_t)(b->len - 8) >> (8 * i));
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
    sbuf hdr = { 0 };
    build_header(&hdr, t, n, meta_kv, n_meta);
    char *tmp = mltk_strfmt("%s.tmp.%ld", path, (long)getpid());
    if (hdr.oom || !tmp) {
        free(hdr.s);
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
        if (write_all(fd, i < 0 ? hdr.s : t[i].data, i < 0 ? hdr.len : t[i].nbytes))
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
    free(hdr.s);
    return rc;
}

/* ---- a JSON parser for headers ------------------------------------------ */

/* Headers hold objects, arrays, strings and integers, nothing else. */
enum { J_OBJ, J_ARR, J_STR, J_INT };
static const char *const jkind_names[] = {
    "an object", "an array", "a string", "an integer"
};

typedef struct jv {
    int        kind;
    size_t     off;      /* file offset of the value's first byte */
    char      *key;      /* in an object: the member's name */
    size_t     koff;     /* in an object: file offset of the name */
    char      *s;        /* J_STR: decoded, NUL-terminated */
    uint64_t   u;        /* J_INT: magnitude */
    int        neg, big; /* J_INT: negative; magnitude beyond 64 bits */
    int        n, cap;   /* J_OBJ, J_ARR: members */
    struct jv *kids;
} jv;

typedef struct jparse {
    const unsigned char *p;
    size_t      len, pos, base;   /* base: file offset of p[0] */
    const char *path;
    char      **err;
} jparse;

#define J_MAX_DEPTH 16

static void jv_free(jv *v)
{
    for (int i = 0; i < v->n; i++)
        jv_free(&v->kids[i]);
    free(v->kids);
    free(v->key);
    free(v->s);
}

/* "PATH: offset N: ..." for position pos of the header */
#define JFAIL(j, pos, fmt, ...)                                                \
    mltk_errf((j)->err, MLTK_ERR_DATA, "%s: offset %zu: " fmt, (j)->path,     \
              (j)->base + (pos), ##__VA_ARGS__)

static int jpeek(const jparse *j)
{
    return j->pos < j->len ? j->p[j->pos] : -1;
}

static void jws(jparse *j)
{
    for (int c; (c = jpeek(j)) == ' ' || c == '\t' || c == '\n' || c == '\r';)
        j->pos++;
}

static int junexpected(jparse *j, const char *wanted)
{
    int c = jpeek(j);
    if (c < 0)
        return JFAIL(j, j->pos, "header ends where %s was expected", wanted);
    if (c >= 0x20 && c < 0x7f)
        return JFAIL(j, j->pos, "expected %s, found '%c'", wanted, c);
    return JFAIL(j, j->pos, "expected %s, found byte 0x%02x", wanted, (unsigned)c);
}

static int jhex4(jparse *j, unsigned *cp)
{
    *cp = 0;
    for (int i = 0; i < 4; i++, j->pos++) {
        int c = jpeek(j);
        const char *h = c >= '0' ? strchr("0123456789abcdef", c | 0x20) : NULL;
        if (!h || !*h)
            return JFAIL(j, j->pos, "\\u must be followed by 4 hex digits");
        *cp = *cp * 16 + (unsigned)(h - "0123456789abcdef");
    }
    return 0;
}

/* One \u escape (or a surrogate pair) at j->pos, as UTF-8 into b. */
static int jescape_u(jparse *j, size_t esc, sbuf *b)
{
    unsigned cp, lo = 0;
    int rc = jhex4(j, &cp);
    if (rc)
        return rc;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (jpeek(j) == '\\' && j->pos + 1 < j->len && j->p[j->pos + 1] == 'u') {
            j->pos += 2;
            if ((rc = jhex4(j, &lo)))
                return rc;
        }
        if (lo < 0xDC00 || lo > 0xDFFF)
            return JFAIL(j, esc, "high surrogate \\u%04X without a low one", cp);
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return JFAIL(j, esc, "low surrogate \\u%04X without a high one", cp);
    } else if (cp == 0) {
        return JFAIL(j, esc, "\\u0000 is not allowed in names and metadata");
    }
    static const unsigned char lead[] = { 0, 0, 0xC0, 0xE0, 0xF0 };
    unsigned char u8[4];
    size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    for (size_t i = n - 1; i > 0; i--, cp >>= 6)
        u8[i] = (unsigned char)(0x80 | (cp & 0x3F));
    u8[0] = (unsigned char)(lead[n] | cp);
    sb_add(b, u8, n);
    return 0;
}

/* At the opening quote; leaves a malloc()ed string in *out. */
static int jstring(jparse *j, char **out)
{
    static const char esc_in[] = "\"\\/bfnrt", esc_out[] = "\"\\/\b\f\n\r\t";
    size_t start = j->pos++;
    sbuf b = { 0 };
    int rc = 0, c;
    sb_add(&b, "", 0);
    while (!rc && (c = jpeek(j)) != '"') {
        size_t at = j->pos, n;
        if (c < 0)
            rc = JFAIL(j, start, "unterminated string");
        else if (c < 0x20)
            rc = JFAIL(j, at, "control character 0x%02x in a string", (unsigned)c);
        else if (c >= 0x80 && !(n = utf8_seq(j->p + at, j->len - at)))
            rc = JFAIL(j, at, "invalid UTF-8");
        else if (c >= 0x80) {
            sb_add(&b, j->p + at, n);
            j->pos += n;
        } else if (c != '\\') {
            sb_add(&b, j->p + j->pos++, 1);
        } else {
            j->pos += 2;
            const char *e = at + 1 < j->len && j->p[at + 1] ? strchr(esc_in, j->p[at + 1])
                                                            : NULL;
            if (e)
                sb_add(&b, &esc_out[e - esc_in], 1);
            else if (at + 1 < j->len && j->p[at + 1] == 'u')
                rc = jescape_u(j, at, &b);
            else
                rc = JFAIL(j, at, "invalid escape in a string");
        }
    }
    j->pos++;
    if (!rc && b.oom)
        rc = NOMEM(j->path, j->err);
    if (rc)
        free(b.s);
    else
        *out = b.s;
    return rc;
}

static int jnumber(jparse *j, jv *v)
{
    v->kind = J_INT;
    if (jpeek(j) == '-') {
        v->neg = 1;
        j->pos++;
    }
    size_t first = j->pos;
    for (int c; (c = jpeek(j)) >= '0' && c <= '9'; j->pos++) {
        unsigned d = (unsigned)c - '0';
        v->big |= v->u > (UINT64_MAX - d) / 10;
        v->u = v->u * 10 + d;
    }
    if (j->pos == first)
        return junexpected(j, "a digit");
    if (j->p[first] == '0' && j->pos - first > 1)
        return JFAIL(j, first, "number with a leading zero");
    if (jpeek(j) == '.' || jpeek(j) == 'e' || jpeek(j) == 'E')
        return JFAIL(j, v->off - j->base, "only integers are allowed in a header");
    return 0;
}

static int jvalue(jparse *j, jv *v, int depth)
{
    memset(v, 0, sizeof *v);
    jws(j);
    v->off = j->base + j->pos;
    int c = jpeek(j);
    if (c == '"') {
        v->kind = J_STR;
        return jstring(j, &v->s);
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return jnumber(j, v);
    if (c != '{' && c != '[')
        return junexpected(j, "a string, an integer, an object or an array");
    if (depth >= J_MAX_DEPTH)
        return JFAIL(j, j->pos, "nested deeper than %d levels", J_MAX_DEPTH);
    int obj = c == '{', close = obj ? '}' : ']';
    v->kind = obj ? J_OBJ : J_ARR;
    j->pos++;
    jws(j);
    if (jpeek(j) == close) {
        j->pos++;
        return 0;
    }
    for (;;) {
        if (v->n == v->cap) {
            int cap = v->cap ? 2 * v->cap : 4;
            jv *kids = realloc(v->kids, (size_t)cap * sizeof *kids);
            if (!kids)
                return NOMEM(j->path, j->err);
            v->kids = kids;
            v->cap = cap;
        }
        char *key = NULL;
        size_t koff = 0;
        jws(j);
        if (obj) {
            koff = j->base + j->pos;
            if (jpeek(j) != '"')
                return junexpected(j, "a string key");
            int rc = jstring(j, &key);
            if (rc)
                return rc;
            jws(j);
            if (jpeek(j) != ':') {
                free(key);
                return junexpected(j, "':'");
            }
            j->pos++;
        }
        jv *kid = &v->kids[v->n++];
        int rc = jvalue(j, kid, depth + 1);
        kid->key = key;
        kid->koff = koff;
        if (rc)
            return rc;
        jws(j);
        if (jpeek(j) == ',') {
            j->pos++;
        } else if (jpeek(j) == close) {
            j->pos++;
            return 0;
        } else {
            return junexpected(j, obj ? "',' or '}'" : "',' or ']'");
        }
    }
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

/* v as an integer in 0..INT64_MAX into *out, else -1 */
static int get_u64(const jv *v, uint64_t *out)
{
    *out = v->u;
    return v->kind != J_INT || v->big || (v->neg && v->u) || v->u > INT64_MAX ? -1 : 0;
}

/* "PATH: header: tensor 'NAME': ..." */
#define TBAD(fmt, ...) BAD("%s: header: tensor '%s': " fmt, path, name, ##__VA_ARGS__)

/* One tensor's entry {"dtype", "shape", "data_offsets"} into *t and *sp. */
static int parse_tensor(const char *path, const char *name, const jv *v,
                        mltk_st_tensor *t, span *sp, char **err)
{
    if (v->kind != J_OBJ)
        return TBAD("expected an object, found %s", jkind_names[v->kind]);
    const jv *dt = NULL, *shape = NULL, *offs = NULL;
    for (int k = 0; k < v->n; k++) {
        const char *key = v->kids[k].key;
        const jv **slot = strcmp(key, "dtype") == 0 ? &dt
                        : strcmp(key, "shape") == 0 ? &shape
                        : strcmp(key, "data_offsets") == 0 ? &offs : NULL;
        if (!slot || *slot)
            return TBAD("%s '%s'%s", slot ? "key" : "unknown key", key,
                        slot ? " given twice" : "");
        *slot = &v->kids[k];
    }
    if (!dt || !shape || !offs)
        return TBAD("missing '%s'", !dt ? "dtype" : !shape ? "shape" : "data_offsets");
    if (dt->kind != J_STR)
        return TBAD("dtype must be a string, found %s", jkind_names[dt->kind]);
    int d = mltk_st_dtype_parse(dt->s);
    if (d < 0) {
        const char *hint = NULL;   /* "f32" is F32 first, I32 second */
        for (int k = 0; k < MLTK_ST_N_DTYPES && !hint; k++)
            if (strcasecmp(dt->s, dtype_names[k]) == 0)
                hint = dtype_names[k];
        if (!hint)
            hint = mltk_did_you_mean(dt->s, dtype_names, MLTK_ST_N_DTYPES);
        return TBAD("unknown dtype '%s'%s%s%s", dt->s, hint ? "; did you mean '" : "",
                    hint ? hint : "", hint ? "'?" : "");
    }
    t->dtype = (mltk_st_dtype)d;
    if (shape->kind != J_ARR)
        return TBAD("shape must be an array, found %s", jkind_names[shape->kind]);
    if (shape->n > MLTK_ST_MAX_DIMS)
        return TBAD("shape has %d dimensions, at most %d are supported", shape->n,
                    MLTK_ST_MAX_DIMS);
    t->ndim = shape->n;
    for (int k = 0; k < shape->n; k++) {
        uint64_t u;
        if (get_u64(&shape->kids[k], &u))
            return TBAD("shape[%d] is not a non-negative integer", k);
        t->shape[k] = (int64_t)u;
    }
    uint64_t need, size = mltk_st_dtype_size(t->dtype);
    if (shape_bytes(t->shape, t->ndim, size, &need) || need > SIZE_MAX)
        return TBAD("shape is too large");
    if (offs->kind != J_ARR || offs->n != 2 || get_u64(&offs->kids[0], &sp->b)
        || get_u64(&offs->kids[1], &sp->e))
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

/* v's members move into f->meta. */
static int parse_metadata(mltk_st_file *f, const char *path, jv *v, char **err)
{
    if (v->kind != J_OBJ)
        return BAD("%s: offset %zu: __metadata__ must be an object, found %s", path,
                   v->off, jkind_names[v->kind]);
    named *nm = malloc(((size_t)v->n + 1) * sizeof *nm);
    f->meta = calloc(2 * (size_t)v->n + 1, sizeof *f->meta);
    int rc = nm && f->meta ? 0 : NOMEM(path, err);
    for (int k = 0; k < v->n && !rc; k++) {
        jv *m = &v->kids[k];
        if (m->kind != J_STR) {
            rc = BAD("%s: offset %zu: __metadata__: value of '%s' must be a string, "
                     "found %s", path, m->off, m->key, jkind_names[m->kind]);
            break;
        }
        nm[k] = (named){ m->key, k };
        f->meta[2 * k] = m->key;
        f->meta[2 * k + 1] = m->s;
        m->key = m->s = NULL;
        f->n_meta = k + 1;
    }
    int dup = rc ? -1 : sort_find_dup(nm, f->n_meta);
    if (dup >= 0)
        rc = BAD("%s: offset %zu: __metadata__: key '%s' given twice", path,
                 v->kids[nm[dup].i].koff, nm[dup].s);
    free(nm);
    return rc;
}

/* Validate the parsed header `top` against data of `data_size` bytes at
 * file offset `data_off`; fill f's tensors and metadata. */
static int validate(mltk_st_file *f, const char *path, jv *top, size_t data_off,
                    size_t data_size, char **err)
{
    size_t cap = (size_t)top->n + 1;
    named *nm = malloc(cap * sizeof *nm);
    span *sp = malloc(cap * sizeof *sp);
    f->t = calloc(cap, sizeof *f->t);
    f->by_name = malloc(cap * sizeof *f->by_name);
    int rc = nm && sp && f->t && f->by_name ? 0 : NOMEM(path, err), n = 0;
    for (int k = 0; !rc && k < top->n; k++)
        nm[k] = (named){ top->kids[k].key, k };
    int dup = rc ? -1 : sort_find_dup(nm, top->n);
    if (dup >= 0) {
        size_t o1 = top->kids[nm[dup - 1].i].koff, o2 = top->kids[nm[dup].i].koff;
        rc = strcmp(nm[dup].s, "__metadata__") == 0
            ? BAD("%s: offset %zu: __metadata__ given twice", path, o2)
            : BAD("%s: header: tensor '%s': name given twice (offsets %zu and %zu)",
                  path, nm[dup].s, o1, o2);
    }
    for (int k = 0; k < top->n && !rc; k++) {
        jv *v = &top->kids[k];
        if (strcmp(v->key, "__metadata__") == 0) {
            rc = parse_metadata(f, path, v, err);
            continue;
        }
        rc = parse_tensor(path, v->key, v, &f->t[n], &sp[n], err);
        f->t[n].name = v->key;
        v->key = NULL;                /* now owned by f */
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

int mltk_st_open(mltk_st_file **out, const char *path, char **err)
{
    *out = NULL;
    mltk_st_file *f = calloc(1, sizeof *f);
    if (!f)
        return NOMEM(path, err);
    jv top = { 0 };
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
    if (rc)
        goto out;
    jparse j = { f->bytes + 8, (size_t)hlen, 0, 8, path, err };
    if (jpeek(&j) != '{')
        rc = junexpected(&j, "'{' starting the header");
    else if (!(rc = jvalue(&j, &top, 0))) {
        jws(&j);
        if (j.pos < j.len)
            rc = junexpected(&j, "nothing but spaces after the header");
    }
    if (!rc)
        rc = validate(f, path, &top, 8 + (size_t)hlen, f->size - 8 - (size_t)hlen, err);
out:
    jv_free(&top);
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
