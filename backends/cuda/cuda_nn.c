/* cuda_nn.c - the ABI 1.1 and 1.2 ops of the cuda backend other than
 * convolution and pooling: batch and layer norm, dropout, softmax,
 * strided copies, embedding, the losses beyond softmax_xent, clipping,
 * RMSprop, LAMB and the augmenting image gather.
 *
 * What this is: the cpu backend's argument checks (cpu_norm.c,
 * cpu_misc.c, cpu_optim.c), so the same calls succeed and fail on both,
 * followed by the launches of cuda_nn_kernels.cu and cuda_kernels.cu.  Per-channel
 * and per-row statistics go through the context's scratch as double
 * partial sums; the small per-channel coefficient arrays (batch norm) live
 * there too, after the partials.  Batch norm is our own kernels with 64-bit
 * indices, not cuDNN's (whose int tensor sizes would limit N C L to
 * INT_MAX), so no batch is split: the training statistics of a split
 * batch would not be the batch's.
 *
 * Ops whose data decide between success and MLTK_ERR_DATA (labels, ids)
 * run a check kernel and wait for its flag before doing the work, as
 * cuda_ops.c does.  LAMB's segment table is host memory: it is cut into
 * pieces and uploaded once, and again only when it changes.
 *
 * What this is not: the ABI 1.0 ops (cuda_ops.c) or convolution and
 * pooling (cuda_conv.c).
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

/* bytes of n doubles, rounded so that what follows stays 16-byte aligned */
static size_t dbl_bytes(int64_t n)
{
    return ((size_t)n * sizeof(double) + 15) & ~(size_t)15;
}

/* ---- batch norm ---- */

static int bn_check(const float *x, int64_t N, int64_t C, int64_t L)
{
    if (N < 0 || C < 0 || L < 0)
        return MLTK_ERR_INVALID;
    if (N > 0 && C > 0 && L > 0 && (N > INT64_MAX / C || N * C > INT64_MAX / L || !x))
        return MLTK_ERR_INVALID;
    return MLTK_OK;
}

/* scratch for per-channel partials of (N, C, L) and `coefs` float arrays
 * of C: *part, then *coef */
static int bn_scratch(cuda_ctx *c, int64_t N, int64_t C, int64_t L, int coefs,
                      double **part, float **coef, const char *op)
{
    int64_t chunks = ck_chan_chunks(N, L);
    size_t pb = dbl_bytes(chunks * C * 2);
    void *s;
    int rc = cuda_scratch(c, pb + (size_t)(coefs * C) * sizeof(float), &s, op);
    if (rc)
        return rc;
    *part = s;
    *coef = (float *)((char *)s + pb);
    return MLTK_OK;
}

int cuda_batchnorm_forward_train(void *ctx, float *y, const float *x, const float *gamma,
                                 const float *beta, float *save_mean, float *save_invstd,
                                 float *running_mean, float *running_var, int64_t N,
                                 int64_t C, int64_t L, float momentum, float eps)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c);
    int rc = bn_check(x, N, C, L);
    if (rc)
        return rc;
    if (N == 0 || C == 0 || L == 0)
        return MLTK_OK;
    if (N * L < 2 || !y || !save_mean || !save_invstd || !(eps >= 0.0f))
        return MLTK_ERR_INVALID;
    double *part;
    float *coef;
    rc = bn_scratch(c, N, C, L, 3, &part, &coef, "batchnorm_forward_train");
    if (rc)
        return rc;
    const char *op = "batchnorm_forward_train";
    CU_TRY(op, ck_chan_sums(c->stream, CK_CHAN_SHIFTED, part, x, NULL, NULL, N, C, L));
    CU_TRY(op, ck_bn_finish(c->stream, coef, save_mean, save_invstd,
                            running_mean && running_var ? running_mean : NULL,
                            running_mean && running_var ? running_var : NULL, part,
                            ck_chan_chunks(N, L), x, gamma, beta, N, C, L, momentum, eps));
    CU_TRY(op, ck_chan_affine(c->stream, y, x, coef, N, C, L));
    return MLTK_OK;
}

int cuda_batchnorm_forward_eval(void *ctx, float *y, const float *x, const float *gamma,
                                const float *beta, const float *running_mean,
                                const float *running_var, int64_t N, int64_t C, int64_t L,
                                float eps)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c);
    int rc = bn_check(x, N, C, L);
    if (rc)
        return rc;
    if (N == 0 || C == 0 || L == 0)
        return MLTK_OK;
    if (!y || !running_mean || !running_var || !(eps >= 0.0f))
        return MLTK_ERR_INVALID;
    void *s;
    rc = cuda_scratch(c, (size_t)(3 * C) * sizeof(float), &s, "batchnorm_forward_eval");
    if (rc)
        return rc;
    float *coef = s;
    const char *op = "batchnorm_forward_eval";
    CU_TRY(op, ck_bn_eval_coef(c->stream, coef, gamma, beta, running_mean, running_var, C,
                               eps));
    CU_TRY(op, ck_chan_affine(c->stream, y, x, coef, N, C, L));
    return MLTK_OK;
}

int cuda_batchnorm_backward(void *ctx, float *dx, float *dgamma, float *dbeta,
                            const float *dy, const float *x, const float *gamma,
                            const float *save_mean, const float *save_invstd, int64_t N,
                            int64_t C, int64_t L)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c);
    int rc = bn_check(x, N, C, L);
    if (rc)
        return rc;
    const char *op = "batchnorm_backward";
    if (C > 0 && (N == 0 || L == 0)) {
        /* no values: the parameter gradients are zero */
        if (dgamma)
            CU_TRY(op, ck_fill(c->stream, dgamma, 0.0f, C));
        if (dbeta)
            CU_TRY(op, ck_fill(c->stream, dbeta, 0.0f, C));
        return MLTK_OK;
    }
    if (C == 0)
        return MLTK_OK;
    if (!dy || !save_mean || !save_invstd)
        return MLTK_ERR_INVALID;
    double *part;
    float *coef;
    rc = bn_scratch(c, N, C, L, 4, &part, &coef, op);
    if (rc)
        return rc;
    CU_TRY(op, ck_chan_sums(c->stream, CK_CHAN_GRAD, part, dy, x, save_mean, N, C, L));
    CU_TRY(op, ck_bn_grad_finish(c->stream, coef, dgamma, dbeta, part, ck_chan_chunks(N, L),
                                 gamma, save_mean, save_invstd, N, C, L));
    if (dx)
        CU_TRY(op, ck_bn_dx(c->stream, dx, dy, x, coef, N, C, L));
    return MLTK_OK;
}

/* ---- layer norm ---- */

int cuda_layernorm_forward(void *ctx, float *y, const float *x, const float *gamma,
                           const float *beta, float *mean, float *rstd, int64_t rows,
                           int64_t cols, float eps)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(rows); CHECK_N(cols);
    if (rows == 0)
        return MLTK_OK;
    if (cols == 0 || rows > INT64_MAX / cols || !x || !y || !mean || !rstd
        || !(eps >= 0.0f))
        return MLTK_ERR_INVALID;
    CU_TRY("layernorm_forward",
           ck_ln_forward(c->stream, y, x, gamma, beta, mean, rstd, rows, cols, eps));
    return MLTK_OK;
}

int cuda_layernorm_backward(void *ctx, float *dx, float *dgamma, float *dbeta,
                            const float *dy, const float *x, const float *gamma,
                            const float *mean, const float *rstd, int64_t rows,
                            int64_t cols)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(rows); CHECK_N(cols);
    if (cols == 0)
        return rows == 0 ? MLTK_OK : MLTK_ERR_INVALID;
    if (rows > 0 && (rows > INT64_MAX / cols || !x || !dy || !mean || !rstd))
        return MLTK_ERR_INVALID;
    const char *op = "layernorm_backward";
    if (dx && rows > 0)
        CU_TRY(op, ck_ln_backward_dx(c->stream, dx, dy, x, gamma, mean, rstd, rows, cols));
    if (dgamma || dbeta) {
        void *part;
        int rc = cuda_scratch(c, dbl_bytes(ck_row_chunks(rows) * cols * 2), &part, op);
        if (rc)
            return rc;
        CU_TRY(op, ck_ln_backward_params(c->stream, dgamma, dbeta, dy, x, mean, rstd, rows,
                                         cols, part));
    }
    return MLTK_OK;
}

/* ---- dropout and softmax ---- */

int cuda_dropout_forward(void *ctx, float *y, float *mask, const float *x, int64_t n,
                         float p, uint64_t seed, uint64_t offset)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(n); CHECK_PTR(y, n); CHECK_PTR(mask, n); CHECK_PTR(x, n);
    if (!(p >= 0.0f && p < 1.0f))
        return MLTK_ERR_INVALID;
    if (n == 0)
        return MLTK_OK;
    CU_TRY("dropout_forward", ck_dropout(c->stream, y, mask, x, n, p, 1.0f / (1.0f - p), seed,
                                         offset));
    return MLTK_OK;
}

static int sm_check(const void *a, const void *b, const void *cc, int64_t rows, int64_t cols)
{
    if (rows < 0 || cols < 0)
        return MLTK_ERR_INVALID;
    if (rows == 0 || cols == 0)
        return MLTK_OK;
    if (rows > INT64_MAX / cols || !a || !b || !cc)
        return MLTK_ERR_INVALID;
    return MLTK_OK;
}

int cuda_softmax_forward(void *ctx, float *y, const float *x, int64_t rows, int64_t cols)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c);
    int rc = sm_check(y, x, x, rows, cols);
    if (rc || rows == 0 || cols == 0)
        return rc;
    CU_TRY("softmax_forward", ck_softmax_forward(c->stream, y, x, rows, cols));
    return MLTK_OK;
}

int cuda_softmax_backward(void *ctx, float *dx, const float *dy, const float *y,
                          int64_t rows, int64_t cols)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c);
    int rc = sm_check(dx, dy, y, rows, cols);
    if (rc || rows == 0 || cols == 0)
        return rc;
    CU_TRY("softmax_backward", ck_softmax_backward(c->stream, dx, dy, y, rows, cols));
    return MLTK_OK;
}

/* ---- copy_2d ---- */

int cuda_copy_2d(void *ctx, float *dst, int64_t dst_ld, const float *src, int64_t src_ld,
                 int64_t rows, int64_t cols, int accumulate)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(rows); CHECK_N(cols);
    if (rows == 0 || cols == 0)
        return MLTK_OK;
    if (!dst || !src)
        return MLTK_ERR_INVALID;
    if (rows > 1 && (dst_ld < cols || src_ld < cols))
        return MLTK_ERR_INVALID;
    if (rows > INT64_MAX / cols)
        return MLTK_ERR_INVALID;
    if (accumulate) {
        CU_TRY("copy_2d", ck_add_2d(c->stream, dst, dst_ld, src, src_ld, rows, cols));
    } else if (rows == 1) {
        CU_TRY("copy_2d", cudaMemcpyAsync(dst, src, (size_t)cols * sizeof(float),
                                          cudaMemcpyDeviceToDevice, c->stream));
    } else {
        CU_TRY("copy_2d", cudaMemcpy2DAsync(dst, (size_t)dst_ld * sizeof(float), src,
                                            (size_t)src_ld * sizeof(float),
                                            (size_t)cols * sizeof(float), (size_t)rows,
                                            cudaMemcpyDeviceToDevice, c->stream));
    }
    return MLTK_OK;
}

/* ---- embedding ---- */

/* MLTK_ERR_DATA unless every id is an integer in [0, vocab) */
static int check_ids(cuda_ctx *c, const float *ids, int64_t n, int64_t vocab, const char *op)
{
    int rc = cuda_flag_clear(c, op);
    if (rc)
        return rc;
    CU_TRY(op, ck_check_ids(c->stream, c->dflag, ids, n, vocab));
    int bad = 0;
    rc = cuda_flag_read(c, op, &bad);
    return rc ? rc : bad ? MLTK_ERR_DATA : MLTK_OK;
}

int cuda_embedding_forward(void *ctx, float *y, const float *table, const float *ids,
                           int64_t n, int64_t dim, int64_t vocab)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(n); CHECK_N(dim); CHECK_N(vocab);
    if (n == 0 || dim == 0)
        return MLTK_OK;
    if (!y || !table || !ids)
        return MLTK_ERR_INVALID;
    if (n > INT64_MAX / dim || vocab > INT64_MAX / dim)
        return MLTK_ERR_INVALID;
    int rc = check_ids(c, ids, n, vocab, "embedding_forward");
    if (rc)
        return rc;
    CU_TRY("embedding_forward", ck_embedding_forward(c->stream, y, table, ids, n, dim));
    return MLTK_OK;
}

int cuda_embedding_backward(void *ctx, float *dtable, const float *dy, const float *ids,
                            int64_t n, int64_t dim, int64_t vocab)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(n); CHECK_N(dim); CHECK_N(vocab);
    if (dim == 0 || vocab == 0)
        return n > 0 && vocab == 0 ? MLTK_ERR_DATA : MLTK_OK;
    if (!dtable || (n > 0 && (!dy || !ids)))
        return MLTK_ERR_INVALID;
    if (n > INT64_MAX / dim || vocab > INT64_MAX / dim)
        return MLTK_ERR_INVALID;
    const char *op = "embedding_backward";
    if (n > 0) {
        int rc = check_ids(c, ids, n, vocab, op);
        if (rc)
            return rc;
    }
    CU_TRY(op, cudaMemsetAsync(dtable, 0, (size_t)(vocab * dim) * sizeof(float), c->stream));
    CU_TRY(op, ck_embedding_backward(c->stream, dtable, dy, ids, n, dim, vocab));
    return MLTK_OK;
}

/* ---- losses ---- */

int cuda_softmax_xent_ex(void *ctx, float *loss, float *dlogits, const float *logits,
                         const int32_t *labels, const float *weights, int64_t N, int64_t C,
                         float label_smoothing, float grad_scale)
{
    cuda_ctx *c = ctx;
    const char *op = "softmax_xent_ex";
    CU_ENTER(c); CHECK_N(N); CHECK_N(C);
    if (!loss || (N > 0 && (!logits || !labels)))
        return MLTK_ERR_INVALID;
    if (!(label_smoothing >= 0.0f && label_smoothing <= 1.0f))
        return MLTK_ERR_INVALID;
    if (N == 0) {
        CU_TRY(op, ck_fill(c->stream, loss, 0.0f, 1));
        return MLTK_OK;
    }
    if (C == 0 || N > INT64_MAX / C)
        return C == 0 ? MLTK_ERR_DATA : MLTK_ERR_INVALID;
    int rc = cuda_flag_clear(c, op);
    if (rc)
        return rc;
    CU_TRY(op, ck_check_labels(c->stream, c->dflag, labels, N, C));
    int bad = 0;
    rc = cuda_flag_read(c, op, &bad);
    if (rc)
        return rc;
    if (bad)
        return MLTK_ERR_DATA;
    /* scratch: W and the sum of the class weights, then the row losses */
    void *s;
    rc = cuda_scratch(c, dbl_bytes(2) + dbl_bytes(N), &s, op);
    if (rc)
        return rc;
    double *wsum = s, *rows = (double *)((char *)s + dbl_bytes(2));
    CU_TRY(op, ck_xent_weights(c->stream, wsum, labels, weights, N, C));
    CU_TRY(op, ck_softmax_xent_ex(c->stream, rows, dlogits, logits, labels, weights, wsum, N,
                                  C, (double)label_smoothing, (double)grad_scale));
    CU_TRY(op, ck_finish_sum(c->stream, loss, rows, N, 1.0, 1.0, wsum));
    return MLTK_OK;
}

int cuda_pointwise_loss(void *ctx, int kind, float *loss, float *dpred, const float *pred,
                        const float *target, int64_t n, float grad_scale)
{
    cuda_ctx *c = ctx;
    const char *op = "pointwise_loss";
    CU_ENTER(c); CHECK_N(n);
    if (kind != 0 && kind != 1 && kind != 2)
        return MLTK_ERR_INVALID;
    if (!loss || (n > 0 && (!pred || !target)))
        return MLTK_ERR_INVALID;
    if (n == 0) {
        CU_TRY(op, ck_fill(c->stream, loss, 0.0f, 1));
        return MLTK_OK;
    }
    void *part;
    int rc = cuda_scratch(c, dbl_bytes(ck_reduce_parts(n)), &part, op);
    if (rc)
        return rc;
    CU_TRY(op, ck_pointwise(c->stream, kind, part, dpred, pred, target, n,
                            (double)grad_scale / (double)n));
    CU_TRY(op, ck_finish_sum(c->stream, loss, part, ck_reduce_parts(n), 1.0, (double)n, NULL));
    return MLTK_OK;
}

int cuda_kl_div_logits(void *ctx, float *loss, float *dstudent, const float *student,
                       const float *teacher, int64_t N, int64_t C, float T,
                       float grad_scale)
{
    cuda_ctx *c = ctx;
    const char *op = "kl_div_logits";
    CU_ENTER(c); CHECK_N(N); CHECK_N(C);
    if (!loss || (N > 0 && (!student || !teacher)))
        return MLTK_ERR_INVALID;
    if (!(T > 0.0f) || isinf(T))
        return MLTK_ERR_INVALID;
    if (N == 0) {
        CU_TRY(op, ck_fill(c->stream, loss, 0.0f, 1));
        return MLTK_OK;
    }
    if (C == 0 || N > INT64_MAX / C)
        return C == 0 ? MLTK_ERR_DATA : MLTK_ERR_INVALID;
    void *rows;
    int rc = cuda_scratch(c, dbl_bytes(N), &rows, op);
    if (rc)
        return rc;
    const double Td = (double)T;
    CU_TRY(op, ck_kl_div(c->stream, rows, dstudent, student, teacher, N, C, 1.0 / Td,
                         (double)grad_scale * Td / (double)N));
    CU_TRY(op, ck_finish_sum(c->stream, loss, rows, N, Td * Td, (double)N, NULL));
    return MLTK_OK;
}

/* ---- clipping ---- */

int cuda_scale_to_norm(void *ctx, float *x, int64_t n, const float *sumsq, float max_norm)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(n); CHECK_PTR(x, n);
    if (!sumsq || !(max_norm >= 0.0f))
        return MLTK_ERR_INVALID;
    CU_TRY("scale_to_norm", ck_scale_to_norm(c->stream, x, n, sumsq, max_norm));
    return MLTK_OK;
}

int cuda_clamp(void *ctx, float *x, int64_t n, float lo, float hi)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(n); CHECK_PTR(x, n);
    if (!(lo <= hi))
        return MLTK_ERR_INVALID;
    CU_TRY("clamp", ck_clamp(c->stream, x, n, lo, hi));
    return MLTK_OK;
}

/* ---- RMSprop ---- */

int cuda_rmsprop_step(void *ctx, float *p, const float *g, float *sq, float *mom,
                      float *gavg, int64_t n, float lr, float alpha, float eps,
                      float weight_decay, float momentum, int centered,
                      const float *lr_scale)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c); CHECK_N(n); CHECK_PTR(p, n); CHECK_PTR(g, n); CHECK_PTR(sq, n);
    if (momentum > 0.0f)
        CHECK_PTR(mom, n);
    if (centered)
        CHECK_PTR(gavg, n);
    if (n == 0)
        return MLTK_OK;
    ck_rms_args a = { .lr = lr, .alpha = alpha, .oma = (float)(1.0 - (double)alpha),
                      .eps = eps, .wd = weight_decay, .mu = momentum };
    CU_TRY("rmsprop_step", ck_rmsprop(c->stream, p, g, sq, momentum > 0.0f ? mom : NULL,
                                      centered ? gavg : NULL, lr_scale, n, a));
    return MLTK_OK;
}

/* ---- LAMB ---- */

void cuda_lamb_free(cuda_ctx *c)
{
    /* the device table is an allocator block: cuda_mem_free it while the
     * cache still exists */
    if (c->lamb_dev)
        (void)cuda_mem_free(c, c->lamb_dev);  /* a failure is logged there */
    free(c->lamb_seg);
    c->lamb_dev = NULL;
    c->lamb_seg = NULL;
    c->lamb_n_seg = 0;
    c->lamb_pieces = 0;
}

/* Cut the segments into pieces of at most CK_LAMB_PIECE elements and
 * upload the pieces and each segment's first piece, unless seg_off is the
 * table already uploaded. */
static int lamb_pieces(cuda_ctx *c, const int64_t *seg_off, int n_seg)
{
    if (c->lamb_dev && c->lamb_n_seg == n_seg
        && memcmp(c->lamb_seg, seg_off, (size_t)(n_seg + 1) * sizeof(int64_t)) == 0)
        return MLTK_OK;
    cuda_lamb_free(c);
    int64_t np = 0;
    for (int s = 0; s < n_seg; s++)
        np += (seg_off[s + 1] - seg_off[s] + CK_LAMB_PIECE - 1) / CK_LAMB_PIECE;
    size_t pb = (size_t)np * sizeof(ck_piece);
    size_t bytes = pb + (size_t)(n_seg + 1) * sizeof(int64_t);
    unsigned char *host = malloc(bytes);
    int64_t *seg = malloc((size_t)(n_seg + 1) * sizeof(int64_t));
    if (!host || !seg) {
        free(host);
        free(seg);
        return MLTK_ERR_NOMEM;
    }
    ck_piece *pc = (ck_piece *)host;
    int64_t *first = (int64_t *)(host + pb);
    int64_t k = 0;
    for (int s = 0; s < n_seg; s++) {
        first[s] = k;
        for (int64_t lo = seg_off[s]; lo < seg_off[s + 1]; lo += CK_LAMB_PIECE) {
            pc[k].lo = lo;
            pc[k].hi = lo + CK_LAMB_PIECE < seg_off[s + 1] ? lo + CK_LAMB_PIECE
                                                           : seg_off[s + 1];
            pc[k].seg = s;
            k++;
        }
    }
    first[n_seg] = k;
    memcpy(seg, seg_off, (size_t)(n_seg + 1) * sizeof(int64_t));
    void *dev = NULL;
    int rc = cuda_mem_alloc(c, bytes, &dev);
    if (!rc)
        rc = cuda_mem_upload(c, dev, host, bytes);
    free(host);
    if (rc) {
        (void)cuda_mem_free(c, dev);  /* rc is the first failure */
        free(seg);
        return rc;
    }
    c->lamb_dev = dev;
    c->lamb_seg = seg;
    c->lamb_n_seg = n_seg;
    c->lamb_pieces = np;
    return MLTK_OK;
}

int cuda_lamb_step(void *ctx, float *p, const float *g, float *m, float *v, int64_t n,
                   float lr, float beta1, float beta2, float eps, float weight_decay,
                   int64_t t, const int64_t *seg_off, int n_seg, float *scratch,
                   const float *lr_scale)
{
    cuda_ctx *c = ctx;
    const char *op = "lamb_step";
    CU_ENTER(c); CHECK_N(n); CHECK_PTR(p, n); CHECK_PTR(g, n);
    CHECK_PTR(m, n); CHECK_PTR(v, n);
    if (t < 1 || n_seg < 1 || !seg_off || !scratch)
        return MLTK_ERR_INVALID;
    if (seg_off[0] != 0 || seg_off[n_seg] != n)
        return MLTK_ERR_INVALID;
    for (int s = 0; s < n_seg; s++)
        if (seg_off[s + 1] < seg_off[s])
            return MLTK_ERR_INVALID;
    double bc1 = 1.0 - pow((double)beta1, (double)t);
    double bc2 = 1.0 - pow((double)beta2, (double)t);
    if (!(bc1 > 0.0) || !(bc2 > 0.0))
        return MLTK_ERR_INVALID;  /* beta outside [0, 1) */
    if (n == 0) {
        /* every segment is empty: no norms */
        CU_TRY(op, ck_fill(c->stream, scratch, 0.0f, 2 * (int64_t)n_seg));
        return MLTK_OK;
    }
    int rc = lamb_pieces(c, seg_off, n_seg);
    if (rc)
        return rc;
    const ck_piece *pieces = c->lamb_dev;
    const int64_t *first = (const int64_t *)((const char *)c->lamb_dev
                                             + (size_t)c->lamb_pieces * sizeof(ck_piece));
    void *part;
    rc = cuda_scratch(c, dbl_bytes(2 * c->lamb_pieces), &part, op);
    if (rc)
        return rc;
    ck_lamb_args a = {
        .b1 = beta1, .b2 = beta2,
        .omb1 = (float)(1.0 - (double)beta1), .omb2 = (float)(1.0 - (double)beta2),
        .ibc1 = (float)(1.0 / bc1), .ibc2s = (float)(1.0 / sqrt(bc2)), .eps = eps,
        .wd = weight_decay, .lr = lr };
    CU_TRY(op, ck_lamb_moments(c->stream, p, g, m, v, pieces, c->lamb_pieces, a, part));
    CU_TRY(op, ck_lamb_norms(c->stream, scratch, part, first, n_seg));
    CU_TRY(op, ck_lamb_apply(c->stream, p, m, v, lr_scale, pieces, c->lamb_pieces, scratch,
                             a));
    return MLTK_OK;
}

/* ---- gather_augment_2d ---- */

int cuda_gather_augment_2d(void *ctx, float *y, const float *x, const int32_t *idx,
                           int64_t rows, int64_t C, int64_t H, int64_t W, int64_t pad,
                           int flip, uint64_t seed, uint64_t offset)
{
    cuda_ctx *c = ctx;
    const char *op = "gather_augment_2d";
    CU_ENTER(c); CHECK_N(rows); CHECK_N(C); CHECK_N(H); CHECK_N(W); CHECK_N(pad);
    if (rows == 0 || C == 0 || H == 0 || W == 0)
        return MLTK_OK;
    if (!y || !x || !idx || C > INT64_MAX / H / W)
        return MLTK_ERR_INVALID;
    if (pad > INT32_MAX / 2 - 1)
        return MLTK_ERR_INVALID;
    int rc = cuda_flag_clear(c, op);
    if (rc)
        return rc;
    CU_TRY(op, ck_check_index(c->stream, c->dflag, idx, rows));
    int bad = 0;
    rc = cuda_flag_read(c, op, &bad);
    if (rc)
        return rc;
    if (bad)
        return MLTK_ERR_INVALID;
    void *prm;
    rc = cuda_scratch(c, (size_t)(3 * rows) * sizeof(int), &prm, op);
    if (rc)
        return rc;
    CU_TRY(op, ck_augment_params(c->stream, prm, rows, pad, flip != 0, seed, offset));
    CU_TRY(op, ck_augment_gather(c->stream, y, x, idx, prm, rows, C, H, W));
    return MLTK_OK;
}
