/* resample.c - crop-and-resize (PIL's antialiased bilinear) and bilinear
 * point sampling of (C, H, W) images; see resample.h.
 *
 * The resize follows PIL's Resample.c: for each output index xx of an
 * axis resized from `in` to `out` samples, scale = in / out, filterscale =
 * max(scale, 1), support = filterscale (the triangle's support is 1),
 * centre = (xx + 0.5) * scale, the taps are the input indices
 * [int(centre - support + 0.5), int(centre + support + 0.5)) clipped to
 * [0, in), with weights tri((x - centre + 0.5) / filterscale) normalised
 * to sum 1.  Bytes round the weights to 22 fraction bits and each pass's
 * sums to a byte, as PIL does.
 *
 * What this is not: thread-unsafe -- nothing here keeps state; scratch
 * lives on the stack, or on the heap for large boxes.
 */
#include "resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)

/* Scratch served from the stack up to this many bytes. */
#define STACK_SCRATCH 32768

typedef struct axis {
    int64_t ksize;   /* taps per output index (stride of k) */
    int64_t *lo;     /* (out) first input index */
    int64_t *n;      /* (out) taps used */
    double  *k;      /* (out, ksize) weights */
} axis;

static int64_t axis_ksize(int64_t in, int64_t out)
{
    double fs = (double)in / (double)out;

    if (fs < 1.0)
        fs = 1.0;
    return (int64_t)ceil(fs) * 2 + 1;
}

static double tri(double x)
{
    if (x < 0.0)
        x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Fill a (its arrays already placed) for an axis of `in` -> `out`. */
static void axis_fill(axis *a, int64_t in, int64_t out)
{
    double scale = (double)in / (double)out;
    double fs = scale < 1.0 ? 1.0 : scale;
    double support = fs, ss = 1.0 / fs;

    for (int64_t xx = 0; xx < out; xx++) {
        double centre = ((double)xx + 0.5) * scale, ww = 0.0;
        int64_t xmin = (int64_t)(centre - support + 0.5);
        int64_t xmax = (int64_t)(centre + support + 0.5);
        double *k = a->k + xx * a->ksize;

        if (xmin < 0)
            xmin = 0;
        if (xmax > in)
            xmax = in;
        xmax -= xmin;
        for (int64_t x = 0; x < xmax; x++) {
            double v = tri(((double)(x + xmin) - centre + 0.5) * ss);
            k[x] = v;
            ww += v;
        }
        for (int64_t x = 0; x < xmax; x++)
            if (ww != 0.0)
                k[x] /= ww;
        for (int64_t x = xmax; x < a->ksize; x++)
            k[x] = 0.0;
        a->lo[xx] = xmin;
        a->n[xx] = xmax;
    }
}

/* Make every window of a exactly ksize taps long (ksize <= in): a window
 * cut by the end of the axis moves left, its weights right, the new taps
 * weighing 0.  The sums stay exactly the same for finite integer data;
 * loops then run a fixed number of taps. */
static void axis_align(axis *a, int64_t in, int64_t out)
{
    for (int64_t xx = 0; xx < out; xx++) {
        double *k = a->k + xx * a->ksize;
        int64_t shift = a->lo[xx] + a->ksize - in;
        if (shift > 0) {
            for (int64_t x = a->ksize - 1; x >= shift; x--)
                k[x] = k[x - shift];
            for (int64_t x = 0; x < shift; x++)
                k[x] = 0.0;
            a->lo[xx] -= shift;
        }
        a->n[xx] = a->ksize;
    }
}

static int32_t fixed(double v)
{
    return (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS)
                           : 0.5 + v * (1 << PRECISION_BITS));
}

static uint8_t clip8(int32_t v)
{
    v >>= PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Bytes needed by an axis of out indices and ksize taps (+ int weights). */
static size_t axis_bytes(int64_t out, int64_t ksize, int with_int)
{
    size_t b = (size_t)out * 2 * sizeof(int64_t) + (size_t)(out * ksize) * sizeof(double);
    if (with_int)
        b += (size_t)(out * ksize) * sizeof(int32_t);
    return b;
}

/* Place an axis's arrays at *p (8-byte aligned) and advance *p. */
static void axis_place(axis *a, unsigned char **p, int64_t out, int64_t ksize,
                       int32_t **ki)
{
    a->ksize = ksize;
    a->lo = (int64_t *)(void *)*p;
    *p += (size_t)out * sizeof(int64_t);
    a->n = (int64_t *)(void *)*p;
    *p += (size_t)out * sizeof(int64_t);
    a->k = (double *)(void *)*p;
    *p += (size_t)(out * ksize) * sizeof(double);
    if (ki) {
        *ki = (int32_t *)(void *)*p;
        *p += (size_t)(out * ksize) * sizeof(int32_t);
        *p += (8 - ((uintptr_t)*p & 7)) & 7;
    }
}

static int box_ok(int64_t oh, int64_t ow, int64_t c, int64_t h, int64_t w,
                  int64_t x0, int64_t y0, int64_t cw, int64_t ch)
{
    return oh >= 1 && ow >= 1 && c >= 1 && cw >= 1 && ch >= 1 && x0 >= 0
           && y0 >= 0 && x0 <= w - cw && y0 <= h - ch && oh <= (1 << 20)
           && ow <= (1 << 20) && cw <= (1 << 20) && ch <= (1 << 20);
}

int tf_resize_u8(uint8_t *dst, int64_t oh, int64_t ow,
                 const uint8_t *src, int64_t c, int64_t h, int64_t w,
                 int64_t x0, int64_t y0, int64_t cw, int64_t ch)
{
    double stack[STACK_SCRATCH / sizeof(double)];
    unsigned char *base, *p;
    axis ax, ay;
    int32_t *kx = NULL, *ky = NULL, *acc = NULL;
    int need_h, need_v;
    int64_t ksx, ksy, yfirst = 0, rows;
    size_t bytes;

    if (!box_ok(oh, ow, c, h, w, x0, y0, cw, ch))
        return -1;
    need_h = ow != cw;
    need_v = oh != ch;
    if (!need_h && !need_v) {
        for (int64_t k = 0; k < c; k++)
            for (int64_t y = 0; y < oh; y++)
                memcpy(dst + (k * oh + y) * ow, src + (k * h + y0 + y) * w + x0,
                       (size_t)ow);
        return 0;
    }
    ksx = axis_ksize(cw, ow);
    ksy = axis_ksize(ch, oh);
    bytes = 64;
    if (need_h)
        bytes += axis_bytes(ow, ksx, 1) + 8;
    if (need_v)
        bytes += axis_bytes(oh, ksy, 1) + 8 + (size_t)ow * sizeof(int32_t);
    rows = ch;
    if (need_h && need_v)
        bytes += (size_t)(c * ch * ow);  /* the intermediate image, at most */
    base = bytes <= sizeof(stack) ? (unsigned char *)stack : malloc(bytes);
    if (!base)
        return -1;
    p = base;
    if (need_v) {
        axis_place(&ay, &p, oh, ksy, &ky);
        axis_fill(&ay, ch, oh);
        if (ksy <= ch)
            axis_align(&ay, ch, oh);
        for (int64_t i = 0; i < oh * ksy; i++)
            ky[i] = fixed(ay.k[i]);
        acc = (int32_t *)(void *)p;
        p += (size_t)ow * sizeof(int32_t);
        p += (8 - ((uintptr_t)p & 7)) & 7;
        yfirst = ay.lo[0];
        rows = ay.lo[oh - 1] + ay.n[oh - 1] - yfirst;
    }
    if (need_h) {
        axis_place(&ax, &p, ow, ksx, &kx);
        axis_fill(&ax, cw, ow);
        if (ksx <= cw)
            axis_align(&ax, cw, ow);
        for (int64_t i = 0; i < ow * ksx; i++)
            kx[i] = fixed(ax.k[i]);
    }
    /* the horizontal pass: tmp (c, rows, ow) = the rows [yfirst, yfirst+rows)
     * of the box resized, straight into dst when there is no vertical pass;
     * every channel at once, so that the taps are read once */
    if (need_h) {
        uint8_t *t = need_v ? p : dst;
        int64_t tplane = need_v ? rows * ow : oh * ow;
        for (int64_t y = 0; y < rows; y++) {
            const uint8_t *in = src + (y0 + yfirst + y) * w + x0;
            uint8_t *o = t + y * ow;
            if (ksx == 3 && ksx <= cw && c == 3) {
                /* upscaling RGB: three taps everywhere (axis_align) */
                for (int64_t xx = 0; xx < ow; xx++) {
                    const uint8_t *q = in + ax.lo[xx];
                    int32_t k0 = kx[3 * xx], k1 = kx[3 * xx + 1], k2 = kx[3 * xx + 2];
                    for (int64_t k = 0; k < 3; k++, q += h * w)
                        o[k * tplane + xx] = clip8((1 << (PRECISION_BITS - 1)) + q[0] * k0
                                                   + q[1] * k1 + q[2] * k2);
                }
                continue;
            }
            for (int64_t k = 0; k < c; k++)
                for (int64_t xx = 0; xx < ow; xx++) {
                    const uint8_t *q = in + k * h * w + ax.lo[xx];
                    const int32_t *kk = kx + xx * ksx;
                    int32_t ss = 1 << (PRECISION_BITS - 1);
                    for (int64_t x = 0; x < ax.n[xx]; x++)
                        ss += q[x] * kk[x];
                    o[k * tplane + xx] = clip8(ss);
                }
        }
        if (!need_v)
            goto done;
    }
    /* the vertical pass, from tmp (or the box itself) */
    for (int64_t k = 0; k < c; k++) {
        const uint8_t *tmp = need_h ? p + k * rows * ow : src + (k * h + y0 + yfirst) * w + x0;
        int64_t tstride = need_h ? ow : w;
        for (int64_t yy = 0; yy < oh; yy++) {
            const int32_t *kk = ky + yy * ksy;
            const uint8_t *q = tmp + (ay.lo[yy] - yfirst) * tstride;
            uint8_t *o = dst + (k * oh + yy) * ow;
            int64_t n = ay.n[yy];
            /* whole rows at a time, so that the compiler vectorises */
            for (int64_t xx = 0; xx < ow; xx++)
                acc[xx] = 1 << (PRECISION_BITS - 1);
            for (int64_t y = 0; y < n; y++) {
                const uint8_t *r = q + y * tstride;
                int32_t wy = kk[y];
                for (int64_t xx = 0; xx < ow; xx++)
                    acc[xx] += r[xx] * wy;
            }
            for (int64_t xx = 0; xx < ow; xx++)
                o[xx] = clip8(acc[xx]);
        }
    }
done:
    if (base != (unsigned char *)stack)
        free(base);
    return 0;
}

int tf_resize_f32(float *dst, int64_t oh, int64_t ow,
                  const float *src, int64_t c, int64_t h, int64_t w,
                  int64_t x0, int64_t y0, int64_t cw, int64_t ch)
{
    double stack[STACK_SCRATCH / sizeof(double)];
    unsigned char *base, *p;
    axis ax, ay;
    double *acc = NULL;
    int need_h, need_v;
    int64_t ksx, ksy, yfirst = 0, rows;
    size_t bytes;

    if (!box_ok(oh, ow, c, h, w, x0, y0, cw, ch))
        return -1;
    need_h = ow != cw;
    need_v = oh != ch;
    if (!need_h && !need_v) {
        for (int64_t k = 0; k < c; k++)
            for (int64_t y = 0; y < oh; y++)
                memcpy(dst + (k * oh + y) * ow, src + (k * h + y0 + y) * w + x0,
                       (size_t)ow * sizeof(float));
        return 0;
    }
    ksx = axis_ksize(cw, ow);
    ksy = axis_ksize(ch, oh);
    bytes = 64;
    if (need_h)
        bytes += axis_bytes(ow, ksx, 0);
    if (need_v)
        bytes += axis_bytes(oh, ksy, 0) + (size_t)ow * sizeof(double);
    rows = ch;
    if (need_h && need_v)
        bytes += (size_t)(c * ch * ow) * sizeof(float);
    base = bytes <= sizeof(stack) ? (unsigned char *)stack : malloc(bytes);
    if (!base)
        return -1;
    p = base;
    if (need_v) {
        axis_place(&ay, &p, oh, ksy, NULL);
        axis_fill(&ay, ch, oh);
        acc = (double *)(void *)p;
        p += (size_t)ow * sizeof(double);
        yfirst = ay.lo[0];
        rows = ay.lo[oh - 1] + ay.n[oh - 1] - yfirst;
    }
    if (need_h) {
        axis_place(&ax, &p, ow, ksx, NULL);
        axis_fill(&ax, cw, ow);
    }
    for (int64_t k = 0; k < c; k++) {
        const float *tmp;
        int64_t tstride;

        if (need_h) {
            float *t = need_v ? (float *)(void *)p : dst + k * oh * ow;
            for (int64_t y = 0; y < rows; y++) {
                const float *in = src + (k * h + y0 + yfirst + y) * w + x0;
                float *o = t + y * ow;
                for (int64_t xx = 0; xx < ow; xx++) {
                    const float *q = in + ax.lo[xx];
                    const double *kk = ax.k + xx * ksx;
                    double ss = 0.0;
                    for (int64_t x = 0; x < ax.n[xx]; x++)
                        ss += q[x] * kk[x];
                    o[xx] = (float)ss;
                }
            }
            if (!need_v)
                continue;
            tmp = t;
            tstride = ow;
        } else {
            tmp = src + (k * h + y0 + yfirst) * w + x0;
            tstride = w;
        }
        for (int64_t yy = 0; yy < oh; yy++) {
            const double *kk = ay.k + yy * ksy;
            const float *q = tmp + (ay.lo[yy] - yfirst) * tstride;
            float *o = dst + (k * oh + yy) * ow;
            int64_t n = ay.n[yy];
            for (int64_t xx = 0; xx < ow; xx++)
                acc[xx] = 0.0;
            for (int64_t y = 0; y < n; y++) {
                const float *r = q + y * tstride;
                double wy = kk[y];
                for (int64_t xx = 0; xx < ow; xx++)
                    acc[xx] += r[xx] * wy;
            }
            for (int64_t xx = 0; xx < ow; xx++)
                o[xx] = (float)acc[xx];
        }
    }
    if (base != (unsigned char *)stack)
        free(base);
    return 0;
}

/* The four taps and weights of the point (x, y); 0 when outside. */
static int bilinear_taps(int64_t h, int64_t w, double x, double y, int64_t *x0,
                         int64_t *x1, int64_t *y0, int64_t *y1, double *dx,
                         double *dy)
{
    double fx, fy;

    if (!(x >= 0.0 && x < (double)w && y >= 0.0 && y < (double)h))
        return 0;
    x -= 0.5;
    y -= 0.5;
    fx = floor(x);
    fy = floor(y);
    *dx = x - fx;
    *dy = y - fy;
    *x0 = (int64_t)fx;
    *y0 = (int64_t)fy;
    *x1 = *x0 + 1;
    *y1 = *y0 + 1;
    if (*x0 < 0)
        *x0 = 0;
    if (*x1 > w - 1)
        *x1 = w - 1;
    if (*y0 < 0)
        *y0 = 0;
    if (*y1 > h - 1)
        *y1 = h - 1;
    return 1;
}

void tf_sample_bilinear_u8(uint8_t *out, const uint8_t *src, int64_t c,
                           int64_t h, int64_t w, double x, double y, uint8_t fill)
{
    int64_t x0, x1, y0, y1;
    double dx, dy;

    if (!bilinear_taps(h, w, x, y, &x0, &x1, &y0, &y1, &dx, &dy)) {
        for (int64_t k = 0; k < c; k++)
            out[k] = fill;
        return;
    }
    for (int64_t k = 0; k < c; k++) {
        const uint8_t *p = src + k * h * w;
        double a = p[y0 * w + x0] + (p[y0 * w + x1] - p[y0 * w + x0]) * dx;
        double b = p[y1 * w + x0] + (p[y1 * w + x1] - p[y1 * w + x0]) * dx;
        double v = a + (b - a) * dy;
        out[k] = (uint8_t)(v < 0 ? 0 : v >= 255 ? 255 : v);
    }
}

void tf_sample_bilinear_f32(float *out, const float *src, int64_t c,
                            int64_t h, int64_t w, double x, double y, float fill)
{
    int64_t x0, x1, y0, y1;
    double dx, dy;

    if (!bilinear_taps(h, w, x, y, &x0, &x1, &y0, &y1, &dx, &dy)) {
        for (int64_t k = 0; k < c; k++)
            out[k] = fill;
        return;
    }
    for (int64_t k = 0; k < c; k++) {
        const float *p = src + k * h * w;
        double a = p[y0 * w + x0] + ((double)p[y0 * w + x1] - p[y0 * w + x0]) * dx;
        double b = p[y1 * w + x0] + ((double)p[y1 * w + x1] - p[y1 * w + x0]) * dx;
        out[k] = (float)(a + (b - a) * dy);
    }
}
