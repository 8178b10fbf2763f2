/* cuda_internal.h - what the cuda backend's host source files share.
 *
 * Hidden inside the plugin (built with -fvisibility=hidden; only
 * mltk_plugin_cuda is exported).  cuda.c holds the lifetime, the memory
 * (a caching allocator and pinned staging), the errors, the device flag
 * and the op table (supports, workspace, run); cuda_ops.c the core ops
 * (elementwise, cast, gemm, reductions, cross-entropy, gathers, random
 * numbers, SGD, Adam); cuda_conv.c convolution (cuDNN) and pooling;
 * cuda_nn.c the rest.  Kernels are behind the launchers of cuda_kernels.h.
 *
 * The op functions take the unpacked arguments of a call the core has
 * checked (core/op.c): they validate nothing the core validates.  Every op
 * runs on the context's one stream, in call order, so memory handed back
 * to the cache (or the context's scratch) may be reused by the next op
 * without waiting; no op waits for the device.  Errors: a failed CUDA,
 * cuBLAS or cuDNN call becomes MLTK_ERR_BACKEND (MLTK_ERR_NOMEM when
 * memory ran out) with its message in the running call's *err (run), or
 * in the log outside an op (memory calls, teardown).
 */
#ifndef MLTK_CUDA_INTERNAL_H
#define MLTK_CUDA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#include <cudnn.h>

#include <mltk/plugin.h>

#include "cuda_kernels.h"

/* ---- the caching allocator (cuda.c) ---- */

/* Freed blocks are kept in per-size-class free lists and handed out again
 * for requests of the same class; device memory is only returned to the
 * driver when an allocation fails (then everything cached is released and
 * the allocation retried) or when the context is destroyed. */
typedef struct cuda_bin {
    size_t size;    /* class size in bytes */
    void **ptrs;    /* free blocks of this class */
    int    n, cap;
} cuda_bin;

typedef struct cuda_live {
    uintptr_t key;  /* block address, 0 = empty slot */
    size_t    size; /* its class size */
} cuda_live;

typedef struct cuda_cache {
    cuda_live *live;      /* open-addressing table of blocks handed out */
    size_t     live_cap;  /* power of two */
    size_t     live_n;
    cuda_bin  *bins;
    int        n_bins, cap_bins;
    size_t     bytes_live, bytes_cached;
} cuda_cache;

/* ---- convolution plans (cuda_conv.c) ---- */

typedef struct cuda_conv_plan cuda_conv_plan;

/* ---- context ---- */

#define CUDA_STAGE_BYTES ((size_t)4 << 20)   /* per pinned staging buffer */
#define CUDA_BLAS_WS     ((size_t)32 << 20)  /* cuBLAS workspace (Hopper) */

typedef struct cuda_ctx {
    int            device;
    int            tf32;          /* TF32 tensor cores for f32 gemm and conv */
    cudaStream_t   stream;
    cublasHandle_t blas;
    cudnnHandle_t  dnn;
    void          *blas_ws;
    cuda_cache     cache;
    /* pinned staging for upload/download, used alternately */
    unsigned char *stage[2];
    cudaEvent_t    stage_done[2]; /* the last copy out of stage[i] finished */
    int            stage_next;
    /* the device flag: CK_BAD_* bits that kernels raise on bad data
     * (labels, ids, indices), read and cleared by download and sync */
    unsigned      *dflag;         /* device */
    unsigned      *hflag;         /* pinned host copy */
    /* while `run` executes a call: where its failure message goes */
    char         **err;
    /* scratch for partial sums: grows, never shrinks, reused by every op */
    void          *scratch;
    size_t         scratch_bytes;
    /* convolution plans, most recently used first (an LRU cache) */
    cuda_conv_plan *plans;
    int            n_plans;
    /* convolution workspace of our own, for calls whose buffer admits no
     * algorithm: grows, never shrinks */
    void          *conv_ws;
    size_t         conv_ws_bytes;
    /* LAMB's pieces for the last segment table seen (device and host) */
    void          *lamb_dev;      /* ck_piece[n_pieces] then int64 first[n_seg + 1] */
    int64_t       *lamb_seg;      /* host copy of seg_off, n_seg + 1 */
    int            lamb_n_seg;
    int64_t        lamb_pieces;
    char           name[384];
} cuda_ctx;

/* ---- the context's device (cuda.c) ---- */

/* Make c's device the current one of the calling host thread.  The CUDA
 * runtime keeps the current device per host thread, so a context on a
 * device other than 0, or one used from a thread that did not create it,
 * would otherwise launch on (and allocate from) the wrong device.  Cheap:
 * cudaGetDevice reads a thread-local, and cudaSetDevice is called only
 * when another device is current.  MLTK_ERR_BACKEND (reported as
 * cuda_failf does) on failure. */
int cu_set_device(cuda_ctx *c);

/* Every entry point that may touch the device starts with this: the
 * context exists, and its device is current (cu_set_device). */
#define CU_ENTER(c)                                                           \
    do {                                                                      \
        if (!(c))                                                             \
            return MLTK_ERR_INVALID;                                          \
        int dev_rc_ = cu_set_device(c);                                       \
        if (dev_rc_)                                                          \
            return dev_rc_;                                                   \
    } while (0)

/* ---- errors (cuda.c) ---- */

/* Report a failure and return `status`: inside `run` the message goes to
 * the call's *err (the first failure of a call wins) and the debug log;
 * outside (c NULL or no call running) to the error log.  Messages read
 * "<op>: CUDA: ...", "<op>: cuBLAS: CUBLAS_STATUS_...", "<op>: cuDNN:
 * CUDNN_STATUS_..."; the core prefixes the backend's name. */
int cuda_failf(cuda_ctx *c, int status, const char *fmt, ...) MLTK_PRINTF(3, 4);
/* A CUDA runtime error: MLTK_ERR_NOMEM for an out-of-memory error, else
 * MLTK_ERR_BACKEND.  Clears a non-sticky error. */
int cuda_fail(cuda_ctx *c, const char *op, cudaError_t e);
int cuda_fail_blas(cuda_ctx *c, const char *op, cublasStatus_t st);
int cuda_fail_dnn(cuda_ctx *c, const char *op, cudnnStatus_t st);

/* The TRY macros report through the context `c` in scope. */
#define CU_TRY(op, call)                                                      \
    do {                                                                      \
        cudaError_t e_ = (call);                                              \
        if (e_ != cudaSuccess)                                                \
            return cuda_fail(c, (op), e_);                                    \
    } while (0)

#define BLAS_TRY(op, call)                                                    \
    do {                                                                      \
        cublasStatus_t s_ = (call);                                           \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                      \
            return cuda_fail_blas(c, (op), s_);                               \
    } while (0)

#define DNN_TRY(op, call)                                                     \
    do {                                                                      \
        cudnnStatus_t s_ = (call);                                            \
        if (s_ != CUDNN_STATUS_SUCCESS)                                       \
            return cuda_fail_dnn(c, (op), s_);                                \
    } while (0)

/* ---- memory helpers (cuda.c) ---- */

/* `bytes` of device memory from the cache or the driver; out of memory is
 * "CUDA: out of memory allocating N bytes" (MLTK_ERR_NOMEM) */
int  cuda_mem_alloc(cuda_ctx *c, size_t bytes, void **ptr);
/* Back to the cache (stream-ordered reuse), or to the driver when the
 * cache has no room.  MLTK_ERR_BACKEND when that synchronize or cudaFree
 * failed, MLTK_ERR_INVALID for a pointer not handed out here. */
int  cuda_mem_free(cuda_ctx *c, void *ptr);
/* host -> device through the pinned staging (asynchronous for the device
 * side, the host buffer may be reused at once; waits only for a staging
 * buffer still being copied out of) */
int  cuda_mem_upload(cuda_ctx *c, void *dst, const void *src, size_t bytes);
/* At least `bytes` of scratch (8-byte aligned, stream-ordered reuse). */
int  cuda_scratch(cuda_ctx *c, size_t bytes, void **ptr, const char *op);

/* ---- ops, one family per file ----
 * Sizes come from the call's shapes (cuda.c's run); tensors of the op's
 * dtype `dt` are void *. */

/* cuda_ops.c */
int cuda_fill(cuda_ctx *c, mltk_dtype dt, void *x, float v, int64_t n);
int cuda_axpby(cuda_ctx *c, mltk_dtype dt, void *y, float a, const void *x, float b,
               int64_t n);
int cuda_mul(cuda_ctx *c, mltk_dtype dt, void *z, const void *x, const void *y, int64_t n);
int cuda_act_forward(cuda_ctx *c, mltk_dtype dt, mltk_act act, float alpha, void *y,
                     const void *x, int64_t n);
int cuda_act_backward(cuda_ctx *c, mltk_dtype dt, mltk_act act, float alpha, void *dx,
                      const void *dy, const void *x, const void *y, int64_t n);
int cuda_cast(cuda_ctx *c, void *y, mltk_dtype ty, const void *x, mltk_dtype tx, int64_t n);
int cuda_clamp(cuda_ctx *c, mltk_dtype dt, void *x, int64_t n, float lo, float hi);
/* the gemm op's call: C = act(alpha op(A) op(B) + beta C + bias), 2-d or
 * a batch of 3-d, with the tensors' strides */
int cuda_gemm(cuda_ctx *c, const mltk_op_call *call);
int cuda_bias_act(cuda_ctx *c, mltk_dtype dt, void *y, const void *b, int64_t rows,
                  int64_t cols, mltk_act act, float alpha);
int cuda_sum_rows(cuda_ctx *c, mltk_dtype dt, void *out, const void *x, int64_t rows,
                  int64_t cols, float beta);
int cuda_sum(cuda_ctx *c, mltk_dtype dt, float *out, const void *x, int64_t n, int squares);
int cuda_scale_to_norm(cuda_ctx *c, mltk_dtype dt, void *x, int64_t n, const float *sumsq,
                       float max_norm);
int cuda_nonfinite(cuda_ctx *c, mltk_dtype dt, float *flag, const void *x, int64_t n);
/* logits (N, C), labels (N), weights (C) or NULL */
int cuda_softmax_xent(cuda_ctx *c, float *loss, float *dlogits, const float *logits,
                      const int32_t *labels, const float *weights, int64_t N, int64_t C,
                      float label_smoothing, float grad_scale);
/* logits (N, C) against probabilities t (N, C), weights (C) or NULL */
int cuda_softmax_xent_soft(cuda_ctx *c, float *loss, float *dlogits, const float *logits,
                           const float *t, const float *weights, int64_t N, int64_t C,
                           float label_smoothing, float grad_scale);
int cuda_count_correct(cuda_ctx *c, float *correct, const float *logits,
                       const int32_t *labels, int64_t N, int64_t C);
/* dst (n rows of row_bytes) from src (M rows) */
int cuda_gather_rows(cuda_ctx *c, void *dst, const void *src, int64_t M, const int32_t *idx,
                     int64_t n, size_t row_bytes);
int cuda_rng_uniform(cuda_ctx *c, float *x, int64_t n, float lo, float hi, uint64_t seed,
                     uint64_t offset);
int cuda_rng_normal(cuda_ctx *c, float *x, int64_t n, float mean, float std, uint64_t seed,
                    uint64_t offset);
int cuda_sgd_step(cuda_ctx *c, float *p, const float *g, float *mom, int64_t n,
                  const mltk_sgd_params *a, const float *lr_scale);
int cuda_adam_step(cuda_ctx *c, float *p, const float *g, float *m, float *v, int64_t n,
                   const mltk_adam_params *a, const float *lr_scale);

/* cuda_conv.c */
/* the bytes of the call's workspace the conv op `call` runs with (see
 * cuda_conv.c) */
size_t cuda_conv2d_workspace(cuda_ctx *c, const mltk_op_call *call);
/* conv2d forward, backward-data or backward-filter (call->op) with the
 * call's tensors, params and workspace: cuDNN in the inputs' dtype, or
 * in f32 on widened inputs when those are bf16 or f16 and the first
 * output is f32 */
int cuda_conv2d(cuda_ctx *c, const mltk_op_call *call);
int cuda_pool2d_forward(cuda_ctx *c, mltk_pool kind, float *y, const float *x,
                        const mltk_pool2d_desc *d);
int cuda_pool2d_backward(cuda_ctx *c, mltk_pool kind, float *dx, const float *dy,
                         const float *x, const mltk_pool2d_desc *d);
/* drop every plan (when the TF32 setting changes: plans are made again,
 * under the new math, on next use) */
void cuda_conv_plans_free(cuda_ctx *c);
/* release plans and the own workspace (teardown) */
void cuda_conv_free(cuda_ctx *c);

/* cuda_nn.c */
int cuda_batchnorm_forward_train(cuda_ctx *c, float *y, const float *x, const float *gamma,
                                 const float *beta, float *save_mean, float *save_invstd,
                                 float *running_mean, float *running_var, int64_t N,
                                 int64_t C, int64_t L, float momentum, float eps);
int cuda_batchnorm_forward_eval(cuda_ctx *c, float *y, const float *x, const float *gamma,
                                const float *beta, const float *running_mean,
                                const float *running_var, int64_t N, int64_t C, int64_t L,
                                float eps);
int cuda_batchnorm_backward(cuda_ctx *c, float *dx, float *dgamma, float *dbeta,
                            const float *dy, const float *x, const float *gamma,
                            const float *save_mean, const float *save_invstd, int64_t N,
                            int64_t C, int64_t L);
int cuda_layernorm_forward(cuda_ctx *c, float *y, const float *x, const float *gamma,
                           const float *beta, float *mean, float *rstd, int64_t rows,
                           int64_t cols, float eps);
int cuda_layernorm_backward(cuda_ctx *c, float *dx, float *dgamma, float *dbeta,
                            const float *dy, const float *x, const float *gamma,
                            const float *mean, const float *rstd, int64_t rows,
                            int64_t cols);
int cuda_dropout_forward(cuda_ctx *c, float *y, float *mask, const float *x, int64_t n,
                         float p, uint64_t seed, uint64_t offset);
int cuda_softmax_forward(cuda_ctx *c, float *y, const float *x, int64_t rows, int64_t cols);
int cuda_softmax_backward(cuda_ctx *c, float *dx, const float *dy, const float *y,
                          int64_t rows, int64_t cols);
/* dst, src (rows, cols) with row strides dst_ld, src_ld, in dt */
int cuda_copy_2d(cuda_ctx *c, mltk_dtype dt, void *dst, int64_t dst_ld, const void *src,
                 int64_t src_ld, int64_t rows, int64_t cols, int accumulate);
int cuda_embedding_forward(cuda_ctx *c, float *y, const float *table, const float *ids,
                           int64_t n, int64_t dim, int64_t vocab);
int cuda_embedding_backward(cuda_ctx *c, float *dtable, const float *dy, const float *ids,
                            int64_t n, int64_t dim, int64_t vocab);
int cuda_pointwise_loss(cuda_ctx *c, int kind, float *loss, float *dpred, const float *pred,
                        const float *target, int64_t n, float grad_scale);
int cuda_kl_div_logits(cuda_ctx *c, float *loss, float *dstudent, const float *student,
                       const float *teacher, int64_t N, int64_t C, float T,
                       float grad_scale);
int cuda_rmsprop_step(cuda_ctx *c, float *p, const float *g, float *sq, float *mom,
                      float *gavg, int64_t n, const mltk_rmsprop_params *a,
                      const float *lr_scale);
int cuda_lamb_step(cuda_ctx *c, float *p, const float *g, float *m, float *v, int64_t n,
                   const mltk_lamb_params *a, float *scratch, const float *lr_scale);
/* y (rows, C, H, W) from x (M, C, H, W) */
int cuda_gather_augment_2d(cuda_ctx *c, float *y, const float *x, int64_t M,
                           const int32_t *idx, int64_t rows, int64_t C, int64_t H, int64_t W,
                           const mltk_augment_params *a);
/* release LAMB's cached pieces (context teardown) */
void cuda_lamb_free(cuda_ctx *c);

#endif /* MLTK_CUDA_INTERNAL_H */
