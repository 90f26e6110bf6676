/* template - the §6 logic-less Mustache subset rendered from json-c values */
#ifndef HERALD_TEMPLATE_H
#define HERALD_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#define TEMPLATE_MAX_DEPTH 32            /* sections nested deeper are refused */
#define TEMPLATE_MAX_STEPS (1u << 20)    /* tag visits + name lookups per render: bounds the
                                            work of nested array loops (inline content is the
                                            sender's) */

/* template_render - render TPL (LEN bytes) looking names up in CTX[0..NCTX) (request data first,
 * then the profile), inner section contexts first; HTML-escape {{var}} when HTML. On success 0 with
 * a malloc'd NUL-terminated *OUT of *OUTLEN bytes; on error -1, *OUT NULL, and ERR says what and
 * where ("line L, byte B: ..."). A missing {{var}} is an error; output over MAX_OUT is an error. */
int template_render(const char *tpl, size_t len, struct json_object *const *ctx, size_t nctx,
                    bool html, size_t max_out, char **out, size_t *outlen, char *err, size_t errlen);

#endif
