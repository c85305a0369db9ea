/* jobs_query.c - reading jobs for the API (see jobs_query.h).
 *
 * Owns the SQL of the job list, job detail and completion estimate; every
 * value is a bound parameter, and the list's WHERE clause is assembled from
 * fixed fragments only, numbered as filters are added. */
#include "jobs_query.h"
#include "../common/error.h"
#include "../common/json.h"
#include "../common/pg.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_value(char c)
{
    const char *at = c ? strchr(B64URL, c) : NULL;
    return at ? (int)(at - B64URL) : -1;
}

int jobs_cursor_encode(long long created_us, const char *id, char *out, size_t outlen)
{
    char raw[64];
    int n = snprintf(raw, sizeof raw, "%lld|%s", created_us, id);
    if (n < 0 || (size_t)n >= sizeof raw || outlen < ((size_t)n * 4 + 2) / 3 + 1)
        return ENMS_ETOOBIG;
    size_t o = 0;
    for (int i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)raw[i] << 16;
        if (i + 1 < n)
            v |= (unsigned char)raw[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)raw[i + 2];
        out[o++] = B64URL[(v >> 18) & 63];
        out[o++] = B64URL[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = B64URL[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = B64URL[v & 63];
    }
    out[o] = '\0';
    return ENMS_OK;
}

static int is_uuid(const char *s, size_t len)
{
    if (len != 36)
        return 0;
    for (size_t i = 0; i < len; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = s[i];
        int hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (dash ? c != '-' : !hex)
            return 0;
    }
    return 1;
}

int jobs_cursor_decode(const char *text, size_t len, long long *created_us, char *id)
{
    char raw[64];
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    if (len == 0 || len > 80 || len % 4 == 1)
        return ENMS_EINVAL;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value(text[i]);
        if (v < 0)
            return ENMS_EINVAL;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= sizeof raw - 1)
                return ENMS_EINVAL;
            raw[o++] = (char)((acc >> bits) & 0xFF);
        }
    }
    raw[o] = '\0';
    /* "<digits>|<uuid>", nothing more or less. */
    char *bar = memchr(raw, '|', o);
    if (!bar || bar == raw || bar - raw > 19)
        return ENMS_EINVAL;
    long long us = 0;
    for (char *c = raw; c < bar; c++) {
        if (*c < '0' || *c > '9')
            return ENMS_EINVAL;
        /* 19 digits can exceed LLONG_MAX: refused before the product
         * overflows (found by fuzz/fuzz_endpoints.c). */
        if (us > (LLONG_MAX - (*c - '0')) / 10)
            return ENMS_EINVAL;
        us = us * 10 + (*c - '0');
    }
    size_t idlen = o - (size_t)(bar + 1 - raw);
    if (!is_uuid(bar + 1, idlen))
        return ENMS_EINVAL;
    memcpy(id, bar + 1, 36);
    id[36] = '\0';
    *created_us = us;
    return ENMS_OK;
}

/* Parses PostgreSQL's JSON text of a row into a cJSON tree. */
static cJSON *row_json(const PGresult *res, int row, int col, char *err, size_t errlen)
{
    const char *text = PQgetvalue(res, row, col);
    cJSON *item = json_parse(text, strlen(text), err, errlen);
    if (!item)
        enms_fail(err, errlen, ENMS_EINTERNAL, "job row is not JSON");
    return item;
}

/* Appends a fragment to the query text, with its one "$%d" (if any) set
 * to param. The query is made of fixed fragments only, so running out of
 * room is a bug, reported once at the end through *used >= size. */
static void append(char *sql, size_t size, size_t *used, const char *fragment, int param)
{
    if (*used >= size)
        return;
    int n = strstr(fragment, "%d") ? snprintf(sql + *used, size - *used, fragment, param)
                                   : snprintf(sql + *used, size - *used, "%s", fragment);
    *used = n < 0 ? size : *used + (size_t)n;
}

int jobs_query_list(PGconn *conn, const struct jobs_filter *f, cJSON **out, char *next_cursor,
                    char *err, size_t errlen)
{
    char sql[1024];
    char limit_text[16], cursor_text[24];
    const char *params[10];
    int n = 0;
    size_t used = 0;
    cJSON *arr = NULL;
    PGresult *res = NULL;
    int rc = ENMS_OK;

    *out = NULL;
    next_cursor[0] = '\0';
    append(sql, sizeof sql, &used,
           "SELECT row_to_json(j)::text, "
           "(extract(epoch FROM j.created_at) * 1000000)::bigint::text, j.id "
           "FROM model_training_history j WHERE true",
           0);
    /* Each filter appends a fixed fragment with the next parameter number. */
    struct {
        const char *value;
        const char *fragment;
    } filters[] = {
        {f->status, " AND j.training_status = $%d"},
        {f->model_type, " AND j.model_type = $%d"},
        {f->machine_id, " AND j.machine_id = $%d::uuid"},
        {f->trigger_type, " AND j.trigger_type = $%d"},
        {f->since, " AND j.created_at >= $%d::timestamptz"},
        {f->until, " AND j.created_at < $%d::timestamptz"},
    };
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
        if (!filters[i].value)
            continue;
        params[n++] = filters[i].value;
        append(sql, sizeof sql, &used, filters[i].fragment, n);
    }
    if (f->has_cursor) {
        snprintf(cursor_text, sizeof cursor_text, "%lld", f->cursor_us);
        params[n++] = cursor_text;
        params[n++] = f->cursor_id;
        append(sql, sizeof sql, &used,
               " AND (j.created_at, j.id) < ('1970-01-01 00:00:00+00'::timestamptz + "
               "$%d::bigint * interval '1 microsecond', ",
               n - 1);
        append(sql, sizeof sql, &used, "$%d::uuid)", n);
    }
    /* One row more than asked tells whether another page follows. */
    snprintf(limit_text, sizeof limit_text, "%d", f->limit + 1);
    params[n++] = limit_text;
    append(sql, sizeof sql, &used, " ORDER BY j.created_at DESC, j.id DESC LIMIT $%d", n);
    if (used >= sizeof sql)
        return enms_fail(err, errlen, ENMS_EINTERNAL, "job list query too long");

    res = pg_exec(conn, PGRES_TUPLES_OK, sql, n, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    arr = cJSON_CreateArray();
    if (!arr) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    int rows = PQntuples(res);
    int shown = rows > f->limit ? f->limit : rows;
    for (int r = 0; r < shown; r++) {
        cJSON *job = row_json(res, r, 0, err, errlen);
        if (!job) {
            rc = ENMS_EINTERNAL;
            goto done;
        }
        cJSON_AddItemToArray(arr, job);
    }
    if (rows > f->limit && shown > 0) {
        long long us = strtoll(PQgetvalue(res, shown - 1, 1), NULL, 10);
        rc = jobs_cursor_encode(us, PQgetvalue(res, shown - 1, 2), next_cursor, JOBS_CURSOR_MAX);
        if (rc != ENMS_OK) {
            enms_fail(err, errlen, rc, "cursor too long");
            goto done;
        }
    }
    *out = arr;
    arr = NULL;
done:
    cJSON_Delete(arr);
    PQclear(res);
    return rc;
}

int jobs_query_detail(PGconn *conn, const char *job_id, cJSON **out, char *err, size_t errlen)
{
    const char *params[] = {job_id};
    cJSON *job = NULL;
    int rc = ENMS_OK;
    *out = NULL;
    PGresult *res =
        pg_exec(conn, PGRES_TUPLES_OK,
                "SELECT row_to_json(j)::text, "
                "(SELECT COALESCE(json_agg(json_build_object('id', e.id, 'at', e.at, "
                "'from_status', e.from_status, 'to_status', e.to_status, 'attempt', e.attempt, "
                "'worker_id', e.worker_id, 'message', e.message) ORDER BY e.id), '[]'::json)"
                "::text FROM job_events e WHERE e.job_id = j.id) "
                "FROM model_training_history j WHERE j.id = $1::uuid",
                1, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    if (PQntuples(res) != 1) {
        rc = enms_fail(err, errlen, ENMS_ENOTFOUND, "job %s not found", job_id);
        goto done;
    }
    job = row_json(res, 0, 0, err, errlen);
    cJSON *events = job ? row_json(res, 0, 1, err, errlen) : NULL;
    if (!job || !events) {
        cJSON_Delete(events);
        rc = ENMS_EINTERNAL;
        goto done;
    }
    cJSON_AddItemToObject(job, "events", events);
    *out = job;
    job = NULL;
done:
    cJSON_Delete(job);
    PQclear(res);
    return rc;
}

static void copy_col(char *dst, size_t dstlen, const PGresult *res, int col)
{
    snprintf(dst, dstlen, "%s", PQgetisnull(res, 0, col) ? "" : PQgetvalue(res, 0, col));
}

int jobs_query_brief(PGconn *conn, const char *job_id, struct job_brief *out, char *err,
                     size_t errlen)
{
    const char *params[] = {job_id};
    memset(out, 0, sizeof *out);
    PGresult *res = pg_exec(conn, PGRES_TUPLES_OK,
                            "SELECT training_status, model_type, machine_id, queue_name, "
                            "worker_id, attempts FROM model_training_history WHERE id = $1::uuid",
                            1, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    int rc = ENMS_OK;
    if (PQntuples(res) != 1) {
        rc = enms_fail(err, errlen, ENMS_ENOTFOUND, "job %s not found", job_id);
    } else {
        copy_col(out->status, sizeof out->status, res, 0);
        copy_col(out->model_type, sizeof out->model_type, res, 1);
        copy_col(out->machine_id, sizeof out->machine_id, res, 2);
        copy_col(out->queue_name, sizeof out->queue_name, res, 3);
        copy_col(out->worker_id, sizeof out->worker_id, res, 4);
        out->attempts = atoi(PQgetvalue(res, 0, 5));
    }
    PQclear(res);
    return rc;
}

int jobs_query_estimate(PGconn *conn, const char *model_type, double default_s, char *out,
                        char *err, size_t errlen)
{
    char dflt[32];
    snprintf(dflt, sizeof dflt, "%.3f", default_s);
    const char *params[] = {model_type, dflt};
    PGresult *res = pg_exec(
        conn, PGRES_TUPLES_OK,
        "SELECT to_char((now() + COALESCE((SELECT percentile_cont(0.5) WITHIN GROUP "
        "(ORDER BY d) FROM (SELECT training_duration_seconds AS d FROM model_training_history "
        "WHERE model_type = $1 AND training_status = 'completed' AND "
        "training_duration_seconds IS NOT NULL ORDER BY training_end DESC NULLS LAST "
        "LIMIT 20) recent), $2::double precision) * interval '1 second') AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
        2, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    snprintf(out, JOBS_ISO_TIME_SZ, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return ENMS_OK;
}
