/* qpeek - test helper: take every message off a queue (basic.get + ack) and print one line each:
 * priority, delivery mode, content type, message id, user id, headers and the body.
 * "qpeek URL QUEUE --bind EXCHANGE KEY" instead declares QUEUE (durable) bound to EXCHANGE with
 * KEY (to collect what a test publishes to herald.events) and exits. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include "url.h"

/* qpeek_field - print the header value V */
static void qpeek_field(const amqp_field_value_t *v)
{
	switch (v->kind) {
	case AMQP_FIELD_KIND_UTF8:
	case AMQP_FIELD_KIND_BYTES:
		printf("%.*s", (int)v->value.bytes.len, (const char *)v->value.bytes.bytes);
		break;
	case AMQP_FIELD_KIND_I32: printf("%" PRId32, v->value.i32); break;
	case AMQP_FIELD_KIND_I64: printf("%" PRId64, v->value.i64); break;
	default: printf("?kind%d", v->kind); break;
	}
}

/* qpeek_bytes - print B with a prefix, or "-" when the flag F is off */
static void qpeek_bytes(const char *k, amqp_flags_t flags, amqp_flags_t f, amqp_bytes_t b)
{
	if (flags & f)
		printf("%s=%.*s\t", k, (int)b.len, (const char *)b.bytes);
	else
		printf("%s=-\t", k);
}

int main(int argc, char **argv)
{
	amqp_connection_state_t c;
	amqp_socket_t *s;
	struct url u;
	char err[256];
	long n = 0;

	if ((argc != 3 && !(argc == 6 && strcmp(argv[3], "--bind") == 0)) ||
	    url_parse(argv[1], &u, err, sizeof err) < 0) {
		fprintf(stderr, "usage: qpeek AMQP_URL QUEUE [--bind EXCHANGE KEY]\n");
		return 2;
	}
	c = amqp_new_connection();
	s = amqp_tcp_socket_new(c);
	if (amqp_socket_open(s, u.host, u.port) != AMQP_STATUS_OK ||
	    amqp_login(c, u.path, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, u.user, u.password)
	    .reply_type != AMQP_RESPONSE_NORMAL) {
		fprintf(stderr, "qpeek: cannot connect\n");
		amqp_destroy_connection(c);
		return 3;
	}
	amqp_channel_open(c, 1);
	if (argc == 6) {
		/* the exchange as the topology declares it (a durable topic exchange), so a test can
		 * bind before any herald process has run */
		int rc = 0;

		amqp_exchange_declare(c, 1, amqp_cstring_bytes(argv[4]), amqp_cstring_bytes("topic"),
		    0, 1, 0, 0, amqp_empty_table);
		if (amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL)
			amqp_queue_declare(c, 1, amqp_cstring_bytes(argv[2]), 0, 1, 0, 0, amqp_empty_table);
		if (amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL)
			amqp_queue_bind(c, 1, amqp_cstring_bytes(argv[2]), amqp_cstring_bytes(argv[4]),
			    amqp_cstring_bytes(argv[5]), amqp_empty_table);
		if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) {
			fprintf(stderr, "qpeek: cannot bind %s to %s\n", argv[2], argv[4]);
			rc = 1;
		} else {
			amqp_connection_close(c, AMQP_REPLY_SUCCESS);
		}
		amqp_destroy_connection(c);
		return rc;
	}
	for (;;) {
		amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(argv[2]), 0);
		amqp_basic_get_ok_t *ok;
		amqp_message_t m;
		amqp_basic_properties_t *p;
		int i;

		if (r.reply_type != AMQP_RESPONSE_NORMAL) {
			fprintf(stderr, "qpeek: basic.get on %s failed\n", argv[2]);
			amqp_destroy_connection(c);
			return 1;
		}
		if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
			break;
		ok = r.reply.decoded;
		if (amqp_read_message(c, 1, &m, 0).reply_type != AMQP_RESPONSE_NORMAL) {
			amqp_destroy_connection(c);
			return 1;
		}
		p = &m.properties;
		printf("prio=%d\tmode=%d\t", (p->_flags & AMQP_BASIC_PRIORITY_FLAG) ? p->priority : -1,
		    (p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG) ? p->delivery_mode : -1);
		qpeek_bytes("ct", p->_flags, AMQP_BASIC_CONTENT_TYPE_FLAG, p->content_type);
		qpeek_bytes("id", p->_flags, AMQP_BASIC_MESSAGE_ID_FLAG, p->message_id);
		qpeek_bytes("user", p->_flags, AMQP_BASIC_USER_ID_FLAG, p->user_id);
		if (p->_flags & AMQP_BASIC_HEADERS_FLAG)
			for (i = 0; i < p->headers.num_entries; i++) {
				printf("%.*s=", (int)p->headers.entries[i].key.len,
				    (const char *)p->headers.entries[i].key.bytes);
				qpeek_field(&p->headers.entries[i].value);
				printf("\t");
			}
		printf("body=%.*s\n", (int)m.body.len, (const char *)m.body.bytes);
		amqp_destroy_message(&m);
		amqp_basic_ack(c, 1, ok->delivery_tag, 0);
		amqp_maybe_release_buffers(c);
		n++;
	}
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
	fprintf(stderr, "qpeek: %ld messages from %s\n", n, argv[2]);
	return 0;
}
