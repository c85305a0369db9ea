/* drift_check.h - is a deployed model still fit for its data? The core of
 * POST /api/v1/model-performance/drift/check (docs/drift.md).
 *
 * Two kinds of drift, judged separately and then together:
 * - input drift: energy, production and temperature of the version's
 *   training window against a recent window, each compared like with like
 *   (energy as residuals of the machine's baseline, production relative to
 *   the training window's weekday level, temperature by how far it leaves
 *   the training range), with PSI and a Kolmogorov-Smirnov test on
 *   effective sample sizes (common/stats.h);
 * - performance drift: the newest recorded evaluation against the version's
 *   own validation metrics (common/perf_record.h).
 * On drift it raises a drift_detected alert and applies the auto-retrain
 * rule (common/alerts.h). It owns no HTTP: api/routes_drift.c reads the
 * request and prints the result. */
#ifndef ENMS_COMMON_DRIFT_CHECK_H
#define ENMS_COMMON_DRIFT_CHECK_H

#include <stddef.h>
#include <time.h>
#include <libpq-fe.h>
#include <hiredis.h>
#include <cJSON.h>

#include "config.h"

/* Fewest daily values a comparison needs on each side. */
#define DRIFT_MIN_DAYS 5
/* The reference is at most the last this many days of the training window. */
#define DRIFT_MAX_REF_DAYS 366
/* Temperature: degC beyond the training range that still counts as seen,
 * and the share of recent days beyond it that is drift. */
#define DRIFT_TEMP_MARGIN_C 5.0
#define DRIFT_TEMP_SHARE    0.5
/* Materiality: the smallest shift of the median that can count as drift,
 * as a share of the reference's median daily energy (energy) and of the
 * weekday production level (production). A week of weather or order-book
 * noise moves the median by a few percent; a changed machine by more. */
#define DRIFT_MIN_ENERGY_SHIFT     0.05
#define DRIFT_MIN_PRODUCTION_SHIFT 0.15

enum drift_feature_id { DRIFT_ENERGY, DRIFT_PRODUCTION, DRIFT_TEMPERATURE, DRIFT_FEATURES };

/* One feature's comparison. NaN where a statistic could not be computed. */
struct drift_feature {
    int evaluated;          /* 0: too few values on one side (reason says) */
    int drifted;            /* counts towards data drift */
    char method[64];        /* what was compared, e.g. "baseline v3 daily residual kWh" */
    size_t n_ref, n_recent; /* daily values compared */
    double rho;             /* lag-1 autocorrelation of the reference */
    double n_eff_ref, n_eff_recent;
    double psi, ks_d, ks_p_effective, mean_shift;
    double median_ref, median_recent;
    double min_shift;          /* materiality gate on |median change|; 0: none */
    double ref_min, ref_max;   /* temperature: the training range of daily means */
    double share_out_of_range; /* temperature: recent days beyond range + margin */
    char reason[200];
};

/* Performance drift: the newest evaluation against validation. */
struct drift_perf {
    int available; /* 0: no evaluation after training, or no comparable metric */
    int drifted;
    char metric[32];
    double validation_value, recent_value, degradation, threshold;
    char metric_id[37]; /* the model_performance_metrics row used */
    /* r_squared, rmse, mae, mape of the evaluation and of validation (NaN: none). */
    double current[4], baseline[4];
    char reason[200];
};

struct drift_check_input {
    const char *machine_id; /* uuid, required */
    const char *model_type; /* baseline | anomaly | forecast_arima, required */
    const char *model_id;   /* model_versions.id; NULL: active (else newest) version */
    long long as_of_us;     /* end of the recent window, exclusive; 0: after the newest reading */
    int recent_days;        /* 1..90; 0: cfg->drift_recent_days */
    int act;                /* 1: on drift raise the alert and apply auto-retrain */
};

struct drift_check_result {
    char machine_id[37];
    char model_type[16];
    char model_id[37];
    int model_version;
    time_t train_start, train_end;   /* reference window [start, end) */
    time_t recent_start, recent_end; /* [start, end) */
    int recent_days;
    struct drift_feature features[DRIFT_FEATURES];
    struct drift_perf perf;
    int data_drift, concept_drift;
    int drift_detected;
    const char *drift_type; /* "data_drift", "concept_drift" or "no_drift" (static) */
    double drift_score, threshold;
    char recommendation[512];
    char alert_id[37]; /* "" when no alert was raised */
    int retrain_triggered;
    char retrain_job_id[37];
    char auto_action[200]; /* the alert's auto_action_result; "" when none */
};

/* "energy", "production", "temperature". */
const char *drift_feature_name(enum drift_feature_id f);

/* The statistical comparison of one feature's daily values (pure): PSI and
 * KS with effective sizes from the reference's lag-1 autocorrelation
 * (applied to both sides: seven recent values cannot estimate it). A
 * feature drifts when the shift is significant (ks_p_effective below
 * cfg->drift_ks_alpha / 3, Bonferroni over the three features), its
 * distribution moved (psi > cfg->drift_psi) and the medians differ by more
 * than min_shift (in the values' units; 0: no such gate). Fewer than
 * DRIFT_MIN_DAYS values on a side: evaluated 0. Fills the statistics and
 * the reason of out (method untouched). */
void drift_compare(const double *ref, size_t n_ref, const double *recent, size_t n_recent,
                   double min_shift, const struct enms_config *cfg, struct drift_feature *out);

/* The temperature rule (pure): out->drifted when more than DRIFT_TEMP_SHARE
 * of the recent daily means lie more than DRIFT_TEMP_MARGIN_C outside the
 * reference's [min, max]. A season the model has seen, or one a few degrees
 * beyond it, is not drift: the baseline models temperature, and if it
 * copes badly the energy residuals show it. Also fills the statistics of
 * drift_compare() for the record. */
void drift_compare_temperature(const double *ref, size_t n_ref, const double *recent,
                               size_t n_recent, const struct enms_config *cfg,
                               struct drift_feature *out);

/* Runs a check. redis may be NULL (a retrain job is then only recorded;
 * housekeeping pushes it). Returns ENMS_OK with *out filled, or
 * ENMS_EINVAL (bad input), ENMS_ENOTFOUND (unknown machine, unknown version,
 * a version of another machine or type, or no version trained),
 * ENMS_ECONFLICT (the data do not allow a check: no readings, or fewer than
 * DRIFT_MIN_DAYS complete days in a window; err says which), ENMS_ENOMEM or
 * ENMS_EDB, with a sentence in err. Nothing is written unless ENMS_OK and
 * drift was found (then the alert and perhaps a retrain job). */
int drift_check(PGconn *conn, redisContext *redis, const struct enms_config *cfg,
                const struct drift_check_input *in, struct drift_check_result *out, char *err,
                size_t errlen);

/* The answer of POST /drift/check for r. Returns a tree the caller frees
 * with cJSON_Delete(), or NULL when out of memory. */
cJSON *drift_check_to_json(const struct drift_check_result *r);

#endif
