/* jobs.c - job status transitions in PostgreSQL (see jobs.h).
 *
 * Each transition is one UPDATE whose WHERE clause states the expected
 * status (and, for running jobs, the attempt): the row changes only if the
 * job is still in that state, which is what makes concurrent finishers,
 * cancellers and rescuers safe without locks held across round trips.
 *
 * The statements a job runs on every dispatch are prepared once per
 * connection (struct pg_stmt, pg.h); the rare ones stay ad hoc. */
#include "jobs.h"
#include "error.h"
#include "pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SQLSTATEs we act on. */
#define SQLSTATE_UNIQUE_VIOLATION "23505"
#define SQLSTATE_FK_VIOLATION     "23503"
#define SQLSTATE_INVALID_TEXT     "22P02"

void job_record_clear(struct job_record *job)
{
    free(job->params_json);
    memset(job, 0, sizeof *job);
}

static void copy_field(char *dst, size_t dstlen, const PGresult *res, int row, int col)
{
    snprintf(dst, dstlen, "%s", PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

/* Runs a prepared statement and returns its result; on an error result,
 * returns it too (so the caller can read the SQLSTATE) with *failed set.
 * NULL only when no result at all came back. */
static PGresult *exec_keep_error(PGconn *conn, const struct pg_stmt *stmt,
                                 const char *const *params, int *failed)
{
    PGresult *res = pg_run_stmt(conn, stmt, params, NULL, 0);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    *failed = !(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK);
    return res;
}

static int db_error(PGconn *conn, const PGresult *res, char *err, size_t errlen)
{
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
    enms_fail(err, errlen, ENMS_EDB, "postgresql: %s", msg && *msg ? msg : "unknown error");
    /* One line, like every other message. */
    if (err) {
        for (char *p = err; *p; p++) {
            if (*p == '\n')
                *p = p[1] ? ' ' : '\0';
        }
    }
    return ENMS_EDB;
}

/* The id of the job of job_kind currently pending or running for
 * (model_type, machine_id); ENMS_ENOTFOUND when none (it finished in the
 * meantime). */
static int find_active(PGconn *conn, const char *model_type, const char *machine_id,
                       const char *job_kind, char *out, char *err, size_t errlen)
{
    const char *params[] = {model_type, machine_id, job_kind};
    PGresult *res = pg_exec(conn, PGRES_TUPLES_OK,
                            "SELECT id FROM model_training_history WHERE model_type = $1 AND "
                            "machine_id = $2 AND job_kind = $3 AND "
                            "training_status IN ('pending', 'running') LIMIT 1",
                            3, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    int rc = ENMS_ENOTFOUND;
    if (PQntuples(res) == 1) {
        copy_field(out, JOBS_ID_SIZE, res, 0, 0);
        rc = ENMS_OK;
    }
    PQclear(res);
    return rc;
}

static const struct pg_stmt STMT_CREATE = {
    "enms_jobs_create",
    "INSERT INTO model_training_history (model_type, machine_id, trigger_type, reason, "
    "triggered_by, params, queue_name, stage, job_kind) "
    "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, 'queued', $8) RETURNING id",
    8};

int jobs_create(PGconn *conn, const struct job_request *req, char *job_id, char *existing_id,
                char *err, size_t errlen)
{
    const char *params[] = {req->model_type,
                            req->machine_id,
                            req->trigger_type ? req->trigger_type : "manual",
                            req->reason,
                            req->triggered_by,
                            req->params_json ? req->params_json : "{}",
                            req->queue_name ? req->queue_name : "default",
                            req->job_kind ? req->job_kind : "train"};
    existing_id[0] = '\0';
    /* A conflict whose holder finishes before we look it up is retried: the
     * insert may succeed the second time. */
    for (int tries = 0; tries < 3; tries++) {
        int failed = 0;
        PGresult *res = exec_keep_error(conn, &STMT_CREATE, params, &failed);
        if (!failed) {
            copy_field(job_id, JOBS_ID_SIZE, res, 0, 0);
            PQclear(res);
            return ENMS_OK;
        }
        const char *state = pg_sqlstate(res);
        if (strcmp(state, SQLSTATE_FK_VIOLATION) == 0) {
            PQclear(res);
            return enms_fail(err, errlen, ENMS_ENOTFOUND, "machine %s not found", req->machine_id);
        }
        if (strcmp(state, SQLSTATE_UNIQUE_VIOLATION) != 0) {
            int rc = db_error(conn, res, err, errlen);
            PQclear(res);
            return rc;
        }
        PQclear(res);
        int rc = find_active(conn, req->model_type, req->machine_id, params[7], existing_id, err,
                             errlen);
        if (rc == ENMS_OK)
            return enms_fail(err, errlen, ENMS_ECONFLICT,
                             strcmp(params[7], "train") == 0 ? "Training already in progress"
                                                             : "An evaluation is already queued");
        if (rc != ENMS_ENOTFOUND)
            return rc;
    }
    return enms_fail(err, errlen, ENMS_ECONFLICT, "Training already in progress");
}

static const struct pg_stmt STMT_STATUS = {
    "enms_jobs_status",
    "SELECT training_status, attempts FROM model_training_history WHERE id = $1::uuid", 1};

int jobs_status(PGconn *conn, const char *job_id, char *status, int *attempts, char *err,
                size_t errlen)
{
    const char *params[] = {job_id};
    PGresult *res = pg_exec_stmt(conn, PGRES_TUPLES_OK, &STMT_STATUS, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    int rc = ENMS_ENOTFOUND;
    if (PQntuples(res) == 1) {
        copy_field(status, JOBS_STATUS_SIZE, res, 0, 0);
        if (attempts)
            *attempts = atoi(PQgetvalue(res, 0, 1));
        rc = ENMS_OK;
    }
    PQclear(res);
    if (rc == ENMS_ENOTFOUND)
        enms_fail(err, errlen, rc, "job %s not found", job_id);
    return rc;
}

/* After a compare-and-set matched no row: tells "not found" from "not in
 * the expected state" and says which state it is in. */
static int explain_no_match(PGconn *conn, const char *job_id, const char *wanted, char *err,
                            size_t errlen)
{
    char status[JOBS_STATUS_SIZE] = "";
    int attempts = 0;
    int rc = jobs_status(conn, job_id, status, &attempts, err, errlen);
    if (rc != ENMS_OK)
        return rc;
    return enms_fail(err, errlen, ENMS_ECONFLICT, "job %s is %s (attempt %d), not %s", job_id,
                     status, attempts, wanted);
}

/* "running" commits asynchronously: set_config(..., true) is SET LOCAL for
 * the statement's own implicit transaction, so its commit does not wait
 * for the WAL flush (jobs.h says why losing it is safe). The one-row
 * subquery is volatile, so it is evaluated, never folded away. */
static const struct pg_stmt STMT_START = {
    "enms_jobs_start",
    "UPDATE model_training_history SET training_status = 'running', "
    "attempts = attempts + 1, worker_id = $2, training_start = now(), "
    "heartbeat_at = now(), training_end = NULL, progress = 0, stage = 'starting', "
    "error_message = NULL "
    "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit "
    "WHERE id = $1::uuid AND training_status = 'pending' "
    "RETURNING id, model_type, machine_id, trigger_type, queue_name, attempts, "
    "params::text, job_kind",
    2};

int jobs_start(PGconn *conn, const char *job_id, const char *worker_id, struct job_record *out,
               char *err, size_t errlen)
{
    const char *params[] = {job_id, worker_id};
    memset(out, 0, sizeof *out);
    PGresult *res = pg_exec_stmt(conn, PGRES_TUPLES_OK, &STMT_START, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    int rc = ENMS_OK;
    if (PQntuples(res) != 1) {
        rc = explain_no_match(conn, job_id, "pending", err, errlen);
        goto done;
    }
    copy_field(out->id, sizeof out->id, res, 0, 0);
    copy_field(out->model_type, sizeof out->model_type, res, 0, 1);
    copy_field(out->machine_id, sizeof out->machine_id, res, 0, 2);
    copy_field(out->trigger_type, sizeof out->trigger_type, res, 0, 3);
    copy_field(out->queue_name, sizeof out->queue_name, res, 0, 4);
    copy_field(out->job_kind, sizeof out->job_kind, res, 0, 7);
    out->attempts = atoi(PQgetvalue(res, 0, 5));
    out->params_json = strdup(PQgetvalue(res, 0, 6));
    if (!out->params_json)
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
done:
    PQclear(res);
    return rc;
}

/* Runs a compare-and-set UPDATE ... RETURNING id; 0 when one row changed,
 * else explains why not. */
static int cas_update(PGconn *conn, const struct pg_stmt *stmt, const char *const *params,
                      const char *job_id, const char *wanted, char *err, size_t errlen)
{
    PGresult *res = pg_exec_stmt(conn, PGRES_TUPLES_OK, stmt, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    int changed = PQntuples(res);
    PQclear(res);
    if (changed == 1)
        return ENMS_OK;
    return explain_no_match(conn, job_id, wanted, err, errlen);
}

static const struct pg_stmt STMT_HEARTBEAT = {
    "enms_jobs_heartbeat",
    "UPDATE model_training_history SET heartbeat_at = now(), "
    "progress = COALESCE($3::smallint, progress), stage = COALESCE($4, stage) "
    "WHERE id = $1::uuid AND attempts = $2::int AND training_status = 'running' RETURNING id",
    4};

int jobs_heartbeat(PGconn *conn, const char *job_id, int attempt, int progress, const char *stage,
                   char *err, size_t errlen)
{
    char attempt_text[16], progress_text[16];
    snprintf(attempt_text, sizeof attempt_text, "%d", attempt);
    snprintf(progress_text, sizeof progress_text, "%d", progress);
    const char *params[] = {job_id, attempt_text, progress >= 0 ? progress_text : NULL, stage};
    char wanted[48];
    snprintf(wanted, sizeof wanted, "running as attempt %d", attempt);
    return cas_update(conn, &STMT_HEARTBEAT, params, job_id, wanted, err, errlen);
}

static const struct pg_stmt STMT_FINISH = {
    "enms_jobs_finish",
    "UPDATE model_training_history SET training_status = $3, training_end = now(), "
    "training_duration_seconds = GREATEST(0, EXTRACT(EPOCH FROM now() - training_start)), "
    "error_message = $4, training_metrics = COALESCE($5::jsonb, training_metrics), "
    "progress = CASE WHEN $3 = 'completed' THEN 100 ELSE progress END, stage = $3, "
    "heartbeat_at = now() "
    "WHERE id = $1::uuid AND attempts = $2::int AND training_status = 'running' RETURNING id",
    5};

int jobs_finish(PGconn *conn, const char *job_id, int attempt, const char *status,
                const char *error_message, const char *metrics_json, char *err, size_t errlen)
{
    if (strcmp(status, "completed") != 0 && strcmp(status, "failed") != 0)
        return enms_fail(err, errlen, ENMS_EINVAL, "jobs_finish: status %s", status);
    char attempt_text[16];
    snprintf(attempt_text, sizeof attempt_text, "%d", attempt);
    const char *params[] = {job_id, attempt_text, status, error_message, metrics_json};
    char wanted[48];
    snprintf(wanted, sizeof wanted, "running as attempt %d", attempt);
    return cas_update(conn, &STMT_FINISH, params, job_id, wanted, err, errlen);
}

/* jobs_finish's compare-and-set and the result columns in one statement:
 * one round trip and, outside a transaction block, one durable commit. */
static const struct pg_stmt STMT_COMPLETE = {
    "enms_jobs_complete",
    "UPDATE model_training_history SET training_status = 'completed', training_end = now(), "
    "training_duration_seconds = GREATEST(0, EXTRACT(EPOCH FROM now() - training_start)), "
    "error_message = NULL, training_metrics = COALESCE($3::jsonb, training_metrics), "
    "progress = 100, stage = 'completed', heartbeat_at = now(), "
    "result_version_id = COALESCE($4::uuid, result_version_id), "
    "model_version = COALESCE($5::int, model_version), "
    "training_samples = COALESCE($6::int, training_samples), "
    "training_data_start = COALESCE(to_timestamp($7::bigint), training_data_start), "
    "training_data_end = COALESCE(to_timestamp($8::bigint), training_data_end), "
    "hyperparameters = COALESCE($9::jsonb, hyperparameters), "
    "feature_names = CASE WHEN $10::jsonb IS NULL THEN feature_names "
    "ELSE ARRAY(SELECT jsonb_array_elements_text($10::jsonb)) END, "
    "validation_metrics = COALESCE($11::jsonb, validation_metrics) "
    "WHERE id = $1::uuid AND attempts = $2::int AND training_status = 'running' RETURNING id",
    11};

int jobs_complete(PGconn *conn, const char *job_id, int attempt, const struct job_completion *c,
                  char *err, size_t errlen)
{
    char attempt_text[16], samples[16], dstart[24], dend[24], wanted[48];
    snprintf(attempt_text, sizeof attempt_text, "%d", attempt);
    snprintf(samples, sizeof samples, "%d", c->training_samples);
    snprintf(dstart, sizeof dstart, "%lld", (long long)c->data_start);
    snprintf(dend, sizeof dend, "%lld", (long long)c->data_end);
    const char *params[] = {job_id,
                            attempt_text,
                            c->metrics_json,
                            c->version_id,
                            c->version,
                            c->training_samples >= 0 ? samples : NULL,
                            c->data_start > 0 ? dstart : NULL,
                            c->data_end > 0 ? dend : NULL,
                            c->hyperparameters_json,
                            c->feature_names_json,
                            c->validation_metrics_json};
    snprintf(wanted, sizeof wanted, "running as attempt %d", attempt);
    return cas_update(conn, &STMT_COMPLETE, params, job_id, wanted, err, errlen);
}

int jobs_cancel(PGconn *conn, const char *job_id, char *prev_status, char *err, size_t errlen)
{
    const char *params[] = {job_id};
    prev_status[0] = '\0';
    /* The CTE reads the status under the row lock, so prev_status is the
     * state this very UPDATE moved the job out of. */
    PGresult *res = pg_exec(conn, PGRES_TUPLES_OK,
                            "WITH old AS (SELECT id, training_status FROM model_training_history "
                            "WHERE id = $1::uuid FOR UPDATE) "
                            "UPDATE model_training_history j SET training_status = 'cancelled', "
                            "training_end = now(), cancel_requested_at = now(), "
                            "stage = 'cancelled', error_message = 'cancelled by request', "
                            "training_duration_seconds = CASE WHEN j.training_start IS NULL "
                            "THEN NULL ELSE GREATEST(0, EXTRACT(EPOCH FROM now() - "
                            "j.training_start)) END "
                            "FROM old WHERE j.id = old.id AND old.training_status IN "
                            "('pending', 'running') RETURNING old.training_status",
                            1, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    int rc = ENMS_OK;
    if (PQntuples(res) == 1) {
        copy_field(prev_status, JOBS_STATUS_SIZE, res, 0, 0);
    } else {
        rc = jobs_status(conn, job_id, prev_status, NULL, err, errlen);
        if (rc == ENMS_OK)
            rc = enms_fail(err, errlen, ENMS_ECONFLICT, "job already %s", prev_status);
    }
    PQclear(res);
    return rc;
}

static const struct pg_stmt STMT_RELEASE = {
    "enms_jobs_release",
    "UPDATE model_training_history SET training_status = 'pending', "
    "stage = $3, progress = 0, heartbeat_at = NULL "
    "WHERE id = $1::uuid AND attempts = $2::int AND training_status = 'running' RETURNING id",
    3};

int jobs_release(PGconn *conn, const char *job_id, int attempt, const char *reason, char *err,
                 size_t errlen)
{
    char attempt_text[16];
    snprintf(attempt_text, sizeof attempt_text, "%d", attempt);
    const char *params[] = {job_id, attempt_text, reason ? reason : "released"};
    char wanted[48];
    snprintf(wanted, sizeof wanted, "running as attempt %d", attempt);
    return cas_update(conn, &STMT_RELEASE, params, job_id, wanted, err, errlen);
}

int jobs_alert_failed(PGconn *conn, const char *job_id, const char *message, char *err,
                      size_t errlen)
{
    const char *params[] = {job_id, message};
    PGresult *res = pg_exec(
        conn, PGRES_TUPLES_OK,
        "INSERT INTO model_alerts (alert_type, severity, model_type, machine_id, alert_message, "
        "alert_details) SELECT 'training_failed', 'critical', model_type, machine_id, $2, "
        "jsonb_build_object('job_id', id, 'attempts', attempts, 'worker_id', worker_id, "
        "'error_message', error_message) FROM model_training_history WHERE id = $1::uuid "
        "RETURNING id",
        2, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    int rc = PQntuples(res) == 1
                 ? ENMS_OK
                 : enms_fail(err, errlen, ENMS_ENOTFOUND, "job %s not found", job_id);
    PQclear(res);
    return rc;
}

int jobs_parse_time(const char *text, time_t *out)
{
    struct tm tm;
    int n = 0;
    memset(&tm, 0, sizeof tm);
    if (!text ||
        sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &n) != 6 ||
        n != 19)
        return ENMS_EINVAL;
    const char *rest = text + n;
    if (*rest == '.')
        for (rest++; *rest >= '0' && *rest <= '9'; rest++)
            ;
    if (strcmp(rest, "Z") != 0 || tm.tm_year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12)
        return ENMS_EINVAL;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return ENMS_EINVAL;
    *out = t;
    return ENMS_OK;
}
