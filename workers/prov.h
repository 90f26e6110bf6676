/* prov - the provider interface of SPEC §5: one provider per file behind an ops table
 *
 * The worker owns the loop: for each message it asks the channel's provider to build an HTTP
 * call (a libcurl easy handle), runs it on its curl multi (http.h) with many in flight, and
 * hands the finished call back to the provider, which classifies the outcome. A provider never
 * blocks, never touches the database and never acks: it only turns a rendered message into a
 * request and a response into a struct prov_result.
 */
#ifndef HERALD_PROV_H
#define HERALD_PROV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <curl/curl.h>

struct conf;
struct conf_client;
struct conf_provider;
struct json_object;
struct note;

enum prov_outcome {
	PROV_ACCEPTED,               /* done */
	PROV_PERMANENT,              /* failed; no other provider or attempt would do better */
	PROV_TRANSIENT               /* next provider in failover order, then retry (§3) */
};

/* What one delivery attempt sends: the decoded message, its resolved address and the content
 * rendered by the pipeline (§6). Borrowed for the duration of start(). */
struct prov_msg {
	const struct note *note;     /* txid, channel, user_id, client_id, category, batch_id,
	                                metadata, data, attempt */
	const char *address;         /* email address, E.164 phone, device token or webhook URL */
	const char *push_platform;   /* push: "ios" or "android"; else NULL */
	const char *subject;         /* email subject, push title, webhook event; NULL if none */
	const char *text;            /* email text part, SMS body, push body; NULL if none */
	const char *html;            /* email HTML part; NULL if none */
	struct json_object *extra;   /* push "data" object; NULL if none */
	const struct conf_client *client;  /* the sender's overrides (§5 sender identity), or NULL */
	const char *identity;        /* the same on every attempt of this (transaction, channel,
	                                device): webhook-id, Message-ID, apns-id, idempotency key */
	int64_t now;                 /* µs since the epoch: webhook-timestamp, Date */
};

/* The outcome of one attempt. */
struct prov_result {
	enum prov_outcome outcome;
	long http_status;            /* 0 when there was no HTTP answer */
	int retry_after;             /* seconds from a 429's (or 5xx's) Retry-After; -1 when none */
	char message_id[256];        /* the provider's message id ("" when none) */
	char detail[512];            /* why, for the audit row: "HTTP 503", "connect: refused",
	                                "destination 10.0.0.7 is private" (no secrets, no bodies) */
	bool suppress;               /* PROV_PERMANENT: the address itself is bad (an SMTP 5xx
	                                for the recipient): the worker adds it to the suppressions */
	bool unregistered;           /* PROV_PERMANENT: the device token is gone (FCM UNREGISTERED,
	                                APNs 410): the worker removes the device */
	bool no_pause;               /* a 429 about this address alone (APNs: one device token):
	                                the worker does not pause the provider for the others */
};

/* One call in flight: the easy handle the worker runs, and what the provider keeps for it.
 * Made only by prov_call_new (which keeps more beside it) and released by prov_call_free. */
struct prov_call {
	CURL *easy;
	struct curl_slist *headers;
	char *body;                  /* request body (owned) */
	char *resp;                  /* response body, at most PROV_RESP_MAX bytes kept */
	size_t resp_len;
	char errbuf[CURL_ERROR_SIZE];
	char refused[256];           /* set by the private-destination guard: why it refused */
	void *priv;                  /* provider-specific */
};

#define PROV_RESP_MAX 8192       /* response bytes kept for classification and the audit row */

struct prov;

struct prov_ops {
	const char *type;            /* conf_prov_type_name(): "webhook", "smtp", ... */
	/* init - ready provider P for CHANNEL from its config CP (NULL: the channel's built-in
	 * default, e.g. the webhook provider with no providers configured); 0, or -1 with ERR */
	int (*init)(struct prov *p, char *err, size_t errlen);
	/* start - build the call for M into *CALL; 0, or -1 with the outcome already in R (e.g. a
	 * permanent refusal found before sending) and *CALL NULL */
	int (*start)(struct prov *p, const struct prov_msg *m, struct prov_call **call,
		struct prov_result *r);
	/* finish - classify CALL, which ended with curl result RC, into R; frees CALL */
	void (*finish)(struct prov *p, struct prov_call *call, CURLcode rc, struct prov_result *r);
	/* accepts - whether this provider can deliver M at all (push: the device's platform,
	 * "android" for fcm, "ios" for apns); NULL: every message. The worker skips providers
	 * that do not accept a message when it picks one in failover order. */
	bool (*accepts)(const struct prov *p, const struct prov_msg *m);
	/* cleanup - release what init allocated */
	void (*cleanup)(struct prov *p);
};

struct prov {
	const struct prov_ops *ops;
	const struct conf *conf;
	int channel;                 /* enum conf_channel_id */
	const struct conf_provider *cp;  /* NULL: built-in default */
	char name[64];               /* cp->name, or the type for the default */
	void *priv;
};

/* The providers, one file each; prov.c maps a conf_prov_type to its table. */
extern const struct prov_ops prov_smtp_ops;
extern const struct prov_ops prov_http_ops;
extern const struct prov_ops prov_fcm_ops;
extern const struct prov_ops prov_apns_ops;
extern const struct prov_ops prov_webhook_ops;

/* prov_open - the providers of channel CH in failover order into *OUT (*N of them), each
 * initialised; a channel with no provider configured gets its built-in default where one
 * exists (webhook). 0, or -1 with ERR naming the provider and what is wrong. */
int prov_open(const struct conf *c, int ch, struct prov **out, size_t *n, char *err,
	size_t errlen);
/* prov_close - cleanup and free the N providers of P */
void prov_close(struct prov *p, size_t n);

/* Helpers shared by the HTTP providers (prov.c). */

/* prov_call_new - a call with a fresh easy handle: no redirects, the channel's timeout and TLS
 * verification, the response collected into call->resp, errors into call->errbuf, and, unless
 * ALLOW_PRIVATE, the private-destination guard on every socket it opens; NULL on ENOMEM */
struct prov_call *prov_call_new(const struct prov *p, long timeout_s, bool tls_verify,
	bool allow_private);
/* prov_call_free - release CALL and its easy handle (NULL is fine) */
void prov_call_free(struct prov_call *call);
/* prov_http_outcome - the §5 outcome rules for HTTP providers applied to a finished CALL with
 * curl result RC: 2xx accepted; 429, 5xx, timeouts and connection errors transient; other 4xx
 * permanent; a refusal by the guard permanent. Fills R (http_status, retry_after, detail). */
void prov_http_outcome(const struct prov_call *call, CURLcode rc, struct prov_result *r);
/* prov_addr_private - whether the socket address SA is loopback, link-local, private (RFC 1918,
 * RFC 4193), unspecified, CGNAT, multicast or an IPv4-mapped one of those (also: 0/8, 240/4 and
 * broadcast, fec0::/10, and the IPv4 inside ::/96, 64:ff9b::/96 and 2002::/16; not IP: true) */
bool prov_addr_private(const struct sockaddr *sa);
/* prov_retry_after_parse - a Retry-After value V (delay-seconds or HTTP-date) as seconds from
 * NOW (0 for a date in the past, capped at a day); -1 when V is neither */
int prov_retry_after_parse(const char *v, time_t now);

/* prov_url_ok - whether U is an absolute http(s) URL libcurl can parse */
bool prov_url_ok(const char *u);
/* prov_fail - a refusal before sending (for start()): OUTCOME with DETAIL into R; -1 */
int prov_fail(struct prov_result *r, enum prov_outcome outcome, const char *detail);
/* prov_post - make CALL a POST of its body (LEN bytes) to URL (NULL: the URL already set) with
 * its header list and herald's User-Agent */
void prov_post(struct prov_call *call, const char *url, size_t len);
/* prov_token_ok - S is non-empty printable ASCII without spaces (safe as a header value) */
bool prov_token_ok(const char *s);
/* prov_header - append the header LINE ("Name: value") to CALL's list; 0, or -1 on ENOMEM */
int prov_header(struct prov_call *call, const char *line);

/* Standard Webhooks signing (prov_webhook.c). */

/* prov_webhook_secret - the key bytes of SECRET: "whsec_<base64>" is base64-decoded, anything
 * else is used as it is (raw bytes); at most OUTLEN bytes into OUT; the key length, or -1 when
 * a whsec_ secret is not valid base64 or decodes to nothing */
int prov_webhook_secret(const char *secret, unsigned char *out, size_t outlen);
/* prov_webhook_sign - "v1,<base64 HMAC-SHA256 of ID.TS.BODY>" under SECRET into OUT (size
 * OUTLEN, PROV_WEBHOOK_SIG_MAX is enough); 0, or -1 on a bad secret */
#define PROV_WEBHOOK_SIG_MAX 64
int prov_webhook_sign(const char *secret, const char *id, long long ts, const char *body,
	size_t len, char *out, size_t outlen);

#endif
