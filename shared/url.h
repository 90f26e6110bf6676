/* url - the §12 connection URLs: amqp://, amqps://, mysql:// and mysqls://user:pass@host:port/path */
#ifndef HERALD_URL_H
#define HERALD_URL_H

#include <stdbool.h>
#include <stddef.h>

#define URL_PART_MAX 256

struct url {
	char scheme[8];                  /* "amqp", "amqps", "mysql" or "mysqls" */
	char user[URL_PART_MAX];         /* percent-decoded; "" when absent */
	char password[URL_PART_MAX];     /* percent-decoded; "" when absent */
	char host[URL_PART_MAX];         /* "[::1]" given as "::1" */
	int port;                        /* the scheme's default when absent: 5672, 5671, 3306 */
	char path[URL_PART_MAX];         /* percent-decoded: the AMQP vhost ("/" when absent or
	                                    empty) or the MySQL database ("" when absent) */
	bool tls;                        /* amqps, mysqls */
};

/* url_parse - split S into OUT; on error -1 with a reason (never echoing the password) in ERR */
int url_parse(const char *s, struct url *out, char *err, size_t errlen);
/* url_redact - S with the password replaced by "***", for logs and messages; returns OUT */
char *url_redact(const char *s, char *out, size_t outlen);

#endif
