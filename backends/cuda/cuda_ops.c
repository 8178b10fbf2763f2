/* cuda_ops.c - the core ops of the cuda backend: elementwise and
 * activations (f32, bf16, f16), casts, gemm with its epilogue, bias
 * epilogue, reductions and the non-finite check, softmax cross-entropy and
 * accuracy, row gathers, random numbers, SGD and Adam.
 *
 * What this is: the computation of calls the core has checked (core/op.c):
 * one or two kernel launches on the context's stream, or one cuBLAS call
 * (and an epilogue kernel) for gemm.  gemm is row-major over column-major
 * cuBLAS: C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T, which is
 * the cuBLAS product with the operands swapped and the same leading
 * dimensions; a 3-d batch is one strided-batched call (a batch stride of 0
 * reuses one matrix).  f32 products are cublasSgemm (TF32 tensor cores
 * only when the context's tf32 is on, through the handle's math mode);
 * bf16 and f16 products are cublasGemmEx with CUBLAS_COMPUTE_32F (f32
 * accumulation), C in f32 or the inputs' dtype.  The bias (f32) and the
 * activation are a second pass over C.  Reductions write per-block partial
 * sums in double to the context's scratch and one block adds them in a
 * fixed order.
 *
 * Nothing here waits for the device.  Labels and gather indices are data
 * in device memory the core cannot check: the kernels guard them (a bad one
 * reads nothing, its row is zeros or counts 0) and raise the context's
 * device flag, which the next download or sync reports (cuda.c).
 *
 * What this is not: argument checking (the core's), convolution and
 * pooling (cuda_conv.c), or the other modelling ops (cuda_nn.c).
 */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#include "cuda_internal.h"

/* ---- elementwise ---- */

int cuda_fill(cuda_ctx *c, mltk_dtype dt, void *x, float v, int64_t n)
{
    CU_TRY("fill", ck_fill(c->stream, dt, x, v, n));
    return MLTK_OK;
}

int cuda_axpby(cuda_ctx *c, mltk_dtype dt, void *y, float a, const void *x, float b,
               int64_t n)
{
    CU_TRY("axpby", ck_axpby(c->stream, dt, y, a, x, b, n));
    return MLTK_OK;
}

int cuda_mul(cuda_ctx *c, mltk_dtype dt, void *z, const void *x, const void *y, int64_t n)
{
    CU_TRY("mul", ck_mul(c->stream, dt, z, x, y, n));
    return MLTK_OK;
}

int cuda_act_forward(cuda_ctx *c, mltk_dtype dt, mltk_act act, float alpha, void *y,
                     const void *x, int64_t n)
{
    CU_TRY("act_forward", ck_act_forward(c->stream, dt, act, alpha, y, x, n));
    return MLTK_OK;
}

/* The derivative's source, as the contract (and the cpu backend) picks
 * it: relu, sigmoid and tanh prefer the output, leaky relu the input, elu
 * the output when alpha >= 0, gelu always the input.  The core has checked
 * that the one needed is present. */
int cuda_act_backward(cuda_ctx *c, mltk_dtype dt, mltk_act act, float alpha, void *dx,
                      const void *dy, const void *x, const void *y, int64_t n)
{
    const void *s = dy;
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
    if (act == MLTK_ACT_NONE && dx == dy)
        return MLTK_OK;
    CU_TRY("act_backward", ck_act_backward(c->stream, dt, act, alpha, dx, dy, s, s_is_y, n));
    return MLTK_OK;
}

int cuda_cast(cuda_ctx *c, void *y, mltk_dtype ty, const void *x, mltk_dtype tx, int64_t n)
{
    CU_TRY("cast", ck_cast(c->stream, y, ty, x, tx, n));
    return MLTK_OK;
}

int cuda_clamp(cuda_ctx *c, mltk_dtype dt, void *x, int64_t n, float lo, float hi)
{
    CU_TRY("clamp", ck_clamp(c->stream, dt, x, n, lo, hi));
    return MLTK_OK;
}

/* ---- linear algebra ---- */

static cudaDataType_t blas_type(mltk_dtype dt)
{
    return dt == MLTK_BF16 ? CUDA_R_16BF : dt == MLTK_F16 ? CUDA_R_16F : CUDA_R_32F;
}

/* a failed cuBLAS product: the status and the operands */
static int gemm_fail(cuda_ctx *c, const char *what, cublasStatus_t st,
                     const mltk_op_call *call)
{
    char a[160], b[160], cc[160];
    return cuda_failf(c, st == CUBLAS_STATUS_ALLOC_FAILED ? MLTK_ERR_NOMEM : MLTK_ERR_BACKEND,
                      "gemm: cuBLAS: %s (%s) in %s for C %s, A %s, B %s",
                      cublasGetStatusName(st), cublasGetStatusString(st), what,
                      mltk_tensor_str(&call->t[0], cc, sizeof cc),
                      mltk_tensor_str(&call->t[1], a, sizeof a),
                      mltk_tensor_str(&call->t[2], b, sizeof b));
}

/* C (M,N) = act(alpha op(A) op(B) + beta C + bias), or a batch of them:
 * the dims and strides as the core checked them (innermost stride 1,
 * stride[0] of a 3-d A or B may be 0) */
int cuda_gemm(cuda_ctx *c, const mltk_op_call *call)
{
    const mltk_gemm_params *p = call->params;
    const mltk_tensor *tc = &call->t[0], *ta = &call->t[1], *tb = &call->t[2];
    const float *bias = call->t[3].data;
    const int nd = tc->shape.ndim, o = nd - 2;
    const int64_t M = tc->shape.dim[o], N = tc->shape.dim[o + 1];
    const int64_t K = p->ta ? ta->shape.dim[o] : ta->shape.dim[o + 1];
    const int64_t batch = nd == 3 ? tc->shape.dim[0] : 1;
    const int64_t lda = mltk_tensor_stride(ta, o), ldb = mltk_tensor_stride(tb, o);
    const int64_t ldc = mltk_tensor_stride(tc, o);
    const int64_t sa = nd == 3 ? mltk_tensor_stride(ta, 0) : 0;
    const int64_t sb = nd == 3 ? mltk_tensor_stride(tb, 0) : 0;
    const int64_t sc = nd == 3 ? mltk_tensor_stride(tc, 0) : 0;
    const mltk_dtype dt = ta->dtype, cdt = tc->dtype;
    if (M == 0 || N == 0 || batch == 0)
        return MLTK_OK;
    if (K == 0 || p->alpha == 0.0f) {
        /* C = beta C, without reading C when beta == 0 */
        if (p->beta != 1.0f)
            CU_TRY("gemm: scaling C",
                   ck_scale_2d(c->stream, cdt, tc->data, ldc, sc, batch, M, N, p->beta));
    } else if (dt == MLTK_F32 && cdt == MLTK_F32) {
        /* row-major C (M,N) = op(A) op(B)  <=>  column-major C^T (N,M) = op(B)^T op(A)^T */
        const cublasOperation_t opb = p->tb ? CUBLAS_OP_T : CUBLAS_OP_N;
        const cublasOperation_t opa = p->ta ? CUBLAS_OP_T : CUBLAS_OP_N;
        cublasStatus_t st;
        if (batch == 1)
            st = cublasSgemm(c->blas, opb, opa, (int)N, (int)M, (int)K, &p->alpha, tb->data,
                             (int)ldb, ta->data, (int)lda, &p->beta, tc->data, (int)ldc);
        else
            st = cublasSgemmStridedBatched(c->blas, opb, opa, (int)N, (int)M, (int)K,
                                           &p->alpha, tb->data, (int)ldb, sb, ta->data,
                                           (int)lda, sa, &p->beta, tc->data, (int)ldc, sc,
                                           (int)batch);
        if (st != CUBLAS_STATUS_SUCCESS)
            return gemm_fail(c, batch == 1 ? "cublasSgemm" : "cublasSgemmStridedBatched", st,
                             call);
    } else {
        /* bf16 or f16 operands, f32 accumulation, C in f32 or their dtype */
        const cublasOperation_t opb = p->tb ? CUBLAS_OP_T : CUBLAS_OP_N;
        const cublasOperation_t opa = p->ta ? CUBLAS_OP_T : CUBLAS_OP_N;
        const cudaDataType_t tab = blas_type(dt), tcc = blas_type(cdt);
        cublasStatus_t st;
        if (batch == 1)
            st = cublasGemmEx(c->blas, opb, opa, (int)N, (int)M, (int)K, &p->alpha, tb->data,
                              tab, (int)ldb, ta->data, tab, (int)lda, &p->beta, tc->data, tcc,
                              (int)ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        else
            st = cublasGemmStridedBatchedEx(c->blas, opb, opa, (int)N, (int)M, (int)K,
                                            &p->alpha, tb->data, tab, (int)ldb, sb, ta->data,
                                            tab, (int)lda, sa, &p->beta, tc->data, tcc,
                                            (int)ldc, sc, (int)batch, CUBLAS_COMPUTE_32F,
                                            CUBLAS_GEMM_DEFAULT);
        if (st != CUBLAS_STATUS_SUCCESS)
            return gemm_fail(c, batch == 1 ? "cublasGemmEx" : "cublasGemmStridedBatchedEx",
                             st, call);
    }
    if (bias || p->act != MLTK_ACT_NONE)
        CU_TRY("gemm: bias and activation",
               ck_bias_act(c->stream, cdt, tc->data, ldc, sc, batch, M, N, MLTK_F32, bias,
                           p->act, p->act_alpha));
    return MLTK_OK;
}

int cuda_bias_act(cuda_ctx *c, mltk_dtype dt, void *y, const void *b, int64_t rows,
                  int64_t cols, mltk_act act, float alpha)
{
    if (!b && act == MLTK_ACT_NONE)
        return MLTK_OK;
    CU_TRY("bias_act", ck_bias_act(c->stream, dt, y, cols, 0, 1, rows, cols, dt, b, act,
                                   alpha));
    return MLTK_OK;
}

int cuda_sum_rows(cuda_ctx *c, mltk_dtype dt, void *out, const void *x, int64_t rows,
                  int64_t cols, float beta)
{
    if (cols == 0)
        return MLTK_OK;
    void *part;
    int rc = cuda_scratch(c, (size_t)(ck_row_chunks(rows) * cols) * sizeof(double), &part,
                          "sum_rows");
    if (rc)
        return rc;
    CU_TRY("sum_rows", ck_sum_rows(c->stream, dt, out, x, rows, cols, beta, part));
    return MLTK_OK;
}

/* ---- reductions ---- */

int cuda_sum(cuda_ctx *c, mltk_dtype dt, float *out, const void *x, int64_t n, int squares)
{
    const char *op = squares ? "sumsq" : "sum";
    if (n == 0) {
        CU_TRY(op, ck_fill(c->stream, MLTK_F32, out, 0.0f, 1));
        return MLTK_OK;
    }
    void *part;
    int rc = cuda_scratch(c, (size_t)ck_reduce_parts(n) * sizeof(double), &part, op);
    if (rc)
        return rc;
    CU_TRY(op, ck_sum(c->stream, dt, out, x, n, squares, part));
    return MLTK_OK;
}

int cuda_scale_to_norm(cuda_ctx *c, mltk_dtype dt, void *x, int64_t n, const float *sumsq,
                       float max_norm)
{
    CU_TRY("scale_to_norm", ck_scale_to_norm(c->stream, dt, x, n, sumsq, max_norm));
    return MLTK_OK;
}

/* flag = max(flag, any non-finite x): two launches over a partition fixed
 * by n, no atomics, no wait (the loss scaler reads the flag once a step) */
int cuda_nonfinite(cuda_ctx *c, mltk_dtype dt, float *flag, const void *x, int64_t n)
{
    if (n == 0)
        return MLTK_OK;
    void *part;
    int rc = cuda_scratch(c, (size_t)ck_reduce_parts(n) * sizeof(double), &part, "nonfinite");
    if (rc)
        return rc;
    CU_TRY("nonfinite", ck_nonfinite(c->stream, dt, flag, x, n, part));
    return MLTK_OK;
}

/* ---- losses and metrics ---- */

/* bytes of n doubles, rounded so that what follows stays 16-byte aligned */
static size_t dbl_bytes(int64_t n)
{
    return ((size_t)n * sizeof(double) + 15) & ~(size_t)15;
}

/* The plain kernel without label smoothing and weights (the ABI 1
 * softmax_xent), the general one (cpu_misc.c's formula) otherwise, as the
 * cpu backend chooses.  Labels are the core's to validate at upload; a bad
 * one still reads nothing (its row counts 0) and raises the device flag. */
int cuda_softmax_xent(cuda_ctx *c, float *loss, float *dlogits, const float *logits,
                      const int32_t *labels, const float *weights, int64_t N, int64_t C,
                      float label_smoothing, float grad_scale)
{
    const char *op = "softmax_xent";
    if (N == 0) {
        CU_TRY(op, ck_fill(c->stream, MLTK_F32, loss, 0.0f, 1));
        return MLTK_OK;
    }
    if (label_smoothing == 0.0f && !weights) {
        void *rows;
        int rc = cuda_scratch(c, (size_t)N * sizeof(double), &rows, op);
        if (rc)
            return rc;
        float scale = (float)((double)grad_scale / (double)N);
        CU_TRY(op, ck_softmax_xent(c->stream, c->dflag, rows, dlogits, logits, labels, N, C,
                                   scale));
        CU_TRY(op, ck_finish_sum(c->stream, loss, rows, N, 1.0, (double)N, NULL));
        return MLTK_OK;
    }
    /* scratch: W and the sum of the class weights, then the row losses */
    void *s;
    int rc = cuda_scratch(c, dbl_bytes(2) + dbl_bytes(N), &s, op);
    if (rc)
        return rc;
    double *wsum = s, *rows = (double *)((char *)s + dbl_bytes(2));
    CU_TRY(op, ck_xent_weights(c->stream, wsum, labels, weights, N, C));
    CU_TRY(op, ck_softmax_xent_ex(c->stream, c->dflag, rows, dlogits, logits, labels, weights,
                                  wsum, N, C, (double)label_smoothing, (double)grad_scale));
    CU_TRY(op, ck_finish_sum(c->stream, loss, rows, N, 1.0, 1.0, wsum));
    return MLTK_OK;
}

/* Against probabilities: one kernel, the mean over the N rows (weights or
 * not, as PyTorch). */
int cuda_softmax_xent_soft(cuda_ctx *c, float *loss, float *dlogits, const float *logits,
                           const float *t, const float *weights, int64_t N, int64_t C,
                           float label_smoothing, float grad_scale)
{
    const char *op = "softmax_xent";
    if (N == 0) {
        CU_TRY(op, ck_fill(c->stream, MLTK_F32, loss, 0.0f, 1));
        return MLTK_OK;
    }
    void *rows;
    int rc = cuda_scratch(c, (size_t)N * sizeof(double), &rows, op);
    if (rc)
        return rc;
    CU_TRY(op, ck_softmax_xent_soft(c->stream, rows, dlogits, logits, t, weights, N, C,
                                    (double)label_smoothing,
                                    (double)grad_scale / (double)N));
    CU_TRY(op, ck_finish_sum(c->stream, loss, rows, N, 1.0, (double)N, NULL));
    return MLTK_OK;
}

int cuda_count_correct(cuda_ctx *c, float *correct, const float *logits,
                       const int32_t *labels, int64_t N, int64_t C)
{
    if (N == 0) {
        CU_TRY("count_correct", ck_fill(c->stream, MLTK_F32, correct, 0.0f, 1));
        return MLTK_OK;
    }
    void *rows;
    int rc = cuda_scratch(c, (size_t)N * sizeof(double), &rows, "count_correct");
    if (rc)
        return rc;
    CU_TRY("count_correct", ck_count_correct(c->stream, c->dflag, rows, logits, labels, N, C));
    CU_TRY("count_correct", ck_finish_sum(c->stream, correct, rows, N, 1.0, 1.0, NULL));
    return MLTK_OK;
}

/* ---- data movement ---- */

/* An index outside [0, M) gives a row of zeros and raises the device
 * flag (reported by the next download or sync as MLTK_ERR_DATA). */
int cuda_gather_rows(cuda_ctx *c, void *dst, const void *src, int64_t M, const int32_t *idx,
                     int64_t n, size_t row_bytes)
{
    if (n == 0 || row_bytes == 0)
        return MLTK_OK;
    CU_TRY("gather_rows", ck_gather_rows(c->stream, c->dflag, dst, src, M, idx, n, row_bytes));
    return MLTK_OK;
}

/* ---- random numbers ---- */

int cuda_rng_uniform(cuda_ctx *c, float *x, int64_t n, float lo, float hi, uint64_t seed,
                     uint64_t offset)
{
    CU_TRY("rng_uniform", ck_rng_uniform(c->stream, x, n, lo, hi, seed, offset));
    return MLTK_OK;
}

int cuda_rng_normal(cuda_ctx *c, float *x, int64_t n, float mean, float std, uint64_t seed,
                    uint64_t offset)
{
    CU_TRY("rng_normal", ck_rng_normal(c->stream, x, n, mean, std, seed, offset));
    return MLTK_OK;
}

/* ---- optimizer updates ---- */

int cuda_sgd_step(cuda_ctx *c, float *p, const float *g, float *mom, int64_t n,
                  const mltk_sgd_params *a, const float *lr_scale)
{
    ck_sgd_args k = { .lr = a->lr, .momentum = a->momentum,
                      .damp1 = (float)(1.0 - (double)a->dampening), .wd = a->weight_decay,
                      .nesterov = a->nesterov != 0, .first = a->t == 1 };
    CU_TRY("sgd_step", ck_sgd(c->stream, p, g, a->momentum != 0.0f ? mom : NULL, lr_scale, n,
                              k));
    return MLTK_OK;
}

/* beta in [0, 1) and t >= 1 were checked by the core, so the bias
 * corrections are positive */
int cuda_adam_step(cuda_ctx *c, float *p, const float *g, float *m, float *v, int64_t n,
                   const mltk_adam_params *a, const float *lr_scale)
{
    const double lr = a->lr, wd = a->weight_decay;
    double bc1 = 1.0 - pow((double)a->beta1, (double)a->t);
    double bc2 = 1.0 - pow((double)a->beta2, (double)a->t);
    ck_adam_args k = {
        .b1 = a->beta1, .b2 = a->beta2,
        .omb1 = (float)(1.0 - (double)a->beta1), .omb2 = (float)(1.0 - (double)a->beta2),
        .eps = a->eps, .wd = a->weight_decay,
        .pscale = a->decoupled ? (float)(1.0 - lr * wd) : 1.0f,
        .step = (float)(lr / bc1), .bc2s = (float)sqrt(bc2),
        .lrwd = a->decoupled ? (float)(lr * wd) : 0.0f,
        .l2 = !a->decoupled && a->weight_decay != 0.0f };
    CU_TRY("adam_step", ck_adam(c->stream, p, g, m, v, lr_scale, n, k));
    return MLTK_OK;
}
