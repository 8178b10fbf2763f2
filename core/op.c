/* op.c - the op table of backend.h: checked once, then dispatched.
 *
 * What this is: the one place where an op call's contract is checked
 * (tensor count, presence, dtypes, layouts, shapes, parameters) before a
 * backend's `run` sees it; mltk_op_run() and the typed wrappers
 * (mltk_op_gemm() ...) that build a call on the stack and run it; the
 * workspace and support queries; the memory calls through the core
 * (mltk_be_alloc() ...) that keep the backend's last error message and
 * count host synchronisations; and the per-backend state behind
 * struct mltk_backend.state.
 *
 * The checks are those the ABI 1 backends made, moved here and written
 * once: everything the cpu and cuda backends refused is refused here,
 * with a message that names the op and prints the shapes ("gemm: op(A) is
 * (3, 4) but op(B) is (5, 2)").  Checks read shapes, dtypes, strides and
 * params only, never tensor data.  Class labels are checked once, when
 * the core loads a data set (core/data.c); the other values in backend
 * memory (embedding ids, gather indices) stay with the backends, which
 * report them as MLTK_ERR_DATA or MLTK_ERR_INVALID.
 *
 * Cost: a call that passes makes no allocation and formats no text; the
 * check is a few comparisons per tensor.  Messages are formatted into a
 * stack buffer on failure only.
 *
 * What this is not: a kernel.  Nothing here touches tensor data.
 */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"

/* ---- backend state --------------------------------------------------------- */

struct mltk_backend_state {
    char    *err;     /* the last error message (malloc()ed), or NULL */
    int      err_oom; /* the last message could not be kept: out of memory */
    uint64_t syncs;   /* downloads and syncs so far (atomic) */
};

struct mltk_backend_state *mltk_backend_state_new(void)
{
    return calloc(1, sizeof(struct mltk_backend_state));
}

void mltk_backend_state_free(struct mltk_backend_state *st)
{
    if (!st)
        return;
    free(st->err);
    free(st);
}

static void set_error_v(const struct mltk_backend *be, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    struct mltk_backend_state *st = be ? be->state : NULL;
    if (!st) {
        /* a backend built by hand (tests): the log is all there is */
        mltk_log(MLTK_LOG_WARN, "%s", s ? s : "out of memory formatting a backend error");
        free(s);
        return;
    }
    free(st->err);
    st->err = s;
    st->err_oom = s == NULL;
}

void mltk_backend_set_error(const struct mltk_backend *be, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error_v(be, fmt, ap);
    va_end(ap);
}

void mltk_backend_clear_error(const struct mltk_backend *be)
{
    if (!be || !be->state)
        return;
    free(be->state->err);
    be->state->err = NULL;
    be->state->err_oom = 0;
}

const char *mltk_backend_error(const struct mltk_backend *be)
{
    if (!be || !be->state)
        return "";
    if (be->state->err)
        return be->state->err;
    return be->state->err_oom ? "out of memory keeping a backend error message" : "";
}

static const char *be_name(const struct mltk_backend *be)
{
    return be && be->name ? be->name : "backend";
}

/* The vtable as the plugin built it contains member m, and it is set. */
#define VT_HAS(i, m) \
    ((i)->size >= offsetof(struct mltk_backend_i, m) + sizeof((i)->m) && (i)->m != NULL)

/* ---- the op table ---------------------------------------------------------- */

/* What a check function sees: the call, its entry, which tensors are
 * present, and where a message goes.  Names and shapes for messages are
 * formatted into the scratch buffers on failure only. */
typedef struct chk chk;
typedef int (*check_fn)(chk *k);

typedef struct op_entry {
    mltk_op_info info;
    /* per tensor, the dtype it must have: 'o' the op's (mltk_op_dtype),
     * 'f' f32, 'i' i32, 'a' any (the op's check says) */
    const char  *dtypes;
    unsigned     strided;   /* bit i: tensor i may have row strides */
    int          ws;        /* the call takes a workspace (conv) */
    check_fn     check;
} op_entry;

struct chk {
    const mltk_op_call *c;
    const op_entry     *e;
    unsigned            present;   /* bit i: tensor i is present */
    int                 shapes_only;
    mltk_dtype          dt;        /* the op's dtype */
    int                 dt_from;   /* the tensor it was taken from, or -1 */
    char               *msg;
    size_t              len;
    char                name[2][32];
    char                shape[2][160];
};

#define MSG_LEN 512

static int fail(chk *k, int status, const char *fmt, ...) MLTK_PRINTF(3, 4);
static int fail(chk *k, int status, const char *fmt, ...)
{
    int n = snprintf(k->msg, k->len, "%s: ", k->e->info.name);
    if (n >= 0 && (size_t)n < k->len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(k->msg + n, k->len - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return status;
}

/* The name of tensor i ("A"), from the table's "C,A,B,bias", in slot s. */
static const char *nm(chk *k, int i, int s)
{
    const char *p = k->e->info.tensor_names;
    for (int j = 0; j < i && p; j++) {
        p = strchr(p, ',');
        if (p)
            p++;
    }
    if (!p) {
        snprintf(k->name[s], sizeof k->name[s], "tensor %d", i);
        return k->name[s];
    }
    size_t n = strcspn(p, ",");
    if (n >= sizeof k->name[s])
        n = sizeof k->name[s] - 1;
    memcpy(k->name[s], p, n);
    k->name[s][n] = '\0';
    return k->name[s];
}

/* The shape of tensor i, "(3, 4)", in slot s. */
static const char *sh(chk *k, int i, int s)
{
    return mltk_shape_str(&k->c->t[i].shape, k->shape[s], sizeof k->shape[s]);
}

#define T(i)      (&k->c->t[(i)])
#define HAS(i)    ((k->present >> (i)) & 1u)
#define DIM(i, d) (k->c->t[(i)].shape.dim[(d)])
#define NDIM(i)   (k->c->t[(i)].shape.ndim)
#define NUMEL(i)  mltk_shape_numel(&k->c->t[(i)].shape)
#define TRY(x) do { int rc_ = (x); if (rc_) return rc_; } while (0)

static int64_t mul_sat(int64_t a, int64_t b)
{
    int64_t r;
    return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}

/* product of dims [from, to) of tensor i */
static int64_t dims_prod(chk *k, int i, int from, int to)
{
    int64_t n = 1;
    for (int d = from; d < to; d++)
        n *= DIM(i, d);
    return n;
}

static int has_strides(const mltk_tensor *t)
{
    for (int d = 0; d < t->shape.ndim; d++)
        if (t->stride[d] != 0)
            return 1;
    return 0;
}

/* ---- reusable shape checks ---- */

static int need_numel(chk *k, int i, const char *what, int64_t n)
{
    if (NUMEL(i) == n)
        return MLTK_OK;
    return fail(k, MLTK_ERR_SHAPE, "%s is %s with %lld elements but %s = %lld", nm(k, i, 0),
                sh(k, i, 0), (long long)NUMEL(i), what, (long long)n);
}

static int same_numel(chk *k, int i, int j)
{
    if (NUMEL(i) == NUMEL(j))
        return MLTK_OK;
    return fail(k, MLTK_ERR_SHAPE, "%s is %s but %s is %s: they need the same number of "
                "elements", nm(k, i, 0), sh(k, i, 0), nm(k, j, 1), sh(k, j, 1));
}

static int same_shape(chk *k, int i, int j)
{
    if (mltk_shape_equal(&T(i)->shape, &T(j)->shape))
        return MLTK_OK;
    return fail(k, MLTK_ERR_SHAPE, "%s is %s but %s is %s", nm(k, i, 0), sh(k, i, 0),
                nm(k, j, 1), sh(k, j, 1));
}

/* same_numel for each present tensor of `mask` against tensor `ref`
 * (named in call order in messages) */
static int same_numel_all(chk *k, int ref, unsigned mask)
{
    for (int i = 0; i < k->c->n_t; i++)
        if (i != ref && (mask >> i & 1u) && HAS(i))
            TRY(i < ref ? same_numel(k, i, ref) : same_numel(k, ref, i));
    return MLTK_OK;
}

static int need_ndim(chk *k, int i, int nd, const char *form)
{
    if (NDIM(i) == nd)
        return MLTK_OK;
    return fail(k, MLTK_ERR_SHAPE, "%s is %s; expected %s", nm(k, i, 0), sh(k, i, 0), form);
}

static int need_min_ndim(chk *k, int i, int nd, const char *form)
{
    if (NDIM(i) >= nd)
        return MLTK_OK;
    return fail(k, MLTK_ERR_SHAPE, "%s is %s; expected %s", nm(k, i, 0), sh(k, i, 0), form);
}

static int need_scalar(chk *k, int i)
{
    if (NUMEL(i) == 1)
        return MLTK_OK;
    return fail(k, MLTK_ERR_SHAPE, "%s is %s; it must be a 1-element f32 scalar",
                nm(k, i, 0), sh(k, i, 0));
}

/* tensor i is 4-d (a, b, c, d) as a descriptor says */
static int need_dims4(chk *k, int i, const char *form, int64_t a, int64_t b, int64_t c,
                      int64_t d)
{
    if (NDIM(i) == 4 && DIM(i, 0) == a && DIM(i, 1) == b && DIM(i, 2) == c && DIM(i, 3) == d)
        return MLTK_OK;
    return fail(k, MLTK_ERR_SHAPE, "%s is %s but the desc says %s = (%lld, %lld, %lld, %lld)",
                nm(k, i, 0), sh(k, i, 0), form, (long long)a, (long long)b, (long long)c,
                (long long)d);
}

static const char *const act_names[] = {
    "none", "relu", "leaky_relu", "sigmoid", "tanh", "elu", "gelu_tanh", "gelu"
};

static int act_valid(mltk_act act)
{
    return (int)act >= MLTK_ACT_NONE && (int)act <= MLTK_ACT_GELU;
}

static int need_act(chk *k, mltk_act act)
{
    if (act_valid(act))
        return MLTK_OK;
    return fail(k, MLTK_ERR_INVALID, "act = %d is not an activation (0 to %d)", (int)act,
                (int)MLTK_ACT_GELU);
}

/* ---- elementwise ---- */

static int chk_fill(chk *k)
{
    (void)k;
    return MLTK_OK;
}

/* [y | x] and [z | x, y]: same n */
static int chk_same_n(chk *k)
{
    return same_numel_all(k, 0, ~0u);
}

static int chk_act_forward(chk *k)
{
    const mltk_act_params *p = k->c->params;
    TRY(need_act(k, p->act));
    return same_numel(k, 0, 1);
}

/* [dx | dy, x opt, y opt]: the rule of backend.h -- relu, sigmoid, tanh
 * and leaky_relu read y or x (either will do), elu y when alpha >= 0 else
 * x, the gelus x */
static int chk_act_backward(chk *k)
{
    const mltk_act_params *p = k->c->params;
    TRY(need_act(k, p->act));
    TRY(same_numel_all(k, 0, ~0u));
    switch (p->act) {
    case MLTK_ACT_RELU: case MLTK_ACT_LEAKY_RELU: case MLTK_ACT_SIGMOID: case MLTK_ACT_TANH:
        if (!HAS(2) && !HAS(3))
            return fail(k, MLTK_ERR_INVALID, "%s's gradient needs x or y (the "
                        "activation's input or output); both are absent", act_names[p->act]);
        break;
    case MLTK_ACT_ELU:
        if (!HAS(2) && !(HAS(3) && p->alpha >= 0.0f))
            return fail(k, MLTK_ERR_INVALID, "elu's gradient is read from x (the "
                        "activation's input), or from y when alpha >= 0; neither is given");
        break;
    case MLTK_ACT_GELU_TANH: case MLTK_ACT_GELU:
        if (!HAS(2))
            return fail(k, MLTK_ERR_INVALID, "%s's gradient is read from x (the "
                        "activation's input), which is absent", act_names[p->act]);
        break;
    case MLTK_ACT_NONE:
        break;
    }
    return MLTK_OK;
}

static int chk_cast(chk *k)
{
    for (int i = 0; i < 2; i++)
        if (!mltk_dtype_is_float(T(i)->dtype))
            return fail(k, MLTK_ERR_INVALID, "%s is %s; cast converts between f32, bf16 "
                        "and f16", nm(k, i, 0), mltk_dtype_name(T(i)->dtype));
    return same_numel(k, 0, 1);
}

static int chk_clamp(chk *k)
{
    const mltk_clamp_params *p = k->c->params;
    if (!(p->lo <= p->hi))
        return fail(k, MLTK_ERR_INVALID, "lo = %g is not at most hi = %g", (double)p->lo,
                    (double)p->hi);
    return MLTK_OK;
}

/* ---- linear algebra ---- */

/* One gemm operand's leading (row) stride: at least its row length and
 * within the int range of BLAS.  The matrix is dims [o, o+1] of tensor i. */
static int gemm_ld(chk *k, int i, int o, const char *label)
{
    const mltk_tensor *t = T(i);
    int64_t cols = t->shape.dim[o + 1];
    int64_t ld = mltk_tensor_stride(t, o);
    if (has_strides(t) && ld < (cols > 1 ? cols : 1))
        return fail(k, MLTK_ERR_INVALID, "%s is %s with row stride %lld: rows overlap (the "
                    "row stride must be at least %lld)", label, sh(k, i, 0), (long long)ld,
                    (long long)(cols > 1 ? cols : 1));
    if (ld > INT_MAX)
        return fail(k, MLTK_ERR_INVALID, "%s is %s with row stride %lld, beyond the int "
                    "range of BLAS", label, sh(k, i, 0), (long long)ld);
    return MLTK_OK;
}

/* [C | A, B, bias opt]: C (M,N) = op(A) (M,K) op(B) (K,N), or a batch of
 * them when all three are 3-d */
static int chk_gemm(chk *k)
{
    const mltk_gemm_params *p = k->c->params;
    TRY(need_act(k, p->act));
    int nd = NDIM(0);
    if (nd != 2 && nd != 3)
        return fail(k, MLTK_ERR_SHAPE, "C is %s; expected (M, N) or a batch (batch, M, N)",
                    sh(k, 0, 0));
    for (int i = 1; i <= 2; i++)
        if (NDIM(i) != nd)
            return fail(k, MLTK_ERR_SHAPE, "%s is %s but C is %s: A, B and C are all 2-d, "
                        "or all 3-d for a batch (stride[0] = 0 reuses one matrix)",
                        nm(k, i, 0), sh(k, i, 0), sh(k, 0, 1));
    int o = nd - 2;
    int64_t M = p->ta ? DIM(1, o + 1) : DIM(1, o), Ka = p->ta ? DIM(1, o) : DIM(1, o + 1);
    int64_t Kb = p->tb ? DIM(2, o + 1) : DIM(2, o), N = p->tb ? DIM(2, o) : DIM(2, o + 1);
    if (Ka != Kb)
        return fail(k, MLTK_ERR_SHAPE, "op(A) is (%lld, %lld) but op(B) is (%lld, %lld)%s",
                    (long long)M, (long long)Ka, (long long)Kb, (long long)N,
                    p->ta || p->tb ? " (after the transposes)" : "");
    if (DIM(0, o) != M || DIM(0, o + 1) != N)
        return fail(k, MLTK_ERR_SHAPE, "C is %s but op(A) op(B) is (%lld, %lld)",
                    sh(k, 0, 0), (long long)M, (long long)N);
    if (M > INT_MAX || N > INT_MAX || Ka > INT_MAX)
        return fail(k, MLTK_ERR_INVALID, "M, N, K = %lld, %lld, %lld: beyond the int range "
                    "of BLAS", (long long)M, (long long)N, (long long)Ka);
    if (nd == 3) {
        int64_t nb = DIM(0, 0);
        for (int i = 1; i <= 2; i++)
            if (DIM(i, 0) != nb)
                return fail(k, MLTK_ERR_SHAPE, "%s is %s, a batch of %lld, but C is %s, a "
                            "batch of %lld", nm(k, i, 0), sh(k, i, 0), (long long)DIM(i, 0),
                            sh(k, 0, 1), (long long)nb);
        if (nb > INT_MAX)
            return fail(k, MLTK_ERR_INVALID, "a batch of %lld products is beyond the int "
                        "range of BLAS", (long long)nb);
        /* the matrices of C must not overlap: they are written at once */
        int64_t ldc = mltk_tensor_stride(T(0), 1), bs = mltk_tensor_stride(T(0), 0);
        if (nb > 1 && M > 0 && N > 0 && bs < (M - 1) * ldc + N)
            return fail(k, MLTK_ERR_INVALID, "C is %s with batch stride %lld: its matrices "
                        "overlap (at least %lld)", sh(k, 0, 0), (long long)bs,
                        (long long)((M - 1) * ldc + N));
    }
    TRY(gemm_ld(k, 0, o, "C"));
    TRY(gemm_ld(k, 1, o, "A"));
    TRY(gemm_ld(k, 2, o, "B"));
    if (T(0)->dtype != MLTK_F32 && T(0)->dtype != k->dt)
        return fail(k, MLTK_ERR_INVALID, "C is %s; it must be f32 or the op's dtype %s",
                    mltk_dtype_name(T(0)->dtype), mltk_dtype_name(k->dt));
    if (HAS(3))
        TRY(need_numel(k, 3, "N (the columns of C)", N));
    return MLTK_OK;
}

/* [y (rows, cols) | b opt (cols)] */
static int chk_bias_act(chk *k)
{
    const mltk_act_params *p = k->c->params;
    TRY(need_act(k, p->act));
    if (!HAS(1))
        return MLTK_OK;
    TRY(need_min_ndim(k, 0, 1, "(rows, cols)"));
    return need_numel(k, 1, "cols (the last dim of y)", DIM(0, NDIM(0) - 1));
}

/* [out (cols) | x (rows, cols)] */
static int chk_sum_rows(chk *k)
{
    TRY(need_min_ndim(k, 1, 1, "(rows, cols)"));
    return need_numel(k, 0, "cols (the last dim of x)", DIM(1, NDIM(1) - 1));
}

/* ---- reductions ---- */

/* [out scalar | x] */
static int chk_reduce(chk *k)
{
    return need_scalar(k, 0);
}

static int chk_scale_to_norm(chk *k)
{
    const mltk_norm_params *p = k->c->params;
    TRY(need_scalar(k, 1));
    if (!(p->max_norm >= 0.0f))
        return fail(k, MLTK_ERR_INVALID, "max_norm = %g; it must be >= 0",
                    (double)p->max_norm);
    return MLTK_OK;
}

/* ---- losses and metrics ---- */

/* logits (N, C) at `li`, labels (N) at li + 1; C = 0 with N > 0 is
 * `c0_status` (no label can lie in [0, 0)) */
static int logits_labels(chk *k, int li, int c0_status)
{
    TRY(need_ndim(k, li, 2, "(N, C)"));
    int64_t N = DIM(li, 0), C = DIM(li, 1);
    TRY(need_numel(k, li + 1, "N (the rows of logits)", N));
    if (N > 0 && C == 0)
        return fail(k, c0_status, "logits is %s: no class for a label to name",
                    sh(k, li, 0));
    return MLTK_OK;
}

/* [loss scalar, dlogits opt | logits (N,C), labels (N) i32 or (N,C) f32,
 * weights opt (C)] */
static int chk_softmax_xent(chk *k)
{
    const mltk_xent_params *p = k->c->params;
    TRY(need_scalar(k, 0));
    if (T(3)->dtype == MLTK_F32) {
        /* probabilities: logits' shape */
        TRY(need_ndim(k, 2, 2, "(N, C)"));
        if (NDIM(3) != 2)
            return fail(k, MLTK_ERR_INVALID, "labels is f32; it must be i32 (N) class "
                        "indices, or f32 probabilities of logits' shape %s, but it is %s",
                        sh(k, 2, 0), sh(k, 3, 1));
        TRY(same_shape(k, 3, 2));
        if (DIM(2, 0) > 0 && DIM(2, 1) == 0)
            return fail(k, MLTK_ERR_DATA, "logits is %s: no class", sh(k, 2, 0));
    } else if (T(3)->dtype == MLTK_I32) {
        TRY(logits_labels(k, 2, MLTK_ERR_DATA));
    } else {
        return fail(k, MLTK_ERR_INVALID, "labels is %s; it must be i32 (N) class indices "
                    "or f32 (N, C) probabilities", mltk_dtype_name(T(3)->dtype));
    }
    if (HAS(1))
        TRY(same_shape(k, 1, 2));
    if (HAS(4))
        TRY(need_numel(k, 4, "C (the columns of logits)", DIM(2, 1)));
    if (!(p->label_smoothing >= 0.0f && p->label_smoothing <= 1.0f))
        return fail(k, MLTK_ERR_INVALID, "label_smoothing = %g; it must lie in [0, 1]",
                    (double)p->label_smoothing);
    return MLTK_OK;
}

/* [correct scalar | logits (N,C), labels (N) i32] */
static int chk_count_correct(chk *k)
{
    TRY(need_scalar(k, 0));
    return logits_labels(k, 1, MLTK_ERR_INVALID);
}

/* [loss scalar, dpred opt | pred, target], same n */
static int chk_pointwise_loss(chk *k)
{
    const mltk_pointwise_params *p = k->c->params;
    TRY(need_scalar(k, 0));
    if (p->kind != MLTK_LOSS_MSE && p->kind != MLTK_LOSS_L1 && p->kind != MLTK_LOSS_BCE_LOGITS)
        return fail(k, MLTK_ERR_INVALID, "kind = %d is not a pointwise loss (mse 0, l1 1, "
                    "bce_logits 2)", (int)p->kind);
    TRY(same_numel(k, 3, 2));
    if (HAS(1))
        TRY(same_numel(k, 1, 2));
    return MLTK_OK;
}

/* [loss scalar, dstudent opt | student (N,C), teacher (N,C)] */
static int chk_kl_div_logits(chk *k)
{
    const mltk_kl_params *p = k->c->params;
    TRY(need_scalar(k, 0));
    TRY(need_ndim(k, 2, 2, "(N, C)"));
    TRY(same_shape(k, 3, 2));
    if (HAS(1))
        TRY(same_shape(k, 1, 2));
    if (!(p->T > 0.0f) || isinf(p->T))
        return fail(k, MLTK_ERR_INVALID, "T = %g; the temperature must be positive and "
                    "finite", (double)p->T);
    if (DIM(2, 0) > 0 && DIM(2, 1) == 0)
        return fail(k, MLTK_ERR_DATA, "student is %s: no classes", sh(k, 2, 0));
    return MLTK_OK;
}

/* ---- data movement ---- */

/* [dst (n, ...) | src (M, ...), idx (n) i32]: rows are everything after
 * dim 0, of the same number of elements */
static int chk_gather_rows(chk *k)
{
    TRY(need_min_ndim(k, 0, 1, "(n, ...)"));
    TRY(need_min_ndim(k, 1, 1, "(M, ...)"));
    int64_t rd = dims_prod(k, 0, 1, NDIM(0)), rs = dims_prod(k, 1, 1, NDIM(1));
    if (rd != rs)
        return fail(k, MLTK_ERR_SHAPE, "dst is %s but src is %s: their rows (everything "
                    "after dim 0) differ", sh(k, 0, 0), sh(k, 1, 1));
    return need_numel(k, 2, "n (the rows of dst)", DIM(0, 0));
}

/* [y (n,C,H,W) | x (M,C,H,W), idx (n) i32] */
static int chk_gather_augment_2d(chk *k)
{
    const mltk_augment_params *p = k->c->params;
    TRY(need_ndim(k, 0, 4, "(n, C, H, W)"));
    TRY(need_ndim(k, 1, 4, "(M, C, H, W)"));
    if (DIM(0, 1) != DIM(1, 1) || DIM(0, 2) != DIM(1, 2) || DIM(0, 3) != DIM(1, 3))
        return fail(k, MLTK_ERR_SHAPE, "y is %s but x is %s: their images (C, H, W) differ",
                    sh(k, 0, 0), sh(k, 1, 1));
    TRY(need_numel(k, 2, "n (the rows of y)", DIM(0, 0)));
    if (p->pad < 0 || p->pad > INT32_MAX / 2 - 1)
        return fail(k, MLTK_ERR_INVALID, "pad = %lld; it must lie in [0, %d]",
                    (long long)p->pad, INT32_MAX / 2 - 1);
    return MLTK_OK;
}

/* [dst (rows, cols) | src (rows, cols)], rows may be strided */
static int chk_copy_2d(chk *k)
{
    TRY(need_ndim(k, 0, 2, "(rows, cols)"));
    TRY(need_ndim(k, 1, 2, "(rows, cols)"));
    TRY(same_shape(k, 0, 1));
    int64_t rows = DIM(0, 0), cols = DIM(0, 1);
    for (int i = 0; i < 2; i++) {
        int64_t ld = mltk_tensor_stride(T(i), 0);
        if (rows > 1 && ld < cols)
            return fail(k, MLTK_ERR_INVALID, "%s is %s with row stride %lld: rows overlap "
                        "(the row stride must be at least %lld)", nm(k, i, 0), sh(k, i, 0),
                        (long long)ld, (long long)cols);
    }
    return MLTK_OK;
}

/* rows (n, dim) at `yi` against table (vocab, dim) at `ti` and ids (n) at
 * `ii`: y may carry more leading dims, (B, T, dim) with ids (B, T).  Ids
 * with an empty vocabulary are bad data, except in a forward of dim = 0,
 * which reads none (as in ABI 1): `dim0_reads_none`. */
static int embedding_shapes(chk *k, int yi, int ti, int ii, const char *ylabel,
                            int dim0_reads_none)
{
    TRY(need_ndim(k, ti, 2, "(vocab, dim)"));
    TRY(need_min_ndim(k, yi, 2, "(n, dim)"));
    int64_t dim = DIM(ti, 1);
    if (DIM(yi, NDIM(yi) - 1) != dim)
        return fail(k, MLTK_ERR_SHAPE, "%s is %s but %s is %s: their rows (dim) differ",
                    nm(k, yi, 0), sh(k, yi, 0), nm(k, ti, 1), sh(k, ti, 1));
    TRY(need_numel(k, ii, ylabel, dims_prod(k, yi, 0, NDIM(yi) - 1)));
    if (DIM(ti, 0) == 0 && NUMEL(ii) > 0 && (dim > 0 || !dim0_reads_none))
        return fail(k, MLTK_ERR_DATA, "%s is %s: no id can lie in [0, vocab)", nm(k, ti, 0),
                    sh(k, ti, 0));
    return MLTK_OK;
}

/* [y (n,dim) | table (vocab,dim), ids (n) f32] */
static int chk_embedding_forward(chk *k)
{
    return embedding_shapes(k, 0, 1, 2, "n (the rows of y)", 1);
}

/* [dtable (vocab,dim) | dy (n,dim), ids (n) f32] */
static int chk_embedding_backward(chk *k)
{
    return embedding_shapes(k, 1, 0, 2, "n (the rows of dy)", 0);
}

/* ---- random numbers ---- */

static int chk_rng(chk *k)
{
    (void)k;
    return MLTK_OK;
}

/* [y, mask | x] */
static int chk_dropout(chk *k)
{
    const mltk_dropout_params *p = k->c->params;
    TRY(same_numel_all(k, 2, ~0u));
    if (!(p->p >= 0.0f && p->p < 1.0f))
        return fail(k, MLTK_ERR_INVALID, "p = %g; it must lie in [0, 1)", (double)p->p);
    return MLTK_OK;
}

/* ---- convolution and pooling ---- */

/* A descriptor field within [lo, INT_MAX] (every backend's dimensions
 * are ints). */
static int desc_field(chk *k, const char *name, int64_t v, int64_t lo)
{
    if (v < lo)
        return fail(k, MLTK_ERR_INVALID, "desc: %s = %lld; it must be at least %lld", name,
                    (long long)v, (long long)lo);
    if (v > INT_MAX)
        return fail(k, MLTK_ERR_INVALID, "desc: %s = %lld is beyond the int range of the "
                    "backends", name, (long long)v);
    return MLTK_OK;
}

/* P (or Q) as the formula gives it from the extent eh = H + 2 pad -
 * window, and that the window fits the padded input. */
static int desc_out(chk *k, const char *out, int64_t have, int64_t eh, int64_t stride,
                    const char *formula)
{
    if (eh < 0)
        return fail(k, MLTK_ERR_INVALID, "desc: the window does not fit the padded input "
                    "(%s = %lld)", formula, (long long)eh);
    int64_t want = eh / stride + 1;
    if (have != want)
        return fail(k, MLTK_ERR_INVALID, "desc: %s = %lld but (%s) / stride + 1 = %lld", out,
                    (long long)have, formula, (long long)want);
    return MLTK_OK;
}

/* The conv descriptor is consistent (as the ABI 1 backends checked it):
 * positive sizes, P and Q as the formula gives them, groups dividing C
 * and K, and per-image sizes within the int range of BLAS and cuDNN. */
static int conv_desc(chk *k, const mltk_conv2d_desc *d)
{
    TRY(desc_field(k, "N", d->N, 0));
    TRY(desc_field(k, "C", d->C, 1));
    TRY(desc_field(k, "H", d->H, 1));
    TRY(desc_field(k, "W", d->W, 1));
    TRY(desc_field(k, "K", d->K, 1));
    TRY(desc_field(k, "R", d->R, 1));
    TRY(desc_field(k, "S", d->S, 1));
    TRY(desc_field(k, "P", d->P, 1));
    TRY(desc_field(k, "Q", d->Q, 1));
    TRY(desc_field(k, "stride_h", d->stride_h, 1));
    TRY(desc_field(k, "stride_w", d->stride_w, 1));
    TRY(desc_field(k, "pad_h", d->pad_h, 0));
    TRY(desc_field(k, "pad_w", d->pad_w, 0));
    TRY(desc_field(k, "dil_h", d->dil_h, 1));
    TRY(desc_field(k, "dil_w", d->dil_w, 1));
    TRY(desc_field(k, "groups", d->groups, 1));
    if (d->C % d->groups || d->K % d->groups)
        return fail(k, MLTK_ERR_INVALID, "desc: groups = %lld must divide C = %lld and "
                    "K = %lld", (long long)d->groups, (long long)d->C, (long long)d->K);
    TRY(desc_out(k, "P", d->P, d->H + 2 * d->pad_h - d->dil_h * (d->R - 1) - 1, d->stride_h,
                 "H + 2 pad_h - dil_h (R - 1) - 1"));
    TRY(desc_out(k, "Q", d->Q, d->W + 2 * d->pad_w - d->dil_w * (d->S - 1) - 1, d->stride_w,
                 "W + 2 pad_w - dil_w (S - 1) - 1"));
    if (mul_sat(mul_sat(d->C, d->R), d->S) > INT_MAX || mul_sat(d->H, d->W) > INT_MAX
        || mul_sat(d->P, d->Q) > INT_MAX || mul_sat(mul_sat(d->C, d->H), d->W) > INT_MAX
        || mul_sat(mul_sat(d->K, d->P), d->Q) > INT_MAX)
        return fail(k, MLTK_ERR_INVALID, "desc: C R S, H W, P Q, C H W or K P Q is beyond "
                    "the int range of the backends");
    return MLTK_OK;
}

static int conv_act_ok(mltk_act act)
{
    return act == MLTK_ACT_NONE || act == MLTK_ACT_RELU || act == MLTK_ACT_LEAKY_RELU
        || act == MLTK_ACT_SIGMOID || act == MLTK_ACT_TANH;
}

#define CONV_X(i)  need_dims4(k, (i), "(N, C, H, W)", d->N, d->C, d->H, d->W)
#define CONV_Y(i)  need_dims4(k, (i), "(N, K, P, Q)", d->N, d->K, d->P, d->Q)
#define CONV_W(i)  need_dims4(k, (i), "(K, C / groups, R, S)", d->K, d->C / d->groups, \
                              d->R, d->S)

/* The conv ops' dtypes: the inputs x, w (dy, w; dy, x) share the op's
 * dtype; the outputs y (dx; dw, db) and the bias b are each f32 or the
 * op's dtype, so that low-precision inputs may produce f32 results
 * (mixed precision) or results in their own dtype.  Tensors `mask` (bit
 * i: tensor i) follow that rule when present. */
static int conv_dtypes(chk *k, unsigned mask)
{
    for (int i = 0; i < k->c->n_t; i++) {
        if (!(mask >> i & 1u) || !HAS(i))
            continue;
        if (T(i)->dtype != MLTK_F32 && T(i)->dtype != k->dt)
            return fail(k, MLTK_ERR_INVALID, "%s is %s; it must be f32 or the op's dtype %s",
                        nm(k, i, 0), mltk_dtype_name(T(i)->dtype), mltk_dtype_name(k->dt));
    }
    return MLTK_OK;
}

/* [y | x, w, b opt] */
static int chk_conv2d_forward(chk *k)
{
    const mltk_conv2d_params *p = k->c->params;
    const mltk_conv2d_desc *d = &p->d;
    TRY(conv_dtypes(k, 1u << 0 | 1u << 3));
    if (!act_valid(p->act) || !conv_act_ok(p->act))
        return fail(k, MLTK_ERR_INVALID, "act = %s: the conv epilogue takes none, relu, "
                    "leaky_relu, sigmoid or tanh (run act_forward after it for others)",
                    act_valid(p->act) ? act_names[p->act] : "?");
    TRY(conv_desc(k, d));
    TRY(CONV_Y(0));
    TRY(CONV_X(1));
    TRY(CONV_W(2));
    if (HAS(3))
        TRY(need_numel(k, 3, "K", d->K));
    return MLTK_OK;
}

/* [dx | dy, w] */
static int chk_conv2d_backward_data(chk *k)
{
    const mltk_conv2d_params *p = k->c->params;
    const mltk_conv2d_desc *d = &p->d;
    TRY(conv_dtypes(k, 1u << 0));
    TRY(conv_desc(k, d));
    TRY(CONV_X(0));
    TRY(CONV_Y(1));
    return CONV_W(2);
}

/* [dw, db opt | dy, x] */
static int chk_conv2d_backward_filter(chk *k)
{
    const mltk_conv2d_params *p = k->c->params;
    const mltk_conv2d_desc *d = &p->d;
    TRY(conv_dtypes(k, 1u << 0 | 1u << 1));
    TRY(conv_desc(k, d));
    TRY(CONV_W(0));
    if (HAS(1))
        TRY(need_numel(k, 1, "K", d->K));
    TRY(CONV_Y(2));
    return CONV_X(3);
}

/* The pool descriptor is consistent (as the ABI 1 backends checked it):
 * positive sizes, padding at most half the window, P and Q as the formula
 * gives them. */
static int pool_desc(chk *k, const mltk_pool2d_params *p)
{
    const mltk_pool2d_desc *d = &p->d;
    if (p->kind != MLTK_POOL_MAX && p->kind != MLTK_POOL_AVG)
        return fail(k, MLTK_ERR_INVALID, "kind = %d is not a pooling (max 0, avg 1)",
                    (int)p->kind);
    TRY(desc_field(k, "N", d->N, 0));
    TRY(desc_field(k, "C", d->C, 1));
    TRY(desc_field(k, "H", d->H, 1));
    TRY(desc_field(k, "W", d->W, 1));
    TRY(desc_field(k, "R", d->R, 1));
    TRY(desc_field(k, "S", d->S, 1));
    TRY(desc_field(k, "P", d->P, 1));
    TRY(desc_field(k, "Q", d->Q, 1));
    TRY(desc_field(k, "stride_h", d->stride_h, 1));
    TRY(desc_field(k, "stride_w", d->stride_w, 1));
    TRY(desc_field(k, "pad_h", d->pad_h, 0));
    TRY(desc_field(k, "pad_w", d->pad_w, 0));
    if (2 * d->pad_h > d->R || 2 * d->pad_w > d->S)
        return fail(k, MLTK_ERR_INVALID, "desc: pad (%lld, %lld) is more than half the "
                    "window (%lld, %lld)", (long long)d->pad_h, (long long)d->pad_w,
                    (long long)d->R, (long long)d->S);
    TRY(desc_out(k, "P", d->P, d->H + 2 * d->pad_h - d->R, d->stride_h, "H + 2 pad_h - R"));
    TRY(desc_out(k, "Q", d->Q, d->W + 2 * d->pad_w - d->S, d->stride_w, "W + 2 pad_w - S"));
    return MLTK_OK;
}

#define POOL_X(i) need_dims4(k, (i), "(N, C, H, W)", d->N, d->C, d->H, d->W)
#define POOL_Y(i) need_dims4(k, (i), "(N, C, P, Q)", d->N, d->C, d->P, d->Q)

/* [y | x] */
static int chk_pool2d_forward(chk *k)
{
    const mltk_pool2d_params *p = k->c->params;
    const mltk_pool2d_desc *d = &p->d;
    TRY(pool_desc(k, p));
    TRY(POOL_Y(0));
    return POOL_X(1);
}

/* [dx | dy, x, y] */
static int chk_pool2d_backward(chk *k)
{
    const mltk_pool2d_params *p = k->c->params;
    const mltk_pool2d_desc *d = &p->d;
    TRY(pool_desc(k, p));
    TRY(POOL_X(0));
    TRY(POOL_Y(1));
    TRY(POOL_X(2));
    return POOL_Y(3);
}

/* ---- normalisation ---- */

/* x (N, C, L...) at `xi`: C = dim[1], L the product of the rest; the
 * tensors of `same` have x's elements, those of `per_c` C of them */
static int bn_shapes(chk *k, int xi, unsigned same, unsigned per_c, int64_t *N, int64_t *L)
{
    TRY(need_min_ndim(k, xi, 2, "(N, C) or (N, C, ...)"));
    int64_t C = DIM(xi, 1);
    *N = DIM(xi, 0);
    *L = dims_prod(k, xi, 2, NDIM(xi));
    TRY(same_numel_all(k, xi, same));
    for (int i = 0; i < k->c->n_t; i++)
        if ((per_c >> i & 1u) && HAS(i))
            TRY(need_numel(k, i, "C (dim 1 of x)", C));
    return MLTK_OK;
}

static int need_eps(chk *k, float eps)
{
    if (eps >= 0.0f)
        return MLTK_OK;
    return fail(k, MLTK_ERR_INVALID, "eps = %g; it must be >= 0", (double)eps);
}

/* [y, save_mean, save_invstd, running_mean opt, running_var opt | x,
 * gamma opt, beta opt] */
static int chk_bn_forward_train(chk *k)
{
    const mltk_bn_params *p = k->c->params;
    int64_t N, L;
    TRY(bn_shapes(k, 5, 1u << 0, 0xDEu, &N, &L));
    TRY(need_eps(k, p->eps));
    if (NUMEL(5) > 0 && mul_sat(N, L) < 2)
        return fail(k, MLTK_ERR_INVALID, "x is %s: one value per channel (N L = 1); batch "
                    "statistics need at least 2 (PyTorch refuses this too)", sh(k, 5, 0));
    return MLTK_OK;
}

/* [y | x, gamma opt, beta opt, running_mean, running_var] */
static int chk_bn_forward_eval(chk *k)
{
    const mltk_bn_params *p = k->c->params;
    int64_t N, L;
    TRY(bn_shapes(k, 1, 1u << 0, 0x3Cu, &N, &L));
    return need_eps(k, p->eps);
}

/* [dx opt, dgamma opt, dbeta opt | dy, x, gamma opt, save_mean, save_invstd] */
static int chk_bn_backward(chk *k)
{
    int64_t N, L;
    return bn_shapes(k, 4, 0x09u, 0xE6u, &N, &L);
}

/* x (rows, cols) at `xi`: cols the last dim, rows the product of the
 * others; `same` have x's elements, `per_row` rows, `per_col` cols */
static int ln_shapes(chk *k, int xi, unsigned same, unsigned per_row, unsigned per_col)
{
    TRY(need_min_ndim(k, xi, 1, "(rows, cols)"));
    int64_t cols = DIM(xi, NDIM(xi) - 1), rows = dims_prod(k, xi, 0, NDIM(xi) - 1);
    if (rows > 0 && cols == 0)
        return fail(k, MLTK_ERR_INVALID, "x is %s: rows of no columns cannot be normalised",
                    sh(k, xi, 0));
    TRY(same_numel_all(k, xi, same));
    for (int i = 0; i < k->c->n_t; i++) {
        if ((per_row >> i & 1u) && HAS(i))
            TRY(need_numel(k, i, "rows (all but the last dim of x)", rows));
        if ((per_col >> i & 1u) && HAS(i))
            TRY(need_numel(k, i, "cols (the last dim of x)", cols));
    }
    return MLTK_OK;
}

/* [y, mean, rstd | x, gamma opt (cols), beta opt] */
static int chk_ln_forward(chk *k)
{
    const mltk_ln_params *p = k->c->params;
    TRY(ln_shapes(k, 3, 1u << 0, 0x06u, 0x30u));
    return need_eps(k, p->eps);
}

/* [dx opt, dgamma opt, dbeta opt | dy, x, gamma opt, mean, rstd] */
static int chk_ln_backward(chk *k)
{
    return ln_shapes(k, 4, 0x09u, 0xC0u, 0x26u);
}

/* [y | x] and [dx | dy, y], rows over the last dim */
static int chk_softmax(chk *k)
{
    int ref = k->c->n_t - 1;
    TRY(need_min_ndim(k, ref, 1, "(rows, cols)"));
    return same_numel_all(k, ref, ~0u);
}

/* ---- optimizer updates ---- */

static int need_t(chk *k, int64_t t)
{
    if (t >= 1)
        return MLTK_OK;
    return fail(k, MLTK_ERR_INVALID, "t = %lld; the step count starts at 1", (long long)t);
}

/* Adam's bias corrections 1 - beta^t must be positive (beta in [0, 1)) */
static int need_betas(chk *k, float beta1, float beta2, int64_t t)
{
    double bc1 = 1.0 - pow((double)beta1, (double)t);
    double bc2 = 1.0 - pow((double)beta2, (double)t);
    if (bc1 > 0.0 && bc2 > 0.0)
        return MLTK_OK;
    return fail(k, MLTK_ERR_INVALID, "beta1 = %g, beta2 = %g: each must lie in [0, 1)",
                (double)beta1, (double)beta2);
}

/* every present tensor of `mask` has n = numel(p) elements */
static int flat_n(chk *k, unsigned mask)
{
    for (int i = 1; i < k->c->n_t; i++)
        if ((mask >> i & 1u) && HAS(i))
            TRY(need_numel(k, i, "n (the elements of p)", NUMEL(0)));
    return MLTK_OK;
}

/* [p, mom opt | g, lr_scale opt] */
static int chk_sgd(chk *k)
{
    const mltk_sgd_params *p = k->c->params;
    TRY(flat_n(k, ~0u));
    if (p->momentum != 0.0f && !HAS(1))
        return fail(k, MLTK_ERR_INVALID, "momentum = %g needs the mom buffer, which is "
                    "absent", (double)p->momentum);
    return need_t(k, p->t);
}

/* [p, m, v | g, lr_scale opt] */
static int chk_adam(chk *k)
{
    const mltk_adam_params *p = k->c->params;
    TRY(flat_n(k, ~0u));
    TRY(need_t(k, p->t));
    return need_betas(k, p->beta1, p->beta2, p->t);
}

/* [p, sq, mom opt, gavg opt | g, lr_scale opt] */
static int chk_rmsprop(chk *k)
{
    const mltk_rmsprop_params *p = k->c->params;
    TRY(flat_n(k, ~0u));
    if (p->momentum > 0.0f && !HAS(2))
        return fail(k, MLTK_ERR_INVALID, "momentum = %g needs the mom buffer, which is "
                    "absent", (double)p->momentum);
    if (p->centered && !HAS(3))
        return fail(k, MLTK_ERR_INVALID, "centered needs the gavg buffer, which is absent");
    return MLTK_OK;
}

/* [p, m, v, scratch (2 n_seg) | g, lr_scale opt] */
static int chk_lamb(chk *k)
{
    const mltk_lamb_params *p = k->c->params;
    TRY(flat_n(k, ~(1u << 3)));
    TRY(need_t(k, p->t));
    if (p->n_seg < 1 || !p->seg_off)
        return fail(k, MLTK_ERR_INVALID, "n_seg = %d%s: at least one segment and its "
                    "offsets are needed", p->n_seg, p->seg_off ? "" : ", seg_off NULL");
    if (NUMEL(3) < 2 * (int64_t)p->n_seg)
        return fail(k, MLTK_ERR_SHAPE, "scratch is %s with %lld elements but 2 n_seg = %lld "
                    "are needed", sh(k, 3, 0), (long long)NUMEL(3),
                    2 * (long long)p->n_seg);
    int64_t n = NUMEL(0);
    if (p->seg_off[0] != 0 || p->seg_off[p->n_seg] != n)
        return fail(k, MLTK_ERR_INVALID, "seg_off runs from %lld to %lld; it must run from 0 "
                    "to n = %lld", (long long)p->seg_off[0], (long long)p->seg_off[p->n_seg],
                    (long long)n);
    for (int s = 0; s < p->n_seg; s++)
        if (p->seg_off[s + 1] < p->seg_off[s])
            return fail(k, MLTK_ERR_INVALID, "seg_off[%d] = %lld is below seg_off[%d] = %lld",
                        s + 1, (long long)p->seg_off[s + 1], s, (long long)p->seg_off[s]);
    return need_betas(k, p->beta1, p->beta2, p->t);
}

/* ---- the table ---- */

#define BIT(i) (1u << (i))
#define OP(id, name, nt, nout, opt, psize, names, dts, strided, ws, fn) \
    [id] = { { id, name, nt, nout, opt, psize, names }, dts, strided, ws, fn }

static const op_entry ops[MLTK_OP_COUNT] = {
    OP(MLTK_OP_FILL, "fill", 1, 1, 0, sizeof(mltk_fill_params), "y", "o", 0, 0, chk_fill),
    OP(MLTK_OP_AXPBY, "axpby", 2, 1, 0, sizeof(mltk_axpby_params), "y,x", "oo", 0, 0,
       chk_same_n),
    OP(MLTK_OP_MUL, "mul", 3, 1, 0, 0, "z,x,y", "ooo", 0, 0, chk_same_n),
    OP(MLTK_OP_ACT_FORWARD, "act_forward", 2, 1, 0, sizeof(mltk_act_params), "y,x", "oo",
       0, 0, chk_act_forward),
    OP(MLTK_OP_ACT_BACKWARD, "act_backward", 4, 1, BIT(2) | BIT(3), sizeof(mltk_act_params),
       "dx,dy,x,y", "oooo", 0, 0, chk_act_backward),
    OP(MLTK_OP_CAST, "cast", 2, 1, 0, 0, "y,x", "ao", 0, 0, chk_cast),
    OP(MLTK_OP_CLAMP, "clamp", 1, 1, 0, sizeof(mltk_clamp_params), "x", "o", 0, 0,
       chk_clamp),
    OP(MLTK_OP_GEMM, "gemm", 4, 1, BIT(3), sizeof(mltk_gemm_params), "C,A,B,bias", "aoof",
       BIT(0) | BIT(1) | BIT(2), 0, chk_gemm),
    OP(MLTK_OP_BIAS_ACT, "bias_act", 2, 1, BIT(1), sizeof(mltk_act_params), "y,b", "oo", 0, 0,
       chk_bias_act),
    OP(MLTK_OP_SUM_ROWS, "sum_rows", 2, 1, 0, sizeof(mltk_sum_rows_params), "out,x", "oo",
       0, 0, chk_sum_rows),
    OP(MLTK_OP_SUM, "sum", 2, 1, 0, 0, "out,x", "fo", 0, 0, chk_reduce),
    OP(MLTK_OP_SUMSQ, "sumsq", 2, 1, 0, 0, "out,x", "fo", 0, 0, chk_reduce),
    OP(MLTK_OP_SCALE_TO_NORM, "scale_to_norm", 2, 1, 0, sizeof(mltk_norm_params),
       "x,sumsq", "of", 0, 0, chk_scale_to_norm),
    OP(MLTK_OP_NONFINITE, "nonfinite", 2, 1, 0, 0, "flag,x", "fo", 0, 0, chk_reduce),
    OP(MLTK_OP_SOFTMAX_XENT, "softmax_xent", 5, 2, BIT(1) | BIT(4), sizeof(mltk_xent_params),
       "loss,dlogits,logits,labels,weights", "fooao", 0, 0, chk_softmax_xent),
    OP(MLTK_OP_COUNT_CORRECT, "count_correct", 3, 1, 0, 0, "correct,logits,labels", "foi",
       0, 0, chk_count_correct),
    OP(MLTK_OP_POINTWISE_LOSS, "pointwise_loss", 4, 2, BIT(1), sizeof(mltk_pointwise_params),
       "loss,dpred,pred,target", "fooo", 0, 0, chk_pointwise_loss),
    OP(MLTK_OP_KL_DIV_LOGITS, "kl_div_logits", 4, 2, BIT(1), sizeof(mltk_kl_params),
       "loss,dstudent,student,teacher", "fooo", 0, 0, chk_kl_div_logits),
    OP(MLTK_OP_GATHER_ROWS, "gather_rows", 3, 1, 0, 0, "dst,src,idx", "ooi", 0, 0,
       chk_gather_rows),
    OP(MLTK_OP_GATHER_AUGMENT_2D, "gather_augment_2d", 3, 1, 0, sizeof(mltk_augment_params),
       "y,x,idx", "ooi", 0, 0, chk_gather_augment_2d),
    OP(MLTK_OP_COPY_2D, "copy_2d", 2, 1, 0, sizeof(mltk_copy_params), "dst,src", "oo",
       BIT(0) | BIT(1), 0, chk_copy_2d),
    OP(MLTK_OP_EMBEDDING_FORWARD, "embedding_forward", 3, 1, 0, 0, "y,table,ids", "oof",
       0, 0, chk_embedding_forward),
    OP(MLTK_OP_EMBEDDING_BACKWARD, "embedding_backward", 3, 1, 0, 0, "dtable,dy,ids", "oof",
       0, 0, chk_embedding_backward),
    OP(MLTK_OP_RNG_UNIFORM, "rng_uniform", 1, 1, 0, sizeof(mltk_rng_params), "x", "o", 0, 0,
       chk_rng),
    OP(MLTK_OP_RNG_NORMAL, "rng_normal", 1, 1, 0, sizeof(mltk_rng_params), "x", "o", 0, 0,
       chk_rng),
    OP(MLTK_OP_DROPOUT_FORWARD, "dropout_forward", 3, 2, 0, sizeof(mltk_dropout_params),
       "y,mask,x", "ooo", 0, 0, chk_dropout),
    OP(MLTK_OP_CONV2D_FORWARD, "conv2d_forward", 4, 1, BIT(3), sizeof(mltk_conv2d_params),
       "y,x,w,b", "aooa", 0, 1, chk_conv2d_forward),
    OP(MLTK_OP_CONV2D_BACKWARD_DATA, "conv2d_backward_data", 3, 1, 0,
       sizeof(mltk_conv2d_params), "dx,dy,w", "aoo", 0, 1, chk_conv2d_backward_data),
    OP(MLTK_OP_CONV2D_BACKWARD_FILTER, "conv2d_backward_filter", 4, 2, BIT(1),
       sizeof(mltk_conv2d_params), "dw,db,dy,x", "aaoo", 0, 1, chk_conv2d_backward_filter),
    OP(MLTK_OP_POOL2D_FORWARD, "pool2d_forward", 2, 1, 0, sizeof(mltk_pool2d_params), "y,x",
       "oo", 0, 0, chk_pool2d_forward),
    OP(MLTK_OP_POOL2D_BACKWARD, "pool2d_backward", 4, 1, 0, sizeof(mltk_pool2d_params),
       "dx,dy,x,y", "oooo", 0, 0, chk_pool2d_backward),
    OP(MLTK_OP_BATCHNORM_FORWARD_TRAIN, "batchnorm_forward_train", 8, 5,
       BIT(3) | BIT(4) | BIT(6) | BIT(7), sizeof(mltk_bn_params),
       "y,save_mean,save_invstd,running_mean,running_var,x,gamma,beta", "oooooooo", 0, 0,
       chk_bn_forward_train),
    OP(MLTK_OP_BATCHNORM_FORWARD_EVAL, "batchnorm_forward_eval", 6, 1, BIT(2) | BIT(3),
       sizeof(mltk_bn_params), "y,x,gamma,beta,running_mean,running_var", "oooooo", 0, 0,
       chk_bn_forward_eval),
    OP(MLTK_OP_BATCHNORM_BACKWARD, "batchnorm_backward", 8, 3,
       BIT(0) | BIT(1) | BIT(2) | BIT(5), 0,
       "dx,dgamma,dbeta,dy,x,gamma,save_mean,save_invstd", "oooooooo", 0, 0,
       chk_bn_backward),
    OP(MLTK_OP_LAYERNORM_FORWARD, "layernorm_forward", 6, 3, BIT(4) | BIT(5),
       sizeof(mltk_ln_params), "y,mean,rstd,x,gamma,beta", "oooooo", 0, 0, chk_ln_forward),
    OP(MLTK_OP_LAYERNORM_BACKWARD, "layernorm_backward", 8, 3,
       BIT(0) | BIT(1) | BIT(2) | BIT(5), 0,
       "dx,dgamma,dbeta,dy,x,gamma,mean,rstd", "oooooooo", 0, 0, chk_ln_backward),
    OP(MLTK_OP_SOFTMAX_FORWARD, "softmax_forward", 2, 1, 0, 0, "y,x", "oo", 0, 0,
       chk_softmax),
    OP(MLTK_OP_SOFTMAX_BACKWARD, "softmax_backward", 3, 1, 0, 0, "dx,dy,y", "ooo", 0, 0,
       chk_softmax),
    OP(MLTK_OP_SGD_STEP, "sgd_step", 4, 2, BIT(1) | BIT(3), sizeof(mltk_sgd_params),
       "p,mom,g,lr_scale", "ffff", 0, 0, chk_sgd),
    OP(MLTK_OP_ADAM_STEP, "adam_step", 5, 3, BIT(4), sizeof(mltk_adam_params),
       "p,m,v,g,lr_scale", "fffff", 0, 0, chk_adam),
    OP(MLTK_OP_RMSPROP_STEP, "rmsprop_step", 6, 4, BIT(2) | BIT(3) | BIT(5),
       sizeof(mltk_rmsprop_params), "p,sq,mom,gavg,g,lr_scale", "ffffff", 0, 0, chk_rmsprop),
    OP(MLTK_OP_LAMB_STEP, "lamb_step", 6, 4, BIT(5), sizeof(mltk_lamb_params),
       "p,m,v,scratch,g,lr_scale", "ffffff", 0, 0, chk_lamb),
};

#undef BIT
#undef OP

static const op_entry *entry(mltk_op op)
{
    if ((int)op <= (int)MLTK_OP_NONE || (int)op >= (int)MLTK_OP_COUNT || !ops[op].info.name)
        return NULL;
    return &ops[op];
}

const mltk_op_info *mltk_op_info_get(mltk_op op)
{
    const op_entry *e = entry(op);
    return e ? &e->info : NULL;
}

const char *mltk_op_name(mltk_op op)
{
    const op_entry *e = entry(op);
    return e ? e->info.name : "?";
}

/* The op's dtype: its first present input's, else its first present
 * output's (f32 when nothing is present). */
static mltk_dtype dtype_of(const mltk_op_call *c, int n_out, unsigned present, int *from)
{
    for (int i = n_out; i < c->n_t; i++)
        if (present >> i & 1u) {
            *from = i;
            return c->t[i].dtype;
        }
    for (int i = 0; i < n_out && i < c->n_t; i++)
        if (present >> i & 1u) {
            *from = i;
            return c->t[i].dtype;
        }
    *from = -1;
    return MLTK_F32;
}

mltk_dtype mltk_op_dtype(const mltk_op_call *c)
{
    const op_entry *e = c ? entry(c->op) : NULL;
    if (!e || c->n_t != e->info.n_t)
        return MLTK_F32;
    unsigned present = 0;
    for (int i = 0; i < c->n_t; i++)
        if (!(e->info.optional >> i & 1u) || c->t[i].data)
            present |= 1u << i;
    int from;
    return dtype_of(c, e->info.n_out, present, &from);
}

/* ---- checking a call ---------------------------------------------------------- */

/* One tensor's own well-formedness: dims, dtype, data, layout. */
static int check_tensor(chk *k, int i)
{
    const mltk_tensor *t = T(i);
    if (t->shape.ndim < 0 || t->shape.ndim > MLTK_MAX_DIMS)
        return fail(k, MLTK_ERR_INVALID, "%s has ndim %d; at most %d dims", nm(k, i, 0),
                    t->shape.ndim, MLTK_MAX_DIMS);
    int64_t n = 1;
    for (int d = 0; d < t->shape.ndim; d++) {
        if (t->shape.dim[d] < 0)
            return fail(k, MLTK_ERR_SHAPE, "%s is %s: a negative dimension", nm(k, i, 0),
                        sh(k, i, 0));
        if (__builtin_mul_overflow(n, t->shape.dim[d], &n))
            return fail(k, MLTK_ERR_SHAPE, "%s is %s: too many elements", nm(k, i, 0),
                        sh(k, i, 0));
    }
    if ((int)t->dtype < 0 || (int)t->dtype >= (int)MLTK_DTYPE_COUNT)
        return fail(k, MLTK_ERR_INVALID, "%s has dtype %d, which is not a dtype",
                    nm(k, i, 0), (int)t->dtype);
    if (!t->data && n > 0 && !k->shapes_only) {
        if (t->shape.ndim == 0)
            return fail(k, MLTK_ERR_INVALID, "%s is missing", nm(k, i, 0));
        return fail(k, MLTK_ERR_INVALID, "%s is %s %s with no data (NULL)", nm(k, i, 0),
                    mltk_dtype_name(t->dtype), sh(k, i, 0));
    }
    if (!has_strides(t))
        return MLTK_OK;
    if (!(k->e->strided >> i & 1u)) {
        if (mltk_tensor_is_contiguous(t))
            return MLTK_OK;
        char buf[192];
        return fail(k, MLTK_ERR_INVALID, "%s is %s: it must be contiguous", nm(k, i, 0),
                    mltk_tensor_str(t, buf, sizeof buf));
    }
    for (int d = 0; d < t->shape.ndim; d++)
        if (t->stride[d] < 0)
            return fail(k, MLTK_ERR_INVALID, "%s has stride[%d] = %lld; strides are not "
                        "negative", nm(k, i, 0), d, (long long)t->stride[d]);
    if (t->shape.ndim > 0 && t->stride[t->shape.ndim - 1] != 1) {
        char buf[192];
        return fail(k, MLTK_ERR_INVALID, "%s is %s: its innermost stride must be 1",
                    nm(k, i, 0), mltk_tensor_str(t, buf, sizeof buf));
    }
    return MLTK_OK;
}

static int need_dtype(chk *k, int i, char rule)
{
    mltk_dtype want = rule == 'f' ? MLTK_F32 : rule == 'i' ? MLTK_I32 : k->dt;
    if (T(i)->dtype == want)
        return MLTK_OK;
    if (rule == 'o') {
        char from[32];
        snprintf(from, sizeof from, "%s", nm(k, k->dt_from, 1));
        return fail(k, MLTK_ERR_INVALID, "%s is %s but the op computes in %s (%s's dtype)",
                    nm(k, i, 0), mltk_dtype_name(T(i)->dtype), mltk_dtype_name(k->dt), from);
    }
    return fail(k, MLTK_ERR_INVALID, "%s is %s; it must be %s", nm(k, i, 0),
                mltk_dtype_name(T(i)->dtype), mltk_dtype_name(want));
}

/* Check call `c`; with `shapes_only`, tensor data may be NULL (workspace
 * queries), and an optional tensor counts as present when it has data or
 * dims.  On failure the message is in msg.  *dt receives the op's dtype. */
static int check_call(const mltk_op_call *c, int shapes_only, mltk_dtype *dt, char *msg,
                      size_t len)
{
    *dt = MLTK_F32;
    if (!c) {
        snprintf(msg, len, "op call: NULL");
        return MLTK_ERR_INVALID;
    }
    const op_entry *e = entry(c->op);
    if (!e) {
        snprintf(msg, len, "op %d: not an op (ids run from 1 to %d)", (int)c->op,
                 (int)MLTK_OP_COUNT - 1);
        return MLTK_ERR_INVALID;
    }
    chk k;  /* not zeroed as a whole: its message buffers are for failures */
    k.c = c;
    k.e = e;
    k.present = 0;
    k.shapes_only = shapes_only;
    k.dt = MLTK_F32;
    k.dt_from = -1;
    k.msg = msg;
    k.len = len;
    if (c->n_t != e->info.n_t)
        return fail(&k, MLTK_ERR_INVALID, "%d tensors given; it takes %d (%s)", c->n_t,
                    e->info.n_t, e->info.tensor_names);
    if (e->info.params_size > 0 && !c->params)
        return fail(&k, MLTK_ERR_INVALID, "no params");
    for (int i = 0; i < c->n_t; i++) {
        const mltk_tensor *t = &c->t[i];
        if ((e->info.optional >> i & 1u)
            && !(t->data || (shapes_only && t->shape.ndim > 0)))
            continue;  /* absent */
        k.present |= 1u << i;
        TRY(check_tensor(&k, i));
    }
    k.dt = dtype_of(c, e->info.n_out, k.present, &k.dt_from);
    for (int i = 0; i < c->n_t; i++)
        if ((k.present >> i & 1u) && e->dtypes[i] != 'a')
            TRY(need_dtype(&k, i, e->dtypes[i]));
    *dt = k.dt;
    return e->check(&k);
}

int mltk_op_check(const mltk_op_call *c, char **err)
{
    char msg[MSG_LEN];
    mltk_dtype dt;
    int rc = check_call(c, 0, &dt, msg, sizeof msg);
    if (rc)
        return mltk_errf(err, rc, "%s", msg);
    return MLTK_OK;
}

/* ---- running a call ---------------------------------------------------------- */

int mltk_op_run(const struct mltk_backend *be, const mltk_op_call *c)
{
    char msg[MSG_LEN];
    mltk_dtype dt;
    if (!be || !be->i)
        return MLTK_ERR_INVALID;
    int rc = check_call(c, 0, &dt, msg, sizeof msg);
    if (rc) {
        mltk_backend_set_error(be, "%s", msg);
        return rc;
    }
    const struct mltk_backend_i *i = be->i;
    if (!VT_HAS(i, supports) || !VT_HAS(i, run) || !i->supports(be->ctx, c->op, dt)) {
        mltk_backend_set_error(be, "%s: %s is not supported for %s", be_name(be),
                               ops[c->op].info.name, mltk_dtype_name(dt));
        return MLTK_ERR_UNSUPPORTED;
    }
    if (ops[c->op].ws && VT_HAS(i, workspace)) {
        size_t need = i->workspace(be->ctx, c);
        if (need > 0 && (!c->ws || c->ws_bytes < need)) {
            mltk_backend_set_error(be, "%s: the workspace is %zu bytes but %s needs %zu "
                                   "(mltk_op_conv2d_workspace)", ops[c->op].info.name,
                                   c->ws ? c->ws_bytes : (size_t)0, be_name(be), need);
            return MLTK_ERR_INVALID;
        }
    }
    char *err = NULL;
    rc = i->run(be->ctx, c, &err);
    if (rc) {
        if (rc > 0)
            rc = MLTK_ERR_BACKEND;
        if (err)
            mltk_backend_set_error(be, "%s: %s", be_name(be), err);
        else
            mltk_backend_set_error(be, "%s: %s: %s", be_name(be), ops[c->op].info.name,
                                   mltk_status_str(rc));
    }
    free(err);
    return rc;
}

size_t mltk_op_workspace(const struct mltk_backend *be, const mltk_op_call *c)
{
    char msg[MSG_LEN];
    mltk_dtype dt;
    if (!be || !be->i || !VT_HAS(be->i, workspace))
        return 0;
    int rc = check_call(c, 1, &dt, msg, sizeof msg);
    if (rc) {
        mltk_backend_set_error(be, "%s", msg);
        return 0;
    }
    return be->i->workspace(be->ctx, c);
}

int mltk_op_supported(const struct mltk_backend *be, mltk_op op, mltk_dtype dt)
{
    if (!be || !be->i || !entry(op) || (int)dt < 0 || (int)dt >= (int)MLTK_DTYPE_COUNT)
        return 0;
    if (!VT_HAS(be->i, supports) || !VT_HAS(be->i, run))
        return 0;
    return be->i->supports(be->ctx, op, dt) ? 1 : 0;
}

/* The largest workspace of the three conv ops for p->d in dtype dt: the
 * calls are built from the descriptor alone (shapes, no data). */
size_t mltk_op_conv2d_workspace(mltk_be *be, const mltk_conv2d_params *p, mltk_dtype dt)
{
    if (!be || !be->i || !p || !VT_HAS(be->i, workspace))
        return 0;
    const mltk_conv2d_desc *d = &p->d;
    int64_t xd[4] = { d->N, d->C, d->H, d->W };
    int64_t yd[4] = { d->N, d->K, d->P, d->Q };
    int64_t wd[4] = { d->K, d->groups > 0 ? d->C / d->groups : 0, d->R, d->S };
    mltk_tensor x = mltk_tensor_make(NULL, dt, 4, xd);
    mltk_tensor y = mltk_tensor_make(NULL, dt, 4, yd);
    mltk_tensor w = mltk_tensor_make(NULL, dt, 4, wd);
    mltk_op_call fwd = { .op = MLTK_OP_CONV2D_FORWARD, .n_t = 4, .t = { y, x, w },
                         .params = p };
    mltk_op_call bwd_data = { .op = MLTK_OP_CONV2D_BACKWARD_DATA, .n_t = 3,
                              .t = { x, y, w }, .params = p };
    mltk_op_call bwd_filter = { .op = MLTK_OP_CONV2D_BACKWARD_FILTER, .n_t = 4,
                                .t = { w, { 0 }, y, x }, .params = p };
    const mltk_op_call *calls[3] = { &fwd, &bwd_data, &bwd_filter };
    size_t most = 0;
    for (int j = 0; j < 3; j++) {
        size_t n = mltk_op_workspace(be, calls[j]);
        if (n > most)
            most = n;
    }
    return most;
}

/* ---- memory through the core ---------------------------------------------------- */

#define MEM_OK(be, m) ((be) && (be)->i && VT_HAS((be)->i, m))

static void count_sync(const struct mltk_backend *be)
{
    if (be && be->state)
        __atomic_fetch_add(&be->state->syncs, 1, __ATOMIC_RELAXED);
}

static int mem_fail(const struct mltk_backend *be, int rc, const char *what, size_t bytes)
{
    if (rc > 0)
        rc = MLTK_ERR_BACKEND;
    mltk_backend_set_error(be, "%s: %s of %zu bytes failed: %s", be_name(be), what, bytes,
                           mltk_status_str(rc));
    return rc;
}

int mltk_be_alloc(const struct mltk_backend *be, size_t bytes, void **ptr)
{
    if (!ptr)
        return MLTK_ERR_INVALID;
    *ptr = NULL;
    if (!MEM_OK(be, alloc))
        return MLTK_ERR_INVALID;
    int rc = be->i->alloc(be->ctx, bytes, ptr);
    if (rc) {
        *ptr = NULL;
        return mem_fail(be, rc, "alloc", bytes);
    }
    return MLTK_OK;
}

void mltk_be_free(const struct mltk_backend *be, void *ptr)
{
    if (ptr && MEM_OK(be, free))
        be->i->free(be->ctx, ptr);
}

int mltk_be_upload(const struct mltk_backend *be, void *dst, const void *src, size_t bytes)
{
    if (!MEM_OK(be, upload))
        return MLTK_ERR_INVALID;
    int rc = be->i->upload(be->ctx, dst, src, bytes);
    return rc ? mem_fail(be, rc, "upload", bytes) : MLTK_OK;
}

int mltk_be_download(const struct mltk_backend *be, void *dst, const void *src, size_t bytes)
{
    if (!MEM_OK(be, download))
        return MLTK_ERR_INVALID;
    count_sync(be);
    int rc = be->i->download(be->ctx, dst, src, bytes);
    return rc ? mem_fail(be, rc, "download", bytes) : MLTK_OK;
}

int mltk_be_copy(const struct mltk_backend *be, void *dst, const void *src, size_t bytes)
{
    if (!MEM_OK(be, copy))
        return MLTK_ERR_INVALID;
    int rc = be->i->copy(be->ctx, dst, src, bytes);
    return rc ? mem_fail(be, rc, "copy", bytes) : MLTK_OK;
}

int mltk_be_sync(const struct mltk_backend *be)
{
    if (!MEM_OK(be, sync))
        return MLTK_ERR_INVALID;
    count_sync(be);
    int rc = be->i->sync(be->ctx);
    if (rc) {
        if (rc > 0)
            rc = MLTK_ERR_BACKEND;
        mltk_backend_set_error(be, "%s: sync failed: %s", be_name(be), mltk_status_str(rc));
    }
    return rc;
}

uint64_t mltk_be_sync_count(const struct mltk_backend *be)
{
    if (!be || !be->state)
        return 0;
    return __atomic_load_n(&be->state->syncs, __ATOMIC_RELAXED);
}

/* ---- typed wrappers: one per op ------------------------------------------------ */

/* A required tensor is copied as given (an empty one may have no data); an
 * optional one that is NULL or has no data is absent. */
static inline void req(mltk_op_call *c, int i, mltk_ct *t)
{
    if (t)
        c->t[i] = *t;
}

static inline void opt(mltk_op_call *c, int i, mltk_ct *t)
{
    if (t && t->data)
        c->t[i] = *t;
}

#define CALL(id, n) mltk_op_call c = { .op = (id), .n_t = (n) }

int mltk_op_fill(mltk_be *be, mltk_ct *y, float value)
{
    mltk_fill_params p = { value };
    CALL(MLTK_OP_FILL, 1);
    req(&c, 0, y);
    c.params = &p;
    return mltk_op_run(be, &c);
}

int mltk_op_axpby(mltk_be *be, mltk_ct *y, float a, mltk_ct *x, float b)
{
    mltk_axpby_params p = { a, b };
    CALL(MLTK_OP_AXPBY, 2);
    req(&c, 0, y);
    req(&c, 1, x);
    c.params = &p;
    return mltk_op_run(be, &c);
}

int mltk_op_mul(mltk_be *be, mltk_ct *z, mltk_ct *x, mltk_ct *y)
{
    CALL(MLTK_OP_MUL, 3);
    req(&c, 0, z);
    req(&c, 1, x);
    req(&c, 2, y);
    return mltk_op_run(be, &c);
}

int mltk_op_act_forward(mltk_be *be, mltk_ct *y, mltk_ct *x, mltk_act act, float alpha)
{
    mltk_act_params p = { act, alpha };
    CALL(MLTK_OP_ACT_FORWARD, 2);
    req(&c, 0, y);
    req(&c, 1, x);
    c.params = &p;
    return mltk_op_run(be, &c);
}

int mltk_op_act_backward(mltk_be *be, mltk_ct *dx, mltk_ct *dy, mltk_ct *x, mltk_ct *y,
                         mltk_act act, float alpha)
{
    mltk_act_params p = { act, alpha };
    CALL(MLTK_OP_ACT_BACKWARD, 4);
    req(&c, 0, dx);
    req(&c, 1, dy);
    opt(&c, 2, x);
    opt(&c, 3, y);
    c.params = &p;
    return mltk_op_run(be, &c);
}

int mltk_op_cast(mltk_be *be, mltk_ct *y, mltk_ct *x)
{
    CALL(MLTK_OP_CAST, 2);
    req(&c, 0, y);
    req(&c, 1, x);
    return mltk_op_run(be, &c);
}

int mltk_op_clamp(mltk_be *be, mltk_ct *x, float lo, float hi)
{
    mltk_clamp_params p = { lo, hi };
    CALL(MLTK_OP_CLAMP, 1);
    req(&c, 0, x);
    c.params = &p;
    return mltk_op_run(be, &c);
}

int mltk_op_gemm(mltk_be *be, mltk_ct *C, mltk_ct *A, mltk_ct *B, mltk_ct *bias,
                 const mltk_gemm_params *p)
{
    CALL(MLTK_OP_GEMM, 4);
    req(&c, 0, C);
    req(&c, 1, A);
    req(&c, 2, B);
    opt(&c, 3, bias);
    c.params = p;
    return mltk_op_run(be, &c);
}

int mltk_op_bias_act(mltk_be *be, mltk_ct *y, mltk_ct *b, mltk_act act, float alpha)
{
    mltk_act_params p = { act, alpha };
    CALL(MLTK_OP_BIAS_ACT, 2);
    req(&c, 0, y);
    opt(&c, 1, b);
    c.params = &p;
    return mltk_op_run(be, &c);
}

int mltk_op_sum_rows(mltk_be *be, mltk_ct *out, mltk_ct *x, float beta)
{
    mltk_sum_rows_params p = { beta };
    CALL(MLTK_OP_SUM_ROWS, 2);
    req(&c, 0, out);
    req(&c, 1, x);
    c.params = &p;
    return mltk_op_run(be, &c);
}

int mltk_op_sum(mltk_be *be, mltk_ct *out, mltk_ct *x)
{
    CALL(MLTK_OP_SUM, 2);
    req(&c, 0, out);
    req(&c, 1, x);
    return mltk_op_run(be, &c);
}

int mltk_op_sumsq(mltk_be *be, mltk_ct *out, mltk_ct *x)
{
    CALL(MLTK_OP_SUMSQ, 2);
    req(&c, 0, out);
    req(&c, 1, x);
    return mltk_op_run(be, &c);
}

int mltk_op_scale_to_norm(mltk_be *be, mltk_ct *x, mltk_ct *sumsq, float max_norm)
{
    mltk_norm_params p = { max_norm };
    CALL(MLTK_OP_SCALE_TO_NORM, 2);
    req(&c, 0, x);
    req(&c, 1, sumsq);
    c.params = &p;
    return mltk_op_run(be, &c);
}

int mltk_op_nonfinite(mltk_be *be, mltk_ct *flag, mltk_ct *x)
{
    CALL(MLTK_OP_NONFINITE, 2);
    req(&c, 0, flag);
    req(&c, 1, x);
    return mltk_op_run(be, &c);
}

int mltk_op_softmax_xent(mltk_be *be, mltk_ct *loss, mltk_ct *dlogits, mltk_ct *logits,
                         mltk_ct *labels, mltk_ct *weights, const mltk_xent_params *p)
{
    CALL(MLTK_OP_SOFTMAX_XENT, 5);
    req(&c, 0, loss);
    opt(&c, 1, dlogits);
    req(&c, 2, logits);
    req(&c, 3, labels);
    opt(&c, 4, weights);
    c.params = p;
    return mltk_op_run(be, &c);
}

int mltk_op_count_correct(mltk_be *be, mltk_ct *correct, mltk_ct *logits, mltk_ct *labels)
{
    CALL(MLTK_OP_COUNT_CORRECT, 3);
    req(&c, 0, correct);
    req(&c, 1, logits);
    req(&c, 2, labels);
    return mltk_op_run(be, &c);
}

int mltk_op_pointwise_loss(mltk_be *be, mltk_ct *loss, mltk_ct *dpred, mltk_ct *pred,
                           mltk_ct *target, const mltk_pointwise_params *p)
{
    CALL(MLTK_OP_POINTWISE_LOSS, 4);
    req(&c, 0, loss);
    opt(&c, 1, dpred);
    req(&c, 2, pred);
    req(&c, 3, target);
    c.params = p;
    return mltk_op_run(be, &c);
}

int mltk_op_kl_div_logits(mltk_be *be, mltk_ct *loss, mltk_ct *dstudent, mltk_ct *student,
                          mltk_ct *teacher, const mltk_kl_params *p)
{
    CALL(MLTK_OP_KL_DIV_LOGITS, 4);
    req(&c, 0, loss);
    opt(&c, 1, dstudent);
    req(&c, 2, student);
    req(&c, 3, teacher);
    c.params = p;
    return mltk_op_run(be, &c);
}

int mltk_op_gather_rows(mltk_be *be, mltk_ct *dst, mltk_ct *src, mltk_ct *idx)
{
    CALL(MLTK_OP_GATHER_ROWS, 3);
    req(&c, 0, dst);
    req(&c, 1, src);
    req(&c, 2, idx);
    return mltk_op_run(be, &c);
}

int mltk_op_gather_augment_2d(mltk_be *be, mltk_ct *y, mltk_ct *x, mltk_ct *idx,
                              const mltk_augment_params *p)
{
    CALL(MLTK_OP_GATHER_AUGMENT_2D, 3);
    req(&c, 0, y);
    req(&c, 1, x);
    req(&c, 2, idx);
    c.params = p;
    return mltk_op_run(be, &c);
}

int mltk_op_copy_2d(mltk_be *be, mltk_ct *dst, mltk_ct *src, int accumulate)
{
    mltk_copy_params p = { accumulate };
    CALL(MLTK_OP_COPY_2D, 2);
    req(&c, 0, dst);
    req(&c, 1, src);
    c.params = &p;
    return mltk_op_run(be, &c);
}

int mltk_op_embedding_forward(mltk_be *be, mltk_ct *y, mltk_ct *table, mltk_ct *ids)
{
    CALL(MLTK_OP_EMBEDDING_FORWARD, 3);
    req(&c, 0, y);
    req(&c, 1, table);
    req(&c, 2, ids);
    return mltk_op_run(be, &c);
}

int mltk_op_embedding_backward(mltk_be *be, mltk_ct *dtable, mltk_ct *dy, mltk_ct *ids)
{
    CALL(MLTK_OP_EMBEDDING_BACKWARD, 3);
    req(&c, 0, dtable);
    req(&c, 1, dy);
    req(&c, 2, ids);
    return mltk_op_run(be, &c);
}

int mltk_op_rng_uniform(mltk_be *be, mltk_ct *x, float lo, float hi, uint64_t seed,
                        uint64_t offset)
{
    mltk_rng_params p = { lo, hi, seed, offset };
    CALL(MLTK_OP_RNG_UNIFORM, 1);
    req(&c, 0, x);
    c.params = &p;
    return mltk_op_run(be, &c);
}

int mltk_op_rng_normal(mltk_be *be, mltk_ct *x, float mean, float std, uint64_t seed,
                       uint64_t offset)
{
    mltk_rng_params p = { mean, std, seed, offset };
    CALL(MLTK_OP_RNG_NORMAL, 1);
    req(&c, 0, x);
    c.params = &p;
    return mltk_op_run(be, &c);
}

int mltk_op_dropout_forward(mltk_be *be, mltk_ct *y, mltk_ct *mask, mltk_ct *x,
                            const mltk_dropout_params *p)
{
    CALL(MLTK_OP_DROPOUT_FORWARD, 3);
    req(&c, 0, y);
    req(&c, 1, mask);
    req(&c, 2, x);
    c.params = p;
    return mltk_op_run(be, &c);
}

int mltk_op_conv2d_forward(mltk_be *be, mltk_ct *y, mltk_ct *x, mltk_ct *w, mltk_ct *b,
                           const mltk_conv2d_params *p, void *ws, size_t ws_bytes)
{
    CALL(MLTK_OP_CONV2D_FORWARD, 4);
    req(&c, 0, y);
    req(&c, 1, x);
    req(&c, 2, w);
    opt(&c, 3, b);
    c.params = p;
    c.ws = ws;
    c.ws_bytes = ws ? ws_bytes : 0;
    return mltk_op_run(be, &c);
}

int mltk_op_conv2d_backward_data(mltk_be *be, mltk_ct *dx, mltk_ct *dy, mltk_ct *w,
                                 const mltk_conv2d_params *p, void *ws, size_t ws_bytes)
{
    CALL(MLTK_OP_CONV2D_BACKWARD_DATA, 3);
    req(&c, 0, dx);
    req(&c, 1, dy);
    req(&c, 2, w);
    c.params = p;
    c.ws = ws;
    c.ws_bytes = ws ? ws_bytes : 0;
    return mltk_op_run(be, &c);
}

int mltk_op_conv2d_backward_filter(mltk_be *be, mltk_ct *dw, mltk_ct *db, mltk_ct *dy,
                                   mltk_ct *x, const mltk_conv2d_params *p, void *ws,
                                   size_t ws_bytes)
{
    CALL(MLTK_OP_CONV2D_BACKWARD_FILTER, 4);
    req(&c, 0, dw);
    opt(&c, 1, db);
    req(&c, 2, dy);
    req(&c, 3, x);
    c.params = p;
    c.ws = ws;
    c.ws_bytes = ws ? ws_bytes : 0;
    return mltk_op_run(be, &c);
}

int mltk_op_pool2d_forward(mltk_be *be, mltk_ct *y, mltk_ct *x, const mltk_pool2d_params *p)
{
    CALL(MLTK_OP_POOL2D_FORWARD, 2);
    req(&c, 0, y);
    req(&c, 1, x);
    c.params = p;
    return mltk_op_run(be, &c);
}

int mltk_op_pool2d_backward(mltk_be *be, mltk_ct *dx, mltk_ct *dy, mltk_ct *x, mltk_ct *y,
                            const mltk_pool2d_params *p)
{
    CALL(MLTK_OP_POOL2D_BACKWARD, 4);
    req(&c, 0, dx);
    req(&c, 1, dy);
    req(&c, 2, x);
    req(&c, 3, y);
    c.params = p;
    return mltk_op_run(be, &c);
}

int mltk_op_batchnorm_forward_train(mltk_be *be, mltk_ct *y, mltk_ct *save_mean,
                                    mltk_ct *save_invstd, mltk_ct *running_mean,
                                    mltk_ct *running_var, mltk_ct *x, mltk_ct *gamma,
                                    mltk_ct *beta, const mltk_bn_params *p)
{
    CALL(MLTK_OP_BATCHNORM_FORWARD_TRAIN, 8);
    req(&c, 0, y);
    req(&c, 1, save_mean);
    req(&c, 2, save_invstd);
    opt(&c, 3, running_mean);
    opt(&c, 4, running_var);
    req(&c, 5, x);
    opt(&c, 6, gamma);
    opt(&c, 7, beta);
    c.params = p;
    return mltk_op_run(be, &c);
}

int mltk_op_batchnorm_forward_eval(mltk_be *be, mltk_ct *y, mltk_ct *x, mltk_ct *gamma,
                                   mltk_ct *beta, mltk_ct *running_mean,
                                   mltk_ct *running_var, const mltk_bn_params *p)
{
    CALL(MLTK_OP_BATCHNORM_FORWARD_EVAL, 6);
    req(&c, 0, y);
    req(&c, 1, x);
    opt(&c, 2, gamma);
    opt(&c, 3, beta);
    req(&c, 4, running_mean);
    req(&c, 5, running_var);
    c.params = p;
    return mltk_op_run(be, &c);
}

int mltk_op_batchnorm_backward(mltk_be *be, mltk_ct *dx, mltk_ct *dgamma, mltk_ct *dbeta,
                               mltk_ct *dy, mltk_ct *x, mltk_ct *gamma, mltk_ct *save_mean,
                               mltk_ct *save_invstd)
{
    CALL(MLTK_OP_BATCHNORM_BACKWARD, 8);
    opt(&c, 0, dx);
    opt(&c, 1, dgamma);
    opt(&c, 2, dbeta);
    req(&c, 3, dy);
    req(&c, 4, x);
    opt(&c, 5, gamma);
    req(&c, 6, save_mean);
    req(&c, 7, save_invstd);
    return mltk_op_run(be, &c);
}

int mltk_op_layernorm_forward(mltk_be *be, mltk_ct *y, mltk_ct *mean, mltk_ct *rstd,
                              mltk_ct *x, mltk_ct *gamma, mltk_ct *beta,
                              const mltk_ln_params *p)
{
    CALL(MLTK_OP_LAYERNORM_FORWARD, 6);
    req(&c, 0, y);
    req(&c, 1, mean);
    req(&c, 2, rstd);
    req(&c, 3, x);
    opt(&c, 4, gamma);
    opt(&c, 5, beta);
    c.params = p;
    return mltk_op_run(be, &c);
}

int mltk_op_layernorm_backward(mltk_be *be, mltk_ct *dx, mltk_ct *dgamma, mltk_ct *dbeta,
                               mltk_ct *dy, mltk_ct *x, mltk_ct *gamma, mltk_ct *mean,
                               mltk_ct *rstd)
{
    CALL(MLTK_OP_LAYERNORM_BACKWARD, 8);
    opt(&c, 0, dx);
    opt(&c, 1, dgamma);
    opt(&c, 2, dbeta);
    req(&c, 3, dy);
    req(&c, 4, x);
    opt(&c, 5, gamma);
    req(&c, 6, mean);
    req(&c, 7, rstd);
    return mltk_op_run(be, &c);
}

int mltk_op_softmax_forward(mltk_be *be, mltk_ct *y, mltk_ct *x)
{
    CALL(MLTK_OP_SOFTMAX_FORWARD, 2);
    req(&c, 0, y);
    req(&c, 1, x);
    return mltk_op_run(be, &c);
}

int mltk_op_softmax_backward(mltk_be *be, mltk_ct *dx, mltk_ct *dy, mltk_ct *y)
{
    CALL(MLTK_OP_SOFTMAX_BACKWARD, 3);
    req(&c, 0, dx);
    req(&c, 1, dy);
    req(&c, 2, y);
    return mltk_op_run(be, &c);
}

int mltk_op_sgd_step(mltk_be *be, mltk_ct *p, mltk_ct *mom, mltk_ct *g, mltk_ct *lr_scale,
                     const mltk_sgd_params *prm)
{
    CALL(MLTK_OP_SGD_STEP, 4);
    req(&c, 0, p);
    opt(&c, 1, mom);
    req(&c, 2, g);
    opt(&c, 3, lr_scale);
    c.params = prm;
    return mltk_op_run(be, &c);
}

int mltk_op_adam_step(mltk_be *be, mltk_ct *p, mltk_ct *m, mltk_ct *v, mltk_ct *g,
                      mltk_ct *lr_scale, const mltk_adam_params *prm)
{
    CALL(MLTK_OP_ADAM_STEP, 5);
    req(&c, 0, p);
    req(&c, 1, m);
    req(&c, 2, v);
    req(&c, 3, g);
    opt(&c, 4, lr_scale);
    c.params = prm;
    return mltk_op_run(be, &c);
}

int mltk_op_rmsprop_step(mltk_be *be, mltk_ct *p, mltk_ct *sq, mltk_ct *mom, mltk_ct *gavg,
                         mltk_ct *g, mltk_ct *lr_scale, const mltk_rmsprop_params *prm)
{
    CALL(MLTK_OP_RMSPROP_STEP, 6);
    req(&c, 0, p);
    req(&c, 1, sq);
    opt(&c, 2, mom);
    opt(&c, 3, gavg);
    req(&c, 4, g);
    opt(&c, 5, lr_scale);
    c.params = prm;
    return mltk_op_run(be, &c);
}

int mltk_op_lamb_step(mltk_be *be, mltk_ct *p, mltk_ct *m, mltk_ct *v, mltk_ct *scratch,
                      mltk_ct *g, mltk_ct *lr_scale, const mltk_lamb_params *prm)
{
    CALL(MLTK_OP_LAMB_STEP, 6);
    req(&c, 0, p);
    req(&c, 1, m);
    req(&c, 2, v);
    req(&c, 3, scratch);
    req(&c, 4, g);
    opt(&c, 5, lr_scale);
    c.params = prm;
    return mltk_op_run(be, &c);
}
