/* webhook_send - deliver webhook notes through workers/http.c and the channel's providers on a
 * libev loop, as the worker does, and print one line per attempt (for t/webhook.t)
 *
 * webhook_send [-c CONF] [-n N] [-a ATTEMPTS] [-k CLIENT] [-e EVENT] [-u USER] [-b BATCH]
 *              [-C CATEGORY] [-m METADATA_JSON] [-d DATA_JSON] [-t NOW_USEC] [-x SECONDS]
 *              [-v] URL...
 * webhook_send [-c CONF] -O CHANNEL
 *
 * -O: only open CHANNEL's providers (prov_open) and print "providers=N NAME:TYPE..." or the
 * error on stdout (exit 0 or 1).
 *
 * N notes per URL (default 1), all in flight at once; each note is delivered ATTEMPTS times one
 * after the other (default 1), with the same identity "<txid>:webhook" every time, trying the
 * channel's providers in failover order within an attempt. -x stops the loop after SECONDS
 * and frees the curl multi with calls still running (they end aborted). -t fixes the time
 * (µs since the epoch) used for webhook-timestamp and the body's timestamp.
 * Output, after everything ended, one line per attempt in note order, tab-separated key=value
 * fields:
 *   i=NOTE  attempt=K  prov=NAME  outcome=accepted|permanent|transient  status=HTTP  retry_after=S
 *   id=IDENTITY  txid=TXID  msgid=MESSAGE_ID  detail=TEXT
 * Exit 0 when every delivery ended (whatever its outcome); 1 when one never ended or a done
 * callback ran from inside http_add; 2 on a usage or setup error.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <ev.h>
#include <json-c/json.h>

#include "codec.h"
#include "conf.h"
#include "http.h"
#include "log.h"
#include "prov.h"
#include "rfc3339.h"
#include "txid.h"

struct res_line {
	int attempt;
	char prov[64];
	struct prov_result r;
};

struct delivery {
	struct send *s;
	size_t idx;
	struct note *note;
	const char *url;
	char identity[TXID_LEN + 16];
	int attempt;                 /* 1.. */
	size_t prov;                 /* the provider of the current try */
	struct res_line *lines;      /* one per provider try */
	size_t nlines;
};

struct send {
	struct ev_loop *loop;
	struct http *http;
	const struct conf *conf;
	struct prov *provs;
	size_t nprovs;
	const char *event;
	const struct conf_client *client;
	int64_t now;
	int attempts;
	size_t ended, total;
};

static void send_start(struct delivery *d);

static bool in_add;              /* inside http_add: a done callback now is a bug */
static bool cb_in_add;

/* outcome_name - the outcome as printed */
static const char *outcome_name(enum prov_outcome o)
{
	return o == PROV_ACCEPTED ? "accepted" : o == PROV_PERMANENT ? "permanent" : "transient";
}

/* send_record - keep the result R of D's current try */
static void send_record(struct delivery *d, const struct prov_result *r)
{
	struct res_line *l = realloc(d->lines, (d->nlines + 1) * sizeof *l);

	if (l == NULL) {
		fprintf(stderr, "webhook_send: out of memory\n");
		exit(2);
	}
	d->lines = l;
	l += d->nlines++;
	l->attempt = d->attempt;
	snprintf(l->prov, sizeof l->prov, "%s", d->s->provs[d->prov].name);
	l->r = *r;
}

/* send_next - after a try ended with R: the next provider, the next attempt, or done */
static void send_next(struct delivery *d, const struct prov_result *r)
{
	struct send *s = d->s;

	send_record(d, r);
	if (r->outcome == PROV_TRANSIENT && d->prov + 1 < s->nprovs) {
		d->prov++;
		send_start(d);
		return;
	}
	if (d->attempt < s->attempts) {
		d->attempt++;
		d->note->attempt = (unsigned)d->attempt;
		d->prov = 0;
		send_start(d);
		return;
	}
	if (++s->ended == s->total)
		ev_break(s->loop, EVBREAK_ALL);
}

/* send_done_cb - http.c: a call ended */
static void send_done_cb(CURL *easy, CURLcode rc, void *arg)
{
	struct delivery *d = arg;
	struct prov *p = &d->s->provs[d->prov];
	struct prov_call *call = NULL;
	struct prov_result r;

	if (in_add)
		cb_in_add = true;
	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&call);
	memset(&r, 0, sizeof r);
	r.retry_after = -1;
	p->ops->finish(p, call, rc, &r);
	send_next(d, &r);
}

/* send_start - hand D to its current provider */
static void send_start(struct delivery *d)
{
	struct send *s = d->s;
	struct prov *p = &s->provs[d->prov];
	struct prov_call *call = NULL;
	struct prov_msg m;
	struct prov_result r;
	int rc;

	memset(&m, 0, sizeof m);
	m.note = d->note;
	m.address = d->url;
	m.subject = s->event;
	m.client = s->client;
	m.identity = d->identity;
	m.now = s->now ? s->now : rfc3339_now();
	memset(&r, 0, sizeof r);
	r.retry_after = -1;
	if (p->ops->start(p, &m, &call, &r) < 0) {
		send_next(d, &r);
		return;
	}
	curl_easy_setopt(call->easy, CURLOPT_PRIVATE, (char *)call);
	in_add = true;
	rc = http_add(s->http, call->easy, send_done_cb, d);
	in_add = false;
	if (rc < 0) {
		p->ops->finish(p, call, CURLE_FAILED_INIT, &r);
		send_next(d, &r);
	}
}

/* stop_cb - -x: time is up */
static void stop_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)t;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

/* json_arg - parse the JSON object option OPT, or exit 2 */
static struct json_object *json_arg(const char *opt, const char *s)
{
	struct json_object *o = json_tokener_parse(s);

	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		fprintf(stderr, "webhook_send: %s: not a JSON object\n", opt);
		exit(2);
	}
	return o;
}

/* open_only - -O CHANNEL: prov_open and say what came of it */
static int open_only(const char *cpath, const char *chname)
{
	struct conf conf;
	struct conf_error cerr;
	struct prov *p = NULL;
	size_t n = 0, i;
	char err[512];
	int ch = conf_channel_parse(chname), rc = 0;

	if (ch < 0) {
		fprintf(stderr, "webhook_send: -O %s: unknown channel\n", chname);
		return 2;
	}
	if (conf_load(cpath, &conf, &cerr) < 0) {
		fprintf(stderr, "webhook_send: %s\n", cerr.msg);
		return 2;
	}
	if (prov_open(&conf, ch, &p, &n, err, sizeof err) < 0) {
		printf("error=%s\n", err);
		rc = 1;
	} else {
		printf("providers=%zu", n);
		for (i = 0; i < n; i++)
			printf(" %s:%s", p[i].name, p[i].ops->type);
		printf("\n");
	}
	prov_close(p, n);
	conf_free(&conf);
	return rc;
}

static void usage(void)
{
	fprintf(stderr, "usage: webhook_send [-c CONF] [-n N] [-a ATTEMPTS] [-k CLIENT] [-e EVENT] "
	    "[-u USER] [-b BATCH] [-C CATEGORY] [-m METADATA_JSON] [-d DATA_JSON] [-t NOW_USEC] "
	    "[-v] URL...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *cpath = NULL, *client = NULL, *user = NULL, *batch = NULL;
	const char *category = "notifications", *meta = NULL, *data = NULL, *only = NULL;
	struct conf conf;
	struct conf_error cerr;
	struct send s;
	struct delivery *ds;
	char err[512];
	size_t n = 1, i, k, nurls;
	int opt, rc = 0;
	double stop_after = 0;
	ev_timer stop;

	memset(&s, 0, sizeof s);
	s.attempts = 1;
	log_init("webhook_send", LOG_LEVEL_WARN);
	while ((opt = getopt(argc, argv, "c:n:a:k:e:u:b:C:m:d:t:vO:x:")) != -1) {
		switch (opt) {
		case 'c': cpath = optarg; break;
		case 'n': n = strtoul(optarg, NULL, 10); break;
		case 'a': s.attempts = atoi(optarg); break;
		case 'k': client = optarg; break;
		case 'e': s.event = optarg; break;
		case 'u': user = optarg; break;
		case 'b': batch = optarg; break;
		case 'C': category = optarg; break;
		case 'm': meta = optarg; break;
		case 'd': data = optarg; break;
		case 't': s.now = strtoll(optarg, NULL, 10); break;
		case 'v': log_set_level(LOG_LEVEL_DEBUG); break;
		case 'O': only = optarg; break;
		case 'x': stop_after = strtod(optarg, NULL); break;
		default: usage();
		}
	}
	nurls = (size_t)(argc - optind);
	if (only != NULL)
		return open_only(cpath, only);
	if (nurls == 0 || n == 0 || s.attempts < 1)
		usage();
	if (conf_load(cpath, &conf, &cerr) < 0) {
		fprintf(stderr, "webhook_send: %s\n", cerr.msg);
		return 2;
	}
	s.conf = &conf;
	if (client != NULL && (s.client = conf_client_find(&conf, client)) == NULL)
		fprintf(stderr, "webhook_send: client %s not in the config: no client secrets\n",
		    client);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (prov_open(&conf, CONF_CH_WEBHOOK, &s.provs, &s.nprovs, err, sizeof err) < 0) {
		fprintf(stderr, "webhook_send: %s\n", err);
		conf_free(&conf);
		curl_global_cleanup();
		return 2;
	}
	s.loop = ev_default_loop(0);
	if ((s.http = http_new(s.loop)) == NULL)
		return 2;
	s.total = n * nurls;
	if ((ds = calloc(s.total, sizeof *ds)) == NULL)
		return 2;
	for (i = 0; i < s.total; i++) {
		struct delivery *d = &ds[i];
		struct note *no = calloc(1, sizeof *no);

		if (no == NULL || txid_new(no->txid) < 0)
			return 2;
		no->channel = CODEC_CH_WEBHOOK;
		no->user_id = user ? strdup(user) : NULL;
		no->client_id = client ? strdup(client) : NULL;
		no->batch_id = batch ? strdup(batch) : NULL;
		no->category = strdup(category);
		no->content = json_object_new_object();
		no->metadata = meta ? json_arg("-m", meta) : NULL;
		no->data = data ? json_arg("-d", data) : NULL;
		no->priority = 4;
		no->attempt = 1;
		no->accepted_at = rfc3339_now();
		d->s = &s;
		d->idx = i;
		d->note = no;
		d->url = argv[optind + (int)(i % nurls)];
		d->attempt = 1;
		snprintf(d->identity, sizeof d->identity, "%s:webhook", no->txid);
	}
	for (i = 0; i < s.total; i++)
		send_start(&ds[i]);
	ev_timer_init(&stop, stop_cb, stop_after, 0.);
	if (stop_after > 0)
		ev_timer_start(s.loop, &stop);
	if (s.ended < s.total)
		ev_run(s.loop, 0);
	ev_timer_stop(s.loop, &stop);
	if (s.ended < s.total)
		fprintf(stderr, "webhook_send: stopped with %zu of %zu deliveries running (%zu in "
		    "curl): aborting them\n", s.total - s.ended, s.total, http_running(s.http));
	http_free(s.http);
	if (s.ended < s.total) {
		fprintf(stderr, "webhook_send: %zu deliveries never ended\n", s.total - s.ended);
		rc = 1;
	}
	if (cb_in_add) {
		fprintf(stderr, "webhook_send: a done callback ran from inside http_add\n");
		rc = 1;
	}
	for (i = 0; i < s.total; i++) {
		struct delivery *d = &ds[i];

		for (k = 0; k < d->nlines; k++) {
			const struct res_line *l = &d->lines[k];

			printf("i=%zu\tattempt=%d\tprov=%s\toutcome=%s\tstatus=%ld\tretry_after=%d\t"
			    "id=%s\ttxid=%s\tmsgid=%s\tdetail=%s\n", d->idx, l->attempt, l->prov,
			    outcome_name(l->r.outcome), l->r.http_status, l->r.retry_after,
			    d->identity, d->note->txid, l->r.message_id, l->r.detail);
		}
		free(d->lines);
		codec_note_free(d->note);
	}
	free(ds);
	prov_close(s.provs, s.nprovs);
	ev_loop_destroy(s.loop);
	conf_free(&conf);
	curl_global_cleanup();
	return rc;
}
