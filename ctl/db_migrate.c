/* db_migrate - "heraldctl db migrate [--dry-run]" and "heraldctl db version"
 *
 * Migrations are the files NNNN_name.sql of the SQL directory ($HERALD_SQL_DIR, else
 * HERALD_SQL_DIR), applied in number order, each statement on its own, each file recorded in
 * schema_migrations with its SHA-256 once its last statement ran. schema_migrations itself is
 * created by the first migration: until it exists nothing counts as applied. Concurrent runs
 * queue on GET_LOCK (a per-database name), so the second finds the work done.
 * Statement rule (sql/0001_core.sql says it too): a statement ends with ';' at the end of a
 * line; lines that start with "--" are comments and are dropped.
 * Why no transaction around a file: MySQL commits DDL implicitly. A file that fails half-way
 * is reported with its statement number; CREATE TABLE IF NOT EXISTS makes the rerun safe.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

#include "ctl.h"
#include "db.h"
#include "url.h"

#define DB_MIGRATE_FILE_MAX (4 * 1024 * 1024)
#define DB_MIGRATE_LOCK_WAIT 60          /* seconds another run may hold the lock */

enum {
	M_LOCK, M_UNLOCK, M_SHA2, M_HAVE_TABLE,
	M_BOOT_N,                           /* the statements above need no table of ours */
	M_APPLIED = M_BOOT_N, M_RECORD, M_VERSION,
	M__N
};

static const struct db_stmt db_migrate_stmts[M__N] = {
	[M_LOCK] = { "migrate_lock",
		"SELECT GET_LOCK(LEFT(CONCAT('herald-migrate:', DATABASE()), 64), ?)" },
	[M_UNLOCK] = { "migrate_unlock",
		"SELECT RELEASE_LOCK(LEFT(CONCAT('herald-migrate:', DATABASE()), 64))" },
	[M_SHA2] = { "migrate_sha2", "SELECT SHA2(?, 256)" },
	[M_HAVE_TABLE] = { "migrate_have_table",
		"SELECT COUNT(*) FROM information_schema.tables"
		" WHERE table_schema = DATABASE() AND table_name = 'schema_migrations'" },
	[M_APPLIED] = { "migrate_applied",
		"SELECT version, name, checksum FROM schema_migrations ORDER BY version" },
	[M_RECORD] = { "migrate_record",
		"INSERT INTO schema_migrations (version, name, checksum) VALUES (?, ?, ?)" },
	[M_VERSION] = { "migrate_version",
		"SELECT COALESCE(MAX(version), 0) FROM schema_migrations" },
};

struct db_migrate_file {
	unsigned version;
	char *name;                 /* "0001_core.sql" */
	char *text;
	size_t len;
	char sum[65];               /* SHA-256, hex */
	bool applied;
};

struct db_migrate {
	const char *dir;
	struct db_migrate_file *f;
	size_t n;
	struct db *db;
	bool have_table;            /* schema_migrations exists (registry fully prepared) */
};

/* db_migrate_free - release the files and the connection of M */
static void db_migrate_free(struct db_migrate *m)
{
	size_t i;

	for (i = 0; i < m->n; i++) {
		free(m->f[i].name);
		free(m->f[i].text);
	}
	free(m->f);
	db_close(m->db);
}

/* db_migrate_parse_name - VERSION of a file named NNNN_name.sql; -1 if NAME is not one */
static int db_migrate_parse_name(const char *name, unsigned *version)
{
	const char *p = name;
	unsigned long v = 0;
	size_t len = strlen(name);

	if (len < 5 || strcmp(name + len - 4, ".sql") != 0)
		return -1;
	while (*p >= '0' && *p <= '9' && p - name < 9)
		v = v * 10 + (unsigned)(*p++ - '0');
	if (p == name || *p != '_' || v == 0)
		return -1;
	for (p++; p < name + len - 4; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '_' || *p == '-'))
			return -1;
	*version = (unsigned)v;
	return 0;
}

/* db_migrate_cmp - qsort order of files: by version */
static int db_migrate_cmp(const void *a, const void *b)
{
	const struct db_migrate_file *x = a, *y = b;

	return x->version < y->version ? -1 : x->version > y->version;
}

/* db_migrate_read - read DIR/NAME into F (text NUL-terminated); an EX_ code on error */
static int db_migrate_read(const char *dir, const char *name, struct db_migrate_file *f)
{
	char path[4096];
	struct stat st;
	FILE *fp;
	size_t got;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fp = fopen(path, "r")) == NULL || fstat(fileno(fp), &st) != 0) {
		fprintf(stderr, "heraldctl: %s: %s\n", path, strerror(errno));
		if (fp != NULL)
			fclose(fp);
		return EX_NOINPUT;
	}
	if (st.st_size > DB_MIGRATE_FILE_MAX) {
		fprintf(stderr, "heraldctl: %s: larger than %d bytes\n", path, DB_MIGRATE_FILE_MAX);
		fclose(fp);
		return EX_DATAERR;
	}
	if ((f->text = malloc((size_t)st.st_size + 1)) == NULL) {
		fprintf(stderr, "heraldctl: out of memory\n");
		fclose(fp);
		return EX_OSERR;
	}
	got = fread(f->text, 1, (size_t)st.st_size, fp);
	fclose(fp);
	f->text[got] = '\0';
	f->len = got;
	if (got != (size_t)st.st_size) {
		fprintf(stderr, "heraldctl: %s: short read\n", path);
		return EX_IOERR;
	}
	if (memchr(f->text, '\0', got) != NULL) {
		fprintf(stderr, "heraldctl: %s: holds a NUL byte\n", path);
		return EX_DATAERR;
	}
	return 0;
}

/* db_migrate_scan - read every NNNN_name.sql of M->dir, sorted by number; an EX_ code on error */
static int db_migrate_scan(struct db_migrate *m)
{
	struct db_migrate_file *nf;
	struct dirent *de;
	DIR *d;
	size_t i, cap = 0;
	int rc = 0;

	if ((d = opendir(m->dir)) == NULL) {
		fprintf(stderr, "heraldctl: SQL directory %s: %s (set HERALD_SQL_DIR)\n", m->dir,
		    strerror(errno));
		return EX_NOINPUT;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		unsigned v;

		if (len < 4 || strcmp(de->d_name + len - 4, ".sql") != 0)
			continue;
		if (db_migrate_parse_name(de->d_name, &v) != 0) {
			fprintf(stderr, "heraldctl: %s/%s: not a migration name (NNNN_name.sql)\n",
			    m->dir, de->d_name);
			rc = EX_DATAERR;
			break;
		}
		if (m->n == cap) {
			cap = cap ? cap * 2 : 16;
			if ((nf = realloc(m->f, cap * sizeof(*nf))) == NULL) {
				rc = EX_OSERR;
				break;
			}
			m->f = nf;
		}
		memset(&m->f[m->n], 0, sizeof(m->f[m->n]));
		m->f[m->n].version = v;
		if ((m->f[m->n].name = strdup(de->d_name)) == NULL) {
			rc = EX_OSERR;
			break;
		}
		m->n++;
		rc = db_migrate_read(m->dir, de->d_name, &m->f[m->n - 1]);
	}
	closedir(d);
	if (rc == EX_OSERR)
		fprintf(stderr, "heraldctl: out of memory\n");
	if (rc != 0)
		return rc;
	if (m->n == 0) {
		fprintf(stderr, "heraldctl: SQL directory %s holds no NNNN_name.sql file (set"
		    " HERALD_SQL_DIR)\n", m->dir);
		return EX_NOINPUT;
	}
	qsort(m->f, m->n, sizeof(*m->f), db_migrate_cmp);
	for (i = 1; i < m->n; i++) {
		if (m->f[i].version == m->f[i - 1].version) {
			fprintf(stderr, "heraldctl: %s: %s and %s have the same number\n", m->dir,
			    m->f[i - 1].name, m->f[i].name);
			return EX_DATAERR;
		}
	}
	return 0;
}

/* db_migrate_comment - whether the line P..E is a comment line ("--" after blanks) */
static bool db_migrate_comment(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	return e - p >= 2 && p[0] == '-' && p[1] == '-';
}

/* db_migrate_next - the next statement of TEXT from *POS (*LINE counts lines) into a new string
 * *STMT (comment lines and the final ';' left out) that starts at line *AT: 1, 0 at the end,
 * -1 when the text ends inside a statement or memory runs out */
static int db_migrate_next(const char *text, size_t *pos, int *line, char **stmt, int *at)
{
	const char *p = text + *pos;
	size_t n = 0;
	char *buf;

	if ((buf = malloc(strlen(p) + 1)) == NULL)
		return -1;
	while (*p != '\0') {
		const char *eol = strchr(p, '\n');
		const char *next = eol ? eol + 1 : p + strlen(p);
		const char *e = eol ? eol : next;

		(*line)++;
		if (!db_migrate_comment(p, e) && (n > 0 || strspn(p, " \t\r") < (size_t)(e - p))) {
			if (n == 0)
				*at = *line;
			while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
				e--;
			memcpy(buf + n, p, (size_t)(e - p));
			n += (size_t)(e - p);
			if (e > p && e[-1] == ';') {
				buf[n - 1] = '\0';
				*pos = (size_t)(next - text);
				*stmt = buf;
				return 1;
			}
			buf[n++] = '\n';
		}
		p = next;
	}
	free(buf);
	*pos = (size_t)(p - text);
	*stmt = NULL;
	return n == 0 ? 0 : -1;
}

/* db_migrate_count - how many statements file F holds; -1 (printed) when one is unterminated */
static int db_migrate_count(const struct db_migrate_file *f)
{
	size_t pos = 0;
	int line = 0, at = 0, n = 0, r;
	char *s;

	while ((r = db_migrate_next(f->text, &pos, &line, &s, &at)) == 1) {
		free(s);
		n++;
	}
	if (r < 0) {
		fprintf(stderr, "heraldctl: %s: statement %d (line %d) does not end with ';' at the end"
		    " of a line\n", f->name, n + 1, at);
		return -1;
	}
	return n;
}

/* db_migrate_connect - open the database of CONF with the statements that need no table */
static int db_migrate_connect(struct db_migrate *m, const char *conf)
{
	struct db_opts opts = { .reconnect_tries = -1 };   /* a lost connection loses the lock */
	struct url u;
	int rc;

	if ((rc = ctl_mysql_url(conf, &u, &opts)) != 0)
		return rc;
	if (db_open(&m->db, &u, &opts, db_migrate_stmts, M_BOOT_N) != 0)
		return EX_UNAVAILABLE;          /* db.c logged why, naming the server */
	return 0;
}

/* db_migrate_fail - the exit code for a failed statement: the server gone, or the data */
static int db_migrate_fail(const struct db_migrate *m)
{
	unsigned e = db_errno(m->db);

	return e >= 2000 && e < 3000 ? EX_UNAVAILABLE : EX_DATAERR;
}

/* db_migrate_have_table - look whether schema_migrations exists; prepare the rest if so */
static int db_migrate_have_table(struct db_migrate *m)
{
	if (m->have_table)
		return 0;
	if (db_exec(m->db, M_HAVE_TABLE, DB_NOARGS) != 0 || db_fetch(m->db, M_HAVE_TABLE) != 1)
		return db_migrate_fail(m);
	if (db_col_i64(m->db, M_HAVE_TABLE, 0) == 0)
		return 0;
	if (db_prepare(m->db, db_migrate_stmts, M__N) != 0)
		return db_migrate_fail(m);
	m->have_table = true;
	return 0;
}

/* db_migrate_checksums - SHA-256 of every file, computed by the server (SHA2) */
static int db_migrate_checksums(struct db_migrate *m)
{
	size_t i;

	for (i = 0; i < m->n; i++) {
		const char *s;
		size_t len;

		if (db_exec(m->db, M_SHA2, DB_ARGS(db_bin(m->f[i].text, m->f[i].len))) != 0 ||
		    db_fetch(m->db, M_SHA2) != 1)
			return db_migrate_fail(m);
		s = db_col_str(m->db, M_SHA2, 0, &len);
		if (s == NULL || len != 64)
			return EX_SOFTWARE;
		memcpy(m->f[i].sum, s, 65);
	}
	return 0;
}

/* db_migrate_find - the file numbered VERSION, or NULL */
static struct db_migrate_file *db_migrate_find(struct db_migrate *m, unsigned version)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (m->f[i].version == version)
			return &m->f[i];
	return NULL;
}

/* db_migrate_applied - mark the applied files; EX_DATAERR when one changed since */
static int db_migrate_applied(struct db_migrate *m)
{
	int r, rc = 0;

	if (!m->have_table)
		return 0;
	if (db_exec(m->db, M_APPLIED, DB_NOARGS) != 0)
		return db_migrate_fail(m);
	while ((r = db_fetch(m->db, M_APPLIED)) == 1) {
		unsigned v = (unsigned)db_col_i64(m->db, M_APPLIED, 0);
		const char *name = db_col_str(m->db, M_APPLIED, 1, NULL);
		const char *sum = db_col_str(m->db, M_APPLIED, 2, NULL);
		struct db_migrate_file *f = db_migrate_find(m, v);

		if (f == NULL) {
			fprintf(stderr, "heraldctl: warning: migration %04u (%s) is applied but not in %s:"
			    " the database is newer than this heraldctl\n", v, name ? name : "?", m->dir);
			continue;
		}
		f->applied = true;
		if (name == NULL || sum == NULL || strcmp(name, f->name) != 0 ||
		    strcmp(sum, f->sum) != 0) {
			fprintf(stderr, "heraldctl: %s/%s: changed since it was applied as %s (checksum"
			    " %.12s..., now %.12s...): restore it and put changes in a new migration\n",
			    m->dir, f->name, name ? name : "?", sum ? sum : "?", f->sum);
			rc = EX_DATAERR;
		}
	}
	return r < 0 ? db_migrate_fail(m) : rc;
}

/* db_migrate_apply - run the statements of F one by one, then record F */
static int db_migrate_apply(struct db_migrate *m, struct db_migrate_file *f)
{
	size_t pos = 0;
	int line = 0, at = 0, n = 0, r, rc;
	char *s, what[320];

	while ((r = db_migrate_next(f->text, &pos, &line, &s, &at)) == 1) {
		n++;
		snprintf(what, sizeof(what), "%s statement %d (line %d)", f->name, n, at);
		rc = db_sql(m->db, s, what);
		free(s);
		if (rc != 0) {          /* db.c logged the error with WHAT; say what it leaves */
			fprintf(stderr, "heraldctl: %s: stopped at statement %d (line %d); %d statement%s"
			    " before it ran (DDL commits at once): fix the file and run db migrate"
			    " again\n", f->name, n, at, n - 1, n == 2 ? "" : "s");
			return db_migrate_fail(m);
		}
	}
	if (r < 0) {
		fprintf(stderr, "heraldctl: %s: statement %d (line %d) does not end with ';' at the end"
		    " of a line\n", f->name, n + 1, at);
		return EX_DATAERR;
	}
	if ((rc = db_migrate_have_table(m)) != 0)
		return rc;
	if (!m->have_table) {
		fprintf(stderr, "heraldctl: %s: schema_migrations still does not exist: the first"
		    " migration must create it\n", f->name);
		return EX_DATAERR;
	}
	if (db_exec(m->db, M_RECORD, DB_ARGS(db_i64(f->version), db_str(f->name),
	    db_str(f->sum))) != 0)
		return db_migrate_fail(m);
	printf("applied %s (%d statement%s)\n", f->name, n, n == 1 ? "" : "s");
	fflush(stdout);
	return 0;
}

/* db_migrate_lock - take the per-database migration lock (GET_LOCK), waiting for another run */
static int db_migrate_lock(struct db_migrate *m)
{
	if (db_exec(m->db, M_LOCK, DB_ARGS(db_i64(DB_MIGRATE_LOCK_WAIT))) != 0 ||
	    db_fetch(m->db, M_LOCK) != 1)
		return db_migrate_fail(m);
	if (db_col_null(m->db, M_LOCK, 0) || db_col_i64(m->db, M_LOCK, 0) != 1) {
		fprintf(stderr, "heraldctl: another db migrate still holds the lock after %d s\n",
		    DB_MIGRATE_LOCK_WAIT);
		return EX_TEMPFAIL;
	}
	return 0;
}

/* db_migrate_run - the migrate command on M; DRY_RUN only says what it would apply */
static int db_migrate_run(struct db_migrate *m, bool dry_run)
{
	unsigned last = 0;
	size_t i, pending = 0;
	int rc;

	if (!dry_run && (rc = db_migrate_lock(m)) != 0)
		return rc;
	if ((rc = db_migrate_checksums(m)) != 0 || (rc = db_migrate_have_table(m)) != 0 ||
	    (rc = db_migrate_applied(m)) != 0)
		return rc;
	for (i = 0; i < m->n; i++) {          /* every pending file must split before any runs */
		int n;

		if (m->f[i].applied)
			continue;
		if ((n = db_migrate_count(&m->f[i])) < 0)
			return EX_DATAERR;
		pending++;
		if (dry_run)
			printf("would apply %s (%d statement%s)\n", m->f[i].name, n, n == 1 ? "" : "s");
	}
	for (i = 0; i < m->n; i++) {
		if (!m->f[i].applied && !dry_run && (rc = db_migrate_apply(m, &m->f[i])) != 0)
			return rc;
		if (m->f[i].applied || !dry_run)
			last = m->f[i].version;
	}
	if (pending == 0)
		printf("up to date at version %04u\n", last);
	else if (dry_run)
		printf("%zu migration%s pending (dry run: nothing applied)\n", pending,
		    pending == 1 ? "" : "s");
	else
		printf("database at version %04u\n", last);
	if (!dry_run && db_exec(m->db, M_UNLOCK, DB_NOARGS) != 0)
		return db_migrate_fail(m);
	return 0;
}

/* db_migrate_version - print the highest applied migration number */
static int db_migrate_version(struct db_migrate *m)
{
	int rc;

	if ((rc = db_migrate_have_table(m)) != 0)
		return rc;
	if (!m->have_table) {
		printf("%04u\n", 0u);
		fprintf(stderr, "heraldctl: no migration applied yet (heraldctl db migrate)\n");
		return 0;
	}
	if (db_exec(m->db, M_VERSION, DB_NOARGS) != 0 || db_fetch(m->db, M_VERSION) != 1)
		return db_migrate_fail(m);
	printf("%04u\n", (unsigned)db_col_i64(m->db, M_VERSION, 0));
	return 0;
}

static const char db_migrate_usage_text[] =
	"usage: heraldctl [-c CONF] db migrate [--dry-run]\n"
	"       heraldctl [-c CONF] db version\n"
	"  migrate   apply the pending sql/NNNN_*.sql migrations (idempotent; concurrent runs wait\n"
	"            for each other); --dry-run lists them\n"
	"  version   print the schema version of the database\n";

/* db_migrate_usage - the db commands' usage on stderr; EX_USAGE */
static int db_migrate_usage(void)
{
	fputs(db_migrate_usage_text, stderr);
	return EX_USAGE;
}

/* db_migrate_cmd - "heraldctl db migrate [--dry-run]" and "heraldctl db version" */
int db_migrate_cmd(const char *conf, int argc, char **argv)
{
	struct db_migrate m = { 0 };
	bool dry_run = false, migrate;
	int i, rc;

	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(db_migrate_usage_text, stdout);
			return EX_OK;
		}
	if (argc < 2)
		return db_migrate_usage();
	migrate = strcmp(argv[1], "migrate") == 0;
	if (!migrate && strcmp(argv[1], "version") != 0)
		return db_migrate_usage();
	for (i = 2; i < argc; i++) {
		if (migrate && strcmp(argv[i], "--dry-run") == 0)
			dry_run = true;
		else
			return db_migrate_usage();
	}
	m.dir = getenv("HERALD_SQL_DIR");
	if (m.dir == NULL || *m.dir == '\0')
		m.dir = HERALD_SQL_DIR;
	if (migrate && (rc = db_migrate_scan(&m)) != 0)
		goto out;
	if ((rc = db_migrate_connect(&m, conf)) != 0)
		goto out;
	rc = migrate ? db_migrate_run(&m, dry_run) : db_migrate_version(&m);
out:
	db_migrate_free(&m);
	return rc;
}
