/* jobs.h - the PostgreSQL side of the job pipeline: every status transition
 * of a retraining job, each a single compare-and-set statement.
 *
 * PostgreSQL is the record (DESIGN.md, "Sources of truth"). A transition
 * names the state it expects, and for a running job the attempt number it
 * holds (the fencing token), so two processes can never both finish, cancel
 * or re-queue the same job, and a stale attempt can never overwrite a newer
 * one or a cancellation. Every status change is written to job_events by a
 * trigger (schema/005), whoever makes it.
 *
 *   pending --jobs_start--> running --jobs_finish--> completed | failed
 *   pending|running --jobs_cancel--> cancelled
 *   running --jobs_release--> pending       (worker lost, or shut down)
 *
 * Durability: creation, completion, failure, cancellation and release
 * commit durably. pending -> running (jobs_start) commits asynchronously
 * (no wait for the WAL flush): it is re-derivable. If PostgreSQL crashes
 * before flushing it, the row is back to pending with the previous
 * attempt number, so the worker's compare-and-sets for its attempt match
 * no row and it drops its result (ENMS_ECONFLICT); the id is then in no
 * Redis queue once the worker settles, and housekeeping re-dispatches the
 * pending job. A job is still completed at most once and never lost.
 *
 * All functions return 0 or a negative enms_err and fill (err, errlen);
 * ENMS_ECONFLICT means "the job is not in the state you expected". */
#ifndef ENMS_JOBS_H
#define ENMS_JOBS_H

#include <stddef.h>
#include <time.h>
#include <libpq-fe.h>

#define JOBS_ID_SIZE     37 /* uuid text + NUL */
#define JOBS_STATUS_SIZE 16

/* What a trigger asks for. Strings are borrowed; NULL means default. */
struct job_request {
    const char *model_type;   /* baseline | anomaly | forecast_arima | probe */
    const char *machine_id;   /* uuid */
    const char *trigger_type; /* NULL: manual */
    const char *reason;       /* free text, may be NULL */
    const char *triggered_by; /* who asked (token name, "dashboard", ...), may be NULL */
    const char *params_json;  /* JSON object text, NULL: {} */
    const char *queue_name;   /* NULL: "default" */
    const char *job_kind;     /* train | evaluate | score; NULL: "train" */
};

/* A job as the worker needs it once it holds it. */
struct job_record {
    char id[JOBS_ID_SIZE];
    char model_type[32];
    char machine_id[JOBS_ID_SIZE];
    char trigger_type[32];
    char queue_name[65];
    char job_kind[16]; /* train | evaluate | score */
    int attempts;      /* the fencing token of the current attempt */
    char *params_json; /* malloc'd JSON object text; freed by job_record_clear */
};

/* Parses a time as the API stores it in a job's params, UTC
 * "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (api/routes_retrain.c normalises every
 * client spelling to it), into seconds. ENMS_OK or ENMS_EINVAL. */
int jobs_parse_time(const char *text, time_t *out);

/* Frees what a job_record owns and zeroes it. Safe on a zeroed record. */
void job_record_clear(struct job_record *job);

/* Inserts a pending job. On success job_id holds its id. ENMS_ENOTFOUND when
 * the machine does not exist; ENMS_ECONFLICT when a job for the same
 * (model_type, machine_id) is already pending or running (the partial unique
 * index decides), with its id in existing_id. */
int jobs_create(PGconn *conn, const struct job_request *req, char *job_id, char *existing_id,
                char *err, size_t errlen);

/* pending -> running for worker_id; attempts + 1; an asynchronous commit
 * (see above), so call it outside a transaction block. Fills *out (caller clears
 * it with job_record_clear). ENMS_ECONFLICT when the job is not pending
 * (cancelled, already taken, finished); ENMS_ENOTFOUND when it does not
 * exist. */
int jobs_start(PGconn *conn, const char *job_id, const char *worker_id, struct job_record *out,
               char *err, size_t errlen);

/* Records a heartbeat, and progress (0-100; -1 keeps it) and stage (NULL
 * keeps it), for the given attempt of a running job. ENMS_ECONFLICT when the
 * attempt no longer holds the job (cancelled, re-queued, finished). */
int jobs_heartbeat(PGconn *conn, const char *job_id, int attempt, int progress, const char *stage,
                   char *err, size_t errlen);

/* running -> completed or failed (status), for the given attempt only.
 * error_message may be NULL; metrics_json (a JSON object) goes to
 * training_metrics when not NULL. ENMS_ECONFLICT when the attempt is stale
 * or the job was cancelled: the caller must drop its result. */
int jobs_finish(PGconn *conn, const char *job_id, int attempt, const char *status,
                const char *error_message, const char *metrics_json, char *err, size_t errlen);

/* What a completed attempt leaves in its row besides the status. Strings
 * are borrowed; NULL (or -1 / 0 for the numbers) keeps what the row has. */
struct job_completion {
    const char *metrics_json;            /* training_metrics (JSON object) */
    const char *version_id;              /* result_version_id (uuid) */
    const char *version;                 /* model_version (integer text) */
    int training_samples;                /* -1: keep */
    time_t data_start, data_end;         /* training_data_start/end; 0: keep */
    const char *hyperparameters_json;    /* JSON object */
    const char *feature_names_json;      /* JSON array of strings */
    const char *validation_metrics_json; /* JSON object */
};

/* running -> completed for the given attempt with everything in *c, as one
 * statement (one round trip; outside a transaction block, one durable
 * commit). ENMS_ECONFLICT like jobs_finish. */
int jobs_complete(PGconn *conn, const char *job_id, int attempt, const struct job_completion *c,
                  char *err, size_t errlen);

/* jobs_start for up to n ids in one statement (one asynchronous commit).
 * out has n entries: out[i] is filled for each id that started (pending ->
 * running, attempt + 1) and left zeroed (out[i].id[0] == '\0') for an id
 * that was not pending or does not exist - not ours to run. The caller
 * clears every entry with job_record_clear. ENMS_EDB, ENMS_EINVAL (an id
 * that is not a uuid), ENMS_ENOMEM: then nothing is filled. */
int jobs_start_batch(PGconn *conn, const char *const *ids, int n, const char *worker_id,
                     struct job_record *out, char *err, size_t errlen);

/* One job for jobs_complete_batch: its attempt and completion (c.version_id
 * and c.version are not written: a completion with a model version is
 * written by jobs_complete inside its own transaction). completed is set
 * by the call. The strings are borrowed. */
struct job_done {
    const char *job_id;
    int attempt;
    struct job_completion c;
    int completed; /* out: 1 when this attempt was running and is now completed */
};

/* jobs_complete for n attempts as one statement and one durable commit:
 * each row's compare-and-set as jobs_complete's, and done[i].completed
 * says which held (the others are stale: cancelled, or another attempt's).
 * ENMS_EDB (nothing written; e.g. a value PostgreSQL refuses) or
 * ENMS_EINVAL; the caller can then complete them one at a time. */
int jobs_complete_batch(PGconn *conn, struct job_done *done, int n, char *err, size_t errlen);

/* pending|running -> cancelled. prev_status (JOBS_STATUS_SIZE) receives the
 * status the job had. ENMS_ECONFLICT when it had already finished (its
 * status in prev_status); ENMS_ENOTFOUND when there is no such job. */
int jobs_cancel(PGconn *conn, const char *job_id, char *prev_status, char *err, size_t errlen);

/* running -> pending for the given attempt (its worker was lost or shut
 * down); reason is recorded in the job's stage and event. ENMS_ECONFLICT
 * when the attempt no longer holds the job. */
int jobs_release(PGconn *conn, const char *job_id, int attempt, const char *reason, char *err,
                 size_t errlen);

/* running -> pending for an attempt that was started but never run (a
 * worker's batch handing back the jobs it has not reached): attempts - 1,
 * since nothing was done under that number; reason goes into the stage and
 * the job's event. Only for worker_id's own attempt, and only while no
 * heartbeat was recorded. ENMS_ECONFLICT otherwise (cancelled meanwhile,
 * or the attempt did run). */
int jobs_unstart(PGconn *conn, const char *job_id, int attempt, const char *worker_id,
                 const char *reason, char *err, size_t errlen);

/* Records a training_failed alert (severity critical) for the job, with
 * message as its text. */
int jobs_alert_failed(PGconn *conn, const char *job_id, const char *message, char *err,
                      size_t errlen);

/* Reads a job's status into status (JOBS_STATUS_SIZE) and attempts into
 * *attempts (may be NULL). ENMS_ENOTFOUND when there is no such job. */
int jobs_status(PGconn *conn, const char *job_id, char *status, int *attempts, char *err,
                size_t errlen);

#endif
