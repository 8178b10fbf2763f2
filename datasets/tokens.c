/* tokens.c - token-id files and plain text as windows for a language model.
 *
 * What this is: two dataset plugins built from this file.  `tokens` reads
 * a flat file of uint16 or uint32 token ids (nanoGPT's train.bin, raw;
 * or llm.c's .bin with its 1024-byte header, format = llmc); `text`
 * (built with -DTOKENS_TEXT) reads any file as bytes, a byte-level
 * vocabulary of 256.  Either way a split is a run of tokens, and sample i
 * is the window of `context` tokens starting at token i * stride, x int32
 * (context), with the token after the window as its class (n_classes =
 * vocab): a next-token model.  The files are memory-mapped and checked
 * once, at open: the llm.c header (magic, version, token count against
 * the file size), a partial token at the end, and every id against vocab;
 * each message names the file and the byte offset.  The test split is
 * another file, or the last test_tail fraction of the training file (the
 * training split is then the rest, so no window spans both).  The
 * checksum is the SHA-256 of the whole file the split comes from.
 *
 * The parser, tok_parse(), works on a buffer, so that the fuzz harness
 * tests/fuzz/fuzz_tokens.c (which includes this file) reaches it without
 * files.
 * What this is not: a tokenizer, or per-position targets (a sequence
 * loss over every position of the window is not in the toolkit yet: the
 * target is the one token that follows the window).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <mltk/plugin.h>

#include "mapfile.h"
#include "sha256.h"

#ifdef TOKENS_TEXT
#define TOK_NAME "text"
#else
#define TOK_NAME "tokens"
#endif

/* llm.c's token files (dev/data/data_common.py): 256 int32, little-endian:
 * magic, version, token count; then the tokens */
#define LLMC_HEADER      1024
#define LLMC_MAGIC_GPT2  20240520u   /* version 1, uint16 tokens */
#define LLMC_MAGIC_LLAMA 20240801u   /* version 7, uint32 tokens */

/* ---- the parser ----------------------------------------------------------- */

/* How a file is laid out. */
typedef struct tok_format {
    int     width;    /* bytes per token: 1 (text), 2 or 4 */
    int     llmc;     /* an llm.c header comes first */
    int64_t header;   /* raw: bytes to skip before the first token */
    int64_t vocab;    /* every id must be < vocab */
} tok_format;

/* The tokens of one file. */
typedef struct tok_view {
    const uint8_t *data;    /* the first token (inside the caller's buffer) */
    int64_t        n;       /* tokens */
    int64_t        offset;  /* byte offset of data in the file */
    int            width;
} tok_view;

static uint32_t tok_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* token k of a run of little-endian ids of `width` bytes */
static inline uint32_t tok_at(const uint8_t *data, int width, int64_t k)
{
    const uint8_t *p = data + k * width;

    if (width == 1)
        return p[0];
    if (width == 2)
        return (uint32_t)p[0] | (uint32_t)p[1] << 8;
    return tok_le32(p);
}

/* Check the file buf (size bytes, named path in messages) against the
 * format f and find its tokens: MLTK_OK and *out, or MLTK_ERR_DATA with a
 * message naming path and the byte offset. */
static int tok_parse(tok_view *out, const uint8_t *buf, int64_t size,
                     const tok_format *f, const char *path, char **err)
{
    int64_t start = f->header, k;
    int width = f->width;

    memset(out, 0, sizeof(*out));
    if (f->llmc) {
        uint32_t magic, version, count;
        int want_version, want_width;
        int64_t end;

        if (size < LLMC_HEADER)
            return mltk_errf(err, MLTK_ERR_DATA,
                             "%s: truncated at byte %lld (expected the %d-byte header "
                             "of an llm.c token file)", path, (long long)size, LLMC_HEADER);
        magic = tok_le32(buf);
        version = tok_le32(buf + 4);
        count = tok_le32(buf + 8);
        if (magic == LLMC_MAGIC_GPT2) {
            want_version = 1;
            want_width = 2;
        } else if (magic == LLMC_MAGIC_LLAMA) {
            want_version = 7;
            want_width = 4;
        } else {
            return mltk_errf(err, MLTK_ERR_DATA,
                             "%s: bad magic %lu at byte 0 (expected %u or %u, an llm.c "
                             "token file)", path, (unsigned long)magic, LLMC_MAGIC_GPT2,
                             LLMC_MAGIC_LLAMA);
        }
        if (version != (uint32_t)want_version)
            return mltk_errf(err, MLTK_ERR_DATA,
                             "%s: version %lu at byte 4 is not supported (expected %d "
                             "with magic %lu)", path, (unsigned long)version,
                             want_version, (unsigned long)magic);
        if (want_width != width)
            return mltk_errf(err, MLTK_ERR_DATA,
                             "%s: the llm.c header (magic %lu at byte 0) says uint%d "
                             "tokens, but dtype = uint%d", path, (unsigned long)magic,
                             8 * want_width, 8 * width);
        start = LLMC_HEADER;
        end = start + (int64_t)count * width;
        if (size < end)
            return mltk_errf(err, MLTK_ERR_DATA,
                             "%s: truncated at byte %lld: the header (byte 8) says %lu "
                             "tokens, which end at byte %lld", path, (long long)size,
                             (unsigned long)count, (long long)end);
        if (size > end)
            return mltk_errf(err, MLTK_ERR_DATA,
                             "%s: trailing data at byte %lld: the header (byte 8) says "
                             "%lu tokens", path, (long long)end, (unsigned long)count);
    } else {
        if (size < start)
            return mltk_errf(err, MLTK_ERR_DATA,
                             "%s: truncated at byte %lld (expected a %lld-byte header)",
                             path, (long long)size, (long long)start);
        if ((size - start) % width)
            return mltk_errf(err, MLTK_ERR_DATA,
                             "%s: partial token at byte %lld: %lld bytes after the "
                             "%lld-byte header are not a whole number of %d-byte "
                             "tokens", path,
                             (long long)(size - (size - start) % width),
                             (long long)(size - start), (long long)start, width);
    }
    out->data = buf + start;
    out->n = (size - start) / width;
    out->offset = start;
    out->width = width;
    if (out->n == 0)
        return mltk_errf(err, MLTK_ERR_DATA, "%s: no tokens after byte %lld", path,
                         (long long)start);
    if (f->vocab < ((int64_t)1 << (8 * width)))
        for (k = 0; k < out->n; k++) {
            uint32_t id = tok_at(out->data, width, k);
            if (id >= f->vocab)
                return mltk_errf(err, MLTK_ERR_DATA,
                                 "%s: token id %lu at byte %lld is out of range: "
                                 "vocab = %lld", path, (unsigned long)id,
                                 (long long)(start + k * width), (long long)f->vocab);
        }
    return MLTK_OK;
}

/* ---- the data set --------------------------------------------------------- */

typedef struct tok_set {
    void          *map;      /* the mapped file */
    size_t         map_len;
    const uint8_t *data;     /* the split's first token */
    int            width;
    int64_t        n_tokens; /* tokens in the split */
    int64_t        context, stride, vocab;
    int64_t        n;        /* windows */
    char           checksum[65];
} tok_set;

static char *tok_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);

    if (!p)
        return NULL;
    if (name[0] == '/' || a == 0) {
        memcpy(p, name, b + 1);
        return p;
    }
    memcpy(p, dir, a);
    if (dir[a - 1] != '/')
        p[a++] = '/';
    memcpy(p + a, name, b + 1);
    return p;
}

/* Map the whole file at path read-only: *map and *len (an empty file is
 * an error). */
static int tok_map(const char *path, void **map, size_t *len, char **err)
{
    int rc = mapfile(path, map, len, err);

    if (rc == MLTK_OK && *len == 0)
        return mltk_errf(err, MLTK_ERR_DATA, "%s: empty file (at byte 0)", path);
    return rc;
}

static void tok_close(void *self)
{
    tok_set *s = self;

    if (!s)
        return;
    if (s->map)
        munmap(s->map, s->map_len);
    free(s);
}

static int tok_open(void **self, const mltk_params_t *params, const char *split,
                    char **err)
{
    const char *dir = mltk_params_str(params, "path");
    const char *test = mltk_params_str(params, "test");
    double tail = mltk_params_float(params, "test_tail");
    int is_test, from_tail;
    char *path = NULL;
    tok_set *s = NULL;
    tok_format f;
    tok_view v;
    int64_t lo, hi, cut;
    sha256 sha;
    int rc;

    *self = NULL;
    if (!split || (strcmp(split, "train") && strcmp(split, "test")))
        return mltk_errf(err, MLTK_ERR_INVALID, TOK_NAME ": unknown split '%s' "
                         "(expected train or test)", split ? split : "(null)");
    is_test = strcmp(split, "test") == 0;
    from_tail = !test || !*test;
    if (is_test && from_tail && tail <= 0)
        return mltk_errf(err, MLTK_ERR_CONFIG, TOK_NAME ": no test split: set key "
                         "'test' to a file, or 'test_tail' to the fraction of the "
                         "training file to hold out");

    memset(&f, 0, sizeof(f));
#ifdef TOKENS_TEXT
    f.width = 1;
    f.vocab = 256;
#else
    f.width = strcmp(mltk_params_str(params, "dtype"), "uint32") == 0 ? 4 : 2;
    f.llmc = strcmp(mltk_params_str(params, "format"), "llmc") == 0;
    f.header = f.llmc ? 0 : mltk_params_int(params, "header");
    f.vocab = mltk_params_int(params, "vocab");
#endif
    path = tok_join(dir ? dir : "", is_test && !from_tail ? test
                                                          : mltk_params_str(params, "train"));
    s = calloc(1, sizeof(*s));
    if (!path || !s) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, TOK_NAME ": out of memory");
        goto out;
    }
    rc = tok_map(path, &s->map, &s->map_len, err);
    if (rc)
        goto out;
    rc = tok_parse(&v, s->map, (int64_t)s->map_len, &f, path, err);
    if (rc)
        goto out;

    /* the split's tokens [lo, hi) */
    lo = 0;
    hi = v.n;
    if (from_tail && tail > 0) {
        cut = v.n - (int64_t)floor((double)v.n * tail);
        if (is_test)
            lo = cut;
        else
            hi = cut;
    }
    s->context = mltk_params_int(params, "context");
    s->stride = mltk_params_int(params, "stride");
    if (hi - lo < s->context + 1) {
        rc = mltk_errf(err, MLTK_ERR_DATA,
                       "%s: the %s split holds %lld tokens (bytes %lld to %lld), fewer "
                       "than context + 1 = %lld", path, split, (long long)(hi - lo),
                       (long long)(v.offset + lo * v.width),
                       (long long)(v.offset + hi * v.width), (long long)(s->context + 1));
        goto out;
    }
    s->data = v.data + lo * v.width;
    s->width = v.width;
    s->n_tokens = hi - lo;
    s->vocab = f.vocab;
    s->n = (s->n_tokens - s->context - 1) / s->stride + 1;
    sha256_init(&sha);
    sha256_update(&sha, s->map, s->map_len);
    sha256_final(&sha, s->checksum);
    *self = s;
    s = NULL;
    rc = MLTK_OK;
out:
    free(path);
    tok_close(s);
    return rc;
}

static int tok_info(void *self, mltk_dataset_info *info)
{
    const tok_set *s = self;

    memset(info, 0, sizeof(*info));
    info->n = s->n;
    info->x_shape = mltk_shape_make(1, &s->context);
    info->target = MLTK_TARGET_CLASS;
    info->n_classes = s->vocab;
    memcpy(info->checksum, s->checksum, sizeof(info->checksum));
    info->x_dtype = MLTK_I32;
    info->x_scale = 1.0;
    info->x_shift = 0.0;
    return MLTK_OK;
}

static int tok_range(const tok_set *s, int64_t first, int64_t count, char **err)
{
    if (first < 0 || count < 0 || first > s->n || count > s->n - first)
        return mltk_errf(err, MLTK_ERR_INVALID,
                         TOK_NAME ": samples [%lld, %lld) are outside the %lld of this "
                         "split", (long long)first, (long long)(first + count),
                         (long long)s->n);
    return MLTK_OK;
}

/* window i -> x (context) int32, y the next token */
static int tok_get(void *self, int64_t i, void *x, void *y, char **err)
{
    const tok_set *s = self;
    int64_t start = i * s->stride, t;
    int32_t *xi = x;
    int rc = tok_range(s, i, 1, err);

    if (rc)
        return rc;
    if (xi)
        for (t = 0; t < s->context; t++)
            xi[t] = (int32_t)tok_at(s->data, s->width, start + t);
    if (y)
        *(int32_t *)y = (int32_t)tok_at(s->data, s->width, start + s->context);
    return MLTK_OK;
}

static int tok_label(void *self, int64_t i, int32_t *y, char **err)
{
    return tok_get(self, i, NULL, y, err);
}

/* windows [first, first+count) -> x (count, context) float32 ids, y (count) */
static int tok_read(void *self, int64_t first, int64_t count, float *x, void *y,
                    char **err)
{
    const tok_set *s = self;
    int32_t *yi = y;
    int64_t i, t;
    int rc = tok_range(s, first, count, err);

    if (rc)
        return rc;
    for (i = 0; i < count; i++) {
        int64_t start = (first + i) * s->stride;
        if (x)
            for (t = 0; t < s->context; t++)
                x[i * s->context + t] = (float)tok_at(s->data, s->width, start + t);
        if (yi)
            yi[i] = (int32_t)tok_at(s->data, s->width, start + s->context);
    }
    return MLTK_OK;
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_dataset_i tok_iface = {
    .size = sizeof(struct mltk_dataset_i),
    .open = tok_open,
    .close = tok_close,
    .info = tok_info,
    .read = tok_read,
    .get = tok_get,
    .label = tok_label,
};

#ifdef TOKENS_TEXT
MLTK_PLUGIN(text, MLTK_KIND_DATASET, &tok_iface)
#else
MLTK_PLUGIN(tokens, MLTK_KIND_DATASET, &tok_iface)
#endif
