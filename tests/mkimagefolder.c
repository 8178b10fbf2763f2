/* mkimagefolder.c - write the Fashion-MNIST IDX files as an image folder.
 *
 * What this is: a test tool that reads an images and a labels IDX file
 * per split (gzipped or not) and writes every image as one file,
 *
 *     OUT/train/LABEL/NNNNN.jpg     OUT/test/LABEL/NNNNN.jpg
 *
 * (LABEL the class number, so that the folders sort in label order for up
 * to 10 classes; NNNNN the sample's index in its split, so that the files
 * of a class sort in the IDX order), as JPEG (libjpeg, -q quality) or PNG
 * (libpng, lossless), grey or (-c 3) RGB with the grey value in each
 * channel, optionally scaled up (-s SIZE, nearest neighbour).  It feeds
 * tests/test_image_train.sh and bench/image_vs_idx.sh.
 *
 *     mkimagefolder [-f jpg|png] [-q 1..100] [-c 1|3] [-s SIZE]
 *                   [-n TRAIN_LIMIT] [-t TEST_LIMIT] IDX_DIR OUT_DIR
 *
 * What this is not: an IDX validator (datasets/idx.c is) or part of mltk.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

static const char *prog = "mkimagefolder";

static void die(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    exit(1);
}

/* A whole IDX file of bytes: dims and data (malloc()ed). */
static uint8_t *load_idx(const char *path, int ndim, uint32_t *dims)
{
    gzFile f = gzopen(path, "rb");
    uint8_t head[16];
    size_t n = 1;
    uint8_t *data;

    if (!f)
        die("cannot open %s: %s", path, strerror(errno));
    if (gzread(f, head, 4 + 4 * ndim) != 4 + 4 * ndim || head[0] || head[1] ||
        head[2] != 8 || head[3] != ndim)
        die("%s: not an IDX file of %s dimensions", path, ndim == 3 ? "3" : "1");
    for (int i = 0; i < ndim; i++) {
        const uint8_t *b = head + 4 + 4 * i;
        dims[i] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        n *= dims[i];
    }
    data = malloc(n ? n : 1);
    if (!data)
        die("%s: out of memory%s", path, "");
    if ((size_t)gzread(f, data, (unsigned)n) != n)
        die("%s: truncated%s", path, "");
    gzclose(f);
    return data;
}

static void mkdir_p(const char *p)
{
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        die("cannot make %s: %s", p, strerror(errno));
}

typedef struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
} jerr;

static void jerr_exit(j_common_ptr ci)
{
    longjmp(((jerr *)ci->err)->jb, 1);
}

/* px (h, w, c) */
static void write_jpeg(const char *path, const uint8_t *px, int w, int h, int c, int q)
{
    struct jpeg_compress_struct ci;
    jerr je;
    FILE *f = fopen(path, "wb");

    if (!f)
        die("cannot write %s: %s", path, strerror(errno));
    ci.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jerr_exit;
    if (setjmp(je.jb))
        die("%s: libjpeg failed to write it%s", path, "");
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = c;
    ci.in_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, q, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)ci.next_scanline * w * c);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    if (fclose(f) != 0)
        die("cannot write %s: %s", path, strerror(errno));
}

static void write_png(const char *path, const uint8_t *px, int w, int h, int c)
{
    FILE *f = fopen(path, "wb");
    png_structp png;
    png_infop info;

    if (!f)
        die("cannot write %s: %s", path, strerror(errno));
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    info = png ? png_create_info_struct(png) : NULL;
    if (!info)
        die("%s: out of memory%s", path, "");
    if (setjmp(png_jmpbuf(png)))
        die("%s: libpng failed to write it%s", path, "");
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
                 c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, (png_const_bytep)(px + (size_t)y * w * c));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (fclose(f) != 0)
        die("cannot write %s: %s", path, strerror(errno));
}

static void write_split(const char *idx_dir, const char *out, const char *split,
                        const char *images, const char *labels, long limit,
                        const char *fmt, int q, int c, int size)
{
    char path[8192], dir[4096];
    uint32_t id[3], ld[1];
    uint8_t *img, *lab, *px;
    int rows, cols, w, h;
    long n;

    if ((size_t)snprintf(path, sizeof(path), "%s/%s", idx_dir, images) >= sizeof(path))
        die("%s: the path is too long%s", idx_dir, "");
    img = load_idx(path, 3, id);
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", idx_dir, labels) >= sizeof(path))
        die("%s: the path is too long%s", idx_dir, "");
    lab = load_idx(path, 1, ld);
    if (ld[0] != id[0])
        die("%s: the label count differs from %s's image count", path, images);
    n = (long)id[0];
    if (limit > 0 && limit < n)
        n = limit;
    rows = (int)id[1];
    cols = (int)id[2];
    w = size > 0 ? size : cols;
    h = size > 0 ? size : rows;
    px = malloc((size_t)w * h * c);
    if (!px)
        die("out of memory%s%s", "", "");
    if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", out, split) >= sizeof(dir))
        die("%s: the path is too long%s", out, "");
    mkdir_p(dir);
    for (long i = 0; i < n; i++) {
        const uint8_t *src = img + (size_t)i * rows * cols;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                uint8_t v = src[(size_t)(y * rows / h) * cols + x * cols / w];
                for (int k = 0; k < c; k++)
                    px[((size_t)y * w + x) * c + k] = v;
            }
        if ((size_t)snprintf(path, sizeof(path), "%s/%u", dir, lab[i]) >= sizeof(path))
            die("%s: the path is too long%s", dir, "");
        mkdir_p(path);
        if ((size_t)snprintf(path, sizeof(path), "%s/%u/%05ld.%s", dir, lab[i], i, fmt) >=
            sizeof(path))
            die("%s: the path is too long%s", dir, "");
        if (strcmp(fmt, "png") == 0)
            write_png(path, px, w, h, c);
        else
            write_jpeg(path, px, w, h, c, q);
    }
    free(px);
    free(img);
    free(lab);
}

int main(int argc, char **argv)
{
    const char *fmt = "jpg";
    int q = 95, c = 1, size = 0, opt;
    long train_limit = 0, test_limit = 0;

    while ((opt = getopt(argc, argv, "f:q:c:s:n:t:")) != -1) {
        switch (opt) {
        case 'f':
            fmt = optarg;
            break;
        case 'q':
            q = atoi(optarg);
            break;
        case 'c':
            c = atoi(optarg);
            break;
        case 's':
            size = atoi(optarg);
            break;
        case 'n':
            train_limit = atol(optarg);
            break;
        case 't':
            test_limit = atol(optarg);
            break;
        default:
            goto usage;
        }
    }
    if (argc - optind != 2 || (strcmp(fmt, "jpg") && strcmp(fmt, "png")) || q < 1 ||
        q > 100 || (c != 1 && c != 3) || size < 0 || size > 4096)
        goto usage;
    mkdir_p(argv[optind + 1]);
    write_split(argv[optind], argv[optind + 1], "train", "train-images-idx3-ubyte.gz",
                "train-labels-idx1-ubyte.gz", train_limit, fmt, q, c, size);
    write_split(argv[optind], argv[optind + 1], "test", "t10k-images-idx3-ubyte.gz",
                "t10k-labels-idx1-ubyte.gz", test_limit, fmt, q, c, size);
    return 0;
usage:
    fprintf(stderr, "usage: %s [-f jpg|png] [-q 1..100] [-c 1|3] [-s SIZE] "
            "[-n TRAIN_LIMIT] [-t TEST_LIMIT] IDX_DIR OUT_DIR\n", prog);
    return 2;
}
