/* record - status, audit row and outbox event of many messages in one transaction */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "admit.h"
#include "codec.h"
#include "db.h"
#include "log.h"
#include "record.h"
#include "rfc3339.h"

/* Multi-row statements: a batch of one channel is written with a few statements instead of four
 * a message. The SQL stays constant: one statement for each power of two rows up to 32. */
#define RECORD_POW 6
#define RECORD_LOCK_ROWS 64
#define RECORD_R2(r) r ", " r
#define RECORD_R4(r) RECORD_R2(r) ", " RECORD_R2(r)
#define RECORD_R8(r) RECORD_R4(r) ", " RECORD_R4(r)
#define RECORD_R16(r) RECORD_R8(r) ", " RECORD_R8(r)
#define RECORD_R32(r) RECORD_R16(r) ", " RECORD_R16(r)
#define RECORD_R64(r) RECORD_R32(r) ", " RECORD_R32(r)
/* an existing row's new status, as record_one's Q_UPD: the insert part never happens (the row is
 * locked), its NOT NULL columns only make the statement valid */
#define RECORD_UPD_COLS 13
#define RECORD_UPD_ROW "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
#define RECORD_UPD(rows) \
	"INSERT INTO notifications (id, transaction_id, channel, status, client_id, category, " \
	"priority, attempt, provider, provider_message_id, detail, template_version, deferred_until) " \
	"VALUES " rows " ON DUPLICATE KEY UPDATE status = VALUES(status), " \
	"attempt = VALUES(attempt), provider = COALESCE(VALUES(provider), provider), " \
	"provider_message_id = COALESCE(VALUES(provider_message_id), provider_message_id), " \
	"detail = VALUES(detail), template_version = COALESCE(VALUES(template_version), " \
	"template_version), deferred_until = VALUES(deferred_until)"
#define RECORD_AUD_COLS 8
#define RECORD_AUD_ROW "(?, ?, ?, ?, ?, ?, ?, ?)"
#define RECORD_AUD(rows) \
	"INSERT INTO notification_audit (notification_id, old_status, new_status, changed_at, " \
	"host, worker, attempt, detail) VALUES " rows
#define RECORD_OUT_COLS 2
#define RECORD_OUT_ROW "(?, ?)"
#define RECORD_OUT(rows) "INSERT INTO event_outbox (routing_key, body) VALUES " rows
/* the six statements of one kind: NAME_1 .. NAME_32 */
#define RECORD_SIX(q, name, m, r) \
	[q] = { name "_1", m(r), false }, \
	[(q) + 1] = { name "_2", m(RECORD_R2(r)), false }, \
	[(q) + 2] = { name "_4", m(RECORD_R4(r)), false }, \
	[(q) + 3] = { name "_8", m(RECORD_R8(r)), false }, \
	[(q) + 4] = { name "_16", m(RECORD_R16(r)), false }, \
	[(q) + 5] = { name "_32", m(RECORD_R32(r)), false }

enum {
	Q_CUR,
	Q_INS,
	Q_UPD,
	Q_AUD,
	Q_OUT,
	Q_DEF,
	Q_SUP,
	Q_DEVGET,
	Q_DEVSET,
	Q_DEVDEL,
	Q_LOCK,                      /* the rows of up to RECORD_LOCK_ROWS messages of one channel */
	Q_UPD_1,                     /* Q_UPD_1 + k: an update of 2^k rows (k < RECORD_POW) */
	Q_AUD_1 = Q_UPD_1 + RECORD_POW,      /* audit rows, likewise */
	Q_OUT_1 = Q_AUD_1 + RECORD_POW,      /* outbox events, likewise */
	Q__N = Q_OUT_1 + RECORD_POW
};

const struct db_stmt record_stmts[Q__N] = {
	[Q_CUR] = { "record_current",
		"SELECT id, status FROM notifications WHERE transaction_id = ? AND channel = ? "
		"FOR UPDATE", true },
	[Q_INS] = { "record_insert",
		"INSERT INTO notifications (transaction_id, channel, status, user_id, recipient, "
		"client_id, category, priority, batch_id, metadata, template, template_version, "
		"attempt, provider, provider_message_id, detail, send_at, expires_at, deferred_until, "
		"created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", false },
	[Q_UPD] = { "record_update",
		"UPDATE notifications SET status = ?, attempt = ?, provider = COALESCE(?, provider), "
		"provider_message_id = COALESCE(?, provider_message_id), detail = ?, "
		"template_version = COALESCE(?, template_version), deferred_until = ? WHERE id = ?",
		false },
	[Q_AUD] = { "record_audit",
		"INSERT INTO notification_audit (notification_id, old_status, new_status, changed_at, "
		"host, worker, attempt, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", false },
	[Q_OUT] = { "record_event",
		"INSERT INTO event_outbox (routing_key, body) VALUES (?, ?)", false },
	[Q_DEF] = { "record_deferred",
		"INSERT INTO deferred_messages (notification_id, body, headers) VALUES (?, ?, ?) "
		"ON DUPLICATE KEY UPDATE body = VALUES(body), headers = VALUES(headers)", true },
	[Q_SUP] = { "record_suppress",
		"INSERT IGNORE INTO suppressions (address, channel, reason, detail) "
		"VALUES (?, ?, 'bounce', ?)", true },
	[Q_DEVGET] = { "record_devices",
		"SELECT d.token, d.outcome, d.provider_message_id FROM device_outcomes d "
		"JOIN notifications n ON n.id = d.notification_id "
		"WHERE n.transaction_id = ? AND n.channel = 'push'", true },
	[Q_DEVSET] = { "record_device",
		"INSERT INTO device_outcomes (notification_id, token, platform, outcome, attempt, "
		"provider_message_id, detail) SELECT id, ?, ?, ?, ?, ?, ? FROM notifications "
		"WHERE transaction_id = ? AND channel = 'push' ON DUPLICATE KEY UPDATE "
		"outcome = VALUES(outcome), attempt = VALUES(attempt), "
		"provider_message_id = VALUES(provider_message_id), detail = VALUES(detail)", true },
	[Q_DEVDEL] = { "record_device_gone",
		"DELETE FROM devices WHERE token = ?", true },
	[Q_LOCK] = { "record_lock",
		"SELECT transaction_id, id, status FROM notifications WHERE channel = ? AND "
		"transaction_id IN (" RECORD_R64("?") ") FOR UPDATE", true },
	RECORD_SIX(Q_UPD_1, "record_update", RECORD_UPD, RECORD_UPD_ROW),
	RECORD_SIX(Q_AUD_1, "record_audit", RECORD_AUD, RECORD_AUD_ROW),
	RECORD_SIX(Q_OUT_1, "record_event", RECORD_OUT, RECORD_OUT_ROW),
};
const size_t record_nstmts = Q__N;

static const char *const record_finals[] = {
	"done", "failed", "opt_out", "paused", "rate_limited", "invalid_user", "no_address",
	"suppressed", "duplicate", "expired", "cancelled", NULL
};

/* record_final - whether STATUS is final */
int record_final(const char *status)
{
	size_t i;

	for (i = 0; record_finals[i] != NULL; i++)
		if (strcmp(status, record_finals[i]) == 0)
			return 1;
	return 0;
}

/* record_allowed - §4: queued → ready | deferred | final; deferred → queued (and cancelled or
 * expired, which heraldctl cancel and the scheduler reach); ready → retry | final; retry →
 * ready | final; a final status never changes here (parked replay is heraldctl's) */
enum record_result record_allowed(const char *from, const char *to)
{
	if (from == NULL || from[0] == '\0')
		return RECORD_WRITTEN;
	if (record_final(from))
		return RECORD_REFUSED;
	if (strcmp(from, to) == 0)
		return RECORD_SAME;
	if (strcmp(from, "queued") == 0)
		return strcmp(to, "retry") != 0 ? RECORD_WRITTEN : RECORD_REFUSED;
	if (strcmp(from, "deferred") == 0)
		return strcmp(to, "queued") == 0 || strcmp(to, "cancelled") == 0 ||
		    strcmp(to, "expired") == 0 ? RECORD_WRITTEN : RECORD_REFUSED;
	if (strcmp(from, "ready") == 0 || strcmp(from, "retry") == 0)
		return strcmp(to, "queued") != 0 && strcmp(to, "deferred") != 0 ?
		    RECORD_WRITTEN : RECORD_REFUSED;
	return RECORD_REFUSED;
}

/* record_jstr - a json string or null */
static struct json_object *record_jstr(const char *s)
{
	return s != NULL ? json_object_new_string(s) : NULL;
}

/* record_event - the §3 event body of R at NOW into a malloc'd string */
static char *record_event(const struct record *r, int64_t now)
{
	const struct note *n = r->note;
	struct json_object *o = json_object_new_object();
	char at[RFC3339_LEN + 1];
	char *out;

	if (o == NULL)
		return NULL;
	json_object_object_add(o, "transaction_id", json_object_new_string(n->txid));
	json_object_object_add(o, "channel", json_object_new_string(codec_channel_name(n->channel)));
	json_object_object_add(o, "user_id", record_jstr(n->user_id));
	json_object_object_add(o, "client_id", record_jstr(n->client_id));
	json_object_object_add(o, "category", record_jstr(n->category));
	json_object_object_add(o, "batch_id", record_jstr(n->batch_id));
	json_object_object_add(o, "metadata", json_object_get(n->metadata));
	json_object_object_add(o, "status", json_object_new_string(r->status));
	json_object_object_add(o, "previous", r->previous[0] ? json_object_new_string(r->previous) : NULL);
	json_object_object_add(o, "attempt", json_object_new_int((int)n->attempt));
	json_object_object_add(o, "at", json_object_new_string(rfc3339_format(now, at)));
	json_object_object_add(o, "detail", json_object_get(r->detail));
	out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return out;
}

/* record_json - J as compact text, or NULL */
static const char *record_json(struct json_object *j)
{
	return j != NULL ? json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE) : NULL;
}

/* record_row - lock or create the notification row of R; its id into *ID; 0 or a DB_ error */
static int record_row(struct db *db, int base, struct record *r, int64_t *id)
{
	const struct note *n = r->note;
	const char *ch = codec_channel_name(n->channel);
	int rc;

	r->previous[0] = '\0';
	*id = 0;
	if ((rc = db_exec(db, base + Q_CUR, DB_ARGS(db_str(n->txid), db_str(ch)))) < 0)
		return rc;
	while ((rc = db_fetch(db, base + Q_CUR)) == 1) {
		const char *st = db_col_str(db, base + Q_CUR, 1, NULL);

		*id = db_col_i64(db, base + Q_CUR, 0);
		snprintf(r->previous, sizeof r->previous, "%s", st != NULL ? st : "");
	}
	return rc < 0 ? rc : 0;
}

/* record_insert - the notification row of R with its first status; its id into *ID */
static int record_insert(struct db *db, int base, const struct record *r, int64_t *id)
{
	const struct note *n = r->note;
	int rc;

	rc = db_exec(db, base + Q_INS, DB_ARGS(db_str(n->txid),
	    db_str(codec_channel_name(n->channel)), db_str(r->status), db_str(n->user_id),
	    db_str(n->address), db_str(n->client_id != NULL ? n->client_id : ""),
	    db_str(n->category != NULL ? n->category : "notifications"), db_i64(n->priority),
	    db_str(n->batch_id), db_str(record_json(n->metadata)), db_str(n->template_name),
	    r->template_version ? db_i64(r->template_version) : db_null(), db_i64(n->attempt),
	    db_str(r->provider), db_str(r->provider_message_id), db_str(record_json(r->detail)),
	    n->send_at ? db_time(n->send_at) : db_null(),
	    n->expires_at ? db_time(n->expires_at) : db_null(),
	    r->deferred_until ? db_time(r->deferred_until) : db_null(),
	    db_time(n->accepted_at ? n->accepted_at : rfc3339_now())));
	if (rc < 0)
		return rc;
	*id = (int64_t)db_insert_id(db, base + Q_INS);
	return 0;
}

/* record_after - what R's change needs beyond status, audit and event: a suppression, the
 * deferred copy (row ID), its slots */
static int record_after(struct db *db, int base, int admit_base, const struct record *r,
	int64_t id)
{
	const struct note *n = r->note;
	int rc;

	if (r->suppress_address != NULL &&
	    (rc = db_exec(db, base + Q_SUP, DB_ARGS(db_str(r->suppress_address),
	    db_str(codec_channel_name(n->channel)), db_str(record_json(r->detail))))) < 0)
		return rc;
	if (strcmp(r->status, "deferred") == 0 && r->deferred_body != NULL &&
	    (rc = db_exec(db, base + Q_DEF, DB_ARGS(db_i64(id),
	    db_bin(r->deferred_body, r->deferred_len), db_str(r->deferred_headers)))) < 0)
		return rc;
	if (r->slots == RECORD_SLOTS_KEEP)
		return admit_keep(db, admit_base, n->txid, (int)n->channel);
	if (r->slots == RECORD_SLOTS_RELEASE)
		return admit_release(db, admit_base, n->txid, (int)n->channel);
	return 0;
}

/* record_one - lock, check the transition, write status, audit row, event and slots of R */
static int record_one(struct db *db, int base, int admit_base, struct record *r,
	const char *host, const char *worker, int64_t now)
{
	const struct note *n = r->note;
	const char *detail = record_json(r->detail);
	char key[64], *event;
	int64_t id;
	int rc;

	if ((rc = record_row(db, base, r, &id)) < 0)
		return rc;
	r->result = record_allowed(r->previous, r->status);
	if (r->result != RECORD_WRITTEN)
		return 0;
	if (id == 0) {
		rc = record_insert(db, base, r, &id);
		if (rc == DB_EDUP) {
			/* the ledger inserted it meanwhile: lock it and go by its status */
			if ((rc = record_row(db, base, r, &id)) < 0)
				return rc;
			if ((r->result = record_allowed(r->previous, r->status)) != RECORD_WRITTEN)
				return 0;
		} else if (rc < 0) {
			return rc;
		}
	}
	if (r->previous[0] != '\0') {
		rc = db_exec(db, base + Q_UPD, DB_ARGS(db_str(r->status), db_i64(n->attempt),
		    db_str(r->provider), db_str(r->provider_message_id), db_str(detail),
		    r->template_version ? db_i64(r->template_version) : db_null(),
		    r->deferred_until ? db_time(r->deferred_until) : db_null(), db_i64(id)));
		if (rc < 0)
			return rc;
	}
	rc = db_exec(db, base + Q_AUD, DB_ARGS(db_i64(id),
	    r->previous[0] ? db_str(r->previous) : db_null(), db_str(r->status), db_time(now),
	    db_str(host), db_str(worker), db_i64(n->attempt), db_str(detail)));
	if (rc < 0)
		return rc;
	snprintf(key, sizeof key, "%s.%s", codec_channel_name(n->channel), r->status);
	if ((event = record_event(r, now)) == NULL)
		return DB_ERR;
	rc = db_exec(db, base + Q_OUT, DB_ARGS(db_str(key), db_str(event)));
	free(event);
	return rc < 0 ? rc : record_after(db, base, admit_base, r, id);
}

/* record_cmp - records in (transaction id, channel) order, the order the ledger inserts in */
static int record_cmp(const void *a, const void *b)
{
	const struct note *x = (*(struct record *const *)a)->note;
	const struct note *y = (*(struct record *const *)b)->note;
	int d = strcmp(x->txid, y->txid);

	return d != 0 ? d : (int)x->channel - (int)y->channel;
}

/* record_rows - run the multi-row statement family Q (Q_UPD_1, ...) over N rows of COLS
 * arguments each in A: the largest powers of two first */
static int record_rows(struct db *db, int q, const struct db_arg *a, size_t cols, size_t n)
{
	size_t off = 0, k;
	int lvl, rc;

	while (off < n) {
		for (lvl = RECORD_POW - 1, k = (size_t)1 << lvl; k > n - off; lvl--, k >>= 1)
			;
		if ((rc = db_exec(db, q + lvl, a + off * cols, k * cols)) < 0)
			return rc;
		off += k;
	}
	return 0;
}

/* record_lock - lock the rows of V[0..N) (one channel, sorted, no transaction twice) with one
 * statement for each RECORD_LOCK_ROWS: their ids into ID (0: no row yet), statuses into
 * previous */
static int record_lock(struct db *db, int base, struct record **v, size_t n, int64_t *id)
{
	struct db_arg a[1 + RECORD_LOCK_ROWS];
	size_t off, i, k;
	int rc;

	for (off = 0; off < n; off += k) {
		k = n - off < RECORD_LOCK_ROWS ? n - off : RECORD_LOCK_ROWS;
		a[0] = db_str(codec_channel_name(v[0]->note->channel));
		for (i = 0; i < RECORD_LOCK_ROWS; i++)
			a[1 + i] = i < k ? db_str(v[off + i]->note->txid) : db_null();
		if ((rc = db_exec(db, base + Q_LOCK, a, 1 + RECORD_LOCK_ROWS)) < 0)
			return rc;
		while ((rc = db_fetch(db, base + Q_LOCK)) == 1) {
			const char *tx = db_col_str(db, base + Q_LOCK, 0, NULL);
			const char *st = db_col_str(db, base + Q_LOCK, 2, NULL);

			for (i = off; tx != NULL && i < off + k; i++)
				if (strcmp(v[i]->note->txid, tx) == 0) {
					id[i] = db_col_i64(db, base + Q_LOCK, 1);
					snprintf(v[i]->previous, sizeof v[i]->previous, "%s",
					    st != NULL ? st : "");
				}
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* record_many - the changes V[0..N) of one channel, sorted, no transaction twice, inside the
 * caller's transaction: all rows locked by one statement, then the updates, audit rows and
 * events of those that exist written by a few multi-row statements; a message without a row yet
 * (the ledger has not recorded it) goes through record_one */
static int record_many(struct db *db, int base, int admit_base, struct record **v, size_t n,
	const char *host, const char *worker, int64_t now)
{
	struct db_arg *upd = NULL, *aud = NULL, *out = NULL;
	int64_t *id = calloc(n, sizeof *id);
	char **ev = calloc(n, sizeof *ev), (*key)[40] = calloc(n, sizeof *key);
	size_t i, m = 0;
	int rc = DB_ERR;

	if (id == NULL || ev == NULL || key == NULL)
		goto out;
	upd = malloc(n * RECORD_UPD_COLS * sizeof *upd);
	aud = malloc(n * RECORD_AUD_COLS * sizeof *aud);
	out = malloc(n * RECORD_OUT_COLS * sizeof *out);
	if (upd == NULL || aud == NULL || out == NULL)
		goto out;
	for (i = 0; i < n; i++)
		v[i]->previous[0] = '\0';
	if ((rc = record_lock(db, base, v, n, id)) < 0)
		goto out;
	for (i = 0; i < n; i++) {
		struct record *r = v[i];
		const struct note *no = r->note;
		const char *detail = record_json(r->detail);
		struct db_arg *u = upd + m * RECORD_UPD_COLS, *a = aud + m * RECORD_AUD_COLS;

		if (id[i] == 0)
			continue;       /* below */
		r->result = record_allowed(r->previous, r->status);
		if (r->result != RECORD_WRITTEN)
			continue;
		snprintf(key[i], sizeof key[i], "%s.%s", codec_channel_name(no->channel), r->status);
		rc = DB_ERR;
		if ((ev[i] = record_event(r, now)) == NULL)
			goto out;
		u[0] = db_i64(id[i]);
		u[1] = db_str(no->txid);
		u[2] = db_str(codec_channel_name(no->channel));
		u[3] = db_str(r->status);
		u[4] = db_str("");
		u[5] = db_str("");
		u[6] = db_i64(0);
		u[7] = db_i64(no->attempt);
		u[8] = db_str(r->provider);
		u[9] = db_str(r->provider_message_id);
		u[10] = db_str(detail);
		u[11] = r->template_version ? db_i64(r->template_version) : db_null();
		u[12] = r->deferred_until ? db_time(r->deferred_until) : db_null();
		a[0] = db_i64(id[i]);
		a[1] = db_str(r->previous);
		a[2] = db_str(r->status);
		a[3] = db_time(now);
		a[4] = db_str(host);
		a[5] = db_str(worker);
		a[6] = db_i64(no->attempt);
		a[7] = db_str(detail);
		out[m * RECORD_OUT_COLS] = db_str(key[i]);
		out[m * RECORD_OUT_COLS + 1] = db_str(ev[i]);
		m++;
	}
	if ((rc = record_rows(db, base + Q_UPD_1, upd, RECORD_UPD_COLS, m)) < 0 ||
	    (rc = record_rows(db, base + Q_AUD_1, aud, RECORD_AUD_COLS, m)) < 0 ||
	    (rc = record_rows(db, base + Q_OUT_1, out, RECORD_OUT_COLS, m)) < 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (id[i] == 0)
			rc = record_one(db, base, admit_base, v[i], host, worker, now);
		else if (v[i]->result == RECORD_WRITTEN)
			rc = record_after(db, base, admit_base, v[i], id[i]);
		if (rc < 0)
			goto out;
	}
	rc = 0;
out:
	for (i = 0; ev != NULL && i < n; i++)
		free(ev[i]);
	free(ev);
	free(key);
	free(id);
	free(upd);
	free(aud);
	free(out);
	return rc;
}

/* record_sorted - the changes V[0..N), sorted by record_cmp, inside the caller's transaction */
static int record_sorted(struct db *db, int base, int admit_base, struct record **v, size_t n,
	const char *host, const char *worker, int64_t now)
{
	size_t i;
	int rc;

	for (i = 1; i < n; i++)
		if (v[i]->note->channel != v[0]->note->channel || record_cmp(&v[i - 1], &v[i]) == 0 ||
		    v[i]->note->txid[0] == '\0')
			break;
	if (n > 1 && i == n && v[0]->note->txid[0] != '\0')
		return record_many(db, base, admit_base, v, n, host, worker, now);
	for (i = 0; i < n; i++)
		if ((rc = record_one(db, base, admit_base, v[i], host, worker, now)) < 0)
			return rc;
	return 0;
}

/* record_order - pointers to R[0..N) in record_cmp order (malloc'd), or NULL */
static struct record **record_order(struct record *r, size_t n)
{
	struct record **v = malloc((n ? n : 1) * sizeof *v);    /* NOLINT(bugprone-sizeof-expression): an array of pointers */
	size_t i;

	if (v == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		v[i] = &r[i];
	qsort(v, n, sizeof *v, record_cmp);     /* NOLINT(bugprone-sizeof-expression): an array of pointers */
	return v;
}

/* record_write - the N changes of R inside the caller's open transaction */
int record_write(struct db *db, int base, int admit_base, struct record *r, size_t n,
	const char *host, const char *worker, int64_t now)
{
	struct record **v = record_order(r, n);
	int rc;

	if (v == NULL)
		return DB_ERR;
	rc = record_sorted(db, base, admit_base, v, n, host, worker, now);
	free(v);
	return rc;
}

/* record_batch - all of R in one transaction; repeated whole after DB_ERETRY (up to 5 times).
 * Rows are locked in (transaction, channel) order, as every writer does, and TAKE's counter rows
 * before them in the counters' own order (the worker's take), so concurrent batches wait for
 * each other instead of deadlocking. A slot given back at a final status (its counter locked
 * after the status rows) can still meet another batch's take the other way round: that rare
 * deadlock is one more try. */
int record_batch(struct db *db, int base, int admit_base, struct record *r, size_t n,
	const char *host, const char *worker, int64_t now, record_take_fn take, void *take_arg)
{
	struct record **v = record_order(r, n);
	int rc = 0, tries;

	if (v == NULL)
		return DB_ERR;
	for (tries = 0; tries < 5; tries++) {
		if (tries > 0)
			now = rfc3339_now();    /* the audit rows say when they were really written */
		if ((rc = db_begin(db)) < 0)
			goto again;
		if ((take != NULL && (rc = take(db, take_arg)) < 0) ||
		    (rc = record_sorted(db, base, admit_base, v, n, host, worker, now)) < 0) {
			db_rollback(db);
			goto again;
		}
		if ((rc = db_commit(db)) == 0)
			break;
again:
		if (rc != DB_ERETRY)
			break;
		log_warnx("event=record_retry batch=%zu try=%d", n, tries + 1);
	}
	free(v);
	return rc;
}

int record_devices_load(struct db *db, int base, const char *txid, struct record_device *d,
	size_t n)
{
	int rc;
	size_t i;

	if ((rc = db_exec(db, base + Q_DEVGET, DB_ARGS(db_str(txid)))) < 0)
		return rc;
	while ((rc = db_fetch(db, base + Q_DEVGET)) == 1) {
		const char *tok = db_col_str(db, base + Q_DEVGET, 0, NULL);
		const char *out = db_col_str(db, base + Q_DEVGET, 1, NULL);
		const char *mid = db_col_str(db, base + Q_DEVGET, 2, NULL);

		for (i = 0; tok != NULL && out != NULL && i < n; i++)
			if (strcmp(d[i].token, tok) == 0) {
				snprintf(d[i].outcome, sizeof d[i].outcome, "%s", out);
				snprintf(d[i].message_id, sizeof d[i].message_id, "%s",
				    mid != NULL ? mid : "");
			}
	}
	return rc < 0 ? rc : 0;
}

int record_device(struct db *db, int base, const char *txid, const struct record_device *d,
	unsigned attempt, struct json_object *detail)
{
	int rc;

	rc = db_exec(db, base + Q_DEVSET, DB_ARGS(db_str(d->token), db_str(d->platform),
	    db_str(d->outcome), db_i64(attempt), d->message_id[0] ? db_str(d->message_id) : db_null(),
	    db_str(record_json(detail)), db_str(txid)));
	if (rc < 0 || strcmp(d->outcome, "unregistered") != 0)
		return rc < 0 ? rc : 0;
	return db_exec(db, base + Q_DEVDEL, DB_ARGS(db_str(d->token))) < 0 ? DB_ERR : 0;
}
