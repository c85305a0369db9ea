/* registry.c - worker registration and heartbeats in Redis (see registry.h). */
#include "registry.h"
#include "../common/error.h"
#include "../common/redis.h"

#include <stdio.h>
#include <string.h>

/* Runs the commands queued on ctx with redisAppendCommand and checks every
 * reply, so a partial failure is reported rather than hidden. */
static int drain_replies(redisContext *ctx, int count, char *err, size_t errlen)
{
    int rc = ENMS_OK;
    for (int i = 0; i < count; i++) {
        redisReply *reply = NULL;
        if (redisGetReply(ctx, (void **)&reply) != REDIS_OK)
            return enms_fail(err, errlen, ENMS_EREDIS, "redis: %s", ctx->errstr);
        if (reply->type == REDIS_REPLY_ERROR && rc == ENMS_OK)
            rc = enms_fail(err, errlen, ENMS_EREDIS, "redis: %s", reply->str);
        freeReplyObject(reply);
    }
    return rc;
}

int registry_pipe_state(struct queue_pipe *p, const struct worker_identity *w, const char *state,
                        const char *job_id)
{
    char hash_key[384], suffix[300], pid[24], started[24], beat[24], ttl[16];
    snprintf(suffix, sizeof suffix, "worker:%s", w->id);
    if (redis_key(hash_key, sizeof hash_key, w->prefix, suffix) != ENMS_OK)
        return -1;
    snprintf(pid, sizeof pid, "%ld", w->pid);
    snprintf(started, sizeof started, "%lld", (long long)w->started);
    snprintf(beat, sizeof beat, "%lld", (long long)time(NULL));
    snprintf(ttl, sizeof ttl, "%d", w->ttl_s);
    /* Every field each time: a hash that expired or was flushed comes
     * back whole. The job field goes when the worker is idle, so a reader
     * never sees a job the worker no longer holds. */
    const char *argv[] = {"HSET",  hash_key,    "host", w->host, "pid", pid,   "started",
                          started, "last_beat", beat,   "state", state, "job", job_id};
    size_t len[14];
    int argc = job_id ? 14 : 12;
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    int at = queue_pipe_argv(p, "HSET worker", argc, argv, len);
    if (!job_id) {
        const char *del[] = {"HDEL", hash_key, "job"};
        size_t dlen[] = {4, strlen(hash_key), 3};
        queue_pipe_argv(p, "HDEL worker", 3, del, dlen);
    }
    const char *ex[] = {"EXPIRE", hash_key, ttl};
    size_t exlen[] = {6, strlen(hash_key), strlen(ttl)};
    if (queue_pipe_argv(p, "EXPIRE worker", 3, ex, exlen) < 0)
        return -1;
    return at;
}

int registry_announce(redisContext *ctx, const struct worker_identity *w, const char *state,
                      const char *job_id, char *err, size_t errlen)
{
    char set_key[256];
    struct queue_pipe p;
    if (redis_key(set_key, sizeof set_key, w->prefix, "workers") != ENMS_OK)
        return enms_fail(err, errlen, ENMS_ETOOBIG, "redis key too long");
    /* Pipelined: one round trip per heartbeat, whatever the field count. */
    queue_pipe_init(&p, ctx);
    const char *sadd[] = {"SADD", set_key, w->id};
    size_t slen[] = {4, strlen(set_key), strlen(w->id)};
    queue_pipe_argv(&p, "SADD workers", 3, sadd, slen);
    if (registry_pipe_state(&p, w, state, job_id) < 0 && p.bad < 0)
        return enms_fail(err, errlen, ENMS_ETOOBIG, "redis key too long");
    return queue_pipe_run(&p, err, errlen);
}

int registry_withdraw(redisContext *ctx, const struct worker_identity *w, char *err, size_t errlen)
{
    char set_key[256], hash_key[384], suffix[300];
    snprintf(suffix, sizeof suffix, "worker:%s", w->id);
    if (redis_key(set_key, sizeof set_key, w->prefix, "workers") != ENMS_OK ||
        redis_key(hash_key, sizeof hash_key, w->prefix, suffix) != ENMS_OK)
        return enms_fail(err, errlen, ENMS_ETOOBIG, "redis key too long");
    redisAppendCommand(ctx, "SREM %s %s", set_key, w->id);
    redisAppendCommand(ctx, "DEL %s", hash_key);
    return drain_replies(ctx, 2, err, errlen);
}
