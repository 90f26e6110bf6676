/* topology - declare the §3 exchanges and queues, idempotently, from one description */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "conf.h"
#include "topology.h"

#define TOPOLOGY_V_STR "v1"

/* topology_channel_queue - the channel queue of channel CH (enum conf_channel_id) into BUF */
const char *topology_channel_queue(int ch, char *buf, size_t len)
{
	snprintf(buf, len, "herald.%s." TOPOLOGY_V_STR, conf_channel_name(ch));
	return buf;
}

/* topology_tier_queue - the delay queue of channel CH for a tier of SECS seconds into BUF */
const char *topology_tier_queue(int ch, int secs, char *buf, size_t len)
{
	snprintf(buf, len, "herald.%s." TOPOLOGY_V_STR ".delay.%ds", conf_channel_name(ch), secs);
	return buf;
}

/* topology_parking_queue - the parking queue of channel CH into BUF */
const char *topology_parking_queue(int ch, char *buf, size_t len)
{
	snprintf(buf, len, "herald.%s." TOPOLOGY_V_STR ".parked", conf_channel_name(ch));
	return buf;
}

/* topology_rpc_error - describe a failed rpc reply R into ERR; the AMQP reply code or 0 */
int topology_rpc_error(amqp_connection_state_t conn, amqp_channel_t chan, amqp_rpc_reply_t r,
    const char *what, char *err, size_t errlen)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		snprintf(err, errlen, "%s: ok", what);
		return 0;
	case AMQP_RESPONSE_NONE:
		snprintf(err, errlen, "%s: missing reply", what);
		return 0;
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		snprintf(err, errlen, "%s: %s", what, amqp_error_string2(r.library_error));
		return 0;
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		break;
	}
	if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
		amqp_channel_close_t *m = r.reply.decoded;
		amqp_channel_close_ok_t ok = { 0 };

		snprintf(err, errlen, "%s: %u %.*s", what, m->reply_code, (int)m->reply_text.len,
		    (const char *)m->reply_text.bytes);
		/* the broker waits for close-ok before the channel number can be reused */
		amqp_send_method(conn, chan, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
		return m->reply_code;
	}
	if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
		amqp_connection_close_t *m = r.reply.decoded;
		amqp_connection_close_ok_t ok = { 0 };

		snprintf(err, errlen, "%s: connection closed: %u %.*s", what, m->reply_code,
		    (int)m->reply_text.len, (const char *)m->reply_text.bytes);
		amqp_send_method(conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
		return m->reply_code;
	}
	snprintf(err, errlen, "%s: unexpected method 0x%08x", what, (unsigned)r.reply.id);
	return 0;
}

/* topology_exchange - declare the durable exchange NAME of TYPE */
static int topology_exchange(amqp_connection_state_t conn, amqp_channel_t chan, const char *name,
    const char *type, char *err, size_t errlen)
{
	char what[160];

	amqp_exchange_declare(conn, chan, amqp_cstring_bytes(name), amqp_cstring_bytes(type), 0, 1, 0, 0,
	    amqp_empty_table);
	amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		return 0;
	snprintf(what, sizeof what, "declare exchange %s", name);
	if (topology_rpc_error(conn, chan, r, what, err, errlen) == AMQP_PRECONDITION_FAILED) {
		size_t l = strlen(err);

		snprintf(err + l, errlen - l, " (it exists with another type or flags: a migration "
		    "is needed, see heraldctl)");
	}
	return -1;
}

/* topology_queue - declare the durable queue NAME with ARGS, bound to EXCHANGE by KEY when set */
static int topology_queue(amqp_connection_state_t conn, amqp_channel_t chan, const char *name,
    amqp_table_t args, const char *exchange, const char *key, char *err, size_t errlen)
{
	char what[160];
	amqp_rpc_reply_t r;

	amqp_queue_declare(conn, chan, amqp_cstring_bytes(name), 0, 1, 0, 0, args);
	r = amqp_get_rpc_reply(conn);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		snprintf(what, sizeof what, "declare queue %s", name);
		if (topology_rpc_error(conn, chan, r, what, err, errlen) == AMQP_PRECONDITION_FAILED) {
			size_t l = strlen(err);

			snprintf(err + l, errlen - l, " (the queue exists with other arguments, which "
			    "the broker cannot change in place: a migration to a new queue version "
			    "is needed, see heraldctl)");
		}
		return -1;
	}
	if (exchange == NULL)
		return 0;
	amqp_queue_bind(conn, chan, amqp_cstring_bytes(name), amqp_cstring_bytes(exchange),
	    amqp_cstring_bytes(key), amqp_empty_table);
	r = amqp_get_rpc_reply(conn);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		snprintf(what, sizeof what, "bind queue %s to %s by %s", name, exchange, key);
		topology_rpc_error(conn, chan, r, what, err, errlen);
		return -1;
	}
	return 0;
}

/* topology_tiers - the retry tiers of CONF (the defaults when it names none) */
size_t topology_tiers(const struct conf *conf, const int **tiers)
{
	static const int tiers_default[] = { 10, 60, 600, 3600, 21600 };

	if (conf != NULL && conf->retry.tiers.n > 0) {
		*tiers = conf->retry.tiers.v;
		return conf->retry.tiers.n;
	}
	*tiers = tiers_default;
	return sizeof tiers_default / sizeof tiers_default[0];
}

/* topology_declare_channel - the channel queue, its delay tiers and its parking queue */
static int topology_declare_channel(amqp_connection_state_t conn, amqp_channel_t chan, int ch,
    const struct conf *conf, char *err, size_t errlen)
{
	char q[TOPOLOGY_NAME_MAX], t[TOPOLOGY_NAME_MAX];
	amqp_table_entry_t e[3];
	amqp_table_t args;
	const int *tiers;
	size_t i, ntiers = topology_tiers(conf, &tiers);
	topology_channel_queue(ch, q, sizeof q);
	e[0].key = amqp_cstring_bytes("x-max-priority");
	e[0].value.kind = AMQP_FIELD_KIND_I32;
	e[0].value.value.i32 = TOPOLOGY_MAX_PRIORITY;
	args.num_entries = 1;
	args.entries = e;
	if (topology_queue(conn, chan, q, args, TOPOLOGY_EXCHANGE, conf_channel_name(ch), err,
	    errlen) < 0)
		return -1;
	for (i = 0; i < ntiers; i++) {
		topology_tier_queue(ch, tiers[i], t, sizeof t);
		e[0].key = amqp_cstring_bytes("x-message-ttl");
		e[0].value.kind = AMQP_FIELD_KIND_I32;
		e[0].value.value.i32 = tiers[i] * 1000;
		e[1].key = amqp_cstring_bytes("x-dead-letter-exchange");
		e[1].value.kind = AMQP_FIELD_KIND_UTF8;
		e[1].value.value.bytes = amqp_cstring_bytes("");
		e[2].key = amqp_cstring_bytes("x-dead-letter-routing-key");
		e[2].value.kind = AMQP_FIELD_KIND_UTF8;
		e[2].value.value.bytes = amqp_cstring_bytes(q);
		args.num_entries = 3;
		if (topology_queue(conn, chan, t, args, NULL, NULL, err, errlen) < 0)
			return -1;
	}
	topology_parking_queue(ch, t, sizeof t);
	return topology_queue(conn, chan, t, amqp_empty_table, NULL, NULL, err, errlen);
}

/* topology_declare - declare the whole topology on CHAN; 0 or -1 with ERR */
int topology_declare(amqp_connection_state_t conn, amqp_channel_t chan, const struct conf *conf,
    char *err, size_t errlen)
{
	int ch;

	if (topology_exchange(conn, chan, TOPOLOGY_EXCHANGE, "direct", err, errlen) < 0 ||
	    topology_exchange(conn, chan, TOPOLOGY_EVENTS, "topic", err, errlen) < 0)
		return -1;
	for (ch = 0; ch < CONF_CHANNELS; ch++)
		if (topology_declare_channel(conn, chan, ch, conf, err, errlen) < 0)
			return -1;
	return topology_queue(conn, chan, TOPOLOGY_LEDGER_QUEUE, amqp_empty_table, TOPOLOGY_EXCHANGE,
	    TOPOLOGY_LEDGER_KEY, err, errlen);
}
