/* jwt - compact JWS tokens (RFC 7515) signed with OpenSSL's EVP API
 *
 * RS256 is RSASSA-PKCS1-v1_5 with SHA-256 (the FCM service-account assertion); ES256 is ECDSA
 * on P-256 with SHA-256 (the APNs provider token), whose signature is not OpenSSL's DER
 * ECDSA-Sig-Value but the raw 64 bytes r || s, each left-padded to 32 bytes (RFC 7518 §3.4).
 * Errors name what is wrong, never the key.
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "jwt.h"

#define JWT_ES256_HALF 32            /* bytes of r and of s on P-256 */

static const char jwt_b64url_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int jwt_b64url(const unsigned char *in, size_t len, char *out, size_t outlen)
{
	size_t i, o = 0;
	unsigned long v;

	if (outlen < 4 * ((len + 2) / 3) + 1 || len > (size_t)INT_MAX / 2)
		return -1;
	for (i = 0; i + 2 < len; i += 3) {
		v = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8 | in[i + 2];
		out[o++] = jwt_b64url_chars[v >> 18 & 63];
		out[o++] = jwt_b64url_chars[v >> 12 & 63];
		out[o++] = jwt_b64url_chars[v >> 6 & 63];
		out[o++] = jwt_b64url_chars[v & 63];
	}
	if (len - i == 1) {
		v = (unsigned long)in[i] << 16;
		out[o++] = jwt_b64url_chars[v >> 18 & 63];
		out[o++] = jwt_b64url_chars[v >> 12 & 63];
	} else if (len - i == 2) {
		v = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8;
		out[o++] = jwt_b64url_chars[v >> 18 & 63];
		out[o++] = jwt_b64url_chars[v >> 12 & 63];
		out[o++] = jwt_b64url_chars[v >> 6 & 63];
	}
	out[o] = '\0';
	return (int)o;
}

EVP_PKEY *jwt_key_load(const char *pem, size_t len, char *err, size_t errlen)
{
	EVP_PKEY *key;
	BIO *bio;

	if (pem == NULL || len == 0 || len > INT_MAX) {
		snprintf(err, errlen, "empty key");
		return NULL;
	}
	if (memmem(pem, len, "-----BEGIN ", 11) == NULL) {
		snprintf(err, errlen, "not a PEM key (no -----BEGIN line)");
		return NULL;
	}
	if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ERR_clear_error();
	/* a NULL password callback with an empty password: an encrypted key fails, not prompts */
	key = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
	BIO_free(bio);
	if (key == NULL) {
		unsigned long e = ERR_peek_last_error();
		const char *why = e ? ERR_reason_error_string(e) : NULL;

		ERR_clear_error();
		snprintf(err, errlen, "not a valid PEM private key (PKCS#8, RSA or EC)%s%s",
		    why ? ": " : "", why ? why : "");
		return NULL;
	}
	return key;
}

/* jwt_key_fits - whether KEY can sign under ALG; else ERR says why */
static int jwt_key_fits(EVP_PKEY *key, const char *alg, char *err, size_t errlen)
{
	char group[64];
	size_t glen = 0;

	if (strcmp(alg, "RS256") == 0) {
		if (!EVP_PKEY_is_a(key, "RSA")) {
			snprintf(err, errlen, "RS256 needs an RSA key, not %s",
			    EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "this key");
			return 0;
		}
		return 1;
	}
	if (strcmp(alg, "ES256") == 0) {
		if (!EVP_PKEY_is_a(key, "EC")) {
			snprintf(err, errlen, "ES256 needs an EC P-256 key, not %s",
			    EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "this key");
			return 0;
		}
		if (!EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
		    sizeof(group), &glen) || (strcmp(group, "prime256v1") != 0 &&
		    strcmp(group, "P-256") != 0 && strcmp(group, "secp256r1") != 0)) {
			snprintf(err, errlen, "ES256 needs an EC P-256 key, not curve %s",
			    glen ? group : "(unknown)");
			return 0;
		}
		return 1;
	}
	snprintf(err, errlen, "unsupported alg \"%s\" (RS256 or ES256)", alg);
	return 0;
}

/* jwt_es256_raw - the DER ECDSA signature DER[0..*LEN) as r || s into OUT (64 bytes) */
static int jwt_es256_raw(const unsigned char *der, size_t len, unsigned char *out)
{
	const unsigned char *p = der;
	const BIGNUM *r, *s;
	ECDSA_SIG *sig;
	int ok;

	if (len > LONG_MAX || (sig = d2i_ECDSA_SIG(NULL, &p, (long)len)) == NULL)
		return -1;
	ECDSA_SIG_get0(sig, &r, &s);
	ok = BN_bn2binpad(r, out, JWT_ES256_HALF) == JWT_ES256_HALF &&
	    BN_bn2binpad(s, out + JWT_ES256_HALF, JWT_ES256_HALF) == JWT_ES256_HALF;
	ECDSA_SIG_free(sig);
	return ok ? 0 : -1;
}

char *jwt_sign(EVP_PKEY *key, const char *alg, const char *header, const char *claims,
	char *err, size_t errlen)
{
	size_t hlen, clen, inlen, siglen = 0, outlen, need;
	unsigned char *sig = NULL, raw[2 * JWT_ES256_HALF];
	const unsigned char *sp;
	char *out = NULL, *res = NULL, *grown;
	EVP_MD_CTX *md = NULL;
	int n;

	if (key == NULL || alg == NULL || header == NULL || claims == NULL) {
		snprintf(err, errlen, "missing key, alg, header or claims");
		return NULL;
	}
	if (!jwt_key_fits(key, alg, err, errlen))
		return NULL;
	hlen = strlen(header);
	clen = strlen(claims);
	if (hlen > INT_MAX / 4 || clen > INT_MAX / 4) {
		snprintf(err, errlen, "header or claims too long");
		return NULL;
	}
	/* header '.' claims, then '.' signature once its length is known */
	outlen = 4 * ((hlen + 2) / 3) + 1 + 4 * ((clen + 2) / 3) + 2;
	if ((out = malloc(outlen)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	n = jwt_b64url((const unsigned char *)header, hlen, out, outlen);
	inlen = (size_t)n;
	out[inlen++] = '.';
	n = jwt_b64url((const unsigned char *)claims, clen, out + inlen, outlen - inlen);
	inlen += (size_t)n;

	ERR_clear_error();
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)out, inlen) != 1 ||
	    (sig = malloc(siglen)) == NULL ||
	    EVP_DigestSign(md, sig, &siglen, (const unsigned char *)out, inlen) != 1) {
		unsigned long e = ERR_peek_last_error();

		snprintf(err, errlen, "%s signing failed%s%s", alg, e ? ": " : "",
		    e && ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "");
		ERR_clear_error();
		goto out;
	}
	sp = sig;
	if (strcmp(alg, "ES256") == 0) {
		if (jwt_es256_raw(sig, siglen, raw) != 0) {
			snprintf(err, errlen, "ES256 signature is not a P-256 ECDSA signature");
			goto out;
		}
		sp = raw;
		siglen = sizeof(raw);
	}
	need = inlen + 1 + 4 * ((siglen + 2) / 3) + 1;
	if ((grown = realloc(out, need)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	out = grown;
	out[inlen++] = '.';
	if (jwt_b64url(sp, siglen, out + inlen, need - inlen) < 0) {
		snprintf(err, errlen, "signature encoding failed");
		goto out;
	}
	res = out;
	out = NULL;
out:
	EVP_MD_CTX_free(md);
	free(sig);
	free(out);
	return res;
}
