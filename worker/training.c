/* training.c - train_run: sends a job to the code that runs its kind and
 * model type. Evaluate jobs go to evaluation.c, score jobs to
 * anomaly_scoring.c; training jobs of probe type (queue tests and
 * benchmarks) to probe.c, and baseline, anomaly and forecast_arima to
 * train_models.c. */
#include "training.h"
#include "anomaly_scoring.h"
#include "evaluation.h"
#include "probe.h"
#include "train_models.h"
#include "../common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void train_result_init(struct train_result *res)
{
    memset(res, 0, sizeof *res);
    res->training_samples = -1;
    res->eval_samples = -1;
    res->data_completeness = NAN;
    res->holdout_score = NAN;
    res->compared_previous_score = NAN;
    res->compared_new_score = NAN;
}

void train_result_clear(struct train_result *res)
{
    free(res->metrics_json);
    free(res->artifact_json);
    free(res->validation_metrics_json);
    free(res->hyperparameters_json);
    free(res->feature_names);
    free(res->store_json);
    train_result_init(res);
}

int train_run(const struct job_record *job, struct train_ctx *ctx, struct train_result *out,
              char *err, size_t errlen)
{
    train_result_init(out);

    if (strcmp(job->job_kind, "evaluate") == 0)
        return evaluation_run(job, ctx, out, err, errlen);
    if (strcmp(job->job_kind, "score") == 0)
        return anomaly_scoring_run(job, ctx, out, err, errlen);
    if (job->job_kind[0] && strcmp(job->job_kind, "train") != 0)
        return enms_fail(err, errlen, ENMS_EINVAL, "unknown job_kind %s", job->job_kind);
    if (strcmp(job->model_type, "probe") == 0) {
        /* The API refuses probe jobs unless enabled; the worker checks too,
         * because a probe can be told to kill its worker (crash_at). */
        if (!ctx->cfg->enable_probe)
            return enms_fail(err, errlen, ENMS_EINVAL,
                             "probe jobs are disabled on this worker (ENMS_ENABLE_PROBE=0)");
        return probe_run(job, ctx, out, err, errlen);
    }
    if (strcmp(job->model_type, "baseline") == 0)
        return train_baseline(job, ctx, out, err, errlen);
    if (strcmp(job->model_type, "anomaly") == 0)
        return train_anomaly(job, ctx, out, err, errlen);
    if (strcmp(job->model_type, "forecast_arima") == 0)
        return train_forecast_arima(job, ctx, out, err, errlen);
    return enms_fail(err, errlen, ENMS_EINVAL, "unknown model_type %s", job->model_type);
}
