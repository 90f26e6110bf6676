/* prov_http - SPEC §5 sms: a generic HTTP SMS API (method, URL, headers, a form or JSON body
 * template, basic or bearer auth) with a Twilio-compatible preset
 *
 * The body template is rendered by the §6 engine over {{to}} (the E.164 phone), {{from}} (the
 * client's sms_sender, else defaults.sms_sender; absent when neither), {{body}} (the SMS text)
 * and {{id}} (the identity, the same on every attempt). Each value is escaped for the content
 * type before rendering (percent-encoding for a form, JSON string escaping for JSON, where the
 * template author puts the quotes), so no value can break the body. Without a template the body
 * is To=&From=&Body= (form) or {"to","from","body"} (json). The identity also goes out as an
 * Idempotency-Key header (and I-Twilio-Idempotency-Token with the preset).
 *
 * The URL is the operator's, so the private-destination guard does not apply (a provider on a
 * private network is legitimate); TLS verification follows channels.sms.tls_verify. The
 * provider's message id is read from a JSON answer at message_id_field (a dotted path, array
 * indexes as numbers), else an X-Message-Id header; none: still accepted.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "conf.h"
#include "log.h"
#include "prov.h"
#include "template.h"

#define HTTP_TWILIO_BASE "https://api.twilio.com/2010-04-01/Accounts/"
#define HTTP_TWILIO_ID_FIELD "sid"
#define HTTP_BODY_MAX (256 * 1024)   /* bytes of a rendered body */
#define HTTP_ID_MAX 200              /* bytes of an identity sent as a header */
#define HTTP_E164_DIGITS 15

/* What init resolves from the provider's config. */
struct http_priv {
	char *url;                   /* the endpoint (the preset's, or the configured url) */
	int method;                  /* enum conf_http_method */
	int content_type;            /* enum conf_http_content */
	int auth;                    /* enum conf_http_auth */
	bool twilio;
	bool own_ctype;              /* the configured headers set Content-Type themselves */
	const char *body_tpl;        /* NULL: the default body */
	const char *id_field;        /* NULL: no message id from the answer */
};

#define HTTP_QUOTE_MIN 4             /* bytes of the text a detail may not quote... */
#define HTTP_QUOTE_LEN 24            /* ...looking at its first bytes only */

/* What one call keeps beside it, to scrub the detail (freed by finish). */
struct http_call {
	char *text;                  /* the SMS text, which no detail may quote... */
	char *esc;                   /* ...nor as it was escaped in the body */
};

/* http_hdr_ok - S is safe in a header value: printable ASCII or tab, no CR/LF */
static bool http_hdr_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if ((*s < 0x20 && *s != '\t') || *s == 0x7f)
			return false;
	return true;
}

/* http_e164 - S is "+" and 2-15 digits, the first not 0 */
static bool http_e164(const char *s)
{
	size_t n;

	if (s == NULL || s[0] != '+' || s[1] < '1' || s[1] > '9')
		return false;
	n = strspn(s + 1, "0123456789");
	return s[1 + n] == '\0' && n >= 2 && n <= HTTP_E164_DIGITS;
}

/* http_escape - V escaped for content type CT (form: percent-encoded; json: the inside of a
 * JSON string), malloc'd; NULL on ENOMEM */
static char *http_escape(int ct, const char *v)
{
	struct json_object *o;
	const char *s;
	char *out = NULL, *e;
	size_t len;

	if (ct == CONF_HTTP_FORM) {
		if ((e = curl_easy_escape(NULL, v, 0)) == NULL)
			return NULL;
		out = strdup(e);
		curl_free(e);
		return out;
	}
	if ((o = json_object_new_string(v)) == NULL)
		return NULL;
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
	if (s != NULL && (len = strlen(s)) >= 2 && (out = malloc(len - 1)) != NULL) {
		memcpy(out, s + 1, len - 2);     /* without the quotes */
		out[len - 2] = '\0';
	}
	json_object_put(o);
	return out;
}

/* http_vars_add - set KEY of O to V escaped for CT (nothing when V is NULL); -1 on ENOMEM */
static int http_vars_add(struct json_object *o, int ct, const char *key, const char *v)
{
	struct json_object *s;
	char *e;

	if (v == NULL)
		return 0;
	if ((e = http_escape(ct, v)) == NULL)
		return -1;
	s = json_object_new_string(e);
	free(e);
	if (s == NULL)
		return -1;
	json_object_object_add(o, key, s);
	return 0;
}

/* http_render - TPL rendered over to/from/body/id escaped for CT into *OUT (malloc'd); 0, or -1
 * with ERR (a template error, or "out of memory") */
static int http_render(const char *tpl, int ct, const char *to, const char *from,
	const char *body, const char *id, char **out, char *err, size_t errlen)
{
	struct json_object *vars = json_object_new_object();
	size_t len;
	int rc = -1;

	*out = NULL;
	if (vars == NULL || http_vars_add(vars, ct, "to", to) < 0 ||
	    http_vars_add(vars, ct, "from", from) < 0 || http_vars_add(vars, ct, "body", body) < 0 ||
	    http_vars_add(vars, ct, "id", id) < 0)
		snprintf(err, errlen, "out of memory");
	else
		rc = template_render(tpl, strlen(tpl), &vars, 1, false, HTTP_BODY_MAX, out, &len, err,
		    errlen);
	json_object_put(vars);
	return rc;
}

/* http_default_form - "To=..&From=..&Body=.." (From left out when FROM is NULL); NULL on ENOMEM */
static char *http_default_form(const char *to, const char *from, const char *body)
{
	char *t = http_escape(CONF_HTTP_FORM, to), *f = NULL, *b = http_escape(CONF_HTTP_FORM, body);
	char *out = NULL;
	size_t n;

	if (from != NULL)
		f = http_escape(CONF_HTTP_FORM, from);
	if (t != NULL && b != NULL && (from == NULL || f != NULL)) {
		n = strlen(t) + strlen(b) + (f != NULL ? strlen(f) : 0) + 32;
		if ((out = malloc(n)) != NULL)
			snprintf(out, n, "To=%s%s%s&Body=%s", t, f != NULL ? "&From=" : "",
			    f != NULL ? f : "", b);
	}
	free(t);
	free(f);
	free(b);
	return out;
}

/* http_default_json - {"to":..,"from":..,"body":..} (from null when FROM is NULL); NULL on ENOMEM */
static char *http_default_json(const char *to, const char *from, const char *body)
{
	struct json_object *o = json_object_new_object();
	const char *s;
	char *out = NULL;

	if (o == NULL)
		return NULL;
	json_object_object_add(o, "to", json_object_new_string(to));
	json_object_object_add(o, "from", from != NULL ? json_object_new_string(from) : NULL);
	json_object_object_add(o, "body", json_object_new_string(body));
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
	if (s != NULL)
		out = strdup(s);
	json_object_put(o);
	return out;
}

/* http_check_headers - every configured header is "Name: value" with a header-safe value */
static int http_check_headers(const struct conf_provider *cp, struct http_priv *h, char *err,
	size_t errlen)
{
	size_t i;

	for (i = 0; i < cp->headers.n; i++) {
		const char *line = cp->headers.v[i];

		if (strchr(line, ':') == NULL || !http_hdr_ok(line)) {
			snprintf(err, errlen, "headers[%zu]: expected \"Name: value\" in printable "
			    "ASCII", i);
			return -1;
		}
		if (strncasecmp(line, "Content-Type:", 13) == 0)
			h->own_ctype = true;
	}
	return 0;
}

/* http_check_preset - the preset's fixed choices against what the config asks for */
static int http_check_preset(const struct conf_provider *cp, char *err, size_t errlen)
{
	if (cp->method != CONF_HTTP_POST)
		snprintf(err, errlen, "method: preset \"twilio\" uses POST");
	else if (cp->content_type != CONF_HTTP_FORM)
		snprintf(err, errlen, "content_type: preset \"twilio\" sends a form");
	else if (cp->auth == CONF_AUTH_BEARER)
		snprintf(err, errlen, "auth: preset \"twilio\" uses basic auth (username, password)");
	else
		return 0;
	return -1;
}

/* http_twilio_url - the Messages URL of account SID, malloc'd; NULL on ENOMEM */
static char *http_twilio_url(const char *sid)
{
	char *e = curl_easy_escape(NULL, sid, 0), *u = NULL;
	size_t n;

	if (e == NULL)
		return NULL;
	n = strlen(HTTP_TWILIO_BASE) + strlen(e) + 16;
	if ((u = malloc(n)) != NULL)
		snprintf(u, n, "%s%s/Messages.json", HTTP_TWILIO_BASE, e);
	curl_free(e);
	return u;
}

/* http_cleanup - release what init resolved */
static void http_cleanup(struct prov *p)
{
	struct http_priv *h = p->priv;

	if (h == NULL)
		return;
	free(h->url);
	free(h);
	p->priv = NULL;
}

/* http_init - resolve the preset, URL, auth and body; a body template must render */
static int http_init(struct prov *p, char *err, size_t errlen)
{
	const struct conf_provider *cp = p->cp;
	struct http_priv *h;
	char why[256], *out = NULL;

	if (p->channel != CONF_CH_SMS || cp == NULL) {
		snprintf(err, errlen, "provider type http serves channel sms only");
		return -1;
	}
	if ((h = p->priv = calloc(1, sizeof *h)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->twilio = cp->preset == CONF_PRESET_TWILIO;
	h->method = cp->method;
	h->content_type = cp->content_type;
	h->auth = cp->auth;
	h->body_tpl = cp->body;
	h->id_field = cp->message_id_field;
	if (h->twilio) {
		if (http_check_preset(cp, err, errlen) < 0)
			goto fail;
		h->auth = CONF_AUTH_BASIC;
		if (h->id_field == NULL)
			h->id_field = HTTP_TWILIO_ID_FIELD;
	}
	if (cp->url != NULL)
		h->url = strdup(cp->url);
	else if (h->twilio && cp->username != NULL)
		h->url = http_twilio_url(cp->username);
	if (h->url == NULL) {
		snprintf(err, errlen, cp->url == NULL && !h->twilio ? "url: required" :
		    "out of memory");
		goto fail;
	}
	if (!prov_url_ok(h->url)) {
		snprintf(err, errlen, "url: not a valid http(s) URL");
		goto fail;
	}
	if (h->method == CONF_HTTP_GET && h->content_type != CONF_HTTP_FORM) {
		snprintf(err, errlen, "content_type: method GET sends the form in the query string; "
		    "json needs POST or PUT");
		goto fail;
	}
	if (h->auth == CONF_AUTH_BEARER && (cp->token == NULL || !prov_token_ok(cp->token))) {
		snprintf(err, errlen, "token: required for auth = \"bearer\", printable without "
		    "spaces");
		goto fail;
	}
	if (h->auth == CONF_AUTH_BASIC && (cp->username == NULL || cp->password == NULL)) {
		snprintf(err, errlen, "auth = \"basic\" needs username and password");
		goto fail;
	}
	if (h->id_field != NULL && h->id_field[0] == '\0') {
		snprintf(err, errlen, "message_id_field: empty");
		goto fail;
	}
	if (http_check_headers(cp, h, err, errlen) < 0)
		goto fail;
	if (h->body_tpl != NULL) {
		if (http_render(h->body_tpl, h->content_type, "+15550100", "Sender", "text", "id",
		    &out, why, sizeof why) < 0) {
			snprintf(err, errlen, "body: %s", why);
			goto fail;
		}
		free(out);
	}
	return 0;
fail:
	http_cleanup(p);
	return -1;
}

/* http_call_free - release HC (NULL is fine) */
static void http_call_free(struct http_call *hc)
{
	if (hc == NULL)
		return;
	free(hc->text);
	free(hc->esc);
	free(hc);
}

/* http_headers - the request's headers: Content-Type, the configured ones, the idempotency
 * key(s), bearer auth; -1 on ENOMEM */
static int http_headers(const struct prov *p, const struct prov_msg *m, struct prov_call *call)
{
	const struct http_priv *h = p->priv;
	const struct conf_provider *cp = p->cp;
	char line[HTTP_ID_MAX + 64];
	char *bearer;
	size_t i, n;
	int rc;

	if (prov_header(call, "Expect:") < 0)
		return -1;
	if (h->method != CONF_HTTP_GET && !h->own_ctype &&
	    prov_header(call, h->content_type == CONF_HTTP_JSON ? "Content-Type: application/json" :
	    "Content-Type: application/x-www-form-urlencoded") < 0)
		return -1;
	for (i = 0; i < cp->headers.n; i++)
		if (prov_header(call, cp->headers.v[i]) < 0)
			return -1;
	snprintf(line, sizeof line, "Idempotency-Key: %s", m->identity);
	if (prov_header(call, line) < 0)
		return -1;
	snprintf(line, sizeof line, "I-Twilio-Idempotency-Token: %s", m->identity);
	if (h->twilio && prov_header(call, line) < 0)
		return -1;
	if (h->auth != CONF_AUTH_BEARER)
		return 0;
	n = strlen(cp->token) + 32;
	if ((bearer = malloc(n)) == NULL)
		return -1;
	snprintf(bearer, n, "Authorization: Bearer %s", cp->token);
	rc = prov_header(call, bearer);
	OPENSSL_cleanse(bearer, n);
	free(bearer);
	return rc;
}

/* http_body - the request body of M (the template rendered, or the default); 0, or -1 with R
 * filled */
static int http_body(const struct prov *p, const struct prov_msg *m, const char *from,
	char **out, struct prov_result *r)
{
	const struct http_priv *h = p->priv;
	char why[256], detail[360];

	*out = NULL;
	if (h->body_tpl != NULL) {
		if (http_render(h->body_tpl, h->content_type, m->address, from, m->text, m->identity,
		    out, why, sizeof why) < 0) {
			snprintf(detail, sizeof detail, "body template: %s%s", why, from == NULL &&
			    strstr(why, "\"from\"") != NULL ? " (no sms_sender for this client or in "
			    "defaults)" : "");
			return prov_fail(r, strstr(why, "out of memory") != NULL ? PROV_TRANSIENT :
			    PROV_PERMANENT, detail);
		}
		return 0;
	}
	*out = h->content_type == CONF_HTTP_JSON ? http_default_json(m->address, from, m->text) :
	    http_default_form(m->address, from, m->text);
	return *out != NULL ? 0 : prov_fail(r, PROV_TRANSIENT, "out of memory");
}

/* http_get_url - URL with QUERY appended ("?" or "&"), malloc'd; NULL on ENOMEM */
static char *http_get_url(const char *url, const char *query)
{
	/* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker): http_body set QUERY or failed */
	size_t n = strlen(url) + strlen(query) + 2;
	char *u = malloc(n);

	if (u != NULL)
		snprintf(u, n, "%s%s%s", url, query[0] == '\0' ? "" : strchr(url, '?') ? "&" : "?",
		    query);
	return u;
}

/* http_start - the request for M to the provider */
static int http_start(struct prov *p, const struct prov_msg *m, struct prov_call **callp,
	struct prov_result *r)
{
	const struct http_priv *h = p->priv;
	const struct conf_provider *cp = p->cp;
	const struct conf_channel *cc = &p->conf->channels[CONF_CH_SMS];
	struct prov_call *call = NULL;
	struct http_call *hc;
	const char *from = NULL;
	char *body = NULL, *url;

	*callp = NULL;
	r->http_status = 0;
	r->retry_after = -1;
	r->message_id[0] = '\0';
	if (!http_e164(m->address))
		return prov_fail(r, PROV_PERMANENT, "address is not an E.164 phone number");
	if (m->text == NULL)
		return prov_fail(r, PROV_PERMANENT, "no SMS body");
	if (!prov_token_ok(m->identity) || strlen(m->identity) > HTTP_ID_MAX)
		return prov_fail(r, PROV_PERMANENT, "message identity unusable as idempotency key");
	if (m->client != NULL && m->client->sms_sender != NULL)
		from = m->client->sms_sender;
	else
		from = p->conf->defaults.sms_sender;
	if (http_body(p, m, from, &body, r) < 0)
		return -1;
	call = prov_call_new(p, cp->timeout, cc->tls_verify, true);
	if (call == NULL || (hc = call->priv = calloc(1, sizeof *hc)) == NULL ||
	    (hc->text = strdup(m->text)) == NULL ||
	    (hc->esc = http_escape(h->content_type, m->text)) == NULL ||
	    http_headers(p, m, call) < 0)
		goto oom;
	if (h->method == CONF_HTTP_GET) {
		if ((url = http_get_url(h->url, body)) == NULL)
			goto oom;
		curl_easy_setopt(call->easy, CURLOPT_URL, url);   /* libcurl copies it */
		free(url);
		free(body);
		curl_easy_setopt(call->easy, CURLOPT_HTTPGET, 1L);
	} else {
		call->body = body;
		curl_easy_setopt(call->easy, CURLOPT_URL, h->url);
		curl_easy_setopt(call->easy, CURLOPT_POST, 1L);
		/* the NOLINT: http_body set the body or failed */
		curl_easy_setopt(call->easy, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)strlen(call->body));    /* NOLINT(clang-analyzer-core.NonNullParamChecker) */
		curl_easy_setopt(call->easy, CURLOPT_POSTFIELDS, call->body);
		if (h->method == CONF_HTTP_PUT)
			curl_easy_setopt(call->easy, CURLOPT_CUSTOMREQUEST, "PUT");
	}
	body = NULL;
	if (h->auth == CONF_AUTH_BASIC) {
		curl_easy_setopt(call->easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(call->easy, CURLOPT_USERNAME, cp->username);
		curl_easy_setopt(call->easy, CURLOPT_PASSWORD, cp->password);
	}
	curl_easy_setopt(call->easy, CURLOPT_USERAGENT, "herald/" PACKAGE_VERSION);
	curl_easy_setopt(call->easy, CURLOPT_HTTPHEADER, call->headers);
	log_debug("event=sms_send provider=%s id=%s", p->name, m->identity);
	*callp = call;
	return 0;
oom:
	free(body);
	if (call != NULL)
		http_call_free(call->priv);
	prov_call_free(call);
	log_warnx("event=sms_error provider=%s msg=\"out of memory\"", p->name);
	return prov_fail(r, PROV_TRANSIENT, "out of memory");
}

/* http_json_path - the value at dotted PATH in O (array members by index), or NULL */
static struct json_object *http_json_path(struct json_object *o, const char *path)
{
	char seg[128], *end;
	const char *s = path, *dot;
	size_t n;
	long idx;

	while (o != NULL && *s != '\0') {
		dot = strchr(s, '.');
		n = dot != NULL ? (size_t)(dot - s) : strlen(s);
		if (n == 0 || n >= sizeof seg)
			return NULL;
		memcpy(seg, s, n);
		seg[n] = '\0';
		if (json_object_is_type(o, json_type_object)) {
			if (!json_object_object_get_ex(o, seg, &o))
				return NULL;
		} else if (json_object_is_type(o, json_type_array)) {
			idx = strtol(seg, &end, 10);
			if (*end != '\0' || idx < 0 || (size_t)idx >= json_object_array_length(o))
				return NULL;
			o = json_object_array_get_idx(o, (size_t)idx);
		} else {
			return NULL;
		}
		s += n;
		if (*s == '.')
			s++;
	}
	return o;
}

/* http_message_id - the message id at FIELD of CALL's JSON answer into R (printable ASCII kept);
 * nothing when the answer is not JSON or has no such string or number */
static void http_message_id(const struct prov_call *call, const char *field, struct prov_result *r)
{
	struct json_tokener *tok;
	struct json_object *o, *v;
	const char *s;
	size_t i, k;

	if (call->resp == NULL || call->resp_len == 0 || (tok = json_tokener_new()) == NULL)
		return;
	o = json_tokener_parse_ex(tok, call->resp, (int)call->resp_len);
	json_tokener_free(tok);
	v = http_json_path(o, field);
	if (v != NULL && (json_object_is_type(v, json_type_string) ||
	    json_object_is_type(v, json_type_int))) {
		s = json_object_get_string(v);
		for (i = k = 0; s[i] != '\0' && k < sizeof r->message_id - 1; i++)
			if (s[i] > 0x20 && s[i] < 0x7f)
				r->message_id[k++] = s[i];
		r->message_id[k] = '\0';
	}
	json_object_put(o);
}

/* http_quotes - whether DETAIL holds the first bytes of S (S shorter than HTTP_QUOTE_MIN: no) */
static bool http_quotes(const char *detail, const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;
	char head[HTTP_QUOTE_LEN + 1];

	if (n < HTTP_QUOTE_MIN)
		return false;
	if (n > HTTP_QUOTE_LEN)
		n = HTTP_QUOTE_LEN;
	memcpy(head, s, n);
	head[n] = '\0';
	return strstr(detail, head) != NULL;
}

/* http_leaks - whether DETAIL quotes a credential of CP or the SMS text of HC (a provider that
 * echoes the request in its error answer) */
static bool http_leaks(const char *detail, const struct conf_provider *cp,
	const struct http_call *hc)
{
	return (cp->password != NULL && cp->password[0] && strstr(detail, cp->password)) ||
	    (cp->token != NULL && cp->token[0] && strstr(detail, cp->token)) ||
	    (hc != NULL && (http_quotes(detail, hc->text) || http_quotes(detail, hc->esc)));
}

/* http_finish - the §5 HTTP outcome rules, the message id; CALL is freed */
static void http_finish(struct prov *p, struct prov_call *call, CURLcode rc,
	struct prov_result *r)
{
	const struct http_priv *h = p->priv;
	struct http_call *hc = call->priv;

	prov_http_outcome(call, rc, r);
	if (r->outcome == PROV_ACCEPTED && h->id_field != NULL) {
		r->message_id[0] = '\0';
		http_message_id(call, h->id_field, r);
	}
	if (http_leaks(r->detail, p->cp, hc)) {
		if (r->http_status != 0)
			snprintf(r->detail, sizeof r->detail, "HTTP %ld (answer withheld: it quotes "
			    "the request)", r->http_status);
		else
			snprintf(r->detail, sizeof r->detail, "curl %d %s", (int)rc,
			    curl_easy_strerror(rc));
	}
	http_call_free(hc);
	call->priv = NULL;
	prov_call_free(call);
}

const struct prov_ops prov_http_ops = {
	.type = "http",
	.init = http_init,
	.start = http_start,
	.finish = http_finish,
	.cleanup = http_cleanup,
};
