/* routes_prometheus.c - GET /metrics in the Prometheus text format.
 * Placeholder until the operations work fills it in. */
#include "routes.h"
#include "http.h"

int route_prometheus(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    return http_reply_error(conn, 501, "metrics are not implemented yet");
}
