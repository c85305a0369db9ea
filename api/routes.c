/* routes.c - installs the API's handlers and answers unknown /api paths.
 *
 * civetweb matches handlers by prefix ("$" anchors the end); the catch-all
 * for /api/ goes last so that any path no group claims gets a JSON 404
 * instead of falling through to the static file server. */
#include "routes.h"
#include "http.h"

static int route_api_not_found(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    return http_reply_error(conn, 404, "no such endpoint: %s %s",
                            mg_get_request_info(conn)->request_method,
                            mg_get_request_info(conn)->local_uri);
}

void routes_register(struct mg_context *ctx, void *server)
{
    mg_set_request_handler(ctx, "/healthz$", route_healthz, server);
    mg_set_request_handler(ctx, "/readyz$", route_readyz, server);
    mg_set_request_handler(ctx, "/api/v1/model-performance/retrain/trigger$", route_retrain_trigger,
                           server);
    mg_set_request_handler(ctx, "/api/v1/jobs$", route_jobs_list, server);
    mg_set_request_handler(ctx, "/api/v1/jobs/", route_jobs_item, server);
    mg_set_request_handler(ctx, "/api/v1/models$", route_models_list, server);
    mg_set_request_handler(ctx, "/api/v1/models/", route_models_item, server);
    mg_set_request_handler(ctx, "/api/v1/queue$", route_queue, server);
    mg_set_request_handler(ctx, "/api/v1/machines$", route_machines, server);
    mg_set_request_handler(ctx, "/api/v1/events$", route_events, server);
    mg_set_request_handler(ctx, "/api/v1/model-performance/metrics/record$", route_metrics_record,
                           server);
    mg_set_request_handler(ctx, "/api/v1/model-performance/metrics/trend$", route_metrics_trend,
                           server);
    mg_set_request_handler(ctx, "/api/v1/model-performance/drift/check$", route_drift_check,
                           server);
    mg_set_request_handler(ctx, "/api/v1/model-performance/ab-test/start$", route_ab_start, server);
    mg_set_request_handler(ctx, "/api/v1/model-performance/ab-test/", route_ab_item, server);
    mg_set_request_handler(ctx, "/api/v1/model-performance/alerts/active$", route_alerts_active,
                           server);
    mg_set_request_handler(ctx, "/api/v1/alerts/", route_alerts_item, server);
    mg_set_request_handler(ctx, "/api/v1/evaluate$", route_evaluate, server);
    mg_set_request_handler(ctx, "/api/v1/readings$", route_readings, server);
    mg_set_request_handler(ctx, "/api/v1/anomalies$", route_anomalies_list, server);
    mg_set_request_handler(ctx, "/api/v1/anomalies/", route_anomalies_item, server);
    mg_set_request_handler(ctx, "/api$", route_api_not_found, server);
    mg_set_request_handler(ctx, "/api/", route_api_not_found, server);
}
