/* multistep.c - decay at given epochs, as lr_scheduler.MultiStepLR.
 *
 * What this is: a schedule plugin that multiplies the rate by `gamma` at
 * each epoch listed in `milestones`:  lr = base * gamma^k, k = the number
 * of milestones <= epoch (epoch counted from 0; a milestone listed twice
 * decays twice, as PyTorch's Counter of milestones does).
 * What this is not: per-step decay.
 */
#include <stdlib.h>
#include <math.h>
#include <mltk/plugin.h>

#define MAX_MILESTONES 256

typedef struct multistep {
    int     n;
    int64_t at[MAX_MILESTONES];  /* ascending */
    double  gamma;
} multistep;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int multistep_create(void **self, const mltk_params_t *params, char **err)
{
    int n = mltk_params_ints(params, "milestones", NULL, 0);
    multistep *o;

    if (n < 1)
        return mltk_errf(err, MLTK_ERR_CONFIG, "milestones: at least one epoch is needed");
    if (n > MAX_MILESTONES)
        return mltk_errf(err, MLTK_ERR_CONFIG, "milestones: at most %d epochs, got %d",
                         MAX_MILESTONES, n);
    o = calloc(1, sizeof(*o));
    if (!o)
        return mltk_errf(err, MLTK_ERR_NOMEM, "multistep: out of memory");
    o->n = mltk_params_ints(params, "milestones", o->at, MAX_MILESTONES);
    qsort(o->at, (size_t)o->n, sizeof(o->at[0]), cmp_i64);
    o->gamma = mltk_params_float(params, "gamma");
    *self = o;
    return MLTK_OK;
}

static void multistep_destroy(void *self)
{
    free(self);
}

static double multistep_lr(void *self, const mltk_sched_state *st)
{
    const multistep *o = self;
    int k = 0;
    while (k < o->n && o->at[k] <= st->epoch)
        k++;
    return st->base_lr * pow(o->gamma, (double)k);
}

static const struct mltk_schedule_i multistep_iface = {
    .size = sizeof(struct mltk_schedule_i),
    .create = multistep_create,
    .destroy = multistep_destroy,
    .lr = multistep_lr,
};

MLTK_PLUGIN(multistep, MLTK_KIND_SCHEDULE, &multistep_iface)
