/* check_schedule.c - learning-rate schedules: plugins, warm-up, scaling.
 *
 * What this is: every schedule plugin, read from a [schedule] section
 * through the config loader and run by the core's schedule (warm-up and
 * the linear scaling rule on top), compared step by step with the rates
 * PyTorch 1.13's lr_scheduler classes give (tests/schedule_ref.h, from
 * tests/gen_schedule_ref.py); reduce_on_plateau is fed a metric sequence
 * and must ignore the metrics it does not watch.  Every key of [schedule]
 * and of the schedule plugins is given a wrong type or an out-of-range
 * value and must be refused with "file:line".  With Debian's
 * Fashion-MNIST present, short training runs check that the rate each
 * epoch reports (stats and JSON lines) is the one its last step used, and
 * that reduce_on_plateau hears the epoch's metrics.
 *
 * What this is not: a test of the optimizers (check_optim2.c).
 */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session.h"
#include "testutil.h"
#include "schedule_ref.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

/* ---- helpers -------------------------------------------------------------- */

static mltk_registry_t *reg;
static char *tmpdir;

static void setup(void)
{
    char *err = NULL;
    int rc = mltk_registry_create(&reg, NULL, 1, &err);
    ck_assert_msg(rc == MLTK_OK, "registry: %s", err ? err : "?");
    tmpdir = tu_tmpdir();
}

static void teardown(void)
{
    mltk_registry_destroy(reg);
    reg = NULL;
    tu_rmtree(tmpdir);
    free(tmpdir);
    tmpdir = NULL;
}

/* A config whose first line is [schedule] (so its keys start on line 2),
 * followed by `section` and a model that needs no data to be validated. */
static char *schedule_config(const char *section, double lr, int batch, int epochs)
{
    char *text = tu_fmt("[schedule]\n%s"
                        "[train]\nepochs = %d\nbatch_size = %d\n"
                        "[data]\ntype = idx\n"
                        "[layer.out]\ntype = dense\nunits = 10\n"
                        "[loss]\ntype = cross_entropy\n"
                        "[optimizer]\ntype = sgd\nlr = %.17g\n",
                        section, epochs, batch, lr);
    char *path = tu_write(tmpdir, "train.ini", text);
    free(text);
    return path;
}

static int close_rel(double a, double b, double rtol)
{
    return fabs(a - b) <= rtol * fmax(fabs(a), fabs(b)) + 1e-300;
}

/* ---- against PyTorch ------------------------------------------------------ */

START_TEST(matches_torch)
{
    const struct sref *c = &sref_cases[_i];
    char *err = NULL;
    char *path = schedule_config(c->section, c->lr, c->batch_size, c->epochs);
    mltk_config_t *cfg = NULL;
    int rc = mltk_config_load(&cfg, reg, path, &err);
    ck_assert_msg(rc == MLTK_OK, "%s: %s", c->name, err ? err : "?");
    mltk_sched sc;
    int64_t spe = c->steps_per_epoch;
    rc = mltk_sched_open(&sc, cfg, reg, c->lr, c->batch_size, spe, c->epochs, &err);
    ck_assert_msg(rc == MLTK_OK, "%s: %s", c->name, err ? err : "?");
    ck_assert_ptr_nonnull(sc.i);

    for (int e = 0; e < c->epochs; e++) {
        for (int64_t k = 0; k < spe; k++) {
            int64_t step = e * spe + k;
            double got = mltk_sched_lr(&sc, step, e), want = c->want[step];
            ck_assert_msg(close_rel(got, want, 1e-9),
                          "%s: epoch %d step %lld: lr %.17g, PyTorch %.17g", c->name, e,
                          (long long)step, got, want);
        }
        /* the watched metric, and decoys that would trigger a reduction
         * (constant, or getting worse) if they were watched */
        if (c->monitor)
            mltk_sched_observe(&sc, c->monitor, c->metric[e], e + 1);
        if (!c->monitor || strcmp(c->monitor, "val_loss") != 0)
            mltk_sched_observe(&sc, "val_loss", 1.0 + e, e + 1);
        if (!c->monitor || strcmp(c->monitor, "val_acc") != 0)
            mltk_sched_observe(&sc, "val_acc", 0.5, e + 1);
        mltk_sched_observe(&sc, "train_loss", 2.0, e + 1);
    }
    mltk_sched_close(&sc);
    mltk_config_destroy(cfg);
    free(path);
}
END_TEST

START_TEST(no_section_is_constant)
{
    char *err = NULL;
    char *text = tu_fmt("[data]\ntype = idx\n[layer.out]\ntype = dense\nunits = 10\n"
                        "[loss]\ntype = cross_entropy\n[optimizer]\ntype = sgd\n");
    char *path = tu_write(tmpdir, "plain.ini", text);
    mltk_config_t *cfg = NULL;
    ck_assert_int_eq(mltk_config_load(&cfg, reg, path, &err), MLTK_OK);
    mltk_sched sc;
    ck_assert_int_eq(mltk_sched_open(&sc, cfg, reg, 0.03, 32, 7, 5, &err), MLTK_OK);
    ck_assert_ptr_null(sc.i);
    for (int64_t s = 0; s < 35; s++)
        ck_assert(mltk_sched_lr(&sc, s, s / 7) == 0.03);
    mltk_sched_observe(&sc, "val_loss", 1.0, 1);  /* no plugin: nothing to tell */
    mltk_sched_close(&sc);
    mltk_config_destroy(cfg);
    free(path);
    free(text);
}
END_TEST

/* `type` defaults to constant; warm-up alone then ramps to the base rate */
START_TEST(default_type_is_constant)
{
    char *err = NULL;
    char *path = schedule_config("warmup_steps = 4\n", 0.2, 32, 3);
    mltk_config_t *cfg = NULL;
    ck_assert_int_eq(mltk_config_load(&cfg, reg, path, &err), MLTK_OK);
    const mltk_section *sec = mltk_config_section(cfg, "schedule");
    ck_assert_ptr_nonnull(sec);
    ck_assert_ptr_nonnull(sec->plugin);
    ck_assert_str_eq(sec->plugin->name, "constant");
    mltk_sched sc;
    ck_assert_int_eq(mltk_sched_open(&sc, cfg, reg, 0.2, 32, 10, 3, &err), MLTK_OK);
    /* default start factor 0.1: 0.02, 0.065, 0.11, 0.155, then 0.2 */
    static const double want[6] = { 0.02, 0.065, 0.11, 0.155, 0.2, 0.2 };
    for (int s = 0; s < 6; s++)
        ck_assert_msg(close_rel(mltk_sched_lr(&sc, s, 0), want[s], 1e-12),
                      "step %d: %.17g", s, mltk_sched_lr(&sc, s, 0));
    mltk_sched_close(&sc);
    mltk_config_destroy(cfg);
    free(path);
}
END_TEST

/* ---- config errors ---------------------------------------------------------- */

typedef struct bad_case {
    const char *section;   /* [schedule] keys, starting on line 2 */
    int         at_open;   /* 0: refused by the loader, 1: by mltk_sched_open */
    const char *want;      /* expected in the message, after "train.ini:" */
} bad_case;

static const bad_case bad_cases[] = {
    { "type = cosin\n", 0, "2: [schedule]: unknown schedule 'cosin'; did you mean 'cosine'?" },
    { "type = adam\n", 0, "2: [schedule]: unknown schedule 'adam': 'adam' is an optimizer plugin" },
    { "type = step\n", 0, "1: [schedule] (step): missing required key 'step_size'" },
    { "warmup_steps = -1\n", 0, "2: [schedule] (constant): key 'warmup_steps' must be >= 0, got -1" },
    { "warmup_steps = 2.5\n", 0, "2: [schedule] (constant): key 'warmup_steps' must be an integer, got '2.5'" },
    { "warmup_epochs = -3\n", 0, "2: [schedule] (constant): key 'warmup_epochs' must be >= 0, got -3" },
    { "warmup_start_factor = 1.5\n", 0,
      "2: [schedule] (constant): key 'warmup_start_factor' must be <= 1, got 1.5" },
    { "warmup_start_factor = low\n", 0,
      "2: [schedule] (constant): key 'warmup_start_factor' must be a number, got 'low'" },
    { "warmup_steps = 10\nwarmup_start_factor = 0\n", 1,
      "3: [schedule]: key 'warmup_start_factor' must be > 0" },
    { "warmup_steps = 10\nwarmup_epochs = 1\n", 1,
      "3: [schedule]: set warmup_steps or warmup_epochs, not both" },
    { "scale_lr = sqrt\n", 0,
      "2: [schedule] (constant): key 'scale_lr' must be one of: none, linear (got 'sqrt')" },
    { "type = step\nstep_size = 0\n", 0, "3: [schedule] (step): key 'step_size' must be >= 1, got 0" },
    { "type = step\nstep_size = 2\ngamma = fast\n", 0,
      "4: [schedule] (step): key 'gamma' must be a number, got 'fast'" },
    { "type = step\nstep_size = 2\ngamma = -0.5\n", 0,
      "4: [schedule] (step): key 'gamma' must be >= 0, got -0.5" },
    { "type = multistep\n", 0, "1: [schedule] (multistep): missing required key 'milestones'" },
    { "type = multistep\nmilestones = 3, x\n", 0,
      "3: [schedule] (multistep): key 'milestones' must be a comma-separated list of integers" },
    { "type = multistep\nmilestones = 3, 0\n", 0,
      "3: [schedule] (multistep): key 'milestones' values must be >= 1, got 0" },
    { "type = exponential\n", 0, "1: [schedule] (exponential): missing required key 'gamma'" },
    { "type = exponential\ngamma = -1\n", 0,
      "3: [schedule] (exponential): key 'gamma' must be >= 0, got -1" },
    { "type = cosine\nT_max = -1\n", 0, "3: [schedule] (cosine): key 'T_max' must be >= 0, got -1" },
    { "type = cosine\neta_min = -0.1\n", 0,
      "3: [schedule] (cosine): key 'eta_min' must be >= 0, got -0.1" },
    { "type = cosine\nrestarts = maybe\n", 0,
      "3: [schedule] (cosine): key 'restarts' must be true or false" },
    { "type = cosine\nT_mult = 0\nrestarts = true\n", 0,
      "3: [schedule] (cosine): key 'T_mult' must be >= 1, got 0" },
    { "type = cosine\nT_mult = 2\n", 1, "1: [schedule] (cosine): T_mult = 2 needs restarts = true" },
    { "type = reduce_on_plateau\nmonitor = accuracy\n", 0,
      "3: [schedule] (reduce_on_plateau): key 'monitor' must be one of: val_loss, val_acc, train_loss" },
    { "type = reduce_on_plateau\nmode = lowest\n", 0,
      "3: [schedule] (reduce_on_plateau): key 'mode' must be one of: auto, min, max" },
    { "type = reduce_on_plateau\npatience = -2\n", 0,
      "3: [schedule] (reduce_on_plateau): key 'patience' must be >= 0, got -2" },
    { "type = reduce_on_plateau\nfactor = 1.5\n", 1,
      "1: [schedule] (reduce_on_plateau): key 'factor' must be < 1, got 1.5" },
    { "type = reduce_on_plateau\nthreshold = -1\n", 0,
      "3: [schedule] (reduce_on_plateau): key 'threshold' must be >= 0, got -1" },
    { "type = reduce_on_plateau\nthreshold_mode = relative\n", 0,
      "3: [schedule] (reduce_on_plateau): key 'threshold_mode' must be one of: rel, abs" },
    { "type = reduce_on_plateau\ncooldown = 1.5\n", 0,
      "3: [schedule] (reduce_on_plateau): key 'cooldown' must be an integer, got '1.5'" },
    { "type = reduce_on_plateau\nmin_lr = -1e-3\n", 0,
      "3: [schedule] (reduce_on_plateau): key 'min_lr' must be >= 0, got -0.001" },
    { "warmup = 3\n", 0, "2: [schedule] (constant): unknown key 'warmup'" },
};

START_TEST(config_errors)
{
    const bad_case *b = &bad_cases[_i];
    char *err = NULL;
    char *path = schedule_config(b->section, 0.1, 32, 4);
    mltk_config_t *cfg = NULL;
    int rc = mltk_config_load(&cfg, reg, path, &err);
    char *want = tu_fmt("%s:%s", path, b->want);
    if (!b->at_open) {
        ck_assert_msg(rc == MLTK_ERR_CONFIG, "'%s' loaded (rc %d)", b->section, rc);
        TU_ASSERT_CONTAINS(err, want);
    } else {
        ck_assert_msg(rc == MLTK_OK, "%s", err ? err : "?");
        mltk_sched sc;
        rc = mltk_sched_open(&sc, cfg, reg, 0.1, 32, 10, 4, &err);
        ck_assert_int_eq(rc, MLTK_ERR_CONFIG);
        TU_ASSERT_CONTAINS(err, want);
        mltk_sched_close(&sc);
    }
    free(want);
    free(err);
    mltk_config_destroy(cfg);
    free(path);
}
END_TEST

START_TEST(section_typo)
{
    char *err = NULL;
    char *path = tu_write(tmpdir, "typo.ini", "[schedul]\ntype = step\n");
    mltk_config_t *cfg = NULL;
    ck_assert_int_eq(mltk_config_load(&cfg, reg, path, &err), MLTK_ERR_CONFIG);
    char *want = tu_fmt("%s:1: unknown section [schedul]; did you mean [schedule]?", path);
    TU_ASSERT_CONTAINS(err, want);
    free(want);
    free(err);
    free(path);
}
END_TEST

/* ---- training runs ------------------------------------------------------------ */

/* Train `sched` on a Fashion-MNIST subset for 3 epochs of 10 steps; the
 * rates of the JSON lines into lr[3]. */
static void train_lrs(const char *sched, double lr[3], mltk_epoch_stats *last)
{
    char *jsonl = tu_fmt("%s/run.jsonl", tmpdir);
    char *text = tu_fmt("[run]\nseed = 3\nthreads = 2\n"
                        "[train]\nepochs = 3\nbatch_size = 50\n"
                        "[log]\njsonl = %s\n"
                        "[data]\ntype = idx\ntrain_limit = 500\ntest_limit = 100\n"
                        "[layer.flat]\ntype = flatten\n"
                        "[layer.out]\ntype = dense\nunits = 10\n"
                        "[loss]\ntype = cross_entropy\n"
                        "[optimizer]\ntype = sgd\nlr = 0.1\n"
                        "[schedule]\n%s", jsonl, sched);
    char *path = tu_write(tmpdir, "run.ini", text);
    char *err = NULL;
    mltk_config_t *cfg = NULL;
    mltk_session_t *s = NULL;
    mltk_session_opts o = { .quiet = 1 };
    int rc = mltk_config_load(&cfg, reg, path, &err);
    if (!rc)
        rc = mltk_session_create(&s, cfg, reg, &o, &err);
    if (!rc)
        rc = mltk_session_train(s, last, &err);
    ck_assert_msg(rc == MLTK_OK, "%s", err ? err : "?");
    mltk_session_destroy(s);
    mltk_config_destroy(cfg);

    char *log = tu_read(jsonl);
    ck_assert_ptr_nonnull(log);
    const char *p = log;
    for (int e = 0; e < 3; e++) {
        p = strstr(p, "\"lr\": ");
        ck_assert_ptr_nonnull(p);
        p += 6;
        lr[e] = strtod(p, NULL);
    }
    free(log);
    free(text);
    free(path);
    free(jsonl);
}

START_TEST(epoch_reports_last_step_rate)
{
    if (access(FMNIST, R_OK) != 0)
        return;
    double lr[3];
    mltk_epoch_stats st;
    /* steps 0, 1 warm up; epochs at 0.1, 0.05, 0.025 */
    train_lrs("type = step\nstep_size = 1\ngamma = 0.5\nwarmup_steps = 2\n", lr, &st);
    ck_assert(lr[0] == 0.1 && lr[1] == 0.05 && lr[2] == 0.025);
    ck_assert_int_eq(st.epoch, 3);
    ck_assert(st.lr == 0.025);
    /* a warm-up longer than the run: the last step is step 29 of 40 */
    train_lrs("warmup_steps = 40\nwarmup_start_factor = 0.5\n", lr, &st);
    ck_assert_msg(close_rel(lr[0], 0.1 * (0.5 + 0.5 * 9.0 / 40.0), 1e-15), "%.17g", lr[0]);
    ck_assert_msg(close_rel(lr[2], 0.1 * (0.5 + 0.5 * 29.0 / 40.0), 1e-15), "%.17g", lr[2]);
}
END_TEST

START_TEST(plateau_hears_metrics)
{
    if (access(FMNIST, R_OK) != 0)
        return;
    double lr[3];
    mltk_epoch_stats st;
    /* nothing counts as an improvement after the first epoch: the rate
     * drops after epoch 2 */
    train_lrs("type = reduce_on_plateau\nmonitor = train_loss\npatience = 0\n"
              "threshold = 0.99\n", lr, &st);
    ck_assert_msg(lr[0] == 0.1 && lr[1] == 0.1 && close_rel(lr[2], 0.01, 1e-15),
                  "%g %g %g", lr[0], lr[1], lr[2]);
}
END_TEST

/* ---- suite ---------------------------------------------------------------------- */

static Suite *schedule_suite(void)
{
    Suite *s = suite_create("schedule");
    TCase *tc = tcase_create("torch");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, matches_torch, 0, (int)(sizeof sref_cases / sizeof sref_cases[0]));
    tcase_add_test(tc, no_section_is_constant);
    tcase_add_test(tc, default_type_is_constant);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, config_errors, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
    tcase_add_test(tc, section_typo);
    suite_add_tcase(s, tc);

    tc = tcase_create("training");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, epoch_reports_last_step_rate);
    tcase_add_test(tc, plateau_hears_metrics);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(schedule_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (failed)
        return 1;
    if (access(FMNIST, R_OK) != 0) {
        printf("%s is missing: the training runs were skipped\n", FMNIST);
        return 77;
    }
    return 0;
}
