/* cuda_nn_kernels.cu - the cuda backend's kernels for the modelling ops:
 * pooling, batch and layer normalisation, row softmax, strided
 * accumulation, embedding lookups and their gradient, LAMB, and the
 * augmenting image gather.
 *
 * What this is: the cpu backend's computations (cpu_conv.c, cpu_norm.c,
 * cpu_misc.c, cpu_optim.c) arranged for the GPU without changing what is
 * computed.  Pooling routes gradients by gathering: each input element
 * sums, over the windows that cover it in the cpu's (p, q) order, the
 * gradients whose window picks it, so max-pool ties and overlapping
 * windows give the cpu's bits without atomics.  The embedding gradient is
 * gathered the same way (each table row adds its ids' rows in id order).
 * Statistics are summed in double over fixed chunks and combined in chunk
 * order; nothing here uses floating-point atomics, so every result is
 * bit-identical from run to run.  Embedding ids and gather indices are
 * guarded here (cuda_kernels.h's CK_BAD_*): a bad one reads nothing and
 * writes zeros.  Everything is f32 except the strided accumulation and
 * the per-channel sums behind the conv bias gradient, which also take bf16
 * and f16.
 *
 * What this is not: convolution (cuDNN, cuda_conv.c) or the elementwise
 * and loss kernels (cuda_kernels.cu).
 */
#include <stdint.h>
#include <math.h>
#include <cuda_runtime.h>

#include <mltk/rng.h>

#include "cuda_kernels.h"
#include "cuda_device.cuh"

/* ---- pooling ---- */

struct pool_geom {
    int64_t H, W, P, Q, R, S, sh, sw, ph, pw;
};

static pool_geom pool_geom_of(const mltk_pool2d_desc *d)
{
    pool_geom g = { d->H, d->W, d->P, d->Q, d->R, d->S, d->stride_h, d->stride_w,
                    d->pad_h, d->pad_w };
    return g;
}

/* cpu_conv.c's window_argmax: the first maximum of the window at (hs, ws)
 * clipped to the plane, a NaN replacing it (the last NaN wins); -1 when
 * the window holds no element */
__device__ int64_t window_argmax(const pool_geom &g, const float *xp, int64_t hs, int64_t ws)
{
    const int64_t r0 = hs < 0 ? 0 : hs, r1 = hs + g.R < g.H ? hs + g.R : g.H;
    const int64_t s0 = ws < 0 ? 0 : ws, s1 = ws + g.S < g.W ? ws + g.S : g.W;
    if (r0 >= r1 || s0 >= s1)
        return -1;
    int64_t best = r0 * g.W + s0;
    float m = -INFINITY;
    for (int64_t h = r0; h < r1; h++)
        for (int64_t w = s0; w < s1; w++) {
            float v = xp[h * g.W + w];
            if (v > m || isnan(v)) {
                m = v;
                best = h * g.W + w;
            }
        }
    return best;
}

/* PyTorch's count_include_pad divisor, as cpu_conv.c's avg_divisor */
__device__ __forceinline__ float avg_divisor(const pool_geom &g, int64_t hs, int64_t ws)
{
    int64_t he = hs + g.R, we = ws + g.S;
    if (he > g.H + g.ph)
        he = g.H + g.ph;
    if (we > g.W + g.pw)
        we = g.W + g.pw;
    return (float)((he - hs) * (we - ws));
}

/* one thread per output element */
__global__ void k_pool_fwd(int kind, float *y, const float *x, pool_geom g, int64_t total)
{
    CK_FOR(o, total) {
        const int64_t q = o % g.Q, t = o / g.Q;
        const int64_t p = t % g.P, plane = t / g.P;
        const float *xp = x + plane * g.H * g.W;
        const int64_t hs = p * g.sh - g.ph, ws = q * g.sw - g.pw;
        if (kind == MLTK_POOL_MAX) {
            int64_t at = window_argmax(g, xp, hs, ws);
            y[o] = at >= 0 ? xp[at] : -INFINITY;
        } else {
            const int64_t r0 = hs < 0 ? 0 : hs, r1 = hs + g.R < g.H ? hs + g.R : g.H;
            const int64_t s0 = ws < 0 ? 0 : ws, s1 = ws + g.S < g.W ? ws + g.S : g.W;
            float sum = 0.0f;
            for (int64_t h = r0; h < r1; h++)
                for (int64_t w = s0; w < s1; w++)
                    sum += xp[h * g.W + w];
            y[o] = sum / avg_divisor(g, hs, ws);
        }
    }
}

/* the output positions o < n whose window [o stride - pad, + k) covers
 * input position i: [*lo, *hi] (empty when *lo > *hi) */
__device__ __forceinline__ void covering(int64_t i, int64_t pad, int64_t k, int64_t stride,
                                         int64_t n, int64_t *lo, int64_t *hi)
{
    const int64_t t = i + pad;   /* >= 0 */
    const int64_t num = t - k + 1;
    *lo = num <= 0 ? 0 : (num + stride - 1) / stride;
    int64_t h = t / stride;
    *hi = h < n - 1 ? h : n - 1;
}

/* one thread per input element: the gradients of the windows covering it,
 * in the cpu's (p, q) order, where the window routes to it */
__global__ void k_pool_bwd(int kind, float *dx, const float *dy, const float *x, pool_geom g,
                           int64_t total)
{
    CK_FOR(e, total) {
        const int64_t w = e % g.W, t = e / g.W;
        const int64_t h = t % g.H, plane = t / g.H;
        const float *xp = kind == MLTK_POOL_MAX ? x + plane * g.H * g.W : NULL;
        const float *gp = dy + plane * g.P * g.Q;
        const int64_t self = h * g.W + w;
        int64_t p0, p1, q0, q1;
        covering(h, g.ph, g.R, g.sh, g.P, &p0, &p1);
        covering(w, g.pw, g.S, g.sw, g.Q, &q0, &q1);
        float acc = 0.0f;
        for (int64_t p = p0; p <= p1; p++) {
            const int64_t hs = p * g.sh - g.ph;
            for (int64_t q = q0; q <= q1; q++) {
                const int64_t ws = q * g.sw - g.pw;
                const float gv = gp[p * g.Q + q];
                if (kind == MLTK_POOL_MAX) {
                    if (window_argmax(g, xp, hs, ws) == self)
                        acc += gv;
                } else {
                    acc += gv / avg_divisor(g, hs, ws);
                }
            }
        }
        dx[e] = acc;
    }
}

extern "C" cudaError_t ck_pool_forward(cudaStream_t s, mltk_pool kind, float *y,
                                       const float *x, const mltk_pool2d_desc *d)
{
    const int64_t total = d->N * d->C * d->P * d->Q;
    if (total <= 0)
        return cudaSuccess;
    k_pool_fwd<<<ck_blocks(total, CK_THREADS), CK_THREADS, 0, s>>>((int)kind, y, x,
                                                                    pool_geom_of(d), total);
    return cudaGetLastError();
}

extern "C" cudaError_t ck_pool_backward(cudaStream_t s, mltk_pool kind, float *dx,
                                        const float *dy, const float *x,
                                        const mltk_pool2d_desc *d)
{
    const int64_t total = d->N * d->C * d->H * d->W;
    if (total <= 0)
        return cudaSuccess;
    k_pool_bwd<<<ck_blocks(total, CK_THREADS), CK_THREADS, 0, s>>>((int)kind, dx, dy, x,
                                                                    pool_geom_of(d), total);
    return cudaGetLastError();
}

/* ---- per-channel sums over (N, C, L) ---- */

/* the two sums of one value pair, by mode (see cuda_kernels.h) */
__device__ __forceinline__ void chan_accum(int mode, double v, double b, double ref,
                                           double *s1, double *s2)
{
    if (mode == CK_CHAN_SHIFTED) {
        double d = v - ref;
        *s1 += d;
        *s2 += d * d;
    } else if (mode == CK_CHAN_GRAD) {
        *s1 += v;
        *s2 += v * (b - ref);
    } else {
        *s1 += v;
    }
}

/* L > 1: block (k, c) sums images [k per, (k+1) per) of channel c; `a`
 * in f32, or bf16 / f16 for the conv bias gradient (CK_CHAN_SUM) */
template <class T>
__global__ void k_chan_sums_planes(int mode, double *part, const T *a, const float *b,
                                   const float *mean, int64_t N, int64_t C, int64_t L,
                                   int64_t per, int64_t chunks)
{
    CK_FOR_Y(c, C) {
        const double ref = mode == CK_CHAN_SHIFTED ? (double)ck_ld(&a[c * L])
                         : mode == CK_CHAN_GRAD ? (double)mean[c] : 0.0;
        for (int64_t k = blockIdx.x; k < chunks; k += gridDim.x) {
            const int64_t n0 = k * per, n1 = n0 + per < N ? n0 + per : N;
            double s1 = 0.0, s2 = 0.0;
            for (int64_t n = n0; n < n1; n++) {
                const int64_t o = (n * C + c) * L;
                for (int64_t l = threadIdx.x; l < L; l += blockDim.x)
                    chan_accum(mode, ck_ld(&a[o + l]), b ? (double)b[o + l] : 0.0, ref, &s1,
                               &s2);
            }
            s1 = ck_block_sum(s1);
            s2 = ck_block_sum(s2);
            if (threadIdx.x == 0) {
                part[(k * C + c) * 2] = s1;
                part[(k * C + c) * 2 + 1] = s2;
            }
        }
    }
}

/* L == 1, x (N, C): thread per channel, rows in chunks of CK_ROW_CHUNK */
template <class T>
__global__ void k_chan_sums_cols(int mode, double *part, const T *a, const float *b,
                                 const float *mean, int64_t N, int64_t C, int64_t chunks)
{
    CK_FOR_Y(k, chunks) {
        const int64_t r0 = k * CK_ROW_CHUNK;
        const int64_t r1 = r0 + CK_ROW_CHUNK < N ? r0 + CK_ROW_CHUNK : N;
        CK_FOR_X(c, C) {
            const double ref = mode == CK_CHAN_SHIFTED ? (double)ck_ld(&a[c])
                             : mode == CK_CHAN_GRAD ? (double)mean[c] : 0.0;
            double s1 = 0.0, s2 = 0.0;
            for (int64_t r = r0; r < r1; r++)
                chan_accum(mode, ck_ld(&a[r * C + c]), b ? (double)b[r * C + c] : 0.0, ref,
                           &s1, &s2);
            part[(k * C + c) * 2] = s1;
            part[(k * C + c) * 2 + 1] = s2;
        }
    }
}

template <class T>
static cudaError_t chan_sums(cudaStream_t s, int mode, double *part, const T *a,
                             const float *b, const float *mean, int64_t N, int64_t C,
                             int64_t L)
{
    if (N <= 0 || C <= 0 || L <= 0)
        return cudaSuccess;
    const int64_t chunks = ck_chan_chunks(N, L);
    if (L == 1) {
        k_chan_sums_cols<T><<<ck_grid_2d(chunks, C), CK_THREADS, 0, s>>>(mode, part, a, b,
                                                                          mean, N, C, chunks);
    } else {
        const int threads = L >= 256 ? 256 : L >= 128 ? 128 : L >= 64 ? 64 : 32;
        const int64_t bx = chunks < CK_MAX_BLOCKS_X ? chunks : CK_MAX_BLOCKS_X;
        dim3 grid((unsigned)bx, ck_blocks_y(C), 1);
        k_chan_sums_planes<T><<<grid, threads, 0, s>>>(mode, part, a, b, mean, N, C, L,
                                                       ck_chan_images(N, L), chunks);
    }
    return cudaGetLastError();
}

extern "C" cudaError_t ck_chan_sums(cudaStream_t s, int mode, double *part, const float *a,
                                    const float *b, const float *mean, int64_t N, int64_t C,
                                    int64_t L)
{
    return chan_sums<float>(s, mode, part, a, b, mean, N, C, L);
}

extern "C" cudaError_t ck_chan_sums_dt(cudaStream_t s, mltk_dtype dt, double *part,
                                       const void *a, int64_t N, int64_t C, int64_t L)
{
    cudaError_t e = cudaSuccess;
    CK_DT_DISPATCH(dt, (e = chan_sums<T_>(s, CK_CHAN_SUM, part, (const T_ *)a, NULL, NULL, N,
                                          C, L)));
    return e;
}

/* the chunks' sums of channel c, in chunk order */
__device__ __forceinline__ void chan_totals(const double *part, int64_t chunks, int64_t C,
                                            int64_t c, double *s1, double *s2)
{
    double a = 0.0, b = 0.0;
    for (int64_t k = 0; k < chunks; k++) {
        a += part[(k * C + c) * 2];
        b += part[(k * C + c) * 2 + 1];
    }
    *s1 = a;
    *s2 = b;
}

template <class T>
__global__ void k_chan_total(T *out, const double *part, int64_t chunks, int64_t C)
{
    CK_FOR(c, C) {
        double s1, s2;
        chan_totals(part, chunks, C, c, &s1, &s2);
        ck_st(&out[c], (float)s1);
    }
}

extern "C" cudaError_t ck_chan_total(cudaStream_t s, mltk_dtype dt, void *out,
                                     const double *part, int64_t chunks, int64_t C)
{
    if (C <= 0)
        return cudaSuccess;
    const unsigned g = ck_blocks(C, CK_THREADS);
    CK_DT_DISPATCH(dt, (k_chan_total<T_><<<g, CK_THREADS, 0, s>>>((T_ *)out, part, chunks, C)));
    return cudaGetLastError();
}

/* ---- batch norm ---- */

/* cpu_norm.c's bn_finish_channel, one thread per channel */
__global__ void k_bn_finish(float *coef, float *save_mean, float *save_invstd,
                            float *run_mean, float *run_var, const double *part,
                            int64_t chunks, const float *x, const float *gamma,
                            const float *beta, int64_t N, int64_t C, int64_t L,
                            double momentum, double eps)
{
    CK_FOR(c, C) {
        double s1, s2;
        chan_totals(part, chunks, C, c, &s1, &s2);
        const double M = (double)(N * L);
        const double dm = s1 / M;
        double var = s2 / M - dm * dm;
        if (var < 0.0)
            var = 0.0;
        const double mean = (double)x[c * L] + dm;
        const double invstd = 1.0 / sqrt(var + eps);
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)invstd;
        if (run_mean && run_var) {
            run_mean[c] = (float)(momentum * mean + (1.0 - momentum) * (double)run_mean[c]);
            run_var[c] = (float)(momentum * (var * M / (M - 1.0))
                                 + (1.0 - momentum) * (double)run_var[c]);
        }
        const double g = gamma ? (double)gamma[c] : 1.0;
        coef[c] = (float)mean;
        coef[C + c] = (float)(g * invstd);
        coef[2 * C + c] = beta ? beta[c] : 0.0f;
    }
}

__global__ void k_bn_eval_coef(float *coef, const float *gamma, const float *beta,
                               const float *run_mean, const float *run_var, int64_t C,
                               double eps)
{
    CK_FOR(c, C) {
        const double g = gamma ? (double)gamma[c] : 1.0;
        coef[c] = run_mean[c];
        coef[C + c] = (float)(g / sqrt((double)run_var[c] + eps));
        coef[2 * C + c] = beta ? beta[c] : 0.0f;
    }
}

/* cpu_norm.c's bn_grad_coefs */
__global__ void k_bn_grad_finish(float *coef, float *dgamma, float *dbeta, const double *part,
                                 int64_t chunks, const float *gamma, const float *save_mean,
                                 const float *save_invstd, int64_t N, int64_t C, int64_t L)
{
    CK_FOR(c, C) {
        double s1, s2;
        chan_totals(part, chunks, C, c, &s1, &s2);
        const double M = (double)(N * L);
        const double is = save_invstd[c];
        const double dg = s2 * is;
        if (dbeta)
            dbeta[c] = (float)s1;
        if (dgamma)
            dgamma[c] = (float)dg;
        const double g1 = (gamma ? (double)gamma[c] : 1.0) * is;
        coef[c] = save_mean[c];
        coef[C + c] = (float)g1;
        coef[2 * C + c] = (float)(g1 * s1 / M);
        coef[3 * C + c] = (float)(g1 * is * dg / M);
    }
}

struct chan_affine_f {
    float *y;
    const float *x, *coef;
    int64_t C;
    __device__ void operator()(int64_t i, int64_t c) const
    {
        y[i] = (x[i] - coef[c]) * coef[C + c] + coef[2 * C + c];
    }
};

struct bn_dx_f {
    float *dx;
    const float *dy, *x, *coef;
    int64_t C;
    __device__ void operator()(int64_t i, int64_t c) const
    {
        dx[i] = coef[C + c] * dy[i] - coef[3 * C + c] * (x[i] - coef[c]) - coef[2 * C + c];
    }
};

extern "C" cudaError_t ck_bn_finish(cudaStream_t s, float *coef, float *save_mean,
                                    float *save_invstd, float *run_mean, float *run_var,
                                    const double *part, int64_t chunks, const float *x,
                                    const float *gamma, const float *beta, int64_t N,
                                    int64_t C, int64_t L, double momentum, double eps)
{
    k_bn_finish<<<ck_blocks(C, CK_THREADS), CK_THREADS, 0, s>>>(
        coef, save_mean, save_invstd, run_mean, run_var, part, chunks, x, gamma, beta, N, C,
        L, momentum, eps);
    return cudaGetLastError();
}

extern "C" cudaError_t ck_bn_eval_coef(cudaStream_t s, float *coef, const float *gamma,
                                       const float *beta, const float *run_mean,
                                       const float *run_var, int64_t C, double eps)
{
    k_bn_eval_coef<<<ck_blocks(C, CK_THREADS), CK_THREADS, 0, s>>>(coef, gamma, beta,
                                                                    run_mean, run_var, C, eps);
    return cudaGetLastError();
}

extern "C" cudaError_t ck_chan_affine(cudaStream_t s, float *y, const float *x,
                                      const float *coef, int64_t N, int64_t C, int64_t L)
{
    return ck_launch_chan(s, chan_affine_f{ y, x, coef, C }, N, C, L);
}

extern "C" cudaError_t ck_bn_grad_finish(cudaStream_t s, float *coef, float *dgamma,
                                         float *dbeta, const double *part, int64_t chunks,
                                         const float *gamma, const float *save_mean,
                                         const float *save_invstd, int64_t N, int64_t C,
                                         int64_t L)
{
    k_bn_grad_finish<<<ck_blocks(C, CK_THREADS), CK_THREADS, 0, s>>>(
        coef, dgamma, dbeta, part, chunks, gamma, save_mean, save_invstd, N, C, L);
    return cudaGetLastError();
}

extern "C" cudaError_t ck_bn_dx(cudaStream_t s, float *dx, const float *dy, const float *x,
                                const float *coef, int64_t N, int64_t C, int64_t L)
{
    return ck_launch_chan(s, bn_dx_f{ dx, dy, x, coef, C }, N, C, L);
}

/* ---- layer norm ---- */

/* one block per row: shifted sums in double (shift: the row's first
 * value), then y = (x - m) rs g + b as cpu_norm.c's ln_fwd_rows */
__global__ void k_ln_fwd(float *y, const float *x, const float *gamma, const float *beta,
                         float *mean, float *rstd, int64_t rows, int64_t n, double eps)
{
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        const double k = xr[0];
        double s1 = 0.0, s2 = 0.0;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
            double d = (double)xr[i] - k;
            s1 += d;
            s2 += d * d;
        }
        s1 = ck_block_sum(s1);
        s2 = ck_block_sum(s2);
        const double dm = s1 / (double)n;
        double var = s2 / (double)n - dm * dm;
        if (var < 0.0)
            var = 0.0;
        const float m = (float)(k + dm);
        const float rs = (float)(1.0 / sqrt(var + eps));
        if (threadIdx.x == 0) {
            mean[r] = m;
            rstd[r] = rs;
        }
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
            float v = (xr[i] - m) * rs;
            if (gamma)
                v = v * gamma[i];
            yr[i] = beta ? v + beta[i] : v;
        }
    }
}

/* dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy gamma, per row */
__global__ void k_ln_bwd_dx(float *dx, const float *dy, const float *x, const float *gamma,
                            const float *mean, const float *rstd, int64_t rows, int64_t n)
{
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * n, *gr = dy + r * n;
        float *dr = dx + r * n;
        const float m = mean[r], rs = rstd[r];
        double s1 = 0.0, s2 = 0.0;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
            double g = gamma ? (double)gr[i] * gamma[i] : gr[i];
            s1 += g;
            s2 += g * (((double)xr[i] - m) * rs);
        }
        s1 = ck_block_sum(s1);
        s2 = ck_block_sum(s2);
        const float mg = (float)(s1 / (double)n), mgx = (float)(s2 / (double)n);
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
            float g = gamma ? gr[i] * gamma[i] : gr[i];
            dr[i] = rs * (g - mg - (xr[i] - m) * rs * mgx);
        }
    }
}

/* column sums over the rows of chunk k: sb = sum dy, sg = sum dy xhat */
__global__ void k_ln_bwd_params_part(const float *dy, const float *x, const float *mean,
                                     const float *rstd, int64_t rows, int64_t n,
                                     int64_t chunks, double *part)
{
    CK_FOR_Y(k, chunks) {
        const int64_t r0 = k * CK_ROW_CHUNK;
        const int64_t r1 = r0 + CK_ROW_CHUNK < rows ? r0 + CK_ROW_CHUNK : rows;
        CK_FOR_X(j, n) {
            double sg = 0.0, sb = 0.0;
            for (int64_t r = r0; r < r1; r++) {
                double g = dy[r * n + j];
                sb += g;
                sg += g * (((double)x[r * n + j] - (double)mean[r]) * (double)rstd[r]);
            }
            part[(k * n + j) * 2] = sg;
            part[(k * n + j) * 2 + 1] = sb;
        }
    }
}

__global__ void k_ln_bwd_params_finish(float *dgamma, float *dbeta, const double *part,
                                       int64_t chunks, int64_t n)
{
    CK_FOR(j, n) {
        double sg, sb;
        chan_totals(part, chunks, n, j, &sg, &sb);
        if (dgamma)
            dgamma[j] = (float)sg;
        if (dbeta)
            dbeta[j] = (float)sb;
    }
}

extern "C" cudaError_t ck_ln_forward(cudaStream_t s, float *y, const float *x,
                                     const float *gamma, const float *beta, float *mean,
                                     float *rstd, int64_t rows, int64_t cols, double eps)
{
    if (rows <= 0)
        return cudaSuccess;
    k_ln_fwd<<<ck_blocks(rows, 1), ck_row_threads(cols), 0, s>>>(y, x, gamma, beta, mean,
                                                                  rstd, rows, cols, eps);
    return cudaGetLastError();
}

extern "C" cudaError_t ck_ln_backward_dx(cudaStream_t s, float *dx, const float *dy,
                                         const float *x, const float *gamma,
                                         const float *mean, const float *rstd, int64_t rows,
                                         int64_t cols)
{
    if (rows <= 0)
        return cudaSuccess;
    k_ln_bwd_dx<<<ck_blocks(rows, 1), ck_row_threads(cols), 0, s>>>(dx, dy, x, gamma, mean,
                                                                     rstd, rows, cols);
    return cudaGetLastError();
}

extern "C" cudaError_t ck_ln_backward_params(cudaStream_t s, float *dgamma, float *dbeta,
                                             const float *dy, const float *x,
                                             const float *mean, const float *rstd,
                                             int64_t rows, int64_t cols, double *part)
{
    if (cols <= 0)
        return cudaSuccess;
    const int64_t chunks = ck_row_chunks(rows);
    if (rows > 0) {
        k_ln_bwd_params_part<<<ck_grid_2d(chunks, cols), CK_THREADS, 0, s>>>(
            dy, x, mean, rstd, rows, cols, chunks, part);
    } else {
        cudaError_t e = cudaMemsetAsync(part, 0, (size_t)cols * 2 * sizeof(double), s);
        if (e != cudaSuccess)
            return e;
    }
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return e;
    k_ln_bwd_params_finish<<<ck_blocks(cols, CK_THREADS), CK_THREADS, 0, s>>>(
        dgamma, dbeta, part, chunks, cols);
    return cudaGetLastError();
}

/* ---- softmax ---- */

/* y = e^(x - max) / sum per row; y == x allowed */
__global__ void k_softmax_fwd(float *y, const float *x, int64_t rows, int64_t n)
{
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        float m = -INFINITY;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
            m = fmaxf(m, xr[i]);
        m = ck_block_max(m);
        double acc = 0.0;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
            float e = expf(xr[i] - m);
            yr[i] = e;
            acc += e;
        }
        const float inv = 1.0f / (float)ck_block_sum(acc);
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
            yr[i] *= inv;
    }
}

/* dx = y (dy - sum(dy y)) per row; dx == dy allowed */
__global__ void k_softmax_bwd(float *dx, const float *dy, const float *y, int64_t rows,
                              int64_t n)
{
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *yr = y + r * n, *gr = dy + r * n;
        float *dr = dx + r * n;
        double acc = 0.0;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
            acc += (double)gr[i] * yr[i];
        const float dot = (float)ck_block_sum(acc);
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
            dr[i] = yr[i] * (gr[i] - dot);
    }
}

extern "C" cudaError_t ck_softmax_forward(cudaStream_t s, float *y, const float *x,
                                          int64_t rows, int64_t cols)
{
    if (rows <= 0 || cols <= 0)
        return cudaSuccess;
    k_softmax_fwd<<<ck_blocks(rows, 1), ck_row_threads(cols), 0, s>>>(y, x, rows, cols);
    return cudaGetLastError();
}

extern "C" cudaError_t ck_softmax_backward(cudaStream_t s, float *dx, const float *dy,
                                           const float *y, int64_t rows, int64_t cols)
{
    if (rows <= 0 || cols <= 0)
        return cudaSuccess;
    k_softmax_bwd<<<ck_blocks(rows, 1), ck_row_threads(cols), 0, s>>>(dx, dy, y, rows, cols);
    return cudaGetLastError();
}

/* ---- strided accumulation, embedding ---- */

template <class T>
__global__ void k_add_2d(T *dst, int64_t dst_ld, const T *src, int64_t src_ld, int64_t rows,
                         int64_t cols)
{
    CK_FOR_Y(r, rows) {
        T *d = dst + r * dst_ld;
        const T *s = src + r * src_ld;
        CK_FOR_X(j, cols)
            ck_st(&d[j], ck_ld(&d[j]) + ck_ld(&s[j]));
    }
}

/* an id is an integer value in [0, vocab) (NaN is not) */
__device__ __forceinline__ int id_ok(float v, int64_t vocab)
{
    return v >= 0.0f && (double)v < (double)vocab && v == floorf(v);
}

/* a bad id gives a row of zeros and raises CK_BAD_ID */
__global__ void k_emb_fwd(unsigned *flag, float *y, const float *table, const float *ids,
                          int64_t n, int64_t dim, int64_t vocab)
{
    CK_FOR_Y(i, n) {
        const float v = ids[i];
        const int ok = id_ok(v, vocab);
        if (!ok && blockIdx.x == 0 && threadIdx.x == 0)
            atomicOr(flag, (unsigned)CK_BAD_ID);
        const float *src = table + (ok ? (int64_t)v : 0) * dim;
        float *d = y + i * dim;
        CK_FOR_X(j, dim)
            d[j] = ok ? src[j] : 0.0f;
    }
}

/* Block b owns table rows [b per, (b+1) per): it reads every id in order
 * (a tile at a time through shared memory) and adds the dy rows of its
 * own ids, thread j on column j, so each element is summed in id order. */
#define EMB_TILE 256
__global__ void k_emb_bwd(unsigned *flag, float *dt, const float *dy, const float *ids,
                          int64_t n, int64_t dim, int64_t vocab, int64_t per)
{
    __shared__ int64_t sid[EMB_TILE];
    for (int64_t b = blockIdx.x; b * per < vocab; b += gridDim.x) {
        const int64_t v0 = b * per, v1 = v0 + per < vocab ? v0 + per : vocab;
        for (int64_t t0 = 0; t0 < n; t0 += EMB_TILE) {
            const int cnt = n - t0 < EMB_TILE ? (int)(n - t0) : EMB_TILE;
            __syncthreads();
            for (int k = threadIdx.x; k < cnt; k += blockDim.x) {
                /* a bad id matches no block's rows; block 0 raises the flag */
                const float v = ids[t0 + k];
                const int ok = id_ok(v, vocab);
                if (!ok && b == 0)
                    atomicOr(flag, (unsigned)CK_BAD_ID);
                sid[k] = ok ? (int64_t)v : -1;
            }
            __syncthreads();
            for (int k = 0; k < cnt; k++) {
                const int64_t id = sid[k];
                if (id < v0 || id >= v1)
                    continue;
                float *row = dt + id * dim;
                const float *g = dy + (t0 + k) * dim;
                for (int64_t j = threadIdx.x; j < dim; j += blockDim.x)
                    row[j] += g[j];
            }
        }
    }
}

extern "C" cudaError_t ck_add_2d(cudaStream_t s, mltk_dtype dt, void *dst, int64_t dst_ld,
                                 const void *src, int64_t src_ld, int64_t rows, int64_t cols)
{
    if (rows <= 0 || cols <= 0)
        return cudaSuccess;
    const dim3 g = ck_grid_2d(rows, cols);
    CK_DT_DISPATCH(dt, (k_add_2d<T_><<<g, CK_THREADS, 0, s>>>((T_ *)dst, dst_ld,
                                                               (const T_ *)src, src_ld, rows,
                                                               cols)));
    return cudaGetLastError();
}

extern "C" cudaError_t ck_embedding_forward(cudaStream_t s, unsigned *flag, float *y,
                                            const float *table, const float *ids, int64_t n,
                                            int64_t dim, int64_t vocab)
{
    if (n <= 0 || dim <= 0)
        return cudaSuccess;
    k_emb_fwd<<<ck_grid_2d(n, dim), CK_THREADS, 0, s>>>(flag, y, table, ids, n, dim, vocab);
    return cudaGetLastError();
}

extern "C" cudaError_t ck_embedding_backward(cudaStream_t s, unsigned *flag, float *dtable,
                                             const float *dy, const float *ids, int64_t n,
                                             int64_t dim, int64_t vocab)
{
    if (n <= 0 || dim <= 0 || vocab <= 0)
        return cudaSuccess;
    /* a few hundred blocks: each scans all n ids */
    const int64_t blocks = vocab < 512 ? vocab : 512;
    const int64_t per = (vocab + blocks - 1) / blocks;
    const int threads = dim <= 32 ? 32 : dim <= 64 ? 64 : dim <= 128 ? 128 : 256;
    k_emb_bwd<<<(unsigned)blocks, threads, 0, s>>>(flag, dtable, dy, ids, n, dim, vocab, per);
    return cudaGetLastError();
}

/* ---- LAMB ---- */

__device__ __forceinline__ float lamb_r(const ck_lamb_args &a, float m, float v, float p)
{
    return (m * a.ibc1) / (sqrtf(v) * a.ibc2s + a.eps) + a.wd * p;
}

/* one block per piece: moments, and the piece's sums of p^2 and r^2 */
__global__ void k_lamb_moments(float *p, const float *g, float *m, float *v,
                               const ck_piece *pieces, int64_t np, ck_lamb_args a,
                               double *part)
{
    for (int64_t k = blockIdx.x; k < np; k += gridDim.x) {
        const ck_piece pc = pieces[k];
        double sp = 0.0, sr = 0.0;
        for (int64_t i = pc.lo + threadIdx.x; i < pc.hi; i += blockDim.x) {
            const float gi = g[i], pi = p[i];
            const float mi = a.b1 * m[i] + a.omb1 * gi;
            const float vi = a.b2 * v[i] + a.omb2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            const float r = lamb_r(a, mi, vi, pi);
            sp += (double)pi * (double)pi;
            sr += (double)r * (double)r;
        }
        sp = ck_block_sum(sp);
        sr = ck_block_sum(sr);
        if (threadIdx.x == 0) {
            part[2 * k] = sp;
            part[2 * k + 1] = sr;
        }
    }
}

__global__ void k_lamb_norms(float *norms, const double *part, const int64_t *first,
                             int64_t n_seg)
{
    CK_FOR(s, n_seg) {
        double pp = 0.0, rr = 0.0;
        for (int64_t k = first[s]; k < first[s + 1]; k++) {
            pp += part[2 * k];
            rr += part[2 * k + 1];
        }
        norms[2 * s] = (float)sqrt(pp);
        norms[2 * s + 1] = (float)sqrt(rr);
    }
}

/* p -= lr trust r, trust = ||p|| / ||r|| (1 when either is 0) */
__global__ void k_lamb_apply(float *p, const float *m, const float *v, const float *sc,
                             const ck_piece *pieces, int64_t np, const float *norms,
                             ck_lamb_args a)
{
    for (int64_t k = blockIdx.x; k < np; k += gridDim.x) {
        const ck_piece pc = pieces[k];
        const float pn = norms[2 * pc.seg], rn = norms[2 * pc.seg + 1];
        const float trust = pn > 0.0f && rn > 0.0f ? pn / rn : 1.0f;
        const float step = a.lr * trust;
        for (int64_t i = pc.lo + threadIdx.x; i < pc.hi; i += blockDim.x) {
            const float p0 = p[i];
            if (sc) {
                float np_ = p0 - (step * sc[i]) * lamb_r(a, m[i], v[i], p0);
                p[i] = sc[i] != 0.0f ? np_ : p0;
            } else {
                p[i] = p0 - step * lamb_r(a, m[i], v[i], p0);
            }
        }
    }
}

extern "C" cudaError_t ck_lamb_moments(cudaStream_t s, float *p, const float *g, float *m,
                                       float *v, const ck_piece *pieces, int64_t n_pieces,
                                       ck_lamb_args a, double *part)
{
    if (n_pieces <= 0)
        return cudaSuccess;
    k_lamb_moments<<<ck_blocks(n_pieces, 1), CK_THREADS, 0, s>>>(p, g, m, v, pieces,
                                                                  n_pieces, a, part);
    return cudaGetLastError();
}

extern "C" cudaError_t ck_lamb_norms(cudaStream_t s, float *norms, const double *part,
                                     const int64_t *first, int64_t n_seg)
{
    if (n_seg <= 0)
        return cudaSuccess;
    k_lamb_norms<<<ck_blocks(n_seg, CK_THREADS), CK_THREADS, 0, s>>>(norms, part, first,
                                                                      n_seg);
    return cudaGetLastError();
}

extern "C" cudaError_t ck_lamb_apply(cudaStream_t s, float *p, const float *m, const float *v,
                                     const float *sc, const ck_piece *pieces,
                                     int64_t n_pieces, const float *norms, ck_lamb_args a)
{
    if (n_pieces <= 0)
        return cudaSuccess;
    k_lamb_apply<<<ck_blocks(n_pieces, 1), CK_THREADS, 0, s>>>(p, m, v, sc, pieces, n_pieces,
                                                                norms, a);
    return cudaGetLastError();
}

/* ---- gather_augment_2d ---- */

/* per row i: sh = floor(u0 (2 pad + 1)) - pad, sw from u1, f = flip && u2
 * < 0.5, with u_j = mltk_rng_u01(seed, offset + 4 i + j) (backend.h) */
__global__ void k_augment_params(int *prm, int64_t rows, int64_t pad, int flip, uint64_t seed,
                                 uint64_t offset)
{
    const double span = (double)(2 * pad + 1);
    CK_FOR(i, rows) {
        const uint64_t c0 = offset + 4 * (uint64_t)i;
        int64_t sh = (int64_t)((double)mltk_rng_u01(seed, c0) * span) - pad;
        int64_t sw = (int64_t)((double)mltk_rng_u01(seed, c0 + 1) * span) - pad;
        int f = flip && mltk_rng_u01(seed, c0 + 2) < 0.5f;
        prm[3 * i] = (int)sh;
        prm[3 * i + 1] = (int)sw;
        prm[3 * i + 2] = f;
    }
}

/* one block row per output image row (i, ch, h); threads along w; an
 * index outside [0, M) gives zeros and raises CK_BAD_INDEX */
__global__ void k_augment_gather(unsigned *flag, float *y, const float *x, int64_t M,
                                 const int32_t *idx, const int *prm, int64_t rows, int64_t C,
                                 int64_t H, int64_t W)
{
    const int64_t lines = rows * C * H;
    CK_FOR_Y(b, lines) {
        const int64_t i = b / (C * H), rem = b % (C * H);
        const int64_t ch = rem / H, h = rem % H;
        const int64_t sh = prm[3 * i], sw = prm[3 * i + 1];
        const int f = prm[3 * i + 2];
        float *d = y + b * W;
        const int64_t hs = h + sh;
        const int32_t k = idx[i];
        const int ok = k >= 0 && (int64_t)k < M;
        if (!ok && rem == 0 && blockIdx.x == 0 && threadIdx.x == 0)
            atomicOr(flag, (unsigned)CK_BAD_INDEX);
        const float *s = ok && hs >= 0 && hs < H
            ? x + (((int64_t)k * C + ch) * H + hs) * W : NULL;
        CK_FOR_X(w, W) {
            const int64_t ws = (f ? W - 1 - w : w) + sw;
            d[w] = s && ws >= 0 && ws < W ? s[ws] : 0.0f;
        }
    }
}

extern "C" cudaError_t ck_augment_params(cudaStream_t s, int *prm, int64_t rows, int64_t pad,
                                         int flip, uint64_t seed, uint64_t offset)
{
    if (rows <= 0)
        return cudaSuccess;
    k_augment_params<<<ck_blocks(rows, CK_THREADS), CK_THREADS, 0, s>>>(prm, rows, pad, flip,
                                                                         seed, offset);
    return cudaGetLastError();
}

extern "C" cudaError_t ck_augment_gather(cudaStream_t s, unsigned *flag, float *y,
                                         const float *x, int64_t M, const int32_t *idx,
                                         const int *prm, int64_t rows, int64_t C, int64_t H,
                                         int64_t W)
{
    if (rows <= 0 || C <= 0 || H <= 0 || W <= 0)
        return cudaSuccess;
    const int threads = W <= 32 ? 32 : W <= 64 ? 64 : W <= 128 ? 128 : 256;
    const int64_t bx = (W + threads - 1) / threads;
    dim3 grid((unsigned)(bx < 1024 ? bx : 1024), ck_blocks_y(rows * C * H), 1);
    k_augment_gather<<<grid, threads, 0, s>>>(flag, y, x, M, idx, prm, rows, C, H, W);
    return cudaGetLastError();
}
