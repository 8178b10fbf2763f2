/* checkpointing.c - when training writes checkpoints ([checkpoint]).
 *
 * What this is: the component that writes a checkpoint after every N
 * epochs, every N steps, at the end and when a signal (SIGINT, SIGTERM,
 * with on_signal) or --max-steps ends the run between two steps; keeps
 * the newest keep_last and best.safetensors for the best monitored metric;
 * refuses a new run in a directory that holds another run's checkpoints;
 * and finds the checkpoint --resume names ("auto": the newest; train.c
 * goes back to older ones while the newest is damaged).  Its state in a
 * checkpoint is the best value so far ("best_ckpt").
 *
 * What this is not: the file format and the restore (checkpoint.c), or
 * what happens to a bad step (nan_policy.c, which rolls back to the
 * checkpoint named here).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "component.h"
#include "../schema.h"

typedef struct ckpt {
    char       *dir;          /* NULL: no checkpoints */
    int64_t     every_epochs, every_steps, keep_last;
    int         keep_best, on_signal, maximize;
    const char *monitor;
    double      best;         /* best monitored value so far */
    char       *last;         /* newest checkpoint written or resumed */
    int64_t     last_step;    /* the step it was written at, -1 */
    int         caught;       /* signal handlers installed */
    struct sigaction intr, term;
} ckpt;

static ckpt *self_of(const mltk_session_t *s)
{
    return mltk_component_self(s, &mltk_component_checkpointing);
}

/* ---- signals ---------------------------------------------------------------------- */

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

int mltk_checkpointing_signal(void)
{
    return got_signal;
}

/* ---- lifetime ------------------------------------------------------------------------ */

static int ck_open(void **self, mltk_session_t *s, const mltk_section *sec,
                   const mltk_params_t *p, char **err)
{
    ckpt *c = calloc(1, sizeof(*c));
    if (!c)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    *self = c;
    c->last_step = -1;
    c->monitor = mltk_params_str(p, "monitor");
    if (sec) {
        c->dir = mltk_out_path(s, p, "dir", "checkpoints");
        if (!c->dir)
            return mltk_errf(err, MLTK_ERR_CONFIG, "%s: [checkpoint] needs a dir (or [run] "
                             "dir, which puts them in checkpoints/ there)",
                             mltk_params_where(p));
        c->every_epochs = mltk_params_int(p, "every_epochs");
        c->every_steps = mltk_params_int(p, "every_steps");
        c->keep_last = mltk_params_int(p, "keep_last");
        c->keep_best = mltk_params_bool(p, "keep_best");
        c->on_signal = mltk_params_bool(p, "on_signal");
        c->maximize = mltk_monitor_maximize(c->monitor, mltk_params_str(p, "mode"));
    }
    c->best = c->maximize ? -INFINITY : INFINITY;
    return MLTK_OK;
}

static void ck_close(void *self)
{
    ckpt *c = self;
    free(c->dir);
    free(c->last);
    free(c);
}

/* ---- writing ------------------------------------------------------------------------ */

/* Checkpoints named with a later step than `path` (just written) were
 * written before this run went back to an earlier step: a new run in the
 * same directory, or a resume from an older checkpoint.  They are older
 * than `path`, but the rotation and --resume auto go by the step in the
 * names, so they are removed first. */
static int drop_later_checkpoints(ckpt *c, mltk_session_t *s, const char *path, char **err)
{
    for (;;) {
        char *latest = NULL;
        int rc = mltk_ckpt_latest(c->dir, &latest, err);
        if (rc || !latest || strcmp(latest, path) == 0) {
            free(latest);
            return rc;
        }
        mltk_log(MLTK_LOG_WARN, "removing %s: it was written before this run, which is "
                 "at step %" PRIu64, latest, s->step);
        if (unlink(latest) != 0 && errno != ENOENT) {
            rc = mltk_errf(err, MLTK_ERR_IO, "cannot remove %s: %s", latest, strerror(errno));
            free(latest);
            return rc;
        }
        free(latest);
    }
}

/* A checkpoint of the current position, rotated in with the others. */
static int save_checkpoint(ckpt *c, mltk_session_t *s, char **err)
{
    char *path = mltk_ckpt_path(c->dir, s->step);
    if (!path)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    int rc = mltk_ckpt_save(s, path, err);
    if (!rc)
        rc = drop_later_checkpoints(c, s, path, err);
    if (!rc) {
        free(c->last);
        c->last = path;
        c->last_step = (int64_t)s->step;
        mltk_log(MLTK_LOG_DEBUG, "checkpoint %s", path);
        rc = mltk_ckpt_rotate(c->dir, c->keep_last, err);
        char msg[64];
        snprintf(msg, sizeof msg, "checkpoint at step %" PRIu64, s->step);
        mltk_alert(s, "checkpoint", msg);
    } else {
        free(path);
    }
    return rc;
}

/* ---- the loop's points ------------------------------------------------------------------ */

static int ck_train_begin(void *self, mltk_session_t *s, char **err)
{
    ckpt *c = self;
    got_signal = 0;
    if (!c->dir)
        return MLTK_OK;
    int rc = mltk_mkdir_p(c->dir, err);
    char *path = NULL;
    if (!rc && !s->opts.resume) {
        /* a new run never writes over another run's checkpoints */
        rc = mltk_ckpt_latest(c->dir, &path, err);
        if (!rc && path)
            rc = mltk_errf(err, MLTK_ERR_CONFIG, "%s: the checkpoint directory %s already "
                           "holds checkpoints (newest %s): continue that run with --resume "
                           "auto, or give this one another [checkpoint] dir or [run] dir",
                           s->cfg->path, c->dir, path);
        free(path);
    }
    if (rc || !c->on_signal)
        return rc;
    /* SIGINT and SIGTERM end the run at the next step boundary with a
     * checkpoint instead of killing it */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &c->intr);
    sigaction(SIGTERM, &sa, &c->term);
    c->caught = 1;
    return MLTK_OK;
}

static int ck_sync_due(void *self, mltk_session_t *s, uint64_t step)
{
    ckpt *c = self;
    (void)s;
    return c->dir && c->every_steps > 0 && (step + 1) % (uint64_t)c->every_steps == 0;
}

/* in the middle of an epoch: every_steps, or a stop; the partial loss
 * sum goes into the checkpoint */
static int ck_step_end(void *self, mltk_session_t *s, const mltk_step_result *r, char **err)
{
    ckpt *c = self;
    if (!c->dir || !r->current || r->last || !(r->stop || ck_sync_due(c, s, r->step)))
        return MLTK_OK;
    int rc = mltk_step_loss_sum(s);
    if (rc)
        return mltk_step_failed(s, rc, "reading back the epoch's loss", err);
    return save_checkpoint(c, s, err);
}

static int ck_epoch_end(void *self, mltk_session_t *s, mltk_epoch_end *ee, char **err)
{
    ckpt *c = self;
    const mltk_epoch_stats *e = ee->e;
    if (!c->dir)
        return MLTK_OK;
    double v = mltk_metric_of(e, c->monitor);
    int best = c->keep_best && mltk_metric_better(v, c->best, c->maximize, 0.0);
    if (best)
        c->best = v;
    int due = c->every_epochs > 0 && e->epoch % c->every_epochs == 0;
    int rc = MLTK_OK;
    if (due || best || e->epoch == s->epochs) {
        rc = save_checkpoint(c, s, err);
        if (!rc && best)
            rc = mltk_ckpt_mark_best(c->dir, c->last, err);
    }
    if (!rc && ee->interrupt && !ee->stop && e->epoch < s->epochs
        && c->last_step != (int64_t)s->step)
        rc = save_checkpoint(c, s, err);
    return rc;
}

static int ck_train_end(void *self, mltk_session_t *s, const char *status, char **err)
{
    ckpt *c = self;
    (void)err;
    if (c->caught) {
        sigaction(SIGINT, &c->intr, NULL);
        sigaction(SIGTERM, &c->term, NULL);
        c->caught = 0;
    }
    if (strcmp(status, "interrupted") == 0 && c->last)
        mltk_log(MLTK_LOG_INFO, "stopped at step %" PRIu64 "; continue with --resume %s",
                 s->step, c->last);
    return MLTK_OK;
}

/* ---- state ------------------------------------------------------------------------------ */

static int ck_save_state(void *self, mltk_kv *out)
{
    ckpt *c = self;
    return mltk_kv_put(out, "best_ckpt", "%a", c->best);
}

static int ck_load_state(void *self, mltk_session_t *s, const mltk_kv *in, char **err)
{
    ckpt *c = self;
    double best;
    int rc = mltk_kv_f64(in, "best_ckpt", &best, err);
    if (rc)
        return rc;
    /* +-inf before the first epoch's value, never NaN */
    if (isnan(best))
        return mltk_errf(err, MLTK_ERR_DATA, "%s: metadata 'best_ckpt' is not a number from "
                         "-inf to inf: '%s'", in->path ? in->path : "(state)",
                         mltk_kv_get(in, "best_ckpt"));
    c->best = best;
    (void)s;
    /* a checkpoint restored (a resume, a rollback) is the one to roll
     * back to next */
    if (in->path && in->path != c->last) {
        char *p = mltk_strdup(in->path);
        if (!p)
            return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
        free(c->last);
        c->last = p;
    }
    return MLTK_OK;
}

/* ---- what the others may ask -------------------------------------------------------------- */

const char *mltk_checkpointing_last(const mltk_session_t *s)
{
    ckpt *c = self_of(s);
    return c ? c->last : NULL;
}

const char *mltk_checkpointing_dir(const mltk_session_t *s)
{
    ckpt *c = self_of(s);
    return c ? c->dir : NULL;
}

int mltk_checkpointing_resume_path(mltk_session_t *s, char **path, char **err)
{
    const char *dir = mltk_checkpointing_dir(s);
    *path = NULL;
    if (!s->opts.resume)
        return MLTK_OK;
    if (strcmp(s->opts.resume, "auto") != 0)
        return (*path = mltk_strdup(s->opts.resume)) ? MLTK_OK : MLTK_ERR_NOMEM;
    if (!dir)
        return mltk_errf(err, MLTK_ERR_CONFIG, "%s: --resume auto needs a [checkpoint] "
                         "section naming where the checkpoints are", s->cfg->path);
    int rc = mltk_ckpt_latest(dir, path, err);
    if (!rc && !*path)
        mltk_log(MLTK_LOG_INFO, "no checkpoint in %s yet: starting from the beginning", dir);
    return rc;
}

const mltk_component_i mltk_component_checkpointing = {
    .name = "checkpoint",
    .section = "checkpoint",
    .schema = mltk_schema_checkpoint,
    .open = ck_open,
    .close = ck_close,
    .train_begin = ck_train_begin,
    .sync_due = ck_sync_due,
    .step_end = ck_step_end,
    .epoch_end = ck_epoch_end,
    .train_end = ck_train_end,
    .save_state = ck_save_state,
    .load_state = ck_load_state,
};
