/* fuzz_conf - libFuzzer harness of the configuration loader: the input is written to a file in a
 * private directory made once under $TMPDIR (else /tmp), read by conf_load, released by conf_free. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "conf.h"

static char fz_dir[4096];
static char fz_path[4096 + 16];
static int fz_fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_cleanup(void)
{
	if (fz_fd >= 0)
		close(fz_fd);
	unlink(fz_path);
	rmdir(fz_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp;

	(void)argc;
	(void)argv;
	unsetenv(CONF_ENV_PATH);
	unsetenv(CONF_ENV_AMQP);
	unsetenv(CONF_ENV_MYSQL);
	tmp = getenv("TMPDIR");
	snprintf(fz_dir, sizeof(fz_dir), "%s/herald-fuzz-conf.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(fz_dir) == NULL)
		abort();
	snprintf(fz_path, sizeof(fz_path), "%s/herald.conf", fz_dir);
	fz_fd = open(fz_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fz_fd < 0)
		abort();
	atexit(fz_cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf c;
	struct conf_error err;

	if (ftruncate(fz_fd, 0) != 0 || (size > 0 && pwrite(fz_fd, data, size, 0) != (ssize_t)size))
		abort();
	if (conf_load(fz_path, &c, &err) < 0) {
		if (err.msg[0] == '\0' || memchr(err.msg, '\0', sizeof(err.msg)) == NULL)
			abort();
	} else {
		(void)conf_has(&c, "broker");
		(void)conf_category_find(&c, "transactional");
		(void)conf_client_find(&c, "shop");
	}
	conf_free(&c);
	return 0;
}
