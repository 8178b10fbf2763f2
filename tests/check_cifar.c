/* check_cifar.c - the cifar dataset plugin: CIFAR-10 and CIFAR-100 files,
 * good and damaged.
 *
 * What this is: small files in the binary format (a few records each,
 * pixels from a formula) are written into a fresh temporary directory per
 * test and opened through the plugin as the core would (params built
 * against its descriptor).  Every sample is read back through get, label
 * and read and compared with its record, across the five training files
 * of CIFAR-10, also from 4 threads at once; the info (count, shape,
 * dtype, scale, classes and their names, checksum) is checked.  Damaged files - a partial record, a label
 * out of range, a missing or empty file, a names file with too few or too
 * many names - must fail with the exact message naming the file and the
 * byte offset (or line).
 * What this is not: a test on the real data set (not installed here) or
 * of the checks on arbitrary bytes (tests/fuzz/fuzz_cifar.c).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "session.h"
#include "dsfixture.h"

enum { PIX = 3072, REC10 = 3073, REC100 = 3074 };

/* ---- fixture -------------------------------------------------------------- */

static void fixture_open(void)
{
    dsfix_open("cifar", "check_cifar");
}

static void fixture_close(void)
{
    dsfix_close();
}

/* ---- records -------------------------------------------------------------- */

static uint8_t pixel(int seed, int k)
{
    return (uint8_t)((k * 37 + seed) % 256);
}

/* n records of CIFAR-`variant` into buf: labels lab (and coarse labels
 * crs for CIFAR-100), pixels from seeds seed0, seed0 + 1, ... */
static size_t make_records(uint8_t *buf, int variant, int n, const uint8_t *lab,
                           const uint8_t *crs, int seed0)
{
    size_t len = 0;

    for (int r = 0; r < n; r++) {
        if (variant == 100)
            buf[len++] = crs[r];
        buf[len++] = lab[r];
        for (int k = 0; k < PIX; k++)
            buf[len++] = pixel(seed0 + r, k);
    }
    return len;
}

/* The 5 training files of CIFAR-10 with 2, 1, 3, 1, 2 records (labels
 * train_lab in order, sample i from seed i) and the test file with 2
 * (labels 4, 7, seeds 100, 101). */
static const uint8_t train_lab[9] = { 0, 9, 3, 3, 5, 1, 8, 2, 6 };
static const int per_file[5] = { 2, 1, 3, 1, 2 };

/* SHA-256 of the test file's 6146 bytes (computed with an independent tool) */
static const char test_sha[] =
    "fdddeeceb41d7088168da2ce434011bdaf701234867c6b232fd8ad1d04a9f478";

static void write_cifar10(void)
{
    static uint8_t buf[4 * REC10];
    static const uint8_t test_lab[2] = { 4, 7 };
    char name[64];
    int i = 0;

    for (int f = 0; f < 5; f++) {
        snprintf(name, sizeof(name), "data_batch_%d.bin", f + 1);
        write_bytes(name, buf, make_records(buf, 10, per_file[f], train_lab + i, NULL, i));
        i += per_file[f];
    }
    write_bytes("test_batch.bin", buf, make_records(buf, 10, 2, test_lab, NULL, 100));
}

/* ---- opening through the plugin ------------------------------------------- */

static int open_kv(void **self, const char *split, const char *const *kv, char **err)
{
    const char *keys[12], *vals[12];
    mltk_params_t *p = NULL;
    int n = 0, rc;

    keys[n] = "path";
    vals[n++] = dir;
    for (; kv && kv[0]; kv += 2) {
        keys[n] = kv[0];
        vals[n++] = kv[1];
    }
    rc = mltk_params_build(&p, &desc, 1, n, keys, vals, NULL, NULL, 0, "data (cifar)", err);
    ck_assert_msg(rc == MLTK_OK, "params: %s", *err ? *err : "?");
    *self = NULL;
    rc = ds->open(self, p, split, err);
    mltk_params_free(p);   /* open must not keep the params */
    return rc;
}

static void expect_error(const char *split, const char *const *kv, int status,
                         const char *want)
{
    void *self = NULL;
    char *err = NULL;
    int rc = open_kv(&self, split, kv, &err);

    ck_assert_msg(rc == status, "status %d (%s), want %d; message: %s", rc,
                  mltk_status_str(rc), status, err ? err : "(none)");
    ck_assert_ptr_null(self);
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(err, want);
    free(err);
}

/* Sample i of the open split: x from seed seed0 + i, class lab[i]. */
static void check_samples(void *self, int n, const uint8_t *lab, int seed0, double scale,
                          double shift)
{
    static uint8_t x[PIX];
    static float xf[3 * PIX];
    int32_t y, yl, yr[3];
    char *err = NULL;

    for (int i = 0; i < n; i++) {
        memset(x, 0, sizeof(x));
        ck_assert_int_eq(ds->get(self, i, x, &y, &err), MLTK_OK);
        for (int k = 0; k < PIX; k++)
            ck_assert_msg(x[k] == pixel(seed0 + i, k), "sample %d byte %d: %u, want %u",
                          i, k, x[k], pixel(seed0 + i, k));
        ck_assert_int_eq(y, lab[i]);
        ck_assert_int_eq(ds->label(self, i, &yl, &err), MLTK_OK);
        ck_assert_int_eq(yl, lab[i]);
    }
    /* read: the first up to 3 samples as float32 */
    {
        int m = n < 3 ? n : 3;
        ck_assert_int_eq(ds->read(self, 0, m, xf, yr, &err), MLTK_OK);
        for (int i = 0; i < m; i++) {
            ck_assert_int_eq(yr[i], lab[i]);
            for (int k = 0; k < PIX; k += 97) {
                double want = pixel(seed0 + i, k) * scale + shift;
                ck_assert(fabs(xf[i * PIX + k] - want) < 1e-5);
            }
        }
    }
    ck_assert_int_eq(ds->get(self, n, x, &y, &err), MLTK_ERR_INVALID);
    ck_assert_msg(err && strstr(err, "outside the"), "message: %s", err ? err : "?");
    free(err);
    err = NULL;
    ck_assert_int_eq(ds->label(self, -1, &y, &err), MLTK_ERR_INVALID);
    free(err);
}

/* ---- good files ----------------------------------------------------------- */

START_TEST(test_cifar10)
{
    static const char names[] = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\n"
                                "horse\nship\ntruck\n\n";
    static const uint8_t test_lab[2] = { 4, 7 };
    const char *kv[] = { "scale", "0.5", "shift", "-1", NULL };
    mltk_dataset_info info, tinfo;
    void *self = NULL;
    char *err = NULL;

    write_cifar10();
    /* no names file: the classes are numbers */
    ck_assert_msg(open_kv(&self, "train", NULL, &err) == MLTK_OK, "open: %s", err);
    memset(&info, 0xff, sizeof(info));
    ck_assert_int_eq(ds->info(self, &info), MLTK_OK);
    ck_assert_int_eq(info.n, 9);
    ck_assert_int_eq(info.x_shape.ndim, 3);
    ck_assert_int_eq(info.x_shape.dim[0], 3);
    ck_assert_int_eq(info.x_shape.dim[1], 32);
    ck_assert_int_eq(info.x_shape.dim[2], 32);
    ck_assert_int_eq(info.x_dtype, MLTK_U8);
    ck_assert(fabs(info.x_scale - 1.0 / 255.0) < 1e-15 && info.x_shift == 0.0);
    ck_assert_int_eq(info.target, MLTK_TARGET_CLASS);
    ck_assert_int_eq(info.y_shape.ndim, 0);
    ck_assert_int_eq(info.n_classes, 10);
    ck_assert_ptr_null(info.class_names);
    ck_assert_int_eq(strlen(info.checksum), 64);
    check_samples(self, 9, train_lab, 0, 1.0 / 255.0, 0.0);
    ds->close(self);

    /* the test split, with names and another scale */
    write_bytes("batches.meta.txt", names, sizeof(names) - 1);
    ck_assert_msg(open_kv(&self, "test", kv, &err) == MLTK_OK, "open: %s", err);
    ck_assert_int_eq(ds->info(self, &tinfo), MLTK_OK);
    ck_assert_int_eq(tinfo.n, 2);
    ck_assert(tinfo.x_scale == 0.5 && tinfo.x_shift == -1.0);
    ck_assert_str_eq(tinfo.checksum, test_sha);
    ck_assert_str_ne(tinfo.checksum, info.checksum);
    ck_assert_ptr_nonnull(tinfo.class_names);
    ck_assert_str_eq(tinfo.class_names[0], "airplane");
    ck_assert_str_eq(tinfo.class_names[4], "deer");
    ck_assert_str_eq(tinfo.class_names[9], "truck");
    check_samples(self, 2, test_lab, 100, 0.5, -1.0);
    ds->close(self);
}
END_TEST

START_TEST(test_cifar100)
{
    static uint8_t buf[3 * REC100];
    static const uint8_t fine[3] = { 99, 0, 42 }, coarse[3] = { 19, 4, 0 };
    const char *kvf[] = { "variant", "100", NULL };
    const char *kvc[] = { "variant", "100", "label", "coarse", NULL };
    char names[1024];
    size_t len = 0;
    mltk_dataset_info info;
    void *self = NULL;
    char *err = NULL;

    write_bytes("train.bin", buf, make_records(buf, 100, 3, fine, coarse, 10));
    write_bytes("test.bin", buf, make_records(buf, 100, 1, fine + 2, coarse + 2, 20));
    ck_assert_msg(open_kv(&self, "train", kvf, &err) == MLTK_OK, "open: %s", err);
    ck_assert_int_eq(ds->info(self, &info), MLTK_OK);
    ck_assert_int_eq(info.n, 3);
    ck_assert_int_eq(info.n_classes, 100);
    ck_assert_ptr_null(info.class_names);
    check_samples(self, 3, fine, 10, 1.0 / 255.0, 0.0);
    ds->close(self);

    /* coarse labels, with their names (CRLF line ends) */
    for (int c = 0; c < 20; c++)
        len += (size_t)snprintf(names + len, sizeof(names) - len, "super_%d\r\n", c);
    write_bytes("coarse_label_names.txt", names, len);
    ck_assert_msg(open_kv(&self, "train", kvc, &err) == MLTK_OK, "open: %s", err);
    ck_assert_int_eq(ds->info(self, &info), MLTK_OK);
    ck_assert_int_eq(info.n_classes, 20);
    ck_assert_str_eq(info.class_names[19], "super_19");
    check_samples(self, 3, coarse, 10, 1.0 / 255.0, 0.0);
    ds->close(self);
    ck_assert_msg(open_kv(&self, "test", kvc, &err) == MLTK_OK, "open: %s", err);
    check_samples(self, 1, coarse + 2, 20, 1.0 / 255.0, 0.0);
    ds->close(self);
}
END_TEST

/* get and label from 4 threads at once, as the loader's workers call
 * them: every thread reads every sample of the 5 files, in its own order,
 * and compares it with its record */
typedef struct reader_arg {
    void *self;
    int   start;
    int   bad;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    static const int n = 9;

    for (int round = 0; round < 50; round++)
        for (int j = 0; j < n; j++) {
            int i = (a->start + j * 4 + round) % n;
            uint8_t x[PIX];
            int32_t y = -1, yl = -1;
            char *err = NULL;
            if (ds->get(a->self, i, x, &y, &err) || ds->label(a->self, i, &yl, &err) ||
                y != train_lab[i] || yl != y || x[0] != pixel(i, 0) ||
                x[PIX - 1] != pixel(i, PIX - 1))
                a->bad++;
            free(err);
        }
    return NULL;
}

START_TEST(test_threads)
{
    pthread_t th[4];
    reader_arg arg[4];
    void *self = NULL;
    char *err = NULL;

    write_cifar10();
    ck_assert_msg(open_kv(&self, "train", NULL, &err) == MLTK_OK, "open: %s", err);
    for (int t = 0; t < 4; t++) {
        arg[t] = (reader_arg){ .self = self, .start = t, .bad = 0 };
        ck_assert_int_eq(pthread_create(&th[t], NULL, reader, &arg[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        ck_assert_int_eq(pthread_join(th[t], NULL), 0);
        ck_assert_int_eq(arg[t].bad, 0);
    }
    ds->close(self);
}
END_TEST

/* ---- damaged files -------------------------------------------------------- */

START_TEST(test_partial_record)
{
    static uint8_t buf[4 * REC10];
    char want[4400];
    size_t n;

    write_cifar10();
    /* data_batch_3.bin: 3 records and 100 bytes of a fourth */
    n = make_records(buf, 10, 4, train_lab, NULL, 0);
    write_bytes("data_batch_3.bin", buf, n - REC10 + 100);
    snprintf(want, sizeof(want), "%s: partial record at byte 9219: 9319 bytes are not a "
             "whole number of 3073-byte CIFAR-10 records", path_of("data_batch_3.bin"));
    expect_error("train", NULL, MLTK_ERR_DATA, want);
    /* a CIFAR-10 file read as CIFAR-100 */
    {
        const char *kv[] = { "variant", "100", NULL };
        write_bytes("train.bin", buf, 2 * REC10);
        snprintf(want, sizeof(want), "%s: partial record at byte 3074: 6146 bytes are not a "
                 "whole number of 3074-byte CIFAR-100 records", path_of("train.bin"));
        expect_error("train", kv, MLTK_ERR_DATA, want);
    }
    /* empty, missing, a directory */
    write_bytes("test_batch.bin", buf, 0);
    snprintf(want, sizeof(want), "%s: empty file (at byte 0)", path_of("test_batch.bin"));
    expect_error("test", NULL, MLTK_ERR_DATA, want);
    write_cifar10();
    ck_assert_int_eq(remove(path_of("data_batch_4.bin")), 0);
    snprintf(want, sizeof(want), "cannot open %s: No such file or directory",
             path_of("data_batch_4.bin"));
    expect_error("train", NULL, MLTK_ERR_IO, want);
    ck_assert_int_eq(mkdir(path_of("data_batch_4.bin"), 0700), 0);
    snprintf(want, sizeof(want), "cannot open %s: Is a directory",
             path_of("data_batch_4.bin"));
    expect_error("train", NULL, MLTK_ERR_IO, want);
}
END_TEST

START_TEST(test_bad_label)
{
    static uint8_t buf[4 * REC100];
    static const uint8_t bad10[2] = { 9, 10 };
    static const uint8_t fine[2] = { 5, 100 }, coarse[2] = { 1, 2 };
    static const uint8_t fine2[2] = { 5, 6 }, coarse2[2] = { 1, 20 };
    const char *kv[] = { "variant", "100", NULL };
    char want[4400];

    write_cifar10();
    /* data_batch_2.bin: label 10 in record 1, at byte 3073 */
    write_bytes("data_batch_2.bin", buf, make_records(buf, 10, 2, bad10, NULL, 0));
    snprintf(want, sizeof(want), "%s: label 10 of record 1 (at byte 3073) is out of range: "
             "CIFAR-10 has 10 classes", path_of("data_batch_2.bin"));
    expect_error("train", NULL, MLTK_ERR_DATA, want);
    /* CIFAR-100: a fine label of 100 (record 1, byte 3074 + 1), a coarse of 20 */
    write_bytes("train.bin", buf, make_records(buf, 100, 2, fine, coarse, 0));
    snprintf(want, sizeof(want), "%s: fine label 100 of record 1 (at byte 3075) is out of "
             "range: CIFAR-100 has 100 classes", path_of("train.bin"));
    expect_error("train", kv, MLTK_ERR_DATA, want);
    write_bytes("train.bin", buf, make_records(buf, 100, 2, fine2, coarse2, 0));
    snprintf(want, sizeof(want), "%s: coarse label 20 of record 1 (at byte 3074) is out of "
             "range: CIFAR-100 has 20 superclasses", path_of("train.bin"));
    expect_error("train", kv, MLTK_ERR_DATA, want);
}
END_TEST

START_TEST(test_bad_names)
{
    static const char nine[] = "a\nb\nc\nd\ne\nf\ng\nh\ni\n";
    static const char eleven[] = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\nk\n";
    static const char ctrl[] = "a\nb\nc\x01x\nd\n";
    char want[4400];

    write_cifar10();
    write_bytes("batches.meta.txt", nine, sizeof(nine) - 1);
    snprintf(want, sizeof(want), "%s:9: 9 class names, expected 10",
             path_of("batches.meta.txt"));
    expect_error("train", NULL, MLTK_ERR_DATA, want);
    write_bytes("batches.meta.txt", eleven, sizeof(eleven) - 1);
    snprintf(want, sizeof(want), "%s:12: more than 10 class names",
             path_of("batches.meta.txt"));
    expect_error("test", NULL, MLTK_ERR_DATA, want);
    write_bytes("batches.meta.txt", ctrl, sizeof(ctrl) - 1);
    snprintf(want, sizeof(want), "%s:3: a control character (byte 5) in a class name",
             path_of("batches.meta.txt"));
    expect_error("test", NULL, MLTK_ERR_DATA, want);
    write_bytes("batches.meta.txt", ctrl, 0);
    snprintf(want, sizeof(want), "%s:1: 0 class names, expected 10",
             path_of("batches.meta.txt"));
    expect_error("test", NULL, MLTK_ERR_DATA, want);
}
END_TEST

/* ---- suite ---------------------------------------------------------------- */

static Suite *cifar_suite(void)
{
    Suite *s = suite_create("cifar");
    TCase *tc = tcase_create("cifar");

    tcase_add_checked_fixture(tc, fixture_open, fixture_close);
    tcase_add_test(tc, test_cifar10);
    tcase_add_test(tc, test_cifar100);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_partial_record);
    tcase_add_test(tc, test_bad_label);
    tcase_add_test(tc, test_bad_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cifar_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
