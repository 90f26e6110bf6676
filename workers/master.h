/* master - heraldd's master process (SPEC §1, §9): declares the topology, forks the ledger, the
 * outbox worker and the configured workers of each channel that has a usable provider, and
 * supervises them on libev: respawn with backoff, crash loops (a child that dies before its first
 * ack) throttled and logged loudly; SIGHUP reloads (a new generation starts, then the old one
 * drains), SIGTERM/SIGINT drain everything within heraldd.grace, SIGUSR1 reopens the logs; the
 * control socket (heraldd.control) shows and changes worker counts live.
 *
 * Children die with the master: each gets SIGTERM when the master goes away (PR_SET_PDEATHSIG)
 * and drains like on any SIGTERM. */
#ifndef HERALD_MASTER_H
#define HERALD_MASTER_H

struct conf;

/* master_main - run the master with config C (loaded from PATH, reloaded from there on SIGHUP;
 * C is the master's from now on, freed by it) until SIGTERM/SIGINT; an EX_ exit code */
int master_main(const char *path, struct conf *c);

/* master_logging - apply the log level and destination of C (log.level, log.file, log.syslog);
 * 0, or -1 when the log file cannot be opened */
int master_logging(const struct conf *c);

/* master_notice_ready - called by a child after its first ack (or first successful round):
 * tells the master it is not crash-looping; a no-op outside a master's child */
void master_notice_ready(void);

#endif
