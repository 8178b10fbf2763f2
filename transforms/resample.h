/* resample.h - crop-and-resize and bilinear point sampling of images.
 *
 * What this is: the image resampling the transform and image data set
 * plugins share, on (C, H, W) images of unsigned bytes or float32 (C any
 * size, planes contiguous).  Compiled into each plugin that needs it
 * (static functions are not exported from a plugin, these are plain
 * functions with a tf_ prefix and hidden visibility).
 *
 * tf_resize_*: crop the box (x0, y0, cw, ch) of the source, then resize it
 * to (oh, ow) with PIL's antialiased bilinear filter, as
 * PIL's Image.crop(box).resize((ow, oh), Image.BILINEAR) does (and so
 * torchvision's Resize / RandomResizedCrop on PIL images): a triangle
 * filter whose support is scaled by the downscale factor when shrinking,
 * separable, the horizontal pass first.  The filter never reads outside
 * the crop box (as after a crop).  Bytes use PIL's fixed-point arithmetic
 * (22 fraction bits, an intermediate image of bytes), so results equal
 * PIL's; float32 uses double weights as PIL's mode "F".
 *
 * tf_sample_bilinear_*: one output pixel from the point (x, y) in pixel
 * coordinates (pixel (i, j) covers [j, j+1) x [i, i+1), its centre is
 * (j + 0.5, i + 0.5)), plain (not antialiased) bilinear interpolation
 * with the edge pixels repeated half a pixel outwards, as PIL's
 * Image.transform / rotate with BILINEAR; a point outside [0, W) x [0, H)
 * gets `fill`.  Bytes are truncated to an integer as PIL does.
 *
 * What this is not: a general image library (no other filters, no
 * colour conversion).
 */
#ifndef MLTK_TRANSFORMS_RESAMPLE_H
#define MLTK_TRANSFORMS_RESAMPLE_H

#include <stdint.h>

#if defined(__GNUC__)
#define TF_HIDDEN __attribute__((visibility("hidden")))
#else
#define TF_HIDDEN
#endif

/* dst (c, oh, ow) = the box [x0, x0+cw) x [y0, y0+ch) of src (c, h, w)
 * resized.  Requires 0 <= x0, 0 <= y0, x0 + cw <= w, y0 + ch <= h, all
 * sizes >= 1.  Returns 0, or -1 when the box does not fit or memory runs
 * out (a box larger than the stack scratch is served from the heap). */
TF_HIDDEN int tf_resize_u8(uint8_t *dst, int64_t oh, int64_t ow,
                           const uint8_t *src, int64_t c, int64_t h, int64_t w,
                           int64_t x0, int64_t y0, int64_t cw, int64_t ch);
TF_HIDDEN int tf_resize_f32(float *dst, int64_t oh, int64_t ow,
                            const float *src, int64_t c, int64_t h, int64_t w,
                            int64_t x0, int64_t y0, int64_t cw, int64_t ch);

/* out[k] (k < c, one value per channel) = src (c, h, w) at the point
 * (x, y), or fill outside the image.  Bytes are truncated, as PIL's. */
TF_HIDDEN void tf_sample_bilinear_u8(uint8_t *out, const uint8_t *src, int64_t c,
                                     int64_t h, int64_t w, double x, double y,
                                     uint8_t fill);
TF_HIDDEN void tf_sample_bilinear_f32(float *out, const float *src, int64_t c,
                                      int64_t h, int64_t w, double x, double y,
                                      float fill);

#endif /* MLTK_TRANSFORMS_RESAMPLE_H */
