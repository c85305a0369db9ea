/* evaluation.h - evaluate jobs (job_kind 'evaluate'): a deployed model
 * version judged on the newest readings it has not seen, recorded through
 * perf_record() like POST /metrics/record, plus the paired samples of every
 * running A/B test of its machine and type (shadow mode). Also the storing
 * half that evaluate and score jobs share (the runner calls it when the job
 * completes).
 *
 * Like training, the computing half runs on the job's thread and writes
 * nothing: it hands back a "store document" (train_result.store_json) that
 * the runner writes when the job completes, so a cancelled or stale attempt
 * leaves nothing behind. The document is a JSON object:
 *
 *   {"perf": {"model_id": uuid, "start": epoch s, "end": epoch s,
 *             "metrics": {name: number}},                  evaluate only
 *    "ab_samples": [{"test_id": uuid, "rows": [{"ts": epoch s, "actual": n|null,
 *                    "predicted_a": n|null, "predicted_b": n|null,
 *                    "loss_a": n, "loss_b": n}]}],         evaluate only
 *    "anomalies": [...], "scoring": {...}}                 score only (anomaly_scoring.h)
 *
 * It does not decide what a window is for training (train_models.c) nor
 * judge A/B tests (common/ab_tests.c). */
#ifndef ENMS_WORKER_EVALUATION_H
#define ENMS_WORKER_EVALUATION_H

#include <stddef.h>
#include <time.h>
#include <cJSON.h>
#include <hiredis.h>
#include <libpq-fe.h>

#include "training.h"
#include "models/series.h"
#include "../common/config.h"
#include "../common/jobs.h"

/* Evaluation window bounds, in days of readings (params.days). */
#define EVAL_DEFAULT_DAYS 7
#define EVAL_MAX_DAYS     90
/* Rolling-origin forecasts: an origin every EVAL_ORIGIN_STEP_H hours, each
 * forecasting EVAL_HORIZON_H hours ahead. */
#define EVAL_ORIGIN_STEP_H 24
#define EVAL_HORIZON_H     24

/* A stored model version as evaluation and scoring read it. */
struct eval_version {
    char id[JOBS_ID_SIZE];
    int version;
    cJSON *artifact;        /* parsed artifact; freed by eval_version_free */
    time_t trained_until;   /* end of its training data (exclusive); 0 unknown */
    time_t evaluated_until; /* end of its newest recorded evaluation; 0 none */
};

/* Loads version_id (NULL: the active version) of machine_id and
 * model_type. ENMS_ENOTFOUND when there is none (err says which), ENMS_EDB,
 * ENMS_EINVAL for an unreadable artifact. On success the caller frees *v
 * with eval_version_free. */
int eval_version_load(PGconn *pg, const char *machine_id, const char *model_type,
                      const char *version_id, struct eval_version *v, char *err, size_t errlen);
void eval_version_free(struct eval_version *v);

/* Start of the hour after the machine's newest reading (the exclusive end
 * of what can be evaluated), or 0 when it has none. */
int eval_readings_end(PGconn *pg, const char *machine_id, time_t *end, char *err, size_t errlen);

/* Per-hour labels of s (1 anomaly, 0 normal) from anomaly_labels (injected
 * and user intervals; is_anomaly false marks normal hours) and the user
 * labels of the anomalies table (confirmed 1, false_positive 0). *labels
 * (s->n bytes, malloc'd, caller frees) is NULL when no label touches the
 * hours of s. 0, ENMS_EDB or ENMS_ENOMEM. */
int eval_load_labels(PGconn *pg, const char *machine_id, const struct series *s,
                     unsigned char **labels, char *err, size_t errlen);

/* Evaluates job's version (params: version_id, until, days). Same contract
 * as train_run(): 0 with *out filled (metrics_json is the job's result;
 * store_json what to record, NULL when there was nothing new), ENMS_ESTOPPED,
 * ENMS_EINVAL (no such version, unreadable artifact, bad params) or
 * ENMS_EDB / ENMS_ENOMEM. */
int evaluation_run(const struct job_record *job, struct train_ctx *ctx, struct train_result *out,
                   char *err, size_t errlen);

/* The part of completing an evaluate job that cannot share the job's
 * transaction: perf_record() (which runs drift detection, alerts and
 * automatic retrains with statements of its own). Idempotent: a row already
 * recorded for the same version and window (an earlier try of this final
 * write) is found and reported instead of a second one. *result_json
 * receives the job's final result (res->metrics_json plus what perf_record
 * answered), malloc'd, caller frees; NULL when res has nothing to record.
 * redis may be NULL. Returns 0 or ENMS_EDB / ENMS_EINVAL / ENMS_ENOMEM. */
int evaluation_record(PGconn *pg, redisContext *redis, const struct enms_config *cfg,
                      const struct job_record *job, const struct train_result *res,
                      char **result_json, char *err, size_t errlen);

/* Writes the A/B samples of res->store_json (ON CONFLICT DO NOTHING, each
 * test's paired_samples raised by the rows really inserted). Runs inside
 * the caller's transaction. 0 or ENMS_EDB / ENMS_EINVAL. */
int evaluation_store_samples(PGconn *pg, const struct train_result *res, char *err, size_t errlen);

#endif
