/* fuzz_tokens.c - a libFuzzer harness for the token-file parser of the
 * tokens and text dataset plugins (datasets/tokens.c).
 *
 * What this is: the plugin's source is included, so that its static
 * parser tok_parse() and its sample reader tok_get() are reached without
 * files.  The first 6 bytes of an input choose the layout: byte 0 the
 * format (0 text bytes, 1 raw uint16, 2 raw uint32, 3 llm.c uint16, 4
 * llm.c uint32, modulo 5), byte 1 the raw header length, bytes 2-3 the
 * vocabulary (little-endian, 0 meaning 65536), byte 4 the context and
 * byte 5 the stride (both 1 + value % 16); the rest is the file, copied
 * to a buffer of its exact size so that a read past its end is caught.
 * A rejection must be MLTK_ERR_DATA with a message that starts with the
 * file's name and names a byte offset; an accepted file is checked: its
 * tokens lie inside the buffer and fill it to the end, every id is below
 * the vocabulary, and every window read back equals the bytes.
 * What this is not: a test of opening splits (files, test_tail), which
 * check_tokens does.
 */
#include "config.h"

#include "tokens.c"

#include "fuzz.h"

#define NAME "fuzz_tokens"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char path[] = "tokens.bin";
    if (size < 6)
        return 0;
    tok_format f;
    memset(&f, 0, sizeof(f));
    int mode = data[0] % 5;
    f.width = mode == 0 ? 1 : mode == 1 || mode == 3 ? 2 : 4;
    f.llmc = mode >= 3;
    f.header = f.llmc ? 0 : data[1];
    f.vocab = mode == 0 ? 256 : (data[2] | data[3] << 8) ? (data[2] | data[3] << 8) : 65536;
    int64_t context = 1 + data[4] % 16, stride = 1 + data[5] % 16;
    size_t n = size - 6;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        abort();
    if (n)
        memcpy(buf, data + 6, n);

    tok_view v;
    char *err = NULL;
    int rc = tok_parse(&v, buf, (int64_t)n, &f, path, &err);
    if (rc) {
        fuzz_check(rc == MLTK_ERR_DATA, NAME, "a rejection that is not MLTK_ERR_DATA");
        fuzz_check(fuzz_names(err, path), NAME, "a message that does not start with the file");
        fuzz_check(strstr(err, "byte ") != NULL, NAME, "a message without a byte offset");
        free(err);
        free(buf);
        return 0;
    }
    fuzz_check(!err, NAME, "accepted with a message");
    fuzz_check(v.width == f.width && v.n >= 1, NAME, "a width or count that is wrong");
    fuzz_check(v.data == buf + v.offset && v.offset + v.n * v.width == (int64_t)n, NAME,
               "tokens that do not end at the end of the file");
    fuzz_check(v.offset == (f.llmc ? LLMC_HEADER : f.header), NAME, "a wrong data offset");
    for (int64_t k = 0; k < v.n; k++)
        fuzz_check(tok_at(v.data, v.width, k) < (uint64_t)f.vocab, NAME,
                   "an accepted id >= vocab");

    /* the windows, as the plugin serves them */
    if (v.n >= context + 1) {
        tok_set s;
        memset(&s, 0, sizeof(s));
        s.data = v.data;
        s.width = v.width;
        s.n_tokens = v.n;
        s.context = context;
        s.stride = stride;
        s.vocab = f.vocab;
        s.n = (v.n - context - 1) / stride + 1;
        fuzz_check((s.n - 1) * stride + context < v.n, NAME, "a window past the end");
        int32_t x[16], y;
        for (int64_t i = 0; i < s.n; i++) {
            fuzz_check(tok_get(&s, i, x, &y, &err) == MLTK_OK, NAME, "get failed");
            for (int64_t t = 0; t <= context; t++) {
                const uint8_t *p = v.data + (i * stride + t) * v.width;
                uint32_t id = v.width == 1 ? p[0]
                            : v.width == 2 ? (uint32_t)(p[0] | p[1] << 8)
                            : (uint32_t)p[0] | (uint32_t)p[1] << 8 |
                              (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
                fuzz_check((t < context ? (uint32_t)x[t] : (uint32_t)y) == id, NAME,
                           "a window that differs from the file");
            }
        }
        fuzz_check(tok_get(&s, s.n, x, &y, &err) == MLTK_ERR_INVALID, NAME,
                   "get past the end accepted");
        free(err);
    }
    free(buf);
    return 0;
}
