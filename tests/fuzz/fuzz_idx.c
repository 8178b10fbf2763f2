/* fuzz_idx.c - a libFuzzer harness for the IDX reader (datasets/idx.c).
 *
 * What this is: each input is written to a file and read with
 * idx_load_file() (datasets/idx.h), the parser the idx dataset plugin
 * runs on each images and labels file, allowing 1 to 4 dimensions.  Plain
 * and gzipped inputs both reach it (the seed corpus holds both).  A
 * rejection must be MLTK_ERR_DATA (or MLTK_ERR_NOMEM) with a message that
 * starts with the file; an accepted file is checked against its header:
 * the dimensions, the data length as their product, and for a plain file
 * its size as header plus data; every data byte is read.
 * What this is not: a check of the split as a whole (image and label
 * counts, label range), which idx_open does on top and check_idx tests.
 */
#include "config.h"

#include <mltk/mltk.h>

#include "idx.h"
#include "fuzz.h"

#define NAME "fuzz_idx"

static char path[256];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file(path, sizeof path, "idx", data, size);
    idx_file f;
    char *err = NULL;
    int rc = idx_load_file(&f, path, 1, IDX_MAX_NDIM, "images", &err);
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
    int gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
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
