/* routes_anomalies.c - the hours the active anomaly model flagged:
 * GET /api/v1/anomalies (filtered, paged, newest first) and
 * POST /api/v1/anomalies/{id}/label (an energy manager's verdict, which
 * later evaluations count as a true or false positive).
 *
 * Rows are written by the worker's score jobs (worker/anomaly_scoring.c);
 * this file only reads them and sets the label columns. PostgreSQL builds
 * each row's JSON, so timestamps and jsonb come out as stored. */
#include "http.h"
#include "params.h"
#include "routes.h"
#include "server.h"
#include "../common/error.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANOMALIES_LIMIT_DFLT 100
#define ANOMALIES_LIMIT_MAX  1000
#define ANOMALIES_OFFSET_MAX 1000000
#define NOTES_MAX            2000
#define BY_MAX               200

static const char *const SEVERITIES[] = {"warning", "critical", NULL};
/* "unlabelled" selects the rows nobody has judged yet. */
static const char *const LABEL_FILTERS[] = {"confirmed", "false_positive", "unlabelled", NULL};
static const char *const LABELS[] = {"confirmed", "false_positive", NULL};

static const struct param_spec LIST_FIELDS[] = {
    {.name = "machine_id", .type = PARAM_UUID},
    {.name = "since", .type = PARAM_TIME},
    {.name = "until", .type = PARAM_TIME},
    {.name = "severity", .type = PARAM_ENUM, .choices = SEVERITIES},
    {.name = "label", .type = PARAM_ENUM, .choices = LABEL_FILTERS},
    {.name = "limit", .type = PARAM_INT, .min = 1, .max = ANOMALIES_LIMIT_MAX},
    {.name = "offset", .type = PARAM_INT, .min = 0, .max = ANOMALIES_OFFSET_MAX},
};

static const struct param_spec LABEL_FIELDS[] = {
    {.name = "label", .type = PARAM_ENUM, .choices = LABELS},
    {.name = "notes", .type = PARAM_STRING, .max_len = NOTES_MAX},
    {.name = "labelled_by", .type = PARAM_STRING, .max_len = BY_MAX},
};

/* One anomaly as every answer shows it (a is anomalies, m machines). */
#define ANOMALY_JSON                                                                               \
    "json_build_object('id', a.id, 'machine_id', a.machine_id, 'machine_name', m.name, "           \
    "'ts', a.ts, 'score', a.score, 'severity', a.severity, 'detector', a.detector, "               \
    "'energy_kwh', a.energy_kwh, 'expected_kwh', a.expected_kwh, 'features', a.features, "         \
    "'model_version_id', a.model_version_id, 'model_version', a.model_version, "                   \
    "'label', a.label, 'labelled_at', a.labelled_at, 'labelled_by', a.labelled_by, "               \
    "'notes', a.notes, 'created_at', a.created_at, 'updated_at', a.updated_at)"

int route_anomalies_list(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct params p;
    char err[512], limit_text[16], offset_text[16];
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
    const struct param_value *since = params_get(&p, "since");
    const struct param_value *until = params_get(&p, "until");
    if (since && until && since->num > until->num) {
        status = http_reply_error(conn, 400, "until: must not be before since");
        goto done;
    }
    const struct param_value *limit = params_get(&p, "limit");
    const struct param_value *offset = params_get(&p, "offset");
    snprintf(limit_text, sizeof limit_text, "%lld", limit ? limit->num : ANOMALIES_LIMIT_DFLT);
    snprintf(offset_text, sizeof offset_text, "%lld", offset ? offset->num : 0LL);
    const char *machine_id = params_text(&p, "machine_id", NULL);
    const char *values[] = {machine_id,
                            params_text(&p, "since", NULL),
                            params_text(&p, "until", NULL),
                            params_text(&p, "severity", NULL),
                            params_text(&p, "label", NULL),
                            limit_text,
                            offset_text};
    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg) {
        status = http_reply_error(conn, 503, "postgresql unavailable: %s", err);
        goto done;
    }
    /* An absent filter is a NULL parameter that matches every row; the
     * first column says whether the machine asked for exists. until is
     * inclusive, like since. */
    res = pg_exec(pg, PGRES_TUPLES_OK,
                  "WITH f AS (SELECT a.* FROM anomalies a "
                  "WHERE ($1::uuid IS NULL OR a.machine_id = $1::uuid) "
                  "AND ($2::timestamptz IS NULL OR a.ts >= $2::timestamptz) "
                  "AND ($3::timestamptz IS NULL OR a.ts <= $3::timestamptz) "
                  "AND ($4::text IS NULL OR a.severity = $4::text) "
                  "AND ($5::text IS NULL OR ($5::text = 'unlabelled' AND a.label IS NULL) "
                  "OR a.label = $5::text)), "
                  "page AS (SELECT * FROM f ORDER BY ts DESC, machine_id, id "
                  "LIMIT $6::int OFFSET $7::int) "
                  "SELECT ($1::uuid IS NULL OR EXISTS (SELECT 1 FROM machines "
                  "WHERE id = $1::uuid)), json_build_object("
                  "'anomalies', COALESCE((SELECT json_agg(" ANOMALY_JSON
                  " ORDER BY a.ts DESC, a.machine_id, a.id) "
                  "FROM page a JOIN machines m ON m.id = a.machine_id), '[]'), "
                  "'total', (SELECT count(*) FROM f), 'limit', $6::int, 'offset', $7::int)::text",
                  7, values, err, sizeof err);
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

/* True when the JSON object body names "label" with null, which clears the
 * label (params.h reads null as absent, so it cannot tell us). */
static int body_clears_label(const char *body, size_t len)
{
    char err[64];
    cJSON *doc = body ? json_parse(body, len, err, sizeof err) : NULL;
    int clears = cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(doc, "label"));
    cJSON_Delete(doc);
    return clears;
}

/* Reads the label request (query string qs, may be NULL, and body) into p;
 * the label is required, or null to clear it. Returns 0 or 400 with err set. */
static int label_read(struct params *p, const char *qs, size_t qslen, const char *body,
                      size_t bodylen, char *err, size_t errlen)
{
    if (params_read(p, qs, qslen, body, bodylen, err, errlen) != ENMS_OK)
        return 400;
    if (!params_text(p, "label", NULL) && !body_clears_label(body, bodylen)) {
        snprintf(err, errlen, "label: required (confirmed, false_positive, or null to clear)");
        return 400;
    }
    return 0;
}

static int anomaly_label(struct mg_connection *conn, const char *id)
{
    const struct api_server *srv = api_server_of(conn);
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct params p;
    char *body = NULL;
    size_t bodylen = 0;
    char err[512];
    PGresult *res = NULL;
    int status;

    params_init(&p, LABEL_FIELDS, sizeof LABEL_FIELDS / sizeof LABEL_FIELDS[0], NULL);
    int rc = http_read_body(conn, srv->cfg->http_max_body, &body, &bodylen);
    if (rc < 0)
        return -rc;
    if (label_read(&p, ri->query_string, ri->query_string ? strlen(ri->query_string) : 0, body,
                   bodylen, err, sizeof err) != 0) {
        status = http_reply_error(conn, 400, "%s", err);
        goto done;
    }
    const char *label = params_text(&p, "label", NULL);
    const char *values[] = {id, label, params_text(&p, "notes", NULL),
                            params_text(&p, "labelled_by", "api")};
    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg) {
        status = http_reply_error(conn, 503, "postgresql unavailable: %s", err);
        goto done;
    }
    /* labelled_at/by record the latest verdict, a clearing one included;
     * notes absent keeps the stored notes. */
    res = pg_exec(pg, PGRES_TUPLES_OK,
                  "WITH u AS (UPDATE anomalies SET label = $2::text, labelled_at = now(), "
                  "labelled_by = $4::text, notes = COALESCE($3::text, notes), updated_at = now() "
                  "WHERE id = $1::uuid RETURNING *) "
                  "SELECT " ANOMALY_JSON "::text FROM u a JOIN machines m ON m.id = a.machine_id",
                  4, values, err, sizeof err);
    if (!res) {
        status = http_reply_db_error(conn, pg, err);
        goto done;
    }
    if (PQntuples(res) == 0) {
        status = http_reply_error(conn, 404, "anomaly %s not found", id);
        goto done;
    }
    log_event(LOG_INFO, NULL, "anomaly %s labelled %s by %s", id, label ? label : "(cleared)",
              values[3]);
    status = http_reply_json(conn, 200, PQgetvalue(res, 0, 0));
done:
    PQclear(res);
    params_free(&p);
    free(body);
    return status;
}

/* /api/v1/anomalies/{id}/label; the bare item path has no operation. */
int route_anomalies_item(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    static const char base[] = "/api/v1/anomalies/";
    char id[37];
    int has_action = 0;
    int status = http_item_path(conn, base, "label", "id", id, &has_action);

    if (status != 0)
        return status;
    if (!has_action)
        return http_reply_error(conn, 404, "no such endpoint: %s %s",
                                mg_get_request_info(conn)->request_method,
                                mg_get_request_info(conn)->local_uri);
    if (!http_method_is(conn, "POST"))
        return http_reply_error(conn, 405, "use POST");
    return anomaly_label(conn, id);
}

/* The request readers (routes.h): the same tables the handlers above use. */
int route_anomalies_list_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                              char *err, size_t errlen)
{
    (void)body; /* a GET: the handler reads no body */
    (void)bodylen;
    return routes_read_fields(LIST_FIELDS, sizeof LIST_FIELDS / sizeof LIST_FIELDS[0], qs, qslen,
                              NULL, 0, err, errlen);
}

int route_anomalies_label_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                               char *err, size_t errlen)
{
    struct params p;
    params_init(&p, LABEL_FIELDS, sizeof LABEL_FIELDS / sizeof LABEL_FIELDS[0], NULL);
    int status = label_read(&p, qs, qslen, body, bodylen, err, errlen);
    params_free(&p);
    return status;
}
