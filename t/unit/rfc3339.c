/* t/unit/rfc3339 - rfc3339_parse good/bad tables, rfc3339_format, round trips */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "rfc3339.h"
#include "tap.h"

struct rfc3339_t_good {
	const char *s;
	int64_t usec;
};

static const struct rfc3339_t_good good[] = {
	{ "1970-01-01T00:00:00Z", 0 },
	{ "1970-01-01T00:00:00.000001Z", 1 },
	{ "2026-11-22T09:00:00Z", 1795338000000000LL },
	{ "2026-11-22T09:00:00.123456Z", 1795338000123456LL },
	{ "2026-11-22T09:00:00.1Z", 1795338000100000LL },
	{ "2026-11-22T09:00:00.12Z", 1795338000120000LL },
	{ "2026-11-22T09:00:00.123456789Z", 1795338000123456LL },   /* truncated, not rounded */
	{ "2026-11-22T09:00:00.999999999Z", 1795338000999999LL },
	{ "2026-11-22t09:00:00z", 1795338000000000LL },             /* RFC 3339 §5.6 NOTE */
	{ "2026-11-22T10:00:00+01:00", 1795338000000000LL },
	{ "2026-11-22T14:30:00+05:30", 1795338000000000LL },
	{ "2026-11-22T05:30:00-03:30", 1795338000000000LL },
	{ "2026-11-22T23:00:00+14:00", 1795338000000000LL },
	{ "2026-11-21T21:00:00-12:00", 1795338000000000LL },
	{ "2026-11-22T09:00:00-00:00", 1795338000000000LL },        /* unknown offset = UTC */
	{ "2026-11-22T09:00:00+00:00", 1795338000000000LL },
	{ "2000-02-29T00:00:00Z", 951782400000000LL },              /* 400-year leap */
	{ "2024-02-29T12:00:00Z", 1709208000000000LL },
	{ "2023-12-31T23:59:59.999999Z", 1704067199999999LL },
	{ "2024-01-01T00:00:00Z", 1704067200000000LL },
	{ "2038-01-19T03:14:08Z", 2147483648000000LL },             /* past 32-bit time_t */
	{ "9999-12-31T23:59:59.999999Z", 253402300799999999LL },
	{ "1970-01-01T01:00:00+01:00", 0 },
};

static const char *bad[] = {
	"",
	"2026",
	"2026-11-22",
	"2026-11-22T09:00",
	"2026-11-22T09:00:00",                /* missing zone */
	"2026-11-22T09:00:00.5",              /* missing zone after fraction */
	"2026-11-22 09:00:00Z",               /* space separator */
	"2026-11-22X09:00:00Z",
	"2026-11-22T09:00:00ZZ",              /* trailing garbage */
	"2026-11-22T09:00:00Z ",
	" 2026-11-22T09:00:00Z",
	"2026-11-22T09:00:00+01:00x",
	"2026-11-22T09:00:00.Z",              /* empty fraction */
	"2026-11-22T09:00:00.1234567890Z",    /* 10 fraction digits */
	"2026-11-22T09:00:00,5Z",             /* comma fraction */
	"2026-02-30T00:00:00Z",               /* Feb 30 */
	"2023-02-29T00:00:00Z",               /* Feb 29, non-leap */
	"1900-02-29T00:00:00Z",               /* Feb 29, century non-leap (and < 1970) */
	"2100-02-29T00:00:00Z",               /* Feb 29, century non-leap */
	"2026-04-31T00:00:00Z",
	"2026-13-01T00:00:00Z",
	"2026-00-01T00:00:00Z",
	"2026-01-00T00:00:00Z",
	"2026-01-32T00:00:00Z",
	"2026-11-22T24:00:00Z",
	"2026-11-22T25:00:00Z",
	"2026-11-22T09:60:00Z",
	"2026-11-22T09:00:60Z",               /* leap second refused */
	"2016-12-31T23:59:60Z",
	"2026-11-22T09:00:00+1:00",
	"2026-11-22T09:00:00+01",
	"2026-11-22T09:00:00+0100",
	"2026-11-22T09:00:00+24:00",
	"2026-11-22T09:00:00+01:60",
	"2026-11-22T09:00:00 +01:00",
	"1969-12-31T23:59:59Z",               /* before 1970 */
	"1970-01-01T00:30:00+01:00",          /* written 1970 but before the epoch */
	"10000-01-01T00:00:00Z",
	"+2026-11-22T09:00:00Z",
	"2026-1-22T09:00:00Z",
	"2026-11-22T9:00:00Z",
	"２０26-11-22T09:00:00Z",
	"2026-11-22T09:00:00\nZ",
};

int main(void)
{
	size_t ngood = sizeof good / sizeof good[0], nbad = sizeof bad / sizeof bad[0];
	char out[RFC3339_LEN + 1], d[128];
	int64_t u, now, t0;
	size_t k;
	int rt = 1;
	struct timespec ts;

	plan((int)(ngood + nbad) + 12);

	for (k = 0; k < ngood; k++) {
		u = -1;
		snprintf(d, sizeof d, "parse %s", good[k].s);
		if (!ok(rfc3339_parse(good[k].s, &u) == 0 && u == good[k].usec, "valid timestamp"))
			printf("#   %s\n", d);
		if (u != good[k].usec)
			printf("#   got %lld want %lld\n", (long long)u, (long long)good[k].usec);
	}
	for (k = 0; k < nbad; k++) {
		u = 42;
		snprintf(d, sizeof d, "refuse \"%s\"", bad[k]);
		for (char *c = d; *c; c++)      /* keep the TAP line on one line */
			if ((unsigned char)*c < 0x20)
				*c = '?';
		if (!ok(rfc3339_parse(bad[k], &u) == -1 && u == 42, "invalid timestamp refused"))
			printf("#   %s\n", d);
	}
	ok(rfc3339_parse(NULL, &u) == -1, "refuse NULL");

	is_str(rfc3339_format(0, out), "1970-01-01T00:00:00.000000Z", "format epoch");
	is_str(rfc3339_format(1795338000123456LL, out), "2026-11-22T09:00:00.123456Z",
	    "format with micros");
	is_str(rfc3339_format(951782400000001LL, out), "2000-02-29T00:00:00.000001Z",
	    "format leap day");
	is_str(rfc3339_format(-1, out), "1969-12-31T23:59:59.999999Z", "format before the epoch");
	is_str(rfc3339_format(INT64_MAX, out), "9999-12-31T23:59:59.999999Z",
	    "format clamps far future");
	is_str(rfc3339_format(INT64_MIN, out), "0000-01-01T00:00:00.000000Z",
	    "format clamps far past");
	is_int((long long)sizeof out - 1, RFC3339_LEN, "RFC3339_LEN fits the format");

	/* format -> parse over a spread of instants, including every day boundary of 4 years */
	for (u = 0; u < 253402300800000000LL; u += 7777777777777LL + 123457) {
		int64_t back = -1;

		if (rfc3339_parse(rfc3339_format(u, out), &back) != 0 || back != u) {
			printf("# round trip failed at %lld: %s\n", (long long)u, out);
			rt = 0;
			break;
		}
	}
	ok(rt, "format -> parse round trip over 1970..9999");
	rt = 1;
	for (u = 1704067200000000LL - 1; u < 1704067200000000LL + 4 * 366 * 86400000000LL;
	    u += 86400000000LL) {
		int64_t back = -1;

		if (rfc3339_parse(rfc3339_format(u, out), &back) != 0 || back != u ||
		    rfc3339_parse(rfc3339_format(u + 1, out), &back) != 0 || back != u + 1) {
			printf("# round trip failed at %lld: %s\n", (long long)u, out);
			rt = 0;
			break;
		}
	}
	ok(rt, "round trip across each midnight of 2024-2027");

	/* compare days-from-civil with the C library's UTC conversion */
	rt = 1;
	for (u = 0; u < 253402300800000000LL; u += 86400000000LL * 997 + 3600000001LL) {
		time_t secs = (time_t)(u / 1000000);
		struct tm tm;
		char want[96];

		gmtime_r(&secs, &tm);
		snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		    tm.tm_sec, (int)(u % 1000000));
		if (strcmp(rfc3339_format(u, out), want) != 0) {
			printf("# got %s want %s\n", out, want);
			rt = 0;
			break;
		}
	}
	ok(rt, "format agrees with gmtime_r");

	clock_gettime(CLOCK_REALTIME, &ts);
	t0 = (int64_t)ts.tv_sec * 1000000;
	now = rfc3339_now();
	ok(now >= t0 && now - t0 < 5000000, "rfc3339_now is close to CLOCK_REALTIME");
	return done();
}
