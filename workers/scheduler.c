/* scheduler - take due deferred notifications, publish their stored messages, record queued */
#include "config.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <amqp.h>
#include <ev.h>
#include <json-c/json.h>

#include "admit.h"
#include "codec.h"
#include "conf.h"
#include "db.h"
#include "log.h"
#include "master.h"
#include "mq.h"
#include "outbox.h"
#include "record.h"
#include "rfc3339.h"
#include "scheduler.h"
#include "topology.h"
#include "txid.h"

#define SCHED_BACKOFF_MAX 30.
#define SCHED_MISSING_DELAY (3600LL * 1000000)  /* µs: a row without a stored message waits */
#define SCHED_HEADERS_MAX 32
#define SCHED_OUTBOX_BATCH 500

enum {
	Q_TAKE,
	Q_CANCELLED,
	Q_DROP,
	Q_LATER,
	Q__N
};

static const struct db_stmt sched_stmts[Q__N] = {
	/* the index on deferred_until drives; rows another scheduler holds are skipped */
	[Q_TAKE] = { "scheduler_take",
		"SELECT n.id, n.transaction_id, n.channel, n.user_id, n.recipient, n.client_id,"
		" n.category, n.priority, n.batch_id, n.metadata, n.attempt, n.expires_at,"
		" n.created_at, d.body, d.headers"
		" FROM notifications n LEFT JOIN deferred_messages d ON d.notification_id = n.id"
		" WHERE n.deferred_until <= ? AND n.status = 'deferred'"
		" ORDER BY n.deferred_until LIMIT ? FOR UPDATE SKIP LOCKED", true },
	[Q_CANCELLED] = { "scheduler_cancelled",
		"SELECT EXISTS (SELECT 1 FROM cancellations WHERE kind = 'transaction' AND target = ?)"
		" OR EXISTS (SELECT 1 FROM cancellations WHERE kind = 'batch' AND target = ?)", true },
	[Q_DROP] = { "scheduler_drop",
		"DELETE FROM deferred_messages WHERE notification_id = ?", true },
	[Q_LATER] = { "scheduler_later",
		"UPDATE notifications SET deferred_until = ? WHERE id = ?", true },
};

enum sched_what {
	SCHED_REQUEUE,
	SCHED_EXPIRED,
	SCHED_CANCELLED,
	SCHED_MISSING                    /* no stored message: nothing to publish */
};

/* One due row. */
struct sched_item {
	int64_t id;
	struct note *note;               /* from the row: the record's and the event's fields */
	struct note *wire;               /* the stored body decoded (NULL: undecodable) */
	char *body;
	size_t len;
	char *headers;                   /* stored AMQP headers as a JSON object, or NULL */
	enum sched_what what;
};

struct sched {
	const struct conf *conf;
	struct ev_loop *loop;
	struct db *db;
	struct db_stmt *stmts;
	int b_sched, b_record, b_admit, b_outbox;
	struct mq *mq;
	ev_timer tick;
	ev_signal sigterm, sigint, sigusr1;
	char host[256], name[64];
	double backoff;
	ev_tstamp next_try;
	bool noticed;
	int exit_code;
};

/* sched_dup - a malloc'd copy of S (NULL stays NULL); *OOM set when memory ran out */
static char *sched_dup(const char *s, bool *oom)
{
	char *d;

	if (s == NULL)
		return NULL;
	if ((d = strdup(s)) == NULL)
		*oom = true;
	return d;
}

/* sched_items_free - release the N items of V and V */
static void sched_items_free(struct sched_item *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		codec_note_free(v[i].note);
		codec_note_free(v[i].wire);
		free(v[i].body);
		free(v[i].headers);
	}
	free(v);
}

/* sched_row - the current row of Q_TAKE into IT; -1 when memory ran out or the row is unusable */
static int sched_row(struct sched *s, struct sched_item *it)
{
	int q = s->b_sched + Q_TAKE, ch;
	const char *txid = db_col_str(s->db, q, 1, NULL), *chn = db_col_str(s->db, q, 2, NULL);
	const char *meta, *p;
	struct codec_error e;
	struct note *n;
	bool oom = false;
	size_t len;

	it->id = db_col_i64(s->db, q, 0);
	if (txid == NULL || !txid_valid(txid) || chn == NULL ||
	    (ch = codec_channel_parse(chn, strlen(chn))) < 0) {
		log_error("event=scheduler_bad_row id=%lld", (long long)it->id);
		return -1;
	}
	if ((it->note = n = calloc(1, sizeof *n)) == NULL)
		return -1;
	memcpy(n->txid, txid, TXID_LEN + 1);
	n->channel = (enum codec_channel)ch;
	n->user_id = sched_dup(db_col_str(s->db, q, 3, NULL), &oom);
	n->address = sched_dup(db_col_str(s->db, q, 4, NULL), &oom);
	n->client_id = sched_dup(db_col_str(s->db, q, 5, NULL), &oom);
	n->category = sched_dup(db_col_str(s->db, q, 6, NULL), &oom);
	n->priority = (int)db_col_i64(s->db, q, 7);
	n->batch_id = sched_dup(db_col_str(s->db, q, 8, NULL), &oom);
	if ((meta = db_col_str(s->db, q, 9, NULL)) != NULL)
		n->metadata = json_tokener_parse(meta);
	n->attempt = (unsigned)db_col_i64(s->db, q, 10);
	n->expires_at = db_col_time(s->db, q, 11);
	n->accepted_at = db_col_time(s->db, q, 12);
	if ((p = db_col_str(s->db, q, 13, &len)) != NULL) {
		if ((it->body = malloc(len + 1)) == NULL)
			return -1;
		memcpy(it->body, p, len);
		it->body[len] = '\0';
		it->len = len;
		if (codec_note_decode(it->body, it->len, &it->wire, &e) < 0)
			it->wire = NULL;     /* published as stored: the worker parks it */
	}
	it->headers = sched_dup(db_col_str(s->db, q, 14, NULL), &oom);
	return oom ? -1 : 0;
}

/* sched_take - lock up to SCHEDULER_BATCH due rows into *V, *NV (inside the transaction) */
static int sched_take(struct sched *s, int64_t now, struct sched_item **v, size_t *nv)
{
	int q = s->b_sched + Q_TAKE, rc;

	*v = NULL;
	*nv = 0;
	if ((rc = db_exec(s->db, q, DB_ARGS(db_time(now), db_i64(SCHEDULER_BATCH)))) < 0)
		return rc;
	if ((*v = calloc(SCHEDULER_BATCH, sizeof **v)) == NULL)
		return DB_ERR;
	while ((rc = db_fetch(s->db, q)) == 1) {
		if (*nv == SCHEDULER_BATCH)
			continue;
		if (sched_row(s, &(*v)[*nv]) < 0) {
			/* an unusable row stays locked until the rollback: skip it, keep the rest */
			codec_note_free((*v)[*nv].note);
			free((*v)[*nv].body);
			codec_note_free((*v)[*nv].wire);
			free((*v)[*nv].headers);
			memset(&(*v)[*nv], 0, sizeof **v);
			continue;
		}
		(*nv)++;
	}
	return rc < 0 ? rc : 0;
}

/* sched_classify - what becomes of IT at NOW: expired, cancelled, missing or requeued */
static int sched_classify(struct sched *s, struct sched_item *it, int64_t now)
{
	int q = s->b_sched + Q_CANCELLED, rc;

	if (it->note->expires_at != 0 && now > it->note->expires_at) {
		it->what = SCHED_EXPIRED;
		return 0;
	}
	rc = db_exec(s->db, q, DB_ARGS(db_str(it->note->txid), db_str(it->note->batch_id)));
	if (rc < 0)
		return rc;
	if ((rc = db_fetch(s->db, q)) != 1)
		return rc == 0 ? DB_ERR : rc;
	if (db_col_i64(s->db, q, 0) != 0)
		it->what = SCHED_CANCELLED;
	else if (it->body == NULL)
		it->what = SCHED_MISSING;
	else
		it->what = SCHED_REQUEUE;
	while (db_fetch(s->db, q) == 1)
		;
	return 0;
}

/* sched_hdr_str - table entry E: the string header K = V */
static void sched_hdr_str(amqp_table_entry_t *e, const char *k, const char *v)
{
	e->key = amqp_cstring_bytes(k);
	e->value.kind = AMQP_FIELD_KIND_UTF8;
	e->value.value.bytes = amqp_cstring_bytes(v);
}

/* sched_hdr_i64 - table entry E: the integer header K = V */
static void sched_hdr_i64(amqp_table_entry_t *e, const char *k, int64_t v)
{
	e->key = amqp_cstring_bytes(k);
	e->value.kind = AMQP_FIELD_KIND_I64;
	e->value.value.i64 = v;
}

/* sched_headers_json - the stored headers object J (name: string, integer or boolean) into E;
 * their number (entries of other types are left out) */
static size_t sched_headers_json(struct json_object *j, amqp_table_entry_t *e)
{
	size_t ne = 0;

	json_object_object_foreach(j, k, v) {
		if (ne == SCHED_HEADERS_MAX - 1)
			break;
		switch (json_object_get_type(v)) {
		case json_type_string:
			e[ne].key = amqp_cstring_bytes(k);
			e[ne].value.kind = AMQP_FIELD_KIND_UTF8;
			e[ne].value.value.bytes.bytes = (void *)(uintptr_t)json_object_get_string(v);
			e[ne++].value.value.bytes.len = (size_t)json_object_get_string_len(v);
			break;
		case json_type_int:
			if (strcmp(k, "x-herald-attempt") == 0) {
				e[ne].key = amqp_cstring_bytes(k);
				e[ne].value.kind = AMQP_FIELD_KIND_I32;
				e[ne++].value.value.i32 = json_object_get_int(v);
			} else {
				sched_hdr_i64(&e[ne++], k, json_object_get_int64(v));
			}
			break;
		case json_type_boolean:
			e[ne].key = amqp_cstring_bytes(k);
			e[ne].value.kind = AMQP_FIELD_KIND_BOOLEAN;
			e[ne++].value.value.boolean = json_object_get_boolean(v);
			break;
		default:
			break;
		}
	}
	return ne;
}

/* sched_headers_note - the headers the producer sets (producer/publish.c), from N, into E */
static size_t sched_headers_note(const struct note *n, amqp_table_entry_t *e)
{
	size_t ne = 0;

	sched_hdr_str(&e[ne++], "x-herald-txid", n->txid);
	e[ne].key = amqp_cstring_bytes("x-herald-attempt");
	e[ne].value.kind = AMQP_FIELD_KIND_I32;
	e[ne++].value.value.i32 = 0;
	sched_hdr_str(&e[ne++], "x-herald-channel", codec_channel_name(n->channel));
	if (n->client_id != NULL)
		sched_hdr_str(&e[ne++], "x-herald-client", n->client_id);
	if (n->category != NULL)
		sched_hdr_str(&e[ne++], "x-herald-category", n->category);
	if (n->batch_id != NULL)
		sched_hdr_str(&e[ne++], "x-herald-batch", n->batch_id);
	if (n->idempotency_key != NULL)
		sched_hdr_str(&e[ne++], "x-herald-idempotency-key", n->idempotency_key);
	if (n->expires_at != 0)
		sched_hdr_i64(&e[ne++], "x-herald-expires", n->expires_at);
	return ne;
}

/* sched_publish - publish IT's stored message to its channel queue at NOW (confirmed later by
 * mq_confirm); 0 or -1 */
static int sched_publish(struct sched *s, const struct sched_item *it, int64_t now)
{
	const struct note *n = it->wire != NULL ? it->wire : it->note;
	const char *ch = codec_channel_name(it->note->channel);
	amqp_table_entry_t e[SCHED_HEADERS_MAX];
	struct json_object *j = NULL;
	amqp_basic_properties_t pr;
	char msgid[TXID_LEN + 16];
	size_t ne = 0;
	int rc;

	if (it->headers != NULL && (j = json_tokener_parse(it->headers)) != NULL &&
	    json_object_is_type(j, json_type_object))
		ne = sched_headers_json(j, e);
	else
		ne = sched_headers_note(n, e);
	/* when it was requeued: for the trail in the broker, read by nobody in the pipeline */
	sched_hdr_i64(&e[ne++], "x-herald-requeued", now);
	snprintf(msgid, sizeof msgid, "%s:%s", it->note->txid, ch);
	memset(&pr, 0, sizeof pr);
	pr._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
	    AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_HEADERS_FLAG |
	    AMQP_BASIC_TIMESTAMP_FLAG;
	pr.content_type = amqp_cstring_bytes("application/json");
	pr.delivery_mode = AMQP_DELIVERY_PERSISTENT;
	pr.priority = (uint8_t)(n->priority < 0 ? 0 : n->priority > TOPOLOGY_MAX_PRIORITY ?
	    TOPOLOGY_MAX_PRIORITY : n->priority);
	pr.message_id = amqp_cstring_bytes(msgid);
	pr.timestamp = (uint64_t)(it->note->accepted_at > 0 ? it->note->accepted_at / 1000000 : 0);
	pr.headers.num_entries = (int)ne;
	pr.headers.entries = e;
	rc = mq_publish(s->mq, TOPOLOGY_EXCHANGE, ch, &pr, it->body, it->len, true);
	json_object_put(j);
	return rc;
}

/* sched_reason - a detail object {"reason": R} */
static struct json_object *sched_reason(const char *r)
{
	struct json_object *o = json_object_new_object();

	if (o != NULL)
		json_object_object_add(o, "reason", json_object_new_string(r));
	return o;
}

/* sched_write - inside the transaction: record each item's status, drop or postpone its stored
 * message; REQUEUE items only when PUBLISH; their count into *NREQ */
static int sched_write(struct sched *s, struct sched_item *v, size_t nv, bool publish,
	int64_t now, struct record *recs, size_t *nreq)
{
	static const char *const status[] = {
		[SCHED_REQUEUE] = "queued", [SCHED_EXPIRED] = "expired",
		[SCHED_CANCELLED] = "cancelled", [SCHED_MISSING] = NULL
	};
	static const char *const reason[] = {
		[SCHED_REQUEUE] = "due", [SCHED_EXPIRED] = "expired",
		[SCHED_CANCELLED] = "cancelled", [SCHED_MISSING] = NULL
	};
	size_t i, nr = 0;
	int rc = 0;

	*nreq = 0;
	for (i = 0; i < nv; i++) {
		struct sched_item *it = &v[i];

		if (it->what == SCHED_MISSING) {
			log_error("event=deferred_message_missing txid=%s channel=%s note=\"nothing to "
			    "requeue; looked at again in an hour\"", it->note->txid,
			    codec_channel_name(it->note->channel));
			rc = db_exec(s->db, s->b_sched + Q_LATER, DB_ARGS(db_time(now +
			    SCHED_MISSING_DELAY), db_i64(it->id)));
			if (rc < 0)
				goto out;
			continue;
		}
		if (it->what == SCHED_REQUEUE && !publish)
			continue;
		memset(&recs[nr], 0, sizeof recs[nr]);
		recs[nr].note = it->note;
		recs[nr].status = status[it->what];
		if ((recs[nr].detail = sched_reason(reason[it->what])) == NULL) {
			rc = DB_ERR;
			goto out;
		}
		recs[nr].slots = it->what == SCHED_REQUEUE ? RECORD_SLOTS_NONE : RECORD_SLOTS_RELEASE;
		nr++;
		if ((rc = db_exec(s->db, s->b_sched + Q_DROP, DB_ARGS(db_i64(it->id)))) < 0)
			goto out;
	}
	rc = record_write(s->db, s->b_record, s->b_admit, recs, nr, s->host, s->name, now);
	for (i = 0; rc == 0 && i < nr; i++) {
		/* the row was locked as deferred: deferred → queued | expired | cancelled is allowed */
		if (recs[i].result != RECORD_WRITTEN) {
			log_error("event=scheduler_refused txid=%s status=%s previous=%s",
			    recs[i].note->txid, recs[i].status, recs[i].previous);
			rc = DB_ERR;
		} else if (strcmp(recs[i].status, "queued") == 0) {
			(*nreq)++;
		}
	}
out:
	for (i = 0; i < nr; i++)
		json_object_put(recs[i].detail);
	return rc;
}

/* sched_round - one round; the number of rows taken (SCHEDULER_BATCH: run again at once), or
 * -1 (logged, rolled back: run again after a delay) */
static int sched_round(struct sched *s)
{
	int64_t now = rfc3339_now();
	struct sched_item *v = NULL;
	struct record *recs = NULL;
	size_t nv = 0, nreq = 0, i, nexp = 0, ncan = 0, nmiss = 0;
	bool publish = mq_connected(s->mq);

	if (db_begin_read_committed(s->db) < 0)
		return -1;
	if (sched_take(s, now, &v, &nv) < 0)
		goto fail;
	if (nv == 0) {
		db_rollback(s->db);
		sched_items_free(v, nv);
		return 0;
	}
	for (i = 0; i < nv; i++)
		if (sched_classify(s, &v[i], now) < 0)
			goto fail;
	if ((recs = calloc(nv, sizeof *recs)) == NULL)
		goto fail;
	if (sched_write(s, v, nv, publish, now, recs, &nreq) < 0)
		goto fail;
	/* publish last, after every statement that could fail: only the commit can fail now */
	for (i = 0; publish && i < nv; i++)
		if (v[i].what == SCHED_REQUEUE && sched_publish(s, &v[i], now) < 0)
			goto fail;
	if (nreq > 0 && mq_confirm(s->mq) < 0)
		goto fail;
	if (db_commit(s->db) < 0) {
		/* the published copies meet a row still deferred: workers send nothing for them,
		 * and the next round requeues those rows again */
		log_warnx("event=scheduler_commit_failed published=%zu err=\"%s\" note=\"requeued "
		    "again by the next round\"", nreq, db_error(s->db));
		goto fail;
	}
	for (i = 0; i < nv; i++) {
		const char *what = v[i].what == SCHED_EXPIRED ? "expired" :
		    v[i].what == SCHED_CANCELLED ? "cancelled" : v[i].what == SCHED_MISSING ?
		    "missing" : publish ? "queued" : NULL;

		nexp += v[i].what == SCHED_EXPIRED;
		ncan += v[i].what == SCHED_CANCELLED;
		nmiss += v[i].what == SCHED_MISSING;
		if (what != NULL)
			log_debug("event=status txid=%s channel=%s status=%s previous=deferred",
			    v[i].note->txid, codec_channel_name(v[i].note->channel), what);
	}
	log_info("event=scheduler_round taken=%zu requeued=%zu expired=%zu cancelled=%zu "
	    "missing=%zu%s", nv, nreq, nexp, ncan, nmiss, publish ? "" : " broker=down");
	free(recs);
	sched_items_free(v, nv);
	/* rows left for lack of a broker must not make the caller run again at once */
	return publish ? (int)nv : 0;
fail:
	log_warnx("event=scheduler_round_failed taken=%zu note=\"rolled back, tried again later\"",
	    nv);
	db_rollback(s->db);
	free(recs);
	sched_items_free(v, nv);
	return -1;
}

/* sched_backoff - the next try after a failure: 1, 2, 4 ... SCHED_BACKOFF_MAX seconds on */
static void sched_backoff(struct sched *s)
{
	s->backoff = s->backoff < 1. ? 1. : s->backoff * 2;
	if (s->backoff > SCHED_BACKOFF_MAX)
		s->backoff = SCHED_BACKOFF_MAX;
	s->next_try = ev_now(s->loop) + s->backoff;
}

/* sched_tick_cb - reconnect to the broker when due, then rounds until one comes back short */
static void sched_tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct sched *s = t->data;
	int n;

	(void)revents;
	if (ev_now(loop) < s->next_try)
		return;
	if (!mq_connected(s->mq) && mq_connect(s->mq) < 0)
		sched_backoff(s);        /* expired and cancelled rows are still ended */
	do {
		n = sched_round(s);
	} while (n == SCHEDULER_BATCH);
	if (n < 0) {
		sched_backoff(s);
		return;
	}
	if (mq_connected(s->mq)) {
		s->backoff = 0;
		/* the events just written, at once rather than at the outbox worker's next turn */
		while (outbox_drain(s->db, s->b_outbox, s->mq, SCHED_OUTBOX_BATCH) ==
		    SCHED_OUTBOX_BATCH)
			;
	}
	if (!s->noticed) {
		s->noticed = true;
		master_notice_ready();
	}
}

/* sched_signal_cb - SIGTERM/SIGINT: stop between rounds (a round runs to its end first) */
static void sched_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)revents;
	log_info("event=stopping signal=%d", w->signum);
	ev_break(loop, EVBREAK_ALL);
}

/* sched_usr1_cb - SIGUSR1: reopen the log file */
static void sched_usr1_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	log_reopen();
}

/* sched_registry - one statement registry for the modules sharing the connection */
static int sched_registry(struct sched *s)
{
	const struct db_module mods[] = {
		{ sched_stmts, Q__N, &s->b_sched },
		{ record_stmts, record_nstmts, &s->b_record },
		{ admit_stmts, admit_nstmts, &s->b_admit },
		{ outbox_stmts, outbox_nstmts, &s->b_outbox },
	};

	return db_registry(mods, sizeof mods / sizeof mods[0], &s->stmts);
}

/* scheduler_main - set up, run a round every scheduler.interval seconds until SIGTERM */
int scheduler_main(const struct conf *c)
{
	struct sched s;
	struct db_opts dbo = { 0 };
	double every = c->scheduler.interval > 0 ? c->scheduler.interval : 5;
	int nstmts;

	memset(&s, 0, sizeof s);
	s.conf = c;
	s.exit_code = EX_OK;
	if (gethostname(s.host, sizeof s.host) < 0)
		snprintf(s.host, sizeof s.host, "unknown");
	s.host[sizeof s.host - 1] = '\0';
	snprintf(s.name, sizeof s.name, "scheduler.%ld", (long)getpid());
	if ((nstmts = sched_registry(&s)) < 0) {
		log_error("event=oom what=registry");
		return EX_OSERR;
	}
	dbo.connect_timeout = c->mysql.connect_timeout;
	dbo.read_timeout = c->mysql.read_timeout;
	dbo.write_timeout = c->mysql.write_timeout;
	dbo.tls = &c->mysql.tls;
	if (db_open(&s.db, &c->mysql.parsed, &dbo, s.stmts, (size_t)nstmts) < 0) {
		log_error("event=db_unavailable target=%s err=\"%s\"", db_target(s.db), db_error(s.db));
		db_close(s.db);
		free(s.stmts);
		return EX_TEMPFAIL;
	}
	s.loop = ev_default_loop(EVFLAG_AUTO);
	if ((s.mq = mq_new(s.loop, c, NULL, "heraldd-scheduler", NULL, NULL, &s)) == NULL) {
		db_close(s.db);
		free(s.stmts);
		return EX_OSERR;
	}
	ev_timer_init(&s.tick, sched_tick_cb, 0., every);
	s.tick.data = &s;
	ev_timer_start(s.loop, &s.tick);
	ev_signal_init(&s.sigterm, sched_signal_cb, SIGTERM);
	ev_signal_start(s.loop, &s.sigterm);
	ev_signal_init(&s.sigint, sched_signal_cb, SIGINT);
	ev_signal_start(s.loop, &s.sigint);
	ev_signal_init(&s.sigusr1, sched_usr1_cb, SIGUSR1);
	ev_signal_start(s.loop, &s.sigusr1);
	signal(SIGPIPE, SIG_IGN);
	log_info("event=scheduler_started worker=%s interval_s=%g batch=%d", s.name, every,
	    SCHEDULER_BATCH);
	ev_run(s.loop, 0);
	log_info("event=scheduler_stopped worker=%s", s.name);
	mq_close(s.mq);
	db_close(s.db);
	free(s.stmts);
	ev_loop_destroy(s.loop);
	return s.exit_code;
}
