/* workers - "heraldctl workers [CHANNEL N]" (SPEC §9): heraldd's worker counts, changed live
 *
 * The client of heraldd's control socket (heraldd.control): connect, write one request line
 * ("workers" or "workers CHANNEL N"), read one answer line (a JSON object), print it. heraldd
 * closes the connection after answering. The whole exchange has WORKERS_TIMEOUT seconds.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <json-c/json.h>

#include "conf.h"
#include "ctl.h"

#define WORKERS_MAX 256              /* N: workers per channel */
#define WORKERS_TIMEOUT 5            /* seconds for connect, request and answer together */
#define WORKERS_REQ_MAX 256          /* bytes of a request line, "\n" included */
#define WORKERS_ANSWER_MAX 65536     /* bytes of an answer line, "\n" included */
#define WORKERS_RETRY_MS 50          /* a full listen backlog: try connect again after this */

static const char workers_usage[] =
	"usage: heraldctl workers [--socket PATH] [--format json|table]\n"
	"       heraldctl workers [--socket PATH] CHANNEL N\n"
	"  Without arguments: heraldd's workers per channel (configured, running, draining, state)\n"
	"  as one JSON line. CHANNEL N (email, sms, push, webhook; N 0 to 256) sets the channel's\n"
	"  worker count live: new workers start, removed ones finish their deliveries and exit.\n"
	"  --socket: heraldd's control socket (default: heraldd.control of the config file).\n"
	"  --format table: heraldd's pid and generation, then one row per channel, the ledger and\n"
	"  the outbox worker (NAME WORKERS RUNNING DRAINING STATE REASON).\n"
	CTL_FORMAT_HELP;

/* One exchange with heraldd: the socket, where it is and when it must be over. */
struct workers_conn {
	int fd;
	const char *path;
	const char *from;            /* where PATH comes from: "--socket" or the config key */
	struct timespec deadline;    /* CLOCK_MONOTONIC */
};

/* workers_left_ms - milliseconds left before W's deadline (0 when past it), or -1 on error */
static int workers_left_ms(const struct workers_conn *w)
{
	struct timespec now;
	long long ms;

	if (clock_gettime(CLOCK_MONOTONIC, &now) != 0) {
		fprintf(stderr, "heraldctl: workers: clock_gettime: %s\n", strerror(errno));
		return -1;
	}
	ms = (long long)(w->deadline.tv_sec - now.tv_sec) * 1000 +
	    (w->deadline.tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : (int)ms;
}

/* workers_timeout - report that heraldd did not answer in time (CHANGE: a change was asked) */
static int workers_timeout(const struct workers_conn *w, const char *what, int change)
{
	fprintf(stderr, "heraldctl: workers: heraldd at %s did not %s within %d s%s\n", w->path,
	    what, WORKERS_TIMEOUT, change ? " (the change may have been applied: heraldctl"
	    " workers shows the counts)" : "");
	return EX_TEMPFAIL;
}

/* workers_wait - wait until W's socket is ready for EVENTS; 0, 1 at the deadline, or -1 */
static int workers_wait(const struct workers_conn *w, short events)
{
	struct pollfd p = { .fd = w->fd, .events = events };
	int ms, n;

	for (;;) {
		if ((ms = workers_left_ms(w)) < 0)
			return -1;
		if (ms == 0)
			return 1;
		if ((n = poll(&p, 1, ms)) > 0)
			return 0;            /* ready, or POLLERR/POLLHUP: the next call tells */
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "heraldctl: workers: poll: %s\n", strerror(errno));
			return -1;
		}
	}
}

/* workers_unreachable - the exit code and message for connect's errno E on W's path */
static int workers_unreachable(const struct workers_conn *w, int e)
{
	if (e == EACCES || e == EPERM) {
		fprintf(stderr, "heraldctl: workers: cannot reach heraldd at %s: %s (run as root or as"
		    " heraldd's user)\n", w->path, strerror(e));
		return EX_NOPERM;
	}
	fprintf(stderr, "heraldctl: workers: cannot reach heraldd at %s: %s (is heraldd running?)\n",
	    w->path, strerror(e));
	return EX_UNAVAILABLE;
}

/* workers_connect - connect W->fd (non-blocking) to the unix socket at W->path; 0 or an EX_ code */
static int workers_connect(struct workers_conn *w)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(w->path);
	int flags, err, rc;
	socklen_t elen = sizeof(err);

	if (len == 0 || len >= sizeof(sa.sun_path)) {
		fprintf(stderr, "heraldctl: workers: %s '%s': %s (%zu bytes; a unix socket path has 1"
		    " to %zu)\n", w->from, w->path, len ? "too long" : "empty", len,
		    sizeof(sa.sun_path) - 1);
		return EX_CONFIG;
	}
	memcpy(sa.sun_path, w->path, len + 1);
	if ((w->fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0) {
		fprintf(stderr, "heraldctl: workers: socket: %s\n", strerror(errno));
		return EX_OSERR;
	}
	if ((flags = fcntl(w->fd, F_GETFL)) < 0 || fcntl(w->fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    fcntl(w->fd, F_SETFD, FD_CLOEXEC) < 0) {
		fprintf(stderr, "heraldctl: workers: fcntl: %s\n", strerror(errno));
		return EX_OSERR;
	}
	/* A unix socket connects at once, or fails with EAGAIN while heraldd's listen backlog is
	 * full (Linux: nothing to poll for, so try again), or EINPROGRESS elsewhere. */
	while (connect(w->fd, (const struct sockaddr *)&sa, (socklen_t)sizeof(sa)) != 0) {
		if (errno == EINTR)
			continue;
		if (errno == EINPROGRESS) {
			if ((rc = workers_wait(w, POLLOUT)) != 0)
				return rc < 0 ? EX_OSERR : workers_timeout(w, "accept the connection", 0);
			if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0) {
				fprintf(stderr, "heraldctl: workers: getsockopt: %s\n", strerror(errno));
				return EX_OSERR;
			}
			return err == 0 ? 0 : workers_unreachable(w, err);
		}
		if (errno != EAGAIN)
			return workers_unreachable(w, errno);
		if ((rc = workers_left_ms(w)) <= 0)
			return rc < 0 ? EX_OSERR : workers_timeout(w, "accept the connection", 0);
		if (poll(NULL, 0, rc < WORKERS_RETRY_MS ? rc : WORKERS_RETRY_MS) < 0 && errno != EINTR) {
			fprintf(stderr, "heraldctl: workers: poll: %s\n", strerror(errno));
			return EX_OSERR;
		}
	}
	return 0;
}

/* workers_send - write the request line REQ[0..LEN) on W; 0 or an EX_ code */
static int workers_send(const struct workers_conn *w, const char *req, size_t len, int change)
{
	size_t off = 0;
	ssize_t n;
	int rc;

	while (off < len) {
		if ((n = send(w->fd, req + off, len - off, MSG_NOSIGNAL)) >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EPIPE || errno == ECONNRESET) {
			fprintf(stderr, "heraldctl: workers: heraldd at %s closed the connection before"
			    " reading the request\n", w->path);
			return EX_PROTOCOL;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			fprintf(stderr, "heraldctl: workers: send to %s: %s\n", w->path, strerror(errno));
			return EX_IOERR;
		}
		if ((rc = workers_wait(w, POLLOUT)) != 0)
			return rc < 0 ? EX_OSERR : workers_timeout(w, "read the request", change);
	}
	return 0;
}

/* workers_recv - read the answer line into BUF (SIZE bytes) on W, without its "\n", NUL
 * terminated; its length in *LEN; 0 or an EX_ code */
static int workers_recv(const struct workers_conn *w, char *buf, size_t size, size_t *len,
    int change)
{
	size_t off = 0;
	ssize_t n;
	char *nl;
	int rc;

	for (;;) {
		if ((n = recv(w->fd, buf + off, size - 1 - off, 0)) > 0) {
			buf[off + (size_t)n] = '\0';
			if ((nl = memchr(buf + off, '\n', (size_t)n)) != NULL) {
				*nl = '\0';          /* what follows the line is not the answer */
				*len = (size_t)(nl - buf);
				return 0;
			}
			off += (size_t)n;
			if (off == size - 1) {
				fprintf(stderr, "heraldctl: workers: heraldd at %s: answer longer than %zu"
				    " bytes\n", w->path, size - 1);
				return EX_PROTOCOL;
			}
			continue;
		}
		if (n == 0 || errno == ECONNRESET) {
			if (off == 0)
				fprintf(stderr, "heraldctl: workers: heraldd at %s closed the connection"
				    " without answering%s\n", w->path, change ? " (the change may have"
				    " been applied: heraldctl workers shows the counts)" : "");
			else
				fprintf(stderr, "heraldctl: workers: heraldd at %s: answer cut short after"
				    " %zu bytes (no end of line)\n", w->path, off);
			return EX_PROTOCOL;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			fprintf(stderr, "heraldctl: workers: recv from %s: %s\n", w->path, strerror(errno));
			return EX_IOERR;
		}
		if ((rc = workers_wait(w, POLLIN)) != 0)
			return rc < 0 ? EX_OSERR : workers_timeout(w, "answer", change);
	}
}

/* workers_put_text - S[0..LEN) on stderr, control characters as '?' (heraldd's text to a tty) */
static void workers_put_text(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		fputc((unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i], stderr);
}

/* workers_table - heraldd's answer O as a table, released: "heraldd pid P, generation G", an
 * empty line, then one row per channel, the ledger and the outbox worker (NAME WORKERS RUNNING
 * DRAINING STATE REASON); an answer of another shape (CHANNEL N) as KEY VALUE rows */
static void workers_table(struct json_object *o)
{
	struct json_object *chs, *rows, *v;
	static const char *const others[] = { "ledger", "outbox" };
	size_t i;

	if (!json_object_object_get_ex(o, "channels", &chs) ||
	    !json_object_is_type(chs, json_type_object)) {
		ctl_output(o, CTL_FMT_TABLE, "key");
		return;
	}
	rows = json_object_new_array();
	{
		json_object_object_foreach(chs, name, k) {
			struct json_object *row = json_object_new_object();

			json_object_object_add(row, "name", json_object_new_string(name));
			json_object_object_foreach(k, f, fv) {
				json_object_object_add(row, f, json_object_get(fv));
			}
			json_object_array_add(rows, row);
		}
	}
	for (i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		struct json_object *row;

		if (!json_object_object_get_ex(o, others[i], &v) ||
		    !json_object_is_type(v, json_type_object))
			continue;
		row = json_object_new_object();
		json_object_object_add(row, "name", json_object_new_string(others[i]));
		json_object_object_foreach(v, f, fv) {
			json_object_object_add(row, f, json_object_get(fv));
		}
		json_object_array_add(rows, row);
	}
	printf("heraldd pid %s, generation %s\n\n",
	    json_object_object_get_ex(o, "pid", &v) ? json_object_get_string(v) : "?",
	    json_object_object_get_ex(o, "generation", &v) ? json_object_get_string(v) : "?");
	json_object_put(o);
	ctl_table(rows);
}

/* workers_answer - check the answer line BUF[0..LEN) of W, print it or its error; exit code */
static int workers_answer(const struct workers_conn *w, const char *buf, size_t len,
    enum ctl_fmt fmt)
{
	struct json_object *o = NULL, *err;
	char field[128], why[256];
	const char *s;

	if (len == 0 || buf[0] != '{' ||
	    ctl_json_parse(buf, len, &o, field, sizeof(field), why, sizeof(why)) != 0 ||
	    !json_object_is_type(o, json_type_object)) {
		fprintf(stderr, "heraldctl: workers: heraldd at %s: the answer is not a JSON object",
		    w->path);
		if (len == 0 || buf[0] != '{') {
			fputs(len ? ": '" : ": an empty line\n", stderr);
			if (len != 0) {
				workers_put_text(buf, len < 40 ? len : 40);
				fputs(len > 40 ? "...'\n" : "'\n", stderr);
			}
		} else
			fprintf(stderr, ": %s\n", why);
		json_object_put(o);
		return EX_PROTOCOL;
	}
	if (json_object_object_get_ex(o, "error", &err)) {
		fputs("heraldctl: workers: ", stderr);
		if (json_object_is_type(err, json_type_string))
			workers_put_text(json_object_get_string(err),
			    (size_t)json_object_get_string_len(err));
		else {
			s = json_object_to_json_string_ext(err, JSON_C_TO_STRING_PLAIN);
			workers_put_text(s, strlen(s));
		}
		fputc('\n', stderr);
		json_object_put(o);
		return EX_DATAERR;
	}
	if (fmt == CTL_FMT_TABLE) {
		workers_table(o);
		if (fflush(stdout) != 0) {
			fprintf(stderr, "heraldctl: workers: standard output: %s\n", strerror(errno));
			return EX_IOERR;
		}
		return EX_OK;
	}
	json_object_put(o);
	if (fwrite(buf, 1, len, stdout) != len || putchar('\n') == EOF || fflush(stdout) != 0) {
		fprintf(stderr, "heraldctl: workers: standard output: %s\n", strerror(errno));
		return EX_IOERR;
	}
	return EX_OK;
}

/* workers_count - N as a worker count 0..WORKERS_MAX (digits only), or -1 */
static int workers_count(const char *s)
{
	int n = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		n = n * 10 + (*s - '0');
		if (n > WORKERS_MAX)
			return -1;
	}
	return n;
}

/* workers_request - the request line for POS[0..NP) into REQ; 0 or EX_USAGE */
static int workers_request(const char **pos, int np, char *req, size_t size)
{
	int ch, n;

	if (np == 0) {
		snprintf(req, size, "workers\n");
		return 0;
	}
	if (np == 1)
		return ctl_usage("workers", workers_usage, "CHANNEL '%s' needs N (0 to %d)", pos[0],
		    WORKERS_MAX);
	if ((ch = conf_channel_parse(pos[0])) < 0)
		return ctl_usage("workers", workers_usage, "CHANNEL '%s': unknown channel (email, sms,"
		    " push, webhook)", pos[0]);
	if ((n = workers_count(pos[1])) < 0)
		return ctl_usage("workers", workers_usage, "N '%s': not a number from 0 to %d",
		    pos[1], WORKERS_MAX);
	snprintf(req, size, "workers %s %d\n", conf_channel_name(ch), n);
	return 0;
}

/* workers_cmd - "heraldctl workers [--socket PATH] [CHANNEL N]" */
int workers_cmd(const char *conf, int argc, char **argv)
{
	const char *sock = NULL, *format = NULL, *pos[2];
	const struct ctl_opt opts[] = {
		{ "--socket", &sock, NULL }, { "--format", &format, NULL }, { NULL, NULL, NULL }
	};
	enum ctl_fmt fmt;
	struct workers_conn w = { .fd = -1 };
	struct conf c = { 0 };
	char req[WORKERS_REQ_MAX], from[PATH_MAX + 32], *answer = NULL;
	size_t len;
	int np, rc;

	if ((rc = ctl_args("workers", workers_usage, argc - 1, argv + 1, opts, pos, 2, &np)) != 0)
		return rc == CTL_HELP ? EX_OK : rc;
	if ((rc = workers_request(pos, np, req, sizeof(req))) != 0)
		return rc;
	if ((rc = ctl_fmt_parse("workers", workers_usage, format, &fmt)) != 0)
		return rc;
	if (sock == NULL) {
		if ((rc = ctl_conf(conf, &c)) != 0)
			goto out;
		sock = c.heraldd.control;
		snprintf(from, sizeof(from), "heraldd.control (%s)",
		    c.path ? c.path : "no config file");
	} else
		snprintf(from, sizeof(from), "--socket");
	w.path = sock;
	w.from = from;
	if (clock_gettime(CLOCK_MONOTONIC, &w.deadline) != 0) {
		fprintf(stderr, "heraldctl: workers: clock_gettime: %s\n", strerror(errno));
		rc = EX_OSERR;
		goto out;
	}
	w.deadline.tv_sec += WORKERS_TIMEOUT;
	if ((answer = malloc(WORKERS_ANSWER_MAX + 1)) == NULL) {
		fprintf(stderr, "heraldctl: workers: out of memory\n");
		rc = EX_OSERR;
		goto out;
	}
	if ((rc = workers_connect(&w)) != 0 ||
	    (rc = workers_send(&w, req, strlen(req), np != 0)) != 0 ||
	    (rc = workers_recv(&w, answer, WORKERS_ANSWER_MAX + 1, &len, np != 0)) != 0)
		goto out;
	rc = workers_answer(&w, answer, len, fmt);
out:
	if (w.fd >= 0 && close(w.fd) != 0 && rc == EX_OK) {
		fprintf(stderr, "heraldctl: workers: close: %s\n", strerror(errno));
		rc = EX_IOERR;
	}
	free(answer);
	conf_free(&c);
	return rc;
}
