/* cpu_bf16.h - bfloat16 conversions and a bf16 matrix product (sbgemm) for
 * the cpu backend.
 *
 * What this is:
 *   - scalar and array conversions between float and bf16 (the upper 16
 *     bits of an IEEE float; held as uint16_t): float -> bf16 rounds to
 *     nearest, ties to even, keeps infinities and denormals (rounded like
 *     any other value) and turns every NaN into a quiet NaN of the same
 *     sign and upper payload; bf16 -> float is exact.
 *   - cpu_sbgemm: C (M,N) float = alpha op(A) op(B) + beta C with A and B
 *     in bf16, the products summed in float, row-major with the transpose
 *     flags and leading dimensions of cblas_sgemm(CblasRowMajor, ...).
 *     Optionally C in bf16 (read, when beta != 0, and written rounded to
 *     nearest even).
 *
 * Two implementations of the product share one driver (packing, blocking,
 * threading): a native one on AVX-512 BF16 (vdpbf16ps) and a portable one
 * in plain C, picked at run time by cpu_bf16_native() unless the caller
 * names one.  Both sum each output in the same order: k ascending in pairs
 * (k, k+1), acc += a[k+1] b[k+1] then acc += a[k] b[k], each addition
 * rounded to float (products of two bf16 values are exact in float), with
 * denormals flushed (vdpbf16ps always does; the pool runs the portable
 * path with FTZ/DAZ set), then alpha acc, then + beta C by one fused
 * multiply-add.  So an output depends only on its own row of op(A) and
 * column of op(B): results are bit-identical from run to run and for any
 * thread count, on one path.  (The two paths agree to within float
 * rounding; they give the same bits too where the hardware follows the
 * description of vdpbf16ps in Intel's SDM and no product falls below
 * float's normal range.)
 *
 * What this is not: a general BLAS (no complex, no other layouts, no
 * strided batches), a tuned kernel for machines without AVX-512 BF16 (the
 * portable path is correct and merely vectorizable: the backend's bf16
 * gemm op widens to f32 and calls sgemm there instead, and uses this
 * product only where cpu_bf16_native(); see cpu.c), or the op itself (the
 * batches, the bias and activation epilogue and the choice of path are
 * cpu.c's).  Nothing here keeps state between calls except the cached CPU
 * check.
 */
#ifndef MLTK_CPU_BF16_H
#define MLTK_CPU_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pool.h"

/* The cpu backend compiles cpu_bf16.c once per instruction set level
 * (CPU_ISA, see cpu_internal.h); each copy's names carry the level's
 * suffix there.  Built alone (no CPU_ISA), the names are as below. */
#if defined(CPU_ISA)
#if CPU_ISA == 2
#define CPU_BF16_SYM(name) name##_v4
#elif CPU_ISA == 1
#define CPU_BF16_SYM(name) name##_v3
#else
#define CPU_BF16_SYM(name) name##_generic
#endif
#define cpu_bf16_native CPU_BF16_SYM(cpu_bf16_native)
#define cpu_bf16_from_f32 CPU_BF16_SYM(cpu_bf16_from_f32)
#define cpu_bf16_to_f32 CPU_BF16_SYM(cpu_bf16_to_f32)
#define cpu_sbgemm_workspace CPU_BF16_SYM(cpu_sbgemm_workspace)
#define cpu_sbgemm CPU_BF16_SYM(cpu_sbgemm)
#define cpu_sbgemm_ex CPU_BF16_SYM(cpu_sbgemm_ex)
#endif

/* ---- scalar conversions ---- */

/* float -> bf16, round to nearest even; NaN -> quiet NaN */
static inline uint16_t cpu_bf16_round(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x0040u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

/* bf16 -> float, exact */
static inline float cpu_bf16_float(uint16_t h)
{
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

/* ---- capability and paths ---- */

/* Nonzero when this CPU and OS run AVX-512 F, BW, VL and BF16 code: cpuid
 * leaf 7 (subleaf 0: F, BW, VL; subleaf 1 EAX bit 5: BF16), OSXSAVE, and
 * XCR0 enabling the SSE, AVX, opmask and ZMM states.  Checked once, then
 * cached; safe to call from any thread. */
int cpu_bf16_native(void);

typedef enum cpu_bf16_path {
    CPU_BF16_AUTO = 0,     /* native where cpu_bf16_native(), else portable */
    CPU_BF16_PORTABLE,     /* plain C, any machine */
    CPU_BF16_NATIVE        /* AVX-512 BF16; EINVAL where not available */
} cpu_bf16_path;

/* ---- array conversions ---- */

/* dst[i] = cpu_bf16_round(src[i]) for i < n: dst (n) <- src (n).  No
 * state and no alignment needs, so a parallel loop may convert any split
 * of [0, n) in chunks; every path gives the same bits. */
void cpu_bf16_from_f32(uint16_t *dst, const float *src, int64_t n);
/* dst[i] = cpu_bf16_float(src[i]) for i < n: dst (n) <- src (n) */
void cpu_bf16_to_f32(float *dst, const uint16_t *src, int64_t n);

/* ---- matrix product ---- */

/* MR rows of op(A) by NR columns of op(B) per micro-tile */
#define CPU_SBGEMM_MR 6
#define CPU_SBGEMM_NR 64

/* Bytes of workspace cpu_sbgemm needs for these dimensions (the packed
 * panels of both operands, 64-byte aligned inside). */
size_t cpu_sbgemm_workspace(int64_t M, int64_t N, int64_t K);

/* C (M,N) = alpha op(A) op(B) + beta C, where
 *   op(A) (M,K) is A (M,K) row-major with row stride lda, or with ta A^T
 *         of A (K,M), row stride lda;
 *   op(B) (K,N) is B (K,N), row stride ldb, or with tb B^T of B (N,K);
 *   C (M,N) row-major with row stride ldc;
 * products summed in float (see the top of this file for the order).
 * beta == 0: C is written, never read (NaN in it does not propagate).
 * K == 0 or alpha == 0: C = beta C, A and B not read.
 *
 * `pool` (NULL: the calling thread alone) runs the packing and the tiles
 * in chunks that depend only on the dimensions and its thread count.
 * `ws` is cpu_sbgemm_workspace(M, N, K) bytes of scratch, borrowed for the
 * call (NULL: allocated and freed here).  Every pointer is borrowed for
 * the call only; C must not overlap A, B or ws.
 *
 * Returns 0, EINVAL (negative dimensions, leading dimensions too small,
 * a NULL operand that would be read, or CPU_BF16_NATIVE asked for where
 * it is not available) or ENOMEM. */
int cpu_sbgemm(cpu_pool *pool, float *C, int64_t ldc, int ta, const uint16_t *A,
               int64_t lda, int tb, const uint16_t *B, int64_t ldb, float alpha,
               float beta, void *ws, int64_t M, int64_t N, int64_t K);

/* cpu_sbgemm with a choice of path and of the type of C: exactly one of C
 * (float) and C16 (bf16, read as exact floats when beta != 0 and written
 * rounded to nearest even from the same float result) is non-NULL. */
int cpu_sbgemm_ex(cpu_pool *pool, cpu_bf16_path path, float *C, uint16_t *C16,
                  int64_t ldc, int ta, const uint16_t *A, int64_t lda, int tb,
                  const uint16_t *B, int64_t ldb, float alpha, float beta, void *ws,
                  int64_t M, int64_t N, int64_t K);

#endif /* MLTK_CPU_BF16_H */
