/* global_avgpool.c - the mean over each channel's plane: (C, H, W) -> (C).
 *
 * What this is: a layer plugin over the backend's pool2d ops (average
 * pooling with a window the size of the whole plane), as PyTorch's
 * nn.AdaptiveAvgPool2d(1) followed by a flatten computes it.  Its output
 * (B, C) feeds a dense layer directly.
 *
 * What this is not: global max pooling, or a mean over other dimensions.
 */
#include <stdlib.h>
#include <mltk/plugin.h>

/* ---- state ---------------------------------------------------------------- */

typedef struct gap {
    mltk_pool2d_desc desc;  /* N filled in per call */
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
    const struct mltk_backend *be = mltk_layer_backend(s);
    char buf[96];

    if (n_in != 1)
        return mltk_errf(err, MLTK_ERR_SHAPE, "expected 1 input, got %d", n_in);
    if (in[0].ndim != 3 || in[0].dim[1] < 1 || in[0].dim[2] < 1)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "input shape %s is not (channels, height, width)",
                         mltk_shape_str(&in[0], buf, sizeof(buf)));
    if (!be || !MLTK_BACKEND_HAS(be, pool2d_forward)
        || !MLTK_BACKEND_HAS(be, pool2d_backward))
        return mltk_errf(err, MLTK_ERR_UNSUPPORTED, "backend '%s' has no pool2d ops",
                         be ? be->name : "?");
    g->desc = (mltk_pool2d_desc){
        .N = 0, .C = in[0].dim[0], .H = in[0].dim[1], .W = in[0].dim[2],
        .R = in[0].dim[1], .S = in[0].dim[2], .P = 1, .Q = 1,
        .stride_h = in[0].dim[1], .stride_w = in[0].dim[2], .pad_h = 0, .pad_w = 0 };
    *out = mltk_shape_make(1, in[0].dim);
    return MLTK_OK;
}

/* ---- forward and backward ------------------------------------------------- */

/* x (B, C, H, W) -> y (B, C), the same memory as (B, C, 1, 1) */
static int gap_forward(void *self, const mltk_layer_run *r)
{
    gap *g = self;
    mltk_pool2d_desc d = g->desc;

    d.N = r->batch;
    return r->be->i->pool2d_forward(r->be->ctx, MLTK_POOL_AVG, r->y->data,
                                    r->x[0].data, &d);
}

/* dx (B, C, H, W) = dy / (H W) spread over each plane */
static int gap_backward(void *self, const mltk_layer_run *r)
{
    gap *g = self;
    mltk_pool2d_desc d = g->desc;

    if (!r->dx || !r->dx[0].data)
        return MLTK_OK;
    d.N = r->batch;
    return r->be->i->pool2d_backward(r->be->ctx, MLTK_POOL_AVG, r->dx[0].data,
                                     r->dy->data, r->x[0].data, r->y->data, &d);
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
