/* check_sizes.c - checked size arithmetic and what it guards.
 *
 * What this is: (1) the overflow helpers of mltk.h (mltk_size_mul,
 * mltk_size_add, mltk_size_numel, mltk_size_bytes) at and past the edges
 * of int64_t; (2) the cpu backend's conv2d workspace for a geometry the
 * core's contract accepts (every field within INT_MAX) but whose padded
 * planes would overflow its arithmetic: the query answers SIZE_MAX (no
 * buffer serves it) and the op refuses it instead of running; (3) the
 * conv2d and dense layers run standalone: a padding beyond the layer's
 * range and a weight beyond MLTK_MAX_MODEL_BYTES are refused with a
 * message naming the key.
 * What this is not: the command-line tests of the same configs, which
 * check file, line and exit status (tests/test_sizes.sh).
 */
#include "config.h"

#include <check.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"
#include "testutil.h"

/* ---- the helpers ------------------------------------------------------------ */

START_TEST(test_size_mul)
{
    int64_t r = -5;
    ck_assert_int_eq(mltk_size_mul(&r, 0, INT64_MAX), 0);
    ck_assert_int_eq(r, 0);
    ck_assert_int_eq(mltk_size_mul(&r, 3, 7), 0);
    ck_assert_int_eq(r, 21);
    ck_assert_int_eq(mltk_size_mul(&r, (int64_t)1 << 31, (int64_t)1 << 31), 0);
    ck_assert_int_eq(r, (int64_t)1 << 62);
    ck_assert_int_eq(mltk_size_mul(&r, INT64_MAX, 1), 0);
    ck_assert_int_eq(r, INT64_MAX);
    /* overflow and negative operands leave *out alone */
    r = 42;
    ck_assert_int_eq(mltk_size_mul(&r, (int64_t)1 << 32, (int64_t)1 << 31), 1);
    ck_assert_int_eq(mltk_size_mul(&r, INT64_MAX, 2), 1);
    ck_assert_int_eq(mltk_size_mul(&r, 3037000500, 3037000500), 1);
    ck_assert_int_eq(mltk_size_mul(&r, -1, 1), 1);
    ck_assert_int_eq(mltk_size_mul(&r, 1, -1), 1);
    ck_assert_int_eq(mltk_size_mul(&r, INT64_MIN, 0), 1);
    ck_assert_int_eq(r, 42);
    /* 3037000499^2 is the largest square below 2^63 */
    ck_assert_int_eq(mltk_size_mul(&r, 3037000499, 3037000499), 0);
    ck_assert_int_eq(r, (int64_t)9223372030926249001);
}
END_TEST

START_TEST(test_size_add)
{
    int64_t r = -5;
    ck_assert_int_eq(mltk_size_add(&r, 2, 3), 0);
    ck_assert_int_eq(r, 5);
    ck_assert_int_eq(mltk_size_add(&r, INT64_MAX - 1, 1), 0);
    ck_assert_int_eq(r, INT64_MAX);
    r = 42;
    ck_assert_int_eq(mltk_size_add(&r, INT64_MAX, 1), 1);
    ck_assert_int_eq(mltk_size_add(&r, 1, INT64_MAX), 1);
    ck_assert_int_eq(mltk_size_add(&r, -1, 5), 1);
    ck_assert_int_eq(mltk_size_add(&r, 5, -1), 1);
    ck_assert_int_eq(r, 42);
}
END_TEST

START_TEST(test_size_numel)
{
    int64_t n = -5;
    const int64_t d3[3] = { 2, 3, 4 }, big[3] = { (int64_t)1 << 31, (int64_t)1 << 31, 2 };
    const int64_t fits[2] = { 3037000499, 3037000499 }, neg[2] = { 4, -2 };
    mltk_shape s = mltk_shape_make(3, d3);
    ck_assert_int_eq(mltk_size_numel(&n, &s), 0);
    ck_assert_int_eq(n, 24);
    s = mltk_shape_make(0, NULL);
    ck_assert_int_eq(mltk_size_numel(&n, &s), 0);
    ck_assert_int_eq(n, 1);
    s = mltk_shape_make(2, fits);
    ck_assert_int_eq(mltk_size_numel(&n, &s), 0);
    ck_assert_int_eq(n, (int64_t)9223372030926249001);
    n = 42;
    s = mltk_shape_make(3, big);  /* 2^63 */
    ck_assert_int_eq(mltk_size_numel(&n, &s), 1);
    s = mltk_shape_make(2, neg);
    ck_assert_int_eq(mltk_size_numel(&n, &s), 1);
    s.ndim = MLTK_MAX_DIMS + 1;
    ck_assert_int_eq(mltk_size_numel(&n, &s), 1);
    s.ndim = -1;
    ck_assert_int_eq(mltk_size_numel(&n, &s), 1);
    ck_assert_int_eq(mltk_size_numel(&n, NULL), 1);
    ck_assert_int_eq(n, 42);
}
END_TEST

START_TEST(test_size_bytes)
{
    size_t b = 7;
    ck_assert_int_eq(mltk_size_bytes(&b, 10, 4), 0);
    ck_assert_uint_eq(b, 40);
    ck_assert_int_eq(mltk_size_bytes(&b, INT64_MAX / 4, 4), 0);
    ck_assert_uint_eq(b, (size_t)(INT64_MAX / 4) * 4);
    b = 7;
    ck_assert_int_eq(mltk_size_bytes(&b, INT64_MAX / 4 + 1, 4), 1);
    ck_assert_int_eq(mltk_size_bytes(&b, (int64_t)1 << 62, 4), 1);
    ck_assert_int_eq(mltk_size_bytes(&b, -1, 4), 1);
    ck_assert_int_eq(mltk_size_bytes(&b, 1, (size_t)INT64_MAX + 1), 1);
    ck_assert_uint_eq(b, 7);
}
END_TEST

/* ---- fixture: registry and the cpu backend ---------------------------------- */

static mltk_registry_t *reg;
static struct mltk_backend be;

static void fixture_open(void)
{
    char *err = NULL;
    mltk_backend_opts o = { .size = sizeof(o), .threads = 1, .device = 0, .seed = 1 };
    int rc = mltk_registry_create(&reg, NULL, 1, &err);
    ck_assert_msg(rc == MLTK_OK, "registry: %s", err ? err : "?");
    rc = mltk_backend_open(&be, reg, "cpu", &o, &err);
    ck_assert_msg(rc == MLTK_OK, "backend cpu: %s", err ? err : "?");
}

static void fixture_close(void)
{
    mltk_backend_close(&be);
    mltk_registry_destroy(reg);
    reg = NULL;
}

/* ---- the cpu backend's conv2d workspace ------------------------------------- */

/* x (1, 1, 8, 8), kernel 3x3 dilated by dil, padded by pad: with pad = dil
 * the output is 8x8 whatever dil is */
static mltk_conv2d_params conv_desc(int64_t pad, int64_t dil)
{
    mltk_conv2d_params p = { .act = MLTK_ACT_NONE };
    p.d = (mltk_conv2d_desc){ .N = 1, .C = 1, .H = 8, .W = 8, .K = 1, .R = 3, .S = 3,
                              .P = 8, .Q = 8, .stride_h = 1, .stride_w = 1, .pad_h = pad,
                              .pad_w = pad, .dil_h = dil, .dil_w = dil, .groups = 1 };
    return p;
}

START_TEST(test_cpu_workspace_bounded)
{
    /* a small geometry: an ordinary answer (the direct strategy's planes) */
    mltk_conv2d_params p = conv_desc(1, 1);
    size_t ws = mltk_op_conv2d_workspace(&be, &p, MLTK_F32);
    ck_assert_uint_lt(ws, (size_t)1 << 30);
    /* within INT_MAX field by field, and P = Q = 8, but the padded planes
     * are (2^31 + 6)^2 floats: no buffer serves it */
    p = conv_desc(INT_MAX / 2 + 1, INT_MAX / 2 + 1);
    ws = mltk_op_conv2d_workspace(&be, &p, MLTK_F32);
    ck_assert_uint_eq(ws, SIZE_MAX);
}
END_TEST

START_TEST(test_cpu_conv_refuses_unbounded)
{
    /* the op refuses the geometry the workspace cannot size, and runs
     * nothing: small tensors, whatever the padding says */
    mltk_conv2d_params p = conv_desc(INT_MAX / 2 + 1, INT_MAX / 2 + 1);
    const int64_t xd[4] = { 1, 1, 8, 8 }, wd[4] = { 1, 1, 3, 3 };
    void *x = NULL, *w = NULL, *y = NULL;
    ck_assert_int_eq(mltk_be_alloc(&be, 64 * sizeof(float), &x), MLTK_OK);
    ck_assert_int_eq(mltk_be_alloc(&be, 9 * sizeof(float), &w), MLTK_OK);
    ck_assert_int_eq(mltk_be_alloc(&be, 64 * sizeof(float), &y), MLTK_OK);
    mltk_tensor tx = mltk_tensor_make(x, MLTK_F32, 4, xd);
    mltk_tensor tw = mltk_tensor_make(w, MLTK_F32, 4, wd);
    mltk_tensor ty = mltk_tensor_make(y, MLTK_F32, 4, xd);
    int rc = mltk_op_conv2d_forward(&be, &ty, &tx, &tw, NULL, &p, NULL, 0);
    ck_assert_int_ne(rc, MLTK_OK);
    ck_assert_ptr_nonnull(strstr(mltk_backend_error(&be), "workspace"));
    mltk_be_free(&be, x);
    mltk_be_free(&be, w);
    mltk_be_free(&be, y);
}
END_TEST

/* ---- layers run standalone -------------------------------------------------- */

/* Create a layer of `type` from "key = value" lines and set it up on one
 * input of shape `in`: the status, and the message (create's or setup's)
 * in *msg (freed by the caller). */
static int layer_try(const char *type, const char *keys, const mltk_shape *in, char **msg)
{
    const void *iface = NULL;
    const mltk_desc *desc = NULL;
    char *err = NULL;
    int rc = mltk_registry_load(reg, type, MLTK_KIND_LAYER, &iface, &err);
    ck_assert_msg(rc == MLTK_OK, "%s: %s", type, err ? err : "?");
    rc = mltk_registry_find(reg, type, MLTK_KIND_LAYER, &desc, &err);
    ck_assert_msg(rc == MLTK_OK, "%s: %s", type, err ? err : "?");

    /* the keys, split into arrays */
    char *text = strdup(keys), *save = NULL;
    const char *k[8], *v[8];
    int n = 0;
    ck_assert_ptr_nonnull(text);
    for (char *line = strtok_r(text, "\n", &save); line && n < 8;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        ck_assert_ptr_nonnull(eq);
        eq[-1] = '\0';
        k[n] = line;
        v[n++] = eq + 2;
    }
    mltk_params_t *params = NULL;
    const mltk_desc *descs[1] = { desc };
    rc = mltk_params_build(&params, descs, 1, n, k, v, NULL, "t.ini", 1, "layer 't'", &err);
    free(text);
    if (rc) {
        *msg = err;
        return rc;
    }
    const struct mltk_layer_i *li = iface;
    void *self = NULL;
    rc = li->create(&self, params, &err);
    if (rc == MLTK_OK) {
        mltk_single_layer *sl = NULL;
        rc = mltk_single_layer_create(&sl, li, self, &be, 1, in, 4, 1, &err);
        mltk_single_layer_destroy(sl, &be);
        if (li->destroy)
            li->destroy(self);
    }
    mltk_params_free(params);
    *msg = err;
    return rc;
}

START_TEST(test_conv2d_padding_range)
{
    const int64_t d[3] = { 1, 8, 8 };
    mltk_shape in = mltk_shape_make(3, d);
    char *msg = NULL;
    int rc = layer_try("conv2d", "filters = 2\nkernel = 3\npadding = 2147483647", &in, &msg);
    ck_assert_int_eq(rc, MLTK_ERR_CONFIG);
    ck_assert_str_eq(msg, "key 'padding' values must be <= 4096, got '2147483647'");
    free(msg);
    msg = NULL;
    rc = layer_try("conv2d", "filters = 2\nkernel = 3\npadding = 3, 99999999999999999999", &in,
                   &msg);
    ck_assert_int_eq(rc, MLTK_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(msg, "key 'padding' values must be <= 4096"));
    free(msg);
    msg = NULL;
    /* the largest padding is accepted, and sets up (a stride as large
     * keeps the output, and so the buffers, small) */
    rc = layer_try("conv2d", "filters = 2\nkernel = 3\npadding = 4096\nstride = 4096", &in,
                   &msg);
    ck_assert_msg(rc == MLTK_OK, "%s", msg ? msg : "?");
    free(msg);
}
END_TEST

START_TEST(test_conv2d_descriptor_max)
{
    const int64_t d[3] = { 1, 8, 8 };
    mltk_shape in = mltk_shape_make(3, d);
    char *msg = NULL;
    int rc = layer_try("conv2d", "filters = 2\nkernel = 9223372036854775807", &in, &msg);
    ck_assert_int_eq(rc, MLTK_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(msg, "key 'kernel' values must be <= 4096"));
    free(msg);
}
END_TEST

START_TEST(test_dense_weight_limit)
{
    /* 2^20 units on 2^22 inputs: 2^42 weights, 32 TiB with the gradient */
    const int64_t d[1] = { (int64_t)1 << 22 };
    mltk_shape in = mltk_shape_make(1, d);
    char *msg = NULL;
    int rc = layer_try("dense", "units = 1048576", &in, &msg);
    ck_assert_int_eq(rc, MLTK_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(msg, "key 'units' = 1048576 with 4194304 input features"));
    free(msg);
}
END_TEST

/* ---- suite ------------------------------------------------------------------ */

static Suite *sizes_suite(void)
{
    Suite *s = suite_create("sizes");
    TCase *tc = tcase_create("helpers");
    tcase_add_test(tc, test_size_mul);
    tcase_add_test(tc, test_size_add);
    tcase_add_test(tc, test_size_numel);
    tcase_add_test(tc, test_size_bytes);
    suite_add_tcase(s, tc);
    tc = tcase_create("cpu");
    tcase_add_checked_fixture(tc, fixture_open, fixture_close);
    tcase_add_test(tc, test_cpu_workspace_bounded);
    tcase_add_test(tc, test_cpu_conv_refuses_unbounded);
    tcase_add_test(tc, test_conv2d_padding_range);
    tcase_add_test(tc, test_conv2d_descriptor_max);
    tcase_add_test(tc, test_dense_weight_limit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sizes_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
