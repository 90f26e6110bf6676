/* control - heraldd's control socket: a unix stream socket (mode 0600) on which heraldctl sends
 * one request line and reads one JSON line back (SPEC §9: heraldctl workers [CHANNEL N])
 *
 *   "workers\n"            → the worker counts (control_ops.status)
 *   "workers CHANNEL N\n"  → {"channel":..,"workers":N,"previous":M} (control_ops.set_workers)
 *   anything else          → {"error":"..."}
 */
#ifndef HERALD_CONTROL_H
#define HERALD_CONTROL_H

#include <stddef.h>

#include <ev.h>

struct json_object;
struct control;

#define CONTROL_LINE_MAX 256

struct control_ops {
	/* status - the answer to "workers" (a new JSON object, owned by the caller) */
	struct json_object *(*status)(void *arg);
	/* set_workers - set channel CH (enum conf_channel_id) to N workers; the previous count,
	 * or -1 with ERR saying why not */
	int (*set_workers)(void *arg, int ch, int n, char *err, size_t errlen);
};

/* control_open - listen on PATH with LOOP, answering through OPS with ARG; a stale socket
 * file (nobody answering) is replaced, a live one is refused. NULL with ERR on failure. */
struct control *control_open(struct ev_loop *loop, const char *path, const struct control_ops *ops,
	void *arg, char *err, size_t errlen);

/* control_fd - the listening socket (a forked child closes it) */
int control_fd(const struct control *ctl);

/* control_close - stop listening, remove the socket file (only when REMOVE) and free CTL */
void control_close(struct control *ctl, int remove);

#endif
