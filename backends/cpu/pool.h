/* pool.h - the cpu backend's persistent thread pool.
 *
 * What this is: a fixed set of worker threads, created once with the
 * backend, that run one static partition of a loop at a time, together
 * with the calling thread.  Workers spin briefly after a job (the next op usually follows within
 * microseconds), then sleep on a condition variable, so an idle pool costs
 * no CPU and never competes with OpenBLAS's own threads for long.  Chunks
 * are claimed dynamically (whoever is free takes the next one), but what
 * chunk k computes never depends on which thread runs it.
 *
 * Partitioning is static and depends only on (n, chunks, align): chunk k
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
 * into: 1 below 2 * `grain` units, else one per `grain` units, at most
 * cpu_pool_max_chunks.  Depends only on its arguments and the thread
 * count. */
int  cpu_pool_chunks(const cpu_pool *pool, int64_t n, int64_t work, int64_t grain);
/* The most chunks a job may have (size per-chunk partial results by it). */
int  cpu_pool_max_chunks(const cpu_pool *pool);

/* Items [begin, end) of chunk k of n items split into `chunks` chunks whose
 * boundaries are multiples of `align` (except the last end, n). */
void cpu_pool_range(int64_t n, int chunks, int64_t align, int k,
                    int64_t *begin, int64_t *end);

/* Run fn over n items split into `chunks` chunks (from cpu_pool_chunks),
 * boundaries aligned to `align` items; returns when every chunk is done.
 * With chunks == 1 fn runs on the calling thread only.  `work` (elements
 * touched) decides whether sleeping workers are worth waking; it never
 * changes the chunks, so results do not depend on it.  Chunks run with
 * denormals flushed to zero. */
void cpu_pool_run(cpu_pool *pool, cpu_pool_fn fn, void *arg, int64_t n,
                  int chunks, int64_t align, int64_t work);

/* Tell spinning workers to sleep now: the caller is about to hand the
 * cores to another thread pool (OpenBLAS).  The next cpu_pool_run wakes
 * them again. */
void cpu_pool_park(cpu_pool *pool);

#endif /* MLTK_CPU_POOL_H */
