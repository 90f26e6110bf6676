/* device - "heraldctl device add|remove|list" (SPEC §8): a user's push devices, one at a time
 *
 * A device token belongs to one user (devices_token is unique): adding a token another user
 * holds moves it to the new user, and the answer says so ("result":"moved" with the previous
 * user). Each command is one transaction; add locks the token's row (or its gap) first, so two
 * adds of one token end with one row and each answer tells what it did.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <json-c/json.h>

#include "ctl.h"
#include "db.h"

#define DEVICE_TRIES 3           /* runs of one transaction after a lost connection or deadlock */

enum { D_USER, D_HOLDER, D_PUT, D_GET, D_DEL, D_LIST, D__N };

static const struct db_stmt device_stmts[D__N] = {
	[D_USER] = { "device_user", "SELECT 1 FROM users WHERE user_id = ? LOCK IN SHARE MODE", true },
	[D_HOLDER] = { "device_holder",
		"SELECT user_id, platform FROM devices WHERE token = ? FOR UPDATE", true },
	[D_PUT] = { "device_put",
		"INSERT INTO devices (user_id, platform, token) VALUES (?, ?, ?)"
		" ON DUPLICATE KEY UPDATE user_id = VALUES(user_id), platform = VALUES(platform)" },
	[D_GET] = { "device_get", "SELECT user_id, platform FROM devices WHERE token = ?", true },
	[D_DEL] = { "device_del", "DELETE FROM devices WHERE token = ?" },
	[D_LIST] = { "device_list",
		"SELECT platform, token, created_at, updated_at FROM devices WHERE user_id = ?"
		" ORDER BY id", true },
};

static const char device_usage[] =
	"usage: heraldctl device add USER --platform ios|android --token TOKEN\n"
	"       heraldctl device remove TOKEN\n"
	"       heraldctl device list USER [--format json|table]\n"
	"  add: give USER the push device TOKEN; a token belongs to one user, so a token another\n"
	"  user holds moves to USER (\"result\":\"moved\", \"previous_user_id\"). Answers one JSON\n"
	"  line; result added, moved, updated (the platform changed) or unchanged.\n"
	"  remove: delete the device TOKEN, whoever holds it (one JSON line naming the user).\n"
	"  list: USER's devices, one JSON line each (platform, token, created_at, updated_at),\n"
	"  oldest first; --format table: aligned columns for a person.\n"
	"  Exit: 0 done; 1 no such user or token; 64 bad arguments; 65 a bad user id or token;\n"
	"  69 database unreachable; 75 connection lost during a change (run it again).\n";

enum device_result { DEV_ADDED, DEV_MOVED, DEV_UPDATED, DEV_UNCHANGED, DEV_NO_USER };

static const char *const device_results[] = { "added", "moved", "updated", "unchanged" };

/* device_add_once - the transaction of add: USER gets TOKEN on PLATFORM; the outcome in *RES,
 * the previous holder in PREV (when moved); 0 or a DB_ error */
static int device_add_once(struct db *db, const char *user, const char *platform,
    const char *token, enum device_result *res, char *prev, size_t prevlen)
{
	int rc, fr = 0;

	prev[0] = '\0';
	if ((rc = db_begin(db)) != 0)
		return rc;
	if ((rc = db_exec(db, D_USER, DB_ARGS(db_str(user)))) != 0 || (fr = db_fetch(db, D_USER)) < 0)
		goto fail;
	if (fr == 0) {
		*res = DEV_NO_USER;
		db_rollback(db);
		return 0;
	}
	if ((rc = db_exec(db, D_HOLDER, DB_ARGS(db_str(token)))) != 0 ||
	    (fr = db_fetch(db, D_HOLDER)) < 0)
		goto fail;
	if (fr == 0) {
		*res = DEV_ADDED;
	} else {
		const char *holder = db_col_str(db, D_HOLDER, 0, NULL);
		const char *was = db_col_str(db, D_HOLDER, 1, NULL);

		if (holder != NULL && strcmp(holder, user) != 0) {
			*res = DEV_MOVED;
			snprintf(prev, prevlen, "%s", holder);
		} else {
			*res = was != NULL && strcmp(was, platform) == 0 ? DEV_UNCHANGED : DEV_UPDATED;
		}
	}
	if (*res != DEV_UNCHANGED &&
	    (rc = db_exec(db, D_PUT, DB_ARGS(db_str(user), db_str(platform), db_str(token)))) != 0)
		goto fail;
	return db_commit(db);
fail:
	if (rc == 0)
		rc = fr;
	db_rollback(db);
	return rc;
}

/* device_add - "device add USER --platform ios|android --token TOKEN" */
static int device_add(const char *conf, int argc, char **argv)
{
	const char *platform = NULL, *token = NULL, *pos[1];
	const struct ctl_opt opts[] = {
		{ "--platform", &platform, NULL }, { "--token", &token, NULL }, { NULL, NULL, NULL }
	};
	char prev[CTL_USER_ID_MAX + 1];
	enum device_result res = DEV_ADDED;
	struct json_object *o;
	struct db *db = NULL;
	int np, rc, n;

	if ((rc = ctl_args("device add", device_usage, argc - 1, argv + 1, opts, pos, 1, &np)) != 0)
		return rc == CTL_HELP ? EX_OK : rc;
	if (np == 0)
		return ctl_usage("device add", device_usage, "USER is required");
	if (platform == NULL)
		return ctl_usage("device add", device_usage, "--platform is required (ios or android)");
	if (token == NULL)
		return ctl_usage("device add", device_usage, "--token is required");
	if (strcmp(platform, "ios") != 0 && strcmp(platform, "android") != 0)
		return ctl_usage("device add", device_usage, "--platform '%s': must be ios or android",
		    platform);
	if (!ctl_user_id_ok(pos[0])) {
		fprintf(stderr, "heraldctl device add: USER: must be 1-191 bytes of text without"
		    " control characters or a trailing space\n");
		return EX_DATAERR;
	}
	if (!ctl_token_ok(token)) {
		fprintf(stderr, "heraldctl device add: --token: must be 1-512 printable ASCII characters"
		    " without spaces\n");
		return EX_DATAERR;
	}
	if ((rc = ctl_db_open(conf, device_stmts, D__N, &db)) != 0)
		return rc;
	for (n = 0; n < DEVICE_TRIES; n++)
		if ((rc = device_add_once(db, pos[0], platform, token, &res, prev, sizeof(prev))) !=
		    DB_ERETRY)
			break;
	if (rc != 0) {
		rc = ctl_db_fail(db, rc);
		goto out;
	}
	if (res == DEV_NO_USER) {
		fprintf(stderr, "heraldctl device add: no user '%s' (heraldctl user add creates one)\n",
		    pos[0]);
		rc = 1;
		goto out;
	}
	o = json_object_new_object();
	json_object_object_add(o, "result", json_object_new_string(device_results[res]));
	json_object_object_add(o, "user_id", json_object_new_string(pos[0]));
	json_object_object_add(o, "platform", json_object_new_string(platform));
	json_object_object_add(o, "token", json_object_new_string(token));
	if (res == DEV_MOVED)
		json_object_object_add(o, "previous_user_id", json_object_new_string(prev));
	ctl_print(o);
out:
	db_close(db);
	return rc;
}

/* device_remove - "device remove TOKEN" */
static int device_remove(const char *conf, int argc, char **argv)
{
	const char *pos[1];
	struct json_object *o;
	char holder[CTL_USER_ID_MAX + 1] = "", platform[32] = "";
	struct db *db = NULL;
	int np, rc, fr = 0, n;

	if ((rc = ctl_args("device remove", device_usage, argc - 1, argv + 1, NULL, pos, 1, &np)) != 0)
		return rc == CTL_HELP ? EX_OK : rc;
	if (np == 0)
		return ctl_usage("device remove", device_usage, "TOKEN is required");
	if (!ctl_token_ok(pos[0])) {
		fprintf(stderr, "heraldctl device remove: TOKEN: must be 1-512 printable ASCII"
		    " characters without spaces\n");
		return EX_DATAERR;
	}
	if ((rc = ctl_db_open(conf, device_stmts, D__N, &db)) != 0)
		return rc;
	for (n = 0; n < DEVICE_TRIES; n++) {
		if ((rc = db_begin(db)) != 0)
			continue;
		if ((rc = db_exec(db, D_HOLDER, DB_ARGS(db_str(pos[0])))) == 0 &&
		    (fr = db_fetch(db, D_HOLDER)) == 1) {
			snprintf(holder, sizeof(holder), "%s", db_col_str(db, D_HOLDER, 0, NULL));
			snprintf(platform, sizeof(platform), "%s", db_col_str(db, D_HOLDER, 1, NULL));
			rc = db_exec(db, D_DEL, DB_ARGS(db_str(pos[0])));
		} else if (rc == 0 && fr < 0) {
			rc = fr;
		}
		if (rc != 0) {
			db_rollback(db);
			if (rc == DB_ERETRY)
				continue;
			break;
		}
		if ((rc = db_commit(db)) != DB_ERETRY)
			break;
	}
	if (rc != 0) {
		rc = ctl_db_fail(db, rc);
		goto out;
	}
	if (fr == 0) {
		fprintf(stderr, "heraldctl device remove: no device with that token\n");
		rc = 1;
		goto out;
	}
	o = json_object_new_object();
	json_object_object_add(o, "result", json_object_new_string("removed"));
	json_object_object_add(o, "user_id", json_object_new_string(holder));
	json_object_object_add(o, "platform", json_object_new_string(platform));
	json_object_object_add(o, "token", json_object_new_string(pos[0]));
	ctl_print(o);
out:
	db_close(db);
	return rc;
}

/* device_list - "device list USER [--format json|table]" */
static int device_list(const char *conf, int argc, char **argv)
{
	const char *format = NULL, *pos[1];
	const struct ctl_opt opts[] = { { "--format", &format, NULL }, { NULL, NULL, NULL } };
	struct json_object *rows = NULL;
	struct db *db = NULL;
	bool table;
	size_t i, n, w = 5;
	int np, rc, fr;

	if ((rc = ctl_args("device list", device_usage, argc - 1, argv + 1, opts, pos, 1, &np)) != 0)
		return rc == CTL_HELP ? EX_OK : rc;
	if (np == 0)
		return ctl_usage("device list", device_usage, "USER is required");
	if (format != NULL && strcmp(format, "json") != 0 && strcmp(format, "table") != 0)
		return ctl_usage("device list", device_usage, "--format '%s': must be json or table",
		    format);
	table = format != NULL && strcmp(format, "table") == 0;
	if ((rc = ctl_db_open(conf, device_stmts, D__N, &db)) != 0)
		return rc;
	if ((rc = db_exec(db, D_USER, DB_ARGS(db_str(pos[0])))) != 0 ||
	    (fr = db_fetch(db, D_USER)) < 0) {
		rc = ctl_db_fail(db, rc ? rc : DB_ERR);
		goto out;
	}
	if (fr == 0) {
		fprintf(stderr, "heraldctl device list: no user '%s'\n", pos[0]);
		rc = 1;
		goto out;
	}
	if ((rc = db_exec(db, D_LIST, DB_ARGS(db_str(pos[0])))) != 0) {
		rc = ctl_db_fail(db, rc);
		goto out;
	}
	rows = json_object_new_array();
	while ((fr = db_fetch(db, D_LIST)) == 1) {
		struct json_object *o = json_object_new_object();
		const char *tok = db_col_str(db, D_LIST, 1, NULL);

		json_object_object_add(o, "platform",
		    json_object_new_string(db_col_str(db, D_LIST, 0, NULL)));
		json_object_object_add(o, "token", json_object_new_string(tok));
		json_object_object_add(o, "created_at", ctl_time(db_col_time(db, D_LIST, 2)));
		json_object_object_add(o, "updated_at", ctl_time(db_col_time(db, D_LIST, 3)));
		if (strlen(tok) > w)
			w = strlen(tok);
		json_object_array_add(rows, o);
	}
	if (fr < 0) {
		rc = ctl_db_fail(db, fr);
		goto out;
	}
	n = json_object_array_length(rows);
	if (table)
		printf("%-8s  %-*s  %s\n", "PLATFORM", (int)w, "TOKEN", "ADDED");
	for (i = 0; i < n; i++) {
		struct json_object *o = json_object_array_get_idx(rows, i), *v;

		if (!table) {
			ctl_print(json_object_get(o));
			continue;
		}
		json_object_object_get_ex(o, "platform", &v);
		printf("%-8s  ", json_object_get_string(v));
		json_object_object_get_ex(o, "token", &v);
		printf("%-*s  ", (int)w, json_object_get_string(v));
		json_object_object_get_ex(o, "created_at", &v);
		printf("%s\n", json_object_get_string(v));
	}
	if (table)
		printf("(%zu device%s)\n", n, n == 1 ? "" : "s");
out:
	json_object_put(rows);
	db_close(db);
	return rc;
}

/* device_cmd - "heraldctl device add|remove|list" */
int device_cmd(const char *conf, int argc, char **argv)
{
	if (argc < 2)
		return ctl_usage("device", device_usage, "a subcommand is required (add, remove or list)");
	if (strcmp(argv[1], "add") == 0)
		return device_add(conf, argc - 1, argv + 1);
	if (strcmp(argv[1], "remove") == 0)
		return device_remove(conf, argc - 1, argv + 1);
	if (strcmp(argv[1], "list") == 0)
		return device_list(conf, argc - 1, argv + 1);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(device_usage, stdout);
		return EX_OK;
	}
	return ctl_usage("device", device_usage, "unknown subcommand '%s' (add, remove or list)",
	    argv[1]);
}
