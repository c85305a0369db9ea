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

Test(queue, pipe_runs_every_command_and_says_which_failed)
{
    char prefix[64], err[256], holder[192], key[QUEUE_KEY_MAX];
    redisContext *ctx = connect_test_redis(prefix, sizeof prefix);
    struct queue_pipe p;
    /* A string where a list is expected: its LREM answers WRONGTYPE. */
    queue_key(key, sizeof key, prefix, "processing", "w-bad");
    freeReplyObject(redisCommand(ctx, "SET %s x", key));
    const char *fields[] = {"status"};
    const char *values[] = {"running"};
    queue_pipe_init(&p, ctx);
    int lease = queue_pipe_lease_acquire(&p, prefix, JOB, "w1", 3, 60000);
    int bad = queue_pipe_ack(&p, prefix, "w-bad", JOB);
    int live = queue_pipe_live_set(&p, prefix, JOB, 1, fields, values, 60);
    int pub = queue_pipe_publish(&p, prefix, "{}");
    cr_assert(lease >= 0 && bad > lease && live > bad && pub > live);
    cr_assert_eq(queue_pipe_run(&p, err, sizeof err), ENMS_EREDIS);
    cr_assert(strstr(err, "LREM") != NULL, "%s", err);
    cr_assert_eq(queue_pipe_failed(&p, bad), 1);
    /* The commands after the failed one still ran. */
    cr_assert_eq(queue_pipe_failed(&p, lease), 0);
    cr_assert_eq(queue_pipe_failed(&p, live), 0);
    cr_assert_eq(queue_pipe_failed(&p, pub), 0);
    cr_assert_eq(lease_get(ctx, prefix, JOB, holder, sizeof holder, err, sizeof err), ENMS_OK);
    cr_assert_str_eq(holder, "w1|3");
    queue_key(key, sizeof key, prefix, "job", JOB);
    redisReply *r = redisCommand(ctx, "HGET %s status", key);
    cr_assert_str_eq(r->str, "running");
    freeReplyObject(r);
    /* The release in a pipe is fenced like lease_release. */
    queue_pipe_init(&p, ctx);
    queue_pipe_lease_release(&p, prefix, JOB, "w1", 2);
    cr_assert_eq(queue_pipe_run(&p, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(lease_get(ctx, prefix, JOB, holder, sizeof holder, err, sizeof err), ENMS_OK);
    queue_pipe_init(&p, ctx);
    queue_pipe_lease_release(&p, prefix, JOB, "w1", 3);
    cr_assert_eq(queue_pipe_run(&p, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(lease_get(ctx, prefix, JOB, holder, sizeof holder, err, sizeof err),
                 ENMS_ENOTFOUND);
    redisFree(ctx);
}

Test(queue, pipe_refuses_a_key_too_long_and_a_dead_connection)
{
    char prefix[64], err[256], big[QUEUE_KEY_MAX + 8];
    redisContext *ctx = connect_test_redis(prefix, sizeof prefix);
    struct queue_pipe p;
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    queue_pipe_init(&p, ctx);
    int ok = queue_pipe_publish(&p, prefix, "{}");
    int refused = queue_pipe_ack(&p, big, "w1", JOB);
    cr_assert(ok >= 0);
    cr_assert_eq(refused, -1);
    cr_assert_eq(queue_pipe_run(&p, err, sizeof err), ENMS_ETOOBIG);
    cr_assert_eq(queue_pipe_failed(&p, ok), 0);
    cr_assert_eq(queue_pipe_failed(&p, refused), 1);
    /* A connection the server closed: every command is in doubt. */
    redisReply *id = redisCommand(ctx, "CLIENT ID");
    cr_assert_eq(id->type, REDIS_REPLY_INTEGER);
    char other_prefix[64];
    redisContext *killer = connect_test_redis(other_prefix, sizeof other_prefix);
    freeReplyObject(redisCommand(killer, "CLIENT KILL ID %lld", id->integer));
    freeReplyObject(id);
    queue_pipe_init(&p, ctx);
    int a = queue_pipe_lease_acquire(&p, prefix, JOB, "w1", 1, 60000);
    int b = queue_pipe_publish(&p, prefix, "{}");
    cr_assert_eq(queue_pipe_run(&p, err, sizeof err), ENMS_EREDIS);
    cr_assert_eq(queue_pipe_failed(&p, a), 1);
    cr_assert_eq(queue_pipe_failed(&p, b), 1);
    redisFree(killer);
    redisFree(ctx);
}
