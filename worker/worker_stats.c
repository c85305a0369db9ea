/* worker_stats.c - per-host job counters in Redis (see worker_stats.h). */
#include "worker_stats.h"
#include "../common/error.h"
#include "../common/queue.h"

#include <stdio.h>
#include <string.h>

int worker_stats_pipe_count(struct queue_pipe *p, const char *prefix, const char *host,
                            const char *model_type, const char *outcome)
{
    char key[QUEUE_KEY_MAX], field[96];
    int n = snprintf(field, sizeof field, "%s|%s", model_type, outcome);
    if (queue_key(key, sizeof key, prefix, "stats", host) != ENMS_OK || n < 0 ||
        (size_t)n >= sizeof field)
        return -1;
    const char *argv[] = {"HINCRBY", key, field, "1"};
    size_t len[] = {7, strlen(key), (size_t)n, 1};
    return queue_pipe_argv(p, "HINCRBY stats", 4, argv, len);
}

int worker_stats_count(redisContext *ctx, const char *prefix, const char *host,
                       const char *model_type, const char *outcome, char *err, size_t errlen)
{
    char key[QUEUE_KEY_MAX], field[96];
    redisReply *reply = NULL; /* freeReplyObject */
    int n, rc;

    if (queue_key(key, sizeof key, prefix, "stats", host) != ENMS_OK)
        return enms_fail(err, errlen, ENMS_ETOOBIG, "stats key too long");
    n = snprintf(field, sizeof field, "%s|%s", model_type, outcome);
    if (n < 0 || (size_t)n >= sizeof field)
        return enms_fail(err, errlen, ENMS_ETOOBIG, "stats field too long");
    reply = redisCommand(ctx, "HINCRBY %s %s 1", key, field);
    if (!reply || reply->type != REDIS_REPLY_INTEGER) {
        rc = enms_fail(err, errlen, ENMS_EREDIS, "redis: HINCRBY: %s",
                       reply && reply->type == REDIS_REPLY_ERROR ? reply->str : ctx->errstr);
        goto done;
    }
    rc = ENMS_OK;
done:
    if (reply)
        freeReplyObject(reply);
    return rc;
}
