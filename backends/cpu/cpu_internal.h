/* cpu_internal.h - what the cpu backend's source files share.
 *
 * Hidden inside the plugin (built with -fvisibility=hidden; only
 * mltk_plugin_cpu is exported).  cpu_plugin.c holds the vtable (lifetime,
 * memory) and picks an instruction set level per context (below); cpu.c
 * holds, per level, the one op dispatcher (`run`: it unpacks the typed tensors and params of an op
 * call, see backend.h, into the raw pointers and sizes the kernels take)
 * and the core ops; the other families live one per file: cpu_conv.c
 * (convolution, pooling), cpu_norm.c (batch/layer norm, dropout,
 * softmax), cpu_misc.c (strided copies, embedding, losses, augmenting
 * gather), cpu_optim.c (clipping, RMSprop, LAMB).
 *
 * The functions below are kernels behind `run`: the core has checked the
 * call against its op's contract (sizes, pointers, parameter ranges)
 * before `run` sees it, so they check nothing of that again.  They return
 * MLTK_OK, or a negative status with *err (malloc()ed) saying why where
 * the data or a limit of this backend is at fault.
 */
#ifndef MLTK_CPU_INTERNAL_H
#define MLTK_CPU_INTERNAL_H

#include <stdint.h>
#include <mltk/plugin.h>
#include "pool.h"

/* ---- build-time choices ---- */

/* Instruction set levels.  The files with kernels (cpu.c, cpu_conv.c,
 * cpu_norm.c, cpu_misc.c, cpu_optim.c, cpu_bf16.c) are compiled once per
 * level, with CPU_ISA set to it (local.mk), into one table of entry points
 * each (cpu_isa_ops); cpu_plugin.c picks the table when a context is
 * created, from what the CPU runs and MLTK_CPU_ISA.  So every level this
 * machine runs can be forced and tested, which an ifunc (target_clones,
 * resolved once at load time) would not allow.
 *   generic  baseline x86-64 (SSE2): plain loops, im2col + OpenBLAS
 *            convolution, bf16 widened to f32;
 *   v3       x86-64-v3 (AVX2, FMA, BMI2) kernels; convolution as generic;
 *   v4       x86-64-v4 (AVX-512 F/BW/CD/DQ/VL) kernels, and with them the
 *            AVX-512 implicit-GEMM convolution and 2x2 max pooling of
 *            cpu_gemm.c and, where the CPU has AVX-512 BF16, the vdpbf16ps
 *            product of cpu_bf16.c (or OpenBLAS's cblas_sbgemm). */
#define CPU_ISA_GENERIC 0
#define CPU_ISA_V3 1
#define CPU_ISA_V4 2
#define CPU_ISA_LEVELS 3

/* Target attributes exist for gcc on x86-64; elsewhere every level is
 * the baseline build and only generic is offered. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CPU_ISA_TARGETS 1
#else
#define CPU_ISA_TARGETS 0
#endif

/* Hot kernels are compiled for this file's level; the rest of the code
 * for baseline x86-64.  A kernel is never inlined, not even into another
 * kernel: each stays the function it was written as (and as it was when
 * the kernels were target_clones, which cannot be inlined; inlined into
 * pool_bwd_chunk, max2x2_bwd_rows ran 15% slower).  Building with
 * -DKERNEL= (or another attribute) overrides this. */
#if !defined(KERNEL) && defined(CPU_ISA) && CPU_ISA_TARGETS
#if CPU_ISA == CPU_ISA_V4
#define KERNEL __attribute__((target("arch=x86-64-v4"), noinline))
#elif CPU_ISA == CPU_ISA_V3
#define KERNEL __attribute__((target("arch=x86-64-v3"), noinline))
#endif
#endif
#ifndef KERNEL
#define KERNEL __attribute__((noinline))
#endif

/* The AVX-512 kernels of cpu_gemm.c run in the v4 build only, and there
 * only where the CPU has them. */
#if defined(CPU_ISA) && CPU_ISA == CPU_ISA_V4 && CPU_ISA_TARGETS
#define CPU_ISA_AVX512_GEMM() cpu_gemm_available()
#else
#define CPU_ISA_AVX512_GEMM() 0
#endif

/* Each level's copy of a non-static name gets the level's suffix, so
 * that the three copies link into one plugin. */
#if defined(CPU_ISA)
#if CPU_ISA == CPU_ISA_V4
#define CPU_ISA_SUFFIX _v4
#elif CPU_ISA == CPU_ISA_V3
#define CPU_ISA_SUFFIX _v3
#else
#define CPU_ISA_SUFFIX _generic
#endif
#define CPU_ISA_CAT_(a, b) a##b
#define CPU_ISA_CAT(a, b) CPU_ISA_CAT_(a, b)
#define CPU_ISA_SYM(name) CPU_ISA_CAT(name, CPU_ISA_SUFFIX)
#define cpu_isa_table CPU_ISA_SYM(cpu_isa_table)
#define cpu_act_forward CPU_ISA_SYM(cpu_act_forward)
#define cpu_conv2d_workspace CPU_ISA_SYM(cpu_conv2d_workspace)
#define cpu_conv2d_forward CPU_ISA_SYM(cpu_conv2d_forward)
#define cpu_conv2d_backward_data CPU_ISA_SYM(cpu_conv2d_backward_data)
#define cpu_conv2d_backward_filter CPU_ISA_SYM(cpu_conv2d_backward_filter)
#define cpu_pool2d_forward CPU_ISA_SYM(cpu_pool2d_forward)
#define cpu_pool2d_backward CPU_ISA_SYM(cpu_pool2d_backward)
#define cpu_batchnorm_forward_train CPU_ISA_SYM(cpu_batchnorm_forward_train)
#define cpu_batchnorm_forward_eval CPU_ISA_SYM(cpu_batchnorm_forward_eval)
#define cpu_batchnorm_backward CPU_ISA_SYM(cpu_batchnorm_backward)
#define cpu_layernorm_forward CPU_ISA_SYM(cpu_layernorm_forward)
#define cpu_layernorm_backward CPU_ISA_SYM(cpu_layernorm_backward)
#define cpu_dropout_forward CPU_ISA_SYM(cpu_dropout_forward)
#define cpu_softmax_forward CPU_ISA_SYM(cpu_softmax_forward)
#define cpu_softmax_backward CPU_ISA_SYM(cpu_softmax_backward)
#define cpu_copy_2d CPU_ISA_SYM(cpu_copy_2d)
#define cpu_embedding_forward CPU_ISA_SYM(cpu_embedding_forward)
#define cpu_embedding_backward CPU_ISA_SYM(cpu_embedding_backward)
#define cpu_softmax_xent_ex CPU_ISA_SYM(cpu_softmax_xent_ex)
#define cpu_softmax_xent_soft CPU_ISA_SYM(cpu_softmax_xent_soft)
#define cpu_pointwise_loss CPU_ISA_SYM(cpu_pointwise_loss)
#define cpu_kl_div_logits CPU_ISA_SYM(cpu_kl_div_logits)
#define cpu_gather_augment_2d CPU_ISA_SYM(cpu_gather_augment_2d)
#define cpu_scale_to_norm CPU_ISA_SYM(cpu_scale_to_norm)
#define cpu_clamp CPU_ISA_SYM(cpu_clamp)
#define cpu_rmsprop_step CPU_ISA_SYM(cpu_rmsprop_step)
#define cpu_lamb_step CPU_ISA_SYM(cpu_lamb_step)
#endif

/* Work (in elements touched) per chunk of a parallel op; an op with less
 * than two chunks' worth (32k) runs on the calling thread alone. */
#define GRAIN 16384
/* Chunk boundaries of elementwise ops fall on 64-byte lines. */
#define ALIGN_F 16
/* Per-chunk partial results are kept a cache line apart. */
#define PARTIAL_STRIDE 8

/* ---- context ---- */

/* OpenBLAS's bf16 product, where the library exports it (cblas.h's
 * cblas_sbgemm, row-major; blasint is int in the builds we link) */
typedef void (*cpu_sbgemm_blas_fn)(int order, int ta, int tb, int M, int N, int K,
                                   float alpha, const uint16_t *A, int lda,
                                   const uint16_t *B, int ldb, float beta, float *C,
                                   int ldc);

struct cpu_isa_ops;

typedef struct cpu_ctx {
    /* the entry points of the instruction set level in use (CPU_ISA_*) */
    const struct cpu_isa_ops *isa;
    int       isa_level;
    cpu_pool *pool;
    int       threads;
    double   *partials;  /* max chunks * PARTIAL_STRIDE, for reductions */
    char      name[192];
    /* the bf16 gemm's scratch (operands widened to f32, a staged f32 C,
     * or cpu_sbgemm's panels): grown to the largest call seen, kept until
     * destroy; ops run one at a time, so one buffer serves them all */
    void     *scratch;
    size_t    scratch_bytes;
    /* cblas_sbgemm when the loaded OpenBLAS exports it, else NULL; used
     * only where cpu_bf16_native() (the library's own kernels for other
     * CPUs are slower than widening and sgemm) */
    cpu_sbgemm_blas_fn sbgemm_blas;
    void     *blas_handle;   /* the dlopen reference behind sbgemm_blas */
} cpu_ctx;

/* The vtable entries that differ between levels: cpu.c defines one table
 * per level (cpu_isa_table_generic, _v3, _v4), cpu_plugin.c dispatches. */
typedef struct cpu_isa_ops {
    const char *name;    /* "generic", "x86-64-v3", "x86-64-v4" */
    int    (*supports)(void *ctx, mltk_op op, mltk_dtype dt);
    size_t (*workspace)(void *ctx, const mltk_op_call *c);
    int    (*run)(void *ctx, const mltk_op_call *c, char **err);
} cpu_isa_ops;

#ifdef CPU_ISA
extern const cpu_isa_ops cpu_isa_table;
#else
extern const cpu_isa_ops cpu_isa_table_generic, cpu_isa_table_v3, cpu_isa_table_v4;
#endif

/* ---- reductions over the pool ---- */

/* Run reduction job `fn` over n items in `chunks` chunks, each writing its
 * partial sum to c->partials[chunk * PARTIAL_STRIDE], and return the
 * partials summed in chunk order.  The pool skips chunks whose range is
 * empty (when chunks do not divide n evenly), so every partial is zeroed
 * first: a skipped chunk then adds 0, never a stale value. */
static inline double cpu_reduce_run(cpu_ctx *c, cpu_pool_fn fn, void *arg, int64_t n,
                                    int chunks, int64_t align, int64_t work)
{
    for (int k = 0; k < chunks; k++)
        c->partials[k * PARTIAL_STRIDE] = 0.0;
    cpu_pool_run(c->pool, fn, arg, n, chunks, align, work);
    double total = 0.0;
    for (int k = 0; k < chunks; k++)
        total += c->partials[k * PARTIAL_STRIDE];
    return total;
}

/* ---- counter-based random numbers, vectorized ---- */

/* Philox4x32-10 of RNG_LANES consecutive counter blocks at once, the same
 * rounds as mltk_philox4x32 in rng.h written lane-wise so that the
 * vectorizer can run the lanes side by side (32x32->64-bit multiplies).
 * u[4 l + j] = (word j of block first + l >> 8) 2^-24, as mltk_rng_u01. */
#define RNG_LANES 16
/* (unused: not every file that includes this header draws random numbers) */
KERNEL __attribute__((unused)) static void philox_u01_lanes(float *restrict u, uint64_t first,
                                                            uint64_t seed)
{
    uint32_t c0[RNG_LANES], c1[RNG_LANES], c2[RNG_LANES], c3[RNG_LANES];
    for (int l = 0; l < RNG_LANES; l++) {
        uint64_t c = first + (uint64_t)l;
        c0[l] = (uint32_t)c;
        c1[l] = (uint32_t)(c >> 32);
        c2[l] = 0;
        c3[l] = 0;
    }
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        for (int l = 0; l < RNG_LANES; l++) {
            uint64_t p0 = (uint64_t)0xD2511F53u * c0[l];
            uint64_t p1 = (uint64_t)0xCD9E8D57u * c2[l];
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[l] ^ k0;
            uint32_t n1 = (uint32_t)p1;
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[l] ^ k1;
            uint32_t n3 = (uint32_t)p0;
            c0[l] = n0; c1[l] = n1; c2[l] = n2; c3[l] = n3;
        }
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    for (int l = 0; l < RNG_LANES; l++) {
        u[4 * l + 0] = (float)(c0[l] >> 8) * (1.0f / 16777216.0f);
        u[4 * l + 1] = (float)(c1[l] >> 8) * (1.0f / 16777216.0f);
        u[4 * l + 2] = (float)(c2[l] >> 8) * (1.0f / 16777216.0f);
        u[4 * l + 3] = (float)(c3[l] >> 8) * (1.0f / 16777216.0f);
    }
}

/* ---- kernels, one family per file ---- */
/* Tensors are contiguous f32 unless a leading dimension says otherwise;
 * a pointer documented as optional is NULL when its tensor is absent. */

/* cpu.c: y (n) = act(x) (y == x allowed) */
int cpu_act_forward(void *ctx, mltk_act act, float alpha, float *y, const float *x,
                    int64_t n);

/* cpu_conv.c: NCHW, shapes as mltk_conv2d_desc states them; b, db
 * optional; ws holds cpu_conv2d_workspace(d) bytes (NULL when 0).  A
 * shape beyond OpenBLAS's int dimensions is MLTK_ERR_UNSUPPORTED. */
size_t cpu_conv2d_workspace(void *ctx, const mltk_conv2d_desc *d);
int cpu_conv2d_forward(void *ctx, float *y, const float *x, const float *w,
                       const float *b, const mltk_conv2d_desc *d, mltk_act act,
                       float alpha, void *ws, char **err);
int cpu_conv2d_backward_data(void *ctx, float *dx, const float *dy, const float *w,
                             const mltk_conv2d_desc *d, void *ws, char **err);
int cpu_conv2d_backward_filter(void *ctx, float *dw, float *db, const float *dy,
                               const float *x, const mltk_conv2d_desc *d, void *ws,
                               char **err);
int cpu_pool2d_forward(void *ctx, mltk_pool kind, float *y, const float *x,
                       const mltk_pool2d_desc *d);
int cpu_pool2d_backward(void *ctx, mltk_pool kind, float *dx, const float *dy,
                        const float *x, const float *y, const mltk_pool2d_desc *d);

/* cpu_norm.c: x (N, C, L) per channel; gamma, beta, the running
 * statistics, dx, dgamma, dbeta optional */
int cpu_batchnorm_forward_train(void *ctx, float *y, const float *x, const float *gamma,
                                const float *beta, float *save_mean, float *save_invstd,
                                float *running_mean, float *running_var, int64_t N,
                                int64_t C, int64_t L, float momentum, float eps,
                                char **err);
int cpu_batchnorm_forward_eval(void *ctx, float *y, const float *x, const float *gamma,
                               const float *beta, const float *running_mean,
                               const float *running_var, int64_t N, int64_t C, int64_t L,
                               float eps);
int cpu_batchnorm_backward(void *ctx, float *dx, float *dgamma, float *dbeta,
                           const float *dy, const float *x, const float *gamma,
                           const float *save_mean, const float *save_invstd, int64_t N,
                           int64_t C, int64_t L);
/* x (rows, cols); mean, rstd (rows); gamma, beta (cols) */
int cpu_layernorm_forward(void *ctx, float *y, const float *x, const float *gamma,
                          const float *beta, float *mean, float *rstd, int64_t rows,
                          int64_t cols, float eps);
int cpu_layernorm_backward(void *ctx, float *dx, float *dgamma, float *dbeta,
                           const float *dy, const float *x, const float *gamma,
                           const float *mean, const float *rstd, int64_t rows,
                           int64_t cols);
int cpu_dropout_forward(void *ctx, float *y, float *mask, const float *x, int64_t n,
                        float p, uint64_t seed, uint64_t offset);
int cpu_softmax_forward(void *ctx, float *y, const float *x, int64_t rows, int64_t cols);
int cpu_softmax_backward(void *ctx, float *dx, const float *dy, const float *y,
                         int64_t rows, int64_t cols);

/* cpu_misc.c */
/* dst (rows, dst_ld) [:, :cols] = src (rows, src_ld) [:, :cols] (+= when
 * accumulate) */
int cpu_copy_2d(void *ctx, float *dst, int64_t dst_ld, const float *src, int64_t src_ld,
                int64_t rows, int64_t cols, int accumulate);
/* ids (n) -> y (n, dim) = table (vocab, dim) [ids]; an id that is not an
 * integer in [0, vocab) is MLTK_ERR_DATA, found before anything is written */
int cpu_embedding_forward(void *ctx, float *y, const float *table, const float *ids,
                          int64_t n, int64_t dim, int64_t vocab, char **err);
int cpu_embedding_backward(void *ctx, float *dtable, const float *dy, const float *ids,
                           int64_t n, int64_t dim, int64_t vocab, char **err);
/* logits (N, C), labels (N) in [0, C) (the core's guarantee, not checked
 * here), weights (C) optional */
int cpu_softmax_xent_ex(void *ctx, float *loss, float *dlogits, const float *logits,
                        const int32_t *labels, const float *weights, int64_t N, int64_t C,
                        float label_smoothing, float grad_scale);
/* logits (N, C) against probabilities t (N, C), weights (C) optional */
int cpu_softmax_xent_soft(void *ctx, float *loss, float *dlogits, const float *logits,
                          const float *t, const float *weights, int64_t N, int64_t C,
                          float label_smoothing, float grad_scale);
int cpu_pointwise_loss(void *ctx, int kind, float *loss, float *dpred, const float *pred,
                       const float *target, int64_t n, float grad_scale);
int cpu_kl_div_logits(void *ctx, float *loss, float *dstudent, const float *student,
                      const float *teacher, int64_t N, int64_t C, float T,
                      float grad_scale);
/* y (rows, C, H, W) from x (M, C, H, W) [idx]; an index outside [0, M) is
 * MLTK_ERR_INVALID, found before anything is written */
int cpu_gather_augment_2d(void *ctx, float *y, const float *x, const int32_t *idx,
                          int64_t rows, int64_t M, int64_t C, int64_t H, int64_t W,
                          int64_t pad, int flip, uint64_t seed, uint64_t offset,
                          char **err);

/* cpu_optim.c: flat buffers of n; mom, gavg, lr_scale optional */
int cpu_scale_to_norm(void *ctx, float *x, int64_t n, const float *sumsq, float max_norm);
int cpu_clamp(void *ctx, float *x, int64_t n, float lo, float hi);
int cpu_rmsprop_step(void *ctx, float *p, const float *g, float *sq, float *mom,
                     float *gavg, int64_t n, float lr, float alpha, float eps,
                     float weight_decay, float momentum, int centered,
                     const float *lr_scale);
/* seg_off (n_seg + 1) host memory; scratch (2 n_seg) */
int cpu_lamb_step(void *ctx, float *p, const float *g, float *m, float *v, int64_t n,
                  float lr, float beta1, float beta2, float eps, float weight_decay,
                  int64_t t, const int64_t *seg_off, int n_seg, float *scratch,
                  const float *lr_scale);

#endif /* MLTK_CPU_INTERNAL_H */
