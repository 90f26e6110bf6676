/* parked - "heraldctl parked list|replay|drop CHANNEL [--txid T] [--limit N]" (SPEC §3)
 *
 * The parking queue herald.CHANNEL.vV.parked is read with basic.get without ack: every message
 * taken stays unacked on this channel, so the broker hands out each one once, and closing the
 * channel puts back whatever was not acked. At most the queue's message count at the start
 * (queue.declare passive) is taken, so a message parked again meanwhile is not met twice.
 *
 * list prints one JSON line per message and acks nothing. drop acks (deletes) them. replay, for
 * each decodable message of the channel that the worker parked (x-herald-source=ledger copies
 * are the ledger's inspection copies: left parked), whose status is failed (or unknown):
 *   1. records status queued with an audit row {"reason":"replay"} and its §3 event (failed ->
 *      queued is allowed only here, SPEC §4), in one transaction;
 *   2. publishes it to exchange herald with routing key CHANNEL (persistent, mandatory, the
 *      same properties and headers without x-herald-attempt, so the attempt count starts
 *      afresh) and waits for the broker's confirm; if that fails, queued -> failed again
 *      ({"reason":"replay_failed"}) and the parked copy stays;
 *   3. acks the parked copy.
 * Why the database first: a worker takes the copy within milliseconds, and one that still
 * found failed (final) would ack it and send nothing. Nothing is lost at any crash: after 1 the
 * status is queued with no copy in the channel queue, and the next replay resumes it (queued
 * whose last change is heraldctl's failed -> queued); after 2 the parked copy stays too, and
 * the next replay leaves it once the transaction has ended (drop removes it) or publishes it
 * once more while still queued: at most one duplicate in the channel queue, carrying the same
 * transaction and message id, which the worker recognises (§3, §4 step 1).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <json-c/json.h>

#include "broker.h"
#include "codec.h"
#include "conf.h"
#include "ctl.h"
#include "db.h"
#include "rfc3339.h"
#include "topology.h"
#include "txid.h"

#define PARKED_CHAN 1
#define PARKED_LIMIT_MAX 10000000L
#define PARKED_TRIES 3           /* the replay transaction after a lost connection or deadlock */
#define PARKED_HEADERS_MAX 64

enum { P_GET, P_LAST, P_LOCK, P_SET, P_AUDIT, P_EVENT, P__N };

static const struct db_stmt parked_stmts[P__N] = {
	[P_GET] = { "parked_get",
		"SELECT status, detail FROM notifications WHERE transaction_id = ? AND channel = ?",
		true },
	/* the last change: an interrupted replay left failed -> queued by heraldctl */
	[P_LAST] = { "parked_last",
		"SELECT a.old_status, a.new_status, a.worker FROM notification_audit a"
		" JOIN notifications n ON n.id = a.notification_id"
		" WHERE n.transaction_id = ? AND n.channel = ? ORDER BY a.id DESC LIMIT 1", true },
	[P_LOCK] = { "parked_lock",
		"SELECT id, status, user_id, client_id, category, batch_id, metadata, attempt"
		" FROM notifications WHERE transaction_id = ? AND channel = ? FOR UPDATE", true },
	[P_SET] = { "parked_set",
		"UPDATE notifications SET status = ?, detail = ?, deferred_until = NULL"
		" WHERE id = ? AND status = ?" },
	[P_AUDIT] = { "parked_audit",
		"INSERT INTO notification_audit (notification_id, old_status, new_status, changed_at,"
		" host, worker, attempt, detail) VALUES (?, ?, ?, ?, ?, 'heraldctl', ?, ?)" },
	[P_EVENT] = { "parked_event",
		"INSERT INTO event_outbox (routing_key, body) VALUES (?, ?)" },
};

static const char parked_usage[] =
	"usage: heraldctl parked list CHANNEL [--txid T] [--limit N] [--format json|table]\n"
	"       heraldctl parked replay CHANNEL [--txid T] [--limit N]\n"
	"       heraldctl parked drop CHANNEL [--txid T] [--limit N]\n"
	"  list: one JSON line per parked message, nothing removed. replay: publish each again to\n"
	"  the channel queue with a fresh attempt count and record it queued (messages that do not\n"
	"  decode and the ledger's copies stay parked). drop: delete them. --txid: only that\n"
	"  transaction's; --limit: at most N messages.\n"
	"  list " CTL_FORMAT_HELP;

enum parked_op { PARKED_LIST, PARKED_REPLAY, PARKED_DROP };

struct parked {
	enum parked_op op;
	struct conf c;
	int ch;
	const char *chname;
	char queue[TOPOLOGY_NAME_MAX];
	const char *txid;                /* filter (lower case), or NULL */
	long limit;
	amqp_connection_state_t conn;
	struct db *db;                   /* NULL for drop, and for list without a database */
	char host[256];
	/* counts */
	long done, skipped, ledger, left;
	struct json_object *problems;    /* replay: [{"txid","why"}] */
	struct ctl_rows rows;            /* list: JSON Lines, or the rows of one table */
};

/* One message taken from the parking queue. */
struct parked_msg {
	uint64_t tag;
	amqp_message_t m;
	struct note *note;               /* decoded, or NULL */
	char txid[TXID_LEN + 1];         /* from the body, else the x-herald-txid header; "" none */
	char why[400];                   /* why it does not decode */
	bool ledger;                     /* x-herald-source=ledger */
};

/* parked_header - header NAME of PROPS, or NULL */
static const amqp_field_value_t *parked_header(const amqp_basic_properties_t *props,
    const char *name)
{
	size_t len = strlen(name);
	int i;

	if (!(props->_flags & AMQP_BASIC_HEADERS_FLAG))
		return NULL;
	for (i = 0; i < props->headers.num_entries; i++) {
		const amqp_bytes_t *k = &props->headers.entries[i].key;

		if (k->len == len && memcmp(k->bytes, name, len) == 0)
			return &props->headers.entries[i].value;
	}
	return NULL;
}

/* parked_header_json - header NAME of PROPS as JSON (string or integer), or NULL */
static struct json_object *parked_header_json(const amqp_basic_properties_t *props,
    const char *name)
{
	const amqp_field_value_t *v = parked_header(props, name);

	if (v == NULL)
		return NULL;
	switch (v->kind) {
	case AMQP_FIELD_KIND_UTF8:
	case AMQP_FIELD_KIND_BYTES:
		return json_object_new_string_len((const char *)v->value.bytes.bytes,
		    (int)v->value.bytes.len);
	case AMQP_FIELD_KIND_I8: return json_object_new_int(v->value.i8);
	case AMQP_FIELD_KIND_U8: return json_object_new_int(v->value.u8);
	case AMQP_FIELD_KIND_I16: return json_object_new_int(v->value.i16);
	case AMQP_FIELD_KIND_U16: return json_object_new_int(v->value.u16);
	case AMQP_FIELD_KIND_I32: return json_object_new_int(v->value.i32);
	case AMQP_FIELD_KIND_U32: return json_object_new_int64(v->value.u32);
	case AMQP_FIELD_KIND_I64: return json_object_new_int64(v->value.i64);
	case AMQP_FIELD_KIND_TIMESTAMP: return json_object_new_int64((int64_t)v->value.u64);
	default: return NULL;
	}
}

/* parked_header_is - whether header NAME of PROPS is the string S */
static bool parked_header_is(const amqp_basic_properties_t *props, const char *name,
    const char *s)
{
	const amqp_field_value_t *v = parked_header(props, name);

	return v != NULL && (v->kind == AMQP_FIELD_KIND_UTF8 || v->kind == AMQP_FIELD_KIND_BYTES) &&
	    v->value.bytes.len == strlen(s) && memcmp(v->value.bytes.bytes, s, strlen(s)) == 0;
}

/* parked_msg_free - release what parked_get filled in M */
static void parked_msg_free(struct parked_msg *m)
{
	codec_note_free(m->note);
	amqp_destroy_message(&m->m);
	m->note = NULL;
}

/* parked_decode - decode M's body for channel P->ch; its txid from the body or the header */
static void parked_decode(const struct parked *p, struct parked_msg *m)
{
	const amqp_basic_properties_t *props = &m->m.properties;
	const amqp_field_value_t *h;
	struct codec_error e;

	m->txid[0] = '\0';
	m->why[0] = '\0';
	m->ledger = parked_header_is(props, "x-herald-source", "ledger");
	if (codec_note_decode(m->m.body.bytes, m->m.body.len, &m->note, &e) == 0) {
		if (m->note->channel == (enum codec_channel)p->ch) {
			memcpy(m->txid, m->note->txid, sizeof m->txid);
			return;
		}
		codec_note_free(m->note);
		m->note = NULL;
		snprintf(e.field, sizeof e.field, "channel");
		snprintf(e.message, sizeof e.message, "a message for another channel");
	}
	snprintf(m->why, sizeof m->why, "undecodable: %s%s%s", e.field, e.field[0] ? ": " : "",
	    e.message);
	h = parked_header(props, "x-herald-txid");
	if (h != NULL && (h->kind == AMQP_FIELD_KIND_UTF8 || h->kind == AMQP_FIELD_KIND_BYTES) &&
	    h->value.bytes.len == TXID_LEN) {
		memcpy(m->txid, h->value.bytes.bytes, TXID_LEN);
		m->txid[TXID_LEN] = '\0';
		if (!txid_valid(ctl_lower(m->txid)))
			m->txid[0] = '\0';
	}
}

/* parked_broker_fail - print what failed on the broker; EX_UNAVAILABLE */
static int parked_broker_fail(struct parked *p, amqp_rpc_reply_t r, const char *what)
{
	char err[512];

	topology_rpc_error(p->conn, PARKED_CHAN, r, what, err, sizeof err);
	fprintf(stderr, "heraldctl parked: %s\n", err);
	return EX_UNAVAILABLE;
}

/* parked_get - take the next message into M without ack: 1, 0 when the queue is empty, or an
 * EX_ code (printed) */
static int parked_get(struct parked *p, struct parked_msg *m)
{
	amqp_rpc_reply_t r;

	memset(m, 0, sizeof *m);
	amqp_maybe_release_buffers(p->conn);
	r = amqp_basic_get(p->conn, PARKED_CHAN, amqp_cstring_bytes(p->queue), 0);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		return parked_broker_fail(p, r, "basic.get");
	if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
		return 0;
	m->tag = ((amqp_basic_get_ok_t *)r.reply.decoded)->delivery_tag;
	r = amqp_read_message(p->conn, PARKED_CHAN, &m->m, 0);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		return parked_broker_fail(p, r, "reading a message");
	parked_decode(p, m);
	return 1;
}

/* parked_json_field - field KEY of the JSON object text S (a JSON column) as a new reference,
 * or NULL */
static struct json_object *parked_json_field(const char *s, size_t len, const char *key)
{
	struct json_object *o = ctl_json_text(s, len), *v = NULL;

	if (o != NULL && json_object_is_type(o, json_type_object) &&
	    json_object_object_get_ex(o, key, &v))
		json_object_get(v);
	else
		v = NULL;
	json_object_put(o);
	return v;
}

/* parked_list_one - print M as one JSON line */
static void parked_list_one(struct parked *p, const struct parked_msg *m)
{
	const amqp_basic_properties_t *props = &m->m.properties;
	struct json_object *o = json_object_new_object(), *reason, *attempt, *status = NULL;

	reason = parked_header_json(props, "x-herald-parked-reason");
	if (p->db != NULL && m->txid[0] != '\0' &&
	    db_exec(p->db, P_GET, DB_ARGS(db_str(m->txid), db_str(p->chname))) == 0 &&
	    db_fetch(p->db, P_GET) == 1) {
		size_t len;
		const char *d = db_col_str(p->db, P_GET, 1, &len), *st;

		if ((st = db_col_str(p->db, P_GET, 0, NULL)) != NULL)
			status = json_object_new_string(st);
		if (reason == NULL && d != NULL)
			reason = parked_json_field(d, len, "reason");
	}
	if (reason == NULL && m->note == NULL)
		reason = json_object_new_string("undecodable");
	if ((attempt = parked_header_json(props, "x-herald-attempt")) == NULL && m->note != NULL)
		attempt = json_object_new_int64(m->note->attempt);
	json_object_object_add(o, "txid", m->txid[0] ? json_object_new_string(m->txid) : NULL);
	json_object_object_add(o, "channel", json_object_new_string(p->chname));
	json_object_object_add(o, "reason", reason);
	json_object_object_add(o, "source", json_object_new_string(m->ledger ? "ledger" : "worker"));
	json_object_object_add(o, "attempt", attempt);
	json_object_object_add(o, "parked_at", parked_header_json(props, "x-herald-parked-at"));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)m->m.body.len));
	json_object_object_add(o, "message_id", (props->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) ?
	    json_object_new_string_len((const char *)props->message_id.bytes,
	    (int)props->message_id.len) : NULL);
	json_object_object_add(o, "status", status);
	if (m->note == NULL)
		json_object_object_add(o, "error", json_object_new_string(m->why));
	ctl_rows_add(&p->rows, o);
}

/* parked_left - note that M stays parked because WHY (replay) */
static void parked_left(struct parked *p, const struct parked_msg *m, const char *why)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "txid", m->txid[0] ? json_object_new_string(m->txid) : NULL);
	json_object_object_add(o, "why", json_object_new_string(why));
	json_object_array_add(p->problems, o);
	p->left++;
}

/* parked_skip_header - whether header KEY is dropped from a replayed copy: the attempt count
 * (it starts afresh), the parking notes and the broker's dead-lettering history */
static bool parked_skip_header(const amqp_bytes_t *k)
{
	static const char *const drop[] = {
		"x-herald-attempt", "x-herald-source", "x-death", NULL
	};
	static const char *const prefix[] = {
		"x-herald-parked-", "x-first-death-", "x-last-death-", NULL
	};
	size_t i;

	for (i = 0; drop[i] != NULL; i++)
		if (k->len == strlen(drop[i]) && memcmp(k->bytes, drop[i], k->len) == 0)
			return true;
	for (i = 0; prefix[i] != NULL; i++)
		if (k->len >= strlen(prefix[i]) && memcmp(k->bytes, prefix[i], strlen(prefix[i])) == 0)
			return true;
	return false;
}

/* parked_confirm - the broker's confirm of the one message published; 0, or -1 with WHY */
static int parked_confirm(struct parked *p, char *why, size_t whylen)
{
	char b[256];

	if (broker_confirm_one(p->conn, p->c.broker.confirm_timeout, b, sizeof b) == 0)
		return 0;
	snprintf(why, whylen, "%s %s: %s", TOPOLOGY_EXCHANGE, p->chname, b);
	return -1;
}

/* parked_publish - publish M to the channel queue as a fresh message, confirmed; 0 or -1 */
static int parked_publish(struct parked *p, const struct parked_msg *m, char *why, size_t whylen)
{
	const amqp_basic_properties_t *in = &m->m.properties;
	amqp_table_entry_t e[PARKED_HEADERS_MAX];
	amqp_basic_properties_t props = *in;
	const char *user = broker_user(&p->c.broker);
	int i, k = 0, rc;

	if (in->_flags & AMQP_BASIC_HEADERS_FLAG) {
		for (i = 0; i < in->headers.num_entries; i++) {
			if (parked_skip_header(&in->headers.entries[i].key))
				continue;
			if (k == PARKED_HEADERS_MAX) {
				snprintf(why, whylen, "more than %d headers", PARKED_HEADERS_MAX);
				return -1;
			}
			e[k++] = in->headers.entries[i];
		}
		props.headers.num_entries = k;
		props.headers.entries = e;
	}
	/* the broker checks user_id against the publishing user: keep it only when that is us */
	if ((props._flags & AMQP_BASIC_USER_ID_FLAG) && (props.user_id.len != strlen(user) ||
	    memcmp(props.user_id.bytes, user, props.user_id.len) != 0))
		props._flags &= ~(amqp_flags_t)AMQP_BASIC_USER_ID_FLAG;
	props._flags &= ~(amqp_flags_t)AMQP_BASIC_EXPIRATION_FLAG;
	props._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
	props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
	rc = amqp_basic_publish(p->conn, PARKED_CHAN, amqp_cstring_bytes(TOPOLOGY_EXCHANGE),
	    amqp_cstring_bytes(p->chname), 1, 0, &props, m->m.body);
	if (rc != AMQP_STATUS_OK) {
		snprintf(why, whylen, "publish failed: %s", amqp_error_string2(rc));
		return -1;
	}
	return parked_confirm(p, why, whylen);
}

/* parked_status - the status of M's notification now into ST ("" when there is no row), and
 * into *RESUME whether its last change was a replay by heraldctl (failed -> queued) */
static int parked_status(struct parked *p, const struct parked_msg *m, char *st, size_t len,
    bool *resume)
{
	int rc;

	st[0] = '\0';
	*resume = false;
	if ((rc = db_exec(p->db, P_GET, DB_ARGS(db_str(m->txid), db_str(p->chname)))) != 0)
		return rc;
	while ((rc = db_fetch(p->db, P_GET)) == 1) {
		const char *s = db_col_str(p->db, P_GET, 0, NULL);

		snprintf(st, len, "%s", s != NULL ? s : "");
	}
	if (rc < 0 || strcmp(st, "queued") != 0)
		return rc < 0 ? rc : 0;
	if ((rc = db_exec(p->db, P_LAST, DB_ARGS(db_str(m->txid), db_str(p->chname)))) != 0)
		return rc;
	while ((rc = db_fetch(p->db, P_LAST)) == 1) {
		const char *o = db_col_str(p->db, P_LAST, 0, NULL), *n = db_col_str(p->db, P_LAST, 1,
		    NULL), *w = db_col_str(p->db, P_LAST, 2, NULL);

		*resume = o != NULL && n != NULL && w != NULL && strcmp(o, "failed") == 0 &&
		    strcmp(n, "queued") == 0 && strcmp(w, "heraldctl") == 0;
	}
	return rc < 0 ? rc : 0;
}

/* parked_event - the §3 event body of FROM -> TO of the locked row (P_LOCK) at NOW */
static char *parked_event(struct parked *p, const char *txid, const char *from, const char *to,
    struct json_object *detail, int64_t now)
{
	struct json_object *o = json_object_new_object(), *meta = NULL;
	const char *s;
	size_t len;
	char *out;
	unsigned c;

	json_object_object_add(o, "transaction_id", json_object_new_string(txid));
	json_object_object_add(o, "channel", json_object_new_string(p->chname));
	for (c = 2; c <= 5; c++) {
		static const char *const keys[] = { "user_id", "client_id", "category", "batch_id" };

		s = db_col_str(p->db, P_LOCK, c, &len);
		json_object_object_add(o, keys[c - 2], s ? json_object_new_string_len(s, (int)len) : NULL);
	}
	if ((s = db_col_str(p->db, P_LOCK, 6, &len)) != NULL)
		meta = ctl_json_text(s, len);
	json_object_object_add(o, "metadata", meta);
	json_object_object_add(o, "status", json_object_new_string(to));
	json_object_object_add(o, "previous", json_object_new_string(from));
	json_object_object_add(o, "attempt", json_object_new_int64(db_col_i64(p->db, P_LOCK, 7)));
	json_object_object_add(o, "at", ctl_time(now));
	json_object_object_add(o, "detail", json_object_get(detail));
	out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return out;
}

/* parked_change_once - FROM -> TO with its audit row and event, in one transaction; 1 written,
 * 0 the status is not FROM (nothing written), or a DB_ error */
static int parked_change_once(struct parked *p, const char *txid, const char *from,
    const char *to, struct json_object *detail)
{
	const char *d = json_object_to_json_string_ext(detail, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
	int64_t now = rfc3339_now(), id = 0, attempt = 0;
	char key[64], *event = NULL;
	int rc;

	if ((rc = db_begin(p->db)) != 0)
		return rc;
	if ((rc = db_exec(p->db, P_LOCK, DB_ARGS(db_str(txid), db_str(p->chname)))) != 0)
		goto fail;
	while ((rc = db_fetch(p->db, P_LOCK)) == 1) {
		const char *st = db_col_str(p->db, P_LOCK, 1, NULL);

		if (st == NULL || strcmp(st, from) != 0 || event != NULL)
			continue;
		id = db_col_i64(p->db, P_LOCK, 0);
		attempt = db_col_i64(p->db, P_LOCK, 7);
		if ((event = parked_event(p, txid, from, to, detail, now)) == NULL) {
			rc = DB_ERR;
			goto fail;
		}
	}
	if (rc < 0)
		goto fail;
	if (event == NULL) {
		db_rollback(p->db);
		return 0;
	}
	snprintf(key, sizeof key, "%s.%s", p->chname, to);
	if ((rc = db_exec(p->db, P_SET, DB_ARGS(db_str(to), db_str(d), db_i64(id), db_str(from)))) != 0 ||
	    (rc = db_exec(p->db, P_AUDIT, DB_ARGS(db_i64(id), db_str(from), db_str(to), db_time(now),
	    db_str(p->host), db_i64(attempt), db_str(d)))) != 0 ||
	    (rc = db_exec(p->db, P_EVENT, DB_ARGS(db_str(key), db_str(event)))) != 0)
		goto fail;
	free(event);
	return (rc = db_commit(p->db)) == 0 ? 1 : rc;
fail:
	free(event);
	db_rollback(p->db);
	return rc;
}

/* parked_change - parked_change_once with DETAIL {"reason": REASON, "by", "queue"} (+ ERROR),
 * run again after a lost connection or a deadlock */
static int parked_change(struct parked *p, const char *txid, const char *from, const char *to,
    const char *reason, const char *error)
{
	struct json_object *detail = json_object_new_object();
	int rc = DB_ERR, tries;

	json_object_object_add(detail, "reason", json_object_new_string(reason));
	json_object_object_add(detail, "by", json_object_new_string("heraldctl parked replay"));
	json_object_object_add(detail, "queue", json_object_new_string(p->queue));
	if (error != NULL)
		json_object_object_add(detail, "error", json_object_new_string(error));
	for (tries = 0; tries < PARKED_TRIES; tries++)
		if ((rc = parked_change_once(p, txid, from, to, detail)) != DB_ERETRY)
			break;
	json_object_put(detail);
	return rc;
}

/* parked_replay_one - replay M (see the top of the file); 0 handled (replayed or left), or an
 * EX_ code when the broker or the database failed (printed; stop there) */
static int parked_replay_one(struct parked *p, const struct parked_msg *m)
{
	char st[16], why[512];
	bool resume;
	int rc;

	if (m->ledger) {
		p->ledger++;
		return 0;
	}
	if (m->note == NULL) {
		parked_left(p, m, m->why);
		return 0;
	}
	if ((rc = parked_status(p, m, st, sizeof st, &resume)) != 0)
		goto db_fail;
	if (st[0] != '\0' && strcmp(st, "failed") != 0 && !resume) {
		snprintf(why, sizeof why, "status is %s, not failed: %s", st, strcmp(st, "done") == 0 ?
		    "replaying would deliver it again (a stale copy: drop it)" :
		    "a worker has it, or it ended otherwise (drop the stale copy)");
		parked_left(p, m, why);
		return 0;
	}
	if (strcmp(st, "failed") == 0) {
		if ((rc = parked_change(p, m->txid, "failed", "queued", "replay", NULL)) < 0)
			goto db_fail;
		if (rc == 0) {
			parked_left(p, m, "its status changed meanwhile: run replay again");
			return 0;
		}
	}
	if (parked_publish(p, m, why, sizeof why) != 0) {
		fprintf(stderr, "heraldctl parked: replay %s to exchange %s key %s: %s\n", m->txid,
		    TOPOLOGY_EXCHANGE, p->chname, why);
		parked_left(p, m, why);
		if (st[0] != '\0' && parked_change(p, m->txid, "queued", "failed", "replay_failed",
		    why) < 0)
			fprintf(stderr, "heraldctl parked: %s stays queued with no message: run replay"
			    " again (it resumes it)\n", m->txid);
		return EX_UNAVAILABLE;
	}
	if ((rc = amqp_basic_ack(p->conn, PARKED_CHAN, m->tag, 0)) != AMQP_STATUS_OK) {
		fprintf(stderr, "heraldctl parked: replay %s: ack of the parked copy failed (%s): it"
		    " stays parked (replay leaves it once the transaction ended; drop it)\n", m->txid,
		    amqp_error_string2(rc));
		return EX_UNAVAILABLE;
	}
	p->done++;
	return 0;
db_fail:
	fprintf(stderr, "heraldctl parked: database %s: %s\n", db_target(p->db), db_error(p->db));
	parked_left(p, m, "database error");
	return ctl_db_fail(p->db, rc);
}

/* parked_walk - take up to COUNT messages and handle each for P->op; 0 or an EX_ code */
static int parked_walk(struct parked *p, uint32_t count)
{
	struct parked_msg m;
	uint32_t i;
	int rc = 0, got;

	for (i = 0; i < count && p->done < p->limit; i++) {
		if ((got = parked_get(p, &m)) != 1) {
			rc = got;       /* 0: the queue is empty */
			break;
		}
		if (p->txid != NULL && strcmp(m.txid, p->txid) != 0) {
			p->skipped++;
		} else if (p->op == PARKED_LIST) {
			parked_list_one(p, &m);
			p->done++;
		} else if (p->op == PARKED_DROP) {
			if ((got = amqp_basic_ack(p->conn, PARKED_CHAN, m.tag, 0)) != AMQP_STATUS_OK) {
				fprintf(stderr, "heraldctl parked: ack failed: %s\n", amqp_error_string2(got));
				rc = EX_UNAVAILABLE;
			} else {
				p->done++;
			}
		} else {
			rc = parked_replay_one(p, &m);
		}
		parked_msg_free(&m);
		if (rc != 0)
			break;
	}
	return rc;
}

/* parked_open - the broker connection and the passive declare of the parking queue (its
 * message count into *COUNT); 0 or an EX_ code (printed) */
static int parked_open(struct parked *p, uint32_t *count)
{
	amqp_queue_declare_ok_t *ok;
	char err[768];
	int config = 0;

	p->conn = broker_open(&p->c.broker, "heraldctl", PARKED_CHAN, &config, err, sizeof err);
	if (p->conn == NULL) {
		fprintf(stderr, "heraldctl parked: %s\n", err);
		return config ? EX_CONFIG : EX_UNAVAILABLE;
	}
	ok = amqp_queue_declare(p->conn, PARKED_CHAN, amqp_cstring_bytes(p->queue), 1, 0, 0, 0,
	    amqp_empty_table);
	if (ok == NULL) {
		amqp_rpc_reply_t r = amqp_get_rpc_reply(p->conn);

		topology_rpc_error(p->conn, PARKED_CHAN, r, p->queue, err, sizeof err);
		fprintf(stderr, "heraldctl parked: %s%s\n", err, r.reply_type ==
		    AMQP_RESPONSE_SERVER_EXCEPTION ? " (heraldd declares the queues when it starts)" : "");
		return EX_UNAVAILABLE;
	}
	*count = ok->message_count;
	if (p->op == PARKED_REPLAY) {
		amqp_confirm_select(p->conn, PARKED_CHAN);
		if (!broker_rpc_ok(p->conn, PARKED_CHAN, "confirm.select")) {
			fprintf(stderr, "heraldctl parked: confirm.select refused by the broker\n");
			return EX_UNAVAILABLE;
		}
	}
	return 0;
}

/* parked_close - close the channel (the broker requeues what was not acked) and the connection */
static void parked_close(struct parked *p)
{
	broker_close(&p->conn, PARKED_CHAN);
}

/* parked_summary - the summary line of replay or drop */
static void parked_summary(struct parked *p)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "channel", json_object_new_string(p->chname));
	json_object_object_add(o, p->op == PARKED_DROP ? "dropped" : "replayed",
	    json_object_new_int64(p->done));
	if (p->op == PARKED_REPLAY) {
		json_object_object_add(o, "left", json_object_new_int64(p->left));
		json_object_object_add(o, "ledger_copies", json_object_new_int64(p->ledger));
		json_object_object_add(o, "problems", json_object_get(p->problems));
	}
	if (p->txid != NULL)
		json_object_object_add(o, "other_txids", json_object_new_int64(p->skipped));
	ctl_print(o);
}

/* parked_args - the subcommand, CHANNEL and options of ARGV into P; 0, CTL_HELP or EX_USAGE */
static int parked_args(struct parked *p, int argc, char **argv, char *txid)
{
	const char *tx = NULL, *limit = NULL, *format = NULL, *pos[1];
	const struct ctl_opt opts[] = {
		{ "--txid", &tx, NULL }, { "--limit", &limit, NULL }, { "--format", &format, NULL },
		{ NULL, NULL, NULL }
	};
	char *end;
	int np, rc;

	if (argc < 2)
		return ctl_usage("parked", parked_usage, "a subcommand is required (list, replay or"
		    " drop)");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return fputs(parked_usage, stdout), CTL_HELP;
	if (strcmp(argv[1], "list") == 0)
		p->op = PARKED_LIST;
	else if (strcmp(argv[1], "replay") == 0)
		p->op = PARKED_REPLAY;
	else if (strcmp(argv[1], "drop") == 0)
		p->op = PARKED_DROP;
	else
		return ctl_usage("parked", parked_usage, "unknown subcommand '%s' (list, replay or"
		    " drop)", argv[1]);
	if ((rc = ctl_args("parked", parked_usage, argc - 2, argv + 2, opts, pos, 1, &np)) != 0)
		return rc;
	if (np == 0)
		return ctl_usage("parked", parked_usage, "CHANNEL is required");
	if (format != NULL && p->op != PARKED_LIST)
		return ctl_usage("parked", parked_usage, "--format is for parked list");
	if ((rc = ctl_fmt_parse("parked", parked_usage, format, &p->rows.fmt)) != 0)
		return rc;
	if ((p->ch = conf_channel_parse(pos[0])) < 0)
		return ctl_usage("parked", parked_usage, "'%s': unknown channel (email, sms, push,"
		    " webhook)", pos[0]);
	p->chname = conf_channel_name(p->ch);
	if (tx != NULL) {
		snprintf(txid, TXID_LEN + 1, "%s", tx);
		if (strlen(tx) != TXID_LEN || !txid_valid(ctl_lower(txid)))
			return ctl_usage("parked", parked_usage, "--txid '%s': not a transaction id (a"
			    " canonical UUID)", tx);
		p->txid = txid;
	}
	p->limit = PARKED_LIMIT_MAX;
	if (limit != NULL) {
		errno = 0;
		p->limit = strtol(limit, &end, 10);
		if (errno != 0 || end == limit || *end != '\0' || p->limit < 1 ||
		    p->limit > PARKED_LIMIT_MAX)
			return ctl_usage("parked", parked_usage, "--limit '%s': not a number from 1 to"
			    " %ld", limit, PARKED_LIMIT_MAX);
	}
	return 0;
}

/* parked_cmd - "heraldctl parked list|replay|drop CHANNEL [--txid T] [--limit N]" */
int parked_cmd(const char *conf, int argc, char **argv)
{
	struct parked p;
	struct conf_error err;
	char txid[TXID_LEN + 1];
	uint32_t count = 0;
	int rc;

	memset(&p, 0, sizeof p);
	if ((rc = parked_args(&p, argc, argv, txid)) != 0)
		return rc == CTL_HELP ? EX_OK : rc;
	topology_parking_queue(p.ch, p.queue, sizeof p.queue);
	if (gethostname(p.host, sizeof p.host) != 0)
		snprintf(p.host, sizeof p.host, "localhost");
	p.host[sizeof p.host - 1] = '\0';
	if ((rc = ctl_conf(conf, &p.c)) != 0)
		return rc;
	if (conf_require(&p.c, "broker", &err) != 0) {
		fprintf(stderr, "heraldctl: %s\n", err.msg);
		rc = EX_CONFIG;
		goto out;
	}
	/* replay needs the database before anything is taken; list uses it for the reason only */
	if (p.op == PARKED_REPLAY && (rc = ctl_db_open(conf, parked_stmts, P__N, &p.db)) != 0)
		goto out;
	if (p.op == PARKED_LIST && ctl_db_open(conf, parked_stmts, P__N, &p.db) != 0)
		fprintf(stderr, "heraldctl parked: listing without the database: reason and status"
		    " come from headers only\n");
	if ((rc = parked_open(&p, &count)) != 0)
		goto out;
	p.problems = json_object_new_array();
	rc = parked_walk(&p, count);
	ctl_rows_end(&p.rows);
	if (p.op != PARKED_LIST && (rc == 0 || p.done > 0 || p.left > 0))
		parked_summary(&p);
	if (rc == 0 && p.left > 0)
		rc = 1;
out:
	parked_close(&p);
	json_object_put(p.problems);
	db_close(p.db);
	conf_free(&p.c);
	return rc;
}
