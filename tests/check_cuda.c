/* check_cuda.c - conformance of the cuda backend against the cpu backend.
 *
 * What this is: both backends are opened through the registry from the
 * build tree; every op of struct mltk_backend_i runs on both with the same
 * inputs at several shapes (odd sizes, sizes that straddle the kernels'
 * block and chunk boundaries, empty ones) and the cuda results are
 * compared with the cpu's.  Then every layer plugin runs forward and
 * backward through the single-layer harness (mltk_single_layer_create) on
 * both, from the same parameters and inputs, and outputs, input
 * gradients, parameter gradients and running statistics are compared.
 * Error paths (bad labels, ids, indices, sizes) must give the same status
 * on both.
 *
 * When the cuda backend is not built, cannot be loaded, or finds no usable
 * GPU, the program prints why and exits 77 (automake's "skipped").
 *
 * Tolerances, stated where used:
 *   exact        copies, gathers, fills, random numbers, dropout masks,
 *                pooling (same arithmetic in the same order),
 *                count_correct, the embedding gradient (same order);
 *   1 ulp        normal random numbers (CUDA's double log/sin/cos against
 *                glibc's: a result may round the other way, rarely);
 *   ~1e-5        elementwise ops, activations, reductions and norms: both
 *                sides round each operation to fp32 but may fuse a
 *                multiply-add differently, use different exp/erf
 *                implementations (a few ulp), and sum in another order
 *                (double accumulators make that negligible);
 *   ~1e-4        gemm and convolution relative to the sum of the products'
 *                magnitudes (fp32, TF32 off: K roundings of 2^-24 each at
 *                most), 5e-3 with TF32 on.
 * Denormal results may be flushed to zero on the cpu (its kernels run with
 * FTZ), so absolute tolerances are at least 2e-38.
 *
 * Check runs without fork here: a CUDA context does not survive fork(),
 * and both backends are opened once for the whole suite.
 *
 * What this is not: a test of the cpu backend (check_backend does that
 * against references computed in double) or a benchmark.
 */
#include "config.h"

#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mltk/rng.h>

#include "session.h"
#include "testutil.h"

/* ---- the two backends ------------------------------------------------------ */

static mltk_registry_t *reg;
static struct mltk_backend cpu, gpu;
static const struct mltk_backend *const BES[2] = { &cpu, &gpu };
static const char *const SIDE[2] = { "cpu", "cuda" };

#define EACH(s) for (int s = 0; s < 2; s++)
#define OP(s, name, ...) (BES[s]->i->name(BES[s]->ctx, __VA_ARGS__))
/* both sides return the same status, and it is `want` */
#define BOTH_RC(want, call_s)                                                  \
    do {                                                                       \
        EACH(s) {                                                              \
            int rc_ = (call_s);                                                \
            ck_assert_msg(rc_ == (want), "%s: %s returned %d (%s), expected %d", \
                          SIDE[s], #call_s, rc_, mltk_status_str(rc_), (int)(want)); \
        }                                                                      \
    } while (0)
#define BOTH_OK(call_s) BOTH_RC(MLTK_OK, call_s)

/* ---- a buffer on both backends ------------------------------------------- */

typedef struct buf {
    void  *p[2];
    size_t bytes;
} buf;

#define F(b, s) ((float *)(b).p[s])
#define I32(b, s) ((int32_t *)(b).p[s])

static buf buf_new(size_t bytes)
{
    buf b = { { NULL, NULL }, bytes };
    EACH(s) ck_assert_int_eq(OP(s, alloc, bytes ? bytes : 4, &b.p[s]), MLTK_OK);
    return b;
}

static void buf_free(buf *b)
{
    EACH(s) {
        OP(s, free, b->p[s]);
        b->p[s] = NULL;
    }
}

static void buf_set(const buf *b, const void *host, size_t bytes)
{
    if (bytes)
        EACH(s) ck_assert_int_eq(OP(s, upload, b->p[s], host, bytes), MLTK_OK);
}

/* side s's contents, malloc()ed */
static void *buf_get(const buf *b, int s, size_t bytes)
{
    void *h = malloc(bytes ? bytes : 4);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(BES[s]->i->sync(BES[s]->ctx), MLTK_OK);
    if (bytes)
        ck_assert_int_eq(OP(s, download, h, b->p[s], bytes), MLTK_OK);
    return h;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [lo, hi) */
static void rand_fill(float *x, int64_t n, float lo, float hi, uint64_t seed)
{
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)((splitmix(&s) >> 40) * (1.0 / 16777216.0));
}

/* n floats, uniform in [lo, hi), the same on both sides */
static buf fbuf_rand(int64_t n, float lo, float hi, uint64_t seed)
{
    buf b = buf_new((size_t)n * sizeof(float));
    float *h = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(h);
    rand_fill(h, n, lo, hi, seed);
    buf_set(&b, h, (size_t)n * sizeof(float));
    free(h);
    return b;
}

static buf fbuf_host(const float *h, int64_t n)
{
    buf b = buf_new((size_t)n * sizeof(float));
    buf_set(&b, h, (size_t)n * sizeof(float));
    return b;
}

static buf ibuf_host(const int32_t *h, int64_t n)
{
    buf b = buf_new((size_t)n * sizeof(int32_t));
    buf_set(&b, h, (size_t)n * sizeof(int32_t));
    return b;
}

/* ---- comparing ----------------------------------------------------------- */

/* cuda against cpu, element by element: |g - c| <= rtol |c| + atol + arel
 * max|c| (NaN matches NaN, an infinity the same infinity); the first
 * mismatch is reported with its index */
static void cmp_f(const char *what, const buf *b, int64_t n, double rtol, double atol,
                  double arel)
{
    float *c = buf_get(b, 0, (size_t)n * sizeof(float));
    float *g = buf_get(b, 1, (size_t)n * sizeof(float));
    double mx = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(c[i]) && fabs(c[i]) > mx)
            mx = fabs(c[i]);
    atol = (atol > 2e-38 ? atol : 2e-38) + arel * mx;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)g[i] - (double)c[i]);
        int ok = d <= rtol * fabs(c[i]) + atol || (isnan(c[i]) && isnan(g[i]))
            || (isinf(c[i]) && g[i] == c[i]);
        EXPECT(ok, "%s[%lld]: cuda %.9g, cpu %.9g (diff %.3g, tol %.3g)", what,
               (long long)i, (double)g[i], (double)c[i], d, rtol * fabs(c[i]) + atol);
    }
    free(c);
    free(g);
}

/* equal values (NaN matches NaN) */
static void cmp_exact(const char *what, const buf *b, int64_t n)
{
    float *c = buf_get(b, 0, (size_t)n * sizeof(float));
    float *g = buf_get(b, 1, (size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        EXPECT(g[i] == c[i] || (isnan(g[i]) && isnan(c[i])),
               "%s[%lld]: cuda %.9g, cpu %.9g (must be equal)", what, (long long)i,
               (double)g[i], (double)c[i]);
    free(c);
    free(g);
}

static void cmp_bytes(const char *what, const buf *b, size_t bytes)
{
    unsigned char *c = buf_get(b, 0, bytes), *g = buf_get(b, 1, bytes);
    for (size_t i = 0; i < bytes; i++)
        EXPECT(c[i] == g[i], "%s: byte %zu: cuda %u, cpu %u", what, i, g[i], c[i]);
    free(c);
    free(g);
}

/* sizes around the kernels' boundaries: warps, blocks (256), reduction
 * ranges (4096 per block), Philox blocks (4) */
static const int64_t SIZES[] = { 1, 3, 7, 33, 257, 1000, 4097, 40001, 262147 };
#define N_SIZES ((int)(sizeof SIZES / sizeof SIZES[0]))

static const mltk_act ACTS[] = { MLTK_ACT_NONE, MLTK_ACT_RELU, MLTK_ACT_LEAKY_RELU,
                                 MLTK_ACT_SIGMOID, MLTK_ACT_TANH, MLTK_ACT_ELU,
                                 MLTK_ACT_GELU_TANH, MLTK_ACT_GELU };
#define N_ACTS ((int)(sizeof ACTS / sizeof ACTS[0]))

/* ---- lifetime and memory -------------------------------------------------- */

START_TEST(test_lifetime)
{
    TU_ASSERT_CONTAINS(gpu.i->device_name(gpu.ctx), "cuda: ");
    ck_assert_ptr_null(gpu.i->get_proc(gpu.ctx, "no_such_op"));
    ck_assert_ptr_nonnull(gpu.i->get_proc(gpu.ctx, "cuda_set_tf32"));
    ck_assert_int_eq(gpu.i->sync(gpu.ctx), MLTK_OK);
    char *why = NULL;
    ck_assert_int_eq(gpu.i->probe(&why), 1);
    ck_assert_ptr_null(why);

    /* a second context on the same device, and a device that is not there */
    mltk_backend_opts o = { .size = sizeof o, .threads = 0, .device = 0, .seed = 1 };
    void *ctx = NULL;
    char *err = NULL;
    ck_assert_int_eq(gpu.i->create(&ctx, &o, &err), MLTK_OK);
    ck_assert_ptr_nonnull(ctx);
    gpu.i->destroy(ctx);
    o.device = 4096;
    ctx = (void *)1;
    ck_assert_int_eq(gpu.i->create(&ctx, &o, &err), MLTK_ERR_INVALID);
    ck_assert_ptr_null(ctx);
    TU_ASSERT_CONTAINS(err, "device 4096");
    free(err);
    gpu.i->destroy(NULL);
}
END_TEST

START_TEST(test_memory)
{
    /* the last two cross the 4 MiB staging buffers */
    static const size_t sizes[] = { 0, 1, 3, 64, 65, 4097, 1 << 20, (9 << 20) + 13 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        void *p = NULL, *q = NULL;
        ck_assert_int_eq(gpu.i->alloc(gpu.ctx, n, &p), MLTK_OK);
        ck_assert_int_eq(gpu.i->alloc(gpu.ctx, n, &q), MLTK_OK);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p & 63, 0);
        unsigned char *host = malloc(n + 1), *back = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            host[i] = (unsigned char)(i * 7 + k);
        ck_assert_int_eq(gpu.i->upload(gpu.ctx, p, host, n), MLTK_OK);
        ck_assert_int_eq(gpu.i->copy(gpu.ctx, q, p, n), MLTK_OK);
        memset(back, 0xee, n + 1);
        ck_assert_int_eq(gpu.i->download(gpu.ctx, back, q, n), MLTK_OK);
        ck_assert_int_eq(memcmp(host, back, n), 0);
        ck_assert_int_eq(back[n], 0xee);
        /* overlapping copy: memmove semantics */
        if (n >= 64) {
            size_t shift = n / 3, len = n - shift;
            ck_assert_int_eq(gpu.i->copy(gpu.ctx, (char *)q + shift, q, len), MLTK_OK);
            memmove(host + shift, host, len);
            ck_assert_int_eq(gpu.i->download(gpu.ctx, back, q, n), MLTK_OK);
            ck_assert_int_eq(memcmp(host, back, n), 0);
        }
        free(host);
        free(back);
        gpu.i->free(gpu.ctx, p);
        gpu.i->free(gpu.ctx, q);
        /* the caching allocator hands the same class back */
        void *r = NULL;
        ck_assert_int_eq(gpu.i->alloc(gpu.ctx, n, &r), MLTK_OK);
        ck_assert_msg(r == p || r == q, "a freed block of %zu bytes was not reused", n);
        gpu.i->free(gpu.ctx, r);
    }
    gpu.i->free(gpu.ctx, NULL);
    void *p = (void *)1;
    ck_assert_int_eq(gpu.i->alloc(gpu.ctx, SIZE_MAX, &p), MLTK_ERR_NOMEM);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(gpu.i->alloc(gpu.ctx, (size_t)1 << 62, &p), MLTK_ERR_NOMEM);
    ck_assert_int_eq(gpu.i->copy(gpu.ctx, NULL, NULL, 0), MLTK_OK);
    ck_assert_int_eq(gpu.i->copy(gpu.ctx, NULL, &p, 4), MLTK_ERR_INVALID);
    ck_assert_int_eq(gpu.i->upload(gpu.ctx, NULL, &p, 4), MLTK_ERR_INVALID);
    ck_assert_int_eq(gpu.i->download(gpu.ctx, &p, NULL, 4), MLTK_ERR_INVALID);
    /* the context still works after the failures */
    buf b = fbuf_rand(100, -1, 1, 5);
    cmp_exact("after failed allocations", &b, 100);
    buf_free(&b);
}
END_TEST

/* ---- elementwise --------------------------------------------------------- */

START_TEST(test_fill_axpby_mul)
{
    for (int k = 0; k < N_SIZES; k++) {
        int64_t n = SIZES[k];
        buf x = fbuf_rand(n, -2, 2, 1 + k), y = fbuf_rand(n, -2, 2, 100 + k);
        buf z = buf_new((size_t)n * sizeof(float));
        BOTH_OK(OP(s, fill, F(z, s), 2.5f, n));
        cmp_exact("fill", &z, n);
        /* y = a x + b y: at most one rounding apart per term (FMA or not) */
        BOTH_OK(OP(s, axpby, F(y, s), 0.75f, F(x, s), -1.25f, n));
        cmp_f("axpby", &y, n, 1e-6, 1e-6, 0);
        /* b == 0 does not read y: NaN in y stays out */
        BOTH_OK(OP(s, fill, F(y, s), NAN, n));
        BOTH_OK(OP(s, axpby, F(y, s), -3.0f, F(x, s), 0.0f, n));
        cmp_exact("axpby b=0", &y, n);
        BOTH_OK(OP(s, axpby, F(x, s), 0.5f, F(x, s), 0.25f, n));
        cmp_f("axpby in place", &x, n, 1e-6, 1e-7, 0);
        /* one rounded product: exact */
        BOTH_OK(OP(s, mul, F(z, s), F(x, s), F(y, s), n));
        cmp_exact("mul", &z, n);
        BOTH_OK(OP(s, mul, F(z, s), F(z, s), F(z, s), n));
        cmp_exact("mul in place", &z, n);
        buf_free(&x);
        buf_free(&y);
        buf_free(&z);
    }
    float v[4];
    BOTH_RC(MLTK_ERR_INVALID, OP(s, fill, v, 1, -1));
    BOTH_RC(MLTK_ERR_INVALID, OP(s, fill, NULL, 1, 4));
    BOTH_RC(MLTK_OK, OP(s, fill, NULL, 1, 0));
    BOTH_RC(MLTK_ERR_INVALID, OP(s, mul, v, v, NULL, 4));
}
END_TEST

START_TEST(test_act)
{
    static const float special[] = { 0.0f, -0.0f, 1e-7f, -1e-7f, 1e-3f, -2e-4f, 0.34f,
                                     -0.35f, 5.0f, -9.0f, 20.0f, -20.0f, 44.0f, -44.0f,
                                     87.0f, -87.0f, 88.5f, -88.5f, 100.0f, -100.0f,
                                     1e30f, -1e30f };
    const int ns = (int)(sizeof special / sizeof special[0]);
    for (int k = 0; k < N_SIZES; k++) {
        int64_t n = SIZES[k] + ns;
        float *h = malloc((size_t)n * sizeof(float));
        rand_fill(h, n, -6, 6, 11 + k);
        memcpy(h, special, sizeof special);
        buf x = fbuf_host(h, n), dy = fbuf_rand(n, -1, 1, 12 + k);
        buf y = buf_new((size_t)n * 4), dx = buf_new((size_t)n * 4);
        for (int a = 0; a < N_ACTS; a++) {
            mltk_act act = ACTS[a];
            float alpha = act == MLTK_ACT_LEAKY_RELU ? 0.1f : act == MLTK_ACT_ELU ? 1.3f : 0.0f;
            char what[64];
            snprintf(what, sizeof what, "act_forward(%d)", (int)act);
            BOTH_OK(OP(s, act_forward, act, alpha, F(y, s), F(x, s), n));
            /* exp, tanh, erf: a few ulp each side */
            cmp_f(what, &y, n, 1e-5, 1e-30, 0);
            /* from y, sigmoid and tanh need 1 - y, which cancels near 1:
             * a few ulp of 1 times |dy| <= 1, absolute */
            snprintf(what, sizeof what, "act_backward(%d, x, y)", (int)act);
            BOTH_OK(OP(s, act_backward, act, alpha, F(dx, s), F(dy, s), F(x, s), F(y, s), n));
            cmp_f(what, &dx, n, 2e-5, 5e-7, 0);
            snprintf(what, sizeof what, "act_backward(%d, y)", (int)act);
            if (act != MLTK_ACT_GELU && act != MLTK_ACT_GELU_TANH) {
                BOTH_OK(OP(s, act_backward, act, alpha, F(dx, s), F(dy, s), NULL, F(y, s), n));
                cmp_f(what, &dx, n, 2e-5, 5e-7, 0);
            }
            snprintf(what, sizeof what, "act_backward(%d, x)", (int)act);
            BOTH_OK(OP(s, act_backward, act, alpha, F(dx, s), F(dy, s), F(x, s), NULL, n));
            cmp_f(what, &dx, n, 2e-5, 5e-7, 0);
            /* in place: dx == dy */
            BOTH_OK(OP(s, copy, F(dx, s), F(dy, s), (size_t)n * 4));
            BOTH_OK(OP(s, act_backward, act, alpha, F(dx, s), F(dx, s), F(x, s), F(y, s), n));
            cmp_f("act_backward in place", &dx, n, 2e-5, 5e-7, 0);
        }
        /* forward in place */
        BOTH_OK(OP(s, act_forward, MLTK_ACT_TANH, 0.0f, F(x, s), F(x, s), n));
        cmp_f("tanh in place", &x, n, 1e-5, 1e-30, 0);
        free(h);
        buf_free(&x);
        buf_free(&dy);
        buf_free(&y);
        buf_free(&dx);
    }
    /* NaN propagates through relu */
    float nan_h = NAN;
    buf nb = fbuf_host(&nan_h, 1);
    BOTH_OK(OP(s, act_forward, MLTK_ACT_RELU, 0.0f, F(nb, s), F(nb, s), 1));
    cmp_exact("relu(NaN)", &nb, 1);
    BOTH_RC(MLTK_ERR_INVALID, OP(s, act_forward, (mltk_act)42, 0, F(nb, s), F(nb, s), 1));
    BOTH_RC(MLTK_ERR_INVALID, OP(s, act_backward, MLTK_ACT_RELU, 0, F(nb, s), F(nb, s), NULL,
                                 NULL, 1));
    buf_free(&nb);
}
END_TEST

/* gelu and its tanh form at +-1e30 and +-inf on the cuda side alone: the
 * exact limits x (x -> +inf) and 0 (x -> -inf), derivatives 1 and 0, and
 * no NaN from e^(-x^2/2) or x^3 overflowing */
START_TEST(test_act_limits)
{
    static const float xs[] = { 1e30f, -1e30f, 3e19f, -3e19f, 1e14f, -1e14f, INFINITY,
                                -INFINITY };
    const int n = (int)(sizeof xs / sizeof xs[0]);
    static const mltk_act acts[] = { MLTK_ACT_GELU, MLTK_ACT_GELU_TANH };
    buf x = fbuf_host(xs, n), y = buf_new((size_t)n * 4), dx = buf_new((size_t)n * 4);
    float ones[sizeof xs / sizeof xs[0]];
    for (int i = 0; i < n; i++)
        ones[i] = 1.0f;
    buf dy = fbuf_host(ones, n);
    for (int a = 0; a < 2; a++) {
        mltk_act act = acts[a];
        ck_assert_int_eq(OP(1, act_forward, act, 0.0f, F(y, 1), F(x, 1), n), MLTK_OK);
        ck_assert_int_eq(OP(1, act_backward, act, 0.0f, F(dx, 1), F(dy, 1), F(x, 1), NULL, n),
                         MLTK_OK);
        float *hy = buf_get(&y, 1, (size_t)n * 4), *hd = buf_get(&dx, 1, (size_t)n * 4);
        for (int i = 0; i < n; i++) {
            /* gelu(-inf) = -inf * 0 is NaN on both sides: not a limit checked */
            if (xs[i] > 0.0f)
                EXPECT(hy[i] == xs[i], "act %d: f(%g) = %.9g, want x", (int)act,
                       (double)xs[i], (double)hy[i]);
            else if (isfinite(xs[i]))
                EXPECT(hy[i] == 0.0f, "act %d: f(%g) = %.9g, want 0", (int)act,
                       (double)xs[i], (double)hy[i]);
            float want = xs[i] > 0.0f ? 1.0f : 0.0f;
            EXPECT(hd[i] == want, "act %d: f'(%g) = %.9g, want %g", (int)act, (double)xs[i],
                   (double)hd[i], (double)want);
        }
        free(hy);
        free(hd);
    }
    buf_free(&x);
    buf_free(&y);
    buf_free(&dx);
    buf_free(&dy);
}
END_TEST

/* ---- gemm ----------------------------------------------------------------- */

/* the sums of |alpha a b| + |beta c| of each C element, in double */
static double *gemm_mag(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t lda, const float *B, int64_t ldb,
                        float beta, const float *C, int64_t ldc)
{
    double *m = malloc((size_t)(M * N) * sizeof(double));
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0.0;
            for (int64_t k = 0; k < K; k++) {
                float a = ta ? A[k * lda + i] : A[i * lda + k];
                float b = tb ? B[j * ldb + k] : B[k * ldb + j];
                s += fabs((double)a * b);
            }
            m[i * N + j] = fabs((double)alpha) * s + (beta != 0.0f ? fabs((double)beta * C[i * ldc + j]) : 0.0);
        }
    return m;
}

static void gemm_case(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, float beta,
                      double rtol)
{
    int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
    int64_t na = (ta ? K : M) * lda, nb = (tb ? N : K) * ldb, nc = M * ldc;
    float *A = malloc((size_t)(na + 1) * 4), *B = malloc((size_t)(nb + 1) * 4);
    float *C = malloc((size_t)(nc + 1) * 4);
    rand_fill(A, na, -1, 1, (uint64_t)(M * 7 + N * 3 + K));
    rand_fill(B, nb, -1, 1, (uint64_t)(M + N * 11 + K * 5));
    rand_fill(C, nc, -1, 1, (uint64_t)(M * 13 + N + K * 17));
    if (beta == 0.0f)
        for (int64_t i = 0; i < nc; i++)
            C[i] = NAN;  /* not read */
    buf a = fbuf_host(A, na), b = fbuf_host(B, nb), c = fbuf_host(C, nc);
    BOTH_OK(OP(s, gemm, ta, tb, M, N, K, alpha, F(a, s), lda, F(b, s), ldb, beta, F(c, s), ldc));
    double *mag = gemm_mag(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    float *rc = buf_get(&c, 0, (size_t)nc * 4), *rg = buf_get(&c, 1, (size_t)nc * 4);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double cv = rc[i * ldc + j], gv = rg[i * ldc + j];
            EXPECT(fabs(gv - cv) <= rtol * mag[i * N + j] + 1e-30,
                   "gemm ta=%d tb=%d M=%lld N=%lld K=%lld: C[%lld,%lld] cuda %.9g, cpu %.9g "
                   "(tol %.3g)", ta, tb, (long long)M, (long long)N, (long long)K,
                   (long long)i, (long long)j, gv, cv, rtol * mag[i * N + j]);
        }
    /* the padding between rows is not written */
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = N; j < ldc; j++)
            EXPECT(memcmp(&rg[i * ldc + j], &C[i * ldc + j], 4) == 0,
                   "gemm wrote C[%lld,%lld] beyond N", (long long)i, (long long)j);
    free(rc);
    free(rg);
    free(mag);
    free(A);
    free(B);
    free(C);
    buf_free(&a);
    buf_free(&b);
    buf_free(&c);
}

START_TEST(test_gemm)
{
    static const int64_t dims[] = { 1, 7, 33, 130 };
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                for (int k = 0; k < 4; k++)
                    gemm_case(t & 1, t >> 1, dims[i], dims[j], dims[k] + (i == 3 ? 171 : 0),
                              1.5f, (i + j + k) % 2 ? 0.5f : 0.0f, 1e-4);
    /* K == 0 and alpha == 0: C = beta C, not read when beta == 0 */
    gemm_case(0, 0, 5, 6, 0, 1.0f, 0.5f, 1e-6);
    gemm_case(0, 0, 5, 6, 0, 1.0f, 0.0f, 1e-6);
    gemm_case(1, 0, 9, 4, 3, 0.0f, 2.0f, 1e-6);
    /* TF32 on: 10 mantissa bits in the products */
    int (*tf32)(void *, int) = NULL;
    void *p = gpu.i->get_proc(gpu.ctx, "cuda_set_tf32");
    memcpy(&tf32, &p, sizeof tf32);
    ck_assert_int_eq(tf32(gpu.ctx, 1), MLTK_OK);
    gemm_case(0, 1, 130, 257, 300, 1.0f, 0.0f, 5e-3);
    ck_assert_int_eq(tf32(gpu.ctx, 0), MLTK_OK);
    gemm_case(0, 1, 130, 257, 300, 1.0f, 0.0f, 1e-4);
    /* invalid shapes */
    float v[4];
    BOTH_RC(MLTK_ERR_INVALID, OP(s, gemm, 0, 0, 2, 2, 2, 1.0f, v, 1, v, 2, 0.0f, v, 2));
    BOTH_RC(MLTK_ERR_INVALID, OP(s, gemm, 0, 0, -1, 2, 2, 1.0f, v, 2, v, 2, 0.0f, v, 2));
    BOTH_RC(MLTK_OK, OP(s, gemm, 0, 0, 0, 2, 2, 1.0f, NULL, 2, NULL, 2, 0.0f, NULL, 2));
}
END_TEST

START_TEST(test_bias_act)
{
    static const int64_t rows[] = { 1, 3, 130 }, cols[] = { 1, 7, 300 };
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            for (int a = 0; a < N_ACTS; a++) {
                int64_t n = rows[r] * cols[c];
                buf b = fbuf_rand(cols[c], -1, 1, 3 + (uint64_t)c);
                for (int with_b = 0; with_b < 2; with_b++) {
                    buf y = fbuf_rand(n, -4, 4, 40 + (uint64_t)(r * 3 + c));
                    BOTH_OK(OP(s, bias_act, F(y, s), with_b ? F(b, s) : NULL, rows[r],
                               cols[c], ACTS[a], 0.2f));
                    cmp_f("bias_act", &y, n, 1e-5, 1e-30, 0);
                    buf_free(&y);
                }
                buf_free(&b);
            }
}
END_TEST

/* ---- reductions ----------------------------------------------------------- */

START_TEST(test_sum_rows)
{
    static const int64_t rows[] = { 0, 1, 7, 129, 300, 1000 }, cols[] = { 1, 7, 33, 300 };
    for (int r = 0; r < 6; r++)
        for (int c = 0; c < 4; c++)
            for (int beta = 0; beta < 2; beta++) {
                int64_t n = rows[r] * cols[c];
                buf x = fbuf_rand(n, -1, 1, (uint64_t)(r * 10 + c));
                buf out = fbuf_rand(cols[c], -1, 1, 77);
                BOTH_OK(OP(s, sum_rows, F(out, s), F(x, s), rows[r], cols[c],
                           beta ? 0.5f : 0.0f));
                /* double sums on both sides: the float results agree to an
                 * ulp or two, cancellation included (1e-6 of the row count) */
                cmp_f("sum_rows", &out, cols[c], 3e-7, 1e-9 * (double)(rows[r] + 1), 0);
                buf_free(&x);
                buf_free(&out);
            }
}
END_TEST

START_TEST(test_sum_sumsq)
{
    buf out = buf_new(4);
    for (int k = -1; k < N_SIZES; k++) {
        int64_t n = k < 0 ? 0 : SIZES[k];
        buf x = fbuf_rand(n, -1, 1.1f, 9 + (uint64_t)k);
        BOTH_OK(OP(s, sum, F(out, s), F(x, s), n));
        cmp_f("sum", &out, 1, 3e-7, 1e-12 * (double)n, 0);
        BOTH_OK(OP(s, sumsq, F(out, s), F(x, s), n));
        cmp_f("sumsq", &out, 1, 3e-7, 0, 0);
        buf_free(&x);
    }
    buf_free(&out);
}
END_TEST

/* ---- losses and metrics ----------------------------------------------------- */

static buf labels_rand(int64_t N, int64_t C, uint64_t seed)
{
    int32_t *h = malloc((size_t)(N > 0 ? N : 1) * 4);
    uint64_t st = seed;
    for (int64_t i = 0; i < N; i++)
        h[i] = (int32_t)(splitmix(&st) % (uint64_t)C);
    buf b = ibuf_host(h, N);
    free(h);
    return b;
}

START_TEST(test_softmax_xent)
{
    static const int64_t Ns[] = { 1, 7, 130, 1000 }, Cs[] = { 1, 2, 10, 33, 1000 };
    buf loss = buf_new(4);
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 5; b++) {
            int64_t N = Ns[a], C = Cs[b];
            buf x = fbuf_rand(N * C, -8, 8, (uint64_t)(a * 5 + b));
            buf l = labels_rand(N, C, (uint64_t)(a + b));
            buf d = buf_new((size_t)(N * C) * 4);
            BOTH_OK(OP(s, softmax_xent, F(loss, s), F(d, s), F(x, s), I32(l, s), N, C, 0.5f));
            cmp_f("softmax_xent loss", &loss, 1, 1e-5, 0, 0);
            /* p - 1 for the label cancels when p is near 1: a few ulp of 1
             * times the scale 0.5 / N, absolute */
            cmp_f("softmax_xent dlogits", &d, N * C, 1e-5, 1e-6 * 0.5 / (double)N, 0);
            BOTH_OK(OP(s, softmax_xent, F(loss, s), NULL, F(x, s), I32(l, s), N, C, 1.0f));
            cmp_f("softmax_xent loss only", &loss, 1, 1e-5, 0, 0);
            buf_free(&x);
            buf_free(&l);
            buf_free(&d);
        }
    /* a label out of range is a data error on both; N == 0 is a zero loss */
    int32_t bad[3] = { 0, 5, 1 };
    buf l = ibuf_host(bad, 3), x = fbuf_rand(15, -1, 1, 3);
    BOTH_RC(MLTK_ERR_DATA, OP(s, softmax_xent, F(loss, s), NULL, F(x, s), I32(l, s), 3, 5, 1.0f));
    bad[1] = -1;
    buf_set(&l, bad, sizeof bad);
    BOTH_RC(MLTK_ERR_DATA, OP(s, softmax_xent, F(loss, s), NULL, F(x, s), I32(l, s), 3, 5, 1.0f));
    BOTH_OK(OP(s, softmax_xent, F(loss, s), NULL, F(x, s), I32(l, s), 0, 5, 1.0f));
    cmp_exact("softmax_xent N=0", &loss, 1);
    buf_free(&l);
    buf_free(&x);
    buf_free(&loss);
}
END_TEST

START_TEST(test_count_correct)
{
    static const int64_t Ns[] = { 1, 9, 130, 3001 }, Cs[] = { 1, 3, 10, 77 };
    buf out = buf_new(4);
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            int64_t N = Ns[a], C = Cs[b];
            float *h = malloc((size_t)(N * C) * 4);
            uint64_t st = (uint64_t)(a * 4 + b);
            /* few distinct values: many ties; some NaNs, in column 0 too */
            for (int64_t i = 0; i < N * C; i++) {
                uint64_t r = splitmix(&st);
                h[i] = (float)(r % 4) - 1.5f;
                if (r % 97 == 0)
                    h[i] = NAN;
                if (r % 89 == 0)
                    h[i] = -INFINITY;
            }
            buf x = fbuf_host(h, N * C), l = labels_rand(N, C, 5 + (uint64_t)a);
            BOTH_OK(OP(s, count_correct, F(out, s), F(x, s), I32(l, s), N, C));
            cmp_exact("count_correct", &out, 1);
            free(h);
            buf_free(&x);
            buf_free(&l);
        }
    buf_free(&out);
}
END_TEST

/* ---- data movement and random numbers ---------------------------------------- */

START_TEST(test_gather_rows)
{
    static const size_t row_bytes[] = { 1, 3, 4, 12, 16, 48, 4000 };
    static const int64_t ns[] = { 1, 7, 300 };
    for (int r = 0; r < 7; r++)
        for (int k = 0; k < 3; k++) {
            int64_t rows = 50, n = ns[k];
            size_t rb = row_bytes[r];
            unsigned char *h = malloc(rows * rb);
            for (size_t i = 0; i < rows * rb; i++)
                h[i] = (unsigned char)(i * 31 + 7);
            buf src = buf_new(rows * rb), dst = buf_new((size_t)n * rb);
            buf_set(&src, h, rows * rb);
            int32_t *idx = malloc((size_t)n * 4);
            uint64_t st = (uint64_t)(r * 3 + k);
            for (int64_t i = 0; i < n; i++)
                idx[i] = (int32_t)(splitmix(&st) % (uint64_t)rows);
            buf ib = ibuf_host(idx, n);
            BOTH_OK(OP(s, gather_rows, dst.p[s], src.p[s], I32(ib, s), n, rb));
            cmp_bytes("gather_rows", &dst, (size_t)n * rb);
            /* a negative index is refused */
            idx[n / 2] = -3;
            buf_set(&ib, idx, (size_t)n * 4);
            BOTH_RC(MLTK_ERR_INVALID, OP(s, gather_rows, dst.p[s], src.p[s], I32(ib, s), n, rb));
            free(h);
            free(idx);
            buf_free(&src);
            buf_free(&dst);
            buf_free(&ib);
        }
}
END_TEST

START_TEST(test_rng)
{
    static const uint64_t offsets[] = { 0, 1, 2, 3, 5, 1000003, (uint64_t)1 << 40 };
    for (int k = 0; k < N_SIZES; k++)
        for (int o = 0; o < 7; o++) {
            int64_t n = SIZES[k];
            uint64_t seed = 0x1234567890abcdefull + (uint64_t)k;
            buf x = buf_new((size_t)n * 4);
            BOTH_OK(OP(s, rng_uniform, F(x, s), n, -0.25f, 1.75f, seed, offsets[o]));
            cmp_exact("rng_uniform", &x, n);
            BOTH_OK(OP(s, rng_normal, F(x, s), n, 0.5f, 2.0f, seed, offsets[o]));
            /* CUDA's double log/sin/cos are within 1-2 ulp of glibc's:
             * after rounding to float, a value may rarely land one float
             * ulp away; never more */
            float *c = buf_get(&x, 0, (size_t)n * 4), *g = buf_get(&x, 1, (size_t)n * 4);
            int64_t off = 0;
            for (int64_t i = 0; i < n; i++) {
                if (c[i] == g[i])
                    continue;
                off++;
                EXPECT(fabsf(g[i] - c[i]) <= 2.0f * fabsf(nextafterf(c[i], INFINITY) - c[i]),
                       "rng_normal[%lld]: cuda %.9g, cpu %.9g", (long long)i, (double)g[i],
                       (double)c[i]);
            }
            EXPECT(off <= n / 10000 + 2, "rng_normal: %lld of %lld values differ",
                   (long long)off, (long long)n);
            free(c);
            free(g);
            buf_free(&x);
        }
}
END_TEST

START_TEST(test_dropout)
{
    static const float ps[] = { 0.0f, 0.3f, 0.9f };
    for (int k = 0; k < N_SIZES; k++)
        for (int q = 0; q < 3; q++) {
            int64_t n = SIZES[k];
            buf x = fbuf_rand(n, -1, 1, 4), y = buf_new((size_t)n * 4);
            buf m = buf_new((size_t)n * 4);
            BOTH_OK(OP(s, dropout_forward, F(y, s), F(m, s), F(x, s), n, ps[q], 77, 3 + (uint64_t)k));
            cmp_exact("dropout mask", &m, n);
            cmp_exact("dropout y", &y, n);
            /* in place */
            BOTH_OK(OP(s, dropout_forward, F(x, s), F(m, s), F(x, s), n, ps[q], 78, 0));
            cmp_exact("dropout in place", &x, n);
            buf_free(&x);
            buf_free(&y);
            buf_free(&m);
        }
    float v[2];
    BOTH_RC(MLTK_ERR_INVALID, OP(s, dropout_forward, v, v, v, 2, 1.0f, 1, 0));
}
END_TEST

/* ---- optimizers ------------------------------------------------------------ */

/* lr_scale with zeros (frozen), halves and ones */
static buf scale_buf(int64_t n)
{
    float *h = malloc((size_t)(n > 0 ? n : 1) * 4);
    for (int64_t i = 0; i < n; i++)
        h[i] = i % 3 == 0 ? 0.0f : i % 3 == 1 ? 0.5f : 1.0f;
    buf b = fbuf_host(h, n);
    free(h);
    return b;
}

/* elements with lr_scale 0 are bit-identical to `orig` on both sides */
static void check_frozen(const char *what, const buf *p, const float *orig, int64_t n)
{
    EACH(s) {
        float *h = buf_get(p, s, (size_t)n * 4);
        for (int64_t i = 0; i < n; i += 3)
            EXPECT(memcmp(&h[i], &orig[i], 4) == 0, "%s on %s: frozen p[%lld] moved",
                   what, SIDE[s], (long long)i);
        free(h);
    }
}

START_TEST(test_sgd_adam)
{
    static const int64_t sizes[] = { 1, 7, 4097, 40001 };
    for (int k = 0; k < 4; k++)
        for (int variant = 0; variant < 8; variant++) {
            int64_t n = sizes[k];
            int scaled = variant & 1, nesterov = (variant >> 1) & 1, decay = variant >> 2;
            float *p0 = malloc((size_t)n * 4);
            rand_fill(p0, n, -1, 1, 5 + (uint64_t)variant);
            buf p = fbuf_host(p0, n), q = fbuf_host(p0, n), sc = scale_buf(n);
            buf mom = buf_new((size_t)n * 4), m = buf_new((size_t)n * 4);
            buf v = buf_new((size_t)n * 4);
            BOTH_OK(OP(s, fill, F(m, s), 0.0f, n));
            BOTH_OK(OP(s, fill, F(v, s), 0.0f, n));
            for (int64_t t = 1; t <= 3; t++) {
                buf g = fbuf_rand(n, -1, 1, 100 * (uint64_t)t + (uint64_t)k);
                BOTH_OK(OP(s, sgd_step, F(p, s), F(g, s), F(mom, s), n, 0.05f,
                           nesterov ? 0.9f : 0.8f, nesterov ? 0.0f : 0.1f,
                           decay ? 0.01f : 0.0f, nesterov, t, scaled ? F(sc, s) : NULL));
                BOTH_OK(OP(s, adam_step, F(q, s), F(g, s), F(m, s), F(v, s), n, 0.01f, 0.9f,
                           0.999f, 1e-8f, decay ? 0.1f : 0.0f, nesterov, t,
                           scaled ? F(sc, s) : NULL));
                buf_free(&g);
            }
            cmp_f("sgd p", &p, n, 1e-5, 1e-6, 0);
            cmp_f("sgd momentum", &mom, n, 1e-5, 1e-6, 0);
            cmp_f("adam p", &q, n, 1e-5, 1e-6, 0);
            cmp_f("adam m", &m, n, 1e-5, 1e-7, 0);
            cmp_f("adam v", &v, n, 1e-5, 1e-9, 0);
            if (scaled) {
                check_frozen("sgd", &p, p0, n);
                check_frozen("adam", &q, p0, n);
            }
            free(p0);
            buf_free(&p);
            buf_free(&q);
            buf_free(&sc);
            buf_free(&mom);
            buf_free(&m);
            buf_free(&v);
        }
    float w[2] = { 0 };
    BOTH_RC(MLTK_ERR_INVALID, OP(s, sgd_step, w, w, w, 2, 0.1f, 0.9f, 0, 0, 0, 0, NULL));
    BOTH_RC(MLTK_ERR_INVALID, OP(s, adam_step, w, w, w, w, 2, 0.1f, 1.0f, 0.9f, 1e-8f, 0, 0, 1,
                                 NULL));
}
END_TEST

START_TEST(test_rmsprop_lamb)
{
    static const int64_t sizes[] = { 1, 7, 4097, 40001 };
    for (int k = 0; k < 4; k++)
        for (int variant = 0; variant < 8; variant++) {
            int64_t n = sizes[k];
            int scaled = variant & 1, momentum = (variant >> 1) & 1, centered = variant >> 2;
            float *p0 = malloc((size_t)n * 4);
            rand_fill(p0, n, -1, 1, 50 + (uint64_t)variant);
            buf p = fbuf_host(p0, n), q = fbuf_host(p0, n), sc = scale_buf(n);
            buf sq = buf_new((size_t)n * 4), mom = buf_new((size_t)n * 4);
            buf ga = buf_new((size_t)n * 4), m = buf_new((size_t)n * 4);
            buf v = buf_new((size_t)n * 4), norms;
            BOTH_OK(OP(s, fill, F(sq, s), 0.0f, n));
            BOTH_OK(OP(s, fill, F(mom, s), 0.0f, n));
            BOTH_OK(OP(s, fill, F(ga, s), 0.0f, n));
            BOTH_OK(OP(s, fill, F(m, s), 0.0f, n));
            BOTH_OK(OP(s, fill, F(v, s), 0.0f, n));
            /* segments: uneven, with empty ones, one longer than a piece */
            int64_t seg[8] = { 0, 0, n / 5, n / 5, n / 2, n / 2 + 1 < n ? n / 2 + 1 : n, n, 0 };
            int n_seg = 6;
            norms = buf_new(2 * (size_t)n_seg * 4);
            for (int64_t t = 1; t <= 3; t++) {
                buf g = fbuf_rand(n, -1, 1, 300 * (uint64_t)t + (uint64_t)k);
                BOTH_OK(OP(s, rmsprop_step, F(p, s), F(g, s), F(sq, s), F(mom, s), F(ga, s), n,
                           0.01f, 0.99f, 1e-8f, variant & 4 ? 0.01f : 0.0f,
                           momentum ? 0.9f : 0.0f, centered, scaled ? F(sc, s) : NULL));
                BOTH_OK(OP(s, lamb_step, F(q, s), F(g, s), F(m, s), F(v, s), n, 0.01f, 0.9f,
                           0.999f, 1e-6f, momentum ? 0.01f : 0.0f, t, seg, n_seg, F(norms, s),
                           scaled ? F(sc, s) : NULL));
                buf_free(&g);
            }
            cmp_f("rmsprop p", &p, n, 1e-5, 1e-6, 0);
            cmp_f("rmsprop sq", &sq, n, 1e-5, 1e-9, 0);
            if (momentum)
                cmp_f("rmsprop momentum", &mom, n, 1e-5, 1e-5, 0);
            if (centered)
                cmp_f("rmsprop grad average", &ga, n, 1e-5, 1e-7, 0);
            cmp_f("lamb p", &q, n, 1e-5, 1e-6, 0);
            cmp_f("lamb norms", &norms, 2 * n_seg, 1e-5, 0, 0);
            if (scaled) {
                check_frozen("rmsprop", &p, p0, n);
                check_frozen("lamb", &q, p0, n);
            }
            free(p0);
            buf_free(&p);
            buf_free(&q);
            buf_free(&sc);
            buf_free(&sq);
            buf_free(&mom);
            buf_free(&ga);
            buf_free(&m);
            buf_free(&v);
            buf_free(&norms);
        }
}
END_TEST

START_TEST(test_clip)
{
    buf ss = buf_new(4);
    for (int k = 0; k < N_SIZES; k++) {
        int64_t n = SIZES[k];
        buf x = fbuf_rand(n, -2, 2, 8 + (uint64_t)k);
        BOTH_OK(OP(s, sumsq, F(ss, s), F(x, s), n));
        /* a norm below the maximum leaves x alone; above, scales it */
        BOTH_OK(OP(s, scale_to_norm, F(x, s), n, F(ss, s), 1e9f));
        cmp_exact("scale_to_norm (no clip)", &x, n);
        BOTH_OK(OP(s, scale_to_norm, F(x, s), n, F(ss, s), 0.5f));
        cmp_f("scale_to_norm", &x, n, 1e-6, 1e-30, 0);
        BOTH_OK(OP(s, clamp, F(x, s), n, -0.01f, 0.02f));
        cmp_f("clamp", &x, n, 1e-6, 1e-30, 0);
        buf_free(&x);
    }
    buf_free(&ss);
    float v[2];
    BOTH_RC(MLTK_ERR_INVALID, OP(s, clamp, v, 2, 1.0f, 0.0f));
}
END_TEST

/* ---- convolution and pooling ------------------------------------------------- */

typedef struct conv_shape {
    int64_t N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw, g;
} conv_shape;

static mltk_conv2d_desc conv_desc(const conv_shape *c, int64_t N)
{
    mltk_conv2d_desc d = { .N = N, .C = c->C, .H = c->H, .W = c->W, .K = c->K, .R = c->R,
                           .S = c->S, .stride_h = c->sh, .stride_w = c->sw, .pad_h = c->ph,
                           .pad_w = c->pw, .dil_h = c->dh, .dil_w = c->dw, .groups = c->g };
    d.P = (c->H + 2 * c->ph - c->dh * (c->R - 1) - 1) / c->sh + 1;
    d.Q = (c->W + 2 * c->pw - c->dw * (c->S - 1) - 1) / c->sw + 1;
    return d;
}

START_TEST(test_conv)
{
    static const conv_shape shapes[] = {
        { 3, 1, 28, 28, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1 },     /* first layer */
        { 4, 4, 9, 11, 6, 3, 5, 2, 1, 1, 2, 1, 1, 1 },      /* odd, strided */
        { 2, 6, 7, 7, 6, 3, 3, 1, 1, 2, 2, 2, 2, 3 },       /* groups, dilation */
        { 3, 8, 5, 5, 16, 1, 1, 1, 1, 0, 0, 1, 1, 1 },      /* 1x1 */
        { 2, 4, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1, 1, 4 },       /* depthwise */
        { 5, 3, 13, 13, 5, 5, 5, 3, 3, 0, 0, 1, 1, 1 },     /* 5x5 stride 3 */
        { 64, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1 },  /* a CNN's middle */
    };
    static const mltk_act acts[] = { MLTK_ACT_NONE, MLTK_ACT_RELU, MLTK_ACT_LEAKY_RELU,
                                     MLTK_ACT_SIGMOID, MLTK_ACT_TANH };
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const conv_shape *cs = &shapes[k];
        /* the workspace is sized for the full batch, the ops also run on
         * a smaller one (a layer's last batch) */
        mltk_conv2d_desc dmax = conv_desc(cs, cs->N);
        size_t wsb[2];
        EACH(s) wsb[s] = BES[s]->i->conv2d_workspace(BES[s]->ctx, &dmax);
        buf ws = buf_new(wsb[0] > wsb[1] ? wsb[0] : wsb[1]);
        for (int64_t N = cs->N; N >= cs->N - 1 && N >= 1; N--) {
            mltk_conv2d_desc d = conv_desc(cs, N);
            int64_t nx = N * d.C * d.H * d.W, ny = N * d.K * d.P * d.Q;
            int64_t nw = d.K * (d.C / d.groups) * d.R * d.S;
            buf x = fbuf_rand(nx, -1, 1, 10 + k), w = fbuf_rand(nw, -0.5f, 0.5f, 20 + k);
            buf b = fbuf_rand(d.K, -0.5f, 0.5f, 30 + k), y = buf_new((size_t)ny * 4);
            buf dy = fbuf_rand(ny, -1, 1, 40 + k), dx = buf_new((size_t)nx * 4);
            buf dw = buf_new((size_t)nw * 4), db = buf_new((size_t)d.K * 4);
            for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
                BOTH_OK(OP(s, conv2d_forward, F(y, s), F(x, s), F(w, s), a % 2 ? NULL : F(b, s),
                           &d, acts[a], 0.1f, ws.p[s]));
                cmp_f("conv2d_forward", &y, ny, 1e-4, 0, 1e-5);
            }
            BOTH_OK(OP(s, conv2d_backward_data, F(dx, s), F(dy, s), F(w, s), &d, ws.p[s]));
            cmp_f("conv2d_backward_data", &dx, nx, 1e-4, 0, 1e-5);
            BOTH_OK(OP(s, conv2d_backward_filter, F(dw, s), F(db, s), F(dy, s), F(x, s), &d,
                       ws.p[s]));
            cmp_f("conv2d_backward_filter dw", &dw, nw, 1e-4, 0, 1e-5);
            cmp_f("conv2d_backward_filter db", &db, d.K, 1e-5, 0, 1e-6);
            BOTH_OK(OP(s, conv2d_backward_filter, F(dw, s), NULL, F(dy, s), F(x, s), &d,
                       ws.p[s]));
            cmp_f("conv2d_backward_filter without db", &dw, nw, 1e-4, 0, 1e-5);
            buf_free(&x);
            buf_free(&w);
            buf_free(&b);
            buf_free(&y);
            buf_free(&dy);
            buf_free(&dx);
            buf_free(&dw);
            buf_free(&db);
        }
        buf_free(&ws);
    }
    /* N == 0: the filter gradients are zero; an inconsistent shape fails */
    mltk_conv2d_desc d = conv_desc(&shapes[1], 0);
    int64_t nw = d.K * d.C * d.R * d.S;
    buf dw = fbuf_rand(nw, -1, 1, 3), db = fbuf_rand(d.K, -1, 1, 4);
    BOTH_OK(OP(s, conv2d_backward_filter, F(dw, s), F(db, s), NULL, NULL, &d, NULL));
    cmp_exact("conv2d_backward_filter N=0", &dw, nw);
    cmp_exact("conv2d_backward_filter N=0 db", &db, d.K);
    d.P += 1;
    BOTH_RC(MLTK_ERR_INVALID, OP(s, conv2d_forward, F(dw, s), F(dw, s), F(dw, s), NULL, &d,
                                 MLTK_ACT_NONE, 0.0f, NULL));
    buf_free(&dw);
    buf_free(&db);
}
END_TEST

START_TEST(test_pool)
{
    /* N, C, H, W, R, S, stride_h, stride_w, pad_h, pad_w */
    static const int64_t shapes[][10] = {
        { 2, 3, 8, 8, 2, 2, 2, 2, 0, 0 },
        { 2, 3, 9, 7, 2, 2, 2, 2, 0, 0 },   /* odd: a row and column left over */
        { 1, 4, 9, 9, 3, 3, 2, 2, 1, 1 },
        { 3, 2, 7, 10, 3, 3, 1, 1, 1, 1 },  /* overlapping windows */
        { 2, 2, 6, 6, 4, 2, 1, 3, 2, 1 },
        { 1, 1, 5, 5, 5, 5, 1, 1, 0, 0 },   /* global */
    };
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
        for (int kind = 0; kind < 2; kind++) {
            const int64_t *v = shapes[k];
            mltk_pool2d_desc d = { .N = v[0], .C = v[1], .H = v[2], .W = v[3], .R = v[4],
                                   .S = v[5], .stride_h = v[6], .stride_w = v[7],
                                   .pad_h = v[8], .pad_w = v[9] };
            d.P = (d.H + 2 * d.pad_h - d.R) / d.stride_h + 1;
            d.Q = (d.W + 2 * d.pad_w - d.S) / d.stride_w + 1;
            int64_t nx = d.N * d.C * d.H * d.W, ny = d.N * d.C * d.P * d.Q;
            float *h = malloc((size_t)nx * 4);
            uint64_t st = k * 2 + (uint64_t)kind;
            /* few distinct values, so windows hold ties; a NaN or two */
            for (int64_t i = 0; i < nx; i++) {
                uint64_t r = splitmix(&st);
                h[i] = (float)(r % 5) * 0.5f - 1.0f;
                if (kind == MLTK_POOL_MAX && r % 61 == 0)
                    h[i] = NAN;
            }
            buf x = fbuf_host(h, nx), y = buf_new((size_t)ny * 4);
            buf dy = fbuf_rand(ny, -1, 1, 7 + k), dx = buf_new((size_t)nx * 4);
            BOTH_OK(OP(s, pool2d_forward, (mltk_pool)kind, F(y, s), F(x, s), &d));
            cmp_exact(kind ? "avgpool forward" : "maxpool forward", &y, ny);
            BOTH_OK(OP(s, pool2d_backward, (mltk_pool)kind, F(dx, s), F(dy, s), F(x, s),
                       F(y, s), &d));
            /* the same gradients added in the same order: exact */
            cmp_exact(kind ? "avgpool backward" : "maxpool backward", &dx, nx);
            free(h);
            buf_free(&x);
            buf_free(&y);
            buf_free(&dy);
            buf_free(&dx);
        }
}
END_TEST

/* ---- normalisation and softmax ------------------------------------------------ */

START_TEST(test_batchnorm)
{
    /* N, C, L */
    static const int64_t shapes[][3] = { { 7, 5, 1 }, { 128, 300, 1 }, { 4, 3, 33 },
                                         { 2, 16, 130 }, { 3, 2, 4097 }, { 2, 1, 20000 },
                                         { 300, 4, 2 } };
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
        for (int affine = 0; affine < 2; affine++) {
            int64_t N = shapes[k][0], C = shapes[k][1], L = shapes[k][2], n = N * C * L;
            /* an offset mean: the shifted sums must not cancel */
            buf x = fbuf_rand(n, 3.0f, 5.0f, 3 + k), y = buf_new((size_t)n * 4);
            buf g = fbuf_rand(C, 0.5f, 1.5f, 4), b = fbuf_rand(C, -1, 1, 5);
            buf sm = buf_new((size_t)C * 4), si = buf_new((size_t)C * 4);
            buf rm = fbuf_rand(C, -1, 1, 6), rv = fbuf_rand(C, 0.5f, 2, 7);
            buf dy = fbuf_rand(n, -1, 1, 8), dx = buf_new((size_t)n * 4);
            buf dg = buf_new((size_t)C * 4), dbt = buf_new((size_t)C * 4);
            float *gp[2], *bp[2];
            EACH(s) {
                gp[s] = affine ? F(g, s) : NULL;
                bp[s] = affine ? F(b, s) : NULL;
            }
            BOTH_OK(OP(s, batchnorm_forward_train, F(y, s), F(x, s), gp[s], bp[s], F(sm, s),
                       F(si, s), F(rm, s), F(rv, s), N, C, L, 0.1f, 1e-5f));
            cmp_f("batchnorm train y", &y, n, 1e-5, 1e-5, 0);
            cmp_f("batchnorm save_mean", &sm, C, 1e-6, 0, 0);
            cmp_f("batchnorm save_invstd", &si, C, 1e-5, 0, 0);
            cmp_f("batchnorm running_mean", &rm, C, 1e-6, 1e-7, 0);
            cmp_f("batchnorm running_var", &rv, C, 1e-5, 0, 0);
            BOTH_OK(OP(s, batchnorm_forward_eval, F(y, s), F(x, s), gp[s], bp[s], F(rm, s),
                       F(rv, s), N, C, L, 1e-5f));
            cmp_f("batchnorm eval y", &y, n, 1e-5, 1e-5, 0);
            BOTH_OK(OP(s, batchnorm_backward, F(dx, s), F(dg, s), F(dbt, s), F(dy, s), F(x, s),
                       gp[s], F(sm, s), F(si, s), N, C, L));
            cmp_f("batchnorm dx", &dx, n, 1e-4, 0, 1e-5);
            cmp_f("batchnorm dgamma", &dg, C, 1e-5, 0, 1e-6);
            cmp_f("batchnorm dbeta", &dbt, C, 1e-5, 0, 1e-6);
            /* only some gradients wanted */
            BOTH_OK(OP(s, batchnorm_backward, NULL, F(dg, s), NULL, F(dy, s), F(x, s), gp[s],
                       F(sm, s), F(si, s), N, C, L));
            cmp_f("batchnorm dgamma alone", &dg, C, 1e-5, 0, 1e-6);
            BOTH_OK(OP(s, batchnorm_backward, F(dx, s), NULL, NULL, F(dy, s), F(x, s), gp[s],
                       F(sm, s), F(si, s), N, C, L));
            cmp_f("batchnorm dx alone", &dx, n, 1e-4, 0, 1e-5);
            buf_free(&x); buf_free(&y); buf_free(&g); buf_free(&b); buf_free(&sm);
            buf_free(&si); buf_free(&rm); buf_free(&rv); buf_free(&dy); buf_free(&dx);
            buf_free(&dg); buf_free(&dbt);
        }
    float v[2];
    BOTH_RC(MLTK_ERR_INVALID, OP(s, batchnorm_forward_train, v, v, NULL, NULL, v, v, NULL,
                                 NULL, 1, 2, 1, 0.1f, 1e-5f));
}
END_TEST

START_TEST(test_layernorm)
{
    static const int64_t shapes[][2] = { { 1, 1 }, { 7, 5 }, { 130, 33 }, { 3, 4097 },
                                         { 300, 64 }, { 2, 1000 } };
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
        for (int affine = 0; affine < 4; affine++) {
            int64_t R = shapes[k][0], Cn = shapes[k][1], n = R * Cn;
            buf x = fbuf_rand(n, -2.0f, 6.0f, 9 + k), y = buf_new((size_t)n * 4);
            buf g = fbuf_rand(Cn, 0.5f, 1.5f, 4), b = fbuf_rand(Cn, -1, 1, 5);
            buf mean = buf_new((size_t)R * 4), rstd = buf_new((size_t)R * 4);
            buf dy = fbuf_rand(n, -1, 1, 8), dx = buf_new((size_t)n * 4);
            buf dg = buf_new((size_t)Cn * 4), dbt = buf_new((size_t)Cn * 4);
            float *gp[2], *bp[2];
            EACH(s) {
                gp[s] = affine & 1 ? F(g, s) : NULL;
                bp[s] = affine & 2 ? F(b, s) : NULL;
            }
            BOTH_OK(OP(s, layernorm_forward, F(y, s), F(x, s), gp[s], bp[s], F(mean, s),
                       F(rstd, s), R, Cn, 1e-5f));
            cmp_f("layernorm y", &y, n, 1e-5, 1e-5, 0);
            cmp_f("layernorm mean", &mean, R, 1e-6, 1e-7, 0);
            cmp_f("layernorm rstd", &rstd, R, 1e-5, 0, 0);
            BOTH_OK(OP(s, layernorm_backward, F(dx, s), F(dg, s), F(dbt, s), F(dy, s), F(x, s),
                       gp[s], F(mean, s), F(rstd, s), R, Cn));
            cmp_f("layernorm dx", &dx, n, 1e-4, 0, 1e-5);
            cmp_f("layernorm dgamma", &dg, Cn, 1e-5, 0, 1e-6);
            cmp_f("layernorm dbeta", &dbt, Cn, 1e-5, 0, 1e-6);
            BOTH_OK(OP(s, layernorm_backward, NULL, NULL, F(dbt, s), F(dy, s), F(x, s), gp[s],
                       F(mean, s), F(rstd, s), R, Cn));
            cmp_f("layernorm dbeta alone", &dbt, Cn, 1e-5, 0, 1e-6);
            buf_free(&x); buf_free(&y); buf_free(&g); buf_free(&b); buf_free(&mean);
            buf_free(&rstd); buf_free(&dy); buf_free(&dx); buf_free(&dg); buf_free(&dbt);
        }
}
END_TEST

START_TEST(test_softmax)
{
    static const int64_t shapes[][2] = { { 1, 1 }, { 7, 5 }, { 130, 33 }, { 3, 4097 },
                                         { 1000, 10 } };
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int64_t R = shapes[k][0], Cn = shapes[k][1], n = R * Cn;
        buf x = fbuf_rand(n, -10, 10, 19 + k), y = buf_new((size_t)n * 4);
        buf dy = fbuf_rand(n, -1, 1, 20 + k), dx = buf_new((size_t)n * 4);
        BOTH_OK(OP(s, softmax_forward, F(y, s), F(x, s), R, Cn));
        cmp_f("softmax y", &y, n, 1e-5, 1e-30, 0);
        BOTH_OK(OP(s, softmax_backward, F(dx, s), F(dy, s), F(y, s), R, Cn));
        /* dy - sum(dy y) cancels: the two sides' y differ by a few ulp */
        cmp_f("softmax dx", &dx, n, 1e-4, 1e-6, 0);
        /* in place: y == x, dx == dy */
        BOTH_OK(OP(s, softmax_forward, F(x, s), F(x, s), R, Cn));
        cmp_f("softmax in place", &x, n, 1e-5, 1e-30, 0);
        BOTH_OK(OP(s, softmax_backward, F(dy, s), F(dy, s), F(x, s), R, Cn));
        cmp_f("softmax backward in place", &dy, n, 1e-4, 1e-6, 0);
        buf_free(&x); buf_free(&y); buf_free(&dy); buf_free(&dx);
    }
}
END_TEST

/* ---- copies, embedding, augmentation ------------------------------------------ */

START_TEST(test_copy_2d)
{
    static const int64_t shapes[][4] = { { 1, 7, 7, 7 }, { 5, 3, 8, 4 }, { 33, 17, 20, 40 },
                                         { 300, 1, 3, 2 } };  /* rows, cols, dst_ld, src_ld */
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
        for (int acc = 0; acc < 2; acc++) {
            int64_t r = shapes[k][0], c = shapes[k][1], dl = shapes[k][2], sl = shapes[k][3];
            buf dst = fbuf_rand(r * dl, -1, 1, 1 + k), src = fbuf_rand(r * sl, -1, 1, 2 + k);
            BOTH_OK(OP(s, copy_2d, F(dst, s), dl, F(src, s), sl, r, c, acc));
            cmp_exact(acc ? "copy_2d accumulate" : "copy_2d", &dst, r * dl);
            buf_free(&dst);
            buf_free(&src);
        }
    float v[4];
    BOTH_RC(MLTK_ERR_INVALID, OP(s, copy_2d, v, 1, v, 2, 2, 2, 0));
}
END_TEST

START_TEST(test_embedding)
{
    static const int64_t shapes[][3] = { { 1, 1, 1 }, { 7, 5, 11 }, { 300, 64, 50 },
                                         { 2000, 3, 1000 } };  /* n, dim, vocab */
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int64_t n = shapes[k][0], dim = shapes[k][1], vocab = shapes[k][2];
        float *ids = malloc((size_t)n * 4);
        uint64_t st = k;
        /* repeated ids: their gradients add up, in id order */
        for (int64_t i = 0; i < n; i++)
            ids[i] = (float)(splitmix(&st) % (uint64_t)(vocab > 3 ? vocab / 2 : vocab));
        buf ib = fbuf_host(ids, n), table = fbuf_rand(vocab * dim, -1, 1, 3);
        buf y = buf_new((size_t)(n * dim) * 4), dy = fbuf_rand(n * dim, -1, 1, 4);
        buf dt = buf_new((size_t)(vocab * dim) * 4);
        BOTH_OK(OP(s, embedding_forward, F(y, s), F(table, s), F(ib, s), n, dim, vocab));
        cmp_exact("embedding_forward", &y, n * dim);
        BOTH_OK(OP(s, embedding_backward, F(dt, s), F(dy, s), F(ib, s), n, dim, vocab));
        cmp_exact("embedding_backward", &dt, vocab * dim);
        /* ids outside the table, fractional or NaN are data errors */
        static const float bad[] = { -1.0f, 0.5f, NAN, 1e9f };
        for (int b = 0; b < 4; b++) {
            float keep = ids[n - 1];
            ids[n - 1] = b == 3 ? (float)vocab : bad[b];
            buf_set(&ib, ids, (size_t)n * 4);
            BOTH_RC(MLTK_ERR_DATA, OP(s, embedding_forward, F(y, s), F(table, s), F(ib, s), n,
                                      dim, vocab));
            BOTH_RC(MLTK_ERR_DATA, OP(s, embedding_backward, F(dt, s), F(dy, s), F(ib, s), n,
                                      dim, vocab));
            ids[n - 1] = keep;
        }
        free(ids);
        buf_free(&ib); buf_free(&table); buf_free(&y); buf_free(&dy); buf_free(&dt);
    }
}
END_TEST

START_TEST(test_gather_augment)
{
    int64_t images = 20, C = 3, H = 9, W = 7, rows = 33;
    buf x = fbuf_rand(images * C * H * W, -1, 1, 5), y = buf_new((size_t)(rows * C * H * W) * 4);
    int32_t idx[33];
    uint64_t st = 9;
    for (int64_t i = 0; i < rows; i++)
        idx[i] = (int32_t)(splitmix(&st) % (uint64_t)images);
    buf ib = ibuf_host(idx, rows);
    for (int64_t pad = 0; pad <= 4; pad++)
        for (int flip = 0; flip < 2; flip++) {
            BOTH_OK(OP(s, gather_augment_2d, F(y, s), F(x, s), I32(ib, s), rows, C, H, W, pad,
                       flip, 1234 + (uint64_t)pad, 4 * (uint64_t)flip + 1));
            cmp_exact("gather_augment_2d", &y, rows * C * H * W);
        }
    idx[5] = -1;
    buf_set(&ib, idx, sizeof idx);
    BOTH_RC(MLTK_ERR_INVALID, OP(s, gather_augment_2d, F(y, s), F(x, s), I32(ib, s), rows, C, H,
                                 W, 2, 1, 1, 0));
    buf_free(&x); buf_free(&y); buf_free(&ib);
}
END_TEST

/* ---- the other losses ---------------------------------------------------------- */

START_TEST(test_losses)
{
    static const int64_t shapes[][2] = { { 1, 2 }, { 7, 10 }, { 130, 33 }, { 64, 1000 } };
    buf loss = buf_new(4);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int64_t N = shapes[k][0], C = shapes[k][1], n = N * C;
        buf x = fbuf_rand(n, -6, 6, 1 + k), t = fbuf_rand(n, -6, 6, 2 + k);
        buf l = labels_rand(N, C, 3 + k), w = fbuf_rand(C, 0.1f, 2.0f, 4 + k);
        buf d = buf_new((size_t)n * 4);
        for (int variant = 0; variant < 4; variant++) {
            float ls = variant & 1 ? 0.1f : 0.0f;
            BOTH_OK(OP(s, softmax_xent_ex, F(loss, s), F(d, s), F(x, s), I32(l, s),
                       variant & 2 ? F(w, s) : NULL, N, C, ls, 0.5f));
            cmp_f("softmax_xent_ex loss", &loss, 1, 1e-5, 0, 0);
            cmp_f("softmax_xent_ex dlogits", &d, n, 1e-5, 1e-9, 0);
        }
        for (int kind = 0; kind < 3; kind++) {
            BOTH_OK(OP(s, pointwise_loss, kind, F(loss, s), F(d, s), F(x, s), F(t, s), n, 2.0f));
            cmp_f("pointwise_loss", &loss, 1, 1e-5, 0, 0);
            cmp_f("pointwise_loss dpred", &d, n, 1e-5, 1e-9, 0);
        }
        for (int q = 0; q < 2; q++) {
            float T = q ? 2.5f : 1.0f;
            BOTH_OK(OP(s, kl_div_logits, F(loss, s), F(d, s), F(x, s), F(t, s), N, C, T, 1.0f));
            cmp_f("kl_div_logits", &loss, 1, 1e-5, 1e-7, 0);
            cmp_f("kl_div_logits dstudent", &d, n, 1e-5, 1e-9, 0);
        }
        buf_free(&x); buf_free(&t); buf_free(&l); buf_free(&w); buf_free(&d);
    }
    int32_t bad[2] = { 0, 7 };
    buf l = ibuf_host(bad, 2), x = fbuf_rand(10, -1, 1, 1);
    BOTH_RC(MLTK_ERR_DATA, OP(s, softmax_xent_ex, F(loss, s), NULL, F(x, s), I32(l, s), NULL, 2,
                              5, 0.0f, 1.0f));
    BOTH_RC(MLTK_ERR_INVALID, OP(s, pointwise_loss, 5, F(loss, s), NULL, F(x, s), F(x, s), 10,
                                 1.0f));
    buf_free(&l);
    buf_free(&x);
    buf_free(&loss);
}
END_TEST

/* ---- every layer plugin through the single-layer harness ----------------------- */

static mltk_params_t *layer_params(const char *name, int n, const char *const *keys,
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

static mltk_shape batched(int64_t batch, const mltk_shape *s)
{
    mltk_shape b = { s->ndim + 1, { batch } };
    for (int i = 0; i < s->ndim; i++)
        b.dim[i + 1] = s->dim[i];
    return b;
}

#define MAX_IN 3

/* A layer on both backends, the same parameters and inputs.  ids_vocab > 0:
 * the inputs are float-coded ids below it. */
static void layer_case(const char *name, int n_kv, const char *const *keys,
                       const char *const *vals, int n_in, const mltk_shape *in, int64_t batch,
                       int64_t ids_vocab, double rtol, double arel)
{
    const struct mltk_layer_i *li = NULL;
    char *err = NULL;
    ck_assert_msg(mltk_registry_load(reg, name, MLTK_KIND_LAYER, (const void **)&li, &err)
                  == MLTK_OK, "load %s: %s", name, err ? err : "?");
    mltk_params_t *params = layer_params(name, n_kv, keys, vals);
    void *self[2] = { NULL, NULL };
    mltk_single_layer *sl[2] = { NULL, NULL };
    EACH(s) {
        ck_assert_msg(li->create(&self[s], params, &err) == MLTK_OK, "create %s: %s", name,
                      err ? err : "?");
        ck_assert_msg(mltk_single_layer_create(&sl[s], li, self[s], BES[s], n_in, in, batch,
                                               42, &err) == MLTK_OK,
                      "setup %s on %s: %s", name, SIDE[s], err ? err : "?");
    }
    ck_assert(mltk_shape_equal(&sl[0]->out, &sl[1]->out));
    ck_assert_int_eq(sl[0]->n_params, sl[1]->n_params);
    ck_assert_int_eq(sl[0]->n_buffers, sl[1]->n_buffers);

    /* the cpu's initial parameters and state, copied to cuda */
    for (int j = 0; j < sl[0]->n_params; j++) {
        int64_t n = mltk_tensor_numel(&sl[0]->params[j]);
        float *h = malloc((size_t)n * 4);
        ck_assert_int_eq(cpu.i->download(cpu.ctx, h, sl[0]->params[j].data, (size_t)n * 4),
                         MLTK_OK);
        ck_assert_int_eq(gpu.i->upload(gpu.ctx, sl[1]->params[j].data, h, (size_t)n * 4),
                         MLTK_OK);
        free(h);
    }
    for (int j = 0; j < sl[0]->n_buffers; j++) {
        if (sl[0]->buffers[j].dtype != MLTK_F32)
            continue;
        int64_t n = mltk_tensor_numel(&sl[0]->buffers[j]);
        float *h = malloc((size_t)n * 4);
        ck_assert_int_eq(cpu.i->download(cpu.ctx, h, sl[0]->buffers[j].data, (size_t)n * 4),
                         MLTK_OK);
        ck_assert_int_eq(gpu.i->upload(gpu.ctx, sl[1]->buffers[j].data, h, (size_t)n * 4),
                         MLTK_OK);
        free(h);
    }

    buf x[MAX_IN], dx[MAX_IN];
    mltk_tensor xt[2][MAX_IN], dxt[2][MAX_IN];
    int64_t nx[MAX_IN];
    for (int i = 0; i < n_in; i++) {
        nx[i] = batch * mltk_shape_numel(&in[i]);
        float *h = malloc((size_t)nx[i] * 4);
        rand_fill(h, nx[i], -2, 2, 100 + (uint64_t)i);
        if (ids_vocab > 0) {
            uint64_t st = 5;
            for (int64_t e = 0; e < nx[i]; e++)
                h[e] = (float)(splitmix(&st) % (uint64_t)ids_vocab);
        }
        x[i] = fbuf_host(h, nx[i]);
        dx[i] = buf_new((size_t)nx[i] * 4);
        free(h);
        EACH(s) {
            xt[s][i] = (mltk_tensor){ x[i].p[s], batched(batch, &in[i]), MLTK_F32 };
            dxt[s][i] = (mltk_tensor){ dx[i].p[s], batched(batch, &in[i]), MLTK_F32 };
        }
    }
    int64_t ny = batch * mltk_shape_numel(&sl[0]->out);
    buf y = buf_new((size_t)ny * 4), dy = fbuf_rand(ny, -1, 1, 77);
    char what[96];

    for (int mode = MLTK_TRAIN; mode >= MLTK_EVAL; mode--) {
        EACH(s) {
            mltk_tensor yt = { y.p[s], batched(batch, &sl[s]->out), MLTK_F32 };
            mltk_tensor dyt = { dy.p[s], batched(batch, &sl[s]->out), MLTK_F32 };
            mltk_layer_run r = {
                .be = BES[s], .mode = (mltk_mode)mode, .batch = batch, .n_in = n_in,
                .x = xt[s], .dx = dxt[s], .y = &yt, .dy = &dyt, .params = sl[s]->params,
                .grads = sl[s]->grads, .buffers = sl[s]->buffers, .seed = 7, .step = 3,
            };
            int rc = li->forward(self[s], &r);
            ck_assert_msg(rc == MLTK_OK, "%s forward on %s: %s", name, SIDE[s],
                          mltk_status_str(rc));
            if (mode == MLTK_TRAIN) {
                rc = li->backward(self[s], &r);
                ck_assert_msg(rc == MLTK_OK, "%s backward on %s: %s", name, SIDE[s],
                              mltk_status_str(rc));
            }
            ck_assert_int_eq(BES[s]->i->sync(BES[s]->ctx), MLTK_OK);
        }
        snprintf(what, sizeof what, "%s %s y", name, mode ? "train" : "eval");
        cmp_f(what, &y, ny, rtol, 0, arel);
        if (mode != MLTK_TRAIN)
            continue;
        for (int i = 0; i < n_in && ids_vocab == 0; i++) {
            snprintf(what, sizeof what, "%s dx[%d]", name, i);
            cmp_f(what, &dx[i], nx[i], rtol, 0, arel);
        }
        for (int j = 0; j < sl[0]->n_params; j++) {
            buf g = { { sl[0]->grads[j].data, sl[1]->grads[j].data }, 0 };
            snprintf(what, sizeof what, "%s grad[%d]", name, j);
            cmp_f(what, &g, mltk_tensor_numel(&sl[0]->grads[j]), rtol, 0, arel);
        }
        for (int j = 0; j < sl[0]->n_buffers; j++) {
            if (sl[0]->buffers[j].dtype != MLTK_F32)
                continue;
            buf st = { { sl[0]->buffers[j].data, sl[1]->buffers[j].data }, 0 };
            snprintf(what, sizeof what, "%s state[%d]", name, j);
            cmp_f(what, &st, mltk_tensor_numel(&sl[0]->buffers[j]), 1e-5, 1e-7, 0);
        }
    }

    for (int i = 0; i < n_in; i++) {
        buf_free(&x[i]);
        buf_free(&dx[i]);
    }
    buf_free(&y);
    buf_free(&dy);
    EACH(s) {
        mltk_single_layer_destroy(sl[s], BES[s]);
        if (li->destroy)
            li->destroy(self[s]);
    }
    mltk_params_free(params);
}

static mltk_shape shp(int nd, int64_t a, int64_t b, int64_t c)
{
    int64_t d[3] = { a, b, c };
    return mltk_shape_make(nd, d);
}

START_TEST(test_layers_dense_conv)
{
    mltk_shape v7 = shp(1, 7, 0, 0), img = shp(3, 3, 9, 9), img4 = shp(3, 4, 8, 8);
    const char *dk[] = { "units", "activation", "bias" };
    const char *dv1[] = { "5", "relu", "true" }, *dv2[] = { "33", "tanh", "false" };
    layer_case("dense", 3, dk, dv1, 1, &v7, 6, 0, 1e-5, 1e-5);
    layer_case("dense", 3, dk, dv2, 1, &v7, 130, 0, 1e-5, 1e-5);
    const char *ck[] = { "filters", "kernel", "padding", "stride", "activation", "groups" };
    const char *cv1[] = { "6", "3", "1", "1", "relu", "1" };
    const char *cv2[] = { "8", "3", "0", "2", "none", "1" };
    const char *cv3[] = { "4", "3", "1", "1", "sigmoid", "4" };
    layer_case("conv2d", 6, ck, cv1, 1, &img, 5, 0, 1e-4, 1e-5);
    layer_case("conv2d", 6, ck, cv2, 1, &img, 3, 0, 1e-4, 1e-5);
    layer_case("conv2d", 6, ck, cv3, 1, &img4, 2, 0, 1e-4, 1e-5);
}
END_TEST

START_TEST(test_layers_pool_norm)
{
    mltk_shape img = shp(3, 3, 9, 9), img8 = shp(3, 2, 8, 8), v8 = shp(1, 8, 0, 0);
    mltk_shape mat = shp(2, 5, 7, 0);
    const char *pk[] = { "kernel", "stride", "padding" };
    const char *pv1[] = { "2", "2", "0" }, *pv2[] = { "3", "2", "1" }, *pv3[] = { "3", "1", "1" };
    layer_case("maxpool2d", 3, pk, pv1, 1, &img8, 4, 0, 0, 0);
    layer_case("maxpool2d", 3, pk, pv2, 1, &img, 3, 0, 0, 0);
    layer_case("avgpool2d", 3, pk, pv3, 1, &img, 3, 0, 0, 0);
    layer_case("global_avgpool", 0, NULL, NULL, 1, &img, 3, 0, 1e-6, 1e-7);
    const char *bk[] = { "momentum", "affine" };
    const char *bv1[] = { "0.1", "true" }, *bv2[] = { "0.3", "false" };
    layer_case("batchnorm", 2, bk, bv1, 1, &img, 6, 0, 1e-4, 1e-5);
    layer_case("batchnorm", 2, bk, bv2, 1, &v8, 33, 0, 1e-4, 1e-5);
    const char *lk[] = { "axis" };
    const char *lv1[] = { "last" }, *lv2[] = { "all" };
    layer_case("layernorm", 1, lk, lv1, 1, &mat, 4, 0, 1e-4, 1e-5);
    layer_case("layernorm", 1, lk, lv2, 1, &mat, 4, 0, 1e-4, 1e-5);
}
END_TEST

START_TEST(test_layers_pointwise)
{
    mltk_shape m = shp(2, 3, 11, 0), t = shp(3, 2, 3, 4);
    static const char *const names[] = { "relu", "sigmoid", "tanh", "softmax", "flatten" };
    for (int i = 0; i < 5; i++)
        layer_case(names[i], 0, NULL, NULL, 1, &m, 5, 0, 2e-5, 2e-6);
    layer_case("flatten", 0, NULL, NULL, 1, &t, 3, 0, 0, 0);
    const char *lk[] = { "negative_slope" }, *lv[] = { "0.2" };
    layer_case("leaky_relu", 1, lk, lv, 1, &m, 5, 0, 1e-6, 0);
    const char *ek[] = { "alpha" }, *ev[] = { "0.7" };
    layer_case("elu", 1, ek, ev, 1, &m, 5, 0, 2e-5, 2e-6);
    const char *gk[] = { "approximate" }, *gv1[] = { "none" }, *gv2[] = { "tanh" };
    layer_case("gelu", 1, gk, gv1, 1, &m, 5, 0, 2e-5, 2e-6);
    layer_case("gelu", 1, gk, gv2, 1, &m, 5, 0, 2e-5, 2e-6);
    const char *dk[] = { "rate" }, *dv[] = { "0.3" };
    mltk_shape v40 = shp(1, 40, 0, 0);
    layer_case("dropout", 1, dk, dv, 1, &v40, 9, 0, 0, 0);
}
END_TEST

START_TEST(test_layers_multi_embed)
{
    mltk_shape two[2] = { shp(2, 5, 6, 0), shp(2, 5, 6, 0) };
    layer_case("add", 0, NULL, NULL, 2, two, 4, 0, 1e-6, 0);
    mltk_shape cat[3] = { shp(2, 5, 6, 0), shp(2, 5, 2, 0), shp(2, 5, 1, 0) };
    const char *ck[] = { "axis" }, *cv1[] = { "1" }, *cv0[] = { "0" };
    layer_case("concat", 1, ck, cv1, 3, cat, 3, 0, 0, 0);
    mltk_shape rows[2] = { shp(2, 2, 6, 0), shp(2, 3, 6, 0) };
    layer_case("concat", 1, ck, cv0, 2, rows, 3, 0, 0, 0);
    const char *ek[] = { "vocab", "dim" }, *ev[] = { "11", "6" };
    mltk_shape ids = shp(1, 5, 0, 0);
    layer_case("embedding", 2, ek, ev, 1, &ids, 7, 11, 0, 0);
}
END_TEST

/* ---- suite ------------------------------------------------------------------- */

static Suite *cuda_suite(void)
{
    Suite *s = suite_create("cuda");
    TCase *ops = tcase_create("ops");
    tcase_add_test(ops, test_lifetime);
    tcase_add_test(ops, test_memory);
    tcase_add_test(ops, test_fill_axpby_mul);
    tcase_add_test(ops, test_act);
    tcase_add_test(ops, test_act_limits);
    tcase_add_test(ops, test_gemm);
    tcase_add_test(ops, test_bias_act);
    tcase_add_test(ops, test_sum_rows);
    tcase_add_test(ops, test_sum_sumsq);
    tcase_add_test(ops, test_softmax_xent);
    tcase_add_test(ops, test_count_correct);
    tcase_add_test(ops, test_gather_rows);
    tcase_add_test(ops, test_rng);
    tcase_add_test(ops, test_dropout);
    tcase_add_test(ops, test_sgd_adam);
    tcase_add_test(ops, test_rmsprop_lamb);
    tcase_add_test(ops, test_clip);
    tcase_add_test(ops, test_conv);
    tcase_add_test(ops, test_pool);
    tcase_add_test(ops, test_batchnorm);
    tcase_add_test(ops, test_layernorm);
    tcase_add_test(ops, test_softmax);
    tcase_add_test(ops, test_copy_2d);
    tcase_add_test(ops, test_embedding);
    tcase_add_test(ops, test_gather_augment);
    tcase_add_test(ops, test_losses);
    suite_add_tcase(s, ops);
    TCase *layers = tcase_create("layers");
    tcase_add_test(layers, test_layers_dense_conv);
    tcase_add_test(layers, test_layers_pool_norm);
    tcase_add_test(layers, test_layers_pointwise);
    tcase_add_test(layers, test_layers_multi_embed);
    suite_add_tcase(s, layers);
    return s;
}

/* Open cpu and cuda; exit 77 with the reason when cuda cannot run here. */
static void backends_open(void)
{
    char *err = NULL;
    if (mltk_registry_create(&reg, NULL, 1, &err)) {
        fprintf(stderr, "check_cuda: registry: %s\n", err ? err : "?");
        exit(EXIT_FAILURE);
    }
    mltk_backend_opts o = { .size = sizeof o, .threads = 1, .device = 0, .seed = 1 };
    if (mltk_backend_open(&cpu, reg, "cpu", &o, &err)) {
        fprintf(stderr, "check_cuda: cpu backend: %s\n", err ? err : "?");
        exit(EXIT_FAILURE);
    }
    const mltk_desc *d = NULL;
    if (mltk_registry_find(reg, "cuda", MLTK_KIND_BACKEND, &d, NULL)) {
        printf("check_cuda: skipped: the cuda backend is not built (configure found no "
               "usable CUDA toolkit)\n");
        exit(77);
    }
    const struct mltk_backend_i *bi = NULL;
    if (mltk_registry_load(reg, "cuda", MLTK_KIND_BACKEND, (const void **)&bi, &err)) {
        printf("check_cuda: skipped: %s\n", err ? err : "the cuda backend does not load");
        exit(77);
    }
    char *why = NULL;
    if (!bi->probe(&why)) {
        printf("check_cuda: skipped: cuda: %s\n", why ? why : "probe failed");
        free(why);
        exit(77);
    }
    free(why);
    if (mltk_backend_open(&gpu, reg, "cuda", &o, &err)) {
        fprintf(stderr, "check_cuda: the cuda backend probes OK but does not start: %s\n",
                err ? err : "?");
        exit(EXIT_FAILURE);
    }
    printf("check_cuda: %s against %s\n", gpu.i->device_name(gpu.ctx),
           cpu.i->device_name(cpu.ctx));
}

/* AddressSanitizer's shadow memory collides with the CUDA driver's address
 * reservations unless protect_shadow_gap=0: a sanitized build re-runs
 * itself with that option, so the GPU is tested there too. */
static void asan_cuda_options(char **argv)
{
#if defined(__SANITIZE_ADDRESS__)
    const char *o = getenv("ASAN_OPTIONS");
    if (o && strstr(o, "protect_shadow_gap"))
        return;
    /* (no Check asserts here: they work inside tests only) */
    size_t len = (o ? strlen(o) : 0) + 32;
    char *opts = malloc(len);
    if (!opts)
        return;
    snprintf(opts, len, "%s%sprotect_shadow_gap=0", o ? o : "", o && *o ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    free(opts);
    execv("/proc/self/exe", argv);
    /* not re-run: go on without the option */
#else
    (void)argv;
#endif
}

int main(int argc, char **argv)
{
    (void)argc;
    asan_cuda_options(argv);
    backends_open();
    SRunner *sr = srunner_create(cuda_suite());
    /* a CUDA context does not survive fork(): the tests run in this process */
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    mltk_backend_close(&gpu);
    mltk_backend_close(&cpu);
    mltk_registry_destroy(reg);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
