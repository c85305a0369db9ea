/* json_rows.c - JSON text from PostgreSQL result rows (see json_rows.h). */
#include "json_rows.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Type OIDs of the built-in types (pg_type.h is a server header; these
 * numbers are fixed by PostgreSQL's catalog and never change). */
enum {
    OID_BOOL = 16,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_OID = 26,
    OID_JSON = 114,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_TIMESTAMP = 1114,
    OID_TIMESTAMPTZ = 1184,
    OID_NUMERIC = 1700,
    OID_JSONB = 3802,
};

/* Makes room for n more bytes and the NUL; 0 or -1 (failed set). */
static int reserve(struct json_text *t, size_t n)
{
    if (t->failed)
        return -1;
    if (t->len + n + 1 <= t->cap)
        return 0;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < t->len + n + 1) {
        if (cap > ((size_t)-1) / 2) {
            t->failed = 1;
            return -1;
        }
        cap *= 2;
    }
    char *buf = realloc(t->buf, cap);
    if (!buf) {
        t->failed = 1;
        return -1;
    }
    t->buf = buf;
    t->cap = cap;
    return 0;
}

void json_text_raw(struct json_text *t, const char *s, size_t n)
{
    if (reserve(t, n) != 0)
        return;
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

void json_text_string(struct json_text *t, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(s);
    /* Room for the worst case (every byte a \u00XX escape) up front, so the
     * loop writes without checking: this is the hot path of a list. */
    if (n > ((size_t)-1 - 3) / 6 || reserve(t, 6 * n + 2) != 0) {
        t->failed = 1;
        return;
    }
    char *out = t->buf + t->len;
    *out++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *out++ = (char)c;
            continue;
        }
        *out++ = '\\';
        switch (c) {
        case '"':
            *out++ = '"';
            break;
        case '\\':
            *out++ = '\\';
            break;
        case '\b':
            *out++ = 'b';
            break;
        case '\f':
            *out++ = 'f';
            break;
        case '\n':
            *out++ = 'n';
            break;
        case '\r':
            *out++ = 'r';
            break;
        case '\t':
            *out++ = 't';
            break;
        default:
            memcpy(out, "u00", 3);
            out[3] = hex[c >> 4];
            out[4] = hex[c & 15];
            out += 5;
        }
    }
    *out++ = '"';
    *out = '\0';
    t->len = (size_t)(out - t->buf);
}

/* PostgreSQL's text of a timestamp ("2026-11-28 09:00:00.5+00", ISO
 * DateStyle) as to_json writes it: a 'T' between date and time, and a zone
 * offset of whole hours written with its minutes ("+00:00"). */
static void timestamp_iso(struct json_text *t, const char *s, int with_zone)
{
    char buf[80];
    size_t n = strlen(s);
    const char *space = strchr(s, ' ');
    if (n + 4 > sizeof buf || !space) { /* infinity, or not ISO: as it is */
        json_text_string(t, s);
        return;
    }
    memcpy(buf, s, n + 1);
    buf[space - s] = 'T';
    if (with_zone) {
        /* The offset's sign is the last '+' or '-' after the time. */
        const char *sign = NULL;
        for (const char *p = buf + (space - s) + 1; *p; p++)
            if (*p == '+' || *p == '-')
                sign = p;
        if (sign && strlen(sign) == 3)
            memcpy(buf + n, ":00", 4);
    }
    json_text_string(t, buf);
}

/* A float's text is a JSON number unless it is NaN or +-Infinity. */
static int finite_text(const char *s)
{
    const char *p = s[0] == '-' ? s + 1 : s;
    return *p != 'N' && *p != 'I';
}

void json_text_pg_value(struct json_text *t, const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col)) {
        json_text_raw(t, "null", 4);
        return;
    }
    const char *v = PQgetvalue(res, row, col);
    switch (PQftype(res, col)) {
    case OID_BOOL:
        if (v[0] == 't')
            json_text_raw(t, "true", 4);
        else
            json_text_raw(t, "false", 5);
        return;
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
    case OID_JSON:
    case OID_JSONB:
        json_text_raw(t, v, (size_t)PQgetlength(res, row, col));
        return;
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC:
        if (finite_text(v))
            json_text_raw(t, v, (size_t)PQgetlength(res, row, col));
        else
            json_text_string(t, v);
        return;
    case OID_TIMESTAMPTZ:
        timestamp_iso(t, v, 1);
        return;
    case OID_TIMESTAMP:
        timestamp_iso(t, v, 0);
        return;
    default:
        json_text_string(t, v);
    }
}

/* The keys of a result's first ncols columns, each written once as
 * `"name":` into one buffer; key i is at text.buf + off[i], off[i + 1] -
 * off[i] bytes long. 0, or -1 when out of memory (nothing to free then). */
struct pg_keys {
    struct json_text text;
    size_t *off; /* ncols + 1 entries */
};

static void pg_keys_free(struct pg_keys *k)
{
    free(k->off);
    free(k->text.buf);
}

static int pg_keys_init(struct pg_keys *k, const PGresult *res, int ncols)
{
    memset(k, 0, sizeof *k);
    k->off = malloc(((size_t)ncols + 1) * sizeof *k->off);
    if (!k->off)
        return -1;
    for (int c = 0; c < ncols; c++) {
        k->off[c] = k->text.len;
        json_text_string(&k->text, PQfname(res, c));
        json_text_raw(&k->text, ":", 1);
    }
    k->off[ncols] = k->text.len;
    if (k->text.failed) {
        pg_keys_free(k);
        return -1;
    }
    return 0;
}

static void pg_object(struct json_text *t, const struct pg_keys *k, const PGresult *res, int row,
                      int ncols)
{
    json_text_raw(t, "{", 1);
    for (int c = 0; c < ncols; c++) {
        if (c > 0)
            json_text_raw(t, ",", 1);
        json_text_raw(t, k->text.buf + k->off[c], k->off[c + 1] - k->off[c]);
        json_text_pg_value(t, res, row, c);
    }
    json_text_raw(t, "}", 1);
}

void json_text_pg_object(struct json_text *t, const PGresult *res, int row, int ncols)
{
    struct pg_keys k;
    if (pg_keys_init(&k, res, ncols) != 0) {
        t->failed = 1;
        return;
    }
    pg_object(t, &k, res, row, ncols);
    pg_keys_free(&k);
}

void json_text_pg_array(struct json_text *t, const PGresult *res, int ncols, int last_first)
{
    struct pg_keys k;
    int n = PQntuples(res);
    if (pg_keys_init(&k, res, ncols) != 0) {
        t->failed = 1;
        return;
    }
    json_text_raw(t, "[", 1);
    for (int i = 0; i < n; i++) {
        if (i > 0)
            json_text_raw(t, ",", 1);
        pg_object(t, &k, res, last_first ? n - 1 - i : i, ncols);
    }
    json_text_raw(t, "]", 1);
    pg_keys_free(&k);
}
