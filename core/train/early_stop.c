/* early_stop.c - stop when the monitored metric stops improving ([early_stopping]).
 *
 * What this is: the component that watches a metric after every epoch,
 * stops the run after `patience` epochs without an improvement of more
 * than min_delta, and (restore_best) goes back to the best epoch's
 * weights, kept in host memory by this process.  Its state in a
 * checkpoint: the best value, the epochs without improvement and the best
 * epoch ("es_best", "es_bad", "es_best_epoch").
 *
 * What this is not: the checkpoint of the best epoch (checkpointing.c).
 */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "component.h"
#include "../schema.h"

typedef struct early_stop {
    int         on;
    const char *monitor;
    int         maximize, restore_best;
    int64_t     patience;
    double      min_delta;
    double      best;
    int64_t     bad, best_epoch;
    float      *best_host;    /* weights of the best epoch (host), or NULL */
    int64_t     best_host_n;
} early_stop;

static int es_open(void **self, mltk_session_t *s, const mltk_section *sec,
                   const mltk_params_t *p, char **err)
{
    early_stop *e = calloc(1, sizeof(*e));
    if (!e)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    (void)s;
    *self = e;
    e->on = sec != NULL;
    e->monitor = mltk_params_str(p, "monitor");
    e->maximize = e->on && mltk_monitor_maximize(e->monitor, mltk_params_str(p, "mode"));
    e->patience = mltk_params_int(p, "patience");
    e->min_delta = mltk_params_float(p, "min_delta");
    e->restore_best = mltk_params_bool(p, "restore_best");
    e->best = e->maximize ? -INFINITY : INFINITY;
    return MLTK_OK;
}

static void es_close(void *self)
{
    early_stop *e = self;
    free(e->best_host);
    free(e);
}

/* the model's tensors to or from e->best_host */
static int keep_weights(early_stop *e, mltk_session_t *s, int restore, char **err)
{
    int nt = mltk_model_n_tensors(s->model);
    if (!restore && !e->best_host) {
        int64_t n = 0;
        for (int i = 0; i < nt; i++) {
            mltk_model_named t;
            if (!mltk_model_tensor(s->model, i, &t))
                n += mltk_shape_numel(&t.shape);
        }
        if (!(e->best_host = malloc((size_t)(n ? n : 1) * sizeof(float))))
            return mltk_errf(err, MLTK_ERR_NOMEM, "early stopping: cannot keep the best "
                             "weights");
    }
    int64_t at = 0;
    for (int i = 0; i < nt; i++) {
        mltk_model_named t;
        if (mltk_model_tensor(s->model, i, &t))
            continue;
        int64_t k = mltk_shape_numel(&t.shape);
        size_t bytes = (size_t)k * sizeof(float);
        if (restore ? mltk_be_upload(&s->be, t.data, e->best_host + at, bytes)
                    : mltk_be_download(&s->be, e->best_host + at, t.data, bytes))
            return mltk_errf(err, MLTK_ERR_BACKEND, "early stopping: cannot %s %s",
                             restore ? "restore" : "read", t.name);
        at += k;
    }
    if (!restore)
        e->best_host_n = at;
    return restore ? mltk_model_params_changed(s->model, err) : MLTK_OK;
}

static int es_epoch_end(void *self, mltk_session_t *s, mltk_epoch_end *ee, char **err)
{
    early_stop *e = self;
    if (!e->on)
        return MLTK_OK;
    double v = mltk_metric_of(ee->e, e->monitor);
    if (mltk_metric_better(v, e->best, e->maximize, e->min_delta)) {
        e->best = v;
        e->bad = 0;
        e->best_epoch = ee->e->epoch;
        return e->restore_best ? keep_weights(e, s, 0, err) : MLTK_OK;
    }
    if (++e->bad < e->patience)
        return MLTK_OK;
    char msg[256];
    snprintf(msg, sizeof msg, "early stopping after epoch %d: %s has not improved for %"
             PRId64 " epoch(s); best %.6g at epoch %" PRId64, ee->e->epoch, e->monitor,
             e->bad, e->best, e->best_epoch);
    if (e->restore_best && e->best_host) {
        int rc = keep_weights(e, s, 1, err);
        if (rc)
            return rc;
        mltk_log(MLTK_LOG_INFO, "%s; restored the weights of epoch %" PRId64, msg,
                 e->best_epoch);
    } else {
        mltk_log(MLTK_LOG_INFO, "%s%s", msg, e->restore_best
                 ? " (its weights were not kept in this process: keeping the last)" : "");
    }
    mltk_alert(s, "early_stop", msg);
    ee->stop = 1;
    return MLTK_OK;
}

static int es_save_state(void *self, mltk_kv *out)
{
    early_stop *e = self;
    int rc = mltk_kv_put(out, "es_best", "%a", e->best);
    rc = rc ? rc : mltk_kv_put(out, "es_bad", "%" PRId64, e->bad);
    rc = rc ? rc : mltk_kv_put(out, "es_best_epoch", "%" PRId64, e->best_epoch);
    return rc;
}

static int es_load_state(void *self, mltk_session_t *s, const mltk_kv *in, char **err)
{
    early_stop *e = self;
    double best;
    int64_t bad, epoch;
    (void)s;
    int rc = mltk_kv_i64(in, "es_bad", INT32_MAX, &bad, err);
    rc = rc ? rc : mltk_kv_i64(in, "es_best_epoch", INT32_MAX, &epoch, err);
    rc = rc ? rc : mltk_kv_f64(in, "es_best", &best, err);
    if (rc)
        return rc;
    e->best = best;
    e->bad = bad;
    e->best_epoch = epoch;
    return MLTK_OK;
}

const mltk_component_i mltk_component_early_stop = {
    .name = "early_stopping",
    .section = "early_stopping",
    .schema = mltk_schema_early_stopping,
    .open = es_open,
    .close = es_close,
    .epoch_end = es_epoch_end,
    .save_state = es_save_state,
    .load_state = es_load_state,
};
