/* cosine.c - cosine annealing, as lr_scheduler.CosineAnnealingLR, and with
 * warm restarts (SGDR) as CosineAnnealingWarmRestarts.
 *
 * What this is: a schedule plugin, epoch-indexed (epoch e counted from 0,
 * the rate constant within an epoch):
 *     restarts = false:  lr = eta_min + (base - eta_min) (1 + cos(pi e / T_max)) / 2
 *     restarts = true:   the same within each period, with e counted from the
 *                        period's start; the first period lasts T_max epochs,
 *                        each next one T_mult times the previous
 * T_max = 0 means the whole run (the configured number of epochs).  Past
 * T_max without restarts the curve continues as PyTorch's does (it rises
 * again, with period 2 T_max).
 * What this is not: a per-step cosine (PyTorch's fractional-epoch
 * stepping); combine with the core's warm-up for a warm start.
 */
#include <math.h>
#include <stdlib.h>
#include <mltk/plugin.h>

typedef struct cosine {
    int64_t t_max;     /* 0: all epochs */
    double  eta_min;
    int     restarts;
    int64_t t_mult;
} cosine;

static int cosine_create(void **self, const mltk_params_t *params, char **err)
{
    cosine *o = calloc(1, sizeof(*o));
    if (!o)
        return mltk_errf(err, MLTK_ERR_NOMEM, "cosine: out of memory");
    o->t_max = mltk_params_int(params, "T_max");
    o->eta_min = mltk_params_float(params, "eta_min");
    o->restarts = mltk_params_bool(params, "restarts");
    o->t_mult = mltk_params_int(params, "T_mult");
    if (o->t_mult != 1 && !o->restarts) {
        free(o);
        return mltk_errf(err, MLTK_ERR_CONFIG, "T_mult = %lld needs restarts = true",
                         (long long)mltk_params_int(params, "T_mult"));
    }
    *self = o;
    return MLTK_OK;
}

static void cosine_destroy(void *self)
{
    free(self);
}

static double cosine_lr(void *self, const mltk_sched_state *st)
{
    const cosine *o = self;
    int64_t period = o->t_max;
    if (period <= 0)
        period = st->steps_per_epoch > 0 ? st->total_steps / st->steps_per_epoch : 1;
    if (period <= 0)
        period = 1;
    int64_t e = st->epoch;
    if (o->restarts) {
        /* walk the periods: T_max, T_max T_mult, T_max T_mult^2, ... */
        while (e >= period) {
            e -= period;
            if (o->t_mult > 1 && period > INT64_MAX / o->t_mult)
                break;  /* the next period outlasts any run */
            period *= o->t_mult;
        }
    }
    const double pi = 3.14159265358979323846;
    return o->eta_min + (st->base_lr - o->eta_min)
           * (1.0 + cos(pi * (double)e / (double)period)) / 2.0;
}

static const struct mltk_schedule_i cosine_iface = {
    .size = sizeof(struct mltk_schedule_i),
    .create = cosine_create,
    .destroy = cosine_destroy,
    .lr = cosine_lr,
};

MLTK_PLUGIN(cosine, MLTK_KIND_SCHEDULE, &cosine_iface)
