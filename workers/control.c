/* control - heraldd's control socket (see control.h) */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "conf.h"
#include "control.h"
#include "log.h"

#define CONTROL_TIMEOUT 5.0      /* seconds a client has to send its line */

struct conn {
	struct conn *next;
	struct control *ctl;
	int fd;
	ev_io io;
	ev_timer timer;
	char buf[CONTROL_LINE_MAX + 1];
	size_t len;
};

struct control {
	struct ev_loop *loop;
	const struct control_ops *ops;
	void *arg;
	int fd;
	ev_io io;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct conn *conns;
};

/* control_conn_close - forget connection C */
static void control_conn_close(struct conn *c)
{
	struct conn **pp;

	for (pp = &c->ctl->conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	ev_io_stop(c->ctl->loop, &c->io);
	ev_timer_stop(c->ctl->loop, &c->timer);
	close(c->fd);
	free(c);
}

/* control_answer - the JSON answer to request LINE (a new object) */
static struct json_object *control_answer(struct control *ctl, char *line)
{
	struct json_object *o;
	char err[256] = "", *word[4], *save = NULL, *p;
	int n = 0, ch, count, prev;
	long v;

	for (p = strtok_r(line, " \t", &save); p != NULL && n < 4; p = strtok_r(NULL, " \t", &save))
		word[n++] = p;
	if (n == 1 && strcmp(word[0], "workers") == 0)
		return ctl->ops->status(ctl->arg);
	if (n == 3 && strcmp(word[0], "workers") == 0) {
		if ((ch = conf_channel_parse(word[1])) < 0) {
			snprintf(err, sizeof err, "unknown channel '%s' (email, sms, push, webhook)", word[1]);
		} else {
			errno = 0;
			v = strtol(word[2], &p, 10);
			if (errno != 0 || *p != '\0' || p == word[2] || v < 0 || v > 256) {
				snprintf(err, sizeof err, "workers: '%s' is not a count from 0 to 256", word[2]);
			} else {
				count = (int)v;
				if ((prev = ctl->ops->set_workers(ctl->arg, ch, count, err, sizeof err)) >= 0) {
					o = json_object_new_object();
					json_object_object_add(o, "channel", json_object_new_string(word[1]));
					json_object_object_add(o, "workers", json_object_new_int(count));
					json_object_object_add(o, "previous", json_object_new_int(prev));
					return o;
				}
			}
		}
	} else {
		snprintf(err, sizeof err, "unknown request (workers, or workers CHANNEL N)");
	}
	o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(err));
	return o;
}

/* control_reply - answer the line in C's buffer and close */
static void control_reply(struct conn *c)
{
	struct json_object *o = control_answer(c->ctl, c->buf);
	const char *s = o != NULL ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : NULL;
	struct timeval tv = { .tv_sec = 1 };
	size_t len = s != NULL ? strlen(s) : 0, off = 0;
	char *msg = s != NULL ? malloc(len + 2) : NULL;
	ssize_t w;
	int fl;

	if (msg == NULL) {
		log_error("event=oom what=control_answer");
		json_object_put(o);
		control_conn_close(c);
		return;
	}
	memcpy(msg, s, len);
	msg[len++] = '\n';
	/* a short answer: written blocking, bounded by a send timeout */
	if ((fl = fcntl(c->fd, F_GETFL)) >= 0)
		fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	while (off < len) {
		if ((w = send(c->fd, msg + off, len - off, MSG_NOSIGNAL)) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("event=control_write_failed");
			break;
		}
		off += (size_t)w;
	}
	free(msg);
	json_object_put(o);
	control_conn_close(c);
}

/* control_read_cb - collect the request line */
static void control_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = w->data;
	char *nl;
	ssize_t n;

	(void)loop;
	(void)revents;
	n = recv(c->fd, c->buf + c->len, CONTROL_LINE_MAX - c->len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		control_conn_close(c);
		return;
	}
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	if ((nl = memchr(c->buf, '\n', c->len)) != NULL) {
		*nl = '\0';
		if (nl > c->buf && nl[-1] == '\r')
			nl[-1] = '\0';
		control_reply(c);
	} else if (c->len == CONTROL_LINE_MAX || memchr(c->buf, '\0', c->len) != NULL) {
		snprintf(c->buf, sizeof c->buf, "-");   /* too long or binary: answered as unknown */
		control_reply(c);
	}
}

/* control_timeout_cb - a client that sends no line in time is dropped */
static void control_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	control_conn_close(t->data);
}

/* control_accept_cb - a new client */
static void control_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct control *ctl = w->data;
	struct conn *c;
	int fd;

	(void)revents;
	if ((fd = accept4(ctl->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
			log_warn("event=control_accept_failed path=%s", ctl->path);
		return;
	}
	if ((c = calloc(1, sizeof *c)) == NULL) {
		log_error("event=oom what=control_conn");
		close(fd);
		return;
	}
	c->ctl = ctl;
	c->fd = fd;
	ev_io_init(&c->io, control_read_cb, fd, EV_READ);
	c->io.data = c;
	ev_timer_init(&c->timer, control_timeout_cb, CONTROL_TIMEOUT, 0.);
	c->timer.data = c;
	c->next = ctl->conns;
	ctl->conns = c;
	ev_io_start(loop, &c->io);
	ev_timer_start(loop, &c->timer);
}

/* control_live - whether something answers on the socket at ADDR */
static bool control_live(const struct sockaddr_un *addr)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live;

	if (fd < 0)
		return false;
	live = connect(fd, (const struct sockaddr *)addr, sizeof *addr) == 0;
	close(fd);
	return live;
}

/* control_open - bind, chmod 0600, listen */
struct control *control_open(struct ev_loop *loop, const char *path, const struct control_ops *ops,
	void *arg, char *err, size_t errlen)
{
	struct sockaddr_un addr;
	struct control *ctl;
	mode_t old;
	int rc;

	memset(&addr, 0, sizeof addr);
	addr.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof addr.sun_path) {
		snprintf(err, errlen, "heraldd.control %s: longer than %zu bytes", path,
		    sizeof addr.sun_path - 1);
		return NULL;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);
	if ((ctl = calloc(1, sizeof *ctl)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ctl->loop = loop;
	ctl->ops = ops;
	ctl->arg = arg;
	snprintf(ctl->path, sizeof ctl->path, "%s", path);
	if ((ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "heraldd.control %s: socket: %s", path, strerror(errno));
		free(ctl);
		return NULL;
	}
	/* created 0600 from the start: no window in which others could connect */
	old = umask(0177);
	rc = bind(ctl->fd, (struct sockaddr *)&addr, sizeof addr);
	if (rc < 0 && errno == EADDRINUSE) {
		if (control_live(&addr)) {
			umask(old);
			snprintf(err, errlen, "heraldd.control %s: another heraldd answers there", path);
			goto fail;
		}
		unlink(path);                       /* stale: left by a heraldd that died */
		rc = bind(ctl->fd, (struct sockaddr *)&addr, sizeof addr);
	}
	umask(old);
	if (rc < 0) {
		snprintf(err, errlen, "heraldd.control %s: bind: %s", path, strerror(errno));
		goto fail;
	}
	if (chmod(path, 0600) < 0 || listen(ctl->fd, 16) < 0) {
		snprintf(err, errlen, "heraldd.control %s: %s", path, strerror(errno));
		unlink(path);
		goto fail;
	}
	ev_io_init(&ctl->io, control_accept_cb, ctl->fd, EV_READ);
	ctl->io.data = ctl;
	ev_io_start(loop, &ctl->io);
	return ctl;
fail:
	close(ctl->fd);
	free(ctl);
	return NULL;
}

/* control_fd - the listening socket */
int control_fd(const struct control *ctl)
{
	return ctl->fd;
}

/* control_close - stop, close every connection, optionally remove the file */
void control_close(struct control *ctl, int remove)
{
	if (ctl == NULL)
		return;
	/* the analyzer misses that control_conn_close unlinks the head before freeing it */
	while (ctl->conns != NULL)
		control_conn_close(ctl->conns);  /* NOLINT(clang-analyzer-unix.Malloc) */
	ev_io_stop(ctl->loop, &ctl->io);
	close(ctl->fd);
	if (remove)
		unlink(ctl->path);
	free(ctl);
}
