/* nan_policy.c - what a non-finite step does to the run ([train] on_nan), and
 * loss spikes.
 *
 * What this is: the component that meets a step whose loss or gradient
 * is NaN or Inf, read back before its update (at once with check_every =
 * 1, or when a window that held it is run again): stop naming the first
 * layer that produced it, skip the update (skip_step), or roll back to the
 * last checkpoint with the rate times nan_lr_factor (rollback), giving up
 * after max_skips; and, on the losses read back, warns when one is
 * spike_zscore standard deviations above the mean of the last
 * spike_window.  Its state in a checkpoint: the steps skipped so far
 * ("nan_skips").
 *
 * What this is not: a gradient overflow under dynamic loss scaling, which
 * loss_scale.c handles before this runs.
 */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "component.h"
#include "../schema.h"

typedef struct nan_policy {
    int      on_nan;          /* 0 stop, 1 skip_step, 2 rollback */
    double   lr_factor;       /* nan_lr_factor */
    int64_t  max_skips;
    int64_t  skips;           /* non-finite steps skipped or rolled back */
    int64_t  spike_window;
    double   spike_z;
    double  *hist;            /* ring of the last spike_window losses */
    int64_t  hist_n;
} nan_policy;

static int np_before_update(void *self, mltk_session_t *s, const mltk_step_check *c,
                            int *verdict, char **err);

static int np_open(void **self, mltk_session_t *s, const mltk_section *sec,
                   const mltk_params_t *p, char **err)
{
    nan_policy *n = calloc(1, sizeof(*n));
    if (!n)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    *self = n;
    const char *nan = mltk_params_str(p, "on_nan");
    n->on_nan = strcmp(nan, "skip_step") == 0 ? 1 : strcmp(nan, "rollback") == 0 ? 2 : 0;
    n->lr_factor = mltk_params_float(p, "nan_lr_factor");
    n->max_skips = mltk_params_int(p, "max_skips");
    n->spike_window = mltk_params_int(p, "spike_window");
    n->spike_z = mltk_params_float(p, "spike_zscore");
    if (n->on_nan == 2 && !mltk_config_section(s->cfg, "checkpoint"))
        return mltk_errf(err, MLTK_ERR_CONFIG, "%s:%d: on_nan = rollback needs a "
                         "[checkpoint] section to roll back to", s->cfg->path,
                         sec ? sec->line : 0);
    mltk_step_hook h = { .self = n, .before_update = np_before_update };
    return mltk_step_add_hook(s, &h, err);
}

static void np_close(void *self)
{
    nan_policy *n = self;
    free(n->hist);
    free(n);
}

/* ---- a non-finite step ------------------------------------------------------------------ */

/* The loss or the gradient of this step is not finite: stop, skip or roll
 * back.  When the step was found non-finite in a window read back later
 * and, run again from the state before it, came out finite, it is still
 * treated as the one that went wrong, but no tensor can be named. */
static int np_before_update(void *self, mltk_session_t *s, const mltk_step_check *c,
                            int *verdict, char **err)
{
    nan_policy *n = self;
    if ((!c->nonfinite && !c->replayed) || *verdict != MLTK_STEP_UPDATE)
        return MLTK_OK;
    int seen = c->nonfinite;
    float loss = seen ? c->loss : c->was[0];
    char found[256] = "", where[300], msg[600];
    if (!seen)
        snprintf(where, sizeof where, "not seen again when the step was run again");
    else if (mltk_model_find_nonfinite(s->model, c->rows, 1, found, sizeof found))
        snprintf(where, sizeof where, "first in %s", found);
    else
        snprintf(where, sizeof where, "first in %s", isfinite(loss)
                 ? "the gradients (no single tensor)" : "the loss itself");
    snprintf(msg, sizeof msg, "non-finite %s at step %" PRIu64 " (epoch %d, batch %" PRId64
             "): %s", isfinite(loss) ? "gradient" : "loss", s->step, c->epoch, c->batch + 1,
             where);
    mltk_alert(s, "nan", msg);
    if (n->on_nan == 0)
        return mltk_errf(err, MLTK_ERR_NUMERIC, "%s; try a lower learning rate, gradient "
                         "clipping, or [train] on_nan = skip_step", msg);
    if (++n->skips > n->max_skips)
        return mltk_errf(err, MLTK_ERR_NUMERIC, "%s; giving up after %" PRId64 " non-finite "
                         "steps ([train] max_skips)", msg, n->max_skips);
    if (n->on_nan == 1) {
        mltk_log(MLTK_LOG_WARN, "%s; update skipped", msg);
        *verdict = MLTK_STEP_DROP;
        return MLTK_OK;
    }
    /* the last checkpoint of this run (or the one it resumed from); the
     * directory's newest may be an earlier run's */
    const char *last = mltk_checkpointing_last(s);
    if (!last)
        return mltk_errf(err, MLTK_ERR_NUMERIC, "%s; no checkpoint to roll back to yet", msg);
    int64_t skips = n->skips;
    double factor = s->lr_factor * n->lr_factor;
    int rc = mltk_ckpt_restore(s, last, err);
    if (rc)
        return rc;
    n->skips = skips;
    s->lr_factor = factor;
    mltk_log(MLTK_LOG_WARN, "%s; rolled back to %s (step %" PRIu64 "), rate factor now %g",
             msg, mltk_checkpointing_last(s), s->step, factor);
    *verdict = MLTK_STEP_ROLLED_BACK;
    return MLTK_OK;
}

/* ---- loss spikes ------------------------------------------------------------------------ */

static int np_step_end(void *self, mltk_session_t *s, const mltk_step_result *r, char **err)
{
    nan_policy *n = self;
    double loss = r->loss;
    (void)err;
    if (!(n->spike_z > 0) || !isfinite(loss))
        return MLTK_OK;
    int64_t w = n->spike_window;
    if (!n->hist && !(n->hist = calloc((size_t)w, sizeof(double))))
        return MLTK_OK;
    int64_t have = n->hist_n < w ? n->hist_n : w;
    if (have >= w / 2 && have >= 10) {
        double mean = 0, var = 0;
        for (int64_t i = 0; i < have; i++)
            mean += n->hist[i];
        mean /= (double)have;
        for (int64_t i = 0; i < have; i++)
            var += (n->hist[i] - mean) * (n->hist[i] - mean);
        double sd = sqrt(var / (double)(have - 1));
        if (sd > 0 && (loss - mean) / sd > n->spike_z) {
            char msg[160];
            snprintf(msg, sizeof msg, "loss spike at step %" PRIu64 ": %.4g is %.1f "
                     "standard deviations above the last %" PRId64 " steps' mean %.4g",
                     s->step, loss, (loss - mean) / sd, have, mean);
            mltk_log(MLTK_LOG_WARN, "%s", msg);
            mltk_alert(s, "spike", msg);
        }
    }
    n->hist[n->hist_n % w] = loss;
    n->hist_n++;
    return MLTK_OK;
}

/* ---- state ------------------------------------------------------------------------------ */

static int np_save_state(void *self, mltk_kv *out)
{
    nan_policy *n = self;
    return mltk_kv_put(out, "nan_skips", "%" PRId64, n->skips);
}

static int np_load_state(void *self, mltk_session_t *s, const mltk_kv *in, char **err)
{
    nan_policy *n = self;
    int64_t skips;
    (void)s;
    int rc = mltk_kv_i64(in, "nan_skips", INT64_MAX, &skips, err);
    if (!rc)
        n->skips = skips;
    return rc;
}

int64_t mltk_nan_policy_skips(const mltk_session_t *s)
{
    nan_policy *n = mltk_component_self(s, &mltk_component_nan_policy);
    return n ? n->skips : 0;
}

const mltk_component_i mltk_component_nan_policy = {
    .name = "nan_policy",
    .section = "train",
    .schema = mltk_schema_train,
    .open = np_open,
    .close = np_close,
    .step_end = np_step_end,
    .save_state = np_save_state,
    .load_state = np_load_state,
};
