/* hostpause - what the workers of one host share about a provider (SPEC §5): the pause a 429
 * with Retry-After sets for the provider (for webhooks: the destination host), and the
 * provider's rate limit (channels.CHANNEL.rate messages per second). The table lives in memory
 * shared by the master's children (mapped before they are forked); a worker run alone has its
 * own. */
#ifndef HERALD_HOSTPAUSE_H
#define HERALD_HOSTPAUSE_H

#include <stddef.h>
#include <stdint.h>

/* hostpause_init - map the table (shared with the processes forked after it); 0 or -1. A second
 * call keeps the first table. */
int hostpause_init(void);

/* hostpause_key - the pause key of a delivery through PROVIDER to ADDRESS into BUF: the
 * provider name, plus the URL's host[:port] when ADDRESS is an http(s) URL */
const char *hostpause_key(const char *provider, const char *address, char *buf, size_t len);

/* hostpause_until - until when KEY is paused (µs since the epoch), or 0 when it is not at NOW */
int64_t hostpause_until(const char *key, int64_t now);

/* hostpause_set - pause KEY until UNTIL (a later pause already set stays); best effort: a full
 * table drops the pause (the 429 itself is still retried through the tiers) */
void hostpause_set(const char *key, int64_t until);

/* hostpause_rate - take KEY's next slot of RATE deliveries per second, shared by every process
 * of the table: 0 when this delivery may go now, else how many µs to wait before asking again
 * (0 as well when RATE is 0 or the table is full) */
int64_t hostpause_rate(const char *key, int rate, int64_t now);

#endif
