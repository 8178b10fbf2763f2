/* lamb.c - LAMB, layer-wise adaptive moments (You et al. 2019).
 *
 * What this is: an optimizer plugin handing each step to the backend's
 * fused lamb_step.  Adam's moments with bias correction give a direction
 * per element, and each parameter tensor's step is scaled by its trust
 * ratio:
 *     m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
 *     r = (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps) + wd p
 *     trust = ||p|| / ||r|| per tensor (1 when either norm is 0)
 *     p -= lr * trust * r
 * Two state slots (m, v).  The trust ratio needs to know where each
 * tensor lies in the flat buffer, which only the ABI 1.1 step2 call
 * carries, so the core always calls step2; `step` (the ABI 1.0 call,
 * without tensor boundaries) refuses with MLTK_ERR_UNSUPPORTED rather than
 * silently computing one trust ratio for the whole model.
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

static int lamb_step(void *self, const struct mltk_backend *be, float *p,
                     const float *g, float *const *state, int64_t n, float lr,
                     int64_t t)
{
    (void)self; (void)be; (void)p; (void)g; (void)state; (void)n; (void)lr; (void)t;
    return MLTK_ERR_UNSUPPORTED;
}

/* p, g, state[0] = m, state[1] = v (n each); one trust ratio per segment */
static int lamb_step2(void *self, const struct mltk_backend *be,
                      const struct mltk_opt_step *st)
{
    const lamb *o = self;

    if (st->n == 0)
        return MLTK_OK;
    if (!MLTK_BACKEND_HAS(be, lamb_step))
        return MLTK_ERR_UNSUPPORTED;
    return be->i->lamb_step(be->ctx, st->p, st->g, st->state[0], st->state[1], st->n,
                            st->lr, o->beta1, o->beta2, o->eps, o->weight_decay, st->t,
                            st->seg_off, st->n_seg, st->scratch, st->lr_scale);
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_optimizer_i lamb_iface = {
    .size = sizeof(struct mltk_optimizer_i),
    .create = lamb_create,
    .destroy = lamb_destroy,
    .state_slots = lamb_state_slots,
    .step = lamb_step,
    .step2 = lamb_step2,
};

MLTK_PLUGIN(lamb, MLTK_KIND_OPTIMIZER, &lamb_iface)
