/* cuda_kernels.h - the cuda backend's kernel launchers, as the host code
 * calls them.
 *
 * What this is: one C function per kernel family, defined in the two .cu
 * files (cuda_kernels.cu: elementwise ops and the bias/activation
 * epilogues, reductions, losses, random numbers, optimizers, gathers;
 * cuda_nn_kernels.cu: pooling, per-channel statistics, normalisation,
 * softmax, embedding, LAMB, augmentation).  Every launcher
 * enqueues work on stream `s` and returns cudaGetLastError(): a launch
 * that could not be configured fails here, a fault while running shows up
 * at the next synchronisation.  Arguments were checked by the core
 * (core/op.c) before the op reached the backend; launchers trust them.
 * Data in backend memory that the core cannot see (labels, ids, indices)
 * are guarded in the kernels themselves: a bad value raises a bit of the
 * context's device flag (CK_BAD_*) and reads nothing out of bounds.
 *
 * Scratch: kernels that reduce write per-block partial sums in double to
 * a caller-provided scratch array whose size the ck_*_parts() functions
 * below give.  Partitions depend on the shapes alone, never on the GPU,
 * and partial sums are combined in a fixed order, so every result is
 * bit-identical from run to run.
 *
 * What this is not: the op contract (backend.h) or the host side that
 * owns memory, streams and library handles (cuda_internal.h).
 */
#ifndef MLTK_CUDA_KERNELS_H
#define MLTK_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime_api.h>

#include <mltk/backend.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- partitions (shared with the host, which sizes the scratch) ---- */

/* sum, sumsq and the pointwise losses: at most CK_RED_MAX_BLOCKS blocks,
 * each reducing a contiguous range of at least CK_RED_MIN_PER elements */
#define CK_RED_MAX_BLOCKS 1024
#define CK_RED_MIN_PER    4096

static inline int64_t ck_reduce_parts(int64_t n)
{
    int64_t b = (n + CK_RED_MIN_PER - 1) / CK_RED_MIN_PER;
    return b < 1 ? 1 : b > CK_RED_MAX_BLOCKS ? CK_RED_MAX_BLOCKS : b;
}

/* column sums (sum_rows, layer-norm parameter gradients, batch norm with
 * L == 1): rows are cut into chunks of CK_ROW_CHUNK, each chunk's column
 * sums are a partial */
#define CK_ROW_CHUNK 128

static inline int64_t ck_row_chunks(int64_t rows)
{
    int64_t k = (rows + CK_ROW_CHUNK - 1) / CK_ROW_CHUNK;
    return k < 1 ? 1 : k;
}

/* per-channel sums over (N, C, L) with L > 1: each block takes a run of
 * images of about CK_CHAN_WORK values of one channel */
#define CK_CHAN_WORK 16384

static inline int64_t ck_chan_images(int64_t N, int64_t L)
{
    int64_t per = L > 0 ? CK_CHAN_WORK / L : N;
    per = per < 1 ? 1 : per;
    return per < N ? per : (N > 0 ? N : 1);
}

static inline int64_t ck_chan_chunks(int64_t N, int64_t L)
{
    if (L == 1)
        return ck_row_chunks(N);
    int64_t per = ck_chan_images(N, L);
    int64_t k = (N + per - 1) / per;
    return k < 1 ? 1 : k;
}

/* LAMB splits each tensor segment into pieces of CK_LAMB_PIECE elements */
#define CK_LAMB_PIECE 8192

/* one piece of a LAMB segment: elements [lo, hi) of segment seg */
typedef struct ck_piece {
    int64_t lo, hi;
    int64_t seg;
} ck_piece;

/* ---- device-side data errors ---- */

/* Bits a kernel ORs into the context's device flag (an unsigned int) when
 * the data in backend memory are bad; the op then writes zeros where the
 * bad value would have been read and the next download or sync reports
 * the flag (cuda.c).  Integer atomics only. */
enum {
    CK_BAD_LABEL = 1u,   /* a label outside [0, C) */
    CK_BAD_ID = 2u,      /* an embedding id not an integer in [0, vocab) */
    CK_BAD_INDEX = 4u    /* a gather index outside [0, rows of src) */
};

/* ---- cuda_kernels.cu: elementwise, in the dtype dt (f32, bf16, f16) ----
 * Low-precision values are widened to float exactly, computed in float and
 * rounded back to nearest, ties to even (a NaN stays a quiet NaN of the
 * same sign and upper payload), as the cpu backend's cast does. */

cudaError_t ck_fill(cudaStream_t s, mltk_dtype dt, void *x, float v, int64_t n);
/* batch b, row r of c: c + b sc + r ldc, cols elements: = beta c, or 0
 * (not read) when beta == 0 */
cudaError_t ck_scale_2d(cudaStream_t s, mltk_dtype dt, void *c, int64_t ldc, int64_t sc,
                        int64_t batch, int64_t rows, int64_t cols, float beta);
cudaError_t ck_axpby(cudaStream_t s, mltk_dtype dt, void *y, float a, const void *x, float b,
                     int64_t n);
cudaError_t ck_mul(cudaStream_t s, mltk_dtype dt, void *z, const void *x, const void *y,
                   int64_t n);
cudaError_t ck_act_forward(cudaStream_t s, mltk_dtype dt, mltk_act act, float alpha, void *y,
                           const void *x, int64_t n);
/* dx = dy * act'(.) from `src`, the activation's output when src_is_y,
 * else its input */
cudaError_t ck_act_backward(cudaStream_t s, mltk_dtype dt, mltk_act act, float alpha,
                            void *dx, const void *dy, const void *src, int src_is_y,
                            int64_t n);
/* y (batch, rows, cols), row stride ldy, batch stride sy, in dt: y =
 * act(y + b[col]); b (cols) in bdt (f32 or dt) or NULL (act only): the
 * bias_act op and gemm's epilogue */
cudaError_t ck_bias_act(cudaStream_t s, mltk_dtype dt, void *y, int64_t ldy, int64_t sy,
                        int64_t batch, int64_t rows, int64_t cols, mltk_dtype bdt,
                        const void *b, mltk_act act, float alpha);
/* y (N, C, L) in dt = act(y + b[c]), b (C) in bdt or NULL (the conv
 * epilogue); bdt is dt or f32, or a bf16 or f16 bias for an f32 y */
cudaError_t ck_chan_bias_act(cudaStream_t s, mltk_dtype dt, void *y, mltk_dtype bdt,
                             const void *b, int64_t N, int64_t C, int64_t L, mltk_act act,
                             float alpha);
/* x = min(max(x, lo), hi), NaN kept */
cudaError_t ck_clamp(cudaStream_t s, mltk_dtype dt, void *x, int64_t n, float lo, float hi);
/* x *= c where c = max_norm / (sqrt(sumsq[0]) + 1e-6) < 1 (read on the device) */
cudaError_t ck_scale_to_norm(cudaStream_t s, mltk_dtype dt, void *x, int64_t n,
                             const float *sumsq, float max_norm);
/* y (n) in ty = x (n) in tx, each of f32, bf16, f16; bf16 <-> f16 goes
 * through f32 (exact), so it is rounded once; ty == tx copies */
cudaError_t ck_cast(cudaStream_t s, void *y, mltk_dtype ty, const void *x, mltk_dtype tx,
                    int64_t n);

/* ---- cuda_kernels.cu: reductions (part: ck_reduce_parts(n) doubles) ---- */

cudaError_t ck_sum(cudaStream_t s, mltk_dtype dt, float *out, const void *x, int64_t n,
                   int squares, double *part);
/* out (cols) = column sums of x (rows, cols) + beta out, both in dt; part
 * holds ck_row_chunks(rows) * cols doubles */
cudaError_t ck_sum_rows(cudaStream_t s, mltk_dtype dt, void *out, const void *x,
                        int64_t rows, int64_t cols, float beta, double *part);
/* out[0] = (float)(sum of part[0..n) * mul / divc [/ *div when div is not
 * NULL]), summed in a fixed order by one block */
cudaError_t ck_finish_sum(cudaStream_t s, float *out, const double *part, int64_t n,
                          double mul, double divc, const double *div);
/* flag[0] = 1 if any of x (n, in dt) is a NaN or an infinity and 1 >
 * flag[0]; else flag unchanged.  Two launches: per-block answers over a
 * partition fixed by n (16-byte loads where x is aligned), then one block
 * combines them.  part: ck_reduce_parts(n) doubles. */
cudaError_t ck_nonfinite(cudaStream_t s, mltk_dtype dt, float *flag, const void *x, int64_t n,
                         double *part);

/* ---- cuda_kernels.cu: losses and metrics (rows: N doubles of scratch) ---- */

/* In the label ops a label outside [0, C) raises CK_BAD_LABEL in `flag`
 * and its row counts as 0 (loss, gradient row, correct). */
/* rows[r] = row r's loss; dl (N, C) = scale (softmax - onehot) when not NULL */
cudaError_t ck_softmax_xent(cudaStream_t s, unsigned *flag, double *rows, float *dl,
                            const float *logits, const int32_t *labels, int64_t N, int64_t C,
                            float scale);
/* rows[r] = 1 when row r's first maximum is its label, else 0 */
cudaError_t ck_count_correct(cudaStream_t s, unsigned *flag, double *rows,
                             const float *logits, const int32_t *labels, int64_t N,
                             int64_t C);
/* wsum[0] = W (sum of the targets' weights, N without weights), wsum[1] =
 * sum of the class weights (C without) */
cudaError_t ck_xent_weights(cudaStream_t s, double *wsum, const int32_t *labels,
                            const float *weights, int64_t N, int64_t C);
/* rows[r] = the numerator of row r's loss (cpu_misc.c's formula); dl =
 * grad_scale / wsum[0] * its gradient when not NULL */
cudaError_t ck_softmax_xent_ex(cudaStream_t s, unsigned *flag, double *rows, float *dl,
                               const float *logits, const int32_t *labels,
                               const float *weights, const double *wsum, int64_t N,
                               int64_t C, double ls, double grad_scale);
/* rows[r] = row r's loss against probabilities t (N, C) (cpu_misc.c's
 * k_xent_soft); dl = scale * its gradient when not NULL */
cudaError_t ck_softmax_xent_soft(cudaStream_t s, double *rows, float *dl,
                                 const float *logits, const float *t, const float *weights,
                                 int64_t N, int64_t C, double ls, double scale);
/* part (ck_reduce_parts(n)): per-block sums of the element losses of
 * kind (0 mse, 1 l1, 2 bce with logits); d = scale * gradient when not NULL */
cudaError_t ck_pointwise(cudaStream_t s, int kind, double *part, float *d, const float *x,
                         const float *t, int64_t n, double scale);
/* rows[r] = KL(softmax(t/T) || softmax(s/T)) of row r; d = gscale (p - q) */
cudaError_t ck_kl_div(cudaStream_t s, double *rows, float *d, const float *student,
                      const float *teacher, int64_t N, int64_t C, double invT,
                      double gscale);

/* ---- cuda_kernels.cu: data movement and random numbers ---- */

/* dst row i = src row idx[i], rows of row_bytes bytes; an index outside
 * [0, M) gives a row of zeros and raises CK_BAD_INDEX */
cudaError_t ck_gather_rows(cudaStream_t s, unsigned *flag, void *dst, const void *src,
                           int64_t M, const int32_t *idx, int64_t n, size_t row_bytes);
/* x[i] = lo + (hi - lo) u(seed, offset + i) */
cudaError_t ck_rng_uniform(cudaStream_t s, float *x, int64_t n, float lo, float hi,
                           uint64_t seed, uint64_t offset);
/* x[i] = mean + std z(seed, offset + i) */
cudaError_t ck_rng_normal(cudaStream_t s, float *x, int64_t n, float mean, float std,
                          uint64_t seed, uint64_t offset);
/* mask[i] = u >= p ? scale : 0, y = x mask */
cudaError_t ck_dropout(cudaStream_t s, float *y, float *mask, const float *x, int64_t n,
                       float p, float scale, uint64_t seed, uint64_t offset);

/* ---- cuda_kernels.cu: optimizer updates (the cpu backend's formulas) ---- */

typedef struct ck_sgd_args {
    float lr, momentum, damp1, wd;   /* damp1 = 1 - dampening */
    int nesterov, first;             /* first: t == 1 */
} ck_sgd_args;

cudaError_t ck_sgd(cudaStream_t s, float *p, const float *g, float *mom, const float *sc,
                   int64_t n, ck_sgd_args a);

typedef struct ck_adam_args {
    float b1, b2, omb1, omb2, eps, wd, pscale, step, bc2s, lrwd;
    int l2;
} ck_adam_args;

cudaError_t ck_adam(cudaStream_t s, float *p, const float *g, float *m, float *v,
                    const float *sc, int64_t n, ck_adam_args a);

typedef struct ck_rms_args {
    float lr, alpha, oma, eps, wd, mu;
} ck_rms_args;

cudaError_t ck_rmsprop(cudaStream_t s, float *p, const float *g, float *sq, float *mom,
                       float *gavg, const float *sc, int64_t n, ck_rms_args a);

/* ---- cuda_nn_kernels.cu: LAMB ---- */

typedef struct ck_lamb_args {
    float b1, b2, omb1, omb2, ibc1, ibc2s, eps, wd, lr;
} ck_lamb_args;

/* pass 1: moments; part[2 k], part[2 k + 1] = sum p^2, sum r^2 of piece k */
cudaError_t ck_lamb_moments(cudaStream_t s, float *p, const float *g, float *m, float *v,
                            const ck_piece *pieces, int64_t n_pieces, ck_lamb_args a,
                            double *part);
/* norms[2 s], norms[2 s + 1] = ||p||, ||r|| of segment s, from the partials
 * of its pieces first[s] .. first[s + 1] - 1 */
cudaError_t ck_lamb_norms(cudaStream_t s, float *norms, const double *part,
                          const int64_t *first, int64_t n_seg);
/* pass 2: p -= lr trust(seg) r */
cudaError_t ck_lamb_apply(cudaStream_t s, float *p, const float *m, const float *v,
                          const float *sc, const ck_piece *pieces, int64_t n_pieces,
                          const float *norms, ck_lamb_args a);

/* ---- cuda_nn_kernels.cu: pooling (the cpu backend's window rules) ---- */

cudaError_t ck_pool_forward(cudaStream_t s, mltk_pool kind, float *y, const float *x,
                            const mltk_pool2d_desc *d);
cudaError_t ck_pool_backward(cudaStream_t s, mltk_pool kind, float *dx, const float *dy,
                             const float *x, const mltk_pool2d_desc *d);

/* ---- cuda_nn_kernels.cu: per-channel statistics over (N, C, L) ---- */

enum {
    CK_CHAN_SUM = 0,      /* s1 = sum a */
    CK_CHAN_SHIFTED = 1,  /* d = a - a[channel's first value]: s1 = sum d, s2 = sum d^2 */
    CK_CHAN_GRAD = 2      /* s1 = sum a, s2 = sum a (b - mean[c]) */
};

/* part[(k C + c) 2 + j] = sum j of chunk k of channel c, chunks as
 * ck_chan_chunks(N, L) */
cudaError_t ck_chan_sums(cudaStream_t s, int mode, double *part, const float *a,
                         const float *b, const float *mean, int64_t N, int64_t C,
                         int64_t L);
/* part as ck_chan_sums(CK_CHAN_SUM) for `a` in dt (the conv bias gradient
 * of a bf16 or f16 convolution) */
cudaError_t ck_chan_sums_dt(cudaStream_t s, mltk_dtype dt, double *part, const void *a,
                            int64_t N, int64_t C, int64_t L);
/* out[c] (in dt) = the total of s1 (conv bias gradient) */
cudaError_t ck_chan_total(cudaStream_t s, mltk_dtype dt, void *out, const double *part,
                          int64_t chunks, int64_t C);

/* batch norm, training: from CK_CHAN_SHIFTED partials, save mean and
 * invstd, update running statistics (when not NULL) and write per-channel
 * coef[c] = mean, coef[C + c] = gamma invstd, coef[2 C + c] = beta */
cudaError_t ck_bn_finish(cudaStream_t s, float *coef, float *save_mean, float *save_invstd,
                         float *run_mean, float *run_var, const double *part,
                         int64_t chunks, const float *x, const float *gamma,
                         const float *beta, int64_t N, int64_t C, int64_t L,
                         double momentum, double eps);
/* batch norm, evaluation: coef as above from the running statistics */
cudaError_t ck_bn_eval_coef(cudaStream_t s, float *coef, const float *gamma,
                            const float *beta, const float *run_mean,
                            const float *run_var, int64_t C, double eps);
/* y = (x - coef[c]) coef[C + c] + coef[2 C + c] over (N, C, L) */
cudaError_t ck_chan_affine(cudaStream_t s, float *y, const float *x, const float *coef,
                           int64_t N, int64_t C, int64_t L);
/* batch norm backward: from CK_CHAN_GRAD partials, dbeta/dgamma (when not
 * NULL) and coef[c] = mean, coef[C + c] = k1, coef[2 C + c] = k2,
 * coef[3 C + c] = k3 */
cudaError_t ck_bn_grad_finish(cudaStream_t s, float *coef, float *dgamma, float *dbeta,
                              const double *part, int64_t chunks, const float *gamma,
                              const float *save_mean, const float *save_invstd,
                              int64_t N, int64_t C, int64_t L);
/* dx = k1 dy - k3 (x - mean) - k2 per channel */
cudaError_t ck_bn_dx(cudaStream_t s, float *dx, const float *dy, const float *x,
                     const float *coef, int64_t N, int64_t C, int64_t L);

/* ---- cuda_nn_kernels.cu: layer norm and softmax, one block per row ---- */

cudaError_t ck_ln_forward(cudaStream_t s, float *y, const float *x, const float *gamma,
                          const float *beta, float *mean, float *rstd, int64_t rows,
                          int64_t cols, double eps);
cudaError_t ck_ln_backward_dx(cudaStream_t s, float *dx, const float *dy, const float *x,
                              const float *gamma, const float *mean, const float *rstd,
                              int64_t rows, int64_t cols);
/* part (ck_row_chunks(rows) * cols * 2 doubles); then dgamma/dbeta */
cudaError_t ck_ln_backward_params(cudaStream_t s, float *dgamma, float *dbeta,
                                  const float *dy, const float *x, const float *mean,
                                  const float *rstd, int64_t rows, int64_t cols,
                                  double *part);
cudaError_t ck_softmax_forward(cudaStream_t s, float *y, const float *x, int64_t rows,
                               int64_t cols);
cudaError_t ck_softmax_backward(cudaStream_t s, float *dx, const float *dy, const float *y,
                                int64_t rows, int64_t cols);

/* ---- cuda_nn_kernels.cu: copies, embedding, augmentation ---- */

/* dst (rows, dst_ld) [:, :cols] += src (rows, src_ld) [:, :cols], in dt */
cudaError_t ck_add_2d(cudaStream_t s, mltk_dtype dt, void *dst, int64_t dst_ld,
                      const void *src, int64_t src_ld, int64_t rows, int64_t cols);
/* y (n, dim) = table rows by id; an id that is not an integer in [0,
 * vocab) gives a row of zeros and raises CK_BAD_ID */
cudaError_t ck_embedding_forward(cudaStream_t s, unsigned *flag, float *y, const float *table,
                                 const float *ids, int64_t n, int64_t dim, int64_t vocab);
/* dtable (vocab, dim), zeroed by the caller, += dy rows by id, each
 * table row summed in the order of the ids; a bad id adds nothing and
 * raises CK_BAD_ID */
cudaError_t ck_embedding_backward(cudaStream_t s, unsigned *flag, float *dtable,
                                  const float *dy, const float *ids, int64_t n, int64_t dim,
                                  int64_t vocab);
/* the shifts and flips of rows (3 ints per row: sh, sw, f), then the
 * gather from x (M, C, H, W); an index outside [0, M) gives a zero image
 * and raises CK_BAD_INDEX */
cudaError_t ck_augment_params(cudaStream_t s, int *prm, int64_t rows, int64_t pad,
                              int flip, uint64_t seed, uint64_t offset);
cudaError_t ck_augment_gather(cudaStream_t s, unsigned *flag, float *y, const float *x,
                              int64_t M, const int32_t *idx, const int *prm, int64_t rows,
                              int64_t C, int64_t H, int64_t W);

#ifdef __cplusplus
}
#endif
#endif /* MLTK_CUDA_KERNELS_H */
