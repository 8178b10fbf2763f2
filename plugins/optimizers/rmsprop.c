/* rmsprop.c - RMSprop, as torch.optim.RMSprop.
 *
 * What this is: an optimizer plugin handing each step to the backend's
 * fused rmsprop_step over the flat parameter buffer:
 *     g' = g + weight_decay * p
 *     sq = alpha sq + (1 - alpha) g'^2
 *     centered:  ga = alpha ga + (1 - alpha) g';  avg = sqrt(sq - ga^2) + eps
 *     otherwise: avg = sqrt(sq) + eps
 *     momentum > 0: b = momentum b + g' / avg;  p -= lr b
 *     otherwise:    p -= lr g' / avg
 * State slots, in order: sq; then the momentum buffer b when momentum > 0;
 * then the gradient average ga when centered.  All start at zero.
 *
 * What this is not: a learning-rate schedule.  `lr` is the base rate the
 * core's schedule starts from; a step uses the rate it is given.
 */
#include <stdlib.h>
#include <mltk/plugin.h>

/* ---- state ---------------------------------------------------------------- */

typedef struct rmsprop {
    float alpha;
    float eps;
    float weight_decay;
    float momentum;
    int   centered;
} rmsprop;

/* ---- lifetime ------------------------------------------------------------- */

static int rmsprop_create(void **self, const mltk_params_t *params, char **err)
{
    rmsprop *o = calloc(1, sizeof(*o));

    if (!o)
        return mltk_errf(err, MLTK_ERR_NOMEM, "rmsprop: out of memory");
    o->alpha = (float)mltk_params_float(params, "alpha");
    o->eps = (float)mltk_params_float(params, "eps");
    o->weight_decay = (float)mltk_params_float(params, "weight_decay");
    o->momentum = (float)mltk_params_float(params, "momentum");
    o->centered = mltk_params_bool(params, "centered");
    *self = o;
    return MLTK_OK;
}

static void rmsprop_destroy(void *self)
{
    free(self);
}

/* ---- the update ----------------------------------------------------------- */

static int rmsprop_state_slots(void *self)
{
    const rmsprop *o = self;
    return 1 + (o->momentum > 0.0f) + (o->centered != 0);
}

/* p (n), g (n), state[0] = sq (n), then mom (n) when momentum > 0, then
 * gavg (n) when centered; lr_scale (n) or NULL */
static int rmsprop_step(void *self, const struct mltk_backend *be,
                        const struct mltk_opt_step *st)
{
    const rmsprop *o = self;
    const mltk_tensor *mom = o->momentum > 0.0f ? &st->state[1] : NULL;
    const mltk_tensor *gavg = o->centered ? &st->state[o->momentum > 0.0f ? 2 : 1] : NULL;
    const mltk_rmsprop_params rp = { .lr = st->lr, .alpha = o->alpha, .eps = o->eps,
                                     .weight_decay = o->weight_decay,
                                     .momentum = o->momentum, .centered = o->centered };

    if (st->n == 0)
        return MLTK_OK;
    return mltk_op_rmsprop_step(be, st->p, &st->state[0], mom, gavg, st->g, st->lr_scale,
                                &rp);
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_optimizer_i rmsprop_iface = {
    .size = sizeof(struct mltk_optimizer_i),
    .create = rmsprop_create,
    .destroy = rmsprop_destroy,
    .state_slots = rmsprop_state_slots,
    .step = rmsprop_step,
};

MLTK_PLUGIN(rmsprop, MLTK_KIND_OPTIMIZER, &rmsprop_iface)
