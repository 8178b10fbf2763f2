/* cuda_nn.c - the modelling ops of the cuda backend other than
 * convolution and pooling: batch and layer norm, dropout, softmax,
 * strided copies, embedding, the pointwise and distillation losses,
 * RMSprop, LAMB and the augmenting image gather.
 *
 * What this is: the computation of calls the core has checked
 * (core/op.c): the launches of cuda_nn_kernels.cu and cuda_kernels.cu.
 * Per-channel and per-row statistics go through the context's scratch as
 * double partial sums; the small per-channel coefficient arrays (batch
 * norm) live there too, after the partials.  Batch norm is our own kernels
 * with 64-bit indices, not cuDNN's (whose int tensor sizes would limit N C
 * L to INT_MAX), so no batch is split: the training statistics of a split
 * batch would not be the batch's.  Everything is f32 except copy_2d, which
 * also moves bf16 and f16.
 *
 * Nothing here waits for the device.  Embedding ids and gather indices
 * are data in device memory the core cannot check: the kernels guard
 * them (a bad one reads nothing and writes zeros, or adds nothing) and
 * raise the context's device flag, which the next download or sync
 * reports as MLTK_ERR_DATA (cuda.c).  LAMB's segment table is host
 * memory: it is cut into pieces and uploaded once, and again only when it
 * changes (that upload is the one place an op may wait, for a pinned
 * staging buffer still being copied out of).
 *
 * What this is not: argument checking (the core's), the core ops
 * (cuda_ops.c) or convolution and pooling (cuda_conv.c).
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

int cuda_batchnorm_forward_train(cuda_ctx *c, float *y, const float *x, const float *gamma,
                                 const float *beta, float *save_mean, float *save_invstd,
                                 float *running_mean, float *running_var, int64_t N,
                                 int64_t C, int64_t L, float momentum, float eps)
{
    if (N == 0 || C == 0 || L == 0)
        return MLTK_OK;
    double *part;
    float *coef;
    int rc = bn_scratch(c, N, C, L, 3, &part, &coef, "batchnorm_forward_train");
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

int cuda_batchnorm_forward_eval(cuda_ctx *c, float *y, const float *x, const float *gamma,
                                const float *beta, const float *running_mean,
                                const float *running_var, int64_t N, int64_t C, int64_t L,
                                float eps)
{
    if (N == 0 || C == 0 || L == 0)
        return MLTK_OK;
    void *s;
    int rc = cuda_scratch(c, (size_t)(3 * C) * sizeof(float), &s, "batchnorm_forward_eval");
    if (rc)
        return rc;
    float *coef = s;
    const char *op = "batchnorm_forward_eval";
    CU_TRY(op, ck_bn_eval_coef(c->stream, coef, gamma, beta, running_mean, running_var, C,
                               eps));
    CU_TRY(op, ck_chan_affine(c->stream, y, x, coef, N, C, L));
    return MLTK_OK;
}

int cuda_batchnorm_backward(cuda_ctx *c, float *dx, float *dgamma, float *dbeta,
                            const float *dy, const float *x, const float *gamma,
                            const float *save_mean, const float *save_invstd, int64_t N,
                            int64_t C, int64_t L)
{
    const char *op = "batchnorm_backward";
    if (C > 0 && (N == 0 || L == 0)) {
        /* no values: the parameter gradients are zero */
        if (dgamma)
            CU_TRY(op, ck_fill(c->stream, MLTK_F32, dgamma, 0.0f, C));
        if (dbeta)
            CU_TRY(op, ck_fill(c->stream, MLTK_F32, dbeta, 0.0f, C));
        return MLTK_OK;
    }
    if (C == 0)
        return MLTK_OK;
    double *part;
    float *coef;
    int rc = bn_scratch(c, N, C, L, 4, &part, &coef, op);
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

int cuda_layernorm_forward(cuda_ctx *c, float *y, const float *x, const float *gamma,
                           const float *beta, float *mean, float *rstd, int64_t rows,
                           int64_t cols, float eps)
{
    if (rows == 0)
        return MLTK_OK;
    CU_TRY("layernorm_forward",
           ck_ln_forward(c->stream, y, x, gamma, beta, mean, rstd, rows, cols, eps));
    return MLTK_OK;
}

int cuda_layernorm_backward(cuda_ctx *c, float *dx, float *dgamma, float *dbeta,
                            const float *dy, const float *x, const float *gamma,
                            const float *mean, const float *rstd, int64_t rows,
                            int64_t cols)
{
    if (cols == 0)
        return MLTK_OK;  /* no rows either: the core refuses rows of no columns */
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

int cuda_dropout_forward(cuda_ctx *c, float *y, float *mask, const float *x, int64_t n,
                         float p, uint64_t seed, uint64_t offset)
{
    if (n == 0)
        return MLTK_OK;
    CU_TRY("dropout_forward", ck_dropout(c->stream, y, mask, x, n, p, 1.0f / (1.0f - p), seed,
                                         offset));
    return MLTK_OK;
}

int cuda_softmax_forward(cuda_ctx *c, float *y, const float *x, int64_t rows, int64_t cols)
{
    CU_TRY("softmax_forward", ck_softmax_forward(c->stream, y, x, rows, cols));
    return MLTK_OK;
}

int cuda_softmax_backward(cuda_ctx *c, float *dx, const float *dy, const float *y,
                          int64_t rows, int64_t cols)
{
    CU_TRY("softmax_backward", ck_softmax_backward(c->stream, dx, dy, y, rows, cols));
    return MLTK_OK;
}

/* ---- copy_2d ---- */

int cuda_copy_2d(cuda_ctx *c, mltk_dtype dt, void *dst, int64_t dst_ld, const void *src,
                 int64_t src_ld, int64_t rows, int64_t cols, int accumulate)
{
    if (rows == 0 || cols == 0)
        return MLTK_OK;
    const size_t es = mltk_dtype_size(dt);
    if (accumulate) {
        CU_TRY("copy_2d", ck_add_2d(c->stream, dt, dst, dst_ld, src, src_ld, rows, cols));
    } else if (rows == 1) {
        CU_TRY("copy_2d", cudaMemcpyAsync(dst, src, (size_t)cols * es,
                                          cudaMemcpyDeviceToDevice, c->stream));
    } else {
        CU_TRY("copy_2d", cudaMemcpy2DAsync(dst, (size_t)dst_ld * es, src, (size_t)src_ld * es,
                                            (size_t)cols * es, (size_t)rows,
                                            cudaMemcpyDeviceToDevice, c->stream));
    }
    return MLTK_OK;
}

/* ---- embedding ---- */

/* An id that is not an integer in [0, vocab) gives a row of zeros and
 * raises the device flag (reported by the next download or sync). */
int cuda_embedding_forward(cuda_ctx *c, float *y, const float *table, const float *ids,
                           int64_t n, int64_t dim, int64_t vocab)
{
    if (n == 0 || dim == 0)
        return MLTK_OK;
    CU_TRY("embedding_forward",
           ck_embedding_forward(c->stream, c->dflag, y, table, ids, n, dim, vocab));
    return MLTK_OK;
}

/* A bad id adds nothing (and raises the device flag). */
int cuda_embedding_backward(cuda_ctx *c, float *dtable, const float *dy, const float *ids,
                            int64_t n, int64_t dim, int64_t vocab)
{
    const char *op = "embedding_backward";
    if (dim == 0 || vocab == 0)
        return MLTK_OK;
    CU_TRY(op, cudaMemsetAsync(dtable, 0, (size_t)(vocab * dim) * sizeof(float), c->stream));
    CU_TRY(op, ck_embedding_backward(c->stream, c->dflag, dtable, dy, ids, n, dim, vocab));
    return MLTK_OK;
}

/* ---- losses ---- */

int cuda_pointwise_loss(cuda_ctx *c, int kind, float *loss, float *dpred, const float *pred,
                        const float *target, int64_t n, float grad_scale)
{
    const char *op = "pointwise_loss";
    if (n == 0) {
        CU_TRY(op, ck_fill(c->stream, MLTK_F32, loss, 0.0f, 1));
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

int cuda_kl_div_logits(cuda_ctx *c, float *loss, float *dstudent, const float *student,
                       const float *teacher, int64_t N, int64_t C, float T,
                       float grad_scale)
{
    const char *op = "kl_div_logits";
    if (N == 0) {
        CU_TRY(op, ck_fill(c->stream, MLTK_F32, loss, 0.0f, 1));
        return MLTK_OK;
    }
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

/* ---- RMSprop ---- */

int cuda_rmsprop_step(cuda_ctx *c, float *p, const float *g, float *sq, float *mom,
                      float *gavg, int64_t n, const mltk_rmsprop_params *a,
                      const float *lr_scale)
{
    if (n == 0)
        return MLTK_OK;
    ck_rms_args k = { .lr = a->lr, .alpha = a->alpha, .oma = (float)(1.0 - (double)a->alpha),
                      .eps = a->eps, .wd = a->weight_decay, .mu = a->momentum };
    CU_TRY("rmsprop_step", ck_rmsprop(c->stream, p, g, sq, a->momentum > 0.0f ? mom : NULL,
                                      a->centered ? gavg : NULL, lr_scale, n, k));
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
        return cuda_failf(c, MLTK_ERR_NOMEM, "lamb_step: out of host memory for %d segments",
                          n_seg);
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

/* segments, t and the betas were checked by the core (seg_off from 0 to
 * n, not decreasing; beta in [0, 1), so the bias corrections are
 * positive) */
int cuda_lamb_step(cuda_ctx *c, float *p, const float *g, float *m, float *v, int64_t n,
                   const mltk_lamb_params *prm, float *scratch, const float *lr_scale)
{
    const char *op = "lamb_step";
    const int n_seg = prm->n_seg;
    const float beta1 = prm->beta1, beta2 = prm->beta2;
    double bc1 = 1.0 - pow((double)beta1, (double)prm->t);
    double bc2 = 1.0 - pow((double)beta2, (double)prm->t);
    if (n == 0) {
        /* every segment is empty: no norms */
        CU_TRY(op, ck_fill(c->stream, MLTK_F32, scratch, 0.0f, 2 * (int64_t)n_seg));
        return MLTK_OK;
    }
    int rc = lamb_pieces(c, prm->seg_off, n_seg);
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
        .ibc1 = (float)(1.0 / bc1), .ibc2s = (float)(1.0 / sqrt(bc2)), .eps = prm->eps,
        .wd = prm->weight_decay, .lr = prm->lr };
    CU_TRY(op, ck_lamb_moments(c->stream, p, g, m, v, pieces, c->lamb_pieces, a, part));
    CU_TRY(op, ck_lamb_norms(c->stream, scratch, part, first, n_seg));
    CU_TRY(op, ck_lamb_apply(c->stream, p, m, v, lr_scale, pieces, c->lamb_pieces, scratch,
                             a));
    return MLTK_OK;
}

/* ---- gather_augment_2d ---- */

/* An index outside [0, M) gives a zero image and raises the device flag
 * (reported by the next download or sync). */
int cuda_gather_augment_2d(cuda_ctx *c, float *y, const float *x, int64_t M,
                           const int32_t *idx, int64_t rows, int64_t C, int64_t H, int64_t W,
                           const mltk_augment_params *a)
{
    const char *op = "gather_augment_2d";
    if (rows == 0 || C == 0 || H == 0 || W == 0)
        return MLTK_OK;
    void *prm;
    int rc = cuda_scratch(c, (size_t)(3 * rows) * sizeof(int), &prm, op);
    if (rc)
        return rc;
    CU_TRY(op, ck_augment_params(c->stream, prm, rows, a->pad, a->flip != 0, a->seed,
                                 a->offset));
    CU_TRY(op, ck_augment_gather(c->stream, c->dflag, y, x, M, idx, prm, rows, C, H, W));
    return MLTK_OK;
}
