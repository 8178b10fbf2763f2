/* step.c - step decay, as torch.optim.lr_scheduler.StepLR.
 *
 * What this is: a schedule plugin that multiplies the rate by `gamma`
 * every `step_size` epochs:  lr = base * gamma^floor(epoch / step_size),
 * epoch counted from 0 and constant within an epoch.
 * What this is not: per-step decay (the rate changes at epoch ends only).
 */
#include <math.h>
#include <stdlib.h>
#include <mltk/plugin.h>

typedef struct step_sched {
    int64_t step_size;
    double  gamma;
} step_sched;

static int step_create(void **self, const mltk_params_t *params, char **err)
{
    step_sched *o = calloc(1, sizeof(*o));
    if (!o)
        return mltk_errf(err, MLTK_ERR_NOMEM, "step: out of memory");
    o->step_size = mltk_params_int(params, "step_size");
    o->gamma = mltk_params_float(params, "gamma");
    *self = o;
    return MLTK_OK;
}

static void step_destroy(void *self)
{
    free(self);
}

static double step_lr(void *self, const mltk_sched_state *st)
{
    const step_sched *o = self;
    return st->base_lr * pow(o->gamma, (double)(st->epoch / o->step_size));
}

static const struct mltk_schedule_i step_iface = {
    .size = sizeof(struct mltk_schedule_i),
    .create = step_create,
    .destroy = step_destroy,
    .lr = step_lr,
};

MLTK_PLUGIN(step, MLTK_KIND_SCHEDULE, &step_iface)
