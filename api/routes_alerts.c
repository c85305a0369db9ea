/* routes_alerts.c - the open model alerts and what a person does with them:
 * GET /api/v1/model-performance/alerts/active (the view
 * v_unresolved_model_alerts, filtered, most severe then newest first),
 * POST /api/v1/alerts/{id}/acknowledge (someone is on it; it stays open) and
 * POST /api/v1/alerts/{id}/resolve (closes it with an action and notes).
 *
 * Alerts are raised elsewhere (common/alerts.c, common/jobs.c); this file
 * never creates one. Each change is one conditional UPDATE, so two people
 * resolving the same alert cannot both succeed. */
#include "http.h"
#include "params.h"
#include "routes.h"
#include "server.h"
#include "../common/error.h"
#include "../common/log.h"
#include "../common/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALERTS_LIMIT_DFLT 100
#define ALERTS_LIMIT_MAX  1000
#define NOTES_MAX         2000
#define BY_MAX            200

static const char *const MODEL_TYPES[] = {"baseline", "anomaly", "forecast_arima", "probe", NULL};
static const char *const SEVERITIES[] = {"normal", "warning", "critical", NULL};
static const char *const ACTIONS[] = {"retrained_model", "acknowledged", "false_positive",
                                      "rolled_back",     "resolved",     NULL};

static const struct param_spec LIST_FIELDS[] = {
    {.name = "machine_id", .type = PARAM_UUID},
    {.name = "model_type", .type = PARAM_ENUM, .choices = MODEL_TYPES},
    {.name = "severity", .type = PARAM_ENUM, .choices = SEVERITIES},
    {.name = "alert_type", .type = PARAM_STRING, .max_len = 64},
    {.name = "limit", .type = PARAM_INT, .min = 1, .max = ALERTS_LIMIT_MAX},
};

static const struct param_spec ACK_FIELDS[] = {
    {.name = "acknowledged_by", .type = PARAM_STRING, .max_len = BY_MAX},
    {.name = "notes", .type = PARAM_STRING, .max_len = NOTES_MAX},
};

static const struct param_spec RESOLVE_FIELDS[] = {
    {.name = "action", .type = PARAM_ENUM, .choices = ACTIONS},
    {.name = "notes", .type = PARAM_STRING, .max_len = NOTES_MAX},
    {.name = "resolved_by", .type = PARAM_STRING, .max_len = BY_MAX},
};

/* An alert as the list shows it: the seed's fields first, then what was
 * added (a is model_alerts, m machines; hours_open computed now). */
#define ALERT_JSON                                                                                 \
    "json_build_object('id', a.id, 'alert_type', a.alert_type, 'severity', a.severity, "           \
    "'model_type', a.model_type, 'machine_id', a.machine_id, 'machine_name', m.name, "             \
    "'alert_message', a.alert_message, 'alert_timestamp', a.alert_timestamp, "                     \
    "'is_resolved', a.is_resolved, 'auto_action_taken', a.auto_action_taken, "                     \
    "'auto_action_type', a.auto_action_type, 'auto_action_result', a.auto_action_result, "         \
    "'acknowledged_at', a.acknowledged_at, 'acknowledged_by', a.acknowledged_by, "                 \
    "'alert_details', a.alert_details, 'model_id', a.model_id, "                                   \
    "'model_version', a.model_version, 'current_metric_value', a.current_metric_value, "           \
    "'threshold_value', a.threshold_value, 'baseline_metric_value', a.baseline_metric_value, "     \
    "'hours_open', (extract(epoch FROM now() - a.alert_timestamp) / 3600.0)::double precision, "   \
    "'resolved_at', a.resolved_at, 'resolution_action', a.resolution_action, "                     \
    "'resolved_by', a.resolved_by, 'resolution_notes', a.resolution_notes)"

/* The answer is a bare JSON array, as the seed's clients read it. */
int route_alerts_active(struct mg_connection *conn, void *cbdata)
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
    snprintf(limit_text, sizeof limit_text, "%lld", limit ? limit->num : ALERTS_LIMIT_DFLT);
    const char *machine_id = params_text(&p, "machine_id", NULL);
    const char *values[] = {machine_id, params_text(&p, "model_type", NULL),
                            params_text(&p, "severity", NULL), params_text(&p, "alert_type", NULL),
                            limit_text};
    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg) {
        status = http_reply_error(conn, 503, "postgresql unavailable: %s", err);
        goto done;
    }
    /* The view decides what "open" is and exposes severity_rank for the
     * order; the acknowledgement columns come from the table itself. */
    res = pg_exec(pg, PGRES_TUPLES_OK,
                  "SELECT ($1::uuid IS NULL OR EXISTS (SELECT 1 FROM machines "
                  "WHERE id = $1::uuid)), "
                  "(SELECT COALESCE(json_agg(row ORDER BY ord), '[]') FROM ("
                  "SELECT " ALERT_JSON " AS row, row_number() OVER (ORDER BY v.severity_rank, "
                  "v.alert_timestamp DESC, v.id) AS ord "
                  "FROM v_unresolved_model_alerts v JOIN model_alerts a ON a.id = v.id "
                  "LEFT JOIN machines m ON m.id = a.machine_id "
                  "WHERE ($1::uuid IS NULL OR v.machine_id = $1::uuid) "
                  "AND ($2::text IS NULL OR v.model_type = $2::text) "
                  "AND ($3::text IS NULL OR v.severity = $3::text) "
                  "AND ($4::text IS NULL OR v.alert_type = $4::text) "
                  "ORDER BY ord LIMIT $5::int) s)::text",
                  5, values, err, sizeof err);
    if (!res) {
        status = http_reply_db_error(conn, pg, err);
        goto done;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
        status = http_reply_error(conn, 404, "machine %s not found", machine_id);
    else
        status = http_reply_json(conn, 200, PQgetvalue(res, 0, 1));
done:
    PQclear(res);
    params_free(&p);
    return status;
}

/* The two changes an open alert can take. Both leave a resolved alert
 * alone: the first column of the answer is the changed alert's JSON (NULL
 * when nothing changed), the second whether the alert exists at all. */
static const char ACK_SQL[] =
    "WITH u AS (UPDATE model_alerts SET acknowledged_at = now(), acknowledged_by = $2::text, "
    "alert_details = alert_details || jsonb_build_object('acknowledgement', jsonb_build_object("
    "'by', $2::text, 'at', now(), 'notes', $3::text)), updated_at = now() "
    "WHERE id = $1::uuid AND NOT is_resolved RETURNING *) "
    "SELECT (SELECT " ALERT_JSON "::text FROM u a LEFT JOIN machines m ON m.id = a.machine_id), "
    "EXISTS (SELECT 1 FROM model_alerts WHERE id = $1::uuid)";

static const char RESOLVE_SQL[] =
    "WITH u AS (UPDATE model_alerts SET is_resolved = true, resolved_at = now(), "
    "resolution_action = $2::text, resolved_by = $3::text, resolution_notes = $4::text, "
    "updated_at = now() WHERE id = $1::uuid AND NOT is_resolved RETURNING *) "
    "SELECT (SELECT " ALERT_JSON "::text FROM u a LEFT JOIN machines m ON m.id = a.machine_id), "
    "EXISTS (SELECT 1 FROM model_alerts WHERE id = $1::uuid)";

static int alert_change(struct mg_connection *conn, const char *id, int resolve)
{
    const struct api_server *srv = api_server_of(conn);
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct params p;
    char *body = NULL;
    size_t bodylen = 0;
    char err[512];
    PGresult *res = NULL;
    int status;

    if (resolve)
        params_init(&p, RESOLVE_FIELDS, sizeof RESOLVE_FIELDS / sizeof RESOLVE_FIELDS[0], NULL);
    else
        params_init(&p, ACK_FIELDS, sizeof ACK_FIELDS / sizeof ACK_FIELDS[0], NULL);
    int rc = http_read_body(conn, srv->cfg->http_max_body, &body, &bodylen);
    if (rc < 0)
        return -rc;
    if (params_read(&p, ri->query_string, ri->query_string ? strlen(ri->query_string) : 0, body,
                    bodylen, err, sizeof err) != ENMS_OK) {
        status = http_reply_error(conn, 400, "%s", err);
        goto done;
    }
    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg) {
        status = http_reply_error(conn, 503, "postgresql unavailable: %s", err);
        goto done;
    }
    if (resolve) {
        const char *values[] = {id, params_text(&p, "action", "resolved"),
                                params_text(&p, "resolved_by", "api"),
                                params_text(&p, "notes", NULL)};
        res = pg_exec(pg, PGRES_TUPLES_OK, RESOLVE_SQL, 4, values, err, sizeof err);
    } else {
        const char *values[] = {id, params_text(&p, "acknowledged_by", "api"),
                                params_text(&p, "notes", NULL)};
        res = pg_exec(pg, PGRES_TUPLES_OK, ACK_SQL, 3, values, err, sizeof err);
    }
    if (!res) {
        status = http_reply_db_error(conn, pg, err);
        goto done;
    }
    if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
        status = http_reply_error(conn, 404, "alert %s not found", id);
        goto done;
    }
    if (PQgetisnull(res, 0, 0)) {
        status = http_reply_error(conn, 409, "alert %s is already resolved", id);
        goto done;
    }
    log_event(LOG_INFO, NULL, "alert %s %s", id, resolve ? "resolved" : "acknowledged");
    status = http_reply_json(conn, 200, PQgetvalue(res, 0, 0));
done:
    PQclear(res);
    params_free(&p);
    free(body);
    return status;
}

/* /api/v1/alerts/{id}/acknowledge and /api/v1/alerts/{id}/resolve. */
int route_alerts_item(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    static const char base[] = "/api/v1/alerts/";
    const char *uri = mg_get_request_info(conn)->local_uri;
    const char *slash = strchr(uri + strlen(base), '/');
    const char *action = slash && strcmp(slash + 1, "resolve") == 0 ? "resolve" : "acknowledge";
    char id[37];
    int has_action = 0;
    int status = http_item_path(conn, base, action, "id", id, &has_action);

    if (status != 0)
        return status;
    if (!has_action)
        return http_reply_error(conn, 404, "no such endpoint: %s %s",
                                mg_get_request_info(conn)->request_method, uri);
    if (!http_method_is(conn, "POST"))
        return http_reply_error(conn, 405, "use POST");
    return alert_change(conn, id, strcmp(action, "resolve") == 0);
}

/* The request readers (routes.h): the same tables the handlers above use. */
int route_alerts_active_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                             char *err, size_t errlen)
{
    (void)body; /* a GET: the handler reads no body */
    (void)bodylen;
    return routes_read_fields(LIST_FIELDS, sizeof LIST_FIELDS / sizeof LIST_FIELDS[0], qs, qslen,
                              NULL, 0, err, errlen);
}

int route_alerts_ack_read(const char *qs, size_t qslen, const char *body, size_t bodylen, char *err,
                          size_t errlen)
{
    return routes_read_fields(ACK_FIELDS, sizeof ACK_FIELDS / sizeof ACK_FIELDS[0], qs, qslen, body,
                              bodylen, err, errlen);
}

int route_alerts_resolve_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                              char *err, size_t errlen)
{
    return routes_read_fields(RESOLVE_FIELDS, sizeof RESOLVE_FIELDS / sizeof RESOLVE_FIELDS[0], qs,
                              qslen, body, bodylen, err, errlen);
}
