/* log.h - one line per event on stderr:
 *
 *   2026-11-27T21:30:00.123Z INFO  api[1234] job=<uuid> message
 *
 * The component name and minimum level are set once at start-up by
 * log_init(); after that the logger holds no mutable state, so it is safe to
 * call from any thread (each line is written with a single write()). */
#ifndef ENMS_LOG_H
#define ENMS_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* component: short process name ("api", "worker", "enmsctl"); copied. */
void log_init(const char *component, enum log_level min_level);

/* Parses "debug", "info", "warn", "error"; returns 0 or ENMS_EINVAL. */
int log_level_parse(const char *text, enum log_level *out);

/* job_id may be NULL when the event concerns no job. */
void log_event(enum log_level level, const char *job_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_event(LOG_DEBUG, NULL, __VA_ARGS__)
#define log_info(...)  log_event(LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...)  log_event(LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_event(LOG_ERROR, NULL, __VA_ARGS__)

#endif
