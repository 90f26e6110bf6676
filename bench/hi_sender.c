/* hi_sender - bench/priority.sh's paced sender: N webhook requests through libherald, one every
 * INTERVAL milliseconds on a fixed schedule, each to user PREFIX-K (K cycling over USERS) with
 * priority PRIORITY and batch_id BATCH. herald_submit publishes at once and does not wait for
 * the confirm (herald_send would, and a slow confirm would stretch the schedule); the reply
 * comes through the callback later. For each request prints "SENT TXID" on stdout, in order:
 * SENT is the wall clock (seconds since the epoch, CLOCK_REALTIME, to compare with a receiver's
 * log) just before herald_submit, TXID the reply's transaction id.
 *
 *   hi_sender [-c CONF] [-p PRIORITY] [-b BATCH] N INTERVAL_MS PREFIX USERS
 *
 * Config as every program (§12): -c, $HERALD_CONFIG, the environment. Exit 0 when all N were
 * received, 1 otherwise (the failing replies on stderr). Not built by default:
 * `make bench/hi_sender` (EXTRA_PROGRAMS). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "herald.h"

#define HI_TXID_KEY "\"transaction_id\":\""

static double *hi_sent;      /* send time of request LINE - 1 */
static long hi_bad;

static double hi_now(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* hi_sleep_until - sleep until CLOCK_MONOTONIC reaches T seconds */
static void hi_sleep_until(double t)
{
	struct timespec ts;

	ts.tv_sec = (time_t)t;
	ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* hi_reply_cb - print "SENT TXID" for request LINE, or count it failed */
static void hi_reply_cb(int status, const char *reply, long line, void *arg)
{
	const char *id = reply != NULL ? strstr(reply, HI_TXID_KEY) : NULL;

	(void)arg;
	if (status != HERALD_OK || id == NULL) {
		fprintf(stderr, "hi_sender: request %ld: %s: %s\n", line, herald_strerror(status),
		    reply != NULL ? reply : "no reply");
		hi_bad++;
		return;
	}
	id += strlen(HI_TXID_KEY);
	printf("%.6f %.*s\n", hi_sent[line - 1], (int)strcspn(id, "\""), id);
}

static void hi_usage(void)
{
	fprintf(stderr, "usage: hi_sender [-c CONF] [-p PRIORITY] [-b BATCH] N INTERVAL_MS PREFIX USERS\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *conf = NULL, *prio = "high", *batch = "hi";
	struct herald *h;
	char err[1024], req[512];
	long n, users, i;
	double interval, t0;
	int c, rc;

	while ((c = getopt(argc, argv, "c:p:b:")) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 'p': prio = optarg; break;
		case 'b': batch = optarg; break;
		default: hi_usage();
		}
	}
	if (argc - optind != 4)
		hi_usage();
	n = atol(argv[optind]);
	interval = atof(argv[optind + 1]) / 1000.0;
	users = atol(argv[optind + 3]);
	if (n <= 0 || interval < 0 || users <= 0)
		hi_usage();
	if ((rc = herald_open(conf, &h, err, sizeof err)) != HERALD_OK) {
		fprintf(stderr, "hi_sender: %s: %s\n", herald_strerror(rc), err);
		return 1;
	}
	if ((hi_sent = calloc((size_t)n, sizeof *hi_sent)) == NULL) {
		fprintf(stderr, "hi_sender: out of memory\n");
		return 1;
	}
	t0 = hi_now(CLOCK_MONOTONIC);
	for (i = 0; i < n && rc == HERALD_OK; i++) {
		int len;

		hi_sleep_until(t0 + (double)i * interval);
		len = snprintf(req, sizeof req, "{\"user_id\":\"%s-%ld\",\"channels\":{\"webhook\":"
		    "{\"event\":\"bench.high\"}},\"priority\":\"%s\",\"batch_id\":\"%s\"}",
		    argv[optind + 2], i % users, prio, batch);
		hi_sent[i] = hi_now(CLOCK_REALTIME);
		rc = herald_submit(h, req, (size_t)len, i + 1, hi_reply_cb, NULL);
	}
	if (rc == HERALD_OK)
		rc = herald_flush(h);
	if (rc != HERALD_OK)
		fprintf(stderr, "hi_sender: %s\n", herald_strerror(rc));
	fflush(stdout);
	herald_close(h);
	free(hi_sent);
	return rc != HERALD_OK || hi_bad > 0 || i < n ? 1 : 0;
}
