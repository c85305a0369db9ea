/* registry.c - worker registration and heartbeats in Redis (see registry.h). */
#include "registry.h"
#include "../common/error.h"
#include "../common/redis.h"

#include <stdio.h>

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

int registry_announce(redisContext *ctx, const struct worker_identity *w, const char *state,
                      const char *job_id, char *err, size_t errlen)
{
    char set_key[256], hash_key[384], suffix[300];
    char pid[24], started[24], beat[24];
    snprintf(suffix, sizeof suffix, "worker:%s", w->id);
    if (redis_key(set_key, sizeof set_key, w->prefix, "workers") != ENMS_OK ||
        redis_key(hash_key, sizeof hash_key, w->prefix, suffix) != ENMS_OK)
        return enms_fail(err, errlen, ENMS_ETOOBIG, "redis key too long");
    snprintf(pid, sizeof pid, "%ld", w->pid);
    snprintf(started, sizeof started, "%lld", (long long)w->started);
    snprintf(beat, sizeof beat, "%lld", (long long)time(NULL));

    /* Pipelined: one round trip per heartbeat, whatever the field count. */
    redisAppendCommand(ctx, "SADD %s %s", set_key, w->id);
    redisAppendCommand(ctx, "HSET %s host %s pid %s started %s last_beat %s state %s", hash_key,
                       w->host, pid, started, beat, state);
    /* The job field goes when the worker is idle, so a reader never sees a
     * job the worker no longer holds. */
    if (job_id)
        redisAppendCommand(ctx, "HSET %s job %s", hash_key, job_id);
    else
        redisAppendCommand(ctx, "HDEL %s job", hash_key);
    redisAppendCommand(ctx, "EXPIRE %s %d", hash_key, w->ttl_s);
    return drain_replies(ctx, 4, err, errlen);
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
