/* routes_jobs.c - the job history endpoints: GET /api/v1/jobs (filtered,
 * keyset-paged list), GET /api/v1/jobs/{id} (one job with its events and,
 * while it is active, its live state from Redis) and
 * POST /api/v1/jobs/{id}/cancel.
 *
 * The record comes from PostgreSQL (jobs_query.h); the cancel transition is
 * common/jobs.h's compare-and-set, after which Redis is told (queue entry
 * removed, cancel flag for the worker, live hash, event). A Redis failure
 * after the transition is logged, not reported: the row is cancelled, and a
 * worker holding the job learns it from its next heartbeat's
 * compare-and-set in PostgreSQL. */
#include "http.h"
#include "jobs_query.h"
#include "params.h"
#include "routes.h"
#include "server.h"
#include "../common/error.h"
#include "../common/jobs.h"
#include "../common/job_ops.h"
#include "../common/log.h"
#include "../common/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const STATUSES[] = {"pending", "running",   "completed",
                                       "failed",  "cancelled", NULL};
static const char *const MODEL_TYPES[] = {"baseline", "anomaly", "forecast_arima", "probe", NULL};
static const char *const TRIGGER_TYPES[] = {
    "manual", "scheduled", "drift", "drift_detected", "performance_degradation", "ab_test", NULL};

static const struct param_spec LIST_FIELDS[] = {
    {.name = "status", .type = PARAM_ENUM, .choices = STATUSES},
    {.name = "model_type", .type = PARAM_ENUM, .choices = MODEL_TYPES},
    {.name = "machine_id", .type = PARAM_UUID},
    {.name = "trigger_type", .type = PARAM_ENUM, .choices = TRIGGER_TYPES},
    {.name = "since", .type = PARAM_TIME},
    {.name = "until", .type = PARAM_TIME},
    {.name = "limit", .type = PARAM_INT, .min = 1, .max = JOBS_LIMIT_MAX},
    {.name = "cursor", .type = PARAM_STRING, .max_len = JOBS_CURSOR_MAX},
};

/* 503 when the connection is gone, else 500: the dashboard tells "try
 * later" from "this is a bug" by the status. */
int route_jobs_list(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct params p;
    struct jobs_filter f;
    char err[512];
    char next[JOBS_CURSOR_MAX];
    cJSON *jobs = NULL, *obj = NULL;
    int status;

    params_init(&p, LIST_FIELDS, sizeof LIST_FIELDS / sizeof LIST_FIELDS[0], NULL);
    if (!http_method_is(conn, "GET")) {
        status = http_reply_error(conn, 405, "use GET");
        goto done;
    }
    if (params_read(&p, ri->query_string, ri->query_string ? strlen(ri->query_string) : 0, NULL, 0,
                    err, sizeof err) != ENMS_OK) {
        status = http_reply_error(conn, 400, "%s", err);
        goto done;
    }
    memset(&f, 0, sizeof f);
    f.status = params_text(&p, "status", NULL);
    f.model_type = params_text(&p, "model_type", NULL);
    f.machine_id = params_text(&p, "machine_id", NULL);
    f.trigger_type = params_text(&p, "trigger_type", NULL);
    f.since = params_text(&p, "since", NULL);
    f.until = params_text(&p, "until", NULL);
    const struct param_value *limit = params_get(&p, "limit");
    f.limit = limit ? (int)limit->num : JOBS_LIMIT_DFLT;
    const char *cursor = params_text(&p, "cursor", NULL);
    if (cursor) {
        if (jobs_cursor_decode(cursor, strlen(cursor), &f.cursor_us, f.cursor_id) != ENMS_OK) {
            status = http_reply_error(conn, 400,
                                      "cursor: malformed (pass next_cursor of the previous page)");
            goto done;
        }
        f.has_cursor = 1;
    }
    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg) {
        status = http_reply_error(conn, 503, "postgresql unavailable: %s", err);
        goto done;
    }
    if (jobs_query_list(pg, &f, &jobs, next, err, sizeof err) != ENMS_OK) {
        status = http_reply_db_error(conn, pg, err);
        goto done;
    }
    obj = cJSON_CreateObject();
    if (!obj) {
        status = http_reply_error(conn, 500, "out of memory");
        goto done;
    }
    cJSON_AddItemToObject(obj, "jobs", jobs);
    jobs = NULL;
    if (next[0])
        cJSON_AddStringToObject(obj, "next_cursor", next);
    else
        cJSON_AddNullToObject(obj, "next_cursor");
    status = http_reply_item(conn, 200, obj);
done:
    cJSON_Delete(obj);
    cJSON_Delete(jobs);
    params_free(&p);
    return status;
}

/* Seconds since a timestamp held as epoch seconds, epoch milliseconds or
 * ISO 8601 text; negative when it cannot be read. */
static double age_of(const char *text)
{
    char *end = NULL;
    long long us;
    double now = (double)time(NULL);
    double v = strtod(text, &end);
    if (end != text && *end == '\0')
        return now - (v > 1e11 ? v / 1000.0 : v);
    if (params_parse_time(text, strlen(text), &us) == ENMS_OK)
        return now - (double)us / 1e6;
    return -1;
}

/* HGETALL key as a JSON object; fields named in numeric[] become numbers
 * when they read as one. *out is NULL when the hash does not exist.
 * Returns 0 or ENMS_EREDIS. */
static int hash_object(redisContext *r, const char *key, const char *const *numeric, cJSON **out,
                       char *err, size_t errlen)
{
    *out = NULL;
    redisReply *reply = redisCommand(r, "HGETALL %s", key);
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        int rc = enms_fail(err, errlen, ENMS_EREDIS, "redis: HGETALL: %s",
                           reply && reply->type == REDIS_REPLY_ERROR ? reply->str : r->errstr);
        if (reply)
            freeReplyObject(reply);
        return rc;
    }
    if (reply->elements == 0) {
        freeReplyObject(reply);
        return ENMS_OK;
    }
    cJSON *obj = cJSON_CreateObject();
    for (size_t i = 0; obj && i + 1 < reply->elements; i += 2) {
        const redisReply *k = reply->element[i], *v = reply->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        int as_number = 0;
        for (size_t n = 0; numeric[n]; n++)
            as_number |= strcmp(numeric[n], k->str) == 0;
        char *end = NULL;
        double d = as_number ? strtod(v->str, &end) : 0;
        if (as_number && end != v->str && *end == '\0')
            cJSON_AddNumberToObject(obj, k->str, d);
        else
            cJSON_AddStringToObject(obj, k->str, v->str);
    }
    freeReplyObject(reply);
    *out = obj;
    return obj ? ENMS_OK : enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
}

static void add_age(cJSON *obj, const char *field, const char *age_name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, field);
    char text[64];
    if (cJSON_IsNumber(item))
        snprintf(text, sizeof text, "%.17g", item->valuedouble);
    else if (cJSON_IsString(item))
        snprintf(text, sizeof text, "%s", item->valuestring);
    else
        return;
    double age = age_of(text);
    if (age >= 0)
        cJSON_AddNumberToObject(obj, age_name, age);
}

/* Adds "live" and "worker" to an active job's detail from Redis; both null
 * when the job is finished or Redis cannot be reached (the record stands
 * without them). */
static void add_live_state(struct mg_connection *conn, cJSON *job, const char *job_id)
{
    static const char *const live_numeric[] = {"progress", "attempt", "heartbeat", "updated", NULL};
    static const char *const worker_numeric[] = {"pid", "started", "last_beat", NULL};
    const struct api_server *srv = api_server_of(conn);
    const char *prefix = srv->cfg->redis_prefix;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(job, "training_status");
    const cJSON *wid = cJSON_GetObjectItemCaseSensitive(job, "worker_id");
    cJSON *live = NULL, *worker = NULL;
    char key[QUEUE_KEY_MAX];
    char err[256];
    int active = cJSON_IsString(st) && (strcmp(st->valuestring, "pending") == 0 ||
                                        strcmp(st->valuestring, "running") == 0);
    redisContext *r = active ? api_redis(conn, err, sizeof err) : NULL;
    if (active && !r)
        log_event(LOG_WARN, job_id, "job detail without live state: %s", err);
    if (r && queue_key(key, sizeof key, prefix, "job", job_id) == ENMS_OK &&
        hash_object(r, key, live_numeric, &live, err, sizeof err) == ENMS_OK && live)
        add_age(live, "heartbeat", "heartbeat_age_s");
    if (r && strcmp(st->valuestring, "running") == 0 && cJSON_IsString(wid) &&
        queue_key(key, sizeof key, prefix, "worker", wid->valuestring) == ENMS_OK &&
        hash_object(r, key, worker_numeric, &worker, err, sizeof err) == ENMS_OK) {
        if (!worker) {
            worker = cJSON_CreateObject();
            cJSON_AddStringToObject(worker, "state", "lost");
        } else {
            add_age(worker, "last_beat", "heartbeat_age_s");
        }
        cJSON_AddStringToObject(worker, "id", wid->valuestring);
    }
    cJSON_AddItemToObject(job, "live", live ? live : cJSON_CreateNull());
    cJSON_AddItemToObject(job, "worker", worker ? worker : cJSON_CreateNull());
}

static int job_detail(struct mg_connection *conn, const char *job_id)
{
    char err[512];
    cJSON *job = NULL;
    int status;
    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg)
        return http_reply_error(conn, 503, "postgresql unavailable: %s", err);
    int rc = jobs_query_detail(pg, job_id, &job, err, sizeof err);
    if (rc == ENMS_ENOTFOUND)
        return http_reply_error(conn, 404, "job %s not found", job_id);
    if (rc != ENMS_OK)
        return http_reply_db_error(conn, pg, err);
    add_live_state(conn, job, job_id);
    status = http_reply_item(conn, 200, job);
    cJSON_Delete(job);
    return status;
}

/* Tells Redis that job_id was cancelled out of prev_status. Best effort:
 * PostgreSQL already holds the outcome. */
static void announce_cancel(struct mg_connection *conn, const char *job_id,
                            const struct job_brief *job, const char *prev_status)
{
    const struct api_server *srv = api_server_of(conn);
    const char *prefix = srv->cfg->redis_prefix;
    char err[256], key[QUEUE_KEY_MAX], updated[24];
    redisContext *r = api_redis(conn, err, sizeof err);
    if (!r) {
        log_event(LOG_WARN, job_id, "cancelled in PostgreSQL only: %s", err);
        return;
    }
    if (strcmp(prev_status, "pending") == 0) {
        /* Never run: out of the queue list (LREM of an absent id is a no-op,
         * and a worker that pops it anyway finds it no longer pending). */
        if (queue_key(key, sizeof key, prefix, "queue",
                      job->queue_name[0] ? job->queue_name : QUEUE_DEFAULT) == ENMS_OK) {
            redisReply *reply = redisCommand(r, "LREM %s 0 %s", key, job_id);
            if (!reply || reply->type == REDIS_REPLY_ERROR)
                log_event(LOG_WARN, job_id, "not removed from %s: %s", key,
                          reply ? reply->str : r->errstr);
            if (reply)
                freeReplyObject(reply);
        }
    } else if (cancel_flag_set(r, prefix, job_id, err, sizeof err) != ENMS_OK) {
        log_event(LOG_WARN, job_id, "cancel flag not set: %s", err);
    }
    snprintf(updated, sizeof updated, "%lld", (long long)time(NULL));
    const char *fields[] = {"status", "stage", "updated"};
    const char *values[] = {"cancelled", "cancelled", updated};
    if (job_live_set(r, prefix, job_id, 3, fields, values, srv->cfg->job_done_ttl_s, err,
                     sizeof err) != ENMS_OK)
        log_event(LOG_WARN, job_id, "live state not updated: %s", err);
    struct job_event ev = {.event = "training.cancelled",
                           .job_id = job_id,
                           .status = "cancelled",
                           .stage = "cancelled",
                           .model_type = job->model_type,
                           .machine_id = job->machine_id,
                           .attempt = job->attempts,
                           .worker_id = job->worker_id,
                           .error_message = "cancelled by request"};
    if (job_event_publish(r, prefix, &ev, err, sizeof err) != ENMS_OK)
        log_event(LOG_WARN, job_id, "cancel event not published: %s", err);
}

static int job_cancel(struct mg_connection *conn, const char *job_id)
{
    char err[512];
    char prev[JOBS_STATUS_SIZE] = "";
    struct job_brief job;
    cJSON *obj = NULL;
    int status;
    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg)
        return http_reply_error(conn, 503, "postgresql unavailable: %s", err);
    int rc = jobs_query_brief(pg, job_id, &job, err, sizeof err);
    if (rc == ENMS_OK)
        rc = jobs_cancel(pg, job_id, prev, err, sizeof err);
    if (rc == ENMS_ENOTFOUND)
        return http_reply_error(conn, 404, "job %s not found", job_id);
    if (rc == ENMS_ECONFLICT)
        return http_reply_error(conn, 409, "job already %s", prev[0] ? prev : job.status);
    if (rc != ENMS_OK)
        return http_reply_db_error(conn, pg, err);
    log_event(LOG_INFO, job_id, "cancelled (was %s)", prev);
    announce_cancel(conn, job_id, &job, prev);

    obj = cJSON_CreateObject();
    if (!obj)
        return http_reply_error(conn, 500, "out of memory");
    cJSON_AddStringToObject(obj, "job_id", job_id);
    cJSON_AddStringToObject(obj, "status", "cancelled");
    cJSON_AddStringToObject(obj, "previous_status", prev);
    status = http_reply_item(conn, 200, obj);
    cJSON_Delete(obj);
    return status;
}

/* failed -> pending (job_ops.h), as `enmsctl requeue` does. */
static int job_requeue_reply(struct mg_connection *conn, const char *job_id)
{
    const struct api_server *srv = api_server_of(conn);
    char err[512];
    struct job_facts facts;
    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg)
        return http_reply_error(conn, 503, "postgresql unavailable: %s", err);
    redisContext *r = api_redis(conn, err, sizeof err);
    if (!r)
        return http_reply_error(conn, 503, "redis unavailable: %s", err);
    int rc = job_requeue(pg, r, srv->cfg->redis_prefix, job_id, "requeued from the API", &facts,
                         err, sizeof err);
    if (rc == ENMS_ENOTFOUND)
        return http_reply_error(conn, 404, "job %s not found", job_id);
    if (rc == ENMS_ECONFLICT)
        return http_reply_error(conn, 409, "%s", err);
    if (rc == ENMS_EREDIS)
        log_event(LOG_WARN, job_id, "requeued in PostgreSQL only: %s", err);
    else if (rc != ENMS_OK)
        return http_reply_db_error(conn, pg, err);
    log_event(LOG_INFO, job_id, "requeued from the API");
    cJSON *obj = cJSON_CreateObject();
    if (!obj)
        return http_reply_error(conn, 500, "out of memory");
    cJSON_AddStringToObject(obj, "job_id", job_id);
    cJSON_AddStringToObject(obj, "status", "pending");
    cJSON_AddStringToObject(obj, "previous_status", "failed");
    cJSON_AddStringToObject(obj, "queue", facts.queue_name);
    int status = http_reply_item(conn, 202, obj);
    cJSON_Delete(obj);
    return status;
}

/* /api/v1/jobs/{id}, /api/v1/jobs/{id}/cancel and /api/v1/jobs/{id}/requeue. */
int route_jobs_item(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    static const char base[] = "/api/v1/jobs/";
    char job_id[37];
    int action = 0;
    int status = http_item_path(conn, base, "cancel|requeue", "job_id", job_id, &action);

    if (status != 0)
        return status;
    if (action) {
        if (!http_method_is(conn, "POST"))
            return http_reply_error(conn, 405, "use POST");
        return action == 1 ? job_cancel(conn, job_id) : job_requeue_reply(conn, job_id);
    }
    if (!http_method_is(conn, "GET"))
        return http_reply_error(conn, 405, "use GET");
    return job_detail(conn, job_id);
}

/* The request reader (routes.h): the list's fields, then its cursor, as
 * route_jobs_list reads them. */
int route_jobs_list_read(const char *qs, size_t qslen, const char *body, size_t bodylen, char *err,
                         size_t errlen)
{
    struct params p;
    long long cursor_us;
    char cursor_id[37];
    (void)body; /* a GET: the handler reads no body */
    (void)bodylen;
    params_init(&p, LIST_FIELDS, sizeof LIST_FIELDS / sizeof LIST_FIELDS[0], NULL);
    int status = params_read(&p, qs, qslen, NULL, 0, err, errlen) == ENMS_OK ? 0 : 400;
    const char *cursor = params_text(&p, "cursor", NULL);
    if (status == 0 && cursor &&
        jobs_cursor_decode(cursor, strlen(cursor), &cursor_us, cursor_id) != ENMS_OK) {
        snprintf(err, errlen, "cursor: malformed (pass next_cursor of the previous page)");
        status = 400;
    }
    params_free(&p);
    return status;
}
