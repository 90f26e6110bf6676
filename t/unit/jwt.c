/* t/unit/jwt - base64url vectors; RS256 and ES256 tokens from keys made at test time, checked
 * with EVP_DigestVerify (ES256: r || s turned back into DER); header and claims round-trip;
 * PKCS#8 and traditional PEM; wrong key type for the alg and bad PEM refused */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "jwt.h"
#include "tap.h"

/* b64url_dec - decode unpadded base64url S[0..LEN) into OUT; the length, or -1 */
static int b64url_dec(const char *s, size_t len, unsigned char *out, size_t outlen)
{
	static const char *chars =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned long acc = 0;
	size_t i, o = 0;
	int bits = 0;

	for (i = 0; i < len; i++) {
		const char *p = s[i] ? strchr(chars, s[i]) : NULL;

		if (p == NULL)
			return -1;
		acc = acc << 6 | (unsigned long)(p - chars);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= outlen)
				return -1;
			out[o++] = (unsigned char)(acc >> bits & 0xff);
		}
	}
	if (len % 4 == 1)
		return -1;
	return (int)o;
}

/* pem_of - KEY as PEM text (PKCS#8, or traditional when TRAD); malloc'd */
static char *pem_of(EVP_PKEY *key, int trad)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *s = NULL;
	long n;
	int r;

	if (b == NULL)
		return NULL;
	r = trad ? PEM_write_bio_PrivateKey_traditional(b, key, NULL, NULL, 0, NULL, NULL)
		: PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
	if (r == 1 && (n = BIO_get_mem_data(b, &data)) > 0 && (s = malloc((size_t)n + 1)) != NULL) {
		memcpy(s, data, (size_t)n);
		s[n] = '\0';
	}
	BIO_free(b);
	return s;
}

struct parts {
	char header[512], claims[512];
	unsigned char sig[1024];
	int siglen;
	size_t signed_len;           /* bytes of "<header>.<claims>" */
};

/* split - decode TOKEN's three parts into P; 0, or -1 when it is not a compact JWS */
static int split(const char *token, struct parts *p)
{
	const char *d1 = strchr(token, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	int n;

	if (d2 == NULL || strchr(d2 + 1, '.') != NULL)
		return -1;
	if ((n = b64url_dec(token, (size_t)(d1 - token), (unsigned char *)p->header,
		sizeof(p->header) - 1)) < 0)
		return -1;
	p->header[n] = '\0';
	if ((n = b64url_dec(d1 + 1, (size_t)(d2 - d1 - 1), (unsigned char *)p->claims,
		sizeof(p->claims) - 1)) < 0)
		return -1;
	p->claims[n] = '\0';
	if ((p->siglen = b64url_dec(d2 + 1, strlen(d2 + 1), p->sig, sizeof(p->sig))) < 0)
		return -1;
	p->signed_len = (size_t)(d2 - token);
	return 0;
}

/* verify - whether SIG[0..LEN) (ES256: raw r || s) signs MSG[0..MLEN) under KEY */
static int verify(EVP_PKEY *key, int es, const unsigned char *sig, size_t len,
	const char *msg, size_t mlen)
{
	unsigned char *der = NULL;
	EVP_MD_CTX *md;
	int ok = 0, dlen = 0;

	if (es) {
		ECDSA_SIG *e = ECDSA_SIG_new();
		BIGNUM *r, *s;

		if (e == NULL || len != 64)
			return 0;
		r = BN_bin2bn(sig, 32, NULL);
		s = BN_bin2bn(sig + 32, 32, NULL);
		ECDSA_SIG_set0(e, r, s);
		dlen = i2d_ECDSA_SIG(e, &der);
		ECDSA_SIG_free(e);
		if (dlen <= 0)
			return 0;
		sig = der;
		len = (size_t)dlen;
	}
	if ((md = EVP_MD_CTX_new()) != NULL &&
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1)
		ok = EVP_DigestVerify(md, sig, len, (const unsigned char *)msg, mlen) == 1;
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	return ok;
}

static void test_b64url(void)
{
	static const struct { const char *in, *out; } v[] = {
		{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" }, { "foob", "Zm9vYg" },
		{ "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" }, { "\xfb\xff", "-_8" },
		{ "\xff\xfe\xfd", "__79" },
	};
	char out[32];
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		int n = jwt_b64url((const unsigned char *)v[i].in, strlen(v[i].in), out, sizeof(out));

		ok(n == (int)strlen(v[i].out) && strcmp(out, v[i].out) == 0, "b64url \"%s\"",
			v[i].out);
	}
	is_int(jwt_b64url((const unsigned char *)"foo", 3, out, 4), -1, "b64url: OUT too small");
	is_int(jwt_b64url((const unsigned char *)"foo", 3, out, 5), 4, "b64url: exact OUT size");
}

/* test_alg - sign with KEY (made here) under ALG and check everything about the token */
static void test_alg(EVP_PKEY *key, const char *alg, int es)
{
	const char *hdr = "{\"alg\":\"ES256\",\"kid\":\"ABC123DEFG\"}";
	const char *clm = "{\"iss\":\"DEF123GHIJ\",\"iat\":1700000000,\"x\":\"\\u00e9?>\"}";
	char err[256], *pem, *tok;
	struct parts p;
	EVP_PKEY *loaded;

	pem = pem_of(key, 0);
	err[0] = '\0';
	loaded = pem ? jwt_key_load(pem, strlen(pem), err, sizeof(err)) : NULL;
	ok(loaded != NULL, "%s: PKCS#8 PEM loads", alg);
	if (loaded == NULL)
		diag("%s", err);
	ok(pem != NULL && strstr(pem, "BEGIN PRIVATE KEY") != NULL, "%s: the PEM is PKCS#8", alg);
	free(pem);
	if (loaded == NULL)
		loaded = (EVP_PKEY_up_ref(key), key);

	tok = jwt_sign(loaded, alg, hdr, clm, err, sizeof(err));
	ok(tok != NULL, "%s: signs", alg);
	if (tok == NULL) {
		diag("%s", err);
		tok = strdup("x.y.z");
	}
	ok(split(tok, &p) == 0, "%s: three base64url parts", alg);
	is_str(p.header, hdr, "%s: header round-trips", alg);
	is_str(p.claims, clm, "%s: claims round-trip", alg);
	if (es)
		is_int(p.siglen, 64, "ES256: raw r||s signature of 64 bytes");
	else
		is_int(p.siglen, EVP_PKEY_get_size(key), "RS256: signature of the modulus size");
	ok(verify(key, es, p.sig, (size_t)p.siglen, tok, p.signed_len),
		"%s: EVP_DigestVerify accepts it", alg);
	p.sig[p.siglen / 2] ^= 1;
	ok(!verify(key, es, p.sig, (size_t)p.siglen, tok, p.signed_len),
		"%s: a flipped signature bit is refused", alg);
	p.sig[p.siglen / 2] ^= 1;
	ok(!verify(key, es, p.sig, (size_t)p.siglen, tok, p.signed_len - 1),
		"%s: a changed message is refused", alg);
	free(tok);

	/* the traditional PEM ("BEGIN RSA/EC PRIVATE KEY") too */
	pem = pem_of(key, 1);
	{
		EVP_PKEY *t = pem ? jwt_key_load(pem, strlen(pem), err, sizeof(err)) : NULL;

		ok(t != NULL && pem != NULL && strstr(pem, es ? "BEGIN EC PRIVATE KEY"
			: "BEGIN RSA PRIVATE KEY") != NULL && EVP_PKEY_eq(t, key) == 1,
			"%s: traditional PEM loads the same key", alg);
		EVP_PKEY_free(t);
	}
	free(pem);
	EVP_PKEY_free(loaded);
}

/* test_es256_many - many ES256 tokens all verify (r or s with leading zero bytes included) */
static void test_es256_many(EVP_PKEY *key)
{
	char err[256], *tok, claims[64];
	int i, good = 0, n = 300;
	struct parts p;

	for (i = 0; i < n; i++) {
		snprintf(claims, sizeof(claims), "{\"iat\":%d}", i);
		tok = jwt_sign(key, "ES256", "{\"alg\":\"ES256\"}", claims, err, sizeof(err));
		if (tok != NULL && split(tok, &p) == 0 && p.siglen == 64 &&
		    verify(key, 1, p.sig, 64, tok, p.signed_len))
			good++;
		free(tok);
	}
	is_int(good, n, "ES256: %d tokens in a row all verify", n);
}

static void test_refusals(EVP_PKEY *rsa, EVP_PKEY *ec, EVP_PKEY *p384)
{
	static const char junk[] = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n";
	static const char nopem[] = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg";
	char err[256], *tok, *pub;
	EVP_PKEY *k;
	BIO *b;

	err[0] = '\0';
	tok = jwt_sign(ec, "RS256", "{}", "{}", err, sizeof(err));
	ok(tok == NULL && strstr(err, "RS256") && strstr(err, "RSA"), "RS256 with an EC key refused");
	diag("%s", err);
	free(tok);
	err[0] = '\0';
	tok = jwt_sign(rsa, "ES256", "{}", "{}", err, sizeof(err));
	ok(tok == NULL && strstr(err, "ES256") && strstr(err, "P-256"), "ES256 with an RSA key refused");
	diag("%s", err);
	free(tok);
	err[0] = '\0';
	tok = jwt_sign(p384, "ES256", "{}", "{}", err, sizeof(err));
	ok(tok == NULL && strstr(err, "P-256") && strstr(err, "secp384r1"),
		"ES256 with a P-384 key refused");
	diag("%s", err);
	free(tok);
	err[0] = '\0';
	tok = jwt_sign(ec, "HS256", "{}", "{}", err, sizeof(err));
	ok(tok == NULL && strstr(err, "HS256"), "an unsupported alg refused");
	free(tok);

	err[0] = '\0';
	k = jwt_key_load(junk, strlen(junk), err, sizeof(err));
	ok(k == NULL && strstr(err, "PEM") != NULL, "a PEM with garbage inside refused");
	diag("%s", err);
	EVP_PKEY_free(k);
	err[0] = '\0';
	k = jwt_key_load(nopem, strlen(nopem), err, sizeof(err));
	ok(k == NULL && strstr(err, "PEM") != NULL && strstr(err, "MIGH") == NULL,
		"bare base64 refused, the key text not echoed");
	EVP_PKEY_free(k);
	err[0] = '\0';
	k = jwt_key_load("", 0, err, sizeof(err));
	ok(k == NULL && err[0] != '\0', "an empty key refused");
	EVP_PKEY_free(k);

	/* a public key is not a private key */
	pub = NULL;
	if ((b = BIO_new(BIO_s_mem())) != NULL && PEM_write_bio_PUBKEY(b, ec) == 1) {
		char *data;
		long n = BIO_get_mem_data(b, &data);

		if (n > 0 && (pub = malloc((size_t)n + 1)) != NULL) {
			memcpy(pub, data, (size_t)n);
			pub[n] = '\0';
		}
	}
	BIO_free(b);
	err[0] = '\0';
	k = pub ? jwt_key_load(pub, strlen(pub), err, sizeof(err)) : NULL;
	ok(pub != NULL && k == NULL && strstr(err, "private key") != NULL,
		"a public-key PEM refused");
	EVP_PKEY_free(k);
	free(pub);

	/* a truncated PKCS#8 PEM */
	{
		char *pem = pem_of(ec, 0);
		size_t len = pem ? strlen(pem) : 0;

		err[0] = '\0';
		k = pem ? jwt_key_load(pem, len / 2, err, sizeof(err)) : NULL;
		ok(pem != NULL && k == NULL && err[0] != '\0', "a truncated PEM refused");
		EVP_PKEY_free(k);
		free(pem);
	}
}

int main(void)
{
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);

	plan(9 + 2 + 2 * 11 + 1 + 9);
	if (ec == NULL || rsa == NULL || p384 == NULL) {
		printf("Bail out! key generation failed\n");
		return 1;
	}
	test_b64url();
	test_alg(rsa, "RS256", 0);
	test_alg(ec, "ES256", 1);
	test_es256_many(ec);
	test_refusals(rsa, ec, p384);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(rsa);
	return done();
}
