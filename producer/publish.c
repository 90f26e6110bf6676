/* publish - libherald's send path: validate, split, publish with confirms, answer in order */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <json-c/json.h>

#include "herald_int.h"
#include "topology.h"

/* publish_error_reply - {"error":true,"status":...,"message":...}[,"line":N] for a broker error */
static char *publish_error_reply(int status, const char *msg, long line)
{
	json_object *o = json_object_new_object();
	char *s = NULL;

	if (o == NULL)
		return NULL;
	json_object_object_add(o, "error", json_object_new_boolean(1));
	json_object_object_add(o, "status", json_object_new_string(
	    status == HERALD_EBLOCKED ? "broker_blocked" : status == HERALD_ETIMEOUT ?
	    "unconfirmed" : status == HERALD_ENACK ? "refused" : status == HERALD_ERETURN ?
	    "unroutable" : "broker_error"));
	json_object_object_add(o, "message", json_object_new_string(msg));
	if (line > 0)
		json_object_object_add(o, "line", json_object_new_int64(line));
	s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

/* publish_bodies_free - release the cached wire bodies of P */
static void publish_bodies_free(struct pend *p)
{
	size_t i;

	if (p->body != NULL)
		for (i = 0; i < p->n; i++)
			free(p->body[i]);
	free(p->body);
	free(p->blen);
	p->body = NULL;
	p->blen = NULL;
}

/* publish_deliver - run the callbacks of finished requests at the head, in order */
static void publish_deliver(struct herald *h)
{
	struct pend *p;
	char *reply;

	while ((p = h->head) != NULL && p->sealed && p->outstanding == 0) {
		h->head = p->next;
		if (h->head == NULL)
			h->tail = NULL;
		if (p->reply != NULL)
			reply = p->reply;
		else if (p->status == HERALD_OK)
			reply = codec_reply_received(p->req, p->notes, p->n);
		else
			reply = publish_error_reply(p->status, p->msg, p->line);
		if (p->cb != NULL)
			p->cb(reply == NULL ? HERALD_ENOMEM : p->status, reply != NULL ? reply :
			    "{\"error\":true,\"status\":\"broker_error\",\"message\":\"out of memory\"}",
			    p->line, p->arg);
		free(reply);
		publish_bodies_free(p);
		codec_notes_free(p->notes, p->n);
		codec_request_free(p->req);
		free(p->acked);
		free(p);
	}
}

/* publish_drop - fail every pending request with the connection's status and deliver it */
void publish_drop(struct herald *h)
{
	struct pend *p;
	uint64_t t;

	for (t = h->base; t < h->next_tag; t++)
		h->slots[t % h->window].p = NULL;
	h->base = h->next_tag;
	h->hdue = h->ndue = 0;
	for (p = h->head; p != NULL; p = p->next) {
		if (p->status == HERALD_OK && p->reply == NULL) {
			p->status = h->dead;
			snprintf(p->msg, sizeof p->msg, "%s", h->err);
		}
		p->outstanding = 0;
		p->sealed = true;
	}
	publish_deliver(h);
}

/* publish_hdr - fill table entry E with the string header K = V */
static void publish_hdr(amqp_table_entry_t *e, const char *k, const char *v)
{
	e->key = amqp_cstring_bytes(k);
	e->value.kind = AMQP_FIELD_KIND_UTF8;
	e->value.value.bytes = amqp_cstring_bytes(v);
}

/* publish_copy - publish copy COPY (0: to the channel queue, 1: the ledger record) of note IDX
 * of P, without waiting: the caller made room in the window */
static int publish_copy(struct herald *h, struct pend *p, size_t idx, int copy)
{
	const struct note *n = p->notes[idx];
	amqp_basic_properties_t pr;
	amqp_bytes_t bytes;
	amqp_table_entry_t e[8];
	char msgid[HERALD_MSGID_MAX];
	const char *ch = codec_channel_name(n->channel);
	struct slot *s;
	size_t ne = 0;
	int rc;

	/* both copies carry the same body: encode it once */
	if (p->body[idx] == NULL && codec_note_encode(n, &p->body[idx], &p->blen[idx]) < 0)
		return herald_fail(h, HERALD_ENOMEM, "encoding a message failed");
	bytes.len = p->blen[idx];
	bytes.bytes = p->body[idx];
	publish_hdr(&e[ne++], "x-herald-txid", n->txid);
	e[ne].key = amqp_cstring_bytes("x-herald-attempt");
	e[ne].value.kind = AMQP_FIELD_KIND_I32;
	e[ne++].value.value.i32 = 0;
	publish_hdr(&e[ne++], "x-herald-channel", ch);
	publish_hdr(&e[ne++], "x-herald-client", n->client_id);
	publish_hdr(&e[ne++], "x-herald-category", n->category);
	if (n->batch_id != NULL)
		publish_hdr(&e[ne++], "x-herald-batch", n->batch_id);
	if (n->idempotency_key != NULL)
		publish_hdr(&e[ne++], "x-herald-idempotency-key", n->idempotency_key);
	if (n->expires_at != 0) {
		e[ne].key = amqp_cstring_bytes("x-herald-expires");   /* µs since the epoch */
		e[ne].value.kind = AMQP_FIELD_KIND_I64;
		e[ne++].value.value.i64 = n->expires_at;
	}
	/* the ledger copy gets its own id, so a return or nack names which copy failed */
	snprintf(msgid, sizeof msgid, "%s:%s%s", n->txid, ch, copy == 1 ? ":ledger" : "");
	memset(&pr, 0, sizeof pr);
	pr._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
	    AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_USER_ID_FLAG |
	    AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
	pr.content_type = amqp_cstring_bytes("application/json");
	pr.delivery_mode = AMQP_DELIVERY_PERSISTENT;
	pr.priority = (uint8_t)n->priority;
	pr.message_id = amqp_cstring_bytes(msgid);
	pr.user_id = amqp_cstring_bytes(h->user);
	pr.timestamp = (uint64_t)(n->accepted_at / 1000000);
	pr.headers.num_entries = (int)ne;
	pr.headers.entries = e;
	rc = amqp_basic_publish(h->conn, HERALD_CHAN, amqp_cstring_bytes(TOPOLOGY_EXCHANGE),
	    amqp_cstring_bytes(copy == 1 ? TOPOLOGY_LEDGER_KEY : ch), 1, 0, &pr, bytes);
	if (copy == 1) {             /* the last use, unless a reconnect resends: then re-encoded */
		free(p->body[idx]);
		p->body[idx] = NULL;
	}
	if (rc != AMQP_STATUS_OK)
		return herald_fail(h, HERALD_ECONNECT, "publish to the broker failed: %s",
		    amqp_error_string2(rc));
	s = &h->slots[h->next_tag++ % h->window];
	s->p = p;
	s->note = idx;
	s->copy = (unsigned char)(1u << copy);
	snprintf(s->msgid, sizeof s->msgid, "%s", msgid);
	return HERALD_OK;
}

/* publish_due - queue the ledger record of note IDX of P, to go out once there is room */
static int publish_due(struct herald *h, struct pend *p, size_t idx)
{
	if (h->ndue == h->capdue) {
		size_t cap = h->capdue ? h->capdue * 2 : 256;
		struct due *d = realloc(h->due, cap * sizeof *d);

		if (d == NULL)
			return herald_fail(h, HERALD_ENOMEM, "out of memory");
		h->due = d;
		h->capdue = cap;
	}
	h->due[h->ndue].p = p;
	h->due[h->ndue++].note = idx;
	return HERALD_OK;
}

/* publish_drain - publish the due ledger records while the window has room */
static void publish_drain(struct herald *h)
{
	while (h->dead == HERALD_OK && h->hdue < h->ndue && h->next_tag - h->base < h->window) {
		struct due *d = &h->due[h->hdue++];

		publish_copy(h, d->p, d->note, 1);
	}
	if (h->hdue == h->ndue)
		h->hdue = h->ndue = 0;
}

/* publish_confirm - a confirm for TAG (and all before it when MULTIPLE); NACK marks a refusal */
static void publish_confirm(struct herald *h, uint64_t tag, bool multiple, bool nack)
{
	uint64_t t = multiple ? h->base : tag;

	for (; t <= tag && t < h->next_tag; t++) {
		struct slot *s;
		struct pend *p;

		if (t < h->base)
			continue;
		s = &h->slots[t % h->window];
		if ((p = s->p) == NULL)
			continue;
		s->p = NULL;
		if (nack && p->status == HERALD_OK) {
			p->status = HERALD_ENACK;
			snprintf(p->msg, sizeof p->msg, "the broker refused message %s (nack)", s->msgid);
		}
		p->acked[s->note] |= s->copy;
		p->outstanding--;
		if (s->copy != 1)
			continue;
		if (nack || (p->acked[s->note] & 4)) {
			p->acked[s->note] |= 2;       /* refused or returned: no ledger record */
			p->outstanding--;
		} else {
			publish_due(h, p, s->note);
		}
	}
	while (h->base < h->next_tag && h->slots[h->base % h->window].p == NULL)
		h->base++;
}

/* publish_returned - a basic.return: read the message and fail the request it belongs to */
static int publish_returned(struct herald *h, const amqp_basic_return_t *ret)
{
	amqp_message_t m;
	amqp_rpc_reply_t r = amqp_read_message(h->conn, HERALD_CHAN, &m, 0);
	char id[HERALD_MSGID_MAX];
	uint64_t t;

	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		return herald_fail(h, HERALD_ECONNECT, "reading a returned message failed");
	id[0] = '\0';
	if (m.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG)
		snprintf(id, sizeof id, "%.*s", (int)m.properties.message_id.len,
		    (const char *)m.properties.message_id.bytes);
	for (t = h->base; t < h->next_tag; t++) {
		struct slot *s = &h->slots[t % h->window];

		if (s->p != NULL && strcmp(s->msgid, id) == 0) {
			if (s->copy == 1)
				s->p->acked[s->note] |= 4;
			if (s->p->status == HERALD_OK) {
				s->p->status = HERALD_ERETURN;
				snprintf(s->p->msg, sizeof s->p->msg, "message %s unroutable: %u %.*s",
				    id, ret->reply_code, (int)ret->reply_text.len,
				    (const char *)ret->reply_text.bytes);
			}
			break;
		}
	}
	amqp_destroy_message(&m);
	return HERALD_OK;
}

/* publish_frame - act on one frame from the broker; HERALD_OK or the connection's error */
static int publish_frame(struct herald *h, const amqp_frame_t *f)
{
	if (f->frame_type != AMQP_FRAME_METHOD)
		return HERALD_OK;
	switch (f->payload.method.id) {
	case AMQP_BASIC_ACK_METHOD: {
		amqp_basic_ack_t *a = f->payload.method.decoded;

		publish_confirm(h, a->delivery_tag, a->multiple, false);
		return HERALD_OK;
	}
	case AMQP_BASIC_NACK_METHOD: {
		amqp_basic_nack_t *n = f->payload.method.decoded;

		publish_confirm(h, n->delivery_tag, n->multiple, true);
		return HERALD_OK;
	}
	case AMQP_BASIC_RETURN_METHOD:
		return publish_returned(h, f->payload.method.decoded);
	case AMQP_CONNECTION_BLOCKED_METHOD:
		if (!h->blocked) {
			h->blocked = true;
			h->blocked_since = time(NULL);
		}
		return HERALD_OK;
	case AMQP_CONNECTION_UNBLOCKED_METHOD:
		h->blocked = false;
		return HERALD_OK;
	case AMQP_CHANNEL_CLOSE_METHOD: {
		amqp_channel_close_t *c = f->payload.method.decoded;

		return herald_fail(h, HERALD_ECONNECT, "broker closed the channel: %u %.*s",
		    c->reply_code, (int)c->reply_text.len, (const char *)c->reply_text.bytes);
	}
	case AMQP_CONNECTION_CLOSE_METHOD: {
		amqp_connection_close_t *c = f->payload.method.decoded;

		return herald_fail(h, HERALD_ECONNECT, "broker closed the connection: %u %.*s",
		    c->reply_code, (int)c->reply_text.len, (const char *)c->reply_text.bytes);
	}
	}
	return HERALD_OK;
}

/* publish_wait - read confirms until at most LIMIT messages are unconfirmed; a silence of
 * broker.confirm_timeout (or a block longer than broker.blocked_timeout) ends the connection */
static int publish_wait(struct herald *h, uint64_t limit)
{
	time_t last = time(NULL);

	for (;;) {
		struct timeval tv = { .tv_sec = 1 };
		amqp_frame_t f;
		uint64_t before = h->base;
		int rc;

		publish_drain(h);
		if (h->dead != HERALD_OK || (h->next_tag - h->base <= limit &&
		    (limit > 0 || h->hdue == h->ndue)))
			break;
		amqp_maybe_release_buffers(h->conn);
		rc = amqp_simple_wait_frame_noblock(h->conn, &f, &tv);
		if (rc == AMQP_STATUS_OK) {
			publish_frame(h, &f);
			if (h->base != before)
				last = time(NULL);
			publish_deliver(h);
			continue;
		}
		if (rc != AMQP_STATUS_TIMEOUT) {
			herald_fail(h, HERALD_ECONNECT, "connection to the broker lost: %s",
			    amqp_error_string2(rc));
			break;
		}
		if (h->blocked && time(NULL) - h->blocked_since >= h->conf.broker.blocked_timeout)
			herald_fail(h, HERALD_EBLOCKED, "the broker blocks publishing (resource "
			    "alarm) for %d s", h->conf.broker.blocked_timeout);
		else if (time(NULL) - last >= h->conf.broker.confirm_timeout)
			herald_fail(h, h->blocked ? HERALD_EBLOCKED : HERALD_ETIMEOUT,
			    "%llu messages unconfirmed after %d s%s",
			    (unsigned long long)(h->next_tag - h->base), h->conf.broker.confirm_timeout,
			    h->blocked ? " (the broker blocks publishing: resource alarm)" : "");
	}
	if (h->dead != HERALD_OK)
		return h->dead;     /* the caller drops: the request being published is not sealed */
	publish_deliver(h);
	return HERALD_OK;
}

/* publish_client - the client id REQ may send as over H's broker user; NULL when refused */
static const char *publish_client(const struct herald *h, const struct request *req)
{
	size_t i, j;

	for (i = 0; i < h->conf.broker.nusers; i++) {
		const struct conf_broker_user *u = &h->conf.broker.users[i];

		if (strcmp(u->name, h->user) != 0)
			continue;
		if (req->client_id == NULL)
			return u->clients.v[0];
		for (j = 0; j < u->clients.n; j++)
			if (strcmp(u->clients.v[j], req->client_id) == 0)
				return u->clients.v[j];
		return NULL;
	}
	if (req->client_id == NULL || strcmp(req->client_id, h->user) == 0)
		return h->user;
	return NULL;
}

/* publish_note - publish note IDX of P to its channel queue; its ledger record follows once the
 * broker confirmed that (a refused or unroutable message must not reach the ledger). On a
 * resend after a reconnect, copies already confirmed are skipped. */
static int publish_note(struct herald *h, struct pend *p, size_t idx)
{
	int rc;

	if (p->acked[idx] & 1) {
		if (p->acked[idx] & 2)
			return HERALD_OK;
		p->outstanding++;
		return publish_due(h, p, idx);
	}
	if ((rc = publish_wait(h, h->window - 1)) != HERALD_OK)
		return rc;
	if ((rc = publish_copy(h, p, idx, 0)) == HERALD_OK)
		p->outstanding += 2;          /* the channel copy and the ledger record to come */
	return rc;
}

/* publish_prepare - validate BUF into P and split it; HERALD_OK or HERALD_EINVAL (P->reply set) */
static int publish_prepare(struct herald *h, struct pend *p, const char *buf, size_t len)
{
	struct codec_error ce;
	const struct conf_category *cat;
	const char *client;
	size_t i;

	memset(&ce, 0, sizeof ce);
	if (codec_request_parse(buf, len, &h->lim, &p->req, &ce) < 0) {
		if (errno == ENOMEM && ce.message[0] == '\0')
			return HERALD_ENOMEM;
		goto invalid;
	}
	if ((client = publish_client(h, p->req)) == NULL) {
		snprintf(ce.field, sizeof ce.field, "client_id");
		snprintf(ce.message, sizeof ce.message, "broker user %.64s may not send as client %.64s",
		    h->user, p->req->client_id);
		goto invalid;
	}
	cat = conf_category_find(&h->conf, p->req->category);
	if (codec_request_split(p->req, cat != NULL ? cat->priority : CODEC_PRIORITY_NORMAL,
	    &p->notes, &p->n) < 0 || (p->acked = calloc(p->n + 1, 1)) == NULL ||
	    (p->body = calloc(p->n + 1, sizeof *p->body)) == NULL ||
	    (p->blen = calloc(p->n + 1, sizeof *p->blen)) == NULL)
		return HERALD_ENOMEM;
	for (i = 0; i < p->n; i++) {
		free(p->notes[i]->client_id);
		if ((p->notes[i]->client_id = strdup(client)) == NULL)
			return HERALD_ENOMEM;
	}
	return HERALD_OK;
invalid:
	p->status = HERALD_EINVAL;
	p->reply = codec_reply_error(&ce, p->line);
	return p->reply == NULL ? HERALD_ENOMEM : HERALD_EINVAL;
}

/* publish_recover - after a lost connection: connect again and resend every unconfirmed
 * message of the pending requests with its ids; HERALD_OK or the connection's error */
static int publish_recover(struct herald *h)
{
	struct pend *p, **v;
	bool *was;
	size_t n = 0, i, j;
	uint64_t t;
	int rc = HERALD_OK;

	if (h->dead != HERALD_ECONNECT || h->conn == NULL)
		return h->dead;
	for (t = h->base; t < h->next_tag; t++)
		h->slots[t % h->window].p = NULL;
	h->hdue = h->ndue = 0;
	for (p = h->head; p != NULL; p = p->next)
		n++;
	v = calloc(n + 1, sizeof *v);   /* NOLINT(bugprone-sizeof-expression): an array of pointers */
	was = calloc(n + 1, sizeof *was);
	if (v == NULL || was == NULL) {
		free(v);
		free(was);
		return h->dead;
	}
	if (herald_reconnect(h) != HERALD_OK) {
		free(v);
		free(was);
		return h->dead;
	}
	h->dead = HERALD_OK;
	/* unseal what is resent, so no callback frees it while its copies are in the air */
	for (n = 0, p = h->head; p != NULL; p = p->next) {
		p->outstanding = 0;
		if (p->reply != NULL || p->status != HERALD_OK)
			continue;
		was[n] = p->sealed;
		p->sealed = false;
		v[n++] = p;
	}
	for (i = 0; i < n; i++) {
		for (j = 0; j < v[i]->published && rc == HERALD_OK; j++)
			rc = publish_note(h, v[i], j);
		v[i]->sealed = was[i];
	}
	for (; i < n; i++)
		v[i]->sealed = was[i];
	free(v);
	free(was);
	return h->dead;
}

/* herald_submit - validate and publish one request; its callback comes in order, later */
int herald_submit(struct herald *h, const char *buf, size_t len, long line, herald_reply_cb *cb,
    void *arg)
{
	struct pend *p;
	int tries = 0;

	if (h == NULL || buf == NULL)
		return HERALD_EUSAGE;
	if ((p = calloc(1, sizeof *p)) == NULL)
		return HERALD_ENOMEM;
	p->line = line;
	p->cb = cb;
	p->arg = arg;
	if (h->tail != NULL)
		h->tail->next = p;
	else
		h->head = p;
	h->tail = p;
	switch (publish_prepare(h, p, buf, len)) {
	case HERALD_OK:
		if (h->dead != HERALD_OK)
			break;
		while (p->published < p->n) {
			if (publish_note(h, p, p->published) == HERALD_OK)
				p->published++;
			else if (++tries > 3 || publish_recover(h) != HERALD_OK)
				break;
		}
		break;
	case HERALD_EINVAL:
		break;
	default:
		p->status = HERALD_ENOMEM;
		snprintf(p->msg, sizeof p->msg, "out of memory");
		break;
	}
	p->sealed = true;
	if (h->dead != HERALD_OK) {
		publish_drop(h);
		return h->dead;
	}
	publish_deliver(h);
	return HERALD_OK;
}

/* herald_flush - wait for every submitted request's callback */
int herald_flush(struct herald *h)
{
	int tries = 0;

	if (h == NULL)
		return HERALD_EUSAGE;
	if (h->dead != HERALD_OK) {
		publish_drop(h);
		return h->dead;
	}
	while (publish_wait(h, 0) != HERALD_OK)
		if (++tries > 3 || publish_recover(h) != HERALD_OK) {
			publish_drop(h);
			break;
		}
	return h->dead;
}

struct publish_one {
	int status;
	char *reply;
};

/* publish_one_cb - keep the reply of herald_send's single request */
static void publish_one_cb(int status, const char *reply, long line, void *arg)
{
	struct publish_one *o = arg;

	(void)line;
	o->status = status;
	o->reply = strdup(reply);
}

/* herald_send - submit one request and wait for its reply */
int herald_send(struct herald *h, const char *buf, size_t len, char **reply)
{
	struct publish_one o = { HERALD_ENOMEM, NULL };

	if (h == NULL || buf == NULL || reply == NULL)
		return HERALD_EUSAGE;
	herald_submit(h, buf, len, 0, publish_one_cb, &o);
	herald_flush(h);
	*reply = o.reply;
	return o.reply == NULL ? HERALD_ENOMEM : o.status;
}
