/* sgd.c - stochastic gradient descent with momentum, as torch.optim.SGD.
 *
 * What this is: an optimizer plugin that reads its options and hands each
 * step to the backend's fused sgd_step over the flat parameter buffer:
 *     g' = g + weight_decay * p
 *     b  = g'                                  at t == 1
 *     b  = momentum * b + (1 - dampening) * g' later
 *     d  = nesterov ? g' + momentum * b : b    (d = g' without momentum)
 *     p -= lr * d
 * One state slot (the momentum buffer b) when momentum > 0, none otherwise.
 * The core's per-element rate factor (lr_mult, freeze) is passed on.
 *
 * What this is not: a learning-rate schedule.  `lr` here is the base rate
 * the core's schedule starts from; step() uses the rate it is given.
 */
#include <stdlib.h>
#include <mltk/plugin.h>

/* ---- state ---------------------------------------------------------------- */

typedef struct sgd {
    float lr;            /* base rate, informational: step() gets the scheduled one */
    float momentum;
    float dampening;
    float weight_decay;
    int   nesterov;
} sgd;

/* ---- lifetime ------------------------------------------------------------- */

static int sgd_create(void **self, const mltk_params_t *params, char **err)
{
    sgd *o;
    double lr = mltk_params_float(params, "lr");
    double momentum = mltk_params_float(params, "momentum");
    double dampening = mltk_params_float(params, "dampening");
    double wd = mltk_params_float(params, "weight_decay");
    int nesterov = mltk_params_bool(params, "nesterov");

    if (!(lr >= 0.0))
        return mltk_errf(err, MLTK_ERR_CONFIG, "lr must be >= 0, not %g", lr);
    if (!(momentum >= 0.0))
        return mltk_errf(err, MLTK_ERR_CONFIG, "momentum must be >= 0, not %g",
                         momentum);
    if (!(wd >= 0.0))
        return mltk_errf(err, MLTK_ERR_CONFIG, "weight_decay must be >= 0, not %g",
                         wd);
    if (nesterov && (momentum <= 0.0 || dampening != 0.0))
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "nesterov = true requires momentum > 0 and "
                         "dampening = 0 (momentum = %g, dampening = %g)",
                         momentum, dampening);
    o = calloc(1, sizeof(*o));
    if (!o)
        return mltk_errf(err, MLTK_ERR_NOMEM, "sgd: out of memory");
    o->lr = (float)lr;
    o->momentum = (float)momentum;
    o->dampening = (float)dampening;
    o->weight_decay = (float)wd;
    o->nesterov = nesterov;
    *self = o;
    return MLTK_OK;
}

static void sgd_destroy(void *self)
{
    free(self);
}

/* ---- the update ----------------------------------------------------------- */

static int sgd_state_slots(void *self)
{
    const sgd *o = self;
    return o->momentum > 0.0f ? 1 : 0;
}

/* p (n), g (n), state[0] = momentum buffer (n) when momentum > 0,
 * lr_scale (n) or NULL */
static int sgd_step(void *self, const struct mltk_backend *be,
                    const struct mltk_opt_step *st)
{
    const sgd *o = self;
    const mltk_sgd_params sp = { .lr = st->lr, .momentum = o->momentum,
                                 .dampening = o->dampening,
                                 .weight_decay = o->weight_decay,
                                 .nesterov = o->nesterov, .t = st->t };

    if (st->n == 0)
        return MLTK_OK;
    return mltk_op_sgd_step(be, st->p, o->momentum > 0.0f ? &st->state[0] : NULL, st->g,
                            st->lr_scale, &sp);
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_optimizer_i sgd_iface = {
    .size = sizeof(struct mltk_optimizer_i),
    .create = sgd_create,
    .destroy = sgd_destroy,
    .state_slots = sgd_state_slots,
    .step = sgd_step,
};

MLTK_PLUGIN(sgd, MLTK_KIND_OPTIMIZER, &sgd_iface)
