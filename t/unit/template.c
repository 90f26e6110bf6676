/* t/unit/template - the §6 Mustache subset: escaping, raw, paths, sections, lookup order, errors,
 * limits and hostile input */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "tap.h"
#include "workers/template.h"

static struct json_object *t_ctx[2];
static char t_err[256];

/* t_render - render TPL from t_ctx; the output (static copy) or NULL on error (t_err set) */
static const char *t_render(const char *tpl, bool html, size_t max)
{
	static char buf[4096];
	char *out;
	size_t n;

	if (template_render(tpl, strlen(tpl), t_ctx, 2, html, max, &out, &n, t_err, sizeof t_err) < 0)
		return NULL;
	snprintf(buf, sizeof buf, "%s", out);
	free(out);
	return buf;
}

/* t_is - render TPL (HTML or not) and compare with WANT */
static void t_is(const char *tpl, bool html, const char *want)
{
	const char *got = t_render(tpl, html, 1 << 20);

	if (!is_str(got, want, "%s%.*s", html ? "html: " : "", (int)strcspn(tpl, "\n"), tpl))
		diag("err: %s", t_err);
}

/* t_err_has - render TPL, expect an error mentioning NEEDLE */
static void t_err_has(const char *tpl, const char *needle, const char *desc)
{
	const char *got = t_render(tpl, false, 1 << 20);

	if (!ok(got == NULL && strstr(t_err, needle) != NULL, "error: %s", desc))
		diag("got \"%s\", err \"%s\"", got ? got : "(null)", t_err);
}

int main(void)
{
	char *big, *out, *s;
	size_t n, i;
	int rc;
	const char bytes[] = "a\x01\xff\xfe{\x80}}{ {{name}}\x7f\xc3";

	plan(51);
	t_ctx[0] = json_tokener_parse(
		"{\"name\":\"Ann <b>&\\\"'\",\"n\":42,\"neg\":-7,\"d\":1.5,\"t\":true,\"f\":false,\"nul\":null,"
		"\"a\":{\"b\":{\"c\":\"deep\"}},\"items\":[{\"x\":1},{\"x\":2},{\"x\":3}],\"words\":[\"p\",\"q\"],"
		"\"empty\":[],\"es\":\"\",\"first_name\":\"DataFirst\",\"tpl\":\"{{name}} {{#a}}x{{/a}}\","
		"\"zero\":0,\"obj\":{\"name\":\"inner\"}}");
	t_ctx[1] = json_tokener_parse("{\"first_name\":\"Prof\",\"email\":\"p@x.org\",\"locale\":\"fr\"}");

	/* escaping and raw */
	t_is("Hi {{name}}!", true, "Hi Ann &lt;b&gt;&amp;&quot;&#39;!");
	t_is("Hi {{name}}!", false, "Hi Ann <b>&\"'!");
	t_is("{{{name}}}", true, "Ann <b>&\"'");
	t_is("{{& name}}", true, "Ann <b>&\"'");
	t_is("{{  name  }}", false, "Ann <b>&\"'");
	/* scalars */
	t_is("{{n}} {{neg}} {{d}}", false, "42 -7 1.5");
	t_is("{{t}}/{{f}}/[{{nul}}]", false, "true/false/[]");
	/* dotted paths */
	t_is("{{a.b.c}}", false, "deep");
	t_err_has("{{a.b.x}}", "missing variable \"a.b.x\"", "dotted path with a missing leaf");
	/* sections */
	t_is("{{#a}}[{{b.c}}]{{/a}}", false, "[deep]");
	t_is("{{#items}}<{{x}}>{{/items}}", false, "<1><2><3>");
	t_is("{{#words}}{{.}},{{/words}}", false, "p,q,");
	t_is("{{#f}}no{{/f}}ok", false, "ok");
	t_is("{{#nul}}no{{/nul}}ok", false, "ok");
	t_is("{{#empty}}no{{/empty}}ok", false, "ok");
	t_is("{{#missing}}no {{nosuch}}{{/missing}}ok", false, "ok");
	t_is("{{#es}}no{{/es}}ok", false, "ok");
	t_is("{{#t}}yes{{/t}}", false, "yes");
	t_is("{{#obj}}{{name}}{{/obj}} {{name}}", false, "inner Ann <b>&\"'");
	t_is("{{#items}}{{#words}}{{x}}{{.}}{{/words}}{{/items}}", false, "1p1q2p2q3p3q");
	/* inverted */
	t_is("{{^f}}A{{/f}}{{^empty}}B{{/empty}}{{^missing}}C{{/missing}}{{^t}}D{{/t}}", false, "ABC");
	t_is("{{^items}}no{{/items}}ok", false, "ok");
	/* comments */
	t_is("a{{! a comment {with braces} }}b", false, "ab");
	t_is("a{{!\nmulti\nline}}b", false, "ab");
	/* lookup order: data, then profile */
	t_is("{{first_name}} {{email}} {{locale}}", false, "DataFirst p@x.org fr");
	/* values are never templates */
	t_is("{{tpl}}", false, "{{name}} {{#a}}x{{/a}}");
	t_is("{{tpl}}", true, "{{name}} {{#a}}x{{/a}}");
	/* errors */
	t_err_has("line1\nab {{nosuch}}", "line 2, byte 9: missing variable \"nosuch\"", "missing variable with position");
	t_err_has("x {{name", "byte 2: unclosed tag", "unclosed tag");
	t_err_has("{{{name}}", "unclosed tag \"{{{\"", "unclosed triple");
	t_err_has("{{#a}}x", "unclosed section \"a\"", "unclosed section");
	t_err_has("{{#a}}{{#t}}{{/a}}{{/t}}", "does not match section \"t\"", "mismatched close");
	t_err_has("x{{/a}}", "without an open section", "stray close");
	t_err_has("{{}}", "empty tag name", "empty tag");
	t_is("{{#items}}{{.}}{{/items}}", false, "{\"x\":1}{\"x\":2}{\"x\":3}");
	t_is("{{#zero}}0 is truthy{{/zero}}", false, "0 is truthy");
	/* nesting */
	s = malloc(64 * 16);
	s[0] = '\0';
	for (i = 0; i < 32; i++)
		strcat(s, "{{#t}}");
	strcat(s, "x");
	for (i = 0; i < 32; i++)
		strcat(s, "{{/t}}");
	is_str(t_render(s, false, 100), "x", "32 nested sections render");
	s[0] = '\0';
	for (i = 0; i < 33; i++)
		strcat(s, "{{#t}}");
	for (i = 0; i < 33; i++)
		strcat(s, "{{/t}}");
	ok(t_render(s, false, 100) == NULL && strstr(t_err, "deeper than 32"), "33 nested sections refused");
	free(s);
	/* output limit */
	ok(t_render("{{name}}{{name}}", false, 10) == NULL && strstr(t_err, "output over 10"),
	   "output limit");
	is_str(t_render("0123456789", false, 10), "0123456789", "output exactly at the limit");
	/* 1 MB plain text */
	n = 1 << 20;
	big = malloc(n);
	memset(big, 'a', n);
	for (i = 100; i < n; i += 100)
		big[i] = (i % 300) ? '{' : '\n';
	rc = template_render(big, n, t_ctx, 2, true, n, &out, &i, t_err, sizeof t_err);
	ok(rc == 0 && i == n && memcmp(out, big, n) == 0, "1 MB of plain text passes through");
	free(out);
	rc = template_render(big, n, t_ctx, 2, true, n - 1, &out, &i, t_err, sizeof t_err);
	ok(rc == -1 && out == NULL, "1 MB over a limit of 1 MB - 1 fails cleanly");
	/* many tags, bounded by max_out */
	for (i = 0; i + 8 <= n; i += 8)
		memcpy(big + i, "{{name}}", 8);
	rc = template_render(big, n, t_ctx, 2, false, 1 << 16, &out, &i, t_err, sizeof t_err);
	ok(rc == -1 && strstr(t_err, "output over"), "128k tags stop at max_out");
	/* hostile bytes */
	rc = template_render(bytes, sizeof bytes - 1, t_ctx, 2, false, 1024, &out, &n, t_err, sizeof t_err);
	if (!ok(rc == 0 && n == sizeof bytes - 1 - 8 + 10 && memcmp(out, bytes, 10) == 0, "hostile bytes pass through"))
		diag("rc %d n %zu err %s", rc, n, t_err);
	free(out);
	rc = template_render("ab\0{{name}}", 11, t_ctx, 2, false, 1024, &out, &n, t_err, sizeof t_err);
	ok(rc == -1 && strstr(t_err, "byte 2: NUL"), "NUL in template refused with position");
	n = 1 << 20;
	memset(big, '{', n);
	rc = template_render(big, n, t_ctx, 2, false, 1024, &out, &n, t_err, sizeof t_err);
	ok(rc == -1 && out == NULL, "1 MB of '{' fails cleanly");
	free(big);
	is_int(template_render("", 0, NULL, 0, false, 0, &out, &n, t_err, sizeof t_err), 0, "empty template");
	ok(out != NULL && n == 0 && out[0] == '\0', "empty output is an empty string");
	free(out);
	t_err_has("{{#items}}{{#items}}{{#items}}{{#items}}{{#items}}{{#items}}{{#items}}{{#items}}"
	          "{{#items}}{{#items}}{{#items}}{{#items}}{{#items}}{{#items}}{{#items}}{{#items}}"
	          "{{/items}}{{/items}}{{/items}}{{/items}}{{/items}}{{/items}}{{/items}}{{/items}}"
	          "{{/items}}{{/items}}{{/items}}{{/items}}{{/items}}{{/items}}{{/items}}{{/items}}",
	          "too expensive", "3^16 loop refused by the step budget");
	/* fuzz: name lookups count against the budget, so that sections over arrays of objects
	 * (each lookup searching every enclosing context) cannot cost seconds of CPU a render */
	{
		struct json_object *c = json_tokener_parse("{\"o\":[{},{},{},{}],\"zz\":\"\"}"), *arr;
		char tpl[256] = "";

		for (i = 0; i < 10; i++)
			strcat(tpl, "{{#o}}");
		strcat(tpl, "{{zz}}");
		for (i = 0; i < 10; i++)
			strcat(tpl, "{{/o}}");
		rc = template_render(tpl, strlen(tpl), &c, 1, false, 1024, &out, &n, t_err, sizeof t_err);
		ok(rc == -1 && strstr(t_err, "too expensive") != NULL,
		   "4^10 loop of lookups through 10 object contexts refused by the step budget");
		json_object_put(c);
		arr = json_object_new_array();
		for (i = 0; i < 10000; i++) {
			struct json_object *it = json_object_new_object();

			json_object_object_add(it, "x", json_object_new_int(1));
			json_object_array_add(arr, it);
		}
		c = json_object_new_object();
		json_object_object_add(c, "items", arr);
		rc = template_render("{{#items}}{{x}},{{/items}}", 26, &c, 1, false, 1 << 20, &out, &n,
		                     t_err, sizeof t_err);
		if (!ok(rc == 0 && n == 20000, "a 10,000-item loop fits the step budget"))
			diag("rc %d n %zu err %s", rc, n, t_err);
		free(out);
		json_object_put(c);
	}

	json_object_put(t_ctx[0]);
	json_object_put(t_ctx[1]);
	return done();
}
