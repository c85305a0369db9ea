/* alerts.h - raising model alerts and the automatic actions they take.
 *
 * Open alerts of the monitoring types (drift_detected,
 * performance_degradation, data_quality, anomaly_detected) are one per
 * (type, machine, model type): raising again updates the open one
 * (alert_details.occurrences, the newest values and message) instead of
 * adding a row (index uq_model_alerts_open). training_failed alerts are one
 * per failed job (common/jobs.c).
 *
 * Automatic retrain on drift: when cfg->auto_retrain is 1 and no retrain
 * with trigger_type 'drift_detected' was created for (machine, model type)
 * within cfg->drift_cooldown_s, a training job is created (trigger_type
 * drift_detected, the same duplicate rule as any trigger) and pushed; the
 * alert's auto_action_taken / auto_action_type ('auto_retrain') /
 * auto_action_result record what happened ("triggered job <id>",
 * "skipped: cooldown until <ts>", "skipped: training already in progress
 * (<id>)", "disabled"). */
#ifndef ENMS_COMMON_ALERTS_H
#define ENMS_COMMON_ALERTS_H

#include <stddef.h>
#include <libpq-fe.h>
#include <hiredis.h>
#include <cJSON.h>

#include "config.h"

struct alert_input {
    const char *alert_type; /* drift_detected | performance_degradation | data_quality |
                               anomaly_detected | training_failed | ... */
    const char *severity;   /* normal | warning | critical */
    const char *machine_id; /* uuid or NULL */
    const char *model_type; /* or NULL */
    const char *model_id;   /* model_versions.id or NULL */
    int model_version;      /* 0: unknown */
    const char *message;    /* required */
    const cJSON *details;   /* object or NULL; borrowed */
    double current_value;   /* NaN: NULL in the row */
    double threshold_value; /* NaN: NULL */
    double baseline_value;  /* NaN: NULL */
};

/* Raises (or refreshes) an alert. alert_id receives its id (37 bytes).
 * Returns ENMS_OK or ENMS_EDB. */
int alert_raise(PGconn *conn, const struct alert_input *in, char *alert_id, char *err,
                size_t errlen);

/* Applies the auto-retrain rule above for the alert alert_id on (machine_id,
 * model_type) and records the outcome on the alert. redis may be NULL (the
 * job is then only recorded; housekeeping pushes it). *triggered is 1 when
 * a job was created (its id in job_id, 37 bytes). The decision is
 * serialised per (machine, model type) by a session advisory lock, so
 * concurrent drifts create at most one job. Must be called outside a
 * transaction (a duplicate job's unique violation would abort it):
 * ENMS_EINTERNAL otherwise. Returns ENMS_OK (whatever the rule decided),
 * ENMS_EINVAL (NULL arguments) or ENMS_EDB. */
int alert_auto_retrain(PGconn *conn, redisContext *redis, const struct enms_config *cfg,
                       const char *alert_id, const char *machine_id, const char *model_type,
                       const char *reason, int *triggered, char *job_id, char *err, size_t errlen);

#endif
