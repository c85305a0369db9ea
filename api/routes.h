/* routes.h - the table of API routes. Each routes_*.c file owns one group of
 * endpoints and exposes its civetweb handlers here; routes_register() in
 * routes.c installs them all. */
#ifndef ENMS_API_ROUTES_H
#define ENMS_API_ROUTES_H

#include <civetweb.h>

/* Installs every handler on ctx; cbdata of each is the api_server. */
void routes_register(struct mg_context *ctx, void *server);

/* routes_health.c */
int route_healthz(struct mg_connection *conn, void *cbdata);
int route_readyz(struct mg_connection *conn, void *cbdata);

#endif
