/* kl_div.c - the distillation loss: KL divergence between temperature-
 * softened teacher and student distributions.
 *
 * What this is: a loss plugin whose target is a value tensor of teacher
 * logits with the prediction's shape (C).  With temperature T and weight
 * alpha the loss is
 *     alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)),
 * averaged over the batch (PyTorch's
 *     alpha * T * T * F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1),
 *                              reduction = "batchmean")),
 * from the kl_div_logits op with double accumulation; the T^2
 * keeps the gradient's scale independent of T (Hinton et al., 2015).  Its
 * gradient with respect to the student logits is
 * alpha * T * (softmax(s / T) - softmax(t / T)) / B.
 *
 * What this is not: the hard-label half of distillation (cross-entropy
 * against class indices) or a teacher model; the targets are the
 * teacher's logits, computed beforehand.
 */
#include <math.h>
#include <stdlib.h>
#include <mltk/plugin.h>

/* ---- state ---------------------------------------------------------------- */

typedef struct kl {
    float   T;        /* temperature > 0 */
    float   alpha;    /* weight in [0, 1] */
    int64_t classes;  /* C, known after setup */
} kl;

/* ---- lifetime ------------------------------------------------------------- */

static int kl_create(void **self, const mltk_params_t *params, char **err)
{
    double T = mltk_params_float(params, "temperature");
    double alpha = mltk_params_float(params, "alpha");
    kl *k;

    if (!(T > 0.0) || isinf(T))
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "temperature = %g: expected a finite value > 0", T);
    if (!(alpha >= 0.0 && alpha <= 1.0))
        return mltk_errf(err, MLTK_ERR_CONFIG, "alpha = %g: expected a value in [0, 1]",
                         alpha);
    k = calloc(1, sizeof(*k));
    if (!k)
        return mltk_errf(err, MLTK_ERR_NOMEM, "kl_div: out of memory");
    k->T = (float)T;
    k->alpha = (float)alpha;
    *self = k;
    return MLTK_OK;
}

static void kl_destroy(void *self)
{
    free(self);
}

/* ---- shapes --------------------------------------------------------------- */

static int kl_setup(void *self, const mltk_shape *pred, mltk_target_kind target,
                    const mltk_shape *target_shape, int64_t n_classes, char **err)
{
    kl *k = self;
    char pb[96], tb[96];

    if (pred->ndim != 1 || pred->dim[0] < 1)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "expected a 1-d prediction of class logits, got shape %s",
                         mltk_shape_str(pred, pb, sizeof(pb)));
    if (target != MLTK_TARGET_VALUE)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "needs the teacher's logits as value targets of shape %s "
                         "per sample, but the data set has class-index targets",
                         mltk_shape_str(pred, pb, sizeof(pb)));
    if (!target_shape || !mltk_shape_equal(target_shape, pred))
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "the student predicts shape %s per sample but the "
                         "teacher's logits have shape %s; they must be equal",
                         mltk_shape_str(pred, pb, sizeof(pb)),
                         target_shape ? mltk_shape_str(target_shape, tb, sizeof(tb))
                                      : "(none)");
    if (n_classes > 0 && pred->dim[0] != n_classes)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "the model predicts %lld classes but the data set has %lld",
                         (long long)pred->dim[0], (long long)n_classes);
    k->classes = pred->dim[0];
    return MLTK_OK;
}

/* ---- forward -------------------------------------------------------------- */

/* student (B, C), teacher (B, C) -> loss (1); dpred (B, C) = grad_scale *
 * d loss / d student when wanted */
static int kl_forward(void *self, const struct mltk_backend *be,
                      const mltk_tensor *pred, const mltk_tensor *target,
                      const mltk_tensor *loss, const mltk_tensor *dpred, float grad_scale)
{
    kl *k = self;
    const int64_t rows = pred->shape.ndim > 0 ? pred->shape.dim[0] : 0;
    /* the op's gradient carries alpha through its scale; its loss does not */
    const mltk_kl_params kp = { .T = k->T, .grad_scale = k->alpha * grad_scale };
    mltk_tensor student, teacher, dstudent;
    int rc;

    if (k->classes < 1)
        return MLTK_ERR_INVALID;
    if (rows == 0)  /* an empty batch has no mean; call its loss 0 */
        return mltk_op_fill(be, loss, 0.0f);
    student = mltk_tensor_2d(pred->data, pred->dtype, rows, k->classes);
    teacher = mltk_tensor_2d(target->data, target->dtype, rows, k->classes);
    dstudent = mltk_tensor_2d(dpred ? dpred->data : NULL, pred->dtype, rows, k->classes);
    rc = mltk_op_kl_div_logits(be, loss, &dstudent, &student, &teacher, &kp);
    if (rc == MLTK_OK && k->alpha != 1.0f)
        rc = mltk_op_axpby(be, loss, k->alpha, loss, 0.0f);
    return rc;
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_loss_i kl_iface = {
    .size = sizeof(struct mltk_loss_i),
    .create = kl_create,
    .destroy = kl_destroy,
    .setup = kl_setup,
    .forward = kl_forward,
};

MLTK_PLUGIN(kl_div, MLTK_KIND_LOSS, &kl_iface)
