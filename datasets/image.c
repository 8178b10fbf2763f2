/* image.c - the imagefolder data set: a folder of JPEG and PNG images, one
 * subfolder per class, as torchvision's ImageFolder reads it.
 *
 * What this is: a dataset plugin (ABI 2.1: get, label, info with class
 * names; read for a core that still asks for float32) over
 *
 *     ROOT/CLASS/[SUB/...]FILE.jpg|.jpeg|.png
 *
 * The classes are the subfolders of ROOT in byte order (Python's sorted()
 * of the names), class i being label i; the samples of a class are the
 * files under its folder, walked as torchvision does (sorted(os.walk())
 * then sorted file names: ordered by the relative folder, then the name).
 * Names that start with '.' are skipped (files and folders), as are files
 * with other extensions (counted in a debug message).  The training split
 * reads key `path`, the test split key `test_path`; the test split must
 * have the same classes as the training split.
 *
 * Open lists the files (and, with on_error = skip, reads the header of
 * every one of them to leave out those that are not images, counting
 * them in one warning).  get() reads and decodes one file per call, from
 * the loader's threads: all decoder state is on its stack.  Pixels are
 * converted as PIL's convert('L') / convert('RGB') does (libjpeg-turbo's
 * RGB output, then L = (19595 R + 38470 G + 7471 B + 2^15) >> 16; alpha
 * and PNG transparency dropped, palettes expanded, 16-bit samples reduced
 * to their high byte, CMYK JPEGs as PIL's Adobe-inverted CMYK), resized
 * with PIL's antialiased bilinear filter (torchvision's Resize(n) on a PIL
 * image: the shorter side to n) and center-cropped as torchvision's
 * CenterCrop, and returned as u8 (C, H, W) with x_scale 1/255.
 *
 * The resampling is the transform plugins' (transforms/resample.c,
 * compiled in): PIL's 8-bit fixed-point code, so the bytes equal PIL's.
 *
 * The checksum is the SHA-256 of one line per sample, in sample order:
 * "CLASS/RELATIVE/PATH <TAB> SIZE-IN-BYTES <LF>" (the file sizes, not the
 * contents: a checksum of 70,000 files' bytes would read them all twice).
 *
 * What this is not: a general image library (other formats, EXIF
 * orientation and colour profiles are ignored, as PIL's loader ignores
 * them), or a cache of decoded images.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include <mltk/plugin.h>

#include "image.h"
#include "resample.h"
#include "sha256.h"

/* ---- JPEG ----------------------------------------------------------------- */

/* libjpeg's error manager: every error and every warning (a truncated
 * file is only a warning to libjpeg) ends the decode with its message. */
typedef struct jpeg_fail {
    struct jpeg_error_mgr pub;
    jmp_buf               jb;
    char                  msg[JMSG_LENGTH_MAX];
} jpeg_fail;

static void jpeg_fail_exit(j_common_ptr ci)
{
    jpeg_fail *f = (jpeg_fail *)ci->err;

    ci->err->format_message(ci, f->msg);
    longjmp(f->jb, 1);
}

static void jpeg_fail_emit(j_common_ptr ci, int level)
{
    if (level < 0)  /* a warning; levels >= 0 are trace messages */
        jpeg_fail_exit(ci);
}

static void jpeg_fail_output(j_common_ptr ci)
{
    (void)ci;
}

static uint8_t pil_l24(const uint8_t *rgb)
{
    return (uint8_t)(((uint32_t)rgb[0] * 19595 + (uint32_t)rgb[1] * 38470 +
                      (uint32_t)rgb[2] * 7471 + 0x8000) >> 16);
}

/* PIL's MULDIV255 */
static int pil_muldiv255(int a, int b)
{
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

/* One row of decoded pixels (ncomp 1 grey, 3 RGB or 4 CMYK as a JPEG
 * stores it) to `channels`. */
static void convert_row(uint8_t *dst, const uint8_t *src, int w, int ncomp, int channels)
{
    for (int x = 0; x < w; x++) {
        uint8_t rgb[3];
        const uint8_t *p = src + (size_t)x * ncomp;
        if (ncomp == 1) {
            if (channels == 1)
                dst[x] = p[0];
            else
                dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = p[0];
            continue;
        }
        if (ncomp == 4) {
            /* PIL reads CMYK JPEGs as inverted (Adobe) CMYK, then
             * R = (255 - K) - (255 - K) * C / 255 with its rounding */
            int nk = p[3];
            for (int k = 0; k < 3; k++) {
                int v = nk - pil_muldiv255(255 - p[k], nk);
                rgb[k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        } else {
            rgb[0] = p[0];
            rgb[1] = p[1];
            rgb[2] = p[2];
        }
        if (channels == 1) {
            dst[x] = pil_l24(rgb);
        } else {
            dst[3 * x] = rgb[0];
            dst[3 * x + 1] = rgb[1];
            dst[3 * x + 2] = rgb[2];
        }
    }
}

/* Decode (or, with out == NULL, read the header of) a JPEG. */
static int jpeg_decode(const char *name, const uint8_t *data, size_t size, int channels,
                       image_buf *out, int *w, int *h, char **err)
{
    struct jpeg_decompress_struct ci;
    jpeg_fail jf;
    uint8_t *volatile px = NULL;
    uint8_t *volatile row = NULL;
    int rc;

    memset(&ci, 0, sizeof(ci));
    ci.err = jpeg_std_error(&jf.pub);
    jf.pub.error_exit = jpeg_fail_exit;
    jf.pub.emit_message = jpeg_fail_emit;
    jf.pub.output_message = jpeg_fail_output;
    jf.msg[0] = '\0';
    if (setjmp(jf.jb)) {
        /* where the decoder was: the end of the data when it ran out, else
         * the last position libjpeg synchronised (the start of the marker
         * segment or of the entropy-coded data it was reading) */
        size_t at = jf.pub.msg_code == JWRN_JPEG_EOF ? size
                    : ci.src ? size - ci.src->bytes_in_buffer : 0;
        rc = mltk_errf(err, MLTK_ERR_DATA, "%s: corrupt JPEG at byte %zu: %s", name, at,
                       jf.msg[0] ? jf.msg : "unknown error");
        goto out;
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, data, (unsigned long)size);
    jpeg_read_header(&ci, TRUE);
    if ((int64_t)ci.image_width * ci.image_height > IMAGE_MAX_PIXELS) {
        rc = mltk_errf(err, MLTK_ERR_DATA, "%s: a JPEG of %ux%u pixels is larger than "
                       "the %lld pixels an image may have", name, ci.image_width,
                       ci.image_height, (long long)IMAGE_MAX_PIXELS);
        goto out;
    }
    *w = (int)ci.image_width;
    *h = (int)ci.image_height;
    if (!out) {
        rc = MLTK_OK;
        goto out;
    }
    switch (ci.jpeg_color_space) {
    case JCS_GRAYSCALE:
        ci.out_color_space = JCS_GRAYSCALE;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        ci.out_color_space = JCS_CMYK;
        break;
    default:
        ci.out_color_space = JCS_RGB;
        break;
    }
    jpeg_start_decompress(&ci);
    {
        int ncomp = ci.output_components;
        size_t stride = (size_t)ci.output_width * (size_t)channels;
        if (ncomp != 1 && ncomp != 3 && ncomp != 4) {
            rc = mltk_errf(err, MLTK_ERR_DATA, "%s: a JPEG with %d colour components "
                           "is not supported", name, ncomp);
            goto out;
        }
        px = malloc(stride * ci.output_height);
        row = malloc((size_t)ci.output_width * (size_t)ncomp);
        if (!px || !row) {
            rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory for a %ux%u image",
                           name, ci.output_width, ci.output_height);
            goto out;
        }
        while (ci.output_scanline < ci.output_height) {
            JSAMPROW r = row;
            unsigned y = ci.output_scanline;
            if (jpeg_read_scanlines(&ci, &r, 1) != 1) {
                rc = mltk_errf(err, MLTK_ERR_DATA, "%s: corrupt JPEG: row %u cannot be "
                               "decoded", name, y);
                goto out;
            }
            convert_row(px + stride * y, row, (int)ci.output_width, ncomp, channels);
        }
        jpeg_finish_decompress(&ci);
        out->w = (int)ci.output_width;
        out->h = (int)ci.output_height;
        out->c = channels;
        out->px = px;
        px = NULL;
    }
    rc = MLTK_OK;
out:
    jpeg_destroy_decompress(&ci);
    free(px);
    free(row);
    return rc;
}

/* ---- PNG ------------------------------------------------------------------ */

typedef struct png_src {
    const uint8_t *data;
    size_t         size, pos;
    char           msg[256];
} png_src;

static void png_src_read(png_structp png, png_bytep dst, size_t n)
{
    png_src *s = png_get_io_ptr(png);

    if (n > s->size - s->pos) {
        s->pos = s->size;
        png_error(png, "the file ends early");
    }
    memcpy(dst, s->data + s->pos, n);
    s->pos += n;
}

static void png_fail(png_structp png, png_const_charp msg)
{
    png_src *s = png_get_error_ptr(png);

    snprintf(s->msg, sizeof(s->msg), "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

/* libpng's warnings (a bad ancillary chunk, an sRGB profile) do not stop
 * PIL from reading the image, nor us */
static void png_warn(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static int png_decode(const char *name, const uint8_t *data, size_t size, int channels,
                      image_buf *out, int *w, int *h, char **err)
{
    png_src src = { data, size, 0, "" };
    png_structp png;
    png_infop info = NULL;
    uint8_t *volatile px = NULL;
    uint8_t *volatile tmp = NULL;
    png_bytep *volatile rows = NULL;
    int rc;

    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_fail, png_warn);
    if (!png)
        return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory for the PNG decoder", name);
    info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory for the PNG decoder", name);
    }
    if (setjmp(png_jmpbuf(png))) {
        rc = mltk_errf(err, MLTK_ERR_DATA, "%s: corrupt PNG at byte %zu: %s", name,
                       src.pos, src.msg[0] ? src.msg : "unknown error");
        goto out;
    }
    png_set_read_fn(png, &src, png_src_read);
    png_set_user_limits(png, 1u << 20, 1u << 20);
    png_read_info(png, info);
    {
        png_uint_32 pw = png_get_image_width(png, info), ph = png_get_image_height(png, info);
        int ct = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
        int ncomp, passes;
        size_t stride, rowbytes;

        if ((int64_t)pw * ph > IMAGE_MAX_PIXELS) {
            rc = mltk_errf(err, MLTK_ERR_DATA, "%s: a PNG of %ux%u pixels is larger than "
                           "the %lld pixels an image may have", name, (unsigned)pw,
                           (unsigned)ph, (long long)IMAGE_MAX_PIXELS);
            goto out;
        }
        *w = (int)pw;
        *h = (int)ph;
        if (!out) {
            rc = MLTK_OK;
            goto out;
        }
        if (depth == 16)
            png_set_strip_16(png);
        if (ct == PNG_COLOR_TYPE_PALETTE)
            png_set_palette_to_rgb(png);
        if ((ct & PNG_COLOR_MASK_COLOR) == 0 && depth < 8)
            png_set_expand_gray_1_2_4_to_8(png);
        /* (palette expansion would turn tRNS into an alpha channel) */
        if ((ct & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS))
            png_set_strip_alpha(png);
        passes = png_set_interlace_handling(png);
        (void)passes;
        png_read_update_info(png, info);
        ncomp = png_get_channels(png, info);
        rowbytes = png_get_rowbytes(png, info);
        if ((ncomp != 1 && ncomp != 3) || rowbytes != (size_t)pw * (size_t)ncomp) {
            rc = mltk_errf(err, MLTK_ERR_DATA, "%s: a PNG of colour type %d and bit "
                           "depth %d is not supported", name, ct, depth);
            goto out;
        }
        stride = (size_t)pw * (size_t)channels;
        tmp = malloc(rowbytes * ph);
        rows = malloc(sizeof(*rows) * ph);
        if (!tmp || !rows) {
            rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory for a %ux%u image",
                           name, (unsigned)pw, (unsigned)ph);
            goto out;
        }
        for (png_uint_32 y = 0; y < ph; y++)
            rows[y] = tmp + rowbytes * y;
        png_read_image(png, rows);
        if (ncomp == channels) {
            px = tmp;
            tmp = NULL;
        } else {
            px = malloc(stride * ph);
            if (!px) {
                rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory for a %ux%u image",
                               name, (unsigned)pw, (unsigned)ph);
                goto out;
            }
            for (png_uint_32 y = 0; y < ph; y++)
                convert_row(px + stride * y, tmp + rowbytes * y, (int)pw, ncomp, channels);
        }
        out->w = (int)pw;
        out->h = (int)ph;
        out->c = channels;
        out->px = px;
        px = NULL;
    }
    rc = MLTK_OK;
out:
    png_destroy_read_struct(&png, &info, NULL);
    free(px);
    free(tmp);
    free(rows);
    return rc;
}

/* ---- either --------------------------------------------------------------- */

static const uint8_t png_magic[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

static int image_any(const char *name, const uint8_t *data, size_t size, int channels,
                     image_buf *out, int *w, int *h, char **err)
{
    if (out)
        memset(out, 0, sizeof(*out));
    if (size == 0)
        return mltk_errf(err, MLTK_ERR_DATA, "%s: empty file (expected a JPEG or PNG "
                         "image)", name);
    if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
        return jpeg_decode(name, data, size, channels, out, w, h, err);
    if (size >= 8 && memcmp(data, png_magic, 8) == 0)
        return png_decode(name, data, size, channels, out, w, h, err);
    {
        char hex[3 * 8 + 1] = "";
        size_t k = size < 8 ? size : 8, len = 0;
        for (size_t i = 0; i < k; i++)
            len += (size_t)snprintf(hex + len, sizeof(hex) - len, i ? " %02x" : "%02x",
                                    data[i]);
        return mltk_errf(err, MLTK_ERR_DATA, "%s: not a JPEG or PNG image (the file "
                         "starts with %s)", name, hex);
    }
}

int image_decode(const char *name, const uint8_t *data, size_t size, int channels,
                 image_buf *out, char **err)
{
    int w, h;

    if (channels != 1 && channels != 3)
        return mltk_errf(err, MLTK_ERR_INVALID, "%s: %d channels requested (1 or 3)",
                         name, channels);
    return image_any(name, data, size, channels, out, &w, &h, err);
}

int image_header(const char *name, const uint8_t *data, size_t size, int *w, int *h,
                 char **err)
{
    return image_any(name, data, size, 1, NULL, w, h, err);
}

/* ---- size ----------------------------------------------------------------- */

void image_resize_size(int w, int h, int n, int *dw, int *dh)
{
    if (w <= h) {
        *dw = n;
        *dh = (int)((int64_t)n * h / w);
    } else {
        *dh = n;
        *dw = (int)((int64_t)n * w / h);
    }
}

/* round(d / 2) as Python rounds (half to even) for d >= 0 */
static int half_even(int d)
{
    int q = d / 2;
    return (d % 2) && (q % 2) ? q + 1 : q;
}

void image_crop_chw(const uint8_t *src, int sw, int sh, int c, uint8_t *dst, int cw,
                    int ch)
{
    /* crop offset (>= 0) or padding (< 0) on each axis */
    int ox = cw > sw ? -((cw - sw) / 2) : half_even(sw - cw);
    int oy = ch > sh ? -((ch - sh) / 2) : half_even(sh - ch);

    for (int k = 0; k < c; k++)
        for (int y = 0; y < ch; y++) {
            int sy = y + oy;
            uint8_t *o = dst + ((size_t)k * ch + y) * cw;
            const uint8_t *in = src + ((size_t)k * sh + (sy < 0 ? 0 : sy)) * sw;
            for (int x = 0; x < cw; x++) {
                int sx = x + ox;
                o[x] = sy < 0 || sy >= sh || sx < 0 || sx >= sw ? 0 : in[sx];
            }
        }
}

void image_planar(const image_buf *im, uint8_t *dst)
{
    size_t plane = (size_t)im->w * (size_t)im->h;

    for (int k = 0; k < im->c; k++)
        for (size_t i = 0; i < plane; i++)
            dst[k * plane + i] = im->px[i * im->c + k];
}

/* ---- reading a file ------------------------------------------------------- */

/* The whole file into a malloc()ed buffer (NULL for an empty file). */
static int read_file(const char *path, uint8_t **data, size_t *size, char **err)
{
    struct stat st;
    uint8_t *buf = NULL;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    *data = NULL;
    *size = 0;
    if (fd < 0)
        return mltk_errf(err, MLTK_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = errno;
        close(fd);
        return mltk_errf(err, MLTK_ERR_IO, "cannot read %s: %s", path,
                         S_ISREG(st.st_mode) ? strerror(e) : "not a regular file");
    }
    if (st.st_size > 0) {
        buf = malloc((size_t)st.st_size);
        if (!buf) {
            close(fd);
            return mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory for %lld bytes",
                             path, (long long)st.st_size);
        }
    }
    while (got < (size_t)st.st_size) {
        ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int e = errno;
            close(fd);
            free(buf);
            return mltk_errf(err, MLTK_ERR_IO, "read error in %s at byte %zu: %s", path,
                             got, strerror(e));
        }
        if (k == 0)  /* shrunk since fstat: decode what is there */
            break;
        got += (size_t)k;
    }
    close(fd);
    *data = buf;
    *size = got;
    return MLTK_OK;
}

/* ---- the folder ----------------------------------------------------------- */

typedef struct img_file {
    char   *dir;    /* folder relative to the class folder, "" for itself */
    char   *name;
    int64_t size;
} img_file;

typedef struct img_list {
    img_file *f;
    int64_t   n, cap;
    int64_t   other;     /* files skipped for their extension */
} img_list;

typedef struct img_set {
    char       *root;
    int         channels, resize, crop;
    int64_t     n;
    char      **rel;       /* n paths relative to root: CLASS/[DIR/]NAME */
    int32_t    *label;     /* n */
    int64_t     n_classes;
    char      **classes;   /* n_classes names */
    int         w0, h0;    /* the first image's size (no resize, no crop) */
    int         rw, rh;    /* the resized size every image must have (resize
                            * without crop) */
    mltk_shape  x_shape;   /* (channels, H, W) */
    char        checksum[65];
} img_set;

static char *str_dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static char *path_join(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *p = malloc(na + nb + 2);

    if (!p)
        return NULL;
    memcpy(p, a, na);
    if (na && nb && a[na - 1] != '/')
        p[na++] = '/';
    memcpy(p + na, b, nb + 1);
    return p;
}

static int has_image_ext(const char *name)
{
    static const char *const ext[] = { ".jpg", ".jpeg", ".png" };
    size_t n = strlen(name);

    for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
        size_t k = strlen(ext[i]);
        if (n > k && strcasecmp(name + n - k, ext[i]) == 0)
            return 1;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_file(const void *a, const void *b)
{
    const img_file *x = a, *y = b;
    int c = strcmp(x->dir, y->dir);
    return c ? c : strcmp(x->name, y->name);
}

/* The sorted names of the subfolders of dir (hidden ones skipped). */
static int list_classes(const char *dir, char ***names, int64_t *n, char **err)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **v = NULL;
    int64_t k = 0, cap = 0;
    int rc = MLTK_OK;

    *names = NULL;
    *n = 0;
    if (!d)
        return mltk_errf(err, MLTK_ERR_IO, "imagefolder: cannot open the folder %s: %s",
                         dir, strerror(errno));
    while ((e = readdir(d))) {
        struct stat st;
        char *p;
        if (e->d_name[0] == '.')
            continue;
        p = path_join(dir, e->d_name);
        if (!p) {
            rc = MLTK_ERR_NOMEM;
            break;
        }
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
            free(p);
            continue;
        }
        free(p);
        if (k == cap) {
            char **nv = realloc(v, sizeof(*v) * (size_t)(cap = cap ? 2 * cap : 16));
            if (!nv) {
                rc = MLTK_ERR_NOMEM;
                break;
            }
            v = nv;
        }
        if (!(v[k] = str_dup(e->d_name))) {
            rc = MLTK_ERR_NOMEM;
            break;
        }
        k++;
    }
    closedir(d);
    if (rc) {
        while (k > 0)
            free(v[--k]);
        free(v);
        return mltk_errf(err, rc, "imagefolder: out of memory listing %s", dir);
    }
    if (k)
        qsort(v, (size_t)k, sizeof(*v), cmp_str);
    *names = v;
    *n = k;
    return MLTK_OK;
}

/* Every image file under abs (the folder rel of a class), recursively. */
static int walk(img_list *l, const char *abs, const char *rel, int depth, char **err)
{
    DIR *d;
    struct dirent *e;
    int rc = MLTK_OK;

    if (depth > 32)
        return mltk_errf(err, MLTK_ERR_DATA, "imagefolder: %s: folders nested more than "
                         "32 deep (a link loop?)", abs);
    d = opendir(abs);
    if (!d)
        return mltk_errf(err, MLTK_ERR_IO, "imagefolder: cannot open the folder %s: %s",
                         abs, strerror(errno));
    while (!rc && (e = readdir(d))) {
        struct stat st;
        char *p;
        if (e->d_name[0] == '.')
            continue;
        p = path_join(abs, e->d_name);
        if (!p) {
            rc = mltk_errf(err, MLTK_ERR_NOMEM, "imagefolder: out of memory");
            break;
        }
        if (stat(p, &st) != 0) {
            free(p);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            char *r = path_join(rel, e->d_name);
            rc = r ? walk(l, p, r, depth + 1, err)
                   : mltk_errf(err, MLTK_ERR_NOMEM, "imagefolder: out of memory");
            free(r);
        } else if (S_ISREG(st.st_mode) && has_image_ext(e->d_name)) {
            if (l->n == l->cap) {
                int64_t cap = l->cap ? 2 * l->cap : 256;
                img_file *nf = realloc(l->f, sizeof(*nf) * (size_t)cap);
                if (!nf) {
                    free(p);
                    rc = mltk_errf(err, MLTK_ERR_NOMEM, "imagefolder: out of memory");
                    break;
                }
                l->f = nf;
                l->cap = cap;
            }
            l->f[l->n].dir = str_dup(rel);
            l->f[l->n].name = str_dup(e->d_name);
            l->f[l->n].size = (int64_t)st.st_size;
            if (!l->f[l->n].dir || !l->f[l->n].name) {
                free(l->f[l->n].dir);
                free(l->f[l->n].name);
                rc = mltk_errf(err, MLTK_ERR_NOMEM, "imagefolder: out of memory");
            } else {
                l->n++;
            }
        } else if (S_ISREG(st.st_mode)) {
            l->other++;
        }
        free(p);
    }
    closedir(d);
    return rc;
}

static void img_list_free(img_list *l)
{
    for (int64_t i = 0; i < l->n; i++) {
        free(l->f[i].dir);
        free(l->f[i].name);
    }
    free(l->f);
    memset(l, 0, sizeof(*l));
}

static void img_close(void *self)
{
    img_set *s = self;

    if (!s)
        return;
    for (int64_t i = 0; i < s->n; i++)
        free(s->rel[i]);
    for (int64_t i = 0; i < s->n_classes; i++)
        free(s->classes[i]);
    free(s->rel);
    free(s->label);
    free(s->classes);
    free(s->root);
    free(s);
}

/* Read and check one file's header: 0 and its size, or the error. */
static int header_of(const img_set *s, int64_t i, int *w, int *h, char **err)
{
    char *path = path_join(s->root, s->rel[i]);
    uint8_t *data = NULL;
    size_t size = 0;
    int rc;

    if (!path)
        return mltk_errf(err, MLTK_ERR_NOMEM, "imagefolder: out of memory");
    rc = read_file(path, &data, &size, err);
    if (!rc)
        rc = image_header(path, data, size, w, h, err);
    free(data);
    free(path);
    return rc;
}

static int same_classes(char **a, int64_t na, char **b, int64_t nb)
{
    if (na != nb)
        return 0;
    for (int64_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return 0;
    return 1;
}

static int img_open(void **self, const mltk_params_t *params, const char *split,
                    char **err)
{
    const char *train_root = mltk_params_str(params, "path");
    const char *key, *root, *on_error = mltk_params_str(params, "on_error");
    int skip = on_error && strcmp(on_error, "skip") == 0;
    img_set *s = NULL;
    img_list l;
    int64_t *class_first = NULL, n_bad = 0, other = 0;
    char *first_bad_msg = NULL;
    sha256 sha;
    int rc;

    memset(&l, 0, sizeof(l));
    *self = NULL;
    if (split && strcmp(split, "train") == 0) {
        key = "path";
    } else if (split && strcmp(split, "test") == 0) {
        key = "test_path";
    } else {
        return mltk_errf(err, MLTK_ERR_INVALID, "imagefolder: unknown split '%s' "
                         "(expected train or test)", split ? split : "(null)");
    }
    root = mltk_params_str(params, key);
    if (!root || !*root)
        return mltk_errf(err, MLTK_ERR_CONFIG, "key '%s' is not set: the %s split needs "
                         "a folder of class folders", key, split);
    s = calloc(1, sizeof(*s));
    if (!s || !(s->root = str_dup(root))) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "imagefolder: out of memory");
        goto out;
    }
    s->channels = (int)mltk_params_int(params, "channels");
    s->resize = (int)mltk_params_int(params, "resize");
    s->crop = (int)mltk_params_int(params, "crop");
    if (s->channels != 1 && s->channels != 3) {
        rc = mltk_errf(err, MLTK_ERR_CONFIG, "key 'channels' is %d: expected 1 (grey) or "
                       "3 (RGB)", s->channels);
        goto out;
    }

    rc = list_classes(root, &s->classes, &s->n_classes, err);
    if (rc)
        goto out;
    if (s->n_classes == 0) {
        rc = mltk_errf(err, MLTK_ERR_DATA, "imagefolder: %s holds no class folders "
                       "(expected %s/CLASS/IMAGE.jpg)", root, root);
        goto out;
    }
    if (strcmp(key, "path") != 0) {
        char **tc = NULL;
        int64_t tn = 0;
        rc = list_classes(train_root, &tc, &tn, err);
        if (rc)
            goto out;
        if (!same_classes(s->classes, s->n_classes, tc, tn)) {
            int64_t k = 0;
            while (k < tn && k < s->n_classes && strcmp(tc[k], s->classes[k]) == 0)
                k++;
            rc = mltk_errf(err, MLTK_ERR_DATA, "imagefolder: the class folders of %s (%lld) "
                           "differ from those of %s (%lld): '%s' where the training split "
                           "has '%s'", root, (long long)s->n_classes, train_root,
                           (long long)tn, k < s->n_classes ? s->classes[k] : "(none)",
                           k < tn ? tc[k] : "(none)");
        }
        for (int64_t k = 0; k < tn; k++)
            free(tc[k]);
        free(tc);
        if (rc)
            goto out;
    }

    /* the files of each class, in torchvision's order */
    class_first = malloc(sizeof(*class_first) * (size_t)(s->n_classes + 1));
    if (!class_first) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "imagefolder: out of memory");
        goto out;
    }
    for (int64_t c = 0; c < s->n_classes; c++) {
        char *abs = path_join(root, s->classes[c]);
        int64_t before = l.n;
        if (!abs) {
            rc = mltk_errf(err, MLTK_ERR_NOMEM, "imagefolder: out of memory");
            goto out;
        }
        class_first[c] = l.n;
        rc = walk(&l, abs, "", 0, err);
        if (!rc && l.n == before)
            rc = mltk_errf(err, MLTK_ERR_DATA, "imagefolder: the class folder %s holds no "
                           ".jpg, .jpeg or .png file", abs);
        free(abs);
        if (rc)
            goto out;
        qsort(l.f + before, (size_t)(l.n - before), sizeof(*l.f), cmp_file);
    }
    class_first[s->n_classes] = l.n;
    other = l.other;
    if (other)
        mltk_log(MLTK_LOG_DEBUG, "imagefolder: %s: skipped %lld files that are not .jpg, "
                 ".jpeg or .png", root, (long long)other);

    s->rel = calloc((size_t)l.n + 1, sizeof(*s->rel));
    s->label = malloc(sizeof(*s->label) * ((size_t)l.n + 1));
    if (!s->rel || !s->label) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "imagefolder: out of memory for %lld files",
                       (long long)l.n);
        goto out;
    }
    sha256_init(&sha);
    for (int64_t c = 0; c < s->n_classes; c++) {
        for (int64_t i = class_first[c]; i < class_first[c + 1]; i++) {
            char *cd = path_join(s->classes[c], l.f[i].dir);
            char *rel = cd ? path_join(cd, l.f[i].name) : NULL;
            char line[64];
            free(cd);
            if (!rel) {
                rc = mltk_errf(err, MLTK_ERR_NOMEM, "imagefolder: out of memory");
                goto out;
            }
            s->rel[s->n] = rel;
            s->label[s->n] = (int32_t)c;
            s->n++;
            if (skip) {
                int w, h;
                char *why = NULL;
                if (header_of(s, s->n - 1, &w, &h, &why)) {
                    if (n_bad++ == 0) {
                        first_bad_msg = why;
                        why = NULL;
                    }
                    free(why);
                    free(s->rel[--s->n]);
                    s->rel[s->n] = NULL;
                    continue;
                }
            }
            snprintf(line, sizeof(line), "\t%lld\n", (long long)l.f[i].size);
            sha256_update(&sha, rel, strlen(rel));
            sha256_update(&sha, line, strlen(line));
        }
    }
    if (n_bad)
        mltk_log(MLTK_LOG_WARN, "imagefolder: %s: skipped %lld image%s that cannot be "
                 "read (on_error = skip); the first: %s", root, (long long)n_bad,
                 n_bad == 1 ? "" : "s", first_bad_msg ? first_bad_msg : "?");
    if (s->n == 0) {
        rc = mltk_errf(err, MLTK_ERR_DATA, "imagefolder: %s: no readable image (%lld "
                       "skipped)", root, (long long)n_bad);
        goto out;
    }
    sha256_final(&sha, s->checksum);

    /* the sample shape */
    if (s->crop > 0) {
        int64_t d[3] = { s->channels, s->crop, s->crop };
        s->x_shape = mltk_shape_make(3, d);
    } else {
        int w, h;
        rc = header_of(s, 0, &w, &h, err);
        if (rc)
            goto out;
        s->w0 = w;
        s->h0 = h;
        if (s->resize > 0)
            image_resize_size(w, h, s->resize, &s->rw, &s->rh);
        else {
            s->rw = w;
            s->rh = h;
        }
        {
            int64_t d[3] = { s->channels, s->rh, s->rw };
            s->x_shape = mltk_shape_make(3, d);
        }
    }
    *self = s;
    s = NULL;
    rc = MLTK_OK;
out:
    if (rc == MLTK_ERR_IO)
        rc = MLTK_ERR_DATA;
    free(first_bad_msg);
    free(class_first);
    img_list_free(&l);
    img_close(s);
    return rc;
}

static int img_info(void *self, mltk_dataset_info *info)
{
    const img_set *s = self;

    memset(info, 0, sizeof(*info));
    info->n = s->n;
    info->x_shape = s->x_shape;
    info->target = MLTK_TARGET_CLASS;
    info->y_shape.ndim = 0;
    info->n_classes = s->n_classes;
    memcpy(info->checksum, s->checksum, sizeof(info->checksum));
    info->x_dtype = MLTK_U8;
    info->x_scale = 1.0 / 255.0;
    info->x_shift = 0.0;
    info->class_names = (const char *const *)s->classes;
    return MLTK_OK;
}

/* Sample i: x (C, H, W) u8, y one int32. */
static int img_get(void *self, int64_t i, void *x, void *y, char **err)
{
    const img_set *s = self;
    char *path = NULL;
    uint8_t *data = NULL, *planar = NULL, *sized = NULL;
    size_t size = 0;
    image_buf im = { 0, 0, 0, NULL };
    int rc, w, h;

    if (i < 0 || i >= s->n)
        return mltk_errf(err, MLTK_ERR_INVALID, "imagefolder: sample %lld is outside the "
                         "%lld of this split", (long long)i, (long long)s->n);
    if (y)
        *(int32_t *)y = s->label[i];
    if (!x)
        return MLTK_OK;
    path = path_join(s->root, s->rel[i]);
    if (!path)
        return mltk_errf(err, MLTK_ERR_NOMEM, "imagefolder: out of memory");
    rc = read_file(path, &data, &size, err);
    if (rc)
        goto out;
    rc = image_decode(path, data, size, s->channels, &im, err);
    if (rc)
        goto out;
    w = im.w;
    h = im.h;
    planar = malloc((size_t)w * (size_t)h * (size_t)im.c);
    if (!planar) {
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory for a %dx%d image", path, w, h);
        goto out;
    }
    image_planar(&im, planar);
    if (s->resize > 0) {
        int dw, dh;
        image_resize_size(w, h, s->resize, &dw, &dh);
        if (dw < 1 || dh < 1) {
            rc = mltk_errf(err, MLTK_ERR_DATA, "%s: a %dx%d image cannot be resized to "
                           "a shorter side of %d", path, w, h, s->resize);
            goto out;
        }
        if (dw != w || dh != h) {
            sized = malloc((size_t)dw * (size_t)dh * (size_t)im.c);
            if (!sized || tf_resize_u8(sized, dh, dw, planar, im.c, h, w, 0, 0, w, h)) {
                rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory resizing a %dx%d "
                               "image to %dx%d", path, w, h, dw, dh);
                goto out;
            }
            free(planar);
            planar = sized;
            sized = NULL;
        }
        w = dw;
        h = dh;
    }
    if (s->crop == 0 && (w != s->rw || h != s->rh)) {
        if (s->resize > 0)
            rc = mltk_errf(err, MLTK_ERR_DATA, "%s: %dx%d (resized to %dx%d), but the "
                           "first image %s/%s gave %dx%d: images of other proportions "
                           "need crop", path, im.w, im.h, w, h, s->root, s->rel[0],
                           s->rw, s->rh);
        else
            rc = mltk_errf(err, MLTK_ERR_DATA, "%s: %dx%d, but the first image %s/%s is "
                           "%dx%d: every image must have the same size (or set resize "
                           "and crop)", path, w, h, s->root, s->rel[0], s->rw, s->rh);
        goto out;
    }
    image_crop_chw(planar, w, h, s->channels, x, (int)s->x_shape.dim[2],
                   (int)s->x_shape.dim[1]);
    rc = MLTK_OK;
out:
    if (rc == MLTK_ERR_IO)
        rc = MLTK_ERR_DATA;
    free(im.px);
    free(planar);
    free(sized);
    free(data);
    free(path);
    return rc;
}

static int img_label(void *self, int64_t i, int32_t *y, char **err)
{
    const img_set *s = self;

    if (i < 0 || i >= s->n)
        return mltk_errf(err, MLTK_ERR_INVALID, "imagefolder: sample %lld is outside the "
                         "%lld of this split", (long long)i, (long long)s->n);
    *y = s->label[i];
    return MLTK_OK;
}

/* samples [first, first+count) as float32 x = raw / 255 (the core before
 * ABI 2.1's loader) */
static int img_read(void *self, int64_t first, int64_t count, float *x, void *y,
                    char **err)
{
    const img_set *s = self;
    int64_t numel = mltk_shape_numel(&s->x_shape);
    const float scale = (float)(1.0 / 255.0);
    uint8_t *buf;
    int rc = MLTK_OK;

    if (first < 0 || count < 0 || first > s->n || count > s->n - first)
        return mltk_errf(err, MLTK_ERR_INVALID, "imagefolder: samples [%lld, %lld) are "
                         "outside the %lld of this split", (long long)first,
                         (long long)(first + count), (long long)s->n);
    buf = malloc((size_t)numel);
    if (!buf)
        return mltk_errf(err, MLTK_ERR_NOMEM, "imagefolder: out of memory");
    for (int64_t k = 0; k < count && !rc; k++) {
        rc = img_get(self, first + k, x ? buf : NULL, y ? (int32_t *)y + k : NULL, err);
        if (!rc && x)
            for (int64_t j = 0; j < numel; j++)
                x[k * numel + j] = (float)buf[j] * scale + 0.0f;
    }
    free(buf);
    return rc;
}

/* ---- entry ---------------------------------------------------------------- */

static const struct mltk_dataset_i img_iface = {
    .size = sizeof(struct mltk_dataset_i),
    .open = img_open,
    .close = img_close,
    .info = img_info,
    .read = img_read,
    .get = img_get,
    .label = img_label,
};

MLTK_PLUGIN(imagefolder, MLTK_KIND_DATASET, &img_iface)
