/* prov_fcm - SPEC §5 push to Android through Firebase Cloud Messaging HTTP v1: a service-account
 * JWT (RS256) exchanged for an OAuth access token, then one POST per device to
 * {url}/v1/projects/{project_id}/messages:send
 *
 * The access token is shared by every delivery of the worker and cached until shortly before it
 * expires (60 s, or half its lifetime when that is shorter). It is fetched SYNCHRONOUSLY, with
 * curl_easy_perform under the provider's timeout, inside start() when no valid token is cached:
 * the provider interface gives a provider no handle on the worker's curl multi, and a token lives
 * an hour, so the loop blocks for one short request an hour. Because the worker's loop is single
 * threaded, deliveries that start while a token is fetched simply wait, and every delivery after
 * it finds the token: one token request for any number of deliveries. A failed token request is
 * remembered for a few seconds (5 s when transient, 30 s when the credentials were refused) so a
 * burst of deliveries does not each block on a dead token endpoint; they get the same outcome.
 *
 * Token URL: the provider's token_url, else the file's token_uri, else Google's. The
 * service-account file must not be readable by others: it holds a private key. The send URL and the token URL come from the configuration, not from a recipient, so
 * the private-destination guard does not apply to them (a test or an on-premises relay may live
 * on a private address). FCM data values must be strings: strings go as they are, numbers and
 * booleans as their JSON text; null, objects and arrays are refused (failed, naming the key), as
 * are the keys FCM reserves. FCM has no idempotency header, so the message identity (the same on
 * every attempt) goes in data as "herald_id", replacing any "herald_id" of the request.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "codec.h"
#include "conf.h"
#include "jwt.h"
#include "log.h"
#include "prov.h"

#define FCM_SCOPE "https://www.googleapis.com/auth/firebase.messaging"
#define FCM_TOKEN_URL "https://oauth2.googleapis.com/token"
#define FCM_GRANT "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion="
#define FCM_FILE_MAX (1 << 20)       /* bytes of a service-account file */
#define FCM_ASSERTION_LIFE 3600      /* seconds: the longest Google accepts */
#define FCM_EARLY 60                 /* seconds before expiry a token is no longer used */
#define FCM_TOKEN_MAX 4096           /* bytes of an access token */
#define FCM_FAIL_TRANSIENT 5         /* seconds a transient token failure is remembered */
#define FCM_FAIL_PERMANENT 30        /* seconds refused credentials are remembered */
#define FCM_HIGH_PRIORITY 7          /* note priority from which android.priority is "high" */
#define FCM_QUOTE 160                /* bytes of an error message quoted in a detail */

struct fcm {
	EVP_PKEY *key;
	char *email;                 /* client_email: the assertion's iss */
	char *kid;                   /* private_key_id; NULL when the file has none */
	char *token_url;             /* the assertion's aud and where it is exchanged */
	char *send_url;              /* {url}/v1/projects/{project_id}/messages:send */
	long timeout;
	bool tls_verify;
	char *token;                 /* the cached access token; NULL when none */
	double token_until;          /* monotonic seconds: the token is used until then */
	uintptr_t gen;               /* bumped with every new token; a call keeps the one it used */
	double fail_until;           /* monotonic seconds: the last token failure stands until then */
	struct prov_result fail;     /* ... and its outcome */
	unsigned long ntokens;       /* token requests made */
};

/* fcm_now - monotonic seconds */
static double fcm_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* fcm_clean - printable ASCII of S (at most N - 1 bytes of it, "..." when cut) into OUT */
static void fcm_clean(const char *s, char *out, size_t n)
{
	size_t i, k = 0;

	for (i = 0; s != NULL && s[i] != '\0' && k + 4 < n; i++)
		out[k++] = (char)(((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f) ? s[i] : ' ');
	if (s != NULL && s[i] != '\0' && k + 3 < n) {
		memcpy(out + k, "...", 3);
		k += 3;
	}
	out[k] = '\0';
}

/* fcm_str - the string member NAME of O, or NULL when absent or not a string */
static const char *fcm_str(struct json_object *o, const char *name)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, name, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* fcm_project_ok - a Google project id, usable as a URL path segment as it is
 * ("my-project", "example.com:my-project") */
static bool fcm_project_ok(const char *s)
{
	if (s == NULL || *s == '\0' || strlen(s) > 128)
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		    *s == '-' || *s == '.' || *s == ':' || *s == '_'))
			return false;
	return true;
}

/* fcm_read - the file PATH, NUL-terminated, into *OUT (*LEN bytes); 0, or -1 with ERR */
static int fcm_read(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	FILE *fp;
	char *buf;
	size_t n;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "service_account_file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "service_account_file %s: not a regular file", path);
		fclose(fp);
		return -1;
	}
	if (st.st_mode & S_IROTH) {
		snprintf(err, errlen, "service_account_file %s: readable by others, and it holds a "
		    "private key (chmod o-r)", path);
		fclose(fp);
		return -1;
	}
	if (st.st_size <= 0 || st.st_size > FCM_FILE_MAX) {
		snprintf(err, errlen, "service_account_file %s: %s", path,
		    st.st_size <= 0 ? "empty" : "over 1 MiB, not a service-account file");
		fclose(fp);
		return -1;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "service_account_file %s: out of memory", path);
		fclose(fp);
		return -1;
	}
	n = fread(buf, 1, (size_t)st.st_size, fp);
	fclose(fp);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* fcm_free - release F and everything it holds (NULL is fine) */
static void fcm_free(struct fcm *f)
{
	if (f == NULL)
		return;
	EVP_PKEY_free(f->key);
	free(f->email);
	free(f->kid);
	free(f->token_url);
	free(f->send_url);
	if (f->token != NULL) {
		OPENSSL_cleanse(f->token, strlen(f->token));
		free(f->token);
	}
	free(f);
}

/* fcm_account - the service-account JSON SA (from PATH) into F; 0, or -1 with ERR naming the
 * field (never its value: one of them is the private key) */
static int fcm_account(struct prov *p, struct fcm *f, struct json_object *sa, const char *path,
	char *err, size_t errlen)
{
	const struct conf_provider *cp = p->cp;
	const char *email, *pem, *kid, *type, *token_uri, *project, *base;
	char why[256] = "", *u;
	struct json_object *v;
	size_t n;

	if (!json_object_is_type(sa, json_type_object)) {
		snprintf(err, errlen, "service_account_file %s: not a JSON object", path);
		return -1;
	}
	if ((type = fcm_str(sa, "type")) != NULL && strcmp(type, "service_account") != 0) {
		snprintf(err, errlen, "service_account_file %s: type is \"%.40s\", not "
		    "\"service_account\"", path, type);
		return -1;
	}
	email = fcm_str(sa, "client_email");
	if (email == NULL || strchr(email, '@') == NULL) {
		snprintf(err, errlen, "service_account_file %s: client_email %s", path,
		    email == NULL ? "missing (or not a string)" : "is not an email address");
		return -1;
	}
	if ((pem = fcm_str(sa, "private_key")) == NULL || *pem == '\0') {
		snprintf(err, errlen, "service_account_file %s: private_key missing (or not a string)",
		    path);
		return -1;
	}
	if ((f->key = jwt_key_load(pem, strlen(pem), why, sizeof why)) == NULL) {
		snprintf(err, errlen, "service_account_file %s: private_key: %s", path,
		    why[0] ? why : "not a usable PEM key");
		return -1;
	}
	if (EVP_PKEY_base_id(f->key) != EVP_PKEY_RSA) {
		snprintf(err, errlen, "service_account_file %s: private_key is not an RSA key "
		    "(RS256 needs one)", path);
		return -1;
	}
	kid = fcm_str(sa, "private_key_id");
	if (json_object_object_get_ex(sa, "private_key_id", &v) && !prov_token_ok(kid)) {
		snprintf(err, errlen, "service_account_file %s: private_key_id is not a key id", path);
		return -1;
	}
	token_uri = fcm_str(sa, "token_uri");
	if (cp->token_url == NULL && token_uri != NULL && !prov_url_ok(token_uri)) {
		snprintf(err, errlen, "service_account_file %s: token_uri is not an http(s) URL", path);
		return -1;
	}
	project = cp->project_id != NULL ? cp->project_id : fcm_str(sa, "project_id");
	if (project == NULL) {
		snprintf(err, errlen, "service_account_file %s: project_id missing (set it there or "
		    "as project_id in the provider)", path);
		return -1;
	}
	if (!fcm_project_ok(project)) {
		snprintf(err, errlen, "%s: project_id is not a Google project id",
		    cp->project_id != NULL ? "project_id" : path);
		return -1;
	}
	base = cp->url != NULL ? cp->url : "https://fcm.googleapis.com";
	if (!prov_url_ok(base)) {
		snprintf(err, errlen, "url: not an http(s) URL");
		return -1;
	}
	n = strlen(base);
	while (n > 0 && base[n - 1] == '/')
		n--;
	f->email = strdup(email);
	f->kid = kid != NULL ? strdup(kid) : NULL;
	f->token_url = strdup(cp->token_url != NULL ? cp->token_url :
	    token_uri != NULL ? token_uri : FCM_TOKEN_URL);
	if ((u = malloc(n + strlen(project) + 64)) != NULL)
		sprintf(u, "%.*s/v1/projects/%s/messages:send", (int)n, base, project);
	f->send_url = u;
	if (f->email == NULL || (kid != NULL && f->kid == NULL) || f->token_url == NULL ||
	    f->send_url == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* fcm_init - read and check the service-account file; serve the push channel */
static int fcm_init(struct prov *p, char *err, size_t errlen)
{
	const struct conf_provider *cp = p->cp;
	struct json_tokener *tok;
	struct json_object *sa, *pk;
	struct fcm *f;
	char *buf = NULL;
	size_t len = 0;
	int rc;

	if (p->channel != CONF_CH_PUSH) {
		snprintf(err, errlen, "provider type fcm serves channel push only");
		return -1;
	}
	if (cp == NULL || cp->service_account_file == NULL) {
		snprintf(err, errlen, "service_account_file: required");
		return -1;
	}
	if (fcm_read(cp->service_account_file, &buf, &len, err, errlen) < 0)
		return -1;
	if ((tok = json_tokener_new()) == NULL) {
		OPENSSL_cleanse(buf, len);
		free(buf);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	sa = json_tokener_parse_ex(tok, buf, (int)len);
	if (sa == NULL || json_tokener_get_error(tok) != json_tokener_success) {
		enum json_tokener_error je = json_tokener_get_error(tok);

		snprintf(err, errlen, "service_account_file %s: not valid JSON (%s at byte %zu)",
		    cp->service_account_file, je == json_tokener_continue || je ==
		    json_tokener_success ? "truncated" : json_tokener_error_desc(je),
		    json_tokener_get_parse_end(tok));
		json_object_put(sa);
		json_tokener_free(tok);
		OPENSSL_cleanse(buf, len);
		free(buf);
		return -1;
	}
	json_tokener_free(tok);
	OPENSSL_cleanse(buf, len);
	free(buf);
	if ((f = calloc(1, sizeof *f)) == NULL) {
		json_object_put(sa);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	f->timeout = cp->timeout > 0 ? cp->timeout : 10;
	f->tls_verify = p->conf->channels[CONF_CH_PUSH].tls_verify;
	rc = fcm_account(p, f, sa, cp->service_account_file, err, errlen);
	if (json_object_object_get_ex(sa, "private_key", &pk) &&
	    json_object_is_type(pk, json_type_string))      /* the key's text, gone from memory */
		OPENSSL_cleanse((char *)(uintptr_t)json_object_get_string(pk),
		    (size_t)json_object_get_string_len(pk));
	json_object_put(sa);
	if (rc < 0) {
		fcm_free(f);
		return -1;
	}
	p->priv = f;
	log_info("event=fcm_ready provider=%s account=%s send_url=%s token_url=%s", p->name,
	    f->email, f->send_url, f->token_url);
	return 0;
}

/* fcm_drop_token - forget the cached access token */
static void fcm_drop_token(struct fcm *f)
{
	if (f->token != NULL) {
		OPENSSL_cleanse(f->token, strlen(f->token));
		free(f->token);
		f->token = NULL;
	}
}

/* fcm_assertion - the signed JWT assertion for F at wall-clock time NOW; malloc'd, or NULL
 * with ERR */
static char *fcm_assertion(struct fcm *f, time_t now, char *err, size_t errlen)
{
	struct json_object *h = json_object_new_object(), *c = json_object_new_object();
	char *jwt = NULL;

	if (h == NULL || c == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	json_object_object_add(h, "alg", json_object_new_string("RS256"));
	json_object_object_add(h, "typ", json_object_new_string("JWT"));
	if (f->kid != NULL)
		json_object_object_add(h, "kid", json_object_new_string(f->kid));
	json_object_object_add(c, "iss", json_object_new_string(f->email));
	json_object_object_add(c, "scope", json_object_new_string(FCM_SCOPE));
	json_object_object_add(c, "aud", json_object_new_string(f->token_url));
	json_object_object_add(c, "iat", json_object_new_int64((int64_t)now));
	json_object_object_add(c, "exp", json_object_new_int64((int64_t)now + FCM_ASSERTION_LIFE));
	jwt = jwt_sign(f->key, "RS256",
	    json_object_to_json_string_ext(h, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
	    json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
	    err, errlen);
out:
	json_object_put(h);
	json_object_put(c);
	return jwt;
}

/* fcm_token_refused - the detail of a token request the endpoint answered with a failure:
 * its OAuth error and description (RFC 6749 §5.2), never the assertion */
static void fcm_token_refused(const struct prov_call *call, struct prov_result *r)
{
	struct json_object *o = call->resp != NULL ? json_tokener_parse(call->resp) : NULL;
	char e[64], d[FCM_QUOTE + 4];

	fcm_clean(fcm_str(o, "error"), e, sizeof e);
	fcm_clean(fcm_str(o, "error_description"), d, sizeof d);
	if (r->outcome == PROV_PERMANENT)
		snprintf(r->detail, sizeof r->detail, "FCM token request refused: HTTP %ld%s%s%s%s "
		    "(bad service-account credentials?)", r->http_status, e[0] ? " " : "", e,
		    d[0] ? ": " : "", d);
	else
		snprintf(r->detail, sizeof r->detail, "FCM token request: HTTP %ld%s%s%s%s",
		    r->http_status, e[0] ? " " : "", e, d[0] ? ": " : "", d);
	json_object_put(o);
}

/* fcm_token_take - the access token in CALL's answer into F; 0, or -1 with R transient */
static int fcm_token_take(struct prov *p, struct fcm *f, const struct prov_call *call,
	struct prov_result *r)
{
	struct json_object *o = call->resp != NULL ? json_tokener_parse(call->resp) : NULL, *v;
	const char *tok = fcm_str(o, "access_token");
	int64_t life = FCM_ASSERTION_LIFE;
	double early;

	if (!prov_token_ok(tok) || strlen(tok) >= FCM_TOKEN_MAX) {
		json_object_put(o);
		r->outcome = PROV_TRANSIENT;
		snprintf(r->detail, sizeof r->detail, "FCM token request: HTTP %ld without a usable "
		    "access_token", r->http_status);
		return -1;
	}
	if (json_object_object_get_ex(o, "expires_in", &v) &&
	    (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_string)))
		life = json_object_get_int64(v);
	if (life <= 0)
		life = 1;
	fcm_drop_token(f);
	if ((f->token = strdup(tok)) == NULL) {
		json_object_put(o);
		r->outcome = PROV_TRANSIENT;
		snprintf(r->detail, sizeof r->detail, "out of memory");
		return -1;
	}
	json_object_put(o);
	early = life > 2 * FCM_EARLY ? FCM_EARLY : (double)life / 2;
	f->token_until = fcm_now() + (double)life - early;
	f->gen++;
	log_info("event=fcm_token provider=%s expires_in=%lld requests=%lu", p->name,
	    (long long)life, f->ntokens);
	return 0;
}

/* fcm_token - a valid access token in F: the cached one, else one fetched now (synchronously);
 * 0, or -1 with the outcome in R */
static int fcm_token(struct prov *p, struct fcm *f, struct prov_result *r)
{
	struct prov_call *call;
	struct curl_slist *l;
	char why[256] = "", *jwt;
	double now = fcm_now();
	CURLcode rc;
	size_t len;
	int hold;

	if (f->token != NULL && now < f->token_until)
		return 0;
	fcm_drop_token(f);
	if (now < f->fail_until) {
		*r = f->fail;
		return -1;
	}
	if ((jwt = fcm_assertion(f, time(NULL), why, sizeof why)) == NULL) {
		r->outcome = PROV_TRANSIENT;
		snprintf(r->detail, sizeof r->detail, "FCM token assertion not signed: %s", why);
		log_warnx("event=fcm_error provider=%s msg=\"%s\"", p->name, r->detail);
		return -1;
	}
	len = strlen(FCM_GRANT) + strlen(jwt);
	if ((call = prov_call_new(p, f->timeout, f->tls_verify, true)) == NULL ||
	    (call->body = malloc(len + 1)) == NULL) {
		OPENSSL_cleanse(jwt, strlen(jwt));
		free(jwt);
		prov_call_free(call);
		r->outcome = PROV_TRANSIENT;
		snprintf(r->detail, sizeof r->detail, "out of memory");
		return -1;
	}
	snprintf(call->body, len + 1, "%s%s", FCM_GRANT, jwt);
	OPENSSL_cleanse(jwt, strlen(jwt));
	free(jwt);
	if ((l = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded")) != NULL)
		call->headers = l;
	if ((l = curl_slist_append(call->headers, "Expect:")) != NULL)
		call->headers = l;
	prov_post(call, f->token_url, len);
	f->ntokens++;
	rc = curl_easy_perform(call->easy);
	prov_http_outcome(call, rc, r);
	r->message_id[0] = '\0';
	if (r->outcome == PROV_ACCEPTED) {
		if (fcm_token_take(p, f, call, r) == 0) {
			OPENSSL_cleanse(call->body, len);
			prov_call_free(call);
			return 0;
		}
	} else if (rc == CURLE_OK) {
		fcm_token_refused(call, r);
	} else {
		char d[sizeof r->detail];

		snprintf(d, sizeof d, "%s", r->detail);
		snprintf(r->detail, sizeof r->detail, "FCM token request: %.480s", d);
	}
	OPENSSL_cleanse(call->body, len);
	prov_call_free(call);
	hold = r->outcome == PROV_PERMANENT ? FCM_FAIL_PERMANENT : FCM_FAIL_TRANSIENT;
	if (r->outcome != PROV_PERMANENT && r->retry_after > hold)
		hold = r->retry_after > 60 ? 60 : r->retry_after;
	f->fail = *r;
	f->fail_until = fcm_now() + hold;
	log_warnx("event=fcm_token_failed provider=%s detail=\"%s\"", p->name, r->detail);
	return -1;
}

/* fcm_reserved - whether FCM refuses K as a data key */
static bool fcm_reserved(const char *k)
{
	return strcmp(k, "from") == 0 || strcmp(k, "notification") == 0 ||
	    strcmp(k, "message_type") == 0 || strncmp(k, "google.", 7) == 0 ||
	    strncmp(k, "gcm.", 4) == 0 || strcmp(k, "collapse_key") == 0;
}

/* fcm_data - FCM's data object for M (string values only, herald_id added) into *OUT; 0, or -1
 * with a permanent refusal in R */
static int fcm_data(const struct prov_msg *m, struct json_object **out, struct prov_result *r)
{
	struct json_object *d = json_object_new_object();
	char k[64];

	*out = NULL;
	if (d == NULL)
		return prov_fail(r, PROV_TRANSIENT, "out of memory");
	if (m->extra != NULL && !json_object_is_type(m->extra, json_type_object)) {
		json_object_put(d);
		return prov_fail(r, PROV_PERMANENT, "push data: not an object (FCM data is a map of "
		    "strings)");
	}
	if (m->extra != NULL) {
		json_object_object_foreach(m->extra, key, val) {
			const char *s = NULL;

			fcm_clean(key, k, sizeof k);
			if (*key == '\0' || fcm_reserved(key)) {
				snprintf(r->detail, sizeof r->detail, "push data key \"%s\": reserved "
				    "by FCM", k);
				r->outcome = PROV_PERMANENT;
				json_object_put(d);
				return -1;
			}
			switch (json_object_get_type(val)) {
			case json_type_string:
				s = json_object_get_string(val);
				break;
			case json_type_boolean:
			case json_type_int:
			case json_type_double:
				s = json_object_to_json_string_ext(val, JSON_C_TO_STRING_PLAIN);
				break;
			default:
				snprintf(r->detail, sizeof r->detail, "push data key \"%s\": FCM data "
				    "values must be strings, not %s", k,
				    json_type_to_name(json_object_get_type(val)));
				r->outcome = PROV_PERMANENT;
				json_object_put(d);
				return -1;
			}
			json_object_object_add(d, key, json_object_new_string(s));
		}
	}
	json_object_object_add(d, "herald_id", json_object_new_string(m->identity));
	*out = d;
	return 0;
}

/* fcm_body - the messages:send JSON of M into *OUT (malloc'd); 0, or -1 with R */
static int fcm_body(const struct prov_msg *m, char **out, struct prov_result *r)
{
	struct json_object *o, *msg, *n, *a, *d;
	const char *s;

	*out = NULL;
	if (fcm_data(m, &d, r) < 0)
		return -1;
	o = json_object_new_object();
	msg = json_object_new_object();
	n = json_object_new_object();
	a = json_object_new_object();
	if (o == NULL || msg == NULL || n == NULL || a == NULL) {
		json_object_put(o);
		json_object_put(msg);
		json_object_put(n);
		json_object_put(a);
		json_object_put(d);
		return prov_fail(r, PROV_TRANSIENT, "out of memory");
	}
	json_object_object_add(msg, "token", json_object_new_string(m->address));
	if (m->subject != NULL)
		json_object_object_add(n, "title", json_object_new_string(m->subject));
	if (m->text != NULL)
		json_object_object_add(n, "body", json_object_new_string(m->text));
	json_object_object_add(msg, "notification", n);
	json_object_object_add(msg, "data", d);
	json_object_object_add(a, "priority", json_object_new_string(
	    m->note != NULL && m->note->priority >= FCM_HIGH_PRIORITY ? "high" : "normal"));
	json_object_object_add(msg, "android", a);
	json_object_object_add(o, "message", msg);
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (s != NULL)
		*out = strdup(s);
	json_object_put(o);
	return *out != NULL ? 0 : prov_fail(r, PROV_TRANSIENT, "out of memory");
}

/* fcm_start - the messages:send POST of M to its device token */
static int fcm_start(struct prov *p, const struct prov_msg *m, struct prov_call **callp,
	struct prov_result *r)
{
	struct fcm *f = p->priv;
	struct prov_call *call;
	char *body = NULL, *auth;
	size_t len;

	*callp = NULL;
	r->http_status = 0;
	r->retry_after = -1;
	r->message_id[0] = '\0';
	r->unregistered = false;
	if (m->address == NULL || m->address[0] == '\0')
		return prov_fail(r, PROV_PERMANENT, "no device token");
	if (m->identity == NULL || m->identity[0] == '\0')
		return prov_fail(r, PROV_PERMANENT, "no message identity");
	if (fcm_body(m, &body, r) < 0)
		return -1;
	if (fcm_token(p, f, r) < 0) {
		free(body);
		return -1;
	}
	r->http_status = 0;
	r->retry_after = -1;
	if ((call = prov_call_new(p, f->timeout, f->tls_verify, true)) == NULL) {
		free(body);
		return prov_fail(r, PROV_TRANSIENT, "out of memory");
	}
	call->body = body;
	call->priv = (void *)f->gen;
	len = strlen(f->token) + 32;
	if ((auth = malloc(len)) == NULL)
		goto oom;
	snprintf(auth, len, "Authorization: Bearer %s", f->token);
	if (prov_header(call, auth) < 0) {
		OPENSSL_cleanse(auth, strlen(auth));
		free(auth);
		goto oom;
	}
	OPENSSL_cleanse(auth, strlen(auth));
	free(auth);
	if (prov_header(call, "Content-Type: application/json; charset=UTF-8") < 0 ||
	    prov_header(call, "Expect:") < 0)
		goto oom;
	prov_post(call, f->send_url, strlen(call->body));
	*callp = call;
	return 0;
oom:
	prov_call_free(call);
	log_warnx("event=fcm_error provider=%s msg=\"out of memory\"", p->name);
	return prov_fail(r, PROV_TRANSIENT, "out of memory");
}

/* fcm_error_code - the errorCode of the FcmError in the google.rpc error E, or NULL */
static const char *fcm_error_code(struct json_object *e)
{
	struct json_object *details, *el;
	const char *c;
	size_t i;

	if (e == NULL || !json_object_object_get_ex(e, "details", &details) ||
	    !json_object_is_type(details, json_type_array))
		return NULL;
	for (i = 0; i < json_object_array_length(details); i++) {
		el = json_object_array_get_idx(details, i);
		if ((c = fcm_str(el, "errorCode")) != NULL)
			return c;
	}
	return NULL;
}

/* fcm_finish - the outcome of a messages:send call; CALL is freed */
static void fcm_finish(struct prov *p, struct prov_call *call, CURLcode rc,
	struct prov_result *r)
{
	struct fcm *f = p->priv;
	struct json_object *o = NULL, *e = NULL;
	char st[64], code[64], msg[FCM_QUOTE + 4];
	const char *c;

	prov_http_outcome(call, rc, r);
	r->unregistered = false;
	r->message_id[0] = '\0';
	if (rc != CURLE_OK)
		goto out;
	if (call->resp != NULL)
		o = json_tokener_parse(call->resp);
	if (r->outcome == PROV_ACCEPTED) {
		fcm_clean(fcm_str(o, "name"), r->message_id, sizeof r->message_id);
		goto out;
	}
	if (o != NULL && json_object_object_get_ex(o, "error", &e) &&
	    !json_object_is_type(e, json_type_object))
		e = NULL;
	fcm_clean(fcm_str(e, "status"), st, sizeof st);
	fcm_clean(c = fcm_error_code(e), code, sizeof code);
	fcm_clean(fcm_str(e, "message"), msg, sizeof msg);
	if (c != NULL && strcmp(c, "UNREGISTERED") == 0) {
		r->outcome = PROV_PERMANENT;
		r->unregistered = true;
	} else if (r->http_status == 401) {
		/* the token expired or was revoked early: the next attempt fetches another one
		 * (unless a newer token already replaced the one this call used) */
		if ((uintptr_t)call->priv == f->gen)
			fcm_drop_token(f);
		r->outcome = PROV_TRANSIENT;
	}
	if (e == NULL) {             /* not a google.rpc error (a proxy's page?): §5's detail */
		char d[sizeof r->detail];

		snprintf(d, sizeof d, "%s", r->detail);
		snprintf(r->detail, sizeof r->detail, "FCM %.440s%s", d, r->http_status == 401 ?
		    " (access token dropped; a new one is fetched)" : "");
		goto out;
	}
	snprintf(r->detail, sizeof r->detail, "FCM HTTP %ld%s%s%s%s%s%s%s", r->http_status,
	    st[0] ? " " : "", st, code[0] && strcmp(code, st) != 0 ? " " : "",
	    code[0] && strcmp(code, st) != 0 ? code : "", msg[0] ? ": " : "", msg,
	    r->http_status == 401 ? " (access token dropped; a new one is fetched)" : "");
out:
	json_object_put(o);
	prov_call_free(call);
}

/* fcm_accepts - Android devices only */
static bool fcm_accepts(const struct prov *p, const struct prov_msg *m)
{
	(void)p;
	return m->push_platform != NULL && strcmp(m->push_platform, "android") == 0;
}

/* fcm_cleanup - the key and the cached token */
static void fcm_cleanup(struct prov *p)
{
	fcm_free(p->priv);
	p->priv = NULL;
}

const struct prov_ops prov_fcm_ops = {
	.type = "fcm",
	.init = fcm_init,
	.start = fcm_start,
	.finish = fcm_finish,
	.accepts = fcm_accepts,
	.cleanup = fcm_cleanup,
};
