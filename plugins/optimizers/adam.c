/* adam.c - Adam and AdamW, as torch.optim.Adam and torch.optim.AdamW.
 *
 * What this is: an optimizer plugin that reads its options and hands each
 * step to the backend's fused adam_step over the flat parameter buffer:
 *     decoupled = false:  g' = g + weight_decay * p          (Adam, L2)
 *     decoupled = true:   p *= 1 - lr * weight_decay; g' = g (AdamW)
 *     m = beta1 m + (1 - beta1) g';  v = beta2 v + (1 - beta2) g'^2
 *     p -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
 * Two state slots: the first (m) and second (v) moment estimates.
 * The core's per-element rate factor (lr_mult, freeze) is passed on.
 *
 * What this is not: AMSGrad or a learning-rate schedule.  `lr` is the base
 * rate the core's schedule starts from; step() uses the rate it is given.
 */
#include <stdlib.h>
#include <mltk/plugin.h>

/* ---- state ---------------------------------------------------------------- */

typedef struct adam {
    float lr;            /* base rate, informational: step() gets the scheduled one */
    float beta1, beta2;
    float eps;
    float weight_decay;
    int   decoupled;
} adam;

/* ---- lifetime ------------------------------------------------------------- */

static int adam_create(void **self, const mltk_params_t *params, char **err)
{
    adam *o;
    double lr = mltk_params_float(params, "lr");
    double beta1 = mltk_params_float(params, "beta1");
    double beta2 = mltk_params_float(params, "beta2");
    double eps = mltk_params_float(params, "eps");
    double wd = mltk_params_float(params, "weight_decay");

    if (!(lr >= 0.0))
        return mltk_errf(err, MLTK_ERR_CONFIG, "lr must be >= 0, not %g", lr);
    if (!(beta1 >= 0.0 && beta1 < 1.0))
        return mltk_errf(err, MLTK_ERR_CONFIG, "beta1 must be in [0, 1), not %g",
                         beta1);
    if (!(beta2 >= 0.0 && beta2 < 1.0))
        return mltk_errf(err, MLTK_ERR_CONFIG, "beta2 must be in [0, 1), not %g",
                         beta2);
    if (!(eps >= 0.0))
        return mltk_errf(err, MLTK_ERR_CONFIG, "eps must be >= 0, not %g", eps);
    if (!(wd >= 0.0))
        return mltk_errf(err, MLTK_ERR_CONFIG, "weight_decay must be >= 0, not %g",
                         wd);
    o = calloc(1, sizeof(*o));
    if (!o)
        return mltk_errf(err, MLTK_ERR_NOMEM, "adam: out of memory");
    o->lr = (float)lr;
    o->beta1 = (float)beta1;
    o->beta2 = (float)beta2;
    o->eps = (float)eps;
    o->weight_decay = (float)wd;
    o->decoupled = mltk_params_bool(params, "decoupled");
    *self = o;
    return MLTK_OK;
}

static void adam_destroy(void *self)
{
    free(self);
}

/* ---- the update ----------------------------------------------------------- */

static int adam_state_slots(void *self)
{
    (void)self;
    return 2;
}

/* p (n), g (n), state[0] = m (n), state[1] = v (n), lr_scale (n) or NULL */
static int adam_step(void *self, const struct mltk_backend *be,
                     const struct mltk_opt_step *st)
{
    const adam *o = self;
    const mltk_adam_params ap = { .lr = st->lr, .beta1 = o->beta1, .beta2 = o->beta2,
                                  .eps = o->eps, .weight_decay = o->weight_decay,
                                  .decoupled = o->decoupled, .t = st->t };

    if (st->n == 0)
        return MLTK_OK;
    return mltk_op_adam_step(be, st->p, &st->state[0], &st->state[1], st->g, st->lr_scale,
                             &ap);
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_optimizer_i adam_iface = {
    .size = sizeof(struct mltk_optimizer_i),
    .create = adam_create,
    .destroy = adam_destroy,
    .state_slots = adam_state_slots,
    .step = adam_step,
};

MLTK_PLUGIN(adam, MLTK_KIND_OPTIMIZER, &adam_iface)
