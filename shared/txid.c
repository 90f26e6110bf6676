/* txid - transaction and message ids: random (version 4) UUIDs in canonical text form */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/types.h>

#include "txid.h"

/* txid_random - fill BUF with N bytes from getrandom(2), retrying on EINTR and short reads */
static int txid_random(unsigned char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = getrandom(buf + got, n - got, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

/* txid_new - a fresh random UUID, lower case, into OUT; -1 if getrandom fails */
int txid_new(char out[TXID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	size_t i, o = 0;

	if (txid_random(b, sizeof b) < 0)
		return -1;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);   /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);   /* variant 10xx (RFC 4122) */
	for (i = 0; i < sizeof b; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 0x0f];
	}
	out[o] = '\0';
	return 0;
}

/* txid_is_hex - true for 0-9, a-f (locale independent); lower case only, because ids are
 * compared byte for byte (the database's ascii_bin columns, message ids) */
static int txid_is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* txid_valid - S is exactly 8-4-4-4-12 lower-case hex digits (any version) */
bool txid_valid(const char *s)
{
	size_t i;

	if (s == NULL)
		return false;
	for (i = 0; i < TXID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!txid_is_hex(s[i])) {
			return false;   /* also stops at a NUL before TXID_LEN */
		}
	}
	return s[TXID_LEN] == '\0';
}
