/* template - the §6 logic-less Mustache subset: {{var}} {{{var}}} {{& var}} {{#s}} {{^s}} {{/s}}
 * {{! c}} and dotted paths, rendered from json-c values. Two passes: template_lex turns the text into
 * tokens with matched sections (all syntax errors surface there), template_run walks them with an
 * explicit stack, so there is no recursion and every loop is bounded. */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

enum template_kind { TK_TEXT, TK_VAR, TK_RAW, TK_SECTION, TK_INVERTED, TK_CLOSE };

struct template_tok {
	enum template_kind kind;
	const char *s;                   /* text, or the trimmed name */
	size_t n;
	size_t off;                      /* byte offset of the tag (or text) in the template */
	size_t match;                    /* section/inverted: index of its close; close: its open */
};

struct template_lexer {
	const char *tpl;
	size_t len;
	struct template_tok *t;
	size_t n, cap;
	char *err;
	size_t errlen;
};

struct template_frame {
	size_t open;                     /* token index of the section */
	struct json_object *val;         /* the pushed context; NULL when none (inverted) */
	struct json_object *arr;         /* the array being repeated, or NULL */
	size_t idx, cnt;
	bool pushed;
};

struct template_out {
	char *buf;
	size_t len, cap, max;
};

/* template_errat - format "line L, byte B: msg" into ERR for offset OFF of TPL */
static void template_errat(char *err, size_t errlen, const char *tpl, size_t off, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void template_errat(char *err, size_t errlen, const char *tpl, size_t off, const char *fmt, ...)
{
	size_t line = 1, i;
	int k;
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	for (i = 0; i < off; i++)
		if (tpl[i] == '\n')
			line++;
	k = snprintf(err, errlen, "line %zu, byte %zu: ", line, off);
	if (k < 0 || (size_t)k >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
	va_end(ap);
}

/* template_find - the first occurrence of NEEDLE (NL bytes) in S[from..len), or len when none */
static size_t template_find(const char *s, size_t len, size_t from, const char *needle, size_t nl)
{
	const char *p;

	while (from + nl <= len) {
		p = memchr(s + from, needle[0], len - from - nl + 1);
		if (p == NULL)
			return len;
		if (memcmp(p, needle, nl) == 0)
			return (size_t)(p - s);
		from = (size_t)(p - s) + 1;
	}
	return len;
}

/* template_push - append a token; -1 on allocation failure */
static int template_push(struct template_lexer *lx, enum template_kind kind, const char *s, size_t n,
                         size_t off)
{
	struct template_tok *nt;
	size_t ncap;

	if (lx->n == lx->cap) {
		ncap = lx->cap ? lx->cap * 2 : 16;
		nt = realloc(lx->t, ncap * sizeof *nt);
		if (nt == NULL) {
			template_errat(lx->err, lx->errlen, lx->tpl, off, "out of memory");
			return -1;
		}
		lx->t = nt;
		lx->cap = ncap;
	}
	lx->t[lx->n] = (struct template_tok){ kind, s, n, off, 0 };
	lx->n++;
	return 0;
}

/* template_trim - strip blanks around S[0..*N); returns the new start */
static const char *template_trim(const char *s, size_t *n)
{
	while (*n > 0 && (s[0] == ' ' || s[0] == '\t' || s[0] == '\r' || s[0] == '\n')) {
		s++;
		(*n)--;
	}
	while (*n > 0 && (s[*n - 1] == ' ' || s[*n - 1] == '\t' || s[*n - 1] == '\r' || s[*n - 1] == '\n'))
		(*n)--;
	return s;
}

/* template_lex - tokenize and match sections; -1 with ERR on any syntax error */
static int template_lex(struct template_lexer *lx)
{
	size_t stack[TEMPLATE_MAX_DEPTH];
	size_t depth = 0, i = 0, open, end, n;
	const char *tpl = lx->tpl, *name;
	enum template_kind kind;
	struct template_tok *o;

	while (i < lx->len) {
		open = template_find(tpl, lx->len, i, "{{", 2);
		if (open > i && template_push(lx, TK_TEXT, tpl + i, open - i, i) < 0)
			return -1;
		if (open == lx->len)
			break;
		if (open + 2 < lx->len && tpl[open + 2] == '{') {
			end = template_find(tpl, lx->len, open + 3, "}}}", 3);
			if (end == lx->len) {
				template_errat(lx->err, lx->errlen, tpl, open, "unclosed tag \"{{{\"");
				return -1;
			}
			kind = TK_RAW;
			name = tpl + open + 3;
			n = end - open - 3;
			i = end + 3;
		} else {
			end = template_find(tpl, lx->len, open + 2, "}}", 2);
			if (end == lx->len) {
				template_errat(lx->err, lx->errlen, tpl, open, "unclosed tag \"{{\"");
				return -1;
			}
			name = tpl + open + 2;
			n = end - open - 2;
			i = end + 2;
			kind = TK_VAR;
			if (n > 0 && name[0] == '!')
				continue;                /* comment */
			if (n > 0 && strchr("&#^/", name[0]) != NULL) {
				kind = name[0] == '&' ? TK_RAW : name[0] == '#' ? TK_SECTION
				     : name[0] == '^' ? TK_INVERTED : TK_CLOSE;
				name++;
				n--;
			}
		}
		name = template_trim(name, &n);
		if (n == 0) {
			template_errat(lx->err, lx->errlen, tpl, open, "empty tag name");
			return -1;
		}
		if (memchr(name, '{', n) != NULL || memchr(name, '}', n) != NULL) {
			template_errat(lx->err, lx->errlen, tpl, open, "bad tag name \"%.*s\"",
			               (int)(n > 64 ? 64 : n), name);
			return -1;
		}
		if (kind == TK_CLOSE) {
			if (depth == 0) {
				template_errat(lx->err, lx->errlen, tpl, open, "close \"%.*s\" without an open section",
				               (int)(n > 64 ? 64 : n), name);
				return -1;
			}
			o = &lx->t[stack[depth - 1]];
			if (o->n != n || memcmp(o->s, name, n) != 0) {
				template_errat(lx->err, lx->errlen, tpl, open,
				               "close \"%.*s\" does not match section \"%.*s\" opened at byte %zu",
				               (int)(n > 64 ? 64 : n), name, (int)(o->n > 64 ? 64 : o->n), o->s,
				               o->off);
				return -1;
			}
			if (template_push(lx, TK_CLOSE, name, n, open) < 0)
				return -1;
			depth--;
			o = &lx->t[stack[depth]];
			o->match = lx->n - 1;
			lx->t[lx->n - 1].match = stack[depth];
			continue;
		}
		if (kind == TK_SECTION || kind == TK_INVERTED) {
			if (depth == TEMPLATE_MAX_DEPTH) {
				template_errat(lx->err, lx->errlen, tpl, open, "sections nested deeper than %d",
				               TEMPLATE_MAX_DEPTH);
				return -1;
			}
			stack[depth++] = lx->n;
		}
		if (template_push(lx, kind, name, n, open) < 0)
			return -1;
	}
	if (depth > 0) {
		o = &lx->t[stack[depth - 1]];
		template_errat(lx->err, lx->errlen, tpl, o->off, "unclosed section \"%.*s\"",
		               (int)(o->n > 64 ? 64 : o->n), o->s);
		return -1;
	}
	return 0;
}

/* template_walk - follow the dotted path P[0..n) from V; NULL (and *FOUND false) when a step is missing;
 * *COST counts the key lookups */
static struct json_object *template_walk(struct json_object *v, const char *p, size_t n, bool *found,
                                         unsigned long *cost)
{
	char key[256];
	const char *dot;
	size_t k;

	*found = true;
	while (n > 0) {
		dot = memchr(p, '.', n);
		k = dot ? (size_t)(dot - p) : n;
		if (k == 0 || k >= sizeof key || !json_object_is_type(v, json_type_object)) {
			*found = false;
			return NULL;
		}
		memcpy(key, p, k);
		key[k] = '\0';
		++*cost;
		if (!json_object_object_get_ex(v, key, &v)) {
			*found = false;
			return NULL;
		}
		p += k;
		n -= k;
		if (n > 0) {                     /* skip the dot; a trailing dot is a missing name */
			p++;
			n--;
			if (n == 0) {
				*found = false;
				return NULL;
			}
		}
	}
	return v;
}

/* template_lookup - resolve NAME: "." is the innermost context; otherwise the first path segment is
 * looked up in the section contexts (innermost first), then the caller's CTX in order, and the rest of
 * the path is followed from there only (Mustache rule); *COST counts the contexts looked in and the
 * key lookups, so that the step budget bounds the work and not only the tags */
static struct json_object *template_lookup(const struct template_frame *fr, size_t nfr,
                                           struct json_object *const *ctx, size_t nctx,
                                           const char *name, size_t n, bool *found,
                                           unsigned long *cost)
{
	struct json_object *scope = NULL, *v;
	const char *dot;
	size_t k, i;
	char key[256];
	bool got = false;

	*found = false;
	if (n == 1 && name[0] == '.') {
		for (i = nfr; i-- > 0;)
			if (fr[i].pushed) {
				*found = true;
				return fr[i].val;
			}
		return NULL;
	}
	dot = memchr(name, '.', n);
	k = dot ? (size_t)(dot - name) : n;
	if (k == 0 || k >= sizeof key)
		return NULL;
	memcpy(key, name, k);
	key[k] = '\0';
	*cost += nfr + nctx;
	for (i = nfr; !got && i-- > 0;)
		if (fr[i].pushed && json_object_is_type(fr[i].val, json_type_object) &&
		    json_object_object_get_ex(fr[i].val, key, &v)) {
			scope = fr[i].val;
			got = true;
		}
	for (i = 0; !got && i < nctx; i++)
		if (ctx[i] != NULL && json_object_is_type(ctx[i], json_type_object) &&
		    json_object_object_get_ex(ctx[i], key, &v)) {
			scope = ctx[i];
			got = true;
		}
	if (!got)
		return NULL;
	return template_walk(scope, name, n, found, cost);
}

/* template_truthy - false for null, false, "", []; true otherwise (0 included, as in JSON) */
static bool template_truthy(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		return false;
	case json_type_boolean:
		return json_object_get_boolean(v) != 0;
	case json_type_string:
		return json_object_get_string_len(v) > 0;
	case json_type_array:
		return json_object_array_length(v) > 0;
	default:
		return true;
	}
}

/* template_put - append S[0..n) to O, escaping HTML when ESC; -1 when over the limit or out of memory */
static int template_put(struct template_out *o, const char *s, size_t n, bool esc)
{
	size_t i, add, need;
	const char *rep;
	char *nb;

	for (i = 0; i < n; i++) {
		rep = NULL;
		if (esc) {
			switch (s[i]) {
			case '&': rep = "&amp;"; break;
			case '<': rep = "&lt;"; break;
			case '>': rep = "&gt;"; break;
			case '"': rep = "&quot;"; break;
			case '\'': rep = "&#39;"; break;
			default: break;
			}
		}
		add = rep ? strlen(rep) : 1;
		if (!esc) {                      /* copy the rest at once */
			add = n - i;
		}
		if (o->len + add > o->max)
			return -1;
		need = o->len + add + 1;
		if (need > o->cap) {
			size_t ncap = o->cap ? o->cap : 256;

			while (ncap < need)
				ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
			nb = realloc(o->buf, ncap);
			if (nb == NULL)
				return -2;
			o->buf = nb;
			o->cap = ncap;
		}
		if (!esc) {
			/* o->buf is set: need > 0 = cap on the first call grew it above */
			memcpy(o->buf + o->len, s + i, add);   /* NOLINT(clang-analyzer-core.NonNullParamChecker) */
			o->len += add;
			break;
		}
		if (rep)
			memcpy(o->buf + o->len, rep, add);
		else
			o->buf[o->len] = s[i];
		o->len += add;
	}
	return 0;
}

/* template_value - append the text of V: strings as they are, numbers as JSON, true/false, null as
 * nothing, objects and arrays as compact JSON */
static int template_value(struct template_out *o, struct json_object *v, bool esc)
{
	char num[32];
	const char *s;
	size_t n;
	int k;

	switch (json_object_get_type(v)) {
	case json_type_null:
		return 0;
	case json_type_string:
		return template_put(o, json_object_get_string(v), (size_t)json_object_get_string_len(v), esc);
	case json_type_boolean:
		s = json_object_get_boolean(v) ? "true" : "false";
		return template_put(o, s, strlen(s), false);
	case json_type_int:
		k = snprintf(num, sizeof num, "%" PRId64, json_object_get_int64(v));
		return template_put(o, num, (size_t)k, false);
	default:
		s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		n = strlen(s);
		return template_put(o, s, n, esc);
	}
}

/* template_run - render the tokens T[0..nt) into O; -1 with ERR */
static int template_run(const struct template_tok *t, size_t nt, const char *tpl,
                        struct json_object *const *ctx, size_t nctx, bool html,
                        struct template_out *o, char *err, size_t errlen)
{
	struct template_frame fr[TEMPLATE_MAX_DEPTH];
	struct json_object *v;
	size_t nfr = 0, i = 0;
	unsigned long steps = 0;
	bool found, truthy;
	int rc = 0;

	while (i < nt) {
		if (++steps > TEMPLATE_MAX_STEPS) {
			template_errat(err, errlen, tpl, t[i].off, "template too expensive (over %u steps)",
			               TEMPLATE_MAX_STEPS);
			return -1;
		}
		switch (t[i].kind) {
		case TK_TEXT:
			rc = template_put(o, t[i].s, t[i].n, false);
			break;
		case TK_VAR:
		case TK_RAW:
			v = template_lookup(fr, nfr, ctx, nctx, t[i].s, t[i].n, &found, &steps);
			if (!found) {
				template_errat(err, errlen, tpl, t[i].off, "missing variable \"%.*s\"",
				               (int)(t[i].n > 64 ? 64 : t[i].n), t[i].s);
				return -1;
			}
			rc = template_value(o, v, html && t[i].kind == TK_VAR);
			break;
		case TK_SECTION:
		case TK_INVERTED:
			v = template_lookup(fr, nfr, ctx, nctx, t[i].s, t[i].n, &found, &steps);
			truthy = found && template_truthy(v);
			if ((t[i].kind == TK_SECTION) != truthy) {
				i = t[i].match + 1;      /* skip the body */
				continue;
			}
			fr[nfr] = (struct template_frame){ i, NULL, NULL, 0, 0, false };
			if (t[i].kind == TK_SECTION) {
				fr[nfr].pushed = true;
				fr[nfr].val = v;
				if (json_object_is_type(v, json_type_array)) {
					fr[nfr].arr = v;
					fr[nfr].cnt = json_object_array_length(v);
					fr[nfr].val = json_object_array_get_idx(v, 0);
				}
			}
			nfr++;
			i++;
			continue;
		case TK_CLOSE:
			if (nfr > 0 && fr[nfr - 1].arr != NULL && fr[nfr - 1].idx + 1 < fr[nfr - 1].cnt) {
				fr[nfr - 1].idx++;
				fr[nfr - 1].val = json_object_array_get_idx(fr[nfr - 1].arr, fr[nfr - 1].idx);
				i = fr[nfr - 1].open + 1;
				continue;
			}
			if (nfr > 0)
				nfr--;
			i++;
			continue;
		}
		if (rc == -1) {
			template_errat(err, errlen, tpl, t[i].off, "output over %zu bytes", o->max);
			return -1;
		}
		if (rc < 0) {
			template_errat(err, errlen, tpl, t[i].off, "out of memory");
			return -1;
		}
		i++;
	}
	return 0;
}

/* template_render - lex TPL, then render it from CTX into a fresh buffer (see template.h) */
int template_render(const char *tpl, size_t len, struct json_object *const *ctx, size_t nctx,
                    bool html, size_t max_out, char **out, size_t *outlen, char *err, size_t errlen)
{
	struct template_lexer lx = { tpl, len, NULL, 0, 0, err, errlen };
	struct template_out o = { NULL, 0, 0, max_out };
	const char *nul;

	*out = NULL;
	*outlen = 0;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (tpl == NULL && len > 0) {
		template_errat(err, errlen, "", 0, "no template");
		return -1;
	}
	nul = len ? memchr(tpl, '\0', len) : NULL;
	if (nul != NULL) {
		template_errat(err, errlen, tpl, (size_t)(nul - tpl), "NUL byte in template");
		return -1;
	}
	if (template_lex(&lx) < 0 ||
	    template_run(lx.t, lx.n, tpl, ctx, nctx, html, &o, err, errlen) < 0) {
		free(lx.t);
		free(o.buf);
		return -1;
	}
	free(lx.t);
	if (o.buf == NULL) {
		o.buf = malloc(1);
		if (o.buf == NULL) {
			template_errat(err, errlen, tpl, 0, "out of memory");
			return -1;
		}
	}
	o.buf[o.len] = '\0';
	*out = o.buf;
	*outlen = o.len;
	return 0;
}
