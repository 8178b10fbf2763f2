/* pointwise.c - the elementwise losses against value targets: mse, l1 and
 * bce_with_logits.
 *
 * What this is: one source built three times (plugins/local.mk) with
 * -DPW_LOSS=mse|l1|bce_with_logits.  pred (B, ...) and a target tensor of
 * the same per-sample shape; the loss is the mean over every element of
 *   mse              (pred - target)^2, gradient 2 (pred - target) / count
 *                    (PyTorch's nn.MSELoss)
 *   l1               |pred - target|, gradient sign(pred - target) / count,
 *                    0 where they are equal (nn.L1Loss)
 *   bce_with_logits  max(x, 0) - x t + log(1 + exp(-|x|)) for logits x and
 *                    probabilities t in [0, 1], gradient (sigmoid(x) - t) /
 *                    count (nn.BCEWithLogitsLoss; the stable form keeps
 *                    large logits finite)
 * all from the pointwise_loss op, accumulated in double.
 *
 * What this is not: sum reductions, per-element weights, pos_weight or the
 * smooth (Huber) L1.  Targets outside [0, 1] for bce_with_logits are the
 * data's responsibility, as in PyTorch.
 */
#include <stdlib.h>
#include <mltk/plugin.h>

/* the pointwise_loss op's kind of each (backend.h) */
#define mse_KIND MLTK_LOSS_MSE
#define l1_KIND MLTK_LOSS_L1
#define bce_with_logits_KIND MLTK_LOSS_BCE_LOGITS
#if !defined(PW_LOSS)
#error "build with -DPW_LOSS=mse|l1|bce_with_logits"
#endif
#define PW_CAT_(a, b) a##b
#define PW_CAT(a, b) PW_CAT_(a, b)
#define PW_KIND PW_CAT(PW_LOSS, _KIND)
#define PW_STR_(x) #x
#define PW_STR(x) PW_STR_(x)
/* expands PW_LOSS before MLTK_PLUGIN pastes it */
#define PW_PLUGIN(name, kind, iface) MLTK_PLUGIN(name, kind, iface)

/* ---- state ---------------------------------------------------------------- */

typedef struct pw {
    int64_t numel;   /* elements per sample, known after setup */
} pw;

/* ---- lifetime ------------------------------------------------------------- */

static int pw_create(void **self, const mltk_params_t *params, char **err)
{
    pw *l = calloc(1, sizeof(*l));

    (void)params;
    if (!l)
        return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", PW_STR(PW_LOSS));
    *self = l;
    return MLTK_OK;
}

static void pw_destroy(void *self)
{
    free(self);
}

/* ---- shapes --------------------------------------------------------------- */

static int pw_setup(void *self, const mltk_shape *pred, mltk_target_kind target,
                     const mltk_shape *target_shape, int64_t n_classes, char **err)
{
    pw *l = self;
    char pb[96], tb[96];

    (void)n_classes;
    if (target != MLTK_TARGET_VALUE)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "needs value targets (a tensor per sample of the "
                         "prediction's shape %s), but the data set has class-index "
                         "targets (use cross_entropy for those)",
                         mltk_shape_str(pred, pb, sizeof(pb)));
    if (!target_shape || !mltk_shape_equal(target_shape, pred))
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "the model predicts shape %s per sample but the targets "
                         "have shape %s; they must be equal",
                         mltk_shape_str(pred, pb, sizeof(pb)),
                         target_shape ? mltk_shape_str(target_shape, tb, sizeof(tb))
                                      : "(none)");
    l->numel = mltk_shape_numel(pred);
    if (l->numel < 1)
        return mltk_errf(err, MLTK_ERR_SHAPE, "the prediction %s is empty",
                         mltk_shape_str(pred, pb, sizeof(pb)));
    return MLTK_OK;
}

/* ---- forward -------------------------------------------------------------- */

/* pred, target (B, ...) read as (B * numel) -> loss (1); dpred (B, ...) =
 * grad_scale * d loss / d pred when wanted */
static int pw_forward(void *self, const struct mltk_backend *be,
                      const mltk_tensor *pred, const mltk_tensor *target,
                      const mltk_tensor *loss, const mltk_tensor *dpred, float grad_scale)
{
    pw *l = self;
    const int64_t rows = pred->shape.ndim > 0 ? pred->shape.dim[0] : 0;
    const mltk_pointwise_params pp = { .kind = PW_KIND, .grad_scale = grad_scale };
    mltk_tensor p, t, dp;

    if (l->numel < 1)
        return MLTK_ERR_INVALID;
    if (rows == 0)  /* an empty batch has no mean; call its loss 0 */
        return mltk_op_fill(be, loss, 0.0f);
    p = mltk_tensor_1d(pred->data, pred->dtype, rows * l->numel);
    t = mltk_tensor_1d(target->data, target->dtype, rows * l->numel);
    dp = mltk_tensor_1d(dpred ? dpred->data : NULL, pred->dtype, rows * l->numel);
    return mltk_op_pointwise_loss(be, loss, &dp, &p, &t, &pp);
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_loss_i pw_iface = {
    .size = sizeof(struct mltk_loss_i),
    .create = pw_create,
    .destroy = pw_destroy,
    .setup = pw_setup,
    .forward = pw_forward,
};

PW_PLUGIN(PW_LOSS, MLTK_KIND_LOSS, &pw_iface)
