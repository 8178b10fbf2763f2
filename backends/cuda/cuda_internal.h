/* cuda_internal.h - what the cuda backend's host source files share.
 *
 * Hidden inside the plugin (built with -fvisibility=hidden; only
 * mltk_plugin_cuda is exported).  cuda.c holds the lifetime, the memory
 * (a caching allocator and pinned staging), the error reporting and the
 * vtable; cuda_ops.c the ABI 1.0 ops; cuda_conv.c convolution (cuDNN) and
 * pooling; cuda_nn.c the other ABI 1.1 and 1.2 ops.  Kernels are behind
 * the launchers of cuda_kernels.h.
 *
 * Every op runs on the context's one stream, in call order, so memory
 * handed back to the cache (or the context's scratch) may be reused by
 * the next op without waiting.  Errors: a failed CUDA, cuBLAS or cuDNN
 * call is logged once (naming the op and the library's message) and
 * becomes MLTK_ERR_BACKEND, or MLTK_ERR_NOMEM when memory ran out.
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
typedef struct cuda_conv_budget cuda_conv_budget;

/* ---- context ---- */

#define CUDA_STAGE_BYTES ((size_t)4 << 20)   /* per pinned staging buffer */
#define CUDA_BLAS_WS     ((size_t)32 << 20)  /* cuBLAS workspace (Hopper) */

typedef struct cuda_ctx {
    int            device;
    int            tf32;          /* TF32 tensor cores for gemm and conv */
    cudaStream_t   stream;
    cublasHandle_t blas;
    cudnnHandle_t  dnn;
    void          *blas_ws;
    cuda_cache     cache;
    /* pinned staging for upload/download, used alternately */
    unsigned char *stage[2];
    cudaEvent_t    stage_done[2]; /* the last copy out of stage[i] finished */
    int            stage_next;
    /* device-side check results (index and label validation) */
    int           *dflag;         /* device */
    int           *hflag;         /* pinned host */
    /* scratch for partial sums: grows, never shrinks, reused by every op */
    void          *scratch;
    size_t         scratch_bytes;
    /* convolution plans, most recently used first (an LRU cache) */
    cuda_conv_plan *plans;
    int            n_plans;
    /* every workspace size conv2d_workspace reported (not evicted) */
    cuda_conv_budget *conv_budgets;
    int            n_conv_budgets, cap_conv_budgets;
    int            conv_budgets_lost;  /* one could not be recorded */
    /* convolution workspace of our own, for callers whose buffer is not
     * known to be large enough: grows, never shrinks */
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
 * when another device is current.  MLTK_ERR_BACKEND (logged) on failure. */
int cu_set_device(const cuda_ctx *c);

/* ---- argument checks (as the cpu backend's) ---- */

/* Every entry point that may touch the device starts with this: the
 * context exists, and its device is current (cu_set_device). */
#define CU_ENTER(c)                                                           \
    do {                                                                      \
        if (!(c))                                                             \
            return MLTK_ERR_INVALID;                                          \
        int dev_rc_ = cu_set_device((const cuda_ctx *)(c));                   \
        if (dev_rc_)                                                          \
            return dev_rc_;                                                   \
    } while (0)
#define CHECK_N(n) do { if ((n) < 0) return MLTK_ERR_INVALID; } while (0)
#define CHECK_PTR(p, n) do { if ((n) > 0 && !(p)) return MLTK_ERR_INVALID; } while (0)

/* ---- errors (cuda.c) ---- */

/* Log "cuda: <op>: <message> (<name>)" and return MLTK_ERR_NOMEM for an
 * out-of-memory error, else MLTK_ERR_BACKEND.  Clears a non-sticky error. */
int cuda_fail(const char *op, cudaError_t e);
int cuda_fail_blas(const char *op, cublasStatus_t st);
int cuda_fail_dnn(const char *op, cudnnStatus_t st);

#define CU_TRY(op, call)                                                      \
    do {                                                                      \
        cudaError_t e_ = (call);                                              \
        if (e_ != cudaSuccess)                                                \
            return cuda_fail((op), e_);                                       \
    } while (0)

#define BLAS_TRY(op, call)                                                    \
    do {                                                                      \
        cublasStatus_t s_ = (call);                                           \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                      \
            return cuda_fail_blas((op), s_);                                  \
    } while (0)

#define DNN_TRY(op, call)                                                     \
    do {                                                                      \
        cudnnStatus_t s_ = (call);                                            \
        if (s_ != CUDNN_STATUS_SUCCESS)                                       \
            return cuda_fail_dnn((op), s_);                                   \
    } while (0)

/* ---- memory helpers (cuda.c) ---- */

int  cuda_mem_alloc(cuda_ctx *c, size_t bytes, void **ptr);
/* Back to the cache (stream-ordered reuse), or to the driver when the
 * cache has no room.  MLTK_ERR_BACKEND (logged) when that synchronize or
 * cudaFree failed, MLTK_ERR_INVALID for a pointer not handed out here. */
int  cuda_mem_free(cuda_ctx *c, void *ptr);
/* host -> device through the pinned staging (asynchronous for the device
 * side, the host buffer may be reused at once) */
int  cuda_mem_upload(cuda_ctx *c, void *dst, const void *src, size_t bytes);
/* At least `bytes` of scratch (8-byte aligned, stream-ordered reuse). */
int  cuda_scratch(cuda_ctx *c, size_t bytes, void **ptr, const char *op);
/* Clear the device flag, for a check kernel to raise it. */
int  cuda_flag_clear(cuda_ctx *c, const char *op);
/* Wait for the stream and read the flag: *raised = its value. */
int  cuda_flag_read(cuda_ctx *c, const char *op, int *raised);

/* ---- ops, one family per file ---- */

/* cuda_ops.c */
int cuda_fill(void *ctx, float *x, float v, int64_t n);
int cuda_axpby(void *ctx, float *y, float a, const float *x, float b, int64_t n);
int cuda_mul(void *ctx, float *z, const float *x, const float *y, int64_t n);
int cuda_act_forward(void *ctx, mltk_act act, float alpha, float *y, const float *x,
                     int64_t n);
int cuda_act_backward(void *ctx, mltk_act act, float alpha, float *dx, const float *dy,
                      const float *x, const float *y, int64_t n);
int cuda_gemm(void *ctx, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
              float *C, int64_t ldc);
int cuda_bias_act(void *ctx, float *y, const float *b, int64_t rows, int64_t cols,
                  mltk_act act, float alpha);
int cuda_sum_rows(void *ctx, float *out, const float *x, int64_t rows, int64_t cols,
                  float beta);
int cuda_sum(void *ctx, float *out, const float *x, int64_t n);
int cuda_sumsq(void *ctx, float *out, const float *x, int64_t n);
int cuda_softmax_xent(void *ctx, float *loss, float *dlogits, const float *logits,
                      const int32_t *labels, int64_t N, int64_t C, float grad_scale);
int cuda_count_correct(void *ctx, float *correct, const float *logits,
                       const int32_t *labels, int64_t N, int64_t C);
int cuda_gather_rows(void *ctx, void *dst, const void *src, const int32_t *idx, int64_t n,
                     size_t row_bytes);
int cuda_rng_uniform(void *ctx, float *x, int64_t n, float lo, float hi, uint64_t seed,
                     uint64_t offset);
int cuda_rng_normal(void *ctx, float *x, int64_t n, float mean, float std, uint64_t seed,
                    uint64_t offset);
int cuda_sgd_step(void *ctx, float *p, const float *g, float *mom, int64_t n, float lr,
                  float momentum, float dampening, float weight_decay, int nesterov,
                  int64_t t, const float *lr_scale);
int cuda_adam_step(void *ctx, float *p, const float *g, float *m, float *v, int64_t n,
                   float lr, float beta1, float beta2, float eps, float weight_decay,
                   int decoupled, int64_t t, const float *lr_scale);

/* cuda_conv.c */
size_t cuda_conv2d_workspace(void *ctx, const mltk_conv2d_desc *d);
int cuda_conv2d_forward(void *ctx, float *y, const float *x, const float *w, const float *b,
                        const mltk_conv2d_desc *d, mltk_act act, float alpha, void *ws);
int cuda_conv2d_backward_data(void *ctx, float *dx, const float *dy, const float *w,
                              const mltk_conv2d_desc *d, void *ws);
int cuda_conv2d_backward_filter(void *ctx, float *dw, float *db, const float *dy,
                                const float *x, const mltk_conv2d_desc *d, void *ws);
int cuda_pool2d_forward(void *ctx, mltk_pool kind, float *y, const float *x,
                        const mltk_pool2d_desc *d);
int cuda_pool2d_backward(void *ctx, mltk_pool kind, float *dx, const float *dy,
                         const float *x, const float *y, const mltk_pool2d_desc *d);
/* drop every plan (when the TF32 setting changes: plans are made again,
 * under the new math and within the reported workspace, on next use) */
void cuda_conv_plans_free(cuda_ctx *c);
/* release plans, workspace records and the own workspace (teardown) */
void cuda_conv_free(cuda_ctx *c);

/* cuda_nn.c */
int cuda_batchnorm_forward_train(void *ctx, float *y, const float *x, const float *gamma,
                                 const float *beta, float *save_mean, float *save_invstd,
                                 float *running_mean, float *running_var, int64_t N,
                                 int64_t C, int64_t L, float momentum, float eps);
int cuda_batchnorm_forward_eval(void *ctx, float *y, const float *x, const float *gamma,
                                const float *beta, const float *running_mean,
                                const float *running_var, int64_t N, int64_t C, int64_t L,
                                float eps);
int cuda_batchnorm_backward(void *ctx, float *dx, float *dgamma, float *dbeta,
                            const float *dy, const float *x, const float *gamma,
                            const float *save_mean, const float *save_invstd, int64_t N,
                            int64_t C, int64_t L);
int cuda_layernorm_forward(void *ctx, float *y, const float *x, const float *gamma,
                           const float *beta, float *mean, float *rstd, int64_t rows,
                           int64_t cols, float eps);
int cuda_layernorm_backward(void *ctx, float *dx, float *dgamma, float *dbeta,
                            const float *dy, const float *x, const float *gamma,
                            const float *mean, const float *rstd, int64_t rows,
                            int64_t cols);
int cuda_dropout_forward(void *ctx, float *y, float *mask, const float *x, int64_t n,
                         float p, uint64_t seed, uint64_t offset);
int cuda_softmax_forward(void *ctx, float *y, const float *x, int64_t rows, int64_t cols);
int cuda_softmax_backward(void *ctx, float *dx, const float *dy, const float *y,
                          int64_t rows, int64_t cols);
int cuda_copy_2d(void *ctx, float *dst, int64_t dst_ld, const float *src, int64_t src_ld,
                 int64_t rows, int64_t cols, int accumulate);
int cuda_embedding_forward(void *ctx, float *y, const float *table, const float *ids,
                           int64_t n, int64_t dim, int64_t vocab);
int cuda_embedding_backward(void *ctx, float *dtable, const float *dy, const float *ids,
                            int64_t n, int64_t dim, int64_t vocab);
int cuda_softmax_xent_ex(void *ctx, float *loss, float *dlogits, const float *logits,
                         const int32_t *labels, const float *weights, int64_t N, int64_t C,
                         float label_smoothing, float grad_scale);
int cuda_pointwise_loss(void *ctx, int kind, float *loss, float *dpred, const float *pred,
                        const float *target, int64_t n, float grad_scale);
int cuda_kl_div_logits(void *ctx, float *loss, float *dstudent, const float *student,
                       const float *teacher, int64_t N, int64_t C, float T,
                       float grad_scale);
int cuda_scale_to_norm(void *ctx, float *x, int64_t n, const float *sumsq, float max_norm);
int cuda_clamp(void *ctx, float *x, int64_t n, float lo, float hi);
int cuda_rmsprop_step(void *ctx, float *p, const float *g, float *sq, float *mom,
                      float *gavg, int64_t n, float lr, float alpha, float eps,
                      float weight_decay, float momentum, int centered,
                      const float *lr_scale);
int cuda_lamb_step(void *ctx, float *p, const float *g, float *m, float *v, int64_t n,
                   float lr, float beta1, float beta2, float eps, float weight_decay,
                   int64_t t, const int64_t *seg_off, int n_seg, float *scratch,
                   const float *lr_scale);
int cuda_gather_augment_2d(void *ctx, float *y, const float *x, const int32_t *idx,
                           int64_t rows, int64_t C, int64_t H, int64_t W, int64_t pad,
                           int flip, uint64_t seed, uint64_t offset);
/* release LAMB's cached pieces (context teardown) */
void cuda_lamb_free(cuda_ctx *c);

#endif /* MLTK_CUDA_INTERNAL_H */
