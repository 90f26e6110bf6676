/* jsoncheck - strict RFC 8259 scanner run before json-c, for what json-c lets through silently */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsoncheck.h"

#define JC_NUMBER_MAX 64             /* longest non-integer number literal we take */
#define JC_SLOTS_KEEP 64             /* key tables up to this size are reused, larger ones freed */

/* One open object or array. An object remembers its keys (unescaped, NUL-terminated, in ARENA)
 * in an open-addressing table of arena offsets + 1 to find duplicates. */
struct jc_frame {
	int is_object;
	size_t index;                    /* array: index of the current element */
	size_t key;                      /* object: arena offset of the current key, SIZE_MAX if none */
	char *arena;
	size_t arena_len, arena_cap;
	size_t *slots;
	size_t nslots, nkeys;
};

struct jc {
	const unsigned char *buf;
	size_t len, pos;
	struct jc_frame *frames;
	unsigned depth, max_depth;
	struct jsoncheck_error *err;
	int nomem;                       /* the failure was an allocation */
	int between;                     /* the fault is between members: name the container */
};

/* jsoncheck_utf8_seq - length of the well-formed UTF-8 sequence at S (AVAIL bytes left), 0 if
 * ill-formed (RFC 3629 table: no overlongs, no surrogates, nothing above U+10FFFF) */
static size_t jsoncheck_utf8_seq(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (avail < n)
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* jsoncheck_utf8_char - length of the well-formed UTF-8 sequence at S, 0 if ill-formed */
size_t jsoncheck_utf8_char(const char *s, size_t avail)
{
	return avail ? jsoncheck_utf8_seq((const unsigned char *)s, avail) : 0;
}

/* jsoncheck_utf8_valid - true when S[0..LEN) is well-formed UTF-8 with no NUL byte */
bool jsoncheck_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;

	while (i < len) {
		if (p[i] == 0)
			return false;
		n = jsoncheck_utf8_seq(p + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

/* jsoncheck_utf8_prefix - the longest length <= MAX that does not split a UTF-8 sequence */
size_t jsoncheck_utf8_prefix(const char *s, size_t len, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;

	if (len <= max)
		return len;
	while (max > 0 && (p[max] & 0xc0) == 0x80)
		max--;
	return max;
}

/* jsoncheck_path_append - append ".KEY" or "[INDEX]" to PATH, cutting with "..." when full */
char *jsoncheck_path_append(char *path, size_t size, const char *key, size_t index)
{
	char comp[32];
	size_t used = strlen(path), klen, room, sep;

	if (size < 4 || (used >= 3 && strcmp(path + used - 3, "...") == 0))
		return path;
	if (key == NULL) {
		snprintf(comp, sizeof(comp), "[%zu]", index);
		key = comp;
		sep = 0;
	} else {
		sep = used > 0;
	}
	klen = strlen(key);
	if (used + sep + klen < size) {
		if (sep)
			path[used++] = '.';
		memcpy(path + used, key, klen + 1);
		return path;
	}
	if (used + 3 >= size)
		return path;
	room = size - 1 - used - 3;  /* bytes of the component that still fit before "..." */
	if (sep && room > 0) {
		path[used++] = '.';
		room--;
	}
	if (key != comp) {
		room = jsoncheck_utf8_prefix(key, klen, room);
		memcpy(path + used, key, room);
		used += room;
	}
	memcpy(path + used, "...", 4);
	return path;
}

/* jc_fail - record MESSAGE (printf-style) at the current position and path; returns -1 */
static int jc_fail(struct jc *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int jc_fail(struct jc *j, const char *fmt, ...)
{
	struct jsoncheck_error *e = j->err;
	va_list ap;
	unsigned d;

	if (e == NULL)
		return -1;
	e->path[0] = '\0';
	for (d = 0; d < j->depth; d++) {
		struct jc_frame *f = &j->frames[d];

		if (j->between && d + 1 == j->depth)
			break;
		if (!f->is_object)
			jsoncheck_path_append(e->path, sizeof(e->path), NULL, f->index);
		else if (f->key != SIZE_MAX)
			jsoncheck_path_append(e->path, sizeof(e->path), f->arena + f->key, 0);
	}
	e->offset = j->pos;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return -1;
}

/* jc_nomem - fail for a failed allocation; returns -1 */
static int jc_nomem(struct jc *j)
{
	j->nomem = 1;
	errno = ENOMEM;
	return jc_fail(j, "out of memory");
}

/* jc_ws - skip RFC 8259 whitespace */
static void jc_ws(struct jc *j)
{
	while (j->pos < j->len) {
		unsigned char c = j->buf[j->pos];

		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		j->pos++;
	}
}

/* jc_hex4 - the value of 4 hex digits at P, or -1 */
static long jc_hex4(const unsigned char *p)
{
	long v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		int c = p[i], d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* jc_put_utf8 - encode code point CP at OUT; returns the number of bytes */
static size_t jc_put_utf8(char *out, unsigned long cp)
{
	unsigned char *o = (unsigned char *)out;

	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xc0 | (cp >> 6));
		o[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xe0 | (cp >> 12));
		o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (unsigned char)(0xf0 | (cp >> 18));
	o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

/* jc_escape - check the escape after the backslash at j->pos; decoded bytes go to OUT (if not
 * NULL) and their count to *N; 0 or -1 */
static int jc_escape(struct jc *j, char *out, size_t *n)
{
	const unsigned char *p = j->buf + j->pos;
	size_t left = j->len - j->pos;
	unsigned long cp;
	long hi, lo;
	char c = 0;

	if (left < 2)
		return jc_fail(j, "unterminated string");
	switch (p[1]) {
	case '"': c = '"'; break;
	case '\\': c = '\\'; break;
	case '/': c = '/'; break;
	case 'b': c = '\b'; break;
	case 'f': c = '\f'; break;
	case 'n': c = '\n'; break;
	case 'r': c = '\r'; break;
	case 't': c = '\t'; break;
	case 'u': break;
	default:
		return jc_fail(j, "invalid escape in string");
	}
	if (p[1] != 'u') {
		if (out)
			out[0] = c;
		*n = 1;
		j->pos += 2;
		return 0;
	}
	if (left < 6 || (hi = jc_hex4(p + 2)) < 0)
		return jc_fail(j, "invalid \\u escape in string");
	if (hi == 0)
		return jc_fail(j, "\\u0000 is not allowed in strings");
	if (hi >= 0xdc00 && hi <= 0xdfff)
		return jc_fail(j, "unpaired surrogate escape in string");
	cp = (unsigned long)hi;
	if (hi >= 0xd800 && hi <= 0xdbff) {
		if (left < 12 || p[6] != '\\' || p[7] != 'u' || (lo = jc_hex4(p + 8)) < 0 ||
		    lo < 0xdc00 || lo > 0xdfff)
			return jc_fail(j, "unpaired surrogate escape in string");
		cp = 0x10000 + (((unsigned long)hi - 0xd800) << 10) + ((unsigned long)lo - 0xdc00);
		j->pos += 6;
	}
	j->pos += 6;
	if (out)
		*n = jc_put_utf8(out, cp);
	else
		*n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
	return 0;
}

/* jc_string - check the string starting at the quote at j->pos; unescaped text goes to OUT (if
 * not NULL; it needs as many bytes as the raw string, plus one) and its length to *OUTLEN */
static int jc_string(struct jc *j, char *out, size_t *outlen)
{
	size_t o = 0, n = 0;

	j->pos++;
	for (;;) {
		unsigned char c;

		if (j->pos >= j->len)
			return jc_fail(j, "unterminated string");
		c = j->buf[j->pos];
		if (c == '"')
			break;
		if (c == '\\') {
			if (jc_escape(j, out ? out + o : NULL, &n) < 0)
				return -1;
			o += n;
			continue;
		}
		if (c < 0x20)
			return jc_fail(j, "control character in string (must be escaped)");
		n = jsoncheck_utf8_seq(j->buf + j->pos, j->len - j->pos);
		if (n == 0)
			return jc_fail(j, "invalid UTF-8 in string");
		if (out)
			memcpy(out + o, j->buf + j->pos, n);
		o += n;
		j->pos += n;
	}
	j->pos++;
	if (out)
		out[o] = '\0';
	if (outlen)
		*outlen = o;
	return 0;
}

/* jc_int64_fits - true when the DIGITS (no sign, no leading zero) fit int64_t with sign NEG */
static int jc_int64_fits(const unsigned char *digits, size_t n, int neg)
{
	const char *lim = neg ? "9223372036854775808" : "9223372036854775807";

	if (n != 19)
		return n < 19;
	return memcmp(digits, lim, 19) <= 0;
}

/* jc_number - check the number at j->pos: grammar, int64 range for integers, finite doubles */
static int jc_number(struct jc *j)
{
	const unsigned char *b = j->buf;
	size_t start = j->pos, p = j->pos, digits;
	int neg = 0, is_int = 1;
	char tmp[JC_NUMBER_MAX + 1];
	double d;

	if (b[p] == '-') {
		neg = 1;
		p++;
	}
	if (p >= j->len || b[p] < '0' || b[p] > '9') {
		j->pos = p;
		return jc_fail(j, "invalid number");
	}
	digits = p;
	if (b[p] == '0') {
		p++;
		if (p < j->len && b[p] >= '0' && b[p] <= '9') {
			j->pos = p;
			return jc_fail(j, "number with a leading zero");
		}
	} else {
		while (p < j->len && b[p] >= '0' && b[p] <= '9')
			p++;
	}
	if (p < j->len && b[p] == '.') {
		is_int = 0;
		p++;
		if (p >= j->len || b[p] < '0' || b[p] > '9') {
			j->pos = p;
			return jc_fail(j, "invalid number (digits expected after '.')");
		}
		while (p < j->len && b[p] >= '0' && b[p] <= '9')
			p++;
	}
	if (p < j->len && (b[p] == 'e' || b[p] == 'E')) {
		is_int = 0;
		p++;
		if (p < j->len && (b[p] == '+' || b[p] == '-'))
			p++;
		if (p >= j->len || b[p] < '0' || b[p] > '9') {
			j->pos = p;
			return jc_fail(j, "invalid number (digits expected in exponent)");
		}
		while (p < j->len && b[p] >= '0' && b[p] <= '9')
			p++;
	}
	if (is_int) {
		if (!jc_int64_fits(b + digits, p - digits, neg))
			return jc_fail(j, "integer out of range (64-bit signed)");
	} else {
		if (p - start > JC_NUMBER_MAX)
			return jc_fail(j, "number too long");
		memcpy(tmp, b + start, p - start);
		tmp[p - start] = '\0';
		d = strtod(tmp, NULL);
		if (isinf(d))
			return jc_fail(j, "number out of range");
	}
	j->pos = p;
	return 0;
}

/* jc_literal - check true, false or null at j->pos */
static int jc_literal(struct jc *j)
{
	static const char *const words[] = { "true", "false", "null" };
	size_t i, n;

	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		n = strlen(words[i]);
		if (j->len - j->pos >= n && memcmp(j->buf + j->pos, words[i], n) == 0) {
			j->pos += n;
			return 0;
		}
	}
	return jc_fail(j, "unexpected character");
}

/* jc_hash - FNV-1a of the NUL-terminated S */
static size_t jc_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

/* jc_slots_grow - double the key table of F (or create it) and rehash; 0 or -1 */
static int jc_slots_grow(struct jc_frame *f)
{
	size_t n = f->nslots ? f->nslots * 2 : 16, i, k;
	size_t *s = calloc(n, sizeof(*s));

	if (s == NULL)
		return -1;
	for (i = 0; i < f->nslots; i++) {
		if (f->slots[i] == 0)
			continue;
		k = jc_hash(f->arena + f->slots[i] - 1) & (n - 1);
		while (s[k] != 0)
			k = (k + 1) & (n - 1);
		s[k] = f->slots[i];
	}
	free(f->slots);
	f->slots = s;
	f->nslots = n;
	return 0;
}

/* jc_key - read the key at j->pos into the top frame, refusing a duplicate; 0 or -1 */
static int jc_key(struct jc *j)
{
	struct jc_frame *f = &j->frames[j->depth - 1];
	size_t p, need, off, klen = 0, k;

	if (j->pos >= j->len || j->buf[j->pos] != '"')
		return jc_fail(j, j->pos >= j->len ? "unexpected end of input" : "object key expected");
	/* the unescaped key is no longer than the raw one, so reserve that much */
	for (p = j->pos + 1; p < j->len && j->buf[p] != '"'; p++)
		if (j->buf[p] == '\\')
			p++;
	need = p - j->pos + 1;
	if (f->arena_cap - f->arena_len < need) {
		size_t cap = f->arena_cap ? f->arena_cap : 256;
		char *a;

		while (cap - f->arena_len < need)
			cap *= 2;
		a = realloc(f->arena, cap);
		if (a == NULL)
			return jc_nomem(j);
		f->arena = a;
		f->arena_cap = cap;
	}
	off = f->arena_len;
	if (jc_string(j, f->arena + off, &klen) < 0)
		return -1;
	if ((f->nkeys + 1) * 2 > f->nslots && jc_slots_grow(f) < 0)
		return jc_nomem(j);
	k = jc_hash(f->arena + off) & (f->nslots - 1);
	while (f->slots[k] != 0) {
		if (strcmp(f->arena + f->slots[k] - 1, f->arena + off) == 0) {
			f->key = off;
			return jc_fail(j, "duplicate key");
		}
		k = (k + 1) & (f->nslots - 1);
	}
	f->slots[k] = off + 1;
	f->nkeys++;
	f->key = off;
	f->arena_len = off + klen + 1;
	return 0;
}

/* jc_push - open an object or array at j->pos; 0 or -1 when too deep */
static int jc_push(struct jc *j, int is_object)
{
	struct jc_frame *f;

	if (j->depth >= j->max_depth)
		return jc_fail(j, "nesting deeper than %u levels", j->max_depth);
	f = &j->frames[j->depth++];
	f->is_object = is_object;
	f->index = 0;
	f->key = SIZE_MAX;
	f->arena_len = 0;
	f->nkeys = 0;
	if (f->nslots > JC_SLOTS_KEEP) {
		free(f->slots);
		f->slots = NULL;
		f->nslots = 0;
	} else if (f->nslots > 0) {
		memset(f->slots, 0, f->nslots * sizeof(*f->slots));
	}
	j->pos++;
	return 0;
}

/* jc_run - the scanning state machine; 0 or -1 */
static int jc_run(struct jc *j)
{
	enum { VALUE, KEY, AFTER } state = VALUE;

	jc_ws(j);
	if (j->pos >= j->len)
		return jc_fail(j, "empty input");
	for (;;) {
		struct jc_frame *f;
		unsigned char c;

		jc_ws(j);
		if (state == KEY) {
			if (jc_key(j) < 0)
				return -1;
			jc_ws(j);
			if (j->pos >= j->len || j->buf[j->pos] != ':')
				return jc_fail(j, "':' expected after object key");
			j->pos++;
			state = VALUE;
			continue;
		}
		if (state == VALUE) {
			if (j->pos >= j->len)
				return jc_fail(j, "unexpected end of input");
			c = j->buf[j->pos];
			if (c == '{' || c == '[') {
				if (jc_push(j, c == '{') < 0)
					return -1;
				jc_ws(j);
				if (j->pos < j->len && j->buf[j->pos] == (c == '{' ? '}' : ']')) {
					j->pos++;
					j->depth--;
					state = AFTER;
				} else {
					state = c == '{' ? KEY : VALUE;
				}
				continue;
			}
			if (c == '"') {
				if (jc_string(j, NULL, NULL) < 0)
					return -1;
			} else if (c == '-' || (c >= '0' && c <= '9')) {
				if (jc_number(j) < 0)
					return -1;
			} else if (jc_literal(j) < 0) {
				return -1;
			}
			state = AFTER;
			continue;
		}
		/* AFTER: a value ended */
		if (j->depth == 0) {
			if (j->pos < j->len)
				return jc_fail(j, "unexpected data after the JSON value");
			return 0;
		}
		f = &j->frames[j->depth - 1];
		j->between = 1;
		if (j->pos >= j->len)
			return jc_fail(j, "unexpected end of input");
		c = j->buf[j->pos++];
		j->between = 0;
		if (c == ',') {
			if (f->is_object) {
				f->key = SIZE_MAX;
				state = KEY;
			} else {
				f->index++;
				state = VALUE;
			}
		} else if (c == (f->is_object ? '}' : ']')) {
			j->depth--;
		} else {
			j->pos--;
			j->between = 1;
			return jc_fail(j, f->is_object ? "',' or '}' expected" : "',' or ']' expected");
		}
	}
}

/* jsoncheck_scan - check BUF[0..LEN) holds one strict JSON value; 0 or -1 with ERR filled */
int jsoncheck_scan(const char *buf, size_t len, unsigned max_depth, struct jsoncheck_error *err)
{
	struct jc j;
	unsigned d;
	int rc;

	memset(&j, 0, sizeof(j));
	j.buf = (const unsigned char *)buf;
	j.len = buf ? len : 0;
	j.max_depth = max_depth ? max_depth : JSONCHECK_DEPTH;
	j.err = err;
	j.frames = calloc(j.max_depth, sizeof(*j.frames));
	if (j.frames == NULL)
		return jc_nomem(&j);
	rc = jc_run(&j);
	for (d = 0; d < j.max_depth; d++) {
		free(j.frames[d].arena);
		free(j.frames[d].slots);
	}
	free(j.frames);
	if (rc < 0)
		errno = j.nomem ? ENOMEM : EINVAL;
	return rc;
}
