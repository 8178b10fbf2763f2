/* pool.h - the cpu backend's persistent thread pool.
 *
 * What this is: a fixed set of worker threads, created once with the
 * backend, that run one static partition of a loop at a time.  The calling
 * thread always runs chunk 0 itself; workers 1..T-1 run chunks 1..T-1.
 * Workers spin briefly after a job (the next op usually follows within
 * microseconds), then sleep on a condition variable, so an idle pool costs
 * no CPU and never competes with OpenBLAS's own threads for long.
 *
 * Partitioning is static and depends only on (n, threads, align): chunk k
 * always covers the same items, which is what makes reductions over
 * per-chunk partials bit-identical from run to run.
 *
 * What this is not: a task queue or a work-stealing scheduler.  One job at
 * a time; a second caller waits for the first (jobs never nest: a chunk
 * function must not call back into the pool).  Hidden inside the plugin.
 */
#ifndef MLTK_CPU_POOL_H
#define MLTK_CPU_POOL_H

#include <stdint.h>

typedef struct cpu_pool cpu_pool;

/* Run items [begin, end) of a job as chunk `chunk` (0 <= chunk < chunks). */
typedef void (*cpu_pool_fn)(void *arg, int64_t begin, int64_t end, int chunk);

/* Start a pool of `threads` threads in all (the caller counts as one, so
 * threads - 1 workers are started).  Returns 0, or an errno value. */
int  cpu_pool_create(cpu_pool **pool, int threads);
/* Stop and join the workers, free the pool.  NULL is allowed. */
void cpu_pool_destroy(cpu_pool *pool);
int  cpu_pool_threads(const cpu_pool *pool);

/* How many chunks a job of n items costing `work` units in all is split
 * into: 1 below `grain` units, else at most one per `grain` units and at
 * most one per thread. */
int  cpu_pool_chunks(const cpu_pool *pool, int64_t n, int64_t work, int64_t grain);

/* Items [begin, end) of chunk k of n items split into `chunks` chunks whose
 * boundaries are multiples of `align` (except the last end, n). */
void cpu_pool_range(int64_t n, int chunks, int64_t align, int k,
                    int64_t *begin, int64_t *end);

/* Run fn over n items split into `chunks` chunks (from cpu_pool_chunks),
 * boundaries aligned to `align` items; returns when every chunk is done.
 * With chunks == 1 fn runs on the calling thread only. */
void cpu_pool_run(cpu_pool *pool, cpu_pool_fn fn, void *arg, int64_t n,
                  int chunks, int64_t align);

/* Tell spinning workers to sleep now: the caller is about to hand the
 * cores to another thread pool (OpenBLAS).  The next cpu_pool_run wakes
 * them again. */
void cpu_pool_park(cpu_pool *pool);

#endif /* MLTK_CPU_POOL_H */
