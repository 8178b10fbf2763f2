/* check_idx.c - the idx dataset plugin: good files and every kind of bad one.
 *
 * What this is: small IDX files (plain and gzipped) are written into a
 * fresh temporary directory per test, opened through the plugin as the core
 * would (params built against its descriptor), and read back: values after
 * scaling, the data set info and the checksum (the SHA-256 of the
 * decompressed images file followed by the labels file, computed for these
 * bytes independently).  Damaged files - truncated, wrong magic or type,
 * counts that disagree, trailing bytes, labels out of range, corrupt gzip,
 * a missing file - must each fail with a message naming the file and,
 * where there is one, the byte offset.  Class labels are also checked
 * where the core loads a split (mltk_split_load), once, so that the ops
 * that read them need not: a label out of range never reaches a step.
 * When Fashion-MNIST is installed it is read too.
 *
 * What this is not: a test of the data pipeline (batching, shuffling),
 * which is the core's.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "session.h"
#include "dsfixture.h"

/* ---- fixture: registry, plugin and a temporary directory ------------------ */

static void fixture_open(void)
{
    dsfix_open("idx", "check_idx");
}

static void fixture_close(void)
{
    dsfix_close();
}

/* ---- writing test files --------------------------------------------------- */

enum { N = 5, ROWS = 3, COLS = 4, PIX = ROWS * COLS };
static const uint8_t good_labels[N] = { 3, 0, 7, 1, 7 };

/* SHA-256 of the 76-byte images file followed by the 13-byte labels file,
 * as written by make_images / make_labels below (computed with an
 * independent implementation) */
static const char good_checksum[] =
    "5206e549a7d971927fd9158ceb904a2aa29bc321b25cec35b9fbafb7ab28a47d";

static uint8_t pixel(int i)
{
    return (uint8_t)((i * 37 + 11) % 256);
}

/* An IDX file: 00 00 <type> <ndim>, big-endian dims, then the data.
 * Returns the length written into buf. */
static size_t make_idx(uint8_t *buf, uint8_t type, int ndim, const uint32_t *dims,
                       const uint8_t *data, size_t n)
{
    size_t len = 0;

    buf[len++] = 0;
    buf[len++] = 0;
    buf[len++] = type;
    buf[len++] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++) {
        buf[len++] = (uint8_t)(dims[i] >> 24);
        buf[len++] = (uint8_t)(dims[i] >> 16);
        buf[len++] = (uint8_t)(dims[i] >> 8);
        buf[len++] = (uint8_t)dims[i];
    }
    memcpy(buf + len, data, n);
    return len + n;
}

static size_t make_images(uint8_t *buf)
{
    uint32_t dims[3] = { N, ROWS, COLS };
    uint8_t data[N * PIX];

    for (int i = 0; i < N * PIX; i++)
        data[i] = pixel(i);
    return make_idx(buf, 0x08, 3, dims, data, sizeof(data));
}

static size_t make_labels(uint8_t *buf, int n, const uint8_t *labels)
{
    uint32_t d = (uint32_t)n;
    return make_idx(buf, 0x08, 1, &d, labels, (size_t)n);
}

static void write_gz(const char *name, const void *data, size_t n)
{
    gzFile f = gzopen(path_of(name), "wb9");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gzwrite(f, data, (unsigned)n), (int)n);
    ck_assert_int_eq(gzclose(f), Z_OK);
}

static size_t read_plain(const char *name, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path_of(name), "rb");
    size_t n;

    ck_assert_ptr_nonnull(f);
    n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

/* the good pair, plain: img.idx / lab.idx; gzipped: img.gz / lab.gz */
static void write_good(void)
{
    uint8_t img[256], lab[64];
    size_t ni = make_images(img), nl = make_labels(lab, N, good_labels);

    write_bytes("img.idx", img, ni);
    write_bytes("lab.idx", lab, nl);
    write_gz("img.gz", img, ni);
    write_gz("lab.gz", lab, nl);
}

/* ---- opening through the plugin ------------------------------------------ */

/* Open `split` with the given images/labels files and extra key/value
 * pairs; returns open's status. */
static int open_with(void **self, const char *split, const char *images,
                     const char *labels, int n_extra, const char *const *ek,
                     const char *const *ev, char **err)
{
    const char *keys[12], *vals[12];
    int n = 0, test = strcmp(split, "test") == 0, rc;
    mltk_params_t *p = NULL;

    keys[n] = "path";
    vals[n++] = dir;
    keys[n] = test ? "test_images" : "train_images";
    vals[n++] = images;
    keys[n] = test ? "test_labels" : "train_labels";
    vals[n++] = labels;
    for (int i = 0; i < n_extra; i++) {
        keys[n] = ek[i];
        vals[n++] = ev[i];
    }
    rc = mltk_params_build(&p, &desc, 1, n, keys, vals, NULL, NULL, 0, "data (idx)", err);
    ck_assert_msg(rc == MLTK_OK, "params: %s", *err ? *err : "?");
    *self = NULL;
    rc = ds->open(self, p, split, err);
    mltk_params_free(p);   /* open must not keep the params */
    return rc;
}

/* Opening must fail with `status` and a message holding every substring. */
static void expect_error(const char *split, const char *images, const char *labels,
                         int n_extra, const char *const *ek, const char *const *ev,
                         int status, const char *s1, const char *s2, const char *s3)
{
    void *self = NULL;
    char *err = NULL;
    int rc = open_with(&self, split, images, labels, n_extra, ek, ev, &err);

    ck_assert_msg(rc == status, "status %d (%s), want %d; message: %s", rc,
                  mltk_status_str(rc), status, err ? err : "(none)");
    ck_assert_ptr_null(self);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(!s1 || strstr(err, s1), "message lacks '%s': %s", s1, err);
    ck_assert_msg(!s2 || strstr(err, s2), "message lacks '%s': %s", s2, err);
    ck_assert_msg(!s3 || strstr(err, s3), "message lacks '%s': %s", s3, err);
    free(err);
}

/* The good data as the plugin must present it. */
static void check_good(void *self, double scale, double shift)
{
    mltk_dataset_info info;
    float x[N * PIX];
    int32_t y[N];
    char *err = NULL;

    ck_assert_int_eq(ds->info(self, &info), MLTK_OK);
    ck_assert_int_eq(info.n, N);
    ck_assert_int_eq(info.x_shape.ndim, 3);
    ck_assert_int_eq(info.x_shape.dim[0], 1);
    ck_assert_int_eq(info.x_shape.dim[1], ROWS);
    ck_assert_int_eq(info.x_shape.dim[2], COLS);
    ck_assert_int_eq(info.target, MLTK_TARGET_CLASS);
    ck_assert_int_eq(info.y_shape.ndim, 0);
    ck_assert_int_eq(info.n_classes, 8);   /* the largest label is 7 */
    ck_assert_str_eq(info.checksum, good_checksum);

    ck_assert_int_eq(ds->read(self, 0, N, x, y, &err), MLTK_OK);
    for (int i = 0; i < N * PIX; i++)
        ck_assert_msg(fabs(x[i] - ((double)pixel(i) * scale + shift)) < 1e-5,
                      "x[%d] = %g, want %g", i, (double)x[i], pixel(i) * scale + shift);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(y[i], good_labels[i]);

    /* a window in the middle */
    memset(x, 0, sizeof(x));
    ck_assert_int_eq(ds->read(self, 2, 3, x, y, &err), MLTK_OK);
    for (int i = 0; i < 3 * PIX; i++)
        ck_assert(fabs(x[i] - ((double)pixel(2 * PIX + i) * scale + shift)) < 1e-5);
    ck_assert_int_eq(y[0], 7);
    ck_assert_int_eq(y[1], 1);
    ck_assert_int_eq(y[2], 7);
    ck_assert_int_eq(ds->read(self, 5, 0, x, y, &err), MLTK_OK);

    /* past the end */
    ck_assert_int_eq(ds->read(self, 4, 2, x, y, &err), MLTK_ERR_INVALID);
    ck_assert_msg(err && strstr(err, "[4, 6)"), "message: %s", err);
    free(err);
    err = NULL;
    ck_assert_int_eq(ds->read(self, -1, 1, x, y, &err), MLTK_ERR_INVALID);
    free(err);
    err = NULL;

    /* ABI 2.1: bytes as stored, the conversion in the info, one sample
     * at a time */
    ck_assert_int_eq(info.x_dtype, MLTK_U8);
    ck_assert(fabs(info.x_scale - scale) < 1e-7 && fabs(info.x_shift - shift) < 1e-7);
    ck_assert_ptr_null(info.class_names);
    for (int i = 0; i < N; i++) {
        uint8_t xb[PIX];
        int32_t yi = -1, yl = -1;
        ck_assert_int_eq(ds->get(self, i, xb, &yi, &err), MLTK_OK);
        for (int k = 0; k < PIX; k++)
            ck_assert_uint_eq(xb[k], pixel(i * PIX + k));
        ck_assert_int_eq(yi, good_labels[i]);
        ck_assert_int_eq(ds->label(self, i, &yl, &err), MLTK_OK);
        ck_assert_int_eq(yl, good_labels[i]);
    }
    {
        uint8_t xb[PIX];
        int32_t yi;
        ck_assert_int_eq(ds->get(self, N, xb, &yi, &err), MLTK_ERR_INVALID);
        ck_assert_msg(err && strstr(err, "sample 5 is outside the 5"), "message: %s", err);
        free(err);
        err = NULL;
        ck_assert_int_eq(ds->label(self, -1, &yi, &err), MLTK_ERR_INVALID);
        free(err);
    }
}

/* ---- good files ----------------------------------------------------------- */

START_TEST(test_plain)
{
    const char *ek[] = { "scale", "shift" }, *ev[] = { "0.5", "-1" };
    void *self = NULL;
    char *err = NULL;

    write_good();
    ck_assert_msg(open_with(&self, "train", "img.idx", "lab.idx", 2, ek, ev, &err) == MLTK_OK,
                  "open: %s", err);
    check_good(self, 0.5, -1.0);
    ds->close(self);
}
END_TEST

START_TEST(test_gzip)
{
    void *self = NULL;
    char *err = NULL;

    write_good();
    /* default scale 1/255, shift 0; the test split's keys */
    ck_assert_msg(open_with(&self, "test", "img.gz", "lab.gz", 0, NULL, NULL, &err) == MLTK_OK,
                  "open: %s", err);
    check_good(self, 1.0 / 255.0, 0.0);
    ds->close(self);

    /* gzipped images with plain labels, and an absolute file name */
    ck_assert_msg(open_with(&self, "train", path_of("img.gz"), "lab.idx", 0, NULL, NULL,
                            &err) == MLTK_OK, "open: %s", err);
    check_good(self, 1.0 / 255.0, 0.0);
    ds->close(self);
}
END_TEST

START_TEST(test_flat_images)
{
    uint8_t img[256], lab[64], data[N * 6];
    uint32_t dims[2] = { N, 6 };
    mltk_dataset_info info;
    const char *ek[] = { "n_classes" }, *ev[] = { "10" };
    void *self = NULL;
    char *err = NULL;
    float x[N * 6];

    for (int i = 0; i < N * 6; i++)
        data[i] = (uint8_t)(255 - i);
    write_bytes("flat.idx", img, make_idx(img, 0x08, 2, dims, data, sizeof(data)));
    write_bytes("lab.idx", lab, make_labels(lab, N, good_labels));
    ck_assert_msg(open_with(&self, "train", "flat.idx", "lab.idx", 1, ek, ev, &err) == MLTK_OK,
                  "open: %s", err);
    ck_assert_int_eq(ds->info(self, &info), MLTK_OK);
    ck_assert_int_eq(info.x_shape.ndim, 1);
    ck_assert_int_eq(info.x_shape.dim[0], 6);
    ck_assert_int_eq(info.n_classes, 10);   /* as configured, not 8 */
    ck_assert_int_eq(strlen(info.checksum), 64);
    ck_assert_str_ne(info.checksum, good_checksum);
    ck_assert_int_eq(ds->read(self, 0, N, x, NULL, &err), MLTK_OK);
    ck_assert_float_eq_tol(x[0], 1.0f, 1e-6f);
    ck_assert_float_eq_tol(x[29], 226.0f / 255.0f, 1e-6f);
    ds->close(self);
}
END_TEST

/* The real data set, when it is installed. */
START_TEST(test_fashion_mnist)
{
    static const char fm[] = "/usr/share/datasets/fashion-mnist";
    char probe[256];
    mltk_params_t *p = NULL;
    mltk_dataset_info info;
    void *self = NULL;
    char *err = NULL;
    float *x;
    int32_t y[100];
    int counts[10] = { 0 };

    snprintf(probe, sizeof(probe), "%s/t10k-images-idx3-ubyte.gz", fm);
    if (access(probe, R_OK) != 0) {
        fprintf(stderr, "check_idx: %s not installed, Fashion-MNIST test skipped\n", fm);
        return;
    }
    /* every default: the installed directory and file names */
    ck_assert_int_eq(mltk_params_build(&p, &desc, 1, 0, NULL, NULL, NULL, NULL, 0,
                                       "data (idx)", &err), MLTK_OK);
    ck_assert_msg(ds->open(&self, p, "test", &err) == MLTK_OK, "open: %s", err);
    ck_assert_int_eq(ds->info(self, &info), MLTK_OK);
    ck_assert_int_eq(info.n, 10000);
    ck_assert_int_eq(info.x_shape.ndim, 3);
    ck_assert_int_eq(info.x_shape.dim[0], 1);
    ck_assert_int_eq(info.x_shape.dim[1], 28);
    ck_assert_int_eq(info.x_shape.dim[2], 28);
    ck_assert_int_eq(info.n_classes, 10);
    ck_assert_int_eq(strlen(info.checksum), 64);
    x = malloc(100 * 784 * sizeof(float));
    ck_assert_int_eq(ds->read(self, 9900, 100, x, y, &err), MLTK_OK);
    for (int i = 0; i < 100 * 784; i++)
        ck_assert(x[i] >= 0.0f && x[i] <= 1.0f);
    for (int i = 0; i < 100; i++) {
        ck_assert(y[i] >= 0 && y[i] < 10);
        counts[y[i]]++;
    }
    {
        int seen = 0;
        for (int c = 0; c < 10; c++)
            seen += counts[c] > 0;
        ck_assert_int_ge(seen, 5);   /* a real mix of classes, not one value */
    }
    free(x);
    ds->close(self);
    self = NULL;
    ck_assert_msg(ds->open(&self, p, "train", &err) == MLTK_OK, "open: %s", err);
    ck_assert_int_eq(ds->info(self, &info), MLTK_OK);
    ck_assert_int_eq(info.n, 60000);
    ck_assert_int_eq(info.n_classes, 10);
    ds->close(self);
    mltk_params_free(p);
}
END_TEST

/* ---- damaged files -------------------------------------------------------- */

START_TEST(test_truncated)
{
    uint8_t img[256], buf[512];
    size_t ni = make_images(img), nz;

    write_good();
    /* plain: 7 bytes short of 16 + 60 */
    write_bytes("short.idx", img, ni - 7);
    expect_error("train", "short.idx", "lab.idx", 0, NULL, NULL, MLTK_ERR_DATA,
                 path_of("short.idx"), "truncated at byte 69 (expected 60 bytes of data)", NULL);
    /* gzipped, a complete stream of too little data */
    write_gz("short.gz", img, ni - 7);
    expect_error("train", "short.gz", "lab.idx", 0, NULL, NULL, MLTK_ERR_DATA,
                 path_of("short.gz"), "truncated at byte 69 of the decompressed data",
                 "expected 60 bytes of data");
    /* gzipped, the compressed stream itself cut short */
    nz = read_plain("img.gz", buf, sizeof(buf));
    ck_assert_uint_gt(nz, 30);
    write_bytes("cut.gz", buf, nz / 2);
    expect_error("train", "cut.gz", "lab.idx", 0, NULL, NULL, MLTK_ERR_DATA,
                 path_of("cut.gz"), "truncated at byte", "gzip stream ends early");
    /* in the header */
    write_bytes("head.idx", img, 6);
    expect_error("train", "head.idx", "lab.idx", 0, NULL, NULL, MLTK_ERR_DATA,
                 path_of("head.idx"), "truncated at byte 6", "16-byte header");
    write_bytes("empty.idx", img, 0);
    expect_error("train", "empty.idx", "lab.idx", 0, NULL, NULL, MLTK_ERR_DATA,
                 path_of("empty.idx"), "truncated at byte 0", NULL);
    /* a header promising far more than the file holds: no huge allocation */
    img[4] = 0x00; img[5] = 0x0f; img[6] = 0x42; img[7] = 0x40;   /* 1000000 images */
    write_bytes("many.idx", img, ni);
    expect_error("train", "many.idx", "lab.idx", 0, NULL, NULL, MLTK_ERR_DATA,
                 path_of("many.idx"), "truncated at byte 76 (expected 12000000 bytes of data)",
                 NULL);
    memset(img + 4, 0xff, 12);
    write_bytes("huge.idx", img, ni);
    expect_error("train", "huge.idx", "lab.idx", 0, NULL, NULL, MLTK_ERR_DATA,
                 path_of("huge.idx"), "corrupt", NULL);
}
END_TEST

START_TEST(test_trailing)
{
    uint8_t img[256], lab[64];
    size_t ni = make_images(img), nl = make_labels(lab, N, good_labels);

    write_good();
    memcpy(img + ni, "xyz", 3);
    write_bytes("long.idx", img, ni + 3);
    expect_error("train", "long.idx", "lab.idx", 0, NULL, NULL, MLTK_ERR_DATA,
                 path_of("long.idx"), "trailing data at byte 76",
                 "after 60 bytes of data");
    lab[nl] = 9;
    write_gz("long.gz", lab, nl + 1);
    expect_error("train", "img.idx", "long.gz", 0, NULL, NULL, MLTK_ERR_DATA,
                 path_of("long.gz"), "trailing data at byte 13 of the decompressed data",
                 NULL);
}
END_TEST

START_TEST(test_bad_magic)
{
    uint8_t img[256], lab[64];
    size_t ni = make_images(img), nl = make_labels(lab, N, good_labels);

    write_good();
    img[0] = 0x12;
    img[1] = 0x34;
    write_bytes("magic.idx", img, ni);
    expect_error("train", "magic.idx", "lab.idx", 0, NULL, NULL, MLTK_ERR_DATA,
                 path_of("magic.idx"), "bad magic 12 34 08 03 at byte 0", NULL);
    img[0] = img[1] = 0;
    img[2] = 0x0d;   /* float elements */
    write_bytes("type.idx", img, ni);
    expect_error("train", "type.idx", "lab.idx", 0, NULL, NULL, MLTK_ERR_DATA,
                 path_of("type.idx"), "element type 0x0d at byte 2", NULL);
    /* labels with the images' header: 3 dimensions */
    img[2] = 0x08;
    write_bytes("lab3.idx", img, ni);
    expect_error("train", "img.idx", "lab3.idx", 0, NULL, NULL, MLTK_ERR_DATA,
                 path_of("lab3.idx"), "3 dimensions at byte 3", "labels");
    /* images with the labels' header: 1 dimension */
    write_bytes("img1.idx", lab, nl);
    expect_error("train", "img1.idx", "lab.idx", 0, NULL, NULL, MLTK_ERR_DATA,
                 path_of("img1.idx"), "1 dimensions at byte 3", "images");
    /* no samples */
    lab[7] = 0;
    write_bytes("lab0.idx", lab, 8);
    expect_error("train", "img.idx", "lab0.idx", 0, NULL, NULL, MLTK_ERR_DATA,
                 path_of("lab0.idx"), "dimension 0 (at byte 4) is 0", "no samples");
}
END_TEST

START_TEST(test_count_mismatch)
{
    uint8_t lab[64];

    write_good();
    write_bytes("lab4.idx", lab, make_labels(lab, 4, good_labels));
    expect_error("train", "img.idx", "lab4.idx", 0, NULL, NULL, MLTK_ERR_DATA,
                 path_of("lab4.idx"), "holds 4 labels", "holds 5 images");
}
END_TEST

START_TEST(test_label_range)
{
    const char *ek[] = { "n_classes" }, *ev5[] = { "5" }, *ev8[] = { "8" };
    void *self = NULL;
    char *err = NULL;

    write_good();
    /* sample 2 holds label 7, at byte 8 + 2 */
    expect_error("train", "img.idx", "lab.gz", 1, ek, ev5, MLTK_ERR_DATA,
                 path_of("lab.gz"), "label 7 of sample 2 (at byte 10) is out of range",
                 "n_classes = 5");
    ck_assert_msg(open_with(&self, "train", "img.idx", "lab.idx", 1, ek, ev8, &err) == MLTK_OK,
                  "open: %s", err);
    ds->close(self);
}
END_TEST

/* The core's loading of a split (data.c) with the cpu backend: labels
 * outside the declared classes refuse the split before anything is
 * uploaded (the cross-entropy op no longer checks them on each step);
 * labels inside are loaded, and the largest is recorded where it first
 * appears. */
static int load_split(mltk_split *sp, const char *n_classes, char **err)
{
    char *cfg_path = path_of("train.ini");
    FILE *f = fopen(cfg_path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "[data]\ntype = idx\npath = %s\ntrain_images = img.idx\n"
            "train_labels = lab.idx\ntest_images = img.idx\ntest_labels = lab.idx\n"
            "n_classes = %s\n"
            "[layer.out]\ntype = dense\nunits = 8\n"
            "[loss]\ntype = cross_entropy\n[optimizer]\ntype = sgd\n", dir, n_classes);
    ck_assert_int_eq(fclose(f), 0);
    mltk_config_t *cfg = NULL;
    int rc = mltk_config_load(&cfg, reg, cfg_path, err);
    ck_assert_msg(rc == MLTK_OK, "config: %s", *err ? *err : "?");
    /* the whole session opens the data (data.c) on the cpu backend */
    mltk_session_t *s = NULL;
    mltk_session_opts o = { .quiet = 1 };
    rc = mltk_session_create(&s, cfg, reg, &o, err);
    if (rc == MLTK_OK) {
        /* nothing of the split is needed beyond its counters */
        sp->label_max = s->train.label_max;
        sp->label_max_at = s->train.label_max_at;
        sp->n = s->train.n;
    }
    mltk_session_destroy(s);
    mltk_config_destroy(cfg);
    return rc;
}

START_TEST(test_label_range_load)
{
    mltk_split sp;
    char *err = NULL;

    write_good();
    /* sample 2 holds label 7 */
    ck_assert_int_eq(load_split(&sp, "5", &err), MLTK_ERR_DATA);
    ck_assert_msg(err && strstr(err, "label 7") && strstr(err, "sample 2"), "message: %s",
                  err ? err : "(none)");
    free(err);
    err = NULL;
    ck_assert_msg(load_split(&sp, "8", &err) == MLTK_OK, "load: %s", err ? err : "?");
    ck_assert_int_eq(sp.n, N);
    ck_assert_int_eq(sp.label_max, 7);
    ck_assert_int_eq(sp.label_max_at, 2);
}
END_TEST

START_TEST(test_missing)
{
    char want[4300];

    write_good();
    snprintf(want, sizeof(want), "cannot open %s: No such file or directory",
             path_of("nope.gz"));
    expect_error("train", "nope.gz", "lab.idx", 0, NULL, NULL, MLTK_ERR_IO, want, NULL, NULL);
    snprintf(want, sizeof(want), "cannot open %s: No such file or directory",
             path_of("nope.idx"));
    expect_error("test", "img.gz", "nope.idx", 0, NULL, NULL, MLTK_ERR_IO, want, NULL, NULL);
    ck_assert_int_eq(mkdir(path_of("sub"), 0700), 0);
    expect_error("train", "sub", "lab.idx", 0, NULL, NULL, MLTK_ERR_IO,
                 "cannot open", path_of("sub"), NULL);
}
END_TEST

START_TEST(test_corrupt_gzip)
{
    uint8_t buf[512];
    size_t nz;

    write_good();
    /* a wrong CRC-32 in the trailer */
    nz = read_plain("img.gz", buf, sizeof(buf));
    buf[nz - 8] ^= 0x5a;
    write_bytes("crc.gz", buf, nz);
    expect_error("train", "crc.gz", "lab.idx", 0, NULL, NULL, MLTK_ERR_DATA,
                 path_of("crc.gz"), "corrupt gzip data", NULL);
    /* an unknown compression method in the header */
    buf[nz - 8] ^= 0x5a;
    buf[2] = 7;
    write_bytes("method.gz", buf, nz);
    expect_error("train", "method.gz", "lab.idx", 0, NULL, NULL, MLTK_ERR_DATA,
                 path_of("method.gz"), "corrupt gzip data", NULL);
    /* garbage in the middle of the deflate stream */
    buf[2] = 8;
    memset(buf + 12, 0xff, 16);
    write_bytes("mid.gz", buf, nz);
    expect_error("train", "mid.gz", "lab.idx", 0, NULL, NULL, MLTK_ERR_DATA,
                 path_of("mid.gz"), NULL, NULL);
}
END_TEST

START_TEST(test_bad_split)
{
    mltk_params_t *p = NULL;
    void *self = NULL;
    char *err = NULL;

    ck_assert_int_eq(mltk_params_build(&p, &desc, 1, 0, NULL, NULL, NULL, NULL, 0,
                                       "data (idx)", &err), MLTK_OK);
    ck_assert_int_eq(ds->open(&self, p, "valid", &err), MLTK_ERR_INVALID);
    ck_assert_msg(err && strstr(err, "'valid'"), "message: %s", err);
    ck_assert_ptr_null(self);
    free(err);
    mltk_params_free(p);
}
END_TEST

/* ---- suite ---------------------------------------------------------------- */

static Suite *idx_suite(void)
{
    Suite *s = suite_create("idx");
    TCase *tc = tcase_create("files");

    tcase_add_checked_fixture(tc, fixture_open, fixture_close);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_plain);
    tcase_add_test(tc, test_gzip);
    tcase_add_test(tc, test_flat_images);
    tcase_add_test(tc, test_fashion_mnist);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_trailing);
    tcase_add_test(tc, test_bad_magic);
    tcase_add_test(tc, test_count_mismatch);
    tcase_add_test(tc, test_label_range);
    tcase_add_test(tc, test_label_range_load);
    tcase_add_test(tc, test_missing);
    tcase_add_test(tc, test_corrupt_gzip);
    tcase_add_test(tc, test_bad_split);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(idx_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
