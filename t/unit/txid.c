/* t/unit/txid - txid_new format and uniqueness, txid_valid tables */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "txid.h"

#define TXID_T_COUNT 10000

/* txid_t_cmp - qsort comparator for fixed-size id strings */
static int txid_t_cmp(const void *a, const void *b)
{
	return memcmp(a, b, TXID_LEN);
}

/* txid_t_format - ID is lower-case hex, version 4, RFC 4122 variant */
static int txid_t_format(const char *id)
{
	size_t i;

	if (strlen(id) != TXID_LEN || id[14] != '4' || strchr("89ab", id[19]) == NULL)
		return 0;
	for (i = 0; i < TXID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			continue;
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return 0;
	}
	return txid_valid(id);
}

int main(void)
{
	static const char *good[] = {
		"00000000-0000-0000-0000-000000000000",
		"123e4567-e89b-12d3-a456-426614174000",
		"f47ac10b-58cc-4372-a567-0e02b2c3d479",
	};
	static const char *bad[] = {
		"",
		"f47ac10b-58cc-4372-a567-0e02b2c3d47",          /* short */
		"f47ac10b-58cc-4372-a567-0e02b2c3d4799",        /* long */
		"f47ac10b58cc-4372-a567-0e02b2c3d479a",         /* dash moved */
		"f47ac10b-58cc-4372-a567_0e02b2c3d479",         /* wrong separator */
		"f47ac10g-58cc-4372-a567-0e02b2c3d479",         /* non-hex */
		"{f47ac10b-58cc-4372-a567-0e02b2c3d479}",       /* braces */
		" f47ac10b-58cc-4372-a567-0e02b2c3d479",        /* leading space */
		"f47ac10b-58cc-4372-a567-0e02b2c3d479\n",       /* trailing newline */
		"f47ac10b58cc4372a5670e02b2c3d479",             /* no dashes */
		"urn:uuid:f47ac10b-58cc-4372-a567-0e02b2c3d479",
		"123E4567-E89B-12D3-A456-426614174000",         /* upper case: ids compare exactly */
	};
	size_t ngood = sizeof good / sizeof good[0], nbad = sizeof bad / sizeof bad[0];
	char (*ids)[TXID_LEN + 1];
	char id[TXID_LEN + 1];
	int i, allok = 1, fmtok = 1, dups = 0;
	size_t k;

	plan((int)(ngood + nbad) + 5);

	ok(txid_new(id) == 0, "txid_new succeeds");
	ok(txid_t_format(id), "txid_new gives a lower-case v4 UUID");

	ids = calloc(TXID_T_COUNT, sizeof *ids);
	if (ids == NULL)
		return 1;
	for (i = 0; i < TXID_T_COUNT; i++) {
		if (txid_new(ids[i]) != 0)
			allok = 0;
		else if (!txid_t_format(ids[i]))
			fmtok = 0;
	}
	ok(allok, "10000 calls to txid_new succeed");
	ok(fmtok, "10000 ids are well formed");
	qsort(ids, TXID_T_COUNT, sizeof *ids, txid_t_cmp);
	for (i = 1; i < TXID_T_COUNT; i++)
		if (memcmp(ids[i - 1], ids[i], TXID_LEN) == 0)
			dups++;
	is_int(dups, 0, "10000 ids are unique");
	free(ids);

	for (k = 0; k < ngood; k++) {
		char d[80];

		snprintf(d, sizeof d, "valid: %s", good[k]);
		if (!ok(txid_valid(good[k]), "valid id accepted"))
			printf("#   %s\n", d);
	}
	for (k = 0; k < nbad; k++) {
		char d[80];

		snprintf(d, sizeof d, "invalid #%zu refused", k);
		if (!ok(!txid_valid(bad[k]), "invalid id refused"))
			printf("#   %s\n", d);
	}
	return done();
}
