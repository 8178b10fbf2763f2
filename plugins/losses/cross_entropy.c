/* cross_entropy.c - softmax cross-entropy over class logits.
 *
 * What this is: a loss plugin for classification: pred (B, C) raw logits,
 * target (B) int32 class indices.  Without options the loss is the batch
 * mean of -log softmax(pred)[target] with gradient
 * (softmax(pred) - onehot(target)) / B.  With `label_smoothing` (eps)
 * and/or class `weights` (w) it follows PyTorch's nn.CrossEntropyLoss
 * exactly:
 *   loss = sum_i [ (1 - eps) w[y_i] (-logp_i[y_i])
 *                  + eps/C sum_c w[c] (-logp_i[c]) ] / sum_i w[y_i]
 * (w = 1 without weights, so the denominator is B).
 * Soft targets: a float32 target of pred's shape (B, C) holds class
 * probabilities t (the batch transforms mixup and cutmix make them during
 * training; evaluation still passes class indices).  As PyTorch's loss
 * with probability targets:
 *   loss = sum_i -sum_c w[c] t'_ic logp_i[c] / B,  t' = (1 - eps) t + eps/C
 * divided by B with weights too.  Every case is one fused softmax_xent
 * op, numerically stable (max-subtracted).
 *
 * What this is not: ignore_index, or a check that probability rows sum
 * to 1 (they are used as given, as PyTorch does).
 */
#include <math.h>
#include <stdlib.h>
#include <mltk/plugin.h>

/* ---- state ---------------------------------------------------------------- */

typedef struct xent {
    int64_t classes;   /* C, known after setup */
    float   smoothing; /* label_smoothing in [0, 1) */
    int     n_weights; /* class weights given, 0 if none */
    float  *weights_host;
    float  *weights;   /* (C) backend memory, after the first forward */
    const struct mltk_backend *be;  /* owner of `weights` */
} xent;

/* ---- lifetime ------------------------------------------------------------- */

static void xent_destroy(void *self)
{
    xent *x = self;

    if (!x)
        return;
    if (x->weights && x->be)
        mltk_be_free(x->be, x->weights);
    free(x->weights_host);
    free(x);
}

static int xent_create(void **self, const mltk_params_t *params, char **err)
{
    double ls = mltk_params_float(params, "label_smoothing");
    int nw = mltk_params_has(params, "weights")
        ? mltk_params_floats(params, "weights", NULL, 0) : 0;
    xent *x;

    if (!(ls >= 0.0 && ls < 1.0))
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "label_smoothing = %g: expected a value in [0, 1)", ls);
    x = calloc(1, sizeof(*x));
    if (!x)
        return mltk_errf(err, MLTK_ERR_NOMEM, "cross_entropy: out of memory");
    x->smoothing = (float)ls;
    if (nw > 0) {
        double *w = calloc((size_t)nw, sizeof(double));
        double total = 0.0;
        x->weights_host = calloc((size_t)nw, sizeof(float));
        if (!w || !x->weights_host) {
            free(w);
            xent_destroy(x);
            return mltk_errf(err, MLTK_ERR_NOMEM, "cross_entropy: out of memory");
        }
        mltk_params_floats(params, "weights", w, nw);
        for (int i = 0; i < nw; i++) {
            if (!(w[i] >= 0.0) || isinf(w[i])) {
                double bad = w[i];
                free(w);
                xent_destroy(x);
                return mltk_errf(err, MLTK_ERR_CONFIG,
                                 "weights: the weight of class %d is %g; class "
                                 "weights must be finite and >= 0", i, bad);
            }
            x->weights_host[i] = (float)w[i];
            total += w[i];
        }
        free(w);
        if (!(total > 0.0)) {
            xent_destroy(x);
            return mltk_errf(err, MLTK_ERR_CONFIG,
                             "weights: every class weight is 0; at least one must be > 0");
        }
        x->n_weights = nw;
    }
    *self = x;
    return MLTK_OK;
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
    if (x->n_weights > 0 && x->n_weights != pred->dim[0])
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "weights has %d values but there are %lld classes "
                         "(give one weight per class)",
                         x->n_weights, (long long)pred->dim[0]);
    x->classes = pred->dim[0];
    return MLTK_OK;
}

/* ---- forward -------------------------------------------------------------- */

/* The class weights in backend memory, uploaded on first use. */
static int upload_weights(xent *x, const struct mltk_backend *be)
{
    void *p = NULL;
    int rc;

    if (x->weights && x->be == be)
        return MLTK_OK;
    if (x->weights && x->be)
        mltk_be_free(x->be, x->weights);
    x->weights = NULL;
    x->be = be;
    rc = mltk_be_alloc(be, (size_t)x->n_weights * sizeof(float), &p);
    if (rc)
        return rc;
    x->weights = p;
    return mltk_be_upload(be, p, x->weights_host, (size_t)x->n_weights * sizeof(float));
}

/* pred (B, C), target (B) int32 or (B, C) float32 probabilities -> loss
 * (1); dpred (B, C) = grad_scale * d loss / d pred when wanted.  Another
 * target is handed to the op as it is, whose check names its shape. */
static int xent_forward(void *self, const struct mltk_backend *be,
                        const mltk_tensor *pred, const mltk_tensor *target,
                        const mltk_tensor *loss, const mltk_tensor *dpred,
                        float grad_scale)
{
    xent *x = self;
    const int64_t rows = pred->shape.ndim > 0 ? pred->shape.dim[0] : 0;
    const mltk_xent_params xp = { .label_smoothing = x->smoothing,
                                  .grad_scale = grad_scale };
    mltk_tensor logits, labels, dlogits, weights;
    int rc;

    if (x->classes < 1)
        return MLTK_ERR_INVALID;
    if (rows == 0)  /* an empty batch has no mean; call its loss 0 */
        return mltk_op_fill(be, loss, 0.0f);
    if (x->n_weights > 0) {
        rc = upload_weights(x, be);
        if (rc)
            return rc;
    }
    logits = mltk_tensor_2d(pred->data, pred->dtype, rows, x->classes);
    if (target->dtype == MLTK_F32)  /* probabilities: (B, C), as pred */
        labels = mltk_shape_equal(&target->shape, &pred->shape)
            ? mltk_tensor_2d(target->data, MLTK_F32, rows, x->classes) : *target;
    else
        labels = mltk_tensor_1d(target->data, target->dtype, rows);
    dlogits = mltk_tensor_2d(dpred ? dpred->data : NULL, pred->dtype, rows, x->classes);
    weights = mltk_tensor_1d(x->n_weights > 0 ? x->weights : NULL, MLTK_F32, x->classes);
    return mltk_op_softmax_xent(be, loss, &dlogits, &logits, &labels, &weights, &xp);
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
