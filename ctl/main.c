/* main.c - enmsctl: dispatches to the operator subcommands declared in
 * ctl.h. Global work (configuration, logging) happens here once. */
#include "ctl.h"
#include "../common/error.h"
#include "../common/log.h"

#include <gsl/gsl_errno.h>
#include <stdio.h>
#include <string.h>

struct ctl_command {
    const char *name;
    int (*run)(const struct enms_config *cfg, int argc, char **argv);
    const char *summary;
};

static const struct ctl_command commands[] = {
    {"migrate", ctl_migrate, "apply database migrations (--status to list them)"},
    {"seed", ctl_seed, "load demo machines and a year of hourly readings"},
    {"import", ctl_import, "load hourly readings from a CSV file (or --gretl FILE)"},
    {"status", ctl_status, "queues, dead-letter list, workers and job counts (--json)"},
    {"jobs", ctl_jobs, "list jobs, newest first (--status, --model-type, --machine-id, --limit)"},
    {"cancel", ctl_cancel, "cancel a pending or running job: cancel JOB_ID"},
    {"requeue", ctl_requeue, "put failed jobs back to pending: requeue JOB_ID | --all"},
    {"housekeeping", ctl_housekeeping, "run one housekeeping pass now and print what it did"},
    {"evaluate", ctl_evaluate,
     "evaluate active models on their new readings (--machine, --model-type, --wait)"},
    {"fit", ctl_fit, "fit a model to a CSV file and print it as JSON (--model, --csv)"},
};

static void print_usage(FILE *out)
{
    fprintf(out, "usage: enmsctl COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun `enmsctl COMMAND --help` for a command's options. Configuration comes "
                 "from the environment:\n");
    for (size_t i = 0; i < config_var_count; i++)
        fprintf(out, "  %-26s %-14s %s\n", config_vars[i].name, config_vars[i].default_text,
                config_vars[i].meaning);
}

int main(int argc, char **argv)
{
    struct enms_config cfg;
    char err[512];

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        print_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        if (config_load(&cfg, err, sizeof err) != ENMS_OK) {
            fprintf(stderr, "enmsctl: configuration error: %s\n", err);
            return 2;
        }
        log_init("enmsctl", cfg.log_level);
        /* GSL aborts the process on errors by default; models check return codes. */
        gsl_set_error_handler_off();
        int rc = commands[i].run(&cfg, argc - 1, argv + 1);
        if (rc == ENMS_OK)
            return 0;
        /* Bad usage or input is exit 2, everything else 1, as most tools do. */
        return rc == ENMS_EINVAL ? 2 : 1;
    }
    fprintf(stderr, "enmsctl: unknown command \"%s\"\n\n", argv[1]);
    print_usage(stderr);
    return 2;
}
