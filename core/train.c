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
 * What this is not: checkpoints or early stopping (each arrives as its
 * own change), or the building of the schedule (session.c).
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

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

/* loss of the batch in s->scalars[S_LOSS]; dpred NULL in evaluation */
static int batch_loss(mltk_session_t *s, const mltk_split *sp, void *y, int64_t rows,
                      int want_grad, char **err)
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

/* ---- one epoch of training ------------------------------------------------------ */

static int train_epoch(mltk_session_t *s, int epoch, double *loss, char **err)
{
    const struct mltk_backend_i *b = s->be.i;
    void *ctx = s->be.ctx;
    mltk_split *sp = &s->train;
    int64_t pn;
    float *params = mltk_model_params(s->model, &pn);
    float *grads = mltk_model_grads(s->model, &pn);

    int rc = mltk_split_shuffle(sp, &s->be, s->seed, epoch, s->shuffle);
    if (!rc)
        rc = b->fill(ctx, &s->scalars[S_LOSS_SUM], 0.0f, 1);
    for (int64_t off = 0; rc == MLTK_OK && off < sp->n; off += s->batch_size) {
        int64_t rows = sp->n - off < s->batch_size ? sp->n - off : s->batch_size;
        rc = b->gather_rows(ctx, s->xb, sp->x, sp->perm + off, rows,
                            (size_t)sp->x_numel * sizeof(float));
        if (!rc)
            rc = b->gather_rows(ctx, s->yb, sp->y, sp->perm + off, rows, sp->y_bytes);
        if (!rc)
            rc = mltk_model_forward(s->model, s->xb, rows, MLTK_TRAIN, s->step, err);
        if (!rc)
            rc = batch_loss(s, sp, s->yb, rows, 1, err);
        if (!rc)
            rc = mltk_model_backward(s->model, rows, s->step, err);
        if (!rc) {
            rc = clip_grads(s, grads, pn);
            if (rc)
                mltk_errf(err, rc, "gradient clipping failed: %s", mltk_status_str(rc));
        }
        if (!rc) {
            double lr = mltk_sched_lr(&s->sched, (int64_t)s->step, epoch - 1);
            rc = optimizer_step(s, params, grads, pn, lr);
            if (rc)
                mltk_errf(err, rc, "optimizer step failed: %s", mltk_status_str(rc));
            s->last_lr = lr;
        }
        s->step++;
    }
    float sum = 0.0f;
    if (!rc)
        rc = b->download(ctx, &sum, &s->scalars[S_LOSS_SUM], sizeof sum);
    *loss = (double)sum / (double)sp->n;
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
    for (int64_t off = 0; rc == MLTK_OK && off < sp->n; off += s->batch_size) {
        int64_t rows = sp->n - off < s->batch_size ? sp->n - off : s->batch_size;
        float *x = (float *)sp->x + off * sp->x_numel;
        void *y = (char *)sp->y + (size_t)off * sp->y_bytes;
        rc = mltk_model_forward(s->model, x, rows, MLTK_EVAL, s->step, err);
        if (!rc)
            rc = batch_loss(s, sp, y, rows, 0, err);
        if (!rc && classify) {
            rc = b->count_correct(ctx, &s->scalars[S_CORRECT], mltk_model_output(s->model), y,
                                  rows, mltk_shape_numel(os));
            if (!rc)
                rc = b->axpby(ctx, &s->scalars[S_CORRECT_SUM], 1.0f, &s->scalars[S_CORRECT],
                              1.0f, 1);
        }
    }
    float v[4] = { 0 };
    if (!rc)
        rc = b->download(ctx, v, s->scalars, sizeof v);
    *loss = (double)v[S_LOSS_SUM] / (double)sp->n;
    *acc = classify ? (double)v[S_CORRECT_SUM] / (double)sp->n : NAN;
    return rc;
}

/* ---- reporting ---------------------------------------------------------------------- */

static void print_epoch(mltk_session_t *s, const mltk_epoch_stats *e)
{
    FILE *f = s->opts.epoch_out ? s->opts.epoch_out : stdout;
    if (s->opts.quiet)
        return;
    fprintf(f, "epoch %d/%d  train_loss %.4f  val_loss %.4f  val_acc %.4f  samples/s %.0f  lr %g  time %.1fs\n",
            e->epoch, s->epochs, e->train_loss, e->val_loss, e->val_acc, e->samples_per_s,
            e->lr, e->wall_s);
    fflush(f);
}

/* JSON has no NaN: non-finite numbers are written as null. */
static void json_num(FILE *f, const char *key, double v, int last)
{
    if (isfinite(v))
        fprintf(f, "\"%s\": %.17g%s", key, v, last ? "" : ", ");
    else
        fprintf(f, "\"%s\": null%s", key, last ? "" : ", ");
}

/* The metrics log is opened when training starts, so that a dry run or a
 * config that fails to build leaves an existing log untouched. */
static int open_log(mltk_session_t *s, char **err)
{
    const mltk_section *log = mltk_config_section(s->cfg, "log");
    if (!log || !mltk_params_has(log->params, "jsonl") || !*mltk_params_str(log->params, "jsonl"))
        return MLTK_OK;
    s->jsonl_path = mltk_params_str(log->params, "jsonl");
    s->jsonl = fopen(s->jsonl_path, "w");
    if (!s->jsonl)
        return mltk_errf(err, MLTK_ERR_IO, "%s: cannot write %s: %s",
                         mltk_params_where(log->params), s->jsonl_path, strerror(errno));
    return MLTK_OK;
}

static int log_epoch(mltk_session_t *s, const mltk_epoch_stats *e, char **err)
{
    if (!s->jsonl)
        return MLTK_OK;
    FILE *f = s->jsonl;
    fprintf(f, "{\"epoch\": %d, ", e->epoch);
    json_num(f, "train_loss", e->train_loss, 0);
    json_num(f, "val_loss", e->val_loss, 0);
    json_num(f, "val_acc", e->val_acc, 0);
    json_num(f, "samples_per_s", e->samples_per_s, 0);
    json_num(f, "lr", e->lr, 0);
    json_num(f, "wall_s", e->wall_s, 1);
    fputs("}\n", f);
    if (fflush(f) || ferror(f))
        return mltk_errf(err, MLTK_ERR_IO, "writing %s failed: %s", s->jsonl_path,
                         strerror(errno));
    return MLTK_OK;
}

/* ---- the loop ------------------------------------------------------------------------- */

int mltk_session_train(mltk_session_t *s, mltk_epoch_stats *last, char **err)
{
    double t0 = mltk_now();
    mltk_epoch_stats e = { 0 };
    int rc = s->jsonl ? MLTK_OK : open_log(s, err);
    for (int epoch = 1; epoch <= s->epochs && rc == MLTK_OK; epoch++) {
        double te = mltk_now();
        rc = train_epoch(s, epoch, &e.train_loss, err);
        if (!rc)
            rc = s->be.i->sync(s->be.ctx);
        double dt = mltk_now() - te;
        if (!rc && !isfinite(e.train_loss))
            rc = mltk_errf(err, MLTK_ERR_NUMERIC,
                           "training loss became non-finite in epoch %d (step %llu); "
                           "try a lower learning rate", epoch, (unsigned long long)s->step);
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
        e.wall_s = mltk_now() - t0;
        print_epoch(s, &e);
        rc = log_epoch(s, &e, err);
    }
    if (last)
        *last = e;
    return rc;
}
