/* train.c - the training loop and evaluation.
 *
 * The loop reads like the design's pseudocode: per epoch, draw the order,
 * then per batch gather, forward, loss, backward, clip, optimizer step at
 * the scheduled rate; then evaluate on the test split, tell the schedule
 * the epoch's metrics and report.  Loss and accuracy are summed in
 * backend memory and read back once per epoch, and clipping by global
 * norm keeps its norm in backend memory too, so a step never waits for the
 * device.
 *
 * Schedules follow PyTorch's epoch-based schedulers: the plugin's rate is
 * constant within an epoch (the epoch counted from 0), and the core's
 * linear warm-up multiplies it per step.  The rate an epoch reports is the
 * one its last step used.
 *
 * Every step reads back its loss and squared gradient norm, so that a
 * non-finite value is caught at the step that made it ([train] on_nan:
 * stop naming the first layer that produced it, skip the update, or roll
 * back to the last checkpoint with a lower rate).  Checkpoints are taken
 * after epochs and every N steps ([checkpoint]), and when SIGINT, SIGTERM
 * or --max-steps ends the run between two steps; a resumed run starts at
 * the checkpoint's batch with its partial loss sum, so its numbers are
 * those of a run never stopped.  Early stopping watches a metric after
 * every epoch and can go back to the best epoch's weights.
 *
 * What this is not: the outputs (logs, TensorBoard, progress, run record:
 * ops.c), the checkpoint files (checkpoint.c), or the building of the
 * schedule (session.c).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session.h"

enum { S_LOSS = 0, S_LOSS_SUM = 1, S_CORRECT = 2, S_CORRECT_SUM = 3, S_GRAD_SQ = 4 };

static mltk_tensor batch_tensor(void *data, const mltk_shape *per_sample, int64_t rows,
                                mltk_dtype dt)
{
    mltk_tensor t = { data, { per_sample->ndim + 1, { rows } }, dt };
    for (int i = 0; i < per_sample->ndim && i + 1 < MLTK_MAX_DIMS; i++)
        t.shape.dim[i + 1] = per_sample->dim[i];
    return t;
}

static mltk_dtype target_dtype(const mltk_split *sp)
{
    return sp->info.target == MLTK_TARGET_CLASS ? MLTK_I32 : MLTK_F32;
}

/* loss of the batch in s->scalars[S_LOSS], added to S_LOSS_SUM when `sum`;
 * dpred NULL in evaluation */
static int batch_loss(mltk_session_t *s, const mltk_split *sp, void *y, int64_t rows,
                      int want_grad, int sum, char **err)
{
    mltk_tensor pred = batch_tensor(mltk_model_output(s->model), mltk_model_output_shape(s->model),
                                    rows, MLTK_F32);
    mltk_tensor target = batch_tensor(y, &sp->info.y_shape, rows, target_dtype(sp));
    mltk_tensor dpred = pred;
    dpred.data = want_grad ? mltk_model_output_grad(s->model) : NULL;
    int rc = s->loss->forward(s->loss_self, &s->be, &pred, &target, &s->scalars[S_LOSS], &dpred);
    if (rc)
        return mltk_errf(err, rc, "loss: %s%s", mltk_status_str(rc),
                         rc == MLTK_ERR_DATA ? " (a target is out of range)" : "");
    if (!sum)
        return MLTK_OK;
    /* loss_sum += rows * loss */
    return s->be.i->axpby(s->be.ctx, &s->scalars[S_LOSS_SUM], (float)rows,
                          &s->scalars[S_LOSS], 1.0f, 1);
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

/* ---- clipping and the optimizer step --------------------------------------------- */

/* By value, then by global norm, as torch.nn.utils.clip_grad_value_ and
 * clip_grad_norm_ (eps 1e-6).  Frozen layers have no gradient in PyTorch:
 * theirs are zeroed first so that they do not count in the norm. */
static int clip_grads(mltk_session_t *s, float *grads, int64_t n)
{
    const struct mltk_backend_i *b = s->be.i;
    void *ctx = s->be.ctx;
    int rc = MLTK_OK;
    if (s->clip_value > 0.0)
        rc = b->clamp(ctx, grads, n, -(float)s->clip_value, (float)s->clip_value);
    if (rc || !(s->clip_norm > 0.0))
        return rc;
    for (int i = 0; s->any_frozen && i < s->n_seg && !rc; i++)
        if (mltk_model_segment_frozen(s->model, i))
            rc = b->fill(ctx, grads + s->seg_off[i], 0.0f, s->seg_off[i + 1] - s->seg_off[i]);
    if (!rc)
        rc = b->sumsq(ctx, &s->scalars[S_GRAD_SQ], grads, n);
    if (!rc)
        rc = b->scale_to_norm(ctx, grads, n, &s->scalars[S_GRAD_SQ], (float)s->clip_norm);
    return rc;
}

static int optimizer_step(mltk_session_t *s, float *params, const float *grads, int64_t n,
                          double lr)
{
    int64_t t = (int64_t)s->step + 1;
    if (!s->opt_step2)
        return s->opt->step(s->opt_self, &s->be, params, grads, s->opt_state, n, (float)lr, t);
    struct mltk_opt_step st = {
        .size = sizeof(st), .p = params, .g = grads, .state = s->opt_state, .n = n,
        .lr = (float)lr, .t = t, .lr_scale = s->lr_scale, .n_seg = s->n_seg,
        .seg_off = s->seg_off, .scratch = s->opt_scratch,
    };
    return s->opt->step2(s->opt_self, &s->be, &st);
}

/* The batch's inputs, augmented when [data] asks: step s draws its
 * transforms at counters from 4 * batch_size * s on, so a run (and a
 * resumed run) sees the same images whatever the backend. */
static int gather_inputs(mltk_session_t *s, const mltk_split *sp, int64_t off, int64_t rows)
{
    const struct mltk_backend_i *b = s->be.i;
    if (!s->aug_shift && !s->aug_flip)
        return b->gather_rows(s->be.ctx, s->xb, sp->x, sp->perm + off, rows,
                              (size_t)sp->x_numel * sizeof(float));
    const mltk_shape *x = &sp->info.x_shape;
    return b->gather_augment_2d(s->be.ctx, s->xb, sp->x, sp->perm + off, rows, x->dim[0],
                                x->dim[1], x->dim[2], s->aug_shift, s->aug_flip,
                                s->seed ^ 0x6A09E667F3BCC909ull,
                                4 * (uint64_t)s->batch_size * s->step);
}

/* ---- signals ---------------------------------------------------------------------- */

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

typedef struct saved_signals {
    int              on;
    struct sigaction intr, term;
} saved_signals;

/* With checkpoints and on_signal, SIGINT and SIGTERM end the run at the
 * next step boundary with a checkpoint instead of killing it. */
static void catch_signals(mltk_session_t *s, saved_signals *sv)
{
    struct sigaction sa;
    memset(sv, 0, sizeof(*sv));
    got_signal = 0;
    if (!s->ck.dir || !s->ck.on_signal)
        return;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &sv->intr);
    sigaction(SIGTERM, &sa, &sv->term);
    sv->on = 1;
}

static void restore_signals(const saved_signals *sv)
{
    if (!sv->on)
        return;
    sigaction(SIGINT, &sv->intr, NULL);
    sigaction(SIGTERM, &sv->term, NULL);
}

int mltk_session_signal(const mltk_session_t *s)
{
    return s ? s->stop_signal : 0;
}

/* ---- checkpoints -------------------------------------------------------------------- */

/* Checkpoints named with a later step than `path` (just written) were
 * written before this run went back to an earlier step: a new run in the
 * same directory, or a resume from an older checkpoint.  They are older
 * than `path`, but the rotation and --resume auto go by the step in the
 * names, so they are removed first. */
static int drop_later_checkpoints(mltk_session_t *s, const char *path, char **err)
{
    for (;;) {
        char *latest = NULL;
        int rc = mltk_ckpt_latest(s->ck.dir, &latest, err);
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
static int save_checkpoint(mltk_session_t *s, char **err)
{
    char *path = mltk_ckpt_path(s->ck.dir, s->step);
    if (!path)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    int rc = mltk_ckpt_save(s, path, err);
    if (!rc)
        rc = drop_later_checkpoints(s, path, err);
    if (!rc) {
        free(s->ck.last);
        s->ck.last = path;
        s->ck.last_step = (int64_t)s->step;
        mltk_log(MLTK_LOG_DEBUG, "checkpoint %s", path);
        rc = mltk_ckpt_rotate(s->ck.dir, s->ck.keep_last, err);
        char msg[64];
        snprintf(msg, sizeof msg, "checkpoint at step %" PRIu64, s->step);
        mltk_ops_alert(s, "checkpoint", msg);
    } else {
        free(path);
    }
    return rc;
}

/* The epoch's loss sum so far, for a checkpoint in the middle of it. */
static int read_loss_sum(mltk_session_t *s)
{
    return s->be.i->download(s->be.ctx, &s->loss_sum_now, &s->scalars[S_LOSS_SUM],
                             sizeof(float));
}

static double metric_of(const mltk_epoch_stats *e, const char *name)
{
    if (strcmp(name, "val_acc") == 0)
        return e->val_acc;
    if (strcmp(name, "train_loss") == 0)
        return e->train_loss;
    return e->val_loss;
}

static int better(double v, double best, int maximize, double delta)
{
    if (!isfinite(v))
        return 0;
    return maximize ? v > best + delta : v < best - delta;
}

/* ---- non-finite steps ------------------------------------------------------------------- */

enum { STEP_OK = 0, STEP_SKIPPED = 1, STEP_ROLLED_BACK = 2 };

/* The loss or the gradient of this step is not finite: stop naming the
 * first layer that produced it, skip the update, or roll back to the last
 * checkpoint with a lower rate, as [train] on_nan says. */
static int nonfinite_step(mltk_session_t *s, int epoch, int64_t batch, int64_t rows,
                          float loss, int *outcome, char **err)
{
    char where[256] = "", msg[512];
    if (!mltk_model_find_nonfinite(s->model, rows, 1, where, sizeof where))
        snprintf(where, sizeof where, isfinite(loss) ? "the gradients (no single tensor)"
                                                     : "the loss itself");
    snprintf(msg, sizeof msg, "non-finite %s at step %" PRIu64 " (epoch %d, batch %" PRId64
             "): first in %s", isfinite(loss) ? "gradient" : "loss", s->step, epoch,
             batch + 1, where);
    mltk_ops_alert(s, "nan", msg);
    if (s->on_nan == 0)
        return mltk_errf(err, MLTK_ERR_NUMERIC, "%s; try a lower learning rate, gradient "
                         "clipping, or [train] on_nan = skip_step", msg);
    if (++s->nan_skips > s->max_skips)
        return mltk_errf(err, MLTK_ERR_NUMERIC, "%s; giving up after %" PRId64 " non-finite "
                         "steps ([train] max_skips)", msg, s->max_skips);
    if (s->on_nan == 1) {
        mltk_log(MLTK_LOG_WARN, "%s; update skipped", msg);
        *outcome = STEP_SKIPPED;
        return MLTK_OK;
    }
    /* the last checkpoint of this run (or the one it resumed from); the
     * directory's newest may be an earlier run's */
    if (!s->ck.last)
        return mltk_errf(err, MLTK_ERR_NUMERIC, "%s; no checkpoint to roll back to yet", msg);
    int64_t skips = s->nan_skips;
    double factor = s->lr_factor * s->nan_lr_factor;
    int rc = mltk_ckpt_restore(s, s->ck.last, err);
    if (rc)
        return rc;
    s->nan_skips = skips;
    s->lr_factor = factor;
    mltk_log(MLTK_LOG_WARN, "%s; rolled back to %s (step %" PRIu64 "), rate factor now %g",
             msg, s->ck.last, s->step, factor);
    *outcome = STEP_ROLLED_BACK;
    return MLTK_OK;
}

/* ---- one epoch of training ------------------------------------------------------ */

/* Batches from s->batch_done on (0, or where a checkpoint stopped).  Sets
 * *rolled_back when a rollback moved the position: the caller restarts. */
static int train_epoch(mltk_session_t *s, int epoch, double *loss, int *rolled_back,
                       char **err)
{
    const struct mltk_backend_i *b = s->be.i;
    void *ctx = s->be.ctx;
    mltk_split *sp = &s->train;
    int64_t pn;
    float *params = mltk_model_params(s->model, &pn);
    float *grads = mltk_model_grads(s->model, &pn);
    double t0 = mltk_now();
    int64_t first = s->batch_done;
    float host[2];

    *rolled_back = 0;
    int rc = mltk_split_shuffle(sp, &s->be, s->seed, epoch, s->shuffle);
    if (!rc)
        rc = b->upload(ctx, &s->scalars[S_LOSS_SUM], &s->loss_sum_now, sizeof(float));
    for (int64_t bi = first; rc == MLTK_OK && bi < s->steps_per_epoch; bi++) {
        int64_t off = bi * s->batch_size;
        int64_t rows = sp->n - off < s->batch_size ? sp->n - off : s->batch_size;
        int outcome = STEP_OK;
        rc = gather_inputs(s, sp, off, rows);
        if (!rc)
            rc = b->gather_rows(ctx, s->yb, sp->y, sp->perm + off, rows, sp->y_bytes);
        if (!rc)
            rc = mltk_model_forward(s->model, s->xb, rows, MLTK_TRAIN, s->step, err);
        if (!rc)
            rc = batch_loss(s, sp, s->yb, rows, 1, 0, err);
        if (!rc)
            rc = mltk_model_backward(s->model, rows, s->step, err);
        /* the step's loss and squared gradient norm, read back to catch a
         * non-finite value at once */
        if (!rc)
            rc = b->sumsq(ctx, &s->scalars[S_GRAD_SQ], grads, pn);
        if (!rc)
            rc = b->download(ctx, &host[0], &s->scalars[S_LOSS], sizeof(float));
        if (!rc)
            rc = b->download(ctx, &host[1], &s->scalars[S_GRAD_SQ], sizeof(float));
        if (!rc && !(isfinite(host[0]) && isfinite(host[1])))
            rc = nonfinite_step(s, epoch, bi, rows, host[0], &outcome, err);
        if (!rc && outcome == STEP_ROLLED_BACK) {
            *rolled_back = 1;
            return MLTK_OK;
        }
        if (!rc && outcome == STEP_OK)
            rc = b->axpby(ctx, &s->scalars[S_LOSS_SUM], (float)rows, &s->scalars[S_LOSS], 1.0f,
                          1);
        if (outcome == STEP_SKIPPED)
            s->rows_skipped += rows;  /* the epoch's loss is over the steps kept */
        if (!rc && outcome == STEP_OK) {
            rc = clip_grads(s, grads, pn);
            if (rc)
                mltk_errf(err, rc, "gradient clipping failed: %s", mltk_status_str(rc));
        }
        double lr = mltk_sched_lr(&s->sched, (int64_t)s->step, epoch - 1) * s->lr_factor;
        if (!rc && outcome == STEP_OK) {
            rc = optimizer_step(s, params, grads, pn, lr);
            if (rc)
                mltk_errf(err, rc, "optimizer step failed: %s", mltk_status_str(rc));
            s->last_lr = lr;
        }
        if (rc)
            break;
        if (mltk_ops_histograms_due(s))
            rc = mltk_ops_step_histograms(s, err);
        s->step++;
        s->batch_done = bi + 1;
        double el = mltk_now() - t0;
        int64_t done = off + rows;
        if (!rc)
            rc = mltk_ops_step(s, host[0], lr,
                               el > 0 ? (double)(done - first * s->batch_size) / el : 0, err);
        mltk_ops_progress(s, epoch, done, sp->n, t0 - (double)first * s->batch_size
                          * (el / (double)(done - first * s->batch_size)), host[0],
                          bi + 1 == s->steps_per_epoch);
        int stop = got_signal || (s->opts.max_steps > 0
                                  && s->step >= (uint64_t)s->opts.max_steps);
        int due = s->ck.dir && s->ck.every_steps > 0
                  && s->step % (uint64_t)s->ck.every_steps == 0;
        if (!rc && (stop || due) && bi + 1 < s->steps_per_epoch) {
            /* mid-epoch: the partial loss sum goes into the checkpoint */
            rc = read_loss_sum(s);
            if (!rc && s->ck.dir)
                rc = save_checkpoint(s, err);
        }
        if (!rc && stop && bi + 1 < s->steps_per_epoch) {
            mltk_ops_progress(s, epoch, done, sp->n, t0, host[0], 1);
            s->stop_signal = got_signal;
            return MLTK_ERR_INTERRUPTED;
        }
    }
    float sum = 0.0f;
    if (!rc)
        rc = b->download(ctx, &sum, &s->scalars[S_LOSS_SUM], sizeof sum);
    *loss = sp->n > s->rows_skipped ? (double)sum / (double)(sp->n - s->rows_skipped) : NAN;
    s->batch_done = 0;
    s->loss_sum_now = 0.0f;
    s->rows_skipped = 0;
    return rc;
}

/* ---- evaluation ------------------------------------------------------------------- */

static int evaluate(mltk_session_t *s, mltk_split *sp, double *loss, double *acc, char **err)
{
    const struct mltk_backend_i *b = s->be.i;
    void *ctx = s->be.ctx;
    int classify = sp->info.target == MLTK_TARGET_CLASS;
    const mltk_shape *os = mltk_model_output_shape(s->model);
    int rc = b->fill(ctx, &s->scalars[S_LOSS_SUM], 0.0f, 1);
    if (!rc)
        rc = b->fill(ctx, &s->scalars[S_CORRECT_SUM], 0.0f, 1);
    mltk_ops_metrics_reset(s);
    for (int64_t off = 0; rc == MLTK_OK && off < sp->n; off += s->batch_size) {
        int64_t rows = sp->n - off < s->batch_size ? sp->n - off : s->batch_size;
        float *x = (float *)sp->x + off * sp->x_numel;
        void *y = (char *)sp->y + (size_t)off * sp->y_bytes;
        rc = mltk_model_forward(s->model, x, rows, MLTK_EVAL, s->step, err);
        if (!rc)
            rc = batch_loss(s, sp, y, rows, 0, 1, err);
        if (!rc && classify) {
            rc = b->count_correct(ctx, &s->scalars[S_CORRECT], mltk_model_output(s->model), y,
                                  rows, mltk_shape_numel(os));
            if (!rc)
                rc = b->axpby(ctx, &s->scalars[S_CORRECT_SUM], 1.0f, &s->scalars[S_CORRECT],
                              1.0f, 1);
        }
        if (!rc)
            rc = mltk_ops_metrics_add(s, mltk_model_output(s->model), y, rows, err);
    }
    float v[4] = { 0 };
    if (!rc)
        rc = b->download(ctx, v, s->scalars, sizeof v);
    *loss = (double)v[S_LOSS_SUM] / (double)sp->n;
    *acc = classify ? (double)v[S_CORRECT_SUM] / (double)sp->n : NAN;
    if (!rc && !isfinite(*loss))
        rc = mltk_errf(err, MLTK_ERR_NUMERIC, "evaluation loss is not finite after epoch %"
                       PRId64, s->epoch_done + 1);
    return rc;
}

/* ---- after an epoch: checkpoints and early stopping -------------------------------------- */

static int epoch_checkpoint(mltk_session_t *s, const mltk_epoch_stats *e, char **err)
{
    if (!s->ck.dir)
        return MLTK_OK;
    double v = metric_of(e, s->ck.monitor);
    int best = s->ck.keep_best && better(v, s->ck.best, s->ck.maximize, 0.0);
    if (best)
        s->ck.best = v;
    int due = s->ck.every_epochs > 0 && e->epoch % s->ck.every_epochs == 0;
    if (!due && !best && e->epoch != s->epochs)
        return MLTK_OK;
    int rc = save_checkpoint(s, err);
    if (!rc && best)
        rc = mltk_ckpt_mark_best(s->ck.dir, s->ck.last, err);
    return rc;
}

/* 1 when training should stop here */
static int early_stop(mltk_session_t *s, const mltk_epoch_stats *e, char **err)
{
    if (!s->es.on)
        return 0;
    double v = metric_of(e, s->es.monitor);
    if (better(v, s->es.best, s->es.maximize, s->es.min_delta)) {
        s->es.best = v;
        s->es.bad = 0;
        s->es.best_epoch = e->epoch;
        if (s->es.restore_best) {
            int64_t n = 0;
            int nt = mltk_model_n_tensors(s->model);
            for (int i = 0; i < nt; i++) {
                mltk_model_named t;
                if (!mltk_model_tensor(s->model, i, &t))
                    n += mltk_shape_numel(&t.shape);
            }
            if (!s->es.best_host && !(s->es.best_host = malloc((size_t)n * sizeof(float))))
                return mltk_errf(err, MLTK_ERR_NOMEM, "early stopping: cannot keep the best "
                                 "weights"), -1;
            s->es.best_host_n = 0;
            for (int i = 0; i < nt; i++) {
                mltk_model_named t;
                if (mltk_model_tensor(s->model, i, &t))
                    continue;
                int64_t k = mltk_shape_numel(&t.shape);
                if (s->be.i->download(s->be.ctx, s->es.best_host + s->es.best_host_n, t.data,
                                      (size_t)k * sizeof(float)))
                    return mltk_errf(err, MLTK_ERR_BACKEND, "early stopping: cannot read "
                                     "%s", t.name), -1;
                s->es.best_host_n += k;
            }
        }
        return 0;
    }
    if (++s->es.bad < s->es.patience)
        return 0;
    char msg[256];
    snprintf(msg, sizeof msg, "early stopping after epoch %d: %s has not improved for %"
             PRId64 " epoch(s); best %.6g at epoch %" PRId64, e->epoch, s->es.monitor,
             s->es.bad, s->es.best, s->es.best_epoch);
    if (s->es.restore_best && s->es.best_host) {
        int64_t at = 0;
        int nt = mltk_model_n_tensors(s->model);
        for (int i = 0; i < nt; i++) {
            mltk_model_named t;
            if (mltk_model_tensor(s->model, i, &t))
                continue;
            int64_t k = mltk_shape_numel(&t.shape);
            if (s->be.i->upload(s->be.ctx, t.data, s->es.best_host + at,
                                (size_t)k * sizeof(float)))
                return mltk_errf(err, MLTK_ERR_BACKEND, "early stopping: cannot restore %s",
                                 t.name), -1;
            at += k;
        }
        mltk_log(MLTK_LOG_INFO, "%s; restored the weights of epoch %" PRId64, msg,
                 s->es.best_epoch);
    } else {
        mltk_log(MLTK_LOG_INFO, "%s%s", msg, s->es.restore_best
                 ? " (its weights were not kept in this process: keeping the last)" : "");
    }
    mltk_ops_alert(s, "early_stop", msg);
    return 1;
}

/* ---- the loop ------------------------------------------------------------------------- */

static int start_position(mltk_session_t *s, char **err)
{
    const mltk_section *model = mltk_config_section(s->cfg, "model");
    int rc = MLTK_OK;
    s->lr_factor = 1.0;
    if (model && mltk_params_has(model->params, "init_from")
        && *mltk_params_str(model->params, "init_from"))
        rc = mltk_weights_load(s, mltk_params_str(model->params, "init_from"),
                               mltk_params_bool(model->params, "strict"), err);
    char *path = NULL;
    if (!rc && !s->opts.resume && s->ck.dir) {
        /* a new run never writes over another run's checkpoints */
        rc = mltk_ckpt_latest(s->ck.dir, &path, err);
        if (!rc && path)
            rc = mltk_errf(err, MLTK_ERR_CONFIG, "%s: the checkpoint directory %s already "
                           "holds checkpoints (newest %s): continue that run with --resume "
                           "auto, or give this one another [checkpoint] dir or [run] dir",
                           s->cfg->path, s->ck.dir, path);
        free(path);
        path = NULL;
    }
    if (rc || !s->opts.resume)
        return rc;
    if (strcmp(s->opts.resume, "auto") == 0) {
        if (!s->ck.dir)
            return mltk_errf(err, MLTK_ERR_CONFIG, "%s: --resume auto needs a [checkpoint] "
                             "section naming where the checkpoints are", s->cfg->path);
        rc = mltk_ckpt_latest(s->ck.dir, &path, err);
        if (!rc && !path) {
            mltk_log(MLTK_LOG_INFO, "no checkpoint in %s yet: starting from the beginning",
                     s->ck.dir);
            return MLTK_OK;
        }
    } else if (!(path = mltk_strdup(s->opts.resume))) {
        rc = MLTK_ERR_NOMEM;
    }
    if (!rc)
        rc = mltk_ckpt_restore(s, path, err);
    if (!rc) {
        free(s->ck.last);
        s->ck.last = path;
        path = NULL;
    }
    free(path);
    return rc;
}

int mltk_session_train(mltk_session_t *s, mltk_epoch_stats *last, char **err)
{
    mltk_epoch_stats e = { 0 };
    saved_signals sv;
    const char *status = "failed";
    s->t_start = mltk_now();
    int rc = mltk_ops_open(s, err);
    if (!rc)
        rc = start_position(s, err);
    e = s->last_stats;  /* a resumed run reports its last epoch even with none to go */
    catch_signals(s, &sv);
    for (int epoch = (int)s->epoch_done + 1; epoch <= s->epochs && rc == MLTK_OK; epoch++) {
        double te = mltk_now();
        int rolled_back = 0;
        rc = train_epoch(s, epoch, &e.train_loss, &rolled_back, err);
        if (!rc && rolled_back) {
            epoch = (int)s->epoch_done;  /* continue where the checkpoint was */
            continue;
        }
        if (!rc)
            rc = s->be.i->sync(s->be.ctx);
        double dt = mltk_now() - te;
        if (!rc)
            rc = evaluate(s, &s->test, &e.val_loss, &e.val_acc, err);
        if (rc)
            break;
        mltk_sched_observe(&s->sched, "train_loss", e.train_loss, epoch);
        mltk_sched_observe(&s->sched, "val_loss", e.val_loss, epoch);
        mltk_sched_observe(&s->sched, "val_acc", e.val_acc, epoch);
        e.epoch = epoch;
        e.samples_per_s = dt > 0 ? (double)s->train.n / dt : 0.0;
        e.lr = s->last_lr;
        e.wall_s = mltk_now() - s->t_start;
        s->epoch_done = epoch;
        s->last_stats = e;
        rc = mltk_ops_epoch(s, &e, err);
        int stop = rc ? 0 : early_stop(s, &e, err);
        if (stop < 0)
            rc = MLTK_ERR_BACKEND;
        if (!rc)
            rc = epoch_checkpoint(s, &e, err);
        if (!rc && stop) {
            status = "stopped_early";
            break;
        }
        if (!rc && (got_signal || (s->opts.max_steps > 0
                                   && s->step >= (uint64_t)s->opts.max_steps))
            && epoch < s->epochs) {
            if (s->ck.dir && s->ck.last_step != (int64_t)s->step)
                rc = save_checkpoint(s, err);
            s->stop_signal = got_signal;
            if (!rc)
                rc = MLTK_ERR_INTERRUPTED;
        }
    }
    restore_signals(&sv);
    const mltk_section *model = mltk_config_section(s->cfg, "model");
    if (!rc && model && mltk_params_has(model->params, "save")
        && *mltk_params_str(model->params, "save"))
        rc = mltk_weights_save(s, mltk_params_str(model->params, "save"), err);
    if (!rc) {
        if (strcmp(status, "failed") == 0)
            status = "finished";
        mltk_ops_metrics_print(s);
    } else if (rc == MLTK_ERR_INTERRUPTED) {
        status = "interrupted";
        if (s->ck.last)
            mltk_log(MLTK_LOG_INFO, "stopped at step %" PRIu64 "; continue with --resume %s",
                     s->step, s->ck.last);
    }
    char *cerr = NULL;
    int crc = mltk_ops_close(s, status, &cerr);
    if (!rc && crc) {
        rc = crc;
        *err = cerr;
        cerr = NULL;
    }
    free(cerr);
    if (rc == MLTK_OK)
        mltk_ops_alert(s, "finished", "training finished");
    else if (rc != MLTK_ERR_INTERRUPTED && rc != MLTK_ERR_NUMERIC)
        mltk_ops_alert(s, "crashed", err && *err ? *err : mltk_status_str(rc));
    if (last)
        *last = e;
    return rc;
}
