/* train_models.h - training the three real model types of a job
 * (baseline, anomaly, forecast_arima) in the worker: loading the machine's
 * readings and labels from PostgreSQL, calling the model code in
 * worker/models/, evaluating on a holdout and filling a struct
 * train_result with the artifact and metrics.
 *
 * It reads from the database (ctx->pg) but never writes to it: the runner
 * stores the result in the job's completion transaction (training.h). */
#ifndef ENMS_WORKER_TRAIN_MODELS_H
#define ENMS_WORKER_TRAIN_MODELS_H

#include <stddef.h>

#include "training.h"

/* Each trains job's model for its machine. Same contract as train_run():
 * 0 with *out filled (the caller clears it), ENMS_ESTOPPED, ENMS_EINVAL
 * (bad parameters, "insufficient data: 5 days, need 30") or ENMS_EDB /
 * ENMS_ENOMEM, with a sentence in err. On error *out holds nothing. */
int train_baseline(const struct job_record *job, struct train_ctx *ctx, struct train_result *out,
                   char *err, size_t errlen);
int train_anomaly(const struct job_record *job, struct train_ctx *ctx, struct train_result *out,
                  char *err, size_t errlen);
int train_forecast_arima(const struct job_record *job, struct train_ctx *ctx,
                         struct train_result *out, char *err, size_t errlen);

#endif
