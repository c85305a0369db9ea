/* ctl.h - the subcommands of enmsctl, the operators' tool.
 *
 * Each subcommand receives the loaded configuration and its own argv (argv[0]
 * is the subcommand name), prints what it did on stdout and problems on
 * stderr, and returns 0 or a negative enms_err code; main() maps that to the
 * exit status. */
#ifndef ENMS_CTL_H
#define ENMS_CTL_H

#include <stddef.h>
#include <hiredis.h>
#include <libpq-fe.h>

#include "../common/config.h"

/* Applies schema/NNN_*.sql migrations not yet recorded, in order, once each. */
int ctl_migrate(const struct enms_config *cfg, int argc, char **argv);

/* Loads the demo machines, a year of hourly readings, labels and truth. */
int ctl_seed(const struct enms_config *cfg, int argc, char **argv);

/* Loads hourly readings from a CSV file in one transaction, or nothing. */
int ctl_import(const struct enms_config *cfg, int argc, char **argv);

/* Queue and worker overview: queues, dead-letter list, workers, job counts
 * (ctl/status.c). */
int ctl_status(const struct enms_config *cfg, int argc, char **argv);

/* Job history with filters, newest first (ctl/jobs.c). */
int ctl_jobs(const struct enms_config *cfg, int argc, char **argv);

/* Cancels a pending or running job (ctl/queue_ops.c). */
int ctl_cancel(const struct enms_config *cfg, int argc, char **argv);

/* Puts failed jobs (one, or the whole dead-letter list) back to pending. */
int ctl_requeue(const struct enms_config *cfg, int argc, char **argv);

/* Runs one housekeeping pass now and prints what it did. */
int ctl_housekeeping(const struct enms_config *cfg, int argc, char **argv);

/* Fits a model to a CSV file outside the queue and prints it as JSON
 * (ctl/fit.c, docs/models-fit.md). */
int ctl_fit(const struct enms_config *cfg, int argc, char **argv);

/* Creates evaluate jobs for the active models matching --machine and
 * --model-type; --wait follows them to the end (ctl/evaluate.c). */
int ctl_evaluate(const struct enms_config *cfg, int argc, char **argv);

/* Connections of one subcommand run (ctl/ops.c). Either may be NULL when
 * not asked for; ctl_disconnect frees both. */
struct ctl_conn {
    PGconn *pg;
    redisContext *redis;
};

/* Opens PostgreSQL (want_pg) and Redis (want_redis, from ENMS_REDIS_URL).
 * On error closes what it opened and says which one failed in err. */
int ctl_connect(const struct enms_config *cfg, int want_pg, int want_redis, const char *app,
                struct ctl_conn *conn, char *err, size_t errlen);
void ctl_disconnect(struct ctl_conn *conn);

/* Accepts "--name value" and "--name=value": returns the value and advances
 * *i past it, or NULL when argv[*i] is not this option (*missing is set
 * when it is but the value is absent). */
const char *ctl_option(int argc, char **argv, int *i, const char *name, int *missing);

/* Copies text into a table cell of outlen bytes: control characters become
 * spaces, and text that does not fit ends with "...". */
/* Writes "<prefix><suffix>" with the glob characters of the prefix escaped,
 * for SCAN MATCH. 0 or ENMS_ETOOBIG. */
int ctl_scan_pattern(char *buf, size_t buflen, const char *prefix, const char *suffix);

void ctl_cell(char *out, size_t outlen, const char *text);

#endif
