/* pool2d.c - 2-d max and average pooling over (C, H, W) samples, NCHW.
 *
 * What this is: one source built twice (layers/local.mk), with
 * -DPOOL_LAYER=maxpool2d or -DPOOL_LAYER=avgpool2d, over the
 * pool2d_forward and pool2d_backward ops, as PyTorch's nn.MaxPool2d and
 * nn.AvgPool2d compute them (floor mode; max pooling sends the gradient to
 * the first maximum of each window, padding never wins; average pooling
 * counts padded positions in the divisor, count_include_pad).  The stride
 * defaults to the kernel size; padding may be at most half the kernel, as
 * PyTorch requires.
 *
 * What this is not: ceil mode, dilation, or adaptive pooling.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <mltk/plugin.h>

#define maxpool2d_KIND MLTK_POOL_MAX
#define avgpool2d_KIND MLTK_POOL_AVG
#if !defined(POOL_LAYER)
#error "build with -DPOOL_LAYER=maxpool2d|avgpool2d"
#endif
#define POOL_CAT_(a, b) a##b
#define POOL_CAT(a, b) POOL_CAT_(a, b)
#define POOL_KIND POOL_CAT(POOL_LAYER, _KIND)
#define POOL_STR_(x) #x
#define POOL_STR(x) POOL_STR_(x)
/* expands POOL_LAYER before MLTK_PLUGIN pastes it */
#define POOL_PLUGIN(name, kind, iface) MLTK_PLUGIN(name, kind, iface)

/* ---- state ---------------------------------------------------------------- */

typedef struct pool2d {
    int64_t R, S, sh, sw, ph, pw;
    mltk_pool2d_params pp;  /* desc N filled in per call */
} pool2d;

/* ---- lifetime ------------------------------------------------------------- */

/* an `ints` key of one value (both dimensions) or two (height, width) */
static int read_pair(const mltk_params_t *p, const char *key, int64_t *a, int64_t *b,
                     char **err)
{
    int64_t v[3];
    int n = mltk_params_ints(p, key, v, 3);

    if (n == 1) {
        *a = *b = v[0];
        return MLTK_OK;
    }
    if (n == 2) {
        *a = v[0];
        *b = v[1];
        return MLTK_OK;
    }
    return mltk_errf(err, MLTK_ERR_CONFIG,
                     "%s must be one integer or two (height, width), got %d values",
                     key, n);
}

static int pool_create(void **self, const mltk_params_t *params, char **err)
{
    pool2d p, *out;
    int rc;

    memset(&p, 0, sizeof(p));
    if ((rc = read_pair(params, "kernel", &p.R, &p.S, err)))
        return rc;
    p.sh = p.R;
    p.sw = p.S;
    if (mltk_params_has(params, "stride")
        && (rc = read_pair(params, "stride", &p.sh, &p.sw, err)))
        return rc;
    if ((rc = read_pair(params, "padding", &p.ph, &p.pw, err)))
        return rc;
    if (p.R < 1 || p.S < 1 || p.sh < 1 || p.sw < 1 || p.ph < 0 || p.pw < 0)
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "kernel and stride must be >= 1, padding >= 0");
    if (p.R > INT_MAX || p.S > INT_MAX || p.ph > INT_MAX / 2 || p.pw > INT_MAX / 2)
        return mltk_errf(err, MLTK_ERR_CONFIG, "kernel and padding must be <= %d", INT_MAX / 2);
    if (2 * p.ph > p.R || 2 * p.pw > p.S)
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "padding %lld,%lld is more than half the kernel %lldx%lld",
                         (long long)p.ph, (long long)p.pw, (long long)p.R,
                         (long long)p.S);
    out = malloc(sizeof(*out));
    if (!out)
        return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", POOL_STR(POOL_LAYER));
    *out = p;
    *self = out;
    return MLTK_OK;
}

static void pool_destroy(void *self)
{
    free(self);
}

/* ---- shapes --------------------------------------------------------------- */

static int pool_setup(void *self, mltk_layer_setup_t *s, int n_in,
                      const mltk_shape *in, mltk_shape *out, char **err)
{
    pool2d *p = self;
    char buf[96];
    int64_t H, W, eh, ew, dims[3];
    int rc;

    if (n_in != 1)
        return mltk_errf(err, MLTK_ERR_SHAPE, "expected 1 input, got %d", n_in);
    if (in[0].ndim != 3)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "input shape %s is not (channels, height, width)",
                         mltk_shape_str(&in[0], buf, sizeof(buf)));
    rc = mltk_layer_need_op(s, MLTK_OP_POOL2D_FORWARD, MLTK_F32, err);
    if (!rc)
        rc = mltk_layer_need_op(s, MLTK_OP_POOL2D_BACKWARD, MLTK_F32, err);
    if (rc)
        return rc;
    H = in[0].dim[1];
    W = in[0].dim[2];
    /* the backends' sizes are ints; the descriptor bounds kernel, stride
     * and padding, so that the extents below cannot overflow */
    if (in[0].dim[0] > INT_MAX || H > INT_MAX || W > INT_MAX)
        return mltk_errf(err, MLTK_ERR_SHAPE, "input shape %s has a dimension beyond the "
                         "%d the backends take", mltk_shape_str(&in[0], buf, sizeof(buf)),
                         INT_MAX);
    if (mltk_size_add(&eh, H, 2 * p->ph) || mltk_size_add(&ew, W, 2 * p->pw))
        return mltk_errf(err, MLTK_ERR_SHAPE, "the padded input overflows");
    eh -= p->R;
    ew -= p->S;
    if (eh < 0 || ew < 0)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "input %lldx%lld (padding %lld,%lld) is smaller than the "
                         "kernel %lldx%lld", (long long)H, (long long)W,
                         (long long)p->ph, (long long)p->pw, (long long)p->R,
                         (long long)p->S);
    p->pp.kind = POOL_KIND;
    p->pp.d = (mltk_pool2d_desc){
        .N = 0, .C = in[0].dim[0], .H = H, .W = W, .R = p->R, .S = p->S,
        .P = eh / p->sh + 1, .Q = ew / p->sw + 1, .stride_h = p->sh,
        .stride_w = p->sw, .pad_h = p->ph, .pad_w = p->pw };
    dims[0] = in[0].dim[0];
    dims[1] = p->pp.d.P;
    dims[2] = p->pp.d.Q;
    *out = mltk_shape_make(3, dims);
    return MLTK_OK;
}

/* ---- forward and backward ------------------------------------------------- */

/* an NCHW view of n samples of (c, h, w) */
static mltk_tensor nchw(void *data, int64_t n, int64_t c, int64_t h, int64_t w)
{
    const int64_t dims[4] = { n, c, h, w };
    return mltk_tensor_make(data, MLTK_F32, 4, dims);
}

/* x (B, C, H, W) -> y (B, C, P, Q) */
static int pool_forward(void *self, const mltk_layer_run *r)
{
    const pool2d *p = self;
    mltk_pool2d_params pp = p->pp;
    const mltk_pool2d_desc *d = &pp.d;
    mltk_tensor x, y;

    if (r->batch == 0)
        return MLTK_OK;
    pp.d.N = r->batch;
    x = nchw(r->x[0].data, d->N, d->C, d->H, d->W);
    y = nchw(r->y->data, d->N, d->C, d->P, d->Q);
    return mltk_op_pool2d_forward(r->be, &y, &x, &pp);
}

/* dy (B, C, P, Q) -> dx (B, C, H, W), max pooling's routed by x and y */
static int pool_backward(void *self, const mltk_layer_run *r)
{
    const pool2d *p = self;
    mltk_pool2d_params pp = p->pp;
    const mltk_pool2d_desc *d = &pp.d;
    mltk_tensor dx, dy, x, y;

    if (!r->dx || !r->dx[0].data || r->batch == 0)
        return MLTK_OK;
    pp.d.N = r->batch;
    dx = nchw(r->dx[0].data, d->N, d->C, d->H, d->W);
    dy = nchw(r->dy->data, d->N, d->C, d->P, d->Q);
    x = nchw(r->x[0].data, d->N, d->C, d->H, d->W);
    y = nchw(r->y->data, d->N, d->C, d->P, d->Q);
    return mltk_op_pool2d_backward(r->be, &dx, &dy, &x, &y, &pp);
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_layer_i pool_iface = {
    .size = sizeof(struct mltk_layer_i),
    .create = pool_create,
    .destroy = pool_destroy,
    .setup = pool_setup,
    .forward = pool_forward,
    .backward = pool_backward,
    .inplace = NULL,
};

POOL_PLUGIN(POOL_LAYER, MLTK_KIND_LAYER, &pool_iface)
