/* log - one key=value line per event, to stderr, a file or syslog (SPEC §9) */
#ifndef HERALD_LOG_H
#define HERALD_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR
};

/* log_init - name the program and pick the minimum level; output goes to stderr */
void log_init(const char *prog, enum log_level level);
/* log_to_file - append to PATH from now on (reopened by log_reopen); -1 on error, stderr kept */
int log_to_file(const char *path);
/* log_to_syslog - send lines to syslog(3) with FACILITY from now on */
void log_to_syslog(int facility);
/* log_reopen - reopen the log file (SIGUSR1, logrotate); a no-op for stderr and syslog */
int log_reopen(void);
/* log_level_parse - "debug|info|warn|error" to a level; -1 if unknown */
int log_level_parse(const char *s);
/* log_set_level - change the minimum level */
void log_set_level(enum log_level level);

/* Each takes the caller's key=value text, e.g. log_info("event=start workers=%d", n). */
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* log_warn - warning with " errno=... err=\"strerror\"" appended */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* log_warnx - warning without errno */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* log_error - error-level line without errno */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* fatal - log with errno and exit(EX_) CODE; only at start-up or on a broken invariant */
void fatal(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
/* fatalx - as fatal, without errno */
void fatalx(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* log_quote - write S into BUF (size N) as a key=value-safe token: quoted and escaped
 * when it holds spaces, quotes, '=' or control bytes; returns BUF */
const char *log_quote(char *buf, size_t n, const char *s);

#endif
