/* check_opcheck.c - tests of core/op.c (the op contract's checks and its
 * dispatch) and core/tensor.c (dtypes and tensor views).
 *
 * What this is: the op table's consistency; well-formed calls of every
 * op family passing mltk_op_check(); representative malformed calls
 * refused with the status and the message a user would read; and
 * mltk_op_run() on a small fake backend defined here: dtype support,
 * backend failures and their messages, workspace sizes, the memory calls'
 * error capture and host-synchronisation count, and the typed wrappers'
 * handling of absent tensors.  No tensor data is ever read: the data
 * pointers point at a dummy buffer.
 * What this is not: a test of any computation (the conformance suites
 * compare backends' results).
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "op.h"
#include "testutil.h"

/* a data pointer for tensors whose data is never read */
static float dummy[64];
#define D ((void *)dummy)

static mltk_tensor t1(mltk_dtype dt, int64_t n)
{
    return mltk_tensor_1d(D, dt, n);
}

static mltk_tensor t2(mltk_dtype dt, int64_t r, int64_t c)
{
    return mltk_tensor_2d(D, dt, r, c);
}

static mltk_tensor t3(mltk_dtype dt, int64_t a, int64_t b, int64_t c)
{
    int64_t d[3] = { a, b, c };
    return mltk_tensor_make(D, dt, 3, d);
}

static mltk_tensor t4(mltk_dtype dt, int64_t a, int64_t b, int64_t c, int64_t e)
{
    int64_t d[4] = { a, b, c, e };
    return mltk_tensor_make(D, dt, 4, d);
}

static mltk_tensor scalar(void)
{
    return t1(MLTK_F32, 1);
}

static mltk_tensor absent(void)
{
    mltk_tensor t;
    memset(&t, 0, sizeof t);
    return t;
}

/* A call of `op` with n tensors. */
static mltk_op_call call(mltk_op op, int n, const mltk_tensor *t, const void *params)
{
    mltk_op_call c;
    memset(&c, 0, sizeof c);
    c.op = op;
    c.n_t = n;
    for (int i = 0; i < n; i++)
        c.t[i] = t[i];
    c.params = params;
    return c;
}

#define PASS(c)                                                                  \
    do {                                                                         \
        char *e_ = NULL;                                                         \
        int rc_ = mltk_op_check(&(c), &e_);                                      \
        ck_assert_msg(rc_ == MLTK_OK, "expected the call to pass: %d %s", rc_,   \
                      e_ ? e_ : "(no message)");                                 \
        free(e_);                                                                \
    } while (0)

#define REFUSE(c, status, substr)                                                \
    do {                                                                         \
        char *e_ = NULL;                                                         \
        int rc_ = mltk_op_check(&(c), &e_);                                      \
        ck_assert_msg(rc_ == (status), "expected status %d, got %d (%s)",        \
                      (int)(status), rc_, e_ ? e_ : "(no message)");             \
        TU_ASSERT_CONTAINS(e_, substr);                                          \
        free(e_);                                                                \
    } while (0)

/* ---- dtypes and tensor views (tensor.c) ------------------------------------- */

START_TEST(test_dtypes)
{
    static const struct { mltk_dtype dt; const char *name; size_t size; int fl; } d[] = {
        { MLTK_F32, "f32", 4, 1 }, { MLTK_BF16, "bf16", 2, 1 }, { MLTK_F16, "f16", 2, 1 },
        { MLTK_I32, "i32", 4, 0 }, { MLTK_I64, "i64", 8, 0 },   { MLTK_I8, "i8", 1, 0 },
        { MLTK_U8, "u8", 1, 0 },
    };
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        ck_assert_str_eq(mltk_dtype_name(d[i].dt), d[i].name);
        ck_assert_uint_eq(mltk_dtype_size(d[i].dt), d[i].size);
        ck_assert_int_eq(mltk_dtype_is_float(d[i].dt), d[i].fl);
        ck_assert_int_eq(mltk_dtype_parse(d[i].name), (int)d[i].dt);
    }
    ck_assert_int_eq(mltk_dtype_parse("float32"), -1);
    ck_assert_int_eq(mltk_dtype_parse(NULL), -1);
    ck_assert_str_eq(mltk_dtype_name(MLTK_DTYPE_COUNT), "?");
    ck_assert_uint_eq(mltk_dtype_size(MLTK_DTYPE_COUNT), 0);
}
END_TEST

START_TEST(test_tensor_views)
{
    char buf[128];
    mltk_tensor a = t2(MLTK_F32, 128, 784);
    ck_assert_int_eq(mltk_tensor_numel(&a), 128 * 784);
    ck_assert_str_eq(mltk_tensor_str(&a, buf, sizeof buf), "f32 (128, 784)");
    ck_assert_int_eq(mltk_tensor_stride(&a, 0), 784);
    ck_assert_int_eq(mltk_tensor_stride(&a, 1), 1);
    ck_assert_int_eq(mltk_tensor_is_contiguous(&a), 1);

    mltk_tensor b = t4(MLTK_BF16, 2, 3, 4, 5);
    mltk_tensor r = mltk_tensor_rows(&b, 6);
    ck_assert_int_eq(r.shape.ndim, 2);
    ck_assert_int_eq(r.shape.dim[0], 6);
    ck_assert_int_eq(r.shape.dim[1], 20);
    ck_assert_int_eq(r.dtype, MLTK_BF16);
    ck_assert_ptr_eq(r.data, D);
    ck_assert_int_eq(mltk_tensor_stride(&b, 1), 20);

    /* a column block of a wider matrix: strided */
    a.stride[0] = 1024;
    a.stride[1] = 1;
    ck_assert_int_eq(mltk_tensor_is_contiguous(&a), 0);
    ck_assert_int_eq(mltk_tensor_stride(&a, 0), 1024);
    ck_assert_str_eq(mltk_tensor_str(&a, buf, sizeof buf), "f32 (128, 784) strides (1024, 1)");
    /* dense strides given explicitly are contiguous; a size-1 dim's stride
     * does not matter */
    a.stride[0] = 784;
    ck_assert_int_eq(mltk_tensor_is_contiguous(&a), 1);
    mltk_tensor one = t2(MLTK_F32, 1, 8);
    one.stride[0] = 99;
    one.stride[1] = 1;
    ck_assert_int_eq(mltk_tensor_is_contiguous(&one), 1);

    mltk_tensor v = t1(MLTK_I32, 7);
    ck_assert_str_eq(mltk_tensor_str(&v, buf, sizeof buf), "i32 (7)");
}
END_TEST

/* ---- the table ----------------------------------------------------------------- */

START_TEST(test_table)
{
    ck_assert_ptr_null(mltk_op_info_get(MLTK_OP_NONE));
    ck_assert_ptr_null(mltk_op_info_get(MLTK_OP_COUNT));
    ck_assert_str_eq(mltk_op_name(MLTK_OP_COUNT), "?");
    ck_assert_str_eq(mltk_op_name(MLTK_OP_GEMM), "gemm");
    ck_assert_str_eq(mltk_op_name(MLTK_OP_CONV2D_FORWARD), "conv2d_forward");
    for (int op = 1; op < MLTK_OP_COUNT; op++) {
        const mltk_op_info *in = mltk_op_info_get((mltk_op)op);
        ck_assert_msg(in != NULL, "op %d has no entry", op);
        ck_assert_int_eq(in->op, op);
        ck_assert_str_eq(mltk_op_name((mltk_op)op), in->name);
        ck_assert_int_ge(in->n_t, 1);
        ck_assert_int_le(in->n_t, MLTK_OP_MAX_TENSORS);
        ck_assert_int_ge(in->n_out, 1);
        ck_assert_int_le(in->n_out, in->n_t);
        ck_assert_uint_eq(in->optional >> in->n_t, 0);
        int names = 1;
        for (const char *p = in->tensor_names; *p; p++)
            names += *p == ',';
        ck_assert_msg(names == in->n_t, "%s: %d names for %d tensors", in->name, names,
                      in->n_t);
        for (int o = 1; o < op; o++)
            ck_assert_str_ne(mltk_op_info_get((mltk_op)o)->name, in->name);
    }
    ck_assert_uint_eq(mltk_op_info_get(MLTK_OP_GEMM)->params_size, sizeof(mltk_gemm_params));
    ck_assert_str_eq(mltk_op_info_get(MLTK_OP_GEMM)->tensor_names, "C,A,B,bias");
}
END_TEST

/* ---- generic checks ---------------------------------------------------------- */

START_TEST(test_generic)
{
    mltk_axpby_params ap = { 1.0f, 0.0f };
    mltk_tensor t[2] = { t1(MLTK_F32, 8), t1(MLTK_F32, 8) };
    mltk_op_call c = call(MLTK_OP_AXPBY, 2, t, &ap);
    PASS(c);

    c.op = (mltk_op)99;
    REFUSE(c, MLTK_ERR_INVALID, "op 99: not an op");
    c.op = MLTK_OP_AXPBY;
    c.n_t = 3;
    REFUSE(c, MLTK_ERR_INVALID, "axpby: 3 tensors given; it takes 2 (y,x)");
    c.n_t = 2;
    c.params = NULL;
    REFUSE(c, MLTK_ERR_INVALID, "axpby: no params");
    c.params = &ap;

    c.t[1].data = NULL;
    REFUSE(c, MLTK_ERR_INVALID, "axpby: x is f32 (8) with no data");
    /* an empty tensor needs no data */
    c.t[0] = t1(MLTK_F32, 0);
    c.t[1] = t1(MLTK_F32, 0);
    c.t[1].data = NULL;
    PASS(c);

    c.t[0] = t1(MLTK_F32, 8);
    c.t[1] = t1(MLTK_F32, 5);
    REFUSE(c, MLTK_ERR_SHAPE, "axpby: y is (8) but x is (5)");
    c.t[1] = t1(MLTK_F32, -1);
    REFUSE(c, MLTK_ERR_SHAPE, "x is (-1): a negative dimension");
    c.t[1] = t1(MLTK_BF16, 8);
    REFUSE(c, MLTK_ERR_INVALID, "axpby: y is f32 but the op computes in bf16 (x's dtype)");
    c.t[0].dtype = MLTK_BF16;
    PASS(c);
    c.t[1].dtype = (mltk_dtype)77;
    REFUSE(c, MLTK_ERR_INVALID, "x has dtype 77");

    /* strides only where the op allows them */
    c.t[0] = t2(MLTK_F32, 2, 4);
    c.t[1] = t2(MLTK_F32, 2, 4);
    c.t[1].stride[0] = 8;
    c.t[1].stride[1] = 1;
    REFUSE(c, MLTK_ERR_INVALID, "axpby: x is f32 (2, 4) strides (8, 1): it must be contiguous");
    c.t[1].stride[0] = 4;
    PASS(c);
}
END_TEST

/* ---- gemm -------------------------------------------------------------------- */

START_TEST(test_gemm)
{
    mltk_gemm_params p = { .alpha = 1.0f };
    mltk_tensor t[4] = { t2(MLTK_F32, 3, 2), t2(MLTK_F32, 3, 4), t2(MLTK_F32, 4, 2),
                         t1(MLTK_F32, 2) };
    mltk_op_call c = call(MLTK_OP_GEMM, 4, t, &p);
    PASS(c);
    c.t[3] = absent();
    PASS(c);
    c.t[3] = t1(MLTK_F32, 5);
    REFUSE(c, MLTK_ERR_SHAPE, "gemm: bias is (5) with 5 elements but N (the columns of C) = 2");
    c.t[3] = absent();

    c.t[2] = t2(MLTK_F32, 5, 2);
    REFUSE(c, MLTK_ERR_SHAPE, "gemm: op(A) is (3, 4) but op(B) is (5, 2)");
    /* transposes */
    p.ta = 1;
    c.t[1] = t2(MLTK_F32, 4, 3);
    c.t[2] = t2(MLTK_F32, 4, 2);
    PASS(c);
    p.tb = 1;
    c.t[2] = t2(MLTK_F32, 2, 4);
    PASS(c);
    c.t[0] = t2(MLTK_F32, 3, 3);
    REFUSE(c, MLTK_ERR_SHAPE, "gemm: C is (3, 3) but op(A) op(B) is (3, 2)");
    p.ta = p.tb = 0;

    /* bf16 products into f32 or bf16; never another dtype for C */
    mltk_tensor b[4] = { t2(MLTK_F32, 3, 2), t2(MLTK_BF16, 3, 4), t2(MLTK_BF16, 4, 2),
                         t1(MLTK_F32, 2) };
    c = call(MLTK_OP_GEMM, 4, b, &p);
    PASS(c);
    c.t[0].dtype = MLTK_BF16;
    PASS(c);
    c.t[0].dtype = MLTK_F16;
    REFUSE(c, MLTK_ERR_INVALID, "gemm: C is f16; it must be f32 or the op's dtype bf16");
    c.t[0].dtype = MLTK_F32;
    c.t[3].dtype = MLTK_BF16;
    REFUSE(c, MLTK_ERR_INVALID, "gemm: bias is bf16; it must be f32");
    c.t[3].dtype = MLTK_F32;
    c.t[2].dtype = MLTK_F32;
    REFUSE(c, MLTK_ERR_INVALID, "gemm: B is f32 but the op computes in bf16 (A's dtype)");

    /* strided rows: a (3, 4) block of a (3, 10) matrix */
    c = call(MLTK_OP_GEMM, 4, t, &p);
    c.t[1] = t2(MLTK_F32, 3, 4);
    c.t[2] = t2(MLTK_F32, 4, 2);
    c.t[1].stride[0] = 10;
    c.t[1].stride[1] = 1;
    PASS(c);
    c.t[1].stride[0] = 3;
    REFUSE(c, MLTK_ERR_INVALID, "gemm: A is (3, 4) with row stride 3: rows overlap");
    c.t[1].stride[0] = 10;
    c.t[1].stride[1] = 2;
    REFUSE(c, MLTK_ERR_INVALID, "its innermost stride must be 1");
    c.t[1].stride[1] = 1;
    c.t[3] = t1(MLTK_F32, 2);
    c.t[3].stride[0] = 2;
    REFUSE(c, MLTK_ERR_INVALID, "gemm: bias is f32 (2) strides (2): it must be contiguous");
}
END_TEST

START_TEST(test_gemm_batched)
{
    mltk_gemm_params p = { .alpha = 1.0f };
    mltk_tensor t[4] = { t3(MLTK_F32, 5, 3, 2), t3(MLTK_F32, 5, 3, 4), t3(MLTK_F32, 5, 4, 2),
                         absent() };
    mltk_op_call c = call(MLTK_OP_GEMM, 4, t, &p);
    PASS(c);
    /* one B for every product */
    c.t[2].stride[0] = 0;
    c.t[2].stride[1] = 2;
    c.t[2].stride[2] = 1;
    PASS(c);
    /* but not one C */
    c.t[0].stride[0] = 0;
    c.t[0].stride[1] = 2;
    c.t[0].stride[2] = 1;
    REFUSE(c, MLTK_ERR_INVALID, "gemm: C is (5, 3, 2) with batch stride 0: its matrices overlap");
    c.t[0] = t3(MLTK_F32, 5, 3, 2);
    c.t[1] = t3(MLTK_F32, 4, 3, 4);
    REFUSE(c, MLTK_ERR_SHAPE, "gemm: A is (4, 3, 4), a batch of 4, but C is (5, 3, 2)");
    c.t[1] = t2(MLTK_F32, 3, 4);
    REFUSE(c, MLTK_ERR_SHAPE, "gemm: A is (3, 4) but C is (5, 3, 2)");
    c.t[0] = t4(MLTK_F32, 1, 5, 3, 2);
    REFUSE(c, MLTK_ERR_SHAPE, "gemm: C is (1, 5, 3, 2); expected (M, N)");
}
END_TEST

/* ---- other families ---------------------------------------------------------- */

START_TEST(test_elementwise)
{
    mltk_act_params ap = { MLTK_ACT_RELU, 0.0f };
    mltk_tensor t[4] = { t1(MLTK_F32, 8), t1(MLTK_F32, 8), t1(MLTK_F32, 8), t1(MLTK_F32, 8) };
    mltk_op_call c = call(MLTK_OP_ACT_BACKWARD, 4, t, &ap);
    PASS(c);
    c.t[3] = absent();
    PASS(c);                /* relu reads x when y is absent */
    c.t[2] = absent();
    REFUSE(c, MLTK_ERR_INVALID, "act_backward: relu's gradient needs x or y");
    c.t[3] = t[3];
    ap.act = MLTK_ACT_ELU;
    ap.alpha = 1.0f;
    PASS(c);                /* elu reads y when alpha >= 0 */
    ap.alpha = -0.5f;
    REFUSE(c, MLTK_ERR_INVALID, "act_backward: elu's gradient is read from x");
    ap.alpha = 0.0f;
    c.t[2] = t[2];
    ap.act = MLTK_ACT_GELU;
    PASS(c);
    c.t[2] = absent();
    REFUSE(c, MLTK_ERR_INVALID, "act_backward: gelu's gradient is read from x");
    ap.act = MLTK_ACT_NONE;
    PASS(c);
    ap.act = (mltk_act)12;
    REFUSE(c, MLTK_ERR_INVALID, "act = 12 is not an activation");

    mltk_clamp_params cp = { 1.0f, -1.0f };
    c = call(MLTK_OP_CLAMP, 1, t, &cp);
    REFUSE(c, MLTK_ERR_INVALID, "clamp: lo = 1 is not at most hi = -1");

    mltk_tensor ct[2] = { t1(MLTK_BF16, 8), t1(MLTK_F32, 8) };
    c = call(MLTK_OP_CAST, 2, ct, NULL);
    PASS(c);
    c.t[0].dtype = MLTK_I32;
    REFUSE(c, MLTK_ERR_INVALID, "cast: y is i32; cast converts between f32, bf16 and f16");

    mltk_tensor s[2] = { t1(MLTK_F32, 2), t2(MLTK_F32, 4, 4) };
    c = call(MLTK_OP_SUM, 2, s, NULL);
    REFUSE(c, MLTK_ERR_SHAPE, "sum: out is (2); it must be a 1-element f32 scalar");
    c.t[0] = scalar();
    PASS(c);

    mltk_sum_rows_params sp = { 0.0f };
    mltk_tensor r[2] = { t1(MLTK_F32, 4), t2(MLTK_F32, 16, 4) };
    c = call(MLTK_OP_SUM_ROWS, 2, r, &sp);
    PASS(c);
    c.t[0] = t1(MLTK_F32, 16);
    REFUSE(c, MLTK_ERR_SHAPE, "sum_rows: out is (16) with 16 elements but cols");

    mltk_dropout_params dp = { 1.0f, 1, 0 };
    mltk_tensor d[3] = { t1(MLTK_F32, 8), t1(MLTK_F32, 8), t1(MLTK_F32, 8) };
    c = call(MLTK_OP_DROPOUT_FORWARD, 3, d, &dp);
    REFUSE(c, MLTK_ERR_INVALID, "dropout_forward: p = 1; it must lie in [0, 1)");
    dp.p = 0.5f;
    PASS(c);
}
END_TEST

START_TEST(test_losses)
{
    mltk_xent_params xp = { 0.1f, 1.0f };
    mltk_tensor t[5] = { scalar(), t2(MLTK_F32, 8, 10), t2(MLTK_F32, 8, 10), t1(MLTK_I32, 8),
                         t1(MLTK_F32, 10) };
    mltk_op_call c = call(MLTK_OP_SOFTMAX_XENT, 5, t, &xp);
    PASS(c);
    c.t[1] = absent();
    c.t[4] = absent();
    PASS(c);
    c.t[3] = t1(MLTK_I32, 7);
    REFUSE(c, MLTK_ERR_SHAPE, "softmax_xent: labels is (7) with 7 elements but N (the rows "
           "of logits) = 8");
    c.t[3] = t1(MLTK_F32, 8);
    REFUSE(c, MLTK_ERR_INVALID, "softmax_xent: labels is f32; it must be i32");
    c.t[3] = t1(MLTK_I32, 8);
    c.t[4] = t1(MLTK_F32, 9);
    REFUSE(c, MLTK_ERR_SHAPE, "weights is (9) with 9 elements but C");
    c.t[4] = absent();
    c.t[2] = t2(MLTK_F32, 8, 0);
    REFUSE(c, MLTK_ERR_DATA, "softmax_xent: logits is (8, 0): no class");
    c.t[2] = t3(MLTK_F32, 8, 10, 1);
    REFUSE(c, MLTK_ERR_SHAPE, "softmax_xent: logits is (8, 10, 1); expected (N, C)");
    c.t[2] = t2(MLTK_F32, 8, 10);
    xp.label_smoothing = 1.5f;
    REFUSE(c, MLTK_ERR_INVALID, "label_smoothing = 1.5");

    mltk_kl_params kp = { 0.0f, 1.0f };
    mltk_tensor k[4] = { scalar(), absent(), t2(MLTK_F32, 4, 3), t2(MLTK_F32, 4, 3) };
    c = call(MLTK_OP_KL_DIV_LOGITS, 4, k, &kp);
    REFUSE(c, MLTK_ERR_INVALID, "kl_div_logits: T = 0");
    kp.T = 2.0f;
    PASS(c);
    c.t[3] = t2(MLTK_F32, 4, 2);
    REFUSE(c, MLTK_ERR_SHAPE, "kl_div_logits: teacher is (4, 2) but student is (4, 3)");

    mltk_pointwise_params pp = { (mltk_pointwise)7, 1.0f };
    mltk_tensor w[4] = { scalar(), t1(MLTK_F32, 6), t2(MLTK_F32, 2, 3), t1(MLTK_F32, 6) };
    c = call(MLTK_OP_POINTWISE_LOSS, 4, w, &pp);
    REFUSE(c, MLTK_ERR_INVALID, "pointwise_loss: kind = 7");
    pp.kind = MLTK_LOSS_BCE_LOGITS;
    PASS(c);
}
END_TEST

START_TEST(test_data_movement)
{
    mltk_tensor g[3] = { t2(MLTK_U8, 4, 784), t4(MLTK_U8, 100, 1, 28, 28), t1(MLTK_I32, 4) };
    mltk_op_call c = call(MLTK_OP_GATHER_ROWS, 3, g, NULL);
    PASS(c);
    c.t[0] = t2(MLTK_U8, 4, 780);
    REFUSE(c, MLTK_ERR_SHAPE, "gather_rows: dst is (4, 780) but src is (100, 1, 28, 28)");

    mltk_copy_params cp = { 0 };
    mltk_tensor k[2] = { t2(MLTK_F32, 4, 3), t2(MLTK_F32, 4, 3) };
    c = call(MLTK_OP_COPY_2D, 2, k, &cp);
    c.t[0].stride[0] = 10;   /* columns 0..2 of a (4, 10) concat */
    c.t[0].stride[1] = 1;
    PASS(c);
    c.t[1].stride[0] = 2;
    c.t[1].stride[1] = 1;
    REFUSE(c, MLTK_ERR_INVALID, "copy_2d: src is (4, 3) with row stride 2: rows overlap");

    mltk_tensor e[3] = { t3(MLTK_F32, 2, 5, 16), t2(MLTK_F32, 100, 16), t2(MLTK_F32, 2, 5) };
    c = call(MLTK_OP_EMBEDDING_FORWARD, 3, e, NULL);
    PASS(c);
    c.t[2] = t2(MLTK_F32, 2, 4);
    REFUSE(c, MLTK_ERR_SHAPE, "embedding_forward: ids is (2, 4) with 8 elements but n");
    c.t[2] = t2(MLTK_I32, 2, 5);
    REFUSE(c, MLTK_ERR_INVALID, "embedding_forward: ids is i32; it must be f32");

    mltk_augment_params ap = { .pad = 4, .flip = 1 };
    mltk_tensor a[3] = { t4(MLTK_F32, 8, 3, 32, 32), t4(MLTK_F32, 50, 3, 32, 32),
                         t1(MLTK_I32, 8) };
    c = call(MLTK_OP_GATHER_AUGMENT_2D, 3, a, &ap);
    PASS(c);
    ap.pad = -1;
    REFUSE(c, MLTK_ERR_INVALID, "gather_augment_2d: pad = -1");
}
END_TEST

static mltk_conv2d_params conv_params(void)
{
    mltk_conv2d_params p;
    memset(&p, 0, sizeof p);
    p.d = (mltk_conv2d_desc){ .N = 8, .C = 4, .H = 28, .W = 28, .K = 6, .R = 3, .S = 3,
                              .P = 14, .Q = 14, .stride_h = 2, .stride_w = 2, .pad_h = 1,
                              .pad_w = 1, .dil_h = 1, .dil_w = 1, .groups = 2 };
    p.act = MLTK_ACT_RELU;
    return p;
}

START_TEST(test_conv_pool)
{
    mltk_conv2d_params p = conv_params();
    mltk_tensor t[4] = { t4(MLTK_F32, 8, 6, 14, 14), t4(MLTK_F32, 8, 4, 28, 28),
                         t4(MLTK_F32, 6, 2, 3, 3), t1(MLTK_F32, 6) };
    mltk_op_call c = call(MLTK_OP_CONV2D_FORWARD, 4, t, &p);
    PASS(c);
    p.d.P = 15;
    REFUSE(c, MLTK_ERR_INVALID, "conv2d_forward: desc: P = 15 but (H + 2 pad_h - dil_h (R - 1)"
           " - 1) / stride + 1 = 14");
    p.d.P = 14;
    p.d.groups = 3;
    REFUSE(c, MLTK_ERR_INVALID, "desc: groups = 3 must divide C = 4 and K = 6");
    p.d.groups = 2;
    c.t[1] = t4(MLTK_F32, 8, 4, 28, 27);
    REFUSE(c, MLTK_ERR_SHAPE, "conv2d_forward: x is (8, 4, 28, 27) but the desc says "
           "(N, C, H, W) = (8, 4, 28, 28)");
    c.t[1] = t4(MLTK_F32, 8, 4, 28, 28);
    c.t[2] = t4(MLTK_F32, 6, 4, 3, 3);
    REFUSE(c, MLTK_ERR_SHAPE, "w is (6, 4, 3, 3) but the desc says (K, C / groups, R, S)");
    c.t[2] = t4(MLTK_F32, 6, 2, 3, 3);
    p.act = MLTK_ACT_GELU;
    REFUSE(c, MLTK_ERR_INVALID, "conv2d_forward: act = gelu: the conv epilogue takes");
    p.act = MLTK_ACT_NONE;
    p.d.dil_h = 0;
    REFUSE(c, MLTK_ERR_INVALID, "desc: dil_h = 0; it must be at least 1");
    p.d.dil_h = 1;

    mltk_tensor f[4] = { t4(MLTK_F32, 6, 2, 3, 3), absent(), t4(MLTK_F32, 8, 6, 14, 14),
                         t4(MLTK_F32, 8, 4, 28, 28) };
    c = call(MLTK_OP_CONV2D_BACKWARD_FILTER, 4, f, &p);
    PASS(c);
    c.t[1] = t1(MLTK_F32, 4);
    REFUSE(c, MLTK_ERR_SHAPE, "conv2d_backward_filter: db is (4) with 4 elements but K = 6");

    mltk_pool2d_params pp = { MLTK_POOL_MAX, { .N = 2, .C = 3, .H = 8, .W = 8, .R = 2,
                                               .S = 2, .P = 4, .Q = 4, .stride_h = 2,
                                               .stride_w = 2 } };
    mltk_tensor q[4] = { t4(MLTK_F32, 2, 3, 8, 8), t4(MLTK_F32, 2, 3, 4, 4),
                         t4(MLTK_F32, 2, 3, 8, 8), t4(MLTK_F32, 2, 3, 4, 4) };
    c = call(MLTK_OP_POOL2D_BACKWARD, 4, q, &pp);
    PASS(c);
    pp.d.pad_h = 2;
    REFUSE(c, MLTK_ERR_INVALID, "pool2d_backward: desc: pad (2, 0) is more than half the window");
    pp.d.pad_h = 0;
    pp.kind = (mltk_pool)5;
    REFUSE(c, MLTK_ERR_INVALID, "pool2d_backward: kind = 5");
}
END_TEST

START_TEST(test_norms)
{
    mltk_bn_params bp = { 0.1f, 1e-5f };
    mltk_tensor t[8] = { t4(MLTK_F32, 8, 16, 5, 5), t1(MLTK_F32, 16), t1(MLTK_F32, 16),
                         t1(MLTK_F32, 16), t1(MLTK_F32, 16), t4(MLTK_F32, 8, 16, 5, 5),
                         t1(MLTK_F32, 16), absent() };
    mltk_op_call c = call(MLTK_OP_BATCHNORM_FORWARD_TRAIN, 8, t, &bp);
    PASS(c);
    c.t[6] = t1(MLTK_F32, 15);
    REFUSE(c, MLTK_ERR_SHAPE, "batchnorm_forward_train: gamma is (15) with 15 elements but C");
    c.t[6] = absent();
    c.t[0] = t2(MLTK_F32, 1, 16);
    c.t[5] = t2(MLTK_F32, 1, 16);
    REFUSE(c, MLTK_ERR_INVALID, "batchnorm_forward_train: x is (1, 16): one value per channel");
    c.t[0] = t2(MLTK_F32, 0, 16);
    c.t[5] = t2(MLTK_F32, 0, 16);
    PASS(c);
    bp.eps = -1.0f;
    REFUSE(c, MLTK_ERR_INVALID, "eps = -1");

    mltk_ln_params lp = { 1e-5f };
    mltk_tensor l[6] = { t3(MLTK_F32, 4, 7, 32), t2(MLTK_F32, 4, 7), t2(MLTK_F32, 4, 7),
                         t3(MLTK_F32, 4, 7, 32), t1(MLTK_F32, 32), t1(MLTK_F32, 32) };
    c = call(MLTK_OP_LAYERNORM_FORWARD, 6, l, &lp);
    PASS(c);
    c.t[1] = t1(MLTK_F32, 4);
    REFUSE(c, MLTK_ERR_SHAPE, "layernorm_forward: mean is (4) with 4 elements but rows");

    mltk_tensor lb[8] = { absent(), t1(MLTK_F32, 32), absent(), t2(MLTK_F32, 28, 32),
                          t2(MLTK_F32, 28, 32), absent(), t1(MLTK_F32, 28), t1(MLTK_F32, 28) };
    c = call(MLTK_OP_LAYERNORM_BACKWARD, 8, lb, NULL);
    PASS(c);
}
END_TEST

START_TEST(test_optimizers)
{
    int64_t seg[3] = { 0, 6, 10 };
    mltk_lamb_params lp = { .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-6f,
                            .t = 1, .n_seg = 2, .seg_off = seg };
    mltk_tensor t[6] = { t1(MLTK_F32, 10), t1(MLTK_F32, 10), t1(MLTK_F32, 10),
                         t1(MLTK_F32, 4), t1(MLTK_F32, 10), absent() };
    mltk_op_call c = call(MLTK_OP_LAMB_STEP, 6, t, &lp);
    PASS(c);
    seg[1] = 11;
    REFUSE(c, MLTK_ERR_INVALID, "lamb_step: seg_off[2] = 10 is below seg_off[1] = 11");
    seg[1] = 6;
    c.t[3] = t1(MLTK_F32, 3);
    REFUSE(c, MLTK_ERR_SHAPE, "lamb_step: scratch is (3) with 3 elements but 2 n_seg = 4");
    c.t[3] = t1(MLTK_F32, 4);
    c.t[4] = t1(MLTK_F32, 9);
    REFUSE(c, MLTK_ERR_SHAPE, "lamb_step: g is (9) with 9 elements but n");
    c.t[4] = t1(MLTK_BF16, 10);
    REFUSE(c, MLTK_ERR_INVALID, "lamb_step: g is bf16; it must be f32");

    mltk_adam_params ap = { .lr = 1e-3f, .beta1 = 1.0f, .beta2 = 0.999f, .t = 1 };
    mltk_tensor a[5] = { t1(MLTK_F32, 10), t1(MLTK_F32, 10), t1(MLTK_F32, 10),
                         t1(MLTK_F32, 10), t1(MLTK_F32, 10) };
    c = call(MLTK_OP_ADAM_STEP, 5, a, &ap);
    REFUSE(c, MLTK_ERR_INVALID, "adam_step: beta1 = 1, beta2 = 0.999");
    ap.beta1 = 0.9f;
    PASS(c);
    ap.t = 0;
    REFUSE(c, MLTK_ERR_INVALID, "adam_step: t = 0");

    mltk_sgd_params sp = { .lr = 0.1f, .momentum = 0.9f, .t = 1 };
    mltk_tensor s[4] = { t1(MLTK_F32, 10), absent(), t1(MLTK_F32, 10), absent() };
    c = call(MLTK_OP_SGD_STEP, 4, s, &sp);
    REFUSE(c, MLTK_ERR_INVALID, "sgd_step: momentum = 0.9 needs the mom buffer");
    sp.momentum = 0.0f;
    PASS(c);
}
END_TEST

/* ---- dispatch on a fake backend ------------------------------------------------ */

typedef struct fake {
    int          runs;
    mltk_op_call last;
    int          fail_rc;
    const char  *fail_msg;
    size_t       ws[MLTK_OP_COUNT];
    int          fail_alloc;
} fake;

static int fk_supports(void *ctx, mltk_op op, mltk_dtype dt)
{
    (void)ctx;
    (void)op;
    return dt == MLTK_F32;
}

static size_t fk_workspace(void *ctx, const mltk_op_call *c)
{
    const fake *f = ctx;
    return f->ws[c->op];
}

static int fk_run(void *ctx, const mltk_op_call *c, char **err)
{
    fake *f = ctx;
    f->runs++;
    f->last = *c;
    if (f->fail_rc && f->fail_msg)
        *err = strdup(f->fail_msg);
    return f->fail_rc;
}

static int fk_alloc(void *ctx, size_t bytes, void **ptr)
{
    const fake *f = ctx;
    if (f->fail_alloc)
        return MLTK_ERR_NOMEM;
    *ptr = malloc(bytes ? bytes : 1);
    return *ptr ? MLTK_OK : MLTK_ERR_NOMEM;
}

static void fk_free(void *ctx, void *ptr)
{
    (void)ctx;
    free(ptr);
}

static int fk_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
    (void)ctx;
    memmove(dst, src, bytes);
    return MLTK_OK;
}

static int fk_sync(void *ctx)
{
    (void)ctx;
    return MLTK_OK;
}

static const struct mltk_backend_i fake_i = {
    .size = sizeof(struct mltk_backend_i),
    .alloc = fk_alloc, .free = fk_free, .upload = fk_copy, .download = fk_copy,
    .copy = fk_copy, .sync = fk_sync,
    .supports = fk_supports, .workspace = fk_workspace, .run = fk_run,
};

START_TEST(test_run)
{
    fake f;
    memset(&f, 0, sizeof f);
    struct mltk_backend be = { &fake_i, &f, "fake", mltk_backend_state_new() };
    ck_assert_ptr_nonnull(be.state);
    ck_assert_str_eq(mltk_backend_error(&be), "");

    mltk_tensor C = t2(MLTK_F32, 3, 2), A = t2(MLTK_F32, 3, 4), B = t2(MLTK_F32, 4, 2);
    mltk_gemm_params gp = { .alpha = 1.0f };
    ck_assert_int_eq(mltk_op_gemm(&be, &C, &A, &B, NULL, &gp), MLTK_OK);
    ck_assert_int_eq(f.runs, 1);
    ck_assert_int_eq(f.last.op, MLTK_OP_GEMM);
    ck_assert_int_eq(f.last.n_t, 4);
    ck_assert_ptr_null(f.last.t[3].data);  /* absent bias */
    ck_assert_int_eq(f.last.t[1].shape.dim[1], 4);
    ck_assert_ptr_eq(f.last.params, &gp);

    /* refused by the check: the backend never sees it */
    mltk_tensor B5 = t2(MLTK_F32, 5, 2);
    ck_assert_int_eq(mltk_op_gemm(&be, &C, &A, &B5, NULL, &gp), MLTK_ERR_SHAPE);
    ck_assert_int_eq(f.runs, 1);
    ck_assert_str_eq(mltk_backend_error(&be), "gemm: op(A) is (3, 4) but op(B) is (5, 2)");

    ck_assert_int_eq(mltk_op_fill(&be, NULL, 1.0f), MLTK_ERR_INVALID);
    ck_assert_str_eq(mltk_backend_error(&be), "fill: y is missing");

    /* a dtype the backend does not run */
    mltk_tensor Ab = t2(MLTK_BF16, 3, 4), Bb = t2(MLTK_BF16, 4, 2);
    ck_assert_int_eq(mltk_op_gemm(&be, &C, &Ab, &Bb, NULL, &gp), MLTK_ERR_UNSUPPORTED);
    ck_assert_str_eq(mltk_backend_error(&be), "fake: gemm is not supported for bf16");
    ck_assert_int_eq(mltk_op_supported(&be, MLTK_OP_GEMM, MLTK_BF16), 0);
    ck_assert_int_eq(mltk_op_supported(&be, MLTK_OP_GEMM, MLTK_F32), 1);
    ck_assert_int_eq(mltk_op_supported(&be, MLTK_OP_COUNT, MLTK_F32), 0);

    /* backend failures, with and without a message */
    mltk_tensor y = t1(MLTK_F32, 8);
    f.fail_rc = MLTK_ERR_BACKEND;
    f.fail_msg = "cuBLAS: CUBLAS_STATUS_EXECUTION_FAILED";
    ck_assert_int_eq(mltk_op_fill(&be, &y, 1.0f), MLTK_ERR_BACKEND);
    ck_assert_str_eq(mltk_backend_error(&be), "fake: cuBLAS: CUBLAS_STATUS_EXECUTION_FAILED");
    f.fail_msg = NULL;
    ck_assert_int_eq(mltk_op_fill(&be, &y, 1.0f), MLTK_ERR_BACKEND);
    ck_assert_str_eq(mltk_backend_error(&be), "fake: fill: backend failure");
    f.fail_rc = 0;
    ck_assert_int_eq(mltk_op_fill(&be, &y, 2.0f), MLTK_OK);
    ck_assert(((const mltk_fill_params *)f.last.params) != NULL);
    mltk_backend_clear_error(&be);
    ck_assert_str_eq(mltk_backend_error(&be), "");

    /* memory: errors kept, synchronisations counted */
    void *p = NULL;
    ck_assert_int_eq(mltk_be_alloc(&be, 64, &p), MLTK_OK);
    ck_assert_ptr_nonnull(p);
    float host[16] = { 1, 2, 3 }, back[16];
    ck_assert_int_eq(mltk_be_upload(&be, p, host, sizeof host), MLTK_OK);
    ck_assert_uint_eq(mltk_be_sync_count(&be), 0);
    ck_assert_int_eq(mltk_be_download(&be, back, p, sizeof back), MLTK_OK);
    ck_assert(back[2] == 3.0f);
    ck_assert_int_eq(mltk_be_sync(&be), MLTK_OK);
    ck_assert_uint_eq(mltk_be_sync_count(&be), 2);
    mltk_be_free(&be, p);
    f.fail_alloc = 1;
    ck_assert_int_eq(mltk_be_alloc(&be, 123, &p), MLTK_ERR_NOMEM);
    ck_assert_ptr_null(p);
    ck_assert_str_eq(mltk_backend_error(&be), "fake: alloc of 123 bytes failed: out of memory");

    /* a backend without a state still runs */
    struct mltk_backend bare = { &fake_i, &f, "fake", NULL };
    ck_assert_int_eq(mltk_op_fill(&bare, &y, 0.0f), MLTK_OK);
    ck_assert_int_eq(mltk_be_sync(&bare), MLTK_OK);
    ck_assert_uint_eq(mltk_be_sync_count(&bare), 0);
    ck_assert_str_eq(mltk_backend_error(&bare), "");

    mltk_backend_state_free(be.state);
}
END_TEST

START_TEST(test_workspace)
{
    fake f;
    memset(&f, 0, sizeof f);
    struct mltk_backend be = { &fake_i, &f, "fake", mltk_backend_state_new() };
    f.ws[MLTK_OP_CONV2D_FORWARD] = 100;
    f.ws[MLTK_OP_CONV2D_BACKWARD_DATA] = 300;
    f.ws[MLTK_OP_CONV2D_BACKWARD_FILTER] = 200;
    mltk_conv2d_params p = conv_params();
    ck_assert_uint_eq(mltk_op_conv2d_workspace(&be, &p, MLTK_F32), 300);
    /* an inconsistent descriptor needs nothing: its calls are refused */
    p.d.Q = 3;
    ck_assert_uint_eq(mltk_op_conv2d_workspace(&be, &p, MLTK_F32), 0);
    TU_ASSERT_CONTAINS(mltk_backend_error(&be), "desc: Q = 3");
    p.d.Q = 14;

    mltk_tensor y = t4(MLTK_F32, 8, 6, 14, 14), x = t4(MLTK_F32, 8, 4, 28, 28);
    mltk_tensor w = t4(MLTK_F32, 6, 2, 3, 3);
    static char ws[300];
    ck_assert_int_eq(mltk_op_conv2d_forward(&be, &y, &x, &w, NULL, &p, ws, 50),
                     MLTK_ERR_INVALID);
    ck_assert_str_eq(mltk_backend_error(&be), "conv2d_forward: the workspace is 50 bytes but "
                     "fake needs 100 (mltk_op_conv2d_workspace)");
    ck_assert_int_eq(mltk_op_conv2d_forward(&be, &y, &x, &w, NULL, &p, ws, sizeof ws), MLTK_OK);
    ck_assert_ptr_eq(f.last.ws, ws);
    ck_assert_uint_eq(f.last.ws_bytes, sizeof ws);
    mltk_backend_state_free(be.state);
}
END_TEST

/* ---- the suite ------------------------------------------------------------------- */

static Suite *opcheck_suite(void)
{
    Suite *s = suite_create("opcheck");
    TCase *t = tcase_create("tensors");
    tcase_add_test(t, test_dtypes);
    tcase_add_test(t, test_tensor_views);
    tcase_add_test(t, test_table);
    suite_add_tcase(s, t);

    t = tcase_create("checks");
    tcase_add_test(t, test_generic);
    tcase_add_test(t, test_gemm);
    tcase_add_test(t, test_gemm_batched);
    tcase_add_test(t, test_elementwise);
    tcase_add_test(t, test_losses);
    tcase_add_test(t, test_data_movement);
    tcase_add_test(t, test_conv_pool);
    tcase_add_test(t, test_norms);
    tcase_add_test(t, test_optimizers);
    suite_add_tcase(s, t);

    t = tcase_create("dispatch");
    tcase_add_test(t, test_run);
    tcase_add_test(t, test_workspace);
    tcase_set_timeout(t, 30);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(opcheck_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
