/* routes_queue.c - GET /api/v1/queue: what Redis holds right now: depth of
 * each queue list, every registered worker with its heartbeat age and the
 * jobs it holds, the dead-letter size and the total in processing lists;
 * GET /api/v1/queue/dead: the dead-letter entries with their jobs.
 *
 * Read-only: a worker whose hash expired is reported as "lost" but left in
 * the workers set; cleaning up is housekeeping's job, not a GET's. */
#include "http.h"
#include "routes.h"
#include "server.h"
#include "../common/error.h"
#include "../common/pg.h"
#include "../common/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Runs one command; on failure fills err and returns NULL (an error reply
 * is freed). The caller frees the reply with freeReplyObject. */
static redisReply *command(redisContext *r, int expect_type, char *err, size_t errlen,
                           const char *fmt, const char *arg)
{
    redisReply *reply = redisCommand(r, fmt, arg);
    if (reply && reply->type == expect_type)
        return reply;
    enms_fail(err, errlen, ENMS_EREDIS, "%s",
              reply && reply->type == REDIS_REPLY_ERROR ? reply->str : r->errstr);
    if (reply)
        freeReplyObject(reply);
    return NULL;
}

static int list_length(redisContext *r, const char *key, long long *out, char *err, size_t errlen)
{
    redisReply *reply = command(r, REDIS_REPLY_INTEGER, err, errlen, "LLEN %s", key);
    if (!reply)
        return ENMS_EREDIS;
    *out = reply->integer;
    freeReplyObject(reply);
    return ENMS_OK;
}

/* Escapes SCAN MATCH's glob characters in a literal prefix. */
static void glob_escape(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (; *in && o + 2 < outlen; in++) {
        if (strchr("*?[]\\", *in))
            out[o++] = '\\';
        out[o++] = *in;
    }
    out[o] = '\0';
}

/* Calls visit(key) for each key matching "<prefix>:<kind>:*". */
static int scan_keys(redisContext *r, const char *prefix, const char *kind,
                     int (*visit)(redisContext *, const char *, size_t, void *), void *ctx,
                     char *err, size_t errlen)
{
    char escaped[QUEUE_KEY_MAX], pattern[QUEUE_KEY_MAX * 2 + 16];
    char cursor[32] = "0";
    glob_escape(prefix, escaped, sizeof escaped);
    snprintf(pattern, sizeof pattern, "%s:%s:*", escaped, kind);
    do {
        redisReply *reply = redisCommand(r, "SCAN %s MATCH %s COUNT 500", cursor, pattern);
        if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            reply->element[0]->type != REDIS_REPLY_STRING ||
            reply->element[1]->type != REDIS_REPLY_ARRAY) {
            int rc = enms_fail(err, errlen, ENMS_EREDIS, "SCAN: %s",
                               reply && reply->type == REDIS_REPLY_ERROR ? reply->str : r->errstr);
            if (reply)
                freeReplyObject(reply);
            return rc;
        }
        snprintf(cursor, sizeof cursor, "%s", reply->element[0]->str);
        size_t skip = strlen(prefix) + strlen(kind) + 2;
        for (size_t i = 0; i < reply->element[1]->elements; i++) {
            const redisReply *k = reply->element[1]->element[i];
            if (k->type != REDIS_REPLY_STRING || k->len < skip)
                continue;
            int rc = visit(r, k->str, skip, ctx);
            if (rc != ENMS_OK) {
                freeReplyObject(reply);
                return enms_fail(err, errlen, rc, "LLEN %s: %s", k->str, r->errstr);
            }
        }
        freeReplyObject(reply);
    } while (strcmp(cursor, "0") != 0);
    return ENMS_OK;
}

static int visit_queue(redisContext *r, const char *key, size_t skip, void *ctx)
{
    cJSON *queues = ctx;
    const char *name = key + skip;
    long long depth = 0;
    char err[64];
    /* "default" was added first, whether its list exists or not. */
    if (strcmp(name, QUEUE_DEFAULT) == 0)
        return ENMS_OK;
    if (list_length(r, key, &depth, err, sizeof err) != ENMS_OK)
        return ENMS_EREDIS;
    cJSON *q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "name", name);
    cJSON_AddNumberToObject(q, "depth", (double)depth);
    cJSON_AddItemToArray(queues, q);
    return ENMS_OK;
}

static int visit_processing(redisContext *r, const char *key, size_t skip, void *ctx)
{
    (void)skip;
    long long *total = ctx, n = 0;
    char err[64];
    if (list_length(r, key, &n, err, sizeof err) != ENMS_OK)
        return ENMS_EREDIS;
    *total += n;
    return ENMS_OK;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One entry of "workers": from its hash, or state "lost" once it expired. */
static int describe_worker(redisContext *r, const char *prefix, const char *id, cJSON **out,
                           char *err, size_t errlen)
{
    char key[QUEUE_KEY_MAX];
    long long in_flight = 0;
    redisReply *h = NULL;
    cJSON *w = cJSON_CreateObject();
    int rc = ENMS_OK;
    if (!w)
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
    cJSON_AddStringToObject(w, "id", id);
    if (queue_key(key, sizeof key, prefix, "worker", id) != ENMS_OK) {
        rc = enms_fail(err, errlen, ENMS_ETOOBIG, "worker id too long");
        goto fail;
    }
    h = command(r, REDIS_REPLY_ARRAY, err, errlen, "HGETALL %s", key);
    if (!h) {
        rc = ENMS_EREDIS;
        goto fail;
    }
    const char *host = NULL, *pid = NULL, *state = NULL, *job = NULL, *beat = NULL;
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const char *k = h->element[i]->str, *v = h->element[i + 1]->str;
        if (!k || !v)
            continue;
        if (strcmp(k, "host") == 0)
            host = v;
        else if (strcmp(k, "pid") == 0)
            pid = v;
        else if (strcmp(k, "state") == 0)
            state = v;
        else if (strcmp(k, "job") == 0)
            job = v;
        else if (strcmp(k, "last_beat") == 0)
            beat = v;
    }
    if (host)
        cJSON_AddStringToObject(w, "host", host);
    else
        cJSON_AddNullToObject(w, "host");
    if (pid)
        cJSON_AddNumberToObject(w, "pid", atof(pid));
    else
        cJSON_AddNullToObject(w, "pid");
    cJSON_AddStringToObject(w, "state", h->elements == 0 ? "lost" : state ? state : "unknown");
    if (job && *job)
        cJSON_AddStringToObject(w, "job", job);
    else
        cJSON_AddNullToObject(w, "job");
    if (beat)
        cJSON_AddNumberToObject(w, "heartbeat_age_s", (double)time(NULL) - atof(beat));
    else
        cJSON_AddNullToObject(w, "heartbeat_age_s");
    if (queue_key(key, sizeof key, prefix, "processing", id) != ENMS_OK ||
        list_length(r, key, &in_flight, err, errlen) != ENMS_OK) {
        rc = ENMS_EREDIS;
        goto fail;
    }
    cJSON_AddNumberToObject(w, "in_flight", (double)in_flight);
    freeReplyObject(h);
    *out = w;
    return ENMS_OK;
fail:
    if (h)
        freeReplyObject(h);
    cJSON_Delete(w);
    return rc;
}

static int build_status(redisContext *r, const char *prefix, cJSON *obj, char *err, size_t errlen)
{
    char key[QUEUE_KEY_MAX];
    long long n = 0, processing = 0;
    redisReply *members = NULL;
    const char **ids = NULL;
    int rc = ENMS_OK;

    cJSON *queues = cJSON_AddArrayToObject(obj, "queues");
    cJSON *workers = cJSON_AddArrayToObject(obj, "workers");
    if (!queues || !workers)
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
    if (queue_key(key, sizeof key, prefix, "queue", QUEUE_DEFAULT) != ENMS_OK ||
        list_length(r, key, &n, err, errlen) != ENMS_OK)
        return ENMS_EREDIS;
    cJSON *q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "name", QUEUE_DEFAULT);
    cJSON_AddNumberToObject(q, "depth", (double)n);
    cJSON_AddItemToArray(queues, q);
    rc = scan_keys(r, prefix, "queue", visit_queue, queues, err, errlen);
    if (rc != ENMS_OK)
        return rc;

    if (queue_key(key, sizeof key, prefix, "workers", NULL) != ENMS_OK)
        return enms_fail(err, errlen, ENMS_ETOOBIG, "prefix too long");
    members = command(r, REDIS_REPLY_ARRAY, err, errlen, "SMEMBERS %s", key);
    if (!members)
        return ENMS_EREDIS;
    /* Sorted, so that the page does not reshuffle on every refresh. */
    ids = calloc(members->elements + 1, sizeof *ids);
    if (!ids) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    size_t count = 0;
    for (size_t i = 0; i < members->elements; i++) {
        if (members->element[i]->type == REDIS_REPLY_STRING)
            ids[count++] = members->element[i]->str;
    }
    qsort(ids, count, sizeof *ids, compare_names);
    for (size_t i = 0; i < count; i++) {
        cJSON *w = NULL;
        rc = describe_worker(r, prefix, ids[i], &w, err, errlen);
        if (rc != ENMS_OK)
            goto done;
        cJSON_AddItemToArray(workers, w);
    }

    if (queue_key(key, sizeof key, prefix, "dead", NULL) != ENMS_OK ||
        list_length(r, key, &n, err, errlen) != ENMS_OK) {
        rc = ENMS_EREDIS;
        goto done;
    }
    cJSON_AddNumberToObject(obj, "dead_letter", (double)n);
    rc = scan_keys(r, prefix, "processing", visit_processing, &processing, err, errlen);
    if (rc != ENMS_OK)
        goto done;
    cJSON_AddNumberToObject(obj, "processing_total", (double)processing);
done:
    free(ids);
    freeReplyObject(members);
    return rc;
}

int route_queue(struct mg_connection *conn, void *cbdata)
{
    const struct api_server *srv = cbdata;
    char err[512];
    int status;
    if (!http_method_is(conn, "GET"))
        return http_reply_error(conn, 405, "use GET");
    redisContext *r = api_redis(conn, err, sizeof err);
    if (!r)
        return http_reply_error(conn, 503, "redis unavailable: %s", err);
    cJSON *obj = cJSON_CreateObject();
    if (!obj)
        return http_reply_error(conn, 500, "out of memory");
    if (build_status(r, srv->cfg->redis_prefix, obj, err, sizeof err) != ENMS_OK)
        status = r->err ? http_reply_error(conn, 503, "redis unavailable: %s", err)
                        : http_reply_error(conn, 500, "redis error: %s", err);
    else
        status = http_reply_item(conn, 200, obj);
    cJSON_Delete(obj);
    return status;
}

/* GET /api/v1/queue/dead: the dead-letter list, newest first (at most
 * DEAD_LIST_MAX entries), each joined with its job's row so an operator
 * sees why it died before requeueing it (POST /api/v1/jobs/{id}/requeue).
 * An entry whose job no longer exists is listed with "job": null. */
#define DEAD_LIST_MAX 200

int route_queue_dead(struct mg_connection *conn, void *cbdata)
{
    const struct api_server *srv = cbdata;
    char err[512], key[QUEUE_KEY_MAX];
    redisReply *list = NULL;
    PGresult *res = NULL;
    cJSON *obj = NULL;
    char *ids_text = NULL;
    int status;
    if (!http_method_is(conn, "GET"))
        return http_reply_error(conn, 405, "use GET");
    redisContext *r = api_redis(conn, err, sizeof err);
    if (!r)
        return http_reply_error(conn, 503, "redis unavailable: %s", err);
    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg)
        return http_reply_error(conn, 503, "postgresql unavailable: %s", err);
    if (queue_key(key, sizeof key, srv->cfg->redis_prefix, "dead", NULL) != ENMS_OK)
        return http_reply_error(conn, 500, "redis key too long");
    list = redisCommand(r, "LRANGE %s 0 %d", key, DEAD_LIST_MAX - 1);
    if (!list || list->type != REDIS_REPLY_ARRAY) {
        status = http_reply_error(conn, 503, "redis unavailable: %s",
                                  list && list->type == REDIS_REPLY_ERROR ? list->str : r->errstr);
        goto done;
    }
    /* The ids go to PostgreSQL as one uuid[] literal; entries that are not
     * uuids (never written by us) are skipped rather than trusted. */
    size_t cap = 3 + list->elements * (QUEUE_ID_LEN + 1), used = 0;
    if (!(ids_text = malloc(cap))) {
        status = http_reply_error(conn, 500, "out of memory");
        goto done;
    }
    ids_text[used++] = '{';
    for (size_t i = 0; i < list->elements; i++) {
        const redisReply *e = list->element[i];
        if (e->type != REDIS_REPLY_STRING || !queue_is_uuid(e->str, e->len))
            continue;
        if (used > 1)
            ids_text[used++] = ',';
        memcpy(ids_text + used, e->str, QUEUE_ID_LEN);
        used += QUEUE_ID_LEN;
    }
    ids_text[used++] = '}';
    ids_text[used] = '\0';
    const char *params[] = {ids_text};
    res = pg_exec(pg, PGRES_TUPLES_OK,
                  "SELECT COALESCE(json_agg(json_build_object('job_id', d.id, 'job', "
                  "CASE WHEN j.id IS NULL THEN NULL ELSE json_build_object("
                  "'model_type', j.model_type, 'machine_id', j.machine_id, 'machine_name', "
                  "m.name, 'training_status', j.training_status, 'attempts', j.attempts, "
                  "'error_message', j.error_message, 'worker_id', j.worker_id, "
                  "'created_at', j.created_at, 'training_end', j.training_end, "
                  "'trigger_type', j.trigger_type, 'job_kind', j.job_kind) END) "
                  "ORDER BY d.pos), '[]'::json)::text "
                  "FROM unnest($1::uuid[]) WITH ORDINALITY AS d(id, pos) "
                  "LEFT JOIN model_training_history j ON j.id = d.id "
                  "LEFT JOIN machines m ON m.id = j.machine_id",
                  1, params, err, sizeof err);
    if (!res) {
        status = http_reply_db_error(conn, pg, err);
        goto done;
    }
    obj = cJSON_CreateObject();
    cJSON *entries = cJSON_Parse(PQgetvalue(res, 0, 0));
    if (!obj || !entries) {
        cJSON_Delete(entries);
        status = http_reply_error(conn, 500, "out of memory");
        goto done;
    }
    cJSON_AddItemToObject(obj, "dead", entries);
    redisReply *len = redisCommand(r, "LLEN %s", key);
    cJSON_AddNumberToObject(obj, "total",
                            len && len->type == REDIS_REPLY_INTEGER ? (double)len->integer
                                                                    : (double)list->elements);
    if (len)
        freeReplyObject(len);
    status = http_reply_item(conn, 200, obj);
done:
    cJSON_Delete(obj);
    PQclear(res);
    free(ids_text);
    if (list)
        freeReplyObject(list);
    return status;
}
