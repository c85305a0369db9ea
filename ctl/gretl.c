/* gretl.c - reads the flat XML of an hourly gretl data file and writes import
 * CSV (see gretl.h). It owns the .gdt layout and the unit conversions; value
 * rules (ranges, calendar) stay with csv_reading.c, which checks the output
 * like any user file. Not a general XML parser: it finds the few elements
 * gretl writes and refuses the constructs that could hide or expand text. */
#include "gretl.h"

#include "../common/error.h"
#include "csv_reading.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOT_FOUND ((size_t)-1)

/* Bytes of [from, end) are searched; the buffer need not end in NUL. */
struct text {
    const char *p;
    size_t len;
};

/* Growing output buffer; the first failed allocation sticks. */
struct out {
    char *buf;
    size_t len;
    size_t cap;
    int oom;
};

static size_t find(struct text t, size_t from, size_t end, const char *needle)
{
    size_t n = strlen(needle);
    if (end > t.len)
        end = t.len;
    for (size_t i = from; i + n <= end; i++)
        if (t.p[i] == needle[0] && memcmp(t.p + i, needle, n) == 0)
            return i;
    return NOT_FOUND;
}

static int is_xml_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Finds the start tag "<name" (followed by space, '/' or '>') at or after
 * from and before end; sets *tag_end to the offset of its '>'. */
static size_t find_tag(struct text t, size_t from, size_t end, const char *name, size_t *tag_end)
{
    char open[64];
    size_t n = (size_t)snprintf(open, sizeof open, "<%s", name);

    for (size_t at = find(t, from, end, open); at != NOT_FOUND; at = find(t, at + 1, end, open)) {
        size_t after = at + n;
        if (after >= t.len)
            return NOT_FOUND;
        char c = t.p[after];
        if (!(is_xml_space(c) || c == '/' || c == '>'))
            continue;
        size_t gt = find(t, after, end, ">");
        if (gt == NOT_FOUND)
            return NOT_FOUND;
        *tag_end = gt;
        return at;
    }
    return NOT_FOUND;
}

/* Copies attribute name's value from the tag text [at, gt) into out. Returns
 * 0, or -1 when the attribute is absent, too long or holds an entity (we do
 * not decode any). */
static int attr(struct text t, size_t at, size_t gt, const char *name, char *out, size_t outlen)
{
    char pat[64];
    size_t n = (size_t)snprintf(pat, sizeof pat, "%s=\"", name);

    for (size_t i = find(t, at, gt, pat); i != NOT_FOUND; i = find(t, i + 1, gt, pat)) {
        if (i == 0 || !is_xml_space(t.p[i - 1]))
            continue; /* "xfrequency=" is not "frequency=" */
        size_t v = i + n;
        size_t q = find(t, v, gt, "\"");
        if (q == NOT_FOUND || q - v >= outlen || memchr(t.p + v, '&', q - v))
            return -1;
        memcpy(out, t.p + v, q - v);
        out[q - v] = '\0';
        return 0;
    }
    return -1;
}

static void out_append(struct out *o, const char *s, size_t n)
{
    if (o->oom)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *grown = realloc(o->buf, cap);
        if (!grown) {
            o->oom = 1;
            return;
        }
        o->buf = grown;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

/* Parses one whitespace-delimited value: "NA" (gretl's missing value) sets
 * *missing; otherwise a plain decimal number. Returns 0 or -1. */
static int parse_value(const char *s, size_t n, double *v, int *missing)
{
    char tmp[64];

    *missing = 0;
    if (n == 2 && memcmp(s, "NA", 2) == 0) {
        *missing = 1;
        return 0;
    }
    if (n == 0 || n >= sizeof tmp)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E'))
            return -1;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end = NULL;
    *v = strtod(tmp, &end);
    return (end == tmp + n && isfinite(*v)) ? 0 : -1;
}

/* Parses "D.HH" of startobs into a 0-based hour index. */
static int parse_startobs(const char *s, long *index)
{
    char *end = NULL;
    long day = strtol(s, &end, 10);
    if (end == s || *end != '.' || day < 1 || day > 100000)
        return -1;
    const char *h = end + 1;
    if (!(h[0] >= '0' && h[0] <= '9' && h[1] >= '0' && h[1] <= '9' && h[2] == '\0'))
        return -1;
    long hour = (h[0] - '0') * 10 + (h[1] - '0');
    if (hour < 1 || hour > 24)
        return -1;
    *index = (day - 1) * 24 + (hour - 1);
    return 0;
}

int gretl_to_csv(const char *buf, size_t len, const char *machine_id, int year, char **csv,
                 size_t *csv_len, size_t *nobs, char *err, size_t errlen)
{
    struct text t = {buf, len};
    struct out o = {NULL, 0, 0, 0};
    char value[64];
    int rc = ENMS_EINVAL;
    int var_load = -1, var_temp = -1, var_day_hour = -1;
    int nvars = 0;
    long start_index = 0;
    long declared = 0;
    size_t at, gt, end_vars, obs_end;
    size_t count = 0;

    *csv = NULL;
    *csv_len = 0;
    *nobs = 0;
    /* A fixed-width id keeps every output line well inside line[] below. */
    if (strlen(machine_id) != 36)
        return enms_fail(err, errlen, ENMS_EINVAL, "machine id must be a 36-character UUID");
    if (len > GRETL_MAX_FILE)
        return enms_fail(err, errlen, ENMS_ETOOBIG, "gretl file larger than %u bytes",
                         GRETL_MAX_FILE);
    if (len >= 2 && (unsigned char)buf[0] == 0x1f && (unsigned char)buf[1] == 0x8b)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "gretl file is gzip-compressed: decompress it first (gzip -dc)");
    /* Entities could expand or pull in outside text; comments and CDATA could
     * hide tags from this simple reader. gretl writes none of them. */
    if (find(t, 0, len, "<!ENTITY") != NOT_FOUND || find(t, 0, len, "<!--") != NOT_FOUND ||
        find(t, 0, len, "<![CDATA[") != NOT_FOUND)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "gretl file uses entities, comments or CDATA, which this reader refuses");

    at = find_tag(t, 0, len, "gretldata", &gt);
    if (at == NOT_FOUND)
        return enms_fail(err, errlen, ENMS_EINVAL, "not a gretl data file (no <gretldata>)");
    if (attr(t, at, gt, "frequency", value, sizeof value) < 0 || strcmp(value, "24") != 0)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "gretl data is not hourly (frequency=\"24\" expected)");
    if (attr(t, at, gt, "startobs", value, sizeof value) < 0 ||
        parse_startobs(value, &start_index) < 0)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "gretl startobs missing or not of the form D.HH (e.g. 1.01)");

    at = find_tag(t, gt, len, "variables", &gt);
    end_vars = find(t, at == NOT_FOUND ? len : gt, len, "</variables>");
    if (at == NOT_FOUND || end_vars == NOT_FOUND)
        return enms_fail(err, errlen, ENMS_EINVAL, "gretl file has no <variables> list");
    for (size_t from = gt; (at = find_tag(t, from, end_vars, "variable", &gt)) != NOT_FOUND;
         from = gt) {
        if (nvars >= GRETL_MAX_VARS)
            return enms_fail(err, errlen, ENMS_ETOOBIG, "gretl file has more than %d variables",
                             GRETL_MAX_VARS);
        if (attr(t, at, gt, "name", value, sizeof value) < 0)
            return enms_fail(err, errlen, ENMS_EINVAL, "gretl variable %d has no usable name",
                             nvars + 1);
        if (strcmp(value, "load") == 0)
            var_load = nvars;
        else if (strcmp(value, "temp") == 0)
            var_temp = nvars;
        else if (strcmp(value, "day_hour") == 0)
            var_day_hour = nvars;
        nvars++;
    }
    if (var_load < 0)
        return enms_fail(err, errlen, ENMS_EINVAL, "gretl file has no variable named \"load\"");

    at = find_tag(t, end_vars, len, "observations", &gt);
    obs_end = find(t, at == NOT_FOUND ? len : gt, len, "</observations>");
    if (at == NOT_FOUND || obs_end == NOT_FOUND)
        return enms_fail(err, errlen, ENMS_EINVAL, "gretl file has no <observations>");
    if (attr(t, at, gt, "count", value, sizeof value) == 0) {
        char *e = NULL;
        declared = strtol(value, &e, 10);
        if (*e != '\0' || declared < 0 || declared > GRETL_MAX_OBS)
            return enms_fail(err, errlen, ENMS_EINVAL,
                             "gretl observations count \"%s\" is not in 0-%d", value,
                             GRETL_MAX_OBS);
    }
    if (attr(t, at, gt, "labels", value, sizeof value) == 0 && strcmp(value, "false") != 0)
        return enms_fail(err, errlen, ENMS_EINVAL,
                         "gretl observations with labels are not supported (labels=\"false\" "
                         "expected)");

    out_append(&o, "machine_id,ts,energy_kwh", 24);
    if (var_temp >= 0)
        out_append(&o, ",outdoor_temp_c", 15);
    out_append(&o, "\n", 1);

    int64_t base = csv_reading_epoch(year, 1, 1, 0, 0, 0);
    for (size_t from = gt; (at = find_tag(t, from, obs_end, "obs", &gt)) != NOT_FOUND;) {
        size_t close = find(t, gt, obs_end, "</obs>");
        double vals[GRETL_MAX_VARS];
        int missing[GRETL_MAX_VARS];
        int nv = 0;

        if (close == NOT_FOUND || t.p[gt - 1] == '/') {
            rc = enms_fail(err, errlen, ENMS_EINVAL, "gretl obs %zu is not closed", count + 1);
            goto fail;
        }
        if (count >= GRETL_MAX_OBS) {
            rc = enms_fail(err, errlen, ENMS_ETOOBIG, "gretl file has more than %d observations",
                           GRETL_MAX_OBS);
            goto fail;
        }
        for (size_t i = gt + 1; i < close;) {
            while (i < close && is_xml_space(t.p[i]))
                i++;
            if (i >= close)
                break;
            size_t s = i;
            while (i < close && !is_xml_space(t.p[i]))
                i++;
            if (nv >= nvars || parse_value(t.p + s, i - s, &vals[nv], &missing[nv]) < 0) {
                rc = enms_fail(err, errlen, ENMS_EINVAL,
                               "gretl obs %zu: expected %d numbers or NA separated by spaces",
                               count + 1, nvars);
                goto fail;
            }
            nv++;
        }
        if (nv != nvars) {
            rc = enms_fail(err, errlen, ENMS_EINVAL, "gretl obs %zu: %d values for %d variables",
                           count + 1, nv, nvars);
            goto fail;
        }

        long index = start_index + (long)count;
        /* The day_hour marker proves the observations are in the order we
         * number them: an out-of-order file would otherwise load silently
         * shifted. */
        if (var_day_hour >= 0) {
            double expect = (double)(index / 24 + 1) + (double)(index % 24 + 1) / 100.0;
            if (missing[var_day_hour] || fabs(vals[var_day_hour] - expect) > 1e-6) {
                rc = enms_fail(err, errlen, ENMS_EINVAL,
                               "gretl obs %zu: day_hour is not %.2f (observations out of order?)",
                               count + 1, expect);
                goto fail;
            }
        }

        char ts[CSV_READING_TS_TEXT];
        char line[256];
        int n;
        csv_reading_format_ts(base + (int64_t)index * 3600, ts);
        n = snprintf(line, sizeof line, "%s,%s,", machine_id, ts);
        if (!missing[var_load])
            n += snprintf(line + n, sizeof line - (size_t)n, "%.17g", vals[var_load] * 1000.0);
        if (var_temp >= 0) {
            n += snprintf(line + n, sizeof line - (size_t)n, ",");
            if (!missing[var_temp])
                n += snprintf(line + n, sizeof line - (size_t)n, "%.17g",
                              (vals[var_temp] - 32.0) * 5.0 / 9.0);
        }
        n += snprintf(line + n, sizeof line - (size_t)n, "\n");
        out_append(&o, line, (size_t)n);
        count++;
        from = close + 6;
    }
    if (declared > 0 && (size_t)declared != count) {
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "gretl file declares %ld observations but holds %zu", declared, count);
        goto fail;
    }
    if (o.oom) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory converting the gretl file");
        goto fail;
    }
    *csv = o.buf;
    *csv_len = o.len;
    *nobs = count;
    return ENMS_OK;

fail:
    free(o.buf);
    return rc;
}
