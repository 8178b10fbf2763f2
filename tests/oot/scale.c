/* scale.c - an out-of-tree layer plugin: y = g * x, with a trainable gain g.
 *
 * What this is: the complete example of mltk-plugin(7), built against the
 * installed headers only (`pkg-config --cflags --libs mltk`) and loaded
 * with `--plugin-dir`.  It multiplies its one input elementwise by a gain
 * g, a trainable parameter of the input's per-sample shape that starts at
 * the descriptor-validated parameter `factor`.  A scratch buffer holds g
 * repeated for every row of the batch: forward fills it and multiplies,
 * backward reuses it for dx and then as room for dy * x, whose column sums
 * are g's gradient.  Everything runs through ops of the backend contract
 * on typed tensors (fill, bias_act, mul, sum_rows), declared in setup, so
 * it runs on every backend and a backend without them is refused before
 * training starts.
 * What this is not: a fast layer (one broadcast op would spare the
 * buffer); it keeps no state across steps besides its parameter.
 */
#include <stdlib.h>
#include <mltk/plugin.h>

/* ---- state ---- */

struct scale {
    double  factor;     /* g's initial value */
    int64_t features;   /* elements per sample */
};

/* ---- lifetime ---- */

static int scale_create(void **self, const mltk_params_t *params, char **err)
{
    struct scale *s = calloc(1, sizeof *s);
    if (!s)
        return mltk_errf(err, MLTK_ERR_NOMEM, "scale: out of memory");
    /* the core has checked the type and range and filled in the default */
    s->factor = mltk_params_float(params, "factor");
    *self = s;
    return MLTK_OK;
}

static void scale_destroy(void *self)
{
    free(self);
}

/* ---- shape ---- */

/* one input of any shape -> output of the same shape; g of that shape
 * (params[0]) and a (max batch, features) float buffer (buffers[0]) */
static int scale_setup(void *self, mltk_layer_setup_t *s, int n_in,
                       const mltk_shape *in, mltk_shape *out, char **err)
{
    static const mltk_op ops[] = { MLTK_OP_FILL, MLTK_OP_BIAS_ACT, MLTK_OP_MUL,
                                   MLTK_OP_SUM_ROWS };
    struct scale *sc = self;
    mltk_init init = { MLTK_INIT_CONST, 0.0, 0.0 };
    int rc;

    if (n_in != 1)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "scale: expected 1 input, got %d", n_in);
    sc->features = mltk_shape_numel(&in[0]);
    init.a = sc->factor;
    rc = mltk_layer_add_param(s, "gain", &in[0], init);
    if (rc < 0)
        return mltk_errf(err, rc, "scale: cannot declare the gain");
    /* buffers start uninitialised: forward fills this one before use */
    rc = mltk_layer_add_buffer(s, "gain_rows", (size_t)(mltk_layer_max_batch(s)
                               * sc->features) * sizeof(float));
    if (rc < 0)
        return mltk_errf(err, rc, "scale: cannot declare its buffer");
    /* every op forward and backward run, in f32 */
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        rc = mltk_layer_need_op(s, ops[i], MLTK_F32, err);
        if (rc)
            return rc;
    }
    *out = in[0];
    return MLTK_OK;
}

/* ---- compute ---- */

/* the buffer as (batch, features) floats, and the gain as (features) */
static mltk_tensor rows_of(const struct scale *sc, const mltk_layer_run *r)
{
    return mltk_tensor_2d(r->buffers[0].data, MLTK_F32, r->batch, sc->features);
}

/* x (batch, ...) -> y (batch, ...): y = g * x, row by row */
static int scale_forward(void *self, const mltk_layer_run *r)
{
    const struct scale *sc = self;
    mltk_tensor G = rows_of(sc, r);
    mltk_tensor g = mltk_tensor_1d(r->params[0].data, MLTK_F32, sc->features);
    mltk_tensor x = mltk_tensor_rows(&r->x[0], r->batch);
    mltk_tensor y = mltk_tensor_rows(r->y, r->batch);
    /* G = 0, then G += g in every row */
    int rc = mltk_op_fill(r->be, &G, 0.0f);
    if (!rc)
        rc = mltk_op_bias_act(r->be, &G, &g, MLTK_ACT_NONE, 0.0f);
    if (!rc)
        rc = mltk_op_mul(r->be, &y, &x, &G);
    return rc;
}

/* dy (batch, ...) -> dx (batch, ...) = g * dy, and dg = sum over the
 * batch of dy * x.  The buffer still holds G from this step's forward. */
static int scale_backward(void *self, const mltk_layer_run *r)
{
    const struct scale *sc = self;
    mltk_tensor G = rows_of(sc, r);
    mltk_tensor dg = mltk_tensor_1d(r->grads[0].data, MLTK_F32, sc->features);
    mltk_tensor x = mltk_tensor_rows(&r->x[0], r->batch);
    mltk_tensor dy = mltk_tensor_rows(r->dy, r->batch);
    int rc = MLTK_OK;
    if (r->dx[0].data) { /* NULL: the input needs no gradient (the data) */
        mltk_tensor dx = mltk_tensor_rows(&r->dx[0], r->batch);
        rc = mltk_op_mul(r->be, &dx, &dy, &G);
    }
    /* G is free now: G = dy * x, dg = its column sums (overwritten) */
    if (!rc)
        rc = mltk_op_mul(r->be, &G, &dy, &x);
    if (!rc)
        rc = mltk_op_sum_rows(r->be, &dg, &G, 0.0f);
    return rc;
}

/* ---- entry point ---- */

static const struct mltk_layer_i scale_iface = {
    .size = sizeof(struct mltk_layer_i),
    .create = scale_create,
    .destroy = scale_destroy,
    .setup = scale_setup,
    .forward = scale_forward,
    .backward = scale_backward,
};

MLTK_PLUGIN(scale, MLTK_KIND_LAYER, &scale_iface)
