/* layernorm.c - layer normalisation, as PyTorch's nn.LayerNorm.
 *
 * What this is: a layer plugin over the backend's layernorm ops (ABI
 * 1.1).  Each sample is normalised over its last dimension (axis = last,
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
    const struct mltk_backend *be = mltk_layer_backend(s);
    int64_t mb = mltk_layer_max_batch(s);
    mltk_shape ps;
    int rc;

    if (n_in != 1)
        return mltk_errf(err, MLTK_ERR_SHAPE, "expected 1 input, got %d", n_in);
    if (in[0].ndim < 1)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "expected a per-sample shape with at least one dimension");
    if (be && (!MLTK_BACKEND_HAS(be, layernorm_forward)
               || !MLTK_BACKEND_HAS(be, layernorm_backward)))
        return mltk_errf(err, MLTK_ERR_UNSUPPORTED, "backend '%s' has no layernorm ops",
                         be->name);
    if (l->all) {
        ps = in[0];
        l->cols = mltk_shape_numel(&in[0]);
    } else {
        l->cols = in[0].dim[in[0].ndim - 1];
        ps = mltk_shape_make(1, &l->cols);
    }
    if (l->cols < 1)
        return mltk_errf(err, MLTK_ERR_SHAPE, "nothing to normalise: an empty dimension");
    l->rows = mltk_shape_numel(&in[0]) / l->cols;
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
    rc = mltk_layer_add_buffer(s, "mean", (size_t)(mb * l->rows) * sizeof(float));
    if (rc < 0)
        return mltk_errf(err, rc, "cannot declare the mean buffer");
    l->b_mean = rc;
    rc = mltk_layer_add_buffer(s, "rstd", (size_t)(mb * l->rows) * sizeof(float));
    if (rc < 0)
        return mltk_errf(err, rc, "cannot declare the rstd buffer");
    l->b_rstd = rc;
    *out = in[0];
    return MLTK_OK;
}

/* ---- forward and backward ------------------------------------------------- */

/* x (B, ...) read as (B rows, cols) -> y of the same shape */
static int ln_forward(void *self, const mltk_layer_run *r)
{
    const layernorm *l = self;
    const struct mltk_backend *be = r->be;

    if (r->batch == 0)
        return MLTK_OK;
    return be->i->layernorm_forward(be->ctx, r->y->data, r->x[0].data,
                                    l->affine ? r->params[l->p_weight].data : NULL,
                                    l->affine ? r->params[l->p_bias].data : NULL,
                                    r->buffers[l->b_mean].data, r->buffers[l->b_rstd].data,
                                    r->batch * l->rows, l->cols, l->eps);
}

/* dx (when wanted), dweight and dbias (with affine) in one op */
static int ln_backward(void *self, const mltk_layer_run *r)
{
    const layernorm *l = self;
    const struct mltk_backend *be = r->be;
    float *dx = r->dx && r->dx[0].data ? r->dx[0].data : NULL;
    float *dg = l->affine ? r->grads[l->p_weight].data : NULL;
    float *db = l->affine ? r->grads[l->p_bias].data : NULL;

    if (!dx && !l->affine)
        return MLTK_OK;
    if (r->batch == 0) {
        int rc = be->i->fill(be->ctx, dg, 0.0f, l->cols);
        return rc ? rc : be->i->fill(be->ctx, db, 0.0f, l->cols);
    }
    return be->i->layernorm_backward(be->ctx, dx, dg, db, r->dy->data, r->x[0].data,
                                     l->affine ? r->params[l->p_weight].data : NULL,
                                     r->buffers[l->b_mean].data,
                                     r->buffers[l->b_rstd].data, r->batch * l->rows,
                                     l->cols);
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
