/* test_demo_data.c - unit tests of the demo data generator (ctl/demo_data.c).
 *
 * The central test fits the documented model back onto the generated data
 * with ordinary least squares (GSL) and checks that the true constants come
 * out, and that a balance-point grid search finds the true balance points.
 * Each fit is judged in standard errors inflated for the AR(1) noise, and
 * each test also asserts that its tolerance is narrow enough that a term the
 * generator left out (true value estimated as 0) could not pass. */
#include <criterion/criterion.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_multifit.h>

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../../ctl/demo_data.h"
#include "../../common/error.h"

#define END_2026 ((time_t)1767225600) /* 2026-01-01T00:00:00Z */
#define YEAR_H   ((size_t)8760)
/* Golden output of seed 42 for the year 2025 (see golden_checksum). */
#define GOLDEN_SUM   3996515.8704 /* all machines' energy_kwh (generator version 2) */
#define GOLDEN_FIRST 82.6118      /* Compressor-1 at 2025-01-01T00:00:00Z */

/* Heating / cooling balance points assumed for machines without that term,
 * so the fit can show the term really is absent (coefficient ~ 0). */
#define ABSENT_HEAT_TB 15.0
#define ABSENT_COOL_TB 22.0

/* How many (AR-adjusted) standard errors an estimate may be from the truth.
 * The data are fixed by the seed, so this is not a flaky bound; 4 keeps a
 * correct generator well inside it (p ~ 6e-5 per check by chance) while a
 * wrong one is caught by the power check below. */
#define K_SE 4.0

static struct demo_reading *generate(size_t machine, uint64_t seed, time_t end, size_t hours,
                                     struct demo_anomaly *anomalies, size_t *count)
{
    struct demo_reading *r = calloc(hours, sizeof *r);
    char err[256] = "";
    cr_assert_not_null(r);
    int rc = demo_generate(machine, seed, end, hours, r, anomalies, DEMO_MAX_ANOMALIES, count, err,
                           sizeof err);
    cr_assert_eq(rc, ENMS_OK, "demo_generate: %s", err);
    return r;
}

/* ---- regression helpers ------------------------------------------------ */

struct design {
    int has_prod;
    size_t p;         /* number of columns */
    size_t c_prod;    /* column of production (when has_prod) */
    size_t c_heat;    /* heating degree-hours */
    size_t c_cool;    /* cooling degree-hours */
    size_t c_hour;    /* first of 23 hour dummies (hours 1..23) */
    size_t c_weekday; /* first of 6 weekday dummies (Monday..Saturday) */
};

static struct design design_for(const struct demo_machine *m)
{
    struct design d = {.has_prod = m->has_production};
    size_t c = 1; /* column 0 is the intercept */
    if (d.has_prod)
        d.c_prod = c++;
    d.c_heat = c++;
    d.c_cool = c++;
    d.c_hour = c;
    c += 23;
    d.c_weekday = c;
    c += 6;
    d.p = c;
    return d;
}

struct fit {
    size_t p;
    double coef[64];
    double se[64]; /* OLS standard errors times the AR(1) inflation factor */
    double sse;
    double rho; /* lag-1 autocorrelation of the residuals */
};

/* Rows of the non-anomalous hours; returns how many. */
static size_t fill_design(const struct demo_machine *m, const struct design *d,
                          const struct demo_reading *r, const bool *skip, size_t hours,
                          double tb_heat, double tb_cool, gsl_matrix *X, gsl_vector *y)
{
    size_t n = 0;
    for (size_t k = 0; k < hours; k++) {
        if (skip[k])
            continue;
        double t = r[k].outdoor_temp_c;
        for (size_t j = 0; j < d->p; j++)
            gsl_matrix_set(X, n, j, 0.0);
        gsl_matrix_set(X, n, 0, 1.0);
        if (d->has_prod)
            gsl_matrix_set(X, n, d->c_prod, r[k].production_count);
        gsl_matrix_set(X, n, d->c_heat, demo_heating_dh(t, tb_heat));
        gsl_matrix_set(X, n, d->c_cool, demo_cooling_dh(t, tb_cool));
        int h = demo_local_hour(m, r[k].ts), wd = demo_local_weekday(m, r[k].ts);
        if (h > 0)
            gsl_matrix_set(X, n, d->c_hour + (size_t)h - 1, 1.0);
        if (wd < 6)
            gsl_matrix_set(X, n, d->c_weekday + (size_t)wd, 1.0);
        gsl_vector_set(y, n, r[k].energy_kwh);
        n++;
    }
    return n;
}

static void ols(const struct demo_machine *m, const struct demo_reading *r, const bool *skip,
                size_t hours, double tb_heat, double tb_cool, struct fit *out)
{
    struct design d = design_for(m);
    size_t n = 0;
    for (size_t k = 0; k < hours; k++)
        n += !skip[k];
    gsl_matrix *Xfull = gsl_matrix_alloc(n, d.p);
    gsl_vector *yfull = gsl_vector_alloc(n);
    gsl_vector *c = gsl_vector_alloc(d.p);
    gsl_matrix *cov = gsl_matrix_alloc(d.p, d.p);
    gsl_multifit_linear_workspace *ws = gsl_multifit_linear_alloc(n, d.p);
    cr_assert(Xfull && yfull && c && cov && ws);

    size_t rows = fill_design(m, &d, r, skip, hours, tb_heat, tb_cool, Xfull, yfull);
    cr_assert_eq(rows, n);
    double chisq = 0;
    cr_assert_eq(gsl_multifit_linear(Xfull, yfull, c, cov, &chisq, ws), 0);

    /* Residual lag-1 autocorrelation (rows are consecutive hours except
     * across the few removed anomaly windows, which barely matters). */
    double s0 = 0, s1 = 0, prev = 0;
    for (size_t i = 0; i < n; i++) {
        gsl_vector_const_view row = gsl_matrix_const_row(Xfull, i);
        double fitted = 0;
        gsl_blas_ddot(&row.vector, c, &fitted);
        double e = gsl_vector_get(yfull, i) - fitted;
        s0 += e * e;
        if (i > 0)
            s1 += e * prev;
        prev = e;
    }
    out->rho = s1 / s0;
    /* For AR(1) errors the variance of an OLS coefficient grows by at most
     * (1 + rho)/(1 - rho) (reached for very persistent regressors such as
     * degree-hours), so this factor is conservative. */
    double inflate = sqrt((1.0 + out->rho) / (1.0 - out->rho));
    out->p = d.p;
    out->sse = chisq;
    for (size_t j = 0; j < d.p; j++) {
        out->coef[j] = gsl_vector_get(c, j);
        out->se[j] = sqrt(gsl_matrix_get(cov, j, j)) * inflate;
    }
    gsl_multifit_linear_free(ws);
    gsl_matrix_free(cov);
    gsl_vector_free(c);
    gsl_vector_free(yfull);
    gsl_matrix_free(Xfull);
}

static bool *anomaly_mask(const struct demo_reading *r, size_t hours, const struct demo_anomaly *a,
                          size_t count)
{
    bool *skip = calloc(hours, sizeof *skip);
    cr_assert_not_null(skip);
    for (size_t i = 0; i < count; i++)
        for (time_t ts = a[i].start; ts < a[i].end; ts += 3600)
            skip[(ts - r[0].ts) / 3600] = true;
    return skip;
}

/* The estimate must be within K_SE standard errors of the truth. For a term
 * that exists, the truth must also be at least 2 * K_SE standard errors from
 * 0: had the generator dropped the term, the estimate would sit near 0, at
 * least K_SE standard errors outside the band, and fail. (Relative bounds
 * such as 5% would be too tight for the weak cooling terms of compressors
 * in cool climates, about 7% per standard error, and needlessly loose for
 * production coefficients, 0.2% per standard error.) */
static void check_coef(const char *machine, const char *what, double est, double se, double truth)
{
    cr_expect(fabs(est - truth) <= K_SE * se,
              "%s %s: estimated %.4f, true %.4f, allowed +-%.4f (%.1f%%)", machine, what, est,
              truth, K_SE * se, truth != 0 ? 100.0 * K_SE * se / fabs(truth) : 0.0);
    if (truth != 0.0)
        cr_expect(2.0 * K_SE * se <= fabs(truth),
                  "%s %s: tolerance +-%.4f too wide to tell %.4f from 0", machine, what, K_SE * se,
                  truth);
}

/* ---- the key test: the documented truth comes back --------------------- */

static void check_recovery(uint64_t seed)
{
    for (size_t i = 0; i < DEMO_MACHINE_COUNT; i++) {
        const struct demo_machine *m = &demo_machines[i];
        struct demo_anomaly a[DEMO_MAX_ANOMALIES];
        size_t na = 0;
        struct demo_reading *r = generate(i, seed, END_2026, YEAR_H, a, &na);
        bool *skip = anomaly_mask(r, YEAR_H, a, na);
        double tb_heat = m->heat_kwh_per_dh != 0 ? m->heat_balance_c : ABSENT_HEAT_TB;
        double tb_cool = m->cool_kwh_per_dh != 0 ? m->cool_balance_c : ABSENT_COOL_TB;
        struct design d = design_for(m);
        struct fit f;
        ols(m, r, skip, YEAR_H, tb_heat, tb_cool, &f);

        check_coef(m->name, "base load", f.coef[0], f.se[0], m->base_kwh);
        if (d.has_prod)
            check_coef(m->name, "kWh per unit", f.coef[d.c_prod], f.se[d.c_prod], m->kwh_per_unit);
        check_coef(m->name, "heating kWh/degree-hour", f.coef[d.c_heat], f.se[d.c_heat],
                   m->heat_kwh_per_dh);
        check_coef(m->name, "cooling kWh/degree-hour", f.coef[d.c_cool], f.se[d.c_cool],
                   m->cool_kwh_per_dh);
        /* Profiles: each dummy against its constant. Only the band check,
         * not the power check: several true increments are 0. */
        for (int h = 1; h < 24; h++) {
            size_t c = d.c_hour + (size_t)h - 1;
            cr_expect(fabs(f.coef[c] - m->hour_kwh[h]) <= K_SE * f.se[c],
                      "%s hour %d: estimated %.3f, true %.3f, allowed +-%.3f", m->name, h,
                      f.coef[c], m->hour_kwh[h], K_SE * f.se[c]);
        }
        for (int wd = 0; wd < 6; wd++) {
            size_t c = d.c_weekday + (size_t)wd;
            cr_expect(fabs(f.coef[c] - m->weekday_kwh[wd]) <= K_SE * f.se[c],
                      "%s weekday %d: estimated %.3f, true %.3f, allowed +-%.3f", m->name, wd,
                      f.coef[c], m->weekday_kwh[wd], K_SE * f.se[c]);
        }
        /* The noise: residual autocorrelation near phi, residual spread
         * near the stationary standard deviation. */
        double sd_true = m->noise_sigma_kwh / sqrt(1 - m->noise_phi * m->noise_phi);
        double n = 0;
        for (size_t k = 0; k < YEAR_H; k++)
            n += !skip[k];
        double sd = sqrt(f.sse / (n - (double)f.p));
        cr_expect(fabs(f.rho - m->noise_phi) < 0.05, "%s: residual rho %.3f, true phi %.3f",
                  m->name, f.rho, m->noise_phi);
        cr_expect(fabs(sd / sd_true - 1) < 0.10, "%s: residual sd %.3f, true %.3f", m->name, sd,
                  sd_true);
        free(skip);
        free(r);
    }
}

Test(demo_truth, regression_recovers_coefficients_seed_42)
{
    check_recovery(DEMO_DEFAULT_SEED);
}

/* A second seed shows that the first passing is not luck of the draw. */
Test(demo_truth, regression_recovers_coefficients_other_seed)
{
    check_recovery(20260101);
}

/* Balance point by grid search, as a change-point baseline model finds it:
 * for each candidate in 5..25 degC (0.5 steps) refit with the other balance
 * point at its true value and keep the smallest SSE. The fits share every
 * column but one, so the shared columns Z are factored once (QR) and each
 * candidate column h only needs its projection: with ry and rh the
 * residuals of y and h on Z, SSE = |ry|^2 - (ry.rh)^2 / |rh|^2
 * (Frisch-Waugh-Lovell). 41 fits then cost about as much as one. */
static double grid_search(const struct demo_machine *m, const struct demo_reading *r,
                          const bool *skip, bool heating)
{
    struct design d = design_for(m);
    double th = m->heat_kwh_per_dh != 0 ? m->heat_balance_c : ABSENT_HEAT_TB;
    double tc = m->cool_kwh_per_dh != 0 ? m->cool_balance_c : ABSENT_COOL_TB;
    size_t searched = heating ? d.c_heat : d.c_cool;
    size_t n = 0;
    for (size_t k = 0; k < YEAR_H; k++)
        n += !skip[k];

    gsl_matrix *X = gsl_matrix_alloc(n, d.p);
    gsl_matrix *Z = gsl_matrix_alloc(n, d.p - 1);
    gsl_vector *y = gsl_vector_alloc(n);
    gsl_vector *h = gsl_vector_alloc(n);
    gsl_vector *tau = gsl_vector_alloc(d.p - 1);
    double *temps = malloc(n * sizeof *temps);
    cr_assert(X && Z && y && h && tau && temps);
    fill_design(m, &d, r, skip, YEAR_H, th, tc, X, y);
    for (size_t j = 0, z = 0; j < d.p; j++) {
        if (j == searched)
            continue;
        gsl_vector_view col = gsl_matrix_column(X, j);
        gsl_matrix_set_col(Z, z++, &col.vector);
    }
    for (size_t k = 0, i = 0; k < YEAR_H; k++)
        if (!skip[k])
            temps[i++] = r[k].outdoor_temp_c;
    cr_assert_eq(gsl_linalg_QR_decomp(Z, tau), 0);
    cr_assert_eq(gsl_linalg_QR_QTvec(Z, tau, y), 0);

    /* Rows p-1.. of Q'v are the residual of v in rotated coordinates. */
    double ry2 = 0;
    for (size_t i = d.p - 1; i < n; i++)
        ry2 += gsl_vector_get(y, i) * gsl_vector_get(y, i);
    double best_tb = NAN, best_sse = INFINITY;
    for (int step = 0; step <= 40; step++) {
        double tb = 5.0 + 0.5 * step;
        for (size_t i = 0; i < n; i++)
            gsl_vector_set(h, i,
                           heating ? demo_heating_dh(temps[i], tb) : demo_cooling_dh(temps[i], tb));
        cr_assert_eq(gsl_linalg_QR_QTvec(Z, tau, h), 0);
        double rh2 = 0, cross = 0;
        for (size_t i = d.p - 1; i < n; i++) {
            rh2 += gsl_vector_get(h, i) * gsl_vector_get(h, i);
            cross += gsl_vector_get(h, i) * gsl_vector_get(y, i);
        }
        double sse = rh2 > 0 ? ry2 - cross * cross / rh2 : ry2;
        if (sse < best_sse) {
            best_sse = sse;
            best_tb = tb;
        }
    }
    free(temps);
    gsl_vector_free(tau);
    gsl_vector_free(h);
    gsl_vector_free(y);
    gsl_matrix_free(Z);
    gsl_matrix_free(X);
    return best_tb;
}

Test(demo_truth, balance_point_grid_search, .timeout = 60)
{
    int checked = 0;
    for (size_t i = 0; i < DEMO_MACHINE_COUNT; i++) {
        const struct demo_machine *m = &demo_machines[i];
        if (m->heat_kwh_per_dh == 0 && m->cool_kwh_per_dh == 0)
            continue;
        struct demo_anomaly a[DEMO_MAX_ANOMALIES];
        size_t na = 0;
        struct demo_reading *r = generate(i, DEMO_DEFAULT_SEED, END_2026, YEAR_H, a, &na);
        bool *skip = anomaly_mask(r, YEAR_H, a, na);
        if (m->heat_kwh_per_dh != 0) {
            double tb = grid_search(m, r, skip, true);
            cr_expect(fabs(tb - m->heat_balance_c) <= 1.0,
                      "%s heating balance point: found %.1f, true %.1f", m->name, tb,
                      m->heat_balance_c);
            checked++;
        }
        if (m->cool_kwh_per_dh != 0) {
            double tb = grid_search(m, r, skip, false);
            cr_expect(fabs(tb - m->cool_balance_c) <= 1.0,
                      "%s cooling balance point: found %.1f, true %.1f", m->name, tb,
                      m->cool_balance_c);
            checked++;
        }
        free(skip);
        free(r);
    }
    /* Two HVACs (heat and cool), the boiler and five cooling terms. */
    cr_expect_eq(checked, 9);
}

/* ---- determinism ------------------------------------------------------- */

Test(demo_data, same_seed_same_data)
{
    for (size_t i = 0; i < DEMO_MACHINE_COUNT; i++) {
        struct demo_anomaly a1[DEMO_MAX_ANOMALIES], a2[DEMO_MAX_ANOMALIES];
        size_t n1 = 0, n2 = 0;
        struct demo_reading *r1 = generate(i, 42, END_2026, YEAR_H, a1, &n1);
        struct demo_reading *r2 = generate(i, 42, END_2026, YEAR_H, a2, &n2);
        cr_expect_eq(memcmp(r1, r2, YEAR_H * sizeof *r1), 0, "machine %zu differs", i);
        cr_expect_eq(n1, n2);
        for (size_t j = 0; j < n1 && j < n2; j++) {
            /* Field by field: struct padding is not part of the output. */
            cr_expect_eq(a1[j].start, a2[j].start);
            cr_expect_eq(a1[j].end, a2[j].end);
            cr_expect_eq(a1[j].kind, a2[j].kind);
            cr_expect_eq(a1[j].factor, a2[j].factor);
        }
        free(r1);
        free(r2);
    }
}

Test(demo_data, other_seed_other_data)
{
    struct demo_anomaly a1[DEMO_MAX_ANOMALIES], a2[DEMO_MAX_ANOMALIES];
    size_t n1 = 0, n2 = 0;
    struct demo_reading *r1 = generate(0, 42, END_2026, YEAR_H, a1, &n1);
    struct demo_reading *r2 = generate(0, 43, END_2026, YEAR_H, a2, &n2);
    size_t same_energy = 0, same_temp = 0;
    for (size_t k = 0; k < YEAR_H; k++) {
        cr_assert_eq(r1[k].ts, r2[k].ts);
        same_energy += r1[k].energy_kwh == r2[k].energy_kwh;
        same_temp += r1[k].outdoor_temp_c == r2[k].outdoor_temp_c;
    }
    cr_expect_lt(same_energy, YEAR_H / 100, "%zu of %zu energies equal", same_energy, YEAR_H);
    cr_expect_lt(same_temp, YEAR_H / 10, "%zu of %zu temperatures equal", same_temp, YEAR_H);
    cr_expect(n1 != n2 || a1[0].start != a2[0].start || a1[1].start != a2[1].start,
              "anomalies did not move with the seed");
    free(r1);
    free(r2);
}

/* Golden values pin the output across platforms and refactorings: if they
 * change, DEMO_GENERATOR_VERSION and docs/demo-data.md must change too. */
Test(demo_data, golden_checksum)
{
    double sum = 0, first = 0;
    for (size_t i = 0; i < DEMO_MACHINE_COUNT; i++) {
        struct demo_anomaly a[DEMO_MAX_ANOMALIES];
        size_t na = 0;
        struct demo_reading *r = generate(i, 42, END_2026, YEAR_H, a, &na);
        for (size_t k = 0; k < YEAR_H; k++)
            sum += r[k].energy_kwh;
        if (i == 0)
            first = r[0].energy_kwh;
        free(r);
    }
    cr_expect(fabs(sum - GOLDEN_SUM) < 1e-3, "sum of energy %.4f, golden %.4f", sum, GOLDEN_SUM);
    cr_expect_eq(first, GOLDEN_FIRST, "first reading %.4f, golden %.4f", first, GOLDEN_FIRST);
}

/* ---- shape of the data ------------------------------------------------- */

Test(demo_data, hourly_rows_in_window)
{
    for (size_t i = 0; i < DEMO_MACHINE_COUNT; i++) {
        const struct demo_machine *m = &demo_machines[i];
        struct demo_anomaly a[DEMO_MAX_ANOMALIES];
        size_t na = 0;
        struct demo_reading *r = generate(i, 42, END_2026, YEAR_H, a, &na);
        cr_expect_eq(r[0].ts, END_2026 - (time_t)(YEAR_H * 3600));
        cr_expect_eq(r[YEAR_H - 1].ts, END_2026 - 3600);
        for (size_t k = 0; k < YEAR_H; k++) {
            cr_assert_eq(r[k].ts % 3600, 0);
            if (k > 0)
                cr_assert_eq(r[k].ts, r[k - 1].ts + 3600, "%s row %zu", m->name, k);
            cr_assert(r[k].energy_kwh >= 0.0 && isfinite(r[k].energy_kwh));
            cr_assert(r[k].outdoor_temp_c > -45.0 && r[k].outdoor_temp_c < 48.0,
                      "%s: implausible temperature %.2f", m->name, r[k].outdoor_temp_c);
            if (!m->has_production) {
                cr_assert(isnan(r[k].production_count));
                continue;
            }
            double p = r[k].production_count;
            cr_assert(p >= 0.0 && p == floor(p), "%s: production %.3f", m->name, p);
            int h = demo_local_hour(m, r[k].ts), wd = demo_local_weekday(m, r[k].ts);
            if (!(m->shift_hours[wd] & (1u << h)))
                cr_assert_eq(p, 0.0, "%s: production outside its shifts", m->name);
        }
        free(r);
    }
}

Test(demo_data, short_and_long_windows)
{
    struct demo_anomaly a[DEMO_MAX_ANOMALIES];
    size_t na = 99;
    struct demo_reading *r = generate(1, 42, END_2026, 24, a, &na);
    cr_expect_eq(na, 0, "a one-day window has no room for anomalies");
    free(r);
    r = generate(1, 42, END_2026, 3660 * 24, a, &na);
    cr_expect_eq(na, DEMO_MAX_ANOMALIES);
    free(r);

    char err[128];
    struct demo_reading one;
    cr_expect_eq(demo_generate_clean(0, 42, END_2026 + 60, 1, &one, err, sizeof err), ENMS_EINVAL);
    cr_expect_eq(demo_generate_clean(0, 42, END_2026, 0, &one, err, sizeof err), ENMS_EINVAL);
    cr_expect_eq(demo_generate_clean(DEMO_MACHINE_COUNT, 42, END_2026, 1, &one, err, sizeof err),
                 ENMS_EINVAL);
    cr_expect_eq(demo_generate_clean(0, 42, 3600, 2, &one, err, sizeof err), ENMS_EINVAL);
}

Test(demo_data, machines_match_original_system)
{
    static const char *const names[DEMO_MACHINE_COUNT] = {
        "Compressor-1",        "HVAC-Main",       "Conveyor-A",    "Hydraulic-Pump-1",
        "Injection-Molding-1", "Compressor-EU-1", "HVAC-EU-North", "Boiler-1"};
    static const char *const types[DEMO_MACHINE_COUNT] = {
        "compressor",        "hvac",       "conveyor", "pump",
        "injection_molding", "compressor", "hvac",     "boiler"};
    for (size_t i = 0; i < DEMO_MACHINE_COUNT; i++) {
        char id[40];
        snprintf(id, sizeof id, "c0000000-0000-0000-0000-%012zu", i + 1);
        cr_expect_str_eq(demo_machines[i].id, id);
        cr_expect_str_eq(demo_machines[i].name, names[i]);
        cr_expect_str_eq(demo_machines[i].type, types[i]);
        cr_expect_gt(demo_machines[i].rated_power_kw, 0);
        cr_expect_eq(demo_machines[i].hour_kwh[0], 0, "hour 0 is the reference");
        cr_expect_eq(demo_machines[i].weekday_kwh[6], 0, "Sunday is the reference");
    }
}

/* Machines at one site share the weather; the EU North site is colder. */
Test(demo_data, climate)
{
    struct demo_anomaly a[DEMO_MAX_ANOMALIES];
    size_t na;
    struct demo_reading *c1 = generate(0, 42, END_2026, YEAR_H, a, &na);     /* Plant A */
    struct demo_reading *boiler = generate(7, 42, END_2026, YEAR_H, a, &na); /* Plant A */
    struct demo_reading *north = generate(6, 42, END_2026, YEAR_H, a, &na);  /* Stockholm */
    double mean_a = 0, mean_north = 0, jan_a = 0, jul_a = 0;
    for (size_t k = 0; k < YEAR_H; k++) {
        cr_assert_eq(c1[k].outdoor_temp_c, boiler[k].outdoor_temp_c);
        mean_a += c1[k].outdoor_temp_c / (double)YEAR_H;
        mean_north += north[k].outdoor_temp_c / (double)YEAR_H;
        if (k < 31 * 24)
            jan_a += c1[k].outdoor_temp_c / (31.0 * 24);
        else if (k >= 181 * 24 && k < 212 * 24)
            jul_a += c1[k].outdoor_temp_c / (31.0 * 24);
    }
    cr_expect(fabs(mean_a - demo_sites[0].mean_c) < 2.0, "Plant A mean %.2f", mean_a);
    cr_expect_lt(mean_north, mean_a - 2.0, "EU North %.2f not colder than Plant A %.2f", mean_north,
                 mean_a);
    cr_expect_gt(jul_a - jan_a, 15.0, "Plant A July %.1f vs January %.1f", jul_a, jan_a);
    free(c1);
    free(boiler);
    free(north);
}

/* ---- anomalies --------------------------------------------------------- */

Test(demo_anomalies, labelled_and_real)
{
    size_t total = 0;
    for (size_t i = 0; i < DEMO_MACHINE_COUNT; i++) {
        const struct demo_machine *m = &demo_machines[i];
        struct demo_reading *clean = calloc(YEAR_H, sizeof *clean);
        struct demo_reading *r = calloc(YEAR_H, sizeof *r);
        char err[128];
        cr_assert(clean && r);
        cr_assert_eq(demo_generate_clean(i, 42, END_2026, YEAR_H, clean, err, sizeof err), 0);
        memcpy(r, clean, YEAR_H * sizeof *r);
        struct demo_anomaly a[DEMO_MAX_ANOMALIES];
        size_t na = 0;
        cr_assert_eq(
            demo_inject_anomalies(i, 42, r, YEAR_H, a, DEMO_MAX_ANOMALIES, &na, err, sizeof err),
            0);
        cr_expect_eq(na, DEMO_MAX_ANOMALIES, "%s has %zu anomalies", m->name, na);
        total += na;

        int kinds[3] = {0, 0, 0};
        bool *inside = anomaly_mask(r, YEAR_H, a, na);
        for (size_t j = 0; j < na; j++) {
            kinds[a[j].kind]++;
            cr_expect(a[j].start >= r[0].ts && a[j].end <= r[YEAR_H - 1].ts + 3600);
            cr_expect(a[j].start < a[j].end);
            if (j > 0)
                cr_expect(a[j - 1].end <= a[j].start, "sorted and disjoint");
            size_t s = (size_t)(a[j].start - r[0].ts) / 3600;
            size_t len = (size_t)(a[j].end - a[j].start) / 3600;
            switch (a[j].kind) {
            case DEMO_SPIKE:
                cr_expect_eq(len, 1);
                cr_expect(a[j].factor >= 2.0 && a[j].factor <= 3.0);
                cr_expect_gt(r[s].energy_kwh, 1.9 * clean[s].energy_kwh, "%s spike", m->name);
                break;
            case DEMO_LEVEL_SHIFT:
                cr_expect(len >= 24 && len <= 72, "level shift of %zu h", len);
                for (size_t k = s; k < s + len; k++)
                    cr_expect(fabs(r[k].energy_kwh - clean[k].energy_kwh * a[j].factor) < 1e-3);
                cr_expect(a[j].factor >= 1.25 && a[j].factor <= 1.40);
                break;
            case DEMO_STUCK_METER:
                cr_expect(len >= 12 && len <= 24, "stuck meter of %zu h", len);
                for (size_t k = s; k < s + len; k++)
                    cr_expect_eq(r[k].energy_kwh, r[s - 1].energy_kwh, "stuck meter moved");
                cr_expect_eq(a[j].factor, r[s].energy_kwh);
                break;
            }
        }
        cr_expect_eq(kinds[DEMO_SPIKE], 3);
        cr_expect_eq(kinds[DEMO_LEVEL_SHIFT], 1);
        cr_expect_eq(kinds[DEMO_STUCK_METER], 1);
        /* Outside the labels nothing changed; production and temperature
         * are never touched. */
        for (size_t k = 0; k < YEAR_H; k++) {
            if (!inside[k])
                cr_assert_eq(r[k].energy_kwh, clean[k].energy_kwh);
            cr_assert(r[k].energy_kwh >= 0);
            cr_assert_eq(r[k].outdoor_temp_c, clean[k].outdoor_temp_c);
        }
        free(inside);
        free(r);
        free(clean);
    }
    cr_expect_eq(total, 40);
}

/* ---- truth JSON, dates ------------------------------------------------- */

Test(demo_truth, json_matches_table)
{
    struct demo_anomaly a[DEMO_MAX_ANOMALIES];
    size_t na = 0;
    struct demo_reading *r = generate(1, 42, END_2026, YEAR_H, a, &na);
    cJSON *t = demo_truth_json(1, 42, END_2026, YEAR_H, a, na);
    cr_assert_not_null(t);
    cr_expect_str_eq(cJSON_GetObjectItem(t, "machine_id")->valuestring,
                     "c0000000-0000-0000-0000-000000000002");
    cr_expect_eq(cJSON_GetObjectItem(t, "seed")->valuedouble, 42);
    cr_expect_eq(cJSON_GetObjectItem(t, "base_load_kwh")->valuedouble, 35.0);
    cJSON *heat = cJSON_GetObjectItem(t, "heating");
    cr_expect_eq(cJSON_GetObjectItem(heat, "balance_point_c")->valuedouble, 15.0);
    cr_expect_eq(cJSON_GetObjectItem(heat, "kwh_per_degree_hour")->valuedouble, 1.8);
    cr_expect(cJSON_IsNull(cJSON_GetObjectItem(t, "production_kwh_per_unit")));
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(t, "hour_profile_kwh")), 24);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(t, "weekday_profile_kwh")), 7);
    cJSON *window = cJSON_GetObjectItem(t, "window");
    cr_expect_str_eq(cJSON_GetObjectItem(window, "start")->valuestring, "2025-01-01T00:00:00Z");
    cr_expect_str_eq(cJSON_GetObjectItem(window, "end")->valuestring, "2026-01-01T00:00:00Z");
    cJSON *anoms = cJSON_GetObjectItem(t, "anomalies");
    cr_assert_eq(cJSON_GetArraySize(anoms), (int)na);
    char start[32];
    cr_assert_eq(demo_format_time(a[0].start, start, sizeof start), 0);
    cJSON *first = cJSON_GetArrayItem(anoms, 0);
    cr_expect_str_eq(cJSON_GetObjectItem(first, "start")->valuestring, start);
    cr_expect_str_eq(cJSON_GetObjectItem(first, "kind")->valuestring,
                     demo_anomaly_kind_name(a[0].kind));
    cJSON_Delete(t);

    /* A machine without heating says so with null, not a made-up number. */
    t = demo_truth_json(2, 42, END_2026, YEAR_H, NULL, 0);
    cr_assert_not_null(t);
    cr_expect(
        cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(t, "heating"), "balance_point_c")));
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItem(t, "anomalies")), 0);
    cJSON_Delete(t);
    cr_expect_null(demo_truth_json(DEMO_MACHINE_COUNT, 42, END_2026, YEAR_H, NULL, 0));
    free(r);
}

Test(demo_dates, parse_and_format)
{
    time_t t = 0;
    char buf[32];
    cr_expect_eq(demo_parse_date("2026-01-01", &t), 0);
    cr_expect_eq(t, END_2026);
    cr_expect_eq(demo_parse_date("1970-01-01", &t), 0);
    cr_expect_eq(t, 0);
    cr_expect_eq(demo_parse_date("2024-02-29", &t), 0);
    cr_expect_eq(demo_format_time(t, buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "2024-02-29T00:00:00Z");
    cr_expect_eq(demo_format_time(END_2026 - 1, buf, sizeof buf), 0);
    cr_expect_str_eq(buf, "2025-12-31T23:59:59Z");
    cr_expect_eq(demo_format_time(END_2026, buf, 20), ENMS_ETOOBIG);

    static const char *const bad[] = {"2026-13-01", "2025-02-29",  "2026-00-10", "2026-04-31",
                                      "2026-1-01",  "2026-01-01x", "",           "1969-12-31",
                                      "abcd-01-01", "2026/01/01",  "2026-01-00", "+026-01-01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(demo_parse_date(bad[i], &t), ENMS_EINVAL, "accepted \"%s\"", bad[i]);
    cr_expect_eq(demo_parse_date(NULL, &t), ENMS_EINVAL);
}

Test(demo_data, local_calendar)
{
    /* 2026-01-01 00:00 UTC is a Thursday; in Columbus (UTC-5) it is still
     * Wednesday 19:00, in Stuttgart (UTC+1) Thursday 01:00. */
    cr_expect_eq(demo_local_hour(&demo_machines[0], END_2026), 19);
    cr_expect_eq(demo_local_weekday(&demo_machines[0], END_2026), 2);
    cr_expect_eq(demo_local_hour(&demo_machines[5], END_2026), 1);
    cr_expect_eq(demo_local_weekday(&demo_machines[5], END_2026), 3);
    cr_expect_str_eq(demo_anomaly_kind_name(DEMO_STUCK_METER), "stuck_meter");
}
