/* pool.c - the cpu backend's persistent thread pool (see pool.h).
 *
 * What this is: T-1 worker threads and one published job (function,
 * argument, item count).  A job is split into a fixed set of chunks; the
 * caller and the workers claim chunks from a shared word that packs the
 * job's sequence number, its chunk count and the next unclaimed chunk, so
 * a worker that is slow to wake (or descheduled by another process) never
 * holds the job up: the caller simply runs more chunks itself.  Which
 * thread runs a chunk varies; what a chunk computes does not, so results
 * stay bit-identical.
 *
 * Idle threads spin on the word for a short while after each job, then
 * sleep on a condition variable; the caller spins on the done count the
 * same way.  Wake-ups use the Dekker pattern (publish, then check for
 * sleepers; sleepers register, then re-check) so the fast path takes no
 * lock.  Sleeping workers are only woken for jobs big enough to pay for
 * it: a small job right after a gemm (which parks the workers) runs all
 * its chunks on the caller, in the same chunks, with the same results.
 *
 * Chunks run with denormals flushed to zero (x86 MXCSR FTZ and DAZ) on
 * every thread, the caller included for the duration of the job: an
 * optimizer step over gradients that have decayed into the denormal range
 * otherwise runs 5-10x slower.  The caller's own setting is restored.
 *
 * What this is not: general purpose.  No nesting, no queue, no work
 * stealing between jobs: one job at a time, chunk k always the same items.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#if defined(__x86_64__) || defined(__SSE__)
#include <xmmintrin.h>
#endif
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "pool.h"

/* ---- tuning ---- */

/* How long an idle thread spins before it sleeps.  Ops of a training step
 * follow each other within microseconds; sleeping between them would add
 * a wake-up latency (tens of microseconds) to every op. */
#define SPIN_NS 60000

/* Waking a sleeping worker costs the caller a futex call and the worker
 * tens of microseconds; jobs of less work (in elements touched) leave
 * sleeping workers asleep. */
#define WAKE_WORK (256 * 1024)

/* Jobs are cut into up to this many chunks per thread, so that a worker
 * that starts late (still waking, or preempted) leaves its share to the
 * others instead of holding the job up. */
#define CHUNKS_PER_THREAD 4

/* The job word: seq (32 bits) | chunks (16 bits) | next chunk (16 bits). */
#define MAX_THREADS 4096
#define W_SEQ(w)    ((uint32_t)((w) >> 32))
#define W_CHUNKS(w) ((int)(((w) >> 16) & 0xffff))
#define W_NEXT(w)   ((int)((w) & 0xffff))
#define W_MAKE(seq, chunks) ((uint64_t)(seq) << 32 | (uint64_t)(chunks) << 16)

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* Flush denormals for the duration of a job; returns the previous state. */
static inline unsigned fp_enter(void)
{
#if defined(__x86_64__) || defined(__SSE__)
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040u);  /* FTZ (bit 15) | DAZ (bit 6) */
    return csr;
#else
    return 0;
#endif
}

static inline void fp_leave(unsigned csr)
{
#if defined(__x86_64__) || defined(__SSE__)
    _mm_setcsr(csr);
#else
    (void)csr;
#endif
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- state ---- */

struct cpu_worker {
    cpu_pool *pool;
    pthread_t thread;
    int       started;
};

struct cpu_pool {
    int threads;
    struct cpu_worker *workers;  /* threads - 1 */

    pthread_mutex_t run_mu;      /* one job at a time */

    /* the published job: written by the caller before `word` names it,
     * read only by a thread holding a claimed chunk of it */
    cpu_pool_fn fn;
    void       *arg;
    int64_t     n;
    int64_t     align;

    _Alignas(64) _Atomic uint64_t word;  /* see W_MAKE; seq 0 is no job */
    _Atomic int stop;
    _Atomic int park;            /* spinning workers should sleep now */
    _Atomic int sleepers;        /* workers inside (or entering) cond_wait */
    pthread_mutex_t wake_mu;
    pthread_cond_t  wake_cv;

    _Alignas(64) _Atomic int done;  /* chunks of the current job finished */
    _Atomic int caller_sleeping;
    pthread_mutex_t done_mu;
    pthread_cond_t  done_cv;
};

/* ---- partitioning ---- */

int cpu_pool_threads(const cpu_pool *pool)
{
    return pool ? pool->threads : 1;
}

int cpu_pool_max_chunks(const cpu_pool *pool)
{
    int threads = cpu_pool_threads(pool);
    return threads <= 1 ? 1 : threads * CHUNKS_PER_THREAD;
}

int cpu_pool_chunks(const cpu_pool *pool, int64_t n, int64_t work, int64_t grain)
{
    int threads = cpu_pool_threads(pool);
    if (threads <= 1 || n <= 1 || work < 2 * grain)
        return 1;
    int64_t c = work / grain;
    if (c > cpu_pool_max_chunks(pool))
        c = cpu_pool_max_chunks(pool);
    if (c > n)
        c = n;
    return c < 1 ? 1 : (int)c;
}

void cpu_pool_range(int64_t n, int chunks, int64_t align, int k,
                    int64_t *begin, int64_t *end)
{
    if (align < 1)
        align = 1;
    int64_t per = (n + chunks - 1) / chunks;
    per = (per + align - 1) / align * align;
    int64_t b = per * k, e = b + per;
    if (b > n)
        b = n;
    if (e > n || k == chunks - 1)
        e = n;
    *begin = b;
    *end = e;
}

/* ---- claiming and running chunks ---- */

/* Claim and run chunks of the job named by `w` until none is left or the
 * word names another job.  Returns the last word seen. */
static uint64_t run_chunks(cpu_pool *pool, uint64_t w)
{
    for (;;) {
        int k = W_NEXT(w), chunks = W_CHUNKS(w);
        if (k >= chunks)
            return w;
        if (!atomic_compare_exchange_weak_explicit(&pool->word, &w, w + 1,
                                                   memory_order_acquire,
                                                   memory_order_acquire))
            continue;  /* w now holds the current word: retry or stop */
        int64_t b, e;
        cpu_pool_range(pool->n, chunks, pool->align, k, &b, &e);
        if (b < e)
            pool->fn(pool->arg, b, e, k);
        if (atomic_fetch_add(&pool->done, 1) + 1 == chunks
            && atomic_load(&pool->caller_sleeping)) {
            pthread_mutex_lock(&pool->done_mu);
            pthread_cond_signal(&pool->done_cv);
            pthread_mutex_unlock(&pool->done_mu);
        }
        w = atomic_load_explicit(&pool->word, memory_order_acquire);
    }
}

/* ---- workers ---- */

/* Wait until the word names a job newer than `seen` (or stop is set);
 * returns the word. */
static uint64_t wait_for_job(cpu_pool *pool, uint32_t seen)
{
    uint64_t w;
    int64_t t0 = 0;
    for (unsigned i = 0;; i++) {
        w = atomic_load_explicit(&pool->word, memory_order_acquire);
        if (W_SEQ(w) != seen || atomic_load_explicit(&pool->stop, memory_order_relaxed))
            return w;
        if (atomic_load_explicit(&pool->park, memory_order_relaxed))
            break;
        if ((i & 63) == 63) {
            int64_t t = now_ns();
            if (t0 == 0)
                t0 = t;
            else if (t - t0 > SPIN_NS)
                break;
        }
        cpu_relax();
    }
    pthread_mutex_lock(&pool->wake_mu);
    atomic_fetch_add(&pool->sleepers, 1);
    for (;;) {
        w = atomic_load(&pool->word);
        if (W_SEQ(w) != seen || atomic_load(&pool->stop))
            break;
        pthread_cond_wait(&pool->wake_cv, &pool->wake_mu);
    }
    atomic_fetch_sub(&pool->sleepers, 1);
    pthread_mutex_unlock(&pool->wake_mu);
    return w;
}

static void *worker_main(void *p)
{
    struct cpu_worker *self = p;
    cpu_pool *pool = self->pool;
    uint32_t seen = 0;
    fp_enter();  /* for good: this thread only ever runs chunks */
    for (;;) {
        uint64_t w = wait_for_job(pool, seen);
        if (atomic_load(&pool->stop))
            return NULL;
        w = run_chunks(pool, w);
        seen = W_SEQ(w);
    }
}

/* ---- lifetime ---- */

int cpu_pool_create(cpu_pool **out, int threads)
{
    *out = NULL;
    if (threads < 1)
        threads = 1;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    cpu_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return ENOMEM;
    pool->threads = threads;
    atomic_init(&pool->word, 0);
    atomic_init(&pool->stop, 0);
    atomic_init(&pool->park, 0);
    atomic_init(&pool->sleepers, 0);
    atomic_init(&pool->done, 0);
    atomic_init(&pool->caller_sleeping, 0);
    pthread_mutex_init(&pool->run_mu, NULL);
    pthread_mutex_init(&pool->wake_mu, NULL);
    pthread_cond_init(&pool->wake_cv, NULL);
    pthread_mutex_init(&pool->done_mu, NULL);
    pthread_cond_init(&pool->done_cv, NULL);
    if (threads > 1) {
        pool->workers = calloc((size_t)threads - 1, sizeof *pool->workers);
        if (!pool->workers) {
            cpu_pool_destroy(pool);
            return ENOMEM;
        }
        for (int i = 0; i < threads - 1; i++) {
            struct cpu_worker *w = &pool->workers[i];
            w->pool = pool;
            int rc = pthread_create(&w->thread, NULL, worker_main, w);
            if (rc) {
                cpu_pool_destroy(pool);
                return rc;
            }
            w->started = 1;
        }
    }
    *out = pool;
    return 0;
}

void cpu_pool_destroy(cpu_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->wake_mu);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->wake_cv);
    pthread_mutex_unlock(&pool->wake_mu);
    for (int i = 0; pool->workers && i < pool->threads - 1; i++)
        if (pool->workers[i].started)
            pthread_join(pool->workers[i].thread, NULL);
    free(pool->workers);
    pthread_mutex_destroy(&pool->run_mu);
    pthread_mutex_destroy(&pool->wake_mu);
    pthread_cond_destroy(&pool->wake_cv);
    pthread_mutex_destroy(&pool->done_mu);
    pthread_cond_destroy(&pool->done_cv);
    free(pool);
}

/* ---- running a job ---- */

void cpu_pool_run(cpu_pool *pool, cpu_pool_fn fn, void *arg, int64_t n,
                  int chunks, int64_t align, int64_t work)
{
    if (n <= 0)
        return;
    unsigned csr = fp_enter();
    if (!pool || chunks <= 1 || pool->threads <= 1) {
        fn(arg, 0, n, 0);
        fp_leave(csr);
        return;
    }
    if (chunks > cpu_pool_max_chunks(pool))
        chunks = cpu_pool_max_chunks(pool);

    pthread_mutex_lock(&pool->run_mu);
    atomic_store_explicit(&pool->park, 0, memory_order_relaxed);
    pool->fn = fn;
    pool->arg = arg;
    pool->n = n;
    pool->align = align;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    uint32_t seq = W_SEQ(atomic_load_explicit(&pool->word, memory_order_relaxed)) + 1;
    if (seq == 0)
        seq = 1;
    uint64_t w = W_MAKE(seq, chunks);
    atomic_store(&pool->word, w);
    if (work >= WAKE_WORK && atomic_load(&pool->sleepers)) {
        pthread_mutex_lock(&pool->wake_mu);
        pthread_cond_broadcast(&pool->wake_cv);
        pthread_mutex_unlock(&pool->wake_mu);
    }

    run_chunks(pool, w);

    int64_t t0 = 0;
    for (unsigned i = 0; atomic_load_explicit(&pool->done, memory_order_acquire) < chunks; i++) {
        if ((i & 63) == 63) {
            int64_t t = now_ns();
            if (t0 == 0) {
                t0 = t;
            } else if (t - t0 > SPIN_NS) {
                pthread_mutex_lock(&pool->done_mu);
                atomic_store(&pool->caller_sleeping, 1);
                while (atomic_load(&pool->done) < chunks)
                    pthread_cond_wait(&pool->done_cv, &pool->done_mu);
                atomic_store(&pool->caller_sleeping, 0);
                pthread_mutex_unlock(&pool->done_mu);
                break;
            }
        }
        cpu_relax();
    }
    pthread_mutex_unlock(&pool->run_mu);
    fp_leave(csr);
}

void cpu_pool_park(cpu_pool *pool)
{
    if (pool && pool->threads > 1)
        atomic_store_explicit(&pool->park, 1, memory_order_relaxed);
}
