/* cpu_misc.c - ABI 1.1 ops of the cpu backend (being written). */
#include "config.h"
#include "cpu_internal.h"

int cpu_copy_2d(void *ctx, float *dst, int64_t dst_ld, const float *src, int64_t src_ld,
                int64_t rows, int64_t cols, int accumulate)
{
    return MLTK_ERR_UNSUPPORTED;
}

int cpu_embedding_forward(void *ctx, float *y, const float *table, const float *ids,
                          int64_t n, int64_t dim, int64_t vocab)
{
    return MLTK_ERR_UNSUPPORTED;
}

int cpu_embedding_backward(void *ctx, float *dtable, const float *dy, const float *ids,
                           int64_t n, int64_t dim, int64_t vocab)
{
    return MLTK_ERR_UNSUPPORTED;
}

int cpu_softmax_xent_ex(void *ctx, float *loss, float *dlogits, const float *logits,
                        const int32_t *labels, const float *weights, int64_t N, int64_t C,
                        float label_smoothing, float grad_scale)
{
    return MLTK_ERR_UNSUPPORTED;
}

int cpu_pointwise_loss(void *ctx, int kind, float *loss, float *dpred, const float *pred,
                       const float *target, int64_t n, float grad_scale)
{
    return MLTK_ERR_UNSUPPORTED;
}

int cpu_kl_div_logits(void *ctx, float *loss, float *dstudent, const float *student,
                      const float *teacher, int64_t N, int64_t C, float T,
                      float grad_scale)
{
    return MLTK_ERR_UNSUPPORTED;
}

