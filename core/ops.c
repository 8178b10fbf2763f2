/* ops.c - the run directory and its record, and the evaluation metrics.
 *
 * What this is: the run_record component (component.h) and what
 * evaluation reports beyond the loss and accuracy.  With [run] dir set,
 * every output that is not named elsewhere goes there:
 *
 *   config.ini     the exact config text
 *   run.json       the run record: mltk version, seed, host, backend and
 *                  device, the plugins loaded (name, kind, version, file),
 *                  the data set checksums, start and end time, outcome
 *   metrics.jsonl  one object per epoch ([log] jsonl, train/logs.c)
 *   metrics.csv    the same as CSV ([log] csv)
 *   tb/            TensorBoard event files ([log] tensorboard)
 *   checkpoints/   ([checkpoint] dir, train/checkpointing.c)
 *   confusion.csv  the last evaluation's confusion matrix
 *
 * The outputs are opened when training starts (so a dry run or a config
 * that fails to build writes nothing) and closed when it ends, whatever
 * the outcome.
 *
 * What this is not: the loop (train.c), the logs, alerts, progress and
 * the policies of checkpoints, NaN handling and early stopping (one
 * component each under train/); the file formats (tbevents.c,
 * safetensors.c, metrics.c).  JSON is built as jansson values and dumped
 * by jansson; nothing here escapes or formats JSON text by hand.
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

#include "train/component.h"
#include "metrics.h"
#include "schema.h"

/* ---- small helpers ------------------------------------------------------------ */

static const mltk_section *sec(const mltk_session_t *s, const char *name)
{
    return mltk_config_section(s->cfg, name);
}

char *mltk_out_path(const mltk_session_t *s, const mltk_params_t *p, const char *key,
                    const char *def)
{
    if (p && mltk_params_has(p, key) && *mltk_params_str(p, key))
        return mltk_strdup(mltk_params_str(p, key));
    if (s->run_dir && def)
        return mltk_strfmt("%s/%s", s->run_dir, def);
    return NULL;
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
        s->confusion_path = mltk_out_path(s, ms ? ms->params : NULL, "confusion_csv",
                                          "confusion.csv");
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
        /* else the data set's own names (folders, CSV labels) */
        const mltk_dataset_info *in = &s->data.train_src.info;
        if (!s->n_class_names && in->class_names && in->n_classes == n) {
            s->class_names = calloc((size_t)n, sizeof(char *));
            if (!s->class_names)
                return MLTK_ERR_NOMEM;
            for (int c = 0; c < n; c++) {
                s->class_names[c] = mltk_strdup(in->class_names[c] ? in->class_names[c] : "");
                if (!s->class_names[c])
                    return MLTK_ERR_NOMEM;
                s->n_class_names = c + 1;
            }
        }
    }
    size_t out = (size_t)s->batch_size * (size_t)n * sizeof(float);
    s->eval_host = malloc(out);
    s->eval_labels = malloc((size_t)s->batch_size * (classify ? sizeof(int32_t)
                                                             : (size_t)n * sizeof(float)));
    return s->eval_host && s->eval_labels ? MLTK_OK : MLTK_ERR_NOMEM;
}

/* run.json's "data": per split its samples and class counts, the class
 * names, the validation split and the final test figures, the loader. */
static void split_record(const mltk_split *sp, json_t *o)
{
    if (!o || !sp->class_count)
        return;
    int64_t nc = sp->info.n_classes > 0 ? sp->info.n_classes : sp->label_max + 1;
    json_t *a = json_array();
    for (int64_t c = 0; a && c < nc; c++)
        json_array_append_new(a, json_integer((json_int_t)sp->class_count[c]));
    if (a)
        json_object_set_new(o, "class_counts", a);
}

static void data_record(const mltk_session_t *s, json_t *data)
{
    if (!data)
        return;
    split_record(&s->train, json_object_get(data, "train"));
    split_record(&s->test, json_object_get(data, "test"));
    if (s->val.n) {
        json_t *v = json_pack("{s:I}", "samples", (json_int_t)s->val.n);
        split_record(&s->val, v);
        if (v)
            json_object_set_new(data, "validation", v);
    }
    const mltk_dataset_info *in = &s->data.train_src.info;
    if (in->target == MLTK_TARGET_CLASS && in->class_names && in->n_classes > 0) {
        json_t *a = json_array();
        for (int64_t c = 0; a && c < in->n_classes; c++)
            json_array_append_new(a, json_string(in->class_names[c] ? in->class_names[c] : ""));
        if (a)
            json_object_set_new(data, "class_names", a);
    }
    json_object_set_new(data, "mode", json_string(s->train.resident ? "resident" : "stream"));
    json_object_set_new(data, "workers", json_integer(s->data.workers));
    if (s->tested) {
        json_t *t = json_object_get(data, "test");
        if (t) {
            json_object_set_new(t, "loss", json_real(s->test_loss));
            if (s->test.info.target == MLTK_TARGET_CLASS)
                json_object_set_new(t, "acc", json_real(s->test_acc));
        }
    }
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
    if (rec)
        data_record(s, json_object_get(rec, "data"));
    /* the times a resumed run was started again ("started" is the first) */
    json_t *resumed = rec ? json_array() : NULL;
    for (const char *p = s->resumed; resumed && p && *p;) {
        size_t len = strcspn(p, " ");
        char when[32];
        snprintf(when, sizeof when, "%.*s", (int)(len < 31 ? len : 31), p);
        json_array_append_new(resumed, jstr(when));
        p += len + (p[len] == ' ');
    }
    if (rec && (!resumed || json_object_set_new(rec, "resumed", resumed))) {
        json_decref(rec);
        rec = NULL;
    }
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

/* ---- the component ------------------------------------------------------------------- */

static int rr_open(void **self, mltk_session_t *s, const mltk_section *section,
                   const mltk_params_t *p, char **err)
{
    (void)err;
    *self = s;
    if (section && mltk_params_has(p, "dir") && *mltk_params_str(p, "dir")
        && !(s->run_dir = mltk_strdup(mltk_params_str(p, "dir"))))
        return MLTK_ERR_NOMEM;
    return MLTK_OK;
}

static int rr_train_begin(void *self, mltk_session_t *s, char **err)
{
    (void)self;
    if (!s->started[0])  /* train.c sets it, or a resume keeps the first start */
        iso_now(s->started, sizeof s->started);
    int rc = s->run_dir ? mltk_mkdir_p(s->run_dir, err) : MLTK_OK;
    if (!rc && s->run_dir)
        rc = write_config_copy(s, err);
    if (!rc)
        rc = open_metrics(s, err);
    if (!rc)
        rc = write_record(s, "running", err);
    return rc;
}

/* the confusion matrix and the record's outcome */
static int rr_train_end(void *self, mltk_session_t *s, const char *status, char **err)
{
    int rc = MLTK_OK;
    (void)self;
    if (s->confusion_path && s->metrics && mltk_metrics_rows(s->metrics) > 0)
        rc = mltk_metrics_write_confusion_csv(s->confusion_path, s->metrics,
                                              (const char *const *)s->class_names, err);
    if (s->run_dir) {
        int r2 = write_record(s, status, rc ? NULL : err);
        rc = rc ? rc : r2;
    }
    return rc;
}

const mltk_component_i mltk_component_run_record = {
    .name = "run",
    .section = "run",
    .schema = mltk_schema_run,
    .open = rr_open,
    .train_begin = rr_train_begin,
    .train_end = rr_train_end,
};

void mltk_ops_free(mltk_session_t *s)
{
    mltk_metrics_destroy(s->metrics);
    for (int i = 0; i < s->n_class_names; i++)
        free(s->class_names[i]);
    free(s->class_names);
    free(s->mspec);
    free(s->eval_host);
    free(s->eval_labels);
    free(s->confusion_path);
    free(s->run_dir);
}

/* ---- the epoch's metrics ---------------------------------------------------------------- */

int mltk_ops_metric_values(mltk_session_t *s, mltk_metric_value *mv, int cap, int *n,
                           char **err)
{
    *n = 0;
    if (!s->metrics || mltk_metrics_rows(s->metrics) == 0)
        return MLTK_OK;
    return mltk_metrics_values(mv, cap, n, s->metrics, s->mspec, "val", err);
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
