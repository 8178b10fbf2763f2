/* conv2d.c - the 2-d convolution layer, y = act(conv(x, W) + b), NCHW.
 *
 * What this is: a layer plugin over the conv2d_forward,
 * conv2d_backward_data and conv2d_backward_filter ops (PyTorch's
 * nn.Conv2d: cross-correlation with stride, padding, dilation and groups).
 * Input per sample (C, H, W), output (K, P, Q), weight (K, C/groups, R, S),
 * bias (K).  The optional activation is fused into the forward op, as
 * dense does; backward derives its derivative from the output y.  The
 * backend's scratch (mltk_op_conv2d_workspace() for the largest batch) is
 * declared as a layer buffer, so a training step allocates nothing.
 *
 * Under [run] precision = bf16 (mltk_layer_precision) the three conv ops
 * take bf16 operands and produce f32: forward casts x to bf16 (kept for
 * backward: the saved activation the filter gradient reads) and convolves
 * it with the bf16 copy of the weight (mltk_layer_run.params_lp), with the
 * f32 bias and activation fused; backward casts the f32 pre-activation
 * gradient dz to bf16 for dW (with x_lp) and dx (with the weight's copy).
 * The bias gradient is summed from the f32 dz (a product with a vector of
 * ones, then a sum over the batch), so it sees no bf16 rounding.
 *
 * Sizes: the descriptor bounds kernel, stride, dilation, filters and
 * groups; the padding, a string, is bounded here (CONV_MAX_PAD, `same`
 * included); the output size, the per-image sizes the backends take as
 * ints and every buffer size are computed in checked arithmetic
 * (mltk_size_mul, ...), so an absurd value is an error naming the key or
 * the layer, never a wrapped-around size.
 *
 * What this is not: a transposed convolution, or asymmetric padding:
 * `padding = same` needs an odd effective kernel extent (dilation *
 * (kernel - 1) even), so that the padding splits evenly.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mltk/plugin.h>

/* ---- state ---------------------------------------------------------------- */

/* The most padding on a side, as conv2d.ini's `max` bounds kernel, stride
 * and dilation (padding is a string the layer parses, which the
 * descriptor's range cannot check) */
#define CONV_MAX_PAD 4096

typedef struct conv2d {
    int64_t  K, R, S;            /* filters, kernel height and width */
    int64_t  sh, sw, dh, dw;     /* stride, dilation */
    int64_t  ph, pw;             /* padding (resolved for `same` in setup) */
    int      pad_mode;           /* 0 explicit, 1 same */
    int64_t  groups;
    int      bias;
    mltk_act act;
    float    alpha;
    char     init[32], bias_init[16];
    double   init_std;
    mltk_conv2d_params cp;       /* desc N filled in per call */
    int      p_weight, p_bias;   /* param indices (bias -1 if none) */
    int      b_ws, b_dz;         /* buffer indices, -1 if none */
    mltk_dtype lp;               /* dtype of the conv ops' operands: f32 or bf16 */
    int      b_xlp, b_dzlp;      /* low precision: x, dz in lp (-1 if f32) */
    int      b_ones, b_dbt;      /* low precision with a bias: ones (P Q) and the
                                  * per-image channel sums (N, K), f32 */
} conv2d;

static const struct {
    const char *name;
    mltk_act    act;
} conv2d_acts[] = {
    { "none", MLTK_ACT_NONE },
    { "relu", MLTK_ACT_RELU },
    { "leaky_relu", MLTK_ACT_LEAKY_RELU },
    { "sigmoid", MLTK_ACT_SIGMOID },
    { "tanh", MLTK_ACT_TANH },
};

/* ---- parameters ----------------------------------------------------------- */

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

/* padding: "same", "valid", "N" or "H,W" with integers in [0, CONV_MAX_PAD] */
static int read_padding(conv2d *c, const char *text, char **err)
{
    char *end;
    long long a, b;
    int range;

    c->pad_mode = 0;
    c->ph = c->pw = 0;
    if (strcmp(text, "same") == 0) {
        c->pad_mode = 1;
        return MLTK_OK;
    }
    if (strcmp(text, "valid") == 0)
        return MLTK_OK;
    errno = 0;
    a = strtoll(text, &end, 10);
    range = errno == ERANGE;
    if (end == text)
        goto bad;
    while (*end == ' ')
        end++;
    if (*end == '\0') {
        b = a;
    } else if (*end == ',') {
        const char *t = end + 1;
        b = strtoll(t, &end, 10);
        range |= errno == ERANGE;
        if (end == t)
            goto bad;
        while (*end == ' ')
            end++;
        if (*end != '\0')
            goto bad;
    } else {
        goto bad;
    }
    if (a < 0 || b < 0)
        return mltk_errf(err, MLTK_ERR_CONFIG, "padding must be >= 0, not '%s'", text);
    if (range || a > CONV_MAX_PAD || b > CONV_MAX_PAD)
        return mltk_errf(err, MLTK_ERR_CONFIG, "key 'padding' values must be <= %d, got '%s'",
                         CONV_MAX_PAD, text);
    c->ph = a;
    c->pw = b;
    return MLTK_OK;
bad:
    return mltk_errf(err, MLTK_ERR_CONFIG,
                     "padding '%s' is not an integer, 'H,W', 'same' or 'valid'", text);
}

/* ---- lifetime ------------------------------------------------------------- */

static int conv2d_create(void **self, const mltk_params_t *params, char **err)
{
    const char *act = mltk_params_str(params, "activation");
    const char *init = mltk_params_str(params, "init");
    const char *binit = mltk_params_str(params, "bias_init");
    size_t i, n_acts = sizeof(conv2d_acts) / sizeof(conv2d_acts[0]);
    conv2d c, *out;
    int rc;

    memset(&c, 0, sizeof(c));
    for (i = 0; i < n_acts; i++)
        if (act && strcmp(act, conv2d_acts[i].name) == 0)
            break;
    if (i == n_acts)
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "unknown activation '%s' (expected none, relu, "
                         "leaky_relu, sigmoid or tanh)", act ? act : "");
    c.act = conv2d_acts[i].act;
    c.alpha = (float)mltk_params_float(params, "negative_slope");
    if (c.act == MLTK_ACT_LEAKY_RELU && !(c.alpha >= 0.0f))
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "negative_slope must be >= 0 (the gradient is "
                         "derived from the output's sign)");
    c.K = mltk_params_int(params, "filters");
    c.groups = mltk_params_int(params, "groups");
    c.bias = mltk_params_bool(params, "bias");
    if (c.K < 1 || c.groups < 1)
        return mltk_errf(err, MLTK_ERR_CONFIG, "filters and groups must be >= 1");
    if ((rc = read_pair(params, "kernel", &c.R, &c.S, err))
        || (rc = read_pair(params, "stride", &c.sh, &c.sw, err))
        || (rc = read_pair(params, "dilation", &c.dh, &c.dw, err)))
        return rc;
    if (c.R < 1 || c.S < 1 || c.sh < 1 || c.sw < 1 || c.dh < 1 || c.dw < 1)
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "kernel, stride and dilation must be >= 1");
    /* the descriptor bounds them (conv2d.ini, max); this keeps dh (R - 1)
     * and dw (S - 1) below from overflowing whatever a descriptor says */
    if (c.R > INT_MAX || c.S > INT_MAX || c.dh > INT_MAX || c.dw > INT_MAX)
        return mltk_errf(err, MLTK_ERR_CONFIG, "kernel and dilation must be <= %d", INT_MAX);
    rc = read_padding(&c, mltk_params_str(params, "padding"), err);
    if (rc)
        return rc;
    if (c.pad_mode == 1) {
        if (c.sh != 1 || c.sw != 1)
            return mltk_errf(err, MLTK_ERR_CONFIG,
                             "padding = same needs stride 1 (stride is %lld,%lld); "
                             "give the padding as numbers instead",
                             (long long)c.sh, (long long)c.sw);
        if ((c.dh * (c.R - 1)) % 2 || (c.dw * (c.S - 1)) % 2)
            return mltk_errf(err, MLTK_ERR_CONFIG,
                             "padding = same needs an odd kernel extent "
                             "(kernel %lldx%lld, dilation %lld,%lld would need "
                             "uneven padding)", (long long)c.R, (long long)c.S,
                             (long long)c.dh, (long long)c.dw);
        c.ph = c.dh * (c.R - 1) / 2;
        c.pw = c.dw * (c.S - 1) / 2;
        if (c.ph > CONV_MAX_PAD || c.pw > CONV_MAX_PAD)
            return mltk_errf(err, MLTK_ERR_CONFIG,
                             "padding = same pads %lld,%lld (kernel %lldx%lld, dilation "
                             "%lld,%lld), more than %d", (long long)c.ph, (long long)c.pw,
                             (long long)c.R, (long long)c.S, (long long)c.dh,
                             (long long)c.dw, CONV_MAX_PAD);
    }
    snprintf(c.init, sizeof(c.init), "%s", init ? init : "default");
    snprintf(c.bias_init, sizeof(c.bias_init), "%s", binit ? binit : "default");
    c.init_std = mltk_params_float(params, "init_std");
    c.p_weight = c.p_bias = c.b_ws = c.b_dz = -1;
    c.b_xlp = c.b_dzlp = c.b_ones = c.b_dbt = -1;
    c.lp = MLTK_F32;
    out = malloc(sizeof(*out));
    if (!out)
        return mltk_errf(err, MLTK_ERR_NOMEM, "conv2d: out of memory");
    *out = c;
    *self = out;
    return MLTK_OK;
}

static void conv2d_destroy(void *self)
{
    free(self);
}

/* ---- shapes --------------------------------------------------------------- */

/* the ops forward and backward run, so that a backend lacking one is
 * refused when the session is built */
static int conv2d_need_ops(const conv2d *c, mltk_layer_setup_t *s, char **err)
{
    static const mltk_op ops[] = { MLTK_OP_CONV2D_FORWARD, MLTK_OP_CONV2D_BACKWARD_DATA,
                                   MLTK_OP_CONV2D_BACKWARD_FILTER, MLTK_OP_FILL };
    int rc = MLTK_OK;

    for (size_t i = 0; !rc && i < sizeof(ops) / sizeof(ops[0]); i++)
        rc = mltk_layer_need_op(s, ops[i], ops[i] == MLTK_OP_FILL ? MLTK_F32 : c->lp, err);
    if (!rc && c->act != MLTK_ACT_NONE)
        rc = mltk_layer_need_op(s, MLTK_OP_ACT_BACKWARD, MLTK_F32, err);
    if (!rc && c->lp != MLTK_F32)  /* f32 -> lp: the cast's dtype is its input's */
        rc = mltk_layer_need_op(s, MLTK_OP_CAST, MLTK_F32, err);
    if (!rc && c->lp != MLTK_F32 && c->bias)
        rc = mltk_layer_need_op(s, MLTK_OP_GEMM, MLTK_F32, err);
    if (!rc && c->lp != MLTK_F32 && c->bias)
        rc = mltk_layer_need_op(s, MLTK_OP_SUM_ROWS, MLTK_F32, err);
    return rc;
}

/* n elements of es bytes in *bytes, or a message naming what */
static int conv2d_bytes(size_t *bytes, int64_t a, int64_t b, size_t es, const char *what,
                        char **err)
{
    int64_t n;
    if (mltk_size_mul(&n, a, b) || mltk_size_bytes(bytes, n, es))
        return mltk_errf(err, MLTK_ERR_SHAPE, "the %s (%lld x %lld elements) is beyond the "
                         "sizes a model may use", what, (long long)a, (long long)b);
    return MLTK_OK;
}

/* P and Q from the input's H and W, in checked arithmetic: MLTK_OK, or an
 * error naming the input, the padding and the kernel's extent.  create
 * bounds kernel and dilation by INT_MAX, so the extents fit; padding
 * (`same`: at most half an extent) and the input are added checked. */
static int conv2d_out_size(const conv2d *c, int64_t H, int64_t W, int64_t *P, int64_t *Q,
                           char **err)
{
    const int64_t xh = c->dh * (c->R - 1) + 1, xw = c->dw * (c->S - 1) + 1;
    int64_t hp, wp;
    if (mltk_size_add(&hp, H, 2 * c->ph) || mltk_size_add(&wp, W, 2 * c->pw))
        return mltk_errf(err, MLTK_ERR_SHAPE, "input %lldx%lld padded by %lld,%lld "
                         "overflows", (long long)H, (long long)W, (long long)c->ph,
                         (long long)c->pw);
    if (hp < xh || wp < xw)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "input %lldx%lld (padding %lld,%lld) is smaller than the "
                         "kernel's extent %lldx%lld (kernel %lldx%lld, dilation "
                         "%lld,%lld)", (long long)H, (long long)W, (long long)c->ph,
                         (long long)c->pw, (long long)xh, (long long)xw, (long long)c->R,
                         (long long)c->S, (long long)c->dh, (long long)c->dw);
    *P = (hp - xh) / c->sh + 1;
    *Q = (wp - xw) / c->sw + 1;
    return MLTK_OK;
}

/* the per-image sizes of the convolution within the int range the
 * backends take (the core's conv2d contract): C R S, H W, P Q, C H W and
 * K P Q; checked in overflow-free arithmetic */
static int conv2d_fits(const mltk_conv2d_desc *d, char **err)
{
    static const char *const what[] = {
        "each filter (channels / groups x kernel area)", "the input plane (height x width)",
        "the output plane (height x width)", "each input image (channels x height x width)",
        "each output image (filters x height x width)" };
    int64_t a[5][3] = { { d->C / d->groups, d->R, d->S }, { 1, d->H, d->W },
                        { 1, d->P, d->Q }, { d->C, d->H, d->W }, { d->K, d->P, d->Q } };
    for (int i = 0; i < 5; i++) {
        int64_t n;
        if (mltk_size_mul(&n, a[i][0], a[i][1]) || mltk_size_mul(&n, n, a[i][2])
            || n > INT_MAX)
            return mltk_errf(err, MLTK_ERR_SHAPE,
                             "%s has %lld x %lld x %lld elements, more than the %d the "
                             "backends take (kernel %lldx%lld, padding %lld,%lld, stride "
                             "%lld,%lld, dilation %lld,%lld, %lld filters)", what[i],
                             (long long)a[i][0], (long long)a[i][1], (long long)a[i][2],
                             INT_MAX, (long long)d->R, (long long)d->S, (long long)d->pad_h,
                             (long long)d->pad_w, (long long)d->stride_h,
                             (long long)d->stride_w, (long long)d->dil_h,
                             (long long)d->dil_w, (long long)d->K);
    }
    return MLTK_OK;
}

static int conv2d_setup(void *self, mltk_layer_setup_t *s, int n_in,
                        const mltk_shape *in, mltk_shape *out, char **err)
{
    conv2d *c = self;
    const struct mltk_backend *be = mltk_layer_backend(s);
    mltk_conv2d_desc *d = &c->cp.d;
    char buf[96];
    int64_t C, H, W, P = 0, Q = 0, dims[4];
    double fan_in, fan_out;
    mltk_init winit, binit;
    mltk_shape shp;
    int rc;

    if (n_in != 1)
        return mltk_errf(err, MLTK_ERR_SHAPE, "expected 1 input, got %d", n_in);
    if (in[0].ndim != 3)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "input shape %s is not (channels, height, width)",
                         mltk_shape_str(&in[0], buf, sizeof(buf)));
    if (!be)
        return mltk_errf(err, MLTK_ERR_UNSUPPORTED,
                         "conv2d needs its backend at setup (for the workspace size)");
    c->lp = mltk_layer_precision(s);
    rc = conv2d_need_ops(c, s, err);
    if (rc)
        return rc;
    C = in[0].dim[0];
    H = in[0].dim[1];
    W = in[0].dim[2];
    if (C % c->groups || c->K % c->groups)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "groups = %lld must divide both the input channels (%lld) "
                         "and filters (%lld)", (long long)c->groups, (long long)C,
                         (long long)c->K);
    rc = conv2d_out_size(c, H, W, &P, &Q, err);
    if (rc)
        return rc;
    *d = (mltk_conv2d_desc){
        .N = mltk_layer_max_batch(s), .C = C, .H = H, .W = W, .K = c->K, .R = c->R,
        .S = c->S, .P = P, .Q = Q, .stride_h = c->sh,
        .stride_w = c->sw, .pad_h = c->ph, .pad_w = c->pw, .dil_h = c->dh,
        .dil_w = c->dw, .groups = c->groups };
    rc = conv2d_fits(d, err);
    if (rc)
        return rc;
    c->cp.act = c->act;
    c->cp.act_alpha = c->alpha;

    /* PyTorch's fans for (K, C/g, R, S) (each within INT_MAX * K: conv2d_fits) */
    fan_in = (double)(C / c->groups) * (double)c->R * (double)c->S;
    fan_out = (double)c->K * (double)c->R * (double)c->S;
    rc = mltk_init_named(c->init, fan_in, fan_out, c->init_std, &winit, err);
    if (rc)
        return rc;
    rc = mltk_init_named(strcmp(c->bias_init, "zeros") == 0 ? "zeros" : "default",
                         fan_in, fan_out, 0.0, &binit, err);
    if (rc)
        return rc;
    dims[0] = c->K;
    dims[1] = C / c->groups;
    dims[2] = c->R;
    dims[3] = c->S;
    shp = mltk_shape_make(4, dims);
    rc = mltk_layer_add_param(s, "weight", &shp, winit);
    if (rc < 0)
        return mltk_errf(err, rc, "cannot declare the weight");
    c->p_weight = rc;
    c->p_bias = -1;
    if (c->bias) {
        shp = mltk_shape_make(1, dims);
        rc = mltk_layer_add_param(s, "bias", &shp, binit);
        if (rc < 0)
            return mltk_errf(err, rc, "cannot declare the bias");
        c->p_bias = rc;
    }

    c->b_ws = c->b_dz = c->b_xlp = c->b_dzlp = c->b_ones = c->b_dbt = -1;
    size_t ws = mltk_op_conv2d_workspace(be, &c->cp, c->lp);
    if (ws == SIZE_MAX)  /* more than a size_t holds (the backend's answer) */
        return mltk_errf(err, MLTK_ERR_SHAPE, "the backend's workspace for this convolution "
                         "is beyond the sizes a model may use");
    if (ws > 0) {
        rc = mltk_layer_add_buffer(s, "workspace", ws);
        if (rc < 0)
            return mltk_errf(err, rc, "cannot declare the workspace (%zu bytes)", ws);
        c->b_ws = rc;
    }
    /* K P Q and C H W are at most INT_MAX (conv2d_fits) */
    if (c->act != MLTK_ACT_NONE) {
        size_t bytes;
        rc = conv2d_bytes(&bytes, d->N, d->K * d->P * d->Q, sizeof(float), "gradient buffer",
                          err);
        if (rc)
            return rc;
        rc = mltk_layer_add_buffer(s, "dz", bytes);
        if (rc < 0)
            return mltk_errf(err, rc, "cannot declare the gradient buffer");
        c->b_dz = rc;
    }
    if (c->lp != MLTK_F32) {
        size_t es = mltk_dtype_size(c->lp), xb, zb, ob, rb;
        if ((rc = conv2d_bytes(&xb, d->N, C * H * W, es, "input copy", err))
            || (rc = conv2d_bytes(&zb, d->N, d->K * d->P * d->Q, es, "gradient copy", err))
            || (rc = conv2d_bytes(&ob, 1, d->P * d->Q, sizeof(float), "bias buffer", err))
            || (rc = conv2d_bytes(&rb, d->N, d->K, sizeof(float), "bias buffer", err)))
            return rc;
        rc = mltk_layer_add_buffer(s, "x_lp", xb);
        if (rc >= 0)
            c->b_xlp = rc;
        if (rc >= 0)
            rc = mltk_layer_add_buffer(s, "dz_lp", zb);
        if (rc >= 0)
            c->b_dzlp = rc;
        if (rc >= 0 && c->bias) {
            rc = mltk_layer_add_buffer(s, "ones", ob);
            if (rc >= 0)
                c->b_ones = rc;
            if (rc >= 0)
                rc = mltk_layer_add_buffer(s, "db_rows", rb);
            if (rc >= 0)
                c->b_dbt = rc;
        }
        if (rc < 0)
            return mltk_errf(err, rc, "cannot declare the %s buffers",
                             mltk_dtype_name(c->lp));
    }
    dims[0] = c->K;
    dims[1] = d->P;
    dims[2] = d->Q;
    *out = mltk_shape_make(3, dims);
    return MLTK_OK;
}

/* ---- forward -------------------------------------------------------------- */

/* an NCHW view of n samples of (c, h, w) */
static mltk_tensor nchw(void *data, int64_t n, int64_t c, int64_t h, int64_t w)
{
    const int64_t dims[4] = { n, c, h, w };
    return mltk_tensor_make(data, MLTK_F32, 4, dims);
}

/* the same view in dtype dt */
static mltk_tensor nchw_dt(void *data, mltk_dtype dt, int64_t n, int64_t c, int64_t h,
                           int64_t w)
{
    const int64_t dims[4] = { n, c, h, w };
    return mltk_tensor_make(data, dt, 4, dims);
}

/* the workspace buffer and its size (NULL, 0 when none) */
static void *conv2d_ws(const conv2d *c, const mltk_layer_run *r, size_t *bytes)
{
    if (c->b_ws < 0) {
        *bytes = 0;
        return NULL;
    }
    *bytes = (size_t)mltk_tensor_numel(&r->buffers[c->b_ws]);
    return r->buffers[c->b_ws].data;
}

/* x (B, C, H, W), weight (K, C/g, R, S), bias (K) -> y (B, K, P, Q); in
 * low precision x is cast to x_lp first and convolved with the weight's
 * lp copy */
static int conv2d_forward(void *self, const mltk_layer_run *r)
{
    conv2d *c = self;
    mltk_conv2d_params p = c->cp;
    const mltk_conv2d_desc *d = &p.d;
    const mltk_tensor *w = &r->params[c->p_weight];
    mltk_tensor x, y;
    size_t ws_bytes;
    void *ws = conv2d_ws(c, r, &ws_bytes);
    int rc;

    if (r->batch == 0)
        return MLTK_OK;
    p.d.N = r->batch;
    x = nchw(r->x[0].data, d->N, d->C, d->H, d->W);
    y = nchw(r->y->data, d->N, d->K, d->P, d->Q);
    if (c->lp != MLTK_F32) {
        const mltk_tensor xf = x;
        if (!r->params_lp)
            return MLTK_ERR_INVALID;  /* the core hands lp copies in lp runs */
        w = &r->params_lp[c->p_weight];
        x = nchw_dt(r->buffers[c->b_xlp].data, c->lp, d->N, d->C, d->H, d->W);
        rc = mltk_op_cast(r->be, &x, &xf);
        if (rc)
            return rc;
    }
    return mltk_op_conv2d_forward(r->be, &y, &x, w,
                                  c->p_bias >= 0 ? &r->params[c->p_bias] : NULL, &p,
                                  ws, ws_bytes);
}

/* ---- backward ------------------------------------------------------------- */

/* db (K) = sum over n, p, q of dz (N, K, P, Q), in f32: the product of dz
 * as (N K, P Q) with ones (P Q) gives (N, K), summed over the rows */
static int conv2d_bias_grad(const conv2d *c, const mltk_layer_run *r, const mltk_tensor *db,
                            const mltk_tensor *dz, const mltk_conv2d_desc *d)
{
    const int64_t pq = d->P * d->Q;
    const mltk_gemm_params g = { .ta = 0, .tb = 0, .alpha = 1.0f, .beta = 0.0f,
                                 .act = MLTK_ACT_NONE };
    const mltk_tensor a = mltk_tensor_2d(dz->data, MLTK_F32, d->N * d->K, pq);
    const mltk_tensor ones = mltk_tensor_2d(r->buffers[c->b_ones].data, MLTK_F32, pq, 1);
    const mltk_tensor rows = mltk_tensor_2d(r->buffers[c->b_dbt].data, MLTK_F32,
                                            d->N * d->K, 1);
    const mltk_tensor rows2 = mltk_tensor_2d(r->buffers[c->b_dbt].data, MLTK_F32, d->N, d->K);
    int rc = mltk_op_fill(r->be, &ones, 1.0f);

    if (!rc)
        rc = mltk_op_gemm(r->be, &rows, &a, &ones, NULL, &g);
    if (!rc)
        rc = mltk_op_sum_rows(r->be, db, &rows2, 0.0f);
    return rc;
}

/* dz = dy * act'(.) from y; dW, db from dz and x; dx from dz and W (in
 * low precision: dW from dz_lp and x_lp, dx from dz_lp and the weight's
 * lp copy, db from the f32 dz) */
static int conv2d_backward(void *self, const mltk_layer_run *r)
{
    conv2d *c = self;
    const struct mltk_backend *be = r->be;
    mltk_conv2d_params p = c->cp;
    const mltk_conv2d_desc *d = &p.d;
    const mltk_tensor *dw = &r->grads[c->p_weight];
    const mltk_tensor *db = c->p_bias >= 0 ? &r->grads[c->p_bias] : NULL;
    mltk_tensor x, dy, dz;
    size_t ws_bytes;
    void *ws = conv2d_ws(c, r, &ws_bytes);
    int rc;

    if (r->batch == 0) {  /* no samples: the parameter gradients are zero */
        rc = mltk_op_fill(be, dw, 0.0f);
        if (!rc && db)
            rc = mltk_op_fill(be, db, 0.0f);
        return rc;
    }
    p.d.N = r->batch;
    x = nchw(r->x[0].data, d->N, d->C, d->H, d->W);
    dy = nchw(r->dy->data, d->N, d->K, d->P, d->Q);
    dz = dy;
    if (c->act != MLTK_ACT_NONE) {
        const mltk_tensor y = nchw(r->y->data, d->N, d->K, d->P, d->Q);
        dz = nchw(r->buffers[c->b_dz].data, d->N, d->K, d->P, d->Q);
        rc = mltk_op_act_backward(be, &dz, &dy, NULL, &y, c->act, c->alpha);
        if (rc)
            return rc;
    }
    if (c->lp == MLTK_F32) {
        rc = mltk_op_conv2d_backward_filter(be, dw, db, &dz, &x, &p, ws, ws_bytes);
        if (rc)
            return rc;
        if (r->dx && r->dx[0].data) {
            const mltk_tensor dx = nchw(r->dx[0].data, d->N, d->C, d->H, d->W);
            rc = mltk_op_conv2d_backward_data(be, &dx, &dz, &r->params[c->p_weight], &p, ws,
                                              ws_bytes);
        }
        return rc;
    }
    if (!r->params_lp)
        return MLTK_ERR_INVALID;
    const mltk_tensor xl = nchw_dt(r->buffers[c->b_xlp].data, c->lp, d->N, d->C, d->H, d->W);
    const mltk_tensor dzl = nchw_dt(r->buffers[c->b_dzlp].data, c->lp, d->N, d->K, d->P,
                                    d->Q);
    rc = mltk_op_cast(be, &dzl, &dz);
    if (!rc)
        rc = mltk_op_conv2d_backward_filter(be, dw, NULL, &dzl, &xl, &p, ws, ws_bytes);
    if (!rc && db)
        rc = conv2d_bias_grad(c, r, db, &dz, d);
    if (!rc && r->dx && r->dx[0].data) {
        const mltk_tensor dx = nchw(r->dx[0].data, d->N, d->C, d->H, d->W);
        rc = mltk_op_conv2d_backward_data(be, &dx, &dzl, &r->params_lp[c->p_weight], &p, ws,
                                          ws_bytes);
    }
    return rc;
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_layer_i conv2d_iface = {
    .size = sizeof(struct mltk_layer_i),
    .create = conv2d_create,
    .destroy = conv2d_destroy,
    .setup = conv2d_setup,
    .forward = conv2d_forward,
    .backward = conv2d_backward,
    .inplace = NULL,
};

MLTK_PLUGIN(conv2d, MLTK_KIND_LAYER, &conv2d_iface)
