/* log.h - one JSON object per line on stderr:
 *
 *   {"time":"2026-11-27T21:30:00.123Z","level":"info","component":"api",
 *    "pid":1234,"job_id":"<uuid>","request_id":"<id>","msg":"..."}
 *
 * (one line; job_id and request_id only when set). The API's access log adds
 * "kind":"access", method, route, status, duration_ms and remote.
 *
 * The component name and minimum level are set once at start-up by
 * log_init(); after that the logger's only state is the calling thread's
 * request id, so it is safe to call from any thread (each line is written
 * with a single write() of at most LOG_LINE_MAX bytes, which pipes keep
 * whole). Messages are escaped as JSON strings (control characters, quotes,
 * backslashes; invalid UTF-8 becomes U+FFFD), so no message can forge a line
 * or break the format. Never log secrets: the API token, DSN or Redis URL. */
#ifndef ENMS_LOG_H
#define ENMS_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Longest line written, newline included (PIPE_BUF on Linux); longer
 * messages are cut, the line stays valid JSON. */
#define LOG_LINE_MAX 4096

/* Longest request id kept (longer ones are cut). */
#define LOG_REQUEST_ID_MAX 64

/* component: short process name ("api", "worker", "enmsctl"); copied.
 * Before log_init() lines carry component "enms" and level info. */
void log_init(const char *component, enum log_level min_level);

/* Parses "debug", "info", "warn", "error"; returns 0 or ENMS_EINVAL. */
int log_level_parse(const char *text, enum log_level *out);

/* job_id may be NULL when the event concerns no job. */
void log_event(enum log_level level, const char *job_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets the request id of the calling thread (copied, at most
 * LOG_REQUEST_ID_MAX bytes), added to every line the thread logs until
 * cleared with NULL. */
void log_set_request_id(const char *id);

/* The calling thread's request id, or NULL when none is set. */
const char *log_request_id(void);

/* One answered HTTP request, for log_access(). route: the route template
 * (or the path without query string); remote: the client address. */
struct log_access {
    const char *method;
    const char *route;
    const char *remote;
    int status;
    double duration_ms;
};

/* Writes the access-log line of one request at level info. */
void log_access(const struct log_access *a);

#define log_debug(...) log_event(LOG_DEBUG, NULL, __VA_ARGS__)
#define log_info(...)  log_event(LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...)  log_event(LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_event(LOG_ERROR, NULL, __VA_ARGS__)

#endif
