/* http.h - the API's way of answering: JSON bodies, JSON errors
 * {"detail": ...} with the right status, and bounded request bodies.
 *
 * civetweb's own mg_send_http_error() answers text/plain, which the
 * dashboard cannot show, so every API reply goes through here. */
#ifndef ENMS_API_HTTP_H
#define ENMS_API_HTTP_H

#include <stddef.h>
#include <civetweb.h>
#include <cJSON.h>
#include <libpq-fe.h>

/* Sends status and the JSON text body (not freed). Returns status, which is
 * what a civetweb handler returns. Every reply carries nosniff, no-store
 * and the request's X-Request-Id (log_request_id()); a HEAD reply has no
 * body. */
int http_reply_json(struct mg_connection *conn, int status, const char *body);

/* Same, with extra header lines: headers is "Name: value\r\n" repeated, or
 * NULL (e.g. "WWW-Authenticate: Bearer\r\n" on a 401). */
int http_reply_json_headers(struct mg_connection *conn, int status, const char *headers,
                            const char *body);

/* Same as http_reply_json, for a body of len bytes whose length the caller
 * already knows (a large document is not measured again). */
int http_reply_json_len(struct mg_connection *conn, int status, const char *body, size_t len);

/* Prints item and sends it; item stays owned by the caller. */
int http_reply_item(struct mg_connection *conn, int status, const cJSON *item);

/* Sends {"detail": "<formatted>"} with status. */
int http_reply_error(struct mg_connection *conn, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Answers a failed database call: 503 "postgresql unavailable: <err>" when
 * the connection is gone (pg NULL or broken: "try later"), else 500
 * "database error: <err>" (a bug). */
int http_reply_db_error(struct mg_connection *conn, PGconn *pg, const char *err);

/* Reads the whole request body, at most max bytes. On success *out is a
 * NUL-terminated buffer the caller frees with free() (NULL when the body is
 * empty) and *len its length. On failure an error reply has already been
 * sent and the status is returned as a negative number: 411 without a
 * Content-Length (chunked or none), 413 over max (nothing read), 400 for a
 * short body or JSON nested deeper than JSON_MAX_DEPTH. */
int http_read_body(struct mg_connection *conn, size_t max, char **out, size_t *len);

/* Parses an item path "<base><uuid>" or "<base><uuid>/<action>" (base ends
 * in '/'); action lists the allowed words separated by '|' ("results|decide")
 * and may be NULL when the item has none. On success returns 0, writes the
 * lower-cased id into id_out (37 bytes) and sets *has_action to 0 for the
 * bare item or to the 1-based position of the action given. Otherwise it
 * has already replied — 404 for an unknown path, 400 naming id_field for a
 * malformed id — and returns that status. */
int http_item_path(struct mg_connection *conn, const char *base, const char *action,
                   const char *id_field, char *id_out, int *has_action);

/* True when the request method equals method. */
int http_method_is(struct mg_connection *conn, const char *method);

#endif
