/* test_stats.c - unit tests of common/stats.c against reference values from
 * R 4.2.2 (stats::wilcox.test, lm, quantile, acf, ks.test) and forecast
 * 8.20 (dm.test), produced by tests/reference/stats_reference.R, which
 * builds the same data sets; plus closed-form values worked out by hand
 * (PSI on small samples, exact signed-rank tails, effective n). Pure
 * functions, no servers. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include <gsl/gsl_errno.h>

#include "../../common/error.h"
#include "../../common/stats.h"

static void setup(void)
{
    gsl_set_error_handler_off();
}

TestSuite(stats, .init = setup);

/* |got - want| <= rel * |want| (or <= rel when want is 0). */
#define assert_rel(got, want, rel)                                                                 \
    do {                                                                                           \
        double g_ = (got), w_ = (want);                                                            \
        double tol_ = (rel) * (w_ == 0.0 ? 1.0 : fabs(w_));                                        \
        cr_assert(fabs(g_ - w_) <= tol_, "%s = %.17g, want %.17g (rel %g)", #got, g_, w_,          \
                  (double)(rel));                                                                  \
    } while (0)

/* ---- Wilcoxon signed-rank ---------------------------------------------- */

/* ?wilcox.test's example (depression scores): V = 40; R's exact p is
 * 0.01953 for alternative "greater", so 0.0390625 two-sided. */
Test(stats, wilcoxon_r_help_example_exact)
{
    const double x[] = {1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30};
    const double y[] = {0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29};
    struct stats_paired r;
    char err[128] = "";
    cr_assert_eq(stats_wilcoxon_signed_rank(x, y, 9, &r, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(r.n_used, 9);
    cr_assert_eq(r.statistic, 40.0);
    assert_rel(r.p_value, 0.0390625, 1e-12);
    assert_rel(r.median_diff, 0.48999999999999999, 1e-12);
    assert_rel(r.mean_diff, 0.43188888888888888, 1e-12);
    /* Swapping the samples mirrors V (45 - 40) and keeps p. */
    cr_assert_eq(stats_wilcoxon_signed_rank(y, x, 9, &r, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(r.statistic, 5.0);
    assert_rel(r.p_value, 0.0390625, 1e-12);
}

/* NaN or infinite values drop their pair: the example plus two bad pairs
 * gives the example's result. */
Test(stats, wilcoxon_skips_non_finite_pairs)
{
    const double x[] = {1.83, NAN, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30, 4.0};
    const double y[] = {0.878, 1.0, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29, INFINITY};
    struct stats_paired r;
    char err[128] = "";
    cr_assert_eq(stats_wilcoxon_signed_rank(x, y, 11, &r, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(r.n_used, 9);
    cr_assert_eq(r.statistic, 40.0);
    assert_rel(r.p_value, 0.0390625, 1e-12);
}

/* Zeros without ties: the zeros are dropped and the exact test runs on the
 * 7 others (R: wilcox.test(d[d != 0], exact = TRUE); R's paired call
 * would use the normal approximation, 0.2719, because of the zeros). The
 * median and mean include the zeros. */
Test(stats, wilcoxon_zeros_dropped_exact)
{
    const double a[] = {1.5, 2.25, 3, 4.75, 0.5, 6, 2, 7.125, 3.5, 5};
    const double b[] = {1.5, 1, 3.5, 2.5, 0.5, 2.875, 2, 1, 3.25, 8};
    struct stats_paired r;
    char err[128] = "";
    cr_assert_eq(stats_wilcoxon_signed_rank(a, b, 10, &r, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(r.n_used, 7);
    cr_assert_eq(r.statistic, 21.0);
    assert_rel(r.p_value, 0.29687500000000006, 1e-12);
    assert_rel(r.median_diff, 0.125, 1e-15);
    assert_rel(r.mean_diff, 0.95, 1e-14);
}

/* Ties and zeros (integer data): normal approximation with the tie and
 * continuity corrections, as R. */
Test(stats, wilcoxon_ties_and_zeros_normal)
{
    const double a[] = {5, 3, 7, 2, 8, 4, 6, 9, 1, 3, 10, 6};
    const double b[] = {3, 3, 4, 4, 5, 4, 2, 5, 3, 1, 4, 7};
    struct stats_paired r;
    char err[128] = "";
    cr_assert_eq(stats_wilcoxon_signed_rank(a, b, 12, &r, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(r.n_used, 10);
    cr_assert_eq(r.statistic, 47.0);
    assert_rel(r.p_value, 0.050946647944761822, 1e-9);
    cr_assert_eq(r.median_diff, 2.0);
}

/* 60 untied differences: normal approximation (n >= 50). */
Test(stats, wilcoxon_large_n_normal)
{
    double a[60], b[60];
    for (int i = 1; i <= 60; i++) {
        a[i - 1] = sin(1.3 * i) + 0.15;
        b[i - 1] = cos(0.9 * i);
    }
    struct stats_paired r;
    char err[128] = "";
    cr_assert_eq(stats_wilcoxon_signed_rank(a, b, 60, &r, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(r.n_used, 60);
    cr_assert_eq(r.statistic, 1125.0);
    assert_rel(r.p_value, 0.1230114381747857, 1e-9);
}

/* Exact at n = 20 and at n = 49, the largest exact size. */
Test(stats, wilcoxon_exact_n20_and_n49)
{
    double a[49], b[49];
    struct stats_paired r;
    char err[128] = "";
    for (int i = 1; i <= 20; i++) {
        a[i - 1] = sin(1.3 * i) + 0.4;
        b[i - 1] = cos(0.9 * i);
    }
    cr_assert_eq(stats_wilcoxon_signed_rank(a, b, 20, &r, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(r.statistic, 162.0);
    assert_rel(r.p_value, 0.03276824951171875, 1e-12);
    for (int i = 1; i <= 49; i++) {
        a[i - 1] = sin(1.3 * i) + 0.1;
        b[i - 1] = cos(0.9 * i);
    }
    cr_assert_eq(stats_wilcoxon_signed_rank(a, b, 49, &r, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(r.n_used, 49);
    cr_assert_eq(r.statistic, 682.0);
    assert_rel(r.p_value, 0.49583814624576311, 1e-10);
}

/* All 10 differences positive: V = 55 and the exact p is 2 / 2^10; a
 * single difference gives p = 1. */
Test(stats, wilcoxon_exact_extremes)
{
    const double a[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    const double z[10] = {0};
    struct stats_paired r;
    char err[128] = "";
    cr_assert_eq(stats_wilcoxon_signed_rank(a, z, 10, &r, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(r.statistic, 55.0);
    assert_rel(r.p_value, 0.001953125, 1e-14);
    cr_assert_eq(stats_wilcoxon_signed_rank(a, z, 1, &r, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(r.n_used, 1);
    cr_assert_eq(r.statistic, 1.0);
    cr_assert_eq(r.p_value, 1.0);
}

Test(stats, wilcoxon_errors)
{
    const double a[] = {1, 2, 3};
    const double nan3[] = {NAN, NAN, NAN};
    struct stats_paired r;
    char err[128] = "";
    cr_assert_eq(stats_wilcoxon_signed_rank(a, a, 3, &r, err, sizeof err), ENMS_EINVAL);
    cr_assert(strstr(err, "non-zero") != NULL, "%s", err);
    err[0] = '\0';
    cr_assert_eq(stats_wilcoxon_signed_rank(a, nan3, 3, &r, err, sizeof err), ENMS_EINVAL);
    cr_assert_neq(err[0], '\0');
    cr_assert_eq(stats_wilcoxon_signed_rank(a, a, 0, &r, err, sizeof err), ENMS_EINVAL);
    cr_assert_eq(stats_wilcoxon_signed_rank(NULL, a, 3, &r, err, sizeof err), ENMS_EINVAL);
}

/* ---- Diebold-Mariano --------------------------------------------------- */

static void dm_losses(double *la, double *lb)
{
    for (int i = 1; i <= 40; i++) {
        double s = 1.2 * sin(0.2 * i), c = cos(0.15 * i);
        la[i - 1] = s * s + 0.1;
        lb[i - 1] = c * c + 0.3;
    }
}

Test(stats, dm_h1_and_h4)
{
    double la[40], lb[40];
    dm_losses(la, lb);
    struct stats_paired r;
    char err[128] = "";
    cr_assert_eq(stats_diebold_mariano(la, lb, 40, 1, &r, err, sizeof err), ENMS_OK, "%s", err);
    assert_rel(r.statistic, 0.84081329425238538, 1e-10);
    assert_rel(r.p_value, 0.40557829285167535, 1e-9);
    assert_rel(r.mean_diff, 0.073566566754638074, 1e-12);
    assert_rel(r.median_diff, 0.13117574962698414, 1e-12);
    cr_assert_eq(r.n_used, 40);
    cr_assert_eq(stats_diebold_mariano(la, lb, 40, 4, &r, err, sizeof err), ENMS_OK, "%s", err);
    assert_rel(r.statistic, 0.36275927530840812, 1e-10);
    assert_rel(r.p_value, 0.71874338001066818, 1e-9);
    /* Swapping the forecasts flips the sign, not the p-value. */
    cr_assert_eq(stats_diebold_mariano(lb, la, 40, 4, &r, err, sizeof err), ENMS_OK, "%s", err);
    assert_rel(r.statistic, -0.36275927530840812, 1e-10);
    assert_rel(r.p_value, 0.71874338001066818, 1e-9);
    cr_assert_lt(r.mean_diff, 0.0);
}

/* Squared errors: dm.test(e1, e2, h = 2, power = 2). */
Test(stats, dm_squared_errors_h2)
{
    double la[40], lb[40];
    for (int i = 1; i <= 40; i++) {
        double e1 = sin(0.3 * i) + 0.2, e2 = 0.8 * cos(0.45 * i);
        la[i - 1] = e1 * e1;
        lb[i - 1] = e2 * e2;
    }
    struct stats_paired r;
    char err[128] = "";
    cr_assert_eq(stats_diebold_mariano(la, lb, 40, 2, &r, err, sizeof err), ENMS_OK, "%s", err);
    assert_rel(r.statistic, 1.9971201082864485, 1e-10);
    assert_rel(r.p_value, 0.052823817676943864, 1e-9);
}

/* Alternating differences make the h = 2 variance negative; dm.test then
 * proceeds with h = 1, and so do we. */
Test(stats, dm_negative_variance_falls_back_to_h1)
{
    double la[30], lb[30];
    for (int i = 1; i <= 30; i++) {
        la[i - 1] = 1 + 0.5 * (i % 2 ? -1.0 : 1.0) + 0.01 * i;
        lb[i - 1] = 1;
    }
    struct stats_paired r;
    char err[128] = "";
    cr_assert_eq(stats_diebold_mariano(la, lb, 30, 2, &r, err, sizeof err), ENMS_OK, "%s", err);
    assert_rel(r.statistic, 1.629194506153455, 1e-10);
    assert_rel(r.p_value, 0.1140881500420747, 1e-9);
}

Test(stats, dm_errors)
{
    double la[40], lb[40];
    dm_losses(la, lb);
    struct stats_paired r;
    char err[128] = "";
    cr_assert_eq(stats_diebold_mariano(la, lb, 2, 1, &r, err, sizeof err), ENMS_EINVAL);
    cr_assert(strstr(err, "at least 3") != NULL, "%s", err);
    cr_assert_eq(stats_diebold_mariano(la, lb, 40, 0, &r, err, sizeof err), ENMS_EINVAL);
    cr_assert_eq(stats_diebold_mariano(la, lb, 40, 41, &r, err, sizeof err), ENMS_EINVAL);
    /* h = n = 40: the HLN factor n + 1 - 2h + h(h - 1)/n is 41 - 80 + 39
     * = 0, so the horizon is too long for the series. */
    cr_assert_eq(stats_diebold_mariano(la, lb, 40, 40, &r, err, sizeof err), ENMS_EINVAL);
    /* Equal losses: zero variance. */
    cr_assert_eq(stats_diebold_mariano(la, la, 40, 1, &r, err, sizeof err), ENMS_EINVAL);
    cr_assert_eq(stats_diebold_mariano(la, la, 40, 3, &r, err, sizeof err), ENMS_EINVAL);
    /* A NaN loss is refused, not skipped: the series is paired in time. */
    la[7] = NAN;
    err[0] = '\0';
    cr_assert_eq(stats_diebold_mariano(la, lb, 40, 1, &r, err, sizeof err), ENMS_EINVAL);
    cr_assert(strstr(err, "finite") != NULL, "%s", err);
}

/* ---- Drift: KS, PSI, mean shift ----------------------------------------- */

static void drift_samples(double *ref, double *rec)
{
    for (int i = 1; i <= 150; i++)
        ref[i - 1] = 2 * sin(0.37 * i) + 0.01 * i;
    for (int j = 1; j <= 120; j++)
        rec[j - 1] = 2 * sin(0.41 * j + 1) + 0.8 + 0.01 * j;
}

Test(stats, drift_raw_and_effective_n)
{
    double ref[150], rec[120];
    drift_samples(ref, rec);
    struct stats_drift d;
    char err[128] = "";
    cr_assert_eq(stats_drift(ref, 150, rec, 120, 150, 120, 0, &d, err, sizeof err), ENMS_OK, "%s",
                 err);
    cr_assert_eq(d.n_ref, 150);
    cr_assert_eq(d.n_recent, 120);
    assert_rel(d.ks_d, 0.17833333333333334, 1e-12);
    assert_rel(d.ks_p, 0.025047220318759261, 1e-9);
    assert_rel(d.psi, 0.52801036894985776, 1e-10);
    assert_rel(d.mean_shift, 0.41877498131022289, 1e-10);
    assert_rel(d.median_ref, 0.74443002314158924, 1e-12);
    assert_rel(d.median_recent, 1.4170363078851063, 1e-12);
    /* Same D, effective sizes: a much weaker p-value. */
    cr_assert_eq(stats_drift(ref, 150, rec, 120, 30.5, 20.25, 4, &d, err, sizeof err), ENMS_OK,
                 "%s", err);
    assert_rel(d.ks_d, 0.17833333333333334, 1e-12);
    assert_rel(d.ks_p, 0.79333262029779861, 1e-9);
    assert_rel(d.psi, 0.2358385154045303, 1e-10);
    /* Effective sizes above the finite counts are capped to them. */
    cr_assert_eq(stats_drift(ref, 150, rec, 120, 1e6, 1e6, 0, &d, err, sizeof err), ENMS_OK, "%s",
                 err);
    assert_rel(d.ks_p, 0.025047220318759261, 1e-9);
}

/* Quarter-valued samples: ties in the KS steps and tied reference
 * quantiles (9 edges, 7 distinct) for the PSI bins. NaN are skipped. */
Test(stats, drift_ties_and_nan)
{
    double ref[82], rec[61];
    for (int i = 1; i <= 80; i++)
        ref[i - 1] = floor(4 * sin(0.37 * i)) / 4;
    for (int j = 1; j <= 60; j++)
        rec[j - 1] = floor(4 * sin(0.41 * j + 1) + 1) / 4;
    ref[80] = NAN;
    ref[81] = INFINITY;
    rec[60] = NAN;
    struct stats_drift d;
    char err[128] = "";
    cr_assert_eq(stats_drift(ref, 82, rec, 61, 80, 60, 10, &d, err, sizeof err), ENMS_OK, "%s",
                 err);
    cr_assert_eq(d.n_ref, 80);
    cr_assert_eq(d.n_recent, 60);
    assert_rel(d.ks_d, 0.23333333333333339, 1e-12);
    assert_rel(d.ks_p, 0.039984307990337982, 1e-9);
    assert_rel(d.psi, 1.9641158052387222, 1e-10);
}

/* KS p-values at both ends of the Kolmogorov series: shifted copies of
 * 1..n give D = k / n exactly. */
Test(stats, drift_ks_tails)
{
    double ref[100], rec[100];
    struct stats_drift d;
    char err[128] = "";
    for (int i = 0; i < 100; i++) {
        ref[i] = i + 1;
        rec[i] = i + 91;
    }
    cr_assert_eq(stats_drift(ref, 100, rec, 100, 100, 100, 0, &d, err, sizeof err), ENMS_OK);
    assert_rel(d.ks_d, 0.9, 1e-12);
    assert_rel(d.ks_p, 5.7741791485315716e-37, 1e-6);
    for (int i = 0; i < 20; i++)
        rec[i] = i + 5;
    cr_assert_eq(stats_drift(ref, 20, rec, 20, 20, 20, 0, &d, err, sizeof err), ENMS_OK);
    assert_rel(d.ks_d, 0.2, 1e-12);
    assert_rel(d.ks_p, 0.77095294467658682, 1e-9);
    for (int i = 0; i < 20; i++)
        rec[i] = i + 2;
    cr_assert_eq(stats_drift(ref, 20, rec, 20, 20, 20, 0, &d, err, sizeof err), ENMS_OK);
    assert_rel(d.ks_d, 0.05, 1e-12);
    assert_rel(d.ks_p, 1.0, 1e-12);
    /* Identical samples: no drift at all. */
    cr_assert_eq(stats_drift(ref, 20, ref, 20, 20, 20, 0, &d, err, sizeof err), ENMS_OK);
    cr_assert_eq(d.ks_d, 0.0);
    cr_assert_eq(d.ks_p, 1.0);
    cr_assert_eq(d.psi, 0.0);
    cr_assert_eq(d.mean_shift, 0.0);
}

/* PSI by hand. ref = 1..10, 2 bins cut at the median 5.5 (shares 1/2,
 * 1/2). recent {1,2,6,...,11}: shares 1/4, 3/4, so PSI = (1/4 - 1/2)
 * ln(1/2) + (3/4 - 1/2) ln(3/2) = ln(3) / 4. recent {6,...,10}: the low
 * bin is empty and gets 0.5 / 5 = 0.1, so PSI = (0.1 - 0.5) ln(0.2) +
 * (1 - 0.5) ln(2) = 0.4 ln 5 + 0.5 ln 2. A value equal to the edge goes
 * to the lower bin (bins are (lo, hi]). */
Test(stats, psi_by_hand)
{
    const double ref[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    const double rec1[] = {1, 2, 6, 7, 8, 9, 10, 11};
    const double rec2[] = {6, 7, 8, 9, 10};
    const double rec3[] = {5.5, 5.5, 5.5, 5.5, 9, 9, 9, 9};
    struct stats_drift d;
    char err[128] = "";
    cr_assert_eq(stats_drift(ref, 10, rec1, 8, 10, 8, 2, &d, err, sizeof err), ENMS_OK, "%s", err);
    assert_rel(d.psi, log(3.0) / 4.0, 1e-13);
    cr_assert_eq(d.median_ref, 5.5);
    cr_assert_eq(d.median_recent, 7.5);
    /* mean_shift = (6.75 - 5.5) / sd(1..10), sd = sqrt(55 / 6). */
    assert_rel(d.mean_shift, 1.25 / sqrt(55.0 / 6.0), 1e-13);
    cr_assert_eq(stats_drift(ref, 10, rec2, 5, 10, 5, 2, &d, err, sizeof err), ENMS_OK, "%s", err);
    assert_rel(d.psi, 0.4 * log(5.0) + 0.5 * log(2.0), 1e-13);
    cr_assert_eq(stats_drift(ref, 10, rec3, 8, 10, 8, 2, &d, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(d.psi, 0.0);
}

Test(stats, drift_errors)
{
    const double ref[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    const double four[] = {1, 2, NAN, 3, 4};
    struct stats_drift d;
    char err[128] = "";
    cr_assert_eq(stats_drift(ref, 10, four, 5, 10, 5, 0, &d, err, sizeof err), ENMS_EINVAL);
    cr_assert(strstr(err, "at least 5") != NULL, "%s", err);
    cr_assert_eq(stats_drift(four, 5, ref, 10, 5, 10, 0, &d, err, sizeof err), ENMS_EINVAL);
    cr_assert_eq(stats_drift(ref, 10, ref, 10, 10, 10, 1, &d, err, sizeof err), ENMS_EINVAL);
    cr_assert_eq(stats_drift(ref, 10, ref, 10, 10, 10, -3, &d, err, sizeof err), ENMS_EINVAL);
    cr_assert_eq(stats_drift(ref, 10, ref, 10, 10, 10, 1001, &d, err, sizeof err), ENMS_EINVAL);
    cr_assert_eq(stats_drift(ref, 10, ref, 10, 0, 10, 0, &d, err, sizeof err), ENMS_EINVAL);
    cr_assert_eq(stats_drift(ref, 10, ref, 10, 10, NAN, 0, &d, err, sizeof err), ENMS_EINVAL);
    cr_assert_eq(stats_drift(ref, 0, ref, 10, 10, 10, 0, &d, err, sizeof err), ENMS_EINVAL);
}

/* ---- Trend ------------------------------------------------------------ */

Test(stats, trend_matches_lm)
{
    double x[30], y[30];
    for (int i = 1; i <= 30; i++) {
        x[i - 1] = i;
        y[i - 1] = 0.05 * i + sin((double)i);
    }
    y[4] = NAN;
    x[8] = NAN;
    struct stats_trend t;
    char err[128] = "";
    cr_assert_eq(stats_trend(x, y, 30, &t, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(t.n, 28);
    assert_rel(t.slope, 0.034475691216149955, 1e-11);
    assert_rel(t.intercept, 0.27958283597177724, 1e-11);
    assert_rel(t.slope_se, 0.016026039294281841, 1e-11);
    assert_rel(t.t_stat, 2.1512296696072015, 1e-11);
    assert_rel(t.p_value, 0.040925318319684906, 1e-9);
    assert_rel(t.r_squared, 0.15109771970768876, 1e-11);

    for (int i = 1; i <= 12; i++) {
        x[i - 1] = i;
        y[i - 1] = 3 + cos(2.1 * i);
    }
    cr_assert_eq(stats_trend(x, y, 12, &t, err, sizeof err), ENMS_OK, "%s", err);
    assert_rel(t.slope, 0.042650689560066603, 1e-11);
    assert_rel(t.slope_se, 0.063234366265757139, 1e-11);
    assert_rel(t.p_value, 0.5152919191017985, 1e-9);
}

/* Zero residuals: a constant y is flat (p = 1), an exact line is
 * significant (p = 0), with finite t. */
Test(stats, trend_exact_fits)
{
    const double x[] = {1, 2, 3, 4, 5};
    const double flat[] = {0.1, 0.1, 0.1, 0.1, 0.1};
    const double line[] = {1.3, 2.6, 3.9, 5.2, 6.5};
    struct stats_trend t;
    char err[128] = "";
    cr_assert_eq(stats_trend(x, flat, 5, &t, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(t.slope, 0.0);
    cr_assert_eq(t.p_value, 1.0);
    cr_assert_eq(t.t_stat, 0.0);
    assert_rel(t.intercept, 0.1, 1e-14);
    cr_assert_eq(stats_trend(x, line, 5, &t, err, sizeof err), ENMS_OK, "%s", err);
    assert_rel(t.slope, 1.3, 1e-13);
    cr_assert_eq(t.p_value, 0.0);
    cr_assert(isfinite(t.t_stat) && t.t_stat > 0.0);
    assert_rel(t.r_squared, 1.0, 1e-14);
}

Test(stats, trend_errors)
{
    const double x[] = {1, 2, NAN, 4};
    const double y[] = {1, NAN, 3, 4};
    const double cx[] = {2, 2, 2, 2, 2};
    const double cy[] = {1, 2, 3, 4, 5};
    struct stats_trend t;
    char err[128] = "";
    cr_assert_eq(stats_trend(x, y, 4, &t, err, sizeof err), ENMS_EINVAL);
    cr_assert(strstr(err, "at least 3") != NULL, "%s", err);
    cr_assert_eq(stats_trend(cx, cy, 5, &t, err, sizeof err), ENMS_EINVAL);
    cr_assert(strstr(err, "constant") != NULL, "%s", err);
    cr_assert_eq(stats_trend(cx, cy, 0, &t, err, sizeof err), ENMS_EINVAL);
}

/* ---- Quantile, autocorrelation, effective n ------------------------------ */

Test(stats, quantile_type7)
{
    const double x[] = {3.5, NAN, -1, 2, 10, 7.25, 2, 0.5};
    const double q[] = {0, 0.1, 0.25, 0.5, 0.9, 1, 1.0 / 3.0};
    const double want[] = {-1, -0.099999999999999867, 1.25, 2, 8.3500000000000014, 10, 2};
    double scratch[8];
    for (size_t k = 0; k < 7; k++)
        assert_rel(stats_quantile(x, 8, q[k], scratch), want[k], 1e-13);
    cr_assert(isnan(stats_quantile(x, 8, 1.5, scratch)));
    cr_assert(isnan(stats_quantile(x, 8, -0.1, scratch)));
    cr_assert(isnan(stats_quantile(x, 8, NAN, scratch)));
    const double nan2[] = {NAN, NAN};
    cr_assert(isnan(stats_quantile(nan2, 2, 0.5, scratch)));
    cr_assert(isnan(stats_quantile(x, 0, 0.5, scratch)));
    cr_assert_eq(stats_quantile(x + 2, 1, 0.7, scratch), -1.0);
}

Test(stats, lag1_autocorr)
{
    double x[50];
    for (int i = 1; i <= 50; i++)
        x[i - 1] = 2 * sin(0.37 * i) + 0.01 * i;
    x[6] = NAN;
    x[19] = NAN;
    assert_rel(stats_lag1_autocorr(x, 50), 0.92470517912384032, 1e-12);
    const double alt[] = {1, -1, 1, -1, 1, -1, 1, -1, 1, -1};
    assert_rel(stats_lag1_autocorr(alt, 10), -0.9, 1e-13);
    const double c[] = {4, 4, 4, 4, NAN};
    cr_assert_eq(stats_lag1_autocorr(c, 5), 0.0);
    const double two[] = {1, 5, NAN};
    cr_assert_eq(stats_lag1_autocorr(two, 3), 0.0);
}

Test(stats, effective_n)
{
    assert_rel(stats_effective_n(100, 0.5), 100.0 / 3.0, 1e-14);
    cr_assert_eq(stats_effective_n(100, -0.3), 100.0);
    cr_assert_eq(stats_effective_n(100, 0.0), 100.0);
    cr_assert_eq(stats_effective_n(100, NAN), 100.0);
    /* 100 * 0.01 / 1.99 = 0.5 is raised to the floor of 2. */
    cr_assert_eq(stats_effective_n(100, 0.99), 2.0);
    cr_assert_eq(stats_effective_n(2, 0.9), 2.0);
    cr_assert_eq(stats_effective_n(1, 0.9) <= 1.0, 1);
    cr_assert_eq(stats_effective_n(0, 0.5), 0.0);
}
