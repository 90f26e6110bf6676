/* broker - open a broker connection: TCP or TLS with the certificate checks, login, channel */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>

#include "broker.h"
#include "conf.h"
#include "log.h"
#include "topology.h"

/* broker_socket - a TCP or TLS socket on CONN for B's URL, with the certificate checks */
static amqp_socket_t *broker_socket(amqp_connection_state_t conn, const struct conf_broker *b,
	char *err, size_t errlen)
{
	const char *ca = b->tls.ca_file;
	amqp_socket_t *s;

	if (!b->parsed.tls) {
		if ((s = amqp_tcp_socket_new(conn)) == NULL)
			snprintf(err, errlen, "cannot create a TCP socket");
		return s;
	}
	if ((s = amqp_ssl_socket_new(conn)) == NULL) {
		snprintf(err, errlen, "cannot create a TLS socket");
		return NULL;
	}
	amqp_ssl_socket_set_verify_peer(s, b->tls.verify);
	amqp_ssl_socket_set_verify_hostname(s, b->tls.verify);
	if (ca == NULL && b->tls.verify && (ca = conf_system_ca()) == NULL) {
		snprintf(err, errlen, "amqps: no CA to verify the broker with: set broker.tls.ca_file");
		return NULL;
	}
	if (ca != NULL && amqp_ssl_socket_set_cacert(s, ca) != AMQP_STATUS_OK) {
		snprintf(err, errlen, "%s %s: cannot load",
		    b->tls.ca_file != NULL ? "broker.tls.ca_file" : "system CA bundle", ca);
		return NULL;
	}
	if (b->tls.cert_file != NULL && b->tls.key_file != NULL &&
	    amqp_ssl_socket_set_key(s, b->tls.cert_file, b->tls.key_file) != AMQP_STATUS_OK) {
		snprintf(err, errlen, "broker.tls.cert_file %s / key_file %s: cannot load",
		    b->tls.cert_file, b->tls.key_file);
		return NULL;
	}
	return s;
}

/* broker_open_error - ERR for a failed socket open (status RC), the TLS failures in words */
static void broker_open_error(const struct conf_broker *b, int rc, char *err, size_t errlen)
{
	const struct url *u = &b->parsed;
	const char *ca = b->tls.ca_file != NULL ? b->tls.ca_file : conf_system_ca();

	switch (rc) {
	case AMQP_STATUS_SSL_PEER_VERIFY_FAILED:
		snprintf(err, errlen, "TLS to %s:%d: the broker's certificate is not trusted "
		    "(verified with %s %s)", u->host, u->port,
		    b->tls.ca_file != NULL ? "broker.tls.ca_file" : "the system CAs", ca != NULL ? ca : "");
		break;
	case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED:
		snprintf(err, errlen, "TLS to %s:%d: the broker's certificate is not valid for "
		    "the name %s (rabbitmq-c checks DNS names only: use a host name the certificate carries)",
		    u->host, u->port, u->host);
		break;
	case AMQP_STATUS_SSL_CONNECTION_FAILED:
	case AMQP_STATUS_SSL_ERROR:
		snprintf(err, errlen, "TLS to %s:%d: handshake failed (%s); is it a TLS port?",
		    u->host, u->port, amqp_error_string2(rc));
		break;
	default:
		snprintf(err, errlen, "connect to %s:%d: %s", u->host, u->port, amqp_error_string2(rc));
	}
}

/* broker_user - the broker user of B: the URL's, else "guest" */
const char *broker_user(const struct conf_broker *b)
{
	return b->parsed.user[0] != '\0' ? b->parsed.user : "guest";
}

/* broker_open - socket, login with properties, channel CHAN; the connection or NULL with ERR */
amqp_connection_state_t broker_open(const struct conf_broker *b, const char *product,
	amqp_channel_t chan, int *config, char *err, size_t errlen)
{
	const struct url *u = &b->parsed;
	struct timeval tv = { .tv_sec = b->connect_timeout };
	amqp_table_entry_t cap, props[2];
	amqp_connection_state_t conn;
	amqp_table_t client;
	amqp_socket_t *s;
	amqp_rpc_reply_t r;
	int rc, dummy;

	if (config == NULL)
		config = &dummy;
	*config = 0;
	if ((conn = amqp_new_connection()) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if ((s = broker_socket(conn, b, err, errlen)) == NULL) {
		*config = 1;
		goto fail;
	}
	if ((rc = amqp_socket_open_noblock(s, u->host, u->port, &tv)) != AMQP_STATUS_OK) {
		broker_open_error(b, rc, err, errlen);
		goto fail;
	}
	amqp_set_rpc_timeout(conn, &tv);
	/* ask for connection.blocked, which rabbitmq-c 0.11 does not announce by itself */
	cap.key = amqp_cstring_bytes("connection.blocked");
	cap.value.kind = AMQP_FIELD_KIND_BOOLEAN;
	cap.value.value.boolean = 1;
	props[0].key = amqp_cstring_bytes("capabilities");
	props[0].value.kind = AMQP_FIELD_KIND_TABLE;
	props[0].value.value.table.num_entries = 1;
	props[0].value.value.table.entries = &cap;
	props[1].key = amqp_cstring_bytes("product");
	props[1].value.kind = AMQP_FIELD_KIND_UTF8;
	props[1].value.value.bytes = amqp_cstring_bytes(product);
	client.num_entries = 2;
	client.entries = props;
	r = amqp_login_with_properties(conn, u->path, 0, 131072, b->heartbeat, &client,
	    AMQP_SASL_METHOD_PLAIN, broker_user(b), u->password);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		char what[URL_PART_MAX * 3 + 64];

		snprintf(what, sizeof what, "log in to %s:%d vhost %s as %s", u->host, u->port, u->path,
		    broker_user(b));
		topology_rpc_error(conn, 0, r, what, err, errlen);
		goto fail;
	}
	amqp_channel_open(conn, chan);
	r = amqp_get_rpc_reply(conn);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		topology_rpc_error(conn, chan, r, "open channel", err, errlen);
		goto fail;
	}
	return conn;
fail:
	amqp_destroy_connection(conn);
	return NULL;
}

/* broker_rpc_ok - the last rpc's reply; a failure logged with what it was for */
bool broker_rpc_ok(amqp_connection_state_t conn, amqp_channel_t chan, const char *what)
{
	amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
	char err[512];

	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		return true;
	topology_rpc_error(conn, chan, r, what, err, sizeof err);
	log_warnx("event=broker_error what=\"%s\" err=\"%s\"", what, err);
	return false;
}

/* broker_close - channel.close, connection.close, destroy */
void broker_close(amqp_connection_state_t *conn, amqp_channel_t chan)
{
	if (*conn == NULL)
		return;
	amqp_channel_close(*conn, chan, AMQP_REPLY_SUCCESS);
	amqp_connection_close(*conn, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(*conn);
	*conn = NULL;
}

/* broker_confirm_one - read frames until the ack (or nack, return, close) within the deadline */
int broker_confirm_one(amqp_connection_state_t conn, int timeout, char *why, size_t whylen)
{
	struct timespec now;
	int64_t end, left;
	bool returned = false;

	clock_gettime(CLOCK_MONOTONIC, &now);
	end = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 + (int64_t)(timeout > 0 ? timeout : 10) * 1000;
	for (;;) {
		struct timeval tv;
		amqp_frame_t f;
		int rc;

		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((left = end - ((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000)) <= 0) {
			snprintf(why, whylen, "no confirm within %d s", timeout > 0 ? timeout : 10);
			return -1;
		}
		tv.tv_sec = left / 1000;
		tv.tv_usec = (left % 1000) * 1000;
		if ((rc = amqp_simple_wait_frame_noblock(conn, &f, &tv)) == AMQP_STATUS_TIMEOUT)
			continue;
		if (rc != AMQP_STATUS_OK) {
			snprintf(why, whylen, "no confirm from the broker: %s", amqp_error_string2(rc));
			return -1;
		}
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;       /* the content of a returned message */
		switch (f.payload.method.id) {
		case AMQP_BASIC_RETURN_METHOD:
			returned = true;
			continue;
		case AMQP_BASIC_ACK_METHOD:
			if (!returned)
				return 0;
			snprintf(why, whylen, "unroutable (returned by the broker)");
			return -1;
		case AMQP_BASIC_NACK_METHOD:
			snprintf(why, whylen, "refused by the broker (nack)");
			return -1;
		case AMQP_CHANNEL_CLOSE_METHOD:
		case AMQP_CONNECTION_CLOSE_METHOD:
			snprintf(why, whylen, "the broker closed the channel");
			return -1;
		default:
			continue;
		}
	}
}
