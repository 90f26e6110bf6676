/* heraldctl - the admin CLI (SPEC §1, §7, §8, §9): option parsing and command dispatch
 *
 * Each command group lives in its own file (ctl.h); the commands not written yet answer
 * "not yet implemented" (EX_USAGE).
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "conf.h"
#include "ctl.h"
#include "db.h"
#include "log.h"
#include "privs.h"
#include "url.h"

static const char heraldctl_usage[] =
	"usage: heraldctl [-c CONF] COMMAND [ARGS]\n"
	"\n"
	"  db migrate [--dry-run]      apply the pending sql/NNNN_*.sql migrations\n"
	"  db version                  print the schema version of the database\n"
	"  status TXID [--trail]       statuses of a transaction per channel (JSON)\n"
	"  history USER [--limit N] [--since T] [--batch B]   JSON Lines, newest first\n"
	"  user add USER [--email E] [--phone P] [--timezone Z] ... | user add --json RECORD\n"
	"  user show USER | user import FILE|- | user delete USER [--erase-history]\n"
	"  device add USER --platform ios|android --token T | device remove T | device list USER\n"
	"  prefs get USER | prefs set USER KEY=true|false|default... | prefs apply-token TOKEN\n"
	"  pause USER [--until T]      unpause USER\n"
	"  caps get [--client C]       caps set [--client C] [--quota] CHANNEL=N|none|default...\n"
	"  suppress list [--channel CH] | suppress add|remove ADDRESS [--channel CH]\n"
	"  workers [CHANNEL N] [--socket PATH]   heraldd's workers per channel; set N live\n"
	"  cancel TXID | cancel --batch B   end what is queued or deferred as cancelled\n"
	"  parked list|replay|drop CHANNEL [--txid T] [--limit N]   the parking queue\n"
	"  template add|show|list|test NAME --channel CH ...   stored templates, versioned\n"
	"  purge [--older-than 90d|DATE] [--batch N] [--dry-run]   delete old final notifications\n"
	"  stats [--format table] [--interval S]   queue depths and rates, statuses per channel\n"
	"                              (last hour and day), workers alive\n"
	"\n"
	"  --format json|table: status, history, user show, prefs get, caps, suppress list,\n"
	"  workers, parked list, template list and purge print JSON or an aligned table.\n"
	"\n"
	"  COMMAND --help shows a command's options; man heraldctl says more.\n"
	"\n"
	"  -c CONF      config file (default $HERALD_CONFIG, else /etc/herald/herald.conf)\n"
	"  -h, --help   this text\n"
	"  -V, --version\n"
	"\n"
	"Environment: HERALD_MYSQL_URL=mysql://user:pass@host:port/database (overrides mysql.url),\n"
	"HERALD_AMQP_URL=amqp://user:pass@host:port/vhost (overrides broker.url; parked, stats),\n"
	"HERALD_SQL_DIR (migrations; default " HERALD_SQL_DIR ").\n";

/* The implemented commands and the function that runs each. */
static const struct {
	const char *name;
	int (*run)(const char *conf, int argc, char **argv);
} heraldctl_cmds[] = {
	{ "db", db_migrate_cmd },
	{ "status", status_cmd },
	{ "history", status_history_cmd },
	{ "user", user_cmd },
	{ "prefs", prefs_cmd },
	{ "pause", prefs_pause_cmd },
	{ "unpause", prefs_pause_cmd },
	{ "caps", caps_cmd },
	{ "suppress", suppress_cmd },
	{ "workers", workers_cmd },
	{ "cancel", cancel_cmd },
	{ "parked", parked_cmd },
	{ "template", template_cmd },
	{ "purge", purge_cmd },
	{ "device", device_cmd },
	{ "stats", stats_cmd },
};

/* ctl_mysql_url - the MySQL URL and timeouts for CONF (the -c file, may be NULL) into OUT and
 * OPTS: the config file (-c, $HERALD_CONFIG, the default path) with the §12 environment
 * overriding it; 0, or an EX_ code with the reason printed on stderr */
int ctl_mysql_url(const char *conf, struct url *out, struct db_opts *opts)
{
	static struct conf_tls tls;    /* mysql.tls outlives C: db_open copies it later */
	struct conf c;
	struct conf_error err;
	int rc = EX_CONFIG;

	char perr[1024];

	if (conf_load(conf_path(conf), &c, &err) != 0) {
		fprintf(stderr, "heraldctl: %s\n", err.msg);
		return EX_CONFIG;
	}
	if (privs_secrets(&c, perr, sizeof perr) < 0) {
		fprintf(stderr, "heraldctl: %s\n", perr);
		goto out;
	}
	if (conf_require(&c, "mysql", &err) != 0) {
		fprintf(stderr, "heraldctl: %s (or set HERALD_MYSQL_URL=mysql://user:pass@host:port/db)\n", err.msg);
		goto out;
	}
	if (c.mysql.parsed.path[0] == '\0') {
		fprintf(stderr, "heraldctl: %s: names no database (mysql://user:pass@host:port/DATABASE)\n",
		    c.mysql.url_from_env ? "HERALD_MYSQL_URL" : "mysql.url");
		goto out;
	}
	*out = c.mysql.parsed;
	opts->connect_timeout = c.mysql.connect_timeout;
	opts->read_timeout = c.mysql.read_timeout;
	opts->write_timeout = c.mysql.write_timeout;
	free(tls.ca_file);
	free(tls.cert_file);
	free(tls.key_file);
	tls = c.mysql.tls;             /* its strings taken from C */
	c.mysql.tls.ca_file = c.mysql.tls.cert_file = c.mysql.tls.key_file = NULL;
	opts->tls = &tls;
	rc = 0;
out:
	conf_free(&c);
	return rc;
}

/* main - parse the global options, then run COMMAND */
int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *conf = NULL;
	int c, i;

	log_init("heraldctl", LOG_LEVEL_WARN);
	while ((c = getopt_long(argc, argv, "+c:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf = optarg;
			break;
		case 'h':
			fputs(heraldctl_usage, stdout);
			return EX_OK;
		case 'V':
			printf("heraldctl %s\n", PACKAGE_VERSION);
			return EX_OK;
		default:
			fputs(heraldctl_usage, stderr);
			return EX_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		fputs(heraldctl_usage, stderr);
		return EX_USAGE;
	}
	for (i = 0; i < (int)(sizeof(heraldctl_cmds) / sizeof(heraldctl_cmds[0])); i++)
		if (strcmp(argv[0], heraldctl_cmds[i].name) == 0)
			return heraldctl_cmds[i].run(conf, argc, argv);
	if (strcmp(argv[0], "help") == 0) {
		fputs(heraldctl_usage, stdout);
		return EX_OK;
	}
	fprintf(stderr, "heraldctl: unknown command '%s' (heraldctl --help lists them)\n", argv[0]);
	return EX_USAGE;
}
