/* sched_run - run the scheduler alone in the foreground, for t/scheduler.t:
 * sched_run [CONF] (default: $HERALD_CONFIG); stops on SIGTERM/SIGINT with the scheduler's code */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>

#include "conf.h"
#include "log.h"
#include "master.h"
#include "scheduler.h"

int main(int argc, char **argv)
{
	struct conf conf;
	struct conf_error err;
	int rc;

	log_init("sched_run", LOG_LEVEL_INFO);
	if (conf_load(conf_path(argc > 1 ? argv[1] : NULL), &conf, &err) != 0 ||
	    conf_require(&conf, "broker", &err) != 0 || conf_require(&conf, "mysql", &err) != 0) {
		fprintf(stderr, "sched_run: %s\n", err.msg);
		return EX_CONFIG;
	}
	if (master_logging(&conf) < 0) {
		fprintf(stderr, "sched_run: cannot open the log file\n");
		conf_free(&conf);
		return EX_CANTCREAT;
	}
	rc = scheduler_main(&conf);
	conf_free(&conf);
	return rc;
}
