/* ops.c - what a long run needs around the training loop: the run
 * directory and its record, metric logs (JSON lines, CSV, TensorBoard),
 * progress, resource use, evaluation metrics beyond accuracy, and alerts.
 *
 * What this is: the session's outputs, opened when training starts (so a
 * dry run or a config that fails to build writes nothing) and closed when
 * it ends, whatever the outcome.  With [run] dir set, every output that is
 * not named elsewhere goes there:
 *
 *   config.ini     the exact config text
 *   run.json       the run record: mltk version, seed, host, backend and
 *                  device, the plugins loaded (name, kind, version, file),
 *                  the data set checksums, start and end time, outcome
 *   metrics.jsonl  one object per epoch ([log] jsonl)
 *   metrics.csv    the same as CSV ([log] csv)
 *   tb/            TensorBoard event files ([log] tensorboard)
 *   checkpoints/   ([checkpoint] dir)
 *   confusion.csv  the last evaluation's confusion matrix
 *
 * A resumed run appends to the logs it finds.  Alerts run a shell command
 * with the event in its environment; it is waited for at most 30 seconds,
 * so a hanging command never stalls training for long.
 *
 * What this is not: the loop itself or the policy of checkpoints, NaN
 * handling and early stopping (train.c); the file formats (tbevents.c,
 * safetensors.c, metrics.c).  JSON is built as jansson values and dumped by
 * jansson; nothing here escapes or formats JSON text by hand.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "session.h"
#include "metrics.h"
#include "tbevents.h"

/* ---- small helpers ------------------------------------------------------------ */

static const mltk_section *sec(const mltk_session_t *s, const char *name)
{
    return mltk_config_section(s->cfg, name);
}

/* a path key of a section, or `def` inside the run dir (NULL without one) */
static char *out_path(const mltk_session_t *s, const mltk_section *sc, const char *key,
                      const char *def)
{
    if (sc && mltk_params_has(sc->params, key) && *mltk_params_str(sc->params, key))
        return mltk_strdup(mltk_params_str(sc->params, key));
    if (s->run_dir && def)
        return mltk_strfmt("%s/%s", s->run_dir, def);
    return NULL;
}

static int maximize(const char *monitor, const char *mode)
{
    if (strcmp(mode, "auto") == 0)
        return strcmp(monitor, "val_acc") == 0;
    return strcmp(mode, "max") == 0;
}

static void iso_now(char *buf, size_t cap)
{
    time_t now = time(NULL);
    struct tm tm;
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
}

/* s as a JSON string: "" for NULL; a string that is not UTF-8 (a host
 * name, a path) keeps its ASCII and gets '?' for every other byte. */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s ? s : "");
    char *copy = j || !s ? NULL : mltk_strdup(s);
    for (char *p = copy; p && *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    if (copy)
        j = json_string(copy);
    free(copy);
    return j;
}

/* v, or null where it is not finite (JSON has no NaN or Infinity) */
static json_t *jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* Dump a record with one member per line, and one element per line in
 * its arrays; each value itself on one line, "key": value, as
 * json.dumps writes it. */
static int dump_record(FILE *f, json_t *rec)
{
    const char *key;
    json_t *v, *e;
    size_t i;
    int rc = 0, first = 1;
    fputc('{', f);
    json_object_foreach(rec, key, v) {
        fprintf(f, "%s\n  ", first ? "" : ",");
        first = 0;
        json_t *k = json_string(key);
        rc |= !k || json_dumpf(k, f, JSON_ENCODE_ANY);
        json_decref(k);
        fputs(": ", f);
        if (!json_is_array(v) || !json_array_size(v)) {
            rc |= json_dumpf(v, f, JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
            continue;
        }
        fputc('[', f);
        json_array_foreach(v, i, e) {
            fputs(i ? ",\n    " : "\n    ", f);
            rc |= json_dumpf(e, f, JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
        }
        fputs("\n  ]", f);
    }
    fputs("\n}\n", f);
    return rc;
}

/* the events of [alert] on; bit i of alert_mask is alert_events[i] */
static const char *const alert_events[] = { "nan", "early_stop", "finished", "crashed",
                                            "spike", "checkpoint" };
#define N_EVENTS (sizeof alert_events / sizeof *alert_events)

/* ---- the configuration of operations ---------------------------------------------- */

static int read_settings(mltk_session_t *s, char **err)
{
    const mltk_section *run = sec(s, "run"), *train = sec(s, "train"), *log = sec(s, "log");
    const mltk_section *ck = sec(s, "checkpoint"), *es = sec(s, "early_stopping");
    const mltk_section *al = sec(s, "alert");
    if (run && mltk_params_has(run->params, "dir") && *mltk_params_str(run->params, "dir")
        && !(s->run_dir = mltk_strdup(mltk_params_str(run->params, "dir"))))
        return MLTK_ERR_NOMEM;
    s->ck.last_step = -1;
    if (ck) {
        s->ck.dir = out_path(s, ck, "dir", "checkpoints");
        if (!s->ck.dir)
            return mltk_errf(err, MLTK_ERR_CONFIG, "%s: [checkpoint] needs a dir (or [run] "
                             "dir, which puts them in checkpoints/ there)",
                             mltk_params_where(ck->params));
        s->ck.every_epochs = mltk_params_int(ck->params, "every_epochs");
        s->ck.every_steps = mltk_params_int(ck->params, "every_steps");
        s->ck.keep_last = mltk_params_int(ck->params, "keep_last");
        s->ck.keep_best = mltk_params_bool(ck->params, "keep_best");
        s->ck.on_signal = mltk_params_bool(ck->params, "on_signal");
        s->ck.monitor = mltk_params_str(ck->params, "monitor");
        s->ck.maximize = maximize(s->ck.monitor, mltk_params_str(ck->params, "mode"));
    }
    s->ck.best = s->ck.maximize ? -INFINITY : INFINITY;
    if (es) {
        s->es.on = 1;
        s->es.monitor = mltk_params_str(es->params, "monitor");
        s->es.maximize = maximize(s->es.monitor, mltk_params_str(es->params, "mode"));
        s->es.patience = mltk_params_int(es->params, "patience");
        s->es.min_delta = mltk_params_float(es->params, "min_delta");
        s->es.restore_best = mltk_params_bool(es->params, "restore_best");
    }
    s->es.best = s->es.maximize ? -INFINITY : INFINITY;
    if (train) {
        const char *nan = mltk_params_str(train->params, "on_nan");
        s->on_nan = strcmp(nan, "skip_step") == 0 ? 1 : strcmp(nan, "rollback") == 0 ? 2 : 0;
        s->nan_lr_factor = mltk_params_float(train->params, "nan_lr_factor");
        s->max_skips = mltk_params_int(train->params, "max_skips");
        s->spike_window = mltk_params_int(train->params, "spike_window");
        s->spike_z = mltk_params_float(train->params, "spike_zscore");
    } else {
        s->nan_lr_factor = 0.5;
        s->max_skips = 10;
        s->spike_window = 100;
        s->spike_z = 6.0;
    }
    if (s->on_nan == 2 && !s->ck.dir)
        return mltk_errf(err, MLTK_ERR_CONFIG, "%s:%d: on_nan = rollback needs a "
                         "[checkpoint] section to roll back to", s->cfg->path,
                         train ? train->line : 0);
    s->tb_scalars_every = log ? mltk_params_int(log->params, "scalars_every") : 50;
    s->tb_hist_every = log ? mltk_params_int(log->params, "histograms_every") : 0;
    const char *prog = log ? mltk_params_str(log->params, "progress") : "auto";
    s->progress_interval = log ? mltk_params_float(log->params, "progress_interval") : 10.0;
    if (s->opts.quiet || strcmp(prog, "off") == 0)
        s->progress = 0;
    else if (strcmp(prog, "bar") == 0 || (strcmp(prog, "auto") == 0 && isatty(2)))
        s->progress = 1;
    else
        s->progress = 2;
    if (al) {
        s->alert_cmd = mltk_params_str(al->params, "command");
        const char *on = mltk_params_str(al->params, "on");
        for (const char *p = on; *p;) {
            size_t n = strcspn(p, ", ");
            int known = 0;
            for (unsigned i = 0; i < N_EVENTS && n; i++)
                if (strlen(alert_events[i]) == n && strncmp(p, alert_events[i], n) == 0) {
                    s->alert_mask |= 1u << i;
                    known = 1;
                }
            if (n && !known)
                return mltk_errf(err, MLTK_ERR_CONFIG, "%s: [alert] on: unknown event "
                                 "'%.*s' (events: nan, early_stop, finished, crashed, spike, "
                                 "checkpoint)", mltk_params_where(al->params), (int)n, p);
            p += n;
            p += strspn(p, ", ");
        }
    }
    return MLTK_OK;
}

/* ---- metrics -------------------------------------------------------------------- */

static int open_metrics(mltk_session_t *s, char **err)
{
    const mltk_section *ms = sec(s, "metrics");
    int classify = s->test.info.target == MLTK_TARGET_CLASS;
    int n = (int)mltk_shape_numel(mltk_model_output_shape(s->model));
    mltk_metrics_kind kind = classify ? MLTK_METRICS_CLASSIFICATION : MLTK_METRICS_REGRESSION;
    s->mspec = calloc(1, sizeof(*s->mspec));
    if (!s->mspec)
        return MLTK_ERR_NOMEM;
    char *where = mltk_strfmt("%s:%d: metrics", s->cfg->path, ms ? ms->line : 0);
    int rc = where ? MLTK_OK : MLTK_ERR_NOMEM;
    if (!rc && ms && mltk_params_set(ms->params, "list"))
        rc = mltk_metrics_spec_parse(s->mspec, mltk_params_str(ms->params, "list"), where, err);
    else if (!rc && classify)  /* the epoch line shows val_acc; the matrix is still kept */
        rc = mltk_metrics_spec_parse(s->mspec, "accuracy", where, err);
    else if (!rc)
        mltk_metrics_spec_default(s->mspec, kind, n);
    if (!rc)
        rc = mltk_metrics_spec_check(s->mspec, kind, n, where, err);
    free(where);
    if (!rc)
        rc = mltk_metrics_create(&s->metrics, kind, n,
                                 classify && s->mspec->n_k ? s->mspec->top_k[s->mspec->n_k - 1]
                                                           : 0, err);
    if (rc)
        return rc;
    if (classify) {
        s->confusion_path = out_path(s, ms, "confusion_csv", "confusion.csv");
        if (ms && mltk_params_has(ms->params, "class_names")) {
            const char *names = mltk_params_str(ms->params, "class_names");
            for (const char *p = names; *p;) {
                size_t len = strcspn(p, ",");
                while (len && p[len - 1] == ' ')
                    len--;
                char **nn = realloc(s->class_names, (size_t)(s->n_class_names + 1) * sizeof(*nn));
                if (!nn)
                    return MLTK_ERR_NOMEM;
                s->class_names = nn;
                if (!(nn[s->n_class_names] = strndup(p, len)))
                    return MLTK_ERR_NOMEM;
                s->n_class_names++;
                p += strcspn(p, ",");
                p += strspn(p, ", ");
            }
            if (s->n_class_names != n)
                return mltk_errf(err, MLTK_ERR_CONFIG, "%s: class_names has %d names for %d "
                                 "classes", mltk_params_where(ms->params), s->n_class_names, n);
        }
    }
    size_t out = (size_t)s->batch_size * (size_t)n * sizeof(float);
    s->eval_host = malloc(out);
    s->eval_labels = malloc((size_t)s->batch_size * (classify ? sizeof(int32_t)
                                                             : (size_t)n * sizeof(float)));
    return s->eval_host && s->eval_labels ? MLTK_OK : MLTK_ERR_NOMEM;
}

/* ---- the run record ------------------------------------------------------------- */

static int write_record(mltk_session_t *s, const char *status, char **err)
{
    if (!s->run_dir)
        return MLTK_OK;
    char *path = mltk_strfmt("%s/run.json", s->run_dir), *tmp = NULL;
    FILE *f = NULL;
    int rc = path ? mltk_atomic_open(&f, &tmp, path, err) : MLTK_ERR_NOMEM;
    if (rc) {
        free(path);
        return rc;
    }
    char host[256] = "", ended[32] = "";
    gethostname(host, sizeof host - 1);
    if (strcmp(status, "running") != 0)
        iso_now(ended, sizeof ended);
    json_t *plugins = json_array();
    for (int i = 0; plugins && i < mltk_registry_count(s->reg); i++) {
        mltk_plugin_info pi;
        if (!mltk_registry_loaded(s->reg, i) || mltk_registry_info(s->reg, i, &pi))
            continue;
        if (json_array_append_new(plugins, json_pack("{s:o, s:o, s:o, s:o}",
                                                     "name", jstr(pi.name),
                                                     "kind", jstr(mltk_kind_name(pi.kind)),
                                                     "version", jstr(pi.version),
                                                     "library", jstr(pi.library)))) {
            json_decref(plugins);
            plugins = NULL;
        }
    }
    char abi[32];
    snprintf(abi, sizeof abi, "%d.%d", MLTK_ABI_MAJOR, MLTK_ABI_MINOR);
    json_t *rec = json_pack(
        "{s:o, s:s, s:o, s:o, s:I, s:o, s:I, s:o, s:o, s:o, s:o, s:I, s:I,"
        " s:{s:{s:I, s:o}, s:{s:I, s:o}}, s:o}",
        "mltk_version", jstr(mltk_version()), "plugin_abi", abi, "status", jstr(status),
        "config", jstr(s->cfg->path), "seed", (json_int_t)s->seed, "host", jstr(host),
        "pid", (json_int_t)getpid(), "backend", jstr(s->be.name),
        "device", jstr(s->be.i->device_name ? s->be.i->device_name(s->be.ctx) : s->be.name),
        "started", jstr(s->started), "ended", *ended ? jstr(ended) : json_null(),
        "epochs_done", (json_int_t)s->epoch_done, "steps", (json_int_t)s->step,
        "data", "train", "samples", (json_int_t)s->train.n,
        "sha256", jstr(s->train.info.checksum),
        "test", "samples", (json_int_t)s->test.n, "sha256", jstr(s->test.info.checksum),
        "plugins", plugins);
    if (!rec) {
        mltk_atomic_close(f, tmp, path, 0, NULL);
        rc = mltk_errf(err, MLTK_ERR_NOMEM, "%s: out of memory", path);
        free(path);
        return rc;
    }
    int bad = dump_record(f, rec);
    json_decref(rec);
    rc = mltk_atomic_close(f, tmp, path, !bad && !ferror(f), err);
    if (bad && !rc)
        rc = mltk_errf(err, MLTK_ERR_IO, "%s: write failed", path);
    free(path);
    return rc;
}

static int write_config_copy(mltk_session_t *s, char **err)
{
    char *path = mltk_strfmt("%s/config.ini", s->run_dir), *tmp = NULL;
    FILE *f = NULL;
    int rc = path ? mltk_atomic_open(&f, &tmp, path, err) : MLTK_ERR_NOMEM;
    if (!rc) {
        fputs(s->cfg->text ? s->cfg->text : "", f);
        rc = mltk_atomic_close(f, tmp, path, !ferror(f), err);
    }
    free(path);
    return rc;
}

/* ---- opening and closing --------------------------------------------------------- */

static const char *const CSV_COLUMNS =
    "epoch,train_loss,val_loss,val_acc,samples_per_s,lr,wall_s,cpu_percent,rss_mb";

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

int mltk_ops_open(mltk_session_t *s, char **err)
{
    const mltk_section *log = sec(s, "log");
    int append = s->opts.resume != NULL;
    iso_now(s->started, sizeof s->started);
    int rc = read_settings(s, err);
    if (!rc && s->run_dir)
        rc = mltk_mkdir_p(s->run_dir, err);
    if (!rc && s->run_dir)
        rc = write_config_copy(s, err);
    if (!rc && s->ck.dir)
        rc = mltk_mkdir_p(s->ck.dir, err);
    if (!rc)
        rc = open_metrics(s, err);
    if (!rc && !s->jsonl && (s->jsonl_own = out_path(s, log, "jsonl", "metrics.jsonl"))) {
        s->jsonl_path = s->jsonl_own;
        rc = open_text(&s->jsonl, s->jsonl_path, append, NULL, log, err);
    }
    if (!rc && (s->csv_path = out_path(s, log, "csv", "metrics.csv")))
        rc = open_text(&s->csv, s->csv_path, append, CSV_COLUMNS, log, err);
    char *tb = rc ? NULL : out_path(s, log, "tensorboard", "tb");
    if (tb) {
        rc = mltk_tb_open(&s->tb, tb, NULL, err);
        free(tb);
        if (!rc && s->cfg->text)
            rc = mltk_tb_text(s->tb, "config", 0, s->cfg->text, err);
    }
    if (!rc)
        rc = write_record(s, "running", err);
    return rc;
}

/* Flush the logs, write the confusion matrix and the record's outcome;
 * `status` is "finished", "stopped_early", "interrupted" or "failed". */
int mltk_ops_close(mltk_session_t *s, const char *status, char **err)
{
    int rc = MLTK_OK;
    if (s->confusion_path && s->metrics && mltk_metrics_rows(s->metrics) > 0)
        rc = mltk_metrics_write_confusion_csv(s->confusion_path, s->metrics,
                                              (const char *const *)s->class_names, err);
    if (s->tb) {
        int r2 = mltk_tb_flush(s->tb, rc ? NULL : err);
        rc = rc ? rc : r2;
    }
    if (s->csv && fflush(s->csv) && !rc)
        rc = mltk_errf(err, MLTK_ERR_IO, "writing %s failed: %s", s->csv_path, strerror(errno));
    if (s->run_dir) {
        int r2 = write_record(s, status, rc ? NULL : err);
        rc = rc ? rc : r2;
    }
    return rc;
}

void mltk_ops_free(mltk_session_t *s)
{
    if (s->csv)
        fclose(s->csv);
    mltk_tb_close(s->tb);
    mltk_metrics_destroy(s->metrics);
    for (int i = 0; i < s->n_class_names; i++)
        free(s->class_names[i]);
    free(s->class_names);
    free(s->mspec);
    free(s->eval_host);
    free(s->eval_labels);
    free(s->confusion_path);
    free(s->csv_path);
    free(s->jsonl_own);
    free(s->run_dir);
    free(s->ck.dir);
    free(s->ck.last);
    free(s->es.best_host);
    free(s->spike_hist);
}

/* ---- resource use ------------------------------------------------------------------ */

/* CPU use of the process since the last call, in percent of one core, and
 * its resident memory in MiB. */
static void resources(mltk_session_t *s, double *cpu_pct, double *rss_mb)
{
    static double last_cpu = -1, last_wall;
    struct rusage ru;
    double cpu = 0, now = mltk_now();
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6
              + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
    *cpu_pct = last_cpu >= 0 && now > last_wall ? 100.0 * (cpu - last_cpu) / (now - last_wall)
                                                : NAN;
    last_cpu = cpu;
    last_wall = now;
    *rss_mb = NAN;
    FILE *f = fopen("/proc/self/statm", "r");
    long long size, rss;
    if (f && fscanf(f, "%lld %lld", &size, &rss) == 2)
        *rss_mb = (double)rss * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
    if (f)
        fclose(f);
    (void)s;
}

/* ---- alerts ---------------------------------------------------------------------------- */

void mltk_ops_alert(mltk_session_t *s, const char *event, const char *message)
{
    unsigned bit = 0;
    for (unsigned i = 0; i < N_EVENTS; i++)
        if (strcmp(event, alert_events[i]) == 0)
            bit = 1u << i;
    if (!s->alert_cmd || !(s->alert_mask & bit))
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        mltk_log(MLTK_LOG_WARN, "alert: cannot start '%s': %s", s->alert_cmd, strerror(errno));
        return;
    }
    if (pid == 0) {
        char num[32];
        setenv("MLTK_EVENT", event, 1);
        setenv("MLTK_MESSAGE", message ? message : "", 1);
        snprintf(num, sizeof num, "%" PRId64, s->epoch_done);
        setenv("MLTK_EPOCH", num, 1);
        snprintf(num, sizeof num, "%" PRIu64, s->step);
        setenv("MLTK_STEP", num, 1);
        setenv("MLTK_RUN_DIR", s->run_dir ? s->run_dir : "", 1);
        setenv("MLTK_CONFIG", s->cfg->path, 1);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execl("/bin/sh", "sh", "-c", s->alert_cmd, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    double t0 = mltk_now();
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            status = 0;
            break;
        }
        if (mltk_now() - t0 > 30.0) {
            mltk_log(MLTK_LOG_WARN, "alert: '%s' still runs after 30 s; not waiting for it",
                     s->alert_cmd);
            return;
        }
        usleep(10000);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        mltk_log(MLTK_LOG_WARN, "alert: '%s' exited with status %d", s->alert_cmd,
                 WEXITSTATUS(status));
}

/* ---- progress ------------------------------------------------------------------------- */

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

/* After each step: `done` samples of the epoch's `total`, the epoch's
 * start time, the last batch's loss.  `final` ends the bar's line. */
void mltk_ops_progress(mltk_session_t *s, int epoch, int64_t done, int64_t total,
                       double t_epoch, double loss, int final)
{
    static double last_draw;
    if (!s->progress)
        return;
    double now = mltk_now();
    if (last_draw < t_epoch)
        last_draw = t_epoch;  /* the first line comes an interval into the epoch */
    double min_gap = s->progress == 1 ? 0.1 : s->progress_interval;
    if (!final && now - last_draw < min_gap)
        return;
    if (s->progress == 2 && final)
        return;  /* the epoch line follows */
    last_draw = now;
    double el = now - t_epoch, rate = el > 0 ? (double)done / el : 0;
    char eta[32];
    fmt_eta(eta, sizeof eta, rate > 0 ? (double)(total - done) / rate : -1);
    if (s->progress == 1) {
        char bar[31];
        int fill = total ? (int)(30 * done / total) : 30;
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
        bar[30] = '\0';
        fprintf(stderr, "\repoch %d/%d [%s] %" PRId64 "/%" PRId64 "  %.0f samples/s  loss "
                "%.4f  ETA %s\033[K", epoch, s->epochs, bar, done, total, rate, loss, eta);
        if (final)
            fputs("\r\033[K", stderr);
    } else {
        fprintf(stderr, "mltk: epoch %d/%d: %" PRId64 "/%" PRId64 " samples, %.0f samples/s, "
                "loss %.4f, ETA %s\n", epoch, s->epochs, done, total, rate, loss, eta);
    }
    fflush(stderr);
}

/* ---- per step: TensorBoard scalars and loss spikes ------------------------------------ */

int mltk_ops_step(mltk_session_t *s, double loss, double lr, double samples_per_s, char **err)
{
    int rc = MLTK_OK;
    if (s->tb && s->tb_scalars_every > 0 && s->step % (uint64_t)s->tb_scalars_every == 0) {
        rc = mltk_tb_scalar(s->tb, "step/loss", (int64_t)s->step, loss, err);
        if (!rc)
            rc = mltk_tb_scalar(s->tb, "step/lr", (int64_t)s->step, lr, err);
        if (!rc && samples_per_s > 0)
            rc = mltk_tb_scalar(s->tb, "step/samples_per_s", (int64_t)s->step, samples_per_s,
                                err);
    }
    if (s->spike_z > 0 && isfinite(loss)) {
        int64_t w = s->spike_window;
        if (!s->spike_hist && !(s->spike_hist = calloc((size_t)w, sizeof(double))))
            return rc;
        int64_t have = s->spike_n < w ? s->spike_n : w;
        if (have >= w / 2 && have >= 10) {
            double mean = 0, var = 0;
            for (int64_t i = 0; i < have; i++)
                mean += s->spike_hist[i];
            mean /= (double)have;
            for (int64_t i = 0; i < have; i++)
                var += (s->spike_hist[i] - mean) * (s->spike_hist[i] - mean);
            double sd = sqrt(var / (double)(have - 1));
            if (sd > 0 && (loss - mean) / sd > s->spike_z) {
                char msg[160];
                snprintf(msg, sizeof msg, "loss spike at step %" PRIu64 ": %.4g is %.1f "
                         "standard deviations above the last %" PRId64 " steps' mean %.4g",
                         s->step, loss, (loss - mean) / sd, have, mean);
                mltk_log(MLTK_LOG_WARN, "%s", msg);
                mltk_ops_alert(s, "spike", msg);
            }
        }
        s->spike_hist[s->spike_n % w] = loss;
        s->spike_n++;
    }
    return rc;
}

/* ---- per epoch: the report -------------------------------------------------------------- */

static int histograms(mltk_session_t *s, char **err)
{
    int n = mltk_model_n_tensors(s->model), rc = MLTK_OK;
    int64_t pn;
    float *grads = mltk_model_grads(s->model, &pn), *params = mltk_model_params(s->model, &pn);
    for (int i = 0; i < n && !rc; i++) {
        mltk_model_named t;
        if (mltk_model_tensor(s->model, i, &t))
            continue;
        int64_t numel = mltk_shape_numel(&t.shape);
        float *h = malloc((size_t)numel * sizeof(float));
        if (!h)
            return MLTK_ERR_NOMEM;
        char tag[256];
        rc = mltk_be_download(&s->be, h, t.data, (size_t)numel * sizeof(float));
        snprintf(tag, sizeof tag, "%s/%s", t.state ? "state" : "weights", t.name);
        if (!rc)
            rc = mltk_tb_histogram(s->tb, tag, (int64_t)s->step, h, numel, err);
        if (!rc && !t.state) {
            rc = mltk_be_download(&s->be, h, grads + (t.data - params),
                                  (size_t)numel * sizeof(float));
            snprintf(tag, sizeof tag, "grads/%s", t.name);
            if (!rc)
                rc = mltk_tb_histogram(s->tb, tag, (int64_t)s->step, h, numel, err);
        }
        free(h);
    }
    return rc;
}

int mltk_ops_histograms_due(const mltk_session_t *s)
{
    return s->tb && s->tb_hist_every > 0 && s->step % (uint64_t)s->tb_hist_every == 0;
}

int mltk_ops_step_histograms(mltk_session_t *s, char **err)
{
    return histograms(s, err);
}

int mltk_ops_epoch(mltk_session_t *s, const mltk_epoch_stats *e, char **err)
{
    FILE *out = s->opts.epoch_out ? s->opts.epoch_out : stdout;
    double cpu, rss;
    mltk_metric_value mv[MLTK_METRICS_MAX_VALUES];
    int n_mv = 0;
    resources(s, &cpu, &rss);
    int rc = s->metrics && mltk_metrics_rows(s->metrics) > 0
                 ? mltk_metrics_values(mv, MLTK_METRICS_MAX_VALUES, &n_mv, s->metrics, s->mspec,
                                       "val", err)
                 : MLTK_OK;
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
    if (s->jsonl) {
        /* one line, "key": value separated by ", " as json.dumps writes it */
        json_t *line = json_pack("{s:i, s:I, s:o, s:o, s:o}", "epoch", e->epoch,
                                 "step", (json_int_t)s->step, "train_loss", jnum(e->train_loss),
                                 "val_loss", jnum(e->val_loss), "val_acc", jnum(e->val_acc));
        for (int i = 0; line && i < n_mv; i++)
            if (strcmp(mv[i].name, "val_acc") != 0)
                json_object_set_new(line, mv[i].name, jnum(mv[i].value));
        const struct { const char *key; double v; } more[] = {
            { "samples_per_s", e->samples_per_s }, { "lr", e->lr }, { "wall_s", e->wall_s },
            { "cpu_percent", cpu }, { "rss_mb", rss },
            { "gpu_util_percent", gpu.util_percent }, { "gpu_mem_mb", gpu.mem_used_mb },
            { "gpu_power_w", gpu.power_w },
        };
        int n_more = isfinite(gpu.util_percent) || isfinite(gpu.mem_used_mb) ? 8 : 5;
        for (int i = 0; line && i < n_more; i++)
            json_object_set_new(line, more[i].key, jnum(more[i].v));
        if (!line)
            return mltk_errf(err, MLTK_ERR_NOMEM, "writing %s failed: out of memory",
                             s->jsonl_path);
        int bad = json_dumpf(line, s->jsonl, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
        json_decref(line);
        fputc('\n', s->jsonl);
        if (bad && !ferror(s->jsonl))
            return mltk_errf(err, MLTK_ERR_NOMEM, "writing %s failed: out of memory",
                             s->jsonl_path);
        if (fflush(s->jsonl) || ferror(s->jsonl))
            return mltk_errf(err, MLTK_ERR_IO, "writing %s failed: %s", s->jsonl_path,
                             strerror(errno));
    }
    if (s->csv) {
        double v[] = { e->train_loss, e->val_loss, e->val_acc, e->samples_per_s, e->lr,
                       e->wall_s, cpu, rss };
        fprintf(s->csv, "%d", e->epoch);
        for (size_t i = 0; i < sizeof v / sizeof *v; i++)
            isfinite(v[i]) ? fprintf(s->csv, ",%.9g", v[i]) : fputs(",", s->csv);
        fputc('\n', s->csv);
        if (fflush(s->csv) || ferror(s->csv))
            return mltk_errf(err, MLTK_ERR_IO, "writing %s failed: %s", s->csv_path,
                             strerror(errno));
    }
    if (s->tb) {
        int64_t st = (int64_t)s->step;
        const struct { const char *tag; double v; } sc[] = {
            { "epoch/train_loss", e->train_loss }, { "epoch/val_loss", e->val_loss },
            { "epoch/val_acc", e->val_acc }, { "epoch/lr", e->lr },
            { "epoch/samples_per_s", e->samples_per_s }, { "resource/cpu_percent", cpu },
            { "resource/rss_mb", rss }, { "resource/gpu_util_percent", gpu.util_percent },
            { "resource/gpu_mem_mb", gpu.mem_used_mb }, { "resource/gpu_power_w", gpu.power_w },
        };
        for (size_t i = 0; i < sizeof sc / sizeof *sc && !rc; i++)
            if (isfinite(sc[i].v))
                rc = mltk_tb_scalar(s->tb, sc[i].tag, st, sc[i].v, err);
        for (int i = 0; i < n_mv && !rc; i++) {
            char tag[96];
            snprintf(tag, sizeof tag, "epoch/%.*s", MLTK_METRIC_NAME_MAX, mv[i].name);
            if (isfinite(mv[i].value) && strcmp(mv[i].name, "val_acc") != 0)
                rc = mltk_tb_scalar(s->tb, tag, st, mv[i].value, err);
        }
        if (!rc && s->tb_hist_every == 0)
            rc = histograms(s, err);
        if (!rc)
            rc = mltk_tb_flush(s->tb, err);
    }
    return rc;
}

/* ---- evaluation metrics on the host ------------------------------------------------------ */

void mltk_ops_metrics_reset(mltk_session_t *s)
{
    if (s->metrics)
        mltk_metrics_reset(s->metrics);
}

/* One evaluated batch: the model's outputs and the targets y (backend
 * memory) into the metrics. */
int mltk_ops_metrics_add(mltk_session_t *s, const float *out, const void *y, int64_t rows,
                         char **err)
{
    if (!s->metrics)
        return MLTK_OK;
    int64_t n = mltk_metrics_n(s->metrics);
    int classify = s->test.info.target == MLTK_TARGET_CLASS;
    int rc = mltk_be_download(&s->be, s->eval_host, out,
                              (size_t)(rows * n) * sizeof(float));
    if (!rc)
        rc = mltk_be_download(&s->be, s->eval_labels, y,
                              (size_t)rows * (classify ? sizeof(int32_t)
                                                       : (size_t)n * sizeof(float)));
    if (rc)
        return mltk_errf(err, rc, "evaluation: cannot read the outputs: %s",
                         mltk_status_str(rc));
    return classify ? mltk_metrics_add_class(s->metrics, s->eval_host, s->eval_labels, rows, err)
                    : mltk_metrics_add_regress(s->metrics, s->eval_host,
                                               (const float *)s->eval_labels, rows, err);
}

/* After the last epoch: the report of mltk_metrics_print on stdout. */
void mltk_ops_metrics_print(mltk_session_t *s)
{
    if (!s->metrics || s->opts.quiet || mltk_metrics_rows(s->metrics) == 0)
        return;
    const mltk_section *ms = sec(s, "metrics");
    if (!ms)
        return;  /* the report is asked for by a [metrics] section */
    FILE *out = s->opts.epoch_out ? s->opts.epoch_out : stdout;
    mltk_metrics_print(out, s->metrics, (const char *const *)s->class_names);
}
