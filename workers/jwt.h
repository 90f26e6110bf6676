/* jwt - compact JWS tokens signed with OpenSSL's EVP API: RS256 for the FCM service-account
 * assertion, ES256 (raw r||s signature, RFC 7518 §3.4) for the APNs provider token */
#ifndef HERALD_JWT_H
#define HERALD_JWT_H

#include <stddef.h>

#include <openssl/evp.h>

/* jwt_key_load - the private key in PEM text PEM[0..LEN) (PKCS#8 "PRIVATE KEY", or a
 * traditional RSA / EC one); NULL with ERR naming what is wrong (never the key itself) */
EVP_PKEY *jwt_key_load(const char *pem, size_t len, char *err, size_t errlen);

/* jwt_sign - "<b64url(HEADER)>.<b64url(CLAIMS)>.<b64url(signature)>" with KEY under ALG
 * ("RS256": an RSA key; "ES256": a P-256 key), HEADER and CLAIMS being JSON texts used as they
 * are; a malloc'd string, or NULL with ERR (wrong key type for ALG, OpenSSL failure) */
char *jwt_sign(EVP_PKEY *key, const char *alg, const char *header, const char *claims,
	char *err, size_t errlen);

/* jwt_b64url - base64url without padding of IN[0..LEN) into OUT (size OUTLEN, at least
 * 4 * ceil(LEN / 3) + 1); the length written, or -1 when OUT is too small */
int jwt_b64url(const unsigned char *in, size_t len, char *out, size_t outlen);

#endif
