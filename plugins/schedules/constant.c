/* constant.c - the constant learning-rate schedule: lr = base lr.
 *
 * What this is: the schedule a config gets without a [schedule] section
 * (or with `type = constant`); combined with the core's warm-up it gives
 * a linear warm-up to a constant rate.
 * What this is not: anything that changes the rate by itself.
 */
#include <mltk/plugin.h>

static int constant_create(void **self, const mltk_params_t *params, char **err)
{
    (void)params;
    (void)err;
    *self = NULL;
    return MLTK_OK;
}

static void constant_destroy(void *self)
{
    (void)self;
}

static double constant_lr(void *self, const mltk_sched_state *st)
{
    (void)self;
    return st->base_lr;
}

static const struct mltk_schedule_i constant_iface = {
    .size = sizeof(struct mltk_schedule_i),
    .create = constant_create,
    .destroy = constant_destroy,
    .lr = constant_lr,
};

MLTK_PLUGIN(constant, MLTK_KIND_SCHEDULE, &constant_iface)
