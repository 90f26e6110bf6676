/* url - the §12 connection URLs: amqp://, amqps://, mysql:// and mysqls://user:pass@host:port/path
 *
 * Grammar: scheme "://" [user [":" password] "@"] host [":" port] ["/" path]
 *   scheme    amqp, amqps, mysql or mysqls (any case); amqps and mysqls mean TLS
 *   user, password, path   percent-decoded; '/', '?', '#', space and control characters must be
 *             percent-encoded; a decoded control character (%00..%1f, %7f) is refused
 *   host      a name or IPv4 address of [A-Za-z0-9._-], or an IPv6 address in brackets
 *   port      1..65535; default 5672 (amqp), 5671 (amqps), 3306 (mysql, mysqls)
 *   path      AMQP vhost (absent or empty: "/"; "%2f" is "/") or MySQL database (absent: "")
 * The userinfo ends at the last '@' before the path, so a raw '@' in a password still works.
 * Queries and fragments are refused. Error texts name the part and never quote the input.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "url.h"

/* url_error - format "PART: reason" into ERR (when given); always returns -1 */
static int url_error(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int url_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* url_hexval - the value of hex digit C, or -1 */
static int url_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* url_ctl - true when byte C is a control character or space (never allowed raw) */
static int url_ctl(unsigned char c)
{
	return c <= 0x20 || c == 0x7f;
}

/* url_decode - percent-decode the N bytes at S into OUT (URL_PART_MAX), naming PART on error */
static int url_decode(const char *s, size_t n, char out[URL_PART_MAX], const char *part,
    char *err, size_t errlen)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (url_ctl(c))
			return url_error(err, errlen, "%s: space or control character", part);
		if (c == '/')
			return url_error(err, errlen, "%s: '/' must be written %%2f", part);
		if (c == '%') {
			int hi = i + 2 < n ? url_hexval(s[i + 1]) : -1;
			int lo = i + 2 < n ? url_hexval(s[i + 2]) : -1;

			if (i + 2 >= n || hi < 0 || lo < 0)
				return url_error(err, errlen, "%s: bad percent-encoding", part);
			c = (unsigned char)(hi << 4 | lo);
			if (url_ctl(c) && c != ' ')
				return url_error(err, errlen, "%s: encodes a control character", part);
			i += 2;
		}
		if (o >= URL_PART_MAX - 1)
			return url_error(err, errlen, "%s: longer than %d bytes", part,
			    URL_PART_MAX - 1);
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/* url_host - check and copy the host (brackets stripped from IPv6) of N bytes at S */
static int url_host(const char *s, size_t n, char out[URL_PART_MAX], char *err, size_t errlen)
{
	struct in6_addr a6;
	size_t i;

	if (n == 0)
		return url_error(err, errlen, "host: missing");
	if (n >= URL_PART_MAX)
		return url_error(err, errlen, "host: longer than %d bytes", URL_PART_MAX - 1);
	if (s[0] == '[') {
		if (n < 3 || s[n - 1] != ']')
			return url_error(err, errlen, "host: IPv6 address without its ']'");
		memcpy(out, s + 1, n - 2);
		out[n - 2] = '\0';
		if (inet_pton(AF_INET6, out, &a6) != 1) {
			out[0] = '\0';
			return url_error(err, errlen, "host: not an IPv6 address");
		}
		return 0;
	}
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '-' || c == '_'))
			return url_error(err, errlen, "host: character not allowed in a host name");
	}
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

/* url_port - N decimal digits at S as a port 1..65535 */
static int url_port(const char *s, size_t n, int *port, char *err, size_t errlen)
{
	long v = 0;
	size_t i;

	if (n == 0)
		return url_error(err, errlen, "port: empty");
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return url_error(err, errlen, "port: not a number");
		v = v * 10 + (s[i] - '0');
		if (v > 65535)
			return url_error(err, errlen, "port: out of range 1-65535");
	}
	if (v < 1)
		return url_error(err, errlen, "port: out of range 1-65535");
	*port = (int)v;
	return 0;
}

/* url_split - fill OUT from S; the body of url_parse */
static int url_split(const char *s, struct url *out, char *err, size_t errlen)
{
	const char *auth, *end, *at, *colon, *hostend, *p;
	size_t i, n;

	p = strstr(s, "://");
	if (p == NULL)
		return url_error(err, errlen, "scheme: missing \"://\"");
	n = (size_t)(p - s);
	if (n == 4 && strncasecmp(s, "amqp", 4) == 0) {
		strcpy(out->scheme, "amqp");
		out->port = 5672;
	} else if (n == 5 && strncasecmp(s, "amqps", 5) == 0) {
		strcpy(out->scheme, "amqps");
		out->port = 5671;
		out->tls = true;
	} else if (n == 5 && strncasecmp(s, "mysql", 5) == 0) {
		strcpy(out->scheme, "mysql");
		out->port = 3306;
	} else if (n == 6 && strncasecmp(s, "mysqls", 6) == 0) {
		strcpy(out->scheme, "mysqls");
		out->port = 3306;
		out->tls = true;
	} else {
		return url_error(err, errlen, "scheme: unknown (want amqp, amqps, mysql or mysqls)");
	}
	auth = p + 3;
	for (i = 0; auth[i] != '\0'; i++) {
		if (auth[i] == '?' || auth[i] == '#')
			return url_error(err, errlen, "%s: not supported (write '?' as %%3f, '#' as %%23)",
			    auth[i] == '?' ? "query" : "fragment");
	}
	end = strchr(auth, '/');
	if (end == NULL)
		end = auth + strlen(auth);

	/* userinfo: up to the last '@' of the authority; the password after its first ':' */
	at = NULL;
	for (p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	if (at != NULL) {
		colon = memchr(auth, ':', (size_t)(at - auth));
		if (url_decode(auth, (size_t)((colon ? colon : at) - auth), out->user, "user",
		    err, errlen) < 0)
			return -1;
		if (colon != NULL && url_decode(colon + 1, (size_t)(at - colon - 1), out->password,
		    "password", err, errlen) < 0)
			return -1;
		auth = at + 1;
	}

	/* host [":" port]; an IPv6 host is bracketed, its colons are not the port's */
	if (*auth == '[') {
		hostend = memchr(auth, ']', (size_t)(end - auth));
		if (hostend == NULL)
			return url_error(err, errlen, "host: IPv6 address without its ']'");
		hostend++;
		if (hostend != end && *hostend != ':')
			return url_error(err, errlen, "host: unexpected character after ']'");
	} else {
		hostend = memchr(auth, ':', (size_t)(end - auth));
		if (hostend == NULL)
			hostend = end;
	}
	if (url_host(auth, (size_t)(hostend - auth), out->host, err, errlen) < 0)
		return -1;
	if (hostend != end && url_port(hostend + 1, (size_t)(end - hostend - 1), &out->port,
	    err, errlen) < 0)
		return -1;

	/* path: the AMQP vhost or the MySQL database, one segment */
	if (*end == '/')
		end++;
	if (url_decode(end, strlen(end), out->path,
	    out->scheme[0] == 'a' ? "vhost" : "database", err, errlen) < 0)
		return -1;
	if (out->scheme[0] == 'a' && out->path[0] == '\0')
		strcpy(out->path, "/");
	return 0;
}

/* url_parse - split S into OUT; on error -1 with a reason naming the part in ERR */
int url_parse(const char *s, struct url *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (s == NULL || *s == '\0')
		return url_error(err, errlen, "url: empty");
	if (url_split(s, out, err, errlen) < 0) {
		memset(out, 0, sizeof *out);   /* leave no half-parsed password behind */
		return -1;
	}
	return 0;
}

/* url_redact - copy S into OUT with the password replaced by "***"; returns OUT */
char *url_redact(const char *s, char *out, size_t outlen)
{
	const char *rest, *end, *at = NULL, *colon, *p;
	struct url u;

	if (outlen == 0)
		return out;
	if (s == NULL || (p = strstr(s, "://")) == NULL) {
		snprintf(out, outlen, "***");   /* no structure to go by: show nothing */
		return out;
	}
	rest = p + 3;
	end = rest + strcspn(rest, "/?#");
	for (p = rest; p < end; p++)
		if (*p == '@')
			at = p;
	if (at == NULL && url_parse(s, &u, NULL, 0) < 0)
		at = strrchr(rest, '@');    /* malformed (a raw '/' in a password?): be safe */
	explicit_bzero(&u, sizeof u);
	colon = at != NULL ? memchr(rest, ':', (size_t)(at - rest)) : NULL;
	if (colon == NULL)
		snprintf(out, outlen, "%s", s);
	else
		snprintf(out, outlen, "%.*s***%s", (int)(colon + 1 - s), s, at);
	return out;
}
