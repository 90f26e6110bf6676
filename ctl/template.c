/* template - "heraldctl template add|show|list|test" (SPEC §6): stored templates
 *
 * A template is stored per (name, channel, locale); locale '' is the default, the fallback of
 * workers/render.c (the recipient's locale, then its language part, then ''). Every add is a new
 * row with version = the highest + 1 for that (name, channel, locale): the version is read, the
 * row inserted, and a concurrent add that took the same number first makes the insert fail on
 * the primary key, so it is read and tried again (no locks held, no deadlock). "test" renders
 * with workers/render.c's render_note, as a worker would, and sends nothing. Static functions
 * are tpl_ because template_ is workers/template.c's prefix in the same program.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <json-c/json.h>

#include "admit.h"
#include "codec.h"
#include "conf.h"
#include "ctl.h"
#include "db.h"
#include "jsoncheck.h"
#include "render.h"
#include "template.h"
#include "tzday.h"

#define TPL_NAME_MAX 64          /* a request's "template": [A-Za-z0-9_.-]{1,64} */
#define TPL_LOCALE_MAX 35        /* templates.locale */
#define TPL_SUBJECT_MAX 65535    /* bytes: templates.subject is TEXT */
#define TPL_TEXT_MAX RENDER_MAX_OUT  /* bytes of a body or html: what one field may render to */
#define TPL_TRIES 20             /* adds racing for the same next version */

enum { T_MAX, T_PUT, T_LATEST, T_VERSION, T_LIST, T_USER, T__N };

static const struct db_stmt tpl_stmts[T__N] = {
	[T_MAX] = { "template_max",
		"SELECT COALESCE(MAX(version), 0) FROM templates"
		" WHERE name = ? AND channel = ? AND locale = ?", true },
	/* a duplicate key is the concurrent add that took this version: read and try again */
	[T_PUT] = { "template_put",
		"INSERT INTO templates (name, channel, locale, version, subject, body, html, data)"
		" VALUES (?, ?, ?, ?, ?, ?, ?, ?)" },
	[T_LATEST] = { "template_latest",
		"SELECT version, subject, body, html, data, created_at FROM templates"
		" WHERE name = ? AND channel = ? AND locale = ? ORDER BY version DESC LIMIT 1", true },
	[T_VERSION] = { "template_version",
		"SELECT version, subject, body, html, data, created_at FROM templates"
		" WHERE name = ? AND channel = ? AND locale = ? AND version = ?", true },
	/* a prefix compared as a string, not LIKE: '_' and '%' in it mean themselves */
	[T_LIST] = { "template_list",
		"SELECT name, channel, locale, MAX(version), COUNT(*), MAX(created_at) FROM templates"
		" WHERE (? = '' OR channel = ?) AND LEFT(name, CHAR_LENGTH(?)) = ?"
		" GROUP BY name, channel, locale ORDER BY name, channel, locale", true },
	/* the profile admit.c gives templates (admit_user_row) */
	[T_USER] = { "template_user",
		"SELECT first_name, last_name, email, phone, timezone, locale FROM users"
		" WHERE user_id = ?", true },
};

static const char tpl_usage[] =
	"usage: heraldctl template add NAME --channel CH [--locale L] [--subject TEXT]\n"
	"           [--body TEXT | --body-file FILE] [--html TEXT | --html-file FILE] [--data JSON]\n"
	"       heraldctl template show NAME --channel CH [--locale L] [--version N]\n"
	"       heraldctl template list [--channel CH] [--name PREFIX] [--format json|table]\n"
	"       heraldctl template test NAME --channel CH --user USER [--data JSON] [--locale L]\n"
	"  NAME: 1-64 of A-Z a-z 0-9 _ . - (a request's \"template\"). CH: email, sms, push, webhook.\n"
	"  L: a locale tag (letters, digits, - and _); none or '' is the default locale, the\n"
	"  fallback. Fields: email --subject and --body and/or --html; sms --body; push --subject\n"
	"  (the title) and/or --body, --data (a JSON object, sent as is); webhook --subject (the\n"
	"  event). Each text is a template: {{var}} {{{raw}}} {{#s}}...{{/s}} {{^s}}...{{/s}}.\n"
	"  FILE - is stdin. add stores the next version of (NAME, CH, L); show prints the latest\n"
	"  (or version N) of exactly that locale; list one line per (NAME, CH, L); test renders\n"
	"  for USER as a worker would (with locale L instead of USER's) and sends nothing.\n";

/* The stored fields, in the order of the columns and of the options. */
enum { TF_SUBJECT, TF_BODY, TF_HTML, TF_DATA, TF__N };

static const char *const tpl_fields[TF__N] = { "subject", "body", "html", "data" };

/* Which fields each channel has (render.c's render_keys), as bits of 1 << TF_. */
static const unsigned tpl_channel_fields[CODEC_CH_COUNT] = {
	[CODEC_CH_EMAIL] = 1u << TF_SUBJECT | 1u << TF_BODY | 1u << TF_HTML,
	[CODEC_CH_SMS] = 1u << TF_BODY,
	[CODEC_CH_PUSH] = 1u << TF_SUBJECT | 1u << TF_BODY | 1u << TF_DATA,
	[CODEC_CH_WEBHOOK] = 1u << TF_SUBJECT,
};

/* One template's fields, as given to add or read by show. */
struct tpl_rec {
	char *f[TF__N];          /* NULL: none */
	size_t len[TF__N];
	const char *origin[TF__N];   /* "--body" or "--body-file FILE", for messages */
};

static int tpl_base;             /* where tpl_stmts start in the connection's registry */
static int tpl_render_base;      /* where render_stmts start */

/* tpl_open - connect with this file's statements and render.c's into *DB (*REG to free) */
static int tpl_open(const char *conf, struct db_stmt **reg, struct db **db)
{
	const struct db_module mods[] = {
		{ tpl_stmts, T__N, &tpl_base },
		{ render_stmts, render_nstmts, &tpl_render_base },
	};
	int n;

	*db = NULL;
	if ((n = db_registry(mods, sizeof mods / sizeof mods[0], reg)) < 0)
		return EX_OSERR;
	return ctl_db_open(conf, *reg, (size_t)n, db);
}

/* tpl_close - close DB and free the registry REG */
static void tpl_close(struct db *db, struct db_stmt *reg)
{
	db_close(db);
	free(reg);
}

/* tpl_channel - the channel named S, or -1 with the error printed */
static int tpl_channel(const char *cmd, const char *s)
{
	int ch;

	if (s == NULL) {
		ctl_usage(cmd, tpl_usage, "--channel is required");
		return -1;
	}
	if ((ch = codec_channel_parse(s, strlen(s))) < 0) {
		ctl_usage(cmd, tpl_usage, "--channel '%s': unknown channel (email, sms, push, webhook)",
		    s);
		return -1;
	}
	return ch;
}

/* tpl_name_ok - NAME is usable in a request: [A-Za-z0-9_.-]{1,64} */
static bool tpl_name_ok(const char *cmd, const char *name)
{
	if (codec_name_ok(name))
		return true;
	ctl_usage(cmd, tpl_usage, "NAME '%s': must be 1-%d characters of A-Z a-z 0-9 _ . - (as a"
	    " request's \"template\")", name, TPL_NAME_MAX);
	return false;
}

/* tpl_locale_ok - L is '' (the default) or a locale tag: letters, digits, - and _, at most 35 */
static bool tpl_locale_ok(const char *cmd, const char *l)
{
	if (strlen(l) <= TPL_LOCALE_MAX && l[strspn(l, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_")] == '\0')
		return true;
	ctl_usage(cmd, tpl_usage, "--locale '%s': not a locale tag (letters, digits, - and _, at"
	    " most %d; '' for the default)", l, TPL_LOCALE_MAX);
	return false;
}

/* tpl_syntax - 0 when SRC (LEN bytes) parses as a template, else -1 with WHY ("line L, byte B:
 * ..."). template.h has no parse-only call; template_render lexes the whole text first (every
 * syntax error surfaces there) and only then renders, so rendered without any variables a
 * well-formed template either succeeds or stops at its first variable, "missing variable". */
static int tpl_syntax(const char *src, size_t len, char *why, size_t whylen)
{
	const char *p;
	char *out = NULL;
	size_t outlen;

	if (template_render(src, len, NULL, 0, false, len + 1, &out, &outlen, why, whylen) == 0) {
		free(out);
		return 0;
	}
	if ((p = strstr(why, ": ")) != NULL && strncmp(p + 2, "missing variable \"", 18) == 0)
		return 0;
	return -1;
}

/* tpl_read_file - the whole of FILE ("-": stdin), at most MAX bytes, into *OUT and *LEN;
 * 0, or an EX_ code with the reason printed naming ORIGIN ("--body-file FILE") */
static int tpl_read_file(const char *origin, const char *file, size_t max, char **out,
    size_t *len)
{
	FILE *fp = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
	char *buf;
	size_t n = 0;
	int rc = 0;

	*out = NULL;
	if (fp == NULL) {
		fprintf(stderr, "heraldctl template add: %s: %s\n", origin, strerror(errno));
		return EX_NOINPUT;
	}
	if ((buf = malloc(max + 2)) == NULL) {
		rc = EX_OSERR;
		goto out;
	}
	n = fread(buf, 1, max + 1, fp);
	if (ferror(fp)) {
		fprintf(stderr, "heraldctl template add: %s: %s\n", origin, strerror(errno));
		rc = EX_IOERR;
	} else if (n > max) {
		fprintf(stderr, "heraldctl template add: %s: longer than %zu bytes\n", origin, max);
		rc = EX_DATAERR;
	}
out:
	if (fp != stdin)
		fclose(fp);
	if (rc != 0) {
		free(buf);
		return rc;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* tpl_text_check - field F of R (a text) is UTF-8 within its size, a subject on one line, and
 * a template; 0 or EX_DATAERR printed */
static int tpl_text_check(const struct tpl_rec *r, int f)
{
	const char *s = r->f[f];
	size_t max = f == TF_SUBJECT ? TPL_SUBJECT_MAX : TPL_TEXT_MAX, i;
	char why[300];

	if (r->len[f] == 0) {
		fprintf(stderr, "heraldctl template add: %s: empty (leave the field out instead)\n",
		    r->origin[f]);
		return EX_DATAERR;
	}
	if (r->len[f] > max) {
		fprintf(stderr, "heraldctl template add: %s: longer than %zu bytes\n", r->origin[f], max);
		return EX_DATAERR;
	}
	if (!jsoncheck_utf8_valid(s, r->len[f])) {
		fprintf(stderr, "heraldctl template add: %s: not UTF-8 text (or holds a NUL byte)\n",
		    r->origin[f]);
		return EX_DATAERR;
	}
	for (i = 0; f == TF_SUBJECT && i < r->len[f]; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			fprintf(stderr, "heraldctl template add: %s: byte %zu: a control character (a"
			    " subject is one line)\n", r->origin[f], i);
			return EX_DATAERR;
		}
	if (tpl_syntax(s, r->len[f], why, sizeof why) != 0) {
		fprintf(stderr, "heraldctl template add: %s: %s\n", r->origin[f], why);
		return EX_DATAERR;
	}
	return 0;
}

/* tpl_data_check - --data of R is a JSON object of at most MAX bytes; 0 or EX_DATAERR printed */
static int tpl_data_check(const struct tpl_rec *r, size_t max)
{
	struct json_object *o;
	char field[JSONCHECK_PATH_MAX], why[256];
	bool obj;

	if (r->len[TF_DATA] > max) {
		fprintf(stderr, "heraldctl template add: --data: longer than %zu bytes (limits."
		    "push_payload_max)\n", max);
		return EX_DATAERR;
	}
	if (ctl_json_parse(r->f[TF_DATA], r->len[TF_DATA], &o, field, sizeof field, why,
	    sizeof why) != 0) {
		fprintf(stderr, "heraldctl template add: --data: %s: %s\n", field, why);
		return EX_DATAERR;
	}
	obj = json_object_is_type(o, json_type_object);
	json_object_put(o);
	if (!obj) {
		fprintf(stderr, "heraldctl template add: --data: must be a JSON object\n");
		return EX_DATAERR;
	}
	return 0;
}

/* tpl_check - R's fields are those of channel CH, the required ones given, each valid (data
 * within C's push payload limit); 0 or an EX_ code printed */
static int tpl_check(const struct conf *c, const struct tpl_rec *r, int ch)
{
	static const char *const required[CODEC_CH_COUNT] = {
		[CODEC_CH_EMAIL] = "email templates need --subject and --body and/or --html",
		[CODEC_CH_SMS] = "sms templates need --body",
		[CODEC_CH_PUSH] = "push templates need --subject (the title) and/or --body",
		[CODEC_CH_WEBHOOK] = "webhook templates need --subject (the event)",
	};
	unsigned have = 0;
	int f, rc;

	for (f = 0; f < TF__N; f++) {
		if (r->f[f] == NULL)
			continue;
		if (!(tpl_channel_fields[ch] & 1u << f))
			return ctl_usage("template add", tpl_usage, "--%s: %s templates have no %s",
			    tpl_fields[f], codec_channel_name(ch), tpl_fields[f]);
		have |= 1u << f;
	}
	if ((ch == CODEC_CH_EMAIL && (!(have & 1u << TF_SUBJECT) ||
	    !(have & (1u << TF_BODY | 1u << TF_HTML)))) ||
	    (ch == CODEC_CH_SMS && !(have & 1u << TF_BODY)) ||
	    (ch == CODEC_CH_PUSH && !(have & (1u << TF_SUBJECT | 1u << TF_BODY))) ||
	    (ch == CODEC_CH_WEBHOOK && !(have & 1u << TF_SUBJECT)))
		return ctl_usage("template add", tpl_usage, "%s", required[ch]);
	for (f = 0; f < TF_DATA; f++)
		if (r->f[f] != NULL && (rc = tpl_text_check(r, f)) != 0)
			return rc;
	if (r->f[TF_DATA] != NULL)
		return tpl_data_check(r, (size_t)c->limits.push_payload_max);
	return 0;
}

/* tpl_field - field F of R from the option TEXT or the file FILE (one of them) */
static int tpl_field(struct tpl_rec *r, int f, const char *text, const char *file, char *origin,
    size_t olen)
{
	if (text != NULL && file != NULL)
		return ctl_usage("template add", tpl_usage, "--%s and --%s-file: give one of them",
		    tpl_fields[f], tpl_fields[f]);
	if (text != NULL) {
		snprintf(origin, olen, "--%s", tpl_fields[f]);
		r->origin[f] = origin;
		r->len[f] = strlen(text);
		return (r->f[f] = strdup(text)) == NULL ? EX_OSERR : 0;
	}
	if (file == NULL)
		return 0;
	snprintf(origin, olen, "--%s-file %s", tpl_fields[f], file);
	r->origin[f] = origin;
	return tpl_read_file(origin, file, f == TF_SUBJECT ? TPL_SUBJECT_MAX : TPL_TEXT_MAX,
	    &r->f[f], &r->len[f]);
}

/* tpl_rec_free - release R's fields */
static void tpl_rec_free(struct tpl_rec *r)
{
	int f;

	for (f = 0; f < TF__N; f++)
		free(r->f[f]);
	memset(r, 0, sizeof *r);
}

/* tpl_put - store R as the next version of (NAME, CH, LOCALE) into *VERSION; 0 or a DB_ error */
static int tpl_put(struct db *db, const char *name, const char *ch, const char *locale,
    const struct tpl_rec *r, unsigned *version)
{
	int tries, rc = DB_EDUP;
	int64_t v;

	for (tries = 0; tries < TPL_TRIES && rc == DB_EDUP; tries++) {
		if ((rc = db_exec(db, tpl_base + T_MAX, DB_ARGS(db_str(name), db_str(ch),
		    db_str(locale)))) != 0)
			return rc;
		if ((rc = db_fetch(db, tpl_base + T_MAX)) != 1)
			return rc < 0 ? rc : DB_ERR;
		v = db_col_i64(db, tpl_base + T_MAX, 0) + 1;
		while (db_fetch(db, tpl_base + T_MAX) == 1)
			;
		rc = db_exec(db, tpl_base + T_PUT, DB_ARGS(db_str(name), db_str(ch), db_str(locale),
		    db_i64(v), db_strn(r->f[TF_SUBJECT], r->len[TF_SUBJECT]),
		    db_strn(r->f[TF_BODY], r->len[TF_BODY]), db_strn(r->f[TF_HTML], r->len[TF_HTML]),
		    db_strn(r->f[TF_DATA], r->len[TF_DATA])));
		*version = (unsigned)v;
	}
	return rc;
}

/* tpl_key - {"name","channel","locale"} of a template */
static struct json_object *tpl_key(const char *name, const char *ch, const char *locale)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "channel", json_object_new_string(ch));
	json_object_object_add(o, "locale", json_object_new_string(locale));
	return o;
}

/* tpl_add - "template add NAME --channel CH [--locale L] [fields]" */
static int tpl_add(const char *conf, int argc, char **argv)
{
	const char *ch = NULL, *locale = NULL, *subject = NULL, *body = NULL, *body_file = NULL,
	    *html = NULL, *html_file = NULL, *data = NULL, *pos[1];
	const struct ctl_opt opts[] = {
		{ "--channel", &ch, NULL }, { "--locale", &locale, NULL },
		{ "--subject", &subject, NULL }, { "--body", &body, NULL },
		{ "--body-file", &body_file, NULL }, { "--html", &html, NULL },
		{ "--html-file", &html_file, NULL }, { "--data", &data, NULL }, { NULL, NULL, NULL }
	};
	char origin[TF__N][300];
	struct tpl_rec r = { 0 };
	struct conf cf = { 0 };
	struct db_stmt *reg = NULL;
	struct db *db = NULL;
	struct json_object *o;
	unsigned version = 0;
	int np, rc, c;

	if ((rc = ctl_args("template add", tpl_usage, argc, argv, opts, pos, 1, &np)) != 0)
		return rc == CTL_HELP ? EX_OK : rc;
	if (np == 0)
		return ctl_usage("template add", tpl_usage, "NAME is required");
	if (!tpl_name_ok("template add", pos[0]) || (c = tpl_channel("template add", ch)) < 0 ||
	    (locale != NULL && !tpl_locale_ok("template add", locale)))
		return EX_USAGE;
	if (body_file != NULL && html_file != NULL && strcmp(body_file, "-") == 0 &&
	    strcmp(html_file, "-") == 0)
		return ctl_usage("template add", tpl_usage, "stdin (-) can be read once only");
	if ((rc = tpl_field(&r, TF_SUBJECT, subject, NULL, origin[TF_SUBJECT], 300)) != 0 ||
	    (rc = tpl_field(&r, TF_BODY, body, body_file, origin[TF_BODY], 300)) != 0 ||
	    (rc = tpl_field(&r, TF_HTML, html, html_file, origin[TF_HTML], 300)) != 0 ||
	    (rc = tpl_field(&r, TF_DATA, data, NULL, origin[TF_DATA], 300)) != 0 ||
	    (rc = ctl_conf(conf, &cf)) != 0 || (rc = tpl_check(&cf, &r, c)) != 0)
		goto out;
	if ((rc = tpl_open(conf, &reg, &db)) != 0)
		goto out;
	if ((rc = tpl_put(db, pos[0], ch, locale ? locale : "", &r, &version)) != 0) {
		if (rc == DB_EDUP)
			fprintf(stderr, "heraldctl template add: %s: concurrent adds took the next"
			    " version %d times; nothing stored: run it again\n", pos[0], TPL_TRIES);
		rc = rc == DB_EDUP ? EX_TEMPFAIL : ctl_db_fail(db, rc);
		goto out;
	}
	o = tpl_key(pos[0], ch, locale ? locale : "");
	json_object_object_add(o, "version", json_object_new_int64(version));
	ctl_print(o);
out:
	tpl_close(db, reg);
	tpl_rec_free(&r);
	conf_free(&cf);
	return rc;
}

/* tpl_show - "template show NAME --channel CH [--locale L] [--version N]" */
static int tpl_show(const char *conf, int argc, char **argv)
{
	const char *ch = NULL, *locale = NULL, *ver = NULL, *pos[1], *s;
	const struct ctl_opt opts[] = {
		{ "--channel", &ch, NULL }, { "--locale", &locale, NULL },
		{ "--version", &ver, NULL }, { NULL, NULL, NULL }
	};
	struct db_stmt *reg = NULL;
	struct db *db = NULL;
	struct json_object *o;
	long long v = 0;
	char *end;
	size_t len;
	int np, rc, c, f, q;

	if ((rc = ctl_args("template show", tpl_usage, argc, argv, opts, pos, 1, &np)) != 0)
		return rc == CTL_HELP ? EX_OK : rc;
	if (np == 0)
		return ctl_usage("template show", tpl_usage, "NAME is required");
	if (!tpl_name_ok("template show", pos[0]) || (c = tpl_channel("template show", ch)) < 0 ||
	    (locale != NULL && !tpl_locale_ok("template show", locale)))
		return EX_USAGE;
	if (ver != NULL) {
		errno = 0;
		v = strtoll(ver, &end, 10);
		if (ver[0] < '1' || ver[0] > '9' || *end != '\0' || errno != 0 || v > 4294967295LL)
			return ctl_usage("template show", tpl_usage, "--version '%s': not a version"
			    " number (1, 2, ...)", ver);
	}
	if (locale == NULL)
		locale = "";
	if ((rc = tpl_open(conf, &reg, &db)) != 0)
		goto out;
	q = tpl_base + (ver != NULL ? T_VERSION : T_LATEST);
	rc = ver != NULL ? db_exec(db, q, DB_ARGS(db_str(pos[0]), db_str(ch), db_str(locale),
	    db_i64(v))) : db_exec(db, q, DB_ARGS(db_str(pos[0]), db_str(ch), db_str(locale)));
	if (rc != 0 || (rc = db_fetch(db, q)) < 0) {
		rc = ctl_db_fail(db, rc);
		goto out;
	}
	if (rc == 0) {
		fprintf(stderr, "heraldctl template show: no template '%s' for channel %s, locale"
		    " '%s'%s%s\n", pos[0], ch, locale, ver ? ", version " : "", ver ? ver : "");
		rc = 1;
		goto out;
	}
	o = tpl_key(pos[0], ch, locale);
	json_object_object_add(o, "version", json_object_new_int64(db_col_i64(db, q, 0)));
	for (f = 0; f < TF__N; f++) {
		if (!(tpl_channel_fields[c] & 1u << f))
			continue;
		s = db_col_str(db, q, 1 + (unsigned)f, &len);
		json_object_object_add(o, tpl_fields[f], s == NULL ? NULL : f == TF_DATA ?
		    ctl_json_text(s, len) : json_object_new_string_len(s, (int)len));
	}
	json_object_object_add(o, "created_at", ctl_time(db_col_time(db, q, 5)));
	while (db_fetch(db, q) == 1)
		;
	ctl_print(o);
	rc = 0;
out:
	tpl_close(db, reg);
	return rc;
}

/* One line of "template list". */
struct tpl_row {
	char name[TPL_NAME_MAX * 4 + 1], channel[17], locale[TPL_LOCALE_MAX + 1], at[40];
	long long version, count;
};

/* tpl_table - print the N rows ROWS as a table with a header */
static void tpl_table(const struct tpl_row *rows, size_t n)
{
	int wn = 4, wc = 7, wl = 9, k;
	size_t i;

	for (i = 0; i < n; i++) {
		if ((k = (int)strlen(rows[i].name)) > wn)
			wn = k;
		if ((k = (int)strlen(rows[i].locale)) > wl)
			wl = k;
	}
	printf("%-*s  %-*s  %-*s  %7s  %8s  %s\n", wn, "NAME", wc, "CHANNEL", wl, "LOCALE",
	    "VERSION", "VERSIONS", "UPDATED");
	for (i = 0; i < n; i++)
		printf("%-*s  %-*s  %-*s  %7lld  %8lld  %s\n", wn, rows[i].name, wc, rows[i].channel,
		    wl, rows[i].locale[0] ? rows[i].locale : "(default)", rows[i].version,
		    rows[i].count, rows[i].at);
}

/* tpl_list - "template list [--channel CH] [--name PREFIX] [--format json|table]" */
static int tpl_list(const char *conf, int argc, char **argv)
{
	const char *ch = NULL, *prefix = NULL, *format = NULL, *s;
	const struct ctl_opt opts[] = {
		{ "--channel", &ch, NULL }, { "--name", &prefix, NULL },
		{ "--format", &format, NULL }, { NULL, NULL, NULL }
	};
	struct tpl_row *rows = NULL, *nr;
	struct db_stmt *reg = NULL;
	struct db *db = NULL;
	struct json_object *o;
	size_t n = 0, cap = 0;
	bool table;
	int np, rc, q;

	if ((rc = ctl_args("template list", tpl_usage, argc, argv, opts, NULL, 0, &np)) != 0)
		return rc == CTL_HELP ? EX_OK : rc;
	if (ch != NULL && tpl_channel("template list", ch) < 0)
		return EX_USAGE;
	if (format != NULL && strcmp(format, "json") != 0 && strcmp(format, "table") != 0)
		return ctl_usage("template list", tpl_usage, "--format '%s': json or table", format);
	if (prefix != NULL && strlen(prefix) > TPL_NAME_MAX)
		return ctl_usage("template list", tpl_usage, "--name: longer than a name (%d)",
		    TPL_NAME_MAX);
	table = format != NULL && strcmp(format, "table") == 0;
	if ((rc = tpl_open(conf, &reg, &db)) != 0)
		goto out;
	q = tpl_base + T_LIST;
	if ((rc = db_exec(db, q, DB_ARGS(db_str(ch ? ch : ""), db_str(ch ? ch : ""),
	    db_str(prefix ? prefix : ""), db_str(prefix ? prefix : "")))) != 0) {
		rc = ctl_db_fail(db, rc);
		goto out;
	}
	while ((rc = db_fetch(db, q)) == 1) {
		struct tpl_row *r;

		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((nr = realloc(rows, cap * sizeof *rows)) == NULL) {
				rc = EX_OSERR;
				goto out;
			}
			rows = nr;
		}
		r = &rows[n++];
		snprintf(r->name, sizeof r->name, "%s", (s = db_col_str(db, q, 0, NULL)) ? s : "");
		snprintf(r->channel, sizeof r->channel, "%s", (s = db_col_str(db, q, 1, NULL)) ? s : "");
		snprintf(r->locale, sizeof r->locale, "%s", (s = db_col_str(db, q, 2, NULL)) ? s : "");
		r->version = (long long)db_col_i64(db, q, 3);
		r->count = (long long)db_col_i64(db, q, 4);
		snprintf(r->at, sizeof r->at, "%s", json_object_get_string(o = ctl_time(db_col_time(db,
		    q, 5))));
		json_object_put(o);
		if (!table) {
			o = tpl_key(r->name, r->channel, r->locale);
			json_object_object_add(o, "version", json_object_new_int64(r->version));
			json_object_object_add(o, "versions", json_object_new_int64(r->count));
			json_object_object_add(o, "updated_at", json_object_new_string(r->at));
			ctl_print(o);
			n = 0;
		}
	}
	if (rc < 0) {
		rc = ctl_db_fail(db, rc);
		goto out;
	}
	if (table)
		tpl_table(rows, n);
	rc = 0;
out:
	free(rows);
	tpl_close(db, reg);
	return rc;
}

/* tpl_profile - user ID's profile as admit.c builds it for templates into A (profile, locale);
 * 1, 0 when there is no such user, or a DB_ error */
static int tpl_profile(struct db *db, const char *id, struct admit *a)
{
	static const char *const keys[] = { "first_name", "last_name", "email", "phone" };
	int q = tpl_base + T_USER, rc;
	const char *s;
	size_t len;
	unsigned i;

	if ((rc = db_exec(db, q, DB_ARGS(db_str(id)))) != 0 || (rc = db_fetch(db, q)) != 1)
		return rc;
	a->profile = json_object_new_object();
	json_object_object_add(a->profile, "user_id", json_object_new_string(id));
	for (i = 0; i < 4; i++)
		if ((s = db_col_str(db, q, i, &len)) != NULL)
			json_object_object_add(a->profile, keys[i], json_object_new_string_len(s,
			    (int)len));
	s = db_col_str(db, q, 4, NULL);
	snprintf(a->timezone, sizeof a->timezone, "%s", s != NULL && tzday_valid(s) ? s : "UTC");
	json_object_object_add(a->profile, "timezone", json_object_new_string(a->timezone));
	if ((s = db_col_str(db, q, 5, &len)) != NULL) {
		json_object_object_add(a->profile, "locale", json_object_new_string_len(s, (int)len));
		snprintf(a->locale, sizeof a->locale, "%s", s);
	}
	while (db_fetch(db, q) == 1)
		;
	return 1;
}

/* tpl_rendered - the JSON line of "template test": the template used and its rendered fields */
static struct json_object *tpl_rendered(const char *name, int ch, const char *user,
    const char *locale, const struct rendered *r)
{
	struct json_object *o = tpl_key(name, codec_channel_name(ch), r->template_locale);
	const char *text[TF_DATA] = { r->subject, r->text, r->html };
	int f;

	json_object_object_add(o, "version", json_object_new_int64(r->template_version));
	json_object_object_add(o, "user_id", json_object_new_string(user));
	json_object_object_add(o, "user_locale", json_object_new_string(locale));
	for (f = 0; f < TF__N; f++) {
		if (!(tpl_channel_fields[ch] & 1u << f))
			continue;
		json_object_object_add(o, tpl_fields[f], f == TF_DATA ? json_object_get(r->extra) :
		    text[f] != NULL ? json_object_new_string(text[f]) : NULL);
	}
	return o;
}

/* tpl_test - "template test NAME --channel CH --user USER [--data JSON] [--locale L]" */
static int tpl_test(const char *conf, int argc, char **argv)
{
	const char *ch = NULL, *user = NULL, *data = NULL, *locale = NULL, *pos[1];
	const struct ctl_opt opts[] = {
		{ "--channel", &ch, NULL }, { "--user", &user, NULL }, { "--data", &data, NULL },
		{ "--locale", &locale, NULL }, { NULL, NULL, NULL }
	};
	char field[JSONCHECK_PATH_MAX], why[256], err[1024] = "";
	struct note n = { .txid = "" };
	struct admit a = { 0 };
	struct rendered r = { 0 };
	struct conf c = { 0 };
	struct db_stmt *reg = NULL;
	struct db *db = NULL;
	int np, rc, chan;

	if ((rc = ctl_args("template test", tpl_usage, argc, argv, opts, pos, 1, &np)) != 0)
		return rc == CTL_HELP ? EX_OK : rc;
	if (np == 0)
		return ctl_usage("template test", tpl_usage, "NAME is required");
	if (!tpl_name_ok("template test", pos[0]) || (chan = tpl_channel("template test", ch)) < 0 ||
	    (locale != NULL && !tpl_locale_ok("template test", locale)))
		return EX_USAGE;
	if (user == NULL)
		return ctl_usage("template test", tpl_usage, "--user is required");
	if (!ctl_user_id_ok(user))
		return ctl_usage("template test", tpl_usage, "--user: not a user id (1-%d bytes of"
		    " text)", CTL_USER_ID_MAX);
	if (data != NULL) {
		if (ctl_json_parse(data, strlen(data), &n.data, field, sizeof field, why,
		    sizeof why) != 0) {
			fprintf(stderr, "heraldctl template test: --data: %s: %s\n", field, why);
			return EX_DATAERR;
		}
		if (!json_object_is_type(n.data, json_type_object)) {
			fprintf(stderr, "heraldctl template test: --data: must be a JSON object (a"
			    " request's \"data\")\n");
			rc = EX_DATAERR;
			goto out;
		}
	}
	n.channel = (enum codec_channel)chan;
	n.user_id = (char *)user;
	n.template_name = (char *)pos[0];
	n.content = json_object_new_object();    /* no inline fields: the template's alone */
	n.attempt = 1;
	if ((rc = ctl_conf(conf, &c)) != 0 || (rc = tpl_open(conf, &reg, &db)) != 0)
		goto out;
	if ((rc = tpl_profile(db, user, &a)) != 1) {
		if (rc == 0)
			fprintf(stderr, "heraldctl template test: no user '%s'\n", user);
		rc = rc == 0 ? 1 : ctl_db_fail(db, rc);
		goto out;
	}
	if (locale != NULL) {                     /* as if the user's locale were L */
		snprintf(a.locale, sizeof a.locale, "%s", locale);
		json_object_object_add(a.profile, "locale", json_object_new_string(locale));
	}
	a.verdict = ADMIT_GO;
	if ((rc = render_note(db, tpl_render_base, &c, &n, &a, &r, err, sizeof err)) < 0) {
		rc = ctl_db_fail(db, rc);
		goto out;
	}
	if (rc == RENDER_FAILED) {
		/* render_note keeps the version it found: 0 means none was stored */
		fprintf(stderr, "heraldctl template test: %s%s\n", err, r.template_version ? "" :
		    (a.locale[0] ? " (tried locale, language and the default)" : ""));
		rc = r.template_version ? EX_DATAERR : 1;
		goto out;
	}
	ctl_print(tpl_rendered(pos[0], chan, user, a.locale, &r));
	rc = 0;
out:
	render_free(&r);
	json_object_put(a.profile);
	json_object_put(n.content);
	json_object_put(n.data);
	tpl_close(db, reg);
	conf_free(&c);
	return rc;
}

/* template_cmd - "heraldctl template add|show|list|test" */
int template_cmd(const char *conf, int argc, char **argv)
{
	if (argc < 2)
		return ctl_usage("template", tpl_usage, "a subcommand is required (add, show, list or"
		    " test)");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return fputs(tpl_usage, stdout), EX_OK;
	if (strcmp(argv[1], "add") == 0)
		return tpl_add(conf, argc - 2, argv + 2);
	if (strcmp(argv[1], "show") == 0)
		return tpl_show(conf, argc - 2, argv + 2);
	if (strcmp(argv[1], "list") == 0)
		return tpl_list(conf, argc - 2, argv + 2);
	if (strcmp(argv[1], "test") == 0)
		return tpl_test(conf, argc - 2, argv + 2);
	return ctl_usage("template", tpl_usage, "unknown subcommand '%s'", argv[1]);
}
