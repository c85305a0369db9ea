/* routes_abtest.c - the A/B test endpoints: POST
 * /api/v1/model-performance/ab-test/start, GET .../ab-test/{id}/results and
 * POST .../ab-test/{id}/decide.
 *
 * This file reads and checks the request fields and maps outcomes to HTTP
 * statuses; the tests themselves (rows, paired statistics, activation of a
 * winner) live in common/ab_tests.c, which housekeeping shares. */
#include "http.h"
#include "params.h"
#include "routes.h"
#include "server.h"
#include "../common/ab_tests.h"
#include "../common/error.h"
#include "../common/json.h"
#include "../common/log.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NUMBER_TEXT_MAX 32 /* characters of a number given as text */

static const char *const AB_MODEL_TYPES[] = {"baseline", "anomaly", "forecast_arima", NULL};
static const char *const DECISIONS[] = {"promote_a", "promote_b", "no_winner", "manual_review",
                                        NULL};

/* The numbers are read as text and parsed here: params.h has no real type,
 * and a JSON number is turned into text first (see numbers_as_text). */
static const struct param_spec START_FIELDS[] = {
    {.name = "test_name", .type = PARAM_STRING, .required = 1, .max_len = AB_TEST_NAME_MAX},
    {.name = "model_type", .type = PARAM_ENUM, .required = 1, .choices = AB_MODEL_TYPES},
    {.name = "machine_id", .type = PARAM_UUID, .required = 1},
    {.name = "model_a_id", .type = PARAM_UUID, .required = 1},
    {.name = "model_b_id", .type = PARAM_UUID, .required = 1},
    {.name = "duration_hours", .type = PARAM_STRING, .max_len = NUMBER_TEXT_MAX},
    {.name = "traffic_split", .type = PARAM_STRING, .max_len = NUMBER_TEXT_MAX},
    {.name = "traffic_split_a", .type = PARAM_STRING, .max_len = NUMBER_TEXT_MAX},
    {.name = "confidence_level", .type = PARAM_STRING, .max_len = NUMBER_TEXT_MAX},
};
static const char *const NUMBER_FIELDS[] = {"duration_hours", "traffic_split", "traffic_split_a",
                                            "confidence_level"};

static const struct param_spec DECIDE_FIELDS[] = {
    {.name = "decision", .type = PARAM_ENUM, .required = 1, .choices = DECISIONS},
    {.name = "notes", .type = PARAM_STRING, .max_len = AB_NOTES_MAX},
    {.name = "decided_by", .type = PARAM_STRING, .max_len = AB_DECIDED_BY_MAX},
};

static int reply_outcome(struct mg_connection *conn, PGconn *pg, int rc, const char *err)
{
    switch (rc) {
    case ENMS_EINVAL:
        return http_reply_error(conn, 400, "%s", err);
    case ENMS_ENOTFOUND:
        return http_reply_error(conn, 404, "%s", err);
    case ENMS_ECONFLICT:
        return http_reply_error(conn, 409, "%s", err);
    case ENMS_ENOMEM:
        return http_reply_error(conn, 500, "out of memory");
    default:
        return http_reply_db_error(conn, pg, err);
    }
}

/* Old clients send the numbers as JSON numbers: turns every number-valued
 * member named in NUMBER_FIELDS into its text, so that params.c can read
 * the body with its usual rules. Returns malloc'd JSON text (NULL when out
 * of memory), or a copy of the body unchanged when it is not a JSON object
 * (params.c then explains what is wrong with it). */
static char *numbers_as_text(const char *body, size_t len)
{
    char jerr[64], num[40];
    char *text = NULL;
    cJSON *root = json_parse(body, len, jerr, sizeof jerr);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        text = malloc(len + 1);
        if (text) {
            memcpy(text, body, len);
            text[len] = '\0';
        }
        return text;
    }
    for (cJSON *item = root->child; item; item = item->next) {
        if (!item->string || !cJSON_IsNumber(item))
            continue;
        for (size_t i = 0; i < sizeof NUMBER_FIELDS / sizeof NUMBER_FIELDS[0]; i++) {
            if (strcmp(item->string, NUMBER_FIELDS[i]) != 0)
                continue;
            snprintf(num, sizeof num, "%.17g", item->valuedouble);
            /* Turned into a string in place, keeping its key and position;
             * the text is allocated by cJSON so that cJSON_Delete frees it. */
            cJSON *s = cJSON_CreateString(num);
            if (!s)
                goto done;
            item->type = cJSON_String;
            item->valuestring = s->valuestring;
            s->valuestring = NULL;
            cJSON_Delete(s);
            break;
        }
    }
    char *printed = cJSON_PrintUnformatted(root);
    text = printed ? strdup(printed) : NULL;
    cJSON_free(printed);
done:
    cJSON_Delete(root);
    return text;
}

/* Reads number field name into *out (dflt when absent). Only plain decimal
 * notation: no hex, no inf or nan, nothing after the number. */
static int number_field(const struct params *p, const char *name, double dflt, double *out,
                        char *err, size_t errlen)
{
    const char *text = params_text(p, name, NULL);
    char *end = NULL;
    if (!text) {
        *out = dflt;
        return ENMS_OK;
    }
    for (const char *c = text; *c; c++) {
        if (!strchr("0123456789.eE+-", *c))
            return enms_fail(err, errlen, ENMS_EINVAL, "%s: must be a finite decimal number", name);
    }
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno != 0 || !isfinite(v))
        return enms_fail(err, errlen, ENMS_EINVAL, "%s: must be a finite decimal number", name);
    *out = v;
    return ENMS_OK;
}

static int reply_conflict(struct mg_connection *conn, const char *detail, const char *existing)
{
    cJSON *obj = cJSON_CreateObject();
    if (!obj)
        return http_reply_error(conn, 500, "out of memory");
    cJSON_AddStringToObject(obj, "detail", detail);
    cJSON_AddStringToObject(obj, "existing_test_id", existing);
    int status = http_reply_item(conn, 409, obj);
    cJSON_Delete(obj);
    return status;
}

/* Reads the start request (query string qs, may be NULL, and body, may be
 * NULL) into p and *in, whose strings point into p. Returns 0, or the status
 * to answer (400; 500 when out of memory) with err set. */
static int start_read(struct params *p, const char *qs, size_t qslen, const char *body,
                      size_t bodylen, struct ab_start_input *in, char *err, size_t errlen)
{
    char *rewritten = NULL;
    int status = 400;

    /* Checked before the rewrite, which would print a string cut at its NUL. */
    if (body && params_json_has_nul(body, bodylen)) {
        snprintf(err, errlen, "body: text must not contain NUL (\\u0000)");
        return 400;
    }
    if (body && !(rewritten = numbers_as_text(body, bodylen))) {
        snprintf(err, errlen, "out of memory");
        return 500;
    }
    if (params_read(p, qs, qslen, rewritten, rewritten ? strlen(rewritten) : 0, err, errlen) !=
        ENMS_OK)
        goto done;
    *in = (struct ab_start_input){.test_name = params_text(p, "test_name", NULL),
                                  .model_type = params_text(p, "model_type", NULL),
                                  .machine_id = params_text(p, "machine_id", NULL),
                                  .model_a_id = params_text(p, "model_a_id", NULL),
                                  .model_b_id = params_text(p, "model_b_id", NULL)};
    if (params_get(p, "traffic_split") && params_get(p, "traffic_split_a")) {
        snprintf(err, errlen, "traffic_split_a: give traffic_split or traffic_split_a, not both");
        goto done;
    }
    const char *split_name = params_get(p, "traffic_split_a") ? "traffic_split_a" : "traffic_split";
    if (number_field(p, "duration_hours", 24, &in->duration_hours, err, errlen) != ENMS_OK ||
        number_field(p, split_name, 0.5, &in->traffic_split_a, err, errlen) != ENMS_OK ||
        number_field(p, "confidence_level", 0.95, &in->confidence_level, err, errlen) != ENMS_OK)
        goto done;
    if (in->test_name[0] == '\0') {
        snprintf(err, errlen, "test_name: must not be empty");
        goto done;
    }
    status = 0;
done:
    free(rewritten);
    return status;
}

int route_ab_start(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const struct enms_config *cfg = api_server_of(conn)->cfg;
    struct params p;
    struct ab_start_input in;
    char *body = NULL;
    size_t bodylen = 0;
    char err[512], existing[40];
    cJSON *out = NULL;
    int status;

    params_init(&p, START_FIELDS, sizeof START_FIELDS / sizeof START_FIELDS[0], NULL);
    if (!http_method_is(conn, "POST"))
        return http_reply_error(conn, 405, "use POST");
    int rc = http_read_body(conn, cfg->http_max_body, &body, &bodylen);
    if (rc < 0)
        return -rc;
    if ((status = start_read(&p, ri->query_string, ri->query_string ? strlen(ri->query_string) : 0,
                             body, bodylen, &in, err, sizeof err)) != 0) {
        status = http_reply_error(conn, status, "%s", err);
        goto done;
    }
    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg) {
        status = http_reply_error(conn, 503, "postgresql unavailable: %s", err);
        goto done;
    }
    rc = ab_tests_start(pg, &in, &out, existing, err, sizeof err);
    if (rc == ENMS_ECONFLICT) {
        status = reply_conflict(conn, err, existing);
        goto done;
    }
    if (rc != ENMS_OK) {
        status = reply_outcome(conn, pg, rc, err);
        goto done;
    }
    log_event(LOG_INFO, NULL, "A/B test %s started: %s versions %s and %s of machine %s",
              cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(out, "test_id")), in.model_type,
              in.model_a_id, in.model_b_id, in.machine_id);
    status = http_reply_item(conn, 201, out);
done:
    cJSON_Delete(out);
    free(body);
    params_free(&p);
    return status;
}

static int ab_results(struct mg_connection *conn, const char *id)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct params p;
    char err[512];
    cJSON *out = NULL;
    int status;

    /* No fields: anything in the query string is refused. */
    params_init(&p, NULL, 0, NULL);
    if (params_read(&p, ri->query_string, ri->query_string ? strlen(ri->query_string) : 0, NULL, 0,
                    err, sizeof err) != ENMS_OK) {
        status = http_reply_error(conn, 400, "%s", err);
        goto done;
    }
    PGconn *pg = api_pg(conn, err, sizeof err);
    if (!pg) {
        status = http_reply_error(conn, 503, "postgresql unavailable: %s", err);
        goto done;
    }
    int rc = ab_tests_results(pg, id, &out, err, sizeof err);
    if (rc != ENMS_OK) {
        status = reply_outcome(conn, pg, rc, err);
        goto done;
    }
    status = http_reply_item(conn, 200, out);
done:
    cJSON_Delete(out);
    params_free(&p);
    return status;
}

static int ab_decide(struct mg_connection *conn, const char *id)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const struct enms_config *cfg = api_server_of(conn)->cfg;
    struct params p;
    char *body = NULL;
    size_t bodylen = 0;
    char err[512];
    cJSON *out = NULL;
    int status;

    params_init(&p, DECIDE_FIELDS, sizeof DECIDE_FIELDS / sizeof DECIDE_FIELDS[0], NULL);
    int rc = http_read_body(conn, cfg->http_max_body, &body, &bodylen);
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
    const char *decision = params_text(&p, "decision", NULL);
    rc = ab_tests_decide(pg, id, decision, params_text(&p, "notes", NULL),
                         params_text(&p, "decided_by", "api"), &out, err, sizeof err);
    if (rc != ENMS_OK) {
        status = reply_outcome(conn, pg, rc, err);
        goto done;
    }
    log_event(LOG_INFO, NULL, "A/B test %s decided: %s", id, decision);
    status = http_reply_item(conn, 200, out);
done:
    cJSON_Delete(out);
    free(body);
    params_free(&p);
    return status;
}

/* /ab-test/{id}/results (GET) and /ab-test/{id}/decide (POST). */
int route_ab_item(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    static const char base[] = "/api/v1/model-performance/ab-test/";
    const char *uri = mg_get_request_info(conn)->local_uri;
    const char *slash = strchr(uri + strlen(base), '/');
    /* http_item_path checks one action name: pick the one asked for. */
    const char *action = slash && strcmp(slash + 1, "decide") == 0 ? "decide" : "results";
    char id[37];
    int has_action = 0;
    int status = http_item_path(conn, base, action, "test_id", id, &has_action);

    if (status != 0)
        return status;
    if (!has_action)
        return http_reply_error(conn, 404, "no such endpoint: use %s%s/results or /decide", base,
                                id);
    if (strcmp(action, "decide") == 0) {
        if (!http_method_is(conn, "POST"))
            return http_reply_error(conn, 405, "use POST");
        return ab_decide(conn, id);
    }
    if (!http_method_is(conn, "GET"))
        return http_reply_error(conn, 405, "use GET");
    return ab_results(conn, id);
}

/* The request readers (routes.h): the same tables the handlers above use. */
int route_ab_decide_read(const char *qs, size_t qslen, const char *body, size_t bodylen, char *err,
                         size_t errlen)
{
    return routes_read_fields(DECIDE_FIELDS, sizeof DECIDE_FIELDS / sizeof DECIDE_FIELDS[0], qs,
                              qslen, body, bodylen, err, errlen);
}

int route_ab_results_read(const char *qs, size_t qslen, const char *body, size_t bodylen, char *err,
                          size_t errlen)
{
    (void)body; /* a GET: the handler reads no body */
    (void)bodylen;
    /* No fields: anything in the query string is refused, as in ab_results. */
    return routes_read_fields(NULL, 0, qs, qslen, NULL, 0, err, errlen);
}

int route_ab_start_read(const char *qs, size_t qslen, const char *body, size_t bodylen, char *err,
                        size_t errlen)
{
    struct params p;
    struct ab_start_input in;
    params_init(&p, START_FIELDS, sizeof START_FIELDS / sizeof START_FIELDS[0], NULL);
    int status = start_read(&p, qs, qslen, body, bodylen, &in, err, errlen);
    params_free(&p);
    return status;
}
