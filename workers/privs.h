/* privs - what heraldd does as root (SPEC §9): the secrets check, the pid file, daemonizing and
 * the drop to heraldd.user */
#ifndef HERALD_PRIVS_H
#define HERALD_PRIVS_H

#include <stddef.h>

struct conf;

/* privs_secrets - 0 when C's file may hold its secrets, else -1 with "FILE: mode 0644 ..." in
 * ERR: a file holding a secret must not be readable by others, and group-readable only for
 * group root or the group heraldd runs as (the sample's 0640 root:herald) */
int privs_secrets(const struct conf *c, char *err, size_t errlen);

/* privs_init - resolve heraldd.user and heraldd.group of C when started as root; 0, or -1 with
 * the reason in ERR (an unknown user or group). Started as non-root: nothing to resolve. */
int privs_init(const struct conf *c, char *err, size_t errlen);

/* privs_daemonize - fork, setsid, fork; only the daemon returns (0, or -1 with ERR). The
 * starting process waits until the daemon is ready (privs_ready) and exits with its status;
 * the daemon's stderr stays the caller's until then, so start-up errors reach the terminal. */
int privs_daemonize(const char *logfile, char *err, size_t errlen);

/* privs_ready - tell the process that started the daemon that it runs (CODE 0) or has failed
 * (CODE: its exit status); then stdout and stderr leave the terminal. Once; no-op otherwise. */
void privs_ready(int code);

/* privs_pidfile - write our pid to PATH (NULL: none); refused (-1, logged) while a live heraldd
 * holds it; a stale one is replaced */
int privs_pidfile(const char *path);

/* privs_drop - started as root: hand PIDFILE, CONTROL and LOGFILE (each may be NULL) to the
 * user privs_init resolved, then initgroups/setgid/setuid and check that root cannot come back;
 * 0, or -1 (logged). Then the daemon, if any, is told it is ready. */
int privs_drop(const char *pidfile, const char *control, const char *logfile);

#endif
