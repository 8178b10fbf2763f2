/* cuda_conv.c - 2-d convolution (cuDNN) and pooling (own kernels) of the
 * cuda backend (ABI 1.1).
 *
 * What this is: conv2d forward, backward-data and backward-filter through
 * cuDNN's convolution API, with the bias and activation applied by our
 * own per-channel epilogue and the bias gradient summed by our own
 * deterministic per-channel reduction; max/average pooling by the kernels
 * of cuda_nn_kernels.cu, which follow the cpu backend's window rules exactly.
 *
 * Plans: for each convolution geometry the context keeps a plan (cuDNN
 * descriptors and one algorithm per op), chosen from cuDNN's heuristics
 * among the deterministic algorithms of the wanted math (FMA, i.e. true
 * fp32, unless TF32 is on) whose workspace stays under CONV_WS_CAP.
 * conv2d_workspace reports the most the three chosen algorithms need at
 * the plan's batch size; a layer sizes its buffer for its largest batch
 * and may run smaller ones, so an op with N images uses the plan of the
 * same geometry with the smallest batch >= N, checks that its algorithms
 * need no more workspace at N than that plan reported, and otherwise
 * falls back to an algorithm that fits.  Choosing never runs anything
 * (no cudnnFind), so plans are the same from run to run.
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
/* plans kept per context; the oldest goes first */
#define CONV_MAX_PLANS 64

enum { OP_FWD = 0, OP_BWD_DATA = 1, OP_BWD_FILTER = 2 };

struct cuda_conv_plan {
    cuda_conv_plan *next;
    mltk_conv2d_desc d;                  /* geometry, d.N the plan's batch */
    cudnnTensorDescriptor_t x, y;        /* at d.N */
    cudnnTensorDescriptor_t xr, yr;      /* at run_n */
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv[3];  /* per op: each has its math type */
    int algo[3];                         /* chosen at d.N */
    cudnnMathType_t math[3];             /* and their math types */
    size_t ws;                           /* what conv2d_workspace reported */
    int64_t run_n;                       /* batch of xr/yr and run_algo, 0: none */
    int run_algo[3];
    cudnnMathType_t run_math[3];
};

static int same_geometry(const mltk_conv2d_desc *a, const mltk_conv2d_desc *b)
{
    return a->C == b->C && a->H == b->H && a->W == b->W && a->K == b->K && a->R == b->R
        && a->S == b->S && a->P == b->P && a->Q == b->Q && a->stride_h == b->stride_h
        && a->stride_w == b->stride_w && a->pad_h == b->pad_h && a->pad_w == b->pad_w
        && a->dil_h == b->dil_h && a->dil_w == b->dil_w && a->groups == b->groups;
}

/* The descriptor is consistent (as the cpu backend checks it) and its
 * sizes fit cuDNN's int dimensions and strides. */
static int desc_valid(const mltk_conv2d_desc *d)
{
    if (!d || d->N < 0 || d->C < 1 || d->H < 1 || d->W < 1 || d->K < 1
        || d->R < 1 || d->S < 1 || d->stride_h < 1 || d->stride_w < 1
        || d->pad_h < 0 || d->pad_w < 0 || d->dil_h < 1 || d->dil_w < 1
        || d->groups < 1 || d->C % d->groups || d->K % d->groups)
        return 0;
    int64_t eh = d->H + 2 * d->pad_h - d->dil_h * (d->R - 1) - 1;
    int64_t ew = d->W + 2 * d->pad_w - d->dil_w * (d->S - 1) - 1;
    if (eh < 0 || ew < 0 || d->P != eh / d->stride_h + 1 || d->Q != ew / d->stride_w + 1)
        return 0;
    const int64_t lim = INT_MAX;
    if (d->C > lim || d->H > lim || d->W > lim || d->K > lim || d->R > lim || d->S > lim
        || d->stride_h > lim || d->stride_w > lim || d->pad_h > lim || d->pad_w > lim
        || d->dil_h > lim || d->dil_w > lim || d->groups > lim)
        return 0;
    if (d->C * d->H * d->W > lim || d->K * d->P * d->Q > lim || d->N > lim
        || (d->N > 0 && (d->N * d->C * d->H * d->W > lim || d->N * d->K * d->P * d->Q > lim)))
        return 0;
    return 1;
}

static void plan_free(cuda_conv_plan *p)
{
    if (!p)
        return;
    if (p->x) cudnnDestroyTensorDescriptor(p->x);
    if (p->y) cudnnDestroyTensorDescriptor(p->y);
    if (p->xr) cudnnDestroyTensorDescriptor(p->xr);
    if (p->yr) cudnnDestroyTensorDescriptor(p->yr);
    if (p->w) cudnnDestroyFilterDescriptor(p->w);
    for (int i = 0; i < 3; i++)
        if (p->conv[i])
            cudnnDestroyConvolutionDescriptor(p->conv[i]);
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
        return MLTK_ERR_UNSUPPORTED;  /* re-planning: the caller keeps the old one */
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

static int set_tensors(cuda_conv_plan *p, cudnnTensorDescriptor_t x,
                       cudnnTensorDescriptor_t y, int64_t N)
{
    const mltk_conv2d_desc *d = &p->d;
    cudnnStatus_t st = cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                                  (int)N, (int)d->C, (int)d->H, (int)d->W);
    if (st == CUDNN_STATUS_SUCCESS)
        st = cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)N,
                                        (int)d->K, (int)d->P, (int)d->Q);
    return st == CUDNN_STATUS_SUCCESS ? MLTK_OK : cuda_fail_dnn("conv2d: tensor descriptors", st);
}

/* A new plan for d (d->N > 0), pushed to the front of the list. */
static int plan_create(cuda_ctx *c, const mltk_conv2d_desc *d, cuda_conv_plan **out)
{
    int rc = MLTK_OK;
    cuda_conv_plan *p = calloc(1, sizeof *p);
    if (!p)
        return MLTK_ERR_NOMEM;
    p->d = *d;
    DNN_GO("conv2d: descriptors", cudnnCreateTensorDescriptor(&p->x));
    DNN_GO("conv2d: descriptors", cudnnCreateTensorDescriptor(&p->y));
    DNN_GO("conv2d: descriptors", cudnnCreateTensorDescriptor(&p->xr));
    DNN_GO("conv2d: descriptors", cudnnCreateTensorDescriptor(&p->yr));
    DNN_GO("conv2d: descriptors", cudnnCreateFilterDescriptor(&p->w));
    rc = set_tensors(p, p->x, p->y, d->N);
    if (rc)
        goto fail;
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
        DNN_GO("conv2d: math type",
               cudnnSetConvolutionMathType(p->conv[i], query_math(c)));
    }
    for (int op = 0; op < 3; op++) {
        size_t ws = 0;
        rc = choose_algo(c, p, op, CONV_WS_CAP, &p->algo[op], &p->math[op], &ws);
        if (rc)
            goto fail;
        p->ws = ws > p->ws ? ws : p->ws;
    }
    /* keep at most CONV_MAX_PLANS: drop the oldest */
    if (c->n_plans >= CONV_MAX_PLANS) {
        cuda_conv_plan **pp = &c->plans;
        while (*pp && (*pp)->next)
            pp = &(*pp)->next;
        plan_free(*pp);
        *pp = NULL;
        c->n_plans--;
    }
    p->next = c->plans;
    c->plans = p;
    c->n_plans++;
    *out = p;
    return MLTK_OK;
fail:
    plan_free(p);
    return rc;
}

/* After the math policy changed (TF32 on or off): choose each plan's
 * algorithms again, under the new math (choose_algo sets the descriptor's
 * math type before querying), within the workspace it already reported,
 * so buffers sized from it stay large enough; an op with no such choice
 * keeps its algorithm. */
void cuda_conv_plans_rechoose(cuda_ctx *c)
{
    for (cuda_conv_plan *p = c->plans; p; p = p->next) {
        for (int op = 0; op < 3; op++) {
            int algo;
            cudnnMathType_t m;
            size_t ws;
            if (choose_algo(c, p, op, p->ws, &algo, &m, &ws) == MLTK_OK) {
                p->algo[op] = algo;
                p->math[op] = m;
            }
        }
        p->run_n = 0;
    }
}

/* the plan made for exactly d (workspace sizing) */
static int plan_exact(cuda_ctx *c, const mltk_conv2d_desc *d, cuda_conv_plan **out)
{
    for (cuda_conv_plan *p = c->plans; p; p = p->next)
        if (p->d.N == d->N && same_geometry(&p->d, d)) {
            *out = p;
            return MLTK_OK;
        }
    return plan_create(c, d, out);
}

/* The plan an op with d->N images runs with: the same geometry with the
 * smallest batch >= d->N (the buffer the caller sized for it is at least
 * that plan's workspace), or a new one for d.  Then the run descriptors
 * and algorithms for d->N: the plan's, unless one needs more workspace
 * at d->N than the plan reported. */
static int plan_for_run(cuda_ctx *c, const mltk_conv2d_desc *d, cuda_conv_plan **out)
{
    cuda_conv_plan *best = NULL;
    for (cuda_conv_plan *p = c->plans; p; p = p->next)
        if (p->d.N >= d->N && same_geometry(&p->d, d) && (!best || p->d.N < best->d.N))
            best = p;
    int rc = best ? MLTK_OK : plan_create(c, d, &best);
    if (rc)
        return rc;
    if (best->run_n != d->N) {
        rc = set_tensors(best, best->xr, best->yr, d->N);
        if (rc)
            return rc;
        for (int op = 0; op < 3; op++) {
            int algo = best->algo[op];
            cudnnMathType_t m = best->math[op];
            size_t sz = algo_ws(c, best, op, algo, m, best->xr, best->yr);
            if (sz > best->ws && !fallback_fit(c, best, op, best->xr, best->yr, best->ws,
                                               &algo, &m, &sz)) {
                best->run_n = 0;
                mltk_log(MLTK_LOG_ERROR, "cuda: conv2d: no algorithm fits the %zu-byte "
                         "workspace at batch %lld", best->ws, (long long)d->N);
                return MLTK_ERR_BACKEND;
            }
            best->run_algo[op] = algo;
            best->run_math[op] = m;
        }
        best->run_n = d->N;
    }
    *out = best;
    return MLTK_OK;
}

/* set op's descriptor to the math type of its run algorithm */
static int use_math(cuda_conv_plan *p, int op, const char *what)
{
    DNN_TRY(what, cudnnSetConvolutionMathType(p->conv[op], p->run_math[op]));
    return MLTK_OK;
}

/* ---- convolution ops ---- */

static int act_ok(mltk_act act)
{
    return act == MLTK_ACT_NONE || act == MLTK_ACT_RELU || act == MLTK_ACT_LEAKY_RELU
        || act == MLTK_ACT_SIGMOID || act == MLTK_ACT_TANH;
}

size_t cuda_conv2d_workspace(void *ctx, const mltk_conv2d_desc *d)
{
    cuda_ctx *c = ctx;
    if (!c || !desc_valid(d) || d->N == 0 || cu_set_device(c))
        return 0;
    cuda_conv_plan *p;
    if (plan_exact(c, d, &p))
        return 0;
    return p->ws;
}

static const float ONE = 1.0f, ZERO = 0.0f;

int cuda_conv2d_forward(void *ctx, float *y, const float *x, const float *w, const float *b,
                        const mltk_conv2d_desc *d, mltk_act act, float alpha, void *ws)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c);
    if (!desc_valid(d) || !act_ok(act))
        return MLTK_ERR_INVALID;
    if (d->N == 0)
        return MLTK_OK;
    if (!y || !x || !w)
        return MLTK_ERR_INVALID;
    cuda_conv_plan *p;
    int rc = plan_for_run(c, d, &p);
    if (rc)
        return rc;
    if (p->ws > 0 && !ws)
        return MLTK_ERR_INVALID;
    rc = use_math(p, OP_FWD, "conv2d_forward: math type");
    if (rc)
        return rc;
    DNN_TRY("conv2d_forward: cudnnConvolutionForward",
            cudnnConvolutionForward(c->dnn, &ONE, p->xr, x, p->w, w, p->conv[OP_FWD],
                                    (cudnnConvolutionFwdAlgo_t)p->run_algo[OP_FWD], ws,
                                    p->ws, &ZERO, p->yr, y));
    if (b || act != MLTK_ACT_NONE)
        CU_TRY("conv2d_forward: bias and activation",
               ck_chan_bias_act(c->stream, y, b, d->N, d->K, d->P * d->Q, act, alpha));
    return MLTK_OK;
}

int cuda_conv2d_backward_data(void *ctx, float *dx, const float *dy, const float *w,
                              const mltk_conv2d_desc *d, void *ws)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c);
    if (!desc_valid(d))
        return MLTK_ERR_INVALID;
    if (d->N == 0)
        return MLTK_OK;
    if (!dx || !dy || !w)
        return MLTK_ERR_INVALID;
    cuda_conv_plan *p;
    int rc = plan_for_run(c, d, &p);
    if (rc)
        return rc;
    if (p->ws > 0 && !ws)
        return MLTK_ERR_INVALID;
    rc = use_math(p, OP_BWD_DATA, "conv2d_backward_data: math type");
    if (rc)
        return rc;
    DNN_TRY("conv2d_backward_data: cudnnConvolutionBackwardData",
            cudnnConvolutionBackwardData(c->dnn, &ONE, p->w, w, p->yr, dy, p->conv[OP_BWD_DATA],
                                         (cudnnConvolutionBwdDataAlgo_t)p->run_algo[OP_BWD_DATA],
                                         ws, p->ws, &ZERO, p->xr, dx));
    return MLTK_OK;
}

int cuda_conv2d_backward_filter(void *ctx, float *dw, float *db, const float *dy,
                                const float *x, const mltk_conv2d_desc *d, void *ws)
{
    cuda_ctx *c = ctx;
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
    cuda_conv_plan *p;
    int rc = plan_for_run(c, d, &p);
    if (rc)
        return rc;
    if (p->ws > 0 && !ws)
        return MLTK_ERR_INVALID;
    rc = use_math(p, OP_BWD_FILTER, "conv2d_backward_filter: math type");
    if (rc)
        return rc;
    DNN_TRY("conv2d_backward_filter: cudnnConvolutionBackwardFilter",
            cudnnConvolutionBackwardFilter(c->dnn, &ONE, p->xr, x, p->yr, dy,
                                           p->conv[OP_BWD_FILTER],
                                           (cudnnConvolutionBwdFilterAlgo_t)
                                               p->run_algo[OP_BWD_FILTER],
                                           ws, p->ws, &ZERO, p->w, dw));
    if (db) {
        /* db[k] = sum of dy over (n, p, q), per-channel partials in double */
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
