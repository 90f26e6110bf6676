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
	Q__N
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
	if (r->suppress_address != NULL &&
	    (rc = db_exec(db, base + Q_SUP, DB_ARGS(db_str(r->suppress_address),
	    db_str(codec_channel_name(n->channel)), db_str(detail)))) < 0)
		return rc;
	if (strcmp(r->status, "deferred") == 0 && r->deferred_body != NULL &&
	    (rc = db_exec(db, base + Q_DEF, DB_ARGS(db_i64(id),
	    db_bin(r->deferred_body, r->deferred_len), db_str(r->deferred_headers)))) < 0)
		return rc;
	snprintf(key, sizeof key, "%s.%s", codec_channel_name(n->channel), r->status);
	if ((event = record_event(r, now)) == NULL)
		return DB_ERR;
	rc = db_exec(db, base + Q_OUT, DB_ARGS(db_str(key), db_str(event)));
	free(event);
	if (rc < 0)
		return rc;
	if (r->slots == RECORD_SLOTS_KEEP)
		return admit_keep(db, admit_base, n->txid, (int)n->channel);
	if (r->slots == RECORD_SLOTS_RELEASE)
		return admit_release(db, admit_base, n->txid, (int)n->channel);
	return 0;
}

/* record_write - the N changes of R inside the caller's open transaction */
int record_write(struct db *db, int base, int admit_base, struct record *r, size_t n,
	const char *host, const char *worker, int64_t now)
{
	size_t i;
	int rc;

	for (i = 0; i < n; i++)
		if ((rc = record_one(db, base, admit_base, &r[i], host, worker, now)) < 0)
			return rc;
	return 0;
}

/* record_cmp - records in (transaction id, channel) order, the order the ledger inserts in */
static int record_cmp(const void *a, const void *b)
{
	const struct note *x = (*(struct record *const *)a)->note;
	const struct note *y = (*(struct record *const *)b)->note;
	int d = strcmp(x->txid, y->txid);

	return d != 0 ? d : (int)x->channel - (int)y->channel;
}

/* record_batch - all of R in one transaction; repeated whole after DB_ERETRY (up to 5 times).
 * Rows are locked in (transaction, channel) order, as every writer does, so concurrent batches
 * wait for each other instead of deadlocking. */
int record_batch(struct db *db, int base, int admit_base, struct record *r, size_t n,
	const char *host, const char *worker, int64_t now)
{
	struct record **v = malloc((n ? n : 1) * sizeof *v);
	int rc = 0, tries;
	size_t i;

	if (v == NULL)
		return DB_ERR;
	for (i = 0; i < n; i++)
		v[i] = &r[i];
	qsort(v, n, sizeof *v, record_cmp);
	for (tries = 0; tries < 5; tries++) {
		if (tries > 0)
			now = rfc3339_now();    /* the audit rows say when they were really written */
		if ((rc = db_begin(db)) < 0)
			goto again;
		for (i = 0; i < n; i++)
			if ((rc = record_one(db, base, admit_base, v[i], host, worker, now)) < 0)
				break;
		if (rc < 0) {
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
