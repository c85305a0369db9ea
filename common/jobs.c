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
#include "json_rows.h"
#include "pg.h"
#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
#define START_SET                                                                                  \
    "UPDATE model_training_history SET training_status = 'running', "                              \
    "attempts = attempts + 1, worker_id = $2, training_start = now(), "                            \
    "heartbeat_at = now(), training_end = NULL, progress = 0, stage = 'starting', "                \
    "error_message = NULL "                                                                        \
    "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit "
#define START_RETURNING                                                                            \
    " RETURNING id, model_type, machine_id, trigger_type, queue_name, attempts, "                  \
    "params::text, job_kind"

static const struct pg_stmt STMT_START = {
    "enms_jobs_start",
    START_SET "WHERE id = $1::uuid AND training_status = 'pending'" START_RETURNING, 2};

static const struct pg_stmt STMT_START_BATCH = {
    "enms_jobs_start_batch",
    START_SET "WHERE id = ANY ($1::uuid[]) AND training_status = 'pending'" START_RETURNING, 2};

/* Fills *out from row `row` of a START statement's result. */
static int read_started(const PGresult *res, int row, struct job_record *out, char *err,
                        size_t errlen)
{
    copy_field(out->id, sizeof out->id, res, row, 0);
    copy_field(out->model_type, sizeof out->model_type, res, row, 1);
    copy_field(out->machine_id, sizeof out->machine_id, res, row, 2);
    copy_field(out->trigger_type, sizeof out->trigger_type, res, row, 3);
    copy_field(out->queue_name, sizeof out->queue_name, res, row, 4);
    copy_field(out->job_kind, sizeof out->job_kind, res, row, 7);
    out->attempts = atoi(PQgetvalue(res, row, 5));
    out->params_json = strdup(PQgetvalue(res, row, 6));
    if (!out->params_json)
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
    return ENMS_OK;
}

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
    rc = read_started(res, 0, out, err, errlen);
done:
    PQclear(res);
    return rc;
}

int jobs_start_batch(PGconn *conn, const char *const *ids, int n, const char *worker_id,
                     struct job_record *out, char *err, size_t errlen)
{
    char *list = malloc((size_t)n * (JOBS_ID_SIZE + 1) + 3); /* "{id,id,...}" */
    PGresult *res = NULL;
    int rc = ENMS_OK;
    for (int i = 0; i < n; i++)
        memset(&out[i], 0, sizeof out[i]);
    if (!list)
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
    size_t len = 0;
    list[len++] = '{';
    for (int i = 0; i < n; i++) {
        size_t idlen = strnlen(ids[i], JOBS_ID_SIZE);
        if (!queue_is_uuid(ids[i], idlen)) {
            rc = enms_fail(err, errlen, ENMS_EINVAL, "not a job id: %.40s", ids[i]);
            goto done;
        }
        if (i > 0)
            list[len++] = ',';
        memcpy(list + len, ids[i], idlen);
        len += idlen;
    }
    list[len++] = '}';
    list[len] = '\0';
    const char *params[] = {list, worker_id};
    res = pg_exec_stmt(conn, PGRES_TUPLES_OK, &STMT_START_BATCH, params, err, errlen);
    if (!res) {
        rc = ENMS_EDB;
        goto done;
    }
    /* Rows come back in no particular order: each goes to its id's slot. */
    for (int row = 0; row < PQntuples(res) && rc == ENMS_OK; row++) {
        const char *id = PQgetvalue(res, row, 0);
        for (int i = 0; i < n; i++)
            if (strcasecmp(ids[i], id) == 0 && out[i].id[0] == '\0') {
                rc = read_started(res, row, &out[i], err, errlen);
                break;
            }
    }
    if (rc != ENMS_OK)
        for (int i = 0; i < n; i++)
            job_record_clear(&out[i]);
done:
    PQclear(res);
    free(list);
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

/* STMT_COMPLETE for many attempts at once; $1 is a JSON array with one
 * object per job (jobs_complete_batch writes it), read as records. A key
 * left out is NULL: keep the column. */
static const struct pg_stmt STMT_COMPLETE_BATCH = {
    "enms_jobs_complete_batch",
    "UPDATE model_training_history j SET training_status = 'completed', training_end = now(), "
    "training_duration_seconds = GREATEST(0, EXTRACT(EPOCH FROM now() - j.training_start)), "
    "error_message = NULL, training_metrics = COALESCE(r.metrics, j.training_metrics), "
    "progress = 100, stage = 'completed', heartbeat_at = now(), "
    "training_samples = COALESCE(r.samples, j.training_samples), "
    "training_data_start = COALESCE(to_timestamp(r.data_start), j.training_data_start), "
    "training_data_end = COALESCE(to_timestamp(r.data_end), j.training_data_end), "
    "hyperparameters = COALESCE(r.hyperparameters, j.hyperparameters), "
    "feature_names = CASE WHEN r.feature_names IS NULL THEN j.feature_names "
    "ELSE ARRAY(SELECT jsonb_array_elements_text(r.feature_names)) END, "
    "validation_metrics = COALESCE(r.validation_metrics, j.validation_metrics) "
    "FROM jsonb_to_recordset($1::jsonb) AS r(id uuid, attempt int, metrics jsonb, samples int, "
    "data_start bigint, data_end bigint, hyperparameters jsonb, feature_names jsonb, "
    "validation_metrics jsonb) "
    "WHERE j.id = r.id AND j.attempts = r.attempt AND j.training_status = 'running' "
    "RETURNING j.id",
    1};

/* Appends ,"key":<json text> to t unless json is NULL. The text is the
 * trainer's own JSON; if it were not JSON, PostgreSQL would refuse the
 * whole statement and the caller falls back to one job at a time. */
static void put_raw(struct json_text *t, const char *key, const char *json)
{
    if (!json)
        return;
    json_text_raw(t, ",\"", 2);
    json_text_raw(t, key, strlen(key));
    json_text_raw(t, "\":", 2);
    json_text_raw(t, json, strlen(json));
}

static void put_int(struct json_text *t, const char *key, long long v)
{
    char buf[64];
    int len = snprintf(buf, sizeof buf, ",\"%s\":%lld", key, v);
    json_text_raw(t, buf, (size_t)len);
}

int jobs_complete_batch(PGconn *conn, struct job_done *done, int n, char *err, size_t errlen)
{
    struct json_text t = {0};
    PGresult *res = NULL;
    int rc = ENMS_OK;
    json_text_raw(&t, "[", 1);
    for (int i = 0; i < n; i++) {
        const struct job_completion *c = &done[i].c;
        done[i].completed = 0;
        size_t idlen = strnlen(done[i].job_id, JOBS_ID_SIZE);
        if (!queue_is_uuid(done[i].job_id, idlen)) {
            rc = enms_fail(err, errlen, ENMS_EINVAL, "not a job id: %.40s", done[i].job_id);
            goto done;
        }
        json_text_raw(&t, i > 0 ? ",{\"id\":\"" : "{\"id\":\"", i > 0 ? 8 : 7);
        json_text_raw(&t, done[i].job_id, idlen);
        json_text_raw(&t, "\"", 1);
        put_int(&t, "attempt", done[i].attempt);
        put_raw(&t, "metrics", c->metrics_json);
        if (c->training_samples >= 0)
            put_int(&t, "samples", c->training_samples);
        if (c->data_start > 0)
            put_int(&t, "data_start", (long long)c->data_start);
        if (c->data_end > 0)
            put_int(&t, "data_end", (long long)c->data_end);
        put_raw(&t, "hyperparameters", c->hyperparameters_json);
        put_raw(&t, "feature_names", c->feature_names_json);
        put_raw(&t, "validation_metrics", c->validation_metrics_json);
        json_text_raw(&t, "}", 1);
    }
    json_text_raw(&t, "]", 1);
    if (t.failed) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    const char *params[] = {t.buf};
    res = pg_exec_stmt(conn, PGRES_TUPLES_OK, &STMT_COMPLETE_BATCH, params, err, errlen);
    if (!res) {
        rc = ENMS_EDB;
        goto done;
    }
    for (int row = 0; row < PQntuples(res); row++) {
        const char *id = PQgetvalue(res, row, 0);
        for (int i = 0; i < n; i++)
            if (strcasecmp(done[i].job_id, id) == 0)
                done[i].completed = 1;
    }
done:
    PQclear(res);
    free(t.buf);
    return rc;
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

/* The attempt number goes back with the job: no lease, heartbeat or write
 * was ever made under it (heartbeat_at still equals training_start, which
 * only jobs_start sets), so the next start may issue it again. */
static const struct pg_stmt STMT_UNSTART = {
    "enms_jobs_unstart",
    "UPDATE model_training_history SET training_status = 'pending', attempts = attempts - 1, "
    "stage = $4, progress = 0, heartbeat_at = NULL, training_start = NULL "
    "WHERE id = $1::uuid AND attempts = $2::int AND training_status = 'running' "
    "AND worker_id = $3 AND heartbeat_at = training_start RETURNING id",
    4};

int jobs_unstart(PGconn *conn, const char *job_id, int attempt, const char *worker_id,
                 const char *reason, char *err, size_t errlen)
{
    char attempt_text[16], wanted[64];
    snprintf(attempt_text, sizeof attempt_text, "%d", attempt);
    const char *params[] = {job_id, attempt_text, worker_id, reason};
    snprintf(wanted, sizeof wanted, "running as attempt %d, never run", attempt);
    return cas_update(conn, &STMT_UNSTART, params, job_id, wanted, err, errlen);
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
