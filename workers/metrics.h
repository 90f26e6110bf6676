/* metrics - heraldd's Prometheus metrics (SPEC §9): counters every child of one master adds to,
 * in memory the master maps before it forks (like hostpause), and their text exposition.
 *
 * Workers count what they take from their channel queue, every status they record and the time
 * of each provider call; the master writes how many children of each kind are alive and how
 * many workers each channel should have; the metrics child (metricsd) reads the queue depths
 * from the broker and serves it all at GET /metrics on metrics.listen. A process that never
 * mapped the table (heraldd --worker alone) counts nothing.
 */
#ifndef HERALD_METRICS_H
#define HERALD_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct conf;

#define METRICS_KINDS 16             /* child kinds the master may report */

/* metrics_init - map the table (shared with the processes forked after it); 0 or -1. A second
 * call keeps the first table. */
int metrics_init(void);

/* metrics_received - a worker of channel CH took a message from its queue */
void metrics_received(int ch);

/* metrics_status - a worker of channel CH recorded STATUS (an unknown one counts nowhere) */
void metrics_status(int ch, const char *status);

/* metrics_latency - one provider call of channel CH took US microseconds */
void metrics_latency(int ch, int64_t us);

/* metrics_workers - the master: KIND (named NAME, at most 15 bytes) has ALIVE children running
 * and not draining */
void metrics_workers(int kind, const char *name, int alive);

/* metrics_target - the master: channel CH should run N workers; AUTOSCALED when it moves
 * between workers_min and workers_max by itself */
void metrics_target(int ch, int n, int autoscaled);

/* metrics_autoscaled - the master: autoscale moved channel CH up (UP) or down */
void metrics_autoscaled(int ch, int up);

/* metrics_depth_set - metricsd: channel CH's queue holds DEPTH ready messages and its parking
 * queue PARKED, read at AT (µs since the epoch); DEPTH -1: the read failed */
void metrics_depth_set(int ch, int64_t depth, int64_t parked, int64_t at);

/* metrics_depth - channel CH's queue depth when read at most MAXAGE µs before NOW; -1 when no
 * such reading exists */
int64_t metrics_depth(int ch, int64_t now, int64_t maxage);

/* metrics_render - the whole exposition (text format 0.0.4) at NOW, depths older than MAXAGE
 * µs left out; a malloc'd string (its length in *LEN), or NULL when out of memory */
char *metrics_render(int64_t now, int64_t maxage, size_t *len);

/* metricsd_main - the metrics child: read the queue depths every metrics.depth_interval
 * seconds and, when metrics.listen is set, serve GET /metrics there, until SIGTERM/SIGINT;
 * an EX_ exit code */
int metricsd_main(const struct conf *c);

#endif
