/* lamb.c - LAMB, layer-wise adaptive moments (You et al. 2019).
 *
 * What this is: an optimizer plugin handing each step to the fused
 * lamb_step op.  Adam's moments with bias correction give a direction
 * per element, and each parameter tensor's step is scaled by its trust
 * ratio:
 *     m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
 *     r = (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps) + wd p
 *     trust = ||p|| / ||r|| per tensor (1 when either norm is 0)
 *     p -= lr * trust * r
 * Two state slots (m, v).  The trust ratio needs to know where each
 * tensor lies in the flat buffer: the step's segment offsets (seg_off,
 * host memory), with 2 * n_seg floats of backend scratch for the norms;
 * the op refuses a step without them rather than silently computing one
 * trust ratio for the whole model.
 *
 * What this is not: a learning-rate schedule, or the trust-ratio clipping
 * some implementations add.  `lr` is the base rate the core's schedule
 * starts from; a step uses the rate it is given.
 */
#include <stdlib.h>
#include <mltk/plugin.h>

/* ---- state ---------------------------------------------------------------- */

typedef struct lamb {
    float beta1, beta2;
    float eps;
    float weight_decay;
} lamb;

/* ---- lifetime ------------------------------------------------------------- */

static int lamb_create(void **self, const mltk_params_t *params, char **err)
{
    double beta1 = mltk_params_float(params, "beta1");
    double beta2 = mltk_params_float(params, "beta2");
    lamb *o;

    if (!(beta1 >= 0.0 && beta1 < 1.0))
        return mltk_errf(err, MLTK_ERR_CONFIG, "beta1 must be in [0, 1), not %g",
                         beta1);
    if (!(beta2 >= 0.0 && beta2 < 1.0))
        return mltk_errf(err, MLTK_ERR_CONFIG, "beta2 must be in [0, 1), not %g",
                         beta2);
    o = calloc(1, sizeof(*o));
    if (!o)
        return mltk_errf(err, MLTK_ERR_NOMEM, "lamb: out of memory");
    o->beta1 = (float)beta1;
    o->beta2 = (float)beta2;
    o->eps = (float)mltk_params_float(params, "eps");
    o->weight_decay = (float)mltk_params_float(params, "weight_decay");
    *self = o;
    return MLTK_OK;
}

static void lamb_destroy(void *self)
{
    free(self);
}

/* ---- the update ----------------------------------------------------------- */

static int lamb_state_slots(void *self)
{
    (void)self;
    return 2;
}

/* p, g, state[0] = m, state[1] = v (n each), lr_scale (n) or NULL; one
 * trust ratio per segment [seg_off[s], seg_off[s + 1]) */
static int lamb_step(void *self, const struct mltk_backend *be,
                     const struct mltk_opt_step *st)
{
    const lamb *o = self;
    const mltk_lamb_params lp = { .lr = st->lr, .beta1 = o->beta1, .beta2 = o->beta2,
                                  .eps = o->eps, .weight_decay = o->weight_decay,
                                  .t = st->t, .n_seg = st->n_seg, .seg_off = st->seg_off };

    if (st->n == 0)
        return MLTK_OK;
    return mltk_op_lamb_step(be, st->p, &st->state[0], &st->state[1], st->scratch, st->g,
                             st->lr_scale, &lp);
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_optimizer_i lamb_iface = {
    .size = sizeof(struct mltk_optimizer_i),
    .create = lamb_create,
    .destroy = lamb_destroy,
    .state_slots = lamb_state_slots,
    .step = lamb_step,
};

MLTK_PLUGIN(lamb, MLTK_KIND_OPTIMIZER, &lamb_iface)
