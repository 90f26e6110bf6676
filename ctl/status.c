/* status - "heraldctl status TXID [--trail]" and "heraldctl history USER" (SPEC §7)
 *
 * status prints the current status of each of the four channels, null where the transaction
 * did not request the channel. --trail adds "trail": per requested channel, its audit rows in
 * order ({"old_status","new_status","changed_at","host","worker","attempt","detail"}).
 * history prints one JSON line per (transaction, channel), newest first.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <json-c/json.h>

#include "conf.h"
#include "ctl.h"
#include "db.h"
#include "rfc3339.h"
#include "txid.h"

#define STATUS_LIMIT 50          /* history: rows by default */
#define STATUS_LIMIT_MAX 1000
#define STATUS_BATCH_MAX 255     /* notifications.batch_id */

enum { T_STATUS, T_TRAIL, T_HISTORY, T__N };

static const struct db_stmt status_stmts[T__N] = {
	[T_STATUS] = { "status_get",
		"SELECT id, channel, status FROM notifications WHERE transaction_id = ?", true },
	[T_TRAIL] = { "status_trail",
		"SELECT old_status, new_status, changed_at, host, worker, attempt, detail"
		" FROM notification_audit WHERE notification_id = ? ORDER BY id", true },
	[T_HISTORY] = { "status_history",
		"SELECT transaction_id, channel, status, category, priority, client_id, batch_id,"
		" metadata, attempt, provider_message_id, created_at, updated_at FROM notifications"
		" WHERE user_id = ? AND created_at >= ? AND (? IS NULL OR batch_id = ?)"
		" ORDER BY created_at DESC, id DESC LIMIT ?", true },
};

static const char status_usage[] =
	"usage: heraldctl status TXID [--trail] [--format json|table]\n"
	"       heraldctl history USER [--limit N] [--since RFC3339] [--batch B] [--format json|table]\n"
	"  status: the status per channel (null: not requested); --trail adds the audit rows.\n"
	"  history: newest first, at most N lines (default 50, at most 1000)\n"
	CTL_FORMAT_HELP;

/* status_str - a JSON string of column COL of statement ID's row, or NULL (JSON null) */
static struct json_object *status_str(struct db *db, int id, unsigned col)
{
	size_t len;
	const char *s = db_col_str(db, id, col, &len);

	return s ? json_object_new_string_len(s, (int)len) : NULL;
}

/* status_trail - the audit rows of notification NID as a JSON array into *OUT */
static int status_trail(struct db *db, int64_t nid, struct json_object **out)
{
	int rc;

	if ((rc = db_exec(db, T_TRAIL, DB_ARGS(db_i64(nid)))) != 0)
		return rc;
	*out = json_object_new_array();
	while ((rc = db_fetch(db, T_TRAIL)) == 1) {
		struct json_object *a = json_object_new_object();
		size_t len;
		const char *d = db_col_str(db, T_TRAIL, 6, &len);

		json_object_object_add(a, "old_status", status_str(db, T_TRAIL, 0));
		json_object_object_add(a, "new_status", status_str(db, T_TRAIL, 1));
		json_object_object_add(a, "changed_at", ctl_time(db_col_time(db, T_TRAIL, 2)));
		json_object_object_add(a, "host", status_str(db, T_TRAIL, 3));
		json_object_object_add(a, "worker", status_str(db, T_TRAIL, 4));
		json_object_object_add(a, "attempt", json_object_new_int64(db_col_i64(db, T_TRAIL, 5)));
		json_object_object_add(a, "detail", ctl_json_text(d, len));
		json_object_array_add(*out, a);
	}
	return rc < 0 ? rc : 0;
}

/* status_table - O (status_get's object) as a CHANNEL STATUS table, then its trail (if any)
 * as a second table after an empty line, one row per audit row; O is released */
static void status_table(struct json_object *o)
{
	struct json_object *rows = json_object_new_array(), *trails = NULL;

	json_object_object_foreach(o, k, v) {
		struct json_object *row;

		if (strcmp(k, "trail") == 0) {
			trails = v;
			continue;
		}
		row = json_object_new_object();
		json_object_object_add(row, "channel", json_object_new_string(k));
		json_object_object_add(row, "status", json_object_get(v));
		json_object_array_add(rows, row);
	}
	ctl_table(rows);
	if (trails != NULL) {
		rows = json_object_new_array();
		json_object_object_foreach(trails, ch, t) {
			size_t i, n = json_object_array_length(t);

			for (i = 0; i < n; i++) {
				struct json_object *row = json_object_new_object();
				struct json_object *audit = json_object_array_get_idx(t, i);

				json_object_object_add(row, "channel", json_object_new_string(ch));
				json_object_object_foreach(audit, k2, v2) {
					json_object_object_add(row, k2, json_object_get(v2));
				}
				json_object_array_add(rows, row);
			}
		}
		putchar('\n');
		ctl_table(rows);
	}
	json_object_put(o);
}

/* status_get - print the statuses of TXID (and the trail) in FMT; 0, 1 unknown, or a DB_ error */
static int status_get(struct db *db, const char *txid, bool trail, enum ctl_fmt fmt)
{
	struct json_object *o = json_object_new_object(), *trails = NULL;
	int64_t nid[CONF_CHANNELS];
	int ch, rc, n = 0;

	for (ch = 0; ch < CONF_CHANNELS; ch++) {
		json_object_object_add(o, conf_channel_name(ch), NULL);
		nid[ch] = -1;
	}
	if ((rc = db_exec(db, T_STATUS, DB_ARGS(db_str(txid)))) != 0)
		goto out;
	while ((rc = db_fetch(db, T_STATUS)) == 1) {
		if ((ch = conf_channel_parse(db_col_str(db, T_STATUS, 1, NULL))) < 0)
			continue;
		nid[ch] = db_col_i64(db, T_STATUS, 0);
		json_object_object_add(o, conf_channel_name(ch), status_str(db, T_STATUS, 2));
		n++;
	}
	if (rc < 0)
		goto out;
	if (n == 0) {
		rc = 1;
		goto out;
	}
	if (trail) {
		trails = json_object_new_object();
		json_object_object_add(o, "trail", trails);
		for (ch = 0; ch < CONF_CHANNELS; ch++) {
			struct json_object *t = NULL;

			if (nid[ch] < 0)
				continue;
			rc = status_trail(db, nid[ch], &t);
			json_object_object_add(trails, conf_channel_name(ch), t);
			if (rc != 0)
				goto out;
		}
	}
	if (fmt == CTL_FMT_TABLE)
		status_table(o);
	else
		ctl_print(o);
	return 0;
out:
	json_object_put(o);
	return rc;
}

/* status_cmd - "heraldctl status TXID [--trail]" */
int status_cmd(const char *conf, int argc, char **argv)
{
	bool trail = false;
	const char *pos[1], *format = NULL;
	const struct ctl_opt opts[] = {
		{ "--trail", NULL, &trail }, { "--format", &format, NULL }, { NULL, NULL, NULL }
	};
	enum ctl_fmt fmt;
	char txid[TXID_LEN + 1];
	struct db *db;
	int np, rc;

	if ((rc = ctl_args("status", status_usage, argc - 1, argv + 1, opts, pos, 1, &np)) != 0)
		return rc == CTL_HELP ? EX_OK : rc;
	if (np == 0)
		return ctl_usage("status", status_usage, "TXID is required");
	if ((rc = ctl_fmt_parse("status", status_usage, format, &fmt)) != 0)
		return rc;
	snprintf(txid, sizeof(txid), "%s", pos[0]);
	if (strlen(pos[0]) != TXID_LEN || !txid_valid(ctl_lower(txid))) {
		fprintf(stderr, "heraldctl status: '%s': not a transaction id (a canonical UUID)\n",
		    pos[0]);
		puts("{\"error\":\"invalid or expired transaction_id\"}");
		return 1;
	}
	if ((rc = ctl_db_open(conf, status_stmts, T__N, &db)) != 0)
		return rc;
	if ((rc = status_get(db, txid, trail, fmt)) == 1)
		puts("{\"error\":\"invalid or expired transaction_id\"}");
	else if (rc < 0)
		rc = ctl_db_fail(db, rc);
	db_close(db);
	return rc;
}

/* status_row - the current history row as a JSON object */
static struct json_object *status_row(struct db *db)
{
	struct json_object *o = json_object_new_object();
	size_t len;
	const char *meta = db_col_str(db, T_HISTORY, 7, &len);

	json_object_object_add(o, "transaction_id", status_str(db, T_HISTORY, 0));
	json_object_object_add(o, "channel", status_str(db, T_HISTORY, 1));
	json_object_object_add(o, "status", status_str(db, T_HISTORY, 2));
	json_object_object_add(o, "category", status_str(db, T_HISTORY, 3));
	json_object_object_add(o, "priority", json_object_new_int64(db_col_i64(db, T_HISTORY, 4)));
	json_object_object_add(o, "client_id", status_str(db, T_HISTORY, 5));
	json_object_object_add(o, "batch_id", status_str(db, T_HISTORY, 6));
	json_object_object_add(o, "metadata", ctl_json_text(meta, len));
	json_object_object_add(o, "attempt", json_object_new_int64(db_col_i64(db, T_HISTORY, 8)));
	json_object_object_add(o, "provider_message_id", status_str(db, T_HISTORY, 9));
	json_object_object_add(o, "created_at", ctl_time(db_col_time(db, T_HISTORY, 10)));
	json_object_object_add(o, "updated_at", ctl_time(db_col_time(db, T_HISTORY, 11)));
	return o;
}

/* status_history_cmd - "heraldctl history USER [--limit N] [--since T] [--batch B]" */
int status_history_cmd(const char *conf, int argc, char **argv)
{
	const char *limit = NULL, *since = NULL, *batch = NULL, *format = NULL, *pos[1];
	const struct ctl_opt opts[] = {
		{ "--limit", &limit, NULL }, { "--since", &since, NULL }, { "--batch", &batch, NULL },
		{ "--format", &format, NULL }, { NULL, NULL, NULL }
	};
	struct ctl_rows rows = { CTL_FMT_JSON, NULL };
	long n = STATUS_LIMIT;
	int64_t t = 0;
	struct db *db;
	char *end;
	int np, rc;

	if ((rc = ctl_args("history", status_usage, argc - 1, argv + 1, opts, pos, 1, &np)) != 0)
		return rc == CTL_HELP ? EX_OK : rc;
	if (np == 0)
		return ctl_usage("history", status_usage, "USER is required");
	if (!ctl_user_id_ok(pos[0]))
		return ctl_usage("history", status_usage, "USER: 1-%d bytes of text without control"
		    " characters or a trailing space", CTL_USER_ID_MAX);
	if (limit != NULL) {
		errno = 0;
		n = strtol(limit, &end, 10);
		if (errno != 0 || end == limit || *end != '\0' || n < 1 || n > STATUS_LIMIT_MAX)
			return ctl_usage("history", status_usage, "--limit '%s': not a number from 1"
			    " to %d", limit, STATUS_LIMIT_MAX);
	}
	if (since != NULL && rfc3339_parse(since, &t) != 0)
		return ctl_usage("history", status_usage, "--since '%s': not an RFC 3339 time"
		    " (2026-11-22T09:00:00Z)", since);
	if ((rc = ctl_fmt_parse("history", status_usage, format, &rows.fmt)) != 0)
		return rc;
	if (batch != NULL && (batch[0] == '\0' || strlen(batch) > STATUS_BATCH_MAX))
		return ctl_usage("history", status_usage, "--batch: 1 to %d bytes", STATUS_BATCH_MAX);
	if ((rc = ctl_db_open(conf, status_stmts, T__N, &db)) != 0)
		return rc;
	if ((rc = db_exec(db, T_HISTORY, DB_ARGS(db_str(pos[0]), db_time(t < 0 ? 0 : t),
	    db_str(batch), db_str(batch), db_i64(n)))) == 0) {
		while ((rc = db_fetch(db, T_HISTORY)) == 1)
			ctl_rows_add(&rows, status_row(db));
	}
	ctl_rows_end(&rows);
	rc = rc < 0 ? ctl_db_fail(db, rc) : 0;
	db_close(db);
	return rc;
}
