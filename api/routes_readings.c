/* routes_readings.c - STUB: batch ingest of readings (issue 5); answers 501 until implemented. */
#include "http.h"
#include "routes.h"

int route_readings(struct mg_connection *conn, void *cbdata)
{
    (void)cbdata;
    return http_reply_error(conn, 501, "not implemented yet");
}
