/* t/unit/url - url_parse good/bad tables, defaults, IPv6, %2f, errors without the password */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "tap.h"
#include "url.h"

struct url_t_good {
	const char *s;
	const char *scheme, *user, *password, *host;
	int port;
	const char *path;
};

static const struct url_t_good good[] = {
	{ "amqp://localhost", "amqp", "", "", "localhost", 5672, "/" },
	{ "amqp://localhost/", "amqp", "", "", "localhost", 5672, "/" },
	{ "amqp://localhost/%2f", "amqp", "", "", "localhost", 5672, "/" },
	{ "amqp://localhost/%2F", "amqp", "", "", "localhost", 5672, "/" },
	{ "amqp://guest:guest@127.0.0.1:5673/herald", "amqp", "guest", "guest", "127.0.0.1",
	  5673, "herald" },
	{ "amqps://u:p@broker.example.com", "amqps", "u", "p", "broker.example.com", 5671, "/" },
	{ "AMQPS://u@broker.example.com:1/", "amqps", "u", "", "broker.example.com", 1, "/" },
	{ "amqp://[::1]", "amqp", "", "", "::1", 5672, "/" },
	{ "amqp://[::1]:15672/v", "amqp", "", "", "::1", 15672, "v" },
	{ "amqp://u:p@[2001:db8::7]:65535/%2fprod", "amqp", "u", "p", "2001:db8::7", 65535,
	  "/prod" },
	{ "amqp://us%40er:p%3Ass%2f%3f%23w@h/v%20h", "amqp", "us@er", "p:ss/?#w", "h", 5672,
	  "v h" },
	{ "amqp://u:p@ss@h", "amqp", "u", "p@ss", "h", 5672, "/" },       /* last '@' */
	{ "amqp://u:a:b@h", "amqp", "u", "a:b", "h", 5672, "/" },         /* first ':' */
	{ "amqp://u:@h", "amqp", "u", "", "h", 5672, "/" },
	{ "amqp://:p@h", "amqp", "", "p", "h", 5672, "/" },
	{ "amqp://u:p%C3%A9@h", "amqp", "u", "p\xc3\xa9", "h", 5672, "/" },
	{ "mysql://herald:secret@db:3307/herald", "mysql", "herald", "secret", "db", 3307,
	  "herald" },
	{ "mysql://herald@db", "mysql", "herald", "", "db", 3306, "" },
	{ "mysql://db/", "mysql", "", "", "db", 3306, "" },
	{ "mysql://root@my_db.internal-1/h%2dx", "mysql", "root", "", "my_db.internal-1", 3306,
	  "h-x" },
	{ "MySQLs://herald:secret@db/herald", "mysqls", "herald", "secret", "db", 3306, "herald" },
};

struct url_t_bad {
	const char *s;
	const char *part;      /* the error text must start with this */
};

static const struct url_t_bad bad[] = {
	{ "", "url" },
	{ "localhost:5672", "scheme" },
	{ "http://h", "scheme" },
	{ "amqpx://h", "scheme" },
	{ "amqp:/h", "scheme" },
	{ "amqp://", "host" },
	{ "amqp:///vh", "host" },
	{ "amqp://u:p@", "host" },
	{ "amqp://u:p@:5672", "host" },
	{ "amqp://h:", "port" },
	{ "amqp://h:0", "port" },
	{ "amqp://h:65536", "port" },
	{ "amqp://h:99999999999999999999", "port" },
	{ "amqp://h:-1", "port" },
	{ "amqp://h:+5", "port" },
	{ "amqp://h:56x", "port" },
	{ "amqp://h:1:2", "port" },
	{ "amqp://[::1", "host" },
	{ "amqp://[::1]x", "host" },
	{ "amqp://[::1]:", "port" },
	{ "amqp://[]", "host" },
	{ "amqp://[zz::1]", "host" },
	{ "amqp://[127.0.0.1]", "host" },
	{ "amqp://::1", "host" },             /* IPv6 needs brackets */
	{ "amqp://ho st", "host" },
	{ "amqp://h%41", "host" },
	{ "amqp://h\x01", "host" },
	{ "amqp://h/a/b", "vhost" },
	{ "amqp://h//", "vhost" },
	{ "amqp://h/v\n", "vhost" },
	{ "amqp://h/v%0a", "vhost" },
	{ "amqp://h/v%", "vhost" },
	{ "amqp://h/v%4", "vhost" },
	{ "amqp://h/v%zz", "vhost" },
	{ "amqp://h/v?x=1", "query" },
	{ "amqp://h/v#frag", "fragment" },
	{ "amqp://h?heartbeat=10", "query" },
	{ "amqp://u\t:p@h", "user" },
	{ "amqp://u%00:p@h", "user" },
	{ "mysql://u:p@h/a/b", "database" },
	{ "mysql://u:p@h/d b", "database" },
};

int main(void)
{
	size_t ngood = sizeof good / sizeof good[0], nbad = sizeof bad / sizeof bad[0];
	char err[256], d[512], buf[URL_PART_MAX * 4], red[512];
	struct url u;
	size_t k;
	int r;

	plan((int)(ngood + nbad) + 20);

	for (k = 0; k < ngood; k++) {
		const struct url_t_good *g = &good[k];

		r = url_parse(g->s, &u, err, sizeof err);
		snprintf(d, sizeof d, "parse %s", g->s);
		if (!ok(r == 0 && strcmp(u.scheme, g->scheme) == 0 && strcmp(u.user, g->user) == 0 &&
		    strcmp(u.password, g->password) == 0 && strcmp(u.host, g->host) == 0 &&
		    u.port == g->port && strcmp(u.path, g->path) == 0 &&
		    u.tls == (g->scheme[strlen(g->scheme) - 1] == 's'), "good URL parsed"))
			printf("#   %s\n", d);
		if (r != 0)
			printf("#   err: %s\n", err);
		else
			printf("#   %s|%s|%s|%s|%d|%s\n", u.scheme, u.user, u.password, u.host,
			    u.port, u.path);
	}
	for (k = 0; k < nbad; k++) {
		size_t pl = strlen(bad[k].part);

		r = url_parse(bad[k].s, &u, err, sizeof err);
		snprintf(d, sizeof d, "refuse #%zu, error names %s", k, bad[k].part);
		if (!ok(r == -1 && strncmp(err, bad[k].part, pl) == 0 && err[pl] == ':' &&
		    u.host[0] == '\0' && u.password[0] == '\0', "bad URL refused, error names the part"))
			printf("#   %s\n", d);
		printf("#   err: %s\n", err);
	}

	/* the password never shows in an error, whatever the fault */
	r = url_parse("amqp://u:Sekr3t@h:0/v", &u, err, sizeof err);
	ok(r == -1 && strstr(err, "Sekr3t") == NULL, "bad port: error hides the password");
	r = url_parse("amqp://u:Sekr3t%zz@h/v", &u, err, sizeof err);
	ok(r == -1 && strncmp(err, "password:", 9) == 0 && strstr(err, "Sekr3t") == NULL,
	    "bad password encoding: error names password, hides it");
	r = url_parse("amqp://u:Sek/r3t@h/v", &u, err, sizeof err);
	ok(r == -1 && strstr(err, "Sek") == NULL && strstr(err, "r3t") == NULL,
	    "raw '/' in password: error hides it");
	r = url_parse("amqp://u:Sekr3t?x@h/v", &u, err, sizeof err);
	ok(r == -1 && strstr(err, "Sekr3t") == NULL, "raw '?' in password: error hides it");
	r = url_parse("amqp://u:Sekr3t@h/v", &u, NULL, 0);
	ok(r == 0 && strcmp(u.password, "Sekr3t") == 0, "a NULL error buffer is allowed");

	/* over-long parts */
	memset(buf, 0, sizeof buf);
	memcpy(buf, "amqp://u:", 9);
	memset(buf + 9, 'x', URL_PART_MAX - 1);
	strcat(buf, "@h");
	ok(url_parse(buf, &u, err, sizeof err) == 0 && strlen(u.password) == URL_PART_MAX - 1,
	    "password of URL_PART_MAX - 1 bytes accepted");
	memset(buf, 0, sizeof buf);
	memcpy(buf, "amqp://u:", 9);
	memset(buf + 9, 'x', URL_PART_MAX);
	strcat(buf, "@h");
	ok(url_parse(buf, &u, err, sizeof err) == -1 && strncmp(err, "password:", 9) == 0 &&
	    strstr(err, "xxx") == NULL, "password of URL_PART_MAX bytes refused");
	memset(buf, 0, sizeof buf);
	memcpy(buf, "amqp://", 7);
	memset(buf + 7, 'h', URL_PART_MAX);
	ok(url_parse(buf, &u, err, sizeof err) == -1 && strncmp(err, "host:", 5) == 0,
	    "host of URL_PART_MAX bytes refused");
	memset(buf, 0, sizeof buf);
	memcpy(buf, "mysql://h/", 10);
	for (k = 0; k < URL_PART_MAX; k++)
		memcpy(buf + 10 + 3 * k, "%41", 3);
	ok(url_parse(buf, &u, err, sizeof err) == -1 && strncmp(err, "database:", 9) == 0,
	    "database decoding to URL_PART_MAX bytes refused");
	memset(buf, 0, sizeof buf);
	memcpy(buf, "mysql://h/", 10);
	for (k = 0; k < URL_PART_MAX - 1; k++)
		memcpy(buf + 10 + 3 * k, "%41", 3);
	ok(url_parse(buf, &u, err, sizeof err) == 0 && strlen(u.path) == URL_PART_MAX - 1,
	    "database decoding to URL_PART_MAX - 1 bytes accepted");
	r = url_parse("amqp://u:p@h:0", &u, err, 8);
	ok(r == -1 && strlen(err) == 7, "error text truncated to its buffer");

	/* url_redact */
	is_str(url_redact("amqp://guest:Sekr3t@h:5672/v", red, sizeof red),
	    "amqp://guest:***@h:5672/v", "redact user:password");
	is_str(url_redact("mysql://root@db/herald", red, sizeof red), "mysql://root@db/herald",
	    "redact: no password, unchanged");
	is_str(url_redact("amqp://[::1]:5672/%2f", red, sizeof red), "amqp://[::1]:5672/%2f",
	    "redact: IPv6 host port not mistaken for a password");
	is_str(url_redact("amqp://u:p@ss:w@h/v", red, sizeof red), "amqp://u:***@h/v",
	    "redact: '@' inside the password");
	is_str(url_redact("amqp://u:Sek/r3t@h/v", red, sizeof red), "amqp://u:***@h/v",
	    "redact: malformed raw '/' in password still hidden");
	is_str(url_redact("amqp://h:5672/v@x", red, sizeof red), "amqp://h:5672/v@x",
	    "redact: '@' in a valid vhost left alone");
	is_str(url_redact("u:Sekr3t@h", red, sizeof red), "***", "redact: no scheme, show nothing");
	url_redact("amqp://guest:Sekr3t@h/v", red, 16);
	ok(strlen(red) == 15 && strstr(red, "Sek") == NULL, "redact truncates to its buffer");
	is_str(url_redact("amqp://u:@h", red, sizeof red), "amqp://u:***@h",
	    "redact: empty password also starred");
	return done();
}
