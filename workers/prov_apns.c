/* prov_apns - SPEC §5 push to iOS devices: APNs over HTTP/2 with token-based authentication
 *
 * Each message is a POST of {"aps":{"alert":{"title","body"}}, <data>} to
 * {url}/3/device/{token}, authorised by a provider token: an ES256 JWT {alg, kid: key_id}
 * {iss: team_id, iat} signed with the team's .p8 key. Apple refuses tokens older than an hour
 * and refuses refreshing them more often than every 20 minutes, so one token is shared by
 * every call and re-signed after APNS_TOKEN_REFRESH, or sooner when APNs says
 * ExpiredProviderToken (once per token: the calls in flight with the same token all get it;
 * and at most once in APNS_TOKEN_MIN, since a token refused that early means a wrong clock).
 * The apns-id is a UUID derived from the message identity, so every attempt of one
 * (transaction, device) carries the same one and APNs' echo of it becomes the message id.
 * The URL comes from the configuration, not from the recipient, so the private-destination
 * guard (a webhook matter) is off; TLS verification follows channels.push.tls_verify.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "codec.h"
#include "conf.h"
#include "jwt.h"
#include "log.h"
#include "prov.h"

#define APNS_TOKEN_REFRESH (50 * 60) /* seconds a provider token is used (Apple: 20 to 60 min) */
#define APNS_TOKEN_MIN (20 * 60)     /* Apple refuses new tokens more often than this */
#define APNS_PAYLOAD_MAX 4096        /* bytes of an alert notification's JSON (Apple's limit) */
#define APNS_KEY_FILE_MAX 65536      /* bytes of a .p8 file we are willing to read */
#define APNS_DEVTOKEN_MAX 200        /* characters of a device token (Apple's are 64 hex) */
#define APNS_UUID_LEN 36

/* What one provider keeps: the signing key and the current provider token. */
struct apns {
	EVP_PKEY *key;
	char *base;                  /* url without a trailing '/' */
	char *auth;                  /* "authorization: bearer <jwt>", or NULL before the first */
	time_t iat;                  /* the token's issue time */
	unsigned gen;                /* bumped by every new token */
	bool stale;                  /* APNs said ExpiredProviderToken for the current token */
	time_t forced;               /* when a stale token was last replaced early; 0 never */
};

/* What one call keeps beside the public call. */
struct apns_call {
	unsigned gen;                /* the token generation it was sent with */
	int retry_after;             /* from the response's Retry-After; -1 when none */
	char sent_id[APNS_UUID_LEN + 1];   /* the apns-id we sent */
	char resp_id[64];            /* the apns-id APNs answered with; "" when none */
};

/* apns_alnum - S is 1..MAX letters and digits */
static bool apns_alnum(const char *s, size_t max)
{
	size_t i;

	if (s == NULL || *s == '\0' || strlen(s) > max)
		return false;
	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return true;
}

/* apns_topic_ok - T is a bundle id usable in a header: printable ASCII, no spaces */
static bool apns_topic_ok(const char *t)
{
	if (t == NULL || *t == '\0' || strlen(t) > 255)
		return false;
	for (; *t != '\0'; t++)
		if (*t <= 0x20 || *t >= 0x7f)
			return false;
	return true;
}

/* apns_read_key - the key in file PATH; NULL with ERR naming the file (never its content) */
static EVP_PKEY *apns_read_key(const char *path, char *err, size_t errlen)
{
	char *buf = NULL, why[256];
	EVP_PKEY *key = NULL;
	struct stat st;
	size_t len = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "key_file %s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "key_file %s: not a regular file", path);
		goto out;
	}
	if (st.st_size <= 0 || st.st_size > APNS_KEY_FILE_MAX) {
		snprintf(err, errlen, "key_file %s: %s", path, st.st_size <= 0 ? "empty"
		    : "too large for a .p8 key");
		goto out;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "key_file %s: out of memory", path);
		goto out;
	}
	while (len < (size_t)st.st_size) {
		n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "key_file %s: cannot read: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	why[0] = '\0';
	if ((key = jwt_key_load(buf, len, why, sizeof why)) == NULL)
		snprintf(err, errlen, "key_file %s: %s", path, why);
out:
	if (buf != NULL) {
		OPENSSL_cleanse(buf, (size_t)st.st_size);
		free(buf);
	}
	close(fd);
	return key;
}

/* apns_token - a fresh provider token for NOW into A; 0, or -1 with ERR */
static int apns_token(struct prov *p, time_t now, char *err, size_t errlen)
{
	struct apns *a = p->priv;
	char header[128], claims[160], *jwt, *line;
	size_t len;

	snprintf(header, sizeof header, "{\"alg\":\"ES256\",\"kid\":\"%s\"}", p->cp->key_id);
	snprintf(claims, sizeof claims, "{\"iss\":\"%s\",\"iat\":%lld}", p->cp->team_id,
	    (long long)now);
	if ((jwt = jwt_sign(a->key, "ES256", header, claims, err, errlen)) == NULL)
		return -1;
	len = strlen("authorization: bearer ") + strlen(jwt) + 1;
	if ((line = malloc(len)) == NULL) {
		free(jwt);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(line, len, "authorization: bearer %s", jwt);
	free(jwt);
	free(a->auth);
	a->auth = line;
	a->iat = now;
	a->gen++;
	a->stale = false;
	log_debug("event=apns_token provider=%s key_id=%s iat=%lld gen=%u", p->name,
	    p->cp->key_id, (long long)now, a->gen);
	return 0;
}

/* apns_cleanup - release the key and the token */
static void apns_cleanup(struct prov *p)
{
	struct apns *a = p->priv;

	if (a == NULL)
		return;
	EVP_PKEY_free(a->key);
	free(a->base);
	if (a->auth != NULL) {
		OPENSSL_cleanse(a->auth, strlen(a->auth));
		free(a->auth);
	}
	free(a);
	p->priv = NULL;
}

/* apns_init - load and check the key, the ids and the topic; sign a first token */
static int apns_init(struct prov *p, char *err, size_t errlen)
{
	const struct conf_provider *cp = p->cp;
	struct apns *a;
	size_t n;

	if (p->channel != CONF_CH_PUSH) {
		snprintf(err, errlen, "provider type apns serves channel push only");
		return -1;
	}
	if (cp == NULL || cp->key_file == NULL) {
		snprintf(err, errlen, "key_file: required");
		return -1;
	}
	if (!apns_alnum(cp->key_id, 64)) {
		snprintf(err, errlen, "key_id: must be the key's ID (letters and digits)");
		return -1;
	}
	if (!apns_alnum(cp->team_id, 64)) {
		snprintf(err, errlen, "team_id: must be the team ID (letters and digits)");
		return -1;
	}
	if (!apns_topic_ok(cp->topic)) {
		snprintf(err, errlen, "topic: must be the app's bundle id (printable, no spaces)");
		return -1;
	}
	if ((a = calloc(1, sizeof *a)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	p->priv = a;
	if ((a->base = strdup(cp->url != NULL ? cp->url : "https://api.push.apple.com")) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (n = strlen(a->base); n > 0 && a->base[n - 1] == '/'; n--)
		a->base[n - 1] = '\0';
	if ((a->key = apns_read_key(cp->key_file, err, errlen)) == NULL)
		goto fail;
	{
		char why[256];

		why[0] = '\0';
		if (apns_token(p, time(NULL), why, sizeof why) < 0) {
			snprintf(err, errlen, "key_file %s: %s", cp->key_file, why);
			goto fail;
		}
	}
	log_info("event=apns_ready provider=%s url=%s topic=%s key_id=%s team_id=%s", p->name,
	    a->base, cp->topic, cp->key_id, cp->team_id);
	return 0;
fail:
	apns_cleanup(p);
	return -1;
}

/* apns_accepts - iOS devices only */
static bool apns_accepts(const struct prov *p, const struct prov_msg *m)
{
	(void)p;
	return m->push_platform != NULL && strcmp(m->push_platform, "ios") == 0;
}

/* apns_uuid - a UUID (RFC 9562 version 8) made from the SHA-256 of IDENTITY into OUT */
static void apns_uuid(const char *identity, char out[APNS_UUID_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(identity, strlen(identity), md, &mdlen, EVP_sha256(), NULL) != 1)
		memset(md, 0, sizeof md);
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x80);
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
	snprintf(out, APNS_UUID_LEN + 1,
	    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	    md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10], md[11],
	    md[12], md[13], md[14], md[15]);
}

/* apns_payload - the JSON payload of M, malloc'd; NULL on ENOMEM */
static char *apns_payload(const struct prov_msg *m)
{
	struct json_object *root = json_object_new_object(), *aps = json_object_new_object();
	struct json_object *alert = json_object_new_object(), *x;
	const char *s;
	char *out = NULL;

	if (root == NULL || aps == NULL || alert == NULL) {
		json_object_put(root);
		json_object_put(aps);
		json_object_put(alert);
		return NULL;
	}
	if (m->subject != NULL)
		json_object_object_add(alert, "title", json_object_new_string(m->subject));
	if (m->text != NULL)
		json_object_object_add(alert, "body", json_object_new_string(m->text));
	json_object_object_add(aps, "alert", alert);
	json_object_object_add(root, "aps", aps);
	/* data: its keys beside "aps"; an "aps" object in it adds badge, sound and the like */
	if (m->extra != NULL && json_object_is_type(m->extra, json_type_object)) {
		json_object_object_foreach(m->extra, k, v) {
			if (strcmp(k, "aps") != 0) {
				json_object_object_add(root, k, json_object_get(v));
				continue;
			}
			if (!json_object_is_type(v, json_type_object))
				continue;
			json_object_object_foreach(v, ak, av) {
				if (!json_object_object_get_ex(aps, ak, &x))
					json_object_object_add(aps, ak, json_object_get(av));
			}
		}
	}
	s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
	if (s != NULL)
		out = strdup(s);
	json_object_put(root);
	return out;
}

/* apns_value - VALUE of the header line LINE[0..LEN) when it is NAME, trimmed, into OUT (size
 * N, printable ASCII only); false when it is another header */
static bool apns_value(const char *line, size_t len, const char *name, char *out, size_t n)
{
	size_t nl = strlen(name), i, k = 0;

	if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
		return false;
	for (i = nl + 1; i < len && k < n - 1; i++)
		if (line[i] > 0x20 && line[i] < 0x7f)
			out[k++] = line[i];
	out[k] = '\0';
	return true;
}

/* apns_header_cb - note apns-id and Retry-After of the final response */
static size_t apns_header_cb(char *data, size_t size, size_t nitems, void *arg)
{
	struct apns_call *ac = arg;
	size_t len = size * nitems;
	char v[64];

	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		ac->retry_after = -1;
		ac->resp_id[0] = '\0';
	} else if (apns_value(data, len, "apns-id", v, sizeof v)) {
		snprintf(ac->resp_id, sizeof ac->resp_id, "%s", v);
	} else if (apns_value(data, len, "Retry-After", v, sizeof v)) {
		ac->retry_after = prov_retry_after_parse(v, time(NULL));
	}
	return len;
}

/* apns_start - the POST of M to its device */
static int apns_start(struct prov *p, const struct prov_msg *m, struct prov_call **callp,
	struct prov_result *r)
{
	const struct conf_channel *cc = &p->conf->channels[CONF_CH_PUSH];
	struct apns *a = p->priv;
	struct apns_call *ac = NULL;
	struct prov_call *call = NULL;
	time_t now = (time_t)(m->now / 1000000);
	char line[512], why[256];
	size_t len;
	char *url;

	*callp = NULL;
	r->http_status = 0;
	r->retry_after = -1;
	r->message_id[0] = '\0';
	if (!apns_accepts(p, m))
		return prov_fail(r, PROV_PERMANENT, "apns delivers to iOS devices only");
	if (!apns_alnum(m->address, APNS_DEVTOKEN_MAX)) {
		r->unregistered = true;
		return prov_fail(r, PROV_PERMANENT, "device token is not an APNs token");
	}
	if (m->identity == NULL || m->identity[0] == '\0')
		return prov_fail(r, PROV_PERMANENT, "no message identity for apns-id");
	if (m->subject == NULL && m->text == NULL)
		return prov_fail(r, PROV_PERMANENT, "push has neither title nor body");
	/* reuse the token for its lifetime; a clock that went back keeps it too */
	if (a->auth == NULL || a->stale || now - a->iat >= APNS_TOKEN_REFRESH) {
		if (a->stale)
			a->forced = now;
		why[0] = '\0';
		if (apns_token(p, now, why, sizeof why) < 0) {
			log_warnx("event=apns_error provider=%s msg=\"cannot sign a token: %s\"",
			    p->name, why);
			return prov_fail(r, PROV_TRANSIENT, "cannot sign the provider token");
		}
	}
	if ((ac = calloc(1, sizeof *ac)) == NULL)
		goto oom;
	ac->gen = a->gen;
	ac->retry_after = -1;
	apns_uuid(m->identity, ac->sent_id);
	call = prov_call_new(p, p->cp->timeout, cc->tls_verify, true);
	if (call == NULL)
		goto oom;
	call->priv = ac;
	if ((call->body = apns_payload(m)) == NULL)
		goto oom;
	len = strlen(call->body);
	if (len > APNS_PAYLOAD_MAX) {
		snprintf(line, sizeof line, "payload of %zu bytes is over APNs' %d", len,
		    APNS_PAYLOAD_MAX);
		free(ac);
		call->priv = NULL;
		prov_call_free(call);
		return prov_fail(r, PROV_PERMANENT, line);
	}
	if (prov_header(call, a->auth) < 0 ||
	    prov_header(call, "content-type: application/json") < 0 ||
	    prov_header(call, "apns-push-type: alert") < 0 || prov_header(call, "Expect:") < 0)
		goto oom;
	snprintf(line, sizeof line, "apns-topic: %s", p->cp->topic);
	if (prov_header(call, line) < 0)
		goto oom;
	snprintf(line, sizeof line, "apns-id: %s", ac->sent_id);
	if (prov_header(call, line) < 0)
		goto oom;
	snprintf(line, sizeof line, "apns-priority: %d", m->note->priority >= 7 ? 10 : 5);
	if (prov_header(call, line) < 0)
		goto oom;
	if (m->note->expires_at > 0) {
		snprintf(line, sizeof line, "apns-expiration: %lld",
		    (long long)(m->note->expires_at / 1000000));
		if (prov_header(call, line) < 0)
			goto oom;
	}
	len = strlen(a->base) + strlen("/3/device/") + strlen(m->address) + 1;
	if ((url = malloc(len)) == NULL)
		goto oom;
	snprintf(url, len, "%s/3/device/%s", a->base, m->address);
	curl_easy_setopt(call->easy, CURLOPT_URL, url);    /* libcurl copies it */
	free(url);
	curl_easy_setopt(call->easy, CURLOPT_HTTP_VERSION, strncasecmp(a->base, "https:", 6) == 0
	    ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
	curl_easy_setopt(call->easy, CURLOPT_PIPEWAIT, 1L);    /* share one connection */
	prov_post(call, NULL, strlen(call->body));
	curl_easy_setopt(call->easy, CURLOPT_HEADERFUNCTION, apns_header_cb);
	curl_easy_setopt(call->easy, CURLOPT_HEADERDATA, ac);
	*callp = call;
	return 0;
oom:
	if (call != NULL)
		call->priv = NULL;
	prov_call_free(call);
	free(ac);
	log_warnx("event=apns_error provider=%s msg=\"out of memory\"", p->name);
	return prov_fail(r, PROV_TRANSIENT, "out of memory");
}

/* apns_reason - the "reason" of the JSON answer of CALL into OUT (letters only), or "" */
static void apns_reason(const struct prov_call *call, char *out, size_t n)
{
	struct json_object *o, *v;
	const char *s;
	size_t k = 0;

	out[0] = '\0';
	if (call->resp == NULL || call->resp_len == 0)
		return;
	if ((o = json_tokener_parse(call->resp)) == NULL)
		return;
	if (json_object_object_get_ex(o, "reason", &v) && json_object_is_type(v, json_type_string))
		for (s = json_object_get_string(v); *s != '\0' && k < n - 1; s++)
			if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			    (*s >= '0' && *s <= '9'))
				out[k++] = *s;
	out[k] = '\0';
	json_object_put(o);
}

/* apns_finish - classify the answer of APNs; CALL is freed */
static void apns_finish(struct prov *p, struct prov_call *call, CURLcode rc,
	struct prov_result *r)
{
	struct apns *a = p->priv;
	struct apns_call *ac = call->priv;
	char reason[64];
	long st;

	call->priv = NULL;
	prov_http_outcome(call, rc, r);       /* curl errors, and the defaults below */
	st = r->http_status;
	if (rc != CURLE_OK || ac == NULL)
		goto out;
	apns_reason(call, reason, sizeof reason);
	if (st == 200) {
		r->outcome = PROV_ACCEPTED;
		snprintf(r->message_id, sizeof r->message_id, "%s",
		    ac->resp_id[0] ? ac->resp_id : ac->sent_id);
		snprintf(r->detail, sizeof r->detail, "HTTP 200");
		goto out;
	}
	snprintf(r->detail, sizeof r->detail, "HTTP %ld%s%s", st, reason[0] ? " " : "", reason);
	if (st == 410 || (st == 400 && strcmp(reason, "BadDeviceToken") == 0)) {
		r->outcome = PROV_PERMANENT;
		r->unregistered = true;
	} else if (st == 403 && strcmp(reason, "ExpiredProviderToken") == 0) {
		/* sign a new token before the next call, once for all calls that used this one */
		if (ac->gen == a->gen && !a->stale) {
			time_t now = time(NULL);

			if (a->forced == 0 || now - a->forced >= APNS_TOKEN_MIN) {
				a->stale = true;
				log_info("event=apns_token_expired provider=%s age=%lld", p->name,
				    (long long)(now - a->iat));
			} else {
				/* a token refused as expired twice within 20 minutes: our clock is
				 * off, and refreshing faster would only add TooManyProviderTokenUpdates */
				log_warnx("event=apns_token_expired provider=%s age=%lld msg=\"again "
				    "within %d s of the last refresh: is the clock right?\"", p->name,
				    (long long)(now - a->iat), APNS_TOKEN_MIN);
			}
		}
		r->outcome = PROV_TRANSIENT;
	} else if (st == 429 || st >= 500) {
		r->outcome = PROV_TRANSIENT;
		r->retry_after = ac->retry_after;
		/* APNs' 429 is TooManyRequests for one device token: not a reason to pause the
		 * provider for every other device */
		r->no_pause = st == 429;
	} else {
		r->outcome = PROV_PERMANENT;   /* InvalidProviderToken, BadTopic, PayloadTooLarge... */
	}
out:
	free(ac);
	prov_call_free(call);
}

const struct prov_ops prov_apns_ops = {
	.type = "apns",
	.init = apns_init,
	.start = apns_start,
	.finish = apns_finish,
	.accepts = apns_accepts,
	.cleanup = apns_cleanup,
};
