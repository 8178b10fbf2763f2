/* relu.c - the standalone rectified linear unit, y = max(x, 0).
 *
 * What this is: an elementwise layer plugin over the backend's act_forward
 * and act_backward ops.  It declares itself in-place safe: its gradient
 * needs only the sign of the output (y > 0 exactly where x > 0), so the
 * core may let the output overwrite the input.
 *
 * What this is not: the other activations.  dense fuses relu, leaky_relu,
 * sigmoid and tanh into its epilogue; a standalone layer for each is a
 * plugin of its own.
 */
#include <stdlib.h>
#include <mltk/plugin.h>

/* ---- lifetime ------------------------------------------------------------- */

static int relu_create(void **self, const mltk_params_t *params, char **err)
{
    (void)params;
    (void)err;
    *self = NULL;
    return MLTK_OK;
}

static void relu_destroy(void *self)
{
    (void)self;
}

/* ---- shapes --------------------------------------------------------------- */

static int relu_setup(void *self, mltk_layer_setup_t *s, int n_in,
                      const mltk_shape *in, mltk_shape *out, char **err)
{
    int rc;

    (void)self;
    if (n_in != 1)
        return mltk_errf(err, MLTK_ERR_SHAPE, "expected 1 input, got %d", n_in);
    rc = mltk_layer_need_op(s, MLTK_OP_ACT_FORWARD, MLTK_F32, err);
    if (!rc)
        rc = mltk_layer_need_op(s, MLTK_OP_ACT_BACKWARD, MLTK_F32, err);
    if (rc)
        return rc;
    *out = in[0];
    return MLTK_OK;
}

/* per-sample elements of a run tensor (dim 0 is the batch) */
static int64_t sample_numel(const mltk_tensor *t)
{
    int64_t n = 1;
    for (int i = 1; i < t->shape.ndim; i++)
        n *= t->shape.dim[i];
    return n;
}

/* the batch's rows of run tensor t as (batch, per-sample elements) */
static mltk_tensor rows_view(const mltk_tensor *t, void *data, int64_t batch)
{
    return mltk_tensor_2d(data, MLTK_F32, batch, sample_numel(t));
}

/* ---- forward and backward ------------------------------------------------- */

/* x (B, ...) -> y (B, ...) of the same shape; x == y allowed */
static int relu_forward(void *self, const mltk_layer_run *r)
{
    const mltk_tensor y = rows_view(r->y, r->y->data, r->batch);
    const mltk_tensor x = rows_view(r->y, r->x[0].data, r->batch);

    (void)self;
    if (r->batch == 0 || y.shape.dim[1] == 0)
        return MLTK_OK;
    return mltk_op_act_forward(r->be, &y, &x, MLTK_ACT_RELU, 0.0f);
}

/* dx = dy * (y > 0); when run in place x holds y, which has the same sign
 * pattern, so either may serve as the activation's input */
static int relu_backward(void *self, const mltk_layer_run *r)
{
    mltk_tensor dx, dy, x, y;

    (void)self;
    if (!r->dx || !r->dx[0].data || r->batch == 0 || sample_numel(r->y) == 0)
        return MLTK_OK;
    dx = rows_view(r->y, r->dx[0].data, r->batch);
    dy = rows_view(r->y, r->dy->data, r->batch);
    x = rows_view(r->y, r->x[0].data, r->batch);
    y = rows_view(r->y, r->y->data, r->batch);
    return mltk_op_act_backward(r->be, &dx, &dy, &x, &y, MLTK_ACT_RELU, 0.0f);
}

static int relu_inplace(void *self)
{
    (void)self;
    return 1;
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_layer_i relu_iface = {
    .size = sizeof(struct mltk_layer_i),
    .create = relu_create,
    .destroy = relu_destroy,
    .setup = relu_setup,
    .forward = relu_forward,
    .backward = relu_backward,
    .inplace = relu_inplace,
};

MLTK_PLUGIN(relu, MLTK_KIND_LAYER, &relu_iface)
