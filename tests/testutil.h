/* testutil.h - small helpers shared by the Check suites.
 *
 * What this is: temporary directories and files, reading files back,
 * capturing stderr, locating the source and build trees (the test
 * environment exports top_srcdir and top_builddir), string asserts that
 * print both strings on failure, and finite differences at an absolute
 * step over tests/fdcheck.h.
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

#include "fdcheck.h"

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

/* ---- finite differences at an absolute step ------------------------------ */

/* fdcheck.h steps each x_i by h = step * max(1, |x_i|).  The layer suites
 * need the step absolute: their inputs are placed so that no perturbation
 * of 1e-2 crosses a kink or changes a window's maximum (max-pooling
 * inputs 0.05 apart reach |x| ~ 6, where a relative step would).  So the
 * harness is run over offsets u from x's values (|u| <= step, hence h =
 * step exactly), and f sees x = x0 + u.  The float rounding of x0 + u
 * differs from fdcheck's own (x_i +- h) by at most half an ulp of x_i,
 * far below its bounds.  x is restored bit for bit. */
typedef struct tu_fd {
    double (*f)(void *ctx);
    void        *ctx;
    float       *x;      /* what f reads */
    const float *x0;     /* its values before the check */
    const float *u;      /* the offsets fdcheck perturbs */
    int64_t      n;
} tu_fd;

static inline double tu_fd_eval(void *c)
{
    tu_fd *t = c;
    for (int64_t i = 0; i < t->n; i++)
        t->x[i] = t->u[i] != 0.0f ? t->x0[i] + t->u[i] : t->x0[i];
    return t->f(t->ctx);
}

/* fd_check_r() of grad (n) against f over x (n) at the absolute step
 * o->step; the report as fd_check_r's. */
static inline int64_t tu_fd_check(const char *what, double (*f)(void *ctx), void *ctx,
                                  float *x, int64_t n, const float *grad, const fd_opts *o,
                                  fd_report *r)
{
    float *x0 = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    float *u = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    ck_assert_ptr_nonnull(x0);
    ck_assert_ptr_nonnull(u);
    memcpy(x0, x, (size_t)n * sizeof(float));
    tu_fd t = { f, ctx, x, x0, u, n };
    int64_t bad = fd_check_r(what, tu_fd_eval, &t, u, n, grad, o, r);
    memcpy(x, x0, (size_t)n * sizeof(float));
    free(x0);
    free(u);
    return bad;
}

/* The bounds the layer suites have always used: central differences at
 * the absolute step `eps`, |analytic - numeric| <= 1e-2 max(|analytic|,
 * |numeric|) + atol, no allowance for kinks (the inputs keep off them)
 * nor for rounding beyond atol. */
static inline fd_opts tu_fd_bounds(double eps, double atol)
{
    fd_opts o = FD_OPTS_DEFAULT;
    o.step = eps;
    o.rel = 1e-2;
    o.abs = atol;
    o.f_noise = 0;
    o.kink = 0;
    return o;
}

#endif /* MLTK_TESTUTIL_H */
