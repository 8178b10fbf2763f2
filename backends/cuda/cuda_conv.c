/* cuda_conv.c - 2-d convolution (cuDNN) and pooling (own kernels) of the
 * cuda backend (ABI 1.1).
 *
 * What this is: conv2d forward, backward-data and backward-filter through
 * cuDNN's convolution API, with the bias and activation applied by our
 * own per-channel epilogue and the bias gradient summed by our own
 * deterministic per-channel reduction; max/average pooling by the kernels
 * of cuda_nn_kernels.cu, which follow the cpu backend's window rules exactly.
 *
 * Plans: for each convolution geometry and batch size the context keeps a
 * plan (cuDNN descriptors and one algorithm per op), chosen from cuDNN's
 * heuristics among the deterministic algorithms of the wanted math (FMA,
 * i.e. true fp32, unless TF32 is on) whose workspace stays under a limit.
 * The plans are an LRU cache of CONV_MAX_PLANS; switching TF32 drops them
 * all.  conv2d_workspace reports the most the three algorithms need
 * within CONV_WS_CAP and records that size (a budget, never evicted).  A
 * layer sizes its buffer for its largest batch and may run smaller ones,
 * so an op on N images assumes the caller's buffer holds the smallest
 * size reported for the geometry at a batch >= N, and runs the plan
 * chosen within that; when no size was reported for it, or no algorithm
 * fits, it runs in the context's own (growing) workspace instead.  cuDNN
 * is never told of more workspace than the buffer it is given.  Choosing
 * never runs anything (no cudnnFind), so plans are the same from run to run.
 *
 * Batches: cuDNN's tensor descriptors take int sizes, so a batch whose
 * N C H W or N K P Q exceeds INT_MAX runs as chunks of images that fit
 * (conv_chunk); backward-filter accumulates over the chunks.  Pooling and
 * the bias sums are our own kernels with 64-bit indices and need no split.
 *
 * What this is not: a Winograd/FFT selection by timing, or pooling with
 * ceil_mode or dilation.
 */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

/* ---- plans ---- */

/* the most workspace one algorithm may ask for */
#define CONV_WS_CAP ((size_t)128 << 20)
/* plans kept per context; the least recently used goes first */
#define CONV_MAX_PLANS 64
/* budget_of: no workspace size is known for the caller's buffer */
#define CONV_WS_UNKNOWN SIZE_MAX

enum { OP_FWD = 0, OP_BWD_DATA = 1, OP_BWD_FILTER = 2 };

/* cuDNN descriptors and one algorithm per op for one geometry at one batch
 * size, chosen under one math policy and one workspace limit */
struct cuda_conv_plan {
    cuda_conv_plan *next;                /* in use order, most recent first */
    mltk_conv2d_desc d;                  /* geometry, d.N the batch of x and y */
    int tf32;                            /* the TF32 setting it was chosen under */
    size_t cap;                          /* the workspace limit it was chosen under */
    cudnnTensorDescriptor_t x, y;        /* (d.N, C, H, W), (d.N, K, P, Q) */
    cudnnFilterDescriptor_t w;           /* (K, C / groups, R, S) */
    cudnnConvolutionDescriptor_t conv[3];  /* per op: each has its math type */
    int algo[3];
    cudnnMathType_t math[3];
    size_t ws;                           /* the most the three need at d.N, <= cap */
};

/* What conv2d_workspace reported for a geometry at a (chunk) batch: the
 * caller's buffer is at least that large.  Kept for the context's life,
 * apart from the plans, so that evicting or dropping a plan never loses
 * what a caller was told. */
struct cuda_conv_budget {
    mltk_conv2d_desc d;
    size_t ws;
};

static int same_geometry(const mltk_conv2d_desc *a, const mltk_conv2d_desc *b)
{
    return a->C == b->C && a->H == b->H && a->W == b->W && a->K == b->K && a->R == b->R
        && a->S == b->S && a->P == b->P && a->Q == b->Q && a->stride_h == b->stride_h
        && a->stride_w == b->stride_w && a->pad_h == b->pad_h && a->pad_w == b->pad_w
        && a->dil_h == b->dil_h && a->dil_w == b->dil_w && a->groups == b->groups;
}

/* The descriptor is consistent (as the cpu backend checks it), its fields
 * fit cuDNN's int parameters, and the tensors' sizes fit int64.  The
 * batch is not limited here: conv_chunk splits it. */
static int desc_valid(const mltk_conv2d_desc *d)
{
    if (!d || d->N < 0 || d->C < 1 || d->H < 1 || d->W < 1 || d->K < 1
        || d->R < 1 || d->S < 1 || d->stride_h < 1 || d->stride_w < 1
        || d->pad_h < 0 || d->pad_w < 0 || d->dil_h < 1 || d->dil_w < 1
        || d->groups < 1 || d->C % d->groups || d->K % d->groups)
        return 0;
    const int64_t lim = INT_MAX;
    if (d->C > lim || d->H > lim || d->W > lim || d->K > lim || d->R > lim || d->S > lim
        || d->stride_h > lim || d->stride_w > lim || d->pad_h > lim || d->pad_w > lim
        || d->dil_h > lim || d->dil_w > lim || d->groups > lim)
        return 0;
    int64_t eh = d->H + 2 * d->pad_h - d->dil_h * (d->R - 1) - 1;
    int64_t ew = d->W + 2 * d->pad_w - d->dil_w * (d->S - 1) - 1;
    if (eh < 0 || ew < 0 || d->P != eh / d->stride_h + 1 || d->Q != ew / d->stride_w + 1)
        return 0;
    if (d->C * d->H > INT64_MAX / d->W || d->K * d->P > INT64_MAX / d->Q)
        return 0;
    int64_t in = d->C * d->H * d->W, out = d->K * d->P * d->Q;
    return d->N <= INT64_MAX / in && d->N <= INT64_MAX / out;
}

/* ---- batch chunks ---- */

/* The most images one cuDNN call may take: cuDNN's tensor descriptors
 * have int sizes and strides, so a chunk's N C H W and N K P Q must each
 * fit in an int.  A larger batch runs as consecutive chunks of this many
 * images (the last one smaller): forward and backward-data are per image
 * anyway, backward-filter accumulates the chunks' sums (beta = 1 after the
 * first).  0 when a single image is too large, which cannot be split. */
static int64_t conv_chunk(const mltk_conv2d_desc *d)
{
    int64_t in = d->C * d->H * d->W, out = d->K * d->P * d->Q;
    int64_t per = in > out ? in : out;
    return per > INT_MAX ? 0 : INT_MAX / per;
}

/* the log line and status for a geometry conv_chunk cannot split */
static int conv_too_large(const mltk_conv2d_desc *d, const char *op)
{
    mltk_log(MLTK_LOG_ERROR, "cuda: %s: one image of C*H*W = %lld or K*P*Q = %lld elements "
             "exceeds cuDNN's int tensor sizes (%d); the batch can be split, an image "
             "cannot", op, (long long)(d->C * d->H * d->W), (long long)(d->K * d->P * d->Q),
             INT_MAX);
    return MLTK_ERR_UNSUPPORTED;
}

/* ---- the plan cache (least recently used first out) ---- */

static void plan_free(cuda_conv_plan *p)
{
    if (!p)
        return;
    /* teardown: a failure is logged (once per plan) and the rest released */
    cudnnStatus_t st = CUDNN_STATUS_SUCCESS, t;
#define PLAN_DESTROY(call) do { t = (call); if (st == CUDNN_STATUS_SUCCESS) st = t; } while (0)
    if (p->x) PLAN_DESTROY(cudnnDestroyTensorDescriptor(p->x));
    if (p->y) PLAN_DESTROY(cudnnDestroyTensorDescriptor(p->y));
    if (p->w) PLAN_DESTROY(cudnnDestroyFilterDescriptor(p->w));
    for (int i = 0; i < 3; i++)
        if (p->conv[i])
            PLAN_DESTROY(cudnnDestroyConvolutionDescriptor(p->conv[i]));
#undef PLAN_DESTROY
    if (st != CUDNN_STATUS_SUCCESS)
        (void)cuda_fail_dnn("conv2d: releasing a plan's descriptors", st);
    free(p);
}

void cuda_conv_plans_free(cuda_ctx *c)
{
    while (c->plans) {
        cuda_conv_plan *p = c->plans;
        c->plans = p->next;
        plan_free(p);
    }
    c->n_plans = 0;
}

void cuda_conv_free(cuda_ctx *c)
{
    cuda_conv_plans_free(c);
    free(c->conv_budgets);
    c->conv_budgets = NULL;
    c->n_conv_budgets = c->cap_conv_budgets = 0;
    if (c->conv_ws)
        (void)cuda_mem_free(c, c->conv_ws);  /* a failure is logged there */
    c->conv_ws = NULL;
    c->conv_ws_bytes = 0;
}

/* The cached plan for d (geometry and batch) under the current TF32
 * setting whose choice is the one a workspace limit of `cap` gives, moved
 * to the front (most recently used); NULL if none.  A plan chosen under
 * limit L whose algorithms need ws is the choice for every limit in
 * [ws, L]: each op's heuristics are walked in the same order and the first
 * that fits is taken, and nothing before it fitted under L. */
static cuda_conv_plan *plan_lookup(cuda_ctx *c, const mltk_conv2d_desc *d, size_t cap)
{
    for (cuda_conv_plan **pp = &c->plans; *pp; pp = &(*pp)->next) {
        cuda_conv_plan *p = *pp;
        if (p->d.N != d->N || p->tf32 != c->tf32 || p->ws > cap || cap > p->cap
            || !same_geometry(&p->d, d))
            continue;
        *pp = p->next;
        p->next = c->plans;
        c->plans = p;
        return p;
    }
    return NULL;
}

/* push p to the front; beyond CONV_MAX_PLANS drop the least recently used
 * (the last).  Only descriptors and choices go: what a caller was told
 * about workspace lives in the budgets. */
static void plan_insert(cuda_ctx *c, cuda_conv_plan *p)
{
    p->next = c->plans;
    c->plans = p;
    c->n_plans++;
    while (c->n_plans > CONV_MAX_PLANS) {
        cuda_conv_plan **pp = &c->plans;
        while ((*pp)->next)
            pp = &(*pp)->next;
        plan_free(*pp);
        *pp = NULL;
        c->n_plans--;
    }
}

/* The math type a descriptor carries into cuDNN's algorithm queries: with
 * TF32 off only true fp32 (FMA), with it on the default, which lets cuDNN
 * offer TF32 tensor-core algorithms. */
static cudnnMathType_t query_math(const cuda_ctx *c)
{
    return c->tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

static int math_ok(const cuda_ctx *c, cudnnMathType_t m)
{
    /* never ALLOW_CONVERSION (fp16 inside); tensor cores only with TF32 on */
    return m == CUDNN_FMA_MATH
        || (c->tf32 && (m == CUDNN_DEFAULT_MATH || m == CUDNN_TENSOR_OP_MATH));
}

/* workspace of `algo` in math type `m` for op with tensors x, y (cuDNN's
 * size query, which reads the math type from the descriptor); SIZE_MAX
 * when the algorithm does not support the problem */
static size_t algo_ws(cuda_ctx *c, const cuda_conv_plan *p, int op, int algo,
                      cudnnMathType_t m, cudnnTensorDescriptor_t x, cudnnTensorDescriptor_t y)
{
    size_t sz = 0;
    cudnnStatus_t st = cudnnSetConvolutionMathType(p->conv[op], m);
    if (st != CUDNN_STATUS_SUCCESS)
        return SIZE_MAX;
    if (op == OP_FWD)
        st = cudnnGetConvolutionForwardWorkspaceSize(c->dnn, x, p->w, p->conv[op], y,
                                                     (cudnnConvolutionFwdAlgo_t)algo, &sz);
    else if (op == OP_BWD_DATA)
        st = cudnnGetConvolutionBackwardDataWorkspaceSize(
            c->dnn, p->w, y, p->conv[op], x, (cudnnConvolutionBwdDataAlgo_t)algo, &sz);
    else
        st = cudnnGetConvolutionBackwardFilterWorkspaceSize(
            c->dnn, x, y, p->conv[op], p->w, (cudnnConvolutionBwdFilterAlgo_t)algo, &sz);
    return st == CUDNN_STATUS_SUCCESS ? sz : SIZE_MAX;
}

/* deterministic algorithms tried, in order, when the heuristics offer
 * none that fits */
static const int FALLBACK_FWD[] = { CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                                    CUDNN_CONVOLUTION_FWD_ALGO_GEMM, -1 };
static const int FALLBACK_BWD_DATA[] = { CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
                                         CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING, -1 };
static const int FALLBACK_BWD_FILTER[] = { CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1,
                                           CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING, -1 };

static const int *fallbacks(int op)
{
    return op == OP_FWD ? FALLBACK_FWD : op == OP_BWD_DATA ? FALLBACK_BWD_DATA
                                                           : FALLBACK_BWD_FILTER;
}

/* The first fallback algorithm of `op` (in FMA math) whose workspace at
 * (x, y) is at most `cap`: *algo, *m and its size *ws; 0 if none fits. */
static int fallback_fit(cuda_ctx *c, cuda_conv_plan *p, int op, cudnnTensorDescriptor_t x,
                        cudnnTensorDescriptor_t y, size_t cap, int *algo,
                        cudnnMathType_t *m, size_t *ws)
{
    for (const int *a = fallbacks(op); *a >= 0; a++) {
        size_t sz = algo_ws(c, p, op, *a, CUDNN_FMA_MATH, x, y);
        if (sz <= cap) {
            *algo = *a;
            *m = CUDNN_FMA_MATH;
            *ws = sz;
            return 1;
        }
    }
    return 0;
}

/* The heuristics' first deterministic algorithm of an allowed math type
 * whose workspace is at most cap: *algo, *m, *ws. */
static int choose_algo(cuda_ctx *c, cuda_conv_plan *p, int op, size_t cap, int *algo,
                       cudnnMathType_t *m, size_t *ws)
{
    enum { MAXA = 16 };
    int got = 0;
    int algos[MAXA];
    cudnnMathType_t maths[MAXA];
    /* the heuristics read the descriptor's math type, which the size
     * queries below (algo_ws) leave at whatever they tried last: set the
     * one of the current TF32 policy before every query */
    cudnnStatus_t st = cudnnSetConvolutionMathType(p->conv[op], query_math(c));
    if (st != CUDNN_STATUS_SUCCESS)
        return cuda_fail_dnn("conv2d: math type", st);
    if (op == OP_FWD) {
        cudnnConvolutionFwdAlgoPerf_t perf[MAXA];
        st = cudnnGetConvolutionForwardAlgorithm_v7(c->dnn, p->x, p->w, p->conv[op], p->y,
                                                    MAXA, &got, perf);
        for (int i = 0; st == CUDNN_STATUS_SUCCESS && i < got; i++) {
            int ok = perf[i].status == CUDNN_STATUS_SUCCESS
                && perf[i].determinism == CUDNN_DETERMINISTIC;
            algos[i] = ok ? (int)perf[i].algo : -1;
            maths[i] = perf[i].mathType;
        }
    } else if (op == OP_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[MAXA];
        st = cudnnGetConvolutionBackwardDataAlgorithm_v7(c->dnn, p->w, p->y, p->conv[op],
                                                         p->x, MAXA, &got, perf);
        for (int i = 0; st == CUDNN_STATUS_SUCCESS && i < got; i++) {
            int ok = perf[i].status == CUDNN_STATUS_SUCCESS
                && perf[i].determinism == CUDNN_DETERMINISTIC;
            algos[i] = ok ? (int)perf[i].algo : -1;
            maths[i] = perf[i].mathType;
        }
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[MAXA];
        st = cudnnGetConvolutionBackwardFilterAlgorithm_v7(c->dnn, p->x, p->y, p->conv[op],
                                                           p->w, MAXA, &got, perf);
        for (int i = 0; st == CUDNN_STATUS_SUCCESS && i < got; i++) {
            int ok = perf[i].status == CUDNN_STATUS_SUCCESS
                && perf[i].determinism == CUDNN_DETERMINISTIC;
            algos[i] = ok ? (int)perf[i].algo : -1;
            maths[i] = perf[i].mathType;
        }
    }
    if (st != CUDNN_STATUS_SUCCESS)
        got = 0;
    for (int i = 0; i < got && i < MAXA; i++) {
        if (algos[i] < 0 || !math_ok(c, maths[i]))
            continue;
        size_t sz = algo_ws(c, p, op, algos[i], maths[i], p->x, p->y);
        if (sz <= cap) {
            *algo = algos[i];
            *m = maths[i];
            *ws = sz;
            return MLTK_OK;
        }
    }
    if (fallback_fit(c, p, op, p->x, p->y, cap, algo, m, ws))
        return MLTK_OK;
    if (cap < CONV_WS_CAP)
        return MLTK_ERR_UNSUPPORTED;  /* within a caller's buffer: conv_prepare retries */
    mltk_log(MLTK_LOG_ERROR, "cuda: conv2d: cuDNN offers no deterministic %s algorithm for "
             "C=%lld H=%lld W=%lld K=%lld R=%lld S=%lld groups=%lld",
             op == OP_FWD ? "forward" : op == OP_BWD_DATA ? "backward-data"
                                                         : "backward-filter",
             (long long)p->d.C, (long long)p->d.H, (long long)p->d.W, (long long)p->d.K,
             (long long)p->d.R, (long long)p->d.S, (long long)p->d.groups);
    return MLTK_ERR_UNSUPPORTED;
}

#define DNN_GO(op, call)                                                      \
    do {                                                                      \
        cudnnStatus_t s_ = (call);                                            \
        if (s_ != CUDNN_STATUS_SUCCESS) {                                     \
            rc = cuda_fail_dnn((op), s_);                                     \
            goto fail;                                                        \
        }                                                                     \
    } while (0)

/* A new plan for d (0 < d->N <= conv_chunk(d)) whose algorithms each need
 * at most `cap` bytes of workspace, at the front of the cache.
 * MLTK_ERR_UNSUPPORTED when no deterministic algorithm fits (logged only
 * for cap = CONV_WS_CAP; a smaller cap is a try the caller may retry). */
static int plan_create(cuda_ctx *c, const mltk_conv2d_desc *d, size_t cap,
                       cuda_conv_plan **out)
{
    int rc = MLTK_OK;
    cuda_conv_plan *p = calloc(1, sizeof *p);
    if (!p)
        return MLTK_ERR_NOMEM;
    p->d = *d;
    p->tf32 = c->tf32;
    p->cap = cap;
    DNN_GO("conv2d: descriptors", cudnnCreateTensorDescriptor(&p->x));
    DNN_GO("conv2d: descriptors", cudnnCreateTensorDescriptor(&p->y));
    DNN_GO("conv2d: descriptors", cudnnCreateFilterDescriptor(&p->w));
    DNN_GO("conv2d: tensor descriptors",
           cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)d->N,
                                      (int)d->C, (int)d->H, (int)d->W));
    DNN_GO("conv2d: tensor descriptors",
           cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)d->N,
                                      (int)d->K, (int)d->P, (int)d->Q));
    DNN_GO("conv2d: filter descriptor",
           cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, (int)d->K,
                                      (int)(d->C / d->groups), (int)d->R, (int)d->S));
    for (int i = 0; i < 3; i++) {
        DNN_GO("conv2d: descriptors", cudnnCreateConvolutionDescriptor(&p->conv[i]));
        DNN_GO("conv2d: convolution descriptor",
               cudnnSetConvolution2dDescriptor(p->conv[i], (int)d->pad_h, (int)d->pad_w,
                                               (int)d->stride_h, (int)d->stride_w,
                                               (int)d->dil_h, (int)d->dil_w,
                                               CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
        DNN_GO("conv2d: group count", cudnnSetConvolutionGroupCount(p->conv[i], (int)d->groups));
        DNN_GO("conv2d: math type", cudnnSetConvolutionMathType(p->conv[i], query_math(c)));
    }
    for (int op = 0; op < 3; op++) {
        size_t ws = 0;
        rc = choose_algo(c, p, op, cap, &p->algo[op], &p->math[op], &ws);
        if (rc)
            goto fail;
        p->ws = ws > p->ws ? ws : p->ws;
    }
    plan_insert(c, p);
    *out = p;
    return MLTK_OK;
fail:
    plan_free(p);
    return rc;
}

/* the plan for d under limit cap: cached, or made now */
static int plan_get(cuda_ctx *c, const mltk_conv2d_desc *d, size_t cap, cuda_conv_plan **out)
{
    cuda_conv_plan *p = plan_lookup(c, d, cap);
    if (p) {
        *out = p;
        return MLTK_OK;
    }
    return plan_create(c, d, cap, out);
}

/* ---- workspace budgets ---- */

/* Remember that a caller was told `ws` bytes for d (batch d->N): a second
 * report of the same geometry and batch keeps the smaller size, which
 * every buffer sized from either report holds. */
static int budget_note(cuda_ctx *c, const mltk_conv2d_desc *d, size_t ws)
{
    for (int i = 0; i < c->n_conv_budgets; i++) {
        cuda_conv_budget *b = &c->conv_budgets[i];
        if (b->d.N == d->N && same_geometry(&b->d, d)) {
            b->ws = ws < b->ws ? ws : b->ws;
            return MLTK_OK;
        }
    }
    if (c->n_conv_budgets == c->cap_conv_budgets) {
        int cap = c->cap_conv_budgets ? 2 * c->cap_conv_budgets : 16;
        cuda_conv_budget *nb = realloc(c->conv_budgets, (size_t)cap * sizeof *nb);
        if (!nb)
            return MLTK_ERR_NOMEM;
        c->conv_budgets = nb;
        c->cap_conv_budgets = cap;
    }
    c->conv_budgets[c->n_conv_budgets].d = *d;
    c->conv_budgets[c->n_conv_budgets].ws = ws;
    c->n_conv_budgets++;
    return MLTK_OK;
}

/* The workspace an op on d (a chunk of d->N images) may assume the
 * caller's buffer holds: the smallest size reported for this geometry at
 * a batch >= d->N (a layer sizes its buffer for its largest batch and runs
 * that or fewer images), or CONV_WS_UNKNOWN when none was reported (or a
 * report could not be recorded). */
static size_t budget_of(const cuda_ctx *c, const mltk_conv2d_desc *d)
{
    if (c->conv_budgets_lost)
        return CONV_WS_UNKNOWN;
    size_t best = CONV_WS_UNKNOWN;
    for (int i = 0; i < c->n_conv_budgets; i++) {
        const cuda_conv_budget *b = &c->conv_budgets[i];
        if (b->d.N >= d->N && b->ws < best && same_geometry(&b->d, d))
            best = b->ws;
    }
    return best;
}

/* At least `bytes` of the context's own convolution workspace (grows,
 * never shrinks; the old block goes back to the cache, stream-ordered). */
static int own_ws(cuda_ctx *c, size_t bytes, void **ptr, const char *op)
{
    if (bytes > c->conv_ws_bytes) {
        void *p = NULL;
        int rc = cuda_mem_alloc(c, bytes, &p);
        if (rc) {
            mltk_log(MLTK_LOG_ERROR, "cuda: %s: cannot allocate %zu bytes of convolution "
                     "workspace", op, bytes);
            return rc;
        }
        void *old = c->conv_ws;
        c->conv_ws = p;
        c->conv_ws_bytes = bytes;
        rc = cuda_mem_free(c, old);
        if (rc)
            return rc;
    }
    *ptr = c->conv_ws;
    return MLTK_OK;
}

/* The plan for one chunk d and the workspace to hand cuDNN with it: the
 * caller's `ws` when its known size (budget_of; 0 for NULL) admits a plan,
 * which is then chosen within it; else the context's own workspace, grown
 * to what a plan chosen within CONV_WS_CAP needs.  Either way cuDNN is
 * never told of more workspace than the buffer it gets has. */
static int conv_prepare(cuda_ctx *c, const mltk_conv2d_desc *d, void *ws, cuda_conv_plan **out,
                        void **ws_out, const char *op)
{
    size_t budget = ws ? budget_of(c, d) : 0;
    if (budget != CONV_WS_UNKNOWN) {
        size_t cap = budget < CONV_WS_CAP ? budget : CONV_WS_CAP;
        int rc = plan_get(c, d, cap, out);
        if (rc == MLTK_OK) {
            *ws_out = ws;
            return MLTK_OK;
        }
        if (rc != MLTK_ERR_UNSUPPORTED || cap == CONV_WS_CAP)
            return rc;
        /* nothing fits the caller's buffer: use our own */
    }
    int rc = plan_get(c, d, CONV_WS_CAP, out);
    if (rc)
        return rc;
    if ((*out)->ws == 0) {
        *ws_out = NULL;
        return MLTK_OK;
    }
    mltk_log(MLTK_LOG_DEBUG, "cuda: %s: batch %lld runs in the backend's own %zu-byte "
             "workspace (%s)", op, (long long)d->N, (*out)->ws,
             budget == CONV_WS_UNKNOWN ? "no size reported for the caller's buffer"
                                       : "no algorithm fits the caller's buffer");
    return own_ws(c, (*out)->ws, ws_out, op);
}

/* set op's descriptor to the math type of the plan's algorithm (the size
 * queries of other plans' choices may have changed it) */
static int use_math(cuda_conv_plan *p, int op, const char *what)
{
    DNN_TRY(what, cudnnSetConvolutionMathType(p->conv[op], p->math[op]));
    return MLTK_OK;
}

/* ---- convolution ops ---- */

static int act_ok(mltk_act act)
{
    return act == MLTK_ACT_NONE || act == MLTK_ACT_RELU || act == MLTK_ACT_LEAKY_RELU
        || act == MLTK_ACT_SIGMOID || act == MLTK_ACT_TANH;
}

/* The workspace for d at its first chunk's batch (min(N, conv_chunk)),
 * chosen within CONV_WS_CAP and remembered as the caller's budget. */
size_t cuda_conv2d_workspace(void *ctx, const mltk_conv2d_desc *d)
{
    cuda_ctx *c = ctx;
    if (!c || !desc_valid(d) || d->N == 0 || cu_set_device(c))
        return 0;
    int64_t nb = conv_chunk(d);
    if (nb == 0) {
        (void)conv_too_large(d, "conv2d_workspace");
        return 0;  /* the ops refuse d the same way */
    }
    mltk_conv2d_desc dc = *d;
    dc.N = d->N < nb ? d->N : nb;
    cuda_conv_plan *p;
    if (plan_get(c, &dc, CONV_WS_CAP, &p))
        return 0;
    if (budget_note(c, &dc, p->ws)) {
        /* without the record no op may trust any caller's buffer size */
        mltk_log(MLTK_LOG_WARN, "cuda: conv2d_workspace: out of memory for the workspace "
                 "records; convolutions use the backend's own workspace from now on");
        c->conv_budgets_lost = 1;
    }
    return p->ws;
}

static const float ONE = 1.0f, ZERO = 0.0f;

int cuda_conv2d_forward(void *ctx, float *y, const float *x, const float *w, const float *b,
                        const mltk_conv2d_desc *d, mltk_act act, float alpha, void *ws)
{
    cuda_ctx *c = ctx;
    const char *op = "conv2d_forward";
    CU_ENTER(c);
    if (!desc_valid(d) || !act_ok(act))
        return MLTK_ERR_INVALID;
    if (d->N == 0)
        return MLTK_OK;
    if (!y || !x || !w)
        return MLTK_ERR_INVALID;
    const int64_t nb = conv_chunk(d);
    if (nb == 0)
        return conv_too_large(d, op);
    const int64_t in = d->C * d->H * d->W, out = d->K * d->P * d->Q;
    for (int64_t n0 = 0; n0 < d->N; n0 += nb) {
        mltk_conv2d_desc dc = *d;
        dc.N = d->N - n0 < nb ? d->N - n0 : nb;
        cuda_conv_plan *p;
        void *wsp;
        int rc = conv_prepare(c, &dc, ws, &p, &wsp, op);
        if (!rc)
            rc = use_math(p, OP_FWD, "conv2d_forward: math type");
        if (rc)
            return rc;
        DNN_TRY("conv2d_forward: cudnnConvolutionForward",
                cudnnConvolutionForward(c->dnn, &ONE, p->x, x + n0 * in, p->w, w,
                                        p->conv[OP_FWD],
                                        (cudnnConvolutionFwdAlgo_t)p->algo[OP_FWD], wsp,
                                        p->ws, &ZERO, p->y, y + n0 * out));
    }
    if (b || act != MLTK_ACT_NONE)
        CU_TRY("conv2d_forward: bias and activation",
               ck_chan_bias_act(c->stream, y, b, d->N, d->K, d->P * d->Q, act, alpha));
    return MLTK_OK;
}

int cuda_conv2d_backward_data(void *ctx, float *dx, const float *dy, const float *w,
                              const mltk_conv2d_desc *d, void *ws)
{
    cuda_ctx *c = ctx;
    const char *op = "conv2d_backward_data";
    CU_ENTER(c);
    if (!desc_valid(d))
        return MLTK_ERR_INVALID;
    if (d->N == 0)
        return MLTK_OK;
    if (!dx || !dy || !w)
        return MLTK_ERR_INVALID;
    const int64_t nb = conv_chunk(d);
    if (nb == 0)
        return conv_too_large(d, op);
    const int64_t in = d->C * d->H * d->W, out = d->K * d->P * d->Q;
    for (int64_t n0 = 0; n0 < d->N; n0 += nb) {
        mltk_conv2d_desc dc = *d;
        dc.N = d->N - n0 < nb ? d->N - n0 : nb;
        cuda_conv_plan *p;
        void *wsp;
        int rc = conv_prepare(c, &dc, ws, &p, &wsp, op);
        if (!rc)
            rc = use_math(p, OP_BWD_DATA, "conv2d_backward_data: math type");
        if (rc)
            return rc;
        DNN_TRY("conv2d_backward_data: cudnnConvolutionBackwardData",
                cudnnConvolutionBackwardData(c->dnn, &ONE, p->w, w, p->y, dy + n0 * out,
                                             p->conv[OP_BWD_DATA],
                                             (cudnnConvolutionBwdDataAlgo_t)
                                                 p->algo[OP_BWD_DATA],
                                             wsp, p->ws, &ZERO, p->x, dx + n0 * in));
    }
    return MLTK_OK;
}

int cuda_conv2d_backward_filter(void *ctx, float *dw, float *db, const float *dy,
                                const float *x, const mltk_conv2d_desc *d, void *ws)
{
    cuda_ctx *c = ctx;
    const char *op = "conv2d_backward_filter";
    CU_ENTER(c);
    if (!desc_valid(d) || !dw)
        return MLTK_ERR_INVALID;
    const size_t wbytes = (size_t)(d->K * (d->C / d->groups) * d->R * d->S) * sizeof(float);
    if (d->N == 0) {
        CU_TRY("conv2d_backward_filter", cudaMemsetAsync(dw, 0, wbytes, c->stream));
        if (db)
            CU_TRY("conv2d_backward_filter",
                   cudaMemsetAsync(db, 0, (size_t)d->K * sizeof(float), c->stream));
        return MLTK_OK;
    }
    if (!dy || !x)
        return MLTK_ERR_INVALID;
    const int64_t nb = conv_chunk(d);
    if (nb == 0)
        return conv_too_large(d, op);
    const int64_t in = d->C * d->H * d->W, out = d->K * d->P * d->Q;
    int rc;
    for (int64_t n0 = 0; n0 < d->N; n0 += nb) {
        mltk_conv2d_desc dc = *d;
        dc.N = d->N - n0 < nb ? d->N - n0 : nb;
        cuda_conv_plan *p;
        void *wsp;
        rc = conv_prepare(c, &dc, ws, &p, &wsp, op);
        if (!rc)
            rc = use_math(p, OP_BWD_FILTER, "conv2d_backward_filter: math type");
        if (rc)
            return rc;
        /* the first chunk overwrites dw, the others add to it */
        DNN_TRY("conv2d_backward_filter: cudnnConvolutionBackwardFilter",
                cudnnConvolutionBackwardFilter(c->dnn, &ONE, p->x, x + n0 * in, p->y,
                                               dy + n0 * out, p->conv[OP_BWD_FILTER],
                                               (cudnnConvolutionBwdFilterAlgo_t)
                                                   p->algo[OP_BWD_FILTER],
                                               wsp, p->ws, n0 == 0 ? &ZERO : &ONE, p->w,
                                               dw));
    }
    if (db) {
        /* db[k] = sum of dy over (n, p, q), per-channel partials in double
         * (own kernels, 64-bit indices: the whole batch at once) */
        const int64_t L = d->P * d->Q, chunks = ck_chan_chunks(d->N, L);
        void *part;
        rc = cuda_scratch(c, (size_t)(chunks * d->K * 2) * sizeof(double), &part,
                          "conv2d_backward_filter");
        if (rc)
            return rc;
        CU_TRY("conv2d_backward_filter: bias gradient",
               ck_chan_sums(c->stream, CK_CHAN_SUM, part, dy, NULL, NULL, d->N, d->K, L));
        CU_TRY("conv2d_backward_filter: bias gradient",
               ck_chan_total(c->stream, db, part, chunks, d->K));
    }
    return MLTK_OK;
}

/* ---- pooling ---- */

static int pool_desc_valid(const mltk_pool2d_desc *d)
{
    if (!d || d->N < 0 || d->C < 1 || d->H < 1 || d->W < 1 || d->R < 1 || d->S < 1
        || d->stride_h < 1 || d->stride_w < 1 || d->pad_h < 0 || d->pad_w < 0
        || 2 * d->pad_h > d->R || 2 * d->pad_w > d->S)
        return 0;
    int64_t eh = d->H + 2 * d->pad_h - d->R, ew = d->W + 2 * d->pad_w - d->S;
    return eh >= 0 && ew >= 0 && d->P == eh / d->stride_h + 1
        && d->Q == ew / d->stride_w + 1;
}

int cuda_pool2d_forward(void *ctx, mltk_pool kind, float *y, const float *x,
                        const mltk_pool2d_desc *d)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c);
    if (!pool_desc_valid(d) || (kind != MLTK_POOL_MAX && kind != MLTK_POOL_AVG))
        return MLTK_ERR_INVALID;
    if (d->N == 0)
        return MLTK_OK;
    if (!y || !x)
        return MLTK_ERR_INVALID;
    CU_TRY("pool2d_forward", ck_pool_forward(c->stream, kind, y, x, d));
    return MLTK_OK;
}

int cuda_pool2d_backward(void *ctx, mltk_pool kind, float *dx, const float *dy,
                         const float *x, const float *y, const mltk_pool2d_desc *d)
{
    cuda_ctx *c = ctx;
    (void)y;
    CU_ENTER(c);
    if (!pool_desc_valid(d) || (kind != MLTK_POOL_MAX && kind != MLTK_POOL_AVG))
        return MLTK_ERR_INVALID;
    if (d->N == 0)
        return MLTK_OK;
    if (!dx || !dy || (kind == MLTK_POOL_MAX && !x))
        return MLTK_ERR_INVALID;
    CU_TRY("pool2d_backward", ck_pool_backward(c->stream, kind, dx, dy, x, d));
    return MLTK_OK;
}
