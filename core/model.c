/* model.c - the layer graph: building, shape inference, memory layout,
 * forward and backward.
 *
 * A model is a list of nodes in config order.  Each node is one layer
 * plugin instance with named inputs (earlier layers or `data`).  Shapes
 * are inferred once, when the model is built; parameters of all layers
 * live in one flat buffer (gradients in a second of the same layout);
 * every activation and gradient buffer is allocated here, for the largest
 * batch, so a training step allocates nothing.
 *
 * Precision ([run] precision): under bf16 (or fp16) the model also keeps a
 * copy of the flat parameter buffer in that dtype (same layout, 2 bytes an
 * element),
 * refreshed by one cast op whenever the parameters change
 * (mltk_model_params_changed), and hands layers views of it
 * (mltk_layer_run.params_lp); the f32 buffer stays the master copy that
 * optimizers update and checkpoints save.  Under fp32 nothing of this is
 * allocated.
 *
 * What this is not: the training loop (train.c) or data handling (data.c).
 * It does not reorder layers: a layer may only read layers defined above
 * it, which makes file order a valid execution order.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "session.h"
#include "op.h"

/* ---- data structures ------------------------------------------------------ */

typedef struct mltk_pentry {
    char      *name;      /* "fc1.weight" */
    mltk_shape shape;
    mltk_init  init;
    int64_t    offset;    /* in floats, into the flat buffers */
    int        node;      /* the layer that declared it */
} mltk_pentry;

typedef struct mltk_bentry {
    char      *name;
    size_t     bytes;
    void      *ptr;
    int        state;     /* persistent float tensor: saved, restored */
    mltk_shape shape;     /* its per-layer shape */
    float      init;      /* its value before training */
    int        node;
} mltk_bentry;

typedef struct mltk_node {
    const mltk_section       *sec;     /* NULL for a single layer */
    const char               *name;
    const char               *type;
    const struct mltk_layer_i *iface;
    void                     *self;
    int                       n_in;
    int                      *src;     /* producer node of each input, -1 = data */
    mltk_shape               *in_shape;
    mltk_shape                out_shape;
    int                       p_first, n_params;   /* into model->pe */
    int                       b_first, n_buffers;  /* into model->be_ */
    int                       consumers;
    int                       frozen;   /* freeze = true */
    double                    lr_mult;  /* lr_mult (1 by default) */
    float                    *y, *dy;
    float                   **edge;
    mltk_tensor              *plp_t;  /* bf16 parameter views, or NULL */   /* per input: dx buffer when the
                                       * producer has several consumers */
    /* views handed to the plugin, rebuilt per call */
    mltk_tensor              *x_t, *dx_t, *p_t, *g_t, *b_t;
} mltk_node;

struct mltk_model {
    const struct mltk_backend *be;
    int64_t      max_batch;
    mltk_shape   in_shape;
    mltk_node   *node;
    int          n_node;
    mltk_pentry *pe;
    int          n_pe;
    mltk_bentry *bu;
    int          n_bu;
    int64_t      n_floats;
    int64_t     *seg_off;  /* n_pe + 1 tensor offsets; the last is n_floats */
    float       *params, *grads;
    const void  *last_x;   /* data batch of the last forward, for backward */
    const mltk_config_t *cfg;  /* while building, for messages */
    uint64_t     seed;         /* run seed, handed to layers */
    mltk_dtype   prec;         /* [run] precision of the products: f32, bf16, f16 */
    void        *params_lp;    /* copy of params (n_floats) in prec, or NULL */
};

struct mltk_layer_setup {
    mltk_model *m;
    int         node;
    int         failed;   /* SETUP_OP or SETUP_SIZE: `fail` says why */
    char       *fail;
};

enum { SETUP_OP = 1, SETUP_SIZE = 2 };

/* ---- sizes ------------------------------------------------------------------ */

/* "12.0 GiB" */
static const char *fmt_bytes(char *buf, size_t n, double bytes)
{
    static const char *const unit[] = { "bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    int u = 0;
    while (bytes >= 1024.0 && u < 6) {
        bytes /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, n, "%.0f bytes", bytes);
    else
        snprintf(buf, n, "%.1f %s", bytes, unit[u]);
    return buf;
}

/* A declaration that is too large: the first such message is kept, so
 * that the core reports it whatever the layer words around it (as
 * mltk_layer_need_op does).  Returns MLTK_ERR_SHAPE. */
MLTK_PRINTF(2, 3)
static int setup_size_fail(mltk_layer_setup_t *s, const char *fmt, ...)
{
    if (s->failed)
        return MLTK_ERR_SHAPE;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->fail = mltk_strdup(msg);
    if (s->fail)
        s->failed = SETUP_SIZE;
    return MLTK_ERR_SHAPE;
}

/* Elements of a declared shape into *numel: MLTK_ERR_INVALID for a
 * malformed shape (a dimension < 1), MLTK_ERR_SHAPE (recorded) for one
 * beyond MLTK_MAX_MODEL_BYTES in f32. */
static int declared_numel(mltk_layer_setup_t *s, const char *what, const char *name,
                          const mltk_shape *shape, int64_t *numel)
{
    char buf[160], lim[32];
    if (!name || !shape || shape->ndim < 0 || shape->ndim > MLTK_MAX_DIMS)
        return MLTK_ERR_INVALID;
    for (int i = 0; i < shape->ndim; i++)
        if (shape->dim[i] < 1)
            return MLTK_ERR_INVALID;
    if (mltk_size_numel(numel, shape) || *numel > MLTK_MAX_MODEL_BYTES / (int64_t)sizeof(float))
        return setup_size_fail(s, "%s '%s' of shape %s needs more than the %s a model may "
                               "use", what, name, mltk_shape_str(shape, buf, sizeof buf),
                               fmt_bytes(lim, sizeof lim, (double)MLTK_MAX_MODEL_BYTES));
    return MLTK_OK;
}

/* ---- the setup context (plugin-facing) ------------------------------------ */

int mltk_layer_add_param(mltk_layer_setup_t *s, const char *name,
                         const mltk_shape *shape, mltk_init init)
{
    mltk_model *m = s->m;
    mltk_node *n = &m->node[s->node];
    int64_t numel;
    int rc = declared_numel(s, "parameter", name, shape, &numel);
    if (rc)
        return rc;
    mltk_pentry *pe = realloc(m->pe, (size_t)(m->n_pe + 1) * sizeof(*pe));
    if (!pe)
        return MLTK_ERR_NOMEM;
    m->pe = pe;
    pe = &m->pe[m->n_pe];
    memset(pe, 0, sizeof(*pe));
    pe->name = mltk_strfmt("%s.%s", n->name, name);
    if (!pe->name)
        return MLTK_ERR_NOMEM;
    pe->shape = *shape;
    pe->init = init;
    pe->node = s->node;
    if (n->n_params == 0)
        n->p_first = m->n_pe;
    n->n_params++;
    return m->n_pe++ - n->p_first;
}

int mltk_layer_add_buffer(mltk_layer_setup_t *s, const char *name, size_t bytes)
{
    mltk_model *m = s->m;
    mltk_node *n = &m->node[s->node];
    char lim[32];
    if (!name || bytes == 0)
        return MLTK_ERR_INVALID;
    if (bytes > (uint64_t)MLTK_MAX_MODEL_BYTES)
        return setup_size_fail(s, "buffer '%s' of %zu bytes needs more than the %s a model "
                               "may use", name, bytes,
                               fmt_bytes(lim, sizeof lim, (double)MLTK_MAX_MODEL_BYTES));
    mltk_bentry *bu = realloc(m->bu, (size_t)(m->n_bu + 1) * sizeof(*bu));
    if (!bu)
        return MLTK_ERR_NOMEM;
    m->bu = bu;
    bu = &m->bu[m->n_bu];
    bu->name = mltk_strfmt("%s.%s", n->name, name);
    if (!bu->name)
        return MLTK_ERR_NOMEM;
    bu->bytes = bytes;
    bu->ptr = NULL;
    bu->state = 0;
    bu->node = s->node;
    if (n->n_buffers == 0)
        n->b_first = m->n_bu;
    n->n_buffers++;
    return m->n_bu++ - n->b_first;
}

int mltk_layer_add_state(mltk_layer_setup_t *s, const char *name, const mltk_shape *shape,
                         float init)
{
    int64_t numel;
    if (!isfinite(init))
        return MLTK_ERR_INVALID;
    int rc = declared_numel(s, "state", name, shape, &numel);
    if (rc)
        return rc;
    int k = mltk_layer_add_buffer(s, name, (size_t)numel * sizeof(float));
    if (k < 0)
        return k;
    mltk_bentry *bu = &s->m->bu[s->m->n_bu - 1];
    bu->state = 1;
    bu->shape = *shape;
    bu->init = init;
    return k;
}

int64_t mltk_layer_max_batch(const mltk_layer_setup_t *s)
{
    return s->m->max_batch;
}

const struct mltk_backend *mltk_layer_backend(const mltk_layer_setup_t *s)
{
    return s->m->be;
}

int mltk_layer_need_op(mltk_layer_setup_t *s, mltk_op op, mltk_dtype dt, char **err)
{
    const mltk_node *n = &s->m->node[s->node];
    if (mltk_op_supported(s->m->be, op, dt))
        return MLTK_OK;
    /* kept, so that the core reports it as it is even when the layer
     * words its own message around it */
    char *msg = mltk_strfmt("layer '%s' (%s): backend '%s' does not run op %s in %s", n->name,
                            n->type, s->m->be->name, mltk_op_name(op), mltk_dtype_name(dt));
    if (!msg)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    if (!s->failed) {
        free(s->fail);
        s->fail = msg;
        s->failed = SETUP_OP;
    }
    mltk_errf(err, MLTK_ERR_UNSUPPORTED, "%s", msg);
    if (s->fail != msg)
        free(msg);
    return MLTK_ERR_UNSUPPORTED;
}

mltk_dtype mltk_layer_precision(const mltk_layer_setup_t *s)
{
    return s->m->prec;
}

/* ---- parameter initialisation ------------------------------------------- */

/* A distinct, well-mixed stream per parameter tensor (splitmix64). */
static uint64_t param_seed(uint64_t seed, int index)
{
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (uint64_t)(index + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int init_params(mltk_model *m, uint64_t seed)
{
    const struct mltk_backend *be = m->be;
    /* the padding between tensors too: the optimizer runs over all of it */
    mltk_tensor all = mltk_tensor_1d(m->params, MLTK_F32, m->n_floats);
    int rc0 = m->n_floats ? mltk_op_fill(be, &all, 0.0f) : MLTK_OK;
    if (rc0)
        return rc0;
    for (int i = 0; i < m->n_pe; i++) {
        mltk_pentry *p = &m->pe[i];
        mltk_tensor x = mltk_tensor_1d(m->params + p->offset, MLTK_F32,
                                       mltk_shape_numel(&p->shape));
        int rc;
        switch (p->init.kind) {
        case MLTK_INIT_ZEROS:
            rc = mltk_op_fill(be, &x, 0.0f);
            break;
        case MLTK_INIT_CONST:
            rc = mltk_op_fill(be, &x, (float)p->init.a);
            break;
        case MLTK_INIT_UNIFORM:
            rc = mltk_op_rng_uniform(be, &x, (float)p->init.a, (float)p->init.b,
                                     param_seed(seed, i), 0);
            break;
        case MLTK_INIT_NORMAL:
            rc = mltk_op_rng_normal(be, &x, (float)p->init.a, (float)p->init.b,
                                    param_seed(seed, i), 0);
            break;
        default:
            return MLTK_ERR_INVALID;
        }
        if (rc)
            return rc;
    }
    mltk_tensor g = mltk_tensor_1d(m->grads, MLTK_F32, m->n_floats);
    return m->n_floats ? mltk_op_fill(be, &g, 0.0f) : MLTK_OK;
}

/* ---- memory layout ---------------------------------------------------------- */

static int64_t round16(int64_t n)
{
    return (n + 15) & ~(int64_t)15;  /* 64-byte aligned tensor starts */
}

static int be_alloc_floats(const struct mltk_backend *be, int64_t n, float **p)
{
    void *v = NULL;
    int rc = mltk_be_alloc(be, (size_t)(n > 0 ? n : 1) * sizeof(float), &v);
    *p = v;
    return rc;
}

/* The layer with the most parameter elements, for a message: "; the
 * largest share is N, of train.ini:20: layer 'fc2' (dense)", or "". */
static void largest_layer(const mltk_model *m, char *buf, size_t cap)
{
    int best = -1;
    int64_t most = 0;
    buf[0] = '\0';
    for (int i = 0; i < m->n_node; i++) {
        const mltk_node *n = &m->node[i];
        int64_t np = 0;
        for (int j = 0; j < n->n_params; j++)
            np += round16(mltk_shape_numel(&m->pe[n->p_first + j].shape));
        if (np > most) {
            most = np;
            best = i;
        }
    }
    if (best < 0)
        return;
    const mltk_node *n = &m->node[best];
    if (n->sec)
        snprintf(buf, cap, "; the largest share is %lld, of %s", (long long)most,
                 mltk_params_where(n->sec->params));
    else
        snprintf(buf, cap, "; the largest share is %lld, of layer '%s'", (long long)most,
                 n->name);
}

/* Bytes node i adds to the model: its parameters with their gradients
 * (and low-precision copy), its buffers, its output and output gradient
 * for the largest batch, and the gradient edges it reads through (see
 * alloc_activations).  Each part is within MLTK_MAX_MODEL_BYTES already
 * (declared_numel, mltk_layer_add_buffer, check_output), so the sums of a
 * few of them fit an int64_t; 1 when they do not all the same. */
static int node_bytes(const mltk_model *m, int i, int64_t *out, int64_t *params,
                      int64_t *buffers, int64_t *acts)
{
    const mltk_node *n = &m->node[i];
    const int64_t per_param = 2 * (int64_t)sizeof(float)
        + (m->prec != MLTK_F32 ? (int64_t)mltk_dtype_size(m->prec) : 0);
    int64_t p = 0, b = 0, a = 0, t, all;
    for (int j = 0; j < n->n_params; j++)
        if (mltk_size_add(&p, p, round16(mltk_shape_numel(&m->pe[n->p_first + j].shape))))
            return 1;
    for (int j = 0; j < n->n_buffers; j++)
        if (mltk_size_add(&b, b, (int64_t)m->bu[n->b_first + j].bytes))
            return 1;
    if (mltk_size_mul(&t, mltk_shape_numel(&n->out_shape), m->max_batch)
        || mltk_size_mul(&a, t, 2 * (int64_t)sizeof(float)))
        return 1;
    for (int j = 0; j < n->n_in; j++) {
        int src = n->src[j];
        if (src < 0 || m->node[src].consumers < 2)
            continue;
        if (mltk_size_mul(&t, mltk_shape_numel(&m->node[src].out_shape), m->max_batch)
            || mltk_size_mul(&t, t, (int64_t)sizeof(float)) || mltk_size_add(&a, a, t))
            return 1;
    }
    if (mltk_size_mul(&t, p, per_param) || mltk_size_add(&all, t, b)
        || mltk_size_add(&all, all, a))
        return 1;
    *out = all;
    *params = p;
    *buffers = b;
    *acts = a;
    return 0;
}

/* The model's memory, layer by layer, within MLTK_MAX_MODEL_BYTES: a
 * larger model is a config error naming the layer that goes past it,
 * before anything is allocated. */
static int check_model_size(const mltk_model *m, char **err)
{
    char lim[32], b1[32], b2[32], b3[32];
    int64_t total = 0;
    fmt_bytes(lim, sizeof lim, (double)MLTK_MAX_MODEL_BYTES);
    for (int i = 0; i < m->n_node; i++) {
        const mltk_node *n = &m->node[i];
        const char *where = n->sec ? mltk_params_where(n->sec->params) : n->name;
        int64_t nb = 0, np = 0, bb = 0, ab = 0;
        if (node_bytes(m, i, &nb, &np, &bb, &ab) || mltk_size_add(&total, total, nb)
            || total > MLTK_MAX_MODEL_BYTES)
            return mltk_errf(err, MLTK_ERR_CONFIG,
                             "%s: with this layer the model needs more than the %s a model "
                             "may use: it adds %lld parameters (%s with their gradients), %s "
                             "of buffers and %s of activations for batches of %lld",
                             where, lim, (long long)np,
                             fmt_bytes(b1, sizeof b1, (double)np * 2.0 * sizeof(float)),
                             fmt_bytes(b2, sizeof b2, (double)bb),
                             fmt_bytes(b3, sizeof b3, (double)ab), (long long)m->max_batch);
    }
    return MLTK_OK;
}

/* Parameters and gradients in two flat buffers; per-node buffers. */
static int layout_params(mltk_model *m, char **err)
{
    int64_t off = 0;
    m->seg_off = malloc((size_t)(m->n_pe + 1) * sizeof(*m->seg_off));
    if (!m->seg_off)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->n_pe; i++) {
        m->pe[i].offset = off;
        m->seg_off[i] = off;
        off += round16(mltk_shape_numel(&m->pe[i].shape));
    }
    m->seg_off[m->n_pe] = off;
    m->n_floats = off;
    if (be_alloc_floats(m->be, off, &m->params) ||
        be_alloc_floats(m->be, off, &m->grads)) {
        char big[512], sz[32];
        largest_layer(m, big, sizeof big);
        return mltk_errf(err, MLTK_ERR_NOMEM,
                         "cannot allocate %lld parameters (%s, and as much for their "
                         "gradients) on backend '%s': %s%s", (long long)off,
                         fmt_bytes(sz, sizeof sz, (double)off * sizeof(float)), m->be->name,
                         mltk_backend_error(m->be), big);
    }
    if (m->prec != MLTK_F32
        && mltk_be_alloc(m->be, (size_t)(off > 0 ? off : 1) * mltk_dtype_size(m->prec),
                         &m->params_lp))
        return mltk_errf(err, MLTK_ERR_NOMEM,
                         "cannot allocate the %s copy of %lld parameters on backend '%s': %s",
                         mltk_dtype_name(m->prec), (long long)off, m->be->name,
                         mltk_backend_error(m->be));
    for (int i = 0; i < m->n_bu; i++) {
        if (mltk_be_alloc(m->be, m->bu[i].bytes, &m->bu[i].ptr))
            return mltk_errf(err, MLTK_ERR_NOMEM, "cannot allocate buffer %s (%zu bytes): %s",
                             m->bu[i].name, m->bu[i].bytes, mltk_backend_error(m->be));
        if (!m->bu[i].state)
            continue;
        mltk_tensor st = mltk_tensor_1d(m->bu[i].ptr, MLTK_F32,
                                        mltk_shape_numel(&m->bu[i].shape));
        if (mltk_op_fill(m->be, &st, m->bu[i].init))
            return mltk_errf(err, MLTK_ERR_BACKEND, "cannot initialise %s: %s", m->bu[i].name,
                             mltk_backend_error(m->be));
    }
    return MLTK_OK;
}

static int alloc_node_views(const mltk_model *m, mltk_node *n)
{
    int nin = n->n_in > 0 ? n->n_in : 1;
    n->x_t = calloc((size_t)nin, sizeof(mltk_tensor));
    n->dx_t = calloc((size_t)nin, sizeof(mltk_tensor));
    n->p_t = calloc((size_t)(n->n_params + 1), sizeof(mltk_tensor));
    n->g_t = calloc((size_t)(n->n_params + 1), sizeof(mltk_tensor));
    n->b_t = calloc((size_t)(n->n_buffers + 1), sizeof(mltk_tensor));
    n->edge = calloc((size_t)nin, sizeof(float *));
    if (!n->x_t || !n->dx_t || !n->p_t || !n->g_t || !n->b_t || !n->edge)
        return MLTK_ERR_NOMEM;
    if (m->params_lp && !(n->plp_t = calloc((size_t)(n->n_params + 1), sizeof(mltk_tensor))))
        return MLTK_ERR_NOMEM;
    return MLTK_OK;
}

/* A contiguous view of `shape` at data. */
static mltk_tensor view(void *data, mltk_shape shape, mltk_dtype dt)
{
    return (mltk_tensor){ .data = data, .shape = shape, .dtype = dt };
}

/* Parameters and gradients as f32 views of their per-layer shapes (and
 * the low-precision copies as views of that dtype); persistent state
 * likewise; scratch buffers as 1-d u8 byte tensors. */
static void fill_static_views(mltk_model *m, mltk_node *n)
{
    for (int j = 0; j < n->n_params; j++) {
        mltk_pentry *p = &m->pe[n->p_first + j];
        n->p_t[j] = view(m->params + p->offset, p->shape, MLTK_F32);
        n->g_t[j] = view(m->grads + p->offset, p->shape, MLTK_F32);
        if (n->plp_t)
            n->plp_t[j] = view((char *)m->params_lp
                               + (size_t)p->offset * mltk_dtype_size(m->prec),
                               p->shape, m->prec);
    }
    for (int j = 0; j < n->n_buffers; j++) {
        mltk_bentry *b = &m->bu[n->b_first + j];
        n->b_t[j] = b->state ? view(b->ptr, b->shape, MLTK_F32)
                             : mltk_tensor_1d(b->ptr, MLTK_U8, (int64_t)b->bytes);
    }
}

static mltk_shape batched(const mltk_shape *s, int64_t batch)
{
    mltk_shape r = { s->ndim + 1, { batch } };
    for (int i = 0; i < s->ndim && i + 1 < MLTK_MAX_DIMS; i++)
        r.dim[i + 1] = s->dim[i];
    return r;
}

/* ---- building from a config ----------------------------------------------- */

static int find_node(const mltk_model *m, int upto, const char *name)
{
    for (int i = 0; i < upto; i++)
        if (strcmp(m->node[i].name, name) == 0)
            return i;
    return -2;
}

/* Split a comma-separated list into trimmed names; returns count or -1. */
static int split_list(const char *text, char ***out)
{
    int cap = 1, n = 0;
    for (const char *c = text; *c; c++)
        cap += *c == ',';
    char **v = calloc((size_t)cap, sizeof(char *));
    if (!v)
        return -1;
    const char *p = text;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t')) { p++; len--; }
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        if (len) {
            v[n] = malloc(len + 1);
            if (!v[n]) { for (int i = 0; i < n; i++) free(v[i]); free(v); return -1; }
            memcpy(v[n], p, len);
            v[n++][len] = 0;
        }
        if (!e)
            break;
        p = e + 1;
    }
    *out = v;
    return n;
}

/* "file:line: layer 'x' (type)" for a message about node n: the line
 * that set a key when `msg` is about one and the user set it, the
 * section's line otherwise; NULL when out of memory.  A message is about a
 * key when it starts with "key 'NAME'" (as the core's checks word it) or
 * with the key's name and a space ("padding must be >= 0"); `input`, whose
 * name also starts messages about the input's shape, only in the first
 * form. */
static char *layer_where(const mltk_model *m, const mltk_node *n, const char *msg)
{
    const char *where = n->sec ? mltk_params_where(n->sec->params) : n->name;
    if (!n->sec || !m->cfg || !msg)
        return mltk_strdup(where);
    int quoted = strncmp(msg, "key '", 5) == 0;
    const char *key = quoted ? msg + 5 : msg;
    const char *end = quoted ? strchr(key, '\'') : strchr(key, ' ');
    const mltk_params_t *p = n->sec->params;
    int line = 0;
    for (int i = 0; end && i < p->n; i++)
        if (strlen(p->defs[i]->name) == (size_t)(end - key)
            && strncmp(p->defs[i]->name, key, (size_t)(end - key)) == 0 && p->set[i]
            && (quoted || strcmp(p->defs[i]->name, "input") != 0))
            line = p->lines[i];
    char head[64 + 4096];
    snprintf(head, sizeof head, "%s:%d: ", m->cfg->path, n->sec->line);
    size_t len = strlen(head);
    if (line <= 0 || strncmp(where, head, len) != 0)
        return mltk_strdup(where);
    return mltk_strfmt("%s:%d: %s", m->cfg->path, line, where + len);
}

/* The output shape a layer's setup gave: dimensions >= 1, and all of it,
 * for the largest batch, within MLTK_MAX_MODEL_BYTES. */
static int check_output(const mltk_model *m, const mltk_node *n, char **err)
{
    const mltk_shape *o = &n->out_shape;
    char buf[160], lim[32];
    int64_t numel, all;
    int empty = o->ndim < 0 || o->ndim > MLTK_MAX_DIMS;
    for (int i = 0; !empty && i < o->ndim; i++)
        empty = o->dim[i] < 1;
    if (empty)
        return mltk_errf(err, MLTK_ERR_SHAPE, "produced an empty output shape");
    if (mltk_size_numel(&numel, o) || mltk_size_mul(&all, numel, m->max_batch)
        || all > MLTK_MAX_MODEL_BYTES / (int64_t)sizeof(float))
        return mltk_errf(err, MLTK_ERR_CONFIG, "its output %s for batches of %lld needs more "
                         "than the %s a model may use", mltk_shape_str(o, buf, sizeof buf),
                         (long long)m->max_batch,
                         fmt_bytes(lim, sizeof lim, (double)MLTK_MAX_MODEL_BYTES));
    return MLTK_OK;
}

static int setup_node(mltk_model *m, int idx, char **err)
{
    mltk_node *n = &m->node[idx];
    mltk_layer_setup_t s = { m, idx, 0, NULL };
    char *perr = NULL;
    int rc = n->iface->setup(n->self, &s, n->n_in, n->in_shape, &n->out_shape, &perr);
    if (rc == MLTK_OK)
        rc = check_output(m, n, &perr);
    if (rc && s.failed == SETUP_OP && rc == MLTK_ERR_UNSUPPORTED) {
        /* an op the backend lacks (mltk_layer_need_op): its message names
         * the layer already; the config line goes in front */
        if (n->sec)
            mltk_errf(err, rc, "%s:%d: %s", m->cfg->path, n->sec->line, s.fail);
        else
            mltk_errf(err, rc, "%s", s.fail);
        free(perr);
        free(s.fail);
        return rc;
    }
    if (rc) {
        /* a declaration too large for a model (setup_size_fail): the core's
         * message, whatever the layer made of it; a size is the config's */
        const char *why = s.failed == SETUP_SIZE ? s.fail : perr;
        char buf[128], *where = layer_where(m, n, why);
        if (s.failed == SETUP_SIZE || rc > 0)
            rc = s.failed == SETUP_SIZE ? MLTK_ERR_CONFIG : MLTK_ERR_SHAPE;
        mltk_errf(err, rc, "%s: %s (input shape %s)", where ? where : n->name,
                  why ? why : mltk_status_str(rc),
                  n->n_in ? mltk_shape_str(&n->in_shape[0], buf, sizeof buf) : "none");
        free(where);
    }
    free(s.fail);
    free(perr);
    return rc;
}

static int build_node(mltk_model *m, int idx, const mltk_section *sec,
                      mltk_registry_t *reg, char **err)
{
    mltk_node *n = &m->node[idx];
    const void *iface = NULL;
    n->sec = sec;
    n->name = sec->label;
    n->type = mltk_params_str(sec->params, "type");
    n->frozen = mltk_params_bool(sec->params, "freeze");
    n->lr_mult = mltk_params_float(sec->params, "lr_mult");
    int rc = mltk_registry_load(reg, n->type, MLTK_KIND_LAYER, &iface, err);
    if (rc) {
        mltk_err_prefix(err, "%s", mltk_params_where(sec->params));
        return rc;
    }
    n->iface = iface;
    if (!n->iface->create || !n->iface->setup || !n->iface->forward || !n->iface->backward)
        return mltk_errf(err, MLTK_ERR_PLUGIN, "layer plugin '%s' lacks a required vtable member",
                         n->type);

    /* inputs: explicit list, or the previous layer (data for the first) */
    char **names = NULL;
    int cnt;
    if (mltk_params_has(sec->params, "input") && *mltk_params_str(sec->params, "input")) {
        cnt = split_list(mltk_params_str(sec->params, "input"), &names);
        if (cnt < 0)
            return MLTK_ERR_NOMEM;
    } else {
        cnt = 1;
        names = calloc(1, sizeof(char *));
        if (!names || !(names[0] = mltk_strdup(idx == 0 ? "data" : m->node[idx - 1].name))) {
            free(names);
            return MLTK_ERR_NOMEM;
        }
    }
    n->n_in = cnt;
    n->src = calloc((size_t)(cnt + 1), sizeof(int));
    n->in_shape = calloc((size_t)(cnt + 1), sizeof(mltk_shape));
    rc = n->src && n->in_shape ? MLTK_OK : MLTK_ERR_NOMEM;
    for (int j = 0; rc == MLTK_OK && j < cnt; j++) {
        if (strcmp(names[j], "data") == 0) {
            n->src[j] = -1;
            n->in_shape[j] = m->in_shape;
            continue;
        }
        int k = find_node(m, idx, names[j]);
        if (k < 0) {
            char sname[300];
            snprintf(sname, sizeof sname, "layer.%s", names[j]);
            int later = m->cfg && mltk_config_section(m->cfg, sname) != NULL;
            rc = mltk_errf(err, MLTK_ERR_CONFIG, "%s: input '%s' %s",
                           mltk_params_where(sec->params), names[j],
                           later ? "is defined after this layer (a layer may only read layers above it)"
                                 : "names no layer (and is not 'data')");
            break;
        }
        n->src[j] = k;
        n->in_shape[j] = m->node[k].out_shape;
        m->node[k].consumers++;
    }
    for (int j = 0; j < cnt; j++)
        free(names[j]);
    free(names);
    if (rc)
        return rc;

    char *perr = NULL;
    rc = n->iface->create(&n->self, sec->params, &perr);
    if (rc) {
        char *where = layer_where(m, n, perr);
        mltk_errf(err, rc, "%s: %s", where ? where : mltk_params_where(sec->params),
                  perr ? perr : mltk_status_str(rc));
        free(where);
        free(perr);
        return rc;
    }
    return setup_node(m, idx, err);
}

/* ---- precision ------------------------------------------------------------- */

/* [run] precision: the dtype of the layers' matrix products.  bf16 (fp16)
 * needs the backend's gemm (low-precision inputs, f32 result) and cast in
 * that dtype; the layers ask for the rest of their ops in setup.  (fp16's
 * loss scaling is the training loop's: [train] loss_scale.) */
static int read_precision(mltk_model *m, const mltk_config_t *cfg, char **err)
{
    const mltk_section *run = cfg ? mltk_config_section(cfg, "run") : NULL;
    m->prec = MLTK_F32;
    if (!run || !mltk_params_has(run->params, "precision"))
        return MLTK_OK;
    const char *name = mltk_params_str(run->params, "precision");
    if (!name || strcmp(name, "fp32") == 0)
        return MLTK_OK;
    mltk_dtype dt = strcmp(name, "bf16") == 0 ? MLTK_BF16 : MLTK_F16;
    int line = 0;
    for (int i = 0; i < run->params->n; i++)
        if (strcmp(run->params->defs[i]->name, "precision") == 0 && run->params->lines)
            line = run->params->lines[i];
    if (!mltk_op_supported(m->be, MLTK_OP_GEMM, dt))
        return mltk_errf(err, MLTK_ERR_UNSUPPORTED,
                         "%s:%d: [run] precision = %s: backend '%s' has no %s matrix product",
                         cfg->path, line, name, m->be->name, name);
    if (!mltk_op_supported(m->be, MLTK_OP_CAST, dt))
        return mltk_errf(err, MLTK_ERR_UNSUPPORTED,
                         "%s:%d: [run] precision = %s: backend '%s' cannot convert to %s (op "
                         "cast)", cfg->path, line, name, m->be->name, name);
    m->prec = dt;
    return MLTK_OK;
}

/* ---- activations ------------------------------------------------------------ */

static int alloc_activations(mltk_model *m, char **err)
{
    for (int i = 0; i < m->n_node; i++) {
        mltk_node *n = &m->node[i];
        int64_t sz = m->max_batch * mltk_shape_numel(&n->out_shape);
        if (be_alloc_floats(m->be, sz, &n->y) || be_alloc_floats(m->be, sz, &n->dy))
            return mltk_errf(err, MLTK_ERR_NOMEM, "layer '%s': cannot allocate %lld activations: "
                             "%s", n->name, (long long)sz, mltk_backend_error(m->be));
        if (alloc_node_views(m, n))
            return MLTK_ERR_NOMEM;
    }
    /* gradient edges: a producer read by several layers gets one buffer per
     * reading edge, summed into its dy before its own backward */
    for (int i = 0; i < m->n_node; i++) {
        mltk_node *n = &m->node[i];
        for (int j = 0; j < n->n_in; j++) {
            int s = n->src[j];
            if (s >= 0 && m->node[s].consumers > 1) {
                int64_t sz = m->max_batch * mltk_shape_numel(&m->node[s].out_shape);
                if (be_alloc_floats(m->be, sz, &n->edge[j]))
                    return mltk_errf(err, MLTK_ERR_NOMEM, "layer '%s': cannot allocate the "
                                     "gradient of its input '%s' (%lld floats): %s", n->name,
                                     m->node[s].name, (long long)sz,
                                     mltk_backend_error(m->be));
            }
        }
    }
    return MLTK_OK;
}

int mltk_model_create(mltk_model **out, const mltk_config_t *cfg, mltk_registry_t *reg,
                      const struct mltk_backend *be, const mltk_shape *in,
                      int64_t max_batch, uint64_t seed, char **err)
{
    mltk_model *m = calloc(1, sizeof(*m));
    if (!m)
        return MLTK_ERR_NOMEM;
    m->be = be;
    m->max_batch = max_batch;
    m->in_shape = *in;
    m->cfg = cfg;
    m->seed = seed;
    int rc = read_precision(m, cfg, err);
    if (rc) {
        free(m);
        return rc;
    }
    int nl = 0;
    for (int i = 0; i < cfg->n_sec; i++)
        nl += strncmp(cfg->sec[i].name, "layer.", 6) == 0;
    m->node = calloc((size_t)(nl + 1), sizeof(mltk_node));
    if (!m->node) {
        free(m);
        return MLTK_ERR_NOMEM;
    }
    for (int i = 0; i < cfg->n_sec && rc == MLTK_OK; i++) {
        if (strncmp(cfg->sec[i].name, "layer.", 6) != 0)
            continue;
        int idx = m->n_node++;
        rc = build_node(m, idx, &cfg->sec[i], reg, err);
    }
    if (rc == MLTK_OK && m->n_node == 0)
        rc = mltk_errf(err, MLTK_ERR_CONFIG, "%s: the model has no [layer.*] sections", cfg->path);
    for (int i = 0; rc == MLTK_OK && i + 1 < m->n_node; i++) {
        if (m->node[i].consumers == 0)
            rc = mltk_errf(err, MLTK_ERR_CONFIG,
                           "%s: output of layer '%s' is never used (only the last layer may be the model output)",
                           mltk_params_where(m->node[i].sec->params), m->node[i].name);
    }
    if (rc == MLTK_OK)
        rc = check_model_size(m, err);
    if (rc == MLTK_OK)
        rc = layout_params(m, err);
    if (rc == MLTK_OK)
        rc = alloc_activations(m, err);
    if (rc == MLTK_OK) {
        for (int i = 0; i < m->n_node; i++)
            fill_static_views(m, &m->node[i]);
        rc = init_params(m, seed);
        if (rc)
            mltk_errf(err, rc, "initialising parameters on backend '%s' failed", be->name);
    }
    if (rc == MLTK_OK)
        rc = mltk_model_params_changed(m, err);
    if (rc) {
        mltk_model_destroy(m);
        return rc;
    }
    *out = m;
    return MLTK_OK;
}

void mltk_model_destroy(mltk_model *m)
{
    if (!m)
        return;
    const struct mltk_backend *be = m->be;
    for (int i = 0; i < m->n_node; i++) {
        mltk_node *n = &m->node[i];
        if (n->iface && n->iface->destroy && n->self)
            n->iface->destroy(n->self);
        if (n->y) mltk_be_free(be, n->y);
        if (n->dy) mltk_be_free(be, n->dy);
        for (int j = 0; n->edge && j < n->n_in; j++)
            if (n->edge[j])
                mltk_be_free(be, n->edge[j]);
        free(n->edge);
        free(n->src);
        free(n->in_shape);
        free(n->x_t);
        free(n->dx_t);
        free(n->p_t);
        free(n->g_t);
        free(n->b_t);
        free(n->plp_t);
    }
    for (int i = 0; i < m->n_pe; i++)
        free(m->pe[i].name);
    for (int i = 0; i < m->n_bu; i++) {
        if (m->bu[i].ptr)
            mltk_be_free(be, m->bu[i].ptr);
        free(m->bu[i].name);
    }
    if (m->params) mltk_be_free(be, m->params);
    if (m->grads) mltk_be_free(be, m->grads);
    if (m->params_lp) mltk_be_free(be, m->params_lp);
    free(m->pe);
    free(m->seg_off);
    free(m->bu);
    free(m->node);
    free(m);
}

/* ---- running ------------------------------------------------------------------ */

static void fill_run(mltk_model *m, mltk_node *n, mltk_layer_run *r, const void *x,
                     int64_t batch, mltk_mode mode, uint64_t step)
{
    for (int j = 0; j < n->n_in; j++) {
        int s = n->src[j];
        n->x_t[j] = view(s < 0 ? (void *)x : m->node[s].y, batched(&n->in_shape[j], batch),
                         MLTK_F32);
        void *d = NULL;
        if (s >= 0)
            d = n->edge[j] ? n->edge[j] : m->node[s].dy;
        n->dx_t[j] = view(d, batched(&n->in_shape[j], batch), MLTK_F32);
    }
    *r = (mltk_layer_run){
        .be = m->be, .mode = mode, .batch = batch, .n_in = n->n_in,
        .x = n->x_t, .dx = n->dx_t, .params = n->p_t, .grads = n->g_t,
        .buffers = n->b_t, .seed = m->seed, .step = step, .frozen = n->frozen,
        .params_lp = n->plp_t,  /* NULL in f32 runs: the layers read params */
    };
}

/* "layer 'conv1' (conv2d): forward: cuda: cuDNN: ...": the backend's
 * message (which names the backend) when an op of the layer's failed,
 * else the status. */
static int layer_failed(const mltk_model *m, const mltk_node *n, const char *what, int rc,
                        char **err)
{
    const char *why = mltk_backend_error(m->be);
    if (why && *why)
        return mltk_errf(err, rc, "layer '%s' (%s): %s: %s", n->name, n->type, what, why);
    return mltk_errf(err, rc, "layer '%s' (%s): %s failed: %s", n->name, n->type, what,
                     mltk_status_str(rc));
}

int mltk_model_forward(mltk_model *m, const void *x, int64_t batch, mltk_mode mode,
                       uint64_t step, char **err)
{
    if (batch <= 0 || batch > m->max_batch)
        return mltk_errf(err, MLTK_ERR_INVALID, "batch of %lld rows (max %lld)",
                         (long long)batch, (long long)m->max_batch);
    m->last_x = x;
    for (int i = 0; i < m->n_node; i++) {
        mltk_node *n = &m->node[i];
        mltk_layer_run r;
        fill_run(m, n, &r, x, batch, mode, step);
        mltk_tensor y = view(n->y, batched(&n->out_shape, batch), MLTK_F32);
        r.y = &y;
        mltk_backend_clear_error(m->be);
        int rc = n->iface->forward(n->self, &r);
        if (rc)
            return layer_failed(m, n, "forward", rc, err);
    }
    return MLTK_OK;
}

int mltk_model_backward(mltk_model *m, int64_t batch, uint64_t step, char **err)
{
    for (int i = m->n_node - 1; i >= 0; i--) {
        mltk_node *n = &m->node[i];
        int rc;
        int64_t sz = batch * mltk_shape_numel(&n->out_shape);
        if (n->consumers > 1) {
            /* dy = sum of the gradients every reader produced */
            int first = 1;
            for (int k = i + 1; k < m->n_node; k++) {
                mltk_node *c = &m->node[k];
                for (int j = 0; j < c->n_in; j++) {
                    if (c->src[j] != i)
                        continue;
                    mltk_tensor dy = mltk_tensor_1d(n->dy, MLTK_F32, sz);
                    mltk_tensor e = mltk_tensor_1d(c->edge[j], MLTK_F32, sz);
                    rc = mltk_op_axpby(m->be, &dy, 1.0f, &e, first ? 0.0f : 1.0f);
                    if (rc)
                        return mltk_errf(err, rc, "layer '%s': summing gradients failed: %s",
                                         n->name, mltk_backend_error(m->be));
                    first = 0;
                }
            }
        }
        mltk_layer_run r;
        fill_run(m, n, &r, m->last_x, batch, MLTK_TRAIN, step);
        mltk_tensor y = view(n->y, batched(&n->out_shape, batch), MLTK_F32);
        mltk_tensor dy = view(n->dy, batched(&n->out_shape, batch), MLTK_F32);
        r.y = &y;
        r.dy = &dy;
        mltk_backend_clear_error(m->be);
        rc = n->iface->backward(n->self, &r);
        if (rc)
            return layer_failed(m, n, "backward", rc, err);
    }
    return MLTK_OK;
}

/* ---- locating non-finite values ---------------------------------------------------- */

/* 1 when the n floats at dev (backend memory) are all finite; -1 when they
 * cannot be read */
static int all_finite(const mltk_model *m, const float *dev, int64_t n)
{
    float *h = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!h || mltk_be_download(m->be, h, dev, (size_t)n * sizeof(float))) {
        free(h);
        return -1;
    }
    int ok = 1;
    for (int64_t i = 0; i < n && ok; i++)
        ok = isfinite(h[i]);
    free(h);
    return ok;
}

int mltk_model_find_nonfinite(const mltk_model *m, int64_t batch, int after_backward,
                              char *where, size_t cap)
{
    for (int i = 0; i < m->n_node; i++) {
        const mltk_node *n = &m->node[i];
        if (all_finite(m, n->y, batch * mltk_shape_numel(&n->out_shape)) == 0) {
            snprintf(where, cap, "the output of layer '%s' (%s)", n->name, n->type);
            return 1;
        }
    }
    if (!after_backward)
        return 0;
    for (int i = m->n_node - 1; i >= 0; i--) {
        const mltk_node *n = &m->node[i];
        if (all_finite(m, n->dy, batch * mltk_shape_numel(&n->out_shape)) == 0) {
            snprintf(where, cap, "the gradient of the output of layer '%s' (%s)", n->name,
                     n->type);
            return 1;
        }
        for (int j = n->n_params - 1; j >= 0; j--) {
            const mltk_pentry *p = &m->pe[n->p_first + j];
            if (all_finite(m, m->grads + p->offset, mltk_shape_numel(&p->shape)) == 0) {
                snprintf(where, cap, "the gradient of %s (layer '%s', %s)", p->name, n->name,
                         n->type);
                return 1;
            }
        }
    }
    return 0;
}

float *mltk_model_output(mltk_model *m)
{
    return m->node[m->n_node - 1].y;
}

float *mltk_model_output_grad(mltk_model *m)
{
    return m->node[m->n_node - 1].dy;
}

const mltk_shape *mltk_model_output_shape(const mltk_model *m)
{
    return &m->node[m->n_node - 1].out_shape;
}

float *mltk_model_params(mltk_model *m, int64_t *n)
{
    *n = m->n_floats;
    return m->params;
}

/* One cast of the whole flat buffer (padding included: it is zero) into
 * the low-precision copy; nothing in f32 runs. */
int mltk_model_params_changed(mltk_model *m, char **err)
{
    if (!m->params_lp || m->n_floats == 0)
        return MLTK_OK;
    mltk_tensor lp = mltk_tensor_1d(m->params_lp, m->prec, m->n_floats);
    mltk_tensor p = mltk_tensor_1d(m->params, MLTK_F32, m->n_floats);
    int rc = mltk_op_cast(m->be, &lp, &p);
    if (rc)
        return mltk_errf(err, rc, "refreshing the %s copy of the parameters failed: %s",
                         mltk_dtype_name(m->prec), mltk_backend_error(m->be));
    return MLTK_OK;
}

float *mltk_model_grads(mltk_model *m, int64_t *n)
{
    *n = m->n_floats;
    return m->grads;
}

/* ---- parameter tensors as segments of the flat buffers ------------------- */

const int64_t *mltk_model_segments(const mltk_model *m, int *n_seg)
{
    *n_seg = m->n_pe;
    return m->seg_off;
}

const char *mltk_model_segment_name(const mltk_model *m, int seg)
{
    return seg >= 0 && seg < m->n_pe ? m->pe[seg].name : NULL;
}

int mltk_model_segment_frozen(const mltk_model *m, int seg)
{
    return seg >= 0 && seg < m->n_pe && m->node[m->pe[seg].node].frozen;
}

double mltk_model_segment_lr_mult(const mltk_model *m, int seg)
{
    if (seg < 0 || seg >= m->n_pe)
        return 1.0;
    const mltk_node *n = &m->node[m->pe[seg].node];
    return n->frozen ? 0.0 : n->lr_mult;
}

/* ---- named tensors: what checkpoints and weight files hold ------------------- */

int mltk_model_n_tensors(const mltk_model *m)
{
    int n = m->n_pe;
    for (int i = 0; i < m->n_bu; i++)
        n += m->bu[i].state;
    return n;
}

int mltk_model_tensor(const mltk_model *m, int i, mltk_model_named *t)
{
    if (i < 0)
        return MLTK_ERR_INVALID;
    if (i < m->n_pe) {
        const mltk_pentry *p = &m->pe[i];
        *t = (mltk_model_named){ p->name, p->shape, m->params + p->offset, 0, p->node,
                                 m->node[p->node].frozen };
        return MLTK_OK;
    }
    i -= m->n_pe;
    for (int k = 0; k < m->n_bu; k++) {
        const mltk_bentry *b = &m->bu[k];
        if (b->state && i-- == 0) {
            *t = (mltk_model_named){ b->name, b->shape, b->ptr, 1, b->node,
                                     m->node[b->node].frozen };
            return MLTK_OK;
        }
    }
    return MLTK_ERR_INVALID;
}

int mltk_model_find_tensor(const mltk_model *m, const char *name, mltk_model_named *t)
{
    int n = mltk_model_n_tensors(m);
    for (int i = 0; i < n; i++)
        if (mltk_model_tensor(m, i, t) == MLTK_OK && strcmp(t->name, name) == 0)
            return i;
    return -1;
}

const char *mltk_model_layer_name(const mltk_model *m, int node)
{
    return node >= 0 && node < m->n_node ? m->node[node].name : NULL;
}

void mltk_model_print(const mltk_model *m, FILE *out)
{
    char buf[128];
    int64_t total = 0;
    fprintf(out, "%-16s %-14s %-20s %-18s %12s\n", "layer", "type", "input", "output", "params");
    fprintf(out, "%-16s %-14s %-20s %-18s %12s\n", "-----", "----", "-----", "------", "------");
    fprintf(out, "%-16s %-14s %-20s %-18s %12d\n", "data", "-", "-",
            mltk_shape_str(&m->in_shape, buf, sizeof buf), 0);
    for (int i = 0; i < m->n_node; i++) {
        const mltk_node *n = &m->node[i];
        int64_t np = 0;
        for (int j = 0; j < n->n_params; j++)
            np += mltk_shape_numel(&m->pe[n->p_first + j].shape);
        total += np;
        char ins[64] = "";
        size_t used = 0;
        for (int j = 0; j < n->n_in && used < sizeof ins; j++)
            used += (size_t)snprintf(ins + used, sizeof ins - used, "%s%s", j ? "," : "",
                                     n->src[j] < 0 ? "data" : m->node[n->src[j]].name);
        fprintf(out, "%-16s %-14s %-20s %-18s %12lld\n", n->name, n->type, ins,
                mltk_shape_str(&n->out_shape, buf, sizeof buf), (long long)np);
    }
    fprintf(out, "total parameters: %lld (%.2f MiB fp32)\n", (long long)total,
            (double)total * 4.0 / (1024.0 * 1024.0));
    if (m->params_lp)
        fprintf(out, "precision: %s matrix products with f32 accumulation (a %s copy of the "
                "parameters, %.2f MiB; f32 master weights)\n", mltk_dtype_name(m->prec),
                mltk_dtype_name(m->prec),
                (double)m->n_floats * (double)mltk_dtype_size(m->prec) / (1024.0 * 1024.0));
}

/* ---- a single layer, for tests and tools ----------------------------------- */

int mltk_single_layer_create(mltk_single_layer **out, const struct mltk_layer_i *iface,
                             void *self, const struct mltk_backend *be, int n_in,
                             const mltk_shape *in, int64_t max_batch, uint64_t seed,
                             char **err)
{
    mltk_single_layer *sl = calloc(1, sizeof(*sl));
    mltk_model *m = calloc(1, sizeof(*m));
    if (!sl || !m) {
        free(sl);
        free(m);
        return MLTK_ERR_NOMEM;
    }
    m->be = be;
    m->max_batch = max_batch;
    m->n_node = 1;
    m->node = calloc(1, sizeof(mltk_node));
    int rc = m->node ? MLTK_OK : MLTK_ERR_NOMEM;
    if (rc == MLTK_OK) {
        mltk_node *n = &m->node[0];
        n->name = "layer";
        n->type = "layer";
        n->lr_mult = 1.0;
        n->iface = iface;
        n->self = NULL;  /* owned by the caller */
        n->n_in = n_in;
        n->in_shape = calloc((size_t)(n_in + 1), sizeof(mltk_shape));
        n->src = calloc((size_t)(n_in + 1), sizeof(int));
        if (!n->in_shape || !n->src)
            rc = MLTK_ERR_NOMEM;
        for (int j = 0; rc == MLTK_OK && j < n_in; j++) {
            n->in_shape[j] = in[j];
            n->src[j] = -1;
        }
        if (rc == MLTK_OK) {
            mltk_layer_setup_t s = { m, 0, 0, NULL };
            char *perr = NULL;
            rc = iface->setup(self, &s, n_in, in, &n->out_shape, &perr);
            if (rc) {
                const char *why = s.failed && rc == MLTK_ERR_UNSUPPORTED ? s.fail : perr;
                mltk_errf(err, rc, "setup: %s", why ? why : mltk_status_str(rc));
                free(perr);
            }
            free(s.fail);
        }
        if (rc == MLTK_OK)
            rc = layout_params(m, err);
        if (rc == MLTK_OK)
            rc = alloc_node_views(m, n);
        if (rc == MLTK_OK) {
            fill_static_views(m, n);
            rc = init_params(m, seed);
        }
        if (rc == MLTK_OK) {
            sl->out = n->out_shape;
            sl->n_params = n->n_params;
            sl->params = n->p_t;
            sl->grads = n->g_t;
            sl->n_buffers = n->n_buffers;
            sl->buffers = n->b_t;
        }
    }
    sl->priv = m;
    if (rc) {
        mltk_single_layer_destroy(sl, be);
        return rc;
    }
    *out = sl;
    return MLTK_OK;
}

void mltk_single_layer_destroy(mltk_single_layer *sl, const struct mltk_backend *be)
{
    (void)be;
    if (!sl)
        return;
    mltk_model_destroy(sl->priv);  /* node self is NULL: not destroyed */
    free(sl);
}
