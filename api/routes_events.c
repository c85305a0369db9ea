/* routes_events.c - live job events: GET /api/v1/events streams what
 * workers and the API publish on <p>:events as Server-Sent Events, and
 * job_event_publish() builds and publishes those events for the API.
 *
 * Each open stream holds one civetweb thread and one Redis connection of
 * its own (a subscribed connection can run no other command, so the
 * thread's shared one cannot be used). Streams are therefore capped at
 * cfg->sse_max_streams. A stream ends when a write to the client fails or
 * the server is stopping (api_server.stopping, checked at least once a
 * second, because mg_stop waits for every handler to return). */
#include "http.h"
#include "params.h"
#include "routes.h"
#include "server.h"
#include "../common/error.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/queue.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SSE_KEEPALIVE_S 15
#define SSE_POLL_MS     1000

/* The SSE "event:" name: the message's "event" member when it is a plain
 * dotted identifier, else "message" (the SSE default), so a publisher can
 * never inject a line break into the stream. */
static void event_name(const cJSON *msg, char *out, size_t outlen)
{
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(msg, "event");
    const char *name = cJSON_IsString(ev) ? ev->valuestring : NULL;
    size_t n = name ? strlen(name) : 0;
    int ok = n > 0 && n < outlen;
    for (size_t i = 0; ok && i < n; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == '-';
    }
    snprintf(out, outlen, "%s", ok ? name : "message");
}

/* Sends one published message as an SSE event unless the job filter drops
 * it. Returns 0, or -1 when the client is gone. Messages that are not JSON
 * objects are skipped: the channel carries only ours. */
static int forward_message(struct mg_connection *conn, const char *payload, size_t len,
                           const char *job_filter)
{
    char name[64];
    char jerr[64];
    char *data = NULL;
    char *frame = NULL;
    int rc = 0;
    cJSON *msg = json_parse(payload, len, jerr, sizeof jerr);
    if (!msg || !cJSON_IsObject(msg))
        goto done;
    if (job_filter) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "job_id");
        if (!cJSON_IsString(id) || strcasecmp(id->valuestring, job_filter) != 0)
            goto done;
    }
    event_name(msg, name, sizeof name);
    /* Reprinted unformatted: guaranteed to hold no raw line break, which
     * would end the SSE data field early. */
    data = json_print(msg);
    if (!data)
        goto done;
    size_t framelen = strlen(name) + strlen(data) + 32;
    frame = malloc(framelen);
    if (!frame)
        goto done;
    int n = snprintf(frame, framelen, "event: %s\ndata: %s\n\n", name, data);
    if (mg_send_chunk(conn, frame, (unsigned)n) < 0)
        rc = -1;
done:
    free(frame);
    cJSON_free(data);
    cJSON_Delete(msg);
    return rc;
}

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Streams until the client goes, the server stops or Redis fails. */
static void stream_loop(struct mg_connection *conn, struct api_server *srv, redisContext *sub,
                        const char *job_filter)
{
    double last_write = monotonic_s();
    while (!atomic_load(&srv->stopping)) {
        void *reply = NULL;
        /* Replies already read into hiredis's buffer come first; only when
         * there are none do we wait on the socket, for at most a second, so
         * that the stop flag and the keep-alive are looked at in time. */
        if (redisGetReplyFromReader(sub, &reply) != REDIS_OK) {
            log_warn("event stream: redis: %s", sub->errstr);
            return;
        }
        if (!reply) {
            struct pollfd pfd = {.fd = sub->fd, .events = POLLIN};
            int ready = poll(&pfd, 1, SSE_POLL_MS);
            if (ready < 0 && errno != EINTR)
                return;
            if (ready > 0) {
                if (redisBufferRead(sub) != REDIS_OK) {
                    log_warn("event stream: redis: %s", sub->errstr);
                    return;
                }
                continue;
            }
            if (monotonic_s() - last_write >= SSE_KEEPALIVE_S) {
                static const char ping[] = ": keep-alive\n\n";
                if (mg_send_chunk(conn, ping, sizeof ping - 1) < 0)
                    return;
                last_write = monotonic_s();
            }
            continue;
        }
        redisReply *r = reply;
        int gone = 0;
        /* A pub/sub delivery is ["message", channel, payload]. */
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[0]->str, "message") == 0 &&
            r->element[2]->type == REDIS_REPLY_STRING) {
            gone = forward_message(conn, r->element[2]->str, r->element[2]->len, job_filter) < 0;
            if (!gone)
                last_write = monotonic_s();
        }
        freeReplyObject(r);
        if (gone)
            return;
    }
}

static const struct param_spec EVENTS_FIELDS[] = {
    {.name = "job_id", .type = PARAM_UUID},
};

int route_events(struct mg_connection *conn, void *cbdata)
{
    struct api_server *srv = cbdata;
    const struct enms_config *cfg = srv->cfg;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    struct params p;
    char err[512];
    char channel[QUEUE_KEY_MAX];
    redisContext *sub = NULL;
    redisReply *reply = NULL;
    int counted = 0;
    int status;

    params_init(&p, EVENTS_FIELDS, sizeof EVENTS_FIELDS / sizeof EVENTS_FIELDS[0], NULL);
    if (!http_method_is(conn, "GET")) {
        status = http_reply_error(conn, 405, "use GET");
        goto done;
    }
    if (params_read(&p, ri->query_string, ri->query_string ? strlen(ri->query_string) : 0, NULL, 0,
                    err, sizeof err) != ENMS_OK) {
        status = http_reply_error(conn, 400, "%s", err);
        goto done;
    }
    counted = 1;
    if (atomic_fetch_add(&srv->sse_streams, 1) >= cfg->sse_max_streams) {
        status =
            http_reply_error(conn, 503, "too many event streams (limit %d)", cfg->sse_max_streams);
        goto done;
    }
    if (queue_key(channel, sizeof channel, cfg->redis_prefix, "events", NULL) != ENMS_OK) {
        status = http_reply_error(conn, 500, "redis prefix too long");
        goto done;
    }
    sub = redis_connect(&srv->redis, cfg->connect_timeout_ms, cfg->io_timeout_ms, err, sizeof err);
    if (!sub) {
        status = http_reply_error(conn, 503, "redis unavailable: %s", err);
        goto done;
    }
    reply = redisCommand(sub, "SUBSCRIBE %s", channel);
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        status =
            http_reply_error(conn, 503, "redis unavailable: SUBSCRIBE failed: %s",
                             reply && reply->type == REDIS_REPLY_ERROR ? reply->str : sub->errstr);
        goto done;
    }
    mg_printf(conn, "HTTP/1.1 200 OK\r\n"
                    "Content-Type: text/event-stream\r\n"
                    "Cache-Control: no-store\r\n"
                    "X-Accel-Buffering: no\r\n"
                    "X-Content-Type-Options: nosniff\r\n"
                    "Transfer-Encoding: chunked\r\n"
                    "\r\n");
    /* The first bytes tell the client the subscription is live: events
     * published from now on will reach it. */
    static const char hello[] = "retry: 3000\n: connected\n\n";
    if (mg_send_chunk(conn, hello, sizeof hello - 1) >= 0) {
        stream_loop(conn, srv, sub, params_text(&p, "job_id", NULL));
        mg_send_chunk(conn, "", 0); /* the last chunk; fails harmlessly if the client left */
    }
    status = 200;
done:
    if (reply)
        freeReplyObject(reply);
    if (sub)
        redisFree(sub);
    if (counted)
        atomic_fetch_sub(&srv->sse_streams, 1);
    params_free(&p);
    return status;
}

/* The request readers (routes.h): the same tables the handlers above use. */
int route_events_read(const char *qs, size_t qslen, const char *body, size_t bodylen, char *err,
                      size_t errlen)
{
    (void)body; /* a GET: the handler reads no body */
    (void)bodylen;
    return routes_read_fields(EVENTS_FIELDS, sizeof EVENTS_FIELDS / sizeof EVENTS_FIELDS[0], qs,
                              qslen, NULL, 0, err, errlen);
}
