/* cpu_misc.c - the cpu backend's strided copies, embedding lookups, the
 * general cross-entropy and the other losses, and the augmenting gather.
 *
 * What this is: the f32 kernels of MLTK_OP_COPY_2D (concat and split
 * along any axis), MLTK_OP_EMBEDDING_FORWARD and _BACKWARD (the gather
 * and its scatter-add gradient), MLTK_OP_SOFTMAX_XENT with label
 * smoothing or class weights (cpu.c's plain kernel runs it without
 * either) and against probability targets (mixup, cutmix),
 * MLTK_OP_POINTWISE_LOSS (mse, l1, binary cross-entropy with
 * logits), MLTK_OP_KL_DIV_LOGITS (the temperature-scaled KL divergence of
 * distillation) and MLTK_OP_GATHER_AUGMENT_2D (the augmenting image
 * gather of the data pipeline).
 * Every loss accumulates in double and matches PyTorch's
 * definition (reduction = mean, or batchmean for KL); gradients are the
 * exact derivatives of those definitions.
 *
 * Work is split over the pool with static partitions, and reductions
 * combine per-chunk partial sums in chunk order, so results are
 * bit-identical from run to run for a given thread count.  The embedding
 * gradient is split by columns of the table, so every element is summed
 * in the order of the ids whatever the thread count.  Nothing here
 * allocates memory.  The core has checked shapes and parameters, and
 * validated labels when the data were uploaded, before cpu.c's `run`
 * hands a call here; what it cannot see is checked before anything is
 * written: embedding ids (activations) and gather indices.
 *
 * What this is not: a general gather/scatter (ids are float-coded, rows
 * are whole) or a loss with reductions other than the mean.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include <mltk/rng.h>
#include "cpu_internal.h"

/* ---- copy_2d ---- */

typedef struct copy_args {
    float       *dst;
    const float *src;
    int64_t      dst_ld, src_ld, rows, cols;
    int          accumulate;
    int          by_cols;   /* items are columns of one row, not rows */
} copy_args;

KERNEL static void k_copy_row(float *restrict d, const float *restrict s, int64_t n,
                              int accumulate)
{
    if (accumulate) {
        for (int64_t i = 0; i < n; i++)
            d[i] += s[i];
    } else {
        memcpy(d, s, (size_t)n * sizeof(float));
    }
}

static void copy_chunk(void *arg, int64_t b, int64_t e, int chunk)
{
    const copy_args *a = arg;
    (void)chunk;
    if (a->by_cols) {
        k_copy_row(a->dst + b, a->src + b, e - b, a->accumulate);
        return;
    }
    for (int64_t r = b; r < e; r++)
        k_copy_row(a->dst + r * a->dst_ld, a->src + r * a->src_ld, a->cols,
                   a->accumulate);
}

/* dst (rows, dst_ld) [:, :cols] = src (rows, src_ld) [:, :cols] (+= when
 * accumulate); dst and src must not overlap */
int cpu_copy_2d(void *ctx, float *dst, int64_t dst_ld, const float *src, int64_t src_ld,
                int64_t rows, int64_t cols, int accumulate)
{
    cpu_ctx *c = ctx;
    if (rows == 0 || cols == 0)
        return MLTK_OK;
    copy_args a = { .dst = dst, .src = src, .dst_ld = dst_ld, .src_ld = src_ld,
                    .rows = rows, .cols = cols, .accumulate = accumulate != 0 };
    int64_t work = rows * cols;
    if (rows == 1) {
        /* one long row: split its columns instead */
        a.by_cols = 1;
        int chunks = cpu_pool_chunks(c->pool, cols, work, GRAIN);
        cpu_pool_run(c->pool, copy_chunk, &a, cols, chunks, ALIGN_F, work);
    } else {
        int chunks = cpu_pool_chunks(c->pool, rows, work, GRAIN);
        cpu_pool_run(c->pool, copy_chunk, &a, rows, chunks, 1, work);
    }
    return MLTK_OK;
}

/* ---- embedding ---- */

/* Every id must be an integer value in [0, vocab) (NaN is not).  Ids are
 * activations, which the core never sees, so they are checked here. */
static int check_ids(const float *ids, int64_t n, int64_t vocab, const char *op,
                     char **err)
{
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = ids[i];
        bad |= !(v >= 0.0f) || !((double)v < (double)vocab) || v != floorf(v);
    }
    if (!bad)
        return MLTK_OK;
    for (int64_t i = 0; i < n; i++) {
        float v = ids[i];
        if (!(v >= 0.0f) || !((double)v < (double)vocab) || v != floorf(v))
            return mltk_errf(err, MLTK_ERR_DATA,
                             "%s: id %g at row %lld is not an integer in [0, %lld)",
                             op, (double)v, (long long)i, (long long)vocab);
    }
    return MLTK_ERR_DATA;
}

typedef struct emb_args {
    float       *out;
    const float *in;
    const float *ids;
    int64_t      n, dim;
} emb_args;

/* rows [b, e) of y = table[ids] */
static void emb_fwd_chunk(void *arg, int64_t b, int64_t e, int chunk)
{
    const emb_args *a = arg;
    (void)chunk;
    for (int64_t i = b; i < e; i++)
        memcpy(a->out + i * a->dim, a->in + (int64_t)a->ids[i] * a->dim,
               (size_t)a->dim * sizeof(float));
}

/* columns [b, e) of dtable += dy rows, ids in order (dtable zeroed) */
KERNEL static void k_emb_bwd(float *restrict dt, const float *restrict dy,
                             const float *restrict ids, int64_t n, int64_t dim,
                             int64_t b, int64_t e)
{
    for (int64_t i = 0; i < n; i++) {
        float *restrict row = dt + (int64_t)ids[i] * dim;
        const float *restrict g = dy + i * dim;
        for (int64_t j = b; j < e; j++)
            row[j] += g[j];
    }
}

/* rows [b, e) of the table = 0 */
static void emb_zero_chunk(void *arg, int64_t b, int64_t e, int chunk)
{
    const emb_args *a = arg;
    (void)chunk;
    memset(a->out + b * a->dim, 0, (size_t)((e - b) * a->dim) * sizeof(float));
}

static void emb_bwd_chunk(void *arg, int64_t b, int64_t e, int chunk)
{
    const emb_args *a = arg;
    (void)chunk;
    k_emb_bwd(a->out, a->in, a->ids, a->n, a->dim, b, e);
}

/* ids (n) -> y (n, dim) = table (vocab, dim) [ids] */
int cpu_embedding_forward(void *ctx, float *y, const float *table, const float *ids,
                          int64_t n, int64_t dim, int64_t vocab, char **err)
{
    cpu_ctx *c = ctx;
    if (n == 0 || dim == 0)
        return MLTK_OK;
    int rc = check_ids(ids, n, vocab, "embedding_forward", err);
    if (rc)
        return rc;
    emb_args a = { .out = y, .in = table, .ids = ids, .n = n, .dim = dim };
    int64_t work = n * (dim + 1);
    int chunks = cpu_pool_chunks(c->pool, n, work, GRAIN);
    cpu_pool_run(c->pool, emb_fwd_chunk, &a, n, chunks, 1, work);
    return MLTK_OK;
}

/* dy (n, dim), ids (n) -> dtable (vocab, dim) = sum of the dy rows of each
 * id (rows of ids that never occur are 0) */
int cpu_embedding_backward(void *ctx, float *dtable, const float *dy, const float *ids,
                           int64_t n, int64_t dim, int64_t vocab, char **err)
{
    cpu_ctx *c = ctx;
    if (dim == 0 || vocab == 0)
        return vocab == 0 ? check_ids(ids, n, vocab, "embedding_backward", err) : MLTK_OK;
    int rc = check_ids(ids, n, vocab, "embedding_backward", err);
    if (rc)
        return rc;
    /* zero the table (split by rows), then scatter (split by columns) */
    emb_args z = { .out = dtable, .dim = dim };
    int64_t total = vocab * dim;
    int zchunks = cpu_pool_chunks(c->pool, vocab, total, GRAIN);
    cpu_pool_run(c->pool, emb_zero_chunk, &z, vocab, zchunks, 1, total);
    if (n == 0)
        return MLTK_OK;
    emb_args a = { .out = dtable, .in = dy, .ids = ids, .n = n, .dim = dim };
    int64_t work = n * dim;
    int chunks = dim >= 2 * ALIGN_F ? cpu_pool_chunks(c->pool, dim, work, GRAIN) : 1;
    cpu_pool_run(c->pool, emb_bwd_chunk, &a, dim, chunks, ALIGN_F, work);
    return MLTK_OK;
}

/* ---- cross-entropy with label smoothing and class weights ---- */

typedef struct xent_args {
    float         *dl;
    const float   *logits;
    const int32_t *labels;
    const float   *weights;   /* (C) or NULL */
    int64_t        C;
    double         ls;        /* label smoothing */
    double         sw;        /* sum of the class weights (C without) */
    double         scale;     /* grad_scale / W */
    double        *partials;
} xent_args;

/* Rows [b, e).  With logp = log softmax(z), weights w (1 without) and
 * W = sum over the batch of w[y] (N without), PyTorch's loss is
 *   sum_i [ (1 - ls) w[y_i] (-logp_i[y_i]) + ls/C sum_c w[c] (-logp_i[c]) ] / W
 * and its gradient with respect to z_ij, with p = softmax(z),
 *   [ ((1 - ls) w[y_i] + ls/C sum_c w[c]) p_ij - (1 - ls) w[y_i] [j == y_i]
 *     - ls/C w[j] ] / W.
 * The chunk's partial is the numerator of the loss. */
KERNEL static double k_xent_ex(const xent_args *a, int64_t b, int64_t e)
{
    const int64_t C = a->C;
    const double ls = a->ls, lsc = a->ls / (double)C;
    double total = 0.0;
    for (int64_t r = b; r < e; r++) {
        const float *z = a->logits + r * C;
        int32_t y = a->labels[r];
        double m = z[0];
        for (int64_t c = 1; c < C; c++)
            m = z[c] > m ? z[c] : m;
        double s = 0.0, wz = 0.0;
        for (int64_t c = 0; c < C; c++) {
            s += exp((double)z[c] - m);
            wz += (a->weights ? (double)a->weights[c] : 1.0) * (double)z[c];
        }
        double lse = m + log(s);
        double wy = a->weights ? (double)a->weights[y] : 1.0;
        /* -sum_c w[c] logp[c] = sw lse - sum_c w[c] z[c] */
        double nll = lse - (double)z[y];
        double smooth = ls > 0.0 ? a->sw * lse - wz : 0.0;
        total += (1.0 - ls) * wy * nll + lsc * smooth;
        if (a->dl) {
            float *d = a->dl + r * C;
            double coef = (1.0 - ls) * wy + lsc * a->sw;
            double inv = 1.0 / s;
            for (int64_t c = 0; c < C; c++) {
                double p = exp((double)z[c] - m) * inv;
                double wc = a->weights ? (double)a->weights[c] : 1.0;
                double g = coef * p - lsc * wc - (c == y ? (1.0 - ls) * wy : 0.0);
                d[c] = (float)(g * a->scale);
            }
        }
    }
    return total;
}

static void xent_ex_chunk(void *arg, int64_t b, int64_t e, int chunk)
{
    const xent_args *a = arg;
    a->partials[chunk * PARTIAL_STRIDE] = k_xent_ex(a, b, e);
}

/* logits (N, C), labels (N) in [0, C), weights (C) or NULL -> loss[0] =
 * weighted mean; dlogits (N, C) = grad_scale * d loss / d logits when not
 * NULL.  As in PyTorch, a batch whose targets all weigh 0 has a NaN loss.
 * Labels are not checked: the core validated them when they were
 * uploaded. */
int cpu_softmax_xent_ex(void *ctx, float *loss, float *dlogits, const float *logits,
                        const int32_t *labels, const float *weights, int64_t N, int64_t C,
                        float label_smoothing, float grad_scale)
{
    cpu_ctx *c = ctx;
    if (N == 0) {
        loss[0] = 0.0f;
        return MLTK_OK;
    }
    double W = (double)N, sw = (double)C;
    if (weights) {
        W = 0.0;
        for (int64_t i = 0; i < N; i++)
            W += (double)weights[labels[i]];
        sw = 0.0;
        for (int64_t k = 0; k < C; k++)
            sw += (double)weights[k];
    }
    xent_args a = { .dl = dlogits, .logits = logits, .labels = labels,
                    .weights = weights, .C = C, .ls = (double)label_smoothing,
                    .sw = sw, .scale = (double)grad_scale / W,
                    .partials = c->partials };
    int64_t work = N * C * 8;
    int chunks = cpu_pool_chunks(c->pool, N, work, GRAIN);
    double total = cpu_reduce_run(c, xent_ex_chunk, &a, N, chunks, 1, work);
    loss[0] = (float)(total / W);
    return MLTK_OK;
}

/* ---- cross-entropy against probabilities (soft targets) ---- */

typedef struct xent_soft_args {
    float       *dl;
    const float *logits;
    const float *t;         /* (N, C) target probabilities */
    const float *weights;   /* (C) or NULL */
    int64_t      C;
    double       ls;        /* label smoothing */
    double       scale;     /* grad_scale / N */
    double      *partials;
} xent_soft_args;

/* Rows [b, e).  With t' = (1 - ls) t + ls/C, v[c] = w[c] t'[c] (w = 1
 * without weights), logp = log softmax(z) = z - lse and S = sum_c v[c],
 * PyTorch's row loss is
 *   -sum_c v[c] logp[c] = S lse - sum_c v[c] z[c]
 * and its gradient with respect to z_j is S p_j - v[j], p = softmax(z);
 * the batch loss divides by N, weights or not.  The chunk's partial is
 * the sum of the row losses. */
KERNEL static double k_xent_soft(const xent_soft_args *a, int64_t b, int64_t e)
{
    const int64_t C = a->C;
    const double ls = a->ls, lsc = a->ls / (double)C;
    double total = 0.0;
    for (int64_t r = b; r < e; r++) {
        const float *z = a->logits + r * C, *t = a->t + r * C;
        double m = z[0];
        for (int64_t c = 1; c < C; c++)
            m = z[c] > m ? z[c] : m;
        double s = 0.0, S = 0.0, vz = 0.0;
        for (int64_t c = 0; c < C; c++) {
            double v = ((1.0 - ls) * (double)t[c] + lsc)
                * (a->weights ? (double)a->weights[c] : 1.0);
            s += exp((double)z[c] - m);
            S += v;
            /* v (z - m): finite however large z is */
            vz += v * ((double)z[c] - m);
        }
        /* S lse - sum v z = S log s - sum v (z - m) */
        total += S * log(s) - vz;
        if (a->dl) {
            float *d = a->dl + r * C;
            double inv = 1.0 / s;
            for (int64_t c = 0; c < C; c++) {
                double v = ((1.0 - ls) * (double)t[c] + lsc)
                    * (a->weights ? (double)a->weights[c] : 1.0);
                double p = exp((double)z[c] - m) * inv;
                d[c] = (float)((S * p - v) * a->scale);
            }
        }
    }
    return total;
}

static void xent_soft_chunk(void *arg, int64_t b, int64_t e, int chunk)
{
    const xent_soft_args *a = arg;
    a->partials[chunk * PARTIAL_STRIDE] = k_xent_soft(a, b, e);
}

/* logits (N, C), t (N, C) probabilities, weights (C) or NULL -> loss[0] =
 * mean over the N rows of -sum_c w[c] t'[c] log softmax(logits)[c];
 * dlogits (N, C) = grad_scale * d loss / d logits when not NULL.  The
 * targets are used as given: rows need not sum to 1 (nor be in [0, 1]). */
int cpu_softmax_xent_soft(void *ctx, float *loss, float *dlogits, const float *logits,
                          const float *t, const float *weights, int64_t N, int64_t C,
                          float label_smoothing, float grad_scale)
{
    cpu_ctx *c = ctx;
    if (N == 0) {
        loss[0] = 0.0f;
        return MLTK_OK;
    }
    xent_soft_args a = { .dl = dlogits, .logits = logits, .t = t, .weights = weights,
                         .C = C, .ls = (double)label_smoothing,
                         .scale = (double)grad_scale / (double)N,
                         .partials = c->partials };
    int64_t work = N * C * 8;
    int chunks = cpu_pool_chunks(c->pool, N, work, GRAIN);
    double total = cpu_reduce_run(c, xent_soft_chunk, &a, N, chunks, 1, work);
    loss[0] = (float)(total / (double)N);
    return MLTK_OK;
}

/* ---- pointwise losses ---- */

enum { PW_MSE = 0, PW_L1 = 1, PW_BCE_LOGITS = 2 };

typedef struct pw_args {
    int          kind;
    float       *d;
    const float *x, *t;
    double       scale;   /* grad_scale / n */
    double      *partials;
} pw_args;

/* elements [b, e): returns the sum of the element losses, writes the
 * gradients when d != NULL.
 *   mse:  (x - t)^2,                        2 (x - t)
 *   l1:   |x - t|,                          sign(x - t) (0 at 0, as torch.sign)
 *   bce:  max(x, 0) - x t + log1p(e^-|x|),  sigmoid(x) - t
 * (the stable form of -[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))]) */
KERNEL static double k_pointwise(const pw_args *a, int64_t b, int64_t e)
{
    const float *restrict x = a->x, *restrict t = a->t;
    float *restrict d = a->d;
    const double sc = a->scale;
    double total = 0.0;
    switch (a->kind) {
    case PW_MSE:
        for (int64_t i = b; i < e; i++) {
            double r = (double)x[i] - (double)t[i];
            total += r * r;
            if (d)
                d[i] = (float)(2.0 * r * sc);
        }
        break;
    case PW_L1:
        for (int64_t i = b; i < e; i++) {
            double r = (double)x[i] - (double)t[i];
            total += fabs(r);
            if (d)
                d[i] = (float)((r > 0.0 ? 1.0 : r < 0.0 ? -1.0 : 0.0) * sc);
        }
        break;
    default:
        for (int64_t i = b; i < e; i++) {
            double v = x[i], tv = t[i];
            double ex = exp(-fabs(v));
            total += (v > 0.0 ? v : 0.0) - v * tv + log1p(ex);
            if (d) {
                /* sigmoid(v) from e^-|v|, stable on both sides */
                double sg = v >= 0.0 ? 1.0 / (1.0 + ex) : ex / (1.0 + ex);
                d[i] = (float)((sg - tv) * sc);
            }
        }
        break;
    }
    return total;
}

static void pw_chunk(void *arg, int64_t b, int64_t e, int chunk)
{
    const pw_args *a = arg;
    a->partials[chunk * PARTIAL_STRIDE] = k_pointwise(a, b, e);
}

/* pred, target (n) -> loss[0] = mean element loss of `kind`; dpred (n) =
 * grad_scale * d loss / d pred when not NULL */
int cpu_pointwise_loss(void *ctx, int kind, float *loss, float *dpred, const float *pred,
                       const float *target, int64_t n, float grad_scale)
{
    cpu_ctx *c = ctx;
    if (n == 0) {
        loss[0] = 0.0f;
        return MLTK_OK;
    }
    pw_args a = { .kind = kind, .d = dpred, .x = pred, .t = target,
                  .scale = (double)grad_scale / (double)n, .partials = c->partials };
    int64_t work = n * (kind == PW_BCE_LOGITS ? 16 : 4);
    int chunks = cpu_pool_chunks(c->pool, n, work, GRAIN);
    double total = cpu_reduce_run(c, pw_chunk, &a, n, chunks, ALIGN_F, work);
    loss[0] = (float)(total / (double)n);
    return MLTK_OK;
}

/* ---- distillation: KL divergence of temperature-scaled softmaxes ---- */

typedef struct kl_args {
    float       *d;
    const float *s, *t;
    int64_t      C;
    double       invT;
    double       gscale;   /* grad_scale * T / N */
    double      *partials;
} kl_args;

/* Rows [b, e).  With q = softmax(t / T), p = softmax(s / T), the row's
 * KL(q || p) = sum_c q_c (log q_c - log p_c) (terms with q_c == 0 are 0,
 * as xlogy); d/ds_j of T^2 KL is T (p_j - q_j). */
KERNEL static double k_kl(const kl_args *a, int64_t b, int64_t e)
{
    const int64_t C = a->C;
    const double it = a->invT;
    double total = 0.0;
    for (int64_t r = b; r < e; r++) {
        const float *s = a->s + r * C, *t = a->t + r * C;
        double ms = (double)s[0] * it, mt = (double)t[0] * it;
        for (int64_t c = 1; c < C; c++) {
            double vs = (double)s[c] * it, vt = (double)t[c] * it;
            ms = vs > ms ? vs : ms;
            mt = vt > mt ? vt : mt;
        }
        double ss = 0.0, st = 0.0;
        for (int64_t c = 0; c < C; c++) {
            ss += exp((double)s[c] * it - ms);
            st += exp((double)t[c] * it - mt);
        }
        double lss = ms + log(ss), lst = mt + log(st);
        double kl = 0.0;
        for (int64_t c = 0; c < C; c++) {
            double lq = (double)t[c] * it - lst, lp = (double)s[c] * it - lss;
            double q = exp(lq);
            if (q > 0.0)
                kl += q * (lq - lp);
            if (a->d)
                a->d[r * C + c] = (float)((exp(lp) - q) * a->gscale);
        }
        total += kl;
    }
    return total;
}

static void kl_chunk(void *arg, int64_t b, int64_t e, int chunk)
{
    const kl_args *a = arg;
    a->partials[chunk * PARTIAL_STRIDE] = k_kl(a, b, e);
}

/* student, teacher (N, C) logits -> loss[0] = T^2 / N sum over rows of
 * KL(softmax(teacher / T) || softmax(student / T)) (PyTorch's kl_div with
 * reduction = batchmean, times T^2); dstudent (N, C) = grad_scale *
 * d loss / d student when not NULL */
int cpu_kl_div_logits(void *ctx, float *loss, float *dstudent, const float *student,
                      const float *teacher, int64_t N, int64_t C, float T,
                      float grad_scale)
{
    cpu_ctx *c = ctx;
    if (N == 0) {
        loss[0] = 0.0f;
        return MLTK_OK;
    }
    double Td = (double)T;
    kl_args a = { .d = dstudent, .s = student, .t = teacher, .C = C, .invT = 1.0 / Td,
                  .gscale = (double)grad_scale * Td / (double)N,
                  .partials = c->partials };
    int64_t work = N * C * 16;
    int chunks = cpu_pool_chunks(c->pool, N, work, GRAIN);
    double total = cpu_reduce_run(c, kl_chunk, &a, N, chunks, 1, work);
    loss[0] = (float)(total * Td * Td / (double)N);
    return MLTK_OK;
}

/* ---- gather_augment_2d ---- */

typedef struct augment_args {
    float         *y;
    const float   *x;
    const int32_t *idx;
    int64_t        C, H, W, pad;
    int            flip;
    uint64_t       seed, offset;
} augment_args;

/* rows [begin, end): each draws its shift and flip from its own counters,
 * so the result does not depend on the partition */
static void augment_chunk(void *arg, int64_t begin, int64_t end, int chunk)
{
    const augment_args *a = arg;
    const int64_t C = a->C, H = a->H, W = a->W, plane = H * W, span = 2 * a->pad + 1;
    (void)chunk;
    for (int64_t i = begin; i < end; i++) {
        uint64_t c0 = a->offset + 4 * (uint64_t)i;
        int64_t sh = (int64_t)((double)mltk_rng_u01(a->seed, c0) * (double)span) - a->pad;
        int64_t sw = (int64_t)((double)mltk_rng_u01(a->seed, c0 + 1) * (double)span) - a->pad;
        int f = a->flip && mltk_rng_u01(a->seed, c0 + 2) < 0.5f;
        const float *src = a->x + (size_t)a->idx[i] * (size_t)(C * plane);
        float *dst = a->y + (size_t)i * (size_t)(C * plane);
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t h = 0; h < H; h++) {
                float *d = dst + ch * plane + h * W;
                int64_t hs = h + sh;
                if (hs < 0 || hs >= H) {
                    memset(d, 0, (size_t)W * sizeof(float));
                    continue;
                }
                const float *s = src + ch * plane + hs * W;
                for (int64_t w = 0; w < W; w++) {
                    int64_t ws = (f ? W - 1 - w : w) + sw;
                    d[w] = ws >= 0 && ws < W ? s[ws] : 0.0f;
                }
            }
    }
}

/* y (rows,C,H,W) from images x (M,C,H,W) [idx[i]] (see backend.h); the
 * indices are checked against M before anything is written */
int cpu_gather_augment_2d(void *ctx, float *y, const float *x, const int32_t *idx,
                          int64_t rows, int64_t M, int64_t C, int64_t H, int64_t W,
                          int64_t pad, int flip, uint64_t seed, uint64_t offset,
                          char **err)
{
    cpu_ctx *c = ctx;
    if (rows == 0 || C == 0 || H == 0 || W == 0)
        return MLTK_OK;
    for (int64_t i = 0; i < rows; i++)
        if (idx[i] < 0 || idx[i] >= M)
            return mltk_errf(err, MLTK_ERR_INVALID,
                             "gather_augment_2d: index %ld at row %lld outside [0, %lld)",
                             (long)idx[i], (long long)i, (long long)M);
    augment_args a = { .y = y, .x = x, .idx = idx, .C = C, .H = H, .W = W, .pad = pad,
                       .flip = flip != 0, .seed = seed, .offset = offset };
    int64_t per = C * H * W;
    int64_t work = per > INT64_MAX / rows ? INT64_MAX : per * rows;
    int chunks = cpu_pool_chunks(c->pool, rows, work, GRAIN);
    cpu_pool_run(c->pool, augment_chunk, &a, rows, chunks, 1, work);
    return MLTK_OK;
}
