/* embedding.c - a lookup table of learned vectors, y[t] = weight[x[t]].
 *
 * What this is: the input layer of sequence models.  Each sample is a
 * tensor of token ids (any shape, e.g. (T)) stored as floats holding
 * integers in [0, vocab); the output appends a `dim` axis, (T) -> (T, dim).
 * The weight (vocab, dim) starts as N(0, 1), PyTorch's nn.Embedding
 * default, unless `init` names another initialiser.  Backward scatter-adds
 * the output gradient into the weight's gradient (an id seen twice
 * receives both rows).  An id that is not an integer in range makes the
 * forward pass fail with MLTK_ERR_DATA rather than read out of bounds.
 *
 * What this is not: padding_idx, max_norm or sparse gradients.  Ids are
 * discrete, so there is no gradient with respect to the input: when one
 * is requested it is zero.
 */
#include <stdlib.h>
#include <string.h>
#include <mltk/plugin.h>

/* ---- state ---------------------------------------------------------------- */

typedef struct embedding {
    int64_t   vocab, dim;
    mltk_init init;
    int64_t   ids;       /* ids per sample, known after setup */
    int       p_weight;  /* param index of weight (vocab, dim) */
} embedding;

/* ---- lifetime ------------------------------------------------------------- */

static int embedding_create(void **self, const mltk_params_t *params, char **err)
{
    const char *init = mltk_params_str(params, "init");
    embedding *e;
    mltk_init wi;
    int rc;

    int64_t vocab = mltk_params_int(params, "vocab");
    int64_t dim = mltk_params_int(params, "dim");
    if (vocab < 1 || dim < 1)
        return mltk_errf(err, MLTK_ERR_CONFIG, "vocab and dim must be >= 1");
    if (vocab > (int64_t)1 << 24)
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "vocab = %lld: ids are float-coded, so at most 16777216 "
                         "are exact", (long long)vocab);
    /* the (vocab, dim) weight and its gradient, in f32, compared by a
     * division: no product to overflow */
    if (dim > MLTK_MAX_MODEL_BYTES / (2 * (int64_t)sizeof(float)) / vocab)
        return mltk_errf(err, MLTK_ERR_CONFIG,
                         "key 'dim' = %lld with vocab = %lld makes a weight (and its "
                         "gradient) of more than the %lld TiB a model may use",
                         (long long)dim, (long long)vocab,
                         (long long)(MLTK_MAX_MODEL_BYTES >> 40));
    if (!init || !*init || strcmp(init, "default") == 0) {
        wi = (mltk_init){ MLTK_INIT_NORMAL, 0.0, 1.0 };
    } else {
        /* a (vocab, dim) matrix: fan_in = dim, fan_out = vocab */
        rc = mltk_init_named(init, (double)dim, (double)vocab,
                             mltk_params_float(params, "init_std"), &wi, err);
        if (rc)
            return rc;
    }
    e = calloc(1, sizeof(*e));
    if (!e)
        return mltk_errf(err, MLTK_ERR_NOMEM, "embedding: out of memory");
    e->vocab = vocab;
    e->dim = dim;
    e->init = wi;
    e->p_weight = -1;
    *self = e;
    return MLTK_OK;
}

static void embedding_destroy(void *self)
{
    free(self);
}

/* ---- shapes --------------------------------------------------------------- */

static int embedding_setup(void *self, mltk_layer_setup_t *s, int n_in,
                           const mltk_shape *in, mltk_shape *out, char **err)
{
    embedding *e = self;
    char buf[96];
    int64_t dims[2];
    mltk_shape ws;
    int rc;

    if (n_in != 1)
        return mltk_errf(err, MLTK_ERR_SHAPE, "expected 1 input, got %d", n_in);
    rc = mltk_layer_need_op(s, MLTK_OP_EMBEDDING_FORWARD, MLTK_F32, err);
    if (!rc)
        rc = mltk_layer_need_op(s, MLTK_OP_EMBEDDING_BACKWARD, MLTK_F32, err);
    if (!rc)
        rc = mltk_layer_need_op(s, MLTK_OP_FILL, MLTK_F32, err);
    if (rc)
        return rc;
    /* the output adds an axis; the batch adds another */
    if (in[0].ndim < 1 || in[0].ndim > MLTK_MAX_DIMS - 2)
        return mltk_errf(err, MLTK_ERR_SHAPE,
                         "expected token ids of shape (T) (1 to %d dimensions "
                         "per sample), got %s", MLTK_MAX_DIMS - 2,
                         mltk_shape_str(&in[0], buf, sizeof(buf)));
    if (mltk_size_numel(&e->ids, &in[0]))
        return mltk_errf(err, MLTK_ERR_SHAPE, "input shape %s has too many ids",
                         mltk_shape_str(&in[0], buf, sizeof(buf)));
    dims[0] = e->vocab;
    dims[1] = e->dim;
    ws = mltk_shape_make(2, dims);
    rc = mltk_layer_add_param(s, "weight", &ws, e->init);
    if (rc < 0)
        return mltk_errf(err, rc, "cannot declare the weight");
    e->p_weight = rc;
    *out = in[0];
    out->dim[out->ndim++] = e->dim;
    return MLTK_OK;
}

/* ---- forward and backward ------------------------------------------------- */

/* ids (B, T) read as (n) -> y (B, T, dim) read as (n, dim) */
static int embedding_forward(void *self, const mltk_layer_run *r)
{
    embedding *e = self;
    const int64_t n = r->batch * e->ids;
    const mltk_tensor ids = mltk_tensor_1d(r->x[0].data, MLTK_F32, n);
    const mltk_tensor y = mltk_tensor_2d(r->y->data, MLTK_F32, n, e->dim);

    if (n == 0)
        return MLTK_OK;
    return mltk_op_embedding_forward(r->be, &y, &r->params[e->p_weight], &ids);
}

/* dy (B, T, dim) -> dweight (vocab, dim); dx (ids) = 0 when asked for */
static int embedding_backward(void *self, const mltk_layer_run *r)
{
    embedding *e = self;
    const struct mltk_backend *be = r->be;
    const int64_t n = r->batch * e->ids;
    const mltk_tensor ids = mltk_tensor_1d(r->x[0].data, MLTK_F32, n);
    const mltk_tensor dy = mltk_tensor_2d(r->dy->data, MLTK_F32, n, e->dim);
    int rc;

    if (n == 0)  /* no ids: nothing scattered */
        return mltk_op_fill(be, &r->grads[e->p_weight], 0.0f);
    rc = mltk_op_embedding_backward(be, &r->grads[e->p_weight], &dy, &ids);
    if (rc == MLTK_OK && r->dx && r->dx[0].data) {
        const mltk_tensor dx = mltk_tensor_1d(r->dx[0].data, MLTK_F32, n);
        rc = mltk_op_fill(be, &dx, 0.0f);
    }
    return rc;
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_layer_i embedding_iface = {
    .size = sizeof(struct mltk_layer_i),
    .create = embedding_create,
    .destroy = embedding_destroy,
    .setup = embedding_setup,
    .forward = embedding_forward,
    .backward = embedding_backward,
    .inplace = NULL,
};

MLTK_PLUGIN(embedding, MLTK_KIND_LAYER, &embedding_iface)
