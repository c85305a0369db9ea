/* test_queue.c - common/queue.c against the real Redis that tests/run.sh
 * starts (ENMS_REDIS_URL). Each test works under a prefix of its own, so the
 * tests can run in parallel. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../common/error.h"
#include "../../common/queue.h"
#include "../../common/redis.h"

static redisContext *connect_test_redis(char *prefix, size_t prefixlen)
{
    const char *url_text = getenv("ENMS_REDIS_URL");
    cr_assert_not_null(url_text, "ENMS_REDIS_URL unset: run through tests/run.sh");
    struct redis_url url;
    char err[256];
    cr_assert_eq(redis_url_parse(url_text, &url, err, sizeof err), ENMS_OK, "%s", err);
    redisContext *ctx = redis_connect(&url, 2000, 5000, err, sizeof err);
    cr_assert_not_null(ctx, "%s", err);
    snprintf(prefix, prefixlen, "{uq%ld-%d}", (long)getpid(), rand());
    return ctx;
}

static const char *JOB = "0b0e5a8e-1f0c-4c1e-9a55-3d2b9c7e1a01";

Test(queue, push_claim_ack_moves_the_id_through_processing)
{
    char prefix[64], id[QUEUE_ID_LEN + 1], err[256], key[QUEUE_KEY_MAX];
    long long n = -1;
    redisContext *ctx = connect_test_redis(prefix, sizeof prefix);
    cr_assert_eq(queue_push(ctx, prefix, "default", JOB, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(queue_claim(ctx, prefix, "default", "w1", 1, id, err, sizeof err), ENMS_OK, "%s",
                 err);
    cr_assert_str_eq(id, JOB);
    queue_key(key, sizeof key, prefix, "processing", "w1");
    cr_assert_eq(queue_contains(ctx, key, JOB, err, sizeof err), 1);
    queue_key(key, sizeof key, prefix, "queue", "default");
    cr_assert_eq(queue_length(ctx, key, &n, err, sizeof err), ENMS_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(queue_ack(ctx, prefix, "w1", JOB, err, sizeof err), ENMS_OK);
    queue_key(key, sizeof key, prefix, "processing", "w1");
    cr_assert_eq(queue_contains(ctx, key, JOB, err, sizeof err), 0);
    /* An empty queue times out with ENOTFOUND, not an error. */
    cr_assert_eq(queue_claim(ctx, prefix, "default", "w1", 1, id, err, sizeof err), ENMS_ENOTFOUND);
    redisFree(ctx);
}

Test(queue, claim_drops_entries_that_are_not_job_ids)
{
    char prefix[64], id[QUEUE_ID_LEN + 1], err[256], key[QUEUE_KEY_MAX];
    redisContext *ctx = connect_test_redis(prefix, sizeof prefix);
    cr_assert_eq(queue_push(ctx, prefix, "default", "hello; FLUSHALL", err, sizeof err), ENMS_OK);
    cr_assert_eq(queue_claim(ctx, prefix, "default", "w1", 1, id, err, sizeof err), ENMS_EINVAL);
    long long n = -1;
    queue_key(key, sizeof key, prefix, "processing", "w1");
    cr_assert_eq(queue_length(ctx, key, &n, err, sizeof err), ENMS_OK);
    cr_assert_eq(n, 0);
    redisFree(ctx);
}

Test(queue, lease_is_fenced_by_worker_and_attempt)
{
    char prefix[64], err[256], holder[128];
    redisContext *ctx = connect_test_redis(prefix, sizeof prefix);
    cr_assert_eq(lease_get(ctx, prefix, JOB, holder, sizeof holder, err, sizeof err),
                 ENMS_ENOTFOUND);
    cr_assert_eq(lease_acquire(ctx, prefix, JOB, "w1", 1, 5000, err, sizeof err), ENMS_OK);
    cr_assert_eq(lease_renew(ctx, prefix, JOB, "w1", 1, 5000, err, sizeof err), ENMS_OK);
    /* A newer attempt takes over: the old holder can neither renew nor release. */
    cr_assert_eq(lease_acquire(ctx, prefix, JOB, "w2", 2, 5000, err, sizeof err), ENMS_OK);
    cr_assert_eq(lease_renew(ctx, prefix, JOB, "w1", 1, 5000, err, sizeof err), ENMS_ECONFLICT);
    cr_assert_eq(lease_renew(ctx, prefix, JOB, "w2", 1, 5000, err, sizeof err), ENMS_ECONFLICT);
    cr_assert_eq(lease_release(ctx, prefix, JOB, "w1", 1, err, sizeof err), ENMS_OK);
    cr_assert_eq(lease_get(ctx, prefix, JOB, holder, sizeof holder, err, sizeof err), ENMS_OK);
    cr_assert_str_eq(holder, "w2|2");
    cr_assert_eq(lease_release(ctx, prefix, JOB, "w2", 2, err, sizeof err), ENMS_OK);
    cr_assert_eq(lease_get(ctx, prefix, JOB, holder, sizeof holder, err, sizeof err),
                 ENMS_ENOTFOUND);
    redisFree(ctx);
}

Test(queue, lease_expires)
{
    char prefix[64], err[256], holder[128];
    redisContext *ctx = connect_test_redis(prefix, sizeof prefix);
    cr_assert_eq(lease_acquire(ctx, prefix, JOB, "w1", 1, 200, err, sizeof err), ENMS_OK);
    usleep(400 * 1000);
    cr_assert_eq(lease_get(ctx, prefix, JOB, holder, sizeof holder, err, sizeof err),
                 ENMS_ENOTFOUND);
    cr_assert_eq(lease_renew(ctx, prefix, JOB, "w1", 1, 200, err, sizeof err), ENMS_ECONFLICT);
    redisFree(ctx);
}

Test(queue, housekeeping_lock_has_one_holder)
{
    char prefix[64], err[256];
    redisContext *ctx = connect_test_redis(prefix, sizeof prefix);
    cr_assert_eq(housekeeping_lock(ctx, prefix, "w1", 300, err, sizeof err), ENMS_OK);
    cr_assert_eq(housekeeping_lock(ctx, prefix, "w2", 300, err, sizeof err), ENMS_ECONFLICT);
    cr_assert_eq(housekeeping_lock(ctx, prefix, "w1", 300, err, sizeof err), ENMS_OK);
    usleep(500 * 1000);
    cr_assert_eq(housekeeping_lock(ctx, prefix, "w2", 300, err, sizeof err), ENMS_OK);
    redisFree(ctx);
}

Test(queue, live_hash_cancel_flag_and_dead_letter)
{
    char prefix[64], err[256], key[QUEUE_KEY_MAX];
    redisContext *ctx = connect_test_redis(prefix, sizeof prefix);
    const char *fields[] = {"status", "progress"};
    const char *values[] = {"running", "42"};
    cr_assert_eq(job_live_set(ctx, prefix, JOB, 2, fields, values, 60, err, sizeof err), ENMS_OK,
                 "%s", err);
    queue_key(key, sizeof key, prefix, "job", JOB);
    redisReply *r = redisCommand(ctx, "HGET %s progress", key);
    cr_assert_str_eq(r->str, "42");
    freeReplyObject(r);
    r = redisCommand(ctx, "TTL %s", key);
    cr_assert(r->integer > 0 && r->integer <= 60);
    freeReplyObject(r);
    cr_assert_eq(cancel_flag_get(ctx, prefix, JOB, err, sizeof err), 0);
    cr_assert_eq(cancel_flag_set(ctx, prefix, JOB, err, sizeof err), ENMS_OK);
    cr_assert_eq(cancel_flag_get(ctx, prefix, JOB, err, sizeof err), 1);
    cr_assert_eq(dead_letter_push(ctx, prefix, JOB, err, sizeof err), ENMS_OK);
    queue_key(key, sizeof key, prefix, "dead", NULL);
    cr_assert_eq(queue_contains(ctx, key, JOB, err, sizeof err), 1);
    redisFree(ctx);
}

Test(queue, uuid_check)
{
    cr_assert(queue_is_uuid(JOB, strlen(JOB)));
    cr_assert(queue_is_uuid("0B0E5A8E-1F0C-4C1E-9A55-3D2B9C7E1A01", 36));
    cr_assert(!queue_is_uuid("0b0e5a8e-1f0c-4c1e-9a55-3d2b9c7e1a0", 35));
    cr_assert(!queue_is_uuid("0b0e5a8e11f0c-4c1e-9a55-3d2b9c7e1a01", 36));
    cr_assert(!queue_is_uuid("0b0e5a8e-1f0c-4c1e-9a55-3d2b9c7e1a0g", 36));
    cr_assert(!queue_is_uuid(NULL, 36));
}
