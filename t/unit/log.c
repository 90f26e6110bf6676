/* t/unit/log - log lines in a temp file: format, levels, escaping, errno, truncation, reopen */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "rfc3339.h"
#include "tap.h"

#define LOG_T_MAX 4096

static char dir[64];
static char path[128];

/* log_t_slurp - the whole file PATH into a malloc'd string ("" when absent) */
static char *log_t_slurp(const char *p)
{
	FILE *f = fopen(p, "r");
	char *buf = calloc(1, 1 << 22);
	size_t n;

	if (buf == NULL)
		exit(1);
	if (f != NULL) {
		n = fread(buf, 1, (1 << 22) - 1, f);
		buf[n] = '\0';
		fclose(f);
	}
	return buf;
}

/* log_t_last - a copy of the last line (without its newline) of file P */
static char *log_t_last(const char *p)
{
	char *all = log_t_slurp(p), *nl, *start, *line;
	size_t n = strlen(all);

	if (n > 0 && all[n - 1] == '\n')
		all[--n] = '\0';
	nl = strrchr(all, '\n');
	start = nl ? nl + 1 : all;
	line = strdup(start);
	free(all);
	return line;
}

/* log_t_lines - number of newline characters in file P */
static int log_t_lines(const char *p)
{
	char *all = log_t_slurp(p), *q;
	int n = 0;

	for (q = all; *q; q++)
		n += *q == '\n';
	free(all);
	return n;
}

/* log_t_line - LINE is "ts=<valid> level=L prog=tlog pid=PID REST" with REST == WANT */
static int log_t_line(const char *line, const char *level, long pid, const char *want)
{
	char ts[RFC3339_LEN + 1], head[256];
	int64_t us;
	int n;

	if (strncmp(line, "ts=", 3) != 0 || strlen(line) < 3 + RFC3339_LEN)
		return 0;
	memcpy(ts, line + 3, RFC3339_LEN);
	ts[RFC3339_LEN] = '\0';
	if (rfc3339_parse(ts, &us) != 0 || ts[19] != '.' || ts[26] != 'Z')
		return 0;
	n = snprintf(head, sizeof head, " level=%s prog=tlog pid=%ld ", level, pid);
	if (strncmp(line + 3 + RFC3339_LEN, head, (size_t)n) != 0)
		return 0;
	return want == NULL || strcmp(line + 3 + RFC3339_LEN + n, want) == 0;
}

/* log_t_utf8_ok - S is valid UTF-8 (structure only) */
static int log_t_utf8_ok(const unsigned char *s)
{
	while (*s) {
		int k = *s < 0x80 ? 0 : *s >= 0xf0 ? 3 : *s >= 0xe0 ? 2 : *s >= 0xc0 ? 1 : -1;

		if (k < 0)
			return 0;
		for (s++; k > 0; k--, s++)
			if ((*s & 0xc0) != 0x80)
				return 0;
	}
	return 1;
}

/* log_t_wellformed - log_t_line for a line of this process */
static int log_t_wellformed(const char *line, const char *level, const char *want)
{
	return log_t_line(line, level, (long)getpid(), want);
}

int main(void)
{
	char big[10000], q[64], small[8], p2[160], sub[160], *l;
	int i, fd, saved, status, good;
	pid_t pid;
	size_t n;

	plan(46);
	snprintf(dir, sizeof dir, "/tmp/herald-tlog.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof path, "%s/herald.log", dir);

	log_init("tlog", LOG_LEVEL_INFO);
	ok(log_to_file(path) == 0, "log_to_file opens a new file");

	log_info("event=start workers=%d", 3);
	l = log_t_last(path);
	ok(log_t_wellformed(l, "info", "event=start workers=3"), "info line: ts level prog pid text");
	printf("# %s\n", l);
	free(l);

	log_debug("event=hidden");
	is_int(log_t_lines(path), 1, "debug below the minimum level is dropped");
	log_set_level(LOG_LEVEL_DEBUG);
	log_debug("event=shown");
	l = log_t_last(path);
	ok(log_t_wellformed(l, "debug", "event=shown"), "debug line after log_set_level");
	free(l);
	log_set_level(LOG_LEVEL_WARN);
	log_info("event=hidden");
	log_warnx("event=w");
	l = log_t_last(path);
	ok(log_t_wellformed(l, "warn", "event=w"), "level warn drops info, keeps warnx");
	free(l);
	log_error("event=e");
	l = log_t_last(path);
	ok(log_t_wellformed(l, "error", "event=e"), "log_error at error level");
	free(l);
	is_int(log_t_lines(path), 4, "exactly one line per shown event");
	log_set_level(LOG_LEVEL_INFO);

	/* errno */
	errno = ENOENT;
	log_warn("event=open path=%s", "/x");
	saved = errno;
	l = log_t_last(path);
	ok(log_t_wellformed(l, "warn", "event=open path=/x errno=2 err=\"No such file or directory\""),
	    "log_warn appends errno and quoted strerror");
	free(l);
	is_int(saved, ENOENT, "log_warn leaves errno as it found it");
	errno = EACCES;
	log_warnx("event=nx");
	l = log_t_last(path);
	ok(log_t_wellformed(l, "warn", "event=nx"), "log_warnx has no errno");
	free(l);

	/* escaping keeps one event on one line */
	log_info("msg=\"a\nb\r\tc\x01\x7f\" ok=1");
	l = log_t_last(path);
	ok(log_t_wellformed(l, "info", "msg=\"a\\nb\\r\\tc\\x01\\x7f\" ok=1"),
	    "newline, CR, tab and control bytes escaped");
	free(l);
	is_int(log_t_lines(path), 7, "an embedded newline does not split the line");
	log_info("msg=caf\xc3\xa9");
	l = log_t_last(path);
	ok(log_t_wellformed(l, "info", "msg=caf\xc3\xa9"), "UTF-8 passes through");
	free(l);

	/* truncation at 4 KiB */
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	log_info("msg=%s", big);
	l = log_t_last(path);
	n = strlen(l);
	ok(n + 1 == LOG_T_MAX, "long line cut to 4096 bytes with its newline");
	ok(n > 15 && strcmp(l + n - 12, "\xe2\x80\xa6truncated") == 0, "cut line ends in …truncated");
	ok(log_t_wellformed(l, "info", NULL), "cut line keeps its header");
	free(l);
	is_int(log_t_lines(path), 9, "a cut line is still one line");
	errno = EPIPE;
	log_warn("msg=%s", big);
	l = log_t_last(path);
	n = strlen(l);
	ok(n + 1 == LOG_T_MAX && strstr(l, "\xe2\x80\xa6truncated errno=32 err=\"Broken pipe\"") != NULL &&
	    strcmp(l + n - 5, "pipe\"") == 0, "log_warn keeps its errno part after a cut");
	free(l);
	for (i = 0; i + 2 < (int)sizeof big; i += 2)
		memcpy(big + i, "\xc3\xa9", 2);
	big[i] = '\0';
	for (good = 1, i = 0; i < 3; i++) {
		log_info("%.*smsg=%s", i, "xx", big);
		l = log_t_last(path);
		good &= strlen(l) + 1 <= LOG_T_MAX && log_t_utf8_ok((unsigned char *)l) &&
		    strstr(l, "truncated") != NULL;
		free(l);
	}
	ok(good, "cut never splits a UTF-8 character");
	memset(big, '\n', 3000);
	big[3000] = '\0';
	log_info("x=%s", big);
	l = log_t_last(path);
	n = strlen(l);
	ok(n + 1 <= LOG_T_MAX && strcmp(l + n - 14, "\\n\xe2\x80\xa6truncated") == 0,
	    "cut never splits an escape");
	free(l);

	/* log_quote */
	is_str(log_quote(q, sizeof q, "plain"), "plain", "quote: plain word unchanged");
	is_str(log_quote(q, sizeof q, "a b"), "\"a b\"", "quote: space");
	is_str(log_quote(q, sizeof q, "a\"b\\c"), "\"a\\\"b\\\\c\"", "quote: quote and backslash");
	is_str(log_quote(q, sizeof q, "k=v"), "\"k=v\"", "quote: '='");
	is_str(log_quote(q, sizeof q, ""), "\"\"", "quote: empty string");
	is_str(log_quote(q, sizeof q, NULL), "\"\"", "quote: NULL as empty");
	is_str(log_quote(q, sizeof q, "l1\nl2\x02"), "\"l1\\nl2\\x02\"", "quote: control bytes");
	is_str(log_quote(small, sizeof small, "abcdefghij"), "abcdefg", "quote: plain value cut");
	is_str(log_quote(small, sizeof small, "a b c d e"), "\"a \xe2\x80\xa6\"",
	    "quote: quoted value cut with …");
	is_str(log_quote(small, sizeof small, "\n\n\n"), "\"\\n\xe2\x80\xa6\"",
	    "quote: cut never splits an escape");

	/* levels */
	ok(log_level_parse("debug") == LOG_LEVEL_DEBUG && log_level_parse("info") == LOG_LEVEL_INFO &&
	    log_level_parse("warn") == LOG_LEVEL_WARN && log_level_parse("error") == LOG_LEVEL_ERROR,
	    "log_level_parse knows the four levels");
	ok(log_level_parse("INFO") == -1 && log_level_parse("") == -1 && log_level_parse(NULL) == -1,
	    "log_level_parse refuses others");

	/* reopen after rename (logrotate) */
	snprintf(p2, sizeof p2, "%s.1", path);
	log_info("event=before_rotate");
	rename(path, p2);
	log_info("event=after_rename");
	ok(log_reopen() == 0, "log_reopen succeeds");
	log_info("event=after_reopen");
	l = log_t_last(p2);
	ok(strstr(l, "event=after_rename") != NULL, "before reopen: lines go to the renamed file");
	free(l);
	l = log_t_last(path);
	ok(log_t_wellformed(l, "info", "event=after_reopen") && log_t_lines(path) == 1,
	    "after reopen: lines go to a new file");
	free(l);

	/* reopen failure keeps the old descriptor and says so */
	snprintf(sub, sizeof sub, "%s/sub", dir);
	mkdir(sub, 0700);
	snprintf(p2, sizeof p2, "%s/sub/x.log", dir);
	ok(log_to_file(p2) == 0, "log_to_file switches files");
	snprintf(p2, sizeof p2, "%s/sub.old", dir);
	rename(sub, p2);
	ok(log_reopen() == -1, "log_reopen fails when the directory is gone");
	log_info("event=still_here");
	snprintf(p2, sizeof p2, "%s/sub.old/x.log", dir);
	{
		char *all = log_t_slurp(p2);

		ok(strstr(all, "level=warn") != NULL && strstr(all, "event=log_reopen") != NULL &&
		    strstr(all, "errno=2") != NULL && strstr(all, "event=still_here") != NULL,
		    "failed reopen logged to the old file, which stays in use");
		free(all);
	}
	ok(log_to_file("/nonexistent-dir/x.log") == -1, "log_to_file on a bad path fails");
	log_info("event=kept");
	l = log_t_last(p2);
	ok(strstr(l, "event=kept") != NULL, "...and keeps the previous destination");
	free(l);

	/* several processes appending: whole lines only */
	ok(log_to_file(path) == 0, "back to the main file");
	memset(big, 'z', 3000);
	big[3000] = '\0';
	for (i = 0; i < 4; i++) {
		if (fork() == 0) {
			int k;

			for (k = 0; k < 200; k++)
				log_info("child=%d k=%d pad=%s", i, k, big);
			_exit(0);
		}
	}
	for (good = 1, i = 0; i < 4; i++)
		good &= wait(&status) > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
	{
		char *all = log_t_slurp(path), *line, *save = NULL;
		int cnt = 0;

		for (line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			if (strstr(line, "child=") == NULL)
				continue;
			cnt++;
			if (strncmp(line, "ts=", 3) != 0 || strlen(line) < 3000 ||
			    strspn(strstr(line, "pad=") + 4, "z") != 3000)
				good = 0;
		}
		free(all);
		ok(good && cnt == 800, "800 lines from 4 processes, none interleaved");
	}

	/* fatalx and fatal exit with their code after an error-level line */
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		fatalx(78, "event=config_bad");
	waitpid(pid, &status, 0);
	l = log_t_last(path);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 78 &&
	    log_t_line(l, "error", (long)pid, "event=config_bad"), "fatalx: error line, exit 78");
	free(l);
	pid = fork();
	if (pid == 0) {
		errno = EPERM;
		fatal(71, "event=setuid");
	}
	waitpid(pid, &status, 0);
	l = log_t_last(path);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 71 && log_t_line(l, "error", (long)pid,
	    "event=setuid errno=1 err=\"Operation not permitted\""), "fatal: errno, exit 71");
	free(l);

	/* syslog and stderr destinations */
	log_to_syslog(LOG_USER);
	log_info("event=herald_unit_test_syslog");
	l = log_t_last(path);
	ok(strstr(l, "herald_unit_test_syslog") == NULL, "syslog: the file is left alone");
	free(l);
	fd = dup(STDERR_FILENO);
	snprintf(p2, sizeof p2, "%s/stderr", dir);
	i = open(p2, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(i, STDERR_FILENO);
	close(i);
	log_init("tlog", LOG_LEVEL_INFO);
	log_info("event=to_stderr");
	dup2(fd, STDERR_FILENO);
	close(fd);
	l = log_t_last(p2);
	ok(log_t_wellformed(l, "info", "event=to_stderr"), "log_init writes to stderr");
	free(l);

	/* clean up */
	unlink(p2);
	unlink(path);
	snprintf(p2, sizeof p2, "%s.1", path);
	unlink(p2);
	snprintf(p2, sizeof p2, "%s/sub.old/x.log", dir);
	unlink(p2);
	snprintf(p2, sizeof p2, "%s/sub.old", dir);
	rmdir(p2);
	rmdir(dir);
	return done();
}
