/* db - MySQL/MariaDB connection: explicit reconnect, a registry of prepared statements, transactions
 *
 * Why no MYSQL_OPT_RECONNECT: it reconnects behind our back, silently dropping the prepared
 * statements and the open transaction. Here a lost connection marks the handle broken; the next
 * call reconnects (with backoff), prepares the whole registry again and, outside a transaction,
 * retries the failed call once. Inside one it returns DB_ERETRY: the server has rolled it back.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>

#include "conf.h"
#include "db.h"
#include "log.h"
#include "url.h"

/* The type of MYSQL_BIND.is_null/.error: my_bool in libmariadb and MySQL 5.7, bool in MySQL 8. */
#if defined(LIBMARIADB) || MYSQL_VERSION_ID < 80000
#define DB_MYBOOL my_bool
#else
#define DB_MYBOOL bool
#endif

/* Error numbers that mean the connection is gone; some are absent from older headers. */
#define DB_ER_CONNECTION_KILLED     1927   /* MariaDB: "Connection was killed" */
#define DB_ER_AUTOINC_READ_FAILED 1467   /* InnoDB: the AUTO-INC lock wait failed (a deadlock) */
#define DB_ER_CLIENT_INTERACTION_TIMEOUT 4031   /* MySQL 8.0.24+: closed after wait_timeout */
#define DB_CR_SERVER_LOST_EXTENDED  2055

#define DB_SESSION_SQL "SET time_zone = '+00:00', sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'"
#define DB_BACKOFF_FIRST_MS 100
#define DB_BACKOFF_MAX_MS   2000

enum db_kind { DB_K_INT, DB_K_TIME, DB_K_STR };

struct db_rcol {
	enum db_kind kind;
	long long i;
	MYSQL_TIME t;
	char *buf;
	size_t cap;
	unsigned long len;
	DB_MYBOOL isnull;
	DB_MYBOOL error;
};

struct db_st {
	MYSQL_STMT *h;
	unsigned nparams;
	MYSQL_BIND *pbind;
	MYSQL_TIME *ptime;
	unsigned long *plen;
	unsigned ncols;
	MYSQL_BIND *rbind;
	struct db_rcol *rcol;
	bool rows;               /* a stored result is open */
	uint64_t affected;
	uint64_t insert_id;
};

struct db {
	MYSQL *m;                /* NULL while disconnected */
	struct url url;
	struct db_opts opts;
	const struct db_stmt *reg;
	size_t nreg;
	struct db_st *st;        /* nreg entries */
	bool in_txn;
	bool broken;             /* connection lost: reconnect before the next call */
	unsigned rnd;            /* backoff jitter state (xorshift), seeded per handle */
	unsigned err;
	char errmsg[512];
	char target[3 * URL_PART_MAX + 16];
	bool tls;                /* mysqls:// or mysql.tls: encrypted, never plain */
	bool tls_verify;
	bool tls_ca_set;         /* tls_ca is mysql.tls.ca_file, not the system bundle */
	char *tls_ca;            /* NULL: none to check with (verify = false) */
	char *tls_cert;
	char *tls_key;
};

enum db_verdict { DB_V_FAIL, DB_V_LOST, DB_V_DEADLOCK, DB_V_DUP };

/* db_classify - what error number E means for the caller */
static enum db_verdict db_classify(unsigned e)
{
	switch (e) {
	case CR_SERVER_GONE_ERROR:
	case CR_SERVER_LOST:
	case DB_CR_SERVER_LOST_EXTENDED:
	case ER_SERVER_SHUTDOWN:
	case DB_ER_CONNECTION_KILLED:
	case DB_ER_CLIENT_INTERACTION_TIMEOUT:
		return DB_V_LOST;
	case ER_LOCK_DEADLOCK:
	case ER_LOCK_WAIT_TIMEOUT:
	case DB_ER_AUTOINC_READ_FAILED:
		return DB_V_DEADLOCK;
	case ER_DUP_ENTRY:
		return DB_V_DUP;
	default:
		return DB_V_FAIL;
	}
}

/* db_seterr - remember error E with text MSG as the last failure */
static void db_seterr(struct db *db, unsigned e, const char *msg)
{
	db->err = e;
	snprintf(db->errmsg, sizeof(db->errmsg), "%s", msg ? msg : "");
}

/* db_log_fail - log the last failure of OP on statement WHAT (may be NULL) once, at LEVEL
 * (0 debug, 1 warn, 2 error), with NOTE (" key=value" or "") appended */
static void db_log_fail(struct db *db, int level, const char *op, const char *what, const char *note)
{
	char q[600], w[200];

	log_quote(q, sizeof(q), db->errmsg);
	w[0] = '\0';
	if (what != NULL) {
		memcpy(w, " stmt=", 7);
		log_quote(w + 6, sizeof(w) - 6, what);
	}
	if (level == 0)
		log_debug("db=%s op=%s%s errno=%u err=%s%s", db->target, op, w, db->err, q, note);
	else if (level == 1)
		log_warnx("db=%s op=%s%s errno=%u err=%s%s", db->target, op, w, db->err, q, note);
	else
		log_error("db=%s op=%s%s errno=%u err=%s%s", db->target, op, w, db->err, q, note);
}

/* db_st_free - close statement S and free its buffers */
static void db_st_free(struct db_st *s)
{
	unsigned i;

	if (s->h != NULL)
		mysql_stmt_close(s->h);
	for (i = 0; s->rcol != NULL && i < s->ncols; i++)
		free(s->rcol[i].buf);
	free(s->pbind);
	free(s->ptime);
	free(s->plen);
	free(s->rbind);
	free(s->rcol);
	memset(s, 0, sizeof(*s));
}

/* db_disconnect - close every statement and the connection */
static void db_disconnect(struct db *db)
{
	size_t i;

	for (i = 0; db->st != NULL && i < db->nreg; i++)
		db_st_free(&db->st[i]);
	if (db->m != NULL)
		mysql_close(db->m);
	db->m = NULL;
	db->in_txn = false;
}

/* db_prepare_one - prepare registry entry I on the current connection */
static int db_prepare_one(struct db *db, size_t i)
{
	struct db_st *s = &db->st[i];
	const char *sql = db->reg[i].sql;
	DB_MYBOOL one = 1;

	if ((s->h = mysql_stmt_init(db->m)) == NULL) {
		db_seterr(db, mysql_errno(db->m), "mysql_stmt_init failed: out of memory");
		return -1;
	}
	if (mysql_stmt_prepare(s->h, sql, strlen(sql)) != 0) {
		db_seterr(db, mysql_stmt_errno(s->h), mysql_stmt_error(s->h));
		return -1;
	}
	mysql_stmt_attr_set(s->h, STMT_ATTR_UPDATE_MAX_LENGTH, &one);
	s->nparams = mysql_stmt_param_count(s->h);
	s->ncols = mysql_stmt_field_count(s->h);
	if ((s->nparams && ((s->pbind = calloc(s->nparams, sizeof(*s->pbind))) == NULL ||
	    (s->ptime = calloc(s->nparams, sizeof(*s->ptime))) == NULL ||
	    (s->plen = calloc(s->nparams, sizeof(*s->plen))) == NULL)) ||
	    (s->ncols && ((s->rbind = calloc(s->ncols, sizeof(*s->rbind))) == NULL ||
	    (s->rcol = calloc(s->ncols, sizeof(*s->rcol))) == NULL))) {
		db_seterr(db, 0, "out of memory");
		return -1;
	}
	return 0;
}

/* db_prepare_all - prepare the whole registry; on failure logs which statement and returns -1 */
static int db_prepare_all(struct db *db)
{
	size_t i;

	for (i = 0; i < db->nreg; i++) {
		if (db_prepare_one(db, i) != 0) {
			db_log_fail(db, 2, "prepare", db->reg[i].name, "");
			return -1;
		}
	}
	return 0;
}

/* db_host - the host to connect to: libmariadb takes "localhost" as the compiled-in unix socket
 * whatever the port (INFRA pitfall 2), while a mysql:// URL means TCP, so it becomes 127.0.0.1 */
static const char *db_host(const struct url *u)
{
	if (u->host[0] == '\0' || strcasecmp(u->host, "localhost") == 0)
		return "127.0.0.1";
	return u->host;
}

/* db_tls_options - ask M for TLS as DB says: enforced (no fallback to plain), the CA, the client
 * certificate, the server certificate's name checked unless verify is false. Connector/C 3.3
 * checks the chain only when it has a CA, so verify always comes with one (db_open saw to it) */
static void db_tls_options(struct db *db)
{
	DB_MYBOOL on = 1, verify = (DB_MYBOOL)db->tls_verify;

	mysql_optionsv(db->m, MYSQL_OPT_SSL_ENFORCE, &on);
	if (db->tls_ca != NULL)
		mysql_optionsv(db->m, MYSQL_OPT_SSL_CA, db->tls_ca);
	if (db->tls_cert != NULL && db->tls_key != NULL) {
		mysql_optionsv(db->m, MYSQL_OPT_SSL_CERT, db->tls_cert);
		mysql_optionsv(db->m, MYSQL_OPT_SSL_KEY, db->tls_key);
	}
	mysql_optionsv(db->m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
}

/* db_tls_error - the connect failure MSG (errno E) of a TLS connection to HOST, in words that
 * name the setting to look at; false when it is no TLS failure */
static bool db_tls_error(struct db *db, unsigned e, const char *msg, const char *host)
{
	char m[sizeof(db->errmsg)];
	const char *ca = db->tls_ca != NULL ? db->tls_ca : "";
	const char *what = db->tls_ca_set ? "mysql.tls.ca_file" : "the system CAs";
	int port = db->url.port;

	if (e != CR_SSL_CONNECTION_ERROR)
		return false;
	if (strstr(msg, "Validation of SSL server certificate failed") != NULL ||
	    strcasestr(msg, "hostname") != NULL)
		snprintf(m, sizeof m, "TLS to MySQL %.100s:%d: the server's certificate is not valid for "
		    "host %.100s (give the URL a name or address the certificate carries)",
		    host, port, host);
	else if (strcasestr(msg, "verify") != NULL || strcasestr(msg, "issuer") != NULL ||
	    strcasestr(msg, "self-signed") != NULL || strcasestr(msg, "self signed") != NULL)
		snprintf(m, sizeof m, "TLS to MySQL %.100s:%d: the server's certificate is not trusted "
		    "(verified with %s %s)", host, port, what, ca);
	else if (strcasestr(msg, "does not support") != NULL || strcasestr(msg, "not supported") != NULL)
		snprintf(m, sizeof m, "TLS to MySQL %.100s:%d: the server does not offer TLS (%s); "
		    "refusing plain TCP", host, port, msg);
	else
		snprintf(m, sizeof m, "TLS to MySQL %.100s:%d: handshake failed (%s)", host, port, msg);
	db_seterr(db, e, m);
	return true;
}

/* db_connect_once - one connection attempt: options, connect, session settings, statements */
static int db_connect_once(struct db *db)
{
	unsigned int ct = (unsigned)db->opts.connect_timeout, rt = (unsigned)db->opts.read_timeout;
	unsigned int wt = (unsigned)db->opts.write_timeout, proto = MYSQL_PROTOCOL_TCP, no = 0;
	const struct url *u = &db->url;
	const char *host = db_host(u);

	if ((db->m = mysql_init(NULL)) == NULL) {
		db_seterr(db, 0, "mysql_init failed: out of memory");
		db_log_fail(db, 2, "connect", NULL, "");
		return -1;
	}
	mysql_options(db->m, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
	mysql_options(db->m, MYSQL_OPT_READ_TIMEOUT, &rt);
	mysql_options(db->m, MYSQL_OPT_WRITE_TIMEOUT, &wt);
	mysql_options(db->m, MYSQL_OPT_PROTOCOL, &proto);
	mysql_options(db->m, MYSQL_OPT_LOCAL_INFILE, &no);
	mysql_options(db->m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	if (db->tls)
		db_tls_options(db);
	if (mysql_real_connect(db->m, host, u->user[0] ? u->user : NULL, u->password,
	    u->path[0] ? u->path : NULL, (unsigned)u->port, NULL, 0) == NULL) {
		if (!db->tls || !db_tls_error(db, mysql_errno(db->m), mysql_error(db->m), host))
			db_seterr(db, mysql_errno(db->m), mysql_error(db->m));
		db_log_fail(db, db->broken ? 1 : 2, "connect", NULL, "");   /* reconnect: warn */
		goto fail;
	}
	if (db->tls && mysql_get_ssl_cipher(db->m) == NULL) {
		/* with verify off Connector/C 3.3 logs in over plain TCP to a server without TLS:
		 * drop that session before any query */
		char m[sizeof(db->errmsg)];

		snprintf(m, sizeof m, "TLS to MySQL %.100s:%d: the server does not offer TLS; the plain "
		    "session is refused (with mysql.tls.verify = false the login went in clear)",
		    host, u->port);
		db_seterr(db, CR_SSL_CONNECTION_ERROR, m);
		db_log_fail(db, 2, "connect", NULL, "");
		goto fail;
	}
	if (mysql_real_query(db->m, DB_SESSION_SQL, strlen(DB_SESSION_SQL)) != 0) {
		db_seterr(db, mysql_errno(db->m), mysql_error(db->m));
		db_log_fail(db, 2, "session", NULL, "");
		goto fail;
	}
	if ((db->st = calloc(db->nreg ? db->nreg : 1, sizeof(*db->st))) == NULL) {
		db_seterr(db, 0, "out of memory");
		db_log_fail(db, 2, "connect", NULL, "");
		goto fail;
	}
	if (db_prepare_all(db) != 0)
		goto fail;
	db->broken = false;
	return 0;
fail:
	db_disconnect(db);
	free(db->st);
	db->st = NULL;
	return -1;
}

/* db_backoff_ms - the delay before reconnect attempt N (1-based): 0, then 100 ms doubling to 2 s,
 * with +-25 % jitter so that many workers do not knock in step */
static long db_backoff_ms(struct db *db, int n)
{
	long ms = DB_BACKOFF_FIRST_MS;

	if (n <= 1)
		return 0;
	while (--n > 1 && ms < DB_BACKOFF_MAX_MS)
		ms *= 2;
	if (ms > DB_BACKOFF_MAX_MS)
		ms = DB_BACKOFF_MAX_MS;
	db->rnd ^= db->rnd << 13;
	db->rnd ^= db->rnd >> 17;
	db->rnd ^= db->rnd << 5;
	return ms * 3 / 4 + (long)(db->rnd % (unsigned)(ms / 2 + 1));
}

/* db_reconnect - drop the connection and connect again with backoff, preparing every statement */
int db_reconnect(struct db *db)
{
	int n, tries = db->opts.reconnect_tries < 1 ? 1 : db->opts.reconnect_tries;

	db_disconnect(db);
	free(db->st);
	db->st = NULL;
	db->broken = true;
	for (n = 1; n <= tries; n++) {
		long ms = db_backoff_ms(db, n);
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

		while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		if (db_connect_once(db) == 0) {
			log_info("db=%s event=reconnected attempt=%d", db->target, n);
			return 0;
		}
	}
	log_error("db=%s event=reconnect_failed attempts=%d", db->target, tries);
	return DB_ERR;
}

/* db_ready - make sure a connection is there before a call (reconnecting a broken one); a
 * transaction that was open is gone then: DB_ERETRY */
static int db_ready(struct db *db)
{
	bool was_in_txn = db->in_txn;

	if (!db->broken && db->m != NULL)
		return 0;
	db->in_txn = false;
	if (db->opts.reconnect_tries < 0) {
		db_seterr(db, CR_SERVER_GONE_ERROR, "connection lost and reconnecting is off");
		log_error("db=%s err=\"connection lost and reconnecting is off\"", db->target);
		return was_in_txn ? DB_ERETRY : DB_ERR;
	}
	if (db_reconnect(db) != 0)
		return was_in_txn ? DB_ERETRY : DB_ERR;
	return was_in_txn ? DB_ERETRY : 0;
}

/* db_failed - decide after a failed call (error in db->err) of OP on WHAT, attempt TRY (0-based),
 * REPEATABLE when running it twice is harmless: 1 to retry, else the value to return; logs once */
static int db_failed(struct db *db, int try, bool repeatable, const char *op, const char *what)
{
	switch (db_classify(db->err)) {
	case DB_V_LOST:
		db->broken = true;
		if (db->in_txn) {
			db->in_txn = false;
			db_log_fail(db, 1, op, what, " note=\"connection lost in a transaction: retry it\"");
			return DB_ERETRY;
		}
		/* CR_SERVER_GONE_ERROR: the request was never sent, so it did not run */
		if (try == 0 && db->opts.reconnect_tries >= 0 &&
		    (repeatable || db->err == CR_SERVER_GONE_ERROR)) {
			db_log_fail(db, 1, op, what, " note=\"connection lost: reconnecting\"");
			return 1;
		}
		if (try == 0) {
			db_log_fail(db, 1, op, what, " note=\"connection lost mid-call: outcome unknown\"");
			return DB_ERETRY;
		}
		break;
	case DB_V_DEADLOCK:
		if (db->in_txn) {
			/* a deadlock rolls the transaction back; a lock wait timeout only the statement:
			 * end it either way so that the retry starts clean */
			if (mysql_real_query(db->m, "ROLLBACK", 8) != 0)
				db->broken = true;
			db->in_txn = false;
			db_log_fail(db, 1, op, what, " note=\"transaction rolled back: retry it\"");
			return DB_ERETRY;
		}
		if (try == 0) {
			db_log_fail(db, 1, op, what, " note=retrying");
			return 1;
		}
		break;
	case DB_V_DUP:
		db_log_fail(db, 0, op, what, "");
		return DB_EDUP;
	case DB_V_FAIL:
		break;
	}
	db_log_fail(db, 2, op, what, "");
	return DB_ERR;
}

/* db_tls_readable - 0 when FILE (NULL: none) can be read, else -1 with the error naming SETTING:
 * Connector/C's own message for an unreadable file names neither */
static int db_tls_readable(struct db *db, const char *file, const char *setting)
{
	char m[sizeof(db->errmsg)];

	if (file == NULL || access(file, R_OK) == 0)
		return 0;
	snprintf(m, sizeof m, "%s %s: cannot load: %s", setting, file, strerror(errno));
	db_seterr(db, 0, m);
	db_log_fail(db, 2, "connect", NULL, "");
	return -1;
}

/* db_tls_setup - copy what DB's connections need of T (may be NULL) when TLS is asked: by the
 * URL (mysqls://) or by T->on; with verify, a CA to check with (ca_file, else the system's) */
static int db_tls_setup(struct db *db, const struct conf_tls *t)
{
	const char *ca;

	db->tls = db->url.tls || (t != NULL && t->on);
	if (!db->tls)
		return 0;
	db->tls_verify = t == NULL || t->verify;
	db->tls_ca_set = t != NULL && t->ca_file != NULL;
	ca = db->tls_ca_set ? t->ca_file : db->tls_verify ? conf_system_ca() : NULL;
	if (db->tls_verify && ca == NULL) {
		db_seterr(db, 0, "TLS asked but no CA to verify the server with: set mysql.tls.ca_file");
		db_log_fail(db, 2, "connect", NULL, "");
		return -1;
	}
	if (!db->tls_verify)
		ca = NULL;              /* Connector/C would check the chain against it */
	if ((ca != NULL && (db->tls_ca = strdup(ca)) == NULL) ||
	    (t != NULL && t->cert_file != NULL && (db->tls_cert = strdup(t->cert_file)) == NULL) ||
	    (t != NULL && t->key_file != NULL && (db->tls_key = strdup(t->key_file)) == NULL)) {
		db_seterr(db, 0, "out of memory");
		db_log_fail(db, 2, "connect", NULL, "");
		return -1;
	}
	if (db_tls_readable(db, db->tls_ca, db->tls_ca_set ? "mysql.tls.ca_file" : "system CA bundle")
	    < 0 || db_tls_readable(db, db->tls_cert, "mysql.tls.cert_file") < 0 ||
	    db_tls_readable(db, db->tls_key, "mysql.tls.key_file") < 0)
		return -1;
	return 0;
}

/* db_open - connect to URL with OPTS and prepare the registry STMTS; *OUT is set even on failure */
int db_open(struct db **out, const struct url *url, const struct db_opts *opts,
    const struct db_stmt *stmts, size_t nstmts)
{
	struct db *db;

	*out = NULL;
	if ((db = calloc(1, sizeof(*db))) == NULL) {
		log_error("db=- op=open err=\"out of memory\"");
		return DB_ERR;
	}
	db->url = *url;
	if (opts != NULL)
		db->opts = *opts;
	db->opts.connect_timeout = db->opts.connect_timeout > 0 ? db->opts.connect_timeout : 5;
	db->opts.read_timeout = db->opts.read_timeout > 0 ? db->opts.read_timeout : 30;
	db->opts.write_timeout = db->opts.write_timeout > 0 ? db->opts.write_timeout : 30;
	db->opts.reconnect_tries = db->opts.reconnect_tries ? db->opts.reconnect_tries : 5;
	db->reg = stmts;
	db->nreg = stmts ? nstmts : 0;
	db->rnd = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL) ^ 0x9e3779b9u;
	snprintf(db->target, sizeof(db->target), "%s@%s:%d/%s", url->user, db_host(url), url->port,
	    url->path);
	if (db_tls_setup(db, opts != NULL ? opts->tls : NULL) != 0) {
		*out = db;
		return DB_ERR;
	}
	if (db_connect_once(db) != 0) {
		*out = db;     /* so that the caller may read db_error() before db_close() */
		return DB_ERR;
	}
	*out = db;
	return 0;
}

/* db_close - roll back what is open, close statements and connection, free DB (NULL ok) */
void db_close(struct db *db)
{
	if (db == NULL)
		return;
	db_disconnect(db);      /* closing the connection rolls back an open transaction */
	free(db->st);
	free(db->tls_ca);
	free(db->tls_cert);
	free(db->tls_key);
	memset(db->url.password, 0, sizeof(db->url.password));
	free(db);
}

/* db_prepare - replace the statement registry with STMTS and prepare them all now */
int db_prepare(struct db *db, const struct db_stmt *stmts, size_t nstmts)
{
	struct db_st *st;
	size_t i;

	if (db_ready(db) != 0)
		return DB_ERR;
	if (db->in_txn) {
		log_error("db=%s op=prepare err=\"not inside a transaction\"", db->target);
		return DB_ERR;
	}
	for (i = 0; i < db->nreg; i++)
		db_st_free(&db->st[i]);
	if ((st = realloc(db->st, (nstmts ? nstmts : 1) * sizeof(*st))) == NULL) {
		log_error("db=%s op=prepare err=\"out of memory\"", db->target);
		db->nreg = 0;
		return DB_ERR;
	}
	memset(st, 0, (nstmts ? nstmts : 1) * sizeof(*st));
	db->st = st;
	db->reg = stmts;
	db->nreg = nstmts;
	if (db_prepare_all(db) != 0) {
		db->broken = true;  /* the next call reconnects and tries again */
		return DB_ERR;
	}
	return 0;
}

/* db_time_from_usec - fill T (DATETIME) with USEC microseconds since the epoch, UTC */
static void db_time_from_usec(MYSQL_TIME *t, int64_t usec)
{
	int64_t us = usec % 1000000, sec = usec / 1000000;
	struct tm tm;
	time_t tt;

	if (us < 0) {
		us += 1000000;
		sec--;
	}
	tt = (time_t)sec;
	memset(t, 0, sizeof(*t));
	gmtime_r(&tt, &tm);
	t->year = (unsigned)tm.tm_year + 1900;
	t->month = (unsigned)tm.tm_mon + 1;
	t->day = (unsigned)tm.tm_mday;
	t->hour = (unsigned)tm.tm_hour;
	t->minute = (unsigned)tm.tm_min;
	t->second = (unsigned)tm.tm_sec;
	t->second_part = (unsigned long)us;
	t->time_type = MYSQL_TIMESTAMP_DATETIME;
}

/* db_bind_params - bind ARGS to statement S; -1 on a count mismatch */
static int db_bind_params(struct db *db, struct db_st *s, const struct db_arg *args, size_t nargs)
{
	unsigned i;

	if (nargs != s->nparams) {
		db_seterr(db, 0, "wrong number of arguments");
		return -1;
	}
	for (i = 0; i < s->nparams; i++) {
		MYSQL_BIND *b = &s->pbind[i];

		memset(b, 0, sizeof(*b));
		switch (args[i].type) {
		case DB_T_NULL:
			b->buffer_type = MYSQL_TYPE_NULL;
			break;
		case DB_T_I64:
			b->buffer_type = MYSQL_TYPE_LONGLONG;
			b->buffer = (void *)&args[i].i;
			break;
		case DB_T_STR:
		case DB_T_BIN:
			b->buffer_type = args[i].type == DB_T_STR ? MYSQL_TYPE_STRING : MYSQL_TYPE_BLOB;
			b->buffer = (void *)args[i].p;
			s->plen[i] = (unsigned long)args[i].len;
			b->buffer_length = s->plen[i];
			b->length = &s->plen[i];
			break;
		case DB_T_TIME:
			db_time_from_usec(&s->ptime[i], args[i].i);
			b->buffer_type = MYSQL_TYPE_DATETIME;
			b->buffer = &s->ptime[i];
			break;
		}
	}
	if (s->nparams && mysql_stmt_bind_param(s->h, s->pbind) != 0) {
		db_seterr(db, mysql_stmt_errno(s->h), mysql_stmt_error(s->h));
		return -1;
	}
	return 0;
}

/* db_bind_results - store S's result set client-side and bind buffers big enough for every row */
static int db_bind_results(struct db *db, struct db_st *s)
{
	MYSQL_RES *meta;
	MYSQL_FIELD *f;
	unsigned i;

	if (mysql_stmt_store_result(s->h) != 0)
		goto stmt_error;
	s->rows = true;
	if ((meta = mysql_stmt_result_metadata(s->h)) == NULL)
		goto stmt_error;
	f = mysql_fetch_fields(meta);
	for (i = 0; i < s->ncols; i++) {
		struct db_rcol *c = &s->rcol[i];
		MYSQL_BIND *b = &s->rbind[i];

		memset(b, 0, sizeof(*b));
		switch (f[i].type) {
		case MYSQL_TYPE_TINY: case MYSQL_TYPE_SHORT: case MYSQL_TYPE_LONG:
		case MYSQL_TYPE_INT24: case MYSQL_TYPE_LONGLONG: case MYSQL_TYPE_YEAR:
			c->kind = DB_K_INT;
			b->buffer_type = MYSQL_TYPE_LONGLONG;
			b->buffer = &c->i;
			b->is_unsigned = (my_bool)((f[i].flags & UNSIGNED_FLAG) != 0);
			break;
		case MYSQL_TYPE_DATETIME: case MYSQL_TYPE_TIMESTAMP:
			c->kind = DB_K_TIME;
			b->buffer_type = MYSQL_TYPE_DATETIME;
			b->buffer = &c->t;
			break;
		default:        /* text, blobs, DATE, DECIMAL, JSON...: as bytes */
			c->kind = DB_K_STR;
			if (c->cap < f[i].max_length + 1) {
				char *nb = realloc(c->buf, f[i].max_length + 1);

				if (nb == NULL) {
					mysql_free_result(meta);
					db_seterr(db, 0, "out of memory");
					return -1;
				}
				c->buf = nb;
				c->cap = f[i].max_length + 1;
			}
			b->buffer_type = MYSQL_TYPE_STRING;
			b->buffer = c->buf;
			b->buffer_length = c->cap;
			break;
		}
		b->length = &c->len;
		b->is_null = &c->isnull;
		b->error = &c->error;
	}
	mysql_free_result(meta);
	if (mysql_stmt_bind_result(s->h, s->rbind) != 0)
		goto stmt_error;
	return 0;
stmt_error:
	db_seterr(db, mysql_stmt_errno(s->h), mysql_stmt_error(s->h));
	return -1;
}

/* db_exec_once - bind, execute and store the result of statement S once */
static int db_exec_once(struct db *db, struct db_st *s, const struct db_arg *args, size_t nargs)
{
	if (s->rows) {
		mysql_stmt_free_result(s->h);
		s->rows = false;
	}
	if (db_bind_params(db, s, args, nargs) != 0)
		return -1;
	if (mysql_stmt_execute(s->h) != 0) {
		db_seterr(db, mysql_stmt_errno(s->h), mysql_stmt_error(s->h));
		return -1;
	}
	s->affected = mysql_stmt_affected_rows(s->h);
	s->insert_id = mysql_stmt_insert_id(s->h);
	if (s->ncols > 0)
		return db_bind_results(db, s);
	return 0;
}

/* db_stmt_ok - whether ID is in the registry (logged when not: a programming error) */
static bool db_stmt_ok(struct db *db, int id, const char *op)
{
	if (id >= 0 && (size_t)id < db->nreg)
		return true;
	log_error("db=%s op=%s stmt=%d err=\"no such statement\"", db->target, op, id);
	return false;
}

/* db_stmt_of - statement ID of DB, or NULL when ID is unknown or there is no connection */
static struct db_st *db_stmt_of(struct db *db, int id, const char *op)
{
	if (!db_stmt_ok(db, id, op) || db->st == NULL)
		return NULL;
	return &db->st[id];
}

/* db_exec - execute statement ID with NARGS arguments; a result set is stored for db_fetch;
 * 0, DB_ERR, DB_ERETRY or DB_EDUP */
int db_exec(struct db *db, int id, const struct db_arg *args, size_t nargs)
{
	int try, rc;

	if (!db_stmt_ok(db, id, "execute"))
		return DB_ERR;
	for (try = 0;; try++) {
		if ((rc = db_ready(db)) != 0)
			return rc;
		if (db_exec_once(db, &db->st[id], args, nargs) == 0)
			return 0;
		if ((rc = db_failed(db, try, db->reg[id].repeatable, "execute", db->reg[id].name)) != 1)
			return rc;
	}
}

/* db_fetch - the next row of ID's result: 1 row, 0 no more rows, DB_ERR */
int db_fetch(struct db *db, int id)
{
	struct db_st *s = db_stmt_of(db, id, "fetch");
	unsigned i;
	int rc;

	if (s == NULL || s->h == NULL)
		return DB_ERR;
	if (!s->rows)
		return 0;
	rc = mysql_stmt_fetch(s->h);
	if (rc == MYSQL_NO_DATA)
		return 0;
	if (rc != 0) {
		/* the whole result is stored and sized with max_length: this is a broken invariant */
		db_seterr(db, mysql_stmt_errno(s->h), rc == MYSQL_DATA_TRUNCATED ? "data truncated" :
		    mysql_stmt_error(s->h));
		db_log_fail(db, 2, "fetch", db->reg[id].name, "");
		return DB_ERR;
	}
	for (i = 0; i < s->ncols; i++)
		if (s->rcol[i].kind == DB_K_STR && s->rcol[i].cap > s->rcol[i].len)
			s->rcol[i].buf[s->rcol[i].len] = '\0';
	return 1;
}

/* db_rcol_of - column COL of ID's current row, or NULL */
static struct db_rcol *db_rcol_of(struct db *db, int id, unsigned col)
{
	struct db_st *s = db_stmt_of(db, id, "column");

	if (s == NULL || col >= s->ncols || s->rcol == NULL) {
		if (s != NULL)
			log_error("db=%s op=column stmt=%s col=%u err=\"no such column\"", db->target,
			    db->reg[id].name, col);
		return NULL;
	}
	return &s->rcol[col];
}

/* db_col_null - whether column COL of the current row is NULL */
bool db_col_null(struct db *db, int id, unsigned col)
{
	struct db_rcol *c = db_rcol_of(db, id, col);

	return c == NULL || c->isnull;
}

/* db_col_i64 - column COL as an integer (0 when NULL or not a number) */
int64_t db_col_i64(struct db *db, int id, unsigned col)
{
	struct db_rcol *c = db_rcol_of(db, id, col);

	if (c == NULL || c->isnull)
		return 0;
	if (c->kind == DB_K_INT)
		return c->i;
	if (c->kind == DB_K_STR)
		return strtoll(c->buf, NULL, 10);
	return 0;
}

/* db_col_str - column COL as bytes, NUL-terminated, length in *LEN (may be NULL); NULL when SQL
 * NULL or not a text column; valid until the next db_fetch or db_exec of ID */
const char *db_col_str(struct db *db, int id, unsigned col, size_t *len)
{
	struct db_rcol *c = db_rcol_of(db, id, col);

	if (len != NULL)
		*len = 0;
	if (c == NULL || c->isnull || c->kind != DB_K_STR)
		return NULL;
	if (len != NULL)
		*len = c->len;
	return c->buf;
}

/* db_col_time - a DATETIME/TIMESTAMP column COL as microseconds since the epoch (UTC) */
int64_t db_col_time(struct db *db, int id, unsigned col)
{
	struct db_rcol *c = db_rcol_of(db, id, col);
	struct tm tm;

	if (c == NULL || c->isnull || c->kind != DB_K_TIME)
		return 0;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = (int)c->t.year - 1900;
	tm.tm_mon = (int)c->t.month - 1;
	tm.tm_mday = (int)c->t.day;
	tm.tm_hour = (int)c->t.hour;
	tm.tm_min = (int)c->t.minute;
	tm.tm_sec = (int)c->t.second;
	return (int64_t)timegm(&tm) * 1000000 + (int64_t)c->t.second_part;
}

/* db_affected - rows changed by the last db_exec of ID (an upsert counts 1 insert, 2 update) */
uint64_t db_affected(struct db *db, int id)
{
	struct db_st *s = db_stmt_of(db, id, "affected");

	return s != NULL ? s->affected : 0;
}

/* db_insert_id - AUTO_INCREMENT value or LAST_INSERT_ID(expr) set by the last db_exec of ID */
uint64_t db_insert_id(struct db *db, int id)
{
	struct db_st *s = db_stmt_of(db, id, "insert_id");

	return s != NULL ? s->insert_id : 0;
}

/* db_query_once - run SQL text once, discarding any result */
static int db_query_once(struct db *db, const char *sql)
{
	MYSQL_RES *r;

	if (mysql_real_query(db->m, sql, strlen(sql)) != 0) {
		db_seterr(db, mysql_errno(db->m), mysql_error(db->m));
		return -1;
	}
	if ((r = mysql_store_result(db->m)) != NULL)
		mysql_free_result(r);
	else if (mysql_field_count(db->m) != 0) {
		db_seterr(db, mysql_errno(db->m), mysql_error(db->m));
		return -1;
	}
	return 0;
}

/* db_sql - run constant SQL text without arguments or results; WHAT names it in the error log */
int db_sql(struct db *db, const char *sql, const char *what)
{
	char head[64];
	int try, rc;

	if (what == NULL) {
		snprintf(head, sizeof(head), "%.60s", sql);
		what = head;
	}
	for (try = 0;; try++) {
		if ((rc = db_ready(db)) != 0)
			return rc;
		if (db_query_once(db, sql) == 0)
			return 0;
		if ((rc = db_failed(db, try, false, "query", what)) != 1)
			return rc;
	}
}

/* db_begin - start a transaction (reconnecting first if the connection was lost) */
int db_begin(struct db *db)
{
	int rc;

	if (db->in_txn) {
		log_error("db=%s op=begin err=\"a transaction is already open\"", db->target);
		return DB_ERR;
	}
	if ((rc = db_sql(db, "START TRANSACTION", "begin")) == 0)
		db->in_txn = true;
	return rc;
}

/* db_begin_read_committed - the same, the transaction at READ COMMITTED */
int db_begin_read_committed(struct db *db)
{
	int rc;

	if (db->in_txn) {
		log_error("db=%s op=begin err=\"a transaction is already open\"", db->target);
		return DB_ERR;
	}
	if ((rc = db_sql(db, "SET TRANSACTION ISOLATION LEVEL READ COMMITTED", "isolation")) != 0)
		return rc;
	return db_begin(db);
}

/* db_commit - commit; DB_ERETRY when the connection broke or the server rolled back */
int db_commit(struct db *db)
{
	int rc;

	if (!db->in_txn) {
		log_error("db=%s op=commit err=\"no transaction is open\"", db->target);
		return DB_ERR;
	}
	rc = db_sql(db, "COMMIT", "commit");
	db->in_txn = false;
	return rc;
}

/* db_rollback - roll back; always leaves no transaction open (also after a lost connection) */
int db_rollback(struct db *db)
{
	bool open = db->in_txn;

	db->in_txn = false;
	if (!open || db->broken || db->m == NULL)
		return 0;       /* nothing open, or the server already dropped it with the connection */
	if (db_query_once(db, "ROLLBACK") != 0) {
		if (db_classify(db->err) == DB_V_LOST) {
			db->broken = true;
			return 0;
		}
		db_log_fail(db, 2, "rollback", "rollback", "");
		return DB_ERR;
	}
	return 0;
}

/* db_in_txn - whether a transaction is open */
bool db_in_txn(const struct db *db)
{
	return db->in_txn;
}

/* db_errno - the server or client error number of the last failure (0: none) */
unsigned db_errno(const struct db *db)
{
	return db->err;
}

/* db_error - the text of the last failure ("" when none) */
const char *db_error(const struct db *db)
{
	return db->errmsg;
}

/* db_thread_id - the server's id for the current connection (KILL target in tests) */
unsigned long db_thread_id(struct db *db)
{
	return db->m != NULL ? mysql_thread_id(db->m) : 0;
}

/* db_target - "user@host:port/database" of DB, for messages (no password) */
const char *db_target(const struct db *db)
{
	return db->target;
}

/* db_registry - concatenate the modules' tables */
int db_registry(const struct db_module *m, size_t n, struct db_stmt **out)
{
	size_t i, total = 0;

	for (i = 0; i < n; i++)
		total += m[i].n;
	if ((*out = calloc(total ? total : 1, sizeof **out)) == NULL)
		return -1;
	for (total = 0, i = 0; i < n; i++) {
		memcpy(*out + total, m[i].stmts, m[i].n * sizeof **out);
		*m[i].base = (int)total;
		total += m[i].n;
	}
	return (int)total;
}
