/* testutil.h - small helpers shared by the Check suites.
 *
 * What this is: temporary directories and files, reading files back,
 * capturing stderr, locating the source and build trees (the test
 * environment exports top_srcdir and top_builddir), and string asserts
 * that print both strings on failure.
 * What this is not: a test framework; the suites use Check directly.
 * Everything here is static inline so each suite takes only what it uses.
 */
#ifndef MLTK_TESTUTIL_H
#define MLTK_TESTUTIL_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- trees ---------------------------------------------------------------- */

static inline const char *tu_srcdir(void)
{
    const char *s = getenv("top_srcdir");
    return s && *s ? s : ".";
}

static inline const char *tu_builddir(void)
{
    const char *s = getenv("top_builddir");
    return s && *s ? s : ".";
}

/* ---- strings -------------------------------------------------------------- */

/* malloc()ed printf; aborts the test on failure */
static inline char *tu_fmt(const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    char *s = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(s);
    vsnprintf(s, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return s;
}

#define TU_ASSERT_CONTAINS(hay, needle)                                        \
    do {                                                                       \
        const char *tu_h_ = (hay), *tu_n_ = (needle);                          \
        ck_assert_msg(tu_h_ && strstr(tu_h_, tu_n_),                           \
                      "expected \"%s\" in \"%s\"", tu_n_,                      \
                      tu_h_ ? tu_h_ : "(null)");                               \
    } while (0)

/* ---- temporary files ------------------------------------------------------ */

/* A fresh directory under $TMPDIR (or /tmp); malloc()ed path. */
static inline char *tu_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *tmpl = tu_fmt("%s/mltk-test-XXXXXX", base && *base ? base : "/tmp");
    ck_assert_msg(mkdtemp(tmpl) != NULL, "mkdtemp: %s", strerror(errno));
    return tmpl;
}

static inline int tu_rm_one(const char *path, const struct stat *st, int flag,
                            struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Remove a directory tree made by the test. */
static inline void tu_rmtree(const char *dir)
{
    if (dir)
        nftw(dir, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Write `text` to dir/name (dir NULL: name is the path); malloc()ed path. */
static inline char *tu_write(const char *dir, const char *name, const char *text)
{
    char *path = dir ? tu_fmt("%s/%s", dir, name) : tu_fmt("%s", name);
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s: %s", path, strerror(errno));
    fwrite(text, 1, strlen(text), f);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

/* The whole file, malloc()ed and NUL-terminated; NULL if unreadable. */
static inline char *tu_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (len + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

/* ---- capturing stderr ----------------------------------------------------- */

typedef struct tu_capture {
    int   saved_fd;
    char *path;
} tu_capture;

/* Redirect stderr into a temporary file until tu_capture_end(). */
static inline void tu_capture_begin(tu_capture *c)
{
    const char *base = getenv("TMPDIR");
    c->path = tu_fmt("%s/mltk-stderr-XXXXXX", base && *base ? base : "/tmp");
    int fd = mkstemp(c->path);
    ck_assert_int_ge(fd, 0);
    fflush(stderr);
    c->saved_fd = dup(2);
    ck_assert_int_ge(c->saved_fd, 0);
    ck_assert_int_ge(dup2(fd, 2), 0);
    close(fd);
}

/* Restore stderr; returns what was written (malloc()ed). */
static inline char *tu_capture_end(tu_capture *c)
{
    fflush(stderr);
    ck_assert_int_ge(dup2(c->saved_fd, 2), 0);
    close(c->saved_fd);
    char *text = tu_read(c->path);
    ck_assert_ptr_nonnull(text);
    unlink(c->path);
    free(c->path);
    return text;
}

/* ---- deterministic test data --------------------------------------------- */

/* Per-element checks call ck_abort_msg only on failure (a passing
 * ck_assert costs a round trip through Check's pipe). */
#define EXPECT(cond, ...) do { if (!(cond)) ck_abort_msg(__VA_ARGS__); } while (0)

/* xorshift64 state, one per test program */
static inline uint64_t *tu_rng_state(void)
{
    static uint64_t state = 0x9e3779b97f4a7c15ull;
    return &state;
}

static inline void tu_rng_seed(uint64_t s)
{
    *tu_rng_state() = s * 0x9e3779b97f4a7c15ull + 1;
}

/* uniform in [-1, 1) */
static inline double tu_urand(void)
{
    uint64_t x = *tu_rng_state();
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *tu_rng_state() = x;
    return (double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

#endif /* MLTK_TESTUTIL_H */
