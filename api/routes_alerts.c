/* routes_alerts.c - STUB: alerts list, acknowledge and resolve (issue 5); answers 501 until
 * implemented. */
#include "http.h"
#include "routes.h"

int route_alerts_active(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    return http_reply_error(conn, 501, "not implemented yet");
}

int route_alerts_item(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    return http_reply_error(conn, 501, "not implemented yet");
}
