/* training.h - the contract between the worker's job runner and the code
 * that runs a job: trains a model (probe jobs, baseline/anomaly/ARIMA in
 * worker/models/), evaluates a deployed version or scores new readings
 * (the job kinds 'evaluate' and 'score' follow the same contract).
 *
 * Training runs on its own thread with its own PostgreSQL connection. It
 * reports progress through ctx->progress and asks ctx->should_stop often
 * (at least every 100 ms of work), returning ENMS_ESTOPPED at once when told
 * to stop (cancel, timeout or lost lease), so a running job stops within a
 * second. Training writes nothing to the database itself: it hands its
 * result back, and the runner stores it in the same transaction as the
 * job's completion, so a cancelled or stale attempt leaves no partial
 * output. */
#ifndef ENMS_WORKER_TRAINING_H
#define ENMS_WORKER_TRAINING_H

#include <stddef.h>
#include <time.h>
#include <libpq-fe.h>

#include "../common/config.h"
#include "../common/jobs.h"

struct train_ctx {
    const struct enms_config *cfg;
    PGconn *pg; /* the training thread's own connection, for reading data */
    /* Reports percent (0-100) and a short stage text; cheap, may be called
     * often (the runner throttles what it publishes). */
    void (*progress)(void *opaque, int percent, const char *stage);
    /* Nonzero when training must stop now. */
    int (*should_stop)(void *opaque);
    void *opaque;
};

struct train_result {
    char *metrics_json;   /* malloc'd JSON object, or NULL: training_metrics */
    char *artifact_json;  /* malloc'd JSON object, or NULL: stored as a new
                             model_versions row when the job completes */
    int training_samples; /* -1 when not applicable */
    /* Set by the model trainers (train_models.c); NULL / 0 / NAN when not
     * applicable. All malloc'd strings are freed by train_result_clear. */
    char *validation_metrics_json; /* JSON object: the holdout evaluation, with the
                                      uniform keys the runner copies into
                                      model_performance_metrics (r_squared, rmse, mae,
                                      mape, precision, recall, f1, sample_count, ...) */
    char *hyperparameters_json;    /* JSON object */
    char *feature_names;           /* JSON array of strings */
    time_t data_start, data_end;   /* training window, 0 when unknown */
    time_t eval_start, eval_end;   /* evaluation (holdout) window, 0 when unknown */
    int eval_samples;              /* rows in the evaluation, -1 when unknown */
    double data_completeness;      /* 0..1, NAN when unknown */
    double holdout_score;          /* lower is better; NAN when none */
    /* A comparison with the version that was active during training, on the
     * same holdout (baseline only); compared_version_id "" when none. */
    char compared_version_id[JOBS_ID_SIZE];
    double compared_previous_score, compared_new_score;
    /* Evaluate and score jobs (evaluation.h, anomaly_scoring.h): the rows
     * to write when the job completes, as JSON; NULL when there is nothing
     * to record. Such jobs never set artifact_json. */
    char *store_json;
};

/* Sets res to "no result": NULL strings, -1 counts, NAN scores. Owns
 * nothing yet; safe to clear. */
void train_result_init(struct train_result *res);

/* Frees what a train_result owns and resets it with train_result_init. */
void train_result_clear(struct train_result *res);

/* Runs job: trains it (job_kind 'train'), or sends it to evaluation.c
 * ('evaluate') or anomaly_scoring.c ('score'). Returns 0 with *out filled (caller clears it),
 * ENMS_ESTOPPED when should_stop said so, ENMS_EINVAL for a permanent failure (bad parameters, not
 * enough data: err says why, the job fails at once), or ENMS_EDB / ENMS_EREDIS for a transient one
 * (the runner may retry). */
int train_run(const struct job_record *job, struct train_ctx *ctx, struct train_result *out,
              char *err, size_t errlen);

#endif
