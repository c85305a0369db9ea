/* job_ops.c - operator actions on one job (see job_ops.h): the facts an
 * event needs, announcing a change, and requeueing a failed job. The
 * failed -> pending transition lives here and nowhere else: it is an
 * operator's act (enmsctl requeue, POST /api/v1/jobs/{id}/requeue). */
#include "job_ops.h"
#include "error.h"
#include "events.h"
#include "log.h"
#include "pg.h"
#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SQLSTATE_UNIQUE_VIOLATION "23505"

int job_facts_read(PGconn *pg, const char *job_id, struct job_facts *f, char *err, size_t errlen)
{
    const char *params[] = {job_id};
    memset(f, 0, sizeof *f);
    PGresult *res = pg_exec(pg, PGRES_TUPLES_OK,
                            "SELECT queue_name, model_type, machine_id, COALESCE(worker_id, ''), "
                            "attempts, progress FROM model_training_history WHERE id = $1::uuid",
                            1, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    int rc = ENMS_OK;
    if (PQntuples(res) != 1) {
        rc = enms_fail(err, errlen, ENMS_ENOTFOUND, "job %s not found", job_id);
    } else {
        snprintf(f->queue_name, sizeof f->queue_name, "%s", PQgetvalue(res, 0, 0));
        snprintf(f->model_type, sizeof f->model_type, "%s", PQgetvalue(res, 0, 1));
        snprintf(f->machine_id, sizeof f->machine_id, "%s", PQgetvalue(res, 0, 2));
        snprintf(f->worker_id, sizeof f->worker_id, "%s", PQgetvalue(res, 0, 3));
        f->attempts = atoi(PQgetvalue(res, 0, 4));
        f->progress = atoi(PQgetvalue(res, 0, 5));
    }
    PQclear(res);
    return rc;
}

int job_announce(redisContext *redis, const char *prefix, const char *event, const char *job_id,
                 const char *status, const char *stage, const struct job_facts *f, int done_ttl_s,
                 char *err, size_t errlen)
{
    char updated[24];
    int rc, live_rc;
    snprintf(updated, sizeof updated, "%lld", (long long)time(NULL));
    struct job_event ev = {.event = event,
                           .job_id = job_id,
                           .status = status,
                           .progress_pct = f->progress,
                           .stage = stage,
                           .model_type = f->model_type,
                           .machine_id = f->machine_id,
                           .attempt = f->attempts,
                           .worker_id = f->worker_id};
    rc = job_event_publish(redis, prefix, &ev, err, errlen);

    /* The live hash is worth updating even when the publish failed. */
    char live_err[256];
    const char *fields[] = {"status", "stage", "updated"};
    const char *values[] = {status, stage, updated};
    live_rc =
        job_live_set(redis, prefix, job_id, 3, fields, values,
                     done_ttl_s > 0 ? done_ttl_s : QUEUE_JOB_TTL_S, live_err, sizeof live_err);
    if (rc == ENMS_OK && live_rc != ENMS_OK)
        rc = enms_fail(err, errlen, live_rc, "%s", live_err);
    return rc;
}

int job_dispatch(redisContext *redis, const char *prefix, const char *queue_name,
                 const char *job_id, const char *model_type, const char *machine_id, char *err,
                 size_t errlen)
{
    char updated[24], warn[256];
    if (!redis)
        return enms_fail(err, errlen, ENMS_EREDIS, "redis unavailable");
    /* The hash and the event only make the dashboard faster: their
     * failures are warnings. The push decides whether a worker sees it. */
    snprintf(updated, sizeof updated, "%lld", (long long)time(NULL));
    const char *fields[] = {"status",     "progress",   "stage",  "attempt",
                            "model_type", "machine_id", "updated"};
    const char *values[] = {"pending", "0", "queued", "0", model_type, machine_id, updated};
    if (job_live_set(redis, prefix, job_id, 7, fields, values, QUEUE_JOB_TTL_S, warn,
                     sizeof warn) != ENMS_OK)
        log_event(LOG_WARN, job_id, "live state not written: %s", warn);
    struct job_event ev = {.event = "training.queued",
                           .job_id = job_id,
                           .status = "pending",
                           .stage = "queued",
                           .model_type = model_type,
                           .machine_id = machine_id};
    if (job_event_publish(redis, prefix, &ev, warn, sizeof warn) != ENMS_OK)
        log_event(LOG_WARN, job_id, "queued event not published: %s", warn);
    if (queue_push(redis, prefix, queue_name ? queue_name : QUEUE_DEFAULT, job_id, warn,
                   sizeof warn) != ENMS_OK)
        return enms_fail(err, errlen, ENMS_EREDIS, "not queued: %s", warn);
    return ENMS_OK;
}

int job_list_remove(redisContext *redis, const char *key, const char *id, char *err, size_t errlen)
{
    redisReply *r = redisCommand(redis, "LREM %s 0 %s", key, id);
    int rc = ENMS_OK;
    if (!r || r->type != REDIS_REPLY_INTEGER)
        rc = enms_fail(err, errlen, ENMS_EREDIS, "redis: LREM: %s",
                       r && r->type == REDIS_REPLY_ERROR ? r->str : redis->errstr);
    if (r)
        freeReplyObject(r);
    return rc;
}

int job_requeue(PGconn *pg, redisContext *redis, const char *prefix, const char *job_id,
                const char *stage, struct job_facts *f, char *err, size_t errlen)
{
    char key[QUEUE_KEY_MAX], status[JOBS_STATUS_SIZE];
    struct job_facts local = {0};
    struct job_facts *facts = f ? f : &local;
    const char *params[] = {job_id, stage};
    int rc;
    /* PQexecParams directly: the unique violation's SQLSTATE is needed. */
    PGresult *res = PQexecParams(
        pg,
        "UPDATE model_training_history SET training_status = 'pending', attempts = 0, "
        "progress = 0, stage = $2, error_message = NULL, "
        "training_end = NULL, training_duration_seconds = NULL, heartbeat_at = NULL, "
        "cancel_requested_at = NULL WHERE id = $1::uuid AND training_status = 'failed' "
        "RETURNING id",
        2, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (res && strcmp(pg_sqlstate(res), SQLSTATE_UNIQUE_VIOLATION) == 0)
            rc = enms_fail(err, errlen, ENMS_ECONFLICT,
                           "job %s not requeued: another job of its machine and model type is "
                           "pending or running",
                           job_id);
        else
            rc = enms_fail(err, errlen, ENMS_EDB, "postgresql: %s",
                           res ? PQresultErrorMessage(res) : PQerrorMessage(pg));
        if (res)
            PQclear(res);
        return rc;
    }
    int changed = PQntuples(res);
    PQclear(res);
    if (changed != 1) {
        if ((rc = jobs_status(pg, job_id, status, NULL, err, errlen)) != ENMS_OK)
            return rc;
        return enms_fail(err, errlen, ENMS_ECONFLICT, "job %s is %s, not failed", job_id, status);
    }
    if ((rc = job_facts_read(pg, job_id, facts, err, errlen)) != ENMS_OK)
        return rc;
    if ((rc = queue_push(redis, prefix, facts->queue_name, job_id, err, errlen)) != ENMS_OK)
        return rc;
    if (queue_key(key, sizeof key, prefix, "dead", NULL) != ENMS_OK)
        return enms_fail(err, errlen, ENMS_ETOOBIG, "redis key too long");
    if ((rc = job_list_remove(redis, key, job_id, err, errlen)) != ENMS_OK)
        return rc;
    char warn[256];
    (void)job_announce(redis, prefix, "training.requeued", job_id, "pending", stage, facts, 0, warn,
                       sizeof warn);
    return ENMS_OK;
}
