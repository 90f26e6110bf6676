/* http_sink - a fast webhook receiver for bench/worker.sh: answers 200 {"ok":true} to every POST
 * and counts them. Not a test helper (t/lib/receiver.py is); built by the benchmark script with
 *   cc -O2 -o http_sink http_sink.c $(pkg-config --cflags --libs libmicrohttpd)
 *
 *   http_sink [-t THREADS] PORTFILE
 *
 * Listens on 127.0.0.1, a free port written to PORTFILE (PORTFILE.tmp, then renamed) once ready.
 * GET /count answers "POSTS BYTES\n" (POST requests and body bytes received so far);
 * GET /reset answers the same and sets both to zero. Anything else but POST gets 404.
 * THREADS (default 1): libmicrohttpd's thread pool size (epoll, keep-alive). Stops on SIGTERM or
 * SIGINT and prints "posts N bytes B" on stdout.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <microhttpd.h>

static unsigned long long sink_posts, sink_bytes;
static volatile sig_atomic_t sink_stop;
static int sink_marker;              /* *con_cls of a request seen once */

static void sink_signal(int sig)
{
	(void)sig;
	sink_stop = 1;
}

static enum MHD_Result sink_reply(struct MHD_Connection *c, unsigned status, const char *body)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body,
	    MHD_RESPMEM_MUST_COPY);
	enum MHD_Result rc;

	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "application/json");
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result sink_handler(void *cls, struct MHD_Connection *c, const char *url,
	const char *method, const char *version, const char *data, size_t *size, void **con_cls)
{
	char buf[64];

	(void)cls;
	(void)version;
	(void)data;
	if (strcmp(method, "POST") == 0) {
		if (*con_cls == NULL) {          /* headers only: ask for the body */
			*con_cls = &sink_marker;
			return MHD_YES;
		}
		if (*size > 0) {                 /* a piece of the body */
			__atomic_add_fetch(&sink_bytes, *size, __ATOMIC_RELAXED);
			*size = 0;
			return MHD_YES;
		}
		__atomic_add_fetch(&sink_posts, 1, __ATOMIC_RELAXED);
		return sink_reply(c, 200, "{\"ok\":true}");
	}
	if (strcmp(method, "GET") == 0 && (strcmp(url, "/count") == 0 || strcmp(url, "/reset") == 0)) {
		unsigned long long p, b;

		if (url[1] == 'r') {
			p = __atomic_exchange_n(&sink_posts, 0, __ATOMIC_SEQ_CST);
			b = __atomic_exchange_n(&sink_bytes, 0, __ATOMIC_SEQ_CST);
		} else {
			p = __atomic_load_n(&sink_posts, __ATOMIC_SEQ_CST);
			b = __atomic_load_n(&sink_bytes, __ATOMIC_SEQ_CST);
		}
		snprintf(buf, sizeof buf, "%llu %llu\n", p, b);
		return sink_reply(c, 200, buf);
	}
	return sink_reply(c, 404, "{\"error\":\"not found\"}");
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa;
	const union MHD_DaemonInfo *info;
	struct MHD_Daemon *d;
	struct sigaction act;
	const char *portfile;
	char tmp[4096];
	unsigned threads = 1;
	int opt;
	FILE *f;

	while ((opt = getopt(argc, argv, "t:")) != -1) {
		if (opt == 't' && atoi(optarg) > 0) {
			threads = (unsigned)atoi(optarg);
			continue;
		}
		fprintf(stderr, "usage: http_sink [-t THREADS] PORTFILE\n");
		return 2;
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: http_sink [-t THREADS] PORTFILE\n");
		return 2;
	}
	portfile = argv[optind];
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0;
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL,
	    sink_handler, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
	    MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT, 4096U,
	    MHD_OPTION_CONNECTION_TIMEOUT, 60U, MHD_OPTION_END);
	if (d == NULL) {
		fprintf(stderr, "http_sink: MHD_start_daemon failed\n");
		return 1;
	}
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	if (info == NULL || info->port == 0) {
		fprintf(stderr, "http_sink: no port\n");
		return 1;
	}
	snprintf(tmp, sizeof tmp, "%s.tmp", portfile);
	if ((f = fopen(tmp, "w")) == NULL || fprintf(f, "%u\n", (unsigned)info->port) < 0 ||
	    fclose(f) != 0 || rename(tmp, portfile) != 0) {
		fprintf(stderr, "http_sink: %s: %s\n", portfile, strerror(errno));
		return 1;
	}
	memset(&act, 0, sizeof act);
	act.sa_handler = sink_signal;
	sigemptyset(&act.sa_mask);
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	while (!sink_stop)
		pause();
	MHD_stop_daemon(d);
	printf("posts %llu bytes %llu\n", sink_posts, sink_bytes);
	return 0;
}
