/* test_params.c - unit tests of api/params.c (request field reading) and
 * the job list cursor of api/jobs_query.c. Pure functions, no servers. */
#include <criterion/criterion.h>
#include <string.h>

#include "../../api/jobs_query.h"
#include "../../api/params.h"
#include "../../common/error.h"

static const char *const COLOURS[] = {"red", "green", NULL};

static const struct param_spec SPEC[] = {
    {.name = "name", .type = PARAM_STRING, .required = 1, .max_len = 5},
    {.name = "colour", .type = PARAM_ENUM, .choices = COLOURS},
    {.name = "id", .type = PARAM_UUID},
    {.name = "n", .type = PARAM_INT, .min = 1, .max = 100},
    {.name = "at", .type = PARAM_TIME},
    {.name = "obj", .type = PARAM_OBJECT, .max_len = 32},
};
#define NSPEC (sizeof SPEC / sizeof SPEC[0])

/* Reads qs and body with SPEC; returns the code, err holds the message. */
static int read_fields(struct params *p, const char *qs, const char *body, char *err, size_t errlen)
{
    params_init(p, SPEC, NSPEC, NULL);
    return params_read(p, qs, qs ? strlen(qs) : 0, body, body ? strlen(body) : 0, err, errlen);
}

Test(params, query_string_is_decoded)
{
    struct params p;
    char err[256] = "";
    cr_assert_eq(read_fields(&p, "name=a+b%21&colour=green&n=42", NULL, err, sizeof err), ENMS_OK,
                 "%s", err);
    cr_assert_str_eq(params_text(&p, "name", NULL), "a b!");
    cr_assert_str_eq(params_text(&p, "colour", NULL), "green");
    cr_assert_eq(params_get(&p, "n")->num, 42);
    cr_assert_null(params_get(&p, "id"));
    cr_assert_str_eq(params_text(&p, "id", "dflt"), "dflt");
    params_free(&p);
}

Test(params, json_body_is_read)
{
    struct params p;
    char err[256] = "";
    cr_assert_eq(
        read_fields(&p, NULL,
                    "{\"name\":\"x\",\"n\":7,\"id\":\"C0000000-0000-0000-0000-00000000000A\","
                    "\"obj\":{\"a\": 1},\"colour\":null}",
                    err, sizeof err),
        ENMS_OK, "%s", err);
    cr_assert_eq(params_get(&p, "n")->num, 7);
    cr_assert_str_eq(params_text(&p, "id", NULL), "c0000000-0000-0000-0000-00000000000a");
    cr_assert_str_eq(params_text(&p, "obj", NULL), "{\"a\":1}");
    cr_assert_null(params_get(&p, "colour"), "null counts as absent");
    params_free(&p);
}

Test(params, unknown_field_is_named)
{
    struct params p;
    char err[256] = "";
    cr_assert_eq(read_fields(&p, "name=a&bogus=1", NULL, err, sizeof err), ENMS_EINVAL);
    cr_assert_str_eq(err, "bogus: unknown field");
    params_free(&p);
    cr_assert_eq(read_fields(&p, NULL, "{\"name\":\"a\",\"other\":1}", err, sizeof err),
                 ENMS_EINVAL);
    cr_assert_str_eq(err, "other: unknown field");
    params_free(&p);
}

Test(params, missing_required_is_named)
{
    struct params p;
    char err[256] = "";
    cr_assert_eq(read_fields(&p, "colour=red", NULL, err, sizeof err), ENMS_EINVAL);
    cr_assert_str_eq(err, "name: required");
    params_free(&p);
}

Test(params, repeated_keys_are_refused)
{
    struct params p;
    char err[256] = "";
    cr_assert_eq(read_fields(&p, "name=a&name=b", NULL, err, sizeof err), ENMS_EINVAL);
    cr_assert_str_eq(err, "name: given more than once");
    params_free(&p);
    cr_assert_eq(read_fields(&p, NULL, "{\"name\":null,\"name\":\"b\"}", err, sizeof err),
                 ENMS_EINVAL);
    cr_assert_str_eq(err, "name: given more than once");
    params_free(&p);
    cr_assert_eq(read_fields(&p, "name=a", "{\"name\":\"b\"}", err, sizeof err), ENMS_EINVAL);
    cr_assert_str_eq(err, "name: given both in the query string and the body");
    params_free(&p);
}

Test(params, query_and_body_combine)
{
    struct params p;
    char err[256] = "";
    cr_assert_eq(read_fields(&p, "colour=red", "{\"name\":\"b\"}", err, sizeof err), ENMS_OK, "%s",
                 err);
    cr_assert(params_get(&p, "colour")->from_query);
    cr_assert_not(params_get(&p, "name")->from_query);
    params_free(&p);
}

Test(params, types_are_checked)
{
    struct params p;
    char err[256] = "";
    struct {
        const char *qs;
        const char *message;
    } cases[] = {
        {"name=toolong", "name: longer than 5 characters"},
        {"name=a&colour=blue", "colour: must be one of red, green"},
        {"name=a&id=not-a-uuid", "id: must be a UUID such as c0000000-0000-0000-0000-000000000001"},
        {"name=a&n=0", "n: must be an integer from 1 to 100"},
        {"name=a&n=101", "n: must be an integer from 1 to 100"},
        {"name=a&n=1.5", "n: must be an integer from 1 to 100"},
        {"name=a&n=", "n: must be an integer from 1 to 100"},
        {"name=a&at=yesterday", "at: must be an ISO 8601 time such as 2024-05-01T00:00:00Z"},
        {"name=a&at=2024-02-30", "at: must be an ISO 8601 time such as 2024-05-01T00:00:00Z"},
        {"name=a&obj=[1]", "obj: must be a JSON object"},
        {"name=a&obj=%7B%22a%22:%22aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa%22%7D",
         "obj: larger than 32 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(read_fields(&p, cases[i].qs, NULL, err, sizeof err), ENMS_EINVAL, "%s",
                     cases[i].qs);
        cr_assert_str_eq(err, cases[i].message, "%s", cases[i].qs);
        params_free(&p);
    }
}

Test(params, json_types_are_checked)
{
    struct params p;
    char err[256] = "";
    cr_assert_eq(read_fields(&p, NULL, "{\"name\":5}", err, sizeof err), ENMS_EINVAL);
    cr_assert_str_eq(err, "name: must be a string");
    params_free(&p);
    cr_assert_eq(read_fields(&p, NULL, "{\"name\":\"a\",\"n\":2.5}", err, sizeof err), ENMS_EINVAL);
    cr_assert_str_eq(err, "n: must be an integer from 1 to 100");
    params_free(&p);
    cr_assert_eq(read_fields(&p, NULL, "{\"name\":\"a\",\"obj\":\"{}\"}", err, sizeof err),
                 ENMS_EINVAL);
    cr_assert_str_eq(err, "obj: must be a JSON object");
    params_free(&p);
    cr_assert_eq(read_fields(&p, NULL, "[1,2]", err, sizeof err), ENMS_EINVAL);
    cr_assert_str_eq(err, "body: must be a JSON object");
    params_free(&p);
    cr_assert_eq(read_fields(&p, NULL, "{\"name\":\"a\"} x", err, sizeof err), ENMS_EINVAL);
    cr_assert(strncmp(err, "body: invalid JSON", 18) == 0, "%s", err);
    params_free(&p);
}

Test(params, string_length_counts_characters)
{
    struct params p;
    char err[256] = "";
    /* Five two-byte characters fit a five-character limit. */
    cr_assert_eq(read_fields(&p, "name=%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9", NULL, err, sizeof err),
                 ENMS_OK, "%s", err);
    params_free(&p);
}

Test(params, invalid_utf8_is_refused)
{
    struct params p;
    char err[256] = "";
    cr_assert_eq(read_fields(&p, "name=%FF", NULL, err, sizeof err), ENMS_EINVAL);
    cr_assert_str_eq(err, "name: not valid UTF-8 text");
    params_free(&p);
    cr_assert_eq(read_fields(&p, "name=a%00b", NULL, err, sizeof err), ENMS_EINVAL);
    params_free(&p);
    cr_assert_eq(read_fields(&p, NULL, "{\"name\":\"\xC0\xAF\"}", err, sizeof err), ENMS_EINVAL);
    cr_assert_str_eq(err, "body: not valid UTF-8 text");
    params_free(&p);
    cr_assert_eq(read_fields(&p, "name=a%2", NULL, err, sizeof err), ENMS_EINVAL);
    cr_assert_str_eq(err, "name: malformed %-escape");
    params_free(&p);
}

Test(params, bounds_on_query_strings)
{
    struct params p;
    char err[256] = "";
    static char big[PARAMS_QUERY_MAX + 16];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(read_fields(&p, big, NULL, err, sizeof err), ENMS_ETOOBIG);
    params_free(&p);
    char many[512] = "";
    for (int i = 0; i < PARAMS_MAX_PAIRS + 1; i++)
        strcat(many, "&&x");
    cr_assert_eq(read_fields(&p, many, NULL, err, sizeof err), ENMS_EINVAL);
    params_free(&p);
    /* Empty pairs ("a=1&&b=2", a trailing '&') are skipped, not counted. */
    cr_assert_eq(read_fields(&p, "&name=a&&", NULL, err, sizeof err), ENMS_OK, "%s", err);
    params_free(&p);
}

Test(params, prefix_names_nested_fields)
{
    struct params p;
    char err[256] = "";
    params_init(&p, SPEC, NSPEC, "params.");
    cr_assert_eq(params_parse_json(&p, "{\"zzz\":1}", 9, err, sizeof err), ENMS_EINVAL);
    cr_assert_str_eq(err, "params.zzz: unknown field");
    params_free(&p);
}

Test(time, iso8601_forms)
{
    long long us = 0;
    char buf[32];
    struct {
        const char *in;
        const char *out;
    } ok[] = {
        {"2024-05-01", "2024-05-01T00:00:00.000000Z"},
        {"2024-05-01T12:34", "2024-05-01T12:34:00.000000Z"},
        {"2024-05-01T12:34:56Z", "2024-05-01T12:34:56.000000Z"},
        {"2024-05-01t12:34:56.5z", "2024-05-01T12:34:56.500000Z"},
        {"2024-05-01 12:34:56.123456789+02:00", "2024-05-01T10:34:56.123456Z"},
        {"2024-05-01T00:30:00-0130", "2024-05-01T02:00:00.000000Z"},
        {"2024-05-01T00:30:00 02", "2024-04-30T22:30:00.000000Z"}, /* '+' decoded as ' ' */
        {"2024-02-29T23:59:59Z", "2024-02-29T23:59:59.000000Z"},
        {"1969-12-31T23:59:59.5Z", "1969-12-31T23:59:59.500000Z"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cr_assert_eq(params_parse_time(ok[i].in, strlen(ok[i].in), &us), ENMS_OK, "%s", ok[i].in);
        cr_assert_eq(params_format_time(us, buf, sizeof buf), ENMS_OK);
        cr_assert_str_eq(buf, ok[i].out, "%s", ok[i].in);
    }
    cr_assert_eq(params_parse_time("1970-01-01T00:00:01Z", 20, &us), ENMS_OK);
    cr_assert_eq(us, 1000000);
    const char *bad[] = {"",
                         "2024",
                         "2023-02-29",
                         "2024-13-01",
                         "2024-05-01T24:00",
                         "2024-05-01T12:60",
                         "2024-05-01T12:00:60",
                         "2024-05-01T12:00:00.",
                         "2024-05-01T12:00:00Zjunk",
                         "2024-05-01T12:00:00+25:00",
                         "0999-01-01",
                         "2024-05-01X12:00"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(params_parse_time(bad[i], strlen(bad[i]), &us), ENMS_EINVAL, "%s", bad[i]);
}

Test(utf8, validator)
{
    cr_assert(params_utf8_valid("plain", 5));
    cr_assert(params_utf8_valid("\xE2\x82\xAC", 3));     /* euro sign */
    cr_assert(params_utf8_valid("\xF0\x9F\x98\x80", 4)); /* emoji */
    cr_assert_not(params_utf8_valid("\xE2\x82", 2));     /* truncated */
    cr_assert_not(params_utf8_valid("\xED\xA0\x80", 3)); /* surrogate */
    cr_assert_not(params_utf8_valid("\xE0\x80\xAF", 3)); /* overlong */
    cr_assert_not(params_utf8_valid("\xF4\x90\x80\x80", 4));
    cr_assert_not(params_utf8_valid("a\0b", 3));
}

Test(cursor, round_trip_and_rejects)
{
    char cur[JOBS_CURSOR_MAX];
    char id[37];
    long long us = 0;
    const char *uuid = "0f8e2a54-1c3b-4d5e-8f60-718293a4b5c6";
    cr_assert_eq(jobs_cursor_encode(1714567890123456LL, uuid, cur, sizeof cur), ENMS_OK);
    for (const char *c = cur; *c; c++)
        cr_assert(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *c));
    cr_assert_eq(jobs_cursor_decode(cur, strlen(cur), &us, id), ENMS_OK);
    cr_assert_eq(us, 1714567890123456LL);
    cr_assert_str_eq(id, uuid);
    cr_assert_eq(jobs_cursor_decode("", 0, &us, id), ENMS_EINVAL);
    cr_assert_eq(jobs_cursor_decode("not a cursor", 12, &us, id), ENMS_EINVAL);
    cr_assert_eq(jobs_cursor_decode("MTIzfHh5eg", 10, &us, id), ENMS_EINVAL); /* "123|xyz" */
}
