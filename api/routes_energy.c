/* routes_energy.c - GET /api/v1/model-performance/energy: what the
 * dashboard's energy chart draws for one machine and period: the measured
 * energy (per hour or per local day), the active baseline's prediction for
 * the same days, and the active forecast model's next hours with 80 and 95 %
 * intervals, carried forward from its training state over the readings
 * that came after (no refit: worker/models/arima_filter.h).
 *
 * Model parts are best effort: a machine without an active baseline or
 * forecast, or whose model cannot be applied, gets null and a note saying
 * why, while the readings are still answered. */
#include "http.h"
#include "params.h"
#include "routes.h"
#include "server.h"
#include "../common/error.h"
#include "../common/pg.h"
#include "../common/readings_window.h"
#include "../worker/models/arima.h"
#include "../worker/models/arima_filter.h"
#include "../worker/models/baseline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOUR_S              3600
#define DAY_S               86400
#define ENERGY_DAYS_MAX     366
#define HORIZON_MAX_H       168
#define FORECAST_FILTER_MAX (400 * 24) /* hours a stored state may be carried forward */

static const char *const RESOLUTIONS[] = {"hour", "day", NULL};

static const struct param_spec ENERGY_FIELDS[] = {
    {.name = "machine_id", .type = PARAM_UUID, .required = 1},
    {.name = "days", .type = PARAM_INT, .min = 1, .max = ENERGY_DAYS_MAX},
    {.name = "until", .type = PARAM_TIME},
    {.name = "resolution", .type = PARAM_ENUM, .choices = RESOLUTIONS},
    {.name = "horizon_hours", .type = PARAM_INT, .min = 1, .max = HORIZON_MAX_H},
};

/* What the request asks for, resolved against the machine. */
struct energy_query {
    const char *machine_id;
    time_t from, to; /* [from, to), whole hours */
    int by_day;
    int horizon_h;
    int offset_s; /* the machine's local time offset */
};

static void iso(time_t t, char *buf, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int add_time(cJSON *o, const char *key, time_t t)
{
    char buf[32];
    iso(t, buf, sizeof buf);
    return cJSON_AddStringToObject(o, key, buf) ? 0 : -1;
}

/* A number, or null when it is not finite (JSON has no NaN). */
static int add_num(cJSON *o, const char *key, double v)
{
    return (isfinite(v) ? cJSON_AddNumberToObject(o, key, v) : cJSON_AddNullToObject(o, key)) ? 0
                                                                                              : -1;
}

/* Readings of [from, to) summed per hour or per local day, oldest first. */
static int add_readings(PGconn *pg, const struct energy_query *q, cJSON *out, char *err,
                        size_t errlen)
{
    char a[24], b[24], off[24];
    snprintf(a, sizeof a, "%lld", (long long)q->from);
    snprintf(b, sizeof b, "%lld", (long long)q->to);
    snprintf(off, sizeof off, "%d", q->offset_s);
    const char *params[] = {q->machine_id, a, b, off, q->by_day ? "day" : "hour"};
    PGresult *res =
        pg_exec(pg, PGRES_TUPLES_OK,
                "SELECT extract(epoch FROM b)::bigint, sum(energy_kwh), count(*) FROM ("
                "SELECT CASE WHEN $5 = 'day' THEN date_trunc('day', ts + $4::int * interval "
                "'1 second') - $4::int * interval '1 second' ELSE date_trunc('hour', ts) END "
                "AS b, energy_kwh FROM energy_readings WHERE machine_id = $1::uuid "
                "AND ts >= to_timestamp($2::bigint) AND ts < to_timestamp($3::bigint)) r "
                "GROUP BY b ORDER BY b",
                5, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    cJSON *list = cJSON_AddArrayToObject(out, "readings");
    int rc = list ? ENMS_OK : ENMS_ENOMEM;
    for (int i = 0; rc == ENMS_OK && i < PQntuples(res); i++) {
        cJSON *p = cJSON_CreateObject();
        if (!p || add_time(p, "ts", (time_t)strtoll(PQgetvalue(res, i, 0), NULL, 10)) ||
            add_num(p, "energy_kwh", strtod(PQgetvalue(res, i, 1), NULL)) ||
            !cJSON_AddNumberToObject(p, "readings", atof(PQgetvalue(res, i, 2)))) {
            cJSON_Delete(p);
            rc = ENMS_ENOMEM;
            break;
        }
        cJSON_AddItemToArray(list, p);
    }
    PQclear(res);
    return rc == ENMS_ENOMEM ? enms_fail(err, errlen, rc, "out of memory") : rc;
}

/* The active version of model_type: id, version, artifact (owned by the
 * caller: cJSON_Delete), and the end of its training data (0: unknown).
 * ENMS_ENOTFOUND when none is active. */
static int active_version(PGconn *pg, const char *machine_id, const char *model_type, char *id,
                          int *version, cJSON **artifact, time_t *trained_until, char *err,
                          size_t errlen)
{
    const char *params[] = {machine_id, model_type};
    PGresult *res = pg_exec(pg, PGRES_TUPLES_OK,
                            "SELECT v.id::text, v.version, v.artifact::text, "
                            "extract(epoch FROM h.training_data_end)::bigint "
                            "FROM model_versions v LEFT JOIN model_training_history h "
                            "ON h.id = v.training_job_id "
                            "WHERE v.machine_id = $1::uuid AND v.model_type = $2 AND v.is_active",
                            2, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    int rc = ENMS_OK;
    if (PQntuples(res) != 1) {
        rc = enms_fail(err, errlen, ENMS_ENOTFOUND, "no active %s model", model_type);
        goto done;
    }
    snprintf(id, 37, "%s", PQgetvalue(res, 0, 0));
    *version = atoi(PQgetvalue(res, 0, 1));
    *trained_until = PQgetisnull(res, 0, 3) ? 0 : (time_t)strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    if (!(*artifact = cJSON_Parse(PQgetvalue(res, 0, 2))))
        rc = enms_fail(err, errlen, ENMS_EINVAL, "the artifact is not JSON");
done:
    PQclear(res);
    return rc;
}

/* The active baseline's prediction for the complete local days of the
 * period: day total and the mean per hour (what an hourly chart draws). */
static int baseline_part(PGconn *pg, const struct energy_query *q, cJSON **out, char *err,
                         size_t errlen)
{
    char id[37];
    int version = 0, rc;
    time_t trained_until = 0;
    cJSON *artifact = NULL, *obj = NULL;
    struct baseline_model m;
    struct readings_window w;
    double *pred = NULL;

    memset(&m, 0, sizeof m);
    memset(&w, 0, sizeof w);
    *out = NULL;
    if ((rc = active_version(pg, q->machine_id, "baseline", id, &version, &artifact, &trained_until,
                             err, errlen)) != ENMS_OK)
        goto done;
    if ((rc = baseline_model_from_json(artifact, &m, err, errlen)) != ENMS_OK)
        goto done;
    if (m.granularity != BASELINE_DAILY) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "the active baseline is not a daily model");
        goto done;
    }
    /* Whole local days around the period, so the first and last are complete. */
    time_t from = q->from - DAY_S, to = q->to + DAY_S;
    if ((rc = readings_window_load(pg, q->machine_id, from, to, q->offset_s, 0, &w, err, errlen)) !=
        ENMS_OK)
        goto done;
    if (w.days.n == 0) {
        rc = enms_fail(err, errlen, ENMS_ENOTFOUND, "no complete day in the period");
        goto done;
    }
    if (!(pred = malloc(w.days.n * sizeof *pred))) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = baseline_predict_days(&m, &w.days, pred, err, errlen)) != ENMS_OK)
        goto done;
    obj = cJSON_CreateObject();
    cJSON *points = obj ? cJSON_AddArrayToObject(obj, "points") : NULL;
    if (!points || !cJSON_AddStringToObject(obj, "model_id", id) ||
        !cJSON_AddNumberToObject(obj, "version", version) ||
        !cJSON_AddStringToObject(obj, "granularity", "day")) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < w.days.n; i++) {
        time_t start = w.days.start[i];
        if (start + DAY_S <= q->from || start >= q->to)
            continue;
        cJSON *p = cJSON_CreateObject();
        if (!p || add_time(p, "ts", start) || add_num(p, "predicted_kwh", pred[i]) ||
            add_num(p, "mean_hourly_kwh", pred[i] / 24.0) ||
            add_num(p, "measured_kwh", w.days.energy[i])) {
            cJSON_Delete(p);
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
            goto done;
        }
        cJSON_AddItemToArray(points, p);
    }
    *out = obj;
    obj = NULL;
done:
    cJSON_Delete(obj);
    cJSON_Delete(artifact);
    readings_window_free(&w);
    free(pred);
    return rc;
}

/* The active forecast model carried forward from the end of its training
 * data to the end of the period, then horizon_h hours ahead. */
static int forecast_part(PGconn *pg, const struct energy_query *q, cJSON **out, char *err,
                         size_t errlen)
{
    char id[37];
    int version = 0, rc;
    time_t trained_until = 0;
    cJSON *artifact = NULL, *obj = NULL;
    struct arima_model *m = NULL;
    struct arima_filter k;
    struct readings_window w;
    double *mean = NULL, *se = NULL;
    size_t h = (size_t)q->horizon_h;

    memset(&k, 0, sizeof k);
    memset(&w, 0, sizeof w);
    *out = NULL;
    if ((rc = active_version(pg, q->machine_id, "forecast_arima", id, &version, &artifact,
                             &trained_until, err, errlen)) != ENMS_OK)
        goto done;
    if (trained_until <= 0) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "the forecast version has no training end");
        goto done;
    }
    time_t state = trained_until - trained_until % HOUR_S;
    if (q->to < state) {
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "the period ends before the forecast model's training data does");
        goto done;
    }
    if ((size_t)((q->to - state) / HOUR_S) > FORECAST_FILTER_MAX) {
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "the forecast model is %lld days older than the period: retrain it",
                       (long long)((q->to - state) / DAY_S));
        goto done;
    }
    if ((rc = arima_from_json(artifact, &m, err, errlen)) != ENMS_OK ||
        (rc = arima_filter_init(&k, m, err, errlen)) != ENMS_OK)
        goto done;
    if ((rc = readings_window_load(pg, q->machine_id, state, q->to, q->offset_s, 0, &w, err,
                                   errlen)) != ENMS_OK)
        goto done;
    /* One filter step per hour; an hour without a reading is a missing value. */
    size_t next = 0;
    for (time_t t = state; t < q->to; t += HOUR_S) {
        double y = NAN;
        while (next < w.n && w.ts[next] < t)
            next++;
        if (next < w.n && w.ts[next] == t)
            y = w.energy[next];
        arima_filter_step(&k, y);
    }
    if (!(mean = malloc(h * sizeof *mean)) || !(se = malloc(h * sizeof *se))) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = arima_filter_forecast(&k, h, mean, se, err, errlen)) != ENMS_OK)
        goto done;
    obj = cJSON_CreateObject();
    cJSON *points = obj ? cJSON_AddArrayToObject(obj, "points") : NULL;
    if (!points || !cJSON_AddStringToObject(obj, "model_id", id) ||
        !cJSON_AddNumberToObject(obj, "version", version) || add_time(obj, "origin", q->to)) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    /* Normal quantiles of the 80 % and 95 % two-sided intervals. */
    const double z80 = 1.2815515655446004, z95 = 1.959963984540054;
    for (size_t i = 0; i < h; i++) {
        cJSON *p = cJSON_CreateObject();
        if (!p || add_time(p, "ts", q->to + (time_t)i * HOUR_S) || add_num(p, "mean", mean[i]) ||
            add_num(p, "lower_80", mean[i] - z80 * se[i]) ||
            add_num(p, "upper_80", mean[i] + z80 * se[i]) ||
            add_num(p, "lower_95", mean[i] - z95 * se[i]) ||
            add_num(p, "upper_95", mean[i] + z95 * se[i])) {
            cJSON_Delete(p);
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
            goto done;
        }
        cJSON_AddItemToArray(points, p);
    }
    *out = obj;
    obj = NULL;
done:
    cJSON_Delete(obj);
    cJSON_Delete(artifact);
    arima_filter_free(&k);
    arima_free(m);
    readings_window_free(&w);
    free(mean);
    free(se);
    return rc;
}

/* Adds part (or null and a note) under key. Returns ENMS_EDB when the
 * database failed (the request fails), else ENMS_OK. */
static int add_part(cJSON *obj, const char *key, int rc, cJSON *part, const char *why)
{
    char note[64];
    if (rc == ENMS_EDB || rc == ENMS_ENOMEM) {
        cJSON_Delete(part);
        return rc;
    }
    if (rc == ENMS_OK && part) {
        cJSON_AddItemToObject(obj, key, part);
        return ENMS_OK;
    }
    cJSON_AddNullToObject(obj, key);
    snprintf(note, sizeof note, "%s_note", key);
    cJSON_AddStringToObject(obj, note, why);
    return ENMS_OK;
}

int route_energy(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct params p;
    char err[512], why[512];
    PGresult *res = NULL;
    cJSON *obj = NULL, *part = NULL;
    int status, rc;

    params_init(&p, ENERGY_FIELDS, sizeof ENERGY_FIELDS / sizeof ENERGY_FIELDS[0], NULL);
    if (!http_method_is(conn, "GET")) {
        status = http_reply_error(conn, 405, "use GET");
        goto done;
    }
    if (params_read(&p, ri->query_string, ri->query_string ? strlen(ri->query_string) : 0, NULL, 0,
                    err, sizeof err) != ENMS_OK) {
        status = http_reply_error(conn, 400, "%s", err);
        goto done;
    }
    struct energy_query q = {.machine_id = params_text(&p, "machine_id", NULL)};
    const struct param_value *days = params_get(&p, "days");
    const struct param_value *until = params_get(&p, "until");
    const struct param_value *horizon = params_get(&p, "horizon_hours");
    int ndays = days ? (int)days->num : 7;
    const char *resolution = params_text(&p, "resolution", ndays <= 7 ? "hour" : "day");
    q.by_day = strcmp(resolution, "day") == 0;
    q.horizon_h = horizon ? (int)horizon->num : 24;

    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg) {
        status = http_reply_error(conn, 503, "postgresql unavailable: %s", err);
        goto done;
    }
    const char *one[] = {q.machine_id};
    res = pg_exec(pg, PGRES_TUPLES_OK,
                  "SELECT m.name, COALESCE(m.utc_offset_minutes::bigint, "
                  "(t.truth->>'utc_offset_hours')::bigint * 60, 0), "
                  "(SELECT extract(epoch FROM max(ts))::bigint FROM energy_readings "
                  " WHERE machine_id = m.id) "
                  "FROM machines m LEFT JOIN demo_truth t ON t.machine_id = m.id "
                  "WHERE m.id = $1::uuid",
                  1, one, err, sizeof err);
    if (!res) {
        status = http_reply_db_error(conn, pg, err);
        goto done;
    }
    if (PQntuples(res) != 1) {
        status = http_reply_error(conn, 404, "machine %s not found", q.machine_id);
        goto done;
    }
    long long offset_min = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    q.offset_s = offset_min >= -840 && offset_min <= 840 ? (int)offset_min * 60 : 0;
    if (until) {
        q.to = (time_t)(until->num / 1000000);
    } else if (!PQgetisnull(res, 0, 2)) {
        q.to = (time_t)strtoll(PQgetvalue(res, 0, 2), NULL, 10) + HOUR_S;
    } else {
        q.to = time(NULL);
    }
    q.to -= q.to % HOUR_S;
    if (q.by_day) /* whole local days: the period ends at a local midnight */
        q.to -= ((q.to + q.offset_s) % DAY_S + DAY_S) % DAY_S;
    q.from = q.to - (time_t)ndays * DAY_S;

    if (!(obj = cJSON_CreateObject()) ||
        !cJSON_AddStringToObject(obj, "machine_id", q.machine_id) ||
        !cJSON_AddStringToObject(obj, "machine_name", PQgetvalue(res, 0, 0)) ||
        !cJSON_AddStringToObject(obj, "resolution", resolution) ||
        !cJSON_AddNumberToObject(obj, "utc_offset_minutes", q.offset_s / 60) ||
        add_time(obj, "since", q.from) || add_time(obj, "until", q.to)) {
        status = http_reply_error(conn, 500, "out of memory");
        goto done;
    }
    PQclear(res);
    res = NULL;
    if ((rc = add_readings(pg, &q, obj, err, sizeof err)) != ENMS_OK) {
        status = http_reply_error(conn, rc == ENMS_EDB ? 503 : 500, "%s", err);
        goto done;
    }
    why[0] = '\0';
    rc = baseline_part(pg, &q, &part, why, sizeof why);
    if ((rc = add_part(obj, "baseline", rc, part, why)) != ENMS_OK) {
        status = http_reply_error(conn, rc == ENMS_EDB ? 503 : 500, "baseline: %s", why);
        goto done;
    }
    part = NULL;
    why[0] = '\0';
    rc = forecast_part(pg, &q, &part, why, sizeof why);
    if ((rc = add_part(obj, "forecast", rc, part, why)) != ENMS_OK) {
        status = http_reply_error(conn, rc == ENMS_EDB ? 503 : 500, "forecast: %s", why);
        goto done;
    }
    part = NULL;
    status = http_reply_item(conn, 200, obj);
done:
    PQclear(res);
    cJSON_Delete(obj);
    params_free(&p);
    return status;
}

/* The request readers (routes.h): the same tables the handlers above use. */
int route_energy_read(const char *qs, size_t qslen, const char *body, size_t bodylen, char *err,
                      size_t errlen)
{
    (void)body; /* a GET: the handler reads no body */
    (void)bodylen;
    return routes_read_fields(ENERGY_FIELDS, sizeof ENERGY_FIELDS / sizeof ENERGY_FIELDS[0], qs,
                              qslen, NULL, 0, err, errlen);
}
