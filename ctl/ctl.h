/* ctl - what heraldctl's command files share */
#ifndef HERALD_CTL_H
#define HERALD_CTL_H

struct url;
struct db_opts;

#ifndef HERALD_SQL_DIR
#define HERALD_SQL_DIR "/usr/local/share/herald/sql"   /* Makefile.am: $(pkgdatadir)/sql */
#endif

/* ctl_mysql_url - the MySQL URL and timeouts for CONF (the -c file, may be NULL; the
 * environment overrides it) into OUT and OPTS; 0, or an EX_ code with the reason on stderr */
int ctl_mysql_url(const char *conf, struct url *out, struct db_opts *opts);

/* db_migrate_cmd - "heraldctl db migrate [--dry-run]" and "heraldctl db version"; ARGV[0] is
 * "db"; returns the exit code */
int db_migrate_cmd(const char *conf, int argc, char **argv);

#endif
