/* batchnorm.c - batch normalisation per channel, as PyTorch's BatchNorm1d,
 * BatchNorm2d and BatchNorm3d.
 *
 * What this is: a layer plugin over the batchnorm ops of the backend
 * contract.  Dimension 0 of a sample is the channel: a 1-d sample (C) is
 * BatchNorm1d on (N, C), (C, L) is BatchNorm1d on (N, C, L), (C, H, W)
 * BatchNorm2d, and so on; the op sees x as (N, C, L) with L the product of
 * the remaining dimensions.
 *
 *   training:   y = weight (x - batch mean) / sqrt(batch var + eps) + bias,
 *               with the biased batch variance; the running statistics
 *               move: running = (1 - momentum) running + momentum batch,
 *               with the unbiased variance (PyTorch's semantics).
 *   evaluation: the running statistics instead of the batch's.
 *   frozen (`freeze = true` while training): as evaluation, the running
 *               statistics do not move; gradients then flow through the
 *               fixed affine map.
 *
 * The running statistics start at mean 0 and variance 1.  They are
 * persistent state ("running_mean", "running_var", PyTorch's names), not
 * trainable parameters: the core sets their start values, and saves and
 * restores them with the weights.  Training with a single value per
 * channel (batch * L == 1) is refused, as in PyTorch.
 *
 * What this is not: momentum = None (PyTorch's cumulative average), or
 * statistics synchronised across processes (SyncBatchNorm).
 */
#include <stdlib.h>
#include <mltk/plugin.h>

/* ---- state ---------------------------------------------------------------- */

/* layout of the "aux" buffer, in units of C floats */
enum { AUX_ONES, AUX_ZEROS, AUX_INVSTD, AUX_DGAMMA, AUX_DBETA, AUX_N };

typedef struct batchnorm {
    float   momentum, eps;
    int     affine;
    int64_t C, L;
    int     p_weight, p_bias;        /* param indices, -1 without affine */
    int     b_rmean, b_rvar;         /* running statistics (C) */
    int     b_mean, b_invstd;        /* batch statistics saved for backward (C) */
    int     b_aux;                   /* AUX_N * C floats, see above */
    int     initialised;             /* the constant vectors are set */
    int     batch_stats;             /* the last forward used batch statistics */
} batchnorm;

/* ---- lifetime ------------------------------------------------------------- */

static int bn_create(void **self, const mltk_params_t *params, char **err)
{
    double momentum = mltk_params_float(params, "momentum");
    double eps = mltk_params_float(params, "eps");
    batchnorm *b;

    if (!(momentum >= 0.0 && momentum <= 1.0))
        return mltk_errf(err, MLTK_ERR_CONFIG, "momentum must be in [0, 1], not %g",
                         momentum);
    if (!(eps > 0.0))
        return mltk_errf(err, MLTK_ERR_CONFIG, "eps must be > 0, not %g", eps);
    b = calloc(1, sizeof(*b));
    if (!b)
        return mltk_errf(err, MLTK_ERR_NOMEM, "batchnorm: out of memory");
    b->momentum = (float)momentum;
    b->eps = (float)eps;
    b->affine = mltk_params_bool(params, "affine");
    b->p_weight = b->p_bias = -1;
    *self = b;
    return MLTK_OK;
}

static void bn_destroy(void *self)
{
    free(self);
}

/* ---- shapes --------------------------------------------------------------- */

static int bn_buffer(mltk_layer_setup_t *s, const char *name, int64_t floats,
                     int *idx, char **err)
{
    size_t bytes;
    int rc = MLTK_ERR_SHAPE;
    if (!mltk_size_bytes(&bytes, floats, sizeof(float)))
        rc = mltk_layer_add_buffer(s, name, bytes);
    if (rc < 0)
        return mltk_errf(err, rc, "cannot declare the %s buffer", name);
    *idx = rc;
    return MLTK_OK;
}

/* running statistics: the core sets their start values, checkpoints them
 * and restores them */
static int bn_state(mltk_layer_setup_t *s, const char *name, const mltk_shape *cs,
                    float init, int *idx, char **err)
{
    int rc = mltk_layer_add_state(s, name, cs, init);
    if (rc < 0)
        return mltk_errf(err, rc, "cannot declare the %s statistics", name);
    *idx = rc;
    return MLTK_OK;
}

static int bn_setup(void *self, mltk_layer_setup_t *s, int n_in,
                    const mltk_shape *in, mltk_shape *out, char **err)
{
    static const mltk_op ops[] = { MLTK_OP_BATCHNORM_FORWARD_TRAIN,
                                   MLTK_OP_BATCHNORM_FORWARD_EVAL,
                                   MLTK_OP_BATCHNORM_BACKWARD, MLTK_OP_FILL };
    batchnorm *b = self;
    mltk_shape cs;
    int rc = MLTK_OK;

    if (n_in != 1)
        return mltk_errf(err, MLTK_ERR_SHAPE, "expected 1 input, got %d", n_in);
    if (in[0].ndim < 1 || in[0].dim[0] < 1)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "expected a per-sample shape (C) or (C, ...) with channels first");
    for (size_t i = 0; !rc && i < sizeof(ops) / sizeof(ops[0]); i++)
        rc = mltk_layer_need_op(s, ops[i], MLTK_F32, err);
    if (rc)
        return rc;
    int64_t numel, aux;
    if (mltk_size_numel(&numel, &in[0]) || mltk_size_mul(&aux, AUX_N, in[0].dim[0]))
        return mltk_errf(err, MLTK_ERR_SHAPE, "the input's size overflows");
    b->C = in[0].dim[0];
    b->L = numel / b->C;
    b->initialised = 0;
    cs = mltk_shape_make(1, &b->C);
    if (b->affine) {
        rc = mltk_layer_add_param(s, "weight", &cs, (mltk_init){ MLTK_INIT_CONST, 1.0, 0.0 });
        if (rc < 0)
            return mltk_errf(err, rc, "cannot declare the weight");
        b->p_weight = rc;
        rc = mltk_layer_add_param(s, "bias", &cs, (mltk_init){ MLTK_INIT_ZEROS, 0.0, 0.0 });
        if (rc < 0)
            return mltk_errf(err, rc, "cannot declare the bias");
        b->p_bias = rc;
    }
    if ((rc = bn_state(s, "running_mean", &cs, 0.0f, &b->b_rmean, err))
        || (rc = bn_state(s, "running_var", &cs, 1.0f, &b->b_rvar, err))
        || (rc = bn_buffer(s, "save_mean", b->C, &b->b_mean, err))
        || (rc = bn_buffer(s, "save_invstd", b->C, &b->b_invstd, err))
        || (rc = bn_buffer(s, "aux", aux, &b->b_aux, err)))
        return rc;
    *out = in[0];
    return MLTK_OK;
}

/* ---- helpers -------------------------------------------------------------- */

/* a (C) vector of floats */
static mltk_tensor bn_vec(const batchnorm *b, void *data)
{
    return mltk_tensor_1d(data, MLTK_F32, b->C);
}

/* n samples of (C, L) */
static mltk_tensor bn_ncl(const batchnorm *b, void *data, int64_t n)
{
    const int64_t dims[3] = { n, b->C, b->L };
    return mltk_tensor_make(data, MLTK_F32, 3, dims);
}

/* part `part` of the aux buffer, (C) */
static mltk_tensor bn_aux(const batchnorm *b, const mltk_layer_run *r, int part)
{
    return bn_vec(b, (float *)r->buffers[b->b_aux].data + part * b->C);
}

/* buffer or state `idx` seen as (C) */
static mltk_tensor bn_buf(const batchnorm *b, const mltk_layer_run *r, int idx)
{
    return bn_vec(b, r->buffers[idx].data);
}

/* the constant vectors (the running statistics are state the core
 * initialises and restores) */
static int bn_initialise(batchnorm *b, const mltk_layer_run *r)
{
    const mltk_tensor ones = bn_aux(b, r, AUX_ONES), zeros = bn_aux(b, r, AUX_ZEROS);
    int rc = mltk_op_fill(r->be, &ones, 1.0f);
    if (!rc)
        rc = mltk_op_fill(r->be, &zeros, 0.0f);
    if (!rc)
        b->initialised = 1;
    return rc;
}

/* the affine weight and bias, or ones and zeros without affine */
static mltk_tensor bn_gamma(const batchnorm *b, const mltk_layer_run *r)
{
    return b->affine ? bn_vec(b, r->params[b->p_weight].data) : bn_aux(b, r, AUX_ONES);
}

static mltk_tensor bn_beta(const batchnorm *b, const mltk_layer_run *r)
{
    return b->affine ? bn_vec(b, r->params[b->p_bias].data) : bn_aux(b, r, AUX_ZEROS);
}

/* ---- forward -------------------------------------------------------------- */

/* x (B, C, ...) -> y (B, C, ...), read as (B, C, L) */
static int bn_forward(void *self, const mltk_layer_run *r)
{
    batchnorm *b = self;
    const struct mltk_backend *be = r->be;
    const mltk_tensor rmean = bn_buf(b, r, b->b_rmean), rvar = bn_buf(b, r, b->b_rvar);
    const mltk_bn_params bp = { .momentum = b->momentum, .eps = b->eps };
    mltk_tensor x, y, gamma, beta;
    int rc;

    if (!b->initialised && (rc = bn_initialise(b, r)))
        return rc;
    b->batch_stats = r->mode == MLTK_TRAIN && !r->frozen;
    if (r->batch == 0)
        return MLTK_OK;
    x = bn_ncl(b, r->x[0].data, r->batch);
    y = bn_ncl(b, r->y->data, r->batch);
    gamma = bn_gamma(b, r);
    beta = bn_beta(b, r);
    if (b->batch_stats) {
        const mltk_tensor mean = bn_buf(b, r, b->b_mean);
        const mltk_tensor invstd = bn_buf(b, r, b->b_invstd);
        if (r->batch * b->L < 2) {
            mltk_log(MLTK_LOG_ERROR,
                     "batchnorm: training needs more than one value per channel "
                     "(batch %lld x %lld positions)",
                     (long long)r->batch, (long long)b->L);
            return MLTK_ERR_INVALID;
        }
        return mltk_op_batchnorm_forward_train(be, &y, &mean, &invstd, &rmean, &rvar, &x,
                                               &gamma, &beta, &bp);
    }
    return mltk_op_batchnorm_forward_eval(be, &y, &x, &gamma, &beta, &rmean, &rvar, &bp);
}

/* ---- backward ------------------------------------------------------------- */

/* After a forward with batch statistics: the training-mode backward op.
 * After one with running statistics (frozen, or a forward in evaluation
 * mode) y = weight invstd (x - mean) + bias is an affine map per channel
 * with invstd = 1/sqrt(running_var + eps):
 *   dx = weight invstd dy            (batchnorm_forward_eval of dy with
 *                                     mean 0, shift 0)
 *   dweight = sum dy (x - mean) invstd,  dbias = sum dy
 *                                    (the backward op's parameter sums,
 *                                     given mean and invstd) */
static int bn_backward(void *self, const mltk_layer_run *r)
{
    batchnorm *b = self;
    const struct mltk_backend *be = r->be;
    const mltk_bn_params bp = { .momentum = b->momentum, .eps = b->eps };
    const int want_dx = r->dx && r->dx[0].data;
    const mltk_tensor dg = b->affine ? bn_vec(b, r->grads[b->p_weight].data)
                                     : bn_aux(b, r, AUX_DGAMMA);
    const mltk_tensor db = b->affine ? bn_vec(b, r->grads[b->p_bias].data)
                                     : bn_aux(b, r, AUX_DBETA);
    const mltk_tensor zeros = bn_aux(b, r, AUX_ZEROS), ones = bn_aux(b, r, AUX_ONES);
    const mltk_tensor rvar = bn_buf(b, r, b->b_rvar);
    mltk_tensor dx, dy, x, gamma;
    int rc;

    if (r->batch == 0) {
        if (!b->affine)
            return MLTK_OK;
        rc = mltk_op_fill(be, &dg, 0.0f);
        return rc ? rc : mltk_op_fill(be, &db, 0.0f);
    }
    dx = bn_ncl(b, want_dx ? r->dx[0].data : NULL, r->batch);
    dy = bn_ncl(b, r->dy->data, r->batch);
    x = bn_ncl(b, r->x[0].data, r->batch);
    gamma = bn_gamma(b, r);
    if (b->batch_stats) {
        const mltk_tensor mean = bn_buf(b, r, b->b_mean);
        const mltk_tensor invstd = bn_buf(b, r, b->b_invstd);
        if (!want_dx && !b->affine)
            return MLTK_OK;
        return mltk_op_batchnorm_backward(be, want_dx ? &dx : NULL, &dg, &db, &dy, &x,
                                          &gamma, &mean, &invstd);
    }
    if (b->affine) {
        /* invstd = 1 / sqrt(running_var + eps): the eval op on one sample
         * (1, C, 1) of ones with mean 0, scale 1, shift 0 */
        const int64_t one[3] = { 1, b->C, 1 };
        const mltk_tensor invstd = bn_aux(b, r, AUX_INVSTD);
        const mltk_tensor inv1 = mltk_tensor_make(invstd.data, MLTK_F32, 3, one);
        const mltk_tensor ones1 = mltk_tensor_make(ones.data, MLTK_F32, 3, one);
        const mltk_tensor rmean = bn_buf(b, r, b->b_rmean);

        rc = mltk_op_batchnorm_forward_eval(be, &inv1, &ones1, &ones, &zeros, &zeros, &rvar,
                                            &bp);
        /* the parameter sums only: dx follows from the affine map below */
        if (!rc)
            rc = mltk_op_batchnorm_backward(be, NULL, &dg, &db, &dy, &x, &gamma, &rmean,
                                            &invstd);
        if (rc)
            return rc;
    }
    if (!want_dx)
        return MLTK_OK;
    return mltk_op_batchnorm_forward_eval(be, &dx, &dy, &gamma, &zeros, &zeros, &rvar, &bp);
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_layer_i bn_iface = {
    .size = sizeof(struct mltk_layer_i),
    .create = bn_create,
    .destroy = bn_destroy,
    .setup = bn_setup,
    .forward = bn_forward,
    .backward = bn_backward,
    .inplace = NULL,
};

MLTK_PLUGIN(batchnorm, MLTK_KIND_LAYER, &bn_iface)
