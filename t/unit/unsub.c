/* unsub - the unsubscribe token: round trips (long and odd user ids), every altered byte
 * refused, another secret refused, expiry, malformed tokens and arguments make refuses */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tap.h"
#include "unsub.h"

#define SECRET "0123456789abcdef-unsubscribe-secret"
#define NOW 1764500000LL

/* roundtrip - make and check (USER, CAT) and compare what comes back; DESC names the case */
static void roundtrip(const char *user, const char *cat, const char *desc)
{
	char tok[UNSUB_TOKEN_MAX + 1];
	struct unsub_claim c;
	int rc;

	rc = unsub_make(SECRET, user, cat, NOW + 3600, tok, sizeof tok);
	is_int(rc, UNSUB_OK, "%s: made", desc);
	rc = unsub_check(SECRET, tok, NOW, &c);
	ok(rc == UNSUB_OK && strcmp(c.user, user) == 0 && strcmp(c.category, cat) == 0 &&
	    c.expires == NOW + 3600, "%s: round trip (rc %d)", desc, rc);
	ok(strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") ==
	    strlen(tok) && strlen(tok) <= UNSUB_TOKEN_MAX, "%s: URL-safe, at most %d chars", desc,
	    UNSUB_TOKEN_MAX);
}

int main(void)
{
	char tok[UNSUB_TOKEN_MAX + 1], bad[UNSUB_TOKEN_MAX + 8], longuser[UNSUB_USER_MAX + 2];
	char longcat[UNSUB_CATEGORY_MAX + 2];
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
	struct unsub_claim c;
	size_t i, k, len, refused = 0, tried = 0, emac = 0;
	int rc;

	plan(42);
	roundtrip("u1", "marketing", "plain");
	memset(longuser, 'x', UNSUB_USER_MAX);
	longuser[UNSUB_USER_MAX] = '\0';
	memset(longcat, 'c', UNSUB_CATEGORY_MAX);
	longcat[UNSUB_CATEGORY_MAX] = '\0';
	roundtrip(longuser, longcat, "191-byte user, 64-byte category");
	roundtrip("Ünïcødé 用户 ✉", "news", "UTF-8 user id");
	roundtrip("a.b=c&d?e/f+g h\"<x>'%00\t;--", "reminders", "punctuation, tab, quotes in the id");
	roundtrip("u", "m", "one-byte fields (padding cases)");
	roundtrip("uu", "mm", "two-byte fields");

	/* every single-character change of a genuine token is refused */
	is_int(unsub_make(SECRET, "user-42", "marketing", NOW + 60, tok, sizeof tok), UNSUB_OK,
	    "token for the tamper test");
	len = strlen(tok);
	for (i = 0; i < len; i++) {
		for (k = 0; alphabet[k] != '\0'; k++) {
			if (alphabet[k] == tok[i])
				continue;
			memcpy(bad, tok, len + 1);
			bad[i] = alphabet[k];
			tried++;
			rc = unsub_check(SECRET, bad, NOW, &c);
			if (rc != UNSUB_OK)
				refused++;
			if (rc == UNSUB_EMAC)
				emac++;
		}
	}
	is_int((long long)refused, (long long)tried, "all %zu one-character changes refused", tried);
	ok(emac > 0, "changes within the alphabet are caught by the MAC (%zu)", emac);
	memcpy(bad, tok, len + 1);
	bad[len - 1] ^= 0x01;
	ok(unsub_check(SECRET, bad, NOW, &c) != UNSUB_OK && c.user[0] == '\0',
	    "a flipped bit in the MAC: refused, claim cleared");
	/* truncation and extension */
	memcpy(bad, tok, len + 1);
	bad[len - 1] = '\0';
	is_int(unsub_check(SECRET, bad, NOW, &c), UNSUB_EFORM, "truncated: bad form");
	snprintf(bad, sizeof bad, "%sA", tok);
	is_int(unsub_check(SECRET, bad, NOW, &c), UNSUB_EFORM, "a character appended: bad form");
	snprintf(bad, sizeof bad, "A%s", tok);
	ok(unsub_check(SECRET, bad, NOW, &c) != UNSUB_OK, "a character prepended: refused");

	/* another secret */
	is_int(unsub_check("another-secret-of-16+", tok, NOW, &c), UNSUB_EMAC,
	    "another secret: bad signature");
	/* a payload swapped from another genuine token keeps the wrong MAC */
	{
		char other[UNSUB_TOKEN_MAX + 1];
		const char *d1, *d2;

		unsub_make(SECRET, "user-43", "marketing", NOW + 60, other, sizeof other);
		d1 = strchr(tok, '.');
		d2 = strchr(other, '.');
		snprintf(bad, sizeof bad, "%.*s%s", (int)(d2 - other), other, d1);
		is_int(unsub_check(SECRET, bad, NOW, &c), UNSUB_EMAC,
		    "another user's payload with this MAC: bad signature");
	}

	/* expiry: valid until the second before, refused at and after */
	is_int(unsub_check(SECRET, tok, NOW + 59, &c), UNSUB_OK, "valid a second before expiry");
	is_int(unsub_check(SECRET, tok, NOW + 60, &c), UNSUB_EEXPIRED, "expired at its expiry");
	ok(c.user[0] == '\0' && c.category[0] == '\0', "expired: claim cleared");
	is_int(unsub_check(SECRET, tok, NOW + 86400 * 365, &c), UNSUB_EEXPIRED, "expired a year on");

	/* malformed */
	is_int(unsub_check(SECRET, "", NOW, &c), UNSUB_EFORM, "empty: bad form");
	is_int(unsub_check(SECRET, "nodot", NOW, &c), UNSUB_EFORM, "no dot: bad form");
	is_int(unsub_check(SECRET, "a.b.c", NOW, &c), UNSUB_EFORM, "two dots: bad form");
	is_int(unsub_check(SECRET, NULL, NOW, &c), UNSUB_EFORM, "NULL: bad form");
	ok(strstr(unsub_strerror(UNSUB_EEXPIRED), "expired") != NULL &&
	    strstr(unsub_strerror(UNSUB_EMAC), "signature") != NULL, "unsub_strerror names the reason");

	/* make refuses what a token cannot carry */
	longuser[UNSUB_USER_MAX] = 'x';
	longuser[UNSUB_USER_MAX + 1] = '\0';
	is_int(unsub_make(SECRET, longuser, "m", NOW, tok, sizeof tok), UNSUB_EARG, "192-byte user: refused");
	is_int(unsub_make(SECRET, "a\nb", "m", NOW, tok, sizeof tok), UNSUB_EARG, "newline in the user: refused");
	is_int(unsub_make(SECRET, "", "m", NOW, tok, sizeof tok), UNSUB_EARG, "empty user: refused");
	is_int(unsub_make(SECRET, "u", "", NOW, tok, sizeof tok), UNSUB_EARG, "empty category: refused");
	is_int(unsub_make("", "u", "m", NOW, tok, sizeof tok), UNSUB_ESECRET, "empty secret: refused");
	is_int(unsub_make(SECRET, "u", "m", NOW, tok, 10), UNSUB_EARG, "output too small: refused");
	return done();
}
