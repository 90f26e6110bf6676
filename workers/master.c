/* master - heraldd's master process (see master.h) */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <ev.h>
#include <json-c/json.h>

#include "autoscale.h"
#include "broker.h"
#include "conf.h"
#include "control.h"
#include "hostpause.h"
#include "ledger.h"
#include "log.h"
#include "master.h"
#include "metrics.h"
#include "outbox.h"
#include "privs.h"
#include "prov.h"
#include "rfc3339.h"
#include "scheduler.h"
#include "topology.h"
#include "worker.h"

/* The kinds of children: the four channels (enum conf_channel_id), then these. */
enum { KIND_LEDGER = CONF_CHANNELS, KIND_OUTBOX, KIND_SCHEDULER, KIND_METRICS, KINDS };

#define MASTER_TICK 0.5          /* seconds between reconciliations */
#define MASTER_KILL_AFTER 5      /* seconds past heraldd.grace before SIGKILL */
#define MASTER_LOUD_AFTER 3      /* early deaths in a row that make a crash loop */

enum { CH_OFF, CH_RUNNING, CH_NO_PROVIDER };
static const char *const master_state_names[] = { "off", "running", "no_provider" };

struct child {
	struct child *next;
	struct master *m;
	pid_t pid;
	int kind;
	unsigned gen;
	bool draining;                  /* told to stop (SIGTERM sent) */
	bool acked;                     /* it told us about its first ack */
	ev_tstamp started;
	int fd;                         /* the read end of its notice pipe, -1 once closed */
	ev_io io;
};

struct master {
	struct ev_loop *loop;
	const char *path;               /* the config file, read again on SIGHUP */
	struct conf *conf;
	pid_t pid;
	unsigned gen;
	struct child *children;
	int want[KINDS];
	int state[CONF_CHANNELS];
	char reason[CONF_CHANNELS][256];
	int fails[KINDS];               /* early deaths in a row */
	struct autoscale scale[CONF_CHANNELS];
	bool blind[CONF_CHANNELS];      /* autoscale found no fresh depth (logged once) */
	ev_tstamp planned;              /* when master_plan last ran */
	ev_tstamp next_spawn[KINDS];
	bool stopping;
	struct control *ctl;
	ev_timer tick, kill, autoscale;
	ev_child cw;
	ev_signal sterm, sint, shup, susr1;
};

/* The write end of the notice pipe in a child; -1 in the master and outside heraldd's master. */
static int master_notice_fd = -1;

/* master_notice_ready - one byte to the master, once */
void master_notice_ready(void)
{
	if (master_notice_fd < 0)
		return;
	while (write(master_notice_fd, "A", 1) < 0 && errno == EINTR)
		;
	close(master_notice_fd);
	master_notice_fd = -1;
}

/* master_kind_name - "email" .. "webhook", "ledger", "outbox" */
static const char *master_kind_name(int kind)
{
	if (kind == KIND_LEDGER)
		return "ledger";
	if (kind == KIND_OUTBOX)
		return "outbox";
	if (kind == KIND_SCHEDULER)
		return "scheduler";
	if (kind == KIND_METRICS)
		return "metrics";
	return conf_channel_name(kind);
}

/* master_autoscaled - whether channel CH moves between workers_min and workers_max */
static bool master_autoscaled(const struct master *m, int ch)
{
	return m->conf->channels[ch].workers_max > 0;
}

/* master_plan - the wanted number of children of each kind under the current config; a channel
 * whose providers cannot be set up is reported and gets none (its messages wait) */
static void master_plan(struct master *m)
{
	bool depths = false;
	int ch;

	for (ch = 0; ch < CONF_CHANNELS; ch++) {
		struct prov *p = NULL;
		size_t n = 0;
		char err[256] = "";

		m->reason[ch][0] = '\0';
		if (m->conf->channels[ch].workers == 0) {
			m->state[ch] = CH_OFF;
			m->want[ch] = 0;
			continue;
		}
		if (prov_open(m->conf, ch, &p, &n, err, sizeof err) < 0 || n == 0) {
			snprintf(m->reason[ch], sizeof m->reason[ch], "%s",
			    err[0] != '\0' ? err : "no provider configured");
			log_error("event=channel_not_started channel=%s reason=\"%s\" note=\"no usable "
			    "provider: its messages wait in herald.%s.v%d\"", conf_channel_name(ch),
			    m->reason[ch], conf_channel_name(ch), TOPOLOGY_VERSION);
			m->state[ch] = CH_NO_PROVIDER;
			m->want[ch] = 0;
		} else {
			m->state[ch] = CH_RUNNING;
			m->want[ch] = m->conf->channels[ch].workers;
		}
		prov_close(p, n);
		/* autoscale starts from `workers`, free to change at its first decisions */
		autoscale_reset(&m->scale[ch], -1);
		m->blind[ch] = false;
		if (master_autoscaled(m, ch))
			depths = true;
	}
	m->planned = ev_now(m->loop);
	m->want[KIND_LEDGER] = 1;
	m->want[KIND_OUTBOX] = 1;
	m->want[KIND_SCHEDULER] = 1;
	/* the metrics child serves metrics.listen and reads the depths autoscale needs */
	m->want[KIND_METRICS] = depths ||
	    (m->conf->metrics.listen != NULL && m->conf->metrics.listen[0] != '\0');
}

/* master_declare - declare the topology once at start and after a reload; a failure is logged
 * (the workers declare it again whenever they connect) */
static void master_declare(struct master *m)
{
	amqp_connection_state_t conn;
	char err[1024];

	if ((conn = broker_open(&m->conf->broker, "heraldd", 1, NULL, err, sizeof err)) == NULL) {
		log_warnx("event=topology_not_declared err=\"%s\" note=\"the workers declare it when "
		    "they connect\"", err);
		return;
	}
	if (topology_declare(conn, 1, m->conf, err, sizeof err) < 0)
		log_error("event=topology_failed err=\"%s\"", err);
	else
		amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(conn);
}

/* master_in_child - in a freshly forked child: let go of everything that is the master's */
static void master_in_child(struct master *m, int notice_fd)
{
	struct child *c;

	/* a child must not outlive the master: SIGTERM (a drain) when it goes */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != m->pid)
		raise(SIGTERM);
	for (c = m->children; c != NULL; c = c->next) {
		if (c->fd >= 0) {
			ev_io_stop(m->loop, &c->io);
			close(c->fd);
		}
	}
	control_close(m->ctl, 0);
	m->ctl = NULL;
	ev_timer_stop(m->loop, &m->tick);
	ev_timer_stop(m->loop, &m->kill);
	ev_timer_stop(m->loop, &m->autoscale);
	ev_child_stop(m->loop, &m->cw);
	ev_signal_stop(m->loop, &m->sterm);
	ev_signal_stop(m->loop, &m->sint);
	ev_signal_stop(m->loop, &m->shup);
	ev_signal_stop(m->loop, &m->susr1);
	ev_loop_destroy(m->loop);       /* the child makes its own default loop */
	signal(SIGHUP, SIG_IGN);        /* reloads are the master's business */
	master_notice_fd = notice_fd;
}

/* master_child_run - the child's life: run KIND with the master's config, then exit */
static void master_child_run(struct master *m, int kind)
{
	int rc;

	if (kind == KIND_LEDGER) {
		ledger_signals();
		rc = ledger_main(m->conf);
	} else if (kind == KIND_OUTBOX) {
		rc = outbox_main(m->conf);
	} else if (kind == KIND_SCHEDULER) {
		rc = scheduler_main(m->conf);
	} else if (kind == KIND_METRICS) {
		rc = metricsd_main(m->conf);
	} else {
		rc = worker_main(m->conf, kind);
	}
	exit(rc);
}

/* master_notice_cb - a child's notice pipe: its first ack, or EOF */
static void master_notice_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct child *c = w->data;
	char b[16];
	ssize_t n = read(c->fd, b, sizeof b);

	(void)revents;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0 && !c->acked) {
		c->acked = true;
		if (c->gen == c->m->gen)
			c->m->fails[c->kind] = 0;
		log_debug("event=child_ready kind=%s pid=%ld", master_kind_name(c->kind), (long)c->pid);
	}
	ev_io_stop(loop, w);
	close(c->fd);
	c->fd = -1;
}

/* master_spawn - fork one child of KIND; 0 or -1 (logged; retried by the next tick) */
static int master_spawn(struct master *m, int kind)
{
	struct child *c = calloc(1, sizeof *c);
	int fds[2];
	pid_t pid;

	if (c == NULL) {
		log_error("event=oom what=child");
		return -1;
	}
	if (pipe2(fds, O_CLOEXEC) < 0) {
		log_warn("event=spawn_failed kind=%s what=pipe", master_kind_name(kind));
		free(c);
		return -1;
	}
	if ((pid = fork()) < 0) {
		log_warn("event=spawn_failed kind=%s what=fork", master_kind_name(kind));
		close(fds[0]);
		close(fds[1]);
		free(c);
		return -1;
	}
	if (pid == 0) {
		free(c);
		close(fds[0]);
		master_in_child(m, fds[1]);
		master_child_run(m, kind);
	}
	close(fds[1]);
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	c->m = m;
	c->pid = pid;
	c->kind = kind;
	c->gen = m->gen;
	c->started = ev_now(m->loop);
	c->fd = fds[0];
	ev_io_init(&c->io, master_notice_cb, c->fd, EV_READ);
	c->io.data = c;
	ev_io_start(m->loop, &c->io);
	c->next = m->children;
	m->children = c;
	log_info("event=child_started kind=%s pid=%ld generation=%u", master_kind_name(kind),
	    (long)pid, m->gen);
	return 0;
}

/* master_drain_child - ask C to stop taking work, finish what it has and exit */
static void master_drain_child(struct child *c)
{
	if (c->draining)
		return;
	c->draining = true;
	if (kill(c->pid, SIGTERM) < 0 && errno != ESRCH)
		log_warn("event=signal_failed pid=%ld", (long)c->pid);
}

/* master_count - live children of KIND in the current generation, not draining */
static int master_count(const struct master *m, int kind)
{
	const struct child *c;
	int n = 0;

	for (c = m->children; c != NULL; c = c->next)
		if (c->kind == kind && c->gen == m->gen && !c->draining)
			n++;
	return n;
}

/* master_publish - the live children of each kind and the wanted workers, for the metrics */
static void master_publish(const struct master *m)
{
	const struct child *c;
	int kind, alive;

	for (kind = 0; kind < KINDS; kind++) {
		alive = 0;
		for (c = m->children; c != NULL; c = c->next)
			if (c->kind == kind && !c->draining)
				alive++;
		metrics_workers(kind, master_kind_name(kind), alive);
		if (kind < CONF_CHANNELS)
			metrics_target(kind, m->want[kind], master_autoscaled(m, kind));
	}
}

/* master_reconcile - start what is missing (backoff allowing), drain what is too many */
static void master_reconcile(struct master *m)
{
	int kind, have;

	if (m->stopping) {
		master_publish(m);
		return;
	}
	for (kind = 0; kind < KINDS; kind++) {
		have = master_count(m, kind);
		while (have < m->want[kind] && ev_now(m->loop) >= m->next_spawn[kind]) {
			if (master_spawn(m, kind) < 0)
				break;
			have++;
		}
		/* too many: the newest go first (the children list is newest first) */
		for (struct child *c = m->children; c != NULL && have > m->want[kind]; c = c->next)
			if (c->kind == kind && c->gen == m->gen && !c->draining) {
				log_info("event=child_drain kind=%s pid=%ld reason=fewer_workers",
				    master_kind_name(kind), (long)c->pid);
				master_drain_child(c);
				have--;
			}
	}
	master_publish(m);
}

/* master_child_cb - a child ended: log it, respawn unless it was asked to stop */
static void master_child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct master *m = w->data;
	struct child **pp, *c = NULL;
	int st = w->rstatus, code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	char how[64];

	(void)revents;
	for (pp = &m->children; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->pid == w->rpid) {
			c = *pp;
			*pp = c->next;
			break;
		}
	if (c == NULL)
		return;
	if (WIFSIGNALED(st))
		snprintf(how, sizeof how, "signal=%d", WTERMSIG(st));
	else
		snprintf(how, sizeof how, "exit=%d", code);
	if (c->fd >= 0) {
		ev_io_stop(loop, &c->io);
		close(c->fd);
	}
	if (c->draining || m->stopping) {
		if (code == 0)
			log_info("event=child_stopped kind=%s pid=%ld %s", master_kind_name(c->kind),
			    (long)c->pid, how);
		else
			log_warnx("event=child_stopped kind=%s pid=%ld %s", master_kind_name(c->kind),
			    (long)c->pid, how);
	} else if (c->gen == m->gen) {
		double delay = 0;

		if (!c->acked) {
			int f = ++m->fails[c->kind];

			delay = f > 16 ? 1 << 16 : 1 << (f - 1);
			if (delay > m->conf->heraldd.respawn_backoff_max)
				delay = m->conf->heraldd.respawn_backoff_max;
		} else {
			m->fails[c->kind] = 0;
		}
		if (m->fails[c->kind] >= MASTER_LOUD_AFTER)
			log_error("event=crash_loop kind=%s pid=%ld %s deaths=%d respawn_in=%.0fs "
			    "note=\"dies before its first ack: see its log lines above\"",
			    master_kind_name(c->kind), (long)c->pid, how, m->fails[c->kind], delay);
		else
			log_error("event=child_died kind=%s pid=%ld %s lived=%.1fs respawn_in=%.0fs",
			    master_kind_name(c->kind), (long)c->pid, how, ev_now(loop) - c->started,
			    delay);
		m->next_spawn[c->kind] = ev_now(loop) + delay;
	}
	free(c);
	if (m->stopping && m->children == NULL) {
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	master_reconcile(m);
}

/* master_tick_cb - respawns whose backoff has passed */
static void master_tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	master_reconcile(t->data);
}

/* master_autoscale_cb - every autoscale.interval seconds: the count of each autoscaled channel
 * from its queue depth (autoscale.h), as the metrics child last read it */
static void master_autoscale_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct master *m = t->data;
	int64_t now = rfc3339_now(), depth;
	int64_t maxage = ((int64_t)m->conf->metrics.depth_interval * 3 + 2) * 1000000;
	int ch, to;

	(void)revents;
	if (m->stopping)
		return;
	for (ch = 0; ch < CONF_CHANNELS; ch++) {
		const struct conf_channel *cc = &m->conf->channels[ch];

		/* 0 workers: stopped by heraldctl (or no provider); autoscale waits */
		if (!master_autoscaled(m, ch) || m->state[ch] != CH_RUNNING || m->want[ch] == 0)
			continue;
		if ((depth = metrics_depth(ch, now, maxage)) < 0) {
			/* silent while the metrics child may still be starting */
			if (!m->blind[ch] && ev_now(loop) - m->planned > (double)maxage / 1e6) {
				log_warnx("event=autoscale_blind channel=%s note=\"no fresh queue depth "
				    "(see the metrics child's log): the count stays at %d\"",
				    conf_channel_name(ch), m->want[ch]);
				m->blind[ch] = true;
			}
			continue;
		}
		if (m->blind[ch])
			log_info("event=autoscale_sees channel=%s depth=%lld", conf_channel_name(ch),
			    (long long)depth);
		m->blind[ch] = false;
		to = autoscale_decide(&m->scale[ch], &m->conf->autoscale, cc->workers_min,
		    cc->workers_max, m->want[ch], depth, ev_now(loop));
		if (to == m->want[ch])
			continue;
		log_info("event=autoscale channel=%s from=%d to=%d depth=%lld", conf_channel_name(ch),
		    m->want[ch], to, (long long)depth);
		metrics_autoscaled(ch, to > m->want[ch]);
		m->want[ch] = to;
		m->fails[ch] = 0;
		m->next_spawn[ch] = 0;
	}
	master_reconcile(m);
}

/* master_autoscale_arm - run the autoscale timer at autoscale.interval when a channel needs it */
static void master_autoscale_arm(struct master *m)
{
	int ch;

	ev_timer_stop(m->loop, &m->autoscale);
	for (ch = 0; ch < CONF_CHANNELS; ch++)
		if (master_autoscaled(m, ch)) {
			ev_timer_set(&m->autoscale, m->conf->autoscale.interval,
			    m->conf->autoscale.interval);
			ev_timer_start(m->loop, &m->autoscale);
			return;
		}
}

/* master_kill_cb - the grace is over: whatever still runs is killed (its unacked messages go
 * back to the queue: at most one duplicate each) */
static void master_kill_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct master *m = t->data;
	struct child *c;

	(void)loop;
	(void)revents;
	for (c = m->children; c != NULL; c = c->next) {
		log_error("event=child_killed kind=%s pid=%ld note=\"still running %ds after SIGTERM\"",
		    master_kind_name(c->kind), (long)c->pid,
		    m->conf->heraldd.grace + MASTER_KILL_AFTER);
		kill(c->pid, SIGKILL);
	}
}

/* master_stop_cb - SIGTERM/SIGINT: every child drains; exit once all are gone */
static void master_stop_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
	struct master *m = s->data;
	struct child *c;

	(void)revents;
	if (m->stopping)
		return;
	log_info("event=stopping signal=%d", s->signum);
	m->stopping = true;
	for (c = m->children; c != NULL; c = c->next)
		master_drain_child(c);
	if (m->children == NULL) {
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	ev_timer_set(&m->kill, m->conf->heraldd.grace + MASTER_KILL_AFTER, 0.);
	ev_timer_start(loop, &m->kill);
}

/* master_logging - the log level and destination of C */
int master_logging(const struct conf *c)
{
	log_set_level((enum log_level)c->log.level);
	if (c->log.file != NULL && log_to_file(c->log.file) < 0)
		return -1;
	if (c->log.syslog >= 0)
		log_to_syslog(c->log.syslog);
	return 0;
}

/* master_reload_cb - SIGHUP: read the whole file again; on any error keep the running config,
 * else start the new generation, then drain the old one */
static void master_reload_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
	struct master *m = s->data;
	struct conf *nc;
	struct conf_error err;
	struct child *c;
	char perr[1024];
	int kind;

	(void)loop;
	(void)revents;
	if (m->stopping)
		return;
	if ((nc = calloc(1, sizeof *nc)) == NULL) {
		log_error("event=reload_refused err=\"out of memory\"");
		return;
	}
	if (conf_load(m->path, nc, &err) != 0 || conf_require(nc, "broker", &err) != 0 ||
	    conf_require(nc, "mysql", &err) != 0) {
		log_error("event=reload_refused err=\"%s\" note=\"the running configuration stays\"",
		    err.msg);
		conf_free(nc);
		free(nc);
		return;
	}
	if (privs_secrets(nc, perr, sizeof perr) < 0) {
		log_error("event=reload_refused err=\"%s\" note=\"the running configuration stays\"",
		    perr);
		conf_free(nc);
		free(nc);
		return;
	}
	if (strcmp(nc->heraldd.control, m->conf->heraldd.control) != 0)
		log_warnx("event=reload_partial key=heraldd.control note=\"the control socket moves "
		    "at the next restart\"");
	if (master_logging(nc) < 0)
		log_warnx("event=reload_partial key=log.file note=\"cannot open it; logging stays\"");
	conf_free(m->conf);
	free(m->conf);
	m->conf = nc;
	m->gen++;
	log_info("event=reloading generation=%u path=%s", m->gen, m->path);
	for (kind = 0; kind < KINDS; kind++) {
		m->fails[kind] = 0;
		m->next_spawn[kind] = 0;
	}
	master_plan(m);
	master_autoscale_arm(m);
	master_declare(m);
	master_reconcile(m);            /* the new generation first ... */
	for (c = m->children; c != NULL; c = c->next)
		if (c->gen != m->gen)
			master_drain_child(c);  /* ... then the old one drains */
}

/* master_usr1_cb - SIGUSR1: reopen the log file here and in every child */
static void master_usr1_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
	struct master *m = s->data;
	struct child *c;

	(void)loop;
	(void)revents;
	log_reopen();
	for (c = m->children; c != NULL; c = c->next)
		kill(c->pid, SIGUSR1);
}

/* master_status - the answer to "workers" on the control socket */
static struct json_object *master_status(void *arg)
{
	struct master *m = arg;
	struct json_object *o = json_object_new_object(), *chs = json_object_new_object(), *k;
	const struct child *c;
	int kind;

	json_object_object_add(o, "pid", json_object_new_int64(m->pid));
	json_object_object_add(o, "generation", json_object_new_int64(m->gen));
	for (kind = 0; kind < KINDS; kind++) {
		int running = 0, draining = 0;

		for (c = m->children; c != NULL; c = c->next)
			if (c->kind == kind) {
				if (c->draining)
					draining++;
				else
					running++;
			}
		k = json_object_new_object();
		if (kind < CONF_CHANNELS)
			json_object_object_add(k, "workers", json_object_new_int(m->want[kind]));
		json_object_object_add(k, "running", json_object_new_int(running));
		json_object_object_add(k, "draining", json_object_new_int(draining));
		if (kind < CONF_CHANNELS) {
			json_object_object_add(k, "state",
			    json_object_new_string(master_state_names[m->state[kind]]));
			if (m->reason[kind][0] != '\0')
				json_object_object_add(k, "reason", json_object_new_string(m->reason[kind]));
			if (master_autoscaled(m, kind)) {
				struct json_object *a = json_object_new_object();

				json_object_object_add(a, "min",
				    json_object_new_int(m->conf->channels[kind].workers_min));
				json_object_object_add(a, "max",
				    json_object_new_int(m->conf->channels[kind].workers_max));
				json_object_object_add(k, "autoscale", a);
			}
			json_object_object_add(chs, master_kind_name(kind), k);
		} else {
			json_object_object_add(o, master_kind_name(kind), k);
		}
	}
	json_object_object_add(o, "channels", chs);
	return o;
}

/* master_set_workers - "workers CHANNEL N": until the next reload or restart */
static int master_set_workers(void *arg, int ch, int n, char *err, size_t errlen)
{
	struct master *m = arg;
	int prev = m->want[ch];

	if (m->stopping) {
		snprintf(err, errlen, "heraldd is stopping");
		return -1;
	}
	if (m->state[ch] == CH_NO_PROVIDER) {
		snprintf(err, errlen, "channel %s has no usable provider (%s)", conf_channel_name(ch),
		    m->reason[ch]);
		return -1;
	}
	if (master_autoscaled(m, ch)) {
		const struct conf_channel *cc = &m->conf->channels[ch];

		/* a count in the range holds for one cool-down, then autoscale goes on from it; 0
		 * stops the channel and autoscale until a count in the range is set again */
		if (n != 0 && (n < cc->workers_min || n > cc->workers_max)) {
			snprintf(err, errlen, "channel %s autoscales between %d and %d workers: N must "
			    "be 0 (stop) or %d..%d", conf_channel_name(ch), cc->workers_min,
			    cc->workers_max, cc->workers_min, cc->workers_max);
			return -1;
		}
		autoscale_reset(&m->scale[ch], ev_now(m->loop));
	}
	m->want[ch] = n;
	m->state[ch] = n > 0 ? CH_RUNNING : CH_OFF;
	m->fails[ch] = 0;
	m->next_spawn[ch] = 0;
	log_info("event=workers_set channel=%s workers=%d previous=%d", conf_channel_name(ch), n, prev);
	master_reconcile(m);
	return prev;
}

static const struct control_ops master_control_ops = {
	.status = master_status,
	.set_workers = master_set_workers,
};

/* master_main - supervise until stopped */
int master_main(const char *path, struct conf *c)
{
	struct master m;
	char err[512];
	struct child *ch, *next;

	memset(&m, 0, sizeof m);
	m.path = path;
	m.conf = c;
	m.pid = getpid();
	m.gen = 1;
	m.loop = ev_default_loop(EVFLAG_AUTO);
	if (m.loop == NULL) {
		log_error("event=no_event_loop");
		conf_free(c);
		free(c);
		return EX_OSERR;
	}
	if ((m.ctl = control_open(m.loop, c->heraldd.control, &master_control_ops, &m, err,
	    sizeof err)) == NULL) {
		log_error("event=control_failed err=\"%s\"", err);
		conf_free(c);
		free(c);
		return EX_CANTCREAT;
	}
	/* what needs root is open: from here on heraldd runs as heraldd.user (§9) */
	if (privs_pidfile(c->heraldd.pidfile) < 0 ||
	    privs_drop(c->heraldd.pidfile, c->heraldd.control, c->log.file) < 0) {
		control_close(m.ctl, 1);
		conf_free(c);
		free(c);
		return EX_CANTCREAT;
	}
	ev_child_init(&m.cw, master_child_cb, 0, 0);
	m.cw.data = &m;
	ev_child_start(m.loop, &m.cw);
	ev_signal_init(&m.sterm, master_stop_cb, SIGTERM);
	m.sterm.data = &m;
	ev_signal_start(m.loop, &m.sterm);
	ev_signal_init(&m.sint, master_stop_cb, SIGINT);
	m.sint.data = &m;
	ev_signal_start(m.loop, &m.sint);
	ev_signal_init(&m.shup, master_reload_cb, SIGHUP);
	m.shup.data = &m;
	ev_signal_start(m.loop, &m.shup);
	ev_signal_init(&m.susr1, master_usr1_cb, SIGUSR1);
	m.susr1.data = &m;
	ev_signal_start(m.loop, &m.susr1);
	ev_timer_init(&m.tick, master_tick_cb, MASTER_TICK, MASTER_TICK);
	m.tick.data = &m;
	ev_timer_start(m.loop, &m.tick);
	ev_init(&m.kill, master_kill_cb);
	m.kill.data = &m;
	ev_init(&m.autoscale, master_autoscale_cb);
	m.autoscale.data = &m;
	/* mapped before any fork: the children share the 429 pauses */
	if (hostpause_init() < 0)
		log_warn("event=no_pause_table note=\"429 pauses stay with the worker that got them\"");
	if (metrics_init() < 0)
		log_warn("event=no_metrics_table note=\"the metrics count nothing\"");
	log_info("event=master_started pid=%ld control=%s", (long)m.pid, c->heraldd.control);
	master_plan(&m);
	master_autoscale_arm(&m);
	master_declare(&m);
	master_reconcile(&m);
	ev_run(m.loop, 0);
	log_info("event=master_stopped");
	for (ch = m.children; ch != NULL; ch = next) {
		next = ch->next;
		if (ch->fd >= 0)
			close(ch->fd);
		free(ch);
	}
	control_close(m.ctl, 1);
	if (m.conf->heraldd.pidfile != NULL)
		unlink(m.conf->heraldd.pidfile);
	conf_free(m.conf);
	free(m.conf);
	ev_loop_destroy(m.loop);
	return EX_OK;
}
