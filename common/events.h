/* events.h - the one JSON shape of a job event, as published on
 * <prefix>:events by the API, the workers, housekeeping and enmsctl, and
 * streamed to the dashboard by GET /api/v1/events:
 *
 *   {"event": "training.progress", "job_id", "status", "progress_pct",
 *    "stage", "model_type", "machine_id", "attempt", "worker_id",
 *    "error_message", "published_at": "2026-11-27T21:30:00.123Z"}
 *
 * Event names: training.queued, training.started, training.progress,
 * training.completed, training.failed, training.cancelled,
 * training.requeued, training.redispatched. */
#ifndef ENMS_EVENTS_H
#define ENMS_EVENTS_H

#include <stddef.h>
#include <hiredis.h>

/* Strings are borrowed; NULL or empty ones are sent as JSON null. */
struct job_event {
    const char *event;
    const char *job_id;
    const char *status;
    int progress_pct;
    const char *stage;
    const char *model_type;
    const char *machine_id;
    int attempt;
    const char *worker_id;
    const char *error_message;
};

/* Builds the event's JSON with published_at = now. Returns text the caller
 * frees with cJSON_free(), or NULL when out of memory. */
char *job_event_json(const struct job_event *ev);

/* Builds and PUBLISHes the event on <prefix>:events. 0 or a negative
 * enms_err. Callers usually log a failure and go on: the job's record is in
 * PostgreSQL already, an event is a courtesy to live viewers. */
int job_event_publish(redisContext *redis, const char *prefix, const struct job_event *ev,
                      char *err, size_t errlen);

#endif
