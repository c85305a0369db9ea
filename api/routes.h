/* routes.h - the table of API routes. Each routes_*.c file owns one group of
 * endpoints and exposes its civetweb handlers here; routes_register() in
 * routes.c installs them all. */
#ifndef ENMS_API_ROUTES_H
#define ENMS_API_ROUTES_H

#include <stddef.h>
#include <stdio.h>
#include <civetweb.h>

#include "../common/events.h"
#include <hiredis.h>

/* Installs every handler on ctx; cbdata of each is the api_server. */
void routes_register(struct mg_context *ctx, void *server);

/* Prints every operation as "METHOD /path/{param}" lines (enms-api --routes). */
void routes_print(FILE *out);

/* Index of the route-table operation that method and uri (a path without
 * query string) name, {param} segments matching any one non-empty segment;
 * -1 when none does. */
int routes_match(const char *method, const char *uri);

/* Number of operations, and the method and OpenAPI path of operation i
 * (0 <= i < routes_count()); static strings. */
int routes_count(void);
const char *routes_method(int i);
const char *routes_path(int i);

/* How one operation reads its request, without civetweb or a database:
 * runs the query string (qs, may be NULL) and the body (may be NULL) through
 * the same fields table and steps its handler uses, frees everything, and
 * returns 0 or the 4xx/5xx status the handler would answer (err says why).
 * fuzz/fuzz_endpoints.c runs every operation's reader on hostile input, and
 * a unit test checks that every route has one. */
typedef int (*route_reader)(const char *qs, size_t qslen, const char *body, size_t bodylen,
                            char *err, size_t errlen);

/* The reader of operation i, or NULL when i is out of range or the route
 * table gives none (the unit test fails then). */
route_reader routes_reader(int i);

/* Reader of the operations that read neither query string nor body: 0. */
int routes_read_nothing(const char *qs, size_t qslen, const char *body, size_t bodylen, char *err,
                        size_t errlen);

/* What most readers do: params_read of qs and body (NULL when the operation
 * takes no body) against nspec fields of spec; 0 or 400. */
struct param_spec;
int routes_read_fields(const struct param_spec *spec, size_t nspec, const char *qs, size_t qslen,
                       const char *body, size_t bodylen, char *err, size_t errlen);

/* The readers of each group, defined next to their handlers (route_reader). */
int route_retrain_trigger_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                               char *err, size_t errlen);
int route_metrics_record_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                              char *err, size_t errlen);
int route_metrics_trend_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                             char *err, size_t errlen);
int route_drift_check_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                           char *err, size_t errlen);
int route_performance_latest_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                                  char *err, size_t errlen);
int route_energy_read(const char *qs, size_t qslen, const char *body, size_t bodylen, char *err,
                      size_t errlen);
int route_ab_tests_list_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                             char *err, size_t errlen);
int route_ab_start_read(const char *qs, size_t qslen, const char *body, size_t bodylen, char *err,
                        size_t errlen);
int route_ab_results_read(const char *qs, size_t qslen, const char *body, size_t bodylen, char *err,
                          size_t errlen);
int route_ab_decide_read(const char *qs, size_t qslen, const char *body, size_t bodylen, char *err,
                         size_t errlen);
int route_alerts_active_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                             char *err, size_t errlen);
int route_alerts_ack_read(const char *qs, size_t qslen, const char *body, size_t bodylen, char *err,
                          size_t errlen);
int route_alerts_resolve_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                              char *err, size_t errlen);
int route_jobs_list_read(const char *qs, size_t qslen, const char *body, size_t bodylen, char *err,
                         size_t errlen);
int route_models_list_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                           char *err, size_t errlen);
int route_events_read(const char *qs, size_t qslen, const char *body, size_t bodylen, char *err,
                      size_t errlen);
int route_evaluate_read(const char *qs, size_t qslen, const char *body, size_t bodylen, char *err,
                        size_t errlen);
int route_readings_read(const char *qs, size_t qslen, const char *body, size_t bodylen, char *err,
                        size_t errlen);
int route_anomalies_list_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                              char *err, size_t errlen);
int route_anomalies_label_read(const char *qs, size_t qslen, const char *body, size_t bodylen,
                               char *err, size_t errlen);

/* routes_prometheus.c: GET /metrics (Prometheus text format) */
int route_prometheus(struct mg_connection *conn, void *cbdata);

/* routes_health.c */
int route_healthz(struct mg_connection *conn, void *cbdata);
int route_readyz(struct mg_connection *conn, void *cbdata);

/* routes_retrain.c: POST /api/v1/model-performance/retrain/trigger */
int route_retrain_trigger(struct mg_connection *conn, void *cbdata);

/* routes_jobs.c: GET /api/v1/jobs, GET /api/v1/jobs/{id},
 * POST /api/v1/jobs/{id}/cancel, POST /api/v1/jobs/{id}/requeue */
int route_jobs_list(struct mg_connection *conn, void *cbdata);
int route_jobs_item(struct mg_connection *conn, void *cbdata);

/* routes_models.c: GET /api/v1/models, GET /api/v1/models/{id},
 * POST /api/v1/models/{id}/activate */
int route_models_list(struct mg_connection *conn, void *cbdata);
int route_models_item(struct mg_connection *conn, void *cbdata);

/* routes_queue.c: GET /api/v1/queue, GET /api/v1/queue/dead */
int route_queue(struct mg_connection *conn, void *cbdata);
int route_queue_dead(struct mg_connection *conn, void *cbdata);

/* routes_machines.c: GET /api/v1/machines */
int route_machines(struct mg_connection *conn, void *cbdata);

/* routes_events.c: GET /api/v1/events (Server-Sent Events) */
int route_events(struct mg_connection *conn, void *cbdata);

/* routes_metrics.c: POST /api/v1/model-performance/metrics/record,
 * GET /api/v1/model-performance/metrics/trend */
int route_metrics_record(struct mg_connection *conn, void *cbdata);
int route_metrics_trend(struct mg_connection *conn, void *cbdata);

/* routes_drift.c: POST /api/v1/model-performance/drift/check */
int route_drift_check(struct mg_connection *conn, void *cbdata);

/* routes_abtest.c: POST /api/v1/model-performance/ab-test/start,
 * GET .../ab-test/{id}/results, POST .../ab-test/{id}/decide */
int route_ab_start(struct mg_connection *conn, void *cbdata);
int route_ab_item(struct mg_connection *conn, void *cbdata);

/* routes_alerts.c: GET /api/v1/model-performance/alerts/active,
 * POST /api/v1/alerts/{id}/acknowledge, POST /api/v1/alerts/{id}/resolve */
int route_alerts_active(struct mg_connection *conn, void *cbdata);
int route_alerts_item(struct mg_connection *conn, void *cbdata);

/* routes_evaluate.c: POST /api/v1/evaluate */
int route_evaluate(struct mg_connection *conn, void *cbdata);

/* routes_readings.c: POST /api/v1/readings */
int route_readings(struct mg_connection *conn, void *cbdata);

/* routes_anomalies.c: GET /api/v1/anomalies, POST /api/v1/anomalies/{id}/label */
int route_anomalies_list(struct mg_connection *conn, void *cbdata);
int route_anomalies_item(struct mg_connection *conn, void *cbdata);

/* routes_overview.c: GET /api/v1/model-performance/latest,
 * GET /api/v1/model-performance/ab-tests */
int route_performance_latest(struct mg_connection *conn, void *cbdata);
int route_ab_tests_list(struct mg_connection *conn, void *cbdata);

/* routes_energy.c: GET /api/v1/model-performance/energy */
int route_energy(struct mg_connection *conn, void *cbdata);

#endif
