/* dropout.c - inverted dropout, as PyTorch's nn.Dropout(p = rate).
 *
 * What this is: a layer plugin over the dropout_forward and mul ops of
 * the backend contract.  In training each value is kept with probability
 * 1 - rate and scaled by 1/(1 - rate), so evaluation is the identity.  The
 * mask (0 or 1/(1 - rate) per value) is kept in a buffer for backward:
 * dx = dy * mask.
 *
 * Masks come from the counter-based Philox stream (mltk/rng.h), so they
 * are the same on every backend and every thread count:
 *   seed   = the run seed mixed with a hash of the layer's name, so that
 *            two dropout layers of the same size draw different masks;
 *   offset = step * (max batch * values per sample), so that every step
 *            draws fresh values and a run repeats exactly from its seed.
 *
 * What this is not: spatial (channel-wise) dropout or alpha dropout.
 */
#include <stdlib.h>
#include <string.h>
#include <mltk/plugin.h>

/* ---- state ---------------------------------------------------------------- */

typedef struct dropout {
    float    rate;
    uint64_t salt;        /* from the layer's name, mixed into the seed */
    int64_t  numel;       /* values per sample */
    int64_t  max_batch;
    int      b_mask;      /* buffer index of the mask (max_batch, numel) */
    int      last_train;  /* the last forward dropped values */
} dropout;

/* ---- lifetime ------------------------------------------------------------- */

/* FNV-1a of the section's description ("layer 'drop1' (dropout)"), from
 * the "layer '" on, so that it does not depend on the config's path */
static uint64_t name_hash(const char *where)
{
    const char *s = where ? strstr(where, "layer '") : NULL;
    uint64_t h = 0xcbf29ce484222325ull;

    if (!s)
        s = where ? where : "";
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

/* splitmix64 finaliser: spreads the salt over all bits of the key */
static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int dropout_create(void **self, const mltk_params_t *params, char **err)
{
    double rate = mltk_params_float(params, "rate");
    dropout *d;

    if (!(rate >= 0.0 && rate < 1.0))
        return mltk_errf(err, MLTK_ERR_CONFIG, "rate must be in [0, 1), not %g", rate);
    d = calloc(1, sizeof(*d));
    if (!d)
        return mltk_errf(err, MLTK_ERR_NOMEM, "dropout: out of memory");
    d->rate = (float)rate;
    d->salt = mix64(name_hash(mltk_params_where(params)));
    d->b_mask = -1;
    *self = d;
    return MLTK_OK;
}

static void dropout_destroy(void *self)
{
    free(self);
}

/* ---- shapes --------------------------------------------------------------- */

static int dropout_setup(void *self, mltk_layer_setup_t *s, int n_in,
                         const mltk_shape *in, mltk_shape *out, char **err)
{
    dropout *d = self;
    int rc;

    if (n_in != 1)
        return mltk_errf(err, MLTK_ERR_SHAPE, "expected 1 input, got %d", n_in);
    rc = mltk_layer_need_op(s, MLTK_OP_DROPOUT_FORWARD, MLTK_F32, err);
    if (!rc)
        rc = mltk_layer_need_op(s, MLTK_OP_MUL, MLTK_F32, err);
    if (rc)
        return rc;
    d->max_batch = mltk_layer_max_batch(s);
    int64_t all;
    size_t bytes;
    if (mltk_size_numel(&d->numel, &in[0]) || mltk_size_mul(&all, d->max_batch, d->numel)
        || mltk_size_bytes(&bytes, all, sizeof(float)))
        return mltk_errf(err, MLTK_ERR_SHAPE, "the mask for batches of %lld overflows",
                         (long long)d->max_batch);
    rc = mltk_layer_add_buffer(s, "mask", bytes);
    if (rc < 0)
        return mltk_errf(err, rc, "cannot declare the mask buffer");
    d->b_mask = rc;
    *out = in[0];
    return MLTK_OK;
}

/* ---- forward and backward ------------------------------------------------- */

/* this call's rows of a run tensor or the mask: (B, values per sample) */
static mltk_tensor drop_rows(const dropout *d, void *data, int64_t batch)
{
    return mltk_tensor_2d(data, MLTK_F32, batch, d->numel);
}

/* x (B, ...) -> y (B, ...); x == y allowed */
static int dropout_forward(void *self, const mltk_layer_run *r)
{
    dropout *d = self;
    const struct mltk_backend *be = r->be;
    const int64_t n = r->batch * d->numel;
    mltk_dropout_params dp;
    mltk_tensor x, y, mask;

    d->last_train = r->mode == MLTK_TRAIN;
    if (n == 0)
        return MLTK_OK;
    if (!d->last_train) {
        if (r->y->data == r->x[0].data)
            return MLTK_OK;
        return mltk_be_copy(be, r->y->data, r->x[0].data, (size_t)n * sizeof(float));
    }
    x = drop_rows(d, r->x[0].data, r->batch);
    y = drop_rows(d, r->y->data, r->batch);
    mask = drop_rows(d, r->buffers[d->b_mask].data, r->batch);
    dp = (mltk_dropout_params){ .p = d->rate, .seed = r->seed ^ d->salt,
                                .offset = r->step * (uint64_t)(d->max_batch * d->numel) };
    return mltk_op_dropout_forward(be, &y, &mask, &x, &dp);
}

/* dx = dy * mask (dy after an evaluation-mode forward) */
static int dropout_backward(void *self, const mltk_layer_run *r)
{
    const dropout *d = self;
    const struct mltk_backend *be = r->be;
    const int64_t n = r->batch * d->numel;
    mltk_tensor dx, dy, mask;

    if (!r->dx || !r->dx[0].data || n == 0)
        return MLTK_OK;
    if (!d->last_train) {
        if (r->dx[0].data == r->dy->data)
            return MLTK_OK;
        return mltk_be_copy(be, r->dx[0].data, r->dy->data, (size_t)n * sizeof(float));
    }
    dx = drop_rows(d, r->dx[0].data, r->batch);
    dy = drop_rows(d, r->dy->data, r->batch);
    mask = drop_rows(d, r->buffers[d->b_mask].data, r->batch);
    return mltk_op_mul(be, &dx, &dy, &mask);
}

static int dropout_inplace(void *self)
{
    (void)self;
    return 1;
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_layer_i dropout_iface = {
    .size = sizeof(struct mltk_layer_i),
    .create = dropout_create,
    .destroy = dropout_destroy,
    .setup = dropout_setup,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .inplace = dropout_inplace,
};

MLTK_PLUGIN(dropout, MLTK_KIND_LAYER, &dropout_iface)
