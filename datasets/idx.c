/* idx.c - the IDX data set format of MNIST and Fashion-MNIST.
 *
 * What this is: a dataset plugin for one split (an images file and a
 * labels file, each gzipped or not).  A plain file is memory-mapped; a
 * gzipped one is decompressed into host memory.  A sample is served in
 * its native dtype, x uint8 (1, rows, cols) (ABI 2.1 get and label; the
 * core converts x = raw * scale + shift), or as float32 through read for
 * a core that still asks for it.  Every file is checked when the split
 * is opened: the magic (00 00 08 ndim), every dimension, the exact data
 * length (a truncated file or trailing bytes is an error naming the byte
 * offset), the gzip stream itself, the image and label counts, and the
 * label range.  Messages name the file.  The split's
 * checksum is the SHA-256 of the decompressed images file followed by the
 * decompressed labels file, so a run record pins the exact data.
 *
 * The parser of one file is idx_load_file() for a file and idx_parse()
 * for a buffer (idx.h), which the fuzz harness tests/fuzz/fuzz_idx.c
 * calls directly and compares.
 * What this is not: a reader of IDX element types other than unsigned
 * bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <mltk/plugin.h>

#include "idx.h"
#include "sha256.h"

/* ---- reading one IDX file ------------------------------------------------- */

typedef struct idx_reader {
    const char    *path;
    gzFile         f;       /* the file, or NULL when reading mem */
    const uint8_t *mem;     /* the whole plain file in memory, or NULL */
    int64_t        mem_len;
    int            gz;      /* the file starts with the gzip magic */
    int64_t        pos;     /* decompressed bytes consumed so far */
    sha256        *sha;
} idx_reader;

/* Read up to n bytes; returns how many arrived (short only at the end of
 * the data or on an error, which *gzerr then holds: Z_OK if none). */
static int64_t idx_read(idx_reader *r, void *dst, int64_t n, int *gzerr)
{
    int64_t got = 0;

    *gzerr = Z_OK;
    if (r->mem) {
        got = n < r->mem_len - r->pos ? n : r->mem_len - r->pos;
        memcpy(dst, r->mem + r->pos, (size_t)got);
    }
    while (!r->mem && got < n) {
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

/* Load a whole IDX file of unsigned bytes with ndim in [min_ndim, max_ndim]:
 * from the file at path, or, when mem is not NULL, from the plain file's
 * mem_len bytes at mem (path then only names it), whose data out->data
 * then points into instead of a copy. */
static int idx_load(idx_file *out, const char *path, int min_ndim, int max_ndim,
                    const char *what, sha256 *sha, const uint8_t *mem, int64_t mem_len,
                    char **err)
{
    idx_reader r;
    uint8_t head[4 + 4 * IDX_MAX_NDIM], extra;
    int64_t got, cap;
    int gzerr, rc, i;
    char expect[128];

    memset(out, 0, sizeof(*out));
    if (mem) {
        memset(&r, 0, sizeof(r));
        r.path = path;
        r.mem = mem;
        r.mem_len = mem_len;
    } else {
        rc = idx_open_file(&r, path, err);
        if (rc)
            return rc;
    }
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

    /* the data: in memory, where it is; from a file, grow the buffer as
     * bytes arrive, so that a corrupt header in a small file costs no huge
     * allocation */
    snprintf(expect, sizeof(expect), "%lld bytes of data", (long long)out->bytes);
    if (r.mem) {
        if (r.mem_len - r.pos < out->bytes) {
            r.pos = r.mem_len;
            rc = idx_short(&r, Z_OK, expect, err);
            goto out;
        }
        out->data = (uint8_t *)(r.mem + r.pos);
        out->borrowed = 1;
        if (sha)
            sha256_update(sha, out->data, (size_t)out->bytes);
        r.pos += out->bytes;
    }
    cap = out->bytes < ((int64_t)1 << 24) ? out->bytes : ((int64_t)1 << 24);
    got = 0;
    while (!r.mem) {
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
    if (r.f)
        gzclose(r.f);
    if (rc) {
        if (!out->borrowed)
            free(out->data);
        out->data = NULL;
        out->borrowed = 0;
    }
    return rc;
}

int idx_load_file(idx_file *out, const char *path, int min_ndim, int max_ndim,
                  const char *what, char **err)
{
    return idx_load(out, path, min_ndim, max_ndim, what, NULL, NULL, 0, err);
}

int idx_parse(idx_file *out, const uint8_t *buf, int64_t size, const char *path,
              int min_ndim, int max_ndim, const char *what, char **err)
{
    return idx_load(out, path, min_ndim, max_ndim, what, NULL, buf ? buf : (const uint8_t *)"",
                    buf ? size : 0, err);
}

/* One file of a split: mapped when it is plain, else decompressed by
 * idx_load; *map (*map_len bytes) is the mapping to unmap, or NULL. */
static int idx_load_any(idx_file *out, void **map, size_t *map_len, const char *path,
                        int min_ndim, int max_ndim, const char *what, sha256 *sha,
                        char **err)
{
    struct stat st;
    void *m;
    int fd, rc;

    *map = NULL;
    *map_len = 0;
    memset(out, 0, sizeof(*out));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 2) {
        /* idx_load reports what is wrong (a missing file, a directory, an
         * empty one) in the words of the gzip path */
        if (fd >= 0)
            close(fd);
        return idx_load(out, path, min_ndim, max_ndim, what, sha, NULL, 0, err);
    }
    m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED || (((uint8_t *)m)[0] == 0x1f && ((uint8_t *)m)[1] == 0x8b)) {
        if (m != MAP_FAILED)
            munmap(m, (size_t)st.st_size);
        return idx_load(out, path, min_ndim, max_ndim, what, sha, NULL, 0, err);
    }
    rc = idx_load(out, path, min_ndim, max_ndim, what, sha, m, (int64_t)st.st_size, err);
    if (rc) {
        munmap(m, (size_t)st.st_size);
        return rc;
    }
    *map = m;
    *map_len = (size_t)st.st_size;
    return MLTK_OK;
}

/* ---- the data set --------------------------------------------------------- */

typedef struct idx_set {
    int64_t        n;
    int64_t        sample;     /* bytes (= floats) per sample */
    mltk_shape     x_shape;
    int64_t        n_classes;
    float          scale, shift;
    const uint8_t *images;     /* n * sample, in img_map or img_own */
    const uint8_t *labels;     /* n, in lab_map or lab_own */
    uint8_t       *img_own, *lab_own;  /* decompressed copies, or NULL */
    void          *img_map, *lab_map;  /* mappings of plain files, or NULL */
    size_t         img_len, lab_len;
    char           checksum[65];
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
    free(s->img_own);
    free(s->lab_own);
    if (s->img_map)
        munmap(s->img_map, s->img_len);
    if (s->lab_map)
        munmap(s->lab_map, s->lab_len);
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
    rc = idx_load_any(&img, &s->img_map, &s->img_len, img_path, 2, IDX_MAX_NDIM, "images",
                      &sha, err);
    if (rc)
        goto out;
    if (!img.borrowed)
        s->img_own = img.data;
    rc = idx_load_any(&lab, &s->lab_map, &s->lab_len, lab_path, 1, 1, "labels", &sha, err);
    if (rc)
        goto out;
    if (!lab.borrowed)
        s->lab_own = lab.data;
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
    sha256_final(&sha, s->checksum);
    *self = s;
    s = NULL;
    rc = MLTK_OK;
out:
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
    info->x_dtype = MLTK_U8;
    info->x_scale = s->scale;
    info->x_shift = s->shift;
    return MLTK_OK;
}

/* sample i -> x (sample) uint8, y its class */
static int idx_get(void *self, int64_t i, void *x, void *y, char **err)
{
    const idx_set *s = self;

    if (i < 0 || i >= s->n)
        return mltk_errf(err, MLTK_ERR_INVALID,
                         "idx: sample %lld is outside the %lld of this split",
                         (long long)i, (long long)s->n);
    if (x)
        memcpy(x, s->images + i * s->sample, (size_t)s->sample);
    if (y)
        *(int32_t *)y = s->labels[i];
    return MLTK_OK;
}

static int idx_label(void *self, int64_t i, int32_t *y, char **err)
{
    return idx_get(self, i, NULL, y, err);
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
    .get = idx_get,
    .label = idx_label,
};

MLTK_PLUGIN(idx, MLTK_KIND_DATASET, &idx_iface)
