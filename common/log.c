/* log.c - the JSON line logger declared in log.h.
 *
 * Why write() and not fprintf(): a line is built in a local buffer and handed
 * to the kernel in one call, so lines from threads and forked workers sharing
 * a terminal or a pipe never interleave mid-line. Why a hand-written escaper
 * and not cJSON: the logger runs where allocation may fail or be unwanted
 * (signal-adjacent shutdown paths, out-of-memory reports), so it allocates
 * nothing. */
#include "log.h"
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Set once by log_init() before any thread starts; read-only afterwards. */
static char log_component[32] = "enms";
static enum log_level log_min_level = LOG_INFO;

/* The request id of the request the calling thread is serving. Thread-local
 * because civetweb serves one request per worker thread at a time: the API
 * sets it in its begin_request callback and clears it in end_request, and
 * every line logged in between (by any module) carries it. */
static _Thread_local char log_req_id[LOG_REQUEST_ID_MAX + 1];

/* Input bytes kept of each field before the message. With JSON escaping a
 * byte grows to at most 6 ("\u00XX"), so these bounds keep every field
 * before "msg" well inside LOG_LINE_MAX and only the message is ever cut. */
#define FIELD_MAX 64
#define ROUTE_MAX 256

/* Room kept free at the end of the line for the closing quote of the
 * string being written, the closing brace and the newline. */
#define LINE_TAIL 3

struct line {
    char buf[LOG_LINE_MAX];
    size_t n;
};

void log_init(const char *component, enum log_level min_level)
{
    snprintf(log_component, sizeof log_component, "%s", component ? component : "enms");
    log_min_level = min_level;
}

int log_level_parse(const char *text, enum log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(text, names[i]) == 0) {
            *out = (enum log_level)i;
            return ENMS_OK;
        }
    }
    return ENMS_EINVAL;
}

void log_set_request_id(const char *id)
{
    snprintf(log_req_id, sizeof log_req_id, "%s", id ? id : "");
}

const char *log_request_id(void)
{
    return log_req_id[0] ? log_req_id : NULL;
}

/* Appends s (ASCII, never escaped) when it fits whole; the fixed field
 * bounds above make that always so. */
static void line_raw(struct line *l, const char *s)
{
    size_t len = strlen(s);
    if (l->n + len <= sizeof l->buf - LINE_TAIL) {
        memcpy(l->buf + l->n, s, len);
        l->n += len;
    }
}

/* Length of the well-formed UTF-8 sequence at s (1 to 4 bytes), or 0 when
 * the bytes there are not one (stray continuation byte, overlong form,
 * surrogate, beyond U+10FFFF, or cut short by left). */
static size_t utf8_sequence(const unsigned char *s, size_t left)
{
    unsigned c = s[0], cp;
    size_t need;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (left < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (need == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)))
        return 0;
    if (need == 4 && (cp < 0x10000 || cp > 0x10FFFF))
        return 0;
    return need;
}

/* Appends at most max bytes of s as a quoted JSON string. When the line is
 * full the string is cut between characters (never inside an escape or a
 * UTF-8 sequence) and still closed. */
static void line_string(struct line *l, const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t len = strnlen((const char *)p, max);
    size_t room = sizeof l->buf - LINE_TAIL; /* the closing quote is in the tail */

    if (l->n + 1 > room)
        return;
    l->buf[l->n++] = '"';
    for (size_t i = 0; i < len;) {
        char piece[8];
        size_t plen, used = 1;
        unsigned c = p[i];
        if (c == '"' || c == '\\') {
            piece[0] = '\\';
            piece[1] = (char)c;
            plen = 2;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            piece[0] = '\\';
            piece[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            plen = 2;
        } else if (c < 0x20 || c == 0x7F) {
            snprintf(piece, sizeof piece, "\\u%04x", c);
            plen = 6;
        } else if (c < 0x80) {
            piece[0] = (char)c;
            plen = 1;
        } else if ((used = utf8_sequence(p + i, len - i)) > 0) {
            memcpy(piece, p + i, used);
            plen = used;
        } else {
            memcpy(piece, "\\ufffd", 6);
            plen = 6;
            used = 1;
        }
        if (l->n + plen > room)
            break;
        memcpy(l->buf + l->n, piece, plen);
        l->n += plen;
        i += used;
    }
    l->buf[l->n++] = '"';
}

/* Starts a line with time, level, component, pid, job_id and request_id. */
static void line_begin(struct line *l, enum log_level level, const char *job_id)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char head[96];
    struct timeval now;
    struct tm utc;

    gettimeofday(&now, NULL);
    gmtime_r(&now.tv_sec, &utc);
    l->n = 0;
    line_raw(l, "{\"time\":\"");
    size_t w = strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf(head + w, sizeof head - w,
             ".%03ldZ\",\"level\":\"%s\",\"component\":", (long)(now.tv_usec / 1000), names[level]);
    line_raw(l, head);
    line_string(l, log_component, sizeof log_component);
    snprintf(head, sizeof head, ",\"pid\":%ld", (long)getpid());
    line_raw(l, head);
    if (job_id) {
        line_raw(l, ",\"job_id\":");
        line_string(l, job_id, FIELD_MAX);
    }
    if (log_req_id[0]) {
        line_raw(l, ",\"request_id\":");
        line_string(l, log_req_id, LOG_REQUEST_ID_MAX);
    }
}

/* Ends the line with the message and writes it in one call. */
static void line_finish(struct line *l, const char *msg)
{
    line_raw(l, ",\"msg\":");
    line_string(l, msg, LOG_LINE_MAX);
    /* The tail was kept free for exactly these two bytes. */
    l->buf[l->n++] = '}';
    l->buf[l->n++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, l->buf, l->n);
    (void)ignored;
}

void log_event(enum log_level level, const char *job_id, const char *fmt, ...)
{
    if (level < log_min_level || level > LOG_ERROR)
        return;

    char msg[LOG_LINE_MAX];
    struct line l;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    line_begin(&l, level, job_id);
    line_finish(&l, msg);
}

void log_access(const struct log_access *a)
{
    if (LOG_INFO < log_min_level)
        return;

    char num[64], msg[ROUTE_MAX + 64];
    struct line l;
    line_begin(&l, LOG_INFO, NULL);
    line_raw(&l, ",\"kind\":\"access\",\"method\":");
    line_string(&l, a->method, FIELD_MAX);
    line_raw(&l, ",\"route\":");
    line_string(&l, a->route, ROUTE_MAX);
    snprintf(num, sizeof num, ",\"status\":%d,\"duration_ms\":%.3f,\"remote\":", a->status,
             a->duration_ms >= 0 ? a->duration_ms : 0.0);
    line_raw(&l, num);
    line_string(&l, a->remote, FIELD_MAX);
    snprintf(msg, sizeof msg, "%.16s %.256s %d", a->method ? a->method : "",
             a->route ? a->route : "", a->status);
    line_finish(&l, msg);
}
