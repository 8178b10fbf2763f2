/* adamw.c - AdamW, as torch.optim.AdamW: Adam with decoupled weight decay.
 *
 * What this is: an optimizer plugin handing each step to the backend's
 * fused adam_step with decoupled decay over the flat parameter buffer:
 *     p *= 1 - lr * weight_decay
 *     m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
 *     p -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
 * Two state slots (m, v).  Unlike `adam` (whose weight decay defaults to
 * 0 and is an L2 term unless decoupled = true), decay here is always
 * decoupled and defaults to PyTorch's 0.01.
 *
 * What this is not: AMSGrad or a learning-rate schedule.  `lr` is the base
 * rate the core's schedule starts from; a step uses the rate it is given.
 */
#include <stdlib.h>
#include <mltk/plugin.h>

/* ---- state ---------------------------------------------------------------- */

typedef struct adamw {
    float beta1, beta2;
    float eps;
    float weight_decay;
} adamw;

/* ---- lifetime ------------------------------------------------------------- */

static int adamw_create(void **self, const mltk_params_t *params, char **err)
{
    double beta1 = mltk_params_float(params, "beta1");
    double beta2 = mltk_params_float(params, "beta2");
    double eps = mltk_params_float(params, "eps");
    double wd = mltk_params_float(params, "weight_decay");
    adamw *o;

    if (!(beta1 >= 0.0 && beta1 < 1.0))
        return mltk_errf(err, MLTK_ERR_CONFIG, "beta1 must be in [0, 1), not %g",
                         beta1);
    if (!(beta2 >= 0.0 && beta2 < 1.0))
        return mltk_errf(err, MLTK_ERR_CONFIG, "beta2 must be in [0, 1), not %g",
                         beta2);
    o = calloc(1, sizeof(*o));
    if (!o)
        return mltk_errf(err, MLTK_ERR_NOMEM, "adamw: out of memory");
    o->beta1 = (float)beta1;
    o->beta2 = (float)beta2;
    o->eps = (float)eps;
    o->weight_decay = (float)wd;
    *self = o;
    return MLTK_OK;
}

static void adamw_destroy(void *self)
{
    free(self);
}

/* ---- the update ----------------------------------------------------------- */

static int adamw_state_slots(void *self)
{
    (void)self;
    return 2;
}

/* p (n), g (n), state[0] = m (n), state[1] = v (n), lr_scale (n) or NULL;
 * the decay is decoupled */
static int adamw_step(void *self, const struct mltk_backend *be,
                      const struct mltk_opt_step *st)
{
    const adamw *o = self;
    const mltk_adam_params ap = { .lr = st->lr, .beta1 = o->beta1, .beta2 = o->beta2,
                                  .eps = o->eps, .weight_decay = o->weight_decay,
                                  .decoupled = 1, .t = st->t };

    if (st->n == 0)
        return MLTK_OK;
    return mltk_op_adam_step(be, st->p, &st->state[0], &st->state[1], st->g, st->lr_scale,
                             &ap);
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_optimizer_i adamw_iface = {
    .size = sizeof(struct mltk_optimizer_i),
    .create = adamw_create,
    .destroy = adamw_destroy,
    .state_slots = adamw_state_slots,
    .step = adamw_step,
};

MLTK_PLUGIN(adamw, MLTK_KIND_OPTIMIZER, &adamw_iface)
