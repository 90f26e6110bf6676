/* prov_webhook - SPEC §5 webhooks: a JSON POST to the recipient's URL, signed per Standard
 * Webhooks (webhook-id, webhook-timestamp, webhook-signature "v1,<base64 HMAC-SHA256>")
 *
 * Secrets: the client's webhook_secrets, else the provider's secrets, else none (sent unsigned).
 * A secret "whsec_<base64>" is base64-decoded, as the Standard Webhooks libraries do; any other
 * secret is used as its raw bytes. Two secrets (a rotation) give two space-separated signatures.
 * The destination is per recipient, so the provider's url is not used; the private-destination
 * guard and TLS verification follow channels.webhook (prov.c). An X-Message-Id response header,
 * when a receiver sends one, becomes the provider message id; otherwise it stays "".
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "codec.h"
#include "conf.h"
#include "log.h"
#include "prov.h"
#include "rfc3339.h"

#define WEBHOOK_TIMEOUT_DEFAULT 10   /* seconds, when the channel has no configured provider */
#define WEBHOOK_KEY_MAX 512          /* bytes of a decoded secret */
#define WEBHOOK_PREFIX "whsec_"

int prov_webhook_secret(const char *secret, unsigned char *out, size_t outlen)
{
	size_t len, padded, pad = 0;
	unsigned char *in, *dec;
	int n;

	if (strncmp(secret, WEBHOOK_PREFIX, strlen(WEBHOOK_PREFIX)) != 0) {
		len = strlen(secret);
		if (len == 0 || len > outlen)
			return -1;
		memcpy(out, secret, len);
		return (int)len;
	}
	secret += strlen(WEBHOOK_PREFIX);
	len = strlen(secret);
	if (len == 0 || len % 4 == 1 || len > 4 * (outlen / 3) + 4)
		return -1;
	padded = (len + 3) / 4 * 4;      /* unpadded base64 is accepted too */
	if ((in = malloc(padded + 1)) == NULL || (dec = malloc(padded / 4 * 3 + 1)) == NULL) {
		free(in);
		return -1;
	}
	memcpy(in, secret, len);
	memset(in + len, '=', padded - len);
	in[padded] = '\0';
	while (pad < 2 && pad < padded && in[padded - 1 - pad] == '=')
		pad++;
	n = EVP_DecodeBlock(dec, in, (int)padded);
	if (n >= 0)
		n -= (int)pad;           /* EVP_DecodeBlock counts the padding as zero bytes */
	if (n <= 0 || (size_t)n > outlen)
		n = -1;
	else
		memcpy(out, dec, (size_t)n);
	OPENSSL_cleanse(dec, padded / 4 * 3 + 1);
	free(in);
	free(dec);
	return n;
}

int prov_webhook_sign(const char *secret, const char *id, long long ts, const char *body,
	size_t len, char *out, size_t outlen)
{
	unsigned char key[WEBHOOK_KEY_MAX], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char head[320];
	unsigned char *msg;
	size_t hl;
	int kl, hn;

	if ((kl = prov_webhook_secret(secret, key, sizeof key)) < 0)
		return -1;
	hn = snprintf(head, sizeof head, "%s.%lld.", id, ts);
	if (hn < 0 || (size_t)hn >= sizeof head || outlen < 3 + 44 + 1 ||
	    (msg = malloc((size_t)hn + len + 1)) == NULL) {
		OPENSSL_cleanse(key, sizeof key);
		return -1;
	}
	hl = (size_t)hn;
	memcpy(msg, head, hl);
	memcpy(msg + hl, body, len);
	if (HMAC(EVP_sha256(), key, kl, msg, hl + len, md, &mdlen) == NULL || mdlen != 32) {
		OPENSSL_cleanse(key, sizeof key);
		free(msg);
		return -1;
	}
	OPENSSL_cleanse(key, sizeof key);
	free(msg);
	memcpy(out, "v1,", 3);  /* NOLINT(bugprone-not-null-terminated-result): EVP_EncodeBlock ends it */
	EVP_EncodeBlock((unsigned char *)out + 3, md, (int)mdlen);
	return 0;
}

/* webhook_check_secrets - every secret of L decodes; else ERR names it under WHERE */
static int webhook_check_secrets(const struct conf_strlist *l, const char *where, char *err,
	size_t errlen)
{
	unsigned char key[WEBHOOK_KEY_MAX];
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (prov_webhook_secret(l->v[i], key, sizeof key) < 0) {
			OPENSSL_cleanse(key, sizeof key);
			snprintf(err, errlen, "%s[%zu]: not a usable secret (whsec_ needs base64, "
			    "at most %d bytes)", where, i, WEBHOOK_KEY_MAX);
			return -1;
		}
	}
	OPENSSL_cleanse(key, sizeof key);
	return 0;
}

/* webhook_init - serve the webhook channel; every signing secret must decode */
static int webhook_init(struct prov *p, char *err, size_t errlen)
{
	const struct conf *c = p->conf;
	char where[CONF_KEY_MAX];
	size_t i;

	if (p->channel != CONF_CH_WEBHOOK) {
		snprintf(err, errlen, "provider type webhook serves channel webhook only");
		return -1;
	}
	if (p->cp != NULL && webhook_check_secrets(&p->cp->secrets, "secrets", err, errlen) < 0)
		return -1;
	for (i = 0; i < c->nclients; i++) {
		snprintf(where, sizeof where, "clients.%s.webhook_secrets", c->clients[i].name);
		if (webhook_check_secrets(&c->clients[i].webhook_secrets, where, err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* webhook_str - a JSON string, or null for NULL */
static struct json_object *webhook_str(const char *s)
{
	return s != NULL ? json_object_new_string(s) : NULL;
}

/* webhook_body - the §5 JSON body of M, malloc'd; NULL on ENOMEM */
static char *webhook_body(const struct prov_msg *m)
{
	const struct note *n = m->note;
	struct json_object *o = json_object_new_object();
	char ts[RFC3339_LEN + 1];
	const char *s;
	char *body = NULL;

	if (o == NULL)
		return NULL;
	json_object_object_add(o, "type", json_object_new_string("notification"));
	json_object_object_add(o, "transaction_id", json_object_new_string(n->txid));
	json_object_object_add(o, "user_id", webhook_str(n->user_id));
	json_object_object_add(o, "client_id", webhook_str(n->client_id));
	json_object_object_add(o, "category", webhook_str(n->category));
	json_object_object_add(o, "batch_id", webhook_str(n->batch_id));
	json_object_object_add(o, "metadata", json_object_get(n->metadata));
	json_object_object_add(o, "event", webhook_str(m->subject));
	json_object_object_add(o, "data", json_object_get(n->data));
	json_object_object_add(o, "timestamp", json_object_new_string(rfc3339_format(m->now, ts)));
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (s != NULL)
		body = strdup(s);
	json_object_put(o);
	return body;
}

/* webhook_start - the signed POST of M to its address */
static int webhook_start(struct prov *p, const struct prov_msg *m, struct prov_call **callp,
	struct prov_result *r)
{
	const struct conf_channel *cc = &p->conf->channels[CONF_CH_WEBHOOK];
	const struct conf_strlist *secrets = NULL;
	struct prov_call *call;
	char line[320], sig[PROV_WEBHOOK_SIG_MAX];     /* webhook-id: 200 bytes at most */
	long long ts = m->now / 1000000;
	size_t i, len;

	*callp = NULL;
	r->http_status = 0;
	r->retry_after = -1;
	r->message_id[0] = '\0';
	if (m->address == NULL || m->address[0] == '\0')
		return prov_fail(r, PROV_PERMANENT, "no webhook URL");
	if (!prov_url_ok(m->address))
		return prov_fail(r, PROV_PERMANENT, "webhook URL is not a valid http(s) URL");
	if (!prov_token_ok(m->identity) || strlen(m->identity) > 200)
		return prov_fail(r, PROV_PERMANENT, "message identity unusable as webhook-id");
	if (m->client != NULL && m->client->webhook_secrets.n > 0)
		secrets = &m->client->webhook_secrets;
	else if (p->cp != NULL && p->cp->secrets.n > 0)
		secrets = &p->cp->secrets;
	call = prov_call_new(p, p->cp != NULL ? p->cp->timeout : WEBHOOK_TIMEOUT_DEFAULT,
	    cc->tls_verify, cc->allow_private);
	if (call == NULL || (call->body = webhook_body(m)) == NULL)
		goto oom;
	len = strlen(call->body);
	snprintf(line, sizeof line, "webhook-id: %s", m->identity);
	if (prov_header(call, "Content-Type: application/json") < 0 ||
	    prov_header(call, "Expect:") < 0 || prov_header(call, line) < 0)
		goto oom;
	snprintf(line, sizeof line, "webhook-timestamp: %lld", ts);
	if (prov_header(call, line) < 0)
		goto oom;
	if (secrets != NULL) {
		snprintf(line, sizeof line, "webhook-signature:");
		for (i = 0; i < secrets->n && i < 2; i++) {
			if (prov_webhook_sign(secrets->v[i], m->identity, ts, call->body, len, sig,
			    sizeof sig) < 0) {
				prov_call_free(call);
				return prov_fail(r, PROV_PERMANENT, "webhook secret unusable");
			}
			size_t used = strlen(line);

			snprintf(line + used, sizeof line - used, " %s", sig);
		}
		if (prov_header(call, line) < 0)
			goto oom;
	} else {
		log_debug("event=webhook_unsigned provider=%s id=%s msg=\"no secret configured\"",
		    p->name, m->identity);
	}
	prov_post(call, m->address, len);
	*callp = call;
	return 0;
oom:
	prov_call_free(call);
	log_warnx("event=webhook_error provider=%s msg=\"out of memory\"", p->name);
	return prov_fail(r, PROV_TRANSIENT, "out of memory");
}

/* webhook_finish - the §5 HTTP outcome rules; CALL is freed */
static void webhook_finish(struct prov *p, struct prov_call *call, CURLcode rc,
	struct prov_result *r)
{
	(void)p;
	prov_http_outcome(call, rc, r);
	prov_call_free(call);
}

/* webhook_cleanup - nothing kept between calls */
static void webhook_cleanup(struct prov *p)
{
	(void)p;
}

const struct prov_ops prov_webhook_ops = {
	.type = "webhook",
	.init = webhook_init,
	.start = webhook_start,
	.finish = webhook_finish,
	.cleanup = webhook_cleanup,
};
