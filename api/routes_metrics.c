/* routes_metrics.c - STUB: metrics recording and trend (issue 5); answers 501 until implemented. */
#include "http.h"
#include "routes.h"

int route_metrics_record(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    return http_reply_error(conn, 501, "not implemented yet");
}

int route_metrics_trend(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    return http_reply_error(conn, 501, "not implemented yet");
}
