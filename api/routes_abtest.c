/* routes_abtest.c - STUB: A/B tests (issue 5); answers 501 until implemented. */
#include "http.h"
#include "routes.h"

int route_ab_start(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    return http_reply_error(conn, 501, "not implemented yet");
}

int route_ab_item(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    return http_reply_error(conn, 501, "not implemented yet");
}
