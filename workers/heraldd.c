/* heraldd - the daemon's entry point: the master (the default), or one --ledger or --worker
 * process in the foreground for tests and debugging */
#include "config.h"

#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <curl/curl.h>

#include "conf.h"
#include "ledger.h"
#include "log.h"
#include "master.h"
#include "privs.h"
#include "worker.h"

static const char heraldd_usage[] =
	"usage: heraldd [-d] [-c CONF]\n"
	"       heraldd [-c CONF] --ledger\n"
	"       heraldd [-c CONF] --worker CHANNEL\n"
	"       heraldd -h | -V\n"
	"\n"
	"  -c, --config CONF   configuration file (default: $HERALD_CONFIG, else\n"
	"                      " CONF_PATH_DEFAULT ")\n"
	"                      without a mode: the master, which forks and supervises the\n"
	"                      ledger, the outbox worker and the channels' workers\n"
	"  -d, --daemon        the master goes to the background (as heraldd.daemonize)\n"
	"      --ledger        run one ledger worker: record `queued` for accepted messages\n"
	"      --worker CH     run one worker of channel CH (email, sms, push, webhook)\n"
	"  -h, --help          this help\n"
	"  -V, --version       print the version\n"
	"\n"
	"Master signals: SIGHUP reloads the config, SIGTERM/SIGINT drain and stop, SIGUSR1\n"
	"reopens the log file. heraldctl workers [CHANNEL N] shows and changes worker counts.\n"
	"Started as root, the master opens its files, then runs as heraldd.user.\n";

enum { OPT_LEDGER = 256, OPT_WORKER };

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "daemon", no_argument, NULL, 'd' },
		{ "ledger", no_argument, NULL, OPT_LEDGER },
		{ "worker", required_argument, NULL, OPT_WORKER },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *cli = NULL, *chname = NULL, *path;
	static char abspath[PATH_MAX];
	struct conf *conf;
	struct conf_error err;
	char perr[PATH_MAX + 512];
	CURLcode cc;
	int opt, ledger = 0, ch = -1, rc, bg = 0;

	log_init("heraldd", LOG_LEVEL_INFO);
	while ((opt = getopt_long(argc, argv, "c:dhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			cli = optarg;
			break;
		case 'd':
			bg = 1;
			break;
		case OPT_LEDGER:
			ledger = 1;
			break;
		case OPT_WORKER:
			chname = optarg;
			break;
		case 'h':
			fputs(heraldd_usage, stdout);
			return EX_OK;
		case 'V':
			printf("heraldd %s\n", PACKAGE_VERSION);
			return EX_OK;
		default:
			fputs(heraldd_usage, stderr);
			return EX_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "heraldd: unexpected argument '%s'\n", argv[optind]);
		fputs(heraldd_usage, stderr);
		return EX_USAGE;
	}
	if (ledger && chname != NULL) {
		fprintf(stderr, "heraldd: --ledger and --worker exclude each other\n");
		return EX_USAGE;
	}
	if (chname != NULL && (ch = conf_channel_parse(chname)) < 0) {
		fprintf(stderr, "heraldd: --worker %s: unknown channel (email, sms, push, webhook)\n",
		    chname);
		return EX_USAGE;
	}
	if ((conf = calloc(1, sizeof *conf)) == NULL) {
		fprintf(stderr, "heraldd: out of memory\n");
		return EX_OSERR;
	}
	if (conf_load(conf_path(cli), conf, &err) != 0 || conf_require(conf, "broker", &err) != 0 ||
	    conf_require(conf, "mysql", &err) != 0) {
		fprintf(stderr, "heraldd: %s\n", err.msg);
		conf_free(conf);
		free(conf);
		return EX_CONFIG;
	}
	/* §9: a file holding secrets that others can read is refused by every mode; the master
	 * also needs heraldd.user to exist before it opens anything as root */
	if (privs_secrets(conf, perr, sizeof perr) < 0 ||
	    (!ledger && chname == NULL && privs_init(conf, perr, sizeof perr) < 0)) {
		fprintf(stderr, "heraldd: %s\n", perr);
		conf_free(conf);
		free(conf);
		return EX_CONFIG;
	}
	if (master_logging(conf) < 0) {
		fprintf(stderr, "heraldd: log.file %s: cannot open\n", conf->log.file);
		conf_free(conf);
		free(conf);
		return EX_CANTCREAT;
	}
	path = conf_path(cli);
	if (!ledger && chname == NULL && (bg || conf->heraldd.daemonize)) {
		/* the daemon works from /: SIGHUP must still find the file */
		if (realpath(path, abspath) != NULL)
			path = abspath;
		if (conf->log.file == NULL && conf->log.syslog < 0)
			log_warnx("event=daemon_without_log note=\"stderr goes to /dev/null once the "
			    "daemon runs: set log.file or log.syslog\"");
		if (privs_daemonize(conf->log.file, perr, sizeof perr) < 0) {
			fprintf(stderr, "heraldd: %s\n", perr);
			privs_ready(EX_OSERR);
			conf_free(conf);
			free(conf);
			return EX_OSERR;
		}
	}
	/* a broken socket is an error return of the write, not a death */
	signal(SIGPIPE, SIG_IGN);
	/* libcurl's global state is set up once, before any thread, handle or child exists */
	if ((cc = curl_global_init(CURL_GLOBAL_DEFAULT)) != CURLE_OK) {
		log_error("event=curl_init_failed err=\"%s\"", curl_easy_strerror(cc));
		conf_free(conf);
		free(conf);
		return EX_SOFTWARE;
	}
	if (ledger) {
		ledger_signals();
		rc = ledger_main(conf);
	} else if (chname != NULL) {
		/* the worker installs its own (libev) signal watchers */
		rc = worker_main(conf, ch);
	} else {
		/* the master owns CONF from here: it replaces it on reload */
		rc = master_main(path, conf);
		conf = NULL;
		privs_ready(rc);        /* -d: a daemon that failed early tells its starter why */
	}
	curl_global_cleanup();
	if (conf != NULL) {
		conf_free(conf);
		free(conf);
	}
	return rc;
}
