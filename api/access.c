/* access.c - the API's front door (see access.h): bearer-token check,
 * request ids, request accounting and the access log, from civetweb's
 * begin_request and end_request callbacks. Routing and answers live in
 * routes*.c; the counters themselves in http_stats.c. */
#include "access.h"
#include "http.h"
#include "routes.h"
#include "server.h"
#include "../common/config.h"
#include "../common/json.h"
#include "../common/log.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* What end_request needs from begin_request. Thread-local because civetweb
 * serves one request per worker thread at a time and calls begin_request,
 * the handler and end_request on that same thread; the request id itself
 * lives in the logger's thread-local (log_set_request_id) so that every
 * line logged meanwhile carries it. */
struct access_state {
    struct timespec start;
    int route; /* routes_match() index, -1 outside the table */
    int active;
};
static _Thread_local struct access_state access_current;

/* Token buffers: the configuration's string size, so any configured token
 * fits and the comparison always covers the same number of bytes. */
#define TOKEN_BUF CONFIG_STR_MAX

/* Longest request line path access_path_has_nul scans: civetweb's default
 * max_request_size (16 KiB) holds the whole request head, so a longer span
 * means the layout is not the one expected. */
#define ACCESS_PATH_SCAN_MAX (64 * 1024)

int access_token_equal(const char *expected, const char *given, size_t given_len)
{
    unsigned char want[TOKEN_BUF], got[TOKEN_BUF];
    size_t want_len = strnlen(expected, TOKEN_BUF - 1);
    /* volatile: keeps the compiler from turning the loop into an early-exit
     * memcmp; the length check is folded in rather than returned early. */
    volatile unsigned diff = 0;

    memset(want, 0, sizeof want);
    memset(got, 0, sizeof got);
    memcpy(want, expected, want_len);
    if (given_len < TOKEN_BUF)
        memcpy(got, given, given_len);
    else
        diff = 1;
    diff |= (unsigned)(want_len != given_len);
    for (size_t i = 0; i < TOKEN_BUF; i++)
        diff |= (unsigned)(want[i] ^ got[i]);
    return diff == 0;
}

int access_path_protected(const char *path)
{
    if (!path)
        return 1;
    /* Leading "/" and "./" segments do not change which handler civetweb
     * picks for a path, so they must not change the answer here either. */
    for (;;) {
        if (path[0] == '/')
            path++;
        else if (path[0] == '.' && path[1] == '/')
            path += 2;
        else
            break;
    }
    return strncasecmp(path, "api", 3) == 0 || strncasecmp(path, "metrics", 7) == 0;
}

/* 1 when the request carries "Authorization: Bearer <token>" with the
 * configured token, 0 when it carries none, -1 when it carries another. */
static int access_bearer_check(struct mg_connection *conn, const char *token)
{
    const char *h = mg_get_header(conn, "Authorization");
    if (!h)
        return 0;
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return -1;
    h += 6;
    while (*h == ' ' || *h == '\t')
        h++;
    size_t len = strlen(h);
    while (len > 0 && (h[len - 1] == ' ' || h[len - 1] == '\t'))
        len--;
    return access_token_equal(token, h, len) ? 1 : -1;
}

/* A client's X-Request-Id is kept when it is short and plain enough to
 * log and echo as is; anything else is replaced, never escaped. */
static int access_request_id_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= LOG_REQUEST_ID_MAX)
            return 0;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return n > 0;
}

/* Writes 32 random hex digits and a NUL into out. */
static void access_request_id_make(char out[33])
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        /* No entropy yet (early boot): ids need only be unique enough to
         * find a request's lines, so the clock and the thread will do. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t a = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        uint64_t b = (uint64_t)(uintptr_t)&access_current ^ ((uint64_t)getpid() << 32);
        memcpy(r, &a, 8);
        memcpy(r + 8, &b, 8);
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

int access_path_has_nul(const char *path, const char *end)
{
    if (!path || !end || end <= path || end - path > ACCESS_PATH_SCAN_MAX)
        return 0;
    size_t nuls = 0;
    for (const char *p = path; p < end; p++)
        nuls += *p == '\0';
    return nuls >= 2;
}

/* Where the request line's path ended before civetweb decoded it: at the
 * '?' it turned into the query string's NUL, or else before the NULs it
 * wrote over the blanks ahead of "HTTP/". NULL when the layout is not the
 * one expected (then no check is made). */
static const char *access_raw_path_end(const struct mg_request_info *ri)
{
    const char *start = ri->request_uri;
    if (!start)
        return NULL;
    if (ri->query_string)
        return ri->query_string - 1;
    if (!ri->http_version || ri->http_version - 5 <= start ||
        strncmp(ri->http_version - 5, "HTTP/", 5) != 0)
        return NULL;
    const char *p = ri->http_version - 5;
    while (p > start && p[-1] == '\0')
        p--;
    return p;
}

int access_begin_request(struct mg_connection *conn)
{
    const struct api_server *srv = mg_get_user_data(mg_get_context(conn));
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *given = mg_get_header(conn, "X-Request-Id");

    clock_gettime(CLOCK_MONOTONIC, &access_current.start);
    access_current.active = 1;
    access_current.route = routes_match(ri->request_method, ri->local_uri);
    if (given && access_request_id_ok(given)) {
        log_set_request_id(given);
    } else {
        char id[33];
        access_request_id_make(id);
        log_set_request_id(id);
    }

    /* civetweb decodes the path before this hook runs, and a %00 becomes a
     * NUL that silently ends it: "/index.html%00.json" would be served as
     * "/index.html" and "/%00/etc/passwd" as "/". No resource of ours has a
     * NUL in its name, so such a path is refused outright, before the token
     * check (it names nothing a token could open) and for every path. */
    if (access_path_has_nul(ri->request_uri, access_raw_path_end(ri)))
        return http_reply_error(conn, 400, "path: must not contain NUL (%%00)");

    if (!srv || !srv->cfg->api_token[0] || !access_path_protected(ri->local_uri))
        return 0;
    int check = access_bearer_check(conn, srv->cfg->api_token);
    if (check == 1)
        return 0;
    /* RFC 6750: a bare challenge when no credentials came, error=
     * "invalid_token" when wrong ones did. The detail names the header,
     * never the token. */
    char *body = json_error_body(check == 0 ? "authentication required: send the header "
                                              "Authorization: Bearer <ENMS_API_TOKEN>"
                                            : "invalid bearer token");
    http_reply_json_headers(conn, 401,
                            check == 0 ? "WWW-Authenticate: Bearer realm=\"enms\"\r\n"
                                       : "WWW-Authenticate: Bearer realm=\"enms\", "
                                         "error=\"invalid_token\"\r\n",
                            body ? body : "{\"detail\":\"authentication required\"}");
    cJSON_free(body);
    return 401;
}

void access_end_request(const struct mg_connection *conn, int status)
{
    const struct api_server *srv = mg_get_user_data(mg_get_context(conn));
    const struct mg_request_info *ri = mg_get_request_info(conn);
    double seconds = 0;
    int route = -1;

    if (access_current.active) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        seconds = (double)(now.tv_sec - access_current.start.tv_sec) +
                  (double)(now.tv_nsec - access_current.start.tv_nsec) / 1e9;
        route = access_current.route;
    }
    if (srv && srv->http_stats)
        http_stats_record(srv->http_stats, route, status, seconds);
    /* The route template, not the path: ids stay out of the log and the
     * line is the same for every job. Paths outside the table (static files,
     * unknown ones) are logged as they came, without the query string. */
    struct log_access line = {
        .method = ri->request_method,
        .route = route >= 0 ? routes_path(route) : ri->local_uri,
        .remote = ri->remote_addr,
        .status = status,
        .duration_ms = seconds * 1000.0,
    };
    log_access(&line);
    access_current.active = 0;
    log_set_request_id(NULL);
}
