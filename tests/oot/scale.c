/* scale.c - an out-of-tree layer plugin: y = factor * x.
 *
 * What this is: the complete example of mltk-plugin(7), built against the
 * installed headers only (`pkg-config --cflags --libs mltk`) and loaded
 * with `--plugin-dir`.  It multiplies its one input by a constant `factor`
 * read from its descriptor-validated parameters, in forward and backward,
 * using only the backend contract (be->i->axpby), so it runs on every
 * backend.
 * What this is not: a learnable scale; it declares no trainable
 * parameters and no buffers.
 */
#include <stdlib.h>
#include <mltk/plugin.h>

/* ---- state ---- */

struct scale {
    float factor;
};

/* ---- lifetime ---- */

static int scale_create(void **self, const mltk_params_t *params, char **err)
{
    struct scale *s = malloc(sizeof *s);
    if (!s)
        return mltk_errf(err, MLTK_ERR_NOMEM, "scale: out of memory");
    /* the core has checked the type and filled in the default (2.0) */
    s->factor = (float)mltk_params_float(params, "factor");
    *self = s;
    return MLTK_OK;
}

static void scale_destroy(void *self)
{
    free(self);
}

/* ---- shape ---- */

/* one input of any shape -> output of the same shape */
static int scale_setup(void *self, mltk_layer_setup_t *s, int n_in,
                       const mltk_shape *in, mltk_shape *out, char **err)
{
    (void)self;
    (void)s;
    if (n_in != 1)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "scale: expected 1 input, got %d", n_in);
    *out = in[0];
    return MLTK_OK;
}

/* ---- compute ---- */

/* x (batch, ...) -> y (batch, ...): y = factor * x */
static int scale_forward(void *self, const mltk_layer_run *r)
{
    const struct scale *sc = self;
    const struct mltk_backend *be = r->be;
    return be->i->axpby(be->ctx, r->y->data, sc->factor, r->x[0].data,
                        0.0f, mltk_tensor_numel(r->y));
}

/* dy (batch, ...) -> dx (batch, ...): dx = factor * dy */
static int scale_backward(void *self, const mltk_layer_run *r)
{
    const struct scale *sc = self;
    const struct mltk_backend *be = r->be;
    if (!r->dx[0].data) /* the input needs no gradient (it is the data) */
        return MLTK_OK;
    return be->i->axpby(be->ctx, r->dx[0].data, sc->factor, r->dy->data,
                        0.0f, mltk_tensor_numel(r->dy));
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
