/* prefs - "heraldctl prefs get|set|apply-token", "pause", "unpause" (SPEC §4 step 4, §5, §8)
 *
 * A preference key is CHANNEL, CATEGORY (one configured in the config file) or
 * CATEGORY.CHANNEL; a missing key is on. "key=default" deletes the row, so the default
 * applies again. Pause is users.paused_until: '9999-12-31 23:59:59' until unpaused.
 * apply-token verifies an unsubscribe token (shared/unsub.h, the List-Unsubscribe link of an
 * email) with unsubscribe.secret and turns the token's CATEGORY off for its user; a
 * CATEGORY.email row that is on would still win for email (the most specific key wins), so
 * it is turned off too: the link came in an email, and after it no such email may be sent.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <json-c/json.h>

#include "conf.h"
#include "ctl.h"
#include "db.h"
#include "rfc3339.h"
#include "unsub.h"

#define PREFS_KEY_MAX 64                          /* preferences.pref_key */
#define PREFS_FOREVER 253402300799000000LL        /* 9999-12-31 23:59:59 UTC */
#define PREFS_TRIES 3

enum { P_USER, P_LIST, P_PUT, P_DEL, P_PAUSE, P_OFF, P__N };

static const struct db_stmt prefs_stmts[P__N] = {
	[P_USER] = { "prefs_user", "SELECT paused_until FROM users WHERE user_id = ? FOR UPDATE" },
	[P_LIST] = { "prefs_list",
		"SELECT pref_key, enabled FROM preferences WHERE user_id = ? ORDER BY pref_key", true },
	[P_PUT] = { "prefs_put",
		"INSERT INTO preferences (user_id, pref_key, enabled) VALUES (?, ?, ?)"
		" ON DUPLICATE KEY UPDATE enabled = ?", true },
	[P_DEL] = { "prefs_del", "DELETE FROM preferences WHERE user_id = ? AND pref_key = ?", true },
	[P_PAUSE] = { "prefs_pause", "UPDATE users SET paused_until = ? WHERE user_id = ?", true },
	[P_OFF] = { "prefs_off",
		"UPDATE preferences SET enabled = 0 WHERE user_id = ? AND pref_key = ?", true },
};

static const char prefs_usage[] =
	"usage: heraldctl prefs get USER [--format json|table]\n"
	"       heraldctl prefs set USER KEY=true|false|on|off|default...\n"
	"         KEY: CHANNEL (email, sms, push, webhook), CATEGORY or CATEGORY.CHANNEL\n"
	"       heraldctl prefs apply-token TOKEN\n"
	"         TOKEN: from an email's List-Unsubscribe link; turns its category off\n"
	"       heraldctl pause USER [--until RFC3339]\n"
	"       heraldctl unpause USER\n"
	"  get --format table: one KEY VALUE row per stored preference\n"
	CTL_FORMAT_HELP;

/* prefs_key_check - 0 when KEY is CHANNEL, CATEGORY or CATEGORY.CHANNEL; else -1 and WHY */
int prefs_key_check(const struct conf *c, const char *key, char *why, size_t whylen)
{
	const char *dot = strchr(key, '.');
	char cat[PREFS_KEY_MAX + 1];

	if (strlen(key) > PREFS_KEY_MAX) {
		snprintf(why, whylen, "longer than %d bytes", PREFS_KEY_MAX);
		return -1;
	}
	if (dot == NULL) {
		if (conf_channel_parse(key) >= 0 || conf_category_find(c, key) != NULL)
			return 0;
		snprintf(why, whylen, "not a channel (email, sms, push, webhook) or a configured"
		    " category");
		return -1;
	}
	snprintf(cat, sizeof(cat), "%.*s", (int)(dot - key), key);
	if (conf_category_find(c, cat) == NULL) {
		snprintf(why, whylen, "'%s' is not a configured category", cat);
		return -1;
	}
	if (conf_channel_parse(dot + 1) < 0) {
		snprintf(why, whylen, "'%s' is not a channel (email, sms, push, webhook)", dot + 1);
		return -1;
	}
	return 0;
}

/* prefs_user - whether user ID exists (its row locked inside a transaction); 1, 0 or DB_ */
static int prefs_user(struct db *db, const char *id)
{
	int rc;

	if (!ctl_user_id_ok(id))
		return 0;                /* no such user can exist ("a " would find "a") */
	if ((rc = db_exec(db, P_USER, DB_ARGS(db_str(id)))) != 0)
		return rc;
	return db_fetch(db, P_USER);
}

/* prefs_object - user ID's preferences as one JSON object into *OUT; 0 or a DB_ error */
static int prefs_object(struct db *db, const char *id, struct json_object **out)
{
	struct json_object *o;
	int rc;

	*out = NULL;
	if ((rc = db_exec(db, P_LIST, DB_ARGS(db_str(id)))) != 0)
		return rc;
	o = json_object_new_object();
	while ((rc = db_fetch(db, P_LIST)) == 1)
		json_object_object_add(o, db_col_str(db, P_LIST, 0, NULL),
		    json_object_new_boolean(db_col_i64(db, P_LIST, 1) != 0));
	if (rc < 0) {
		json_object_put(o);
		return rc;
	}
	*out = o;
	return 0;
}

/* prefs_print - print user ID's preferences as one JSON object (or a table in FMT) */
static int prefs_print(struct db *db, const char *id, enum ctl_fmt fmt)
{
	struct json_object *o;
	int rc;

	if ((rc = prefs_object(db, id, &o)) != 0)
		return rc;
	ctl_output(o, fmt, "key");
	return 0;
}

/* prefs_open - the user argument of CMD (ARGV after the subcommand) and the database */
static int prefs_open(const char *conf, const char *cmd, int argc, char **argv,
    const struct ctl_opt *opts, const char **pos, int maxpos, int *np, struct db **db)
{
	int rc;

	*db = NULL;
	if ((rc = ctl_args(cmd, prefs_usage, argc, argv, opts, pos, maxpos, np)) != 0)
		return rc == CTL_HELP ? -1 : rc;
	if (*np == 0)
		return ctl_usage(cmd, prefs_usage, "USER is required");
	return ctl_db_open(conf, prefs_stmts, P__N, db);
}

/* prefs_missing - "no user ID" on stderr; 1 */
static int prefs_missing(const char *cmd, const char *id)
{
	fprintf(stderr, "heraldctl %s: no user '%s'\n", cmd, id);
	return 1;
}

/* prefs_get - "prefs get USER" */
static int prefs_get(const char *conf, int argc, char **argv)
{
	const char *pos[1], *format = NULL;
	const struct ctl_opt opts[] = { { "--format", &format, NULL }, { NULL, NULL, NULL } };
	enum ctl_fmt fmt = CTL_FMT_JSON;
	struct db *db;
	int np, rc;

	if ((rc = prefs_open(conf, "prefs get", argc, argv, opts, pos, 1, &np, &db)) != 0)
		return rc < 0 ? EX_OK : rc;
	if ((rc = ctl_fmt_parse("prefs get", prefs_usage, format, &fmt)) != 0)
		goto out;
	if ((rc = prefs_user(db, pos[0])) == 1)
		rc = prefs_print(db, pos[0], fmt) == 0 ? 0 : ctl_db_fail(db, DB_ERR);
	else if (rc == 0)
		rc = prefs_missing("prefs get", pos[0]);
	else
		rc = ctl_db_fail(db, rc);
out:
	db_close(db);
	return rc;
}

/* prefs_set_once - apply the N pairs KEYS/VALS (-1 default) for ID in one transaction;
 * 1 done, 0 no such user, or a DB_ error */
static int prefs_set_once(struct db *db, const char *id, char **keys, const int *vals, int n)
{
	int i, rc;

	if ((rc = db_begin(db)) != 0)
		return rc;
	if ((rc = prefs_user(db, id)) != 1)
		goto out;
	for (i = 0; i < n; i++) {
		if (vals[i] < 0)
			rc = db_exec(db, P_DEL, DB_ARGS(db_str(id), db_str(keys[i])));
		else
			rc = db_exec(db, P_PUT, DB_ARGS(db_str(id), db_str(keys[i]), db_i64(vals[i]),
			    db_i64(vals[i])));
		if (rc != 0)
			goto out;
	}
	return (rc = db_commit(db)) == 0 ? 1 : rc;
out:
	db_rollback(db);
	return rc;
}

/* prefs_set - "prefs set USER key=value..." */
static int prefs_set(const char *conf, int argc, char **argv)
{
	const char **pos = calloc((size_t)argc + 1, sizeof(*pos));
	char **keys = calloc((size_t)argc + 1, sizeof(*keys)), why[160];
	int *vals = calloc((size_t)argc + 1, sizeof(*vals));
	struct conf c = { 0 };
	struct db *db = NULL;
	int np = 0, rc, i, k, tries;

	if (pos == NULL || keys == NULL || vals == NULL) {
		rc = EX_OSERR;
		goto out;
	}
	if ((rc = ctl_args("prefs set", prefs_usage, argc - 1, argv + 1, NULL, pos, argc, &np)) != 0) {
		rc = rc == CTL_HELP ? EX_OK : rc;
		goto out;
	}
	if (np < 2) {
		rc = ctl_usage("prefs set", prefs_usage, np ? "at least one KEY=VALUE is required" :
		    "USER is required");
		goto out;
	}
	if ((rc = ctl_conf(conf, &c)) != 0)
		goto out;
	for (i = 1; i < np; i++) {
		const char *eq = strchr(pos[i], '=');

		if (eq == NULL) {
			rc = ctl_usage("prefs set", prefs_usage, "'%s': not KEY=VALUE", pos[i]);
			goto out;
		}
		if ((keys[i - 1] = strndup(pos[i], (size_t)(eq - pos[i]))) == NULL) {
			rc = EX_OSERR;
			goto out;
		}
		if (prefs_key_check(&c, keys[i - 1], why, sizeof(why)) != 0) {
			rc = ctl_usage("prefs set", prefs_usage, "key '%s': %s", keys[i - 1], why);
			goto out;
		}
		for (k = 0; k < i - 1; k++)
			if (strcmp(keys[k], keys[i - 1]) == 0) {
				rc = ctl_usage("prefs set", prefs_usage, "key '%s' given twice", keys[k]);
				goto out;
			}
		vals[i - 1] = strcmp(eq + 1, "default") == 0 ? -1 : ctl_bool(eq + 1);
		if (vals[i - 1] < 0 && strcmp(eq + 1, "default") != 0) {
			rc = ctl_usage("prefs set", prefs_usage, "key '%s': value '%s' is not true,"
			    " false, on, off or default", keys[i - 1], eq + 1);
			goto out;
		}
	}
	if ((rc = ctl_db_open(conf, prefs_stmts, P__N, &db)) != 0)
		goto out;
	for (tries = 0; tries < PREFS_TRIES; tries++)
		if ((rc = prefs_set_once(db, pos[0], keys, vals, np - 1)) != DB_ERETRY)
			break;
	if (rc == 1)
		rc = prefs_print(db, pos[0], CTL_FMT_JSON) == 0 ? 0 : ctl_db_fail(db, DB_ERR);
	else if (rc == 0)
		rc = prefs_missing("prefs set", pos[0]);
	else
		rc = ctl_db_fail(db, rc);
out:
	for (i = 0; keys != NULL && i < argc; i++)
		free(keys[i]);
	free(keys);
	free(vals);
	free(pos);
	db_close(db);
	conf_free(&c);
	return rc;
}

/* prefs_token_once - turn KEY (a category) off for ID, and KEY.email where a row has it, in
 * one transaction; 1 done, 0 no such user, or a DB_ error */
static int prefs_token_once(struct db *db, const char *id, const char *key)
{
	char email_key[PREFS_KEY_MAX + 8];
	int rc;

	snprintf(email_key, sizeof(email_key), "%s.email", key);
	if ((rc = db_begin(db)) != 0)
		return rc;
	if ((rc = prefs_user(db, id)) != 1)
		goto out;
	if ((rc = db_exec(db, P_PUT, DB_ARGS(db_str(id), db_str(key), db_i64(0), db_i64(0)))) != 0)
		goto out;
	if (strlen(email_key) <= PREFS_KEY_MAX &&
	    (rc = db_exec(db, P_OFF, DB_ARGS(db_str(id), db_str(email_key)))) != 0)
		goto out;
	return (rc = db_commit(db)) == 0 ? 1 : rc;
out:
	db_rollback(db);
	return rc;
}

/* prefs_apply_token - "prefs apply-token TOKEN": verify TOKEN with unsubscribe.secret, turn its
 * category off for its user and print {"user_id","category","preferences"}; a bad, forged or
 * expired token changes nothing (exit 1) */
static int prefs_apply_token(const char *conf, int argc, char **argv)
{
	const char *cmd = "prefs apply-token", *pos[1];
	struct json_object *o = NULL, *prefs = NULL;
	struct unsub_claim claim;
	struct conf c = { 0 };
	struct db *db = NULL;
	char why[160];
	int np = 0, rc, tries;

	if ((rc = ctl_args(cmd, prefs_usage, argc, argv, NULL, pos, 1, &np)) != 0)
		return rc == CTL_HELP ? EX_OK : rc;
	if (np == 0)
		return ctl_usage(cmd, prefs_usage, "TOKEN is required");
	if ((rc = ctl_conf(conf, &c)) != 0)
		return rc;
	if (c.unsubscribe.secret == NULL || c.unsubscribe.secret[0] == '\0') {
		fprintf(stderr, "heraldctl %s: unsubscribe.secret is not set in %s: no token can be"
		    " verified\n", cmd, c.path != NULL ? c.path : "the config");
		rc = EX_CONFIG;
		goto out;
	}
	if ((rc = unsub_check(c.unsubscribe.secret, pos[0], rfc3339_now() / 1000000, &claim)) !=
	    UNSUB_OK) {
		fprintf(stderr, "heraldctl %s: token refused: %s\n", cmd, unsub_strerror(rc));
		rc = 1;
		goto out;
	}
	if (prefs_key_check(&c, claim.category, why, sizeof(why)) != 0 ||
	    strchr(claim.category, '.') != NULL || conf_channel_parse(claim.category) >= 0) {
		fprintf(stderr, "heraldctl %s: token category '%s' is not a configured category\n",
		    cmd, claim.category);
		rc = 1;
		goto out;
	}
	if ((rc = ctl_db_open(conf, prefs_stmts, P__N, &db)) != 0)
		goto out;
	for (tries = 0; tries < PREFS_TRIES; tries++)
		if ((rc = prefs_token_once(db, claim.user, claim.category)) != DB_ERETRY)
			break;
	if (rc == 0) {
		rc = prefs_missing(cmd, claim.user);
	} else if (rc < 0 || (rc = prefs_object(db, claim.user, &prefs)) != 0) {
		rc = ctl_db_fail(db, rc);
	} else {
		o = json_object_new_object();
		json_object_object_add(o, "user_id", json_object_new_string(claim.user));
		json_object_object_add(o, "category", json_object_new_string(claim.category));
		json_object_object_add(o, "unsubscribed", json_object_new_boolean(1));
		json_object_object_add(o, "preferences", prefs);
		ctl_print(o);
		rc = 0;
	}
out:
	db_close(db);
	conf_free(&c);
	return rc;
}

/* prefs_pause_cmd - "pause USER [--until T]" and "unpause USER" */
int prefs_pause_cmd(const char *conf, int argc, char **argv)
{
	bool pause = strcmp(argv[0], "pause") == 0;
	const char *until = NULL, *pos[1];
	const struct ctl_opt opts[] = { { "--until", &until, NULL }, { NULL, NULL, NULL } };
	char buf[RFC3339_LEN + 1];
	int64_t t = PREFS_FOREVER;
	struct db *db;
	int np, rc;

	if ((rc = prefs_open(conf, argv[0], argc - 1, argv + 1, pause ? opts : NULL, pos, 1, &np,
	    &db)) != 0)
		return rc < 0 ? EX_OK : rc;
	if (until != NULL && (rfc3339_parse(until, &t) != 0 || t <= rfc3339_now())) {
		db_close(db);
		return ctl_usage(argv[0], prefs_usage, "--until '%s': %s", until,
		    rfc3339_parse(until, &t) != 0 ? "not an RFC 3339 time (2026-11-22T09:00:00Z)" :
		    "in the past");
	}
	if ((rc = prefs_user(db, pos[0])) == 1)
		rc = db_exec(db, P_PAUSE, DB_ARGS(pause ? db_time(t) : db_null(), db_str(pos[0]))) == 0 ?
		    1 : DB_ERR;
	if (rc == 0)
		rc = prefs_missing(argv[0], pos[0]);
	else if (rc < 0)
		rc = ctl_db_fail(db, rc);
	else if (!pause)
		rc = (printf("user %s unpaused\n", pos[0]), 0);
	else if (until == NULL)
		rc = (printf("user %s paused until unpaused\n", pos[0]), 0);
	else
		rc = (printf("user %s paused until %s\n", pos[0], rfc3339_format(t, buf)), 0);
	db_close(db);
	return rc;
}

/* prefs_cmd - "heraldctl prefs get|set|apply-token" */
int prefs_cmd(const char *conf, int argc, char **argv)
{
	if (argc < 2)
		return ctl_usage("prefs", prefs_usage,
		    "a subcommand is required (get, set or apply-token)");
	if (strcmp(argv[1], "get") == 0)
		return prefs_get(conf, argc - 2, argv + 2);
	if (strcmp(argv[1], "set") == 0)
		return prefs_set(conf, argc - 1, argv + 1);
	if (strcmp(argv[1], "apply-token") == 0)
		return prefs_apply_token(conf, argc - 2, argv + 2);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(prefs_usage, stdout);
		return EX_OK;
	}
	return ctl_usage("prefs", prefs_usage, "unknown subcommand '%s'", argv[1]);
}
