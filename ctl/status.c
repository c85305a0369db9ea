/* status.c - `enmsctl status`: what the queue looks like right now. Queue
 * depths, the dead-letter list, every worker Redis knows of (registered or
 * still holding a processing list) with its heartbeat age, the housekeeping
 * lock holder, and PostgreSQL's job counts by status.
 *
 * It reads only. The state is gathered once into a JSON tree, which
 * `--json` prints as is and the default output renders as tables, so the two
 * can never disagree. */
#include "ctl.h"
#include "../common/error.h"
#include "../common/pg.h"
#include "../common/queue.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STATUS_MAX_KEYS    1000 /* queues and workers listed */
#define STATUS_SCAN_ROUNDS 1000

static void print_usage(FILE *out)
{
    fprintf(out, "usage: enmsctl status [--json]\n\n"
                 "Shows queue depths, the dead-letter list, workers (host, pid, state, current\n"
                 "job, heartbeat age, processing list size), the housekeeping lock holder and\n"
                 "job counts by status from PostgreSQL.\n\n"
                 "  --json   print one JSON object instead of tables\n");
}

static int redis_error(redisContext *ctx, const redisReply *r, const char *what, char *err,
                       size_t errlen)
{
    return enms_fail(err, errlen, ENMS_EREDIS, "redis: %s: %s", what,
                     r && r->type == REDIS_REPLY_ERROR ? r->str
                     : ctx->errstr[0]                  ? ctx->errstr
                                                       : "unexpected reply");
}

/* Adds each name to the JSON string array names unless it is there already. */
static int add_name(cJSON *names, const char *name, size_t len)
{
    char buf[256];
    if (len == 0 || len >= sizeof buf || cJSON_GetArraySize(names) >= STATUS_MAX_KEYS)
        return ENMS_OK;
    memcpy(buf, name, len);
    buf[len] = '\0';
    const cJSON *it;
    cJSON_ArrayForEach(it, names)
    {
        if (strcmp(it->valuestring, buf) == 0)
            return ENMS_OK;
    }
    return cJSON_AddItemToArray(names, cJSON_CreateString(buf)) ? ENMS_OK : ENMS_ENOMEM;
}

/* Appends to names the <name> part of every key <prefix>:<kind>:<name>. */
static int scan_names(redisContext *ctx, const char *prefix, const char *kind, cJSON *names,
                      char *err, size_t errlen)
{
    char lead[QUEUE_KEY_MAX], suffix[64], pattern[2 * QUEUE_KEY_MAX], cursor[32] = "0";
    int rc = ENMS_OK;
    snprintf(suffix, sizeof suffix, ":%s:*", kind);
    if (queue_key(lead, sizeof lead, prefix, kind, "") != ENMS_OK ||
        ctl_scan_pattern(pattern, sizeof pattern, prefix, suffix) != ENMS_OK)
        return enms_fail(err, errlen, ENMS_ETOOBIG, "redis prefix too long");
    size_t leadlen = strlen(lead);
    for (int round = 0; round < STATUS_SCAN_ROUNDS; round++) {
        redisReply *r = redisCommand(ctx, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
            rc = redis_error(ctx, r, "SCAN", err, errlen);
            if (r)
                freeReplyObject(r);
            return rc;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements && rc == ENMS_OK; i++) {
            const redisReply *k = r->element[1]->element[i];
            if (k->type == REDIS_REPLY_STRING && k->len > leadlen &&
                memcmp(k->str, lead, leadlen) == 0)
                rc = add_name(names, k->str + leadlen, k->len - leadlen);
        }
        freeReplyObject(r);
        if (rc != ENMS_OK)
            return enms_fail(err, errlen, rc, "out of memory");
        if (strcmp(cursor, "0") == 0)
            break;
    }
    return ENMS_OK;
}

static int list_length(redisContext *ctx, const char *prefix, const char *kind, const char *name,
                       long long *out, char *err, size_t errlen)
{
    char key[QUEUE_KEY_MAX];
    if (queue_key(key, sizeof key, prefix, kind, name) != ENMS_OK)
        return enms_fail(err, errlen, ENMS_ETOOBIG, "redis key too long");
    return queue_length(ctx, key, out, err, errlen);
}

static int gather_queues(redisContext *ctx, const char *prefix, cJSON *root, char *err,
                         size_t errlen)
{
    cJSON *names = cJSON_CreateArray();
    cJSON *queues = cJSON_AddArrayToObject(root, "queues");
    int rc = ENMS_OK;
    if (!names || !queues) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = add_name(names, QUEUE_DEFAULT, strlen(QUEUE_DEFAULT))) != ENMS_OK ||
        (rc = scan_names(ctx, prefix, "queue", names, err, errlen)) != ENMS_OK)
        goto done;
    const cJSON *it;
    cJSON_ArrayForEach(it, names)
    {
        long long depth = 0;
        if ((rc = list_length(ctx, prefix, "queue", it->valuestring, &depth, err, errlen)) !=
            ENMS_OK)
            goto done;
        cJSON *q = cJSON_CreateObject();
        if (!q || !cJSON_AddItemToArray(queues, q) ||
            !cJSON_AddStringToObject(q, "name", it->valuestring) ||
            !cJSON_AddNumberToObject(q, "depth", (double)depth)) {
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
            goto done;
        }
    }
    long long dead = 0;
    if ((rc = list_length(ctx, prefix, "dead", NULL, &dead, err, errlen)) != ENMS_OK)
        goto done;
    if (!cJSON_AddNumberToObject(root, "dead_letter", (double)dead))
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
done:
    cJSON_Delete(names);
    return rc;
}

/* Copies field of a HGETALL reply into the worker object (null when
 * absent); numeric fields (pid) become numbers. */
static int hash_field(const redisReply *h, const char *field, int numeric, cJSON *obj,
                      const char *as)
{
    for (size_t i = 0; h && h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2) {
        const redisReply *f = h->element[i], *v = h->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            strcmp(f->str, field) != 0)
            continue;
        if (numeric)
            return cJSON_AddNumberToObject(obj, as, strtod(v->str, NULL)) ? ENMS_OK : ENMS_ENOMEM;
        if (v->len == 0)
            break;
        return cJSON_AddStringToObject(obj, as, v->str) ? ENMS_OK : ENMS_ENOMEM;
    }
    return cJSON_AddNullToObject(obj, as) ? ENMS_OK : ENMS_ENOMEM;
}

static int gather_workers(redisContext *ctx, const char *prefix, cJSON *root, char *err,
                          size_t errlen)
{
    char key[QUEUE_KEY_MAX];
    cJSON *names = cJSON_CreateArray();
    cJSON *workers = cJSON_AddArrayToObject(root, "workers");
    redisReply *r = NULL;
    int rc = ENMS_OK;
    if (!names || !workers) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    if (queue_key(key, sizeof key, prefix, "workers", NULL) != ENMS_OK) {
        rc = enms_fail(err, errlen, ENMS_ETOOBIG, "redis key too long");
        goto done;
    }
    r = redisCommand(ctx, "SMEMBERS %s", key);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        rc = redis_error(ctx, r, "SMEMBERS", err, errlen);
        goto done;
    }
    for (size_t i = 0; i < r->elements && rc == ENMS_OK; i++) {
        if (r->element[i]->type == REDIS_REPLY_STRING)
            rc = add_name(names, r->element[i]->str, r->element[i]->len);
    }
    freeReplyObject(r);
    r = NULL;
    if (rc != ENMS_OK) {
        rc = enms_fail(err, errlen, rc, "out of memory");
        goto done;
    }
    /* A worker that left the set may still hold jobs: show it too. */
    if ((rc = scan_names(ctx, prefix, "processing", names, err, errlen)) != ENMS_OK)
        goto done;

    time_t now = time(NULL);
    const cJSON *it;
    cJSON_ArrayForEach(it, names)
    {
        const char *wid = it->valuestring;
        long long held = 0;
        if (queue_key(key, sizeof key, prefix, "worker", wid) != ENMS_OK) {
            rc = enms_fail(err, errlen, ENMS_ETOOBIG, "redis key too long");
            goto done;
        }
        r = redisCommand(ctx, "HGETALL %s", key);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            rc = redis_error(ctx, r, "HGETALL", err, errlen);
            goto done;
        }
        if ((rc = list_length(ctx, prefix, "processing", wid, &held, err, errlen)) != ENMS_OK)
            goto done;
        cJSON *w = cJSON_CreateObject();
        int alive = r->elements > 0;
        double age = -1;
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            if (r->element[i]->type == REDIS_REPLY_STRING &&
                r->element[i + 1]->type == REDIS_REPLY_STRING &&
                strcmp(r->element[i]->str, "last_beat") == 0)
                age = difftime(now, (time_t)strtoll(r->element[i + 1]->str, NULL, 10));
        }
        if (!w || !cJSON_AddItemToArray(workers, w) || !cJSON_AddStringToObject(w, "id", wid) ||
            !cJSON_AddBoolToObject(w, "alive", alive) ||
            hash_field(r, "host", 0, w, "host") != ENMS_OK ||
            hash_field(r, "pid", 1, w, "pid") != ENMS_OK ||
            hash_field(r, "job", 0, w, "job") != ENMS_OK ||
            (alive ? hash_field(r, "state", 0, w, "state")
                   : (cJSON_AddStringToObject(w, "state", "gone") ? ENMS_OK : ENMS_ENOMEM)) !=
                ENMS_OK ||
            !(age >= 0 ? cJSON_AddNumberToObject(w, "heartbeat_age_s", age)
                       : cJSON_AddNullToObject(w, "heartbeat_age_s")) ||
            !cJSON_AddNumberToObject(w, "processing", (double)held)) {
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
            goto done;
        }
        freeReplyObject(r);
        r = NULL;
    }
    if (queue_key(key, sizeof key, prefix, "lock", "housekeeping") != ENMS_OK) {
        rc = enms_fail(err, errlen, ENMS_ETOOBIG, "redis key too long");
        goto done;
    }
    r = redisCommand(ctx, "GET %s", key);
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)) {
        rc = redis_error(ctx, r, "GET", err, errlen);
        goto done;
    }
    if (!(r->type == REDIS_REPLY_STRING ? cJSON_AddStringToObject(root, "housekeeping_lock", r->str)
                                        : cJSON_AddNullToObject(root, "housekeeping_lock")))
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
done:
    if (r)
        freeReplyObject(r);
    cJSON_Delete(names);
    return rc;
}

static int gather_jobs(PGconn *pg, cJSON *root, char *err, size_t errlen)
{
    static const char *const statuses[] = {"pending", "running", "completed", "failed",
                                           "cancelled"};
    cJSON *jobs = cJSON_AddObjectToObject(root, "jobs");
    if (!jobs)
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
    PGresult *res = pg_exec(pg, PGRES_TUPLES_OK,
                            "SELECT training_status, count(*) FROM model_training_history "
                            "GROUP BY training_status",
                            0, NULL, err, errlen);
    if (!res)
        return ENMS_EDB;
    int rc = ENMS_OK;
    for (size_t s = 0; s < sizeof statuses / sizeof statuses[0]; s++) {
        double count = 0;
        for (int i = 0; i < PQntuples(res); i++) {
            if (strcmp(PQgetvalue(res, i, 0), statuses[s]) == 0)
                count = strtod(PQgetvalue(res, i, 1), NULL);
        }
        if (!cJSON_AddNumberToObject(jobs, statuses[s], count))
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
    }
    PQclear(res);
    return rc;
}

static const char *str_or(const cJSON *obj, const char *name, const char *fallback)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : fallback;
}

static double num_or(const cJSON *obj, const char *name, double fallback)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNumber(v) ? v->valuedouble : fallback;
}

static void print_tables(const cJSON *root, const char *prefix)
{
    char c1[41], c2[33], c3[13], c4[37];
    const cJSON *it;
    ctl_cell(c1, sizeof c1, prefix);
    printf("redis prefix: %s\n\n%-40s %5s\n", c1, "QUEUE", "DEPTH");
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(root, "queues"))
    {
        ctl_cell(c1, sizeof c1, str_or(it, "name", ""));
        printf("%-40s %5.0f\n", c1, num_or(it, "depth", 0));
    }
    printf("%-40s %5.0f\n\n", "dead-letter", num_or(root, "dead_letter", 0));

    printf("%-40s %-32s %-8s %-12s %-36s %9s %10s\n", "WORKER", "HOST", "PID", "STATE", "JOB",
           "BEAT AGE", "PROCESSING");
    const cJSON *workers = cJSON_GetObjectItemCaseSensitive(root, "workers");
    if (cJSON_GetArraySize(workers) == 0)
        printf("(no workers)\n");
    cJSON_ArrayForEach(it, workers)
    {
        char pid[24] = "-", age[24] = "-";
        if (num_or(it, "pid", -1) >= 0)
            snprintf(pid, sizeof pid, "%.0f", num_or(it, "pid", 0));
        if (num_or(it, "heartbeat_age_s", -1) >= 0)
            snprintf(age, sizeof age, "%.0f s", num_or(it, "heartbeat_age_s", 0));
        ctl_cell(c1, sizeof c1, str_or(it, "id", ""));
        ctl_cell(c2, sizeof c2, str_or(it, "host", "-"));
        ctl_cell(c3, sizeof c3, str_or(it, "state", "-"));
        ctl_cell(c4, sizeof c4, str_or(it, "job", "-"));
        printf("%-40s %-32s %-8s %-12s %-36s %9s %10.0f\n", c1, c2, pid, c3, c4, age,
               num_or(it, "processing", 0));
    }
    ctl_cell(c1, sizeof c1, str_or(root, "housekeeping_lock", "(free)"));
    printf("\nhousekeeping lock: %s\n\n", c1);

    printf("JOBS (PostgreSQL)\n");
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(root, "jobs"))
    {
        printf("%-40s %5.0f\n", it->string, it->valuedouble);
    }
}

int ctl_status(const struct enms_config *cfg, int argc, char **argv)
{
    struct ctl_conn conn = {0};
    cJSON *root = NULL;
    char err[512];
    char *text = NULL;
    int json = 0, rc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_usage(stdout);
            return ENMS_OK;
        } else {
            fprintf(stderr, "enmsctl status: unknown option \"%s\"\n", argv[i]);
            print_usage(stderr);
            return ENMS_EINVAL;
        }
    }
    if ((rc = ctl_connect(cfg, 1, 1, "enmsctl-status", &conn, err, sizeof err)) != ENMS_OK)
        goto done;
    root = cJSON_CreateObject();
    if (!root || !cJSON_AddStringToObject(root, "prefix", cfg->redis_prefix)) {
        rc = enms_fail(err, sizeof err, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = gather_queues(conn.redis, cfg->redis_prefix, root, err, sizeof err)) != ENMS_OK ||
        (rc = gather_workers(conn.redis, cfg->redis_prefix, root, err, sizeof err)) != ENMS_OK ||
        (rc = gather_jobs(conn.pg, root, err, sizeof err)) != ENMS_OK)
        goto done;
    if (json) {
        text = cJSON_PrintUnformatted(root);
        if (!text) {
            rc = enms_fail(err, sizeof err, ENMS_ENOMEM, "out of memory");
            goto done;
        }
        printf("%s\n", text);
    } else {
        print_tables(root, cfg->redis_prefix);
    }
done:
    if (rc != ENMS_OK)
        fprintf(stderr, "enmsctl status: %s\n", err);
    cJSON_free(text);
    cJSON_Delete(root);
    ctl_disconnect(&conn);
    return rc;
}
