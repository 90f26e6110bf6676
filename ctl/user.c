/* user - "heraldctl user add|show|import|delete" (SPEC §8): users, devices, preferences, quiet hours
 *
 * One record shape everywhere: user add builds it from its options (or --json), user import
 * reads one per line, user show prints it. Writing a record is an upsert of what it names: a
 * field that is absent stays as it is, null clears it (timezone: back to UTC); "devices",
 * "preferences" and "quiet_hours", when present, replace the user's whole set, so importing
 * the same file twice changes nothing. A device token belongs to one user: a record that
 * names a token another user holds moves it. user add is one transaction; user import writes
 * USER_BATCH records per transaction (one commit, so one log flush, per batch rather than per
 * record: 100,000 users in one run), and a record the database refuses is left out of its
 * batch, which runs again without it.
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
#include "tzday.h"

#define USER_LINE_MAX (1024 * 1024)    /* bytes of one import line */
#define USER_DEVICES_MAX 100
#define USER_TRIES 3                   /* runs of one transaction after a lost connection */
#define USER_ID_RULE \
	"must be a string of 1-191 bytes without control characters or a trailing space"
#define USER_BATCH 500                 /* import: records per transaction */
#define USER_DELETE_BATCH 1000         /* notifications rows per DELETE of --erase-history */
#define USER_PAUSED_FOREVER 253402300799000000LL   /* 9999-12-31 23:59:59 UTC */

enum {
	U_LOCK, U_UPSERT, U_DEV_PUT, U_DEV_LIST, U_DEV_DEL, U_PREF_PUT, U_PREF_LIST, U_PREF_DEL,
	U_QUIET_PUT, U_QUIET_DEL, U_GET, U_DEVICES, U_PREFS, U_QUIET, U_DELETE, U_ERASE,
	U__N
};

/* The upsert takes each field twice: the inserted value, then (flag, value) for the update,
 * where flag 0 keeps the stored value (the field was absent from the record). */
static const struct db_stmt user_stmts[U__N] = {
	[U_LOCK] = { "user_lock", "SELECT 1 FROM users WHERE user_id = ? FOR UPDATE" },
	[U_UPSERT] = { "user_upsert",
		"INSERT INTO users (user_id, first_name, last_name, email, phone, timezone, locale,"
		" webhook_url, paused_until) VALUES (?, ?, ?, ?, ?, COALESCE(?, 'UTC'), ?, ?, ?)"
		" ON DUPLICATE KEY UPDATE first_name = IF(?, ?, first_name),"
		" last_name = IF(?, ?, last_name), email = IF(?, ?, email), phone = IF(?, ?, phone),"
		" timezone = IF(?, COALESCE(?, 'UTC'), timezone), locale = IF(?, ?, locale),"
		" webhook_url = IF(?, ?, webhook_url), paused_until = IF(?, ?, paused_until)" },
	[U_DEV_PUT] = { "user_device_put",
		"INSERT INTO devices (user_id, platform, token) VALUES (?, ?, ?)"
		" ON DUPLICATE KEY UPDATE user_id = ?, platform = ?" },
	[U_DEV_LIST] = { "user_device_list", "SELECT token FROM devices WHERE user_id = ?", true },
	[U_DEV_DEL] = { "user_device_del", "DELETE FROM devices WHERE user_id = ? AND token = ?" },
	[U_PREF_PUT] = { "user_pref_put",
		"INSERT INTO preferences (user_id, pref_key, enabled) VALUES (?, ?, ?)"
		" ON DUPLICATE KEY UPDATE enabled = ?" },
	[U_PREF_LIST] = { "user_pref_list", "SELECT pref_key FROM preferences WHERE user_id = ?",
		true },
	[U_PREF_DEL] = { "user_pref_del",
		"DELETE FROM preferences WHERE user_id = ? AND pref_key = ?" },
	[U_QUIET_PUT] = { "user_quiet_put",
		"INSERT INTO quiet_hours (user_id, start_minute, end_minute) VALUES (?, ?, ?)"
		" ON DUPLICATE KEY UPDATE start_minute = ?, end_minute = ?" },
	[U_QUIET_DEL] = { "user_quiet_del", "DELETE FROM quiet_hours WHERE user_id = ?" },
	[U_GET] = { "user_get",
		"SELECT user_id, first_name, last_name, email, phone, timezone, locale, webhook_url,"
		" paused_until FROM users WHERE user_id = ?", true },
	[U_DEVICES] = { "user_devices",
		"SELECT platform, token FROM devices WHERE user_id = ? ORDER BY id", true },
	[U_PREFS] = { "user_prefs",
		"SELECT pref_key, enabled FROM preferences WHERE user_id = ? ORDER BY pref_key", true },
	[U_QUIET] = { "user_quiet",
		"SELECT start_minute, end_minute FROM quiet_hours WHERE user_id = ?", true },
	[U_DELETE] = { "user_delete", "DELETE FROM users WHERE user_id = ?" },
	[U_ERASE] = { "user_erase", "DELETE FROM notifications WHERE user_id = ? LIMIT 1000", true },
};

/* The scalar fields of a record, in the order of the upsert's columns. */
enum { UF_FIRST, UF_LAST, UF_EMAIL, UF_PHONE, UF_TZ, UF_LOCALE, UF_WEBHOOK, UF__N };
static const char *const user_fields[UF__N] = {
	"first_name", "last_name", "email", "phone", "timezone", "locale", "webhook_url"
};

struct user_rec {
	const char *id;
	bool has[UF__N];             /* present in the record */
	const char *v[UF__N];        /* NULL: clear */
	char email[CTL_EMAIL_MAX + 1];   /* lower-cased */
	bool has_paused;
	bool paused_set;             /* false: null */
	int64_t paused;
	struct json_object *devices; /* array, or NULL when absent */
	struct json_object *prefs;   /* object, or NULL when absent */
	bool has_quiet;
	bool quiet_set;              /* false: null */
	int qstart, qend;
};

enum user_mode { USER_ADD, USER_IMPORT };
enum user_result { USER_ADDED, USER_UPDATED, USER_UNCHANGED, USER_EXISTS };

static const char user_usage[] =
	"usage: heraldctl user add USER [--first-name X] [--last-name X] [--email E] [--phone +E164]\n"
	"                          [--timezone ZONE] [--locale L] [--webhook-url URL]\n"
	"                          [--quiet-hours HH:MM-HH:MM]\n"
	"       heraldctl user add --json RECORD    (the user show / import record; USER optional)\n"
	"       heraldctl user show USER [--format json|table]\n"
	"       heraldctl user import FILE|-        (JSON Lines of records; idempotent upsert)\n"
	"       heraldctl user delete USER [--erase-history]\n"
	"  show --format table: one FIELD VALUE row per field (devices, preferences as JSON)\n"
	CTL_FORMAT_HELP;

/* user_fail - set FIELD and WHY; -1 */
static int user_fail(char *field, size_t fl, char *why, size_t wl, const char *f, const char *w)
{
	snprintf(field, fl, "%s", f);
	snprintf(why, wl, "%s", w);
	return -1;
}

/* user_quiet_parse - "HH:MM-HH:MM" into minutes since midnight; -1 if malformed */
static int user_quiet_parse(const char *s, int *start, int *end)
{
	int h1, m1, h2, m2, n = 0;

	/* NOLINTNEXTLINE(cert-err34-c): 2-digit fields of an 11-character string, ranges checked */
	if (strlen(s) != 11 || sscanf(s, "%2d:%2d-%2d:%2d%n", &h1, &m1, &h2, &m2, &n) != 4 ||
	    n != 11 || s[2] != ':' || s[5] != '-' || s[8] != ':')
		return -1;
	if (h1 < 0 || h1 > 23 || m1 < 0 || m1 > 59 || h2 < 0 || h2 > 23 || m2 < 0 || m2 > 59)
		return -1;
	*start = h1 * 60 + m1;
	*end = h2 * 60 + m2;
	return *start == *end ? -1 : 0;
}

/* user_devices_check - the "devices" array V: platform ios|android, a token, no repeats */
static int user_devices_check(struct json_object *v, char *field, size_t fl, char *why, size_t wl)
{
	size_t i, k, n;

	if (!json_object_is_type(v, json_type_array))
		return user_fail(field, fl, why, wl, "devices", "must be an array of {platform, token}");
	if ((n = json_object_array_length(v)) > USER_DEVICES_MAX)
		return user_fail(field, fl, why, wl, "devices", "more than 100 devices");
	for (i = 0; i < n; i++) {
		struct json_object *d = json_object_array_get_idx(v, i), *p, *t;
		const char *ps;

		snprintf(field, fl, "devices[%zu]", i);
		if (!json_object_is_type(d, json_type_object) || json_object_object_length(d) != 2 ||
		    !json_object_object_get_ex(d, "platform", &p) ||
		    !json_object_object_get_ex(d, "token", &t)) {
			snprintf(why, wl, "must be an object with exactly platform and token");
			return -1;
		}
		ps = json_object_get_string(p);
		if (!json_object_is_type(p, json_type_string) ||
		    (strcmp(ps, "ios") != 0 && strcmp(ps, "android") != 0)) {
			snprintf(field, fl, "devices[%zu].platform", i);
			snprintf(why, wl, "must be \"ios\" or \"android\"");
			return -1;
		}
		snprintf(field, fl, "devices[%zu].token", i);
		if (!json_object_is_type(t, json_type_string) || !ctl_token_ok(json_object_get_string(t))) {
			snprintf(why, wl, "must be 1-512 printable ASCII characters without spaces");
			return -1;
		}
		for (k = 0; k < i; k++) {
			struct json_object *o = json_object_array_get_idx(v, k), *ot;

			json_object_object_get_ex(o, "token", &ot);
			if (strcmp(json_object_get_string(ot), json_object_get_string(t)) == 0) {
				snprintf(why, wl, "the same token as devices[%zu]", k);
				return -1;
			}
		}
	}
	return 0;
}

/* user_prefs_check - the "preferences" object V: known keys, boolean values */
static int user_prefs_check(const struct conf *c, struct json_object *v, char *field, size_t fl,
    char *why, size_t wl)
{
	if (!json_object_is_type(v, json_type_object))
		return user_fail(field, fl, why, wl, "preferences", "must be an object of key: boolean");
	json_object_object_foreach(v, key, val) {
		snprintf(field, fl, "preferences.%s", key);
		if (prefs_key_check(c, key, why, wl) != 0)
			return -1;
		if (!json_object_is_type(val, json_type_boolean)) {
			snprintf(why, wl, "must be true or false");
			return -1;
		}
	}
	return 0;
}

/* user_scalar - check the scalar field F (value V, a string or null) into R */
static int user_scalar(struct user_rec *r, int f, struct json_object *v, char *field, size_t fl,
    char *why, size_t wl)
{
	const char *s;

	snprintf(field, fl, "%s", user_fields[f]);
	r->has[f] = true;
	if (v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_string)) {
		snprintf(why, wl, "must be a string or null");
		return -1;
	}
	s = json_object_get_string(v);
	r->v[f] = s;
	switch (f) {
	case UF_FIRST:
	case UF_LAST:
		if (!ctl_text_ok(s, 255))
			return snprintf(why, wl, "at most 255 characters, no control characters"), -1;
		break;
	case UF_EMAIL:
		if (!ctl_email_ok(s))
			return snprintf(why, wl, "not a valid email address"), -1;
		snprintf(r->email, sizeof(r->email), "%s", s);
		r->v[f] = ctl_lower(r->email);
		break;
	case UF_PHONE:
		if (!ctl_phone_ok(s))
			return snprintf(why, wl, "not an E.164 phone number (+ and 2-15 digits)"), -1;
		break;
	case UF_TZ:
		if (!tzday_valid(s))
			return snprintf(why, wl, "unknown time zone (an IANA name such as Europe/London)"), -1;
		break;
	case UF_LOCALE:
		if (s[0] == '\0' || strlen(s) > 35 || s[strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "abcdefghijklmnopqrstuvwxyz0123456789-_")] != '\0')
			return snprintf(why, wl, "not a locale tag (letters, digits, - and _, at most 35)"), -1;
		break;
	case UF_WEBHOOK:
		if (!ctl_url_ok(s))
			return snprintf(why, wl, "not an http:// or https:// URL with a host"), -1;
		break;
	}
	return 0;
}

/* user_parse - check the record O into R (strings borrowed from O); -1 with FIELD and WHY */
static int user_parse(const struct conf *c, struct json_object *o, struct user_rec *r,
    char *field, size_t fl, char *why, size_t wl)
{
	struct json_object *v;
	int f;

	memset(r, 0, sizeof(*r));
	if (!json_object_is_type(o, json_type_object))
		return user_fail(field, fl, why, wl, "json", "a record must be a JSON object");
	if (!json_object_object_get_ex(o, "user_id", &v))
		return user_fail(field, fl, why, wl, "user_id", "required");
	if (!json_object_is_type(v, json_type_string) || !ctl_user_id_ok(json_object_get_string(v)))
		return user_fail(field, fl, why, wl, "user_id", USER_ID_RULE);
	r->id = json_object_get_string(v);
	json_object_object_foreach(o, key, val) {
		for (f = 0; f < UF__N && strcmp(key, user_fields[f]) != 0; f++)
			;
		if (f < UF__N) {
			if (user_scalar(r, f, val, field, fl, why, wl) != 0)
				return -1;
		} else if (strcmp(key, "user_id") == 0) {
			continue;
		} else if (strcmp(key, "devices") == 0) {
			if (user_devices_check(val, field, fl, why, wl) != 0)
				return -1;
			r->devices = val;
		} else if (strcmp(key, "preferences") == 0) {
			if (user_prefs_check(c, val, field, fl, why, wl) != 0)
				return -1;
			r->prefs = val;
		} else if (strcmp(key, "quiet_hours") == 0) {
			r->has_quiet = true;
			if (val == NULL)
				continue;
			r->quiet_set = true;
			if (!json_object_is_type(val, json_type_string) ||
			    user_quiet_parse(json_object_get_string(val), &r->qstart, &r->qend) != 0)
				return user_fail(field, fl, why, wl, "quiet_hours", "must be \"HH:MM-HH:MM\""
				    " (start and end differ) or null");
		} else if (strcmp(key, "paused_until") == 0) {
			r->has_paused = true;
			if (val == NULL)
				continue;
			r->paused_set = true;
			if (!json_object_is_type(val, json_type_string) ||
			    rfc3339_parse(json_object_get_string(val), &r->paused) != 0)
				return user_fail(field, fl, why, wl, "paused_until", "must be an RFC 3339"
				    " time or null");
		} else {
			return user_fail(field, fl, why, wl, key, "unknown key");
		}
	}
	return 0;
}

/* user_put_devices - make R's devices the user's whole set (moving tokens others hold); a
 * user just inserted (!EXISTS) has no other devices to remove */
static int user_put_devices(struct db *db, const struct user_rec *r, bool exists,
    uint64_t *changed)
{
	size_t i, n = json_object_array_length(r->devices);
	int rc, fr;

	for (i = 0; i < n; i++) {
		struct json_object *d = json_object_array_get_idx(r->devices, i), *p, *t;

		json_object_object_get_ex(d, "platform", &p);
		json_object_object_get_ex(d, "token", &t);
		if ((rc = db_exec(db, U_DEV_PUT, DB_ARGS(db_str(r->id), db_str(json_object_get_string(p)),
		    db_str(json_object_get_string(t)), db_str(r->id),
		    db_str(json_object_get_string(p))))) != 0)
			return rc;
		*changed += db_affected(db, U_DEV_PUT);
	}
	if (!exists)
		return 0;
	if ((rc = db_exec(db, U_DEV_LIST, DB_ARGS(db_str(r->id)))) != 0)
		return rc;
	while ((fr = db_fetch(db, U_DEV_LIST)) == 1) {
		const char *tok = db_col_str(db, U_DEV_LIST, 0, NULL);
		bool keep = false;

		for (i = 0; i < n && !keep; i++) {
			struct json_object *t;

			json_object_object_get_ex(json_object_array_get_idx(r->devices, i), "token", &t);
			keep = tok != NULL && strcmp(tok, json_object_get_string(t)) == 0;
		}
		if (!keep && tok != NULL) {
			if ((rc = db_exec(db, U_DEV_DEL, DB_ARGS(db_str(r->id), db_str(tok)))) != 0)
				return rc;
			*changed += db_affected(db, U_DEV_DEL);
		}
	}
	return fr < 0 ? fr : 0;
}

/* user_put_prefs - make R's preferences the user's whole set (none to remove when !EXISTS) */
static int user_put_prefs(struct db *db, const struct user_rec *r, bool exists,
    uint64_t *changed)
{
	struct json_object *v;
	int rc, fr;

	json_object_object_foreach(r->prefs, key, val) {
		int on = json_object_get_boolean(val);

		if ((rc = db_exec(db, U_PREF_PUT, DB_ARGS(db_str(r->id), db_str(key), db_i64(on),
		    db_i64(on)))) != 0)
			return rc;
		*changed += db_affected(db, U_PREF_PUT);
	}
	if (!exists)
		return 0;
	if ((rc = db_exec(db, U_PREF_LIST, DB_ARGS(db_str(r->id)))) != 0)
		return rc;
	while ((fr = db_fetch(db, U_PREF_LIST)) == 1) {
		const char *stored = db_col_str(db, U_PREF_LIST, 0, NULL);

		if (stored != NULL && !json_object_object_get_ex(r->prefs, stored, &v)) {
			if ((rc = db_exec(db, U_PREF_DEL, DB_ARGS(db_str(r->id), db_str(stored)))) != 0)
				return rc;
			*changed += db_affected(db, U_PREF_DEL);
		}
	}
	return fr < 0 ? fr : 0;
}

/* user_write - write R inside the open transaction; the outcome in *RES (USER_EXISTS: ADD met
 * an existing user and wrote nothing); 0 or a DB_ error */
static int user_write(struct db *db, const struct user_rec *r, enum user_mode mode,
    enum user_result *res)
{
	uint64_t changed = 0;
	bool exists;
	int rc = 0, i;
	struct db_arg a[27];

	/* add must not touch an existing user: look first. import learns it from the upsert
	 * (affected rows 1: inserted; 2: changed; 0: unchanged), one round trip less per record. */
	if (mode == USER_ADD) {
		if ((rc = db_exec(db, U_LOCK, DB_ARGS(db_str(r->id)))) != 0)
			return rc;
		if (db_fetch(db, U_LOCK) == 1) {
			*res = USER_EXISTS;
			return 0;
		}
	}
	a[0] = db_str(r->id);
	for (i = 0; i < UF__N; i++) {
		a[1 + i] = db_str(r->v[i]);
		a[9 + 2 * i] = db_i64(r->has[i]);
		a[10 + 2 * i] = db_str(r->v[i]);
	}
	a[8] = a[24] = r->paused_set ? db_time(r->paused) : db_null();
	a[23] = db_i64(r->has_paused);
	if ((rc = db_exec(db, U_UPSERT, a, 25)) != 0)
		return rc;
	exists = db_affected(db, U_UPSERT) != 1;
	if (exists)
		changed += db_affected(db, U_UPSERT);
	if (r->devices != NULL && (rc = user_put_devices(db, r, exists, &changed)) != 0)
		return rc;
	if (r->prefs != NULL && (rc = user_put_prefs(db, r, exists, &changed)) != 0)
		return rc;
	if (r->has_quiet && r->quiet_set)
		rc = db_exec(db, U_QUIET_PUT, DB_ARGS(db_str(r->id), db_i64(r->qstart), db_i64(r->qend),
		    db_i64(r->qstart), db_i64(r->qend)));
	else if (r->has_quiet)
		rc = db_exec(db, U_QUIET_DEL, DB_ARGS(db_str(r->id)));
	if (rc != 0)
		return rc;
	if (r->has_quiet)
		changed += db_affected(db, r->quiet_set ? U_QUIET_PUT : U_QUIET_DEL);
	*res = !exists ? USER_ADDED : changed > 0 ? USER_UPDATED : USER_UNCHANGED;
	return 0;
}

/* user_put_once - write R in one transaction; the outcome in *RES; 0 or a DB_ error */
static int user_put_once(struct db *db, const struct user_rec *r, enum user_mode mode,
    enum user_result *res)
{
	int rc;

	if ((rc = db_begin(db)) != 0)
		return rc;
	if ((rc = user_write(db, r, mode, res)) != 0 || *res == USER_EXISTS) {
		db_rollback(db);
		return rc;
	}
	return db_commit(db);
}

/* user_put - write R, running the transaction again after a lost connection or deadlock */
static int user_put(struct db *db, const struct user_rec *r, enum user_mode mode,
    enum user_result *res)
{
	int rc, n;

	for (n = 0; n < USER_TRIES; n++)
		if ((rc = user_put_once(db, r, mode, res)) != DB_ERETRY)
			break;
	return rc;
}

/* user_opt_json - ADD's record: --json (or {}) with the options' fields set over it */
static int user_opt_json(const char *json, const char *user, const char *const val[UF__N],
    const char *quiet, struct json_object **out)
{
	char field[128], why[256];
	int f;

	*out = NULL;
	if (json != NULL) {
		if (ctl_json_parse(json, strlen(json), out, field, sizeof(field), why, sizeof(why)) != 0) {
			fprintf(stderr, "heraldctl user add: --json: %s: %s\n", field, why);
			return EX_DATAERR;
		}
		if (!json_object_is_type(*out, json_type_object)) {
			fprintf(stderr, "heraldctl user add: --json: must be a JSON object\n");
			return EX_DATAERR;
		}
	} else if ((*out = json_object_new_object()) == NULL) {
		return EX_OSERR;
	}
	if (user != NULL) {
		struct json_object *id;

		if (json_object_object_get_ex(*out, "user_id", &id) &&
		    (!json_object_is_type(id, json_type_string) ||
		    strcmp(json_object_get_string(id), user) != 0)) {
			fprintf(stderr, "heraldctl user add: USER '%s' and --json's user_id differ\n", user);
			return EX_USAGE;
		}
		json_object_object_add(*out, "user_id", json_object_new_string(user));
	}
	for (f = 0; f < UF__N; f++)
		if (val[f] != NULL)
			json_object_object_add(*out, user_fields[f], json_object_new_string(val[f]));
	if (quiet != NULL)
		json_object_object_add(*out, "quiet_hours", json_object_new_string(quiet));
	return 0;
}

/* user_add - "user add USER [--FIELD VALUE...] | --json RECORD" */
static int user_add(const char *conf, int argc, char **argv)
{
	const char *val[UF__N] = { NULL }, *json = NULL, *quiet = NULL, *pos[1];
	const struct ctl_opt opts[] = {
		{ "--first-name", &val[UF_FIRST], NULL }, { "--last-name", &val[UF_LAST], NULL },
		{ "--email", &val[UF_EMAIL], NULL }, { "--phone", &val[UF_PHONE], NULL },
		{ "--timezone", &val[UF_TZ], NULL }, { "--locale", &val[UF_LOCALE], NULL },
		{ "--webhook-url", &val[UF_WEBHOOK], NULL }, { "--quiet-hours", &quiet, NULL },
		{ "--json", &json, NULL }, { NULL, NULL, NULL }
	};
	struct json_object *o = NULL;
	struct user_rec r;
	enum user_result res;
	struct conf c = { 0 };
	struct db *db = NULL;
	char field[128], why[256];
	int np, rc;

	if ((rc = ctl_args("user add", user_usage, argc - 1, argv + 1, opts, pos, 1, &np)) != 0)
		return rc == CTL_HELP ? EX_OK : rc;
	if (np == 0 && json == NULL)
		return ctl_usage("user add", user_usage, "USER is required");
	if ((rc = user_opt_json(json, np ? pos[0] : NULL, val, quiet, &o)) != 0)
		goto out;
	if ((rc = ctl_conf(conf, &c)) != 0)
		goto out;
	if (user_parse(&c, o, &r, field, sizeof(field), why, sizeof(why)) != 0) {
		char *p;

		if (json != NULL) {
			fprintf(stderr, "heraldctl user add: --json: %s: %s\n", field, why);
		} else if (strcmp(field, "user_id") == 0) {
			fprintf(stderr, "heraldctl user add: USER: %s\n", why);
		} else {
			for (p = field; *p; p++)
				if (*p == '_')
					*p = '-';
			fprintf(stderr, "heraldctl user add: --%s: %s\n", field, why);
		}
		rc = EX_DATAERR;
		goto out;
	}
	if ((rc = ctl_db_open(conf, user_stmts, U__N, &db)) != 0)
		goto out;
	if ((rc = user_put(db, &r, USER_ADD, &res)) != 0) {
		rc = ctl_db_fail(db, rc);
		goto out;
	}
	if (res == USER_EXISTS) {
		fprintf(stderr, "heraldctl user add: user '%s' already exists (user import updates"
		    " a user)\n", r.id);
		rc = 1;
		goto out;
	}
	printf("added user %s\n", r.id);
out:
	db_close(db);
	conf_free(&c);
	json_object_put(o);
	return rc;
}

/* One line of an import batch: its record, or why it was rejected. */
struct user_line {
	unsigned long line;
	struct json_object *o;       /* the parsed line (R borrows from it), or NULL */
	struct user_rec r;
	char *err;                   /* "FIELD: WHY" of a rejected line, or NULL */
	enum user_result res;
};

/* An import: the file, its counts, and the batch of lines not yet committed. */
struct user_imp {
	struct db *db;
	const struct conf *c;
	const char *file;
	unsigned long n[5];          /* by enum user_result; [4] rejected */
	struct user_line *b;         /* USER_BATCH entries */
	size_t nb;
};

/* user_line_reject - mark L rejected with FIELD and WHY; 0, or -1 out of memory */
static int user_line_reject(struct user_line *l, const char *field, const char *why)
{
	size_t len = strlen(field) + strlen(why) + 3;

	free(l->err);
	if ((l->err = malloc(len)) == NULL)
		return -1;
	snprintf(l->err, len, "%s: %s", field, why);
	json_object_put(l->o);
	l->o = NULL;
	return 0;
}

/* user_batch_reset - release the batch's lines */
static void user_batch_reset(struct user_imp *im)
{
	size_t i;

	for (i = 0; i < im->nb; i++) {
		json_object_put(im->b[i].o);
		free(im->b[i].err);
	}
	im->nb = 0;
}

/* user_batch_report - print the rejected lines of the batch up to (not with) entry END */
static void user_batch_report(const struct user_imp *im, size_t end)
{
	size_t i;

	for (i = 0; i < end; i++)
		if (im->b[i].err != NULL)
			fprintf(stderr, "%s:%lu: %s\n", im->file, im->b[i].line, im->b[i].err);
}

/* user_batch_run - write the batch's records in one transaction; 0, 1 when a record was
 * rejected by the database (marked: run again), DB_ERETRY, or an EX_ code (printed) */
static int user_batch_run(struct user_imp *im)
{
	char why[512] = "";
	size_t i;
	int rc, ex;

	if ((rc = db_begin(im->db)) != 0)
		goto fail;
	for (i = 0; i < im->nb; i++) {
		struct user_line *l = &im->b[i];

		if (l->o == NULL)
			continue;
		if ((rc = user_write(im->db, &l->r, USER_IMPORT, &l->res)) == 0)
			continue;
		snprintf(why, sizeof(why), "%s", db_error(im->db));   /* before the rollback */
		ex = rc == DB_ERETRY ? EX_TEMPFAIL : ctl_db_fail(im->db, rc);
		db_rollback(im->db);
		if (ex == EX_DATAERR)   /* this record only: mark it, run the batch again without it */
			return user_line_reject(l, "database", why) == 0 ? 1 : EX_OSERR;
		goto stop;
	}
	if ((rc = db_commit(im->db)) == 0)
		return 0;
fail:
	snprintf(why, sizeof(why), "%s", db_error(im->db));
	ex = rc == DB_ERETRY ? EX_TEMPFAIL : ctl_db_fail(im->db, rc);
stop:
	if (rc == DB_ERETRY)
		return rc;
	user_batch_report(im, im->nb);
	fprintf(stderr, "%s:%lu: database: %s: import stopped here (lines %lu and later not"
	    " imported)\n", im->file, im->b[0].line, why, im->b[0].line);
	return ex;
}

/* user_batch_flush - commit the batch (again after a lost connection or deadlock, without the
 * records the database rejected), then report its rejected lines and count; 0 or an EX_ code */
static int user_batch_flush(struct user_imp *im)
{
	size_t i;
	int rc, tries = 0;

	if (im->nb == 0)
		return 0;
	while ((rc = user_batch_run(im)) == 1 || rc == DB_ERETRY) {
		if (rc == DB_ERETRY && ++tries >= USER_TRIES) {
			user_batch_report(im, im->nb);
			fprintf(stderr, "%s:%lu: database: %s: import stopped here (lines %lu and later"
			    " not imported)\n", im->file, im->b[0].line, db_error(im->db), im->b[0].line);
			return EX_TEMPFAIL;
		}
	}
	if (rc != 0)
		return rc;
	user_batch_report(im, im->nb);
	for (i = 0; i < im->nb; i++)
		im->n[im->b[i].o != NULL ? (int)im->b[i].res : 4]++;
	user_batch_reset(im);
	return 0;
}

/* user_import_line - parse line LINE (BUF, LEN bytes) into the batch, flushing a full batch;
 * 0, or an EX_ code when the database failed (the import stops) */
static int user_import_line(struct user_imp *im, unsigned long line, const char *buf, size_t len)
{
	struct user_line *l = &im->b[im->nb++];
	char field[128], why[256];

	memset(l, 0, sizeof(*l));
	l->line = line;
	if (len > USER_LINE_MAX) {
		snprintf(field, sizeof(field), "json");
		snprintf(why, sizeof(why), "line longer than 1 MiB");
	} else if (ctl_json_parse(buf, len, &l->o, field, sizeof(field), why, sizeof(why)) == 0 &&
	    user_parse(im->c, l->o, &l->r, field, sizeof(field), why, sizeof(why)) == 0) {
		field[0] = '\0';
	}
	if (field[0] != '\0' && user_line_reject(l, field, why) != 0)
		return EX_OSERR;
	return im->nb == USER_BATCH ? user_batch_flush(im) : 0;
}

/* user_import - "user import FILE|-": JSON Lines of records, USER_BATCH lines per transaction */
static int user_import(const char *conf, int argc, char **argv)
{
	const char *pos[1];
	struct user_imp im = { 0 };
	unsigned long line = 0;
	struct conf c = { 0 };
	FILE *fp = NULL;
	char *buf = NULL;
	size_t cap = 0;
	ssize_t len;
	int np, rc;

	if ((rc = ctl_args("user import", user_usage, argc - 1, argv + 1, NULL, pos, 1, &np)) != 0)
		return rc == CTL_HELP ? EX_OK : rc;
	if (np == 0)
		return ctl_usage("user import", user_usage, "FILE is required (- for stdin)");
	im.file = strcmp(pos[0], "-") == 0 ? "stdin" : pos[0];
	im.c = &c;
	if ((fp = strcmp(pos[0], "-") == 0 ? stdin : fopen(pos[0], "r")) == NULL) {
		fprintf(stderr, "heraldctl user import: %s: %s\n", pos[0], strerror(errno));
		return EX_NOINPUT;
	}
	if ((im.b = calloc(USER_BATCH, sizeof(*im.b))) == NULL) {
		fprintf(stderr, "heraldctl user import: out of memory\n");
		rc = EX_OSERR;
		goto out;
	}
	if ((rc = ctl_conf(conf, &c)) != 0 || (rc = ctl_db_open(conf, user_stmts, U__N, &im.db)) != 0)
		goto out;
	while ((len = getline(&buf, &cap, fp)) >= 0) {
		line++;
		while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
			buf[--len] = '\0';
		if (strspn(buf, " \t") == (size_t)len)
			continue;
		if ((rc = user_import_line(&im, line, buf, (size_t)len)) != 0)
			goto out;
	}
	if (ferror(fp)) {
		fprintf(stderr, "heraldctl user import: %s: %s\n", pos[0], strerror(errno));
		rc = EX_IOERR;
		goto out;
	}
	if ((rc = user_batch_flush(&im)) != 0)
		goto out;
	printf("%s: %lu added, %lu updated, %lu unchanged, %lu rejected\n", im.file,
	    im.n[USER_ADDED], im.n[USER_UPDATED], im.n[USER_UNCHANGED], im.n[4]);
	rc = im.n[4] > 0 ? 1 : 0;
out:
	if (im.b != NULL)
		user_batch_reset(&im);
	free(im.b);
	free(buf);
	if (fp != NULL && fp != stdin)
		fclose(fp);
	db_close(im.db);
	conf_free(&c);
	return rc;
}

/* user_show_rest - add devices, preferences and quiet hours of user ID to O */
static int user_show_rest(struct db *db, const char *id, struct json_object *o)
{
	struct json_object *devs = json_object_new_array(), *prefs = json_object_new_object();
	char q[16];
	int rc, fr;

	json_object_object_add(o, "devices", devs);
	json_object_object_add(o, "preferences", prefs);
	if ((rc = db_exec(db, U_DEVICES, DB_ARGS(db_str(id)))) != 0)
		return rc;
	while ((fr = db_fetch(db, U_DEVICES)) == 1) {
		struct json_object *d = json_object_new_object();

		json_object_object_add(d, "platform",
		    json_object_new_string(db_col_str(db, U_DEVICES, 0, NULL)));
		json_object_object_add(d, "token", json_object_new_string(db_col_str(db, U_DEVICES, 1, NULL)));
		json_object_array_add(devs, d);
	}
	if (fr < 0 || (rc = db_exec(db, U_PREFS, DB_ARGS(db_str(id)))) != 0)
		return fr < 0 ? fr : rc;
	while ((fr = db_fetch(db, U_PREFS)) == 1)
		json_object_object_add(prefs, db_col_str(db, U_PREFS, 0, NULL),
		    json_object_new_boolean(db_col_i64(db, U_PREFS, 1) != 0));
	if (fr < 0 || (rc = db_exec(db, U_QUIET, DB_ARGS(db_str(id)))) != 0)
		return fr < 0 ? fr : rc;
	if ((fr = db_fetch(db, U_QUIET)) == 1) {
		int s = (int)db_col_i64(db, U_QUIET, 0), e = (int)db_col_i64(db, U_QUIET, 1);

		snprintf(q, sizeof(q), "%02d:%02d-%02d:%02d", s / 60 % 24, s % 60, e / 60 % 24, e % 60);
		json_object_object_add(o, "quiet_hours", json_object_new_string(q));
	}
	return fr < 0 ? fr : 0;
}

/* user_show - "user show USER": the §8 record */
static int user_show(const char *conf, int argc, char **argv)
{
	const char *pos[1], *format = NULL;
	const struct ctl_opt opts[] = { { "--format", &format, NULL }, { NULL, NULL, NULL } };
	struct json_object *o = NULL, *paused;
	struct db *db = NULL;
	enum ctl_fmt fmt;
	int np, rc, f, fr;

	if ((rc = ctl_args("user show", user_usage, argc - 1, argv + 1, opts, pos, 1, &np)) != 0)
		return rc == CTL_HELP ? EX_OK : rc;
	if (np == 0)
		return ctl_usage("user show", user_usage, "USER is required");
	if (!ctl_user_id_ok(pos[0]))
		return ctl_usage("user show", user_usage, "USER: %s", USER_ID_RULE);
	if ((rc = ctl_fmt_parse("user show", user_usage, format, &fmt)) != 0)
		return rc;
	if ((rc = ctl_db_open(conf, user_stmts, U__N, &db)) != 0)
		return rc;
	if ((rc = db_exec(db, U_GET, DB_ARGS(db_str(pos[0])))) != 0 ||
	    (fr = db_fetch(db, U_GET)) < 0) {
		rc = ctl_db_fail(db, rc ? rc : DB_ERR);
		goto out;
	}
	if (fr == 0) {
		fprintf(stderr, "heraldctl user show: no user '%s'\n", pos[0]);
		rc = 1;
		goto out;
	}
	o = json_object_new_object();
	json_object_object_add(o, "user_id", json_object_new_string(db_col_str(db, U_GET, 0, NULL)));
	for (f = 0; f < UF__N; f++) {
		const char *s = db_col_str(db, U_GET, (unsigned)f + 1, NULL);

		if (s != NULL)
			json_object_object_add(o, user_fields[f], json_object_new_string(s));
	}
	paused = db_col_null(db, U_GET, 8) ? NULL : ctl_time(db_col_time(db, U_GET, 8));
	rc = user_show_rest(db, pos[0], o);
	if (paused != NULL)
		json_object_object_add(o, "paused_until", paused);
	if (rc != 0) {
		rc = ctl_db_fail(db, rc);
		goto out;
	}
	ctl_output(o, fmt, "field");
	o = NULL;
out:
	json_object_put(o);
	db_close(db);
	return rc;
}

/* user_delete - "user delete USER [--erase-history]" */
static int user_delete(const char *conf, int argc, char **argv)
{
	const char *pos[1];
	bool erase = false;
	const struct ctl_opt opts[] = { { "--erase-history", NULL, &erase }, { NULL, NULL, NULL } };
	uint64_t users, rows = 0, got;
	struct db *db = NULL;
	int np, rc;

	if ((rc = ctl_args("user delete", user_usage, argc - 1, argv + 1, opts, pos, 1, &np)) != 0)
		return rc == CTL_HELP ? EX_OK : rc;
	if (np == 0)
		return ctl_usage("user delete", user_usage, "USER is required");
	if (!ctl_user_id_ok(pos[0]))
		return ctl_usage("user delete", user_usage, "USER: %s", USER_ID_RULE);
	if ((rc = ctl_db_open(conf, user_stmts, U__N, &db)) != 0)
		return rc;
	if ((rc = db_exec(db, U_DELETE, DB_ARGS(db_str(pos[0])))) != 0) {
		rc = ctl_db_fail(db, rc);
		goto out;
	}
	users = db_affected(db, U_DELETE);
	do {                 /* bounded batches: no long lock on notifications */
		if (!erase)
			break;
		if ((rc = db_exec(db, U_ERASE, DB_ARGS(db_str(pos[0])))) != 0) {
			rc = ctl_db_fail(db, rc);
			goto out;
		}
		rows += got = db_affected(db, U_ERASE);
	} while (got == USER_DELETE_BATCH);
	if (users == 0 && rows == 0) {
		fprintf(stderr, "heraldctl user delete: no user '%s'%s\n", pos[0],
		    erase ? " and no history" : "");
		rc = 1;
		goto out;
	}
	if (users == 0)
		printf("no user %s; deleted its history", pos[0]);
	else
		printf("deleted user %s", pos[0]);
	if (erase)
		printf(" and %llu notification row%s", (unsigned long long)rows, rows == 1 ? "" : "s");
	printf("\n");
out:
	db_close(db);
	return rc;
}

/* user_cmd - "heraldctl user add|show|import|delete" */
int user_cmd(const char *conf, int argc, char **argv)
{
	if (argc < 2)
		return ctl_usage("user", user_usage, "a subcommand is required");
	if (strcmp(argv[1], "add") == 0)
		return user_add(conf, argc - 1, argv + 1);
	if (strcmp(argv[1], "show") == 0)
		return user_show(conf, argc - 1, argv + 1);
	if (strcmp(argv[1], "import") == 0)
		return user_import(conf, argc - 1, argv + 1);
	if (strcmp(argv[1], "delete") == 0)
		return user_delete(conf, argc - 1, argv + 1);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(user_usage, stdout);
		return EX_OK;
	}
	return ctl_usage("user", user_usage, "unknown subcommand '%s'", argv[1]);
}
