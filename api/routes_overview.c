/* routes_overview.c - the read-only summaries the dashboard opens with,
 * each served by the seed system's view of the same name:
 * GET /api/v1/model-performance/latest (v_latest_model_performance: the
 * newest evaluation per machine and model type) and
 * GET /api/v1/model-performance/ab-tests (v_active_ab_tests: running tests
 * with their age; status= lists tests in another state from the table).
 *
 * PostgreSQL builds the JSON, so 0.0 stays 0.0 and timestamps keep their
 * offsets. */
#include "http.h"
#include "params.h"
#include "routes.h"
#include "server.h"
#include "../common/error.h"
#include "../common/pg.h"

#include <stdio.h>
#include <string.h>

#define OVERVIEW_LIMIT_DFLT 100
#define OVERVIEW_LIMIT_MAX  1000

static const char *const MODEL_TYPES[] = {"baseline", "anomaly", "forecast_arima", "probe", NULL};
static const char *const TEST_STATUSES[] = {"planned", "running", "completed", "cancelled", NULL};

static const struct param_spec LATEST_FIELDS[] = {
    {.name = "machine_id", .type = PARAM_UUID},
    {.name = "model_type", .type = PARAM_ENUM, .choices = MODEL_TYPES},
};

static const struct param_spec TESTS_FIELDS[] = {
    {.name = "machine_id", .type = PARAM_UUID},
    {.name = "model_type", .type = PARAM_ENUM, .choices = MODEL_TYPES},
    {.name = "status", .type = PARAM_ENUM, .choices = TEST_STATUSES},
    {.name = "limit", .type = PARAM_INT, .min = 1, .max = OVERVIEW_LIMIT_MAX},
};

/* Reads the query string of a GET into p; replies and returns the status on
 * failure, 0 on success. */
static int read_get(struct mg_connection *conn, struct params *p)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    char err[512];
    if (!http_method_is(conn, "GET"))
        return http_reply_error(conn, 405, "use GET");
    if (params_read(p, ri->query_string, ri->query_string ? strlen(ri->query_string) : 0, NULL, 0,
                    err, sizeof err) != ENMS_OK)
        return http_reply_error(conn, 400, "%s", err);
    return 0;
}

/* Runs a query whose one value is a JSON array text and sends it wrapped as
 * {"<key>": [...]}. */
static int reply_query(struct mg_connection *conn, const char *key, const char *sql, int nparams,
                       const char *const *values)
{
    char err[512];
    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg)
        return http_reply_error(conn, 503, "postgresql unavailable: %s", err);
    PGresult *res = pg_exec(pg, PGRES_TUPLES_OK, sql, nparams, values, err, sizeof err);
    if (!res)
        return http_reply_db_error(conn, pg, err);
    cJSON *obj = cJSON_CreateObject();
    cJSON *rows = cJSON_Parse(PQgetvalue(res, 0, 0));
    PQclear(res);
    if (!obj || !rows) {
        cJSON_Delete(obj);
        cJSON_Delete(rows);
        return http_reply_error(conn, 500, "out of memory");
    }
    cJSON_AddItemToObject(obj, key, rows);
    int status = http_reply_item(conn, 200, obj);
    cJSON_Delete(obj);
    return status;
}

int route_performance_latest(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    struct params p;
    params_init(&p, LATEST_FIELDS, sizeof LATEST_FIELDS / sizeof LATEST_FIELDS[0], NULL);
    int status = read_get(conn, &p);
    if (status == 0) {
        const char *values[] = {params_text(&p, "machine_id", NULL),
                                params_text(&p, "model_type", NULL)};
        status = reply_query(conn, "latest",
                             "SELECT COALESCE(json_agg(to_jsonb(v) ORDER BY v.machine_name, "
                             "v.model_type), '[]')::text FROM v_latest_model_performance v "
                             "WHERE ($1::uuid IS NULL OR v.machine_id = $1::uuid) "
                             "AND ($2::text IS NULL OR v.model_type = $2::text)",
                             2, values);
    }
    params_free(&p);
    return status;
}

int route_ab_tests_list(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    struct params p;
    char limit_text[16];
    params_init(&p, TESTS_FIELDS, sizeof TESTS_FIELDS / sizeof TESTS_FIELDS[0], NULL);
    int status = read_get(conn, &p);
    if (status != 0)
        goto done;
    const struct param_value *limit = params_get(&p, "limit");
    snprintf(limit_text, sizeof limit_text, "%lld", limit ? limit->num : OVERVIEW_LIMIT_DFLT);
    const char *st = params_text(&p, "status", "running");
    const char *values[] = {params_text(&p, "machine_id", NULL),
                            params_text(&p, "model_type", NULL), limit_text, st};
    if (strcmp(st, "running") == 0)
        status = reply_query(conn, "tests",
                             "SELECT COALESCE(json_agg(to_jsonb(s) ORDER BY s.test_start), "
                             "'[]')::text FROM (SELECT * FROM v_active_ab_tests v "
                             "WHERE ($1::uuid IS NULL OR v.machine_id = $1::uuid) "
                             "AND ($2::text IS NULL OR v.model_type = $2::text) "
                             "ORDER BY v.test_start LIMIT $3::int) s",
                             3, values);
    else
        status = reply_query(conn, "tests",
                             "SELECT COALESCE(json_agg(to_jsonb(s) ORDER BY s.test_start DESC), "
                             "'[]')::text FROM (SELECT t.*, m.name AS machine_name "
                             "FROM model_ab_tests t JOIN machines m ON m.id = t.machine_id "
                             "WHERE t.test_status = $4 "
                             "AND ($1::uuid IS NULL OR t.machine_id = $1::uuid) "
                             "AND ($2::text IS NULL OR t.model_type = $2::text) "
                             "ORDER BY t.test_start DESC LIMIT $3::int) s",
                             4, values);
done:
    params_free(&p);
    return status;
}

/* The request readers (routes.h): the same tables the handlers above use. */
int route_performance_latest_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                                  char *err, size_t errlen)
{
    (void)body; /* a GET: the handler reads no body */
    (void)bodylen;
    return routes_read_fields(LATEST_FIELDS, sizeof LATEST_FIELDS / sizeof LATEST_FIELDS[0], qs,
                              qslen, NULL, 0, err, errlen);
}

int route_ab_tests_list_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                             char *err, size_t errlen)
{
    (void)body; /* a GET: the handler reads no body */
    (void)bodylen;
    return routes_read_fields(TESTS_FIELDS, sizeof TESTS_FIELDS / sizeof TESTS_FIELDS[0], qs, qslen,
                              NULL, 0, err, errlen);
}
