/* unsub - unsubscribe tokens (SPEC §5): base64url(user "\n" category "\n" expires) "."
 * base64url(HMAC-SHA256) under unsubscribe.secret
 *
 * The MAC covers the encoded first part behind a fixed label, so a token of this kind can never
 * be mistaken for another signature made with the same secret. Decoding is strict: a base64url
 * text is accepted only in the one form the encoder writes (no padding, no stray low bits), so
 * changing any character of a token changes what is checked and the check fails.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "unsub.h"

#define UNSUB_LABEL "herald-unsub-v1."
#define UNSUB_MAC_LEN 32                     /* SHA-256 */
#define UNSUB_MAC_B64 43                     /* its base64url length */
#define UNSUB_PAYLOAD_MAX (UNSUB_USER_MAX + UNSUB_CATEGORY_MAX + 2 + 20)
#define UNSUB_PAYLOAD_B64_MAX ((UNSUB_PAYLOAD_MAX * 4 + 2) / 3)

/* unsub_b64_encode - IN[0..LEN) as unpadded base64url into OUT (size at least 4*LEN/3 + 5);
 * the text's length */
static size_t unsub_b64_encode(const unsigned char *in, size_t len, char *out)
{
	int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	size_t k;

	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (k = 0; k < (size_t)n; k++) {
		if (out[k] == '+')
			out[k] = '-';
		else if (out[k] == '/')
			out[k] = '_';
	}
	return (size_t)n;
}

/* unsub_b64_decode - the canonical unpadded base64url text S[0..LEN) into OUT (size OUTLEN);
 * the byte count, or -1 when S holds another character, has an impossible length, is not the
 * encoder's exact output or does not fit */
static int unsub_b64_decode(const char *s, size_t len, unsigned char *out, size_t outlen)
{
	char buf[UNSUB_PAYLOAD_B64_MAX + 8], again[UNSUB_PAYLOAD_B64_MAX + 8];
	unsigned char dec[UNSUB_PAYLOAD_MAX + 8];
	size_t padded, k, pad;
	int n;

	if (len == 0 || len % 4 == 1 || len > UNSUB_PAYLOAD_B64_MAX)
		return -1;
	padded = (len + 3) / 4 * 4;
	pad = padded - len;
	for (k = 0; k < len; k++) {
		char c = s[k];

		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			return -1;
		buf[k] = c;
	}
	memset(buf + len, '=', pad);
	buf[padded] = '\0';
	n = EVP_DecodeBlock(dec, (const unsigned char *)buf, (int)padded);
	if (n < 0 || (size_t)n < pad)
		return -1;
	n -= (int)pad;                   /* EVP_DecodeBlock counts the padding as zero bytes */
	if ((size_t)n > outlen)
		return -1;
	/* canonical: the spare low bits of the last character must be zero */
	if (unsub_b64_encode(dec, (size_t)n, again) != len || memcmp(again, s, len) != 0)
		return -1;
	memcpy(out, dec, (size_t)n);
	return n;
}

/* unsub_mac - HMAC-SHA256 under SECRET of the label and the encoded payload P[0..LEN) into MAC;
 * 0 or -1 */
static int unsub_mac(const char *secret, const char *p, size_t len,
	unsigned char mac[UNSUB_MAC_LEN])
{
	char msg[sizeof UNSUB_LABEL + UNSUB_PAYLOAD_B64_MAX + 1];
	size_t ll = strlen(UNSUB_LABEL);
	unsigned int maclen = 0;

	if (len > UNSUB_PAYLOAD_B64_MAX)
		return -1;
	memcpy(msg, UNSUB_LABEL, ll);    /* NOLINT(bugprone-not-null-terminated-result): a prefix */
	memcpy(msg + ll, p, len);
	if (HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg, ll + len,
	    mac, &maclen) == NULL || maclen != UNSUB_MAC_LEN)
		return -1;
	return 0;
}

/* unsub_field_ok - S is 1..MAX bytes without a newline */
static bool unsub_field_ok(const char *s, size_t max)
{
	size_t len;

	if (s == NULL || (len = strlen(s)) == 0 || len > max)
		return false;
	return memchr(s, '\n', len) == NULL;
}

int unsub_make(const char *secret, const char *user, const char *category, int64_t expires,
	char *out, size_t outlen)
{
	char payload[UNSUB_PAYLOAD_MAX + 1], p64[UNSUB_PAYLOAD_B64_MAX + 8];
	unsigned char mac[UNSUB_MAC_LEN];
	char m64[UNSUB_MAC_B64 + 8];
	size_t plen, elen;
	int n;

	if (outlen > 0)
		out[0] = '\0';
	if (secret == NULL || secret[0] == '\0')
		return UNSUB_ESECRET;
	if (!unsub_field_ok(user, UNSUB_USER_MAX) || !unsub_field_ok(category, UNSUB_CATEGORY_MAX) ||
	    expires < 0)
		return UNSUB_EARG;
	n = snprintf(payload, sizeof payload, "%s\n%s\n%lld", user, category, (long long)expires);
	if (n < 0 || (size_t)n >= sizeof payload)
		return UNSUB_EARG;
	plen = unsub_b64_encode((const unsigned char *)payload, (size_t)n, p64);
	if (unsub_mac(secret, p64, plen, mac) < 0)
		return UNSUB_ESECRET;
	elen = unsub_b64_encode(mac, sizeof mac, m64);
	OPENSSL_cleanse(mac, sizeof mac);
	if (plen + 1 + elen + 1 > outlen)
		return UNSUB_EARG;
	memcpy(out, p64, plen);
	out[plen] = '.';
	memcpy(out + plen + 1, m64, elen + 1);
	return UNSUB_OK;
}

/* unsub_parse - the payload P[0..LEN) ("user\ncategory\nexpires") into OUT; 0 or -1 */
static int unsub_parse(const char *p, size_t len, struct unsub_claim *out)
{
	const char *nl1 = memchr(p, '\n', len), *nl2, *e, *end = p + len;
	long long v = 0;

	if (nl1 == NULL || (nl2 = memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1))) == NULL)
		return -1;
	if (nl1 == p || (size_t)(nl1 - p) > UNSUB_USER_MAX || nl2 == nl1 + 1 ||
	    (size_t)(nl2 - nl1 - 1) > UNSUB_CATEGORY_MAX)
		return -1;
	if (memchr(p, '\0', len) != NULL)
		return -1;
	e = nl2 + 1;
	if (e == end || end - e > 18 || (*e == '0' && end - e > 1))
		return -1;
	for (; e < end; e++) {
		if (*e < '0' || *e > '9')
			return -1;
		v = v * 10 + (*e - '0');
	}
	memcpy(out->user, p, (size_t)(nl1 - p));
	out->user[nl1 - p] = '\0';
	memcpy(out->category, nl1 + 1, (size_t)(nl2 - nl1 - 1));
	out->category[nl2 - nl1 - 1] = '\0';
	out->expires = v;
	return 0;
}

int unsub_check(const char *secret, const char *token, int64_t now, struct unsub_claim *out)
{
	unsigned char payload[UNSUB_PAYLOAD_MAX + 1], mac[UNSUB_MAC_LEN + 4], want[UNSUB_MAC_LEN];
	const char *dot;
	size_t tlen;
	int plen;

	memset(out, 0, sizeof *out);
	if (secret == NULL || secret[0] == '\0')
		return UNSUB_ESECRET;
	if (token == NULL || (tlen = strlen(token)) > UNSUB_TOKEN_MAX ||
	    (dot = strchr(token, '.')) == NULL || strchr(dot + 1, '.') != NULL)
		return UNSUB_EFORM;
	if ((size_t)(token + tlen - dot - 1) != UNSUB_MAC_B64 ||
	    unsub_b64_decode(dot + 1, UNSUB_MAC_B64, mac, sizeof mac) != UNSUB_MAC_LEN)
		return UNSUB_EFORM;
	if ((plen = unsub_b64_decode(token, (size_t)(dot - token), payload, UNSUB_PAYLOAD_MAX)) <= 0)
		return UNSUB_EFORM;
	if (unsub_mac(secret, token, (size_t)(dot - token), want) < 0)
		return UNSUB_ESECRET;
	if (CRYPTO_memcmp(want, mac, UNSUB_MAC_LEN) != 0) {
		OPENSSL_cleanse(want, sizeof want);
		return UNSUB_EMAC;
	}
	OPENSSL_cleanse(want, sizeof want);
	if (unsub_parse((const char *)payload, (size_t)plen, out) < 0) {
		memset(out, 0, sizeof *out);
		return UNSUB_EFORM;
	}
	if (out->expires <= now) {
		memset(out, 0, sizeof *out);
		return UNSUB_EEXPIRED;
	}
	return UNSUB_OK;
}

const char *unsub_strerror(int rc)
{
	switch (rc) {
	case UNSUB_OK:
		return "ok";
	case UNSUB_EARG:
		return "user id or category not usable in a token";
	case UNSUB_EFORM:
		return "not an unsubscribe token";
	case UNSUB_EMAC:
		return "bad signature (altered, forged or signed with another secret)";
	case UNSUB_EEXPIRED:
		return "expired";
	case UNSUB_ESECRET:
		return "no usable unsubscribe.secret";
	default:
		return "unknown error";
	}
}
