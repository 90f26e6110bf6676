/* worker - one channel worker: consume, admit, render, record ready, deliver, record, ack
 *
 * Everything runs on one libev loop. Messages the broker sent are taken as a batch: each is
 * decoded and admitted (§4 steps 1-7), then the batch's statuses (final ones and `ready`) are
 * written in one transaction, the final ones acked and the ready ones handed to the provider.
 * Deliveries run on libcurl's multi interface; at most channels.CHANNEL.in_flight of them are
 * sent and not yet recorded at any moment (default 1). Those are what a kill makes the next
 * worker send again, so the bound is SPEC §11's "at most one duplicate per kill". Deliveries
 * that end are recorded together (one transaction per burst, at once when others wait for the
 * slot) and then acked. Nothing is acked before its status is committed; a database or broker
 * failure leaves the messages unacked and is retried with backoff (the broker redelivers what a
 * lost connection held).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
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
#include "hostpause.h"
#include "http.h"
#include "log.h"
#include "master.h"
#include "metrics.h"
#include "mq.h"
#include "outbox.h"
#include "prov.h"
#include "record.h"
#include "render.h"
#include "rfc3339.h"
#include "topology.h"
#include "txid.h"
#include "worker.h"

#define WORKER_FLUSH_DELAY 0.005     /* s: deliveries ending this close together share a commit */
#define WORKER_OUTBOX_EVERY 1.0      /* s: drain what others (ledger, a dead worker) left */
#define WORKER_OUTBOX_BATCH 500
#define WORKER_OUTBOX_GAP 0.1        /* s: the least time between two drains after recordings */
#define WORKER_BACKOFF_MAX 30

struct worker;

/* One message from receipt to ack. */
struct job {
	struct job *next;
	struct worker *w;
	amqp_envelope_t *env;
	unsigned gen;                    /* mq generation that delivered it */
	struct note *note;               /* decoded; for an undecodable one: &stub */
	struct note stub;
	char stub_client[128], stub_category[64];
	struct admit adm;
	bool admitted;
	struct rendered rnd;
	char identity[TXID_LEN + 16 + sizeof ((struct record_device *)0)->token];
	size_t prov;                     /* provider in use (failover index) */
	/* push: one delivery per device, one after the other, each outcome stored before the
	 * next is sent; devices accepted (or final) in an earlier attempt are not sent again */
	struct record_device *devs;
	size_t ndevs, dev;               /* how many; the one being sent */
	bool devs_loaded;
	struct prov_result transient;    /* push: the last transient device result (for the tier) */
	char suppress[256];              /* the address the provider rejected (lower case); "" */
	struct prov_result res;
	const char *status;              /* to record */
	struct json_object *detail;      /* owned */
	const char *provider;
	const char *message_id;
	enum record_slots slots;
	struct record *rec;              /* its record while worker_record writes it */
	/* published (confirmed) before its status is recorded: the parking queue or a retry tier */
	char requeue[TOPOLOGY_NAME_MAX];
	char *requeue_body;              /* the copy's body (malloc'd); NULL: the one received */
	size_t requeue_len;
	int requeue_retries;             /* x-herald-attempt of the copy; -1: headers as received */
	ev_timer wait;                   /* waiting for the provider's rate limit (in w->waiting) */
};

struct job_list {
	struct job *head, **tail;
	size_t n;
};

struct worker {
	const struct conf *conf;
	int ch;
	struct ev_loop *loop;
	struct mq *mq;
	struct http *http;
	struct db *db;
	struct db_stmt *stmts;
	int b_admit, b_record, b_render, b_outbox;
	struct prov *provs;
	size_t nprovs;
	char host[256], name[64], queue[TOPOLOGY_NAME_MAX], parked[TOPOLOGY_NAME_MAX];
	struct job_list incoming;        /* received, not yet admitted and recorded */
	struct job_list pending;         /* ready recorded, waiting for an in-flight slot */
	struct job_list ended;           /* deliveries ended, not yet recorded */
	struct job_list waiting;         /* deliveries waiting for the rate limit (counted inflight) */
	size_t inflight;                 /* deliveries running */
	ev_timer flush;
	ev_timer retry;
	ev_timer outbox;
	ev_timer grace;
	ev_signal sigterm, sigint, sigusr1;
	ev_tstamp outbox_at;             /* the last drain */
	bool draining;
	bool acked;                      /* the first ack was told to the master */
	bool closing;                    /* tearing down: no failover, no new calls */
	int backoff;
	int exit_code;
};

static void worker_start_delivery(struct job *j);
static size_t worker_next_prov(struct job *j, size_t from);
static bool worker_device_end(struct job *j);
static void worker_device_decide(struct job *j);
static void worker_pump(struct worker *w);

/* list_add - append J to L */
static void list_add(struct job_list *l, struct job *j)
{
	j->next = NULL;
	*l->tail = j;
	l->tail = &j->next;
	l->n++;
}

/* list_add_priority - put J into L after every job of its priority or higher: a high message
 * admitted after a window of low ones is delivered before them (SPEC §11) */
static void list_add_priority(struct job_list *l, struct job *j)
{
	struct job **pp;

	for (pp = &l->head; *pp != NULL && (*pp)->note->priority >= j->note->priority;
	    pp = &(*pp)->next)
		;
	j->next = *pp;
	*pp = j;
	if (j->next == NULL)
		l->tail = &j->next;
	l->n++;
}

/* list_remove - take J out of L */
static void list_remove(struct job_list *l, struct job *j)
{
	struct job **pp;

	for (pp = &l->head; *pp != NULL; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			if (l->tail == &j->next)
				l->tail = pp;
			l->n--;
			return;
		}
}

/* list_take - empty L, returning its jobs */
static struct job *list_take(struct job_list *l)
{
	struct job *h = l->head;

	l->head = NULL;
	l->tail = &l->head;
	l->n = 0;
	return h;
}

/* job_reset - forget what admission and rendering decided (to run them again) */
static void job_reset(struct job *j)
{
	if (j->note == &j->stub)
		j->note = NULL;      /* decoded again, which marks it for parking again */
	if (j->admitted)
		admit_free(&j->adm);
	j->admitted = false;
	render_free(&j->rnd);
	json_object_put(j->detail);
	j->detail = NULL;
	j->status = NULL;
	j->provider = NULL;
	j->message_id = NULL;
	j->slots = RECORD_SLOTS_NONE;
	j->requeue[0] = '\0';
	free(j->devs);
	j->devs = NULL;
	j->ndevs = j->dev = 0;
	j->devs_loaded = false;
	j->suppress[0] = '\0';
	free(j->requeue_body);
	j->requeue_body = NULL;
	j->requeue_retries = -1;
}

/* job_free - release J entirely */
static void job_free(struct job *j)
{
	job_reset(j);
	if (j->note != &j->stub)
		codec_note_free(j->note);
	mq_envelope_free(j->env);
	free(j);
}

/* job_ack - ack J's delivery and free it */
static void job_ack(struct job *j)
{
	if (mq_ack(j->w->mq, j->env->delivery_tag, j->gen) == 0 && !j->w->acked) {
		j->w->acked = true;
		master_notice_ready();
	}
	job_free(j);
}

/* worker_detail - {"reason": REASON} plus ERROR when given */
static struct json_object *worker_detail(const char *reason, const char *error)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "reason", json_object_new_string(reason));
	if (error != NULL)
		json_object_object_add(o, "error", json_object_new_string(error));
	return o;
}

/* worker_arm_retry - try again after a growing delay (database or broker trouble) */
static void worker_arm_retry(struct worker *w)
{
	if (ev_is_active(&w->retry))
		return;
	w->backoff = w->backoff == 0 ? 1 : (w->backoff * 2 > WORKER_BACKOFF_MAX ?
	    WORKER_BACKOFF_MAX : w->backoff * 2);
	ev_timer_set(&w->retry, w->backoff, 0.);
	ev_timer_start(w->loop, &w->retry);
}

/* worker_outbox - publish one round of pending events (the outbox worker takes a backlog: a
 * worker must not starve its deliveries, acks and signals on one), at most every
 * WORKER_OUTBOX_GAP s so recording one delivery at a time does not drain once per delivery;
 * failures and what a gap leaves wait for the timer */
static void worker_outbox(struct worker *w)
{
	ev_tstamp now = ev_now(w->loop);

	if (!mq_connected(w->mq) || now - w->outbox_at < WORKER_OUTBOX_GAP)
		return;
	w->outbox_at = now;
	outbox_drain(w->db, w->b_outbox, w->mq, WORKER_OUTBOX_BATCH);
}

/* worker_park - J goes to the parking queue as received */
static void worker_park(struct job *j)
{
	snprintf(j->requeue, sizeof j->requeue, "%s", j->w->parked);
	j->requeue_retries = -1;
}

/* worker_decode - decode J's body; an undecodable message gets a stub note from its headers,
 * status failed and goes to the parking queue */
static void worker_decode(struct job *j)
{
	struct codec_error e;
	char buf[TXID_LEN + 8];
	const amqp_bytes_t *b = &j->env->message.body;

	if (codec_note_decode(b->bytes, b->len, &j->note, &e) == 0 && j->note->channel ==
	    (enum codec_channel)j->w->ch)
		return;
	if (j->note != NULL) {
		codec_note_free(j->note);
		snprintf(e.field, sizeof e.field, "channel");
		snprintf(e.message, sizeof e.message, "a message for another channel");
	}
	j->note = &j->stub;
	memset(&j->stub, 0, sizeof j->stub);
	j->stub.channel = (enum codec_channel)j->w->ch;
	if (mq_header(j->env, "x-herald-txid", buf, sizeof buf) != NULL && txid_valid(buf))
		memcpy(j->stub.txid, buf, TXID_LEN + 1);
	j->stub.client_id = (char *)mq_header(j->env, "x-herald-client", j->stub_client,
	    sizeof j->stub_client);
	j->stub.category = (char *)mq_header(j->env, "x-herald-category", j->stub_category,
	    sizeof j->stub_category);
	j->stub.attempt = 1;
	j->status = "failed";
	j->detail = worker_detail("undecodable", NULL);
	json_object_object_add(j->detail, "field", json_object_new_string(e.field));
	json_object_object_add(j->detail, "error", json_object_new_string(e.message));
	worker_park(j);
	log_warnx("event=poison queue=%s txid=%s field=%s err=\"%s\"", j->w->queue,
	    j->stub.txid[0] ? j->stub.txid : "-", e.field, e.message);
}

/* worker_verdict - what J's admission verdict means for J: true for ADMIT_GO (render and
 * deliver), else its status (none for ADMIT_SKIP) */
static bool worker_verdict(struct job *j)
{
	switch (j->adm.verdict) {
	case ADMIT_SKIP:
		return false;
	case ADMIT_FINAL:
		j->status = j->adm.status;
		j->detail = json_object_get(j->adm.detail);
		j->slots = RECORD_SLOTS_RELEASE;
		return false;
	case ADMIT_DEFER:
		j->status = "deferred";
		j->detail = json_object_get(j->adm.detail);
		return false;
	case ADMIT_GO:
		break;
	}
	return true;
}

/* worker_admit - §4 steps 1-7 for J; 0 decided (a ready one may still turn rate_limited or
 * deferred when its slots are taken, worker_take), or a DB_ error (try again later) */
static int worker_admit(struct worker *w, struct job *j, int64_t now)
{
	char err[512];
	int rc;

	if (j->note == NULL)
		worker_decode(j);
	if (j->note == &j->stub)
		return 0;
	if ((rc = admit_note(w->db, w->b_admit, w->conf, j->note, now, &j->adm)) < 0) {
		admit_free(&j->adm);
		return rc;
	}
	j->admitted = true;
	if (!worker_verdict(j))
		return 0;
	rc = render_note(w->db, w->b_render, w->conf, j->note, &j->adm, &j->rnd, err, sizeof err);
	if (rc < 0)
		return rc;
	if (rc == RENDER_FAILED) {
		j->status = "failed";
		j->detail = worker_detail("render", err);
		j->slots = RECORD_SLOTS_RELEASE;
		return 0;
	}
	j->status = "ready";
	return 0;
}

/* worker_record_of - the struct record for J */
static void worker_record_of(const struct job *j, struct record *r)
{
	memset(r, 0, sizeof *r);
	r->note = j->note;
	r->status = j->status;
	r->detail = j->detail;
	r->provider = j->provider;
	r->provider_message_id = j->message_id;
	r->template_version = j->rnd.template_version;
	r->slots = j->slots;
	if (j->suppress[0] != '\0' && strcmp(j->status, "failed") == 0)
		r->suppress_address = j->suppress;
	if (strcmp(j->status, "deferred") == 0) {
		r->deferred_until = j->adm.defer_until;
		r->deferred_body = j->env->message.body.bytes;
		r->deferred_len = j->env->message.body.len;
	}
}

/* worker_limited - J's cap or quota was full when its slot was to be taken: J and its record
 * become what admission turned it into (rate_limited or deferred) */
static void worker_limited(struct job *j)
{
	log_debug("txid=%s event=limit_full status=%s", j->note->txid,
	    j->adm.verdict == ADMIT_DEFER ? "deferred" : j->adm.status);
	render_free(&j->rnd);
	json_object_put(j->detail);
	j->detail = NULL;
	worker_verdict(j);
	worker_record_of(j, j->rec);
}

/* worker_cap_cmp, worker_quota_cmp - jobs in the order of the counter rows a step locks */
static int worker_cap_cmp(const void *a, const void *b)
{
	const struct job *x = *(struct job *const *)a, *y = *(struct job *const *)b;

	return admit_counter_cmp(x->note, &x->adm, y->note, &y->adm, ADMIT_TAKE_CAP);
}

static int worker_quota_cmp(const void *a, const void *b)
{
	const struct job *x = *(struct job *const *)a, *y = *(struct job *const *)b;

	return admit_counter_cmp(x->note, &x->adm, y->note, &y->adm, ADMIT_TAKE_QUOTA);
}

/* worker_taking - whether J, being recorded, has slots to take: ready, or failed to render
 * (§4 judges the cap, step 6, before the render, step 7: a full one makes it rate_limited; a
 * free one is given back by the failed record); a delivery that ended took its slots already */
static bool worker_taking(const struct job *j)
{
	if (j->rec == NULL || j->adm.verdict != ADMIT_GO || !j->adm.hold.pending)
		return false;
	return strcmp(j->status, "ready") == 0 ||
	    (strcmp(j->status, "failed") == 0 && !j->adm.reserved);
}

/* worker_take - record_batch's take for the list ARG of jobs being recorded: the cap slots of
 * those with slots to take (worker_taking), then their quota slots, each step in counter order,
 * so that concurrent workers lock counters in one order (admit_take); a full one makes the job
 * and its record rate_limited or deferred */
static int worker_take(struct db *db, void *arg)
{
	struct job **v, *j;
	size_t m = 0, i;
	int step, rc = 0;

	for (j = arg; j != NULL; j = j->next)
		m += worker_taking(j);
	if (m == 0)
		return 0;       /* most batches: deliveries that ended */
	if ((v = malloc(m * sizeof *v)) == NULL)  /* NOLINT(bugprone-sizeof-expression): an array of pointers */
		return DB_ERR;
	for (m = 0, j = arg; j != NULL; j = j->next)
		if (worker_taking(j))
			v[m++] = j;
	for (step = ADMIT_TAKE_CAP; step <= ADMIT_TAKE_QUOTA && rc == 0; step++) {
		qsort(v, m, sizeof *v, step == ADMIT_TAKE_CAP ? worker_cap_cmp : worker_quota_cmp);  /* NOLINT(bugprone-sizeof-expression): an array of pointers */
		for (i = 0; i < m && rc == 0; i++) {
			j = v[i];
			if (j->adm.verdict != ADMIT_GO)
				continue;       /* its cap was full */
			rc = admit_take(db, j->w->b_admit, j->note, &j->adm, (enum admit_step)step);
			if (rc == 0 && j->adm.verdict != ADMIT_GO)
				worker_limited(j);
		}
	}
	free(v);
	return rc;
}

/* worker_requeue_props - PROPS of the received message with x-herald-attempt set to RETRIES in
 * a header table built in E (N entries at most); the table's entries point into the original */
static void worker_requeue_props(const amqp_basic_properties_t *in, int retries,
	amqp_basic_properties_t *out, amqp_table_entry_t *e, int n)
{
	int i, k = 0;

	*out = *in;
	if (retries < 0)
		return;
	if (in->_flags & AMQP_BASIC_HEADERS_FLAG)
		for (i = 0; i < in->headers.num_entries && k < n - 1; i++) {
			const amqp_bytes_t *key = &in->headers.entries[i].key;

			if (key->len == 16 && memcmp(key->bytes, "x-herald-attempt", 16) == 0)
				continue;
			e[k++] = in->headers.entries[i];
		}
	e[k].key = amqp_cstring_bytes("x-herald-attempt");
	e[k].value.kind = AMQP_FIELD_KIND_I32;
	e[k++].value.value.i32 = retries;
	out->_flags |= AMQP_BASIC_HEADERS_FLAG;
	out->headers.num_entries = k;
	out->headers.entries = e;
}

/* worker_requeue - publish the copies the jobs of LIST want (parking queue, retry tier), all
 * confirmed before anything is recorded or acked; 0 or -1 */
static int worker_requeue(struct worker *w, struct job *list)
{
	amqp_basic_properties_t props;
	amqp_table_entry_t e[32];
	struct job *j;
	int n = 0;

	for (j = list; j != NULL; j = j->next) {
		if (j->requeue[0] == '\0')
			continue;
		worker_requeue_props(&j->env->message.properties, j->requeue_retries, &props, e,
		    (int)(sizeof e / sizeof e[0]));
		if (mq_publish(w->mq, "", j->requeue, &props,
		    j->requeue_body != NULL ? j->requeue_body : j->env->message.body.bytes,
		    j->requeue_body != NULL ? j->requeue_len : j->env->message.body.len, true) < 0)
			return -1;
		n++;
	}
	return n > 0 ? mq_confirm(w->mq) : 0;
}

/* worker_record - requeue, then record every job of LIST that has a status, in one transaction;
 * 0, or -1 (nothing recorded) */
static int worker_record(struct worker *w, struct job *list, int64_t now)
{
	struct record *recs;
	struct job *j;
	size_t n = 0, i;
	int rc;

	if (worker_requeue(w, list) < 0)
		return -1;
	for (j = list; j != NULL; j = j->next)
		if (j->status != NULL && j->note->txid[0] != '\0')
			n++;
	if (n == 0)
		return 0;
	if ((recs = calloc(n, sizeof *recs)) == NULL)
		return -1;
	for (i = 0, j = list; j != NULL; j = j->next)
		if (j->status != NULL && j->note->txid[0] != '\0') {
			j->rec = &recs[i++];
			worker_record_of(j, j->rec);
		}
	rc = record_batch(w->db, w->b_record, w->b_admit, recs, n, w->host, w->name, now,
	    worker_take, list);
	for (j = list; j != NULL; j = j->next)
		j->rec = NULL;
	if (rc == 0)
		for (i = 0, j = list; j != NULL; j = j->next)
			if (j->status != NULL && j->note->txid[0] != '\0') {
				if (recs[i].result == RECORD_REFUSED)
					j->status = NULL;    /* already final: send nothing */
				if (recs[i].result == RECORD_WRITTEN) {
					metrics_status(w->ch, recs[i].status);
					log_debug("event=status txid=%s channel=%s status=%s previous=%s",
					    j->note->txid, codec_channel_name(j->note->channel),
					    recs[i].status, recs[i].previous[0] ? recs[i].previous : "-");
				}
				i++;
			}
	free(recs);
	return rc == 0 ? 0 : -1;
}

/* worker_unadmit - LIST was admitted but not recorded: back to the incoming messages, to be
 * decided again later (admission is safe to repeat) */
static void worker_unadmit(struct worker *w, struct job *list)
{
	struct job *j, *next;

	for (j = list; j != NULL; j = next) {
		next = j->next;
		job_reset(j);
		list_add(&w->incoming, j);
	}
}

/* worker_admit_list - take the incoming messages, drop those of a lost connection and admit
 * the others into *OUT (not yet recorded); -1 (all back in incoming) when the database failed */
static int worker_admit_list(struct worker *w, int64_t now, struct job **out)
{
	struct job *list, *j, **pp;

	*out = NULL;
	list = list_take(&w->incoming);
	/* messages of a lost connection come again on the new one */
	for (pp = &list; (j = *pp) != NULL;) {
		if (j->gen != mq_generation(w->mq)) {
			*pp = j->next;
			job_free(j);
		} else {
			pp = &j->next;
		}
	}
	for (j = list; j != NULL; j = j->next)
		if (worker_admit(w, j, now) < 0) {
			worker_unadmit(w, list);
			return -1;
		}
	*out = list;
	return 0;
}

/* worker_admitted - LIST was admitted and recorded: the ready ones wait for a delivery slot in
 * priority order, the others are acked (ended, deferred, skipped as already final, refused) */
static void worker_admitted(struct worker *w, struct job *list)
{
	struct job *j, *next;

	for (j = list; j != NULL; j = next) {
		next = j->next;
		if (j->status != NULL && strcmp(j->status, "ready") == 0)
			list_add_priority(&w->pending, j);
		else
			job_ack(j);
	}
}

/* worker_admit_batch - admit every waiting message, record their statuses in one transaction,
 * ack the ended ones and start the deliveries */
static void worker_admit_batch(struct worker *w)
{
	int64_t now = rfc3339_now();
	struct job *list;

	if (w->incoming.n == 0)
		return;
	if (worker_admit_list(w, now, &list) < 0)
		goto later;
	if (list == NULL)
		return;
	if (worker_record(w, list, now) < 0) {
		worker_unadmit(w, list);
		goto later;
	}
	w->backoff = 0;
	worker_admitted(w, list);
	worker_pump(w);
	worker_outbox(w);
	return;
later:
	worker_arm_retry(w);
}

/* worker_slots_full - whether as many deliveries as channels.CHANNEL.in_flight are sent (or
 * about to be) and not yet recorded */
static bool worker_slots_full(const struct worker *w)
{
	return w->inflight + w->ended.n >= (size_t)w->conf->channels[w->ch].in_flight;
}

/* worker_pump - start waiting deliveries while in-flight slots are free */
static void worker_pump(struct worker *w)
{
	struct job *j;

	while (!w->draining && !w->closing && (j = w->pending.head) != NULL &&
	    !worker_slots_full(w)) {
		list_remove(&w->pending, j);
		if (j->gen != mq_generation(w->mq))
			job_free(j);     /* its connection was lost: the broker gives it out again */
		else
			worker_start_delivery(j);
	}
}

/* worker_ended - J's delivery ended: queue it for the next recording, at once when deliveries
 * wait for the slot it holds */
static void worker_ended(struct job *j)
{
	struct worker *w = j->w;
	bool now;

	list_add(&w->ended, j);
	now = w->pending.n > 0 && worker_slots_full(w);
	if (ev_is_active(&w->flush)) {
		if (!now)
			return;
		ev_timer_stop(w->loop, &w->flush);
	}
	ev_timer_set(&w->flush, now ? 0. : WORKER_FLUSH_DELAY, 0.);
	ev_timer_start(w->loop, &w->flush);
}

/* worker_retry - J failed transiently on every provider: plan its next attempt through a delay
 * tier (SPEC §3): attempt N waits in tier N (or the first tier at or after Retry-After); a 429
 * with Retry-After counts no attempt. False when the tiers are used up (then it is parked). */
static bool worker_retry(struct job *j)
{
	struct worker *w = j->w;
	const struct prov_result *r = &j->res;
	const int *tiers;
	size_t nt = topology_tiers(w->conf, &tiers), tier;
	unsigned attempt = j->note->attempt, next;
	bool limited = r->http_status == 429 && r->retry_after >= 0;
	struct json_object *d;
	char *body;
	size_t len;

	if (!limited && (attempt == 0 || attempt > nt))
		return false;
	tier = limited ? 0 : attempt - 1;
	while (r->retry_after > 0 && tier + 1 < nt && tiers[tier] < r->retry_after)
		tier++;
	next = limited ? attempt : attempt + 1;
	j->note->attempt = next;
	if (codec_note_encode(j->note, &body, &len) < 0) {
		j->note->attempt = attempt;
		log_error("event=oom what=retry_body txid=%s", j->note->txid);
		return false;
	}
	j->note->attempt = attempt;
	free(j->requeue_body);
	j->requeue_body = body;
	j->requeue_len = len;
	j->requeue_retries = (int)next - 1;
	topology_tier_queue(w->ch, tiers[tier], j->requeue, sizeof j->requeue);
	j->status = "retry";
	d = worker_detail("transient", r->detail);
	json_object_object_add(d, "provider", json_object_new_string(j->provider));
	if (r->http_status)
		json_object_object_add(d, "http_status", json_object_new_int((int)r->http_status));
	if (r->retry_after >= 0)
		json_object_object_add(d, "retry_after", json_object_new_int64(r->retry_after));
	json_object_object_add(d, "next_attempt", json_object_new_int((int)next));
	json_object_object_add(d, "retry_in", json_object_new_int(tiers[tier]));
	j->detail = d;
	j->slots = RECORD_SLOTS_NONE;   /* the cap slot and the claim are held through retries */
	log_info("event=retry txid=%s channel=%s attempt=%u next_attempt=%u in=%ds err=\"%s\"",
	    j->note->txid, codec_channel_name(j->note->channel), attempt, next, tiers[tier], r->detail);
	return true;
}

/* worker_outcome - turn provider result R of J into the status to record; true when done with
 * it (false: try the next provider) */
static bool worker_outcome(struct job *j)
{
	struct worker *w = j->w;
	const struct prov_result *r = &j->res;
	struct json_object *d;

	json_object_put(j->detail);
	j->detail = NULL;
	j->provider = w->provs[j->prov].name;
	if (r->outcome == PROV_TRANSIENT && worker_next_prov(j, j->prov + 1) < w->nprovs &&
	    !w->closing) {
		log_info("event=failover txid=%s channel=%s provider=%s err=\"%s\"", j->note->txid,
		    codec_channel_name(j->note->channel), j->provider, r->detail);
		j->prov = worker_next_prov(j, j->prov + 1);
		return false;
	}
	if (j->devs != NULL)
		return worker_device_end(j);
	if (r->outcome == PROV_ACCEPTED) {
		j->status = "done";
		j->message_id = r->message_id[0] ? r->message_id : NULL;
		d = json_object_new_object();
		json_object_object_add(d, "provider", json_object_new_string(j->provider));
		if (r->http_status)
			json_object_object_add(d, "http_status", json_object_new_int((int)r->http_status));
		if (r->message_id[0])
			json_object_object_add(d, "provider_message_id",
			    json_object_new_string(r->message_id));
		if (j->rnd.template_version)
			json_object_object_add(d, "template_version",
			    json_object_new_int((int)j->rnd.template_version));
		j->detail = d;
		j->slots = j->adm.reserved ? RECORD_SLOTS_KEEP : RECORD_SLOTS_NONE;
		return true;
	}
	if (r->outcome == PROV_TRANSIENT && worker_retry(j))
		return true;
	j->status = "failed";
	d = worker_detail(r->outcome == PROV_PERMANENT ? "permanent" : "retries exhausted", r->detail);
	json_object_object_add(d, "provider", json_object_new_string(j->provider));
	if (r->http_status)
		json_object_object_add(d, "http_status", json_object_new_int((int)r->http_status));
	if (r->outcome == PROV_TRANSIENT)
		json_object_object_add(d, "attempts", json_object_new_int((int)j->note->attempt));
	if (j->rnd.template_version)
		json_object_object_add(d, "template_version",
		    json_object_new_int((int)j->rnd.template_version));
	j->detail = d;
	j->slots = RECORD_SLOTS_RELEASE;
	if (r->outcome == PROV_TRANSIENT)
		worker_park(j);
	if (r->outcome == PROV_PERMANENT && r->suppress && j->adm.address != NULL) {
		size_t i;

		/* suppressions hold email addresses in lower case (admit.c) */
		for (i = 0; j->adm.address[i] != '\0' && i + 1 < sizeof j->suppress; i++)
			j->suppress[i] = (char)tolower((unsigned char)j->adm.address[i]);
		j->suppress[i] = '\0';
	}
	return true;
}

/* worker_http_done - a delivery's HTTP call ended */
static void worker_http_done(CURL *easy, CURLcode rc, void *arg)
{
	struct job *j = arg;
	struct worker *w = j->w;
	struct prov_call *call = NULL;
	struct prov *p = &w->provs[j->prov];
	curl_off_t us = 0;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&call);
	if (curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &us) == CURLE_OK)
		metrics_latency(w->ch, (int64_t)us);
	w->inflight--;
	memset(&j->res, 0, sizeof j->res);
	p->ops->finish(p, call, rc, &j->res);
	if (j->res.http_status == 429 && j->res.retry_after > 0 && !j->res.no_pause) {
		char key[512];

		/* every worker of this host waits with it (SPEC §5) */
		hostpause_key(p->name, j->adm.address, key, sizeof key);
		hostpause_set(key, rfc3339_now() + (int64_t)j->res.retry_after * 1000000);
		log_info("event=paused key=\"%s\" seconds=%d txid=%s", key, j->res.retry_after,
		    j->note->txid);
	}
	if (worker_outcome(j))
		worker_ended(j);
	else
		worker_start_delivery(j);
}

/* worker_paused - whether P (for webhooks: J's destination host) is paused by a 429 another
 * delivery of this host got; then J's result says so, as a 429 would (no attempt counted) */
static bool worker_paused(struct job *j, const struct prov *p, int64_t now)
{
	char key[512];
	int64_t until = hostpause_until(hostpause_key(p->name, j->adm.address, key, sizeof key), now);

	if (until == 0)
		return false;
	j->res.outcome = PROV_TRANSIENT;
	j->res.http_status = 429;
	j->res.retry_after = (int)((until - now + 999999) / 1000000);
	snprintf(j->res.detail, sizeof j->res.detail, "paused for %d s by a 429 from %.400s",
	    j->res.retry_after, key);
	return true;
}

/* worker_wait_cb - J's turn under the rate limit came */
static void worker_wait_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct job *j = t->data;

	(void)loop;
	(void)revents;
	list_remove(&j->w->waiting, j);
	j->w->inflight--;
	worker_start_delivery(j);
}

/* worker_rate_wait - whether J must wait for P's rate limit (channels.CHANNEL.rate per second,
 * for webhooks per destination host, shared by the workers of this host); then it waits */
static bool worker_rate_wait(struct job *j, const struct prov *p, int64_t now)
{
	struct worker *w = j->w;
	char key[512] = "rate ";
	int64_t wait;

	if (w->conf->channels[w->ch].rate <= 0 || w->closing)
		return false;
	hostpause_key(p->name, j->adm.address, key + 5, sizeof key - 5);
	if ((wait = hostpause_rate(key, w->conf->channels[w->ch].rate, now)) == 0)
		return false;
	ev_timer_init(&j->wait, worker_wait_cb, (double)wait / 1e6, 0.);
	j->wait.data = j;
	ev_timer_start(w->loop, &j->wait);
	list_add(&w->waiting, j);
	w->inflight++;
	return true;
}

/* worker_msg - what J's current delivery sends (push: to its current device) into M */
static void worker_msg(struct job *j, struct prov_msg *m)
{
	const struct worker *w = j->w;

	memset(m, 0, sizeof *m);
	m->note = j->note;
	m->address = j->adm.address;
	m->push_platform = j->note->push_platform;
	if (j->devs != NULL && j->dev < j->ndevs) {
		m->address = j->devs[j->dev].token;
		m->push_platform = j->devs[j->dev].platform;
		snprintf(j->identity, sizeof j->identity, "%s:%s:%s", j->note->txid,
		    codec_channel_name(j->note->channel), j->devs[j->dev].token);
	} else {
		snprintf(j->identity, sizeof j->identity, "%s:%s", j->note->txid,
		    codec_channel_name(j->note->channel));
	}
	m->subject = j->rnd.subject;
	m->text = j->rnd.text;
	m->html = j->rnd.html;
	m->extra = j->rnd.extra;
	m->client = j->note->client_id != NULL ?
	    conf_client_find(w->conf, j->note->client_id) : NULL;
	m->identity = j->identity;
	m->now = rfc3339_now();
}

/* worker_next_prov - the first provider from FROM on (failover order) that accepts J's current
 * delivery (push: its device's platform); w->nprovs when none */
static size_t worker_next_prov(struct job *j, size_t from)
{
	const struct worker *w = j->w;
	struct prov_msg m;
	size_t i;

	worker_msg(j, &m);
	for (i = from; i < w->nprovs; i++)
		if (w->provs[i].ops->accepts == NULL || w->provs[i].ops->accepts(&w->provs[i], &m))
			return i;
	return w->nprovs;
}

/* worker_devices - push: J's devices with the outcomes earlier attempts stored (j->devs stays
 * NULL when out of memory) */
static void worker_devices(struct job *j)
{
	struct worker *w = j->w;
	size_t i;

	if ((j->devs = calloc(j->adm.ndevices ? j->adm.ndevices : 1, sizeof *j->devs)) == NULL) {
		log_error("event=oom what=devices txid=%s", j->note->txid);
		return;
	}
	j->ndevs = j->adm.ndevices;
	for (i = 0; i < j->ndevs; i++) {
		snprintf(j->devs[i].platform, sizeof j->devs[i].platform, "%s",
		    j->adm.devices[i].platform);
		snprintf(j->devs[i].token, sizeof j->devs[i].token, "%s", j->adm.devices[i].token);
	}
	if (record_devices_load(w->db, w->b_record, j->note->txid, j->devs, j->ndevs) < 0)
		log_warnx("event=device_outcomes_unread txid=%s err=\"%s\" note=\"earlier accepted "
		    "devices may be sent again\"", j->note->txid, db_error(w->db));
	j->dev = 0;
	j->devs_loaded = true;
}

/* worker_device_final - whether device outcome O ends that device */
static bool worker_device_final(const char *o)
{
	return strcmp(o, "accepted") == 0 || strcmp(o, "rejected") == 0 ||
	    strcmp(o, "unregistered") == 0;
}

/* worker_device_end - push: the current device's result (after failover) is in J->res: store
 * it before the next device is sent and go on with the next; false (start the next delivery)
 * until every device has an outcome, then true with J's status decided */
static bool worker_device_end(struct job *j)
{
	struct worker *w = j->w;
	struct record_device *d = &j->devs[j->dev];
	const struct prov_result *r = &j->res;
	struct json_object *det = json_object_new_object();

	snprintf(d->outcome, sizeof d->outcome, "%s", r->outcome == PROV_ACCEPTED ? "accepted" :
	    r->outcome == PROV_TRANSIENT ? "retry" : r->unregistered ? "unregistered" : "rejected");
	snprintf(d->message_id, sizeof d->message_id, "%s",
	    r->outcome == PROV_ACCEPTED ? r->message_id : "");
	json_object_object_add(det, "provider", json_object_new_string(j->provider));
	if (r->http_status)
		json_object_object_add(det, "http_status", json_object_new_int((int)r->http_status));
	if (r->detail[0])
		json_object_object_add(det, "error", json_object_new_string(r->detail));
	if (record_device(w->db, w->b_record, j->note->txid, d, j->note->attempt, det) < 0)
		log_warnx("event=device_outcome_unstored txid=%s outcome=%s err=\"%s\"",
		    j->note->txid, d->outcome, db_error(w->db));
	json_object_put(det);
	log_info("event=device txid=%s platform=%s outcome=%s provider=%s%s%s", j->note->txid,
	    d->platform, d->outcome, j->provider, r->detail[0] ? " err=" : "",
	    r->detail[0] ? r->detail : "");
	if (r->outcome == PROV_TRANSIENT)
		j->transient = *r;
	j->dev++;
	j->prov = 0;
	while (j->dev < j->ndevs && worker_device_final(j->devs[j->dev].outcome))
		j->dev++;
	if (j->dev < j->ndevs)
		return false;
	worker_device_decide(j);
	return true;
}

/* worker_device_decide - push: every device of J has an outcome; J's status from them (SPEC
 * §5): a retry tier while some wait for one, else done when one accepted, else failed */
static void worker_device_decide(struct job *j)
{
	struct json_object *det;
	size_t i, acc = 0, rej = 0, gone = 0, again = 0;
	const char *mid = NULL;

	json_object_put(j->detail);
	j->detail = NULL;
	for (i = 0; i < j->ndevs; i++) {
		const char *o = j->devs[i].outcome;

		if (strcmp(o, "accepted") == 0) {
			acc++;
			if (mid == NULL && j->devs[i].message_id[0])
				mid = j->devs[i].message_id;
		} else if (strcmp(o, "unregistered") == 0) {
			gone++;
		} else if (strcmp(o, "rejected") == 0) {
			rej++;
		} else {
			again++;
		}
	}
	det = json_object_new_object();
	json_object_object_add(det, "accepted", json_object_new_int((int)acc));
	json_object_object_add(det, "rejected", json_object_new_int((int)rej));
	json_object_object_add(det, "unregistered", json_object_new_int((int)gone));
	json_object_object_add(det, "retry", json_object_new_int((int)again));
	if (again > 0) {
		j->res = j->transient;
		if (worker_retry(j)) {
			json_object_object_add(j->detail, "devices", det);
			return;
		}
	}
	if (acc > 0) {
		j->status = "done";
		if (mid != NULL) {
			snprintf(j->res.message_id, sizeof j->res.message_id, "%s", mid);
			j->message_id = j->res.message_id;
		}
		j->detail = json_object_new_object();
		json_object_object_add(j->detail, "provider", json_object_new_string(j->provider));
		if (mid != NULL)
			json_object_object_add(j->detail, "provider_message_id",
			    json_object_new_string(mid));
		j->slots = j->adm.reserved ? RECORD_SLOTS_KEEP : RECORD_SLOTS_NONE;
	} else {
		j->status = "failed";
		j->detail = worker_detail(again > 0 ? "retries exhausted" :
		    gone + rej > 0 ? "permanent" : "no device", again > 0 ? j->transient.detail :
		    NULL);
		json_object_object_add(j->detail, "provider", json_object_new_string(j->provider));
		if (again > 0) {
			json_object_object_add(j->detail, "attempts",
			    json_object_new_int((int)j->note->attempt));
			worker_park(j);
		}
		j->slots = RECORD_SLOTS_RELEASE;
	}
	json_object_object_add(j->detail, "devices", det);
	if (j->rnd.template_version)
		json_object_object_add(j->detail, "template_version",
		    json_object_new_int((int)j->rnd.template_version));
}

/* worker_start_delivery - hand J to its current provider (push: its next device) */
static void worker_start_delivery(struct job *j)
{
	struct worker *w = j->w;
	struct prov *p;
	struct prov_call *call = NULL;
	struct prov_msg m;

	if (j->note->channel == CODEC_CH_PUSH && j->adm.address == NULL) {
		if (!j->devs_loaded)
			worker_devices(j);
		while (j->devs != NULL && j->dev < j->ndevs &&
		    worker_device_final(j->devs[j->dev].outcome))
			j->dev++;            /* settled by an earlier attempt */
		if (j->devs == NULL || j->dev == j->ndevs) {
			memset(&j->res, 0, sizeof j->res);
			if (j->devs == NULL) {
				j->res.outcome = PROV_TRANSIENT;
				snprintf(j->res.detail, sizeof j->res.detail, "out of memory");
				if (worker_outcome(j))
					worker_ended(j);
				return;
			}
			/* nothing left to send: decide from the stored outcomes */
			j->provider = w->provs[0].name;
			worker_device_decide(j);
			worker_ended(j);
			return;
		}
	}
	j->prov = worker_next_prov(j, j->prov);
	memset(&j->res, 0, sizeof j->res);
	j->res.retry_after = -1;
	if (j->prov == w->nprovs) {
		/* no provider of the channel takes this (a push platform none serves) */
		j->prov = 0;
		j->provider = w->provs[0].name;
		j->res.outcome = PROV_PERMANENT;
		snprintf(j->res.detail, sizeof j->res.detail, "no provider for platform %s",
		    j->devs != NULL ? j->devs[j->dev].platform : "-");
		if (j->devs != NULL ? worker_device_end(j) : worker_outcome(j))
			worker_ended(j);
		else
			worker_start_delivery(j);
		return;
	}
	p = &w->provs[j->prov];
	worker_msg(j, &m);
	if (!worker_paused(j, p, m.now) && worker_rate_wait(j, p, m.now))
		return;
	if (j->res.http_status == 429 || p->ops->start(p, &m, &call, &j->res) < 0) {
		if (worker_outcome(j))
			worker_ended(j);
		else
			worker_start_delivery(j);
		return;
	}
	curl_easy_setopt(call->easy, CURLOPT_PRIVATE, (char *)call);
	if (http_add(w->http, call->easy, worker_http_done, j) < 0) {
		p->ops->finish(p, call, CURLE_FAILED_INIT, &j->res);
		if (worker_outcome(j))
			worker_ended(j);
		else
			worker_start_delivery(j);
		return;
	}
	w->inflight++;
}

/* worker_check_drained - after a drain request: stop once nothing is in flight or unrecorded */
static void worker_check_drained(struct worker *w)
{
	if (w->draining && w->inflight == 0 && w->ended.n == 0)
		ev_break(w->loop, EVBREAK_ALL);
}

/* worker_flush_cb - record the deliveries that ended, and in the same transaction the
 * admission of the messages that arrived meanwhile; then ack the ended ones */
static void worker_flush_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;
	int64_t now = rfc3339_now();
	struct job *list, *in = NULL, *j, *next, **tail;

	(void)loop;
	(void)revents;
	if (w->ended.n == 0)
		return;
	list = list_take(&w->ended);
	if (w->incoming.n > 0 && !w->draining && !w->closing && worker_admit_list(w, now, &in) < 0)
		in = NULL;      /* left in incoming; the ended ones are recorded all the same */
	for (tail = &list; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = in;
	if (worker_record(w, list, now) < 0) {
		*tail = NULL;
		for (j = list; j != NULL; j = next) {
			next = j->next;
			list_add(&w->ended, j);
		}
		worker_unadmit(w, in);
		worker_arm_retry(w);
		return;
	}
	*tail = NULL;
	w->backoff = 0;
	for (j = list; j != NULL; j = next) {
		next = j->next;
		job_ack(j);
	}
	worker_admitted(w, in);
	worker_pump(w);
	worker_outbox(w);
	worker_check_drained(w);
}

/* worker_retry_cb - reconnect what was lost, then go on with what waits */
static void worker_retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;

	(void)loop;
	(void)revents;
	if (!mq_connected(w->mq) && !w->draining && mq_connect(w->mq) < 0) {
		worker_arm_retry(w);
		return;
	}
	if (w->ended.n > 0)
		worker_flush_cb(loop, &w->flush, 0);
	worker_admit_batch(w);
	worker_pump(w);
	worker_check_drained(w);
}

/* worker_outbox_cb - periodic: events left by others, and a lost broker connection noticed */
static void worker_outbox_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;

	(void)loop;
	(void)revents;
	if (!mq_connected(w->mq) && !w->draining) {
		worker_arm_retry(w);
		return;
	}
	worker_outbox(w);
}

/* worker_deliver_cb - a message arrived */
static void worker_deliver_cb(struct mq *mq, amqp_envelope_t *env, void *arg)
{
	struct worker *w = arg;
	struct job *j = calloc(1, sizeof *j);

	if (j == NULL) {
		/* not acked: the broker gives it to us or another worker again */
		log_error("event=oom what=job");
		mq_envelope_free(env);
		return;
	}
	metrics_received(w->ch);
	j->w = w;
	j->env = env;
	j->gen = mq_generation(mq);
	j->requeue_retries = -1;
	j->rnd.template_version = 0;
	list_add(&w->incoming, j);
}

/* worker_idle_cb - a batch of deliveries was read */
static void worker_idle_cb(struct mq *mq, void *arg)
{
	struct worker *w = arg;

	(void)mq;
	if (w->draining)
		return;
	/* while ready messages wait for a busy slot, new ones are admitted with the next
	 * recording: one transaction for both */
	if (w->pending.n > 0 && worker_slots_full(w))
		return;
	worker_admit_batch(w);
}

/* worker_grace_cb - drain took longer than heraldd.grace: stop anyway (unacked messages are
 * redelivered; at most one duplicate each) */
static void worker_grace_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;

	(void)revents;
	log_warnx("event=drain_timeout inflight=%zu unrecorded=%zu", w->inflight, w->ended.n);
	w->exit_code = EX_TEMPFAIL;
	ev_break(loop, EVBREAK_ALL);
}

/* worker_signal_cb - SIGTERM/SIGINT: take nothing new, finish what runs, record, ack, exit */
static void worker_signal_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
	struct worker *w = s->data;
	struct job *j, *next;

	(void)revents;
	if (w->draining)
		return;
	log_info("event=draining signal=%d inflight=%zu", s->signum, w->inflight);
	w->draining = true;
	mq_stop(w->mq);
	/* received or ready but not started: left unacked, the broker requeues them on close */
	for (j = list_take(&w->incoming); j != NULL; j = next) {
		next = j->next;
		job_free(j);
	}
	for (j = list_take(&w->pending); j != NULL; j = next) {
		next = j->next;
		job_free(j);
	}
	ev_timer_set(&w->grace, w->conf->heraldd.grace > 0 ? w->conf->heraldd.grace : 30, 0.);
	ev_timer_start(loop, &w->grace);
	worker_check_drained(w);
}

/* worker_usr1_cb - SIGUSR1: reopen the log file (logrotate) */
static void worker_usr1_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
	(void)loop;
	(void)s;
	(void)revents;
	log_reopen();
}

/* worker_registry - one statement registry for the modules sharing the connection */
static int worker_registry(struct worker *w)
{
	const struct db_module mods[] = {
		{ admit_stmts, admit_nstmts, &w->b_admit },
		{ record_stmts, record_nstmts, &w->b_record },
		{ render_stmts, render_nstmts, &w->b_render },
		{ outbox_stmts, outbox_nstmts, &w->b_outbox },
	};

	return db_registry(mods, sizeof mods / sizeof mods[0], &w->stmts);
}

/* worker_main - set up, run the loop until drained, tear down */
int worker_main(const struct conf *c, int ch)
{
	struct worker w;
	struct db_opts dbo = { 0 };
	char err[1024] = "";
	int nstmts;

	memset(&w, 0, sizeof w);
	w.conf = c;
	w.ch = ch;
	w.exit_code = EX_OK;
	w.incoming.tail = &w.incoming.head;
	w.pending.tail = &w.pending.head;
	w.ended.tail = &w.ended.head;
	w.waiting.tail = &w.waiting.head;
	if (gethostname(w.host, sizeof w.host) < 0)
		snprintf(w.host, sizeof w.host, "unknown");
	w.host[sizeof w.host - 1] = '\0';
	snprintf(w.name, sizeof w.name, "%s.%ld", conf_channel_name(ch), (long)getpid());
	topology_channel_queue(ch, w.queue, sizeof w.queue);
	topology_parking_queue(ch, w.parked, sizeof w.parked);
	if (hostpause_init() < 0)
		log_warn("event=no_pause_table note=\"429 pauses stay with the delivery that got them\"");
	if (prov_open(c, ch, &w.provs, &w.nprovs, err, sizeof err) < 0 || w.nprovs == 0) {
		log_error("event=no_provider channel=%s err=\"%s\"", conf_channel_name(ch),
		    w.nprovs == 0 && err[0] == '\0' ? "no provider configured" : err);
		return EX_CONFIG;
	}
	if ((nstmts = worker_registry(&w)) < 0)
		fatalx(EX_OSERR, "event=oom");
	dbo.connect_timeout = c->mysql.connect_timeout;
	dbo.read_timeout = c->mysql.read_timeout;
	dbo.write_timeout = c->mysql.write_timeout;
	dbo.tls = &c->mysql.tls;
	if (db_open(&w.db, &c->mysql.parsed, &dbo, w.stmts, (size_t)nstmts) < 0) {
		log_error("event=db_unavailable target=%s err=\"%s\"", db_target(w.db), db_error(w.db));
		w.exit_code = EX_TEMPFAIL;
		goto out;
	}
	w.loop = ev_default_loop(EVFLAG_AUTO);
	if ((w.http = http_new(w.loop)) == NULL) {
		w.exit_code = EX_OSERR;
		goto out;
	}
	w.mq = mq_new(w.loop, c, w.queue, "heraldd", worker_deliver_cb, worker_idle_cb, &w);
	if (w.mq == NULL) {
		w.exit_code = EX_OSERR;
		goto out;
	}
	ev_init(&w.flush, worker_flush_cb);
	w.flush.data = &w;
	ev_init(&w.retry, worker_retry_cb);
	w.retry.data = &w;
	ev_init(&w.grace, worker_grace_cb);
	w.grace.data = &w;
	ev_timer_init(&w.outbox, worker_outbox_cb, WORKER_OUTBOX_EVERY, WORKER_OUTBOX_EVERY);
	w.outbox.data = &w;
	ev_timer_start(w.loop, &w.outbox);
	ev_signal_init(&w.sigterm, worker_signal_cb, SIGTERM);
	w.sigterm.data = &w;
	ev_signal_start(w.loop, &w.sigterm);
	ev_signal_init(&w.sigint, worker_signal_cb, SIGINT);
	w.sigint.data = &w;
	ev_signal_start(w.loop, &w.sigint);
	ev_signal_init(&w.sigusr1, worker_usr1_cb, SIGUSR1);
	ev_signal_start(w.loop, &w.sigusr1);
	signal(SIGPIPE, SIG_IGN);
	if (mq_connect(w.mq) < 0)
		worker_arm_retry(&w);
	log_info("event=worker_started channel=%s worker=%s providers=%zu", conf_channel_name(ch),
	    w.name, w.nprovs);
	ev_run(w.loop, 0);
	log_info("event=worker_stopped channel=%s worker=%s", conf_channel_name(ch), w.name);
out:
	w.closing = true;
	http_free(w.http);       /* aborts what still runs: those end in w.ended, unacked */
	{
		struct job *j, *next;

		for (j = list_take(&w.incoming); j != NULL; j = next) {
			next = j->next;
			job_free(j);
		}
		for (j = list_take(&w.pending); j != NULL; j = next) {
			next = j->next;
			job_free(j);
		}
		for (j = list_take(&w.ended); j != NULL; j = next) {
			next = j->next;
			job_free(j);
		}
		for (j = list_take(&w.waiting); j != NULL; j = next) {
			next = j->next;
			ev_timer_stop(w.loop, &j->wait);
			job_free(j);
		}
	}
	mq_close(w.mq);
	db_close(w.db);
	prov_close(w.provs, w.nprovs);
	free(w.stmts);
	if (w.loop != NULL)
		ev_loop_destroy(w.loop);
	return w.exit_code;
}
