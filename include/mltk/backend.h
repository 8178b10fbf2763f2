/* backend.h - the compute contract (plugin ABI 2): typed tensors, one op
 * table, and the backend vtable that runs it.
 *
 * What this is: the ops that layers, losses, optimizers and the core are
 * written in, so that a plugin runs on every backend (cpu, cuda, ...)
 * unchanged.  An op is an id (`mltk_op`, append-only), a list of typed
 * tensors (outputs first, then inputs) and a small params struct.  Callers
 * use the typed wrappers below (`mltk_op_gemm(be, C, A, B, ...)`); every
 * wrapper goes through mltk_op_run(), which checks the op's contract
 * (tensor count, dtypes, shapes, layouts, parameters) once, in the core,
 * and asks the backend whether it supports the op in that dtype, before
 * the backend's `run` sees the call.  A backend implements computation
 * only: it may assume every call it receives passed those checks.
 *
 * Tensors are views (mltk.h): `data` is backend memory from `alloc` (host
 * memory on cpu, device memory on cuda) unless the comment says "host".
 * A tensor whose strides are all 0 is contiguous row-major; ops accept
 * other strides only where their comment says so.  Ops may run
 * asynchronously; `sync` waits for them; `download` is synchronous (a
 * host synchronisation: the training step makes none, see mltk(1)).
 * Every op returns MLTK_OK or a negative status; a failure leaves its
 * reason in mltk_backend_error(be).
 *
 * What this is not: a tensor library with broadcasting rules.  Each op has
 * a fixed shape contract stated beside its id.  Ops are only ever appended
 * (with the ABI minor that added them); params structs likewise only grow
 * at their end.
 */
#ifndef MLTK_BACKEND_H
#define MLTK_BACKEND_H

#include <mltk/mltk.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- shared enums and descriptors ------------------------------------------ */

/* activation functions usable in fused epilogues and act_* ops */
typedef enum mltk_act {
    MLTK_ACT_NONE = 0,
    MLTK_ACT_RELU = 1,
    MLTK_ACT_LEAKY_RELU = 2,  /* alpha = negative slope */
    MLTK_ACT_SIGMOID = 3,
    MLTK_ACT_TANH = 4,
    MLTK_ACT_ELU = 5,         /* alpha: x < 0 -> alpha * (exp(x) - 1) */
    MLTK_ACT_GELU_TANH = 6,   /* 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))) */
    MLTK_ACT_GELU = 7         /* exact: 0.5 x (1 + erf(x / sqrt(2))) */
} mltk_act;

/* A 2-d convolution, NCHW tensors, as PyTorch's nn.Conv2d computes it
 * (cross-correlation).  x (N,C,H,W), w (K, C/groups, R, S), b (K),
 * y (N,K,P,Q) with P = (H + 2 pad_h - dil_h (R-1) - 1) / stride_h + 1 and
 * Q likewise.  The core checks that the sizes agree with the tensors'. */
typedef struct mltk_conv2d_desc {
    int64_t N, C, H, W;      /* input */
    int64_t K, R, S;         /* output channels, kernel height, width */
    int64_t P, Q;            /* output height, width */
    int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
    int64_t groups;          /* C and K divisible by groups */
} mltk_conv2d_desc;

typedef enum mltk_pool {
    MLTK_POOL_MAX = 0,
    MLTK_POOL_AVG = 1        /* padding counts in the divisor (PyTorch's
                              * count_include_pad = True) */
} mltk_pool;

/* 2-d pooling, NCHW: x (N,C,H,W) -> y (N,C,P,Q); kernel R x S. */
typedef struct mltk_pool2d_desc {
    int64_t N, C, H, W;
    int64_t R, S, P, Q;
    int64_t stride_h, stride_w, pad_h, pad_w;
} mltk_pool2d_desc;

/* pointwise losses (MLTK_OP_POINTWISE_LOSS) */
typedef enum mltk_pointwise {
    MLTK_LOSS_MSE = 0,       /* (x - t)^2 */
    MLTK_LOSS_L1 = 1,        /* |x - t| */
    MLTK_LOSS_BCE_LOGITS = 2 /* binary cross-entropy with logits */
} mltk_pointwise;

/* ---- the op table ------------------------------------------------------------- */

/* Tensors are listed in call order: outputs (written) first, then inputs.
 * "opt" marks a tensor that may be absent (data == NULL).  Unless stated,
 * every tensor is contiguous, floating tensors share the op's dtype (its
 * first input's, or its first output's when it has no input; see
 * mltk_op_dtype()), and f32 is the dtype every backend supports.
 * "scalar" is a 1-element f32 tensor in backend memory.  n = numel. */
typedef enum mltk_op {
    MLTK_OP_NONE = 0,
    /* ---- elementwise ---- */
    MLTK_OP_FILL = 1,          /* y = value.  [y]  mltk_fill_params */
    MLTK_OP_AXPBY = 2,         /* y = a x + b y; b == 0: y not read.  [y | x], same n */
    MLTK_OP_MUL = 3,           /* z = x * y.  [z | x, y], same n */
    MLTK_OP_ACT_FORWARD = 4,   /* y = act(x); y == x allowed.  [y | x] */
    MLTK_OP_ACT_BACKWARD = 5,  /* dx = dy act'(.), from x (the input) or y
                                * (the output): relu, sigmoid and tanh use
                                * y (x when y is absent); leaky_relu uses x
                                * (y when x is absent); elu uses y when
                                * given and alpha >= 0 (y + alpha = alpha
                                * e^x), else x; gelu needs x.  So a layer
                                * run in place (x and y one buffer) is
                                * right for relu, sigmoid, tanh, leaky_relu
                                * with slope >= 0 and elu with alpha >= 0.
                                * dx == dy allowed.  [dx | dy, x opt, y opt] */
    MLTK_OP_CAST = 6,          /* y = x converted to y's dtype (f32, bf16,
                                * f16; round to nearest even).  [y | x] */
    MLTK_OP_CLAMP = 7,         /* x = min(max(x, lo), hi).  [x]  mltk_clamp_params */
    /* ---- linear algebra ---- */
    MLTK_OP_GEMM = 8,          /* C = act(alpha op(A) op(B) + beta C + bias).
                                * [C | A, B, bias opt]; A (M,K) or (K,M)
                                * when ta, B (K,N) or (N,K) when tb, C (M,N),
                                * bias (N).  Rows may be strided (the
                                * innermost stride must be 1; stride[0] is
                                * the leading dimension).  A 3-d A, B, C is
                                * a batch of products (stride[0] of A or B
                                * may be 0 to reuse one matrix).  dtypes:
                                * A and B alike (the op's dtype); C f32 or
                                * the op's dtype; bias f32.  Accumulation is
                                * in f32 at least.  mltk_gemm_params */
    MLTK_OP_BIAS_ACT = 9,      /* y(rows,cols) = act(y + b).  [y | b opt (cols)] */
    MLTK_OP_SUM_ROWS = 10,     /* out(cols) = sum over rows of x(rows,cols)
                                * + beta out.  [out | x]  mltk_sum_rows_params */
    /* ---- reductions ---- */
    MLTK_OP_SUM = 11,          /* out = sum of x.  [out scalar | x] */
    MLTK_OP_SUMSQ = 12,        /* out = sum of x^2.  [out scalar | x] */
    MLTK_OP_SCALE_TO_NORM = 13,/* x *= min(1, max_norm / (sqrt(sumsq) + 1e-6)).
                                * [x | sumsq scalar]  mltk_norm_params */
    MLTK_OP_NONFINITE = 14,    /* flag = max(flag, 1 if any x is NaN or Inf
                                * else 0).  [flag scalar | x] */
    /* ---- losses and metrics ---- */
    MLTK_OP_SOFTMAX_XENT = 15, /* cross-entropy of logits (N,C) against
                                * labels (N) i32 in [0,C), or (ABI 2.1)
                                * against probabilities t (N,C) f32 (soft
                                * targets: mixup, cutmix), with PyTorch's
                                * label_smoothing and class weights (C);
                                * loss = batch mean (labels weighted: divided
                                * by the sum of the targets' weights;
                                * probabilities: by N, the row loss -sum_c
                                * w[c] t'[c] log softmax[c] with t' = (1 - ls)
                                * t + ls/C); dlogits = grad_scale * d loss /
                                * d logits.  [loss scalar, dlogits opt |
                                * logits, labels, weights opt]
                                * mltk_xent_params */
    MLTK_OP_COUNT_CORRECT = 16,/* correct = rows whose argmax (first maximum)
                                * equals the label, as a float.
                                * [correct scalar | logits (N,C), labels (N) i32] */
    MLTK_OP_POINTWISE_LOSS = 17,/* mean over n of a pointwise loss of pred
                                * against target.  [loss scalar, dpred opt |
                                * pred, target]  mltk_pointwise_params */
    MLTK_OP_KL_DIV_LOGITS = 18,/* distillation: T^2 KL(softmax(teacher/T) ||
                                * softmax(student/T)), batch mean over (N,C).
                                * [loss scalar, dstudent opt | student,
                                * teacher]  mltk_kl_params */
    /* ---- data movement ---- */
    MLTK_OP_GATHER_ROWS = 19,  /* dst row i = src row idx[i]; rows are
                                * everything after dim 0; any dtype (dst and
                                * src alike).  [dst (n,...) | src (M,...),
                                * idx (n) i32] */
    MLTK_OP_GATHER_AUGMENT_2D = 20, /* the batch gather of images fused with
                                * torchvision's RandomCrop(padding = pad) and
                                * RandomHorizontalFlip: y[i][c][h][w] =
                                * x[idx[i]][c][h + sh][w' + sw], w' = f ?
                                * W-1-w : w, zero outside, with sh =
                                * floor(u0 (2 pad + 1)) - pad (in double), sw
                                * likewise from u1, f = flip && u2 < 0.5,
                                * u0..u2 = mltk_rng_u01(seed, offset + 4 i +
                                * 0..2) (rng.h).  [y (n,C,H,W) | x (M,C,H,W),
                                * idx (n) i32]  mltk_augment_params */
    MLTK_OP_COPY_2D = 21,      /* dst(rows,cols) = src (+ dst when
                                * accumulate); both may have any row stride
                                * (innermost stride 1): concat and split
                                * along any axis.  [dst | src]  mltk_copy_params */
    MLTK_OP_EMBEDDING_FORWARD = 22, /* y (n,dim) = table[ids[i]]; ids f32-coded
                                * integers in [0,vocab).  [y | table (vocab,dim),
                                * ids (n) f32] */
    MLTK_OP_EMBEDDING_BACKWARD = 23, /* dtable = scatter-add of dy rows by id
                                * (overwritten).  [dtable (vocab,dim) | dy (n,dim),
                                * ids (n) f32] */
    /* ---- random numbers (counter-based, mltk/rng.h) ---- */
    MLTK_OP_RNG_UNIFORM = 24,  /* x[i] = lo + (hi-lo) u(seed, offset+i).  [x]  mltk_rng_params */
    MLTK_OP_RNG_NORMAL = 25,   /* x[i] = mean + std z(seed, offset+i).  [x]  mltk_rng_params */
    MLTK_OP_DROPOUT_FORWARD = 26, /* mask[i] = u(seed, offset+i) >= p ? 1/(1-p)
                                * : 0; y = x mask.  [y, mask | x]  mltk_dropout_params */
    /* ---- convolution and pooling (NCHW) ---- */
    MLTK_OP_CONV2D_FORWARD = 27,   /* y = act(conv(x, w) + b), act one of none,
                                    * relu, leaky_relu, sigmoid, tanh.
                                    * [y | x, w, b opt]  mltk_conv2d_params;
                                    * workspace.  dtypes (all three conv
                                    * ops): the inputs (x, w; dy, w; dy, x)
                                    * alike (the op's dtype); each output
                                    * and the bias f32 or the op's dtype
                                    * (bf16 inputs, f32 results: mixed
                                    * precision).  Accumulation is in f32
                                    * at least. */
    MLTK_OP_CONV2D_BACKWARD_DATA = 28, /* dx = conv_transpose(dy, w).
                                    * [dx | dy, w]  mltk_conv2d_params; workspace */
    MLTK_OP_CONV2D_BACKWARD_FILTER = 29, /* dw = correlation of x with dy; db =
                                    * sum of dy over N,P,Q.  [dw, db opt | dy, x]
                                    * mltk_conv2d_params; workspace */
    MLTK_OP_POOL2D_FORWARD = 30,   /* [y | x]  mltk_pool2d_params */
    MLTK_OP_POOL2D_BACKWARD = 31,  /* dx from dy; max pooling routes each
                                    * gradient to the first maximum of its
                                    * window.  [dx | dy, x, y]  mltk_pool2d_params */
    /* ---- normalisation ---- */
    MLTK_OP_BATCHNORM_FORWARD_TRAIN = 32, /* x (N,C,L) per channel: batch mean
                                    * and biased variance normalise; save_mean,
                                    * save_invstd (C) = mean, 1/sqrt(var+eps);
                                    * running stats updated as PyTorch does
                                    * (unbiased var, momentum) when present.
                                    * [y, save_mean, save_invstd, running_mean
                                    * opt, running_var opt | x, gamma opt, beta
                                    * opt]  mltk_bn_params */
    MLTK_OP_BATCHNORM_FORWARD_EVAL = 33, /* [y | x, gamma opt, beta opt,
                                    * running_mean, running_var]  mltk_bn_params */
    MLTK_OP_BATCHNORM_BACKWARD = 34, /* training-mode backward.  [dx opt,
                                    * dgamma opt, dbeta opt | dy, x, gamma opt,
                                    * save_mean, save_invstd] */
    MLTK_OP_LAYERNORM_FORWARD = 35, /* over the last dim of x (rows,cols);
                                    * mean, rstd (rows) saved.  [y, mean, rstd |
                                    * x, gamma opt (cols), beta opt]  mltk_ln_params */
    MLTK_OP_LAYERNORM_BACKWARD = 36, /* [dx opt, dgamma opt, dbeta opt | dy, x,
                                    * gamma opt, mean, rstd] */
    MLTK_OP_SOFTMAX_FORWARD = 37,  /* over the last dim of x (rows,cols).  [y | x] */
    MLTK_OP_SOFTMAX_BACKWARD = 38, /* dx = y (dy - sum(dy y)) per row.  [dx | dy, y] */
    /* ---- optimizer updates over flat f32 buffers (n elements each) ---- */
    /* lr_scale multiplies the rate per element (lr_mult; 0 freezes: such a
     * parameter is left bit-identical, weight decay included). */
    MLTK_OP_SGD_STEP = 39,     /* torch.optim.SGD.  [p, mom opt | g, lr_scale opt]
                                * mltk_sgd_params */
    MLTK_OP_ADAM_STEP = 40,    /* torch.optim.Adam / AdamW.  [p, m, v | g,
                                * lr_scale opt]  mltk_adam_params */
    MLTK_OP_RMSPROP_STEP = 41, /* torch.optim.RMSprop.  [p, sq, mom opt, gavg
                                * opt | g, lr_scale opt]  mltk_rmsprop_params */
    MLTK_OP_LAMB_STEP = 42,    /* LAMB with Adam bias correction, per tensor
                                * segment trust ratio.  [p, m, v, scratch (2
                                * n_seg) | g, lr_scale opt]  mltk_lamb_params */
    MLTK_OP_COUNT              /* not an op: one past the last id */
} mltk_op;

/* ---- op parameters ------------------------------------------------------------ */

typedef struct mltk_fill_params    { float value; } mltk_fill_params;
typedef struct mltk_axpby_params   { float a, b; } mltk_axpby_params;
typedef struct mltk_act_params     { mltk_act act; float alpha; } mltk_act_params;
typedef struct mltk_clamp_params   { float lo, hi; } mltk_clamp_params;
typedef struct mltk_gemm_params {
    int      ta, tb;        /* non-zero: the stored matrix is transposed */
    float    alpha, beta;   /* beta == 0: C is not read */
    mltk_act act;           /* epilogue after the bias */
    float    act_alpha;
} mltk_gemm_params;
typedef struct mltk_sum_rows_params { float beta; } mltk_sum_rows_params;
typedef struct mltk_norm_params    { float max_norm; } mltk_norm_params;
typedef struct mltk_xent_params    { float label_smoothing, grad_scale; } mltk_xent_params;
typedef struct mltk_pointwise_params { mltk_pointwise kind; float grad_scale; } mltk_pointwise_params;
typedef struct mltk_kl_params      { float T, grad_scale; } mltk_kl_params;
typedef struct mltk_augment_params { int64_t pad; int flip; uint64_t seed, offset; } mltk_augment_params;
typedef struct mltk_copy_params    { int accumulate; } mltk_copy_params;
typedef struct mltk_rng_params     { float a, b; uint64_t seed, offset; } mltk_rng_params;
                                   /* uniform: a = lo, b = hi; normal: a = mean, b = std */
typedef struct mltk_dropout_params { float p; uint64_t seed, offset; } mltk_dropout_params;
typedef struct mltk_conv2d_params  { mltk_conv2d_desc d; mltk_act act; float act_alpha; } mltk_conv2d_params;
typedef struct mltk_pool2d_params  { mltk_pool kind; mltk_pool2d_desc d; } mltk_pool2d_params;
typedef struct mltk_bn_params      { float momentum, eps; } mltk_bn_params;
typedef struct mltk_ln_params      { float eps; } mltk_ln_params;
typedef struct mltk_sgd_params {
    float   lr, momentum, dampening, weight_decay;
    int     nesterov;
    int64_t t;              /* 1-based step; momentum starts as the gradient */
} mltk_sgd_params;
typedef struct mltk_adam_params {
    float   lr, beta1, beta2, eps, weight_decay;
    int     decoupled;      /* 0: Adam (L2 in the gradient), 1: AdamW */
    int64_t t;
} mltk_adam_params;
typedef struct mltk_rmsprop_params {
    float   lr, alpha, eps, weight_decay, momentum;
    int     centered;
} mltk_rmsprop_params;
typedef struct mltk_lamb_params {
    float          lr, beta1, beta2, eps, weight_decay;
    int64_t        t;
    int            n_seg;
    const int64_t *seg_off; /* (n_seg + 1) element offsets, host memory */
} mltk_lamb_params;

/* ---- one op call --------------------------------------------------------------- */

#define MLTK_OP_MAX_TENSORS 8

/* What a backend's `run` receives.  Borrowed for the call. */
typedef struct mltk_op_call {
    mltk_op     op;
    int         n_t;                         /* tensors in t */
    mltk_tensor t[MLTK_OP_MAX_TENSORS];      /* in the op's order; an absent
                                              * optional tensor has data NULL */
    const void *params;                      /* the op's params struct, or NULL */
    void       *ws;                          /* workspace, or NULL */
    size_t      ws_bytes;
} mltk_op_call;

/* ---- reading a call (for backend authors) ------------------------------------- */
/* Small readers a backend's `run` unpacks a call with.  A call reaching
 * `run` has passed the core's checks, so these check nothing. */

/* Tensor i's data (NULL when the optional tensor is absent). */
static inline float *mltk_call_f32(const mltk_op_call *c, int i)
{
    return i < c->n_t ? (float *)c->t[i].data : NULL;
}
static inline const int32_t *mltk_call_i32(const mltk_op_call *c, int i)
{
    return (const int32_t *)c->t[i].data;
}
/* Elements of tensor i; its dim d; its last dim (1 for a 0-d tensor). */
static inline int64_t mltk_call_numel(const mltk_op_call *c, int i)
{
    return mltk_tensor_numel(&c->t[i]);
}
static inline int64_t mltk_call_dim(const mltk_op_call *c, int i, int d)
{
    return c->t[i].shape.dim[d];
}
static inline int64_t mltk_call_last(const mltk_op_call *c, int i)
{
    int nd = c->t[i].shape.ndim;
    return nd > 0 ? c->t[i].shape.dim[nd - 1] : 1;
}
/* N, C and L of tensor i seen as (N, C, L): L is the product of the
 * trailing dims (1 for a 2-d tensor), as the batch norm ops read x. */
static inline void mltk_call_ncl(const mltk_op_call *c, int i, int64_t *N, int64_t *C,
                                 int64_t *L)
{
    const mltk_shape *s = &c->t[i].shape;
    *N = s->dim[0];
    *C = s->ndim > 1 ? s->dim[1] : 1;
    *L = 1;
    for (int d = 2; d < s->ndim; d++)
        *L *= s->dim[d];
}
/* Rows and columns of a row-wise op over the last dim of tensor i. */
static inline void mltk_call_rows_last(const mltk_op_call *c, int i, int64_t *rows,
                                       int64_t *cols)
{
    const mltk_shape *s = &c->t[i].shape;
    *cols = s->ndim > 0 ? s->dim[s->ndim - 1] : 1;
    *rows = 1;
    for (int d = 0; d + 1 < s->ndim; d++)
        *rows *= s->dim[d];
}

/* ---- the backend vtable -------------------------------------------------------- */

typedef struct mltk_backend_opts {
    uint32_t size;       /* sizeof(struct mltk_backend_opts) */
    int      threads;    /* host threads to use; 0 = all cores */
    int      device;     /* device index for GPU backends */
    uint64_t seed;       /* run seed (backends may derive streams from it) */
    int      tf32;       /* GPU backends: allow TF32 in f32 matrix products */
} mltk_backend_opts;

struct mltk_backend_i {
    uint32_t size;  /* sizeof(struct mltk_backend_i) as the plugin built it */

    /* ---- lifetime ---- */
    /* Can this backend run here?  Returns 1 if yes; 0 and *why (malloc()ed)
     * if not (no device, no driver, library missing).  Must not crash or
     * hang on any machine.  `opts` as for create (the device it would use). */
    int  (*probe)(const mltk_backend_opts *opts, char **why);
    int  (*create)(void **ctx, const mltk_backend_opts *opts, char **err);
    void (*destroy)(void *ctx);
    /* human-readable device description, e.g. "cpu: 2 threads, OpenBLAS" */
    const char *(*device_name)(void *ctx);

    /* ---- memory ---- */
    /* Memory from alloc is aligned to at least 64 bytes and uninitialised. */
    int  (*alloc)(void *ctx, size_t bytes, void **ptr);
    void (*free)(void *ctx, void *ptr);
    int  (*upload)(void *ctx, void *dst, const void *host_src, size_t bytes);
    /* synchronous: waits for every op queued before it */
    int  (*download)(void *ctx, void *host_dst, const void *src, size_t bytes);
    int  (*copy)(void *ctx, void *dst, const void *src, size_t bytes);
    int  (*sync)(void *ctx);

    /* ---- ops ---- */
    /* 1 if `run` computes `op` with tensors of the op's dtype `dt`
     * (mltk_op_dtype), else 0.  Asked when a session is built, so that an
     * op a config needs and a backend lacks is refused before training. */
    int    (*supports)(void *ctx, mltk_op op, mltk_dtype dt);
    /* optional (NULL: none needed): workspace bytes `run` needs for call
     * `c` (tensor data may be NULL: only shapes and params are read). */
    size_t (*workspace)(void *ctx, const mltk_op_call *c);
    /* Run one op the core has checked.  On failure returns a negative
     * status and may set *err (malloc()ed) to why, e.g. "cuDNN:
     * CUDNN_STATUS_NOT_SUPPORTED for ...". */
    int    (*run)(void *ctx, const mltk_op_call *c, char **err);

    /* ---- extensions ---- */
    /* A named extra or fused fast path; NULL if not offered. */
    void *(*get_proc)(void *ctx, const char *name);
};

/* An instantiated backend as plugins see it.  Borrowed from the session. */
struct mltk_backend {
    const struct mltk_backend_i *i;
    void       *ctx;
    const char *name;        /* plugin name, e.g. "cpu" */
    struct mltk_backend_state *state;  /* the core's: last error, counters */
};

/* ---- the op API (libmltk) -------------------------------------------------------- */

/* The op's name, "gemm", or "?" */
MLTK_API const char *mltk_op_name(mltk_op op);
/* The dtype an op call is computed in: its first input tensor's, or its
 * first output's when it has no input (fill, rng_*). */
MLTK_API mltk_dtype mltk_op_dtype(const mltk_op_call *c);
/* Check call `c` against its op's contract without running it: MLTK_OK,
 * or MLTK_ERR_SHAPE / MLTK_ERR_INVALID with *err saying what is wrong
 * ("gemm: A is (3, 4) but B is (5, 2)"). */
MLTK_API int mltk_op_check(const mltk_op_call *c, char **err);
/* Check, then run on `be`.  An op the backend does not support in the
 * call's dtype is MLTK_ERR_UNSUPPORTED.  On failure the message is kept
 * in mltk_backend_error(be). */
MLTK_API int mltk_op_run(const struct mltk_backend *be, const mltk_op_call *c);
/* Workspace bytes call `c` needs on `be` (0 if none). */
MLTK_API size_t mltk_op_workspace(const struct mltk_backend *be, const mltk_op_call *c);
/* 1 if `be` runs `op` in dtype `dt`. */
MLTK_API int mltk_op_supported(const struct mltk_backend *be, mltk_op op, mltk_dtype dt);
/* The message of the last failed op or memory call on `be` ("" if none);
 * borrowed until the next call on `be`. */
MLTK_API const char *mltk_backend_error(const struct mltk_backend *be);

/* Memory through the core, so that errors are kept and host
 * synchronisations counted (download and sync are one each). */
MLTK_API int  mltk_be_alloc(const struct mltk_backend *be, size_t bytes, void **ptr);
MLTK_API void mltk_be_free(const struct mltk_backend *be, void *ptr);
MLTK_API int  mltk_be_upload(const struct mltk_backend *be, void *dst, const void *src,
                             size_t bytes);
MLTK_API int  mltk_be_download(const struct mltk_backend *be, void *dst, const void *src,
                               size_t bytes);
MLTK_API int  mltk_be_copy(const struct mltk_backend *be, void *dst, const void *src,
                           size_t bytes);
MLTK_API int  mltk_be_sync(const struct mltk_backend *be);
/* Host synchronisations (download + sync) made through `be` so far. */
MLTK_API uint64_t mltk_be_sync_count(const struct mltk_backend *be);

/* ---- typed wrappers: one per op, each builds the call and runs it ----
 * Tensors are passed by pointer and borrowed for the call; an optional
 * tensor is NULL (or has data NULL) when absent. */
typedef const struct mltk_backend mltk_be;
typedef const mltk_tensor mltk_ct;

MLTK_API int mltk_op_fill(mltk_be *be, mltk_ct *y, float value);
MLTK_API int mltk_op_axpby(mltk_be *be, mltk_ct *y, float a, mltk_ct *x, float b);
MLTK_API int mltk_op_mul(mltk_be *be, mltk_ct *z, mltk_ct *x, mltk_ct *y);
MLTK_API int mltk_op_act_forward(mltk_be *be, mltk_ct *y, mltk_ct *x, mltk_act act,
                                 float alpha);
MLTK_API int mltk_op_act_backward(mltk_be *be, mltk_ct *dx, mltk_ct *dy, mltk_ct *x,
                                  mltk_ct *y, mltk_act act, float alpha);
MLTK_API int mltk_op_cast(mltk_be *be, mltk_ct *y, mltk_ct *x);
MLTK_API int mltk_op_clamp(mltk_be *be, mltk_ct *x, float lo, float hi);
MLTK_API int mltk_op_gemm(mltk_be *be, mltk_ct *C, mltk_ct *A, mltk_ct *B, mltk_ct *bias,
                          const mltk_gemm_params *p);
MLTK_API int mltk_op_bias_act(mltk_be *be, mltk_ct *y, mltk_ct *b, mltk_act act,
                              float alpha);
MLTK_API int mltk_op_sum_rows(mltk_be *be, mltk_ct *out, mltk_ct *x, float beta);
MLTK_API int mltk_op_sum(mltk_be *be, mltk_ct *out, mltk_ct *x);
MLTK_API int mltk_op_sumsq(mltk_be *be, mltk_ct *out, mltk_ct *x);
MLTK_API int mltk_op_scale_to_norm(mltk_be *be, mltk_ct *x, mltk_ct *sumsq, float max_norm);
MLTK_API int mltk_op_nonfinite(mltk_be *be, mltk_ct *flag, mltk_ct *x);
MLTK_API int mltk_op_softmax_xent(mltk_be *be, mltk_ct *loss, mltk_ct *dlogits,
                                  mltk_ct *logits, mltk_ct *labels, mltk_ct *weights,
                                  const mltk_xent_params *p);
MLTK_API int mltk_op_count_correct(mltk_be *be, mltk_ct *correct, mltk_ct *logits,
                                   mltk_ct *labels);
MLTK_API int mltk_op_pointwise_loss(mltk_be *be, mltk_ct *loss, mltk_ct *dpred,
                                    mltk_ct *pred, mltk_ct *target,
                                    const mltk_pointwise_params *p);
MLTK_API int mltk_op_kl_div_logits(mltk_be *be, mltk_ct *loss, mltk_ct *dstudent,
                                   mltk_ct *student, mltk_ct *teacher,
                                   const mltk_kl_params *p);
MLTK_API int mltk_op_gather_rows(mltk_be *be, mltk_ct *dst, mltk_ct *src, mltk_ct *idx);
MLTK_API int mltk_op_gather_augment_2d(mltk_be *be, mltk_ct *y, mltk_ct *x, mltk_ct *idx,
                                       const mltk_augment_params *p);
MLTK_API int mltk_op_copy_2d(mltk_be *be, mltk_ct *dst, mltk_ct *src, int accumulate);
MLTK_API int mltk_op_embedding_forward(mltk_be *be, mltk_ct *y, mltk_ct *table, mltk_ct *ids);
MLTK_API int mltk_op_embedding_backward(mltk_be *be, mltk_ct *dtable, mltk_ct *dy,
                                        mltk_ct *ids);
MLTK_API int mltk_op_rng_uniform(mltk_be *be, mltk_ct *x, float lo, float hi, uint64_t seed,
                                 uint64_t offset);
MLTK_API int mltk_op_rng_normal(mltk_be *be, mltk_ct *x, float mean, float std,
                                uint64_t seed, uint64_t offset);
MLTK_API int mltk_op_dropout_forward(mltk_be *be, mltk_ct *y, mltk_ct *mask, mltk_ct *x,
                                     const mltk_dropout_params *p);
/* The conv ops take the workspace `ws` of mltk_op_conv2d_workspace() bytes
 * (NULL when 0). */
MLTK_API size_t mltk_op_conv2d_workspace(mltk_be *be, const mltk_conv2d_params *p,
                                         mltk_dtype dt);
MLTK_API int mltk_op_conv2d_forward(mltk_be *be, mltk_ct *y, mltk_ct *x, mltk_ct *w,
                                    mltk_ct *b, const mltk_conv2d_params *p, void *ws,
                                    size_t ws_bytes);
MLTK_API int mltk_op_conv2d_backward_data(mltk_be *be, mltk_ct *dx, mltk_ct *dy, mltk_ct *w,
                                          const mltk_conv2d_params *p, void *ws,
                                          size_t ws_bytes);
MLTK_API int mltk_op_conv2d_backward_filter(mltk_be *be, mltk_ct *dw, mltk_ct *db,
                                            mltk_ct *dy, mltk_ct *x,
                                            const mltk_conv2d_params *p, void *ws,
                                            size_t ws_bytes);
MLTK_API int mltk_op_pool2d_forward(mltk_be *be, mltk_ct *y, mltk_ct *x,
                                    const mltk_pool2d_params *p);
MLTK_API int mltk_op_pool2d_backward(mltk_be *be, mltk_ct *dx, mltk_ct *dy, mltk_ct *x,
                                     mltk_ct *y, const mltk_pool2d_params *p);
MLTK_API int mltk_op_batchnorm_forward_train(mltk_be *be, mltk_ct *y, mltk_ct *save_mean,
                                             mltk_ct *save_invstd, mltk_ct *running_mean,
                                             mltk_ct *running_var, mltk_ct *x,
                                             mltk_ct *gamma, mltk_ct *beta,
                                             const mltk_bn_params *p);
MLTK_API int mltk_op_batchnorm_forward_eval(mltk_be *be, mltk_ct *y, mltk_ct *x,
                                            mltk_ct *gamma, mltk_ct *beta,
                                            mltk_ct *running_mean, mltk_ct *running_var,
                                            const mltk_bn_params *p);
MLTK_API int mltk_op_batchnorm_backward(mltk_be *be, mltk_ct *dx, mltk_ct *dgamma,
                                        mltk_ct *dbeta, mltk_ct *dy, mltk_ct *x,
                                        mltk_ct *gamma, mltk_ct *save_mean,
                                        mltk_ct *save_invstd);
MLTK_API int mltk_op_layernorm_forward(mltk_be *be, mltk_ct *y, mltk_ct *mean,
                                       mltk_ct *rstd, mltk_ct *x, mltk_ct *gamma,
                                       mltk_ct *beta, const mltk_ln_params *p);
MLTK_API int mltk_op_layernorm_backward(mltk_be *be, mltk_ct *dx, mltk_ct *dgamma,
                                        mltk_ct *dbeta, mltk_ct *dy, mltk_ct *x,
                                        mltk_ct *gamma, mltk_ct *mean, mltk_ct *rstd);
MLTK_API int mltk_op_softmax_forward(mltk_be *be, mltk_ct *y, mltk_ct *x);
MLTK_API int mltk_op_softmax_backward(mltk_be *be, mltk_ct *dx, mltk_ct *dy, mltk_ct *y);
MLTK_API int mltk_op_sgd_step(mltk_be *be, mltk_ct *p, mltk_ct *mom, mltk_ct *g,
                              mltk_ct *lr_scale, const mltk_sgd_params *prm);
MLTK_API int mltk_op_adam_step(mltk_be *be, mltk_ct *p, mltk_ct *m, mltk_ct *v, mltk_ct *g,
                               mltk_ct *lr_scale, const mltk_adam_params *prm);
MLTK_API int mltk_op_rmsprop_step(mltk_be *be, mltk_ct *p, mltk_ct *sq, mltk_ct *mom,
                                  mltk_ct *gavg, mltk_ct *g, mltk_ct *lr_scale,
                                  const mltk_rmsprop_params *prm);
MLTK_API int mltk_op_lamb_step(mltk_be *be, mltk_ct *p, mltk_ct *m, mltk_ct *v,
                               mltk_ct *scratch, mltk_ct *g, mltk_ct *lr_scale,
                               const mltk_lamb_params *prm);

#ifdef __cplusplus
}
#endif
#endif /* MLTK_BACKEND_H */
