/* fuzz.h - what the fuzz harnesses in this directory share.
 *
 * What this is: the entry points libFuzzer calls (declared here so that
 * the harnesses build with -Wmissing-prototypes), a check that aborts
 * with a message (so that libFuzzer, and the replay driver under a
 * debugger, stop at the broken promise), and the writing of an input to a
 * file for the readers that take a path.
 * What this is not: a fuzzing engine.  libFuzzer (clang -fsanitize=fuzzer)
 * or the replay driver (driver.c) supplies main().
 */
#ifndef MLTK_FUZZ_H
#define MLTK_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Abort with "NAME: what" unless ok. */
static inline void fuzz_check(int ok, const char *name, const char *what)
{
    if (!ok) {
        fprintf(stderr, "%s: %s\n", name, what);
        abort();
    }
}

/* Whether message msg starts with "prefix:". */
static inline int fuzz_names(const char *msg, const char *prefix)
{
    size_t n = strlen(prefix);
    return msg && strncmp(msg, prefix, n) == 0 && msg[n] == ':';
}

/* The input as a NUL-terminated malloc()ed string (text readers). */
static inline char *fuzz_text(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* The directory for the input files: $TMPDIR, else /dev/shm where it can
 * be written (a file on disk costs some 3 ms an input), else /tmp. */
static inline const char *fuzz_tmpdir(void)
{
    const char *tmp = getenv("TMPDIR");
    if (tmp && *tmp)
        return tmp;
    return access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
}

static const char *fuzz_file_path;

static inline void fuzz_file_remove(void)
{
    if (fuzz_file_path)
        unlink(fuzz_file_path);
}

/* Write the input to a file named DIR/fuzz_STEM.PID (DIR as above), the
 * same file for every input of this process and removed at its exit; the
 * path is in path, which the caller may have named already (an empty path
 * is named here). */
static inline void fuzz_file(char *path, size_t len, const char *stem,
                             const uint8_t *data, size_t size)
{
    if (!path[0])
        snprintf(path, len, "%s/fuzz_%s.%ld", fuzz_tmpdir(), stem, (long)getpid());
    if (!fuzz_file_path) {
        fuzz_file_path = path;
        atexit(fuzz_file_remove);
    }
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f)) {
        fprintf(stderr, "fuzz: cannot write %s\n", path);
        abort();
    }
}

#endif
