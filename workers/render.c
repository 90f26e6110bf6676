/* render - template lookup, inline overrides and rendering of one message's fields */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "admit.h"
#include "codec.h"
#include "conf.h"
#include "db.h"
#include "render.h"
#include "template.h"

enum {
	Q_TPL,
	Q__N
};

const struct db_stmt render_stmts[Q__N] = {
	[Q_TPL] = { "render_template",
		"SELECT version, subject, body, html, data, locale FROM templates "
		"WHERE name = ? AND channel = ? AND locale IN (?, ?, '') "
		"ORDER BY LENGTH(locale) DESC, version DESC LIMIT 1", true },
};
const size_t render_nstmts = Q__N;

/* The request's content key of each field, per channel (NULL: the channel has no such field). */
struct render_keys {
	const char *subject, *text, *html, *extra;
};

static const struct render_keys render_keys[CODEC_CH_COUNT] = {
	[CODEC_CH_EMAIL] = { "subject", "body", "html", NULL },
	[CODEC_CH_SMS] = { NULL, "body", NULL, NULL },
	[CODEC_CH_PUSH] = { "title", "body", NULL, "data" },
	[CODEC_CH_WEBHOOK] = { "event", NULL, NULL, NULL },
};

/* render_free - release R's fields */
void render_free(struct rendered *r)
{
	free(r->subject);
	free(r->text);
	free(r->html);
	json_object_put(r->extra);
	memset(r, 0, sizeof *r);
}

/* render_utf8_chars - code points in S (continuation bytes not counted) */
static size_t render_utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

/* render_field - render the source text SRC of field NAME into *OUT; 0 or -1 with ERR */
static int render_field(const char *name, const char *origin, const char *src,
	struct json_object *const *ctx, size_t nctx, bool html, char **out, char *err,
	size_t errlen)
{
	char why[256];
	size_t len;

	if (src == NULL)
		return 0;
	if (template_render(src, strlen(src), ctx, nctx, html, RENDER_MAX_OUT, out, &len, why,
	    sizeof why) < 0) {
		snprintf(err, errlen, "%s %s: %s", origin, name, why);
		return -1;
	}
	return 0;
}

/* render_inline - the inline string field KEY of the note's content, or NULL */
static const char *render_inline(const struct note *n, const char *key)
{
	struct json_object *v;

	if (key == NULL || !json_object_object_get_ex(n->content, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* render_note - stored template (if named) + inline overrides, rendered and checked */
int render_note(struct db *db, int base, const struct conf *c, const struct note *n,
	const struct admit *a, struct rendered *out, char *err, size_t errlen)
{
	const struct render_keys *k = &render_keys[n->channel];
	const char *ch = codec_channel_name(n->channel);
	char *tsubject = NULL, *ttext = NULL, *thtml = NULL, lang[36], origin[200] = "";
	struct json_object *ctx[2], *v;
	size_t nctx = 0;
	int rc = RENDER_FAILED;

	memset(out, 0, sizeof *out);
	if (n->template_name != NULL) {
		const char *s;
		int found = 0;

		snprintf(lang, sizeof lang, "%s", a->locale);
		lang[strcspn(lang, "-_")] = '\0';
		if ((rc = db_exec(db, base + Q_TPL, DB_ARGS(db_str(n->template_name), db_str(ch),
		    db_str(a->locale), db_str(lang)))) < 0)
			return rc;
		while ((rc = db_fetch(db, base + Q_TPL)) == 1) {
			found = 1;
			out->template_version = (unsigned)db_col_i64(db, base + Q_TPL, 0);
			/* one row is expected; a later one replaces it without leaking */
			free(tsubject);
			free(ttext);
			free(thtml);
			tsubject = ttext = thtml = NULL;
			json_object_put(out->extra);
			out->extra = NULL;
			if ((s = db_col_str(db, base + Q_TPL, 1, NULL)) != NULL)
				tsubject = strdup(s);
			if ((s = db_col_str(db, base + Q_TPL, 2, NULL)) != NULL)
				ttext = strdup(s);
			if ((s = db_col_str(db, base + Q_TPL, 3, NULL)) != NULL)
				thtml = strdup(s);
			if ((s = db_col_str(db, base + Q_TPL, 4, NULL)) != NULL && k->extra != NULL)
				out->extra = json_tokener_parse(s);
			if ((s = db_col_str(db, base + Q_TPL, 5, NULL)) != NULL)
				snprintf(out->template_locale, sizeof out->template_locale, "%s", s);
		}
		if (rc < 0)
			goto out;
		rc = RENDER_FAILED;
		if (!found) {
			snprintf(err, errlen, "template %s: none stored for channel %s", n->template_name, ch);
			goto out;
		}
		snprintf(origin, sizeof origin, "template %s v%u", n->template_name,
		    out->template_version);
	}
	/* inline fields of the request win over the template's */
	if (n->data != NULL)
		ctx[nctx++] = n->data;
	if (a->profile != NULL)
		ctx[nctx++] = a->profile;
	if (render_field(k->subject != NULL ? k->subject : "subject",
	    render_inline(n, k->subject) != NULL ? "channels" : origin,
	    render_inline(n, k->subject) != NULL ? render_inline(n, k->subject) :
	    (k->subject != NULL ? tsubject : NULL), ctx, nctx, false, &out->subject, err, errlen) < 0 ||
	    render_field(k->text != NULL ? k->text : "body",
	    render_inline(n, k->text) != NULL ? "channels" : origin,
	    render_inline(n, k->text) != NULL ? render_inline(n, k->text) :
	    (k->text != NULL ? ttext : NULL), ctx, nctx, false, &out->text, err, errlen) < 0 ||
	    render_field("html", render_inline(n, k->html) != NULL ? "channels" : origin,
	    render_inline(n, k->html) != NULL ? render_inline(n, k->html) :
	    (k->html != NULL ? thtml : NULL), ctx, nctx, true, &out->html, err, errlen) < 0)
		goto out;
	if (k->extra != NULL && json_object_object_get_ex(n->content, k->extra, &v)) {
		json_object_put(out->extra);
		out->extra = json_object_get(v);
	}
	switch (n->channel) {
	case CODEC_CH_EMAIL:
		if (out->subject == NULL || (out->text == NULL && out->html == NULL)) {
			snprintf(err, errlen, "channels.email: a subject and a body or html are required "
			    "(inline or from the template)");
			goto out;
		}
		break;
	case CODEC_CH_SMS:
		if (out->text == NULL) {
			snprintf(err, errlen, "channels.sms.body: required (inline or from the template)");
			goto out;
		}
		if (render_utf8_chars(out->text) > (size_t)c->limits.sms_body_max) {
			snprintf(err, errlen, "channels.sms.body: %zu characters after rendering, over "
			    "limits.sms_body_max %d", render_utf8_chars(out->text), c->limits.sms_body_max);
			goto out;
		}
		break;
	case CODEC_CH_PUSH:
		if (out->subject == NULL && out->text == NULL) {
			snprintf(err, errlen, "channels.push: a title or a body is required");
			goto out;
		}
		break;
	default:
		break;
	}
	rc = 0;
out:
	free(tsubject);
	free(ttext);
	free(thtml);
	if (rc != 0) {
		unsigned version = out->template_version;

		render_free(out);
		out->template_version = version;
	}
	return rc;
}
