/* routes_drift.c - POST /api/v1/model-performance/drift/check: reads the
 * request (query parameters as the old clients send them, or a JSON body),
 * runs common/drift_check.c and prints its answer.
 *
 * Status codes: 400 bad input, 404 unknown machine or version (or none
 * trained), 422 when the data do not allow a check (too few complete days),
 * 503 when PostgreSQL is down. Every check happens before anything is
 * written; only a detected drift writes (its alert, perhaps a retrain). */
#include "http.h"
#include "params.h"
#include "routes.h"
#include "server.h"
#include "../common/drift_check.h"
#include "../common/error.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

static const char *const MODEL_TYPES[] = {"baseline", "anomaly", "forecast_arima", NULL};

static const struct param_spec DRIFT_FIELDS[] = {
    {.name = "model_id", .type = PARAM_UUID},
    {.name = "model_type", .type = PARAM_ENUM, .required = 1, .choices = MODEL_TYPES},
    {.name = "machine_id", .type = PARAM_UUID, .required = 1},
    {.name = "as_of", .type = PARAM_TIME},
    {.name = "recent_days", .type = PARAM_INT, .min = 1, .max = 90},
};
#define DRIFT_FIELD_COUNT (sizeof DRIFT_FIELDS / sizeof DRIFT_FIELDS[0])

static int status_of(int rc, PGconn *pg)
{
    switch (rc) {
    case ENMS_EINVAL:
        return 400;
    case ENMS_ENOTFOUND:
        return 404;
    case ENMS_ECONFLICT:
        return 422;
    case ENMS_EDB:
        return !pg || PQstatus(pg) != CONNECTION_OK ? 503 : 500;
    default:
        return 500;
    }
}

int route_drift_check(struct mg_connection *conn, void *cbdata)
{
    const struct api_server *srv = cbdata;
    const struct enms_config *cfg = srv->cfg;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct params p;
    struct drift_check_result *res = NULL; /* large: on the heap */
    char *body = NULL;
    size_t bodylen = 0;
    char err[512] = "";
    cJSON *answer = NULL;
    int status;

    if (!http_method_is(conn, "POST"))
        return http_reply_error(conn, 405, "use POST");
    int rc = http_read_body(conn, cfg->http_max_body, &body, &bodylen);
    if (rc < 0)
        return -rc;
    params_init(&p, DRIFT_FIELDS, DRIFT_FIELD_COUNT, NULL);
    if (params_read(&p, ri->query_string, ri->query_string ? strlen(ri->query_string) : 0, body,
                    bodylen, err, sizeof err) != ENMS_OK) {
        status = http_reply_error(conn, 400, "%s", err);
        goto done;
    }
    const struct param_value *as_of = params_get(&p, "as_of");
    const struct param_value *days = params_get(&p, "recent_days");
    struct drift_check_input in = {.machine_id = params_text(&p, "machine_id", NULL),
                                   .model_type = params_text(&p, "model_type", NULL),
                                   .model_id = params_text(&p, "model_id", NULL),
                                   .as_of_us = as_of ? as_of->num : 0,
                                   .recent_days = days ? (int)days->num : 0,
                                   .act = 1};
    if (as_of && as_of->num <= 0) {
        status = http_reply_error(conn, 400, "as_of: must be after 1970-01-01");
        goto done;
    }
    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg) {
        status = http_reply_error(conn, 503, "postgresql unavailable: %s", err);
        goto done;
    }
    if (!(res = malloc(sizeof *res))) {
        status = http_reply_error(conn, 500, "out of memory");
        goto done;
    }
    /* Redis is optional here: without it a retrain is recorded and
     * housekeeping pushes it. */
    char rerr[256];
    redisContext *redis = api_redis(conn, rerr, sizeof rerr);
    rc = drift_check(pg, redis, cfg, &in, res, err, sizeof err);
    if (rc != ENMS_OK) {
        status = http_reply_error(conn, status_of(rc, pg), "%s", err);
        goto done;
    }
    if (!(answer = drift_check_to_json(res))) {
        status = http_reply_error(conn, 500, "out of memory");
        goto done;
    }
    status = http_reply_item(conn, 200, answer);
done:
    cJSON_Delete(answer);
    free(res);
    free(body);
    params_free(&p);
    return status;
}

/* The request readers (routes.h): the same tables the handlers above use. */
int route_drift_check_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                           char *err, size_t errlen)
{
    return routes_read_fields(DRIFT_FIELDS, DRIFT_FIELD_COUNT, qs, qslen, body, bodylen, err,
                              errlen);
}
