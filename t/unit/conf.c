/* t/unit/conf - conf_load: the sample, defaults, env overrides, errors with file:line:key */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "tap.h"

#define CONF_T_MAX 64

static char *conf_t_files[CONF_T_MAX];
static int conf_t_nfiles;

/* conf_t_write - TEXT into a new temp file; returns its path (removed at exit) */
static const char *conf_t_write(const char *text)
{
	char tmpl[] = "/tmp/herald-conf-XXXXXX";
	int fd = mkstemp(tmpl);
	size_t n = strlen(text);

	if (fd < 0 || write(fd, text, n) != (ssize_t)n || close(fd) < 0 ||
	    conf_t_nfiles == CONF_T_MAX) {
		perror("conf_t_write");
		exit(1);
	}
	conf_t_files[conf_t_nfiles] = strdup(tmpl);
	if (conf_t_files[conf_t_nfiles] == NULL)
		exit(1);
	return conf_t_files[conf_t_nfiles++];
}

/* conf_t_env_clear - unset the variables conf_load reads */
static void conf_t_env_clear(void)
{
	unsetenv(CONF_ENV_PATH);
	unsetenv(CONF_ENV_AMQP);
	unsetenv(CONF_ENV_MYSQL);
}

/* conf_t_loads - TEXT loads cleanly; on failure prints the error */
static int conf_t_loads(const char *text, struct conf *c, const char *desc)
{
	struct conf_error err;
	int rc = conf_load(conf_t_write(text), c, &err);

	if (rc < 0)
		printf("# %s\n", err.msg);
	return ok(rc == 0, "%s", desc);
}

/* conf_t_fails - TEXT is refused with "FILE:LINE: KEY: " and REASON in the message */
static void conf_t_fails(const char *text, int line, const char *key, const char *reason,
    const char *desc)
{
	const char *path = conf_t_write(text);
	struct conf_error err;
	struct conf c;
	char want[512];
	int rc = conf_load(path, &c, &err);

	if (line > 0)
		snprintf(want, sizeof want, "%s:%d: %s: ", path, line, key);
	else
		snprintf(want, sizeof want, "%s: %s: ", path, key);
	if (!ok(rc == -1 && strncmp(err.msg, want, strlen(want)) == 0 &&
	    strstr(err.msg, reason) != NULL && strcmp(err.key, key) == 0, "%s", desc))
		printf("#   got: \"%s\"\n#  want: \"%s...%s...\"\n", rc == 0 ? "(loaded)" : err.msg,
		    want, reason);
	if (rc == 0)
		conf_free(&c);
}

/* conf_t_sample - the annotated sample loads and holds the documented defaults */
static void conf_t_sample(void)
{
	const char *srcdir = getenv("HERALD_SRCDIR");
	char path[1024];
	struct conf_error err;
	struct conf c;
	int rc;

	snprintf(path, sizeof path, "%s/etc/herald.conf", srcdir ? srcdir : ".");
	rc = conf_load(path, &c, &err);
	if (!ok(rc == 0, "sample etc/herald.conf loads"))
		printf("# %s\n", err.msg);
	if (rc < 0) {
		ok(0, "sample: no secrets, all sections present");
		return;
	}
	ok(!c.has_secrets && conf_has(&c, "retention") && conf_has(&c, "channels") &&
	    c.file_read && c.mode != 0, "sample: no secrets, all sections present");
	conf_free(&c);
}

/* conf_t_defaults - a producer-only file: valid, and everything else at its default */
static void conf_t_defaults(void)
{
	struct conf c;
	const struct conf_category *t, *m, *r;

	if (!conf_t_loads("broker = { url = \"amqp://localhost/\"; };\n", &c,
	    "producer-only file (broker section) loads")) {
		ok(0, "defaults");
		ok(0, "defaults: categories");
		ok(0, "defaults: webhook provider");
		ok(0, "conf_has");
		return;
	}
	ok(c.broker.prefetch == 50 && c.broker.heartbeat == 30 && c.broker.tls.verify &&
	    c.limits.request_max == 65536 && c.limits.metadata_max == 2048 &&
	    c.limits.sms_body_max == 1600 && c.limits.push_payload_max == 4096 &&
	    c.retry.tiers.n == 5 && c.retry.tiers.v[0] == 10 && c.retry.tiers.v[4] == 21600 &&
	    c.idempotency.window == 86400 && c.caps.n[CONF_CH_EMAIL] == 3 &&
	    c.caps.n[CONF_CH_SMS] == 2 && c.caps.n[CONF_CH_PUSH] == 5 &&
	    c.caps.n[CONF_CH_WEBHOOK] == 0 && c.quiet_hours.channels[CONF_CH_SMS] &&
	    c.quiet_hours.channels[CONF_CH_PUSH] && !c.quiet_hours.channels[CONF_CH_EMAIL] &&
	    c.channels[CONF_CH_EMAIL].workers == 2 && c.heraldd.grace == 30 &&
	    !c.heraldd.daemonize && c.retention.days == 90 && c.log.syslog == -1 &&
	    c.log.level == 1 && strcmp(c.metrics.listen, "127.0.0.1:9464") == 0 &&
	    !c.channels[CONF_CH_WEBHOOK].allow_private && !c.has_secrets,
	    "defaults: broker, limits, tiers, window, caps, quiet hours, workers, heraldd");
	t = conf_category_find(&c, "transactional");
	m = conf_category_find(&c, "marketing");
	r = conf_category_find(&c, "reminders");
	ok(c.ncategories == 4 && t && t->priority == 8 && t->cap_exempt && !t->quiet_hours &&
	    m && m->priority == 1 && !m->cap_exempt && m->quiet_hours && r && r->priority == 4 &&
	    conf_category_find(&c, "notifications") != NULL, "defaults: the four categories");
	ok(c.channels[CONF_CH_WEBHOOK].nproviders == 1 &&
	    c.channels[CONF_CH_WEBHOOK].providers[0].type == CONF_PROV_WEBHOOK &&
	    c.channels[CONF_CH_WEBHOOK].providers[0].timeout == 10 &&
	    c.channels[CONF_CH_EMAIL].nproviders == 0, "defaults: webhook provider, no email provider");
	ok(conf_has(&c, "broker") && !conf_has(&c, "mysql") && !conf_has(&c, "log") &&
	    strcmp(c.broker.parsed.host, "localhost") == 0 && !c.broker.url_from_env,
	    "conf_has: broker yes, mysql and log no");
	conf_free(&c);
}

/* conf_t_files_env - which file, missing files, §12 environment overrides */
static void conf_t_files_env(void)
{
	const char *p = conf_t_write("broker = { url = \"amqp://u:pw@filehost/\"; };\n");
	struct conf_error err;
	struct conf c;
	int rc;

	conf_t_env_clear();
	is_str(conf_path(NULL), CONF_PATH_DEFAULT, "conf_path: default");
	setenv(CONF_ENV_PATH, "/x/env.conf", 1);
	is_str(conf_path(NULL), "/x/env.conf", "conf_path: $HERALD_CONFIG");
	is_str(conf_path("/x/cli.conf"), "/x/cli.conf", "conf_path: -c wins");
	conf_t_env_clear();

	setenv(CONF_ENV_AMQP, "amqp://localhost/", 1);
	rc = conf_load("/nonexistent/herald.conf", &c, &err);
	ok(rc == -1 && strncmp(err.msg, "/nonexistent/herald.conf: cannot read: ", 39) == 0,
	    "explicit missing file is an error even with the env set");

	if (access(CONF_PATH_DEFAULT, F_OK) == 0) {
		/* the machine has a real config: these two cases cannot be run here */
		printf("ok %d # skip %s exists\n", ++tap_state()->run, CONF_PATH_DEFAULT);
		printf("ok %d # skip %s exists\n", ++tap_state()->run, CONF_PATH_DEFAULT);
	} else {
		setenv(CONF_ENV_MYSQL, "mysql://h:p@db/herald", 1);
		rc = conf_load(NULL, &c, &err);
		ok(rc == 0 && !c.file_read && c.broker.url_from_env && c.mysql.url_from_env &&
		    c.caps.n[CONF_CH_PUSH] == 5 && c.channels[CONF_CH_WEBHOOK].nproviders == 1 &&
		    !c.has_secrets, "default path missing + env set: documented defaults");
		if (rc == 0)
			conf_free(&c);
		unsetenv(CONF_ENV_AMQP);
		unsetenv(CONF_ENV_MYSQL);
		rc = conf_load(NULL, &c, &err);
		ok(rc == -1 && strstr(err.msg, CONF_ENV_AMQP) != NULL,
		    "default path missing, no env: error with a hint");
	}

	setenv(CONF_ENV_AMQP, "amqps://envuser:envpw@envhost/v", 1);
	rc = conf_load(p, &c, &err);
	ok(rc == 0 && c.broker.url_from_env && strcmp(c.broker.parsed.host, "envhost") == 0 &&
	    c.broker.parsed.tls && strcmp(c.broker.url, "amqps://envuser:envpw@envhost/v") == 0,
	    "HERALD_AMQP_URL wins over broker.url");
	ok(rc == 0 && c.has_secrets && strcmp(c.secret_key, "broker.url") == 0,
	    "password in the file's broker.url is a secret");
	if (rc == 0)
		conf_free(&c);

	setenv(CONF_ENV_AMQP, "mysql://h/db", 1);
	rc = conf_load(p, &c, &err);
	ok(rc == -1 && strncmp(err.msg, "HERALD_AMQP_URL: scheme", 23) == 0,
	    "HERALD_AMQP_URL with a mysql scheme names the variable");
	setenv(CONF_ENV_AMQP, "amqp://h:99999/", 1);
	rc = conf_load(p, &c, &err);
	ok(rc == -1 && strncmp(err.msg, "HERALD_AMQP_URL: ", 17) == 0 &&
	    strstr(err.msg, "99999") == NULL, "unparsable HERALD_AMQP_URL names the variable");
	unsetenv(CONF_ENV_AMQP);
	setenv(CONF_ENV_MYSQL, "amqp://h/", 1);
	rc = conf_load(p, &c, &err);
	ok(rc == -1 && strncmp(err.msg, "HERALD_MYSQL_URL: ", 18) == 0,
	    "bad HERALD_MYSQL_URL names the variable");
	unsetenv(CONF_ENV_MYSQL);
}

/* conf_t_require - conf_require for mysql without and with the environment */
static void conf_t_require(void)
{
	const char *p = conf_t_write("broker = { url = \"amqp://localhost/\"; };\n");
	const char *q = conf_t_write("mysql = { read_timeout = 5; };\n");
	struct conf_error err;
	struct conf c;
	char want[256];

	conf_t_env_clear();
	if (conf_load(p, &c, &err) == 0) {
		snprintf(want, sizeof want, "%s: mysql: section required by %s", p,
		    program_invocation_short_name);
		ok(conf_require(&c, "mysql", &err) == -1 && strncmp(err.msg, want, strlen(want)) == 0,
		    "conf_require mysql: refused without the section");
		ok(conf_require(&c, "broker", &err) == 0, "conf_require broker: present");
		conf_free(&c);
	} else {
		ok(0, "conf_require mysql: refused without the section");
		ok(0, "conf_require broker: present");
	}
	setenv(CONF_ENV_MYSQL, "mysql://h/herald", 1);
	ok(conf_load(p, &c, &err) == 0 && conf_require(&c, "mysql", &err) == 0 &&
	    strcmp(c.mysql.parsed.path, "herald") == 0, "conf_require mysql: satisfied by the env");
	conf_free(&c);
	unsetenv(CONF_ENV_MYSQL);
	ok(conf_load(q, &c, &err) == 0 && conf_require(&c, "mysql", &err) == -1 &&
	    strcmp(err.key, "mysql.url") == 0 && conf_has(&c, "log") == false,
	    "conf_require mysql: a section without url names mysql.url");
	conf_free(&c);
}

/* conf_t_errors - refusals with file, line and full key */
static void conf_t_errors(void)
{
	const char *p;
	struct conf_error err;
	struct conf c;
	char want[256];

	p = conf_t_write("broker = {\n  prefetch = 5;\n  heartbeat = = 3;\n};\n");
	snprintf(want, sizeof want, "%s:3: ", p);
	ok(conf_load(p, &c, &err) == -1 && strncmp(err.msg, want, strlen(want)) == 0 &&
	    err.line == 3, "syntax error: FILE:LINE:");

	{
		const char *inc = conf_t_write("mysql = { url = \"mysql://h:secret@127.0.0.1/h\"; };\n");
		char text[256];
		const char *path;

		snprintf(text, sizeof text, "broker = { prefetch = 5; };\n@include \"%s\"\n", inc + 5);   /* relative to /tmp */
		path = conf_t_write(text);
		if (!ok(conf_load(path, &c, &err) == -1 && strstr(err.msg, "@include is not supported") != NULL &&
		    strncmp(err.msg, path, strlen(path)) == 0, "@include refused, naming the file"))
			diag("got \"%s\"", err.msg);
	}
	conf_t_fails("broker = { prefetch = 5; };\nbogus = 1;\n", 2, "bogus", "unknown key",
	    "unknown top-level key");
	conf_t_fails("broker = {\n tls = {\n  verfy = true;\n };\n};\n", 3, "broker.tls.verfy",
	    "unknown key", "unknown nested key");
	conf_t_fails("channels = { email = { providers = (\n"
	    " { type = \"smtp\"; url = \"smtp://mx\";\n   bogus = 1; }\n ); }; };\n", 3,
	    "channels.email.providers[0].bogus", "unknown key", "unknown key in a provider group");
	conf_t_fails("channels = { email = { providers = (\n"
	    " { type = \"smtp\"; url = \"smtp://mx\";\n   secrets = [\"s\"]; }\n ); }; };\n", 3,
	    "channels.email.providers[0].secrets", "not valid for provider type smtp",
	    "another provider type's key");
	conf_t_fails("channels = {\n email = {\n  allow_private = true; }; };\n", 3,
	    "channels.email.allow_private", "not valid for channel email",
	    "webhook-only key on another channel");
	conf_t_fails("broker = {\n prefetch = \"50\";\n};\n", 2, "broker.prefetch",
	    "expected an integer", "wrong type");
	conf_t_fails("broker = 5;\n", 1, "broker", "expected a group", "wrong type for a section");
	conf_t_fails("channels = { email = {\n workers = 1000; }; };\n", 2, "channels.email.workers",
	    "out of range", "out of range");
	conf_t_fails("log = { level = \"loud\"; };\n", 1, "log.level", "must be one of",
	    "bad enum value");
	conf_t_fails("retry = { tiers = [10, 60, 60]; };\n", 1, "retry.tiers",
	    "tier 3: must be greater", "non-increasing retry tiers");
	conf_t_fails("retry = { tiers = []; };\n", 1, "retry.tiers", "expected 1 to 20",
	    "no retry tiers");
	conf_t_fails("\nbroker = { url = \"mysql://h/db\"; };\n", 2, "broker.url",
	    "scheme must be amqp or amqps", "broker.url with a mysql scheme");
	conf_t_fails("mysql = { url = \"amqp://h/\"; };\n", 1, "mysql.url", "scheme must be mysql",
	    "mysql.url with an amqp scheme");
	conf_t_fails("channels = {\n fax = { workers = 1; }; };\n", 2, "channels.fax",
	    "unknown channel", "unknown channel name");
	conf_t_fails("channels = { email = { providers = (\n { type = \"fcm\";\n"
	    "   service_account_file = \"/x\"; }); }; };\n", 2, "channels.email.providers[0]",
	    "does not serve channel email", "provider type that does not serve the channel");
	conf_t_fails("channels = { email = { providers = (\n { type = \"smtp\"; }); }; };\n", 2,
	    "channels.email.providers[0].url", "required", "required provider key missing");
	conf_t_fails("channels = { email = { providers = (\n { type = \"smtp\";\n"
	    "   url = \"http://mx\"; }); }; };\n", 3, "channels.email.providers[0].url",
	    "smtp://", "smtp URL with the wrong scheme");
	conf_t_fails("defaults = {\n email_from = \"a@b\\r\\nBcc: x@y\"; };\n", 2,
	    "defaults.email_from", "control character", "CR LF in a header value");
	conf_t_fails("preferences = { defaults = {\n promo = false; }; };\n", 2,
	    "preferences.defaults.promo", "not a channel or configured category",
	    "preference for an unknown category");
	conf_t_fails("categories = {\n Promo = { priority = 3; }; };\n", 2, "categories.Promo",
	    "1-32 of a-z", "bad category name");
	conf_t_fails("categories = { promo = {\n priority = 10; }; };\n", 2,
	    "categories.promo.priority", "out of range", "category priority out of range");
	conf_t_fails("log = {\n file = \"/var/log/h.log\";\n syslog = \"daemon\"; };\n", 1, "log",
	    "exclude each other", "log file and syslog together");
}

/* conf_t_features - categories, preferences, clients, providers, secrets */
static void conf_t_features(void)
{
	struct conf c;
	const struct conf_category *cat;
	const struct conf_client *cl;

	if (conf_t_loads("categories = { promo = { cap_policy = \"defer\"; };\n"
	    "  marketing = { priority = 2; }; };\n"
	    "preferences = { defaults = { marketing = false; promo = { push = true; };\n"
	    "  sms = false; }; };\n"
	    "quiet_hours = { channels = [\"email\"]; };\n", &c,
	    "categories and preferences load")) {
		cat = conf_category_find(&c, "promo");
		ok(c.ncategories == 5 && cat && cat->priority == 4 && cat->cap_policy == CONF_CAP_DEFER &&
		    conf_category_find(&c, "marketing")->priority == 2 &&
		    conf_category_find(&c, "marketing")->quiet_hours, "new category, built-in override");
		ok(c.preferences.ndefaults == 3 &&
		    strcmp(c.preferences.defaults[0].key, "marketing") == 0 &&
		    !c.preferences.defaults[0].on &&
		    strcmp(c.preferences.defaults[1].key, "promo.push") == 0 &&
		    c.preferences.defaults[1].on && c.quiet_hours.channels[CONF_CH_EMAIL] &&
		    !c.quiet_hours.channels[CONF_CH_SMS], "preference defaults, quiet hours channels");
		conf_free(&c);
	} else {
		ok(0, "new category, built-in override");
		ok(0, "preference defaults, quiet hours channels");
	}

	if (conf_t_loads("clients = { shop = { email_from = \"Shop <o@shop.example>\";\n"
	    "  caps = { email = 5; }; quotas = { sms = 100; }; }; };\n"
	    "broker = { users = { frontend = [\"shop\", \"shop-eu\"]; }; };\n", &c,
	    "clients and broker users load")) {
		cl = conf_client_find(&c, "shop");
		ok(cl && cl->caps.n[CONF_CH_EMAIL] == 5 && cl->caps.n[CONF_CH_SMS] == -1 &&
		    cl->quotas.n[CONF_CH_SMS] == 100 && c.broker.nusers == 1 &&
		    c.broker.users[0].clients.n == 2 && !c.has_secrets,
		    "client caps inherit (-1), quotas, broker users");
		conf_free(&c);
	} else {
		ok(0, "client caps inherit (-1), quotas, broker users");
	}

	if (conf_t_loads("channels = { sms = { workers = 3; workers_min = 1; workers_max = 8;\n"
	    " providers = ( { name = \"tw\"; type = \"http\"; preset = \"twilio\";\n"
	    "  username = \"AC1\"; password = \"tok\"; }, { name = \"b\"; type = \"http\";\n"
	    "  url = \"https://sms.example/send\"; auth = \"bearer\"; token = \"t\";\n"
	    "  headers = [\"Accept: application/json\"]; content_type = \"json\"; } ); };\n"
	    " webhook = { allow_private = true; providers = ( { type = \"webhook\";\n"
	    "  secrets = [\"whsec_a\", \"whsec_b\"]; timeout = 3; } ); }; };\n", &c,
	    "providers in failover order load")) {
		const struct conf_channel *sms = &c.channels[CONF_CH_SMS];
		const struct conf_channel *wh = &c.channels[CONF_CH_WEBHOOK];

		ok(sms->nproviders == 2 && strcmp(sms->providers[0].name, "tw") == 0 &&
		    sms->providers[0].preset == CONF_PRESET_TWILIO &&
		    sms->providers[1].auth == CONF_AUTH_BEARER &&
		    sms->providers[1].content_type == CONF_HTTP_JSON &&
		    sms->providers[1].method == CONF_HTTP_POST && sms->providers[1].timeout == 10 &&
		    sms->workers_max == 8 && wh->allow_private && wh->nproviders == 1 &&
		    strcmp(wh->providers[0].name, "webhook") == 0 && wh->providers[0].secrets.n == 2 &&
		    wh->providers[0].timeout == 3, "provider values and defaults");
		ok(c.has_secrets && strcmp(c.secret_key, "channels.sms.providers[0].password") == 0,
		    "provider password is a secret");
		conf_free(&c);
	} else {
		ok(0, "provider values and defaults");
		ok(0, "provider password is a secret");
	}

	if (conf_t_loads("channels = { push = { providers = ( { type = \"apns\";\n"
	    " key_file = \"-----BEGIN PRIVATE KEY-----\"; key_id = \"K\"; team_id = \"T\";\n"
	    " topic = \"org.x\"; } ); }; };\n", &c, "apns provider loads")) {
		ok(c.has_secrets && c.channels[CONF_CH_PUSH].providers[0].url != NULL &&
		    strcmp(c.channels[CONF_CH_PUSH].providers[0].url, "https://api.push.apple.com") == 0,
		    "inline key material is a secret; apns url default");
		conf_free(&c);
	} else {
		ok(0, "inline key material is a secret; apns url default");
	}
}

/* conf_t_mysql_tls - what asks for TLS to MySQL: a mysql.tls group (even empty) or mysqls://;
 * the environment's URL decides over the file's */
static void conf_t_mysql_tls(void)
{
	struct conf c;

	if (conf_t_loads("mysql = { url = \"mysql://h/db\"; };\n", &c, "mysql://, no tls group")) {
		ok(!c.mysql.tls.on && c.mysql.tls.verify, "... plain; verify defaults to true");
		conf_free(&c);
	} else {
		ok(0, "... plain");
	}
	if (conf_t_loads("mysql = { url = \"mysql://h/db\"; tls = { ca_file = \"/ca.pem\"; "
	    "verify = false; }; };\n", &c, "mysql:// with a mysql.tls group")) {
		ok(c.mysql.tls.on && !c.mysql.tls.verify && strcmp(c.mysql.tls.ca_file, "/ca.pem") == 0,
		    "... TLS asked by the group, its keys read");
		conf_free(&c);
	} else {
		ok(0, "... TLS asked by the group");
	}
	setenv(CONF_ENV_MYSQL, "mysqls://u:p@db.example.org/herald", 1);
	if (conf_t_loads("mysql = { url = \"mysql://h/db\"; };\n", &c, "HERALD_MYSQL_URL=mysqls://")) {
		ok(c.mysql.tls.on && c.mysql.tls.ca_file == NULL && c.mysql.parsed.port == 3306 &&
		    strcmp(c.mysql.parsed.scheme, "mysqls") == 0, "... TLS asked by the URL, system CAs");
		conf_free(&c);
	} else {
		ok(0, "... TLS asked by the URL");
	}
	conf_t_env_clear();
	conf_t_fails("mysql = {\n tls = { cert_file = \"/c.pem\"; };\n};\n", 2, "mysql.tls",
	    "cert_file and key_file go together", "mysql.tls: cert_file without key_file refused");
	conf_t_fails("mysql = {\n url = \"amqps://h/\";\n};\n", 2, "mysql.url",
	    "scheme must be mysql or mysqls", "mysql.url: another scheme refused");
}

int main(void)
{
	int i;

	plan(64);
	conf_t_env_clear();
	conf_t_sample();
	conf_t_defaults();
	conf_t_files_env();
	conf_t_require();
	conf_t_errors();
	conf_t_features();
	conf_t_mysql_tls();
	for (i = 0; i < conf_t_nfiles; i++) {
		unlink(conf_t_files[i]);
		free(conf_t_files[i]);
	}
	return done();
}
