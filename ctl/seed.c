/* seed.c - `enmsctl seed`: loads the eight demo machines, their generated
 * hourly readings, the labels of the injected anomalies and the truth into
 * PostgreSQL, all in one transaction.
 *
 * What the data are is demo_data.c's business; this file owns the options,
 * the SQL and the bulk load (COPY). Running it again is harmless: without
 * --force it sees the readings and stops, so `make run` may call it on every
 * start. */
#include "ctl.h"
#include "demo_data.h"
#include "../common/error.h"
#include "../common/pg.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SEED_MAX_DAYS 3660
/* COPY data go to the server in chunks of about this size: large enough that
 * the per-call cost vanishes, small enough to stay cache-friendly. */
#define COPY_CHUNK (1u << 20)
/* Longest text line of one reading (uuid, timestamp, three numbers). */
#define COPY_LINE_MAX 256

struct seed_opts {
    uint64_t seed;
    time_t end; /* exclusive, UTC midnight */
    long days;
    int force;
    const char *truth_out; /* NULL: no file */
    int help;
    struct demo_drift drifts[DEMO_MAX_DRIFTS]; /* --drift, in the order given */
    size_t ndrifts;
};

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: enmsctl seed [--seed N] [--end YYYY-MM-DD] [--days N] [--force]\n"
            "                    [--truth-out FILE] [--drift MACHINE:DATE:FEATURE:FACTOR]...\n\n"
            "Loads the 8 demo machines with hourly readings, injected anomalies (labelled in\n"
            "anomaly_labels, source 'injected') and their true model (demo_truth).\n\n"
            "  --seed N          random seed, 0..%llu (default %d); same seed, same data\n"
            "  --end YYYY-MM-DD  first day NOT loaded, UTC (default: today)\n"
            "  --days N          days before --end to load, 1..%d (default 365)\n"
            "  --force           replace demo readings, injected labels and truth\n"
            "  --truth-out FILE  also write the truth of all machines to FILE as JSON\n"
            "  --drift M:D:F:X   from date D (YYYY-MM-DD, inside the window) on, change machine M\n"
            "                    (name or id): F = energy or production multiplied by X\n"
            "                    (%g..%g), F = temperature shifted by X degC (-%g..%g);\n"
            "                    repeatable (up to %d), recorded in demo_truth.truth.drift\n",
            (unsigned long long)DEMO_SEED_MAX, DEMO_DEFAULT_SEED, SEED_MAX_DAYS,
            DEMO_DRIFT_FACTOR_MIN, DEMO_DRIFT_FACTOR_MAX, DEMO_DRIFT_SHIFT_MAX_C,
            DEMO_DRIFT_SHIFT_MAX_C, DEMO_MAX_DRIFTS);
}

static int parse_seed(const char *text, uint64_t *out)
{
    if (!text || *text < '0' || *text > '9')
        return ENMS_EINVAL; /* strtoull would accept "-1" and " 7" */
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || v > DEMO_SEED_MAX)
        return ENMS_EINVAL;
    *out = v;
    return ENMS_OK;
}

/* Accepts "--name value" and "--name=value". Returns the value and advances
 * *i past it, or NULL when argv[*i] is not this option (or lacks a value,
 * which *missing reports). */
static const char *option_value(int argc, char **argv, int *i, const char *name, int *missing)
{
    size_t n = strlen(name);
    const char *arg = argv[*i];
    if (strncmp(arg, name, n) != 0)
        return NULL;
    if (arg[n] == '=')
        return arg + n + 1;
    if (arg[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

static int parse_opts(int argc, char **argv, struct seed_opts *o, char *err, size_t errlen)
{
    int have_end = 0;
    *o = (struct seed_opts){.seed = DEMO_DEFAULT_SEED, .days = 365};

    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            o->help = 1;
        } else if (strcmp(argv[i], "--force") == 0) {
            o->force = 1;
        } else if ((v = option_value(argc, argv, &i, "--seed", &missing))) {
            if (parse_seed(v, &o->seed) != ENMS_OK)
                return enms_fail(err, errlen, ENMS_EINVAL,
                                 "--seed: \"%.40s\" is not a whole number in 0..%llu", v,
                                 (unsigned long long)DEMO_SEED_MAX);
        } else if ((v = option_value(argc, argv, &i, "--end", &missing))) {
            if (demo_parse_date(v, &o->end) != ENMS_OK)
                return enms_fail(err, errlen, ENMS_EINVAL,
                                 "--end: \"%.40s\" is not a date YYYY-MM-DD (1970..9999)", v);
            have_end = 1;
        } else if ((v = option_value(argc, argv, &i, "--days", &missing))) {
            if (config_parse_int(v, 1, SEED_MAX_DAYS, &o->days) != ENMS_OK)
                return enms_fail(err, errlen, ENMS_EINVAL,
                                 "--days: \"%.40s\" is not a whole number in 1..%d", v,
                                 SEED_MAX_DAYS);
        } else if ((v = option_value(argc, argv, &i, "--truth-out", &missing))) {
            if (*v == '\0')
                return enms_fail(err, errlen, ENMS_EINVAL, "--truth-out: empty file name");
            o->truth_out = v;
        } else if ((v = option_value(argc, argv, &i, "--drift", &missing))) {
            if (o->ndrifts == DEMO_MAX_DRIFTS)
                return enms_fail(err, errlen, ENMS_EINVAL, "--drift: at most %d", DEMO_MAX_DRIFTS);
            if (demo_parse_drift(v, &o->drifts[o->ndrifts], err, errlen) != ENMS_OK)
                return ENMS_EINVAL;
            o->ndrifts++;
        } else if (missing) {
            return enms_fail(err, errlen, ENMS_EINVAL, "%s needs a value", argv[i]);
        } else {
            return enms_fail(err, errlen, ENMS_EINVAL, "unknown option \"%.60s\"", argv[i]);
        }
    }
    if (!have_end) {
        /* Today's UTC midnight, so that "the last 7 days" on a dashboard
         * shows data on the day the demo is loaded. */
        time_t now = time(NULL);
        o->end = now - now % 86400;
    }
    if ((int64_t)o->end < (int64_t)o->days * 86400)
        return enms_fail(err, errlen, ENMS_EINVAL, "--end minus --days falls before 1970");
    /* A drift date outside the window would silently change nothing (or
     * everything): refuse it, naming the window. */
    time_t start = o->end - (time_t)(o->days * 86400);
    for (size_t k = 0; k < o->ndrifts; k++) {
        if (o->drifts[k].from <= start || o->drifts[k].from >= o->end) {
            char a[32] = "", b[32] = "";
            demo_format_time(start, a, sizeof a);
            demo_format_time(o->end, b, sizeof b);
            return enms_fail(err, errlen, ENMS_EINVAL,
                             "--drift: the date must fall after %.10s and before %.10s "
                             "(the seeded window)",
                             a, b);
        }
    }
    return ENMS_OK;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* "{id1,id2,...}": the demo machine ids as one uuid[] parameter. */
static void machine_id_array(char *buf, size_t len)
{
    size_t used = 0;
    buf[used++] = '{';
    for (size_t i = 0; i < DEMO_MACHINE_COUNT; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "," : "", demo_machines[i].id);
    snprintf(buf + used, len - used, "}");
}

/* Sends one machine's readings with COPY ... FROM STDIN in text format.
 * Returns 0, or ENMS_EDB / ENMS_EINTERNAL with the reason in err; on error
 * the COPY is ended so the connection is back in the transaction (which the
 * caller then rolls back). */
static int copy_readings(PGconn *conn, const char *machine_id, const struct demo_reading *r,
                         size_t hours, char *err, size_t errlen)
{
    int rc = ENMS_OK;
    char *buf = NULL;
    size_t used = 0;
    PGresult *res = pg_exec(conn, PGRES_COPY_IN,
                            "COPY energy_readings (machine_id, ts, energy_kwh, production_count, "
                            "outdoor_temp_c) FROM STDIN",
                            0, NULL, err, errlen);
    if (!res)
        return ENMS_EDB;
    PQclear(res);

    buf = malloc(COPY_CHUNK);
    if (!buf) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory for the COPY buffer");
        goto done;
    }
    for (size_t k = 0; k < hours; k++) {
        char ts[32], prod[32];
        if (demo_format_time(r[k].ts, ts, sizeof ts) != ENMS_OK) {
            rc = enms_fail(err, errlen, ENMS_EINTERNAL, "timestamp out of range");
            goto done;
        }
        /* \N is COPY's NULL: machines without production have none. */
        if (isnan(r[k].production_count))
            snprintf(prod, sizeof prod, "\\N");
        else
            snprintf(prod, sizeof prod, "%.0f", r[k].production_count);
        /* Four decimals for energy and two for temperature are exactly the
         * resolutions the generator rounded to, so the stored doubles are the
         * generated ones bit for bit. */
        int n = snprintf(buf + used, COPY_CHUNK - used, "%s\t%s\t%.4f\t%s\t%.2f\n", machine_id, ts,
                         r[k].energy_kwh, prod, r[k].outdoor_temp_c);
        if (n < 0 || (size_t)n >= COPY_LINE_MAX) {
            rc = enms_fail(err, errlen, ENMS_EINTERNAL, "reading %zu does not fit a line", k);
            goto done;
        }
        used += (size_t)n;
        if (COPY_CHUNK - used < COPY_LINE_MAX || k + 1 == hours) {
            if (PQputCopyData(conn, buf, (int)used) != 1) {
                rc = enms_fail(err, errlen, ENMS_EDB, "postgresql: COPY failed: %s",
                               PQerrorMessage(conn));
                goto done;
            }
            used = 0;
        }
    }

done:
    free(buf);
    /* Ending the COPY, with an error message when we give up, puts the
     * connection back into the transaction either way. */
    if (PQputCopyEnd(conn, rc == ENMS_OK ? NULL : "enmsctl seed aborted the load") != 1 &&
        rc == ENMS_OK)
        rc = enms_fail(err, errlen, ENMS_EDB, "postgresql: ending COPY failed: %s",
                       PQerrorMessage(conn));
    /* The COPY's own result, then NULL. Constraint violations (a negative
     * energy, a misaligned timestamp) surface here. */
    while ((res = PQgetResult(conn)) != NULL) {
        if (rc == ENMS_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = enms_fail(err, errlen, ENMS_EDB, "postgresql: COPY energy_readings: %s",
                           PQresultErrorMessage(res));
        else if (rc == ENMS_OK && strtoull(PQcmdTuples(res), NULL, 10) != hours)
            rc = enms_fail(err, errlen, ENMS_EINTERNAL, "COPY stored %s rows, expected %zu",
                           PQcmdTuples(res), hours);
        PQclear(res);
    }
    return rc;
}

static int upsert_machine(PGconn *conn, const struct demo_machine *m, char *err, size_t errlen)
{
    char power[32];
    snprintf(power, sizeof power, "%.17g", m->rated_power_kw);
    const char *params[] = {m->id, m->name, m->type, demo_sites[m->site].location, power};
    PGresult *res = pg_exec(conn, PGRES_COMMAND_OK,
                            "INSERT INTO machines (id, name, type, location, rated_power_kw) "
                            "VALUES ($1::uuid, $2, $3, $4, $5::float8) "
                            "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, "
                            "type = EXCLUDED.type, location = EXCLUDED.location, "
                            "rated_power_kw = EXCLUDED.rated_power_kw",
                            5, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    PQclear(res);
    return ENMS_OK;
}

static int insert_labels(PGconn *conn, const struct demo_machine *m, uint64_t seed,
                         const struct demo_anomaly *a, size_t count, char *err, size_t errlen)
{
    for (size_t i = 0; i < count; i++) {
        char start[32], end[32], notes[128];
        if (demo_format_time(a[i].start, start, sizeof start) != ENMS_OK ||
            demo_format_time(a[i].end, end, sizeof end) != ENMS_OK)
            return enms_fail(err, errlen, ENMS_EINTERNAL, "anomaly time out of range");
        if (a[i].kind == DEMO_STUCK_METER)
            snprintf(notes, sizeof notes, "enmsctl seed %llu: meter stuck at %.4f kWh",
                     (unsigned long long)seed, a[i].factor);
        else
            snprintf(notes, sizeof notes, "enmsctl seed %llu: energy x %.4f",
                     (unsigned long long)seed, a[i].factor);
        const char *params[] = {m->id, start, end, demo_anomaly_kind_name(a[i].kind), notes};
        PGresult *res = pg_exec(conn, PGRES_COMMAND_OK,
                                "INSERT INTO anomaly_labels (machine_id, ts_start, ts_end, kind, "
                                "source, is_anomaly, notes) "
                                "VALUES ($1::uuid, $2::timestamptz, $3::timestamptz, $4, "
                                "'injected', true, $5)",
                                5, params, err, errlen);
        if (!res)
            return ENMS_EDB;
        PQclear(res);
    }
    return ENMS_OK;
}

static int upsert_truth(PGconn *conn, const struct demo_machine *m, uint64_t seed,
                        const char *truth, char *err, size_t errlen)
{
    char seed_text[32];
    snprintf(seed_text, sizeof seed_text, "%llu", (unsigned long long)seed);
    const char *params[] = {m->id, seed_text, truth};
    PGresult *res = pg_exec(conn, PGRES_COMMAND_OK,
                            "INSERT INTO demo_truth (machine_id, seed, truth, generated_at) "
                            "VALUES ($1::uuid, $2::bigint, $3::jsonb, now()) "
                            "ON CONFLICT (machine_id) DO UPDATE SET seed = EXCLUDED.seed, "
                            "truth = EXCLUDED.truth, generated_at = EXCLUDED.generated_at",
                            3, params, err, errlen);
    if (!res)
        return ENMS_EDB;
    PQclear(res);
    return ENMS_OK;
}

/* Writes the combined truth to path + ".tmp"; seed_database() renames it
 * into place only after COMMIT, so a failed load leaves no file behind. */
static int write_truth_file(const char *tmp_path, const cJSON *all, char *err, size_t errlen)
{
    char *text = cJSON_Print(all);
    if (!text)
        return enms_fail(err, errlen, ENMS_ENOMEM, "out of memory printing the truth");
    int rc = ENMS_OK;
    FILE *f = fopen(tmp_path, "w");
    if (!f) {
        rc = enms_fail(err, errlen, ENMS_EIO, "%s: %s", tmp_path, strerror(errno));
        goto done;
    }
    int bad = fputs(text, f) == EOF || fputc('\n', f) == EOF;
    if (fclose(f) != 0 || bad) {
        rc = enms_fail(err, errlen, ENMS_EIO, "%s: write failed: %s", tmp_path, strerror(errno));
        remove(tmp_path);
    }
done:
    cJSON_free(text);
    return rc;
}

/* {"generator", "seed", "window", "machines": []}: the shape of --truth-out.
 * Each element of "machines" equals that machine's demo_truth.truth, and the
 * header repeats what they share. Returns a tree for cJSON_Delete(), or NULL
 * when out of memory. */
static cJSON *truth_file_root(const struct seed_opts *o, size_t hours)
{
    char start[32], end[32];
    cJSON *root = cJSON_CreateObject();
    cJSON *gen = NULL, *window = NULL;
    if (!root || demo_format_time(o->end - (time_t)(hours * 3600), start, sizeof start) != 0 ||
        demo_format_time(o->end, end, sizeof end) != 0 ||
        !(gen = cJSON_AddObjectToObject(root, "generator")) ||
        !cJSON_AddStringToObject(gen, "name", DEMO_GENERATOR_NAME) ||
        !cJSON_AddNumberToObject(gen, "version", DEMO_GENERATOR_VERSION) ||
        !cJSON_AddStringToObject(gen, "prng", DEMO_GENERATOR_PRNG) ||
        !cJSON_AddNumberToObject(root, "seed", (double)o->seed) ||
        !(window = cJSON_AddObjectToObject(root, "window")) ||
        !cJSON_AddStringToObject(window, "start", start) ||
        !cJSON_AddStringToObject(window, "end", end) ||
        !cJSON_AddNumberToObject(window, "hours", (double)hours) ||
        !cJSON_AddArrayToObject(root, "machines")) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* One machine: its row, its readings, its labels, its truth. Adds the truth
 * to `all` when given. Counts go to *labels. */
static int seed_machine(PGconn *conn, size_t i, const struct seed_opts *o,
                        struct demo_reading *readings, size_t hours, cJSON *all, size_t *labels,
                        char *err, size_t errlen)
{
    const struct demo_machine *m = &demo_machines[i];
    struct demo_anomaly anomalies[DEMO_MAX_ANOMALIES];
    size_t count = 0;
    char *text = NULL;
    cJSON *truth = NULL;
    char why[768] = ""; /* the step's own message, prefixed with the machine below */
    int rc = upsert_machine(conn, m, why, sizeof why);
    if (rc != ENMS_OK)
        goto done;
    /* Drifts change the clean readings before the anomalies go in; without
     * any, this is exactly demo_generate(). */
    rc = demo_generate_clean(i, o->seed, o->end, hours, readings, why, sizeof why);
    if (rc == ENMS_OK)
        rc = demo_apply_drifts(i, o->drifts, o->ndrifts, readings, hours, why, sizeof why);
    if (rc == ENMS_OK)
        rc = demo_inject_anomalies(i, o->seed, readings, hours, anomalies, DEMO_MAX_ANOMALIES,
                                   &count, why, sizeof why);
    if (rc != ENMS_OK)
        goto done;
    rc = copy_readings(conn, m->id, readings, hours, why, sizeof why);
    if (rc != ENMS_OK)
        goto done;
    rc = insert_labels(conn, m, o->seed, anomalies, count, why, sizeof why);
    if (rc != ENMS_OK)
        goto done;
    truth = demo_truth_json(i, o->seed, o->end, hours, anomalies, count);
    if (truth && demo_drift_truth(truth, i, o->drifts, o->ndrifts) != 0) {
        cJSON_Delete(truth);
        truth = NULL;
    }
    text = truth ? cJSON_PrintUnformatted(truth) : NULL;
    if (!text) {
        rc = enms_fail(why, sizeof why, ENMS_ENOMEM, "out of memory building the truth");
        goto done;
    }
    rc = upsert_truth(conn, m, o->seed, text, why, sizeof why);
    if (rc != ENMS_OK)
        goto done;
    if (all) {
        if (!cJSON_AddItemToArray(cJSON_GetObjectItem(all, "machines"), truth)) {
            rc = enms_fail(why, sizeof why, ENMS_ENOMEM, "out of memory building the truth");
            goto done;
        }
        truth = NULL; /* owned by all now */
    }
    *labels += count;
done:
    if (rc != ENMS_OK)
        enms_fail(err, errlen, rc, "%s: %s", m->name, why);
    cJSON_free(text);
    cJSON_Delete(truth);
    return rc;
}

/* The whole load in one transaction. Prints progress; returns 0 or an
 * enms_err with the reason in err. */
static int seed_database(PGconn *conn, const struct seed_opts *o, char *err, size_t errlen)
{
    int rc = ENMS_OK, in_tx = 0;
    size_t hours = (size_t)o->days * 24, labels = 0;
    struct demo_reading *readings = NULL;
    cJSON *all = NULL;
    char ids[DEMO_MACHINE_COUNT * 40 + 4];
    char tmp_path[4096] = "";
    const char *id_param[] = {ids};
    PGresult *res = NULL;
    struct timespec t0;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    machine_id_array(ids, sizeof ids);

    if ((rc = pg_command(conn, "BEGIN", err, errlen)) != ENMS_OK)
        goto done;
    in_tx = 1;
    /* Two seeds at once would both see "no readings" and collide on the
     * primary key; this lock makes the second wait and then see the first's
     * data. The key is an arbitrary constant owned by this command. */
    res = pg_exec(conn, PGRES_TUPLES_OK, "SELECT pg_advisory_xact_lock(4242004200)", 0, NULL, err,
                  errlen);
    if (!res) {
        rc = ENMS_EDB;
        goto done;
    }
    PQclear(res);
    res = pg_exec(conn, PGRES_TUPLES_OK,
                  "SELECT count(*) FROM energy_readings WHERE machine_id = ANY($1::uuid[])", 1,
                  id_param, err, errlen);
    if (!res) {
        rc = ENMS_EDB;
        goto done;
    }
    long long present = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    res = NULL;
    if (present > 0 && !o->force) {
        printf("demo data already present (%lld readings); use --force to replace\n", present);
        goto done; /* rolls back: nothing was changed */
    }

    /* Readings of the demo machines go with --force; only our own labels
     * go, since user and detector labels are other people's records. */
    if (o->force) {
        res = pg_exec(conn, PGRES_COMMAND_OK,
                      "DELETE FROM energy_readings WHERE machine_id = ANY($1::uuid[])", 1, id_param,
                      err, errlen);
        if (!res) {
            rc = ENMS_EDB;
            goto done;
        }
        PQclear(res);
    }
    res = pg_exec(conn, PGRES_COMMAND_OK,
                  "DELETE FROM anomaly_labels WHERE machine_id = ANY($1::uuid[]) "
                  "AND source = 'injected'",
                  1, id_param, err, errlen);
    if (!res) {
        rc = ENMS_EDB;
        goto done;
    }
    PQclear(res);
    res = NULL;

    readings = calloc(hours, sizeof *readings);
    if (!readings) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory for %zu readings", hours);
        goto done;
    }
    if (o->truth_out && !(all = truth_file_root(o, hours))) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory building the truth");
        goto done;
    }

    char end_text[32] = "";
    demo_format_time(o->end, end_text, sizeof end_text);
    printf("seeding %d machines, %ld days before %.10s (seed %llu)\n", DEMO_MACHINE_COUNT, o->days,
           end_text, (unsigned long long)o->seed);
    for (size_t i = 0; i < DEMO_MACHINE_COUNT; i++) {
        size_t before = labels;
        rc = seed_machine(conn, i, o, readings, hours, all, &labels, err, errlen);
        if (rc != ENMS_OK)
            goto done;
        printf("  %-20s %zu readings, %zu anomalies (%.2f s)\n", demo_machines[i].name, hours,
               labels - before, seconds_since(&t0));
        fflush(stdout);
    }

    if (all) {
        if ((size_t)snprintf(tmp_path, sizeof tmp_path, "%s.tmp", o->truth_out) >=
            sizeof tmp_path) {
            tmp_path[0] = '\0';
            rc = enms_fail(err, errlen, ENMS_EINVAL, "--truth-out: path too long");
            goto done;
        }
        if ((rc = write_truth_file(tmp_path, all, err, errlen)) != ENMS_OK) {
            tmp_path[0] = '\0';
            goto done;
        }
    }
    if ((rc = pg_command(conn, "COMMIT", err, errlen)) != ENMS_OK)
        goto done;
    in_tx = 0;
    if (tmp_path[0]) {
        if (rename(tmp_path, o->truth_out) != 0) {
            rc = enms_fail(err, errlen, ENMS_EIO, "%s: %s (the data are loaded)", o->truth_out,
                           strerror(errno));
            goto done;
        }
        tmp_path[0] = '\0';
        printf("truth written to %s\n", o->truth_out);
    }
    printf("seeded %d machines, %zu readings, %zu labelled anomalies in %.2f s\n",
           DEMO_MACHINE_COUNT, hours * DEMO_MACHINE_COUNT, labels, seconds_since(&t0));

done:
    if (in_tx) {
        char ignored[256];
        pg_command(conn, "ROLLBACK", ignored, sizeof ignored);
    }
    if (tmp_path[0])
        remove(tmp_path);
    cJSON_Delete(all);
    free(readings);
    return rc;
}

int ctl_seed(const struct enms_config *cfg, int argc, char **argv)
{
    char err[1024] = "";
    struct seed_opts o;
    int rc = parse_opts(argc, argv, &o, err, sizeof err);
    if (rc != ENMS_OK) {
        fprintf(stderr, "enmsctl seed: %s\n(see enmsctl seed --help)\n", err);
        return rc;
    }
    if (o.help) {
        print_usage(stdout);
        return ENMS_OK;
    }
    PGconn *conn =
        pg_connect(cfg->pg_dsn, cfg->connect_timeout_ms, "enmsctl-seed", err, sizeof err);
    if (!conn) {
        fprintf(stderr, "enmsctl seed: %s\n", err);
        return ENMS_EDB;
    }
    rc = seed_database(conn, &o, err, sizeof err);
    if (rc != ENMS_OK)
        fprintf(stderr, "enmsctl seed: %s\n", err);
    PQfinish(conn);
    return rc;
}
