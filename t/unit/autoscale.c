/* t/unit/autoscale - the autoscale decision (workers/autoscale.c): sustain, thresholds,
 * hysteresis, cool-down, bounds */
#include "config.h"

#include <stdint.h>

#include "autoscale.h"
#include "conf.h"
#include "tap.h"

/* run - feed DEPTHS (one per decision, 1 s apart from T0) to A starting at CUR; the counts after
 * each decision into OUT; the last count */
static int run(struct autoscale *a, const struct conf_autoscale *k, int min, int max, int cur,
    const int64_t *depths, int n, double t0, int *out)
{
	int i;

	for (i = 0; i < n; i++) {
		cur = autoscale_decide(a, k, min, max, cur, depths[i], t0 + i);
		out[i] = cur;
	}
	return cur;
}

int main(void)
{
	const struct conf_autoscale k = { .interval = 1, .up_depth = 100, .down_depth = 5,
		.sustain = 3, .cooldown = 10 };
	struct autoscale a;
	int out[32];

	plan(15);

	/* growing: three high decisions in a row, then to ceil(depth / up_depth), within max */
	autoscale_reset(&a, -1);
	{
		const int64_t d[] = { 500, 500, 500 };

		run(&a, &k, 1, 8, 1, d, 3, 0, out);
		is_int(out[1], 1, "two high decisions: no change (sustain 3)");
		is_int(out[2], 5, "the third: up to ceil(500 / 100) = 5");
	}
	autoscale_reset(&a, -1);
	{
		const int64_t d[] = { 5000, 5000, 5000 };

		is_int(run(&a, &k, 1, 4, 1, d, 3, 0, out), 4, "a huge backlog: up to workers_max only");
	}
	autoscale_reset(&a, -1);
	{
		const int64_t d[] = { 250, 250, 250 };

		is_int(run(&a, &k, 1, 8, 2, d, 3, 0, out), 3, "250 waiting for 2 workers: up to 3");
	}
	/* a streak broken by a middle depth starts again */
	autoscale_reset(&a, -1);
	{
		const int64_t d[] = { 500, 500, 50, 500, 500 };

		is_int(run(&a, &k, 1, 8, 1, d, 5, 0, out), 1, "high, high, middle, high, high: no change");
	}
	/* depth per worker: 150 is high for one worker, not for two */
	autoscale_reset(&a, -1);
	{
		const int64_t d[] = { 150, 150, 150 };

		is_int(run(&a, &k, 1, 8, 2, d, 3, 0, out), 2, "150 waiting for 2 workers: not high");
	}
	/* shrinking: one at a time, a cool-down apart, not below min */
	autoscale_reset(&a, -1);
	{
		const int64_t d[] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
			0, 0, 0, 0, 0, 0, 0, 0, 0 };

		run(&a, &k, 2, 8, 4, d, 30, 100, out);
		is_int(out[2], 3, "an empty queue for three decisions: down by one");
		is_int(out[11], 3, "no further change within the cool-down");
		is_int(out[12], 2, "after it (and three more low decisions): down again");
		is_int(out[29], 2, "never below workers_min");
	}
	/* a depth between the thresholds holds the count (the hysteresis band) */
	autoscale_reset(&a, -1);
	{
		const int64_t d[] = { 50, 50, 50, 50, 50, 6, 6, 6 };

		is_int(run(&a, &k, 1, 8, 3, d, 8, 0, out), 3, "depths between down_depth and up_depth "
		    "per worker: no change");
	}
	/* a change set by hand (heraldctl workers) starts the cool-down */
	autoscale_reset(&a, 50);
	{
		const int64_t d[] = { 900, 900, 900, 900, 900, 900, 900, 900, 900, 900, 900 };

		run(&a, &k, 1, 8, 2, d, 11, 50, out);
		is_int(out[9], 2, "within the cool-down of a manual change: no change");
		is_int(out[10], 8, "after it: the sustained backlog grows the channel");
	}
	/* a growth resets the streak: the next needs sustain decisions again, after the cool-down */
	autoscale_reset(&a, -1);
	{
		const int64_t d[] = { 300, 300, 300, 900, 900, 900, 900, 900, 900, 900, 900, 900, 900,
			900 };

		run(&a, &k, 1, 8, 1, d, 14, 0, out);
		is_int(out[2], 3, "first growth to 3");
		is_int(out[12], 8, "the next only after the cool-down (10 s later)");
	}
	return done();
}
