/* check_bf16.c - the cpu backend's bf16 conversions and matrix product
 * (backends/cpu/cpu_bf16.c), linked in directly.
 *
 * What this is: (1) the scalar and array conversions on chosen bit
 * patterns (ties to even at both signs, quiet and signalling NaN,
 * infinities, overflow to infinity, denormals and the denormal/normal
 * boundary) and on random ones of every class, with an independent
 * oracle for rounding (the nearest bf16 by distance, ties to an even
 * significand), for every array length up to 40 and several offsets.
 * (2) cpu_sbgemm_ex for the four transpose combinations, sizes 1, 3, 17,
 * 31, 33, 64, 65 and 257 in every dimension (and one K of 2049, long
 * enough that the tiles visit B in several blocks), leading dimensions
 * past the minimum, several (alpha, beta) including beta = 0 over a C of
 * NaN (C must not be read), float and bf16 outputs, on the portable path
 * and (where the machine has it) the native one, with 1 and 2 threads,
 * against a double-precision reference over the same bf16 inputs.  Each
 * product runs twice, and with 1 and 2 threads: the results must be
 * bit-identical.  (3) Argument errors.
 *
 * Tolerances: an output sums K products in float, in a fixed order, so
 * its error is at most about K * 2^-24 times the sum of the magnitudes of
 * its terms M (alpha included) plus a few roundings of alpha and beta C;
 * the checks allow 2^-22 * (K + 4) * (|alpha| M + |beta C|), a margin of
 * 4x that still catches any missing or misplaced term (of size ~M / K).
 * A bf16 output adds its own rounding: 2^-8 of the value.
 *
 * Built against cpu_bf16.c compiled with -DCPU_BF16_EMULATE (and this file
 * with the same flag) the native kernels run on a model of their
 * intrinsics (tests/bf16_emul.h), on any machine; the two paths must then
 * agree bit for bit, since both follow the SDM's description of vdpbf16ps
 * and the inputs here have no products below float's normal range.
 *
 * What this is not: a benchmark (bench/bf16_gemm.c).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_bf16.h"
#include "pool.h"
#include "testutil.h"

/* ---- fixture: pools of 1 and 2 threads ---- */

static cpu_pool *pool1, *pool2;

static void fixture_open(void)
{
    ck_assert_int_eq(cpu_pool_create(&pool1, 1), 0);
    ck_assert_int_eq(cpu_pool_create(&pool2, 2), 0);
}

static void fixture_close(void)
{
    cpu_pool_destroy(pool2);
    cpu_pool_destroy(pool1);
    pool1 = pool2 = NULL;
}

/* ---- helpers ---- */

static float f_bits(uint32_t x)
{
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

static uint32_t bits_f(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    return x;
}

static uint64_t rand_u64(void)
{
    uint64_t x = *tu_rng_state();
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *tu_rng_state() = x;
    return x;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* ---- conversions: chosen values ---- */

static const struct { uint32_t f; uint16_t h; const char *what; } conv_cases[] = {
    { 0x3f800000u, 0x3f80, "1" },
    { 0xbf800000u, 0xbf80, "-1" },
    { 0x00000000u, 0x0000, "+0" },
    { 0x80000000u, 0x8000, "-0" },
    { 0x3f808000u, 0x3f80, "tie, even below" },
    { 0x3f818000u, 0x3f82, "tie, even above" },
    { 0xbf808000u, 0xbf80, "negative tie, even below" },
    { 0xbf818000u, 0xbf82, "negative tie, even above" },
    { 0x3f808001u, 0x3f81, "just above a tie" },
    { 0x3f807fffu, 0x3f80, "just below a tie" },
    { 0x3f80ffffu, 0x3f81, "rounds up" },
    { 0x3fffffffu, 0x4000, "carries into the exponent" },
    { 0x7f800000u, 0x7f80, "+inf" },
    { 0xff800000u, 0xff80, "-inf" },
    { 0x7f7fffffu, 0x7f80, "FLT_MAX overflows to inf" },
    { 0x7f7f7fffu, 0x7f7f, "largest that stays finite" },
    { 0xff7fffffu, 0xff80, "-FLT_MAX to -inf" },
    { 0x7fc00000u, 0x7fc0, "quiet NaN" },
    { 0xffc00000u, 0xffc0, "negative quiet NaN" },
    { 0x7f800001u, 0x7fc0, "signalling NaN, payload in the low bits" },
    { 0xff800001u, 0xffc0, "negative signalling NaN" },
    { 0x7fa00000u, 0x7fe0, "signalling NaN, upper payload kept" },
    { 0x7fffffffu, 0x7fff, "NaN of all ones" },
    { 0x00000001u, 0x0000, "smallest denormal" },
    { 0x00008000u, 0x0000, "denormal tie, even below" },
    { 0x00018000u, 0x0002, "denormal tie, even above" },
    { 0x0000c000u, 0x0001, "denormal rounds up" },
    { 0x80010000u, 0x8001, "negative denormal, exact" },
    { 0x007fffffu, 0x0080, "largest denormal to FLT_MIN" },
    { 0x00800000u, 0x0080, "FLT_MIN" },
};

START_TEST(test_convert_cases)
{
    int n = (int)(sizeof conv_cases / sizeof conv_cases[0]);
    float *src = xmalloc((size_t)n * sizeof *src);
    uint16_t *dst = xmalloc((size_t)n * sizeof *dst);
    float *back = xmalloc((size_t)n * sizeof *back);
    for (int i = 0; i < n; i++) {
        uint16_t h = cpu_bf16_round(f_bits(conv_cases[i].f));
        EXPECT(h == conv_cases[i].h, "%s: %08x -> %04x, expected %04x", conv_cases[i].what,
               conv_cases[i].f, h, conv_cases[i].h);
        src[i] = f_bits(conv_cases[i].f);
    }
    cpu_bf16_from_f32(dst, src, n);
    cpu_bf16_to_f32(back, dst, n);
    for (int i = 0; i < n; i++) {
        EXPECT(dst[i] == conv_cases[i].h, "array %s: %04x, expected %04x",
               conv_cases[i].what, dst[i], conv_cases[i].h);
        EXPECT(bits_f(back[i]) == (uint32_t)conv_cases[i].h << 16, "back %s: %08x",
               conv_cases[i].what, bits_f(back[i]));
    }
    /* bf16 -> float is exact, denormals included */
    ck_assert_float_eq(cpu_bf16_float(0x0001), ldexpf(1.0f, -133));
    ck_assert_float_eq(cpu_bf16_float(0x8080), -ldexpf(1.0f, -126));
    ck_assert(isinf(cpu_bf16_float(0xff80)) && cpu_bf16_float(0xff80) < 0);
    ck_assert(isnan(cpu_bf16_float(0x7fc1)));
    free(src);
    free(dst);
    free(back);
}
END_TEST

/* ---- conversions: random bit patterns against an oracle ---- */

/* a random float: any bits, or from a chosen class */
static uint32_t rand_float_bits(void)
{
    uint64_t r = rand_u64();
    uint32_t x = (uint32_t)(r >> 32);
    switch (r & 7) {
    case 0:
        return x & 0x807fffffu;                 /* denormal or zero */
    case 1:
        return (x & 0xffff0000u) | 0x8000u;     /* a tie */
    case 2:
        return (x | 0x7f800000u);               /* inf or NaN */
    case 3:
        return (x & 0x80ffffffu) | 0x7e000000u; /* near overflow */
    default:
        return x;
    }
}

/* the oracle: nearest bf16 to a finite float by distance, ties to even */
static int rounds_right(float x, uint16_t h)
{
    double v = x, got = cpu_bf16_float(h);
    if (isinf(got)) {
        /* past the largest finite bf16's halfway point to 2^128 */
        double lim = ldexp(2.0 - ldexp(1.0, -8), 127);
        return (got > 0) == (v > 0) && fabs(v) >= lim
            && (fabs(v) > lim || ((0x7f7f & 1) == 1));
    }
    uint16_t lo = (uint16_t)(h - 1), hi = (uint16_t)(h + 1);
    double d = fabs(v - got);
    double dl = (h & 0x7fff) ? fabs(v - cpu_bf16_float(lo)) : INFINITY;
    double dh = fabs(v - cpu_bf16_float(hi));
    if (d > dl || d > dh)
        return 0;
    if (d == dl || d == dh)
        return (h & 1) == 0;
    return 1;
}

START_TEST(test_convert_random)
{
    enum { N = 4096 };
    tu_rng_seed(11);
    float *src = xmalloc(N * sizeof *src);
    uint16_t *dst = xmalloc((N + 8) * sizeof *dst);
    float *back = xmalloc((N + 8) * sizeof *back);
    for (int i = 0; i < N; i++)
        src[i] = f_bits(rand_float_bits());
    for (int i = 0; i < N; i++) {
        float x = src[i];
        uint16_t h = cpu_bf16_round(x);
        if (isnan(x)) {
            EXPECT((h & 0x7fc0) == 0x7fc0 && (h >> 15) == (bits_f(x) >> 31)
                   && (h & 0x3f) == ((bits_f(x) >> 16) & 0x3f),
                   "NaN %08x -> %04x", bits_f(x), h);
        } else {
            EXPECT(rounds_right(x, h), "%08x (%g) -> %04x (%g)", bits_f(x), (double)x, h,
                   (double)cpu_bf16_float(h));
        }
    }
    /* arrays: every length up to 40 at several offsets, then all of it,
     * the same bits as the scalar function and nothing written past n */
    for (int off = 0; off < 4; off++) {
        for (int n = 0; n <= 40; n++) {
            for (int i = 0; i < n + 8; i++)
                dst[i] = 0xabcd;
            cpu_bf16_from_f32(dst, src + off * 41 + n, n);
            for (int i = 0; i < n; i++)
                EXPECT(dst[i] == cpu_bf16_round(src[off * 41 + n + i]), "n %d, %d", n, i);
            for (int i = n; i < n + 8; i++)
                EXPECT(dst[i] == 0xabcd, "from_f32 wrote past %d", n);
            for (int i = 0; i < n + 8; i++)
                back[i] = -7.0f;
            cpu_bf16_to_f32(back, dst, n);
            for (int i = 0; i < n; i++)
                EXPECT(bits_f(back[i]) == (uint32_t)dst[i] << 16, "to_f32 n %d, %d", n, i);
            for (int i = n; i < n + 8; i++)
                EXPECT(back[i] == -7.0f, "to_f32 wrote past %d", n);
        }
    }
    cpu_bf16_from_f32(dst, src, N);
    cpu_bf16_to_f32(back, dst, N);
    for (int i = 0; i < N; i++) {
        EXPECT(dst[i] == cpu_bf16_round(src[i]), "%d", i);
        /* values already in bf16 go round unchanged (NaN stays NaN) */
        uint16_t again;
        cpu_bf16_from_f32(&again, back + i, 1);
        EXPECT(again == dst[i] || (isnan(back[i]) && (again & 0x7fc0) == 0x7fc0),
               "round trip %04x -> %04x", dst[i], again);
    }
    free(src);
    free(dst);
    free(back);
}
END_TEST

/* ---- matrix product ---- */

typedef struct gcase {
    int64_t M, N, K;
} gcase;

static const gcase gcases[] = {
    { 1, 1, 1 },     { 1, 1, 257 },   { 3, 17, 31 },   { 17, 3, 1 },    { 31, 33, 3 },
    { 33, 64, 65 },  { 64, 65, 17 },  { 65, 31, 64 },  { 257, 33, 17 }, { 17, 257, 31 },
    { 31, 17, 257 }, { 1, 257, 3 },   { 257, 1, 65 },  { 3, 1, 257 },   { 65, 65, 65 },
    { 64, 64, 64 },  { 33, 3, 33 },   { 257, 65, 257 }, { 7, 130, 2049 },
};
#define N_GCASES ((int)(sizeof gcases / sizeof gcases[0]))

/* (alpha, beta); beta 0 runs over a C full of NaN */
static const float ab[][2] = { { 1.0f, 0.0f }, { 0.5f, 0.25f }, { -1.5f, 1.0f } };
#define N_AB ((int)(sizeof ab / sizeof ab[0]))

/* bf16 values in [-1, 1), some zero */
static void rand_bf16(uint16_t *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (rand_u64() & 15) == 0 ? 0 : cpu_bf16_round((float)tu_urand());
}

typedef struct gprob {
    int ta, tb, out16;
    float alpha, beta;
    int64_t M, N, K, lda, ldb, ldc;
    uint16_t *A, *B, *C16init;
    float *Cinit;
    double *ref, *mag;
} gprob;

/* op(A)[i][k] and op(B)[k][j] as floats */
static float opa(const gprob *g, int64_t i, int64_t k)
{
    return cpu_bf16_float(g->ta ? g->A[k * g->lda + i] : g->A[i * g->lda + k]);
}

static float opb(const gprob *g, int64_t k, int64_t j)
{
    return cpu_bf16_float(g->tb ? g->B[j * g->ldb + k] : g->B[k * g->ldb + j]);
}

static void gprob_make(gprob *g, const gcase *c, int ta, int tb, int out16, int iab)
{
    memset(g, 0, sizeof *g);
    g->ta = ta;
    g->tb = tb;
    g->out16 = out16;
    g->alpha = ab[iab][0];
    g->beta = ab[iab][1];
    g->M = c->M;
    g->N = c->N;
    g->K = c->K;
    /* leading dimensions past the minimum by a few elements */
    g->lda = (ta ? g->M : g->K) + 3;
    g->ldb = (tb ? g->K : g->N) + 5;
    g->ldc = g->N + 2;
    int64_t arows = ta ? g->K : g->M, brows = tb ? g->N : g->K;
    g->A = xmalloc((size_t)(arows * g->lda) * sizeof *g->A);
    g->B = xmalloc((size_t)(brows * g->ldb) * sizeof *g->B);
    rand_bf16(g->A, arows * g->lda);
    rand_bf16(g->B, brows * g->ldb);
    int64_t nc = g->M * g->ldc;
    g->Cinit = xmalloc((size_t)nc * sizeof *g->Cinit);
    g->C16init = xmalloc((size_t)nc * sizeof *g->C16init);
    for (int64_t i = 0; i < nc; i++) {
        g->C16init[i] = g->beta == 0.0f ? 0x7fc0 : cpu_bf16_round((float)tu_urand());
        g->Cinit[i] = g->beta == 0.0f ? NAN
            : out16 ? cpu_bf16_float(g->C16init[i]) : (float)tu_urand();
    }
    g->ref = xmalloc((size_t)(g->M * g->N) * sizeof *g->ref);
    g->mag = xmalloc((size_t)(g->M * g->N) * sizeof *g->mag);
    for (int64_t i = 0; i < g->M; i++)
        for (int64_t j = 0; j < g->N; j++) {
            double s = 0.0, m = 0.0;
            for (int64_t k = 0; k < g->K; k++) {
                double p = (double)opa(g, i, k) * opb(g, k, j);
                s += p;
                m += fabs(p);
            }
            double c0 = g->beta == 0.0f ? 0.0 : (double)g->beta * g->Cinit[i * g->ldc + j];
            g->ref[i * g->N + j] = g->alpha * s + c0;
            g->mag[i * g->N + j] = fabs(g->alpha) * m + fabs(c0);
        }
}

static void gprob_free(gprob *g)
{
    free(g->A);
    free(g->B);
    free(g->Cinit);
    free(g->C16init);
    free(g->ref);
    free(g->mag);
}

/* run the product into a fresh copy of C; the result as floats, with the
 * padding columns of C checked untouched */
static float *gprob_run(const gprob *g, cpu_pool *pool, cpu_bf16_path path, int with_ws)
{
    int64_t nc = g->M * g->ldc;
    float *c = NULL;
    uint16_t *c16 = NULL;
    void *ws = with_ws ? xmalloc(cpu_sbgemm_workspace(g->M, g->N, g->K)) : NULL;
    if (g->out16) {
        c16 = xmalloc((size_t)nc * sizeof *c16);
        memcpy(c16, g->C16init, (size_t)nc * sizeof *c16);
    } else {
        c = xmalloc((size_t)nc * sizeof *c);
        memcpy(c, g->Cinit, (size_t)nc * sizeof *c);
    }
    int rc = cpu_sbgemm_ex(pool, path, c, c16, g->ldc, g->ta, g->A, g->lda, g->tb, g->B,
                           g->ldb, g->alpha, g->beta, ws, g->M, g->N, g->K);
    ck_assert_int_eq(rc, 0);
    float *out = xmalloc((size_t)(g->M * g->N) * sizeof *out);
    for (int64_t i = 0; i < g->M; i++) {
        for (int64_t j = 0; j < g->N; j++)
            out[i * g->N + j] = g->out16 ? cpu_bf16_float(c16[i * g->ldc + j])
                                         : c[i * g->ldc + j];
        for (int64_t j = g->N; j < g->ldc; j++) {
            if (g->out16)
                EXPECT(c16[i * g->ldc + j] == g->C16init[i * g->ldc + j], "pad %ld", (long)j);
            else
                EXPECT(memcmp(&c[i * g->ldc + j], &g->Cinit[i * g->ldc + j], 4) == 0,
                       "C written past N at row %ld", (long)i);
        }
    }
    free(c);
    free(c16);
    free(ws);
    return out;
}

static void expect_close(const gprob *g, const float *got, const char *what)
{
    const double u = ldexp(1.0, -22);
    for (int64_t i = 0; i < g->M * g->N; i++) {
        double tol = u * (double)(g->K + 4) * g->mag[i] + 1e-30;
        if (g->out16)
            tol += ldexp(fabs(g->ref[i]), -8);
        EXPECT(isfinite(got[i]) && fabs(got[i] - g->ref[i]) <= tol,
               "%s ta %d tb %d M %ld N %ld K %ld alpha %g beta %g%s: C[%ld][%ld] = %.9g, "
               "expected %.9g (tol %.3g)",
               what, g->ta, g->tb, (long)g->M, (long)g->N, (long)g->K, (double)g->alpha,
               (double)g->beta, g->out16 ? " bf16 out" : "", (long)(i / g->N),
               (long)(i % g->N), (double)got[i], g->ref[i], tol);
    }
}

static void expect_same(const gprob *g, const float *x, const float *y, const char *what)
{
    for (int64_t i = 0; i < g->M * g->N; i++)
        EXPECT(memcmp(&x[i], &y[i], sizeof *x) == 0,
               "%s: C[%ld][%ld] %.9g vs %.9g (ta %d tb %d M %ld N %ld K %ld)", what,
               (long)(i / g->N), (long)(i % g->N), (double)x[i], (double)y[i], g->ta, g->tb,
               (long)g->M, (long)g->N, (long)g->K);
}

/* one case, one transpose combination: every (alpha, beta), both output
 * types, both paths, 1 and 2 threads, twice */
static void run_gcase(int icase, int ta, int tb)
{
    tu_rng_seed((uint64_t)(icase * 4 + ta * 2 + tb + 100));
    for (int out16 = 0; out16 < 2; out16++) {
        for (int iab = 0; iab < N_AB; iab++) {
            gprob g;
            gprob_make(&g, &gcases[icase], ta, tb, out16, iab);
            float *p1 = gprob_run(&g, pool1, CPU_BF16_PORTABLE, 0);
            expect_close(&g, p1, "portable, 1 thread");
            float *p2 = gprob_run(&g, pool2, CPU_BF16_PORTABLE, 1);
            expect_same(&g, p1, p2, "portable, 1 vs 2 threads");
            float *p3 = gprob_run(&g, pool2, CPU_BF16_PORTABLE, 0);
            expect_same(&g, p2, p3, "portable, two runs");
            if (cpu_bf16_native()) {
                float *n1 = gprob_run(&g, pool1, CPU_BF16_NATIVE, 1);
                expect_close(&g, n1, "native, 1 thread");
                float *n2 = gprob_run(&g, pool2, CPU_BF16_NATIVE, 0);
                expect_same(&g, n1, n2, "native, 1 vs 2 threads");
                float *n3 = gprob_run(&g, pool2, CPU_BF16_AUTO, 1);
                expect_same(&g, n2, n3, "native, two runs (auto)");
#ifdef CPU_BF16_EMULATE
                expect_same(&g, p1, n1, "emulated native vs portable");
#endif
                free(n1);
                free(n2);
                free(n3);
            }
            free(p1);
            free(p2);
            free(p3);
            gprob_free(&g);
        }
    }
}

START_TEST(test_sbgemm)
{
    run_gcase(_i / 4, (_i / 2) & 1, _i & 1);
}
END_TEST

/* the float-output wrapper, a NULL pool, and the shortcuts: K == 0 and
 * alpha == 0 scale C by beta without reading A and B (or C, when beta is
 * 0), M or N of 0 do nothing */
START_TEST(test_sbgemm_shortcuts)
{
    tu_rng_seed(5);
    gprob g;
    gprob_make(&g, &gcases[2], 0, 1, 0, 1);
    float *want = gprob_run(&g, pool2, CPU_BF16_AUTO, 0);
    float *c = xmalloc((size_t)(g.M * g.ldc) * sizeof *c);
    memcpy(c, g.Cinit, (size_t)(g.M * g.ldc) * sizeof *c);
    ck_assert_int_eq(cpu_sbgemm(NULL, c, g.ldc, 0, g.A, g.lda, 1, g.B, g.ldb, g.alpha,
                                g.beta, NULL, g.M, g.N, g.K), 0);
    for (int64_t i = 0; i < g.M; i++)
        for (int64_t j = 0; j < g.N; j++)
            EXPECT(c[i * g.ldc + j] == want[i * g.N + j], "wrapper [%ld][%ld]", (long)i,
                   (long)j);

    float c2[6] = { 1, 2, 3, 4, NAN, 6 };
    uint16_t h2[6] = { 0x3f80, 0x4000, 0x4040, 0x4080, 0x7fc0, 0x40c0 };
    ck_assert_int_eq(cpu_sbgemm(pool2, c2, 3, 0, NULL, 1, 0, NULL, 3, 1.0f, 0.5f, NULL,
                                2, 3, 0), 0);
    ck_assert_float_eq(c2[0], 0.5f);
    ck_assert_float_eq(c2[5], 3.0f);
    ck_assert(isnan(c2[4]));
    ck_assert_int_eq(cpu_sbgemm(pool2, c2, 3, 0, g.A, g.lda, 1, g.B, g.ldb, 0.0f, 0.0f,
                                NULL, 2, 3, 5), 0);
    for (int i = 0; i < 6; i++)
        ck_assert(c2[i] == 0.0f && !signbit(c2[i]));
    ck_assert_int_eq(cpu_sbgemm_ex(pool1, CPU_BF16_PORTABLE, NULL, h2, 3, 0, NULL, 1, 0,
                                   NULL, 3, 2.0f, 2.0f, NULL, 2, 3, 0), 0);
    ck_assert_uint_eq(h2[0], 0x4000);
    ck_assert_uint_eq(h2[3], 0x4100);
    ck_assert_int_eq(cpu_sbgemm(pool2, NULL, 1, 0, NULL, 1, 0, NULL, 1, 1.0f, 0.0f, NULL,
                                0, 0, 7), EINVAL);
    ck_assert_int_eq(cpu_sbgemm(pool2, c2, 3, 0, NULL, 7, 0, NULL, 3, 1.0f, 0.0f, NULL,
                                0, 3, 7), 0);
    free(c);
    free(want);
    gprob_free(&g);
}
END_TEST

START_TEST(test_sbgemm_invalid)
{
    uint16_t a[64] = { 0 }, b[64] = { 0 }, h[64];
    float c[64];
    /* shapes (M, N, K) = (2, 3, 4) */
    ck_assert_int_eq(cpu_sbgemm(pool2, c, 3, 0, a, 4, 0, b, 3, 1, 0, NULL, 2, 3, 4), 0);
    ck_assert_int_eq(cpu_sbgemm(pool2, c, 3, 0, a, 4, 0, b, 3, 1, 0, NULL, -1, 3, 4),
                     EINVAL);
    ck_assert_int_eq(cpu_sbgemm(pool2, c, 3, 0, a, 4, 0, b, 3, 1, 0, NULL, 2, 3, -4),
                     EINVAL);
    ck_assert_int_eq(cpu_sbgemm(pool2, c, 3, 0, a, 3, 0, b, 3, 1, 0, NULL, 2, 3, 4),
                     EINVAL);   /* lda < K */
    ck_assert_int_eq(cpu_sbgemm(pool2, c, 3, 1, a, 1, 0, b, 3, 1, 0, NULL, 2, 3, 4),
                     EINVAL);   /* lda < M with ta */
    ck_assert_int_eq(cpu_sbgemm(pool2, c, 3, 0, a, 4, 1, b, 3, 1, 0, NULL, 2, 3, 4),
                     EINVAL);   /* ldb < K with tb */
    ck_assert_int_eq(cpu_sbgemm(pool2, c, 2, 0, a, 4, 0, b, 3, 1, 0, NULL, 2, 3, 4),
                     EINVAL);   /* ldc < N */
    ck_assert_int_eq(cpu_sbgemm(pool2, c, 3, 0, NULL, 4, 0, b, 3, 1, 0, NULL, 2, 3, 4),
                     EINVAL);
    ck_assert_int_eq(cpu_sbgemm_ex(pool2, CPU_BF16_AUTO, c, h, 3, 0, a, 4, 0, b, 3, 1, 0,
                                   NULL, 2, 3, 4), EINVAL);
    ck_assert_int_eq(cpu_sbgemm_ex(pool2, CPU_BF16_AUTO, NULL, NULL, 3, 0, a, 4, 0, b, 3,
                                   1, 0, NULL, 2, 3, 4), EINVAL);
    ck_assert_int_eq(cpu_sbgemm_ex(pool2, (cpu_bf16_path)7, c, NULL, 3, 0, a, 4, 0, b, 3,
                                   1, 0, NULL, 2, 3, 4), EINVAL);
    ck_assert_int_eq(cpu_sbgemm_ex(pool2, CPU_BF16_NATIVE, c, NULL, 3, 0, a, 4, 0, b, 3, 1,
                                   0, NULL, 2, 3, 4), cpu_bf16_native() ? 0 : EINVAL);
}
END_TEST

/* ---- suite ---- */

static Suite *bf16_suite(void)
{
    Suite *s = suite_create("bf16");
    TCase *conv = tcase_create("convert");
    TCase *gemm = tcase_create("sbgemm");

    tcase_add_test(conv, test_convert_cases);
    tcase_add_test(conv, test_convert_random);
    suite_add_tcase(s, conv);

    tcase_add_checked_fixture(gemm, fixture_open, fixture_close);
    tcase_set_timeout(gemm, 300);
    tcase_add_loop_test(gemm, test_sbgemm, 0, 4 * N_GCASES);
    tcase_add_test(gemm, test_sbgemm_shortcuts);
    tcase_add_test(gemm, test_sbgemm_invalid);
    suite_add_tcase(s, gemm);
    return s;
}

int main(void)
{
    fprintf(stderr, "bf16: native kernels %s%s\n",
            cpu_bf16_native() ? "available" : "not available (portable path only)",
#ifdef CPU_BF16_EMULATE
            " (emulated)"
#else
            ""
#endif
    );
    SRunner *sr = srunner_create(bf16_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
