/* fuzz_safetensors.c - a libFuzzer harness for the safetensors reader.
 *
 * What this is: each input is written to a file and opened with
 * mltk_st_open(), which must either reject it with MLTK_ERR_DATA and a
 * message naming the file, or accept it; an accepted file is then read
 * back in full (every tensor's bytes, every metadata string) and checked
 * against what the reader promises: tensors tile the data exactly, sizes
 * match shapes and dtypes, lookups by name find each tensor.  A reader
 * that accepts what it should not, reads out of bounds (AddressSanitizer)
 * or leaks (LeakSanitizer) is caught here.
 * What this is not: a test of the writer.  See README.md for how to build
 * and run it; `make check` runs it over its seed corpus.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safetensors.h"
#include "fuzz.h"

static char path[256];

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_safetensors: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file(path, sizeof path, "safetensors", data, size);

    mltk_st_file *st = NULL;
    char *err = NULL;
    int rc = mltk_st_open(&st, path, &err);
    if (rc) {
        check(rc == MLTK_ERR_DATA && !st, "a rejection that is not MLTK_ERR_DATA");
        check(err && strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':',
              "a message that does not start with the file");
        free(err);
        return 0;
    }
    check(st && !err, "accepted, but no file or a message");
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | data[i];
    size_t total = 0;
    volatile unsigned sum = 0;
    for (int i = 0; i < mltk_st_count(st); i++) {
        const mltk_st_tensor *t = mltk_st_get(st, i);
        check(t && t->name && mltk_st_find(st, t->name) == t, "a tensor not found by name");
        check(t->ndim >= 0 && t->ndim <= MLTK_ST_MAX_DIMS, "ndim out of range");
        size_t want = mltk_st_dtype_size(t->dtype);
        for (int d = 0; d < t->ndim; d++)
            want *= (size_t)t->shape[d];
        check(want == t->nbytes, "nbytes does not match shape and dtype");
        const unsigned char *p = t->data;
        check(!t->nbytes || p, "no data");
        for (size_t k = 0; k < t->nbytes; k++)
            sum += p[k];
        total += t->nbytes;
    }
    check(total == size - 8 - hlen, "tensors do not tile the data");
    for (int i = 0; i < mltk_st_meta_count(st); i++) {
        const char *k = mltk_st_meta_key(st, i), *v = mltk_st_meta_value(st, i);
        check(k && v && mltk_st_meta(st, k) == v, "metadata not found by key");
        sum += (unsigned)strlen(k) + (unsigned)strlen(v);
    }
    mltk_st_close(st);
    return 0;
}
