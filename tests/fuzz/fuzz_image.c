/* fuzz_image.c - a libFuzzer harness for the imagefolder decoder
 * (datasets/image.c).
 *
 * What this is: each input is decoded from memory with image_header() and
 * with image_decode() to 1 and to 3 channels (the JPEG or the PNG path,
 * chosen by the magic bytes, as for a file of any name); the seed corpus
 * holds small JPEG files (grey, RGB, CMYK, progressive) and PNG files
 * (grey, RGB, palette, alpha, 16-bit, interlaced) and cut or damaged
 * copies.  A rejection must be MLTK_ERR_DATA (or MLTK_ERR_NOMEM) with a
 * message that starts with the name; an accepted image must have the size
 * its header gave, within IMAGE_MAX_PIXELS, and every pixel is read; the
 * grey decode must equal PIL's L of the RGB decode, and a decoded image
 * is also resized and center-cropped as the data set would.  Inputs whose
 * header declares more than 2^20 pixels are only header-checked.
 * What this is not: a test of the folder rules (tests/check_image.c).
 */
#include "config.h"

#include <mltk/mltk.h>

#include "image.h"
#include "resample.h"
#include "fuzz.h"

#define NAME "fuzz_image"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    image_buf g, c;
    char *err = NULL;
    int w = -1, h = -1;
    int hrc = image_header("in.img", data, size, &w, &h, &err);

    if (hrc) {
        fuzz_check(hrc == MLTK_ERR_DATA, NAME, "a header rejection that is not MLTK_ERR_DATA");
        fuzz_check(fuzz_names(err, "in.img"), NAME, "a message that does not start with the name");
        free(err);
        err = NULL;
    } else {
        fuzz_check(!err, NAME, "a header accepted with a message");
        fuzz_check(w >= 1 && h >= 1 && (int64_t)w * h <= IMAGE_MAX_PIXELS, NAME,
                   "a header size out of range");
        /* a few bytes that declare a huge image cost hundreds of megabytes
         * of buffers (libjpeg's progressive coefficients): the decoders'
         * own fuzzers stop there too */
        if ((int64_t)w * h > ((int64_t)1 << 20))
            return 0;
    }
    int rc1 = image_decode("in.img", data, size, 1, &g, &err);
    if (rc1) {
        fuzz_check(!g.px, NAME, "a rejection that keeps pixels");
        fuzz_check(rc1 == MLTK_ERR_DATA || rc1 == MLTK_ERR_NOMEM, NAME,
                   "a rejection that is not MLTK_ERR_DATA or MLTK_ERR_NOMEM");
        fuzz_check(fuzz_names(err, "in.img"), NAME, "a message that does not start with the name");
        free(err);
        err = NULL;
    }
    int rc3 = image_decode("in.img", data, size, 3, &c, &err);
    if (rc3) {
        fuzz_check(!c.px, NAME, "a rejection that keeps pixels");
        fuzz_check(rc3 == MLTK_ERR_DATA || rc3 == MLTK_ERR_NOMEM, NAME,
                   "a rejection that is not MLTK_ERR_DATA or MLTK_ERR_NOMEM");
        fuzz_check(fuzz_names(err, "in.img"), NAME, "a message that does not start with the name");
        free(err);
        err = NULL;
    }
    fuzz_check((rc1 == 0) == (rc3 == 0) || rc1 == MLTK_ERR_NOMEM || rc3 == MLTK_ERR_NOMEM,
               NAME, "grey and RGB decodes disagree on whether the image is good");
    if (!rc1 || !rc3)
        fuzz_check(!hrc, NAME, "an image decoded whose header was refused");
    if (!rc3) {
        fuzz_check(c.w == w && c.h == h && c.c == 3 && c.px, NAME,
                   "an RGB image whose size is not its header's");
        if (!rc1) {
            fuzz_check(g.w == w && g.h == h && g.c == 1 && g.px, NAME,
                       "a grey image whose size is not its header's");
            for (int64_t i = 0; i < (int64_t)w * h; i++) {
                const uint8_t *p = c.px + 3 * i;
                uint8_t l = (uint8_t)(((uint32_t)p[0] * 19595 + (uint32_t)p[1] * 38470 +
                                       (uint32_t)p[2] * 7471 + 0x8000) >> 16);
                fuzz_check(g.px[i] == l, NAME, "a grey pixel that is not L of the RGB pixel");
            }
        }
        /* the data set's path: planar, resized (shorter side 8), cropped to 6 */
        uint8_t *planar = malloc((size_t)w * h * 3);
        fuzz_check(planar != NULL, NAME, "out of memory");
        image_planar(&c, planar);
        int dw, dh;
        image_resize_size(w, h, 8, &dw, &dh);
        if (dw >= 1 && dh >= 1 && (int64_t)dw * dh <= 1 << 16) {
            uint8_t *r = malloc((size_t)dw * dh * 3), out[3 * 6 * 6];
            fuzz_check(r != NULL, NAME, "out of memory");
            fuzz_check(tf_resize_u8(r, dh, dw, planar, 3, h, w, 0, 0, w, h) == 0, NAME,
                       "the resize refused a whole image");
            image_crop_chw(r, dw, dh, 3, out, 6, 6);
            volatile unsigned sum = 0;
            for (int i = 0; i < 3 * 36; i++)
                sum += out[i];
            (void)sum;
            free(r);
        }
        free(planar);
    }
    free(g.px);
    free(c.px);
    return 0;
}
