/* check_ops.c - the operations around the training loop, through the session.
 *
 * What this is: end-to-end checks of what keeps a long run safe
 * (core/train.c, core/checkpoint.c, core/ops.c): a run stopped by
 * --max-steps in the middle of an epoch or at its end and resumed gives
 * bit-identical parameters, running statistics and epoch metrics; resumes
 * from a changed config or a damaged file are refused with messages that
 * say why; [train] on_nan stops, skips or rolls back (driven by the test
 * layer tests/plugins/nanbomb); early stopping stops at the right epoch
 * and restores the best weights; init_from loads by name, strictly or
 * not; checkpoints rotate; and the run directory holds a valid record,
 * the config and one log line per epoch.  Small models on 512 training
 * samples keep it fast.  Skips (77) when Debian's Fashion-MNIST is absent.
 * What this is not: a test of the file formats themselves (check_safetensors,
 * check_tbevents, check_metrics) or of the command line
 * (tests/test_ops_cli.sh).
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mltk/mltk.h>
#include <mltk/plugin.h>
#include "session.h"
#include "safetensors.h"
#include "train/component.h"
#include "testutil.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

/* where main() wrote the nanbomb descriptor */
static char plugin_dir[512];

/* ---- strings that live until the end of the test ---------------------------- */

/* The suites run under LeakSanitizer: every string a test makes with F(),
 * W(), R() or the helpers below is kept here and freed by the fixture's
 * teardown, after the test. */
static char **kept;
static int    n_kept, cap_kept;

static char *keep(char *p)
{
    EXPECT(p != NULL, "out of memory");
    if (n_kept == cap_kept) {
        cap_kept = cap_kept ? 2 * cap_kept : 64;
        kept = realloc(kept, (size_t)cap_kept * sizeof(*kept));
        EXPECT(kept != NULL, "out of memory");
    }
    kept[n_kept++] = p;
    return p;
}

static void free_kept(void)
{
    for (int i = 0; i < n_kept; i++)
        free(kept[i]);
    free(kept);
    kept = NULL;
    n_kept = cap_kept = 0;
}

#define F(...)       keep(tu_fmt(__VA_ARGS__))
#define W(dir, n, t) keep(tu_write((dir), (n), (t)))
/* a file's text, NULL when it cannot be read */
static char *R(const char *path)
{
    char *t = tu_read(path);
    return t ? keep(t) : NULL;
}

/* ---- configs ----------------------------------------------------------------- */

/* 512 training samples in batches of 64: 8 steps per epoch */
#define STEPS_PER_EPOCH 8

static const char MLP[] =
    "[layer.flat]\ntype = flatten\n"
    "[layer.fc1]\ntype = dense\nunits = 32\nactivation = relu\n"
    "[layer.out]\ntype = dense\nunits = 10\n";

/* layers with state a resume must bring back: batchnorm's running
 * statistics and dropout's counter-based mask */
static const char CNN[] =
    "[layer.conv]\ntype = conv2d\nfilters = 4\nkernel = 3\n"
    "[layer.bn]\ntype = batchnorm\n"
    "[layer.act]\ntype = relu\n"
    "[layer.flat]\ntype = flatten\n"
    "[layer.drop]\ntype = dropout\nrate = 0.2\n"
    "[layer.out]\ntype = dense\nunits = 10\n";

static const char ADAM[] = "type = adam\nlr = 0.002\n";

/* A config text: [run] with `dir`, [train] with batch_size 64 and the
 * lines `train`, the 512/256-sample idx set, `layers`, cross-entropy, the
 * [optimizer] lines `opt` and the sections `more`.  Kept (see keep()). */
static char *cfg_text(const char *dir, const char *train, const char *layers,
                      const char *opt, const char *more)
{
    return F("[run]\nseed = 11\nbackend = cpu\nthreads = 2\ndir = %s\n"
             "[train]\nbatch_size = 64\n%s"
             "[data]\ntype = idx\ntrain_limit = 512\ntest_limit = 256\n"
             "%s"
             "[loss]\ntype = cross_entropy\n"
             "[optimizer]\n%s"
             "%s",
             dir, train, layers, opt, more);
}

/* the MLP with a nanbomb layer after fc1 */
static char *bomb_layers(int at_step, int once)
{
    return F("[layer.flat]\ntype = flatten\n"
             "[layer.fc1]\ntype = dense\nunits = 32\nactivation = relu\n"
             "[layer.bomb]\ntype = nanbomb\nat_step = %d\nonce = %s\n"
             "[layer.out]\ntype = dense\nunits = 10\n",
             at_step, once ? "true" : "false");
}

/* ---- one session ------------------------------------------------------------- */

typedef struct run {
    mltk_registry_t *reg;
    mltk_config_t   *cfg;
    mltk_session_t  *s;
    mltk_epoch_stats st;
    char            *err;
} run;

/* Build the session of the config file `path` (the registry also searches
 * the test's plugin directory); returns the status, the message in r->err. */
static int run_open(run *r, const char *path, const mltk_session_opts *opts)
{
    const char *dirs[] = { plugin_dir, NULL };
    mltk_session_opts quiet = { .quiet = 1 };
    memset(r, 0, sizeof(*r));
    int rc = mltk_registry_create(&r->reg, dirs, 1, &r->err);
    if (!rc)
        rc = mltk_config_load(&r->cfg, r->reg, path, &r->err);
    if (!rc)
        rc = mltk_session_create(&r->s, r->cfg, r->reg, opts ? opts : &quiet, &r->err);
    return rc;
}

static void run_close(run *r)
{
    mltk_session_destroy(r->s);
    mltk_config_destroy(r->cfg);
    mltk_registry_destroy(r->reg);
    free(r->err);
    memset(r, 0, sizeof(*r));
}

/* Open and train; the session stays open for inspection. */
static int run_train(run *r, const char *path, const mltk_session_opts *opts)
{
    int rc = run_open(r, path, opts);
    if (!rc)
        rc = mltk_session_train(r->s, &r->st, &r->err);
    return rc;
}

/* Train and insist that it works. */
static void run_ok(run *r, const char *path, const mltk_session_opts *opts)
{
    int rc = run_train(r, path, opts);
    ck_assert_msg(rc == MLTK_OK, "%s: %s: %s", path, mltk_status_str(rc),
                  r->err ? r->err : "(no message)");
}

/* ---- the model's tensors, copied to the host ------------------------------------ */

typedef struct snap {
    int      n;
    char   **name;
    int64_t *numel;
    float  **v;
} snap;

/* Every parameter and state tensor of the session's model. */
static void snap_take(snap *sn, mltk_session_t *s)
{
    int n = mltk_model_n_tensors(s->model);
    sn->n = n;
    sn->name = calloc((size_t)n, sizeof(*sn->name));
    sn->numel = calloc((size_t)n, sizeof(*sn->numel));
    sn->v = calloc((size_t)n, sizeof(*sn->v));
    ck_assert(sn->name && sn->numel && sn->v);
    for (int i = 0; i < n; i++) {
        mltk_model_named t;
        ck_assert_int_eq(mltk_model_tensor(s->model, i, &t), MLTK_OK);
        sn->name[i] = tu_fmt("%s", t.name);
        sn->numel[i] = mltk_shape_numel(&t.shape);
        sn->v[i] = malloc((size_t)sn->numel[i] * sizeof(float) + 1);
        ck_assert_ptr_nonnull(sn->v[i]);
        ck_assert_int_eq(mltk_be_download(&s->be, sn->v[i], t.data,
                                          (size_t)sn->numel[i] * sizeof(float)), MLTK_OK);
    }
}

static void snap_free(snap *sn)
{
    for (int i = 0; i < sn->n; i++) {
        free(sn->name[i]);
        free(sn->v[i]);
    }
    free(sn->name);
    free(sn->numel);
    free(sn->v);
    memset(sn, 0, sizeof(*sn));
}

/* the values of tensor `name`, or NULL */
static const float *snap_find(const snap *sn, const char *name, int64_t *numel)
{
    for (int i = 0; i < sn->n; i++)
        if (strcmp(sn->name[i], name) == 0) {
            *numel = sn->numel[i];
            return sn->v[i];
        }
    return NULL;
}

/* tensor `name` holds the same bits in a and b */
static void expect_tensor_equal(const snap *a, const snap *b, const char *name,
                                const char *what)
{
    int64_t na = 0, nb = 0;
    const float *va = snap_find(a, name, &na), *vb = snap_find(b, name, &nb);
    ck_assert_msg(va && vb, "%s: tensor %s missing", what, name);
    ck_assert_msg(na == nb, "%s: %s has %lld values, then %lld", what, name,
                  (long long)na, (long long)nb);
    for (int64_t k = 0; k < na; k++)
        EXPECT(memcmp(&va[k], &vb[k], sizeof(float)) == 0,
               "%s: %s[%lld] is %.9g, expected %.9g", what, name, (long long)k,
               (double)vb[k], (double)va[k]);
}

/* the same tensors, in the same order, bit for bit */
static void expect_snap_equal(const snap *a, const snap *b, const char *what)
{
    ck_assert_msg(a->n == b->n, "%s: %d tensors, then %d", what, a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        ck_assert_str_eq(a->name[i], b->name[i]);
        expect_tensor_equal(a, b, a->name[i], what);
    }
}

static void expect_snap_finite(const snap *sn)
{
    for (int i = 0; i < sn->n; i++)
        for (int64_t k = 0; k < sn->numel[i]; k++)
            EXPECT(isfinite(sn->v[i][k]), "%s[%lld] = %g is not finite", sn->name[i],
                   (long long)k, (double)sn->v[i][k]);
}

/* ---- files of a run ---------------------------------------------------------------- */

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static char *ckpt_name(const char *dir, int step)
{
    return F("%s/checkpoints/ckpt-%012d.safetensors", dir, step);
}

/* number of lines of a text file (0 when it is missing) */
static int count_lines(const char *path)
{
    char *t = tu_read(path);
    int n = 0;
    for (const char *p = t; p && *p; p++)
        n += *p == '\n';
    free(t);
    return n;
}

/* line `i` (0-based) of a text (kept), or NULL */
static char *line_of(const char *text, int i)
{
    const char *p = text;
    for (; p && i > 0; i--) {
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    if (!p || !*p)
        return NULL;
    size_t len = strcspn(p, "\n");
    return F("%.*s", (int)len, p);
}

/* the number after "key": in a JSON text; NAN when the key is missing or
 * its value is not a number */
static double json_number(const char *text, const char *key)
{
    char *pat = tu_fmt("\"%s\": ", key);
    const char *p = strstr(text, pat);
    double v = NAN;
    if (p) {
        char *end;
        v = strtod(p + strlen(pat), &end);
        if (end == p + strlen(pat))
            v = NAN;
    }
    free(pat);
    return v;
}

/* the metadata value `key` of a safetensors file (kept) */
static char *st_meta(const char *path, const char *key)
{
    mltk_st_file *f = NULL;
    char *err = NULL;
    int rc = mltk_st_open(&f, path, &err);
    ck_assert_msg(rc == MLTK_OK, "%s: %s", path, err ? err : "?");
    const char *v = mltk_st_meta(f, key);
    ck_assert_msg(v != NULL, "%s: no metadata '%s'", path, key);
    char *out = F("%s", v);
    mltk_st_close(f);
    return out;
}

static void copy_bytes(const char *from, const char *to, long n)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    ck_assert(in && out);
    for (long i = 0; i < n; i++) {
        int c = fgetc(in);
        ck_assert_int_ne(c, EOF);
        fputc(c, out);
    }
    fclose(in);
    ck_assert_int_eq(fclose(out), 0);
}

static long file_size(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return (long)st.st_size;
}

/* ---- a JSON validator (RFC 8259 syntax; nothing is kept) ----------------------- */

static const char *js_value(const char *p, int depth);

static const char *js_ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
        p++;
    return p;
}

static const char *js_string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    for (; *p != '"'; p++) {
        if ((unsigned char)*p < 0x20)
            return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
                        return NULL;
                p += 4;
            } else if (!*p || !strchr("\"\\/bfnrt", *p)) {
                return NULL;
            }
        }
    }
    return p + 1;
}

static const char *js_number(const char *p)
{
    const char *s = p;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    if (*p == '.') {
        if (!(*++p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return p > s ? p : NULL;
}

static const char *js_list(const char *p, char close, int object, int depth)
{
    p = js_ws(p + 1);
    if (*p == close)
        return p + 1;
    for (;;) {
        if (object) {
            if (!(p = js_string(p)))
                return NULL;
            p = js_ws(p);
            if (*p++ != ':')
                return NULL;
        }
        if (!(p = js_value(p, depth + 1)))
            return NULL;
        if (*p == close)
            return p + 1;
        if (*p++ != ',')
            return NULL;
        p = js_ws(p);
    }
}

/* past one value and the white space after it, or NULL */
static const char *js_value(const char *p, int depth)
{
    if (depth > 64)
        return NULL;
    p = js_ws(p);
    if (*p == '{')
        p = js_list(p, '}', 1, depth);
    else if (*p == '[')
        p = js_list(p, ']', 0, depth);
    else if (*p == '"')
        p = js_string(p);
    else if (strncmp(p, "true", 4) == 0)
        p += 4;
    else if (strncmp(p, "false", 5) == 0)
        p += 5;
    else if (strncmp(p, "null", 4) == 0)
        p += 4;
    else
        p = js_number(p);
    return p ? js_ws(p) : NULL;
}

/* the whole text is one JSON object */
static int json_valid_object(const char *text)
{
    const char *p = js_ws(text);
    if (*p != '{')
        return 0;
    p = js_value(p, 0);
    return p && *p == '\0';
}

/* ---- 1. exact resume ----------------------------------------------------------------- */

/* epoch lines of two metrics.jsonl files agree on every training number */
static void expect_same_epochs(const char *jsonl_a, const char *jsonl_b, int epochs)
{
    char *a = R(jsonl_a), *b = R(jsonl_b);
    ck_assert(a && b);
    ck_assert_int_eq(count_lines(jsonl_a), epochs);
    ck_assert_int_eq(count_lines(jsonl_b), epochs);
    static const char *const keys[] = { "epoch", "step", "train_loss", "val_loss", "val_acc",
                                        "lr" };
    for (int i = 0; i < epochs; i++) {
        char *la = line_of(a, i), *lb = line_of(b, i);
        ck_assert(la && lb);
        ck_assert_msg(json_valid_object(la), "not a JSON object: %s", la);
        ck_assert_msg(json_valid_object(lb), "not a JSON object: %s", lb);
        ck_assert(json_number(la, "epoch") == i + 1);
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
            double va = json_number(la, keys[k]), vb = json_number(lb, keys[k]);
            ck_assert_msg(isfinite(va) && va == vb, "epoch %d: %s %.17g uninterrupted, "
                          "%.17g resumed", i + 1, keys[k], va, vb);
        }
    }
}

START_TEST(resume_is_exact)
{
    char *d = keep(tu_tmpdir());
    const char *train = "epochs = 3\n";
    const char *opt = "type = adamw\nlr = 0.003\n";
    const char *more = "[schedule]\ntype = reduce_on_plateau\nmonitor = train_loss\n"
                       "mode = max\npatience = 0\nfactor = 0.5\n"
                       "[checkpoint]\nevery_epochs = 1\nkeep_last = 5\n";
    char *ta = cfg_text(F("%s/A", d), train, CNN, opt, more);
    char *tb = cfg_text(F("%s/B", d), train, CNN, opt, more);
    char *tc = cfg_text(F("%s/C", d), train, CNN, opt, more);
    char *pa = W(d, "a.ini", ta), *pb = W(d, "b.ini", tb);
    char *pc = W(d, "c.ini", tc);
    run r;
    snap sa, sb, sc;

    /* A: uninterrupted */
    run_ok(&r, pa, NULL);
    mltk_epoch_stats ea = r.st;
    snap_take(&sa, r.s);
    ck_assert_int_eq(ea.epoch, 3);
    ck_assert_int_eq((int)r.s->step, 3 * STEPS_PER_EPOCH);
    /* the schedule matters: epoch 3 ran at half the rate of epoch 2 */
    ck_assert_double_eq_tol(ea.lr, 0.0015, 1e-12);
    run_close(&r);
    ck_assert_ptr_nonnull(snap_find(&sa, "bn.running_mean", &(int64_t){ 0 }));
    ck_assert_ptr_nonnull(snap_find(&sa, "bn.running_var", &(int64_t){ 0 }));

    /* B: stopped by max_steps at step 11, batch 3 of epoch 2 */
    mltk_session_opts o = { .quiet = 1, .max_steps = 11 };
    int rc = run_train(&r, pb, &o);
    ck_assert_msg(rc == MLTK_ERR_INTERRUPTED, "max_steps: %s (%s)", mltk_status_str(rc),
                  r.err ? r.err : "");
    ck_assert_int_eq(mltk_session_signal(r.s), 0);
    ck_assert_int_eq((int)r.s->step, 11);
    run_close(&r);
    char *ck11 = ckpt_name(F("%s/B", d), 11);
    ck_assert_msg(exists(ck11), "no checkpoint %s", ck11);
    char *meta = st_meta(ck11, "batch");
    ck_assert_str_eq(meta, "3");
    meta = st_meta(ck11, "epoch");
    ck_assert_str_eq(meta, "1");
    char *rec = R(F("%s/B/run.json", d));
    TU_ASSERT_CONTAINS(rec, "\"status\": \"interrupted\"");

    /* B resumed from the file: every tensor and epoch number as in A */
    o = (mltk_session_opts){ .quiet = 1, .resume = ck11 };
    run_ok(&r, pb, &o);
    ck_assert_int_eq((int)r.s->step, 3 * STEPS_PER_EPOCH);
    snap_take(&sb, r.s);
    ck_assert(r.st.epoch == 3 && r.st.train_loss == ea.train_loss
              && r.st.val_loss == ea.val_loss && r.st.val_acc == ea.val_acc
              && r.st.lr == ea.lr);
    run_close(&r);
    expect_snap_equal(&sa, &sb, "resumed mid-epoch");
    expect_same_epochs(F("%s/A/metrics.jsonl", d), F("%s/B/metrics.jsonl", d), 3);

    /* C: stopped at the end of epoch 1, resumed with "auto" */
    o = (mltk_session_opts){ .quiet = 1, .max_steps = STEPS_PER_EPOCH };
    rc = run_train(&r, pc, &o);
    ck_assert_int_eq(rc, MLTK_ERR_INTERRUPTED);
    ck_assert_int_eq(r.st.epoch, 1);
    run_close(&r);
    char *ck8 = ckpt_name(F("%s/C", d), STEPS_PER_EPOCH);
    ck_assert_msg(exists(ck8), "no checkpoint %s", ck8);
    meta = st_meta(ck8, "batch");
    ck_assert_str_eq(meta, "0");
    o = (mltk_session_opts){ .quiet = 1, .resume = "auto" };
    run_ok(&r, pc, &o);
    snap_take(&sc, r.s);
    ck_assert(r.st.epoch == 3 && r.st.val_loss == ea.val_loss && r.st.val_acc == ea.val_acc);
    run_close(&r);
    expect_snap_equal(&sa, &sc, "resumed at an epoch's end");
    expect_same_epochs(F("%s/A/metrics.jsonl", d), F("%s/C/metrics.jsonl", d), 3);

    snap_free(&sa);
    snap_free(&sb);
    snap_free(&sc);
    tu_rmtree(d);
}
END_TEST

/* ---- 2. a changed config is refused -------------------------------------------------- */

START_TEST(resume_refuses_changed_config)
{
    char *d = keep(tu_tmpdir());
    const char *more = "[checkpoint]\nevery_steps = 4\n";
    char *p = W(d, "a.ini", cfg_text(d, "epochs = 1\n", MLP, ADAM, more));
    run r;
    mltk_session_opts o = { .quiet = 1, .max_steps = 4 };
    ck_assert_int_eq(run_train(&r, p, &o), MLTK_ERR_INTERRUPTED);
    run_close(&r);
    char *ck = ckpt_name(d, 4);
    ck_assert(exists(ck));

    /* fc1 with 48 units: fc1's tensors and out.weight differ */
    char *wide = F("%s", MLP);
    char *u = strstr(wide, "units = 32");
    memcpy(u, "units = 48", 10);
    p = W(d, "wide.ini", cfg_text(d, "epochs = 1\n", wide, ADAM, more));
    o = (mltk_session_opts){ .quiet = 1, .resume = "auto" };
    int rc = run_train(&r, p, &o);
    ck_assert_int_eq(rc, MLTK_ERR_CONFIG);
    TU_ASSERT_CONTAINS(r.err, ck);
    TU_ASSERT_CONTAINS(r.err, "fc1.weight has shape (48, 784) in the model but (32, 784) "
                              "in the file");
    TU_ASSERT_CONTAINS(r.err, "fc1.bias has shape (48,) in the model but (32,) in the file");
    TU_ASSERT_CONTAINS(r.err, "out.weight has shape (10, 48) in the model but (10, 32) "
                              "in the file");
    ck_assert_ptr_null(strstr(r.err, "out.bias"));
    run_close(&r);

    /* another optimizer: named, both of them, with its state */
    p = W(d, "sgd.ini", cfg_text(d, "epochs = 1\n", MLP,
                                 "type = sgd\nlr = 0.01\nmomentum = 0.9\n", more));
    rc = run_train(&r, p, &o);
    ck_assert_int_eq(rc, MLTK_ERR_CONFIG);
    TU_ASSERT_CONTAINS(r.err, "optimizer: 'adam' in the checkpoint, 'sgd' in the config");
    TU_ASSERT_CONTAINS(r.err, "optimizer state: 2 slot(s) in the checkpoint, 1 now");
    run_close(&r);

    /* another batch size */
    p = W(d, "bs.ini", cfg_text(d, "epochs = 1\n", MLP, ADAM, more));
    char *text = R(p);
    char *bs = strstr(text, "batch_size = 64");
    memcpy(bs, "batch_size = 32", 15);
    p = W(d, "bs.ini", text);
    rc = run_train(&r, p, &o);
    ck_assert_int_eq(rc, MLTK_ERR_CONFIG);
    TU_ASSERT_CONTAINS(r.err, "[train] batch_size: 64 in the checkpoint, 32 now");
    run_close(&r);
    tu_rmtree(d);
}
END_TEST

/* ---- 3. damaged files are refused ---------------------------------------------------- */

/* --resume of `bad` with config `cfg` fails with `status`, naming the file
 * (and `needle`), before any step */
static void expect_resume_fails(const char *cfg, const char *bad, int status,
                                const char *needle)
{
    run r;
    mltk_session_opts o = { .quiet = 1, .resume = bad };
    int rc = run_train(&r, cfg, &o);
    ck_assert_msg(rc == status, "%s: %s, expected %s (%s)", bad, mltk_status_str(rc),
                  mltk_status_str(status), r.err ? r.err : "no message");
    TU_ASSERT_CONTAINS(r.err, bad);
    if (needle)
        TU_ASSERT_CONTAINS(r.err, needle);
    ck_assert_ptr_nonnull(r.s);
    ck_assert_int_eq((int)r.s->step, 0);
    run_close(&r);
}

/* The same refusal through the restore that --resume calls, on a session
 * that is already open (building one per file would load the data each
 * time); the session's position is left alone. */
static void expect_restore_fails(run *r, const char *bad)
{
    char *err = NULL;
    int rc = mltk_ckpt_restore(r->s, bad, &err);
    ck_assert_msg(rc == MLTK_ERR_DATA, "%s: %s (%s)", bad, mltk_status_str(rc),
                  err ? err : "no message");
    TU_ASSERT_CONTAINS(err, bad);
    free(err);
    ck_assert(r->s->step == 0 && r->s->epoch_done == 0 && r->s->batch_done == 0);
}

START_TEST(damaged_checkpoints_are_refused)
{
    char *d = keep(tu_tmpdir());
    char *wpath = F("%s/final.safetensors", d);
    char *p = W(d, "a.ini", cfg_text(d, "epochs = 1\n", MLP, ADAM,
                                     F("[checkpoint]\nevery_steps = 3\n"
                                       "[model]\nsave = %s\n", wpath)));
    run r;
    run_ok(&r, p, NULL);
    run_close(&r);
    char *good = ckpt_name(d, 6);
    ck_assert(exists(good));
    long size = file_size(good);
    ck_assert_int_gt(size, 1000);
    char *bytes = malloc((size_t)size);
    FILE *f = fopen(good, "rb");
    ck_assert(bytes && f && fread(bytes, 1, (size_t)size, f) == (size_t)size);
    fclose(f);
    ck_assert_int_eq(bytes[8], '{');
    uint64_t hlen = 0;
    memcpy(&hlen, bytes, 8);
    ck_assert(hlen > 0 && hlen < (uint64_t)size);

    /* truncated: nothing, inside the length, right after it, inside the
     * header, at its end, inside the data, one byte short */
    const long cuts[] = { 0, 5, 8, 9, 200, 8 + (long)hlen, size / 2, size - 1 };
    char *cut[sizeof cuts / sizeof *cuts];
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        cut[i] = F("%s/cut-%ld.safetensors", d, cuts[i]);
        copy_bytes(good, cut[i], cuts[i]);
    }
    /* one changed byte: the header's opening brace, the length's top byte,
     * and a dtype that does not exist ("f32") */
    char *h = F("%.*s", (int)hlen, bytes + 8);
    char *dt = strstr(h, "\"F32\"");
    ck_assert_ptr_nonnull(dt);
    const long flips[] = { 8, 7, 8 + (long)(dt - h) + 1 };
    char *flip[sizeof flips / sizeof *flips];
    for (size_t i = 0; i < sizeof flips / sizeof *flips; i++) {
        flip[i] = F("%s/flip-%zu.safetensors", d, i);
        bytes[flips[i]] ^= 0x20;
        f = fopen(flip[i], "wb");
        ck_assert(f && fwrite(bytes, 1, (size_t)size, f) == (size_t)size);
        ck_assert_int_eq(fclose(f), 0);
        bytes[flips[i]] ^= 0x20;
    }
    free(bytes);

    /* through --resume, one of each */
    expect_resume_fails(p, cut[6], MLTK_ERR_DATA, NULL);
    expect_resume_fails(p, flip[0], MLTK_ERR_DATA, NULL);
    /* a weights file is not a checkpoint */
    ck_assert(exists(wpath));
    expect_resume_fails(p, wpath, MLTK_ERR_DATA, "not a training checkpoint (format "
                        "'mltk.weights')");
    /* a file that is not there */
    expect_resume_fails(p, F("%s/none.safetensors", d), MLTK_ERR_DATA, NULL);

    /* and all of them through the restore */
    ck_assert_int_eq(run_open(&r, p, NULL), MLTK_OK);
    for (size_t i = 0; i < sizeof cut / sizeof *cut; i++)
        expect_restore_fails(&r, cut[i]);
    for (size_t i = 0; i < sizeof flip / sizeof *flip; i++)
        expect_restore_fails(&r, flip[i]);
    /* the good one still restores */
    char *err = NULL;
    ck_assert_int_eq(mltk_ckpt_restore(r.s, good, &err), MLTK_OK);
    ck_assert_int_eq((int)r.s->step, 6);
    run_close(&r);
    tu_rmtree(d);
}
END_TEST

/* ---- 4. non-finite steps ------------------------------------------------------------- */

START_TEST(nan_stop_names_the_layer)
{
    char *d = keep(tu_tmpdir());
    char *p = W(d, "a.ini", cfg_text(d, "epochs = 1\non_nan = stop\n",
                                     bomb_layers(5, 0), ADAM, ""));
    run r;
    int rc = run_train(&r, p, NULL);
    ck_assert_int_eq(rc, MLTK_ERR_NUMERIC);
    TU_ASSERT_CONTAINS(r.err, "non-finite loss at step 5 (epoch 1, batch 6)");
    TU_ASSERT_CONTAINS(r.err, "the output of layer 'bomb' (nanbomb)");
    /* steps 0..4 were taken, not the sixth */
    ck_assert_int_eq((int)r.s->step, 5);
    run_close(&r);
    char *rec = R(F("%s/run.json", d));
    ck_assert_msg(json_valid_object(rec), "run.json is not JSON:\n%s", rec);
    TU_ASSERT_CONTAINS(rec, "\"status\": \"failed\"");
    TU_ASSERT_CONTAINS(rec, "\"name\": \"nanbomb\", \"kind\": \"layer\"");
    tu_rmtree(d);
}
END_TEST

START_TEST(nan_skip_step_drops_the_update)
{
    char *d = keep(tu_tmpdir());
    run r;
    snap five, six;

    /* the weights after steps 0..4 ... */
    char *p = W(d, "a.ini", cfg_text(F("%s/a", d), "epochs = 1\n",
                                     bomb_layers(1000, 1), ADAM, ""));
    mltk_session_opts o = { .quiet = 1, .max_steps = 5 };
    ck_assert_int_eq(run_train(&r, p, &o), MLTK_ERR_INTERRUPTED);
    snap_take(&five, r.s);
    run_close(&r);
    /* ... are those after steps 0..5 when step 5 is skipped */
    p = W(d, "b.ini", cfg_text(F("%s/b", d), "epochs = 1\non_nan = skip_step\n",
                               bomb_layers(5, 1), ADAM, ""));
    o.max_steps = 6;
    ck_assert_int_eq(run_train(&r, p, &o), MLTK_ERR_INTERRUPTED);
    ck_assert_int_eq((int)mltk_nan_policy_skips(r.s), 1);
    ck_assert_int_eq((int)r.s->step, 6);
    snap_take(&six, r.s);
    run_close(&r);
    expect_snap_equal(&five, &six, "step 5 skipped");
    snap_free(&five);
    snap_free(&six);

    /* the whole run completes with one skip and finite numbers */
    p = W(d, "c.ini", cfg_text(F("%s/c", d), "epochs = 2\non_nan = skip_step\n",
                               bomb_layers(5, 1), ADAM, ""));
    run_ok(&r, p, NULL);
    ck_assert_int_eq((int)mltk_nan_policy_skips(r.s), 1);
    ck_assert_int_eq((int)r.s->step, 2 * STEPS_PER_EPOCH);
    ck_assert_int_eq(r.st.epoch, 2);
    ck_assert(isfinite(r.st.train_loss) && r.st.train_loss > 0);
    ck_assert(isfinite(r.st.val_loss) && r.st.val_loss > 0);
    snap_take(&six, r.s);
    expect_snap_finite(&six);
    snap_free(&six);
    run_close(&r);
    char *log = R(F("%s/c/metrics.jsonl", d));
    char *l1 = line_of(log, 0);
    ck_assert_ptr_nonnull(l1);
    double tl1 = json_number(l1, "train_loss");
    ck_assert(isfinite(tl1) && tl1 > 0);
    tu_rmtree(d);
}
END_TEST

START_TEST(nan_gives_up_after_max_skips)
{
    char *d = keep(tu_tmpdir());
    run r;
    /* skip_step: the bomb goes off once per run, so max_skips = 0 stops there */
    char *p = W(d, "a.ini", cfg_text(F("%s/a", d),
                                     "epochs = 1\non_nan = skip_step\nmax_skips = 0\n",
                                     bomb_layers(5, 0), ADAM, ""));
    int rc = run_train(&r, p, NULL);
    ck_assert_int_eq(rc, MLTK_ERR_NUMERIC);
    TU_ASSERT_CONTAINS(r.err, "at step 5");
    TU_ASSERT_CONTAINS(r.err, "giving up after 0 non-finite steps ([train] max_skips)");
    run_close(&r);

    /* rollback replays step 5, which goes off every time: 3 rollbacks, then
     * the fourth NaN gives up */
    p = W(d, "b.ini", cfg_text(F("%s/b", d),
                               "epochs = 1\non_nan = rollback\nmax_skips = 3\n",
                               bomb_layers(5, 0), ADAM,
                               "[checkpoint]\nevery_steps = 2\n"));
    rc = run_train(&r, p, NULL);
    ck_assert_int_eq(rc, MLTK_ERR_NUMERIC);
    TU_ASSERT_CONTAINS(r.err, "at step 5");
    TU_ASSERT_CONTAINS(r.err, "layer 'bomb' (nanbomb)");
    TU_ASSERT_CONTAINS(r.err, "giving up after 3 non-finite steps ([train] max_skips)");
    ck_assert_int_eq((int)mltk_nan_policy_skips(r.s), 4);
    /* three rollbacks at factor 0.5 */
    ck_assert(r.s->lr_factor == 0.125);
    run_close(&r);
    tu_rmtree(d);
}
END_TEST

START_TEST(nan_rollback_continues_at_a_lower_rate)
{
    char *d = keep(tu_tmpdir());
    run r;
    char *p = W(d, "a.ini", cfg_text(d, "epochs = 2\non_nan = rollback\n"
                                     "nan_lr_factor = 0.25\n",
                                     bomb_layers(5, 1), ADAM,
                                     "[checkpoint]\nevery_steps = 2\nkeep_last = 10\n"));
    run_ok(&r, p, NULL);
    ck_assert_int_eq((int)mltk_nan_policy_skips(r.s), 1);
    ck_assert(r.s->lr_factor == 0.25);
    ck_assert_int_eq((int)r.s->step, 2 * STEPS_PER_EPOCH);
    ck_assert_int_eq((int)r.s->epoch_done, 2);
    ck_assert_int_eq(r.st.epoch, 2);
    /* the rate after the rollback is the optimizer's times the factor */
    ck_assert_double_eq_tol(r.st.lr, 0.002 * 0.25, 1e-12);
    snap sn;
    snap_take(&sn, r.s);
    expect_snap_finite(&sn);
    snap_free(&sn);
    run_close(&r);

    /* the step count is consistent in the files too: two epoch lines, the
     * second at step 16, and the record's steps */
    char *log = R(F("%s/metrics.jsonl", d));
    ck_assert_int_eq(count_lines(F("%s/metrics.jsonl", d)), 2);
    char *l2 = line_of(log, 1);
    ck_assert(json_number(l2, "epoch") == 2 && json_number(l2, "step") == 16);
    char *rec = R(F("%s/run.json", d));
    ck_assert(json_number(rec, "steps") == 16 && json_number(rec, "epochs_done") == 2);
    /* the last checkpoint carries the factor (as a hexadecimal float) */
    char *lf = st_meta(ckpt_name(d, 16), "lr_factor");
    ck_assert(strtod(lf, NULL) == 0.25);

    /* a new run with a NaN at step 1, before its first checkpoint: nothing
     * to roll back to */
    char *d2 = keep(tu_tmpdir());
    int rc = run_train(&r, W(d2, "b.ini",
                             cfg_text(d2, "epochs = 2\non_nan = rollback\n",
                                      bomb_layers(1, 1), ADAM,
                                      "[checkpoint]\nevery_steps = 2\nkeep_last = 10\n")),
                       NULL);
    ck_assert_int_eq(rc, MLTK_ERR_NUMERIC);
    TU_ASSERT_CONTAINS(r.err, "non-finite loss at step 1");
    TU_ASSERT_CONTAINS(r.err, "no checkpoint to roll back to yet");
    ck_assert_int_eq((int)r.s->step, 1);
    run_close(&r);
    tu_rmtree(d2);
    tu_rmtree(d);
}
END_TEST

/* ---- 5. early stopping --------------------------------------------------------------- */

START_TEST(early_stopping_restores_the_best_epoch)
{
    char *d = keep(tu_tmpdir());
    run r;
    snap one, three, es, es_last;
    /* train_loss falls every epoch; in mode max only epoch 1 "improves" */
    const char *stop = "[early_stopping]\nmonitor = train_loss\nmode = max\npatience = 2\n";

    run_ok(&r, W(d, "one.ini", cfg_text(F("%s/one", d), "epochs = 1\n", MLP,
                                        ADAM, "")), NULL);
    snap_take(&one, r.s);
    run_close(&r);
    run_ok(&r, W(d, "three.ini", cfg_text(F("%s/three", d), "epochs = 3\n", MLP,
                                          ADAM, "")), NULL);
    mltk_epoch_stats e3 = r.st;
    snap_take(&three, r.s);
    run_close(&r);

    run_ok(&r, W(d, "es.ini", cfg_text(F("%s/es", d), "epochs = 8\n", MLP, ADAM,
                                       stop)), NULL);
    ck_assert_int_eq(r.st.epoch, 3);
    ck_assert_int_eq((int)r.s->last_stats.epoch, 3);
    ck_assert_int_eq((int)r.s->step, 3 * STEPS_PER_EPOCH);
    ck_assert(r.st.train_loss == e3.train_loss);
    snap_take(&es, r.s);
    run_close(&r);
    expect_snap_equal(&one, &es, "restore_best");
    ck_assert_int_eq(count_lines(F("%s/es/metrics.jsonl", d)), 3);
    char *rec = R(F("%s/es/run.json", d));
    TU_ASSERT_CONTAINS(rec, "\"status\": \"stopped_early\"");

    /* restore_best = false keeps the weights of the last epoch */
    run_ok(&r, W(d, "last.ini", cfg_text(F("%s/last", d), "epochs = 8\n", MLP,
                                         ADAM, F("%srestore_best = false\n",
                                                 stop))), NULL);
    ck_assert_int_eq(r.st.epoch, 3);
    snap_take(&es_last, r.s);
    run_close(&r);
    expect_snap_equal(&three, &es_last, "restore_best = false");

    snap_free(&one);
    snap_free(&three);
    snap_free(&es);
    snap_free(&es_last);
    tu_rmtree(d);
}
END_TEST

/* ---- 6. init_from ---------------------------------------------------------------------- */

START_TEST(init_from_loads_by_name)
{
    char *d = keep(tu_tmpdir());
    run r;
    snap saved, loaded, fresh;
    char *w = F("%s/w.safetensors", d);
    /* lr = 0 leaves the weights as they start, so they can be read after a step */
    const char *still = "type = sgd\nlr = 0\n";
    mltk_session_opts one_step = { .quiet = 1, .max_steps = 1 };

    run_ok(&r, W(d, "save.ini", cfg_text(F("%s/s", d), "epochs = 1\n", MLP, ADAM,
                                         F("[model]\nsave = %s\n", w))), NULL);
    snap_take(&saved, r.s);
    run_close(&r);
    char *fmt = st_meta(w, "format");
    ck_assert_str_eq(fmt, "mltk.weights");

    /* strict: every tensor comes from the file */
    char *cfg = cfg_text(F("%s/l", d), "epochs = 1\n", MLP, still,
                         F("[model]\ninit_from = %s\n", w));
    ck_assert_int_eq(run_train(&r, W(d, "load.ini", cfg), &one_step),
                     MLTK_ERR_INTERRUPTED);
    snap_take(&loaded, r.s);
    run_close(&r);
    expect_snap_equal(&saved, &loaded, "init_from, strict");
    snap_free(&loaded);

    /* one layer more (fc1b keeps the shapes around it) */
    char *deeper = F("[layer.flat]\ntype = flatten\n"
                     "[layer.fc1]\ntype = dense\nunits = 32\nactivation = relu\n"
                     "[layer.fc1b]\ntype = dense\nunits = 32\nactivation = relu\n"
                     "[layer.out]\ntype = dense\nunits = 10\n");
    ck_assert_int_eq(run_train(&r, W(d, "fresh.ini",
                                     cfg_text(F("%s/f", d), "epochs = 1\n", deeper,
                                              still, "")), &one_step),
                     MLTK_ERR_INTERRUPTED);
    snap_take(&fresh, r.s);
    run_close(&r);

    tu_capture cap;
    mltk_session_opts verbose = { .quiet = 1, .max_steps = 1, .log_level = 1 + MLTK_LOG_INFO };
    tu_capture_begin(&cap);
    int rc = run_train(&r, W(d, "loose.ini",
                             cfg_text(F("%s/n", d), "epochs = 1\n", deeper, still,
                                      F("[model]\ninit_from = %s\nstrict = false\n",
                                        w))), &verbose);
    char *said = tu_capture_end(&cap);
    mltk_log_set_level(MLTK_LOG_WARN);
    ck_assert_msg(rc == MLTK_ERR_INTERRUPTED, "%s", r.err ? r.err : "?");
    snap_take(&loaded, r.s);
    run_close(&r);
    TU_ASSERT_CONTAINS(said, "loaded 4 of 6 tensors; not loaded:");
    TU_ASSERT_CONTAINS(said, "fc1b.weight (32, 32) is in the model but not in the file");
    TU_ASSERT_CONTAINS(said, "fc1b.bias (32,) is in the model but not in the file");
    free(said);
    expect_tensor_equal(&saved, &loaded, "fc1.weight", "init_from, not strict");
    expect_tensor_equal(&saved, &loaded, "fc1.bias", "init_from, not strict");
    expect_tensor_equal(&saved, &loaded, "out.weight", "init_from, not strict");
    expect_tensor_equal(&saved, &loaded, "out.bias", "init_from, not strict");
    /* what the file lacks keeps its seeded initial values */
    expect_tensor_equal(&fresh, &loaded, "fc1b.weight", "init_from, not strict");
    expect_tensor_equal(&fresh, &loaded, "fc1b.bias", "init_from, not strict");
    snap_free(&loaded);

    /* strict refuses the same, listing what does not match */
    rc = run_train(&r, W(d, "strict.ini",
                         cfg_text(F("%s/t", d), "epochs = 1\n", deeper, still,
                                  F("[model]\ninit_from = %s\n", w))), &one_step);
    ck_assert_int_eq(rc, MLTK_ERR_DATA);
    TU_ASSERT_CONTAINS(r.err, w);
    TU_ASSERT_CONTAINS(r.err, "2 tensor(s) do not match the model");
    TU_ASSERT_CONTAINS(r.err, "fc1b.weight (32, 32) is in the model but not in the file");
    TU_ASSERT_CONTAINS(r.err, "fc1b.bias (32,) is in the model but not in the file");
    ck_assert_int_eq((int)r.s->step, 0);
    run_close(&r);

    snap_free(&saved);
    snap_free(&fresh);
    tu_rmtree(d);
}
END_TEST

/* ---- 7. rotation ---------------------------------------------------------------------- */

/* the sorted names in dir, joined by spaces, malloc()ed */
static char *dir_listing(const char *dir)
{
    struct dirent **ents = NULL;
    int n = scandir(dir, &ents, NULL, alphasort);
    ck_assert_int_ge(n, 0);
    char *out = F("%s", "");
    for (int i = 0; i < n; i++) {
        if (ents[i]->d_name[0] != '.') {
            char *next = F("%s%s%s", out, *out ? " " : "", ents[i]->d_name);
            out = next;
        }
        free(ents[i]);
    }
    free(ents);
    return out;
}

START_TEST(checkpoints_rotate)
{
    char *d = keep(tu_tmpdir());
    run r;
    /* checkpoints at steps 3, 6, 8 (epoch), 9, 12, 15, 16, 18, 21, 24 */
    run_ok(&r, W(d, "a.ini",
                 cfg_text(F("%s/a", d), "epochs = 3\n", MLP, ADAM,
                          "[checkpoint]\nevery_steps = 3\nkeep_last = 2\n"
                          "keep_best = true\n")), NULL);
    run_close(&r);
    char *ls = dir_listing(F("%s/a/checkpoints", d));
    ck_assert_str_eq(ls, "best.safetensors ckpt-000000000021.safetensors "
                         "ckpt-000000000024.safetensors");
    /* best is the epoch with the lowest val_loss */
    char *log = R(F("%s/a/metrics.jsonl", d));
    double best = INFINITY;
    int best_epoch = 0;
    for (int i = 0; i < 3; i++) {
        char *l = line_of(log, i);
        ck_assert_ptr_nonnull(l);
        double v = json_number(l, "val_loss");
        if (v < best) {
            best = v;
            best_epoch = i + 1;
        }
    }
    char *bestf = F("%s/a/checkpoints/best.safetensors", d);
    char *step = st_meta(bestf, "step"), *vl = st_meta(bestf, "val_loss");
    ck_assert_int_eq(atoi(step), best_epoch * STEPS_PER_EPOCH);
    ck_assert(strtod(vl, NULL) == best);

    /* without keep_best and epoch checkpoints: only the two newest */
    run_ok(&r, W(d, "b.ini",
                 cfg_text(F("%s/b", d), "epochs = 3\n", MLP, ADAM,
                          "[checkpoint]\nevery_steps = 5\nevery_epochs = 0\n"
                          "keep_last = 2\nkeep_best = false\n")), NULL);
    run_close(&r);
    /* steps 5, 10, 15, 20 and the last, 24 */
    ls = dir_listing(F("%s/b/checkpoints", d));
    ck_assert_str_eq(ls, "ckpt-000000000020.safetensors ckpt-000000000024.safetensors");

    /* a new run (not a resume) in the first run's directory is refused
     * and leaves the earlier run's checkpoints as they were */
    ck_assert_int_eq(run_train(&r, W(d, "a2.ini",
                                     cfg_text(F("%s/a", d), "epochs = 2\n", MLP, ADAM,
                                              "[checkpoint]\nevery_steps = 3\nkeep_last = 2\n"
                                              "keep_best = true\n")), NULL),
                     MLTK_ERR_CONFIG);
    TU_ASSERT_CONTAINS(r.err, "already holds checkpoints (newest ");
    TU_ASSERT_CONTAINS(r.err, "ckpt-000000000024.safetensors");
    TU_ASSERT_CONTAINS(r.err, "--resume auto");
    ck_assert_int_eq((int)r.s->step, 0);
    run_close(&r);
    ls = dir_listing(F("%s/a/checkpoints", d));
    ck_assert_str_eq(ls, "best.safetensors ckpt-000000000021.safetensors "
                         "ckpt-000000000024.safetensors");
    tu_rmtree(d);
}
END_TEST

/* ---- 8. the run directory ------------------------------------------------------------- */

START_TEST(run_directory_records_the_run)
{
    char *d = keep(tu_tmpdir());
    run r;
    char *text = cfg_text(F("%s/run", d), "epochs = 3\n", MLP, ADAM,
                          "[checkpoint]\nevery_epochs = 1\n");
    char *p = W(d, "a.ini", text);
    run_ok(&r, p, NULL);
    run_close(&r);

    /* the validator below is not vacuous */
    ck_assert(json_valid_object("{\"a\": [1, -2.5e3, true, null],\n"
                                " \"b\": {\"c\": \"\\u00e9\"}}"));
    ck_assert(!json_valid_object("{\"a\": 1,}"));
    ck_assert(!json_valid_object("{\"a\": nan}"));
    ck_assert(!json_valid_object("{\"a\": 01}"));
    ck_assert(!json_valid_object("{\"a\": \"x}"));
    ck_assert(!json_valid_object("{\"a\": 1} {}"));

    char *rec = R(F("%s/run/run.json", d));
    ck_assert_ptr_nonnull(rec);
    ck_assert_msg(json_valid_object(rec), "run.json is not JSON:\n%s", rec);
    TU_ASSERT_CONTAINS(rec, "\"status\": \"finished\"");
    TU_ASSERT_CONTAINS(rec, "\"backend\": \"cpu\"");
    TU_ASSERT_CONTAINS(rec, F("\"config\": \"%s\"", p));
    ck_assert(json_number(rec, "seed") == 11);
    ck_assert(json_number(rec, "epochs_done") == 3);
    ck_assert(json_number(rec, "steps") == 3 * STEPS_PER_EPOCH);
    ck_assert(json_number(rec, "samples") == 512);
    static const char *const plugins[][2] = {
        { "cpu", "backend" }, { "flatten", "layer" }, { "dense", "layer" },
        { "cross_entropy", "loss" }, { "adam", "optimizer" }, { "idx", "dataset" },
    };
    for (size_t i = 0; i < sizeof plugins / sizeof *plugins; i++) {
        char *want = F("{\"name\": \"%s\", \"kind\": \"%s\"", plugins[i][0],
                       plugins[i][1]);
        TU_ASSERT_CONTAINS(rec, want);
    }
    /* loaded plugins only */
    ck_assert_ptr_null(strstr(rec, "\"conv2d\""));
    ck_assert_ptr_null(strstr(rec, "\"nanbomb\""));

    char *copy = R(F("%s/run/config.ini", d));
    ck_assert_ptr_nonnull(copy);
    ck_assert_str_eq(copy, text);

    char *csv = R(F("%s/run/metrics.csv", d));
    ck_assert_ptr_nonnull(csv);
    ck_assert_int_eq(count_lines(F("%s/run/metrics.csv", d)), 4);
    char *head = line_of(csv, 0);
    ck_assert_str_eq(head, "epoch,train_loss,val_loss,val_acc,samples_per_s,data_wait,lr,"
                           "wall_s,cpu_percent,rss_mb");
    char *jl = R(F("%s/run/metrics.jsonl", d));
    ck_assert_int_eq(count_lines(F("%s/run/metrics.jsonl", d)), 3);
    for (int i = 0; i < 3; i++) {
        char *row = line_of(csv, i + 1), *obj = line_of(jl, i);
        ck_assert(row && obj);
        ck_assert_msg(json_valid_object(obj), "not a JSON object: %s", obj);
        ck_assert(json_number(obj, "epoch") == i + 1);
        ck_assert(json_number(obj, "step") == (i + 1) * STEPS_PER_EPOCH);
        /* the CSV row has the same numbers (to its 9 digits) */
        int epoch = -1;
        double tl = NAN, vl = NAN, va = NAN;
        ck_assert_int_eq(sscanf(row, "%d,%lf,%lf,%lf", &epoch, &tl, &vl, &va), 4);
        ck_assert_int_eq(epoch, i + 1);
        ck_assert_double_eq_tol(tl, json_number(obj, "train_loss"), 1e-7);
        ck_assert_double_eq_tol(vl, json_number(obj, "val_loss"), 1e-7);
        ck_assert_double_eq_tol(va, json_number(obj, "val_acc"), 1e-7);
        /* 256 test samples: the accuracy is a multiple of 1/256 */
        ck_assert(va * 256 == floor(va * 256));
        int fields = 1;
        for (const char *c = row; *c; c++)
            fields += *c == ',';
        ck_assert_int_eq(fields, 10);
    }
    ck_assert(exists(F("%s/run/checkpoints/ckpt-%012d.safetensors", d,
                       3 * STEPS_PER_EPOCH)));
    char *conf = R(F("%s/run/confusion.csv", d));
    ck_assert_ptr_nonnull(conf);
    /* a header and one row per class */
    ck_assert_int_eq(count_lines(F("%s/run/confusion.csv", d)), 11);
    tu_rmtree(d);
}
END_TEST

/* ---- 5. dynamic loss scaling and the components' state ----------------------------- */

/* the MLP with a nanbomb after fc1 whose input gradient becomes +Inf at
 * step `at_step` (the loss stays finite: an overflow) */
static char *overflow_layers(int at_step)
{
    return F("[layer.flat]\ntype = flatten\n"
             "[layer.fc1]\ntype = dense\nunits = 32\nactivation = relu\n"
             "[layer.bomb]\ntype = nanbomb\nat_step = %d\nin = backward\nvalue = inf\n"
             "[layer.out]\ntype = dense\nunits = 10\n", at_step);
}

START_TEST(loss_scale_skips_an_overflow_and_halves)
{
    char *d = keep(tu_tmpdir());
    run r;
    snap three, four;
    for (int every = 1; every <= 8; every *= 8) {
        /* the weights after steps 0..2 ... */
        char *train = F("epochs = 1\nloss_scale = dynamic\ncheck_every = %d\n", every);
        char *p = W(d, F("a%d.ini", every), cfg_text(F("%s/a%d", d, every), train,
                                                      overflow_layers(3), ADAM, ""));
        mltk_session_opts o = { .quiet = 1, .max_steps = 3 };
        ck_assert_int_eq(run_train(&r, p, &o), MLTK_ERR_INTERRUPTED);
        ck_assert(mltk_loss_scale_value(r.s) == 65536.0);
        snap_take(&three, r.s);
        run_close(&r);
        /* ... are those after steps 0..3 when step 3 overflows: skipped,
         * the scale halved, and no NaN policy (on_nan = stop) involved */
        o.max_steps = 4;
        ck_assert_int_eq(run_train(&r, p, &o), MLTK_ERR_INTERRUPTED);
        ck_assert_int_eq((int)r.s->step, 4);
        ck_assert(mltk_loss_scale_value(r.s) == 32768.0);
        ck_assert_int_eq((int)mltk_nan_policy_skips(r.s), 0);
        snap_take(&four, r.s);
        run_close(&r);
        expect_snap_equal(&three, &four, "overflow at step 3 skipped");
        snap_free(&three);
        snap_free(&four);
    }
    /* a whole epoch trains through it with finite numbers */
    char *p = W(d, "c.ini", cfg_text(F("%s/c", d), "epochs = 1\nloss_scale = dynamic\n",
                                     overflow_layers(3), ADAM, ""));
    run_ok(&r, p, NULL);
    ck_assert(isfinite(r.st.train_loss) && r.st.train_loss > 0);
    ck_assert(mltk_loss_scale_value(r.s) == 32768.0);
    snap_take(&four, r.s);
    expect_snap_finite(&four);
    snap_free(&four);
    run_close(&r);
    /* without loss scaling the same overflow is a non-finite gradient */
    p = W(d, "n.ini", cfg_text(F("%s/n", d), "epochs = 1\nloss_scale = none\n",
                               overflow_layers(3), ADAM, ""));
    ck_assert_int_eq(run_train(&r, p, NULL), MLTK_ERR_NUMERIC);
    TU_ASSERT_CONTAINS(r.err, "non-finite gradient at step 3");
    run_close(&r);
    tu_rmtree(d);
}
END_TEST

START_TEST(loss_scale_grows_after_the_interval)
{
    char *d = keep(tu_tmpdir());
    run r;
    /* 8 steps, interval 3: doubled after steps 2 and 5 */
    char *p = W(d, "g.ini", cfg_text(F("%s/g", d), "epochs = 1\nloss_scale = dynamic\n"
                                     "loss_scale_init = 1024\n"
                                     "loss_scale_growth_interval = 3\n", MLP, ADAM, ""));
    run_ok(&r, p, NULL);
    ck_assert(mltk_loss_scale_value(r.s) == 4096.0);
    run_close(&r);
    /* good steps 0..2 double it, the overflow at 3 halves it, good steps
     * 4..6 double it again; the same with windows of 4 and of 1 */
    for (int every = 1; every <= 4; every *= 4) {
        p = W(d, F("o%d.ini", every),
              cfg_text(F("%s/o%d", d, every),
                       F("epochs = 1\nloss_scale = dynamic\nloss_scale_init = 1024\n"
                         "loss_scale_growth_interval = 3\ncheck_every = %d\n", every),
                       overflow_layers(3), ADAM, ""));
        run_ok(&r, p, NULL);
        ck_assert_msg(mltk_loss_scale_value(r.s) == 2048.0, "check_every %d: scale %g",
                      every, mltk_loss_scale_value(r.s));
        run_close(&r);
    }
    tu_rmtree(d);
}
END_TEST

/* every component's state, as it would go into a checkpoint */
static mltk_kv state_of(mltk_session_t *s)
{
    mltk_kv kv = { 0 };
    ck_assert_int_eq(mltk_components_save_state(s, &kv), MLTK_OK);
    return kv;
}

START_TEST(component_state_round_trips)
{
    char *d = keep(tu_tmpdir());
    run r, back;
    /* an overflow (loss scale), a NaN skipped (nan_skips), early stopping
     * and the best checkpoint: every component with state has moved */
    char *layers = F("[layer.flat]\ntype = flatten\n"
                     "[layer.fc1]\ntype = dense\nunits = 32\nactivation = relu\n"
                     "[layer.bomb]\ntype = nanbomb\nat_step = 2\nin = backward\nvalue = inf\n"
                     "[layer.bomb2]\ntype = nanbomb\nat_step = 12\n"
                     "[layer.out]\ntype = dense\nunits = 10\n");
    char *p = W(d, "s.ini", cfg_text(F("%s/s", d), "epochs = 2\non_nan = skip_step\n"
                                     "loss_scale = dynamic\nloss_scale_growth_interval = 4\n",
                                     layers, ADAM, "[checkpoint]\n[early_stopping]\n"
                                     "patience = 3\n"));
    run_ok(&r, p, NULL);
    mltk_kv a = state_of(r.s);
    ck_assert_int_eq((int)mltk_nan_policy_skips(r.s), 1);
    ck_assert(mltk_loss_scale_value(r.s) != 65536.0);
    ck_assert_ptr_nonnull(mltk_kv_get(&a, "es_best"));
    ck_assert_ptr_nonnull(mltk_kv_get(&a, "best_ckpt"));
    ck_assert_ptr_nonnull(mltk_kv_get(&a, "loss_scale.scale"));
    ck_assert(strcmp(mltk_kv_get(&a, "es_best_epoch"), "0") != 0);
    /* a new session restored from the last checkpoint holds the same */
    char *ckpt = ckpt_name(F("%s/s", d), 2 * STEPS_PER_EPOCH);
    ck_assert_int_eq(run_open(&back, p, NULL), MLTK_OK);
    mltk_kv none = state_of(back.s);
    char *err = NULL;
    ck_assert_int_eq(mltk_ckpt_restore(back.s, ckpt, &err), MLTK_OK);
    mltk_kv b = state_of(back.s);
    ck_assert_int_eq(a.n, b.n);
    int moved = 0;
    for (int i = 0; i < a.n; i++) {
        const char *key = a.kv[2 * i];
        ck_assert_msg(mltk_kv_get(&b, key) && strcmp(mltk_kv_get(&b, key), a.kv[2 * i + 1]) == 0,
                      "%s: %s saved, %s restored", key, a.kv[2 * i + 1],
                      mltk_kv_get(&b, key) ? mltk_kv_get(&b, key) : "nothing");
        moved += strcmp(mltk_kv_get(&none, key), a.kv[2 * i + 1]) != 0;
    }
    /* nan_skips, best_ckpt, es_best, es_best_epoch, loss_scale.scale at least */
    ck_assert_int_ge(moved, 5);
    ck_assert(mltk_loss_scale_value(back.s) == mltk_loss_scale_value(r.s));
    mltk_kv_free(&a);
    mltk_kv_free(&b);
    mltk_kv_free(&none);
    run_close(&back);
    run_close(&r);
    tu_rmtree(d);
}
END_TEST

/* ---- main ------------------------------------------------------------------------------- */

/* The nanbomb descriptor, from its template, into a directory of our own.
 * (Outside a test: no Check asserts, so no tu_fmt.) */
static int write_descriptor(const char *dir)
{
    char in[4096], libs[4096], out[4096], abi[16];
    snprintf(in, sizeof in, "%s/tests/plugins/nanbomb.ini.in", tu_srcdir());
    snprintf(libs, sizeof libs, "%s/tests/plugins/.libs", tu_builddir());
    snprintf(out, sizeof out, "%s/nanbomb.ini", dir);
    snprintf(abi, sizeof abi, "%d", MLTK_ABI_MAJOR);
    char *text = tu_read(in);
    FILE *f = text ? fopen(out, "w") : NULL;
    if (!f) {
        fprintf(stderr, "cannot read %s or write %s\n", in, out);
        free(text);
        return -1;
    }
    static const char *const from[] = { "@NANBOMB_DIR@", "@MLTK_ABI_MAJOR@" };
    const char *to[] = { libs, abi };
    for (const char *p = text; *p;) {
        int k = 0;
        while (k < 2 && strncmp(p, from[k], strlen(from[k])) != 0)
            k++;
        if (k < 2) {
            fputs(to[k], f);
            p += strlen(from[k]);
        } else {
            fputc(*p++, f);
        }
    }
    free(text);
    return fclose(f) == 0 ? 0 : -1;
}

int main(void)
{
    if (access(FMNIST, R_OK) != 0) {
        fprintf(stderr, "Fashion-MNIST not installed (%s): skipping\n", FMNIST);
        return 77;
    }
    const char *base = getenv("TMPDIR");
    snprintf(plugin_dir, sizeof plugin_dir, "%s/check_ops-plugins.XXXXXX",
             base && *base ? base : "/tmp");
    if (!mkdtemp(plugin_dir) || write_descriptor(plugin_dir) != 0)
        return 99;

    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("operations");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, NULL, free_kept);
    tcase_add_test(tc, resume_is_exact);
    tcase_add_test(tc, resume_refuses_changed_config);
    tcase_add_test(tc, damaged_checkpoints_are_refused);
    tcase_add_test(tc, nan_stop_names_the_layer);
    tcase_add_test(tc, nan_skip_step_drops_the_update);
    tcase_add_test(tc, nan_gives_up_after_max_skips);
    tcase_add_test(tc, nan_rollback_continues_at_a_lower_rate);
    tcase_add_test(tc, early_stopping_restores_the_best_epoch);
    tcase_add_test(tc, init_from_loads_by_name);
    tcase_add_test(tc, checkpoints_rotate);
    tcase_add_test(tc, run_directory_records_the_run);
    tcase_add_test(tc, loss_scale_skips_an_overflow_and_halves);
    tcase_add_test(tc, loss_scale_grows_after_the_interval);
    tcase_add_test(tc, component_state_round_trips);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    tu_rmtree(plugin_dir);
    return failed ? 1 : 0;
}
