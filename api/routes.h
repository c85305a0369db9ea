/* routes.h - the table of API routes. Each routes_*.c file owns one group of
 * endpoints and exposes its civetweb handlers here; routes_register() in
 * routes.c installs them all. */
#ifndef ENMS_API_ROUTES_H
#define ENMS_API_ROUTES_H

#include <stddef.h>
#include <civetweb.h>

#include "../common/events.h"
#include <hiredis.h>

/* Installs every handler on ctx; cbdata of each is the api_server. */
void routes_register(struct mg_context *ctx, void *server);

/* routes_health.c */
int route_healthz(struct mg_connection *conn, void *cbdata);
int route_readyz(struct mg_connection *conn, void *cbdata);

/* routes_retrain.c: POST /api/v1/model-performance/retrain/trigger */
int route_retrain_trigger(struct mg_connection *conn, void *cbdata);

/* routes_jobs.c: GET /api/v1/jobs, GET /api/v1/jobs/{id},
 * POST /api/v1/jobs/{id}/cancel */
int route_jobs_list(struct mg_connection *conn, void *cbdata);
int route_jobs_item(struct mg_connection *conn, void *cbdata);

/* routes_models.c: GET /api/v1/models, GET /api/v1/models/{id},
 * POST /api/v1/models/{id}/activate */
int route_models_list(struct mg_connection *conn, void *cbdata);
int route_models_item(struct mg_connection *conn, void *cbdata);

/* routes_queue.c: GET /api/v1/queue */
int route_queue(struct mg_connection *conn, void *cbdata);

/* routes_machines.c: GET /api/v1/machines */
int route_machines(struct mg_connection *conn, void *cbdata);

/* routes_events.c: GET /api/v1/events (Server-Sent Events) */
int route_events(struct mg_connection *conn, void *cbdata);

#endif
