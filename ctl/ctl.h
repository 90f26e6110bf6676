/* ctl - what heraldctl's command files share */
#ifndef HERALD_CTL_H
#define HERALD_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf;
struct db;
struct db_opts;
struct db_stmt;
struct json_object;
struct url;

#ifndef HERALD_SQL_DIR
#define HERALD_SQL_DIR "/usr/local/share/herald/sql"   /* Makefile.am: $(pkgdatadir)/sql */
#endif

#define CTL_HELP (-1)            /* ctl_args: --help was printed; exit 0 */
#define CTL_USER_ID_MAX 191      /* bytes: users.user_id */
#define CTL_CLIENT_MAX 64        /* bytes: caps.client_id */
#define CTL_EMAIL_MAX 254
#define CTL_URL_MAX 2048
#define CTL_TOKEN_MAX 512

/* One option of a command: "--name VALUE" (VAL set) or a flag "--name" (FLAG set). */
struct ctl_opt {
	const char *name;        /* "--until" */
	const char **val;        /* takes a value: stored here */
	bool *flag;              /* no value: set true */
};

/* ctl_mysql_url - the MySQL URL and timeouts for CONF (the -c file, may be NULL; the
 * environment overrides it) into OUT and OPTS; 0, or an EX_ code with the reason on stderr */
int ctl_mysql_url(const char *conf, struct url *out, struct db_opts *opts);

/* ctl_args - split ARGV[0..ARGC) of command CMD into the options OPTS (anywhere; "--" ends
 * them) and at most MAXPOS positionals into POS (*NPOS of them); --help prints USAGE and
 * returns CTL_HELP; 0, or EX_USAGE with a message naming the argument */
int ctl_args(const char *cmd, const char *usage, int argc, char **argv,
    const struct ctl_opt *opts, const char **pos, int maxpos, int *npos);
/* ctl_usage - "heraldctl CMD: WHY" and where USAGE is shown (CMD --help) on stderr; EX_USAGE */
int ctl_usage(const char *cmd, const char *usage, const char *why, ...)
    __attribute__((format(printf, 3, 4)));
/* ctl_conf - load the config file CONF (-c, may be NULL) into C; 0 or EX_CONFIG (printed) */
int ctl_conf(const char *conf, struct conf *c);
/* ctl_db_open - connect to the database of CONF and prepare the N statements STMTS into *DB;
 * 0, or an EX_ code with the reason printed (*DB is then NULL) */
int ctl_db_open(const char *conf, const struct db_stmt *stmts, size_t n, struct db **db);
/* ctl_db_fail - the exit code for a failed call (RC, a DB_ error) on DB: EX_TEMPFAIL for a
 * lost connection, EX_UNAVAILABLE for an unreachable server, EX_DATAERR otherwise */
int ctl_db_fail(struct db *db, int rc);
/* ctl_print - print O as one plain JSON line on stdout and release it */
void ctl_print(struct json_object *o);
/* --format json|table of the commands that print rows (JSON is the default) */
enum ctl_fmt { CTL_FMT_JSON, CTL_FMT_TABLE };
#define CTL_FORMAT_HELP "  --format json|table: JSON (the default) or an aligned table with a header line\n"

/* ctl_fmt_parse - --format VAL (NULL: json) of command CMD into *FMT; 0 or EX_USAGE (printed) */
int ctl_fmt_parse(const char *cmd, const char *usage, const char *val, enum ctl_fmt *fmt);
/* ctl_table - print ROWS, a JSON array of objects, as a table (upper-case keys as headers,
 * strings as is, null "-", other values compact JSON, columns aligned by display width) and
 * release it */
void ctl_table(struct json_object *rows);
/* ctl_output - O in format FMT, released: JSON one line; a table of an array's rows, of an
 * object whose members are all objects (one row each, the member's name in column KEYCOL), or
 * of another object (KEYCOL and VALUE rows) */
void ctl_output(struct json_object *o, enum ctl_fmt fmt, const char *keycol);
/* The rows of a command that prints many (JSON Lines, or one table at the end). */
struct ctl_rows {
	enum ctl_fmt fmt;
	struct json_object *rows;
};
/* ctl_rows_add - O printed now as one JSON line, or kept for the table; O is released */
void ctl_rows_add(struct ctl_rows *r, struct json_object *o);
/* ctl_rows_end - print the table of the rows kept (table format) and release them */
void ctl_rows_end(struct ctl_rows *r);
/* ctl_time - USEC as an RFC 3339 JSON string (microseconds, UTC) */
struct json_object *ctl_time(int64_t usec);
/* ctl_json_text - JSON text S (a JSON column) as an object; a string when it does not parse */
struct json_object *ctl_json_text(const char *s, size_t len);
/* ctl_json_parse - strict JSON (RFC 8259, no duplicate keys, UTF-8) of S[0..LEN) into *OUT;
 * 0, or -1 with the offending path in FIELD and the reason in WHY */
int ctl_json_parse(const char *s, size_t len, struct json_object **out, char *field,
    size_t fieldlen, char *why, size_t whylen);

/* ctl_text_ok - S is UTF-8 of at most MAXCHARS characters without control characters */
bool ctl_text_ok(const char *s, size_t maxchars);
/* ctl_user_id_ok - S is a user id: 1-191 bytes of text, no trailing space */
bool ctl_user_id_ok(const char *s);
/* ctl_client_ok - S is a client id: [A-Za-z0-9_.-]{1,64} */
bool ctl_client_ok(const char *s);
/* ctl_email_ok - S is a plain addr-spec local@dotted.domain (the producer's rule) */
bool ctl_email_ok(const char *s);
/* ctl_lower - lower-case the ASCII letters of S in place; returns S */
char *ctl_lower(char *s);
/* ctl_phone_ok - S is E.164: '+', then 2-15 digits, the first 1-9 */
bool ctl_phone_ok(const char *s);
/* ctl_url_ok - S is an http:// or https:// URL with a host and no credentials */
bool ctl_url_ok(const char *s);
/* ctl_token_ok - S is a device token: 1-512 printable ASCII characters without spaces */
bool ctl_token_ok(const char *s);
/* ctl_bool - "true|on" 1, "false|off" 0, else -1 */
int ctl_bool(const char *s);

/* prefs_key_check - 0 when KEY is CHANNEL, CATEGORY (configured in C) or CATEGORY.CHANNEL;
 * else -1 with the reason in WHY */
int prefs_key_check(const struct conf *c, const char *key, char *why, size_t whylen);

/* db_migrate_cmd - "heraldctl db migrate [--dry-run]" and "heraldctl db version"; ARGV[0] is
 * "db"; returns the exit code */
int db_migrate_cmd(const char *conf, int argc, char **argv);
/* Each *_cmd runs one command group; ARGV[0] is its name; returns the exit code. */
int user_cmd(const char *conf, int argc, char **argv);
int prefs_cmd(const char *conf, int argc, char **argv);
int prefs_pause_cmd(const char *conf, int argc, char **argv);   /* pause and unpause */
int caps_cmd(const char *conf, int argc, char **argv);
int suppress_cmd(const char *conf, int argc, char **argv);
int status_cmd(const char *conf, int argc, char **argv);
int status_history_cmd(const char *conf, int argc, char **argv);
int workers_cmd(const char *conf, int argc, char **argv);     /* talks to heraldd, not MySQL */
int cancel_cmd(const char *conf, int argc, char **argv);
int parked_cmd(const char *conf, int argc, char **argv);      /* the broker, and MySQL */
int template_cmd(const char *conf, int argc, char **argv);
int purge_cmd(const char *conf, int argc, char **argv);
int device_cmd(const char *conf, int argc, char **argv);
int stats_cmd(const char *conf, int argc, char **argv);       /* the broker, MySQL and heraldd */

#endif
