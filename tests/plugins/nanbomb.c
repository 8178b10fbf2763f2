/* nanbomb.c - a test layer that turns one training step's output into NaN.
 *
 * What this is: an identity layer (output = input, input gradient =
 * output gradient, both copied through mltk_be_copy()) that, in training
 * mode at the global step `at_step`, fills its output with NaN instead
 * (`value = inf`: +Inf; `in = backward`: its input gradient instead, so
 * that the loss stays finite and the gradients overflow, as a loss scale
 * too large for the backward pass makes them).
 * With `once = true` it does so only the first time that step comes round
 * for this layer instance (a rollback that replays the step then trains
 * through it; a new session has a new instance and fires again); with
 * `once = false` it fires every time the step is reached.  The test suite
 * uses it to drive [train] on_nan (tests/check_ops.c,
 * tests/test_ops_cli.sh), loading it through a descriptor written from
 * nanbomb.ini.in into a plugin directory of the test's own.
 *
 * What this is not: an installed plugin or a model of how numbers go bad;
 * the NaN is put there on purpose, at a step chosen by the config.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <mltk/plugin.h>

/* ---- lifetime ------------------------------------------------------------- */

typedef struct nanbomb {
    int64_t at_step;  /* the 0-based global step whose output becomes NaN */
    int     once;     /* fire only the first time */
    int     fired;    /* it has gone off (for once = true) */
    int     backward; /* in = backward */
    float   value;    /* NaN or +Inf */
} nanbomb;

static int nanbomb_create(void **self, const mltk_params_t *params, char **err)
{
    nanbomb *b = calloc(1, sizeof(*b));
    if (!b)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    b->at_step = mltk_params_int(params, "at_step");
    b->once = mltk_params_bool(params, "once");
    b->backward = strcmp(mltk_params_str(params, "in"), "backward") == 0;
    b->value = strcmp(mltk_params_str(params, "value"), "inf") == 0 ? INFINITY : NAN;
    *self = b;
    return MLTK_OK;
}

static void nanbomb_destroy(void *self)
{
    free(self);
}

/* ---- shapes --------------------------------------------------------------- */

static int nanbomb_setup(void *self, mltk_layer_setup_t *s, int n_in,
                         const mltk_shape *in, mltk_shape *out, char **err)
{
    int rc;

    (void)self;
    if (n_in != 1)
        return mltk_errf(err, MLTK_ERR_SHAPE, "expected 1 input, got %d", n_in);
    rc = mltk_layer_need_op(s, MLTK_OP_FILL, MLTK_F32, err);
    if (rc)
        return rc;
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

/* x (B, ...) -> y (B, ...): a copy, or NaN everywhere at the chosen step */
static int nanbomb_forward(void *self, const mltk_layer_run *r)
{
    nanbomb *b = self;
    const struct mltk_backend *be = r->be;
    int64_t n = run_numel(r->y, r->batch);

    if (n == 0)
        return MLTK_OK;
    if (!b->backward && r->mode == MLTK_TRAIN && (int64_t)r->step == b->at_step
        && !(b->once && b->fired)) {
        const mltk_tensor y = mltk_tensor_1d(r->y->data, MLTK_F32, n);
        b->fired = 1;
        return mltk_op_fill(be, &y, b->value);
    }
    return mltk_be_copy(be, r->y->data, r->x[0].data, (size_t)n * sizeof(float));
}

/* dy (B, ...) -> dx (B, ...): a copy, or `value` everywhere at the chosen
 * step (in = backward) */
static int nanbomb_backward(void *self, const mltk_layer_run *r)
{
    nanbomb *b = self;
    const struct mltk_backend *be = r->be;
    int64_t n = run_numel(r->dy, r->batch);

    if (!r->dx || !r->dx[0].data || n == 0)
        return MLTK_OK;
    if (b->backward && (int64_t)r->step == b->at_step && !(b->once && b->fired)) {
        const mltk_tensor dx = mltk_tensor_1d(r->dx[0].data, MLTK_F32, n);
        b->fired = 1;
        return mltk_op_fill(be, &dx, b->value);
    }
    return mltk_be_copy(be, r->dx[0].data, r->dy->data, (size_t)n * sizeof(float));
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_layer_i nanbomb_iface = {
    .size = sizeof(struct mltk_layer_i),
    .create = nanbomb_create,
    .destroy = nanbomb_destroy,
    .setup = nanbomb_setup,
    .forward = nanbomb_forward,
    .backward = nanbomb_backward,
    .inplace = NULL,
};

MLTK_PLUGIN(nanbomb, MLTK_KIND_LAYER, &nanbomb_iface)
