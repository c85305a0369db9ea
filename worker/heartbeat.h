/* heartbeat.h - the watch kept over a training job: the cancel flag and the
 * timeout every 250 ms, the shutdown grace, and every heartbeat interval the
 * lease, the worker's registry hash and the job's heartbeat in PostgreSQL,
 * and (right after a renewal) whether the progress has stood still for
 * ENMS_STUCK_PROGRESS_S (STOP_STUCK); progress goes to the live hash and
 * the events channel at most four times a second.
 *
 * The watch runs on the worker's main thread with the main thread's own
 * connections (w->pg, w->redis); the training thread never touches them. It
 * does not settle the job: runner.c does that once the watch returns. */
#ifndef ENMS_WORKER_HEARTBEAT_H
#define ENMS_WORKER_HEARTBEAT_H

#include "runner.h"

#define HEARTBEAT_TICK_MS      250  /* cancel, timeout and shutdown checks; progress throttle */
#define HEARTBEAT_STOP_WAIT_MS 2000 /* how long a told-to-stop training thread may take */

/* Watches run until its training thread finishes (run->done), or until the
 * thread was told to stop and did not finish within HEARTBEAT_STOP_WAIT_MS
 * (a stuck thread: run->done is still 0 when this returns). */
void heartbeat_watch(struct run *run);

#endif
