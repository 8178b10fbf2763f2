/* layernorm.c - layer normalisation, as PyTorch's nn.LayerNorm.
 *
 * What this is: a layer plugin over the layernorm ops of the backend
 * contract.  Each sample is normalised over its last dimension (axis = last,
 * nn.LayerNorm(shape[-1])) or over its whole shape (axis = all,
 * nn.LayerNorm(shape)):
 *   y = (x - mean) / sqrt(var + eps) * weight + bias
 * with the biased variance; weight (initially 1) and bias (initially 0)
 * have the normalised shape and exist when affine = true.  The same
 * computation runs in training and evaluation; there are no running
 * statistics.  Mean and 1/std of every normalised row are kept for
 * backward.
 *
 * What this is not: RMSNorm or group normalisation.
 */
#include <stdlib.h>
#include <string.h>
#include <mltk/plugin.h>

/* ---- state ---------------------------------------------------------------- */

typedef struct layernorm {
    float   eps;
    int     affine;
    int     all;          /* axis = all */
    int64_t cols;         /* values per normalised row */
    int64_t rows;         /* rows per sample */
    int     p_weight, p_bias;
    int     b_mean, b_rstd;
} layernorm;

/* ---- lifetime ------------------------------------------------------------- */

static int ln_create(void **self, const mltk_params_t *params, char **err)
{
    double eps = mltk_params_float(params, "eps");
    const char *axis = mltk_params_str(params, "axis");
    layernorm *l;

    if (!(eps > 0.0))
        return mltk_errf(err, MLTK_ERR_CONFIG, "eps must be > 0, not %g", eps);
    if (!axis || (strcmp(axis, "last") != 0 && strcmp(axis, "all") != 0))
        return mltk_errf(err, MLTK_ERR_CONFIG, "axis must be last or all, not '%s'",
                         axis ? axis : "");
    l = calloc(1, sizeof(*l));
    if (!l)
        return mltk_errf(err, MLTK_ERR_NOMEM, "layernorm: out of memory");
    l->eps = (float)eps;
    l->affine = mltk_params_bool(params, "affine");
    l->all = strcmp(axis, "all") == 0;
    l->p_weight = l->p_bias = l->b_mean = l->b_rstd = -1;
    *self = l;
    return MLTK_OK;
}

static void ln_destroy(void *self)
{
    free(self);
}

/* ---- shapes --------------------------------------------------------------- */

static int ln_setup(void *self, mltk_layer_setup_t *s, int n_in,
                    const mltk_shape *in, mltk_shape *out, char **err)
{
    layernorm *l = self;
    int64_t mb = mltk_layer_max_batch(s), numel, rows_all;
    size_t bytes;
    mltk_shape ps;
    int rc;

    if (n_in != 1)
        return mltk_errf(err, MLTK_ERR_SHAPE, "expected 1 input, got %d", n_in);
    if (in[0].ndim < 1)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "expected a per-sample shape with at least one dimension");
    rc = mltk_layer_need_op(s, MLTK_OP_LAYERNORM_FORWARD, MLTK_F32, err);
    if (!rc)
        rc = mltk_layer_need_op(s, MLTK_OP_LAYERNORM_BACKWARD, MLTK_F32, err);
    if (!rc)
        rc = mltk_layer_need_op(s, MLTK_OP_FILL, MLTK_F32, err);
    if (rc)
        return rc;
    if (mltk_size_numel(&numel, &in[0]))
        return mltk_errf(err, MLTK_ERR_SHAPE, "the input's size overflows");
    if (l->all) {
        ps = in[0];
        l->cols = numel;
    } else {
        l->cols = in[0].dim[in[0].ndim - 1];
        ps = mltk_shape_make(1, &l->cols);
    }
    if (l->cols < 1)
        return mltk_errf(err, MLTK_ERR_SHAPE, "nothing to normalise: an empty dimension");
    l->rows = numel / l->cols;
    /* the mean and rstd buffers: (B, rows) floats each */
    if (mltk_size_mul(&rows_all, mb, l->rows) || mltk_size_bytes(&bytes, rows_all, sizeof(float)))
        return mltk_errf(err, MLTK_ERR_SHAPE, "the statistics for batches of %lld overflow",
                         (long long)mb);
    if (l->affine) {
        rc = mltk_layer_add_param(s, "weight", &ps, (mltk_init){ MLTK_INIT_CONST, 1.0, 0.0 });
        if (rc < 0)
            return mltk_errf(err, rc, "cannot declare the weight");
        l->p_weight = rc;
        rc = mltk_layer_add_param(s, "bias", &ps, (mltk_init){ MLTK_INIT_ZEROS, 0.0, 0.0 });
        if (rc < 0)
            return mltk_errf(err, rc, "cannot declare the bias");
        l->p_bias = rc;
    }
    rc = mltk_layer_add_buffer(s, "mean", bytes);
    if (rc < 0)
        return mltk_errf(err, rc, "cannot declare the mean buffer");
    l->b_mean = rc;
    rc = mltk_layer_add_buffer(s, "rstd", bytes);
    if (rc < 0)
        return mltk_errf(err, rc, "cannot declare the rstd buffer");
    l->b_rstd = rc;
    *out = in[0];
    return MLTK_OK;
}

/* ---- forward and backward ------------------------------------------------- */

/* the normalised rows of this call: (B rows, cols) */
static mltk_tensor ln_rows(const layernorm *l, void *data, int64_t batch)
{
    return mltk_tensor_2d(data, MLTK_F32, batch * l->rows, l->cols);
}

/* one value per normalised row (mean, rstd), or per column (parameters) */
static mltk_tensor ln_vec(void *data, int64_t n)
{
    return mltk_tensor_1d(data, MLTK_F32, n);
}

/* x (B, ...) read as (B rows, cols) -> y of the same shape */
static int ln_forward(void *self, const mltk_layer_run *r)
{
    const layernorm *l = self;
    const int64_t n = r->batch * l->rows;
    const mltk_ln_params lp = { .eps = l->eps };
    mltk_tensor x, y, mean, rstd, gamma, beta;

    if (r->batch == 0)
        return MLTK_OK;
    x = ln_rows(l, r->x[0].data, r->batch);
    y = ln_rows(l, r->y->data, r->batch);
    mean = ln_vec(r->buffers[l->b_mean].data, n);
    rstd = ln_vec(r->buffers[l->b_rstd].data, n);
    gamma = ln_vec(l->affine ? r->params[l->p_weight].data : NULL, l->cols);
    beta = ln_vec(l->affine ? r->params[l->p_bias].data : NULL, l->cols);
    return mltk_op_layernorm_forward(r->be, &y, &mean, &rstd, &x, &gamma, &beta, &lp);
}

/* dx (when wanted), dweight and dbias (with affine) in one op */
static int ln_backward(void *self, const mltk_layer_run *r)
{
    const layernorm *l = self;
    const struct mltk_backend *be = r->be;
    const int64_t n = r->batch * l->rows;
    const int want_dx = r->dx && r->dx[0].data;
    const mltk_tensor dg = ln_vec(l->affine ? r->grads[l->p_weight].data : NULL, l->cols);
    const mltk_tensor db = ln_vec(l->affine ? r->grads[l->p_bias].data : NULL, l->cols);
    mltk_tensor dx, dy, x, gamma, mean, rstd;

    if (!want_dx && !l->affine)
        return MLTK_OK;
    if (r->batch == 0) {  /* no rows: the parameter gradients are zero */
        int rc;
        if (!l->affine)
            return MLTK_OK;
        rc = mltk_op_fill(be, &dg, 0.0f);
        return rc ? rc : mltk_op_fill(be, &db, 0.0f);
    }
    dx = ln_rows(l, want_dx ? r->dx[0].data : NULL, r->batch);
    dy = ln_rows(l, r->dy->data, r->batch);
    x = ln_rows(l, r->x[0].data, r->batch);
    gamma = ln_vec(l->affine ? r->params[l->p_weight].data : NULL, l->cols);
    mean = ln_vec(r->buffers[l->b_mean].data, n);
    rstd = ln_vec(r->buffers[l->b_rstd].data, n);
    return mltk_op_layernorm_backward(be, &dx, &dg, &db, &dy, &x, &gamma, &mean, &rstd);
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_layer_i ln_iface = {
    .size = sizeof(struct mltk_layer_i),
    .create = ln_create,
    .destroy = ln_destroy,
    .setup = ln_setup,
    .forward = ln_forward,
    .backward = ln_backward,
    .inplace = NULL,
};

MLTK_PLUGIN(layernorm, MLTK_KIND_LAYER, &ln_iface)
