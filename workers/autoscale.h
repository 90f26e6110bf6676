/* autoscale - how many workers a channel with workers_max > 0 should run (SPEC §9), decided
 * from its queue depth every autoscale.interval seconds by the master.
 *
 * A decision finds the depth (ready messages in the channel queue) HIGH when it is above
 * autoscale.up_depth per running worker, LOW when it is at or below autoscale.down_depth, else
 * neither. After autoscale.sustain HIGH decisions in a row the channel grows to
 * ceil(depth / up_depth) workers (at least one more, at most workers_max); after as many LOW
 * ones it shrinks by one (not below workers_min). No change comes within autoscale.cooldown
 * seconds of the one before (or of a "heraldctl workers CHANNEL N"). The gap between the two
 * thresholds and the sustain keep it from flapping; growing fast and shrinking one worker at a
 * time keeps a backlog from waiting.
 */
#ifndef HERALD_AUTOSCALE_H
#define HERALD_AUTOSCALE_H

#include <stdint.h>

struct conf_autoscale;

struct autoscale {
	int high, low;                   /* decisions in a row with the depth high / low */
	double changed;                  /* when the count last changed; < 0: never */
};

/* autoscale_reset - forget the streaks; the cool-down runs from AT (< 0: no cool-down) */
void autoscale_reset(struct autoscale *a, double at);

/* autoscale_decide - the worker count for a channel running CUR workers between MIN and MAX
 * under the settings K, with DEPTH messages waiting at NOW (seconds, monotonic); CUR when
 * nothing changes */
int autoscale_decide(struct autoscale *a, const struct conf_autoscale *k, int min, int max,
	int cur, int64_t depth, double now);

#endif
