/* cuda_ops.c - the ABI 1.0 ops of the cuda backend: elementwise,
 * activations, gemm, bias epilogue, reductions, softmax cross-entropy and
 * accuracy, row gathers, random numbers, SGD and Adam.
 *
 * What this is: argument checks identical to the cpu backend's (the same
 * calls succeed and fail on both), then one or two kernel launches on the
 * context's stream, or one cuBLAS call for gemm.  gemm is row-major over
 * column-major cuBLAS: C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T,
 * which is cublasSgemm with the operands swapped and the same leading
 * dimensions.  Reductions write per-block partial sums in double to the
 * context's scratch and one block adds them in a fixed order.
 *
 * Checks that need the data (labels in range, indices not negative) run
 * as a kernel raising the context's flag, which is read back before the
 * op itself is queued: such an op waits for the stream once.
 *
 * What this is not: the 1.1 and 1.2 ops (cuda_conv.c, cuda_nn.c).
 */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#include "cuda_internal.h"

/* ---- elementwise ---- */

static int act_valid(mltk_act act)
{
    return (int)act >= MLTK_ACT_NONE && (int)act <= MLTK_ACT_GELU;
}

int cuda_fill(void *ctx, float *x, float v, int64_t n)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(n); CHECK_PTR(x, n);
    CU_TRY("fill", ck_fill(c->stream, x, v, n));
    return MLTK_OK;
}

int cuda_axpby(void *ctx, float *y, float a, const float *x, float b, int64_t n)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(n); CHECK_PTR(y, n); CHECK_PTR(x, n);
    CU_TRY("axpby", ck_axpby(c->stream, y, a, x, b, n));
    return MLTK_OK;
}

int cuda_mul(void *ctx, float *z, const float *x, const float *y, int64_t n)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(n); CHECK_PTR(z, n); CHECK_PTR(x, n); CHECK_PTR(y, n);
    CU_TRY("mul", ck_mul(c->stream, z, x, y, n));
    return MLTK_OK;
}

int cuda_act_forward(void *ctx, mltk_act act, float alpha, float *y, const float *x,
                     int64_t n)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(n); CHECK_PTR(y, n); CHECK_PTR(x, n);
    if (!act_valid(act))
        return MLTK_ERR_INVALID;
    CU_TRY("act_forward", ck_act_forward(c->stream, act, alpha, y, x, n));
    return MLTK_OK;
}

/* The derivative's source, as the cpu backend picks it: relu, sigmoid and
 * tanh prefer the output, leaky relu the input, elu the output when
 * alpha >= 0, gelu always the input. */
int cuda_act_backward(void *ctx, mltk_act act, float alpha, float *dx, const float *dy,
                      const float *x, const float *y, int64_t n)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(n); CHECK_PTR(dx, n); CHECK_PTR(dy, n);
    if (!act_valid(act))
        return MLTK_ERR_INVALID;
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
    CHECK_PTR(s, n);
    if (act == MLTK_ACT_NONE && dx == dy)
        return MLTK_OK;
    CU_TRY("act_backward", ck_act_backward(c->stream, act, alpha, dx, dy, s, s_is_y, n));
    return MLTK_OK;
}

/* ---- linear algebra ---- */

int cuda_gemm(void *ctx, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
              float *C, int64_t ldc)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c);
    if (M < 0 || N < 0 || K < 0 || M > INT_MAX || N > INT_MAX || K > INT_MAX)
        return MLTK_ERR_INVALID;
    int64_t a_cols = ta ? M : K, b_cols = tb ? K : N;
    if (lda < (a_cols > 1 ? a_cols : 1) || ldb < (b_cols > 1 ? b_cols : 1)
        || ldc < (N > 1 ? N : 1) || lda > INT_MAX || ldb > INT_MAX || ldc > INT_MAX)
        return MLTK_ERR_INVALID;
    if (M == 0 || N == 0)
        return MLTK_OK;
    if (!C || (K > 0 && (!A || !B)))
        return MLTK_ERR_INVALID;
    if (K == 0 || alpha == 0.0f) {
        /* C = beta C, without reading C when beta == 0 */
        if (beta != 1.0f)
            CU_TRY("gemm: scaling C", ck_scale_2d(c->stream, C, ldc, M, N, beta));
        return MLTK_OK;
    }
    /* row-major C (M,N) = op(A) op(B)  <=>  column-major C^T (N,M) = op(B)^T op(A)^T */
    BLAS_TRY("gemm: cublasSgemm",
             cublasSgemm(c->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                         (int)N, (int)M, (int)K, &alpha, B, (int)ldb, A, (int)lda, &beta, C,
                         (int)ldc));
    return MLTK_OK;
}

int cuda_bias_act(void *ctx, float *y, const float *b, int64_t rows, int64_t cols,
                  mltk_act act, float alpha)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(rows); CHECK_N(cols);
    if (!act_valid(act))
        return MLTK_ERR_INVALID;
    if (rows == 0 || cols == 0)
        return MLTK_OK;
    if (!y || (rows > INT64_MAX / cols))
        return MLTK_ERR_INVALID;
    if (!b)
        return cuda_act_forward(ctx, act, alpha, y, y, rows * cols);
    CU_TRY("bias_act", ck_bias_act(c->stream, y, b, rows, cols, act, alpha));
    return MLTK_OK;
}

int cuda_sum_rows(void *ctx, float *out, const float *x, int64_t rows, int64_t cols,
                  float beta)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(rows); CHECK_N(cols); CHECK_PTR(out, cols);
    if (cols == 0)
        return MLTK_OK;
    if (rows > 0 && !x)
        return MLTK_ERR_INVALID;
    if (rows > INT64_MAX / cols)
        return MLTK_ERR_INVALID;
    void *part;
    int rc = cuda_scratch(c, (size_t)(ck_row_chunks(rows) * cols) * sizeof(double), &part,
                          "sum_rows");
    if (rc)
        return rc;
    CU_TRY("sum_rows", ck_sum_rows(c->stream, out, x, rows, cols, beta, part));
    return MLTK_OK;
}

/* ---- reductions ---- */

static int reduce(cuda_ctx *c, float *out, const float *x, int64_t n, int squares,
                  const char *op)
{
    CU_ENTER(c); CHECK_N(n); CHECK_PTR(x, n);
    if (!out)
        return MLTK_ERR_INVALID;
    if (n == 0) {
        CU_TRY(op, ck_fill(c->stream, out, 0.0f, 1));
        return MLTK_OK;
    }
    void *part;
    int rc = cuda_scratch(c, (size_t)ck_reduce_parts(n) * sizeof(double), &part, op);
    if (rc)
        return rc;
    CU_TRY(op, ck_sum(c->stream, out, x, n, squares, part));
    return MLTK_OK;
}

int cuda_sum(void *ctx, float *out, const float *x, int64_t n)
{
    return reduce(ctx, out, x, n, 0, "sum");
}

int cuda_sumsq(void *ctx, float *out, const float *x, int64_t n)
{
    return reduce(ctx, out, x, n, 1, "sumsq");
}

/* ---- losses and metrics ---- */

/* MLTK_ERR_DATA when a label lies outside [0, C) (waits for the stream) */
static int check_labels(cuda_ctx *c, const int32_t *labels, int64_t N, int64_t C,
                        const char *op)
{
    int rc = cuda_flag_clear(c, op);
    if (rc)
        return rc;
    CU_TRY(op, ck_check_labels(c->stream, c->dflag, labels, N, C));
    int bad = 0;
    rc = cuda_flag_read(c, op, &bad);
    return rc ? rc : bad ? MLTK_ERR_DATA : MLTK_OK;
}

int cuda_softmax_xent(void *ctx, float *loss, float *dlogits, const float *logits,
                      const int32_t *labels, int64_t N, int64_t C, float grad_scale)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(N); CHECK_N(C);
    if (!loss || (N > 0 && (!logits || !labels)))
        return MLTK_ERR_INVALID;
    if (N == 0) {
        CU_TRY("softmax_xent", ck_fill(c->stream, loss, 0.0f, 1));
        return MLTK_OK;
    }
    if (C == 0 || N > INT64_MAX / C)
        return C == 0 ? MLTK_ERR_DATA : MLTK_ERR_INVALID;
    int rc = check_labels(c, labels, N, C, "softmax_xent");
    if (rc)
        return rc;
    void *rows;
    rc = cuda_scratch(c, (size_t)N * sizeof(double), &rows, "softmax_xent");
    if (rc)
        return rc;
    float scale = (float)((double)grad_scale / (double)N);
    CU_TRY("softmax_xent", ck_softmax_xent(c->stream, rows, dlogits, logits, labels, N, C,
                                           scale));
    CU_TRY("softmax_xent", ck_finish_sum(c->stream, loss, rows, N, 1.0, (double)N, NULL));
    return MLTK_OK;
}

int cuda_count_correct(void *ctx, float *correct, const float *logits,
                       const int32_t *labels, int64_t N, int64_t C)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(N); CHECK_N(C);
    if (!correct || (N > 0 && (!logits || !labels)))
        return MLTK_ERR_INVALID;
    if (N == 0) {
        CU_TRY("count_correct", ck_fill(c->stream, correct, 0.0f, 1));
        return MLTK_OK;
    }
    if (C == 0 || N > INT64_MAX / C)
        return MLTK_ERR_INVALID;
    void *rows;
    int rc = cuda_scratch(c, (size_t)N * sizeof(double), &rows, "count_correct");
    if (rc)
        return rc;
    CU_TRY("count_correct", ck_count_correct(c->stream, rows, logits, labels, N, C));
    CU_TRY("count_correct", ck_finish_sum(c->stream, correct, rows, N, 1.0, 1.0, NULL));
    return MLTK_OK;
}

/* ---- data movement ---- */

int cuda_gather_rows(void *ctx, void *dst, const void *src, const int32_t *idx, int64_t n,
                     size_t row_bytes)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(n);
    if (n == 0 || row_bytes == 0)
        return MLTK_OK;
    if (!dst || !src || !idx)
        return MLTK_ERR_INVALID;
    if (row_bytes > (size_t)INT64_MAX)
        return MLTK_ERR_INVALID;
    /* negative indices are refused; the upper bound (rows of src) is not
     * known here and is the caller's to keep */
    int rc = cuda_flag_clear(c, "gather_rows");
    if (rc)
        return rc;
    CU_TRY("gather_rows", ck_check_index(c->stream, c->dflag, idx, n));
    int bad = 0;
    rc = cuda_flag_read(c, "gather_rows", &bad);
    if (rc)
        return rc;
    if (bad)
        return MLTK_ERR_INVALID;
    CU_TRY("gather_rows", ck_gather_rows(c->stream, dst, src, idx, n, row_bytes));
    return MLTK_OK;
}

/* ---- random numbers ---- */

int cuda_rng_uniform(void *ctx, float *x, int64_t n, float lo, float hi, uint64_t seed,
                     uint64_t offset)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(n); CHECK_PTR(x, n);
    CU_TRY("rng_uniform", ck_rng_uniform(c->stream, x, n, lo, hi, seed, offset));
    return MLTK_OK;
}

int cuda_rng_normal(void *ctx, float *x, int64_t n, float mean, float std, uint64_t seed,
                    uint64_t offset)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(n); CHECK_PTR(x, n);
    CU_TRY("rng_normal", ck_rng_normal(c->stream, x, n, mean, std, seed, offset));
    return MLTK_OK;
}

/* ---- optimizer updates ---- */

int cuda_sgd_step(void *ctx, float *p, const float *g, float *mom, int64_t n, float lr,
                  float momentum, float dampening, float weight_decay, int nesterov,
                  int64_t t, const float *lr_scale)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(n); CHECK_PTR(p, n); CHECK_PTR(g, n);
    if (momentum != 0.0f)
        CHECK_PTR(mom, n);
    if (t < 1)
        return MLTK_ERR_INVALID;
    ck_sgd_args a = { .lr = lr, .momentum = momentum,
                      .damp1 = (float)(1.0 - (double)dampening), .wd = weight_decay,
                      .nesterov = nesterov != 0, .first = t == 1 };
    CU_TRY("sgd_step", ck_sgd(c->stream, p, g, momentum != 0.0f ? mom : NULL, lr_scale, n, a));
    return MLTK_OK;
}

int cuda_adam_step(void *ctx, float *p, const float *g, float *m, float *v, int64_t n,
                   float lr, float beta1, float beta2, float eps, float weight_decay,
                   int decoupled, int64_t t, const float *lr_scale)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(n); CHECK_PTR(p, n); CHECK_PTR(g, n);
    CHECK_PTR(m, n); CHECK_PTR(v, n);
    if (t < 1)
        return MLTK_ERR_INVALID;
    double bc1 = 1.0 - pow((double)beta1, (double)t);
    double bc2 = 1.0 - pow((double)beta2, (double)t);
    if (!(bc1 > 0.0) || !(bc2 > 0.0))
        return MLTK_ERR_INVALID;  /* beta outside [0, 1) */
    ck_adam_args a = {
        .b1 = beta1, .b2 = beta2,
        .omb1 = (float)(1.0 - (double)beta1), .omb2 = (float)(1.0 - (double)beta2),
        .eps = eps, .wd = weight_decay,
        .pscale = decoupled ? (float)(1.0 - (double)lr * (double)weight_decay) : 1.0f,
        .step = (float)((double)lr / bc1), .bc2s = (float)sqrt(bc2),
        .lrwd = decoupled ? (float)((double)lr * (double)weight_decay) : 0.0f,
        .l2 = !decoupled && weight_decay != 0.0f };
    CU_TRY("adam_step", ck_adam(c->stream, p, g, m, v, lr_scale, n, a));
    return MLTK_OK;
}
