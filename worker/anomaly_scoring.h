/* anomaly_scoring.h - score jobs (job_kind 'score'): the active anomaly
 * model of a machine scores the readings that arrived since the last
 * scoring, and every flagged hour becomes a row of the anomalies table;
 * critical ones raise an anomaly_detected alert.
 *
 * The computing half (anomaly_scoring_run) runs on the job's thread and
 * writes nothing; it fills train_result.store_json with
 *
 *   {"anomalies": [{"ts": epoch s, "score": n, "severity": "warning"|"critical",
 *                   "detector": name, "energy": n|null, "expected": n|null,
 *                   "features": {...}}],
 *    "scoring": {"machine_id": uuid, "model_version_id": uuid, "model_version": n,
 *                "from": epoch s, "scored_until": epoch s, "critical": n,
 *                "max_score": n|null, "first_critical": epoch s|null}}
 *
 * and the runner stores it when the job completes (anomaly_scoring_store in
 * the completion transaction, anomaly_scoring_alert after it). Evaluation
 * of anomaly models (precision/recall) is evaluation.c's. */
#ifndef ENMS_WORKER_ANOMALY_SCORING_H
#define ENMS_WORKER_ANOMALY_SCORING_H

#include <stddef.h>
#include <libpq-fe.h>

#include "training.h"
#include "../common/jobs.h"

/* Most hours one score job scores; a longer backlog is worked off by the
 * following jobs, oldest first. */
#define SCORING_MAX_HOURS (90 * 24)

/* Scores job's machine with its active anomaly model. Same contract as
 * train_run(); store_json stays NULL when there was nothing new to score
 * (the job's result says so). */
int anomaly_scoring_run(const struct job_record *job, struct train_ctx *ctx,
                        struct train_result *out, char *err, size_t errlen);

/* Upserts the anomalies of res->store_json (ON CONFLICT (machine_id, ts):
 * score, severity and the rest updated, the user's label kept) and moves
 * anomaly_scoring_state forward. Runs inside the caller's transaction.
 * 0, or ENMS_EDB / ENMS_EINVAL. */
int anomaly_scoring_store(PGconn *pg, const struct job_record *job, const struct train_result *res,
                          char *err, size_t errlen);

/* Raises (or refreshes) the machine's anomaly_detected alert when the
 * scoring found critical hours; alert_id (37 bytes) receives its id or "".
 * Called after the completion committed. 0 or ENMS_EDB. */
int anomaly_scoring_alert(PGconn *pg, const struct job_record *job, const struct train_result *res,
                          char *alert_id, char *err, size_t errlen);

#endif
