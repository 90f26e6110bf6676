/* codec - §2 requests: JSON → validated struct request → one struct note per (recipient, channel)
 * → JSON wire body (version 1) → back, strictly; and the producer's reply lines */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <json-c/json_object_iterator.h>

#include "codec.h"
#include "jsoncheck.h"
#include "rfc3339.h"
#include "txid.h"

#define CX_NOIDX SIZE_MAX
#define CX_NAME_MAX 64               /* template, client_id, category */
#define CX_USER_ID_MAX 191           /* bytes: users.user_id is VARCHAR(191) */
#define CX_IDEMPOTENCY_MAX 255
#define CX_BATCH_MAX 128
#define CX_EMAIL_MAX 254
#define CX_URL_MAX 2048
#define CX_TOKEN_MAX 512             /* printable ASCII: devices.token */
#define CX_ATTEMPT_MAX 1000000
#define CX_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static const char *const cx_channels[CODEC_CH_COUNT] = { "email", "sms", "push", "webhook" };
/* the "to" key holding each channel's address */
static const char *const cx_to_keys[CODEC_CH_COUNT] = { "email", "phone", "push_token", "webhook_url" };
static const char *const cx_default_categories[] = {
	"transactional", "marketing", "reminders", "notifications", NULL
};
static const char *const cx_request_keys[] = {
	"user_id", "user_ids", "to", "channels", "template", "data", "category", "priority",
	"idempotency_key", "client_id", "batch_id", "metadata", "send_at", "expires_at", "ttl", NULL
};
static const char *const cx_note_keys[] = {
	"v", "txid", "channel", "user_id", "to", "content", "template", "data", "category",
	"priority", "idempotency_key", "client_id", "batch_id", "metadata", "send_at", "expires_at",
	"accepted_at", "attempt", NULL
};

/* Content keys of each channel and their types. */
struct cx_key {
	const char *name;
	enum json_type type;
};
static const struct cx_key cx_content_keys[CODEC_CH_COUNT][4] = {
	[CODEC_CH_EMAIL] = { { "subject", json_type_string }, { "body", json_type_string },
		{ "html", json_type_string }, { NULL, json_type_null } },
	[CODEC_CH_SMS] = { { "body", json_type_string }, { NULL, json_type_null } },
	[CODEC_CH_PUSH] = { { "title", json_type_string }, { "body", json_type_string },
		{ "data", json_type_object }, { NULL, json_type_null } },
	[CODEC_CH_WEBHOOK] = { { "event", json_type_string }, { "data", json_type_object },
		{ NULL, json_type_null } },
};

/* cx_vfail - fill E with the field PREFIX[.KEY | [IDX]] and the message; returns -1 */
static int cx_vfail(struct codec_error *e, const char *prefix, const char *key, size_t idx,
	const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
static int cx_vfail(struct codec_error *e, const char *prefix, const char *key, size_t idx,
	const char *fmt, va_list ap)
{
	if (e == NULL)
		return -1;
	e->field[0] = '\0';
	if (prefix != NULL && prefix[0] != '\0')
		jsoncheck_path_append(e->field, sizeof(e->field), prefix, 0);
	if (key != NULL)
		jsoncheck_path_append(e->field, sizeof(e->field), key, 0);
	else if (idx != CX_NOIDX)
		jsoncheck_path_append(e->field, sizeof(e->field), NULL, idx);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	return -1;
}

/* cx_fail - error on the field PREFIX.KEY (either may be NULL or ""); returns -1 */
static int cx_fail(struct codec_error *e, const char *prefix, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int cx_fail(struct codec_error *e, const char *prefix, const char *key, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cx_vfail(e, prefix, key, CX_NOIDX, fmt, ap);
	va_end(ap);
	return -1;
}

/* cx_fail_at - error on the array element PREFIX[IDX]; returns -1 */
static int cx_fail_at(struct codec_error *e, const char *prefix, size_t idx, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int cx_fail_at(struct codec_error *e, const char *prefix, size_t idx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cx_vfail(e, prefix, NULL, idx, fmt, ap);
	va_end(ap);
	return -1;
}

/* cx_nomem - error for a failed allocation, errno ENOMEM; returns -1 */
static int cx_nomem(struct codec_error *e)
{
	cx_fail(e, NULL, NULL, "out of memory");
	errno = ENOMEM;
	return -1;
}

/* codec_channel_name - "email", "sms", "push" or "webhook"; NULL when out of range */
const char *codec_channel_name(enum codec_channel c)
{
	return (unsigned)c < CODEC_CH_COUNT ? cx_channels[c] : NULL;
}

/* codec_channel_parse - the channel named S (length LEN), or -1 */
int codec_channel_parse(const char *s, size_t len)
{
	int c;

	for (c = 0; c < CODEC_CH_COUNT; c++)
		if (strlen(cx_channels[c]) == len && memcmp(cx_channels[c], s, len) == 0)
			return c;
	return -1;
}

/* cx_in_list - true when S is one of the NULL-terminated LIST */
static bool cx_in_list(const char *const *list, const char *s)
{
	for (; *list != NULL; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

/* cx_has_ctl - true when S holds a C0 or C1 control character or DEL */
static bool cx_has_ctl(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return true;
		if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			return true;
	}
	return false;
}

/* codec_name_ok - true for [A-Za-z0-9_.-]{1,64} */
bool codec_name_ok(const char *s)
{
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");

	return n > 0 && n <= CX_NAME_MAX && s[n] == '\0';
}

/* codec_email_ok - a sane addr-spec: local@dotted.domain, no spaces, controls or specials */
bool codec_email_ok(const char *s)
{
	const char *at = strchr(s, '@'), *p, *label;
	size_t len = strlen(s);

	if (len > CX_EMAIL_MAX || at == NULL || at == s || strchr(at + 1, '@') != NULL)
		return false;
	if (at - s > 64 || cx_has_ctl(s) || s[0] == '.' || at[-1] == '.')
		return false;
	for (p = s; p < at; p++)
		if (*p == ' ' || strchr("()<>[]:;,\\\"", *p) != NULL || (p[0] == '.' && p[1] == '.'))
			return false;
	if (strchr(at + 1, '.') == NULL)
		return false;
	for (label = p = at + 1;; p++) {
		if (*p == '.' || *p == '\0') {
			if (p == label || p - label > 63 || label[0] == '-' || p[-1] == '-')
				return false;
			if (*p == '\0')
				return true;
			label = p + 1;
		} else if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		             (*p >= '0' && *p <= '9') || *p == '-' || (unsigned char)*p >= 0x80)) {
			return false;
		}
	}
}

/* codec_phone_ok - E.164: '+', then 2-15 digits, the first 1-9 */
bool codec_phone_ok(const char *s)
{
	size_t n;

	if (s[0] != '+' || s[1] < '1' || s[1] > '9')
		return false;
	n = strspn(s + 1, "0123456789");
	return n >= 2 && n <= 15 && s[1 + n] == '\0';
}

/* codec_url_ok - an http:// or https:// URL with a host, optional port, no spaces or controls */
bool codec_url_ok(const char *s)
{
	const char *host, *end, *p;
	size_t n;

	if (strlen(s) > CX_URL_MAX || cx_has_ctl(s) || strpbrk(s, " \"<>\\^`{|}") != NULL)
		return false;
	if (strncasecmp(s, "http://", 7) == 0)
		host = s + 7;
	else if (strncasecmp(s, "https://", 8) == 0)
		host = s + 8;
	else
		return false;
	end = host + strcspn(host, "/?#");
	if (memchr(host, '@', (size_t)(end - host)) != NULL)
		return false;                      /* credentials would be stored and logged */
	if (host < end && *host == '[') {
		p = memchr(host, ']', (size_t)(end - host));
		if (p == NULL || p == host + 1)
			return false;
		p++;
	} else {
		for (p = host; p < end && *p != ':'; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
			      (unsigned char)*p >= 0x80))
				return false;
		if (p == host)
			return false;
	}
	if (p == end)
		return true;
	if (*p != ':')
		return false;
	n = strspn(p + 1, "0123456789");
	/* NOLINTNEXTLINE(cert-err34-c): 1 to 5 digits, checked above, cannot fail to convert */
	return n >= 1 && n <= 5 && p + 1 + n == end && atol(p + 1) >= 1 && atol(p + 1) <= 65535;
}

/* cx_text - V as a string of MIN..MAX bytes without control characters or a trailing space
 * into *OUT; an error names PREFIX.KEY, or PREFIX[IDX] when KEY is NULL; 0 or -1 */
static int cx_text(struct codec_error *e, const char *prefix, const char *key, size_t idx,
	struct json_object *v, size_t min, size_t max, const char **out)
{
	char why[64];
	size_t len;

	if (!json_object_is_type(v, json_type_string)) {
		snprintf(why, sizeof(why), "must be a string");
	} else if ((len = (size_t)json_object_get_string_len(v)) < min) {
		snprintf(why, sizeof(why), "must not be empty");
	} else if (len > max) {
		snprintf(why, sizeof(why), "too long (at most %zu bytes)", max);
	} else if (cx_has_ctl(json_object_get_string(v))) {
		snprintf(why, sizeof(why), "must not contain control characters");
	} else if (len > 0 && json_object_get_string(v)[len - 1] == ' ') {
		/* the database's collations pad with spaces: "a " would be "a" there */
		snprintf(why, sizeof(why), "must not end with a space");
	} else {
		*out = json_object_get_string(v);
		return 0;
	}
	if (key == NULL)
		return cx_fail_at(e, prefix, idx, "%s", why);
	return cx_fail(e, prefix, key, "%s", why);
}

/* cx_name - V as a [A-Za-z0-9_.-]{1,64} name into *OUT; 0 or -1 */
static int cx_name(struct codec_error *e, const char *key, struct json_object *v, const char **out)
{
	if (!json_object_is_type(v, json_type_string))
		return cx_fail(e, NULL, key, "must be a string");
	if (!codec_name_ok(json_object_get_string(v)))
		return cx_fail(e, NULL, key, "must be 1-64 characters of A-Z a-z 0-9 _ . -");
	*out = json_object_get_string(v);
	return 0;
}

/* cx_unknown_key - the first key of object O that LIST lacks, or NULL */
static const char *cx_unknown_key(struct json_object *o, const char *const *list)
{
	struct json_object_iterator it = json_object_iter_begin(o), end = json_object_iter_end(o);

	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
		if (!cx_in_list(list, json_object_iter_peek_name(&it)))
			return json_object_iter_peek_name(&it);
	return NULL;
}

/* cx_nonempty - true when O has the string KEY and it is not empty */
static bool cx_nonempty(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_get_string_len(v) > 0;
}

/* cx_content - check channel C's content object O at PREFIX; without a template it must be
 * self-sufficient; 0 or -1 */
static int cx_content(struct codec_error *e, const char *prefix, enum codec_channel c,
	struct json_object *o, bool templated)
{
	const struct cx_key *k;
	struct json_object_iterator it, end;
	struct json_object *v;

	if (!json_object_is_type(o, json_type_object))
		return cx_fail(e, prefix, NULL, "must be an object");
	it = json_object_iter_begin(o);
	end = json_object_iter_end(o);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *name = json_object_iter_peek_name(&it);

		for (k = cx_content_keys[c]; k->name != NULL; k++)
			if (strcmp(k->name, name) == 0)
				break;
		if (k->name == NULL)
			return cx_fail(e, prefix, name, "unknown key for the %s channel", cx_channels[c]);
		if (!json_object_is_type(json_object_iter_peek_value(&it), k->type))
			return cx_fail(e, prefix, name, "must be %s",
				k->type == json_type_string ? "a string" : "an object");
	}
	if (json_object_object_get_ex(o, "subject", &v) && cx_has_ctl(json_object_get_string(v)))
		return cx_fail(e, prefix, "subject", "must not contain control characters");
	if (json_object_object_get_ex(o, "event", &v) && cx_has_ctl(json_object_get_string(v)))
		return cx_fail(e, prefix, "event", "must not contain control characters");
	if (templated)
		return 0;
	switch (c) {
	case CODEC_CH_EMAIL:
		if (!cx_nonempty(o, "subject"))
			return cx_fail(e, prefix, "subject", "required without a template");
		if (!cx_nonempty(o, "body") && !cx_nonempty(o, "html"))
			return cx_fail(e, prefix, "body", "body or html required without a template");
		break;
	case CODEC_CH_SMS:
		if (!cx_nonempty(o, "body"))
			return cx_fail(e, prefix, "body", "required without a template");
		break;
	case CODEC_CH_PUSH:
		if (!cx_nonempty(o, "title") && !cx_nonempty(o, "body"))
			return cx_fail(e, prefix, "title", "title or body required without a template");
		break;
	default:
		if (!cx_nonempty(o, "event"))
			return cx_fail(e, prefix, "event", "required without a template");
		break;
	}
	return 0;
}

/* cx_push_token - check {"platform":"ios"|"android","token":"..."} at PREFIX; 0 or -1 */
static int cx_push_token(struct codec_error *e, const char *prefix, struct json_object *o,
	const char **platform, const char **token)
{
	static const char *const keys[] = { "platform", "token", NULL };
	const char *bad, *p;
	struct json_object *v;

	if (!json_object_is_type(o, json_type_object))
		return cx_fail(e, prefix, NULL, "must be an object with platform and token");
	if ((bad = cx_unknown_key(o, keys)) != NULL)
		return cx_fail(e, prefix, bad, "unknown key");
	if (!json_object_object_get_ex(o, "platform", &v))
		return cx_fail(e, prefix, "platform", "required");
	p = json_object_get_string(v);
	if (!json_object_is_type(v, json_type_string) ||
	    (strcmp(p, "ios") != 0 && strcmp(p, "android") != 0))
		return cx_fail(e, prefix, "platform", "must be \"ios\" or \"android\"");
	if (!json_object_object_get_ex(o, "token", &v))
		return cx_fail(e, prefix, "token", "required");
	if (cx_text(e, prefix, "token", CX_NOIDX, v, 1, CX_TOKEN_MAX, token) < 0)
		return -1;
	if ((*token)[strspn(*token, "!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~")] != '\0')
		return cx_fail(e, prefix, "token", "must be printable ASCII without spaces");
	*platform = p;
	return 0;
}

/* cx_address - check the "to" address KEY (value V) into TO; 0 or -1 */
static int cx_address(struct codec_error *e, const char *key, struct json_object *v,
	struct codec_to *to)
{
	const char *s;

	if (strcmp(key, "push_token") == 0)
		return cx_push_token(e, "to.push_token", v, &to->push_platform, &to->push_token);
	if (!json_object_is_type(v, json_type_string))
		return cx_fail(e, "to", key, "must be a string");
	s = json_object_get_string(v);
	if (strcmp(key, "email") == 0) {
		if (!codec_email_ok(s))
			return cx_fail(e, "to", key, "not a valid email address");
		to->email = s;
	} else if (strcmp(key, "phone") == 0) {
		if (!codec_phone_ok(s))
			return cx_fail(e, "to", key, "not an E.164 phone number (+ and 2-15 digits)");
		to->phone = s;
	} else if (strcmp(key, "webhook_url") == 0) {
		if (!codec_url_ok(s))
			return cx_fail(e, "to", key, "not an http:// or https:// URL with a host");
		to->webhook_url = s;
	} else {
		return cx_fail(e, "to", key, "unknown key");
	}
	return 0;
}

/* cx_to_has - true when TO holds the address channel C needs */
static bool cx_to_has(const struct codec_to *to, enum codec_channel c)
{
	switch (c) {
	case CODEC_CH_EMAIL:
		return to->email != NULL;
	case CODEC_CH_SMS:
		return to->phone != NULL;
	case CODEC_CH_PUSH:
		return to->push_token != NULL;
	default:
		return to->webhook_url != NULL;
	}
}

/* cx_skip_ws - the offset of the first non-whitespace byte of BUF[POS..LEN), or LEN */
static size_t cx_skip_ws(const char *buf, size_t len, size_t pos)
{
	while (pos < len && (buf[pos] == ' ' || buf[pos] == '\t' || buf[pos] == '\n' ||
	                     buf[pos] == '\r'))
		pos++;
	return pos;
}

/* cx_parse_json - scan BUF with jsoncheck, then parse it with json-c into an object; 0 or -1 */
static int cx_parse_json(const char *buf, size_t len, const char *what, struct json_object **out,
	struct codec_error *e)
{
	struct jsoncheck_error je;
	struct json_tokener *tok;
	struct json_object *o;
	size_t end;

	*out = NULL;
	if (jsoncheck_scan(buf, len, JSONCHECK_DEPTH, &je) < 0) {
		if (errno == ENOMEM)
			return cx_nomem(e);
		if (e != NULL) {
			memcpy(e->field, je.path, sizeof(je.path));
			snprintf(e->message, sizeof(e->message), "%s", je.message);
		}
		return -1;
	}
	if (buf[cx_skip_ws(buf, len, 0)] != '{')   /* (json-c cannot end a bare number) */
		return cx_fail(e, NULL, NULL, "%s must be a JSON object", what);
	tok = json_tokener_new_ex(JSONCHECK_DEPTH + 2);
	if (tok == NULL)
		return cx_nomem(e);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, buf, (int)len);
	end = json_tokener_get_parse_end(tok);
	if (o == NULL || json_tokener_get_error(tok) != json_tokener_success) {
		cx_fail(e, NULL, NULL, "invalid JSON: %s",
			json_tokener_error_desc(json_tokener_get_error(tok)));
		json_tokener_free(tok);
		json_object_put(o);
		return -1;
	}
	json_tokener_free(tok);
	if (cx_skip_ws(buf, len, end) < len) {   /* jsoncheck saw it end; be sure json-c did */
		json_object_put(o);
		return cx_fail(e, NULL, NULL, "unexpected data after the JSON value");
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return cx_fail(e, NULL, NULL, "%s must be a JSON object", what);
	}
	*out = o;
	return 0;
}

/* cx_time - V, an RFC 3339 string, in microseconds into *OUT; 0 or -1 */
static int cx_time(struct codec_error *e, const char *key, struct json_object *v, int64_t *out)
{
	if (!json_object_is_type(v, json_type_string))
		return cx_fail(e, NULL, key, "must be an RFC 3339 time string");
	if (rfc3339_parse(json_object_get_string(v), out) < 0)
		return cx_fail(e, NULL, key, "not a valid RFC 3339 time (e.g. 2026-11-22T09:00:00Z)");
	if (*out <= 0)
		return cx_fail(e, NULL, key, "must be after 1970-01-01T00:00:00Z");
	return 0;
}

/* cx_priority - V as "low", "normal", "high" or an integer 0-9 into *OUT; 0 or -1 */
static int cx_priority(struct codec_error *e, struct json_object *v, int *out)
{
	static const struct { const char *name; int value; } names[] = {
		{ "low", CODEC_PRIORITY_LOW }, { "normal", CODEC_PRIORITY_NORMAL },
		{ "high", CODEC_PRIORITY_HIGH },
	};
	size_t i;
	int64_t p;

	if (json_object_is_type(v, json_type_string)) {
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strcmp(json_object_get_string(v), names[i].name) == 0) {
				*out = names[i].value;
				return 0;
			}
	} else if (json_object_is_type(v, json_type_int)) {
		p = json_object_get_int64(v);
		if (p >= 0 && p <= CODEC_PRIORITY_MAX) {
			*out = (int)p;
			return 0;
		}
	}
	return cx_fail(e, NULL, "priority", "must be low, normal, high or an integer 0-9");
}

/* cx_user_ids - check the "user_ids" array V into R; 0 or -1 */
static int cx_user_ids(struct codec_error *e, struct json_object *v, size_t max, struct request *r)
{
	size_t n, i, k;

	if (!json_object_is_type(v, json_type_array))
		return cx_fail(e, NULL, "user_ids", "must be an array of user ids");
	n = json_object_array_length(v);
	if (n == 0)
		return cx_fail(e, NULL, "user_ids", "must not be empty");
	if (n > max)
		return cx_fail(e, NULL, "user_ids", "at most %zu user ids per request", max);
	r->user_ids = calloc(n, sizeof(*r->user_ids));
	if (r->user_ids == NULL)
		return cx_nomem(e);
	for (i = 0; i < n; i++) {
		if (cx_text(e, "user_ids", NULL, i, json_object_array_get_idx(v, i), 1,
		            CX_USER_ID_MAX, &r->user_ids[i]) < 0)
			return -1;
		for (k = 0; k < i; k++)
			if (strcmp(r->user_ids[k], r->user_ids[i]) == 0)
				return cx_fail_at(e, "user_ids", i, "duplicate user id (also at [%zu])", k);
		r->n_user_ids = i + 1;
	}
	return 0;
}

/* cx_to_obj - check the request's "to" object V into TO; 0 or -1 */
static int cx_to_obj(struct codec_error *e, struct json_object *v, struct codec_to *to)
{
	struct json_object_iterator it, end;

	if (!json_object_is_type(v, json_type_object))
		return cx_fail(e, NULL, "to", "must be an object of addresses");
	if (json_object_object_length(v) == 0)
		return cx_fail(e, NULL, "to",
			"needs at least one of email, phone, push_token, webhook_url");
	it = json_object_iter_begin(v);
	end = json_object_iter_end(v);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
		if (cx_address(e, json_object_iter_peek_name(&it), json_object_iter_peek_value(&it),
		               to) < 0)
			return -1;
	return 0;
}

/* cx_recipient - exactly one of user_id, user_ids and to, into R; 0 or -1 */
static int cx_recipient(struct codec_error *e, struct json_object *root, size_t max_ids,
	struct request *r)
{
	static const char *const kinds[] = { "user_id", "user_ids", "to" };
	struct json_object *v = NULL, *tmp;   /* (a JSON null is a NULL object) */
	const char *key = NULL;
	size_t i;

	for (i = 0; i < 3; i++) {
		if (!json_object_object_get_ex(root, kinds[i], &tmp))
			continue;
		if (key != NULL)
			return cx_fail(e, NULL, kinds[i], "give only one of user_id, user_ids and to");
		v = tmp;
		key = kinds[i];
		r->rcpt = (enum codec_rcpt)i;
	}
	if (key == NULL)
		return cx_fail(e, NULL, "user_id", "a recipient is required: user_id, user_ids or to");
	if (r->rcpt == CODEC_RCPT_USERS)
		return cx_user_ids(e, v, max_ids, r);
	if (r->rcpt == CODEC_RCPT_USER) {
		r->user_ids = calloc(1, sizeof(*r->user_ids));
		if (r->user_ids == NULL)
			return cx_nomem(e);
		if (cx_text(e, NULL, key, CX_NOIDX, v, 1, CX_USER_ID_MAX, &r->user_ids[0]) < 0)
			return -1;
		r->n_user_ids = 1;
		return 0;
	}
	return cx_to_obj(e, v, &r->to);
}

/* cx_channels_obj - check the "channels" object V into R (sufficiency is checked later); 0 or -1 */
static int cx_channels_obj(struct codec_error *e, struct json_object *v, struct request *r)
{
	struct json_object_iterator it, end;

	if (!json_object_is_type(v, json_type_object))
		return cx_fail(e, NULL, "channels", "must be an object keyed by channel name");
	if (json_object_object_length(v) == 0)
		return cx_fail(e, NULL, "channels", "at least one channel is required");
	it = json_object_iter_begin(v);
	end = json_object_iter_end(v);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *name = json_object_iter_peek_name(&it);
		int c = codec_channel_parse(name, strlen(name));
		char prefix[32];

		if (c < 0)
			return cx_fail(e, "channels", name, "unknown channel (email, sms, push, webhook)");
		snprintf(prefix, sizeof(prefix), "channels.%s", cx_channels[c]);
		if (cx_content(e, prefix, (enum codec_channel)c, json_object_iter_peek_value(&it),
		               true) < 0)
			return -1;
		r->channels |= CODEC_CH_BIT(c);
		r->content[c] = json_object_iter_peek_value(&it);
	}
	return 0;
}

/* cx_optional - the rest of the request's keys into R; 0 or -1 */
static int cx_optional(struct codec_error *e, struct json_object *root,
	const struct codec_limits *lim, struct request *r)
{
	const char *const *cats = lim->categories ? lim->categories : cx_default_categories;
	size_t max_meta = lim->max_metadata ? lim->max_metadata : CODEC_MAX_METADATA;
	struct json_object *v;
	int64_t ttl;

	if (json_object_object_get_ex(root, "template", &v) &&
	    cx_name(e, "template", v, &r->template_name) < 0)
		return -1;
	if (json_object_object_get_ex(root, "data", &v)) {
		if (!json_object_is_type(v, json_type_object))
			return cx_fail(e, NULL, "data", "must be an object");
		r->data = v;
	}
	r->category = lim->default_category ? lim->default_category : "notifications";
	if (json_object_object_get_ex(root, "category", &v)) {
		if (!json_object_is_type(v, json_type_string))
			return cx_fail(e, NULL, "category", "must be a string");
		if (!cx_in_list(cats, json_object_get_string(v)))
			return cx_fail(e, NULL, "category", "not a configured category");
		r->category = json_object_get_string(v);
	}
	r->priority = -1;
	if (json_object_object_get_ex(root, "priority", &v) && cx_priority(e, v, &r->priority) < 0)
		return -1;
	if (json_object_object_get_ex(root, "idempotency_key", &v) &&
	    cx_text(e, NULL, "idempotency_key", CX_NOIDX, v, 1, CX_IDEMPOTENCY_MAX,
	            &r->idempotency_key) < 0)
		return -1;
	if (json_object_object_get_ex(root, "client_id", &v) &&
	    cx_name(e, "client_id", v, &r->client_id) < 0)
		return -1;
	if (json_object_object_get_ex(root, "batch_id", &v) &&
	    cx_text(e, NULL, "batch_id", CX_NOIDX, v, 1, CX_BATCH_MAX, &r->batch_id) < 0)
		return -1;
	if (json_object_object_get_ex(root, "metadata", &v)) {
		if (!json_object_is_type(v, json_type_object))
			return cx_fail(e, NULL, "metadata", "must be an object");
		if (strlen(json_object_to_json_string_ext(v, CX_JSON_FLAGS)) > max_meta)
			return cx_fail(e, NULL, "metadata", "larger than %zu bytes", max_meta);
		r->metadata = v;
	}
	if (json_object_object_get_ex(root, "send_at", &v) && cx_time(e, "send_at", v, &r->send_at) < 0)
		return -1;
	if (json_object_object_get_ex(root, "expires_at", &v) &&
	    cx_time(e, "expires_at", v, &r->expires_at) < 0)
		return -1;
	if (json_object_object_get_ex(root, "ttl", &v)) {
		if (!json_object_is_type(v, json_type_int) || (ttl = json_object_get_int64(v)) < 1 ||
		    ttl > CODEC_MAX_TTL)
			return cx_fail(e, NULL, "ttl", "must be an integer 1-%d (seconds)", CODEC_MAX_TTL);
		if (r->expires_at != 0)
			return cx_fail(e, NULL, "ttl", "give either expires_at or ttl, not both");
		r->ttl = ttl;
	}
	return 0;
}

/* cx_cross - the checks between fields of R; 0 or -1 */
static int cx_cross(struct codec_error *e, struct request *r)
{
	int c;

	for (c = 0; c < CODEC_CH_COUNT; c++) {
		char prefix[32];

		if (!(r->channels & CODEC_CH_BIT(c)))
			continue;
		snprintf(prefix, sizeof(prefix), "channels.%s", cx_channels[c]);
		if (cx_content(e, prefix, (enum codec_channel)c, r->content[c],
		               r->template_name != NULL) < 0)
			return -1;
		if (r->rcpt == CODEC_RCPT_TO && !cx_to_has(&r->to, (enum codec_channel)c))
			return cx_fail(e, "to", cx_to_keys[c], "required for the %s channel",
				cx_channels[c]);
	}
	if (r->expires_at != 0 && r->send_at != 0 && r->expires_at <= r->send_at)
		return cx_fail(e, NULL, "expires_at", "must be after send_at");
	if (r->ttl != 0 && r->send_at != 0 && r->send_at >= rfc3339_now() + r->ttl * 1000000)
		return cx_fail(e, NULL, "ttl", "would expire before send_at");
	return 0;
}

/* codec_request_parse - validate the §2 request BUF[0..LEN) into *OUT; 0 or -1 with ERR */
int codec_request_parse(const char *buf, size_t len, const struct codec_limits *lim,
	struct request **out, struct codec_error *err)
{
	static const struct codec_limits defaults;
	struct json_object *root, *v;
	struct request *r;
	size_t max;
	const char *bad;

	*out = NULL;
	if (lim == NULL)
		lim = &defaults;
	max = lim->max_request ? lim->max_request : CODEC_MAX_REQUEST;
	if (max > CODEC_MAX_NOTE / 2)   /* so that every note of it fits CODEC_MAX_NOTE */
		max = CODEC_MAX_NOTE / 2;
	if (len > max)
		return cx_fail(err, NULL, NULL, "request larger than %zu bytes", max);
	if (buf == NULL || len == 0)
		return cx_fail(err, NULL, NULL, "empty request");
	if (cx_parse_json(buf, len, "a request", &root, err) < 0)
		return -1;
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		json_object_put(root);
		return cx_nomem(err);
	}
	r->root = root;
	if ((bad = cx_unknown_key(root, cx_request_keys)) != NULL) {
		cx_fail(err, NULL, bad, "unknown key");
		goto fail;
	}
	if (cx_recipient(err, root, lim->max_user_ids ? lim->max_user_ids : CODEC_MAX_USER_IDS, r) < 0)
		goto fail;
	if (!json_object_object_get_ex(root, "channels", &v)) {
		cx_fail(err, NULL, "channels", "required");
		goto fail;
	}
	if (cx_channels_obj(err, v, r) < 0 || cx_optional(err, root, lim, r) < 0 ||
	    cx_cross(err, r) < 0)
		goto fail;
	*out = r;
	return 0;
fail:
	codec_request_free(r);
	return -1;
}

/* codec_request_free - release R (NULL is fine) */
void codec_request_free(struct request *r)
{
	if (r == NULL)
		return;
	json_object_put(r->root);
	free(r->user_ids);
	free(r);
}

/* cx_dup - copy S (NULL stays NULL) into *OUT; 0 or -1 */
static int cx_dup(const char *s, char **out)
{
	*out = NULL;
	if (s == NULL)
		return 0;
	*out = strdup(s);
	return *out ? 0 : -1;
}

/* codec_note_free - release N (NULL is fine) */
void codec_note_free(struct note *n)
{
	if (n == NULL)
		return;
	free(n->user_id);
	free(n->address);
	free(n->push_platform);
	json_object_put(n->content);
	free(n->template_name);
	json_object_put(n->data);
	free(n->category);
	free(n->idempotency_key);
	free(n->client_id);
	free(n->batch_id);
	json_object_put(n->metadata);
	free(n);
}

/* codec_notes_free - release the N notes of NOTES and the array itself */
void codec_notes_free(struct note **notes, size_t n)
{
	size_t i;

	if (notes == NULL)
		return;
	for (i = 0; i < n; i++)
		codec_note_free(notes[i]);
	free(notes);
}

/* cx_note_new - the note of R for channel C and user USER (NULL: the "to" address); or NULL */
static struct note *cx_note_new(const struct request *r, enum codec_channel c, const char *user,
	const char *txid, int priority, int64_t now)
{
	struct note *n = calloc(1, sizeof(*n));
	const char *addr[CODEC_CH_COUNT] = { r->to.email, r->to.phone, r->to.push_token,
		r->to.webhook_url };

	if (n == NULL)
		return NULL;
	memcpy(n->txid, txid, TXID_LEN + 1);
	n->channel = c;
	n->content = json_object_get(r->content[c]);
	n->data = json_object_get(r->data);
	n->metadata = json_object_get(r->metadata);
	n->priority = priority;
	n->send_at = r->send_at;
	n->expires_at = r->expires_at ? r->expires_at : r->ttl ? now + r->ttl * 1000000 : 0;
	n->accepted_at = now;
	n->attempt = 1;
	if (cx_dup(user, &n->user_id) < 0 || cx_dup(user ? NULL : addr[c], &n->address) < 0 ||
	    cx_dup(!user && c == CODEC_CH_PUSH ? r->to.push_platform : NULL,
	           &n->push_platform) < 0 ||
	    cx_dup(r->template_name, &n->template_name) < 0 ||
	    cx_dup(r->category, &n->category) < 0 ||
	    cx_dup(r->idempotency_key, &n->idempotency_key) < 0 ||
	    cx_dup(r->client_id, &n->client_id) < 0 || cx_dup(r->batch_id, &n->batch_id) < 0) {
		codec_note_free(n);
		return NULL;
	}
	return n;
}

/* codec_request_split - one note per (recipient, channel), one txid per recipient; 0 or -1 */
int codec_request_split(const struct request *r, int priority_default, struct note ***notes,
	size_t *n)
{
	size_t nrcpt = r->rcpt == CODEC_RCPT_TO ? 1 : r->n_user_ids, nch = 0, k = 0, i;
	char txid[TXID_LEN + 1];
	struct note **arr;
	int64_t now = rfc3339_now();
	int c, prio = r->priority >= 0 ? r->priority : priority_default;

	*notes = NULL;
	*n = 0;
	if (prio < 0 || prio > CODEC_PRIORITY_MAX) {
		errno = EINVAL;
		return -1;
	}
	for (c = 0; c < CODEC_CH_COUNT; c++)
		nch += (r->channels & CODEC_CH_BIT(c)) != 0;
	arr = calloc(nrcpt * nch > 0 ? nrcpt * nch : 1, sizeof(*arr));    /* NOLINT(bugprone-sizeof-expression): an array of pointers */
	if (arr == NULL)
		return -1;
	for (i = 0; i < nrcpt; i++) {
		if (txid_new(txid) < 0)
			goto fail;
		for (c = 0; c < CODEC_CH_COUNT; c++) {
			if (!(r->channels & CODEC_CH_BIT(c)))
				continue;
			arr[k] = cx_note_new(r, (enum codec_channel)c,
				r->rcpt == CODEC_RCPT_TO ? NULL : r->user_ids[i], txid, prio, now);
			if (arr[k] == NULL)
				goto fail;
			k++;
		}
	}
	*notes = arr;
	*n = k;
	return 0;
fail:
	codec_notes_free(arr, k);
	return -1;
}

/* cx_add - add V (NULL: allocation failed) to O as KEY, taking V's reference; 0 or -1 */
static int cx_add(struct json_object *o, const char *key, struct json_object *v)
{
	if (v == NULL)
		return -1;
	if (json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

/* cx_add_str - add the string S under KEY unless S is NULL; 0 or -1 */
static int cx_add_str(struct json_object *o, const char *key, const char *s)
{
	return s == NULL ? 0 : cx_add(o, key, json_object_new_string(s));
}

/* cx_note_to - the wire "to" object of note N (its single address) */
static struct json_object *cx_note_to(const struct note *n)
{
	struct json_object *to = json_object_new_object(), *pt;

	if (to == NULL)
		return NULL;
	if (n->channel == CODEC_CH_PUSH) {
		pt = json_object_new_object();
		if (cx_add(to, "push_token", pt) < 0 || cx_add_str(pt, "platform", n->push_platform) < 0 ||
		    cx_add_str(pt, "token", n->address) < 0) {
			json_object_put(to);
			return NULL;
		}
	} else if (cx_add_str(to, cx_to_keys[n->channel], n->address) < 0) {
		json_object_put(to);
		return NULL;
	}
	return to;
}

/* codec_note_encode - the wire body of N as malloc'd JSON in *BUF, length in *LEN; 0 or -1 */
int codec_note_encode(const struct note *n, char **buf, size_t *len)
{
	struct json_object *o = json_object_new_object();
	const char *s;
	int rc = -1;

	*buf = NULL;
	*len = 0;
	if (o == NULL || (unsigned)n->channel >= CODEC_CH_COUNT || n->content == NULL)
		goto out;
	if (cx_add(o, "v", json_object_new_int(CODEC_WIRE_VERSION)) < 0 ||
	    cx_add_str(o, "txid", n->txid) < 0 ||
	    cx_add_str(o, "channel", cx_channels[n->channel]) < 0)
		goto out;
	if (n->user_id != NULL ? cx_add_str(o, "user_id", n->user_id) < 0
	                       : cx_add(o, "to", cx_note_to(n)) < 0)
		goto out;
	if (cx_add(o, "content", json_object_get(n->content)) < 0 ||
	    cx_add_str(o, "template", n->template_name) < 0 ||
	    (n->data && cx_add(o, "data", json_object_get(n->data)) < 0) ||
	    cx_add_str(o, "category", n->category) < 0 ||
	    cx_add(o, "priority", json_object_new_int(n->priority)) < 0 ||
	    cx_add_str(o, "idempotency_key", n->idempotency_key) < 0 ||
	    cx_add_str(o, "client_id", n->client_id) < 0 ||
	    cx_add_str(o, "batch_id", n->batch_id) < 0 ||
	    (n->metadata && cx_add(o, "metadata", json_object_get(n->metadata)) < 0) ||
	    (n->send_at && cx_add(o, "send_at", json_object_new_int64(n->send_at)) < 0) ||
	    (n->expires_at && cx_add(o, "expires_at", json_object_new_int64(n->expires_at)) < 0) ||
	    cx_add(o, "accepted_at", json_object_new_int64(n->accepted_at)) < 0 ||
	    cx_add(o, "attempt", json_object_new_int64(n->attempt)) < 0)
		goto out;
	s = json_object_to_json_string_ext(o, CX_JSON_FLAGS);
	if (s == NULL || (*buf = strdup(s)) == NULL)
		goto out;
	*len = strlen(s);
	rc = 0;
out:
	json_object_put(o);
	if (rc < 0)
		errno = ENOMEM;
	return rc;
}

/* cx_wire_int - the integer KEY of O in MIN..MAX into *OUT; REQUIRED or absent (*OUT kept) */
static int cx_wire_int(struct codec_error *e, struct json_object *o, const char *key,
	bool required, int64_t min, int64_t max, int64_t *out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return required ? cx_fail(e, NULL, key, "required") : 0;
	if (!json_object_is_type(v, json_type_int))
		return cx_fail(e, NULL, key, "must be an integer");
	*out = json_object_get_int64(v);
	if (*out < min || *out > max)
		return cx_fail(e, NULL, key, "out of range");
	return 0;
}

/* cx_wire_str - the optional string KEY of O, checked as text or name, copied to *OUT */
static int cx_wire_str(struct codec_error *e, struct json_object *o, const char *key, size_t max,
	bool name, char **out)
{
	struct json_object *v;
	const char *s = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (name ? cx_name(e, key, v, &s) < 0 : cx_text(e, NULL, key, CX_NOIDX, v, 1, max, &s) < 0)
		return -1;
	return cx_dup(s, out) < 0 ? cx_nomem(e) : 0;
}

/* cx_wire_obj - the optional object KEY of O, a new reference in *OUT */
static int cx_wire_obj(struct codec_error *e, struct json_object *o, const char *key,
	struct json_object **out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_object))
		return cx_fail(e, NULL, key, "must be an object");
	*out = json_object_get(v);
	return 0;
}

/* cx_wire_to - the wire "to" object V: exactly channel C's address, into N */
static int cx_wire_to(struct codec_error *e, struct json_object *v, struct note *n)
{
	struct codec_to to;
	const char *key = cx_to_keys[n->channel], *addr;

	memset(&to, 0, sizeof(to));
	if (!json_object_is_type(v, json_type_object))
		return cx_fail(e, NULL, "to", "must be an object");
	if (json_object_object_length(v) != 1 || !json_object_object_get_ex(v, key, &v))
		return cx_fail(e, "to", key, "the %s address is required, alone",
			cx_channels[n->channel]);
	if (cx_address(e, key, v, &to) < 0)
		return -1;
	addr = n->channel == CODEC_CH_EMAIL ? to.email : n->channel == CODEC_CH_SMS ? to.phone :
	       n->channel == CODEC_CH_PUSH ? to.push_token : to.webhook_url;
	if (cx_dup(addr, &n->address) < 0 || cx_dup(to.push_platform, &n->push_platform) < 0)
		return cx_nomem(e);
	return 0;
}

/* cx_wire_fields - fill N from the wire object O; 0 or -1 */
static int cx_wire_fields(struct codec_error *e, struct json_object *o, struct note *n)
{
	struct json_object *v, *u = NULL, *to = NULL;
	const char *bad, *s = NULL;
	int64_t x = 0;
	int c, has_user;

	if (cx_wire_int(e, o, "v", true, INT64_MIN, INT64_MAX, &x) < 0)
		return -1;
	if (x != CODEC_WIRE_VERSION)
		return cx_fail(e, NULL, "v", "unsupported wire version %lld", (long long)x);
	if ((bad = cx_unknown_key(o, cx_note_keys)) != NULL)
		return cx_fail(e, NULL, bad, "unknown key");
	if (!json_object_object_get_ex(o, "txid", &v) || !json_object_is_type(v, json_type_string) ||
	    !txid_valid(json_object_get_string(v)) || json_object_get_string_len(v) != TXID_LEN)
		return cx_fail(e, NULL, "txid", "must be a UUID");
	memcpy(n->txid, json_object_get_string(v), TXID_LEN + 1);
	if (!json_object_object_get_ex(o, "channel", &v) || !json_object_is_type(v, json_type_string) ||
	    (c = codec_channel_parse(json_object_get_string(v),
	                             (size_t)json_object_get_string_len(v))) < 0)
		return cx_fail(e, NULL, "channel", "must be email, sms, push or webhook");
	n->channel = (enum codec_channel)c;
	has_user = json_object_object_get_ex(o, "user_id", &u);
	if (has_user == json_object_object_get_ex(o, "to", &to))
		return cx_fail(e, NULL, "user_id", "exactly one of user_id and to is required");
	if (has_user) {
		if (cx_text(e, NULL, "user_id", CX_NOIDX, u, 1, CX_USER_ID_MAX, &s) < 0)
			return -1;
		if (cx_dup(s, &n->user_id) < 0)
			return cx_nomem(e);
	} else if (cx_wire_to(e, to, n) < 0) {
		return -1;
	}
	if (cx_wire_str(e, o, "template", CX_NAME_MAX, true, &n->template_name) < 0)
		return -1;
	if (!json_object_object_get_ex(o, "content", &v))
		return cx_fail(e, NULL, "content", "required");
	if (cx_content(e, "content", n->channel, v, n->template_name != NULL) < 0)
		return -1;
	n->content = json_object_get(v);
	if (cx_wire_obj(e, o, "data", &n->data) < 0)
		return -1;
	if (!json_object_object_get_ex(o, "category", &v))
		return cx_fail(e, NULL, "category", "required");
	if (cx_wire_str(e, o, "category", CX_NAME_MAX, true, &n->category) < 0)
		return -1;
	x = 0;
	if (cx_wire_int(e, o, "priority", true, 0, CODEC_PRIORITY_MAX, &x) < 0)
		return -1;
	n->priority = (int)x;
	if (cx_wire_str(e, o, "idempotency_key", CX_IDEMPOTENCY_MAX, false, &n->idempotency_key) < 0 ||
	    cx_wire_str(e, o, "client_id", CX_NAME_MAX, true, &n->client_id) < 0 ||
	    cx_wire_str(e, o, "batch_id", CX_BATCH_MAX, false, &n->batch_id) < 0 ||
	    cx_wire_obj(e, o, "metadata", &n->metadata) < 0 ||
	    cx_wire_int(e, o, "send_at", false, 1, INT64_MAX, &n->send_at) < 0 ||
	    cx_wire_int(e, o, "expires_at", false, 1, INT64_MAX, &n->expires_at) < 0 ||
	    cx_wire_int(e, o, "accepted_at", true, 1, INT64_MAX, &n->accepted_at) < 0 ||
	    cx_wire_int(e, o, "attempt", true, 1, CX_ATTEMPT_MAX, &x) < 0)
		return -1;
	n->attempt = (unsigned)x;
	return 0;
}

/* codec_note_decode - strict inverse of codec_note_encode; 0 or -1 with ERR naming the field */
int codec_note_decode(const char *buf, size_t len, struct note **out, struct codec_error *err)
{
	struct json_object *root;
	struct note *n;
	int rc;

	*out = NULL;
	if (len > CODEC_MAX_NOTE)
		return cx_fail(err, NULL, NULL, "message larger than %u bytes", CODEC_MAX_NOTE);
	if (buf == NULL || len == 0)
		return cx_fail(err, NULL, NULL, "empty message");
	if (cx_parse_json(buf, len, "a message", &root, err) < 0)
		return -1;
	n = calloc(1, sizeof(*n));
	if (n == NULL) {
		json_object_put(root);
		return cx_nomem(err);
	}
	rc = cx_wire_fields(err, root, n);
	json_object_put(root);
	if (rc < 0) {
		codec_note_free(n);
		return -1;
	}
	*out = n;
	return 0;
}

/* cx_reply - serialize O into a malloc'd string and release O; NULL on error */
static char *cx_reply(struct json_object *o, int failed)
{
	const char *s = failed ? NULL : json_object_to_json_string_ext(o, CX_JSON_FLAGS);
	char *out = s ? strdup(s) : NULL;

	json_object_put(o);
	return out;
}

/* codec_reply_received - {"status":"received","transaction_id"|"transaction_ids":...} */
char *codec_reply_received(const struct request *r, struct note *const *notes, size_t n)
{
	struct json_object *o = json_object_new_object(), *ids, *tmp;
	int failed;
	size_t i;

	if (o == NULL || n == 0)
		return cx_reply(o, 1);
	failed = cx_add_str(o, "status", "received") < 0;
	if (r->rcpt != CODEC_RCPT_USERS)
		return cx_reply(o, failed || cx_add_str(o, "transaction_id", notes[0]->txid) < 0);
	ids = json_object_new_object();
	failed = failed || cx_add(o, "transaction_ids", ids) < 0;
	for (i = 0; i < n && !failed; i++)
		if (notes[i]->user_id && !json_object_object_get_ex(ids, notes[i]->user_id, &tmp))
			failed = cx_add_str(ids, notes[i]->user_id, notes[i]->txid) < 0;
	return cx_reply(o, failed);
}

/* cx_clean - S with each byte that is not well-formed UTF-8 turned into '?', in OUT (SIZE) */
static const char *cx_clean(const char *s, char *out, size_t size)
{
	size_t len = strnlen(s, size - 1), i = 0, k;

	memcpy(out, s, len);
	out[len] = '\0';
	while (i < len) {
		k = jsoncheck_utf8_char(out + i, len - i);
		if (k == 0) {
			out[i] = '?';
			k = 1;
		}
		i += k;
	}
	return out;
}

/* codec_reply_error - {"error":true,"status":"invalid_request","message":...,"field":...} */
char *codec_reply_error(const struct codec_error *e, long line)
{
	struct json_object *o = json_object_new_object();
	char msg[sizeof(e->message)], field[sizeof(e->field)];
	int failed;

	if (o == NULL)
		return NULL;
	failed = cx_add(o, "error", json_object_new_boolean(1)) < 0 ||
		cx_add_str(o, "status", "invalid_request") < 0 ||
		cx_add_str(o, "message", cx_clean(e->message, msg, sizeof(msg))) < 0 ||
		cx_add_str(o, "field", cx_clean(e->field, field, sizeof(field))) < 0 ||
		(line > 0 && cx_add(o, "line", json_object_new_int64(line)) < 0);
	return cx_reply(o, failed);
}
