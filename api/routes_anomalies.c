/* routes_anomalies.c - STUB: detected anomalies (issue 5); answers 501 until implemented. */
#include "http.h"
#include "routes.h"

int route_anomalies_list(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    return http_reply_error(conn, 501, "not implemented yet");
}

int route_anomalies_item(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    return http_reply_error(conn, 501, "not implemented yet");
}
