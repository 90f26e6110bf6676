/* ctl - helpers heraldctl's command files share: arguments, database, JSON output, input checks */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include <json-c/json.h>

#include "conf.h"
#include "codec.h"
#include "ctl.h"
#include "db.h"
#include "jsoncheck.h"
#include "privs.h"
#include "rfc3339.h"
#include "url.h"

#define CTL_ER_NO_SUCH_TABLE 1146
#define CTL_ER_BAD_FIELD 1054

/* ctl_usage - "heraldctl CMD: WHY" and where USAGE is shown (CMD --help) on stderr; EX_USAGE */
int ctl_usage(const char *cmd, const char *usage, const char *why, ...)
{
	va_list ap;

	fprintf(stderr, "heraldctl %s: ", cmd);
	va_start(ap, why);
	vfprintf(stderr, why, ap);
	va_end(ap);
	(void)usage;                /* one line naming the fault reads better than the whole text */
	fprintf(stderr, " (heraldctl %.*s --help shows the usage)\n", (int)strcspn(cmd, " "), cmd);
	return EX_USAGE;
}

/* ctl_opt_find - the option of OPTS named NAME (its first NLEN bytes), or NULL */
static const struct ctl_opt *ctl_opt_find(const struct ctl_opt *opts, const char *name, size_t nlen)
{
	for (; opts != NULL && opts->name != NULL; opts++)
		if (strlen(opts->name) == nlen && strncmp(opts->name, name, nlen) == 0)
			return opts;
	return NULL;
}

/* ctl_args - split ARGV into the options OPTS and at most MAXPOS positionals POS */
int ctl_args(const char *cmd, const char *usage, int argc, char **argv,
    const struct ctl_opt *opts, const char **pos, int maxpos, int *npos)
{
	bool opts_done = false;
	int i;

	*npos = 0;
	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *eq, *v;
		const struct ctl_opt *o;

		if (!opts_done && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
			fputs(usage, stdout);
			return CTL_HELP;
		}
		if (!opts_done && strcmp(a, "--") == 0) {
			opts_done = true;
			continue;
		}
		if (opts_done || a[0] != '-' || a[1] == '\0') {
			if (*npos >= maxpos)
				return ctl_usage(cmd, usage, "unexpected argument '%s'", a);
			pos[(*npos)++] = a;
			continue;
		}
		eq = strchr(a, '=');
		o = ctl_opt_find(opts, a, eq ? (size_t)(eq - a) : strlen(a));
		if (o == NULL)
			return ctl_usage(cmd, usage, "unknown option '%.*s'", eq ? (int)(eq - a) :
			    (int)strlen(a), a);
		if (o->flag != NULL) {
			if (eq != NULL)
				return ctl_usage(cmd, usage, "%s takes no value", o->name);
			*o->flag = true;
			continue;
		}
		if (eq != NULL)
			v = eq + 1;
		else if (i + 1 < argc)
			v = argv[++i];
		else
			return ctl_usage(cmd, usage, "%s needs a value", o->name);
		if (*o->val != NULL)
			return ctl_usage(cmd, usage, "%s given twice", o->name);
		*o->val = v;
	}
	return 0;
}

/* ctl_conf - load the config file CONF into C; 0 or EX_CONFIG (printed) */
int ctl_conf(const char *conf, struct conf *c)
{
	struct conf_error err;

	char perr[1024];

	if (conf_load(conf_path(conf), c, &err) != 0) {
		fprintf(stderr, "heraldctl: %s\n", err.msg);
		return EX_CONFIG;
	}
	if (privs_secrets(c, perr, sizeof perr) < 0) {
		fprintf(stderr, "heraldctl: %s\n", perr);
		conf_free(c);
		return EX_CONFIG;
	}
	return 0;
}

/* ctl_db_open - connect to the database of CONF with the statements STMTS into *DB */
int ctl_db_open(const char *conf, const struct db_stmt *stmts, size_t n, struct db **db)
{
	struct db_opts opts = { 0 };
	struct url u;
	unsigned e;
	int rc;

	*db = NULL;
	if ((rc = ctl_mysql_url(conf, &u, &opts)) != 0)
		return rc;
	if (db_open(db, &u, &opts, stmts, n) == 0)
		return 0;
	e = db_errno(*db);              /* db.c logged the failure, naming the server */
	if (e == CTL_ER_NO_SUCH_TABLE || e == CTL_ER_BAD_FIELD)
		fprintf(stderr, "heraldctl: database %s: the schema is missing or old: run heraldctl"
		    " db migrate\n", db_target(*db));
	db_close(*db);
	*db = NULL;
	return EX_UNAVAILABLE;
}

/* ctl_db_fail - the exit code for the failed call RC on DB */
int ctl_db_fail(struct db *db, int rc)
{
	unsigned e = db_errno(db);

	if (rc == DB_ERETRY)
		return EX_TEMPFAIL;
	return e >= 2000 && e < 3000 ? EX_UNAVAILABLE : EX_DATAERR;
}

/* ctl_print - print O as one plain JSON line on stdout and release it */
void ctl_print(struct json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

/* ctl_time - USEC as an RFC 3339 JSON string */
struct json_object *ctl_time(int64_t usec)
{
	char buf[RFC3339_LEN + 1];

	return json_object_new_string(rfc3339_format(usec, buf));
}

/* ctl_json_text - JSON text S of a JSON column as an object; a string when it does not parse */
struct json_object *ctl_json_text(const char *s, size_t len)
{
	struct json_tokener *tok;
	struct json_object *o = NULL;

	if (s == NULL)
		return NULL;
	if ((tok = json_tokener_new()) != NULL) {
		o = json_tokener_parse_ex(tok, s, (int)len);
		if (json_tokener_get_error(tok) != json_tokener_success) {
			json_object_put(o);
			o = NULL;
		}
		json_tokener_free(tok);
	}
	return o != NULL ? o : json_object_new_string_len(s, (int)len);
}

/* ctl_json_parse - strict JSON of S[0..LEN) into *OUT, or -1 with FIELD and WHY */
int ctl_json_parse(const char *s, size_t len, struct json_object **out, char *field,
    size_t fieldlen, char *why, size_t whylen)
{
	struct jsoncheck_error je;
	struct json_tokener *tok;

	*out = NULL;
	if (jsoncheck_scan(s, len, 0, &je) != 0) {
		snprintf(field, fieldlen, "%s", je.path[0] ? je.path : "json");
		snprintf(why, whylen, "%s (byte %zu)", je.message, je.offset + 1);
		return -1;
	}
	if ((tok = json_tokener_new()) == NULL) {
		snprintf(field, fieldlen, "json");
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	*out = json_tokener_parse_ex(tok, s, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success || *out == NULL) {
		snprintf(field, fieldlen, "json");
		snprintf(why, whylen, "%s", json_tokener_error_desc(json_tokener_get_error(tok)));
		json_object_put(*out);
		*out = NULL;
	}
	json_tokener_free(tok);
	return *out != NULL ? 0 : -1;
}

/* ctl_text_ok - S is UTF-8 of at most MAXCHARS characters without control characters */
bool ctl_text_ok(const char *s, size_t maxchars)
{
	size_t len = strlen(s), i = 0, n = 0, k;

	while (i < len) {
		unsigned char c = (unsigned char)s[i];

		if ((k = jsoncheck_utf8_char(s + i, len - i)) == 0 || c < 0x20 || c == 0x7f ||
		    (c == 0xc2 && (unsigned char)s[i + 1] >= 0x80 && (unsigned char)s[i + 1] <= 0x9f))
			return false;
		i += k;
		if (++n > maxchars)
			return false;
	}
	return true;
}

/* ctl_user_id_ok - S is a user id: 1-191 bytes of text, no trailing space (the database's
 * collations pad with spaces: "a " would find or overwrite the user "a") */
bool ctl_user_id_ok(const char *s)
{
	return s[0] != '\0' && strlen(s) <= CTL_USER_ID_MAX && ctl_text_ok(s, CTL_USER_ID_MAX) &&
	    s[strlen(s) - 1] != ' ';
}

/* ctl_client_ok - S is a client id: [A-Za-z0-9_.-]{1,64} (the producer's rule) */
bool ctl_client_ok(const char *s)
{
	return codec_name_ok(s);
}

/* ctl_email_ok - S is UTF-8 text and a plain addr-spec local@dotted.domain (the producer's rule) */
bool ctl_email_ok(const char *s)
{
	return ctl_text_ok(s, CTL_EMAIL_MAX) && codec_email_ok(s);
}

/* ctl_lower - lower-case the ASCII letters of S in place */
char *ctl_lower(char *s)
{
	char *p;

	for (p = s; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return s;
}

/* ctl_phone_ok - S is E.164 (the producer's rule) */
bool ctl_phone_ok(const char *s)
{
	return codec_phone_ok(s);
}

/* ctl_url_ok - S is UTF-8 text and an http(s) URL with a host and no credentials (the
 * producer's rule) */
bool ctl_url_ok(const char *s)
{
	return ctl_text_ok(s, CTL_URL_MAX) && codec_url_ok(s);
}

/* ctl_token_ok - S is a device token: 1-512 printable ASCII characters without spaces */
bool ctl_token_ok(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if ((unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f)
			return false;
	return n >= 1 && n <= CTL_TOKEN_MAX;
}

/* ctl_bool - "true|on" 1, "false|off" 0, else -1 */
int ctl_bool(const char *s)
{
	if (strcmp(s, "true") == 0 || strcmp(s, "on") == 0)
		return 1;
	if (strcmp(s, "false") == 0 || strcmp(s, "off") == 0)
		return 0;
	return -1;
}

/* ---- --format json|table ------------------------------------------------------------------ */

#define CTL_TABLE_GAP 2          /* spaces between two columns */

/* ctl_fmt_parse - --format VAL (NULL: json) of command CMD into *FMT; 0 or EX_USAGE */
int ctl_fmt_parse(const char *cmd, const char *usage, const char *val, enum ctl_fmt *fmt)
{
	if (val == NULL || strcmp(val, "json") == 0)
		*fmt = CTL_FMT_JSON;
	else if (strcmp(val, "table") == 0)
		*fmt = CTL_FMT_TABLE;
	else
		return ctl_usage(cmd, usage, "--format '%s': json or table", val);
	return 0;
}

/* ctl_cp_width - the columns code point C takes on a terminal: 0 combining and zero-width
 * marks, 2 East Asian wide and full-width forms and emoji, else 1 (a cheap wcwidth that needs
 * no locale) */
static int ctl_cp_width(uint32_t c)
{
	if ((c >= 0x0300 && c <= 0x036f) || (c >= 0x200b && c <= 0x200f) || c == 0xfeff ||
	    (c >= 0xfe00 && c <= 0xfe0f) || (c >= 0x20d0 && c <= 0x20ff))
		return 0;
	if ((c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0x303e) ||
	    (c >= 0x3041 && c <= 0x33ff) || (c >= 0x3400 && c <= 0x4dbf) ||
	    (c >= 0x4e00 && c <= 0x9fff) || (c >= 0xa000 && c <= 0xa4cf) ||
	    (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) ||
	    (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) ||
	    (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x1f300 && c <= 0x1f64f) ||
	    (c >= 0x1f900 && c <= 0x1f9ff) || (c >= 0x20000 && c <= 0x3fffd))
		return 2;
	return 1;
}

/* ctl_cell_put - write cell S to OUT (NULL: only measure), ill-formed UTF-8 and control
 * characters as '?'; its display width */
static size_t ctl_cell_put(const char *s, FILE *out)
{
	size_t len = strlen(s), i = 0, w = 0, k;

	/* the NOLINTs below: the analyzer does not tie LEN to strlen(S) for a header built in a
	 * local buffer, so it takes the bytes before the NUL (and the k of jsoncheck_utf8_char) as
	 * unset */
	while (i < len) {
		unsigned char c = (unsigned char)s[i];  /* NOLINT(clang-analyzer-core.uninitialized.Assign) */
		uint32_t cp;

		k = jsoncheck_utf8_char(s + i, len - i);
		if (k == 0 || c < 0x20 || c == 0x7f ||
		    (k == 2 && c == 0xc2 && (unsigned char)s[i + 1] <= 0x9f)) {
			if (out != NULL)
				fputc('?', out);
			w++;
			i += k ? k : 1;
			continue;
		}
		if (k == 1)
			cp = c;
		else if (k == 2)
			cp = (uint32_t)(c & 0x1f) << 6 | ((unsigned char)s[i + 1] & 0x3f);
		else if (k == 3)
			cp = (uint32_t)(c & 0x0f) << 12 | (uint32_t)((unsigned char)s[i + 1] & 0x3f) << 6 |
			    ((unsigned char)s[i + 2] & 0x3f);   /* NOLINT(clang-analyzer-core.UndefinedBinaryOperatorResult) */
		else
			cp = (uint32_t)(c & 0x07) << 18 | (uint32_t)((unsigned char)s[i + 1] & 0x3f) << 12 |
			    (uint32_t)((unsigned char)s[i + 2] & 0x3f) << 6 | ((unsigned char)s[i + 3] & 0x3f);  /* NOLINT(clang-analyzer-core.UndefinedBinaryOperatorResult) */
		if (out != NULL)
			fwrite(s + i, 1, k, out);
		w += (size_t)ctl_cp_width(cp);
		i += k;
	}
	return w;
}

/* ctl_cell - the text of JSON value V in a table cell: a string as is, null as "-", anything
 * else as its compact JSON */
static const char *ctl_cell(struct json_object *v)
{
	if (v == NULL)
		return "-";
	if (json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* ctl_header - the column header for key K: upper case, into BUF */
static const char *ctl_header(const char *k, char *buf, size_t size)
{
	size_t i;

	for (i = 0; k[i] != '\0' && i + 1 < size; i++)
		buf[i] = (char)(k[i] >= 'a' && k[i] <= 'z' ? k[i] - 'a' + 'A' : k[i]);
	buf[i] = '\0';
	return buf;
}

/* ctl_table - print ROWS, a JSON array of objects, as a table and release it: the keys of all
 * rows in order of appearance as upper-case column headers, cells per ctl_cell ("" for a key a
 * row lacks), columns aligned by display width; nothing for no rows */
void ctl_table(struct json_object *rows)
{
	struct json_object *cols = json_object_new_array();
	size_t nrows = json_object_array_length(rows), ncols, r, c, *w = NULL;
	char hb[128];

	for (r = 0; r < nrows; r++) {
		struct json_object *row = json_object_array_get_idx(rows, r);

		if (!json_object_is_type(row, json_type_object))
			continue;
		json_object_object_foreach(row, k, v) {
			size_t i, n = json_object_array_length(cols);

			(void)v;
			for (i = 0; i < n; i++)
				if (strcmp(json_object_get_string(json_object_array_get_idx(cols, i)), k) == 0)
					break;
			if (i == n)
				json_object_array_add(cols, json_object_new_string(k));
		}
	}
	ncols = json_object_array_length(cols);
	if (nrows == 0 || ncols == 0 || (w = calloc(ncols, sizeof(*w))) == NULL)
		goto out;
	for (c = 0; c < ncols; c++) {
		const char *k = json_object_get_string(json_object_array_get_idx(cols, c));

		w[c] = ctl_cell_put(ctl_header(k, hb, sizeof(hb)), NULL);
		for (r = 0; r < nrows; r++) {
			struct json_object *row = json_object_array_get_idx(rows, r), *v = NULL;
			size_t cw;

			if (json_object_object_get_ex(row, k, &v) &&
			    (cw = ctl_cell_put(ctl_cell(v), NULL)) > w[c])
				w[c] = cw;
		}
	}
	for (r = 0; r <= nrows; r++) {          /* r 0: the headers */
		for (c = 0; c < ncols; c++) {
			const char *k = json_object_get_string(json_object_array_get_idx(cols, c));
			struct json_object *v = NULL;
			const char *s;
			size_t cw;

			if (r == 0)
				s = ctl_header(k, hb, sizeof(hb));
			else if (json_object_object_get_ex(json_object_array_get_idx(rows, r - 1), k, &v))
				s = ctl_cell(v);
			else
				s = "";
			cw = ctl_cell_put(s, stdout);
			if (c + 1 < ncols)
				printf("%*s", (int)(w[c] - cw + CTL_TABLE_GAP), "");
		}
		putchar('\n');
	}
out:
	free(w);
	json_object_put(cols);
	json_object_put(rows);
}

/* ctl_output - O in format FMT, released: JSON one line; a table of an array's rows, of an
 * object whose members are all objects (one row each, the member's name in column KEYCOL), or
 * of another object (KEYCOL and VALUE per member) */
void ctl_output(struct json_object *o, enum ctl_fmt fmt, const char *keycol)
{
	struct json_object *rows;
	bool all_objects = true;

	if (fmt == CTL_FMT_JSON) {
		ctl_print(o);
		return;
	}
	if (json_object_is_type(o, json_type_array)) {
		ctl_table(o);
		return;
	}
	rows = json_object_new_array();
	if (!json_object_is_type(o, json_type_object)) {
		struct json_object *row = json_object_new_object();

		json_object_object_add(row, "value", json_object_get(o));
		json_object_array_add(rows, row);
		json_object_put(o);
		ctl_table(rows);
		return;
	}
	{
		json_object_object_foreach(o, k, v) {
			(void)k;
			if (!json_object_is_type(v, json_type_object))
				all_objects = false;
		}
	}
	{
		json_object_object_foreach(o, k, v) {
			struct json_object *row = json_object_new_object();

			json_object_object_add(row, keycol, json_object_new_string(k));
			if (all_objects) {
				json_object_object_foreach(v, k2, v2) {
					if (strcmp(k2, keycol) != 0)
						json_object_object_add(row, k2, json_object_get(v2));
				}
			} else
				json_object_object_add(row, "value", json_object_get(v));
			json_object_array_add(rows, row);
		}
	}
	json_object_put(o);
	ctl_table(rows);
}

/* ctl_rows_add - a row of a command printing many: O as a JSON line now, or kept in R for the
 * table ctl_rows_end prints */
void ctl_rows_add(struct ctl_rows *r, struct json_object *o)
{
	if (r->fmt == CTL_FMT_JSON) {
		ctl_print(o);
		return;
	}
	if (r->rows == NULL)
		r->rows = json_object_new_array();
	json_object_array_add(r->rows, o);
}

/* ctl_rows_end - print the table of R's rows (table format), release them */
void ctl_rows_end(struct ctl_rows *r)
{
	if (r->rows != NULL)
		ctl_table(r->rows);
	r->rows = NULL;
}
