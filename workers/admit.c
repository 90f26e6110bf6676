/* admit - SPEC §4 steps 1-6 for one decoded message: status, cancellation, expiry, idempotency
 * claim, recipient, suppression, preferences, pause, quiet hours, send_at, daily cap and quota
 *
 * Round trips for a message to a user with no idempotency key and a cap: one read of status,
 * cancellations and (for a `to` address) suppression; one read of the user row joined with the
 * quiet-hours row, the three preference rows that can matter and the address's suppression;
 * for push one read of the devices. Each limit then costs two statements (reservation, counter)
 * in the caller's transaction that records the status (admit_take). The caps and client_quotas
 * tables are read at most every ADMIT_CACHE_SEC seconds per process, so `heraldctl caps set`
 * takes effect within that time.
 *
 * Why the reservation row comes before the counter: its primary key (transaction,
 * channel, scope) is what makes admit_take safe to repeat. A duplicate means this transaction
 * already holds its slot (a retry, a redelivery, the scheduler, or a commit whose answer was
 * lost), so it goes on without counting again; otherwise the counter is incremented with the
 * cap as a parameter in one statement, which no concurrency can push past the cap.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "admit.h"
#include "codec.h"
#include "conf.h"
#include "db.h"
#include "log.h"
#include "tzday.h"

#define ADMIT_USEC 1000000LL
#define ADMIT_CACHE_SEC 2.0          /* caps/client_quotas cache lifetime */
#define ADMIT_ADDR_HASH 250          /* longer addresses are keyed by their SHA-256 */
#define ADMIT_TRIES 4                /* claim races, then DB_ERETRY */
#define ADMIT_QUIET_PRIORITY 7       /* this priority and above ignore quiet hours */
#define ADMIT_EMAIL_MAX 254          /* the longest email address (the codec's bound) */

/* the channel orders of codec.h and conf.h are one order: caps index by either */
_Static_assert((int)CODEC_CH_EMAIL == (int)CONF_CH_EMAIL && (int)CODEC_CH_SMS == (int)CONF_CH_SMS &&
    (int)CODEC_CH_PUSH == (int)CONF_CH_PUSH && (int)CODEC_CH_WEBHOOK == (int)CONF_CH_WEBHOOK &&
    (int)CODEC_CH_COUNT == (int)CONF_CHANNELS, "codec and conf channel orders differ");

enum {
	Q_STATE, Q_CLAIM_PUT, Q_CLAIM_GET, Q_CLAIM_TAKE, Q_USER, Q_DEVICES, Q_CAPS, Q_QUOTAS,
	Q_RES_PUT, Q_COUNT, Q_RES_LIST, Q_RES_DEL, Q_UNCOUNT, Q_RES_DROP,
	Q__N
};
_Static_assert(Q__N == ADMIT_NSTMTS, "ADMIT_NSTMTS in admit.h is out of date");

const struct db_stmt admit_stmts[] = {
	/* 0 status now, 1 transaction or batch cancelled, 2 the `to` address suppressed */
	[Q_STATE] = { "admit_state",
		"SELECT (SELECT status FROM notifications WHERE transaction_id = ? AND channel = ?),"
		" EXISTS (SELECT 1 FROM cancellations WHERE kind = 'transaction' AND target = ?)"
		" OR EXISTS (SELECT 1 FROM cancellations WHERE kind = 'batch' AND target = ?),"
		" EXISTS (SELECT 1 FROM suppressions WHERE address = ? AND channel = ?)", true },
	/* keyed by (client, key, recipient): a repeat finds the row and reads it */
	[Q_CLAIM_PUT] = { "admit_claim_put",
		"INSERT INTO idempotency_claims (client_id, idempotency_key, recipient, transaction_id,"
		" created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)", true },
	[Q_CLAIM_GET] = { "admit_claim_get",
		"SELECT transaction_id, expires_at FROM idempotency_claims"
		" WHERE client_id = ? AND idempotency_key = ? AND recipient = ?", true },
	/* taking over an expired claim: a repeat finds it unexpired, and the re-read ours */
	[Q_CLAIM_TAKE] = { "admit_claim_take",
		"UPDATE idempotency_claims SET transaction_id = ?, created_at = ?, expires_at = ?"
		" WHERE client_id = ? AND idempotency_key = ? AND recipient = ? AND expires_at <= ?",
		true },
	/* one row per matching preference key (at least one: LEFT JOIN); 12 the channel's
	 * address suppressed (push: devices are checked one by one in Q_DEVICES) */
	[Q_USER] = { "admit_user",
		"SELECT u.first_name, u.last_name, u.email, u.phone, u.timezone, u.locale,"
		" u.paused_until, u.webhook_url, q.start_minute, q.end_minute, p.pref_key, p.enabled,"
		" EXISTS (SELECT 1 FROM suppressions s WHERE s.channel = ? AND s.address ="
		" CASE ? WHEN 'email' THEN LOWER(u.email) WHEN 'sms' THEN u.phone"
		" WHEN 'webhook' THEN u.webhook_url END)"
		" FROM users u"
		" LEFT JOIN quiet_hours q ON q.user_id = u.user_id"
		" LEFT JOIN preferences p ON p.user_id = u.user_id AND p.pref_key IN (?, ?, ?)"
		" WHERE u.user_id = ?", true },
	[Q_DEVICES] = { "admit_devices",
		"SELECT d.platform, d.token,"
		" EXISTS (SELECT 1 FROM suppressions s WHERE s.address = d.token AND s.channel = 'push')"
		" FROM devices d WHERE d.user_id = ? ORDER BY d.id", true },
	[Q_CAPS] = { "admit_caps", "SELECT channel, client_id, daily_cap FROM caps", true },
	[Q_QUOTAS] = { "admit_quotas",
		"SELECT channel, client_id, daily_quota FROM client_quotas", true },
	/* inside the recording transaction (admit_take): never repeated alone */
	[Q_RES_PUT] = { "admit_res_put",
		"INSERT INTO counter_reservations (transaction_id, channel, scope, subject, day)"
		" VALUES (?, ?, ?, ?, ?)" },
	/* affected rows 1: first slot; 2: slot LAST_INSERT_ID(); 0 (1 with CLIENT_FOUND_ROWS,
	 * then with an insert id): full */
	[Q_COUNT] = { "admit_count",
		"INSERT INTO daily_counters (scope, subject, channel, day, n) VALUES (?, ?, ?, ?, 1)"
		" ON DUPLICATE KEY UPDATE n = LAST_INSERT_ID(IF(n < ?, n + 1, n))" },
	[Q_RES_LIST] = { "admit_res_list",
		"SELECT scope, subject, day FROM counter_reservations"
		" WHERE transaction_id = ? AND channel = ?", true },
	[Q_RES_DEL] = { "admit_res_del",
		"DELETE FROM counter_reservations WHERE transaction_id = ? AND channel = ? AND scope = ?" },
	[Q_UNCOUNT] = { "admit_uncount",
		"UPDATE daily_counters SET n = n - 1"
		" WHERE scope = ? AND subject = ? AND channel = ? AND day = ? AND n > 0" },
	[Q_RES_DROP] = { "admit_res_drop",
		"DELETE FROM counter_reservations WHERE transaction_id = ? AND channel = ?", true },
};
const size_t admit_nstmts = Q__N;

/* One row of caps or client_quotas. */
struct admit_limit {
	int ch;
	char *client;
	int64_t n;                   /* caps: NULL read as 0, no cap */
};

/* The process's copy of the caps and client_quotas tables. */
static struct {
	bool valid;
	double loaded;               /* monotonic seconds */
	struct admit_limit *caps, *quotas;
	size_t ncaps, nquotas;
} admit_cache;

static const char *const admit_final_statuses[] = {
	"done", "failed", "opt_out", "paused", "rate_limited", "invalid_user", "no_address",
	"suppressed", "duplicate", "expired", "cancelled", NULL
};

/* admit_is_final - whether STATUS (may be NULL) is a final status (§7) */
static bool admit_is_final(const char *status)
{
	size_t i;

	for (i = 0; status != NULL && admit_final_statuses[i] != NULL; i++)
		if (strcmp(status, admit_final_statuses[i]) == 0)
			return true;
	return false;
}

/* admit_mono - monotonic seconds */
static double admit_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* admit_reason - a detail object {"reason": REASON}; NULL when memory ran out */
static struct json_object *admit_reason(const char *reason)
{
	struct json_object *o = json_object_new_object();

	if (o != NULL && json_object_object_add(o, "reason", json_object_new_string(reason)) != 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* admit_oom - log that memory ran out while admitting N; DB_ERR */
static int admit_oom(const struct note *n)
{
	log_error("txid=%s op=admit err=\"out of memory\"", n->txid);
	return DB_ERR;
}

/* admit_final - end A now with STATUS (static) and detail {"reason": REASON} */
static int admit_final(struct admit *a, const struct note *n, const char *status,
	const char *reason)
{
	a->verdict = ADMIT_FINAL;
	a->status = status;
	if ((a->detail = admit_reason(reason)) == NULL)
		return admit_oom(n);
	return 0;
}

/* admit_defer - defer A until UNTIL with detail {"reason": REASON}; until N's expiry when that
 * comes first, so the scheduler ends it `expired` then rather than when the deferral ends */
static int admit_defer(struct admit *a, const struct note *n, int64_t until, const char *reason)
{
	a->verdict = ADMIT_DEFER;
	a->defer_until = n->expires_at != 0 && n->expires_at < until ? n->expires_at : until;
	if ((a->detail = admit_reason(reason)) == NULL)
		return admit_oom(n);
	return 0;
}

/* admit_rkey - the recipient key of N ('u:' user, 'a:' address, 'h:' SHA-256 of a long
 * address) into OUT; -1 when it cannot be formed */
static int admit_rkey(const struct note *n, char out[ADMIT_RKEY_MAX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	size_t len;

	if (n->user_id != NULL) {
		if (strlen(n->user_id) + 3 > ADMIT_RKEY_MAX)
			return -1;
		snprintf(out, ADMIT_RKEY_MAX, "u:%s", n->user_id);
		return 0;
	}
	if (n->address == NULL)
		return -1;
	len = strlen(n->address);
	if (len <= ADMIT_ADDR_HASH) {
		snprintf(out, ADMIT_RKEY_MAX, "a:%s", n->address);
		return 0;
	}
	if (EVP_Digest(n->address, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		return -1;
	memcpy(out, "h:", 2);   /* NOLINT(bugprone-not-null-terminated-result): snprintf ends it */
	for (i = 0; i < mdlen; i++)
		snprintf(out + 2 + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* admit_utc_day - the UTC calendar day of USEC as "YYYY-MM-DD" */
static void admit_utc_day(int64_t usec, char out[11])
{
	time_t t = (time_t)(usec / ADMIT_USEC - (usec % ADMIT_USEC < 0));
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(out, 11, "%Y-%m-%d", &tm) != 10)
		snprintf(out, 11, "1970-01-01");   /* a year outside 1000..9999: not a real time */
}

/* ---- step 1: status, cancellation, expiry --------------------------------------------------- */

/* admit_state - read N's status now, its cancellation and (for `to`) its address's suppression;
 * decides SKIP, cancelled or expired; *SUPPRESSED for step 3 */
static int admit_state(struct db *db, int base, const struct note *n, const char *ch, int64_t now,
	struct admit *a, bool *suppressed)
{
	const char *s, *to = n->user_id == NULL ? n->address : NULL;
	char lower[ADMIT_EMAIL_MAX + 1];
	int rc;

	/* suppressions hold email addresses in lower case */
	if (to != NULL && n->channel == CODEC_CH_EMAIL && strlen(to) <= ADMIT_EMAIL_MAX) {
		size_t i;

		for (i = 0; to[i]; i++)
			lower[i] = (char)(to[i] >= 'A' && to[i] <= 'Z' ? to[i] - 'A' + 'a' : to[i]);
		lower[i] = '\0';
		to = lower;
	}
	rc = db_exec(db, base + Q_STATE, DB_ARGS(db_str(n->txid), db_str(ch), db_str(n->txid),
	    db_str(n->batch_id), db_str(to), db_str(ch)));
	if (rc != 0)
		return rc;
	if ((rc = db_fetch(db, base + Q_STATE)) != 1)
		return rc == 0 ? DB_ERR : rc;
	if ((s = db_col_str(db, base + Q_STATE, 0, NULL)) != NULL)
		snprintf(a->current, sizeof a->current, "%s", s);
	*suppressed = db_col_i64(db, base + Q_STATE, 2) != 0;
	if (admit_is_final(a->current)) {
		a->verdict = ADMIT_SKIP;
		return 0;
	}
	if (db_col_i64(db, base + Q_STATE, 1) != 0)
		return admit_final(a, n, "cancelled", "cancelled");
	if (n->expires_at != 0 && now > n->expires_at)
		return admit_final(a, n, "expired", "expired");
	return 0;
}

/* ---- step 2: idempotency -------------------------------------------------------------------- */

/* admit_claim - claim (client, key, RKEY) for N's transaction, or find it ours, or take over an
 * expired claim; another live claim ends N as duplicate */
static int admit_claim(struct db *db, int base, const struct conf *c, const struct note *n,
	const char *rkey, int64_t now, struct admit *a)
{
	const char *client = n->client_id != NULL ? n->client_id : "";
	int64_t exp = now + (int64_t)c->idempotency.window * ADMIT_USEC, until;
	char first[TXID_LEN + 1];
	const char *t;
	int i, rc;

	for (i = 0; i < ADMIT_TRIES; i++) {
		rc = db_exec(db, base + Q_CLAIM_PUT, DB_ARGS(db_str(client), db_str(n->idempotency_key),
		    db_str(rkey), db_str(n->txid), db_time(now), db_time(exp)));
		if (rc == 0)
			return 0;
		if (rc != DB_EDUP)
			return rc;
		rc = db_exec(db, base + Q_CLAIM_GET, DB_ARGS(db_str(client),
		    db_str(n->idempotency_key), db_str(rkey)));
		if (rc != 0)
			return rc;
		if ((rc = db_fetch(db, base + Q_CLAIM_GET)) < 0)
			return rc;
		if (rc == 0)
			continue;       /* purged meanwhile: claim it again */
		t = db_col_str(db, base + Q_CLAIM_GET, 0, NULL);
		until = db_col_time(db, base + Q_CLAIM_GET, 1);
		if (t != NULL && strcmp(t, n->txid) == 0)
			return 0;       /* our own claim: a repeat, or another channel of ours */
		if (until > now) {
			snprintf(first, sizeof first, "%s", t != NULL ? t : "");
			if ((rc = admit_final(a, n, "duplicate", "duplicate")) != 0)
				return rc;
			if (json_object_object_add(a->detail, "first_transaction_id",
			    json_object_new_string(first)) != 0)
				return admit_oom(n);
			return 0;
		}
		rc = db_exec(db, base + Q_CLAIM_TAKE, DB_ARGS(db_str(n->txid), db_time(now),
		    db_time(exp), db_str(client), db_str(n->idempotency_key), db_str(rkey),
		    db_time(now)));
		if (rc != 0)
			return rc;
		if (db_affected(db, base + Q_CLAIM_TAKE) == 1)
			return 0;
		/* someone else took it over first (or our repeat did): read it again */
	}
	log_warnx("txid=%s op=admit_claim err=\"claim keeps changing\" note=retry", n->txid);
	return DB_ERETRY;
}

/* ---- step 3: recipient ----------------------------------------------------------------------- */

/* What the user row said, for steps 3-5. */
struct admit_user {
	bool found;
	bool suppressed;             /* the channel's address (not push) */
	int64_t paused_until;        /* 0: not paused */
	bool quiet;                  /* a quiet-hours row */
	int qstart, qend;
	int pref[3];                 /* CHANNEL, CATEGORY, CATEGORY.CHANNEL: -1 unset, 0 off, 1 on */
};

/* admit_profile_add - add column COL of Q (when not NULL) as KEY to profile P */
static int admit_profile_add(struct db *db, int q, unsigned col, struct json_object *p,
	const char *key)
{
	size_t len;
	const char *s = db_col_str(db, q, col, &len);

	if (s == NULL)
		return 0;
	return json_object_object_add(p, key, json_object_new_string_len(s, (int)len));
}

/* admit_user_row - take the first row of Q_USER into A and U: profile, address, zone, locale */
static int admit_user_row(struct db *db, int q, const struct note *n, struct admit *a,
	struct admit_user *u)
{
	static const char *const keys[] = { "first_name", "last_name", "email", "phone" };
	const char *s, *addr = NULL;
	size_t len = 0;
	unsigned i;

	if ((a->profile = json_object_new_object()) == NULL ||
	    json_object_object_add(a->profile, "user_id", json_object_new_string(n->user_id)) != 0)
		return admit_oom(n);
	for (i = 0; i < 4; i++)
		if (admit_profile_add(db, q, i, a->profile, keys[i]) != 0)
			return admit_oom(n);
	s = db_col_str(db, q, 4, NULL);
	if (s != NULL && tzday_valid(s)) {
		snprintf(a->timezone, sizeof a->timezone, "%s", s);
	} else {
		log_warnx("txid=%s user_id=%s err=\"unknown time zone\" note=\"using UTC\"", n->txid,
		    n->user_id);
		snprintf(a->timezone, sizeof a->timezone, "UTC");
	}
	if (json_object_object_add(a->profile, "timezone", json_object_new_string(a->timezone)) != 0 ||
	    admit_profile_add(db, q, 5, a->profile, "locale") != 0)
		return admit_oom(n);
	if ((s = db_col_str(db, q, 5, NULL)) != NULL)
		snprintf(a->locale, sizeof a->locale, "%s", s);
	u->paused_until = db_col_time(db, q, 6);
	switch (n->channel) {
	case CODEC_CH_EMAIL: addr = db_col_str(db, q, 2, &len); break;
	case CODEC_CH_SMS: addr = db_col_str(db, q, 3, &len); break;
	case CODEC_CH_WEBHOOK: addr = db_col_str(db, q, 7, &len); break;
	default: break;
	}
	if (addr != NULL && len > 0 && (a->address = strndup(addr, len)) == NULL)
		return admit_oom(n);
	u->quiet = !db_col_null(db, q, 8);
	u->qstart = (int)db_col_i64(db, q, 8);
	u->qend = (int)db_col_i64(db, q, 9);
	u->suppressed = db_col_i64(db, q, 12) != 0;
	return 0;
}

/* admit_user - read N's user with the preference keys KEYS and the channel's suppression */
static int admit_user(struct db *db, int base, const struct note *n, const char *ch,
	char keys[3][80], struct admit *a, struct admit_user *u)
{
	int q = base + Q_USER, rc, i;
	const char *k;

	memset(u, 0, sizeof *u);
	u->pref[0] = u->pref[1] = u->pref[2] = -1;
	rc = db_exec(db, q, DB_ARGS(db_str(ch), db_str(ch), db_str(keys[0]), db_str(keys[1]),
	    db_str(keys[2]), db_str(n->user_id)));
	if (rc != 0)
		return rc;
	while ((rc = db_fetch(db, q)) == 1) {
		if (!u->found) {
			u->found = true;
			if ((rc = admit_user_row(db, q, n, a, u)) != 0)
				return rc;
		}
		if ((k = db_col_str(db, q, 10, NULL)) == NULL)
			continue;
		for (i = 0; i < 3; i++)
			if (strcmp(k, keys[i]) == 0)
				u->pref[i] = db_col_i64(db, q, 11) != 0;
	}
	return rc;
}

/* admit_devices - the push devices of N's user into A, suppressed ones left out (*NSUPP) */
static int admit_devices(struct db *db, int base, const struct note *n, struct admit *a,
	size_t *nsupp)
{
	int q = base + Q_DEVICES, rc;
	struct admit_device *d;
	const char *p, *t;
	size_t cap = 0;

	*nsupp = 0;
	if ((rc = db_exec(db, q, DB_ARGS(db_str(n->user_id)))) != 0)
		return rc;
	while ((rc = db_fetch(db, q)) == 1) {
		p = db_col_str(db, q, 0, NULL);
		t = db_col_str(db, q, 1, NULL);
		if (p == NULL || t == NULL || t[0] == '\0')
			continue;
		if (db_col_i64(db, q, 2) != 0) {
			(*nsupp)++;
			continue;
		}
		if (a->ndevices == cap) {
			cap = cap ? 2 * cap : 4;
			if ((d = realloc(a->devices, cap * sizeof *d)) == NULL)
				return admit_oom(n);
			a->devices = d;
		}
		d = &a->devices[a->ndevices++];
		memset(d, 0, sizeof *d);
		snprintf(d->platform, sizeof d->platform, "%s", p);
		snprintf(d->token, sizeof d->token, "%s", t);
	}
	return rc;
}

/* admit_to - a `to` recipient: the note's own address (push: one device) */
static int admit_to(const struct note *n, bool suppressed, struct admit *a)
{
	snprintf(a->timezone, sizeof a->timezone, "UTC");
	if (n->address == NULL || n->address[0] == '\0' ||
	    (n->channel == CODEC_CH_PUSH && n->push_platform == NULL))
		return admit_final(a, n, "no_address", "no_address");
	if (suppressed)
		return admit_final(a, n, "suppressed", "suppressed");
	if (n->channel != CODEC_CH_PUSH) {
		if ((a->address = strdup(n->address)) == NULL)
			return admit_oom(n);
		return 0;
	}
	if ((a->devices = calloc(1, sizeof *a->devices)) == NULL)
		return admit_oom(n);
	a->ndevices = 1;
	snprintf(a->devices[0].platform, sizeof a->devices[0].platform, "%s", n->push_platform);
	snprintf(a->devices[0].token, sizeof a->devices[0].token, "%s", n->address);
	return 0;
}

/* ---- steps 4-5: preferences, pause, quiet hours, send_at ------------------------------------- */

/* admit_pref_default - the configured default of preference KEY: 0, 1, or -1 unset */
static int admit_pref_default(const struct conf *c, const char *key)
{
	size_t i;

	for (i = 0; i < c->preferences.ndefaults; i++)
		if (strcmp(c->preferences.defaults[i].key, key) == 0)
			return c->preferences.defaults[i].on;
	return -1;
}

/* admit_prefs_on - whether the message may go: the user's CATEGORY.CHANNEL when set decides; the
 * user's own CHANNEL or CATEGORY off says no whatever the defaults; otherwise, a key the user has
 * not set taking the configured default, CATEGORY.CHANNEL when set wins, else off when CHANNEL
 * or CATEGORY is off */
static bool admit_prefs_on(const struct conf *c, char keys[3][80], const int user[3])
{
	int v[3], i;

	if (user[2] >= 0)
		return user[2] == 1;
	if (user[0] == 0 || user[1] == 0)
		return false;
	for (i = 0; i < 3; i++)
		v[i] = user[i] >= 0 ? user[i] : admit_pref_default(c, keys[i]);
	if (v[2] >= 0)
		return v[2] == 1;
	return v[0] != 0 && v[1] != 0;
}

/* admit_quiet_end - when NOW (local minute M) lies in the window [START, END) of ZONE, the next
 * local END into *UNTIL and true; else false. -1 when the zone fails */
static int admit_quiet_end(const char *zone, int64_t now, int start, int end, int64_t *until)
{
	const int64_t min = 60 * ADMIT_USEC;
	int m, m2, i, diff;
	int64_t t;
	bool in;

	if (tzday_minute_of_day(zone, now, &m) < 0)
		return -1;
	if (start == end)
		return 0;
	in = start < end ? (m >= start && m < end) : (m >= start || m < end);
	if (!in)
		return 0;
	/* local minutes start on UTC minutes (whole-minute offsets): count minutes to END */
	t = now - ((now % min) + min) % min + (int64_t)((end - m + 1440) % 1440) * min;
	/* a DST change in between moves the wall clock: correct by what it shows */
	for (i = 0; i < 2; i++) {
		if (tzday_minute_of_day(zone, t, &m2) < 0)
			return -1;
		if (m2 == end)
			break;
		diff = (end - m2 + 1440) % 1440;
		if (diff > 720)
			diff -= 1440;
		t += (int64_t)diff * min;
	}
	*until = t > now ? t : now + min;
	return 1;
}

/* ---- step 6: daily cap and client quota ------------------------------------------------------ */

/* admit_cache_clear - forget the cached caps and quotas */
static void admit_cache_clear(void)
{
	size_t i;

	for (i = 0; i < admit_cache.ncaps; i++)
		free(admit_cache.caps[i].client);
	for (i = 0; i < admit_cache.nquotas; i++)
		free(admit_cache.quotas[i].client);
	free(admit_cache.caps);
	free(admit_cache.quotas);
	memset(&admit_cache, 0, sizeof admit_cache);
}

/* admit_flush_cache - read the caps and client_quotas tables again at the next need */
void admit_flush_cache(void)
{
	admit_cache_clear();
}

/* admit_cache_read - read all rows of table statement Q (channel, client, n) into *V, *NV */
static int admit_cache_read(struct db *db, int q, struct admit_limit **v, size_t *nv)
{
	struct admit_limit *l;
	const char *chn, *cl;
	size_t cap = 0;
	int rc, ch;

	if ((rc = db_exec(db, q, DB_NOARGS)) != 0)
		return rc;
	while ((rc = db_fetch(db, q)) == 1) {
		chn = db_col_str(db, q, 0, NULL);
		cl = db_col_str(db, q, 1, NULL);
		if (chn == NULL || cl == NULL || (ch = codec_channel_parse(chn, strlen(chn))) < 0)
			continue;
		if (*nv == cap) {
			cap = cap ? 2 * cap : 16;
			if ((l = realloc(*v, cap * sizeof *l)) == NULL)
				goto oom;
			*v = l;
		}
		l = &(*v)[*nv];
		l->ch = ch;
		l->n = db_col_i64(db, q, 2);
		if ((l->client = strdup(cl)) == NULL)
			goto oom;
		(*nv)++;
	}
	return rc;
oom:
	log_error("op=admit_cache err=\"out of memory\"");
	return DB_ERR;
}

/* admit_cache_load - make the cache at most ADMIT_CACHE_SEC old */
static int admit_cache_load(struct db *db, int base)
{
	double t = admit_mono();
	int rc;

	if (admit_cache.valid && t - admit_cache.loaded < ADMIT_CACHE_SEC)
		return 0;
	admit_cache_clear();
	if ((rc = admit_cache_read(db, base + Q_CAPS, &admit_cache.caps, &admit_cache.ncaps)) != 0 ||
	    (rc = admit_cache_read(db, base + Q_QUOTAS, &admit_cache.quotas,
	    &admit_cache.nquotas)) != 0) {
		admit_cache_clear();
		return rc;
	}
	admit_cache.valid = true;
	admit_cache.loaded = t;
	return 0;
}

/* admit_limit_find - the row of V for (CH, CLIENT), or NULL */
static const struct admit_limit *admit_limit_find(const struct admit_limit *v, size_t nv, int ch,
	const char *client)
{
	size_t i;

	for (i = 0; i < nv; i++)
		if (v[i].ch == ch && strcmp(v[i].client, client) == 0)
			return &v[i];
	return NULL;
}

/* admit_cap_value - the daily cap for CH of CLIENT's messages (0: none): caps table for the
 * client, the client's config, caps table for all clients, the config */
static int64_t admit_cap_value(const struct conf *c, const char *client, int ch)
{
	const struct admit_limit *l;
	const struct conf_client *cc;

	if (client != NULL) {
		if ((l = admit_limit_find(admit_cache.caps, admit_cache.ncaps, ch, client)) != NULL)
			return l->n;
		if ((cc = conf_client_find(c, client)) != NULL && cc->caps.n[ch] >= 0)
			return cc->caps.n[ch];
	}
	if ((l = admit_limit_find(admit_cache.caps, admit_cache.ncaps, ch, "")) != NULL)
		return l->n;
	return c->caps.n[ch];
}

/* admit_quota_value - CLIENT's daily quota for CH (0: none): client_quotas, else its config */
static int64_t admit_quota_value(const struct conf *c, const char *client, int ch)
{
	const struct admit_limit *l;
	const struct conf_client *cc;

	if (client == NULL)
		return 0;
	if ((l = admit_limit_find(admit_cache.quotas, admit_cache.nquotas, ch, client)) != NULL)
		return l->n;
	if ((cc = conf_client_find(c, client)) != NULL)
		return cc->quotas.n[ch];
	return 0;
}

/* admit_slot - inside the open transaction, hold a slot of (SCOPE, SUBJECT, CH, DAY) under
 * LIMIT for TXID: *GOT true when held (already, or counted now), false when full */
static int admit_slot(struct db *db, int base, const char *txid, const char *ch, const char *scope,
	const char *subject, const char *day, int64_t limit, bool *got)
{
	uint64_t aff, id;
	int rc;

	*got = false;
	rc = db_exec(db, base + Q_RES_PUT, DB_ARGS(db_str(txid), db_str(ch), db_str(scope),
	    db_str(subject), db_str(day)));
	if (rc == DB_EDUP) {
		*got = true;    /* this transaction holds its slot already */
		return 0;
	}
	if (rc != 0)
		return rc;
	rc = db_exec(db, base + Q_COUNT, DB_ARGS(db_str(scope), db_str(subject), db_str(ch),
	    db_str(day), db_i64(limit)));
	if (rc != 0)
		return rc;
	aff = db_affected(db, base + Q_COUNT);
	id = db_insert_id(db, base + Q_COUNT);
	/* 2: updated (slot ID); 1 without an insert id: inserted (slot 1); else unchanged: full */
	*got = aff == 2 || (aff == 1 && id == 0);
	return 0;
}

/* admit_full - the SCOPE slot of N is full: drop the reservation row admit_slot inserted for it
 * (not counted), give back the cap slot when the quota is the full one (N ends), and turn A into
 * what that means (nothing left pending) */
static int admit_full(struct db *db, int base, const struct note *n, const char *ch,
	const char *scope, struct admit *a)
{
	const struct admit_hold *h = &a->hold;
	bool quota = strcmp(scope, "quota") == 0;
	int rc;

	if ((rc = db_exec(db, base + Q_RES_DEL, DB_ARGS(db_str(n->txid), db_str(ch),
	    db_str(scope)))) != 0 ||
	    (quota && (rc = admit_release(db, base, n->txid, (int)n->channel)) != 0))
		return rc;
	a->hold.pending = false;
	if (quota) {
		if ((rc = admit_final(a, n, "rate_limited", "client_quota")) != 0)
			return rc;
		if (json_object_object_add(a->detail, "quota", json_object_new_int64(h->quota)) != 0)
			return admit_oom(n);
		return 0;
	}
	if (h->cap_defers)
		return admit_defer(a, n, h->cap_until, "daily_cap");
	if ((rc = admit_final(a, n, "rate_limited", "daily_cap")) != 0)
		return rc;
	if (json_object_object_add(a->detail, "cap", json_object_new_int64(h->cap)) != 0)
		return admit_oom(n);
	return 0;
}

int admit_take(struct db *db, int base, const struct note *n, struct admit *a,
	enum admit_step step)
{
	const struct admit_hold *h = &a->hold;
	const char *ch = codec_channel_name(n->channel);
	bool got;
	int rc;

	if (!h->pending || a->verdict != ADMIT_GO)
		return 0;
	if (ch == NULL)
		return DB_ERR;
	if (step == ADMIT_TAKE_CAP) {
		if (h->cap <= 0)
			return 0;
		if ((rc = admit_slot(db, base, n->txid, ch, "cap", h->rkey, h->cday, h->cap, &got)) != 0)
			return rc;
		return got ? 0 : admit_full(db, base, n, ch, "cap", a);
	}
	if (h->quota > 0) {
		if ((rc = admit_slot(db, base, n->txid, ch, "quota", n->client_id, h->qday, h->quota,
		    &got)) != 0)
			return rc;
		if (!got)
			return admit_full(db, base, n, ch, "quota", a);
	}
	a->reserved = true;
	return 0;
}

int admit_counter_cmp(const struct note *x, const struct admit *xa, const struct note *y,
	const struct admit *ya, enum admit_step step)
{
	int d;

	/* (scope, subject, channel, day): one worker, one channel, one scope a step */
	if (step == ADMIT_TAKE_CAP)
		d = strcmp(xa->hold.rkey, ya->hold.rkey);
	else
		d = strcmp(x->client_id != NULL ? x->client_id : "", y->client_id != NULL ?
		    y->client_id : "");
	if (d == 0)
		d = (int)x->channel - (int)y->channel;
	if (d == 0)
		d = strcmp(step == ADMIT_TAKE_CAP ? xa->hold.cday : xa->hold.qday,
		    step == ADMIT_TAKE_CAP ? ya->hold.cday : ya->hold.qday);
	return d;
}

/* admit_limits - step 6 for N: the cap and quota slots it needs, left pending for admit_take */
static int admit_limits(struct db *db, int base, const struct conf *c, const struct note *n,
	const char *rkey, int64_t now, struct admit *a)
{
	const struct conf_category *cat = conf_category_find(c, n->category);
	struct admit_hold *h = &a->hold;
	int rc;

	if ((rc = admit_cache_load(db, base)) != 0)
		return rc;
	h->cap = cat != NULL && cat->cap_exempt ? 0 :
	    admit_cap_value(c, n->client_id, (int)n->channel);
	h->quota = admit_quota_value(c, n->client_id, (int)n->channel);
	if (h->cap <= 0 && h->quota <= 0)
		return 0;
	if (tzday_date(a->timezone, now, h->cday) < 0)
		admit_utc_day(now, h->cday);
	admit_utc_day(now, h->qday);
	h->cap_defers = cat != NULL && cat->cap_policy == CONF_CAP_DEFER;
	if (h->cap_defers && tzday_next_midnight(a->timezone, now, &h->cap_until) < 0)
		h->cap_until = now - ((now % (86400 * ADMIT_USEC)) + 86400 * ADMIT_USEC) %
		    (86400 * ADMIT_USEC) + 86400 * ADMIT_USEC;
	snprintf(h->rkey, sizeof h->rkey, "%s", rkey);
	h->pending = true;
	return 0;
}

/* ---- the steps in order ---------------------------------------------------------------------- */

/* admit_recipient - steps 3-5 for a user (send_at included), step 3 for a `to` recipient */
static int admit_recipient(struct db *db, int base, const struct conf *c, const struct note *n,
	const char *ch, bool to_suppressed, int64_t now, struct admit *a)
{
	const struct conf_category *cat = conf_category_find(c, n->category);
	bool transactional = strcmp(n->category, "transactional") == 0;
	struct admit_user u;
	char keys[3][80];
	int64_t until;
	size_t nsupp;
	int rc;

	if (n->user_id == NULL)
		return admit_to(n, to_suppressed, a);
	snprintf(keys[0], sizeof keys[0], "%s", ch);
	snprintf(keys[1], sizeof keys[1], "%s", n->category);
	snprintf(keys[2], sizeof keys[2], "%s.%s", n->category, ch);
	if ((rc = admit_user(db, base, n, ch, keys, a, &u)) != 0)
		return rc;
	if (!u.found)
		return admit_final(a, n, "invalid_user", "invalid_user");
	if (n->channel == CODEC_CH_PUSH) {
		if ((rc = admit_devices(db, base, n, a, &nsupp)) != 0)
			return rc;
		if (a->ndevices == 0)
			return admit_final(a, n, nsupp ? "suppressed" : "no_address",
			    nsupp ? "suppressed" : "no_address");
	} else if (a->address == NULL) {
		return admit_final(a, n, "no_address", "no_address");
	} else if (u.suppressed) {
		return admit_final(a, n, "suppressed", "suppressed");
	}
	if (!transactional && !admit_prefs_on(c, keys, u.pref))
		return admit_final(a, n, "opt_out", "opt_out");
	if (!transactional && u.paused_until > now)
		return admit_final(a, n, "paused", "paused");
	/* send_at first: quiet hours are judged at send_at, so one deferral where one is enough */
	if (n->send_at > now)
		return admit_defer(a, n, n->send_at, "send_at");
	if (u.quiet && c->quiet_hours.channels[n->channel] && (cat == NULL || cat->quiet_hours) &&
	    n->priority < ADMIT_QUIET_PRIORITY) {
		rc = admit_quiet_end(a->timezone, now, u.qstart, u.qend, &until);
		if (rc < 0)
			log_warnx("txid=%s user_id=%s zone=%s err=\"local time failed\""
			    " note=\"quiet hours not applied\"", n->txid, n->user_id, a->timezone);
		else if (rc > 0)
			return admit_defer(a, n, until, "quiet_hours");
	}
	return 0;
}

/* admit_note - run §4 steps 1-6 for N at NOW into *OUT */
int admit_note(struct db *db, int base, const struct conf *c, const struct note *n, int64_t now,
	struct admit *out)
{
	const char *ch = codec_channel_name(n->channel);
	char rkey[ADMIT_RKEY_MAX];
	bool to_supp = false;
	int rc;

	memset(out, 0, sizeof *out);
	out->verdict = ADMIT_GO;
	if (ch == NULL || n->category == NULL) {
		log_error("txid=%s op=admit err=\"note without channel or category\"", n->txid);
		return DB_ERR;
	}
	if ((rc = admit_state(db, base, n, ch, now, out, &to_supp)) != 0 || out->verdict != ADMIT_GO)
		return rc;
	if (admit_rkey(n, rkey) != 0) {
		if (n->user_id != NULL)
			return admit_final(out, n, "invalid_user", "invalid_user");
		snprintf(out->timezone, sizeof out->timezone, "UTC");
		return admit_final(out, n, "no_address", "no_address");
	}
	if (n->idempotency_key != NULL &&
	    ((rc = admit_claim(db, base, c, n, rkey, now, out)) != 0 || out->verdict != ADMIT_GO))
		return rc;
	if ((rc = admit_recipient(db, base, c, n, ch, to_supp, now, out)) != 0 ||
	    out->verdict != ADMIT_GO)
		return rc;
	if (n->send_at > now)
		return admit_defer(out, n, n->send_at, "send_at");
	return admit_limits(db, base, c, n, rkey, now, out);
}

/* admit_free - release what admit_note allocated in A */
void admit_free(struct admit *a)
{
	if (a == NULL)
		return;
	json_object_put(a->detail);
	json_object_put(a->profile);
	free(a->address);
	free(a->devices);
	a->detail = a->profile = NULL;
	a->address = NULL;
	a->devices = NULL;
	a->ndevices = 0;
}

/* admit_release - TXID on CH ended without delivery: delete each reservation and, only when that
 * deleted it, give its slot back */
int admit_release(struct db *db, int base, const char *txid, int ch)
{
	struct { char scope[8], subject[ADMIT_RKEY_MAX], day[11]; } r[4];
	const char *chn = codec_channel_name((enum codec_channel)ch), *s;
	size_t nr = 0, i;
	int rc;

	memset(r, 0, sizeof r);
	if (chn == NULL)
		return DB_ERR;
	if ((rc = db_exec(db, base + Q_RES_LIST, DB_ARGS(db_str(txid), db_str(chn)))) != 0)
		return rc;
	while (nr < 4 && (rc = db_fetch(db, base + Q_RES_LIST)) == 1) {
		if ((s = db_col_str(db, base + Q_RES_LIST, 0, NULL)) == NULL)
			continue;
		snprintf(r[nr].scope, sizeof r[nr].scope, "%s", s);
		s = db_col_str(db, base + Q_RES_LIST, 1, NULL);
		snprintf(r[nr].subject, sizeof r[nr].subject, "%s", s != NULL ? s : "");
		s = db_col_str(db, base + Q_RES_LIST, 2, NULL);
		snprintf(r[nr].day, sizeof r[nr].day, "%s", s != NULL ? s : "");
		nr++;
	}
	if (rc < 0)
		return rc;
	for (i = 0; i < nr; i++) {
		rc = db_exec(db, base + Q_RES_DEL, DB_ARGS(db_str(txid), db_str(chn),
		    db_str(r[i].scope)));
		if (rc != 0)
			return rc;
		if (db_affected(db, base + Q_RES_DEL) != 1)
			continue;       /* given back already */
		rc = db_exec(db, base + Q_UNCOUNT, DB_ARGS(db_str(r[i].scope), db_str(r[i].subject),
		    db_str(chn), db_str(r[i].day)));
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* admit_keep - TXID on CH was delivered: its slots stay used, the reservation rows go */
int admit_keep(struct db *db, int base, const char *txid, int ch)
{
	const char *chn = codec_channel_name((enum codec_channel)ch);

	if (chn == NULL)
		return DB_ERR;
	return db_exec(db, base + Q_RES_DROP, DB_ARGS(db_str(txid), db_str(chn)));
}
