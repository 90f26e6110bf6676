/* ledger - the ledger worker (SPEC §3): record `queued` for every accepted message, in batches
 *
 * It consumes herald.ledger.v1 (one record per accepted message, published by the producer
 * only), collects up to ledger.batch records or ledger.flush_ms since the first one, and writes
 * them in one database transaction: a `queued` notification row only where no status exists yet
 * (a worker may have been first), its first audit row and its `queued` event in event_outbox
 * for exactly the rows the batch inserted. Then it acks the batch with one multiple-ack. Every
 * statement is idempotent, so a redelivered batch adds nothing.
 *
 * A record whose body does not decode is never dropped silently: when its x-herald-channel
 * header names a channel it goes (with publisher confirms, on a short-lived connection of its
 * own) to that channel's parking queue with the headers x-herald-source=ledger and
 * x-herald-parked-reason, and is acked only after the broker confirmed it; otherwise it is
 * logged at error level (message id, reason) and rejected without requeue. The channel worker
 * parks and fails its own copy of the same body; the ledger copy is parked for the inspection
 * trail only. A record the database refuses as data (too long, bad value) is parked alike.
 */
#ifndef HERALD_LEDGER_H
#define HERALD_LEDGER_H

struct conf;

/* ledger_main - consume and record until ledger_signal_cb ran; flushes the current batch, acks
 * it and returns EX_OK; EX_TEMPFAIL when the database stayed down through the grace
 * (heraldd.grace) after the stop request (the unacked records are redelivered) */
int ledger_main(const struct conf *c);

/* ledger_signal_cb - the signal handler of ledger mode: SIGTERM/SIGINT ask ledger_main to flush
 * and stop, SIGUSR1 to reopen the log file (async-signal-safe: sets a flag) */
void ledger_signal_cb(int sig);
/* ledger_signals - install ledger_signal_cb for SIGTERM, SIGINT and SIGUSR1 (no SA_RESTART) */
void ledger_signals(void);

#endif
