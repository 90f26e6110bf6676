/* codec - §2 requests: JSON → validated struct request → one struct note per (recipient, channel)
 * → JSON wire body (version 1) → back, strictly; and the producer's reply lines */
#ifndef HERALD_CODEC_H
#define HERALD_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "txid.h"

struct json_object;

enum codec_channel {
	CODEC_CH_EMAIL,
	CODEC_CH_SMS,
	CODEC_CH_PUSH,
	CODEC_CH_WEBHOOK,
	CODEC_CH_COUNT
};
#define CODEC_CH_BIT(c) (1u << (c))

enum codec_rcpt {
	CODEC_RCPT_USER,                 /* "user_id" */
	CODEC_RCPT_USERS,                /* "user_ids" */
	CODEC_RCPT_TO                    /* "to": addresses of someone not in the user table */
};

#define CODEC_WIRE_VERSION 1         /* "v" of the wire body */
#define CODEC_MAX_REQUEST 65536      /* defaults of struct codec_limits */
#define CODEC_MAX_METADATA 2048
#define CODEC_MAX_USER_IDS 1000
#define CODEC_MAX_NOTE (4u << 20)    /* largest wire body codec_note_decode takes */
#define CODEC_MAX_TTL 31536000       /* seconds (365 days) */
#define CODEC_PRIORITY_LOW 1
#define CODEC_PRIORITY_NORMAL 4
#define CODEC_PRIORITY_HIGH 8
#define CODEC_PRIORITY_MAX 9

/* Limits for codec_request_parse; a NULL pointer, a zero member or a NULL pointer member takes
 * the default. */
struct codec_limits {
	size_t max_request;              /* bytes, CODEC_MAX_REQUEST */
	size_t max_metadata;             /* bytes of "metadata" serialized, CODEC_MAX_METADATA */
	size_t max_user_ids;             /* CODEC_MAX_USER_IDS */
	const char *const *categories;   /* NULL-terminated allowed categories; default transactional,
	                                    marketing, reminders, notifications */
	const char *default_category;    /* when the request names none; "notifications" */
};

struct codec_error {
	char field[128];                 /* dotted path: "channels.email.subject", "user_ids[3]",
	                                    "to.phone"; "" = the whole request */
	char message[256];
};

/* The "to" addresses; NULL when absent. */
struct codec_to {
	const char *email;
	const char *phone;               /* E.164 */
	const char *push_platform;       /* "ios" or "android", with push_token */
	const char *push_token;
	const char *webhook_url;
};

/* A validated request. Strings and objects are borrowed from ROOT and live until
 * codec_request_free. */
struct request {
	struct json_object *root;
	enum codec_rcpt rcpt;
	const char **user_ids;           /* USER: 1, USERS: n (request order, no duplicates), TO: 0 */
	size_t n_user_ids;
	struct codec_to to;              /* with CODEC_RCPT_TO */
	unsigned channels;               /* CODEC_CH_BIT() of each requested channel */
	struct json_object *content[CODEC_CH_COUNT];  /* requested: its content object ({} possible);
	                                                 not requested: NULL */
	const char *template_name;       /* NULL = inline content only */
	struct json_object *data;        /* object or NULL */
	const char *category;            /* always set (the default when absent) */
	int priority;                    /* 0-9, or -1: the category's default */
	const char *idempotency_key;     /* NULL when absent, as are the two below */
	const char *client_id;
	const char *batch_id;
	struct json_object *metadata;    /* object or NULL */
	int64_t send_at;                 /* microseconds since the epoch, 0 = none */
	int64_t expires_at;              /* 0 = none */
	int64_t ttl;                     /* seconds, 0 = none; codec_request_split turns it into
	                                    expires_at */
};

/* One message on the broker: one channel of one recipient. Owns its strings; the json objects
 * are reference-counted (json-c: not to be shared between threads). */
struct note {
	char txid[TXID_LEN + 1];         /* shared by the recipient's channels */
	enum codec_channel channel;
	char *user_id;                   /* NULL when addressed with "to" */
	char *address;                   /* with "to": the channel's email, phone, push token or
	                                    webhook URL; NULL with user_id */
	char *push_platform;             /* with a "to" push token: "ios" or "android"; else NULL */
	struct json_object *content;     /* the channel's inline content object, never NULL */
	char *template_name;             /* NULL = none */
	struct json_object *data;        /* NULL = none */
	char *category;
	int priority;                    /* 0-9 */
	char *idempotency_key;           /* NULL = none, as are the two below */
	char *client_id;
	char *batch_id;
	struct json_object *metadata;    /* NULL = none */
	int64_t send_at;                 /* microseconds since the epoch, 0 = none */
	int64_t expires_at;              /* 0 = none */
	int64_t accepted_at;             /* when the producer split the request */
	unsigned attempt;                /* 1 for the first delivery attempt */
};

/* codec_channel_name - "email", "sms", "push" or "webhook"; NULL when out of range */
const char *codec_channel_name(enum codec_channel c);
/* codec_channel_parse - the channel named S (length LEN), or -1 */
int codec_channel_parse(const char *s, size_t len);

/* codec_request_parse - validate the §2 request BUF[0..LEN) into *OUT; 0, or -1 with ERR
 * naming the field (errno ENOMEM when memory ran out) */
int codec_request_parse(const char *buf, size_t len, const struct codec_limits *lim,
	struct request **out, struct codec_error *err);
/* codec_request_free - release R (NULL is fine) */
void codec_request_free(struct request *r);

/* codec_request_split - one note per (recipient, channel), recipient-major in request order,
 * channels in enum order; one fresh txid per recipient; priority from R, else PRIORITY_DEFAULT
 * (0-9, the category's); expires_at = now + ttl; accepted_at = now; attempt 1. 0 or -1 */
int codec_request_split(const struct request *r, int priority_default, struct note ***notes,
	size_t *n);
/* codec_notes_free - release the N notes of NOTES and the array itself */
void codec_notes_free(struct note **notes, size_t n);

/* codec_note_encode - the wire body of N as a malloc'd NUL-terminated JSON text in *BUF, its
 * length in *LEN; 0 or -1 */
int codec_note_encode(const struct note *n, char **buf, size_t *len);
/* codec_note_decode - strict inverse of codec_note_encode: anything encode would not produce is
 * refused with ERR naming the field (a poison message to park); 0 or -1 */
int codec_note_decode(const char *buf, size_t len, struct note **out, struct codec_error *err);
/* codec_note_free - release N (NULL is fine) */
void codec_note_free(struct note *n);

/* codec_reply_received - the producer's answer for R split into NOTES: {"status":"received",
 * "transaction_id":...}, or "transaction_ids" keyed by user id for user_ids; malloc'd, no
 * newline; NULL on error */
char *codec_reply_received(const struct request *r, struct note *const *notes, size_t n);
/* The address and name rules of the request format, for every place that takes one (heraldctl):
 * codec_email_ok - a plain addr-spec local@dotted.domain, at most 254 bytes
 * codec_phone_ok - E.164: '+', then 2-15 digits, the first 1-9
 * codec_url_ok   - an http:// or https:// URL with a host, an optional port, no credentials,
 *                  spaces or control characters, at most 2048 bytes
 * codec_name_ok  - a template, client or category name: [A-Za-z0-9_.-]{1,64} */
bool codec_email_ok(const char *s);
bool codec_phone_ok(const char *s);
bool codec_url_ok(const char *s);
bool codec_name_ok(const char *s);

/* codec_reply_error - {"error":true,"status":"invalid_request","message":...,"field":...}, with
 * "line":LINE when LINE > 0; malloc'd, no newline; NULL on error */
char *codec_reply_error(const struct codec_error *e, long line);

#endif
