/* mq - the consuming and the publishing broker connection of a worker, driven by libev */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <ev.h>

#include "broker.h"
#include "conf.h"
#include "log.h"
#include "mq.h"
#include "topology.h"

#define MQ_CHAN 1

struct mq {
	struct ev_loop *loop;
	const struct conf *conf;
	char queue[TOPOLOGY_NAME_MAX];
	char product[64];
	mq_deliver_cb *deliver;
	mq_idle_cb *idle;
	void *arg;
	amqp_connection_state_t in;      /* consuming */
	amqp_connection_state_t out;     /* publishing, confirm mode */
	unsigned generation;
	bool stopped;
	ev_io io;
	ev_timer beat;
	uint64_t next_tag;               /* publisher: tag of the next publish */
	uint64_t base;                   /* publisher: tag of conf[0]; every tag below is confirmed */
	unsigned char *conf_seen;        /* per tag from base: confirmed */
	size_t conf_cap;
	size_t outstanding;              /* published since base and not confirmed */
	bool nacked;                     /* a nack or a return since the last mq_confirm */
	bool blocked;
};

/* mq_envelope_free - destroy and free ENV */
void mq_envelope_free(amqp_envelope_t *env)
{
	if (env == NULL)
		return;
	amqp_destroy_envelope(env);
	free(env);
}

/* mq_header - string header NAME of ENV into BUF, or NULL */
const char *mq_header(const amqp_envelope_t *env, const char *name, char *buf, size_t len)
{
	const amqp_basic_properties_t *p = &env->message.properties;
	int i;

	if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
		return NULL;
	for (i = 0; i < p->headers.num_entries; i++) {
		const amqp_table_entry_t *e = &p->headers.entries[i];

		if (e->key.len != strlen(name) || memcmp(e->key.bytes, name, e->key.len) != 0)
			continue;
		if (e->value.kind != AMQP_FIELD_KIND_UTF8 && e->value.kind != AMQP_FIELD_KIND_BYTES)
			return NULL;
		snprintf(buf, len, "%.*s", (int)e->value.value.bytes.len,
		    (const char *)e->value.value.bytes.bytes);
		return buf;
	}
	return NULL;
}

/* mq_drop - forget both connections after a failure (the broker requeues what was unacked) */
static void mq_drop(struct mq *mq)
{
	ev_io_stop(mq->loop, &mq->io);
	if (mq->in != NULL)
		amqp_destroy_connection(mq->in);
	if (mq->out != NULL)
		amqp_destroy_connection(mq->out);
	mq->in = mq->out = NULL;
	mq->generation++;
}

/* mq_frame - act on a frame that is not a delivery: a closed channel or connection ends it */
static int mq_frame(struct mq *mq, const amqp_frame_t *f)
{
	if (f->frame_type != AMQP_FRAME_METHOD)
		return 0;
	switch (f->payload.method.id) {
	case AMQP_CHANNEL_CLOSE_METHOD: {
		amqp_channel_close_t *c = f->payload.method.decoded;

		log_warnx("event=broker_closed what=channel code=%u text=\"%.*s\"", c->reply_code,
		    (int)c->reply_text.len, (const char *)c->reply_text.bytes);
		return -1;
	}
	case AMQP_CONNECTION_CLOSE_METHOD: {
		amqp_connection_close_t *c = f->payload.method.decoded;

		log_warnx("event=broker_closed what=connection code=%u text=\"%.*s\"", c->reply_code,
		    (int)c->reply_text.len, (const char *)c->reply_text.bytes);
		return -1;
	}
	case AMQP_BASIC_CANCEL_METHOD:
		log_warnx("event=consumer_cancelled queue=%s", mq->queue);
		return -1;
	}
	return 0;
}

/* mq_read - take every delivery rabbitmq-c can give without waiting, then tell the worker */
static void mq_read(struct mq *mq)
{
	unsigned got = 0;

	while (mq->in != NULL) {
		struct timeval zero = { 0, 0 };
		amqp_envelope_t *env;
		amqp_rpc_reply_t r;
		amqp_frame_t f;

		amqp_maybe_release_buffers(mq->in);
		if ((env = calloc(1, sizeof *env)) == NULL) {
			log_error("event=oom what=envelope");
			break;
		}
		r = amqp_consume_message(mq->in, env, &zero, 0);
		if (r.reply_type == AMQP_RESPONSE_NORMAL) {
			got++;
			mq->deliver(mq, env, mq->arg);
			continue;
		}
		free(env);
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    r.library_error == AMQP_STATUS_TIMEOUT)
			break;
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
			int rc = amqp_simple_wait_frame_noblock(mq->in, &f, &zero);

			if (rc == AMQP_STATUS_TIMEOUT)
				break;
			if (rc == AMQP_STATUS_OK && mq_frame(mq, &f) == 0)
				continue;
		}
		log_warnx("event=broker_lost what=consume queue=%s err=\"%s\"", mq->queue,
		    r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION ?
		    amqp_error_string2(r.library_error) : "server exception");
		mq_drop(mq);
	}
	if (got > 0 && mq->idle != NULL)
		mq->idle(mq, mq->arg);
}

/* mq_io_cb - the consuming socket is readable */
static void mq_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	mq_read(w->data);
}

/* mq_beat_cb - call into both connections twice per heartbeat interval, so rabbitmq-c sends
 * heartbeats and notices a dead peer even when no message moves */
static void mq_beat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mq *mq = w->data;
	struct timeval zero = { 0, 0 };
	amqp_frame_t f;
	int rc;

	(void)loop;
	(void)revents;
	if (!mq->stopped)
		mq_read(mq);
	while (mq->out != NULL &&
	    (rc = amqp_simple_wait_frame_noblock(mq->out, &f, &zero)) != AMQP_STATUS_TIMEOUT) {
		if (rc != AMQP_STATUS_OK || mq_frame(mq, &f) < 0) {
			log_warnx("event=broker_lost what=publisher");
			mq_drop(mq);
		}
	}
}

/* mq_new - the state for consuming QUEUE; not connected yet */
struct mq *mq_new(struct ev_loop *loop, const struct conf *c, const char *queue,
	const char *product, mq_deliver_cb *deliver, mq_idle_cb *idle, void *arg)
{
	struct mq *mq = calloc(1, sizeof *mq);
	double beat;

	if (mq == NULL)
		return NULL;
	mq->loop = loop;
	mq->conf = c;
	snprintf(mq->queue, sizeof mq->queue, "%s", queue != NULL ? queue : "");
	snprintf(mq->product, sizeof mq->product, "%s", product);
	mq->deliver = deliver;
	mq->idle = idle;
	mq->arg = arg;
	ev_init(&mq->io, mq_io_cb);
	mq->io.data = mq;
	beat = c->broker.heartbeat > 0 ? c->broker.heartbeat / 2.0 : 5.0;
	ev_timer_init(&mq->beat, mq_beat_cb, beat, beat);
	mq->beat.data = mq;
	return mq;
}

/* mq_connect - publisher first (topology, confirms), then the consumer */
int mq_connect(struct mq *mq)
{
	const struct conf_broker *b = &mq->conf->broker;
	struct timeval tv = { .tv_sec = b->confirm_timeout };
	char err[1024];

	mq_drop(mq);
	mq->out = broker_open(b, mq->product, MQ_CHAN, NULL, err, sizeof err);
	if (mq->out == NULL) {
		log_warnx("event=broker_connect_failed err=\"%s\"", err);
		return -1;
	}
	if (topology_declare(mq->out, MQ_CHAN, mq->conf, err, sizeof err) < 0) {
		log_error("event=topology_failed err=\"%s\"", err);
		goto fail;
	}
	amqp_confirm_select(mq->out, MQ_CHAN);
	if (!broker_rpc_ok(mq->out, MQ_CHAN, "confirm.select"))
		goto fail;
	/* bound the blocking writes of rabbitmq-c 0.11 */
	setsockopt(amqp_get_sockfd(mq->out), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	mq->next_tag = 1;
	mq->base = 1;
	mq->outstanding = 0;
	mq->nacked = false;
	if (mq->queue[0] == '\0') {             /* a publisher only */
		ev_timer_again(mq->loop, &mq->beat);
		return 0;
	}
	mq->in = broker_open(b, mq->product, MQ_CHAN, NULL, err, sizeof err);
	if (mq->in == NULL) {
		log_warnx("event=broker_connect_failed err=\"%s\"", err);
		goto fail;
	}
	setsockopt(amqp_get_sockfd(mq->in), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	amqp_basic_qos(mq->in, MQ_CHAN, 0, (uint16_t)b->prefetch, 0);
	if (!broker_rpc_ok(mq->in, MQ_CHAN, "basic.qos"))
		goto fail;
	if (!mq->stopped) {
		amqp_basic_consume(mq->in, MQ_CHAN, amqp_cstring_bytes(mq->queue), amqp_empty_bytes,
		    0, 0, 0, amqp_empty_table);
		if (!broker_rpc_ok(mq->in, MQ_CHAN, "basic.consume"))
			goto fail;
	}
	ev_io_set(&mq->io, amqp_get_sockfd(mq->in), EV_READ);
	ev_io_start(mq->loop, &mq->io);
	ev_timer_again(mq->loop, &mq->beat);
	log_info("event=consuming queue=%s prefetch=%d", mq->queue, b->prefetch);
	/* deliveries may already sit in rabbitmq-c's buffer, where ev_io cannot see them */
	ev_feed_event(mq->loop, &mq->io, EV_READ);
	return 0;
fail:
	mq_drop(mq);
	return -1;
}

/* mq_connected - whether the consuming connection is up */
bool mq_connected(const struct mq *mq)
{
	return mq->queue[0] != '\0' ? mq->in != NULL : mq->out != NULL;
}

/* mq_generation - changes with each consuming connection */
unsigned mq_generation(const struct mq *mq)
{
	return mq->generation;
}

/* mq_stop - take nothing new: stop reading the consuming socket; prefetched messages stay
 * unacked and the broker requeues them when the connection closes */
void mq_stop(struct mq *mq)
{
	mq->stopped = true;
	ev_io_stop(mq->loop, &mq->io);
}

/* mq_close - close both connections politely and free MQ */
void mq_close(struct mq *mq)
{
	if (mq == NULL)
		return;
	ev_io_stop(mq->loop, &mq->io);
	ev_timer_stop(mq->loop, &mq->beat);
	if (mq->in != NULL) {
		amqp_channel_close(mq->in, MQ_CHAN, AMQP_REPLY_SUCCESS);
		amqp_connection_close(mq->in, AMQP_REPLY_SUCCESS);
	}
	if (mq->out != NULL) {
		amqp_channel_close(mq->out, MQ_CHAN, AMQP_REPLY_SUCCESS);
		amqp_connection_close(mq->out, AMQP_REPLY_SUCCESS);
	}
	mq_drop(mq);
	free(mq->conf_seen);
	free(mq);
}

/* mq_ack - ack TAG if its connection is still the current one */
int mq_ack(struct mq *mq, uint64_t tag, unsigned generation)
{
	if (mq->in == NULL || generation != mq->generation)
		return -1;
	if (amqp_basic_ack(mq->in, MQ_CHAN, tag, 0) != AMQP_STATUS_OK) {
		log_warnx("event=broker_lost what=ack");
		mq_drop(mq);
		return -1;
	}
	return 0;
}

/* mq_reject - reject TAG, requeued or not */
int mq_reject(struct mq *mq, uint64_t tag, unsigned generation, bool requeue)
{
	if (mq->in == NULL || generation != mq->generation)
		return -1;
	if (amqp_basic_reject(mq->in, MQ_CHAN, tag, requeue) != AMQP_STATUS_OK) {
		log_warnx("event=broker_lost what=reject");
		mq_drop(mq);
		return -1;
	}
	return 0;
}

/* mq_publish - publish on the confirm-mode connection; the confirm is read by mq_confirm */
int mq_publish(struct mq *mq, const char *exchange, const char *key,
	const amqp_basic_properties_t *props, const void *body, size_t len, bool mandatory)
{
	amqp_basic_properties_t p = *props;
	amqp_bytes_t b = { .len = len, .bytes = (void *)(uintptr_t)body };

	size_t idx;

	if (mq->out == NULL)
		return -1;
	idx = (size_t)(mq->next_tag - mq->base);
	if (idx >= mq->conf_cap) {
		size_t cap = mq->conf_cap ? mq->conf_cap * 2 : 256;
		unsigned char *n = realloc(mq->conf_seen, cap);

		if (n == NULL)
			return -1;
		mq->conf_seen = n;
		mq->conf_cap = cap;
	}
	mq->conf_seen[idx] = 0;
	p._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
	p.delivery_mode = 2;
	if (amqp_basic_publish(mq->out, MQ_CHAN, amqp_cstring_bytes(exchange),
	    amqp_cstring_bytes(key), mandatory, 0, &p, b) != AMQP_STATUS_OK) {
		log_warnx("event=broker_lost what=publish exchange=%s key=%s", exchange, key);
		mq_drop(mq);
		return -1;
	}
	mq->next_tag++;
	mq->outstanding++;
	return 0;
}

/* mq_confirmed - mark TAG (and, when MULTIPLE, every tag below it) confirmed */
static void mq_confirmed(struct mq *mq, uint64_t tag, bool multiple)
{
	uint64_t t = multiple ? mq->base : tag;

	for (; t <= tag && t < mq->next_tag; t++) {
		if (t < mq->base || mq->conf_seen[t - mq->base])
			continue;
		mq->conf_seen[t - mq->base] = 1;
		mq->outstanding--;
	}
}

/* mq_confirm_frame - account one frame read while waiting for confirms; -1 ends the connection */
static int mq_confirm_frame(struct mq *mq, const amqp_frame_t *f)
{
	if (f->frame_type != AMQP_FRAME_METHOD)
		return 0;
	switch (f->payload.method.id) {
	case AMQP_BASIC_ACK_METHOD:
	case AMQP_BASIC_NACK_METHOD: {
		bool nack = f->payload.method.id == AMQP_BASIC_NACK_METHOD;
		uint64_t tag = nack ? ((amqp_basic_nack_t *)f->payload.method.decoded)->delivery_tag :
		    ((amqp_basic_ack_t *)f->payload.method.decoded)->delivery_tag;
		bool multiple = nack ? ((amqp_basic_nack_t *)f->payload.method.decoded)->multiple :
		    ((amqp_basic_ack_t *)f->payload.method.decoded)->multiple;

		if (nack) {
			mq->nacked = true;
			log_warnx("event=publish_nacked tag=%llu", (unsigned long long)tag);
		}
		mq_confirmed(mq, tag, multiple);
		return 0;
	}
	case AMQP_BASIC_RETURN_METHOD: {
		amqp_basic_return_t *ret = f->payload.method.decoded;
		amqp_message_t m;

		log_warnx("event=publish_returned code=%u text=\"%.*s\" key=%.*s", ret->reply_code,
		    (int)ret->reply_text.len, (const char *)ret->reply_text.bytes,
		    (int)ret->routing_key.len, (const char *)ret->routing_key.bytes);
		mq->nacked = true;
		if (amqp_read_message(mq->out, MQ_CHAN, &m, 0).reply_type != AMQP_RESPONSE_NORMAL)
			return -1;
		amqp_destroy_message(&m);
		return 0;
	}
	case AMQP_CONNECTION_BLOCKED_METHOD:
		mq->blocked = true;
		log_warnx("event=broker_blocked");
		return 0;
	case AMQP_CONNECTION_UNBLOCKED_METHOD:
		mq->blocked = false;
		return 0;
	}
	return mq_frame(mq, f);
}

/* mq_confirm - wait for the confirms of every publish so far */
int mq_confirm(struct mq *mq)
{
	time_t start = time(NULL);
	int rc = 0;

	while (mq->out != NULL && mq->outstanding > 0) {
		struct timeval tv = { .tv_sec = 1 };
		amqp_frame_t f;
		int st;

		amqp_maybe_release_buffers(mq->out);
		st = amqp_simple_wait_frame_noblock(mq->out, &f, &tv);
		if (st == AMQP_STATUS_OK) {
			if (mq_confirm_frame(mq, &f) < 0)
				goto lost;
			continue;
		}
		if (st != AMQP_STATUS_TIMEOUT)
			goto lost;
		if (time(NULL) - start >= mq->conf->broker.confirm_timeout) {
			log_warnx("event=publish_unconfirmed pending=%llu after_s=%d%s",
			    (unsigned long long)mq->outstanding,
			    mq->conf->broker.confirm_timeout, mq->blocked ? " blocked=1" : "");
			goto lost;
		}
	}
	if (mq->out == NULL)
		return -1;
	mq->base = mq->next_tag;
	if (mq->nacked)
		rc = -1;
	mq->nacked = false;
	return rc;
lost:
	log_warnx("event=broker_lost what=confirm");
	mq_drop(mq);
	return -1;
}
