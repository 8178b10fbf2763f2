/* add.c - the elementwise sum of several inputs, y = x0 + x1 + ...
 *
 * What this is: the join of a residual block.  The layer takes two or
 * more named inputs (`input = conv2, shortcut`) of one per-sample shape
 * and adds them; the gradient of the sum with respect to every input is
 * the output gradient itself, so backward copies dy to each input that
 * wants a gradient.  Written against the backend contract (the copy
 * memory call and the axpby op), so it runs on every backend.
 *
 * What this is not: a broadcasting add or a weighted sum.  Shapes must
 * match exactly; a projection shortcut (1x1 convolution) is a layer of
 * its own in the config.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mltk/plugin.h>

/* ---- state ---------------------------------------------------------------- */

typedef struct add {
    int64_t numel;   /* per-sample elements, known after setup */
} add;

/* ---- lifetime ------------------------------------------------------------- */

static int add_create(void **self, const mltk_params_t *params, char **err)
{
    add *a = calloc(1, sizeof(*a));

    (void)params;
    if (!a)
        return mltk_errf(err, MLTK_ERR_NOMEM, "add: out of memory");
    *self = a;
    return MLTK_OK;
}

static void add_destroy(void *self)
{
    free(self);
}

/* ---- shapes --------------------------------------------------------------- */

/* "(32, 14, 14) and (64, 7, 7)" / "(3), (3) and (4)" for messages */
static void shapes_str(char *buf, size_t len, int n_in, const mltk_shape *in)
{
    size_t used = 0;

    buf[0] = '\0';
    for (int i = 0; i < n_in && used + 1 < len; i++) {
        char s[96];
        const char *sep = i == 0 ? "" : i + 1 == n_in ? " and " : ", ";
        int w = snprintf(buf + used, len - used, "%s%s", sep,
                         mltk_shape_str(&in[i], s, sizeof(s)));
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

static int add_setup(void *self, mltk_layer_setup_t *s, int n_in,
                     const mltk_shape *in, mltk_shape *out, char **err)
{
    add *a = self;
    char buf[512];
    int rc;

    if (n_in < 2)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "expected at least 2 inputs, got %d (name them: "
                         "input = a, b)", n_in);
    for (int i = 1; i < n_in; i++) {
        if (!mltk_shape_equal(&in[i], &in[0])) {
            shapes_str(buf, sizeof(buf), n_in, in);
            return mltk_errf(err, MLTK_ERR_SHAPE,
                             "inputs must all have the same shape, got %s "
                             "(input %d differs from input 1; a shortcut that "
                             "changes shape needs a projection layer)",
                             buf, i + 1);
        }
    }
    rc = mltk_layer_need_op(s, MLTK_OP_AXPBY, MLTK_F32, err);
    if (rc)
        return rc;
    if (mltk_size_numel(&a->numel, &in[0]))
        return mltk_errf(err, MLTK_ERR_SHAPE, "the input's size overflows");
    *out = in[0];
    return MLTK_OK;
}

/* ---- forward and backward ------------------------------------------------- */

/* x[0..n) (B, ...) -> y (B, ...) = sum of the inputs */
static int add_forward(void *self, const mltk_layer_run *r)
{
    add *a = self;
    const struct mltk_backend *be = r->be;
    const int64_t n = r->batch * a->numel;
    const mltk_tensor y = mltk_tensor_1d(r->y->data, MLTK_F32, n);
    int rc;

    if (n == 0)
        return MLTK_OK;
    /* y = x0, then y += x_i */
    rc = mltk_be_copy(be, r->y->data, r->x[0].data, (size_t)n * sizeof(float));
    for (int i = 1; rc == MLTK_OK && i < r->n_in; i++) {
        const mltk_tensor x = mltk_tensor_1d(r->x[i].data, MLTK_F32, n);
        rc = mltk_op_axpby(be, &y, 1.0f, &x, 1.0f);
    }
    return rc;
}

/* dy (B, ...) -> dx[i] = dy for every input that wants a gradient */
static int add_backward(void *self, const mltk_layer_run *r)
{
    add *a = self;
    const struct mltk_backend *be = r->be;
    const int64_t n = r->batch * a->numel;
    int rc = MLTK_OK;

    if (n == 0 || !r->dx)
        return MLTK_OK;
    for (int i = 0; rc == MLTK_OK && i < r->n_in; i++)
        if (r->dx[i].data)
            rc = mltk_be_copy(be, r->dx[i].data, r->dy->data, (size_t)n * sizeof(float));
    return rc;
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_layer_i add_iface = {
    .size = sizeof(struct mltk_layer_i),
    .create = add_create,
    .destroy = add_destroy,
    .setup = add_setup,
    .forward = add_forward,
    .backward = add_backward,
    .inplace = NULL,
};

MLTK_PLUGIN(add, MLTK_KIND_LAYER, &add_iface)
