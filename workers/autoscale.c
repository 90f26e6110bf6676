/* autoscale - the worker count decision (see autoscale.h) */
#include "config.h"

#include "autoscale.h"
#include "conf.h"

/* autoscale_reset - no streak; cool-down from AT */
void autoscale_reset(struct autoscale *a, double at)
{
	a->high = 0;
	a->low = 0;
	a->changed = at;
}

/* autoscale_decide - count the streaks, then grow or shrink when one is long enough and the
 * cool-down is over */
int autoscale_decide(struct autoscale *a, const struct conf_autoscale *k, int min, int max,
    int cur, int64_t depth, double now)
{
	int64_t want;

	if (cur > 0 && depth > (int64_t)k->up_depth * cur) {
		a->high++;
		a->low = 0;
	} else if (depth <= k->down_depth) {
		a->low++;
		a->high = 0;
	} else {
		a->high = 0;
		a->low = 0;
	}
	if (a->changed >= 0 && now - a->changed < k->cooldown)
		return cur;
	if (a->high >= k->sustain && cur < max) {
		want = (depth + k->up_depth - 1) / k->up_depth;
		if (want <= cur)
			want = cur + 1;
		if (want > max)
			want = max;
		autoscale_reset(a, now);
		return (int)want;
	}
	if (a->low >= k->sustain && cur > min) {
		autoscale_reset(a, now);
		return cur - 1;
	}
	return cur;
}
