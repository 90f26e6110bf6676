/* tzday - calendar days and local times in a named IANA time zone (TZ is switched and restored)
 *
 * The C library converts only in "the" local zone, so each conversion sets TZ, calls tzset(),
 * uses localtime_r/mktime and puts TZ back (unset if it was unset). tzset() re-reads the zone
 * file on every switch, so the bounds [start, end) of the most recently computed local day are
 * cached with its zone: further calls for that zone and day switch nothing. Day bounds are
 * computed, never start + 86400: DST days last 23 or 25 hours, and where a zone skips
 * midnight the day starts at the first instant that shows that date. Zone names are checked
 * before they reach TZ: [A-Za-z0-9_+/-] only, no "..", no "right/" (leap-second clocks),
 * and a TZif file under TZDAY_DIR; "UTC" is always known. Not thread-safe (setenv/tzset).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tzday.h"

#define TZDAY_DIR "/usr/share/zoneinfo"
#define TZDAY_NAME_MAX 128
#define TZDAY_USEC 1000000LL

/* the most recently computed local day */
static struct {
	char zone[TZDAY_NAME_MAX];   /* "" when empty */
	int64_t start, end;          /* [start, end) in seconds since the epoch */
	int uniform;                 /* a 24-hour day under one UTC offset */
	char date[11];
} tzday_cache;

/* tzday_name_ok - ZONE is a safe zone name: allowed characters, no "..", not absolute */
static bool tzday_name_ok(const char *zone)
{
	size_t i, n;

	if (zone == NULL)
		return false;
	n = strlen(zone);
	if (n == 0 || n >= TZDAY_NAME_MAX || zone[0] == '/' || zone[0] == '-' ||
	    strstr(zone, "..") != NULL || strstr(zone, "//") != NULL ||
	    strncmp(zone, "right/", 6) == 0)
		return false;
	for (i = 0; i < n; i++) {
		char c = zone[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '+' || c == '-' || c == '/'))
			return false;
	}
	return true;
}

/* tzday_valid - ZONE is "UTC" or names a TZif file under TZDAY_DIR */
bool tzday_valid(const char *zone)
{
	char path[sizeof TZDAY_DIR + TZDAY_NAME_MAX + 1], magic[4];
	struct stat st;
	bool r = false;
	int fd;

	if (!tzday_name_ok(zone))
		return false;
	if (strcmp(zone, "UTC") == 0 || strcmp(zone, tzday_cache.zone) == 0)
		return true;
	snprintf(path, sizeof path, "%s/%s", TZDAY_DIR, zone);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return false;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    read(fd, magic, sizeof magic) == (ssize_t)sizeof magic &&
	    memcmp(magic, "TZif", 4) == 0)
		r = true;
	close(fd);
	return r;
}

/* tzday_switch - set TZ to ZONE and tzset(); the old TZ (malloc'd, NULL if unset) in *SAVED */
static int tzday_switch(const char *zone, char **saved)
{
	char tz[TZDAY_NAME_MAX + 2];
	const char *old = getenv("TZ");

	*saved = NULL;
	if (old != NULL && (*saved = strdup(old)) == NULL)
		return -1;
	/* "UTC0" is a POSIX TZ string: UTC needs no file; ":Name" names a file only */
	snprintf(tz, sizeof tz, "%s%s", strcmp(zone, "UTC") == 0 ? "" : ":",
	    strcmp(zone, "UTC") == 0 ? "UTC0" : zone);
	if (setenv("TZ", tz, 1) != 0) {
		free(*saved);
		*saved = NULL;
		return -1;
	}
	tzset();
	return 0;
}

/* tzday_restore - put back the TZ that tzday_switch saved (or unset it) and tzset() */
static void tzday_restore(char *saved)
{
	if (saved != NULL)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved);
}

/* tzday_key - a local date as one comparable number YYYYMMDD */
static long tzday_key(const struct tm *tm)
{
	return (tm->tm_year + 1900L) * 10000 + (tm->tm_mon + 1) * 100 + tm->tm_mday;
}

/* tzday_key_at - the local date of T as YYYYMMDD (TZ already switched) */
static long tzday_key_at(time_t t)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL)
		return 0;
	return tzday_key(&tm);
}

/* tzday_day_start - first instant of local day Y-M-D (MDAY may overflow: it is normalized) */
static int tzday_day_start(int year, int mon, int mday, time_t *start)
{
	struct tm tm;
	time_t g, lo, hi, mid;
	long key;

	memset(&tm, 0, sizeof tm);
	tm.tm_year = year;
	tm.tm_mon = mon;
	tm.tm_mday = mday;
	tm.tm_hour = 12;          /* noon exists on every day: normalize the date first */
	tm.tm_isdst = -1;
	errno = 0;
	if (mktime(&tm) == (time_t)-1 && errno != 0)
		return -1;
	key = tzday_key(&tm);
	tm.tm_hour = 0;
	tm.tm_min = 0;
	tm.tm_sec = 0;
	tm.tm_isdst = -1;
	g = mktime(&tm);
	if (tzday_key_at(g) == key && tzday_key_at(g - 1) < key) {
		*start = g;
		return 0;
	}
	/* midnight skipped or repeated: find the first second showing KEY */
	lo = g - 6 * 3600;        /* shows an earlier date */
	hi = g + 6 * 3600;        /* shows KEY */
	if (tzday_key_at(lo) >= key || tzday_key_at(hi) < key)
		return -1;
	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		if (tzday_key_at(mid) >= key)
			hi = mid;
		else
			lo = mid;
	}
	*start = hi;
	return 0;
}

/* tzday_fill - compute the local day of T in ZONE into the cache (switches TZ) */
static int tzday_fill(const char *zone, time_t t)
{
	struct tm tm, a, b;
	time_t start, end, last;
	char *saved;
	int r = -1;

	if (tzday_switch(zone, &saved) < 0)
		return -1;
	if (localtime_r(&t, &tm) == NULL ||
	    tzday_day_start(tm.tm_year, tm.tm_mon, tm.tm_mday, &start) < 0 ||
	    tzday_day_start(tm.tm_year, tm.tm_mon, tm.tm_mday + 1, &end) < 0 ||
	    start > t || t >= end)
		goto out;
	last = end - 1;
	if (localtime_r(&start, &a) == NULL || localtime_r(&last, &b) == NULL)
		goto out;
	if (strftime(tzday_cache.date, sizeof tzday_cache.date, "%Y-%m-%d", &tm) != 10)
		goto out;    /* a year outside 1000..9999 */
	tzday_cache.start = start;
	tzday_cache.end = end;
	tzday_cache.uniform = a.tm_gmtoff == b.tm_gmtoff && end - start == 86400;
	snprintf(tzday_cache.zone, sizeof tzday_cache.zone, "%s", zone);
	r = 0;
out:
	tzday_restore(saved);
	return r;
}

/* tzday_day - make the cache hold the local day of USEC in ZONE; its second in *T */
static int tzday_day(const char *zone, int64_t usec, time_t *t)
{
	int64_t s = usec / TZDAY_USEC - (usec % TZDAY_USEC < 0);   /* floor */

	*t = (time_t)s;
	if (tzday_cache.zone[0] != '\0' && strcmp(zone, tzday_cache.zone) == 0 &&
	    tzday_cache.start <= s && s < tzday_cache.end)
		return 0;
	if (!tzday_valid(zone))
		return -1;
	tzday_cache.zone[0] = '\0';
	return tzday_fill(zone, *t);
}

/* tzday_date - local calendar day of USEC in ZONE as "YYYY-MM-DD" */
int tzday_date(const char *zone, int64_t usec, char out[11])
{
	time_t t;

	if (tzday_day(zone, usec, &t) < 0)
		return -1;
	memcpy(out, tzday_cache.date, sizeof tzday_cache.date);
	return 0;
}

/* tzday_next_midnight - first instant (usec) of the local day after the one holding USEC */
int tzday_next_midnight(const char *zone, int64_t usec, int64_t *next)
{
	time_t t;

	if (tzday_day(zone, usec, &t) < 0)
		return -1;
	*next = tzday_cache.end * TZDAY_USEC;
	return 0;
}

/* tzday_minute_of_day - local minutes since midnight (0..1439) of USEC in ZONE */
int tzday_minute_of_day(const char *zone, int64_t usec, int *minute)
{
	struct tm tm;
	char *saved;
	time_t t;
	int r = 0;

	if (tzday_day(zone, usec, &t) < 0)
		return -1;
	if (tzday_cache.uniform) {   /* one offset all day: the wall clock runs from 00:00 */
		*minute = (int)((t - tzday_cache.start) / 60);
		return 0;
	}
	/* a DST day: ask the C library (wall clock, not minutes elapsed since midnight) */
	if (tzday_switch(zone, &saved) < 0)
		return -1;
	if (localtime_r(&t, &tm) == NULL)
		r = -1;
	else
		*minute = tm.tm_hour * 60 + tm.tm_min;
	tzday_restore(saved);
	return r;
}
