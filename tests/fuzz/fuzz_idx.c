/* fuzz_idx.c - a libFuzzer harness for the IDX reader (datasets/idx.c).
 *
 * What this is: each input is written to a file and read with
 * idx_load_file() (datasets/idx.h), the parser the idx dataset plugin
 * runs on each images and labels file, allowing 1 to 4 dimensions.  Plain
 * and gzipped inputs both reach it (the seed corpus holds both).  A
 * rejection must be MLTK_ERR_DATA (or MLTK_ERR_NOMEM) with a message that
 * starts with the file; an accepted file is checked against its header:
 * the dimensions, the data length as their product, and for a plain file
 * its size as header plus data; every data byte is read.  A plain input
 * (not starting with the gzip magic) also goes through idx_parse(), the
 * parser of the memory-mapped files, from a buffer of its exact size:
 * it must agree with idx_load_file() (the status, the message but for the
 * error of a file that cannot be read, the dimensions and the data).
 * What this is not: a check of the split as a whole (image and label
 * counts, label range), which idx_open does on top and check_idx tests.
 */
#include "config.h"

#include <mltk/mltk.h>

#include "idx.h"
#include "fuzz.h"

#define NAME "fuzz_idx"

static char path[256];

/* idx_parse on the plain input must agree with idx_load_file's rc, err and f */
static void check_parse(const uint8_t *data, size_t size, int rc, const char *err,
                        const idx_file *f)
{
    uint8_t *buf = malloc(size ? size : 1);
    idx_file m;
    char *merr = NULL;
    if (!buf)
        abort();
    if (size)
        memcpy(buf, data, size);
    int mrc = idx_parse(&m, buf, (int64_t)size, path, 1, IDX_MAX_NDIM, "images", &merr);
    fuzz_check(mrc == rc || rc == MLTK_ERR_NOMEM, NAME,
               "idx_parse and idx_load_file disagree on the status");
    if (mrc) {
        fuzz_check(!m.data, NAME, "a rejection of idx_parse that keeps data");
        fuzz_check(rc == MLTK_ERR_NOMEM || strcmp(merr, err) == 0, NAME,
                   "idx_parse and idx_load_file give different messages");
    } else {
        fuzz_check(!merr && m.borrowed && m.data == buf + m.header, NAME,
                   "idx_parse's data is not in the buffer");
        fuzz_check(m.ndim == f->ndim && m.bytes == f->bytes &&
                   memcmp(m.dim, f->dim, sizeof(m.dim)) == 0 &&
                   memcmp(m.data, f->data, (size_t)m.bytes) == 0, NAME,
                   "idx_parse and idx_load_file read different files");
    }
    free(merr);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file(path, sizeof path, "idx", data, size);
    idx_file f;
    char *err = NULL;
    int rc = idx_load_file(&f, path, 1, IDX_MAX_NDIM, "images", &err);
    int gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    if (!gz)
        check_parse(data, size, rc, err, &f);
    if (rc) {
        fuzz_check(!f.data, NAME, "a rejection that keeps data");
        fuzz_check(rc == MLTK_ERR_DATA || rc == MLTK_ERR_NOMEM, NAME,
                   "a rejection that is not MLTK_ERR_DATA or MLTK_ERR_NOMEM");
        fuzz_check(rc == MLTK_ERR_NOMEM || fuzz_names(err, path), NAME,
                   "a message that does not start with the file");
        free(err);
        return 0;
    }
    fuzz_check(!err, NAME, "accepted with a message");
    fuzz_check(f.ndim >= 1 && f.ndim <= IDX_MAX_NDIM, NAME, "ndim out of range");
    fuzz_check(f.header == 4 + 4 * f.ndim, NAME, "a header length that is not 4 + 4 * ndim");
    int64_t bytes = 1;
    for (int i = 0; i < f.ndim; i++) {
        fuzz_check(f.dim[i] >= 1 && f.dim[i] <= 0xffffffff, NAME, "a dimension out of range");
        bytes *= f.dim[i];
    }
    fuzz_check(bytes == f.bytes && f.data, NAME, "a data length that is not the dims' product");
    fuzz_check(gz || (int64_t)size == f.header + f.bytes, NAME,
               "a plain file whose size is not header plus data");
    if (!gz)
        fuzz_check(memcmp(f.data, data + f.header, (size_t)f.bytes) == 0, NAME,
                   "data that differ from the file");
    volatile unsigned sum = 0;
    for (int64_t i = 0; i < f.bytes; i++)
        sum += f.data[i];
    free(f.data);
    return 0;
}
