/* admit - workers/admit against a real server (TAP): every verdict of §4 steps 1-6, the
 * reservation's give-back, and the cap under four concurrent processes. Needs HERALD_MYSQL_URL
 * on a migrated database; every row it writes carries this run's random id, and the rows of
 * the shared tables it touches (caps, client_quotas) are removed at the end.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "../unit/tap.h"
#include "admit.h"
#include "codec.h"
#include "conf.h"
#include "db.h"
#include "log.h"
#include "txid.h"
#include "url.h"

#define USEC 1000000LL
#define DAY (86400 * USEC)

enum {
	T_USER, T_DEVICE, T_PREF, T_QUIET, T_SUPP, T_CANCEL, T_NOTIF, T_CAP, T_CAP_DEL, T_QUOTA,
	T_QUOTA_DEL, T_CLAIM_AGE, T_RES_N, T_COUNTER, T_RES_SUBJECT, T_KILL,
	T__N
};

static const struct db_stmt t_stmts[T__N] = {
	[T_USER] = { "t_user", "INSERT INTO users (user_id, first_name, last_name, email, phone,"
		" timezone, locale, paused_until, webhook_url) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)" },
	[T_DEVICE] = { "t_device", "INSERT INTO devices (user_id, platform, token) VALUES (?, ?, ?)" },
	[T_PREF] = { "t_pref", "INSERT INTO preferences (user_id, pref_key, enabled) VALUES (?, ?, ?)" },
	[T_QUIET] = { "t_quiet", "INSERT INTO quiet_hours (user_id, start_minute, end_minute)"
		" VALUES (?, ?, ?)" },
	[T_SUPP] = { "t_supp", "INSERT INTO suppressions (address, channel, reason)"
		" VALUES (?, ?, 'bounce')" },
	[T_CANCEL] = { "t_cancel", "INSERT INTO cancellations (kind, target) VALUES (?, ?)" },
	[T_NOTIF] = { "t_notif", "INSERT INTO notifications (transaction_id, channel, status,"
		" client_id, category, priority) VALUES (?, ?, ?, 'app', 'marketing', 4)" },
	[T_CAP] = { "t_cap", "INSERT INTO caps (channel, client_id, daily_cap) VALUES (?, ?, ?)" },
	[T_CAP_DEL] = { "t_cap_del", "DELETE FROM caps WHERE channel = ? AND client_id = ?" },
	[T_QUOTA] = { "t_quota", "INSERT INTO client_quotas (client_id, channel, daily_quota)"
		" VALUES (?, ?, ?)" },
	[T_QUOTA_DEL] = { "t_quota_del", "DELETE FROM client_quotas WHERE client_id = ?" },
	[T_CLAIM_AGE] = { "t_claim_age", "UPDATE idempotency_claims SET expires_at = ?"
		" WHERE transaction_id = ?" },
	[T_RES_N] = { "t_res_n", "SELECT COUNT(*) FROM counter_reservations"
		" WHERE transaction_id = ? AND channel = ?" },
	[T_COUNTER] = { "t_counter", "SELECT COALESCE(SUM(n), 0) FROM daily_counters"
		" WHERE scope = ? AND subject = ? AND channel = ?" },
	[T_RES_SUBJECT] = { "t_res_subject", "SELECT COUNT(*) FROM counter_reservations"
		" WHERE scope = 'cap' AND subject = ?" },
	[T_KILL] = { "t_kill", "KILL CONNECTION ?" },
};

static struct db *db, *tdb;          /* admit's connection (admit_stmts only), the test's */
static struct url dburl;
static struct conf cf;
static char run[12];                 /* this run's id: in every user, key, client, batch */
static struct admit last;            /* the verdict of the latest t_admit */

/* t_now - the wall clock in microseconds */
static int64_t t_now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * USEC + tv.tv_usec;
}

/* t_id - NAME made unique to this run ("NAME-RUN") in a static ring of buffers */
static const char *t_id(const char *name)
{
	static char ring[16][256];
	static int i;
	char *b = ring[i++ % 16];

	snprintf(b, sizeof ring[0], "%s-%s", name, run);
	return b;
}

/* t_sql - run one test statement; fails the run loudly when it fails */
static void t_sql(int q, const struct db_arg *args, size_t nargs)
{
	if (db_exec(tdb, q, args, nargs) != 0) {
		printf("Bail out! setup statement %s failed: %s\n", t_stmts[q].name, db_error(tdb));
		exit(1);
	}
}

/* t_count - one integer from test query Q */
static long long t_count(int q, const struct db_arg *args, size_t nargs)
{
	t_sql(q, args, nargs);
	return db_fetch(tdb, q) == 1 ? (long long)db_col_i64(tdb, q, 0) : -1;
}

/* t_user - add user ID with the given columns (NULL: SQL NULL) */
static void t_user(const char *id, const char *first, const char *email, const char *phone,
    const char *tz, int64_t paused_until, const char *webhook)
{
	t_sql(T_USER, DB_ARGS(db_str(id), db_str(first), db_str(first ? "Tester" : NULL),
	    db_str(email), db_str(phone), db_str(tz ? tz : "UTC"), db_str(first ? "en" : NULL),
	    paused_until ? db_time(paused_until) : db_null(), db_str(webhook)));
}

/* t_pref - set preference KEY of USER */
static void t_pref(const char *user, const char *key, int on)
{
	t_sql(T_PREF, DB_ARGS(db_str(user), db_str(key), db_i64(on)));
}

/* t_note - a fresh note for USER (NULL: a `to` note, address set by the caller) on CH */
static struct note *t_note(const char *user, int ch, const char *category)
{
	struct note *n = calloc(1, sizeof *n);

	if (n == NULL || txid_new(n->txid) != 0) {
		printf("Bail out! out of memory or entropy\n");
		exit(1);
	}
	n->channel = (enum codec_channel)ch;
	n->user_id = user ? strdup(user) : NULL;
	n->content = json_object_new_object();
	n->category = strdup(category);
	n->priority = 4;
	n->client_id = strdup("app");
	n->attempt = 1;
	return n;
}

/* t_set - replace the string *P with S (NULL allowed) */
static void t_set(char **p, const char *s)
{
	free(*p);
	*p = s ? strdup(s) : NULL;
}

/* t_admit_on - admit N at NOW into *A on D and take its slots in a transaction of their own, as
 * the worker does in the one that records the status (a deadlock or lost connection is
 * repeated, as the worker does); 0 or the DB_ error */
static int t_admit_on(struct db *d, const struct note *n, int64_t now, struct admit *a)
{
	int rc = DB_ERR, i;

	for (i = 0; i < 20; i++) {
		admit_free(a);
		if ((rc = admit_note(d, 0, &cf, n, now, a)) == DB_ERETRY)
			continue;
		if (rc != 0 || !a->hold.pending)
			break;
		if ((rc = db_begin(d)) == 0 && (rc = admit_take(d, 0, n, a, ADMIT_TAKE_CAP)) == 0 &&
		    (rc = admit_take(d, 0, n, a, ADMIT_TAKE_QUOTA)) == 0 && (rc = db_commit(d)) == 0)
			break;
		db_rollback(d);
		if (rc != DB_ERETRY)
			break;
	}
	return rc;
}

/* t_admit - t_admit_on the test's connection into `last` */
static int t_admit(const struct note *n, int64_t now)
{
	return t_admit_on(db, n, now, &last);
}

/* t_detail - the string member KEY of last.detail, or NULL */
static const char *t_detail(const char *key)
{
	struct json_object *v;

	if (last.detail == NULL || !json_object_object_get_ex(last.detail, key, &v))
		return NULL;
	return json_object_get_string(v);
}

/* t_expect - admit N at NOW and check the verdict V (and STATUS, and the detail's reason) */
static int t_expect(const struct note *n, int64_t now, enum admit_verdict v, const char *status,
    const char *reason, const char *desc)
{
	static const char *const names[] = { "SKIP", "FINAL", "DEFER", "GO" };
	int rc = t_admit(n, now), good;

	good = rc == 0 && last.verdict == v &&
	    (status == NULL || (last.status != NULL && strcmp(last.status, status) == 0)) &&
	    (reason == NULL || (t_detail("reason") != NULL && strcmp(t_detail("reason"), reason) == 0));
	ok(good, "%s", desc);
	if (!good)
		diag("rc=%d verdict=%s status=%s detail=%s", rc, names[last.verdict],
		    last.status ? last.status : "-",
		    last.detail ? json_object_to_json_string(last.detail) : "-");
	return good;
}

/* t_release - give TXID's slots on CH back in a transaction, as the caller does */
static int t_release(const char *txid, int ch)
{
	int rc;

	if ((rc = db_begin(db)) != 0)
		return rc;
	if ((rc = admit_release(db, 0, txid, ch)) != 0) {
		db_rollback(db);
		return rc;
	}
	return db_commit(db);
}

/* t_keep - keep TXID's slots on CH in a transaction */
static int t_keep(const char *txid, int ch)
{
	int rc;

	if ((rc = db_begin(db)) != 0)
		return rc;
	if ((rc = admit_keep(db, 0, txid, ch)) != 0) {
		db_rollback(db);
		return rc;
	}
	return db_commit(db);
}

/* t_res_n - reservation rows of TXID on CH */
static long long t_res_n(const char *txid, int ch)
{
	return t_count(T_RES_N, DB_ARGS(db_str(txid), db_str(codec_channel_name(ch))));
}

/* t_counter - the cap counter of recipient key RKEY on CH (all days) */
static long long t_counter(const char *scope, const char *rkey, int ch)
{
	return t_count(T_COUNTER, DB_ARGS(db_str(scope), db_str(rkey), db_str(codec_channel_name(ch))));
}

/* t_conf - write this run's config file and load it */
static void t_conf(void)
{
	char dir[] = "/tmp/herald-admit-XXXXXX", path[64];
	struct conf_error err;
	FILE *f;

	if (mkdtemp(dir) == NULL) {
		printf("Bail out! mkdtemp failed\n");
		exit(1);
	}
	snprintf(path, sizeof path, "%s/herald.conf", dir);
	if ((f = fopen(path, "w")) == NULL) {
		printf("Bail out! cannot write %s\n", path);
		exit(1);
	}
	fprintf(f,
	    "categories = { promo = { cap_policy = \"defer\"; }; digest = { quiet_hours = false; }; };\n"
	    "preferences = { defaults = { reminders = false; notifications = { webhook = false; }; }; };\n"
	    "quiet_hours = { channels = [ \"sms\", \"push\" ]; };\n"
	    "idempotency = { window = 3600; };\n"
	    "caps = { email = 3; sms = 2; push = 5; webhook = 0; };\n"
	    "clients = {\n"
	    "  c%s = { caps = { email = 1; }; };\n"
	    "  q%s = { quotas = { sms = 2; }; };\n"
	    "};\n", run, run);
	fclose(f);
	if (conf_load(path, &cf, &err) != 0) {
		printf("Bail out! conf: %s\n", err.msg);
		exit(1);
	}
	unlink(path);
	rmdir(dir);
}

/* t_status - step 1: final, cancelled (transaction, batch), expired */
static void t_status(const char *u, int64_t now)
{
	struct note *n = t_note(u, CODEC_CH_EMAIL, "transactional");

	t_sql(T_NOTIF, DB_ARGS(db_str(n->txid), db_str("email"), db_str("done")));
	t_expect(n, now, ADMIT_SKIP, NULL, NULL, "already final: SKIP");
	is_str(last.current, "done", "current holds the final status");
	n->channel = CODEC_CH_SMS;
	t_sql(T_NOTIF, DB_ARGS(db_str(n->txid), db_str("sms"), db_str("deferred")));
	t_expect(n, now, ADMIT_GO, NULL, NULL, "deferred and due: GO");
	is_str(last.current, "deferred", "current is deferred");
	codec_note_free(n);

	n = t_note(u, CODEC_CH_EMAIL, "transactional");
	t_sql(T_CANCEL, DB_ARGS(db_str("transaction"), db_str(n->txid)));
	t_expect(n, now, ADMIT_FINAL, "cancelled", NULL, "cancelled transaction");
	codec_note_free(n);
	n = t_note(u, CODEC_CH_EMAIL, "transactional");
	t_set(&n->batch_id, t_id("batch"));
	t_sql(T_CANCEL, DB_ARGS(db_str("batch"), db_str(n->batch_id)));
	t_expect(n, now, ADMIT_FINAL, "cancelled", NULL, "cancelled batch");
	t_set(&n->batch_id, t_id("other-batch"));
	t_expect(n, now, ADMIT_GO, NULL, NULL, "another batch goes");
	n->expires_at = now - USEC;
	t_expect(n, now, ADMIT_FINAL, "expired", NULL, "past expires_at: expired");
	n->expires_at = now + USEC;
	t_expect(n, now, ADMIT_GO, NULL, NULL, "before expires_at: GO");
	codec_note_free(n);
}

/* t_idempotency - step 2: duplicate, own claim, across channels, per client, taken over */
static void t_idempotency(const char *u, int64_t now)
{
	struct note *a = t_note(u, CODEC_CH_EMAIL, "transactional");
	struct note *b = t_note(u, CODEC_CH_EMAIL, "transactional");
	struct note *c = t_note(u, CODEC_CH_EMAIL, "transactional");

	t_set(&a->idempotency_key, t_id("key"));
	t_set(&b->idempotency_key, t_id("key"));
	t_set(&c->idempotency_key, t_id("key"));
	t_expect(a, now, ADMIT_GO, NULL, NULL, "first use of a key: GO");
	t_expect(b, now, ADMIT_FINAL, "duplicate", "duplicate", "second transaction: duplicate");
	is_str(t_detail("first_transaction_id"), a->txid, "detail names the first transaction");
	t_expect(a, now, ADMIT_GO, NULL, NULL, "the first transaction again: its own claim");
	a->channel = CODEC_CH_SMS;
	t_expect(a, now, ADMIT_GO, NULL, NULL, "the first transaction on another channel: GO");
	b->channel = CODEC_CH_SMS;
	t_expect(b, now, ADMIT_FINAL, "duplicate", NULL, "the second on another channel: duplicate");
	t_set(&b->client_id, "other-client");
	t_expect(b, now, ADMIT_GO, NULL, NULL, "the same key of another client: GO");
	t_sql(T_CLAIM_AGE, DB_ARGS(db_time(now - USEC), db_str(a->txid)));
	t_expect(c, now, ADMIT_GO, NULL, NULL, "an expired claim is taken over");
	t_expect(a, now, ADMIT_FINAL, "duplicate", NULL, "then the old owner is the duplicate");
	is_str(t_detail("first_transaction_id"), c->txid, "naming the new owner");
	codec_note_free(a);
	codec_note_free(b);
	codec_note_free(c);
}

/* t_recipient - step 3: invalid_user, no_address, suppressed, profile, devices */
static void t_recipient(const char *u, int64_t now)
{
	const char *bare = t_id("bare"), *supp = t_id("supp");
	struct json_object *v;
	struct note *n;
	int ch;

	n = t_note(t_id("nobody"), CODEC_CH_EMAIL, "transactional");
	t_expect(n, now, ADMIT_FINAL, "invalid_user", NULL, "unknown user: invalid_user");
	codec_note_free(n);

	t_user(bare, NULL, NULL, NULL, NULL, 0, NULL);
	for (ch = 0; ch < CODEC_CH_COUNT; ch++) {
		n = t_note(bare, ch, "transactional");
		t_expect(n, now, ADMIT_FINAL, "no_address", NULL, "no address");
		diag("(channel %s)", codec_channel_name(ch));
		codec_note_free(n);
	}

	t_user(supp, "Sup", t_id("supp@example.org"), NULL, NULL, 0, NULL);
	t_sql(T_SUPP, DB_ARGS(db_str(t_id("supp@example.org")), db_str("email")));
	t_sql(T_DEVICE, DB_ARGS(db_str(supp), db_str("ios"), db_str(t_id("tok-supp"))));
	t_sql(T_SUPP, DB_ARGS(db_str(t_id("tok-supp")), db_str("push")));
	n = t_note(supp, CODEC_CH_EMAIL, "transactional");
	t_expect(n, now, ADMIT_FINAL, "suppressed", NULL, "suppressed email address");
	n->channel = CODEC_CH_PUSH;
	t_expect(n, now, ADMIT_FINAL, "suppressed", NULL, "the only device suppressed: suppressed");
	codec_note_free(n);

	n = t_note(u, CODEC_CH_PUSH, "transactional");
	t_expect(n, now, ADMIT_GO, NULL, NULL, "push with one of two tokens suppressed: GO");
	ok(last.ndevices == 1 && strcmp(last.devices[0].token, t_id("tok-good")) == 0 &&
	    strcmp(last.devices[0].platform, "android") == 0 && last.address == NULL,
	    "only the other device is left");
	n->channel = CODEC_CH_EMAIL;
	t_expect(n, now, ADMIT_GO, NULL, NULL, "email to the user: GO");
	is_str(last.address, t_id("main@example.org"), "address is the user's email");
	ok(json_object_object_get_ex(last.profile, "first_name", &v) &&
	    strcmp(json_object_get_string(v), "Ada") == 0 &&
	    json_object_object_get_ex(last.profile, "user_id", &v) &&
	    strcmp(json_object_get_string(v), u) == 0 &&
	    json_object_object_get_ex(last.profile, "phone", &v) &&
	    json_object_object_get_ex(last.profile, "locale", &v) &&
	    json_object_object_get_ex(last.profile, "timezone", &v),
	    "profile holds user_id, names, phone, locale, timezone");
	ok(strcmp(last.timezone, "Europe/London") == 0 && strcmp(last.locale, "en") == 0,
	    "timezone and locale are the user's");
	n->channel = CODEC_CH_SMS;
	t_expect(n, now, ADMIT_GO, NULL, NULL, "sms: GO");
	is_str(last.address, "+441632960961", "address is the phone");
	n->channel = CODEC_CH_WEBHOOK;
	t_expect(n, now, ADMIT_GO, NULL, NULL, "webhook: GO");
	is_str(last.address, "https://hooks.example.org/h", "address is the webhook URL");
	codec_note_free(n);

	n = t_note(bare, CODEC_CH_EMAIL, "transactional");
	t_expect(n, now, ADMIT_FINAL, "no_address", NULL, "no email: no_address");
	ok(last.profile != NULL && !json_object_object_get_ex(last.profile, "first_name", NULL),
	    "a NULL column is left out of the profile");
	codec_note_free(n);

	n = t_note(NULL, CODEC_CH_EMAIL, "transactional");
	t_set(&n->address, t_id("supp@example.org"));
	t_expect(n, now, ADMIT_FINAL, "suppressed", NULL, "`to` address suppressed");
	{
		char up[512];
		size_t i;

		snprintf(up, sizeof up, "%s", t_id("supp@example.org"));
		for (i = 0; up[i]; i++)
			if (up[i] >= 'a' && up[i] <= 'z')
				up[i] = (char)(up[i] - 'a' + 'A');
		t_set(&n->address, up);
		t_expect(n, now, ADMIT_FINAL, "suppressed", NULL,
		    "`to` address suppressed, written in upper case");
		t_user(t_id("suppup"), "Up", up, NULL, NULL, 0, NULL);
		n->user_id = strdup(t_id("suppup"));
		t_set(&n->address, NULL);
		t_expect(n, now, ADMIT_FINAL, "suppressed", NULL,
		    "a user's email suppressed, stored in upper case");
		free(n->user_id);
		n->user_id = NULL;
	}
	t_set(&n->address, NULL);
	t_expect(n, now, ADMIT_FINAL, "no_address", NULL, "`to` without an address: no_address");
	codec_note_free(n);
}

/* t_prefs - step 4: opt_out by each key, precedence, config defaults, pause */
static void t_prefs(const char *u, int64_t now)
{
	const char *p1 = t_id("p1"), *p2 = t_id("p2"), *p3 = t_id("p3"), *p4 = t_id("p4");
	const char *p5 = t_id("p5"), *pz = t_id("paused"), *pp = t_id("pastpause");
	struct note *n;

	t_user(p1, "P", t_id("p1@example.org"), "+15550000001", NULL, 0, NULL);
	t_pref(p1, "email", 0);
	t_user(p2, "P", t_id("p2@example.org"), "+15550000002", NULL, 0, NULL);
	t_pref(p2, "marketing", 0);
	t_user(p3, "P", t_id("p3@example.org"), NULL, NULL, 0, NULL);
	t_pref(p3, "email", 0);
	t_pref(p3, "marketing.email", 1);
	t_user(p4, "P", t_id("p4@example.org"), "+15550000004", NULL, 0, NULL);
	t_pref(p4, "marketing.sms", 0);
	t_user(p5, "P", t_id("p5@example.org"), NULL, NULL, 0, "https://hooks.example.org/p5");
	t_pref(p5, "reminders", 1);
	t_pref(p5, "notifications.webhook", 1);
	t_user(pz, "P", t_id("pz@example.org"), NULL, NULL, now + DAY, NULL);
	t_user(pp, "P", t_id("pp@example.org"), NULL, NULL, now - USEC, NULL);

	n = t_note(p1, CODEC_CH_EMAIL, "marketing");
	t_expect(n, now, ADMIT_FINAL, "opt_out", NULL, "CHANNEL off: opt_out");
	t_set(&n->category, "transactional");
	t_expect(n, now, ADMIT_GO, NULL, NULL, "transactional ignores the opt-out");
	n->channel = CODEC_CH_SMS;
	t_set(&n->category, "marketing");
	t_expect(n, now, ADMIT_GO, NULL, NULL, "another channel of that user: GO");
	t_release(n->txid, n->channel);
	codec_note_free(n);

	n = t_note(p2, CODEC_CH_EMAIL, "marketing");
	t_expect(n, now, ADMIT_FINAL, "opt_out", NULL, "CATEGORY off: opt_out");
	t_set(&n->category, "notifications");
	t_expect(n, now, ADMIT_GO, NULL, NULL, "another category: GO");
	t_release(n->txid, n->channel);
	codec_note_free(n);

	n = t_note(p3, CODEC_CH_EMAIL, "marketing");
	t_expect(n, now, ADMIT_GO, NULL, NULL, "CATEGORY.CHANNEL on wins over CHANNEL off");
	t_release(n->txid, n->channel);
	t_set(&n->category, "notifications");
	t_expect(n, now, ADMIT_FINAL, "opt_out", NULL, "CHANNEL off for other categories");
	codec_note_free(n);

	n = t_note(p4, CODEC_CH_SMS, "marketing");
	t_expect(n, now, ADMIT_FINAL, "opt_out", NULL, "CATEGORY.CHANNEL off: opt_out");
	n->channel = CODEC_CH_EMAIL;
	t_expect(n, now, ADMIT_GO, NULL, NULL, "the category on another channel: GO");
	t_release(n->txid, n->channel);
	codec_note_free(n);

	n = t_note(u, CODEC_CH_EMAIL, "reminders");
	t_expect(n, now, ADMIT_FINAL, "opt_out", NULL, "config default reminders = false");
	t_set(&n->user_id, p5);
	t_expect(n, now, ADMIT_GO, NULL, NULL, "the user's own key wins over the default");
	t_release(n->txid, n->channel);
	codec_note_free(n);
	n = t_note(u, CODEC_CH_WEBHOOK, "notifications");
	t_expect(n, now, ADMIT_FINAL, "opt_out", NULL, "config default notifications.webhook = false");
	t_set(&n->user_id, p5);
	t_expect(n, now, ADMIT_GO, NULL, NULL, "the user's notifications.webhook = true wins");
	codec_note_free(n);

	n = t_note(pz, CODEC_CH_EMAIL, "marketing");
	t_expect(n, now, ADMIT_FINAL, "paused", NULL, "paused user: paused");
	t_set(&n->category, "transactional");
	t_expect(n, now, ADMIT_GO, NULL, NULL, "transactional ignores the pause");
	t_set(&n->user_id, pp);
	t_set(&n->category, "marketing");
	t_expect(n, now, ADMIT_GO, NULL, NULL, "paused until a past time: GO");
	t_release(n->txid, n->channel);
	codec_note_free(n);
}

/* t_quiet - step 5: quiet hours in New York 21:00-07:00, exemptions, send_at */
static void t_quiet(int64_t now)
{
	/* 2026-01-15T03:00:00Z is 22:00 EST on the 14th; 10:30Z is 05:30; 13:00Z is 08:00 */
	const int64_t t22 = 1768446000LL * USEC, t0530 = 1768473000LL * USEC;
	const int64_t t08 = 1768482000LL * USEC, end = 1768478400LL * USEC;   /* 12:00Z = 07:00 */
	const char *q = t_id("quiet"), *dst = t_id("quiet-dst");
	struct note *n;

	t_user(q, "Q", t_id("q@example.org"), "+15550000009", "America/New_York", 0, NULL);
	t_sql(T_QUIET, DB_ARGS(db_str(q), db_i64(1260), db_i64(420)));
	n = t_note(q, CODEC_CH_SMS, "marketing");
	t_expect(n, t22, ADMIT_DEFER, NULL, "quiet_hours", "22:00 local in 21:00-07:00: DEFER");
	is_int(last.defer_until, end, "until 07:00 local the next morning");
	t_expect(n, t0530, ADMIT_DEFER, NULL, "quiet_hours", "05:30 local (after midnight): DEFER");
	is_int(last.defer_until, end, "until 07:00 local that morning");
	n->send_at = t22 + 3600 * USEC;
	t_expect(n, t22, ADMIT_DEFER, NULL, "send_at", "send_at later in the window: DEFER to it");
	is_int(last.defer_until, n->send_at, "until send_at");
	t_expect(n, n->send_at, ADMIT_DEFER, NULL, "quiet_hours", "at send_at, in the window: DEFER");
	is_int(last.defer_until, end, "until the window ends");
	n->send_at = 0;
	t_expect(n, t08, ADMIT_GO, NULL, NULL, "08:00 local: GO");
	t_release(n->txid, n->channel);
	n->priority = 8;
	t_expect(n, t22, ADMIT_GO, NULL, NULL, "priority 8 ignores quiet hours");
	t_release(n->txid, n->channel);
	n->priority = 4;
	t_set(&n->category, "transactional");
	t_expect(n, t22, ADMIT_GO, NULL, NULL, "transactional ignores quiet hours");
	t_set(&n->category, "digest");
	t_expect(n, t22, ADMIT_GO, NULL, NULL, "a category with quiet_hours = false ignores them");
	t_release(n->txid, n->channel);
	t_set(&n->category, "marketing");
	n->channel = CODEC_CH_EMAIL;
	t_expect(n, t22, ADMIT_GO, NULL, NULL, "email is not a quiet-hours channel: GO");
	t_release(n->txid, n->channel);
	codec_note_free(n);

	/* the spring-forward night: 01:30 EST is 06:30Z; 03:00 EDT comes at 07:00Z, 30 min later */
	t_user(dst, "Q", NULL, "+15550000010", "America/New_York", 0, NULL);
	t_sql(T_QUIET, DB_ARGS(db_str(dst), db_i64(60), db_i64(180)));
	n = t_note(dst, CODEC_CH_SMS, "marketing");
	t_expect(n, 1772951400LL * USEC, ADMIT_DEFER, NULL, "quiet_hours",
	    "01:30 in 01:00-03:00 on the DST night: DEFER");
	is_int(last.defer_until, 1772953200LL * USEC, "until the wall clock shows 03:00 (07:00Z)");
	codec_note_free(n);

	n = t_note(q, CODEC_CH_EMAIL, "marketing");
	n->send_at = now + 3600 * USEC;
	t_expect(n, now, ADMIT_DEFER, NULL, "send_at", "send_at in the future: DEFER");
	is_int(last.defer_until, n->send_at, "until send_at");
	is_int(t_res_n(n->txid, n->channel), 0, "no slot is held while deferred");
	t_expect(n, n->send_at, ADMIT_GO, NULL, NULL, "at send_at: GO");
	t_release(n->txid, n->channel);
	codec_note_free(n);
}

/* t_cap - step 6: the cap, holding a slot, release once, keep, exemption */
static void t_cap(int64_t now)
{
	const char *u = t_id("cap");
	struct note *n[6];
	char k[256];
	int i;

	t_user(u, "C", t_id("cap@example.org"), NULL, NULL, 0, NULL);
	snprintf(k, sizeof k, "u:%s", u);
	for (i = 0; i < 6; i++)
		n[i] = t_note(u, CODEC_CH_EMAIL, "marketing");
	for (i = 0; i < 3; i++) {
		t_expect(n[i], now, ADMIT_GO, NULL, NULL, "within the cap of 3: GO");
		ok(last.reserved, "a slot is reserved");
	}
	is_int(t_counter("cap", k, CODEC_CH_EMAIL), 3, "the counter is 3");
	t_expect(n[3], now, ADMIT_FINAL, "rate_limited", "daily_cap", "the 4th: rate_limited");
	is_int(json_object_get_int(json_object_object_get(last.detail, "cap")), 3,
	    "detail names the cap");
	is_int(t_res_n(n[3]->txid, CODEC_CH_EMAIL), 0, "no reservation for it");
	t_expect(n[0], now, ADMIT_GO, NULL, NULL, "the 1st again holds its slot: GO");
	ok(last.reserved, "reserved");
	is_int(t_counter("cap", k, CODEC_CH_EMAIL), 3, "not counted twice");
	is_int(t_release(n[0]->txid, CODEC_CH_EMAIL), 0, "admit_release");
	is_int(t_release(n[0]->txid, CODEC_CH_EMAIL), 0, "admit_release again");
	is_int(t_counter("cap", k, CODEC_CH_EMAIL), 2, "the slot came back exactly once");
	is_int(t_res_n(n[0]->txid, CODEC_CH_EMAIL), 0, "its reservation is gone");
	t_expect(n[3], now, ADMIT_GO, NULL, NULL, "the freed slot is taken");
	is_int(t_keep(n[1]->txid, CODEC_CH_EMAIL), 0, "admit_keep");
	ok(t_res_n(n[1]->txid, CODEC_CH_EMAIL) == 0 && t_counter("cap", k, CODEC_CH_EMAIL) == 3,
	    "keep drops the reservation, the slot stays used");
	is_int(t_release(n[1]->txid, CODEC_CH_EMAIL), 0, "a release after keep");
	is_int(t_counter("cap", k, CODEC_CH_EMAIL), 3, "gives nothing back");
	t_expect(n[4], now, ADMIT_FINAL, "rate_limited", "daily_cap", "full again");
	t_set(&n[5]->category, "transactional");
	t_expect(n[5], now, ADMIT_GO, NULL, NULL, "cap-exempt transactional: GO");
	ok(!last.reserved && t_res_n(n[5]->txid, CODEC_CH_EMAIL) == 0, "without a slot");
	for (i = 0; i < 6; i++)
		codec_note_free(n[i]);
}

/* t_cap_sources - client overrides, caps table precedence, quotas, cap policy defer */
static void t_cap_sources(int64_t now)
{
	char client[32], qclient[32], q2[32];
	const char *u1 = t_id("cs1"), *u2 = t_id("cs2"), *u3 = t_id("cs3");
	const char *tk = t_id("cs-tokyo");
	struct note *n;
	int64_t want;
	int i;

	snprintf(client, sizeof client, "c%s", run);
	snprintf(qclient, sizeof qclient, "q%s", run);
	snprintf(q2, sizeof q2, "r%s", run);
	t_user(u1, "C", t_id("cs1@example.org"), "+15550000011", NULL, 0, "https://h.example.org/1");
	t_user(u2, "C", t_id("cs2@example.org"), "+15550000012", NULL, 0, "https://h.example.org/2");
	t_user(u3, "C", t_id("cs3@example.org"), "+15550000013", NULL, 0, "https://h.example.org/3");

	/* conf clients.cID.caps.email = 1, across clients */
	n = t_note(u1, CODEC_CH_EMAIL, "marketing");
	t_expect(n, now, ADMIT_GO, NULL, NULL, "client without override: GO (1 of 3)");
	codec_note_free(n);
	n = t_note(u1, CODEC_CH_EMAIL, "marketing");
	t_set(&n->client_id, client);
	t_expect(n, now, ADMIT_FINAL, "rate_limited", "daily_cap",
	    "client cap 1 counts the other client's message: rate_limited");
	is_int(json_object_get_int(json_object_object_get(last.detail, "cap")), 1, "cap 1");
	codec_note_free(n);

	/* caps table (email, client) = 2 wins over the client's config */
	t_sql(T_CAP, DB_ARGS(db_str("email"), db_str(client), db_i64(2)));
	admit_flush_cache();
	for (i = 0; i < 3; i++) {
		n = t_note(u2, CODEC_CH_EMAIL, "marketing");
		t_set(&n->client_id, client);
		if (i < 2)
			t_expect(n, now, ADMIT_GO, NULL, NULL, "caps table 2 for the client: GO");
		else
			t_expect(n, now, ADMIT_FINAL, "rate_limited", "daily_cap", "3rd: rate_limited");
		codec_note_free(n);
	}

	/* caps table (webhook, '') = 1 over the config's 0; (webhook, client) NULL: no cap */
	t_sql(T_CAP_DEL, DB_ARGS(db_str("webhook"), db_str("")));
	t_sql(T_CAP, DB_ARGS(db_str("webhook"), db_str(""), db_i64(1)));
	t_sql(T_CAP, DB_ARGS(db_str("webhook"), db_str(client), db_null()));
	admit_flush_cache();
	n = t_note(u3, CODEC_CH_WEBHOOK, "marketing");
	t_expect(n, now, ADMIT_GO, NULL, NULL, "caps table for all clients 1: GO");
	codec_note_free(n);
	n = t_note(u3, CODEC_CH_WEBHOOK, "marketing");
	t_expect(n, now, ADMIT_FINAL, "rate_limited", "daily_cap", "the 2nd: rate_limited");
	t_set(&n->client_id, client);
	t_expect(n, now, ADMIT_GO, NULL, NULL, "a NULL cap for the client: no cap");
	ok(!last.reserved, "nothing reserved");
	codec_note_free(n);
	t_sql(T_CAP_DEL, DB_ARGS(db_str("webhook"), db_str("")));
	t_sql(T_CAP_DEL, DB_ARGS(db_str("webhook"), db_str(client)));
	t_sql(T_CAP_DEL, DB_ARGS(db_str("email"), db_str(client)));
	admit_flush_cache();

	/* client quota from the config (sms 2) and from client_quotas (email 1) */
	for (i = 0; i < 3; i++) {
		const char *uu = i == 0 ? u1 : i == 1 ? u2 : u3;

		n = t_note(uu, CODEC_CH_SMS, "transactional");
		t_set(&n->client_id, qclient);
		if (i < 2) {
			t_expect(n, now, ADMIT_GO, NULL, NULL, "within the client quota: GO");
		} else {
			t_expect(n, now, ADMIT_FINAL, "rate_limited", "client_quota",
			    "over the client's quota: client_quota");
			is_int(t_res_n(n->txid, CODEC_CH_SMS), 0, "nothing reserved");
		}
		codec_note_free(n);
	}
	t_sql(T_QUOTA, DB_ARGS(db_str(q2), db_str("email"), db_i64(1)));
	admit_flush_cache();
	n = t_note(u3, CODEC_CH_EMAIL, "marketing");
	t_set(&n->client_id, q2);
	t_expect(n, now, ADMIT_GO, NULL, NULL, "client_quotas 1: GO");
	codec_note_free(n);
	{
		char k[256];
		long long before;

		snprintf(k, sizeof k, "u:%s", u3);
		before = t_counter("cap", k, CODEC_CH_EMAIL);
		n = t_note(u3, CODEC_CH_EMAIL, "marketing");
		t_set(&n->client_id, q2);
		t_expect(n, now, ADMIT_FINAL, "rate_limited", "client_quota", "2nd: client_quota");
		ok(t_counter("cap", k, CODEC_CH_EMAIL) == before && t_res_n(n->txid, CODEC_CH_EMAIL) == 0,
		    "the cap slot taken first was given back with it");
		codec_note_free(n);
	}
	t_sql(T_QUOTA_DEL, DB_ARGS(db_str(q2)));
	admit_flush_cache();

	/* cap policy defer: to the next midnight in Tokyo (UTC+9, no DST) */
	t_user(tk, "T", NULL, "+81312345678", "Asia/Tokyo", 0, NULL);
	for (i = 0; i < 3; i++) {
		n = t_note(tk, CODEC_CH_SMS, "promo");
		n->priority = 8;
		if (i < 2) {
			t_expect(n, now, ADMIT_GO, NULL, NULL, "promo within the cap: GO");
		} else {
			want = ((now + 9 * 3600 * USEC) / DAY + 1) * DAY - 9 * 3600 * USEC;
			t_expect(n, now, ADMIT_DEFER, NULL, "daily_cap", "over the cap, policy defer: DEFER");
			is_int(last.defer_until, want, "until the next local midnight");
			is_int(t_res_n(n->txid, CODEC_CH_SMS), 0, "without a slot");
		}
		codec_note_free(n);
	}
}

/* t_to - `to` recipients: address keys, long addresses hashed, push token */
static void t_to(int64_t now)
{
	unsigned char md[32];
	unsigned int mdlen = 0, i;
	char addr[300], key[80], k2[300];
	struct note *n;

	n = t_note(NULL, CODEC_CH_EMAIL, "marketing");
	t_set(&n->address, t_id("to@example.org"));
	t_expect(n, now, ADMIT_GO, NULL, NULL, "`to` email: GO");
	ok(last.profile == NULL && strcmp(last.address, n->address) == 0 &&
	    strcmp(last.timezone, "UTC") == 0 && last.reserved, "no profile, its address, UTC, a slot");
	snprintf(k2, sizeof k2, "a:%s", n->address);
	is_int(t_counter("cap", k2, CODEC_CH_EMAIL), 1, "counted under 'a:' + address");
	codec_note_free(n);

	memset(addr, 'x', sizeof addr);
	snprintf(addr + 260, sizeof addr - 260, "-%s@example.org", run);
	n = t_note(NULL, CODEC_CH_EMAIL, "marketing");
	t_set(&n->address, addr);
	t_expect(n, now, ADMIT_GO, NULL, NULL, "`to` long address: GO");
	EVP_Digest(addr, strlen(addr), md, &mdlen, EVP_sha256(), NULL);
	memcpy(key, "h:", 2);
	for (i = 0; i < 32; i++)
		snprintf(key + 2 + 2 * i, 3, "%02x", md[i]);
	is_int(t_count(T_RES_SUBJECT, DB_ARGS(db_str(key))), 1, "reserved under 'h:' + SHA-256");
	codec_note_free(n);

	n = t_note(NULL, CODEC_CH_PUSH, "marketing");
	t_set(&n->address, t_id("to-token"));
	t_set(&n->push_platform, "ios");
	t_expect(n, now, ADMIT_GO, NULL, NULL, "`to` push token: GO");
	ok(last.ndevices == 1 && strcmp(last.devices[0].token, n->address) == 0 &&
	    strcmp(last.devices[0].platform, "ios") == 0 && last.address == NULL, "one device");
	codec_note_free(n);
}

/* t_killed - admit's connection killed between two messages: the next admission reconnects */
static void t_killed(int64_t now)
{
	const char *u = t_id("killed");
	struct note *n;

	t_user(u, "K", t_id("killed@example.org"), NULL, NULL, 0, NULL);
	n = t_note(u, CODEC_CH_EMAIL, "marketing");
	t_set(&n->idempotency_key, t_id("killed-key"));
	t_sql(T_KILL, DB_ARGS(db_i64((int64_t)db_thread_id(db))));
	t_expect(n, now, ADMIT_GO, NULL, NULL, "after a killed connection: GO");
	ok(last.reserved && t_res_n(n->txid, CODEC_CH_EMAIL) == 1, "with its slot");
	t_sql(T_KILL, DB_ARGS(db_i64((int64_t)db_thread_id(db))));
	t_expect(n, now, ADMIT_GO, NULL, NULL, "again after another kill: GO, its own claim and slot");
	is_int(t_counter("cap", t_id("u:killed"), CODEC_CH_EMAIL), 1, "counted once");
	codec_note_free(n);
}

/* t_child - one of the concurrent processes: admit 250 txids for U; the count of GO, or -1 */
static int t_child(const char *u, int64_t now)
{
	struct admit a;
	struct db *d = NULL;
	struct note *n;
	int i, rc, go = 0;

	memset(&a, 0, sizeof a);
	admit_flush_cache();
	if (db_open(&d, &dburl, NULL, admit_stmts, admit_nstmts) != 0) {
		db_close(d);
		return -1;
	}
	for (i = 0; i < 250; i++) {
		n = t_note(u, CODEC_CH_EMAIL, "marketing");
		if ((rc = t_admit_on(d, n, now, &a)) != 0) {
			go = -1;
			codec_note_free(n);
			break;
		}
		go += a.verdict == ADMIT_GO;
		codec_note_free(n);
	}
	admit_free(&a);
	db_close(d);
	return go;
}

/* t_concurrency - 4 processes, 1000 transactions, one recipient, cap 3: exactly 3 go */
static void t_concurrency(int64_t now)
{
	const char *u = t_id("conc");
	int fds[2], i, total = 0, got, status, bad = 0;
	char k[256];
	pid_t pid[4];

	t_user(u, "C", t_id("conc@example.org"), NULL, "Pacific/Auckland", 0, NULL);
	if (pipe(fds) != 0) {
		printf("Bail out! pipe failed\n");
		exit(1);
	}
	fflush(stdout);
	for (i = 0; i < 4; i++) {
		if ((pid[i] = fork()) == 0) {
			close(fds[0]);
			got = t_child(u, now);
			if (write(fds[1], &got, sizeof got) != (ssize_t)sizeof got)
				_exit(2);
			_exit(0);
		}
	}
	close(fds[1]);
	for (i = 0; i < 4; i++) {
		if (read(fds[0], &got, sizeof got) != (ssize_t)sizeof got || got < 0)
			bad++;
		else
			total += got;
	}
	close(fds[0]);
	for (i = 0; i < 4; i++)
		if (pid[i] < 0 || waitpid(pid[i], &status, 0) != pid[i] || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			bad++;
	is_int(bad, 0, "4 processes ran 250 admissions each without an error");
	is_int(total, 3, "exactly 3 ADMIT_GO in total under cap 3");
	snprintf(k, sizeof k, "u:%s", u);
	is_int(t_count(T_RES_SUBJECT, DB_ARGS(db_str(k))), 3, "3 reservations");
	is_int(t_counter("cap", k, CODEC_CH_EMAIL), 3, "the counter is 3");
}

/* main - run everything against $HERALD_MYSQL_URL */
int main(void)
{
	const char *env = getenv("HERALD_MYSQL_URL");
	char err[256], tx[TXID_LEN + 1], u[64];
	int64_t now;

	log_init("admit", LOG_LEVEL_WARN);
	if (env == NULL || url_parse(env, &dburl, err, sizeof err) != 0) {
		printf("Bail out! HERALD_MYSQL_URL missing or bad\n");
		return 1;
	}
	if (txid_new(tx) != 0) {
		printf("Bail out! no entropy\n");
		return 1;
	}
	snprintf(run, sizeof run, "%.8s", tx);
	t_conf();
	if (!is_int(db_open(&db, &dburl, NULL, admit_stmts, admit_nstmts), 0,
	    "admit_stmts prepare on the server") ||
	    !is_int(db_open(&tdb, &dburl, NULL, t_stmts, T__N), 0, "a second connection for set-up")) {
		printf("Bail out! cannot connect or prepare: %s\n", db ? db_error(db) : "");
		return 1;
	}
	now = t_now();
	snprintf(u, sizeof u, "%s", t_id("main"));   /* t_id's buffers are reused */
	t_user(u, "Ada", t_id("main@example.org"), "+441632960961", "Europe/London", 0,
	    "https://hooks.example.org/h");
	t_sql(T_DEVICE, DB_ARGS(db_str(u), db_str("ios"), db_str(t_id("tok-bad"))));
	t_sql(T_DEVICE, DB_ARGS(db_str(u), db_str("android"), db_str(t_id("tok-good"))));
	t_sql(T_SUPP, DB_ARGS(db_str(t_id("tok-bad")), db_str("push")));

	t_status(u, now);
	t_idempotency(u, now);
	t_recipient(u, now);
	t_prefs(u, now);
	t_quiet(now);
	t_cap(now);
	t_cap_sources(now);
	t_to(now);
	t_killed(now);
	t_concurrency(now);

	admit_free(&last);
	admit_flush_cache();
	db_close(db);
	db_close(tdb);
	conf_free(&cf);
	return done();
}
