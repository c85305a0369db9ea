/* fuzz_endpoints.c - libFuzzer target for the request reading of every API
 * operation: the reader the route table gives each one (api/routes.h),
 * which runs the query string and body through that endpoint's own fields
 * table and extra steps (A/B numbers as text, metrics record's two body
 * forms, retrain's params object, the readings batch, ...).
 *
 * Input: byte 0 picks the operation (modulo the route count); the rest is
 * the query string up to the first NUL byte, then the body. Without a NUL
 * there is no body. The body is handed over as http_read_body() would: a
 * NUL-terminated copy, NULL when empty, refused when nested deeper than
 * JSON_MAX_DEPTH. Whatever the input, a reader must end in 0 or a status
 * the handler sends for bad input (400, 413) with a message in valid UTF-8
 * (the reply is JSON), never 500 (no allocation fails here), and never touch
 * memory it does not own or leak (ASan/UBSan/LSan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../api/params.h"
#include "../api/routes.h"
#include "../common/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    if (size == 0)
        return 0;
    route_reader read = routes_reader(data[0] % routes_count());
    if (!read)
        abort(); /* every route has a reader (tests/unit/test_fuzz_coverage.c) */
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    const char *nul = memchr(text, '\0', len);
    size_t qslen = nul ? (size_t)(nul - text) : len;
    size_t bodylen = nul ? len - qslen - 1 : 0;

    /* Exact-size copies, so that ASan sees a read past either end. */
    char *qs = malloc(qslen + 1);
    char *body = bodylen ? malloc(bodylen + 1) : NULL;
    if (!qs || (bodylen && !body))
        abort();
    memcpy(qs, text, qslen);
    qs[qslen] = '\0';
    if (body) {
        memcpy(body, nul + 1, bodylen);
        body[bodylen] = '\0';
    }
    if (body && !json_depth_within(body, bodylen, JSON_MAX_DEPTH))
        goto done; /* http_read_body answers 400 before any handler runs */

    err[0] = '\0';
    int status = read(qs, qslen, body, bodylen, err, sizeof err);
    if (status != 0 && status != 400 && status != 413)
        abort();
    if (status != 0 &&
        (!memchr(err, '\0', sizeof err) || err[0] == '\0' || !params_utf8_valid(err, strlen(err))))
        abort(); /* a refusal always says why, as JSON-safe text */
done:
    free(qs);
    free(body);
    return 0;
}
