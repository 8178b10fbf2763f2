/* cuda_conv.c - 2-d convolution (cuDNN) and pooling (own kernels) of the
 * cuda backend.
 *
 * What this is: conv2d forward, backward-data and backward-filter through
 * cuDNN's convolution API in f32, bf16 or f16 (the tensor descriptors in
 * the inputs' dtype, the convolution computed in f32), with the bias and
 * activation applied by our own per-channel epilogue and the bias
 * gradient summed by our own deterministic per-channel reduction (in
 * double, written in db's dtype); max/average pooling in f32 by the
 * kernels of cuda_nn_kernels.cu, which follow the cpu backend's window
 * rules exactly.
 *
 * Mixed precision: the core lets each output (y; dx; dw, db) and the bias
 * be f32 beside bf16 or f16 inputs.  cuDNN takes a convolution's three
 * tensors in one data type, so a call whose first output (y, dx, dw) is
 * f32 widens its two inputs to f32 in the call's workspace and runs the
 * f32 convolution on them (conv_widened): the f32 convolution of the
 * inputs' values, as the cpu backend computes it.  A call whose first
 * output has the inputs' dtype runs cuDNN in that dtype, whatever the
 * dtype of the bias or db: the epilogue and the bias sums read and write
 * each tensor in its own.
 *
 * Plans: for each convolution geometry, batch size and dtype the context
 * keeps a plan (cuDNN descriptors and one algorithm per op), chosen from
 * cuDNN's heuristics among the deterministic algorithms of the wanted
 * math (f32: FMA, i.e. true fp32, unless TF32 is on; bf16 and f16: tensor
 * cores) whose workspace stays under a limit.  The plans are an LRU cache
 * of CONV_MAX_PLANS; switching TF32 drops them all.  The limit is the
 * call's own workspace (mltk_op_call.ws_bytes, at most CONV_WS_CAP), so a
 * plan never outgrows the buffer it runs in: a layer sizes its buffer for
 * its largest batch and may run smaller ones, whose plan is then chosen
 * within that buffer.  When no algorithm fits it, the op runs in the
 * context's own (growing) workspace instead.  cuDNN is never told of more
 * workspace than the buffer it is given.  Choosing never runs anything (no
 * cudnnFind), so plans are the same from run to run.
 *
 * `workspace` (cuda_conv2d_workspace) answers with what run will use of
 * the call's buffer: without one (a size query), the most the three
 * algorithms chosen within CONV_WS_CAP need; with one, what the plan
 * chosen within it needs (0 when none fits: run uses its own), so that
 * the core's check of the buffer before run never refuses a call run
 * could serve.  A widened call needs its inputs' f32 copies in the buffer
 * as well (they have no fallback); a size query in bf16 or f16 answers
 * the larger of the two paths' needs, so mltk_op_conv2d_workspace() sizes
 * a buffer that serves both.
 *
 * Batches: cuDNN's tensor descriptors take int sizes, so a batch whose
 * N C H W or N K P Q exceeds INT_MAX runs as chunks of images that fit
 * (conv_chunk); backward-filter accumulates over the chunks.  Pooling and
 * the bias sums are our own kernels with 64-bit indices and need no split.
 *
 * What this is not: argument checking (the core's), a Winograd/FFT
 * selection by timing, pooling with ceil_mode or dilation, or pooling in
 * bf16/f16.
 */
#include "config.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

/* ---- plans ---- */

/* the most workspace one algorithm may ask for */
#define CONV_WS_CAP ((size_t)128 << 20)
/* plans kept per context; the least recently used goes first */
#define CONV_MAX_PLANS 64

enum { OP_FWD = 0, OP_BWD_DATA = 1, OP_BWD_FILTER = 2 };

/* cuDNN descriptors and one algorithm per op for one geometry at one batch
 * size in one dtype, chosen under one math policy and one workspace limit */
struct cuda_conv_plan {
    cuda_conv_plan *next;                /* in use order, most recent first */
    mltk_conv2d_desc d;                  /* geometry, d.N the batch of x and y */
    mltk_dtype dt;                       /* of x, w, y (f32, bf16, f16) */
    int tf32;                            /* the TF32 setting it was chosen under */
    size_t cap;                          /* the workspace limit it was chosen under */
    cudnnTensorDescriptor_t x, y;        /* (d.N, C, H, W), (d.N, K, P, Q) */
    cudnnFilterDescriptor_t w;           /* (K, C / groups, R, S) */
    cudnnConvolutionDescriptor_t conv[3];  /* per op: each has its math type */
    int algo[3];
    cudnnMathType_t math[3];
    size_t ws;                           /* the most the three need at d.N, <= cap */
};

static int same_geometry(const mltk_conv2d_desc *a, const mltk_conv2d_desc *b)
{
    return a->C == b->C && a->H == b->H && a->W == b->W && a->K == b->K && a->R == b->R
        && a->S == b->S && a->P == b->P && a->Q == b->Q && a->stride_h == b->stride_h
        && a->stride_w == b->stride_w && a->pad_h == b->pad_h && a->pad_w == b->pad_w
        && a->dil_h == b->dil_h && a->dil_w == b->dil_w && a->groups == b->groups;
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

/* the message and status for a geometry conv_chunk cannot split */
static int conv_too_large(cuda_ctx *c, const mltk_conv2d_desc *d, const char *op)
{
    return cuda_failf(c, MLTK_ERR_UNSUPPORTED, "%s: one image of C*H*W = %lld or K*P*Q = "
                      "%lld elements exceeds cuDNN's int tensor sizes (%d); the batch can be "
                      "split, an image cannot", op, (long long)(d->C * d->H * d->W),
                      (long long)(d->K * d->P * d->Q), INT_MAX);
}

/* a failed cuDNN call on geometry d in dtype dt: the status and the shapes */
static int dnn_fail(cuda_ctx *c, const char *what, cudnnStatus_t st,
                    const mltk_conv2d_desc *d, mltk_dtype dt)
{
    return cuda_failf(c, st == CUDNN_STATUS_ALLOC_FAILED ? MLTK_ERR_NOMEM : MLTK_ERR_BACKEND,
                      "%s: cuDNN: %s for x %s (%lld, %lld, %lld, %lld), w (%lld, %lld, %lld, "
                      "%lld), y (%lld, %lld, %lld, %lld), stride (%lld, %lld), pad (%lld, "
                      "%lld), dilation (%lld, %lld), groups %lld", what,
                      cudnnGetErrorString(st), mltk_dtype_name(dt), (long long)d->N,
                      (long long)d->C, (long long)d->H, (long long)d->W, (long long)d->K,
                      (long long)(d->C / d->groups), (long long)d->R, (long long)d->S,
                      (long long)d->N, (long long)d->K, (long long)d->P, (long long)d->Q,
                      (long long)d->stride_h, (long long)d->stride_w, (long long)d->pad_h,
                      (long long)d->pad_w, (long long)d->dil_h, (long long)d->dil_w,
                      (long long)d->groups);
}

static cudnnDataType_t dnn_type(mltk_dtype dt)
{
    return dt == MLTK_BF16 ? CUDNN_DATA_BFLOAT16 : dt == MLTK_F16 ? CUDNN_DATA_HALF
                                                                  : CUDNN_DATA_FLOAT;
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
        (void)cuda_fail_dnn(NULL, "conv2d: releasing a plan's descriptors", st);
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
    if (c->conv_ws)
        (void)cuda_mem_free(c, c->conv_ws);  /* a failure is logged there */
    c->conv_ws = NULL;
    c->conv_ws_bytes = 0;
}

/* The cached plan for d (geometry and batch) in dtype dt under the current
 * TF32 setting whose choice is the one a workspace limit of `cap` gives,
 * moved to the front (most recently used); NULL if none.  A plan chosen under
 * limit L whose algorithms need ws is the choice for every limit in
 * [ws, L]: each op's heuristics are walked in the same order and the first
 * that fits is taken, and nothing before it fitted under L. */
static cuda_conv_plan *plan_lookup(cuda_ctx *c, const mltk_conv2d_desc *d, mltk_dtype dt,
                                   size_t cap)
{
    for (cuda_conv_plan **pp = &c->plans; *pp; pp = &(*pp)->next) {
        cuda_conv_plan *p = *pp;
        if (p->d.N != d->N || p->dt != dt || p->tf32 != c->tf32 || p->ws > cap
            || cap > p->cap || !same_geometry(&p->d, d))
            continue;
        *pp = p->next;
        p->next = c->plans;
        c->plans = p;
        return p;
    }
    return NULL;
}

/* push p to the front; beyond CONV_MAX_PLANS drop the least recently used
 * (the last) */
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

/* The math type a descriptor carries into cuDNN's algorithm queries: in
 * f32 with TF32 off only true fp32 (FMA), with it on the default, which
 * lets cuDNN offer TF32 tensor-core algorithms; in bf16 and f16 tensor
 * cores. */
static cudnnMathType_t query_math(const cuda_ctx *c, mltk_dtype dt)
{
    if (dt != MLTK_F32)
        return CUDNN_TENSOR_OP_MATH;
    return c->tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

static int math_ok(const cuda_ctx *c, mltk_dtype dt, cudnnMathType_t m)
{
    /* never ALLOW_CONVERSION (f32 data converted to f16 inside) */
    if (dt != MLTK_F32)
        return m != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
    /* f32: tensor cores only with TF32 on */
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

/* The first fallback algorithm of `op` (in FMA math for f32, the default
 * math for bf16 and f16) whose workspace at (x, y) is at most `cap`:
 * *algo, *m and its size *ws; 0 if none fits. */
static int fallback_fit(cuda_ctx *c, cuda_conv_plan *p, int op, cudnnTensorDescriptor_t x,
                        cudnnTensorDescriptor_t y, size_t cap, int *algo,
                        cudnnMathType_t *m, size_t *ws)
{
    const cudnnMathType_t fm = p->dt == MLTK_F32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
    for (const int *a = fallbacks(op); *a >= 0; a++) {
        size_t sz = algo_ws(c, p, op, *a, fm, x, y);
        if (sz <= cap) {
            *algo = *a;
            *m = fm;
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
    cudnnStatus_t st = cudnnSetConvolutionMathType(p->conv[op], query_math(c, p->dt));
    if (st != CUDNN_STATUS_SUCCESS)
        return dnn_fail(c, "conv2d: cudnnSetConvolutionMathType", st, &p->d, p->dt);
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
        if (algos[i] < 0 || !math_ok(c, p->dt, maths[i]))
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
    const mltk_conv2d_desc *d = &p->d;
    return cuda_failf(c, MLTK_ERR_UNSUPPORTED, "conv2d: cuDNN offers no deterministic %s "
                      "algorithm within %zu bytes of workspace for x %s (%lld, %lld, %lld, "
                      "%lld), w (%lld, %lld, %lld, %lld), groups %lld",
                      op == OP_FWD ? "forward" : op == OP_BWD_DATA ? "backward-data"
                                                                  : "backward-filter",
                      cap, mltk_dtype_name(p->dt), (long long)d->N, (long long)d->C,
                      (long long)d->H, (long long)d->W, (long long)d->K,
                      (long long)(d->C / d->groups), (long long)d->R, (long long)d->S,
                      (long long)d->groups);
}

#define DNN_GO(op, call)                                                      \
    do {                                                                      \
        cudnnStatus_t s_ = (call);                                            \
        if (s_ != CUDNN_STATUS_SUCCESS) {                                     \
            rc = dnn_fail(c, (op), s_, d, dt);                                \
            goto fail;                                                        \
        }                                                                     \
    } while (0)

/* A new plan for d (0 < d->N <= conv_chunk(d)) in dtype dt whose
 * algorithms each need at most `cap` bytes of workspace, at the front of
 * the cache.  MLTK_ERR_UNSUPPORTED when no deterministic algorithm fits
 * (reported only for cap = CONV_WS_CAP; a smaller cap is a try the caller
 * may retry). */
static int plan_create(cuda_ctx *c, const mltk_conv2d_desc *d, mltk_dtype dt, size_t cap,
                       cuda_conv_plan **out)
{
    int rc = MLTK_OK;
    cuda_conv_plan *p = calloc(1, sizeof *p);
    if (!p)
        return cuda_failf(c, MLTK_ERR_NOMEM, "conv2d: out of host memory for a plan");
    p->d = *d;
    p->dt = dt;
    p->tf32 = c->tf32;
    p->cap = cap;
    DNN_GO("conv2d: descriptors", cudnnCreateTensorDescriptor(&p->x));
    DNN_GO("conv2d: descriptors", cudnnCreateTensorDescriptor(&p->y));
    DNN_GO("conv2d: descriptors", cudnnCreateFilterDescriptor(&p->w));
    DNN_GO("conv2d: tensor descriptors",
           cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, dnn_type(dt), (int)d->N,
                                      (int)d->C, (int)d->H, (int)d->W));
    DNN_GO("conv2d: tensor descriptors",
           cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, dnn_type(dt), (int)d->N,
                                      (int)d->K, (int)d->P, (int)d->Q));
    DNN_GO("conv2d: filter descriptor",
           cudnnSetFilter4dDescriptor(p->w, dnn_type(dt), CUDNN_TENSOR_NCHW, (int)d->K,
                                      (int)(d->C / d->groups), (int)d->R, (int)d->S));
    for (int i = 0; i < 3; i++) {
        DNN_GO("conv2d: descriptors", cudnnCreateConvolutionDescriptor(&p->conv[i]));
        DNN_GO("conv2d: convolution descriptor",
               cudnnSetConvolution2dDescriptor(p->conv[i], (int)d->pad_h, (int)d->pad_w,
                                               (int)d->stride_h, (int)d->stride_w,
                                               (int)d->dil_h, (int)d->dil_w,
                                               CUDNN_CROSS_CORRELATION,
                                               CUDNN_DATA_FLOAT));  /* f32 compute */
        DNN_GO("conv2d: group count", cudnnSetConvolutionGroupCount(p->conv[i], (int)d->groups));
        DNN_GO("conv2d: math type",
               cudnnSetConvolutionMathType(p->conv[i], query_math(c, dt)));
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

/* the plan for d in dt under limit cap: cached, or made now */
static int plan_get(cuda_ctx *c, const mltk_conv2d_desc *d, mltk_dtype dt, size_t cap,
                    cuda_conv_plan **out)
{
    cuda_conv_plan *p = plan_lookup(c, d, dt, cap);
    if (p) {
        *out = p;
        return MLTK_OK;
    }
    return plan_create(c, d, dt, cap, out);
}

/* ---- workspace ---- */

/* At least `bytes` of the context's own convolution workspace (grows,
 * never shrinks; the old block goes back to the cache, stream-ordered). */
static int own_ws(cuda_ctx *c, size_t bytes, void **ptr, const char *op)
{
    if (bytes > c->conv_ws_bytes) {
        void *p = NULL;
        int rc = cuda_mem_alloc(c, bytes, &p);
        if (rc) {
            (void)op;  /* cuda_mem_alloc has said how many bytes it could not get */
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

/* The plan for one chunk d in dt and the workspace to hand cuDNN with it:
 * the call's `ws` of ws_bytes when a plan fits it (chosen within it; a
 * NULL ws is a limit of 0); else the context's own workspace, grown to
 * what a plan chosen within CONV_WS_CAP needs.  Either way cuDNN is never
 * told of more workspace than the buffer it gets has. */
static int conv_prepare(cuda_ctx *c, const mltk_conv2d_desc *d, mltk_dtype dt, void *ws,
                        size_t ws_bytes, cuda_conv_plan **out, void **ws_out, const char *op)
{
    size_t cap = !ws ? 0 : ws_bytes < CONV_WS_CAP ? ws_bytes : CONV_WS_CAP;
    int rc = plan_get(c, d, dt, cap, out);
    if (rc == MLTK_OK) {
        *ws_out = ws;
        return MLTK_OK;
    }
    if (rc != MLTK_ERR_UNSUPPORTED || cap == CONV_WS_CAP)
        return rc;
    /* nothing fits the caller's buffer: use our own */
    rc = plan_get(c, d, dt, CONV_WS_CAP, out);
    if (rc)
        return rc;
    if ((*out)->ws == 0) {
        *ws_out = NULL;
        return MLTK_OK;
    }
    mltk_log(MLTK_LOG_DEBUG, "cuda: %s: batch %lld runs in the backend's own %zu-byte "
             "workspace (no algorithm fits the call's %zu bytes)", op, (long long)d->N,
             (*out)->ws, ws ? ws_bytes : (size_t)0);
    return own_ws(c, (*out)->ws, ws_out, op);
}

/* set op's descriptor to the math type of the plan's algorithm (the size
 * queries of other plans' choices may have changed it) */
static int use_math(cuda_ctx *c, cuda_conv_plan *p, int op, const char *what)
{
    cudnnStatus_t st = cudnnSetConvolutionMathType(p->conv[op], p->math[op]);
    return st == CUDNN_STATUS_SUCCESS ? MLTK_OK : dnn_fail(c, what, st, &p->d, p->dt);
}

/* bytes per element of a conv dtype */
static size_t esize(mltk_dtype dt)
{
    return dt == MLTK_F32 ? 4 : 2;
}

/* The workspace run uses with the plan of chunk dc in dt: with a buffer
 * (ws not NULL) what the plan chosen within its ws_bytes needs, 0 when
 * none fits (run then uses the backend's own); without one (a size query)
 * what the plan chosen within CONV_WS_CAP needs.  A failure to plan
 * answers 0: run then fails the same way with its message. */
static size_t plan_ws(cuda_ctx *c, const mltk_conv2d_desc *dc, mltk_dtype dt, const void *ws,
                      size_t ws_bytes)
{
    cuda_conv_plan *p;
    size_t cap = !ws ? CONV_WS_CAP : ws_bytes < CONV_WS_CAP ? ws_bytes : CONV_WS_CAP;
    return plan_get(c, dc, dt, cap, &p) ? 0 : p->ws;
}

/* ---- mixed precision: widened inputs ---- */

/* the boundary each widened copy starts on (cudaMalloc's alignment) */
#define WIDE_ALIGN ((size_t)256)

/* n rounded up to WIDE_ALIGN; SIZE_MAX when that overflows */
static size_t wide_round(size_t n)
{
    return n > SIZE_MAX - (WIDE_ALIGN - 1) ? SIZE_MAX
                                           : (n + WIDE_ALIGN - 1) / WIDE_ALIGN * WIDE_ALIGN;
}

/* Whether the call computes in f32 on widened inputs: its inputs are bf16
 * or f16 and its first output (y, dx, dw) is f32.  cuDNN's convolution
 * API takes x, w and y (dy, w and dx; x, dy and dw) in one data type: its
 * supported configurations pair an f32 result only with f32 (or int8)
 * inputs.  So such a call widens its inputs to f32 (exactly) in the call's
 * workspace and runs the f32 convolution on them: the results are the f32
 * convolution of the inputs' values, as the cpu backend computes them.  A
 * bias or bias gradient in f32 beside a bf16 or f16 output needs no
 * widening: the epilogue and the bias sums read and write each tensor in
 * its own dtype. */
static int conv_widened(const mltk_op_call *call)
{
    return mltk_op_dtype(call) != MLTK_F32 && call->t[0].dtype == MLTK_F32;
}

/* the index of the op's first input: x, w (forward); dy, w
 * (backward-data); dy, x (backward-filter) */
static int conv_in(mltk_op op)
{
    return op == MLTK_OP_CONV2D_BACKWARD_FILTER ? 2 : 1;
}

/* The widened inputs' layout in the call's workspace: from the buffer's
 * first WIDE_ALIGN boundary, the f32 copy of the first input (n[0]
 * elements), at *off1 that of the second (n[1]), each on a boundary, and
 * at *rest the f32 convolution's own workspace.  Returns the bytes before
 * that workspace with the boundary's slack (WIDE_ALIGN), the same for any
 * buffer address, so that `workspace` needs no buffer to answer; SIZE_MAX
 * when that does not fit a size_t (no buffer serves it).  The core's
 * contract bounds N and each image's C H W, K P Q and the weight's
 * K C/groups R S by INT_MAX; the products and sums are checked all the
 * same. */
static size_t wide_layout(mltk_op op, const mltk_conv2d_desc *d, int64_t n[2], size_t *off1,
                          size_t *rest)
{
    int64_t x, y, w;
    size_t b0, b1;
    if (mltk_size_mul(&x, d->N, d->C) || mltk_size_mul(&x, x, d->H)
        || mltk_size_mul(&x, x, d->W) || mltk_size_mul(&y, d->N, d->K)
        || mltk_size_mul(&y, y, d->P) || mltk_size_mul(&y, y, d->Q)
        || mltk_size_mul(&w, d->K, d->C / d->groups) || mltk_size_mul(&w, w, d->R)
        || mltk_size_mul(&w, w, d->S))
        x = y = w = INT64_MAX;
    n[0] = op == MLTK_OP_CONV2D_FORWARD ? x : y;
    n[1] = op == MLTK_OP_CONV2D_BACKWARD_FILTER ? x : w;
    if (mltk_size_bytes(&b0, n[0], sizeof(float)) || mltk_size_bytes(&b1, n[1], sizeof(float)))
        b0 = b1 = SIZE_MAX;
    *off1 = wide_round(b0);
    b1 = wide_round(b1);
    *rest = *off1 > SIZE_MAX - b1 ? SIZE_MAX : *off1 + b1;
    return *rest > SIZE_MAX - WIDE_ALIGN ? SIZE_MAX : WIDE_ALIGN + *rest;
}

/* Widen the call's two inputs (in its dtype) into f32 copies in its
 * workspace (wide_layout): *in0 and *in1 then point at the copies, *ws and
 * *ws_bytes at what is left for the f32 convolution.  The core has checked
 * the buffer against `workspace`; a call that comes without that check and
 * too small a buffer is refused here. */
static int widen(cuda_ctx *c, const mltk_op_call *call, const char *op, const void **in0,
                 const void **in1, void **ws, size_t *ws_bytes)
{
    const mltk_conv2d_desc *d = &((const mltk_conv2d_params *)call->params)->d;
    const mltk_dtype dt = mltk_op_dtype(call);
    int64_t n[2];
    size_t off1, rest;
    const size_t pre = wide_layout(call->op, d, n, &off1, &rest);
    if (!call->ws || call->ws_bytes < pre)
        return cuda_failf(c, MLTK_ERR_INVALID, "%s: %s inputs with an f32 result are widened "
                          "to f32 in the workspace, which needs at least %zu bytes; the call "
                          "has %zu (mltk_op_conv2d_workspace)", op, mltk_dtype_name(dt), pre,
                          call->ws ? call->ws_bytes : (size_t)0);
    char *base = (char *)(((uintptr_t)call->ws + WIDE_ALIGN - 1) / WIDE_ALIGN * WIDE_ALIGN);
    CU_TRY(op, ck_cast(c->stream, base, MLTK_F32, *in0, dt, n[0]));
    CU_TRY(op, ck_cast(c->stream, base + off1, MLTK_F32, *in1, dt, n[1]));
    *in0 = base;
    *in1 = base + off1;
    *ws = base + rest;
    *ws_bytes = call->ws_bytes - pre;
    return MLTK_OK;
}

/* ---- convolution ops ---- */

/* What run will use of the call's workspace (see the top of the file), for
 * the first chunk's batch min(N, conv_chunk): the plan's workspace; for a
 * widened call (conv_widened) the inputs' f32 copies before it as well,
 * which a buffer too small for them does not get (the core refuses the
 * call).  A size query (no buffer) in bf16 or f16 answers the larger of
 * the cuDNN path's need and the widened path's, so that the workspace of
 * mltk_op_conv2d_workspace(), which asks with every tensor in the op's
 * dtype, serves the calls with f32 results too.  A failure to plan is
 * reported (logged: no call is running) and answers 0; run then fails the
 * same way with its message.  Widened copies beyond a size_t answer
 * SIZE_MAX: no buffer serves them (widen refuses the call). */
size_t cuda_conv2d_workspace(cuda_ctx *c, const mltk_op_call *call)
{
    const mltk_conv2d_desc *d = &((const mltk_conv2d_params *)call->params)->d;
    const mltk_dtype dt = mltk_op_dtype(call);
    if (d->N == 0 || cu_set_device(c))
        return 0;
    int64_t nb = conv_chunk(d);
    if (nb == 0)
        return 0;  /* the ops refuse d (conv_too_large) */
    mltk_conv2d_desc dc = *d;
    dc.N = d->N < nb ? d->N : nb;
    size_t own = 0;
    if (!conv_widened(call)) {
        own = plan_ws(c, &dc, dt, call->ws, call->ws_bytes);
        if (dt == MLTK_F32 || call->ws)
            return own;
    }
    int64_t n[2];
    size_t off1, rest;
    const size_t pre = wide_layout(call->op, d, n, &off1, &rest);
    size_t f32;
    if (pre == SIZE_MAX)  /* beyond a size_t: no buffer serves it */
        return SIZE_MAX;
    if (call->ws && call->ws_bytes >= pre)
        f32 = plan_ws(c, &dc, MLTK_F32, call->ws, call->ws_bytes - pre);
    else  /* no buffer, or one too small for the copies: the whole need */
        f32 = plan_ws(c, &dc, MLTK_F32, NULL, 0);
    if (f32 > SIZE_MAX - pre)
        return SIZE_MAX;
    return pre + f32 > own ? pre + f32 : own;
}

static const float ONE = 1.0f, ZERO = 0.0f;

/* y = conv(x, w), all three in dt (no epilogue) */
static int conv_forward(cuda_ctx *c, mltk_dtype dt, void *y, const void *x, const void *w,
                        const mltk_conv2d_desc *d, void *ws, size_t ws_bytes)
{
    const char *op = "conv2d_forward";
    if (d->N == 0)
        return MLTK_OK;
    const int64_t nb = conv_chunk(d);
    if (nb == 0)
        return conv_too_large(c, d, op);
    const size_t in = (size_t)(d->C * d->H * d->W) * esize(dt);
    const size_t out = (size_t)(d->K * d->P * d->Q) * esize(dt);
    for (int64_t n0 = 0; n0 < d->N; n0 += nb) {
        mltk_conv2d_desc dc = *d;
        dc.N = d->N - n0 < nb ? d->N - n0 : nb;
        cuda_conv_plan *p;
        void *wsp;
        int rc = conv_prepare(c, &dc, dt, ws, ws_bytes, &p, &wsp, op);
        if (!rc)
            rc = use_math(c, p, OP_FWD, "conv2d_forward: cudnnSetConvolutionMathType");
        if (rc)
            return rc;
        cudnnStatus_t st = cudnnConvolutionForward(
            c->dnn, &ONE, p->x, (const char *)x + (size_t)n0 * in, p->w, w, p->conv[OP_FWD],
            (cudnnConvolutionFwdAlgo_t)p->algo[OP_FWD], wsp, p->ws, &ZERO, p->y,
            (char *)y + (size_t)n0 * out);
        if (st != CUDNN_STATUS_SUCCESS)
            return dnn_fail(c, "conv2d_forward: cudnnConvolutionForward", st, &dc, dt);
    }
    return MLTK_OK;
}

/* dx = conv_transpose(dy, w), all three in dt */
static int conv_backward_data(cuda_ctx *c, mltk_dtype dt, void *dx, const void *dy,
                              const void *w, const mltk_conv2d_desc *d, void *ws,
                              size_t ws_bytes)
{
    const char *op = "conv2d_backward_data";
    if (d->N == 0)
        return MLTK_OK;
    const int64_t nb = conv_chunk(d);
    if (nb == 0)
        return conv_too_large(c, d, op);
    const size_t in = (size_t)(d->C * d->H * d->W) * esize(dt);
    const size_t out = (size_t)(d->K * d->P * d->Q) * esize(dt);
    for (int64_t n0 = 0; n0 < d->N; n0 += nb) {
        mltk_conv2d_desc dc = *d;
        dc.N = d->N - n0 < nb ? d->N - n0 : nb;
        cuda_conv_plan *p;
        void *wsp;
        int rc = conv_prepare(c, &dc, dt, ws, ws_bytes, &p, &wsp, op);
        if (!rc)
            rc = use_math(c, p, OP_BWD_DATA, "conv2d_backward_data: "
                          "cudnnSetConvolutionMathType");
        if (rc)
            return rc;
        cudnnStatus_t st = cudnnConvolutionBackwardData(
            c->dnn, &ONE, p->w, w, p->y, (const char *)dy + (size_t)n0 * out,
            p->conv[OP_BWD_DATA], (cudnnConvolutionBwdDataAlgo_t)p->algo[OP_BWD_DATA], wsp,
            p->ws, &ZERO, p->x, (char *)dx + (size_t)n0 * in);
        if (st != CUDNN_STATUS_SUCCESS)
            return dnn_fail(c, "conv2d_backward_data: cudnnConvolutionBackwardData", st, &dc,
                            dt);
    }
    return MLTK_OK;
}

/* dw = the correlation of x with dy, all three in dt (no bias gradient) */
static int conv_backward_filter(cuda_ctx *c, mltk_dtype dt, void *dw, const void *dy,
                                const void *x, const mltk_conv2d_desc *d, void *ws,
                                size_t ws_bytes)
{
    const char *op = "conv2d_backward_filter";
    const size_t wbytes = (size_t)(d->K * (d->C / d->groups) * d->R * d->S) * esize(dt);
    if (d->N == 0) {
        /* no images: the gradient is zero */
        CU_TRY(op, cudaMemsetAsync(dw, 0, wbytes, c->stream));
        return MLTK_OK;
    }
    const int64_t nb = conv_chunk(d);
    if (nb == 0)
        return conv_too_large(c, d, op);
    const size_t in = (size_t)(d->C * d->H * d->W) * esize(dt);
    const size_t out = (size_t)(d->K * d->P * d->Q) * esize(dt);
    for (int64_t n0 = 0; n0 < d->N; n0 += nb) {
        mltk_conv2d_desc dc = *d;
        dc.N = d->N - n0 < nb ? d->N - n0 : nb;
        cuda_conv_plan *p;
        void *wsp;
        int rc = conv_prepare(c, &dc, dt, ws, ws_bytes, &p, &wsp, op);
        if (!rc)
            rc = use_math(c, p, OP_BWD_FILTER, "conv2d_backward_filter: "
                          "cudnnSetConvolutionMathType");
        if (rc)
            return rc;
        /* the first chunk overwrites dw, the others add to it */
        cudnnStatus_t st = cudnnConvolutionBackwardFilter(
            c->dnn, &ONE, p->x, (const char *)x + (size_t)n0 * in, p->y,
            (const char *)dy + (size_t)n0 * out, p->conv[OP_BWD_FILTER],
            (cudnnConvolutionBwdFilterAlgo_t)p->algo[OP_BWD_FILTER], wsp, p->ws,
            n0 == 0 ? &ZERO : &ONE, p->w, dw);
        if (st != CUDNN_STATUS_SUCCESS)
            return dnn_fail(c, "conv2d_backward_filter: cudnnConvolutionBackwardFilter", st,
                            &dc, dt);
    }
    return MLTK_OK;
}

/* db (K) in bdt = the sum of dy (N, K, P, Q) in dt over n, p, q:
 * per-channel partials in double (own kernels, 64-bit indices: the whole
 * batch at once), the total rounded once into bdt */
static int conv_bias_grad(cuda_ctx *c, mltk_dtype dt, mltk_dtype bdt, void *db,
                          const void *dy, const mltk_conv2d_desc *d)
{
    const char *op = "conv2d_backward_filter: bias gradient";
    if (d->N == 0) {
        CU_TRY(op, cudaMemsetAsync(db, 0, (size_t)d->K * esize(bdt), c->stream));
        return MLTK_OK;
    }
    const int64_t L = d->P * d->Q, chunks = ck_chan_chunks(d->N, L);
    void *part;
    int rc = cuda_scratch(c, (size_t)(chunks * d->K * 2) * sizeof(double), &part, op);
    if (rc)
        return rc;
    if (dt == MLTK_F32)
        CU_TRY(op, ck_chan_sums(c->stream, CK_CHAN_SUM, part, dy, NULL, NULL, d->N, d->K, L));
    else
        CU_TRY(op, ck_chan_sums_dt(c->stream, dt, part, dy, d->N, d->K, L));
    CU_TRY(op, ck_chan_total(c->stream, bdt, db, part, chunks, d->K));
    return MLTK_OK;
}

/* Run conv op `call`: cuDNN in the inputs' dtype when the first output
 * has it too, else on f32 copies of the inputs (conv_widened); the forward
 * epilogue (bias and activation) and the bias gradient read and write the
 * bias, y, db and dy each in its own dtype. */
int cuda_conv2d(cuda_ctx *c, const mltk_op_call *call)
{
    const mltk_conv2d_params *p = call->params;
    const mltk_conv2d_desc *d = &p->d;
    const mltk_op o = call->op;
    const char *op = o == MLTK_OP_CONV2D_FORWARD ? "conv2d_forward"
        : o == MLTK_OP_CONV2D_BACKWARD_DATA ? "conv2d_backward_data" : "conv2d_backward_filter";
    const mltk_dtype dt = mltk_op_dtype(call);  /* of the inputs */
    mltk_dtype cdt = dt;                          /* that cuDNN computes in */
    const int i0 = conv_in(o);
    const void *in0 = call->t[i0].data, *in1 = call->t[i0 + 1].data;
    void *out = call->t[0].data;
    void *ws = call->ws;
    size_t ws_bytes = call->ws ? call->ws_bytes : 0;
    int rc;
    if (d->N > 0 && conv_chunk(d) == 0)
        return conv_too_large(c, d, op);
    if (conv_widened(call)) {
        cdt = MLTK_F32;
        if (d->N > 0) {
            rc = widen(c, call, op, &in0, &in1, &ws, &ws_bytes);
            if (rc)
                return rc;
        }
    }
    if (o == MLTK_OP_CONV2D_FORWARD) {
        const mltk_tensor *b = &call->t[3];
        rc = conv_forward(c, cdt, out, in0, in1, d, ws, ws_bytes);
        if (rc || d->N == 0 || (!b->data && p->act == MLTK_ACT_NONE))
            return rc;
        CU_TRY("conv2d_forward: bias and activation",
               ck_chan_bias_act(c->stream, cdt, out, b->dtype, b->data, d->N, d->K,
                                d->P * d->Q, p->act, p->act_alpha));
        return MLTK_OK;
    }
    if (o == MLTK_OP_CONV2D_BACKWARD_DATA)
        return conv_backward_data(c, cdt, out, in0, in1, d, ws, ws_bytes);
    rc = conv_backward_filter(c, cdt, out, in0, in1, d, ws, ws_bytes);
    if (rc || !call->t[1].data)
        return rc;
    /* from dy as given (its own dtype), not its widened copy: the sums are
     * in double either way */
    return conv_bias_grad(c, dt, call->t[1].dtype, call->t[1].data, call->t[2].data, d);
}

/* ---- pooling ---- */

int cuda_pool2d_forward(cuda_ctx *c, mltk_pool kind, float *y, const float *x,
                        const mltk_pool2d_desc *d)
{
    if (d->N == 0)
        return MLTK_OK;
    CU_TRY("pool2d_forward", ck_pool_forward(c->stream, kind, y, x, d));
    return MLTK_OK;
}

/* max pooling recomputes each window's first maximum from x; y is not
 * needed */
int cuda_pool2d_backward(cuda_ctx *c, mltk_pool kind, float *dx, const float *dy,
                         const float *x, const mltk_pool2d_desc *d)
{
    if (d->N == 0)
        return MLTK_OK;
    CU_TRY("pool2d_backward", ck_pool_backward(c->stream, kind, dx, dy, x, d));
    return MLTK_OK;
}
