/* import.c - `enmsctl import`: loads hourly readings from CSV, or from the
 * gretl sample series, all or nothing.
 *
 * Pass 1 reads the whole input and validates every line (csv_reading.c),
 * finds duplicate (machine_id, ts) pairs and checks that every machine
 * exists; any problem is reported with its line and nothing is written.
 * Pass 2 loads the rows in one transaction: COPY into a temporary table,
 * then one INSERT ... ON CONFLICT into energy_readings, so a re-import is
 * harmless. Field syntax and value rules live in csv_reading.c, the .gdt
 * reader in gretl.c; this file owns the file handling, the cross-line checks
 * and the database work. */
#include "ctl.h"

#include "../common/error.h"
#include "../common/pg.h"
#include "csv_reading.h"
#include "gretl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Largest input read; a year of hourly readings for 500 machines is about
 * 400 MiB of CSV. Bigger loads should be split per machine or per year. */
#define IMPORT_MAX_BYTES (512ull * 1024 * 1024)
/* Problems printed in full; the rest are only counted, so a file in the
 * wrong format does not scroll away the first, most useful messages. */
#define IMPORT_SHOWN_PROBLEMS 50
/* Read buffer; must hold at least one longest line and its line end. */
#define READER_BUF (64 * 1024)
/* COPY data is sent in chunks of this size. */
#define COPY_CHUNK       (64 * 1024)
#define MACHINE_NAME_MAX 200

static const char USAGE[] =
    "usage: enmsctl import [--dry-run] [--replace] FILE.csv      (FILE - reads stdin)\n"
    "       enmsctl import [--dry-run] [--replace] --gretl FILE.gdt --machine-id UUID\n"
    "                      [--name NAME] [--year-offset N]\n"
    "\n"
    "CSV columns: machine_id, ts, energy_kwh [, production_count] [, outdoor_temp_c]\n"
    "Every line is checked first; with any bad line nothing is loaded. See docs/import.md.\n"
    "  --dry-run       validate and check machines, write nothing\n"
    "  --replace       overwrite readings already stored for the same machine and hour\n"
    "  --gretl FILE    load gretl's hourly load/temperature series (data10-2.gdt)\n"
    "  --machine-id    the machine the gretl series is loaded as (created when missing)\n"
    "  --name NAME     name of that machine when created (default Utility-Load-1992)\n"
    "  --year-offset N shift the gretl series by N years (default 0: January 1992)\n";

struct import_opts {
    int dry_run;
    int replace;
    const char *file;  /* CSV path or "-" */
    const char *gretl; /* .gdt path, or NULL for CSV mode */
    char machine_id[37];
    const char *name;
    int year_offset;
};

/* One validated row, kept compact: a large file holds millions. */
struct row {
    int64_t ts;
    double energy_kwh;
    double production_count;
    double outdoor_temp_c;
    uint32_t machine; /* index into struct machine_set */
    uint32_t line;
    uint8_t has_production;
    uint8_t has_temp;
};

/* Distinct machine ids in input order, with an open-addressing index so a
 * file with many machines is not quadratic. */
struct machine_set {
    char (*ids)[37];
    uint32_t *first_line;
    size_t *nrows;
    unsigned char *known; /* 1 when found in the machines table */
    size_t count;
    size_t cap;
    uint32_t *slots; /* index + 1; 0 is empty */
    size_t nslots;   /* a power of two, at least twice count */
};

struct batch {
    struct row *rows;
    size_t count;
    size_t cap;
    struct machine_set machines;
    int has_production_col; /* the header named the column */
    int has_temp_col;
};

/* Where problems go: stderr, the first IMPORT_SHOWN_PROBLEMS in full. */
struct problems {
    const char *unit; /* "line", or "obs" for gretl input */
    long offset;      /* added to line numbers: gretl obs N is CSV line N+1 */
    unsigned long total;
};

/* Line-at-a-time reader with a bounded buffer: never holds more than one
 * line, and a line too long to be valid is skipped rather than stored. */
struct line_reader {
    FILE *fp;
    char buf[READER_BUF];
    size_t start;
    size_t end;
    int eof;
    unsigned long long bytes;
};

__attribute__((format(printf, 3, 4))) static void problem(struct problems *p, unsigned long line,
                                                          const char *fmt, ...)
{
    if (p->total < IMPORT_SHOWN_PROBLEMS) {
        va_list ap;
        fprintf(stderr, "%s %ld: ", p->unit, (long)line + p->offset);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
    p->total++;
}

/* Returns 1 with the next line (its end included when present) in
 * *line and *len, 1 with *overlong set for a line longer than any valid one,
 * 0 at the end of input, or a negative enms_err. */
static int reader_next(struct line_reader *r, const char **line, size_t *len, int *overlong,
                       char *err, size_t errlen)
{
    int skipping = 0;

    *overlong = 0;
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        if (nl) {
            *line = r->buf + r->start;
            *len = (size_t)(nl - *line) + 1;
            r->start += *len;
            *overlong = skipping;
            return 1;
        }
        /* Longer than a maximal line plus CRLF: drop what we have and
         * keep reading to the line end. */
        if (r->end - r->start > CSV_READING_MAX_LINE + 2 || skipping) {
            skipping = 1;
            r->start = r->end = 0;
        }
        if (r->eof) {
            if (skipping || r->start < r->end) {
                *line = r->buf + r->start;
                *len = r->end - r->start;
                r->start = r->end;
                *overlong = skipping;
                return 1;
            }
            return 0;
        }
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->start = 0;
        }
        size_t n = fread(r->buf + r->end, 1, sizeof r->buf - r->end, r->fp);
        r->end += n;
        r->bytes += n;
        if (r->bytes > IMPORT_MAX_BYTES)
            return enms_fail(err, errlen, ENMS_ETOOBIG,
                             "input is larger than %llu MiB; split it (per machine or per year)",
                             IMPORT_MAX_BYTES / (1024 * 1024));
        if (n == 0) {
            if (ferror(r->fp))
                return enms_fail(err, errlen, ENMS_EIO, "read error: %s", strerror(errno));
            r->eof = 1;
        }
    }
}

static void machine_set_free(struct machine_set *s)
{
    free(s->ids);
    free(s->first_line);
    free(s->nrows);
    free(s->known);
    free(s->slots);
    memset(s, 0, sizeof *s);
}

/* FNV-1a: fine spread for UUID text, and no state. */
static size_t hash_id(const char *id)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return (size_t)h;
}

static void machine_set_place(struct machine_set *s, size_t index)
{
    size_t mask = s->nslots - 1;
    size_t i = hash_id(s->ids[index]) & mask;
    while (s->slots[i] != 0)
        i = (i + 1) & mask;
    s->slots[i] = (uint32_t)(index + 1);
}

static int machine_set_grow(struct machine_set *s)
{
    size_t cap = s->cap ? s->cap * 2 : 16;
    char(*ids)[37] = realloc(s->ids, cap * sizeof *ids);
    if (!ids)
        return ENMS_ENOMEM;
    s->ids = ids;
    uint32_t *first = realloc(s->first_line, cap * sizeof *first);
    if (!first)
        return ENMS_ENOMEM;
    s->first_line = first;
    size_t *nrows = realloc(s->nrows, cap * sizeof *nrows);
    if (!nrows)
        return ENMS_ENOMEM;
    s->nrows = nrows;
    unsigned char *known = realloc(s->known, cap);
    if (!known)
        return ENMS_ENOMEM;
    s->known = known;
    uint32_t *slots = calloc(cap * 2, sizeof *slots);
    if (!slots)
        return ENMS_ENOMEM;
    free(s->slots);
    s->slots = slots;
    s->nslots = cap * 2;
    s->cap = cap;
    for (size_t i = 0; i < s->count; i++)
        machine_set_place(s, i);
    return ENMS_OK;
}

/* Position of id in the set, or -1. */
static long machine_set_find(const struct machine_set *s, const char *id)
{
    if (s->nslots == 0)
        return -1;
    size_t mask = s->nslots - 1;
    for (size_t i = hash_id(id) & mask; s->slots[i] != 0; i = (i + 1) & mask) {
        uint32_t at = s->slots[i] - 1;
        if (strcmp(s->ids[at], id) == 0)
            return (long)at;
    }
    return -1;
}

/* Finds or adds id, counting one more row for it; *index receives its
 * position. 0 or ENMS_ENOMEM. */
static int machine_set_add(struct machine_set *s, const char *id, uint32_t line, uint32_t *index)
{
    long at = machine_set_find(s, id);
    if (at >= 0) {
        s->nrows[at]++;
        *index = (uint32_t)at;
        return ENMS_OK;
    }
    if (s->count == s->cap && machine_set_grow(s) < 0)
        return ENMS_ENOMEM;
    memcpy(s->ids[s->count], id, 37);
    s->first_line[s->count] = line;
    s->nrows[s->count] = 1;
    s->known[s->count] = 0;
    machine_set_place(s, s->count);
    *index = (uint32_t)s->count++;
    return ENMS_OK;
}

static void batch_free(struct batch *b)
{
    free(b->rows);
    machine_set_free(&b->machines);
    memset(b, 0, sizeof *b);
}

static int batch_add(struct batch *b, const struct csv_reading *r, uint32_t line)
{
    uint32_t machine;

    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        struct row *rows = realloc(b->rows, cap * sizeof *rows);
        if (!rows)
            return ENMS_ENOMEM;
        b->rows = rows;
        b->cap = cap;
    }
    if (machine_set_add(&b->machines, r->machine_id, line, &machine) < 0)
        return ENMS_ENOMEM;
    b->rows[b->count++] = (struct row){
        .ts = r->ts,
        .energy_kwh = r->energy_kwh,
        .production_count = r->production_count,
        .outdoor_temp_c = r->outdoor_temp_c,
        .machine = machine,
        .line = line,
        .has_production = (uint8_t)r->has_production,
        .has_temp = (uint8_t)r->has_temp,
    };
    return ENMS_OK;
}

/* Orders rows by machine, hour and line, which puts duplicates side by side
 * with the first occurrence leading. */
static int row_order(const void *a, const void *b)
{
    const struct row *x = a;
    const struct row *y = b;
    if (x->machine != y->machine)
        return x->machine < y->machine ? -1 : 1;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return (x->line > y->line) - (x->line < y->line);
}

/* Reports every row whose (machine, ts) an earlier line already has. Sorts
 * b->rows, which the load does not mind. */
static void report_duplicates(struct batch *b, struct problems *p)
{
    char ts[CSV_READING_TS_TEXT];

    if (b->count < 2)
        return;
    qsort(b->rows, b->count, sizeof *b->rows, row_order);
    size_t first = 0;
    for (size_t i = 1; i < b->count; i++) {
        const struct row *r = &b->rows[i];
        const struct row *lead = &b->rows[first];
        if (r->machine == lead->machine && r->ts == lead->ts) {
            csv_reading_format_ts(r->ts, ts);
            problem(p, r->line, "duplicate of %s %ld: machine %s already has a reading at %s",
                    p->unit, (long)lead->line + p->offset, b->machines.ids[r->machine], ts);
        } else {
            first = i;
        }
    }
}

/* Pass 1 over the text: header, then every line. Problems go to p; the
 * return value is negative only for failures that stop reading (I/O,
 * memory, size bound, missing header). */
static int validate_input(FILE *fp, struct batch *b, struct problems *p, char *err, size_t errlen)
{
    struct line_reader *r = calloc(1, sizeof *r);
    struct csv_header hdr;
    struct csv_reading reading;
    char msg[256];
    const char *line = NULL;
    size_t len = 0;
    int overlong;
    int have_header = 0;
    uint32_t lineno = 0;
    int rc;

    if (!r)
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
    r->fp = fp;
    while ((rc = reader_next(r, &line, &len, &overlong, err, errlen)) > 0) {
        lineno++;
        if (overlong) {
            problem(p, lineno, "line longer than %d bytes", CSV_READING_MAX_LINE);
            if (!have_header) {
                rc = enms_fail(err, errlen, ENMS_EINVAL, "no usable header line");
                goto done;
            }
            continue;
        }
        /* The BOM test sits in the header parser; a BOM-only first line is
         * as blank as an empty one. */
        if (!have_header && lineno == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0 &&
            csv_reading_is_blank(line + 3, len - 3))
            continue;
        if (csv_reading_is_blank(line, len))
            continue;
        if (!have_header) {
            if (csv_reading_parse_header(line, len, &hdr, msg, sizeof msg) < 0) {
                problem(p, lineno, "%s", msg);
                rc = enms_fail(err, errlen, ENMS_EINVAL,
                               "the first line must name the columns, e.g. "
                               "machine_id,ts,energy_kwh,production_count,outdoor_temp_c");
                goto done;
            }
            for (int i = 0; i < hdr.ncols; i++) {
                b->has_production_col |= hdr.col[i] == CSV_COL_PRODUCTION_COUNT;
                b->has_temp_col |= hdr.col[i] == CSV_COL_OUTDOOR_TEMP_C;
            }
            have_header = 1;
            continue;
        }
        if (csv_reading_parse_line(&hdr, line, len, &reading, msg, sizeof msg) < 0) {
            problem(p, lineno, "%s", msg);
            continue;
        }
        /* Good rows are kept even after a bad line, so that duplicates
         * among them are reported in the same run. */
        if (batch_add(b, &reading, lineno) < 0) {
            rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory after %zu rows", b->count);
            goto done;
        }
    }
    if (rc < 0)
        goto done;
    if (!have_header) {
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "input is empty: expected a header line such as "
                       "machine_id,ts,energy_kwh");
        goto done;
    }
    report_duplicates(b, p);
    rc = ENMS_OK;
done:
    free(r);
    return rc;
}

/* Marks which machines of the batch exist, with one bound array parameter
 * whatever their number. */
static int check_machines(PGconn *conn, struct machine_set *s, char *err, size_t errlen)
{
    PGresult *res = NULL;
    char *array = NULL;
    int rc = ENMS_OK;

    if (s->count == 0)
        return ENMS_OK;
    array = malloc(s->count * 37 + 3);
    if (!array)
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
    size_t w = 0;
    array[w++] = '{';
    for (size_t i = 0; i < s->count; i++) {
        if (i > 0)
            array[w++] = ',';
        memcpy(array + w, s->ids[i], 36);
        w += 36;
    }
    array[w++] = '}';
    array[w] = '\0';

    const char *params[1] = {array};
    res = pg_exec(conn, PGRES_TUPLES_OK, "SELECT id::text FROM machines WHERE id = ANY($1::uuid[])",
                  1, params, err, errlen);
    if (!res) {
        rc = ENMS_EDB;
        goto done;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        long at = machine_set_find(s, PQgetvalue(res, i, 0));
        if (at < 0) {
            rc = enms_fail(err, errlen, ENMS_EINTERNAL, "unexpected machine id from database");
            goto done;
        }
        s->known[at] = 1;
    }
done:
    PQclear(res);
    free(array);
    return rc;
}

/* Looks up the id of the machine named name; *found is 0 when there is
 * none. id receives the canonical text. */
static int machine_by_name(PGconn *conn, const char *name, int *found, char id[37], char *err,
                           size_t errlen)
{
    const char *params[1] = {name};
    PGresult *res = pg_exec(conn, PGRES_TUPLES_OK, "SELECT id::text FROM machines WHERE name = $1",
                            1, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    *found = PQntuples(res) > 0;
    if (*found)
        snprintf(id, 37, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return ENMS_OK;
}

/* libpq messages end in a newline; ours are one line. Returns the length of
 * msg without trailing line ends, for "%.*s". */
static int pq_len(const char *msg)
{
    size_t n = msg ? strlen(msg) : 0;
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        n--;
    return (int)n;
}

static int put_copy_data(PGconn *conn, const char *data, size_t len, char *err, size_t errlen)
{
    if (PQputCopyData(conn, data, (int)len) != 1)
        return enms_fail(err, errlen, ENMS_EDB, "postgresql: COPY failed: %.*s",
                         pq_len(PQerrorMessage(conn)), PQerrorMessage(conn));
    return ENMS_OK;
}

/* Sends the rows to the COPY already started on conn. */
static int copy_rows(PGconn *conn, const struct batch *b, char *err, size_t errlen)
{
    char *chunk = malloc(COPY_CHUNK);
    size_t used = 0;
    int rc = ENMS_OK;

    if (!chunk)
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
    for (size_t i = 0; i < b->count; i++) {
        /* Text COPY format: tab-separated, \N is NULL. Validated values
         * contain no tab, newline or backslash, so nothing needs escaping;
         * %.17g gives back the exact double. */
        const struct row *r = &b->rows[i];
        char line[256];
        char ts[CSV_READING_TS_TEXT];
        char prod[32] = "\\N";
        char temp[32] = "\\N";
        csv_reading_format_ts(r->ts, ts);
        if (r->has_production)
            snprintf(prod, sizeof prod, "%.17g", r->production_count);
        if (r->has_temp)
            snprintf(temp, sizeof temp, "%.17g", r->outdoor_temp_c);
        int n = snprintf(line, sizeof line, "%s\t%s\t%.17g\t%s\t%s\n", b->machines.ids[r->machine],
                         ts, r->energy_kwh, prod, temp);
        if (n < 0 || (size_t)n >= sizeof line) {
            rc = enms_fail(err, errlen, ENMS_EINTERNAL, "COPY line too long");
            goto done;
        }
        if (used + (size_t)n > COPY_CHUNK) {
            rc = put_copy_data(conn, chunk, used, err, errlen);
            if (rc < 0)
                goto done;
            used = 0;
        }
        memcpy(chunk + used, line, (size_t)n);
        used += (size_t)n;
    }
    if (used > 0)
        rc = put_copy_data(conn, chunk, used, err, errlen);
done:
    free(chunk);
    return rc;
}

/* Reads the result(s) of a finished COPY; 0 when it succeeded. */
static int copy_finish(PGconn *conn, const char *abort_reason, char *err, size_t errlen)
{
    int rc = ENMS_OK;
    PGresult *res;

    if (PQputCopyEnd(conn, abort_reason) != 1)
        rc = enms_fail(err, errlen, ENMS_EDB, "postgresql: ending COPY failed: %.*s",
                       pq_len(PQerrorMessage(conn)), PQerrorMessage(conn));
    while ((res = PQgetResult(conn)) != NULL) {
        if (rc == ENMS_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = enms_fail(err, errlen, ENMS_EDB, "postgresql: COPY failed: %.*s",
                           pq_len(PQresultErrorMessage(res)), PQresultErrorMessage(res));
        PQclear(res);
    }
    return rc;
}

/* Pass 2: everything in one transaction. *inserted counts rows that were
 * new, *present rows whose (machine, hour) was already stored. */
static int load_rows(PGconn *conn, const struct batch *b, const struct import_opts *o,
                     int create_machine, const char *location, long long *inserted,
                     long long *present, char *err, size_t errlen)
{
    PGresult *res = NULL;
    int in_tx = 0;
    int copying = 0;
    int rc;
    char sql[1024];

    rc = pg_command(conn, "BEGIN", err, errlen);
    if (rc < 0)
        goto done;
    in_tx = 1;
    if (create_machine) {
        const char *params[3] = {o->machine_id, o->name, location};
        res = pg_exec(conn, PGRES_COMMAND_OK,
                      "INSERT INTO machines (id, name, type, location) "
                      "VALUES ($1::uuid, $2, 'other', $3) ON CONFLICT (id) DO NOTHING",
                      3, params, err, errlen);
        if (!res) {
            rc = ENMS_EDB;
            goto done;
        }
        PQclear(res);
        res = NULL;
    }
    /* A temporary table takes COPY's fast path without touching
     * energy_readings until the rows are all in; ON COMMIT DROP leaves
     * nothing behind on either outcome. */
    rc = pg_command(conn,
                    "CREATE TEMP TABLE enms_import ("
                    " machine_id uuid NOT NULL, ts timestamptz NOT NULL,"
                    " energy_kwh double precision NOT NULL,"
                    " production_count double precision, outdoor_temp_c double precision"
                    ") ON COMMIT DROP",
                    err, errlen);
    if (rc < 0)
        goto done;
    res = PQexec(conn, "COPY enms_import (machine_id, ts, energy_kwh, production_count, "
                       "outdoor_temp_c) FROM STDIN");
    if (!res || PQresultStatus(res) != PGRES_COPY_IN) {
        const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
        rc = enms_fail(err, errlen, ENMS_EDB, "postgresql: COPY did not start: %.*s", pq_len(msg),
                       msg);
        goto done;
    }
    PQclear(res);
    res = NULL;
    copying = 1;
    rc = copy_rows(conn, b, err, errlen);
    if (rc < 0)
        goto done;
    copying = 0;
    rc = copy_finish(conn, NULL, err, errlen);
    if (rc < 0)
        goto done;

    res = pg_exec(conn, PGRES_TUPLES_OK,
                  "SELECT count(*) FROM enms_import i JOIN energy_readings e"
                  " ON e.machine_id = i.machine_id AND e.ts = i.ts",
                  0, NULL, err, errlen);
    if (!res) {
        rc = ENMS_EDB;
        goto done;
    }
    *present = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    res = NULL;

    /* With --replace, a column the file does not have keeps its stored
     * value; a column it has but leaves empty becomes NULL. */
    if (o->replace)
        snprintf(sql, sizeof sql,
                 "INSERT INTO energy_readings"
                 " (machine_id, ts, energy_kwh, production_count, outdoor_temp_c)"
                 " SELECT machine_id, ts, energy_kwh, production_count, outdoor_temp_c"
                 " FROM enms_import ON CONFLICT (machine_id, ts) DO UPDATE SET"
                 " energy_kwh = EXCLUDED.energy_kwh, production_count = %s,"
                 " outdoor_temp_c = %s",
                 b->has_production_col ? "EXCLUDED.production_count"
                                       : "energy_readings.production_count",
                 b->has_temp_col ? "EXCLUDED.outdoor_temp_c" : "energy_readings.outdoor_temp_c");
    else
        snprintf(sql, sizeof sql,
                 "INSERT INTO energy_readings"
                 " (machine_id, ts, energy_kwh, production_count, outdoor_temp_c)"
                 " SELECT machine_id, ts, energy_kwh, production_count, outdoor_temp_c"
                 " FROM enms_import ON CONFLICT (machine_id, ts) DO NOTHING");
    res = pg_exec(conn, PGRES_COMMAND_OK, sql, 0, NULL, err, errlen);
    if (!res) {
        rc = ENMS_EDB;
        goto done;
    }
    *inserted = o->replace ? (long long)b->count - *present : strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    res = NULL;

    rc = pg_command(conn, "COMMIT", err, errlen);
    if (rc < 0)
        goto done;
    in_tx = 0;
done:
    PQclear(res);
    if (copying)
        copy_finish(conn, "import aborted", NULL, 0);
    if (in_tx) {
        /* The transaction's own error is the one worth reporting. */
        char ignored[64];
        pg_command(conn, "ROLLBACK", ignored, sizeof ignored);
    }
    return rc;
}

static int parse_args(int argc, char **argv, struct import_opts *o, char *err, size_t errlen)
{
    const char *machine_id = NULL;

    memset(o, 0, sizeof *o);
    o->name = "Utility-Load-1992";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (strcmp(a, "--dry-run") == 0) {
            o->dry_run = 1;
        } else if (strcmp(a, "--replace") == 0) {
            o->replace = 1;
        } else if (strcmp(a, "--gretl") == 0 && has_value) {
            o->gretl = argv[++i];
        } else if (strcmp(a, "--machine-id") == 0 && has_value) {
            machine_id = argv[++i];
        } else if (strcmp(a, "--name") == 0 && has_value) {
            o->name = argv[++i];
        } else if (strcmp(a, "--year-offset") == 0 && has_value) {
            long v;
            if (config_parse_int(argv[++i], CSV_READING_MIN_YEAR - GRETL_DATA10_2_YEAR,
                                 CSV_READING_MAX_YEAR - GRETL_DATA10_2_YEAR, &v) < 0)
                return enms_fail(err, errlen, ENMS_EINVAL,
                                 "--year-offset must be a whole number from %d to %d",
                                 CSV_READING_MIN_YEAR - GRETL_DATA10_2_YEAR,
                                 CSV_READING_MAX_YEAR - GRETL_DATA10_2_YEAR);
            o->year_offset = (int)v;
        } else if (a[0] == '-' && a[1] != '\0') {
            return enms_fail(err, errlen, ENMS_EINVAL, "unknown option or missing value: %s", a);
        } else if (!o->file) {
            o->file = a;
        } else {
            return enms_fail(err, errlen, ENMS_EINVAL, "more than one input file given");
        }
    }
    if (o->gretl) {
        char why[128];
        if (o->file)
            return enms_fail(err, errlen, ENMS_EINVAL, "give either FILE.csv or --gretl, not both");
        if (!machine_id)
            return enms_fail(err, errlen, ENMS_EINVAL, "--gretl needs --machine-id UUID");
        if (csv_reading_parse_uuid(machine_id, strlen(machine_id), o->machine_id, why, sizeof why) <
            0)
            return enms_fail(err, errlen, ENMS_EINVAL, "--machine-id: %s", why);
        size_t n = strlen(o->name);
        if (n == 0 || n > MACHINE_NAME_MAX)
            return enms_fail(err, errlen, ENMS_EINVAL, "--name must be 1 to %d bytes",
                             MACHINE_NAME_MAX);
    } else {
        if (!o->file)
            return enms_fail(err, errlen, ENMS_EINVAL, "no input file given");
        if (machine_id || o->year_offset)
            return enms_fail(err, errlen, ENMS_EINVAL,
                             "--machine-id and --year-offset apply to --gretl only (a CSV names "
                             "its machines)");
    }
    return ENMS_OK;
}

/* Reads a whole (small) file into memory; caller frees *buf with free(). */
static int read_small_file(const char *path, size_t max, char **buf, size_t *len, char *err,
                           size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    char *data = NULL;
    size_t used = 0;
    int rc = ENMS_OK;

    *buf = NULL;
    if (!fp)
        return enms_fail(err, errlen, ENMS_EIO, "cannot open %s: %s", path, strerror(errno));
    data = malloc(max + 1);
    if (!data) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory");
        goto done;
    }
    /* Reading one byte past the bound tells "exactly max" from "too big". */
    used = fread(data, 1, max + 1, fp);
    if (ferror(fp)) {
        rc = enms_fail(err, errlen, ENMS_EIO, "cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    if (used > max) {
        rc = enms_fail(err, errlen, ENMS_ETOOBIG, "%s is larger than %zu bytes", path, max);
        goto done;
    }
    *buf = data;
    *len = used;
    data = NULL;
done:
    free(data);
    fclose(fp);
    return rc;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

int ctl_import(const struct enms_config *cfg, int argc, char **argv)
{
    static const char location[] = "US utility (gretl data10-2)";
    struct import_opts o;
    struct batch b;
    struct problems probs = {"line", 0, 0};
    struct timespec t0;
    char err[512] = "";
    char *gdt = NULL;
    char *csv = NULL;
    FILE *fp = NULL;
    PGconn *conn = NULL;
    const char *source;
    int create_machine = 0;
    long long inserted = 0, present = 0;
    int rc;

    memset(&b, 0, sizeof b);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(USAGE, stdout);
            return ENMS_OK;
        }
    }
    rc = parse_args(argc, argv, &o, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "enmsctl import: %s (see enmsctl import --help)\n", err);
        return rc;
    }

    if (o.gretl) {
        size_t gdt_len = 0, csv_len = 0, nobs = 0;
        source = o.gretl;
        rc = read_small_file(o.gretl, GRETL_MAX_FILE, &gdt, &gdt_len, err, sizeof err);
        if (rc < 0)
            goto done;
        rc = gretl_to_csv(gdt, gdt_len, o.machine_id, GRETL_DATA10_2_YEAR + o.year_offset, &csv,
                          &csv_len, &nobs, err, sizeof err);
        if (rc < 0)
            goto done;
        fp = fmemopen(csv, csv_len, "r");
        /* Problems name gretl observations, not lines of the CSV we made. */
        probs.unit = "obs";
        probs.offset = -1;
    } else if (strcmp(o.file, "-") == 0) {
        source = "stdin";
        fp = stdin;
    } else {
        source = o.file;
        fp = fopen(o.file, "rb");
    }
    if (!fp) {
        rc = enms_fail(err, sizeof err, ENMS_EIO, "cannot open %s: %s", source, strerror(errno));
        goto done;
    }

    rc = validate_input(fp, &b, &probs, err, sizeof err);
    if (rc < 0)
        goto done;
    if (probs.total > 0) {
        rc = enms_fail(err, sizeof err, ENMS_EINVAL, "%lu bad %s in %s%s; nothing was loaded",
                       probs.total,
                       probs.total == 1 ? probs.unit : (probs.offset ? "observations" : "lines"),
                       source, probs.total > IMPORT_SHOWN_PROBLEMS ? " (first 50 shown)" : "");
        goto done;
    }

    conn = pg_connect(cfg->pg_dsn, cfg->connect_timeout_ms, "enmsctl-import", err, sizeof err);
    if (!conn) {
        rc = ENMS_EDB;
        goto done;
    }
    rc = check_machines(conn, &b.machines, err, sizeof err);
    if (rc < 0)
        goto done;
    if (o.gretl && b.machines.count == 1 && !b.machines.known[0]) {
        int taken = 0;
        char other[37] = "";
        rc = machine_by_name(conn, o.name, &taken, other, err, sizeof err);
        if (rc < 0)
            goto done;
        if (taken) {
            rc = enms_fail(err, sizeof err, ENMS_ECONFLICT,
                           "a machine named \"%s\" already exists with id %s: pass "
                           "--machine-id %s to load into it, or --name to create another",
                           o.name, other, other);
            goto done;
        }
        create_machine = 1;
        b.machines.known[0] = 1;
    }
    for (size_t i = 0; i < b.machines.count; i++) {
        if (!b.machines.known[i])
            problem(&probs, b.machines.first_line[i],
                    "machine_id: unknown machine \"%s\" (%zu row%s; add it to machines first)",
                    b.machines.ids[i], b.machines.nrows[i], b.machines.nrows[i] == 1 ? "" : "s");
    }
    if (probs.total > 0) {
        rc = enms_fail(err, sizeof err, ENMS_EINVAL,
                       "%lu unknown machine%s in %s; nothing was loaded", probs.total,
                       probs.total == 1 ? "" : "s", source);
        goto done;
    }

    if (o.dry_run) {
        printf("dry run: %zu rows valid for %zu machine%s%s; nothing written\n", b.count,
               b.machines.count, b.machines.count == 1 ? "" : "s",
               create_machine ? " (the machine would be created)" : "");
        rc = ENMS_OK;
        goto done;
    }

    rc = load_rows(conn, &b, &o, create_machine, location, &inserted, &present, err, sizeof err);
    if (rc < 0)
        goto done;
    if (create_machine)
        printf("created machine \"%s\" (%s, type other, location \"%s\")\n", o.name, o.machine_id,
               location);
    printf("loaded %zu rows (%lld new, %lld %s) for %zu machine%s in %.2f s\n", b.count, inserted,
           present, o.replace ? "replaced" : "already present", b.machines.count,
           b.machines.count == 1 ? "" : "s", seconds_since(&t0));
    rc = ENMS_OK;
done:
    if (rc < 0 && err[0])
        fprintf(stderr, "enmsctl import: %s\n", err);
    if (conn)
        PQfinish(conn);
    if (fp && fp != stdin)
        fclose(fp);
    free(csv);
    free(gdt);
    batch_free(&b);
    return rc;
}
