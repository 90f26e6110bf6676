/* stats - "heraldctl stats [--format json|table] [--interval S] [--socket PATH]" (SPEC §9)
 *
 * What an operator wants at a glance, per channel:
 *   - the broker (passive queue.declare, as parked does): ready messages and consumers of the
 *     channel queue herald.CH.vV, the messages waiting in its retry tiers (the configured ones)
 *     and in its parking queue; sampled twice, --interval seconds apart (default 1), the change
 *     per second of each (positive: filling faster than it drains; 0 skips the second sample);
 *   - the database: the notifications accepted in the last hour and the last day, counted by
 *     their current status (the notifications_created index: cheap however long the history);
 *   - heraldd's control socket (as heraldctl workers): the workers alive per channel, or
 *     "unavailable" when heraldd does not answer (not an error: the broker and the database
 *     still tell the rest).
 * A queue that does not exist (heraldd never started with this topology) is null.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <json-c/json.h>

#include "broker.h"
#include "conf.h"
#include "ctl.h"
#include "db.h"
#include "topology.h"

#define STATS_CHAN 1
#define STATS_INTERVAL_MAX 60.0
#define STATS_SOCKET_MS 2000         /* heraldd's answer: connect, request and answer */
#define STATS_ANSWER_MAX 65536

enum { S_STATUS, S__N };

static const struct db_stmt stats_stmts[S__N] = {
	[S_STATUS] = { "stats_status",
		"SELECT channel, status, SUM(created_at >= NOW(6) - INTERVAL 1 HOUR), COUNT(*)"
		" FROM notifications WHERE created_at >= NOW(6) - INTERVAL 1 DAY"
		" GROUP BY channel, status ORDER BY channel, status", true },
};

static const char stats_usage[] =
	"usage: heraldctl stats [--format json|table] [--interval S] [--socket PATH]\n"
	"  Per channel: the channel queue's ready messages and consumers, the messages waiting in\n"
	"  its retry tiers and its parking queue (from the broker); the rate of each: the change\n"
	"  in messages per second between two samples S seconds apart (default 1; 0: no rates) -\n"
	"  positive when the queue fills faster than the workers drain it, negative when it\n"
	"  drains; the notifications accepted in the last hour and the last day by current status\n"
	"  (from the database); the workers alive (from heraldd's control socket, --socket or\n"
	"  heraldd.control; \"unavailable\" when heraldd does not answer).\n"
	"  One JSON object by default; --format table: aligned tables for a person.\n"
	"  Exit: 0; 64 bad arguments; 69 the broker or the database is unreachable; 78 no broker\n"
	"  or database configured.\n";

/* One sample of a channel's queues: -1 where the queue does not exist. */
struct stats_q {
	long ready, consumers, retry, parked;
};

struct stats {
	struct conf c;
	amqp_connection_state_t conn;
	amqp_channel_t chan;             /* the open AMQP channel (a 404 closes one: take the next) */
	struct stats_q s1[CONF_CHANNELS], s2[CONF_CHANNELS];
	double interval;
	struct json_object *statuses[CONF_CHANNELS][2];   /* {status: n}: last hour, last day */
	struct json_object *workers;     /* heraldd's answer, or NULL */
	char why[300];                   /* why heraldd is unavailable */
};

/* stats_declare - the message and consumer counts of queue NAME (passive declare) into *MSGS
 * and *CONS; 1, 0 when it does not exist, or EX_UNAVAILABLE (printed) */
static int stats_declare(struct stats *st, const char *name, long *msgs, long *cons)
{
	amqp_queue_declare_ok_t *ok;
	amqp_rpc_reply_t r;
	char err[512];
	int code;

	ok = amqp_queue_declare(st->conn, st->chan, amqp_cstring_bytes(name), 1, 0, 0, 0,
	    amqp_empty_table);
	if (ok != NULL) {
		*msgs = (long)ok->message_count;
		if (cons != NULL)
			*cons = (long)ok->consumer_count;
		return 1;
	}
	r = amqp_get_rpc_reply(st->conn);
	code = topology_rpc_error(st->conn, st->chan, r, name, err, sizeof err);
	if (code == AMQP_NOT_FOUND) {
		/* the broker closed the channel: go on with a fresh one */
		st->chan++;
		amqp_channel_open(st->conn, st->chan);
		if (broker_rpc_ok(st->conn, st->chan, "channel.open"))
			return 0;
		snprintf(err, sizeof err, "channel.open refused after %s was not found", name);
	}
	fprintf(stderr, "heraldctl stats: broker: %s\n", err);
	return EX_UNAVAILABLE;
}

/* stats_sample - one sample of every channel's queues into S; 0 or an EX_ code */
static int stats_sample(struct stats *st, struct stats_q *s)
{
	char name[TOPOLOGY_NAME_MAX];
	const int *tiers;
	size_t nt = topology_tiers(&st->c, &tiers), t;
	long m, cons;
	int ch, rc;

	for (ch = 0; ch < CONF_CHANNELS; ch++) {
		s[ch].ready = s[ch].consumers = s[ch].retry = s[ch].parked = -1;
		topology_channel_queue(ch, name, sizeof name);
		if ((rc = stats_declare(st, name, &m, &cons)) > 1)
			return rc;
		if (rc == 1) {
			s[ch].ready = m;
			s[ch].consumers = cons;
		}
		for (t = 0; t < nt; t++) {
			topology_tier_queue(ch, tiers[t], name, sizeof name);
			if ((rc = stats_declare(st, name, &m, NULL)) > 1)
				return rc;
			if (rc == 1)
				s[ch].retry = (s[ch].retry < 0 ? 0 : s[ch].retry) + m;
		}
		topology_parking_queue(ch, name, sizeof name);
		if ((rc = stats_declare(st, name, &m, NULL)) > 1)
			return rc;
		if (rc == 1)
			s[ch].parked = m;
	}
	return 0;
}

/* stats_broker - open the broker, take the samples; 0 or an EX_ code (printed) */
static int stats_broker(struct stats *st)
{
	struct timespec ts;
	char err[768];
	int config = 0, rc;

	st->chan = STATS_CHAN;
	st->conn = broker_open(&st->c.broker, "heraldctl", st->chan, &config, err, sizeof err);
	if (st->conn == NULL) {
		fprintf(stderr, "heraldctl stats: %s\n", err);
		return config ? EX_CONFIG : EX_UNAVAILABLE;
	}
	if ((rc = stats_sample(st, st->s1)) != 0 || st->interval <= 0)
		return rc;
	ts.tv_sec = (time_t)st->interval;
	ts.tv_nsec = (long)((st->interval - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	return stats_sample(st, st->s2);
}

/* stats_db - the statuses of the last hour and day per channel; 0 or an EX_ code (printed) */
static int stats_db(const char *conf, struct stats *st)
{
	struct db *db = NULL;
	int rc, fr, ch, k;

	for (ch = 0; ch < CONF_CHANNELS; ch++)
		for (k = 0; k < 2; k++)
			st->statuses[ch][k] = json_object_new_object();
	if ((rc = ctl_db_open(conf, stats_stmts, S__N, &db)) != 0)
		return rc;
	if ((rc = db_exec(db, S_STATUS, NULL, 0)) != 0) {
		rc = ctl_db_fail(db, rc);
		goto out;
	}
	while ((fr = db_fetch(db, S_STATUS)) == 1) {
		const char *chn = db_col_str(db, S_STATUS, 0, NULL);
		const char *status = db_col_str(db, S_STATUS, 1, NULL);
		int64_t hour = db_col_i64(db, S_STATUS, 2), day = db_col_i64(db, S_STATUS, 3);

		if (chn == NULL || status == NULL || (ch = conf_channel_parse(chn)) < 0)
			continue;
		if (hour > 0)
			json_object_object_add(st->statuses[ch][0], status, json_object_new_int64(hour));
		json_object_object_add(st->statuses[ch][1], status, json_object_new_int64(day));
	}
	if (fr < 0)
		rc = ctl_db_fail(db, fr);
out:
	db_close(db);
	return rc;
}

/* stats_heraldd - heraldd's "workers" answer on the control socket PATH into st->workers, or
 * NULL with the reason in st->why */
static void stats_heraldd(struct stats *st, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = STATS_SOCKET_MS / 1000,
		.tv_usec = (STATS_SOCKET_MS % 1000) * 1000 };
	char *buf = NULL, field[128], why[256], *nl = NULL;
	size_t off = 0;
	ssize_t n;
	int fd;

	if (path == NULL || path[0] == '\0' || strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(st->why, sizeof st->why, "no usable control socket path");
		return;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(st->why, sizeof st->why, "socket: %s", strerror(errno));
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (const struct sockaddr *)&sa, (socklen_t)sizeof sa) != 0) {
		snprintf(st->why, sizeof st->why, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (send(fd, "workers\n", 8, MSG_NOSIGNAL) != 8) {
		snprintf(st->why, sizeof st->why, "%s: send: %s", path, strerror(errno));
		goto out;
	}
	if ((buf = malloc(STATS_ANSWER_MAX + 1)) == NULL) {
		snprintf(st->why, sizeof st->why, "out of memory");
		goto out;
	}
	while (off < STATS_ANSWER_MAX && (n = recv(fd, buf + off, STATS_ANSWER_MAX - off, 0)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(st->why, sizeof st->why, "%s: %s", path, errno == EAGAIN ||
			    errno == EWOULDBLOCK ? "no answer in time" : strerror(errno));
			goto out;
		}
		off += (size_t)n;
		if ((nl = memchr(buf, '\n', off)) != NULL)
			break;
	}
	if (nl == NULL) {
		snprintf(st->why, sizeof st->why, "%s: no complete answer", path);
		goto out;
	}
	if (ctl_json_parse(buf, (size_t)(nl - buf), &st->workers, field, sizeof field, why,
	    sizeof why) != 0 || !json_object_is_type(st->workers, json_type_object)) {
		json_object_put(st->workers);
		st->workers = NULL;
		snprintf(st->why, sizeof st->why, "%s: the answer is not a JSON object", path);
	}
out:
	free(buf);
	close(fd);
}

/* stats_count - N as JSON: null when the queue does not exist */
static struct json_object *stats_count(long n)
{
	return n < 0 ? NULL : json_object_new_int64(n);
}

/* stats_rate - the change per second from A to B as JSON (null without both), 0.1 precision */
static struct json_object *stats_rate(const struct stats *st, long a, long b)
{
	double x;

	if (st->interval <= 0 || a < 0 || b < 0)
		return NULL;
	x = (double)(b - a) / st->interval * 10.0;
	return json_object_new_double((double)(long long)(x < 0 ? x - 0.5 : x + 0.5) / 10.0);
}

/* stats_alive - the workers alive of channel CH from heraldd's answer, or -1 */
static long stats_alive(const struct stats *st, int ch)
{
	struct json_object *chs, *o, *v;

	if (st->workers == NULL || !json_object_object_get_ex(st->workers, "channels", &chs) ||
	    !json_object_object_get_ex(chs, conf_channel_name(ch), &o) ||
	    !json_object_object_get_ex(o, "running", &v))
		return st->workers == NULL ? -1 : 0;
	return (long)json_object_get_int64(v);
}

/* stats_json - everything as one object */
static struct json_object *stats_json(struct stats *st)
{
	struct json_object *o = json_object_new_object(), *chs = json_object_new_object();
	struct timespec now;
	int ch;

	clock_gettime(CLOCK_REALTIME, &now);
	json_object_object_add(o, "at", ctl_time((int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000));
	json_object_object_add(o, "interval", st->interval > 0 ?
	    json_object_new_double(st->interval) : NULL);
	json_object_object_add(o, "heraldd", json_object_new_string(st->workers != NULL ?
	    "running" : "unavailable"));
	if (st->workers == NULL)
		json_object_object_add(o, "heraldd_error", json_object_new_string(st->why));
	for (ch = 0; ch < CONF_CHANNELS; ch++) {
		struct json_object *c = json_object_new_object(), *q = json_object_new_object();
		const struct stats_q *a = &st->s1[ch], *b = st->interval > 0 ? &st->s2[ch] : a;
		long alive = stats_alive(st, ch);

		json_object_object_add(q, "ready", stats_count(b->ready));
		json_object_object_add(q, "consumers", stats_count(b->consumers));
		json_object_object_add(q, "retry", stats_count(b->retry));
		json_object_object_add(q, "parked", stats_count(b->parked));
		json_object_object_add(c, "queue", q);
		q = json_object_new_object();
		json_object_object_add(q, "ready", stats_rate(st, a->ready, b->ready));
		json_object_object_add(q, "retry", stats_rate(st, a->retry, b->retry));
		json_object_object_add(q, "parked", stats_rate(st, a->parked, b->parked));
		json_object_object_add(c, "rate_per_s", q);
		q = json_object_new_object();
		json_object_object_add(q, "last_hour", json_object_get(st->statuses[ch][0]));
		json_object_object_add(q, "last_day", json_object_get(st->statuses[ch][1]));
		json_object_object_add(c, "statuses", q);
		json_object_object_add(c, "workers_alive", alive < 0 ?
		    json_object_new_string("unavailable") : json_object_new_int64(alive));
		json_object_object_add(chs, conf_channel_name(ch), c);
	}
	json_object_object_add(o, "channels", chs);
	return o;
}

/* stats_cell - a JSON value V as table text into BUF: "-" for null */
static const char *stats_cell(struct json_object *v, char *buf, size_t len)
{
	if (v == NULL)
		return "-";
	if (json_object_is_type(v, json_type_double))
		snprintf(buf, len, "%+.1f", json_object_get_double(v));
	else
		snprintf(buf, len, "%s", json_object_get_string(v));
	return buf;
}

/* stats_table - O (stats_json's) as tables for a person */
static void stats_table(struct json_object *o)
{
	struct json_object *chs, *c, *q, *r, *s, *h, *d, *v, *w;
	static const char *const cols[7] = { "ready", "consumers", "retry", "parked", "ready",
		"retry", "parked" };
	const char *cell[7];
	char b[7][64];
	int ch, k;

	json_object_object_get_ex(o, "channels", &chs);
	json_object_object_get_ex(o, "at", &v);
	printf("herald stats at %s", json_object_get_string(v));
	if (json_object_object_get_ex(o, "interval", &v) && v != NULL)
		printf(" (rates over %.1f s)", json_object_get_double(v));
	json_object_object_get_ex(o, "heraldd", &v);
	printf("; heraldd %s\n\n", json_object_get_string(v));
	printf("%-8s %9s %9s %9s %9s %9s %9s %9s %s\n", "CHANNEL", "READY", "CONSUMERS", "RETRY",
	    "PARKED", "READY/S", "RETRY/S", "PARKED/S", "WORKERS");
	for (ch = 0; ch < CONF_CHANNELS; ch++) {
		const char *name = conf_channel_name(ch);

		json_object_object_get_ex(chs, name, &c);
		json_object_object_get_ex(c, "queue", &q);
		json_object_object_get_ex(c, "rate_per_s", &r);
		json_object_object_get_ex(c, "workers_alive", &w);
		for (k = 0; k < 7; k++) {
			v = NULL;
			if (!json_object_object_get_ex(k < 4 ? q : r, cols[k], &v))
				v = NULL;
			cell[k] = stats_cell(v, b[k], sizeof b[k]);
		}
		printf("%-8s %9s %9s %9s %9s %9s %9s %9s %s\n", name, cell[0], cell[1], cell[2],
		    cell[3], cell[4], cell[5], cell[6], json_object_get_string(w));
	}
	printf("\n%-8s %-14s %9s %9s\n", "CHANNEL", "STATUS", "LAST_HOUR", "LAST_DAY");
	for (ch = 0; ch < CONF_CHANNELS; ch++) {
		const char *name = conf_channel_name(ch);
		int rows = 0;

		json_object_object_get_ex(chs, name, &c);
		json_object_object_get_ex(c, "statuses", &s);
		json_object_object_get_ex(s, "last_hour", &h);
		json_object_object_get_ex(s, "last_day", &d);
		json_object_object_foreach(d, status, n) {
			printf("%-8s %-14s %9" PRId64 " %9" PRId64 "\n", name, status,
			    json_object_object_get_ex(h, status, &v) ? json_object_get_int64(v) : 0,
			    json_object_get_int64(n));
			rows++;
		}
		if (rows == 0)
			printf("%-8s %-14s %9d %9d\n", name, "(none)", 0, 0);
	}
}

/* stats_cmd - "heraldctl stats [--format json|table] [--interval S] [--socket PATH]" */
int stats_cmd(const char *conf, int argc, char **argv)
{
	const char *format = NULL, *interval = NULL, *sock = NULL, *pos[1];
	const struct ctl_opt opts[] = {
		{ "--format", &format, NULL }, { "--interval", &interval, NULL },
		{ "--socket", &sock, NULL }, { NULL, NULL, NULL }
	};
	struct conf_error err;
	struct stats st;
	struct json_object *o;
	char *end;
	int np, rc, ch, k;

	memset(&st, 0, sizeof st);
	if ((rc = ctl_args("stats", stats_usage, argc - 1, argv + 1, opts, pos, 0, &np)) != 0)
		return rc == CTL_HELP ? EX_OK : rc;
	if (format != NULL && strcmp(format, "json") != 0 && strcmp(format, "table") != 0)
		return ctl_usage("stats", stats_usage, "--format '%s': must be json or table", format);
	st.interval = 1.0;
	if (interval != NULL) {
		errno = 0;
		st.interval = strtod(interval, &end);
		if (errno != 0 || end == interval || *end != '\0' || !(st.interval >= 0) ||
		    st.interval > STATS_INTERVAL_MAX)
			return ctl_usage("stats", stats_usage, "--interval '%s': not a number of seconds"
			    " from 0 to %.0f", interval, STATS_INTERVAL_MAX);
	}
	if ((rc = ctl_conf(conf, &st.c)) != 0)
		return rc;
	if (conf_require(&st.c, "broker", &err) != 0) {
		fprintf(stderr, "heraldctl: %s\n", err.msg);
		rc = EX_CONFIG;
		goto out;
	}
	if ((rc = stats_db(conf, &st)) != 0 || (rc = stats_broker(&st)) != 0)
		goto out;
	stats_heraldd(&st, sock != NULL ? sock : st.c.heraldd.control);
	o = stats_json(&st);
	if (format != NULL && strcmp(format, "table") == 0) {
		stats_table(o);
		json_object_put(o);
	} else {
		ctl_print(o);
	}
out:
	if (st.conn != NULL)
		broker_close(&st.conn, st.chan);
	json_object_put(st.workers);
	for (ch = 0; ch < CONF_CHANNELS; ch++)
		for (k = 0; k < 2; k++)
			json_object_put(st.statuses[ch][k]);
	conf_free(&st.c);
	return rc;
}
