/* pg.h - PostgreSQL connection helpers on libpq.
 *
 * One PGconn per thread (libpq connections are not shared). These helpers add
 * what every caller needs: a bounded connect, keepalives and an application
 * name, a cheap liveness check with reconnect, errors as sentences, and
 * hot statements prepared once per connection (struct pg_stmt). */
#ifndef ENMS_PG_H
#define ENMS_PG_H

#include <stddef.h>
#include <libpq-fe.h>

/* Connects to dsn (URL or key=value string) with connect_timeout, keepalives
 * and application_name added. Returns a connection the caller frees with
 * PQfinish(), or NULL with the reason in err. */
PGconn *pg_connect(const char *dsn, int connect_timeout_ms, const char *app_name, char *err,
                   size_t errlen);

/* Makes *conn usable: connects when NULL, replaces it when it is bad or the
 * server closed it meanwhile (checked without a round trip). Call it between
 * statements, never inside a transaction the caller wants to keep.
 * Returns 0 or ENMS_EDB. *conn stays owned by the caller. */
int pg_ensure(PGconn **conn, const char *dsn, int connect_timeout_ms, const char *app_name,
              char *err, size_t errlen);

/* Runs "SELECT 1"; returns 0 when the server answers, ENMS_EDB otherwise. */
int pg_ping(PGconn *conn, char *err, size_t errlen);

/* Runs a statement with text parameters (all bound, never interpolated) and
 * checks that the result status is expect. Returns the result (caller frees
 * with PQclear) or NULL with the server's message in err. */
PGresult *pg_exec(PGconn *conn, ExecStatusType expect, const char *sql, int nparams,
                  const char *const *params, char *err, size_t errlen);

/* Runs a statement that returns no rows (BEGIN, COMMIT, DDL). 0 or ENMS_EDB. */
int pg_command(PGconn *conn, const char *sql, char *err, size_t errlen);

/* A statement the hot paths run often (job transitions): prepared on a
 * connection the first time it is used there, then only executed, so the
 * server parses and plans it once per connection instead of once per call.
 * Define it with static storage: pg.c remembers, per connection, which
 * statements (by address) it has prepared. A replaced connection is a new
 * PGconn and prepares again; PQreset forgets them too. name must be unique
 * in the process and at most 63 bytes. */
struct pg_stmt {
    const char *name;
    const char *sql;
    int nparams;
};

/* Prepares stmt on conn when not yet done there, then executes it with
 * text parameters. Returns the result whatever its status (so the caller
 * can read a SQLSTATE; caller frees with PQclear), or NULL when there is no
 * connection or libpq ran out of memory (reason in err). */
PGresult *pg_run_stmt(PGconn *conn, const struct pg_stmt *stmt, const char *const *params,
                      char *err, size_t errlen);

/* pg_run_stmt, checked like pg_exec: the result when its status is expect,
 * else NULL with the server's message in err. */
PGresult *pg_exec_stmt(PGconn *conn, ExecStatusType expect, const struct pg_stmt *stmt,
                       const char *const *params, char *err, size_t errlen);

/* SQLSTATE of a failed result, "" when none. Never NULL. */
const char *pg_sqlstate(const PGresult *res);

#endif
