/* unsub - the unsubscribe token of SPEC §5: who (user), from what (category) and until when,
 * signed with HMAC-SHA256 under unsubscribe.secret so that nobody without the secret can make
 * one for another user or category, or stretch its expiry
 *
 * Form: base64url(USER "\n" CATEGORY "\n" EXPIRES) "." base64url(MAC), no padding, where MAC is
 * HMAC-SHA256(secret, "herald-unsub-v1." first-part) and EXPIRES is decimal seconds since the
 * epoch. Every character is URL-safe ([A-Za-z0-9_.-]), so a token goes into a query as it is.
 */
#ifndef HERALD_UNSUB_H
#define HERALD_UNSUB_H

#include <stddef.h>
#include <stdint.h>

#define UNSUB_USER_MAX 191           /* bytes: users.user_id */
#define UNSUB_CATEGORY_MAX 64        /* bytes: a preference key */
#define UNSUB_TOKEN_MAX 420          /* a token's length at most, without the NUL */

enum unsub_err {
	UNSUB_OK = 0,
	UNSUB_EARG = -1,             /* make: a user id or category it cannot carry */
	UNSUB_EFORM = -2,            /* check: not a token (bad characters, parts, lengths) */
	UNSUB_EMAC = -3,             /* check: the signature does not match (forged or altered) */
	UNSUB_EEXPIRED = -4,         /* check: a genuine token past its expiry */
	UNSUB_ESECRET = -5           /* no usable secret (empty), or the crypto library failed */
};

/* What a genuine token says. */
struct unsub_claim {
	char user[UNSUB_USER_MAX + 1];
	char category[UNSUB_CATEGORY_MAX + 1];
	int64_t expires;             /* seconds since the epoch */
};

/* unsub_make - the token for (USER, CATEGORY, EXPIRES) under SECRET into OUT (size OUTLEN,
 * UNSUB_TOKEN_MAX + 1 is enough); UNSUB_OK, UNSUB_EARG (empty or too long user or category,
 * a newline or NUL in either, a negative expiry, OUT too small) or UNSUB_ESECRET */
int unsub_make(const char *secret, const char *user, const char *category, int64_t expires,
	char *out, size_t outlen);
/* unsub_check - verify TOKEN under SECRET at NOW (seconds since the epoch) into *OUT; UNSUB_OK,
 * or the first of UNSUB_EFORM, UNSUB_EMAC, UNSUB_EEXPIRED that applies (the expiry is looked
 * at only once the signature holds), or UNSUB_ESECRET; *OUT is cleared unless UNSUB_OK */
int unsub_check(const char *secret, const char *token, int64_t now, struct unsub_claim *out);
/* unsub_strerror - a short reason for RC ("expired", "bad signature"...) */
const char *unsub_strerror(int rc);

#endif
