/* check_metrics.c - tests of core/metrics.c.
 *
 * What this is: every metric on small examples worked out by hand (the
 * arithmetic is in the comments), checked where it matters against what
 * scikit-learn's defaults give for the same data (also worked by hand:
 * sklearn is not needed to run this); batching; the `metrics = ...`
 * parser; name/value output; the text report; the confusion CSV written,
 * read back and rejected when malformed.
 * What this is not: tests of the plots drawn from these files
 * (check_plot.c).
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "plot.h"
#include "testutil.h"

#define TOL 1e-12
#define ck_near(a, b) ck_assert_double_eq_tol((a), (b), TOL)

/* ---- the 3-class example ---------------------------------------------------- */
/*
 * 7 rows, 3 classes.  argmax and the rank of the true class (classes with
 * a strictly larger logit):
 *   row  label  logits              argmax  rank
 *    0     0    [2.0, 1.0,  0.0]      0      0
 *    1     0    [3.0, 0.5,  1.0]      0      0
 *    2     0    [1.0, 2.0,  0.5]      1      1   (2.0 > 1.0)
 *    3     1    [0.0, 1.0, -1.0]      1      0
 *    4     1    [0.2, 0.9,  0.1]      1      0
 *    5     2    [1.5, 0.5, -0.5]      0      2   (1.5, 0.5 > -0.5)
 *    6     2    [0.1, 0.3,  0.3]      1      0   (tie: argmax takes the
 *                                                  first, rank counts none)
 * Confusion (rows true, columns predicted):
 *        0  1  2
 *   0 [  2  1  0 ]   support 3
 *   1 [  0  2  0 ]   support 2
 *   2 [  1  1  0 ]   support 2
 *   predicted: 3, 4, 0
 * class 0: tp 2, P = 2/3, R = 2/3, F1 = 2*2/(3+3) = 2/3
 * class 1: tp 2, P = 2/4 = 1/2, R = 2/2 = 1, F1 = 2*2/(2+4) = 2/3
 * class 2: tp 0, never predicted: P = 0 (zero_division=0), R = 0, F1 = 0
 * accuracy = (2+2+0)/7 = 4/7; micro F1 = 4/7
 * macro:    P = (2/3 + 1/2 + 0)/3 = 7/18, R = (2/3 + 1 + 0)/3 = 5/9,
 *           F1 = (2/3 + 2/3 + 0)/3 = 4/9
 * weighted: P = (3*2/3 + 2*1/2 + 2*0)/7 = 3/7, R = (3*2/3 + 2*1 + 0)/7 = 4/7,
 *           F1 = (3*2/3 + 2*2/3 + 0)/7 = (10/3)/7 = 10/21
 * top-k from the ranks {0,0,1,0,0,2,0}: top1 = 5/7 (row 6's tie counts),
 * top2 = 6/7, top3 = 7/7.
 * sklearn (y_true = [0,0,0,1,1,2,2], y_pred = [0,0,1,1,1,0,1]):
 * precision_score(average='macro', zero_division=0) = 7/18, recall 5/9,
 * f1_score macro 4/9, weighted 10/21, micro 4/7, accuracy_score 4/7;
 * top_k_accuracy_score(k=2) = 6/7 (row 5 is the only miss).
 */
static const float ex_logits[7 * 3] = {
    2.0f, 1.0f, 0.0f,
    3.0f, 0.5f, 1.0f,
    1.0f, 2.0f, 0.5f,
    0.0f, 1.0f, -1.0f,
    0.2f, 0.9f, 0.1f,
    1.5f, 0.5f, -0.5f,
    0.1f, 0.3f, 0.3f,
};
static const int32_t ex_labels[7] = { 0, 0, 0, 1, 1, 2, 2 };

static mltk_metrics *example(int top_k)
{
    mltk_metrics *m = NULL;
    char *err = NULL;
    ck_assert_int_eq(mltk_metrics_create(&m, MLTK_METRICS_CLASSIFICATION, 3, top_k, &err),
                     MLTK_OK);
    ck_assert_int_eq(mltk_metrics_add_class(m, ex_logits, ex_labels, 7, &err), MLTK_OK);
    ck_assert_ptr_null(err);
    return m;
}

START_TEST(test_confusion)
{
    mltk_metrics *m = example(2);
    static const int64_t want[9] = { 2, 1, 0, 0, 2, 0, 1, 1, 0 };
    const int64_t *cm = mltk_metrics_confusion(m);
    for (int i = 0; i < 9; i++)
        ck_assert_int_eq(cm[i], want[i]);
    ck_assert_int_eq(mltk_metrics_rows(m), 7);
    mltk_metrics_destroy(m);
}
END_TEST

START_TEST(test_per_class)
{
    mltk_metrics *m = example(2);
    mltk_class_stats c;
    mltk_metrics_class(m, 0, &c);
    ck_assert_int_eq(c.tp, 2);
    ck_assert_int_eq(c.support, 3);
    ck_assert_int_eq(c.predicted, 3);
    ck_near(c.precision, 2.0 / 3);
    ck_near(c.recall, 2.0 / 3);
    ck_near(c.f1, 2.0 / 3);
    mltk_metrics_class(m, 1, &c);
    ck_assert_int_eq(c.tp, 2);
    ck_assert_int_eq(c.support, 2);
    ck_assert_int_eq(c.predicted, 4);
    ck_near(c.precision, 0.5);
    ck_near(c.recall, 1.0);
    ck_near(c.f1, 2.0 / 3);
    /* class 2 is never predicted: precision 0, not NaN */
    mltk_metrics_class(m, 2, &c);
    ck_assert_int_eq(c.tp, 0);
    ck_assert_int_eq(c.support, 2);
    ck_assert_int_eq(c.predicted, 0);
    ck_assert(c.precision == 0.0);
    ck_assert(c.recall == 0.0);
    ck_assert(c.f1 == 0.0);
    /* out of range: zeroed */
    mltk_metrics_class(m, 3, &c);
    ck_assert_int_eq(c.support, 0);
    mltk_metrics_destroy(m);
}
END_TEST

START_TEST(test_summary)
{
    mltk_metrics *m = example(2);
    mltk_metrics_summary s;
    mltk_metrics_summary_get(m, &s);
    ck_assert_int_eq(s.rows, 7);
    ck_near(s.accuracy, 4.0 / 7);
    ck_near(s.f1_micro, 4.0 / 7);
    ck_near(s.precision_macro, 7.0 / 18);
    ck_near(s.recall_macro, 5.0 / 9);
    ck_near(s.f1_macro, 4.0 / 9);
    ck_near(s.precision_weighted, 3.0 / 7);
    ck_near(s.recall_weighted, 4.0 / 7);
    ck_near(s.f1_weighted, 10.0 / 21);
    ck_assert_int_eq(s.top_k, 2);
    ck_near(s.top_k_accuracy, 6.0 / 7);
    ck_assert(s.mse == 0 && s.mae == 0 && s.r2 == 0);
    mltk_metrics_destroy(m);
}
END_TEST

START_TEST(test_top_k)
{
    mltk_metrics *m = example(0);   /* 0: min(5, n) = 3 */
    ck_assert_int_eq(mltk_metrics_top_k(m), 3);
    ck_near(mltk_metrics_top_k_accuracy(m, 1), 5.0 / 7);   /* the tie in row 6 counts */
    ck_near(mltk_metrics_top_k_accuracy(m, 2), 6.0 / 7);
    ck_near(mltk_metrics_top_k_accuracy(m, 3), 1.0);
    ck_near(mltk_metrics_top_k_accuracy(m, 10), 1.0);
    ck_assert(mltk_metrics_top_k_accuracy(m, 0) == 0.0);
    mltk_metrics_destroy(m);
}
END_TEST

/* A fourth class that is neither a label nor predicted (its logit is
 * always lowest) is left out of the macro averages, as sklearn leaves out
 * labels absent from both y_true and y_pred: macro F1 stays 4/9 rather
 * than (2/3 + 2/3 + 0 + 0)/4 = 1/3.  Weighted averages do not change
 * (its support is 0), nor does anything else. */
START_TEST(test_absent_class)
{
    float logits[7 * 4];
    for (int r = 0; r < 7; r++) {
        for (int c = 0; c < 3; c++)
            logits[r * 4 + c] = ex_logits[r * 3 + c];
        logits[r * 4 + 3] = -10.0f;
    }
    mltk_metrics *m = NULL;
    ck_assert_int_eq(mltk_metrics_create(&m, MLTK_METRICS_CLASSIFICATION, 4, 2, NULL), 0);
    ck_assert_int_eq(mltk_metrics_add_class(m, logits, ex_labels, 7, NULL), 0);
    mltk_metrics_summary s;
    mltk_metrics_summary_get(m, &s);
    ck_near(s.f1_macro, 4.0 / 9);
    ck_near(s.precision_macro, 7.0 / 18);
    ck_near(s.recall_macro, 5.0 / 9);
    ck_near(s.f1_weighted, 10.0 / 21);
    ck_near(s.accuracy, 4.0 / 7);
    ck_near(s.top_k_accuracy, 6.0 / 7);
    mltk_metrics_destroy(m);
}
END_TEST

/* A class that is predicted but never a label: precision 0 (tp = 0),
 * recall 0 by zero_division, and it does count in the macro average.
 * labels [0, 0, 1, 1], predictions [0, 2, 1, 1]:
 *   class 0: P 1/1, R 1/2, F1 2/3;  class 1: P 1, R 1, F1 1;
 *   class 2: P 0/1 = 0, R 0 (support 0), F1 0
 *   macro F1 = (2/3 + 1 + 0)/3 = 5/9; weighted F1 = (2*2/3 + 2*1)/4 = 5/6
 *   (sklearn: f1_score([0,0,1,1], [0,2,1,1], average='macro') = 0.5556). */
START_TEST(test_predicted_not_label)
{
    static const float logits[4 * 3] = {
        1, 0, 0,
        0, 0, 1,
        0, 1, 0,
        0, 1, 0,
    };
    static const int32_t labels[4] = { 0, 0, 1, 1 };
    mltk_metrics *m = NULL;
    ck_assert_int_eq(mltk_metrics_create(&m, MLTK_METRICS_CLASSIFICATION, 3, 1, NULL), 0);
    ck_assert_int_eq(mltk_metrics_add_class(m, logits, labels, 4, NULL), 0);
    mltk_class_stats c;
    mltk_metrics_class(m, 2, &c);
    ck_assert_int_eq(c.predicted, 1);
    ck_assert_int_eq(c.support, 0);
    ck_assert(c.precision == 0.0 && c.recall == 0.0 && c.f1 == 0.0);
    mltk_metrics_summary s;
    mltk_metrics_summary_get(m, &s);
    ck_near(s.f1_macro, 5.0 / 9);
    ck_near(s.f1_weighted, 5.0 / 6);
    ck_near(s.accuracy, 0.75);
    mltk_metrics_destroy(m);
}
END_TEST

START_TEST(test_bad_batches)
{
    mltk_metrics *m = example(2);
    char *err = NULL;
    /* row 1's label is out of range: nothing of the batch is counted */
    int32_t labels[2] = { 1, 3 };
    float logits[6] = { 0, 1, 2, 0, 1, 2 };
    ck_assert_int_eq(mltk_metrics_add_class(m, logits, labels, 2, &err), MLTK_ERR_DATA);
    ck_assert_str_eq(err, "metrics: row 1: label 3 is outside [0, 3)");
    free(err);
    err = NULL;
    ck_assert_int_eq(mltk_metrics_rows(m), 7);
    labels[1] = 0;
    logits[4] = NAN;
    ck_assert_int_eq(mltk_metrics_add_class(m, logits, labels, 2, &err), MLTK_ERR_NUMERIC);
    ck_assert_str_eq(err, "metrics: row 1: logit of class 1 is NaN");
    free(err);
    err = NULL;
    ck_assert_int_eq(mltk_metrics_rows(m), 7);
    mltk_metrics_summary s;
    mltk_metrics_summary_get(m, &s);
    ck_near(s.accuracy, 4.0 / 7);
    /* the wrong kind */
    ck_assert_int_eq(mltk_metrics_add_regress(m, logits, logits, 1, &err), MLTK_ERR_INVALID);
    free(err);
    err = NULL;
    mltk_metrics_destroy(m);
    /* bad arguments to create */
    ck_assert_int_eq(mltk_metrics_create(&m, MLTK_METRICS_CLASSIFICATION, 1, 1, &err),
                     MLTK_ERR_INVALID);
    ck_assert_ptr_null(m);
    free(err);
    err = NULL;
    ck_assert_int_eq(mltk_metrics_create(&m, MLTK_METRICS_CLASSIFICATION, 3, 4, &err),
                     MLTK_ERR_INVALID);
    ck_assert_str_eq(err, "metrics: top_k must be in [1, 3] (the number of classes), got 4");
    free(err);
}
END_TEST

START_TEST(test_reset_and_empty)
{
    mltk_metrics *m = example(2);
    mltk_metrics_reset(m);
    ck_assert_int_eq(mltk_metrics_rows(m), 0);
    mltk_metrics_summary s;
    mltk_metrics_summary_get(m, &s);
    ck_assert(s.accuracy == 0 && s.f1_macro == 0 && s.top_k_accuracy == 0);
    for (int i = 0; i < 9; i++)
        ck_assert_int_eq(mltk_metrics_confusion(m)[i], 0);
    /* the same rows again give the same numbers */
    ck_assert_int_eq(mltk_metrics_add_class(m, ex_logits, ex_labels, 7, NULL), 0);
    mltk_metrics_summary_get(m, &s);
    ck_near(s.f1_weighted, 10.0 / 21);
    mltk_metrics_destroy(m);
    mltk_metrics_destroy(NULL);
}
END_TEST

/* ---- regression --------------------------------------------------------------- */
/*
 * 4 rows, 2 outputs.
 * output 0: target [1, 2, 3, 4], pred [1.5, 2, 2, 5]
 *   t - p = [-0.5, 0, 1, -1]: SS_res = 0.25 + 0 + 1 + 1 = 2.25, sum|d| = 2.5
 *   mean t = 2.5: SS_tot = 2.25 + 0.25 + 0.25 + 2.25 = 5
 *   MSE 2.25/4 = 0.5625, MAE 2.5/4 = 0.625, R^2 = 1 - 2.25/5 = 0.55
 * output 1: target [2, 4, 6, 8], pred [3, 4, 5, 8]
 *   t - p = [-1, 0, 1, 0]: SS_res = 2, sum|d| = 2
 *   mean t = 5: SS_tot = 9 + 1 + 1 + 9 = 20
 *   MSE 0.5, MAE 0.5, R^2 = 1 - 2/20 = 0.9
 * overall: MSE (2.25 + 2)/8 = 0.53125 (= mean of 0.5625 and 0.5),
 * MAE (2.5 + 2)/8 = 0.5625, R^2 (0.55 + 0.9)/2 = 0.725
 * sklearn: mean_squared_error = 0.53125, mean_absolute_error = 0.5625,
 * r2_score (multioutput='uniform_average') = 0.725.
 */
static const float rg_target[8] = { 1, 2, 2, 4, 3, 6, 4, 8 };
static const float rg_pred[8] = { 1.5f, 3, 2, 4, 2, 5, 5, 8 };

START_TEST(test_regression)
{
    mltk_metrics *m = NULL;
    char *err = NULL;
    ck_assert_int_eq(mltk_metrics_create(&m, MLTK_METRICS_REGRESSION, 2, 0, &err), 0);
    ck_assert_int_eq(mltk_metrics_add_regress(m, rg_pred, rg_target, 4, &err), 0);
    ck_near(mltk_metrics_output_mse(m, 0), 0.5625);
    ck_near(mltk_metrics_output_mae(m, 0), 0.625);
    ck_near(mltk_metrics_output_r2(m, 0), 0.55);
    ck_near(mltk_metrics_output_mse(m, 1), 0.5);
    ck_near(mltk_metrics_output_mae(m, 1), 0.5);
    ck_near(mltk_metrics_output_r2(m, 1), 0.9);
    mltk_metrics_summary s;
    mltk_metrics_summary_get(m, &s);
    ck_assert_int_eq(s.rows, 4);
    ck_near(s.mse, 0.53125);
    ck_near(s.mae, 0.5625);
    ck_near(s.r2, 0.725);
    ck_assert(s.accuracy == 0);
    ck_assert_ptr_null(mltk_metrics_confusion(m));
    /* non-finite values are refused whole */
    float bad[2] = { 1, INFINITY };
    ck_assert_int_eq(mltk_metrics_add_regress(m, rg_pred, bad, 1, &err), MLTK_ERR_NUMERIC);
    ck_assert_str_eq(err, "metrics: row 0, output 1: target is infinite");
    free(err);
    ck_assert_int_eq(mltk_metrics_rows(m), 4);
    mltk_metrics_destroy(m);
}
END_TEST

/* R^2 of a constant target, as sklearn's force_finite: 1.0 when predicted
 * exactly, else 0.0.  Output 0: target [3, 3, 3], pred [3, 3, 3] -> 1.0;
 * output 1: target [3, 3, 3], pred [3, 3, 4] -> 0.0 (SS_tot = 0, SS_res
 * = 1).  Mean over the two outputs: 0.5.  One row: NaN. */
START_TEST(test_r2_constant)
{
    static const float t[6] = { 3, 3, 3, 3, 3, 3 };
    static const float p[6] = { 3, 3, 3, 3, 3, 4 };
    mltk_metrics *m = NULL;
    ck_assert_int_eq(mltk_metrics_create(&m, MLTK_METRICS_REGRESSION, 2, 0, NULL), 0);
    ck_assert_int_eq(mltk_metrics_add_regress(m, p, t, 1, NULL), 0);
    ck_assert(isnan(mltk_metrics_output_r2(m, 0)));
    ck_assert_int_eq(mltk_metrics_add_regress(m, p + 2, t + 2, 2, NULL), 0);
    ck_assert(mltk_metrics_output_r2(m, 0) == 1.0);
    ck_assert(mltk_metrics_output_r2(m, 1) == 0.0);
    mltk_metrics_summary s;
    mltk_metrics_summary_get(m, &s);
    ck_near(s.r2, 0.5);
    ck_near(s.mse, 1.0 / 6);   /* one error of 1 in 6 values */
    mltk_metrics_destroy(m);
}
END_TEST

/* ---- batching ------------------------------------------------------------------ */

/* The same rows added in pieces of 1, 7, 300 and the rest give exactly
 * (bit for bit) what one batch gives. */
START_TEST(test_batches_classification)
{
    enum { N = 1000, C = 10 };
    static float logits[N * C];
    static int32_t labels[N];
    tu_rng_seed(7);
    for (int r = 0; r < N; r++) {
        labels[r] = (int32_t)((tu_urand() + 1) * 0.5 * C) % C;
        for (int c = 0; c < C; c++)   /* a weak signal, and some ties */
            logits[r * C + c] = (float)(round(tu_urand() * 4) + (c == labels[r] ? 1.5 : 0));
    }
    mltk_metrics *one = NULL, *many = NULL;
    ck_assert_int_eq(mltk_metrics_create(&one, MLTK_METRICS_CLASSIFICATION, C, 3, NULL), 0);
    ck_assert_int_eq(mltk_metrics_create(&many, MLTK_METRICS_CLASSIFICATION, C, 3, NULL), 0);
    ck_assert_int_eq(mltk_metrics_add_class(one, logits, labels, N, NULL), 0);
    static const int pieces[] = { 1, 7, 300, N - 308 };
    int at = 0;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(mltk_metrics_add_class(many, logits + at * C, labels + at, pieces[i],
                                                NULL), 0);
        at += pieces[i];
    }
    ck_assert_int_eq(at, N);
    ck_assert_int_eq(mltk_metrics_add_class(many, logits, labels, 0, NULL), 0);
    ck_assert_int_eq(memcmp(mltk_metrics_confusion(one), mltk_metrics_confusion(many),
                            C * C * sizeof(int64_t)), 0);
    mltk_metrics_summary a, b;
    mltk_metrics_summary_get(one, &a);
    mltk_metrics_summary_get(many, &b);
    ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
    /* and the sums are consistent: accuracy is the trace over N */
    int64_t trace = 0;
    for (int c = 0; c < C; c++)
        trace += mltk_metrics_confusion(one)[c * C + c];
    ck_near(a.accuracy, (double)trace / N);
    ck_assert(a.top_k_accuracy >= a.accuracy);
    mltk_metrics_destroy(one);
    mltk_metrics_destroy(many);
}
END_TEST

START_TEST(test_batches_regression)
{
    enum { N = 500, D = 3 };
    static float p[N * D], t[N * D];
    tu_rng_seed(11);
    for (int i = 0; i < N * D; i++) {
        t[i] = (float)(tu_urand() * 10 + 100);   /* an offset mean: Welford's case */
        p[i] = t[i] + (float)(tu_urand() * 0.5);
    }
    mltk_metrics *one = NULL, *many = NULL;
    ck_assert_int_eq(mltk_metrics_create(&one, MLTK_METRICS_REGRESSION, D, 0, NULL), 0);
    ck_assert_int_eq(mltk_metrics_create(&many, MLTK_METRICS_REGRESSION, D, 0, NULL), 0);
    ck_assert_int_eq(mltk_metrics_add_regress(one, p, t, N, NULL), 0);
    for (int at = 0; at < N; at += 64) {
        int rows = N - at < 64 ? N - at : 64;
        ck_assert_int_eq(mltk_metrics_add_regress(many, p + at * D, t + at * D, rows, NULL), 0);
    }
    mltk_metrics_summary a, b;
    mltk_metrics_summary_get(one, &a);
    mltk_metrics_summary_get(many, &b);
    ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
    /* against a two-pass computation in long double */
    double r2 = 0;
    for (int j = 0; j < D; j++) {
        long double mean = 0, ss_tot = 0, ss_res = 0;
        for (int r = 0; r < N; r++)
            mean += t[r * D + j];
        mean /= N;
        for (int r = 0; r < N; r++) {
            long double d = (long double)t[r * D + j] - mean;
            long double e = (long double)t[r * D + j] - p[r * D + j];
            ss_tot += d * d;
            ss_res += e * e;
        }
        r2 += (double)(1 - ss_res / ss_tot);
    }
    ck_assert_double_eq_tol(a.r2, r2 / D, 1e-10);
    mltk_metrics_destroy(one);
    mltk_metrics_destroy(many);
}
END_TEST

/* ---- the metrics list ----------------------------------------------------------- */

START_TEST(test_spec_parse)
{
    mltk_metrics_spec sp;
    char *err = NULL;
    ck_assert_int_eq(mltk_metrics_spec_parse(&sp, "accuracy, top5, f1_macro, f1_weighted, "
                                                  "precision, recall, confusion", NULL, &err), 0);
    ck_assert_uint_eq(sp.flags, MLTK_METRIC_ACCURACY | MLTK_METRIC_TOP_K | MLTK_METRIC_F1_MACRO |
                                    MLTK_METRIC_F1_WEIGHTED | MLTK_METRIC_PRECISION |
                                    MLTK_METRIC_RECALL | MLTK_METRIC_CONFUSION);
    ck_assert_int_eq(sp.n_k, 1);
    ck_assert_int_eq(sp.top_k[0], 5);
    /* blanks as separators, repeats, ks sorted */
    ck_assert_int_eq(mltk_metrics_spec_parse(&sp, " top5 top1,,top5\tmse mae r2 ", NULL, &err), 0);
    ck_assert_uint_eq(sp.flags, MLTK_METRIC_TOP_K | MLTK_METRIC_MSE | MLTK_METRIC_MAE |
                                    MLTK_METRIC_R2);
    ck_assert_int_eq(sp.n_k, 2);
    ck_assert_int_eq(sp.top_k[0], 1);
    ck_assert_int_eq(sp.top_k[1], 5);
    ck_assert_int_eq(mltk_metrics_spec_parse(&sp, "", NULL, &err), 0);
    ck_assert_uint_eq(sp.flags, 0);
    ck_assert_ptr_null(err);

    ck_assert_int_eq(mltk_metrics_spec_parse(&sp, "accuracy, f1macro", "train.ini:14: metrics",
                                             &err), MLTK_ERR_CONFIG);
    ck_assert_str_eq(err, "train.ini:14: metrics: unknown metric 'f1macro'; did you mean "
                          "'f1_macro'? (valid: accuracy, topK (e.g. top5), f1_macro, "
                          "f1_weighted, f1_micro, precision, recall, confusion, mse, mae, r2)");
    free(err);
    err = NULL;
    ck_assert_int_eq(mltk_metrics_spec_parse(&sp, "logloss", NULL, &err), MLTK_ERR_CONFIG);
    TU_ASSERT_CONTAINS(err, "unknown metric 'logloss' (valid: accuracy,");
    free(err);
    err = NULL;
    ck_assert_int_eq(mltk_metrics_spec_parse(&sp, "top0", "x.ini:2: metrics", &err),
                     MLTK_ERR_CONFIG);
    ck_assert_str_eq(err, "x.ini:2: metrics: 'top0': K in topK must be a whole number from 1 "
                          "to 1000000");
    free(err);
    err = NULL;
    ck_assert_int_eq(mltk_metrics_spec_parse(&sp, "topx", NULL, &err), MLTK_ERR_CONFIG);
    TU_ASSERT_CONTAINS(err, "unknown metric 'topx'");
    free(err);
}
END_TEST

START_TEST(test_spec_check)
{
    mltk_metrics_spec sp;
    char *err = NULL;
    ck_assert_int_eq(mltk_metrics_spec_parse(&sp, "accuracy, top5, mse", NULL, NULL), 0);
    ck_assert_int_eq(mltk_metrics_spec_check(&sp, MLTK_METRICS_CLASSIFICATION, 10, "t.ini:3",
                                             &err), MLTK_ERR_CONFIG);
    TU_ASSERT_CONTAINS(err, "t.ini:3: mse, mae and r2 need a regression target");
    free(err);
    err = NULL;
    ck_assert_int_eq(mltk_metrics_spec_check(&sp, MLTK_METRICS_REGRESSION, 1, NULL, &err),
                     MLTK_ERR_CONFIG);
    TU_ASSERT_CONTAINS(err, "need a classifier");
    free(err);
    err = NULL;
    ck_assert_int_eq(mltk_metrics_spec_parse(&sp, "accuracy, top5", NULL, NULL), 0);
    ck_assert_int_eq(mltk_metrics_spec_check(&sp, MLTK_METRICS_CLASSIFICATION, 10, NULL, &err), 0);
    ck_assert_int_eq(mltk_metrics_spec_check(&sp, MLTK_METRICS_CLASSIFICATION, 3, "t.ini:3",
                                             &err), MLTK_ERR_CONFIG);
    ck_assert_str_eq(err, "t.ini:3: top5: there are only 3 classes");
    free(err);

    mltk_metrics_spec_default(&sp, MLTK_METRICS_CLASSIFICATION, 10);
    ck_assert_uint_eq(sp.flags, MLTK_METRIC_ACCURACY | MLTK_METRIC_TOP_K);
    ck_assert_int_eq(sp.top_k[0], 5);
    mltk_metrics_spec_default(&sp, MLTK_METRICS_CLASSIFICATION, 3);
    ck_assert_uint_eq(sp.flags, MLTK_METRIC_ACCURACY);
    mltk_metrics_spec_default(&sp, MLTK_METRICS_REGRESSION, 1);
    ck_assert_uint_eq(sp.flags, MLTK_METRIC_MSE);
}
END_TEST

START_TEST(test_values)
{
    mltk_metrics *m = example(2);
    mltk_metrics_spec sp;
    ck_assert_int_eq(mltk_metrics_spec_parse(&sp, "recall, top2, top1, accuracy, f1_macro, "
                                                  "f1_weighted, f1_micro, precision, confusion, "
                                                  "mse", NULL, NULL), 0);
    mltk_metric_value v[MLTK_METRICS_MAX_VALUES];
    int n = -1;
    char *err = NULL;
    /* mse does not apply to a classifier and confusion has no scalar */
    ck_assert_int_eq(mltk_metrics_values(v, MLTK_METRICS_MAX_VALUES, &n, m, &sp, "val", &err), 0);
    ck_assert_int_eq(n, 8);
    static const char *const names[8] = { "val_acc", "val_top1", "val_top2", "val_f1_macro",
                                           "val_f1_weighted", "val_f1_micro", "val_precision",
                                           "val_recall" };
    const double want[8] = { 4.0 / 7, 5.0 / 7, 6.0 / 7, 4.0 / 9, 10.0 / 21, 4.0 / 7, 7.0 / 18,
                             5.0 / 9 };
    for (int i = 0; i < 8; i++) {
        ck_assert_str_eq(v[i].name, names[i]);
        ck_near(v[i].value, want[i]);
    }
    ck_assert_int_eq(mltk_metrics_values(v, MLTK_METRICS_MAX_VALUES, &n, m, &sp, NULL, &err), 0);
    ck_assert_str_eq(v[0].name, "acc");
    /* too little room */
    ck_assert_int_eq(mltk_metrics_values(v, 3, &n, m, &sp, "val", &err), MLTK_ERR_INVALID);
    ck_assert_int_eq(n, 3);
    free(err);
    mltk_metrics_destroy(m);
}
END_TEST

/* ---- the text report -------------------------------------------------------------- */

static char *report(const mltk_metrics *m, const char *const *names)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(mltk_metrics_print(f, m, names), 0);
    fclose(f);
    return buf;
}

START_TEST(test_print_classes)
{
    mltk_metrics *m = example(2);
    static const char *const names[3] = { "cat", "dog", "a_very_long_class_name" };
    char *out = report(m, names);
    ck_assert_str_eq(out,
        "confusion matrix (rows: true class, columns: predicted class)\n"
        "                               cat               dog  a_very_long_cla~\n"
        "             cat                 2                 1                 0\n"
        "             dog                 0                 2                 0\n"
        "a_very_long_cla~                 1                 1                 0\n"
        "\n"
        "           class  precision     recall         f1    support\n"
        "             cat     0.6667     0.6667     0.6667          3\n"
        "             dog     0.5000     1.0000     0.6667          2\n"
        "a_very_long_cla~     0.0000     0.0000     0.0000          2\n"
        "\n"
        "        accuracy                           0.5714          7\n"
        "  top-2 accuracy                           0.8571          7\n"
        "       macro avg     0.3889     0.5556     0.4444          7\n"
        "    weighted avg     0.4286     0.5714     0.4762          7\n");
    free(out);
    out = report(m, NULL);
    TU_ASSERT_CONTAINS(out, "      0  1  2\n   0  2  1  0\n   1  0  2  0\n   2  1  1  0\n");
    free(out);
    mltk_metrics_destroy(m);
}
END_TEST

START_TEST(test_print_regression)
{
    mltk_metrics *m = NULL;
    ck_assert_int_eq(mltk_metrics_create(&m, MLTK_METRICS_REGRESSION, 2, 0, NULL), 0);
    ck_assert_int_eq(mltk_metrics_add_regress(m, rg_pred, rg_target, 4, NULL), 0);
    char *out = report(m, NULL);
    ck_assert_str_eq(out,
        "  output           mse           mae         r2\n"
        "       0        0.5625         0.625     0.5500\n"
        "       1           0.5           0.5     0.9000\n"
        "    mean       0.53125        0.5625     0.7250\n"
        "(4 rows)\n");
    free(out);
    mltk_metrics_destroy(m);
}
END_TEST

/* ---- the confusion CSV ------------------------------------------------------------- */

static int count_tmp_files(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

START_TEST(test_csv_roundtrip)
{
    mltk_metrics *m = example(2);
    char *dir = tu_tmpdir();
    char *path = tu_fmt("%s/confusion.csv", dir);
    char *err = NULL;
    static const char *const names[3] = { "cat", "dog, big", "say \"hi\"" };
    free(tu_write(NULL, path, "old contents\n"));
    ck_assert_int_eq(mltk_metrics_write_confusion_csv(path, m, names, &err), 0);
    ck_assert_ptr_null(err);
    char *text = tu_read(path);
    ck_assert_str_eq(text, "true\\predicted,cat,\"dog, big\",\"say \"\"hi\"\"\"\n"
                           "cat,2,1,0\n"
                           "\"dog, big\",0,2,0\n"
                           "\"say \"\"hi\"\"\",1,1,0\n");
    free(text);
    ck_assert_int_eq(count_tmp_files(dir), 0);

    mltk_confusion c;
    ck_assert_int_eq(mltk_confusion_read(&c, path, &err), 0);
    ck_assert_int_eq(c.n, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(c.names[i], names[i]);
        ck_assert_str_eq(c.row_names[i], names[i]);
    }
    for (int i = 0; i < 9; i++)
        ck_assert_int_eq(c.count[i], mltk_metrics_confusion(m)[i]);
    mltk_confusion_free(&c);

    /* without names: numbered classes */
    ck_assert_int_eq(mltk_metrics_write_confusion_csv(path, m, NULL, &err), 0);
    text = tu_read(path);
    ck_assert_str_eq(text, "true\\predicted,0,1,2\n0,2,1,0\n1,0,2,0\n2,1,1,0\n");
    free(text);

    /* a directory that does not exist */
    char *bad = tu_fmt("%s/no/such/dir/c.csv", dir);
    ck_assert_int_eq(mltk_metrics_write_confusion_csv(bad, m, NULL, &err), MLTK_ERR_IO);
    TU_ASSERT_CONTAINS(err, bad);
    free(err);
    free(bad);
    free(path);
    tu_rmtree(dir);
    free(dir);
    mltk_metrics_destroy(m);
}
END_TEST

static void expect_csv_error(const char *text, int status, const char *msg)
{
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "c.csv", text);
    mltk_confusion c;
    char *err = NULL;
    ck_assert_int_eq(mltk_confusion_read(&c, path, &err), status);
    char *want = tu_fmt("%s%s", path, msg);
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(c.count);
    free(want);
    free(err);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

START_TEST(test_csv_errors)
{
    expect_csv_error("t,a,b\na,1,2\nb,3\n", MLTK_ERR_DATA,
                     ":3: 2 fields, expected 3 (a name and 2 counts)");
    expect_csv_error("t,a,b\na,1,2\nb,3,x\n", MLTK_ERR_DATA,
                     ":3: field 3: 'x' is not a non-negative whole number");
    expect_csv_error("t,a,b\na,1,-2\nb,3,4\n", MLTK_ERR_DATA,
                     ":2: field 3: '-2' is not a non-negative whole number");
    expect_csv_error("t,a,b\na,1,2\n", MLTK_ERR_DATA, ":3: 1 rows, but the header names 2 classes");
    expect_csv_error("t,a,b\na,1,2\nb,3,4\nc,5,6\n", MLTK_ERR_DATA,
                     ":4: more rows than the 2 classes of the header");
    expect_csv_error("t,\"a,b\n", MLTK_ERR_DATA, ":1: unterminated quoted field");
    expect_csv_error("", MLTK_ERR_DATA, ": empty file; expected a confusion matrix");
    /* CRLF line ends and a blank last line are fine */
    char *dir = tu_tmpdir();
    char *path = tu_write(dir, "c.csv", "t,a,b\r\na,1,2\r\nb,3,4\r\n\r\n");
    mltk_confusion c;
    ck_assert_int_eq(mltk_confusion_read(&c, path, NULL), 0);
    ck_assert_int_eq(c.n, 2);
    ck_assert_str_eq(c.names[1], "b");
    ck_assert_int_eq(c.count[3], 4);
    mltk_confusion_free(&c);
    free(path);
    char *none = tu_fmt("%s/none.csv", dir);
    char *err = NULL;
    ck_assert_int_eq(mltk_confusion_read(&c, none, &err), MLTK_ERR_IO);
    TU_ASSERT_CONTAINS(err, none);
    free(err);
    free(none);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- the suite ------------------------------------------------------------------------ */

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *t = tcase_create("classification");
    tcase_add_test(t, test_confusion);
    tcase_add_test(t, test_per_class);
    tcase_add_test(t, test_summary);
    tcase_add_test(t, test_top_k);
    tcase_add_test(t, test_absent_class);
    tcase_add_test(t, test_predicted_not_label);
    tcase_add_test(t, test_bad_batches);
    tcase_add_test(t, test_reset_and_empty);
    suite_add_tcase(s, t);

    t = tcase_create("regression");
    tcase_add_test(t, test_regression);
    tcase_add_test(t, test_r2_constant);
    suite_add_tcase(s, t);

    t = tcase_create("batches");
    tcase_add_test(t, test_batches_classification);
    tcase_add_test(t, test_batches_regression);
    suite_add_tcase(s, t);

    t = tcase_create("spec");
    tcase_add_test(t, test_spec_parse);
    tcase_add_test(t, test_spec_check);
    tcase_add_test(t, test_values);
    suite_add_tcase(s, t);

    t = tcase_create("output");
    tcase_add_test(t, test_print_classes);
    tcase_add_test(t, test_print_regression);
    tcase_add_test(t, test_csv_roundtrip);
    tcase_add_test(t, test_csv_errors);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(metrics_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
