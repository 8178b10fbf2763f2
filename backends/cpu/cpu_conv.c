/* cpu_conv.c - ABI 1.1 ops of the cpu backend (being written). */
#include "config.h"
#include "cpu_internal.h"

size_t cpu_conv2d_workspace(void *ctx, const mltk_conv2d_desc *d)
{
    return 0;
}

int cpu_conv2d_forward(void *ctx, float *y, const float *x, const float *w,
                       const float *b, const mltk_conv2d_desc *d, mltk_act act,
                       float alpha, void *ws)
{
    return MLTK_ERR_UNSUPPORTED;
}

int cpu_conv2d_backward_data(void *ctx, float *dx, const float *dy, const float *w,
                             const mltk_conv2d_desc *d, void *ws)
{
    return MLTK_ERR_UNSUPPORTED;
}

int cpu_conv2d_backward_filter(void *ctx, float *dw, float *db, const float *dy,
                               const float *x, const mltk_conv2d_desc *d, void *ws)
{
    return MLTK_ERR_UNSUPPORTED;
}

int cpu_pool2d_forward(void *ctx, mltk_pool kind, float *y, const float *x,
                       const mltk_pool2d_desc *d)
{
    return MLTK_ERR_UNSUPPORTED;
}

int cpu_pool2d_backward(void *ctx, mltk_pool kind, float *dx, const float *dy,
                        const float *x, const float *y, const mltk_pool2d_desc *d)
{
    return MLTK_ERR_UNSUPPORTED;
}

