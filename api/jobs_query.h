/* jobs_query.h - the API's read side of the job record: the filtered,
 * keyset-paged job list, one job with its status history, the few columns
 * the trigger and cancel handlers need, and the completion estimate.
 *
 * Status changes are not made here: they belong to common/jobs.h. Rows come
 * back as cJSON built from PostgreSQL's row_to_json, so every column of
 * model_training_history appears with its own JSON type (numbers stay
 * numbers, 0.0 is 0, NULL is null, jsonb columns are nested objects). */
#ifndef ENMS_API_JOBS_QUERY_H
#define ENMS_API_JOBS_QUERY_H

#include <stddef.h>
#include <cJSON.h>
#include <libpq-fe.h>

#define JOBS_CURSOR_MAX  96 /* encoded cursor, NUL included */
#define JOBS_LIMIT_MAX   200
#define JOBS_LIMIT_DFLT  50
#define JOBS_ISO_TIME_SZ 32

/* The list's filters; NULL/zero fields do not filter. Strings are borrowed
 * and already validated (params.h): since and until are canonical UTC
 * times. since is inclusive, until exclusive. */
struct jobs_filter {
    const char *status;
    const char *model_type;
    const char *machine_id;
    const char *trigger_type;
    const char *since;
    const char *until;
    int limit;           /* 1..JOBS_LIMIT_MAX */
    int has_cursor;      /* continue after (cursor_us, cursor_id) */
    long long cursor_us; /* created_at of the last row seen, microseconds since epoch */
    char cursor_id[37];  /* its id */
};

/* Encodes the position after a row (its created_at in microseconds since
 * the epoch, and its id) as an opaque URL-safe cursor (base64url of
 * "<us>|<id>"). Returns 0 or ENMS_ETOOBIG. Pure. */
int jobs_cursor_encode(long long created_us, const char *id, char *out, size_t outlen);

/* Decodes a cursor made by jobs_cursor_encode. Returns 0, or ENMS_EINVAL for
 * anything else. id receives 37 bytes. Pure (fuzzed with params). */
int jobs_cursor_decode(const char *text, size_t len, long long *created_us, char *id);

/* Reads one page, newest first (created_at DESC, id DESC). On success *out
 * is a JSON array the caller frees with cJSON_Delete, and next_cursor
 * (JOBS_CURSOR_MAX bytes) holds the cursor of the next page or "" when this
 * was the last. ENMS_EDB on database errors. */
int jobs_query_list(PGconn *conn, const struct jobs_filter *f, cJSON **out, char *next_cursor,
                    char *err, size_t errlen);

/* Reads one job (all columns) with "events": its job_events rows in order.
 * *out is an object the caller frees with cJSON_Delete. ENMS_ENOTFOUND when
 * there is no such job. */
int jobs_query_detail(PGconn *conn, const char *job_id, cJSON **out, char *err, size_t errlen);

/* The columns the handlers need to act on a job. */
struct job_brief {
    char status[16];
    char model_type[32];
    char machine_id[37];
    char queue_name[65];
    char worker_id[128]; /* "" when none */
    int attempts;
};

/* Fills *out for job_id; ENMS_ENOTFOUND when there is no such job. */
int jobs_query_brief(PGconn *conn, const char *job_id, struct job_brief *out, char *err,
                     size_t errlen);

/* Writes into out (JOBS_ISO_TIME_SZ bytes) the UTC time "YYYY-MM-DDTHH:MM:SSZ"
 * at which a job of model_type queued now should be done: now plus the
 * median duration of the last 20 completed jobs of that type, or plus
 * default_s when there are none. */
int jobs_query_estimate(PGconn *conn, const char *model_type, double default_s, char *out,
                        char *err, size_t errlen);

#endif
