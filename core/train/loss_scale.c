/* loss_scale.c - loss scaling, static or dynamic ([train] loss_scale).
 *
 * What this is: the component that multiplies the loss's gradient by a
 * scale (the loss op's grad_scale), so that small gradients survive a
 * low-precision backward pass, and divides the gradients by it right
 * after backward (an axpby on the flat gradient buffer, before the step's
 * non-finite check, clipping and the update).  Dynamic scaling follows
 * PyTorch's GradScaler: it starts at loss_scale_init (65536), and a step
 * whose gradients overflow (a finite loss, a gradient that is NaN or Inf)
 * is skipped and halves the scale; after loss_scale_growth_interval (2000)
 * steps in a row without one, the scale doubles.  A static scale (a
 * number) never changes; a non-finite gradient then meets [train] on_nan.
 * `auto` (the default) is dynamic under [run] precision = fp16, else none.
 *
 * The decision to skip needs no host sync per step: the scale is host
 * state, changed only by what is read back.  A step in a window is
 * updated at once as if it were good; when the window is read back with
 * an overflow in it, the loop goes back to the window's start (the
 * parameters from their device copy, this component's scale and count
 * through save_state/load_state), runs the steps again one at a time up
 * to the overflowed one, which is then read back before its update, and
 * skipped here.  An overflow thus costs one window run again; a scale
 * that grows every 2000 steps meets one about that often.
 *
 * Its state in a checkpoint: "loss_scale.scale" (exact, "%a") and
 * "loss_scale.good_steps"; a checkpoint without them leaves the
 * configured start.
 *
 * What this is not: mixed precision itself ([run] precision, the model).
 */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "component.h"
#include "../schema.h"

typedef struct loss_scale {
    int     on;             /* 0 none, 1 static, 2 dynamic */
    double  init;
    int64_t interval;       /* good steps before the scale doubles */
    double  scale;          /* the scale of the next step */
    int64_t good;           /* steps since the last overflow or growth */
    int64_t overflows;      /* steps skipped in this process */
} loss_scale;

#define BACKOFF 0.5
#define GROWTH 2.0

static void set_scale(loss_scale *l, mltk_session_t *s, double v)
{
    l->scale = v;
    s->stepper->grad_scale = l->on ? (float)v : 1.0f;
}

/* ---- the hooks of the step ------------------------------------------------------------- */

/* g (n) /= scale, on the device */
static int ls_after_backward(void *self, mltk_session_t *s, float *g, int64_t n, char **err)
{
    loss_scale *l = self;
    if (!l->on || l->scale == 1.0 || n == 0)
        return MLTK_OK;
    mltk_tensor t = mltk_tensor_1d(g, MLTK_F32, n);
    int rc = mltk_op_axpby(&s->be, &t, (float)(1.0 / l->scale), &t, 0.0f);
    return rc ? mltk_step_failed(s, rc, "unscaling the gradients", err) : MLTK_OK;
}

/* a checked step: an overflow is skipped and halves the scale */
static int ls_before_update(void *self, mltk_session_t *s, const mltk_step_check *c,
                            int *verdict, char **err)
{
    loss_scale *l = self;
    (void)err;
    if (l->on != 2 || *verdict != MLTK_STEP_UPDATE)
        return MLTK_OK;
    int overflow = c->nonfinite ? isfinite(c->loss)
                                : c->replayed && isfinite(c->was[0]) && !mltk_step_rec_finite(c->was);
    if (!overflow)
        return MLTK_OK;
    mltk_log(MLTK_LOG_DEBUG, "step %" PRIu64 ": gradients overflow at loss scale %g: update "
             "skipped, scale now %g", s->step, l->scale, l->scale * BACKOFF);
    l->overflows++;
    l->good = 0;
    set_scale(l, s, l->scale * BACKOFF);
    *verdict = MLTK_STEP_SKIP;
    return MLTK_OK;
}

static int ls_after_update(void *self, mltk_session_t *s, int verdict, char **err)
{
    loss_scale *l = self;
    (void)err;
    if (l->on != 2 || verdict != MLTK_STEP_UPDATE)
        return MLTK_OK;
    if (++l->good >= l->interval) {
        l->good = 0;
        set_scale(l, s, l->scale * GROWTH);
    }
    return MLTK_OK;
}

/* ---- lifetime ---------------------------------------------------------------------------- */

static int ls_open(void **self, mltk_session_t *s, const mltk_section *sec,
                   const mltk_params_t *p, char **err)
{
    loss_scale *l = calloc(1, sizeof(*l));
    if (!l)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    *self = l;
    (void)sec;
    const char *v = mltk_params_str(p, "loss_scale");
    const mltk_section *run = mltk_config_section(s->cfg, "run");
    int fp16 = run && mltk_params_has(run->params, "precision")
               && strcmp(mltk_params_str(run->params, "precision"), "fp16") == 0;
    l->init = mltk_params_float(p, "loss_scale_init");
    l->interval = mltk_params_int(p, "loss_scale_growth_interval");
    if (strcmp(v, "dynamic") == 0 || (strcmp(v, "auto") == 0 && fp16)) {
        l->on = 2;
    } else if (strcmp(v, "none") == 0 || strcmp(v, "auto") == 0) {
        l->on = 0;
        l->init = 1.0;
    } else {
        double x;
        if (mltk_parse_float(v, &x) != 0 || !(x > 0) || !(x <= 1e30))
            return mltk_errf(err, MLTK_ERR_CONFIG, "%s: key 'loss_scale' must be none, "
                             "dynamic, auto or a number in (0, 1e30], got '%s'",
                             mltk_params_where(p), v);
        l->on = 1;
        l->init = x;
    }
    set_scale(l, s, l->init);
    if (!l->on)
        return MLTK_OK;
    mltk_step_hook h = { .self = l, .after_backward = ls_after_backward,
                         .before_update = ls_before_update, .after_update = ls_after_update };
    return mltk_step_add_hook(s, &h, err);
}

static void ls_close(void *self)
{
    loss_scale *l = self;
    if (l->overflows)
        mltk_log(MLTK_LOG_DEBUG, "loss scale: %" PRId64 " step(s) skipped, scale %g",
                 l->overflows, l->scale);
    free(l);
}

/* ---- state -------------------------------------------------------------------------------- */

static int ls_save_state(void *self, mltk_kv *out)
{
    loss_scale *l = self;
    int rc = mltk_kv_put(out, "loss_scale.scale", "%a", l->scale);
    return rc ? rc : mltk_kv_put(out, "loss_scale.good_steps", "%" PRId64, l->good);
}

static int ls_load_state(void *self, mltk_session_t *s, const mltk_kv *in, char **err)
{
    loss_scale *l = self;
    double scale = l->init;
    int64_t good = 0;
    int rc = MLTK_OK;
    if (mltk_kv_get(in, "loss_scale.scale"))
        rc = mltk_kv_f64(in, "loss_scale.scale", &scale, err);
    if (!rc && mltk_kv_get(in, "loss_scale.good_steps"))
        rc = mltk_kv_i64(in, "loss_scale.good_steps", INT64_MAX, &good, err);
    if (rc)
        return rc;
    if (l->on && !(scale > 0 && isfinite(scale)))
        return mltk_errf(err, MLTK_ERR_DATA, "%s: metadata 'loss_scale.scale' is not a "
                         "positive number", in->path ? in->path : "(state)");
    /* a run that scales statically, or not at all, keeps its own scale */
    if (l->on == 2)
        set_scale(l, s, scale);
    l->good = good;
    return MLTK_OK;
}

double mltk_loss_scale_value(const mltk_session_t *s)
{
    loss_scale *l = mltk_component_self(s, &mltk_component_loss_scale);
    return l && l->on ? l->scale : 1.0;
}

const mltk_component_i mltk_component_loss_scale = {
    .name = "loss_scale",
    .section = "train",
    .schema = mltk_schema_train,
    .open = ls_open,
    .close = ls_close,
    .save_state = ls_save_state,
    .load_state = ls_load_state,
};
