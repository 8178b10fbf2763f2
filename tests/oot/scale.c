/* scale.c - an out-of-tree layer plugin: y = factor * x.
 *
 * What this is: the complete example of mltk-plugin(7), built against the
 * installed headers only (`pkg-config --cflags --libs mltk`) and loaded
 * with `--plugin-dir`.  It multiplies its one input by a constant `factor`
 * read from its descriptor-validated parameters, in forward and backward,
 * with one op of the backend contract (mltk_op_axpby on typed tensors),
 * so it runs on every backend.  Its setup declares that op, so that a
 * backend without it is refused before training starts.
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
    int rc;

    (void)self;
    if (n_in != 1)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "scale: expected 1 input, got %d", n_in);
    /* the one op forward and backward run, in f32 */
    rc = mltk_layer_need_op(s, MLTK_OP_AXPBY, MLTK_F32, err);
    if (rc)
        return rc;
    *out = in[0];
    return MLTK_OK;
}

/* ---- compute ---- */

/* x (batch, ...) -> y (batch, ...): y = factor * x */
static int scale_forward(void *self, const mltk_layer_run *r)
{
    const struct scale *sc = self;
    /* y = a x + b y with b = 0 (y is not read) */
    return mltk_op_axpby(r->be, r->y, sc->factor, &r->x[0], 0.0f);
}

/* dy (batch, ...) -> dx (batch, ...): dx = factor * dy */
static int scale_backward(void *self, const mltk_layer_run *r)
{
    const struct scale *sc = self;
    if (!r->dx[0].data) /* the input needs no gradient (it is the data) */
        return MLTK_OK;
    return mltk_op_axpby(r->be, &r->dx[0], sc->factor, r->dy, 0.0f);
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
