/* events.c - builds and publishes job events (see events.h). */
#include "events.h"
#include "error.h"
#include "queue.h"

#include <cJSON.h>
#include <stdio.h>
#include <time.h>

/* Publishers' clocks are what the dashboard shows; milliseconds suffice. */
static void now_iso(char *buf, size_t buflen)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(buf, buflen, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(ts.tv_nsec / 1000000) % 1000);
}

static cJSON *add_string_or_null(cJSON *obj, const char *name, const char *value)
{
    return value && *value ? cJSON_AddStringToObject(obj, name, value)
                           : cJSON_AddNullToObject(obj, name);
}

char *job_event_json(const struct job_event *ev)
{
    char at[64]; /* room for any year gmtime_r can produce */
    char *text = NULL;
    cJSON *obj = cJSON_CreateObject();
    if (!obj)
        return NULL;
    now_iso(at, sizeof at);
    if (add_string_or_null(obj, "event", ev->event) &&
        add_string_or_null(obj, "job_id", ev->job_id) &&
        add_string_or_null(obj, "status", ev->status) &&
        cJSON_AddNumberToObject(obj, "progress_pct", ev->progress_pct) &&
        add_string_or_null(obj, "stage", ev->stage) &&
        add_string_or_null(obj, "model_type", ev->model_type) &&
        add_string_or_null(obj, "machine_id", ev->machine_id) &&
        cJSON_AddNumberToObject(obj, "attempt", ev->attempt) &&
        add_string_or_null(obj, "worker_id", ev->worker_id) &&
        add_string_or_null(obj, "error_message", ev->error_message) &&
        cJSON_AddStringToObject(obj, "published_at", at))
        text = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    return text;
}

int job_event_publish(redisContext *redis, const char *prefix, const struct job_event *ev,
                      char *err, size_t errlen)
{
    char *text = job_event_json(ev);
    if (!text)
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory building event %s",
                         ev->event ? ev->event : "");
    int rc = events_publish(redis, prefix, text, err, errlen);
    cJSON_free(text);
    return rc;
}
