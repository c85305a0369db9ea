/* migrate.c - `enmsctl migrate`: applies the numbered SQL files of the schema folder
 * (NNN_name.sql) that the database has not recorded yet, in order, each in its own transaction,
 * and records each one with a checksum in schema_migrations.
 *
 * It owns the migration runner only; the schema itself lives in the schema folder's files. A
 * session-level advisory lock keeps two migrators (say, two hosts starting at once) from racing,
 * and the checksum turns an edit of an already applied file into a loud error instead of a
 * silent drift between databases. */
#include "ctl.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/error.h"
#include "../common/pg.h"

#define MIGRATE_MAX_FILE_BYTES (1024 * 1024)
#define MIGRATE_NAME_MAX       128
#define MIGRATE_CHECKSUM_LEN   (8 + 16) /* "fnv1a64:" and 16 hex digits */
#define MIGRATE_ERR_MAX        1024

/* Key of the advisory lock: the bytes "enmsmigr" read as a big-endian integer. Any process
 * that changes the schema takes it; it is released when the session ends. */
#define MIGRATE_LOCK_SQL    "SELECT pg_advisory_lock(7308899587793184626)"
#define MIGRATE_TRYLOCK_SQL "SELECT pg_try_advisory_lock(7308899587793184626)"
#define MIGRATE_UNLOCK_SQL  "SELECT pg_advisory_unlock(7308899587793184626)"

#define MIGRATE_TABLE_SQL                                                                          \
    "CREATE TABLE IF NOT EXISTS schema_migrations ("                                               \
    " version integer PRIMARY KEY,"                                                                \
    " name text NOT NULL,"                                                                         \
    " checksum text NOT NULL,"                                                                     \
    " applied_at timestamptz NOT NULL DEFAULT now())"

/* One NNN_name.sql file, read whole, plus what the database says about it. */
struct migration {
    int version;
    char name[MIGRATE_NAME_MAX];
    char checksum[MIGRATE_CHECKSUM_LEN + 1];
    char *sql; /* file text, NUL-terminated; freed by migrations_free() */
    size_t len;
    int applied;         /* recorded in schema_migrations */
    char applied_at[64]; /* as the server printed it, when applied */
    int changed;         /* recorded with another checksum or name */
    char recorded[MIGRATE_NAME_MAX];
};

struct migration_set {
    struct migration *items;
    size_t count;
    size_t cap;
};

static void migrations_free(struct migration_set *set)
{
    for (size_t i = 0; i < set->count; i++)
        free(set->items[i].sql);
    free(set->items);
    set->items = NULL;
    set->count = set->cap = 0;
}

/* 64-bit FNV-1a over the file bytes, written as "fnv1a64:<16 hex digits>". It detects edits;
 * it is not meant to resist tampering. */
static void checksum_fnv1a64(const char *buf, size_t len, char out[MIGRATE_CHECKSUM_LEN + 1])
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)buf[i];
        h *= UINT64_C(0x100000001b3);
    }
    snprintf(out, MIGRATE_CHECKSUM_LEN + 1, "fnv1a64:%016" PRIx64, h);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Matches ^[0-9]{3}_[a-z0-9_]+\.sql$ and stores the number. Returns 1 on a match. */
static int migration_name_parse(const char *name, int *version)
{
    size_t len = strlen(name);
    if (len < 3 + 1 + 1 + 4 || len >= MIGRATE_NAME_MAX || !ends_with(name, ".sql"))
        return 0;
    for (size_t i = 0; i < 3; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
    }
    if (name[3] != '_')
        return 0;
    for (size_t i = 4; i < len - 4; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    *version = (name[0] - '0') * 100 + (name[1] - '0') * 10 + (name[2] - '0');
    return 1;
}

/* Reads a whole regular file of at most MIGRATE_MAX_FILE_BYTES. On success *out is a
 * NUL-terminated buffer the caller frees with free(). */
static int read_file_bounded(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
    int rc = ENMS_OK;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc = enms_fail(err, errlen, ENMS_EIO, "cannot open %s: %s", path, strerror(errno));
        goto done;
    }
    buf = malloc(MIGRATE_MAX_FILE_BYTES + 1);
    if (!buf) {
        rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory reading %s", path);
        goto done;
    }
    /* Ask for one byte more than the bound so that an oversized file is noticed. */
    size_t n = fread(buf, 1, MIGRATE_MAX_FILE_BYTES + 1, f);
    if (ferror(f)) {
        rc = enms_fail(err, errlen, ENMS_EIO, "cannot read %s", path);
        goto done;
    }
    if (n > MIGRATE_MAX_FILE_BYTES) {
        rc = enms_fail(err, errlen, ENMS_ETOOBIG, "%s is larger than %d bytes", path,
                       MIGRATE_MAX_FILE_BYTES);
        goto done;
    }
    /* PQexec takes a C string: a NUL byte would silently cut the migration short. */
    if (memchr(buf, '\0', n)) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "%s contains a NUL byte", path);
        goto done;
    }
    buf[n] = '\0';
    *out = buf;
    *outlen = n;
    buf = NULL;
done:
    free(buf);
    if (f)
        fclose(f);
    return rc;
}

static int migration_cmp(const void *a, const void *b)
{
    const struct migration *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* Lists dir, reads every migration file and sorts them by number. A *.sql file with any other
 * name, or two files with one number, is an error: a misnamed migration must not be skipped
 * quietly. Other files (README, editor backups) are ignored. */
static int migrations_scan(const char *dir, struct migration_set *set, char *err, size_t errlen)
{
    int rc = ENMS_OK;
    DIR *d = opendir(dir);
    if (!d)
        return enms_fail(err, errlen, ENMS_EIO, "cannot open schema folder %s: %s", dir,
                         strerror(errno));

    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        const char *name = ent->d_name;
        int version;
        if (!ends_with(name, ".sql"))
            continue;
        if (!migration_name_parse(name, &version)) {
            rc = enms_fail(err, errlen, ENMS_EINVAL,
                           "%s/%s: migration files must be named NNN_name.sql "
                           "(three digits, then lower-case letters, digits and _)",
                           dir, name);
            goto done;
        }
        char path[CONFIG_STR_MAX + MIGRATE_NAME_MAX + 2];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
            rc = enms_fail(err, errlen, ENMS_ETOOBIG, "path of %s/%s is too long", dir, name);
            goto done;
        }
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            rc = enms_fail(err, errlen, ENMS_EINVAL, "%s is not a regular file", path);
            goto done;
        }
        if (set->count == set->cap) {
            size_t cap = set->cap ? set->cap * 2 : 16;
            struct migration *items = realloc(set->items, cap * sizeof *items);
            if (!items) {
                rc = enms_fail(err, errlen, ENMS_ENOMEM, "out of memory listing %s", dir);
                goto done;
            }
            set->items = items;
            set->cap = cap;
        }
        struct migration *m = &set->items[set->count];
        memset(m, 0, sizeof *m);
        m->version = version;
        /* migration_name_parse() checked that the name fits. */
        memcpy(m->name, name, strlen(name) + 1);
        rc = read_file_bounded(path, &m->sql, &m->len, err, errlen);
        if (rc != ENMS_OK)
            goto done;
        set->count++;
        checksum_fnv1a64(m->sql, m->len, m->checksum);
    }

    if (set->count == 0) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "no NNN_name.sql migrations in %s", dir);
        goto done;
    }
    qsort(set->items, set->count, sizeof *set->items, migration_cmp);
    for (size_t i = 1; i < set->count; i++) {
        if (set->items[i].version == set->items[i - 1].version) {
            rc = enms_fail(err, errlen, ENMS_EINVAL, "%s and %s in %s share the number %03d",
                           set->items[i - 1].name, set->items[i].name, dir, set->items[i].version);
            goto done;
        }
    }
done:
    closedir(d);
    return rc;
}

static struct migration *migrations_find(struct migration_set *set, int version)
{
    for (size_t i = 0; i < set->count; i++) {
        if (set->items[i].version == version)
            return &set->items[i];
    }
    return NULL;
}

/* Marks each file applied or changed from schema_migrations, and warns about recorded
 * migrations whose file is gone (the database is newer than this checkout). The table may be
 * absent when only reporting status: then everything is pending. */
static int migrations_load_state(PGconn *conn, struct migration_set *set, char *err, size_t errlen)
{
    int rc = ENMS_OK;
    PGresult *res =
        pg_exec(conn, PGRES_TUPLES_OK, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0,
                NULL, err, errlen);
    if (!res)
        return ENMS_EDB;
    int exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!exists)
        return ENMS_OK;

    res = pg_exec(conn, PGRES_TUPLES_OK,
                  "SELECT version, name, checksum, applied_at FROM schema_migrations"
                  " ORDER BY version",
                  0, NULL, err, errlen);
    if (!res)
        return ENMS_EDB;
    for (int row = 0; row < PQntuples(res); row++) {
        int version = atoi(PQgetvalue(res, row, 0));
        const char *name = PQgetvalue(res, row, 1);
        const char *checksum = PQgetvalue(res, row, 2);
        struct migration *m = migrations_find(set, version);
        if (!m) {
            fprintf(stderr,
                    "enmsctl migrate: warning: %s is recorded as applied but is not in "
                    "the schema folder\n",
                    name);
            continue;
        }
        m->applied = 1;
        snprintf(m->applied_at, sizeof m->applied_at, "%s", PQgetvalue(res, row, 3));
        snprintf(m->recorded, sizeof m->recorded, "%s", name);
        if (strcmp(m->name, name) != 0 || strcmp(m->checksum, checksum) != 0)
            m->changed = 1;
    }
    PQclear(res);
    return rc;
}

/* Counts the line of the 1-based character position PostgreSQL reports in an error (it counts
 * characters, not bytes, so UTF-8 continuation bytes are skipped). 0 when out of range. */
static int line_of_position(const char *sql, long position)
{
    int line = 1;
    long chars = 0;
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++) {
        if ((*p & 0xC0) == 0x80)
            continue;
        if (++chars == position)
            return line;
        if (*p == '\n')
            line++;
    }
    return 0;
}

/* Runs one migration in its own transaction together with its schema_migrations row. On
 * failure everything it did is rolled back and err says which file failed and why. */
static int migration_apply(PGconn *conn, const struct migration *m, char *err, size_t errlen)
{
    int rc = ENMS_OK;
    PGresult *res = NULL;
    char pgerr[MIGRATE_ERR_MAX];

    if (pg_command(conn, "BEGIN", pgerr, sizeof pgerr) != ENMS_OK) {
        rc = enms_fail(err, errlen, ENMS_EDB, "migration %s failed: %s", m->name, pgerr);
        goto done;
    }

    /* PQexec (not PQexecParams) because a migration holds many statements. */
    res = PQexec(conn, m->sql);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_EMPTY_QUERY) {
        rc = enms_fail(err, errlen, ENMS_EINVAL, "migration %s failed: it holds no SQL statement",
                       m->name);
        goto rollback;
    }
    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
        /* The connection is now stuck in COPY; the caller closes it, which rolls back. */
        rc = enms_fail(err, errlen, ENMS_EINVAL,
                       "migration %s failed: COPY FROM STDIN / TO STDOUT cannot run in a "
                       "migration (use INSERT)",
                       m->name);
        goto done;
    }
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        const char *pos = res ? PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION) : NULL;
        int line = pos ? line_of_position(m->sql, strtol(pos, NULL, 10)) : 0;
        char where[32] = "";
        if (line > 0)
            snprintf(where, sizeof where, " (line %d)", line);
        if (!primary) {
            /* No server error (lost connection): take libpq's own text, first line. */
            snprintf(pgerr, sizeof pgerr, "%s", PQerrorMessage(conn));
            pgerr[strcspn(pgerr, "\r\n")] = '\0';
            primary = pgerr;
        }
        rc = enms_fail(err, errlen, ENMS_EDB, "migration %s failed: %s%s", m->name, primary, where);
        goto rollback;
    }
    PQclear(res);
    res = NULL;

    /* A COMMIT or ROLLBACK inside the file would end our transaction early and leave the
     * rest of it unprotected. */
    if (PQtransactionStatus(conn) != PQTRANS_INTRANS) {
        rc =
            enms_fail(err, errlen, ENMS_EINVAL,
                      "migration %s failed: it ended the transaction itself (a COMMIT, ROLLBACK or "
                      "END in the file); statements around it may have been applied and "
                      "not recorded, so check the database by hand",
                      m->name);
        goto rollback;
    }

    char version[16];
    snprintf(version, sizeof version, "%d", m->version);
    const char *params[] = {version, m->name, m->checksum};
    res = pg_exec(conn, PGRES_COMMAND_OK,
                  "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", 3,
                  params, pgerr, sizeof pgerr);
    if (!res) {
        rc = enms_fail(err, errlen, ENMS_EDB, "migration %s failed: %s", m->name, pgerr);
        goto rollback;
    }
    PQclear(res);
    res = NULL;

    if (pg_command(conn, "COMMIT", pgerr, sizeof pgerr) != ENMS_OK) {
        rc = enms_fail(err, errlen, ENMS_EDB, "migration %s failed at COMMIT: %s", m->name, pgerr);
        goto done;
    }
    goto done;

rollback:
    /* The error already explains the failure; a failed ROLLBACK (connection gone) means the
     * server discards the transaction anyway. */
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        pg_command(conn, "ROLLBACK", pgerr, sizeof pgerr);
done:
    PQclear(res);
    return rc;
}

/* Takes the migration lock, waiting (and saying so) when another migrator holds it. */
static int migrate_lock(PGconn *conn, char *err, size_t errlen)
{
    PGresult *res = pg_exec(conn, PGRES_TUPLES_OK, MIGRATE_TRYLOCK_SQL, 0, NULL, err, errlen);
    if (!res)
        return ENMS_EDB;
    int got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (got)
        return ENMS_OK;
    fprintf(stderr, "enmsctl migrate: another migration is running; waiting for it to finish\n");
    res = pg_exec(conn, PGRES_TUPLES_OK, MIGRATE_LOCK_SQL, 0, NULL, err, errlen);
    if (!res)
        return ENMS_EDB;
    PQclear(res);
    return ENMS_OK;
}

static void migrate_print_status(const struct migration_set *set)
{
    size_t applied = 0;
    for (size_t i = 0; i < set->count; i++) {
        const struct migration *m = &set->items[i];
        if (m->changed && strcmp(m->name, m->recorded) != 0)
            printf("%-40s CHANGED (recorded as %s)\n", m->name, m->recorded);
        else if (m->changed)
            printf("%-40s CHANGED after it was applied at %s\n", m->name, m->applied_at);
        else if (m->applied)
            printf("%-40s applied %s\n", m->name, m->applied_at);
        else
            printf("%-40s pending\n", m->name);
        applied += m->applied ? 1 : 0;
    }
    printf("%zu migrations: %zu applied, %zu pending\n", set->count, applied, set->count - applied);
}

static void migrate_usage(FILE *out)
{
    fprintf(out, "usage: enmsctl migrate [--status]\n"
                 "  Applies the NNN_name.sql files of ENMS_SCHEMA_DIR not yet recorded in\n"
                 "  schema_migrations, in order, each in one transaction.\n"
                 "  --status  list each migration as applied or pending; change nothing\n");
}

int ctl_migrate(const struct enms_config *cfg, int argc, char **argv)
{
    int rc = ENMS_OK;
    int status_only = 0;
    int locked = 0;
    size_t applied_now = 0;
    struct migration_set set = {0};
    PGconn *conn = NULL;
    char err[MIGRATE_ERR_MAX] = "";

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--status") == 0) {
            status_only = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            migrate_usage(stdout);
            return ENMS_OK;
        } else {
            fprintf(stderr, "enmsctl migrate: unknown argument '%s'\n", argv[i]);
            migrate_usage(stderr);
            return ENMS_EINVAL;
        }
    }

    if (cfg->schema_dir[0] == '\0') {
        rc = enms_fail(err, sizeof err, ENMS_EINVAL,
                       "no schema folder: set ENMS_SCHEMA_DIR (none was found next to the "
                       "binary or in /usr/share/enms-retrain/schema)");
        goto done;
    }
    /* Read every file before touching the database, so a bad folder changes nothing. */
    rc = migrations_scan(cfg->schema_dir, &set, err, sizeof err);
    if (rc != ENMS_OK)
        goto done;

    char connerr[MIGRATE_ERR_MAX / 2];
    conn = pg_connect(cfg->pg_dsn, cfg->connect_timeout_ms, "enmsctl", connerr, sizeof connerr);
    if (!conn) {
        /* The DSN is not echoed: it may hold a password. */
        rc = enms_fail(err, sizeof err, ENMS_EDB,
                       "cannot connect to the database (ENMS_PG_DSN): %s", connerr);
        goto done;
    }
    /* "relation already exists, skipping" and the like are noise for an operator. */
    rc = pg_command(conn, "SET client_min_messages = warning", err, sizeof err);
    if (rc != ENMS_OK)
        goto done;

    if (!status_only) {
        rc = migrate_lock(conn, err, sizeof err);
        if (rc != ENMS_OK)
            goto done;
        locked = 1;
        rc = pg_command(conn, MIGRATE_TABLE_SQL, err, sizeof err);
        if (rc != ENMS_OK)
            goto done;
    }

    /* Read under the lock: a migrator that waited sees what the other one applied. */
    rc = migrations_load_state(conn, &set, err, sizeof err);
    if (rc != ENMS_OK)
        goto done;

    if (status_only) {
        migrate_print_status(&set);
        for (size_t i = 0; i < set.count; i++) {
            if (set.items[i].changed) {
                rc = enms_fail(err, sizeof err, ENMS_ECONFLICT,
                               "migration %s was changed after it was applied", set.items[i].name);
                goto done;
            }
        }
        goto done;
    }

    int newest_applied = -1;
    for (size_t i = 0; i < set.count; i++) {
        const struct migration *m = &set.items[i];
        if (m->changed && strcmp(m->name, m->recorded) != 0) {
            rc = enms_fail(err, sizeof err, ENMS_ECONFLICT,
                           "migration %03d is recorded as %s but the file is now %s", m->version,
                           m->recorded, m->name);
            goto done;
        }
        if (m->changed) {
            rc = enms_fail(err, sizeof err, ENMS_ECONFLICT,
                           "migration %s was changed after it was applied", m->name);
            goto done;
        }
        if (m->applied)
            newest_applied = m->version;
    }

    for (size_t i = 0; i < set.count; i++) {
        const struct migration *m = &set.items[i];
        if (m->applied)
            continue;
        /* A pending file numbered below an applied one (two branches merged) would run out
         * of order on this database but in order on a fresh one: refuse and let a person
         * renumber it. */
        if (m->version < newest_applied) {
            rc = enms_fail(err, sizeof err, ENMS_ECONFLICT,
                           "migration %s is pending but a later migration (%03d) is already "
                           "applied; renumber it after the newest one",
                           m->name, newest_applied);
            goto done;
        }
        rc = migration_apply(conn, m, err, sizeof err);
        if (rc != ENMS_OK)
            goto done;
        printf("applied %s\n", m->name);
        fflush(stdout);
        applied_now++;
    }
    printf("schema up to date (%zu migrations, %zu applied now)\n", set.count, applied_now);

done:
    if (rc != ENMS_OK)
        fprintf(stderr, "enmsctl migrate: %s\n", err[0] ? err : enms_err_name(rc));
    if (locked && PQstatus(conn) == CONNECTION_OK) {
        PGresult *res = PQexec(conn, MIGRATE_UNLOCK_SQL);
        PQclear(res);
    }
    PQfinish(conn);
    migrations_free(&set);
    return rc;
}
