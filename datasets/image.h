/* image.h - the JPEG/PNG decoder and the resampling of the imagefolder
 * data set (datasets/image.c), for its Check test and its fuzz harness.
 *
 * What this is: decoding one image held in memory into 8-bit pixels,
 * (h, w, channels) interleaved, converted to grey or RGB as PIL's
 * Image.convert('L') / convert('RGB') does; torchvision's Resize size
 * rule and CenterCrop (the resize itself is transforms/resample.h's).
 * Every function is thread-safe: all decoder state lives on the caller's
 * stack or in what the call allocates.
 * What this is not: an image library (no writing, no other formats).
 */
#ifndef MLTK_DATASETS_IMAGE_H
#define MLTK_DATASETS_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* The largest image decoded: width * height pixels (a 8192 x 8192 photo);
 * a header that declares more is refused before any allocation. */
#define IMAGE_MAX_PIXELS ((int64_t)1 << 26)

/* A decoded image: px (h, w, c), c = 1 or 3; px is malloc()ed. */
typedef struct image_buf {
    int      w, h, c;
    uint8_t *px;
} image_buf;

/* Decode the JPEG or PNG image data[0, size) (chosen by its magic bytes,
 * whatever the file's name) to `channels` (1 or 3) channels.  `name`
 * starts every message.  MLTK_ERR_DATA for an empty, truncated or corrupt
 * file or one that is neither JPEG nor PNG (libjpeg warnings, such as
 * "Premature end of JPEG file", are errors too), MLTK_ERR_NOMEM; out->px
 * is NULL after an error. */
int image_decode(const char *name, const uint8_t *data, size_t size, int channels,
                 image_buf *out, char **err);

/* Read only the header of data[0, size): the image's width and height.
 * The same checks and messages as image_decode up to the pixel data. */
int image_header(const char *name, const uint8_t *data, size_t size, int *w, int *h,
                 char **err);

/* torchvision's Resize(n) output size of a (w, h) image: the shorter side
 * becomes n, the longer int(n * long / short). */
void image_resize_size(int w, int h, int n, int *dw, int *dh);

/* im's pixels planar: dst (c, h, w) from im->px (h, w, c). */
void image_planar(const image_buf *im, uint8_t *dst);

/* torchvision's CenterCrop((ch, cw)) of src (c, sh, sw) into dst (c, ch,
 * cw): the offset round((size - crop) / 2) with Python's rounding
 * (half to even), and zero padding where the crop is larger than the
 * image (left/top (crop - size) / 2). */
void image_crop_chw(const uint8_t *src, int sw, int sh, int c, uint8_t *dst, int cw,
                    int ch);

#endif
