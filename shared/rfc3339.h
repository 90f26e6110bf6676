/* rfc3339 - RFC 3339 timestamps to and from microseconds since the epoch (UTC) */
#ifndef HERALD_RFC3339_H
#define HERALD_RFC3339_H

#include <stddef.h>
#include <stdint.h>

#define RFC3339_LEN 27       /* "2026-11-22T09:00:00.123456Z" without the NUL */

/* rfc3339_parse - strict: date 'T' time, optional fraction (1-9 digits), 'Z' or ±hh:mm;
 * checks ranges (days in month, leap years, leap second 60 refused); -1 on any error */
int rfc3339_parse(const char *s, int64_t *usec);
/* rfc3339_format - USEC as "YYYY-MM-DDThh:mm:ss.ffffffZ"; returns OUT */
char *rfc3339_format(int64_t usec, char out[RFC3339_LEN + 1]);
/* rfc3339_now - the current time in microseconds since the epoch */
int64_t rfc3339_now(void);

#endif
