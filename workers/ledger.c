/* ledger - consume herald.ledger.v1 and record `queued` in batches, one transaction each (§3) */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
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
#include "db.h"
#include "ledger.h"
#include "log.h"
#include "master.h"
#include "rfc3339.h"
#include "topology.h"

#define LEDGER_CHAN 1
#define LEDGER_MAX_BYTES (8u << 20)    /* a batch also closes at this many body bytes, so the
                                          JSON argument stays well under max_allowed_packet */
#define LEDGER_BACKOFF_FIRST_MS 100
#define LEDGER_BACKOFF_MAX_MS 5000

/* The batch as one JSON array argument: JSON_TABLE turns it into rows inside the server, so
 * each statement handles the whole batch in one round trip. The key columns carry the exact
 * character sets of notifications' unique key: with another charset the join cannot use it.
 * The other text columns are wider than the table's on purpose: JSON_TABLE silently truncates
 * to its column size, the strict INSERT refuses a value too long (and the record is parked). */
#define LEDGER_JT_KEYS \
	"t CHAR(36) CHARACTER SET ascii COLLATE ascii_bin PATH '$.t', " \
	"c VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin PATH '$.c'"
/* the rows this batch inserted: still queued and without any audit row (a worker that
 * recorded a status first wrote its own first audit row in the same transaction) */
#define LEDGER_JT_NEW \
	" AS jt JOIN notifications n ON n.transaction_id = jt.t AND n.channel = jt.c" \
	" WHERE n.status = 'queued' AND NOT EXISTS" \
	" (SELECT 1 FROM notification_audit a WHERE a.notification_id = n.id) ORDER BY n.id"

enum { Q_NOTE, Q_OUTBOX, Q_AUDIT, Q__N };
static const struct db_stmt ledger_q[Q__N] = {
	/* ON DUPLICATE KEY UPDATE as a no-op rather than INSERT IGNORE, which would also turn data
	 * errors into warnings and store truncated values */
	[Q_NOTE] = { "ledger_insert",
	    "INSERT INTO notifications (transaction_id, channel, status, user_id, recipient, "
	    "client_id, category, priority, batch_id, metadata, template, attempt, send_at, "
	    "expires_at, created_at) "
	    "SELECT jt.t, jt.c, 'queued', jt.u, jt.r, jt.cl, jt.cat, jt.p, jt.b, jt.m, jt.tpl, 0, "
	    "jt.sa, jt.ea, jt.ca FROM JSON_TABLE(?, '$[*]' COLUMNS (" LEDGER_JT_KEYS ", "
	    "u VARCHAR(1024) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$.u', "
	    "r VARCHAR(4096) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$.r', "
	    "cl VARCHAR(1024) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$.cl', "
	    "cat VARCHAR(1024) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$.cat', "
	    "p INT PATH '$.p', "
	    "b VARCHAR(1024) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$.b', "
	    "m TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$.m', "
	    "tpl VARCHAR(1024) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$.tpl', "
	    "sa DATETIME(6) PATH '$.sa', ea DATETIME(6) PATH '$.ea', ca DATETIME(6) PATH '$.ca'"
	    ")) AS jt ON DUPLICATE KEY UPDATE id = notifications.id", true },
	/* before the audit rows: afterwards "no audit row" no longer tells the new rows apart */
	[Q_OUTBOX] = { "ledger_outbox",
	    "INSERT INTO event_outbox (routing_key, body) SELECT CONCAT(jt.c, '.queued'), jt.ev "
	    "FROM JSON_TABLE(?, '$[*]' COLUMNS (" LEDGER_JT_KEYS ", "
	    "ev MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$.ev'))" LEDGER_JT_NEW,
	    false },
	[Q_AUDIT] = { "ledger_audit",
	    "INSERT INTO notification_audit (notification_id, old_status, new_status, changed_at, "
	    "host, worker, attempt, detail) SELECT n.id, NULL, 'queued', ?, ?, ?, 0, NULL "
	    "FROM JSON_TABLE(?, '$[*]' COLUMNS (" LEDGER_JT_KEYS "))" LEDGER_JT_NEW, false },
};

/* What a recording attempt came to. */
enum ledger_rec { LREC_OK, LREC_RETRY, LREC_DATA };

struct ledger_msg {
	uint64_t tag;
	struct note *note;
	bool parked;                    /* refused by the database and parked: skip it */
};

struct ledger {
	const struct conf *c;
	amqp_connection_state_t conn;   /* NULL: not connected */
	struct db *db;
	struct ledger_msg *m;           /* the batch, in delivery order */
	size_t n, cap;
	size_t bytes;                   /* body bytes in the batch */
	int64_t first_ms;               /* monotonic time of the batch's first record */
	int batch;
	int prefetch;
	int64_t stop_ms;                /* when the stop request was seen, 0 before */
	int64_t build_ms, db_ms;        /* the last recording: building the argument, the database */
	char host[256];
	char worker[64];
	unsigned rnd;
	bool acked;                     /* the first ack was told to the master */
};

static volatile sig_atomic_t ledger_stopping, ledger_reopen;

/* ledger_signal_cb - SIGTERM/SIGINT: flush, ack and stop; SIGUSR1: reopen the log */
void ledger_signal_cb(int sig)
{
	if (sig == SIGUSR1)
		ledger_reopen = 1;
	else
		ledger_stopping = 1;
}

/* ledger_signals - install ledger_signal_cb for SIGTERM, SIGINT and SIGUSR1 without
 * SA_RESTART, so a blocking wait returns early */
void ledger_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = ledger_signal_cb;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
}

/* ledger_now_ms - monotonic milliseconds */
static int64_t ledger_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ledger_stop_seen - whether a stop was requested (noting when it was first seen) */
static bool ledger_stop_seen(struct ledger *l)
{
	if (!ledger_stopping)
		return false;
	if (l->stop_ms == 0)
		l->stop_ms = ledger_now_ms();
	return true;
}

/* ledger_backoff_ms - the delay before retry N (1-based): 100 ms doubling to 5 s, +-25 % */
static long ledger_backoff_ms(struct ledger *l, int n)
{
	long ms = LEDGER_BACKOFF_FIRST_MS;

	while (--n > 0 && ms < LEDGER_BACKOFF_MAX_MS)
		ms *= 2;
	if (ms > LEDGER_BACKOFF_MAX_MS)
		ms = LEDGER_BACKOFF_MAX_MS;
	l->rnd = l->rnd * 1103515245u + 12345u;
	return ms * 3 / 4 + (long)((l->rnd >> 8) % (unsigned)(ms / 2 + 1));
}

/* ledger_datetime - USEC as "YYYY-MM-DD hh:mm:ss.ffffff" (UTC), what DATETIME(6) reads */
static const char *ledger_datetime(int64_t usec, char *out, size_t len)
{
	time_t s = (time_t)(usec / 1000000);
	long us = (long)(usec % 1000000);
	struct tm tm;

	if (us < 0) {
		us += 1000000;
		s--;
	}
	gmtime_r(&s, &tm);
	snprintf(out, len, "%04d-%02d-%02d %02d:%02d:%02d.%06ld", tm.tm_year + 1900, tm.tm_mon + 1,
	    tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, us);
	return out;
}

/* ledger_batch_free - release the notes of the batch and empty it */
static void ledger_batch_free(struct ledger *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		codec_note_free(l->m[i].note);
	l->n = 0;
	l->bytes = 0;
}

/* ledger_drop - close the broker connection after a failure; the unacked records come back */
static void ledger_drop(struct ledger *l)
{
	if (l->conn == NULL)
		return;
	amqp_destroy_connection(l->conn);
	l->conn = NULL;
	if (l->n > 0)
		log_warnx("event=batch_dropped records=%zu note=\"broker connection lost: the broker "
		    "redelivers them\"", l->n);
	ledger_batch_free(l);
}

/* ledger_connect - connect, declare the topology, set the prefetch, start consuming */
static int ledger_connect(struct ledger *l)
{
	char err[768];

	l->conn = broker_open(&l->c->broker, "heraldd-ledger", LEDGER_CHAN, NULL, err, sizeof err);
	if (l->conn == NULL) {
		log_warnx("event=broker_connect_failed err=\"%s\"", err);
		return -1;
	}
	if (topology_declare(l->conn, LEDGER_CHAN, l->c, err, sizeof err) < 0) {
		log_warnx("event=topology_failed err=\"%s\"", err);
		goto fail;
	}
	amqp_basic_qos(l->conn, LEDGER_CHAN, 0, (uint16_t)l->prefetch, 0);
	if (!broker_rpc_ok(l->conn, LEDGER_CHAN, "basic.qos"))
		goto fail;
	amqp_basic_consume(l->conn, LEDGER_CHAN, amqp_cstring_bytes(TOPOLOGY_LEDGER_QUEUE),
	    amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	if (!broker_rpc_ok(l->conn, LEDGER_CHAN, "basic.consume " TOPOLOGY_LEDGER_QUEUE))
		goto fail;
	log_info("event=consuming queue=%s prefetch=%d batch=%d flush_ms=%d", TOPOLOGY_LEDGER_QUEUE,
	    l->prefetch, l->batch, l->c->ledger.flush_ms);
	return 0;
fail:
	amqp_destroy_connection(l->conn);
	l->conn = NULL;
	return -1;
}

/* ledger_header - the string header KEY of P into BUF ("" when absent or not a string) */
static const char *ledger_header(const amqp_basic_properties_t *p, const char *key, char *buf,
	size_t len)
{
	int i;

	buf[0] = '\0';
	if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
		return buf;
	for (i = 0; i < p->headers.num_entries; i++) {
		const amqp_table_entry_t *e = &p->headers.entries[i];

		if (e->key.len != strlen(key) || memcmp(e->key.bytes, key, e->key.len) != 0)
			continue;
		if (e->value.kind == AMQP_FIELD_KIND_UTF8 || e->value.kind == AMQP_FIELD_KIND_BYTES)
			snprintf(buf, len, "%.*s", (int)e->value.value.bytes.len,
			    (const char *)e->value.value.bytes.bytes);
		break;
	}
	return buf;
}

/* ledger_park_wait - wait on PC for the confirm of the one message published; 0 when acked */
static int ledger_park_wait(struct ledger *l, amqp_connection_state_t pc, const char *q)
{
	char why[256];

	if (broker_confirm_one(pc, l->c->broker.confirm_timeout, why, sizeof why) == 0)
		return 0;
	log_warnx("event=park_failed queue=%s err=\"%s\"", q, why);
	return -1;
}

/* ledger_park - publish BODY to the parking queue of channel CH with ORIG's properties (NULL:
 * minimal ones naming MSGID) plus x-herald-source=ledger and x-herald-parked-reason=REASON,
 * on a connection of its own with a confirm; 0 once the broker confirmed it */
static int ledger_park(struct ledger *l, int ch, amqp_bytes_t body,
	const amqp_basic_properties_t *orig, const char *msgid, const char *reason)
{
	char q[TOPOLOGY_NAME_MAX], err[768], txid[64];
	amqp_connection_state_t pc;
	amqp_basic_properties_t pr;
	amqp_table_entry_t *e;
	int i, ne = 0, norig = 0, rc = -1;

	topology_parking_queue(ch, q, sizeof q);
	memset(&pr, 0, sizeof pr);
	if (orig != NULL) {
		pr = *orig;
		if (orig->_flags & AMQP_BASIC_HEADERS_FLAG)
			norig = orig->headers.num_entries;
	}
	if ((e = calloc((size_t)norig + 3, sizeof *e)) == NULL) {
		log_warnx("event=park_failed queue=%s err=\"out of memory\"", q);
		return -1;
	}
	for (i = 0; i < norig; i++) {
		const amqp_bytes_t *k = &orig->headers.entries[i].key;

		if ((k->len == 15 && memcmp(k->bytes, "x-herald-source", 15) == 0) ||
		    (k->len == 22 && memcmp(k->bytes, "x-herald-parked-reason", 22) == 0))
			continue;
		e[ne++] = orig->headers.entries[i];
	}
	if (orig == NULL) {
		/* a record the database refused: name it as the producer did */
		snprintf(txid, sizeof txid, "%.*s", (int)strcspn(msgid, ":"), msgid);
		e[ne].key = amqp_cstring_bytes("x-herald-txid");
		e[ne].value.kind = AMQP_FIELD_KIND_UTF8;
		e[ne++].value.value.bytes = amqp_cstring_bytes(txid);
		pr._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
		pr.content_type = amqp_cstring_bytes("application/json");
		pr.message_id = amqp_cstring_bytes(msgid);
	}
	e[ne].key = amqp_cstring_bytes("x-herald-source");
	e[ne].value.kind = AMQP_FIELD_KIND_UTF8;
	e[ne++].value.value.bytes = amqp_cstring_bytes("ledger");
	e[ne].key = amqp_cstring_bytes("x-herald-parked-reason");
	e[ne].value.kind = AMQP_FIELD_KIND_UTF8;
	e[ne++].value.value.bytes = amqp_cstring_bytes(reason);
	/* the broker checks user_id against the publishing user: the producer's is not ours */
	pr._flags &= ~(amqp_flags_t)(AMQP_BASIC_USER_ID_FLAG | AMQP_BASIC_EXPIRATION_FLAG);
	pr._flags |= AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
	pr.delivery_mode = AMQP_DELIVERY_PERSISTENT;
	pr.headers.num_entries = ne;
	pr.headers.entries = e;

	pc = broker_open(&l->c->broker, "heraldd-ledger-park", 1, NULL, err, sizeof err);
	if (pc == NULL) {
		log_warnx("event=park_failed queue=%s err=\"%s\"", q, err);
		free(e);
		return -1;
	}
	amqp_confirm_select(pc, 1);
	if (!broker_rpc_ok(pc, LEDGER_CHAN, "confirm.select"))
		goto out;
	if ((i = amqp_basic_publish(pc, 1, amqp_empty_bytes, amqp_cstring_bytes(q), 1, 0, &pr,
	    body)) != AMQP_STATUS_OK) {
		log_warnx("event=park_failed queue=%s err=\"%s\"", q, amqp_error_string2(i));
		goto out;
	}
	rc = ledger_park_wait(l, pc, q);
	if (rc == 0)
		amqp_connection_close(pc, AMQP_REPLY_SUCCESS);
out:
	amqp_destroy_connection(pc);
	free(e);
	return rc;
}

/* ledger_poison - a record whose body does not decode: park it (channel named in its headers)
 * and ack it, or log and reject it; -1 when the broker connection must be dropped */
static int ledger_poison(struct ledger *l, const amqp_envelope_t *env, const char *msgid,
	const struct codec_error *ce)
{
	char chname[32], reason[512], qid[300], qr[600];
	int ch, rc;

	ledger_header(&env->message.properties, "x-herald-channel", chname, sizeof chname);
	ch = conf_channel_parse(chname);
	snprintf(reason, sizeof reason, "ledger: undecodable record: %s%s%s", ce->field,
	    ce->field[0] != '\0' ? ": " : "", ce->message);
	log_quote(qid, sizeof qid, msgid);
	log_quote(qr, sizeof qr, reason);
	if (ch < 0) {
		log_error("event=record_rejected msgid=%s bytes=%zu reason=%s note=\"no channel to "
		    "park it in: rejected without requeue\"", qid, env->message.body.len, qr);
		rc = amqp_basic_reject(l->conn, LEDGER_CHAN, env->delivery_tag, 0);
	} else {
		if (ledger_park(l, ch, env->message.body, &env->message.properties, msgid,
		    reason) < 0)
			return -1;     /* redelivered after the reconnect, parked then */
		log_warnx("event=record_parked msgid=%s channel=%s bytes=%zu reason=%s", qid,
		    conf_channel_name(ch), env->message.body.len, qr);
		rc = amqp_basic_ack(l->conn, LEDGER_CHAN, env->delivery_tag, 0);
	}
	if (rc != AMQP_STATUS_OK) {
		log_warnx("event=broker_error op=ack err=\"%s\"", amqp_error_string2(rc));
		return -1;
	}
	return 0;
}

/* ledger_take - add the delivery ENV to the batch (or deal with it as poison) */
static int ledger_take(struct ledger *l, const amqp_envelope_t *env)
{
	const amqp_basic_properties_t *p = &env->message.properties;
	struct codec_error ce;
	struct note *note = NULL;
	char msgid[256];

	if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
		snprintf(msgid, sizeof msgid, "%.*s", (int)p->message_id.len,
		    (const char *)p->message_id.bytes);
	else
		snprintf(msgid, sizeof msgid, "tag-%llu", (unsigned long long)env->delivery_tag);
	memset(&ce, 0, sizeof ce);
	if (codec_note_decode(env->message.body.bytes, env->message.body.len, &note, &ce) < 0)
		return ledger_poison(l, env, msgid, &ce);
	if (l->n == l->cap) {
		/* the prefetch bounds the batch; grow if a broker ever sends more */
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct ledger_msg *m = realloc(l->m, cap * sizeof *m);

		if (m == NULL) {
			codec_note_free(note);
			log_warnx("event=out_of_memory records=%zu", l->n);
			return -1;
		}
		l->m = m;
		l->cap = cap;
	}
	if (l->n == 0)
		l->first_ms = ledger_now_ms();
	l->m[l->n].tag = env->delivery_tag;
	l->m[l->n].parked = false;
	l->m[l->n++].note = note;
	l->bytes += env->message.body.len;
	return 0;
}

/* ledger_pump - wait up to MS for one delivery and take it; 0, or -1 when the broker
 * connection was lost (dropped) */
static int ledger_pump(struct ledger *l, int64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (long)(ms % 1000) * 1000 };
	amqp_envelope_t env;
	amqp_rpc_reply_t r;
	amqp_frame_t f;
	int rc;

	amqp_maybe_release_buffers(l->conn);
	r = amqp_consume_message(l->conn, &env, &tv, 0);
	if (r.reply_type == AMQP_RESPONSE_NORMAL) {
		rc = ledger_take(l, &env);
		amqp_destroy_envelope(&env);
		if (rc < 0)
			ledger_drop(l);
		return rc;
	}
	if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
	    r.library_error == AMQP_STATUS_TIMEOUT)
		return 0;
	if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
	    r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
		/* a method other than a delivery: a close or a cancel ends this connection */
		if (amqp_simple_wait_frame(l->conn, &f) == AMQP_STATUS_OK) {
			if (f.frame_type != AMQP_FRAME_METHOD ||
			    (f.payload.method.id != AMQP_CHANNEL_CLOSE_METHOD &&
			    f.payload.method.id != AMQP_CONNECTION_CLOSE_METHOD &&
			    f.payload.method.id != AMQP_BASIC_CANCEL_METHOD))
				return 0;
			log_warnx("event=broker_closed method=0x%08x", (unsigned)f.payload.method.id);
		}
	} else {
		log_warnx("event=broker_lost err=\"%s\"", r.reply_type ==
		    AMQP_RESPONSE_LIBRARY_EXCEPTION ? amqp_error_string2(r.library_error) :
		    "server exception");
	}
	ledger_drop(l);
	return -1;
}

/* ledger_wait - keep the broker connection served (heartbeats, deliveries join the batch) for
 * MS milliseconds, or sleep when there is none; -1 when the connection was lost */
static int ledger_wait(struct ledger *l, long ms)
{
	int64_t end = ledger_now_ms() + ms;
	int64_t left;

	while ((left = end - ledger_now_ms()) > 0) {
		if (l->conn == NULL) {
			struct timespec ts = { 0, (left > 200 ? 200 : left) * 1000000L };

			nanosleep(&ts, NULL);
		} else if (ledger_pump(l, left > 1000 ? 1000 : left) < 0) {
			return -1;
		}
		if (ledger_stop_seen(l) && l->conn == NULL)
			break;
	}
	return 0;
}

/* ledger_cmp - order batch entries by (transaction id, channel) */
static int ledger_cmp(const void *a, const void *b)
{
	const struct note *x = *(struct note *const *)a, *y = *(struct note *const *)b;
	int d = strcmp(x->txid, y->txid);

	return d != 0 ? d : (int)x->channel - (int)y->channel;
}

/* ledger_str - add the string KEY = V to O when V is set */
static void ledger_str(struct json_object *o, const char *key, const char *v)
{
	if (v != NULL)
		json_object_object_add(o, key, json_object_new_string(v));
}

/* ledger_row - the JSON_TABLE row of note N recorded at AT (RFC 3339) */
static struct json_object *ledger_row(const struct note *n, const char *at)
{
	struct json_object *o = json_object_new_object(), *ev = json_object_new_object();
	const char *ch = codec_channel_name(n->channel);
	char dt[64];

	if (o == NULL || ev == NULL) {
		json_object_put(o);
		json_object_put(ev);
		return NULL;
	}
	ledger_str(o, "t", n->txid);
	ledger_str(o, "c", ch);
	ledger_str(o, "u", n->user_id);
	ledger_str(o, "r", n->address);
	ledger_str(o, "cl", n->client_id);
	ledger_str(o, "cat", n->category);
	json_object_object_add(o, "p", json_object_new_int(n->priority));
	ledger_str(o, "b", n->batch_id);
	if (n->metadata != NULL)
		ledger_str(o, "m", json_object_to_json_string_ext(n->metadata,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	ledger_str(o, "tpl", n->template_name);
	if (n->send_at != 0)
		ledger_str(o, "sa", ledger_datetime(n->send_at, dt, sizeof dt));
	if (n->expires_at != 0)
		ledger_str(o, "ea", ledger_datetime(n->expires_at, dt, sizeof dt));
	ledger_str(o, "ca", ledger_datetime(n->accepted_at, dt, sizeof dt));
	/* the §3 event body, in the documented key order */
	json_object_object_add(ev, "transaction_id", json_object_new_string(n->txid));
	json_object_object_add(ev, "channel", json_object_new_string(ch));
	json_object_object_add(ev, "user_id", n->user_id ? json_object_new_string(n->user_id) : NULL);
	json_object_object_add(ev, "client_id", n->client_id ?
	    json_object_new_string(n->client_id) : NULL);
	json_object_object_add(ev, "category", json_object_new_string(n->category));
	json_object_object_add(ev, "batch_id", n->batch_id ?
	    json_object_new_string(n->batch_id) : NULL);
	json_object_object_add(ev, "metadata", json_object_get(n->metadata));
	json_object_object_add(ev, "status", json_object_new_string("queued"));
	json_object_object_add(ev, "previous", NULL);
	json_object_object_add(ev, "attempt", json_object_new_int(0));
	json_object_object_add(ev, "at", json_object_new_string(at));
	json_object_object_add(ev, "detail", NULL);
	ledger_str(o, "ev", json_object_to_json_string_ext(ev,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(ev);
	return o;
}

/* ledger_is_data_error - whether server error E refuses the data itself (not the server's
 * state): only those make the batch split and a single record park */
static bool ledger_is_data_error(unsigned e)
{
	switch (e) {
	case 1048:      /* ER_BAD_NULL_ERROR */
	case 1264:      /* ER_WARN_DATA_OUT_OF_RANGE */
	case 1292:      /* ER_TRUNCATED_WRONG_VALUE */
	case 1366:      /* ER_TRUNCATED_WRONG_VALUE_FOR_FIELD */
	case 1406:      /* ER_DATA_TOO_LONG */
	case 3140:      /* MySQL: ER_INVALID_JSON_TEXT */
	case 3819:      /* MySQL: ER_CHECK_CONSTRAINT_VIOLATED */
	case 4025:      /* MariaDB: ER_CONSTRAINT_FAILED */
		return true;
	}
	return false;
}

/* ledger_record - record entries FROM..FROM+N of the batch in one transaction; *INSERTED gets
 * the number of notification rows this created */
static enum ledger_rec ledger_record(struct ledger *l, size_t from, size_t n, uint64_t *inserted)
{
	struct note **v = malloc((n ? n : 1) * sizeof *v);      /* NOLINT(bugprone-sizeof-expression): an array of pointers */
	struct json_object *arr = json_object_new_array();
	char at[RFC3339_LEN + 1];
	const char *js;
	int64_t now = rfc3339_now();
	enum ledger_rec res = LREC_RETRY;
	size_t i, k;
	int rc;

	*inserted = 0;
	l->build_ms = ledger_now_ms();
	l->db_ms = 0;
	if (v == NULL || arr == NULL) {
		log_warnx("event=out_of_memory records=%zu", n);
		goto out;
	}
	rfc3339_format(now, at);
	for (i = 0, k = 0; i < n; i++)
		if (!l->m[from + i].parked)
			v[k++] = l->m[from + i].note;
	if (k == 0) {
		res = LREC_OK;
		goto out;
	}
	/* a producer that resent after a reconnect may have put one record in twice */
	qsort(v, k, sizeof *v, ledger_cmp);     /* NOLINT(bugprone-sizeof-expression): an array of pointers */
	for (i = 0; i < k; i++) {
		struct json_object *row;

		if (i > 0 && ledger_cmp(&v[i - 1], &v[i]) == 0)
			continue;
		if ((row = ledger_row(v[i], at)) == NULL || json_object_array_add(arr, row) != 0) {
			json_object_put(row);
			log_warnx("event=out_of_memory records=%zu", n);
			goto out;
		}
	}
	js = json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
	l->db_ms = ledger_now_ms();
	l->build_ms = l->db_ms - l->build_ms;
	if ((rc = db_begin(l->db)) != 0)
		goto fail;
	if ((rc = db_exec(l->db, Q_NOTE, DB_ARGS(db_str(js)))) != 0)
		goto fail;
	*inserted = db_affected(l->db, Q_NOTE);
	if ((rc = db_exec(l->db, Q_OUTBOX, DB_ARGS(db_str(js)))) != 0 ||
	    (rc = db_exec(l->db, Q_AUDIT, DB_ARGS(db_time(now), db_str(l->host), db_str(l->worker),
	    db_str(js)))) != 0 ||
	    (rc = db_commit(l->db)) != 0)
		goto fail;
	res = LREC_OK;
	goto out;
fail:
	if (db_in_txn(l->db))
		db_rollback(l->db);
	*inserted = 0;
	if (rc == DB_ERR && ledger_is_data_error(db_errno(l->db)))
		res = LREC_DATA;
out:
	if (l->db_ms != 0)
		l->db_ms = ledger_now_ms() - l->db_ms;
	json_object_put(arr);
	free(v);
	return res;
}

/* ledger_park_refused - park the single record IDX that the database refused as data */
static int ledger_park_refused(struct ledger *l, size_t idx)
{
	const struct note *n = l->m[idx].note;
	char msgid[TXID_LEN + 40], reason[700], q[600];
	amqp_bytes_t body;
	char *buf = NULL;
	size_t len = 0;
	int rc;

	snprintf(msgid, sizeof msgid, "%s:%s:ledger", n->txid, codec_channel_name(n->channel));
	snprintf(reason, sizeof reason, "ledger: the database refused the record: %s",
	    db_error(l->db));
	if (codec_note_encode(n, &buf, &len) < 0) {
		log_warnx("event=out_of_memory msgid=%s", msgid);
		return -1;
	}
	body.bytes = buf;
	body.len = len;
	rc = ledger_park(l, (int)n->channel, body, NULL, msgid, reason);
	free(buf);
	if (rc == 0)
		log_warnx("event=record_parked msgid=%s channel=%s reason=%s", msgid,
		    codec_channel_name(n->channel), log_quote(q, sizeof q, reason));
	return rc;
}

/* ledger_flush - record the whole batch (retrying while the database is away, splitting it
 * when the database refuses a record as data), then ack it with one multiple-ack; 0 done,
 * -1 the broker connection was lost (batch dropped), -2 stopping with the database away */
static int ledger_flush(struct ledger *l)
{
	int64_t t0 = ledger_now_ms();
	uint64_t inserted = 0, ins;
	size_t n, i;
	int tries = 0, rc;
	enum ledger_rec r;

	for (;;) {
		n = l->n;
		if ((r = ledger_record(l, 0, n, &inserted)) == LREC_OK)
			break;
		if (r == LREC_DATA) {
			/* find the refused record(s): one transaction each, park what fails alone */
			inserted = 0;
			for (i = 0; i < n; i++) {
				r = ledger_record(l, i, 1, &ins);
				inserted += ins;
				if (r == LREC_DATA) {
					if (ledger_park_refused(l, i) < 0)
						r = LREC_RETRY;
					else
						l->m[i].parked = true;
				}
				if (r == LREC_RETRY)
					break;
			}
			if (i == n)
				break;
		}
		/* the database is away: keep everything unacked, back off, try again */
		if (ledger_stop_seen(l) && ledger_now_ms() - l->stop_ms >
		    (int64_t)l->c->heraldd.grace * 1000) {
			log_error("event=stop_unrecorded records=%zu note=\"database unavailable "
			    "through the grace: left unacked for redelivery\"", l->n);
			return -2;
		}
		tries++;
		log_warnx("event=record_retry records=%zu try=%d", l->n, tries);
		if (ledger_wait(l, ledger_backoff_ms(l, tries)) < 0)
			return -1;
	}
	rc = amqp_basic_ack(l->conn, LEDGER_CHAN, l->m[n - 1].tag, 1);
	if (rc != AMQP_STATUS_OK) {
		/* recorded but not acked: the redelivery finds the rows and adds nothing */
		log_warnx("event=broker_error op=ack err=\"%s\"", amqp_error_string2(rc));
		ledger_drop(l);
		return -1;
	}
	if (!l->acked) {
		l->acked = true;
		master_notice_ready();
	}
	log_debug("event=batch records=%zu inserted=%llu bytes=%zu ms=%lld build_ms=%lld db_ms=%lld",
	    n, (unsigned long long)inserted, l->bytes, (long long)(ledger_now_ms() - t0),
	    (long long)l->build_ms, (long long)l->db_ms);
	/* records that arrived while waiting for the database stay for the next batch */
	for (i = 0; i < n; i++)
		codec_note_free(l->m[i].note);
	memmove(l->m, l->m + n, (l->n - n) * sizeof *l->m);
	l->n -= n;
	l->bytes = 0;
	if (l->n > 0)
		l->first_ms = ledger_now_ms();
	return 0;
}

/* ledger_close - end the broker connection politely (unacked records go back to the queue) */
static void ledger_close(struct ledger *l)
{
	broker_close(&l->conn, LEDGER_CHAN);
}

/* ledger_main - the consume, batch, record, ack loop until a stop request */
int ledger_main(const struct conf *c)
{
	struct ledger l;
	struct db_opts o = { 0 };
	int fails = 0, rc = EX_OK, hb;

	memset(&l, 0, sizeof l);
	l.c = c;
	l.batch = c->ledger.batch > 0 ? c->ledger.batch : 500;
	l.prefetch = l.batch * 2 > 65535 ? 65535 : l.batch * 2;
	l.cap = (size_t)l.prefetch;
	l.rnd = (unsigned)getpid() ^ (unsigned)time(NULL);
	if (gethostname(l.host, sizeof l.host) != 0 || l.host[0] == '\0')
		snprintf(l.host, sizeof l.host, "unknown");
	l.host[sizeof l.host - 1] = '\0';
	snprintf(l.worker, sizeof l.worker, "ledger.%ld", (long)getpid());
	/* inside library calls only: wake at least twice per heartbeat, and every second for
	 * the stop flag */
	hb = c->broker.heartbeat > 0 ? c->broker.heartbeat * 1000 / 2 : 1000;
	if (hb > 1000)
		hb = 1000;
	if ((l.m = calloc(l.cap, sizeof *l.m)) == NULL) {
		log_error("event=out_of_memory");
		return EX_OSERR;
	}
	o.connect_timeout = c->mysql.connect_timeout;
	o.read_timeout = c->mysql.read_timeout;
	o.write_timeout = c->mysql.write_timeout;
	o.tls = &c->mysql.tls;
	if (db_open(&l.db, &c->mysql.parsed, &o, ledger_q, Q__N) != 0)
		log_warnx("event=db_unavailable db=%s note=\"connecting again before the first "
		    "batch\"", db_target(l.db));
	log_info("event=start worker=%s", l.worker);
	for (;;) {
		bool stop = ledger_stop_seen(&l);
		int64_t left;

		if (ledger_reopen) {
			ledger_reopen = 0;
			log_reopen();
		}
		if (l.conn == NULL) {
			if (stop)
				break;
			if (ledger_connect(&l) < 0) {
				ledger_wait(&l, ledger_backoff_ms(&l, ++fails));
				continue;
			}
			fails = 0;
		}
		left = l.n > 0 ? l.first_ms + c->ledger.flush_ms - ledger_now_ms() : hb;
		if (l.n > 0 && (l.n >= (size_t)l.batch || l.bytes >= LEDGER_MAX_BYTES || left <= 0 ||
		    stop)) {
			if (ledger_flush(&l) == -2) {
				rc = EX_TEMPFAIL;
				break;
			}
			continue;
		}
		if (stop)
			break;
		ledger_pump(&l, left > hb ? hb : left);
	}
	ledger_close(&l);
	ledger_batch_free(&l);
	free(l.m);
	db_close(l.db);
	log_info("event=stop worker=%s rc=%d", l.worker, rc);
	return rc;
}
