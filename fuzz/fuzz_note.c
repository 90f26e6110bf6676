/* fuzz_note - libFuzzer harness of the wire-message decoder: codec_note_decode on the input; what
 * decodes is encoded, decoded again and encoded again: both encodings must be the same bytes. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct note *n, *m;
	struct codec_error err;
	char *a, *b;
	size_t alen, blen;

	memset(&err, 0, sizeof(err));
	if (codec_note_decode((const char *)data, size, &n, &err) < 0) {
		if (n != NULL || err.message[0] == '\0' ||
		    memchr(err.field, '\0', sizeof(err.field)) == NULL)
			abort();
		return 0;
	}
	if (codec_note_encode(n, &a, &alen) < 0)
		abort();
	if (strlen(a) != alen)
		abort();
	if (codec_note_decode(a, alen, &m, &err) < 0)
		abort();                 /* encode made what decode refuses */
	if (codec_note_encode(m, &b, &blen) < 0)
		abort();
	if (alen != blen || memcmp(a, b, alen) != 0)
		abort();                 /* not a round trip */
	free(a);
	free(b);
	codec_note_free(n);
	codec_note_free(m);
	return 0;
}
