/* prov - the providers of a channel (SPEC §5) and the helpers the HTTP providers share: the
 * easy handle every call starts from, the §5 outcome rules, and the private-destination guard
 *
 * The guard sits in CURLOPT_OPENSOCKETFUNCTION, so it judges the very address libcurl is about to
 * connect to, after name resolution: a name that resolves to a public address when checked and
 * to 127.0.0.1 when used (DNS rebinding) is still caught. Proxies from the environment are
 * ignored (CURLOPT_PROXY ""), or the guard would only ever see the proxy's address.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "conf.h"
#include "log.h"
#include "prov.h"

#define PROV_RETRY_AFTER_MAX 86400   /* a day: longer hints are taken as a day */
#define PROV_SNIPPET 160             /* response bytes quoted in a failure's detail */

/* What prov.c keeps beside the public call. */
struct prov_call_int {
	struct prov_call pub;            /* first: a struct prov_call * is a struct prov_call_int * */
	const char *channel;             /* for the guard's message */
	int retry_after;                 /* from the last response's Retry-After; -1 when none */
	char message_id[256];            /* from the last response's X-Message-Id; "" when none */
};

/* The ops table of each provider type; NULL: not built yet. */
static const struct prov_ops *const prov_types[CONF_PROV_TYPES] = {
	[CONF_PROV_SMTP] = &prov_smtp_ops,
	[CONF_PROV_HTTP] = &prov_http_ops,
	[CONF_PROV_FCM] = &prov_fcm_ops,
	[CONF_PROV_APNS] = &prov_apns_ops,
	[CONF_PROV_WEBHOOK] = &prov_webhook_ops,
};

int prov_open(const struct conf *c, int ch, struct prov **out, size_t *n, char *err,
	size_t errlen)
{
	const struct conf_channel *cc = &c->channels[ch];
	const char *chname = conf_channel_name(ch);
	struct prov *p;
	size_t count = cc->nproviders, i, ok;
	char why[256];

	*out = NULL;
	*n = 0;
	if (count == 0 && ch != CONF_CH_WEBHOOK)
		return 0;
	if ((p = calloc(count ? count : 1, sizeof *p)) == NULL) {
		snprintf(err, errlen, "channels.%s.providers: out of memory", chname);
		return -1;
	}
	if (count == 0) {                /* the built-in default: one webhook provider */
		p[0].ops = &prov_webhook_ops;
		p[0].conf = c;
		p[0].channel = ch;
		p[0].cp = NULL;
		snprintf(p[0].name, sizeof p[0].name, "%s", prov_webhook_ops.type);
		count = 1;
	}
	for (i = 0; i < cc->nproviders; i++) {
		const struct conf_provider *cp = &cc->providers[i];
		const struct prov_ops *ops = NULL;

		if (cp->type >= 0 && cp->type < CONF_PROV_TYPES)
			ops = prov_types[cp->type];
		if (ops == NULL) {
			snprintf(err, errlen, "channels.%s.providers[%zu]: provider type %s not built yet",
			    chname, i, conf_prov_type_name(cp->type));
			free(p);
			return -1;
		}
		p[i].ops = ops;
		p[i].conf = c;
		p[i].channel = ch;
		p[i].cp = cp;
		snprintf(p[i].name, sizeof p[i].name, "%s", cp->name ? cp->name : ops->type);
	}
	for (ok = 0; ok < count; ok++) {
		why[0] = '\0';
		if (p[ok].ops->init(&p[ok], why, sizeof why) < 0) {
			snprintf(err, errlen, "channels.%s.providers[%zu] (%s): %s", chname, ok,
			    p[ok].name, why[0] ? why : "cannot start");
			prov_close(p, ok);
			return -1;
		}
	}
	*out = p;
	*n = count;
	return 0;
}

void prov_close(struct prov *p, size_t n)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < n; i++)
		if (p[i].ops != NULL && p[i].ops->cleanup != NULL)
			p[i].ops->cleanup(&p[i]);
	free(p);
}

/* prov_write_cb - keep the first PROV_RESP_MAX bytes of the response, drop the rest */
static size_t prov_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct prov_call *call = arg;
	size_t len = size * nmemb, take;

	if (call->resp_len < PROV_RESP_MAX) {
		take = PROV_RESP_MAX - call->resp_len;
		if (take > len)
			take = len;
		if (call->resp == NULL && (call->resp = malloc(PROV_RESP_MAX + 1)) == NULL)
			return len;      /* the outcome does not depend on the body */
		memcpy(call->resp + call->resp_len, data, take);
		call->resp_len += take;
		call->resp[call->resp_len] = '\0';
	}
	return len;
}

/* prov_header_value - VALUE of the header line LINE[0..LEN) when it is NAME, trimmed, into OUT
 * (size N); false when it is another header */
static bool prov_header_value(const char *line, size_t len, const char *name, char *out, size_t n)
{
	size_t nl = strlen(name), i, j;

	if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
		return false;
	i = nl + 1;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	j = len;
	while (j > i && isspace((unsigned char)line[j - 1]))
		j--;
	if (j - i >= n)
		j = i + n - 1;
	memcpy(out, line + i, j - i);
	out[j - i] = '\0';
	return true;
}

/* prov_header_cb - note Retry-After and X-Message-Id of the final response (a status line
 * starts a new response: 100 Continue and the like are forgotten) */
static size_t prov_header_cb(char *data, size_t size, size_t nitems, void *arg)
{
	struct prov_call_int *ci = arg;
	size_t len = size * nitems, i, k;
	char v[256];

	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		ci->retry_after = -1;
		ci->message_id[0] = '\0';
	} else if (prov_header_value(data, len, "Retry-After", v, sizeof v)) {
		ci->retry_after = prov_retry_after_parse(v, time(NULL));
	} else if (prov_header_value(data, len, "X-Message-Id", v, sizeof v)) {
		for (i = k = 0; v[i] != '\0' && k < sizeof ci->message_id - 1; i++)
			if (v[i] > 0x20 && v[i] < 0x7f)
				ci->message_id[k++] = v[i];
		ci->message_id[k] = '\0';
	}
	return len;
}

int prov_retry_after_parse(const char *v, time_t now)
{
	const char *s = v;
	long long secs = 0;
	time_t t;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s >= '0' && *s <= '9') {
		for (; *s >= '0' && *s <= '9'; s++)
			if ((secs = secs * 10 + (*s - '0')) > PROV_RETRY_AFTER_MAX)
				secs = PROV_RETRY_AFTER_MAX;
		while (*s == ' ' || *s == '\t')
			s++;
		return *s == '\0' ? (int)secs : -1;
	}
	if (*s == '\0' || (t = curl_getdate(s, NULL)) == -1)
		return -1;
	if (t <= now)
		return 0;
	return t - now > PROV_RETRY_AFTER_MAX ? PROV_RETRY_AFTER_MAX : (int)(t - now);
}

/* prov_v4_private - whether the IPv4 address A (host order) is one the guard refuses:
 * 0/8 (this network), 10/8, 100.64/10 (CGNAT), 127/8, 169.254/16, 172.16/12, 192.168/16,
 * 224/4 (multicast) and 240/4 (reserved, with the broadcast address) */
static bool prov_v4_private(uint32_t a)
{
	return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 22) == (100u << 2 | 1) ||
	    (a >> 24) == 127 || (a >> 16) == (169u << 8 | 254) || (a >> 20) == (172u << 4 | 1) ||
	    (a >> 16) == (192u << 8 | 168) || (a >> 28) == 0xe || (a >> 28) == 0xf;
}

/* prov_v4_at - the IPv4 address in bytes B[0..3] (network order) */
static uint32_t prov_v4_at(const unsigned char *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

bool prov_addr_private(const struct sockaddr *sa)
{
	static const unsigned char zero[12];
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	static const unsigned char nat64[12] = { 0, 0x64, 0xff, 0x9b };
	const unsigned char *b;

	if (sa == NULL)
		return true;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

		return prov_v4_private(ntohl(in->sin_addr.s_addr));
	}
	if (sa->sa_family != AF_INET6)
		return true;             /* not IP: nothing a webhook should reach */
	b = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
	/* ::/96 holds :: (unspecified), ::1 (loopback) and the deprecated IPv4-compatible
	 * addresses; ::ffff:0:0/96 the IPv4-mapped; 64:ff9b::/96 the NAT64 well-known prefix */
	if (memcmp(b, zero, 12) == 0 || memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0)
		return prov_v4_private(prov_v4_at(b + 12));   /* ::, ::1 fall in 0/8 */
	if (b[0] == 0x20 && b[1] == 0x02)            /* 2002::/16, 6to4: the IPv4 in bits 16-47 */
		return prov_v4_private(prov_v4_at(b + 2));
	return (b[0] & 0xfe) == 0xfc ||             /* fc00::/7 unique local (RFC 4193) */
	    (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||  /* fe80::/10 link-local */
	    (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) ||  /* fec0::/10 site-local (deprecated) */
	    b[0] == 0xff;                               /* ff00::/8 multicast */
}

/* prov_opensocket_cb - the private-destination guard: refuse to open a socket to a private
 * address, and say why in the call */
static curl_socket_t prov_opensocket_cb(void *arg, curlsocktype purpose,
	struct curl_sockaddr *a)
{
	struct prov_call_int *ci = arg;
	char host[INET6_ADDRSTRLEN] = "?";

	(void)purpose;
	if (!prov_addr_private(&a->addr))
		return socket(a->family, a->socktype, a->protocol);
	if (a->family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)&a->addr)->sin_addr, host,
		    sizeof host);
	else if (a->family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)&a->addr)->sin6_addr, host,
		    sizeof host);
	if (ci->pub.refused[0] == '\0')
		snprintf(ci->pub.refused, sizeof ci->pub.refused,
		    "destination %s is private (channels.%s.allow_private)", host, ci->channel);
	return CURL_SOCKET_BAD;
}

struct prov_call *prov_call_new(const struct prov *p, long timeout_s, bool tls_verify,
	bool allow_private)
{
	struct prov_call_int *ci = calloc(1, sizeof *ci);
	struct prov_call *call;
	CURL *e;

	if (ci == NULL)
		return NULL;
	call = &ci->pub;
	if ((e = call->easy = curl_easy_init()) == NULL) {
		free(ci);
		return NULL;
	}
	ci->channel = conf_channel_name(p->channel);
	ci->retry_after = -1;
	curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)call);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (timeout_s > 0 ? timeout_s : 10) * 1000L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, tls_verify ? 1L : 0L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, tls_verify ? 2L : 0L);
	if (p->cp != NULL && p->cp->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, p->cp->ca_file);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, prov_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, prov_header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, ci);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->errbuf);
	if (!allow_private) {
		curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, prov_opensocket_cb);
		curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, ci);
	}
	return call;
}

void prov_call_free(struct prov_call *call)
{
	if (call == NULL)
		return;
	if (call->easy != NULL)
		curl_easy_cleanup(call->easy);
	curl_slist_free_all(call->headers);
	free(call->body);
	free(call->resp);
	free(call);
}

/* prov_snippet - " : <the response's first bytes>", printable ASCII only, or "" */
static void prov_snippet(const struct prov_call *call, char *out, size_t n)
{
	size_t i, k = 0;

	out[0] = '\0';
	if (call->resp == NULL || call->resp_len == 0 || n < 8)
		return;
	out[k++] = ':';
	out[k++] = ' ';
	for (i = 0; i < call->resp_len && i < PROV_SNIPPET && k < n - 4; i++) {
		unsigned char ch = (unsigned char)call->resp[i];

		out[k++] = (char)((ch >= 0x20 && ch < 0x7f) ? ch : ' ');
	}
	if (i < call->resp_len) {
		memcpy(out + k, "...", 3);
		k += 3;
	}
	while (k > 2 && out[k - 1] == ' ')
		k--;
	out[k > 2 ? k : 0] = '\0';
}

/* prov_curl_permanent - curl results no retry will cure: the URL itself is wrong */
static bool prov_curl_permanent(CURLcode rc)
{
	return rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL;
}

void prov_http_outcome(const struct prov_call *call, CURLcode rc, struct prov_result *r)
{
	const struct prov_call_int *ci = (const struct prov_call_int *)(const void *)call;
	char snip[PROV_SNIPPET + 8];
	long status = 0;

	r->http_status = 0;
	r->retry_after = -1;
	r->message_id[0] = '\0';
	if (rc != CURLE_OK) {
		if (call->refused[0] != '\0') {
			r->outcome = PROV_PERMANENT;
			snprintf(r->detail, sizeof r->detail, "%s", call->refused);
			return;
		}
		r->outcome = prov_curl_permanent(rc) ? PROV_PERMANENT : PROV_TRANSIENT;
		snprintf(r->detail, sizeof r->detail, "curl %d %s%s%s", (int)rc,
		    curl_easy_strerror(rc), call->errbuf[0] ? ": " : "", call->errbuf);
		return;
	}
	curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
	r->http_status = status;
	prov_snippet(call, snip, sizeof snip);
	if (status >= 200 && status < 300) {
		r->outcome = PROV_ACCEPTED;
		snprintf(r->message_id, sizeof r->message_id, "%s", ci->message_id);
		snprintf(r->detail, sizeof r->detail, "HTTP %ld", status);
	} else if (status == 429 || (status >= 500 && status < 600)) {
		r->outcome = PROV_TRANSIENT;
		r->retry_after = ci->retry_after;
		snprintf(r->detail, sizeof r->detail, "HTTP %ld%s", status, snip);
	} else if (status >= 300 && status < 400) {
		r->outcome = PROV_PERMANENT;
		snprintf(r->detail, sizeof r->detail, "HTTP %ld: redirect not followed", status);
	} else {
		r->outcome = PROV_PERMANENT;
		snprintf(r->detail, sizeof r->detail, "HTTP %ld%s", status, snip);
	}
}

bool prov_url_ok(const char *u)
{
	CURLU *h = curl_url();
	char *scheme = NULL;
	bool ok = false;

	if (h == NULL)
		return false;
	if (curl_url_set(h, CURLUPART_URL, u, 0) == CURLUE_OK &&
	    curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK)
		ok = strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0;
	curl_free(scheme);
	curl_url_cleanup(h);
	return ok;
}

int prov_fail(struct prov_result *r, enum prov_outcome outcome, const char *detail)
{
	r->outcome = outcome;
	snprintf(r->detail, sizeof r->detail, "%s", detail);
	return -1;
}

int prov_header(struct prov_call *call, const char *line)
{
	struct curl_slist *l = curl_slist_append(call->headers, line);

	if (l == NULL)
		return -1;
	call->headers = l;
	return 0;
}

bool prov_token_ok(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (*s <= 0x20 || *s >= 0x7f)
			return false;
	return true;
}

void prov_post(struct prov_call *call, const char *url, size_t len)
{
	if (url != NULL)
		curl_easy_setopt(call->easy, CURLOPT_URL, url);
	curl_easy_setopt(call->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(call->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(call->easy, CURLOPT_POSTFIELDS, call->body);
	curl_easy_setopt(call->easy, CURLOPT_USERAGENT, "herald/" PACKAGE_VERSION);
	curl_easy_setopt(call->easy, CURLOPT_HTTPHEADER, call->headers);
}
