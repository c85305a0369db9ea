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

/* The main metric each model type is judged by, and whether lower is
 * better: baseline cv_rmse (lower), forecast_arima mape (lower), anomaly f1
 * when labels exist (higher) else anomaly_rate (judged by distance from the
 * training rate). */
const char *perf_main_metric(const char *model_type, const cJSON *metrics);
int perf_metric_lower_is_better(const char *metric);

/* Performance drift: the relative degradation of metric between the
 * version's validation value and the recent value, in [0, inf): 0 when the
 * recent value is as good or better. For lower-is-better metrics
 * (recent - valid) / max(|valid|, eps); for higher-is-better
 * (valid - recent) / max(|valid|, eps). NaN when either is missing. */
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
    double drift_score;     /* degradation of the main metric; NaN when unknown */
    double drift_threshold; /* cfg->drift_perf */
    char main_metric[32];
    char recommendation[256];
    char alert_id[37];     /* "" when no alert was raised */
    int retrain_triggered; /* 1 when an automatic retrain job was created */
};

/* Records one evaluation. redis may be NULL (a retrain job is then only
 * written to PostgreSQL; housekeeping pushes it). Returns ENMS_OK,
 * ENMS_EINVAL (bad metrics: names or values; err says which),
 * ENMS_ENOTFOUND (unknown machine, or no such version / no active version
 * for that machine and type), or ENMS_EDB. Nothing is written unless
 * ENMS_OK. */
int perf_record(PGconn *conn, redisContext *redis, const struct enms_config *cfg,
                const struct perf_record_input *in, struct perf_record_result *out, char *err,
                size_t errlen);

#endif
