/* check_norm.c - the normalisation, dropout, softmax and activation ops of
 * the cpu backend, and the layers built on them.
 *
 * What this is: two groups of Check tests.
 *   ops:    batchnorm (train, eval, backward), layernorm (forward,
 *           backward), dropout, softmax (forward, backward) and the ABI
 *           1.1 activations (elu, gelu, gelu_tanh) run on the cpu backend
 *           with 1, 2 and 3 threads at odd sizes, against naive
 *           double-precision references written here; results must also
 *           be bit-identical across thread counts.
 *   layers: batchnorm, layernorm, dropout, leaky_relu, elu, gelu,
 *           sigmoid, tanh and softmax loaded through the registry and run
 *           standalone (mltk_single_layer): forward values, every
 *           gradient (inputs and parameters) against central finite
 *           differences, running statistics against hand-computed
 *           values, evaluation and frozen modes, dropout masks; and the
 *           forward output (batchnorm in training, evaluation and frozen
 *           included) and every gradient against the double-precision
 *           references of tests/op_ref.h (ref_act, ref_softmax,
 *           ref_bn_train, ref_bn_eval, ref_ln_forward; dropout as x times
 *           the mask it drew).
 *   torch:  a few cases against values PyTorch computed (norm_ref.h, from
 *           gen_norm_ref.py).
 *
 * Tolerances: forward ops are compared with |got - ref| <= rtol |ref| +
 * atol, rtol a few 1e-6 (float rounding of short sums and our exp/erf,
 * whose errors are a few 1e-7 relative).  Finite differences (tests/fdcheck.h at
 * an absolute step, testutil.h) use the scalar L = sum(y R) for fixed random R, a step of 1e-2 and
 * |analytic - numeric| <= 1e-2 max(|analytic|, |numeric|) + 1e-3 (see
 * check_layers.c for why that bound is both safe and tight).  Against the
 * double references (fdcheck.h's fd_check_ref, a step of 1e-6) the bound
 * is 1e-5 of the gradient's largest element; the float layers stay within
 * ~3e-7 (gelu's dx the most).
 *
 * What this is not: the conformance of other backends (set
 * $MLTK_TEST_BACKEND to run the same checks on one).
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mltk/rng.h>

#include "session.h"
#include "norm_ref.h"
#include "op_ref.h"
#include "testutil.h"

/* ---- fixture: registry and backends --------------------------------------- */

static mltk_registry_t *reg;
static struct mltk_backend be;       /* 1 thread: layers and most ops */
static struct mltk_backend bes[3];   /* 1, 2 and 3 threads */

static const char *backend_name(void)
{
    const char *name = getenv("MLTK_TEST_BACKEND");
    return name && *name ? name : "cpu";
}

static void open_backend(struct mltk_backend *b, int threads)
{
    char *err = NULL;
    mltk_backend_opts o = { .size = sizeof(o), .threads = threads, .device = 0, .seed = 1 };
    int rc = mltk_backend_open(b, reg, backend_name(), &o, &err);

    ck_assert_msg(rc == MLTK_OK, "backend %s: %s", backend_name(), err ? err : "?");
}

static void fixture_open(void)
{
    char *err = NULL;
    int rc = mltk_registry_create(&reg, NULL, 1, &err);

    ck_assert_msg(rc == MLTK_OK, "registry: %s", err ? err : "?");
    for (int i = 0; i < 3; i++)
        open_backend(&bes[i], i + 1);
    be = bes[0];
}

static void fixture_close(void)
{
    for (int i = 0; i < 3; i++)
        mltk_backend_close(&bes[i]);
    mltk_registry_destroy(reg);
    reg = NULL;
}

/* ---- small helpers -------------------------------------------------------- */

static void fill_rand(float *x, int64_t n, double lo, double hi)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * 0.5 * (tu_urand() + 1.0));
}

static float *hmalloc(int64_t n)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(p);
    return p;
}

static double *dmalloc(int64_t n)
{
    double *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    ck_assert_ptr_nonnull(p);
    return p;
}

static float *dev_alloc_on(const struct mltk_backend *b, int64_t n)
{
    void *p = NULL;
    int rc = mltk_be_alloc(b, (size_t)(n > 0 ? n : 1) * sizeof(float), &p);

    ck_assert_msg(rc == MLTK_OK, "alloc: %s", mltk_backend_error(b));
    return p;
}

static float *dev_alloc(int64_t n)
{
    return dev_alloc_on(&be, n);
}

static void dev_free_on(const struct mltk_backend *b, void *p)
{
    mltk_be_free(b, p);
}

static void up_on(const struct mltk_backend *b, float *dev, const float *host, int64_t n)
{
    if (n > 0)
        ck_assert_int_eq(mltk_be_upload(b, dev, host, (size_t)n * sizeof(float)), MLTK_OK);
}

static void down_on(const struct mltk_backend *b, float *host, const float *dev, int64_t n)
{
    ck_assert_int_eq(mltk_be_sync(b), MLTK_OK);
    if (n > 0)
        ck_assert_int_eq(mltk_be_download(b, host, dev, (size_t)n * sizeof(float)), MLTK_OK);
}

/* ---- the ops under test, through their typed wrappers ---------------------- */

/* Views of backend memory (data NULL: an absent tensor, which the core
 * refuses where the op needs it): (n), (rows, cols), (N, C, L). */
static mltk_tensor t1(const float *p, int64_t n)
{
    return mltk_tensor_1d((void *)p, MLTK_F32, n);
}

static mltk_tensor t2(const float *p, int64_t rows, int64_t cols)
{
    return mltk_tensor_2d((void *)p, MLTK_F32, rows, cols);
}

static mltk_tensor t3(const float *p, int64_t N, int64_t C, int64_t L)
{
    int64_t d[3] = { N, C, L };
    return mltk_tensor_make((void *)p, MLTK_F32, 3, d);
}

/* A contiguous view of `data` with shape `s`. */
static mltk_tensor tview(void *data, mltk_shape s, mltk_dtype dt)
{
    return (mltk_tensor){ .data = data, .shape = s, .dtype = dt };
}

static int op_fill(const struct mltk_backend *b, float *x, float v, int64_t n)
{
    mltk_tensor t = t1(x, n);
    return mltk_op_fill(b, &t, v);
}

/* y = act(x), n elements */
static int op_act_forward(const struct mltk_backend *b, mltk_act act, float alpha, float *y,
                          const float *x, int64_t n)
{
    mltk_tensor yt = t1(y, n), xt = t1(x, n);
    return mltk_op_act_forward(b, &yt, &xt, act, alpha);
}

/* dx = dy act'(.) from x and/or y (NULL: absent) */
static int op_act_backward(const struct mltk_backend *b, mltk_act act, float alpha, float *dx,
                           const float *dy, const float *x, const float *y, int64_t n)
{
    mltk_tensor dxt = t1(dx, n), dyt = t1(dy, n), xt = t1(x, n), yt = t1(y, n);
    return mltk_op_act_backward(b, &dxt, &dyt, &xt, &yt, act, alpha);
}

/* y (rows, cols) = act(y + bias (cols)) */
static int op_bias_act(const struct mltk_backend *b, float *y, const float *bias,
                       int64_t rows, int64_t cols, mltk_act act, float alpha)
{
    mltk_tensor yt = t2(y, rows, cols), bt = t1(bias, cols);
    return mltk_op_bias_act(b, &yt, &bt, act, alpha);
}

/* batch norm over x (N, C, L); per-channel tensors (C) */
static int op_batchnorm_forward_train(const struct mltk_backend *b, float *y, const float *x,
                                      const float *gamma, const float *beta, float *sm,
                                      float *si, float *rm, float *rv, int64_t N, int64_t C,
                                      int64_t L, float momentum, float eps)
{
    mltk_bn_params p = { .momentum = momentum, .eps = eps };
    mltk_tensor yt = t3(y, N, C, L), xt = t3(x, N, C, L), gt = t1(gamma, C);
    mltk_tensor bt = t1(beta, C), smt = t1(sm, C), sit = t1(si, C), rmt = t1(rm, C);
    mltk_tensor rvt = t1(rv, C);
    return mltk_op_batchnorm_forward_train(b, &yt, &smt, &sit, &rmt, &rvt, &xt, &gt, &bt, &p);
}

static int op_batchnorm_forward_eval(const struct mltk_backend *b, float *y, const float *x,
                                     const float *gamma, const float *beta, const float *rm,
                                     const float *rv, int64_t N, int64_t C, int64_t L,
                                     float eps)
{
    mltk_bn_params p = { .momentum = 0.0f, .eps = eps };
    mltk_tensor yt = t3(y, N, C, L), xt = t3(x, N, C, L), gt = t1(gamma, C);
    mltk_tensor bt = t1(beta, C), rmt = t1(rm, C), rvt = t1(rv, C);
    return mltk_op_batchnorm_forward_eval(b, &yt, &xt, &gt, &bt, &rmt, &rvt, &p);
}

static int op_batchnorm_backward(const struct mltk_backend *b, float *dx, float *dg,
                                 float *db, const float *dy, const float *x,
                                 const float *gamma, const float *sm, const float *si,
                                 int64_t N, int64_t C, int64_t L)
{
    mltk_tensor dxt = t3(dx, N, C, L), dgt = t1(dg, C), dbt = t1(db, C);
    mltk_tensor dyt = t3(dy, N, C, L), xt = t3(x, N, C, L), gt = t1(gamma, C);
    mltk_tensor smt = t1(sm, C), sit = t1(si, C);
    return mltk_op_batchnorm_backward(b, &dxt, &dgt, &dbt, &dyt, &xt, &gt, &smt, &sit);
}

/* layer norm over the cols of x (rows, cols); mean, rstd (rows) */
static int op_layernorm_forward(const struct mltk_backend *b, float *y, const float *x,
                                const float *gamma, const float *beta, float *mean,
                                float *rstd, int64_t rows, int64_t cols, float eps)
{
    mltk_ln_params p = { .eps = eps };
    mltk_tensor yt = t2(y, rows, cols), xt = t2(x, rows, cols), gt = t1(gamma, cols);
    mltk_tensor bt = t1(beta, cols), mt = t1(mean, rows), rt = t1(rstd, rows);
    return mltk_op_layernorm_forward(b, &yt, &mt, &rt, &xt, &gt, &bt, &p);
}

static int op_layernorm_backward(const struct mltk_backend *b, float *dx, float *dg,
                                 float *db, const float *dy, const float *x,
                                 const float *gamma, const float *mean, const float *rstd,
                                 int64_t rows, int64_t cols)
{
    mltk_tensor dxt = t2(dx, rows, cols), dgt = t1(dg, cols), dbt = t1(db, cols);
    mltk_tensor dyt = t2(dy, rows, cols), xt = t2(x, rows, cols), gt = t1(gamma, cols);
    mltk_tensor mt = t1(mean, rows), rt = t1(rstd, rows);
    return mltk_op_layernorm_backward(b, &dxt, &dgt, &dbt, &dyt, &xt, &gt, &mt, &rt);
}

static int op_dropout_forward(const struct mltk_backend *b, float *y, float *mask,
                              const float *x, int64_t n, float p, uint64_t seed,
                              uint64_t offset)
{
    mltk_dropout_params dp = { .p = p, .seed = seed, .offset = offset };
    mltk_tensor yt = t1(y, n), mt = t1(mask, n), xt = t1(x, n);
    return mltk_op_dropout_forward(b, &yt, &mt, &xt, &dp);
}

/* softmax over the cols of (rows, cols) */
static int op_softmax_forward(const struct mltk_backend *b, float *y, const float *x,
                              int64_t rows, int64_t cols)
{
    mltk_tensor yt = t2(y, rows, cols), xt = t2(x, rows, cols);
    return mltk_op_softmax_forward(b, &yt, &xt);
}

static int op_softmax_backward(const struct mltk_backend *b, float *dx, const float *dy,
                               const float *y, int64_t rows, int64_t cols)
{
    mltk_tensor dxt = t2(dx, rows, cols), dyt = t2(dy, rows, cols), yt = t2(y, rows, cols);
    return mltk_op_softmax_backward(b, &dxt, &dyt, &yt);
}

static void up(float *dev, const float *host, int64_t n)
{
    up_on(&be, dev, host, n);
}

static void down(float *host, const float *dev, int64_t n)
{
    down_on(&be, host, dev, n);
}

/* |got - ref| <= rtol |ref| + atol for every element */
static void expect_close(const float *got, const double *ref, int64_t n, double rtol,
                         double atol, const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        EXPECT(d <= rtol * fabs(ref[i]) + atol,
               "%s[%lld] = %.9g, expected %.9g (diff %.3g)", what, (long long)i,
               (double)got[i], ref[i], d);
    }
}

static void expect_same_bits(const float *a, const float *b, int64_t n, const char *what)
{
    EXPECT(memcmp(a, b, (size_t)n * sizeof(float)) == 0,
           "%s differs between thread counts", what);
}

/* ---- activation references ------------------------------------------------ */

/* The op tests' references, written without cancellation (gelu from
 * erfc); op_ref.h's ref_act, the plain definitions, is what the layers'
 * double-reference gradients differentiate. */

static double phi_cdf(double x)
{
    return 0.5 * erfc(-x / sqrt(2.0));
}

static double act_ref(mltk_act act, double a, double x)
{
    const double k = sqrt(2.0 / M_PI);
    switch (act) {
    case MLTK_ACT_ELU:       return x > 0 ? x : a * expm1(x);
    case MLTK_ACT_GELU:      return x * phi_cdf(x);
    case MLTK_ACT_GELU_TANH:   /* 0.5 x (1 + tanh u) without the cancellation */
        return x / (1.0 + exp(-2.0 * k * (x + 0.044715 * x * x * x)));
    case MLTK_ACT_LEAKY_RELU: return x > 0 ? x : a * x;
    case MLTK_ACT_SIGMOID:   return 1.0 / (1.0 + exp(-x));
    case MLTK_ACT_TANH:      return tanh(x);
    default:                 return x;
    }
}

static double dact_ref(mltk_act act, double a, double x)
{
    const double k = sqrt(2.0 / M_PI);
    switch (act) {
    case MLTK_ACT_ELU:  return x > 0 ? 1.0 : a * exp(x);
    case MLTK_ACT_GELU: return phi_cdf(x) + x * exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
    case MLTK_ACT_GELU_TANH: {
        double u = k * (x + 0.044715 * x * x * x), t = tanh(u);
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
    }
    default: return 1.0;
    }
}

/* ---- ops: activations ----------------------------------------------------- */

static const struct { mltk_act act; float alpha; const char *name; } new_acts[] = {
    { MLTK_ACT_ELU, 1.0f, "elu(1)" },
    { MLTK_ACT_ELU, 0.5f, "elu(0.5)" },
    { MLTK_ACT_ELU, -0.3f, "elu(-0.3)" },
    { MLTK_ACT_GELU, 0.0f, "gelu" },
    { MLTK_ACT_GELU_TANH, 0.0f, "gelu_tanh" },
};

/* inputs over the whole useful range, with zeros, tiny values and both
 * tails */
static void act_inputs(float *x, int64_t n)
{
    static const float special[] = { 0.0f, -0.0f, 1e-30f, -1e-30f, 1e-4f, -1e-4f,
                                     -5.0f, 5.0f, -9.5f, 9.5f, -30.0f, 30.0f, -100.0f,
                                     100.0f, -0.75f, 0.75f };
    int64_t ns = (int64_t)(sizeof(special) / sizeof(special[0]));
    for (int64_t i = 0; i < n; i++)
        x[i] = i < ns ? special[i] : (float)(12.0 * tu_urand());
}

START_TEST(test_act_new)
{
    const int64_t sizes[] = { 1, 7, 33, 100, 70001 };
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        int64_t n = sizes[s];
        for (size_t k = 0; k < sizeof(new_acts) / sizeof(new_acts[0]); k++) {
            mltk_act act = new_acts[k].act;
            float al = new_acts[k].alpha;
            float *x = hmalloc(n), *dy = hmalloc(n), *y = hmalloc(n), *dx = hmalloc(n);
            float *y1 = hmalloc(n), *dx1 = hmalloc(n);
            double *ref = dmalloc(n), *dref = dmalloc(n);

            tu_rng_seed(17 + (uint64_t)(s * 10 + k));
            act_inputs(x, n);
            fill_rand(dy, n, -1, 1);
            for (int64_t i = 0; i < n; i++) {
                ref[i] = act_ref(act, al, x[i]);
                dref[i] = dy[i] * dact_ref(act, al, x[i]);
            }
            for (int t = 0; t < 3; t++) {
                const struct mltk_backend *b = &bes[t];
                float *xd = dev_alloc_on(b, n), *yd = dev_alloc_on(b, n);
                float *gd = dev_alloc_on(b, n), *dd = dev_alloc_on(b, n);
                up_on(b, xd, x, n);
                up_on(b, gd, dy, n);
                ck_assert_int_eq(op_act_forward(b, act, al, yd, xd, n), MLTK_OK);
                down_on(b, y, yd, n);
                /* gelu_tanh's tail is e^(-2u) with u a cubic rounded in float:
                 * relative error ~ |2u| 2^-24, beyond rtol once y < 1e-12 */
                expect_close(y, ref, n, 3e-6, act == MLTK_ACT_GELU_TANH ? 1e-12 : 1e-37,
                             new_acts[k].name);
                /* backward from x and y together (the layer's call) */
                ck_assert_int_eq(op_act_backward(b, act, al, dd, gd, xd, yd, n),
                                 MLTK_OK);
                down_on(b, dx, dd, n);
                expect_close(dx, dref, n, 1e-5, 1e-6, new_acts[k].name);
                if (t == 0) {
                    memcpy(y1, y, (size_t)n * sizeof(float));
                    memcpy(dx1, dx, (size_t)n * sizeof(float));
                } else {
                    expect_same_bits(y, y1, n, "act forward");
                    expect_same_bits(dx, dx1, n, "act backward");
                }
                /* from x alone, in place (dx == dy) */
                ck_assert_int_eq(op_act_backward(b, act, al, gd, gd, xd, NULL, n),
                                 MLTK_OK);
                down_on(b, dx, gd, n);
                expect_close(dx, dref, n, 1e-5, 1e-6, "from x, in place");
                /* elu from y alone when alpha >= 0; gelu needs x */
                up_on(b, gd, dy, n);
                int rc = op_act_backward(b, act, al, dd, gd, NULL, yd, n);
                if (act == MLTK_ACT_ELU && al >= 0.0f) {
                    ck_assert_int_eq(rc, MLTK_OK);
                    down_on(b, dx, dd, n);
                    expect_close(dx, dref, n, 1e-5, 1e-6, "elu from y");
                } else {
                    ck_assert_int_eq(rc, MLTK_ERR_INVALID);
                }
                /* forward in place */
                ck_assert_int_eq(op_act_forward(b, act, al, xd, xd, n), MLTK_OK);
                down_on(b, y, xd, n);
                expect_same_bits(y, y1, n, "act forward in place");
                dev_free_on(b, xd); dev_free_on(b, yd); dev_free_on(b, gd); dev_free_on(b, dd);
            }
            free(x); free(dy); free(y); free(dx); free(y1); free(dx1); free(ref); free(dref);
        }
    }
}
END_TEST

/* the dense epilogue with the new activations */
START_TEST(test_bias_act_new)
{
    const int64_t rows = 5, cols = 37;
    float *y = hmalloc(rows * cols), *b = hmalloc(cols), *out = hmalloc(rows * cols);
    double *ref = dmalloc(rows * cols);
    float *yd = dev_alloc(rows * cols), *bd = dev_alloc(cols);

    for (size_t k = 0; k < sizeof(new_acts) / sizeof(new_acts[0]); k++) {
        tu_rng_seed(5 + k);
        fill_rand(y, rows * cols, -4, 4);
        fill_rand(b, cols, -1, 1);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++)
                ref[r * cols + c] = act_ref(new_acts[k].act, new_acts[k].alpha,
                                            (double)(float)(y[r * cols + c] + b[c]));
        up(yd, y, rows * cols);
        up(bd, b, cols);
        ck_assert_int_eq(op_bias_act(&be, yd, bd, rows, cols, new_acts[k].act,
                                     new_acts[k].alpha), MLTK_OK);
        down(out, yd, rows * cols);
        expect_close(out, ref, rows * cols, 3e-6, 1e-30, new_acts[k].name);
    }
    /* an activation number past the last is refused */
    ck_assert_int_eq(op_act_forward(&be, (mltk_act)8, 0, yd, yd, 4), MLTK_ERR_INVALID);
    ck_assert_int_eq(op_bias_act(&be, yd, bd, 1, 4, (mltk_act)8, 0), MLTK_ERR_INVALID);
    free(y); free(b); free(out); free(ref);
    dev_free_on(&be, yd);
    dev_free_on(&be, bd);
}
END_TEST

/* ---- ops: batch norm ------------------------------------------------------ */

typedef struct bn_shape { int64_t N, C, L; double offset; } bn_shape;

static const bn_shape bn_shapes[] = {
    { 4, 3, 5, 0 }, { 1, 2, 7, 0 }, { 9, 5, 1, 0 }, { 2, 1, 1, 0 }, { 3, 2, 1, 0 },
    { 33, 300, 1, 0 }, { 7, 3, 1001, 0 }, { 64, 16, 64, 0 }, { 6, 4, 9, 1000.0 },
    { 128, 19, 1, -300.0 },
};

/* double reference of one training forward: mean, biased var per channel */
static void bn_stats_ref(const float *x, int64_t N, int64_t C, int64_t L, double *mean,
                         double *var)
{
    for (int64_t c = 0; c < C; c++) {
        double s = 0.0, q = 0.0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t l = 0; l < L; l++)
                s += x[(n * C + c) * L + l];
        s /= (double)(N * L);
        for (int64_t n = 0; n < N; n++)
            for (int64_t l = 0; l < L; l++) {
                double d = x[(n * C + c) * L + l] - s;
                q += d * d;
            }
        mean[c] = s;
        var[c] = q / (double)(N * L);
    }
}

START_TEST(test_bn_train)
{
    const float momentum = 0.1f, eps = 1e-5f;
    for (size_t s = 0; s < sizeof(bn_shapes) / sizeof(bn_shapes[0]); s++) {
        const int64_t N = bn_shapes[s].N, C = bn_shapes[s].C, L = bn_shapes[s].L;
        const int64_t n = N * C * L;
        float *x = hmalloc(n), *g = hmalloc(C), *bt = hmalloc(C), *rm = hmalloc(C);
        float *rv = hmalloc(C), *y = hmalloc(n), *sm = hmalloc(C), *si = hmalloc(C);
        float *y1 = hmalloc(n), *rm1 = hmalloc(C), *rv1 = hmalloc(C);
        double *mean = dmalloc(C), *var = dmalloc(C), *ry = dmalloc(n);
        double *rinv = dmalloc(C), *rrm = dmalloc(C), *rrv = dmalloc(C), *rmean = dmalloc(C);

        tu_rng_seed(100 + s);
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)(bn_shapes[s].offset + 2.0 * tu_urand() + 0.3 * (i % 3));
        fill_rand(g, C, 0.5, 1.5);
        fill_rand(bt, C, -1, 1);
        fill_rand(rm, C, -1, 1);
        fill_rand(rv, C, 0.5, 2);
        if (N * L < 2) {
            float *xd = dev_alloc(n), *yd = dev_alloc(n), *cd = dev_alloc(C);
            up(xd, x, n);
            ck_assert_int_eq(op_batchnorm_forward_train(&be, yd, xd, cd, cd, cd, cd,
                                                        cd, cd, N, C, L, momentum, eps),
                             MLTK_ERR_INVALID);
            dev_free_on(&be, xd); dev_free_on(&be, yd); dev_free_on(&be, cd);
            goto next;
        }
        bn_stats_ref(x, N, C, L, mean, var);
        for (int64_t c = 0; c < C; c++) {
            rinv[c] = 1.0 / sqrt(var[c] + eps);
            rmean[c] = mean[c];
            rrm[c] = (1.0 - momentum) * rm[c] + momentum * mean[c];
            rrv[c] = (1.0 - momentum) * rv[c]
                     + momentum * var[c] * (double)(N * L) / (double)(N * L - 1);
        }
        for (int64_t i = 0; i < n; i++) {
            int64_t c = (i / L) % C;
            ry[i] = (x[i] - mean[c]) * rinv[c] * g[c] + bt[c];
        }
        for (int t = 0; t < 3; t++) {
            const struct mltk_backend *b = &bes[t];
            float *xd = dev_alloc_on(b, n), *yd = dev_alloc_on(b, n);
            float *gd = dev_alloc_on(b, C), *bd = dev_alloc_on(b, C), *rmd = dev_alloc_on(b, C);
            float *rvd = dev_alloc_on(b, C), *smd = dev_alloc_on(b, C), *sid = dev_alloc_on(b, C);
            up_on(b, xd, x, n); up_on(b, gd, g, C); up_on(b, bd, bt, C);
            up_on(b, rmd, rm, C); up_on(b, rvd, rv, C);
            ck_assert_int_eq(op_batchnorm_forward_train(b, yd, xd, gd, bd, smd, sid,
                                                        rmd, rvd, N, C, L, momentum, eps),
                             MLTK_OK);
            down_on(b, y, yd, n); down_on(b, sm, smd, C); down_on(b, si, sid, C);
            char what[64];
            snprintf(what, sizeof(what), "bn y (%lld, %lld, %lld)", (long long)N, (long long)C,
                     (long long)L);
            /* x - mean in float: with a large offset the rounding of x and
             * of the mean (ulp(offset) each) shows, scaled by gamma invstd */
            expect_close(y, ry, n, 2e-5,
                         2e-5 + 3.0 * 1.5 * fabs(bn_shapes[s].offset) * 0x1p-23, what);
            expect_close(sm, rmean, C, 1e-6, 1e-6 * (1 + fabs(bn_shapes[s].offset)), "bn mean");
            expect_close(si, rinv, C, 2e-5, 0, "bn invstd");
            down_on(b, sm, rmd, C); down_on(b, si, rvd, C);
            expect_close(sm, rrm, C, 1e-6, 1e-6 * (1 + fabs(bn_shapes[s].offset)), "running mean");
            expect_close(si, rrv, C, 1e-5, 1e-7, "running var");
            if (t == 0) {
                memcpy(y1, y, (size_t)n * sizeof(float));
                memcpy(rm1, sm, (size_t)C * sizeof(float));
                memcpy(rv1, si, (size_t)C * sizeof(float));
            } else {
                expect_same_bits(y, y1, n, "bn y");
                expect_same_bits(sm, rm1, C, "running mean");
                expect_same_bits(si, rv1, C, "running var");
            }
            /* without running statistics and without affine */
            ck_assert_int_eq(op_batchnorm_forward_train(b, yd, xd, NULL, NULL, smd,
                                                        sid, NULL, NULL, N, C, L,
                                                        momentum, eps), MLTK_OK);
            down_on(b, y, yd, n);
            for (int64_t i = 0; i < n; i++) {
                int64_t c = (i / L) % C;
                ry[i] = (x[i] - mean[c]) * rinv[c];
            }
            expect_close(y, ry, n, 2e-5,
                         2e-5 + 3.0 * fabs(bn_shapes[s].offset) * 0x1p-23, "bn y (no affine)");
            for (int64_t i = 0; i < n; i++) {
                int64_t c = (i / L) % C;
                ry[i] = (x[i] - mean[c]) * rinv[c] * g[c] + bt[c];
            }
            dev_free_on(b, xd); dev_free_on(b, yd); dev_free_on(b, gd); dev_free_on(b, bd);
            dev_free_on(b, rmd); dev_free_on(b, rvd); dev_free_on(b, smd); dev_free_on(b, sid);
        }
next:
        free(x); free(g); free(bt); free(rm); free(rv); free(y); free(sm); free(si);
        free(y1); free(rm1); free(rv1); free(mean); free(var); free(ry); free(rinv);
        free(rrm); free(rrv); free(rmean);
    }
    /* bad arguments */
    float v[4] = { 0 };
    /* a negative dimension is a shape the core refuses */
    ck_assert_int_eq(op_batchnorm_forward_train(&be, v, v, v, v, v, v, v, v, -1, 1, 1,
                                                0.1f, 1e-5f), MLTK_ERR_SHAPE);
    ck_assert_int_eq(op_batchnorm_forward_train(&be, v, v, v, v, NULL, v, v, v, 2, 1,
                                                1, 0.1f, 1e-5f), MLTK_ERR_INVALID);
    /* nothing to do: an empty batch (the per-channel tensors, C = 3, are
     * real: only empty tensors may go without data) */
    ck_assert_int_eq(op_batchnorm_forward_train(&be, NULL, NULL, NULL, NULL, v, v,
                                                NULL, NULL, 0, 3, 4, 0.1f, 1e-5f), MLTK_OK);
}
END_TEST

START_TEST(test_bn_eval)
{
    const float eps = 1e-3f;
    for (size_t s = 0; s < sizeof(bn_shapes) / sizeof(bn_shapes[0]); s++) {
        const int64_t N = bn_shapes[s].N, C = bn_shapes[s].C, L = bn_shapes[s].L;
        const int64_t n = N * C * L;
        float *x = hmalloc(n), *g = hmalloc(C), *bt = hmalloc(C), *rm = hmalloc(C);
        float *rv = hmalloc(C), *y = hmalloc(n), *y1 = hmalloc(n);
        double *ry = dmalloc(n);

        tu_rng_seed(200 + s);
        fill_rand(x, n, -3, 3);
        fill_rand(g, C, -1.5, 1.5);
        fill_rand(bt, C, -1, 1);
        fill_rand(rm, C, -1, 1);
        fill_rand(rv, C, 0.01, 3);
        for (int64_t i = 0; i < n; i++) {
            int64_t c = (i / L) % C;
            ry[i] = (x[i] - (double)rm[c]) / sqrt((double)rv[c] + eps) * g[c] + bt[c];
        }
        for (int t = 0; t < 3; t++) {
            const struct mltk_backend *b = &bes[t];
            float *xd = dev_alloc_on(b, n), *yd = dev_alloc_on(b, n), *gd = dev_alloc_on(b, C);
            float *bd = dev_alloc_on(b, C), *rmd = dev_alloc_on(b, C), *rvd = dev_alloc_on(b, C);
            up_on(b, xd, x, n); up_on(b, gd, g, C); up_on(b, bd, bt, C);
            up_on(b, rmd, rm, C); up_on(b, rvd, rv, C);
            ck_assert_int_eq(op_batchnorm_forward_eval(b, yd, xd, gd, bd, rmd, rvd, N,
                                                       C, L, eps), MLTK_OK);
            down_on(b, y, yd, n);
            expect_close(y, ry, n, 1e-5, 1e-5, "bn eval");
            if (t == 0)
                memcpy(y1, y, (size_t)n * sizeof(float));
            else
                expect_same_bits(y, y1, n, "bn eval");
            /* the running statistics are read, never written */
            down_on(b, y, rmd, C);
            ck_assert(memcmp(y, rm, (size_t)C * sizeof(float)) == 0);
            dev_free_on(b, xd); dev_free_on(b, yd); dev_free_on(b, gd);
            dev_free_on(b, bd); dev_free_on(b, rmd); dev_free_on(b, rvd);
        }
        free(x); free(g); free(bt); free(rm); free(rv); free(y); free(y1); free(ry);
    }
}
END_TEST

START_TEST(test_bn_backward)
{
    for (size_t s = 0; s < sizeof(bn_shapes) / sizeof(bn_shapes[0]); s++) {
        const int64_t N = bn_shapes[s].N, C = bn_shapes[s].C, L = bn_shapes[s].L;
        const int64_t n = N * C * L, M = N * L;
        if (M < 2)
            continue;
        float *x = hmalloc(n), *dy = hmalloc(n), *g = hmalloc(C), *mean = hmalloc(C);
        float *inv = hmalloc(C), *dx = hmalloc(n), *dg = hmalloc(C), *db = hmalloc(C);
        float *dx1 = hmalloc(n), *dg1 = hmalloc(C);
        double *rdx = dmalloc(n), *rdg = dmalloc(C), *rdb = dmalloc(C);
        double *dm = dmalloc(C), *dv = dmalloc(C);

        tu_rng_seed(300 + s);
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)(bn_shapes[s].offset + tu_urand());
        fill_rand(dy, n, -1, 1);
        fill_rand(g, C, -2, 2);
        bn_stats_ref(x, N, C, L, dm, dv);
        for (int64_t c = 0; c < C; c++) {
            mean[c] = (float)dm[c];
            inv[c] = (float)(1.0 / sqrt(dv[c] + 1e-5));
        }
        /* reference from the saved (float) statistics, as the op sees them */
        for (int64_t c = 0; c < C; c++) {
            double sb = 0, sg = 0;
            for (int64_t k = 0; k < N; k++)
                for (int64_t l = 0; l < L; l++) {
                    int64_t i = (k * C + c) * L + l;
                    sb += dy[i];
                    sg += dy[i] * ((double)x[i] - mean[c]) * inv[c];
                }
            rdb[c] = sb;
            rdg[c] = sg;
            for (int64_t k = 0; k < N; k++)
                for (int64_t l = 0; l < L; l++) {
                    int64_t i = (k * C + c) * L + l;
                    double xh = ((double)x[i] - mean[c]) * inv[c];
                    rdx[i] = (double)g[c] * inv[c] * (dy[i] - sb / M - xh * sg / M);
                }
        }
        for (int t = 0; t < 3; t++) {
            const struct mltk_backend *b = &bes[t];
            float *xd = dev_alloc_on(b, n), *gyd = dev_alloc_on(b, n), *dxd = dev_alloc_on(b, n);
            float *gd = dev_alloc_on(b, C), *md = dev_alloc_on(b, C), *id = dev_alloc_on(b, C);
            float *dgd = dev_alloc_on(b, C), *dbd = dev_alloc_on(b, C);
            up_on(b, xd, x, n); up_on(b, gyd, dy, n); up_on(b, gd, g, C);
            up_on(b, md, mean, C); up_on(b, id, inv, C);
            ck_assert_int_eq(op_batchnorm_backward(b, dxd, dgd, dbd, gyd, xd, gd, md,
                                                   id, N, C, L), MLTK_OK);
            down_on(b, dx, dxd, n); down_on(b, dg, dgd, C); down_on(b, db, dbd, C);
            /* dx carries cancellation of sums of M terms of size ~1 */
            expect_close(dx, rdx, n, 1e-4, 2e-5 * sqrt((double)M) * 3.0, "bn dx");
            expect_close(dg, rdg, C, 1e-5, 1e-5 * sqrt((double)M), "bn dgamma");
            expect_close(db, rdb, C, 1e-5, 1e-6 * sqrt((double)M), "bn dbeta");
            if (t == 0) {
                memcpy(dx1, dx, (size_t)n * sizeof(float));
                memcpy(dg1, dg, (size_t)C * sizeof(float));
            } else {
                expect_same_bits(dx, dx1, n, "bn dx");
                expect_same_bits(dg, dg1, C, "bn dgamma");
            }
            /* parameter gradients only */
            ck_assert_int_eq(op_fill(b, dgd, 7.0f, C), MLTK_OK);
            ck_assert_int_eq(op_batchnorm_backward(b, NULL, dgd, NULL, gyd, xd, gd, md,
                                                   id, N, C, L), MLTK_OK);
            down_on(b, dg, dgd, C);
            expect_same_bits(dg, dg1, C, "bn dgamma without dx");
            dev_free_on(b, xd); dev_free_on(b, gyd); dev_free_on(b, dxd); dev_free_on(b, gd);
            dev_free_on(b, md); dev_free_on(b, id); dev_free_on(b, dgd); dev_free_on(b, dbd);
        }
        free(x); free(dy); free(g); free(mean); free(inv); free(dx); free(dg); free(db);
        free(dx1); free(dg1); free(rdx); free(rdg); free(rdb); free(dm); free(dv);
    }
}
END_TEST

/* ---- ops: layer norm ------------------------------------------------------ */

static const int64_t ln_shapes[][2] = {
    { 1, 1 }, { 1, 2 }, { 3, 5 }, { 7, 17 }, { 5, 300 }, { 200, 333 }, { 4096, 10 },
};

START_TEST(test_ln)
{
    const float eps = 1e-5f;
    for (size_t s = 0; s < sizeof(ln_shapes) / sizeof(ln_shapes[0]); s++) {
        const int64_t R = ln_shapes[s][0], K = ln_shapes[s][1], n = R * K;
        for (int affine = 0; affine < 2; affine++) {
            float *x = hmalloc(n), *dy = hmalloc(n), *g = hmalloc(K), *bt = hmalloc(K);
            float *y = hmalloc(n), *m = hmalloc(R), *rs = hmalloc(R), *dx = hmalloc(n);
            float *dg = hmalloc(K), *db = hmalloc(K), *y1 = hmalloc(n), *dx1 = hmalloc(n);
            float *dg1 = hmalloc(K);
            double *ry = dmalloc(n), *rm = dmalloc(R), *rr = dmalloc(R), *rdx = dmalloc(n);
            double *rdg = dmalloc(K), *rdb = dmalloc(K);

            tu_rng_seed(400 + s * 2 + (uint64_t)affine);
            for (int64_t i = 0; i < n; i++)
                x[i] = (float)(3.0 * tu_urand() + ((i / K) % 7) * 0.5);
            fill_rand(dy, n, -1, 1);
            fill_rand(g, K, -2, 2);
            fill_rand(bt, K, -1, 1);
            for (int64_t k = 0; k < K; k++)
                rdg[k] = rdb[k] = 0.0;
            for (int64_t r = 0; r < R; r++) {
                const float *xr = x + r * K, *gr = dy + r * K;
                double mu = 0, v = 0;
                for (int64_t k = 0; k < K; k++)
                    mu += xr[k];
                mu /= (double)K;
                for (int64_t k = 0; k < K; k++)
                    v += (xr[k] - mu) * (xr[k] - mu);
                v /= (double)K;
                rm[r] = mu;
                rr[r] = 1.0 / sqrt(v + eps);
                double a = 0, c = 0;
                for (int64_t k = 0; k < K; k++) {
                    double xh = (xr[k] - mu) * rr[r];
                    double gg = affine ? gr[k] * (double)g[k] : gr[k];
                    ry[r * K + k] = affine ? xh * g[k] + bt[k] : xh;
                    a += gg;
                    c += gg * xh;
                    rdg[k] += gr[k] * xh;
                    rdb[k] += gr[k];
                }
                for (int64_t k = 0; k < K; k++) {
                    double xh = (xr[k] - mu) * rr[r];
                    double gg = affine ? gr[k] * (double)g[k] : gr[k];
                    rdx[r * K + k] = rr[r] * (gg - a / K - xh * c / K);
                }
            }
            for (int t = 0; t < 3; t++) {
                const struct mltk_backend *b = &bes[t];
                float *xd = dev_alloc_on(b, n), *yd = dev_alloc_on(b, n), *gyd = dev_alloc_on(b, n);
                float *dxd = dev_alloc_on(b, n), *gd = dev_alloc_on(b, K), *bd = dev_alloc_on(b, K);
                float *md = dev_alloc_on(b, R), *rd = dev_alloc_on(b, R);
                float *dgd = dev_alloc_on(b, K), *dbd = dev_alloc_on(b, K);
                up_on(b, xd, x, n); up_on(b, gyd, dy, n); up_on(b, gd, g, K); up_on(b, bd, bt, K);
                ck_assert_int_eq(op_layernorm_forward(b, yd, xd, affine ? gd : NULL,
                                                      affine ? bd : NULL, md, rd, R, K, eps),
                                 MLTK_OK);
                down_on(b, y, yd, n); down_on(b, m, md, R); down_on(b, rs, rd, R);
                expect_close(y, ry, n, 2e-5, 2e-5, "ln y");
                expect_close(m, rm, R, 1e-6, 1e-6, "ln mean");
                expect_close(rs, rr, R, 2e-5, 0, "ln rstd");
                ck_assert_int_eq(op_layernorm_backward(b, dxd, affine ? dgd : NULL,
                                                       affine ? dbd : NULL, gyd, xd,
                                                       affine ? gd : NULL, md, rd, R, K),
                                 MLTK_OK);
                down_on(b, dx, dxd, n);
                /* a single value normalises to 0 whatever it is: dx = 0 */
                expect_close(dx, rdx, n, 1e-4, 1e-4 * sqrt((double)K) + (K == 1 ? 1e-6 : 0),
                             "ln dx");
                if (affine) {
                    down_on(b, dg, dgd, K); down_on(b, db, dbd, K);
                    expect_close(dg, rdg, K, 1e-5, 1e-5 * sqrt((double)R), "ln dgamma");
                    expect_close(db, rdb, K, 1e-5, 1e-6 * sqrt((double)R), "ln dbeta");
                }
                if (t == 0) {
                    memcpy(y1, y, (size_t)n * sizeof(float));
                    memcpy(dx1, dx, (size_t)n * sizeof(float));
                    memcpy(dg1, dg, (size_t)K * sizeof(float));
                } else {
                    expect_same_bits(y, y1, n, "ln y");
                    expect_same_bits(dx, dx1, n, "ln dx");
                    if (affine)
                        expect_same_bits(dg, dg1, K, "ln dgamma");
                }
                /* in-place forward is not promised, but dx-less backward is */
                if (affine) {
                    ck_assert_int_eq(op_fill(b, dgd, 9.0f, K), MLTK_OK);
                    ck_assert_int_eq(op_layernorm_backward(b, NULL, dgd, dbd, gyd, xd,
                                                           gd, md, rd, R, K), MLTK_OK);
                    down_on(b, dg, dgd, K);
                    expect_same_bits(dg, dg1, K, "ln dgamma without dx");
                }
                dev_free_on(b, xd); dev_free_on(b, yd); dev_free_on(b, gyd); dev_free_on(b, dxd);
                dev_free_on(b, gd); dev_free_on(b, bd); dev_free_on(b, md); dev_free_on(b, rd);
                dev_free_on(b, dgd); dev_free_on(b, dbd);
            }
            free(x); free(dy); free(g); free(bt); free(y); free(m); free(rs); free(dx);
            free(dg); free(db); free(y1); free(dx1); free(dg1); free(ry); free(rm); free(rr);
            free(rdx); free(rdg); free(rdb);
        }
    }
    float v[4] = { 0 };
    ck_assert_int_eq(op_layernorm_forward(&be, v, v, NULL, NULL, v, v, 2, 0, 1e-5f),
                     MLTK_ERR_INVALID);
    ck_assert_int_eq(op_layernorm_forward(&be, v, v, NULL, NULL, NULL, v, 1, 2, 1e-5f),
                     MLTK_ERR_INVALID);
    ck_assert_int_eq(op_layernorm_forward(&be, NULL, NULL, NULL, NULL, NULL, NULL, 0,
                                          5, 1e-5f), MLTK_OK);
}
END_TEST

/* ---- ops: dropout --------------------------------------------------------- */

START_TEST(test_dropout_op)
{
    const float ps[] = { 0.0f, 0.1f, 0.5f, 0.9f };
    const int64_t sizes[] = { 1, 5, 77, 100003 };
    for (size_t pi = 0; pi < sizeof(ps) / sizeof(ps[0]); pi++)
        for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
            const float p = ps[pi];
            const int64_t n = sizes[si];
            const uint64_t seed = 0x1234 + si, off = 3 + 1000 * pi;  /* off not 4-aligned */
            const float scale = 1.0f / (1.0f - p);
            float *x = hmalloc(n), *y = hmalloc(n), *m = hmalloc(n), *m1 = hmalloc(n);
            int64_t kept = 0;

            tu_rng_seed(500 + si);
            fill_rand(x, n, -2, 2);
            for (int t = 0; t < 3; t++) {
                const struct mltk_backend *b = &bes[t];
                float *xd = dev_alloc_on(b, n), *yd = dev_alloc_on(b, n), *md = dev_alloc_on(b, n);
                up_on(b, xd, x, n);
                ck_assert_int_eq(op_dropout_forward(b, yd, md, xd, n, p, seed, off),
                                 MLTK_OK);
                down_on(b, y, yd, n);
                down_on(b, m, md, n);
                kept = 0;
                for (int64_t i = 0; i < n; i++) {
                    float u = mltk_rng_u01(seed, off + (uint64_t)i);
                    float want = u >= p ? scale : 0.0f;
                    EXPECT(m[i] == want, "mask[%lld] = %g, want %g (u %g)", (long long)i,
                           (double)m[i], (double)want, (double)u);
                    EXPECT(y[i] == x[i] * m[i], "y[%lld] = %g, want %g", (long long)i,
                           (double)y[i], (double)(x[i] * m[i]));
                    kept += m[i] != 0.0f;
                }
                if (t == 0)
                    memcpy(m1, m, (size_t)n * sizeof(float));
                else
                    expect_same_bits(m, m1, n, "dropout mask");
                /* in place */
                ck_assert_int_eq(op_dropout_forward(b, xd, md, xd, n, p, seed, off),
                                 MLTK_OK);
                down_on(b, m, xd, n);
                expect_same_bits(m, y, n, "dropout in place");
                dev_free_on(b, xd); dev_free_on(b, yd); dev_free_on(b, md);
            }
            if (n > 100000) {
                /* the kept fraction: binomial, 5 standard deviations */
                double q = 1.0 - p, sd = sqrt(n * q * (1.0 - q));
                ck_assert_msg(fabs((double)kept - n * q) <= 5.0 * sd + 1e-9,
                              "p %g: kept %lld of %lld", (double)p, (long long)kept,
                              (long long)n);
            }
            free(x); free(y); free(m); free(m1);
        }
    float v[4] = { 1, 1, 1, 1 };
    ck_assert_int_eq(op_dropout_forward(&be, v, v, v, 4, 1.0f, 1, 0), MLTK_ERR_INVALID);
    ck_assert_int_eq(op_dropout_forward(&be, v, v, v, 4, -0.1f, 1, 0), MLTK_ERR_INVALID);
    ck_assert_int_eq(op_dropout_forward(&be, v, v, v, 4, NAN, 1, 0), MLTK_ERR_INVALID);
    ck_assert_int_eq(op_dropout_forward(&be, v, NULL, v, 4, 0.5f, 1, 0), MLTK_ERR_INVALID);
}
END_TEST

/* ---- ops: softmax --------------------------------------------------------- */

START_TEST(test_softmax_op)
{
    static const int64_t shapes[][2] = { { 1, 1 }, { 3, 7 }, { 2, 16 }, { 5, 1000 },
                                         { 3000, 10 }, { 1, 40001 } };
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        const int64_t R = shapes[s][0], K = shapes[s][1], n = R * K;
        float *x = hmalloc(n), *dy = hmalloc(n), *y = hmalloc(n), *dx = hmalloc(n);
        float *y1 = hmalloc(n), *dx1 = hmalloc(n);
        double *ry = dmalloc(n), *rdx = dmalloc(n);

        tu_rng_seed(600 + s);
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)(8.0 * tu_urand() + (s == 2 ? 1000.0 : 0.0));
        if (n > 3)
            x[2] = -1e30f;  /* underflows to exactly 0 */
        fill_rand(dy, n, -1, 1);
        for (int64_t r = 0; r < R; r++) {
            double mx = -INFINITY, sum = 0, dot = 0;
            for (int64_t k = 0; k < K; k++)
                mx = x[r * K + k] > mx ? x[r * K + k] : mx;
            for (int64_t k = 0; k < K; k++)
                sum += exp((double)x[r * K + k] - mx);
            for (int64_t k = 0; k < K; k++) {
                ry[r * K + k] = exp((double)x[r * K + k] - mx) / sum;
                dot += dy[r * K + k] * ry[r * K + k];
            }
            for (int64_t k = 0; k < K; k++)
                rdx[r * K + k] = ry[r * K + k] * (dy[r * K + k] - dot);
        }
        for (int t = 0; t < 3; t++) {
            const struct mltk_backend *b = &bes[t];
            float *xd = dev_alloc_on(b, n), *yd = dev_alloc_on(b, n), *gd = dev_alloc_on(b, n);
            float *dd = dev_alloc_on(b, n);
            up_on(b, xd, x, n);
            up_on(b, gd, dy, n);
            ck_assert_int_eq(op_softmax_forward(b, yd, xd, R, K), MLTK_OK);
            down_on(b, y, yd, n);
            expect_close(y, ry, n, 5e-6, 1e-9, "softmax");
            for (int64_t r = 0; r < R; r++) {
                double sum = 0;
                for (int64_t k = 0; k < K; k++)
                    sum += y[r * K + k];
                EXPECT(fabs(sum - 1.0) < 1e-5, "row %lld sums to %.9g", (long long)r, sum);
            }
            ck_assert_int_eq(op_softmax_backward(b, dd, gd, yd, R, K), MLTK_OK);
            down_on(b, dx, dd, n);
            char what[64];
            snprintf(what, sizeof(what), "softmax dx (%lld x %lld)", (long long)R, (long long)K);
            /* dx reads the float y: its rounding (a few 1e-7 relative) enters
             * through sum(dy y) */
            expect_close(dx, rdx, n, 1e-5, 5e-7, what);
            if (t == 0) {
                memcpy(y1, y, (size_t)n * sizeof(float));
                memcpy(dx1, dx, (size_t)n * sizeof(float));
            } else {
                expect_same_bits(y, y1, n, "softmax");
                expect_same_bits(dx, dx1, n, "softmax dx");
            }
            /* in place, both ways */
            ck_assert_int_eq(op_softmax_forward(b, xd, xd, R, K), MLTK_OK);
            down_on(b, y, xd, n);
            expect_same_bits(y, y1, n, "softmax in place");
            ck_assert_int_eq(op_softmax_backward(b, gd, gd, xd, R, K), MLTK_OK);
            down_on(b, dx, gd, n);
            expect_same_bits(dx, dx1, n, "softmax dx in place");
            dev_free_on(b, xd); dev_free_on(b, yd); dev_free_on(b, gd); dev_free_on(b, dd);
        }
        free(x); free(dy); free(y); free(dx); free(y1); free(dx1); free(ry); free(rdx);
    }
    float v[4] = { 0 };
    ck_assert_int_eq(op_softmax_forward(&be, v, NULL, 1, 4), MLTK_ERR_INVALID);
    /* a negative dimension is a shape the core refuses */
    ck_assert_int_eq(op_softmax_forward(&be, v, v, -1, 4), MLTK_ERR_SHAPE);
    ck_assert_int_eq(op_softmax_backward(&be, v, v, NULL, 1, 4), MLTK_ERR_INVALID);
}
END_TEST

/* ---- layers: harness ------------------------------------------------------ */

static mltk_params_t *build_params(const char *name, int n, const char *const *keys,
                                   const char *const *vals)
{
    const mltk_desc *d = NULL;
    mltk_params_t *p = NULL;
    char *err = NULL;
    int rc = mltk_registry_find(reg, name, MLTK_KIND_LAYER, &d, &err);

    ck_assert_msg(rc == MLTK_OK, "find %s: %s", name, err ? err : "?");
    rc = mltk_params_build(&p, &d, 1, n, keys, vals, NULL, NULL, 0, name, &err);
    ck_assert_msg(rc == MLTK_OK, "params %s: %s", name, err ? err : "?");
    return p;
}

static mltk_shape batch_shape(int64_t batch, const mltk_shape *s)
{
    mltk_shape b;

    b.ndim = s->ndim + 1;
    b.dim[0] = batch;
    for (int i = 0; i < s->ndim; i++)
        b.dim[i + 1] = s->dim[i];
    return b;
}

typedef struct lt {
    const struct mltk_layer_i *iface;
    void              *self;
    mltk_params_t     *params;
    mltk_single_layer *sl;
    mltk_shape         in;
    int64_t            batch, nx, ny;
    float             *x, *y, *dy, *dx;
    mltk_mode          mode;
    int                frozen;
    uint64_t           step;
} lt;

static void lt_open(lt *t, const char *name, int n, const char *const *keys,
                    const char *const *vals, const mltk_shape *in, int64_t max_batch,
                    int64_t batch)
{
    char *err = NULL;
    int rc;

    memset(t, 0, sizeof(*t));
    t->params = build_params(name, n, keys, vals);
    rc = mltk_registry_load(reg, name, MLTK_KIND_LAYER, (const void **)&t->iface, &err);
    ck_assert_msg(rc == MLTK_OK, "load %s: %s", name, err ? err : "?");
    rc = t->iface->create(&t->self, t->params, &err);
    ck_assert_msg(rc == MLTK_OK, "create %s: %s", name, err ? err : "?");
    rc = mltk_single_layer_create(&t->sl, t->iface, t->self, &be, 1, in, max_batch, 42, &err);
    ck_assert_msg(rc == MLTK_OK, "setup %s: %s", name, err ? err : "?");
    t->in = *in;
    t->batch = batch;
    t->nx = batch * mltk_shape_numel(in);
    t->ny = batch * mltk_shape_numel(&t->sl->out);
    t->x = dev_alloc(t->nx);
    t->dx = dev_alloc(t->nx);
    t->y = dev_alloc(t->ny);
    t->dy = dev_alloc(t->ny);
    t->mode = MLTK_TRAIN;
}

static void lt_close(lt *t)
{
    dev_free_on(&be, t->x);
    dev_free_on(&be, t->dx);
    dev_free_on(&be, t->y);
    dev_free_on(&be, t->dy);
    mltk_single_layer_destroy(t->sl, &be);
    if (t->iface->destroy)
        t->iface->destroy(t->self);
    mltk_params_free(t->params);
}

static int lt_call(lt *t, float *x, float *y, float *dx, float *dy, int backward)
{
    mltk_tensor xt = tview(x, batch_shape(t->batch, &t->in), MLTK_F32);
    mltk_tensor dxt = tview(dx, batch_shape(t->batch, &t->in), MLTK_F32);
    mltk_tensor yt = tview(y, batch_shape(t->batch, &t->sl->out), MLTK_F32);
    mltk_tensor dyt = tview(dy, batch_shape(t->batch, &t->sl->out), MLTK_F32);
    mltk_layer_run r = {
        .be = &be, .mode = t->mode, .batch = t->batch, .n_in = 1,
        .x = &xt, .dx = &dxt, .y = &yt, .dy = &dyt,
        .params = t->sl->params, .grads = t->sl->grads, .buffers = t->sl->buffers,
        .seed = 7, .step = t->step, .frozen = t->frozen,
    };
    int rc = backward ? t->iface->backward(t->self, &r) : t->iface->forward(t->self, &r);

    ck_assert_int_eq(mltk_be_sync(&be), MLTK_OK);
    return rc;
}

static void lt_run(lt *t, int backward)
{
    ck_assert_int_eq(lt_call(t, t->x, t->y, t->dx, t->dy, backward), MLTK_OK);
}

static double lt_objective(lt *t, const float *R)
{
    float *y = hmalloc(t->ny);
    double L = 0.0;

    lt_run(t, 0);
    down(y, t->y, t->ny);
    for (int64_t i = 0; i < t->ny; i++)
        L += (double)y[i] * R[i];
    free(y);
    return L;
}

/* L with the n host values (mirrored in backend memory `dev`) uploaded
 * first: the function the harness differentiates */
typedef struct lt_fd {
    lt          *t;
    float       *host, *dev;
    int64_t      n;
    const float *R;
} lt_fd;

static double lt_fd_eval(void *ctx)
{
    lt_fd *c = ctx;

    up(c->dev, c->host, c->n);
    return lt_objective(c->t, c->R);
}

static void check_fd(lt *t, const char *what, float *host, float *dev, int64_t n,
                     const float *ana, const float *R)
{
    lt_fd c = { t, host, dev, n, R };
    fd_opts o = tu_fd_bounds(1e-2, 1e-3);
    fd_report r;

    if (tu_fd_check(what, lt_fd_eval, &c, host, n, ana, &o, &r))
        ck_abort_msg("%s", r.msg);
    up(dev, host, n);
}

/* Forward once, backward with dy = R, and every gradient (input, then each
 * parameter) against central differences, in the layer's current mode. */
static void grad_check(lt *t, const float *x, uint64_t seed)
{
    float *xh = hmalloc(t->nx), *R = hmalloc(t->ny), *dx = hmalloc(t->nx);

    tu_rng_seed(seed);
    memcpy(xh, x, (size_t)t->nx * sizeof(float));
    fill_rand(R, t->ny, -1, 1);
    up(t->x, xh, t->nx);
    up(t->dy, R, t->ny);
    lt_run(t, 0);
    lt_run(t, 1);
    down(dx, t->dx, t->nx);
    for (int p = 0; p < t->sl->n_params; p++) {
        int64_t np = mltk_tensor_numel(&t->sl->params[p]);
        float *ph = hmalloc(np), *gp = hmalloc(np);
        down(ph, t->sl->params[p].data, np);
        down(gp, t->sl->grads[p].data, np);
        check_fd(t, "dparam", ph, t->sl->params[p].data, np, gp, R);
        free(ph);
        free(gp);
    }
    check_fd(t, "dx", xh, t->x, t->nx, dx, R);
    free(xh); free(R); free(dx);
}

/* a random, not constant, value for each parameter */
static void perturb_params(lt *t, uint64_t seed)
{
    tu_rng_seed(seed);
    for (int p = 0; p < t->sl->n_params; p++) {
        int64_t np = mltk_tensor_numel(&t->sl->params[p]);
        float *h = hmalloc(np);
        down(h, t->sl->params[p].data, np);
        for (int64_t i = 0; i < np; i++)
            h[i] += (float)(0.5 * tu_urand());
        up(t->sl->params[p].data, h, np);
        free(h);
    }
}

static float *buffer_f(lt *t, int idx)
{
    return t->sl->buffers[idx].data;
}

/* ---- layers against the double references of tests/op_ref.h --------------- */

/* L = sum R y of a layer's double-precision reference over double copies
 * of its input and parameters: what fd_check_ref differentiates. */
typedef struct nref {
    void        (*fwd)(const struct nref *c, double *y);
    double       *x, *p[2], *y;  /* input, parameters (NULL: none), output */
    const float  *R;
    int64_t       ny;
    mltk_act      act;           /* activations */
    double        alpha;
    int64_t       N, C, L;       /* batchnorm (N, C, L); rows N of C for layer
                                  * norm and softmax */
    double        eps;           /* batch and layer norm, as the layer's float */
    const double *rm, *rv;       /* batchnorm evaluation: running statistics */
    const double *mask;          /* dropout: 0 or 1/(1 - rate) */
} nref;

static double nref_eval(void *ctx)
{
    nref *c = ctx;

    c->fwd(c, c->y);
    return fd_dot_d(c->R, c->y, c->ny);
}

static void nref_act(const nref *c, double *y)
{
    for (int64_t i = 0; i < c->ny; i++)
        y[i] = ref_act(c->act, c->alpha, c->x[i]);
}

static void nref_softmax(const nref *c, double *y)
{
    ref_softmax(y, c->x, c->N, c->C);
}

static void nref_bn_train(const nref *c, double *y)
{
    double sm[16], si[16];
    mltk_bn_params p = { .momentum = 0.1f, .eps = (float)c->eps };

    ck_assert(c->C <= 16);
    ref_bn_train(y, sm, si, NULL, NULL, c->x, c->p[0], c->p[1], c->N, c->C, c->L, &p);
}

static void nref_bn_eval(const nref *c, double *y)
{
    ref_bn_eval(y, c->x, c->p[0], c->p[1], c->rm, c->rv, c->N, c->C, c->L, c->eps);
}

static void nref_ln(const nref *c, double *y)
{
    double mean[16], rstd[16];

    ck_assert(c->N <= 16);
    ref_ln_forward(y, mean, rstd, c->x, c->p[0], c->p[1], c->N, c->C, c->eps);
}

static void nref_mask(const nref *c, double *y)
{
    for (int64_t i = 0; i < c->ny; i++)
        y[i] = c->x[i] * c->mask[i];
}

/* In the layer's current mode: forward at x with the parameters as they
 * are, y against c's reference within rtol |ref| + atol; then backward
 * with dy = R (drawn from `seed` as grad_check draws it), dx and every
 * parameter gradient against central differences of the reference
 * (fd_check_ref: within 1e-5 of the gradient's largest element).  c->rm,
 * rv and mask, where used, are set by the caller. */
static void ref_check(lt *t, nref *c, const float *x, uint64_t seed, double rtol, double atol,
                      const char *name)
{
    fd_ref_opts fo = FD_REF_OPTS_DEFAULT;
    fd_report rep;
    float *R = hmalloc(t->ny), *y = hmalloc(t->ny), *dx = hmalloc(t->nx);
    double *xd = dmalloc(t->nx), *yd = dmalloc(t->ny), *ref = dmalloc(t->ny);
    char what[96];

    ck_assert(t->sl->n_params <= 2);
    tu_rng_seed(seed);
    fill_rand(R, t->ny, -1, 1);
    fd_to_double(xd, x, t->nx);
    c->x = xd;
    c->y = yd;
    c->R = R;
    c->ny = t->ny;
    c->p[0] = c->p[1] = NULL;
    for (int p = 0; p < t->sl->n_params; p++) {
        int64_t np = mltk_tensor_numel(&t->sl->params[p]);
        float *h = hmalloc(np);
        c->p[p] = dmalloc(np);
        down(h, t->sl->params[p].data, np);
        fd_to_double(c->p[p], h, np);
        free(h);
    }
    up(t->x, x, t->nx);
    up(t->dy, R, t->ny);
    lt_run(t, 0);
    down(y, t->y, t->ny);
    c->fwd(c, ref);
    snprintf(what, sizeof(what), "%s forward (double reference)", name);
    expect_close(y, ref, t->ny, rtol, atol, what);
    lt_run(t, 1);
    down(dx, t->dx, t->nx);
    snprintf(what, sizeof(what), "%s dx (double reference)", name);
    if (fd_check_ref(what, nref_eval, c, xd, t->nx, dx, &fo, &rep))
        ck_abort_msg("%s", rep.msg);
    for (int p = 0; p < t->sl->n_params; p++) {
        int64_t np = mltk_tensor_numel(&t->sl->params[p]);
        float *g = hmalloc(np);
        down(g, t->sl->grads[p].data, np);
        snprintf(what, sizeof(what), "%s dparam%d (double reference)", name, p);
        if (fd_check_ref(what, nref_eval, c, c->p[p], np, g, &fo, &rep))
            ck_abort_msg("%s", rep.msg);
        free(g);
    }
    for (int p = 0; p < 2; p++) {
        free(c->p[p]);
        c->p[p] = NULL;
    }
    free(R); free(y); free(dx); free(xd); free(yd); free(ref);
}

/* the running statistics of a batchnorm layer (buffers 0 and 1), C each */
static void bn_running(lt *t, double *rm, double *rv, int64_t C)
{
    float *h = hmalloc(2 * C);

    down(h, t->sl->buffers[0].data, C);
    down(h + C, t->sl->buffers[1].data, C);
    fd_to_double(rm, h, C);
    fd_to_double(rv, h + C, C);
    free(h);
}

/* ---- layers: activations -------------------------------------------------- */

typedef struct act_case {
    const char *layer, *key, *val;
    mltk_act act;
    double alpha;
    int kink;   /* piecewise: keep inputs off 0 */
} act_case;

static const act_case act_cases[] = {
    { "leaky_relu", NULL, NULL, MLTK_ACT_LEAKY_RELU, 0.01, 1 },
    { "leaky_relu", "negative_slope", "-0.4", MLTK_ACT_LEAKY_RELU, -0.4, 1 },
    { "elu", NULL, NULL, MLTK_ACT_ELU, 1.0, 1 },
    { "elu", "alpha", "0.3", MLTK_ACT_ELU, 0.3, 1 },
    { "gelu", NULL, NULL, MLTK_ACT_GELU, 0, 0 },
    { "gelu", "approximate", "tanh", MLTK_ACT_GELU_TANH, 0, 0 },
    { "sigmoid", NULL, NULL, MLTK_ACT_SIGMOID, 0, 0 },
    { "tanh", NULL, NULL, MLTK_ACT_TANH, 0, 0 },
};

START_TEST(test_layer_acts)
{
    const act_case *c = &act_cases[_i];
    int64_t d[2] = { 3, 5 };
    mltk_shape in = mltk_shape_make(2, d);
    const char *keys[1] = { c->key }, *vals[1] = { c->val };
    lt t;

    lt_open(&t, c->layer, c->key ? 1 : 0, keys, vals, &in, 4, 3);
    ck_assert(mltk_shape_equal(&t.sl->out, &in));
    ck_assert_int_eq(t.sl->n_params, 0);
    float *x = hmalloc(t.nx), *y = hmalloc(t.ny);
    double *ref = dmalloc(t.ny);
    tu_rng_seed(700 + (uint64_t)_i);
    for (int64_t i = 0; i < t.nx; i++) {
        double v = 3.0 * tu_urand();
        if (c->kink && fabs(v) < 0.05)
            v = v < 0 ? v - 0.05 : v + 0.05;
        x[i] = (float)v;
        ref[i] = act_ref(c->act, c->alpha, x[i]);
    }
    up(t.x, x, t.nx);
    lt_run(&t, 0);
    down(y, t.y, t.ny);
    expect_close(y, ref, t.ny, 3e-6, 1e-7, c->layer);
    grad_check(&t, x, 800 + (uint64_t)_i);
    {
        nref rc = { .fwd = nref_act, .act = c->act, .alpha = (double)(float)c->alpha };
        ref_check(&t, &rc, x, 800 + (uint64_t)_i, 3e-6, 1e-7, c->layer);
    }

    /* in place when the layer says so: same output, same gradient */
    int inplace = t.iface->inplace ? t.iface->inplace(t.self) : 0;
    int want_inplace = !(c->act == MLTK_ACT_GELU || c->act == MLTK_ACT_GELU_TANH
                         || c->alpha < 0);
    ck_assert_int_eq(inplace, want_inplace);
    if (inplace) {
        float *dx = hmalloc(t.nx), *dx2 = hmalloc(t.nx), *y2 = hmalloc(t.ny);
        lt_run(&t, 0);
        lt_run(&t, 1);
        down(dx, t.dx, t.nx);
        up(t.dx, x, t.nx);   /* the shared buffer starts as x */
        ck_assert_int_eq(lt_call(&t, t.dx, t.dx, t.dy, t.dy, 0), MLTK_OK);
        down(y2, t.dx, t.ny);
        expect_same_bits(y2, y, t.ny, "in-place forward");
        ck_assert_int_eq(lt_call(&t, t.dx, t.dx, t.dy, t.dy, 1), MLTK_OK);
        down(dx2, t.dy, t.nx);
        expect_same_bits(dx2, dx, t.nx, "in-place backward");
        free(dx); free(dx2); free(y2);
    }
    free(x); free(y); free(ref);
    lt_close(&t);
}
END_TEST

START_TEST(test_layer_softmax)
{
    int64_t d[3] = { 2, 3, 6 };
    mltk_shape in = mltk_shape_make(3, d);
    lt t;

    lt_open(&t, "softmax", 0, NULL, NULL, &in, 3, 2);
    ck_assert(mltk_shape_equal(&t.sl->out, &in));
    float *x = hmalloc(t.nx), *y = hmalloc(t.ny);
    tu_rng_seed(900);
    fill_rand(x, t.nx, -3, 3);
    up(t.x, x, t.nx);
    lt_run(&t, 0);
    down(y, t.y, t.ny);
    for (int64_t r = 0; r < t.ny / 6; r++) {
        double s = 0, mx = -INFINITY;
        for (int k = 0; k < 6; k++)
            mx = x[r * 6 + k] > mx ? x[r * 6 + k] : mx;
        for (int k = 0; k < 6; k++)
            s += exp(x[r * 6 + k] - mx);
        for (int k = 0; k < 6; k++) {
            double want = exp(x[r * 6 + k] - mx) / s;
            EXPECT(fabs(y[r * 6 + k] - want) <= 1e-6, "softmax[%lld] = %g, want %g",
                   (long long)(r * 6 + k), (double)y[r * 6 + k], want);
        }
    }
    grad_check(&t, x, 901);
    {
        nref rc = { .fwd = nref_softmax, .N = t.ny / 6, .C = 6 };
        ref_check(&t, &rc, x, 901, 1e-6, 1e-7, "softmax");
    }
    ck_assert_int_eq(t.iface->inplace(t.self), 1);
    free(x); free(y);
    lt_close(&t);
}
END_TEST

/* ---- layers: batch norm --------------------------------------------------- */

enum { BN_RMEAN, BN_RVAR };   /* the layer's first two buffers */

/* train-mode gradients of batchnorm for 1-d (C), (C, L) and (C, H, W)
 * samples, with and without affine */
START_TEST(test_layer_bn_grad)
{
    static const int64_t shapes[][4] = {  /* ndim, dims */
        { 1, 5, 0, 0 }, { 2, 3, 4, 0 }, { 3, 2, 3, 3 },
    };
    const int affine = _i % 2;
    const int64_t *s = shapes[_i / 2];
    mltk_shape in = mltk_shape_make((int)s[0], s + 1);
    const char *keys[1] = { "affine" }, *vals[1] = { affine ? "true" : "false" };
    int64_t batch = s[0] == 1 ? 6 : 3;
    lt t;

    lt_open(&t, "batchnorm", 1, keys, vals, &in, batch + 1, batch);
    ck_assert(mltk_shape_equal(&t.sl->out, &in));
    ck_assert_int_eq(t.sl->n_params, affine ? 2 : 0);
    if (affine) {
        float w[8], b[8];
        ck_assert_int_eq(mltk_tensor_numel(&t.sl->params[0]), s[1]);
        down(w, t.sl->params[0].data, s[1]);
        down(b, t.sl->params[1].data, s[1]);
        for (int64_t c = 0; c < s[1]; c++) {
            ck_assert(w[c] == 1.0f);
            ck_assert(b[c] == 0.0f);
        }
        perturb_params(&t, 1000 + (uint64_t)_i);
    }
    float *x = hmalloc(t.nx);
    tu_rng_seed(1100 + (uint64_t)_i);
    fill_rand(x, t.nx, -2, 2);
    grad_check(&t, x, 1200 + (uint64_t)_i);
    /* forward and gradients against the double reference: batch
     * statistics in training */
    int64_t C = s[1], L = mltk_shape_numel(&in) / s[1];
    double rm[8], rv[8];
    nref rc = { .fwd = nref_bn_train, .N = batch, .C = C, .L = L, .eps = (double)1e-5f,
                .rm = rm, .rv = rv };
    ref_check(&t, &rc, x, 1250 + (uint64_t)_i, 1e-5, 1e-6, "batchnorm train");
    /* the same in evaluation mode and frozen (running statistics) */
    t.mode = MLTK_EVAL;
    grad_check(&t, x, 1300 + (uint64_t)_i);
    bn_running(&t, rm, rv, C);
    rc.fwd = nref_bn_eval;
    ref_check(&t, &rc, x, 1350 + (uint64_t)_i, 1e-5, 1e-6, "batchnorm eval");
    t.mode = MLTK_TRAIN;
    t.frozen = 1;
    grad_check(&t, x, 1400 + (uint64_t)_i);
    ref_check(&t, &rc, x, 1450 + (uint64_t)_i, 1e-5, 1e-6, "batchnorm frozen");
    free(x);
    lt_close(&t);
}
END_TEST

/* running statistics: start at 0 / 1, move by momentum with the unbiased
 * variance; evaluation uses them; frozen leaves them alone */
START_TEST(test_layer_bn_running)
{
    int64_t d[2] = { 3, 4 };   /* C = 3, L = 4 */
    mltk_shape in = mltk_shape_make(2, d);
    const char *keys[2] = { "momentum", "eps" }, *vals[2] = { "0.25", "0.001" };
    const int64_t N = 5, C = 3, L = 4, M = N * L;
    const double mo = 0.25, eps = 0.001;
    double rm[3] = { 0, 0, 0 }, rv[3] = { 1, 1, 1 };
    lt t;

    lt_open(&t, "batchnorm", 2, keys, vals, &in, N, N);
    float *x = hmalloc(t.nx), *y = hmalloc(t.ny), *got = hmalloc(C), *got2 = hmalloc(C);
    float *w = hmalloc(C), *b = hmalloc(C);
    perturb_params(&t, 1500);
    down(w, t.sl->params[0].data, C);
    down(b, t.sl->params[1].data, C);
    for (int step = 0; step < 3; step++) {
        tu_rng_seed(1600 + (uint64_t)step);
        for (int64_t i = 0; i < t.nx; i++)
            x[i] = (float)(tu_urand() * (1 + step) + 0.5 * step);
        up(t.x, x, t.nx);
        t.step = (uint64_t)step;
        lt_run(&t, 0);
        for (int64_t c = 0; c < C; c++) {
            double s = 0, q = 0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t l = 0; l < L; l++)
                    s += x[(n * C + c) * L + l];
            s /= M;
            for (int64_t n = 0; n < N; n++)
                for (int64_t l = 0; l < L; l++)
                    q += (x[(n * C + c) * L + l] - s) * (x[(n * C + c) * L + l] - s);
            rm[c] = (1 - mo) * rm[c] + mo * s;
            rv[c] = (1 - mo) * rv[c] + mo * q / (M - 1);
        }
        down(got, buffer_f(&t, BN_RMEAN), C);
        down(got2, buffer_f(&t, BN_RVAR), C);
        for (int64_t c = 0; c < C; c++) {
            EXPECT(fabs(got[c] - rm[c]) <= 1e-6, "step %d running_mean[%lld] = %.9g, want %.9g",
                   step, (long long)c, (double)got[c], rm[c]);
            EXPECT(fabs(got2[c] - rv[c]) <= 1e-6 * rv[c], "step %d running_var[%lld] = %.9g, want %.9g",
                   step, (long long)c, (double)got2[c], rv[c]);
        }
    }
    /* evaluation: y from the running statistics, which stay put */
    t.mode = MLTK_EVAL;
    lt_run(&t, 0);
    down(y, t.y, t.ny);
    for (int64_t i = 0; i < t.nx; i++) {
        int64_t c = (i / L) % C;
        double want = (x[i] - rm[c]) / sqrt(rv[c] + eps) * w[c] + b[c];
        EXPECT(fabs(y[i] - want) <= 1e-5 * (1 + fabs(want)), "eval y[%lld] = %.7g, want %.7g",
               (long long)i, (double)y[i], want);
    }
    float *y_eval = hmalloc(t.ny);
    memcpy(y_eval, y, (size_t)t.ny * sizeof(float));
    down(got, buffer_f(&t, BN_RMEAN), C);
    for (int64_t c = 0; c < C; c++)
        EXPECT(fabs(got[c] - rm[c]) <= 1e-6, "eval moved running_mean[%lld]", (long long)c);
    /* frozen in training: the evaluation output, statistics bit-identical */
    float *before = hmalloc(2 * C), *after = hmalloc(2 * C);
    down(before, buffer_f(&t, BN_RMEAN), C);
    down(before + C, buffer_f(&t, BN_RVAR), C);
    t.mode = MLTK_TRAIN;
    t.frozen = 1;
    for (int k = 0; k < 3; k++) {
        lt_run(&t, 0);
        lt_run(&t, 1);
    }
    down(y, t.y, t.ny);
    expect_same_bits(y, y_eval, t.ny, "frozen output");
    down(after, buffer_f(&t, BN_RMEAN), C);
    down(after + C, buffer_f(&t, BN_RVAR), C);
    expect_same_bits(after, before, 2 * C, "frozen running statistics");
    free(x); free(y); free(got); free(got2); free(w); free(b); free(y_eval);
    free(before); free(after);
    lt_close(&t);
}
END_TEST

/* one value per channel cannot be normalised in training; it can in
 * evaluation, and a batch of one works when L > 1 */
START_TEST(test_layer_bn_single)
{
    int64_t c = 4, d2[2] = { 2, 3 };
    mltk_shape in1 = mltk_shape_make(1, &c), in2 = mltk_shape_make(2, d2);
    lt t;

    lt_open(&t, "batchnorm", 0, NULL, NULL, &in1, 4, 1);
    float x[4] = { 1, 2, 3, 4 };
    up(t.x, x, 4);
    ck_assert_int_eq(lt_call(&t, t.x, t.y, t.dx, t.dy, 0), MLTK_ERR_INVALID);
    t.mode = MLTK_EVAL;
    ck_assert_int_eq(lt_call(&t, t.x, t.y, t.dx, t.dy, 0), MLTK_OK);
    float y[4];
    down(y, t.y, 4);
    for (int i = 0; i < 4; i++)   /* running mean 0, var 1 */
        ck_assert(fabs(y[i] - x[i] / sqrt(1.0 + 1e-5)) < 1e-6);
    lt_close(&t);

    lt_open(&t, "batchnorm", 0, NULL, NULL, &in2, 1, 1);
    float *xx = hmalloc(t.nx);
    tu_rng_seed(1700);
    fill_rand(xx, t.nx, -1, 1);
    grad_check(&t, xx, 1701);
    free(xx);
    lt_close(&t);
}
END_TEST

START_TEST(test_layer_bn_errors)
{
    const char *keys[1] = { "eps" }, *vals[1] = { "0" };
    mltk_params_t *p = build_params("batchnorm", 1, keys, vals);
    const struct mltk_layer_i *iface = NULL;
    void *self = NULL;
    char *err = NULL;

    ck_assert_int_eq(mltk_registry_load(reg, "batchnorm", MLTK_KIND_LAYER,
                                        (const void **)&iface, &err), MLTK_OK);
    ck_assert_int_eq(iface->create(&self, p, &err), MLTK_ERR_CONFIG);
    ck_assert_msg(err && strstr(err, "eps"), "message: %s", err ? err : "");
    free(err);
    mltk_params_free(p);

    /* a scalar sample has no channel */
    mltk_single_layer *sl = NULL;
    mltk_shape scalar = { 0, { 0 } };
    err = NULL;
    p = build_params("batchnorm", 0, NULL, NULL);
    ck_assert_int_eq(iface->create(&self, p, &err), MLTK_OK);
    ck_assert_int_eq(mltk_single_layer_create(&sl, iface, self, &be, 1, &scalar, 2, 1, &err),
                     MLTK_ERR_SHAPE);
    ck_assert_msg(err && strstr(err, "channel"), "message: %s", err ? err : "");
    free(err);
    iface->destroy(self);
    mltk_params_free(p);
}
END_TEST

/* ---- layers: layer norm --------------------------------------------------- */

START_TEST(test_layer_ln)
{
    static const char *const axes[] = { "last", "all" };
    const char *keys[2] = { "axis", "affine" };
    const char *vals[2] = { axes[_i % 2], (_i / 2) ? "false" : "true" };
    int64_t d[2] = { 3, 5 };
    mltk_shape in = mltk_shape_make(2, d);
    int all = _i % 2, affine = !(_i / 2);
    lt t;

    lt_open(&t, "layernorm", 2, keys, vals, &in, 3, 2);
    ck_assert_int_eq(t.sl->n_params, affine ? 2 : 0);
    if (affine) {
        ck_assert_int_eq(mltk_tensor_numel(&t.sl->params[0]), all ? 15 : 5);
        perturb_params(&t, 1800 + (uint64_t)_i);
    }
    float *x = hmalloc(t.nx), *y = hmalloc(t.ny), *w = hmalloc(15), *b = hmalloc(15);
    tu_rng_seed(1900 + (uint64_t)_i);
    fill_rand(x, t.nx, -2, 3);
    up(t.x, x, t.nx);
    if (affine) {
        down(w, t.sl->params[0].data, all ? 15 : 5);
        down(b, t.sl->params[1].data, all ? 15 : 5);
    }
    lt_run(&t, 0);
    down(y, t.y, t.ny);
    int64_t K = all ? 15 : 5;
    for (int64_t r = 0; r < t.nx / K; r++) {
        double m = 0, v = 0;
        for (int64_t k = 0; k < K; k++)
            m += x[r * K + k];
        m /= K;
        for (int64_t k = 0; k < K; k++)
            v += (x[r * K + k] - m) * (x[r * K + k] - m);
        v /= K;
        for (int64_t k = 0; k < K; k++) {
            double want = (x[r * K + k] - m) / sqrt(v + 1e-5);
            if (affine)
                want = want * w[k] + b[k];
            EXPECT(fabs(y[r * K + k] - want) <= 1e-5 * (1 + fabs(want)),
                   "ln y[%lld] = %.7g, want %.7g", (long long)(r * K + k),
                   (double)y[r * K + k], want);
        }
    }
    grad_check(&t, x, 2000 + (uint64_t)_i);
    {
        nref rc = { .fwd = nref_ln, .N = t.nx / K, .C = K, .eps = (double)1e-5f };
        ref_check(&t, &rc, x, 2050 + (uint64_t)_i, 1e-5, 1e-6, "layernorm");
    }
    /* evaluation computes the same */
    float *y2 = hmalloc(t.ny);
    t.mode = MLTK_EVAL;
    lt_run(&t, 0);
    down(y2, t.y, t.ny);
    expect_same_bits(y2, y, t.ny, "layernorm eval");
    free(x); free(y); free(y2); free(w); free(b);
    lt_close(&t);
}
END_TEST

/* ---- layers: dropout ------------------------------------------------------ */

START_TEST(test_layer_dropout)
{
    int64_t d[2] = { 50, 41 };
    mltk_shape in = mltk_shape_make(2, d);
    const char *keys[1] = { "rate" }, *vals[1] = { "0.3" };
    const double p = 0.3;
    lt t;

    lt_open(&t, "dropout", 1, keys, vals, &in, 8, 8);
    ck_assert(mltk_shape_equal(&t.sl->out, &in));
    ck_assert_int_eq(t.iface->inplace(t.self), 1);
    float *x = hmalloc(t.nx), *y = hmalloc(t.ny), *y0 = hmalloc(t.ny), *g = hmalloc(t.nx);
    float *dy = hmalloc(t.ny);
    tu_rng_seed(2100);
    fill_rand(x, t.nx, 0.5, 2);     /* no zeros: y == 0 iff dropped */
    fill_rand(dy, t.ny, -1, 1);
    up(t.x, x, t.nx);
    up(t.dy, dy, t.ny);

    /* statistics of one mask: fraction dropped ~ p, kept scaled 1/(1-p) */
    lt_run(&t, 0);
    down(y0, t.y, t.ny);
    int64_t dropped = 0;
    const float scale = 1.0f / (1.0f - 0.3f);
    for (int64_t i = 0; i < t.ny; i++) {
        if (y0[i] == 0.0f)
            dropped++;
        else
            EXPECT(y0[i] == x[i] * scale, "kept y[%lld] = %g, want %g", (long long)i,
                   (double)y0[i], (double)(x[i] * scale));
    }
    double sd = sqrt(t.ny * p * (1 - p));
    ck_assert_msg(fabs(dropped - t.ny * p) <= 5 * sd, "dropped %lld of %lld",
                  (long long)dropped, (long long)t.ny);

    /* backward: dy through the same mask */
    lt_run(&t, 1);
    down(g, t.dx, t.nx);
    for (int64_t i = 0; i < t.nx; i++)
        EXPECT(g[i] == (y0[i] == 0.0f ? 0.0f : dy[i] * scale), "dx[%lld] = %g", (long long)i,
               (double)g[i]);

    /* the same seed and step: the same mask; another step: another */
    lt_run(&t, 0);
    down(y, t.y, t.ny);
    expect_same_bits(y, y0, t.ny, "dropout repeat");
    t.step = 1;
    lt_run(&t, 0);
    down(y, t.y, t.ny);
    int64_t differ = 0;
    for (int64_t i = 0; i < t.ny; i++)
        differ += (y[i] == 0.0f) != (y0[i] == 0.0f);
    /* two independent masks disagree on 2 p (1 - p) of the values */
    ck_assert_msg(differ > t.ny * 2 * p * (1 - p) * 0.8, "step 1 mask differs in %lld only",
                  (long long)differ);

    /* a smaller batch draws the prefix of the same stream */
    t.step = 0;
    t.batch = 3;
    t.nx = t.ny = 3 * 50 * 41;
    lt_run(&t, 0);
    down(y, t.y, t.ny);
    expect_same_bits(y, y0, t.ny, "dropout prefix");
    t.batch = 8;
    t.nx = t.ny = 8 * 50 * 41;

    /* evaluation: identity, and the gradient passes unchanged */
    t.mode = MLTK_EVAL;
    lt_run(&t, 0);
    down(y, t.y, t.ny);
    expect_same_bits(y, x, t.ny, "dropout eval");
    lt_run(&t, 1);
    down(g, t.dx, t.nx);
    expect_same_bits(g, dy, t.nx, "dropout eval backward");

    /* the gradient against finite differences (the mask is fixed by the
     * seed and step) on a small layer */
    free(x); free(y); free(y0); free(g); free(dy);
    lt_close(&t);

    int64_t d2 = 9;
    mltk_shape in2 = mltk_shape_make(1, &d2);
    lt_open(&t, "dropout", 0, NULL, NULL, &in2, 3, 3);
    x = hmalloc(t.nx);
    fill_rand(x, t.nx, -1, 1);
    grad_check(&t, x, 2200);
    {   /* the mask this seed and step draw, read off y (x has no zeros) */
        double *mask = dmalloc(t.nx);
        y = hmalloc(t.ny);
        up(t.x, x, t.nx);
        lt_run(&t, 0);
        down(y, t.y, t.ny);
        for (int64_t i = 0; i < t.nx; i++) {
            ck_assert(x[i] != 0.0f);
            mask[i] = y[i] == 0.0f ? 0.0 : 1.0 / (1.0 - (double)0.5f);
        }
        nref rc = { .fwd = nref_mask, .mask = mask };
        ref_check(&t, &rc, x, 2250, 0, 0, "dropout");
        free(mask);
        free(y);
    }
    free(x);
    lt_close(&t);
}
END_TEST

/* two dropout layers of one model draw different masks */
START_TEST(test_layer_dropout_salt)
{
    int64_t d = 4000;
    mltk_shape in = mltk_shape_make(1, &d);
    const struct mltk_layer_i *iface = NULL;
    const mltk_desc *desc = NULL;
    char *err = NULL;
    mltk_params_t *p1 = NULL, *p2 = NULL;
    void *s1 = NULL, *s2 = NULL;
    mltk_single_layer *l1 = NULL, *l2 = NULL;

    ck_assert_int_eq(mltk_registry_find(reg, "dropout", MLTK_KIND_LAYER, &desc, &err), MLTK_OK);
    ck_assert_int_eq(mltk_params_build(&p1, &desc, 1, 0, NULL, NULL, NULL, "t.ini", 3,
                                       "layer 'drop1' (dropout)", &err), MLTK_OK);
    ck_assert_int_eq(mltk_params_build(&p2, &desc, 1, 0, NULL, NULL, NULL, "t.ini", 9,
                                       "layer 'drop2' (dropout)", &err), MLTK_OK);
    ck_assert_int_eq(mltk_registry_load(reg, "dropout", MLTK_KIND_LAYER,
                                        (const void **)&iface, &err), MLTK_OK);
    ck_assert_int_eq(iface->create(&s1, p1, &err), MLTK_OK);
    ck_assert_int_eq(iface->create(&s2, p2, &err), MLTK_OK);
    ck_assert_int_eq(mltk_single_layer_create(&l1, iface, s1, &be, 1, &in, 1, 1, &err), MLTK_OK);
    ck_assert_int_eq(mltk_single_layer_create(&l2, iface, s2, &be, 1, &in, 1, 1, &err), MLTK_OK);
    float *x = dev_alloc(d), *y1 = dev_alloc(d), *y2 = dev_alloc(d);
    float *h1 = hmalloc(d), *h2 = hmalloc(d);
    ck_assert_int_eq(op_fill(&be, x, 1.0f, d), MLTK_OK);
    mltk_shape bs = batch_shape(1, &in);
    mltk_tensor xt = tview(x, bs, MLTK_F32), yt1 = tview(y1, bs, MLTK_F32), yt2 = tview(y2, bs, MLTK_F32);
    mltk_layer_run r = { .be = &be, .mode = MLTK_TRAIN, .batch = 1, .n_in = 1, .x = &xt,
                         .y = &yt1, .buffers = l1->buffers, .seed = 5, .step = 0 };
    ck_assert_int_eq(iface->forward(s1, &r), MLTK_OK);
    r.y = &yt2;
    r.buffers = l2->buffers;
    ck_assert_int_eq(iface->forward(s2, &r), MLTK_OK);
    down(h1, y1, d);
    down(h2, y2, d);
    int64_t differ = 0;
    for (int64_t i = 0; i < d; i++)
        differ += h1[i] != h2[i];
    ck_assert_msg(differ > d / 4, "masks of two layers differ in %lld of %lld only",
                  (long long)differ, (long long)d);
    dev_free_on(&be, x); dev_free_on(&be, y1); dev_free_on(&be, y2);
    free(h1); free(h2);
    mltk_single_layer_destroy(l1, &be);
    mltk_single_layer_destroy(l2, &be);
    iface->destroy(s1);
    iface->destroy(s2);
    mltk_params_free(p1);
    mltk_params_free(p2);
}
END_TEST

/* ---- against PyTorch ------------------------------------------------------ */

static void expect_close_f(const float *got, const float *ref, int64_t n, double rtol,
                           double atol, const char *what)
{
    double *r = dmalloc(n);
    for (int64_t i = 0; i < n; i++)
        r[i] = ref[i];
    expect_close(got, r, n, rtol, atol, what);
    free(r);
}

/* BatchNorm2d(3, momentum 0.1, eps 1e-5): two training steps, then eval */
START_TEST(test_torch_bn2d)
{
    int64_t d[3] = { TREF_BN_C, TREF_BN_H, TREF_BN_W };
    mltk_shape in = mltk_shape_make(3, d);
    const int64_t C = TREF_BN_C;
    lt t;

    lt_open(&t, "batchnorm", 0, NULL, NULL, &in, TREF_BN_N, TREF_BN_N);
    float *y = hmalloc(t.ny), *dx = hmalloc(t.nx), *g = hmalloc(C);
    up(t.sl->params[0].data, tref_bn_weight, C);
    up(t.sl->params[1].data, tref_bn_bias, C);
    up(t.x, tref_bn_x1, t.nx);
    lt_run(&t, 0);
    down(y, t.y, t.ny);
    expect_close_f(y, tref_bn_y1, t.ny, 1e-5, 1e-5, "torch bn y1");
    up(t.x, tref_bn_x2, t.nx);
    up(t.dy, tref_bn_dy, t.ny);
    lt_run(&t, 0);
    lt_run(&t, 1);
    down(y, t.y, t.ny);
    expect_close_f(y, tref_bn_y2, t.ny, 1e-5, 1e-5, "torch bn y2");
    down(dx, t.dx, t.nx);
    expect_close_f(dx, tref_bn_dx, t.nx, 1e-4, 1e-5, "torch bn dx");
    down(g, t.sl->grads[0].data, C);
    expect_close_f(g, tref_bn_dweight, C, 1e-5, 1e-5, "torch bn dweight");
    down(g, t.sl->grads[1].data, C);
    expect_close_f(g, tref_bn_dbias, C, 1e-5, 1e-5, "torch bn dbias");
    down(g, buffer_f(&t, BN_RMEAN), C);
    expect_close_f(g, tref_bn_running_mean, C, 1e-6, 1e-7, "torch running_mean");
    down(g, buffer_f(&t, BN_RVAR), C);
    expect_close_f(g, tref_bn_running_var, C, 1e-6, 1e-7, "torch running_var");
    t.mode = MLTK_EVAL;
    up(t.x, tref_bn_x1, t.nx);
    lt_run(&t, 0);
    down(y, t.y, t.ny);
    expect_close_f(y, tref_bn_yeval, t.ny, 1e-5, 1e-5, "torch bn eval");
    free(y); free(dx); free(g);
    lt_close(&t);
}
END_TEST

/* LayerNorm(last dimension) forward and backward */
START_TEST(test_torch_ln)
{
    int64_t d[2] = { TREF_LN_T, TREF_LN_K };
    mltk_shape in = mltk_shape_make(2, d);
    lt t;

    lt_open(&t, "layernorm", 0, NULL, NULL, &in, TREF_LN_N, TREF_LN_N);
    float *y = hmalloc(t.ny), *dx = hmalloc(t.nx), *g = hmalloc(TREF_LN_K);
    up(t.sl->params[0].data, tref_ln_weight, TREF_LN_K);
    up(t.sl->params[1].data, tref_ln_bias, TREF_LN_K);
    up(t.x, tref_ln_x, t.nx);
    up(t.dy, tref_ln_dy, t.ny);
    lt_run(&t, 0);
    lt_run(&t, 1);
    down(y, t.y, t.ny);
    expect_close_f(y, tref_ln_y, t.ny, 1e-5, 1e-5, "torch ln y");
    down(dx, t.dx, t.nx);
    expect_close_f(dx, tref_ln_dx, t.nx, 1e-4, 1e-5, "torch ln dx");
    down(g, t.sl->grads[0].data, TREF_LN_K);
    expect_close_f(g, tref_ln_dweight, TREF_LN_K, 1e-5, 1e-5, "torch ln dweight");
    down(g, t.sl->grads[1].data, TREF_LN_K);
    expect_close_f(g, tref_ln_dbias, TREF_LN_K, 1e-5, 1e-5, "torch ln dbias");
    free(y); free(dx); free(g);
    lt_close(&t);
}
END_TEST

/* elementwise activations and softmax over one row of inputs */
START_TEST(test_torch_acts)
{
    static const struct { mltk_act act; float alpha; const float *y, *dx; const char *name; }
    cases[] = {
        { MLTK_ACT_GELU, 0, tref_gelu_y, tref_gelu_dx, "gelu" },
        { MLTK_ACT_GELU_TANH, 0, tref_gelu_tanh_y, tref_gelu_tanh_dx, "gelu tanh" },
        { MLTK_ACT_ELU, 1.0f, tref_elu_y, tref_elu_dx, "elu" },
        { MLTK_ACT_ELU, 0.5f, tref_elu05_y, tref_elu05_dx, "elu(0.5)" },
        { MLTK_ACT_LEAKY_RELU, 0.01f, tref_leaky_y, tref_leaky_dx, "leaky_relu" },
        { MLTK_ACT_SIGMOID, 0, tref_sigmoid_y, tref_sigmoid_dx, "sigmoid" },
        { MLTK_ACT_TANH, 0, tref_tanh_y, tref_tanh_dx, "tanh" },
    };
    const int64_t n = TREF_ACT_N;
    float *xd = dev_alloc(n), *yd = dev_alloc(n), *gd = dev_alloc(n), *dd = dev_alloc(n);
    float *y = hmalloc(n), *dx = hmalloc(n);

    up(xd, tref_act_x, n);
    up(gd, tref_act_dy, n);
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        ck_assert_int_eq(op_act_forward(&be, cases[k].act, cases[k].alpha, yd, xd, n),
                         MLTK_OK);
        ck_assert_int_eq(op_act_backward(&be, cases[k].act, cases[k].alpha, dd, gd, xd,
                                         yd, n), MLTK_OK);
        down(y, yd, n);
        down(dx, dd, n);
        /* PyTorch's float gelu computes 0.5 x (1 + erf): for x < 0 the sum
         * cancels and carries |x| 2^-24 of absolute error, which ours (from
         * erfc, see cpu.c) does not */
        expect_close_f(y, cases[k].y, n, 4e-6, cases[k].act == MLTK_ACT_GELU ? 1e-6 : 1e-7,
                       cases[k].name);
        expect_close_f(dx, cases[k].dx, n, 2e-5, 1e-6, cases[k].name);
    }
    ck_assert_int_eq(op_softmax_forward(&be, yd, xd, TREF_SM_ROWS, n / TREF_SM_ROWS),
                     MLTK_OK);
    ck_assert_int_eq(op_softmax_backward(&be, dd, gd, yd, TREF_SM_ROWS,
                                         n / TREF_SM_ROWS), MLTK_OK);
    down(y, yd, n);
    down(dx, dd, n);
    expect_close_f(y, tref_softmax_y, n, 5e-6, 1e-9, "softmax");
    expect_close_f(dx, tref_softmax_dx, n, 2e-5, 1e-7, "softmax dx");
    dev_free_on(&be, xd); dev_free_on(&be, yd); dev_free_on(&be, gd); dev_free_on(&be, dd);
    free(y); free(dx);
}
END_TEST

/* ---- suite ---------------------------------------------------------------- */

static Suite *norm_suite(void)
{
    Suite *s = suite_create("norm");
    TCase *ops = tcase_create("ops");
    TCase *layers = tcase_create("layers");
    TCase *torch = tcase_create("torch");

    tcase_add_checked_fixture(ops, fixture_open, fixture_close);
    tcase_set_timeout(ops, 120);
    tcase_add_test(ops, test_act_new);
    tcase_add_test(ops, test_bias_act_new);
    tcase_add_test(ops, test_bn_train);
    tcase_add_test(ops, test_bn_eval);
    tcase_add_test(ops, test_bn_backward);
    tcase_add_test(ops, test_ln);
    tcase_add_test(ops, test_dropout_op);
    tcase_add_test(ops, test_softmax_op);
    suite_add_tcase(s, ops);

    tcase_add_checked_fixture(layers, fixture_open, fixture_close);
    tcase_set_timeout(layers, 120);
    tcase_add_loop_test(layers, test_layer_acts, 0,
                        (int)(sizeof(act_cases) / sizeof(act_cases[0])));
    tcase_add_test(layers, test_layer_softmax);
    tcase_add_loop_test(layers, test_layer_bn_grad, 0, 6);
    tcase_add_test(layers, test_layer_bn_running);
    tcase_add_test(layers, test_layer_bn_single);
    tcase_add_test(layers, test_layer_bn_errors);
    tcase_add_loop_test(layers, test_layer_ln, 0, 4);
    tcase_add_test(layers, test_layer_dropout);
    tcase_add_test(layers, test_layer_dropout_salt);
    suite_add_tcase(s, layers);

    tcase_add_checked_fixture(torch, fixture_open, fixture_close);
    tcase_set_timeout(torch, 60);
    tcase_add_test(torch, test_torch_bn2d);
    tcase_add_test(torch, test_torch_ln);
    tcase_add_test(torch, test_torch_acts);
    suite_add_tcase(s, torch);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(norm_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
