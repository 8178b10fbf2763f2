/* reduce_on_plateau.c - lower the rate when a metric stops improving, as
 * torch.optim.lr_scheduler.ReduceLROnPlateau.
 *
 * What this is: a schedule plugin fed by the core after every epoch
 * (observe() with "train_loss", "val_loss" and "val_acc"); it watches
 * `monitor`.  An epoch improves on the best value so far when
 *     min, rel: x < best (1 - threshold)     min, abs: x < best - threshold
 *     max, rel: x > best (1 + threshold)     max, abs: x > best + threshold
 * After more than `patience` epochs without improvement the rate becomes
 * max(lr * factor, min_lr) (ignored when that changes it by eps or less),
 * and `cooldown` epochs follow in which bad epochs are not counted.  A
 * NaN metric never improves (as in PyTorch).  mode = auto minimises losses
 * and maximises accuracy.
 * What this is not: early stopping; it only lowers the rate.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mltk/plugin.h>

typedef struct plateau {
    char    monitor[16];
    int     maximize;
    int     rel;
    int64_t patience, cooldown;
    double  factor, threshold, min_lr, eps;
    /* state */
    double  lr;          /* current rate; < 0 until the base rate is known */
    double  best;
    int64_t bad;         /* epochs without improvement */
    int64_t cool;        /* cooldown epochs left */
} plateau;

static int plateau_create(void **self, const mltk_params_t *params, char **err)
{
    const char *monitor = mltk_params_str(params, "monitor");
    const char *mode = mltk_params_str(params, "mode");
    double factor = mltk_params_float(params, "factor");
    plateau *o;

    if (!(factor < 1.0))
        return mltk_errf(err, MLTK_ERR_CONFIG, "key 'factor' must be < 1, got %g", factor);
    o = calloc(1, sizeof(*o));
    if (!o)
        return mltk_errf(err, MLTK_ERR_NOMEM, "reduce_on_plateau: out of memory");
    snprintf(o->monitor, sizeof o->monitor, "%s", monitor);
    if (strcmp(mode, "auto") == 0)
        o->maximize = strcmp(monitor, "val_acc") == 0;
    else
        o->maximize = strcmp(mode, "max") == 0;
    o->rel = strcmp(mltk_params_str(params, "threshold_mode"), "rel") == 0;
    o->patience = mltk_params_int(params, "patience");
    o->cooldown = mltk_params_int(params, "cooldown");
    o->factor = factor;
    o->threshold = mltk_params_float(params, "threshold");
    o->min_lr = mltk_params_float(params, "min_lr");
    o->eps = mltk_params_float(params, "eps");
    o->lr = -1.0;
    o->best = o->maximize ? -INFINITY : INFINITY;
    *self = o;
    return MLTK_OK;
}

static void plateau_destroy(void *self)
{
    free(self);
}

static double plateau_lr(void *self, const mltk_sched_state *st)
{
    plateau *o = self;
    if (o->lr < 0.0)
        o->lr = st->base_lr;
    return o->lr;
}

static int improves(const plateau *o, double x)
{
    if (o->maximize)
        return o->rel ? x > o->best * (1.0 + o->threshold) : x > o->best + o->threshold;
    return o->rel ? x < o->best * (1.0 - o->threshold) : x < o->best - o->threshold;
}

static void plateau_observe(void *self, const char *metric, double value,
                            const mltk_sched_state *st)
{
    plateau *o = self;
    if (strcmp(metric, o->monitor) != 0)
        return;
    if (o->lr < 0.0)
        o->lr = st->base_lr;
    if (improves(o, value)) {
        o->best = value;
        o->bad = 0;
    } else {
        o->bad++;
    }
    if (o->cool > 0) {
        o->cool--;
        o->bad = 0;
    }
    if (o->bad > o->patience) {
        double next = o->lr * o->factor;
        if (next < o->min_lr)
            next = o->min_lr;
        if (o->lr - next > o->eps)
            o->lr = next;
        o->cool = o->cooldown;
        o->bad = 0;
    }
}

/* the state as exact hexadecimal floats: "lr best bad cool" */
static int plateau_save(void *self, char *buf, size_t cap)
{
    const plateau *o = self;
    return snprintf(buf, cap, "%a %a %lld %lld", o->lr, o->best, (long long)o->bad,
                    (long long)o->cool);
}

static int plateau_load(void *self, const char *text)
{
    plateau *o = self;
    double lr, best;
    long long bad, cool;
    int used = 0;
    if (sscanf(text, "%la %la %lld %lld%n", &lr, &best, &bad, &cool, &used) != 4
        || text[used] != '\0' || bad < 0 || cool < 0)
        return MLTK_ERR_DATA;
    o->lr = lr;
    o->best = best;
    o->bad = bad;
    o->cool = cool;
    return MLTK_OK;
}

static const struct mltk_schedule_i plateau_iface = {
    .size = sizeof(struct mltk_schedule_i),
    .create = plateau_create,
    .destroy = plateau_destroy,
    .lr = plateau_lr,
    .observe = plateau_observe,
    .save_state = plateau_save,
    .load_state = plateau_load,
};

MLTK_PLUGIN(reduce_on_plateau, MLTK_KIND_SCHEDULE, &plateau_iface)
