/* cpu_norm.c - ABI 1.1 ops of the cpu backend (being written). */
#include "config.h"
#include "cpu_internal.h"

int cpu_batchnorm_forward_train(void *ctx, float *y, const float *x, const float *gamma,
                                const float *beta, float *save_mean, float *save_invstd,
                                float *running_mean, float *running_var, int64_t N,
                                int64_t C, int64_t L, float momentum, float eps)
{
    return MLTK_ERR_UNSUPPORTED;
}

int cpu_batchnorm_forward_eval(void *ctx, float *y, const float *x, const float *gamma,
                               const float *beta, const float *running_mean,
                               const float *running_var, int64_t N, int64_t C, int64_t L,
                               float eps)
{
    return MLTK_ERR_UNSUPPORTED;
}

int cpu_batchnorm_backward(void *ctx, float *dx, float *dgamma, float *dbeta,
                           const float *dy, const float *x, const float *gamma,
                           const float *save_mean, const float *save_invstd, int64_t N,
                           int64_t C, int64_t L)
{
    return MLTK_ERR_UNSUPPORTED;
}

int cpu_layernorm_forward(void *ctx, float *y, const float *x, const float *gamma,
                          const float *beta, float *mean, float *rstd, int64_t rows,
                          int64_t cols, float eps)
{
    return MLTK_ERR_UNSUPPORTED;
}

int cpu_layernorm_backward(void *ctx, float *dx, float *dgamma, float *dbeta,
                           const float *dy, const float *x, const float *gamma,
                           const float *mean, const float *rstd, int64_t rows,
                           int64_t cols)
{
    return MLTK_ERR_UNSUPPORTED;
}

int cpu_dropout_forward(void *ctx, float *y, float *mask, const float *x, int64_t n,
                        float p, uint64_t seed, uint64_t offset)
{
    return MLTK_ERR_UNSUPPORTED;
}

int cpu_softmax_forward(void *ctx, float *y, const float *x, int64_t rows, int64_t cols)
{
    return MLTK_ERR_UNSUPPORTED;
}

int cpu_softmax_backward(void *ctx, float *dx, const float *dy, const float *y,
                         int64_t rows, int64_t cols)
{
    return MLTK_ERR_UNSUPPORTED;
}

