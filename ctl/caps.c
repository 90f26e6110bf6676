/* caps - "heraldctl caps get|set" (SPEC §4 step 6): daily caps per channel and client quotas
 *
 * The effective daily cap of a channel for client C is, the most specific first: the
 * database row (channel, C), the file's clients.C.caps, the database row (channel, ''), the
 * file's caps. A row with daily_cap NULL or 0 means no cap, as 0 does in the file. Client quotas
 * (messages per UTC day, table client_quotas) come from the database row, else the file's
 * clients.C.quotas; 0 means no quota in both.
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

#define CAPS_TRIES 3
#define CAPS_DEFAULT (-1)        /* delete the row */
#define CAPS_NONE (-2)           /* no cap */

enum { C_CAPS, C_QUOTAS, C_CAP_PUT, C_CAP_DEL, C_QUOTA_PUT, C_QUOTA_DEL, C__N };

static const struct db_stmt caps_stmts[C__N] = {
	[C_CAPS] = { "caps_get",
		"SELECT channel, client_id, daily_cap FROM caps WHERE client_id IN ('', ?)", true },
	[C_QUOTAS] = { "caps_quotas",
		"SELECT channel, daily_quota FROM client_quotas WHERE client_id = ?", true },
	[C_CAP_PUT] = { "caps_put",
		"INSERT INTO caps (channel, client_id, daily_cap) VALUES (?, ?, ?)"
		" ON DUPLICATE KEY UPDATE daily_cap = ?", true },
	[C_CAP_DEL] = { "caps_del", "DELETE FROM caps WHERE channel = ? AND client_id = ?", true },
	[C_QUOTA_PUT] = { "caps_quota_put",
		"INSERT INTO client_quotas (client_id, channel, daily_quota) VALUES (?, ?, ?)"
		" ON DUPLICATE KEY UPDATE daily_quota = ?", true },
	[C_QUOTA_DEL] = { "caps_quota_del",
		"DELETE FROM client_quotas WHERE client_id = ? AND channel = ?", true },
};

static const char caps_usage[] =
	"usage: heraldctl caps get [--client C] [--format json|table]\n"
	"       heraldctl caps set [--client C] CHANNEL=N|none|default... [--format json|table]\n"
	"       heraldctl caps set --client C --quota CHANNEL=N|none|default... [--format ...]\n"
	"  N sets a daily cap in the database (it wins over the config file), none (or 0, as in\n"
	"  the file) no cap, default deletes the database value so the file's applies. --quota\n"
	"  sets client C's messages per UTC day (none or 0: no quota). Both print the caps in\n"
	"  effect; --format table: one row per channel (cap -: none).\n"
	CTL_FORMAT_HELP;

/* One channel's value and where it came from. */
struct caps_val {
	long long v;             /* -1: none */
	const char *source;      /* "database" or "file" */
	const char *scope;       /* "client" or "all" */
};

/* caps_file - the file's cap and quota for channel CH and client C (NULL: all) into CAP, QUOTA */
static void caps_file(const struct conf *c, const char *client, int ch, struct caps_val *cap,
    struct caps_val *quota)
{
	const struct conf_client *cl = client ? conf_client_find(c, client) : NULL;

	*cap = (struct caps_val){ c->caps.n[ch] > 0 ? c->caps.n[ch] : -1, "file", "all" };
	if (cl != NULL && cl->caps.n[ch] >= 0)
		*cap = (struct caps_val){ cl->caps.n[ch] > 0 ? cl->caps.n[ch] : -1, "file", "client" };
	*quota = (struct caps_val){ cl && cl->quotas.n[ch] > 0 ? cl->quotas.n[ch] : -1, "file",
	    "client" };
}

/* caps_json - one channel's entry: {"cap":N|null,"source","scope"} (+ quota with a client) */
static struct json_object *caps_json(const struct caps_val *cap, const struct caps_val *quota)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "cap", cap->v < 0 ? NULL : json_object_new_int64(cap->v));
	json_object_object_add(o, "source", json_object_new_string(cap->source));
	json_object_object_add(o, "scope", json_object_new_string(cap->scope));
	if (quota != NULL) {
		json_object_object_add(o, "quota", quota->v < 0 ? NULL : json_object_new_int64(quota->v));
		json_object_object_add(o, "quota_source", json_object_new_string(quota->source));
	}
	return o;
}

/* caps_print - print the effective caps (and quotas with CLIENT) of every channel */
static int caps_print(struct db *db, const struct conf *c, const char *client, enum ctl_fmt fmt)
{
	struct caps_val cap[CONF_CHANNELS], quota[CONF_CHANNELS], dball[CONF_CHANNELS];
	bool have_all[CONF_CHANNELS] = { false }, have_client[CONF_CHANNELS] = { false };
	struct json_object *o;
	int ch, rc;

	for (ch = 0; ch < CONF_CHANNELS; ch++)
		caps_file(c, client, ch, &cap[ch], &quota[ch]);
	if ((rc = db_exec(db, C_CAPS, DB_ARGS(db_str(client ? client : "")))) != 0)
		return rc;
	while ((rc = db_fetch(db, C_CAPS)) == 1) {
		const char *cl = db_col_str(db, C_CAPS, 1, NULL);
		long long v = db_col_null(db, C_CAPS, 2) ? -1 : (long long)db_col_i64(db, C_CAPS, 2);

		if (v == 0)                  /* 0 is no cap, as in the file (and admit.c) */
			v = -1;

		if ((ch = conf_channel_parse(db_col_str(db, C_CAPS, 0, NULL))) < 0 || cl == NULL)
			continue;
		if (cl[0] == '\0') {
			dball[ch] = (struct caps_val){ v, "database", "all" };
			have_all[ch] = true;
		} else {
			cap[ch] = (struct caps_val){ v, "database", "client" };
			have_client[ch] = true;
		}
	}
	if (rc < 0)
		return rc;
	for (ch = 0; ch < CONF_CHANNELS; ch++)   /* a database value for all beats the file's */
		if (have_all[ch] && !have_client[ch] && strcmp(cap[ch].scope, "all") == 0)
			cap[ch] = dball[ch];
	if (client != NULL) {
		if ((rc = db_exec(db, C_QUOTAS, DB_ARGS(db_str(client)))) != 0)
			return rc;
		while ((rc = db_fetch(db, C_QUOTAS)) == 1) {
			long long v = db_col_i64(db, C_QUOTAS, 1);

			if ((ch = conf_channel_parse(db_col_str(db, C_QUOTAS, 0, NULL))) >= 0)
				quota[ch] = (struct caps_val){ v > 0 ? v : -1, "database", "client" };
		}
		if (rc < 0)
			return rc;
	}
	o = json_object_new_object();
	if (client != NULL && fmt == CTL_FMT_JSON)
		json_object_object_add(o, "client", json_object_new_string(client));
	for (ch = 0; ch < CONF_CHANNELS; ch++)
		json_object_object_add(o, conf_channel_name(ch), caps_json(&cap[ch],
		    client ? &quota[ch] : NULL));
	ctl_output(o, fmt, "channel");      /* table: one row per channel */
	return 0;
}

/* caps_value - parse "N", "none" or "default" into *V; -1 if none of them */
static int caps_value(const char *s, long long *v)
{
	char *end;

	if (strcmp(s, "default") == 0)
		*v = CAPS_DEFAULT;
	else if (strcmp(s, "none") == 0)
		*v = CAPS_NONE;
	else {
		if (s[0] < '0' || s[0] > '9')
			return -1;
		errno = 0;
		*v = strtoll(s, &end, 10);
		if (errno != 0 || *end != '\0' || *v > 4294967295LL)
			return -1;
	}
	return 0;
}

/* caps_set_once - write the values V (per channel; SET marks the given ones) in one transaction */
static int caps_set_once(struct db *db, const char *client, bool quota, const bool set[],
    const long long v[])
{
	int ch, rc = 0;

	if ((rc = db_begin(db)) != 0)
		return rc;
	for (ch = 0; ch < CONF_CHANNELS && rc == 0; ch++) {
		const char *name = conf_channel_name(ch);

		if (!set[ch])
			continue;
		if (quota && v[ch] == CAPS_DEFAULT)
			rc = db_exec(db, C_QUOTA_DEL, DB_ARGS(db_str(client), db_str(name)));
		else if (quota)
			rc = db_exec(db, C_QUOTA_PUT, DB_ARGS(db_str(client), db_str(name),
			    db_i64(v[ch] < 0 ? 0 : v[ch]), db_i64(v[ch] < 0 ? 0 : v[ch])));
		else if (v[ch] == CAPS_DEFAULT)
			rc = db_exec(db, C_CAP_DEL, DB_ARGS(db_str(name), db_str(client)));
		else
			rc = db_exec(db, C_CAP_PUT, DB_ARGS(db_str(name), db_str(client),
			    v[ch] < 0 ? db_null() : db_i64(v[ch]), v[ch] < 0 ? db_null() : db_i64(v[ch])));
	}
	if (rc != 0) {
		db_rollback(db);
		return rc;
	}
	return db_commit(db);
}

/* caps_parse - the CHANNEL=VALUE pairs POS[0..NP) into SET and V; 0 or EX_USAGE */
static int caps_parse(const char **pos, int np, bool set[], long long v[])
{
	int i, ch;

	if (np == 0)
		return ctl_usage("caps set", caps_usage, "at least one CHANNEL=VALUE is required");
	for (i = 0; i < np; i++) {
		const char *eq = strchr(pos[i], '=');
		char name[32];

		if (eq == NULL)
			return ctl_usage("caps set", caps_usage, "'%s': not CHANNEL=VALUE", pos[i]);
		snprintf(name, sizeof(name), "%.*s", (int)(eq - pos[i]), pos[i]);
		if ((ch = conf_channel_parse(name)) < 0 || (size_t)(eq - pos[i]) >= sizeof(name))
			return ctl_usage("caps set", caps_usage, "'%s': unknown channel (email, sms,"
			    " push, webhook)", name);
		if (set[ch])
			return ctl_usage("caps set", caps_usage, "channel '%s' given twice", name);
		if (caps_value(eq + 1, &v[ch]) != 0)
			return ctl_usage("caps set", caps_usage, "%s: '%s' is not a number from 0 to"
			    " 4294967295, none or default", name, eq + 1);
		set[ch] = true;
	}
	return 0;
}

/* caps_set - write the values V of the channels SET, running it again after a lost connection */
static int caps_set(struct db *db, const char *client, bool quota, const bool set[],
    const long long v[])
{
	int rc = 0, tries;

	for (tries = 0; tries < CAPS_TRIES; tries++)
		if ((rc = caps_set_once(db, client ? client : "", quota, set, v)) != DB_ERETRY)
			break;
	return rc;
}

/* caps_cmd - "heraldctl caps get|set [--client C] [--quota] ..." */
int caps_cmd(const char *conf, int argc, char **argv)
{
	const char *client = NULL, *format = NULL, **pos;
	bool quota = false, get, set[CONF_CHANNELS] = { false };
	long long v[CONF_CHANNELS];
	const struct ctl_opt opts[] = {
		{ "--client", &client, NULL }, { "--quota", NULL, &quota },
		{ "--format", &format, NULL }, { NULL, NULL, NULL }
	};
	enum ctl_fmt fmt;
	struct conf c = { 0 };
	struct db *db = NULL;
	int np, rc;

	if (argc < 2)
		return ctl_usage("caps", caps_usage, "a subcommand is required (get or set)");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return fputs(caps_usage, stdout), EX_OK;
	get = strcmp(argv[1], "get") == 0;
	if (!get && strcmp(argv[1], "set") != 0)
		return ctl_usage("caps", caps_usage, "unknown subcommand '%s'", argv[1]);
	if ((pos = calloc((size_t)argc, sizeof(*pos))) == NULL)
		return EX_OSERR;
	if ((rc = ctl_args(get ? "caps get" : "caps set", caps_usage, argc - 2, argv + 2, opts, pos,
	    get ? 0 : argc, &np)) != 0) {
		rc = rc == CTL_HELP ? EX_OK : rc;
		goto out;
	}
	if ((rc = ctl_fmt_parse(get ? "caps get" : "caps set", caps_usage, format, &fmt)) != 0)
		goto out;
	if (client != NULL && !ctl_client_ok(client)) {
		rc = ctl_usage("caps", caps_usage, "--client '%s': not a client id ([A-Za-z0-9_.-],"
		    " at most 64)", client);
		goto out;
	}
	if (quota && (get || client == NULL)) {
		rc = ctl_usage("caps", caps_usage, get ? "--quota is for caps set (caps get --client"
		    " shows quotas)" : "--quota needs --client");
		goto out;
	}
	if (!get && (rc = caps_parse(pos, np, set, v)) != 0)
		goto out;
	if ((rc = ctl_conf(conf, &c)) != 0 || (rc = ctl_db_open(conf, caps_stmts, C__N, &db)) != 0)
		goto out;
	if (!get && (rc = caps_set(db, client, quota, set, v)) != 0) {
		rc = ctl_db_fail(db, rc);
		goto out;
	}
	if ((rc = caps_print(db, &c, client, fmt)) != 0)
		rc = ctl_db_fail(db, rc);
out:
	free(pos);
	db_close(db);
	conf_free(&c);
	return rc;
}
