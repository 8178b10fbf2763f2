/* dense.c - the fully connected layer, y = act(x W^T + b).
 *
 * What this is: a layer plugin written only against the backend op
 * contract (gemm, act_backward, sum_rows, fill), so it runs on every
 * backend unchanged.  The input may have any per-sample shape; it is read
 * as a flat row of numel(shape) features, so a dense layer can follow a
 * convolution without an explicit flatten.  The bias add and the optional
 * activation are the gemm's epilogue: forward is one op.
 *
 * The weight starts as PyTorch's nn.Linear does unless `init` names another
 * initialiser (he_normal, xavier_uniform, ...; fan_in = input features,
 * fan_out = units); the bias keeps PyTorch's default or starts at zero
 * (`bias_init = zeros`).
 *
 * Under [run] precision = bf16 (mltk_layer_precision) the three products
 * take bf16 operands and accumulate in f32: forward casts x to bf16 (kept
 * for backward: it is the saved activation the weight gradient reads) and
 * multiplies it by the bf16 copy of the weight (mltk_layer_run.params_lp),
 * with the f32 bias and activation in the epilogue; backward casts the
 * f32 pre-activation gradient dz to bf16 for dW = dz^T x and dx = dz W.
 * The output y, the gradients dW, db and dx, and db's sum stay f32.
 *
 * What this is not: a layer that keeps its pre-activation.  Every
 * supported activation's derivative is a function of its output
 * (relu: y > 0; leaky_relu with slope >= 0: y > 0; sigmoid: y (1 - y);
 * tanh: 1 - y^2), so backward derives it from y and the forward pass
 * stores nothing beyond the output the core already keeps.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mltk/plugin.h>

/* ---- state ---------------------------------------------------------------- */

typedef struct dense {
    int64_t  units;
    int      bias;       /* 1 if the layer has a bias vector */
    mltk_act act;
    float    alpha;      /* negative slope for leaky_relu */
    int64_t  in;         /* input features, known after setup */
    int      p_weight;   /* param index of weight (units, in) */
    int      p_bias;     /* param index of bias (units), or -1 */
    int      b_dz;       /* buffer index of the pre-activation gradient, or -1 */
    mltk_dtype lp;       /* dtype of the products' operands: f32, or bf16 */
    int      b_xlp;      /* low precision only: x (B, in) in lp, kept for backward */
    int      b_dzlp;     /* low precision only: dz (B, units) in lp */
    char     init[32];   /* weight initialiser name (mltk_init_named) */
    double   init_std;   /* its standard deviation for init = normal */
    int      bias_zeros; /* bias_init = zeros */
} dense;

static const struct {
    const char *name;
    mltk_act    act;
} dense_acts[] = {
    { "none", MLTK_ACT_NONE },
    { "relu", MLTK_ACT_RELU },
    { "leaky_relu", MLTK_ACT_LEAKY_RELU },
    { "sigmoid", MLTK_ACT_SIGMOID },
    { "tanh", MLTK_ACT_TANH },
};

/* ---- lifetime ------------------------------------------------------------- */

static int dense_create(void **self, const mltk_params_t *params, char **err)
{
    const char *act = mltk_params_str(params, "activation");
    int64_t units = mltk_params_int(params, "units");
    double alpha = mltk_params_float(params, "negative_slope");
    const char *init, *bias_init;
    size_t i, n_acts = sizeof(dense_acts) / sizeof(dense_acts[0]);
    dense *d;

    for (i = 0; i < n_acts; i++)
        if (act && strcmp(act, dense_acts[i].name) == 0)
            break;
    if (i == n_acts)
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "unknown activation '%s' (expected none, relu, "
                         "leaky_relu, sigmoid or tanh)", act ? act : "");
    if (units < 1)
        return mltk_errf(err, MLTK_ERR_CONFIG, "units must be >= 1, not %lld",
                         (long long)units);
    if (dense_acts[i].act == MLTK_ACT_LEAKY_RELU && !(alpha >= 0.0))
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "negative_slope must be >= 0 (the gradient is "
                         "derived from the output's sign)");
    d = calloc(1, sizeof(*d));
    if (!d)
        return mltk_errf(err, MLTK_ERR_NOMEM, "dense: out of memory");
    d->units = units;
    d->bias = mltk_params_bool(params, "bias");
    d->act = dense_acts[i].act;
    d->alpha = (float)alpha;
    d->p_weight = d->p_bias = d->b_dz = d->b_xlp = d->b_dzlp = -1;
    d->lp = MLTK_F32;
    init = mltk_params_str(params, "init");
    snprintf(d->init, sizeof(d->init), "%s", init && *init ? init : "default");
    d->init_std = mltk_params_float(params, "init_std");
    bias_init = mltk_params_str(params, "bias_init");
    d->bias_zeros = bias_init && strcmp(bias_init, "zeros") == 0;
    *self = d;
    return MLTK_OK;
}

static void dense_destroy(void *self)
{
    free(self);
}

/* ---- shapes --------------------------------------------------------------- */

/* the ops forward and backward run, so that a backend lacking one is
 * refused when the session is built */
static int dense_need_ops(const dense *d, mltk_layer_setup_t *s, char **err)
{
    int rc = mltk_layer_need_op(s, MLTK_OP_GEMM, d->lp, err);
    if (!rc && d->lp != MLTK_F32)  /* f32 -> lp: the cast's dtype is its input's */
        rc = mltk_layer_need_op(s, MLTK_OP_CAST, MLTK_F32, err);
    if (!rc)
        rc = mltk_layer_need_op(s, MLTK_OP_FILL, MLTK_F32, err);
    if (!rc && d->bias)
        rc = mltk_layer_need_op(s, MLTK_OP_SUM_ROWS, MLTK_F32, err);
    if (!rc && d->act != MLTK_ACT_NONE)
        rc = mltk_layer_need_op(s, MLTK_OP_ACT_BACKWARD, MLTK_F32, err);
    return rc;
}

static int dense_setup(void *self, mltk_layer_setup_t *s, int n_in,
                       const mltk_shape *in, mltk_shape *out, char **err)
{
    dense *d = self;
    double bound;
    mltk_init wi, bi;
    mltk_shape ws, bs;
    int64_t dims[2], nw, nx, nz, mb = mltk_layer_max_batch(s);
    int rc;

    if (n_in != 1)
        return mltk_errf(err, MLTK_ERR_SHAPE, "expected 1 input, got %d", n_in);
    if (mltk_size_numel(&d->in, &in[0]) || d->in < 1) {
        char buf[96];
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "input shape %s has no features",
                         mltk_shape_str(&in[0], buf, sizeof(buf)));
    }
    /* the matrix product's dimensions are ints (backend.h, gemm) */
    if (d->in > INT_MAX)
        return mltk_errf(err, MLTK_ERR_SHAPE, "%lld input features are more than the %d a "
                         "matrix product takes", (long long)d->in, INT_MAX);
    /* the weight and its gradient, in f32 */
    if (mltk_size_mul(&nw, d->units, d->in)
        || nw > MLTK_MAX_MODEL_BYTES / (2 * (int64_t)sizeof(float)))
        return mltk_errf(err, MLTK_ERR_CONFIG, "key 'units' = %lld with %lld input features "
                         "makes a weight (and its gradient) of more than the %lld TiB a model "
                         "may use",
                         (long long)d->units, (long long)d->in,
                         (long long)(MLTK_MAX_MODEL_BYTES >> 40));
    /* elements of the batch buffers: x (B, in) and dz (B, units) */
    if (mltk_size_mul(&nx, mb, d->in) || mltk_size_mul(&nz, mb, d->units))
        return mltk_errf(err, MLTK_ERR_SHAPE, "the buffers for batches of %lld overflow",
                         (long long)mb);
    /* the weight (units, in): fan_in = in, fan_out = units; `default` is
     * PyTorch nn.Linear's U(-1/sqrt(fan_in), 1/sqrt(fan_in)), which is
     * also the bias's unless bias_init = zeros */
    rc = mltk_init_named(d->init, (double)d->in, (double)d->units, d->init_std, &wi, err);
    if (rc)
        return rc;
    bound = 1.0 / sqrt((double)d->in);
    bi = d->bias_zeros ? (mltk_init){ MLTK_INIT_ZEROS, 0.0, 0.0 }
                       : (mltk_init){ MLTK_INIT_UNIFORM, -bound, bound };
    dims[0] = d->units;
    dims[1] = d->in;
    ws = mltk_shape_make(2, dims);
    rc = mltk_layer_add_param(s, "weight", &ws, wi);
    if (rc < 0)
        return mltk_errf(err, rc, "cannot declare the weight");
    d->p_weight = rc;
    d->p_bias = -1;
    if (d->bias) {
        bs = mltk_shape_make(1, dims);
        rc = mltk_layer_add_param(s, "bias", &bs, bi);
        if (rc < 0)
            return mltk_errf(err, rc, "cannot declare the bias");
        d->p_bias = rc;
    }
    d->lp = mltk_layer_precision(s);
    rc = dense_need_ops(d, s, err);
    if (rc)
        return rc;
    d->b_dz = d->b_xlp = d->b_dzlp = -1;
    if (d->lp != MLTK_F32) {
        size_t es = mltk_dtype_size(d->lp), xb, zb;
        if (mltk_size_bytes(&xb, nx, es) || mltk_size_bytes(&zb, nz, es))
            return mltk_errf(err, MLTK_ERR_SHAPE, "the %s buffers for batches of %lld "
                             "overflow", mltk_dtype_name(d->lp), (long long)mb);
        rc = mltk_layer_add_buffer(s, "x_lp", xb);
        if (rc < 0)
            return mltk_errf(err, rc, "cannot declare the %s input buffer",
                             mltk_dtype_name(d->lp));
        d->b_xlp = rc;
        rc = mltk_layer_add_buffer(s, "dz_lp", zb);
        if (rc < 0)
            return mltk_errf(err, rc, "cannot declare the %s gradient buffer",
                             mltk_dtype_name(d->lp));
        d->b_dzlp = rc;
    }
    if (d->act != MLTK_ACT_NONE) {
        size_t zb;
        if (mltk_size_bytes(&zb, nz, sizeof(float)))
            return mltk_errf(err, MLTK_ERR_SHAPE, "the gradient buffer for batches of %lld "
                             "overflows", (long long)mb);
        rc = mltk_layer_add_buffer(s, "dz", zb);
        if (rc < 0)
            return mltk_errf(err, rc, "cannot declare the gradient buffer");
        d->b_dz = rc;
    }
    *out = mltk_shape_make(1, dims);
    return MLTK_OK;
}

/* ---- forward -------------------------------------------------------------- */

/* x (B, in), weight (units, in), bias (units) -> y (B, units) = act(x W^T + b),
 * the bias and activation as the gemm's epilogue; in low precision x is
 * first cast to x_lp (B, in) and multiplied by the weight's lp copy */
static int dense_forward(void *self, const mltk_layer_run *r)
{
    dense *d = self;
    const mltk_tensor x = mltk_tensor_2d(r->x[0].data, MLTK_F32, r->batch, d->in);
    const mltk_tensor y = mltk_tensor_2d(r->y->data, MLTK_F32, r->batch, d->units);
    const mltk_tensor *b = d->p_bias >= 0 ? &r->params[d->p_bias] : NULL;
    const mltk_gemm_params gp = { .ta = 0, .tb = 1, .alpha = 1.0f, .beta = 0.0f,
                                  .act = d->act, .act_alpha = d->alpha };
    int rc;

    if (r->batch == 0)
        return MLTK_OK;
    if (d->lp == MLTK_F32)
        return mltk_op_gemm(r->be, &y, &x, &r->params[d->p_weight], b, &gp);
    if (!r->params_lp)
        return MLTK_ERR_INVALID;  /* the core hands lp copies in lp runs */
    const mltk_tensor xl = mltk_tensor_2d(r->buffers[d->b_xlp].data, d->lp, r->batch, d->in);
    rc = mltk_op_cast(r->be, &xl, &x);
    if (rc)
        return rc;
    return mltk_op_gemm(r->be, &y, &xl, &r->params_lp[d->p_weight], b, &gp);
}

/* ---- backward ------------------------------------------------------------- */

/* dy (B, units) -> dz = dy * act'(.) (B, units), from y;
 * dW (units, in) = dz^T x;  db (units) = sum over rows of dz;
 * dx (B, in) = dz W, only when the input needs a gradient.
 * In low precision dW and dx multiply dz_lp (dz cast) by x_lp (saved by
 * forward) and by the weight's lp copy; db sums the f32 dz. */
static int dense_backward(void *self, const mltk_layer_run *r)
{
    dense *d = self;
    const struct mltk_backend *be = r->be;
    const mltk_tensor *dw = &r->grads[d->p_weight];
    const mltk_tensor *db = d->p_bias >= 0 ? &r->grads[d->p_bias] : NULL;
    const mltk_tensor x = mltk_tensor_2d(r->x[0].data, MLTK_F32, r->batch, d->in);
    const mltk_tensor dy = mltk_tensor_2d(r->dy->data, MLTK_F32, r->batch, d->units);
    mltk_tensor dz = dy;
    const mltk_tensor *w = &r->params[d->p_weight];
    mltk_tensor xa = x, dza;  /* the products' operands */
    const mltk_gemm_params gw = { .ta = 1, .tb = 0, .alpha = 1.0f, .beta = 0.0f,
                                  .act = MLTK_ACT_NONE };
    const mltk_gemm_params gx = { .ta = 0, .tb = 0, .alpha = 1.0f, .beta = 0.0f,
                                  .act = MLTK_ACT_NONE };
    int rc;

    if (r->batch == 0) {
        rc = mltk_op_fill(be, dw, 0.0f);
        if (!rc && db)
            rc = mltk_op_fill(be, db, 0.0f);
        return rc;
    }
    if (d->act != MLTK_ACT_NONE) {
        const mltk_tensor y = mltk_tensor_2d(r->y->data, MLTK_F32, r->batch, d->units);
        dz = mltk_tensor_2d(r->buffers[d->b_dz].data, MLTK_F32, r->batch, d->units);
        rc = mltk_op_act_backward(be, &dz, &dy, NULL, &y, d->act, d->alpha);
        if (rc)
            return rc;
    }
    dza = dz;
    if (d->lp != MLTK_F32) {
        if (!r->params_lp)
            return MLTK_ERR_INVALID;
        w = &r->params_lp[d->p_weight];
        xa = mltk_tensor_2d(r->buffers[d->b_xlp].data, d->lp, r->batch, d->in);
        dza = mltk_tensor_2d(r->buffers[d->b_dzlp].data, d->lp, r->batch, d->units);
        rc = mltk_op_cast(be, &dza, &dz);
        if (rc)
            return rc;
    }
    rc = mltk_op_gemm(be, dw, &dza, &xa, NULL, &gw);
    if (rc)
        return rc;
    if (db) {
        rc = mltk_op_sum_rows(be, db, &dz, 0.0f);
        if (rc)
            return rc;
    }
    if (r->dx && r->dx[0].data) {
        const mltk_tensor dx = mltk_tensor_2d(r->dx[0].data, MLTK_F32, r->batch, d->in);
        rc = mltk_op_gemm(be, &dx, &dza, w, NULL, &gx);
    }
    return rc;
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_layer_i dense_iface = {
    .size = sizeof(struct mltk_layer_i),
    .create = dense_create,
    .destroy = dense_destroy,
    .setup = dense_setup,
    .forward = dense_forward,
    .backward = dense_backward,
    .inplace = NULL,
};

MLTK_PLUGIN(dense, MLTK_KIND_LAYER, &dense_iface)
