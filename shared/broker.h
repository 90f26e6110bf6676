/* broker - one way to open a broker connection: TCP or TLS, bounded waits, login, channel */
#ifndef HERALD_BROKER_H
#define HERALD_BROKER_H

#include <stdbool.h>
#include <stddef.h>

#include <amqp.h>

struct conf_broker;

/* broker_open - connect to broker B (its parsed URL, TLS settings, connect_timeout,
 * heartbeat), log in announcing PRODUCT and the connection.blocked capability, open channel
 * CHAN; the connection, or NULL with ERR saying what failed on what (TLS failures in words).
 * The rpc timeout stays at connect_timeout. *CONFIG (may be NULL) is set to 1 when the
 * failure is the configuration's (a CA or key file that cannot be loaded), else 0. */
amqp_connection_state_t broker_open(const struct conf_broker *b, const char *product,
	amqp_channel_t chan, int *config, char *err, size_t errlen);

/* broker_rpc_ok - whether the last rpc on channel CHAN of CONN succeeded; when not, logs a
 * warning naming WHAT and the broker's reason (closing a closed channel properly) */
bool broker_rpc_ok(amqp_connection_state_t conn, amqp_channel_t chan, const char *what);

/* broker_close - close channel CHAN and the connection *CONN politely (the broker requeues what
 * was not acked), free it and set *CONN to NULL; nothing when *CONN is NULL */
void broker_close(amqp_connection_state_t *conn, amqp_channel_t chan);

/* broker_confirm_one - on CONN (in confirm mode, one message just published with mandatory set)
 * wait up to TIMEOUT seconds for the broker's answer: 0 when it acked the message and did not
 * return it; -1 with WHY (no answer, returned as unroutable, nacked, channel closed) */
int broker_confirm_one(amqp_connection_state_t conn, int timeout, char *why, size_t whylen);

/* broker_user - the broker user of B (the URL's, else "guest"): the AMQP user_id property */
const char *broker_user(const struct conf_broker *b);

#endif
