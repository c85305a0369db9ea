/* fuzz_params.c - libFuzzer target for the API's request field reader
 * (api/params.c): query strings, JSON bodies and ISO 8601 times.
 *
 * The input is split at its first NUL byte into a query string and a body,
 * both read against a table with one field of each type. Whatever the input,
 * reading must end in 0 or a negative code with a message, every stored
 * value must be NUL-terminated valid UTF-8, and nothing may leak or touch
 * memory it does not own (ASan/UBSan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../api/params.h"

static const char *const CHOICES[] = {"baseline", "anomaly", "forecast_arima", "probe", NULL};

static const struct param_spec SPEC[] = {
    {.name = "model_type", .type = PARAM_ENUM, .choices = CHOICES},
    {.name = "machine_id", .type = PARAM_UUID},
    {.name = "reason", .type = PARAM_STRING, .max_len = 500},
    {.name = "limit", .type = PARAM_INT, .min = 1, .max = 200},
    {.name = "since", .type = PARAM_TIME},
    {.name = "params", .type = PARAM_OBJECT, .max_len = 4096},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nul = memchr(text, '\0', size);
    size_t qslen = nul ? (size_t)(nul - text) : size;
    const char *body = nul ? nul + 1 : NULL;
    size_t bodylen = nul ? size - qslen - 1 : 0;
    struct params p;
    char err[256];

    params_init(&p, SPEC, sizeof SPEC / sizeof SPEC[0], NULL);
    int rc = params_read(&p, text, qslen, body, bodylen, err, sizeof err);
    if (rc > 0)
        abort();
    for (size_t i = 0; i < sizeof SPEC / sizeof SPEC[0]; i++) {
        const struct param_value *v = params_get(&p, SPEC[i].name);
        if (v && !params_utf8_valid(v->text, strlen(v->text)))
            abort();
    }
    params_free(&p);

    /* The time parser alone, on the raw bytes. */
    long long us;
    char buf[32];
    if (params_parse_time(text, size, &us) == 0 && params_format_time(us, buf, sizeof buf) == 0) {
        long long again;
        if (params_parse_time(buf, strlen(buf), &again) != 0 || again != us)
            abort();
    }
    return 0;
}
