/* codec - unit test of the §2 request codec, the wire body and the reply lines (TAP) */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "codec.h"
#include "jsoncheck.h"
#include "rfc3339.h"
#include "tap.h"

#define U "\"user_id\":\"u1\","
#define SMS "\"channels\":{\"sms\":{\"body\":\"hi\"}}"
#define EMAIL "\"channels\":{\"email\":{\"subject\":\"s\",\"body\":\"b\"}}"

/* The §2 example, inline content for every channel. */
static const char example[] =
	"{\n"
	"  \"user_id\": \"user123\",\n"
	"  \"channels\": {\n"
	"    \"email\":   {\"subject\": \"Your order {{order_id}}\", \"body\": \"Hi {{first_name}}, ...\","
	" \"html\": \"<p>Hi {{first_name}}</p>\"},\n"
	"    \"sms\":     {\"body\": \"Hi {{first_name}}, your order shipped\"},\n"
	"    \"push\":    {\"title\": \"Shipped\", \"body\": \"Order {{order_id}} is on its way\","
	" \"data\": {\"order\": \"A-42\"}},\n"
	"    \"webhook\": {\"event\": \"order.shipped\"}\n"
	"  },\n"
	"  \"template\": \"order_shipped\",\n"
	"  \"data\": {\"order_id\": \"A-42\"},\n"
	"  \"category\": \"transactional\",\n"
	"  \"priority\": \"high\",\n"
	"  \"idempotency_key\": \"order-A-42-shipped\",\n"
	"  \"client_id\": \"shop\",\n"
	"  \"batch_id\": \"spring-sale-2026\",\n"
	"  \"metadata\": {\"order\": \"A-42\"},\n"
	"  \"send_at\": \"2026-11-22T09:00:00Z\",\n"
	"  \"expires_at\": \"2026-11-22T10:00:00Z\"\n"
	"}\n";

struct bad {
	const char *field;               /* the field the error must name */
	const char *json;
	const char *desc;
};

static const struct bad bad_static[] = {
	/* the document */
	{ "", "", "empty input" },
	{ "", " \n\t ", "whitespace only" },
	{ "", "[" "{" U SMS "}" "]", "top-level array" },
	{ "", "\"user_id\"", "top-level string" },
	{ "", "{" U SMS "} x", "trailing garbage" },
	{ "", "{" U SMS "}{}", "two objects" },
	{ "", "{" U SMS ",}", "trailing comma" },
	{ "", "{'user_id':'u1'," SMS "}", "single quotes" },
	{ "", "{" U SMS " /* c */}", "comment" },
	{ "", "{" U SMS, "truncated object" },
	{ "user_id", "{\"user_id\":\"u1\",\"user_id\":\"u2\"," SMS "}", "duplicate top-level key" },
	{ "channels.email.subject", "{" U "\"channels\":{\"email\":{\"subject\":\"a\",\"body\":\"b\","
		"\"subject\":\"c\"}}}", "duplicate nested key" },
	{ "channels.email.subject", "{" U "\"channels\":{\"email\":{\"subject\":\"a\",\"body\":\"b\","
		"\"\\u0073ubject\":\"c\"}}}", "duplicate key spelled with an escape" },
	{ "data.a.b", "{" U SMS ",\"data\":{\"a\":{\"b\":1,\"b\":2}}}", "duplicate key deep in data" },
	{ "metadata[1].k", "{" U SMS ",\"metadata\":[{},{\"k\":1,\"k\":1}]}", "duplicate key in array" },
	{ "foo", "{" U SMS ",\"foo\":1}", "unknown top-level key" },
	/* UTF-8 and escapes */
	{ "user_id", "{\"user_id\":\"\xc0\xaf\"," SMS "}", "overlong UTF-8" },
	{ "user_id", "{\"user_id\":\"\xed\xa0\x80\"," SMS "}", "UTF-8-encoded surrogate" },
	{ "user_id", "{\"user_id\":\"\xf4\x90\x80\x80\"," SMS "}", "UTF-8 above U+10FFFF" },
	{ "user_id", "{\"user_id\":\"ab\xe2\x82\"," SMS "}", "truncated UTF-8 sequence" },
	{ "channels.sms.body", "{" U "\"channels\":{\"sms\":{\"body\":\"\x80\"}}}", "stray continuation byte" },
	{ "data.k", "{" U SMS ",\"data\":{\"k\":\"\xff\"}}", "0xff byte in data" },
	{ "", "{" U SMS ",\"d\xff\":1}", "invalid UTF-8 in a key" },
	{ "user_id", "{\"user_id\":\"a\\u0000b\"," SMS "}", "escaped NUL" },
	{ "channels.sms.body", "{" U "\"channels\":{\"sms\":{\"body\":\"\\ud800\"}}}", "lone high surrogate escape" },
	{ "channels.sms.body", "{" U "\"channels\":{\"sms\":{\"body\":\"\\udc00x\"}}}", "lone low surrogate escape" },
	{ "channels.sms.body", "{" U "\"channels\":{\"sms\":{\"body\":\"\\ud800\\u0041\"}}}",
		"high surrogate paired with a non-surrogate" },
	{ "channels.sms.body", "{" U "\"channels\":{\"sms\":{\"body\":\"a\tb\"}}}", "raw tab in a string" },
	{ "batch_id", "{" U SMS ",\"batch_id\":\"\\x41\"}", "invalid escape" },
	/* numbers */
	{ "priority", "{" U SMS ",\"priority\":99999999999999999999}", "huge integer" },
	{ "ttl", "{" U SMS ",\"ttl\":-9223372036854775809}", "integer below int64" },
	{ "data.n", "{" U SMS ",\"data\":{\"n\":1e999}}", "double overflow" },
	{ "ttl", "{" U SMS ",\"ttl\":010}", "leading zero" },
	{ "ttl", "{" U SMS ",\"ttl\":NaN}", "NaN" },
	{ "ttl", "{" U SMS ",\"ttl\":1.}", "number without fraction digits" },
	/* recipient */
	{ "user_id", "{" SMS "}", "no recipient" },
	{ "user_ids", "{" U "\"user_ids\":[\"u2\"]," SMS "}", "user_id and user_ids" },
	{ "to", "{" U "\"to\":{\"phone\":\"+15550100\"}," SMS "}", "user_id and to" },
	{ "user_id", "{\"user_id\":5," SMS "}", "user_id a number" },
	{ "user_id", "{\"user_id\":\"\"," SMS "}", "user_id empty" },
	{ "user_id", "{\"user_id\":\"a\\nb\"," SMS "}", "user_id with a newline" },
	{ "user_id", "{\"user_id\":null," SMS "}", "user_id null" },
	{ "user_ids", "{\"user_ids\":\"u1\"," SMS "}", "user_ids a string" },
	{ "user_ids", "{\"user_ids\":[]," SMS "}", "user_ids empty" },
	{ "user_ids[1]", "{\"user_ids\":[\"a\",5]," SMS "}", "user_ids element a number" },
	{ "user_ids[2]", "{\"user_ids\":[\"a\",\"b\",\"a\"]," SMS "}", "duplicate user id" },
	{ "user_ids[0]", "{\"user_ids\":[\"\"]," SMS "}", "empty user id in user_ids" },
	{ "to", "{\"to\":\"a@example.org\"," EMAIL "}", "to a string" },
	{ "to", "{\"to\":{}," EMAIL "}", "to empty" },
	{ "to.email", "{\"to\":{\"email\":\"nope\"}," EMAIL "}", "email without @" },
	{ "to.email", "{\"to\":{\"email\":\"a b@example.org\"}," EMAIL "}", "email with a space" },
	{ "to.email", "{\"to\":{\"email\":\"a@localhost\"}," EMAIL "}", "email domain without a dot" },
	{ "to.email", "{\"to\":{\"email\":\"a@b@example.org\"}," EMAIL "}", "email with two @" },
	{ "to.email", "{\"to\":{\"email\":\"@example.org\"}," EMAIL "}", "email empty local part" },
	{ "to.email", "{\"to\":{\"email\":\"a@example.org\\r\\nBcc: x@y.org\"}," EMAIL "}",
		"email with CRLF" },
	{ "to.phone", "{\"to\":{\"phone\":\"15550100\"}," SMS "}", "phone without +" },
	{ "to.phone", "{\"to\":{\"phone\":\"+0155501\"}," SMS "}", "phone starting with 0" },
	{ "to.phone", "{\"to\":{\"phone\":\"+1\"}," SMS "}", "phone too short" },
	{ "to.phone", "{\"to\":{\"phone\":\"+1234567890123456\"}," SMS "}", "phone too long" },
	{ "to.phone", "{\"to\":{\"phone\":\"+1 555 0100\"}," SMS "}", "phone with spaces" },
	{ "to.fax", "{\"to\":{\"fax\":\"+15550100\"}," SMS "}", "to with an unknown key" },
	{ "to.push_token.platform", "{\"to\":{\"push_token\":{\"platform\":\"bb\",\"token\":\"t\"}},"
		"\"channels\":{\"push\":{\"title\":\"t\"}}}", "push token platform unknown" },
	{ "to.push_token.token", "{\"to\":{\"push_token\":{\"platform\":\"ios\",\"token\":\"\"}},"
		"\"channels\":{\"push\":{\"title\":\"t\"}}}", "push token empty" },
	{ "to.push_token.x", "{\"to\":{\"push_token\":{\"platform\":\"ios\",\"token\":\"t\",\"x\":1}},"
		"\"channels\":{\"push\":{\"title\":\"t\"}}}", "push token unknown key" },
	{ "to.push_token", "{\"to\":{\"push_token\":\"abc\"},\"channels\":{\"push\":{\"title\":\"t\"}}}",
		"push token a string" },
	{ "to.webhook_url", "{\"to\":{\"webhook_url\":\"ftp://h.example/x\"},"
		"\"channels\":{\"webhook\":{\"event\":\"e\"}}}", "webhook URL not http" },
	{ "to.webhook_url", "{\"to\":{\"webhook_url\":\"https:///x\"},"
		"\"channels\":{\"webhook\":{\"event\":\"e\"}}}", "webhook URL without host" },
	{ "to.webhook_url", "{\"to\":{\"webhook_url\":\"https://h.example/a b\"},"
		"\"channels\":{\"webhook\":{\"event\":\"e\"}}}", "webhook URL with a space" },
	{ "to.webhook_url", "{\"to\":{\"webhook_url\":\"https://h.example:99999/\"},"
		"\"channels\":{\"webhook\":{\"event\":\"e\"}}}", "webhook URL with a bad port" },
	{ "to.webhook_url", "{\"to\":{\"webhook_url\":\"https://u:pw@h.example/\"},"
		"\"channels\":{\"webhook\":{\"event\":\"e\"}}}", "webhook URL with credentials" },
	{ "to.push_token.token", "{\"to\":{\"push_token\":{\"platform\":\"ios\",\"token\":\"a b\"}},"
		"\"channels\":{\"push\":{\"title\":\"t\"}}}", "push token with a space" },
	{ "to.push_token.token", "{\"to\":{\"push_token\":{\"platform\":\"ios\",\"token\":\"t\u00e9\"}},"
		"\"channels\":{\"push\":{\"title\":\"t\"}}}", "push token not ASCII" },
	{ "to.phone", "{\"to\":{\"email\":\"a@example.org\"},\"channels\":{\"email\":{\"subject\":\"s\","
		"\"body\":\"b\"},\"sms\":{\"body\":\"b\"}}}", "to lacks the phone sms needs" },
	{ "to.webhook_url", "{\"to\":{\"email\":\"a@example.org\"},"
		"\"channels\":{\"webhook\":{\"event\":\"e\"}}}", "to lacks the webhook URL" },
	/* channels */
	{ "channels", "{\"user_id\":\"u1\"}", "channels missing" },
	{ "channels", "{" U "\"channels\":{}}", "channels empty" },
	{ "channels", "{" U "\"channels\":[\"email\"]}", "channels an array" },
	{ "channels.fax", "{" U "\"channels\":{\"fax\":{}},\"template\":\"t\"}", "unknown channel" },
	{ "channels.email", "{" U "\"channels\":{\"email\":\"hello\"}}", "channel content a string" },
	{ "channels.email.subject", "{" U "\"channels\":{\"email\":{\"subject\":5,\"body\":\"b\"}}}",
		"subject a number" },
	{ "channels.email.cc", "{" U "\"channels\":{\"email\":{\"subject\":\"s\",\"body\":\"b\","
		"\"cc\":\"x\"}}}", "unknown email content key" },
	{ "channels.email.subject", "{" U "\"channels\":{\"email\":{\"body\":\"b\"}}}",
		"email without subject and template" },
	{ "channels.email.body", "{" U "\"channels\":{\"email\":{\"subject\":\"s\"}}}",
		"email without body, html and template" },
	{ "channels.email.subject", "{" U "\"channels\":{\"email\":{\"subject\":\"a\\r\\nBcc: x\","
		"\"body\":\"b\"}}}", "subject with CRLF" },
	{ "channels.sms.body", "{" U "\"channels\":{\"sms\":{}}}", "sms without body and template" },
	{ "channels.sms.title", "{" U "\"channels\":{\"sms\":{\"title\":\"x\",\"body\":\"b\"}}}",
		"sms with a title" },
	{ "channels.push.title", "{" U "\"channels\":{\"push\":{\"data\":{}}}}",
		"push without title, body and template" },
	{ "channels.push.data", "{" U "\"channels\":{\"push\":{\"title\":\"t\",\"data\":\"x\"}}}",
		"push data a string" },
	{ "channels.webhook.event", "{" U "\"channels\":{\"webhook\":{\"data\":{}}}}",
		"webhook without event and template" },
	{ "channels.webhook.event", "{" U "\"channels\":{\"webhook\":{\"event\":7}}}",
		"webhook event a number" },
	/* the other keys */
	{ "template", "{" U SMS ",\"template\":\"bad name!\"}", "template with a space" },
	{ "template", "{" U SMS ",\"template\":\"\"}", "template empty" },
	{ "template", "{" U SMS ",\"template\":7}", "template a number" },
	{ "template", "{" U SMS ",\"template\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
		"template 65 characters" },
	{ "data", "{" U SMS ",\"data\":[1]}", "data an array" },
	{ "category", "{" U SMS ",\"category\":\"spam\"}", "unknown category" },
	{ "category", "{" U SMS ",\"category\":1}", "category a number" },
	{ "priority", "{" U SMS ",\"priority\":10}", "priority 10" },
	{ "priority", "{" U SMS ",\"priority\":-1}", "priority -1" },
	{ "priority", "{" U SMS ",\"priority\":4.5}", "priority 4.5" },
	{ "priority", "{" U SMS ",\"priority\":\"4\"}", "priority \"4\"" },
	{ "priority", "{" U SMS ",\"priority\":true}", "priority true" },
	{ "priority", "{" U SMS ",\"priority\":\"urgent\"}", "priority urgent" },
	{ "priority", "{" U SMS ",\"priority\":4.0}", "priority 4.0" },
	{ "idempotency_key", "{" U SMS ",\"idempotency_key\":\"\"}", "idempotency_key empty" },
	{ "idempotency_key", "{" U SMS ",\"idempotency_key\":5}", "idempotency_key a number" },
	{ "client_id", "{" U SMS ",\"client_id\":\"a b\"}", "client_id with a space" },
	{ "batch_id", "{" U SMS ",\"batch_id\":[]}", "batch_id an array" },
	/* the database pads with spaces ("a" = "a "): a trailing space would reach another's row */
	{ "user_id", "{\"user_id\":\"u1 \"," SMS "}", "user_id with a trailing space" },
	{ "user_ids[1]", "{\"user_ids\":[\"a\",\"a \"]," SMS "}", "user_ids[1] with a trailing space" },
	{ "idempotency_key", "{" U SMS ",\"idempotency_key\":\"k \"}",
		"idempotency_key with a trailing space" },
	{ "batch_id", "{" U SMS ",\"batch_id\":\"b \"}", "batch_id with a trailing space" },
	{ "metadata", "{" U SMS ",\"metadata\":\"x\"}", "metadata a string" },
	{ "send_at", "{" U SMS ",\"send_at\":\"2026-02-30T09:00:00Z\"}", "send_at February 30" },
	{ "send_at", "{" U SMS ",\"send_at\":\"2026-11-22T25:00:00Z\"}", "send_at 25:00" },
	{ "send_at", "{" U SMS ",\"send_at\":\"2026-11-22T09:00:00\"}", "send_at without a zone" },
	{ "expires_at", "{" U SMS ",\"expires_at\":\"tomorrow\"}", "expires_at garbage" },
	{ "send_at", "{" U SMS ",\"send_at\":1795338000}", "send_at a number" },
	{ "expires_at", "{" U SMS ",\"send_at\":\"2026-11-22T09:00:00Z\","
		"\"expires_at\":\"2026-11-22T08:00:00Z\"}", "expires_at before send_at" },
	{ "expires_at", "{" U SMS ",\"send_at\":\"2026-11-22T09:00:00Z\","
		"\"expires_at\":\"2026-11-22T09:00:00Z\"}", "expires_at equal to send_at" },
	{ "ttl", "{" U SMS ",\"expires_at\":\"2026-11-22T09:00:00Z\",\"ttl\":60}", "ttl and expires_at" },
	{ "ttl", "{" U SMS ",\"ttl\":0}", "ttl 0" },
	{ "ttl", "{" U SMS ",\"ttl\":31536001}", "ttl above a year" },
	{ "ttl", "{" U SMS ",\"ttl\":\"60\"}", "ttl a string" },
	{ "ttl", "{" U SMS ",\"ttl\":1.5}", "ttl 1.5" },
	{ "ttl", "{" U SMS ",\"send_at\":\"2999-01-01T00:00:00Z\",\"ttl\":60}", "ttl ends before send_at" },
};

struct gen {
	const char *field;
	char *json;
	size_t len;
	char desc[64];
	size_t max_request;              /* 0: the default limits */
};

/* t_strdupf - a malloc'd printf result */
static char *t_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *t_strdupf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (s == NULL) {
		perror("vasprintf");
		exit(99);
	}
	return s;
}

/* t_repeat - a malloc'd string of N copies of S */
static char *t_repeat(const char *s, size_t n)
{
	size_t len = strlen(s), i;
	char *out = malloc(len * n + 1);

	if (out == NULL)
		exit(99);
	for (i = 0; i < n; i++)
		memcpy(out + i * len, s, len);
	out[len * n] = '\0';
	return out;
}

/* t_gen_add - append a generated bad case */
static void t_gen_add(struct gen *g, size_t *n, const char *field, char *json, const char *desc)
{
	g[*n].field = field;
	g[*n].json = json;
	g[*n].len = strlen(json);
	g[*n].max_request = 0;
	snprintf(g[*n].desc, sizeof(g[*n].desc), "%s", desc);
	(*n)++;
}

/* t_gen - the bad cases too big to write out; returns how many went to G */
static size_t t_gen(struct gen *g, char *deep_field, size_t deep_size, char *top_field)
{
	size_t n = 0, i;
	char *a, *b;

	a = t_repeat("x", 70000);
	t_gen_add(g, &n, "", t_strdupf("{" U SMS ",\"data\":{\"x\":\"%s\"}}", a), "request over 64 KiB");
	free(a);
	a = t_repeat("[", 100000);
	b = t_repeat("]", 100000);
	t_gen_add(g, &n, deep_field, t_strdupf("{" U SMS ",\"data\":{\"d\":%s%s}}", a, b),
		"100,000-deep nesting (with a 1 MiB limit)");
	g[n - 1].max_request = 1 << 20;
	free(a);
	free(b);
	deep_field[0] = '\0';   /* data.d[0]...[0]: the value that would be the 33rd level */
	jsoncheck_path_append(deep_field, deep_size, "data", 0);
	jsoncheck_path_append(deep_field, deep_size, "d", 0);
	for (i = 0; i < 30; i++)   /* levels 4..33 */
		jsoncheck_path_append(deep_field, deep_size, NULL, 0);
	a = t_repeat("{\"a\":", 40);
	b = t_repeat("}", 40);
	t_gen_add(g, &n, top_field, t_strdupf("%s1%s", a, b), "40-deep objects at the top");
	top_field[0] = '\0';
	for (i = 0; i < 32; i++)
		jsoncheck_path_append(top_field, deep_size, "a", 0);
	free(a);
	free(b);
	a = t_repeat("\"u\",", 1000);
	t_gen_add(g, &n, "user_ids", t_strdupf("{\"user_ids\":[%s\"u\"]," SMS "}", a), "1001 user_ids");
	free(a);
	b = malloc(1001 * 12 + 1);
	if (b == NULL)
		exit(99);
	for (i = 0; i < 1001; i++)
		sprintf(b + i * 12, "\"u%08zu\",", i);
	b[1001 * 12 - 1] = '\0';
	t_gen_add(g, &n, "user_ids", t_strdupf("{\"user_ids\":[%s]," SMS "}", b), "1001 distinct user_ids");
	free(b);
	a = t_repeat("m", 2100);
	t_gen_add(g, &n, "metadata", t_strdupf("{" U SMS ",\"metadata\":{\"k\":\"%s\"}}", a),
		"metadata over 2 KiB");
	free(a);
	a = t_repeat("k", 256);
	t_gen_add(g, &n, "idempotency_key", t_strdupf("{" U SMS ",\"idempotency_key\":\"%s\"}", a),
		"idempotency_key 256 bytes");
	t_gen_add(g, &n, "user_id", t_strdupf("{\"user_id\":\"%s\"," SMS "}", a), "user_id 256 bytes");
	free(a);
	a = t_repeat("u", 192);
	t_gen_add(g, &n, "user_id", t_strdupf("{\"user_id\":\"%s\"," SMS "}", a),
		"user_id 192 bytes (the column holds 191)");
	free(a);
	a = t_repeat("t", 513);
	t_gen_add(g, &n, "to.push_token.token", t_strdupf("{\"to\":{\"push_token\":{\"platform\":\"ios\","
		"\"token\":\"%s\"}},\"channels\":{\"push\":{\"title\":\"t\"}}}", a), "push token 513 bytes");
	free(a);
	return n;
}

/* t_json_eq - both NULL, or equal JSON values */
static bool t_json_eq(struct json_object *a, struct json_object *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return json_object_equal(a, b) != 0;
}

/* t_str_eq - both NULL, or equal strings */
static bool t_str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* t_note_eq - every field of A equals B's */
static bool t_note_eq(const struct note *a, const struct note *b)
{
	return strcmp(a->txid, b->txid) == 0 && a->channel == b->channel &&
	       t_str_eq(a->user_id, b->user_id) && t_str_eq(a->address, b->address) &&
	       t_str_eq(a->push_platform, b->push_platform) && t_json_eq(a->content, b->content) &&
	       t_str_eq(a->template_name, b->template_name) && t_json_eq(a->data, b->data) &&
	       t_str_eq(a->category, b->category) && a->priority == b->priority &&
	       t_str_eq(a->idempotency_key, b->idempotency_key) &&
	       t_str_eq(a->client_id, b->client_id) && t_str_eq(a->batch_id, b->batch_id) &&
	       t_json_eq(a->metadata, b->metadata) && a->send_at == b->send_at &&
	       a->expires_at == b->expires_at && a->accepted_at == b->accepted_at &&
	       a->attempt == b->attempt;
}

/* t_roundtrip - encode and decode each of the N notes; true when all come back equal */
static bool t_roundtrip(struct note **notes, size_t n)
{
	struct codec_error err;
	struct note *back;
	size_t i, len;
	char *buf;
	bool good = true;

	for (i = 0; i < n && good; i++) {
		if (codec_note_encode(notes[i], &buf, &len) < 0)
			return false;
		if (codec_note_decode(buf, len, &back, &err) < 0) {
			diag("decode: %s: %s in %s", err.field, err.message, buf);
			good = false;
		} else {
			good = t_note_eq(notes[i], back);
			if (!good)
				diag("differs after round trip: %s", buf);
			codec_note_free(back);
		}
		free(buf);
	}
	return good;
}

/* t_parse - parse the NUL-terminated JSON with default limits; NULL (and a diag) on error */
static struct request *t_parse(const char *json)
{
	struct codec_error err;
	struct request *r;

	if (codec_request_parse(json, strlen(json), NULL, &r, &err) < 0) {
		diag("refused: field \"%s\": %s", err.field, err.message);
		return NULL;
	}
	return r;
}

/* t_bad - one bad case: parse (with MAX_REQUEST, 0 = default) fails and names FIELD */
static void t_bad(const char *json, size_t len, size_t max_request, const char *field,
	const char *desc)
{
	struct codec_limits lim = { max_request, 0, 0, NULL, NULL };
	struct codec_error err;
	struct request *r = NULL;
	int rc = codec_request_parse(json, len, &lim, &r, &err);

	if (!ok(rc == -1 && r == NULL && strcmp(err.field, field) == 0, "bad: %s -> \"%s\"", desc, field))
		diag(rc == 0 ? "accepted" : "got field \"%s\": %s", err.field, err.message);
	codec_request_free(r);
}

/* t_example - the §2 example: fields, split into 4 notes, round trip */
static void t_example(void)
{
	struct request *r = t_parse(example);
	struct note **notes = NULL;
	size_t n = 0, i;
	int64_t t0, t1, before = rfc3339_now();
	bool same_tx = true, order = true;

	rfc3339_parse("2026-11-22T09:00:00Z", &t0);
	rfc3339_parse("2026-11-22T10:00:00Z", &t1);
	if (!ok(r != NULL, "the SPEC §2 example is accepted")) {
		ok(0, "example fields");
		ok(0, "example split");
		ok(0, "example round trip");
		return;
	}
	ok(r->rcpt == CODEC_RCPT_USER && r->n_user_ids == 1 && strcmp(r->user_ids[0], "user123") == 0 &&
	   r->channels == 0xf && strcmp(r->template_name, "order_shipped") == 0 &&
	   strcmp(r->category, "transactional") == 0 && r->priority == 8 &&
	   strcmp(r->idempotency_key, "order-A-42-shipped") == 0 && strcmp(r->client_id, "shop") == 0 &&
	   strcmp(r->batch_id, "spring-sale-2026") == 0 && r->send_at == t0 && r->expires_at == t1 &&
	   r->ttl == 0 && r->data && r->metadata, "example fields");
	if (codec_request_split(r, 4, &notes, &n) == 0 && n == 4) {
		for (i = 0; i < n; i++) {
			same_tx = same_tx && strcmp(notes[i]->txid, notes[0]->txid) == 0;
			order = order && notes[i]->channel == (enum codec_channel)i &&
				notes[i]->priority == 8 && notes[i]->send_at == t0 &&
				notes[i]->expires_at == t1 && notes[i]->accepted_at >= before &&
				notes[i]->attempt == 1 && strcmp(notes[i]->user_id, "user123") == 0 &&
				notes[i]->address == NULL;
		}
		ok(same_tx && order && txid_valid(notes[0]->txid), "example split: 4 notes, one txid");
	} else {
		ok(0, "example split: 4 notes, one txid");
	}
	ok(notes && t_roundtrip(notes, n), "example notes round trip");
	codec_notes_free(notes, n);
	codec_request_free(r);
}

/* t_fanout - 3 users x 2 channels: 6 notes, a txid per user; reply with transaction_ids */
static void t_fanout(void)
{
	static const char req[] = "{\"user_ids\":[\"a\",\"b\",\"c\"],\"channels\":{\"sms\":{},"
		"\"email\":{}},\"template\":\"welcome\",\"category\":\"marketing\"}";
	static const char *const users[] = { "a", "a", "b", "b", "c", "c" };
	struct request *r = t_parse(req);
	struct note **notes = NULL;
	struct json_object *o = NULL, *ids = NULL, *v;
	size_t n = 0, i;
	bool good = true;
	char *reply = NULL;

	ok(r && r->rcpt == CODEC_RCPT_USERS && r->n_user_ids == 3 && r->priority == -1,
	   "user_ids request accepted, priority left to the category");
	if (r == NULL || codec_request_split(r, 1, &notes, &n) < 0 || n != 6) {
		ok(0, "fan-out: 6 notes");
		ok(0, "fan-out: one txid per user");
		ok(0, "fan-out round trip");
		ok(0, "reply transaction_ids");
		codec_request_free(r);
		return;
	}
	for (i = 0; i < n; i++)
		good = good && strcmp(notes[i]->user_id, users[i]) == 0 &&
			notes[i]->channel == (i % 2 ? CODEC_CH_SMS : CODEC_CH_EMAIL) &&
			notes[i]->priority == 1 && strcmp(notes[i]->category, "marketing") == 0;
	ok(good, "fan-out: 6 notes, user-major, email before sms, default priority");
	ok(strcmp(notes[0]->txid, notes[1]->txid) == 0 && strcmp(notes[2]->txid, notes[3]->txid) == 0 &&
	   strcmp(notes[4]->txid, notes[5]->txid) == 0 && strcmp(notes[0]->txid, notes[2]->txid) != 0 &&
	   strcmp(notes[2]->txid, notes[4]->txid) != 0 && strcmp(notes[0]->txid, notes[4]->txid) != 0,
	   "fan-out: one txid per user, shared by its channels, distinct across users");
	ok(t_roundtrip(notes, n), "fan-out notes round trip");
	reply = codec_reply_received(r, notes, n);
	if (reply)
		o = json_tokener_parse(reply);
	good = o && json_object_object_length(o) == 2 &&
		json_object_object_get_ex(o, "status", &v) &&
		strcmp(json_object_get_string(v), "received") == 0 &&
		json_object_object_get_ex(o, "transaction_ids", &ids) &&
		json_object_object_length(ids) == 3;
	for (i = 0; good && i < n; i += 2)
		good = json_object_object_get_ex(ids, users[i], &v) &&
			strcmp(json_object_get_string(v), notes[i]->txid) == 0;
	if (!ok(good, "reply: transaction_ids keyed by user id"))
		diag("%s", reply ? reply : "(null)");
	json_object_put(o);
	free(reply);
	codec_notes_free(notes, n);
	codec_request_free(r);
}

/* t_to - a "to" recipient: one note per channel with that channel's address */
static void t_to(void)
{
	static const char req[] = "{\"to\":{\"email\":\"ada@example.org\",\"phone\":\"+441632960961\","
		"\"push_token\":{\"platform\":\"ios\",\"token\":\"tok\"},"
		"\"webhook_url\":\"https://hooks.example.org:8443/h?x=1\"},"
		"\"channels\":{\"webhook\":{\"event\":\"e\",\"data\":{\"k\":[1,2.50,\"\\u00e9\"]}},"
		"\"push\":{\"body\":\"b\"},\"email\":{\"subject\":\"caf\\u00e9 \\ud83d\\ude00\",\"html\":\"<p>\"}},"
		"\"ttl\":3600,\"priority\":0}";
	struct request *r = t_parse(req);
	struct note **notes = NULL;
	size_t n = 0;
	char *reply = NULL, want[128];

	if (r == NULL || codec_request_split(r, 4, &notes, &n) < 0 || n != 3) {
		ok(0, "to: 3 notes with their addresses");
		ok(0, "to: ttl becomes expires_at");
		ok(0, "to: round trip");
		ok(0, "reply: single transaction_id");
		codec_request_free(r);
		return;
	}
	ok(notes[0]->user_id == NULL && strcmp(notes[0]->address, "ada@example.org") == 0 &&
	   notes[1]->channel == CODEC_CH_PUSH && strcmp(notes[1]->address, "tok") == 0 &&
	   strcmp(notes[1]->push_platform, "ios") == 0 && notes[0]->push_platform == NULL &&
	   strcmp(notes[2]->address, "https://hooks.example.org:8443/h?x=1") == 0 &&
	   notes[2]->push_platform == NULL && notes[0]->priority == 0 &&
	   strcmp(json_object_get_string(json_object_object_get(notes[0]->content, "subject")),
	          "caf\xc3\xa9 \xf0\x9f\x98\x80") == 0,
	   "to: 3 notes with their addresses, escapes decoded");
	ok(notes[0]->expires_at == notes[0]->accepted_at + 3600 * 1000000LL &&
	   notes[2]->expires_at == notes[0]->expires_at, "to: ttl becomes expires_at = now + ttl");
	ok(t_roundtrip(notes, n), "to: notes round trip");
	reply = codec_reply_received(r, notes, n);
	snprintf(want, sizeof(want), "{\"status\":\"received\",\"transaction_id\":\"%s\"}", notes[0]->txid);
	is_str(reply, want, "reply: single transaction_id");
	free(reply);
	codec_notes_free(notes, n);
	codec_request_free(r);
}

/* t_priorities - names, numbers and the default */
static void t_priorities(void)
{
	static const struct { const char *p; int want; } cases[] = {
		{ "\"low\"", 1 }, { "\"normal\"", 4 }, { "\"high\"", 8 }, { "0", 0 }, { "9", 9 },
		{ NULL, 7 },
	};
	size_t i, n;
	bool good = true;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *json = cases[i].p ? t_strdupf("{" U SMS ",\"priority\":%s}", cases[i].p)
		                        : t_strdupf("{" U SMS "}");
		struct request *r = t_parse(json);
		struct note **notes = NULL;

		good = good && r && codec_request_split(r, 7, &notes, &n) == 0 && n == 1 &&
			notes[0]->priority == cases[i].want && strcmp(notes[0]->category, "notifications") == 0;
		codec_notes_free(notes, n);
		codec_request_free(r);
		free(json);
	}
	ok(good, "priority low/normal/high/0/9 and the caller's default; category defaults");
}

/* t_limits - a caller's limits: categories, default category, user_ids count */
static void t_limits(void)
{
	static const char *const cats[] = { "alerts", NULL };
	struct codec_limits lim = { 0, 0, 2, cats, "alerts" };
	struct codec_error err;
	struct request *r = NULL;
	static const char three[] = "{\"user_ids\":[\"a\",\"b\",\"c\"]," SMS "}";
	static const char two[] = "{\"user_ids\":[\"a\",\"b\"]," SMS "}";
	static const char cat[] = "{" U SMS ",\"category\":\"transactional\"}";
	struct note **notes = NULL;
	size_t n = 0;

	ok(codec_request_parse(three, strlen(three), &lim, &r, &err) == -1 &&
	   strcmp(err.field, "user_ids") == 0, "limits: max_user_ids 2 refuses 3");
	ok(codec_request_parse(two, strlen(two), &lim, &r, &err) == 0 &&
	   strcmp(r->category, "alerts") == 0, "limits: default category from the limits");
	codec_request_free(r);
	r = NULL;
	ok(codec_request_parse(cat, strlen(cat), &lim, &r, &err) == -1 &&
	   strcmp(err.field, "category") == 0, "limits: category outside the configured list");
	r = t_parse("{" U "\"channels\":{\"email\":{}},\"template\":\"t\"}");
	ok(r && codec_request_split(r, 10, &notes, &n) == -1 && notes == NULL,
	   "split refuses a default priority of 10");
	codec_request_free(r);
}

/* t_replace - a malloc'd copy of S with the first FROM replaced by TO (or NULL if absent) */
static char *t_replace(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);

	if (p == NULL)
		return NULL;
	return t_strdupf("%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
}

/* t_decode_bad - the corrupted wire bodies the worker must park */
static void t_decode_bad(void)
{
	struct request *r = t_parse("{" U EMAIL ",\"data\":{\"k\":1},\"client_id\":\"shop\"}");
	struct note **notes = NULL, *back = NULL;
	struct codec_error err;
	size_t n = 0, len = 0, i;
	char *wire = NULL;
	struct { const char *from, *to, *field, *desc; } cases[] = {
		{ "\"v\":1", "\"v\":2", "v", "wrong version" },
		{ "\"v\":1,", "", "v", "no version" },
		{ "\"v\":1", "\"v\":\"1\"", "v", "version a string" },
		{ "\"txid\":\"", "\"txid\":\"x", "txid", "bad txid" },
		{ "\"priority\":4", "\"priority\":12", "priority", "priority 12" },
		{ "\"priority\":4", "\"priority\":4.0", "priority", "priority a double" },
		{ "\"channel\":\"email\"", "\"channel\":\"fax\"", "channel", "unknown channel" },
		{ "\"channel\":\"email\"", "\"channel\":\"sms\"", "content.subject", "content of another channel" },
		{ "\"attempt\":1", "\"attempt\":0", "attempt", "attempt 0" },
		{ "\"attempt\":1", "\"attempt\":1,\"extra\":true", "extra", "unknown key" },
		{ "\"user_id\":\"u1\"", "\"to\":{\"email\":\"a@example.org\"}", NULL, "to instead of user_id" },
		{ "\"user_id\":\"u1\"", "\"user_id\":\"u1\",\"to\":{\"email\":\"a@example.org\"}", "user_id",
			"both user_id and to" },
		{ "\"user_id\":\"u1\"", "\"to\":{\"phone\":\"+15550100\"}", "to.email", "to without the channel's address" },
		{ "\"user_id\":\"u1\",", "", "user_id", "no recipient" },
		{ "\"user_id\":\"u1\"", "\"user_id\":null", "user_id", "user_id null" },
		{ "\"category\":\"notifications\",", "", "category", "no category" },
		{ "\"client_id\":\"shop\"", "\"client_id\":\"sh op\"", "client_id", "bad client_id" },
		{ "\"data\":{\"k\":1}", "\"data\":null", "data", "data null" },
		{ "\"accepted_at\":", "\"accepted_at\":-", "accepted_at", "negative accepted_at" },
		{ "\"data\":{\"k\":1}", "\"data\":{\"k\":1,\"k\":2}", "data.k", "duplicate key" },
	};

	if (r == NULL || codec_request_split(r, 4, &notes, &n) < 0 ||
	    codec_note_encode(notes[0], &wire, &len) < 0) {
		for (i = 0; i < sizeof(cases) / sizeof(cases[0]) + 6; i++)
			ok(0, "decode setup");
		codec_notes_free(notes, n);
		codec_request_free(r);
		return;
	}
	ok(len == strlen(wire) && strncmp(wire, "{\"v\":1,", 7) == 0, "wire body starts with \"v\":1");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *bad = t_replace(wire, cases[i].from, cases[i].to);
		int rc = bad ? codec_note_decode(bad, strlen(bad), &back, &err) : 0;

		if (cases[i].field == NULL) {   /* a legitimate variant: must decode */
			ok(rc == 0 && back && strcmp(back->address, "a@example.org") == 0,
			   "decode: %s is fine", cases[i].desc);
		} else if (!ok(bad && rc == -1 && back == NULL && strcmp(err.field, cases[i].field) == 0,
		               "decode refuses %s -> \"%s\"", cases[i].desc, cases[i].field)) {
			diag("%s -> %s", bad ? bad : "(no match)", rc ? err.field : "accepted");
		}
		codec_note_free(back);
		back = NULL;
		free(bad);
	}
	ok(codec_note_decode(wire, len / 2, &back, &err) == -1 && back == NULL,
	   "decode refuses a truncated body");
	ok(codec_note_decode("hello", 5, &back, &err) == -1 && strcmp(err.field, "") == 0,
	   "decode refuses what is not JSON");
	ok(codec_note_decode("[]", 2, &back, &err) == -1 && strcmp(err.field, "") == 0,
	   "decode refuses a JSON array");
	ok(codec_note_decode("", 0, &back, &err) == -1 && strcmp(err.field, "") == 0,
	   "decode refuses an empty body");
	ok(codec_note_decode(wire, len, &back, &err) == 0 && t_note_eq(back, notes[0]),
	   "the untouched body decodes");
	codec_note_free(back);
	free(wire);
	codec_notes_free(notes, n);
	codec_request_free(r);
}

/* t_reply_error - error replies: exact shape, line, escaping */
static void t_reply_error(void)
{
	struct codec_error e;
	struct json_object *o, *v;
	char *s;
	bool good;

	snprintf(e.field, sizeof(e.field), "to.phone");
	snprintf(e.message, sizeof(e.message), "bad phone");
	s = codec_reply_error(&e, 0);
	is_str(s, "{\"error\":true,\"status\":\"invalid_request\",\"message\":\"bad phone\","
	       "\"field\":\"to.phone\"}", "reply: error without line");
	free(s);
	s = codec_reply_error(&e, 17);
	is_str(s, "{\"error\":true,\"status\":\"invalid_request\",\"message\":\"bad phone\","
	       "\"field\":\"to.phone\",\"line\":17}", "reply: error with line");
	free(s);
	snprintf(e.field, sizeof(e.field), "a\"b");
	snprintf(e.message, sizeof(e.message), "say \"hi\"\r\n\x01\\ / \xff end");
	s = codec_reply_error(&e, 3);
	o = s ? json_tokener_parse(s) : NULL;
	good = o && strpbrk(s, "\r\n\x01") == NULL && jsoncheck_scan(s, strlen(s), 0, NULL) == 0 &&
		json_object_object_get_ex(o, "message", &v) &&
		strcmp(json_object_get_string(v), "say \"hi\"\r\n\x01\\ / ? end") == 0 &&
		json_object_object_get_ex(o, "field", &v) && strcmp(json_object_get_string(v), "a\"b") == 0;
	if (!ok(good, "reply: quotes, control characters and bad UTF-8 are escaped or replaced"))
		diag("%s", s ? s : "(null)");
	json_object_put(o);
	free(s);
}

/* t_real_errors - real parse errors make well-formed replies; long fields are cut cleanly */
static void t_real_errors(void)
{
	struct codec_error err;
	struct request *r = NULL;
	char *key = t_repeat("\xc3\xa9", 200), *json = t_strdupf("{" U SMS ",\"%s\":1}", key);
	char *s;
	size_t flen;

	ok(codec_request_parse(json, strlen(json), NULL, &r, &err) == -1 &&
	   (flen = strlen(err.field)) < sizeof(err.field) && flen > 100 &&
	   strcmp(err.field + flen - 3, "...") == 0 && strncmp(err.field, key, 20) == 0 &&
	   jsoncheck_utf8_valid(err.field, flen), "a 400-byte unknown key is cut at a character");
	s = codec_reply_error(&err, 1);
	ok(s && jsoncheck_scan(s, strlen(s), 0, NULL) == 0, "...and its reply is strict JSON");
	free(s);
	free(json);
	free(key);
}

/* t_jsoncheck - the scanner on its own */
static void t_jsoncheck(void)
{
	static const char *const good[] = {
		"0", "-0.0e-0", "1E+5", "\"\\ud83d\\ude00\\/\\b\\f\\n\\r\\t\\\"\\\\\"", "[]", "{}",
		" [1, [2, [3, {\"a\": null}]], true, false] ", "{\"a\":{\"a\":{\"a\":1}},\"b\":[{\"a\":1}]}",
		"9223372036854775807", "-9223372036854775808", "\"\xf4\x8f\xbf\xbf\xe2\x82\xac\"",
		"\"\x7f\"", "1e-400",
	};
	struct jsoncheck_error e;
	size_t i;
	bool all = true;
	char *deep;
	clock_t t0;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct json_tokener *tok = json_tokener_new();
		struct json_object *o;

		json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
		if (jsoncheck_scan(good[i], strlen(good[i]), 0, &e) < 0) {
			diag("refused %s: %s at %s", good[i], e.message, e.path);
			all = false;
		}
		o = json_tokener_parse_ex(tok, good[i], (int)strlen(good[i]) + 1);
		if (o == NULL) {
			diag("json-c refused %s", good[i]);
			all = false;
		}
		json_object_put(o);
		json_tokener_free(tok);
	}
	ok(all, "jsoncheck and json-c accept strict JSON");
	ok(jsoncheck_scan("[1,{\"a\":[0,1,{\"b\":\"\\u0000\"}]}]", 30, 0, &e) == -1 &&
	   strcmp(e.path, "[1].a[2].b") == 0, "jsoncheck: path through arrays");
	ok(jsoncheck_scan("{\"a\":[[1]]}", 11, 2, &e) == -1 && strcmp(e.path, "a[0]") == 0 &&
	   jsoncheck_scan("{\"a\":[1]}", 9, 2, &e) == 0, "jsoncheck: depth limit is exact");
	deep = t_repeat("[", 1000000);
	t0 = clock();
	ok(jsoncheck_scan(deep, 1000000, 0, &e) == -1 &&
	   (clock() - t0) / (double)CLOCKS_PER_SEC < 1.0, "jsoncheck: 1,000,000-deep input refused fast");
	free(deep);
	{
		size_t n = 0;
		char *obj = malloc(100000);

		if (obj == NULL)
			exit(99);
		n += (size_t)sprintf(obj, "{");
		for (i = 0; i < 5000; i++)
			n += (size_t)sprintf(obj + n, "%s\"k%zu\":%zu", i ? "," : "", i, i);
		n += (size_t)sprintf(obj + n, ",\"k4321\":0}");
		ok(jsoncheck_scan(obj, n, 0, &e) == -1 && strcmp(e.path, "k4321") == 0,
		   "jsoncheck: duplicate found among 5000 keys");
		free(obj);
	}
}

int main(void)
{
	struct gen gen[16];
	char deep_field[JSONCHECK_PATH_MAX], top_field[JSONCHECK_PATH_MAX];
	size_t nstatic = sizeof(bad_static) / sizeof(bad_static[0]), ngen, i;

	ngen = t_gen(gen, deep_field, sizeof(deep_field), top_field);
	plan((int)(nstatic + ngen) + 54);
	for (i = 0; i < nstatic; i++)
		t_bad(bad_static[i].json, strlen(bad_static[i].json), 0, bad_static[i].field,
		      bad_static[i].desc);
	for (i = 0; i < ngen; i++) {
		t_bad(gen[i].json, gen[i].len, gen[i].max_request, gen[i].field, gen[i].desc);
		free(gen[i].json);
	}
	t_example();
	t_fanout();
	t_to();
	t_priorities();
	t_limits();
	t_decode_bad();
	t_reply_error();
	t_real_errors();
	t_jsoncheck();
	return done();
}
