/* rfc3339 - RFC 3339 timestamps to and from microseconds since the epoch (UTC)
 *
 * Parsing is strict RFC 3339 §5.6 "date-time": "YYYY-MM-DDThh:mm:ss[.f{1,9}](Z|±hh:mm)".
 * As §5.6 allows, 't' and 'z' are accepted for 'T' and 'Z'; a space separator is not.
 * "-00:00" (offset unknown, §4.3) is taken as UTC. Fractions beyond microseconds are
 * truncated. Leap seconds (second 60) are refused: herald's clocks never show them.
 * Only years 1970..9999 are accepted, and the instant itself must not fall before the
 * epoch (1970-01-01T00:30:00+01:00 is refused). Arithmetic is days-from-civil on the
 * proleptic Gregorian calendar, so the result never depends on TZ.
 */
#include "config.h"

#include <time.h>

#include "rfc3339.h"

#define RFC3339_USEC 1000000LL
#define RFC3339_DAY_USEC (86400LL * RFC3339_USEC)
/* 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z, the range rfc3339_format can print */
#define RFC3339_MIN_USEC (-62167219200LL * RFC3339_USEC)
#define RFC3339_END_USEC (253402300800LL * RFC3339_USEC)

/* rfc3339_digits - read exactly N decimal digits at S into *V; -1 if any is not a digit */
static int rfc3339_digits(const char *s, int n, int *v)
{
	int i, r = 0;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		r = r * 10 + (s[i] - '0');
	}
	*v = r;
	return 0;
}

/* rfc3339_leap - true when Y is a Gregorian leap year */
static int rfc3339_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* rfc3339_mdays - number of days in month M (1..12) of year Y */
static int rfc3339_mdays(int y, int m)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && rfc3339_leap(y) ? 29 : days[m - 1];
}

/* rfc3339_days_from_civil - days since 1970-01-01 of Y-M-D (H. Hinnant's algorithm) */
static int64_t rfc3339_days_from_civil(int y, int m, int d)
{
	int64_t yy = m <= 2 ? y - 1 : y;
	int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
	int64_t yoe = yy - era * 400;                                  /* [0, 399] */
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;            /* [0, 146096] */

	return era * 146097 + doe - 719468;
}

/* rfc3339_civil_from_days - the inverse of rfc3339_days_from_civil */
static void rfc3339_civil_from_days(int64_t z, int *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

/* rfc3339_parse - strict RFC 3339 date-time to microseconds since the epoch; -1 on error */
int rfc3339_parse(const char *s, int64_t *usec)
{
	int y, mo, d, h, mi, sec, oh, om, n, digit;
	int64_t frac = 0, t;
	const char *p;

	if (s == NULL || usec == NULL)
		return -1;
	if (rfc3339_digits(s, 4, &y) < 0 || s[4] != '-' ||
	    rfc3339_digits(s + 5, 2, &mo) < 0 || s[7] != '-' ||
	    rfc3339_digits(s + 8, 2, &d) < 0 || (s[10] != 'T' && s[10] != 't') ||
	    rfc3339_digits(s + 11, 2, &h) < 0 || s[13] != ':' ||
	    rfc3339_digits(s + 14, 2, &mi) < 0 || s[16] != ':' ||
	    rfc3339_digits(s + 17, 2, &sec) < 0)
		return -1;   /* the && chain stops at the first NUL: no read past the end */
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > rfc3339_mdays(y, mo) ||
	    h > 23 || mi > 59 || sec > 59)
		return -1;
	p = s + 19;
	if (*p == '.') {
		for (n = 0, p++; *p >= '0' && *p <= '9'; n++, p++) {
			if (n >= 9)
				return -1;
			digit = *p - '0';
			if (n < 6)
				frac = frac * 10 + digit;
		}
		if (n == 0)
			return -1;
		for (; n < 6; n++)
			frac *= 10;
	}
	t = rfc3339_days_from_civil(y, mo, d) * RFC3339_DAY_USEC +
	    ((int64_t)h * 3600 + mi * 60 + sec) * RFC3339_USEC + frac;
	if ((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0') {
		*usec = t;   /* 1970 <= y <= 9999, so t >= 0 */
		return 0;
	}
	if ((p[0] != '+' && p[0] != '-') || rfc3339_digits(p + 1, 2, &oh) < 0 || p[3] != ':' ||
	    rfc3339_digits(p + 4, 2, &om) < 0 || p[6] != '\0' || oh > 23 || om > 59)
		return -1;
	/* local = UTC + offset, so UTC = local - offset */
	t -= (p[0] == '+' ? 1 : -1) * ((int64_t)oh * 3600 + om * 60) * RFC3339_USEC;
	if (t < 0)
		return -1;
	*usec = t;
	return 0;
}

/* rfc3339_put - write V as exactly N decimal digits ending just before P; returns P - N */
static char *rfc3339_put(char *p, int n, int64_t v)
{
	while (n-- > 0) {
		*--p = (char)('0' + v % 10);
		v /= 10;
	}
	return p;
}

/* rfc3339_format - USEC as "YYYY-MM-DDThh:mm:ss.ffffffZ", clamped to years 0000..9999 */
char *rfc3339_format(int64_t usec, char out[RFC3339_LEN + 1])
{
	int64_t days, rem, sod;
	int y, m, d;

	if (usec < RFC3339_MIN_USEC)
		usec = RFC3339_MIN_USEC;
	if (usec >= RFC3339_END_USEC)
		usec = RFC3339_END_USEC - 1;
	days = usec / RFC3339_DAY_USEC;
	rem = usec % RFC3339_DAY_USEC;
	if (rem < 0) {           /* floor division for instants before the epoch */
		rem += RFC3339_DAY_USEC;
		days--;
	}
	rfc3339_civil_from_days(days, &y, &m, &d);
	sod = rem / RFC3339_USEC;
	/* "YYYY-MM-DDThh:mm:ss.ffffffZ": fields written by hand, every one in range */
	rfc3339_put(out + 4, 4, y);
	out[4] = '-';
	rfc3339_put(out + 7, 2, m);
	out[7] = '-';
	rfc3339_put(out + 10, 2, d);
	out[10] = 'T';
	rfc3339_put(out + 13, 2, sod / 3600);
	out[13] = ':';
	rfc3339_put(out + 16, 2, sod / 60 % 60);
	out[16] = ':';
	rfc3339_put(out + 19, 2, sod % 60);
	out[19] = '.';
	rfc3339_put(out + 26, 6, rem % RFC3339_USEC);
	out[26] = 'Z';
	out[27] = '\0';
	return out;
}

/* rfc3339_now - CLOCK_REALTIME in microseconds since the epoch */
int64_t rfc3339_now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return 0;   /* cannot happen with CLOCK_REALTIME and a valid pointer */
	return (int64_t)ts.tv_sec * RFC3339_USEC + ts.tv_nsec / 1000;
}
