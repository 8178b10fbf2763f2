/* global_avgpool.c - the mean over each channel's plane: (C, H, W) -> (C).
 *
 * What this is: a layer plugin over the pool2d ops (average
 * pooling with a window the size of the whole plane), as PyTorch's
 * nn.AdaptiveAvgPool2d(1) followed by a flatten computes it.  Its output
 * (B, C) feeds a dense layer directly.
 *
 * What this is not: global max pooling, or a mean over other dimensions.
 */
#include <limits.h>
#include <stdlib.h>
#include <mltk/plugin.h>

/* ---- state ---------------------------------------------------------------- */

typedef struct gap {
    mltk_pool2d_params pp;  /* desc N filled in per call */
} gap;

/* ---- lifetime ------------------------------------------------------------- */

static int gap_create(void **self, const mltk_params_t *params, char **err)
{
    gap *g;

    (void)params;
    g = calloc(1, sizeof(*g));
    if (!g)
        return mltk_errf(err, MLTK_ERR_NOMEM, "global_avgpool: out of memory");
    *self = g;
    return MLTK_OK;
}

static void gap_destroy(void *self)
{
    free(self);
}

/* ---- shapes --------------------------------------------------------------- */

static int gap_setup(void *self, mltk_layer_setup_t *s, int n_in, const mltk_shape *in,
                     mltk_shape *out, char **err)
{
    gap *g = self;
    char buf[96];
    int rc;

    if (n_in != 1)
        return mltk_errf(err, MLTK_ERR_SHAPE, "expected 1 input, got %d", n_in);
    if (in[0].ndim != 3 || in[0].dim[1] < 1 || in[0].dim[2] < 1)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "input shape %s is not (channels, height, width)",
                         mltk_shape_str(&in[0], buf, sizeof(buf)));
    /* the pooling descriptor's sizes are ints */
    if (in[0].dim[0] > INT_MAX || in[0].dim[1] > INT_MAX || in[0].dim[2] > INT_MAX)
        return mltk_errf(err, MLTK_ERR_SHAPE, "input shape %s has a dimension beyond the "
                         "%d the backends take", mltk_shape_str(&in[0], buf, sizeof(buf)),
                         INT_MAX);
    rc = mltk_layer_need_op(s, MLTK_OP_POOL2D_FORWARD, MLTK_F32, err);
    if (!rc)
        rc = mltk_layer_need_op(s, MLTK_OP_POOL2D_BACKWARD, MLTK_F32, err);
    if (rc)
        return rc;
    g->pp.kind = MLTK_POOL_AVG;
    g->pp.d = (mltk_pool2d_desc){
        .N = 0, .C = in[0].dim[0], .H = in[0].dim[1], .W = in[0].dim[2],
        .R = in[0].dim[1], .S = in[0].dim[2], .P = 1, .Q = 1,
        .stride_h = in[0].dim[1], .stride_w = in[0].dim[2], .pad_h = 0, .pad_w = 0 };
    *out = mltk_shape_make(1, in[0].dim);
    return MLTK_OK;
}

/* ---- forward and backward ------------------------------------------------- */

/* an NCHW view of n samples of (c, h, w) */
static mltk_tensor nchw(void *data, int64_t n, int64_t c, int64_t h, int64_t w)
{
    const int64_t dims[4] = { n, c, h, w };
    return mltk_tensor_make(data, MLTK_F32, 4, dims);
}

/* x (B, C, H, W) -> y (B, C), the same memory as (B, C, 1, 1) */
static int gap_forward(void *self, const mltk_layer_run *r)
{
    const gap *g = self;
    mltk_pool2d_params pp = g->pp;
    const mltk_pool2d_desc *d = &pp.d;
    mltk_tensor x, y;

    if (r->batch == 0)
        return MLTK_OK;
    pp.d.N = r->batch;
    x = nchw(r->x[0].data, d->N, d->C, d->H, d->W);
    y = nchw(r->y->data, d->N, d->C, 1, 1);
    return mltk_op_pool2d_forward(r->be, &y, &x, &pp);
}

/* dx (B, C, H, W) = dy / (H W) spread over each plane */
static int gap_backward(void *self, const mltk_layer_run *r)
{
    const gap *g = self;
    mltk_pool2d_params pp = g->pp;
    const mltk_pool2d_desc *d = &pp.d;
    mltk_tensor dx, dy, x, y;

    if (!r->dx || !r->dx[0].data || r->batch == 0)
        return MLTK_OK;
    pp.d.N = r->batch;
    dx = nchw(r->dx[0].data, d->N, d->C, d->H, d->W);
    dy = nchw(r->dy->data, d->N, d->C, 1, 1);
    x = nchw(r->x[0].data, d->N, d->C, d->H, d->W);
    y = nchw(r->y->data, d->N, d->C, 1, 1);
    return mltk_op_pool2d_backward(r->be, &dx, &dy, &x, &y, &pp);
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_layer_i gap_iface = {
    .size = sizeof(struct mltk_layer_i),
    .create = gap_create,
    .destroy = gap_destroy,
    .setup = gap_setup,
    .forward = gap_forward,
    .backward = gap_backward,
    .inplace = NULL,
};

MLTK_PLUGIN(global_avgpool, MLTK_KIND_LAYER, &gap_iface)
