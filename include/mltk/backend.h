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
    MLTK_ACT_TANH = 4
} mltk_act;

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
    /* PyTorch torch.optim.SGD semantics; t is the 1-based step number (the
     * momentum buffer is initialised to the gradient at t == 1). */
    int (*sgd_step)(void *ctx, float *p, const float *g, float *mom, int64_t n,
                    float lr, float momentum, float dampening,
                    float weight_decay, int nesterov, int64_t t);
    /* PyTorch torch.optim.Adam (decoupled == 0: L2 added to the gradient)
     * and AdamW (decoupled != 0: p *= 1 - lr * weight_decay) semantics */
    int (*adam_step)(void *ctx, float *p, const float *g, float *m, float *v,
                     int64_t n, float lr, float beta1, float beta2, float eps,
                     float weight_decay, int decoupled, int64_t t);

    /* ---- extensions ---- */
    /* A named extra op or fused fast path; NULL if not offered. */
    void *(*get_proc)(void *ctx, const char *name);
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
