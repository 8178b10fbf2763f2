/* cuda.c - the cuda backend: the op table of backend.h (plugin ABI 2) on
 * one NVIDIA GPU (sm_90 code, PTX for newer), in f32, and in bf16 and f16
 * where `supports` says so.
 *
 * What this is: the plugin's lifetime (probe, create, destroy), its
 * memory, its errors and the op table: `supports`, `workspace`, and `run`,
 * one switch over the op id that unpacks a checked call's typed tensors
 * (data pointers, sizes from the shapes, row strides where an op allows
 * them: gemm and copy_2d) and params into the op families of cuda_ops.c,
 * cuda_conv.c and cuda_nn.c.  The core checks each call against its op's
 * contract before `run` sees it (core/op.c), so nothing here checks sizes,
 * pointers or parameter ranges again.  One context owns one device, one
 * non-blocking stream on which every op runs in call order, a cuBLAS
 * handle (gemm), a cuDNN handle (convolution) and:
 *   - a caching allocator: blocks are rounded up to size classes (quarter
 *     steps between powers of two) and freed blocks go to per-class free
 *     lists, so a training step, which frees and allocates the same sizes
 *     over and over, never reaches cudaMalloc once the first step is done;
 *   - two pinned staging buffers that uploads fill alternately (a buffer
 *     is reused once the copy out of it has finished), so `upload` returns
 *     as soon as the data is staged; `download` is synchronous, as the
 *     contract says;
 *   - a growing scratch area for the ops' partial sums;
 *   - a device flag that kernels raise on bad data the core cannot see
 *     (labels, embedding ids, gather indices: those are guarded in the
 *     kernels, which then read nothing and write zeros).  No op waits for
 *     the device to find out: the next `download` or `sync`, which wait
 *     anyway, read the flag along with the data, clear it and fail with
 *     MLTK_ERR_DATA, the log saying which kind of value was bad.
 *
 * Precision: f32 everywhere; bf16 and f16 for the elementwise ops, casts,
 * sums, the non-finite check, gemm (f32 accumulation) and convolution
 * (f32 compute).  TF32 tensor cores for f32 gemm and convolution are off
 * unless mltk_backend_opts.tf32 asks for them; get_proc("cuda_set_tf32")
 * returns int (*)(void *ctx, int on) to switch them later.
 *
 * Errors: a failed CUDA, cuBLAS or cuDNN call inside `run` becomes the
 * call's *err ("gemm: cuBLAS: CUBLAS_STATUS_... for C ...", "CUDA: out of
 * memory allocating N bytes") and MLTK_ERR_BACKEND or MLTK_ERR_NOMEM; the
 * memory calls, which have no message out, log it.
 *
 * What this is not: multi-GPU (one device per context, chosen by
 * mltk_backend_opts.device), or CUDA graph capture (which the ops allow:
 * none of them waits or allocates once the first step has sized the
 * cache and scratch).  The plugin links libcudart, libcublas and libcudnn;
 * a machine without them fails to load it, which the core reports before
 * falling back.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cudnn.h>

#include "cuda_internal.h"

/* ---- errors ---- */

static void fail_v(cuda_ctx *c, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (c && c->err) {
        mltk_log(MLTK_LOG_DEBUG, "cuda: %s", msg);
        if (!*c->err)
            *c->err = strdup(msg);  /* NULL if out of memory: the core says the status */
    } else {
        mltk_log(MLTK_LOG_ERROR, "cuda: %s", msg);
    }
}

int cuda_failf(cuda_ctx *c, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_v(c, fmt, ap);
    va_end(ap);
    return status;
}

int cuda_fail(cuda_ctx *c, const char *op, cudaError_t e)
{
    (void)cudaGetLastError();  /* clear it unless it is sticky */
    return cuda_failf(c, e == cudaErrorMemoryAllocation ? MLTK_ERR_NOMEM : MLTK_ERR_BACKEND,
                      "%s: CUDA: %s (%s)", op, cudaGetErrorString(e), cudaGetErrorName(e));
}

int cuda_fail_blas(cuda_ctx *c, const char *op, cublasStatus_t st)
{
    return cuda_failf(c, st == CUBLAS_STATUS_ALLOC_FAILED ? MLTK_ERR_NOMEM : MLTK_ERR_BACKEND,
                      "%s: cuBLAS: %s (%s)", op, cublasGetStatusName(st),
                      cublasGetStatusString(st));
}

int cuda_fail_dnn(cuda_ctx *c, const char *op, cudnnStatus_t st)
{
    return cuda_failf(c, st == CUDNN_STATUS_ALLOC_FAILED ? MLTK_ERR_NOMEM : MLTK_ERR_BACKEND,
                      "%s: cuDNN: %s", op, cudnnGetErrorString(st));
}

/* ---- the context's device ---- */

int cu_set_device(cuda_ctx *c)
{
    int cur = -1;
    cudaError_t e = cudaGetDevice(&cur);
    if (e == cudaSuccess && cur == c->device)
        return MLTK_OK;
    e = cudaSetDevice(c->device);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return cuda_failf(c, MLTK_ERR_BACKEND, "cannot make device %d current: CUDA: %s (%s)",
                          c->device, cudaGetErrorString(e), cudaGetErrorName(e));
    }
    return MLTK_OK;
}

/* ---- the caching allocator ---- */

#define CLASS_MIN ((size_t)512)

/* The class of a request: 512 bytes at least, else rounded up to a
 * quarter of the power of two below it (at most 25% waste).  0 when the
 * rounding overflows. */
static size_t class_size(size_t bytes)
{
    if (bytes <= CLASS_MIN)
        return CLASS_MIN;
    int top = 63 - __builtin_clzll((unsigned long long)(bytes - 1));
    size_t step = (size_t)1 << (top - 2);
    if (bytes > SIZE_MAX - (step - 1))
        return 0;
    return (bytes + step - 1) & ~(step - 1);
}

static size_t live_slot(uintptr_t key, size_t cap)
{
    uint64_t h = (uint64_t)(key >> 8) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (cap - 1);
}

static int live_put(cuda_cache *k, uintptr_t key, size_t size)
{
    if ((k->live_n + 1) * 2 > k->live_cap) {
        size_t cap = k->live_cap ? k->live_cap * 2 : 256;
        cuda_live *t = calloc(cap, sizeof *t);
        if (!t)
            return MLTK_ERR_NOMEM;
        for (size_t i = 0; i < k->live_cap; i++) {
            if (!k->live[i].key)
                continue;
            size_t j = live_slot(k->live[i].key, cap);
            while (t[j].key)
                j = (j + 1) & (cap - 1);
            t[j] = k->live[i];
        }
        free(k->live);
        k->live = t;
        k->live_cap = cap;
    }
    size_t j = live_slot(key, k->live_cap);
    while (k->live[j].key)
        j = (j + 1) & (k->live_cap - 1);
    k->live[j].key = key;
    k->live[j].size = size;
    k->live_n++;
    return MLTK_OK;
}

/* Remove `key`; its size, or 0 when it is not a live block.  Linear
 * probing with backward-shift deletion keeps every chain unbroken. */
static size_t live_take(cuda_cache *k, uintptr_t key)
{
    if (!k->live_cap)
        return 0;
    const size_t mask = k->live_cap - 1;
    size_t j = live_slot(key, k->live_cap);
    while (k->live[j].key && k->live[j].key != key)
        j = (j + 1) & mask;
    if (!k->live[j].key)
        return 0;
    size_t size = k->live[j].size;
    size_t hole = j;
    for (size_t i = (j + 1) & mask; k->live[i].key; i = (i + 1) & mask) {
        size_t home = live_slot(k->live[i].key, k->live_cap);
        /* move entry i into the hole unless its home lies in (hole, i] */
        int stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!stays) {
            k->live[hole] = k->live[i];
            hole = i;
        }
    }
    k->live[hole].key = 0;
    k->live[hole].size = 0;
    k->live_n--;
    return size;
}

static cuda_bin *bin_of(cuda_cache *k, size_t size, int create)
{
    for (int i = 0; i < k->n_bins; i++)
        if (k->bins[i].size == size)
            return &k->bins[i];
    if (!create)
        return NULL;
    if (k->n_bins == k->cap_bins) {
        int cap = k->cap_bins ? 2 * k->cap_bins : 32;
        cuda_bin *b = realloc(k->bins, (size_t)cap * sizeof *b);
        if (!b)
            return NULL;
        k->bins = b;
        k->cap_bins = cap;
    }
    cuda_bin *b = &k->bins[k->n_bins++];
    memset(b, 0, sizeof *b);
    b->size = size;
    return b;
}

/* cudaFree every cached block (waits for the device).  A block whose
 * cudaFree fails is dropped from the cache all the same (the error is
 * logged and returned: it is sticky or the pointer is bad, either way the
 * block cannot be handed out again). */
static int cache_release(cuda_ctx *c)
{
    cuda_cache *k = &c->cache;
    int rc = MLTK_OK;
    for (int i = 0; i < k->n_bins; i++) {
        for (int j = 0; j < k->bins[i].n; j++) {
            cudaError_t e = cudaFree(k->bins[i].ptrs[j]);
            if (e != cudaSuccess && rc == MLTK_OK)
                rc = cuda_fail(c, "release cached memory: cudaFree", e);
        }
        k->bins[i].n = 0;
    }
    k->bytes_cached = 0;
    return rc;
}

int cuda_mem_alloc(cuda_ctx *c, size_t bytes, void **ptr)
{
    *ptr = NULL;
    size_t size = class_size(bytes);
    if (!size)
        return MLTK_ERR_NOMEM;
    cuda_cache *k = &c->cache;
    cuda_bin *b = bin_of(k, size, 0);
    void *p = NULL;
    if (b && b->n > 0) {
        p = b->ptrs[--b->n];
        k->bytes_cached -= size;
    } else {
        cudaError_t e = cudaMalloc(&p, size);
        if (e == cudaErrorMemoryAllocation && k->bytes_cached > 0) {
            /* give the cached blocks back once the work queued on them is
             * done; if the stream failed, that work may still read them */
            (void)cudaGetLastError();
            cudaError_t se = cudaStreamSynchronize(c->stream);
            if (se != cudaSuccess)
                return cuda_fail(c, "alloc: cudaStreamSynchronize", se);
            int rc = cache_release(c);
            if (rc)
                return rc;
            e = cudaMalloc(&p, size);
        }
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            if (e == cudaErrorMemoryAllocation) {
                /* outside an op the core's message says it (alloc of N bytes) */
                if (c->err)
                    return cuda_failf(c, MLTK_ERR_NOMEM, "CUDA: out of memory allocating "
                                      "%zu bytes", size);
                mltk_log(MLTK_LOG_DEBUG, "cuda: alloc: %zu bytes: %s", size,
                         cudaGetErrorString(e));
                return MLTK_ERR_NOMEM;
            }
            return cuda_fail(c, "alloc: cudaMalloc", e);
        }
    }
    if (live_put(k, (uintptr_t)p, size)) {
        cudaError_t e = cudaFree(p);  /* nothing queued uses p yet */
        if (e != cudaSuccess)
            return cuda_fail(c, "alloc: cudaFree", e);
        return cuda_failf(c, MLTK_ERR_NOMEM, "out of host memory recording a block");
    }
    k->bytes_live += size;
    *ptr = p;
    return MLTK_OK;
}

int cuda_mem_free(cuda_ctx *c, void *ptr)
{
    if (!ptr)
        return MLTK_OK;
    cuda_cache *k = &c->cache;
    size_t size = live_take(k, (uintptr_t)ptr);
    if (!size) {
        mltk_log(MLTK_LOG_WARN, "cuda: free: %p was not allocated by this backend", ptr);
        return MLTK_ERR_INVALID;
    }
    k->bytes_live -= size;
    cuda_bin *b = bin_of(k, size, 1);
    if (b && b->n == b->cap) {
        int cap = b->cap ? 2 * b->cap : 8;
        void **np = realloc(b->ptrs, (size_t)cap * sizeof *np);
        if (np) {
            b->ptrs = np;
            b->cap = cap;
        }
    }
    if (!b || b->n == b->cap) {
        /* no room to cache it: give it back after the work queued on it;
         * if the stream failed, that work may still use it: keep (leak) it */
        cudaError_t e = cudaStreamSynchronize(c->stream);
        if (e != cudaSuccess)
            return cuda_fail(c, "free: cudaStreamSynchronize", e);
        e = cudaFree(ptr);
        if (e != cudaSuccess)
            return cuda_fail(c, "free: cudaFree", e);
        return MLTK_OK;
    }
    b->ptrs[b->n++] = ptr;
    k->bytes_cached += size;
    return MLTK_OK;
}

/* teardown: errors are logged, the host side is released regardless */
static void cache_destroy(cuda_ctx *c)
{
    cuda_cache *k = &c->cache;
    (void)cache_release(c);
    int failed = 0;
    for (size_t i = 0; i < k->live_cap; i++)
        if (k->live[i].key) {
            cudaError_t e = cudaFree((void *)k->live[i].key);
            if (e != cudaSuccess && !failed++)
                (void)cuda_fail(c, "destroy: cudaFree", e);
        }
    for (int i = 0; i < k->n_bins; i++)
        free(k->bins[i].ptrs);
    free(k->bins);
    free(k->live);
    memset(k, 0, sizeof *k);
}

/* ---- scratch and the device flag ---- */

int cuda_scratch(cuda_ctx *c, size_t bytes, void **ptr, const char *op)
{
    if (bytes > c->scratch_bytes) {
        /* the old area goes back to the cache: ops are stream-ordered, so
         * work still queued on it finishes before anything reuses it */
        size_t want = bytes < ((size_t)1 << 20) ? ((size_t)1 << 20) : bytes;
        void *p = NULL;
        int rc = cuda_mem_alloc(c, want, &p);
        if (rc) {
            (void)op;  /* cuda_mem_alloc has said how many bytes it could not get */
            return rc;
        }
        void *old = c->scratch;
        c->scratch = p;
        c->scratch_bytes = want;
        rc = cuda_mem_free(c, old);
        if (rc)
            return rc;
    }
    *ptr = c->scratch;
    return MLTK_OK;
}

/* Queue the copy of the device flag to its pinned host copy, to be read
 * by flag_check after the stream has been waited for. */
static int flag_queue(cuda_ctx *c, const char *op)
{
    CU_TRY(op, cudaMemcpyAsync(c->hflag, c->dflag, sizeof *c->hflag, cudaMemcpyDeviceToHost,
                               c->stream));
    return MLTK_OK;
}

/* After a wait that followed flag_queue: MLTK_ERR_DATA when a kernel
 * raised the flag since it was last cleared (then the flag is cleared and
 * what was bad is logged), else MLTK_OK. */
static int flag_check(cuda_ctx *c, const char *op)
{
    unsigned bad = *c->hflag;
    if (!bad)
        return MLTK_OK;
    *c->hflag = 0;
    CU_TRY(op, cudaMemsetAsync(c->dflag, 0, sizeof *c->dflag, c->stream));
    mltk_log(MLTK_LOG_ERROR, "cuda: %s: an op since the last download or sync met bad data: "
             "%s%s%s(those rows were read as zeros or counted 0)", op,
             bad & CK_BAD_LABEL ? "a label outside [0, classes) (softmax_xent, "
                                  "count_correct); " : "",
             bad & CK_BAD_ID ? "an embedding id that is not an integer in [0, vocab); " : "",
             bad & CK_BAD_INDEX ? "a gather index outside [0, rows of the source) "
                                  "(gather_rows, gather_augment_2d); " : "");
    return MLTK_ERR_DATA;
}

/* ---- lifetime ---- */

/* "13.0" from a CUDA version number such as 13000 */
static void cuda_version_str(int v, char *buf, size_t len)
{
    snprintf(buf, len, "%d.%d", v / 1000, (v % 1000) / 10);
}

/* Whether device `dev` can run this build: compute capability 9.0 or newer
 * (the plugin carries sm_90 code and compute_90 PTX) and not in the
 * compute-prohibited mode.  1 if so; else 0 and the reason in why[len].
 * probe and create both decide with this, so that a probe that succeeds
 * means create can start on some device and create refuses a device for
 * the same reasons. */
static int cu_device_usable(int dev, char *why, size_t len)
{
    int major = 0, minor = 0, mode = cudaComputeModeDefault;
    cudaError_t e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    if (e == cudaSuccess)
        e = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    if (e == cudaSuccess)
        e = cudaDeviceGetAttribute(&mode, cudaDevAttrComputeMode, dev);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        snprintf(why, len, "cannot be queried: %s (%s)", cudaGetErrorString(e),
                 cudaGetErrorName(e));
        return 0;
    }
    if (major < 9) {
        snprintf(why, len, "has compute capability %d.%d; this build carries code for 9.0 "
                 "and newer", major, minor);
        return 0;
    }
    if (mode == cudaComputeModeProhibited) {
        snprintf(why, len, "is in the compute-prohibited mode (nvidia-smi -c)");
        return 0;
    }
    return 1;
}

/* "usable devices: 0, 2" or "no usable device" for create's messages */
static void cu_usable_list(int count, char *buf, size_t len)
{
    char why[160];
    size_t at = 0;
    buf[0] = 0;
    for (int d = 0; d < count && at < len; d++)
        if (cu_device_usable(d, why, sizeof why))
            at += (size_t)snprintf(buf + at, len - at, "%s%d", at ? ", " : "usable: ", d);
    if (!at)
        snprintf(buf, len, "none of them is usable");
}

/* the device index opts ask for (0 when opts do not carry one) */
static int opts_device(const mltk_backend_opts *opts)
{
    if (opts && opts->size >= offsetof(mltk_backend_opts, device) + sizeof opts->device)
        return opts->device;
    return 0;
}

/* The device opts->device names exists and passes the test create
 * applies (cu_device_usable), so that a probe that succeeds means create
 * can start, and a configured device that cannot run is refused here,
 * where the core can still fall back to the next backend. */
static int cuda_probe(const mltk_backend_opts *opts, char **why)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        int drv = 0, rt = 0;
        char rts[16];
        (void)cudaGetLastError();
        cudaDriverGetVersion(&drv);
        cudaRuntimeGetVersion(&rt);
        cuda_version_str(rt, rts, sizeof rts);
        if (drv == 0)
            mltk_errf(why, MLTK_ERR_BACKEND, "no NVIDIA driver found (the CUDA %s runtime "
                      "reports: %s)", rts, cudaGetErrorString(e));
        else if (e == cudaErrorInsufficientDriver) {
            char ds[16];
            cuda_version_str(drv, ds, sizeof ds);
            mltk_errf(why, MLTK_ERR_BACKEND, "the NVIDIA driver supports CUDA %s, this "
                      "build needs %s", ds, rts);
        } else
            mltk_errf(why, MLTK_ERR_BACKEND, "no usable GPU: %s (%s)", cudaGetErrorString(e),
                      cudaGetErrorName(e));
        return 0;
    }
    if (n <= 0) {
        mltk_errf(why, MLTK_ERR_BACKEND, "no CUDA device");
        return 0;
    }
    const int dev = opts_device(opts);
    char usable[128], r[160];
    if (dev < 0 || dev >= n) {
        cu_usable_list(n, usable, sizeof usable);
        mltk_errf(why, MLTK_ERR_BACKEND, "device %d does not exist: there %s %d device%s "
                  "(index 0 to %d; %s)", dev, n == 1 ? "is" : "are", n, n == 1 ? "" : "s",
                  n - 1, usable);
        return 0;
    }
    if (cu_device_usable(dev, r, sizeof r))
        return 1;
    cu_usable_list(n, usable, sizeof usable);
    mltk_errf(why, MLTK_ERR_BACKEND, "device %d of %d %s (%s)", dev, n, r, usable);
    return 0;
}

static void cuda_destroy(void *ctx)
{
    cuda_ctx *c = ctx;
    if (!c)
        return;
    /* everything below belongs to c's device (best effort if that fails).
     * Teardown goes on past a failure, which is logged: destroy has no
     * status to return. */
    c->err = NULL;  /* failures below go to the log */
    (void)cu_set_device(c);
    cudaError_t e;
    if (c->stream && (e = cudaStreamSynchronize(c->stream)) != cudaSuccess)
        (void)cuda_fail(c, "destroy: cudaStreamSynchronize", e);
    cuda_conv_free(c);
    cuda_lamb_free(c);
    cudnnStatus_t ds;
    if (c->dnn && (ds = cudnnDestroy(c->dnn)) != CUDNN_STATUS_SUCCESS)
        (void)cuda_fail_dnn(c, "destroy: cudnnDestroy", ds);
    cublasStatus_t bs;
    if (c->blas && (bs = cublasDestroy(c->blas)) != CUBLAS_STATUS_SUCCESS)
        (void)cuda_fail_blas(c, "destroy: cublasDestroy", bs);
    cache_destroy(c);  /* scratch, flag and the cuBLAS workspace too */
    for (int i = 0; i < 2; i++) {
        if (c->stage_done[i] && (e = cudaEventDestroy(c->stage_done[i])) != cudaSuccess)
            (void)cuda_fail(c, "destroy: cudaEventDestroy", e);
        if (c->stage[i] && (e = cudaFreeHost(c->stage[i])) != cudaSuccess)
            (void)cuda_fail(c, "destroy: cudaFreeHost", e);
    }
    if (c->hflag && (e = cudaFreeHost(c->hflag)) != cudaSuccess)
        (void)cuda_fail(c, "destroy: cudaFreeHost", e);
    if (c->stream && (e = cudaStreamDestroy(c->stream)) != cudaSuccess)
        (void)cuda_fail(c, "destroy: cudaStreamDestroy", e);
    (void)cudaGetLastError();
    free(c);
}

/* create's failures: destroy what exists, fill *err */
static int create_fail(cuda_ctx *c, char **err, int status, const char *what,
                       const char *detail)
{
    cuda_destroy(c);
    return mltk_errf(err, status, "cuda: %s: %s", what, detail);
}

/* TF32 tensor cores for f32 gemm (the cuBLAS handle's math mode) and f32
 * convolution (the plans' math), on or off.  bf16 and f16 products use
 * tensor cores either way. */
static int cuda_set_tf32(void *ctx, int on)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c);
    on = on != 0;
    BLAS_TRY("set_tf32: cublasSetMathMode",
             cublasSetMathMode(c->blas, on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    if (on != c->tf32) {
        /* convolution plans were chosen under the old math policy: drop
         * them; each is planned again on its next use, within the
         * workspace of the call that uses it */
        c->tf32 = on;
        cuda_conv_plans_free(c);
    }
    return MLTK_OK;
}

static int cuda_create(void **ctx, const mltk_backend_opts *opts, char **err)
{
    if (!ctx)
        return mltk_errf(err, MLTK_ERR_INVALID, "cuda: create: no context pointer");
    *ctx = NULL;
    const int device = opts_device(opts);
    /* TF32 only when the opts carry the member (ABI 2.0 opts do) and ask */
    const int tf32 = opts && opts->size >= offsetof(mltk_backend_opts, tf32) + sizeof opts->tf32
        && opts->tf32 != 0;
    /* the configured device must exist and pass the test probe applies */
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return mltk_errf(err, MLTK_ERR_BACKEND, "cuda: device %d: cannot count the devices: "
                         "%s", device, cudaGetErrorString(e));
    }
    char usable[128], why[160];
    if (device < 0 || device >= count) {
        cu_usable_list(count, usable, sizeof usable);
        if (count == 0)
            return mltk_errf(err, MLTK_ERR_INVALID, "cuda: device %d: there is no CUDA "
                             "device", device);
        return mltk_errf(err, MLTK_ERR_INVALID, "cuda: device %d does not exist: there %s "
                         "%d device%s (index 0 to %d; %s)", device, count == 1 ? "is" : "are",
                         count, count == 1 ? "" : "s", count - 1, usable);
    }
    if (!cu_device_usable(device, why, sizeof why)) {
        cu_usable_list(count, usable, sizeof usable);
        return mltk_errf(err, MLTK_ERR_BACKEND, "cuda: device %d of %d %s (%s)", device, count,
                         why, usable);
    }
    struct cudaDeviceProp prop;
    e = cudaGetDeviceProperties(&prop, device);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return mltk_errf(err, MLTK_ERR_BACKEND, "cuda: device %d of %d: %s", device, count,
                         cudaGetErrorString(e));
    }

    cuda_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return mltk_errf(err, MLTK_ERR_NOMEM, "cuda: out of memory");
    c->device = device;
    c->tf32 = tf32;
    if ((e = cudaSetDevice(device)) != cudaSuccess
        || (e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        char what[64];
        snprintf(what, sizeof what, "cannot start device %d of %d", device, count);
        return create_fail(c, err, MLTK_ERR_BACKEND, what, cudaGetErrorString(e));
    }
    for (int i = 0; i < 2; i++) {
        if ((e = cudaHostAlloc((void **)&c->stage[i], CUDA_STAGE_BYTES,
                               cudaHostAllocDefault)) != cudaSuccess
            || (e = cudaEventCreateWithFlags(&c->stage_done[i], cudaEventDisableTiming))
                   != cudaSuccess)
            return create_fail(c, err, e == cudaErrorMemoryAllocation ? MLTK_ERR_NOMEM
                               : MLTK_ERR_BACKEND, "pinned staging buffers",
                               cudaGetErrorString(e));
    }
    if ((e = cudaHostAlloc((void **)&c->hflag, 64, cudaHostAllocDefault)) != cudaSuccess)
        return create_fail(c, err, MLTK_ERR_BACKEND, "pinned flag", cudaGetErrorString(e));
    *c->hflag = 0;
    if (cuda_mem_alloc(c, 64, (void **)&c->dflag)
        || cuda_mem_alloc(c, CUDA_BLAS_WS, &c->blas_ws))
        return create_fail(c, err, MLTK_ERR_NOMEM, "device memory",
                           "cannot allocate the context's buffers");
    if ((e = cudaMemsetAsync(c->dflag, 0, sizeof *c->dflag, c->stream)) != cudaSuccess)
        return create_fail(c, err, MLTK_ERR_BACKEND, "device flag", cudaGetErrorString(e));

    cublasStatus_t bs = cublasCreate(&c->blas);
    if (bs == CUBLAS_STATUS_SUCCESS)
        bs = cublasSetStream(c->blas, c->stream);
    if (bs == CUBLAS_STATUS_SUCCESS)
        bs = cublasSetWorkspace(c->blas, c->blas_ws, CUDA_BLAS_WS);
    if (bs == CUBLAS_STATUS_SUCCESS)
        bs = cublasSetMathMode(c->blas, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                             : CUBLAS_DEFAULT_MATH);
    if (bs == CUBLAS_STATUS_SUCCESS)
        bs = cublasSetPointerMode(c->blas, CUBLAS_POINTER_MODE_HOST);
    if (bs != CUBLAS_STATUS_SUCCESS)
        return create_fail(c, err, MLTK_ERR_BACKEND, "cuBLAS", cublasGetStatusString(bs));
    cudnnStatus_t ds = cudnnCreate(&c->dnn);
    if (ds == CUDNN_STATUS_SUCCESS)
        ds = cudnnSetStream(c->dnn, c->stream);
    if (ds != CUDNN_STATUS_SUCCESS)
        return create_fail(c, err, MLTK_ERR_BACKEND, "cuDNN", cudnnGetErrorString(ds));

    int rt = 0;
    char rts[16];
    cudaRuntimeGetVersion(&rt);
    cuda_version_str(rt, rts, sizeof rts);
    size_t dv = cudnnGetVersion();
    snprintf(c->name, sizeof c->name, "cuda: %.128s (device %d, sm_%d%d, %.0f GiB), CUDA %s, "
             "cuDNN %zu.%zu, TF32 %s", prop.name, device, prop.major, prop.minor,
             (double)prop.totalGlobalMem / (double)(1u << 30), rts, dv / 10000,
             (dv / 100) % 100, tf32 ? "on" : "off");
    *ctx = c;
    return MLTK_OK;
}

static const char *cuda_device_name(void *ctx)
{
    cuda_ctx *c = ctx;
    return c ? c->name : "cuda";
}

/* ---- memory ops ---- */

static int cuda_alloc(void *ctx, size_t bytes, void **ptr)
{
    if (!ptr)
        return MLTK_ERR_INVALID;
    *ptr = NULL;
    CU_ENTER(ctx);
    return cuda_mem_alloc(ctx, bytes, ptr);
}

static void cuda_free(void *ctx, void *ptr)
{
    /* cudaFree of a block of another device would fail: make c's current */
    /* the op has no status: a failure is logged by cuda_mem_free */
    if (ctx && ptr && cu_set_device(ctx) == MLTK_OK)
        (void)cuda_mem_free(ctx, ptr);
}

int cuda_mem_upload(cuda_ctx *c, void *dst, const void *src, size_t bytes)
{
    const unsigned char *s = src;
    unsigned char *d = dst;
    while (bytes > 0) {
        size_t k = bytes < CUDA_STAGE_BYTES ? bytes : CUDA_STAGE_BYTES;
        int b = c->stage_next;
        c->stage_next ^= 1;
        CU_TRY("upload: waiting for the staging buffer",
               cudaEventSynchronize(c->stage_done[b]));
        memcpy(c->stage[b], s, k);
        CU_TRY("upload: cudaMemcpyAsync", cudaMemcpyAsync(d, c->stage[b], k,
                                                          cudaMemcpyHostToDevice, c->stream));
        CU_TRY("upload: cudaEventRecord", cudaEventRecord(c->stage_done[b], c->stream));
        s += k;
        d += k;
        bytes -= k;
    }
    return MLTK_OK;
}

static int cuda_upload(void *ctx, void *dst, const void *host_src, size_t bytes)
{
    CU_ENTER(ctx);
    if (bytes == 0)
        return MLTK_OK;
    if (!dst || !host_src)
        return MLTK_ERR_INVALID;
    return cuda_mem_upload(ctx, dst, host_src, bytes);
}

static int cuda_download(void *ctx, void *host_dst, const void *src, size_t bytes)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c);
    if (bytes == 0)
        return MLTK_OK;
    if (!host_dst || !src)
        return MLTK_ERR_INVALID;
    const unsigned char *s = src;
    unsigned char *d = host_dst;
    while (bytes > 0) {
        size_t k = bytes < CUDA_STAGE_BYTES ? bytes : CUDA_STAGE_BYTES;
        int b = c->stage_next;
        c->stage_next ^= 1;
        /* stream order puts this after any upload still reading stage[b] */
        CU_TRY("download: cudaMemcpyAsync", cudaMemcpyAsync(c->stage[b], s, k,
                                                            cudaMemcpyDeviceToHost,
                                                            c->stream));
        /* the last piece brings the device flag along in the same wait */
        if (k == bytes) {
            int rc = flag_queue(c, "download");
            if (rc)
                return rc;
        }
        CU_TRY("download: cudaStreamSynchronize", cudaStreamSynchronize(c->stream));
        memcpy(d, c->stage[b], k);
        s += k;
        d += k;
        bytes -= k;
    }
    /* the data are there; bad data met by the ops before still fail it */
    return flag_check(c, "download");
}

static int cuda_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c);
    if (bytes == 0)
        return MLTK_OK;
    if (!dst || !src)
        return MLTK_ERR_INVALID;
    if (dst == src)
        return MLTK_OK;
    uintptr_t a = (uintptr_t)dst, b = (uintptr_t)src;
    if (a < b + bytes && b < a + bytes) {
        /* overlapping (memmove semantics): through a temporary block */
        void *tmp = NULL;
        int rc = cuda_mem_alloc(c, bytes, &tmp);
        if (rc)
            return rc;
        cudaError_t e = cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, c->stream);
        if (e == cudaSuccess)
            e = cudaMemcpyAsync(dst, tmp, bytes, cudaMemcpyDeviceToDevice, c->stream);
        rc = e == cudaSuccess ? MLTK_OK : cuda_fail(c, "copy: cudaMemcpyAsync", e);
        int frc = cuda_mem_free(c, tmp);
        return rc ? rc : frc;
    }
    CU_TRY("copy: cudaMemcpyAsync", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                                                    c->stream));
    return MLTK_OK;
}

static int cuda_sync(void *ctx)
{
    cuda_ctx *c = ctx;
    CU_ENTER(c);
    int rc = flag_queue(c, "sync");
    if (rc)
        return rc;
    CU_TRY("sync: cudaStreamSynchronize", cudaStreamSynchronize(c->stream));
    return flag_check(c, "sync");
}

/* ---- the op table ---- */

/* Every op in f32.  In bf16 and f16: the elementwise ops (computed in
 * float, rounded once), casts, bias epilogue, column sums, sums and
 * clipping, the non-finite check, gemm (f32 accumulation, C in f32 or the
 * low dtype, bias f32), convolution (f32 compute; outputs and bias in f32
 * or the low dtype, cuda_conv.c) and strided copies.
 * gather_rows moves rows of any dtype.  Everything else (losses,
 * normalisation, pooling, softmax, embedding, dropout, random numbers,
 * optimizers) is f32 only. */
static int cuda_supports(void *ctx, mltk_op op, mltk_dtype dt)
{
    (void)ctx;
    if ((int)op <= (int)MLTK_OP_NONE || (int)op >= (int)MLTK_OP_COUNT)
        return 0;
    if (dt == MLTK_F32)
        return 1;
    if (op == MLTK_OP_GATHER_ROWS)   /* rows of bytes */
        return (int)dt >= 0 && (int)dt < (int)MLTK_DTYPE_COUNT;
    if (dt != MLTK_BF16 && dt != MLTK_F16)
        return 0;
    switch (op) {
    case MLTK_OP_FILL:
    case MLTK_OP_AXPBY:
    case MLTK_OP_MUL:
    case MLTK_OP_ACT_FORWARD:
    case MLTK_OP_ACT_BACKWARD:
    case MLTK_OP_CAST:
    case MLTK_OP_CLAMP:
    case MLTK_OP_GEMM:
    case MLTK_OP_BIAS_ACT:
    case MLTK_OP_SUM_ROWS:
    case MLTK_OP_SUM:
    case MLTK_OP_SUMSQ:
    case MLTK_OP_SCALE_TO_NORM:
    case MLTK_OP_NONFINITE:
    case MLTK_OP_COPY_2D:
    case MLTK_OP_CONV2D_FORWARD:
    case MLTK_OP_CONV2D_BACKWARD_DATA:
    case MLTK_OP_CONV2D_BACKWARD_FILTER:
        return 1;
    default:
        return 0;
    }
}

static size_t cuda_workspace(void *ctx, const mltk_op_call *c)
{
    switch (c->op) {
    case MLTK_OP_CONV2D_FORWARD:
    case MLTK_OP_CONV2D_BACKWARD_DATA:
    case MLTK_OP_CONV2D_BACKWARD_FILTER:
        if (!ctx || !c->params)
            return 0;
        return cuda_conv2d_workspace(ctx, c);
    default:
        return 0;
    }
}

/* tensor i's data (NULL when absent) */
static inline void *td(const mltk_op_call *c, int i)
{
    return c->t[i].data;
}

/* short names for the call readers of backend.h (mltk_call_*) */
#define tf       mltk_call_f32
#define ti32     mltk_call_i32
#define tnum     mltk_call_numel
#define tdim     mltk_call_dim
#define tlast    mltk_call_last
#define bn_dims  mltk_call_ncl
#define last_dim mltk_call_rows_last

/* rows (dim 0) and columns (the rest) of a 2-d tensor i; ld its row stride */
static void rows_cols(const mltk_op_call *c, int i, int64_t *rows, int64_t *cols, int64_t *ld)
{
    const mltk_tensor *t = &c->t[i];
    *rows = t->shape.dim[0];
    *cols = t->shape.dim[1];
    *ld = mltk_tensor_stride(t, 0);
}

static int run_op(cuda_ctx *cx, const mltk_op_call *c)
{
    const void *prm = c->params;
    const mltk_dtype dt = mltk_op_dtype(c);
    int64_t rows, cols, ld, rows2, cols2, ld2;
    switch (c->op) {
    /* ---- elementwise ---- */
    case MLTK_OP_FILL:
        return cuda_fill(cx, dt, td(c, 0), ((const mltk_fill_params *)prm)->value, tnum(c, 0));
    case MLTK_OP_AXPBY: {
        const mltk_axpby_params *p = prm;
        return cuda_axpby(cx, dt, td(c, 0), p->a, td(c, 1), p->b, tnum(c, 0));
    }
    case MLTK_OP_MUL:
        return cuda_mul(cx, dt, td(c, 0), td(c, 1), td(c, 2), tnum(c, 0));
    case MLTK_OP_ACT_FORWARD: {
        const mltk_act_params *p = prm;
        return cuda_act_forward(cx, dt, p->act, p->alpha, td(c, 0), td(c, 1), tnum(c, 0));
    }
    case MLTK_OP_ACT_BACKWARD: {
        const mltk_act_params *p = prm;
        return cuda_act_backward(cx, dt, p->act, p->alpha, td(c, 0), td(c, 1), td(c, 2),
                                 td(c, 3), tnum(c, 0));
    }
    case MLTK_OP_CAST:
        return cuda_cast(cx, td(c, 0), c->t[0].dtype, td(c, 1), c->t[1].dtype, tnum(c, 0));
    case MLTK_OP_CLAMP: {
        const mltk_clamp_params *p = prm;
        return cuda_clamp(cx, dt, td(c, 0), tnum(c, 0), p->lo, p->hi);
    }
    /* ---- linear algebra ---- */
    case MLTK_OP_GEMM:
        return cuda_gemm(cx, c);
    case MLTK_OP_BIAS_ACT: {
        const mltk_act_params *p = prm;
        const void *b = td(c, 1);
        cols = b ? tnum(c, 1) : tlast(c, 0);
        rows = cols > 0 ? tnum(c, 0) / cols : 0;
        return cuda_bias_act(cx, dt, td(c, 0), b, rows, cols, p->act, p->alpha);
    }
    case MLTK_OP_SUM_ROWS:
        cols = tnum(c, 0);
        rows = cols > 0 ? tnum(c, 1) / cols : 0;
        return cuda_sum_rows(cx, dt, td(c, 0), td(c, 1), rows, cols,
                             ((const mltk_sum_rows_params *)prm)->beta);
    /* ---- reductions ---- */
    case MLTK_OP_SUM:
        return cuda_sum(cx, dt, tf(c, 0), td(c, 1), tnum(c, 1), 0);
    case MLTK_OP_SUMSQ:
        return cuda_sum(cx, dt, tf(c, 0), td(c, 1), tnum(c, 1), 1);
    case MLTK_OP_SCALE_TO_NORM:
        return cuda_scale_to_norm(cx, dt, td(c, 0), tnum(c, 0), tf(c, 1),
                                  ((const mltk_norm_params *)prm)->max_norm);
    case MLTK_OP_NONFINITE:
        return cuda_nonfinite(cx, dt, tf(c, 0), td(c, 1), tnum(c, 1));
    /* ---- losses and metrics ---- */
    case MLTK_OP_SOFTMAX_XENT: {
        const mltk_xent_params *p = prm;
        if (c->t[3].dtype == MLTK_F32)
            return cuda_softmax_xent_soft(cx, tf(c, 0), tf(c, 1), tf(c, 2), tf(c, 3),
                                          tf(c, 4), tdim(c, 2, 0), tlast(c, 2),
                                          p->label_smoothing, p->grad_scale);
        return cuda_softmax_xent(cx, tf(c, 0), tf(c, 1), tf(c, 2), ti32(c, 3), tf(c, 4),
                                 tdim(c, 2, 0), tlast(c, 2), p->label_smoothing,
                                 p->grad_scale);
    }
    case MLTK_OP_COUNT_CORRECT:
        return cuda_count_correct(cx, tf(c, 0), tf(c, 1), ti32(c, 2), tdim(c, 1, 0),
                                  tlast(c, 1));
    case MLTK_OP_POINTWISE_LOSS: {
        const mltk_pointwise_params *p = prm;
        return cuda_pointwise_loss(cx, (int)p->kind, tf(c, 0), tf(c, 1), tf(c, 2), tf(c, 3),
                                   tnum(c, 2), p->grad_scale);
    }
    case MLTK_OP_KL_DIV_LOGITS: {
        const mltk_kl_params *p = prm;
        return cuda_kl_div_logits(cx, tf(c, 0), tf(c, 1), tf(c, 2), tf(c, 3), tdim(c, 2, 0),
                                  tlast(c, 2), p->T, p->grad_scale);
    }
    /* ---- data movement ---- */
    case MLTK_OP_GATHER_ROWS: {
        int64_t n = tdim(c, 0, 0);
        int64_t per = n > 0 ? tnum(c, 0) / n : 0;
        size_t row_bytes = (size_t)per * mltk_dtype_size(c->t[0].dtype);
        return cuda_gather_rows(cx, td(c, 0), td(c, 1), tdim(c, 1, 0), ti32(c, 2), n,
                                row_bytes);
    }
    case MLTK_OP_GATHER_AUGMENT_2D:
        return cuda_gather_augment_2d(cx, tf(c, 0), tf(c, 1), tdim(c, 1, 0), ti32(c, 2),
                                      tdim(c, 0, 0), tdim(c, 0, 1), tdim(c, 0, 2),
                                      tdim(c, 0, 3), prm);
    case MLTK_OP_COPY_2D:
        rows_cols(c, 0, &rows, &cols, &ld);
        rows_cols(c, 1, &rows2, &cols2, &ld2);
        return cuda_copy_2d(cx, dt, td(c, 0), ld, td(c, 1), ld2, rows, cols,
                            ((const mltk_copy_params *)prm)->accumulate);
    case MLTK_OP_EMBEDDING_FORWARD:
        return cuda_embedding_forward(cx, tf(c, 0), tf(c, 1), tf(c, 2), tnum(c, 2),
                                      tlast(c, 1), tdim(c, 1, 0));
    case MLTK_OP_EMBEDDING_BACKWARD:
        return cuda_embedding_backward(cx, tf(c, 0), tf(c, 1), tf(c, 2), tnum(c, 2),
                                       tlast(c, 0), tdim(c, 0, 0));
    /* ---- random numbers ---- */
    case MLTK_OP_RNG_UNIFORM: {
        const mltk_rng_params *p = prm;
        return cuda_rng_uniform(cx, tf(c, 0), tnum(c, 0), p->a, p->b, p->seed, p->offset);
    }
    case MLTK_OP_RNG_NORMAL: {
        const mltk_rng_params *p = prm;
        return cuda_rng_normal(cx, tf(c, 0), tnum(c, 0), p->a, p->b, p->seed, p->offset);
    }
    case MLTK_OP_DROPOUT_FORWARD: {
        const mltk_dropout_params *p = prm;
        return cuda_dropout_forward(cx, tf(c, 0), tf(c, 1), tf(c, 2), tnum(c, 2), p->p,
                                    p->seed, p->offset);
    }
    /* ---- convolution and pooling ---- */
    case MLTK_OP_CONV2D_FORWARD:
    case MLTK_OP_CONV2D_BACKWARD_DATA:
    case MLTK_OP_CONV2D_BACKWARD_FILTER:
        return cuda_conv2d(cx, c);
    case MLTK_OP_POOL2D_FORWARD: {
        const mltk_pool2d_params *p = prm;
        return cuda_pool2d_forward(cx, p->kind, tf(c, 0), tf(c, 1), &p->d);
    }
    case MLTK_OP_POOL2D_BACKWARD: {
        const mltk_pool2d_params *p = prm;
        return cuda_pool2d_backward(cx, p->kind, tf(c, 0), tf(c, 1), tf(c, 2), &p->d);
    }
    /* ---- normalisation ---- */
    case MLTK_OP_BATCHNORM_FORWARD_TRAIN: {
        const mltk_bn_params *p = prm;
        int64_t N, C, L;
        bn_dims(c, 5, &N, &C, &L);
        return cuda_batchnorm_forward_train(cx, tf(c, 0), tf(c, 5), tf(c, 6), tf(c, 7),
                                            tf(c, 1), tf(c, 2), tf(c, 3), tf(c, 4), N, C, L,
                                            p->momentum, p->eps);
    }
    case MLTK_OP_BATCHNORM_FORWARD_EVAL: {
        const mltk_bn_params *p = prm;
        int64_t N, C, L;
        bn_dims(c, 1, &N, &C, &L);
        return cuda_batchnorm_forward_eval(cx, tf(c, 0), tf(c, 1), tf(c, 2), tf(c, 3),
                                           tf(c, 4), tf(c, 5), N, C, L, p->eps);
    }
    case MLTK_OP_BATCHNORM_BACKWARD: {
        int64_t N, C, L;
        bn_dims(c, 4, &N, &C, &L);
        return cuda_batchnorm_backward(cx, tf(c, 0), tf(c, 1), tf(c, 2), tf(c, 3), tf(c, 4),
                                       tf(c, 5), tf(c, 6), tf(c, 7), N, C, L);
    }
    case MLTK_OP_LAYERNORM_FORWARD:
        last_dim(c, 3, &rows, &cols);
        return cuda_layernorm_forward(cx, tf(c, 0), tf(c, 3), tf(c, 4), tf(c, 5), tf(c, 1),
                                      tf(c, 2), rows, cols,
                                      ((const mltk_ln_params *)prm)->eps);
    case MLTK_OP_LAYERNORM_BACKWARD:
        last_dim(c, 4, &rows, &cols);
        return cuda_layernorm_backward(cx, tf(c, 0), tf(c, 1), tf(c, 2), tf(c, 3), tf(c, 4),
                                       tf(c, 5), tf(c, 6), tf(c, 7), rows, cols);
    case MLTK_OP_SOFTMAX_FORWARD:
        last_dim(c, 1, &rows, &cols);
        return cuda_softmax_forward(cx, tf(c, 0), tf(c, 1), rows, cols);
    case MLTK_OP_SOFTMAX_BACKWARD:
        last_dim(c, 1, &rows, &cols);
        return cuda_softmax_backward(cx, tf(c, 0), tf(c, 1), tf(c, 2), rows, cols);
    /* ---- optimizer updates ---- */
    case MLTK_OP_SGD_STEP:
        return cuda_sgd_step(cx, tf(c, 0), tf(c, 2), tf(c, 1), tnum(c, 0), prm, tf(c, 3));
    case MLTK_OP_ADAM_STEP:
        return cuda_adam_step(cx, tf(c, 0), tf(c, 3), tf(c, 1), tf(c, 2), tnum(c, 0), prm,
                              tf(c, 4));
    case MLTK_OP_RMSPROP_STEP:
        return cuda_rmsprop_step(cx, tf(c, 0), tf(c, 4), tf(c, 1), tf(c, 2), tf(c, 3),
                                 tnum(c, 0), prm, tf(c, 5));
    case MLTK_OP_LAMB_STEP:
        return cuda_lamb_step(cx, tf(c, 0), tf(c, 4), tf(c, 1), tf(c, 2), tnum(c, 0), prm,
                              tf(c, 3), tf(c, 5));
    default:
        return cuda_failf(cx, MLTK_ERR_UNSUPPORTED, "no op %d", (int)c->op);
    }
}

/* Run one checked call on the context's stream; a failure's message goes
 * to *err for the call's duration (cuda_failf). */
static int cuda_run(void *ctx, const mltk_op_call *c, char **err)
{
    cuda_ctx *cx = ctx;
    if (!cx)
        return MLTK_ERR_INVALID;
    cx->err = err;
    int rc = cu_set_device(cx);
    if (!rc)
        rc = run_op(cx, c);
    cx->err = NULL;
    return rc;
}

/* ---- extensions ---- */

static void *cuda_get_proc(void *ctx, const char *name)
{
    (void)ctx;
    if (name && strcmp(name, "cuda_set_tf32") == 0) {
        int (*fn)(void *, int) = cuda_set_tf32;
        void *p;
        memcpy(&p, &fn, sizeof p);
        return p;
    }
    return NULL;
}

/* ---- the plugin ---- */

static const struct mltk_backend_i cuda_iface = {
    .size = sizeof(struct mltk_backend_i),
    .probe = cuda_probe,
    .create = cuda_create,
    .destroy = cuda_destroy,
    .device_name = cuda_device_name,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .copy = cuda_copy,
    .sync = cuda_sync,
    .supports = cuda_supports,
    .workspace = cuda_workspace,
    .run = cuda_run,
    .get_proc = cuda_get_proc,
};

MLTK_PLUGIN(cuda, MLTK_KIND_BACKEND, &cuda_iface)
