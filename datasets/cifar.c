/* cifar.c - the CIFAR-10 and CIFAR-100 binary formats.
 *
 * What this is: a dataset plugin for the "binary version" of CIFAR as
 * distributed by its authors.  CIFAR-10 (variant = 10, directory
 * cifar-10-batches-bin): data_batch_1.bin .. data_batch_5.bin for
 * training and test_batch.bin for testing, each record 1 label byte and
 * 3072 pixel bytes (1024 red, 1024 green, 1024 blue, rows of 32); class
 * names from batches.meta.txt.  CIFAR-100 (variant = 100, directory
 * cifar-100-binary): train.bin and test.bin, each record a coarse label
 * byte (20 superclasses), a fine label byte (100 classes) and the 3072
 * pixel bytes; label = fine | coarse picks the class, whose names come
 * from fine_label_names.txt or coarse_label_names.txt.  A names file is
 * optional; when present it must hold exactly one name per class.
 *
 * The files are memory-mapped and checked once at open: a size that is
 * not a whole number of records (the message names the file and the byte
 * offset of the partial record) and every label byte against the number
 * of classes (the file and the label's byte offset).  A sample is x uint8
 * (3, 32, 32), converted by the core as x = raw * scale + shift.  The
 * checksum is the SHA-256 of the split's files in the order above.
 * get and label only read the mapped files, so they are thread-safe.
 *
 * The checks work on buffers (cifar_check, cifar_names), so that the
 * fuzz harness tests/fuzz/fuzz_cifar.c (which includes this file)
 * reaches them without files.
 * What this is not: a reader of the Python (pickle) or MATLAB versions.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <mltk/plugin.h>

#include "mapfile.h"
#include "sha256.h"

#define CIFAR_PIXELS   3072          /* 3 x 32 x 32 */
#define CIFAR_MAX_FILES 5

/* ---- the checks, on buffers ----------------------------------------------- */

/* How the records of a variant are laid out. */
typedef struct cifar_layout {
    int variant;      /* 10 or 100 */
    int record;       /* bytes per record: 3073 or 3074 */
    int label_at;     /* offset of the label used in a record */
    int n_classes;    /* its range */
} cifar_layout;

static cifar_layout cifar_layout_of(int variant, int coarse)
{
    cifar_layout l;

    l.variant = variant;
    if (variant == 10) {
        l.record = 1 + CIFAR_PIXELS;
        l.label_at = 0;
        l.n_classes = 10;
    } else {
        l.record = 2 + CIFAR_PIXELS;
        l.label_at = coarse ? 0 : 1;
        l.n_classes = coarse ? 20 : 100;
    }
    return l;
}

/* Check the file buf (size bytes, named path in messages): a whole,
 * non-zero number of records, and every label in range.  MLTK_OK and
 * *records, or MLTK_ERR_DATA with a message naming path and the byte
 * offset.  (CIFAR-100's other label byte is checked too: a coarse label
 * must be < 20 and a fine one < 100 whichever is used.) */
static int cifar_check(const uint8_t *buf, int64_t size, const cifar_layout *l,
                       const char *path, int64_t *records, char **err)
{
    int64_t n = size / l->record, r;

    *records = 0;
    if (size % l->record)
        return mltk_errf(err, MLTK_ERR_DATA,
                         "%s: partial record at byte %lld: %lld bytes are not a whole "
                         "number of %d-byte CIFAR-%d records", path,
                         (long long)(n * l->record), (long long)size, l->record,
                         l->variant);
    if (n == 0)
        return mltk_errf(err, MLTK_ERR_DATA, "%s: empty file (at byte 0)", path);
    for (r = 0; r < n; r++) {
        const uint8_t *rec = buf + r * l->record;
        if (l->variant == 10) {
            if (rec[0] >= 10)
                return mltk_errf(err, MLTK_ERR_DATA,
                                 "%s: label %u of record %lld (at byte %lld) is out of "
                                 "range: CIFAR-10 has 10 classes", path, rec[0],
                                 (long long)r, (long long)(r * l->record));
        } else {
            if (rec[0] >= 20)
                return mltk_errf(err, MLTK_ERR_DATA,
                                 "%s: coarse label %u of record %lld (at byte %lld) is "
                                 "out of range: CIFAR-100 has 20 superclasses", path,
                                 rec[0], (long long)r, (long long)(r * l->record));
            if (rec[1] >= 100)
                return mltk_errf(err, MLTK_ERR_DATA,
                                 "%s: fine label %u of record %lld (at byte %lld) is "
                                 "out of range: CIFAR-100 has 100 classes", path,
                                 rec[1], (long long)r, (long long)(r * l->record + 1));
        }
    }
    *records = n;
    return MLTK_OK;
}

/* The class names in text (size bytes, named path): one per line, the
 * line's trailing blanks and CR dropped, empty lines skipped (the files
 * end with some).  Exactly `want` names: MLTK_OK and *names (want + 1
 * pointers, NULL-terminated, one malloc()ed block the caller frees), or
 * MLTK_ERR_DATA naming path and the line. */
static int cifar_names(char ***names, const uint8_t *text, int64_t size, int want,
                       const char *path, char **err)
{
    int64_t i, start, end, total = 0;
    int count = 0, line = 0, pass;
    char **out = NULL, *dst = NULL;

    *names = NULL;
    for (pass = 0; pass < 2; pass++) {
        count = 0;
        line = 0;
        for (start = 0; start < size; start = end + 1) {
            int64_t len;
            for (end = start; end < size && text[end] != '\n'; end++)
                ;
            line++;
            len = end - start;
            while (len > 0 && (text[start + len - 1] == '\r' || text[start + len - 1] == ' ' ||
                               text[start + len - 1] == '\t'))
                len--;
            if (len == 0)
                continue;
            for (i = start; i < start + len; i++)
                if (text[i] < 0x20 || text[i] == 0x7f) {
                    free(out);
                    return mltk_errf(err, MLTK_ERR_DATA,
                                     "%s:%d: a control character (byte %lld) in a "
                                     "class name", path, line, (long long)i);
                }
            if (count == want) {
                free(out);
                return mltk_errf(err, MLTK_ERR_DATA,
                                 "%s:%d: more than %d class names", path, line, want);
            }
            if (pass == 0) {
                total += len + 1;
            } else {
                out[count] = dst;
                memcpy(dst, text + start, (size_t)len);
                dst[len] = '\0';
                dst += len + 1;
            }
            count++;
        }
        if (count < want)
            return mltk_errf(err, MLTK_ERR_DATA, "%s:%d: %d class names, expected %d",
                             path, line ? line : 1, count, want);
        if (pass == 0) {
            out = malloc(sizeof(char *) * (size_t)(want + 1) + (size_t)total);
            if (!out)
                return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", path);
            dst = (char *)(out + want + 1);
            out[want] = NULL;
        }
    }
    *names = out;
    return MLTK_OK;
}

/* ---- files ---------------------------------------------------------------- */

static char *cifar_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);

    if (!p)
        return NULL;
    if (a == 0) {
        memcpy(p, name, b + 1);
        return p;
    }
    memcpy(p, dir, a);
    if (dir[a - 1] != '/')
        p[a++] = '/';
    memcpy(p + a, name, b + 1);
    return p;
}

/* ---- the data set --------------------------------------------------------- */

typedef struct cifar_set {
    cifar_layout l;
    int          n_files;
    void        *map[CIFAR_MAX_FILES];
    size_t       len[CIFAR_MAX_FILES];
    int64_t      first[CIFAR_MAX_FILES + 1];  /* first sample of each file, then n */
    int64_t      n;
    double       scale, shift;
    char       **names;                       /* n_classes names, or NULL */
    char         checksum[65];
} cifar_set;

static void cifar_close(void *self)
{
    cifar_set *s = self;
    int f;

    if (!s)
        return;
    for (f = 0; f < s->n_files; f++)
        if (s->map[f])
            munmap(s->map[f], s->len[f]);
    free(s->names);
    free(s);
}

/* Read the optional names file dir/name into s->names. */
static int cifar_load_names(cifar_set *s, const char *dir, const char *name, char **err)
{
    char *path = cifar_join(dir, name);
    void *map = NULL;
    size_t len = 0;
    int rc;

    if (!path)
        return mltk_errf(err, MLTK_ERR_NOMEM, "cifar: out of memory");
    if (access(path, F_OK) != 0) {
        free(path);
        return MLTK_OK;
    }
    rc = mapfile(path, &map, &len, err);
    if (rc == MLTK_OK)
        rc = cifar_names(&s->names, map ? map : (const void *)"", (int64_t)len,
                         s->l.n_classes, path, err);
    if (map)
        munmap(map, len);
    free(path);
    return rc;
}

static int cifar_open(void **self, const mltk_params_t *params, const char *split,
                      char **err)
{
    static const char *const train10[] = { "data_batch_1.bin", "data_batch_2.bin",
                                           "data_batch_3.bin", "data_batch_4.bin",
                                           "data_batch_5.bin" };
    static const char *const test10[] = { "test_batch.bin" };
    static const char *const train100[] = { "train.bin" };
    static const char *const test100[] = { "test.bin" };
    const char *dir = mltk_params_str(params, "path");
    int variant = strcmp(mltk_params_str(params, "variant"), "100") == 0 ? 100 : 10;
    int coarse = strcmp(mltk_params_str(params, "label"), "coarse") == 0;
    const char *const *files;
    int n_files, f, rc, is_test;
    char *path = NULL;
    cifar_set *s = NULL;
    sha256 sha;

    *self = NULL;
    if (!split || (strcmp(split, "train") && strcmp(split, "test")))
        return mltk_errf(err, MLTK_ERR_INVALID,
                         "cifar: unknown split '%s' (expected train or test)",
                         split ? split : "(null)");
    is_test = strcmp(split, "test") == 0;
    if (variant == 10) {
        files = is_test ? test10 : train10;
        n_files = is_test ? 1 : 5;
    } else {
        files = is_test ? test100 : train100;
        n_files = 1;
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        return mltk_errf(err, MLTK_ERR_NOMEM, "cifar: out of memory");
    s->l = cifar_layout_of(variant, coarse);
    s->scale = mltk_params_float(params, "scale");
    s->shift = mltk_params_float(params, "shift");
    sha256_init(&sha);
    for (f = 0; f < n_files; f++) {
        int64_t records;
        path = cifar_join(dir ? dir : "", files[f]);
        if (!path) {
            rc = mltk_errf(err, MLTK_ERR_NOMEM, "cifar: out of memory");
            goto out;
        }
        rc = mapfile(path, &s->map[f], &s->len[f], err);
        if (rc)
            goto out;
        s->n_files = f + 1;
        rc = cifar_check(s->map[f], (int64_t)s->len[f], &s->l, path, &records, err);
        if (rc)
            goto out;
        sha256_update(&sha, s->map[f], s->len[f]);
        s->first[f + 1] = s->first[f] + records;
        free(path);
        path = NULL;
    }
    s->n = s->first[n_files];
    sha256_final(&sha, s->checksum);
    rc = cifar_load_names(s, dir ? dir : "",
                          variant == 10 ? "batches.meta.txt"
                          : coarse ? "coarse_label_names.txt" : "fine_label_names.txt",
                          err);
    if (rc)
        goto out;
    *self = s;
    s = NULL;
out:
    free(path);
    cifar_close(s);
    return rc;
}

static int cifar_info(void *self, mltk_dataset_info *info)
{
    const cifar_set *s = self;
    const int64_t d[3] = { 3, 32, 32 };

    memset(info, 0, sizeof(*info));
    info->n = s->n;
    info->x_shape = mltk_shape_make(3, d);
    info->target = MLTK_TARGET_CLASS;
    info->n_classes = s->l.n_classes;
    memcpy(info->checksum, s->checksum, sizeof(info->checksum));
    info->x_dtype = MLTK_U8;
    info->x_scale = s->scale;
    info->x_shift = s->shift;
    info->class_names = (const char *const *)s->names;
    return MLTK_OK;
}

/* The record of sample i, or NULL (and *err) when i is out of range. */
static const uint8_t *cifar_record(const cifar_set *s, int64_t i, char **err)
{
    int f;

    if (i < 0 || i >= s->n) {
        mltk_errf(err, MLTK_ERR_INVALID, "cifar: sample %lld is outside the %lld of this "
                  "split", (long long)i, (long long)s->n);
        return NULL;
    }
    for (f = 0; i >= s->first[f + 1]; f++)
        ;
    return (const uint8_t *)s->map[f] + (i - s->first[f]) * s->l.record;
}

/* sample i -> x (3, 32, 32) uint8, y its class */
static int cifar_get(void *self, int64_t i, void *x, void *y, char **err)
{
    const cifar_set *s = self;
    const uint8_t *rec = cifar_record(s, i, err);

    if (!rec)
        return MLTK_ERR_INVALID;
    if (x)
        memcpy(x, rec + s->l.record - CIFAR_PIXELS, CIFAR_PIXELS);
    if (y)
        *(int32_t *)y = rec[s->l.label_at];
    return MLTK_OK;
}

static int cifar_label(void *self, int64_t i, int32_t *y, char **err)
{
    return cifar_get(self, i, NULL, y, err);
}

/* samples [first, first+count) -> x (count, 3, 32, 32) float32, y (count) */
static int cifar_read(void *self, int64_t first, int64_t count, float *x, void *y,
                      char **err)
{
    const cifar_set *s = self;
    int32_t *yi = y;
    int64_t i;
    int k;

    if (first < 0 || count < 0 || first > s->n || count > s->n - first)
        return mltk_errf(err, MLTK_ERR_INVALID,
                         "cifar: samples [%lld, %lld) are outside the %lld of this split",
                         (long long)first, (long long)(first + count), (long long)s->n);
    for (i = 0; i < count; i++) {
        const uint8_t *rec = cifar_record(s, first + i, err);
        const uint8_t *px = rec + s->l.record - CIFAR_PIXELS;
        if (x)
            for (k = 0; k < CIFAR_PIXELS; k++)
                x[i * CIFAR_PIXELS + k] = (float)(px[k] * s->scale + s->shift);
        if (yi)
            yi[i] = rec[s->l.label_at];
    }
    return MLTK_OK;
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_dataset_i cifar_iface = {
    .size = sizeof(struct mltk_dataset_i),
    .open = cifar_open,
    .close = cifar_close,
    .info = cifar_info,
    .read = cifar_read,
    .get = cifar_get,
    .label = cifar_label,
};

MLTK_PLUGIN(cifar, MLTK_KIND_DATASET, &cifar_iface)
