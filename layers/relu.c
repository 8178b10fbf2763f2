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
    (void)self;
    (void)s;
    if (n_in != 1)
        return mltk_errf(err, MLTK_ERR_SHAPE, "expected 1 input, got %d", n_in);
    *out = in[0];
    return MLTK_OK;
}

/* elements in this call: r->batch rows of the tensor's per-sample size */
static int64_t run_numel(const mltk_tensor *t, int64_t batch)
{
    int64_t n = batch;
    for (int i = 1; i < t->shape.ndim; i++)
        n *= t->shape.dim[i];
    return n;
}

/* ---- forward and backward ------------------------------------------------- */

/* x (B, ...) -> y (B, ...) of the same shape; x == y allowed */
static int relu_forward(void *self, const mltk_layer_run *r)
{
    const struct mltk_backend *be = r->be;
    int64_t n = run_numel(r->y, r->batch);

    (void)self;
    if (n == 0)
        return MLTK_OK;
    return be->i->act_forward(be->ctx, MLTK_ACT_RELU, 0.0f, r->y->data,
                              r->x[0].data, n);
}

/* dx = dy * (y > 0); when run in place x holds y, which has the same sign
 * pattern, so either may serve as the activation's input */
static int relu_backward(void *self, const mltk_layer_run *r)
{
    const struct mltk_backend *be = r->be;
    int64_t n = run_numel(r->y, r->batch);

    (void)self;
    if (!r->dx || !r->dx[0].data || n == 0)
        return MLTK_OK;
    return be->i->act_backward(be->ctx, MLTK_ACT_RELU, 0.0f, r->dx[0].data,
                               r->dy->data, r->x[0].data, r->y->data, n);
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
