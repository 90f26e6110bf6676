/* privs - what heraldd does as root (see privs.h) */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "privs.h"

static struct {
	bool drop;                      /* started as root with a non-root heraldd.user */
	char user[64];
	uid_t uid;
	gid_t gid;
	int ready_fd;                   /* the daemon's pipe to the process that started it */
	char stderr_to[PATH_MAX];       /* where stderr goes once ready: the log file, or "" */
} privs = { .ready_fd = -1 };

/* privs_group_of - the gid heraldd runs as under C (heraldd.group, else the user's primary
 * group); -1 when unknown */
static gid_t privs_group_of(const struct conf *c)
{
	const struct passwd *pw;
	const struct group *gr;

	if (c->heraldd.group != NULL && c->heraldd.group[0] != '\0')
		return (gr = getgrnam(c->heraldd.group)) != NULL ? gr->gr_gid : (gid_t)-1;
	if (c->heraldd.user != NULL && (pw = getpwnam(c->heraldd.user)) != NULL)
		return pw->pw_gid;
	return (gid_t)-1;
}

/* privs_keyfile - -1 with ERR when the key file PATH (named by KEY) is readable by others */
static int privs_keyfile(const char *key, const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (path == NULL || stat(path, &st) < 0 || (st.st_mode & 0007) == 0)
		return 0;               /* a missing file is the provider's error, named there */
	snprintf(err, errlen, "%s %s: readable by others (mode %04o): it holds a private key: "
	    "chmod o-rwx %s", key, path, (unsigned)(st.st_mode & 07777), path);
	return -1;
}

int privs_secrets(const struct conf *c, char *err, size_t errlen)
{
	struct stat st;

	/* FCM's service account file is checked where it is read (prov_fcm); the APNs key_file
	 * is not checked yet */
	if (privs_keyfile("broker.tls.key_file", c->broker.tls.key_file, err, errlen) < 0)
		return -1;
	if (!c->file_read || !c->has_secrets)
		return 0;
	if (stat(c->path, &st) < 0)
		st.st_gid = 0;
	if ((c->mode & 0007) != 0) {
		snprintf(err, errlen, "%s: mode %04o: holds secrets (%s, ...) that others can read: "
		    "chmod o-rwx %s (0640, owner root, group of heraldd's user, or 0600)", c->path,
		    (unsigned)(c->mode & 07777), c->secret_key, c->path);
		return -1;
	}
	if ((c->mode & 0070) != 0 && st.st_gid != 0 && st.st_gid != privs_group_of(c) &&
	    st.st_gid != getegid()) {
		const struct group *gr = getgrgid(st.st_gid);

		snprintf(err, errlen, "%s: mode %04o, group %s: holds secrets (%s, ...) that group "
		    "can read: chmod g-rwx %s, or give it to group root or to heraldd's group", c->path,
		    (unsigned)(c->mode & 07777), gr != NULL ? gr->gr_name : "?", c->secret_key,
		    c->path);
		return -1;
	}
	return 0;
}

int privs_init(const struct conf *c, char *err, size_t errlen)
{
	const struct passwd *pw;
	const struct group *gr;
	const char *u = c->heraldd.user;

	privs.drop = false;
	if (geteuid() != 0)
		return 0;
	if (u == NULL || u[0] == '\0') {
		snprintf(err, errlen, "%s: heraldd.user: empty: name the user heraldd runs as (\"root\" "
		    "keeps root, not recommended)", c->path);
		return -1;
	}
	errno = 0;
	if ((pw = getpwnam(u)) == NULL) {
		snprintf(err, errlen, "%s: heraldd.user: no such user '%s'%s%s (create it: useradd "
		    "--system %s)", c->path, u, errno ? ": " : "", errno ? strerror(errno) : "", u);
		return -1;
	}
	if (strlen(u) >= sizeof privs.user) {
		snprintf(err, errlen, "%s: heraldd.user: name too long", c->path);
		return -1;
	}
	snprintf(privs.user, sizeof privs.user, "%s", u);
	privs.uid = pw->pw_uid;
	privs.gid = pw->pw_gid;
	if (c->heraldd.group != NULL && c->heraldd.group[0] != '\0') {
		if ((gr = getgrnam(c->heraldd.group)) == NULL) {
			snprintf(err, errlen, "%s: heraldd.group: no such group '%s'", c->path,
			    c->heraldd.group);
			return -1;
		}
		privs.gid = gr->gr_gid;
	}
	privs.drop = privs.uid != 0;
	return 0;
}

/* privs_devnull - FD (0, 1 or 2) onto PATH (NULL: /dev/null) */
static void privs_devnull(int fd, const char *path)
{
	int n = path != NULL ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640) :
	    open("/dev/null", (fd == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);

	if (n < 0)
		return;
	if (n != fd) {
		dup2(n, fd);
		close(n);
	}
}

int privs_daemonize(const char *logfile, char *err, size_t errlen)
{
	int fds[2];
	pid_t pid;
	unsigned char code;
	ssize_t r;

	if (logfile != NULL && strlen(logfile) >= sizeof privs.stderr_to) {
		snprintf(err, errlen, "log.file: name too long");
		return -1;
	}
	snprintf(privs.stderr_to, sizeof privs.stderr_to, "%s", logfile != NULL ? logfile : "");
	if (pipe2(fds, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		snprintf(err, errlen, "-d: %s", strerror(errno));
		return -1;
	}
	if (pid > 0) {
		/* the starting process: wait for the first child, then for the daemon's word */
		close(fds[1]);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		while ((r = read(fds[0], &code, 1)) < 0 && errno == EINTR)
			;
		if (r != 1) {
			fprintf(stderr, "heraldd: the daemon ended before it was ready\n");
			_exit(EX_SOFTWARE);
		}
		_exit(code);
	}
	close(fds[0]);
	if (setsid() < 0 || (pid = fork()) < 0) {
		fprintf(stderr, "heraldd: -d: %s\n", strerror(errno));
		_exit(EX_OSERR);
	}
	if (pid > 0)
		_exit(0);               /* the session leader goes: the daemon can get no terminal */
	privs.ready_fd = fds[1];
	if (chdir("/") < 0) {
		snprintf(err, errlen, "-d: chdir /: %s", strerror(errno));
		return -1;
	}
	privs_devnull(0, NULL);
	return 0;
}

void privs_ready(int code)
{
	unsigned char b = (unsigned char)code;

	if (privs.ready_fd < 0)
		return;
	/* stdout and stderr leave the terminal before the starter exits */
	privs_devnull(1, NULL);
	privs_devnull(2, privs.stderr_to[0] != '\0' ? privs.stderr_to : NULL);
	while (write(privs.ready_fd, &b, 1) < 0 && errno == EINTR)
		;
	close(privs.ready_fd);
	privs.ready_fd = -1;
}

/* privs_comm - the command name of process PID ("self": us) into COMM[N]; false when unknown */
static bool privs_comm(const char *pid, char *comm, size_t n)
{
	char p[64];
	FILE *f;
	bool ok;

	snprintf(p, sizeof p, "/proc/%s/comm", pid);
	if ((f = fopen(p, "r")) == NULL)
		return false;
	ok = fgets(comm, (int)n, f) != NULL;
	fclose(f);
	return ok;
}

/* privs_pid_live - whether PID is a running heraldd other than us: a live process with our
 * command name (heraldd, or the name of what runs it, e.g. valgrind's tool) */
static bool privs_pid_live(long pid)
{
	char id[24], comm[64], self[64];

	if (pid <= 0 || pid == (long)getpid() || (kill((pid_t)pid, 0) < 0 && errno != EPERM))
		return false;
	/* a reused pid of another program does not hold the file */
	snprintf(id, sizeof id, "%ld", pid);
	if (!privs_comm(id, comm, sizeof comm) || !privs_comm("self", self, sizeof self))
		return true;
	return strcmp(comm, self) == 0;
}

int privs_pidfile(const char *path)
{
	char buf[32], q[PATH_MAX + 64];
	int fd, tries, n;
	ssize_t r;
	long pid;

	if (path == NULL)
		return 0;
	log_quote(q, sizeof q, path);
	for (tries = 0; tries < 2; tries++) {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd >= 0)
			break;
		if (errno != EEXIST) {
			log_error("event=pidfile_failed path=%s err=\"%s\"", q, strerror(errno));
			return -1;
		}
		if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
			log_error("event=pidfile_failed path=%s err=\"%s\"", q, strerror(errno));
			return -1;
		}
		r = read(fd, buf, sizeof buf - 1);
		close(fd);
		buf[r > 0 ? r : 0] = '\0';
		pid = strtol(buf, NULL, 10);
		if (privs_pid_live(pid)) {
			log_error("event=already_running path=%s pid=%ld note=\"another heraldd runs "
			    "with this pid file: stop it first\"", q, pid);
			return -1;
		}
		log_warnx("event=pidfile_stale path=%s pid=%ld note=\"replaced\"", q, pid);
		if (unlink(path) < 0 && errno != ENOENT) {
			log_error("event=pidfile_failed path=%s err=\"%s\"", q, strerror(errno));
			return -1;
		}
	}
	if (fd < 0) {
		log_error("event=pidfile_failed path=%s err=\"created meanwhile by another process\"", q);
		return -1;
	}
	n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)n) != n || close(fd) < 0) {
		log_error("event=pidfile_failed path=%s err=\"%s\"", q, strerror(errno));
		unlink(path);
		return -1;
	}
	return 0;
}

/* privs_give - chown PATH (may be NULL) to the user heraldd drops to */
static int privs_give(const char *what, const char *path)
{
	char q[PATH_MAX + 64];

	if (path == NULL || path[0] == '\0')
		return 0;
	if (lchown(path, privs.uid, privs.gid) < 0 && errno != ENOENT) {
		log_error("event=privileges_failed what=\"chown %s\" path=%s err=\"%s\"", what,
		    log_quote(q, sizeof q, path), strerror(errno));
		return -1;
	}
	return 0;
}

/* privs_dir_check - warn when the directory of PATH is not writable by us (after the drop):
 * WHY says what will not work */
static void privs_dir_check(const char *key, const char *path, const char *why)
{
	char dir[PATH_MAX], q[PATH_MAX + 64];
	const char *slash;

	if (path == NULL || path[0] == '\0' || (slash = strrchr(path, '/')) == NULL)
		return;
	snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
	if (access(dir, W_OK | X_OK) < 0)
		log_warnx("event=dir_not_writable key=%s dir=%s user=%s note=\"%s\"", key,
		    log_quote(q, sizeof q, dir), privs.user, why);
}

/* privs_drop_files - privs_drop's work; -1 leaves the pid file to the caller */
static int privs_drop_files(const char *pidfile, const char *control, const char *logfile)
{
	if (!privs.drop) {
		if (geteuid() == 0)
			log_warnx("event=running_as_root note=\"heraldd.user is root: no privilege drop "
			    "(not recommended)\"");
		else
			log_info("event=no_privilege_drop uid=%ld note=\"not started as root: runs as "
			    "the user that started it\"", (long)geteuid());
		privs_ready(0);
		return 0;
	}
	if (privs_give("heraldd.pidfile", pidfile) < 0 || privs_give("heraldd.control", control) < 0 ||
	    privs_give("log.file", logfile) < 0)
		return -1;
	if (initgroups(privs.user, privs.gid) < 0) {
		log_error("event=privileges_failed what=initgroups user=%s err=\"%s\"", privs.user,
		    strerror(errno));
		return -1;
	}
	if (setgid(privs.gid) < 0) {
		log_error("event=privileges_failed what=setgid gid=%ld err=\"%s\"", (long)privs.gid,
		    strerror(errno));
		return -1;
	}
	if (setuid(privs.uid) < 0) {
		log_error("event=privileges_failed what=setuid uid=%ld err=\"%s\"", (long)privs.uid,
		    strerror(errno));
		return -1;
	}
	/* setuid as root sets all three uids; check it did, and that root cannot come back */
	if (getuid() != privs.uid || geteuid() != privs.uid || getgid() != privs.gid ||
	    getegid() != privs.gid || setuid(0) == 0 || seteuid(0) == 0) {
		log_error("event=privileges_failed what=verify user=%s note=\"root could be regained\"",
		    privs.user);
		return -1;
	}
	log_info("event=privileges_dropped user=%s uid=%ld gid=%ld", privs.user, (long)privs.uid,
	    (long)privs.gid);
	privs_dir_check("heraldd.pidfile", pidfile, "cannot remove the pid file at exit");
	privs_dir_check("heraldd.control", control, "cannot remove the control socket at exit");
	privs_dir_check("log.file", logfile, "SIGUSR1 cannot create a new log file after a move "
	    "(logrotate's create does it)");
	privs_ready(0);
	return 0;
}

int privs_drop(const char *pidfile, const char *control, const char *logfile)
{
	if (privs_drop_files(pidfile, control, logfile) == 0)
		return 0;
	if (pidfile != NULL)
		unlink(pidfile);        /* ours (privs_pidfile wrote it); still root or its owner */
	return -1;
}
