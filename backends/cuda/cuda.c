/* cuda.c - the cuda backend: the op contract of backend.h in fp32 on one
 * NVIDIA GPU (sm_90 code, PTX for newer).
 *
 * What this is: the plugin's lifetime (probe, create, destroy), its
 * memory and the vtable.  One context owns one device, one non-blocking
 * stream on which every op runs in call order, a cuBLAS handle (gemm), a
 * cuDNN handle (convolution) and:
 *   - a caching allocator: blocks are rounded up to size classes (quarter
 *     steps between powers of two) and freed blocks go to per-class free
 *     lists, so a training step, which frees and allocates the same sizes
 *     over and over, never reaches cudaMalloc once the first step is done;
 *   - two pinned staging buffers that uploads fill alternately (a buffer
 *     is reused once the copy out of it has finished), so `upload` returns
 *     as soon as the data is staged; `download` is synchronous, as the
 *     contract says;
 *   - a growing scratch area for the ops' partial sums, and a device flag
 *     for the index checks that must fail an op (labels, ids, indices).
 * TF32 is off: fp32 gemm and convolution give fp32 results comparable
 * with the cpu backend.  get_proc("cuda_set_tf32") returns
 * int (*)(void *ctx, int on) to turn TF32 tensor cores on for both.
 *
 * What this is not: multi-GPU (one device per context, chosen by
 * mltk_backend_opts.device), mixed precision, or CUDA graph capture.  The
 * plugin links libcudart, libcublas and libcudnn; a machine without them
 * fails to load it, which the core reports before falling back.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cudnn.h>

#include "cuda_internal.h"

/* ---- errors ---- */

int cuda_fail(const char *op, cudaError_t e)
{
    mltk_log(MLTK_LOG_ERROR, "cuda: %s: %s (%s)", op, cudaGetErrorString(e),
             cudaGetErrorName(e));
    (void)cudaGetLastError();  /* clear it unless it is sticky */
    return e == cudaErrorMemoryAllocation ? MLTK_ERR_NOMEM : MLTK_ERR_BACKEND;
}

int cuda_fail_blas(const char *op, cublasStatus_t st)
{
    mltk_log(MLTK_LOG_ERROR, "cuda: %s: cuBLAS: %s (%s)", op, cublasGetStatusString(st),
             cublasGetStatusName(st));
    return st == CUBLAS_STATUS_ALLOC_FAILED ? MLTK_ERR_NOMEM : MLTK_ERR_BACKEND;
}

int cuda_fail_dnn(const char *op, cudnnStatus_t st)
{
    mltk_log(MLTK_LOG_ERROR, "cuda: %s: cuDNN: %s", op, cudnnGetErrorString(st));
    return st == CUDNN_STATUS_ALLOC_FAILED ? MLTK_ERR_NOMEM : MLTK_ERR_BACKEND;
}

/* ---- the context's device ---- */

int cu_set_device(const cuda_ctx *c)
{
    int cur = -1;
    cudaError_t e = cudaGetDevice(&cur);
    if (e == cudaSuccess && cur == c->device)
        return MLTK_OK;
    e = cudaSetDevice(c->device);
    if (e != cudaSuccess) {
        mltk_log(MLTK_LOG_ERROR, "cuda: cannot make device %d current: %s (%s)", c->device,
                 cudaGetErrorString(e), cudaGetErrorName(e));
        (void)cudaGetLastError();
        return MLTK_ERR_BACKEND;
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
static int cache_release(cuda_cache *k)
{
    int rc = MLTK_OK;
    for (int i = 0; i < k->n_bins; i++) {
        for (int j = 0; j < k->bins[i].n; j++) {
            cudaError_t e = cudaFree(k->bins[i].ptrs[j]);
            if (e != cudaSuccess && rc == MLTK_OK)
                rc = cuda_fail("release cached memory: cudaFree", e);
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
                return cuda_fail("alloc: cudaStreamSynchronize", se);
            int rc = cache_release(k);
            if (rc)
                return rc;
            e = cudaMalloc(&p, size);
        }
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            if (e == cudaErrorMemoryAllocation) {
                mltk_log(MLTK_LOG_DEBUG, "cuda: alloc: %zu bytes: %s", size,
                         cudaGetErrorString(e));
                return MLTK_ERR_NOMEM;
            }
            return cuda_fail("alloc: cudaMalloc", e);
        }
    }
    if (live_put(k, (uintptr_t)p, size)) {
        cudaError_t e = cudaFree(p);  /* nothing queued uses p yet */
        if (e != cudaSuccess)
            return cuda_fail("alloc: cudaFree", e);
        return MLTK_ERR_NOMEM;
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
            return cuda_fail("free: cudaStreamSynchronize", e);
        e = cudaFree(ptr);
        if (e != cudaSuccess)
            return cuda_fail("free: cudaFree", e);
        return MLTK_OK;
    }
    b->ptrs[b->n++] = ptr;
    k->bytes_cached += size;
    return MLTK_OK;
}

/* teardown: errors are logged, the host side is released regardless */
static void cache_destroy(cuda_cache *k)
{
    (void)cache_release(k);
    int failed = 0;
    for (size_t i = 0; i < k->live_cap; i++)
        if (k->live[i].key) {
            cudaError_t e = cudaFree((void *)k->live[i].key);
            if (e != cudaSuccess && !failed++)
                (void)cuda_fail("destroy: cudaFree", e);
        }
    for (int i = 0; i < k->n_bins; i++)
        free(k->bins[i].ptrs);
    free(k->bins);
    free(k->live);
    memset(k, 0, sizeof *k);
}

/* ---- scratch and the check flag ---- */

int cuda_scratch(cuda_ctx *c, size_t bytes, void **ptr, const char *op)
{
    if (bytes > c->scratch_bytes) {
        /* the old area goes back to the cache: ops are stream-ordered, so
         * work still queued on it finishes before anything reuses it */
        size_t want = bytes < ((size_t)1 << 20) ? ((size_t)1 << 20) : bytes;
        void *p = NULL;
        int rc = cuda_mem_alloc(c, want, &p);
        if (rc) {
            mltk_log(MLTK_LOG_ERROR, "cuda: %s: cannot allocate %zu bytes of scratch", op,
                     want);
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

int cuda_flag_clear(cuda_ctx *c, const char *op)
{
    CU_TRY(op, cudaMemsetAsync(c->dflag, 0, sizeof(int), c->stream));
    return MLTK_OK;
}

int cuda_flag_read(cuda_ctx *c, const char *op, int *raised)
{
    CU_TRY(op, cudaMemcpyAsync(c->hflag, c->dflag, sizeof(int), cudaMemcpyDeviceToHost,
                               c->stream));
    CU_TRY(op, cudaStreamSynchronize(c->stream));
    *raised = *c->hflag != 0;
    return MLTK_OK;
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

static int cuda_probe(char **why)
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
    /* at least one device create would accept (which one runs is the
     * configured mltk_backend_opts.device, checked by create) */
    char first[160] = "";
    for (int d = 0; d < n; d++) {
        char r[160];
        if (cu_device_usable(d, r, sizeof r))
            return 1;
        if (d == 0)
            snprintf(first, sizeof first, "%s", r);
    }
    if (n == 1)
        mltk_errf(why, MLTK_ERR_BACKEND, "the one CUDA device (0) %s", first);
    else
        mltk_errf(why, MLTK_ERR_BACKEND, "none of the %d CUDA devices is usable (device 0 "
                  "%s)", n, first);
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
    (void)cu_set_device(c);
    cudaError_t e;
    if (c->stream && (e = cudaStreamSynchronize(c->stream)) != cudaSuccess)
        (void)cuda_fail("destroy: cudaStreamSynchronize", e);
    cuda_conv_free(c);
    cuda_lamb_free(c);
    cudnnStatus_t ds;
    if (c->dnn && (ds = cudnnDestroy(c->dnn)) != CUDNN_STATUS_SUCCESS)
        (void)cuda_fail_dnn("destroy: cudnnDestroy", ds);
    cublasStatus_t bs;
    if (c->blas && (bs = cublasDestroy(c->blas)) != CUBLAS_STATUS_SUCCESS)
        (void)cuda_fail_blas("destroy: cublasDestroy", bs);
    cache_destroy(&c->cache);  /* scratch, flag and the cuBLAS workspace too */
    for (int i = 0; i < 2; i++) {
        if (c->stage_done[i] && (e = cudaEventDestroy(c->stage_done[i])) != cudaSuccess)
            (void)cuda_fail("destroy: cudaEventDestroy", e);
        if (c->stage[i] && (e = cudaFreeHost(c->stage[i])) != cudaSuccess)
            (void)cuda_fail("destroy: cudaFreeHost", e);
    }
    if (c->hflag && (e = cudaFreeHost(c->hflag)) != cudaSuccess)
        (void)cuda_fail("destroy: cudaFreeHost", e);
    if (c->stream && (e = cudaStreamDestroy(c->stream)) != cudaSuccess)
        (void)cuda_fail("destroy: cudaStreamDestroy", e);
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
         * workspace its callers were told (the budgets stay) */
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
    int device = 0;
    if (opts && opts->size >= offsetof(mltk_backend_opts, device) + sizeof opts->device)
        device = opts->device;
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
    if (cuda_mem_alloc(c, 64, (void **)&c->dflag)
        || cuda_mem_alloc(c, CUDA_BLAS_WS, &c->blas_ws))
        return create_fail(c, err, MLTK_ERR_NOMEM, "device memory",
                           "cannot allocate the context's buffers");

    cublasStatus_t bs = cublasCreate(&c->blas);
    if (bs == CUBLAS_STATUS_SUCCESS)
        bs = cublasSetStream(c->blas, c->stream);
    if (bs == CUBLAS_STATUS_SUCCESS)
        bs = cublasSetWorkspace(c->blas, c->blas_ws, CUDA_BLAS_WS);
    if (bs == CUBLAS_STATUS_SUCCESS)
        bs = cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH);
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
             "cuDNN %zu.%zu", prop.name, device, prop.major, prop.minor,
             (double)prop.totalGlobalMem / (double)(1u << 30), rts, dv / 10000,
             (dv / 100) % 100);
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
        CU_TRY("upload: waiting for the staging buffer", cudaEventSynchronize(c->stage_done[b]));
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
        CU_TRY("download: cudaStreamSynchronize", cudaStreamSynchronize(c->stream));
        memcpy(d, c->stage[b], k);
        s += k;
        d += k;
        bytes -= k;
    }
    return MLTK_OK;
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
        rc = e == cudaSuccess ? MLTK_OK : cuda_fail("copy: cudaMemcpyAsync", e);
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
    CU_TRY("sync: cudaStreamSynchronize", cudaStreamSynchronize(c->stream));
    return MLTK_OK;
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
    .fill = cuda_fill,                                /* cuda_ops.c */
    .axpby = cuda_axpby,
    .mul = cuda_mul,
    .act_forward = cuda_act_forward,
    .act_backward = cuda_act_backward,
    .gemm = cuda_gemm,
    .bias_act = cuda_bias_act,
    .sum_rows = cuda_sum_rows,
    .sum = cuda_sum,
    .sumsq = cuda_sumsq,
    .softmax_xent = cuda_softmax_xent,
    .count_correct = cuda_count_correct,
    .gather_rows = cuda_gather_rows,
    .rng_uniform = cuda_rng_uniform,
    .rng_normal = cuda_rng_normal,
    .sgd_step = cuda_sgd_step,
    .adam_step = cuda_adam_step,
    .get_proc = cuda_get_proc,
    /* ABI 1.1 */
    .conv2d_workspace = cuda_conv2d_workspace,        /* cuda_conv.c */
    .conv2d_forward = cuda_conv2d_forward,
    .conv2d_backward_data = cuda_conv2d_backward_data,
    .conv2d_backward_filter = cuda_conv2d_backward_filter,
    .pool2d_forward = cuda_pool2d_forward,
    .pool2d_backward = cuda_pool2d_backward,
    .batchnorm_forward_train = cuda_batchnorm_forward_train,  /* cuda_nn.c */
    .batchnorm_forward_eval = cuda_batchnorm_forward_eval,
    .batchnorm_backward = cuda_batchnorm_backward,
    .layernorm_forward = cuda_layernorm_forward,
    .layernorm_backward = cuda_layernorm_backward,
    .dropout_forward = cuda_dropout_forward,
    .softmax_forward = cuda_softmax_forward,
    .softmax_backward = cuda_softmax_backward,
    .copy_2d = cuda_copy_2d,
    .embedding_forward = cuda_embedding_forward,
    .embedding_backward = cuda_embedding_backward,
    .softmax_xent_ex = cuda_softmax_xent_ex,
    .pointwise_loss = cuda_pointwise_loss,
    .kl_div_logits = cuda_kl_div_logits,
    .scale_to_norm = cuda_scale_to_norm,
    .clamp = cuda_clamp,
    .rmsprop_step = cuda_rmsprop_step,
    .lamb_step = cuda_lamb_step,
    /* ABI 1.2 */
    .gather_augment_2d = cuda_gather_augment_2d,
};

MLTK_PLUGIN(cuda, MLTK_KIND_BACKEND, &cuda_iface)
