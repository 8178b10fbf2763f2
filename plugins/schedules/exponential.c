/* exponential.c - exponential decay, as lr_scheduler.ExponentialLR.
 *
 * What this is: a schedule plugin with lr = base * gamma^epoch, epoch
 * counted from 0 and constant within an epoch.
 * What this is not: per-step decay.
 */
#include <math.h>
#include <stdlib.h>
#include <mltk/plugin.h>

typedef struct exponential {
    double gamma;
} exponential;

static int exponential_create(void **self, const mltk_params_t *params, char **err)
{
    exponential *o = calloc(1, sizeof(*o));
    if (!o)
        return mltk_errf(err, MLTK_ERR_NOMEM, "exponential: out of memory");
    o->gamma = mltk_params_float(params, "gamma");
    *self = o;
    return MLTK_OK;
}

static void exponential_destroy(void *self)
{
    free(self);
}

static double exponential_lr(void *self, const mltk_sched_state *st)
{
    const exponential *o = self;
    return st->base_lr * pow(o->gamma, (double)st->epoch);
}

static const struct mltk_schedule_i exponential_iface = {
    .size = sizeof(struct mltk_schedule_i),
    .create = exponential_create,
    .destroy = exponential_destroy,
    .lr = exponential_lr,
};

MLTK_PLUGIN(exponential, MLTK_KIND_SCHEDULE, &exponential_iface)
