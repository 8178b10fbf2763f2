/* bce_with_logits.c - binary cross-entropy of logits against probabilities.
 *
 * What this is: a loss plugin for value targets: pred (B, ...) raw logits
 * x and a target tensor t of the same per-sample shape holding
 * probabilities in [0, 1] (hard 0/1 labels or soft ones).  The loss is the
 * mean over every element of -[t log sigmoid(x) + (1 - t) log(1 -
 * sigmoid(x))], computed in the stable form
 *     max(x, 0) - x t + log(1 + exp(-|x|))
 * (PyTorch's nn.BCEWithLogitsLoss, reduction = mean), its gradient
 * (sigmoid(x) - t) / (number of elements); both come from the backend's
 * pointwise_loss op (kind 2), accumulated in double, so large logits stay
 * finite.
 *
 * What this is not: pos_weight or per-element weights.  Targets outside
 * [0, 1] are not rejected (PyTorch does not either); they are the data's
 * responsibility.
 */
#include <stdlib.h>
#include <mltk/plugin.h>

/* the backend's pointwise_loss kind (backend.h) */
#define BCE_KIND 2

/* ---- state ---------------------------------------------------------------- */

typedef struct bce {
    int64_t numel;   /* elements per sample, known after setup */
} bce;

/* ---- lifetime ------------------------------------------------------------- */

static int bce_create(void **self, const mltk_params_t *params, char **err)
{
    bce *l = calloc(1, sizeof(*l));

    (void)params;
    if (!l)
        return mltk_errf(err, MLTK_ERR_NOMEM, "bce_with_logits: out of memory");
    *self = l;
    return MLTK_OK;
}

static void bce_destroy(void *self)
{
    free(self);
}

/* ---- shapes --------------------------------------------------------------- */

static int bce_setup(void *self, const mltk_shape *pred, mltk_target_kind target,
                     const mltk_shape *target_shape, int64_t n_classes, char **err)
{
    bce *l = self;
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

/* pred, target (B, ...) -> loss[0]; dpred (B, ...) when wanted */
static int bce_forward(void *self, const struct mltk_backend *be,
                       const mltk_tensor *pred, const mltk_tensor *target,
                       float *loss, mltk_tensor *dpred)
{
    bce *l = self;
    int64_t rows = pred->shape.ndim > 0 ? pred->shape.dim[0] : 0;

    if (l->numel < 1)
        return MLTK_ERR_INVALID;
    if (rows == 0)  /* an empty batch has no mean; call its loss 0 */
        return be->i->fill(be->ctx, loss, 0.0f, 1);
    if (!MLTK_BACKEND_HAS(be, pointwise_loss))
        return MLTK_ERR_UNSUPPORTED;
    return be->i->pointwise_loss(be->ctx, BCE_KIND, loss, dpred ? dpred->data : NULL,
                                 pred->data, target->data, rows * l->numel, 1.0f);
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_loss_i bce_iface = {
    .size = sizeof(struct mltk_loss_i),
    .create = bce_create,
    .destroy = bce_destroy,
    .setup = bce_setup,
    .forward = bce_forward,
};

MLTK_PLUGIN(bce_with_logits, MLTK_KIND_LOSS, &bce_iface)
