/* cpu.c - the cpu backend: the op table of backend.h (plugin ABI 2) on the
 * host, in f32.
 *
 * What this is: `supports`, `workspace` and `run`, one switch over the op
 * id that unpacks a checked call's typed tensors (data pointers, sizes
 * from the shapes, leading dimensions from the strides where an op allows
 * them: gemm and copy_2d) and params into the kernels: the core ops
 * here, the other families in cpu_conv.c, cpu_norm.c, cpu_misc.c and
 * cpu_optim.c (cpu_internal.h).  Every op runs
 * in f32; beyond that, cast converts between f32, bf16 and f16 (round to
 * nearest even), gather_rows moves rows of any dtype, and gemm and the
 * three conv ops take bf16 inputs (f32 or bf16 results, f32 accumulation;
 * see "bf16" below, and cpu_bf16.c for the bf16 product).  The core checks
 * each call against its op's contract before `run` sees it (backend.h),
 * so nothing here checks sizes, pointers or parameter ranges again; what
 * is refused is what the core cannot see (embedding ids, gather indices:
 * data in backend memory) or what OpenBLAS cannot take (dimensions beyond
 * int), with a message in *err.
 *
 * gemm goes through OpenBLAS (cblas_sgemm, row-major; a batch is a loop
 * of products; the bias and activation epilogue is a second pass) and our
 * own kernels do everything else, split over a persistent thread pool
 * (pool.c).  Kernels are plain loops written to auto-vectorize.  This
 * file and the other kernel files are compiled once per instruction set
 * level (baseline x86-64, x86-64-v3, x86-64-v4: CPU_ISA, see
 * cpu_internal.h), each into its own table of these entry points
 * (cpu_isa_table); cpu_plugin.c holds the vtable (lifetime, memory) and
 * picks a level per context, the best the CPU runs unless MLTK_CPU_ISA
 * says otherwise, so a generic distribution build still runs wide vectors
 * where the CPU has them and every level can be tested.  Results are
 * bit-identical from run to run for a given thread count and level:
 * partitions are static and per-chunk partial sums are combined in chunk
 * order.
 *
 * OpenBLAS and the pool never run at the same time: ops are sequential,
 * BLAS is only called from the calling thread, and the pool's workers are
 * told to sleep before each gemm.  No op allocates memory, except that
 * the bf16 gemm grows one scratch buffer of the context to the largest
 * call it has seen (the conv ops get theirs in the workspace).  Our kernels
 * run with denormals flushed to zero (see pool.c); gemm is OpenBLAS's.
 *
 * What this is not: a tensor library.  There is no broadcasting, no
 * arithmetic in a dtype other than f32 (int32 labels and indices are read
 * as such; bf16 values are widened to f32 or multiplied by vdpbf16ps into
 * f32 sums), and no asynchrony: every op has finished when it returns, so
 * `sync` has nothing to do.
 */
#include "config.h"

#include <assert.h>
#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mltk/plugin.h>
#include <mltk/rng.h>

#include "pool.h"
#include "cpu_bf16.h"
#include "cpu_internal.h"

#ifndef CPU_ISA
#error "cpu.c is compiled once per instruction set level, with CPU_ISA set (local.mk)"
#endif

/* build-time choices and the context: cpu_internal.h */

/* ---- scalar math that vectorizes ---- */

static inline float bits_to_f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t f_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

#define EXP_HI 88.3f      /* 2^k stays finite (k <= 127) */
#define EXP_LO (-87.3f)   /* 2^k stays normal (k >= -126) */
#define RND_MAGIC 12582912.0f  /* 1.5 * 2^23: adding it rounds to integer */

/* e^x = 2^k e^r with x = k ln2 + r, |r| <= ln2/2.  Returns e^r - 1 (degree-7
 * Taylor, truncation error below 1e-8) and sets *scale = 2^k.  x must lie
 * in [EXP_LO, EXP_HI] or be NaN. */
static inline float exp_reduce(float x, float *scale)
{
    float kf = x * 1.44269504088896341f + RND_MAGIC;
    uint32_t kb = f_to_bits(kf) - f_to_bits(RND_MAGIC);
    kf -= RND_MAGIC;
    float r = x - kf * 0.693145751953125f;
    r = r - kf * 1.42860676533018e-06f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    *scale = bits_to_f((kb + 127u) << 23);
    return r + (r * r) * p;
}

static inline float f_exp(float x)
{
    float xc = x < EXP_LO ? EXP_LO : x;
    xc = xc > EXP_HI ? EXP_HI : xc;
    float s, p = exp_reduce(xc, &s);
    float e = s + s * p;
    e = x > 88.72f ? INFINITY : e;
    return x < EXP_LO ? 0.0f : e;
}

/* e^x - 1 for x <= 0, accurate near 0 */
static inline float f_expm1_neg(float x)
{
    float xc = x < EXP_LO ? EXP_LO : x;
    float s, p = exp_reduce(xc, &s);
    return s * p + (s - 1.0f);
}

static inline float f_sigmoid(float x)
{
    return 1.0f / (1.0f + f_exp(-x));
}

/* tanh|x| = -t / (2 + t) with t = e^(-2|x|) - 1; sign restored from x */
static inline float f_tanh(float x)
{
    uint32_t sign = f_to_bits(x) & 0x80000000u;
    float a = bits_to_f(f_to_bits(x) & 0x7fffffffu);
    float t = f_expm1_neg(-2.0f * a);
    float r = -t / (2.0f + t);
    return bits_to_f(f_to_bits(r) | sign);
}

/* the activations below are inlined into every loop that uses them,
 * which the vectorizer needs and the inliner's size limits would refuse */
#define ALWAYS_INLINE __attribute__((always_inline))

/* e^(-x^2 / 2) to a few ulp: x^2 is exact in double, split into the float
 * h and the remainder l, so e^(-(h + l)/2) = e^(-h/2) (1 - l/2) loses
 * nothing to the rounding of x^2 (which alone would cost |x|^2 ulp).
 * |x| is capped at 20, where the result is already exactly 0: beyond
 * ~1.8e19, h would be infinite and l -inf, and 0 * inf a NaN.  (The cap
 * keeps NaN: a comparison with NaN is false.) */
static inline ALWAYS_INLINE float f_exp_half_sq(float x)
{
    float a = fabsf(x);
    a = a > 20.0f ? 20.0f : a;
    double xx = (double)a * (double)a;
    float h = (float)xx;
    float l = (float)(xx - (double)h);
    return f_exp(-0.5f * h) * (1.0f - 0.5f * l);
}

/* Standard normal tail: Phi(-|x|) = 0.5 erfc(|x| / sqrt 2), accurate to a
 * few 1e-7 relative over the whole line (no cancellation in either tail,
 * unlike 0.5 (1 + erf)).  For |z| < 1, erf(z) = z P(z^2); beyond,
 * erfc(z) = exp(-z^2) t Q(t) with t = 1 / (1 + z/2).  P and Q are
 * least-squares fits (relative error) of ours on Chebyshev nodes; both
 * branches are computed and one selected, so the loop vectorizes. */
static inline ALWAYS_INLINE float f_ncdf_tail(float x)
{
    float a = fabsf(x) * 0.70710678118654752f;
    float as = a < 1.0f ? a : 1.0f, ac = a < 1.0f ? 1.0f : a;
    float a2 = as * as;
    float p = 7.898210209e-05f;
    p = p * a2 - 8.024354129e-04f;
    p = p * a2 + 5.190053578e-03f;
    p = p * a2 - 2.685480854e-02f;
    p = p * a2 + 1.128361243e-01f;
    p = p * a2 - 3.761262884e-01f;
    p = p * a2 + 1.128379167e+00f;
    float small = 0.5f - 0.5f * (as * p);
    float t = 1.0f / (1.0f + 0.5f * ac);
    float q = 2.348900756e-02f;
    q = q * t + 2.930082938e-02f;
    q = q * t - 1.557649920e-01f;
    q = q * t + 4.347482410e-02f;
    q = q * t + 7.168328868e-02f;
    q = q * t + 1.779203101e-01f;
    q = q * t + 2.467289004e-01f;
    q = q * t + 2.820973120e-01f;
    q = q * t + 2.820947820e-01f;
    float big = 0.5f * f_exp_half_sq(x) * (t * q);
    /* blend by arithmetic, not a branch: both are finite */
    float m = (float)(a < 1.0f);
    return m * small + (1.0f - m) * big;
}

/* Phi(x), the standard normal distribution function: the tail for x < 0,
 * 1 - the tail otherwise */
static inline ALWAYS_INLINE float f_ncdf(float x)
{
    float h = f_ncdf_tail(x);
    float neg = (float)(x < 0.0f);
    return (1.0f - neg) + (2.0f * neg - 1.0f) * h;
}

#define GELU_K 0.7978845608028654f   /* sqrt(2 / pi) */
#define GELU_C 0.044715f
#define INV_SQRT_2PI 0.3989422804014327f

/* x sigmoid(2 u) == 0.5 x (1 + tanh u), u = sqrt(2/pi) (x + 0.044715 x^3):
 * the same function without the cancellation of 1 + tanh u for x < 0 */
static inline ALWAYS_INLINE float f_gelu_tanh(float x)
{
    float u = GELU_K * (x + GELU_C * x * x * x);
    return x * f_sigmoid(2.0f * u);
}

/* x is capped at +-11, where s is exactly 1 or 0 and the derivative
 * exactly 1 or 0: beyond ~1e14, x du overflows and inf * s (1 - s) would
 * be a NaN.  (NaN passes through the cap.) */
static inline ALWAYS_INLINE float f_dgelu_tanh(float x)
{
    x = x > 11.0f ? 11.0f : x;
    x = x < -11.0f ? -11.0f : x;
    float u = GELU_K * (x + GELU_C * x * x * x);
    float s = f_sigmoid(2.0f * u);
    float du = GELU_K * (1.0f + 3.0f * GELU_C * x * x);
    return s + x * (2.0f * du) * s * (1.0f - s);
}

/* x Phi(x) and its derivative Phi(x) + x phi(x) */
static inline ALWAYS_INLINE float f_gelu(float x)
{
    return x * f_ncdf(x);
}

static inline ALWAYS_INLINE float f_dgelu(float x)
{
    return f_ncdf(x) + x * INV_SQRT_2PI * f_exp_half_sq(x);
}

/* alpha (e^x - 1) for x <= 0, x for x > 0 */
static inline ALWAYS_INLINE float f_elu(float x, float alpha)
{
    float m = x < 0.0f ? x : 0.0f;
    float e = alpha * f_expm1_neg(m);
    return x > 0.0f ? x : e;
}

/* Elementwise loops may run in place (output == an input, same index):
 * there is no dependence between iterations, which IVDEP tells the
 * vectorizer so that it needs no run-time overlap check. */
#if defined(__GNUC__) && !defined(__clang__)
#define IVDEP _Pragma("GCC ivdep")
#else
#define IVDEP
#endif

/* OUT = act(IN) for i in [0, N); OUT and IN are expressions in i */
#define ACT_LOOP(ACT, ALPHA, N, OUT, IN)                                     \
    do {                                                                      \
        const float alpha_ = (ALPHA);                                         \
        switch (ACT) {                                                        \
        case MLTK_ACT_RELU:                                                   \
            IVDEP for (int64_t i = 0; i < (N); i++) { float v = IN; OUT = v < 0.0f ? 0.0f : v; } \
            break;                                                            \
        case MLTK_ACT_LEAKY_RELU:                                             \
            IVDEP for (int64_t i = 0; i < (N); i++) { float v = IN; OUT = v > 0.0f ? v : v * alpha_; } \
            break;                                                            \
        case MLTK_ACT_SIGMOID:                                                \
            IVDEP for (int64_t i = 0; i < (N); i++) { float v = IN; OUT = f_sigmoid(v); } \
            break;                                                            \
        case MLTK_ACT_TANH:                                                   \
            IVDEP for (int64_t i = 0; i < (N); i++) { float v = IN; OUT = f_tanh(v); } \
            break;                                                            \
        case MLTK_ACT_ELU:                                                    \
            IVDEP for (int64_t i = 0; i < (N); i++) { float v = IN; OUT = f_elu(v, alpha_); } \
            break;                                                            \
        case MLTK_ACT_GELU_TANH:                                              \
            IVDEP for (int64_t i = 0; i < (N); i++) { float v = IN; OUT = f_gelu_tanh(v); } \
            break;                                                            \
        case MLTK_ACT_GELU:                                                   \
            IVDEP for (int64_t i = 0; i < (N); i++) { float v = IN; OUT = f_gelu(v); } \
            break;                                                            \
        default:                                                              \
            IVDEP for (int64_t i = 0; i < (N); i++) { float v = IN; OUT = v; } \
            break;                                                            \
        }                                                                     \
    } while (0)

/* ---- elementwise kernels ---- */
/* Pointers are not restrict: outputs may equal inputs (see IVDEP). */

KERNEL static void k_fill(float *x, float v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = v;
}

/* y = a y */
KERNEL static void k_scale(float *y, float a, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a * y[i];
}

/* y = a x + b y; with b == 0, y = a x */
KERNEL static void k_axpby(float *y, float a, const float *x, float b, int64_t n)
{
    if (b == 0.0f) {
        IVDEP for (int64_t i = 0; i < n; i++)
            y[i] = a * x[i];
    } else {
        IVDEP for (int64_t i = 0; i < n; i++)
            y[i] = a * x[i] + b * y[i];
    }
}

KERNEL static void k_mul(float *z, const float *x, const float *y, int64_t n)
{
    IVDEP for (int64_t i = 0; i < n; i++)
        z[i] = x[i] * y[i];
}

KERNEL static void k_act_fwd(mltk_act act, float alpha, float *y,
                             const float *x, int64_t n)
{
    ACT_LOOP(act, alpha, n, y[i], x[i]);
}

/* dx = dy * act'(.) computed from `s`, which is the activation's output y
 * when s_is_y, else its input x */
KERNEL static void k_act_bwd(mltk_act act, float alpha, float *dx,
                             const float *dy, const float *s, int s_is_y,
                             int64_t n)
{
    switch (act) {
    case MLTK_ACT_RELU:  /* y > 0 iff x > 0 */
        IVDEP for (int64_t i = 0; i < n; i++)
            dx[i] = s[i] > 0.0f ? dy[i] : 0.0f;
        break;
    case MLTK_ACT_LEAKY_RELU:
        IVDEP for (int64_t i = 0; i < n; i++)
            dx[i] = s[i] > 0.0f ? dy[i] : dy[i] * alpha;
        break;
    case MLTK_ACT_SIGMOID:
        if (s_is_y) {
            IVDEP for (int64_t i = 0; i < n; i++)
                dx[i] = dy[i] * (1.0f - s[i]) * s[i];
        } else {
            IVDEP for (int64_t i = 0; i < n; i++) {
                float y = f_sigmoid(s[i]);
                dx[i] = dy[i] * (1.0f - y) * y;
            }
        }
        break;
    case MLTK_ACT_TANH:
        if (s_is_y) {
            IVDEP for (int64_t i = 0; i < n; i++)
                dx[i] = dy[i] * (1.0f - s[i] * s[i]);
        } else {
            IVDEP for (int64_t i = 0; i < n; i++) {
                float y = f_tanh(s[i]);
                dx[i] = dy[i] * (1.0f - y * y);
            }
        }
        break;
    case MLTK_ACT_ELU:  /* from y (alpha >= 0): y + alpha = alpha e^x */
        if (s_is_y) {
            IVDEP for (int64_t i = 0; i < n; i++)
                dx[i] = s[i] > 0.0f ? dy[i] : dy[i] * (s[i] + alpha);
        } else {
            IVDEP for (int64_t i = 0; i < n; i++) {
                float v = s[i], m = v < 0.0f ? v : 0.0f;
                float d = alpha * f_exp(m);
                dx[i] = v > 0.0f ? dy[i] : dy[i] * d;
            }
        }
        break;
    case MLTK_ACT_GELU_TANH:  /* always from x */
        IVDEP for (int64_t i = 0; i < n; i++)
            dx[i] = dy[i] * f_dgelu_tanh(s[i]);
        break;
    case MLTK_ACT_GELU:
        IVDEP for (int64_t i = 0; i < n; i++)
            dx[i] = dy[i] * f_dgelu(s[i]);
        break;
    default:
        IVDEP for (int64_t i = 0; i < n; i++)
            dx[i] = dy[i];
        break;
    }
}

/* y(rows, cols), row stride ld, = act(y + b); b (cols) may be NULL */
KERNEL static void k_bias_act(float *restrict y, const float *restrict b,
                              int64_t rows, int64_t cols, int64_t ld, mltk_act act,
                              float alpha)
{
    for (int64_t r = 0; r < rows; r++) {
        float *restrict yr = y + r * ld;
        if (b)
            ACT_LOOP(act, alpha, cols, yr[i], yr[i] + b[i]);
        else
            ACT_LOOP(act, alpha, cols, yr[i], yr[i]);
    }
}

/* ---- conversion and check kernels ---- */

#define LANES 16   /* independent accumulators of a reduction */

/* f32 -> bf16 (the upper half), round to nearest even; a NaN stays a NaN
 * (quiet, same sign and upper payload) */
static inline uint16_t f_to_bf16(float f)
{
    uint32_t x = f_to_bits(f);
    uint32_t r = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
    uint32_t q = (x >> 16) | 0x0040u;
    return (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? q : r);
}

static inline float bf16_to_f(uint16_t h)
{
    return bits_to_f((uint32_t)h << 16);
}

/* f32 -> IEEE binary16, round to nearest even: magnitudes from 65520 up
 * overflow to inf; below 2^-14 the result is subnormal (the sum with 0.5
 * rounds at the subnormals' spacing 2^-24, in the float unit's own
 * round-to-nearest-even); a NaN stays a NaN (quiet, same sign, upper
 * payload).  Branch-free, so that it vectorizes. */
static inline uint16_t f_to_f16(float f)
{
    uint32_t x = f_to_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t a = x & 0x7fffffffu;
    uint32_t norm = (a + 0xc8000fffu + ((a >> 13) & 1u)) >> 13;  /* rebias -112 */
    uint32_t sub = f_to_bits(bits_to_f(a) + 0.5f) - 0x3f000000u;
    uint32_t nan = 0x7e00u | ((a >> 13) & 0x3ffu);
    uint32_t r = a < 0x38800000u ? sub : norm;
    r = a >= 0x47800000u ? 0x7c00u : r;   /* >= 65536: inf (65520 rounds there) */
    r = a > 0x7f800000u ? nan : r;
    return (uint16_t)(r | sign);
}

/* IEEE binary16 -> f32, exact */
static inline float f16_to_f(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = h & 0x7c00u, m = h & 0x3ffu;
    uint32_t norm = ((uint32_t)(h & 0x7fffu) << 13) + 0x38000000u;  /* rebias +112 */
    uint32_t inf = ((uint32_t)(h & 0x7fffu) << 13) | 0x7f800000u;
    float sub = (float)m * 0x1p-24f;   /* exact: m < 2^10 */
    uint32_t r = e == 0x7c00u ? inf : norm;
    r = e == 0 ? f_to_bits(sub) : r;
    return bits_to_f(r | sign);
}

KERNEL static void k_f32_to_bf16(uint16_t *restrict y, const float *restrict x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = f_to_bf16(x[i]);
}

KERNEL static void k_bf16_to_f32(float *restrict y, const uint16_t *restrict x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = bf16_to_f(x[i]);
}

KERNEL static void k_f32_to_f16(uint16_t *restrict y, const float *restrict x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = f_to_f16(x[i]);
}

KERNEL static void k_f16_to_f32(float *restrict y, const uint16_t *restrict x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = f16_to_f(x[i]);
}

/* 1 if any x[i] is a NaN or an infinity (exponent all ones), else 0 */
KERNEL static int k_nonfinite(const float *restrict x, int64_t n)
{
    uint32_t acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++)
            acc[j] |= (f_to_bits(x[i + j]) & 0x7f800000u) == 0x7f800000u;
    for (; i < n; i++)
        acc[0] |= (f_to_bits(x[i]) & 0x7f800000u) == 0x7f800000u;
    uint32_t any = 0;
    for (int j = 0; j < LANES; j++)
        any |= acc[j];
    return any != 0;
}

/* ---- reduction kernels ---- */

/* sum of x[i] (squares if `sq`) in double, LANES independent partial sums
 * combined in a fixed order */
KERNEL static double k_sum(const float *restrict x, int64_t n, int sq)
{
    double acc[LANES] = {0};
    int64_t i = 0;
    if (sq) {
        for (; i + LANES <= n; i += LANES)
            for (int j = 0; j < LANES; j++) {
                double v = x[i + j];
                acc[j] += v * v;
            }
        for (; i < n; i++) {
            double v = x[i];
            acc[0] += v * v;
        }
    } else {
        for (; i + LANES <= n; i += LANES)
            for (int j = 0; j < LANES; j++)
                acc[j] += x[i + j];
        for (; i < n; i++)
            acc[0] += x[i];
    }
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++)
            acc[j] += acc[j + w];
    return acc[0];
}

/* out(cols) = sum over rows of x(rows, ld) restricted to `cols` columns,
 * + beta * out; double accumulation, a tile of columns at a time */
#define COL_TILE 256
KERNEL static void k_sum_rows(float *restrict out, const float *restrict x,
                              int64_t rows, int64_t cols, int64_t ld, float beta)
{
    double acc[COL_TILE];
    for (int64_t c0 = 0; c0 < cols; c0 += COL_TILE) {
        int64_t w = cols - c0 < COL_TILE ? cols - c0 : COL_TILE;
        for (int64_t j = 0; j < w; j++)
            acc[j] = 0.0;
        for (int64_t r = 0; r < rows; r++) {
            const float *restrict xr = x + r * ld + c0;
            for (int64_t j = 0; j < w; j++)
                acc[j] += xr[j];
        }
        if (beta == 0.0f) {
            for (int64_t j = 0; j < w; j++)
                out[c0 + j] = (float)acc[j];
        } else {
            for (int64_t j = 0; j < w; j++)
                out[c0 + j] = (float)(acc[j] + (double)beta * out[c0 + j]);
        }
    }
}

static inline __attribute__((always_inline)) float row_max(const float *restrict x, int64_t n)
{
    float m[LANES];
    int64_t i = 0;
    if (n < LANES) {
        float r = x[0];
        for (i = 1; i < n; i++)
            r = x[i] > r ? x[i] : r;
        return r;
    }
    for (int j = 0; j < LANES; j++)
        m[j] = x[j];
    for (i = LANES; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++)
            m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
    for (; i < n; i++)
        m[0] = x[i] > m[0] ? x[i] : m[0];
    float r = m[0];
    for (int j = 1; j < LANES; j++)
        r = m[j] > r ? m[j] : r;
    return r;
}

/* e[i] = exp(x[i] - m); returns the float sum of e (fixed order) */
static inline __attribute__((always_inline)) float exp_shift_sum(float *restrict e, const float *restrict x,
                           float m, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        e[i] = f_exp(x[i] - m);
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++)
            acc[j] += e[i + j];
    for (; i < n; i++)
        acc[0] += e[i];
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int j = 0; j < w; j++)
            acc[j] += acc[j + w];
    return acc[0];
}

/* rows [0, n) of softmax cross-entropy; returns the sum of the row losses.
 * dl may be NULL (loss only). */
KERNEL static double k_softmax_xent(float *restrict dl, const float *restrict logits,
                                    const int32_t *restrict labels, int64_t n,
                                    int64_t C, float scale)
{
    float tile[COL_TILE];
    double total = 0.0;
    for (int64_t r = 0; r < n; r++) {
        const float *x = logits + r * C;
        int32_t y = labels[r];
        float m = row_max(x, C);
        float s = 0.0f;
        if (dl) {
            s = exp_shift_sum(dl + r * C, x, m, C);
        } else {
            for (int64_t c0 = 0; c0 < C; c0 += COL_TILE) {
                int64_t w = C - c0 < COL_TILE ? C - c0 : COL_TILE;
                s += exp_shift_sum(tile, x + c0, m, w);
            }
        }
        float lse = logf(s);
        total += (double)((m - x[y]) + lse);
        if (dl) {
            float *restrict d = dl + r * C;
            float inv = 1.0f / s;
            float ey = d[y];
            for (int64_t i = 0; i < C; i++)
                d[i] = d[i] * inv * scale;
            d[y] = (ey * inv - 1.0f) * scale;
        }
    }
    return total;
}

static int64_t k_count_correct(const float *restrict logits,
                               const int32_t *restrict labels, int64_t n, int64_t C)
{
    int64_t correct = 0;
    for (int64_t r = 0; r < n; r++) {
        const float *x = logits + r * C;
        int64_t best = 0;
        float bv = x[0];
        for (int64_t c = 1; c < C; c++)
            if (x[c] > bv) {
                bv = x[c];
                best = c;
            }
        correct += best == labels[r];
    }
    return correct;
}

/* ---- optimizer kernels ---- */

typedef struct sgd_args {
    float *p;
    const float *g;
    float *mom;
    const float *scale;             /* per-element lr factor, or NULL */
    float lr, momentum, damp1, wd;  /* damp1 = 1 - dampening */
    int nesterov, first;
} sgd_args;

/* torch.optim.SGD: d = g + wd p; buf = d (t == 1) or momentum buf +
 * (1 - dampening) d; d = nesterov ? d + momentum buf : buf; p -= lr d */
KERNEL static void k_sgd(float *restrict p, const float *restrict g,
                         float *restrict buf, int64_t n, const sgd_args *a)
{
    const float lr = a->lr, mu = a->momentum, damp1 = a->damp1, wd = a->wd;
    const int nesterov = a->nesterov;
    if (mu == 0.0f) {
        for (int64_t i = 0; i < n; i++) {
            float d = wd != 0.0f ? g[i] + wd * p[i] : g[i];
            p[i] = p[i] - lr * d;
        }
    } else if (a->first) {
        for (int64_t i = 0; i < n; i++) {
            float d = wd != 0.0f ? g[i] + wd * p[i] : g[i];
            buf[i] = d;
            d = nesterov ? d + mu * d : d;
            p[i] = p[i] - lr * d;
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            float d = wd != 0.0f ? g[i] + wd * p[i] : g[i];
            float b = mu * buf[i] + damp1 * d;
            buf[i] = b;
            d = nesterov ? d + mu * b : b;
            p[i] = p[i] - lr * d;
        }
    }
}

/* k_sgd with the rate lr * sc[i] per element; where sc[i] == 0, p[i]
 * keeps its bits (weight decay included) */
KERNEL static void k_sgd_scaled(float *restrict p, const float *restrict g,
                                float *restrict buf, const float *restrict sc,
                                int64_t n, const sgd_args *a)
{
    const float lr = a->lr, mu = a->momentum, damp1 = a->damp1, wd = a->wd;
    const int nesterov = a->nesterov;
    for (int64_t i = 0; i < n; i++) {
        float p0 = p[i];
        float d = wd != 0.0f ? g[i] + wd * p0 : g[i];
        if (mu != 0.0f) {
            float b = a->first ? d : mu * buf[i] + damp1 * d;
            buf[i] = b;
            d = nesterov ? d + mu * b : b;
        }
        float np = p0 - (lr * sc[i]) * d;
        p[i] = sc[i] != 0.0f ? np : p0;
    }
}

typedef struct adam_args {
    float *p;
    const float *g;
    float *m, *v;
    const float *scale;  /* per-element lr factor, or NULL */
    float b1, b2, omb1, omb2, eps, wd, pscale, step, bc2s;
    float lrwd;          /* lr * weight_decay when decoupled, else 0 */
    int l2;
} adam_args;

/* torch.optim.Adam / AdamW (1.x single-tensor form):
 * [AdamW: p *= 1 - lr wd]  [Adam: g += wd p]
 * m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 * p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps) */
KERNEL static void k_adam(float *restrict p, const float *restrict g,
                          float *restrict m, float *restrict v, int64_t n,
                          const adam_args *a)
{
    const float b1 = a->b1, b2 = a->b2, omb1 = a->omb1, omb2 = a->omb2;
    const float eps = a->eps, wd = a->wd, pscale = a->pscale;
    const float nstep = -a->step, bc2s = a->bc2s;
    const int l2 = a->l2;
    for (int64_t i = 0; i < n; i++) {
        float pi = p[i] * pscale;
        float gi = l2 ? g[i] + wd * pi : g[i];
        float mi = m[i] * b1 + omb1 * gi;
        float vi = v[i] * b2 + omb2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2s + eps;
        p[i] = pi + nstep * (mi / denom);
    }
}

/* k_adam with the rate lr * sc[i] per element (the decoupled decay too);
 * where sc[i] == 0, p[i] keeps its bits; sc[i] == 1 matches k_adam */
KERNEL static void k_adam_scaled(float *restrict p, const float *restrict g,
                                 float *restrict m, float *restrict v,
                                 const float *restrict sc, int64_t n, const adam_args *a)
{
    const float b1 = a->b1, b2 = a->b2, omb1 = a->omb1, omb2 = a->omb2;
    const float eps = a->eps, wd = a->wd, pscale = a->pscale, lrwd = a->lrwd;
    const float nstep = -a->step, bc2s = a->bc2s;
    const int l2 = a->l2;
    for (int64_t i = 0; i < n; i++) {
        float s = sc[i], p0 = p[i];
        float pi = p0 * (s == 1.0f ? pscale : 1.0f - lrwd * s);
        float gi = l2 ? g[i] + wd * pi : g[i];
        float mi = m[i] * b1 + omb1 * gi;
        float vi = v[i] * b2 + omb2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2s + eps;
        float np = pi + (nstep * s) * (mi / denom);
        p[i] = s != 0.0f ? np : p0;
    }
}

/* ---- parallel drivers ---- */

/* One argument block for every elementwise job; each op uses its fields. */
typedef struct ew_args {
    int op;
    float *y;
    const float *x, *x2;
    float a, b;
    mltk_act act;
    int flag;
    int64_t rows, cols, ld;
    uint64_t seed, offset;
    const void *extra;
    double *partials;
} ew_args;

enum {
    OP_FILL, OP_SCALE, OP_AXPBY, OP_MUL, OP_ACT_FWD, OP_ACT_BWD, OP_BIAS_ACT, OP_SUM, OP_SUMSQ, OP_SUM_ROWS, OP_UNIFORM, OP_NORMAL,
    OP_SGD, OP_ADAM, OP_NONFINITE
};

/* philox_u01_lanes (RNG_LANES blocks at once) is in cpu_internal.h */

/* x[i] = lo + (hi - lo) u(seed, offset + i) for i in [b, e).  The affine
 * map is not cloned per ISA, so it rounds the same way everywhere (no
 * FMA contraction): only the exact u comes from the vector kernel. */
static void rng_uniform_range(float *x, int64_t b, int64_t e, float lo,
                              float hi, uint64_t seed, uint64_t offset)
{
    const float span = hi - lo;
    int64_t i = b;
    /* element by element up to a block boundary, then RNG_LANES blocks at
     * a time, then element by element again */
    while (i < e && ((offset + (uint64_t)i) & 3) != 0) {
        x[i] = lo + span * mltk_rng_u01(seed, offset + (uint64_t)i);
        i++;
    }
    while (e - i >= 4 * RNG_LANES) {
        float u[4 * RNG_LANES];
        philox_u01_lanes(u, (offset + (uint64_t)i) >> 2, seed);
        float *restrict out = x + i;
        for (int k = 0; k < 4 * RNG_LANES; k++)
            out[k] = lo + span * u[k];
        i += 4 * RNG_LANES;
    }
    for (; i < e; i++)
        x[i] = lo + span * mltk_rng_u01(seed, offset + (uint64_t)i);
}

/* Same words, same arithmetic as mltk_rng_normal01 in rng.h. */
static void rng_normal_range(float *x, int64_t b, int64_t e, float mean,
                             float std, uint64_t seed, uint64_t offset)
{
    int64_t i = b;
    while (i < e) {
        uint64_t c = offset + (uint64_t)i;
        uint32_t w[4];
        mltk_philox4x32(w, c >> 2, seed);
        for (unsigned j = (unsigned)(c & 3); j < 4 && i < e; j++, i++) {
            unsigned k = j & ~1u;
            double u1 = ((double)(w[k] >> 8) + 1.0) * (1.0 / 16777216.0);
            double u2 = (double)(w[k + 1] >> 8) * (1.0 / 16777216.0);
            double r = sqrt(-2.0 * log(u1));
            double a = 6.283185307179586 * u2;
            float z = (float)((j & 1) ? r * sin(a) : r * cos(a));
            x[i] = mean + std * z;
        }
    }
}

static void ew_chunk(void *arg, int64_t b, int64_t e, int chunk)
{
    const ew_args *a = arg;
    int64_t n = e - b;
    switch (a->op) {
    case OP_FILL:     k_fill(a->y + b, a->a, n); break;
    case OP_SCALE:    k_scale(a->y + b, a->a, n); break;
    case OP_AXPBY:    k_axpby(a->y + b, a->a, a->x + b, a->b, n); break;
    case OP_MUL:      k_mul(a->y + b, a->x + b, a->x2 + b, n); break;
    case OP_ACT_FWD:  k_act_fwd(a->act, a->a, a->y + b, a->x + b, n); break;
    case OP_ACT_BWD:  k_act_bwd(a->act, a->a, a->y + b, a->x + b, a->x2 + b, a->flag, n); break;
    case OP_BIAS_ACT:     /* items are rows of a->ld floats */
        k_bias_act(a->y + b * a->ld, a->x, n, a->cols, a->ld, a->act, a->a);
        break;
    case OP_SUM:
    case OP_SUMSQ:
        a->partials[chunk * PARTIAL_STRIDE] = k_sum(a->x + b, n, a->op == OP_SUMSQ);
        break;
    case OP_NONFINITE:
        a->partials[chunk * PARTIAL_STRIDE] = (double)k_nonfinite(a->x + b, n);
        break;
    case OP_SUM_ROWS:     /* items are columns; a->cols is the row stride */
        k_sum_rows(a->y + b, a->x + b, a->rows, n, a->cols, a->b);
        break;
    case OP_UNIFORM:      rng_uniform_range(a->y, b, e, a->a, a->b, a->seed, a->offset); break;
    case OP_NORMAL:       rng_normal_range(a->y, b, e, a->a, a->b, a->seed, a->offset); break;
    case OP_SGD: {
        const sgd_args *s = a->extra;
        if (s->scale)
            k_sgd_scaled(s->p + b, s->g + b, s->mom ? s->mom + b : NULL, s->scale + b, n, s);
        else
            k_sgd(s->p + b, s->g + b, s->mom ? s->mom + b : NULL, n, s);
        break;
    }
    case OP_ADAM: {
        const adam_args *s = a->extra;
        if (s->scale)
            k_adam_scaled(s->p + b, s->g + b, s->m + b, s->v + b, s->scale + b, n, s);
        else
            k_adam(s->p + b, s->g + b, s->m + b, s->v + b, n, s);
        break;
    }
    default:
        break;
    }
}

/* Run an elementwise job over n items costing `cost` elements each. */
static void ew_run(cpu_ctx *c, ew_args *a, int64_t n, int64_t cost, int64_t align)
{
    int chunks = cpu_pool_chunks(c->pool, n, n * cost, GRAIN);
    a->partials = c->partials;
    cpu_pool_run(c->pool, ew_chunk, a, n, chunks, align, n * cost);
}

/* ---- elementwise ---- */
/* Each op below is one call `run` has unpacked: n = numel, tensors
 * contiguous (shapes as backend.h states them). */

/* x (n) = v */
static int cpu_fill(void *ctx, float *x, float v, int64_t n)
{
    ew_args a = { .op = OP_FILL, .y = x, .a = v };
    ew_run(ctx, &a, n, 1, ALIGN_F);
    return MLTK_OK;
}

/* y (n) = a x + b y; b == 0: y not read */
static int cpu_axpby(void *ctx, float *y, float a, const float *x, float b, int64_t n)
{
    ew_args j = { .op = OP_AXPBY, .y = y, .x = x, .a = a, .b = b };
    ew_run(ctx, &j, n, 2, ALIGN_F);
    return MLTK_OK;
}

/* z (n) = x y */
static int cpu_mul(void *ctx, float *z, const float *x, const float *y, int64_t n)
{
    ew_args a = { .op = OP_MUL, .y = z, .x = x, .x2 = y };
    ew_run(ctx, &a, n, 3, ALIGN_F);
    return MLTK_OK;
}

static int is_smooth(mltk_act act)
{
    return act == MLTK_ACT_SIGMOID || act == MLTK_ACT_TANH || act == MLTK_ACT_ELU
        || act == MLTK_ACT_GELU_TANH || act == MLTK_ACT_GELU;
}

/* y (n) = act(x); y == x allowed (cpu_internal.h: cpu_conv.c uses it too) */
int cpu_act_forward(void *ctx, mltk_act act, float alpha, float *y, const float *x,
                    int64_t n)
{
    ew_args a = { .op = OP_ACT_FWD, .y = y, .x = x, .a = alpha, .act = act };
    ew_run(ctx, &a, n, is_smooth(act) ? 8 : 2, ALIGN_F);
    return MLTK_OK;
}

/* dx (n) = dy act'(.) from x or y (either may be NULL, not both when the
 * act needs one); dx == dy allowed */
static int cpu_act_backward(void *ctx, mltk_act act, float alpha, float *dx,
                            const float *dy, const float *x, const float *y, int64_t n)
{
    /* where the derivative comes from: relu, sigmoid and tanh prefer the
     * output, leaky relu the input (its output's sign flips with a
     * negative slope); either works when only one is given.  elu uses the
     * output when alpha >= 0 (y + alpha = alpha e^x there), else the
     * input; gelu has no inverse and needs the input. */
    const float *s = dy;
    int s_is_y = 0;
    if (act == MLTK_ACT_LEAKY_RELU) {
        s = x ? x : y;
        s_is_y = !x;
    } else if (act == MLTK_ACT_ELU) {
        s_is_y = y != NULL && alpha >= 0.0f;
        s = s_is_y ? y : x;
    } else if (act == MLTK_ACT_GELU || act == MLTK_ACT_GELU_TANH) {
        s = x;
    } else if (act != MLTK_ACT_NONE) {
        s = y ? y : x;
        s_is_y = y != NULL;
    }
    assert(s || n == 0);  /* the core checked that the act's source is given */
    if (act == MLTK_ACT_NONE && dx == dy)
        return MLTK_OK;
    ew_args a = { .op = OP_ACT_BWD, .y = dx, .x = dy, .x2 = s, .a = alpha,
                  .act = act, .flag = s_is_y };
    ew_run(ctx, &a, n, is_smooth(act) && !s_is_y ? 8 : 3, ALIGN_F);
    return MLTK_OK;
}

/* ---- cast ---- */

typedef struct cast_args {
    void       *y;
    const void *x;
    mltk_dtype  ty, tx;
} cast_args;

#define CAST_TILE 256

/* items [b, e): f32 on either side converts directly; bf16 <-> f16 goes
 * through f32 in tiles (exact from the source, so rounded once) */
static void cast_chunk(void *arg, int64_t b, int64_t e, int chunk)
{
    const cast_args *a = arg;
    (void)chunk;
    if (a->tx == MLTK_F32) {
        const float *x = (const float *)a->x + b;
        if (a->ty == MLTK_BF16)
            k_f32_to_bf16((uint16_t *)a->y + b, x, e - b);
        else
            k_f32_to_f16((uint16_t *)a->y + b, x, e - b);
        return;
    }
    const uint16_t *x = (const uint16_t *)a->x + b;
    if (a->ty == MLTK_F32) {
        if (a->tx == MLTK_BF16)
            k_bf16_to_f32((float *)a->y + b, x, e - b);
        else
            k_f16_to_f32((float *)a->y + b, x, e - b);
        return;
    }
    float t[CAST_TILE];
    uint16_t *y = (uint16_t *)a->y + b;
    for (int64_t i = 0; i < e - b; i += CAST_TILE) {
        int64_t w = e - b - i < CAST_TILE ? e - b - i : CAST_TILE;
        if (a->tx == MLTK_BF16) {
            k_bf16_to_f32(t, x + i, w);
            k_f32_to_f16(y + i, t, w);
        } else {
            k_f16_to_f32(t, x + i, w);
            k_f32_to_bf16(y + i, t, w);
        }
    }
}

/* y (n) = x (n) converted from tx to ty (each of f32, bf16, f16) */
static int cpu_cast(void *ctx, void *y, mltk_dtype ty, const void *x, mltk_dtype tx,
                    int64_t n)
{
    cpu_ctx *c = ctx;
    if (tx == ty) {
        if (y != x && n > 0)
            memmove(y, x, (size_t)n * (tx == MLTK_F32 ? 4 : 2));
        return MLTK_OK;
    }
    cast_args a = { .y = y, .x = x, .ty = ty, .tx = tx };
    int chunks = cpu_pool_chunks(c->pool, n, 2 * n, GRAIN);
    cpu_pool_run(c->pool, cast_chunk, &a, n, chunks, ALIGN_F * 2, 2 * n);
    return MLTK_OK;
}

/* ---- linear algebra ---- */

/* C (M,N), row stride ldc, = alpha op(A) op(B) + beta C; op(A) (M,K) from
 * A (M,K) or with ta (K,M), row stride lda; op(B) (K,N) likewise */
static int cpu_gemm(void *ctx, int ta, int tb, int64_t M, int64_t N, int64_t K,
                    float alpha, const float *A, int64_t lda,
                    const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
                    char **err)
{
    cpu_ctx *c = ctx;
    if (M == 0 || N == 0)
        return MLTK_OK;
    if (K == 0 || alpha == 0.0f) {
        /* C = beta C, without reading C when beta == 0 */
        for (int64_t i = 0; i < M; i++) {
            if (beta == 0.0f)
                k_fill(C + i * ldc, 0.0f, N);
            else if (beta != 1.0f)
                k_scale(C + i * ldc, beta, N);
        }
        return MLTK_OK;
    }
    if (M > INT_MAX || N > INT_MAX || K > INT_MAX || lda > INT_MAX || ldb > INT_MAX
        || ldc > INT_MAX)
        return mltk_errf(err, MLTK_ERR_UNSUPPORTED,
                         "cpu: gemm: (%lld x %lld) by (%lld x %lld) is beyond the int "
                         "dimensions of OpenBLAS", (long long)M, (long long)K,
                         (long long)K, (long long)N);
    cpu_pool_park(c->pool);
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha,
                A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
    return MLTK_OK;
}

/* y (rows, cols), row stride ld, = act(y + b); b (cols) may be NULL */
static int cpu_bias_act(void *ctx, float *y, const float *b, int64_t rows,
                        int64_t cols, int64_t ld, mltk_act act, float alpha)
{
    if (rows == 0 || cols == 0)
        return MLTK_OK;
    if (!b && ld == cols)
        return cpu_act_forward(ctx, act, alpha, y, y, rows * cols);
    ew_args a = { .op = OP_BIAS_ACT, .y = y, .x = b, .cols = cols, .ld = ld, .a = alpha,
                  .act = act };
    ew_run(ctx, &a, rows, is_smooth(act) ? 8 * cols : 2 * cols, 1);
    return MLTK_OK;
}

/* out (cols) = sum over rows of x (rows, cols) + beta out */
static int cpu_sum_rows(void *ctx, float *out, const float *x, int64_t rows,
                        int64_t cols, float beta)
{
    cpu_ctx *c = ctx;
    if (cols == 0)
        return MLTK_OK;
    /* columns are independent: split them, so results do not depend on
     * the thread count */
    ew_args a = { .op = OP_SUM_ROWS, .y = out, .x = x, .rows = rows,
                  .cols = cols, .b = beta, .partials = c->partials };
    int chunks = cols >= 2 * ALIGN_F
        ? cpu_pool_chunks(c->pool, cols, rows * cols, GRAIN) : 1;
    cpu_pool_run(c->pool, ew_chunk, &a, cols, chunks, ALIGN_F, rows * cols);
    return MLTK_OK;
}

/* ---- reductions ---- */

/* the per-chunk partials of job `op` over x (n), summed in chunk order */
static double reduce(cpu_ctx *c, const float *x, int64_t n, int op)
{
    if (n == 0)
        return 0.0;
    ew_args a = { .op = op, .x = x, .partials = c->partials };
    int chunks = cpu_pool_chunks(c->pool, n, n, GRAIN);
    double s = cpu_reduce_run(c, ew_chunk, &a, n, chunks, ALIGN_F, n);
    return s;
}

/* out[0] = sum of x (n), or of its squares */
static int cpu_sum(void *ctx, float *out, const float *x, int64_t n)
{
    out[0] = (float)reduce(ctx, x, n, OP_SUM);
    return MLTK_OK;
}

static int cpu_sumsq(void *ctx, float *out, const float *x, int64_t n)
{
    out[0] = (float)reduce(ctx, x, n, OP_SUMSQ);
    return MLTK_OK;
}

/* flag[0] = max(flag[0], 1 if any of x (n) is a NaN or an infinity else 0) */
static int cpu_nonfinite(void *ctx, float *flag, const float *x, int64_t n)
{
    float v = reduce(ctx, x, n, OP_NONFINITE) > 0.0 ? 1.0f : 0.0f;
    if (v > flag[0])
        flag[0] = v;
    return MLTK_OK;
}

/* ---- losses and metrics ---- */

typedef struct rows_args {
    float *dl;
    const float *logits;
    const int32_t *labels;
    int64_t C;
    float scale;
    double *partials;
} rows_args;

static void xent_chunk(void *arg, int64_t b, int64_t e, int chunk)
{
    const rows_args *a = arg;
    a->partials[chunk * PARTIAL_STRIDE] =
        k_softmax_xent(a->dl ? a->dl + b * a->C : NULL, a->logits + b * a->C,
                       a->labels + b, e - b, a->C, a->scale);
}

static void correct_chunk(void *arg, int64_t b, int64_t e, int chunk)
{
    const rows_args *a = arg;
    a->partials[chunk * PARTIAL_STRIDE] =
        (double)k_count_correct(a->logits + b * a->C, a->labels + b, e - b, a->C);
}

/* logits (N, C), labels (N) in [0, C) -> loss[0] = mean of -log
 * softmax(logits)[label]; dlogits (N, C) = grad_scale (softmax - onehot) / N
 * when not NULL.  The plain (unsmoothed, unweighted) cross-entropy; labels
 * are not checked: the core validated them when they were uploaded. */
static int cpu_softmax_xent(void *ctx, float *loss, float *dlogits,
                            const float *logits, const int32_t *labels,
                            int64_t N, int64_t C, float grad_scale)
{
    cpu_ctx *c = ctx;
    if (N == 0) {
        loss[0] = 0.0f;
        return MLTK_OK;
    }
    rows_args a = { .dl = dlogits, .logits = logits, .labels = labels, .C = C,
                    .scale = (float)((double)grad_scale / (double)N),
                    .partials = c->partials };
    int chunks = cpu_pool_chunks(c->pool, N, N * C * 4, GRAIN);
    double total = cpu_reduce_run(c, xent_chunk, &a, N, chunks, 1, N * C * 4);
    loss[0] = (float)(total / (double)N);
    return MLTK_OK;
}

/* logits (N, C), labels (N) -> correct[0] = rows whose first maximum is
 * the label */
static int cpu_count_correct(void *ctx, float *correct, const float *logits,
                             const int32_t *labels, int64_t N, int64_t C)
{
    cpu_ctx *c = ctx;
    if (N == 0) {
        correct[0] = 0.0f;
        return MLTK_OK;
    }
    rows_args a = { .logits = logits, .labels = labels, .C = C,
                    .partials = c->partials };
    int chunks = cpu_pool_chunks(c->pool, N, N * C, GRAIN);
    double total = cpu_reduce_run(c, correct_chunk, &a, N, chunks, 1, N * C);
    correct[0] = (float)total;
    return MLTK_OK;
}

/* ---- data movement ---- */

typedef struct gather_args {
    char *dst;
    const char *src;
    const int32_t *idx;
    size_t row_bytes;
} gather_args;

static void gather_chunk(void *arg, int64_t b, int64_t e, int chunk)
{
    const gather_args *a = arg;
    (void)chunk;
    for (int64_t i = b; i < e; i++)
        memcpy(a->dst + (size_t)i * a->row_bytes,
               a->src + (size_t)a->idx[i] * a->row_bytes, a->row_bytes);
}

/* dst (n rows of row_bytes) = src (M rows) [idx (n)]; the indices are
 * checked against M before anything is written */
static int cpu_gather_rows(void *ctx, void *dst, const void *src, int64_t M,
                           const int32_t *idx, int64_t n, size_t row_bytes, char **err)
{
    cpu_ctx *c = ctx;
    if (n == 0 || row_bytes == 0)
        return MLTK_OK;
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= M)
            return mltk_errf(err, MLTK_ERR_INVALID,
                             "gather_rows: index %ld at row %lld outside [0, %lld)",
                             (long)idx[i], (long long)i, (long long)M);
    gather_args a = { .dst = dst, .src = src, .idx = idx, .row_bytes = row_bytes };
    int64_t work = (int64_t)(row_bytes / 4 + 1);
    work = work > INT64_MAX / n ? INT64_MAX : work * n;
    int chunks = cpu_pool_chunks(c->pool, n, work, GRAIN * 4);
    cpu_pool_run(c->pool, gather_chunk, &a, n, chunks, 1, work);
    return MLTK_OK;
}

/* ---- random numbers ---- */

/* x (n) = lo + (hi - lo) u(seed, offset + i) */
static int cpu_rng_uniform(void *ctx, float *x, int64_t n, float lo, float hi,
                           uint64_t seed, uint64_t offset)
{
    ew_args a = { .op = OP_UNIFORM, .y = x, .a = lo, .b = hi, .seed = seed,
                  .offset = offset };
    ew_run(ctx, &a, n, 8, ALIGN_F);
    return MLTK_OK;
}

/* x (n) = mean + std z(seed, offset + i) */
static int cpu_rng_normal(void *ctx, float *x, int64_t n, float mean, float std,
                          uint64_t seed, uint64_t offset)
{
    ew_args a = { .op = OP_NORMAL, .y = x, .a = mean, .b = std, .seed = seed,
                  .offset = offset };
    ew_run(ctx, &a, n, 32, ALIGN_F);
    return MLTK_OK;
}

/* ---- optimizer updates ---- */

/* p, g, mom (n), lr_scale (n) or NULL; mom read only with momentum != 0 */
static int cpu_sgd_step(void *ctx, float *p, const float *g, float *mom, int64_t n,
                        const mltk_sgd_params *prm, const float *lr_scale)
{
    sgd_args s = { .p = p, .g = g, .mom = prm->momentum != 0.0f ? mom : NULL,
                   .scale = lr_scale, .lr = prm->lr, .momentum = prm->momentum,
                   .damp1 = (float)(1.0 - (double)prm->dampening),
                   .wd = prm->weight_decay, .nesterov = prm->nesterov != 0,
                   .first = prm->t == 1 };
    ew_args a = { .op = OP_SGD, .extra = &s };
    ew_run(ctx, &a, n, lr_scale ? 5 : 4, ALIGN_F);
    return MLTK_OK;
}

/* p, g, m, v (n), lr_scale (n) or NULL */
static int cpu_adam_step(void *ctx, float *p, const float *g, float *m, float *v,
                         int64_t n, const mltk_adam_params *prm, const float *lr_scale)
{
    const float lr = prm->lr, beta1 = prm->beta1, beta2 = prm->beta2;
    const float weight_decay = prm->weight_decay;
    const int decoupled = prm->decoupled;
    double bc1 = 1.0 - pow((double)beta1, (double)prm->t);
    double bc2 = 1.0 - pow((double)beta2, (double)prm->t);
    adam_args s = {
        .p = p, .g = g, .m = m, .v = v, .scale = lr_scale, .b1 = beta1, .b2 = beta2,
        .omb1 = (float)(1.0 - (double)beta1), .omb2 = (float)(1.0 - (double)beta2),
        .eps = prm->eps, .wd = weight_decay,
        .pscale = decoupled ? (float)(1.0 - (double)lr * (double)weight_decay) : 1.0f,
        .step = (float)((double)lr / bc1), .bc2s = (float)sqrt(bc2),
        .lrwd = decoupled ? (float)((double)lr * (double)weight_decay) : 0.0f,
        .l2 = !decoupled && weight_decay != 0.0f };
    ew_args a = { .op = OP_ADAM, .extra = &s };
    ew_run(ctx, &a, n, lr_scale ? 9 : 8, ALIGN_F);
    return MLTK_OK;
}

/* ---- bf16 ---- */
/* The ops computed from bf16 inputs (supports() names them): gemm and the
 * three conv ops.  Nothing is summed in bf16: the inputs are exact in f32,
 * so the ops either widen them to f32 and run the f32 kernels (conv, and
 * gemm on CPUs without AVX-512 BF16, through OpenBLAS sgemm: a product of
 * two bf16 values is exact in f32, so this is "bf16 inputs, f32
 * accumulation" at sgemm's speed less the conversion), or multiply them
 * with vdpbf16ps (cpu_bf16.c, or OpenBLAS's cblas_sbgemm where exported)
 * where the CPU has it.  Results in bf16 are computed in f32 and rounded
 * once, to nearest even, at the end. */

typedef struct bf16_job {
    float          *f;     /* f32 side: row r at f + r * ldf */
    uint16_t       *h;     /* bf16 side: row r at h + r * ldh */
    int64_t         ldf, ldh, cols;
    int             widen; /* 1: f = h; 0: h = round(f) */
} bf16_job;

/* rows [b, e) of the job, or elements [b, e) of one flat row */
static void bf16_chunk(void *arg, int64_t b, int64_t e, int chunk)
{
    const bf16_job *j = arg;
    (void)chunk;
    if (j->cols < 0) {   /* flat */
        if (j->widen)
            cpu_bf16_to_f32(j->f + b, j->h + b, e - b);
        else
            cpu_bf16_from_f32(j->h + b, j->f + b, e - b);
        return;
    }
    for (int64_t r = b; r < e; r++) {
        if (j->widen)
            cpu_bf16_to_f32(j->f + r * j->ldf, j->h + r * j->ldh, j->cols);
        else
            cpu_bf16_from_f32(j->h + r * j->ldh, j->f + r * j->ldf, j->cols);
    }
}

/* Conversions of fewer elements run on the calling thread: they take
 * tens of microseconds, and right after an OpenBLAS call (whose threads
 * still spin) waking the pool costs more than it saves (bench/bf16_gemm.c
 * on 2 cores: the MLP's products ran at 0.2-0.7x of sgemm with the pool,
 * 0.8-0.9x without). */
#define BF16_POOL_MIN (1 << 20)

/* f (rows, cols), row stride ldf, <-> h (rows, cols), row stride ldh:
 * widen (f = h, exact) or round (h = f to nearest even), over the pool
 * from BF16_POOL_MIN elements; contiguous matrices convert as one flat
 * array.  Every element is converted alone, so the split changes
 * nothing. */
static void bf16_convert(cpu_ctx *c, int widen, float *f, int64_t ldf, uint16_t *h,
                         int64_t ldh, int64_t rows, int64_t cols)
{
    if (rows <= 0 || cols <= 0)
        return;
    bf16_job j = { f, h, ldf, ldh, cols, widen };
    int64_t n = rows * cols;
    int flat = rows == 1 || (ldf == cols && ldh == cols);
    int64_t items = flat ? n : rows;
    int chunks = n < BF16_POOL_MIN ? 1 : cpu_pool_chunks(c->pool, items, 2 * n, GRAIN);
    if (flat)
        j.cols = -1;
    cpu_pool_run(c->pool, bf16_chunk, &j, items, chunks, flat ? ALIGN_F * 2 : 1, 2 * n);
}

#define WS_ALIGN 64

static size_t align_up(size_t n)
{
    return (n + WS_ALIGN - 1) / WS_ALIGN * WS_ALIGN;
}

/* At least `bytes` of the context's scratch, 64-byte aligned, grown (never
 * shrunk) as calls need; MLTK_ERR_NOMEM with *err when it cannot grow. */
static int scratch_get(cpu_ctx *c, size_t bytes, const char *what, void **p, char **err)
{
    if (bytes > c->scratch_bytes) {
        void *q = NULL;
        if (posix_memalign(&q, WS_ALIGN, bytes) != 0 || !q)
            return mltk_errf(err, MLTK_ERR_NOMEM, "cpu: %s: cannot allocate %zu bytes of "
                             "scratch", what, bytes);
        free(c->scratch);
        c->scratch = q;
        c->scratch_bytes = bytes;
    }
    *p = c->scratch;
    return MLTK_OK;
}

/* ---- bf16 convolution: widened inputs, staged outputs ---- */

/* Per conv op and tensor: its elements (from the descriptor), and whether
 * it is an output.  n_t tensors at most 4. */
static void conv_tensors(mltk_op op, const mltk_conv2d_desc *d, int64_t numel[4], int out[4])
{
    int64_t x = d->N * d->C * d->H * d->W, y = d->N * d->K * d->P * d->Q;
    int64_t w = d->K * (d->groups > 0 ? d->C / d->groups : 0) * d->R * d->S;
    int64_t fwd[4] = { y, x, w, d->K }, bd[4] = { x, y, w, 0 }, bf[4] = { w, d->K, y, x };
    const int64_t *v = op == MLTK_OP_CONV2D_FORWARD ? fwd
        : op == MLTK_OP_CONV2D_BACKWARD_DATA ? bd : bf;
    int n_out = op == MLTK_OP_CONV2D_BACKWARD_FILTER ? 2 : 1;
    for (int i = 0; i < 4; i++) {
        numel[i] = v[i];
        out[i] = i < n_out;
    }
}

/* the op's input dtype (x, dy or dy) */
static mltk_dtype conv_dtype(const mltk_op_call *c)
{
    return c->t[c->op == MLTK_OP_CONV2D_BACKWARD_FILTER ? 2 : 1].dtype;
}

/* Byte offsets of the f32 copies of a bf16 conv call's bf16 tensors from
 * the workspace's first 64-byte boundary (-1: the tensor is used in place),
 * and the offset of the f32 kernels' own workspace after them; returns
 * the bytes the call needs in all.  The optional tensors (b, db) always
 * get their K floats, so that a workspace sized from shapes alone (where
 * they are absent) fits the call that has them. */
static size_t conv_bf16_layout(const mltk_op_call *c, size_t f32_ws, int64_t off[4],
                               size_t *ws_off)
{
    const mltk_conv2d_desc *d = &((const mltk_conv2d_params *)c->params)->d;
    int64_t numel[4];
    int out[4];
    conv_tensors(c->op, d, numel, out);
    int opt = c->op == MLTK_OP_CONV2D_FORWARD ? 3
        : c->op == MLTK_OP_CONV2D_BACKWARD_FILTER ? 1 : -1;
    size_t at = 0;
    for (int i = 0; i < 4; i++) {
        off[i] = -1;
        if (i >= c->n_t || (i != opt && c->t[i].dtype != MLTK_BF16))
            continue;
        off[i] = (int64_t)at;
        at += align_up((size_t)numel[i] * sizeof(float));
    }
    *ws_off = at;
    return WS_ALIGN + at + f32_ws;
}

static size_t conv_workspace(void *ctx, const mltk_op_call *c)
{
    const mltk_conv2d_params *p = c->params;
    if (!p)
        return 0;
    size_t f32_ws = cpu_conv2d_workspace(ctx, &p->d);
    if (conv_dtype(c) != MLTK_BF16)
        return f32_ws;
    int64_t off[4];
    size_t ws_off;
    return conv_bf16_layout(c, f32_ws, off, &ws_off);
}

/* ---- the op table ---- */

static int cpu_supports(void *ctx, mltk_op op, mltk_dtype dt)
{
    (void)ctx;
    if (op <= MLTK_OP_NONE || op >= MLTK_OP_COUNT)
        return 0;
    if (dt == MLTK_F32)
        return 1;
    switch (op) {
    case MLTK_OP_CAST:
        return dt == MLTK_BF16 || dt == MLTK_F16;
    case MLTK_OP_GEMM:          /* bf16 inputs, f32 accumulation */
    case MLTK_OP_CONV2D_FORWARD:
    case MLTK_OP_CONV2D_BACKWARD_DATA:
    case MLTK_OP_CONV2D_BACKWARD_FILTER:
        return dt == MLTK_BF16;
    case MLTK_OP_GATHER_ROWS:   /* rows of bytes */
        return (int)dt >= 0 && dt < MLTK_DTYPE_COUNT;
    default:
        return 0;
    }
}

static size_t cpu_workspace(void *ctx, const mltk_op_call *c)
{
    switch (c->op) {
    case MLTK_OP_CONV2D_FORWARD:
    case MLTK_OP_CONV2D_BACKWARD_DATA:
    case MLTK_OP_CONV2D_BACKWARD_FILTER:
        return conv_workspace(ctx, c);
    default:
        return 0;
    }
}

/* short names for the call readers of backend.h (mltk_call_*) */
#define tf       mltk_call_f32
#define ti32     mltk_call_i32
#define tnum     mltk_call_numel
#define tdim     mltk_call_dim
#define tlast    mltk_call_last
#define bn_dims  mltk_call_ncl
#define last_dim mltk_call_rows_last

/* rows (dim 0) and columns (the rest) of tensor i; ld = its row stride */
static void rows_cols(const mltk_op_call *c, int i, int64_t *rows, int64_t *cols,
                      int64_t *ld)
{
    const mltk_tensor *t = &c->t[i];
    if (t->shape.ndim < 2) {
        *rows = 1;
        *cols = mltk_tensor_numel(t);
        *ld = *cols;
        return;
    }
    *rows = t->shape.dim[0];
    *cols = 1;
    for (int d = 1; d < t->shape.ndim; d++)
        *cols *= t->shape.dim[d];
    *ld = mltk_tensor_stride(t, 0);
}

/* The sizes of a gemm call: op(A) (M,K), op(B) (K,N), C (M,N), their
 * leading dimensions, and for a 3-d call the batch and each operand's batch
 * stride (0 for a 2-d operand or a matrix reused across the batch). */
typedef struct gemm_geom {
    int64_t M, N, K, lda, ldb, ldc, batch, sa, sb, sc;
} gemm_geom;

static void gemm_geom_of(const mltk_op_call *c, gemm_geom *g)
{
    const mltk_gemm_params *p = c->params;
    const mltk_tensor *tc = &c->t[0], *ta = &c->t[1], *tb = &c->t[2];
    const int nc = tc->shape.ndim, na = ta->shape.ndim, nb = tb->shape.ndim;
    g->M = tc->shape.dim[nc - 2];
    g->N = tc->shape.dim[nc - 1];
    g->K = p->ta ? ta->shape.dim[na - 2] : ta->shape.dim[na - 1];
    g->lda = mltk_tensor_stride(ta, na - 2);
    g->ldb = mltk_tensor_stride(tb, nb - 2);
    g->ldc = mltk_tensor_stride(tc, nc - 2);
    g->batch = nc == 3 ? tc->shape.dim[0] : 1;
    g->sa = na == 3 ? mltk_tensor_stride(ta, 0) : 0;
    g->sb = nb == 3 ? mltk_tensor_stride(tb, 0) : 0;
    g->sc = nc == 3 ? mltk_tensor_stride(tc, 0) : 0;
}

/* C = act(alpha op(A) op(B) + beta C + bias) over 2-d matrices or a batch
 * of them (3-d; a batch stride of 0 reuses one matrix) */
static int run_gemm_bf16(cpu_ctx *cx, const mltk_op_call *c, char **err);

static int run_gemm(cpu_ctx *cx, const mltk_op_call *c, char **err)
{
    if (c->t[1].dtype == MLTK_BF16)
        return run_gemm_bf16(cx, c, err);
    const mltk_gemm_params *p = c->params;
    const mltk_tensor *tc = &c->t[0], *ta = &c->t[1], *tb = &c->t[2];
    const float *bias = tf(c, 3);
    gemm_geom g;
    gemm_geom_of(c, &g);
    const int64_t M = g.M, N = g.N, K = g.K, lda = g.lda, ldb = g.ldb, ldc = g.ldc;
    const int64_t batch = g.batch, sa = g.sa, sb = g.sb, sc = g.sc;
    const float *A = ta->data, *B = tb->data;
    float *C = tc->data;
    for (int64_t i = 0; i < batch; i++) {
        int rc = cpu_gemm(cx, p->ta, p->tb, M, N, K, p->alpha, A + i * sa, lda,
                          B + i * sb, ldb, p->beta, C + i * sc, ldc, err);
        if (rc)
            return rc;
        if (bias || p->act != MLTK_ACT_NONE)
            cpu_bias_act(cx, C + i * sc, bias, M, N, ldc, p->act, p->act_alpha);
    }
    return MLTK_OK;
}

/* gemm with A and B in bf16 (C f32 or bf16, bias f32), one product of the
 * batch at a time, on the first of these paths the machine offers:
 *   blas    cblas_sbgemm, where OpenBLAS exports it and the CPU has AVX-512
 *           BF16 (C f32);
 *   native  cpu_sbgemm's vdpbf16ps kernels, where the CPU has AVX-512 BF16;
 *   widen   A and B widened to f32 in the scratch (exact), then
 *           cblas_sgemm: everywhere else.
 * A bf16 C is staged: widened to f32 (when beta reads it), computed,
 * given its epilogue and rounded once.  A matrix reused across the batch
 * (stride 0) is widened once. */
static int run_gemm_bf16(cpu_ctx *cx, const mltk_op_call *c, char **err)
{
    const mltk_gemm_params *p = c->params;
    const mltk_tensor *tc = &c->t[0], *ta = &c->t[1], *tb = &c->t[2];
    const float *bias = tf(c, 3);
    gemm_geom g;
    gemm_geom_of(c, &g);
    const int64_t M = g.M, N = g.N, K = g.K, lda = g.lda, ldb = g.ldb, ldc = g.ldc;
    const int64_t batch = g.batch, sa = g.sa, sb = g.sb, sc = g.sc;
    const uint16_t *A = ta->data, *B = tb->data;
    const int c16 = tc->dtype == MLTK_BF16;
    if (M == 0 || N == 0)
        return MLTK_OK;

    const int reads = K > 0 && p->alpha != 0.0f;   /* A and B are read */
    const int native = reads && cpu_bf16_native();
    const int blas = native && !c16 && cx->sbgemm_blas;
    /* op(A) stored as (ar, ac), op(B) as (br, bc), widened contiguous */
    const int64_t ar = p->ta ? K : M, ac = p->ta ? M : K;
    const int64_t br = p->tb ? N : K, bc = p->tb ? K : N;
    size_t sz_a = 0, sz_b = 0, sz_c = 0, sz_w = 0;
    if (reads && !native) {
        sz_a = align_up((size_t)(ar * ac) * sizeof(float));
        sz_b = align_up((size_t)(br * bc) * sizeof(float));
    }
    if (c16)
        sz_c = align_up((size_t)(M * N) * sizeof(float));
    if (native && !blas)
        sz_w = cpu_sbgemm_workspace(M, N, K);
    char *ws = NULL;
    if (sz_a + sz_b + sz_c + sz_w > 0) {
        void *q = NULL;
        int rc = scratch_get(cx, sz_a + sz_b + sz_c + sz_w, "gemm (bf16)", &q, err);
        if (rc)
            return rc;
        ws = q;
    }
    float *Af = (float *)ws, *Bf = (float *)(ws + sz_a), *Cs = (float *)(ws + sz_a + sz_b);
    void *pack = ws + sz_a + sz_b + sz_c;

    for (int64_t i = 0; i < batch; i++) {
        const uint16_t *Ai = A + i * sa, *Bi = B + i * sb;
        float *Cf = c16 ? Cs : (float *)tc->data + i * sc;
        uint16_t *Ch = c16 ? (uint16_t *)tc->data + i * sc : NULL;
        const int64_t ldf = c16 ? N : ldc;
        if (c16 && p->beta != 0.0f)
            bf16_convert(cx, 1, Cf, ldf, Ch, ldc, M, N);
        int rc = MLTK_OK;
        if (!reads) {
            rc = cpu_gemm(cx, p->ta, p->tb, M, N, K, p->alpha, NULL, 1, NULL, 1, p->beta, Cf,
                          ldf, err);
        } else if (blas) {
            cpu_pool_park(cx->pool);
            cx->sbgemm_blas(CblasRowMajor, p->ta ? CblasTrans : CblasNoTrans,
                            p->tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,
                            p->alpha, Ai, (int)lda, Bi, (int)ldb, p->beta, Cf, (int)ldf);
        } else if (native) {
            rc = cpu_sbgemm(cx->pool, Cf, ldf, p->ta, Ai, lda, p->tb, Bi, ldb, p->alpha,
                            p->beta, pack, M, N, K);
            if (rc)
                rc = mltk_errf(err, rc == ENOMEM ? MLTK_ERR_NOMEM : MLTK_ERR_BACKEND,
                               "cpu: gemm (bf16): %s", strerror(rc));
        } else {
            if (i == 0 || sa != 0)
                bf16_convert(cx, 1, Af, ac, (uint16_t *)Ai, lda, ar, ac);
            if (i == 0 || sb != 0)
                bf16_convert(cx, 1, Bf, bc, (uint16_t *)Bi, ldb, br, bc);
            rc = cpu_gemm(cx, p->ta, p->tb, M, N, K, p->alpha, Af, ac, Bf, bc, p->beta, Cf,
                          ldf, err);
        }
        if (rc)
            return rc;
        if (bias || p->act != MLTK_ACT_NONE)
            cpu_bias_act(cx, Cf, bias, M, N, ldf, p->act, p->act_alpha);
        if (c16)
            bf16_convert(cx, 0, Cf, ldf, Ch, ldc, M, N);
    }
    return MLTK_OK;
}

/* A conv op with bf16 inputs: each bf16 tensor gets an f32 copy in the
 * workspace (conv_bf16_layout), inputs widened before and outputs rounded
 * after the f32 kernel, which runs on the rest of the workspace; so the
 * results are the f32 convolution of the bf16 values (rounded once where
 * the output is bf16). */
static int run_conv_bf16(cpu_ctx *cx, const mltk_op_call *c, char **err)
{
    const mltk_conv2d_params *p = c->params;
    int64_t numel[4], off[4];
    int out[4];
    size_t ws_off;
    conv_tensors(c->op, &p->d, numel, out);
    size_t f32_ws = cpu_conv2d_workspace(cx, &p->d);
    conv_bf16_layout(c, f32_ws, off, &ws_off);
    char *base = (char *)(((uintptr_t)c->ws + WS_ALIGN - 1) / WS_ALIGN * WS_ALIGN);
    float *f[4] = { NULL, NULL, NULL, NULL };
    for (int i = 0; i < c->n_t; i++) {
        if (!c->t[i].data)
            continue;
        if (c->t[i].dtype != MLTK_BF16) {
            f[i] = c->t[i].data;
            continue;
        }
        f[i] = (float *)(base + off[i]);
        if (!out[i])
            bf16_convert(cx, 1, f[i], numel[i], c->t[i].data, numel[i], 1, numel[i]);
    }
    void *ws = f32_ws ? base + ws_off : NULL;
    int rc;
    if (c->op == MLTK_OP_CONV2D_FORWARD)
        rc = cpu_conv2d_forward(cx, f[0], f[1], f[2], f[3], &p->d, p->act, p->act_alpha, ws,
                                err);
    else if (c->op == MLTK_OP_CONV2D_BACKWARD_DATA)
        rc = cpu_conv2d_backward_data(cx, f[0], f[1], f[2], &p->d, ws, err);
    else
        rc = cpu_conv2d_backward_filter(cx, f[0], f[1], f[2], f[3], &p->d, ws, err);
    if (rc)
        return rc;
    for (int i = 0; i < c->n_t; i++)
        if (out[i] && c->t[i].data && c->t[i].dtype == MLTK_BF16)
            bf16_convert(cx, 0, f[i], numel[i], c->t[i].data, numel[i], 1, numel[i]);
    return MLTK_OK;
}

/* The cross-entropy: against probabilities (f32 labels) cpu_misc.c's soft
 * kernel; against class indices the plain kernel (cpu.c) without label
 * smoothing and weights, the general one (cpu_misc.c) otherwise. */
static int run_xent(cpu_ctx *cx, const mltk_op_call *c)
{
    const mltk_xent_params *p = c->params;
    const int64_t N = tdim(c, 2, 0), C = tlast(c, 2);
    const float *w = tf(c, 4);
    if (c->t[3].dtype == MLTK_F32)
        return cpu_softmax_xent_soft(cx, tf(c, 0), tf(c, 1), tf(c, 2), tf(c, 3), w, N, C,
                                     p->label_smoothing, p->grad_scale);
    if (p->label_smoothing == 0.0f && !w)
        return cpu_softmax_xent(cx, tf(c, 0), tf(c, 1), tf(c, 2), ti32(c, 3), N, C,
                                p->grad_scale);
    return cpu_softmax_xent_ex(cx, tf(c, 0), tf(c, 1), tf(c, 2), ti32(c, 3), w, N, C,
                               p->label_smoothing, p->grad_scale);
}

static int cpu_run(void *ctx, const mltk_op_call *c, char **err)
{
    cpu_ctx *cx = ctx;
    const void *prm = c->params;
    int64_t rows, cols, ld, rows2, cols2, ld2;
    switch (c->op) {
    /* ---- elementwise ---- */
    case MLTK_OP_FILL:
        return cpu_fill(cx, tf(c, 0), ((const mltk_fill_params *)prm)->value, tnum(c, 0));
    case MLTK_OP_AXPBY: {
        const mltk_axpby_params *p = prm;
        return cpu_axpby(cx, tf(c, 0), p->a, tf(c, 1), p->b, tnum(c, 0));
    }
    case MLTK_OP_MUL:
        return cpu_mul(cx, tf(c, 0), tf(c, 1), tf(c, 2), tnum(c, 0));
    case MLTK_OP_ACT_FORWARD: {
        const mltk_act_params *p = prm;
        return cpu_act_forward(cx, p->act, p->alpha, tf(c, 0), tf(c, 1), tnum(c, 0));
    }
    case MLTK_OP_ACT_BACKWARD: {
        const mltk_act_params *p = prm;
        return cpu_act_backward(cx, p->act, p->alpha, tf(c, 0), tf(c, 1), tf(c, 2), tf(c, 3),
                                tnum(c, 0));
    }
    case MLTK_OP_CAST:
        return cpu_cast(cx, c->t[0].data, c->t[0].dtype, c->t[1].data, c->t[1].dtype,
                        tnum(c, 0));
    case MLTK_OP_CLAMP: {
        const mltk_clamp_params *p = prm;
        return cpu_clamp(cx, tf(c, 0), tnum(c, 0), p->lo, p->hi);
    }
    /* ---- linear algebra ---- */
    case MLTK_OP_GEMM:
        return run_gemm(cx, c, err);
    case MLTK_OP_BIAS_ACT: {
        const mltk_act_params *p = prm;
        const float *b = tf(c, 1);
        cols = b ? tnum(c, 1) : tlast(c, 0);
        rows = cols > 0 ? tnum(c, 0) / cols : 0;
        return cpu_bias_act(cx, tf(c, 0), b, rows, cols, cols, p->act, p->alpha);
    }
    case MLTK_OP_SUM_ROWS:
        cols = tnum(c, 0);
        rows = cols > 0 ? tnum(c, 1) / cols : 0;
        return cpu_sum_rows(cx, tf(c, 0), tf(c, 1), rows, cols,
                            ((const mltk_sum_rows_params *)prm)->beta);
    /* ---- reductions ---- */
    case MLTK_OP_SUM:
        return cpu_sum(cx, tf(c, 0), tf(c, 1), tnum(c, 1));
    case MLTK_OP_SUMSQ:
        return cpu_sumsq(cx, tf(c, 0), tf(c, 1), tnum(c, 1));
    case MLTK_OP_SCALE_TO_NORM:
        return cpu_scale_to_norm(cx, tf(c, 0), tnum(c, 0), tf(c, 1),
                                 ((const mltk_norm_params *)prm)->max_norm);
    case MLTK_OP_NONFINITE:
        return cpu_nonfinite(cx, tf(c, 0), tf(c, 1), tnum(c, 1));
    /* ---- losses and metrics ---- */
    case MLTK_OP_SOFTMAX_XENT:
        return run_xent(cx, c);
    case MLTK_OP_COUNT_CORRECT:
        return cpu_count_correct(cx, tf(c, 0), tf(c, 1), ti32(c, 2), tdim(c, 1, 0), tlast(c, 1));
    case MLTK_OP_POINTWISE_LOSS: {
        const mltk_pointwise_params *p = prm;
        return cpu_pointwise_loss(cx, (int)p->kind, tf(c, 0), tf(c, 1), tf(c, 2), tf(c, 3),
                                  tnum(c, 2), p->grad_scale);
    }
    case MLTK_OP_KL_DIV_LOGITS: {
        const mltk_kl_params *p = prm;
        return cpu_kl_div_logits(cx, tf(c, 0), tf(c, 1), tf(c, 2), tf(c, 3), tdim(c, 2, 0),
                                 tlast(c, 2), p->T, p->grad_scale);
    }
    /* ---- data movement ---- */
    case MLTK_OP_GATHER_ROWS: {
        int64_t n = tdim(c, 0, 0), M = tdim(c, 1, 0);
        int64_t per = n > 0 ? tnum(c, 0) / n : 0;
        size_t row_bytes = (size_t)per * mltk_dtype_size(c->t[0].dtype);
        return cpu_gather_rows(cx, c->t[0].data, c->t[1].data, M, ti32(c, 2), n, row_bytes,
                               err);
    }
    case MLTK_OP_GATHER_AUGMENT_2D: {
        const mltk_augment_params *p = prm;
        return cpu_gather_augment_2d(cx, tf(c, 0), tf(c, 1), ti32(c, 2), tdim(c, 0, 0),
                                     tdim(c, 1, 0), tdim(c, 0, 1), tdim(c, 0, 2),
                                     tdim(c, 0, 3), p->pad, p->flip, p->seed, p->offset,
                                     err);
    }
    case MLTK_OP_COPY_2D:
        rows_cols(c, 0, &rows, &cols, &ld);
        rows_cols(c, 1, &rows2, &cols2, &ld2);
        return cpu_copy_2d(cx, tf(c, 0), ld, tf(c, 1), ld2, rows, cols,
                           ((const mltk_copy_params *)prm)->accumulate);
    case MLTK_OP_EMBEDDING_FORWARD:
        return cpu_embedding_forward(cx, tf(c, 0), tf(c, 1), tf(c, 2), tnum(c, 2), tlast(c, 1),
                                     tdim(c, 1, 0), err);
    case MLTK_OP_EMBEDDING_BACKWARD:
        return cpu_embedding_backward(cx, tf(c, 0), tf(c, 1), tf(c, 2), tnum(c, 2),
                                      tlast(c, 0), tdim(c, 0, 0), err);
    /* ---- random numbers ---- */
    case MLTK_OP_RNG_UNIFORM: {
        const mltk_rng_params *p = prm;
        return cpu_rng_uniform(cx, tf(c, 0), tnum(c, 0), p->a, p->b, p->seed, p->offset);
    }
    case MLTK_OP_RNG_NORMAL: {
        const mltk_rng_params *p = prm;
        return cpu_rng_normal(cx, tf(c, 0), tnum(c, 0), p->a, p->b, p->seed, p->offset);
    }
    case MLTK_OP_DROPOUT_FORWARD: {
        const mltk_dropout_params *p = prm;
        return cpu_dropout_forward(cx, tf(c, 0), tf(c, 1), tf(c, 2), tnum(c, 2), p->p,
                                   p->seed, p->offset);
    }
    /* ---- convolution and pooling ---- */
    case MLTK_OP_CONV2D_FORWARD:
    case MLTK_OP_CONV2D_BACKWARD_DATA:
    case MLTK_OP_CONV2D_BACKWARD_FILTER: {
        /* the core checked the workspace against cpu_workspace() */
        const mltk_conv2d_params *p = prm;
        if (conv_dtype(c) == MLTK_BF16)
            return run_conv_bf16(cx, c, err);
        if (c->op == MLTK_OP_CONV2D_FORWARD)
            return cpu_conv2d_forward(cx, tf(c, 0), tf(c, 1), tf(c, 2), tf(c, 3), &p->d, p->act,
                                      p->act_alpha, c->ws, err);
        if (c->op == MLTK_OP_CONV2D_BACKWARD_DATA)
            return cpu_conv2d_backward_data(cx, tf(c, 0), tf(c, 1), tf(c, 2), &p->d, c->ws,
                                            err);
        return cpu_conv2d_backward_filter(cx, tf(c, 0), tf(c, 1), tf(c, 2), tf(c, 3), &p->d,
                                          c->ws, err);
    }
    case MLTK_OP_POOL2D_FORWARD: {
        const mltk_pool2d_params *p = prm;
        return cpu_pool2d_forward(cx, p->kind, tf(c, 0), tf(c, 1), &p->d);
    }
    case MLTK_OP_POOL2D_BACKWARD: {
        const mltk_pool2d_params *p = prm;
        return cpu_pool2d_backward(cx, p->kind, tf(c, 0), tf(c, 1), tf(c, 2), tf(c, 3), &p->d);
    }
    /* ---- normalisation ---- */
    case MLTK_OP_BATCHNORM_FORWARD_TRAIN: {
        const mltk_bn_params *p = prm;
        int64_t N, C, L;
        bn_dims(c, 5, &N, &C, &L);
        return cpu_batchnorm_forward_train(cx, tf(c, 0), tf(c, 5), tf(c, 6), tf(c, 7), tf(c, 1),
                                           tf(c, 2), tf(c, 3), tf(c, 4), N, C, L, p->momentum,
                                           p->eps, err);
    }
    case MLTK_OP_BATCHNORM_FORWARD_EVAL: {
        const mltk_bn_params *p = prm;
        int64_t N, C, L;
        bn_dims(c, 1, &N, &C, &L);
        return cpu_batchnorm_forward_eval(cx, tf(c, 0), tf(c, 1), tf(c, 2), tf(c, 3), tf(c, 4),
                                          tf(c, 5), N, C, L, p->eps);
    }
    case MLTK_OP_BATCHNORM_BACKWARD: {
        int64_t N, C, L;
        bn_dims(c, 4, &N, &C, &L);
        return cpu_batchnorm_backward(cx, tf(c, 0), tf(c, 1), tf(c, 2), tf(c, 3), tf(c, 4),
                                      tf(c, 5), tf(c, 6), tf(c, 7), N, C, L);
    }
    case MLTK_OP_LAYERNORM_FORWARD:
        last_dim(c, 3, &rows, &cols);
        return cpu_layernorm_forward(cx, tf(c, 0), tf(c, 3), tf(c, 4), tf(c, 5), tf(c, 1),
                                     tf(c, 2), rows, cols,
                                     ((const mltk_ln_params *)prm)->eps);
    case MLTK_OP_LAYERNORM_BACKWARD:
        last_dim(c, 4, &rows, &cols);
        return cpu_layernorm_backward(cx, tf(c, 0), tf(c, 1), tf(c, 2), tf(c, 3), tf(c, 4),
                                      tf(c, 5), tf(c, 6), tf(c, 7), rows, cols);
    case MLTK_OP_SOFTMAX_FORWARD:
        last_dim(c, 1, &rows, &cols);
        return cpu_softmax_forward(cx, tf(c, 0), tf(c, 1), rows, cols);
    case MLTK_OP_SOFTMAX_BACKWARD:
        last_dim(c, 1, &rows, &cols);
        return cpu_softmax_backward(cx, tf(c, 0), tf(c, 1), tf(c, 2), rows, cols);
    /* ---- optimizer updates ---- */
    case MLTK_OP_SGD_STEP:
        return cpu_sgd_step(cx, tf(c, 0), tf(c, 2), tf(c, 1), tnum(c, 0), prm, tf(c, 3));
    case MLTK_OP_ADAM_STEP:
        return cpu_adam_step(cx, tf(c, 0), tf(c, 3), tf(c, 1), tf(c, 2), tnum(c, 0), prm,
                             tf(c, 4));
    case MLTK_OP_RMSPROP_STEP: {
        const mltk_rmsprop_params *p = prm;
        return cpu_rmsprop_step(cx, tf(c, 0), tf(c, 4), tf(c, 1), tf(c, 2), tf(c, 3),
                                tnum(c, 0), p->lr, p->alpha, p->eps, p->weight_decay,
                                p->momentum, p->centered, tf(c, 5));
    }
    case MLTK_OP_LAMB_STEP: {
        const mltk_lamb_params *p = prm;
        return cpu_lamb_step(cx, tf(c, 0), tf(c, 4), tf(c, 1), tf(c, 2), tnum(c, 0), p->lr,
                             p->beta1, p->beta2, p->eps, p->weight_decay, p->t, p->seg_off,
                             p->n_seg, tf(c, 3), tf(c, 5));
    }
    default:
        return mltk_errf(err, MLTK_ERR_UNSUPPORTED, "cpu: no op %d", (int)c->op);
    }
}

/* ---- this level's entry points ---- */

/* cpu_plugin.c's vtable calls these through the context's level */
const cpu_isa_ops cpu_isa_table = {
#if CPU_ISA == CPU_ISA_V4
    .name = "x86-64-v4",
#elif CPU_ISA == CPU_ISA_V3
    .name = "x86-64-v3",
#else
    .name = "generic",
#endif
    .supports = cpu_supports,
    .workspace = cpu_workspace,
    .run = cpu_run,
};
