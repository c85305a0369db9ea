/* params.h - reading an endpoint's request fields from a URL query string
 * and/or a JSON object body, checked against a table of allowed fields.
 *
 * Pure functions over (buffer, length) with no civetweb, database or global
 * state, so they are unit-tested and fuzzed alone. Each endpoint declares its
 * fields (struct param_spec); anything else is refused with a message that
 * names the field, in the form "<field>: <problem>", which the handlers send
 * as the 400 reply's detail.
 *
 * Rules (docs/api.md repeats them for clients):
 * - Query strings: '&'-separated key=value pairs, percent-decoding, '+' is a
 *   space; at most PARAMS_QUERY_MAX bytes and PARAMS_MAX_PAIRS pairs; a key
 *   given twice is an error; a key without '=' has the empty value.
 * - Bodies: one JSON object; a key given twice is an error; null counts as
 *   absent. An empty (or all-whitespace) body is no body.
 * - A field may come from the query string or from the body, not both.
 * - Text must be valid UTF-8 without NUL bytes. */
#ifndef ENMS_API_PARAMS_H
#define ENMS_API_PARAMS_H

#include <stddef.h>

#define PARAMS_MAX        16   /* fields one endpoint may declare */
#define PARAMS_MAX_PAIRS  32   /* key=value pairs accepted in one query string */
#define PARAMS_QUERY_MAX  8192 /* bytes of query string accepted */
#define PARAMS_KEY_MAX    64   /* bytes of one field name */
#define PARAMS_PREFIX_MAX 32

enum param_type {
    PARAM_STRING, /* any text, at most max_len characters (code points) */
    PARAM_ENUM,   /* one of choices[] */
    PARAM_UUID,   /* canonical 8-4-4-4-12 hex; stored lower-case */
    PARAM_INT,    /* decimal integer in [min, max]; JSON: an integral number */
    PARAM_TIME,   /* ISO 8601 instant; stored as UTC "YYYY-MM-DDTHH:MM:SS.ffffffZ" */
    PARAM_OBJECT, /* JSON object, printed at most max_len bytes; query: its JSON text */
};

struct param_spec {
    const char *name;
    enum param_type type;
    int required;
    size_t max_len;             /* STRING: characters; OBJECT: bytes of its JSON text */
    const char *const *choices; /* ENUM: NULL-terminated list */
    long long min, max;         /* INT: inclusive range */
};

struct param_value {
    int present;
    char *text;     /* malloc'd, NUL-terminated: the value as text (normalised for
                       UUID, TIME and OBJECT, decimal for INT); owned by the set */
    long long num;  /* INT: the value; TIME: microseconds since 1970-01-01 UTC */
    int from_query; /* 1 when it came from the query string, 0 from the body */
};

/* A set of fields being read for one request. Initialise with params_init,
 * release with params_free. */
struct params {
    const struct param_spec *spec;
    size_t nspec;
    char prefix[PARAMS_PREFIX_MAX]; /* put before field names in messages ("params.") */
    struct param_value v[PARAMS_MAX];
};

/* Prepares p for the nspec (<= PARAMS_MAX) fields of spec, which must
 * outlive p. prefix (may be NULL) is prepended to field names in errors. */
void params_init(struct params *p, const struct param_spec *spec, size_t nspec, const char *prefix);

/* Frees every value's text and marks all fields absent. Safe to call twice. */
void params_free(struct params *p);

/* Reads a query string (without the '?'), len bytes. Returns 0, or
 * ENMS_EINVAL / ENMS_ETOOBIG / ENMS_ENOMEM with "<field>: <problem>" in err. */
int params_parse_query(struct params *p, const char *qs, size_t len, char *err, size_t errlen);

/* Reads a JSON object body of len bytes. Same returns as params_parse_query. */
int params_parse_json(struct params *p, const char *body, size_t len, char *err, size_t errlen);

/* True when JSON text s (len bytes) holds the escape \u0000, which cJSON
 * decodes to a NUL that silently cuts the string short; params_parse_json
 * refuses such bodies, and handlers that parse a body themselves call it. */
int params_json_has_nul(const char *s, size_t len);

/* Checks that every required field is present: 0 or ENMS_EINVAL naming the
 * first missing one ("<field>: required"). */
int params_check_required(struct params *p, char *err, size_t errlen);

/* All three above in order: the query (qs may be NULL), then the body (may be
 * NULL or blank), then the required check. */
int params_read(struct params *p, const char *qs, size_t qslen, const char *body, size_t bodylen,
                char *err, size_t errlen);

/* The value of field name, or NULL when it is absent (or not declared). */
const struct param_value *params_get(const struct params *p, const char *name);

/* The text of field name, or dflt when absent. */
const char *params_text(const struct params *p, const char *name, const char *dflt);

/* Percent-decodes src (len bytes; '+' becomes a space) into dst, which must
 * hold len + 1 bytes; *outlen receives the decoded length (dst is also
 * NUL-terminated). Returns 0 or ENMS_EINVAL on a malformed escape. */
int params_url_decode(const char *src, size_t len, char *dst, size_t *outlen);

/* True when s (len bytes) is valid UTF-8 (no overlongs, no surrogates, no
 * code points above U+10FFFF) and contains no NUL byte. */
int params_utf8_valid(const char *s, size_t len);

/* Parses an ISO 8601 instant: YYYY-MM-DD, or YYYY-MM-DD[T ]HH:MM[:SS[.f{1,9}]]
 * followed by Z, +HH:MM, -HH:MM, +HHMM, +HH, or nothing (UTC). A space where
 * the offset's '+' belongs is taken as '+', because '+' in a query string
 * decodes to a space. Years 1000-9999. Writes microseconds since the epoch
 * (fractions below a microsecond are dropped). Returns 0 or ENMS_EINVAL. */
int params_parse_time(const char *s, size_t len, long long *out_us);

/* Formats microseconds since the epoch as "YYYY-MM-DDTHH:MM:SS.ffffffZ" into
 * buf (at least 28 bytes). Returns 0 or ENMS_EINVAL for years outside
 * 1000-9999. */
int params_format_time(long long us, char *buf, size_t buflen);

#endif
