/* herald-send - §10: send one request from flags or JSON, or a JSON Lines file, through libherald */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "herald.h"

#define SEND_EXIT_OK 0
#define SEND_EXIT_REJECTED 1
#define SEND_EXIT_USAGE 2
#define SEND_EXIT_BROKER 3

struct send_opts {
	const char *conf, *user, *channels, *template_name, *subject, *body, *category, *priority;
	const char *idem_key, *batch, *send_at, *ttl, *json, *bulk, *idem_prefix;
	double rate;
	json_object *data;
};

struct send_stats {
	long ok, rejected, failed, done;
	long total;                  /* lines in the file, 0 = unknown (a pipe) */
	bool progress;
	struct timespec start, shown;
};

/* send_usage - the --help text to F */
static void send_usage(FILE *f)
{
	fputs("usage: herald-send [-c CONF] --user U --channel email[,sms] (--template T | --subject S "
	    "--body B)\n"
	    "                   [--data k=v]... [--category C] [--priority P] [--idempotency-key K]\n"
	    "                   [--batch B] [--send-at TIME] [--ttl SECONDS]\n"
	    "       herald-send [-c CONF] --json REQUEST\n"
	    "       herald-send [-c CONF] --bulk FILE|- [--rate N] [--idempotency-prefix P]\n"
	    "Prints the reply of each request as a JSON line. Exit: 0 all accepted, 1 some rejected,\n"
	    "2 usage or config error, 3 broker unreachable, blocked or unconfirmed.\n", f);
}

/* send_now - seconds on the monotonic clock */
static double send_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* send_add_str - O[K] = V when V is set */
static void send_add_str(json_object *o, const char *k, const char *v)
{
	if (v != NULL)
		json_object_object_add(o, k, json_object_new_string(v));
}

/* send_content - the inline content of channel CH from --subject/--body ({} with --template) */
static json_object *send_content(const struct send_opts *o, const char *ch)
{
	json_object *c = json_object_new_object();

	if (o->template_name != NULL)
		return c;
	if (strcmp(ch, "email") == 0)
		send_add_str(c, "subject", o->subject);
	else if (strcmp(ch, "push") == 0)
		send_add_str(c, "title", o->subject);
	else if (strcmp(ch, "webhook") == 0)
		send_add_str(c, "event", o->subject);
	send_add_str(c, "body", o->body);
	return c;
}

/* send_build - the §2 request of the flags mode as JSON text (malloc'd), or NULL with a message */
static char *send_build(const struct send_opts *o)
{
	json_object *r = json_object_new_object(), *chs = json_object_new_object();
	char *list, *tok, *save = NULL, *end, *s;

	json_object_object_add(r, "user_id", json_object_new_string(o->user));
	if ((list = strdup(o->channels)) == NULL)
		return NULL;
	for (tok = strtok_r(list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save))
		json_object_object_add(chs, tok, send_content(o, tok));
	free(list);
	json_object_object_add(r, "channels", chs);
	send_add_str(r, "template", o->template_name);
	if (o->data != NULL)
		json_object_object_add(r, "data", json_object_get(o->data));
	send_add_str(r, "category", o->category);
	if (o->priority != NULL) {
		long p = strtol(o->priority, &end, 10);

		if (*o->priority != '\0' && *end == '\0')
			json_object_object_add(r, "priority", json_object_new_int64(p));
		else
			send_add_str(r, "priority", o->priority);
	}
	send_add_str(r, "idempotency_key", o->idem_key);
	send_add_str(r, "batch_id", o->batch);
	send_add_str(r, "send_at", o->send_at);
	if (o->ttl != NULL) {
		long t = strtol(o->ttl, &end, 10);

		if (*o->ttl != '\0' && *end == '\0')
			json_object_object_add(r, "ttl", json_object_new_int64(t));
		else
			send_add_str(r, "ttl", o->ttl);
	}
	s = strdup(json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN));
	json_object_put(r);
	return s;
}

/* send_prefix - LINE with "idempotency_key":PREFIX inserted when it is an object without one;
 * malloc'd, or NULL to send LINE unchanged */
static char *send_prefix(const char *line, size_t len, const char *prefix)
{
	json_object *o, *k, *ks;
	const char *brace, *p;
	char *out = NULL;
	const char *qk;
	size_t n;

	if (prefix == NULL || (o = json_tokener_parse(line)) == NULL)
		return NULL;
	if (json_object_is_type(o, json_type_object) &&
	    !json_object_object_get_ex(o, "idempotency_key", &k) &&
	    (brace = memchr(line, '{', len)) != NULL) {
		ks = json_object_new_string(prefix);
		qk = json_object_to_json_string_ext(ks, JSON_C_TO_STRING_PLAIN);
		for (p = brace + 1; *p == ' ' || *p == '\t'; p++)
			;
		n = len + strlen(qk) + 32;
		if ((out = malloc(n)) != NULL)
			snprintf(out, n, "%.*s\"idempotency_key\":%s%s%s", (int)(brace + 1 - line), line,
			    qk, *p == '}' ? "" : ",", brace + 1);
		json_object_put(ks);
	}
	json_object_put(o);
	return out;
}

/* send_progress - redraw the progress line on stderr (a terminal) at most 5 times a second */
static void send_progress(struct send_stats *st, bool last)
{
	struct timespec now;
	double el, rate;
	char eta[64];

	if (!st->progress)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!last && (now.tv_sec - st->shown.tv_sec) * 1000 + (now.tv_nsec - st->shown.tv_nsec) /
	    1000000 < 200)
		return;
	st->shown = now;
	el = (double)(now.tv_sec - st->start.tv_sec) + (double)(now.tv_nsec - st->start.tv_nsec) / 1e9;
	rate = el > 0 ? (double)st->done / el : 0.0;
	if (st->total > 0 && rate > 0 && !last)
		snprintf(eta, sizeof eta, " of %ld, ETA %.0f s", st->total,
		    (double)(st->total - st->done) / rate);
	else
		eta[0] = '\0';
	fprintf(stderr, "\r%ld done%s, %ld accepted, %ld rejected, %ld failed, %.0f/s \033[K%s",
	    st->done, eta, st->ok, st->rejected, st->failed, rate, last ? "\n" : "");
}

/* send_count_lines - the number of lines of the seekable file F (rewound), 0 when unknown */
static long send_count_lines(FILE *f)
{
	char buf[65536];
	size_t n, i;
	long lines = 0;
	int last = '\n';

	if (fseek(f, 0, SEEK_SET) != 0)
		return 0;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		for (i = 0; i < n; i++)
			if ((last = (unsigned char)buf[i]) == '\n')
				lines++;
	if (last != '\n')
		lines++;
	if (fseek(f, 0, SEEK_SET) != 0)
		return 0;
	return lines;
}

/* send_reply_cb - print one reply line and count it */
static void send_reply_cb(int status, const char *reply, long line, void *arg)
{
	struct send_stats *st = arg;

	(void)line;
	printf("%s\n", reply);
	st->done++;
	if (status == HERALD_OK)
		st->ok++;
	else if (status == HERALD_EINVAL)
		st->rejected++;
	else
		st->failed++;
	send_progress(st, false);
}

/* send_bulk - submit every line of F; the replies come through send_reply_cb */
static int send_bulk(struct herald *h, FILE *f, const struct send_opts *o, struct send_stats *st)
{
	char *line = NULL, *fixed;
	size_t cap = 0;
	ssize_t len;
	long n = 0;
	double t0 = send_now();

	while ((len = getline(&line, &cap, f)) >= 0) {
		n++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (o->rate > 0) {
			double wait = t0 + (double)(n - 1) / o->rate - send_now();

			if (wait > 0) {
				herald_flush(h);
				usleep((useconds_t)(wait * 1e6));
			}
		}
		fixed = send_prefix(line, (size_t)len, o->idem_prefix);
		herald_submit(h, fixed != NULL ? fixed : line, fixed != NULL ? strlen(fixed) :
		    (size_t)len, n, send_reply_cb, st);
		free(fixed);
	}
	free(line);
	herald_flush(h);
	send_progress(st, true);
	return ferror(f) ? -1 : 0;
}

/* send_data - add one --data k=v to O */
static int send_data(struct send_opts *o, const char *kv)
{
	const char *eq = strchr(kv, '=');
	char *k;

	if (eq == NULL || eq == kv)
		return -1;
	if (o->data == NULL)
		o->data = json_object_new_object();
	if ((k = strndup(kv, (size_t)(eq - kv))) == NULL)
		return -1;
	json_object_object_add(o->data, k, json_object_new_string(eq + 1));
	free(k);
	return 0;
}

/* send_args - parse ARGV into O; 0, 1 for --help, or -1 with a message printed */
static int send_args(int argc, char **argv, struct send_opts *o)
{
	enum { O_USER = 256, O_CHANNEL, O_TEMPLATE, O_SUBJECT, O_BODY, O_DATA, O_CATEGORY, O_PRIO,
		O_IDEM, O_BATCH, O_SENDAT, O_TTL, O_JSON, O_BULK, O_RATE, O_PREFIX, O_HELP };
	static const struct option lo[] = {
		{ "config", required_argument, NULL, 'c' }, { "user", required_argument, NULL, O_USER },
		{ "channel", required_argument, NULL, O_CHANNEL },
		{ "template", required_argument, NULL, O_TEMPLATE },
		{ "subject", required_argument, NULL, O_SUBJECT }, { "body", required_argument, NULL, O_BODY },
		{ "data", required_argument, NULL, O_DATA },
		{ "category", required_argument, NULL, O_CATEGORY },
		{ "priority", required_argument, NULL, O_PRIO },
		{ "idempotency-key", required_argument, NULL, O_IDEM },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "send-at", required_argument, NULL, O_SENDAT }, { "ttl", required_argument, NULL, O_TTL },
		{ "json", required_argument, NULL, O_JSON }, { "bulk", required_argument, NULL, O_BULK },
		{ "rate", required_argument, NULL, O_RATE },
		{ "idempotency-prefix", required_argument, NULL, O_PREFIX },
		{ "help", no_argument, NULL, O_HELP }, { NULL, 0, NULL, 0 }
	};
	int c, modes;
	char *end;

	while ((c = getopt_long(argc, argv, "c:h", lo, NULL)) != -1) {
		switch (c) {
		case 'c': o->conf = optarg; break;
		case O_USER: o->user = optarg; break;
		case O_CHANNEL: o->channels = optarg; break;
		case O_TEMPLATE: o->template_name = optarg; break;
		case O_SUBJECT: o->subject = optarg; break;
		case O_BODY: o->body = optarg; break;
		case O_DATA:
			if (send_data(o, optarg) < 0) {
				fprintf(stderr, "herald-send: --data %s: expected KEY=VALUE\n", optarg);
				return -1;
			}
			break;
		case O_CATEGORY: o->category = optarg; break;
		case O_PRIO: o->priority = optarg; break;
		case O_IDEM: o->idem_key = optarg; break;
		case O_BATCH: o->batch = optarg; break;
		case O_SENDAT: o->send_at = optarg; break;
		case O_TTL: o->ttl = optarg; break;
		case O_JSON: o->json = optarg; break;
		case O_BULK: o->bulk = optarg; break;
		case O_RATE:
			o->rate = strtod(optarg, &end);
			if (*optarg == '\0' || *end != '\0' || !(o->rate > 0)) {
				fprintf(stderr, "herald-send: --rate %s: expected a positive number\n",
				    optarg);
				return -1;
			}
			break;
		case O_PREFIX: o->idem_prefix = optarg; break;
		case 'h': case O_HELP: return 1;
		default: return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "herald-send: unexpected argument %s\n", argv[optind]);
		return -1;
	}
	modes = (o->json != NULL) + (o->bulk != NULL) + (o->user != NULL || o->channels != NULL);
	if (modes != 1) {
		fprintf(stderr, "herald-send: give exactly one of --user/--channel, --json, --bulk\n");
		return -1;
	}
	if ((o->rate > 0 || o->idem_prefix != NULL) && o->bulk == NULL) {
		fprintf(stderr, "herald-send: --rate and --idempotency-prefix go with --bulk\n");
		return -1;
	}
	if (o->json == NULL && o->bulk == NULL) {
		if (o->user == NULL || o->channels == NULL) {
			fprintf(stderr, "herald-send: --user and --channel are both needed\n");
			return -1;
		}
		if ((o->template_name == NULL) == (o->body == NULL)) {
			fprintf(stderr, "herald-send: give --template, or --body (with --subject)\n");
			return -1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct send_opts o = { 0 };
	struct send_stats st = { 0 };
	struct herald *h = NULL;
	char err[768], *req = NULL;
	FILE *f = NULL;
	int rc, code = SEND_EXIT_USAGE;

	if ((rc = send_args(argc, argv, &o)) != 0) {
		send_usage(rc > 0 ? stdout : stderr);
		json_object_put(o.data);
		return rc > 0 ? SEND_EXIT_OK : SEND_EXIT_USAGE;
	}
	if (o.bulk != NULL) {
		f = strcmp(o.bulk, "-") == 0 ? stdin : fopen(o.bulk, "r");
		if (f == NULL) {
			fprintf(stderr, "herald-send: %s: %s\n", o.bulk, strerror(errno));
			goto out;
		}
	} else if (o.json == NULL && (req = send_build(&o)) == NULL) {
		fprintf(stderr, "herald-send: out of memory\n");
		goto out;
	}
	if ((rc = herald_open(o.conf, &h, err, sizeof err)) != HERALD_OK) {
		fprintf(stderr, "herald-send: %s: %s\n", herald_strerror(rc), err);
		code = rc == HERALD_ECONFIG || rc == HERALD_EUSAGE ? SEND_EXIT_USAGE : SEND_EXIT_BROKER;
		goto out;
	}
	if (f != NULL) {
		st.progress = isatty(STDERR_FILENO);
		if (st.progress && f != stdin)
			st.total = send_count_lines(f);
		clock_gettime(CLOCK_MONOTONIC, &st.start);
		if (send_bulk(h, f, &o, &st) < 0)
			fprintf(stderr, "herald-send: reading %s: %s\n", o.bulk, strerror(errno));
	} else {
		const char *r = o.json != NULL ? o.json : req;

		herald_submit(h, r, strlen(r), 0, send_reply_cb, &st);
		herald_flush(h);
	}
	if (st.failed > 0)
		fprintf(stderr, "herald-send: %ld request%s not accepted by the broker%s%s\n", st.failed,
		    st.failed == 1 ? "" : "s", *herald_error(h) != '\0' ? ": " : "", herald_error(h));
	code = st.failed > 0 ? SEND_EXIT_BROKER : st.rejected > 0 ? SEND_EXIT_REJECTED : SEND_EXIT_OK;
out:
	herald_close(h);
	if (f != NULL && f != stdin)
		fclose(f);
	free(req);
	json_object_put(o.data);
	if (fflush(stdout) != 0 && code == SEND_EXIT_OK)
		code = SEND_EXIT_USAGE;
	return code;
}
