/* loader.c - the worker threads that prepare streamed batches ahead of the step.
 *
 * A ring of [data] prefetch slots holds batches b, b+1, ... of the epoch
 * under way; [data] workers threads each claim the next batch not yet
 * claimed (at most prefetch ahead of the batch the step consumes),
 * prepare its samples one by one (data set get, the transforms, the
 * conversion to float32; data.c's mltk_data_sample), run the batch
 * transforms on it, and mark the slot ready.  The step waits for the
 * batch it needs (the time it waits is added to the session's
 * data.wait_s), uploads it and releases the slot.  With workers = 0 the
 * step's own thread prepares each batch when it asks for it.
 *
 * What is in a batch depends only on the epoch's order and the batch's
 * number (the draws are keyed by sample and batch, never by thread), so
 * any number of workers gives the same batches; a new epoch (or an
 * evaluation) drops whatever was being prepared.
 *
 * What this is not: pinned host memory or asynchronous uploads (the
 * backend ABI has neither yet: a batch is uploaded with the backend's
 * upload), or a process pool.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "session.h"

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY };

typedef struct slot {
    int64_t  b;        /* the batch it holds or is being filled with */
    int      state;
    uint64_t gen;      /* the job it belongs to */
    float   *x;        /* (batch_size, x_numel) */
    void    *y;        /* (batch_size, yb_bytes) */
    int64_t  rows;
    int      rc;
    char    *err;
} slot;

struct mltk_loader {
    mltk_session_t  *s;
    pthread_t       *th;
    int              n_th;
    pthread_mutex_t  mu;
    pthread_cond_t   cv_work;    /* workers: a batch may be claimed, or quit */
    pthread_cond_t   cv_ready;   /* the step: a slot became ready */
    int              quit;
    /* the job: batches [next, end) of sp's order in `epoch`; sp is NULL
     * while no batch may be claimed, job_sp the split of the last job */
    uint64_t         gen;
    mltk_split      *sp, *job_sp;
    int64_t          epoch, next, end, job_end;
    int64_t          consumed;   /* batches released: next may run prefetch ahead */
    int              busy;       /* workers filling a slot */
    int              P;
    slot            *slots;
    size_t           x_cap, y_cap;
    void            *scratch0;   /* workers = 0: the step thread's scratch */
};

/* ---- one batch --------------------------------------------------------------------------- */

/* batch b of sp's current order into sl (sample scratch: 2 buffers) */
static int fill_batch(mltk_loader *ld, mltk_split *sp, int64_t epoch, int64_t b, slot *sl,
                      void *scratch, char **err)
{
    mltk_session_t *s = ld->s;
    mltk_data *d = &s->data;
    int64_t off = b * s->batch_size, rows = mltk_data_rows(s, sp, b);
    int soft = sp->yb_dtype == MLTK_F32 && sp->info.target == MLTK_TARGET_CLASS;
    int rc = MLTK_OK;
    sl->rows = rows;
    for (int64_t r = 0; r < rows && !rc; r++) {
        int64_t j = sp->idx[sp->perm_host[off + r]];
        int32_t label = 0;
        void *y = soft ? (void *)&label : (char *)sl->y + (size_t)r * sp->yb_bytes;
        rc = mltk_data_sample(s, sp, j, epoch, sl->x + r * sp->x_numel, y, scratch, 1, err);
        if (!rc && soft) {
            /* one-hot targets for the batch transforms */
            float *t = (float *)sl->y + r * sp->info.n_classes;
            memset(t, 0, (size_t)sp->info.n_classes * sizeof(float));
            if (label >= 0 && label < sp->info.n_classes)
                t[label] = 1.0f;
        }
    }
    for (int k = 0; k < d->n_xf && !rc; k++) {
        const mltk_xform *t = &d->xf[k];
        if (!t->batch || !sp->train)
            continue;
        /* keyed by (seed, epoch, batch, position): a domain apart from the
         * per-sample keys by the top bit of the batch counter */
        uint64_t key = s->seed ^ 0x6A09E667F3BCC909ull;
        key = key * 0x9E3779B97F4A7C15ull + (uint64_t)epoch;
        key = key * 0x9E3779B97F4A7C15ull + ((uint64_t)b | (1ull << 63));
        key = key * 0x9E3779B97F4A7C15ull + (uint64_t)k;
        rc = t->i->apply_batch(t->self, key, sl->x, sl->y, rows, err);
    }
    return rc;
}

/* ---- the workers ---------------------------------------------------------------------------- */

static void *worker(void *arg)
{
    mltk_loader *ld = arg;
    void *scratch = malloc(2 * ld->s->data.scratch_bytes);
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        while (!ld->quit
               && !(ld->sp && ld->next < ld->end && ld->next < ld->consumed + ld->P))
            pthread_cond_wait(&ld->cv_work, &ld->mu);
        if (ld->quit)
            break;
        int64_t b = ld->next++;
        slot *sl = &ld->slots[b % ld->P];
        uint64_t gen = ld->gen;
        mltk_split *sp = ld->sp;
        int64_t epoch = ld->epoch;
        sl->b = b;
        sl->gen = gen;
        sl->state = SLOT_FILLING;
        free(sl->err);
        sl->err = NULL;
        ld->busy++;
        pthread_mutex_unlock(&ld->mu);
        char *e = NULL;
        int rc = scratch ? fill_batch(ld, sp, epoch, b, sl, scratch, &e)
                         : mltk_errf(&e, MLTK_ERR_NOMEM, "out of memory in a loader thread");
        pthread_mutex_lock(&ld->mu);
        ld->busy--;
        sl->rc = rc;
        sl->err = e;
        sl->state = SLOT_READY;
        pthread_cond_broadcast(&ld->cv_ready);
    }
    pthread_mutex_unlock(&ld->mu);
    free(scratch);
    return NULL;
}

int mltk_loader_create(mltk_loader **out, mltk_session_t *s, char **err)
{
    mltk_data *d = &s->data;
    mltk_loader *ld = calloc(1, sizeof(*ld));
    if (!ld)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    ld->s = s;
    ld->P = d->prefetch > 0 ? d->prefetch : 1;
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->cv_work, NULL);
    pthread_cond_init(&ld->cv_ready, NULL);
    /* the largest batch of any split */
    mltk_split *all[3] = { &s->train, &s->val, &s->test };
    for (int k = 0; k < 3; k++) {
        size_t xc = (size_t)s->batch_size * (size_t)all[k]->x_numel * sizeof(float);
        size_t yc = (size_t)s->batch_size * all[k]->yb_bytes;
        if (xc > ld->x_cap)
            ld->x_cap = xc;
        if (yc > ld->y_cap)
            ld->y_cap = yc;
    }
    ld->slots = calloc((size_t)ld->P, sizeof(slot));
    int rc = ld->slots ? MLTK_OK : MLTK_ERR_NOMEM;
    for (int i = 0; i < ld->P && !rc; i++) {
        ld->slots[i].b = -1;
        ld->slots[i].x = malloc(ld->x_cap ? ld->x_cap : 1);
        ld->slots[i].y = malloc(ld->y_cap ? ld->y_cap : 1);
        if (!ld->slots[i].x || !ld->slots[i].y)
            rc = MLTK_ERR_NOMEM;
    }
    if (!rc && d->workers == 0 && !(ld->scratch0 = malloc(2 * d->scratch_bytes)))
        rc = MLTK_ERR_NOMEM;
    if (rc) {
        mltk_loader_destroy(ld);
        return mltk_errf(err, rc, "out of memory for %d prefetched batches", ld->P);
    }
    if (d->workers > 0) {
        ld->th = calloc((size_t)d->workers, sizeof(pthread_t));
        if (!ld->th) {
            mltk_loader_destroy(ld);
            return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
        }
        for (int i = 0; i < d->workers; i++) {
            if (pthread_create(&ld->th[i], NULL, worker, ld)) {
                mltk_loader_destroy(ld);
                return mltk_errf(err, MLTK_ERR_NOMEM, "cannot start loader thread %d of %d",
                                 i + 1, d->workers);
            }
            ld->n_th++;
        }
    }
    *out = ld;
    return MLTK_OK;
}

/* stop handing out batches and wait until no worker is filling one */
static void drain(mltk_loader *ld)
{
    ld->gen++;
    ld->sp = NULL;
    ld->next = ld->end = 0;
    while (ld->busy)
        pthread_cond_wait(&ld->cv_ready, &ld->mu);
    for (int i = 0; i < ld->P; i++) {
        ld->slots[i].state = SLOT_FREE;
        ld->slots[i].b = -1;
        free(ld->slots[i].err);
        ld->slots[i].err = NULL;
    }
}

void mltk_loader_destroy(mltk_loader *ld)
{
    if (!ld)
        return;
    pthread_mutex_lock(&ld->mu);
    drain(ld);
    ld->quit = 1;
    pthread_cond_broadcast(&ld->cv_work);
    pthread_mutex_unlock(&ld->mu);
    for (int i = 0; i < ld->n_th; i++)
        pthread_join(ld->th[i], NULL);
    free(ld->th);
    for (int i = 0; ld->slots && i < ld->P; i++) {
        free(ld->slots[i].x);
        free(ld->slots[i].y);
        free(ld->slots[i].err);
    }
    free(ld->slots);
    free(ld->scratch0);
    pthread_cond_destroy(&ld->cv_work);
    pthread_cond_destroy(&ld->cv_ready);
    pthread_mutex_destroy(&ld->mu);
    free(ld);
}

void mltk_loader_begin(mltk_loader *ld, mltk_split *sp, int64_t epoch, int64_t first,
                       int64_t end)
{
    pthread_mutex_lock(&ld->mu);
    drain(ld);
    ld->sp = ld->job_sp = sp;
    ld->job_end = end;
    ld->epoch = epoch;
    ld->next = first;
    ld->consumed = first;
    ld->end = end;
    pthread_cond_broadcast(&ld->cv_work);
    pthread_mutex_unlock(&ld->mu);
}

int mltk_loader_get(mltk_loader *ld, int64_t b, int64_t *rows, float **x, void **y,
                    char **err)
{
    slot *sl = &ld->slots[b % ld->P];
    if (ld->n_th > 0) {
        /* a batch released already (a window of steps run again) or not
         * yet handed out: the workers start over from it */
        pthread_mutex_lock(&ld->mu);
        int restart = b < ld->consumed || b >= ld->end || !ld->sp;
        pthread_mutex_unlock(&ld->mu);
        if (restart)
            mltk_loader_begin(ld, ld->job_sp, ld->epoch, b, ld->job_end);
    }
    if (ld->n_th == 0) {
        /* no workers: this thread prepares the batch now */
        char *e = NULL;
        double t0 = mltk_now();
        sl->b = b;
        sl->rc = fill_batch(ld, ld->job_sp, ld->epoch, b, sl, ld->scratch0, &e);
        sl->err = e;
        sl->state = SLOT_READY;
        ld->s->data.wait_s += mltk_now() - t0;
    } else {
        pthread_mutex_lock(&ld->mu);
        if (!(sl->state == SLOT_READY && sl->b == b && sl->gen == ld->gen)) {
            double t0 = mltk_now();
            while (!(sl->state == SLOT_READY && sl->b == b && sl->gen == ld->gen))
                pthread_cond_wait(&ld->cv_ready, &ld->mu);
            ld->s->data.wait_s += mltk_now() - t0;
        }
        pthread_mutex_unlock(&ld->mu);
    }
    if (sl->rc) {
        int rc = sl->rc;
        mltk_errf(err, rc, "%s split, batch %" PRId64 ": %s",
                  ld->job_sp ? ld->job_sp->name : "?",
                  b + 1, sl->err ? sl->err : mltk_status_str(rc));
        return rc == MLTK_ERR_IO ? MLTK_ERR_DATA : rc;
    }
    *rows = sl->rows;
    *x = sl->x;
    *y = sl->y;
    return MLTK_OK;
}

void mltk_loader_release(mltk_loader *ld, int64_t b)
{
    slot *sl = &ld->slots[b % ld->P];
    pthread_mutex_lock(&ld->mu);
    sl->state = SLOT_FREE;
    free(sl->err);
    sl->err = NULL;
    if (b + 1 > ld->consumed)
        ld->consumed = b + 1;
    pthread_cond_broadcast(&ld->cv_work);
    pthread_mutex_unlock(&ld->mu);
}
