/* baseline.h - the energy baseline: energy regressed on its drivers
 * (production, heating and cooling degree-days with balance points found by
 * search) in the change-point way of CalTRACK's daily methods, judged by the
 * statistics of ASHRAE Guideline 14.
 *
 * A fit selects among intercept-only, HDD, CDD and HDD+CDD models, each with
 * and without production and with and without day-of-week indicators, keeps
 * the one with the best adjusted R^2 whose driver coefficients have the
 * physical sign (positive), and reports n, p, coefficients with standard
 * errors, R^2, adjusted R^2, RMSE, CV(RMSE), NMBE and whether the limits are
 * met, on the fit and on a holdout (docs/models-baseline-anomaly.md).
 *
 * Daily models (the default) fit complete local days, with balance points
 * found on the hours of those days (where the load starts to follow
 * temperature); hourly models fit hours with hour-of-day and day-of-week
 * indicators and degree-hours, and serve as the expected value of the
 * anomaly detector. Autocorrelated residuals are handled by GLS with AR(1)
 * errors. Pure computation:
 * no I/O, no global state. */
#ifndef ENMS_BASELINE_H
#define ENMS_BASELINE_H

#include <stddef.h>
#include <time.h>

#include <cJSON.h>

#include "model.h"
#include "series.h"

/* Intercept, 6 weekdays, 23 hours, production, heating, cooling. */
#define BASELINE_MAX_COEF 33

enum baseline_granularity {
    BASELINE_DAILY = 0,  /* one row per complete local day; degree-days */
    BASELINE_HOURLY = 1, /* one row per hour; degree-hours, hour-of-day indicators */
};

/* Whether day-of-week indicators enter the model. */
enum baseline_choice {
    BASELINE_AUTO = 0, /* kept when they improve adjusted R^2 */
    BASELINE_ON = 1,
    BASELINE_OFF = 2,
};

struct baseline_config {
    enum baseline_granularity granularity;
    /* Balance point grids, inclusive, in degC; a HDD+CDD model needs the
     * cooling balance point above the heating one. */
    double heat_min_c, heat_max_c, cool_min_c, cool_max_c, step_c;
    size_t min_days;         /* fewer usable days fail with "insufficient data" */
    size_t min_dd_days;      /* a degree-day term needs this many days (hourly: 24x
                                hours) with a positive value, as CalTRACK asks */
    double holdout_fraction; /* the last fraction of rows is held out; 0: none */
    double cv_rmse_limit;    /* percent: the model meets the limits when */
    double nmbe_limit;       /* CV(RMSE) <= cv_rmse_limit and |NMBE| <= nmbe_limit */
    enum baseline_choice weekday;
    /* Daily fits: 1 takes the balance points (and which degree-day terms
     * may enter) from the change-point search on the hours of the same
     * days, 0 searches the daily totals; see baseline_fit(). */
    int balance_from_hours;
};

/* Defaults: grids heating 5..25, cooling 10..30 degC in 0.5 steps, 30 days,
 * 10 degree-days, holdout 20 %, weekday AUTO, balance_from_hours 1, and the
 * Guideline 14 limits
 * (CV(RMSE) 15 % / NMBE 5 % daily, 30 % / 10 % hourly). */
void baseline_config_default(struct baseline_config *cfg, enum baseline_granularity g);

struct baseline_term {
    double value;
    double se; /* OLS standard error; NAN in a model loaded without it */
};

/* A fitted model: everything needed to predict. Absent terms are 0 with
 * has_* false and balance points NAN. Daily models: coefficients per day
 * and per degree-day; hourly models: per hour and per degree-hour. */
struct baseline_model {
    enum baseline_granularity granularity;
    int utc_offset_s;
    int has_weekday, has_production, has_heating, has_cooling;
    double heat_balance_c, cool_balance_c;
    struct baseline_term intercept; /* Sunday (hour 0), no production, no degree-days */
    struct baseline_term production;
    struct baseline_term heating;
    struct baseline_term cooling;
    struct baseline_term weekday[6]; /* Monday..Saturday, relative to Sunday */
    struct baseline_term hour[23];   /* hourly: hours 1..23, relative to hour 0 */
    size_t n, p;                     /* rows and parameters of the fit */
    double rho;                      /* lag-1 autocorrelation of the fit's residuals */
    time_t window_start, window_end; /* first and last row used (UTC) */
};

/* Guideline 14 statistics over n rows with p parameters:
 * CV(RMSE) = sqrt(SSE / (n - p)) / ybar * 100,
 * NMBE = sum(y - yhat) / ((n - p) * ybar) * 100. On a holdout p is 0: no
 * parameter was estimated on those rows. */
struct baseline_stats {
    size_t n, p;
    double ybar, sse, r2, adj_r2, rmse, cv_rmse, nmbe;
    int meets_limits;
};

struct baseline_result {
    struct baseline_model model; /* selected and fitted on all usable rows: the artifact */
    struct baseline_stats fit;   /* the model on its own rows */
    /* The whole procedure (selection and fit) run on the first rows and
     * judged on the held-out last ones. */
    struct baseline_stats holdout;
    int holdout_valid; /* 0 when too few rows for a holdout */
    double holdout_heat_balance_c, holdout_cool_balance_c;
    struct series_report data;
    size_t rows_used;     /* days (daily) or hours (hourly) in the fit */
    size_t days_excluded; /* daily: incomplete or driverless days left out */
    double cv_rmse_limit, nmbe_limit;
    size_t candidates; /* model fits evaluated, for the report */
};

/* A plain OLS fit of y on the n x p row-major design x (include the
 * intercept column yourself), with Guideline 14 statistics; limits
 * unchecked (meets_limits 0). For reference checks and `enmsctl fit`. */
struct baseline_ols {
    size_t n, p;
    double coef[BASELINE_MAX_COEF];
    double se[BASELINE_MAX_COEF];
    struct baseline_stats stats;
};
int baseline_ols(const double *x, const double *y, size_t n, size_t p, struct baseline_ols *out,
                 char *err, size_t errlen);

/* Fits a baseline on s. Returns 0 with *out filled, ENMS_EINVAL (bad input,
 * "insufficient data: 12 days, need 30"), ENMS_ENOMEM, or ENMS_ESTOPPED when
 * hooks->should_stop said so. Nothing to free in *out. */
int baseline_fit(const struct series *s, const struct baseline_config *cfg,
                 const struct model_hooks *hooks, struct baseline_result *out, char *err,
                 size_t errlen);

/* One prediction from drivers in the model's units: hdd/cdd are degree-days
 * (daily) or degree-hours (hourly) at the model's balance points; hour is
 * ignored by daily models. A driver the model does not use is ignored. */
double baseline_predict_row(const struct baseline_model *m, int weekday, int hour,
                            double production, double hdd, double cdd);

/* Daily model: predicts each day of d into out[0..d->n-1] (NAN where a
 * driver is missing). Returns 0 or ENMS_EINVAL (wrong granularity). */
int baseline_predict_days(const struct baseline_model *m, const struct series_days *d, double *out,
                          char *err, size_t errlen);

/* Hourly model: predicts each reading of s into out[0..s->n-1] (NAN where a
 * driver is missing). Returns 0 or ENMS_EINVAL. */
int baseline_predict_hours(const struct baseline_model *m, const struct series *s, double *out,
                           char *err, size_t errlen);

/* The artifact (model_json.c): everything baseline_predict_*() needs, plus
 * standard errors, n, p and the training window. Returns a tree the caller
 * frees with cJSON_Delete(), or NULL when out of memory. Numbers are raw
 * text items ("%.17g", exact), so read the artifact back only after
 * printing it (cJSON_Print*) and parsing the text. */
cJSON *baseline_model_to_json(const struct baseline_model *m);

/* The metrics of a fit (statistics on the fit and the holdout, limits, data
 * completeness) for training_metrics. Caller frees; NULL when out of memory. */
cJSON *baseline_result_to_json(const struct baseline_result *r);

/* Loads an artifact written by baseline_model_to_json(). Untrusted input:
 * every field is checked (types, finite numbers, bounds, consistency).
 * Returns 0 with *m filled, or ENMS_EINVAL with a sentence in err (then *m
 * is zeroed). Nothing to free. */
int baseline_model_from_json(const cJSON *j, struct baseline_model *m, char *err, size_t errlen);

/* "HDD+CDD+production+weekday" and the like, into buf. */
void baseline_model_name(const struct baseline_model *m, char *buf, size_t buflen);

#endif
