/* raw_publish - the benchmark's baseline: publish what `herald-send --bulk FILE` publishes (the
 * same bodies, properties and headers, to the channel queue through exchange herald and a ledger
 * copy to herald.ledger.v1) with plain rabbitmq-c and publisher confirms, windowed like
 * libherald's default (1000 unconfirmed). The requests are validated, split and encoded with the
 * shared codec before the clock starts, so the timed part is publishing and confirms only.
 *
 *   raw_publish [-w WINDOW] [-d] URL FILE   publish; prints "requests N messages M seconds S rate R"
 *                                           -d: the ledger copy only after its channel copy is
 *                                           confirmed, as libherald does (default: right after it)
 *   raw_publish -C [-u HOOK] [-w WINDOW] [-d] URL FILE
 *                                           the raw publisher/consumer pair (bench/e2e.sh): a
 *                                           forked consumer on its own connection consumes the
 *                                           channel and ledger queues the file's messages go to
 *                                           and acks them (-u: first POSTs each channel message's
 *                                           body to HOOK with libcurl, one keep-alive connection,
 *                                           2xx expected) while the parent publishes; timed until
 *                                           the last confirm and the last ack; adds "consumed M
 *                                           consume_seconds S pair_rate R posts P" to the line
 *   raw_publish -c URL QUEUE...              print "QUEUE COUNT" per queue (passive declare)
 *   raw_publish -p URL QUEUE...              purge the queues
 *
 * Not built by default: `make bench/raw_publish` (EXTRA_PROGRAMS); bench/producer.sh and
 * bench/e2e.sh run it. */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <curl/curl.h>

#include "codec.h"
#include "topology.h"
#include "url.h"

#define RAW_CHAN 1
#define RAW_MSGID_MAX (TXID_LEN + 24)
#define RAW_PREFETCH 200              /* the consumer's basic.qos */
#define RAW_ACK_EVERY 50              /* the consumer acks with multiple=1 every so many */

/* One message to publish (both copies share the body). */
struct raw_msg {
	struct note *note;
	char *body;
	size_t len;
};

static amqp_connection_state_t raw_conn;
static char raw_user[URL_PART_MAX];

static void raw_die(const char *what)
{
	fprintf(stderr, "raw_publish: %s\n", what);
	exit(1);
}

static void raw_rpc(const char *what)
{
	amqp_rpc_reply_t r = amqp_get_rpc_reply(raw_conn);

	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		fprintf(stderr, "raw_publish: %s failed (reply type %d)\n", what, r.reply_type);
		exit(1);
	}
}

/* raw_connect - log in to URL and open channel RAW_CHAN */
static void raw_connect(const char *s)
{
	struct url u;
	char err[256];
	amqp_socket_t *sock = NULL;

	if (url_parse(s, &u, err, sizeof err) < 0)
		raw_die(err);
	snprintf(raw_user, sizeof raw_user, "%s", u.user[0] != '\0' ? u.user : "guest");
	if ((raw_conn = amqp_new_connection()) == NULL ||
	    (sock = amqp_tcp_socket_new(raw_conn)) == NULL)
		raw_die("out of memory");
	if (amqp_socket_open(sock, u.host, u.port) != AMQP_STATUS_OK)
		raw_die("cannot connect to the broker");
	if (amqp_login(raw_conn, u.path, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, raw_user,
	    u.password).reply_type != AMQP_RESPONSE_NORMAL)
		raw_die("login refused");
	amqp_channel_open(raw_conn, RAW_CHAN);
	raw_rpc("channel.open");
}

static double raw_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* raw_load - parse, split and encode every line of PATH into *OUT (not timed) */
static size_t raw_load(const char *path, struct raw_msg **out, size_t *requests)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, n = 0, capm = 0, i, nn;
	ssize_t len;
	struct raw_msg *m = NULL;

	if (f == NULL)
		raw_die("cannot open the input file");
	*requests = 0;
	while ((len = getline(&line, &cap, f)) >= 0) {
		struct request *req;
		struct note **notes;
		struct codec_error ce;

		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (codec_request_parse(line, (size_t)len, NULL, &req, &ce) < 0 ||
		    codec_request_split(req, CODEC_PRIORITY_NORMAL, &notes, &nn) < 0)
			raw_die("invalid request in the input (the benchmark needs valid lines)");
		for (i = 0; i < nn; i++) {
			struct note *no = notes[i];

			if (n == capm) {
				struct raw_msg *g;

				capm = capm ? capm * 2 : 65536;
				if ((g = realloc(m, capm * sizeof *m)) == NULL)
					raw_die("out of memory");
				m = g;
			}
			free(no->client_id);          /* libherald: the client is the broker user */
			if ((no->client_id = strdup(raw_user)) == NULL)
				raw_die("out of memory");
			m[n].note = no;
			if (codec_note_encode(no, &m[n].body, &m[n].len) < 0)
				raw_die("encoding failed");
			n++;
		}
		free(notes);
		codec_request_free(req);
		(*requests)++;
	}
	free(line);
	fclose(f);
	*out = m;
	return n;
}

static void raw_hdr(amqp_table_entry_t *e, const char *k, const char *v)
{
	e->key = amqp_cstring_bytes(k);
	e->value.kind = AMQP_FIELD_KIND_UTF8;
	e->value.value.bytes = amqp_cstring_bytes(v);
}

/* raw_publish - publish copy COPY (0 channel, 1 ledger) of M: the bytes libherald sends */
static void raw_publish(const struct raw_msg *m, int copy)
{
	const struct note *n = m->note;
	const char *ch = codec_channel_name(n->channel);
	amqp_basic_properties_t pr;
	amqp_table_entry_t e[8];
	char msgid[RAW_MSGID_MAX];
	amqp_bytes_t body = { m->len, m->body };
	int ne = 0;

	raw_hdr(&e[ne++], "x-herald-txid", n->txid);
	e[ne].key = amqp_cstring_bytes("x-herald-attempt");
	e[ne].value.kind = AMQP_FIELD_KIND_I32;
	e[ne++].value.value.i32 = 0;
	raw_hdr(&e[ne++], "x-herald-channel", ch);
	raw_hdr(&e[ne++], "x-herald-client", n->client_id);
	raw_hdr(&e[ne++], "x-herald-category", n->category);
	if (n->batch_id != NULL)
		raw_hdr(&e[ne++], "x-herald-batch", n->batch_id);
	if (n->idempotency_key != NULL)
		raw_hdr(&e[ne++], "x-herald-idempotency-key", n->idempotency_key);
	if (n->expires_at != 0) {
		e[ne].key = amqp_cstring_bytes("x-herald-expires");
		e[ne].value.kind = AMQP_FIELD_KIND_I64;
		e[ne++].value.value.i64 = n->expires_at;
	}
	snprintf(msgid, sizeof msgid, "%s:%s%s", n->txid, ch, copy == 1 ? ":ledger" : "");
	memset(&pr, 0, sizeof pr);
	pr._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
	    AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_USER_ID_FLAG |
	    AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
	pr.content_type = amqp_cstring_bytes("application/json");
	pr.delivery_mode = AMQP_DELIVERY_PERSISTENT;
	pr.priority = (uint8_t)n->priority;
	pr.message_id = amqp_cstring_bytes(msgid);
	pr.user_id = amqp_cstring_bytes(raw_user);
	pr.timestamp = (uint64_t)(n->accepted_at / 1000000);
	pr.headers.num_entries = ne;
	pr.headers.entries = e;
	if (amqp_basic_publish(raw_conn, RAW_CHAN, amqp_cstring_bytes(TOPOLOGY_EXCHANGE),
	    amqp_cstring_bytes(copy == 1 ? TOPOLOGY_LEDGER_KEY : ch), 1, 0, &pr, body) != AMQP_STATUS_OK)
		raw_die("publish failed");
}

/* Confirm bookkeeping: tag -> (message index, copy) in a ring of WINDOW entries. */
static uint64_t raw_base = 1, raw_next = 1;     /* oldest unconfirmed tag, next tag */
static size_t *raw_ring;                        /* message index * 2 + copy; SIZE_MAX = done */
static size_t *raw_due, raw_hdue, raw_ndue;     /* deferred ledger copies (-d) */
static unsigned raw_window = 1000;
static bool raw_defer;
static unsigned long raw_nacks, raw_returns;

static void raw_send(const struct raw_msg *m, size_t idx, int copy)
{
	raw_publish(&m[idx], copy);
	raw_ring[raw_next++ % raw_window] = idx * 2 + (size_t)copy;
}

/* raw_frame - read one frame and account confirms; returns false on a lost connection */
static void raw_frame(void)
{
	amqp_frame_t f;
	uint64_t t, tag;
	bool multiple;

	amqp_maybe_release_buffers(raw_conn);
	if (amqp_simple_wait_frame(raw_conn, &f) != AMQP_STATUS_OK)
		raw_die("connection lost");
	if (f.frame_type != AMQP_FRAME_METHOD)
		return;
	switch (f.payload.method.id) {
	case AMQP_BASIC_ACK_METHOD:
	case AMQP_BASIC_NACK_METHOD:
		if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
			amqp_basic_ack_t *a = f.payload.method.decoded;

			tag = a->delivery_tag;
			multiple = a->multiple;
		} else {
			amqp_basic_nack_t *a = f.payload.method.decoded;

			tag = a->delivery_tag;
			multiple = a->multiple;
			raw_nacks++;
		}
		for (t = multiple ? raw_base : tag; t <= tag && t < raw_next; t++) {
			size_t *s = &raw_ring[t % raw_window];

			if (t < raw_base || *s == SIZE_MAX)
				continue;
			if (raw_defer && *s % 2 == 0)
				raw_due[raw_ndue++] = *s / 2;
			*s = SIZE_MAX;
		}
		while (raw_base < raw_next && raw_ring[raw_base % raw_window] == SIZE_MAX)
			raw_base++;
		break;
	case AMQP_BASIC_RETURN_METHOD: {
		amqp_message_t msg;

		raw_returns++;
		if (amqp_read_message(raw_conn, RAW_CHAN, &msg, 0).reply_type != AMQP_RESPONSE_NORMAL)
			raw_die("reading a returned message failed");
		amqp_destroy_message(&msg);
		break;
	}
	case AMQP_CHANNEL_CLOSE_METHOD:
	case AMQP_CONNECTION_CLOSE_METHOD:
		raw_die("the broker closed the channel");
	}
}

/* raw_room - wait until fewer than LIMIT messages are unconfirmed, sending due ledger copies */
static void raw_room(const struct raw_msg *m, uint64_t limit)
{
	for (;;) {
		while (raw_hdue < raw_ndue && raw_next - raw_base < raw_window)
			raw_send(m, raw_due[raw_hdue++], 1);
		if (raw_next - raw_base < limit && (limit > 0 || raw_hdue == raw_ndue))
			return;
		if (limit == 0 && raw_next == raw_base && raw_hdue == raw_ndue)
			return;
		raw_frame();
	}
}

/* raw_discard_cb - libcurl write callback: the receiver's answer is not kept */
static size_t raw_discard_cb(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* raw_consume - the consumer child: on its own connection consume every queue the N messages
 * of M went to (the channel queues, and the ledger), ack them (POSTing channel ones to HOOK
 * first when not NULL) until EXPECT arrived; write "MONOTONIC_END POSTS" to FD; exit status */
static int raw_consume(const char *url, const struct raw_msg *m, size_t n, size_t expect,
	const char *hook, int fd)
{
	char qs[CODEC_CH_COUNT + 1][TOPOLOGY_NAME_MAX], buf[64];
	unsigned seen = 0;
	int nq = 0, q, fails = 0;
	size_t i, got = 0, unacked = 0, posts = 0;
	uint64_t last = 0;
	CURL *c = NULL;
	struct curl_slist *hdr = NULL;

	raw_connect(url);
	for (i = 0; i < n; i++)
		seen |= CODEC_CH_BIT(m[i].note->channel);
	for (q = 0; q < CODEC_CH_COUNT; q++)      /* enum codec_channel = enum conf_channel_id */
		if (seen & CODEC_CH_BIT(q))
			topology_channel_queue(q, qs[nq++], sizeof qs[0]);
	snprintf(qs[nq++], sizeof qs[0], "%s", TOPOLOGY_LEDGER_QUEUE);
	amqp_basic_qos(raw_conn, RAW_CHAN, 0, RAW_PREFETCH, 0);
	raw_rpc("basic.qos");
	for (q = 0; q < nq; q++) {
		amqp_basic_consume(raw_conn, RAW_CHAN, amqp_cstring_bytes(qs[q]), amqp_empty_bytes, 0, 0,
		    0, amqp_empty_table);
		raw_rpc("basic.consume");
	}
	if (hook != NULL) {
		if ((c = curl_easy_init()) == NULL ||
		    (hdr = curl_slist_append(NULL, "Content-Type: application/json")) == NULL ||
		    (hdr = curl_slist_append(hdr, "Expect:")) == NULL)
			raw_die("curl: out of memory");
		curl_easy_setopt(c, CURLOPT_URL, hook);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, raw_discard_cb);
		curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	}
	if (write(fd, "ready\n", 6) != 6)
		raw_die("pipe");
	while (got < expect) {
		amqp_envelope_t env;
		amqp_rpc_reply_t r;

		amqp_maybe_release_buffers(raw_conn);
		r = amqp_consume_message(raw_conn, &env, NULL, 0);
		if (r.reply_type != AMQP_RESPONSE_NORMAL)
			raw_die("consume failed");
		if (c != NULL && !(env.routing_key.len == strlen(TOPOLOGY_LEDGER_KEY) &&
		    memcmp(env.routing_key.bytes, TOPOLOGY_LEDGER_KEY, env.routing_key.len) == 0)) {
			long code = 0;

			curl_easy_setopt(c, CURLOPT_POSTFIELDS, env.message.body.bytes);
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)env.message.body.len);
			if (curl_easy_perform(c) != CURLE_OK ||
			    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK ||
			    code < 200 || code > 299)
				fails++;
			else
				posts++;
		}
		last = env.delivery_tag;
		amqp_destroy_envelope(&env);
		got++;
		if (++unacked == RAW_ACK_EVERY || got == expect) {
			if (amqp_basic_ack(raw_conn, RAW_CHAN, last, 1) != AMQP_STATUS_OK)
				raw_die("ack failed");
			unacked = 0;
		}
	}
	/* the last ack is on the wire; a round trip makes sure the broker has it */
	amqp_basic_qos(raw_conn, RAW_CHAN, 0, RAW_PREFETCH, 0);
	raw_rpc("basic.qos");
	snprintf(buf, sizeof buf, "%.6f %zu\n", raw_now(), posts);
	if (write(fd, buf, strlen(buf)) != (ssize_t)strlen(buf))
		raw_die("pipe");
	if (c != NULL) {
		curl_easy_cleanup(c);
		curl_slist_free_all(hdr);
	}
	amqp_connection_close(raw_conn, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(raw_conn);
	if (fails > 0)
		fprintf(stderr, "raw_publish: %d POSTs to %s failed\n", fails, hook);
	return fails > 0 ? 1 : 0;
}

/* raw_queues - -c (count) or -p (purge) each queue */
static int raw_queues(bool purge, int argc, char **argv)
{
	int i;

	for (i = 0; i < argc; i++) {
		amqp_bytes_t q = amqp_cstring_bytes(argv[i]);

		if (purge) {
			amqp_queue_purge(raw_conn, RAW_CHAN, q);
			raw_rpc("queue.purge");
		} else {
			amqp_queue_declare_ok_t *ok = amqp_queue_declare(raw_conn, RAW_CHAN, q, 1, 0, 0,
			    0, amqp_empty_table);

			raw_rpc("queue.declare (passive)");
			printf("%s %u\n", argv[i], ok->message_count);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct raw_msg *m;
	size_t n, requests, i;
	double t0, el;
	int c, status;
	char mode = 0, line[128];
	bool pair = false;
	const char *hook = NULL;
	FILE *pf = NULL;
	pid_t kid = -1;
	double cend = 0;
	size_t posts = 0;

	while ((c = getopt(argc, argv, "w:dcpCu:")) != -1) {
		switch (c) {
		case 'w': raw_window = (unsigned)atoi(optarg); break;
		case 'd': raw_defer = true; break;
		case 'C': pair = true; break;
		case 'u': hook = optarg; break;
		case 'c': case 'p': mode = (char)c; break;
		default:
			fprintf(stderr, "usage: raw_publish [-C [-u HOOK]] [-w WINDOW] [-d] URL FILE | -c|-p URL QUEUE...\n");
			return 2;
		}
	}
	if (argc - optind < 2 || raw_window < 2) {
		fprintf(stderr, "usage: raw_publish [-C [-u HOOK]] [-w WINDOW] [-d] URL FILE | -c|-p URL QUEUE...\n");
		return 2;
	}
	raw_connect(argv[optind]);
	if (mode != 0)
		return raw_queues(mode == 'p', argc - optind - 1, argv + optind + 1);
	n = raw_load(argv[optind + 1], &m, &requests);
	if ((raw_ring = malloc(raw_window * sizeof *raw_ring)) == NULL ||
	    (raw_due = malloc((n + 1) * sizeof *raw_due)) == NULL)
		raw_die("out of memory");
	if (pair) {                     /* the consumer, ready before the clock starts */
		int pfd[2];

		if (hook != NULL && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			raw_die("curl_global_init failed");
		if (pipe(pfd) < 0)
			raw_die("pipe failed");
		fflush(stdout);
		if ((kid = fork()) < 0)
			raw_die("fork failed");
		if (kid == 0) {
			close(pfd[0]);
			_exit(raw_consume(argv[optind], m, n, n * 2, hook, pfd[1]));
		}
		close(pfd[1]);
		if ((pf = fdopen(pfd[0], "r")) == NULL || fgets(line, sizeof line, pf) == NULL)
			raw_die("the consumer did not start");
	}
	amqp_confirm_select(raw_conn, RAW_CHAN);
	raw_rpc("confirm.select");
	t0 = raw_now();
	for (i = 0; i < n; i++) {
		raw_room(m, raw_defer ? raw_window : raw_window - 1);
		raw_send(m, i, 0);
		if (!raw_defer) {
			raw_room(m, raw_window);
			raw_send(m, i, 1);
		}
	}
	raw_room(m, 0);
	el = raw_now() - t0;
	printf("requests %zu messages %zu seconds %.3f rate %.1f nacks %lu returns %lu", requests,
	    n * 2, el, (double)requests / el, raw_nacks, raw_returns);
	if (pair) {
		if (fgets(line, sizeof line, pf) == NULL || sscanf(line, "%lf %zu", &cend, &posts) != 2)
			raw_die("the consumer failed");
		if (waitpid(kid, &status, 0) != kid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			raw_nacks++;            /* a failed POST: exit 1 below */
		fclose(pf);
		cend -= t0;
		printf(" consumed %zu consume_seconds %.3f pair_rate %.1f posts %zu", n * 2, cend,
		    (double)requests / (cend > el ? cend : el), posts);
	}
	printf("\n");
	amqp_channel_close(raw_conn, RAW_CHAN, AMQP_REPLY_SUCCESS);
	amqp_connection_close(raw_conn, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(raw_conn);
	for (i = 0; i < n; i++) {
		free(m[i].body);
		codec_note_free(m[i].note);
	}
	free(m);
	free(raw_ring);
	free(raw_due);
	return raw_nacks || raw_returns ? 1 : 0;
}
