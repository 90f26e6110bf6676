/* purge - "heraldctl purge [--older-than DURATION|DATE] [--batch N] [--dry-run]" (SPEC §7)
 *
 * What goes, and why it is safe:
 * - notifications in a final status (§7) created and last changed before the cut-off, with
 *   their audit rows, device outcomes and any deferred message left over (the tables that
 *   reference them). A non-final one (queued, deferred, ready, retry) is never touched.
 * - idempotency claims already expired (admit.c treats an expired claim as no claim).
 * - daily counters and counter reservations of days two days or more before the cut-off's UTC
 *   date: no time zone is still in such a day, and no retry tier is that long.
 * - cancellations made before the cut-off whose transaction or batch has no notification left
 *   in a non-final status (a later message of it could only be a replay of a final one).
 * event_outbox is not purged: the outbox workers delete each row once it is published, so what
 * is there is still to be published.
 *
 * Without long locks: notifications go in batches of N ids (default 1000), each batch one short
 * READ COMMITTED transaction: the ids are picked by primary key after the last batch without
 * locking, then locked again with the whole condition re-checked (a row replayed meanwhile
 * stays), their children deleted, then they. READ COMMITTED takes no gap locks, so the ledger and
 * workers inserting and updating other rows are not blocked; a worker only ever waits for one
 * batch. The other tables go N rows per statement (ORDER BY their date index, LIMIT N), each
 * statement its own transaction. --dry-run runs the same walk with counts instead of deletes.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "conf.h"
#include "ctl.h"
#include "db.h"
#include "rfc3339.h"

#define PURGE_BATCH 1000         /* ids per transaction, rows per statement */
#define PURGE_BATCH_MAX 100000
#define PURGE_TRIES 5            /* a batch after a deadlock or a lost connection */
#define PURGE_DAY_USEC (86400LL * 1000000)
#define PURGE_COUNTER_DAYS 2     /* counters: days this many days before the cut-off's date */

/* the §7 final statuses, and the others */
#define PURGE_FINAL "('done', 'failed', 'opt_out', 'paused', 'rate_limited', 'invalid_user'," \
	" 'no_address', 'suppressed', 'duplicate', 'expired', 'cancelled')"
#define PURGE_OPEN "('queued', 'deferred', 'ready', 'retry')"
/* a notification of the id range ? .. ? that may go: its arguments lo, hi, cut, cut */
#define PURGE_GONE "n.id BETWEEN ? AND ? AND n.created_at < ? AND n.updated_at < ?" \
	" AND n.status IN " PURGE_FINAL

enum {
	P_IDS, P_LOCK, P_AUDIT, P_OUTCOMES, P_DEFERRED, P_NOTES,
	P_N_AUDIT, P_N_OUTCOMES, P_N_DEFERRED,
	P_CLAIMS, P_COUNTERS, P_RESERV, P_CANCEL_TX, P_CANCEL_BATCH,
	P_N_CLAIMS, P_N_COUNTERS, P_N_RESERV, P_N_CANCEL,
	P__N
};

static const struct db_stmt purge_stmts[] = {
	/* the next batch: after id ?, before cut-off ? (created) and ? (changed), at most ? */
	[P_IDS] = { "purge_ids",
		"SELECT n.id FROM notifications n WHERE n.id > ? AND n.created_at < ?"
		" AND n.updated_at < ? AND n.status IN " PURGE_FINAL " ORDER BY n.id LIMIT ?", true },
	[P_LOCK] = { "purge_lock",
		"SELECT n.id FROM notifications n WHERE " PURGE_GONE " ORDER BY n.id FOR UPDATE" },
	[P_AUDIT] = { "purge_audit",
		"DELETE a FROM notifications n JOIN notification_audit a ON a.notification_id = n.id"
		" WHERE " PURGE_GONE },
	[P_OUTCOMES] = { "purge_outcomes",
		"DELETE o FROM notifications n JOIN device_outcomes o ON o.notification_id = n.id"
		" WHERE " PURGE_GONE },
	[P_DEFERRED] = { "purge_deferred",
		"DELETE d FROM notifications n JOIN deferred_messages d ON d.notification_id = n.id"
		" WHERE " PURGE_GONE },
	[P_NOTES] = { "purge_notes",
		"DELETE n FROM notifications n WHERE " PURGE_GONE },
	[P_N_AUDIT] = { "purge_n_audit",
		"SELECT COUNT(*) FROM notifications n JOIN notification_audit a"
		" ON a.notification_id = n.id WHERE " PURGE_GONE, true },
	[P_N_OUTCOMES] = { "purge_n_outcomes",
		"SELECT COUNT(*) FROM notifications n JOIN device_outcomes o"
		" ON o.notification_id = n.id WHERE " PURGE_GONE, true },
	[P_N_DEFERRED] = { "purge_n_deferred",
		"SELECT COUNT(*) FROM notifications n JOIN deferred_messages d"
		" ON d.notification_id = n.id WHERE " PURGE_GONE, true },
	/* one statement, one short transaction each; a repeat deletes what is left */
	[P_CLAIMS] = { "purge_claims",
		"DELETE FROM idempotency_claims WHERE expires_at < ? ORDER BY expires_at LIMIT ?", true },
	[P_COUNTERS] = { "purge_counters",
		"DELETE FROM daily_counters WHERE day < ? ORDER BY day LIMIT ?", true },
	[P_RESERV] = { "purge_reservations",
		"DELETE FROM counter_reservations WHERE day < ? ORDER BY day LIMIT ?", true },
	[P_CANCEL_TX] = { "purge_cancel_tx",
		"DELETE FROM cancellations WHERE kind = 'transaction' AND created_at < ?"
		" AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.transaction_id = target"
		" AND n.status IN " PURGE_OPEN ") ORDER BY created_at LIMIT ?", true },
	[P_CANCEL_BATCH] = { "purge_cancel_batch",
		"DELETE FROM cancellations WHERE kind = 'batch' AND created_at < ?"
		" AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.batch_id = target"
		" AND n.status IN " PURGE_OPEN ") ORDER BY created_at LIMIT ?", true },
	[P_N_CLAIMS] = { "purge_n_claims",
		"SELECT COUNT(*) FROM idempotency_claims WHERE expires_at < ?", true },
	[P_N_COUNTERS] = { "purge_n_counters",
		"SELECT COUNT(*) FROM daily_counters WHERE day < ?", true },
	[P_N_RESERV] = { "purge_n_reservations",
		"SELECT COUNT(*) FROM counter_reservations WHERE day < ?", true },
	[P_N_CANCEL] = { "purge_n_cancel",
		"SELECT COUNT(*) FROM cancellations c WHERE c.created_at < ? AND NOT EXISTS"
		" (SELECT 1 FROM notifications n WHERE n.status IN " PURGE_OPEN " AND"
		" ((c.kind = 'transaction' AND n.transaction_id = c.target) OR"
		" (c.kind = 'batch' AND n.batch_id = c.target)))", true },
};
_Static_assert(sizeof(purge_stmts) / sizeof(purge_stmts[0]) == P__N, "purge_stmts");

static const char purge_usage[] =
	"usage: heraldctl purge [--older-than DURATION|DATE] [--batch N] [--dry-run]\n"
	"                       [--format json|table]\n"
	"  Deletes notifications in a final status created and last changed before the cut-off,\n"
	"  with their audit rows, device outcomes and deferred leftovers; expired idempotency\n"
	"  claims; daily counters and reservations of days 2 days or more before the cut-off;\n"
	"  old cancellations nothing is left open for. Never a queued, deferred, ready or retry\n"
	"  notification. Prints the counts as one JSON object.\n"
	"  --older-than: 90d, 12h, 30m, 45s (a number and d, h, m or s), or a date (2026-08-01,\n"
	"    midnight UTC) or an RFC 3339 time; default retention.days of the config (90)\n"
	"  --batch: notifications per transaction and rows per statement (default 1000, 1-100000)\n"
	"  --dry-run: count what would go, delete nothing\n"
	CTL_FORMAT_HELP;

/* What one run did (or would do). */
struct purge {
	struct db *db;
	int64_t cut;                 /* the cut-off, usec */
	char day[11];                /* counters of days before this one go (YYYY-MM-DD) */
	int64_t batch;
	bool dry;
	uint64_t notes, audit, outcomes, deferred, claims, counters, reserv, cancels, batches;
};

/* purge_cutoff - DURATION (Nd, Nh, Nm, Ns) before NOW, a date (midnight UTC) or an RFC 3339
 * time S into *CUT; 0, or -1 */
static int purge_cutoff(const char *s, int64_t now, int64_t *cut)
{
	long long n, unit;
	struct tm tm;
	char *end;
	int y, mo, d;
	char c;

	if (s[0] >= '0' && s[0] <= '9' && strchr(s, '-') == NULL) {
		errno = 0;
		n = strtoll(s, &end, 10);
		unit = end[0] == 'd' ? 86400 : end[0] == 'h' ? 3600 : end[0] == 'm' ? 60 :
		    end[0] == 's' ? 1 : 0;
		if (errno != 0 || end == s || unit == 0 || end[1] != '\0' || n < 1 ||
		    n > 36500LL * 86400 / unit)
			return -1;
		*cut = now - n * unit * 1000000;
		return 0;
	}
	/* NOLINTNEXTLINE(cert-err34-c): fixed-width fields of a 10-character string, ranges checked */
	if (strlen(s) == 10 && sscanf(s, "%4d-%2d-%2d%c", &y, &mo, &d, &c) == 3 &&
	    s[4] == '-' && s[7] == '-' && mo >= 1 && mo <= 12 && d >= 1 && d <= 31) {
		memset(&tm, 0, sizeof(tm));
		tm.tm_year = y - 1900;
		tm.tm_mon = mo - 1;
		tm.tm_mday = d;
		*cut = (int64_t)timegm(&tm) * 1000000;
		if (tm.tm_mday != d)         /* 2026-02-30 normalised to March */
			return -1;
		return 0;
	}
	return rfc3339_parse(s, cut) == 0 ? 0 : -1;
}

/* purge_count - the COUNT(*) of statement ID run with ARGS into *N; 0 or a DB_ error */
static int purge_count(struct db *db, int id, const struct db_arg *args, size_t nargs,
    uint64_t *n)
{
	int rc;

	if ((rc = db_exec(db, id, args, nargs)) != 0)
		return rc;
	if ((rc = db_fetch(db, id)) < 0)
		return rc;
	*n += rc == 1 ? (uint64_t)db_col_i64(db, id, 0) : 0;
	while ((rc = db_fetch(db, id)) == 1)
		;
	return rc < 0 ? rc : 0;
}

/* purge_batch_once - delete (or count) the notifications of ids LO..HI that may go, with
 * their children, in one transaction; 0 or a DB_ error (rolled back) */
static int purge_batch_once(struct purge *p, int64_t lo, int64_t hi)
{
	uint64_t a = 0, o = 0, d = 0, n = 0;
	int rc;

#define PURGE_ARGS DB_ARGS(db_i64(lo), db_i64(hi), db_time(p->cut), db_time(p->cut))
	if (p->dry) {
		if ((rc = purge_count(p->db, P_N_AUDIT, PURGE_ARGS, &a)) != 0 ||
		    (rc = purge_count(p->db, P_N_OUTCOMES, PURGE_ARGS, &o)) != 0 ||
		    (rc = purge_count(p->db, P_N_DEFERRED, PURGE_ARGS, &d)) != 0)
			return rc;
		p->audit += a;
		p->outcomes += o;
		p->deferred += d;
		return 0;
	}
	if ((rc = db_begin_read_committed(p->db)) != 0)
		return rc;
	/* lock the rows first, the condition checked again: children then parents go */
	if ((rc = db_exec(p->db, P_LOCK, PURGE_ARGS)) != 0)
		goto fail;
	while ((rc = db_fetch(p->db, P_LOCK)) == 1)
		;
	if (rc < 0)
		goto fail;
	if ((rc = db_exec(p->db, P_AUDIT, PURGE_ARGS)) != 0)
		goto fail;
	a = db_affected(p->db, P_AUDIT);
	if ((rc = db_exec(p->db, P_OUTCOMES, PURGE_ARGS)) != 0)
		goto fail;
	o = db_affected(p->db, P_OUTCOMES);
	if ((rc = db_exec(p->db, P_DEFERRED, PURGE_ARGS)) != 0)
		goto fail;
	d = db_affected(p->db, P_DEFERRED);
	if ((rc = db_exec(p->db, P_NOTES, PURGE_ARGS)) != 0)
		goto fail;
	n = db_affected(p->db, P_NOTES);
	if ((rc = db_commit(p->db)) != 0)
		return rc;
#undef PURGE_ARGS
	p->notes += n;
	p->audit += a;
	p->outcomes += o;
	p->deferred += d;
	return 0;
fail:
	db_rollback(p->db);
	return rc;
}

/* purge_notes - walk the notifications by id in batches; 0 or a DB_ error */
static int purge_notes(struct purge *p)
{
	int64_t last = 0, lo, hi, n;
	int rc, tries;

	for (;;) {
		if ((rc = db_exec(p->db, P_IDS, DB_ARGS(db_i64(last), db_time(p->cut),
		    db_time(p->cut), db_i64(p->batch)))) != 0)
			return rc;
		lo = hi = -1;
		n = 0;
		while ((rc = db_fetch(p->db, P_IDS)) == 1) {
			hi = db_col_i64(p->db, P_IDS, 0);
			if (lo < 0)
				lo = hi;
			n++;
		}
		if (rc < 0)
			return rc;
		if (n == 0)
			return 0;
		for (tries = 0; tries < PURGE_TRIES; tries++) {
			if ((rc = purge_batch_once(p, lo, hi)) != DB_ERETRY)
				break;
			usleep(100000U << tries);    /* a deadlock with a worker: let it finish */
		}
		if (rc != 0)
			return rc;
		if (p->dry)
			p->notes += (uint64_t)n;
		p->batches++;
		last = hi;
		if (n < p->batch)
			return 0;
	}
}

/* purge_rows - delete (or count) the rows of statement DEL (COUNT in dry-run) with the one
 * argument ARG, P->batch rows per statement, adding to *N; 0 or a DB_ error */
static int purge_rows(struct purge *p, int del, int count, struct db_arg arg, uint64_t *n)
{
	uint64_t k;
	int rc;

	if (p->dry)
		return purge_count(p->db, count, &arg, 1, n);
	do {
		if ((rc = db_exec(p->db, del, DB_ARGS(arg, db_i64(p->batch)))) != 0)
			return rc;
		k = db_affected(p->db, del);
		*n += k;
		if (k > 0)
			p->batches++;
	} while (k == (uint64_t)p->batch);
	return 0;
}

/* purge_run - everything, in order; 0 or a DB_ error */
static int purge_run(struct purge *p, int64_t now)
{
	int rc;

	if ((rc = purge_notes(p)) != 0 ||
	    (rc = purge_rows(p, P_CLAIMS, P_N_CLAIMS, db_time(now), &p->claims)) != 0 ||
	    (rc = purge_rows(p, P_COUNTERS, P_N_COUNTERS, db_str(p->day), &p->counters)) != 0 ||
	    (rc = purge_rows(p, P_RESERV, P_N_RESERV, db_str(p->day), &p->reserv)) != 0)
		return rc;
	if (p->dry)
		return purge_count(p->db, P_N_CANCEL, DB_ARGS(db_time(p->cut)), &p->cancels);
	if ((rc = purge_rows(p, P_CANCEL_TX, P_N_CANCEL, db_time(p->cut), &p->cancels)) != 0)
		return rc;
	return purge_rows(p, P_CANCEL_BATCH, P_N_CANCEL, db_time(p->cut), &p->cancels);
}

/* purge_report - the counts of P after SECONDS as one JSON object (or table in FMT) */
static void purge_report(const struct purge *p, double seconds, enum ctl_fmt fmt)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "cutoff", ctl_time(p->cut));
	json_object_object_add(o, "dry_run", json_object_new_boolean(p->dry));
	json_object_object_add(o, "notifications", json_object_new_int64((int64_t)p->notes));
	json_object_object_add(o, "audit", json_object_new_int64((int64_t)p->audit));
	json_object_object_add(o, "device_outcomes", json_object_new_int64((int64_t)p->outcomes));
	json_object_object_add(o, "deferred_messages", json_object_new_int64((int64_t)p->deferred));
	json_object_object_add(o, "idempotency_claims", json_object_new_int64((int64_t)p->claims));
	json_object_object_add(o, "daily_counters", json_object_new_int64((int64_t)p->counters));
	json_object_object_add(o, "counter_reservations", json_object_new_int64((int64_t)p->reserv));
	json_object_object_add(o, "cancellations", json_object_new_int64((int64_t)p->cancels));
	json_object_object_add(o, "batches", json_object_new_int64((int64_t)p->batches));
	{
		char buf[32];

		snprintf(buf, sizeof(buf), "%.3f", seconds);
		json_object_object_add(o, "seconds", json_object_new_double_s(seconds, buf));
	}
	ctl_output(o, fmt, "what");
}

/* purge_cmd - "heraldctl purge [--older-than D] [--batch N] [--dry-run] [--format F]" */
int purge_cmd(const char *conf, int argc, char **argv)
{
	const char *older = NULL, *batch = NULL, *format = NULL, *pos[1];
	bool dry = false;
	const struct ctl_opt opts[] = {
		{ "--older-than", &older, NULL }, { "--batch", &batch, NULL },
		{ "--dry-run", NULL, &dry }, { "--format", &format, NULL }, { NULL, NULL, NULL }
	};
	struct purge p = { .batch = PURGE_BATCH };
	struct timespec t0, t1;
	int64_t now = rfc3339_now(), dayusec;
	enum ctl_fmt fmt;
	struct conf c;
	struct tm tm;
	time_t ts;
	char *end;
	int np, rc;

	if ((rc = ctl_args("purge", purge_usage, argc - 1, argv + 1, opts, pos, 0, &np)) != 0)
		return rc == CTL_HELP ? EX_OK : rc;
	if ((rc = ctl_fmt_parse("purge", purge_usage, format, &fmt)) != 0)
		return rc;
	if (batch != NULL) {
		errno = 0;
		p.batch = strtoll(batch, &end, 10);
		if (errno != 0 || end == batch || *end != '\0' || p.batch < 1 ||
		    p.batch > PURGE_BATCH_MAX)
			return ctl_usage("purge", purge_usage, "--batch '%s': not a number from 1 to %d",
			    batch, PURGE_BATCH_MAX);
	}
	if (older != NULL) {
		if (purge_cutoff(older, now, &p.cut) != 0)
			return ctl_usage("purge", purge_usage, "--older-than '%s': not a duration (90d,"
			    " 12h, 30m, 45s), a date (2026-08-01) or an RFC 3339 time", older);
		if (p.cut > now)
			return ctl_usage("purge", purge_usage, "--older-than '%s': in the future",
			    older);
	} else {
		if ((rc = ctl_conf(conf, &c)) != 0)
			return rc;
		p.cut = now - (int64_t)c.retention.days * PURGE_DAY_USEC;
		conf_free(&c);
	}
	dayusec = p.cut - PURGE_COUNTER_DAYS * PURGE_DAY_USEC;
	ts = (time_t)(dayusec / 1000000 - (dayusec % 1000000 < 0));
	if (gmtime_r(&ts, &tm) == NULL || strftime(p.day, sizeof(p.day), "%Y-%m-%d", &tm) == 0)
		snprintf(p.day, sizeof(p.day), "1970-01-01");
	p.dry = dry;
	if ((rc = ctl_db_open(conf, purge_stmts, P__N, &p.db)) != 0)
		return rc;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = purge_run(&p, now);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* the counts so far, also after a failure: what went is gone */
	purge_report(&p, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
	    fmt);
	if (rc != 0) {
		fprintf(stderr, "heraldctl purge: stopped after %llu batch%s: %s\n",
		    (unsigned long long)p.batches, p.batches == 1 ? "" : "es", db_error(p.db));
		rc = ctl_db_fail(p.db, rc);
	}
	db_close(p.db);
	return rc;
}
