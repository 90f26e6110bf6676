/* fuzz_request - libFuzzer harness of the §2 request codec: codec_request_parse on the input, then
 * on success codec_request_split, codec_reply_received and a wire round trip of every note; on
 * failure codec_reply_error. Every reply must be valid JSON. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "codec.h"

/* fz_json_ok - abort unless S is one complete JSON object */
static void fz_json_ok(const char *s)
{
	struct json_object *o;

	if (s == NULL)
		abort();
	o = json_tokener_parse(s);
	if (o == NULL || !json_object_is_type(o, json_type_object))
		abort();
	json_object_put(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct request *r = NULL;
	struct note **notes = NULL, *back;
	struct codec_error err;
	char *reply, *wire;
	size_t n = 0, i, len;

	memset(&err, 0, sizeof(err));
	if (codec_request_parse((const char *)data, size, NULL, &r, &err) < 0) {
		if (memchr(err.field, '\0', sizeof(err.field)) == NULL ||
		    memchr(err.message, '\0', sizeof(err.message)) == NULL || err.message[0] == '\0')
			abort();
		reply = codec_reply_error(&err, (long)(size % 7));
		fz_json_ok(reply);
		free(reply);
		return 0;
	}
	if (codec_request_split(r, CODEC_PRIORITY_NORMAL, &notes, &n) < 0 || n == 0)
		abort();                 /* a valid request makes at least one note */
	reply = codec_reply_received(r, notes, n);
	fz_json_ok(reply);
	free(reply);
	for (i = 0; i < n; i++) {
		if (codec_note_encode(notes[i], &wire, &len) < 0)
			abort();
		/* what split made, decode must take back */
		if (codec_note_decode(wire, len, &back, &err) < 0)
			abort();
		codec_note_free(back);
		free(wire);
	}
	codec_notes_free(notes, n);
	codec_request_free(r);
	return 0;
}
