/* topology - the §3 broker topology, described once for libherald and heraldd */
#ifndef HERALD_TOPOLOGY_H
#define HERALD_TOPOLOGY_H

#include <stddef.h>

#include <amqp.h>

struct conf;

/*
 * Names (V = TOPOLOGY_VERSION, CH = email|sms|push|webhook):
 *   herald               durable direct exchange; routing key CH -> herald.CH.vV, "ledger" -> ledger
 *   herald.CH.vV         durable classic queue, x-max-priority 9 (the version changes whenever an
 *                        argument the broker cannot change in place does)
 *   herald.CH.vV.delay.Ns  one per retry tier: x-message-ttl N s, dead-lettered through the default
 *                        exchange back to herald.CH.vV; the TTL is in the name, so a new tier set
 *                        only adds queues (old ones drain into the channel queue by themselves)
 *   herald.CH.vV.parked  the channel's parking queue
 *   herald.ledger.vV     the ledger: the producer publishes one record per accepted message here,
 *                        nothing else does (retries, replays and the scheduler publish to the
 *                        channel or delay queues only), so each accepted message arrives once
 *   herald.events        durable topic exchange, routing key CH.STATUS
 */
#define TOPOLOGY_VERSION 1
#define TOPOLOGY_EXCHANGE "herald"
#define TOPOLOGY_EVENTS "herald.events"
#define TOPOLOGY_LEDGER_KEY "ledger"
#define TOPOLOGY_LEDGER_QUEUE "herald.ledger.v1"
#define TOPOLOGY_MAX_PRIORITY 9
#define TOPOLOGY_NAME_MAX 96

/* topology_channel_queue - the channel queue of channel CH (enum conf_channel_id) into BUF */
const char *topology_channel_queue(int ch, char *buf, size_t len);
/* topology_tier_queue - the delay queue of channel CH for a tier of SECS seconds into BUF */
const char *topology_tier_queue(int ch, int secs, char *buf, size_t len);
/* topology_parking_queue - the parking queue of channel CH into BUF */
const char *topology_parking_queue(int ch, char *buf, size_t len);

/* topology_tiers - the retry tiers (seconds, increasing) of CONF into *TIERS: retry.tiers, or
 * the defaults 10 s, 1 min, 10 min, 1 h, 6 h; their number */
size_t topology_tiers(const struct conf *conf, const int **tiers);

/* topology_declare - declare everything above (tiers from CONF's retry.tiers) on channel CHAN of
 * CONN, idempotently; 0, or -1 with ERR saying what failed on what. A queue that exists with
 * other arguments (406) closes the channel: the message names the migration, and the caller
 * must open CHAN again. */
int topology_declare(amqp_connection_state_t conn, amqp_channel_t chan, const struct conf *conf,
	char *err, size_t errlen);

/* topology_rpc_error - describe a failed rpc reply R of CONN (closing a closed channel CHAN
 * properly) into ERR with the prefix WHAT; returns the AMQP reply code, or 0 for library or
 * socket errors */
int topology_rpc_error(amqp_connection_state_t conn, amqp_channel_t chan, amqp_rpc_reply_t r,
	const char *what, char *err, size_t errlen);

#endif
