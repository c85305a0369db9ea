/* perf_record.h - recording one evaluation of a deployed model: the core of
 * POST /api/v1/model-performance/metrics/record, shared with the worker's
 * evaluation jobs so that both write exactly the same row.
 *
 * perf_record() resolves the model version, measures sample_count and
 * data_completeness from energy_readings in the evaluation window, judges
 * performance drift against the version's own validation metrics, inserts
 * the model_performance_metrics row (named columns where they exist, every
 * metric in the JSON column), and on drift raises a drift_detected alert and
 * (configurable) an automatic retrain through alerts.h. */
#ifndef ENMS_COMMON_PERF_RECORD_H
#define ENMS_COMMON_PERF_RECORD_H

#include <stddef.h>
#include <libpq-fe.h>
#include <hiredis.h>
#include <cJSON.h>

#include "config.h"

#define PERF_MAX_METRICS  64                   /* metrics in one evaluation */
#define PERF_MAX_WINDOW_S (1096LL * 24 * 3600) /* evaluation window: 3 years */
#define PERF_NAME_MAX     64                   /* ^[a-z][a-z0-9_]{0,63}$ */

/* The main metric an evaluation of model_type is judged by: the first of
 * the type's list that metrics (the recorded object) holds as a number,
 * aliases included, returned by its canonical name (a static string), or
 * NULL when it holds none of them.
 *   baseline:       cv_rmse_pct, r_squared (alias r2), rmse, mae
 *   forecast_arima: mape (alias mape_pct), rmse, mase, mae
 *   anomaly:        f1 (alias f1_score), anomaly_rate */
const char *perf_main_metric(const char *model_type, const cJSON *metrics);

/* 1 when lower values of metric are better (errors, anomaly_rate: more
 * flagged hours is worse in a trend), 0 when higher are better (r_squared,
 * precision, recall, f1, accuracy), -1 for a metric it does not know.
 * Aliases are accepted. */
int perf_metric_lower_is_better(const char *metric);

/* The canonical name of a known metric or alias ("r2" -> "r_squared",
 * "precision_score" -> "precision"), or NULL when unknown. Static string. */
const char *perf_metric_canonical(const char *metric);

/* The finite number metrics holds for metric under its canonical name or
 * its alias; NaN when absent, null or not a number. */
double perf_metric_value(const cJSON *metrics, const char *metric);

/* Checks an evaluation's metrics object: at most PERF_MAX_METRICS members,
 * at least one, names ^[a-z][a-z0-9_]{0,63}$ given once (a metric and its
 * alias count as one), values finite numbers, and the known ones in range
 * (r_squared <= 1; errors >= 0; precision, recall, f1, anomaly_rate in
 * [0, 1]; percentages in [0, 100]; confusion counts whole numbers >= 0).
 * Returns ENMS_OK or ENMS_EINVAL with "metric <name>: <problem>" in err. */
int perf_metrics_validate(const cJSON *metrics, char *err, size_t errlen);

/* Performance drift: the relative degradation of metric between the
 * version's validation value and the recent value, in [0, inf): 0 when the
 * recent value is as good or better. For lower-is-better metrics
 * (recent - valid) / max(|valid|, floor); for higher-is-better
 * (valid - recent) / max(|valid|, floor); for anomaly_rate, whose training
 * value is the model's expected rate, the distance either way
 * |recent - valid| / max(valid, floor). floor keeps a near-zero reference
 * from inflating the score: 1 for percent metrics (mape, cv_rmse_pct,
 * outlier_percentage), 0.01 for fractions (r_squared, precision, recall,
 * f1, anomaly_rate), 1e-9 otherwise. NaN when either value is not finite
 * or the metric is unknown. */
double perf_degradation(const char *metric, double validation_value, double recent_value);

struct perf_record_input {
    const char *machine_id;       /* uuid, required */
    const char *model_type;       /* baseline | anomaly | forecast_arima, required */
    const char *model_id;         /* model_versions.id; NULL: the active version */
    long long eval_start_us;      /* evaluation window, microseconds since epoch, */
    long long eval_end_us;        /* start < end */
    const cJSON *metrics;         /* object of name -> finite number; borrowed */
    const char *created_by;       /* "api", "evaluation", ...; may be NULL */
    const char *evaluation_notes; /* may be NULL */
};

struct perf_record_result {
    char metric_id[37];
    char model_id[37];
    int model_version;
    int sample_count;
    double data_completeness; /* percent 0..100 */
    int drift_detected;
    double drift_score;      /* degradation of the main metric; NaN when unknown */
    double drift_threshold;  /* cfg->drift_perf */
    char main_metric[32];    /* "" when the metrics hold no main metric */
    double main_value;       /* the recorded value of main_metric; NaN when none */
    double validation_value; /* the version's value at training; NaN when unknown */
    char recommendation[256];
    char alert_id[37];            /* "" when no alert was raised */
    int retrain_triggered;        /* 1 when an automatic retrain job was created */
    char retrain_job_id[37];      /* its id, else "" */
    char auto_action_result[160]; /* what the auto-retrain rule decided, "" without drift */
};

/* Records one evaluation. redis may be NULL (a retrain job is then only
 * written to PostgreSQL; housekeeping pushes it). Must be called outside a
 * transaction (it runs its own; ENMS_EINTERNAL otherwise). Returns ENMS_OK,
 * ENMS_EINVAL (bad metrics: names or values; bad window; a version of
 * another machine or model type; err says which), ENMS_ENOTFOUND (unknown
 * machine, no such version, or no active version for that machine and
 * type), or ENMS_EDB. Nothing is written unless ENMS_OK. The metrics row,
 * and on drift the alert, are written in one transaction; the automatic
 * retrain follows it, and its failure is logged, not returned.
 *
 * The row's evaluation_date is evaluation_end (the time the metrics
 * describe, so back-filled evaluations sort and trend by data time);
 * created_at is when it was recorded. */
int perf_record(PGconn *conn, redisContext *redis, const struct enms_config *cfg,
                const struct perf_record_input *in, struct perf_record_result *out, char *err,
                size_t errlen);

#endif
