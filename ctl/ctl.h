/* ctl.h - the subcommands of enmsctl, the operators' tool.
 *
 * Each subcommand receives the loaded configuration and its own argv (argv[0]
 * is the subcommand name), prints what it did on stdout and problems on
 * stderr, and returns 0 or a negative enms_err code; main() maps that to the
 * exit status. */
#ifndef ENMS_CTL_H
#define ENMS_CTL_H

#include "../common/config.h"

/* Applies schema/NNN_*.sql migrations not yet recorded, in order, once each. */
int ctl_migrate(const struct enms_config *cfg, int argc, char **argv);

/* Loads the demo machines, a year of hourly readings, labels and truth. */
int ctl_seed(const struct enms_config *cfg, int argc, char **argv);

/* Loads hourly readings from a CSV file in one transaction, or nothing. */
int ctl_import(const struct enms_config *cfg, int argc, char **argv);

#endif
