/* train.c - the training loop and evaluation.
 *
 * The loop reads like the design's pseudocode: per epoch, draw the order,
 * then per batch take a step (train/step.c: gather, forward, loss,
 * backward, the hooks after backward, clipping, the update at the
 * scheduled rate) and report the steps whose numbers have been read back
 * to the components (train/component.h); then evaluate on the test split,
 * tell the schedule the epoch's metrics, and let the components act on
 * the epoch (logs, early stopping, checkpoints).
 *
 * Schedules follow PyTorch's epoch-based schedulers: the plugin's rate is
 * constant within an epoch (the epoch counted from 0), and the core's
 * linear warm-up multiplies it per step.  The rate an epoch reports is the
 * one its last step used.
 *
 * A step never waits for the device: its loss, the sum of its squared
 * gradients and a non-finite flag stay in a record in backend memory, and
 * the records of a window of steps are read back in one download every
 * [train] check_every steps, at the end of an epoch, at a stop and where a
 * component asks (a checkpoint, histograms).  The state at each window's
 * start is kept: a device copy of the parameters, optimizer and layer
 * state and loss sum, and the components' own state (save_state).  When a
 * window holds a non-finite step, the run goes back to that state and runs
 * the window's steps again one at a time, reading each back before its
 * update, so that the bad step meets the before_update hooks as if caught
 * at once (loss scaling skips an overflow; the NaN policy stops, skips or
 * rolls back).  With check_every = 1 every step is read back before its
 * update and no copy is kept.  A layer's own host-side state (a plugin's
 * private counters) is not in the copy.
 *
 * A run stopped by SIGINT, SIGTERM or --max-steps stops between two steps
 * after its checkpoint (train/checkpointing.c); a resumed run starts at
 * the checkpoint's batch with its partial loss sum, so its numbers are
 * those of a run never stopped (a window changes when numbers are read,
 * never what they are).
 *
 * What this is not: the step (train/step.c), the components (one file each
 * under train/), the checkpoint files (checkpoint.c), or the building of
 * the schedule (session.c).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "train/component.h"
#include "op.h"

/* scalar i of s->scalars, a 1-element f32 tensor */
static mltk_tensor scalar(mltk_session_t *s, int i)
{
    return mltk_tensor_1d(&s->scalars[i], MLTK_F32, 1);
}

/* loss of the batch in s->scalars[MLTK_S_LOSS], added to MLTK_S_LOSS_SUM
 * when `sum`; dpred NULL in evaluation */
static int batch_loss(mltk_session_t *s, const mltk_split *sp, void *y, int64_t rows,
                      int want_grad, int sum, char **err)
{
    mltk_tensor pred = mltk_batch_tensor(mltk_model_output(s->model),
                                         mltk_model_output_shape(s->model), rows, MLTK_F32);
    mltk_tensor target = mltk_batch_tensor(y, &sp->yb_shape, rows, mltk_target_dtype(sp));
    mltk_tensor dpred = pred;
    dpred.data = want_grad ? mltk_model_output_grad(s->model) : NULL;
    mltk_tensor loss = scalar(s, MLTK_S_LOSS), loss_sum = scalar(s, MLTK_S_LOSS_SUM);
    mltk_backend_clear_error(&s->be);
    int rc = s->loss->forward(s->loss_self, &s->be, &pred, &target, &loss, &dpred, 1.0f);
    if (rc)
        return mltk_step_failed(s, rc, "loss", err);
    if (!sum)
        return MLTK_OK;
    /* loss_sum += rows * loss */
    rc = mltk_op_axpby(&s->be, &loss_sum, (float)rows, &loss, 1.0f);
    return rc ? mltk_step_failed(s, rc, "summing the loss", err) : MLTK_OK;
}

/* ---- the learning-rate schedule ------------------------------------------------- */

double mltk_sched_lr(mltk_sched *sc, int64_t step, int64_t epoch)
{
    sc->st.step = step;
    sc->st.epoch = epoch;
    double lr = sc->i ? sc->i->lr(sc->self, &sc->st) : sc->st.base_lr;
    if (step < sc->warmup_steps)
        lr *= sc->warmup_start
              + (1.0 - sc->warmup_start) * (double)step / (double)sc->warmup_steps;
    return lr;
}

void mltk_sched_observe(mltk_sched *sc, const char *metric, double value,
                        int64_t epochs_done)
{
    if (!sc->i || sc->i->size < offsetof(struct mltk_schedule_i, observe)
                                + sizeof(sc->i->observe) || !sc->i->observe)
        return;
    sc->st.epoch = epochs_done;
    sc->i->observe(sc->self, metric, value, &sc->st);
}

int mltk_session_signal(const mltk_session_t *s)
{
    return s ? s->stop_signal : 0;
}

/* a signal or --max-steps ends the run once `steps` steps are taken */
static int stop_requested(const mltk_session_t *s, uint64_t steps)
{
    return mltk_checkpointing_signal()
           || (s->opts.max_steps > 0 && steps >= (uint64_t)s->opts.max_steps);
}

/* ---- reporting a step read back ----------------------------------------------------------- */

/* The components' step_end, as it would have run right after the step
 * (s->step is r->step + 1 meanwhile); `current` when it is the newest. */
static int report_step(mltk_session_t *s, int epoch, const mltk_step_rec *r, double loss,
                       int current, char **err)
{
    uint64_t now = s->step;
    mltk_step_result res = {
        .step = r->step, .epoch = epoch, .loss = loss, .lr = r->lr,
        .samples_per_s = r->samples_per_s, .done = r->done, .total = s->train.n,
        .t_epoch = r->t_epoch, .last = r->last, .stop = r->stop, .current = current,
    };
    s->step = r->step + 1;
    int rc = mltk_components_step_end(s, &res, err);
    s->step = now;
    return rc;
}

/* ---- the window: steps whose numbers are read back together -------------------------------- */

/* A window starts: keep the state it starts from (device copies and the
 * components' host state; no host sync). */
static int window_open(mltk_session_t *s, char **err)
{
    s->snap_at.step = s->step;
    s->snap_at.batch_done = s->batch_done;
    s->snap_at.rows_skipped = s->rows_skipped;
    s->snap_at.last_lr = s->last_lr;
    mltk_kv_free(&s->stepper->win_state);
    if (mltk_components_save_state(s, &s->stepper->win_state))
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    return mltk_step_snapshot(s, 0, err);
}

/* The window ends: one download of the epoch's loss sum and every
 * record.  All finite: the steps are reported.  Else the state goes back
 * to the window's start and *rewound is set: the loop runs the steps
 * again one at a time, checking each, up to the first bad one. */
static int window_close(mltk_session_t *s, int epoch, int *rewound, char **err)
{
    *rewound = 0;
    if (s->win_n == 0)
        return MLTK_OK;
    size_t nf = (size_t)(MLTK_SCALARS_HEAD + 3 * s->win_n);
    int rc = mltk_be_download(&s->be, s->win_host, s->scalars, nf * sizeof(float));
    if (rc)
        return mltk_step_failed(s, rc, "reading back the steps' losses", err);
    int64_t n = s->win_n, bad = -1;
    const float *recs = s->win_host + MLTK_SCALARS_HEAD;
    s->win_n = 0;
    for (int64_t k = 0; k < n && bad < 0; k++)
        if (!mltk_step_rec_finite(recs + 3 * k))
            bad = k;
    if (bad < 0) {
        s->loss_sum_now = s->win_host[MLTK_S_LOSS_SUM];
        s->sum_known = 1;
        s->last_loss = recs[3 * (n - 1)];
        for (int64_t k = 0; k < n && !rc; k++)
            rc = report_step(s, epoch, &s->win[k], recs[3 * k], k == n - 1, err);
        return rc;
    }
    rc = mltk_step_snapshot(s, 1, err);
    if (!rc)
        rc = mltk_components_load_state(s, &s->stepper->win_state, err);
    if (rc)
        return rc;
    s->step = s->snap_at.step;
    s->batch_done = s->snap_at.batch_done;
    s->rows_skipped = s->snap_at.rows_skipped;
    s->last_lr = s->snap_at.last_lr;
    s->replay_to = (int64_t)s->win[bad].step;
    memcpy(s->replay_rec, recs + 3 * bad, sizeof s->replay_rec);
    s->sum_known = 0;
    mltk_log(MLTK_LOG_DEBUG, "step %" PRIu64 " was not finite: running steps %" PRIu64
             "..%" PRIu64 " again one at a time", s->win[bad].step, s->step, s->win[bad].step);
    *rewound = 1;
    return MLTK_OK;
}

/* A checked step: its record `dev` read back into rec before its update,
 * and the step's hooks' verdict on it. */
static int check_step(mltk_session_t *s, int epoch, int64_t batch, int64_t rows,
                      const float *dev, float *rec, int *verdict, char **err)
{
    int rc = mltk_be_download(&s->be, rec, dev, 3 * sizeof(float));
    if (rc)
        return mltk_step_failed(s, rc, "reading back the step's loss", err);
    mltk_step_check c = {
        .loss = rec[0], .grad_sq = rec[1], .nonfinite = !mltk_step_rec_finite(rec),
        .replayed = (int64_t)s->step == s->replay_to, .epoch = epoch, .batch = batch,
        .rows = rows,
    };
    memcpy(c.was, s->replay_rec, sizeof c.was);
    if (c.nonfinite || c.replayed)
        s->replay_to = -1;
    s->last_loss = rec[0];
    return mltk_step_judge(s, &c, verdict, err);
}

/* ---- one epoch of training ------------------------------------------------------------------- */

/* Batches from s->batch_done on (0, or where a checkpoint stopped); the
 * samples of those batches in *samples (a resumed epoch's rate counts
 * only what this run did).  Sets *rolled_back when a rollback moved the
 * position: the caller restarts.
 *
 * A step runs "checked" (its record read back before its update: one
 * host sync) when [train] check_every is 1 or while steps are run again
 * after a window found a non-finite one; otherwise it runs in a window:
 * its update is made at once, its record stays on the device, and the
 * window is read back after check_every steps, at the end of the epoch,
 * at a stop or where a component asks: a step in a window makes no host
 * sync. */
static int train_epoch(mltk_session_t *s, int epoch, double *loss, int64_t *samples,
                       int *rolled_back, char **err)
{
    mltk_split *sp = &s->train;
    double t0 = mltk_now();
    int64_t first = s->batch_done;
    /* the samples an epoch trains: all, or whole batches with drop_last */
    int64_t total = s->steps_per_epoch * s->batch_size, n_ep = mltk_data_epoch_samples(s, sp);
    if (total < n_ep)
        n_ep = total;
    *samples = n_ep - first * s->batch_size;

    *rolled_back = 0;
    s->win_n = 0;
    s->sum_known = 0;
    int rc = mltk_data_epoch(s, sp, epoch, first, err);
    if (!rc)
        rc = mltk_be_upload(&s->be, &s->scalars[MLTK_S_LOSS_SUM], &s->loss_sum_now,
                            sizeof(float));
    for (int64_t bi = first; rc == MLTK_OK && bi < s->steps_per_epoch; bi++) {
        int64_t off = bi * s->batch_size;
        int64_t rows = 0;
        int checked = s->check_every == 1 || (int64_t)s->step <= s->replay_to;
        int verdict = MLTK_STEP_UPDATE, rewound = 0;
        float rec[3] = { 0 };
        double lr = mltk_sched_lr(&s->sched, (int64_t)s->step, epoch - 1) * s->lr_factor;

        if (!checked && s->win_n == 0)
            rc = window_open(s, err);
        float *dev = mltk_step_record(s, checked ? 0 : s->win_n);
        if (!rc)
            rc = mltk_step_compute(s, bi, &rows, dev, err);
        s->sum_known = 0;
        if (!rc && checked)
            rc = check_step(s, epoch, bi, rows, dev, rec, &verdict, err);
        if (!rc && verdict == MLTK_STEP_ROLLED_BACK) {
            *rolled_back = 1;
            return MLTK_OK;
        }
        if (verdict == MLTK_STEP_DROP)
            s->rows_skipped += rows;  /* the epoch's loss is over the steps kept */
        if (!rc)
            rc = mltk_step_update(s, rows, dev, lr, verdict, err);
        if (rc)
            break;

        double el = mltk_now() - t0;
        int64_t done = off + rows, here = done - first * s->batch_size;
        mltk_step_rec r = {
            .step = s->step, .lr = lr, .samples_per_s = el > 0 ? (double)here / el : 0,
            .done = done, .t_epoch = t0 - (double)first * s->batch_size * (el / (double)here),
            .last = bi + 1 == s->steps_per_epoch, .stop = stop_requested(s, s->step + 1),
        };
        s->step++;
        s->batch_done = bi + 1;
        if (checked) {
            rc = report_step(s, epoch, &r, rec[0], 1, err);
        } else {
            s->win[s->win_n++] = r;
            if (s->win_n == s->check_every || r.last || r.stop
                || mltk_components_sync_due(s, r.step))
                rc = window_close(s, epoch, &rewound, err);
        }
        if (!rc && rewound) {
            bi = s->batch_done - 1;  /* the loop's bi++ makes it batch_done */
            continue;
        }
        if (!rc && r.stop && !r.last) {
            s->stop_signal = mltk_checkpointing_signal();
            return MLTK_ERR_INTERRUPTED;
        }
    }
    float sum = s->loss_sum_now;
    if (!rc && !s->sum_known)
        rc = mltk_be_download(&s->be, &sum, &s->scalars[MLTK_S_LOSS_SUM], sizeof sum);
    *loss = n_ep > s->rows_skipped ? (double)sum / (double)(n_ep - s->rows_skipped) : NAN;
    s->batch_done = 0;
    s->loss_sum_now = 0.0f;
    s->rows_skipped = 0;
    s->sum_known = 0;
    return rc;
}

/* ---- evaluation ------------------------------------------------------------------- */

static int evaluate(mltk_session_t *s, mltk_split *sp, double *loss, double *acc, char **err)
{
    const struct mltk_backend *be = &s->be;
    int classify = sp->info.target == MLTK_TARGET_CLASS;
    const mltk_shape *os = mltk_model_output_shape(s->model);
    mltk_tensor loss_sum = scalar(s, MLTK_S_LOSS_SUM), correct = scalar(s, MLTK_S_CORRECT);
    mltk_tensor correct_sum = scalar(s, MLTK_S_CORRECT_SUM);
    int rc = mltk_op_fill(be, &loss_sum, 0.0f);
    if (!rc)
        rc = mltk_op_fill(be, &correct_sum, 0.0f);
    if (rc)
        mltk_step_failed(s, rc, "evaluation", err);
    mltk_ops_metrics_reset(s);
    if (!rc)
        rc = mltk_data_epoch(s, sp, 0, 0, err);
    int64_t nb = mltk_data_batches(s, sp);
    double wait0 = s->data.wait_s;
    for (int64_t b = 0; rc == MLTK_OK && b < nb; b++) {
        int64_t rows = 0;
        void *x = NULL, *y = NULL;
        rc = mltk_data_batch(s, sp, b, &rows, &x, &y, err);
        if (!rc)
            rc = mltk_model_forward(s->model, x, rows, MLTK_EVAL, s->step, err);
        if (!rc)
            rc = batch_loss(s, sp, y, rows, 0, 1, err);
        if (!rc && classify) {
            /* logits (rows, C), labels (rows) -> correct */
            mltk_tensor logits = mltk_tensor_2d(mltk_model_output(s->model), MLTK_F32, rows,
                                                mltk_shape_numel(os));
            mltk_tensor labels = mltk_tensor_1d(y, MLTK_I32, rows);
            rc = mltk_op_count_correct(be, &correct, &logits, &labels);
            if (!rc)
                rc = mltk_op_axpby(be, &correct_sum, 1.0f, &correct, 1.0f);
            if (rc)
                mltk_step_failed(s, rc, "counting correct predictions", err);
        }
        if (!rc)
            rc = mltk_ops_metrics_add(s, mltk_model_output(s->model), y, rows, err);
    }
    s->data.wait_s = wait0;  /* the step's wait is what the log reports */
    float v[4] = { 0 };
    if (!rc)
        rc = mltk_be_download(be, v, s->scalars, sizeof v);
    *loss = (double)v[MLTK_S_LOSS_SUM] / (double)sp->n;
    *acc = classify ? (double)v[MLTK_S_CORRECT_SUM] / (double)sp->n : NAN;
    if (!rc && !isfinite(*loss))
        rc = mltk_errf(err, MLTK_ERR_NUMERIC, "evaluation loss is not finite after epoch %"
                       PRId64, s->epoch_done + 1);
    return rc;
}

/* ---- the loop ------------------------------------------------------------------------- */

/* With a validation split, the test split is evaluated once, after the
 * last epoch (the metrics [metrics] prints at the end are the test's). */
static int final_test(mltk_session_t *s, char **err)
{
    int rc = evaluate(s, &s->test, &s->test_loss, &s->test_acc, err);
    if (rc)
        return rc;
    s->tested = 1;
    FILE *out = s->opts.epoch_out ? s->opts.epoch_out : stdout;
    if (!s->opts.quiet) {
        if (s->test.info.target == MLTK_TARGET_CLASS)
            fprintf(out, "test  loss %.4f  acc %.4f  (%" PRId64 " samples)\n", s->test_loss,
                    s->test_acc, s->test.n);
        else
            fprintf(out, "test  loss %.4f  (%" PRId64 " samples)\n", s->test_loss, s->test.n);
        fflush(out);
    }
    return MLTK_OK;
}

/* The share of the epoch the step spent waiting for batches (logs and
 * TensorBoard report it), with a warning when it is large. */
static void note_data_wait(mltk_session_t *s, int epoch, double dt)
{
    mltk_data *d = &s->data;
    double w = d->wait_s - d->wait_mark;
    d->wait_frac = dt > 0 && w > 0 ? w / dt : 0.0;
    if (d->wait_frac > 1)
        d->wait_frac = 1;
    if (!s->train.resident && d->wait_frac >= 0.10)
        mltk_log(MLTK_LOG_WARN, "the step waited on data %.0f%% of epoch %d: raise [data] "
                 "workers (now %d)%s", 100.0 * d->wait_frac, epoch, d->workers,
                 d->workers == 0 ? "; with 0 the step prepares every batch itself" : "");
}

/* ---- where the run starts ------------------------------------------------------------ */

static void iso_now(char *buf, size_t cap)
{
    time_t now = time(NULL);
    struct tm tm;
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
}

/* "train.ini:12: [model] init_from" for messages: the key's line, else
 * its section's */
static char *where_key(const mltk_session_t *s, const mltk_section *sec, const char *key)
{
    int line = mltk_params_key_line(sec->params, key);
    return mltk_strfmt("%s:%d: [%s] %s", s->cfg->path, line ? line : sec->line, sec->name,
                       key);
}

/* A resume takes over the run's clock and first start from the
 * checkpoint and adds this start to the times it was resumed. */
static int take_over_times(mltk_session_t *s, char **err)
{
    char now[32];
    iso_now(now, sizeof now);
    s->t_start = mltk_now() - s->restored.elapsed_s;
    if (s->restored.started[0])
        memcpy(s->started, s->restored.started, sizeof s->started);
    char *r = s->restored.resumed ? mltk_strfmt("%s %s", s->restored.resumed, now)
                                  : mltk_strdup(now);
    if (!r)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    free(s->resumed);
    s->resumed = r;
    return MLTK_OK;
}

/* --resume: the checkpoint that [checkpoint] names.  With auto, a
 * damaged newest checkpoint (MLTK_ERR_DATA: unreadable, a checksum or a
 * metadata value wrong) gives way to the one before it, with a warning
 * naming it; the restore checks a file whole before it changes anything. */
static int resume(mltk_session_t *s, char **err)
{
    char *path = NULL, *e = NULL;
    int rc = mltk_checkpointing_resume_path(s, &path, &e);
    int tries = 0;
    while (!rc && path) {
        rc = mltk_ckpt_restore(s, path, &e);
        tries++;
        if (rc != MLTK_ERR_DATA || strcmp(s->opts.resume, "auto") != 0)
            break;
        char *prev = NULL;
        if (mltk_ckpt_before(mltk_checkpointing_dir(s), path, &prev, NULL) || !prev) {
            mltk_err_prefix(&e, "--resume auto: no good checkpoint in %s (%d tried); the "
                            "oldest", mltk_checkpointing_dir(s), tries);
            break;
        }
        mltk_log(MLTK_LOG_WARN, "--resume auto: skipping a damaged checkpoint: %s; resuming "
                 "from the one before it, %s", e ? e : path, prev);
        free(e);
        e = NULL;
        free(path);
        path = prev;
        rc = MLTK_OK;
    }
    if (!rc && path)
        rc = take_over_times(s, &e);
    free(path);
    if (rc && err && !*err) {
        *err = e;
        e = NULL;
    }
    free(e);
    return rc;
}

/* init_from, then --resume */
static int start_position(mltk_session_t *s, char **err)
{
    const mltk_section *model = mltk_config_section(s->cfg, "model");
    int rc = MLTK_OK;
    s->lr_factor = 1.0;
    if (model && mltk_params_has(model->params, "init_from")
        && *mltk_params_str(model->params, "init_from")) {
        rc = mltk_weights_load(s, mltk_params_str(model->params, "init_from"),
                               mltk_params_bool(model->params, "strict"), err);
        char *where = rc ? where_key(s, model, "init_from") : NULL;
        if (where)
            mltk_err_prefix(err, "%s", where);
        free(where);
    }
    if (!rc && s->opts.resume)
        rc = resume(s, err);
    return rc;
}

/* ---- the outputs, checked before the first step -------------------------------------- */

/* The directory of a file's path (malloc()ed): "." for a bare name. */
static char *parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return mltk_strdup(".");
    if (slash == path)
        return mltk_strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* dir exists (made here if need be) and a file can be made in it: one is
 * made and removed, under a temporary name that mltk_remove_stale_tmp
 * clears should this process die in between.  The temporary files that
 * writers of `bases` (mltk_remove_stale_tmp) left when killed are
 * removed.  An error is a config error naming `where` (file:line:
 * [section] key). */
static int check_dir(const char *dir, const char *const *bases, const char *where,
                     char **err)
{
    char *e = NULL;
    int rc = mltk_mkdir_p(dir, &e);
    if (!rc) {
        char *probe = mltk_strfmt("%s/.mltk-write-test.tmp.%ld", dir, (long)getpid());
        int fd = probe ? open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
        if (!probe)
            rc = mltk_errf(&e, MLTK_ERR_NOMEM, "out of memory");
        else if (fd < 0)
            rc = mltk_errf(&e, MLTK_ERR_IO, "cannot write in %s: %s", dir, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(probe);
        }
        free(probe);
    }
    if (rc)
        rc = mltk_errf(err, rc == MLTK_ERR_NOMEM ? rc : MLTK_ERR_CONFIG, "%s: %s", where,
                       e ? e : mltk_status_str(rc));
    else
        mltk_remove_stale_tmp(dir, bases);
    free(e);
    return rc;
}

/* An output file's path: its directory as check_dir does, and the path
 * itself not a directory. */
static int check_file(const char *path, const char *where, char **err)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return mltk_errf(err, MLTK_ERR_CONFIG, "%s: %s is a directory; name a file", where,
                         path);
    char *dir = parent_dir(path);
    const char *slash = strrchr(path, '/');
    const char *const bases[] = { slash ? slash + 1 : path, NULL };
    int rc = dir ? check_dir(dir, bases, where, err)
                 : mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    free(dir);
    return rc;
}

/* One output of the config: key `key` of section `name` when the user
 * set it, else (def) its default inside the run directory, which is then
 * blamed.  A file's path, or with `bases` a directory whose files are
 * those (mltk_remove_stale_tmp). */
static int check_output(mltk_session_t *s, const char *name, const char *key, const char *def,
                        const char *const *bases, char **err)
{
    const mltk_section *sec = mltk_config_section(s->cfg, name);
    const mltk_section *run = mltk_config_section(s->cfg, "run");
    int set = sec && mltk_params_has(sec->params, key) && *mltk_params_str(sec->params, key);
    if (!set && !(def && s->run_dir && run))
        return MLTK_OK;
    char *path = set ? mltk_strdup(mltk_params_str(sec->params, key))
                     : mltk_strfmt("%s/%s", s->run_dir, def);
    char *where = set ? where_key(s, sec, key) : where_key(s, run, "dir");
    int rc = !path || !where ? mltk_errf(err, MLTK_ERR_NOMEM, "out of memory")
             : !bases ? check_file(path, where, err) : check_dir(path, bases, where, err);
    free(path);
    free(where);
    return rc;
}

/* Every path the run will write, before the first step: a directory
 * that cannot be made or written, or a file name that is a directory, is
 * a config error now rather than a failure after training. */
static int check_outputs(mltk_session_t *s, char **err)
{
    static const char *const run_files[] = { "run.json", "config.ini", "confusion.csv", NULL };
    static const char *const ckpt_files[] = { "ckpt-*", "best.safetensors", NULL };
    static const char *const no_files[] = { NULL };
    int rc = check_output(s, "run", "dir", NULL, run_files, err);
    if (!rc && mltk_config_section(s->cfg, "checkpoint"))
        rc = check_output(s, "checkpoint", "dir", "checkpoints", ckpt_files, err);
    rc = rc ? rc : check_output(s, "model", "save", NULL, NULL, err);
    if (!rc && s->test.info.target == MLTK_TARGET_CLASS)
        rc = check_output(s, "metrics", "confusion_csv", NULL, NULL, err);
    rc = rc ? rc : check_output(s, "log", "jsonl", NULL, NULL, err);
    rc = rc ? rc : check_output(s, "log", "csv", NULL, NULL, err);
    rc = rc ? rc : check_output(s, "log", "tensorboard", NULL, no_files, err);
    return rc;
}

/* One epoch's statistics after its training and evaluation; `samples`
 * trained in `dt` seconds. */
static int end_of_epoch(mltk_session_t *s, int epoch, double dt, int64_t samples,
                        mltk_epoch_stats *e, int *stop, char **err)
{
    mltk_sched_observe(&s->sched, "train_loss", e->train_loss, epoch);
    mltk_sched_observe(&s->sched, "val_loss", e->val_loss, epoch);
    mltk_sched_observe(&s->sched, "val_acc", e->val_acc, epoch);
    e->epoch = epoch;
    e->samples_per_s = dt > 0 ? (double)samples / dt : 0.0;
    e->lr = s->last_lr;
    e->wall_s = mltk_now() - s->t_start;
    s->epoch_done = epoch;
    s->last_stats = *e;
    mltk_epoch_end ee = { .e = e, .interrupt = stop_requested(s, s->step) };
    int rc = mltk_components_epoch_end(s, &ee, err);
    *stop = ee.stop;
    if (!rc && !ee.stop && ee.interrupt && epoch < s->epochs) {
        s->stop_signal = mltk_checkpointing_signal();
        rc = MLTK_ERR_INTERRUPTED;
    }
    return rc;
}

/* A write failed during or at the end of a run (a checkpoint, a log,
 * [model] save): the trained weights go to the first place that takes
 * them: `save` ([model] save, when it was not what failed), else the run
 * directory, the directory above it, the checkpoint directory, the
 * current directory or $TMPDIR; the message says where. */
static void rescue_weights(mltk_session_t *s, const char *save, char **err)
{
    char *above = s->run_dir ? parent_dir(s->run_dir) : NULL;
    const char *tmpdir = getenv("TMPDIR");
    const char *dirs[] = { s->run_dir, above, mltk_checkpointing_dir(s), ".",
                           tmpdir && *tmpdir ? tmpdir : "/tmp" };
    char *saved = NULL;
    if (save && mltk_weights_save(s, save, NULL) == MLTK_OK)
        saved = mltk_strdup(save);
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs && !saved; i++) {
        if (!dirs[i])
            continue;
        char *p = mltk_strfmt("%s/rescued-weights-%012" PRIu64 ".safetensors", dirs[i],
                              s->step);
        if (p && mltk_weights_save(s, p, NULL) == MLTK_OK)
            saved = p;
        else
            free(p);
    }
    char *m = saved && err && *err ? mltk_strfmt("%s; the trained weights (step %" PRIu64
                                                 ") are in %s", *err, s->step, saved)
                                   : NULL;
    if (m) {
        free(*err);
        *err = m;
    } else if (saved) {
        mltk_log(MLTK_LOG_WARN, "the trained weights (step %" PRIu64 ") are in %s", s->step,
                 saved);
    } else {
        mltk_log(MLTK_LOG_ERROR, "the trained weights could not be written anywhere");
    }
    free(saved);
    free(above);
}

/* The run's end, whatever it was: the final weights, the components'
 * train_end (record, logs), the alert.  Weights that a failed write would
 * lose are rescued (rescue_weights); the run still fails. */
static int finish(mltk_session_t *s, int rc, const char *status, char **err)
{
    const mltk_section *model = mltk_config_section(s->cfg, "model");
    int want_save = model && mltk_params_has(model->params, "save")
                    && *mltk_params_str(model->params, "save");
    const char *save = want_save ? mltk_params_str(model->params, "save") : NULL;
    /* a write that failed after training began: the weights are good */
    int rescue = rc == MLTK_ERR_IO && s->step > 0;
    if (!rc && want_save) {
        rc = mltk_weights_save(s, save, err);
        rescue = rc != MLTK_OK;
        save = NULL;
    }
    if (rescue && (want_save || mltk_checkpointing_dir(s)))
        rescue_weights(s, save, err);
    if (!rc)
        mltk_ops_metrics_print(s);
    if (rc == MLTK_ERR_INTERRUPTED)
        status = "interrupted";
    else if (rc)
        status = "failed";
    char *cerr = NULL;
    int crc = mltk_components_train_end(s, status, &cerr);
    if (!rc && crc) {
        rc = crc;
        if (err) {
            *err = cerr;
            cerr = NULL;
        }
    }
    free(cerr);
    if (rc == MLTK_OK)
        mltk_alert(s, "finished", "training finished");
    else if (rc != MLTK_ERR_INTERRUPTED && rc != MLTK_ERR_NUMERIC)
        mltk_alert(s, "crashed", err && *err ? *err : mltk_status_str(rc));
    return rc;
}

int mltk_session_train(mltk_session_t *s, mltk_epoch_stats *last, char **err)
{
    mltk_epoch_stats e = { 0 };
    int stop = 0;
    s->t_start = mltk_now();
    iso_now(s->started, sizeof s->started);
    /* the outputs first (a bad path fails now, not after training), then
     * the start (a resume takes over the run's times), then the files */
    int rc = check_outputs(s, err);
    if (!rc)
        rc = start_position(s, err);
    if (!rc)
        rc = mltk_components_train_begin(s, err);
    e = s->last_stats;  /* a resumed run reports its last epoch even with none to go */
    for (int epoch = (int)s->epoch_done + 1; epoch <= s->epochs && !rc && !stop; epoch++) {
        double te = mltk_now();
        int rolled_back = 0;
        int64_t samples = 0;
        s->epoch_now = epoch;
        rc = train_epoch(s, epoch, &e.train_loss, &samples, &rolled_back, err);
        if (!rc && rolled_back) {
            epoch = (int)s->epoch_done;  /* continue where the checkpoint was */
            continue;
        }
        if (!rc)
            rc = mltk_be_sync(&s->be);
        double dt = mltk_now() - te;
        note_data_wait(s, epoch, dt);
        if (!rc)
            rc = evaluate(s, mltk_data_eval_split(s), &e.val_loss, &e.val_acc, err);
        if (!rc)
            rc = end_of_epoch(s, epoch, dt, samples, &e, &stop, err);
    }
    if (!rc && s->val.n)
        rc = final_test(s, err);
    rc = finish(s, rc, stop ? "stopped_early" : "finished", err);
    if (last)
        *last = e;
    return rc;
}

/* ---- the data pipeline alone -------------------------------------------------------------- */

int mltk_session_databench(mltk_session_t *s, int epochs, void *out, char **err)
{
    FILE *f = out ? out : stdout;
    mltk_split *sp = &s->train;
    int64_t samples = 0, nb = mltk_data_batches(s, sp);
    double t0 = mltk_now();
    int rc = MLTK_OK;
    for (int e = 1; e <= epochs && !rc; e++) {
        rc = mltk_data_epoch(s, sp, e, 0, err);
        for (int64_t b = 0; b < nb && !rc; b++) {
            int64_t rows = 0;
            void *x = NULL, *y = NULL;
            rc = mltk_data_batch(s, sp, b, &rows, &x, &y, err);
            samples += rows;
        }
    }
    if (!rc)
        rc = mltk_be_sync(&s->be);
    double dt = mltk_now() - t0;
    if (!rc)
        fprintf(f, "databench: %" PRId64 " samples in %.3f s: %.0f samples/s (workers %d, "
                "prefetch %d, %s)\n", samples, dt, dt > 0 ? (double)samples / dt : 0.0,
                s->data.workers, s->data.prefetch, sp->resident ? "resident" : "stream");
    return rc;
}
