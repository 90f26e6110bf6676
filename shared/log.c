/* log - one key=value line per event, to stderr, a file or syslog (SPEC §9)
 *
 * A line is "ts=<rfc3339> level=<lvl> prog=<name> pid=<pid> <text>\n" (syslog: "level=<lvl>
 * <text>", syslog adds time, name and pid). The caller's text is written as given except that
 * control bytes are escaped (\n, \r, \t, \xNN) so that one event stays one line. A line is at
 * most LOG_LINE_MAX bytes, cut on a UTF-8 boundary and marked "…truncated"; log_warn's errno
 * part survives the cut. Each line goes out in one write(2), so lines from several processes
 * appending to the same file do not interleave. Not async-signal-safe.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "rfc3339.h"

#define LOG_LINE_MAX 4096
#define LOG_TRUNCATED "\xe2\x80\xa6truncated"          /* "…truncated" */
#define LOG_TRUNCATED_LEN (sizeof LOG_TRUNCATED - 1)

enum log_dest {
	LOG_DEST_STDERR,
	LOG_DEST_FILE,
	LOG_DEST_SYSLOG
};

static struct {
	char prog[64];
	enum log_level min;
	enum log_dest dest;
	int fd;                          /* the file's descriptor when dest is LOG_DEST_FILE */
	char path[PATH_MAX];
} log_state = { "", LOG_LEVEL_INFO, LOG_DEST_STDERR, -1, "" };

static const char *const log_names[] = { "debug", "info", "warn", "error" };

/* log_close_dest - leave the current destination (close the file, closelog) */
static void log_close_dest(void)
{
	if (log_state.dest == LOG_DEST_FILE && log_state.fd >= 0)
		close(log_state.fd);
	else if (log_state.dest == LOG_DEST_SYSLOG)
		closelog();
	log_state.fd = -1;
	log_state.dest = LOG_DEST_STDERR;
}

/* log_init - name the program, set the minimum level, write to stderr */
void log_init(const char *prog, enum log_level level)
{
	log_close_dest();
	snprintf(log_state.prog, sizeof log_state.prog, "%s", prog ? prog : "herald");
	log_state.min = level;
}

/* log_open - open PATH for appending; the descriptor or -1 with errno set */
static int log_open(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

/* log_to_file - append to PATH from now on; -1 (errno set, destination unchanged) on error */
int log_to_file(const char *path)
{
	int fd;

	if (path == NULL || strlen(path) >= sizeof log_state.path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = log_open(path);
	if (fd < 0)
		return -1;
	log_close_dest();
	log_state.fd = fd;
	log_state.dest = LOG_DEST_FILE;
	snprintf(log_state.path, sizeof log_state.path, "%s", path);
	return 0;
}

/* log_to_syslog - send lines to syslog(3) with FACILITY from now on */
void log_to_syslog(int facility)
{
	log_close_dest();
	openlog(log_state.prog[0] ? log_state.prog : NULL, LOG_PID | LOG_NDELAY, facility);
	log_state.dest = LOG_DEST_SYSLOG;
}

/* log_reopen - reopen the log file by name; on failure keep the old descriptor and warn */
int log_reopen(void)
{
	char q[PATH_MAX + 64];
	int fd;

	if (log_state.dest != LOG_DEST_FILE)
		return 0;
	fd = log_open(log_state.path);
	if (fd < 0) {
		log_warn("event=log_reopen path=%s",
		    log_quote(q, sizeof q, log_state.path));
		return -1;
	}
	close(log_state.fd);
	log_state.fd = fd;
	return 0;
}

/* log_level_parse - "debug", "info", "warn" or "error" to a level; -1 if unknown */
int log_level_parse(const char *s)
{
	int i;

	for (i = 0; s != NULL && i < (int)(sizeof log_names / sizeof log_names[0]); i++)
		if (strcmp(s, log_names[i]) == 0)
			return i;
	return -1;
}

/* log_set_level - change the minimum level */
void log_set_level(enum log_level level)
{
	log_state.min = level;
}

/* log_utf8_trim - drop a UTF-8 sequence left incomplete at the end of BUF[0..LEN) */
static size_t log_utf8_trim(const char *buf, size_t len)
{
	size_t i = len, cont = 0, need;
	unsigned char c;

	while (i > 0 && ((unsigned char)buf[i - 1] & 0xc0) == 0x80 && cont < 3) {
		i--;
		cont++;
	}
	if (i == 0)
		return len;
	c = (unsigned char)buf[i - 1];
	if (c < 0xc0)
		return len;      /* ASCII (or stray continuation bytes): nothing to trim */
	need = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
	return cont < need ? i - 1 : len;
}

/* log_escape - append S escaped into DST[0..CAP) from *LEN, as far as it fits; false if cut */
static int log_escape(char *dst, size_t cap, size_t *len, const char *s, int quoting)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = *len;
	char e[4];
	size_t el;

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		el = 2;
		e[0] = '\\';
		if (c == '\n')
			e[1] = 'n';
		else if (c == '\r')
			e[1] = 'r';
		else if (c == '\t')
			e[1] = 't';
		else if (quoting && (c == '"' || c == '\\'))
			e[1] = (char)c;
		else if (c < 0x20 || c == 0x7f) {
			e[1] = 'x';
			e[2] = hex[c >> 4];
			e[3] = hex[c & 0x0f];
			el = 4;
		} else {
			e[0] = (char)c;
			el = 1;
		}
		if (o + el > cap) {
			*len = log_utf8_trim(dst, o);
			return 0;
		}
		memcpy(dst + o, e, el);
		o += el;
	}
	*len = o;
	return 1;
}

/* log_errno_text - " errno=N err=\"...\"" for ERR into BUF */
static void log_errno_text(char *buf, size_t n, int err)
{
	char msg[256], q[300];
	const char *m = strerror_r(err, msg, sizeof msg);   /* GNU: may return a static string */

	snprintf(buf, n, " errno=%d err=%s", err, log_quote(q, sizeof q, m));
}

/* log_emit - build and write one line at LVL; ERR >= 0 adds the errno part */
static void log_emit(enum log_level lvl, int err, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR };
	char line[LOG_LINE_MAX], text[LOG_LINE_MAX], tail[400] = "", ts[RFC3339_LEN + 1];
	size_t len, start, tl, cap;
	int n;
	ssize_t w;

	if (err >= 0)
		log_errno_text(tail, sizeof tail, err);
	n = vsnprintf(text, sizeof text, fmt, ap);
	if (n < 0)
		snprintf(text, sizeof text, "log_format_error=1");
	if (log_state.dest == LOG_DEST_SYSLOG)
		n = snprintf(line, sizeof line, "level=%s ", log_names[lvl]);
	else
		n = snprintf(line, sizeof line, "ts=%s level=%s prog=%s pid=%ld ",
		    rfc3339_format(rfc3339_now(), ts), log_names[lvl],
		    log_state.prog[0] ? log_state.prog : program_invocation_short_name,
		    (long)getpid());
	len = n > 0 && (size_t)n < sizeof line ? (size_t)n : 0;
	tl = strlen(tail);
	/* room for text: the line minus the errno tail, the newline and, if cut, the marker */
	cap = sizeof line - tl - 1;
	start = len;
	if (!log_escape(line, cap, &len, text, 0)) {
		len = start;     /* again, leaving room for the marker: never half an escape */
		log_escape(line, cap - LOG_TRUNCATED_LEN, &len, text, 0);
		memcpy(line + len, LOG_TRUNCATED, LOG_TRUNCATED_LEN);
		len += LOG_TRUNCATED_LEN;
	}
	memcpy(line + len, tail, tl);
	len += tl;

	if (log_state.dest == LOG_DEST_SYSLOG) {
		line[len] = '\0';
		syslog(prio[lvl], "%s", line);
		return;
	}
	line[len++] = '\n';
	/* one write(2) per line; retried only if interrupted or cut short */
	for (size_t off = 0; off < len; off += (size_t)w) {
		w = write(log_state.dest == LOG_DEST_FILE ? log_state.fd : STDERR_FILENO,
		    line + off, len - off);
		if (w < 0 && errno == EINTR)
			w = 0;
		else if (w <= 0)
			break;
	}
}

/* log_debug - debug-level line */
void log_debug(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	if (log_state.min > LOG_LEVEL_DEBUG)
		return;
	va_start(ap, fmt);
	log_emit(LOG_LEVEL_DEBUG, -1, fmt, ap);
	va_end(ap);
	errno = saved;
}

/* log_info - info-level line */
void log_info(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	if (log_state.min > LOG_LEVEL_INFO)
		return;
	va_start(ap, fmt);
	log_emit(LOG_LEVEL_INFO, -1, fmt, ap);
	va_end(ap);
	errno = saved;
}

/* log_warn - warning with the errno of entry appended */
void log_warn(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	if (log_state.min > LOG_LEVEL_WARN)
		return;
	va_start(ap, fmt);
	log_emit(LOG_LEVEL_WARN, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

/* log_warnx - warning without errno */
void log_warnx(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	if (log_state.min > LOG_LEVEL_WARN)
		return;
	va_start(ap, fmt);
	log_emit(LOG_LEVEL_WARN, -1, fmt, ap);
	va_end(ap);
	errno = saved;
}

/* log_error - error-level line without errno */
void log_error(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LEVEL_ERROR, -1, fmt, ap);
	va_end(ap);
	errno = saved;
}

/* fatal - error-level line with errno, then exit(CODE) */
void fatal(int code, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LEVEL_ERROR, saved, fmt, ap);
	va_end(ap);
	exit(code);
}

/* fatalx - error-level line, then exit(CODE) */
void fatalx(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LEVEL_ERROR, -1, fmt, ap);
	va_end(ap);
	exit(code);
}

/* log_quote - S as a key=value token in BUF: bare if safe, else "quoted" with escapes */
const char *log_quote(char *buf, size_t n, const char *s)
{
	const char *p;
	size_t len = 1;
	int plain;

	if (buf == NULL || n == 0)
		return "";
	if (s == NULL)
		s = "";
	plain = *s != '\0';
	for (p = s; *p != '\0' && plain; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '"' || *p == '=' ||
		    *p == '\\')
			plain = 0;
	if (plain) {
		snprintf(buf, n, "%s", s);
		if (strlen(s) >= n)     /* cut: keep whole UTF-8 characters */
			buf[log_utf8_trim(buf, n - 1)] = '\0';
		return buf;
	}
	if (n < 3) {
		buf[0] = '\0';
		return buf;
	}
	buf[0] = '"';
	/* leave room for the closing quote and NUL, and for "…" if the value is cut */
	if (!log_escape(buf, n - 2, &len, s, 1) && n - 2 >= 1 + 3) {
		len = 1;         /* again, leaving room for "…": never half an escape */
		log_escape(buf, n - 2 - 3, &len, s, 1);
		memcpy(buf + len, "\xe2\x80\xa6", 3);
		len += 3;
	}
	buf[len++] = '"';
	buf[len] = '\0';
	return buf;
}
