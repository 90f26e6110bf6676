/* fuzz_template - libFuzzer harness of the §6 template renderer. The input is TEMPLATE|JSON: the
 * bytes before the first '|' are the template, the rest the request data (a JSON object; another
 * JSON value is wrapped as {"v": value}, unparsable JSON leaves the data empty). Rendered both as
 * text and as HTML, with a small fixed profile as the second context. */
#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "template.h"

#define FZ_MAX_OUT (1u << 16)

static struct json_object *fz_profile;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_profile = json_tokener_parse("{\"first_name\":\"Ann\",\"last_name\":\"O'Neil <x>\","
		"\"email\":\"ann@example.com\",\"locale\":\"en\",\"tags\":[\"a\",\"b\"],"
		"\"address\":{\"city\":\"Paris\",\"zip\":75001}}");
	return fz_profile != NULL ? 0 : -1;
}

/* fz_data - the JSON value of BUF[0..LEN) as an object (new reference), or NULL */
static struct json_object *fz_data(const char *buf, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *v, *o;

	if (tok == NULL || len > INT32_MAX)
		abort();
	v = json_tokener_parse_ex(tok, buf, (int)len);
	if (v == NULL && json_tokener_get_error(tok) == json_tokener_continue)
		v = json_tokener_parse_ex(tok, "", -1);    /* a bare number needs an end */
	json_tokener_free(tok);
	if (v == NULL || json_object_is_type(v, json_type_object))
		return v;
	o = json_object_new_object();
	if (o == NULL || json_object_object_add(o, "v", v) < 0)
		abort();
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *tpl = (const char *)data, *bar = memchr(data, '|', size);
	size_t tlen = bar ? (size_t)(bar - tpl) : size;
	struct json_object *ctx[2];
	char err[256], *out;
	size_t outlen;
	int html;

	ctx[0] = bar ? fz_data(bar + 1, size - tlen - 1) : NULL;
	ctx[1] = fz_profile;
	for (html = 0; html < 2; html++) {
		err[0] = '\0';
		if (template_render(tpl, tlen, ctx[0] ? ctx : ctx + 1, ctx[0] ? 2 : 1, html != 0,
		                    FZ_MAX_OUT, &out, &outlen, err, sizeof(err)) < 0) {
			if (out != NULL || err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL)
				abort();
			continue;
		}
		if (out == NULL || outlen > FZ_MAX_OUT || out[outlen] != '\0')
			abort();
		free(out);
	}
	json_object_put(ctx[0]);
	return 0;
}
