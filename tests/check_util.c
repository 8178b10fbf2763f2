/* check_util.c - tests of core/util.c.
 *
 * What this is: status strings, error messages, logging (format, levels,
 * MLTK_LOG_LEVEL), dtypes, shapes, kind names, string helpers, edit
 * distance and did-you-mean, the monotonic clock.
 * What this is not: tests of the INI reader, which descriptors and configs
 * exercise in check_config.c.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"

/* ---- status and errors ------------------------------------------------------ */

START_TEST(test_status_str)
{
    ck_assert_str_eq(mltk_status_str(MLTK_OK), "success");
    ck_assert_str_eq(mltk_status_str(MLTK_ERR_NOMEM), "out of memory");
    ck_assert_str_eq(mltk_status_str(MLTK_ERR_CONFIG), "invalid configuration");
    ck_assert_str_eq(mltk_status_str(MLTK_ERR_ABI), "plugin ABI mismatch");
    ck_assert_str_eq(mltk_status_str(MLTK_ERR_UNSUPPORTED), "unsupported operation");
    ck_assert_str_eq(mltk_status_str(-999), "unknown status");
    ck_assert_str_eq(mltk_status_str(5), "unknown status");
    /* every defined status has its own string */
    for (int a = MLTK_ERR_UNSUPPORTED; a <= MLTK_OK; a++)
        for (int b = a + 1; b <= MLTK_OK; b++)
            ck_assert_str_ne(mltk_status_str(a), mltk_status_str(b));
}
END_TEST

START_TEST(test_errf)
{
    char *err = NULL;
    ck_assert_int_eq(mltk_errf(&err, MLTK_ERR_SHAPE, "dense: expected %d-d input", 1),
                     MLTK_ERR_SHAPE);
    ck_assert_str_eq(err, "dense: expected 1-d input");
    /* a first message is never overwritten */
    ck_assert_int_eq(mltk_errf(&err, MLTK_ERR_IO, "second"), MLTK_ERR_IO);
    ck_assert_str_eq(err, "dense: expected 1-d input");
    /* NULL err is allowed */
    ck_assert_int_eq(mltk_errf(NULL, MLTK_ERR_DATA, "ignored %s", "x"), MLTK_ERR_DATA);
    free(err);
}
END_TEST

START_TEST(test_err_prefix)
{
    char *err = NULL;
    mltk_errf(&err, MLTK_ERR_CONFIG, "unknown key 'x'");
    mltk_err_prefix(&err, "%s:%d", "train.ini", 14);
    ck_assert_str_eq(err, "train.ini:14: unknown key 'x'");
    free(err);
    err = NULL;
    mltk_err_prefix(&err, "only %s", "prefix");
    ck_assert_str_eq(err, "only prefix");
    free(err);
    mltk_err_prefix(NULL, "nothing");
}
END_TEST

START_TEST(test_version)
{
    ck_assert_str_eq(mltk_version(), VERSION);
    int a, b, c;
    ck_assert_int_eq(sscanf(mltk_version(), "%d.%d.%d", &a, &b, &c), 3);
}
END_TEST

/* ---- logging ------------------------------------------------------------------ */
/* Each test runs in its own process (CK_FORK), so the once-only read of
 * MLTK_LOG_LEVEL happens afresh in each. */

START_TEST(test_log_default_info)
{
    unsetenv("MLTK_LOG_LEVEL");
    ck_assert_int_eq(mltk_log_get_level(), MLTK_LOG_INFO);
    tu_capture c;
    tu_capture_begin(&c);
    mltk_log(MLTK_LOG_ERROR, "disk %s", "full");
    mltk_log(MLTK_LOG_WARN, "w%d", 1);
    mltk_log(MLTK_LOG_INFO, "using backend %s", "cpu");
    mltk_log(MLTK_LOG_DEBUG, "not shown");
    char *out = tu_capture_end(&c);
    ck_assert_str_eq(out, "mltk: error: disk full\nmltk: warn: w1\n"
                          "mltk: info: using backend cpu\n");
    free(out);
}
END_TEST

START_TEST(test_log_env)
{
    setenv("MLTK_LOG_LEVEL", "error", 1);
    ck_assert_int_eq(mltk_log_get_level(), MLTK_LOG_ERROR);
    /* read once: later changes of the environment do not matter */
    setenv("MLTK_LOG_LEVEL", "debug", 1);
    ck_assert_int_eq(mltk_log_get_level(), MLTK_LOG_ERROR);
    tu_capture c;
    tu_capture_begin(&c);
    mltk_log(MLTK_LOG_WARN, "hidden");
    mltk_log(MLTK_LOG_ERROR, "shown");
    char *out = tu_capture_end(&c);
    ck_assert_str_eq(out, "mltk: error: shown\n");
    free(out);
}
END_TEST

START_TEST(test_log_env_debug_case)
{
    setenv("MLTK_LOG_LEVEL", "DEBUG", 1);
    ck_assert_int_eq(mltk_log_get_level(), MLTK_LOG_DEBUG);
}
END_TEST

START_TEST(test_log_env_invalid)
{
    setenv("MLTK_LOG_LEVEL", "loud", 1);
    tu_capture c;
    tu_capture_begin(&c);
    mltk_log_level l = mltk_log_get_level();
    char *out = tu_capture_end(&c);
    ck_assert_int_eq(l, MLTK_LOG_INFO);
    ck_assert_str_eq(out, "mltk: warn: MLTK_LOG_LEVEL='loud' is not one of error, "
                          "warn, info, debug; using info\n");
    free(out);
}
END_TEST

START_TEST(test_log_set_level)
{
    setenv("MLTK_LOG_LEVEL", "error", 1);
    mltk_log_set_level(MLTK_LOG_DEBUG);
    ck_assert_int_eq(mltk_log_get_level(), MLTK_LOG_DEBUG);
    tu_capture c;
    tu_capture_begin(&c);
    mltk_log(MLTK_LOG_DEBUG, "step %d", 7);
    mltk_log_set_level(MLTK_LOG_WARN);
    mltk_log(MLTK_LOG_INFO, "hidden");
    char *out = tu_capture_end(&c);
    ck_assert_str_eq(out, "mltk: debug: step 7\n");
    free(out);
}
END_TEST

/* ---- dtypes, shapes, tensors -------------------------------------------------- */

START_TEST(test_dtypes)
{
    ck_assert_uint_eq(mltk_dtype_size(MLTK_F32), 4);
    ck_assert_uint_eq(mltk_dtype_size(MLTK_I32), 4);
    ck_assert_uint_eq(mltk_dtype_size(MLTK_F16), 2);
    ck_assert_uint_eq(mltk_dtype_size(MLTK_BF16), 2);
    ck_assert_uint_eq(mltk_dtype_size(MLTK_U8), 1);
    ck_assert_uint_eq(mltk_dtype_size((mltk_dtype)42), 0);
    ck_assert_str_eq(mltk_dtype_name(MLTK_F32), "f32");
    ck_assert_str_eq(mltk_dtype_name(MLTK_I32), "i32");
    ck_assert_str_eq(mltk_dtype_name(MLTK_F16), "f16");
    ck_assert_str_eq(mltk_dtype_name(MLTK_BF16), "bf16");
    ck_assert_str_eq(mltk_dtype_name(MLTK_U8), "u8");
    ck_assert_str_eq(mltk_dtype_name((mltk_dtype)42), "?");
}
END_TEST

START_TEST(test_shapes)
{
    const int64_t dims[] = { 1, 28, 28 };
    mltk_shape s = mltk_shape_make(3, dims);
    ck_assert_int_eq(s.ndim, 3);
    ck_assert_int_eq(s.dim[2], 28);
    ck_assert_int_eq(s.dim[3], 0);
    ck_assert_int_eq(mltk_shape_numel(&s), 784);
    char buf[64];
    ck_assert_str_eq(mltk_shape_str(&s, buf, sizeof buf), "(1, 28, 28)");
    /* truncation stays NUL-terminated */
    char small[6];
    ck_assert_str_eq(mltk_shape_str(&s, small, sizeof small), "(1, 2");

    mltk_shape scalar = mltk_shape_make(0, NULL);
    ck_assert_int_eq(mltk_shape_numel(&scalar), 1);
    ck_assert_str_eq(mltk_shape_str(&scalar, buf, sizeof buf), "()");
    const int64_t ten = 10;
    mltk_shape v = mltk_shape_make(1, &ten);
    ck_assert_str_eq(mltk_shape_str(&v, buf, sizeof buf), "(10)");

    mltk_shape t = mltk_shape_make(3, dims);
    ck_assert(mltk_shape_equal(&s, &t));
    t.dim[1] = 27;
    ck_assert(!mltk_shape_equal(&s, &t));
    ck_assert(!mltk_shape_equal(&s, &v));
    ck_assert(!mltk_shape_equal(&s, NULL));

    const int64_t many[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    mltk_shape m = mltk_shape_make(8, many);
    ck_assert_int_eq(m.ndim, MLTK_MAX_DIMS);
    ck_assert_int_eq(mltk_shape_numel(&m), 720);
}
END_TEST

START_TEST(test_tensor_numel)
{
    const int64_t dims[] = { 32, 10 };
    mltk_tensor t = { .data = NULL, .shape = mltk_shape_make(2, dims), .dtype = MLTK_F32 };
    ck_assert_int_eq(mltk_tensor_numel(&t), 320);
    ck_assert_int_eq(mltk_tensor_numel(NULL), 0);
}
END_TEST

/* ---- kinds ---------------------------------------------------------------------- */

START_TEST(test_kinds)
{
    static const char *const names[] = { "backend", "layer", "loss", "optimizer",
                                         "dataset", "schedule", "transform" };
    for (int k = MLTK_KIND_BACKEND; k <= MLTK_KIND_TRANSFORM; k++) {
        ck_assert_str_eq(mltk_kind_name(k), names[k - 1]);
        ck_assert_int_eq(mltk_kind_parse(names[k - 1]), k);
    }
    ck_assert_int_eq(mltk_kind_parse("layer"), MLTK_KIND_LAYER);
    ck_assert_int_eq(mltk_kind_parse("Layer"), 0);
    ck_assert_int_eq(mltk_kind_parse("scheduler"), 0);
    ck_assert_int_eq(mltk_kind_parse(NULL), 0);
    ck_assert_str_eq(mltk_kind_name(0), "?");
    ck_assert_str_eq(mltk_kind_name(8), "?");
}
END_TEST

/* ---- strings ------------------------------------------------------------------- */

START_TEST(test_strings)
{
    char *s = mltk_strdup("abc");
    ck_assert_str_eq(s, "abc");
    free(s);
    ck_assert_ptr_null(mltk_strdup(NULL));
    s = mltk_strfmt("%s:%d: %s", "train.ini", 3, "x");
    ck_assert_str_eq(s, "train.ini:3: x");
    free(s);
    s = mltk_strfmt("%s", "");
    ck_assert_str_eq(s, "");
    free(s);
}
END_TEST

START_TEST(test_edit_distance)
{
    ck_assert_int_eq(mltk_edit_distance("kitten", "sitting"), 3);
    ck_assert_int_eq(mltk_edit_distance("", "abc"), 3);
    ck_assert_int_eq(mltk_edit_distance("abc", ""), 3);
    ck_assert_int_eq(mltk_edit_distance("dense", "dense"), 0);
    /* adjacent transpositions count as one edit */
    ck_assert_int_eq(mltk_edit_distance("dnese", "dense"), 1);
    ck_assert_int_eq(mltk_edit_distance("trian", "train"), 1);
    ck_assert_int_eq(mltk_edit_distance("ab", "ba"), 1);
    ck_assert_int_eq(mltk_edit_distance("unit", "units"), 1);
    ck_assert_int_eq(mltk_edit_distance("flaten", "flatten"), 1);
    ck_assert_int_eq(mltk_edit_distance("adma", "adam"), 1);
}
END_TEST

START_TEST(test_did_you_mean)
{
    static const char *const layers[] = { "dense", "flatten", "relu" };
    ck_assert_str_eq(mltk_did_you_mean("dnese", layers, 3), "dense");
    static const char *const sections[] = { "run", "train", "log" };
    ck_assert_str_eq(mltk_did_you_mean("trian", sections, 3), "train");
    ck_assert_str_eq(mltk_did_you_mean("flaten", layers, 3), "flatten");
    ck_assert_str_eq(mltk_did_you_mean("relu", layers, 3), "relu");
    ck_assert_ptr_null(mltk_did_you_mean("conv2d", layers, 3));
    /* short words: distance 1 at most */
    static const char *const keys[] = { "lr", "units" };
    ck_assert_str_eq(mltk_did_you_mean("l", keys, 2), "lr");
    ck_assert_ptr_null(mltk_did_you_mean("xy", keys, 2));
    ck_assert_str_eq(mltk_did_you_mean("unit", keys, 2), "units");
    /* the closest wins, the first among equals */
    static const char *const c2[] = { "abcd", "abce", "abcx" };
    ck_assert_str_eq(mltk_did_you_mean("abcf", c2, 3), "abcd");
    static const char *const c3[] = { "trains", "train" };
    ck_assert_str_eq(mltk_did_you_mean("train", c3, 2), "train");
    ck_assert_ptr_null(mltk_did_you_mean("x", NULL, 0));
}
END_TEST

START_TEST(test_now)
{
    double a = mltk_now();
    double b = mltk_now();
    ck_assert(a > 0);
    ck_assert(b >= a);
    usleep(20000);
    double c = mltk_now();
    ck_assert(c - a >= 0.015);
    ck_assert(c - a < 5.0);
}
END_TEST

/* ---- the suite ----------------------------------------------------------------- */

static Suite *util_suite(void)
{
    Suite *s = suite_create("util");
    TCase *t = tcase_create("errors");
    tcase_add_test(t, test_status_str);
    tcase_add_test(t, test_errf);
    tcase_add_test(t, test_err_prefix);
    tcase_add_test(t, test_version);
    suite_add_tcase(s, t);

    t = tcase_create("logging");
    tcase_add_test(t, test_log_default_info);
    tcase_add_test(t, test_log_env);
    tcase_add_test(t, test_log_env_debug_case);
    tcase_add_test(t, test_log_env_invalid);
    tcase_add_test(t, test_log_set_level);
    suite_add_tcase(s, t);

    t = tcase_create("values");
    tcase_add_test(t, test_dtypes);
    tcase_add_test(t, test_shapes);
    tcase_add_test(t, test_tensor_numel);
    tcase_add_test(t, test_kinds);
    suite_add_tcase(s, t);

    t = tcase_create("strings");
    tcase_add_test(t, test_strings);
    tcase_add_test(t, test_edit_distance);
    tcase_add_test(t, test_did_you_mean);
    tcase_add_test(t, test_now);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(util_suite());
    /* the logging tests rely on a fresh process per test */
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
