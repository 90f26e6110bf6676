/* cancel - "heraldctl cancel TXID | --batch B" (SPEC §7)
 *
 * First a row in cancellations, so every worker that meets a message of the transaction or
 * batch later (still in a queue, in a retry tier, not yet recorded by the ledger) ends it
 * cancelled (admit.c checks the table). Then, at once, what no worker holds: the
 * notifications now queued or deferred become cancelled through record_write (workers/record.c:
 * status, audit row and §3 event, cap and quota slots given back) and the message a deferred
 * one would have been requeued with is deleted, in one transaction per chunk. ready and retry ones are
 * left to the worker: ready is in flight (it finishes, and may still be delivered), retry is
 * cancelled when it comes back from its delay tier.
 *
 * Why the cancellations row comes first and the rows are locked before they change: a worker
 * that reads the table after it cannot start a message; one that read it before records ready
 * under the same row lock, so either it waits and then finds cancelled (a final status: it sends
 * nothing), or its ready is there first and the row is left to it. Rows are locked in
 * (transaction, channel) order, as record.c and the ledger do, so none of them deadlock.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <json-c/json.h>

#include "admit.h"
#include "codec.h"
#include "conf.h"
#include "ctl.h"
#include "db.h"
#include "record.h"
#include "rfc3339.h"
#include "txid.h"

#define CANCEL_BATCH_MAX 128     /* bytes: the producer's batch_id limit (codec.c) */
#define CANCEL_CHUNK 200         /* notifications per transaction */
#define CANCEL_TRIES 5           /* a chunk after a deadlock or a lost connection */

enum {
	K_MARK, K_TX_ROWS, K_BATCH_ROWS, K_TX_COUNT, K_BATCH_COUNT, K_DEFERRED_DEL, K_LOCK, K__N
};

#define CANCEL_ROW_COLS "id, transaction_id, channel, status, user_id, client_id, category," \
	" batch_id, metadata, attempt, priority"

static const struct db_stmt cancel_stmts[K__N] = {
	[K_MARK] = { "cancel_mark",
		"INSERT INTO cancellations (kind, target) VALUES (?, ?)"
		" ON DUPLICATE KEY UPDATE target = target", true },
	[K_TX_ROWS] = { "cancel_tx_rows",
		"SELECT " CANCEL_ROW_COLS " FROM notifications WHERE transaction_id = ?"
		" AND status IN ('queued', 'deferred') AND id > ? ORDER BY id LIMIT ?", true },
	[K_BATCH_ROWS] = { "cancel_batch_rows",
		"SELECT " CANCEL_ROW_COLS " FROM notifications WHERE batch_id = ?"
		" AND status IN ('queued', 'deferred') AND id > ? ORDER BY id LIMIT ?", true },
	[K_TX_COUNT] = { "cancel_tx_count",
		"SELECT status, COUNT(*) FROM notifications WHERE transaction_id = ? GROUP BY status",
		true },
	[K_BATCH_COUNT] = { "cancel_batch_count",
		"SELECT status, COUNT(*) FROM notifications WHERE batch_id = ? GROUP BY status", true },
	[K_DEFERRED_DEL] = { "cancel_deferred_del",
		"DELETE d FROM deferred_messages d JOIN notifications n ON n.id = d.notification_id"
		" WHERE n.transaction_id = ? AND n.channel = ? AND n.status = 'cancelled'", true },
	/* inside the cancelling transaction: a worker waits for the lock before recording ready */
	[K_LOCK] = { "cancel_lock",
		"SELECT status FROM notifications WHERE transaction_id = ? AND channel = ? FOR UPDATE",
		true },
};

static const char cancel_usage[] =
	"usage: heraldctl cancel TXID\n"
	"       heraldctl cancel --batch B\n"
	"  Ends the transaction's (or batch's) notifications now queued or deferred as cancelled,\n"
	"  and has the workers cancel the rest when they meet them (still in a queue or a retry\n"
	"  tier). Ready ones are in flight: the worker finishes them.\n";

/* The outcome of one run. */
struct cancel_count {
	long cancelled;          /* ended cancelled now */
	long ready, retry;       /* left to the workers */
	long final;              /* already final, untouched */
};

/* One selected notification: its note (the fields record.c reads) and row id. */
struct cancel_row {
	struct note note;
	char status[16];
};

/* cancel_dup - a malloc'd copy of column COL of statement ID's row, or NULL */
static char *cancel_dup(struct db *db, int id, unsigned col)
{
	const char *s = db_col_str(db, id, col, NULL);

	return s != NULL ? strdup(s) : NULL;
}

/* cancel_row_free - release the fields of the N rows of R */
static void cancel_rows_free(struct cancel_row *r, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(r[i].note.user_id);
		free(r[i].note.client_id);
		free(r[i].note.category);
		free(r[i].note.batch_id);
		json_object_put(r[i].note.metadata);
	}
}

/* cancel_fetch - up to CANCEL_CHUNK queued or deferred rows of statement Q for TARGET after id
 * *LAST into R (*N of them; *LAST moves on); 0 or a DB_ error */
static int cancel_fetch(struct db *db, int q, const char *target, int64_t *last,
    struct cancel_row *r, size_t *n)
{
	int rc;

	*n = 0;
	if ((rc = db_exec(db, q, DB_ARGS(db_str(target), db_i64(*last), db_i64(CANCEL_CHUNK)))) != 0)
		return rc;
	while (*n < CANCEL_CHUNK && (rc = db_fetch(db, q)) == 1) {
		struct cancel_row *x = &r[*n];
		const char *s;
		size_t len;
		int ch;

		*last = db_col_i64(db, q, 0);
		memset(x, 0, sizeof *x);
		s = db_col_str(db, q, 2, NULL);
		if ((ch = codec_channel_parse(s ? s : "", s ? strlen(s) : 0)) < 0)
			continue;
		snprintf(x->note.txid, sizeof x->note.txid, "%s", db_col_str(db, q, 1, NULL));
		x->note.channel = (enum codec_channel)ch;
		snprintf(x->status, sizeof x->status, "%s", db_col_str(db, q, 3, NULL));
		x->note.user_id = cancel_dup(db, q, 4);
		x->note.client_id = cancel_dup(db, q, 5);
		x->note.category = cancel_dup(db, q, 6);
		x->note.batch_id = cancel_dup(db, q, 7);
		if ((s = db_col_str(db, q, 8, &len)) != NULL)
			x->note.metadata = ctl_json_text(s, len);
		x->note.attempt = (unsigned)db_col_i64(db, q, 9);
		x->note.priority = (int)db_col_i64(db, q, 10);
		(*n)++;
	}
	return rc < 0 ? rc : 0;
}

/* cancel_cmp - rows in (transaction id, channel) order, the order every writer locks in */
static int cancel_cmp(const void *a, const void *b)
{
	const struct note *x = &((const struct cancel_row *)a)->note;
	const struct note *y = &((const struct cancel_row *)b)->note;
	int d = strcmp(x->txid, y->txid);

	return d != 0 ? d : (int)x->channel - (int)y->channel;
}

/* cancel_chunk_once - in one transaction: lock the N rows of R, and cancel (record_write:
 * status, audit row, event, slots; the stored message of a deferred one) those still queued or
 * deferred; the number cancelled into *DONE; 0 or a DB_ error (rolled back) */
static int cancel_chunk_once(struct db *db, struct cancel_row *r, size_t n,
    struct json_object *detail, const char *host, long *done)
{
	struct record rec[CANCEL_CHUNK];
	size_t i, m = 0;
	int rc;

	*done = 0;
	memset(rec, 0, sizeof rec);
	if ((rc = db_begin(db)) != 0)
		return rc;
	for (i = 0; i < n; i++) {
		const char *ch = codec_channel_name(r[i].note.channel), *st;
		bool open = false;

		if ((rc = db_exec(db, K_LOCK, DB_ARGS(db_str(r[i].note.txid), db_str(ch)))) != 0)
			goto fail;
		while ((rc = db_fetch(db, K_LOCK)) == 1)
			open = (st = db_col_str(db, K_LOCK, 0, NULL)) != NULL &&
			    (strcmp(st, "queued") == 0 || strcmp(st, "deferred") == 0);
		if (rc < 0)
			goto fail;
		if (!open)
			continue;      /* a worker took it or ended it meanwhile */
		rec[m].note = &r[i].note;
		rec[m].status = "cancelled";
		rec[m].detail = detail;
		rec[m].slots = RECORD_SLOTS_RELEASE;
		m++;
	}
	if ((rc = record_write(db, K__N, K__N + (int)record_nstmts, rec, m, host, "heraldctl",
	    rfc3339_now())) != 0)
		goto fail;
	for (i = 0; i < m; i++) {
		if (rec[i].result != RECORD_WRITTEN)
			continue;
		(*done)++;
		if (strcmp(rec[i].previous, "deferred") == 0 &&
		    (rc = db_exec(db, K_DEFERRED_DEL, DB_ARGS(db_str(rec[i].note->txid),
		    db_str(codec_channel_name(rec[i].note->channel))))) != 0)
			goto fail;
	}
	if ((rc = db_commit(db)) != 0)
		*done = 0;
	return rc;
fail:
	db_rollback(db);
	return rc;
}

/* cancel_chunk - cancel the N rows of R, run again as a whole after a deadlock or a lost
 * connection (a repeat after an unknown commit finds them cancelled and writes nothing) */
static int cancel_chunk(struct db *db, struct cancel_row *r, size_t n, const char *kind,
    const char *host, struct cancel_count *cnt)
{
	struct json_object *detail = json_object_new_object();
	long done = 0;
	int rc = DB_ERR, tries;

	json_object_object_add(detail, "reason", json_object_new_string("cancelled"));
	json_object_object_add(detail, "by", json_object_new_string("heraldctl cancel"));
	json_object_object_add(detail, "kind", json_object_new_string(kind));
	qsort(r, n, sizeof *r, cancel_cmp);
	for (tries = 0; tries < CANCEL_TRIES; tries++)
		if ((rc = cancel_chunk_once(db, r, n, detail, host, &done)) != DB_ERETRY)
			break;
	json_object_put(detail);
	cnt->cancelled += done;
	return rc;
}

/* cancel_rest - count what is left of TARGET (count statement Q) by status into CNT */
static int cancel_rest(struct db *db, int q, const char *target, struct cancel_count *cnt)
{
	int rc;

	if ((rc = db_exec(db, q, DB_ARGS(db_str(target)))) != 0)
		return rc;
	while ((rc = db_fetch(db, q)) == 1) {
		const char *st = db_col_str(db, q, 0, NULL);
		long v = (long)db_col_i64(db, q, 1);

		if (st == NULL)
			continue;
		if (strcmp(st, "ready") == 0)
			cnt->ready += v;
		else if (strcmp(st, "retry") == 0)
			cnt->retry += v;
		else if (record_final(st))
			cnt->final += v;
	}
	return rc < 0 ? rc : 0;
}

/* cancel_run - mark KIND TARGET cancelled, end its queued and deferred notifications, count */
static int cancel_run(struct db *db, const char *kind, const char *target, struct cancel_count *cnt)
{
	bool batch = strcmp(kind, "batch") == 0;
	struct cancel_row *rows;
	char host[256];
	int64_t last = 0;
	size_t n;
	int rc;

	if (gethostname(host, sizeof host) != 0)
		snprintf(host, sizeof host, "localhost");
	host[sizeof host - 1] = '\0';
	if ((rc = db_exec(db, K_MARK, DB_ARGS(db_str(kind), db_str(target)))) != 0)
		return rc;
	if ((rows = calloc(CANCEL_CHUNK, sizeof *rows)) == NULL)
		return DB_ERR;
	do {
		if ((rc = cancel_fetch(db, batch ? K_BATCH_ROWS : K_TX_ROWS, target, &last, rows,
		    &n)) == 0 && n > 0)
			rc = cancel_chunk(db, rows, n, kind, host, cnt);
		cancel_rows_free(rows, n);
	} while (rc == 0 && n == CANCEL_CHUNK);
	free(rows);
	if (rc != 0)
		return rc;
	/* the ones just cancelled are counted as final too: cancel_cmd takes them out */
	return cancel_rest(db, batch ? K_BATCH_COUNT : K_TX_COUNT, target, cnt);
}

/* cancel_registry - this file's statements, then record.c's and admit.c's, in one malloc'd
 * array (db_open keeps the pointer) */
static struct db_stmt *cancel_registry(size_t *n)
{
	struct db_stmt *s;

	*n = K__N + record_nstmts + admit_nstmts;
	if ((s = calloc(*n, sizeof *s)) == NULL)
		return NULL;
	memcpy(s, cancel_stmts, sizeof cancel_stmts);
	memcpy(s + K__N, record_stmts, record_nstmts * sizeof *s);
	memcpy(s + K__N + record_nstmts, admit_stmts, admit_nstmts * sizeof *s);
	return s;
}

/* cancel_cmd - "heraldctl cancel TXID | --batch B" */
int cancel_cmd(const char *conf, int argc, char **argv)
{
	const char *batch = NULL, *pos[1];
	const struct ctl_opt opts[] = { { "--batch", &batch, NULL }, { NULL, NULL, NULL } };
	char txid[TXID_LEN + 1];
	struct cancel_count cnt = { 0 };
	struct json_object *o;
	struct db_stmt *reg;
	struct db *db = NULL;
	size_t nreg;
	int np, rc;

	if ((rc = ctl_args("cancel", cancel_usage, argc - 1, argv + 1, opts, pos, 1, &np)) != 0)
		return rc == CTL_HELP ? EX_OK : rc;
	if ((np == 0) == (batch == NULL))
		return ctl_usage("cancel", cancel_usage, "give either TXID or --batch B");
	if (batch != NULL && (batch[0] == '\0' || strlen(batch) > CANCEL_BATCH_MAX ||
	    !ctl_text_ok(batch, CANCEL_BATCH_MAX) || batch[strlen(batch) - 1] == ' '))
		return ctl_usage("cancel", cancel_usage, "--batch: 1 to %d bytes of text without"
		    " control characters or a trailing space", CANCEL_BATCH_MAX);
	if (batch == NULL) {
		snprintf(txid, sizeof txid, "%s", pos[0]);
		if (strlen(pos[0]) != TXID_LEN || !txid_valid(ctl_lower(txid)))
			return ctl_usage("cancel", cancel_usage, "'%s': not a transaction id (a"
			    " canonical UUID)", pos[0]);
	}
	if ((reg = cancel_registry(&nreg)) == NULL)
		return EX_OSERR;
	if ((rc = ctl_db_open(conf, reg, nreg, &db)) != 0)
		goto out;
	if ((rc = cancel_run(db, batch ? "batch" : "transaction", batch ? batch : txid, &cnt)) != 0) {
		fprintf(stderr, "heraldctl cancel: database %s: %s (cancel is safe to run again)\n",
		    db_target(db), db_error(db));
		rc = ctl_db_fail(db, rc);
		goto out;
	}
	o = json_object_new_object();
	json_object_object_add(o, batch ? "batch_id" : "transaction_id",
	    json_object_new_string(batch ? batch : txid));
	json_object_object_add(o, "cancelled", json_object_new_int64(cnt.cancelled));
	json_object_object_add(o, "in_flight", json_object_new_int64(cnt.ready));
	json_object_object_add(o, "retry", json_object_new_int64(cnt.retry));
	json_object_object_add(o, "final_before",
	    json_object_new_int64(cnt.final - cnt.cancelled > 0 ? cnt.final - cnt.cancelled : 0));
	json_object_object_add(o, "later", json_object_new_string("messages still in a queue or a"
	    " retry tier are cancelled when a worker meets them; in-flight ones are finished"));
	ctl_print(o);
	rc = EX_OK;
out:
	db_close(db);
	free(reg);
	return rc;
}
