/* routes_metrics.c - POST /api/v1/model-performance/metrics/record (one
 * evaluation of a model version, through common/perf_record.c, which also
 * judges performance drift) and GET .../metrics/trend (a metric's
 * evaluations over a period with a least-squares trend and its
 * significance, common/stats.c).
 *
 * Both work for every model type. The record endpoint accepts the old
 * clients' form (fields in the query string, the body an object of metric
 * name to number) and the new one (one JSON body with the fields and a
 * "metrics" object). docs/performance-tracking.md documents both. */
#include "http.h"
#include "params.h"
#include "routes.h"
#include "server.h"
#include "../common/error.h"
#include "../common/json.h"
#include "../common/json_rows.h"
#include "../common/log.h"
#include "../common/perf_record.h"
#include "../common/pg.h"
#include "../common/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define METRICS_OBJECT_MAX 16384 /* bytes of the printed metrics object */
#define NOTES_MAX          1000
#define TREND_DAYS_DFLT    30
#define TREND_DAYS_MAX     3650
#define TREND_ROWS_MAX     10000 /* newest evaluations a trend reads */
#define TREND_ALPHA        0.05

static const char *const MODEL_TYPES[] = {"baseline", "anomaly", "forecast_arima", NULL};

static const struct param_spec RECORD_FIELDS[] = {
    {.name = "model_id", .type = PARAM_UUID},
    {.name = "model_type", .type = PARAM_ENUM, .required = 1, .choices = MODEL_TYPES},
    {.name = "machine_id", .type = PARAM_UUID, .required = 1},
    {.name = "evaluation_start", .type = PARAM_TIME, .required = 1},
    {.name = "evaluation_end", .type = PARAM_TIME, .required = 1},
    {.name = "metrics", .type = PARAM_OBJECT, .max_len = METRICS_OBJECT_MAX},
    {.name = "notes", .type = PARAM_STRING, .max_len = NOTES_MAX},
};
#define RECORD_FIELD_COUNT (sizeof RECORD_FIELDS / sizeof RECORD_FIELDS[0])

static const struct param_spec TREND_FIELDS[] = {
    {.name = "model_type", .type = PARAM_ENUM, .required = 1, .choices = MODEL_TYPES},
    {.name = "machine_id", .type = PARAM_UUID, .required = 1},
    {.name = "days", .type = PARAM_INT, .min = 1, .max = TREND_DAYS_MAX},
    {.name = "metric", .type = PARAM_STRING, .max_len = 64},
    {.name = "until", .type = PARAM_TIME},
};
#define TREND_FIELD_COUNT (sizeof TREND_FIELDS / sizeof TREND_FIELDS[0])

static int add_number_or_null(cJSON *o, const char *key, double v)
{
    return (isfinite(v) ? cJSON_AddNumberToObject(o, key, v) : cJSON_AddNullToObject(o, key)) !=
           NULL;
}

static int add_string_or_null(cJSON *o, const char *key, const char *s)
{
    return (s && s[0] ? cJSON_AddStringToObject(o, key, s) : cJSON_AddNullToObject(o, key)) != NULL;
}

/* A body that is not valid JSON: when the parser stopped at a value that
 * JSON cannot hold (NaN, Infinity) right after a member name, the message
 * names that member, so "rmse": NaN is reported as metric rmse. */
static void describe_parse_error(const char *body, size_t len, char *err, size_t errlen)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    cJSON_Delete(root);
    size_t at = end && end >= body && end <= body + len ? (size_t)(end - body) : 0;
    size_t i = at;
    while (i > 0 && strchr(" \t\r\n", body[i - 1]))
        i--;
    if (i > 0 && body[i - 1] == ':') {
        i--;
        while (i > 0 && strchr(" \t\r\n", body[i - 1]))
            i--;
        if (i > 1 && body[i - 1] == '"') {
            size_t close = i - 1, open = close;
            while (open > 0 && body[open - 1] != '"')
                open--;
            if (open > 0 && close - open <= 64) {
                int nlen = (int)(close - open);
                const char *v = body + at;
                int special = at < len && strchr("NnIi-+", *v) != NULL;
                snprintf(err, errlen, "metric %.*s: %s", nlen, body + open,
                         special ? "must be a finite number (NaN and Infinity are not allowed)"
                                 : "invalid JSON value");
                return;
            }
        }
    }
    snprintf(err, errlen, "invalid JSON body at byte %zu", at);
}

/* Reads the record request (query string qs, may be NULL, and body) into p
 * and *metrics (a tree the caller frees). Returns 0 or a 4xx status with err
 * set. */
static int read_record(const char *qs, size_t qslen, const char *body, size_t bodylen,
                       struct params *p, cJSON **metrics, char *err, size_t errlen)
{
    cJSON *root = NULL;
    int status = 0;

    *metrics = NULL;
    if (params_parse_query(p, qs, qslen, err, errlen) != ENMS_OK)
        return 400;
    size_t k = 0;
    while (k < bodylen && strchr(" \t\r\n", body[k]))
        k++;
    if (k < bodylen) {
        if (!params_utf8_valid(body, bodylen)) {
            snprintf(err, errlen, "body: not valid UTF-8");
            return 400;
        }
        char perr[128];
        if (!(root = json_parse(body, bodylen, perr, sizeof perr))) {
            describe_parse_error(body, bodylen, err, errlen);
            return 400;
        }
        if (!cJSON_IsObject(root)) {
            snprintf(err, errlen, "body: must be a JSON object");
            status = 400;
            goto done;
        }
        if (cJSON_GetObjectItemCaseSensitive(root, "metrics")) {
            /* New clients: every field in one object. */
            if (params_parse_json(p, body, bodylen, err, errlen) != ENMS_OK) {
                status = 400;
                goto done;
            }
        } else if (params_get(p, "metrics")) {
            snprintf(err, errlen, "metrics: given in the query string and as the body");
            status = 400;
            goto done;
        } else {
            /* Old clients: the body is the metrics object. */
            *metrics = root;
            root = NULL;
        }
    }
    if (params_check_required(p, err, errlen) != ENMS_OK) {
        status = 400;
        goto done;
    }
    if (!*metrics) {
        const char *text = params_text(p, "metrics", NULL);
        if (!text) {
            snprintf(err, errlen, "metrics: required (a JSON object of metric name to number)");
            status = 400;
            goto done;
        }
        if (!(*metrics = cJSON_Parse(text))) {
            snprintf(err, errlen, "out of memory");
            status = 500;
            goto done;
        }
    }
done:
    cJSON_Delete(root);
    if (status) {
        cJSON_Delete(*metrics);
        *metrics = NULL;
    }
    return status;
}

static cJSON *record_answer(const struct perf_record_input *in, const struct perf_record_result *r,
                            const struct params *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *m = cJSON_Duplicate(in->metrics, 1);
    if (!o || !m)
        goto fail;
    if (!cJSON_AddStringToObject(o, "metric_id", r->metric_id) ||
        !cJSON_AddBoolToObject(o, "drift_detected", r->drift_detected) ||
        !add_number_or_null(o, "drift_score", r->drift_score) ||
        !cJSON_AddStringToObject(o, "recommendation", r->recommendation) ||
        !cJSON_AddStringToObject(o, "model_id", r->model_id) ||
        !cJSON_AddStringToObject(o, "model_type", in->model_type) ||
        !cJSON_AddStringToObject(o, "machine_id", in->machine_id) ||
        !cJSON_AddNumberToObject(o, "model_version", r->model_version) ||
        !cJSON_AddStringToObject(o, "evaluation_start", params_text(p, "evaluation_start", "")) ||
        !cJSON_AddStringToObject(o, "evaluation_end", params_text(p, "evaluation_end", "")) ||
        !cJSON_AddNumberToObject(o, "sample_count", r->sample_count) ||
        !cJSON_AddNumberToObject(o, "data_completeness", r->data_completeness) ||
        !add_string_or_null(o, "main_metric", r->main_metric) ||
        !add_number_or_null(o, "main_metric_value", r->main_value) ||
        !add_number_or_null(o, "validation_value", r->validation_value) ||
        !cJSON_AddNumberToObject(o, "threshold", r->drift_threshold) ||
        !add_string_or_null(o, "alert_id", r->alert_id) ||
        !cJSON_AddBoolToObject(o, "retrain_triggered", r->retrain_triggered) ||
        !add_string_or_null(o, "retrain_job_id", r->retrain_job_id) ||
        !add_string_or_null(o, "auto_action_result", r->auto_action_result))
        goto fail;
    cJSON_AddItemToObject(o, "metrics", m);
    return o;
fail:
    cJSON_Delete(m);
    cJSON_Delete(o);
    return NULL;
}

int route_metrics_record(struct mg_connection *conn, void *cbdata)
{
    const struct api_server *srv = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct params p;
    struct perf_record_result res;
    char *body = NULL;
    size_t bodylen = 0;
    char err[512];
    cJSON *metrics = NULL, *answer = NULL;
    int status;

    params_init(&p, RECORD_FIELDS, RECORD_FIELD_COUNT, NULL);
    if (!http_method_is(conn, "POST"))
        return http_reply_error(conn, 405, "use POST");
    int rc = http_read_body(conn, srv->cfg->http_max_body, &body, &bodylen);
    if (rc < 0)
        return -rc;
    if ((status = read_record(ri->query_string, ri->query_string ? strlen(ri->query_string) : 0,
                              body, bodylen, &p, &metrics, err, sizeof err)) != 0) {
        status = http_reply_error(conn, status, "%s", err);
        goto done;
    }
    struct perf_record_input in = {
        .machine_id = params_text(&p, "machine_id", NULL),
        .model_type = params_text(&p, "model_type", NULL),
        .model_id = params_text(&p, "model_id", NULL),
        .eval_start_us = params_get(&p, "evaluation_start")->num,
        .eval_end_us = params_get(&p, "evaluation_end")->num,
        .metrics = metrics,
        .created_by = "api",
        .evaluation_notes = params_text(&p, "notes", NULL),
    };
    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg) {
        status = http_reply_error(conn, 503, "postgresql unavailable: %s", err);
        goto done;
    }
    /* Redis is only needed to push an automatic retrain; without it the job
     * is recorded and housekeeping dispatches it. */
    char rerr[256];
    redisContext *redis = api_redis(conn, rerr, sizeof rerr);
    rc = perf_record(pg, redis, srv->cfg, &in, &res, err, sizeof err);
    if (rc == ENMS_EINVAL) {
        status = http_reply_error(conn, 400, "%s", err);
        goto done;
    }
    if (rc == ENMS_ENOTFOUND) {
        status = http_reply_error(conn, 404, "%s", err);
        goto done;
    }
    if (rc != ENMS_OK) {
        status = rc == ENMS_EDB ? http_reply_db_error(conn, pg, err)
                                : http_reply_error(conn, 500, "metrics not recorded: %s", err);
        goto done;
    }
    if (!(answer = record_answer(&in, &res, &p))) {
        status = http_reply_error(conn, 500, "out of memory");
        goto done;
    }
    status = http_reply_item(conn, 201, answer);
done:
    cJSON_Delete(answer);
    cJSON_Delete(metrics);
    params_free(&p);
    free(body);
    return status;
}

/* The trend's statements, prepared once per connection (pg.h): planning
 * them was about a third of PostgreSQL's time per trend request. */
static const struct pg_stmt STMT_TREND_HAS_F1 = {
    "trend_has_f1",
    "SELECT EXISTS (SELECT 1 FROM model_performance_metrics "
    "WHERE machine_id = $1::uuid AND model_type = $2 "
    "AND COALESCE(evaluation_end, evaluation_date) > $3::timestamptz "
    "AND COALESCE(evaluation_end, evaluation_date) <= $4::timestamptz "
    "AND (f1_score IS NOT NULL OR jsonb_typeof(metrics -> 'f1') = 'number'))",
    4};

/* The default metric of a trend: r_squared for baselines, mape for
 * forecasts, and for anomaly models f1 when any evaluation in the period
 * has it (labels existed), else anomaly_rate. */
static int default_metric(PGconn *pg, const char *const *window, const char *model_type,
                          const char **metric, char *err, size_t errlen)
{
    if (strcmp(model_type, "baseline") == 0) {
        *metric = "r_squared";
        return ENMS_OK;
    }
    if (strcmp(model_type, "forecast_arima") == 0) {
        *metric = "mape";
        return ENMS_OK;
    }
    PGresult *res = pg_exec_stmt(pg, PGRES_TUPLES_OK, &STMT_TREND_HAS_F1, window, err, errlen);
    if (!res)
        return ENMS_EDB;
    *metric = strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? "f1" : "anomaly_rate";
    PQclear(res);
    return ENMS_OK;
}

/* One evaluation as the trend lists it: the columns are the keys of its
 * JSON object (json_rows.c writes them), in this order, then "value"
 * (TREND_VALUE). The analysed metric's value comes from its named column
 * when it has one, else from the metrics object under its name or alias. */
#define TREND_ROW_COLUMNS                                                                          \
    "p.id, p.model_id, p.model_type, p.machine_id, p.model_version, p.evaluation_date, "           \
    "p.evaluation_start, p.evaluation_end, p.r_squared, p.rmse, p.mae, p.mape, "                   \
    "p.precision_score, p.recall_score, p.f1_score, p.drift_detected, p.drift_score, "             \
    "p.sample_count, p.data_completeness, p.created_by, p.metrics"
#define TREND_ROW_NCOLS 22                    /* the columns above and value; then the time axis */
#define TREND_NAME_COL  (TREND_ROW_NCOLS + 1) /* then the machine's name */
#define TREND_VALUE                                                                                \
    "COALESCE(CASE $5 WHEN 'r_squared' THEN p.r_squared WHEN 'rmse' THEN p.rmse "                  \
    "WHEN 'mae' THEN p.mae WHEN 'mape' THEN p.mape WHEN 'precision' THEN p.precision_score "       \
    "WHEN 'recall' THEN p.recall_score WHEN 'f1' THEN p.f1_score "                                 \
    "WHEN 'outlier_percentage' THEN p.outlier_percentage "                                         \
    "WHEN 'true_positives' THEN p.true_positives::float8 "                                         \
    "WHEN 'false_positives' THEN p.false_positives::float8 "                                       \
    "WHEN 'true_negatives' THEN p.true_negatives::float8 "                                         \
    "WHEN 'false_negatives' THEN p.false_negatives::float8 END, "                                  \
    "CASE WHEN jsonb_typeof(p.metrics -> $5) = 'number' THEN (p.metrics ->> $5)::float8 END, "     \
    "CASE WHEN jsonb_typeof(p.metrics -> $6) = 'number' THEN (p.metrics ->> $6)::float8 END)"

/* The alias of a canonical metric name (the other spelling perf_record
 * accepts), or "" when it has none. */
static const char *alias_of(const char *canonical)
{
    static const char *const pairs[][2] = {
        {"r_squared", "r2"},        {"mape", "mape_pct"},     {"precision", "precision_score"},
        {"recall", "recall_score"}, {"f1", "f1_score"},       {"true_positives", "tp"},
        {"false_positives", "fp"},  {"true_negatives", "tn"}, {"false_negatives", "fn"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        if (strcmp(pairs[i][0], canonical) == 0)
            return pairs[i][1];
    return "";
}

/* Fills the trend fields of o from the (day, value) pairs. */
static int add_trend(cJSON *o, const double *x, const double *y, size_t n, const char *metric)
{
    struct stats_trend t;
    char err[256];
    int lower = perf_metric_lower_is_better(metric) == 1;
    double sum = 0;
    size_t finite = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(y[i])) {
            sum += y[i];
            finite++;
        }
    if (stats_trend(x, y, n, &t, err, sizeof err) != ENMS_OK) {
        return cJSON_AddStringToObject(o, "trend_direction", "stable") &&
               cJSON_AddNullToObject(o, "degradation_rate") && cJSON_AddNullToObject(o, "slope") &&
               cJSON_AddNullToObject(o, "p_value") &&
               cJSON_AddNumberToObject(o, "n", (double)finite) &&
               cJSON_AddNumberToObject(o, "significance_level", TREND_ALPHA) &&
               cJSON_AddStringToObject(o, "trend_note", err);
    }
    double mean = finite ? sum / (double)finite : NAN;
    /* Positive: getting worse, whichever way the metric is better. */
    double worse_slope = lower ? t.slope : -t.slope;
    double rate = isfinite(mean) && mean != 0 ? worse_slope / fabs(mean) * 100 : NAN;
    const char *direction = "stable";
    if (t.p_value < TREND_ALPHA && worse_slope > 0)
        direction = "degrading";
    else if (t.p_value < TREND_ALPHA && worse_slope < 0)
        direction = "improving";
    return cJSON_AddStringToObject(o, "trend_direction", direction) &&
           add_number_or_null(o, "degradation_rate", rate) &&
           add_number_or_null(o, "slope", t.slope) && add_number_or_null(o, "p_value", t.p_value) &&
           cJSON_AddNumberToObject(o, "n", (double)t.n) &&
           cJSON_AddNumberToObject(o, "significance_level", TREND_ALPHA) &&
           add_number_or_null(o, "mean", mean);
}

/* A window's evaluations, newest first, with the machine's name: the
 * order of ix_performance_trend (schema/007), so PostgreSQL reads the index
 * in order and stops at the row limit, with no sort (the handler reverses
 * the rows). The time axis is the end of each evaluation's window (the time
 * its metrics describe), evaluation_date for rows without one. No row: an
 * unknown machine or no evaluation in the window; STMT_TREND_MACHINE tells
 * which. */
#define TREND_T "COALESCE(p.evaluation_end, p.evaluation_date)"
static const struct pg_stmt STMT_TREND_ROWS = {
    "trend_rows",
    "SELECT " TREND_ROW_COLUMNS ", " TREND_VALUE " AS value, extract(epoch FROM " TREND_T
    ")::float8 AS t, (SELECT m.name FROM machines m WHERE m.id = $1::uuid) "
    "FROM model_performance_metrics p "
    "WHERE p.machine_id = $1::uuid AND p.model_type = $2 "
    "AND " TREND_T " > $3::timestamptz AND " TREND_T " <= $4::timestamptz "
    "ORDER BY " TREND_T " DESC, p.created_at DESC, p.id DESC LIMIT $7::int",
    7};

static const struct pg_stmt STMT_TREND_MACHINE = {
    "trend_machine", "SELECT EXISTS (SELECT 1 FROM machines WHERE id = $1::uuid)", 1};

/* ENMS_OK and *exists, or ENMS_EDB with err. */
static int machine_exists(PGconn *pg, const char *machine_id, int *exists, char *err, size_t errlen)
{
    const char *params[] = {machine_id};
    PGresult *res = pg_exec_stmt(pg, PGRES_TUPLES_OK, &STMT_TREND_MACHINE, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    *exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return ENMS_OK;
}

int route_metrics_trend(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct params p;
    char err[512], until[40], from[40], rows_max[16];
    PGresult *res = NULL;
    cJSON *head = NULL, *o = NULL; /* the document's members before and after "metrics" */
    char *head_text = NULL, *tail_text = NULL;
    struct json_text doc = {0};
    double *x = NULL, *y = NULL;
    int status;

    params_init(&p, TREND_FIELDS, TREND_FIELD_COUNT, NULL);
    if (!http_method_is(conn, "GET")) {
        status = http_reply_error(conn, 405, "use GET");
        goto done;
    }
    if (params_read(&p, ri->query_string, ri->query_string ? strlen(ri->query_string) : 0, NULL, 0,
                    err, sizeof err) != ENMS_OK) {
        status = http_reply_error(conn, 400, "%s", err);
        goto done;
    }
    const char *model_type = params_text(&p, "model_type", NULL);
    const char *machine_id = params_text(&p, "machine_id", NULL);
    const struct param_value *dv = params_get(&p, "days");
    long long days = dv ? dv->num : TREND_DAYS_DFLT;
    const struct param_value *uv = params_get(&p, "until");
    long long until_us;
    if (uv) {
        until_us = uv->num;
    } else {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        until_us = (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000;
    }
    if (params_format_time(until_us, until, sizeof until) != ENMS_OK ||
        params_format_time(until_us - days * 86400LL * 1000000, from, sizeof from) != ENMS_OK) {
        status = http_reply_error(conn, 400, "until: the period falls outside years 1000-9999");
        goto done;
    }
    const char *metric = NULL;
    const char *asked = params_text(&p, "metric", NULL);
    if (asked && !(metric = perf_metric_canonical(asked))) {
        status = http_reply_error(
            conn, 400,
            "metric: unknown metric '%s' (known: r_squared, rmse, mae, mape, mase, mse, "
            "cv_rmse_pct, precision, recall, f1, accuracy, anomaly_rate, outlier_percentage, "
            "true_positives, false_positives, true_negatives, false_negatives)",
            asked);
        goto done;
    }

    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg) {
        status = http_reply_error(conn, 503, "postgresql unavailable: %s", err);
        goto done;
    }
    const char *window[] = {machine_id, model_type, from, until};
    if (!metric && default_metric(pg, window, model_type, &metric, err, sizeof err) != ENMS_OK) {
        status = http_reply_db_error(conn, pg, err);
        goto done;
    }
    snprintf(rows_max, sizeof rows_max, "%d", TREND_ROWS_MAX);
    const char *qp[] = {machine_id, model_type, from, until, metric, alias_of(metric), rows_max};
    res = pg_exec_stmt(pg, PGRES_TUPLES_OK, &STMT_TREND_ROWS, qp, err, sizeof err);
    if (!res) {
        status = http_reply_db_error(conn, pg, err);
        goto done;
    }
    size_t n = (size_t)PQntuples(res);
    if (n == 0) {
        int exists = 0;
        if (machine_exists(pg, machine_id, &exists, err, sizeof err) != ENMS_OK)
            status = http_reply_db_error(conn, pg, err);
        else if (!exists)
            status = http_reply_error(conn, 404, "machine %s not found", machine_id);
        else
            status = http_reply_error(
                conn, 404, "no %s metrics recorded for machine %s in the %lld days up to %s",
                model_type, machine_id, days, until);
        goto done;
    }
    x = malloc(n * sizeof *x);
    y = malloc(n * sizeof *y);
    if (!x || !y) {
        status = http_reply_error(conn, 500, "out of memory");
        goto done;
    }
    /* The rows arrive newest first and are analysed and listed oldest first. */
    double t0 = strtod(PQgetvalue(res, (int)(n - 1), TREND_ROW_NCOLS), NULL);
    for (size_t i = 0; i < n; i++) {
        int row = (int)(n - 1 - i);
        x[i] = (strtod(PQgetvalue(res, row, TREND_ROW_NCOLS), NULL) - t0) / 86400.0;
        y[i] = PQgetisnull(res, row, TREND_ROW_NCOLS - 1)
                   ? NAN
                   : strtod(PQgetvalue(res, row, TREND_ROW_NCOLS - 1), NULL);
    }
    /* The document is {head, "metrics": rows, tail}: head and tail are small
     * cJSON objects, the rows (up to TREND_ROWS_MAX, each a few hundred
     * bytes) are written as JSON text straight from the result into the same
     * buffer, never parsed into cJSON nodes or copied again: most of this
     * endpoint's time went there. */
    head = cJSON_CreateObject();
    o = cJSON_CreateObject();
    if (!head || !o || !cJSON_AddStringToObject(head, "model_type", model_type) ||
        !cJSON_AddStringToObject(head, "machine_id", machine_id) ||
        !cJSON_AddStringToObject(head, "machine_name", PQgetvalue(res, 0, TREND_NAME_COL)) ||
        !cJSON_AddStringToObject(o, "metric", metric) ||
        !cJSON_AddBoolToObject(o, "lower_is_better", perf_metric_lower_is_better(metric) == 1) ||
        !cJSON_AddNumberToObject(o, "days", (double)days) ||
        !cJSON_AddStringToObject(o, "period_start", from) ||
        !cJSON_AddStringToObject(o, "until", until) ||
        !cJSON_AddBoolToObject(o, "truncated", n >= TREND_ROWS_MAX) ||
        !add_trend(o, x, y, n, metric) || !(head_text = json_print(head)) ||
        !(tail_text = json_print(o))) {
        status = http_reply_error(conn, 500, "out of memory");
        goto done;
    }
    /* Both print as {...} with at least one member. */
    json_text_raw(&doc, head_text, strlen(head_text) - 1);
    json_text_raw(&doc, ",\"metrics\":", 11);
    json_text_pg_array(&doc, res, TREND_ROW_NCOLS, 1);
    json_text_raw(&doc, ",", 1);
    json_text_raw(&doc, tail_text + 1, strlen(tail_text) - 1);
    if (doc.failed) {
        status = http_reply_error(conn, 500, "out of memory");
        goto done;
    }
    status = http_reply_json_len(conn, 200, doc.buf, doc.len);
done:
    free(x);
    free(y);
    free(doc.buf);
    cJSON_free(head_text);
    cJSON_free(tail_text);
    cJSON_Delete(head);
    cJSON_Delete(o);
    PQclear(res);
    params_free(&p);
    return status;
}

/* The request readers (routes.h): the same tables the handlers above use. */
int route_metrics_trend_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                             char *err, size_t errlen)
{
    (void)body; /* a GET: the handler reads no body */
    (void)bodylen;
    return routes_read_fields(TREND_FIELDS, TREND_FIELD_COUNT, qs, qslen, NULL, 0, err, errlen);
}

int route_metrics_record_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                              char *err, size_t errlen)
{
    struct params p;
    cJSON *metrics = NULL;
    params_init(&p, RECORD_FIELDS, RECORD_FIELD_COUNT, NULL);
    int status = read_record(qs, qslen, body, bodylen, &p, &metrics, err, errlen);
    cJSON_Delete(metrics);
    params_free(&p);
    return status;
}
