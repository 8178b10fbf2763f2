/* cross_entropy.c - softmax cross-entropy over class logits.
 *
 * What this is: a loss plugin for classification: pred (B, C) raw logits,
 * target (B) int32 class indices; the loss is the batch mean of
 * -log softmax(pred)[target], and its gradient with respect to the logits
 * is (softmax(pred) - onehot(target)) / B.  Both come from the backend's
 * fused softmax_xent op, which is numerically stable (max-subtracted).
 *
 * What this is not: label smoothing, class weights or probability targets;
 * those would be parameters of their own.
 */
#include <stdlib.h>
#include <mltk/plugin.h>

/* ---- state ---------------------------------------------------------------- */

typedef struct xent {
    int64_t classes;   /* C, known after setup */
} xent;

/* ---- lifetime ------------------------------------------------------------- */

static int xent_create(void **self, const mltk_params_t *params, char **err)
{
    xent *x = calloc(1, sizeof(*x));

    (void)params;
    if (!x)
        return mltk_errf(err, MLTK_ERR_NOMEM, "cross_entropy: out of memory");
    *self = x;
    return MLTK_OK;
}

static void xent_destroy(void *self)
{
    free(self);
}

/* ---- shapes --------------------------------------------------------------- */

static int xent_setup(void *self, const mltk_shape *pred, mltk_target_kind target,
                      const mltk_shape *target_shape, int64_t n_classes, char **err)
{
    xent *x = self;
    char buf[96];

    if (target != MLTK_TARGET_CLASS)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "needs a data set with class-index "
                         "targets, but this one has value targets");
    if (target_shape && target_shape->ndim != 0)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "expected one class index per sample, "
                         "got targets of shape %s",
                         mltk_shape_str(target_shape, buf, sizeof(buf)));
    if (pred->ndim != 1 || pred->dim[0] < 1)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "expected a 1-d prediction of class "
                         "logits, got shape %s (put a dense layer with "
                         "units = number of classes last)",
                         mltk_shape_str(pred, buf, sizeof(buf)));
    if (n_classes > 0 && pred->dim[0] != n_classes)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "the model predicts %lld classes but "
                         "the data set has %lld (set the last layer's units = %lld)",
                         (long long)pred->dim[0], (long long)n_classes,
                         (long long)n_classes);
    x->classes = pred->dim[0];
    return MLTK_OK;
}

/* ---- forward -------------------------------------------------------------- */

/* pred (B, C), target (B) int32 -> loss[0]; dpred (B, C) when wanted */
static int xent_forward(void *self, const struct mltk_backend *be,
                        const mltk_tensor *pred, const mltk_tensor *target,
                        float *loss, mltk_tensor *dpred)
{
    xent *x = self;
    int64_t rows = pred->shape.ndim > 0 ? pred->shape.dim[0] : 0;
    float *dl = dpred ? dpred->data : NULL;

    if (x->classes < 1)
        return MLTK_ERR_INVALID;
    if (rows == 0)  /* an empty batch has no mean; call its loss 0 */
        return be->i->fill(be->ctx, loss, 0.0f, 1);
    return be->i->softmax_xent(be->ctx, loss, dl, pred->data, target->data,
                               rows, x->classes, 1.0f);
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_loss_i xent_iface = {
    .size = sizeof(struct mltk_loss_i),
    .create = xent_create,
    .destroy = xent_destroy,
    .setup = xent_setup,
    .forward = xent_forward,
};

MLTK_PLUGIN(cross_entropy, MLTK_KIND_LOSS, &xent_iface)
