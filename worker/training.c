/* training.c - train_run: sends a job to the code that trains its model
 * type. Probe jobs (queue tests and benchmarks) go to probe.c; the three
 * real model types fail with a clear message until the training issue
 * brings their code: a job is never reported trained when it was not. */
#include "training.h"
#include "probe.h"
#include "../common/error.h"

#include <stdlib.h>
#include <string.h>

void train_result_clear(struct train_result *res)
{
    free(res->metrics_json);
    free(res->artifact_json);
    memset(res, 0, sizeof *res);
    res->training_samples = -1;
}

int train_run(const struct job_record *job, struct train_ctx *ctx, struct train_result *out,
              char *err, size_t errlen)
{
    static const char *const pending_types[] = {"baseline", "anomaly", "forecast_arima"};
    memset(out, 0, sizeof *out);
    out->training_samples = -1;

    if (strcmp(job->model_type, "probe") == 0) {
        /* The API refuses probe jobs unless enabled; the worker checks too,
         * because a probe can be told to kill its worker (crash_at). */
        if (!ctx->cfg->enable_probe)
            return enms_fail(err, errlen, ENMS_EINVAL,
                             "probe jobs are disabled on this worker (ENMS_ENABLE_PROBE=0)");
        return probe_run(job, ctx, out, err, errlen);
    }
    for (size_t i = 0; i < sizeof pending_types / sizeof pending_types[0]; i++) {
        if (strcmp(job->model_type, pending_types[i]) == 0)
            return enms_fail(err, errlen, ENMS_EINVAL, "training for %s is not implemented yet",
                             job->model_type);
    }
    return enms_fail(err, errlen, ENMS_EINVAL, "unknown model_type %s", job->model_type);
}
