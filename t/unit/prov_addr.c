/* prov_addr - the private-destination guard's address test over IPv4/IPv6 edge cases, the
 * Retry-After parser, and Standard Webhooks signing against the spec's published example */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "prov.h"
#include "tap.h"

/* private_of - prov_addr_private of the textual address S (IPv4 or IPv6); -1 if S is bad */
static int private_of(const char *s)
{
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;

	memset(&in4, 0, sizeof in4);
	memset(&in6, 0, sizeof in6);
	if (inet_pton(AF_INET, s, &in4.sin_addr) == 1) {
		in4.sin_family = AF_INET;
		return prov_addr_private((struct sockaddr *)&in4);
	}
	if (inet_pton(AF_INET6, s, &in6.sin6_addr) == 1) {
		in6.sin6_family = AF_INET6;
		return prov_addr_private((struct sockaddr *)&in6);
	}
	return -1;
}

static const struct {
	const char *addr;
	int priv;
} cases[] = {
	{ "127.0.0.1", 1 }, { "127.255.255.254", 1 }, { "0.0.0.0", 1 }, { "0.1.2.3", 1 },
	{ "10.0.0.7", 1 }, { "10.255.255.255", 1 }, { "11.0.0.1", 0 },
	{ "172.15.255.255", 0 }, { "172.16.0.0", 1 }, { "172.31.255.255", 1 }, { "172.32.0.0", 0 },
	{ "192.168.1.1", 1 }, { "192.167.255.255", 0 }, { "192.169.0.0", 0 },
	{ "169.254.169.254", 1 }, { "169.253.0.1", 0 }, { "169.255.0.1", 0 },
	{ "100.64.0.1", 1 }, { "100.127.255.255", 1 }, { "100.63.255.255", 0 }, { "100.128.0.0", 0 },
	{ "224.0.0.1", 1 }, { "239.255.255.250", 1 }, { "255.255.255.255", 1 }, { "240.0.0.1", 1 },
	{ "8.8.8.8", 0 }, { "1.1.1.1", 0 }, { "93.184.216.34", 0 }, { "223.255.255.255", 0 },
	{ "::", 1 }, { "::1", 1 }, { "::2", 1 }, { "fe80::1", 1 }, { "febf::1", 1 }, { "fec0::1", 1 },
	{ "fc00::1", 1 }, { "fd12:3456::1", 1 }, { "fe00::1", 0 }, { "ff02::1", 1 },
	{ "ff05::1:3", 1 }, { "2001:4860:4860::8888", 0 }, { "2606:4700::1111", 0 },
	{ "::ffff:127.0.0.1", 1 }, { "::ffff:10.1.2.3", 1 }, { "::ffff:192.168.0.1", 1 },
	{ "::ffff:169.254.169.254", 1 }, { "::ffff:8.8.8.8", 0 }, { "::ffff:0.0.0.0", 1 },
	{ "::127.0.0.1", 1 }, { "::8.8.8.8", 0 }, { "64:ff9b::7f00:1", 1 }, { "64:ff9b::808:808", 0 },
	{ "2002:7f00:1::1", 1 }, { "2002:c0a8:101::1", 1 }, { "2002:808:808::1", 0 },
};

int main(void)
{
	struct sockaddr_un_like {
		sa_family_t family;
		char path[32];
	} un = { AF_UNIX, "/tmp/x" };
	char sig[PROV_WEBHOOK_SIG_MAX];
	unsigned char key[64];
	const char *body = "{\"test\": 2432232314}";
	size_t i, n = sizeof cases / sizeof cases[0];
	time_t now = 1614265330;

	plan((int)n + 19);
	for (i = 0; i < n; i++)
		is_int(private_of(cases[i].addr), cases[i].priv, "%s is %s", cases[i].addr,
		    cases[i].priv ? "private" : "public");
	ok(prov_addr_private((struct sockaddr *)(void *)&un), "AF_UNIX is refused");
	ok(prov_addr_private(NULL), "NULL is refused");

	/* the Standard Webhooks specification's example */
	is_int(prov_webhook_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	    "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), sig, sizeof sig), 0,
	    "sign the spec example");
	is_str(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "spec example signature");
	is_int(prov_webhook_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key, sizeof key), 24,
	    "whsec_ secret decodes to 24 bytes");
	is_int(prov_webhook_secret("whsec_AAE", key, sizeof key), 2, "unpadded base64 accepted");
	is_int(prov_webhook_secret("whsec_AAE=", key, sizeof key), 2, "padded base64, 2 bytes");
	ok(key[0] == 0 && key[1] == 1, "decoded bytes right");
	is_int(prov_webhook_secret("whsec_!!!!", key, sizeof key), -1, "bad base64 refused");
	is_int(prov_webhook_secret("whsec_", key, sizeof key), -1, "empty whsec_ refused");
	is_int(prov_webhook_secret("whsec_A", key, sizeof key), -1, "truncated base64 refused");
	is_int(prov_webhook_secret("plain-secret", key, sizeof key), 12, "raw secret: its bytes");
	ok(memcmp(key, "plain-secret", 12) == 0, "raw secret bytes");

	is_int(prov_retry_after_parse("7", now), 7, "Retry-After: 7");
	is_int(prov_retry_after_parse(" 120 ", now), 120, "Retry-After with spaces");
	is_int(prov_retry_after_parse("99999999999", now), 86400, "Retry-After capped at a day");
	is_int(prov_retry_after_parse("Thu, 25 Feb 2021 15:02:40 GMT", now), 30,
	    "Retry-After HTTP-date 30 s ahead");
	is_int(prov_retry_after_parse("Wed, 21 Oct 2015 07:28:00 GMT", now), 0,
	    "Retry-After date in the past: 0");
	is_int(prov_retry_after_parse("soon", now), -1, "Retry-After garbage: -1");
	return done();
}
