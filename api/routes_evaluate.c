/* routes_evaluate.c - STUB: on-demand evaluation (issue 5); answers 501 until implemented. */
#include "http.h"
#include "routes.h"

int route_evaluate(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    return http_reply_error(conn, 501, "not implemented yet");
}
