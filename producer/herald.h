/* herald.h - libherald: validate §2 notification requests and hand them to the broker with
 * publisher confirms. Link with `pkg-config --cflags --libs herald`. */
#ifndef HERALD_H
#define HERALD_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Result codes; herald_strerror names each. */
enum herald_status {
	HERALD_OK = 0,          /* received: every message confirmed */
	HERALD_EINVAL,          /* invalid request (the reply says which field) */
	HERALD_ECONFIG,         /* configuration error */
	HERALD_ECONNECT,        /* broker unreachable, login refused or connection lost */
	HERALD_ETOPOLOGY,       /* declaring the topology failed (a migration may be needed) */
	HERALD_ETIMEOUT,        /* no confirm within broker.confirm_timeout */
	HERALD_EBLOCKED,        /* the broker blocked publishing (resource alarm) too long */
	HERALD_ENACK,           /* the broker refused a message (basic.nack) */
	HERALD_ERETURN,         /* a message could not be routed (basic.return) */
	HERALD_ENOMEM,          /* out of memory */
	HERALD_EUSAGE           /* the API was misused (e.g. a NULL argument) */
};

struct herald;

/* herald_reply_cb - called once per submitted request, in submission order: STATUS, the §2
 * reply line (no newline; borrowed for the call), the LINE given to herald_submit and ARG */
typedef void herald_reply_cb(int status, const char *reply, long line, void *arg);

/* herald_open - read the config (PATH, else $HERALD_CONFIG, else /etc/herald/herald.conf; the
 * §12 environment overrides it), connect within broker.connect_timeout and declare the
 * topology. On error returns the status, *OUT is NULL and ERR (when not NULL) says why. */
int herald_open(const char *path, struct herald **out, char *err, size_t errlen);
/* A lost connection is reopened (up to 3 tries, a second apart) and every unconfirmed message
 * resent with the same transaction and message ids. Once a call returned a connection error
 * (HERALD_ECONNECT, HERALD_ETIMEOUT, HERALD_EBLOCKED), H stays failed: close it and open again. */

/* herald_close - wait for nothing, close the connection and free H (NULL is fine) */
void herald_close(struct herald *h);

/* herald_send - validate and publish the JSON request BUF[0..LEN) and wait for its confirms;
 * *REPLY is the malloc'd §2 reply (free() it), also for invalid requests and broker errors */
int herald_send(struct herald *h, const char *buf, size_t len, char **reply);

/* herald_submit - publish a request without waiting: at most herald_window messages stay
 * unconfirmed, so this may wait for confirms first. CB runs from herald_submit or herald_flush
 * with the request's reply; LINE > 0 adds "line":LINE to error replies. Returns HERALD_OK or
 * the connection's error (every request still pending then gets its callback with it). */
int herald_submit(struct herald *h, const char *buf, size_t len, long line, herald_reply_cb *cb,
	void *arg);
/* herald_flush - wait until every submitted request has had its callback; HERALD_OK or the
 * connection's error */
int herald_flush(struct herald *h);
/* herald_set_window - unconfirmed messages allowed in flight (default 1000, at least 2) */
void herald_set_window(struct herald *h, unsigned n);

/* herald_strerror - a short text for STATUS */
const char *herald_strerror(int status);
/* herald_error - the last error of H in words ("" when none) */
const char *herald_error(const struct herald *h);

#ifdef __cplusplus
}
#endif

#endif
