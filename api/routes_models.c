/* routes_models.c - the model version endpoints: GET /api/v1/models (list,
 * filtered by machine and model type, newest first, without artifacts),
 * GET /api/v1/models/{id} (one version with its artifact) and
 * POST /api/v1/models/{id}/activate (deploy one version; rollback is
 * activating an older one).
 *
 * Versions are written by the workers; this file only reads them and flips
 * is_active. PostgreSQL builds the JSON of each row, so column types
 * (timestamps, jsonb) come out exactly as stored. */
#include "http.h"
#include "params.h"
#include "routes.h"
#include "server.h"
#include "../common/error.h"
#include "../common/log.h"
#include "../common/model_versions.h"
#include "../common/pg.h"
#include "../common/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODELS_LIMIT_DFLT 100
#define MODELS_LIMIT_MAX  1000

static const char *const MODEL_TYPES[] = {"baseline", "anomaly", "forecast_arima", "probe", NULL};

static const struct param_spec LIST_FIELDS[] = {
    {.name = "machine_id", .type = PARAM_UUID},
    {.name = "model_type", .type = PARAM_ENUM, .choices = MODEL_TYPES},
    {.name = "limit", .type = PARAM_INT, .min = 1, .max = MODELS_LIMIT_MAX},
};

/* The columns every answer shows; the artifact is added for one version. */
#define VERSION_JSON                                                                               \
    "json_build_object('id', v.id, 'machine_id', v.machine_id, 'model_type', v.model_type, "       \
    "'version', v.version, 'created_at', v.created_at, 'is_active', v.is_active, "                 \
    "'activated_at', v.activated_at, 'training_job_id', v.training_job_id, 'metrics', v.metrics, " \
    "'notes', v.notes)"

/* Sends the JSON text PostgreSQL built, parsed and wrapped as {"models": ...}
 * when wrap is set. */
static int reply_pg_json(struct mg_connection *conn, const char *text, int wrap)
{
    cJSON *item = cJSON_Parse(text), *obj = NULL;
    int status;
    if (!item)
        return http_reply_error(conn, 500, "out of memory");
    if (!wrap) {
        status = http_reply_item(conn, 200, item);
        cJSON_Delete(item);
        return status;
    }
    obj = cJSON_CreateObject();
    if (!obj) {
        cJSON_Delete(item);
        return http_reply_error(conn, 500, "out of memory");
    }
    cJSON_AddItemToObject(obj, "models", item);
    status = http_reply_item(conn, 200, obj);
    cJSON_Delete(obj);
    return status;
}

int route_models_list(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct params p;
    char err[512], limit_text[16];
    PGresult *res = NULL;
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
    const struct param_value *limit = params_get(&p, "limit");
    snprintf(limit_text, sizeof limit_text, "%lld", limit ? limit->num : MODELS_LIMIT_DFLT);
    const char *values[] = {params_text(&p, "machine_id", NULL),
                            params_text(&p, "model_type", NULL), limit_text};
    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg) {
        status = http_reply_error(conn, 503, "postgresql unavailable: %s", err);
        goto done;
    }
    /* An absent filter is a NULL parameter that matches every row. */
    res = pg_exec(pg, PGRES_TUPLES_OK,
                  "SELECT COALESCE(json_agg(row ORDER BY ord), '[]')::text FROM ("
                  "SELECT " VERSION_JSON " AS row, "
                  "row_number() OVER (ORDER BY v.created_at DESC, v.version DESC, v.id DESC) "
                  "AS ord FROM model_versions v "
                  "WHERE ($1::uuid IS NULL OR v.machine_id = $1::uuid) "
                  "AND ($2::text IS NULL OR v.model_type = $2::text) "
                  "ORDER BY ord LIMIT $3::int) s",
                  3, values, err, sizeof err);
    if (!res) {
        status = http_reply_db_error(conn, pg, err);
        goto done;
    }
    status = reply_pg_json(conn, PQgetvalue(res, 0, 0), 1);
done:
    PQclear(res);
    params_free(&p);
    return status;
}

static int model_detail(struct mg_connection *conn, const char *id)
{
    char err[512];
    const char *values[] = {id};
    int status;
    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg)
        return http_reply_error(conn, 503, "postgresql unavailable: %s", err);
    PGresult *res = pg_exec(pg, PGRES_TUPLES_OK,
                            "SELECT (jsonb_build_object('artifact', v.artifact) || "
                            "(" VERSION_JSON ")::jsonb)::text "
                            "FROM model_versions v WHERE v.id = $1::uuid",
                            1, values, err, sizeof err);
    if (!res)
        return http_reply_db_error(conn, pg, err);
    if (PQntuples(res) == 0)
        status = http_reply_error(conn, 404, "model version %s not found", id);
    else
        status = reply_pg_json(conn, PQgetvalue(res, 0, 0), 0);
    PQclear(res);
    return status;
}

/* Activates id in its own transaction (model_versions.h). */
static int activate(PGconn *pg, const char *id, char *version, size_t vlen, char *prev, size_t plen,
                    char *err, size_t errlen)
{
    int rc;
    if ((rc = pg_command(pg, "BEGIN", err, errlen)) != ENMS_OK)
        return rc;
    rc = model_version_activate(pg, id, prev, plen, version, vlen, err, errlen);
    if (rc == ENMS_OK)
        rc = pg_command(pg, "COMMIT", err, errlen);
    if (rc != ENMS_OK) {
        char ignored[128];
        pg_command(pg, "ROLLBACK", ignored, sizeof ignored);
    }
    return rc;
}

static int model_activate(struct mg_connection *conn, const char *id)
{
    char err[512], version[16], prev[40];
    cJSON *obj = NULL;
    int status;
    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg)
        return http_reply_error(conn, 503, "postgresql unavailable: %s", err);
    int rc = activate(pg, id, version, sizeof version, prev, sizeof prev, err, sizeof err);
    if (rc == ENMS_ENOTFOUND)
        return http_reply_error(conn, 404, "%s", err);
    if (rc != ENMS_OK)
        return http_reply_db_error(conn, pg, err);
    log_event(LOG_INFO, NULL, "model version %s activated (previous %s)", id,
              prev[0] ? prev : "none");
    obj = cJSON_CreateObject();
    if (!obj)
        return http_reply_error(conn, 500, "out of memory");
    cJSON_AddStringToObject(obj, "id", id);
    cJSON_AddNumberToObject(obj, "version", atoi(version));
    cJSON_AddBoolToObject(obj, "is_active", 1);
    if (prev[0])
        cJSON_AddStringToObject(obj, "previous_active_id", prev);
    else
        cJSON_AddNullToObject(obj, "previous_active_id");
    status = http_reply_item(conn, 200, obj);
    cJSON_Delete(obj);
    return status;
}

/* /api/v1/models/{id} and /api/v1/models/{id}/activate. */
int route_models_item(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    static const char base[] = "/api/v1/models/";
    char model_id[37];
    int has_action = 0;
    int status = http_item_path(conn, base, "activate", "id", model_id, &has_action);

    if (status != 0)
        return status;
    if (has_action) {
        if (!http_method_is(conn, "POST"))
            return http_reply_error(conn, 405, "use POST");
        return model_activate(conn, model_id);
    }
    if (!http_method_is(conn, "GET"))
        return http_reply_error(conn, 405, "use GET");
    return model_detail(conn, model_id);
}

/* The request readers (routes.h): the same tables the handlers above use. */
int route_models_list_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                           char *err, size_t errlen)
{
    (void)body; /* a GET: the handler reads no body */
    (void)bodylen;
    return routes_read_fields(LIST_FIELDS, sizeof LIST_FIELDS / sizeof LIST_FIELDS[0], qs, qslen,
                              NULL, 0, err, errlen);
}
