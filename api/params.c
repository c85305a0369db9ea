/* params.c - request field reading for the API (see params.h).
 *
 * Owns the decoding and validation of request fields only; what a field
 * means to an endpoint, and which status a failure gets, is the handler's
 * business. Every message starts with the field's name so that the
 * dashboard can show it next to the input. */
#include "params.h"
#include "../common/error.h"
#include "../common/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void params_init(struct params *p, const struct param_spec *spec, size_t nspec, const char *prefix)
{
    memset(p, 0, sizeof *p);
    p->spec = spec;
    p->nspec = nspec < PARAMS_MAX ? nspec : PARAMS_MAX;
    snprintf(p->prefix, sizeof p->prefix, "%s", prefix ? prefix : "");
}

void params_free(struct params *p)
{
    for (size_t i = 0; i < PARAMS_MAX; i++) {
        free(p->v[i].text);
        memset(&p->v[i], 0, sizeof p->v[i]);
    }
}

static int find_spec(const struct params *p, const char *name, size_t len)
{
    for (size_t i = 0; i < p->nspec; i++) {
        if (strlen(p->spec[i].name) == len && memcmp(p->spec[i].name, name, len) == 0)
            return (int)i;
    }
    return -1;
}

const struct param_value *params_get(const struct params *p, const char *name)
{
    int i = find_spec(p, name, strlen(name));
    return i >= 0 && p->v[i].present ? &p->v[i] : NULL;
}

const char *params_text(const struct params *p, const char *name, const char *dflt)
{
    const struct param_value *v = params_get(p, name);
    return v ? v->text : dflt;
}

int params_utf8_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = u[i];
        size_t n;
        unsigned cp;
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0; /* continuation byte first, or 0xC0/0xC1/0xF5+ (overlong or too big) */
        }
        if (len - i <= n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((u[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (u[i + k] & 0x3F);
        }
        /* Overlong 3- and 4-byte forms, UTF-16 surrogates, beyond U+10FFFF. */
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* Code points in valid UTF-8 text. */
static size_t utf8_length(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    }
    return n;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int params_url_decode(const char *src, size_t len, char *dst, size_t *outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '%') {
            if (len - i < 3)
                return ENMS_EINVAL;
            int hi = hex_value(src[i + 1]);
            int lo = hex_value(src[i + 2]);
            if (hi < 0 || lo < 0)
                return ENMS_EINVAL;
            dst[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (src[i] == '+') {
            dst[o++] = ' ';
        } else {
            dst[o++] = src[i];
        }
    }
    dst[o] = '\0';
    *outlen = o;
    return ENMS_OK;
}

/* --- ISO 8601 ------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (after Howard
 * Hinnant's days_from_civil: the year is shifted to start in March so the
 * leap day comes last). */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static void civil_from_days(long long z, long long *y, unsigned *m, unsigned *d)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (long long)yoe + era * 400 + (*m <= 2);
}

static int days_in_month(long long y, unsigned m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return days[m - 1];
}

/* Reads exactly n digits at s[*i]; -1 when they are not all digits. */
static long digits(const char *s, size_t len, size_t *i, int n)
{
    long v = 0;
    if (len - *i < (size_t)n)
        return -1;
    for (int k = 0; k < n; k++) {
        char c = s[*i + (size_t)k];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *i += (size_t)n;
    return v;
}

int params_parse_time(const char *s, size_t len, long long *out_us)
{
    size_t i = 0;
    long hh = 0, mi = 0, ss = 0, frac_us = 0, off_s = 0;
    long y = digits(s, len, &i, 4);
    if (y < 1000 || i >= len || s[i++] != '-')
        return ENMS_EINVAL;
    long mo = digits(s, len, &i, 2);
    if (mo < 1 || mo > 12 || i >= len || s[i++] != '-')
        return ENMS_EINVAL;
    long d = digits(s, len, &i, 2);
    if (d < 1 || d > days_in_month(y, (unsigned)mo))
        return ENMS_EINVAL;
    if (i < len) {
        if (s[i] != 'T' && s[i] != 't' && s[i] != ' ')
            return ENMS_EINVAL;
        i++;
        hh = digits(s, len, &i, 2);
        if (hh < 0 || hh > 23 || i >= len || s[i++] != ':')
            return ENMS_EINVAL;
        mi = digits(s, len, &i, 2);
        if (mi < 0 || mi > 59)
            return ENMS_EINVAL;
        if (i < len && s[i] == ':') {
            i++;
            ss = digits(s, len, &i, 2);
            if (ss < 0 || ss > 59)
                return ENMS_EINVAL;
            if (i < len && (s[i] == '.' || s[i] == ',')) {
                int nd = 0;
                i++;
                while (i < len && s[i] >= '0' && s[i] <= '9') {
                    if (nd < 6)
                        frac_us = frac_us * 10 + (s[i] - '0');
                    nd++;
                    i++;
                }
                if (nd == 0 || nd > 9)
                    return ENMS_EINVAL;
                for (int k = nd; k < 6; k++)
                    frac_us *= 10;
            }
        }
        if (i < len) {
            char sign = s[i++];
            if (sign == 'Z' || sign == 'z') {
                if (i != len)
                    return ENMS_EINVAL;
            } else if (sign == '+' || sign == '-' || sign == ' ') {
                long oh = digits(s, len, &i, 2), om = 0;
                if (oh < 0 || oh > 23)
                    return ENMS_EINVAL;
                if (i < len && s[i] == ':')
                    i++;
                if (i < len) {
                    om = digits(s, len, &i, 2);
                    if (om < 0 || om > 59)
                        return ENMS_EINVAL;
                }
                if (i != len)
                    return ENMS_EINVAL;
                off_s = (oh * 3600 + om * 60) * (sign == '-' ? -1 : 1);
            } else {
                return ENMS_EINVAL;
            }
        }
    }
    long long days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    long long secs = days * 86400 + hh * 3600 + mi * 60 + ss - off_s;
    *out_us = secs * 1000000 + frac_us;
    return ENMS_OK;
}

int params_format_time(long long us, char *buf, size_t buflen)
{
    long long secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    long long frac = us - secs * 1000000;
    long long days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    long long rem = secs - days * 86400;
    long long y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 1000 || y > 9999 || buflen < 28)
        return ENMS_EINVAL;
    snprintf(buf, buflen, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%06lldZ", y, m, d, rem / 3600,
             rem / 60 % 60, rem % 60, frac);
    return ENMS_OK;
}

/* --- one field ----------------------------------------------------------- */

static int is_uuid(const char *s, size_t len)
{
    if (len != 36)
        return 0;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (hex_value(s[i]) < 0) {
            return 0;
        }
    }
    return 1;
}

/* Strict decimal integer: optional '-', 1-18 digits, nothing else. */
static int parse_int(const char *s, size_t len, long long *out)
{
    size_t i = 0;
    int neg = 0;
    long long v = 0;
    if (i < len && s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i == len || len - i > 18)
        return ENMS_EINVAL;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return ENMS_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return ENMS_OK;
}

static int fail_field(const struct params *p, char *err, size_t errlen, int code,
                      const struct param_spec *sp, const char *fmt, const char *arg)
{
    char what[256];
    snprintf(what, sizeof what, fmt, arg);
    return enms_fail(err, errlen, code, "%s%s: %s", p->prefix, sp->name, what);
}

static int fail_enum(const struct params *p, char *err, size_t errlen, const struct param_spec *sp)
{
    char list[256] = "";
    size_t used = 0;
    for (size_t i = 0; sp->choices && sp->choices[i]; i++) {
        int n = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", sp->choices[i]);
        if (n < 0 || (size_t)n >= sizeof list - used)
            break;
        used += (size_t)n;
    }
    return fail_field(p, err, errlen, ENMS_EINVAL, sp, "must be one of %s", list);
}

static int fail_int(const struct params *p, char *err, size_t errlen, const struct param_spec *sp)
{
    return enms_fail(err, errlen, ENMS_EINVAL, "%s%s: must be an integer from %lld to %lld",
                     p->prefix, sp->name, sp->min, sp->max);
}

/* Stores text (len bytes, valid UTF-8 without NUL) as field idx, converting
 * and checking it by the field's type. The caller checked presence. */
static int set_from_text(struct params *p, int idx, const char *text, size_t len, int from_query,
                         char *err, size_t errlen)
{
    const struct param_spec *sp = &p->spec[idx];
    struct param_value *v = &p->v[idx];
    char *copy = NULL;
    long long num = 0;
    int rc = ENMS_OK;

    switch (sp->type) {
    case PARAM_STRING:
        copy = strndup(text, len);
        if (!copy)
            return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        if (utf8_length(copy) > sp->max_len) {
            char limit[32];
            snprintf(limit, sizeof limit, "%zu", sp->max_len);
            rc = fail_field(p, err, errlen, ENMS_EINVAL, sp, "longer than %s characters", limit);
            goto fail;
        }
        break;
    case PARAM_ENUM: {
        size_t k = 0;
        for (; sp->choices && sp->choices[k]; k++) {
            if (strlen(sp->choices[k]) == len && memcmp(sp->choices[k], text, len) == 0)
                break;
        }
        if (!sp->choices || !sp->choices[k])
            return fail_enum(p, err, errlen, sp);
        copy = strdup(sp->choices[k]);
        break;
    }
    case PARAM_UUID:
        if (!is_uuid(text, len))
            return fail_field(p, err, errlen, ENMS_EINVAL, sp, "%s",
                              "must be a UUID such as c0000000-0000-0000-0000-000000000001");
        copy = strndup(text, len);
        if (copy) {
            for (char *c = copy; *c; c++)
                *c = (*c >= 'A' && *c <= 'F') ? (char)(*c - 'A' + 'a') : *c;
        }
        break;
    case PARAM_INT:
        if (parse_int(text, len, &num) != ENMS_OK || num < sp->min || num > sp->max)
            return fail_int(p, err, errlen, sp);
        copy = malloc(24);
        if (copy)
            snprintf(copy, 24, "%lld", num);
        break;
    case PARAM_TIME:
        copy = malloc(32);
        if (!copy)
            break;
        if (params_parse_time(text, len, &num) != ENMS_OK ||
            params_format_time(num, copy, 32) != ENMS_OK) {
            rc = fail_field(p, err, errlen, ENMS_EINVAL, sp, "%s",
                            "must be an ISO 8601 time such as 2024-05-01T00:00:00Z");
            goto fail;
        }
        break;
    case PARAM_OBJECT: {
        char limit[32];
        snprintf(limit, sizeof limit, "%zu", sp->max_len);
        if (len > sp->max_len)
            return fail_field(p, err, errlen, ENMS_EINVAL, sp, "larger than %s bytes", limit);
        char jerr[128];
        cJSON *obj = json_parse(text, len, jerr, sizeof jerr);
        if (!obj || !cJSON_IsObject(obj)) {
            cJSON_Delete(obj);
            return fail_field(p, err, errlen, ENMS_EINVAL, sp, "%s", "must be a JSON object");
        }
        char *printed = json_print(obj);
        cJSON_Delete(obj);
        /* Copied so that every value is released by free() in params_free,
         * whatever allocator cJSON was given. */
        copy = printed ? strdup(printed) : NULL;
        cJSON_free(printed);
        break;
    }
    }
    if (!copy)
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
    v->present = 1;
    v->text = copy;
    v->num = num;
    v->from_query = from_query;
    return ENMS_OK;
fail:
    free(copy);
    return rc;
}

/* Checks a field name and finds its slot: unknown and repeated fields are
 * errors. Returns the slot index or a negative enms_err. */
static int claim_field(struct params *p, const char *key, size_t keylen, int from_query, char *err,
                       size_t errlen)
{
    /* Not echoed: a cut could split a UTF-8 sequence in the reply. */
    if (keylen > PARAMS_KEY_MAX)
        return enms_fail(err, errlen, ENMS_EINVAL, "unknown field: a name longer than %d bytes",
                         PARAMS_KEY_MAX);
    int idx = find_spec(p, key, keylen);
    if (idx < 0)
        return enms_fail(err, errlen, ENMS_EINVAL, "%s%.*s: unknown field", p->prefix, (int)keylen,
                         key);
    if (p->v[idx].present) {
        if (p->v[idx].from_query == from_query)
            return enms_fail(err, errlen, ENMS_EINVAL, "%s%s: given more than once", p->prefix,
                             p->spec[idx].name);
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "%s%s: given both in the query string and the body", p->prefix,
                         p->spec[idx].name);
    }
    return idx;
}

/* --- query strings ------------------------------------------------------- */

int params_parse_query(struct params *p, const char *qs, size_t len, char *err, size_t errlen)
{
    char key[PARAMS_KEY_MAX * 3 + 1];
    char *val = NULL;
    size_t pairs = 0;
    int rc = ENMS_OK;

    if (!qs || len == 0)
        return ENMS_OK;
    if (len > PARAMS_QUERY_MAX)
        return enms_fail(err, errlen, ENMS_ETOOBIG, "query string longer than %d bytes",
                         PARAMS_QUERY_MAX);
    val = malloc(len + 1);
    if (!val)
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
    size_t start = 0;
    while (start <= len) {
        size_t end = start;
        while (end < len && qs[end] != '&')
            end++;
        if (end > start) {
            if (++pairs > PARAMS_MAX_PAIRS) {
                rc = enms_fail(err, errlen, ENMS_EINVAL, "more than %d query parameters",
                               PARAMS_MAX_PAIRS);
                goto done;
            }
            size_t eq = start;
            while (eq < end && qs[eq] != '=')
                eq++;
            size_t klen_raw = eq - start, klen = 0, vlen = 0;
            /* An encoded name is at most three bytes per byte decoded. */
            if (klen_raw > sizeof key - 1) {
                rc = enms_fail(err, errlen, ENMS_EINVAL,
                               "unknown field: a name longer than %d bytes", PARAMS_KEY_MAX);
                goto done;
            }
            if (params_url_decode(qs + start, klen_raw, key, &klen) != ENMS_OK ||
                !params_utf8_valid(key, klen)) {
                rc = enms_fail(err, errlen, ENMS_EINVAL,
                               "query string: malformed parameter name (bad %%-escape or not "
                               "UTF-8)");
                goto done;
            }
            int idx = claim_field(p, key, klen, 1, err, errlen);
            if (idx < 0) {
                rc = idx;
                goto done;
            }
            const char *vraw = eq < end ? qs + eq + 1 : qs + end;
            size_t vlen_raw = eq < end ? end - eq - 1 : 0;
            if (params_url_decode(vraw, vlen_raw, val, &vlen) != ENMS_OK) {
                rc = enms_fail(err, errlen, ENMS_EINVAL, "%s%s: malformed %%-escape", p->prefix,
                               p->spec[idx].name);
                goto done;
            }
            if (!params_utf8_valid(val, vlen)) {
                rc = enms_fail(err, errlen, ENMS_EINVAL, "%s%s: not valid UTF-8 text", p->prefix,
                               p->spec[idx].name);
                goto done;
            }
            rc = set_from_text(p, idx, val, vlen, 1, err, errlen);
            if (rc != ENMS_OK)
                goto done;
        }
        start = end + 1;
    }
done:
    free(val);
    return rc;
}

/* --- JSON bodies --------------------------------------------------------- */

static int set_from_json(struct params *p, int idx, const cJSON *item, char *err, size_t errlen)
{
    const struct param_spec *sp = &p->spec[idx];
    if (sp->type == PARAM_OBJECT) {
        if (!cJSON_IsObject(item))
            return fail_field(p, err, errlen, ENMS_EINVAL, sp, "%s", "must be a JSON object");
        char *text = json_print(item);
        if (!text)
            return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        int rc = set_from_text(p, idx, text, strlen(text), 0, err, errlen);
        cJSON_free(text);
        return rc;
    }
    if (sp->type == PARAM_INT && cJSON_IsNumber(item)) {
        double d = item->valuedouble;
        char buf[32];
        if (!isfinite(d) || d != floor(d) || fabs(d) > 1e15)
            return fail_int(p, err, errlen, sp);
        snprintf(buf, sizeof buf, "%.0f", d);
        return set_from_text(p, idx, buf, strlen(buf), 0, err, errlen);
    }
    if (!cJSON_IsString(item) || !item->valuestring) {
        if (sp->type == PARAM_INT)
            return fail_int(p, err, errlen, sp);
        return fail_field(p, err, errlen, ENMS_EINVAL, sp, "%s", "must be a string");
    }
    return set_from_text(p, idx, item->valuestring, strlen(item->valuestring), 0, err, errlen);
}

static int is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return 0;
    }
    return 1;
}

/* True when the JSON text holds the escape \u0000: cJSON decodes it to a NUL
 * byte that ends the C string, so "a\u0000b" would silently read as "a".
 * Backslashes only occur inside strings in valid JSON, and skipping the
 * escaped character keeps an escaped backslash ("\\u0000") from matching. */
int params_json_has_nul(const char *s, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] != '\\')
            continue;
        if (s[i + 1] == 'u' && len - i >= 6 && memcmp(s + i + 2, "0000", 4) == 0)
            return 1;
        i++;
    }
    return 0;
}

int params_parse_json(struct params *p, const char *body, size_t len, char *err, size_t errlen)
{
    char jerr[128];
    int seen[PARAMS_MAX] = {0};
    int rc = ENMS_OK;
    if (!body || is_blank(body, len))
        return ENMS_OK;
    if (!params_utf8_valid(body, len))
        return enms_fail(err, errlen, ENMS_EINVAL, "body: not valid UTF-8 text");
    if (params_json_has_nul(body, len))
        return enms_fail(err, errlen, ENMS_EINVAL, "body: text must not contain NUL (\\u0000)");
    cJSON *root = json_parse(body, len, jerr, sizeof jerr);
    if (!root)
        return enms_fail(err, errlen, ENMS_EINVAL, "body: %s", jerr);
    if (!cJSON_IsObject(root)) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "body: must be a JSON object");
        goto done;
    }
    for (const cJSON *item = root->child; item; item = item->next) {
        const char *name = item->string ? item->string : "";
        int idx = claim_field(p, name, strlen(name), 0, err, errlen);
        if (idx < 0) {
            rc = idx;
            goto done;
        }
        /* Counted apart from presence, because a null ("not given") must
         * still make a second mention of the name an error. */
        if (seen[idx]++) {
            rc = enms_fail(err, errlen, ENMS_EINVAL, "%s%s: given more than once", p->prefix,
                           p->spec[idx].name);
            goto done;
        }
        if (cJSON_IsNull(item))
            continue;
        rc = set_from_json(p, idx, item, err, errlen);
        if (rc != ENMS_OK)
            goto done;
    }
done:
    cJSON_Delete(root);
    return rc;
}

int params_check_required(struct params *p, char *err, size_t errlen)
{
    for (size_t i = 0; i < p->nspec; i++) {
        if (p->spec[i].required && !p->v[i].present)
            return enms_fail(err, errlen, ENMS_EINVAL, "%s%s: required", p->prefix,
                             p->spec[i].name);
    }
    return ENMS_OK;
}

int params_read(struct params *p, const char *qs, size_t qslen, const char *body, size_t bodylen,
                char *err, size_t errlen)
{
    int rc = params_parse_query(p, qs, qslen, err, errlen);
    if (rc == ENMS_OK)
        rc = params_parse_json(p, body, bodylen, err, errlen);
    if (rc == ENMS_OK)
        rc = params_check_required(p, err, errlen);
    return rc;
}
