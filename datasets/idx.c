/* idx.c - the IDX data set format of MNIST and Fashion-MNIST.
 *
 * What this is: a dataset plugin that loads one split (an images file and
 * a labels file, each gzipped or not) completely into host memory as bytes
 * and converts samples to float32 (x = raw * scale + shift) when read.
 * Every file is checked as it is read: the magic (00 00 08 ndim), every
 * dimension, the exact data length (a truncated file or trailing bytes is
 * an error naming the byte offset), the gzip stream itself, the image and
 * label counts, and the label range.  Messages name the file.  The split's
 * checksum is the SHA-256 of the decompressed images file followed by the
 * decompressed labels file, so a run record pins the exact data.
 *
 * The parser of one file is idx_load_file() (idx.h), which the fuzz
 * harness tests/fuzz/fuzz_idx.c calls directly.
 * What this is not: a streaming reader (Fashion-MNIST is 55 MB as bytes)
 * or a reader of IDX element types other than unsigned bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include <mltk/plugin.h>

#include "idx.h"

/* ---- SHA-256 (FIPS 180-4) ------------------------------------------------- */

typedef struct sha256 {
    uint32_t h[8];
    uint64_t len;        /* bytes hashed so far */
    uint8_t  buf[64];
    size_t   fill;
} sha256;

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror32(uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha256_init(sha256 *s)
{
    static const uint32_t h0[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    };
    memcpy(s->h, h0, sizeof(h0));
    s->len = 0;
    s->fill = 0;
}

static void sha256_block(sha256 *s, const uint8_t *p)
{
    uint32_t w[64], a, b, c, d, e, f, g, h;
    int i;

    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = s->h[0]; b = s->h[1]; c = s->h[2]; d = s->h[3];
    e = s->h[4]; f = s->h[5]; g = s->h[6]; h = s->h[7];
    for (i = 0; i < 64; i++) {
        uint32_t t1 = h + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) +
                      ((e & f) ^ (~e & g)) + sha256_k[i] + w[i];
        uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) +
                      ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
    s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

static void sha256_update(sha256 *s, const void *data, size_t n)
{
    const uint8_t *p = data;

    s->len += n;
    if (s->fill) {
        size_t take = 64 - s->fill < n ? 64 - s->fill : n;
        memcpy(s->buf + s->fill, p, take);
        s->fill += take;
        p += take;
        n -= take;
        if (s->fill < 64)
            return;
        sha256_block(s, s->buf);
        s->fill = 0;
    }
    for (; n >= 64; p += 64, n -= 64)
        sha256_block(s, p);
    memcpy(s->buf, p, n);
    s->fill = n;
}

/* hex digest (64 characters and a NUL) into out */
static void sha256_final(sha256 *s, char out[65])
{
    static const uint8_t pad = 0x80, zero[64];
    uint64_t bits = s->len * 8;
    uint8_t lenbe[8];
    int i;

    sha256_update(s, &pad, 1);
    sha256_update(s, zero, (s->fill <= 56 ? 56 : 120) - s->fill);
    for (i = 0; i < 8; i++)
        lenbe[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(s, lenbe, 8);
    for (i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", (unsigned)(s->h[i / 4] >> (24 - 8 * (i % 4))) & 0xff);
    out[64] = '\0';
}

/* ---- reading one IDX file ------------------------------------------------- */

typedef struct idx_reader {
    const char *path;
    gzFile      f;
    int         gz;      /* the file starts with the gzip magic */
    int64_t     pos;     /* decompressed bytes consumed so far */
    sha256     *sha;
} idx_reader;

/* Read up to n bytes; returns how many arrived (short only at the end of
 * the data or on an error, which *gzerr then holds: Z_OK if none). */
static int64_t idx_read(idx_reader *r, void *dst, int64_t n, int *gzerr)
{
    int64_t got = 0;

    *gzerr = Z_OK;
    while (got < n) {
        unsigned chunk = n - got > (1 << 30) ? (1u << 30) : (unsigned)(n - got);
        int k = gzread(r->f, (uint8_t *)dst + got, chunk);
        if (k <= 0) {
            gzerror(r->f, gzerr);
            break;
        }
        got += k;
        if ((unsigned)k < chunk) {
            gzerror(r->f, gzerr);
            if (*gzerr != Z_OK || gzeof(r->f))
                break;
        }
    }
    if (got > 0 && r->sha)
        sha256_update(r->sha, dst, (size_t)got);
    r->pos += got;
    return got;
}

/* The error for a read that came back short at r->pos: a damaged gzip
 * stream, an I/O error, or a file that simply ends too early.  `expected`
 * says what was being read. */
static int idx_short(idx_reader *r, int gzerr, const char *expected, char **err)
{
    const char *where = r->gz ? " of the decompressed data" : "";

    if (gzerr == Z_ERRNO)
        return mltk_errf(err, MLTK_ERR_IO, "%s: read error at byte %lld: %s",
                         r->path, (long long)r->pos, strerror(errno));
    if (gzerr == Z_BUF_ERROR && r->gz)
        return mltk_errf(err, MLTK_ERR_DATA,
                         "%s: truncated at byte %lld%s: the gzip stream ends "
                         "early (expected %s)", r->path, (long long)r->pos,
                         where, expected);
    if (gzerr != Z_OK) {
        int e;
        const char *msg = gzerror(r->f, &e);
        return mltk_errf(err, MLTK_ERR_DATA,
                         "%s: corrupt gzip data after %lld decompressed bytes: %s",
                         r->path, (long long)r->pos, msg && *msg ? msg : "unknown error");
    }
    return mltk_errf(err, MLTK_ERR_DATA, "%s: truncated at byte %lld%s (expected %s)",
                     r->path, (long long)r->pos, where, expected);
}

static int idx_open_file(idx_reader *r, const char *path, char **err)
{
    struct stat st;
    unsigned char magic[2];
    size_t n;
    FILE *fp;

    memset(r, 0, sizeof(*r));
    r->path = path;
    fp = fopen(path, "rb");
    if (!fp)
        return mltk_errf(err, MLTK_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(fp);
        return mltk_errf(err, MLTK_ERR_IO, "cannot open %s: %s", path, strerror(EISDIR));
    }
    n = fread(magic, 1, 2, fp);
    fclose(fp);
    r->gz = n == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    r->f = gzopen(path, "rb");
    if (!r->f)
        return mltk_errf(err, MLTK_ERR_IO, "cannot open %s: %s", path,
                         errno ? strerror(errno) : "out of memory");
    gzbuffer(r->f, 1 << 17);
    return MLTK_OK;
}

/* Load a whole IDX file of unsigned bytes with ndim in [min_ndim, max_ndim]. */
static int idx_load(idx_file *out, const char *path, int min_ndim, int max_ndim,
                    const char *what, sha256 *sha, char **err)
{
    idx_reader r;
    uint8_t head[4 + 4 * IDX_MAX_NDIM], extra;
    int64_t got, cap;
    int gzerr, rc, i;
    char expect[128];

    memset(out, 0, sizeof(*out));
    rc = idx_open_file(&r, path, err);
    if (rc)
        return rc;
    r.sha = sha;

    /* magic: 00 00 <type> <ndim> */
    got = idx_read(&r, head, 4, &gzerr);
    if (got < 4) {
        rc = idx_short(&r, gzerr, "a 4-byte IDX magic", err);
        goto out;
    }
    if (head[0] != 0 || head[1] != 0) {
        rc = mltk_errf(err, MLTK_ERR_DATA,
                       "%s: not an IDX file: bad magic %02x %02x %02x %02x at byte 0%s "
                       "(expected 00 00 08 and the number of dimensions)", path,
                       head[0], head[1], head[2], head[3],
                       r.gz ? " of the decompressed data" : "");
        goto out;
    }
    if (head[2] != 0x08) {
        rc = mltk_errf(err, MLTK_ERR_DATA,
                       "%s: element type 0x%02x at byte 2 is not supported "
                       "(expected 0x08, unsigned byte)", path, head[2]);
        goto out;
    }
    if (head[3] < min_ndim || head[3] > max_ndim) {
        if (min_ndim == max_ndim)
            rc = mltk_errf(err, MLTK_ERR_DATA,
                           "%s: %d dimensions at byte 3, but %s need exactly %d",
                           path, head[3], what, min_ndim);
        else
            rc = mltk_errf(err, MLTK_ERR_DATA,
                           "%s: %d dimensions at byte 3, but %s need %d to %d",
                           path, head[3], what, min_ndim, max_ndim);
        goto out;
    }
    out->ndim = head[3];
    out->header = 4 + 4 * (int64_t)out->ndim;

    /* dimensions, big-endian uint32 each */
    snprintf(expect, sizeof(expect), "a %lld-byte header", (long long)out->header);
    got = idx_read(&r, head + 4, 4 * out->ndim, &gzerr);
    if (got < 4 * out->ndim) {
        rc = idx_short(&r, gzerr, expect, err);
        goto out;
    }
    out->bytes = 1;
    for (i = 0; i < out->ndim; i++) {
        const uint8_t *b = head + 4 + 4 * i;
        out->dim[i] = (int64_t)b[0] << 24 | (int64_t)b[1] << 16 |
                      (int64_t)b[2] << 8 | (int64_t)b[3];
        if (out->dim[i] == 0) {
            rc = mltk_errf(err, MLTK_ERR_DATA, "%s: dimension %d (at byte %d) is 0%s",
                           path, i, 4 + 4 * i, i == 0 ? ": the file holds no samples" : "");
            goto out;
        }
        if (out->bytes > ((int64_t)1 << 40) / out->dim[i]) {
            rc = mltk_errf(err, MLTK_ERR_DATA,
                           "%s: the dimensions in the header describe more than "
                           "1 TiB of data; the header is corrupt", path);
            goto out;
        }
        out->bytes *= out->dim[i];
    }

    /* the data: grow the buffer as bytes arrive, so that a corrupt header
     * in a small file costs no huge allocation */
    snprintf(expect, sizeof(expect), "%lld bytes of data", (long long)out->bytes);
    cap = out->bytes < ((int64_t)1 << 24) ? out->bytes : ((int64_t)1 << 24);
    got = 0;
    for (;;) {
        uint8_t *p = realloc(out->data, (size_t)cap);
        int64_t k;
        if (!p) {
            rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory for %lld bytes",
                           path, (long long)cap);
            goto out;
        }
        out->data = p;
        k = idx_read(&r, out->data + got, cap - got, &gzerr);
        got += k;
        if (got < cap) {
            rc = idx_short(&r, gzerr, expect, err);
            goto out;
        }
        if (cap == out->bytes)
            break;
        cap = cap * 2 < out->bytes ? cap * 2 : out->bytes;
    }

    /* the end: exactly here (this also makes zlib verify the gzip CRC) */
    got = idx_read(&r, &extra, 1, &gzerr);
    if (got > 0) {
        rc = mltk_errf(err, MLTK_ERR_DATA,
                       "%s: trailing data at byte %lld%s (expected the file to end "
                       "after %lld bytes of data)", path, (long long)(r.pos - 1),
                       r.gz ? " of the decompressed data" : "", (long long)out->bytes);
        goto out;
    }
    if (gzerr != Z_OK && !(gzerr == Z_BUF_ERROR && !r.gz)) {
        rc = idx_short(&r, gzerr, "the end of the file", err);
        goto out;
    }
    rc = MLTK_OK;
out:
    gzclose(r.f);
    if (rc) {
        free(out->data);
        out->data = NULL;
    }
    return rc;
}

int idx_load_file(idx_file *out, const char *path, int min_ndim, int max_ndim,
                  const char *what, char **err)
{
    return idx_load(out, path, min_ndim, max_ndim, what, NULL, err);
}

/* ---- the data set --------------------------------------------------------- */

typedef struct idx_set {
    int64_t    n;
    int64_t    sample;     /* bytes (= floats) per sample */
    mltk_shape x_shape;
    int64_t    n_classes;
    float      scale, shift;
    uint8_t   *images;     /* n * sample */
    uint8_t   *labels;     /* n */
    char       checksum[65];
} idx_set;

static char *idx_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p;

    if (name[0] == '/' || a == 0) {
        p = malloc(b + 1);
        if (p)
            memcpy(p, name, b + 1);
        return p;
    }
    p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    if (dir[a - 1] != '/')
        p[a++] = '/';
    memcpy(p + a, name, b + 1);
    return p;
}

static void idx_close(void *self)
{
    idx_set *s = self;

    if (!s)
        return;
    free(s->images);
    free(s->labels);
    free(s);
}

static int idx_open(void **self, const mltk_params_t *params, const char *split,
                    char **err)
{
    const char *dir = mltk_params_str(params, "path");
    const char *img_key, *lab_key;
    char *img_path = NULL, *lab_path = NULL;
    idx_file img, lab;
    idx_set *s = NULL;
    int64_t want_classes = mltk_params_int(params, "n_classes");
    int64_t i, max_label = -1;
    sha256 sha;
    int rc;

    memset(&img, 0, sizeof(img));
    memset(&lab, 0, sizeof(lab));
    *self = NULL;
    if (split && strcmp(split, "train") == 0) {
        img_key = "train_images";
        lab_key = "train_labels";
    } else if (split && strcmp(split, "test") == 0) {
        img_key = "test_images";
        lab_key = "test_labels";
    } else {
        return mltk_errf(err, MLTK_ERR_INVALID,
                         "idx: unknown split '%s' (expected train or test)",
                         split ? split : "(null)");
    }
    img_path = idx_join(dir ? dir : "", mltk_params_str(params, img_key));
    lab_path = idx_join(dir ? dir : "", mltk_params_str(params, lab_key));
    s = calloc(1, sizeof(*s));
    if (!img_path || !lab_path || !s) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "idx: out of memory");
        goto out;
    }

    sha256_init(&sha);
    rc = idx_load(&img, img_path, 2, IDX_MAX_NDIM, "images", &sha, err);
    if (rc)
        goto out;
    rc = idx_load(&lab, lab_path, 1, 1, "labels", &sha, err);
    if (rc)
        goto out;
    if (lab.dim[0] != img.dim[0]) {
        rc = mltk_errf(err, MLTK_ERR_DATA,
                       "%s holds %lld labels but %s holds %lld images",
                       lab_path, (long long)lab.dim[0], img_path, (long long)img.dim[0]);
        goto out;
    }
    for (i = 0; i < lab.dim[0]; i++) {
        if (want_classes > 0 && lab.data[i] >= want_classes) {
            rc = mltk_errf(err, MLTK_ERR_DATA,
                           "%s: label %u of sample %lld (at byte %lld) is out of "
                           "range: n_classes = %lld", lab_path, lab.data[i],
                           (long long)i, (long long)(lab.header + i),
                           (long long)want_classes);
            goto out;
        }
        if (lab.data[i] > max_label)
            max_label = lab.data[i];
    }

    s->n = img.dim[0];
    s->sample = img.bytes / img.dim[0];
    if (img.ndim == 3) {
        /* one channel, so that a convolution sees (C, H, W) */
        int64_t d[3] = { 1, img.dim[1], img.dim[2] };
        s->x_shape = mltk_shape_make(3, d);
    } else {
        s->x_shape = mltk_shape_make(img.ndim - 1, img.dim + 1);
    }
    s->n_classes = want_classes > 0 ? want_classes : max_label + 1;
    s->scale = (float)mltk_params_float(params, "scale");
    s->shift = (float)mltk_params_float(params, "shift");
    s->images = img.data;
    s->labels = lab.data;
    img.data = lab.data = NULL;
    sha256_final(&sha, s->checksum);
    *self = s;
    s = NULL;
    rc = MLTK_OK;
out:
    free(img.data);
    free(lab.data);
    free(img_path);
    free(lab_path);
    idx_close(s);
    return rc;
}

static int idx_info(void *self, mltk_dataset_info *info)
{
    const idx_set *s = self;

    memset(info, 0, sizeof(*info));
    info->n = s->n;
    info->x_shape = s->x_shape;
    info->target = MLTK_TARGET_CLASS;
    info->y_shape.ndim = 0;
    info->n_classes = s->n_classes;
    memcpy(info->checksum, s->checksum, sizeof(info->checksum));
    return MLTK_OK;
}

/* samples [first, first+count) -> x (count, sample) float32, y (count) int32 */
static int idx_read_samples(void *self, int64_t first, int64_t count, float *x,
                            void *y, char **err)
{
    const idx_set *s = self;
    int32_t *yi = y;
    int64_t i, n;
    const uint8_t *src;

    if (first < 0 || count < 0 || first > s->n || count > s->n - first)
        return mltk_errf(err, MLTK_ERR_INVALID,
                         "idx: samples [%lld, %lld) are outside the %lld of this split",
                         (long long)first, (long long)(first + count), (long long)s->n);
    if (x) {
        src = s->images + first * s->sample;
        n = count * s->sample;
        for (i = 0; i < n; i++)
            x[i] = (float)src[i] * s->scale + s->shift;
    }
    if (yi)
        for (i = 0; i < count; i++)
            yi[i] = s->labels[first + i];
    return MLTK_OK;
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_dataset_i idx_iface = {
    .size = sizeof(struct mltk_dataset_i),
    .open = idx_open,
    .close = idx_close,
    .info = idx_info,
    .read = idx_read_samples,
};

MLTK_PLUGIN(idx, MLTK_KIND_DATASET, &idx_iface)
