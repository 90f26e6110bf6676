/* mq - a worker's two broker connections on a libev loop: one consuming its queue with manual
 * acks and a bounded prefetch, one publishing with confirms (parking, events)
 *
 * rabbitmq-c 0.11 blocks on writes and while it reads a message body, so the publisher has a
 * connection of its own and every wait is bounded (STYLE.md). Heartbeats are sent only from
 * inside library calls: a timer calls in at half the heartbeat interval on both connections.
 */
#ifndef HERALD_MQ_H
#define HERALD_MQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <amqp.h>

struct conf;
struct ev_loop;
struct mq;

/* mq_deliver_cb - a message arrived; ENV is heap-allocated and now the callee's (free it with
 * mq_envelope_free once acked or rejected) */
typedef void mq_deliver_cb(struct mq *mq, amqp_envelope_t *env, void *arg);
/* mq_idle_cb - the messages the broker had sent so far were all delivered (a batch ended) */
typedef void mq_idle_cb(struct mq *mq, void *arg);

/* mq_new - consume QUEUE (prefetch from C) on LOOP; connects with mq_connect; NULL on ENOMEM.
 * QUEUE NULL: a publisher only (no consuming connection; DELIVER and IDLE unused) */
struct mq *mq_new(struct ev_loop *loop, const struct conf *c, const char *queue,
	const char *product, mq_deliver_cb *deliver, mq_idle_cb *idle, void *arg);
/* mq_connect - open both connections, declare the topology, start consuming; 0, or -1 (logged;
 * the caller retries later with backoff) */
int mq_connect(struct mq *mq);
/* mq_connected - whether the consuming connection (a publisher only: the publishing one) is up */
bool mq_connected(const struct mq *mq);
/* mq_stop - cancel the consumer: nothing new arrives; prefetched messages stay unacked and go
 * back to the queue when the connection closes */
void mq_stop(struct mq *mq);
/* mq_close - close both connections and free MQ (NULL is fine) */
void mq_close(struct mq *mq);

/* mq_ack - ack delivery TAG of the current consuming connection; -1 when it was lost (the broker
 * redelivers: the worker recognises what it already handled) */
int mq_ack(struct mq *mq, uint64_t tag, unsigned generation);
/* mq_reject - reject TAG and requeue it (REQUEUE) or not */
int mq_reject(struct mq *mq, uint64_t tag, unsigned generation, bool requeue);
/* mq_generation - a number that changes with each new consuming connection: a tag is only
 * valid on the connection that delivered it */
unsigned mq_generation(const struct mq *mq);

/* mq_publish - publish BODY to EXCHANGE with KEY and PROPS (persistent is forced); MANDATORY
 * asks for a return when unroutable; 0 or -1. Confirms are collected by mq_confirm. */
int mq_publish(struct mq *mq, const char *exchange, const char *key,
	const amqp_basic_properties_t *props, const void *body, size_t len, bool mandatory);
/* mq_confirm - wait (bounded by broker.confirm_timeout) until the broker confirmed every
 * publish since the last call; 0 when all were acked and none returned, else -1 (logged) */
int mq_confirm(struct mq *mq);

/* mq_envelope_free - destroy and free an envelope handed to mq_deliver_cb */
void mq_envelope_free(amqp_envelope_t *env);
/* mq_header - the string header NAME of ENV's properties into BUF (LEN bytes); NULL if absent */
const char *mq_header(const amqp_envelope_t *env, const char *name, char *buf, size_t len);

#endif
