/* cpu_plugin.c - the cpu backend's vtable: lifetime, memory, and the
 * choice of instruction set level.
 *
 * What this is: create/destroy (the thread pool, OpenBLAS's thread count,
 * the optional cblas_sbgemm), the host memory entries, and the level of
 * the kernels a context runs.  The ops themselves (cpu.c and the kernel
 * files) are compiled once per level into a table of `supports`,
 * `workspace` and `run` (cpu_internal.h: cpu_isa_ops); a context holds
 * one, picked at create:
 *   auto       (the default) the best level this CPU runs: x86-64-v4
 *              where it has AVX-512 F/BW/CD/DQ/VL, else x86-64-v3 where it
 *              has AVX2, FMA and BMI2, else generic;
 *   generic, x86-64-v3, x86-64-v4  that level; one the CPU lacks is
 *              refused (MLTK_ERR_UNSUPPORTED), never run or lowered.
 * The choice comes from the environment variable MLTK_CPU_ISA (mltk(1)),
 * read at each create; the level shows in the device name.
 *
 * What this is not: a tuner (the level is not chosen by timing) or a
 * per-op switch (one level for every op of a context, for its life).
 */
#include "config.h"

#include <cblas.h>
#include <dlfcn.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mltk/plugin.h>

#include "pool.h"
#include "cpu_gemm.h"
#include "cpu_internal.h"

/* ---- instruction set level ---- */

static const cpu_isa_ops *const LEVELS[CPU_ISA_LEVELS] = {
    &cpu_isa_table_generic, &cpu_isa_table_v3, &cpu_isa_table_v4,
};

/* 1 if this CPU runs `level`'s code; else 0 and *lacks names what it
 * lacks.  x86-64-v4 includes x86-64-v3, and the AVX-512 kernels of
 * cpu_gemm.c need nothing beyond x86-64-v4. */
static int level_runs(int level, const char **lacks)
{
    *lacks = "";
    if (level == CPU_ISA_GENERIC)
        return 1;
#if CPU_ISA_TARGETS
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("x86-64-v3")) {
        *lacks = "this CPU lacks x86-64-v3 (AVX2, FMA, BMI2)";
        return 0;
    }
    if (level == CPU_ISA_V4 && !(__builtin_cpu_supports("x86-64-v4") && cpu_gemm_available())) {
        *lacks = "this CPU lacks x86-64-v4 (AVX-512 F, BW, CD, DQ, VL)";
        return 0;
    }
    return 1;
#else
    *lacks = "this build has only the generic kernels (not gcc on x86-64)";
    return 0;
#endif
}

/* The level MLTK_CPU_ISA asks for (unset or empty: auto) into *level, or
 * MLTK_ERR_INVALID for a value that names none, MLTK_ERR_UNSUPPORTED for
 * a level this CPU does not run. */
static int level_choose(int *level, char **err)
{
    const char *want = getenv("MLTK_CPU_ISA");
    const char *lacks;
    if (!want || !*want || strcmp(want, "auto") == 0) {
        *level = CPU_ISA_GENERIC;
        for (int l = CPU_ISA_LEVELS - 1; l > CPU_ISA_GENERIC; l--)
            if (level_runs(l, &lacks)) {
                *level = l;
                break;
            }
        return MLTK_OK;
    }
    for (int l = 0; l < CPU_ISA_LEVELS; l++) {
        if (strcmp(want, LEVELS[l]->name) != 0)
            continue;
        if (!level_runs(l, &lacks))
            return mltk_errf(err, MLTK_ERR_UNSUPPORTED, "cpu: MLTK_CPU_ISA=%s: %s", want,
                             lacks);
        *level = l;
        return MLTK_OK;
    }
    return mltk_errf(err, MLTK_ERR_INVALID,
                     "cpu: MLTK_CPU_ISA=%.64s: expected auto, generic, x86-64-v3 or x86-64-v4",
                     want);
}

/* ---- lifetime ---- */

/* The host always runs: nothing to probe. */
static int cpu_probe(const mltk_backend_opts *opts, char **why)
{
    (void)opts;
    (void)why;
    return 1;
}

static int online_cores(void)
{
    int n = 0;
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
#endif
    long on = sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0 || (on > 0 && on < n))
        n = on > 0 ? (int)on : 1;
    return n;
}

/* "OpenBLAS 0.3.21 (SkylakeX kernel)" from what the library reports */
static void blas_describe(char *buf, size_t len)
{
    const char *cfg = openblas_get_config();
    const char *core = openblas_get_corename();
    char ver[32] = "";
    if (cfg && strncmp(cfg, "OpenBLAS ", 9) == 0) {
        size_t k = 0;
        for (const char *s = cfg + 9; *s && *s != ' ' && k + 1 < sizeof ver; s++)
            ver[k++] = *s;
        ver[k] = '\0';
    }
    snprintf(buf, len, "OpenBLAS%s%s%s%s%s", ver[0] ? " " : "", ver,
             core && *core ? " (" : "", core && *core ? core : "",
             core && *core ? " kernel)" : "");
}

/* cblas_sbgemm from the OpenBLAS this plugin is linked against, if that
 * build exports it (Debian's does not): looked up in the library that
 * holds cblas_sgemm, whose reference the context keeps. */
static void find_sbgemm_blas(cpu_ctx *c)
{
    void *sym = dlsym(RTLD_DEFAULT, "cblas_sbgemm");
    Dl_info info;
    if (!sym && dladdr((void *)cblas_sgemm, &info) && info.dli_fname) {
        c->blas_handle = dlopen(info.dli_fname, RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD);
        if (c->blas_handle)
            sym = dlsym(c->blas_handle, "cblas_sbgemm");
    }
    if (sym)
        memcpy(&c->sbgemm_blas, &sym, sizeof sym);
    else if (c->blas_handle) {
        dlclose(c->blas_handle);
        c->blas_handle = NULL;
    }
}

static void cpu_destroy(void *ctx)
{
    cpu_ctx *c = ctx;
    if (!c)
        return;
    cpu_pool_destroy(c->pool);
    free(c->partials);
    free(c->scratch);
    if (c->blas_handle)
        dlclose(c->blas_handle);
    free(c);
}

static int cpu_create(void **ctx, const mltk_backend_opts *opts, char **err)
{
    if (!ctx)
        return mltk_errf(err, MLTK_ERR_INVALID, "cpu: create: no context pointer");
    *ctx = NULL;
    int threads = 0;
    if (opts && opts->size >= offsetof(mltk_backend_opts, threads) + sizeof opts->threads)
        threads = opts->threads;
    if (threads < 0)
        return mltk_errf(err, MLTK_ERR_INVALID,
                         "cpu: threads = %d: expected 0 (all cores) or a positive count",
                         threads);
    if (threads == 0)
        threads = online_cores();
    if (threads > 4096)
        return mltk_errf(err, MLTK_ERR_INVALID, "cpu: threads = %d: at most 4096", threads);
    int level = CPU_ISA_GENERIC;
    int rc = level_choose(&level, err);
    if (rc)
        return rc;

    cpu_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return mltk_errf(err, MLTK_ERR_NOMEM, "cpu: out of memory");
    c->threads = threads;
    c->isa_level = level;
    c->isa = LEVELS[level];
    rc = cpu_pool_create(&c->pool, threads);
    if (rc) {
        cpu_destroy(c);
        return mltk_errf(err, rc == ENOMEM ? MLTK_ERR_NOMEM : MLTK_ERR_BACKEND,
                         "cpu: cannot start %d threads: %s", threads, strerror(rc));
    }
    c->partials = calloc((size_t)cpu_pool_max_chunks(c->pool) * PARTIAL_STRIDE,
                         sizeof *c->partials);
    if (!c->partials) {
        cpu_destroy(c);
        return mltk_errf(err, MLTK_ERR_NOMEM, "cpu: out of memory");
    }
    openblas_set_num_threads(threads);
    find_sbgemm_blas(c);

    char blas[96];
    blas_describe(blas, sizeof blas);
    snprintf(c->name, sizeof c->name, "cpu: %d thread%s, %s, %s kernels", threads,
             threads == 1 ? "" : "s", blas, c->isa->name);
    *ctx = c;
    return MLTK_OK;
}

static const char *cpu_device_name(void *ctx)
{
    cpu_ctx *c = ctx;
    return c ? c->name : "cpu";
}

/* ---- memory ---- */

static int cpu_alloc(void *ctx, size_t bytes, void **ptr)
{
    (void)ctx;
    if (!ptr)
        return MLTK_ERR_INVALID;
    *ptr = NULL;
    /* whole cache lines, so vector tails never straddle into a neighbour */
    if (bytes > SIZE_MAX - 63)
        return MLTK_ERR_NOMEM;
    size_t sz = bytes ? (bytes + 63) & ~(size_t)63 : 64;
    void *p = NULL;
    if (posix_memalign(&p, 64, sz) != 0 || !p)
        return MLTK_ERR_NOMEM;
    *ptr = p;
    return MLTK_OK;
}

static void cpu_free(void *ctx, void *ptr)
{
    (void)ctx;
    free(ptr);
}

static int cpu_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
    (void)ctx;
    if (bytes == 0)
        return MLTK_OK;
    if (!dst || !src)
        return MLTK_ERR_INVALID;
    if (dst != src)
        memmove(dst, src, bytes);
    return MLTK_OK;
}

static int cpu_sync(void *ctx)
{
    (void)ctx;
    return MLTK_OK;
}

/* ---- ops: the context's level ---- */

static int cpu_supports(void *ctx, mltk_op op, mltk_dtype dt)
{
    cpu_ctx *c = ctx;
    return (c ? c->isa : LEVELS[CPU_ISA_GENERIC])->supports(ctx, op, dt);
}

static size_t cpu_workspace(void *ctx, const mltk_op_call *call)
{
    cpu_ctx *c = ctx;
    return c ? c->isa->workspace(ctx, call) : 0;
}

static int cpu_run(void *ctx, const mltk_op_call *call, char **err)
{
    cpu_ctx *c = ctx;
    if (!c)
        return mltk_errf(err, MLTK_ERR_INVALID, "cpu: run: no context");
    return c->isa->run(ctx, call, err);
}

/* ---- extensions ---- */

static void *cpu_get_proc(void *ctx, const char *name)
{
    (void)ctx;
    (void)name;
    return NULL;  /* no extra ops yet */
}

/* ---- the plugin ---- */

static const struct mltk_backend_i cpu_iface = {
    .size = sizeof(struct mltk_backend_i),
    .probe = cpu_probe,
    .create = cpu_create,
    .destroy = cpu_destroy,
    .device_name = cpu_device_name,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .sync = cpu_sync,
    .supports = cpu_supports,
    .workspace = cpu_workspace,
    .run = cpu_run,
    .get_proc = cpu_get_proc,
};

MLTK_PLUGIN(cpu, MLTK_KIND_BACKEND, &cpu_iface)
