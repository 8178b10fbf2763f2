/* cuda_kernels.cu - the cuda backend's kernels for the core ops: fill,
 * axpby, activations and their fused bias epilogues (f32, bf16 and f16),
 * casts between those, deterministic reductions and the non-finite check,
 * softmax cross-entropy and the other losses, gathers, Philox random
 * numbers, dropout masks, and the fused SGD / Adam / RMSprop updates.
 *
 * What this is: kernels that compute what the cpu backend computes, with
 * the same formulas in the same precision (fp32 values, double where the
 * cpu accumulates in double), so the conformance suite can compare the
 * two element by element.  Where the cpu result must be matched bit for
 * bit (random numbers, dropout masks) the affine maps are written with
 * __fmul_rn / __fadd_rn, which keeps nvcc from contracting them into an
 * FMA the cpu build does not use.  Reductions use fixed partitions
 * (cuda_kernels.h) and fixed-order block reductions (cuda_device.cuh).
 *
 * Low-precision tensors (bf16, f16) are loaded into float, computed in
 * float and rounded back (cuda_device.cuh), so an elementwise op in bf16
 * is the f32 op followed by a cast.
 *
 * What this is not: argument checking (the core does it, core/op.c), or
 * the normalisation and pooling kernels (cuda_nn_kernels.cu).
 */
#include <stdint.h>
#include <math.h>
#include <cuda_runtime.h>

#include <mltk/rng.h>

#include "cuda_kernels.h"
#include "cuda_device.cuh"

/* ---- activations (cpu.c's definitions) ---- */

#define GELU_K 0.7978845608028654f   /* sqrt(2 / pi) */
#define GELU_C 0.044715f
#define INV_SQRT_2PI 0.3989422804014327f

__device__ __forceinline__ float f_sigmoid(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

/* alpha (e^x - 1) for x <= 0, x for x > 0 */
__device__ __forceinline__ float f_elu(float x, float alpha)
{
    float m = x < 0.0f ? x : 0.0f;
    float e = alpha * expm1f(m);
    return x > 0.0f ? x : e;
}

/* e^(-x^2 / 2) without the rounding of x^2: x^2 is exact in double, split
 * into the float h and the remainder l, e^(-(h + l)/2) = e^(-h/2) (1 - l/2).
 * Beyond |x| = 15 the value (below e^-112) underflows float to 0 anyway,
 * and returning 0 there keeps h from overflowing to inf for |x| > ~1.8e19,
 * where l = xx - inf = -inf would make the product 0 * inf = NaN (which
 * gelu's derivative then returned at x = +-1e30).  NaN stays NaN. */
#define EXP_HALF_SQ_ZERO 15.0f

__device__ __forceinline__ float f_exp_half_sq(float x)
{
    if (fabsf(x) > EXP_HALF_SQ_ZERO)
        return 0.0f;
    double xx = (double)x * (double)x;
    float h = (float)xx;
    float l = (float)(xx - (double)h);
    return expf(-0.5f * h) * (1.0f - 0.5f * l);
}

/* Phi(x), accurate in both tails (CUDA's normcdff, a few ulp) */
__device__ __forceinline__ float f_ncdf(float x)
{
    return normcdff(x);
}

__device__ __forceinline__ float f_gelu_tanh(float x)
{
    float u = GELU_K * (x + GELU_C * x * x * x);
    return x * f_sigmoid(2.0f * u);
}

/* s + x (2 u') s (1 - s), s = sigmoid(2 u).  Once s has saturated to 0 or
 * 1 the second term is exactly 0; it is skipped there because x u' has
 * overflowed to inf by |x| ~ 1e13 and inf * 0 would be NaN.  The limits are
 * then exact: 1 for x -> +inf, 0 for x -> -inf. */
__device__ __forceinline__ float f_dgelu_tanh(float x)
{
    float u = GELU_K * (x + GELU_C * x * x * x);
    float s = f_sigmoid(2.0f * u);
    if (s * (1.0f - s) == 0.0f)
        return s;
    float du = GELU_K * (1.0f + 3.0f * GELU_C * x * x);
    return s + x * (2.0f * du) * s * (1.0f - s);
}

__device__ __forceinline__ float f_gelu(float x)
{
    return x * f_ncdf(x);
}

/* Phi(x) + x phi(x): for |x| > 15 phi is exactly 0 (f_exp_half_sq) and Phi
 * is 1 or 0, so the limits 1 and 0 come out exactly; the product is
 * skipped there so that x = +-inf gives them too (inf * 0 would be NaN) */
__device__ __forceinline__ float f_dgelu(float x)
{
    float e = f_exp_half_sq(x);
    if (e == 0.0f)
        return f_ncdf(x);
    return f_ncdf(x) + x * INV_SQRT_2PI * e;
}

template <int A>
__device__ __forceinline__ float act_fwd(float v, float alpha)
{
    switch (A) {
    case MLTK_ACT_RELU:       return v < 0.0f ? 0.0f : v;  /* NaN stays NaN */
    case MLTK_ACT_LEAKY_RELU: return v > 0.0f ? v : v * alpha;
    case MLTK_ACT_SIGMOID:    return f_sigmoid(v);
    case MLTK_ACT_TANH:       return tanhf(v);
    case MLTK_ACT_ELU:        return f_elu(v, alpha);
    case MLTK_ACT_GELU_TANH:  return f_gelu_tanh(v);
    case MLTK_ACT_GELU:       return f_gelu(v);
    default:                  return v;
    }
}

/* dy * act'(.) from s: the output y when S_IS_Y, else the input x */
template <int A, int S_IS_Y>
__device__ __forceinline__ float act_bwd(float dy, float s, float alpha)
{
    switch (A) {
    case MLTK_ACT_RELU:
        return s > 0.0f ? dy : 0.0f;
    case MLTK_ACT_LEAKY_RELU:
        return s > 0.0f ? dy : dy * alpha;
    case MLTK_ACT_SIGMOID: {
        float y = S_IS_Y ? s : f_sigmoid(s);
        return dy * (1.0f - y) * y;
    }
    case MLTK_ACT_TANH: {
        float y = S_IS_Y ? s : tanhf(s);
        return dy * (1.0f - y * y);
    }
    case MLTK_ACT_ELU:
        if (S_IS_Y)  /* y + alpha = alpha e^x where x <= 0 */
            return s > 0.0f ? dy : dy * (s + alpha);
        else {
            float m = s < 0.0f ? s : 0.0f;
            float d = alpha * expf(m);
            return s > 0.0f ? dy : dy * d;
        }
    case MLTK_ACT_GELU_TANH:
        return dy * f_dgelu_tanh(s);
    case MLTK_ACT_GELU:
        return dy * f_dgelu(s);
    default:
        return dy;
    }
}

/* ---- elementwise (T: float, ck_bf16 or ck_f16; computed in float) ---- */

template <class T>
__global__ void k_fill(T *x, float v, int64_t n)
{
    CK_FOR(i, n)
        ck_st(&x[i], v);
}

/* batch b, row r: c + b sc + r ldc; one block row per (b, r) line */
template <class T>
__global__ void k_scale_2d(T *c, int64_t ldc, int64_t sc, int64_t rows, int64_t lines,
                           int64_t cols, float beta)
{
    CK_FOR_Y(l, lines) {
        T *cr = c + (l / rows) * sc + (l % rows) * ldc;
        CK_FOR_X(j, cols)
            ck_st(&cr[j], beta == 0.0f ? 0.0f : beta * ck_ld(&cr[j]));
    }
}

template <class T>
__global__ void k_axpby(T *y, float a, const T *x, float b, int64_t n)
{
    if (b == 0.0f) {
        CK_FOR(i, n)
            ck_st(&y[i], a * ck_ld(&x[i]));
    } else {
        CK_FOR(i, n)
            ck_st(&y[i], a * ck_ld(&x[i]) + b * ck_ld(&y[i]));
    }
}

template <class T>
__global__ void k_mul(T *z, const T *x, const T *y, int64_t n)
{
    CK_FOR(i, n)
        ck_st(&z[i], ck_ld(&x[i]) * ck_ld(&y[i]));
}

template <class T, int A>
__global__ void k_act_fwd(T *y, const T *x, float alpha, int64_t n)
{
    CK_FOR(i, n)
        ck_st(&y[i], act_fwd<A>(ck_ld(&x[i]), alpha));
}

template <class T, int A, int S_IS_Y>
__global__ void k_act_bwd(T *dx, const T *dy, const T *s, float alpha, int64_t n)
{
    CK_FOR(i, n)
        ck_st(&dx[i], act_bwd<A, S_IS_Y>(ck_ld(&dy[i]), ck_ld(&s[i]), alpha));
}

/* y (batch, rows, cols) with row stride ldy and batch stride sy: one block
 * row per (b, r) line; b may be NULL (the activation alone: nothing is
 * added, so -0 stays -0) */
template <class TY, class TB, int A>
__global__ void k_bias_act(TY *y, int64_t ldy, int64_t sy, int64_t rows, int64_t lines,
                           int64_t cols, const TB *b, float alpha)
{
    CK_FOR_Y(l, lines) {
        TY *yr = y + (l / rows) * sy + (l % rows) * ldy;
        CK_FOR_X(j, cols) {
            float v = ck_ld(&yr[j]);
            if (b)
                v += ck_ld(&b[j]);
            ck_st(&yr[j], act_fwd<A>(v, alpha));
        }
    }
}

/* y in TY, the bias in TB (f32 or y's dtype; y f32 with a bf16 or f16
 * bias in a widened convolution) */
template <class TY, class TB, int A>
struct bias_act_chan {
    TY *y;
    const TB *b;
    float alpha;
    __device__ void operator()(int64_t i, int64_t c) const
    {
        ck_st(&y[i], act_fwd<A>(ck_ld(&y[i]) + (b ? ck_ld(&b[c]) : 0.0f), alpha));
    }
};

template <class TY, class TX>
__global__ void k_cast(TY *y, const TX *x, int64_t n)
{
    CK_FOR(i, n)
        ck_st(&y[i], ck_ld(&x[i]));
}

/* call CALL with A_ the activation chosen at run time */
#define ACT_DISPATCH(act, CALL)                                               \
    switch (act) {                                                            \
    case MLTK_ACT_RELU:       { const int A_ = MLTK_ACT_RELU; CALL; } break;      \
    case MLTK_ACT_LEAKY_RELU: { const int A_ = MLTK_ACT_LEAKY_RELU; CALL; } break; \
    case MLTK_ACT_SIGMOID:    { const int A_ = MLTK_ACT_SIGMOID; CALL; } break;   \
    case MLTK_ACT_TANH:       { const int A_ = MLTK_ACT_TANH; CALL; } break;      \
    case MLTK_ACT_ELU:        { const int A_ = MLTK_ACT_ELU; CALL; } break;       \
    case MLTK_ACT_GELU_TANH:  { const int A_ = MLTK_ACT_GELU_TANH; CALL; } break; \
    case MLTK_ACT_GELU:       { const int A_ = MLTK_ACT_GELU; CALL; } break;      \
    default:                  { const int A_ = MLTK_ACT_NONE; CALL; } break;      \
    }

extern "C" cudaError_t ck_fill(cudaStream_t s, mltk_dtype dt, void *x, float v, int64_t n)
{
    if (n <= 0)
        return cudaSuccess;
    const unsigned g = ck_blocks(n, CK_THREADS);
    CK_DT_DISPATCH(dt, (k_fill<T_><<<g, CK_THREADS, 0, s>>>((T_ *)x, v, n)));
    return cudaGetLastError();
}

extern "C" cudaError_t ck_scale_2d(cudaStream_t s, mltk_dtype dt, void *c, int64_t ldc,
                                   int64_t sc, int64_t batch, int64_t rows, int64_t cols,
                                   float beta)
{
    if (batch <= 0 || rows <= 0 || cols <= 0)
        return cudaSuccess;
    const dim3 g = ck_grid_2d(batch * rows, cols);
    CK_DT_DISPATCH(dt, (k_scale_2d<T_><<<g, CK_THREADS, 0, s>>>((T_ *)c, ldc, sc, rows,
                                                                 batch * rows, cols, beta)));
    return cudaGetLastError();
}

extern "C" cudaError_t ck_axpby(cudaStream_t s, mltk_dtype dt, void *y, float a, const void *x,
                                float b, int64_t n)
{
    if (n <= 0)
        return cudaSuccess;
    const unsigned g = ck_blocks(n, CK_THREADS);
    CK_DT_DISPATCH(dt, (k_axpby<T_><<<g, CK_THREADS, 0, s>>>((T_ *)y, a, (const T_ *)x, b, n)));
    return cudaGetLastError();
}

extern "C" cudaError_t ck_mul(cudaStream_t s, mltk_dtype dt, void *z, const void *x,
                              const void *y, int64_t n)
{
    if (n <= 0)
        return cudaSuccess;
    const unsigned g = ck_blocks(n, CK_THREADS);
    CK_DT_DISPATCH(dt, (k_mul<T_><<<g, CK_THREADS, 0, s>>>((T_ *)z, (const T_ *)x,
                                                            (const T_ *)y, n)));
    return cudaGetLastError();
}

extern "C" cudaError_t ck_act_forward(cudaStream_t s, mltk_dtype dt, mltk_act act, float alpha,
                                      void *y, const void *x, int64_t n)
{
    if (n <= 0)
        return cudaSuccess;
    const unsigned g = ck_blocks(n, CK_THREADS);
    CK_DT_DISPATCH(dt, ACT_DISPATCH(act, (k_act_fwd<T_, A_><<<g, CK_THREADS, 0, s>>>(
                                              (T_ *)y, (const T_ *)x, alpha, n))));
    return cudaGetLastError();
}

extern "C" cudaError_t ck_act_backward(cudaStream_t s, mltk_dtype dt, mltk_act act, float alpha,
                                       void *dx, const void *dy, const void *src,
                                       int src_is_y, int64_t n)
{
    if (n <= 0)
        return cudaSuccess;
    const unsigned g = ck_blocks(n, CK_THREADS);
    if (src_is_y) {
        CK_DT_DISPATCH(dt, ACT_DISPATCH(act, (k_act_bwd<T_, A_, 1><<<g, CK_THREADS, 0, s>>>(
                                                  (T_ *)dx, (const T_ *)dy, (const T_ *)src,
                                                  alpha, n))));
    } else {
        CK_DT_DISPATCH(dt, ACT_DISPATCH(act, (k_act_bwd<T_, A_, 0><<<g, CK_THREADS, 0, s>>>(
                                                  (T_ *)dx, (const T_ *)dy, (const T_ *)src,
                                                  alpha, n))));
    }
    return cudaGetLastError();
}

extern "C" cudaError_t ck_bias_act(cudaStream_t s, mltk_dtype dt, void *y, int64_t ldy,
                                   int64_t sy, int64_t batch, int64_t rows, int64_t cols,
                                   mltk_dtype bdt, const void *b, mltk_act act, float alpha)
{
    if (batch <= 0 || rows <= 0 || cols <= 0)
        return cudaSuccess;
    const dim3 g = ck_grid_2d(batch * rows, cols);
    const int64_t lines = batch * rows;
    if (!b || bdt == MLTK_F32 || dt == MLTK_F32) {
        /* the bias in f32 (gemm's) or none */
        CK_DT_DISPATCH(dt, ACT_DISPATCH(act, (k_bias_act<T_, float, A_><<<g, CK_THREADS, 0,
                                                                          s>>>(
                                                  (T_ *)y, ldy, sy, rows, lines, cols,
                                                  (const float *)b, alpha))));
    } else {
        /* the bias in y's dtype (the bias_act op) */
        CK_DT_DISPATCH(dt, ACT_DISPATCH(act, (k_bias_act<T_, T_, A_><<<g, CK_THREADS, 0, s>>>(
                                                  (T_ *)y, ldy, sy, rows, lines, cols,
                                                  (const T_ *)b, alpha))));
    }
    return cudaGetLastError();
}

extern "C" cudaError_t ck_chan_bias_act(cudaStream_t s, mltk_dtype dt, void *y,
                                        mltk_dtype bdt, const void *b, int64_t N, int64_t C,
                                        int64_t L, mltk_act act, float alpha)
{
    cudaError_t e = cudaSuccess;
    if (!b || bdt == dt) {
        CK_DT_DISPATCH(dt, ACT_DISPATCH(act, (e = ck_launch_chan(
                                                  s, bias_act_chan<T_, T_, A_>{
                                                         (T_ *)y, (const T_ *)b, alpha },
                                                  N, C, L))));
    } else if (bdt == MLTK_F32) {
        /* y in bf16 or f16, the bias in f32 */
        CK_DT_DISPATCH(dt, ACT_DISPATCH(act, (e = ck_launch_chan(
                                                  s, bias_act_chan<T_, float, A_>{
                                                         (T_ *)y, (const float *)b, alpha },
                                                  N, C, L))));
    } else {
        /* y in f32, the bias in bf16 or f16 (T_ is the bias's type) */
        CK_DT_DISPATCH(bdt, ACT_DISPATCH(act, (e = ck_launch_chan(
                                                   s, bias_act_chan<float, T_, A_>{
                                                          (float *)y, (const T_ *)b, alpha },
                                                   N, C, L))));
    }
    return e;
}

extern "C" cudaError_t ck_cast(cudaStream_t s, void *y, mltk_dtype ty, const void *x,
                               mltk_dtype tx, int64_t n)
{
    if (n <= 0)
        return cudaSuccess;
    if (ty == tx) {
        if (y == x)
            return cudaSuccess;
        return cudaMemcpyAsync(y, x, (size_t)n * (tx == MLTK_F32 ? 4 : 2),
                               cudaMemcpyDeviceToDevice, s);
    }
    const unsigned g = ck_blocks(n, CK_THREADS);
    /* T_ is the source's type, the destination is dispatched inside */
    switch (ty) {
    case MLTK_BF16:
        CK_DT_DISPATCH(tx, (k_cast<ck_bf16, T_><<<g, CK_THREADS, 0, s>>>((ck_bf16 *)y,
                                                                         (const T_ *)x, n)));
        break;
    case MLTK_F16:
        CK_DT_DISPATCH(tx, (k_cast<ck_f16, T_><<<g, CK_THREADS, 0, s>>>((ck_f16 *)y,
                                                                        (const T_ *)x, n)));
        break;
    default:
        CK_DT_DISPATCH(tx, (k_cast<float, T_><<<g, CK_THREADS, 0, s>>>((float *)y,
                                                                       (const T_ *)x, n)));
        break;
    }
    return cudaGetLastError();
}

/* ---- clipping ---- */

/* NaN stays NaN, as torch.clamp leaves it */
template <class T>
__global__ void k_clamp(T *x, int64_t n, float lo, float hi)
{
    CK_FOR(i, n) {
        float v = ck_ld(&x[i]);
        v = v < lo ? lo : v;
        ck_st(&x[i], v > hi ? hi : v);
    }
}

/* torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6) applied
 * when below 1 (a NaN coefficient propagates) */
template <class T>
__global__ void k_scale_to_norm(T *x, int64_t n, const float *sumsq, float max_norm)
{
    const float coef = max_norm / (sqrtf(sumsq[0]) + 1e-6f);
    if (coef >= 1.0f)
        return;
    CK_FOR(i, n)
        ck_st(&x[i], ck_ld(&x[i]) * coef);
}

extern "C" cudaError_t ck_clamp(cudaStream_t s, mltk_dtype dt, void *x, int64_t n, float lo,
                                float hi)
{
    if (n <= 0)
        return cudaSuccess;
    const unsigned g = ck_blocks(n, CK_THREADS);
    CK_DT_DISPATCH(dt, (k_clamp<T_><<<g, CK_THREADS, 0, s>>>((T_ *)x, n, lo, hi)));
    return cudaGetLastError();
}

extern "C" cudaError_t ck_scale_to_norm(cudaStream_t s, mltk_dtype dt, void *x, int64_t n,
                                        const float *sumsq, float max_norm)
{
    if (n <= 0)
        return cudaSuccess;
    const unsigned g = ck_blocks(n, CK_THREADS);
    CK_DT_DISPATCH(dt, (k_scale_to_norm<T_><<<g, CK_THREADS, 0, s>>>((T_ *)x, n, sumsq,
                                                                      max_norm)));
    return cudaGetLastError();
}

/* ---- reductions ---- */

/* part[b] = sum over block b's contiguous range (of squares when sq) */
template <class T>
__global__ void k_sum_part(const T *x, int64_t n, int64_t per, int sq, double *part)
{
    const int64_t b0 = (int64_t)blockIdx.x * per;
    const int64_t b1 = b0 + per < n ? b0 + per : n;
    double acc = 0.0;
    for (int64_t i = b0 + threadIdx.x; i < b1; i += blockDim.x) {
        double v = ck_ld(&x[i]);
        acc += sq ? v * v : v;
    }
    acc = ck_block_sum(acc);
    if (threadIdx.x == 0)
        part[blockIdx.x] = acc;
}

__global__ void k_finish_sum(float *out, const double *part, int64_t n, double mul,
                             double divc, const double *div)
{
    double acc = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        acc += part[i];
    acc = ck_block_sum(acc);
    if (threadIdx.x == 0) {
        double t = acc * mul / divc;
        if (div)
            t /= div[0];
        out[0] = (float)t;
    }
}

/* column sums of rows [k RC, (k+1) RC) for chunk k = blockIdx.y */
template <class T>
__global__ void k_sum_rows_part(const T *x, int64_t rows, int64_t cols, int64_t chunks,
                                double *part)
{
    CK_FOR_Y(k, chunks) {
        const int64_t r0 = k * CK_ROW_CHUNK;
        const int64_t r1 = r0 + CK_ROW_CHUNK < rows ? r0 + CK_ROW_CHUNK : rows;
        CK_FOR_X(j, cols) {
            double acc = 0.0;
            for (int64_t r = r0; r < r1; r++)
                acc += ck_ld(&x[r * cols + j]);
            part[k * cols + j] = acc;
        }
    }
}

template <class T>
__global__ void k_sum_rows_finish(T *out, const double *part, int64_t chunks, int64_t cols,
                                  float beta)
{
    CK_FOR(j, cols) {
        double acc = 0.0;
        for (int64_t k = 0; k < chunks; k++)
            acc += part[k * cols + j];
        ck_st(&out[j], beta == 0.0f ? (float)acc
                                    : (float)(acc + (double)beta * ck_ld(&out[j])));
    }
}

extern "C" cudaError_t ck_sum(cudaStream_t s, mltk_dtype dt, float *out, const void *x,
                              int64_t n, int squares, double *part)
{
    const int64_t nb = ck_reduce_parts(n);
    const int64_t per = (n + nb - 1) / nb;
    CK_DT_DISPATCH(dt, (k_sum_part<T_><<<(unsigned)nb, CK_THREADS, 0, s>>>(
                            (const T_ *)x, n, per, squares, part)));
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return e;
    return ck_finish_sum(s, out, part, nb, 1.0, 1.0, NULL);
}

extern "C" cudaError_t ck_finish_sum(cudaStream_t s, float *out, const double *part,
                                     int64_t n, double mul, double divc, const double *div)
{
    k_finish_sum<<<1, 1024, 0, s>>>(out, part, n, mul, divc, div);
    return cudaGetLastError();
}

extern "C" cudaError_t ck_sum_rows(cudaStream_t s, mltk_dtype dt, void *out, const void *x,
                                   int64_t rows, int64_t cols, float beta, double *part)
{
    if (cols <= 0)
        return cudaSuccess;
    const int64_t chunks = ck_row_chunks(rows);
    if (rows > 0) {
        const dim3 g = ck_grid_2d(chunks, cols);
        CK_DT_DISPATCH(dt, (k_sum_rows_part<T_><<<g, CK_THREADS, 0, s>>>(
                                (const T_ *)x, rows, cols, chunks, part)));
    } else {
        /* no rows: the sums are 0 */
        cudaError_t e = cudaMemsetAsync(part, 0, (size_t)cols * sizeof(double), s);
        if (e != cudaSuccess)
            return e;
    }
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return e;
    const unsigned g = ck_blocks(cols, CK_THREADS);
    CK_DT_DISPATCH(dt, (k_sum_rows_finish<T_><<<g, CK_THREADS, 0, s>>>((T_ *)out, part, chunks,
                                                                        cols, beta)));
    return cudaGetLastError();
}

/* ---- non-finite check ---- */

/* 1 when one of the values packed in word w (one f32, or two 16-bit
 * values) has its exponent all ones (NaN or inf) */
template <int BITS16, int EXP16>
__device__ __forceinline__ int word_nonfinite(uint32_t w)
{
    if (!BITS16)
        return (w & 0x7f800000u) == 0x7f800000u;
    return (w & (uint32_t)EXP16) == (uint32_t)EXP16
        || ((w >> 16) & (uint32_t)EXP16) == (uint32_t)EXP16;
}

/* Block b's answer in part[b] (0 or 1): the 16-byte vectors [0, nv) and
 * then the elements [tail, n) one by one (as 32-bit words or 16-bit
 * halves), each spread over the grid by the same rule.  EXP16 is the
 * exponent mask of the 16-bit type (0 for f32). */
template <int BITS16, int EXP16>
__global__ void k_nonfinite_part(const void *x, int64_t nv, int64_t tail, int64_t n,
                                 double *part)
{
    int any = 0;
    const uint4 *v = (const uint4 *)x;
    CK_FOR(i, nv) {
        const uint4 q = v[i];
        any |= word_nonfinite<BITS16, EXP16>(q.x) | word_nonfinite<BITS16, EXP16>(q.y)
             | word_nonfinite<BITS16, EXP16>(q.z) | word_nonfinite<BITS16, EXP16>(q.w);
    }
    for (int64_t i = tail + (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        if (BITS16) {
            const uint32_t h = ((const uint16_t *)x)[i];
            any |= (h & (uint32_t)EXP16) == (uint32_t)EXP16;
        } else {
            any |= word_nonfinite<0, 0>(((const uint32_t *)x)[i]);
        }
    }
    any = __syncthreads_or(any);
    if (threadIdx.x == 0)
        part[blockIdx.x] = any ? 1.0 : 0.0;
}

/* flag[0] = 1 when a block saw one and 1 > flag[0] (so a NaN flag stays) */
__global__ void k_nonfinite_finish(float *flag, const double *part, int64_t nb)
{
    int any = 0;
    for (int64_t i = threadIdx.x; i < nb; i += blockDim.x)
        any |= part[i] != 0.0;
    any = __syncthreads_or(any);
    if (threadIdx.x == 0 && any && 1.0f > flag[0])
        flag[0] = 1.0f;
}

extern "C" cudaError_t ck_nonfinite(cudaStream_t s, mltk_dtype dt, float *flag, const void *x,
                                    int64_t n, double *part)
{
    if (n <= 0)
        return cudaSuccess;
    const int64_t nb = ck_reduce_parts(n);
    const int64_t es = dt == MLTK_F32 ? 4 : 2;
    const int64_t nv = ((uintptr_t)x & 15) == 0 ? n * es / 16 : 0;
    const int64_t tail = nv * 16 / es;
    if (dt == MLTK_BF16)
        k_nonfinite_part<1, 0x7f80><<<(unsigned)nb, CK_THREADS, 0, s>>>(x, nv, tail, n, part);
    else if (dt == MLTK_F16)
        k_nonfinite_part<1, 0x7c00><<<(unsigned)nb, CK_THREADS, 0, s>>>(x, nv, tail, n, part);
    else
        k_nonfinite_part<0, 0><<<(unsigned)nb, CK_THREADS, 0, s>>>(x, nv, tail, n, part);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return e;
    k_nonfinite_finish<<<1, 1024, 0, s>>>(flag, part, nb);
    return cudaGetLastError();
}

/* ---- label guards ---- */

/* label l of a row of C classes is usable; else raise CK_BAD_LABEL */
__device__ __forceinline__ int label_ok(unsigned *flag, int32_t l, int64_t C)
{
    if (l >= 0 && (int64_t)l < C)
        return 1;
    atomicOr(flag, (unsigned)CK_BAD_LABEL);
    return 0;
}
/* ---- softmax cross-entropy and accuracy ---- */

/* One block per row.  As cpu.c: m = row max, s = sum e^(x - m), the row's
 * loss (m - x[y]) + log s; d = e / s * scale, d[y] = (e_y / s - 1) scale.
 * The exponentials are summed in double (the cpu sums floats).  A bad
 * label (uniform across the block) gives loss 0 and a zero gradient row. */
__global__ void k_softmax_xent(unsigned *flag, double *rows, float *dl, const float *logits,
                               const int32_t *labels, int64_t N, int64_t C, float scale)
{
    for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
        const float *x = logits + r * C;
        float *d = dl ? dl + r * C : NULL;
        const int32_t y = labels[r];
        if (!label_ok(flag, y, C)) {
            if (threadIdx.x == 0)
                rows[r] = 0.0;
            if (d)
                for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
                    d[c] = 0.0f;
            continue;
        }
        float m = -INFINITY;
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
            m = fmaxf(m, x[c]);
        m = ck_block_max(m);
        double acc = 0.0;
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
            float e = expf(x[c] - m);
            if (d)
                d[c] = e;
            acc += e;
        }
        const float sf = (float)ck_block_sum(acc);
        if (threadIdx.x == 0)
            rows[r] = (double)((m - x[y]) + logf(sf));
        if (d) {
            const float inv = 1.0f / sf;
            for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
                float e = d[c];
                d[c] = c == y ? (e * inv - 1.0f) * scale : e * inv * scale;
            }
        }
    }
}

/* One warp per row: the first maximum as cpu.c's scan finds it (a NaN in
 * column 0 wins, later NaNs never do), compared with the label. */
__global__ void k_count_correct(unsigned *flag, double *rows, const float *logits,
                                const int32_t *labels, int64_t N, int64_t C)
{
    const int lane = threadIdx.x & 31;
    const int64_t warps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < N; r += warps) {
        const float *x = logits + r * C;
        float bv = -INFINITY;
        long long bi = -1;
        for (int64_t c = lane; c < C; c += 32) {
            float v = x[c];
            if (!isnan(v) && (bi < 0 || v > bv)) {
                bv = v;
                bi = c;
            }
        }
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_down_sync(0xffffffffu, bv, o);
            long long oi = __shfl_down_sync(0xffffffffu, bi, o);
            if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) {
                bv = ov;
                bi = oi;
            }
        }
        if (lane == 0) {
            long long best = isnan(x[0]) || bi < 0 ? 0 : bi;
            const int32_t y = labels[r];
            rows[r] = label_ok(flag, y, C) && best == (long long)y ? 1.0 : 0.0;
        }
    }
}

extern "C" cudaError_t ck_softmax_xent(cudaStream_t s, unsigned *flag, double *rows, float *dl,
                                       const float *logits, const int32_t *labels,
                                       int64_t N, int64_t C, float scale)
{
    if (N <= 0)
        return cudaSuccess;
    k_softmax_xent<<<ck_blocks(N, 1), ck_row_threads(C), 0, s>>>(flag, rows, dl, logits,
                                                                  labels, N, C, scale);
    return cudaGetLastError();
}

extern "C" cudaError_t ck_count_correct(cudaStream_t s, unsigned *flag, double *rows,
                                        const float *logits, const int32_t *labels, int64_t N,
                                        int64_t C)
{
    if (N <= 0)
        return cudaSuccess;
    k_count_correct<<<ck_blocks(N * 32, CK_THREADS), CK_THREADS, 0, s>>>(flag, rows, logits,
                                                                         labels, N, C);
    return cudaGetLastError();
}

/* ---- cross-entropy with label smoothing and class weights ---- */

__global__ void k_xent_weights(double *wsum, const int32_t *labels, const float *w, int64_t N,
                               int64_t C)
{
    double a = 0.0, b = 0.0;
    if (w) {
        for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
            const int32_t l = labels[i];
            if (l >= 0 && (int64_t)l < C)  /* a bad label is k_softmax_xent_ex's to flag */
                a += (double)w[l];
        }
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
            b += (double)w[c];
    }
    a = ck_block_sum(a);
    b = ck_block_sum(b);
    if (threadIdx.x == 0) {
        wsum[0] = w ? a : (double)N;
        wsum[1] = w ? b : (double)C;
    }
}

/* One block per row; cpu_misc.c's k_xent_ex in double:
 *   rows[r] = (1 - ls) w[y] (lse - z[y]) + ls/C (sw lse - sum_c w[c] z[c])
 *   d[c] = ((1 - ls) w[y] + ls/C sw) p[c] - ls/C w[c] - [c == y] (1 - ls) w[y],
 * times grad_scale / W. */
__global__ void k_softmax_xent_ex(unsigned *flag, double *rows, float *dl, const float *logits,
                                  const int32_t *labels, const float *w, const double *wsum,
                                  int64_t N, int64_t C, double ls, double grad_scale)
{
    const double lsc = ls / (double)C, sw = wsum[1], scale = grad_scale / wsum[0];
    for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
        const float *z = logits + r * C;
        const int32_t y = labels[r];
        if (!label_ok(flag, y, C)) {
            /* as k_softmax_xent: the row counts 0 */
            if (threadIdx.x == 0)
                rows[r] = 0.0;
            if (dl)
                for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
                    dl[r * C + c] = 0.0f;
            continue;
        }
        float mf = -INFINITY;
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
            mf = fmaxf(mf, z[c]);
        const double m = (double)ck_block_max(mf);
        double s = 0.0, wz = 0.0;
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
            s += exp((double)z[c] - m);
            wz += (w ? (double)w[c] : 1.0) * (double)z[c];
        }
        s = ck_block_sum(s);
        wz = ck_block_sum(wz);
        const double lse = m + log(s);
        const double wy = w ? (double)w[y] : 1.0;
        if (threadIdx.x == 0) {
            double nll = lse - (double)z[y];
            double smooth = ls > 0.0 ? sw * lse - wz : 0.0;
            rows[r] = (1.0 - ls) * wy * nll + lsc * smooth;
        }
        if (dl) {
            float *d = dl + r * C;
            const double coef = (1.0 - ls) * wy + lsc * sw, inv = 1.0 / s;
            for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
                double p = exp((double)z[c] - m) * inv;
                double wc = w ? (double)w[c] : 1.0;
                double g = coef * p - lsc * wc - (c == y ? (1.0 - ls) * wy : 0.0);
                d[c] = (float)(g * scale);
            }
        }
    }
}

extern "C" cudaError_t ck_xent_weights(cudaStream_t s, double *wsum, const int32_t *labels,
                                       const float *weights, int64_t N, int64_t C)
{
    k_xent_weights<<<1, 1024, 0, s>>>(wsum, labels, weights, N, C);
    return cudaGetLastError();
}

extern "C" cudaError_t ck_softmax_xent_ex(cudaStream_t s, unsigned *flag, double *rows,
                                          float *dl, const float *logits,
                                          const int32_t *labels, const float *weights,
                                          const double *wsum, int64_t N, int64_t C, double ls,
                                          double grad_scale)
{
    if (N <= 0)
        return cudaSuccess;
    k_softmax_xent_ex<<<ck_blocks(N, 1), ck_row_threads(C), 0, s>>>(
        flag, rows, dl, logits, labels, weights, wsum, N, C, ls, grad_scale);
    return cudaGetLastError();
}

/* ---- cross-entropy against probabilities (soft targets) ---- */

/* One block per row; cpu_misc.c's k_xent_soft in double: with v[c] =
 * w[c] ((1 - ls) t[c] + ls/C) and S = sum_c v[c],
 *   rows[r] = S log s - sum_c v[c] (z[c] - m)   (= -sum_c v[c] logp[c])
 *   d[c] = (S p[c] - v[c]) scale,  scale = grad_scale / N. */
__global__ void k_softmax_xent_soft(double *rows, float *dl, const float *logits,
                                    const float *t, const float *w, int64_t N, int64_t C,
                                    double ls, double scale)
{
    const double lsc = ls / (double)C;
    for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
        const float *z = logits + r * C, *tr = t + r * C;
        float mf = -INFINITY;
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
            mf = fmaxf(mf, z[c]);
        const double m = (double)ck_block_max(mf);
        double s = 0.0, S = 0.0, vz = 0.0;
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
            double v = ((1.0 - ls) * (double)tr[c] + lsc) * (w ? (double)w[c] : 1.0);
            s += exp((double)z[c] - m);
            S += v;
            vz += v * ((double)z[c] - m);
        }
        s = ck_block_sum(s);
        S = ck_block_sum(S);
        vz = ck_block_sum(vz);
        if (threadIdx.x == 0)
            rows[r] = S * log(s) - vz;
        if (dl) {
            float *d = dl + r * C;
            const double inv = 1.0 / s;
            for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
                double v = ((1.0 - ls) * (double)tr[c] + lsc) * (w ? (double)w[c] : 1.0);
                double p = exp((double)z[c] - m) * inv;
                d[c] = (float)((S * p - v) * scale);
            }
        }
    }
}

extern "C" cudaError_t ck_softmax_xent_soft(cudaStream_t s, double *rows, float *dl,
                                            const float *logits, const float *t,
                                            const float *weights, int64_t N, int64_t C,
                                            double ls, double scale)
{
    if (N <= 0)
        return cudaSuccess;
    k_softmax_xent_soft<<<ck_blocks(N, 1), ck_row_threads(C), 0, s>>>(
        rows, dl, logits, t, weights, N, C, ls, scale);
    return cudaGetLastError();
}

/* ---- pointwise losses and distillation ---- */

/* block b's range of elements: sums of the element losses, gradients
 *   mse (x - t)^2, 2 (x - t);  l1 |x - t|, sign(x - t);
 *   bce max(x, 0) - x t + log1p(e^-|x|), sigmoid(x) - t */
__global__ void k_pointwise(int kind, double *part, float *d, const float *x, const float *t,
                            int64_t n, int64_t per, double sc)
{
    const int64_t b0 = (int64_t)blockIdx.x * per;
    const int64_t b1 = b0 + per < n ? b0 + per : n;
    double acc = 0.0;
    for (int64_t i = b0 + threadIdx.x; i < b1; i += blockDim.x) {
        if (kind == 0) {
            double r = (double)x[i] - (double)t[i];
            acc += r * r;
            if (d)
                d[i] = (float)(2.0 * r * sc);
        } else if (kind == 1) {
            double r = (double)x[i] - (double)t[i];
            acc += fabs(r);
            if (d)
                d[i] = (float)((r > 0.0 ? 1.0 : r < 0.0 ? -1.0 : 0.0) * sc);
        } else {
            double v = x[i], tv = t[i];
            double ex = exp(-fabs(v));
            acc += (v > 0.0 ? v : 0.0) - v * tv + log1p(ex);
            if (d) {
                double sg = v >= 0.0 ? 1.0 / (1.0 + ex) : ex / (1.0 + ex);
                d[i] = (float)((sg - tv) * sc);
            }
        }
    }
    acc = ck_block_sum(acc);
    if (threadIdx.x == 0)
        part[blockIdx.x] = acc;
}

/* One block per row: q = softmax(t / T), p = softmax(s / T),
 * rows[r] = sum_c q_c (log q_c - log p_c) (0 where q_c == 0),
 * d = gscale (p - q). */
__global__ void k_kl_div(double *rows, float *dst, const float *student, const float *teacher,
                         int64_t N, int64_t C, double it, double gscale)
{
    for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
        const float *sr = student + r * C, *tr = teacher + r * C;
        float ms_f = -INFINITY, mt_f = -INFINITY;
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
            ms_f = fmaxf(ms_f, sr[c]);
            mt_f = fmaxf(mt_f, tr[c]);
        }
        /* max(v) * it == max(v * it) for it > 0 */
        const double ms = (double)ck_block_max(ms_f) * it;
        const double mt = (double)ck_block_max(mt_f) * it;
        double ss = 0.0, st = 0.0;
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
            ss += exp((double)sr[c] * it - ms);
            st += exp((double)tr[c] * it - mt);
        }
        ss = ck_block_sum(ss);
        st = ck_block_sum(st);
        const double lss = ms + log(ss), lst = mt + log(st);
        double kl = 0.0;
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
            double lq = (double)tr[c] * it - lst, lp = (double)sr[c] * it - lss;
            double q = exp(lq);
            if (q > 0.0)
                kl += q * (lq - lp);
            if (dst)
                dst[r * C + c] = (float)((exp(lp) - q) * gscale);
        }
        kl = ck_block_sum(kl);
        if (threadIdx.x == 0)
            rows[r] = kl;
    }
}

extern "C" cudaError_t ck_pointwise(cudaStream_t s, int kind, double *part, float *d,
                                    const float *x, const float *t, int64_t n, double scale)
{
    const int64_t nb = ck_reduce_parts(n);
    const int64_t per = (n + nb - 1) / nb;
    k_pointwise<<<(unsigned)nb, CK_THREADS, 0, s>>>(kind, part, d, x, t, n, per, scale);
    return cudaGetLastError();
}

extern "C" cudaError_t ck_kl_div(cudaStream_t s, double *rows, float *d, const float *student,
                                 const float *teacher, int64_t N, int64_t C, double invT,
                                 double gscale)
{
    if (N <= 0)
        return cudaSuccess;
    k_kl_div<<<ck_blocks(N, 1), ck_row_threads(C), 0, s>>>(rows, d, student, teacher, N, C,
                                                            invT, gscale);
    return cudaGetLastError();
}

/* ---- gathers ---- */

/* dst row i = src row idx[i] in units of T; an index outside [0, M)
 * gives zeros (and CK_BAD_INDEX) */
template <class T>
__global__ void k_gather(unsigned *flag, T *dst, const T *src, int64_t M, const int32_t *idx,
                         int64_t n, int64_t units)
{
    CK_FOR_Y(i, n) {
        const int32_t k = idx[i];
        const int ok = k >= 0 && (int64_t)k < M;
        if (!ok && blockIdx.x == 0 && threadIdx.x == 0)
            atomicOr(flag, (unsigned)CK_BAD_INDEX);
        const T *s = src + (ok ? (int64_t)k : 0) * units;
        T *d = dst + i * units;
        CK_FOR_X(j, units)
            d[j] = ok ? s[j] : T();
    }
}

extern "C" cudaError_t ck_gather_rows(cudaStream_t s, unsigned *flag, void *dst,
                                      const void *src, int64_t M, const int32_t *idx,
                                      int64_t n, size_t row_bytes)
{
    if (n <= 0 || row_bytes == 0)
        return cudaSuccess;
    const uintptr_t al = (uintptr_t)dst | (uintptr_t)src | (uintptr_t)row_bytes;
    if ((al & 15) == 0) {
        int64_t u = (int64_t)(row_bytes / 16);
        k_gather<uint4><<<ck_grid_2d(n, u), CK_THREADS, 0, s>>>(
            flag, (uint4 *)dst, (const uint4 *)src, M, idx, n, u);
    } else if ((al & 3) == 0) {
        int64_t u = (int64_t)(row_bytes / 4);
        k_gather<uint32_t><<<ck_grid_2d(n, u), CK_THREADS, 0, s>>>(
            flag, (uint32_t *)dst, (const uint32_t *)src, M, idx, n, u);
    } else {
        int64_t u = (int64_t)row_bytes;
        k_gather<unsigned char><<<ck_grid_2d(n, u), CK_THREADS, 0, s>>>(
            flag, (unsigned char *)dst, (const unsigned char *)src, M, idx, n, u);
    }
    return cudaGetLastError();
}

/* ---- counter-based random numbers (rng.h) ---- */

/* Thread t draws Philox block (offset >> 2) + t, whose words j serve
 * elements i = 4 t + j - (offset & 3) in [0, n). */
#define RNG_ELEMENTS(t, j, i, n, offset) \
    const int64_t i = 4 * (int64_t)(t) + (j) - (int64_t)((offset) & 3); \
    if (i < 0 || i >= (n)) continue;

static inline int64_t rng_threads(int64_t n, uint64_t offset)
{
    return ((int64_t)(offset & 3) + n + 3) / 4;
}

__global__ void k_rng_uniform(float *x, int64_t n, float lo, float span, uint64_t seed,
                              uint64_t offset, int64_t nt)
{
    CK_FOR(t, nt) {
        uint32_t w[4];
        mltk_philox4x32(w, (offset >> 2) + (uint64_t)t, seed);
        for (int j = 0; j < 4; j++) {
            RNG_ELEMENTS(t, j, i, n, offset)
            float u = (float)(w[j] >> 8) * (1.0f / 16777216.0f);
            x[i] = __fadd_rn(lo, __fmul_rn(span, u));
        }
    }
}

/* Box-Muller on word pairs (0, 1) and (2, 3): cosine for the even
 * element, sine for the odd one, as mltk_rng_normal01 */
__global__ void k_rng_normal(float *x, int64_t n, float mean, float sd, uint64_t seed,
                             uint64_t offset, int64_t nt)
{
    CK_FOR(t, nt) {
        uint32_t w[4];
        mltk_philox4x32(w, (offset >> 2) + (uint64_t)t, seed);
        for (int j = 0; j < 4; j++) {
            RNG_ELEMENTS(t, j, i, n, offset)
            const int k = j & ~1;
            double u1 = ((double)(w[k] >> 8) + 1.0) * (1.0 / 16777216.0);
            double u2 = (double)(w[k + 1] >> 8) * (1.0 / 16777216.0);
            double r = sqrt(-2.0 * log(u1));
            double a = 6.283185307179586 * u2;
            float z = (float)((j & 1) ? r * sin(a) : r * cos(a));
            x[i] = __fadd_rn(mean, __fmul_rn(sd, z));
        }
    }
}

__global__ void k_dropout(float *y, float *mask, const float *x, int64_t n, float p,
                          float scale, uint64_t seed, uint64_t offset, int64_t nt)
{
    CK_FOR(t, nt) {
        uint32_t w[4];
        mltk_philox4x32(w, (offset >> 2) + (uint64_t)t, seed);
        for (int j = 0; j < 4; j++) {
            RNG_ELEMENTS(t, j, i, n, offset)
            float u = (float)(w[j] >> 8) * (1.0f / 16777216.0f);
            float m = u >= p ? scale : 0.0f;
            mask[i] = m;
            y[i] = x[i] * m;
        }
    }
}

extern "C" cudaError_t ck_rng_uniform(cudaStream_t s, float *x, int64_t n, float lo, float hi,
                                      uint64_t seed, uint64_t offset)
{
    if (n <= 0)
        return cudaSuccess;
    const int64_t nt = rng_threads(n, offset);
    k_rng_uniform<<<ck_blocks(nt, CK_THREADS), CK_THREADS, 0, s>>>(x, n, lo, hi - lo, seed,
                                                                    offset, nt);
    return cudaGetLastError();
}

extern "C" cudaError_t ck_rng_normal(cudaStream_t s, float *x, int64_t n, float mean,
                                     float std, uint64_t seed, uint64_t offset)
{
    if (n <= 0)
        return cudaSuccess;
    const int64_t nt = rng_threads(n, offset);
    k_rng_normal<<<ck_blocks(nt, CK_THREADS), CK_THREADS, 0, s>>>(x, n, mean, std, seed,
                                                                   offset, nt);
    return cudaGetLastError();
}

extern "C" cudaError_t ck_dropout(cudaStream_t s, float *y, float *mask, const float *x,
                                  int64_t n, float p, float scale, uint64_t seed,
                                  uint64_t offset)
{
    if (n <= 0)
        return cudaSuccess;
    const int64_t nt = rng_threads(n, offset);
    k_dropout<<<ck_blocks(nt, CK_THREADS), CK_THREADS, 0, s>>>(y, mask, x, n, p, scale, seed,
                                                                offset, nt);
    return cudaGetLastError();
}

/* ---- optimizer updates ---- */

/* torch.optim.SGD as cpu.c's k_sgd / k_sgd_scaled: where sc[i] == 0 the
 * parameter keeps its bits */
__global__ void k_sgd(float *p, const float *g, float *buf, const float *sc, int64_t n,
                      ck_sgd_args a)
{
    CK_FOR(i, n) {
        const float p0 = p[i];
        float d = a.wd != 0.0f ? g[i] + a.wd * p0 : g[i];
        if (a.momentum != 0.0f) {
            float b = a.first ? d : a.momentum * buf[i] + a.damp1 * d;
            buf[i] = b;
            d = a.nesterov ? d + a.momentum * b : b;
        }
        if (sc) {
            const float s = sc[i];
            float np = p0 - (a.lr * s) * d;
            p[i] = s != 0.0f ? np : p0;
        } else {
            p[i] = p0 - a.lr * d;
        }
    }
}

/* torch.optim.Adam / AdamW as cpu.c's k_adam / k_adam_scaled */
__global__ void k_adam(float *p, const float *g, float *m, float *v, const float *sc,
                       int64_t n, ck_adam_args a)
{
    const float nstep = -a.step;
    CK_FOR(i, n) {
        const float p0 = p[i];
        const float s = sc ? sc[i] : 1.0f;
        float pi = sc ? p0 * (s == 1.0f ? a.pscale : 1.0f - a.lrwd * s) : p0 * a.pscale;
        float gi = a.l2 ? g[i] + a.wd * pi : g[i];
        float mi = m[i] * a.b1 + a.omb1 * gi;
        float vi = v[i] * a.b2 + a.omb2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / a.bc2s + a.eps;
        if (sc) {
            float np = pi + (nstep * s) * (mi / denom);
            p[i] = s != 0.0f ? np : p0;
        } else {
            p[i] = pi + nstep * (mi / denom);
        }
    }
}

/* torch.optim.RMSprop as cpu_optim.c's rms_loop */
__global__ void k_rmsprop(float *p, const float *g, float *sq, float *mom, float *gavg,
                          const float *sc, int64_t n, ck_rms_args a)
{
    CK_FOR(i, n) {
        const float p0 = p[i];
        float gi = a.wd != 0.0f ? g[i] + a.wd * p0 : g[i];
        float s2 = a.alpha * sq[i] + a.oma * gi * gi;
        sq[i] = s2;
        float avg;
        if (gavg) {
            float ga = a.alpha * gavg[i] + a.oma * gi;
            gavg[i] = ga;
            float var = s2 - ga * ga;
            avg = sqrtf(var > 0.0f ? var : 0.0f) + a.eps;
        } else {
            avg = sqrtf(s2) + a.eps;
        }
        float d = gi / avg;
        if (mom) {
            d = a.mu * mom[i] + d;
            mom[i] = d;
        }
        if (sc) {
            float np = p0 - (a.lr * sc[i]) * d;
            p[i] = sc[i] != 0.0f ? np : p0;
        } else {
            p[i] = p0 - a.lr * d;
        }
    }
}

extern "C" cudaError_t ck_sgd(cudaStream_t s, float *p, const float *g, float *mom,
                              const float *sc, int64_t n, ck_sgd_args a)
{
    if (n <= 0)
        return cudaSuccess;
    k_sgd<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, s>>>(p, g, mom, sc, n, a);
    return cudaGetLastError();
}

extern "C" cudaError_t ck_adam(cudaStream_t s, float *p, const float *g, float *m, float *v,
                               const float *sc, int64_t n, ck_adam_args a)
{
    if (n <= 0)
        return cudaSuccess;
    k_adam<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, s>>>(p, g, m, v, sc, n, a);
    return cudaGetLastError();
}

extern "C" cudaError_t ck_rmsprop(cudaStream_t s, float *p, const float *g, float *sq,
                                  float *mom, float *gavg, const float *sc, int64_t n,
                                  ck_rms_args a)
{
    if (n <= 0)
        return cudaSuccess;
    k_rmsprop<<<ck_blocks(n, CK_THREADS), CK_THREADS, 0, s>>>(p, g, sq, mom, gavg, sc, n, a);
    return cudaGetLastError();
}
