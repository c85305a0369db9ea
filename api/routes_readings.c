/* routes_readings.c - POST /api/v1/readings: batch ingest of hourly energy
 * readings as JSON, validated by the same rules as `enmsctl import`
 * (common/reading_check.h), all or nothing, idempotent on (machine_id, ts);
 * then one anomaly score job per changed machine that has an active anomaly
 * model.
 *
 * The whole batch is checked before the database is asked anything; the
 * rows then travel as seven bound arrays into one INSERT ... SELECT FROM
 * unnest(...) ON CONFLICT statement, which is atomic by itself and answers
 * the counts, so a batch costs one round trip. It does not score anything
 * (the worker's score jobs do) nor read readings back. */
#include "http.h"
#include "routes.h"
#include "server.h"
#include "../common/error.h"
#include "../common/events.h"
#include "../common/jobs.h"
#include "../common/job_ops.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/pg.h"
#include "../common/queue.h"
#include "../common/reading_check.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Most readings one request may carry (docs/readings-anomalies-alerts.md):
 * about 200 days of one machine, or a day of 200 machines. */
#define READINGS_BATCH_MAX 5000
/* Body cap for this endpoint, whatever ENMS_HTTP_MAX_BODY says when it is
 * smaller: a full batch pretty-printed is about 1.2 MB. */
#define READINGS_BODY_MAX (4u << 20)
/* Longest field name quoted back in an "unknown field" message. */
#define NAME_SHOWN_MAX 40

#define SQLSTATE_FK_VIOLATION "23503"

/* How an optional column was given: absent keeps the stored value when the
 * row exists, null stores NULL. */
enum opt_state { OPT_ABSENT, OPT_NULL, OPT_VALUE };

struct row {
    char machine_id[37];
    int64_t ts; /* seconds since the epoch, UTC */
    double energy_kwh;
    double production_count;
    double outdoor_temp_c;
    unsigned char production; /* enum opt_state */
    unsigned char temp;       /* enum opt_state */
};

/* A growing text buffer; oom stays set once an allocation failed. */
struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
};

static void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    if (b->oom)
        return;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap - b->len <= (size_t)n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* Copies a client's field name for a message: printable ASCII only, cut at
 * NAME_SHOWN_MAX, so the reply stays valid JSON and short. */
static void show_name(char *out, size_t outlen, const char *name)
{
    size_t w = 0, i = 0;
    for (; i < NAME_SHOWN_MAX && name[i] && w + 4 < outlen; i++) {
        unsigned char c = (unsigned char)name[i];
        out[w++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    if (name[i] && w + 4 < outlen) {
        memcpy(out + w, "...", 3);
        w += 3;
    }
    out[w] = '\0';
}

/* Reads an optional number member into *v and *state. */
static int opt_number(const cJSON *m, size_t idx, enum reading_value which, double *v,
                      unsigned char *state, char *err, size_t errlen)
{
    if (cJSON_IsNull(m)) {
        *state = OPT_NULL;
        return ENMS_OK;
    }
    if (!cJSON_IsNumber(m))
        return enms_fail(err, errlen, ENMS_EINVAL, "readings[%zu].%s: must be a number or null",
                         idx, m->string);
    const char *why = reading_check_value(which, m->valuedouble);
    if (why)
        return enms_fail(err, errlen, ENMS_EINVAL, "readings[%zu].%s: %g %s", idx, m->string,
                         m->valuedouble, why);
    *v = m->valuedouble == 0.0 ? 0.0 : m->valuedouble; /* -0 is stored as 0 */
    *state = OPT_VALUE;
    return ENMS_OK;
}

/* Checks readings[idx] and fills *out. 0 or ENMS_EINVAL with
 * "readings[i].field: problem" in err. */
static int parse_row(const cJSON *item, size_t idx, struct row *out, char *err, size_t errlen)
{
    static const char *const names[] = {"machine_id", "ts", "energy_kwh", "production_count",
                                        "outdoor_temp_c"};
    const cJSON *seen[5] = {NULL, NULL, NULL, NULL, NULL};
    char why[160], shown[NAME_SHOWN_MAX + 8];

    if (!cJSON_IsObject(item))
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "readings[%zu]: must be an object with machine_id, ts and energy_kwh",
                         idx);
    for (const cJSON *m = item->child; m; m = m->next) {
        size_t k = 0;
        while (k < 5 && strcmp(m->string, names[k]) != 0)
            k++;
        if (k == 5) {
            show_name(shown, sizeof shown, m->string);
            return enms_fail(err, errlen, ENMS_EINVAL,
                             "readings[%zu].%s: unknown field (known: machine_id, ts, energy_kwh, "
                             "production_count, outdoor_temp_c)",
                             idx, shown);
        }
        if (seen[k])
            return enms_fail(err, errlen, ENMS_EINVAL, "readings[%zu].%s: given twice", idx,
                             names[k]);
        seen[k] = m;
    }
    for (size_t k = 0; k < 3; k++)
        if (!seen[k] || cJSON_IsNull(seen[k]))
            return enms_fail(err, errlen, ENMS_EINVAL, "readings[%zu].%s: required", idx, names[k]);

    if (!cJSON_IsString(seen[0]))
        return enms_fail(err, errlen, ENMS_EINVAL, "readings[%zu].machine_id: must be a string",
                         idx);
    const char *s = seen[0]->valuestring;
    if (reading_check_uuid(s, strlen(s), out->machine_id, why, sizeof why) != ENMS_OK)
        return enms_fail(err, errlen, ENMS_EINVAL, "readings[%zu].machine_id: %s", idx, why);

    if (!cJSON_IsString(seen[1]))
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "readings[%zu].ts: must be an ISO 8601 string such as "
                         "2024-03-01T05:00:00Z",
                         idx);
    s = seen[1]->valuestring;
    if (reading_check_ts(s, strlen(s), &out->ts, why, sizeof why) != ENMS_OK)
        return enms_fail(err, errlen, ENMS_EINVAL, "readings[%zu].ts: %s", idx, why);

    if (!cJSON_IsNumber(seen[2]))
        return enms_fail(err, errlen, ENMS_EINVAL, "readings[%zu].energy_kwh: must be a number",
                         idx);
    const char *bad = reading_check_value(READING_ENERGY_KWH, seen[2]->valuedouble);
    if (bad)
        return enms_fail(err, errlen, ENMS_EINVAL, "readings[%zu].energy_kwh: %g %s", idx,
                         seen[2]->valuedouble, bad);
    out->energy_kwh = seen[2]->valuedouble == 0.0 ? 0.0 : seen[2]->valuedouble;

    out->production = out->temp = OPT_ABSENT;
    out->production_count = out->outdoor_temp_c = 0.0;
    if (seen[3] && opt_number(seen[3], idx, READING_PRODUCTION_COUNT, &out->production_count,
                              &out->production, err, errlen) != ENMS_OK)
        return ENMS_EINVAL;
    if (seen[4] && opt_number(seen[4], idx, READING_OUTDOOR_TEMP_C, &out->outdoor_temp_c,
                              &out->temp, err, errlen) != ENMS_OK)
        return ENMS_EINVAL;
    return ENMS_OK;
}

/* A row's identity for the duplicate check, sorted by (machine_id, ts, idx). */
struct row_key {
    char machine_id[37];
    int64_t ts;
    size_t idx;
};

static int cmp_key(const void *a, const void *b)
{
    const struct row_key *x = a, *y = b;
    int c = strcmp(x->machine_id, y->machine_id);
    if (c)
        return c;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

/* Finds the first reading (by index) that repeats an earlier one's machine
 * and hour. Returns 0 when there is none, ENMS_EINVAL with the message, or
 * ENMS_ENOMEM. Hours are compared in UTC, as stored. */
static int find_duplicate(const struct row *rows, size_t n, char *err, size_t errlen)
{
    struct row_key *keys = malloc(n * sizeof *keys);
    size_t dup = SIZE_MAX, orig = 0;
    if (!keys)
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        memcpy(keys[i].machine_id, rows[i].machine_id, sizeof keys[i].machine_id);
        keys[i].ts = rows[i].ts;
        keys[i].idx = i;
    }
    qsort(keys, n, sizeof *keys, cmp_key);
    /* In a run of equal keys the first holds the smallest index. */
    for (size_t i = 1, first = 0; i < n; i++) {
        if (strcmp(keys[i].machine_id, keys[first].machine_id) != 0 ||
            keys[i].ts != keys[first].ts) {
            first = i;
            continue;
        }
        if (keys[i].idx < dup) {
            dup = keys[i].idx;
            orig = keys[first].idx;
        }
    }
    free(keys);
    if (dup == SIZE_MAX)
        return ENMS_OK;
    char ts[READING_CHECK_TS_TEXT];
    reading_check_format_ts(rows[dup].ts, ts);
    return enms_fail(err, errlen, ENMS_EINVAL,
                     "readings[%zu]: duplicate of readings[%zu] (machine %s already has a reading "
                     "at %s in this batch)",
                     dup, orig, rows[dup].machine_id, ts);
}

/* The seven arrays the upsert binds, as PostgreSQL array literals. */
struct batch_arrays {
    struct sbuf ids, ts, energy, production, temp, has_production, has_temp;
};

static void arrays_free(struct batch_arrays *a)
{
    free(a->ids.p);
    free(a->ts.p);
    free(a->energy.p);
    free(a->production.p);
    free(a->temp.p);
    free(a->has_production.p);
    free(a->has_temp.p);
}

/* Fills a from rows. 0 or ENMS_ENOMEM. Numbers are printed with 17
 * significant digits, which gives back the same double. */
static int arrays_build(const struct row *rows, size_t n, struct batch_arrays *a)
{
    struct sbuf *all[] = {
        &a->ids, &a->ts, &a->energy, &a->production, &a->temp, &a->has_production, &a->has_temp};
    for (size_t k = 0; k < 7; k++)
        sbuf_printf(all[k], "{");
    for (size_t i = 0; i < n; i++) {
        const struct row *r = &rows[i];
        const char *sep = i ? "," : "";
        sbuf_printf(&a->ids, "%s%s", sep, r->machine_id);
        sbuf_printf(&a->ts, "%s%lld", sep, (long long)r->ts);
        sbuf_printf(&a->energy, "%s%.17g", sep, r->energy_kwh);
        if (r->production == OPT_VALUE)
            sbuf_printf(&a->production, "%s%.17g", sep, r->production_count);
        else
            sbuf_printf(&a->production, "%sNULL", sep);
        if (r->temp == OPT_VALUE)
            sbuf_printf(&a->temp, "%s%.17g", sep, r->outdoor_temp_c);
        else
            sbuf_printf(&a->temp, "%sNULL", sep);
        sbuf_printf(&a->has_production, "%s%c", sep, r->production == OPT_ABSENT ? 'f' : 't');
        sbuf_printf(&a->has_temp, "%s%c", sep, r->temp == OPT_ABSENT ? 'f' : 't');
    }
    for (size_t k = 0; k < 7; k++) {
        sbuf_printf(all[k], "}");
        if (all[k]->oom)
            return ENMS_ENOMEM;
    }
    return ENMS_OK;
}

/* One statement: merge the batch into energy_readings and answer, as JSON
 * text, {inserted, updated, machines, score}: score lists the machines
 * whose readings changed and that have an active anomaly model.
 *
 * An omitted optional column keeps the stored value of an existing row (as
 * `enmsctl import --replace` does for a column the file lacks); null stores
 * NULL. A row whose values are all the same is not touched (the WHERE of DO
 * UPDATE), so re-sending a batch changes nothing and counts as unchanged.
 * xmax = 0 tells a freshly inserted row from an updated one. */
static const char UPSERT_SQL[] =
    "WITH input AS ("
    " SELECT t.machine_id, to_timestamp(t.epoch) AS ts, t.energy_kwh, t.production_count,"
    " t.outdoor_temp_c, t.has_production, t.has_temp"
    " FROM unnest($1::uuid[], $2::bigint[], $3::float8[], $4::float8[], $5::float8[],"
    " $6::bool[], $7::bool[]) AS t(machine_id, epoch, energy_kwh, production_count,"
    " outdoor_temp_c, has_production, has_temp)),"
    " up AS ("
    " INSERT INTO energy_readings AS r (machine_id, ts, energy_kwh, production_count,"
    " outdoor_temp_c)"
    " SELECT i.machine_id, i.ts, i.energy_kwh,"
    " CASE WHEN i.has_production THEN i.production_count ELSE e.production_count END,"
    " CASE WHEN i.has_temp THEN i.outdoor_temp_c ELSE e.outdoor_temp_c END"
    " FROM input i LEFT JOIN energy_readings e ON e.machine_id = i.machine_id AND e.ts = i.ts"
    " ON CONFLICT (machine_id, ts) DO UPDATE SET energy_kwh = EXCLUDED.energy_kwh,"
    " production_count = EXCLUDED.production_count, outdoor_temp_c = EXCLUDED.outdoor_temp_c"
    " WHERE (r.energy_kwh, r.production_count, r.outdoor_temp_c) IS DISTINCT FROM"
    " (EXCLUDED.energy_kwh, EXCLUDED.production_count, EXCLUDED.outdoor_temp_c)"
    " RETURNING r.machine_id, (r.xmax = 0) AS inserted)"
    " SELECT json_build_object("
    " 'inserted', (SELECT count(*) FROM up WHERE inserted),"
    " 'updated', (SELECT count(*) FROM up WHERE NOT inserted),"
    " 'machines', (SELECT COALESCE(json_agg(m ORDER BY m), '[]') FROM"
    " (SELECT DISTINCT machine_id::text AS m FROM input) s),"
    " 'score', (SELECT COALESCE(json_agg(m ORDER BY m), '[]') FROM"
    " (SELECT DISTINCT u.machine_id::text AS m FROM up u WHERE EXISTS (SELECT 1 FROM"
    " model_versions v WHERE v.machine_id = u.machine_id AND v.model_type = 'anomaly'"
    " AND v.is_active)) s))::text";

/* After a foreign key failure: names the first reading whose machine does
 * not exist. Replies 404 (or 503/500) and returns the status. */
static int reply_unknown_machine(struct mg_connection *conn, PGconn *pg, const char *ids)
{
    char err[512];
    const char *values[] = {ids};
    PGresult *res =
        pg_exec(pg, PGRES_TUPLES_OK,
                "SELECT t.i - 1, t.m::text, count(*) OVER (PARTITION BY t.m) FROM "
                "unnest($1::uuid[]) WITH ORDINALITY AS t(m, i) "
                "WHERE NOT EXISTS (SELECT 1 FROM machines WHERE id = t.m) ORDER BY t.i LIMIT 1",
                1, values, err, sizeof err);
    int status;
    if (!res)
        return http_reply_db_error(conn, pg, err);
    if (PQntuples(res) == 0) /* deleted and re-created meanwhile: ask again */
        status = http_reply_error(conn, 409, "a machine changed during the ingest; retry");
    else
        status =
            http_reply_error(conn, 404,
                             "readings[%s].machine_id: unknown machine %s (%s rows; add it "
                             "to machines first); nothing was written",
                             PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
    PQclear(res);
    return status;
}

/* Puts a new score job into Redis (job_ops.h). Returns 1 when pushed; on
 * failure the job stays pending in PostgreSQL and housekeeping pushes it. */
static int dispatch(struct mg_connection *conn, const char *job_id, const char *machine_id)
{
    const char *prefix = api_server_of(conn)->cfg->redis_prefix;
    char err[256];
    redisContext *r = api_redis(conn, err, sizeof err);
    if (!r ||
        job_dispatch(r, prefix, NULL, job_id, "anomaly", machine_id, err, sizeof err) != ENMS_OK) {
        log_event(LOG_WARN, job_id, "score job recorded but not queued (%s)", err);
        return 0;
    }
    return 1;
}

/* Creates and pushes the score job of one machine; adds
 * {machine_id, job_id, status} to out. status: queued (pushed), pending
 * (recorded, Redis unavailable: housekeeping pushes it), already_queued (a
 * score job was pending or running: it will see these readings too), or
 * not_created (database error; the next scheduled scoring covers it). */
static void score_job(struct mg_connection *conn, PGconn *pg, const char *machine_id, cJSON *out)
{
    char job_id[JOBS_ID_SIZE] = "", existing[JOBS_ID_SIZE] = "", err[256];
    const char *status;
    struct job_request req = {.model_type = "anomaly",
                              .machine_id = machine_id,
                              .trigger_type = "scheduled",
                              .reason = "new readings ingested",
                              .triggered_by = "readings-ingest",
                              .job_kind = "score"};
    int rc = jobs_create(pg, &req, job_id, existing, err, sizeof err);
    if (rc == ENMS_OK) {
        status = dispatch(conn, job_id, machine_id) ? "queued" : "pending";
    } else if (rc == ENMS_ECONFLICT) {
        status = "already_queued";
        snprintf(job_id, sizeof job_id, "%s", existing);
    } else {
        log_event(LOG_WARN, NULL, "score job for machine %s not created: %s", machine_id, err);
        status = "not_created";
    }
    cJSON *item = cJSON_CreateObject();
    if (!item)
        return;
    cJSON_AddStringToObject(item, "machine_id", machine_id);
    if (job_id[0])
        cJSON_AddStringToObject(item, "job_id", job_id);
    else
        cJSON_AddNullToObject(item, "job_id");
    cJSON_AddStringToObject(item, "status", status);
    cJSON_AddItemToArray(out, item);
}

/* The readings array of the body: the body itself when it is an array, or
 * its "readings" member. NULL with a message in err otherwise. */
static const cJSON *readings_of(const cJSON *doc, char *err, size_t errlen)
{
    if (cJSON_IsArray(doc))
        return doc;
    if (!cJSON_IsObject(doc)) {
        enms_fail(err, errlen, ENMS_EINVAL,
                  "body: must be a JSON object {\"readings\": [...]} or an array of readings");
        return NULL;
    }
    const cJSON *arr = NULL;
    char shown[NAME_SHOWN_MAX + 8];
    for (const cJSON *m = doc->child; m; m = m->next) {
        if (strcmp(m->string, "readings") != 0) {
            show_name(shown, sizeof shown, m->string);
            enms_fail(err, errlen, ENMS_EINVAL, "%s: unknown field (known: readings)", shown);
            return NULL;
        }
        if (arr) {
            enms_fail(err, errlen, ENMS_EINVAL, "readings: given twice");
            return NULL;
        }
        arr = m;
    }
    if (!arr || cJSON_IsNull(arr)) {
        enms_fail(err, errlen, ENMS_EINVAL, "readings: required");
        return NULL;
    }
    if (!cJSON_IsArray(arr)) {
        enms_fail(err, errlen, ENMS_EINVAL, "readings: must be an array of readings");
        return NULL;
    }
    return arr;
}

/* Reads and checks a whole batch (body may be NULL) into *rows (calloc'd, the
 * caller frees it) and *n, before anything is asked of the database.
 * Returns 0, or the status to answer (400, 413; 500 out of memory) with the
 * reply's message in err. */
static int readings_parse(const char *body, size_t bodylen, struct row **rows, size_t *n, char *err,
                          size_t errlen)
{
    char why[512];
    cJSON *doc = NULL;
    int status = 400;

    *rows = NULL;
    *n = 0;
    if (!body) {
        snprintf(err, errlen, "body: required (a JSON object {\"readings\": [...]})");
        return 400;
    }
    if (!(doc = json_parse(body, bodylen, why, sizeof why))) {
        snprintf(err, errlen, "body: %s", why);
        return 400;
    }
    const cJSON *arr = readings_of(doc, err, errlen);
    if (!arr)
        goto done;
    size_t count = (size_t)cJSON_GetArraySize(arr);
    if (count == 0) {
        snprintf(err, errlen, "readings: must hold at least one reading");
        goto done;
    }
    if (count > READINGS_BATCH_MAX) {
        snprintf(err, errlen,
                 "readings: %zu readings in one request, at most %d (split the batch); nothing "
                 "was written",
                 count, READINGS_BATCH_MAX);
        status = 413;
        goto done;
    }
    if (!(*rows = calloc(count, sizeof **rows))) {
        snprintf(err, errlen, "out of memory");
        status = 500;
        goto done;
    }
    size_t i = 0;
    for (const cJSON *item = arr->child; item; item = item->next, i++) {
        if (parse_row(item, i, &(*rows)[i], why, sizeof why) != ENMS_OK) {
            snprintf(err, errlen, "%s; nothing was written", why);
            goto done;
        }
    }
    int rc = find_duplicate(*rows, count, why, sizeof why);
    if (rc != ENMS_OK) {
        snprintf(err, errlen, "%s; nothing was written", why);
        status = rc == ENMS_ENOMEM ? 500 : 400;
        goto done;
    }
    *n = count;
    status = 0;
done:
    cJSON_Delete(doc); /* the rows hold everything now; free the tree early */
    if (status) {
        free(*rows);
        *rows = NULL;
    }
    return status;
}

int route_readings(struct mg_connection *conn, void *cbdata)
{
    const struct api_server *srv = cbdata;
    char *body = NULL;
    size_t bodylen = 0, n = 0;
    char err[512];
    cJSON *answer = NULL, *out = NULL, *jobs = NULL;
    struct row *rows = NULL;
    struct batch_arrays arrays;
    PGresult *res = NULL;
    int status;

    memset(&arrays, 0, sizeof arrays);
    if (!http_method_is(conn, "POST"))
        return http_reply_error(conn, 405, "use POST");
    size_t cap =
        srv->cfg->http_max_body > READINGS_BODY_MAX ? srv->cfg->http_max_body : READINGS_BODY_MAX;
    int rc = http_read_body(conn, cap, &body, &bodylen);
    if (rc < 0)
        return -rc;
    if ((status = readings_parse(body, bodylen, &rows, &n, err, sizeof err)) != 0) {
        status = http_reply_error(conn, status, "%s", err);
        goto done;
    }
    if (arrays_build(rows, n, &arrays) != ENMS_OK) {
        status = http_reply_error(conn, 500, "out of memory");
        goto done;
    }

    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg) {
        status = http_reply_error(conn, 503, "postgresql unavailable: %s", err);
        goto done;
    }
    const char *values[] = {arrays.ids.p,        arrays.ts.p,   arrays.energy.p,
                            arrays.production.p, arrays.temp.p, arrays.has_production.p,
                            arrays.has_temp.p};
    res = PQexecParams(pg, UPSERT_SQL, 7, NULL, values, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (res && strcmp(pg_sqlstate(res), SQLSTATE_FK_VIOLATION) == 0)
            status = reply_unknown_machine(conn, pg, arrays.ids.p);
        else if (PQstatus(pg) != CONNECTION_OK)
            status = http_reply_error(conn, 503, "postgresql unavailable: %s", PQerrorMessage(pg));
        else
            status = http_reply_error(conn, 500, "readings not stored: %s",
                                      res ? PQresultErrorMessage(res) : PQerrorMessage(pg));
        goto done;
    }
    if (!(answer = cJSON_Parse(PQgetvalue(res, 0, 0)))) {
        status = http_reply_error(conn, 500, "out of memory");
        goto done;
    }
    PQclear(res);
    res = NULL;

    double inserted = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(answer, "inserted"));
    double updated = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(answer, "updated"));
    out = cJSON_CreateObject();
    jobs = cJSON_CreateArray();
    if (!out || !jobs) {
        status = http_reply_error(conn, 500, "out of memory");
        goto done;
    }
    cJSON_AddNumberToObject(out, "received", (double)n);
    cJSON_AddNumberToObject(out, "inserted", inserted);
    cJSON_AddNumberToObject(out, "updated", updated);
    cJSON_AddNumberToObject(out, "unchanged", (double)n - inserted - updated);
    cJSON *machines = cJSON_DetachItemFromObjectCaseSensitive(answer, "machines");
    if (machines)
        cJSON_AddItemToObject(out, "machines", machines);
    const cJSON *score = cJSON_GetObjectItemCaseSensitive(answer, "score");
    for (const cJSON *m = score ? score->child : NULL; m; m = m->next)
        if (cJSON_IsString(m))
            score_job(conn, pg, m->valuestring, jobs);
    cJSON_AddItemToObject(out, "score_jobs", jobs);
    jobs = NULL;
    log_event(LOG_INFO, NULL, "readings ingested: %zu received, %.0f inserted, %.0f updated", n,
              inserted, updated);
    status = http_reply_item(conn, 200, out);
done:
    PQclear(res);
    cJSON_Delete(jobs);
    cJSON_Delete(out);
    cJSON_Delete(answer);
    arrays_free(&arrays);
    free(rows);
    free(body);
    return status;
}

/* The request reader (routes.h): the batch checks of route_readings, and the
 * bound arrays built from an accepted batch. The handler reads no query
 * string. */
int route_readings_read(const char *qs, size_t qslen, const char *body, size_t bodylen, char *err,
                        size_t errlen)
{
    struct row *rows = NULL;
    struct batch_arrays arrays;
    size_t n = 0;
    (void)qs;
    (void)qslen;
    memset(&arrays, 0, sizeof arrays);
    int status = readings_parse(body, bodylen, &rows, &n, err, errlen);
    if (status == 0 && arrays_build(rows, n, &arrays) != ENMS_OK) {
        snprintf(err, errlen, "out of memory");
        status = 500;
    }
    arrays_free(&arrays);
    free(rows);
    return status;
}
