/* backend.h - the compute contract every backend implements.
 *
 * What this is: the vtable `struct mltk_backend_i` of operations that
 * layers, losses and optimizers are written in, so that a plugin runs on
 * every backend (cpu, cuda, ...) unchanged.  All pointers passed to an op
 * are backend memory obtained from `alloc` (host memory on cpu, device
 * memory on cuda) unless the comment says "host".  Ops may run
 * asynchronously; `sync` waits for all of them; `download` is synchronous.
 * Matrices are row-major.  Every op returns MLTK_OK or a negative status.
 *
 * What this is not: a tensor library with broadcasting rules.  Each op has
 * a fixed shape contract stated beside it.  New ops are only ever appended
 * (with the ABI minor that added them); an op a backend does not provide is
 * NULL and callers must fall back or fail with MLTK_ERR_UNSUPPORTED.
 */
#ifndef MLTK_BACKEND_H
#define MLTK_BACKEND_H

#include <mltk/mltk.h>

#ifdef __cplusplus
extern "C" {
#endif

/* activation functions usable in fused epilogues and act_* ops */
typedef enum mltk_act {
    MLTK_ACT_NONE = 0,
    MLTK_ACT_RELU = 1,
    MLTK_ACT_LEAKY_RELU = 2,  /* alpha = negative slope */
    MLTK_ACT_SIGMOID = 3,
    MLTK_ACT_TANH = 4,
    MLTK_ACT_ELU = 5,         /* alpha: x < 0 -> alpha * (exp(x) - 1) (ABI 1.1) */
    MLTK_ACT_GELU_TANH = 6,   /* 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))) (1.1) */
    MLTK_ACT_GELU = 7         /* exact: 0.5 x (1 + erf(x / sqrt(2))) (1.1) */
} mltk_act;

/* A 2-d convolution, NCHW tensors, as PyTorch's nn.Conv2d computes it
 * (cross-correlation).  x (N,C,H,W), w (K, C/groups, R, S), b (K),
 * y (N,K,P,Q) with P = (H + 2 pad_h - dil_h (R-1) - 1) / stride_h + 1 and
 * Q likewise.  (ABI 1.1) */
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

/* 2-d pooling, NCHW: x (N,C,H,W) -> y (N,C,P,Q); kernel R x S.  (1.1) */
typedef struct mltk_pool2d_desc {
    int64_t N, C, H, W;
    int64_t R, S, P, Q;
    int64_t stride_h, stride_w, pad_h, pad_w;
} mltk_pool2d_desc;

typedef struct mltk_backend_opts {
    uint32_t size;       /* sizeof(struct mltk_backend_opts) */
    int      threads;    /* host threads to use; 0 = all cores */
    int      device;     /* device index for GPU backends */
    uint64_t seed;       /* run seed (backends may derive streams from it) */
} mltk_backend_opts;

struct mltk_backend_i {
    uint32_t size;  /* sizeof(struct mltk_backend_i) as the plugin built it */

    /* ---- lifetime ---- */
    /* Can this backend run here?  Returns 1 if yes; 0 and *why (malloc()ed)
     * if not (no device, no driver, library missing).  Must not crash or
     * hang on any machine. */
    int  (*probe)(char **why);
    int  (*create)(void **ctx, const mltk_backend_opts *opts, char **err);
    void (*destroy)(void *ctx);
    /* human-readable device description, e.g. "cpu: 2 threads, OpenBLAS" */
    const char *(*device_name)(void *ctx);

    /* ---- memory ---- */
    /* Memory from alloc is aligned to at least 64 bytes and uninitialised. */
    int  (*alloc)(void *ctx, size_t bytes, void **ptr);
    void (*free)(void *ctx, void *ptr);
    int  (*upload)(void *ctx, void *dst, const void *host_src, size_t bytes);
    int  (*download)(void *ctx, void *host_dst, const void *src, size_t bytes);
    int  (*copy)(void *ctx, void *dst, const void *src, size_t bytes);
    int  (*sync)(void *ctx);

    /* ---- elementwise ---- */
    /* x[i] = v, i < n */
    int (*fill)(void *ctx, float *x, float v, int64_t n);
    /* y[i] = a * x[i] + b * y[i]; with b == 0, y is not read */
    int (*axpby)(void *ctx, float *y, float a, const float *x, float b, int64_t n);
    /* z[i] = x[i] * y[i] */
    int (*mul)(void *ctx, float *z, const float *x, const float *y, int64_t n);
    /* y[i] = act(x[i]); x == y allowed */
    int (*act_forward)(void *ctx, mltk_act act, float alpha, float *y,
                       const float *x, int64_t n);
    /* dx[i] = dy[i] * act'(x[i]); `x` is the activation's input and `y` its
     * output; a backend uses whichever it needs (relu: y > 0).  dx == dy
     * allowed. */
    int (*act_backward)(void *ctx, mltk_act act, float alpha, float *dx,
                        const float *dy, const float *x, const float *y, int64_t n);

    /* ---- linear algebra ---- */
    /* C(M,N) = alpha * op(A) * op(B) + beta * C; op(A) is (M,K), op(B) (K,N).
     * ta/tb non-zero means the stored matrix is transposed.  With beta == 0,
     * C is not read. */
    int (*gemm)(void *ctx, int ta, int tb, int64_t M, int64_t N, int64_t K,
                float alpha, const float *A, int64_t lda,
                const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
    /* y(rows,cols) = act(y + b), b (cols) may be NULL: the bias/activation
     * epilogue of a dense layer */
    int (*bias_act)(void *ctx, float *y, const float *b, int64_t rows,
                    int64_t cols, mltk_act act, float alpha);
    /* out(cols) = sum over rows of x(rows,cols) + beta * out: bias grads */
    int (*sum_rows)(void *ctx, float *out, const float *x, int64_t rows,
                    int64_t cols, float beta);

    /* ---- reductions (result written to backend memory, 1 float) ---- */
    int (*sum)(void *ctx, float *out, const float *x, int64_t n);
    int (*sumsq)(void *ctx, float *out, const float *x, int64_t n);

    /* ---- losses and metrics ---- */
    /* logits (N,C), labels (N) int32 in [0,C).  loss[0] = mean over the
     * batch of -log softmax(logits)[label].  If dlogits != NULL it receives
     * grad_scale * (softmax(logits) - onehot(label)) / N.  A label outside
     * [0,C) makes the op return MLTK_ERR_DATA. */
    int (*softmax_xent)(void *ctx, float *loss, float *dlogits,
                        const float *logits, const int32_t *labels,
                        int64_t N, int64_t C, float grad_scale);
    /* correct[0] = number of rows whose argmax (first maximum) equals the
     * label, as a float */
    int (*count_correct)(void *ctx, float *correct, const float *logits,
                         const int32_t *labels, int64_t N, int64_t C);

    /* ---- data movement ---- */
    /* dst row i = src row idx[i] (rows of row_bytes bytes), i < n; idx is
     * int32 backend memory */
    int (*gather_rows)(void *ctx, void *dst, const void *src,
                       const int32_t *idx, int64_t n, size_t row_bytes);

    /* ---- random numbers (counter-based, see mltk/rng.h) ---- */
    /* x[i] = lo + (hi - lo) * u(seed, offset + i), u in [0,1) */
    int (*rng_uniform)(void *ctx, float *x, int64_t n, float lo, float hi,
                       uint64_t seed, uint64_t offset);
    /* x[i] = mean + std * z(seed, offset + i), z standard normal */
    int (*rng_normal)(void *ctx, float *x, int64_t n, float mean, float std,
                      uint64_t seed, uint64_t offset);

    /* ---- fused optimizer updates over flat buffers ---- */
    /* In every *_step: lr_scale (n floats, backend memory) multiplies the
     * learning rate per element (per-layer lr_mult; 0 freezes), NULL
     * means 1 everywhere.  A parameter whose lr_scale is 0 is left
     * bit-identical (weight decay included). */
    /* PyTorch torch.optim.SGD semantics; t is the 1-based step number (the
     * momentum buffer is initialised to the gradient at t == 1). */
    int (*sgd_step)(void *ctx, float *p, const float *g, float *mom, int64_t n,
                    float lr, float momentum, float dampening,
                    float weight_decay, int nesterov, int64_t t,
                    const float *lr_scale);
    /* PyTorch torch.optim.Adam (decoupled == 0: L2 added to the gradient)
     * and AdamW (decoupled != 0: p *= 1 - lr * weight_decay) semantics */
    int (*adam_step)(void *ctx, float *p, const float *g, float *m, float *v,
                     int64_t n, float lr, float beta1, float beta2, float eps,
                     float weight_decay, int decoupled, int64_t t,
                     const float *lr_scale);

    /* ---- extensions ---- */
    /* A named extra op or fused fast path; NULL if not offered. */
    void *(*get_proc)(void *ctx, const char *name);

    /* ======== ABI 1.1: the modelling toolbox ======== */

    /* ---- convolution (1.1) ---- */
    /* Scratch bytes the three conv ops need for `d` (0 if none); the layer
     * declares a buffer of that size and passes it as `ws`. */
    size_t (*conv2d_workspace)(void *ctx, const mltk_conv2d_desc *d);
    /* y = act(conv(x, w) + b); b may be NULL */
    int (*conv2d_forward)(void *ctx, float *y, const float *x, const float *w,
                          const float *b, const mltk_conv2d_desc *d,
                          mltk_act act, float alpha, void *ws);
    /* dx = conv_transpose(dy, w) (overwritten) */
    int (*conv2d_backward_data)(void *ctx, float *dx, const float *dy,
                                const float *w, const mltk_conv2d_desc *d, void *ws);
    /* dw = correlation of x with dy (overwritten); db = sum of dy over
     * N, P, Q (overwritten; skipped when NULL) */
    int (*conv2d_backward_filter)(void *ctx, float *dw, float *db, const float *dy,
                                  const float *x, const mltk_conv2d_desc *d, void *ws);

    /* ---- pooling (1.1) ---- */
    int (*pool2d_forward)(void *ctx, mltk_pool kind, float *y, const float *x,
                          const mltk_pool2d_desc *d);
    /* dx (overwritten) from dy; max pooling routes each gradient to the
     * first maximum of its window, recomputed from x */
    int (*pool2d_backward)(void *ctx, mltk_pool kind, float *dx, const float *dy,
                           const float *x, const float *y, const mltk_pool2d_desc *d);

    /* ---- normalisation (1.1) ---- */
    /* Batch norm over x (N,C,L) per channel c (L = spatial size, 1 for
     * 1-d).  Training: batch mean/biased var normalise; save_mean and
     * save_invstd (C) receive mean and 1/sqrt(var + eps); running_mean/var
     * (C) are updated as PyTorch does (unbiased var, momentum) unless NULL. */
    int (*batchnorm_forward_train)(void *ctx, float *y, const float *x,
                                   const float *gamma, const float *beta,
                                   float *save_mean, float *save_invstd,
                                   float *running_mean, float *running_var,
                                   int64_t N, int64_t C, int64_t L,
                                   float momentum, float eps);
    int (*batchnorm_forward_eval)(void *ctx, float *y, const float *x,
                                  const float *gamma, const float *beta,
                                  const float *running_mean, const float *running_var,
                                  int64_t N, int64_t C, int64_t L, float eps);
    /* training-mode backward: dx, dgamma, dbeta overwritten; any of the
     * three may be NULL (not wanted).  In all batchnorm ops gamma and beta
     * may be NULL (no affine transform: 1 and 0). */
    int (*batchnorm_backward)(void *ctx, float *dx, float *dgamma, float *dbeta,
                              const float *dy, const float *x, const float *gamma,
                              const float *save_mean, const float *save_invstd,
                              int64_t N, int64_t C, int64_t L);
    /* Layer norm over the last `cols` of x (rows, cols); gamma/beta (cols)
     * may be NULL (no affine); mean and rstd (rows) saved for backward.
     * In layernorm_backward dx, dgamma and dbeta may each be NULL. */
    int (*layernorm_forward)(void *ctx, float *y, const float *x, const float *gamma,
                             const float *beta, float *mean, float *rstd,
                             int64_t rows, int64_t cols, float eps);
    int (*layernorm_backward)(void *ctx, float *dx, float *dgamma, float *dbeta,
                              const float *dy, const float *x, const float *gamma,
                              const float *mean, const float *rstd,
                              int64_t rows, int64_t cols);

    /* ---- dropout and softmax (1.1) ---- */
    /* mask[i] = u(seed, offset+i) >= p ? 1/(1-p) : 0; y = x * mask */
    int (*dropout_forward)(void *ctx, float *y, float *mask, const float *x,
                           int64_t n, float p, uint64_t seed, uint64_t offset);
    /* softmax over the last dimension of x (rows, cols) */
    int (*softmax_forward)(void *ctx, float *y, const float *x, int64_t rows,
                           int64_t cols);
    /* dx = y * (dy - sum(dy * y)) per row */
    int (*softmax_backward)(void *ctx, float *dx, const float *dy, const float *y,
                            int64_t rows, int64_t cols);

    /* ---- strided copies and gathers (1.1) ---- */
    /* dst[r * dst_ld + c] = src[r * src_ld + c] (+ dst when accumulate),
     * r < rows, c < cols: concat and split along any axis */
    int (*copy_2d)(void *ctx, float *dst, int64_t dst_ld, const float *src,
                   int64_t src_ld, int64_t rows, int64_t cols, int accumulate);
    /* y (n, dim) = table[ids[i]]; ids are float-coded integers in [0,vocab);
     * an id outside is MLTK_ERR_DATA */
    int (*embedding_forward)(void *ctx, float *y, const float *table, const float *ids,
                             int64_t n, int64_t dim, int64_t vocab);
    /* dtable (vocab, dim) = scatter-add of dy rows by id (overwritten) */
    int (*embedding_backward)(void *ctx, float *dtable, const float *dy,
                              const float *ids, int64_t n, int64_t dim, int64_t vocab);

    /* ---- losses (1.1); each writes the batch mean to loss[0] and, when
     * dpred != NULL, grad_scale * d(loss)/d(pred) ---- */
    /* cross-entropy with PyTorch's label_smoothing and class weights
     * (weights (C) or NULL; weighted mean divides by the sum of the
     * targets' weights) */
    int (*softmax_xent_ex)(void *ctx, float *loss, float *dlogits, const float *logits,
                           const int32_t *labels, const float *weights, int64_t N,
                           int64_t C, float label_smoothing, float grad_scale);
    /* pred, target (n): kind 0 = mse (x-t)^2, 1 = l1 |x-t|, 2 = binary
     * cross-entropy with logits; mean over n */
    int (*pointwise_loss)(void *ctx, int kind, float *loss, float *dpred,
                          const float *pred, const float *target, int64_t n,
                          float grad_scale);
    /* distillation: T^2 * KL(softmax(teacher/T) || softmax(student/T)),
     * batch mean, over (N, C) logits */
    int (*kl_div_logits)(void *ctx, float *loss, float *dstudent, const float *student,
                         const float *teacher, int64_t N, int64_t C, float T,
                         float grad_scale);

    /* ---- gradient clipping (1.1) ---- */
    /* x *= min(1, max_norm / (sqrt(sumsq[0]) + 1e-6)), sumsq in backend memory */
    int (*scale_to_norm)(void *ctx, float *x, int64_t n, const float *sumsq,
                         float max_norm);
    /* x = min(max(x, lo), hi) */
    int (*clamp)(void *ctx, float *x, int64_t n, float lo, float hi);

    /* ---- more optimizers (1.1) ---- */
    /* torch.optim.RMSprop (alpha, eps, weight_decay, momentum, centered);
     * sq, mom, gavg (n) state, mom/gavg NULL when unused */
    int (*rmsprop_step)(void *ctx, float *p, const float *g, float *sq, float *mom,
                        float *gavg, int64_t n, float lr, float alpha, float eps,
                        float weight_decay, float momentum, int centered,
                        const float *lr_scale);
    /* LAMB (You et al. 2019, with Adam bias correction): per tensor
     * segment s, r = mhat/(sqrt(vhat)+eps) + wd p, trust = ||p|| / ||r||
     * (1 when either norm is 0), p -= lr * lr_scale * trust * r.
     * seg_off (n_seg + 1) are the segments' element offsets (host
     * memory); `scratch` holds 2 * n_seg floats of backend memory. */
    int (*lamb_step)(void *ctx, float *p, const float *g, float *m, float *v,
                     int64_t n, float lr, float beta1, float beta2, float eps,
                     float weight_decay, int64_t t, const int64_t *seg_off,
                     int n_seg, float *scratch, const float *lr_scale);

    /* ======== ABI 1.2: training operations ======== */

    /* ---- data augmentation (1.2) ---- */
    /* The batch gather of images fused with a random translation and a
     * random horizontal flip, as torchvision's RandomCrop(padding = pad)
     * followed by RandomHorizontalFlip: for row i, y[i] (C,H,W) is image
     * x[idx[i]] of x (n,C,H,W) shifted by (sh, sw), zero where the shift
     * leaves the image, then mirrored when f is set:
     *   y[i][c][h][w] = x[idx[i]][c][h + sh][w' + sw],  w' = f ? W-1-w : w
     * with sh = floor(u0 (2 pad + 1)) - pad (the product taken in double),
     * sw likewise from u1, and f = flip && u2 < 0.5, where u0, u1, u2 =
     * mltk_rng_u01(seed, offset + 4 i + 0, 1, 2) (rng.h): every backend
     * draws the same transforms.  pad = 0 and flip = 0 is a plain gather. */
    int (*gather_augment_2d)(void *ctx, float *y, const float *x, const int32_t *idx,
                             int64_t rows, int64_t C, int64_t H, int64_t W,
                             int64_t pad, int flip, uint64_t seed, uint64_t offset);
};

/* An instantiated backend as plugins see it.  Borrowed from the session. */
struct mltk_backend {
    const struct mltk_backend_i *i;
    void       *ctx;
    const char *name;  /* plugin name, e.g. "cpu" */
};

/* True when the backend's vtable (as built) contains member `m`. */
#define MLTK_BACKEND_HAS(be, m) \
    ((be)->i->size >= offsetof(struct mltk_backend_i, m) + sizeof((be)->i->m) \
     && (be)->i->m != NULL)

#ifdef __cplusplus
}
#endif
#endif /* MLTK_BACKEND_H */
