/* check_tokens.c - the tokens and text dataset plugins: windows, targets
 * and every kind of bad file.
 *
 * What this is: small token files (raw uint16 and uint32, with a skipped
 * header, llm.c's format) and text files are written into a fresh
 * temporary directory per test and opened through the plugins as the core
 * would (params built against their descriptors).  The windows and their
 * next-token targets are checked value by value through get, label and
 * read; the info (count, shape, dtype, classes, checksum) and the test
 * split taken from the tail of the training file are checked.  Damaged
 * files - a partial token, an id >= vocab, an llm.c header with a bad
 * magic, version or token count, an empty or missing file, too few tokens
 * for one window - must fail with the exact message naming the file and
 * the byte offset.
 * What this is not: a test of training (tests/test_text_lm.sh) or of the
 * parser on arbitrary bytes (tests/fuzz/fuzz_tokens.c).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "session.h"
#define DSFIX_NO_PLUGIN   /* each test loads the plugin it opens */
#include "dsfixture.h"

/* ---- fixture -------------------------------------------------------------- */

static void fixture_open(void)
{
    dsfix_open(NULL, "check_tokens");
}

static void fixture_close(void)
{
    dsfix_close();
}

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v);
    put16(p + 2, v >> 16);
}

/* ---- opening through a plugin --------------------------------------------- */

/* Open plugin `name` (tokens or text) on `split` with NULL-terminated
 * key/value pairs (path = the temporary directory comes first). */
static int open_kv(const char *name, void **self, const struct mltk_dataset_i **ds,
                   const char *split, const char *const *kv, char **err)
{
    const char *keys[16], *vals[16];
    const mltk_desc *desc;
    mltk_params_t *p = NULL;
    int n = 0, rc;

    rc = mltk_registry_find(reg, name, MLTK_KIND_DATASET, &desc, err);
    ck_assert_msg(rc == MLTK_OK, "find %s: %s", name, *err ? *err : "?");
    rc = mltk_registry_load(reg, name, MLTK_KIND_DATASET, (const void **)ds, err);
    ck_assert_msg(rc == MLTK_OK, "load %s: %s", name, *err ? *err : "?");
    keys[n] = "path";
    vals[n++] = dir;
    for (; kv && kv[0]; kv += 2) {
        keys[n] = kv[0];
        vals[n++] = kv[1];
    }
    rc = mltk_params_build(&p, &desc, 1, n, keys, vals, NULL, NULL, 0, "data", err);
    ck_assert_msg(rc == MLTK_OK, "params: %s", *err ? *err : "?");
    *self = NULL;
    rc = (*ds)->open(self, p, split, err);
    mltk_params_free(p);   /* open must not keep the params */
    return rc;
}

/* Opening must fail with `status` and exactly the message `want`. */
static void expect_error(const char *name, const char *split, const char *const *kv,
                         int status, const char *want)
{
    const struct mltk_dataset_i *ds;
    void *self = NULL;
    char *err = NULL;
    int rc = open_kv(name, &self, &ds, split, kv, &err);

    ck_assert_msg(rc == status, "status %d (%s), want %d; message: %s", rc,
                  mltk_status_str(rc), status, err ? err : "(none)");
    ck_assert_ptr_null(self);
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(err, want);
    free(err);
}

/* Every window of an open split against the token sequence ids: x =
 * ids[i*stride ..][context] through get and read, y = the next id through
 * get, label and read. */
static void check_windows(const struct mltk_dataset_i *ds, void *self, const uint32_t *ids,
                          int64_t n, int64_t context, int64_t stride, int64_t vocab)
{
    mltk_dataset_info info;
    int32_t x[64], y, yl, yr[64];
    float xr[64 * 8];
    char *err = NULL;

    memset(&info, 0xff, sizeof(info));
    ck_assert_int_eq(ds->info(self, &info), MLTK_OK);
    ck_assert_int_eq(info.n, n);
    ck_assert_int_eq(info.x_shape.ndim, 1);
    ck_assert_int_eq(info.x_shape.dim[0], context);
    ck_assert_int_eq(info.x_dtype, MLTK_I32);
    ck_assert(info.x_scale == 1.0 && info.x_shift == 0.0);
    ck_assert_int_eq(info.target, MLTK_TARGET_CLASS);
    ck_assert_int_eq(info.y_shape.ndim, 0);
    ck_assert_int_eq(info.n_classes, vocab);
    ck_assert_ptr_null(info.class_names);
    ck_assert_int_eq(strlen(info.checksum), 64);
    for (int64_t i = 0; i < n; i++) {
        ck_assert_int_eq(ds->get(self, i, x, &y, &err), MLTK_OK);
        for (int64_t t = 0; t < context; t++)
            ck_assert_int_eq(x[t], (int32_t)ids[i * stride + t]);
        ck_assert_int_eq(y, (int32_t)ids[i * stride + context]);
        ck_assert_int_eq(ds->label(self, i, &yl, &err), MLTK_OK);
        ck_assert_int_eq(yl, y);
    }
    ck_assert_int_le(n, 64);
    ck_assert_int_le(n * context, 64 * 8);
    ck_assert_int_eq(ds->read(self, 0, n, xr, yr, &err), MLTK_OK);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t t = 0; t < context; t++)
            ck_assert(xr[i * context + t] == (float)ids[i * stride + t]);
        ck_assert_int_eq(yr[i], (int32_t)ids[i * stride + context]);
    }
    ck_assert_int_eq(ds->get(self, n, x, &y, &err), MLTK_ERR_INVALID);
    ck_assert_msg(err && strstr(err, "outside the"), "message: %s", err ? err : "?");
    free(err);
    err = NULL;
    ck_assert_int_eq(ds->get(self, -1, x, &y, &err), MLTK_ERR_INVALID);
    free(err);
}

/* ---- tokens: good files --------------------------------------------------- */

enum { NT = 20 };

static uint32_t tok_id(int k)
{
    return (uint32_t)((k * 7 + 3) % 50);
}

START_TEST(test_raw_u16)
{
    const char *kv[] = { "train", "a.bin", "test", "b.bin", "vocab", "50", "context", "4",
                         "stride", "3", NULL };
    const struct mltk_dataset_i *ds;
    uint8_t buf[2 * NT];
    uint32_t ids[NT], ids_b[NT];
    mltk_dataset_info ia, ib;
    void *self = NULL;
    char *err = NULL;

    for (int k = 0; k < NT; k++) {
        ids[k] = tok_id(k);
        put16(buf + 2 * k, ids[k]);
    }
    write_bytes("a.bin", buf, sizeof(buf));
    /* the test file: the first 9 ids reversed */
    for (int k = 0; k < 9; k++) {
        ids_b[k] = ids[8 - k];
        put16(buf + 2 * k, ids_b[k]);
    }
    write_bytes("b.bin", buf, 18);
    ck_assert_msg(open_kv("tokens", &self, &ds, "train", kv, &err) == MLTK_OK, "open: %s", err);
    /* (20 - 4 - 1) / 3 + 1 = 6 windows */
    check_windows(ds, self, ids, 6, 4, 3, 50);
    ds->info(self, &ia);
    ds->close(self);
    ck_assert_msg(open_kv("tokens", &self, &ds, "test", kv, &err) == MLTK_OK, "open: %s", err);
    check_windows(ds, self, ids_b, 2, 4, 3, 50);
    ds->info(self, &ib);
    ck_assert_str_ne(ia.checksum, ib.checksum);
    ds->close(self);
}
END_TEST

START_TEST(test_raw_u32_header)
{
    const char *kv[] = { "train", "a.bin", "test", "a.bin", "vocab", "100000",
                         "dtype", "uint32", "header", "5", "context", "3", NULL };
    const struct mltk_dataset_i *ds;
    uint8_t buf[5 + 4 * 8];
    uint32_t ids[8] = { 0, 99999, 65536, 1, 70000, 2, 3, 99998 };
    void *self = NULL;
    char *err = NULL;

    memcpy(buf, "HEAD!", 5);
    for (int k = 0; k < 8; k++)
        put32(buf + 5 + 4 * k, ids[k]);
    write_bytes("a.bin", buf, sizeof(buf));
    ck_assert_msg(open_kv("tokens", &self, &ds, "train", kv, &err) == MLTK_OK, "open: %s", err);
    check_windows(ds, self, ids, 5, 3, 1, 100000);
    ds->close(self);
}
END_TEST

/* an llm.c file: magic, version, count, then 253 more int32 */
static size_t make_llmc(uint8_t *buf, uint32_t magic, uint32_t version, uint32_t count,
                        const uint32_t *ids, int n, int width)
{
    memset(buf, 0, 1024);
    put32(buf, magic);
    put32(buf + 4, version);
    put32(buf + 8, count);
    for (int k = 0; k < n; k++) {
        if (width == 2)
            put16(buf + 1024 + 2 * k, ids[k]);
        else
            put32(buf + 1024 + 4 * k, ids[k]);
    }
    return 1024 + (size_t)(n * width);
}

START_TEST(test_llmc)
{
    const char *kv16[] = { "train", "g.bin", "test", "g.bin", "format", "llmc", "vocab",
                           "50257", "context", "2", "stride", "2", NULL };
    const char *kv32[] = { "train", "l.bin", "test", "l.bin", "format", "llmc", "vocab",
                           "128256", "dtype", "uint32", "context", "2", NULL };
    static uint8_t buf[2048];
    uint32_t ids[7] = { 50256, 15496, 11, 995, 0, 50256, 1 };
    uint32_t lids[4] = { 128000, 9906, 1917, 128001 };
    const struct mltk_dataset_i *ds;
    void *self = NULL;
    char *err = NULL;

    write_bytes("g.bin", buf, make_llmc(buf, 20240520, 1, 7, ids, 7, 2));
    ck_assert_msg(open_kv("tokens", &self, &ds, "train", kv16, &err) == MLTK_OK, "open: %s",
                  err);
    check_windows(ds, self, ids, 3, 2, 2, 50257);
    ds->close(self);
    write_bytes("l.bin", buf, make_llmc(buf, 20240801, 7, 4, lids, 4, 4));
    ck_assert_msg(open_kv("tokens", &self, &ds, "test", kv32, &err) == MLTK_OK, "open: %s",
                  err);
    check_windows(ds, self, lids, 2, 2, 1, 128256);
    ds->close(self);
}
END_TEST

/* test_tail: the last 10% of the tokens are the test split, the rest the
 * training split */
START_TEST(test_tail_split)
{
    const char *kv[] = { "train", "a.bin", "vocab", "50", "context", "3", NULL };
    const char *kv0[] = { "train", "a.bin", "vocab", "50", "context", "3", "test_tail", "0",
                          NULL };
    const struct mltk_dataset_i *ds;
    uint8_t buf[2 * 60];
    uint32_t ids[60];
    mltk_dataset_info ia, ib;
    void *self = NULL;
    char *err = NULL;
    char want[4400];

    for (int k = 0; k < 60; k++) {
        ids[k] = tok_id(k);
        put16(buf + 2 * k, ids[k]);
    }
    write_bytes("a.bin", buf, sizeof(buf));
    /* 60 tokens: train [0, 54), test [54, 60) */
    ck_assert_msg(open_kv("tokens", &self, &ds, "train", kv, &err) == MLTK_OK, "open: %s", err);
    check_windows(ds, self, ids, 51, 3, 1, 50);
    ds->info(self, &ia);
    ds->close(self);
    ck_assert_msg(open_kv("tokens", &self, &ds, "test", kv, &err) == MLTK_OK, "open: %s", err);
    check_windows(ds, self, ids + 54, 3, 3, 1, 50);
    ds->info(self, &ib);
    ck_assert_str_eq(ia.checksum, ib.checksum);   /* the same file */
    ds->close(self);
    /* test_tail = 0: all 60 for training, and no test split */
    ck_assert_msg(open_kv("tokens", &self, &ds, "train", kv0, &err) == MLTK_OK, "open: %s", err);
    check_windows(ds, self, ids, 57, 3, 1, 50);
    ds->close(self);
    expect_error("tokens", "test", kv0, MLTK_ERR_CONFIG,
                 "tokens: no test split: set key 'test' to a file, or 'test_tail' to the "
                 "fraction of the training file to hold out");
    /* a tail too short for one window: 0.05 of 60 = 3 tokens */
    {
        const char *kv5[] = { "train", "a.bin", "vocab", "50", "context", "3", "test_tail",
                              "0.05", NULL };
        snprintf(want, sizeof(want), "%s: the test split holds 3 tokens (bytes 114 to 120), "
                 "fewer than context + 1 = 4", path_of("a.bin"));
        expect_error("tokens", "test", kv5, MLTK_ERR_DATA, want);
    }
}
END_TEST

/* ---- tokens: bad files ---------------------------------------------------- */

START_TEST(test_bad_raw)
{
    const char *kv[] = { "train", "a.bin", "test", "a.bin", "vocab", "50", "context", "2",
                         NULL };
    const char *kvh[] = { "train", "a.bin", "test", "a.bin", "vocab", "50", "context", "2",
                          "header", "40", NULL };
    const char *kvm[] = { "train", "nope.bin", "test", "a.bin", "vocab", "50", "context",
                          "2", NULL };
    const char *kvd[] = { "train", "sub", "test", "a.bin", "vocab", "50", "context", "2",
                          NULL };
    uint8_t buf[64];
    char want[4400];

    for (int k = 0; k < 10; k++)
        put16(buf + 2 * k, tok_id(k));
    /* 21 bytes: the last token is half there */
    buf[20] = 1;
    write_bytes("a.bin", buf, 21);
    snprintf(want, sizeof(want), "%s: partial token at byte 20: 21 bytes after the 0-byte "
             "header are not a whole number of 2-byte tokens", path_of("a.bin"));
    expect_error("tokens", "train", kv, MLTK_ERR_DATA, want);
    /* id 50 at token 6 (byte 12) with vocab = 50 */
    put16(buf + 12, 50);
    write_bytes("a.bin", buf, 20);
    snprintf(want, sizeof(want), "%s: token id 50 at byte 12 is out of range: vocab = 50",
             path_of("a.bin"));
    expect_error("tokens", "test", kv, MLTK_ERR_DATA, want);
    /* a header longer than the file */
    snprintf(want, sizeof(want), "%s: truncated at byte 20 (expected a 40-byte header)",
             path_of("a.bin"));
    expect_error("tokens", "train", kvh, MLTK_ERR_DATA, want);
    /* too few tokens for one window: 2 tokens, context 2 */
    put16(buf, 1);
    write_bytes("a.bin", buf, 4);
    snprintf(want, sizeof(want), "%s: the train split holds 2 tokens (bytes 0 to 4), fewer "
             "than context + 1 = 3", path_of("a.bin"));
    expect_error("tokens", "train", kv, MLTK_ERR_DATA, want);
    /* empty, missing, a directory */
    write_bytes("a.bin", buf, 0);
    snprintf(want, sizeof(want), "%s: empty file (at byte 0)", path_of("a.bin"));
    expect_error("tokens", "train", kv, MLTK_ERR_DATA, want);
    snprintf(want, sizeof(want), "cannot open %s: No such file or directory",
             path_of("nope.bin"));
    expect_error("tokens", "train", kvm, MLTK_ERR_IO, want);
    ck_assert_int_eq(mkdir(path_of("sub"), 0700), 0);
    snprintf(want, sizeof(want), "cannot open %s: Is a directory", path_of("sub"));
    expect_error("tokens", "train", kvd, MLTK_ERR_IO, want);
}
END_TEST

START_TEST(test_bad_llmc)
{
    const char *kv[] = { "train", "g.bin", "test", "g.bin", "format", "llmc", "vocab",
                         "50257", "context", "2", NULL };
    const char *kv32[] = { "train", "g.bin", "test", "g.bin", "format", "llmc", "vocab",
                           "50257", "context", "2", "dtype", "uint32", NULL };
    static uint8_t buf[2048];
    uint32_t ids[6] = { 1, 2, 3, 4, 5, 50257 };
    char want[4400];
    size_t n;

    /* the header cut short */
    make_llmc(buf, 20240520, 1, 5, ids, 5, 2);
    write_bytes("g.bin", buf, 1000);
    snprintf(want, sizeof(want), "%s: truncated at byte 1000 (expected the 1024-byte header "
             "of an llm.c token file)", path_of("g.bin"));
    expect_error("tokens", "train", kv, MLTK_ERR_DATA, want);
    /* bad magic */
    n = make_llmc(buf, 20240521, 1, 5, ids, 5, 2);
    write_bytes("g.bin", buf, n);
    snprintf(want, sizeof(want), "%s: bad magic 20240521 at byte 0 (expected 20240520 or "
             "20240801, an llm.c token file)", path_of("g.bin"));
    expect_error("tokens", "train", kv, MLTK_ERR_DATA, want);
    /* bad version */
    n = make_llmc(buf, 20240520, 2, 5, ids, 5, 2);
    write_bytes("g.bin", buf, n);
    snprintf(want, sizeof(want), "%s: version 2 at byte 4 is not supported (expected 1 with "
             "magic 20240520)", path_of("g.bin"));
    expect_error("tokens", "train", kv, MLTK_ERR_DATA, want);
    /* a GPT-2 file read as uint32 */
    n = make_llmc(buf, 20240520, 1, 5, ids, 5, 2);
    write_bytes("g.bin", buf, n);
    snprintf(want, sizeof(want), "%s: the llm.c header (magic 20240520 at byte 0) says uint16 "
             "tokens, but dtype = uint32", path_of("g.bin"));
    expect_error("tokens", "train", kv32, MLTK_ERR_DATA, want);
    /* the count says more tokens than the file holds, and fewer */
    n = make_llmc(buf, 20240520, 1, 7, ids, 5, 2);
    write_bytes("g.bin", buf, n);
    snprintf(want, sizeof(want), "%s: truncated at byte 1034: the header (byte 8) says 7 "
             "tokens, which end at byte 1038", path_of("g.bin"));
    expect_error("tokens", "train", kv, MLTK_ERR_DATA, want);
    n = make_llmc(buf, 20240520, 1, 4, ids, 5, 2);
    write_bytes("g.bin", buf, n);
    snprintf(want, sizeof(want), "%s: trailing data at byte 1032: the header (byte 8) says "
             "4 tokens", path_of("g.bin"));
    expect_error("tokens", "train", kv, MLTK_ERR_DATA, want);
    /* an id >= vocab: the sixth token, at byte 1024 + 10 */
    n = make_llmc(buf, 20240520, 1, 6, ids, 6, 2);
    write_bytes("g.bin", buf, n);
    snprintf(want, sizeof(want), "%s: token id 50257 at byte 1034 is out of range: "
             "vocab = 50257", path_of("g.bin"));
    expect_error("tokens", "train", kv, MLTK_ERR_DATA, want);
}
END_TEST

/* ---- text ----------------------------------------------------------------- */

START_TEST(test_text)
{
    static const char text[] = "to be, or not to be: that is the question\n";
    /* SHA-256 of those 42 bytes (computed with an independent tool) */
    static const char sha[] =
        "9f06f75cc9c9acf850955f0a0010ae6abe1294eeb5bc62f531f0fa10a7716ba8";
    const char *kv[] = { "train", "t.txt", "context", "8", "stride", "5", NULL };
    const char *kvt[] = { "train", "t.txt", "test", "u.txt", "context", "8", NULL };
    const struct mltk_dataset_i *ds;
    uint32_t ids[64];
    mltk_dataset_info info;
    void *self = NULL;
    char *err = NULL;
    int len = (int)strlen(text);

    ck_assert_int_eq(len, 42);
    for (int k = 0; k < len; k++)
        ids[k] = (uint8_t)text[k];
    write_bytes("t.txt", text, (size_t)len);
    /* 42 bytes, test_tail 0.1: train [0, 38), and test [38, 42) is too short */
    ck_assert_msg(open_kv("text", &self, &ds, "train", kv, &err) == MLTK_OK, "open: %s", err);
    /* (38 - 8 - 1) / 5 + 1 = 6 */
    check_windows(ds, self, ids, 6, 8, 5, 256);
    ds->info(self, &info);
    ck_assert_str_eq(info.checksum, sha);
    ds->close(self);
    {
        char want[4400];
        snprintf(want, sizeof(want), "%s: the test split holds 4 tokens (bytes 38 to 42), "
                 "fewer than context + 1 = 9", path_of("t.txt"));
        expect_error("text", "test", kv, MLTK_ERR_DATA, want);
    }
    /* a test file of its own; every byte value is a token */
    {
        uint8_t all[256];
        uint32_t aid[256];
        for (int k = 0; k < 256; k++)
            aid[k] = all[k] = (uint8_t)(255 - k);
        write_bytes("u.txt", all, sizeof(all));
        ck_assert_msg(open_kv("text", &self, &ds, "test", kvt, &err) == MLTK_OK, "open: %s",
                      err);
        ck_assert_int_eq(ds->info(self, &info), MLTK_OK);
        ck_assert_int_eq(info.n, 248);
        ck_assert_int_eq(info.n_classes, 256);
        for (int64_t i = 0; i < info.n; i += 31) {
            int32_t x[8], y;
            ck_assert_int_eq(ds->get(self, i, x, &y, &err), MLTK_OK);
            for (int t = 0; t < 8; t++)
                ck_assert_int_eq(x[t], (int32_t)aid[i + t]);
            ck_assert_int_eq(y, (int32_t)aid[i + 8]);
        }
        ds->close(self);
    }
}
END_TEST

/* ---- suite ---------------------------------------------------------------- */

static Suite *tokens_suite(void)
{
    Suite *s = suite_create("tokens");
    TCase *tc = tcase_create("tokens");

    tcase_add_checked_fixture(tc, fixture_open, fixture_close);
    tcase_add_test(tc, test_raw_u16);
    tcase_add_test(tc, test_raw_u32_header);
    tcase_add_test(tc, test_llmc);
    tcase_add_test(tc, test_tail_split);
    tcase_add_test(tc, test_bad_raw);
    tcase_add_test(tc, test_bad_llmc);
    tcase_add_test(tc, test_text);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tokens_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
