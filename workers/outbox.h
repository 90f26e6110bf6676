/* outbox - the event outbox (SPEC §3 events) drained to the topic exchange herald.events:
 * rows written with a status change are published after commit and deleted once confirmed, so
 * a crash between commit and publish loses no event (a consumer may see one twice: the AMQP
 * message id is the row id) */
#ifndef HERALD_OUTBOX_H
#define HERALD_OUTBOX_H

#include <stddef.h>

#include "db.h"

struct conf;
struct mq;

extern const struct db_stmt outbox_stmts[];
extern const size_t outbox_nstmts;

/* outbox_drain - publish up to LIMIT of the oldest rows through MQ and delete them once the
 * broker confirmed them, one drainer at a time on a database (a named lock: while another
 * process drains, this returns 0 at once); the number published, 0 when there was nothing or
 * another drains, or -1 (logged; the rows stay for a later try) */
int outbox_drain(struct db *db, int base, struct mq *mq, size_t limit);

/* outbox_main - the outbox worker heraldd's master runs: drain the outbox every 0.2 s (the rows
 * no channel worker publishes, such as the ledger's) until SIGTERM; an EX_ exit code */
int outbox_main(const struct conf *c);

#endif
