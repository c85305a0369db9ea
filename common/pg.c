/* pg.c - PostgreSQL connection helpers (see pg.h). */
#include "pg.h"
#include "error.h"

#include <libpq-events.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_STMT_MAX                 32 /* distinct prepared statements tracked per connection */
#define SQLSTATE_DUPLICATE_PREPARED "42P05"
#define SQLSTATE_UNKNOWN_PREPARED   "26000"

/* libpq reports errors with a trailing newline; our messages are one line. */
static void copy_pg_message(char *err, size_t errlen, const char *prefix, const char *msg)
{
    if (!err || errlen == 0)
        return;
    snprintf(err, errlen, "%s%s", prefix, msg ? msg : "unknown error");
    for (char *p = err; *p; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = (p[1] == '\0') ? '\0' : ' ';
    }
}

PGconn *pg_connect(const char *dsn, int connect_timeout_ms, const char *app_name, char *err,
                   size_t errlen)
{
    char timeout[16];
    /* libpq's timeout is in whole seconds, minimum 2 (it treats 1 as 2). */
    int seconds = (connect_timeout_ms + 999) / 1000;
    snprintf(timeout, sizeof timeout, "%d", seconds < 2 ? 2 : seconds);

    /* expand_dbname=1: "dbname" may hold a whole URL or key=value string;
     * later keywords here override what it says, which is what we want for
     * the timeout and keepalives but not for application_name, so that one
     * goes first and the DSN may override it. */
    const char *keys[] = {"application_name", "dbname",          "connect_timeout",
                          "keepalives",       "keepalives_idle", NULL};
    const char *values[] = {app_name ? app_name : "enms", dsn, timeout, "1", "30", NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    if (!conn) {
        enms_fail(err, errlen, ENMS_ENOMEM, "postgresql: out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        copy_pg_message(err, errlen, "postgresql: ", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* A connection whose server went away while it sat idle (a restart, a
 * terminated backend) still says CONNECTION_OK until a query fails on it,
 * so every pooled connection would fail one request after a restart.
 * Reading what waits on its socket notices first: libpq keeps the socket
 * non-blocking, so this never waits. The first read takes the server's
 * FATAL goodbye, the second meets the end of the stream and marks the
 * connection bad; on a live idle connection both read nothing. */
static int pg_still_open(PGconn *conn)
{
    for (int i = 0; i < 2; i++) {
        if (!PQconsumeInput(conn))
            return 0;
    }
    return PQstatus(conn) == CONNECTION_OK;
}

int pg_ensure(PGconn **conn, const char *dsn, int connect_timeout_ms, const char *app_name,
              char *err, size_t errlen)
{
    if (*conn && PQstatus(*conn) == CONNECTION_OK && pg_still_open(*conn))
        return ENMS_OK;
    if (*conn) {
        /* A broken connection is replaced rather than PQreset(), so the
         * connect timeout applies to the retry as well. */
        PQfinish(*conn);
        *conn = NULL;
    }
    *conn = pg_connect(dsn, connect_timeout_ms, app_name, err, errlen);
    return *conn ? ENMS_OK : ENMS_EDB;
}

int pg_ping(PGconn *conn, char *err, size_t errlen)
{
    PGresult *res = pg_exec(conn, PGRES_TUPLES_OK, "SELECT 1", 0, NULL, err, errlen);
    if (!res)
        return ENMS_EDB;
    PQclear(res);
    return ENMS_OK;
}

PGresult *pg_exec(PGconn *conn, ExecStatusType expect, const char *sql, int nparams,
                  const char *const *params, char *err, size_t errlen)
{
    if (!conn) {
        enms_fail(err, errlen, ENMS_EDB, "postgresql: not connected");
        return NULL;
    }
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    if (!res) {
        copy_pg_message(err, errlen, "postgresql: ", PQerrorMessage(conn));
        return NULL;
    }
    if (PQresultStatus(res) != expect) {
        const char *msg = PQresultErrorMessage(res);
        copy_pg_message(err, errlen,
                        "postgresql: ", msg && *msg ? msg : PQresStatus(PQresultStatus(res)));
        PQclear(res);
        return NULL;
    }
    return res;
}

int pg_command(PGconn *conn, const char *sql, char *err, size_t errlen)
{
    PGresult *res = pg_exec(conn, PGRES_COMMAND_OK, sql, 0, NULL, err, errlen);
    if (!res)
        return ENMS_EDB;
    PQclear(res);
    return ENMS_OK;
}

/* Which pg_stmt a connection has prepared, kept as libpq instance data of
 * the connection itself (no global table): it dies with the PGconn. */
struct prepared_set {
    int n;
    const struct pg_stmt *stmts[PG_STMT_MAX];
};

/* libpq event procedure owning the prepared_set: a reset session has lost
 * its prepared statements; a finished connection frees the set. */
static int prepared_events(PGEventId id, void *info, void *pass)
{
    (void)pass;
    if (id == PGEVT_CONNRESET) {
        struct prepared_set *set =
            PQinstanceData(((PGEventConnReset *)info)->conn, prepared_events);
        if (set)
            set->n = 0;
    } else if (id == PGEVT_CONNDESTROY) {
        free(PQinstanceData(((PGEventConnDestroy *)info)->conn, prepared_events));
    }
    return 1;
}

/* The connection's set, registered on first use; NULL when out of memory. */
static struct prepared_set *prepared_set_of(PGconn *conn)
{
    struct prepared_set *set = PQinstanceData(conn, prepared_events);
    if (set)
        return set;
    if (!PQregisterEventProc(conn, prepared_events, "enms-prepared", NULL))
        return NULL;
    set = calloc(1, sizeof *set);
    if (set && !PQsetInstanceData(conn, prepared_events, set)) {
        free(set);
        set = NULL;
    }
    return set;
}

/* Index of stmt in set, or -1. */
static int prepared_find(const struct prepared_set *set, const struct pg_stmt *stmt)
{
    for (int i = 0; set && i < set->n; i++) {
        if (set->stmts[i] == stmt)
            return i;
    }
    return -1;
}

PGresult *pg_run_stmt(PGconn *conn, const struct pg_stmt *stmt, const char *const *params,
                      char *err, size_t errlen)
{
    PGresult *res;
    if (!conn) {
        enms_fail(err, errlen, ENMS_EDB, "postgresql: not connected");
        return NULL;
    }
    struct prepared_set *set = prepared_set_of(conn);
    int at = prepared_find(set, stmt);
    if (at < 0 && (!set || set->n == PG_STMT_MAX)) {
        /* Untracked: run it unprepared rather than fail. */
        res = PQexecParams(conn, stmt->sql, stmt->nparams, NULL, params, NULL, NULL, 0);
        goto out;
    }
    if (at < 0) {
        res = PQprepare(conn, stmt->name, stmt->sql, stmt->nparams, NULL);
        if (!res)
            goto out;
        /* Already there means a set that lost track of it (cannot happen
         * through this file, but costs nothing to accept). */
        if (PQresultStatus(res) != PGRES_COMMAND_OK &&
            strcmp(pg_sqlstate(res), SQLSTATE_DUPLICATE_PREPARED) != 0)
            return res; /* the error result: the caller reads why */
        PQclear(res);
        at = set->n++;
        set->stmts[at] = stmt;
    }
    res = PQexecPrepared(conn, stmt->name, stmt->nparams, params, NULL, NULL, 0);
    if (res && strcmp(pg_sqlstate(res), SQLSTATE_UNKNOWN_PREPARED) == 0) {
        /* The session lost it (DISCARD ALL by someone): prepare next time. */
        set->stmts[at] = set->stmts[--set->n];
    }
out:
    if (!res)
        copy_pg_message(err, errlen, "postgresql: ", PQerrorMessage(conn));
    return res;
}

PGresult *pg_exec_stmt(PGconn *conn, ExecStatusType expect, const struct pg_stmt *stmt,
                       const char *const *params, char *err, size_t errlen)
{
    PGresult *res = pg_run_stmt(conn, stmt, params, err, errlen);
    if (res && PQresultStatus(res) != expect) {
        const char *msg = PQresultErrorMessage(res);
        copy_pg_message(err, errlen,
                        "postgresql: ", msg && *msg ? msg : PQresStatus(PQresultStatus(res)));
        PQclear(res);
        return NULL;
    }
    return res;
}

const char *pg_sqlstate(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state ? state : "";
}
