/* check_train.c - end-to-end training through the public API.
 *
 * Trains the Fashion-MNIST MLP on a subset and asserts the accuracy it
 * reaches (above a linear model's, trained beside it on the same data for
 * the same epochs), that a seeded cpu run is bit-for-bit repeatable, that dynamic
 * loss scaling leaves a float32 run as it was, that a step in a window of
 * [train] check_every makes no host synchronisation, and that
 * model-level mistakes (shape mismatch at the loss, an input naming a
 * later layer, an unused layer output) are refused with messages naming
 * the config line.  Skips (77) when Debian's Fashion-MNIST is absent.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mltk/mltk.h>
#include "session.h"
#include "train/component.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

/* End-to-end thresholds.  Each test prints what it reached to the test
 * log ("reached: ...").  On the cpu backend with seed 7 the runs below
 * reach, identically at 1 and 2 threads and in the sanitizer build (this
 * machine: AVX2, OpenBLAS 0.3.21 Zen kernels):
 *
 *   run                     metric      reached   threshold
 *   mlp, adam, 3 epochs     val_acc     0.8445    >= 0.835
 *                           val_loss    0.4668    <= 0.48
 *                           train_loss  0.4641    <= 0.48
 *   linear, adam, 3 epochs  val_acc     0.8170    <  0.835 (the mlp's bound)
 *                           val_loss    0.5340    >  0.48  (the mlp's bound)
 *   mlp, sgd, 3 epochs      val_acc     0.8460    >= 0.838
 *   mlp, adam, 1 epoch      val_acc     0.7750    >= 0.765
 *
 * Each accuracy bound sits ~1 point (0.8 for sgd) under the value reached
 * and each loss bound ~0.015 over it: another machine's BLAS sums in
 * another order, which changes the trajectory a little; over seeds 1-4
 * the adam mlp reaches 0.838-0.8405 and val_loss 0.458-0.478.  A linear
 * model (flatten, dense 10) trained with the same optimizer, data and
 * epochs must stay under the mlp's bounds, so that they say more than
 * "it learned something".  (With sgd at lr 0.05, momentum 0.9, the
 * linear model reaches 0.841, as much as the mlp at this size: the sgd
 * run is held to its own value only.) */
#define MLP_ACC_MIN        0.835
#define MLP_VAL_LOSS_MAX   0.48
#define MLP_TRAIN_LOSS_MAX 0.48
#define SGD_ACC_MIN        0.838
#define ONE_EPOCH_ACC_MIN  0.765

static char tmpdir[256];

static const char *write_cfg(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static const char mlp[] =
    "[run]\nseed = 7\nbackend = cpu\nthreads = 2\n"
    "[train]\nepochs = 3\nbatch_size = 64\n"
    "[data]\ntype = idx\ntrain_limit = 8000\ntest_limit = 2000\n"
    "[layer.flat]\ntype = flatten\n"
    "[layer.fc1]\ntype = dense\nunits = 128\nactivation = relu\n"
    "[layer.fc2]\ntype = dense\nunits = 64\n"
    "[layer.act]\ntype = relu\n"
    "[layer.out]\ntype = dense\nunits = 10\n"
    "[loss]\ntype = cross_entropy\n"
    "[optimizer]\ntype = adam\nlr = 0.002\n";

/* the baseline: the same run with a linear model */
static const char linear[] =
    "[run]\nseed = 7\nbackend = cpu\nthreads = 2\n"
    "[train]\nepochs = 3\nbatch_size = 64\n"
    "[data]\ntype = idx\ntrain_limit = 8000\ntest_limit = 2000\n"
    "[layer.flat]\ntype = flatten\n"
    "[layer.out]\ntype = dense\nunits = 10\n"
    "[loss]\ntype = cross_entropy\n"
    "[optimizer]\ntype = adam\nlr = 0.002\n";

/* what a run reached, for the test log */
static void report(const char *what, const mltk_epoch_stats *st)
{
    fprintf(stderr, "reached: %-24s epochs %d  train_loss %.4f  val_loss %.4f  "
            "val_acc %.4f\n", what, st->epoch, st->train_loss, st->val_loss, st->val_acc);
}

/* train a config; returns status, fills stats and (if params) a copy of
 * the final flat parameters */
static int train(const char *path, mltk_epoch_stats *st, float **params, int64_t *np,
                 char **err)
{
    mltk_registry_t *reg = NULL;
    mltk_config_t *cfg = NULL;
    mltk_session_t *s = NULL;
    int rc = mltk_registry_create(&reg, NULL, 1, err);
    if (!rc)
        rc = mltk_config_load(&cfg, reg, path, err);
    mltk_session_opts o = { .quiet = 1 };
    if (!rc)
        rc = mltk_session_create(&s, cfg, reg, &o, err);
    if (!rc)
        rc = mltk_session_train(s, st, err);
    if (!rc && params) {
        float *p = mltk_model_params(s->model, np);
        *params = malloc((size_t)*np * sizeof(float));
        ck_assert_ptr_nonnull(*params);
        rc = mltk_be_download(&s->be, *params, p, (size_t)*np * sizeof(float));
    }
    mltk_session_destroy(s);
    mltk_config_destroy(cfg);
    mltk_registry_destroy(reg);
    return rc;
}

START_TEST(mlp_reaches_accuracy_and_repeats)
{
    mltk_epoch_stats a, b;
    float *pa = NULL, *pb = NULL;
    int64_t na = 0, nb = 0;
    char *err = NULL;
    const char *path = write_cfg("mlp.ini", mlp);
    int rc = train(path, &a, &pa, &na, &err);
    ck_assert_msg(rc == MLTK_OK, "training failed: %s", err ? err : "?");
    report("mlp, adam", &a);
    ck_assert_msg(a.val_acc >= MLP_ACC_MIN, "val_acc %.4f < %.3f", a.val_acc, MLP_ACC_MIN);
    ck_assert_int_eq(a.epoch, 3);
    ck_assert_msg(a.train_loss > 0.0 && a.train_loss <= MLP_TRAIN_LOSS_MAX,
                  "train_loss %.4f > %.3f", a.train_loss, MLP_TRAIN_LOSS_MAX);
    ck_assert_msg(a.val_loss > 0.0 && a.val_loss <= MLP_VAL_LOSS_MAX, "val_loss %.4f > %.3f",
                  a.val_loss, MLP_VAL_LOSS_MAX);
    ck_assert(a.samples_per_s > 0.0);
    ck_assert(a.lr == 0.002);

    rc = train(path, &b, &pb, &nb, &err);
    ck_assert_int_eq(rc, MLTK_OK);
    ck_assert_int_eq(na, nb);
    ck_assert_msg(memcmp(pa, pb, (size_t)na * sizeof(float)) == 0,
                  "same seed, different weights");
    ck_assert(a.train_loss == b.train_loss && a.val_loss == b.val_loss &&
              a.val_acc == b.val_acc);

    /* the linear baseline (same data and epochs) stays under the mlp's bounds */
    mltk_epoch_stats lin;
    rc = train(write_cfg("linear.ini", linear), &lin, NULL, NULL, &err);
    ck_assert_msg(rc == MLTK_OK, "linear baseline failed: %s", err ? err : "?");
    report("linear, adam", &lin);
    ck_assert_int_eq(lin.epoch, 3);
    ck_assert_msg(lin.val_acc < MLP_ACC_MIN, "a linear model reaches val_acc %.4f >= the "
                  "mlp's bound %.3f", lin.val_acc, MLP_ACC_MIN);
    ck_assert_msg(lin.val_loss > MLP_VAL_LOSS_MAX, "a linear model reaches val_loss %.4f <= "
                  "the mlp's bound %.3f", lin.val_loss, MLP_VAL_LOSS_MAX);
    free(pa);
    free(pb);
}
END_TEST

START_TEST(sgd_trains_too)
{
    char text[2048];
    snprintf(text, sizeof text, "%s", mlp);
    char *o = strstr(text, "[optimizer]");
    snprintf(o, sizeof text - (size_t)(o - text),
             "[optimizer]\ntype = sgd\nlr = 0.05\nmomentum = 0.9\nnesterov = true\n");
    mltk_epoch_stats st;
    char *err = NULL;
    int rc = train(write_cfg("sgd.ini", text), &st, NULL, NULL, &err);
    ck_assert_msg(rc == MLTK_OK, "training failed: %s", err ? err : "?");
    report("mlp, sgd", &st);
    ck_assert_msg(st.val_acc >= SGD_ACC_MIN, "val_acc %.4f < %.3f", st.val_acc, SGD_ACC_MIN);
}
END_TEST

/* Train `text` (its "epochs = 3" line replaced by the [train] lines
 * `train`) and keep what the
 * tests below compare: the statistics, the parameters, the loss scale at
 * the end and the backend's count of host synchronisations. */
typedef struct outcome {
    mltk_epoch_stats st;
    float   *params;
    int64_t  n;
    double   scale;
    uint64_t syncs;
} outcome;

static void train_outcome(const char *name, const char *text, const char *train,
                          outcome *out)
{
    char buf[4096];
    const char *at = strstr(text, "epochs = 3\n");
    ck_assert_ptr_nonnull(at);
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - text), text, train,
             at + strlen("epochs = 3\n"));
    mltk_registry_t *reg = NULL;
    mltk_config_t *cfg = NULL;
    mltk_session_t *s = NULL;
    char *err = NULL;
    int rc = mltk_registry_create(&reg, NULL, 1, &err);
    if (!rc)
        rc = mltk_config_load(&cfg, reg, write_cfg(name, buf), &err);
    mltk_session_opts o = { .quiet = 1 };
    if (!rc)
        rc = mltk_session_create(&s, cfg, reg, &o, &err);
    if (!rc)
        rc = mltk_session_train(s, &out->st, &err);
    ck_assert_msg(rc == MLTK_OK, "%s: %s", name, err ? err : "?");
    float *p = mltk_model_params(s->model, &out->n);
    out->params = malloc((size_t)out->n * sizeof(float));
    ck_assert_ptr_nonnull(out->params);
    out->syncs = mltk_be_sync_count(&s->be);
    ck_assert_int_eq(mltk_be_download(&s->be, out->params, p, (size_t)out->n * sizeof(float)),
                     MLTK_OK);
    out->scale = mltk_loss_scale_value(s);
    mltk_session_destroy(s);
    mltk_config_destroy(cfg);
    mltk_registry_destroy(reg);
}

START_TEST(dynamic_loss_scale_keeps_f32)
{
    outcome plain, scaled;
    train_outcome("plain.ini", mlp, "epochs = 1\n", &plain);
    train_outcome("scaled.ini", mlp, "epochs = 1\nloss_scale = dynamic\n", &scaled);
    /* 65536 and its inverse are powers of two: the gradients, and so the
     * whole run, are the same bits */
    ck_assert(scaled.scale == 65536.0 && plain.scale == 1.0);
    ck_assert_int_eq(plain.n, scaled.n);
    ck_assert_msg(memcmp(plain.params, scaled.params, (size_t)plain.n * sizeof(float)) == 0,
                  "loss scaling changed the weights");
    report("mlp, adam, 1 epoch", &plain.st);
    ck_assert(plain.st.val_acc == scaled.st.val_acc);
    ck_assert_msg(plain.st.val_acc >= ONE_EPOCH_ACC_MIN, "val_acc %.4f < %.3f",
                  plain.st.val_acc, ONE_EPOCH_ACC_MIN);
    ck_assert(plain.st.train_loss == scaled.st.train_loss);
    free(plain.params);
    free(scaled.params);
}
END_TEST

/* With every step of an epoch in one window, an epoch of 63 steps makes
 * as many host synchronisations as one of 125: a step in a window makes
 * none, whatever the components (loss scaling included). */
START_TEST(steps_in_a_window_do_not_sync)
{
    static const char *const extra[] = { "", "loss_scale = dynamic\n" };
    for (int k = 0; k < 2; k++) {
        outcome a, b;
        char ta[256], tb[256];
        snprintf(ta, sizeof ta, "epochs = 1\ncheck_every = 1000\n%s", extra[k]);
        snprintf(tb, sizeof tb, "epochs = 1\ncheck_every = 1000\n%s", extra[k]);
        char *half = strdup(mlp), *limit = strstr(half, "train_limit = 8000");
        ck_assert_ptr_nonnull(limit);
        memcpy(limit, "train_limit = 4000", strlen("train_limit = 4000"));
        train_outcome("half.ini", half, ta, &a);
        train_outcome("full.ini", mlp, tb, &b);
        ck_assert_msg(a.syncs == b.syncs, "%s63 steps: %llu host syncs, 125 steps: %llu",
                      extra[k], (unsigned long long)a.syncs, (unsigned long long)b.syncs);
        free(half);
        free(a.params);
        free(b.params);
    }
}
END_TEST

static void expect_error(const char *name, const char *text, int status, const char *needle)
{
    char *err = NULL;
    int rc = train(write_cfg(name, text), NULL, NULL, NULL, &err);
    ck_assert_int_eq(rc, status);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, needle) != NULL, "message '%s' lacks '%s'", err, needle);
    free(err);
}

START_TEST(model_errors_name_the_line)
{
    /* 7 outputs but 10 classes: refused at the loss section (line 8) */
    expect_error("classes.ini",
                 "[train]\nepochs = 1\n[data]\ntype = idx\ntrain_limit = 100\ntest_limit = 100\n"
                 "[layer.out]\ntype = dense\nunits = 7\n[loss]\ntype = cross_entropy\n"
                 "[optimizer]\ntype = sgd\n",
                 MLTK_ERR_SHAPE, "classes.ini:10: [loss]");
    /* an input naming a layer defined later */
    expect_error("order.ini",
                 "[data]\ntype = idx\ntrain_limit = 100\ntest_limit = 100\n"
                 "[layer.a]\ntype = dense\nunits = 10\ninput = b\n"
                 "[layer.b]\ntype = dense\nunits = 10\ninput = a\n"
                 "[loss]\ntype = cross_entropy\n[optimizer]\ntype = sgd\n",
                 MLTK_ERR_CONFIG, "order.ini:5: layer 'a' (dense): input 'b' is defined after this layer");
    /* a layer whose output nobody reads */
    expect_error("unused.ini",
                 "[data]\ntype = idx\ntrain_limit = 100\ntest_limit = 100\n"
                 "[layer.a]\ntype = dense\nunits = 10\n"
                 "[layer.b]\ntype = dense\nunits = 10\ninput = data\n"
                 "[loss]\ntype = cross_entropy\n[optimizer]\ntype = sgd\n",
                 MLTK_ERR_CONFIG, "unused.ini:5: layer 'a' (dense): output of layer 'a' is never used");
    /* missing data file: a data error naming the file */
    expect_error("nodata.ini",
                 "[data]\ntype = idx\npath = /nonexistent/dir\n"
                 "[layer.a]\ntype = dense\nunits = 10\n"
                 "[loss]\ntype = cross_entropy\n[optimizer]\ntype = sgd\n",
                 MLTK_ERR_DATA, "/nonexistent/dir/train-images-idx3-ubyte.gz");
}
END_TEST

int main(void)
{
    if (access(FMNIST, R_OK) != 0) {
        fprintf(stderr, "Fashion-MNIST not installed (%s): skipping\n", FMNIST);
        return 77;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/check_train.XXXXXX");
    if (!mkdtemp(tmpdir))
        return 99;
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("end-to-end");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, mlp_reaches_accuracy_and_repeats);
    tcase_add_test(tc, sgd_trains_too);
    tcase_add_test(tc, model_errors_name_the_line);
    tcase_add_test(tc, dynamic_loss_scale_keeps_f32);
    tcase_add_test(tc, steps_in_a_window_do_not_sync);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return failed ? 1 : 0;
}
