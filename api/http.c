/* http.c - JSON replies and bounded body reads for the API (see http.h). */
#include "http.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/queue.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Payload Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    }
    return "Status";
}

/* The one place a JSON answer is written: status line, headers, body of
 * len bytes. */
static int reply(struct mg_connection *conn, int status, const char *headers, const char *body,
                 size_t len)
{
    const char *rid = log_request_id();
    mg_printf(conn,
              "HTTP/1.1 %d %s\r\n"
              "Content-Type: application/json\r\n"
              "Content-Length: %zu\r\n"
              "Cache-Control: no-store\r\n"
              "X-Content-Type-Options: nosniff\r\n"
              "%s%s%s"
              "%s"
              "\r\n",
              status, status_text(status), len, rid ? "X-Request-Id: " : "", rid ? rid : "",
              rid ? "\r\n" : "", headers ? headers : "");
    /* A HEAD answer announces the length but carries no body: bytes after
     * the headers would be read as the start of the next response. */
    if (len && !http_method_is(conn, "HEAD"))
        mg_write(conn, body, len);
    return status;
}

int http_reply_json_headers(struct mg_connection *conn, int status, const char *headers,
                            const char *body)
{
    return reply(conn, status, headers, body, body ? strlen(body) : 0);
}

int http_reply_json_len(struct mg_connection *conn, int status, const char *body, size_t len)
{
    return reply(conn, status, NULL, body, len);
}

int http_reply_json(struct mg_connection *conn, int status, const char *body)
{
    return http_reply_json_headers(conn, status, NULL, body);
}

int http_reply_item(struct mg_connection *conn, int status, const cJSON *item)
{
    char *text = json_print(item);
    if (!text)
        return http_reply_json(conn, 500, "{\"detail\":\"out of memory\"}");
    http_reply_json(conn, status, text);
    cJSON_free(text);
    return status;
}

int http_reply_error(struct mg_connection *conn, int status, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    char *body = json_error_body(detail);
    if (!body)
        return http_reply_json(conn, status, "{\"detail\":\"out of memory\"}");
    http_reply_json(conn, status, body);
    cJSON_free(body);
    return status;
}

int http_read_body(struct mg_connection *conn, size_t max, char **out, size_t *len)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    char *buf = NULL;
    size_t got = 0;

    *out = NULL;
    *len = 0;
    /* civetweb does not bound bodies, so the length is checked from the
     * headers before a byte of the body is read. Without a Content-Length
     * we cannot bound it either: chunked bodies, and bodies whose end only
     * the closing connection would tell, are refused (clients send
     * "Content-Length: 0" for an empty body, as fetch() and requests do). */
    if (mg_get_header(conn, "Transfer-Encoding") || ri->content_length < 0)
        return -http_reply_error(conn, 411, "a Content-Length header is required");
    if ((unsigned long long)ri->content_length > max)
        return -http_reply_error(conn, 413, "request body larger than %zu bytes", max);
    if (ri->content_length == 0)
        return 0;
    buf = malloc((size_t)ri->content_length + 1);
    if (!buf)
        return -http_reply_error(conn, 500, "out of memory");
    while (got < (size_t)ri->content_length) {
        int n = mg_read(conn, buf + got, (size_t)ri->content_length - got);
        if (n <= 0) {
            free(buf);
            return -http_reply_error(conn, 400, "request body shorter than Content-Length");
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    /* Every body the API reads is JSON: refuse deep nesting here, once for
     * all routes, before any of them hands the text to cJSON. */
    if (!json_depth_within(buf, got, JSON_MAX_DEPTH)) {
        free(buf);
        return -http_reply_error(conn, 400, "body: JSON nested deeper than %d levels",
                                 JSON_MAX_DEPTH);
    }
    *out = buf;
    *len = got;
    return 0;
}

int http_method_is(struct mg_connection *conn, const char *method)
{
    return strcmp(mg_get_request_info(conn)->request_method, method) == 0;
}

int http_item_path(struct mg_connection *conn, const char *base, const char *action,
                   const char *id_field, char *id_out, int *has_action)
{
    const char *uri = mg_get_request_info(conn)->local_uri;
    const char *id = uri + strlen(base);
    const char *slash = strchr(id, '/');
    size_t idlen = slash ? (size_t)(slash - id) : strlen(id);
    const char *rest = slash ? slash + 1 : NULL;

    int which = 0;
    if (rest) {
        /* action lists the allowed words separated by '|'. */
        size_t restlen = strlen(rest);
        int k = 1;
        for (const char *a = action; a && *a; k++) {
            const char *bar = strchr(a, '|');
            size_t alen = bar ? (size_t)(bar - a) : strlen(a);
            if (alen == restlen && memcmp(a, rest, alen) == 0) {
                which = k;
                break;
            }
            a = bar ? bar + 1 : a + alen;
        }
    }
    if (idlen == 0 || (rest && which == 0))
        return http_reply_error(conn, 404, "no such endpoint: %s %s",
                                mg_get_request_info(conn)->request_method, uri);
    if (!queue_is_uuid(id, idlen))
        return http_reply_error(conn, 400,
                                "%s: must be a UUID such as "
                                "3f2b8c1e-0000-4000-8000-000000000000",
                                id_field);
    /* Ids are stored lower-case; accept either case from clients. */
    for (size_t i = 0; i < idlen; i++)
        id_out[i] = (id[i] >= 'A' && id[i] <= 'F') ? (char)(id[i] - 'A' + 'a') : id[i];
    id_out[idlen] = '\0';
    *has_action = which;
    return 0;
}

int http_reply_db_error(struct mg_connection *conn, PGconn *pg, const char *err)
{
    if (!pg || PQstatus(pg) != CONNECTION_OK)
        return http_reply_error(conn, 503, "postgresql unavailable: %s", err);
    return http_reply_error(conn, 500, "database error: %s", err);
}
