/* outboxd - the outbox worker: publishes the event_outbox rows nobody else publishes (the
 * ledger's `queued` events, and those a channel worker left when it stopped) to herald.events */
#include "config.h"

#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <ev.h>

#include "conf.h"
#include "db.h"
#include "log.h"
#include "master.h"
#include "mq.h"
#include "outbox.h"

#define OUTBOXD_EVERY 0.2        /* seconds between drains when idle */
#define OUTBOXD_LIMIT 500        /* rows per publish round */
#define OUTBOXD_BACKOFF_MAX 30.

struct outboxd {
	const struct conf *conf;
	struct ev_loop *loop;
	struct db *db;
	struct mq *mq;
	ev_timer tick;
	ev_signal sigterm, sigint, sigusr1;
	double backoff;
	ev_tstamp next_try;
	bool noticed;
	int exit_code;
};

/* outboxd_tick_cb - reconnect when due, then drain until a round comes back short */
static void outboxd_tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct outboxd *o = t->data;
	int n;

	(void)revents;
	if (!mq_connected(o->mq)) {
		if (ev_now(loop) < o->next_try)
			return;
		if (mq_connect(o->mq) < 0) {
			o->backoff = o->backoff < 1. ? 1. : o->backoff * 2;
			if (o->backoff > OUTBOXD_BACKOFF_MAX)
				o->backoff = OUTBOXD_BACKOFF_MAX;
			o->next_try = ev_now(loop) + o->backoff;
			return;
		}
		o->backoff = 0;
	}
	do {
		n = outbox_drain(o->db, 0, o->mq, OUTBOXD_LIMIT);
	} while (n == OUTBOXD_LIMIT);
	if (n >= 0 && !o->noticed) {
		o->noticed = true;
		master_notice_ready();
	}
}

/* outboxd_signal_cb - SIGTERM/SIGINT: stop (the rows stay for the next publisher) */
static void outboxd_signal_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
	(void)revents;
	log_info("event=stopping signal=%d", s->signum);
	ev_break(loop, EVBREAK_ALL);
}

/* outboxd_usr1_cb - SIGUSR1: reopen the log file */
static void outboxd_usr1_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
	(void)loop;
	(void)s;
	(void)revents;
	log_reopen();
}

/* outbox_main - drain event_outbox every OUTBOXD_EVERY seconds until SIGTERM */
int outbox_main(const struct conf *c)
{
	struct outboxd o;
	struct db_opts dbo = { 0 };

	memset(&o, 0, sizeof o);
	o.conf = c;
	o.exit_code = EX_OK;
	dbo.connect_timeout = c->mysql.connect_timeout;
	dbo.read_timeout = c->mysql.read_timeout;
	dbo.write_timeout = c->mysql.write_timeout;
	dbo.tls = &c->mysql.tls;
	if (db_open(&o.db, &c->mysql.parsed, &dbo, outbox_stmts, outbox_nstmts) < 0) {
		log_error("event=db_unavailable target=%s err=\"%s\"", db_target(o.db), db_error(o.db));
		db_close(o.db);
		return EX_TEMPFAIL;
	}
	o.loop = ev_default_loop(EVFLAG_AUTO);
	if ((o.mq = mq_new(o.loop, c, NULL, "heraldd-outbox", NULL, NULL, &o)) == NULL) {
		db_close(o.db);
		return EX_OSERR;
	}
	ev_timer_init(&o.tick, outboxd_tick_cb, 0., OUTBOXD_EVERY);
	o.tick.data = &o;
	ev_timer_start(o.loop, &o.tick);
	ev_signal_init(&o.sigterm, outboxd_signal_cb, SIGTERM);
	ev_signal_start(o.loop, &o.sigterm);
	ev_signal_init(&o.sigint, outboxd_signal_cb, SIGINT);
	ev_signal_start(o.loop, &o.sigint);
	ev_signal_init(&o.sigusr1, outboxd_usr1_cb, SIGUSR1);
	ev_signal_start(o.loop, &o.sigusr1);
	signal(SIGPIPE, SIG_IGN);
	log_info("event=outbox_started");
	ev_run(o.loop, 0);
	mq_close(o.mq);
	db_close(o.db);
	ev_loop_destroy(o.loop);
	return o.exit_code;
}
