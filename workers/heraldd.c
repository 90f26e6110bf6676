/* heraldd - the daemon's entry point; for now the single-process modes --ledger and --worker */
#include "config.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <curl/curl.h>

#include "conf.h"
#include "ledger.h"
#include "log.h"
#include "worker.h"

static const char heraldd_usage[] =
	"usage: heraldd [-c CONF] --ledger\n"
	"       heraldd [-c CONF] --worker CHANNEL\n"
	"       heraldd -h | -V\n"
	"\n"
	"  -c, --config CONF   configuration file (default: $HERALD_CONFIG, else\n"
	"                      " CONF_PATH_DEFAULT ")\n"
	"      --ledger        run one ledger worker: record `queued` for accepted messages\n"
	"      --worker CH     run one worker of channel CH (email, sms, push, webhook)\n"
	"  -h, --help          this help\n"
	"  -V, --version       print the version\n"
	"\n"
	"The master mode (preforked, supervised workers) is not built yet.\n";

enum { OPT_LEDGER = 256, OPT_WORKER };

/* heraldd_logging - level and destination from C; 0, or -1 when the log file cannot be opened */
static int heraldd_logging(const struct conf *c)
{
	log_set_level((enum log_level)c->log.level);
	if (c->log.file != NULL && log_to_file(c->log.file) < 0) {
		fprintf(stderr, "heraldd: log.file %s: cannot open\n", c->log.file);
		return -1;
	}
	if (c->log.syslog >= 0)
		log_to_syslog(c->log.syslog);
	return 0;
}

/* heraldd_ledger_signals - SIGTERM/SIGINT set ledger_main's stop flag; no SA_RESTART, so a
 * blocking wait returns early */
static void heraldd_ledger_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = ledger_signal_cb;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "ledger", no_argument, NULL, OPT_LEDGER },
		{ "worker", required_argument, NULL, OPT_WORKER },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *cli = NULL, *chname = NULL;
	struct conf conf;
	struct conf_error err;
	int opt, ledger = 0, ch = -1, rc;

	log_init("heraldd", LOG_LEVEL_INFO);
	while ((opt = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			cli = optarg;
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
	if (!ledger && chname == NULL) {
		fprintf(stderr, "heraldd: master mode not built yet; use --worker CHANNEL or --ledger\n");
		return EX_USAGE;
	}
	if (chname != NULL && (ch = conf_channel_parse(chname)) < 0) {
		fprintf(stderr, "heraldd: --worker %s: unknown channel (email, sms, push, webhook)\n",
		    chname);
		return EX_USAGE;
	}
	if (conf_load(conf_path(cli), &conf, &err) != 0) {
		fprintf(stderr, "heraldd: %s\n", err.msg);
		return EX_CONFIG;
	}
	if (conf_require(&conf, "broker", &err) != 0 || conf_require(&conf, "mysql", &err) != 0) {
		fprintf(stderr, "heraldd: %s\n", err.msg);
		conf_free(&conf);
		return EX_CONFIG;
	}
	if (heraldd_logging(&conf) < 0) {
		conf_free(&conf);
		return EX_CANTCREAT;
	}
	/* a broken socket is an error return of the write, not a death */
	signal(SIGPIPE, SIG_IGN);
	if (ledger) {
		heraldd_ledger_signals();
		rc = ledger_main(&conf);
	} else {
		/* libcurl's global state is set up once, before any thread or handle exists */
		CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);

		if (cc != CURLE_OK) {
			log_error("event=curl_init_failed err=\"%s\"", curl_easy_strerror(cc));
			conf_free(&conf);
			return EX_SOFTWARE;
		}
		/* the worker installs its own (libev) signal watchers */
		rc = worker_main(&conf, ch);
		curl_global_cleanup();
	}
	conf_free(&conf);
	return rc;
}
