/* tzday - calendar days and local times in a named IANA time zone (TZ is switched and restored) */
#ifndef HERALD_TZDAY_H
#define HERALD_TZDAY_H

#include <stdbool.h>
#include <stdint.h>

/* tzday_valid - true when ZONE names a time zone this machine knows ("UTC", "Europe/London") */
bool tzday_valid(const char *zone);
/* tzday_date - local calendar day of USEC in ZONE as "YYYY-MM-DD" into OUT; -1 if ZONE unknown */
int tzday_date(const char *zone, int64_t usec, char out[11]);
/* tzday_next_midnight - first instant (usec, UTC) of the local day after the one holding USEC */
int tzday_next_midnight(const char *zone, int64_t usec, int64_t *next);
/* tzday_minute_of_day - local minutes since midnight (0..1439) of USEC in ZONE */
int tzday_minute_of_day(const char *zone, int64_t usec, int *minute);

#endif
