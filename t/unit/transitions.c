/* t/unit/transitions - the §4 status transition table of workers/record.c, cell by cell */
#include "config.h"

#include <stddef.h>
#include <string.h>

#include "record.h"
#include "tap.h"

static const char *const statuses[] = {
	"queued", "deferred", "ready", "retry", "done", "failed", "opt_out", "paused",
	"rate_limited", "invalid_user", "no_address", "suppressed", "duplicate", "expired",
	"cancelled"
};
#define NSTATUS (sizeof statuses / sizeof statuses[0])

/* want - the expected result of FROM → TO, written out from SPEC §4 */
static enum record_result want(const char *from, const char *to)
{
	int ffinal = record_final(from), tfinal = record_final(to);

	if (ffinal)
		return RECORD_REFUSED;          /* final changes only through parked replay */
	if (strcmp(from, to) == 0)
		return RECORD_SAME;
	if (strcmp(from, "queued") == 0)        /* queued → ready | deferred | final */
		return strcmp(to, "ready") == 0 || strcmp(to, "deferred") == 0 || tfinal ?
		    RECORD_WRITTEN : RECORD_REFUSED;
	if (strcmp(from, "deferred") == 0)      /* deferred → queued (cancel, expiry end it) */
		return strcmp(to, "queued") == 0 || strcmp(to, "cancelled") == 0 ||
		    strcmp(to, "expired") == 0 ? RECORD_WRITTEN : RECORD_REFUSED;
	if (strcmp(from, "ready") == 0)         /* ready → retry | final */
		return strcmp(to, "retry") == 0 || tfinal ? RECORD_WRITTEN : RECORD_REFUSED;
	/* retry → ready | final */
	return strcmp(to, "ready") == 0 || tfinal ? RECORD_WRITTEN : RECORD_REFUSED;
}

int main(void)
{
	size_t i, j, finals = 0;

	plan((int)(NSTATUS * NSTATUS + NSTATUS + 3));
	for (i = 0; i < NSTATUS; i++) {
		finals += (size_t)record_final(statuses[i]);
		is_int(record_allowed("", statuses[i]), RECORD_WRITTEN, "none → %s: written",
		    statuses[i]);
	}
	is_int((int)finals, 11, "11 final statuses (§7)");
	is_int(record_allowed(NULL, "done"), RECORD_WRITTEN, "NULL → done: written");
	is_int(record_final("queued") + record_final("deferred") + record_final("ready") +
	    record_final("retry"), 0, "queued, deferred, ready, retry are not final");
	for (i = 0; i < NSTATUS; i++)
		for (j = 0; j < NSTATUS; j++)
			is_int(record_allowed(statuses[i], statuses[j]), want(statuses[i], statuses[j]),
			    "%s → %s", statuses[i], statuses[j]);
	return done();
}
