/* test_common.c - unit tests of common/: configuration, Redis URLs, JSON
 * helpers and error formatting. Pure functions, no servers. */
#include <criterion/criterion.h>
#include <string.h>
#include <stdlib.h>

#include "../../common/config.h"
#include "../../common/error.h"
#include "../../common/json.h"
#include "../../common/redis.h"

/* A fake environment: pairs of name, value, terminated by NULL. */
static const char *lookup_pairs(const char *name, void *ctx)
{
    const char *const *pairs = ctx;
    for (size_t i = 0; pairs[i]; i += 2) {
        if (strcmp(pairs[i], name) == 0)
            return pairs[i + 1];
    }
    return NULL;
}

Test(config, defaults_are_safe)
{
    const char *env[] = {NULL};
    struct enms_config cfg;
    char err[256] = "";
    cr_assert_eq(config_load_from(&cfg, lookup_pairs, env, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_str_eq(cfg.http_addr, "127.0.0.1");
    cr_assert_eq(cfg.http_port, 8080);
    cr_assert_eq(cfg.job_timeout_s, 1800);
    cr_assert_eq(cfg.heartbeat_ttl_s, 12);
    cr_assert_str_eq(cfg.redis_prefix, "{enms}");
    cr_assert_str_eq(cfg.api_token, "");
    cr_assert_eq(cfg.stuck_progress_s, 900);
    cr_assert(strlen(cfg.worker_id) > 0);
}

/* ENMS_STUCK_PROGRESS_S: 0 turns the check off; otherwise 2..86400. */
Test(config, stuck_progress_limit_range)
{
    static const char *const ok[][2] = {{"0", "0"}, {"2", "2"}, {"86400", "86400"}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        const char *env[] = {"ENMS_STUCK_PROGRESS_S", ok[i][0], NULL};
        struct enms_config cfg;
        char err[256] = "";
        cr_assert_eq(config_load_from(&cfg, lookup_pairs, env, err, sizeof err), ENMS_OK, "%s",
                     err);
        cr_assert_eq(cfg.stuck_progress_s, atoi(ok[i][1]));
    }
}

Test(config, values_are_read)
{
    const char *env[] = {"ENMS_HTTP_PORT", "9090",           "ENMS_LOG_LEVEL",
                         "debug",          "ENMS_WORKER_ID", "w-1",
                         "ENMS_HTTP_ADDR", "0.0.0.0",        NULL};
    struct enms_config cfg;
    char err[256] = "";
    cr_assert_eq(config_load_from(&cfg, lookup_pairs, env, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(cfg.http_port, 9090);
    cr_assert_eq(cfg.log_level, LOG_DEBUG);
    cr_assert_str_eq(cfg.worker_id, "w-1");
    cr_assert_str_eq(cfg.http_addr, "0.0.0.0");
}

/* Each bad value must be rejected with a message naming its variable. */
Test(config, bad_values_name_the_variable)
{
    static const char *const cases[][2] = {
        {"ENMS_HTTP_PORT", "80x"},
        {"ENMS_HTTP_PORT", "0"},
        {"ENMS_HTTP_PORT", "70000"},
        {"ENMS_HTTP_PORT", ""},
        {"ENMS_LOG_LEVEL", "loud"},
        {"ENMS_HTTP_ADDR", "::1"},
        {"ENMS_HTTP_ADDR", "localhost"},
        {"ENMS_REDIS_URL", "http://x"},
        {"ENMS_REDIS_URL", "redis://h:99999"},
        {"ENMS_WORKER_ID", "a b"},
        {"ENMS_JOB_TIMEOUT_S", "-5"},
        {"ENMS_HTTP_MAX_BODY", "10"},
        {"ENMS_PG_DSN", ""},
        {"ENMS_ALLOW_INSECURE", "yes"},
        {"ENMS_STUCK_PROGRESS_S", "1"},
        {"ENMS_STUCK_PROGRESS_S", "86401"},
        {"ENMS_STUCK_PROGRESS_S", "-1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *env[] = {cases[i][0], cases[i][1], NULL};
        struct enms_config cfg;
        char err[256] = "";
        int rc = config_load_from(&cfg, lookup_pairs, env, err, sizeof err);
        cr_expect_eq(rc, ENMS_EINVAL, "%s=%s accepted", cases[i][0], cases[i][1]);
        cr_expect(strstr(err, cases[i][0]) != NULL, "error \"%s\" does not name %s", err,
                  cases[i][0]);
    }
}

Test(config, heartbeat_ttl_must_exceed_interval)
{
    const char *env[] = {"ENMS_HEARTBEAT_INTERVAL_S", "10", "ENMS_HEARTBEAT_TTL_S", "10", NULL};
    struct enms_config cfg;
    char err[256] = "";
    cr_assert_eq(config_load_from(&cfg, lookup_pairs, env, err, sizeof err), ENMS_EINVAL);
    cr_assert(strstr(err, "ENMS_HEARTBEAT_TTL_S") != NULL, "%s", err);
}

Test(config, every_variable_read_is_documented)
{
    /* The table drives --help and the README; each entry must be unique and
     * carry a meaning. */
    for (size_t i = 0; i < config_var_count; i++) {
        cr_assert(strncmp(config_vars[i].name, "ENMS_", 5) == 0);
        cr_assert(strlen(config_vars[i].meaning) > 5);
        for (size_t j = i + 1; j < config_var_count; j++)
            cr_assert_str_neq(config_vars[i].name, config_vars[j].name);
    }
}

Test(redis_url, full_form)
{
    struct redis_url u;
    char err[128] = "";
    cr_assert_eq(redis_url_parse("redis://app:s3cr@t@cache.local:6380/2", &u, err, sizeof err),
                 ENMS_OK, "%s", err);
    cr_assert_str_eq(u.username, "app");
    cr_assert_str_eq(u.password, "s3cr@t");
    cr_assert_str_eq(u.host, "cache.local");
    cr_assert_eq(u.port, 6380);
    cr_assert_eq(u.db, 2);
}

Test(redis_url, defaults)
{
    struct redis_url u;
    char err[128] = "";
    cr_assert_eq(redis_url_parse("redis://10.0.0.5", &u, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_eq(u.port, 6379);
    cr_assert_eq(u.db, 0);
    cr_assert_str_eq(u.password, "");
    cr_assert_eq(redis_url_parse("redis://:pw@h/", &u, err, sizeof err), ENMS_OK, "%s", err);
    cr_assert_str_eq(u.password, "pw");
    cr_assert_str_eq(u.username, "");
}

Test(redis_url, rejects_malformed)
{
    static const char *const bad[] = {
        "",
        "redis:/h",
        "rediss://h",
        "redis://",
        "redis://:6379",
        "redis://h:",
        "redis://h:abc",
        "redis://h/x",
        "redis://h/-1",
        "redis://user@h",
        "redis://h h",
        "redis://h:1:2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct redis_url u;
        char err[128] = "";
        cr_expect_eq(redis_url_parse(bad[i], &u, err, sizeof err), ENMS_EINVAL, "accepted %s",
                     bad[i]);
        cr_expect(err[0] != '\0', "no message for %s", bad[i]);
    }
}

Test(redis_key, bounded)
{
    char key[16];
    cr_assert_eq(redis_key(key, sizeof key, "{enms}", "workers"), ENMS_OK);
    cr_assert_str_eq(key, "{enms}:workers");
    cr_assert_eq(redis_key(key, sizeof key, "{enms}", "a-very-long-suffix"), ENMS_ETOOBIG);
}

Test(json, parse_rejects_garbage_and_trailing_data)
{
    char err[128] = "";
    cJSON *ok = json_parse("{\"a\":1}  \n", 10, err, sizeof err);
    cr_assert_not_null(ok, "%s", err);
    cJSON_Delete(ok);
    cr_assert_null(json_parse("{\"a\":1} x", 9, err, sizeof err));
    cr_assert(strstr(err, "trailing") != NULL, "%s", err);
    cr_assert_null(json_parse("{\"a\":", 5, err, sizeof err));
    cr_assert(strstr(err, "invalid JSON") != NULL, "%s", err);
    /* Length bounds the parse: bytes past len are not read. */
    cJSON *cut = json_parse("[1]garbage", 3, err, sizeof err);
    cr_assert_not_null(cut, "%s", err);
    cJSON_Delete(cut);
}

Test(json, typed_reads_name_the_field)
{
    char err[128] = "";
    const char *text = "{\"s\":\"abc\",\"n\":2.5,\"x\":null,\"b\":true}";
    cJSON *obj = json_parse(text, strlen(text), err, sizeof err);
    cr_assert_not_null(obj, "%s", err);
    const char *s = NULL;
    double n = 0;
    cr_assert_eq(json_get_string(obj, "s", 10, &s, err, sizeof err), ENMS_OK);
    cr_assert_str_eq(s, "abc");
    cr_assert_eq(json_get_string(obj, "s", 2, &s, err, sizeof err), ENMS_EINVAL);
    cr_assert_eq(json_get_string(obj, "x", 10, &s, err, sizeof err), ENMS_ENOTFOUND);
    cr_assert_eq(json_get_string(obj, "missing", 10, &s, err, sizeof err), ENMS_ENOTFOUND);
    cr_assert_eq(json_get_number(obj, "n", &n, err, sizeof err), ENMS_OK);
    cr_assert_float_eq(n, 2.5, 1e-12);
    cr_assert_eq(json_get_number(obj, "b", &n, err, sizeof err), ENMS_EINVAL);
    cr_assert(strstr(err, "b:") != NULL, "%s", err);
    cJSON_Delete(obj);
}

Test(json, error_body_escapes_detail)
{
    char *body = json_error_body("bad \"quote\"\n");
    cr_assert_str_eq(body, "{\"detail\":\"bad \\\"quote\\\"\\n\"}");
    cJSON_free(body);
}

Test(error, fail_formats_and_returns_code)
{
    char err[32];
    cr_assert_eq(enms_fail(err, sizeof err, ENMS_ECONFLICT, "job %d", 7), ENMS_ECONFLICT);
    cr_assert_str_eq(err, "job 7");
    cr_assert_eq(enms_fail(NULL, 0, ENMS_EINVAL, "x"), ENMS_EINVAL);
    cr_assert_str_eq(enms_err_name(ENMS_ENOTFOUND), "not found");
}
