/* logs.c - what the run reports per step and per epoch ([log]).
 *
 * What this is: the component that writes the epoch's line on stdout,
 * one JSON object per epoch (jsonl, default metrics.jsonl in the run
 * directory), one CSV row per epoch (csv, header first), and TensorBoard
 * event files (tensorboard, default tb/): the step's loss, rate and
 * throughput every scalars_every steps, histograms of every parameter and
 * gradient every histograms_every steps (else after each epoch), and the
 * epoch's numbers with the process's CPU and memory use and, on a GPU
 * backend, NVML's figures.  A resumed run appends to the logs it finds.
 * JSON is built as jansson values and dumped by jansson.  No state in
 * checkpoints.
 *
 * What this is not: the file formats (tbevents.c), the evaluation metrics
 * (metrics.c, through ops.c) or the run record (ops.c).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "component.h"
#include "../metrics.h"
#include "../schema.h"
#include "../tbevents.h"

typedef struct logs {
    char    *jsonl_path, *csv_path, *tb_path;   /* NULL: not written */
    FILE    *jsonl, *csv;
    int      csv_had;                           /* csv held rows already (a resume) */
    int      csv_header_done;                   /* its header is written or checked */
    char    *csv_cols;                          /* its header when not this run's */
    struct mltk_tb_writer *tb;
    int64_t  scalars_every, hist_every;
    double   last_cpu, last_wall;               /* for the CPU use */
} logs;

/* ---- lifetime ---------------------------------------------------------------------------- */

static int lg_open(void **self, mltk_session_t *s, const mltk_section *sec,
                   const mltk_params_t *p, char **err)
{
    logs *l = calloc(1, sizeof(*l));
    if (!l)
        return mltk_errf(err, MLTK_ERR_NOMEM, "out of memory");
    *self = l;
    (void)sec;
    l->last_cpu = -1;
    l->scalars_every = mltk_params_int(p, "scalars_every");
    l->hist_every = mltk_params_int(p, "histograms_every");
    l->jsonl_path = mltk_out_path(s, p, "jsonl", "metrics.jsonl");
    l->csv_path = mltk_out_path(s, p, "csv", "metrics.csv");
    l->tb_path = mltk_out_path(s, p, "tensorboard", "tb");
    return MLTK_OK;
}

static void lg_close(void *self)
{
    logs *l = self;
    if (l->jsonl)
        fclose(l->jsonl);
    if (l->csv)
        fclose(l->csv);
    mltk_tb_close(l->tb);
    free(l->jsonl_path);
    free(l->csv_path);
    free(l->csv_cols);
    free(l->tb_path);
    free(l);
}

static int open_text(FILE **f, const char *path, int append, const char *header,
                     const mltk_section *sc, char **err)
{
    struct stat st;
    int had = append && stat(path, &st) == 0 && st.st_size > 0;
    *f = fopen(path, append ? "a" : "w");
    if (!*f)
        return mltk_errf(err, MLTK_ERR_IO, "%s%scannot write %s: %s",
                         sc ? mltk_params_where(sc->params) : "", sc ? ": " : "", path,
                         strerror(errno));
    if (header && !had)
        fprintf(*f, "%s\n", header);
    return MLTK_OK;
}

static int lg_train_begin(void *self, mltk_session_t *s, char **err)
{
    logs *l = self;
    const mltk_section *sec = mltk_config_section(s->cfg, "log");
    int append = s->opts.resume != NULL;
    int rc = MLTK_OK;
    if (l->jsonl_path)
        rc = open_text(&l->jsonl, l->jsonl_path, append, NULL, sec, err);
    if (!rc && l->csv_path) {
        /* the header waits for the first epoch's end, which knows the
         * [metrics] columns */
        struct stat st;
        rc = open_text(&l->csv, l->csv_path, append, NULL, sec, err);
        l->csv_had = !rc && fstat(fileno(l->csv), &st) == 0 && st.st_size > 0;
    }
    if (!rc && l->tb_path) {
        rc = mltk_tb_open(&l->tb, l->tb_path, NULL, err);
        if (!rc && s->cfg->text)
            rc = mltk_tb_text(l->tb, "config", 0, s->cfg->text, err);
    }
    return rc;
}

/* ---- per step: TensorBoard scalars and histograms -------------------------------------- */

static int histograms(logs *l, mltk_session_t *s, int64_t at, char **err)
{
    int n = mltk_model_n_tensors(s->model), rc = MLTK_OK;
    int64_t pn;
    float *grads = mltk_model_grads(s->model, &pn), *params = mltk_model_params(s->model, &pn);
    for (int i = 0; i < n && !rc; i++) {
        mltk_model_named t;
        if (mltk_model_tensor(s->model, i, &t))
            continue;
        int64_t numel = mltk_shape_numel(&t.shape);
        float *h = malloc((size_t)(numel ? numel : 1) * sizeof(float));
        if (!h)
            return MLTK_ERR_NOMEM;
        char tag[256];
        rc = mltk_be_download(&s->be, h, t.data, (size_t)numel * sizeof(float));
        snprintf(tag, sizeof tag, "%s/%s", t.state ? "state" : "weights", t.name);
        if (!rc)
            rc = mltk_tb_histogram(l->tb, tag, at, h, numel, err);
        if (!rc && !t.state) {
            rc = mltk_be_download(&s->be, h, grads + (t.data - params),
                                  (size_t)numel * sizeof(float));
            snprintf(tag, sizeof tag, "grads/%s", t.name);
            if (!rc)
                rc = mltk_tb_histogram(l->tb, tag, at, h, numel, err);
        }
        free(h);
    }
    return rc;
}

/* histograms are taken of the state right after step `step`: the window
 * is read back there */
static int lg_sync_due(void *self, mltk_session_t *s, uint64_t step)
{
    logs *l = self;
    (void)s;
    return l->tb && l->hist_every > 0 && step % (uint64_t)l->hist_every == 0;
}

static int lg_step_end(void *self, mltk_session_t *s, const mltk_step_result *r, char **err)
{
    logs *l = self;
    int rc = MLTK_OK;
    int64_t at = (int64_t)r->step + 1;
    if (l->tb && l->scalars_every > 0 && at % l->scalars_every == 0) {
        rc = mltk_tb_scalar(l->tb, "step/loss", at, r->loss, err);
        if (!rc)
            rc = mltk_tb_scalar(l->tb, "step/lr", at, r->lr, err);
        if (!rc && r->samples_per_s > 0)
            rc = mltk_tb_scalar(l->tb, "step/samples_per_s", at, r->samples_per_s, err);
    }
    if (!rc && r->current && lg_sync_due(l, s, r->step))
        rc = histograms(l, s, (int64_t)r->step, err);
    return rc;
}

/* ---- per epoch ---------------------------------------------------------------------------- */

/* CPU use of the process since the last call, in percent of one core, and
 * its resident memory in MiB. */
static void resources(logs *l, double *cpu_pct, double *rss_mb)
{
    struct rusage ru;
    double cpu = 0, now = mltk_now();
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6
              + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
    *cpu_pct = l->last_cpu >= 0 && now > l->last_wall
                   ? 100.0 * (cpu - l->last_cpu) / (now - l->last_wall) : NAN;
    l->last_cpu = cpu;
    l->last_wall = now;
    *rss_mb = NAN;
    FILE *f = fopen("/proc/self/statm", "r");
    long long size, rss;
    if (f && fscanf(f, "%lld %lld", &size, &rss) == 2)
        *rss_mb = (double)rss * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
    if (f)
        fclose(f);
}

/* metrics.csv's columns after epoch: the figures of metrics.jsonl less
 * step and the GPU's, [metrics] values after val_acc.  Fills name[] and
 * val[] (room for CSV_MAX_COLS); returns the count. */
#define CSV_MAX_COLS (9 + MLTK_METRICS_MAX_VALUES)
static int csv_columns(const mltk_epoch_stats *e, double cpu, double rss, double wait,
                       const mltk_metric_value *mv, int n_mv, const char **name, double *val)
{
    int n = 0;
    const char *const head[] = { "train_loss", "val_loss", "val_acc" };
    const double head_v[] = { e->train_loss, e->val_loss, e->val_acc };
    const char *const tail[] = { "samples_per_s", "data_wait", "lr", "wall_s", "cpu_percent",
                                 "rss_mb" };
    const double tail_v[] = { e->samples_per_s, wait, e->lr, e->wall_s, cpu, rss };
    for (int i = 0; i < 3; i++, n++) {
        name[n] = head[i];
        val[n] = head_v[i];
    }
    for (int i = 0; i < n_mv && n < CSV_MAX_COLS - 6; i++)
        if (strcmp(mv[i].name, "val_acc") != 0) {
            name[n] = mv[i].name;
            val[n++] = mv[i].value;
        }
    for (int i = 0; i < 6; i++, n++) {
        name[n] = tail[i];
        val[n] = tail_v[i];
    }
    return n;
}

/* metrics.csv's header, at the first epoch's end: written to a new file.
 * A resumed run keeps the file's header; when this run's columns differ
 * (its [metrics] changed) it warns, and its rows follow the file's
 * columns (l->csv_cols), empty where this run has no value. */
static int csv_header(logs *l, const char *const *name, int n, char **err)
{
    char head[CSV_MAX_COLS * (MLTK_METRIC_NAME_MAX + 1) + 8] = "epoch";
    size_t used = strlen(head);
    for (int i = 0; i < n && used < sizeof head; i++)
        used += (size_t)snprintf(head + used, sizeof head - used, ",%s", name[i]);
    if (!l->csv_had) {
        fprintf(l->csv, "%s\n", head);
        return MLTK_OK;
    }
    char had[sizeof head + 2] = "";
    FILE *f = fopen(l->csv_path, "r");
    if (f && fgets(had, sizeof had, f))
        had[strcspn(had, "\r\n")] = '\0';
    if (f)
        fclose(f);
    if (strcmp(had, head) == 0)
        return MLTK_OK;
    mltk_log(MLTK_LOG_WARN, "%s: its columns (%s) are not this run's (%s): [metrics] "
             "changed; the rows appended keep the file's columns, empty where this run "
             "has no value", l->csv_path, had, head);
    l->csv_cols = strdup(had);
    return l->csv_cols ? MLTK_OK
                       : mltk_errf(err, MLTK_ERR_NOMEM, "writing %s failed: out of memory",
                                   l->csv_path);
}

/* v, or null where it is not finite (JSON has no NaN or Infinity) */
static json_t *jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static int lg_epoch_end(void *self, mltk_session_t *s, mltk_epoch_end *ee, char **err)
{
    logs *l = self;
    const mltk_epoch_stats *e = ee->e;
    FILE *out = s->opts.epoch_out ? s->opts.epoch_out : stdout;
    double cpu, rss;
    mltk_metric_value mv[MLTK_METRICS_MAX_VALUES];
    int n_mv = 0;
    resources(l, &cpu, &rss);
    int rc = mltk_ops_metric_values(s, mv, MLTK_METRICS_MAX_VALUES, &n_mv, err);
    if (rc)
        return rc;
    if (!s->opts.quiet) {
        fprintf(out, "epoch %d/%d  train_loss %.4f  val_loss %.4f  val_acc %.4f", e->epoch,
                s->epochs, e->train_loss, e->val_loss, e->val_acc);
        for (int i = 0; i < n_mv; i++)
            if (strcmp(mv[i].name, "val_acc") != 0)
                fprintf(out, "  %s %.4f", mv[i].name, mv[i].value);
        fprintf(out, "  samples/s %.0f  lr %g  time %.1fs\n", e->samples_per_s, e->lr, e->wall_s);
        fflush(out);
    }
    /* on a GPU backend, its utilisation, memory and power when NVML is there */
    mltk_gpu_figures gpu = { NAN, NAN, NAN };
    if (strcmp(s->be.name, "cpu") != 0)
        mltk_nvml_read(0, &gpu);
    if (l->jsonl) {
        /* one line, "key": value separated by ", " as json.dumps writes it */
        json_t *line = json_pack("{s:i, s:I, s:o, s:o, s:o}", "epoch", e->epoch,
                                 "step", (json_int_t)s->step, "train_loss", jnum(e->train_loss),
                                 "val_loss", jnum(e->val_loss), "val_acc", jnum(e->val_acc));
        for (int i = 0; line && i < n_mv; i++)
            if (strcmp(mv[i].name, "val_acc") != 0)
                json_object_set_new(line, mv[i].name, jnum(mv[i].value));
        const struct { const char *key; double v; } more[] = {
            { "samples_per_s", e->samples_per_s }, { "data_wait", s->data.wait_frac },
            { "lr", e->lr }, { "wall_s", e->wall_s },
            { "cpu_percent", cpu }, { "rss_mb", rss },
            { "gpu_util_percent", gpu.util_percent }, { "gpu_mem_mb", gpu.mem_used_mb },
            { "gpu_power_w", gpu.power_w },
        };
        int n_more = isfinite(gpu.util_percent) || isfinite(gpu.mem_used_mb) ? 9 : 6;
        for (int i = 0; line && i < n_more; i++)
            json_object_set_new(line, more[i].key, jnum(more[i].v));
        if (!line)
            return mltk_errf(err, MLTK_ERR_NOMEM, "writing %s failed: out of memory",
                             l->jsonl_path);
        int bad = json_dumpf(line, l->jsonl, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
        json_decref(line);
        fputc('\n', l->jsonl);
        if (bad && !ferror(l->jsonl))
            return mltk_errf(err, MLTK_ERR_NOMEM, "writing %s failed: out of memory",
                             l->jsonl_path);
        if (fflush(l->jsonl) || ferror(l->jsonl))
            return mltk_errf(err, MLTK_ERR_IO, "writing %s failed: %s", l->jsonl_path,
                             strerror(errno));
    }
    if (l->csv) {
        const char *name[CSV_MAX_COLS];
        double val[CSV_MAX_COLS];
        int nc = csv_columns(e, cpu, rss, s->data.wait_frac, mv, n_mv, name, val);
        if (!l->csv_header_done) {
            rc = csv_header(l, name, nc, err);
            if (rc)
                return rc;
            l->csv_header_done = 1;
        }
        fprintf(l->csv, "%d", e->epoch);
        if (!l->csv_cols) {
            for (int k = 0; k < nc; k++)
                isfinite(val[k]) ? fprintf(l->csv, ",%.9g", val[k]) : fputc(',', l->csv);
        } else {
            /* the file's columns after epoch, looked up by name */
            for (const char *col = strchr(l->csv_cols, ','); col; col = strchr(col, ',')) {
                size_t len = strcspn(++col, ",");
                int k = 0;
                while (k < nc && !(strlen(name[k]) == len && strncmp(name[k], col, len) == 0))
                    k++;
                k < nc && isfinite(val[k]) ? fprintf(l->csv, ",%.9g", val[k])
                                           : fputc(',', l->csv);
            }
        }
        fputc('\n', l->csv);
        if (fflush(l->csv) || ferror(l->csv))
            return mltk_errf(err, MLTK_ERR_IO, "writing %s failed: %s", l->csv_path,
                             strerror(errno));
    }
    if (l->tb) {
        int64_t st = (int64_t)s->step;
        const struct { const char *tag; double v; } sc[] = {
            { "epoch/train_loss", e->train_loss }, { "epoch/val_loss", e->val_loss },
            { "epoch/val_acc", e->val_acc }, { "epoch/lr", e->lr },
            { "epoch/samples_per_s", e->samples_per_s },
            { "data/wait_fraction", s->data.wait_frac }, { "resource/cpu_percent", cpu },
            { "resource/rss_mb", rss }, { "resource/gpu_util_percent", gpu.util_percent },
            { "resource/gpu_mem_mb", gpu.mem_used_mb }, { "resource/gpu_power_w", gpu.power_w },
        };
        for (size_t i = 0; i < sizeof sc / sizeof *sc && !rc; i++)
            if (isfinite(sc[i].v))
                rc = mltk_tb_scalar(l->tb, sc[i].tag, st, sc[i].v, err);
        for (int i = 0; i < n_mv && !rc; i++) {
            char tag[96];
            snprintf(tag, sizeof tag, "epoch/%.*s", MLTK_METRIC_NAME_MAX, mv[i].name);
            if (isfinite(mv[i].value) && strcmp(mv[i].name, "val_acc") != 0)
                rc = mltk_tb_scalar(l->tb, tag, st, mv[i].value, err);
        }
        if (!rc && l->hist_every == 0)
            rc = histograms(l, s, st, err);
        if (!rc)
            rc = mltk_tb_flush(l->tb, err);
    }
    return rc;
}

static int lg_train_end(void *self, mltk_session_t *s, const char *status, char **err)
{
    logs *l = self;
    int rc = MLTK_OK;
    (void)s;
    (void)status;
    if (l->tb)
        rc = mltk_tb_flush(l->tb, err);
    if (l->csv && fflush(l->csv) && !rc)
        rc = mltk_errf(err, MLTK_ERR_IO, "writing %s failed: %s", l->csv_path, strerror(errno));
    return rc;
}

const mltk_component_i mltk_component_logs = {
    .name = "log",
    .section = "log",
    .schema = mltk_schema_log,
    .open = lg_open,
    .close = lg_close,
    .train_begin = lg_train_begin,
    .sync_due = lg_sync_due,
    .step_end = lg_step_end,
    .epoch_end = lg_epoch_end,
    .train_end = lg_train_end,
};
