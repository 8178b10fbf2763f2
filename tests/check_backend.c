/* check_backend.c - conformance of the cpu backend's ops.
 *
 * What this is: the cpu backend plugin is dlopen()ed straight from the
 * build tree ($top_builddir/backends/cpu/.libs/cpu.so), its entry symbol
 * and ABI fields are checked, and every op of struct mltk_backend_i is run
 * at odd sizes, with 1 and 2 threads, against naive double-precision
 * references computed here.  Optimizer steps are also compared with a
 * table produced by PyTorch (optim_ref.h, from gen_optim_ref.py), and the
 * random numbers with the rng.h functions called directly.
 *
 * Tolerances, stated where used, follow from float rounding: a sum of K
 * products carries at most about K * 2^-24 of the sum of their
 * magnitudes; our exp/tanh/sigmoid are within a few ulp (4e-6 relative
 * leaves a wide margin yet catches any wrong formula).
 *
 * What this is not: a test of the core's plugin registry (this suite
 * deliberately bypasses it) or a benchmark.
 */
#include "config.h"

#include <check.h>
#include <dlfcn.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mltk/plugin.h>
#include <mltk/rng.h>
#include <mltk/rng.h>

#include "optim_ref.h"
#include "testutil.h"

/* ---- loading the plugin ------------------------------------------------- */

static void *lib;
static const struct mltk_plugin *plug;
static const struct mltk_backend_i *bi;

static void plugin_load(void)
{
    char *path = tu_fmt("%s/backends/cpu/.libs/cpu.so", tu_builddir());
    lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "check_backend: cannot load %s: %s\n", path, dlerror());
        free(path);
        exit(1);
    }
    free(path);
    mltk_plugin_entry_fn entry = (mltk_plugin_entry_fn)dlsym(lib, "mltk_plugin_cpu");
    if (!entry) {
        fprintf(stderr, "check_backend: no mltk_plugin_cpu: %s\n", dlerror());
        exit(1);
    }
    plug = entry();
    bi = plug ? plug->iface : NULL;
}

static void plugin_unload(void)
{
    /* Kept loaded: Check's forked children share the mapping, and OpenBLAS
     * does not unload cleanly. */
}

static void *ctx_open(int threads)
{
    mltk_backend_opts o = { .size = sizeof o, .threads = threads, .device = 0, .seed = 1 };
    void *ctx = NULL;
    char *err = NULL;
    int rc = bi->create(&ctx, &o, &err);
    ck_assert_msg(rc == MLTK_OK, "create(threads=%d): %s", threads, err ? err : "?");
    ck_assert_ptr_nonnull(ctx);
    return ctx;
}

static float *falloc(void *ctx, int64_t n)
{
    void *p = NULL;
    ck_assert_int_eq(bi->alloc(ctx, (size_t)(n > 0 ? n : 1) * sizeof(float), &p), MLTK_OK);
    ck_assert_msg(((uintptr_t)p & 63) == 0, "alloc not 64-byte aligned");
    return p;
}

/* ---- deterministic inputs ----------------------------------------------- */

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

/* ---- comparing ---------------------------------------------------------- */

/* Per-element checks call ck_abort_msg only on failure: every passing
 * ck_assert records a checkpoint through Check's I/O, far slower than
 * the ops under test. */

/* |got - ref| <= rtol * |ref| + atol, element by element; reports the
 * first failure with its index */
static void expect_close(const float *got, const double *ref, int64_t n,
                         double rtol, double atol, const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        int ok = d <= rtol * fabs(ref[i]) + atol
            || (isnan(ref[i]) && isnan(got[i]))
            || (isinf(ref[i]) && got[i] == ref[i]);
        EXPECT(ok, "%s[%lld] = %.9g, expected %.9g (diff %.3g, tol %.3g)",
                      what, (long long)i, (double)got[i], ref[i], d,
                      rtol * fabs(ref[i]) + atol);
    }
}

static double ref_act(mltk_act act, double alpha, double x)
{
    switch (act) {
    case MLTK_ACT_RELU:       return x > 0 ? x : 0;
    case MLTK_ACT_LEAKY_RELU: return x > 0 ? x : alpha * x;
    case MLTK_ACT_SIGMOID:    return 1.0 / (1.0 + exp(-x));
    case MLTK_ACT_TANH:       return tanh(x);
    default:                  return x;
    }
}

static double ref_dact(mltk_act act, double alpha, double x)
{
    switch (act) {
    case MLTK_ACT_RELU:       return x > 0 ? 1 : 0;
    case MLTK_ACT_LEAKY_RELU: return x > 0 ? 1 : alpha;
    case MLTK_ACT_SIGMOID: {
        double s = 1.0 / (1.0 + exp(-x));
        return s * (1 - s);
    }
    case MLTK_ACT_TANH: {
        double t = tanh(x);
        return 1 - t * t;
    }
    default:                  return 1;
    }
}

static const int64_t SIZES[] = { 0, 1, 7, 33, 130, 1000, 40001, 262147 };
#define N_SIZES ((int)(sizeof SIZES / sizeof SIZES[0]))

/* ---- the plugin itself ------------------------------------------------- */

START_TEST(test_abi)
{
    ck_assert_ptr_nonnull(plug);
    ck_assert_int_eq(plug->abi_major, MLTK_ABI_MAJOR);
    ck_assert_int_le(plug->abi_minor, MLTK_ABI_MINOR);
    ck_assert_uint_ge(plug->size, sizeof(struct mltk_plugin));
    ck_assert_str_eq(plug->name, "cpu");
    ck_assert_int_eq(plug->kind, MLTK_KIND_BACKEND);
    ck_assert_ptr_nonnull(bi);
    ck_assert_uint_eq(bi->size, sizeof(struct mltk_backend_i));

    /* every member is provided */
    const void *members[] = {
        (const void *)bi->probe, (const void *)bi->create, (const void *)bi->destroy,
        (const void *)bi->device_name, (const void *)bi->alloc, (const void *)bi->free,
        (const void *)bi->upload, (const void *)bi->download, (const void *)bi->copy,
        (const void *)bi->sync, (const void *)bi->fill, (const void *)bi->axpby,
        (const void *)bi->mul, (const void *)bi->act_forward,
        (const void *)bi->act_backward, (const void *)bi->gemm,
        (const void *)bi->bias_act, (const void *)bi->sum_rows, (const void *)bi->sum,
        (const void *)bi->sumsq, (const void *)bi->softmax_xent,
        (const void *)bi->count_correct, (const void *)bi->gather_rows,
        (const void *)bi->rng_uniform, (const void *)bi->rng_normal,
        (const void *)bi->sgd_step, (const void *)bi->adam_step,
        (const void *)bi->get_proc,
    };
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
        ck_assert_msg(members[i] != NULL, "member %zu is NULL", i);

    /* only the entry symbol is exported */
    ck_assert_ptr_null(dlsym(lib, "cpu_pool_create"));
    ck_assert_ptr_null(dlsym(lib, "cpu_iface"));
}
END_TEST

START_TEST(test_lifetime)
{
    char *why = NULL;
    ck_assert_int_eq(bi->probe(&why), 1);
    ck_assert_ptr_null(why);

    void *ctx = ctx_open(2);
    const char *name = bi->device_name(ctx);
    TU_ASSERT_CONTAINS(name, "cpu: 2 threads");
    TU_ASSERT_CONTAINS(name, "OpenBLAS");
    ck_assert_ptr_null(bi->get_proc(ctx, "no_such_op"));
    ck_assert_ptr_null(bi->get_proc(ctx, ""));
    ck_assert_int_eq(bi->sync(ctx), MLTK_OK);
    bi->destroy(ctx);

    ctx = ctx_open(1);
    TU_ASSERT_CONTAINS(bi->device_name(ctx), "cpu: 1 thread,");
    bi->destroy(ctx);

    /* 0 threads means all cores */
    ctx = ctx_open(0);
    TU_ASSERT_CONTAINS(bi->device_name(ctx), "cpu: ");
    bi->destroy(ctx);

    /* a negative thread count is refused with a message */
    mltk_backend_opts o = { .size = sizeof o, .threads = -3 };
    char *err = NULL;
    ctx = (void *)1;
    ck_assert_int_eq(bi->create(&ctx, &o, &err), MLTK_ERR_INVALID);
    ck_assert_ptr_null(ctx);
    TU_ASSERT_CONTAINS(err, "threads");
    free(err);
    bi->destroy(NULL);
}
END_TEST

/* ---- memory ------------------------------------------------------------- */

START_TEST(test_memory)
{
    void *ctx = ctx_open(_i);
    size_t sizes[] = { 0, 1, 3, 64, 65, 4097, 1 << 20 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        void *p = NULL, *q = NULL;
        ck_assert_int_eq(bi->alloc(ctx, sizes[k], &p), MLTK_OK);
        ck_assert_int_eq(bi->alloc(ctx, sizes[k], &q), MLTK_OK);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p & 63, 0);
        unsigned char *host = malloc(sizes[k] + 1), *back = malloc(sizes[k] + 1);
        for (size_t i = 0; i < sizes[k]; i++)
            host[i] = (unsigned char)(i * 7 + k);
        ck_assert_int_eq(bi->upload(ctx, p, host, sizes[k]), MLTK_OK);
        ck_assert_int_eq(bi->copy(ctx, q, p, sizes[k]), MLTK_OK);
        memset(back, 0xee, sizes[k] + 1);
        ck_assert_int_eq(bi->download(ctx, back, q, sizes[k]), MLTK_OK);
        ck_assert_int_eq(memcmp(host, back, sizes[k]), 0);
        ck_assert_int_eq(back[sizes[k]], 0xee);
        free(host);
        free(back);
        bi->free(ctx, p);
        bi->free(ctx, q);
    }
    bi->free(ctx, NULL);
    void *p = (void *)1;
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    /* the sanitizers abort on absurd sizes instead of failing them */
    ck_assert_int_eq(bi->alloc(ctx, SIZE_MAX / 2, &p), MLTK_ERR_NOMEM);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(bi->alloc(ctx, SIZE_MAX, &p), MLTK_ERR_NOMEM);
#endif
    ck_assert_int_eq(bi->copy(ctx, NULL, NULL, 0), MLTK_OK);
    ck_assert_int_eq(bi->copy(ctx, NULL, &p, 4), MLTK_ERR_INVALID);
    bi->destroy(ctx);
}
END_TEST

/* ---- elementwise -------------------------------------------------------- */

START_TEST(test_fill_axpby_mul)
{
    void *ctx = ctx_open(_i);
    for (int s = 0; s < N_SIZES; s++) {
        int64_t n = SIZES[s];
        float *x = falloc(ctx, n), *y = falloc(ctx, n), *z = falloc(ctx, n);
        double *ref = malloc(sizeof(double) * (size_t)(n + 1));

        ck_assert_int_eq(bi->fill(ctx, z, 2.5f, n), MLTK_OK);
        for (int64_t i = 0; i < n; i++)
            EXPECT(z[i] == 2.5f, "fill[%lld] = %g", (long long)i, (double)z[i]);

        rand_fill(x, n, -2, 2, 1 + s);
        rand_fill(y, n, -2, 2, 100 + s);
        /* y = a x + b y */
        for (int64_t i = 0; i < n; i++)
            ref[i] = 0.75 * x[i] - 1.25 * (double)y[i];
        ck_assert_int_eq(bi->axpby(ctx, y, 0.75f, x, -1.25f, n), MLTK_OK);
        /* terms below 4 in magnitude, three roundings of at most 2^-24 * 4
         * each (two without FMA): 1e-6 absolute covers any cancellation */
        expect_close(y, ref, n, 0, 1e-6, "axpby");

        /* b == 0: y is not read (NaN stays out) */
        for (int64_t i = 0; i < n; i++) {
            y[i] = NAN;
            ref[i] = -3.0 * x[i];
        }
        ck_assert_int_eq(bi->axpby(ctx, y, -3.0f, x, 0.0f, n), MLTK_OK);
        expect_close(y, ref, n, 1.2e-7, 0, "axpby b=0");

        /* in place, x == y */
        for (int64_t i = 0; i < n; i++)
            ref[i] = 0.5 * x[i] + 0.25 * x[i];
        ck_assert_int_eq(bi->axpby(ctx, x, 0.5f, x, 0.25f, n), MLTK_OK);
        expect_close(x, ref, n, 2.4e-7, 0, "axpby in place");

        /* z = x * y, then in place z = z * y and z = z * z */
        rand_fill(x, n, -2, 2, 7 + s);
        rand_fill(y, n, -2, 2, 8 + s);
        for (int64_t i = 0; i < n; i++)
            ref[i] = (double)x[i] * y[i];
        ck_assert_int_eq(bi->mul(ctx, z, x, y, n), MLTK_OK);
        expect_close(z, ref, n, 6e-8, 0, "mul");
        for (int64_t i = 0; i < n; i++)
            ref[i] = (double)z[i] * y[i];
        ck_assert_int_eq(bi->mul(ctx, z, z, y, n), MLTK_OK);
        expect_close(z, ref, n, 6e-8, 0, "mul z==x");
        for (int64_t i = 0; i < n; i++)
            ref[i] = (double)z[i] * z[i];
        ck_assert_int_eq(bi->mul(ctx, z, z, z, n), MLTK_OK);
        expect_close(z, ref, n, 6e-8, 0, "mul z==x==y");

        free(ref);
        bi->free(ctx, x);
        bi->free(ctx, y);
        bi->free(ctx, z);
    }
    /* invalid sizes and pointers are refused, not crashed on */
    float v[4];
    ck_assert_int_eq(bi->fill(ctx, v, 1, -1), MLTK_ERR_INVALID);
    ck_assert_int_eq(bi->fill(ctx, NULL, 1, 4), MLTK_ERR_INVALID);
    ck_assert_int_eq(bi->fill(ctx, NULL, 1, 0), MLTK_OK);
    ck_assert_int_eq(bi->axpby(ctx, v, 1, v, 1, -5), MLTK_ERR_INVALID);
    ck_assert_int_eq(bi->mul(ctx, v, v, NULL, 4), MLTK_ERR_INVALID);
    bi->destroy(ctx);
}
END_TEST

static const mltk_act ACTS[] = { MLTK_ACT_NONE, MLTK_ACT_RELU, MLTK_ACT_LEAKY_RELU,
                                 MLTK_ACT_SIGMOID, MLTK_ACT_TANH };

START_TEST(test_act)
{
    void *ctx = ctx_open(_i);
    /* special points: zero, tiny, the ends of exp's range, beyond */
    static const float special[] = { 0.0f, -0.0f, 1e-7f, -1e-7f, 1e-3f, -2e-4f,
                                     0.34f, -0.35f, 5.0f, -9.0f, 20.0f, -20.0f,
                                     44.0f, -44.0f, 87.0f, -87.0f, 88.5f, -88.5f,
                                     100.0f, -100.0f, 1e30f, -1e30f };
    const int n_special = (int)(sizeof special / sizeof special[0]);
    for (int s = 1; s < N_SIZES; s++) {
        int64_t n = SIZES[s] + n_special;
        float *x = falloc(ctx, n), *y = falloc(ctx, n), *dy = falloc(ctx, n);
        float *dx = falloc(ctx, n);
        double *ref = malloc(sizeof(double) * (size_t)n);
        rand_fill(x, n, -6, 6, 11 + s);
        memcpy(x, special, sizeof special);
        rand_fill(dy, n, -1, 1, 12 + s);
        for (int a = 0; a < 5; a++) {
            mltk_act act = ACTS[a];
            float alpha = act == MLTK_ACT_LEAKY_RELU ? 0.1f : 0.0f;
            for (int64_t i = 0; i < n; i++)
                ref[i] = ref_act(act, alpha, x[i]);
            ck_assert_int_eq(bi->act_forward(ctx, act, alpha, y, x, n), MLTK_OK);
            expect_close(y, ref, n, 4e-6, 1e-37, "act_forward");

            /* backward from both x and y, from y only, from x only */
            for (int64_t i = 0; i < n; i++)
                ref[i] = (double)dy[i] * ref_dact(act, alpha, x[i]);
            /* from the float y, sigmoid/tanh derivatives are y(1-y) and
             * 1-y^2: with y within 2 ulp (2^-23 near 1) these carry an
             * absolute error up to 4 * 2^-23 * |dy| <= 5e-7 */
            double atol = act == MLTK_ACT_SIGMOID || act == MLTK_ACT_TANH ? 5e-7 : 0;
            ck_assert_int_eq(bi->act_backward(ctx, act, alpha, dx, dy, x, y, n), MLTK_OK);
            expect_close(dx, ref, n, 1e-5, atol, "act_backward(x, y)");
            ck_assert_int_eq(bi->act_backward(ctx, act, alpha, dx, dy, NULL, y, n), MLTK_OK);
            expect_close(dx, ref, n, 1e-5, atol, "act_backward(y)");
            ck_assert_int_eq(bi->act_backward(ctx, act, alpha, dx, dy, x, NULL, n), MLTK_OK);
            expect_close(dx, ref, n, 1e-5, atol, "act_backward(x)");
            /* in place: dx == dy */
            memcpy(dx, dy, sizeof(float) * (size_t)n);
            ck_assert_int_eq(bi->act_backward(ctx, act, alpha, dx, dx, x, y, n), MLTK_OK);
            expect_close(dx, ref, n, 1e-5, atol, "act_backward in place");
        }
        /* leaky relu with a negative slope needs x, which it prefers */
        for (int64_t i = 0; i < n; i++)
            ref[i] = (double)dy[i] * ref_dact(MLTK_ACT_LEAKY_RELU, -0.5, x[i]);
        ck_assert_int_eq(bi->act_forward(ctx, MLTK_ACT_LEAKY_RELU, -0.5f, y, x, n), MLTK_OK);
        ck_assert_int_eq(bi->act_backward(ctx, MLTK_ACT_LEAKY_RELU, -0.5f, dx, dy, x, y, n),
                         MLTK_OK);
        expect_close(dx, ref, n, 1e-6, 0, "leaky_relu(-0.5) backward");

        /* forward in place */
        for (int64_t i = 0; i < n; i++)
            ref[i] = ref_act(MLTK_ACT_TANH, 0, x[i]);
        ck_assert_int_eq(bi->act_forward(ctx, MLTK_ACT_TANH, 0, x, x, n), MLTK_OK);
        expect_close(x, ref, n, 4e-6, 1e-37, "tanh in place");

        free(ref);
        bi->free(ctx, x);
        bi->free(ctx, y);
        bi->free(ctx, dy);
        bi->free(ctx, dx);
    }
    /* NaN propagates through relu (so the trainer can detect it) */
    float nan_in[1] = { NAN }, nan_out[1] = { 0 };
    ck_assert_int_eq(bi->act_forward(ctx, MLTK_ACT_RELU, 0, nan_out, nan_in, 1), MLTK_OK);
    ck_assert(isnan(nan_out[0]));
    float v[4] = { 0 };
    ck_assert_int_eq(bi->act_forward(ctx, (mltk_act)42, 0, v, v, 4), MLTK_ERR_INVALID);
    ck_assert_int_eq(bi->act_backward(ctx, MLTK_ACT_RELU, 0, v, v, NULL, NULL, 4),
                     MLTK_ERR_INVALID);
    bi->destroy(ctx);
}
END_TEST

/* ---- linear algebra ----------------------------------------------------- */

START_TEST(test_gemm)
{
    static const int64_t dims[] = { 1, 7, 33, 130 };
    void *ctx = ctx_open(_i);
    int64_t maxd = 130, pad = 5;
    float *A = falloc(ctx, maxd * (maxd + pad));
    float *B = falloc(ctx, maxd * (maxd + pad));
    float *C = falloc(ctx, maxd * (maxd + pad));
    float *C0 = malloc(sizeof(float) * (size_t)(maxd * (maxd + pad)));
    double *ref = malloc(sizeof(double) * (size_t)(maxd * maxd));
    double *bound = malloc(sizeof(double) * (size_t)(maxd * maxd));
    int cases = 0;

    for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
    for (int im = 0; im < 4; im++)
    for (int in = 0; in < 4; in++)
    for (int ik = 0; ik < 4; ik++) {
        int64_t M = dims[im], N = dims[in], K = dims[ik];
        /* stored shapes: A (M,K) or (K,M); B (K,N) or (N,K); padded rows */
        int64_t arows = ta ? K : M, acols = ta ? M : K;
        int64_t brows = tb ? N : K, bcols = tb ? K : N;
        int64_t lda = acols + 3, ldb = bcols + 1, ldc = N + pad;
        float alpha = (cases % 3 == 0) ? 1.0f : -0.5f;
        float beta = (cases % 2 == 0) ? 0.0f : 0.75f;
        rand_fill(A, arows * lda, -1, 1, 1000 + cases);
        rand_fill(B, brows * ldb, -1, 1, 2000 + cases);
        rand_fill(C, M * ldc, -1, 1, 3000 + cases);
        if (beta == 0.0f)  /* must not be read */
            for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++)
                    C[i * ldc + j] = NAN;
        memcpy(C0, C, sizeof(float) * (size_t)(M * ldc));

        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0, sa = 0;
                for (int64_t k = 0; k < K; k++) {
                    double a = ta ? A[k * lda + i] : A[i * lda + k];
                    double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                    s += a * b;
                    sa += fabs(a * b);
                }
                double c0 = beta == 0.0f ? 0.0 : C0[i * ldc + j];
                ref[i * N + j] = alpha * s + beta * c0;
                bound[i * N + j] = fabs(alpha) * sa + fabs(beta * c0);
            }
        ck_assert_int_eq(bi->gemm(ctx, ta, tb, M, N, K, alpha, A, lda, B, ldb,
                                  beta, C, ldc), MLTK_OK);
        /* float sum of K products: error below (K + 2) 2^-24 of the sum of
         * magnitudes (a loose version of the classic gamma_K bound) */
        double eps = (double)(K + 2) * 6e-8;
        for (int64_t i = 0; i < M; i++) {
            for (int64_t j = 0; j < N; j++) {
                double d = fabs(C[i * ldc + j] - ref[i * N + j]);
                EXPECT(d <= eps * bound[i * N + j] + 1e-30,
                              "gemm ta=%d tb=%d M=%lld N=%lld K=%lld: C[%lld,%lld] = %.9g, "
                              "expected %.9g", ta, tb, (long long)M, (long long)N,
                              (long long)K, (long long)i, (long long)j,
                              (double)C[i * ldc + j], ref[i * N + j]);
            }
            /* padding between rows is untouched */
            for (int64_t j = N; j < ldc; j++)
                EXPECT(memcmp(&C[i * ldc + j], &C0[i * ldc + j], sizeof(float)) == 0,
                              "gemm wrote C padding at [%lld,%lld]", (long long)i, (long long)j);
        }
        cases++;
    }
    ck_assert_int_eq(cases, 2 * 2 * 4 * 4 * 4);

    /* K == 0: C = beta C */
    rand_fill(C, 4 * 6, -1, 1, 5);
    memcpy(C0, C, sizeof(float) * 24);
    ck_assert_int_eq(bi->gemm(ctx, 0, 0, 4, 6, 0, 1.0f, A, 1, B, 6, 0.5f, C, 6), MLTK_OK);
    for (int i = 0; i < 24; i++)
        ck_assert_float_eq(C[i], 0.5f * C0[i]);
    for (int i = 0; i < 24; i++)
        C[i] = NAN;
    ck_assert_int_eq(bi->gemm(ctx, 0, 0, 4, 6, 0, 1.0f, A, 1, B, 6, 0.0f, C, 6), MLTK_OK);
    for (int i = 0; i < 24; i++)
        ck_assert_float_eq(C[i], 0.0f);
    /* empty and invalid shapes */
    ck_assert_int_eq(bi->gemm(ctx, 0, 0, 0, 6, 3, 1.0f, A, 3, B, 6, 0.0f, C, 6), MLTK_OK);
    ck_assert_int_eq(bi->gemm(ctx, 0, 0, -1, 6, 3, 1.0f, A, 3, B, 6, 0.0f, C, 6),
                     MLTK_ERR_INVALID);
    ck_assert_int_eq(bi->gemm(ctx, 0, 0, 4, 6, 3, 1.0f, A, 2, B, 6, 0.0f, C, 6),
                     MLTK_ERR_INVALID);  /* lda < K */
    ck_assert_int_eq(bi->gemm(ctx, 1, 0, 4, 6, 3, 1.0f, A, 3, B, 6, 0.0f, C, 6),
                     MLTK_ERR_INVALID);  /* lda < M for A^T */
    ck_assert_int_eq(bi->gemm(ctx, 0, 1, 4, 6, 3, 1.0f, A, 3, B, 2, 0.0f, C, 6),
                     MLTK_ERR_INVALID);  /* ldb < K for B^T */
    ck_assert_int_eq(bi->gemm(ctx, 0, 0, 4, 6, 3, 1.0f, A, 3, B, 6, 0.0f, C, 5),
                     MLTK_ERR_INVALID);  /* ldc < N */
    ck_assert_int_eq(bi->gemm(ctx, 0, 0, 4, 6, 3, 1.0f, NULL, 3, B, 6, 0.0f, C, 6),
                     MLTK_ERR_INVALID);

    free(C0);
    free(ref);
    free(bound);
    bi->free(ctx, A);
    bi->free(ctx, B);
    bi->free(ctx, C);
    bi->destroy(ctx);
}
END_TEST

START_TEST(test_bias_act)
{
    static const int64_t shapes[][2] = { { 1, 1 }, { 7, 33 }, { 33, 7 }, { 130, 10 },
                                         { 128, 256 }, { 300, 257 }, { 1, 70001 } };
    void *ctx = ctx_open(_i);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t rows = shapes[s][0], cols = shapes[s][1], n = rows * cols;
        float *y = falloc(ctx, n), *y0 = falloc(ctx, n), *b = falloc(ctx, cols);
        double *ref = malloc(sizeof(double) * (size_t)n);
        rand_fill(y0, n, -4, 4, 50 + s);
        rand_fill(b, cols, -1, 1, 60 + s);
        for (int a = 0; a < 5; a++) {
            for (int with_b = 0; with_b < 2; with_b++) {
                mltk_act act = ACTS[a];
                float alpha = 0.2f;
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t c = 0; c < cols; c++) {
                        /* the sum is rounded to float before the activation */
                        float v = y0[r * cols + c] + (with_b ? b[c] : 0.0f);
                        ref[r * cols + c] = ref_act(act, alpha, v);
                    }
                memcpy(y, y0, sizeof(float) * (size_t)n);
                ck_assert_int_eq(bi->bias_act(ctx, y, with_b ? b : NULL, rows, cols,
                                              act, alpha), MLTK_OK);
                expect_close(y, ref, n, 4e-6, 1e-37, "bias_act");
            }
        }
        free(ref);
        bi->free(ctx, y);
        bi->free(ctx, y0);
        bi->free(ctx, b);
    }
    float v[2] = { 0 };
    ck_assert_int_eq(bi->bias_act(ctx, v, v, -1, 2, MLTK_ACT_RELU, 0), MLTK_ERR_INVALID);
    ck_assert_int_eq(bi->bias_act(ctx, v, v, 1, 2, (mltk_act)-1, 0), MLTK_ERR_INVALID);
    bi->destroy(ctx);
}
END_TEST

START_TEST(test_sum_rows)
{
    static const int64_t shapes[][2] = { { 0, 5 }, { 1, 1 }, { 7, 33 }, { 33, 7 },
                                         { 130, 10 }, { 128, 256 }, { 257, 300 },
                                         { 5000, 3 }, { 3, 5000 } };
    void *ctx = ctx_open(_i);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t rows = shapes[s][0], cols = shapes[s][1];
        float *x = falloc(ctx, rows * cols), *out = falloc(ctx, cols);
        double *ref = malloc(sizeof(double) * (size_t)cols);
        rand_fill(x, rows * cols, -1, 1, 70 + s);
        for (int pass = 0; pass < 2; pass++) {
            float beta = pass ? 0.5f : 0.0f;
            for (int64_t c = 0; c < cols; c++)
                out[c] = pass ? (float)c / 7.0f : NAN;
            for (int64_t c = 0; c < cols; c++) {
                double acc = 0;
                for (int64_t r = 0; r < rows; r++)
                    acc += x[r * cols + c];
                ref[c] = acc + (pass ? 0.5 * (double)out[c] : 0.0);
            }
            ck_assert_int_eq(bi->sum_rows(ctx, out, x, rows, cols, beta), MLTK_OK);
            expect_close(out, ref, cols, 1e-6, 1e-6, "sum_rows");
        }
        free(ref);
        bi->free(ctx, x);
        bi->free(ctx, out);
    }
    float v[2] = { 0 };
    ck_assert_int_eq(bi->sum_rows(ctx, v, v, 1, -2, 0), MLTK_ERR_INVALID);
    bi->destroy(ctx);
}
END_TEST

/* ---- reductions --------------------------------------------------------- */

START_TEST(test_sum_sumsq)
{
    void *ctx = ctx_open(_i);
    float out = NAN;
    for (int s = 0; s < N_SIZES; s++) {
        int64_t n = SIZES[s];
        float *x = falloc(ctx, n);
        rand_fill(x, n, -1, 3, 80 + s);
        double s1 = 0, s2 = 0;
        for (int64_t i = 0; i < n; i++) {
            s1 += x[i];
            s2 += (double)x[i] * x[i];
        }
        /* accumulated in double: only the final rounding to float remains */
        ck_assert_int_eq(bi->sum(ctx, &out, x, n), MLTK_OK);
        expect_close(&out, &s1, 1, 1.2e-7, 1e-30, "sum");
        ck_assert_int_eq(bi->sumsq(ctx, &out, x, n), MLTK_OK);
        expect_close(&out, &s2, 1, 1.2e-7, 1e-30, "sumsq");
        bi->free(ctx, x);
    }
    ck_assert_int_eq(bi->sum(ctx, &out, &out, -1), MLTK_ERR_INVALID);
    ck_assert_int_eq(bi->sumsq(ctx, NULL, &out, 1), MLTK_ERR_INVALID);
    bi->destroy(ctx);
}
END_TEST

/* ---- losses and metrics ------------------------------------------------- */

static void ref_xent(double *loss, double *dl, const float *x, const int32_t *y,
                     int64_t N, int64_t C, double scale)
{
    double total = 0;
    for (int64_t r = 0; r < N; r++) {
        const float *row = x + r * C;
        double m = row[0];
        for (int64_t c = 1; c < C; c++)
            m = row[c] > m ? row[c] : m;
        double s = 0;
        for (int64_t c = 0; c < C; c++)
            s += exp(row[c] - m);
        total += log(s) + m - row[y[r]];
        for (int64_t c = 0; c < C; c++)
            dl[r * C + c] = scale * (exp(row[c] - m) / s - (c == y[r])) / (double)N;
    }
    *loss = total / (double)N;
}

START_TEST(test_softmax_xent)
{
    static const int64_t shapes[][2] = { { 1, 1 }, { 1, 2 }, { 7, 10 }, { 33, 3 },
                                         { 128, 10 }, { 130, 257 }, { 1000, 100 },
                                         { 3, 1000 } };
    void *ctx = ctx_open(_i);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t N = shapes[s][0], C = shapes[s][1];
        float *x = falloc(ctx, N * C), *dl = falloc(ctx, N * C);
        int32_t *y = malloc(sizeof(int32_t) * (size_t)N);
        double *rdl = malloc(sizeof(double) * (size_t)(N * C)), rloss;
        rand_fill(x, N * C, -8, 8, 90 + s);
        for (int64_t r = 0; r < N; r++)
            y[r] = (int32_t)((r * 7 + s) % C);
        for (int pass = 0; pass < 2; pass++) {
            float scale = pass ? 2.5f : 1.0f, loss = NAN, loss2 = NAN;
            ref_xent(&rloss, rdl, x, y, N, C, scale);
            ck_assert_int_eq(bi->softmax_xent(ctx, &loss, dl, x, y, N, C, scale), MLTK_OK);
            expect_close(&loss, &rloss, 1, 1e-5, 1e-6, "softmax_xent loss");
            /* p - onehot, each term within a few ulp of p, scaled by scale/N */
            expect_close(dl, rdl, N * C, 1e-5, 1e-7 * scale / (double)N,
                         "softmax_xent dlogits");
            /* loss only */
            ck_assert_int_eq(bi->softmax_xent(ctx, &loss2, NULL, x, y, N, C, scale), MLTK_OK);
            ck_assert_float_eq(loss, loss2);
        }
        free(y);
        free(rdl);
        bi->free(ctx, x);
        bi->free(ctx, dl);
    }

    /* large logits: no overflow (max subtraction) */
    float big[3 * 5] = { 1000, 999.5f, -1000, 0, 1000,
                         -1000, -1000, -1000, -999, -1001,
                         88, 89, 90, 1e4f, -1e4f };
    int32_t ybig[3] = { 1, 3, 4 };
    float dl[15], loss;
    double rl, rd[15];
    ref_xent(&rl, rd, big, ybig, 3, 5, 1.0);
    ck_assert_int_eq(bi->softmax_xent(ctx, &loss, dl, big, ybig, 3, 5, 1.0f), MLTK_OK);
    ck_assert(isfinite(loss));
    expect_close(&loss, &rl, 1, 1e-5, 1e-5, "large-logit loss");
    expect_close(dl, rd, 15, 1e-5, 1e-7, "large-logit dlogits");

    /* labels outside [0, C) are a data error */
    int32_t bad[3] = { 0, 5, 1 };
    ck_assert_int_eq(bi->softmax_xent(ctx, &loss, dl, big, bad, 3, 5, 1.0f), MLTK_ERR_DATA);
    bad[1] = -1;
    ck_assert_int_eq(bi->softmax_xent(ctx, &loss, NULL, big, bad, 3, 5, 1.0f), MLTK_ERR_DATA);
    ck_assert_int_eq(bi->softmax_xent(ctx, &loss, dl, big, ybig, -3, 5, 1.0f), MLTK_ERR_INVALID);
    bi->destroy(ctx);
}
END_TEST

START_TEST(test_count_correct)
{
    void *ctx = ctx_open(_i);
    /* ties go to the first maximum */
    float x[5 * 3] = { 1, 3, 3,      /* argmax 1 */
                       2, 2, 2,      /* argmax 0 */
                       -1, -5, -0.5f,/* argmax 2 */
                       7, 7, 8,      /* argmax 2 */
                       0, 4, 4 };    /* argmax 1 */
    int32_t y[5] = { 1, 1, 2, 0, 2 };
    float correct = -1;
    ck_assert_int_eq(bi->count_correct(ctx, &correct, x, y, 5, 3), MLTK_OK);
    ck_assert_float_eq(correct, 2.0f);
    ck_assert_int_eq(bi->count_correct(ctx, &correct, x, y, 0, 3), MLTK_OK);
    ck_assert_float_eq(correct, 0.0f);

    /* large: enough rows to split across threads */
    int64_t N = 20011, C = 10;
    float *big = falloc(ctx, N * C);
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)N);
    rand_fill(big, N * C, -1, 1, 123);
    int64_t expect = 0;
    for (int64_t r = 0; r < N; r++) {
        int64_t best = 0;
        for (int64_t c = 1; c < C; c++)
            if (big[r * C + c] > big[r * C + best])
                best = c;
        lab[r] = (int32_t)((r % 3 == 0) ? best : (best + 1) % C);
        expect += lab[r] == best;
    }
    ck_assert_int_eq(bi->count_correct(ctx, &correct, big, lab, N, C), MLTK_OK);
    ck_assert_float_eq(correct, (float)expect);
    free(lab);
    bi->free(ctx, big);
    bi->destroy(ctx);
}
END_TEST

/* ---- data movement ------------------------------------------------------ */

START_TEST(test_gather_rows)
{
    void *ctx = ctx_open(_i);
    static const size_t row_bytes[] = { 1, 12, 4096 };
    for (size_t s = 0; s < 3; s++) {
        int64_t rows = 301, n = 517;
        size_t rb = row_bytes[s];
        unsigned char *src = NULL, *dst = NULL;
        int32_t *idx = NULL;
        ck_assert_int_eq(bi->alloc(ctx, rb * (size_t)rows, (void **)&src), MLTK_OK);
        ck_assert_int_eq(bi->alloc(ctx, rb * (size_t)n, (void **)&dst), MLTK_OK);
        ck_assert_int_eq(bi->alloc(ctx, sizeof(int32_t) * (size_t)n, (void **)&idx), MLTK_OK);
        for (size_t i = 0; i < rb * (size_t)rows; i++)
            src[i] = (unsigned char)(i * 31 + i / 7);
        for (int64_t i = 0; i < n; i++)
            idx[i] = (int32_t)((i * 137 + 11) % rows);  /* repeats, out of order */
        ck_assert_int_eq(bi->gather_rows(ctx, dst, src, idx, n, rb), MLTK_OK);
        for (int64_t i = 0; i < n; i++)
            EXPECT(memcmp(dst + (size_t)i * rb, src + (size_t)idx[i] * rb, rb) == 0,
                          "gather_rows row %lld", (long long)i);
        idx[5] = -2;
        ck_assert_int_eq(bi->gather_rows(ctx, dst, src, idx, n, rb), MLTK_ERR_INVALID);
        bi->free(ctx, src);
        bi->free(ctx, dst);
        bi->free(ctx, idx);
    }
    ck_assert_int_eq(bi->gather_rows(ctx, NULL, NULL, NULL, 0, 4), MLTK_OK);
    ck_assert_int_eq(bi->gather_rows(ctx, NULL, NULL, NULL, -1, 4), MLTK_ERR_INVALID);
    bi->destroy(ctx);
}
END_TEST

/* torchvision's order, literally: pad the image with zeros, crop an H x W
 * window at (top, left), mirror the crop */
static void ref_augment(float *y, const float *x, int64_t C, int64_t H, int64_t W,
                        int64_t top, int64_t left, int flip, int64_t pad)
{
    int64_t HP = H + 2 * pad, WP = W + 2 * pad;
    float *padded = calloc((size_t)(C * HP * WP), sizeof(float));
    ck_assert_ptr_nonnull(padded);
    for (int64_t c = 0; c < C; c++)
        for (int64_t h = 0; h < H; h++)
            memcpy(padded + (c * HP + h + pad) * WP + pad, x + (c * H + h) * W,
                   (size_t)W * sizeof(float));
    for (int64_t c = 0; c < C; c++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++) {
                float v = padded[(c * HP + h + top) * WP + w + left];
                y[(c * H + h) * W + (flip ? W - 1 - w : w)] = v;
            }
    free(padded);
}

START_TEST(test_gather_augment)
{
    void *ctx = ctx_open(_i);
    ck_assert_ptr_nonnull(bi->gather_augment_2d);
    const int64_t n = 37, rows = 2000, C = 3, H = 5, W = 7, per = C * H * W;
    const uint64_t seed = 0x1234ABCDull, offset = 4 * 1000;
    float *x = falloc(ctx, n * per), *y = falloc(ctx, rows * per);
    float *ref = malloc(sizeof(float) * (size_t)per);
    int32_t *idx = NULL;
    ck_assert_ptr_nonnull(ref);
    ck_assert_int_eq(bi->alloc(ctx, sizeof(int32_t) * (size_t)rows, (void **)&idx), MLTK_OK);
    for (int64_t i = 0; i < n * per; i++)
        x[i] = (float)(i + 1);  /* nonzero, so a zero is padding */
    for (int64_t i = 0; i < rows; i++)
        idx[i] = (int32_t)((i * 13 + 5) % n);

    /* pad 2 with flips: every row as the reference computes it from the
     * documented draws; every shift and both flips occur */
    const int64_t pad = 2;
    ck_assert_int_eq(bi->gather_augment_2d(ctx, y, x, idx, rows, C, H, W, pad, 1, seed, offset),
                     MLTK_OK);
    int64_t seen[5][5] = { { 0 } }, flips = 0;
    for (int64_t i = 0; i < rows; i++) {
        uint64_t c0 = offset + 4 * (uint64_t)i;
        int64_t top = (int64_t)((double)mltk_rng_u01(seed, c0) * 5.0);
        int64_t left = (int64_t)((double)mltk_rng_u01(seed, c0 + 1) * 5.0);
        int flip = mltk_rng_u01(seed, c0 + 2) < 0.5f;
        seen[top][left]++;
        flips += flip;
        ref_augment(ref, x + idx[i] * per, C, H, W, top, left, flip, pad);
        EXPECT(memcmp(ref, y + i * per, sizeof(float) * (size_t)per) == 0,
               "augmented row %lld (top %lld left %lld flip %d)", (long long)i,
               (long long)top, (long long)left, flip);
    }
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 5; b++)
            EXPECT(seen[a][b] > 40, "shift (%d, %d) drawn %lld times of %lld", a - 2, b - 2,
                   (long long)seen[a][b], (long long)rows);
    EXPECT(flips > rows * 45 / 100 && flips < rows * 55 / 100, "%lld flips in %lld rows",
           (long long)flips, (long long)rows);

    /* no shift, no flip: a plain gather */
    ck_assert_int_eq(bi->gather_augment_2d(ctx, y, x, idx, rows, C, H, W, 0, 0, seed, 0),
                     MLTK_OK);
    for (int64_t i = 0; i < rows; i++)
        EXPECT(memcmp(y + i * per, x + idx[i] * per, sizeof(float) * (size_t)per) == 0,
               "plain row %lld", (long long)i);

    /* shifts wider than the image: zeros where nothing moves in */
    for (uint64_t off = 0; off < 400; off += 4) {
        ck_assert_int_eq(bi->gather_augment_2d(ctx, y, x, idx, 1, C, H, W, 9, 1, seed, off),
                         MLTK_OK);
        int64_t top = (int64_t)((double)mltk_rng_u01(seed, off) * 19.0);
        int64_t left = (int64_t)((double)mltk_rng_u01(seed, off + 1) * 19.0);
        int flip = mltk_rng_u01(seed, off + 2) < 0.5f;
        ref_augment(ref, x + idx[0] * per, C, H, W, top, left, flip, 9);
        EXPECT(memcmp(ref, y, sizeof(float) * (size_t)per) == 0, "pad 9, offset %llu",
               (unsigned long long)off);
    }
    idx[3] = -1;
    ck_assert_int_eq(bi->gather_augment_2d(ctx, y, x, idx, rows, C, H, W, 1, 1, seed, 0),
                     MLTK_ERR_INVALID);
    ck_assert_int_eq(bi->gather_augment_2d(ctx, y, x, idx, 0, C, H, W, 1, 1, seed, 0), MLTK_OK);
    free(ref);
    bi->free(ctx, idx);
    bi->free(ctx, x);
    bi->free(ctx, y);
    bi->destroy(ctx);
}
END_TEST

/* ---- random numbers ----------------------------------------------------- */

START_TEST(test_rng)
{
    void *ctx = ctx_open(_i);
    const int64_t n = 100003;
    const uint64_t seed = 0x123456789abcdefull;
    /* an offset whose counter block crosses the 32-bit boundary */
    const uint64_t offsets[] = { 0, 3, 0xfffffffdull * 4 + 1 };
    float *x = falloc(ctx, n), *x2 = falloc(ctx, n);
    for (int k = 0; k < 3; k++) {
        uint64_t off = offsets[k];
        /* uniform in [0,1): exactly the rng.h values */
        ck_assert_int_eq(bi->rng_uniform(ctx, x, n, 0.0f, 1.0f, seed, off), MLTK_OK);
        for (int64_t i = 0; i < n; i++) {
            float u = mltk_rng_u01(seed, off + (uint64_t)i);
            EXPECT(x[i] == u, "uniform[%lld] = %.9g, rng.h %.9g",
                   (long long)i, (double)x[i], (double)u);
            EXPECT(x[i] >= 0.0f && x[i] < 1.0f, "uniform[%lld] = %.9g", (long long)i,
                   (double)x[i]);
        }
        /* scaled: lo + (hi - lo) u, in [lo, hi) */
        ck_assert_int_eq(bi->rng_uniform(ctx, x, n, -3.0f, 5.0f, seed, off), MLTK_OK);
        for (int64_t i = 0; i < n; i++) {
            float u = mltk_rng_u01(seed, off + (uint64_t)i);
            EXPECT(fabsf(x[i] - (-3.0f + 8.0f * u)) <= 1e-6f && x[i] >= -3.0f && x[i] < 5.0f,
                   "uniform(-3,5)[%lld] = %.9g, u = %.9g", (long long)i, (double)x[i],
                   (double)u);
        }
        /* normal: exactly the rng.h values */
        ck_assert_int_eq(bi->rng_normal(ctx, x, n, 0.0f, 1.0f, seed, off), MLTK_OK);
        for (int64_t i = 0; i < n; i++) {
            float z = mltk_rng_normal01(seed, off + (uint64_t)i);
            EXPECT(x[i] == z, "normal[%lld] = %.9g, rng.h %.9g",
                   (long long)i, (double)x[i], (double)z);
        }
        /* one call equals two calls split at an odd element */
        ck_assert_int_eq(bi->rng_normal(ctx, x, n, 0.5f, 2.0f, seed, off), MLTK_OK);
        ck_assert_int_eq(bi->rng_normal(ctx, x2, 5, 0.5f, 2.0f, seed, off), MLTK_OK);
        ck_assert_int_eq(bi->rng_normal(ctx, x2 + 5, n - 5, 0.5f, 2.0f, seed, off + 5), MLTK_OK);
        ck_assert_int_eq(memcmp(x, x2, sizeof(float) * (size_t)n), 0);
        for (int64_t i = 0; i < 100; i++)
            ck_assert_float_eq_tol(x[i], 0.5f + 2.0f * mltk_rng_normal01(seed, off + (uint64_t)i),
                                   1e-5f);
    }
    /* moments of 1e5 standard normals: the mean's standard error is 0.0032,
     * the variance's 0.0045; 5 sigma bounds */
    ck_assert_int_eq(bi->rng_normal(ctx, x, n, 0.0f, 1.0f, 42, 0), MLTK_OK);
    double m = 0, v = 0;
    for (int64_t i = 0; i < n; i++)
        m += x[i];
    m /= (double)n;
    for (int64_t i = 0; i < n; i++)
        v += (x[i] - m) * (x[i] - m);
    v /= (double)(n - 1);
    ck_assert_msg(fabs(m) < 0.016, "normal mean %g", m);
    ck_assert_msg(fabs(v - 1.0) < 0.023, "normal variance %g", v);
    /* and of uniforms: mean 1/2, variance 1/12 */
    ck_assert_int_eq(bi->rng_uniform(ctx, x, n, 0.0f, 1.0f, 42, 0), MLTK_OK);
    m = 0;
    v = 0;
    for (int64_t i = 0; i < n; i++)
        m += x[i];
    m /= (double)n;
    for (int64_t i = 0; i < n; i++)
        v += (x[i] - m) * (x[i] - m);
    v /= (double)(n - 1);
    ck_assert_msg(fabs(m - 0.5) < 0.0046, "uniform mean %g", m);
    ck_assert_msg(fabs(v - 1.0 / 12) < 0.0015, "uniform variance %g", v);
    /* another seed gives other numbers */
    ck_assert_int_eq(bi->rng_uniform(ctx, x2, n, 0.0f, 1.0f, 43, 0), MLTK_OK);
    ck_assert_int_ne(memcmp(x, x2, sizeof(float) * (size_t)n), 0);
    ck_assert_int_eq(bi->rng_uniform(ctx, x, -1, 0, 1, 1, 0), MLTK_ERR_INVALID);
    bi->free(ctx, x);
    bi->free(ctx, x2);
    bi->destroy(ctx);
}
END_TEST

/* ---- optimizer updates -------------------------------------------------- */

/* torch.optim.SGD in double */
static void ref_sgd(double *p, const float *g, double *buf, int64_t n, double lr,
                    double mu, double damp, double wd, int nesterov, int64_t t)
{
    for (int64_t i = 0; i < n; i++) {
        double d = g[i] + wd * p[i];
        if (mu != 0) {
            buf[i] = t == 1 ? d : mu * buf[i] + (1 - damp) * d;
            d = nesterov ? d + mu * buf[i] : buf[i];
        }
        p[i] -= lr * d;
    }
}

/* torch.optim.Adam / AdamW in double */
static void ref_adam(double *p, const float *g, double *m, double *v, int64_t n,
                     double lr, double b1, double b2, double eps, double wd,
                     int decoupled, int64_t t)
{
    double bc1 = 1 - pow(b1, (double)t), bc2 = 1 - pow(b2, (double)t);
    for (int64_t i = 0; i < n; i++) {
        double gi = g[i];
        if (decoupled)
            p[i] *= 1 - lr * wd;
        else
            gi += wd * p[i];
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        p[i] -= lr * (m[i] / bc1) / (sqrt(v[i] / bc2) + eps);
    }
}

/* The torch table: 8 parameters, 3 steps, each configuration.  Float
 * rounding of a few operations per step: within 2e-6 of values near 1.
 * Moments: m = b1 m + (1 - b1) g nearly cancels at times, so its error is
 * bounded by the terms (|g| < 1: 5e-8), not by m.  Hyperparameters reach
 * the op as float, and 1 - 0.999f differs from torch's 1 - 0.999 by
 * 1.3e-5 relative: v carries that (it cancels in v / (1 - b2^t), so p
 * does not). */
START_TEST(test_optim_torch)
{
    void *ctx = ctx_open(_i);
    float *p = falloc(ctx, OREF_N), *g = falloc(ctx, OREF_N);
    float *m = falloc(ctx, OREF_N), *v = falloc(ctx, OREF_N);
    char what[64];
    for (size_t c = 0; c < sizeof oref_sgd / sizeof oref_sgd[0]; c++) {
        const struct oref_sgd *r = &oref_sgd[c];
        memcpy(p, oref_p0, sizeof oref_p0);
        memset(m, 0, sizeof(float) * OREF_N);
        for (int t = 1; t <= OREF_STEPS; t++) {
            double rp[OREF_N], rb[OREF_N];
            memcpy(g, oref_g[t - 1], sizeof(float) * OREF_N);
            ck_assert_int_eq(bi->sgd_step(ctx, p, g, m, OREF_N, r->lr, r->momentum,
                                          r->dampening, r->weight_decay, r->nesterov, t, NULL),
                             MLTK_OK);
            for (int i = 0; i < OREF_N; i++) {
                rp[i] = r->p[t - 1][i];
                rb[i] = r->buf[t - 1][i];
            }
            snprintf(what, sizeof what, "torch sgd #%zu step %d p", c, t);
            expect_close(p, rp, OREF_N, 2e-6, 2e-7, what);
            if (r->momentum != 0.0f) {
                snprintf(what, sizeof what, "torch sgd #%zu step %d buf", c, t);
                expect_close(m, rb, OREF_N, 2e-6, 2e-7, what);
            }
        }
    }
    for (size_t c = 0; c < sizeof oref_adam / sizeof oref_adam[0]; c++) {
        const struct oref_adam *r = &oref_adam[c];
        memcpy(p, oref_p0, sizeof oref_p0);
        memset(m, 0, sizeof(float) * OREF_N);
        memset(v, 0, sizeof(float) * OREF_N);
        for (int t = 1; t <= OREF_STEPS; t++) {
            double rp[OREF_N], rm[OREF_N], rv[OREF_N];
            memcpy(g, oref_g[t - 1], sizeof(float) * OREF_N);
            ck_assert_int_eq(bi->adam_step(ctx, p, g, m, v, OREF_N, r->lr, r->beta1,
                                           r->beta2, r->eps, r->weight_decay,
                                           r->decoupled, t, NULL), MLTK_OK);
            for (int i = 0; i < OREF_N; i++) {
                rp[i] = r->p[t - 1][i];
                rm[i] = r->m[t - 1][i];
                rv[i] = r->v[t - 1][i];
            }
            snprintf(what, sizeof what, "torch adam #%zu step %d p", c, t);
            expect_close(p, rp, OREF_N, 2e-6, 2e-7, what);
            snprintf(what, sizeof what, "torch adam #%zu step %d m", c, t);
            expect_close(m, rm, OREF_N, 1e-5, 5e-8, what);
            snprintf(what, sizeof what, "torch adam #%zu step %d v", c, t);
            expect_close(v, rv, OREF_N, 3e-5, 1e-10, what);
        }
    }
    bi->free(ctx, p);
    bi->free(ctx, g);
    bi->free(ctx, m);
    bi->free(ctx, v);
    bi->destroy(ctx);
}
END_TEST

/* The same configurations over a long buffer (threads, vector tails)
 * against the double-precision formulas, fed the same float
 * hyperparameters.  Tolerances as above (moments bounded by their terms). */
START_TEST(test_optim_formulas)
{
    const int64_t n = 100003;
    void *ctx = ctx_open(_i);
    float *p = falloc(ctx, n), *g = falloc(ctx, n), *m = falloc(ctx, n), *v = falloc(ctx, n);
    double *rp = malloc(sizeof(double) * (size_t)n), *rm = malloc(sizeof(double) * (size_t)n);
    double *rv = malloc(sizeof(double) * (size_t)n);
    char what[64];
    for (size_t c = 0; c < sizeof oref_sgd / sizeof oref_sgd[0]; c++) {
        const struct oref_sgd *r = &oref_sgd[c];
        rand_fill(p, n, -2, 2, 300 + c);
        for (int64_t i = 0; i < n; i++) {
            rp[i] = p[i];
            rm[i] = 0;
            m[i] = 0;
        }
        for (int t = 1; t <= 3; t++) {
            rand_fill(g, n, -1, 1, 400 + 10 * c + t);
            ref_sgd(rp, g, rm, n, r->lr, r->momentum, r->dampening, r->weight_decay,
                    r->nesterov, t);
            ck_assert_int_eq(bi->sgd_step(ctx, p, g, m, n, r->lr, r->momentum,
                                          r->dampening, r->weight_decay, r->nesterov, t, NULL),
                             MLTK_OK);
            snprintf(what, sizeof what, "sgd #%zu step %d p", c, t);
            expect_close(p, rp, n, 2e-6, 2e-7, what);
            if (r->momentum != 0.0f) {
                snprintf(what, sizeof what, "sgd #%zu step %d buf", c, t);
                expect_close(m, rm, n, 1e-5, 1e-6, what);
            }
        }
    }
    for (size_t c = 0; c < sizeof oref_adam / sizeof oref_adam[0]; c++) {
        const struct oref_adam *r = &oref_adam[c];
        rand_fill(p, n, -2, 2, 500 + c);
        for (int64_t i = 0; i < n; i++) {
            rp[i] = p[i];
            rm[i] = rv[i] = 0;
            m[i] = v[i] = 0;
        }
        for (int t = 1; t <= 3; t++) {
            rand_fill(g, n, -1, 1, 600 + 10 * c + t);
            /* the reference uses the float hyperparameters the op gets */
            ref_adam(rp, g, rm, rv, n, r->lr, r->beta1, r->beta2, r->eps,
                     r->weight_decay, r->decoupled, t);
            ck_assert_int_eq(bi->adam_step(ctx, p, g, m, v, n, r->lr, r->beta1, r->beta2,
                                           r->eps, r->weight_decay, r->decoupled, t, NULL),
                             MLTK_OK);
            snprintf(what, sizeof what, "adam #%zu step %d p", c, t);
            expect_close(p, rp, n, 2e-6, 2e-7, what);
            snprintf(what, sizeof what, "adam #%zu step %d m", c, t);
            expect_close(m, rm, n, 1e-5, 5e-8, what);
            snprintf(what, sizeof what, "adam #%zu step %d v", c, t);
            expect_close(v, rv, n, 1e-5, 1e-10, what);
        }
    }
    /* t starts at 1 */
    ck_assert_int_eq(bi->sgd_step(ctx, p, g, m, n, 0.1f, 0.9f, 0, 0, 0, 0, NULL), MLTK_ERR_INVALID);
    ck_assert_int_eq(bi->adam_step(ctx, p, g, m, v, n, 0.1f, 0.9f, 0.99f, 1e-8f, 0, 0, 0, NULL),
                     MLTK_ERR_INVALID);
    ck_assert_int_eq(bi->sgd_step(ctx, p, g, NULL, n, 0.1f, 0.9f, 0, 0, 0, 1, NULL), MLTK_ERR_INVALID);
    /* momentum 0 needs no buffer */
    ck_assert_int_eq(bi->sgd_step(ctx, p, g, NULL, n, 0.1f, 0.0f, 0, 0, 0, 1, NULL), MLTK_OK);
    free(rp);
    free(rm);
    free(rv);
    bi->free(ctx, p);
    bi->free(ctx, g);
    bi->free(ctx, m);
    bi->free(ctx, v);
    bi->destroy(ctx);
}
END_TEST

/* ---- determinism -------------------------------------------------------- */

struct run_out {
    float sum, sumsq, loss;
    float *rows, *dl, *c, *act, *p;
};

/* One pass over every op with reductions or BLAS, on a fresh context. */
static void run_all(int threads, struct run_out *o, const float *x, const int32_t *lab,
                    int64_t n, int64_t N, int64_t C)
{
    void *ctx = ctx_open(threads);
    o->rows = malloc(sizeof(float) * (size_t)C);
    o->dl = malloc(sizeof(float) * (size_t)n);
    o->c = malloc(sizeof(float) * 256 * 256);
    o->act = malloc(sizeof(float) * (size_t)n);
    o->p = malloc(sizeof(float) * (size_t)n);
    float *m = calloc((size_t)n, sizeof(float)), *v = calloc((size_t)n, sizeof(float));
    ck_assert_int_eq(bi->sum(ctx, &o->sum, x, n), MLTK_OK);
    ck_assert_int_eq(bi->sumsq(ctx, &o->sumsq, x, n), MLTK_OK);
    ck_assert_int_eq(bi->sum_rows(ctx, o->rows, x, N, C, 0), MLTK_OK);
    ck_assert_int_eq(bi->softmax_xent(ctx, &o->loss, o->dl, x, lab, N, C, 1), MLTK_OK);
    ck_assert_int_eq(bi->gemm(ctx, 0, 1, 256, 256, 512, 1, x, 512, x + 256 * 512, 512, 0,
                              o->c, 256), MLTK_OK);
    memcpy(o->act, x, sizeof(float) * (size_t)n);
    ck_assert_int_eq(bi->bias_act(ctx, o->act, x, N, C, MLTK_ACT_TANH, 0), MLTK_OK);
    memcpy(o->p, x, sizeof(float) * (size_t)n);
    for (int t = 1; t <= 2; t++)
        ck_assert_int_eq(bi->adam_step(ctx, o->p, o->dl, m, v, n, 1e-3f, 0.9f, 0.999f,
                                       1e-8f, 0.01f, 1, t, NULL), MLTK_OK);
    free(m);
    free(v);
    bi->destroy(ctx);
}

static void run_free(struct run_out *o)
{
    free(o->rows);
    free(o->dl);
    free(o->c);
    free(o->act);
    free(o->p);
}

START_TEST(test_repeatable)
{
    const int64_t N = 1024, C = 1000, n = N * C;
    float *x = malloc(sizeof(float) * (size_t)n);
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)N);
    rand_fill(x, n, -3, 3, 777);
    for (int64_t r = 0; r < N; r++)
        lab[r] = (int32_t)((r * 13) % C);
    struct run_out a, b;
    run_all(_i, &a, x, lab, n, N, C);
    run_all(_i, &b, x, lab, n, N, C);
    ck_assert_int_eq(memcmp(&a.sum, &b.sum, sizeof a.sum), 0);
    ck_assert_int_eq(memcmp(&a.sumsq, &b.sumsq, sizeof a.sumsq), 0);
    ck_assert_int_eq(memcmp(&a.loss, &b.loss, sizeof a.loss), 0);
    ck_assert_int_eq(memcmp(a.rows, b.rows, sizeof(float) * (size_t)C), 0);
    ck_assert_int_eq(memcmp(a.dl, b.dl, sizeof(float) * (size_t)n), 0);
    ck_assert_int_eq(memcmp(a.c, b.c, sizeof(float) * 256 * 256), 0);
    ck_assert_int_eq(memcmp(a.act, b.act, sizeof(float) * (size_t)n), 0);
    ck_assert_int_eq(memcmp(a.p, b.p, sizeof(float) * (size_t)n), 0);
    run_free(&a);
    run_free(&b);
    free(x);
    free(lab);
}
END_TEST

/* ---- suite -------------------------------------------------------------- */

static Suite *backend_suite(void)
{
    Suite *s = suite_create("backend");
    TCase *tc = tcase_create("cpu");
    tcase_add_unchecked_fixture(tc, plugin_load, plugin_unload);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_abi);
    tcase_add_test(tc, test_lifetime);
    /* _i is the thread count */
    tcase_add_loop_test(tc, test_memory, 1, 3);
    tcase_add_loop_test(tc, test_fill_axpby_mul, 1, 3);
    tcase_add_loop_test(tc, test_act, 1, 3);
    tcase_add_loop_test(tc, test_gemm, 1, 3);
    tcase_add_loop_test(tc, test_bias_act, 1, 3);
    tcase_add_loop_test(tc, test_sum_rows, 1, 3);
    tcase_add_loop_test(tc, test_sum_sumsq, 1, 3);
    tcase_add_loop_test(tc, test_softmax_xent, 1, 3);
    tcase_add_loop_test(tc, test_count_correct, 1, 3);
    tcase_add_loop_test(tc, test_gather_rows, 1, 3);
    tcase_add_loop_test(tc, test_gather_augment, 1, 3);
    tcase_add_loop_test(tc, test_rng, 1, 3);
    tcase_add_loop_test(tc, test_optim_torch, 1, 3);
    tcase_add_loop_test(tc, test_optim_formulas, 1, 3);
    tcase_add_loop_test(tc, test_repeatable, 1, 3);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(backend_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
