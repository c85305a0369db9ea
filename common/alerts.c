/* alerts.c - raising model alerts (one open alert per type, machine and model
 * type for the monitoring types) and the automatic retrain a drift alert may
 * take. It does not list, acknowledge or resolve alerts: the API's
 * routes_alerts.c does. See alerts.h for the rules. */
#include "alerts.h"
#include "error.h"
#include "events.h"
#include "jobs.h"
#include "job_ops.h"
#include "log.h"
#include "pg.h"
#include "queue.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define ALERT_ID_SIZE 37

/* Formats v for a text parameter, or returns NULL (SQL NULL) when it is not
 * finite. */
static const char *num_param(double v, char *buf, size_t len)
{
    if (!isfinite(v))
        return NULL;
    snprintf(buf, len, "%.17g", v);
    return buf;
}

int alert_raise(PGconn *conn, const struct alert_input *in, char *alert_id, char *err,
                size_t errlen)
{
    char version[16], cur[40], thr[40], base[40];
    char *details = NULL;
    int rc = ENMS_OK;

    alert_id[0] = '\0';
    if (!in->alert_type || !in->severity || !in->message)
        return enms_fail(err, errlen, ENMS_EINVAL, "alert_type, severity and message are required");
    if (in->details && !cJSON_IsObject(in->details))
        return enms_fail(err, errlen, ENMS_EINVAL, "alert details must be a JSON object");
    if (in->details && !(details = cJSON_PrintUnformatted(in->details)))
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory printing alert details");
    if (in->model_version > 0)
        snprintf(version, sizeof version, "%d", in->model_version);
    const char *params[] = {in->alert_type,
                            in->severity,
                            in->model_id,
                            in->model_type,
                            in->model_version > 0 ? version : NULL,
                            in->machine_id,
                            in->message,
                            details ? details : "{}",
                            num_param(in->current_value, cur, sizeof cur),
                            num_param(in->threshold_value, thr, sizeof thr),
                            num_param(in->baseline_value, base, sizeof base)};
    /* The conflict target and predicate repeat uq_model_alerts_open, so
     * PostgreSQL's speculative insertion makes concurrent raises of the
     * same alert meet in one row: race-free without a lock. Alert types the
     * index does not cover never conflict and always add a row. */
    PGresult *res = pg_exec(
        conn, PGRES_TUPLES_OK,
        "INSERT INTO model_alerts (alert_type, severity, model_id, model_type, model_version, "
        "machine_id, alert_message, alert_details, current_metric_value, threshold_value, "
        "baseline_metric_value) "
        "VALUES ($1, $2, $3::uuid, $4, $5::int, $6::uuid, $7, $8::jsonb || "
        "jsonb_build_object('occurrences', 1, 'first_seen', now(), 'last_seen', now()), "
        "$9::float8, $10::float8, $11::float8) "
        "ON CONFLICT (alert_type, machine_id, COALESCE(model_type, '')) "
        "WHERE NOT is_resolved AND alert_type IN ('drift_detected', 'performance_degradation', "
        "'data_quality', 'anomaly_detected') "
        "DO UPDATE SET severity = EXCLUDED.severity, "
        "model_id = COALESCE(EXCLUDED.model_id, model_alerts.model_id), "
        "model_version = COALESCE(EXCLUDED.model_version, model_alerts.model_version), "
        "alert_message = EXCLUDED.alert_message, "
        "alert_details = model_alerts.alert_details || $8::jsonb || jsonb_build_object("
        "'occurrences', CASE WHEN jsonb_typeof(model_alerts.alert_details -> 'occurrences') = "
        "'number' THEN floor((model_alerts.alert_details ->> 'occurrences')::numeric) ELSE 1 END "
        "+ 1, 'first_seen', COALESCE(model_alerts.alert_details -> 'first_seen', "
        "to_jsonb(model_alerts.alert_timestamp)), 'last_seen', now()), "
        "current_metric_value = EXCLUDED.current_metric_value, "
        "threshold_value = EXCLUDED.threshold_value, "
        "baseline_metric_value = EXCLUDED.baseline_metric_value, updated_at = now() "
        "RETURNING id::text",
        11, params, err, errlen);
    if (!res) {
        rc = ENMS_EDB;
        goto done;
    }
    snprintf(alert_id, ALERT_ID_SIZE, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
done:
    cJSON_free(details);
    return rc;
}

/* Hands a created job to Redis (job_ops.h). Failures are logged only: the
 * job is recorded, and housekeeping pushes pending jobs missing from Redis. */
static void dispatch(redisContext *redis, const char *prefix, const char *job_id,
                     const char *model_type, const char *machine_id)
{
    char err[256];
    if (job_dispatch(redis, prefix, NULL, job_id, model_type, machine_id, err, sizeof err) !=
        ENMS_OK)
        log_event(LOG_WARN, job_id,
                  "auto retrain recorded but not queued (%s); housekeeping will dispatch it", err);
}

/* Takes (lock = 1) or releases the session-level advisory lock that
 * serialises auto-retrain decisions for one machine and model type, so two
 * concurrent drifts cannot both pass the cooldown check. */
static int retrain_lock(PGconn *conn, const char *machine_id, const char *model_type, int lock,
                        char *err, size_t errlen)
{
    const char *key[] = {machine_id, model_type};
    PGresult *res = pg_exec(conn, PGRES_TUPLES_OK,
                            lock ? "SELECT pg_advisory_lock(hashtextextended('auto_retrain:' || "
                                   "$1 || ':' || $2, 0))"
                                 : "SELECT pg_advisory_unlock(hashtextextended('auto_retrain:' || "
                                   "$1 || ':' || $2, 0))",
                            2, key, err, errlen);
    if (!res)
        return ENMS_EDB;
    PQclear(res);
    return ENMS_OK;
}

/* Decides and, when due, creates the retrain. Called with the lock held.
 * result receives the text recorded on the alert. */
static int decide(PGconn *conn, const struct enms_config *cfg, const char *machine_id,
                  const char *model_type, const char *reason, int *triggered, char *job_id,
                  char *result, size_t rlen, char *err, size_t errlen)
{
    char cooldown[16], existing[JOBS_ID_SIZE] = "";
    snprintf(cooldown, sizeof cooldown, "%d", cfg->drift_cooldown_s);
    const char *params[] = {machine_id, model_type, cooldown};
    PGresult *res = pg_exec(
        conn, PGRES_TUPLES_OK,
        "SELECT to_char((max(created_at) + make_interval(secs => $3::int)) AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM model_training_history "
        "WHERE machine_id = $1::uuid AND model_type = $2 AND trigger_type = 'drift_detected' "
        "AND job_kind = 'train' AND created_at > now() - make_interval(secs => $3::int)",
        3, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    if (!PQgetisnull(res, 0, 0)) {
        snprintf(result, rlen, "skipped: cooldown until %s", PQgetvalue(res, 0, 0));
        PQclear(res);
        return ENMS_OK;
    }
    PQclear(res);
    struct job_request req = {.model_type = model_type,
                              .machine_id = machine_id,
                              .trigger_type = "drift_detected",
                              .reason = reason ? reason : "performance drift detected",
                              .triggered_by = "auto_retrain"};
    int rc = jobs_create(conn, &req, job_id, existing, err, errlen);
    if (rc == ENMS_OK) {
        *triggered = 1;
        snprintf(result, rlen, "triggered job %s", job_id);
    } else if (rc == ENMS_ECONFLICT) {
        snprintf(result, rlen, "skipped: training already in progress (%s)",
                 existing[0] ? existing : "unknown job");
        rc = ENMS_OK;
    } else if (rc == ENMS_ENOTFOUND) {
        snprintf(result, rlen, "skipped: machine %s not found", machine_id);
        rc = ENMS_OK;
    }
    return rc;
}

int alert_auto_retrain(PGconn *conn, redisContext *redis, const struct enms_config *cfg,
                       const char *alert_id, const char *machine_id, const char *model_type,
                       const char *reason, int *triggered, char *job_id, char *err, size_t errlen)
{
    char result[160] = "disabled";
    int rc = ENMS_OK, locked = 0;

    *triggered = 0;
    job_id[0] = '\0';
    if (!alert_id || !machine_id || !model_type)
        return enms_fail(err, errlen, ENMS_EINVAL, "alert, machine and model type are required");
    /* jobs_create may meet a unique violation, which would abort an open
     * transaction of the caller's. */
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        return enms_fail(err, errlen, ENMS_EINTERNAL,
                         "alert_auto_retrain must be called outside a transaction");
    if (cfg->auto_retrain) {
        if ((rc = retrain_lock(conn, machine_id, model_type, 1, err, errlen)) != ENMS_OK)
            goto done;
        locked = 1;
        rc = decide(conn, cfg, machine_id, model_type, reason, triggered, job_id, result,
                    sizeof result, err, errlen);
        if (rc != ENMS_OK)
            goto done;
    }
    char taken[2] = {*triggered ? 't' : 'f', '\0'};
    const char *params[] = {alert_id, taken, result, job_id[0] ? job_id : NULL};
    /* auto_action_taken stays true once a retrain was triggered for this
     * alert; the result always shows the newest decision. */
    PGresult *res = pg_exec(conn, PGRES_COMMAND_OK,
                            "UPDATE model_alerts SET auto_action_taken = auto_action_taken OR "
                            "$2::boolean, auto_action_type = 'auto_retrain', "
                            "auto_action_result = $3, alert_details = CASE WHEN $4::uuid IS NULL "
                            "THEN alert_details ELSE alert_details || jsonb_build_object("
                            "'retrain_job_id', $4::text) END, updated_at = now() "
                            "WHERE id = $1::uuid",
                            4, params, err, errlen);
    if (!res) {
        rc = ENMS_EDB;
        goto done;
    }
    PQclear(res);
    if (*triggered) {
        log_event(LOG_INFO, job_id, "auto retrain of %s for machine %s (alert %s)", model_type,
                  machine_id, alert_id);
        if (redis)
            dispatch(redis, cfg->redis_prefix, job_id, model_type, machine_id);
    }
done:
    if (locked) {
        char uerr[256];
        if (retrain_lock(conn, machine_id, model_type, 0, uerr, sizeof uerr) != ENMS_OK)
            log_event(LOG_WARN, NULL, "auto retrain lock not released: %s", uerr);
    }
    return rc;
}
