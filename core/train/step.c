/* step.c - one training step: gather, forward, loss, backward, the hooks
 * after backward, clipping and the optimizer update.
 *
 * What this is: the step as one object.  Its numbers stay on the device:
 * the loss, the sum of squared gradients (after the after_backward
 * hooks, so after unscaling: non-finite when any gradient is) and a
 * non-finite flag of the loss go into a record in backend memory, which the loop reads
 * back once per window of steps (train.c).  Components hook into it
 * (component.h): after_backward runs ops on the gradients (unscale,
 * all-reduce), before_update judges a step read back before its update
 * (skip it, roll back), after_update sees every step's verdict.  After
 * every change of the parameters the model is told
 * (mltk_model_params_changed), which runs ops only.  Clipping follows
 * torch.nn.utils.clip_grad_value_ and clip_grad_norm_ (eps 1e-6), on the
 * unscaled gradients.
 *
 * What this is not: the loop, the window and its replay (train.c), or
 * any policy about bad steps (the components that hook in).
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "component.h"
#include "../op.h"

/* ---- small helpers ------------------------------------------------------------------ */

mltk_tensor mltk_batch_tensor(void *data, const mltk_shape *per_sample, int64_t rows,
                              mltk_dtype dt)
{
    int64_t dims[MLTK_MAX_DIMS] = { rows };
    int nd = per_sample->ndim + 1 < MLTK_MAX_DIMS ? per_sample->ndim + 1 : MLTK_MAX_DIMS;
    for (int i = 1; i < nd; i++)
        dims[i] = per_sample->dim[i - 1];
    return mltk_tensor_make(data, dt, nd, dims);
}

mltk_dtype mltk_target_dtype(const mltk_split *sp)
{
    return sp->yb_dtype;
}

/* scalar i of s->scalars, a 1-element f32 tensor */
static mltk_tensor scalar(mltk_session_t *s, int i)
{
    return mltk_tensor_1d(&s->scalars[i], MLTK_F32, 1);
}

int mltk_step_failed(mltk_session_t *s, int rc, const char *what, char **err)
{
    const char *why = mltk_backend_error(&s->be);
    if (why && *why)
        return mltk_errf(err, rc, "%s: %s", what, why);
    return mltk_errf(err, rc, "%s: %s", what, mltk_status_str(rc));
}

int mltk_step_add_hook(mltk_session_t *s, const mltk_step_hook *h, char **err)
{
    if (s->stepper->n_hooks == MLTK_STEP_MAX_HOOKS)
        return mltk_errf(err, MLTK_ERR_NOMEM, "too many step hooks (%d)", MLTK_STEP_MAX_HOOKS);
    s->stepper->hooks[s->stepper->n_hooks++] = *h;
    return MLTK_OK;
}

/* ---- the records ---------------------------------------------------------------------- */

/* Step k of the window keeps its loss, the sum of its squared gradients
 * and its non-finite flag at scalars[MLTK_SCALARS_HEAD + 3 k ...]. */
float *mltk_step_record(mltk_session_t *s, int64_t k)
{
    return s->scalars + MLTK_SCALARS_HEAD + 3 * k;
}

int mltk_step_rec_finite(const float *r)
{
    return isfinite(r[0]) && isfinite(r[1]) && r[2] == 0.0f;
}

int mltk_step_loss_sum(mltk_session_t *s)
{
    if (s->sum_known)
        return MLTK_OK;
    return mltk_be_download(&s->be, &s->loss_sum_now, &s->scalars[MLTK_S_LOSS_SUM],
                            sizeof(float));
}

/* Copy the training state to or from s->snap (backend memory): the flat
 * parameters, each optimizer slot, each layer's persistent state and the
 * epoch's loss sum, in that order.  Device copies: no host sync. */
int mltk_step_snapshot(mltk_session_t *s, int restore, char **err)
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
    SNAP(&s->scalars[MLTK_S_LOSS_SUM], 1);
#undef SNAP
    if (rc)
        return mltk_step_failed(s, rc, restore ? "going back to the start of the window"
                                               : "keeping the state at the start of a window",
                                err);
    return restore ? mltk_model_params_changed(s->model, err) : MLTK_OK;
}

/* ---- forward, loss, backward ------------------------------------------------------------ */

int mltk_step_compute(mltk_session_t *s, int64_t bi, int64_t *rows_out, float *rec,
                      char **err)
{
    const struct mltk_backend *be = &s->be;
    mltk_split *sp = &s->train;
    int64_t pn, rows = 0;
    float *grads = mltk_model_grads(s->model, &pn);
    void *xb = NULL, *yb = NULL;
    int rc = mltk_data_batch(s, sp, bi, &rows, &xb, &yb, err);
    if (rc)
        return rc;
    *rows_out = rows;
    rc = mltk_model_forward(s->model, xb, rows, MLTK_TRAIN, s->step, err);
    if (rc)
        return rc;
    /* the loss goes straight into the record; its gradient is scaled */
    mltk_tensor pred = mltk_batch_tensor(mltk_model_output(s->model),
                                         mltk_model_output_shape(s->model), rows, MLTK_F32);
    mltk_tensor target = mltk_batch_tensor(yb, &sp->yb_shape, rows, mltk_target_dtype(sp));
    mltk_tensor dpred = pred;
    dpred.data = mltk_model_output_grad(s->model);
    mltk_tensor loss = mltk_tensor_1d(&rec[0], MLTK_F32, 1);
    mltk_backend_clear_error(be);
    rc = s->loss->forward(s->loss_self, be, &pred, &target, &loss, &dpred,
                          s->stepper->grad_scale);
    if (rc)
        return mltk_step_failed(s, rc, "loss", err);
    rc = mltk_model_backward(s->model, rows, s->step, err);
    for (int i = 0; i < s->stepper->n_hooks && !rc; i++)
        if (s->stepper->hooks[i].after_backward)
            rc = s->stepper->hooks[i].after_backward(s->stepper->hooks[i].self, s, grads, pn,
                                                     err);
    if (rc)
        return rc;
    mltk_tensor g = mltk_tensor_1d(grads, MLTK_F32, pn);
    mltk_tensor gsq = mltk_tensor_1d(&rec[1], MLTK_F32, 1);
    mltk_tensor flag = mltk_tensor_1d(&rec[2], MLTK_F32, 1);
    /* a NaN or Inf among the gradients makes their sum of squares NaN or
     * Inf (and so does a norm beyond float's range, which is as bad), so
     * the sum stands for a pass of its own over the gradients: the flag
     * only needs the loss */
    rc = pn ? mltk_op_sumsq(be, &gsq, &g) : mltk_op_fill(be, &gsq, 0.0f);
    if (!rc)
        rc = mltk_op_fill(be, &flag, 0.0f);
    if (!rc)
        rc = mltk_op_nonfinite(be, &flag, &loss);
    return rc ? mltk_step_failed(s, rc, "checking the step's numbers", err) : MLTK_OK;
}

int mltk_step_judge(mltk_session_t *s, const mltk_step_check *c, int *verdict, char **err)
{
    int rc = MLTK_OK;
    *verdict = MLTK_STEP_UPDATE;
    for (int i = 0; i < s->stepper->n_hooks && !rc && *verdict != MLTK_STEP_ROLLED_BACK; i++)
        if (s->stepper->hooks[i].before_update)
            rc = s->stepper->hooks[i].before_update(s->stepper->hooks[i].self, s, c, verdict,
                                                    err);
    return rc;
}

/* ---- clipping and the update ------------------------------------------------------------- */

/* By value, then by global norm.  Frozen layers have no gradient in
 * PyTorch: theirs are zeroed first so that they do not count in the norm. */
static int clip_grads(mltk_session_t *s, float *grads, int64_t n)
{
    const struct mltk_backend *be = &s->be;
    mltk_tensor g = mltk_tensor_1d(grads, MLTK_F32, n), sq = scalar(s, MLTK_S_GRAD_SQ);
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

int mltk_step_update(mltk_session_t *s, int64_t rows, float *rec, double lr, int verdict,
                     char **err)
{
    const struct mltk_backend *be = &s->be;
    int64_t pn;
    float *params = mltk_model_params(s->model, &pn);
    float *grads = mltk_model_grads(s->model, &pn);
    int rc = MLTK_OK;
    if (verdict == MLTK_STEP_UPDATE || verdict == MLTK_STEP_SKIP) {
        mltk_tensor loss = mltk_tensor_1d(&rec[0], MLTK_F32, 1);
        mltk_tensor loss_sum = scalar(s, MLTK_S_LOSS_SUM);
        rc = mltk_op_axpby(be, &loss_sum, (float)rows, &loss, 1.0f);
        if (rc)
            return mltk_step_failed(s, rc, "summing the loss", err);
    }
    if (verdict == MLTK_STEP_UPDATE) {
        rc = clip_grads(s, grads, pn);
        if (rc)
            return mltk_step_failed(s, rc, "gradient clipping failed", err);
        mltk_backend_clear_error(be);
        rc = optimizer_step(s, params, grads, pn, lr);
        if (rc)
            return mltk_step_failed(s, rc, "optimizer step failed", err);
        s->last_lr = lr;
        rc = mltk_model_params_changed(s->model, err);
    }
    for (int i = 0; i < s->stepper->n_hooks && !rc; i++)
        if (s->stepper->hooks[i].after_update)
            rc = s->stepper->hooks[i].after_update(s->stepper->hooks[i].self, s, verdict, err);
    return rc;
}
