/* flatten.c - reshape each sample to one dimension.
 *
 * What this is: a layer plugin whose output (numel(input)) holds the same
 * floats as its input in the same (row-major) order.  It declares itself
 * in-place safe, so when the core lets the output alias the input both
 * passes are free; otherwise they are one copy each (the backend's copy,
 * through mltk_be_copy()).
 *
 * What this is not: a general reshape or transpose; the memory order never
 * changes.
 */
#include <stdlib.h>
#include <mltk/plugin.h>

/* ---- lifetime ------------------------------------------------------------- */

static int flatten_create(void **self, const mltk_params_t *params, char **err)
{
    (void)params;
    (void)err;
    *self = NULL;
    return MLTK_OK;
}

static void flatten_destroy(void *self)
{
    (void)self;
}

/* ---- shapes --------------------------------------------------------------- */

static int flatten_setup(void *self, mltk_layer_setup_t *s, int n_in,
                         const mltk_shape *in, mltk_shape *out, char **err)
{
    int64_t numel;

    (void)self;
    (void)s;
    if (n_in != 1)
        return mltk_errf(err, MLTK_ERR_SHAPE, "expected 1 input, got %d", n_in);
    if (mltk_size_numel(&numel, &in[0]))
        return mltk_errf(err, MLTK_ERR_SHAPE, "the input's size overflows");
    *out = mltk_shape_make(1, &numel);
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

/* x (B, d1, d2, ...) -> y (B, d1*d2*...) */
static int flatten_forward(void *self, const mltk_layer_run *r)
{
    const struct mltk_backend *be = r->be;
    int64_t n = run_numel(r->y, r->batch);

    (void)self;
    if (n == 0 || r->y->data == r->x[0].data)
        return MLTK_OK;
    return mltk_be_copy(be, r->y->data, r->x[0].data, (size_t)n * sizeof(float));
}

/* dy (B, numel) -> dx (B, d1, d2, ...) */
static int flatten_backward(void *self, const mltk_layer_run *r)
{
    const struct mltk_backend *be = r->be;
    int64_t n = run_numel(r->dy, r->batch);

    (void)self;
    if (!r->dx || !r->dx[0].data || n == 0 || r->dx[0].data == r->dy->data)
        return MLTK_OK;
    return mltk_be_copy(be, r->dx[0].data, r->dy->data, (size_t)n * sizeof(float));
}

static int flatten_inplace(void *self)
{
    (void)self;
    return 1;
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_layer_i flatten_iface = {
    .size = sizeof(struct mltk_layer_i),
    .create = flatten_create,
    .destroy = flatten_destroy,
    .setup = flatten_setup,
    .forward = flatten_forward,
    .backward = flatten_backward,
    .inplace = flatten_inplace,
};

MLTK_PLUGIN(flatten, MLTK_KIND_LAYER, &flatten_iface)
