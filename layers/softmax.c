/* softmax.c - softmax over the last dimension of each sample, as
 * PyTorch's nn.Softmax(dim = -1).
 *
 * What this is: a layer plugin over the softmax_forward and
 * softmax_backward ops of the backend contract.  A sample of shape (..., K) is read as
 * rows of K values, each normalised to sum to 1.  The gradient needs only
 * the output, dx = y (dy - sum(dy y)), so the layer is in-place safe.
 *
 * What this is not: a loss.  For classification, feed logits to
 * cross_entropy, which fuses a log-softmax with the loss and is both
 * faster and more accurate than softmax followed by a log.
 */
#include <stdlib.h>
#include <mltk/plugin.h>

/* ---- state ---------------------------------------------------------------- */

typedef struct softmax {
    int64_t cols;   /* length of the last dimension */
} softmax;

/* ---- lifetime ------------------------------------------------------------- */

static int softmax_create(void **self, const mltk_params_t *params, char **err)
{
    softmax *s = calloc(1, sizeof(*s));

    (void)params;
    if (!s)
        return mltk_errf(err, MLTK_ERR_NOMEM, "softmax: out of memory");
    *self = s;
    return MLTK_OK;
}

static void softmax_destroy(void *self)
{
    free(self);
}

/* ---- shapes --------------------------------------------------------------- */

static int softmax_setup(void *self, mltk_layer_setup_t *s, int n_in,
                         const mltk_shape *in, mltk_shape *out, char **err)
{
    softmax *sm = self;
    int rc;

    if (n_in != 1)
        return mltk_errf(err, MLTK_ERR_SHAPE, "expected 1 input, got %d", n_in);
    if (in[0].ndim < 1)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "expected a per-sample shape with at least one dimension");
    rc = mltk_layer_need_op(s, MLTK_OP_SOFTMAX_FORWARD, MLTK_F32, err);
    if (!rc)
        rc = mltk_layer_need_op(s, MLTK_OP_SOFTMAX_BACKWARD, MLTK_F32, err);
    if (rc)
        return rc;
    sm->cols = in[0].dim[in[0].ndim - 1];
    *out = in[0];
    return MLTK_OK;
}

/* rows of this call: every sample's values, cols at a time */
static int64_t run_rows(const softmax *sm, const mltk_tensor *t, int64_t batch)
{
    int64_t n = batch;
    for (int i = 1; i < t->shape.ndim; i++)
        n *= t->shape.dim[i];
    return n / sm->cols;
}

/* ---- forward and backward ------------------------------------------------- */

/* x (B, ..., K) -> y (B, ..., K); x == y allowed */
static int softmax_forward(void *self, const mltk_layer_run *r)
{
    const softmax *sm = self;
    const int64_t rows = run_rows(sm, r->y, r->batch);
    const mltk_tensor y = mltk_tensor_2d(r->y->data, MLTK_F32, rows, sm->cols);
    const mltk_tensor x = mltk_tensor_2d(r->x[0].data, MLTK_F32, rows, sm->cols);

    if (rows == 0)
        return MLTK_OK;
    return mltk_op_softmax_forward(r->be, &y, &x);
}

/* dx = y (dy - sum(dy y)) per row */
static int softmax_backward(void *self, const mltk_layer_run *r)
{
    const softmax *sm = self;
    const int64_t rows = run_rows(sm, r->y, r->batch);
    mltk_tensor dx, dy, y;

    if (!r->dx || !r->dx[0].data || rows == 0)
        return MLTK_OK;
    dx = mltk_tensor_2d(r->dx[0].data, MLTK_F32, rows, sm->cols);
    dy = mltk_tensor_2d(r->dy->data, MLTK_F32, rows, sm->cols);
    y = mltk_tensor_2d(r->y->data, MLTK_F32, rows, sm->cols);
    return mltk_op_softmax_backward(r->be, &dx, &dy, &y);
}

static int softmax_inplace(void *self)
{
    (void)self;
    return 1;
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_layer_i softmax_iface = {
    .size = sizeof(struct mltk_layer_i),
    .create = softmax_create,
    .destroy = softmax_destroy,
    .setup = softmax_setup,
    .forward = softmax_forward,
    .backward = softmax_backward,
    .inplace = softmax_inplace,
};

MLTK_PLUGIN(softmax, MLTK_KIND_LAYER, &softmax_iface)
