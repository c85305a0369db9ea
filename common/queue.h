/* queue.h - the Redis side of the job pipeline: key names, queue lists,
 * leases with fencing tokens, live job state, cancel flags, events, the
 * dead-letter list and the housekeeping lock.
 *
 * Redis is dispatch and live state only; PostgreSQL (jobs.h) is the record.
 * Every key lives under cfg->redis_prefix (default "{enms}", a hash tag, so a
 * Redis Cluster keeps them in one slot):
 *
 *   <p>:queue:<name>         list   job ids waiting (LPUSH in, BLMOVE RIGHT->LEFT out)
 *   <p>:processing:<worker>  list   job ids a worker holds
 *   <p>:workers              set    worker ids that registered
 *   <p>:worker:<worker>      hash   host, pid, started, last_beat, state, job (TTL)
 *   <p>:lease:<job>          string "<worker>|<attempt>" (TTL = heartbeat TTL)
 *   <p>:job:<job>            hash   live status, progress, stage, worker, attempt,
 *                                   heartbeat, updated (TTL; short once finished)
 *   <p>:cancel:<job>         string cancel request flag (TTL 1 h)
 *   <p>:dead                 list   dead-lettered job ids
 *   <p>:events               pubsub JSON job updates
 *   <p>:lock:housekeeping    string holder id of the housekeeping lock (TTL)
 *   <p>:schedule:<name>      string worker that ran a schedule (TTL = interval)
 *   <p>:stats:<host>         hash   job counters of a host's workers, for /metrics
 *
 * docs/queue.md documents the same layout for operators; a test checks that
 * every key the code writes is listed there.
 *
 * All functions take a connected context, return 0 or a negative enms_err
 * (ENMS_EREDIS on server or I/O errors, with the reason in err), and never
 * format caller data into command strings.
 *
 * The worker's hot path batches its commands (struct queue_pipe): a job's
 * start is one round trip and its end another, whatever the command count
 * (docs/queue.md, "Round trips"). */
#ifndef ENMS_QUEUE_H
#define ENMS_QUEUE_H

#include <stddef.h>
#include <hiredis.h>

#define QUEUE_KEY_MAX 320
#define QUEUE_ID_LEN  36 /* canonical uuid text */
#define QUEUE_DEFAULT "default"
/* Live hash of an unfinished job; a finished one expires after
 * cfg->job_done_ttl_s (ENMS_JOB_DONE_TTL_S, default 1 h). */
#define QUEUE_JOB_TTL_S (7 * 24 * 3600)

/* A pipeline: commands appended to ctx's output buffer (hiredis
 * pipelining) and sent, with every reply read, by one queue_pipe_run: one
 * round trip for all of them. The commands are not a transaction: each
 * runs on its own, in order, and a reply that is an error does not stop
 * the others. Lives on the caller's stack; the context stays the caller's. */
#define QUEUE_PIPE_MAX 32
struct queue_pipe {
    redisContext *ctx;
    int n;                            /* commands appended */
    int bad;                          /* index of the first append that failed, or -1 */
    int bad_rc;                       /* and why: ENMS_ETOOBIG, ENMS_EINVAL or ENMS_ENOMEM */
    const char *what[QUEUE_PIPE_MAX]; /* static names of the commands, for errors */
    unsigned long long failed;        /* after queue_pipe_run: bit i = command i failed */
};

void queue_pipe_init(struct queue_pipe *p, redisContext *ctx);

/* Appends one command given as an argument vector (never formatted).
 * Returns its index in the pipe, or -1 (remembered; queue_pipe_run fails). */
int queue_pipe_argv(struct queue_pipe *p, const char *what, int argc, const char **argv,
                    const size_t *argvlen);

/* Appends lease_acquire's SET, lease_release's check-and-delete script,
 * queue_ack's LREM, job_live_set's HSET and EXPIRE, events_publish's
 * PUBLISH. Each returns the index of its (first) command, or -1. */
int queue_pipe_lease_acquire(struct queue_pipe *p, const char *prefix, const char *job_id,
                             const char *worker_id, int attempt, int ttl_ms);
int queue_pipe_lease_release(struct queue_pipe *p, const char *prefix, const char *job_id,
                             const char *worker_id, int attempt);
int queue_pipe_ack(struct queue_pipe *p, const char *prefix, const char *worker_id,
                   const char *job_id);
int queue_pipe_live_set(struct queue_pipe *p, const char *prefix, const char *job_id, int nfields,
                        const char *const *fields, const char *const *values, int ttl_s);
int queue_pipe_publish(struct queue_pipe *p, const char *prefix, const char *json);

/* Sends what was appended and reads every reply. 0 when every command
 * succeeded; else ENMS_EREDIS (ENMS_ETOOBIG/ENMS_EINVAL/ENMS_ENOMEM for a
 * failed append) with the first failure in err. A pipe is run once. */
int queue_pipe_run(struct queue_pipe *p, char *err, size_t errlen);

/* After queue_pipe_run: 1 when the command at index (as an append
 * returned it) failed or may not have run (the connection failed at or
 * before its reply), or when index is negative (its append failed); 0
 * when it succeeded. */
int queue_pipe_failed(const struct queue_pipe *p, int index);

/* Builds "<prefix>:<kind>" or "<prefix>:<kind>:<name>" (name may be NULL).
 * Returns 0 or ENMS_ETOOBIG. */
int queue_key(char *buf, size_t buflen, const char *prefix, const char *kind, const char *name);

/* LPUSH job_id onto <p>:queue:<queue_name>. */
int queue_push(redisContext *ctx, const char *prefix, const char *queue_name, const char *job_id,
               char *err, size_t errlen);

/* Waits up to timeout_s (>= 1) for a job on <p>:queue:<queue_name> and moves
 * it atomically (BLMOVE) to <p>:processing:<worker_id>, so a worker killed
 * right after still "holds" it where housekeeping can see it. On success
 * job_id (QUEUE_ID_LEN + 1 bytes) holds the id; ENMS_ENOTFOUND on timeout;
 * ENMS_EINVAL (and the entry is dropped from processing) when the list held
 * something that is not a uuid. */
int queue_claim(redisContext *ctx, const char *prefix, const char *queue_name,
                const char *worker_id, int timeout_s, char *job_id, char *err, size_t errlen);

/* Moves up to max more ids from <p>:queue:<queue_name> to the worker's
 * processing list without waiting, in one round trip (a script of LMOVEs,
 * atomic like BLMOVE): a worker whose jobs are short takes several at a
 * time (worker/main.c). ids[i] (QUEUE_ID_LEN + 1 bytes each) receives them
 * oldest first, *n how many; entries that are not uuids are dropped from the
 * processing list and skipped. 0 with *n == 0 when the queue was empty. */
int queue_claim_more(redisContext *ctx, const char *prefix, const char *queue_name,
                     const char *worker_id, int max, char (*ids)[QUEUE_ID_LEN + 1], int *n,
                     char *err, size_t errlen);

/* LREM job_id from <p>:processing:<worker_id> (the job is settled). */
int queue_ack(redisContext *ctx, const char *prefix, const char *worker_id, const char *job_id,
              char *err, size_t errlen);

/* Length of a list key built with queue_key(); *out = 0 when absent. */
int queue_length(redisContext *ctx, const char *key, long long *out, char *err, size_t errlen);

/* True (1) when job_id is in list key, 0 when not, negative on error. */
int queue_contains(redisContext *ctx, const char *key, const char *job_id, char *err,
                   size_t errlen);

/* Sets <p>:lease:<job> = "<worker>|<attempt>" with ttl_ms, replacing any
 * older value: PostgreSQL's compare-and-set already granted this attempt. */
int lease_acquire(redisContext *ctx, const char *prefix, const char *job_id, const char *worker_id,
                  int attempt, int ttl_ms, char *err, size_t errlen);

/* Extends the lease only if it still holds "<worker>|<attempt>" (atomic, by
 * a Lua script). Returns 0, or ENMS_ECONFLICT when the lease expired or
 * belongs to another attempt: the caller has lost the job. */
int lease_renew(redisContext *ctx, const char *prefix, const char *job_id, const char *worker_id,
                int attempt, int ttl_ms, char *err, size_t errlen);

/* Deletes the lease only if it holds "<worker>|<attempt>". 0 either way. */
int lease_release(redisContext *ctx, const char *prefix, const char *job_id, const char *worker_id,
                  int attempt, char *err, size_t errlen);

/* Reads the lease holder into holder ("<worker>|<attempt>"); ENMS_ENOTFOUND
 * when there is no lease (expired or never taken). */
int lease_get(redisContext *ctx, const char *prefix, const char *job_id, char *holder,
              size_t holderlen, char *err, size_t errlen);

/* HSETs the given field/value pairs (nfields pairs: fields[i], values[i]) on
 * <p>:job:<id> and sets its TTL to ttl_s. */
int job_live_set(redisContext *ctx, const char *prefix, const char *job_id, int nfields,
                 const char *const *fields, const char *const *values, int ttl_s, char *err,
                 size_t errlen);

/* Sets the cancel flag <p>:cancel:<id> (TTL 1 h). */
int cancel_flag_set(redisContext *ctx, const char *prefix, const char *job_id, char *err,
                    size_t errlen);

/* 1 when the cancel flag is set, 0 when not, negative on error. */
int cancel_flag_get(redisContext *ctx, const char *prefix, const char *job_id, char *err,
                    size_t errlen);

/* PUBLISHes json on <p>:events. */
int events_publish(redisContext *ctx, const char *prefix, const char *json, char *err,
                   size_t errlen);

/* LPUSH job_id onto <p>:dead. */
int dead_letter_push(redisContext *ctx, const char *prefix, const char *job_id, char *err,
                     size_t errlen);

/* Takes or extends the housekeeping lock for holder with ttl_ms. Returns 0
 * when holder has the lock, ENMS_ECONFLICT when someone else has it. */
int housekeeping_lock(redisContext *ctx, const char *prefix, const char *holder, int ttl_ms,
                      char *err, size_t errlen);

/* True when text is a canonical lower- or upper-case uuid (8-4-4-4-12 hex). */
int queue_is_uuid(const char *text, size_t len);

#endif
