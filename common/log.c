/* log.c - the line logger declared in log.h.
 *
 * Why write() and not fprintf(): a line is formatted into a local buffer and
 * handed to the kernel in one call, so lines from threads and forked workers
 * sharing a terminal or a pipe never interleave mid-line. */
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

void log_event(enum log_level level, const char *job_id, const char *fmt, ...)
{
    static const char *const labels[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    if (level < log_min_level)
        return;

    char line[2048];
    struct timeval now;
    struct tm utc;
    gettimeofday(&now, NULL);
    gmtime_r(&now.tv_sec, &utc);
    size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &utc);
    int w = snprintf(line + n, sizeof line - n, ".%03ldZ %s %s[%ld] ", (long)(now.tv_usec / 1000),
                     labels[level], log_component, (long)getpid());
    if (w > 0)
        n += (size_t)w;
    if (job_id && n < sizeof line) {
        w = snprintf(line + n, sizeof line - n, "job=%s ", job_id);
        if (w > 0)
            n += (size_t)w;
    }
    if (n < sizeof line) {
        va_list ap;
        va_start(ap, fmt);
        w = vsnprintf(line + n, sizeof line - n, fmt, ap);
        va_end(ap);
        if (w > 0)
            n += (size_t)w;
    }
    if (n >= sizeof line - 1)
        n = sizeof line - 2; /* truncated: still end with a newline */
    /* A message must not forge extra log lines: newlines become spaces. */
    for (size_t i = 0; i < n; i++) {
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    }
    line[n++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, n);
    (void)ignored;
}
