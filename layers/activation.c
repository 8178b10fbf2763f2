/* activation.c - the standalone elementwise activations leaky_relu, elu,
 * gelu, sigmoid and tanh, one plugin each.
 *
 * What this is: one source compiled once per plugin, with
 * -DACT_LAYER=<name> choosing which (see layers/local.mk); each build
 * exports only mltk_plugin_<name>.  Forward and backward are the backend's
 * act_forward and act_backward ops, the latter given both the layer's
 * input and its output so that the op derives the gradient from whichever
 * its rule prefers (backend.h, MLTK_OP_ACT_BACKWARD).  A layer whose
 * gradient that rule can take from its output alone (sigmoid, tanh,
 * leaky_relu with slope >= 0, elu with alpha >= 0) declares itself
 * in-place safe.
 *
 * What this is not: relu (layers/relu.c) or softmax (layers/softmax.c),
 * which is not elementwise.  The formulas are PyTorch's: LeakyReLU,
 * ELU(alpha), GELU(approximate = 'none' | 'tanh'), Sigmoid, Tanh.
 */
#include <stdlib.h>
#include <string.h>
#include <mltk/plugin.h>

#if !defined(ACT_LAYER)
#error "build with -DACT_LAYER=leaky_relu|elu|gelu|sigmoid|tanh"
#endif

#define ACT_STR_(x) #x
#define ACT_STR(x) ACT_STR_(x)
/* expands ACT_LAYER before MLTK_PLUGIN pastes it */
#define ACT_PLUGIN(name, kind, iface) MLTK_PLUGIN(name, kind, iface)

/* ---- state ---------------------------------------------------------------- */

typedef struct act_layer {
    mltk_act act;
    float    alpha;     /* negative slope (leaky_relu) or alpha (elu) */
    int      inplace;   /* the op's gradient reads only the output */
} act_layer;

/* ---- lifetime ------------------------------------------------------------- */

/* Read this plugin's parameters into *a; 0 or a status with *err set. */
static int act_read_params(act_layer *a, const mltk_params_t *params, char **err)
{
    const char *name = ACT_STR(ACT_LAYER);

    a->alpha = 0.0f;
    a->inplace = 1;
    if (strcmp(name, "leaky_relu") == 0) {
        a->act = MLTK_ACT_LEAKY_RELU;
        a->alpha = (float)mltk_params_float(params, "negative_slope");
        a->inplace = a->alpha >= 0.0f;
    } else if (strcmp(name, "elu") == 0) {
        a->act = MLTK_ACT_ELU;
        a->alpha = (float)mltk_params_float(params, "alpha");
        a->inplace = a->alpha >= 0.0f;
    } else if (strcmp(name, "gelu") == 0) {
        const char *ap = mltk_params_str(params, "approximate");
        if (ap && strcmp(ap, "tanh") == 0)
            a->act = MLTK_ACT_GELU_TANH;
        else if (ap && strcmp(ap, "none") == 0)
            a->act = MLTK_ACT_GELU;
        else
            return mltk_errf(err, MLTK_ERR_CONFIG,
                             "approximate must be none or tanh, not '%s'", ap ? ap : "");
        a->inplace = 0;  /* the derivative needs the input */
    } else if (strcmp(name, "sigmoid") == 0) {
        a->act = MLTK_ACT_SIGMOID;
    } else if (strcmp(name, "tanh") == 0) {
        a->act = MLTK_ACT_TANH;
    } else {
        return mltk_errf(err, MLTK_ERR_PLUGIN, "activation layer built for unknown '%s'",
                         name);
    }
    return MLTK_OK;
}

static int act_create(void **self, const mltk_params_t *params, char **err)
{
    act_layer *a = calloc(1, sizeof(*a));
    int rc;

    if (!a)
        return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", ACT_STR(ACT_LAYER));
    rc = act_read_params(a, params, err);
    if (rc) {
        free(a);
        return rc;
    }
    *self = a;
    return MLTK_OK;
}

static void act_destroy(void *self)
{
    free(self);
}

/* ---- shapes --------------------------------------------------------------- */

static int act_setup(void *self, mltk_layer_setup_t *s, int n_in,
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
static int act_forward(void *self, const mltk_layer_run *r)
{
    const act_layer *a = self;
    const mltk_tensor y = rows_view(r->y, r->y->data, r->batch);
    const mltk_tensor x = rows_view(r->y, r->x[0].data, r->batch);

    if (r->batch == 0 || y.shape.dim[1] == 0)
        return MLTK_OK;
    return mltk_op_act_forward(r->be, &y, &x, a->act, a->alpha);
}

/* dx = dy * act'(.); when run in place x holds y, which in-place layers'
 * gradients are functions of (the op then reads y from either) */
static int act_backward(void *self, const mltk_layer_run *r)
{
    const act_layer *a = self;
    mltk_tensor dx, dy, x, y;

    if (!r->dx || !r->dx[0].data || r->batch == 0 || sample_numel(r->y) == 0)
        return MLTK_OK;
    dx = rows_view(r->y, r->dx[0].data, r->batch);
    dy = rows_view(r->y, r->dy->data, r->batch);
    x = rows_view(r->y, r->x[0].data, r->batch);
    y = rows_view(r->y, r->y->data, r->batch);
    return mltk_op_act_backward(r->be, &dx, &dy, &x, &y, a->act, a->alpha);
}

static int act_inplace(void *self)
{
    const act_layer *a = self;
    return a->inplace;
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_layer_i act_iface = {
    .size = sizeof(struct mltk_layer_i),
    .create = act_create,
    .destroy = act_destroy,
    .setup = act_setup,
    .forward = act_forward,
    .backward = act_backward,
    .inplace = act_inplace,
};

ACT_PLUGIN(ACT_LAYER, MLTK_KIND_LAYER, &act_iface)
