/* cpu_optim.c - ABI 1.1 ops of the cpu backend (being written). */
#include "config.h"
#include "cpu_internal.h"

int cpu_scale_to_norm(void *ctx, float *x, int64_t n, const float *sumsq, float max_norm)
{
    return MLTK_ERR_UNSUPPORTED;
}

int cpu_clamp(void *ctx, float *x, int64_t n, float lo, float hi)
{
    return MLTK_ERR_UNSUPPORTED;
}

int cpu_rmsprop_step(void *ctx, float *p, const float *g, float *sq, float *mom,
                     float *gavg, int64_t n, float lr, float alpha, float eps,
                     float weight_decay, float momentum, int centered,
                     const float *lr_scale)
{
    return MLTK_ERR_UNSUPPORTED;
}

int cpu_lamb_step(void *ctx, float *p, const float *g, float *m, float *v, int64_t n,
                  float lr, float beta1, float beta2, float eps, float weight_decay,
                  int64_t t, const int64_t *seg_off, int n_seg, float *scratch,
                  const float *lr_scale)
{
    return MLTK_ERR_UNSUPPORTED;
}

