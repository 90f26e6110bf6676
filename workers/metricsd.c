/* metricsd - the metrics child (see metrics.h): libmicrohttpd serves GET /metrics from its own
 * thread while the main thread reads the queue depths (passive queue.declare) every
 * metrics.depth_interval seconds and waits for signals in between.
 *
 * It is a child of the master, not a thread in it: the master forks, and a forked thread-less
 * copy of a threaded process is a hazard. The master also needs the depths for autoscale; it
 * reads them from the shared table instead of blocking its own loop on the broker.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <time.h>

#include <amqp.h>
#include <microhttpd.h>

#include "broker.h"
#include "conf.h"
#include "log.h"
#include "master.h"
#include "metrics.h"
#include "rfc3339.h"
#include "topology.h"

#define METRICSD_CHAN 1
#define METRICSD_CONNECTIONS 16      /* scrapers at once */
#define METRICSD_TIMEOUT 10          /* seconds an idle HTTP connection is kept */
#define METRICSD_BIND_TRIES 50       /* 100 ms apart while the port is in use */

struct metricsd {
	const struct conf *conf;
	amqp_connection_state_t conn;
	bool failing;                    /* the last reading failed (logged once) */
	_Atomic bool binding;            /* trying the port: libmicrohttpd's complaints unlogged */
	int64_t maxage;                  /* µs: older depths are stale */
};

/* metricsd_maxage - how old a depth reading may be under C (three missed readings) */
static int64_t metricsd_maxage(const struct conf *c)
{
	return ((int64_t)c->metrics.depth_interval * 3 + 2) * 1000000;
}

/* metricsd_count - the ready messages of QUEUE, or -1 (the connection is then unusable) */
static int64_t metricsd_count(struct metricsd *d, const char *queue, char *err, size_t errlen)
{
	amqp_queue_declare_ok_t *ok;

	ok = amqp_queue_declare(d->conn, METRICSD_CHAN, amqp_cstring_bytes(queue), 1, 0, 0, 0,
	    amqp_empty_table);
	if (ok == NULL) {
		topology_rpc_error(d->conn, METRICSD_CHAN, amqp_get_rpc_reply(d->conn), queue, err,
		    errlen);
		return -1;
	}
	return ok->message_count;
}

/* metricsd_round - one reading of every channel's queue and parking queue; 0 or -1 (ERR) */
static int metricsd_round(struct metricsd *d, char *err, size_t errlen)
{
	char q[TOPOLOGY_NAME_MAX], pq[TOPOLOGY_NAME_MAX];
	int64_t depth[CONF_CHANNELS], parked[CONF_CHANNELS], now;
	int ch;

	if (d->conn == NULL &&
	    (d->conn = broker_open(&d->conf->broker, "heraldd-metrics", METRICSD_CHAN, NULL, err,
	    errlen)) == NULL)
		return -1;
	for (ch = 0; ch < CONF_CHANNELS; ch++) {
		topology_channel_queue(ch, q, sizeof q);
		topology_parking_queue(ch, pq, sizeof pq);
		if ((depth[ch] = metricsd_count(d, q, err, errlen)) < 0 ||
		    (parked[ch] = metricsd_count(d, pq, err, errlen)) < 0) {
			amqp_destroy_connection(d->conn);
			d->conn = NULL;
			return -1;
		}
	}
	now = rfc3339_now();
	for (ch = 0; ch < CONF_CHANNELS; ch++)
		metrics_depth_set(ch, depth[ch], parked[ch], now);
	return 0;
}

/* metricsd_read - read the depths; a connection the broker closed meanwhile (idle past its
 * heartbeat) is opened again at once; a failure is logged when it starts and when it ends */
static void metricsd_read(struct metricsd *d)
{
	char err[768];
	bool had = d->conn != NULL;

	if (metricsd_round(d, err, sizeof err) < 0 && (!had || metricsd_round(d, err, sizeof err) < 0)) {
		if (!d->failing)
			log_warnx("event=queue_depth_unread err=\"%s\" note=\"the depths leave the "
			    "metrics and autoscale holds until they are read again\"", err);
		d->failing = true;
		return;
	}
	if (d->failing)
		log_info("event=queue_depth_read note=\"the broker answers again\"");
	d->failing = false;
}

/* metricsd_reply - queue a plain answer CODE with BODY (a static string) */
static enum MHD_Result metricsd_reply(struct MHD_Connection *conn, unsigned code, const char *body)
{
	struct MHD_Response *r;
	enum MHD_Result rc;

	r = MHD_create_response_from_buffer(strlen(body), (void *)(uintptr_t)body,
	    MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	rc = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return rc;
}

/* metricsd_answer_cb - libmicrohttpd's request handler: GET /metrics, nothing else */
static enum MHD_Result metricsd_answer_cb(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload, size_t *upload_size,
    void **state)
{
	struct metricsd *d = cls;
	struct MHD_Response *r;
	enum MHD_Result rc;
	char *body;
	size_t len;

	(void)version;
	(void)upload;
	(void)upload_size;
	(void)state;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return metricsd_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /metrics\n");
	if (strcmp(url, "/metrics") != 0)
		return metricsd_reply(conn, MHD_HTTP_NOT_FOUND, "not found: the metrics are at "
		    "/metrics\n");
	if ((body = metrics_render(rfc3339_now(), d->maxage, &len)) == NULL)
		return metricsd_reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	if ((r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)) == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	    "text/plain; version=0.0.4; charset=utf-8");
	rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return rc;
}

/* metricsd_log_cb - libmicrohttpd's own complaints, as one log line each (not while the port is
 * tried: metricsd_serve says what came of it) */
static void metricsd_log_cb(void *cls, const char *fmt, va_list ap)
{
	const struct metricsd *d = cls;
	char msg[512], q[600];
	size_t n;

	if (d->binding)
		return;
	vsnprintf(msg, sizeof msg, fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_warnx("event=metrics_http err=%s", log_quote(q, sizeof q, msg));
}

/* metricsd_addr - LISTEN ("host:port", "[v6]:port"; host a loopback address or localhost, as
 * conf checked) as a socket address into SS; 0 or -1 */
static int metricsd_addr(const char *listen, struct sockaddr_storage *ss, bool *v6)
{
	const char *colon = strrchr(listen, ':');
	char host[64];
	size_t n;
	long port;

	if (colon == NULL || (n = (size_t)(colon - listen)) == 0 || n >= sizeof host)
		return -1;
	port = strtol(colon + 1, NULL, 10);
	memcpy(host, listen, n);
	host[n] = '\0';
	memset(ss, 0, sizeof *ss);
	if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		host[n - 1] = '\0';
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*v6 = true;
		return inet_pton(AF_INET6, host + 1, &s6->sin6_addr) == 1 ? 0 : -1;
	}
	{
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*v6 = false;
		if (strcmp(host, "localhost") == 0)
			snprintf(host, sizeof host, "127.0.0.1");
		return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? 0 : -1;
	}
}

/* metricsd_serve - start libmicrohttpd on metrics.listen; the daemon, or NULL (logged) */
static struct MHD_Daemon *metricsd_serve(struct metricsd *d)
{
	const char *listen = d->conf->metrics.listen;
	struct sockaddr_storage ss;
	struct MHD_Daemon *daemon = NULL;
	struct timespec pause = { .tv_nsec = 100000000 };
	bool v6 = false;
	int tries;

	if (metricsd_addr(listen, &ss, &v6) < 0) {
		log_error("event=metrics_listen_failed listen=%s err=\"not a loopback HOST:PORT\"",
		    listen);
		return NULL;
	}
	/* after a reload the old generation's metrics child may hold the port a moment longer */
	d->binding = true;
	for (tries = 0; tries < METRICSD_BIND_TRIES; tries++) {
		errno = 0;
		daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
		    (v6 ? MHD_USE_IPv6 : 0), 0, NULL, NULL, metricsd_answer_cb, d,
		    MHD_OPTION_EXTERNAL_LOGGER, metricsd_log_cb, d,
		    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		    MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICSD_CONNECTIONS,
		    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICSD_TIMEOUT,
		    MHD_OPTION_END);
		if (daemon != NULL || errno != EADDRINUSE)
			break;
		nanosleep(&pause, NULL);
	}
	d->binding = false;
	if (daemon == NULL)
		log_error("event=metrics_listen_failed listen=%s err=\"%s\"", listen,
		    errno != 0 ? strerror(errno) : "libmicrohttpd could not start");
	return daemon;
}

/* metricsd_main - serve and read until told to stop */
int metricsd_main(const struct conf *c)
{
	struct metricsd d = { .conf = c, .maxage = metricsd_maxage(c) };
	struct MHD_Daemon *daemon = NULL;
	struct timespec every = { .tv_sec = c->metrics.depth_interval };
	sigset_t set;
	int sig;

	/* blocked before libmicrohttpd's thread exists, so it inherits the mask and only
	 * sigtimedwait below takes them */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (c->metrics.listen != NULL && c->metrics.listen[0] != '\0') {
		if ((daemon = metricsd_serve(&d)) == NULL)
			return EX_UNAVAILABLE;
		log_info("event=metrics_listening listen=%s path=/metrics", c->metrics.listen);
	}
	master_notice_ready();
	for (;;) {
		metricsd_read(&d);
		sig = sigtimedwait(&set, NULL, &every);
		if (sig == SIGUSR1)
			log_reopen();
		else if (sig == SIGTERM || sig == SIGINT)
			break;
	}
	if (daemon != NULL)
		MHD_stop_daemon(daemon);
	broker_close(&d.conn, METRICSD_CHAN);
	log_info("event=metrics_stopped");
	return EX_OK;
}
