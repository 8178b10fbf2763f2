/* train.c - the training loop and evaluation.
 *
 * The loop reads like the design's pseudocode: per epoch, draw the order,
 * then per batch gather, forward, loss, backward, clip, optimizer step at
 * the scheduled rate; then evaluate on the test split, tell the schedule
 * the epoch's metrics and report.  Loss and accuracy are summed in
 * backend memory, and clipping by global norm keeps its norm in backend
 * memory too.
 *
 * Schedules follow PyTorch's epoch-based schedulers: the plugin's rate is
 * constant within an epoch (the epoch counted from 0), and the core's
 * linear warm-up multiplies it per step.  The rate an epoch reports is the
 * one its last step used.
 *
 * A step never waits for the device: its loss, the sum of its squared
 * gradients and a non-finite flag (of the loss and of every gradient)
 * stay in a record in backend memory, and the records of a window of
 * steps are read back in one download every [train] check_every steps,
 * at the end of an epoch and before a checkpoint, histograms or a stop.
 * The state at each window's start is kept as a device copy; when a
 * window holds a non-finite step, the run goes back to that copy and
 * runs the window's steps again one at a time, reading each back before
 * its update, so that the bad step is met as if caught at once ([train]
 * on_nan: stop naming the first layer that produced it, skip the update,
 * or roll back to the last checkpoint with a lower rate).  With
 * check_every = 1 every step is read back before its update and no copy
 * is kept.  A layer's own host-side state (a plugin's private counters)
 * is not in the copy.
 *
 * Checkpoints are taken after epochs and every N steps ([checkpoint]),
 * and when SIGINT, SIGTERM or --max-steps ends the run between two steps;
 * a resumed run starts at the checkpoint's batch with its partial loss
 * sum, so its numbers are those of a run never stopped (a window changes
 * when numbers are read, never what they are).  Early stopping watches a metric after
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
#include "op.h"

enum { S_LOSS = 0, S_LOSS_SUM = 1, S_CORRECT = 2, S_CORRECT_SUM = 3, S_GRAD_SQ = 4 };

/* rows samples of per-sample shape at data: (rows, per_sample...) */
static mltk_tensor batch_tensor(void *data, const mltk_shape *per_sample, int64_t rows,
                                mltk_dtype dt)
{
    int64_t dims[MLTK_MAX_DIMS] = { rows };
    int nd = per_sample->ndim + 1 < MLTK_MAX_DIMS ? per_sample->ndim + 1 : MLTK_MAX_DIMS;
    for (int i = 1; i < nd; i++)
        dims[i] = per_sample->dim[i - 1];
    return mltk_tensor_make(data, dt, nd, dims);
}

/* scalar i of s->scalars, a 1-element f32 tensor */
static mltk_tensor scalar(mltk_session_t *s, int i)
{
    return mltk_tensor_1d(&s->scalars[i], MLTK_F32, 1);
}

/* rc with the backend's reason: "what: cuda: ..." (the backend's message
 * names the backend) */
static int op_failed(mltk_session_t *s, int rc, const char *what, char **err)
{
    const char *why = mltk_backend_error(&s->be);
    if (why && *why)
        return mltk_errf(err, rc, "%s: %s", what, why);
    return mltk_errf(err, rc, "%s: %s", what, mltk_status_str(rc));
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
    mltk_tensor loss = scalar(s, S_LOSS), loss_sum = scalar(s, S_LOSS_SUM);
    mltk_backend_clear_error(&s->be);
    int rc = s->loss->forward(s->loss_self, &s->be, &pred, &target, &loss, &dpred, 1.0f);
    if (rc)
        return op_failed(s, rc, "loss", err);
    if (!sum)
        return MLTK_OK;
    /* loss_sum += rows * loss */
    rc = mltk_op_axpby(&s->be, &loss_sum, (float)rows, &loss, 1.0f);
    return rc ? op_failed(s, rc, "summing the loss", err) : MLTK_OK;
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
    const struct mltk_backend *be = &s->be;
    mltk_tensor g = mltk_tensor_1d(grads, MLTK_F32, n), sq = scalar(s, S_GRAD_SQ);
    int rc = MLTK_OK;
    if (n == 0)
        return MLTK_OK;
    if (s->clip_value > 0.0)
        rc = mltk_op_clamp(be, &g, -(float)s->clip_value, (float)s->clip_value);
    if (rc || !(s->clip_norm > 0.0))
        return rc;
    for (int i = 0; s->any_frozen && i < s->n_seg && !rc; i++) {
        if (!mltk_model_segment_frozen(s->model, i))
            continue;
        mltk_tensor seg = mltk_tensor_1d(grads + s->seg_off[i], MLTK_F32,
                                         s->seg_off[i + 1] - s->seg_off[i]);
        rc = mltk_op_fill(be, &seg, 0.0f);
    }
    if (!rc)
        rc = mltk_op_sumsq(be, &sq, &g);
    if (!rc)
        rc = mltk_op_scale_to_norm(be, &g, &sq, (float)s->clip_norm);
    return rc;
}

/* One update of the flat buffers p (n) from g (n): the optimizer's state
 * slots, the per-element rates (NULL: all 1) and the scratch of 2 floats
 * per parameter tensor, as tensors. */
static int optimizer_step(mltk_session_t *s, float *params, float *grads, int64_t n,
                          double lr)
{
    mltk_tensor p = mltk_tensor_1d(params, MLTK_F32, n), g = mltk_tensor_1d(grads, MLTK_F32, n);
    mltk_tensor state[8], lr_scale, scratch;
    for (int k = 0; k < s->opt_slots && k < 8; k++)
        state[k] = mltk_tensor_1d(s->opt_state[k], MLTK_F32, n);
    if (s->lr_scale)
        lr_scale = mltk_tensor_1d(s->lr_scale, MLTK_F32, n);
    scratch = mltk_tensor_1d(s->opt_scratch, MLTK_F32, 2 * (int64_t)s->n_seg);
    struct mltk_opt_step st = {
        .size = sizeof(st), .p = &p, .g = &g, .state = state, .n = n, .lr = (float)lr,
        .t = (int64_t)s->step + 1, .lr_scale = s->lr_scale ? &lr_scale : NULL,
        .n_seg = s->n_seg, .seg_off = s->seg_off, .scratch = &scratch,
    };
    return s->opt->step(s->opt_self, &s->be, &st);
}

/* The batch's inputs, augmented when [data] asks: step s draws its
 * transforms at counters from 4 * batch_size * s on, so a run (and a
 * resumed run) sees the same images whatever the backend. */
static int gather_inputs(mltk_session_t *s, const mltk_split *sp, int64_t off, int64_t rows)
{
    const mltk_shape *x = &sp->info.x_shape;
    mltk_tensor dst = batch_tensor(s->xb, x, rows, MLTK_F32);
    mltk_tensor src = batch_tensor(sp->x, x, sp->n, MLTK_F32);
    mltk_tensor idx = mltk_tensor_1d(sp->perm + off, MLTK_I32, rows);
    if (!s->aug_shift && !s->aug_flip)
        return mltk_op_gather_rows(&s->be, &dst, &src, &idx);
    mltk_augment_params p = {
        .pad = s->aug_shift, .flip = s->aug_flip, .seed = s->seed ^ 0x6A09E667F3BCC909ull,
        .offset = 4 * (uint64_t)s->batch_size * s->step,
    };
    return mltk_op_gather_augment_2d(&s->be, &dst, &src, &idx, &p);
}

/* The batch's targets: rows of sp->y in the epoch's order into s->yb. */
static int gather_targets(mltk_session_t *s, const mltk_split *sp, int64_t off, int64_t rows)
{
    mltk_dtype dt = target_dtype(sp);
    mltk_tensor dst = batch_tensor(s->yb, &sp->info.y_shape, rows, dt);
    mltk_tensor src = batch_tensor(sp->y, &sp->info.y_shape, sp->n, dt);
    mltk_tensor idx = mltk_tensor_1d(sp->perm + off, MLTK_I32, rows);
    return mltk_op_gather_rows(&s->be, &dst, &src, &idx);
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
    return mltk_be_download(&s->be, &s->loss_sum_now, &s->scalars[S_LOSS_SUM], sizeof(float));
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
 * checkpoint with a lower rate, as [train] on_nan says.  `seen` is 0 when
 * the step was found non-finite in a window read back later and, run
 * again from the state before it, came out finite: the step is still
 * treated as the one that went wrong, but no tensor can be named. */
static int nonfinite_step(mltk_session_t *s, int epoch, int64_t batch, int64_t rows,
                          float loss, int seen, int *outcome, char **err)
{
    char found[256] = "", where[300], msg[600];
    if (!seen)
        snprintf(where, sizeof where, "not seen again when the step was run again");
    else if (mltk_model_find_nonfinite(s->model, rows, 1, found, sizeof found))
        snprintf(where, sizeof where, "first in %s", found);
    else
        snprintf(where, sizeof where, "first in %s", isfinite(loss)
                 ? "the gradients (no single tensor)" : "the loss itself");
    snprintf(msg, sizeof msg, "non-finite %s at step %" PRIu64 " (epoch %d, batch %" PRId64
             "): %s", isfinite(loss) ? "gradient" : "loss", s->step, epoch, batch + 1, where);
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

/* ---- the window: steps whose numbers are read back together ------------------------------ */

/* Step k of the window keeps its loss, the sum of its squared gradients
 * and its non-finite flag at scalars[MLTK_SCALARS_HEAD + 3 k ...]. */
static float *rec_dev(mltk_session_t *s, int64_t k)
{
    return s->scalars + MLTK_SCALARS_HEAD + 3 * k;
}

static int rec_finite(const float *r)
{
    return isfinite(r[0]) && isfinite(r[1]) && r[2] == 0.0f;
}

/* Copy the training state to or from s->snap (backend memory): the flat
 * parameters, each optimizer slot, each layer's persistent state and the
 * epoch's loss sum, in that order.  Device copies: no host sync. */
static int snapshot_copy(mltk_session_t *s, int restore)
{
    int64_t n, at = 0;
    float *params = mltk_model_params(s->model, &n);
    int rc = MLTK_OK;
#define SNAP(dev, count)                                                            \
    do {                                                                            \
        size_t bytes_ = (size_t)(count) * sizeof(float);                            \
        if (!rc && bytes_)                                                          \
            rc = restore ? mltk_be_copy(&s->be, (dev), s->snap + at, bytes_)        \
                         : mltk_be_copy(&s->be, s->snap + at, (dev), bytes_);       \
        at += (count);                                                              \
    } while (0)
    SNAP(params, n);
    for (int k = 0; k < s->opt_slots; k++)
        SNAP(s->opt_state[k], n);
    int nt = mltk_model_n_tensors(s->model);
    for (int i = 0; i < nt; i++) {
        mltk_model_named t;
        if (!mltk_model_tensor(s->model, i, &t) && t.state)
            SNAP(t.data, mltk_shape_numel(&t.shape));
    }
    SNAP(&s->scalars[S_LOSS_SUM], 1);
#undef SNAP
    return rc;
}

/* A window starts: keep the state it starts from. */
static int window_open(mltk_session_t *s, char **err)
{
    s->snap_at.step = s->step;
    s->snap_at.batch_done = s->batch_done;
    s->snap_at.rows_skipped = s->rows_skipped;
    s->snap_at.last_lr = s->last_lr;
    int rc = snapshot_copy(s, 0);
    return rc ? op_failed(s, rc, "keeping the state at the start of a window", err) : MLTK_OK;
}

/* Report a step to ops.c (TensorBoard scalars, loss spikes) as it would
 * have been reported right after it. */
static int report_step(mltk_session_t *s, const mltk_step_rec *r, double loss, char **err)
{
    uint64_t now = s->step;
    s->step = r->step + 1;
    int rc = mltk_ops_step(s, loss, r->lr, r->samples_per_s, err);
    s->step = now;
    return rc;
}

/* The window ends: one download of the epoch's loss sum and every
 * record.  All finite: the steps are reported.  Else the state goes back
 * to the window's start and *rewound is set: the loop runs the steps
 * again one at a time, checking each, up to the first bad one, which
 * then meets [train] on_nan as if it had been caught at once. */
static int window_close(mltk_session_t *s, int *rewound, char **err)
{
    *rewound = 0;
    if (s->win_n == 0)
        return MLTK_OK;
    size_t nf = (size_t)(MLTK_SCALARS_HEAD + 3 * s->win_n);
    int rc = mltk_be_download(&s->be, s->win_host, s->scalars, nf * sizeof(float));
    if (rc)
        return op_failed(s, rc, "reading back the steps' losses", err);
    int64_t n = s->win_n, bad = -1;
    s->win_n = 0;
    for (int64_t k = 0; k < n && bad < 0; k++)
        if (!rec_finite(s->win_host + MLTK_SCALARS_HEAD + 3 * k))
            bad = k;
    if (bad < 0) {
        for (int64_t k = 0; k < n && !rc; k++)
            rc = report_step(s, &s->win[k], s->win_host[MLTK_SCALARS_HEAD + 3 * k], err);
        s->last_loss = s->win_host[MLTK_SCALARS_HEAD + 3 * (n - 1)];
        s->loss_sum_now = s->win_host[S_LOSS_SUM];
        s->sum_known = 1;
        return rc;
    }
    rc = snapshot_copy(s, 1);
    if (rc)
        return op_failed(s, rc, "going back to the start of the window", err);
    s->step = s->snap_at.step;
    s->batch_done = s->snap_at.batch_done;
    s->rows_skipped = s->snap_at.rows_skipped;
    s->last_lr = s->snap_at.last_lr;
    s->replay_to = (int64_t)s->win[bad].step;
    s->replay_loss = s->win_host[MLTK_SCALARS_HEAD + 3 * bad];
    s->sum_known = 0;
    mltk_log(MLTK_LOG_DEBUG, "step %" PRIu64 " was not finite: running steps %" PRIu64
             "..%" PRIu64 " again one at a time", s->win[bad].step, s->step, s->win[bad].step);
    *rewound = 1;
    return MLTK_OK;
}

/* ---- one step ------------------------------------------------------------------------------- */

/* Gather, forward, loss, backward, then on the device: the sum of squared
 * gradients and the non-finite flag of the loss and the gradients, into
 * record `rec` (backend memory, 3 floats). */
static int step_compute(mltk_session_t *s, int64_t off, int64_t rows, float *rec, char **err)
{
    const struct mltk_backend *be = &s->be;
    mltk_split *sp = &s->train;
    int64_t pn;
    float *grads = mltk_model_grads(s->model, &pn);
    int rc = gather_inputs(s, sp, off, rows);
    if (!rc)
        rc = gather_targets(s, sp, off, rows);
    if (rc)
        return op_failed(s, rc, "gathering the batch", err);
    rc = mltk_model_forward(s->model, s->xb, rows, MLTK_TRAIN, s->step, err);
    if (rc)
        return rc;
    /* the loss goes straight into the record */
    mltk_tensor pred = batch_tensor(mltk_model_output(s->model),
                                    mltk_model_output_shape(s->model), rows, MLTK_F32);
    mltk_tensor target = batch_tensor(s->yb, &sp->info.y_shape, rows, target_dtype(sp));
    mltk_tensor dpred = pred;
    dpred.data = mltk_model_output_grad(s->model);
    mltk_tensor loss = mltk_tensor_1d(&rec[0], MLTK_F32, 1);
    mltk_backend_clear_error(be);
    rc = s->loss->forward(s->loss_self, be, &pred, &target, &loss, &dpred, 1.0f);
    if (rc)
        return op_failed(s, rc, "loss", err);
    rc = mltk_model_backward(s->model, rows, s->step, err);
    if (rc)
        return rc;
    mltk_tensor g = mltk_tensor_1d(grads, MLTK_F32, pn);
    mltk_tensor gsq = mltk_tensor_1d(&rec[1], MLTK_F32, 1);
    mltk_tensor flag = mltk_tensor_1d(&rec[2], MLTK_F32, 1);
    rc = pn ? mltk_op_sumsq(be, &gsq, &g) : mltk_op_fill(be, &gsq, 0.0f);
    if (!rc)
        rc = mltk_op_fill(be, &flag, 0.0f);
    if (!rc)
        rc = mltk_op_nonfinite(be, &flag, &loss);
    if (!rc && pn)
        rc = mltk_op_nonfinite(be, &flag, &g);
    return rc ? op_failed(s, rc, "checking the step's numbers", err) : MLTK_OK;
}

/* loss_sum += rows * loss, clip, update at rate lr. */
static int step_update(mltk_session_t *s, int64_t rows, float *rec, double lr, char **err)
{
    const struct mltk_backend *be = &s->be;
    int64_t pn;
    float *params = mltk_model_params(s->model, &pn);
    float *grads = mltk_model_grads(s->model, &pn);
    mltk_tensor loss = mltk_tensor_1d(&rec[0], MLTK_F32, 1), loss_sum = scalar(s, S_LOSS_SUM);
    int rc = mltk_op_axpby(be, &loss_sum, (float)rows, &loss, 1.0f);
    if (rc)
        return op_failed(s, rc, "summing the loss", err);
    rc = clip_grads(s, grads, pn);
    if (rc)
        return op_failed(s, rc, "gradient clipping failed", err);
    mltk_backend_clear_error(be);
    rc = optimizer_step(s, params, grads, pn, lr);
    if (rc)
        return op_failed(s, rc, "optimizer step failed", err);
    s->last_lr = lr;
    return MLTK_OK;
}

/* ---- one epoch of training ------------------------------------------------------ */

/* Batches from s->batch_done on (0, or where a checkpoint stopped).  Sets
 * *rolled_back when a rollback moved the position: the caller restarts.
 *
 * A step runs "checked" (its record read back before its update: one
 * host sync) when [train] check_every is 1 or while steps are run again
 * after a window found a non-finite one; otherwise it runs in a window:
 * its update is made at once, its record stays on the device, and the
 * window is read back after check_every steps, at the end of the epoch,
 * before a checkpoint, histograms or a stop: a step in a window makes no
 * host sync. */
static int train_epoch(mltk_session_t *s, int epoch, double *loss, int *rolled_back,
                       char **err)
{
    mltk_split *sp = &s->train;
    double t0 = mltk_now();
    int64_t first = s->batch_done;

    *rolled_back = 0;
    s->win_n = 0;
    s->sum_known = 0;
    int rc = mltk_split_shuffle(sp, &s->be, s->seed, epoch, s->shuffle);
    if (!rc)
        rc = mltk_be_upload(&s->be, &s->scalars[S_LOSS_SUM], &s->loss_sum_now, sizeof(float));
    for (int64_t bi = first; rc == MLTK_OK && bi < s->steps_per_epoch; bi++) {
        int64_t off = bi * s->batch_size;
        int64_t rows = sp->n - off < s->batch_size ? sp->n - off : s->batch_size;
        int checked = s->check_every == 1 || (int64_t)s->step <= s->replay_to;
        int outcome = STEP_OK;
        float rec[3] = { 0 };
        if (!checked && s->win_n == 0)
            rc = window_open(s, err);
        float *dev = rec_dev(s, checked ? 0 : s->win_n);
        if (!rc)
            rc = step_compute(s, off, rows, dev, err);
        s->sum_known = 0;
        if (!rc && checked) {
            /* the record, read back before the update */
            rc = mltk_be_download(&s->be, rec, dev, sizeof rec);
            if (rc)
                op_failed(s, rc, "reading back the step's loss", err);
            /* the step a window found non-finite counts as such even
             * when it comes out finite this time */
            int replayed = (int64_t)s->step == s->replay_to;
            if (!rc && (!rec_finite(rec) || replayed)) {
                s->replay_to = -1;
                rc = nonfinite_step(s, epoch, bi, rows, rec_finite(rec) ? s->replay_loss
                                                                        : rec[0],
                                    !rec_finite(rec), &outcome, err);
            }
            if (!rc && outcome == STEP_ROLLED_BACK) {
                *rolled_back = 1;
                return MLTK_OK;
            }
            if (outcome == STEP_SKIPPED)
                s->rows_skipped += rows;  /* the epoch's loss is over the steps kept */
            s->last_loss = rec[0];
        }
        double lr = mltk_sched_lr(&s->sched, (int64_t)s->step, epoch - 1) * s->lr_factor;
        if (!rc && outcome == STEP_OK)
            rc = step_update(s, rows, dev, lr, err);
        if (rc)
            break;
        double el = mltk_now() - t0;
        int64_t done = off + rows;
        double sps = el > 0 ? (double)(done - first * s->batch_size) / el : 0;
        /* what ends the window, as of after this step */
        uint64_t next = s->step + 1;
        int last = bi + 1 == s->steps_per_epoch;
        int stop = got_signal || (s->opts.max_steps > 0 && next >= (uint64_t)s->opts.max_steps);
        int due = s->ck.dir && s->ck.every_steps > 0 && next % (uint64_t)s->ck.every_steps == 0;
        int hist = mltk_ops_histograms_due(s);
        if (!checked) {
            s->win[s->win_n++] = (mltk_step_rec){ s->step, lr, sps };
            if (s->win_n == s->check_every || last || stop || due || hist) {
                int rewound = 0;
                rc = window_close(s, &rewound, err);
                if (rc)
                    break;
                if (rewound) {
                    bi = s->batch_done - 1;  /* the loop's bi++ makes it batch_done */
                    continue;
                }
            }
        }
        if (hist)
            rc = mltk_ops_step_histograms(s, err);
        s->step++;
        s->batch_done = bi + 1;
        if (!rc && checked)
            rc = mltk_ops_step(s, rec[0], lr, sps, err);
        mltk_ops_progress(s, epoch, done, sp->n, t0 - (double)first * s->batch_size
                          * (el / (double)(done - first * s->batch_size)), s->last_loss, last);
        if (!rc && (stop || due) && !last) {
            /* mid-epoch: the partial loss sum goes into the checkpoint */
            if (!s->sum_known)
                rc = read_loss_sum(s);
            if (!rc && s->ck.dir)
                rc = save_checkpoint(s, err);
        }
        if (!rc && stop && !last) {
            mltk_ops_progress(s, epoch, done, sp->n, t0, s->last_loss, 1);
            s->stop_signal = got_signal;
            return MLTK_ERR_INTERRUPTED;
        }
    }
    float sum = s->loss_sum_now;
    if (!rc && !s->sum_known)
        rc = mltk_be_download(&s->be, &sum, &s->scalars[S_LOSS_SUM], sizeof sum);
    *loss = sp->n > s->rows_skipped ? (double)sum / (double)(sp->n - s->rows_skipped) : NAN;
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
    mltk_tensor loss_sum = scalar(s, S_LOSS_SUM), correct = scalar(s, S_CORRECT);
    mltk_tensor correct_sum = scalar(s, S_CORRECT_SUM);
    int rc = mltk_op_fill(be, &loss_sum, 0.0f);
    if (!rc)
        rc = mltk_op_fill(be, &correct_sum, 0.0f);
    if (rc)
        op_failed(s, rc, "evaluation", err);
    mltk_ops_metrics_reset(s);
    for (int64_t off = 0; rc == MLTK_OK && off < sp->n; off += s->batch_size) {
        int64_t rows = sp->n - off < s->batch_size ? sp->n - off : s->batch_size;
        float *x = (float *)sp->x + off * sp->x_numel;
        void *y = (char *)sp->y + (size_t)off * sp->y_bytes;
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
                op_failed(s, rc, "counting correct predictions", err);
        }
        if (!rc)
            rc = mltk_ops_metrics_add(s, mltk_model_output(s->model), y, rows, err);
    }
    float v[4] = { 0 };
    if (!rc)
        rc = mltk_be_download(be, v, s->scalars, sizeof v);
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
                if (mltk_be_download(&s->be, s->es.best_host + s->es.best_host_n, t.data,
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
            if (mltk_be_upload(&s->be, t.data, s->es.best_host + at,
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
            rc = mltk_be_sync(&s->be);
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
