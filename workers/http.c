/* http - libcurl's multi interface on a libev loop (curl's evhiperfifo.c, with its three bugs
 * fixed: the timeout is ms / 1000.0, the timer callback only arms the ev_timer and never calls
 * back into libcurl, and socket events are passed as CURL_CSELECT_* flags)
 *
 * While a transfer runs, http borrows the easy handle's CURLOPT_PRIVATE for its own record and
 * puts the caller's value back before the done callback runs, so the caller may keep its own
 * pointer there (the worker does) and read it with CURLINFO_PRIVATE in the callback.
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>

#include <ev.h>

#include "http.h"
#include "log.h"

/* One socket libcurl asked us to watch. */
struct http_sock {
	ev_io io;
	struct http *h;
	struct http_sock *prev, *next;
};

/* One transfer in flight. */
struct http_xfer {
	CURL *easy;
	http_done_cb *cb;
	void *arg;
	char *saved_private;         /* the caller's CURLOPT_PRIVATE, restored before cb */
	struct http_xfer *prev, *next;
};

struct http {
	struct ev_loop *loop;
	CURLM *multi;
	ev_timer timer;
	struct http_sock *socks;
	struct http_xfer *xfers;
	size_t running;
	bool closing;
};

/* http_xfer_unlink - take X off H's list */
static void http_xfer_unlink(struct http *h, struct http_xfer *x)
{
	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		h->xfers = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	h->running--;
}

/* http_end - X is out of the multi: give EASY back to its owner and tell it RC */
static void http_end(struct http *h, struct http_xfer *x, CURLcode rc)
{
	CURL *easy = x->easy;
	http_done_cb *cb = x->cb;
	void *arg = x->arg;

	http_xfer_unlink(h, x);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, x->saved_private);
	free(x);
	cb(easy, rc, arg);
}

/* http_check_info - run the callback of every finished transfer */
static void http_check_info(struct http *h)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
		CURL *easy = msg->easy_handle;
		CURLcode rc = msg->data.result;
		struct http_xfer *x = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		/* msg is invalid once the handle is removed: everything is copied above */
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
		curl_multi_remove_handle(h->multi, easy);
		if (x == NULL) {
			log_warnx("event=http_orphan msg=\"finished transfer without a record\"");
			continue;
		}
		http_end(h, x, rc);
	}
}

/* http_action - tell libcurl about FD (or the timeout) and collect what finished */
static void http_action(struct http *h, curl_socket_t fd, int flags)
{
	CURLMcode mc;
	int running;

	mc = curl_multi_socket_action(h->multi, fd, flags, &running);
	if (mc != CURLM_OK)
		log_warnx("event=http_error call=curl_multi_socket_action err=\"%s\"",
		    curl_multi_strerror(mc));
	http_check_info(h);
}

/* http_timer_cb - libcurl's timeout expired */
static void http_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	http_action(t->data, CURL_SOCKET_TIMEOUT, 0);
}

/* http_io_cb - a watched socket is ready */
static void http_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_sock *s = w->data;
	int flags = 0;

	(void)loop;
	if (revents & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (revents & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	if (revents & EV_ERROR)
		flags |= CURL_CSELECT_ERR;
	http_action(s->h, w->fd, flags);
}

/* http_multi_timer_cb - CURLMOPT_TIMERFUNCTION: only (re)arm or stop the ev_timer; calling
 * back into libcurl from here is not allowed */
static int http_multi_timer_cb(CURLM *multi, long ms, void *userp)
{
	struct http *h = userp;

	(void)multi;
	ev_timer_stop(h->loop, &h->timer);
	if (ms >= 0) {
		ev_timer_set(&h->timer, (double)ms / 1000.0, 0.);
		ev_timer_start(h->loop, &h->timer);
	}
	return 0;
}

/* http_sock_free - stop and release S */
static void http_sock_free(struct http *h, struct http_sock *s)
{
	ev_io_stop(h->loop, &s->io);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		h->socks = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	free(s);
}

/* http_multi_sock_cb - CURLMOPT_SOCKETFUNCTION: watch FD for WHAT, or stop watching it */
static int http_multi_sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *sockp)
{
	struct http *h = userp;
	struct http_sock *s = sockp;
	int kind;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			http_sock_free(h, s);
			curl_multi_assign(h->multi, fd, NULL);
		}
		return 0;
	}
	kind = ((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
	if (s == NULL) {
		if ((s = calloc(1, sizeof *s)) == NULL) {
			log_warnx("event=http_error msg=\"out of memory for a socket watcher\"");
			return -1;
		}
		s->h = h;
		s->next = h->socks;
		if (h->socks != NULL)
			h->socks->prev = s;
		h->socks = s;
		ev_io_init(&s->io, http_io_cb, fd, kind);
		s->io.data = s;
		curl_multi_assign(h->multi, fd, s);
	} else {
		ev_io_stop(h->loop, &s->io);
		ev_io_set(&s->io, fd, kind);
	}
	ev_io_start(h->loop, &s->io);
	return 0;
}

struct http *http_new(struct ev_loop *loop)
{
	struct http *h = calloc(1, sizeof *h);

	if (h == NULL) {
		log_warnx("event=http_error msg=\"out of memory\"");
		return NULL;
	}
	if ((h->multi = curl_multi_init()) == NULL) {
		log_warnx("event=http_error call=curl_multi_init");
		free(h);
		return NULL;
	}
	h->loop = loop;
	ev_timer_init(&h->timer, http_timer_cb, 0., 0.);
	h->timer.data = h;
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, http_multi_sock_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, http_multi_timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	return h;
}

int http_add(struct http *h, CURL *easy, http_done_cb *cb, void *arg)
{
	struct http_xfer *x;
	CURLMcode mc;

	if (h->closing) {
		log_warnx("event=http_error msg=\"transfer added while closing\"");
		return -1;
	}
	if ((x = calloc(1, sizeof *x)) == NULL) {
		log_warnx("event=http_error msg=\"out of memory\"");
		return -1;
	}
	x->easy = easy;
	x->cb = cb;
	x->arg = arg;
	curl_easy_getinfo(easy, CURLINFO_PRIVATE, &x->saved_private);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)x);
	/* adding only arms the timer (timeout 0): the transfer starts, and may end, from the
	 * loop, so CB never runs from inside http_add */
	if ((mc = curl_multi_add_handle(h->multi, easy)) != CURLM_OK) {
		log_warnx("event=http_error call=curl_multi_add_handle err=\"%s\"",
		    curl_multi_strerror(mc));
		curl_easy_setopt(easy, CURLOPT_PRIVATE, x->saved_private);
		free(x);
		return -1;
	}
	x->next = h->xfers;
	if (h->xfers != NULL)
		h->xfers->prev = x;
	h->xfers = x;
	h->running++;
	return 0;
}

size_t http_running(const struct http *h)
{
	return h->running;
}

void http_free(struct http *h)
{
	if (h == NULL)
		return;
	h->closing = true;
	while (h->xfers != NULL) {
		struct http_xfer *x = h->xfers;

		/* http_end and http_sock_free unlink the head before freeing it: the analyzer misses it */
		curl_multi_remove_handle(h->multi, x->easy);   /* NOLINT(clang-analyzer-unix.Malloc) */
		http_end(h, x, CURLE_ABORTED_BY_CALLBACK);
	}
	curl_multi_cleanup(h->multi);
	while (h->socks != NULL)
		http_sock_free(h, h->socks);    /* NOLINT(clang-analyzer-unix.Malloc) */
	ev_timer_stop(h->loop, &h->timer);
	free(h);
}
