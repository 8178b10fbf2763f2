/* cuda_device.cuh - device-side helpers both .cu files of the cuda
 * backend share: launch geometry, grid-stride loops, block reductions
 * in a fixed order, the per-channel launch over (N, C, L) tensors, and
 * the bf16 and f16 storage types with their conversions.
 *
 * Every reduction here combines values in an order fixed by the block
 * size alone (warp shuffles down, then the warps' results in a second
 * shuffle), so a kernel launched with the same geometry produces the
 * same bits on every run.  Blocks are multiples of 32 threads, at most
 * 1024, and every thread of a block must reach a block reduction.
 *
 * What this is not: the kernels (cuda_kernels.cu, cuda_nn_kernels.cu) or
 * anything the C host code sees (cuda_kernels.h).
 */
#ifndef MLTK_CUDA_DEVICE_CUH
#define MLTK_CUDA_DEVICE_CUH

#include <stdint.h>
#include <math.h>
#include <cuda_runtime.h>

#include <mltk/backend.h>

/* ---- launch geometry ---- */

#define CK_THREADS 256
/* caps on grid sizes; loops stride over whatever lies beyond */
#define CK_MAX_BLOCKS_X 65536
#define CK_MAX_BLOCKS_Y 65535

static inline unsigned ck_blocks(int64_t n, int threads)
{
    int64_t b = (n + threads - 1) / threads;
    if (b < 1)
        b = 1;
    if (b > CK_MAX_BLOCKS_X)
        b = CK_MAX_BLOCKS_X;
    return (unsigned)b;
}

static inline unsigned ck_blocks_y(int64_t n)
{
    return (unsigned)(n < 1 ? 1 : n > CK_MAX_BLOCKS_Y ? CK_MAX_BLOCKS_Y : n);
}

/* a grid of (cols / CK_THREADS, rows) blocks for row-wise 2-d kernels */
static inline dim3 ck_grid_2d(int64_t rows, int64_t cols)
{
    int64_t bx = (cols + CK_THREADS - 1) / CK_THREADS;
    bx = bx < 1 ? 1 : bx > 1024 ? 1024 : bx;
    return dim3((unsigned)bx, ck_blocks_y(rows), 1);
}

/* threads per block for a one-block-per-row kernel: enough to cover short
 * rows without idling most of the block; a function of the row length
 * only, so the reduction order is too */
static inline int ck_row_threads(int64_t cols)
{
    return cols <= 64 ? 32 : cols <= 512 ? 128 : 256;
}

#define CK_FOR(i, n)                                                           \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (int64_t)gridDim.x * blockDim.x)

/* the x-strided inner loop of a 2-d kernel */
#define CK_FOR_X(j, n)                                                         \
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < (n); \
         j += (int64_t)gridDim.x * blockDim.x)

/* the y-strided outer loop of a 2-d kernel (uniform across the block) */
#define CK_FOR_Y(r, n) \
    for (int64_t r = blockIdx.y; r < (n); r += gridDim.y)

/* ---- reductions in a fixed order ---- */

__device__ __forceinline__ double ck_warp_sum(double v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float ck_warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
    return v;
}

/* the sum over the block, returned to every thread */
__device__ __forceinline__ double ck_block_sum(double v)
{
    __shared__ double sh[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nw = (blockDim.x + 31) >> 5;
    v = ck_warp_sum(v);
    if (lane == 0)
        sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        double t = lane < nw ? sh[lane] : 0.0;
        t = ck_warp_sum(t);
        if (lane == 0)
            sh[0] = t;
    }
    __syncthreads();
    double r = sh[0];
    __syncthreads();
    return r;
}

/* the maximum over the block (NaN ignored, as fmaxf does), to every thread */
__device__ __forceinline__ float ck_block_max(float v)
{
    __shared__ float sh[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nw = (blockDim.x + 31) >> 5;
    v = ck_warp_max(v);
    if (lane == 0)
        sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float t = lane < nw ? sh[lane] : -INFINITY;
        t = ck_warp_max(t);
        if (lane == 0)
            sh[0] = t;
    }
    __syncthreads();
    float r = sh[0];
    __syncthreads();
    return r;
}

/* ---- bf16 and f16 storage ---- */

/* Storage types, 16 bits each: values are loaded into float (ck_ld,
 * exact) and stored from float (ck_st), rounded to nearest, ties to even,
 * with the cpu backend's bit rules (cpu.c's f_to_bf16 / f_to_f16): a NaN
 * stays a quiet NaN of the same sign and upper payload, f16 overflows to
 * inf from 65520 up and keeps its subnormals.  The conversions are written
 * on the bits rather than with cuda_bf16.h / cuda_fp16.h, whose NaN
 * results are canonical, so that a cast gives the cpu's bits. */
struct ck_bf16 { uint16_t v; };
struct ck_f16 { uint16_t v; };

__device__ __forceinline__ uint16_t ck_bf16_bits(float f)
{
    const uint32_t x = __float_as_uint(f);
    const uint32_t r = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
    const uint32_t q = (x >> 16) | 0x0040u;
    return (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? q : r);
}

__device__ __forceinline__ uint16_t ck_f16_bits(float f)
{
    const uint32_t x = __float_as_uint(f);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t a = x & 0x7fffffffu;
    const uint32_t norm = (a + 0xc8000fffu + ((a >> 13) & 1u)) >> 13;  /* rebias -112 */
    const uint32_t sub = __float_as_uint(__fadd_rn(__uint_as_float(a), 0.5f)) - 0x3f000000u;
    const uint32_t nan = 0x7e00u | ((a >> 13) & 0x3ffu);
    uint32_t r = a < 0x38800000u ? sub : norm;
    r = a >= 0x47800000u ? 0x7c00u : r;  /* >= 65536: inf (65520 rounds there) */
    r = a > 0x7f800000u ? nan : r;
    return (uint16_t)(r | sign);
}

__device__ __forceinline__ float ck_f16_float(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t e = h & 0x7c00u, m = h & 0x3ffu;
    const uint32_t norm = ((uint32_t)(h & 0x7fffu) << 13) + 0x38000000u;  /* rebias +112 */
    const uint32_t inf = ((uint32_t)(h & 0x7fffu) << 13) | 0x7f800000u;
    const float sub = __fmul_rn((float)m, 5.9604644775390625e-8f);  /* m 2^-24, exact */
    uint32_t r = e == 0x7c00u ? inf : norm;
    r = e == 0 ? __float_as_uint(sub) : r;
    return __uint_as_float(r | sign);
}

__device__ __forceinline__ float ck_ld(const float *p) { return *p; }
__device__ __forceinline__ float ck_ld(const ck_bf16 *p)
{
    return __uint_as_float((uint32_t)p->v << 16);
}
__device__ __forceinline__ float ck_ld(const ck_f16 *p) { return ck_f16_float(p->v); }

__device__ __forceinline__ void ck_st(float *p, float v) { *p = v; }
__device__ __forceinline__ void ck_st(ck_bf16 *p, float v) { p->v = ck_bf16_bits(v); }
__device__ __forceinline__ void ck_st(ck_f16 *p, float v) { p->v = ck_f16_bits(v); }

/* CALL with T_ the storage type of dt (f32 for anything else) */
#define CK_DT_DISPATCH(dt, CALL)                                              \
    switch (dt) {                                                             \
    case MLTK_BF16: { typedef ck_bf16 T_; CALL; } break;                      \
    case MLTK_F16:  { typedef ck_f16 T_; CALL; } break;                       \
    default:        { typedef float T_; CALL; } break;                        \
    }

/* ---- per-channel elementwise work over (N, C, L) ---- */

/* f(i, c) for every element i of x (N, C, L), c its channel.  Large
 * planes: one block row per (n, c) plane.  Small planes: one block row
 * per sample, the channel from a 32-bit division. */
template <class F>
__global__ void ck_chan_planes(F f, int64_t planes, int64_t C, int64_t L)
{
    CK_FOR_Y(p, planes) {
        const int64_t c = p % C;
        CK_FOR_X(l, L)
            f(p * L + l, c);
    }
}

template <class F>
__global__ void ck_chan_rows(F f, int64_t N, uint32_t C, uint32_t L)
{
    const uint32_t CL = C * L;
    CK_FOR_Y(n, N) {
        for (uint32_t j = blockIdx.x * blockDim.x + threadIdx.x; j < CL;
             j += gridDim.x * blockDim.x)
            f(n * (int64_t)CL + j, (int64_t)(j / L));
    }
}

template <class F>
static cudaError_t ck_launch_chan(cudaStream_t s, F f, int64_t N, int64_t C, int64_t L)
{
    if (N <= 0 || C <= 0 || L <= 0)
        return cudaSuccess;
    if (L >= 32 || C * L > 0x7fffffffLL)
        ck_chan_planes<<<ck_grid_2d(N * C, L), CK_THREADS, 0, s>>>(f, N * C, C, L);
    else
        ck_chan_rows<<<ck_grid_2d(N, C * L), CK_THREADS, 0, s>>>(f, N, (uint32_t)C,
                                                                 (uint32_t)L);
    return cudaGetLastError();
}

#endif /* MLTK_CUDA_DEVICE_CUH */
