/* registry.h - a worker's presence in Redis: the set of known workers and
 * one hash per worker with a TTL that each heartbeat renews.
 *
 *   <prefix>:workers          set   ids of workers that registered
 *   <prefix>:worker:<id>      hash  host, pid, started, last_beat, state, job
 *
 * state is "idle", "busy" (job names the job it holds) or "stopping". A
 * worker whose hash expired is dead as far as anyone can tell; housekeeping
 * acts on that. */
#ifndef ENMS_WORKER_REGISTRY_H
#define ENMS_WORKER_REGISTRY_H

#include <stddef.h>
#include <time.h>
#include <hiredis.h>

#include "../common/queue.h"

struct worker_identity {
    const char *id;     /* cfg->worker_id */
    const char *prefix; /* cfg->redis_prefix */
    char host[256];
    long pid;
    time_t started;
    int ttl_s;
};

/* Adds the worker to the set and writes its hash with the TTL. job_id is the
 * job the worker holds, or NULL (the job field is then removed). 0 or
 * ENMS_EREDIS with the reason in err. */
int registry_announce(redisContext *ctx, const struct worker_identity *w, const char *state,
                      const char *job_id, char *err, size_t errlen);

/* Appends to p the writes of the worker's hash (all fields, state, job or
 * no job field, TTL) without the set entry: what a job's start and end
 * change, sent with the job's other commands in one round trip. Returns
 * the index of the first command, or -1 (queue_pipe_run then fails). */
int registry_pipe_state(struct queue_pipe *p, const struct worker_identity *w, const char *state,
                        const char *job_id);

/* Removes the worker's hash and its set entry (clean shutdown). */
int registry_withdraw(redisContext *ctx, const struct worker_identity *w, char *err, size_t errlen);

#endif
