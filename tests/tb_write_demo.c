/* tb_write_demo.c - writes one TensorBoard event file of known events.
 *
 * What this is: the writer's side of tests/test_tb_interop.sh.
 *   tests/tb_write_demo DIR
 * creates an event file in DIR (made if missing) and prints its path.
 * The events, which the test expects back from every reader:
 *   scalar "loss"  steps 0..3: 1.5, 0.75, 0.375, 0.1 (stored as a float)
 *   scalar "lr"    step 2^40: -2.5
 *   histogram "weights/fc1" step 1: 0, 1, ..., 30, 2.5, 2.5, NaN, +Inf, -Inf
 *   histogram "empty" step 2: NaN only;  "const" step 2: 4, 4, 4
 *   text "notes" step 0: Markdown with non-ASCII letters and a newline
 * What this is not: a test by itself; it checks nothing but status codes.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tbevents.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    mltk_tb_writer *w = NULL;
    char *err = NULL;
    int rc = mltk_tb_open(&w, argv[1], "demo-host", &err);
    if (rc)
        goto out;

    static const double loss[] = { 1.5, 0.75, 0.375, 0.1 };
    for (int i = 0; i < 4 && !rc; i++)
        rc = mltk_tb_scalar(w, "loss", i, loss[i], &err);
    if (!rc)
        rc = mltk_tb_scalar(w, "lr", (int64_t)1 << 40, -2.5, &err);

    float v[36];
    int n = 0;
    for (int i = 0; i <= 30; i++)
        v[n++] = (float)i;
    v[n++] = 2.5f;
    v[n++] = 2.5f;
    v[n++] = NAN;
    v[n++] = INFINITY;
    v[n++] = -INFINITY;
    if (!rc)
        rc = mltk_tb_histogram(w, "weights/fc1", 1, v, n, &err);
    float nan1[1] = { NAN }, four[3] = { 4, 4, 4 };
    if (!rc)
        rc = mltk_tb_histogram(w, "empty", 2, nan1, 1, &err);
    if (!rc)
        rc = mltk_tb_histogram(w, "const", 2, four, 3, &err);
    if (!rc)
        rc = mltk_tb_text(w, "notes", 0,
                          "**mltk** run: lr = 0.1 \xe2\x80\x94 \xc3\xbcn\xc3\xaf" "code\n"
                          "second line", &err);
    if (!rc)
        rc = mltk_tb_flush(w, &err);
    if (!rc)
        printf("%s\n", mltk_tb_path(w));
out:
    if (rc)
        fprintf(stderr, "tb_write_demo: %s\n", err ? err : mltk_status_str(rc));
    free(err);
    mltk_tb_close(w);
    return rc ? 1 : 0;
}
