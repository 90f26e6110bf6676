/* scheduler - requeues deferred notifications when they are due (SPEC §4 step 5, §3)
 *
 * Every scheduler.interval seconds one round, in one database transaction at READ COMMITTED:
 * take up to SCHEDULER_BATCH due rows (status deferred, deferred_until <= now) with
 * SELECT ... FOR UPDATE SKIP LOCKED, so schedulers on several hosts never take one row twice;
 * end the expired ones `expired` and those whose transaction or batch is cancelled `cancelled`
 * (slots given back, never published); record `deferred → queued` for the others (status,
 * audit row, event); delete their stored messages; publish each stored body to the exchange
 * herald with its channel as routing key (persistent, mandatory, priority and headers as the
 * producer set them); wait for the broker's confirms; commit. Any failure rolls all of it back
 * (logged) and the round is run again after a growing delay.
 *
 * Why the commit comes last: the message must be in the queue before the row says `queued`,
 * or a crash in between would leave a notification queued with no message. The other order's
 * hazard is the one kept: a commit that fails after the broker confirmed leaves a message in
 * the queue whose row is still `deferred`. That copy is harmless: the row lock this round held
 * makes a worker that meets it wait for the commit or rollback, and then the transition table
 * refuses `deferred → ready`, so the worker acks it and sends nothing; the row is still due,
 * and the next round requeues it again. Nothing is lost and that copy sends nothing. Should
 * the copy still wait in the queue after the next round committed, it is one more copy of a
 * queued message, which the transition table treats like any redelivery: nothing is sent once
 * the first copy is final; while the first is in flight, at most one duplicate, with the same
 * identity (§11: one per fault).
 *
 * Expired rows are found at their expiry: admit defers no later than expires_at. Rows cancelled
 * before they are due are not looked for here (heraldctl cancel ends deferred rows itself).
 */
#ifndef HERALD_SCHEDULER_H
#define HERALD_SCHEDULER_H

struct conf;

#define SCHEDULER_BATCH 100          /* rows per round: their locks are held until the broker
                                        confirmed them all; a full round is followed at once by
                                        the next */

/* scheduler_main - the scheduler heraldd's master runs: a round every scheduler.interval
 * seconds until SIGTERM/SIGINT (SIGUSR1 reopens the log); an EX_ exit code */
int scheduler_main(const struct conf *c);

#endif
