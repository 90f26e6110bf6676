/* hostpause - the shared 429 pauses (see hostpause.h) */
#include "config.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

#include "hostpause.h"

#define HOSTPAUSE_SLOTS 1024     /* a power of two */
#define HOSTPAUSE_PROBES 16

struct hostpause_slot {
	_Atomic uint64_t hash;           /* 0: free */
	_Atomic int64_t until;           /* µs since the epoch */
};

static struct hostpause_slot *hostpause_table;

/* hostpause_init - one anonymous shared mapping */
int hostpause_init(void)
{
	void *p;

	if (hostpause_table != NULL)
		return 0;
	p = mmap(NULL, HOSTPAUSE_SLOTS * sizeof *hostpause_table, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	hostpause_table = p;             /* zero-filled: every slot free */
	return 0;
}

/* hostpause_hash - FNV-1a of KEY, never 0 */
static uint64_t hostpause_hash(const char *key)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 1099511628211ULL;
	return h != 0 ? h : 1;
}

/* hostpause_key - "provider" or "provider host[:port]" */
const char *hostpause_key(const char *provider, const char *address, char *buf, size_t len)
{
	const char *h = NULL;
	size_t n;

	if (address != NULL && strncasecmp(address, "http://", 7) == 0)
		h = address + 7;
	else if (address != NULL && strncasecmp(address, "https://", 8) == 0)
		h = address + 8;
	if (h == NULL) {
		snprintf(buf, len, "%s", provider);
		return buf;
	}
	n = strcspn(h, "/?#");
	snprintf(buf, len, "%s %.*s", provider, (int)n, h);
	return buf;
}

/* hostpause_slot - KEY's slot: found, or claimed when CLAIM; NULL when absent or the probe
 * sequence is full */
static struct hostpause_slot *hostpause_slot(const char *key, bool claim)
{
	uint64_t h = hostpause_hash(key);
	size_t i;

	if (hostpause_table == NULL)
		return NULL;
	for (i = 0; i < HOSTPAUSE_PROBES; i++) {
		struct hostpause_slot *s = &hostpause_table[(h + i) & (HOSTPAUSE_SLOTS - 1)];
		uint64_t sh = atomic_load(&s->hash);

		if (sh == h)
			return s;
		if (sh == 0) {
			if (!claim)
				return NULL;
			if (atomic_compare_exchange_strong(&s->hash, &sh, h) || sh == h)
				return s;
		}
	}
	return NULL;
}

/* hostpause_until - the pause's end, if still ahead */
int64_t hostpause_until(const char *key, int64_t now)
{
	struct hostpause_slot *s = hostpause_slot(key, false);
	int64_t u = s != NULL ? atomic_load(&s->until) : 0;

	return u > now ? u : 0;
}

/* hostpause_set - raise the pause's end to UNTIL */
void hostpause_set(const char *key, int64_t until)
{
	struct hostpause_slot *s = hostpause_slot(key, true);
	int64_t u;

	if (s == NULL)
		return;
	u = atomic_load(&s->until);
	while (u < until && !atomic_compare_exchange_weak(&s->until, &u, until))
		;
}

/* hostpause_rate - GCRA without burst: the slot holds when the next delivery may go */
int64_t hostpause_rate(const char *key, int rate, int64_t now)
{
	struct hostpause_slot *s;
	int64_t next, step;

	if (rate <= 0 || (s = hostpause_slot(key, true)) == NULL)
		return 0;
	step = 1000000 / rate;
	next = atomic_load(&s->until);
	do {
		if (next > now)
			return next - now;
	} while (!atomic_compare_exchange_weak(&s->until, &next, now + step));
	return 0;
}
