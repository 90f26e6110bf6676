/* db - MySQL/MariaDB connection: explicit reconnect, a registry of prepared statements, transactions
 *
 * Every statement that carries data is prepared once per connection from a registry the caller
 * owns (an array indexed by the caller's enum) and executed with typed arguments:
 *
 *	enum { Q_GET, Q_PUT, Q__N };
 *	static const struct db_stmt q[Q__N] = {
 *		[Q_GET] = { "get", "SELECT n, at FROM t WHERE k = ?" },
 *		[Q_PUT] = { "put", "INSERT INTO t (k, n) VALUES (?, ?)" },
 *	};
 *	db_open(&db, &url, &opts, q, Q__N);
 *	db_exec(db, Q_PUT, DB_ARGS(db_str(k), db_i64(n)));
 *	db_exec(db, Q_GET, DB_ARGS(db_str(k)));
 *	while ((r = db_fetch(db, Q_GET)) == 1)
 *		use(db_col_i64(db, Q_GET, 0), db_col_time(db, Q_GET, 1));
 *
 * A lost connection (server gone, killed, restarted) is reconnected with backoff and every statement
 * prepared again. Outside a transaction the failed call is then retried once when it cannot have
 * run (the request never reached the server) or its statement is marked repeatable; otherwise, and
 * always inside a transaction, the call returns DB_ERETRY: the outcome is unknown, and the caller
 * decides (a cap increment run twice would count twice). MYSQL_OPT_RECONNECT is never used. Errors are logged here, once, naming the statement.
 * A struct db is one connection: use it from one thread (each worker process opens its own).
 */
#ifndef HERALD_DB_H
#define HERALD_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct url;
struct db;
struct conf_tls;

/* Return values: 0 (or a row count where said) on success, else one of these. */
#define DB_ERR     (-1)      /* failed; logged */
#define DB_ERETRY  (-2)      /* connection lost mid-call (outcome unknown) or deadlock inside a
                                transaction (rolled back): run the whole of it again */
#define DB_EDUP    (-3)      /* duplicate key (ER_DUP_ENTRY); logged at debug level only */

struct db_stmt {
	const char *name;        /* for logs */
	const char *sql;         /* constant SQL with '?' placeholders: never built from data */
	bool repeatable;         /* running it twice changes nothing (a read, or a write keyed so a
	                            repeat is a no-op): retried after a connection lost mid-call */
};

/* One module's statements for db_registry: its table, its size, where its base index goes. */
struct db_module {
	const struct db_stmt *stmts;
	size_t n;
	int *base;
};

/* db_registry - the statements of the N modules M in one malloc'd table *OUT (for db_open on a
 * connection they share), each module's base index stored; the total, or -1 when out of memory */
int db_registry(const struct db_module *m, size_t n, struct db_stmt **out);

struct db_opts {
	int connect_timeout;     /* seconds; 0: 5 */
	int read_timeout;        /* seconds; 0: 30 */
	int write_timeout;       /* seconds; 0: 30 */
	int reconnect_tries;     /* attempts after a lost connection; 0: 5; -1: never reconnect */
	const struct conf_tls *tls;  /* mysql.tls (conf.h), copied by db_open; TLS when tls->on or
	                                the URL is mysqls:// (then NULL means the defaults: the
	                                system CAs, verified) */
};

enum db_type {
	DB_T_NULL,
	DB_T_I64,
	DB_T_STR,                /* text, bound as a string */
	DB_T_BIN,                /* bytes, bound as a blob */
	DB_T_TIME                /* microseconds since the epoch, bound as DATETIME(6) in UTC */
};

struct db_arg {
	enum db_type type;
	int64_t i;               /* DB_T_I64, DB_T_TIME */
	const void *p;           /* DB_T_STR, DB_T_BIN */
	size_t len;
};

/* db_null - an SQL NULL argument */
static inline struct db_arg db_null(void)
{
	return (struct db_arg){ .type = DB_T_NULL };
}

/* db_i64 - an integer argument (bool and smaller types convert) */
static inline struct db_arg db_i64(int64_t v)
{
	return (struct db_arg){ .type = DB_T_I64, .i = v };
}

/* db_strn - a text argument of N bytes (may hold any byte); NULL S is SQL NULL */
static inline struct db_arg db_strn(const char *s, size_t n)
{
	return s ? (struct db_arg){ .type = DB_T_STR, .p = s, .len = n } : db_null();
}

/* db_str - a NUL-terminated text argument; NULL is SQL NULL */
static inline struct db_arg db_str(const char *s)
{
	return db_strn(s, s ? strlen(s) : 0);
}

/* db_bin - a binary argument of N bytes; NULL P is SQL NULL */
static inline struct db_arg db_bin(const void *p, size_t n)
{
	return p ? (struct db_arg){ .type = DB_T_BIN, .p = p, .len = n } : db_null();
}

/* db_time - a DATETIME(6) argument: USEC microseconds since the epoch, UTC */
static inline struct db_arg db_time(int64_t usec)
{
	return (struct db_arg){ .type = DB_T_TIME, .i = usec };
}

/* DB_ARGS - an argument array and its length for db_exec: DB_ARGS(db_str(a), db_i64(b)) */
#define DB_ARGS(...) ((const struct db_arg[]){ __VA_ARGS__ }), \
	(sizeof((const struct db_arg[]){ __VA_ARGS__ }) / sizeof(struct db_arg))
/* DB_NOARGS - for a statement without placeholders */
#define DB_NOARGS NULL, 0

/* db_open - connect to the mysql URL with OPTS (NULL: defaults) and prepare NSTMTS statements
 * of STMTS (kept, not copied; may be NULL/0); one attempt; DB_ERR (logged) on failure. *OUT is
 * set either way (db_error() says why), so always db_close() it. "localhost" means TCP to
 * 127.0.0.1, never the compiled-in unix socket. With TLS asked the session is encrypted and,
 * unless verify is false, the server's certificate checked against the CA and the host name
 * (127.0.0.1 for "localhost"); there is no fallback to plain TCP. */
int db_open(struct db **out, const struct url *url, const struct db_opts *opts,
    const struct db_stmt *stmts, size_t nstmts);
/* db_close - roll back what is open, close statements and connection, free DB (NULL ok) */
void db_close(struct db *db);
/* db_prepare - replace the statement registry with STMTS and prepare them all now */
int db_prepare(struct db *db, const struct db_stmt *stmts, size_t nstmts);
/* db_reconnect - drop the connection and connect again with backoff, preparing every statement */
int db_reconnect(struct db *db);

/* db_exec - execute statement ID with NARGS arguments; a result set is stored for db_fetch;
 * 0, DB_ERR, DB_ERETRY or DB_EDUP */
int db_exec(struct db *db, int id, const struct db_arg *args, size_t nargs);
/* db_fetch - the next row of ID's result: 1 row, 0 no more rows, DB_ERR */
int db_fetch(struct db *db, int id);
/* db_col_null - whether column COL of the current row is NULL */
bool db_col_null(struct db *db, int id, unsigned col);
/* db_col_i64 - column COL as an integer (0 when NULL or not a number; BIGINT UNSIGNED above
 * INT64_MAX wraps) */
int64_t db_col_i64(struct db *db, int id, unsigned col);
/* db_col_str - column COL as bytes, NUL-terminated, length in *LEN (may be NULL); NULL when SQL
 * NULL or an integer or DATETIME column; valid until the next db_fetch or db_exec of ID */
const char *db_col_str(struct db *db, int id, unsigned col, size_t *len);
/* db_col_time - a DATETIME/TIMESTAMP column COL as microseconds since the epoch (UTC); 0 when NULL */
int64_t db_col_time(struct db *db, int id, unsigned col);
/* db_affected - rows changed by the last db_exec of ID (an upsert counts 1 insert, 2 update) */
uint64_t db_affected(struct db *db, int id);
/* db_insert_id - AUTO_INCREMENT value or LAST_INSERT_ID(expr) set by the last db_exec of ID */
uint64_t db_insert_id(struct db *db, int id);

/* db_sql - run constant SQL text without arguments or results (DDL, migrations); WHAT names it
 * in the error log (NULL: the text's start). Never pass text built from data. */
int db_sql(struct db *db, const char *sql, const char *what);

/* db_begin - start a transaction (reconnecting first if the connection was lost) */
int db_begin(struct db *db);
/* db_begin_read_committed - start a transaction at READ COMMITTED (no gap locks: for a queue
 * table taken with FOR UPDATE SKIP LOCKED while others insert) */
int db_begin_read_committed(struct db *db);
/* db_commit - commit; DB_ERETRY when the connection broke (the outcome is then unknown: the
 * transaction must be safe to run again) or the server rolled it back (deadlock) */
int db_commit(struct db *db);
/* db_rollback - roll back; always leaves no transaction open (also after a lost connection) */
int db_rollback(struct db *db);
/* db_in_txn - whether a transaction is open */
bool db_in_txn(const struct db *db);

/* db_errno - the server or client error number of the last failure (0: none) */
unsigned db_errno(const struct db *db);
/* db_error - the text of the last failure ("" when none) */
const char *db_error(const struct db *db);
/* db_thread_id - the server's id for the current connection (KILL target in tests) */
unsigned long db_thread_id(struct db *db);
/* db_target - "user@host:port/database" of DB, for messages (no password) */
const char *db_target(const struct db *db);

#endif
