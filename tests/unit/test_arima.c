/* test_arima.c - unit tests of worker/models/arima*.c against the reference
 * values in ../shared/reference/models.md (R 4.2.2 stats::arima and
 * forecast 8.20): the fixed models, CSS, forecasts and intervals, the
 * automatic order choices, missing values, the artifact round trip and the
 * loader's rejection of bad input. Pure functions, no servers. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <gsl/gsl_errno.h>

#include "../../common/error.h"
#include "../../worker/models/arima.h"
#include "../../worker/models/arima_auto.h"

#define MAX_SERIES 512

/* Reads the one-column CSV name from the reference folder: the checkout's
 * sibling ../shared, or the absolute path. Missing data fails the test. */
static size_t read_series(const char *name, double *y)
{
    static const char *const dirs[] = {"../shared/reference/data", "/work/shared/reference/data"};
    char path[512], line[128];
    FILE *f = NULL;
    for (size_t i = 0; i < 2 && !f; i++) {
        snprintf(path, sizeof path, "%s/%s", dirs[i], name);
        f = fopen(path, "r");
    }
    cr_assert_not_null(f, "reference data %s not found", name);
    size_t n = 0;
    cr_assert_not_null(fgets(line, sizeof line, f)); /* header "y" */
    while (fgets(line, sizeof line, f) && n < MAX_SERIES) {
        char *end;
        y[n] = strtod(line, &end);
        cr_assert(end != line, "bad line in %s: %s", name, line);
        n++;
    }
    fclose(f);
    cr_assert_gt(n, 10);
    return n;
}

static void setup(void)
{
    /* GSL must report errors, not abort (the worker does the same at
     * start-up). */
    gsl_set_error_handler_off();
}

static struct arima_spec spec_of(int p, int d, int q, int P, int D, int Q, int m, int mean)
{
    struct arima_spec s;
    memset(&s, 0, sizeof s);
    s.order.p = p;
    s.order.d = d;
    s.order.q = q;
    s.order.P = P;
    s.order.D = D;
    s.order.Q = Q;
    s.order.m = m;
    s.include_mean = mean;
    s.method = ARIMA_CSS_ML;
    return s;
}

static struct arima_model *fit_or_fail(const double *y, size_t n, const struct arima_spec *s)
{
    struct arima_model *m = NULL;
    char err[256] = "";
    int rc = arima_fit(y, n, s, NULL, &m, err, sizeof err);
    cr_assert_eq(rc, 0, "arima_fit: %s", err);
    cr_assert_not_null(m);
    return m;
}

static void check_close(const char *what, double got, double want, double tol)
{
    cr_expect(fabs(got - want) <= tol, "%s: got %.7f, want %.7f (diff %.2g, tol %.0e)", what, got,
              want, got - want, tol);
}

static void check_rel(const char *what, double got, double want, double rtol)
{
    cr_expect(fabs(got - want) <= rtol * fabs(want), "%s: got %.8g, want %.8g (rel %.2g)", what,
              got, want, fabs(got - want) / fabs(want));
}

static size_t log_airpassengers(double *y)
{
    size_t n = read_series("airpassengers.csv", y);
    for (size_t i = 0; i < n; i++)
        y[i] = log(y[i]);
    return n;
}

TestSuite(arima, .init = setup);

Test(arima, airline_css_ml)
{
    double y[MAX_SERIES];
    size_t n = log_airpassengers(y);
    cr_assert_eq(n, 144);
    struct arima_spec s = spec_of(0, 1, 1, 0, 1, 1, 12, 1);
    struct arima_model *m = fit_or_fail(y, n, &s);
    cr_assert_eq(m->narma + m->nreg, 2);
    check_close("ma1", m->coef[0], -0.401828, 1e-3);
    check_close("sma1", m->coef[1], -0.556945, 1e-3);
    check_rel("sigma2", m->sigma2, 0.00134803, 1e-3);
    check_close("loglik", m->loglik, 244.699531, 1e-3);
    check_close("aic", m->aic, -483.399061, 2e-3);
    check_close("aicc", m->aicc, -483.210085, 2e-3);
    cr_expect_eq(m->nused, 131);
    arima_free(m);
}

Test(arima, airline_css_only)
{
    double y[MAX_SERIES];
    size_t n = log_airpassengers(y);
    struct arima_spec s = spec_of(0, 1, 1, 0, 1, 1, 12, 1);
    s.method = ARIMA_CSS;
    struct arima_model *m = fit_or_fail(y, n, &s);
    check_close("ma1", m->coef[0], -0.377162, 1e-3);
    check_close("sma1", m->coef[1], -0.572379, 1e-3);
    check_rel("sigma2", m->sigma2, 0.00138875, 1e-3);
    cr_expect(isnan(m->aic), "R reports no AIC for CSS");
    arima_free(m);
}

Test(arima, lh_models)
{
    static const struct {
        int p, q;
        double coef[5];
        double sigma2, loglik, aic;
    } ref[] = {
        {1, 0, {0.573930, 2.413288}, 0.197490, -29.379162, 64.758325},
        {3, 0, {0.644797, -0.063374, -0.219806, 2.393127}, 0.178660, -27.092411, 64.184822},
        {1, 1, {0.452202, 0.198167, 2.410060}, 0.192312, -28.762033, 65.524066},
    };
    double y[MAX_SERIES];
    size_t n = read_series("lh.csv", y);
    cr_assert_eq(n, 48);
    for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) {
        struct arima_spec s = spec_of(ref[i].p, 0, ref[i].q, 0, 0, 0, 1, 1);
        struct arima_model *m = fit_or_fail(y, n, &s);
        size_t k = (size_t)(ref[i].p + ref[i].q) + 1;
        cr_assert_eq(m->narma + m->nreg, k);
        for (size_t j = 0; j < k; j++) {
            char what[64];
            snprintf(what, sizeof what, "lh (%d,0,%d) coef %zu", ref[i].p, ref[i].q, j);
            check_close(what, m->coef[j], ref[i].coef[j], 1e-3);
        }
        check_rel("lh sigma2", m->sigma2, ref[i].sigma2, 1e-3);
        check_close("lh loglik", m->loglik, ref[i].loglik, 1e-3);
        check_close("lh aic", m->aic, ref[i].aic, 2e-3);
        arima_free(m);
    }
}

Test(arima, airline_forecasts)
{
    static const struct {
        int h;
        double point, lo95, hi95;
    } ref[] = {
        {1, 6.110186, 6.038224, 6.182147},  {2, 6.053775, 5.969922, 6.137628},
        {3, 6.171715, 6.077459, 6.265971},  {6, 6.368779, 6.248600, 6.488957},
        {12, 6.168025, 6.008149, 6.327901},
    };
    double y[MAX_SERIES], mean[12], se[12], lo[12], hi[12], lo80[12], hi80[12];
    char err[256] = "";
    size_t n = log_airpassengers(y);
    struct arima_spec s = spec_of(0, 1, 1, 0, 1, 1, 12, 1);
    struct arima_model *m = fit_or_fail(y, n, &s);
    cr_assert_eq(arima_forecast(m, 12, mean, se, err, sizeof err), 0, "%s", err);
    arima_interval(mean, se, 12, 0.95, lo, hi);
    arima_interval(mean, se, 12, 0.80, lo80, hi80);
    for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) {
        int h = ref[i].h - 1;
        check_close("point", mean[h], ref[i].point, 1e-4);
        check_close("lo95", lo[h], ref[i].lo95, 1e-4);
        check_close("hi95", hi[h], ref[i].hi95, 1e-4);
    }
    check_close("se h=1", se[0], 0.0367156, 1e-6);
    check_close("se h=12", se[11], 0.0815707, 1e-6);
    check_close("lo80 h=1", lo80[0], 6.063133, 1e-4);
    check_close("hi80 h=1", hi80[0], 6.157239, 1e-4);
    arima_free(m);
}

Test(arima, fitted_and_residuals)
{
    double y[MAX_SERIES];
    size_t n = log_airpassengers(y);
    struct arima_spec s = spec_of(0, 1, 1, 0, 1, 1, 12, 1);
    struct arima_model *m = fit_or_fail(y, n, &s);
    cr_assert_not_null(m->fitted);
    cr_assert_not_null(m->resid);
    double ss = 0.0;
    for (size_t t = 0; t < n; t++) {
        cr_assert(isfinite(m->fitted[t]) && isfinite(m->resid[t]));
        check_close("fitted + resid", m->fitted[t] + m->resid[t], y[t], 1e-12);
        if (t >= 13)
            ss += m->resid[t] * m->resid[t];
    }
    /* The standardised innovations after the diffuse start average sigma2. */
    check_rel("mean square residual", ss / 131.0, m->sigma2, 0.05);
    arima_free(m);
}

/* A missing value skips the update: the fit still works, counts one fewer
 * observation and forecasts from the same kind of state. */
Test(arima, missing_values)
{
    double y[MAX_SERIES], mean[3], se[3];
    char err[256] = "";
    size_t n = log_airpassengers(y);
    y[50] = NAN;
    y[100] = NAN;
    struct arima_spec s = spec_of(0, 1, 1, 0, 1, 1, 12, 1);
    struct arima_model *m = fit_or_fail(y, n, &s);
    cr_expect_eq(m->nused, 129);
    check_close("ma1 with gaps", m->coef[0], -0.40, 0.05);
    check_close("sma1 with gaps", m->coef[1], -0.56, 0.05);
    cr_expect(isnan(m->resid[50]));
    cr_assert_eq(arima_forecast(m, 3, mean, se, err, sizeof err), 0, "%s", err);
    check_close("forecast with gaps", mean[0], 6.11, 0.02);
    arima_free(m);
}

/* The optimiser filters a complete series with the ARMA part alone on the
 * differenced data (Chandrasekhar recursions); a series with any missing
 * value goes through the full Kalman filter with the diffuse differencing
 * block. A trailing missing value changes nothing in the likelihood, so
 * both paths must reach the same estimates, to the optimiser's stopping
 * precision (1e-4; R's reference tolerance is 1e-3): seasonal AR (a
 * stationary prior of a state of 13), seasonal MA, and a mean with AR and
 * MA terms. */
Test(arima, fast_and_full_filters_agree)
{
    double y[MAX_SERIES + 1], lh[MAX_SERIES + 1];
    size_t n = log_airpassengers(y), nlh = read_series("lh.csv", lh);
    struct {
        double *y;
        size_t n;
        struct arima_spec s;
    } cases[] = {
        {y, n, spec_of(1, 1, 0, 1, 1, 0, 12, 0)},
        {y, n, spec_of(0, 1, 1, 0, 1, 1, 12, 0)},
        {lh, nlh, spec_of(2, 0, 1, 0, 0, 0, 1, 1)},
    };
    y[n] = NAN;
    lh[nlh] = NAN;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct arima_model *fast = fit_or_fail(cases[i].y, cases[i].n, &cases[i].s);
        struct arima_model *full = fit_or_fail(cases[i].y, cases[i].n + 1, &cases[i].s);
        cr_expect_eq(fast->nused, full->nused);
        for (size_t k = 0; k < fast->narma + fast->nreg; k++)
            check_close("coefficient", fast->coef[k], full->coef[k], 1e-4);
        check_close("loglik", fast->loglik, full->loglik, 1e-6);
        check_rel("sigma2", fast->sigma2, full->sigma2, 1e-4);
        arima_free(fast);
        arima_free(full);
    }
}

/* The optimiser's ML gradient (reverse mode through the Chandrasekhar
 * filter, the stationary covariance, the seasonal products and the Jones
 * transform) against central differences at points away from the optimum:
 * seasonal AR and MA, a mean, a drift, a frozen and a never-frozen gain
 * (MA root near the unit circle). With a missing value the optimiser
 * falls back to differences, and says so. */
Test(arima, ml_gradient_matches_differences)
{
    double y[MAX_SERIES + 1], lh[MAX_SERIES + 1], www[MAX_SERIES + 1];
    size_t n = log_airpassengers(y), nlh = read_series("lh.csv", lh);
    size_t nw = read_series("wwwusage.csv", www);
    struct arima_spec drift = spec_of(1, 1, 1, 0, 0, 0, 1, 0);
    drift.include_drift = 1;
    struct {
        double *y;
        size_t n;
        struct arima_spec s;
        double x[8];
    } cases[] = {
        {y, n, spec_of(0, 1, 1, 0, 1, 1, 12, 0), {-0.3, -0.5}},
        {y, n, spec_of(2, 1, 1, 1, 1, 1, 12, 0), {0.4, -0.3, 0.2, -0.6, -0.4}},
        {y, n, spec_of(1, 0, 2, 2, 1, 0, 12, 0), {1.2, -0.2, 0.3, 0.5, 0.1}},
        {y, n, spec_of(0, 1, 1, 0, 1, 1, 12, 0), {-0.99, -0.5}},
        {lh, nlh, spec_of(2, 0, 1, 0, 0, 0, 1, 1), {0.5, -0.2, 0.3}},
        {www, nw, drift, {0.6, 0.4}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double f, g[8], gn[8];
        int analytic = 0;
        char err[256] = "";
        int rc = arima_ml_gradient(cases[i].y, cases[i].n, &cases[i].s, cases[i].x, &f, g, gn,
                                   &analytic, err, sizeof err);
        cr_assert_eq(rc, 0, "case %zu: %s", i, err);
        cr_expect(analytic, "case %zu: gradient not analytic", i);
        size_t k = arima_ncoef(&cases[i].s) - arima_nreg(&cases[i].s);
        double scale = 0.0;
        for (size_t j = 0; j < k; j++)
            scale = fmax(scale, fabs(gn[j]));
        for (size_t j = 0; j < k; j++)
            cr_expect(fabs(g[j] - gn[j]) <= 1e-6 * scale + 1e-9,
                      "case %zu coefficient %zu: analytic %.12g, differences %.12g", i, j, g[j],
                      gn[j]);
    }
    /* A gap: the full filter, differences only. */
    double f, g[8], gn[8], x[2] = {-0.3, -0.5};
    int analytic = 1;
    char err[256] = "";
    struct arima_spec s = spec_of(0, 1, 1, 0, 1, 1, 12, 0);
    y[40] = NAN;
    cr_assert_eq(arima_ml_gradient(y, n, &s, x, &f, g, gn, &analytic, err, sizeof err), 0, "%s",
                 err);
    cr_expect_not(analytic);
    cr_expect(fabs(g[0] - gn[0]) < 1e-12 && fabs(g[1] - gn[1]) < 1e-12);
}

/* The search's approximate candidates are only scored: same coefficients
 * and sigma2 as a CSS fit, but no state to forecast from. */
Test(arima, score_only_css_fit)
{
    double y[MAX_SERIES], mean[1], se[1];
    char err[256] = "";
    size_t n = log_airpassengers(y);
    struct arima_spec s = spec_of(0, 1, 1, 0, 1, 1, 12, 0);
    s.method = ARIMA_CSS;
    struct arima_model *full = fit_or_fail(y, n, &s), *scored = NULL;
    cr_assert_eq(arima_fit_score(y, n, &s, NULL, &scored, err, sizeof err), 0, "%s", err);
    check_close("ma1 CSS", scored->coef[0], -0.377162, 1e-3);
    check_close("sma1 CSS", scored->coef[1], -0.572379, 1e-3);
    check_rel("sigma2 CSS", scored->sigma2, 0.00138875, 1e-3);
    check_close("same ma1", scored->coef[0], full->coef[0], 1e-12);
    cr_expect_null(scored->a);
    cr_expect_null(scored->resid);
    cr_expect_neq(arima_forecast(scored, 1, mean, se, err, sizeof err), 0);
    arima_free(scored);
    arima_free(full);
}

Test(arima, rejects_bad_specs)
{
    double y[MAX_SERIES];
    size_t n = read_series("lh.csv", y);
    struct arima_model *m = NULL;
    char err[256] = "";
    struct arima_spec s = spec_of(-1, 0, 0, 0, 0, 0, 1, 1);
    cr_expect_eq(arima_fit(y, n, &s, NULL, &m, err, sizeof err), ENMS_EINVAL);
    s = spec_of(0, 0, 0, 1, 0, 0, 1, 1); /* seasonal without a period */
    cr_expect_eq(arima_fit(y, n, &s, NULL, &m, err, sizeof err), ENMS_EINVAL);
    s = spec_of(0, 0, 0, 2, 1, 2, 400, 0); /* state far too large */
    cr_expect_eq(arima_fit(y, n, &s, NULL, &m, err, sizeof err), ENMS_EINVAL);
    cr_expect(strstr(err, "Fourier") != NULL, "%s", err);
    s = spec_of(5, 0, 5, 0, 0, 0, 1, 1);
    cr_expect_eq(arima_fit(y, 8, &s, NULL, &m, err, sizeof err), ENMS_EINVAL);
    cr_expect_null(m);
}

static int stop_now(void *opaque)
{
    (void)opaque;
    return 1;
}

Test(arima, stops_when_told)
{
    double y[MAX_SERIES];
    size_t n = log_airpassengers(y);
    struct model_hooks h = {NULL, stop_now, NULL};
    struct arima_model *m = NULL;
    char err[256] = "";
    struct arima_spec s = spec_of(0, 1, 1, 0, 1, 1, 12, 1);
    cr_expect_eq(arima_fit(y, n, &s, &h, &m, err, sizeof err), ENMS_ESTOPPED);
    struct arima_auto_opts o;
    arima_auto_defaults(&o, 12);
    cr_expect_eq(arima_auto(y, n, &o, &h, &m, NULL, err, sizeof err), ENMS_ESTOPPED);
    cr_expect_null(m);
}

/* ---- automatic selection -------------------------------------------------- */

Test(arima_auto, unit_root_choices)
{
    double ap[MAX_SERIES], www[MAX_SERIES], lh[MAX_SERIES];
    size_t na = read_series("airpassengers.csv", ap);
    size_t nw = read_series("wwwusage.csv", www);
    size_t nl = read_series("lh.csv", lh);
    cr_expect_eq(arima_ndiffs(ap, na, 0.05, 2), 1);
    cr_expect_eq(arima_nsdiffs(ap, na, 12, 1), 1);
    cr_expect_eq(arima_ndiffs(www, nw, 0.05, 2), 1);
    cr_expect_eq(arima_ndiffs(lh, nl, 0.05, 2), 0);
    cr_expect_gt(arima_seasonal_strength(ap, na, 12), 0.64);
}

struct progress_log {
    int calls;
    double last;
    int monotone;
    int saw_fitting;
};

static void log_progress(void *opaque, double fraction, const char *stage)
{
    struct progress_log *p = opaque;
    if (fraction < p->last)
        p->monotone = 0;
    p->last = fraction;
    p->calls++;
    if (strncmp(stage, "fitting ARIMA(", 14) == 0)
        p->saw_fitting = 1;
}

static void check_auto(const double *y, size_t n, int m, const int order[6], double aicc)
{
    struct arima_auto_opts o;
    struct arima_auto_report rep;
    struct arima_model *mdl = NULL;
    struct progress_log pl = {0, 0.0, 1, 0};
    struct model_hooks h = {log_progress, NULL, &pl};
    char err[256] = "", lab[128];
    arima_auto_defaults(&o, m);
    cr_assert_eq(arima_auto(y, n, &o, &h, &mdl, &rep, err, sizeof err), 0, "%s", err);
    arima_label(&mdl->spec, lab, sizeof lab);
    const struct arima_order *g = &mdl->spec.order;
    int same = g->p == order[0] && g->d == order[1] && g->q == order[2] && g->P == order[3] &&
               g->D == order[4] && g->Q == order[5];
    /* Same order as R, or one with lower AICc, is acceptable. */
    cr_expect(same || mdl->aicc < aicc - 1e-3, "chose %s with AICc %.6f; R: AICc %.6f", lab,
              mdl->aicc, aicc);
    if (same)
        check_close("AICc", mdl->aicc, aicc, 2e-3);
    cr_expect(pl.saw_fitting && pl.monotone && pl.calls > 3, "progress per candidate");
    arima_free(mdl);
}

Test(arima_auto, airpassengers)
{
    double y[MAX_SERIES];
    size_t n = read_series("airpassengers.csv", y);
    check_auto(y, n, 12, (const int[]){2, 1, 1, 0, 1, 0}, 1018.165165);
}

Test(arima_auto, log_airpassengers)
{
    double y[MAX_SERIES];
    size_t n = log_airpassengers(y);
    check_auto(y, n, 12, (const int[]){0, 1, 1, 0, 1, 1}, -483.210085);
}

Test(arima_auto, wwwusage)
{
    double y[MAX_SERIES];
    size_t n = read_series("wwwusage.csv", y);
    check_auto(y, n, 1, (const int[]){1, 1, 1, 0, 0, 0}, 514.552103);
}

/* Weekly period on hourly data: Fourier terms with ARIMA errors. */
Test(arima_auto, fourier_long_period)
{
    size_t n = 1000;
    double *y = malloc(n * sizeof *y), mean[24], se[24];
    unsigned s = 7;
    double e = 0.0;
    for (size_t t = 0; t < n; t++) {
        s = s * 1103515245u + 12345u;
        e = 0.5 * e + (((s >> 8) & 0xffff) / 65536.0 - 0.5);
        y[t] = 20.0 + 4.0 * sin(2.0 * M_PI * (double)(t + 1) / 168.0) +
               2.0 * cos(4.0 * M_PI * (double)(t + 1) / 168.0) + e;
    }
    struct arima_auto_opts o;
    struct arima_auto_report rep;
    struct arima_model *mdl = NULL;
    char err[256] = "";
    arima_auto_defaults(&o, 168);
    o.max_fourier_k = 4;
    cr_assert_eq(arima_auto(y, n, &o, NULL, &mdl, &rep, err, sizeof err), 0, "%s", err);
    cr_expect_geq(mdl->spec.fourier_k, 2);
    cr_expect_eq(mdl->spec.order.P + mdl->spec.order.Q + mdl->spec.order.D, 0);
    cr_assert_eq(arima_forecast(mdl, 24, mean, se, err, sizeof err), 0, "%s", err);
    double t = (double)n + 1.0;
    check_close("Fourier forecast", mean[0],
                20.0 + 4.0 * sin(2.0 * M_PI * t / 168.0) + 2.0 * cos(4.0 * M_PI * t / 168.0), 1.0);
    arima_free(mdl);
    free(y);
}

/* ---- artifact ------------------------------------------------------------- */

Test(arima_json, round_trip_forecasts_the_same)
{
    double y[MAX_SERIES], m1[12], s1[12], m2[12], s2[12];
    char err[256] = "";
    size_t n = log_airpassengers(y);
    struct arima_spec s = spec_of(0, 1, 1, 0, 1, 1, 12, 1);
    struct arima_model *m = fit_or_fail(y, n, &s), *back = NULL;
    cJSON *j = arima_to_json(m, err, sizeof err);
    cr_assert_not_null(j, "%s", err);
    char *text = cJSON_PrintUnformatted(j);
    cr_assert_not_null(text);
    cr_assert_eq(arima_from_json_text(text, strlen(text), &back, err, sizeof err), 0, "%s", err);
    cr_assert_eq(arima_forecast(m, 12, m1, s1, err, sizeof err), 0);
    cr_assert_eq(arima_forecast(back, 12, m2, s2, err, sizeof err), 0, "%s", err);
    for (int h = 0; h < 12; h++) {
        check_close("point after reload", m2[h], m1[h], 1e-9);
        check_close("se after reload", s2[h], s1[h], 1e-9);
    }
    check_close("loglik after reload", back->loglik, m->loglik, 1e-9);
    cr_expect_eq(back->n, 144);
    free(text);
    cJSON_Delete(j);
    arima_free(back);
    arima_free(m);
}

Test(arima_json, rejects_bad_artifacts)
{
    double y[MAX_SERIES];
    char err[256] = "";
    size_t n = read_series("lh.csv", y);
    struct arima_spec s = spec_of(1, 0, 0, 0, 0, 0, 1, 1);
    struct arima_model *m = fit_or_fail(y, n, &s), *back = NULL;
    cJSON *j = arima_to_json(m, err, sizeof err);
    cr_assert_not_null(j);
    /* Each mutation must be refused with a message, never crash. */
    static const char *const bad[] = {
        "{\"order\":[1,0,0]}",
        "[]",
        "not json",
        "{\"model\":\"arima\",\"version\":1,\"order\":[1,0],\"seasonal\":[0,0,0]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        cr_expect_eq(arima_from_json_text(bad[i], strlen(bad[i]), &back, err, sizeof err),
                     ENMS_EINVAL, "%s", bad[i]);
        cr_expect_null(back);
        cr_expect(err[0] != '\0');
    }
    /* Coefficient count inconsistent with the orders. */
    cJSON_ReplaceItemInObject(j, "order", cJSON_CreateIntArray((const int[]){2, 0, 0}, 3));
    cr_expect_eq(arima_from_json(j, &back, err, sizeof err), ENMS_EINVAL);
    cr_expect(strstr(err, "coef") != NULL, "%s", err);
    cJSON_ReplaceItemInObject(j, "order", cJSON_CreateIntArray((const int[]){1, 0, 0}, 3));
    cJSON_ReplaceItemInObject(j, "sigma2", cJSON_CreateNumber(-1.0));
    cr_expect_eq(arima_from_json(j, &back, err, sizeof err), ENMS_EINVAL);
    cJSON_ReplaceItemInObject(j, "sigma2", cJSON_CreateNumber(0.2));
    cJSON_ReplaceItemInObject(j, "period", cJSON_CreateNumber(1.5));
    cr_expect_eq(arima_from_json(j, &back, err, sizeof err), ENMS_EINVAL);
    cJSON_ReplaceItemInObject(j, "period", cJSON_CreateNumber(1));
    cJSON_ReplaceItemInObject(j, "seasonal", cJSON_CreateIntArray((const int[]){2, 1, 2}, 3));
    cr_expect_eq(arima_from_json(j, &back, err, sizeof err), ENMS_EINVAL);
    cJSON_ReplaceItemInObject(j, "seasonal", cJSON_CreateIntArray((const int[]){0, 0, 0}, 3));
    cr_expect_eq(arima_from_json(j, &back, err, sizeof err), 0, "%s", err);
    arima_free(back);
    cJSON_Delete(j);
    arima_free(m);
}
