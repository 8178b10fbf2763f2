/* fuzz_cifar.c - a libFuzzer harness for the checks of the cifar dataset
 * plugin (datasets/cifar.c).
 *
 * What this is: the plugin's source is included, so that its static
 * record check cifar_check(), its class-names parser cifar_names() and
 * its sample reader cifar_get() are reached without files.  Byte 0 of an
 * input chooses what the rest is (modulo 6): 0 a CIFAR-10 file, 1 a
 * CIFAR-100 file read by fine label, 2 by coarse label, 3 to 5 a names
 * file of 10, 100 or 20 classes.  The rest is copied to a buffer of its
 * exact size, so that a read past its end is caught.  A rejection must
 * be MLTK_ERR_DATA with a message that starts with the file's name and
 * names a byte offset (records) or a line (names); an accepted records
 * file is checked (whole records, every label in range, and every sample
 * read back equal to its record), as are accepted names (as many as
 * classes, none empty, no control character, no trailing blank).
 * What this is not: a test of opening a split (files, checksums), which
 * check_cifar does.
 */
#include "config.h"

#include "cifar.c"

#include "fuzz.h"

#define NAME "fuzz_cifar"

static void fuzz_records(const uint8_t *buf, int64_t size, int variant, int coarse)
{
    static const char path[] = "data_batch_1.bin";
    cifar_layout l = cifar_layout_of(variant, coarse);
    int64_t records = -1;
    char *err = NULL;
    int rc = cifar_check(buf, size, &l, path, &records, &err);

    if (rc) {
        fuzz_check(rc == MLTK_ERR_DATA, NAME, "a rejection that is not MLTK_ERR_DATA");
        fuzz_check(fuzz_names(err, path), NAME, "a message that does not start with the file");
        fuzz_check(strstr(err, "byte ") != NULL, NAME, "a message without a byte offset");
        fuzz_check(records == 0, NAME, "a rejection with records");
        free(err);
        return;
    }
    fuzz_check(!err, NAME, "accepted with a message");
    fuzz_check(records >= 1 && records * l.record == size, NAME,
               "records that do not fill the file");

    cifar_set s;
    memset(&s, 0, sizeof(s));
    s.l = l;
    s.n_files = 1;
    s.map[0] = (void *)buf;
    s.len[0] = (size_t)size;
    s.first[1] = records;
    s.n = records;
    uint8_t x[CIFAR_PIXELS];
    int32_t y;
    for (int64_t i = 0; i < records; i++) {
        const uint8_t *rec = buf + i * l.record;
        fuzz_check(cifar_get(&s, i, x, &y, &err) == MLTK_OK, NAME, "get failed");
        fuzz_check(y >= 0 && y < l.n_classes, NAME, "an accepted label out of range");
        fuzz_check(y == rec[l.label_at], NAME, "a label that differs from the record");
        fuzz_check(memcmp(x, rec + l.record - CIFAR_PIXELS, CIFAR_PIXELS) == 0, NAME,
                   "pixels that differ from the record");
    }
    fuzz_check(cifar_get(&s, records, x, &y, &err) == MLTK_ERR_INVALID, NAME,
               "get past the end accepted");
    free(err);
}

static void fuzz_class_names(const uint8_t *buf, int64_t size, int want)
{
    static const char path[] = "batches.meta.txt";
    char **names = (char **)1;
    char *err = NULL;
    int rc = cifar_names(&names, buf, size, want, path, &err);

    if (rc) {
        fuzz_check(rc == MLTK_ERR_DATA, NAME, "a rejection that is not MLTK_ERR_DATA");
        fuzz_check(fuzz_names(err, path), NAME, "a message that does not start with the file");
        fuzz_check(!names, NAME, "a rejection with names");
        free(err);
        return;
    }
    fuzz_check(!err && names, NAME, "accepted without names or with a message");
    for (int c = 0; c < want; c++) {
        size_t len = names[c] ? strlen(names[c]) : 0;
        fuzz_check(len > 0, NAME, "an empty name");
        for (size_t k = 0; k < len; k++)
            fuzz_check((unsigned char)names[c][k] >= 0x20 && names[c][k] != 0x7f, NAME,
                       "a control character in a name");
        fuzz_check(names[c][len - 1] != ' ' && names[c][len - 1] != '\t', NAME,
                   "a trailing blank in a name");
    }
    fuzz_check(names[want] == NULL, NAME, "names not NULL-terminated");
    free(names);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int mode = data[0] % 6;
    size_t n = size - 1;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        abort();
    if (n)
        memcpy(buf, data + 1, n);
    switch (mode) {
    case 0: fuzz_records(buf, (int64_t)n, 10, 0); break;
    case 1: fuzz_records(buf, (int64_t)n, 100, 0); break;
    case 2: fuzz_records(buf, (int64_t)n, 100, 1); break;
    case 3: fuzz_class_names(buf, (int64_t)n, 10); break;
    case 4: fuzz_class_names(buf, (int64_t)n, 100); break;
    default: fuzz_class_names(buf, (int64_t)n, 20); break;
    }
    free(buf);
    return 0;
}
