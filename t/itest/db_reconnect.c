/* db_reconnect - shared/db against a real server (TAP): prepared round trips, hostile data, a
 * connection killed outside and inside a transaction, the atomic cap increment, timeouts.
 * Needs HERALD_MYSQL_URL (a scratch database: it creates and drops itest_* tables).
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../unit/tap.h"
#include "db.h"
#include "log.h"
#include "url.h"

enum {
	Q_PUT, Q_GET, Q_KILL, Q_CAP, Q_CAP_N, Q_X_COUNT, Q_CONN_ID,
	Q__N
};

static const struct db_stmt itest_stmts[Q__N] = {
	[Q_PUT] = { "put", "INSERT INTO itest_db (s, b, t, n) VALUES (?, ?, ?, ?)" },
	[Q_GET] = { "get", "SELECT s, b, t, n FROM itest_db WHERE id = ?", true },
	[Q_KILL] = { "kill", "KILL CONNECTION ?" },
	[Q_CAP] = { "cap", "INSERT INTO itest_cap (subject, channel, day, n) VALUES (?, ?, ?, 1)"
		" ON DUPLICATE KEY UPDATE n = LAST_INSERT_ID(IF(n < ?, n + 1, n))" },
	[Q_CAP_N] = { "cap_n", "SELECT n FROM itest_cap WHERE subject = ? AND channel = ? AND day = ?", true },
	[Q_X_COUNT] = { "x_count", "SELECT COUNT(*) FROM itest_x", true },
	[Q_CONN_ID] = { "conn_id", "SELECT CONNECTION_ID()", true },
};

static const char *const itest_setup[] = {
	"DROP TABLE IF EXISTS itest_db, itest_cap, itest_x",
	"CREATE TABLE itest_db (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,"
	" s TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL, b BLOB NULL, t DATETIME(6) NULL,"
	" n BIGINT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
	"CREATE TABLE itest_cap (subject VARCHAR(255) NOT NULL, channel VARCHAR(16) NOT NULL,"
	" day DATE NOT NULL, n INT UNSIGNED NOT NULL, PRIMARY KEY (subject, channel, day))"
	" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
	"CREATE TABLE itest_x (a INT) ENGINE=InnoDB",
	NULL
};

/* itest_now - monotonic seconds */
static double itest_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* itest_put - insert one row; returns its id or 0 (after a failed test) */
static uint64_t itest_put(struct db *db, const char *s, size_t slen, const void *b, size_t blen,
    int64_t t, int64_t n, int *rc)
{
	*rc = db_exec(db, Q_PUT, DB_ARGS(db_strn(s, slen), db_bin(b, blen), db_time(t), db_i64(n)));
	return *rc == 0 ? db_insert_id(db, Q_PUT) : 0;
}

/* itest_get_s - fetch row ID's text column into *LEN; NULL when absent */
static const char *itest_get_s(struct db *db, uint64_t id, size_t *len)
{
	if (db_exec(db, Q_GET, DB_ARGS(db_i64((int64_t)id))) != 0 || db_fetch(db, Q_GET) != 1)
		return NULL;
	return db_col_str(db, Q_GET, 0, len);
}

/* itest_kill - kill DB's connection from DB2 */
static int itest_kill(struct db *db2, struct db *db)
{
	return db_exec(db2, Q_KILL, DB_ARGS(db_i64((int64_t)db_thread_id(db))));
}

/* itest_cap - one atomic cap increment at CAP 3; *N gets the slot number or 0 when refused */
static int itest_cap(struct db *db, uint64_t *n)
{
	if (db_exec(db, Q_CAP, DB_ARGS(db_str("u:user123"), db_str("email"), db_str("2026-11-22"),
	    db_i64(3))) != 0)
		return -1;
	switch (db_affected(db, Q_CAP)) {
	case 1: *n = 1; break;
	case 2: *n = db_insert_id(db, Q_CAP); break;
	default: *n = 0; break;
	}
	return 0;
}

/* itest_listener - a loopback TCP socket that listens but never answers (LISTEN) or a port
 * that was free a moment ago (!LISTEN, socket closed); the port in *PORT, the fd returned */
static int itest_listener(int listen_too, int *port)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0 || (listen_too && listen(fd, 8) != 0)) {
		perror("itest_listener");
		exit(1);
	}
	*port = ntohs(sa.sin_port);
	if (!listen_too) {
		close(fd);
		return -1;
	}
	return fd;
}

/* itest_basics - insert/select round trip with every argument type */
static void itest_basics(struct db *db)
{
	const int64_t t = 1795338000123456LL;      /* 2026-11-22T09:00:00.123456Z */
	uint64_t id;
	size_t len;
	int rc;

	id = itest_put(db, "hello", 5, "\x01\x02", 2, t, -42, &rc);
	is_int(rc, 0, "insert through a prepared statement");
	is_int((long long)id, 1, "insert id is 1");
	is_str(itest_get_s(db, id, &len), "hello", "select returns the text");
	is_int(db_col_i64(db, Q_GET, 3), -42, "and the integer");
	is_int(db_col_time(db, Q_GET, 2), t, "and the DATETIME(6) to the microsecond (UTC)");
	ok(db_fetch(db, Q_GET) == 0, "one row only");
	id = itest_put(db, NULL, 0, NULL, 0, 0, 0, &rc);
	itest_get_s(db, id, &len);
	ok(rc == 0 && db_col_null(db, Q_GET, 0) && db_col_null(db, Q_GET, 1) &&
	    !db_col_null(db, Q_GET, 3), "NULL text and blob round-trip as NULL");
	ok(db_exec(db, Q_GET, DB_NOARGS) == DB_ERR, "a wrong argument count is refused");
}

/* itest_kill_outside - a killed connection outside a transaction: reconnect, re-prepare, retry */
static void itest_kill_outside(struct db *db, struct db *db2)
{
	unsigned long before = db_thread_id(db);
	size_t len;
	int rc;

	is_int(itest_kill(db2, db), 0, "a second connection kills the first");
	is_str(itest_get_s(db, 1, &len), "hello", "the next statement succeeds after reconnecting");
	ok(db_thread_id(db) != before && db_thread_id(db) != 0, "on a new connection");
	itest_put(db, "after", 5, NULL, 0, 0, 1, &rc);
	is_int(rc, 0, "other statements were prepared again");
	itest_kill(db2, db);
	itest_put(db, "once", 4, NULL, 0, 0, 1, &rc);
	diag("a write on a killed connection returned %d", rc);
	ok(rc == 0 || rc == DB_ERETRY, "a write that is not repeatable is retried only if it never ran");
	itest_put(db, "after2", 6, NULL, 0, 0, 1, &rc);
	is_int(rc, 0, "the connection after that works");
}

/* itest_kill_inside - a killed connection inside a transaction gives DB_ERETRY */
static void itest_kill_inside(struct db *db, struct db *db2)
{
	uint64_t id, id2 = 0;
	size_t len;
	int rc;

	is_int(db_begin(db), 0, "begin");
	id = itest_put(db, "in-txn", 6, NULL, 0, 0, 2, &rc);
	is_int(rc, 0, "insert inside the transaction");
	itest_kill(db2, db);
	itest_put(db, "lost", 4, NULL, 0, 0, 3, &rc);
	is_int(rc, DB_ERETRY, "killed inside a transaction: \"retry the transaction\"");
	ok(!db_in_txn(db) && db_rollback(db) == 0, "no transaction left open; rollback is harmless");
	ok(itest_get_s(db, id, &len) == NULL, "the killed transaction's insert is gone");
	rc = db_begin(db);
	if (rc == 0)
		id2 = itest_put(db, "in-txn", 6, NULL, 0, 0, 2, &rc);
	ok(rc == 0 && db_commit(db) == 0, "the transaction runs again and commits");
	is_str(itest_get_s(db, id2, &len), "in-txn", "its row is there");
	is_int(db_commit(db), DB_ERR, "commit without a transaction is an error");
}

/* itest_hostile - hostile text and bytes round-trip unchanged, nothing is executed */
static void itest_hostile(struct db *db)
{
	static const char *const s[] = {
		"O'Reilly \"quoted\" `back`", "back\\slash\\", "'; DROP TABLE itest_x; --",
		"\\'; DROP TABLE itest_x; -- \\", "%_ LIKE wild*cards? ?", "caf\xc3\xa9 \xf0\x9f\x93\xa8 \xe2\x80\xae",
		"", NULL
	};
	unsigned char bin[255];
	const char *got;
	size_t i, len;
	uint64_t id;
	int rc;

	for (i = 0; s[i] != NULL; i++) {
		id = itest_put(db, s[i], strlen(s[i]), NULL, 0, 0, 0, &rc);
		got = itest_get_s(db, id, &len);
		ok(rc == 0 && got != NULL && len == strlen(s[i]) && memcmp(got, s[i], len) == 0,
		    "hostile text %zu round-trips unchanged", i + 1);
	}
	for (i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)(i + 1);
	id = itest_put(db, "bin", 3, bin, sizeof(bin), 0, 0, &rc);
	itest_get_s(db, id, &len);
	got = db_col_str(db, Q_GET, 1, &len);
	ok(rc == 0 && got != NULL && len == sizeof(bin) && memcmp(got, bin, len) == 0,
	    "bytes 0x01..0xff round-trip unchanged");
	ok(db_exec(db, Q_X_COUNT, DB_NOARGS) == 0 && db_fetch(db, Q_X_COUNT) == 1,
	    "table itest_x still exists");
}

/* itest_caps - the atomic check-and-increment gives 1, 2, 3, then refuses at cap 3 */
static void itest_caps(struct db *db)
{
	uint64_t n[5] = { 9, 9, 9, 9, 9 };
	int i, rc = 0;

	for (i = 0; i < 5; i++)
		rc |= itest_cap(db, &n[i]);
	ok(rc == 0, "five increments ran");
	ok(n[0] == 1 && n[1] == 2 && n[2] == 3, "slots 1, 2, 3");
	ok(n[3] == 0 && n[4] == 0, "then refused at cap 3");
	ok(db_exec(db, Q_CAP_N, DB_ARGS(db_str("u:user123"), db_str("email"),
	    db_str("2026-11-22"))) == 0 && db_fetch(db, Q_CAP_N) == 1 &&
	    db_col_i64(db, Q_CAP_N, 0) == 3, "the counter stays at 3");
}

/* itest_timeouts - a closed port and a server that never greets both fail within the timeout */
static void itest_timeouts(const struct url *good)
{
	struct db_opts opts = { .connect_timeout = 2, .read_timeout = 2, .write_timeout = 2 };
	struct url u = *good;
	struct db *db;
	double t0, dt;
	int fd, rc;

	itest_listener(0, &u.port);
	t0 = itest_now();
	rc = db_open(&db, &u, &opts, NULL, 0);
	dt = itest_now() - t0;
	ok(rc == DB_ERR && dt < 3.0, "a closed port fails within the connect timeout");
	ok(strstr(db_error(db), "connect") != NULL && strstr(db_error(db), "127.0.0.1") != NULL,
	    "with an error naming the connect and the address");
	diag("%s", db_error(db));
	db_close(db);

	fd = itest_listener(1, &u.port);
	t0 = itest_now();
	rc = db_open(&db, &u, &opts, NULL, 0);
	dt = itest_now() - t0;
	ok(rc == DB_ERR && dt < 5.0, "a listener that never greets fails within the timeouts");
	diag("%s", db_error(db));
	db_close(db);
	close(fd);
}

/* main - run the plan against $HERALD_MYSQL_URL */
int main(void)
{
	struct db *db = NULL, *db2 = NULL;
	const char *env = getenv("HERALD_MYSQL_URL");
	struct url u, lu;
	char err[256];
	int i, rc = 0;

	log_init("db_reconnect", LOG_LEVEL_WARN);
	plan(44);
	if (env == NULL || url_parse(env, &u, err, sizeof(err)) != 0) {
		printf("Bail out! HERALD_MYSQL_URL missing or bad\n");
		return 1;
	}
	lu = u;
	snprintf(lu.host, sizeof(lu.host), "localhost");
	is_int(db_open(&db, &lu, NULL, NULL, 0), 0, "connects, host \"localhost\" meaning TCP");
	for (i = 0; itest_setup[i] != NULL; i++)
		rc |= db_sql(db, itest_setup[i], NULL);
	is_int(rc, 0, "scratch tables created");
	is_int(db_prepare(db, itest_stmts, Q__N), 0, "statements prepared");
	is_int(db_open(&db2, &u, NULL, itest_stmts, Q__N), 0, "a second connection");

	itest_basics(db);
	itest_kill_outside(db, db2);
	itest_kill_inside(db, db2);
	itest_hostile(db);
	itest_caps(db);
	is_int(db_exec(db, Q_CAP, DB_ARGS(db_str("u:user123"), db_str("email"), db_str("2026-11-22"),
	    db_i64(3))), 0, "(the upsert never reports a duplicate)");
	is_int(db_sql(db, "INSERT INTO itest_cap VALUES ('u:user123', 'email', '2026-11-22', 1)",
	    "dup"), DB_EDUP, "a duplicate key is DB_EDUP");
	itest_timeouts(&u);

	db_sql(db, "DROP TABLE IF EXISTS itest_db, itest_cap, itest_x", NULL);
	db_close(db);
	db_close(db2);
	return done();
}
