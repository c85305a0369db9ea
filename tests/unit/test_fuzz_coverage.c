/* test_fuzz_coverage.c - checks that fuzz/fuzz_endpoints.c reaches every API
 * operation (issue 8): each route in the route table has a request reader,
 * every reader is wired to the fields its endpoint declares, each operation
 * that reads anything has a committed seed, and inputs the fuzzers once
 * crashed on are answered normally (regression tests). Pure functions, no
 * servers. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

#include "../../api/jobs_query.h"
#include "../../api/routes.h"
#include "../../common/error.h"

#define SEED_DIR "fuzz/corpus/fuzz_endpoints"

static int call(int i, const char *qs, const char *body, char *err, size_t errlen)
{
    err[0] = '\0';
    return routes_reader(i)(qs, qs ? strlen(qs) : 0, body, body ? strlen(body) : 0, err, errlen);
}

Test(fuzz_coverage, every_route_has_a_reader)
{
    cr_assert_gt(routes_count(), 0);
    for (int i = 0; i < routes_count(); i++)
        cr_expect_not_null(routes_reader(i), "%s %s has no request reader (api/routes.c)",
                           routes_method(i), routes_path(i));
    cr_expect_null(routes_reader(-1));
    cr_expect_null(routes_reader(routes_count()));
}

/* A reader that claims to read fields must refuse one nobody declared, as
 * the endpoint does; the readers of operations that read nothing accept
 * anything. So a reader wired to the wrong table, or a handler given fields
 * but left on routes_read_nothing, shows up in one of the two checks. */
Test(fuzz_coverage, readers_refuse_undeclared_fields)
{
    char err[512];
    for (int i = 0; i < routes_count(); i++) {
        route_reader read = routes_reader(i);
        cr_assert_not_null(read);
        int status = call(i, "zz_not_a_field=1", NULL, err, sizeof err);
        if (read == routes_read_nothing) {
            cr_expect_eq(status, 0, "%s %s", routes_method(i), routes_path(i));
            continue;
        }
        /* POST /api/v1/readings reads no query string, only its body. */
        if (strcmp(routes_path(i), "/api/v1/readings") == 0) {
            cr_expect_eq(call(i, NULL, "{\"zz_not_a_field\": 1}", err, sizeof err), 400);
            cr_expect(strstr(err, "zz_not_a_field") != NULL, "%s", err);
            continue;
        }
        cr_expect_eq(status, 400, "%s %s accepted an undeclared field", routes_method(i),
                     routes_path(i));
        cr_expect(strstr(err, "zz_not_a_field") != NULL, "%s %s: %s", routes_method(i),
                  routes_path(i), err);
    }
}

/* Spot checks that a reader applies its own endpoint's rules. */
Test(fuzz_coverage, readers_apply_endpoint_rules)
{
    char err[512];
    int trigger = routes_match("POST", "/api/v1/model-performance/retrain/trigger");
    int start = routes_match("POST", "/api/v1/model-performance/ab-test/start");
    int record = routes_match("POST", "/api/v1/model-performance/metrics/record");
    int label = routes_match("POST", "/api/v1/anomalies/x/label");
    cr_assert(trigger >= 0 && start >= 0 && record >= 0 && label >= 0);

    const char *m = "\"machine_id\": \"9a1f3c5e-7b2d-4e6f-8a0b-1c2d3e4f5a60\"";
    char body[512];
    snprintf(body, sizeof body, "{\"model_type\": \"baseline\", %s, \"params\": {\"days\": 0}}", m);
    cr_expect_eq(call(trigger, NULL, body, err, sizeof err), 400);
    cr_expect(strstr(err, "params.days") != NULL, "%s", err);
    snprintf(body, sizeof body, "{\"model_type\": \"baseline\", %s, \"params\": {\"days\": 30}}",
             m);
    cr_expect_eq(call(trigger, NULL, body, err, sizeof err), 0, "%s", err);

    snprintf(body, sizeof body,
             "{\"test_name\": \"t\", \"model_type\": \"baseline\", %s, \"model_a_id\": "
             "\"0b6a2d1e-3c4f-4a5b-9c8d-7e6f5a4b3c2d\", \"model_b_id\": "
             "\"1c7b3e2f-4d5a-4b6c-8d9e-8f7a6b5c4d3e\", \"traffic_split\": 0.5, "
             "\"traffic_split_a\": 0.5}",
             m);
    cr_expect_eq(call(start, NULL, body, err, sizeof err), 400);
    cr_expect(strstr(err, "not both") != NULL, "%s", err);

    cr_expect_eq(call(record, "model_type=baseline", "{\"rmse\": NaN}", err, sizeof err), 400);
    cr_expect(strstr(err, "metric rmse") != NULL, "%s", err);

    cr_expect_eq(call(label, NULL, "{\"label\": null}", err, sizeof err), 0, "%s", err);
    cr_expect_eq(call(label, NULL, "{\"notes\": \"x\"}", err, sizeof err), 400);
}

/* Every operation that reads a request has at least one committed seed
 * (byte 0 of a seed picks the operation, see fuzz/fuzz_endpoints.c). */
Test(fuzz_coverage, every_reading_route_has_a_seed)
{
    int seeded[256] = {0};
    DIR *d = opendir(SEED_DIR);
    if (!d)
        d = opendir("../../" SEED_DIR);
    cr_assert_not_null(d, "cannot open %s (run from the repository root)", SEED_DIR);
    int n = routes_count();
    cr_assert_leq(n, 256);
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[600];
        snprintf(path, sizeof path, "%s/%s",
                 access(SEED_DIR, F_OK) == 0 ? SEED_DIR : "../../" SEED_DIR, e->d_name);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "%s", path);
        int c = fgetc(f);
        fclose(f);
        if (c != EOF)
            seeded[c % n] = 1;
    }
    closedir(d);
    for (int i = 0; i < n; i++)
        if (routes_reader(i) != routes_read_nothing)
            cr_expect(seeded[i], "no seed in %s for %s %s", SEED_DIR, routes_method(i),
                      routes_path(i));
}

/* Regression: a cursor of 19 digits overflowed long long in
 * jobs_cursor_decode (UBSan, found by fuzz_endpoints; the input is committed
 * as fuzz/corpus/fuzz_endpoints/crash_jobs_cursor_overflow). */
Test(fuzz_coverage, jobs_cursor_with_19_digits_is_refused)
{
    long long us = 0;
    char id[37];
    /* base64url of "9999999999999999999|9a1f3c5e-7b2d-4e6f-8a0b-1c2d3e4f5a60" */
    const char *c = "OTk5OTk5OTk5OTk5OTk5OTk5OXw5YTFmM2M1ZS03YjJkLTRlNmYtOGEwYi0xYzJkM2U0ZjVhNjA";
    cr_expect_eq(jobs_cursor_decode(c, strlen(c), &us, id), ENMS_EINVAL);
    /* The largest value that fits still decodes. */
    char ok[128];
    cr_assert_eq(jobs_cursor_encode(9223372036854775807LL, "9a1f3c5e-7b2d-4e6f-8a0b-1c2d3e4f5a60",
                                    ok, sizeof ok),
                 ENMS_OK);
    cr_expect_eq(jobs_cursor_decode(ok, strlen(ok), &us, id), ENMS_OK);
    cr_expect_eq(us, 9223372036854775807LL);
    int jobs = routes_match("GET", "/api/v1/jobs");
    char qs[160], err[512];
    snprintf(qs, sizeof qs, "cursor=%s", c);
    cr_expect_eq(call(jobs, qs, NULL, err, sizeof err), 400);
    cr_expect(strstr(err, "cursor") != NULL, "%s", err);
}
