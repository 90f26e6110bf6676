/* metrics - the shared counters and their exposition (see metrics.h) */
#include "config.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "conf.h"
#include "metrics.h"

/* Statuses a worker records (SPEC §7; `queued` is the ledger's, `ready` comes before a call). */
static const char *const metrics_statuses[] = {
	"queued", "deferred", "ready", "retry", "done", "failed", "opt_out", "paused",
	"rate_limited", "invalid_user", "no_address", "suppressed", "duplicate", "expired",
	"cancelled"
};
#define METRICS_STATUSES (sizeof metrics_statuses / sizeof *metrics_statuses)
#define METRICS_DONE 4
#define METRICS_FAILED 5
#define METRICS_RETRY 3

/* Upper bounds (µs) of the latency buckets; one more bucket holds the rest (+Inf). */
static const int64_t metrics_bounds[] = {
	5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
	30000000, 60000000
};
#define METRICS_BUCKETS (sizeof metrics_bounds / sizeof *metrics_bounds)

struct metrics_chan {
	_Atomic uint64_t received;
	_Atomic uint64_t status[METRICS_STATUSES];
	_Atomic uint64_t bucket[METRICS_BUCKETS + 1];    /* not cumulative; the last is +Inf */
	_Atomic uint64_t sum_us;
	_Atomic int64_t depth, parked, depth_at;         /* depth_at 0: never read */
	_Atomic int target;
	_Atomic int autoscaled;
	_Atomic uint64_t scaled_up, scaled_down;
};

struct metrics_kind {
	_Atomic int used;                /* name is set */
	char name[16];
	_Atomic int alive;
};

struct metrics_table {
	struct metrics_chan ch[CONF_CHANNELS];
	struct metrics_kind kind[METRICS_KINDS];
};

static struct metrics_table *metrics_table;

/* metrics_init - one anonymous shared mapping */
int metrics_init(void)
{
	void *p;

	if (metrics_table != NULL)
		return 0;
	p = mmap(NULL, sizeof *metrics_table, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	if (p == MAP_FAILED)
		return -1;
	metrics_table = p;               /* zero-filled */
	return 0;
}

/* metrics_chan - channel CH's counters, or NULL (no table, bad channel) */
static struct metrics_chan *metrics_chan(int ch)
{
	if (metrics_table == NULL || ch < 0 || ch >= CONF_CHANNELS)
		return NULL;
	return &metrics_table->ch[ch];
}

/* metrics_received - one more message taken */
void metrics_received(int ch)
{
	struct metrics_chan *c = metrics_chan(ch);

	if (c != NULL)
		atomic_fetch_add_explicit(&c->received, 1, memory_order_relaxed);
}

/* metrics_status - one more STATUS recorded */
void metrics_status(int ch, const char *status)
{
	struct metrics_chan *c = metrics_chan(ch);
	size_t i;

	if (c == NULL || status == NULL)
		return;
	for (i = 0; i < METRICS_STATUSES; i++)
		if (strcmp(status, metrics_statuses[i]) == 0) {
			atomic_fetch_add_explicit(&c->status[i], 1, memory_order_relaxed);
			return;
		}
}

/* metrics_latency - one more provider call into its bucket */
void metrics_latency(int ch, int64_t us)
{
	struct metrics_chan *c = metrics_chan(ch);
	size_t b = 0;

	if (c == NULL)
		return;
	if (us < 0)
		us = 0;
	while (b < METRICS_BUCKETS && us > metrics_bounds[b])
		b++;
	atomic_fetch_add_explicit(&c->sum_us, (uint64_t)us, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->bucket[b], 1, memory_order_relaxed);
}

/* metrics_workers - KIND's live children */
void metrics_workers(int kind, const char *name, int alive)
{
	struct metrics_kind *k;

	if (metrics_table == NULL || kind < 0 || kind >= METRICS_KINDS)
		return;
	k = &metrics_table->kind[kind];
	if (!atomic_load(&k->used)) {
		snprintf(k->name, sizeof k->name, "%s", name);
		atomic_store(&k->used, 1);      /* the name is written before it is read */
	}
	atomic_store_explicit(&k->alive, alive, memory_order_relaxed);
}

/* metrics_target - CH's wanted workers */
void metrics_target(int ch, int n, int autoscaled)
{
	struct metrics_chan *c = metrics_chan(ch);

	if (c == NULL)
		return;
	atomic_store_explicit(&c->target, n, memory_order_relaxed);
	atomic_store_explicit(&c->autoscaled, autoscaled, memory_order_relaxed);
}

/* metrics_autoscaled - one more autoscale change */
void metrics_autoscaled(int ch, int up)
{
	struct metrics_chan *c = metrics_chan(ch);

	if (c != NULL)
		atomic_fetch_add_explicit(up ? &c->scaled_up : &c->scaled_down, 1,
		    memory_order_relaxed);
}

/* metrics_depth_set - a reading of CH's queues (the time last, so a reader that sees it sees
 * the values) */
void metrics_depth_set(int ch, int64_t depth, int64_t parked, int64_t at)
{
	struct metrics_chan *c = metrics_chan(ch);

	if (c == NULL)
		return;
	if (depth < 0) {
		atomic_store(&c->depth_at, 0);
		return;
	}
	atomic_store(&c->depth, depth);
	atomic_store(&c->parked, parked);
	atomic_store(&c->depth_at, at);
}

/* metrics_depth - CH's fresh depth, or -1 */
int64_t metrics_depth(int ch, int64_t now, int64_t maxage)
{
	struct metrics_chan *c = metrics_chan(ch);
	int64_t at;

	if (c == NULL || (at = atomic_load(&c->depth_at)) == 0 || now - at > maxage)
		return -1;
	return atomic_load(&c->depth);
}

/* metrics_head - the HELP and TYPE lines of family NAME */
static void metrics_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* metrics_counter - one counter family with a sample per channel, picked by GET */
static void metrics_counter(FILE *f, const char *name, const char *help,
    uint64_t (*get)(const struct metrics_chan *))
{
	int ch;

	metrics_head(f, name, "counter", help);
	for (ch = 0; ch < CONF_CHANNELS; ch++)
		fprintf(f, "%s{channel=\"%s\"} %" PRIu64 "\n", name, conf_channel_name(ch),
		    get(&metrics_table->ch[ch]));
}

static uint64_t metrics_get_received(const struct metrics_chan *c)
{
	return atomic_load_explicit(&c->received, memory_order_relaxed);
}

static uint64_t metrics_get_done(const struct metrics_chan *c)
{
	return atomic_load_explicit(&c->status[METRICS_DONE], memory_order_relaxed);
}

static uint64_t metrics_get_failed(const struct metrics_chan *c)
{
	return atomic_load_explicit(&c->status[METRICS_FAILED], memory_order_relaxed);
}

static uint64_t metrics_get_retried(const struct metrics_chan *c)
{
	return atomic_load_explicit(&c->status[METRICS_RETRY], memory_order_relaxed);
}

/* metrics_histogram - the delivery latency family; each channel's count is the sum of the
 * buckets it printed, so +Inf always equals _count */
static void metrics_histogram(FILE *f)
{
	static const char name[] = "herald_delivery_seconds";
	int ch;
	size_t b;

	metrics_head(f, name, "histogram", "Time of each provider call (one per delivery, one per "
	    "device for push), from the request to the answer.");
	for (ch = 0; ch < CONF_CHANNELS; ch++) {
		const struct metrics_chan *c = &metrics_table->ch[ch];
		const char *cn = conf_channel_name(ch);
		uint64_t cum = 0;

		for (b = 0; b <= METRICS_BUCKETS; b++) {
			cum += atomic_load_explicit(&c->bucket[b], memory_order_relaxed);
			if (b < METRICS_BUCKETS)
				fprintf(f, "%s_bucket{channel=\"%s\",le=\"%g\"} %" PRIu64 "\n", name, cn,
				    (double)metrics_bounds[b] / 1e6, cum);
			else
				fprintf(f, "%s_bucket{channel=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", name, cn,
				    cum);
		}
		fprintf(f, "%s_sum{channel=\"%s\"} %.6f\n", name, cn,
		    (double)atomic_load_explicit(&c->sum_us, memory_order_relaxed) / 1e6);
		fprintf(f, "%s_count{channel=\"%s\"} %" PRIu64 "\n", name, cn, cum);
	}
}

/* metrics_render - every family, in a fixed order */
char *metrics_render(int64_t now, int64_t maxage, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f;
	int ch, k;
	size_t s;

	if (metrics_table == NULL || (f = open_memstream(&buf, &n)) == NULL)
		return NULL;
	metrics_counter(f, "herald_received_total", "Messages the channel's workers took from its "
	    "queue (retries and redeliveries count again).", metrics_get_received);
	metrics_counter(f, "herald_delivered_total", "Notifications the provider accepted "
	    "(status done).", metrics_get_done);
	metrics_counter(f, "herald_failed_total", "Notifications that ended failed.",
	    metrics_get_failed);
	metrics_counter(f, "herald_retried_total", "Deliveries sent to a retry tier "
	    "(status retry).", metrics_get_retried);
	metrics_head(f, "herald_status_total", "counter", "Statuses the channel's workers "
	    "recorded, by status.");
	for (ch = 0; ch < CONF_CHANNELS; ch++)
		for (s = 0; s < METRICS_STATUSES; s++)
			fprintf(f, "herald_status_total{channel=\"%s\",status=\"%s\"} %" PRIu64 "\n",
			    conf_channel_name(ch), metrics_statuses[s], atomic_load_explicit(
			    &metrics_table->ch[ch].status[s], memory_order_relaxed));
	metrics_head(f, "herald_queue_depth", "gauge", "Messages ready in the channel queue, as "
	    "the broker last said (absent when that reading is stale).");
	for (ch = 0; ch < CONF_CHANNELS; ch++)
		if (metrics_depth(ch, now, maxage) >= 0)
			fprintf(f, "herald_queue_depth{channel=\"%s\"} %" PRId64 "\n",
			    conf_channel_name(ch), atomic_load(&metrics_table->ch[ch].depth));
	metrics_head(f, "herald_parked_depth", "gauge", "Messages in the channel's parking queue "
	    "(absent when that reading is stale).");
	for (ch = 0; ch < CONF_CHANNELS; ch++)
		if (metrics_depth(ch, now, maxage) >= 0)
			fprintf(f, "herald_parked_depth{channel=\"%s\"} %" PRId64 "\n",
			    conf_channel_name(ch), atomic_load(&metrics_table->ch[ch].parked));
	metrics_histogram(f);
	metrics_head(f, "herald_workers", "gauge", "Child processes of heraldd alive per kind "
	    "(running, not draining).");
	for (k = 0; k < METRICS_KINDS; k++)
		if (atomic_load(&metrics_table->kind[k].used))
			fprintf(f, "herald_workers{kind=\"%s\"} %d\n", metrics_table->kind[k].name,
			    atomic_load(&metrics_table->kind[k].alive));
	metrics_head(f, "herald_workers_target", "gauge", "Workers the channel should run: the "
	    "config, heraldctl workers or autoscale.");
	for (ch = 0; ch < CONF_CHANNELS; ch++)
		fprintf(f, "herald_workers_target{channel=\"%s\"} %d\n", conf_channel_name(ch),
		    atomic_load(&metrics_table->ch[ch].target));
	metrics_head(f, "herald_autoscale_enabled", "gauge", "1 when the channel autoscales "
	    "between workers_min and workers_max.");
	for (ch = 0; ch < CONF_CHANNELS; ch++)
		fprintf(f, "herald_autoscale_enabled{channel=\"%s\"} %d\n", conf_channel_name(ch),
		    atomic_load(&metrics_table->ch[ch].autoscaled));
	metrics_head(f, "herald_autoscale_changes_total", "counter", "Worker count changes "
	    "autoscale made, by direction.");
	for (ch = 0; ch < CONF_CHANNELS; ch++) {
		fprintf(f, "herald_autoscale_changes_total{channel=\"%s\",direction=\"up\"} %" PRIu64
		    "\n", conf_channel_name(ch), atomic_load(&metrics_table->ch[ch].scaled_up));
		fprintf(f, "herald_autoscale_changes_total{channel=\"%s\",direction=\"down\"} %"
		    PRIu64 "\n", conf_channel_name(ch), atomic_load(&metrics_table->ch[ch].scaled_down));
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}
