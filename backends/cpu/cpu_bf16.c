/* cpu_bf16.c - bf16 conversions and matrix product (see cpu_bf16.h).
 *
 * What this is: one driver and two sets of kernels.
 *
 *   packing   Both operands are copied once per call into panels in the
 *             layout vdpbf16ps reads: a panel of W items (MR rows of
 *             op(A), or NR columns of op(B)) by K holds, for each pair of
 *             k (2p, 2p+1), the W pairs side by side: panel[(p*W + i)*2 + e]
 *             = element (item i, k = 2p + e), zeros past K and past the
 *             last item.  A 32-bit word of a panel of A is then one row's
 *             pair, broadcast to all lanes; 64 bytes of a panel of B are
 *             16 columns' pairs, one vector.  Rows of A (no transpose) and
 *             columns of B^T hold their pairs side by side already
 *             ("item-major": one 32-bit copy per pair); the other two
 *             interleave two source rows ("k-major": on the native path
 *             16 pairs at a time, two rows widened and merged).
 *   tiles     MR (6) rows x NR (64) columns of C per tile: 24 accumulators
 *             of 16 floats, per pair of k four vector loads of B, six
 *             broadcasts of A and 24 vdpbf16ps.  The whole of K is summed
 *             in registers (no blocking over K), so an output is rounded
 *             only by its own additions, then alpha and beta are applied
 *             and the tile stored under masks (rows past M, columns past
 *             N are computed on zero padding and dropped).  A tile of
 *             fewer than 64 columns runs with fewer vectors.
 *   threads   Job 1 packs the panels of A and then of B, in chunks of
 *             panels; job 2 splits the MR-row panels of C into chunks,
 *             each running its rows against blocks of B panels small
 *             enough (about 512 KB) to stay in L2 while the rows go by.
 *             Chunks depend only on the dimensions and the pool's thread
 *             count, and no output depends on the chunks at all.
 *
 * The native kernels are compiled for AVX-512 through function target
 * attributes, so the file builds with plain -O2 on any x86-64 and runs
 * there (cpu_bf16_native() says whether the native kernels may run).  The
 * portable kernels do the same arithmetic in the same order in plain C;
 * the cpu backend's v3 and v4 builds compile them for x86-64-v3 (see
 * PORTABLE below), which changes nothing in the results (a product of two bf16 values is exact in
 * float, so contracting it into a fused multiply-add rounds the same).
 *
 * Building with -DCPU_BF16_EMULATE (tests only) compiles the native
 * kernels against a plain C model of the intrinsics they use
 * (tests/bf16_emul.h), so that their logic is tested on machines without
 * AVX-512 BF16.
 *
 * What this is not: tuned for every shape (no K blocking, no packing
 * skipped for operands already in panel layout), or the place that
 * decides when bf16 is good enough.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_bf16.h"

#define MR CPU_SBGEMM_MR
#define NR CPU_SBGEMM_NR
#define LANES 16
#define NV (NR / LANES)   /* vectors of a full tile */

/* ---- build-time choices ---- */

#if defined(CPU_BF16_EMULATE)
#define BF_BUILT 1
#include "bf16_emul.h"
#define NATIVE
#elif defined(__x86_64__) && defined(__GNUC__) \
    && ((defined(__clang__) && __clang_major__ >= 9) \
        || (!defined(__clang__) && __GNUC__ >= 10))
#define BF_BUILT 1
#include <cpuid.h>
#include <immintrin.h>
#define NATIVE __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define AS_BH(x) ((__m512bh)(x))
#endif
#define NATIVE_INLINE NATIVE __attribute__((always_inline)) static inline

/* The portable kernels are compiled for the instruction set level of
 * this build of the file: the cpu backend builds it once per level with
 * CPU_ISA set (cpu_internal.h), x86-64-v3 code in its v3 (1) and v4 (2)
 * builds, baseline x86-64 in its generic build and wherever CPU_ISA is not
 * set (a test compiling this file alone).  The results are the same at
 * every level.  The native kernels are used in the v4 build only (and
 * without CPU_ISA), where the CPU has them. */
#if !defined(CPU_BF16_EMULATE) && defined(CPU_ISA) && CPU_ISA >= 1 \
    && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PORTABLE __attribute__((target("arch=x86-64-v3")))
#endif
#ifndef PORTABLE
#define PORTABLE
#endif
#if defined(CPU_ISA) && CPU_ISA < 2
#define NATIVE_ALLOWED 0
#else
#define NATIVE_ALLOWED 1
#endif

#if defined(__clang__)
#define UNROLL _Pragma("clang loop unroll(full)")
#else
#define UNROLL _Pragma("GCC unroll 32")
#endif

/* ---- capability ---- */

static int detect_native(void)
{
#if defined(CPU_BF16_EMULATE)
    return 1;
#elif defined(BF_BUILT)
    unsigned a, b, c, d, sub1 = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    int f = (b >> 16) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    unsigned max_sub = a;
    if (max_sub >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        sub1 = a;
    }
    int bf16 = (sub1 >> 5) & 1;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    int osxsave = (c >> 27) & 1;
    if (!(f && bw && vl && bf16 && osxsave))
        return 0;
    unsigned lo, hi;
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    /* SSE, AVX, opmask, ZMM0-15 upper halves, ZMM16-31 */
    return (lo & 0xe6u) == 0xe6u;
#else
    return 0;
#endif
}

int cpu_bf16_native(void)
{
    if (!NATIVE_ALLOWED)
        return 0;
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        v = detect_native();
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}

/* ---- array conversions ---- */

/* Blocks of 16 with a fixed trip count and no branches, so that even -O2
 * vectorizes them; the same bits as cpu_bf16_round. */
static inline uint16_t round_bits(uint32_t x)
{
    uint32_t r = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16, q = (x >> 16) | 0x40u;
    return (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? q : r);
}

PORTABLE static void from_f32_portable(uint16_t *restrict dst, const float *restrict src,
                                       int64_t n)
{
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        uint32_t x[LANES];
        memcpy(x, src + i, sizeof x);
        for (int l = 0; l < LANES; l++)
            dst[i + l] = round_bits(x[l]);
    }
    for (; i < n; i++)
        dst[i] = cpu_bf16_round(src[i]);
}

PORTABLE static void to_f32_portable(float *restrict dst, const uint16_t *restrict src,
                                     int64_t n)
{
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        uint32_t x[LANES];
        for (int l = 0; l < LANES; l++)
            x[l] = (uint32_t)src[i + l] << 16;
        memcpy(dst + i, x, sizeof x);
    }
    for (; i < n; i++)
        dst[i] = cpu_bf16_float(src[i]);
}

#ifdef BF_BUILT

/* 16 floats (as bits) -> 16 bf16, rounded as cpu_bf16_round */
NATIVE_INLINE __m256i round16(__m512i x)
{
    const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7fff);
    __m512i hi = _mm512_srli_epi32(x, 16);
    __m512i abs = _mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff));
    __mmask16 nan = _mm512_cmpgt_epu32_mask(abs, _mm512_set1_epi32(0x7f800000));
    __m512i r = _mm512_add_epi32(x, _mm512_add_epi32(half, _mm512_and_si512(hi, one)));
    r = _mm512_srli_epi32(r, 16);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
    return _mm512_cvtepi32_epi16(r);
}

NATIVE static void from_f32_native(uint16_t *dst, const float *src, int64_t n)
{
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        _mm256_storeu_si256((__m256i *)(dst + i),
                            round16(_mm512_castps_si512(_mm512_loadu_ps(src + i))));
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
        __m256i h = round16(_mm512_castps_si512(_mm512_maskz_loadu_ps(k, src + i)));
        _mm256_mask_storeu_epi16(dst + i, k, h);
    }
}

NATIVE static void to_f32_native(float *dst, const uint16_t *src, int64_t n)
{
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        __m512i x = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(x, 16)));
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
        __m512i x = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, src + i));
        _mm512_mask_storeu_ps(dst + i, k, _mm512_castsi512_ps(_mm512_slli_epi32(x, 16)));
    }
}

#endif /* BF_BUILT */

void cpu_bf16_from_f32(uint16_t *dst, const float *src, int64_t n)
{
#ifdef BF_BUILT
    if (cpu_bf16_native()) {
        from_f32_native(dst, src, n);
        return;
    }
#endif
    from_f32_portable(dst, src, n);
}

void cpu_bf16_to_f32(float *dst, const uint16_t *src, int64_t n)
{
#ifdef BF_BUILT
    if (cpu_bf16_native()) {
        to_f32_native(dst, src, n);
        return;
    }
#endif
    to_f32_portable(dst, src, n);
}

/* ---- packing ---- */

/* dst (kp pairs, W items, 2) <- `items` items (<= W) by K of src:
 * item-major: element (i, k) at src[i*ld + k]; k-major: at src[k*ld + i].
 * Pairs past K and items past `items` are zeros.  W is a constant once
 * inlined (MR or NR), so that full panels take fixed-count loops. */
static inline __attribute__((always_inline))
void pack_panel(uint16_t *restrict dst, const uint16_t *restrict src, int64_t ld,
                int item_major, const int W, int items, int64_t K)
{
    const int64_t kfull = K / 2, kp = (K + 1) / 2;
    if (item_major) {
        /* a pair is two adjacent elements of an item: one 32-bit copy */
        for (int i = 0; i < items; i++) {
            const uint16_t *s = src + i * ld;
            uint16_t *d = dst + 2 * i;
            for (int64_t p = 0; p < kfull; p++)
                memcpy(d + p * 2 * W, s + 2 * p, 2 * sizeof *d);
            if (kp > kfull) {
                d[kfull * 2 * W] = s[2 * kfull];
                d[kfull * 2 * W + 1] = 0;
            }
        }
        if (items < W)
            for (int64_t p = 0; p < kp; p++)
                memset(dst + (p * W + items) * 2, 0, (size_t)(W - items) * 2 * sizeof *dst);
        return;
    }
    for (int64_t p = 0; p < kp; p++) {
        const uint16_t *s0 = src + 2 * p * ld;
        const uint16_t *s1 = 2 * p + 1 < K ? s0 + ld : NULL;
        uint16_t *d = dst + p * 2 * W;
        if (items == W && s1) {
            for (int i = 0; i < W; i++) {
                d[2 * i] = s0[i];
                d[2 * i + 1] = s1[i];
            }
            continue;
        }
        for (int i = 0; i < items; i++) {
            d[2 * i] = s0[i];
            d[2 * i + 1] = s1 ? s1[i] : 0;
        }
        if (items < W)
            memset(d + 2 * items, 0, (size_t)(W - items) * 2 * sizeof *d);
    }
}

PORTABLE static void pack_a_portable(uint16_t *dst, const uint16_t *src, int64_t ld,
                                     int item_major, int items, int64_t K)
{
    pack_panel(dst, src, ld, item_major, MR, items, K);
}

PORTABLE static void pack_b_portable(uint16_t *dst, const uint16_t *src, int64_t ld,
                                     int item_major, int items, int64_t K)
{
    pack_panel(dst, src, ld, item_major, NR, items, K);
}

#ifdef BF_BUILT

/* lanes [0, n) of a vector, n clipped to 0..16 */
NATIVE_INLINE __mmask16 first_lanes(int n)
{
    return (__mmask16)(n >= LANES ? 0xffffu : n <= 0 ? 0u : (1u << n) - 1u);
}

/* pack_panel, k-major: per pair of k and 16 items, two rows of 16 bf16
 * widened to 32 bits, the second shifted up: 16 pairs, one store.  The
 * item-major copy stays scalar (32-bit words, one per pair). */
NATIVE_INLINE void pack_native(uint16_t *dst, const uint16_t *src, int64_t ld,
                               int item_major, const int W, int items, int64_t K)
{
    if (item_major) {
        pack_panel(dst, src, ld, 1, W, items, K);
        return;
    }
    const int64_t kp = (K + 1) / 2;
    const __m512i zero = _mm512_set1_epi32(0);
    for (int64_t p = 0; p < kp; p++) {
        const uint16_t *s0 = src + 2 * p * ld;
        const int two = 2 * p + 1 < K;
        uint16_t *d = dst + p * 2 * W;
        UNROLL
        for (int i = 0; i < W; i += LANES) {
            __mmask16 k = first_lanes(items - i);
            __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, s0 + i));
            __m512i hi = two ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, s0 + ld + i))
                             : zero;
            __m512i v = _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
            if (i + LANES <= W)
                _mm512_storeu_si512((void *)(d + 2 * i), v);
            else
                _mm512_mask_storeu_epi32((void *)(d + 2 * i), first_lanes(W - i), v);
        }
    }
}

NATIVE static void pack_a_native(uint16_t *dst, const uint16_t *src, int64_t ld,
                                 int item_major, int items, int64_t K)
{
    pack_native(dst, src, ld, item_major, MR, items, K);
}

NATIVE static void pack_b_native(uint16_t *dst, const uint16_t *src, int64_t ld,
                                 int item_major, int items, int64_t K)
{
    pack_native(dst, src, ld, item_major, NR, items, K);
}

#endif /* BF_BUILT */

/* ---- tiles ---- */

typedef struct tile_args {
    const uint16_t *a;   /* panel of A: kp pairs x MR rows x 2 */
    const uint16_t *b;   /* panel of B: kp pairs x NR columns x 2 */
    int64_t kp;
    float *c;            /* C (float) or c16 (bf16) at row 0, column 0 of the tile */
    uint16_t *c16;
    int64_t ldc;
    int rows, cols;      /* 1..MR rows and 1..NR columns stored */
    float alpha, beta;
} tile_args;

/* The portable tile over nn columns (a constant once inlined: 16, 32, 48
 * or 64, so that the loops over columns have fixed counts), each output
 * summed as vdpbf16ps sums it. */
static inline __attribute__((always_inline))
void tile_cols(const tile_args *t, const int nn)
{
    float acc[MR][NR], b0[NR], b1[NR];
    for (int m = 0; m < MR; m++)
        for (int n = 0; n < nn; n++)
            acc[m][n] = 0.0f;
    const uint16_t *a = t->a, *b = t->b;
    for (int64_t p = 0; p < t->kp; p++, a += 2 * MR, b += 2 * NR) {
        for (int n = 0; n < nn; n++) {
            b0[n] = cpu_bf16_float(b[2 * n]);
            b1[n] = cpu_bf16_float(b[2 * n + 1]);
        }
        for (int m = 0; m < MR; m++) {
            const float a0 = cpu_bf16_float(a[2 * m]), a1 = cpu_bf16_float(a[2 * m + 1]);
            for (int n = 0; n < nn; n++) {
                float s = acc[m][n] + a1 * b1[n];
                acc[m][n] = s + a0 * b0[n];
            }
        }
    }
    for (int m = 0; m < t->rows; m++) {
        for (int n = 0; n < t->cols; n++) {
            float r = t->alpha * acc[m][n];
            if (t->c) {
                float *d = t->c + m * t->ldc + n;
                if (t->beta != 0.0f)
                    r = fmaf(t->beta, *d, r);
                *d = r;
            } else {
                uint16_t *d = t->c16 + m * t->ldc + n;
                if (t->beta != 0.0f)
                    r = fmaf(t->beta, cpu_bf16_float(*d), r);
                *d = cpu_bf16_round(r);
            }
        }
    }
}

PORTABLE static void tile_portable(const tile_args *t)
{
    switch ((t->cols + LANES - 1) / LANES) {
    case 1:
        tile_cols(t, LANES);
        break;
    case 2:
        tile_cols(t, 2 * LANES);
        break;
    case 3:
        tile_cols(t, 3 * LANES);
        break;
    default:
        tile_cols(t, NR);
        break;
    }
}

#ifdef BF_BUILT

/* the native tile with nv vectors (a constant once inlined, so that the
 * accumulators are registers) */
NATIVE_INLINE void tile_nv(const tile_args *t, const int nv)
{
    __m512 acc[MR][NV];
    UNROLL
    for (int m = 0; m < MR; m++) {
        UNROLL
        for (int v = 0; v < NV; v++)
            acc[m][v] = _mm512_setzero_ps();
    }
    const uint16_t *a = t->a, *b = t->b;
    for (int64_t p = t->kp; p > 0; p--, a += 2 * MR, b += 2 * NR) {
        __m512bh x[NV];
        UNROLL
        for (int v = 0; v < nv; v++)
            x[v] = AS_BH(_mm512_loadu_si512((const void *)(b + v * 2 * LANES)));
        UNROLL
        for (int m = 0; m < MR; m++) {
            uint32_t w;
            memcpy(&w, a + 2 * m, sizeof w);
            __m512bh y = AS_BH(_mm512_set1_epi32((int)w));
            UNROLL
            for (int v = 0; v < nv; v++)
                acc[m][v] = _mm512_dpbf16_ps(acc[m][v], y, x[v]);
        }
    }

    const __m512 alpha = _mm512_set1_ps(t->alpha), beta = _mm512_set1_ps(t->beta);
    const int with_c = t->beta != 0.0f;
    __mmask16 k[NV];
    UNROLL
    for (int v = 0; v < nv; v++)
        k[v] = first_lanes(t->cols - v * LANES);
    UNROLL
    for (int m = 0; m < MR; m++) {
        if (m >= t->rows)
            break;
        UNROLL
        for (int v = 0; v < nv; v++) {
            __m512 r = _mm512_mul_ps(acc[m][v], alpha);
            if (t->c) {
                float *d = t->c + m * t->ldc + v * LANES;
                if (with_c)
                    r = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(k[v], d), r);
                _mm512_mask_storeu_ps(d, k[v], r);
            } else {
                uint16_t *d = t->c16 + m * t->ldc + v * LANES;
                if (with_c) {
                    __m512i h = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k[v], d));
                    r = _mm512_fmadd_ps(beta, _mm512_castsi512_ps(_mm512_slli_epi32(h, 16)),
                                        r);
                }
                _mm256_mask_storeu_epi16(d, k[v], round16(_mm512_castps_si512(r)));
            }
        }
    }
}

NATIVE static void tile_native(const tile_args *t)
{
    switch ((t->cols + LANES - 1) / LANES) {
    case 1:
        tile_nv(t, 1);
        break;
    case 2:
        tile_nv(t, 2);
        break;
    case 3:
        tile_nv(t, 3);
        break;
    default:
        tile_nv(t, 4);
        break;
    }
}

#endif /* BF_BUILT */

/* ---- the driver ---- */

#define WS_ALIGN 64
/* bytes of packed B a chunk runs its rows against at a time (L2-sized) */
#define B_BLOCK_BYTES (512 * 1024)
/* multiply-adds per chunk of tiles, and elements per chunk of packing */
#define TILE_GRAIN (1 << 20)
#define PACK_GRAIN (1 << 15)

typedef void (*pack_fn)(uint16_t *dst, const uint16_t *src, int64_t ld, int item_major,
                        int items, int64_t K);

typedef struct sbgemm_job {
    void (*tile)(const tile_args *);
    pack_fn pack_a, pack_b;
    float *c;
    uint16_t *c16;
    int64_t ldc;
    const uint16_t *A, *B;
    int64_t lda, ldb;
    int ta, tb;
    float alpha, beta;
    int64_t M, N, K, kp;
    int64_t mp, np;      /* panels of A (MR rows) and of B (NR columns) */
    int64_t nblock;      /* panels of B per block of job 2 */
    uint16_t *pa, *pb;
} sbgemm_job;

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static size_t panels_bytes(int64_t panels, int W, int64_t K)
{
    size_t bytes = (size_t)panels * (size_t)W * (size_t)((K + 1) / 2) * 2 * sizeof(uint16_t);
    return (bytes + WS_ALIGN - 1) / WS_ALIGN * WS_ALIGN;
}

size_t cpu_sbgemm_workspace(int64_t M, int64_t N, int64_t K)
{
    if (M <= 0 || N <= 0 || K <= 0)
        return 0;
    return panels_bytes((M + MR - 1) / MR, MR, K) + panels_bytes((N + NR - 1) / NR, NR, K)
        + WS_ALIGN;
}

/* job 1: items [0, mp) are the panels of A, [mp, mp + np) those of B */
static void pack_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const sbgemm_job *j = arg;
    (void)chunk;
    for (int64_t i = begin; i < end; i++) {
        if (i < j->mp) {
            int64_t r0 = i * MR;
            int rows = (int)min64(MR, j->M - r0);
            /* op(A) row r, k: A[r*lda + k], or with ta A[k*lda + r] */
            j->pack_a(j->pa + i * MR * j->kp * 2, j->A + (j->ta ? r0 : r0 * j->lda),
                      j->lda, !j->ta, rows, j->K);
        } else {
            int64_t c0 = (i - j->mp) * NR;
            int cols = (int)min64(NR, j->N - c0);
            /* op(B) k, column n: B[k*ldb + n], or with tb B[n*ldb + k] */
            j->pack_b(j->pb + (i - j->mp) * NR * j->kp * 2,
                      j->B + (j->tb ? c0 * j->ldb : c0), j->ldb, j->tb, cols, j->K);
        }
    }
}

/* job 2: items are the panels of A, i.e. MR-row strips of C */
static void tile_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const sbgemm_job *j = arg;
    (void)chunk;
    tile_args t;
    t.kp = j->kp;
    t.ldc = j->ldc;
    t.alpha = j->alpha;
    t.beta = j->beta;
    for (int64_t jb = 0; jb < j->np; jb += j->nblock) {
        int64_t je = min64(j->np, jb + j->nblock);
        for (int64_t i = begin; i < end; i++) {
            int64_t r0 = i * MR;
            t.a = j->pa + i * MR * j->kp * 2;
            t.rows = (int)min64(MR, j->M - r0);
            for (int64_t jj = jb; jj < je; jj++) {
                int64_t c0 = jj * NR;
                t.b = j->pb + jj * NR * j->kp * 2;
                t.cols = (int)min64(NR, j->N - c0);
                t.c = j->c ? j->c + r0 * j->ldc + c0 : NULL;
                t.c16 = j->c16 ? j->c16 + r0 * j->ldc + c0 : NULL;
                j->tile(&t);
            }
        }
    }
}

/* C = beta C, C not read when beta == 0 */
static void scale_c(float *c, uint16_t *c16, int64_t ldc, float beta, int64_t M, int64_t N)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t n = 0; n < N; n++) {
            if (c)
                c[i * ldc + n] = beta == 0.0f ? 0.0f : beta * c[i * ldc + n];
            else
                c16[i * ldc + n] = beta == 0.0f ? 0
                    : cpu_bf16_round(beta * cpu_bf16_float(c16[i * ldc + n]));
        }
}

int cpu_sbgemm_ex(cpu_pool *pool, cpu_bf16_path path, float *C, uint16_t *C16,
                  int64_t ldc, int ta, const uint16_t *A, int64_t lda, int tb,
                  const uint16_t *B, int64_t ldb, float alpha, float beta, void *ws,
                  int64_t M, int64_t N, int64_t K)
{
    if (M < 0 || N < 0 || K < 0 || (!C == !C16))
        return EINVAL;
    int64_t a_cols = ta ? M : K, b_cols = tb ? K : N;
    if (lda < (a_cols > 1 ? a_cols : 1) || ldb < (b_cols > 1 ? b_cols : 1)
        || ldc < (N > 1 ? N : 1))
        return EINVAL;
    int native = 0;
    if (path == CPU_BF16_NATIVE) {
        if (!cpu_bf16_native())
            return EINVAL;
        native = 1;
    } else if (path == CPU_BF16_AUTO) {
        native = cpu_bf16_native();
    } else if (path != CPU_BF16_PORTABLE) {
        return EINVAL;
    }
    if (M == 0 || N == 0)
        return 0;
    if (K == 0 || alpha == 0.0f) {
        scale_c(C, C16, ldc, beta, M, N);
        return 0;
    }
    if (!A || !B)
        return EINVAL;

    sbgemm_job j = {
        .c = C, .c16 = C16, .ldc = ldc, .A = A, .B = B, .lda = lda, .ldb = ldb,
        .ta = ta, .tb = tb, .alpha = alpha, .beta = beta, .M = M, .N = N, .K = K,
        .kp = (K + 1) / 2, .mp = (M + MR - 1) / MR, .np = (N + NR - 1) / NR,
    };
    j.tile = tile_portable;
    j.pack_a = pack_a_portable;
    j.pack_b = pack_b_portable;
#ifdef BF_BUILT
    if (native) {
        j.tile = tile_native;
        j.pack_a = pack_a_native;
        j.pack_b = pack_b_native;
    }
#else
    (void)native;
#endif
    size_t panel_b = (size_t)NR * (size_t)j.kp * 2 * sizeof(uint16_t);
    j.nblock = (int64_t)(B_BLOCK_BYTES / panel_b);
    if (j.nblock < 1)
        j.nblock = 1;

    void *own = NULL;
    if (!ws) {
        own = malloc(cpu_sbgemm_workspace(M, N, K));
        if (!own)
            return ENOMEM;
        ws = own;
    }
    uintptr_t base = ((uintptr_t)ws + WS_ALIGN - 1) / WS_ALIGN * WS_ALIGN;
    j.pa = (uint16_t *)base;
    j.pb = (uint16_t *)(base + panels_bytes(j.mp, MR, K));

    int64_t items = j.mp + j.np, elems = (M + N) * K;
    cpu_pool_run(pool, pack_chunk, &j, items, cpu_pool_chunks(pool, items, elems, PACK_GRAIN),
                 1, elems);
    int64_t macs = M * N * K;
    cpu_pool_run(pool, tile_chunk, &j, j.mp, cpu_pool_chunks(pool, j.mp, macs, TILE_GRAIN),
                 1, macs);
    free(own);
    return 0;
}

int cpu_sbgemm(cpu_pool *pool, float *C, int64_t ldc, int ta, const uint16_t *A,
               int64_t lda, int tb, const uint16_t *B, int64_t ldb, float alpha,
               float beta, void *ws, int64_t M, int64_t N, int64_t K)
{
    return cpu_sbgemm_ex(pool, CPU_BF16_AUTO, C, NULL, ldc, ta, A, lda, tb, B, ldb, alpha,
                         beta, ws, M, N, K);
}
