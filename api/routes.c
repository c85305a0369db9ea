/* routes.c - the API's route table: every operation (method and path, in
 * OpenAPI spelling) with the civetweb pattern and handler that serve it.
 *
 * civetweb matches handlers by prefix ("$" anchors the end); the catch-all
 * for /api/ goes last so that any path no group claims gets a JSON 404
 * instead of falling through to the static file server. The same table is
 * printed by `enms-api --routes`, and a test checks it against
 * web/openapi.json, so the document cannot forget an endpoint. */
#include <stdio.h>
#include <string.h>

#include "routes.h"
#include "http.h"
#include "params.h"
#include "../common/error.h"

struct route {
    const char *method;  /* as in OpenAPI, upper case */
    const char *path;    /* OpenAPI path template */
    const char *pattern; /* civetweb pattern of the handler serving it */
    mg_request_handler handler;
    route_reader read; /* its request reader (routes.h), for the fuzz target */
};

#define PERF "/api/v1/model-performance"

static const struct route ROUTES[] = {
    {"GET", "/healthz", "/healthz$", route_healthz, routes_read_nothing},
    {"GET", "/readyz", "/readyz$", route_readyz, routes_read_nothing},
    {"GET", "/metrics", "/metrics$", route_prometheus, routes_read_nothing},
    {"POST", PERF "/retrain/trigger", PERF "/retrain/trigger$", route_retrain_trigger,
     route_retrain_trigger_read},
    {"POST", PERF "/metrics/record", PERF "/metrics/record$", route_metrics_record,
     route_metrics_record_read},
    {"GET", PERF "/metrics/trend", PERF "/metrics/trend$", route_metrics_trend,
     route_metrics_trend_read},
    {"POST", PERF "/drift/check", PERF "/drift/check$", route_drift_check, route_drift_check_read},
    {"GET", PERF "/latest", PERF "/latest$", route_performance_latest,
     route_performance_latest_read},
    {"GET", PERF "/energy", PERF "/energy$", route_energy, route_energy_read},
    {"GET", PERF "/ab-tests", PERF "/ab-tests$", route_ab_tests_list, route_ab_tests_list_read},
    {"POST", PERF "/ab-test/start", PERF "/ab-test/start$", route_ab_start, route_ab_start_read},
    {"GET", PERF "/ab-test/{test_id}/results", PERF "/ab-test/", route_ab_item,
     route_ab_results_read},
    {"POST", PERF "/ab-test/{test_id}/decide", PERF "/ab-test/", route_ab_item,
     route_ab_decide_read},
    {"GET", PERF "/alerts/active", PERF "/alerts/active$", route_alerts_active,
     route_alerts_active_read},
    {"POST", "/api/v1/alerts/{alert_id}/acknowledge", "/api/v1/alerts/", route_alerts_item,
     route_alerts_ack_read},
    {"POST", "/api/v1/alerts/{alert_id}/resolve", "/api/v1/alerts/", route_alerts_item,
     route_alerts_resolve_read},
    {"GET", "/api/v1/jobs", "/api/v1/jobs$", route_jobs_list, route_jobs_list_read},
    {"GET", "/api/v1/jobs/{job_id}", "/api/v1/jobs/", route_jobs_item, routes_read_nothing},
    {"POST", "/api/v1/jobs/{job_id}/cancel", "/api/v1/jobs/", route_jobs_item, routes_read_nothing},
    {"POST", "/api/v1/jobs/{job_id}/requeue", "/api/v1/jobs/", route_jobs_item,
     routes_read_nothing},
    {"GET", "/api/v1/models", "/api/v1/models$", route_models_list, route_models_list_read},
    {"GET", "/api/v1/models/{model_id}", "/api/v1/models/", route_models_item, routes_read_nothing},
    {"POST", "/api/v1/models/{model_id}/activate", "/api/v1/models/", route_models_item,
     routes_read_nothing},
    {"GET", "/api/v1/queue", "/api/v1/queue$", route_queue, routes_read_nothing},
    {"GET", "/api/v1/queue/dead", "/api/v1/queue/dead$", route_queue_dead, routes_read_nothing},
    {"GET", "/api/v1/machines", "/api/v1/machines$", route_machines, routes_read_nothing},
    {"GET", "/api/v1/events", "/api/v1/events$", route_events, route_events_read},
    {"POST", "/api/v1/evaluate", "/api/v1/evaluate$", route_evaluate, route_evaluate_read},
    {"POST", "/api/v1/readings", "/api/v1/readings$", route_readings, route_readings_read},
    {"GET", "/api/v1/anomalies", "/api/v1/anomalies$", route_anomalies_list,
     route_anomalies_list_read},
    {"POST", "/api/v1/anomalies/{anomaly_id}/label", "/api/v1/anomalies/", route_anomalies_item,
     route_anomalies_label_read},
};
#define ROUTE_COUNT (sizeof ROUTES / sizeof ROUTES[0])

static int route_api_not_found(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    return http_reply_error(conn, 404, "no such endpoint: %s %s",
                            mg_get_request_info(conn)->request_method,
                            mg_get_request_info(conn)->local_uri);
}

void routes_register(struct mg_context *ctx, void *server)
{
    for (size_t i = 0; i < ROUTE_COUNT; i++) {
        /* Several operations share one handler pattern; install it once. */
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(ROUTES[j].pattern, ROUTES[i].pattern) == 0;
        if (!seen)
            mg_set_request_handler(ctx, ROUTES[i].pattern, ROUTES[i].handler, server);
    }
    mg_set_request_handler(ctx, "/api$", route_api_not_found, server);
    mg_set_request_handler(ctx, "/api/", route_api_not_found, server);
}

void routes_print(FILE *out)
{
    for (size_t i = 0; i < ROUTE_COUNT; i++)
        fprintf(out, "%s %s\n", ROUTES[i].method, ROUTES[i].path);
}

/* Compares one path against an OpenAPI template segment by segment. */
static int path_matches(const char *tmpl, const char *uri)
{
    while (*tmpl && *uri) {
        if (*tmpl == '{') {
            const char *close = strchr(tmpl, '}');
            if (!close || *uri == '/')
                return 0;
            tmpl = close + 1;
            while (*uri && *uri != '/')
                uri++;
            continue;
        }
        if (*tmpl != *uri)
            return 0;
        tmpl++;
        uri++;
    }
    return *tmpl == '\0' && *uri == '\0';
}

int routes_match(const char *method, const char *uri)
{
    if (!method || !uri)
        return -1;
    for (size_t i = 0; i < ROUTE_COUNT; i++) {
        if (strcmp(ROUTES[i].method, method) == 0 && path_matches(ROUTES[i].path, uri))
            return (int)i;
    }
    return -1;
}

int routes_count(void)
{
    return (int)ROUTE_COUNT;
}

const char *routes_method(int i)
{
    return i >= 0 && (size_t)i < ROUTE_COUNT ? ROUTES[i].method : "";
}

const char *routes_path(int i)
{
    return i >= 0 && (size_t)i < ROUTE_COUNT ? ROUTES[i].path : "";
}

route_reader routes_reader(int i)
{
    return i >= 0 && (size_t)i < ROUTE_COUNT ? ROUTES[i].read : NULL;
}

int routes_read_nothing(const char *qs, size_t qslen, const char *body, size_t bodylen, char *err,
                        size_t errlen)
{
    (void)qs;
    (void)qslen;
    (void)body;
    (void)bodylen;
    if (errlen)
        err[0] = '\0';
    return 0;
}

int routes_read_fields(const struct param_spec *spec, size_t nspec, const char *qs, size_t qslen,
                       const char *body, size_t bodylen, char *err, size_t errlen)
{
    struct params p;
    params_init(&p, spec, nspec, NULL);
    int rc = params_read(&p, qs, qslen, body, bodylen, err, errlen);
    params_free(&p);
    /* The handlers answer 400 with params.c's message for every failure. */
    return rc == ENMS_OK ? 0 : 400;
}
