/* test_baseline.c - unit tests of the energy baseline (worker/models/
 * baseline.c), the series helpers it reads through (series.c) and its JSON
 * artifact (model_json.c).
 *
 * Two kinds of truth: the OLS reference values of models.md (gretl-data's
 * San Diego electricity data, fixture tests/data/ramanathan_data9-3.csv),
 * and the demo generator's known coefficients (ctl/demo_data.c, seed 42, the
 * year 2025). Every daily coefficient must come within 5 % and every
 * balance point within 1 degC of the truth, with no term the generator
 * lacks (issue 4, acceptance 2); how other seeds fare, and why, is in
 * docs/models-baseline-anomaly.md. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../common/error.h"
#include "../../ctl/demo_data.h"
#include "../../worker/models/baseline.h"
#include "../../worker/models/series.h"

#define END_2026 ((time_t)1767225600) /* 2026-01-01T00:00:00Z */
#define YEAR_H   ((size_t)8760)

/* ---- the reference regressions (models.md) ------------------------------ */

#define RAMANATHAN_ROWS 87

struct ramanathan {
    double reskwh[RAMANATHAN_ROWS], nocust[RAMANATHAN_ROWS], hdd[RAMANATHAN_ROWS],
        cdd[RAMANATHAN_ROWS];
};

/* Reads the fixture: '#' comment lines, a header, then
 * period,reskwh,nocust,price,cpi,incm,cdd,hdd,pop. */
static void read_ramanathan(struct ramanathan *d)
{
    const char *paths[] = {"tests/data/ramanathan_data9-3.csv",
                           "../../tests/data/ramanathan_data9-3.csv"};
    FILE *f = NULL;
    for (size_t i = 0; i < 2 && !f; i++)
        f = fopen(paths[i], "r");
    cr_assert_not_null(f, "run the unit tests from the repository root");
    char line[512];
    size_t n = 0;
    int header = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        if (!header) {
            header = 1;
            continue;
        }
        double period, price, cpi, incm, pop;
        cr_assert_lt(n, RAMANATHAN_ROWS);
        cr_assert_eq(sscanf(line, "%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lf", &period, &d->reskwh[n],
                            &d->nocust[n], &price, &cpi, &incm, &d->cdd[n], &d->hdd[n], &pop),
                     9);
        n++;
    }
    fclose(f);
    cr_assert_eq(n, RAMANATHAN_ROWS);
}

static void expect_rel(double got, double want, double rel, const char *what)
{
    cr_expect(fabs(got - want) <= rel * fabs(want), "%s: got %.10g, want %.10g", what, got, want);
}

Test(baseline_reference, ramanathan_reskwh_nocust_hdd_cdd)
{
    struct ramanathan d;
    read_ramanathan(&d);
    double x[RAMANATHAN_ROWS * 4];
    for (size_t i = 0; i < RAMANATHAN_ROWS; i++) {
        x[i * 4 + 0] = 1;
        x[i * 4 + 1] = d.nocust[i];
        x[i * 4 + 2] = d.hdd[i];
        x[i * 4 + 3] = d.cdd[i];
    }
    struct baseline_ols o;
    char err[256];
    cr_assert_eq(baseline_ols(x, d.reskwh, RAMANATHAN_ROWS, 4, &o, err, sizeof err), 0, "%s", err);
    const double want[4] = {-124.5352361, 1.3057724, 0.3747224, 0.2786745};
    for (int j = 0; j < 4; j++)
        expect_rel(o.coef[j], want[j], 1e-6, "coefficient");
    cr_expect(fabs(o.stats.r2 - 0.9567086) < 5e-7, "R2 %.8f", o.stats.r2);
    cr_expect(fabs(o.stats.cv_rmse - 4.779899) < 5e-6, "CV(RMSE) %.7f", o.stats.cv_rmse);
    cr_expect(fabs(o.stats.nmbe) < 1e-9, "NMBE %.3g", o.stats.nmbe);
    cr_expect_eq(o.stats.p, 4);
}

Test(baseline_reference, ramanathan_kwh_per_customer_hdd_cdd)
{
    struct ramanathan d;
    read_ramanathan(&d);
    double x[RAMANATHAN_ROWS * 3], y[RAMANATHAN_ROWS];
    for (size_t i = 0; i < RAMANATHAN_ROWS; i++) {
        x[i * 3 + 0] = 1;
        x[i * 3 + 1] = d.hdd[i];
        x[i * 3 + 2] = d.cdd[i];
        y[i] = 1000.0 * d.reskwh[i] / d.nocust[i];
    }
    struct baseline_ols o;
    char err[256];
    cr_assert_eq(baseline_ols(x, y, RAMANATHAN_ROWS, 3, &o, err, sizeof err), 0, "%s", err);
    const double want[3] = {1146.3889490, 0.5088209, 0.3557077};
    for (int j = 0; j < 3; j++)
        expect_rel(o.coef[j], want[j], 1e-6, "coefficient");
    cr_expect(fabs(o.stats.r2 - 0.6259812) < 5e-7, "R2 %.8f", o.stats.r2);
    cr_expect(fabs(o.stats.cv_rmse - 5.099290) < 5e-6, "CV(RMSE) %.7f", o.stats.cv_rmse);
}

Test(baseline_reference, ols_rejects_bad_designs)
{
    double x[4] = {1, 1, 1, 1}, y[2] = {1, 2};
    struct baseline_ols o;
    char err[128] = "";
    cr_expect_eq(baseline_ols(x, y, 2, 2, &o, err, sizeof err), ENMS_EINVAL);
    cr_expect_eq(baseline_ols(x, y, 2, 0, &o, err, sizeof err), ENMS_EINVAL);
    y[1] = NAN;
    cr_expect_eq(baseline_ols(x, y, 2, 1, &o, err, sizeof err), ENMS_EINVAL);
}

/* ---- demo data ------------------------------------------------------------ */

/* The demo seed: 42 (DEMO_DEFAULT_SEED, what the acceptance is stated on),
 * or ENMS_DEMO_SEED to log the same figures for another seed (see
 * docs/models-baseline-anomaly.md; only seed 42's figures are claimed by
 * the assertions). */
static uint64_t demo_seed(void)
{
    const char *v = getenv("ENMS_DEMO_SEED");
    char *end = NULL;
    unsigned long long s = v && *v ? strtoull(v, &end, 10) : DEMO_DEFAULT_SEED;
    cr_assert(!v || !*v || (*end == '\0' && s <= DEMO_SEED_MAX), "bad ENMS_DEMO_SEED %s", v);
    return (uint64_t)s;
}

/* One machine's year as a series, with the labelled anomaly hours skipped
 * (a baseline is fitted on normal operation; the labels are what an energy
 * manager would exclude). Arrays owned by the struct. */
struct demo_series {
    struct series s;
    time_t *ts;
    double *energy, *production, *temp;
    unsigned char *skip;
    struct demo_anomaly a[DEMO_MAX_ANOMALIES];
    size_t na;
};

static void demo_series_load(struct demo_series *d, size_t machine, size_t hours, int skip)
{
    const struct demo_machine *m = &demo_machines[machine];
    struct demo_reading *r = calloc(hours, sizeof *r);
    char err[256];
    cr_assert_not_null(r);
    cr_assert_eq(demo_generate(machine, demo_seed(), END_2026, hours, r, d->a, DEMO_MAX_ANOMALIES,
                               &d->na, err, sizeof err),
                 0, "%s", err);
    d->ts = malloc(hours * sizeof *d->ts);
    d->energy = malloc(hours * sizeof *d->energy);
    d->production = malloc(hours * sizeof *d->production);
    d->temp = malloc(hours * sizeof *d->temp);
    d->skip = calloc(hours, 1);
    cr_assert(d->ts && d->energy && d->production && d->temp && d->skip);
    for (size_t k = 0; k < hours; k++) {
        d->ts[k] = r[k].ts;
        d->energy[k] = r[k].energy_kwh;
        d->production[k] = r[k].production_count;
        d->temp[k] = r[k].outdoor_temp_c;
    }
    for (size_t j = 0; j < d->na; j++)
        for (time_t t = d->a[j].start; t < d->a[j].end; t += 3600)
            d->skip[(t - d->ts[0]) / 3600] = 1;
    d->s = (struct series){.n = hours,
                           .ts = d->ts,
                           .energy = d->energy,
                           .production = m->has_production ? d->production : NULL,
                           .temp_c = d->temp,
                           .skip = skip ? d->skip : NULL,
                           .utc_offset_s = demo_sites[m->site].utc_offset_h * 3600};
    free(r);
}

static void demo_series_free(struct demo_series *d)
{
    free(d->ts);
    free(d->energy);
    free(d->production);
    free(d->temp);
    free(d->skip);
}

static void fit_demo(struct demo_series *d, enum baseline_granularity g, struct baseline_result *r)
{
    struct baseline_config cfg;
    baseline_config_default(&cfg, g);
    char err[256] = "";
    cr_assert_eq(baseline_fit(&d->s, &cfg, NULL, r, err, sizeof err), 0, "%s", err);
}

/* Acceptance 2 of issue 4: a coefficient within 5 % of the truth and its
 * balance point (when it has one) within 1 degC. */
static void check_term(const char *machine, const char *what, int present,
                       const struct baseline_term *t, double balance, double truth,
                       double truth_balance)
{
    cr_expect(present, "%s: %s term missing", machine, what);
    if (!present)
        return;
    double tol = 0.05 * truth;
    cr_expect(fabs(t->value - truth) <= tol, "%s %s: %.4f vs truth %.4f (%.1f%%, allowed %.4f)",
              machine, what, t->value, truth, 100 * (t->value / truth - 1), tol);
    if (!isnan(truth_balance))
        cr_expect(fabs(balance - truth_balance) <= 1.0, "%s %s balance point %.1f vs truth %.1f",
                  machine, what, balance, truth_balance);
}

Test(baseline_demo, daily_recovers_truth_seed_42, .timeout = 120)
{
    cr_log_info("seed %llu", (unsigned long long)demo_seed());
    for (size_t i = 0; i < DEMO_MACHINE_COUNT; i++) {
        const struct demo_machine *m = &demo_machines[i];
        struct demo_series d;
        struct baseline_result r;
        demo_series_load(&d, i, YEAR_H, 1);
        fit_demo(&d, BASELINE_DAILY, &r);
        const struct baseline_model *b = &r.model;
        char name[96];
        baseline_model_name(b, name, sizeof name);
        cr_log_info("%s: %s, n=%zu, R2 %.4f, CV(RMSE) %.2f%%, holdout CV(RMSE) %.2f%%", m->name,
                    name, b->n, r.fit.r2, r.fit.cv_rmse, r.holdout.cv_rmse);

        /* Daily units: Sunday intercept = 24 base + the hour profile's sum;
         * degree-days are degree-hours / 24, so a coefficient per
         * degree-day is 24 times the one per degree-hour. */
        double intercept = 24 * m->base_kwh;
        for (int h = 0; h < 24; h++)
            intercept += m->hour_kwh[h];
        check_term(m->name, "intercept", 1, &b->intercept, NAN, intercept, NAN);
        cr_expect(b->has_weekday, "%s: weekday indicators dropped", m->name);
        cr_expect_eq(b->has_production, m->has_production, "%s production", m->name);
        if (m->has_production)
            check_term(m->name, "production", b->has_production, &b->production, NAN,
                       m->kwh_per_unit, NAN);
        /* No term the generator does not have (BIC guards the entry). */
        cr_expect_eq(b->has_heating, m->heat_kwh_per_dh != 0, "%s heating", m->name);
        if (m->heat_kwh_per_dh != 0)
            check_term(m->name, "heating", b->has_heating, &b->heating, b->heat_balance_c,
                       24 * m->heat_kwh_per_dh, m->heat_balance_c);
        cr_expect_eq(b->has_cooling, m->cool_kwh_per_dh != 0, "%s cooling", m->name);
        if (m->cool_kwh_per_dh != 0)
            check_term(m->name, "cooling", b->has_cooling, &b->cooling, b->cool_balance_c,
                       24 * m->cool_kwh_per_dh, m->cool_balance_c);
        /* Guideline 14: the demo baselines meet the daily limits, on the fit
         * and on the holdout. */
        cr_expect(r.fit.meets_limits, "%s misses the limits", m->name);
        cr_expect(r.holdout_valid && r.holdout.meets_limits, "%s holdout misses the limits",
                  m->name);
        /* OLS with an intercept has NMBE 0 in sample; a GLS fit (AR(1)
         * errors, when the residuals are autocorrelated) only nearly. */
        cr_expect(fabs(r.fit.nmbe) < 0.1, "%s in-sample NMBE %.3g", m->name, r.fit.nmbe);
        cr_log_info(
            "%s: cooling %.3f +- %.3f @ %.1f (%+.1f%% of the truth), heating %.3f @ %.1f "
            "(%+.1f%%), NMBE %.2g",
            m->name, b->cooling.value, b->cooling.se, b->cool_balance_c,
            m->cool_kwh_per_dh != 0 ? 100 * (b->cooling.value / (24 * m->cool_kwh_per_dh) - 1)
                                    : 0.0,
            b->heating.value, b->heat_balance_c,
            m->heat_kwh_per_dh != 0 ? 100 * (b->heating.value / (24 * m->heat_kwh_per_dh) - 1)
                                    : 0.0,
            r.fit.nmbe);
        demo_series_free(&d);
    }
}

/* The holdout is the last 20 % of the days, the procedure rerun on the rest. */
Test(baseline_demo, holdout_and_prediction)
{
    struct demo_series d;
    struct baseline_result r;
    demo_series_load(&d, 7, YEAR_H, 1); /* Boiler-1 */
    fit_demo(&d, BASELINE_DAILY, &r);
    cr_expect(r.holdout_valid);
    cr_expect_eq(r.holdout.n, r.rows_used - (size_t)floor(r.rows_used * 0.8));
    cr_expect_eq(r.holdout.p, 0);
    cr_expect_eq(r.fit.n, r.rows_used);
    cr_expect_eq(r.fit.p, r.model.p);
    cr_expect_eq(r.model.n, r.rows_used);
    /* Predictions from the artifact reproduce the fit's statistics. */
    struct series_days days;
    char err[256];
    cr_assert_eq(series_daily(&d.s, &days, err, sizeof err), 0);
    double *pred = malloc(days.n * sizeof *pred);
    cr_assert_not_null(pred);
    cr_assert_eq(baseline_predict_days(&r.model, &days, pred, err, sizeof err), 0);
    double sse = 0;
    for (size_t i = 0; i < days.n; i++)
        sse += (days.energy[i] - pred[i]) * (days.energy[i] - pred[i]);
    cr_expect(fabs(sse - r.fit.sse) <= 1e-6 * r.fit.sse, "sse %.6f vs %.6f", sse, r.fit.sse);
    cr_expect_eq(baseline_predict_hours(&r.model, &d.s, pred, err, sizeof err), ENMS_EINVAL);
    free(pred);
    series_days_free(&days);
    demo_series_free(&d);
}

Test(baseline_demo, insufficient_data_message)
{
    struct demo_series d;
    struct baseline_result r;
    struct baseline_config cfg;
    char err[256] = "";
    demo_series_load(&d, 0, 12 * 24, 0);
    d.s.utc_offset_s = 0; /* twelve whole UTC days */
    baseline_config_default(&cfg, BASELINE_DAILY);
    cr_expect_eq(baseline_fit(&d.s, &cfg, NULL, &r, err, sizeof err), ENMS_EINVAL);
    cr_expect_str_eq(err, "insufficient data: 12 days, need 30");
    demo_series_free(&d);
}

/* ---- hooks ---------------------------------------------------------------- */

struct hook_log {
    int calls, stop_after;
    double last_fraction, max_gap_s, last_check;
    int backwards;
    char stages[512];
};

/* CPU time of this thread: the gap between cancel checks is work done by the
 * fit, and must not grow because other processes share the cores. */
static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void log_progress(void *opaque, double fraction, const char *stage)
{
    struct hook_log *l = opaque;
    if (fraction + 1e-12 < l->last_fraction)
        l->backwards++;
    l->last_fraction = fraction;
    if (!strstr(l->stages, stage) && strlen(l->stages) + strlen(stage) + 2 < sizeof l->stages) {
        strcat(l->stages, stage);
        strcat(l->stages, "|");
    }
}

static int log_stop(void *opaque)
{
    struct hook_log *l = opaque;
    double t = now_s();
    if (l->last_check > 0 && t - l->last_check > l->max_gap_s)
        l->max_gap_s = t - l->last_check;
    l->last_check = t;
    return l->stop_after > 0 && ++l->calls >= l->stop_after;
}

Test(baseline_hooks, progress_rises_and_cancel_is_checked_often, .timeout = 60)
{
    struct demo_series d;
    struct baseline_result r;
    struct baseline_config cfg;
    char err[256] = "";
    demo_series_load(&d, 1, YEAR_H, 0);
    baseline_config_default(&cfg, BASELINE_HOURLY);
    struct hook_log log = {0};
    struct model_hooks hooks = {log_progress, log_stop, &log};
    cr_assert_eq(baseline_fit(&d.s, &cfg, &hooks, &r, err, sizeof err), 0, "%s", err);
    cr_expect_eq(log.backwards, 0, "progress went backwards");
    cr_expect_eq(log.last_fraction, 1.0);
    cr_expect(strstr(log.stages, "aggregating") && strstr(log.stages, "searching balance points") &&
                  strstr(log.stages, "fitting") && strstr(log.stages, "evaluating"),
              "stages: %s", log.stages);
    /* The contract is "stop within a second of a cancel"; the model aims at
     * asking every ~100 ms. The bound leaves room for sanitizer builds and a
     * loaded CI machine while still failing a model that never asks. */
    cr_expect_lt(log.max_gap_s, 0.5, "should_stop not asked for %.3f s", log.max_gap_s);

    struct hook_log stop = {.stop_after = 20};
    struct model_hooks stop_hooks = {NULL, log_stop, &stop};
    cr_expect_eq(baseline_fit(&d.s, &cfg, &stop_hooks, &r, err, sizeof err), ENMS_ESTOPPED);
    demo_series_free(&d);
}

/* ---- series --------------------------------------------------------------- */

Test(series, report_gaps_duplicates_and_daily_completeness)
{
    /* Three local days (UTC offset +1 h): day 1 complete, day 2 with 19
     * hours, day 3 with 20 hours; one duplicate and one NAN. */
    time_t ts[80];
    double e[80];
    size_t n = 0;
    time_t start = END_2026 - 3600; /* local midnight at UTC+1 */
    for (int h = 0; h < 24; h++, n++) {
        ts[n] = start + h * 3600;
        e[n] = 1.0;
    }
    ts[n] = ts[n - 1]; /* duplicate of the last hour of day 1 */
    e[n++] = 100.0;
    for (int h = 0; h < 19; h++, n++) {
        ts[n] = start + 86400 + h * 3600;
        e[n] = 2.0;
    }
    for (int h = 0; h < 21; h++, n++) {
        ts[n] = start + 2 * 86400 + h * 3600;
        e[n] = h == 3 ? NAN : 3.0;
    }
    struct series s = {.n = n, .ts = ts, .energy = e, .utc_offset_s = 3600};
    struct series_report rep;
    char err[128];
    cr_assert_eq(series_check(&s, &rep, err, sizeof err), 0, "%s", err);
    cr_expect_eq(rep.duplicates, 1);
    cr_expect_eq(rep.missing_energy, 1);
    cr_expect_eq(rep.hours_spanned, 48 + 21);
    cr_expect_eq(rep.gap_hours, 5);
    cr_expect_eq(rep.hours_present, 24 + 19 + 20);

    struct series_days d;
    cr_assert_eq(series_daily(&s, &d, err, sizeof err), 0);
    cr_expect_eq(d.n, 2);
    cr_expect_eq(d.days_spanned, 3);
    cr_expect_eq(d.days_excluded, 1);
    cr_expect_eq(d.energy[0], 24.0, "duplicate ignored: %.1f", d.energy[0]);
    cr_expect_eq(d.hours[1], 20);
    cr_expect_eq(d.energy[1], 72.0, "20 hours scaled to 24");
    cr_expect_eq(d.start[0], start);
    cr_expect_eq(d.weekday[0], 3, "2026-01-01 is a Thursday");
    series_days_free(&d);

    ts[5] = ts[4] - 7200; /* out of order */
    cr_expect_eq(series_check(&s, &rep, err, sizeof err), ENMS_EINVAL);
    cr_expect_eq(series_local_hour(END_2026, -5 * 3600), 19);
    cr_expect_eq(series_local_weekday(END_2026, -5 * 3600), 2);
}

/* ---- artifact ------------------------------------------------------------- */

Test(baseline_json, round_trip_and_hostile_input, .timeout = 60)
{
    struct demo_series d;
    struct baseline_result r;
    demo_series_load(&d, 1, YEAR_H, 1); /* HVAC-Main: heating and cooling */
    fit_demo(&d, BASELINE_HOURLY, &r);
    cJSON *j = baseline_model_to_json(&r.model);
    cr_assert_not_null(j);
    char *text = cJSON_PrintUnformatted(j);
    cr_assert_not_null(text);
    cJSON *back = cJSON_Parse(text);
    struct baseline_model m;
    char err[256] = "";
    cr_assert_eq(baseline_model_from_json(back, &m, err, sizeof err), 0, "%s", err);
    double *p1 = malloc(YEAR_H * sizeof *p1), *p2 = malloc(YEAR_H * sizeof *p2);
    cr_assert(p1 && p2);
    cr_assert_eq(baseline_predict_hours(&r.model, &d.s, p1, err, sizeof err), 0);
    cr_assert_eq(baseline_predict_hours(&m, &d.s, p2, err, sizeof err), 0);
    cr_expect_eq(memcmp(p1, p2, YEAR_H * sizeof *p1), 0, "predictions differ after a round trip");
    cr_expect_eq(m.has_heating, 1);
    cr_expect_eq(m.heat_balance_c, r.model.heat_balance_c);
    cJSON *metrics = baseline_result_to_json(&r);
    cr_expect_not_null(cJSON_GetObjectItem(cJSON_GetObjectItem(metrics, "fit"), "cv_rmse_pct"));
    cJSON_Delete(metrics);

    /* Each mutation must be refused with EINVAL. */
    static const char *const bad[] = {
        "[]",
        "{\"model\":\"baseline\"}",
        "{\"model\":\"anomaly\",\"format\":1}",
        "{\"model\":\"baseline\",\"format\":2,\"granularity\":\"daily\",\"utc_offset_s\":0,"
        "\"intercept\":{\"value\":1}}",
        "{\"model\":\"baseline\",\"format\":1,\"granularity\":\"weekly\",\"utc_offset_s\":0,"
        "\"intercept\":{\"value\":1}}",
        "{\"model\":\"baseline\",\"format\":1,\"granularity\":\"daily\",\"utc_offset_s\":999999,"
        "\"intercept\":{\"value\":1}}",
        "{\"model\":\"baseline\",\"format\":1,\"granularity\":\"daily\",\"utc_offset_s\":0}",
        "{\"model\":\"baseline\",\"format\":1,\"granularity\":\"daily\",\"utc_offset_s\":0,"
        "\"intercept\":{\"value\":1e300}}",
        "{\"model\":\"baseline\",\"format\":1,\"granularity\":\"daily\",\"utc_offset_s\":0,"
        "\"intercept\":{\"value\":1},\"heating\":{\"value\":1,\"balance_point_c\":18},"
        "\"cooling\":{\"value\":1,\"balance_point_c\":15}}",
        "{\"model\":\"baseline\",\"format\":1,\"granularity\":\"daily\",\"utc_offset_s\":0,"
        "\"intercept\":{\"value\":1},\"heating\":{\"value\":1}}",
        "{\"model\":\"baseline\",\"format\":1,\"granularity\":\"daily\",\"utc_offset_s\":0,"
        "\"intercept\":{\"value\":1},\"weekday\":[1,2,3]}",
        "{\"model\":\"baseline\",\"format\":1,\"granularity\":\"hourly\",\"utc_offset_s\":0,"
        "\"intercept\":{\"value\":1}}",
        "{\"model\":\"baseline\",\"format\":1,\"granularity\":\"daily\",\"utc_offset_s\":0.5,"
        "\"intercept\":{\"value\":1}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *b = cJSON_Parse(bad[i]);
        cr_assert_not_null(b, "fixture %zu does not parse", i);
        err[0] = '\0';
        cr_expect_eq(baseline_model_from_json(b, &m, err, sizeof err), ENMS_EINVAL, "accepted %s",
                     bad[i]);
        cr_expect_neq(err[0], '\0', "no message for %s", bad[i]);
        cJSON_Delete(b);
    }
    cr_expect_eq(baseline_model_from_json(NULL, &m, err, sizeof err), ENMS_EINVAL);
    free(p1);
    free(p2);
    cJSON_Delete(back);
    cJSON_free(text);
    cJSON_Delete(j);
    demo_series_free(&d);
}
