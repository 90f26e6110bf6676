/* jsoncheck - strict RFC 8259 scanner run before json-c, for what json-c lets through silently */
#ifndef HERALD_JSONCHECK_H
#define HERALD_JSONCHECK_H

#include <stdbool.h>
#include <stddef.h>

#define JSONCHECK_DEPTH 32           /* default maximum nesting of objects and arrays */
#define JSONCHECK_PATH_MAX 128       /* size of a path buffer, NUL included */

/*
 * What the scan refuses, beyond the RFC 8259 grammar (no comments, no trailing commas, no
 * leading zeros, no NaN): duplicate keys in an object (compared after unescaping), nesting deeper
 * than the limit (checked without recursion), invalid UTF-8 (overlong forms, encoded surrogates,
 * code points above U+10FFFF, truncated sequences), raw control characters in strings, the escape
 * \u0000, unpaired surrogate escapes, integers outside int64_t and numbers that overflow a double,
 * anything but whitespace after the value, and empty input.
 */
struct jsoncheck_error {
	char path[JSONCHECK_PATH_MAX];   /* "a.b[3].c" of the offending value or key; "" = the document */
	char message[128];
	size_t offset;                   /* byte offset of the fault in the input */
};

/* jsoncheck_scan - check BUF[0..LEN) holds one strict JSON value; 0, or -1 with ERR filled
 * (ERR may be NULL) and errno EINVAL, or ENOMEM; MAX_DEPTH 0 means JSONCHECK_DEPTH */
int jsoncheck_scan(const char *buf, size_t len, unsigned max_depth, struct jsoncheck_error *err);

/* jsoncheck_utf8_char - length (1-4) of the well-formed UTF-8 sequence at S, which has AVAIL
 * bytes; 0 when ill-formed or AVAIL is 0 */
size_t jsoncheck_utf8_char(const char *s, size_t avail);

/* jsoncheck_utf8_valid - true when S[0..LEN) is well-formed UTF-8 with no NUL byte */
bool jsoncheck_utf8_valid(const char *s, size_t len);

/* jsoncheck_utf8_prefix - the longest length <= MAX at which S[0..LEN) can be cut without
 * splitting a UTF-8 sequence (S is assumed well-formed) */
size_t jsoncheck_utf8_prefix(const char *s, size_t len, size_t max);

/* jsoncheck_path_append - append ".KEY" (or "KEY" to an empty path) or, with KEY NULL, "[INDEX]"
 * to the NUL-terminated PATH of size SIZE; a component that does not fit is replaced by "..."
 * (once), so a path is cut only at a component boundary; returns PATH */
char *jsoncheck_path_append(char *path, size_t size, const char *key, size_t index);

#endif
