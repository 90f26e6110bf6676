/* t/unit/tzday - local days in UTC, London (DST days), Kolkata, Kiritimati, St Johns, Santiago */
#include "config.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tap.h"
#include "tzday.h"

#define S 1000000LL              /* microseconds per second */
#define H (3600 * S)

static int tzset_calls;

/* tzset - count the calls tzday makes, then do the real thing */
void tzset(void)
{
	void (*real)(void) = (void (*)(void))dlsym(RTLD_NEXT, "tzset");

	tzset_calls++;
	if (real != NULL)
		real();
}

struct tzday_t_case {
	const char *zone;
	int64_t at;                  /* an instant (usec) */
	const char *date;            /* its local date */
	int minute;                  /* its local minute of day */
	int64_t next;                /* the next local midnight (usec) */
	int64_t hours;               /* length of that local day in hours (0: not checked) */
};

static const struct tzday_t_case cases[] = {
	/* UTC: 2026-11-22T09:00Z */
	{ "UTC", 1795338000 * S, "2026-11-22", 540, 1795392000 * S, 24 },
	{ "UTC", 0, "1970-01-01", 0, 86400 * S, 24 },
	{ "UTC", 1795391999 * S + 999999, "2026-11-22", 1439, 1795392000 * S, 24 },
	/* London, spring forward 2026-03-29 01:00Z: a 23-hour day */
	{ "Europe/London", 1774742400 * S, "2026-03-29", 0, 1774825200 * S, 23 },
	{ "Europe/London", 1774745940 * S, "2026-03-29", 59, 1774825200 * S, 23 },   /* 00:59Z */
	{ "Europe/London", 1774747800 * S, "2026-03-29", 150, 1774825200 * S, 23 },  /* 02:30 BST */
	{ "Europe/London", 1774825199 * S, "2026-03-29", 1439, 1774825200 * S, 23 },
	{ "Europe/London", 1774825200 * S, "2026-03-30", 0, 1774911600 * S, 24 },
	{ "Europe/London", 1774742399 * S, "2026-03-28", 1439, 1774742400 * S, 24 },
	/* London, fall back 2026-10-25 01:00Z: a 25-hour day, 01:xx shown twice */
	{ "Europe/London", 1792882800 * S, "2026-10-25", 0, 1792972800 * S, 25 },
	{ "Europe/London", 1792888200 * S, "2026-10-25", 90, 1792972800 * S, 25 },   /* 01:30 BST */
	{ "Europe/London", 1792891800 * S, "2026-10-25", 90, 1792972800 * S, 25 },   /* 01:30 GMT */
	{ "Europe/London", 1792972799 * S, "2026-10-25", 1439, 1792972800 * S, 25 },
	{ "Europe/London", 1792882799 * S, "2026-10-24", 1439, 1792882800 * S, 24 },
	/* Kolkata +05:30 */
	{ "Asia/Kolkata", 1795377600 * S, "2026-11-23", 90, 1795458600 * S, 24 },    /* 20:00Z */
	{ "Asia/Kolkata", 1795372199 * S, "2026-11-22", 1439, 1795372200 * S, 24 },
	/* Kiritimati +14: a day ahead of UTC most of the time */
	{ "Pacific/Kiritimati", 1795338000 * S, "2026-11-22", 1380, 1795341600 * S, 24 },
	{ "Pacific/Kiritimati", 1795341600 * S, "2026-11-23", 0, 1795428000 * S, 24 },
	/* St Johns -03:30 / -02:30 */
	{ "America/St_Johns", 1795312800 * S, "2026-11-21", 1350, 1795318200 * S, 24 },
	{ "America/St_Johns", 1772960400 * S, "2026-03-08", 390, 1773023400 * S, 23 }, /* 09:00Z */
	{ "America/St_Johns", 1793520000 * S, "2026-11-01", 270, 1793590200 * S, 25 }, /* 08:00Z */
	/* Santiago: the clock skips from 00:00 to 01:00 (2026-09-06), falls back at midnight */
	{ "America/Santiago", 1788667200 * S, "2026-09-06", 60, 1788750000 * S, 23 },
	{ "America/Santiago", 1788667199 * S, "2026-09-05", 1439, 1788667200 * S, 24 },
	{ "America/Santiago", 1775271600 * S, "2026-04-04", 0, 1775361600 * S, 25 },
	{ "America/Santiago", 1775358000 * S, "2026-04-04", 1380, 1775361600 * S, 25 }, /* 2nd 23:00 */
};

static const char *const bad[] = {
	"", "../etc/passwd", "Nope/Zone", "/etc/passwd", "Europe/../UTC", "Europe//London",
	"Europe/London\n", "Europe/London ", "Europe", "zone.tab", "right/UTC", "-UTC",
	"Europe/London/x", "utc\x01",
};

/* tzday_t_local - the local date and minute of USEC by the C library, in the current TZ */
static void tzday_t_local(int64_t usec, char date[11], int *minute)
{
	time_t t = (time_t)(usec / S);
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(date, 11, "%Y-%m-%d", &tm);
	*minute = tm.tm_hour * 60 + tm.tm_min;
}

/* tzday_t_sweep - every 20 minutes of 2026 in ZONE agrees with localtime_r under TZ=:ZONE */
static int tzday_t_sweep(const char *zone)
{
	char tz[64], date[11], want[11], prev[11];
	int64_t u, next;
	int minute, wmin, bad_n = 0;

	snprintf(tz, sizeof tz, ":%s", zone);
	setenv("TZ", tz, 1);     /* tzday restores this very TZ after each switch */
	tzset();
	for (u = 1767225600 * S; u < 1798761600 * S && bad_n < 3; u += 1200 * S + 7) {
		tzday_t_local(u, want, &wmin);
		if (tzday_date(zone, u, date) != 0 || strcmp(date, want) != 0 ||
		    tzday_minute_of_day(zone, u, &minute) != 0 || minute != wmin ||
		    tzday_next_midnight(zone, u, &next) != 0 || next <= u || next - u > 25 * H) {
			printf("# %s at %lld: %s/%s %d/%d\n", zone, (long long)u, date, want,
			    minute, wmin);
			bad_n++;
			continue;
		}
		tzday_t_local(next - S, prev, &wmin);
		tzday_t_local(next, date, &wmin);
		if (strcmp(prev, want) != 0 || strcmp(date, want) <= 0) {
			printf("# %s at %lld: next midnight %lld wrong\n", zone, (long long)u,
			    (long long)next);
			bad_n++;
		}
	}
	unsetenv("TZ");
	tzset();
	return bad_n == 0;
}

int main(void)
{
	size_t ncases = sizeof cases / sizeof cases[0], nbad = sizeof bad / sizeof bad[0], k;
	char date[11], d[160];
	int64_t next, start;
	int minute, i, good, before;

	plan((int)(ncases * 2 + nbad) + 16);

	for (k = 0; k < ncases; k++) {
		const struct tzday_t_case *c = &cases[k];

		memset(date, 0, sizeof date);
		minute = -1;
		next = -1;
		snprintf(d, sizeof d, "%s at %lld: %s minute %d next %lld", c->zone,
		    (long long)(c->at / S), c->date, c->minute, (long long)(c->next / S));
		if (!ok(tzday_date(c->zone, c->at, date) == 0 && strcmp(date, c->date) == 0 &&
		    tzday_minute_of_day(c->zone, c->at, &minute) == 0 && minute == c->minute &&
		    tzday_next_midnight(c->zone, c->at, &next) == 0 && next == c->next,
		    "date, minute of day and next midnight"))
			printf("#   %s\n", d);
		if (strcmp(date, c->date) != 0 || minute != c->minute || next != c->next)
			printf("#   got %s minute %d next %lld\n", date, minute,
			    (long long)(next / S));
		/* the day's length: next midnight from the last instant of the previous day */
		snprintf(d, sizeof d, "%s %s lasts %lld hours", c->zone, c->date,
		    (long long)c->hours);
		if (!ok(tzday_next_midnight(c->zone, c->next - 1, &start) == 0 && start == c->next &&
		    tzday_next_midnight(c->zone, c->at, &next) == 0 &&
		    tzday_date(c->zone, c->next - 1, date) == 0 && strcmp(date, c->date) == 0,
		    "day length"))
			printf("#   %s\n", d);
	}
	/* day lengths directly */
	tzday_next_midnight("Europe/London", 1774742400 * S - 1, &start);
	tzday_next_midnight("Europe/London", start, &next);
	is_int((next - start) / H, 23, "Europe/London 2026-03-29 is 23 hours long");
	tzday_next_midnight("Europe/London", 1792882800 * S - 1, &start);
	tzday_next_midnight("Europe/London", start, &next);
	is_int((next - start) / H, 25, "Europe/London 2026-10-25 is 25 hours long");

	for (k = 0; k < nbad; k++) {
		snprintf(d, sizeof d, "invalid zone #%zu refused by every call", k);
		if (!ok(!tzday_valid(bad[k]) && tzday_date(bad[k], 0, date) == -1 &&
		    tzday_next_midnight(bad[k], 0, &next) == -1 &&
		    tzday_minute_of_day(bad[k], 0, &minute) == -1, "invalid zone refused"))
			printf("#   %s\n", d);
	}
	ok(!tzday_valid(NULL), "NULL zone refused");
	ok(tzday_valid("UTC") && tzday_valid("Europe/London") && tzday_valid("Etc/GMT+5") &&
	    tzday_valid("America/Argentina/Buenos_Aires"), "real zones are valid");

	/* TZ is put back as it was, set or unset */
	setenv("TZ", "America/New_York", 1);
	tzset();
	tzday_date("Asia/Kolkata", 1795320000 * S + 86400 * S * 40, date);
	is_str(getenv("TZ"), "America/New_York", "a set TZ is restored");
	unsetenv("TZ");
	tzset();
	tzday_date("Asia/Kolkata", 1795320000 * S + 86400 * S * 50, date);
	ok(getenv("TZ") == NULL, "an unset TZ is left unset");
	tzday_date("Nope/Zone", 0, date);
	ok(getenv("TZ") == NULL, "an invalid zone does not touch TZ");

	/* the cache: the same zone and day switch nothing */
	tzday_date("Europe/London", 1795338000 * S, date);
	before = tzset_calls;
	for (good = 1, i = 0; i < 10000; i++) {
		int64_t u = 1795338000 * S + (int64_t)i * 360000;  /* 09:00 to 09:59:59.64 */

		good &= tzday_date("Europe/London", u, date) == 0 &&
		    strcmp(date, "2026-11-22") == 0 &&
		    tzday_minute_of_day("Europe/London", u, &minute) == 0 &&
		    minute == 540 + i * 36 / 100 / 60 &&
		    tzday_next_midnight("Europe/London", u, &next) == 0 &&
		    next == 1795392000 * S;
	}
	ok(good, "30000 calls on one London day are right");
	is_int(tzset_calls - before, 0, "...and none of them switched TZ");
	before = tzset_calls;
	tzday_date("Europe/London", 1795392000 * S, date);
	ok(tzset_calls - before == 2 && strcmp(date, "2026-11-23") == 0,
	    "the next day: one switch and one restore");
	before = tzset_calls;
	tzday_date("Europe/Paris", 1795392000 * S, date);
	tzday_date("Europe/London", 1795392000 * S, date);
	is_int(tzset_calls - before, 4, "another zone evicts the cached one");

	/* sweeps over all of 2026 against localtime_r in the zone itself */
	ok(tzday_t_sweep("Europe/London"), "Europe/London: every 20 minutes of 2026 agree");
	ok(tzday_t_sweep("America/St_Johns"), "America/St_Johns: every 20 minutes of 2026 agree");
	ok(tzday_t_sweep("America/Santiago"), "America/Santiago: every 20 minutes of 2026 agree");
	ok(tzday_t_sweep("Asia/Kolkata"), "Asia/Kolkata: every 20 minutes of 2026 agree");
	ok(tzday_t_sweep("Pacific/Kiritimati"), "Pacific/Kiritimati: every 20 minutes of 2026 agree");
	return done();
}
