/* progress.c - progress within an epoch on stderr ([log] progress).
 *
 * What this is: the component that draws a live bar on a terminal (at
 * most 10 times a second) or writes a plain line every progress_interval
 * seconds: samples done, throughput, the loss of the newest step read
 * back, and the time left in the epoch.  It is drawn as steps are read
 * back (every step with check_every = 1, else per window).  No state in
 * checkpoints.
 *
 * What this is not: the epoch's line (logs.c).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "component.h"
#include "../schema.h"

typedef struct progress {
    int    mode;        /* 0 off, 1 bar, 2 lines */
    double interval;
    double last_draw;
} progress;

static int pg_open(void **self, mltk_session_t *s, const mltk_section *sec,
                   const mltk_params_t *p, char **err)
{
    progress *g = calloc(1, sizeof(*g));
    if (!g)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    *self = g;
    (void)sec;
    const char *mode = mltk_params_str(p, "progress");
    g->interval = mltk_params_float(p, "progress_interval");
    if (s->opts.quiet || strcmp(mode, "off") == 0)
        g->mode = 0;
    else if (strcmp(mode, "bar") == 0 || (strcmp(mode, "auto") == 0 && isatty(2)))
        g->mode = 1;
    else
        g->mode = 2;
    return MLTK_OK;
}

static void pg_close(void *self)
{
    free(self);
}

static void fmt_eta(char *buf, size_t cap, double sec)
{
    if (!(sec >= 0) || sec > 1e7)
        snprintf(buf, cap, "?");
    else if (sec >= 3600)
        snprintf(buf, cap, "%dh%02dm", (int)(sec / 3600), (int)(sec / 60) % 60);
    else if (sec >= 60)
        snprintf(buf, cap, "%dm%02ds", (int)(sec / 60), (int)sec % 60);
    else
        snprintf(buf, cap, "%.0fs", sec);
}

/* `final` (the epoch's last step, or a stop) ends the bar's line */
static int pg_step_end(void *self, mltk_session_t *s, const mltk_step_result *r, char **err)
{
    progress *g = self;
    int final = r->last || r->stop;
    (void)err;
    if (!g->mode)
        return MLTK_OK;
    double now = mltk_now();
    if (g->last_draw < r->t_epoch)
        g->last_draw = r->t_epoch;  /* the first line comes an interval into the epoch */
    double min_gap = g->mode == 1 ? 0.1 : g->interval;
    if (!final && now - g->last_draw < min_gap)
        return MLTK_OK;
    if (g->mode == 2 && final)
        return MLTK_OK;  /* the epoch line follows */
    g->last_draw = now;
    double el = now - r->t_epoch, rate = el > 0 ? (double)r->done / el : 0;
    char eta[32];
    fmt_eta(eta, sizeof eta, rate > 0 ? (double)(r->total - r->done) / rate : -1);
    if (g->mode == 1) {
        char bar[31];
        int fill = r->total ? (int)(30 * r->done / r->total) : 30;
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
        bar[30] = '\0';
        fprintf(stderr, "\repoch %d/%d [%s] %" PRId64 "/%" PRId64 "  %.0f samples/s  loss "
                "%.4f  ETA %s\033[K", r->epoch, s->epochs, bar, r->done, r->total, rate,
                r->loss, eta);
        if (final)
            fputs("\r\033[K", stderr);
    } else {
        fprintf(stderr, "mltk: epoch %d/%d: %" PRId64 "/%" PRId64 " samples, %.0f samples/s, "
                "loss %.4f, ETA %s\n", r->epoch, s->epochs, r->done, r->total, rate, r->loss,
                eta);
    }
    fflush(stderr);
    return MLTK_OK;
}

const mltk_component_i mltk_component_progress = {
    .name = "progress",
    .section = "log",
    .schema = mltk_schema_log,
    .open = pg_open,
    .close = pg_close,
    .step_end = pg_step_end,
};
