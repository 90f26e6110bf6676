/* prov_smtp - SPEC §5 email over SMTP with libcurl: smtp:// with STARTTLS (required when
 * starttls = true, else used when offered), smtps://, AUTH with username/password; the message
 * is built with libcurl's MIME API (multipart/alternative of the text and HTML parts present,
 * UTF-8, quoted-printable) under Subject (RFC 2047 when not plain ASCII), From, To, Reply-To,
 * Date, Message-ID and, for non-transactional categories, List-Unsubscribe with
 * List-Unsubscribe-Post (RFC 8058) carrying a signed token (shared/unsub.h).
 *
 * Sender identity, per field: the client's email_from / reply_to, else `defaults`, else the
 * provider's from / reply_to; all of them are checked at init, so a bad one stops the worker
 * with the key named instead of failing every message. No header injection: the recipient and
 * sender addresses must be plain addr-spec (anything else is refused before sending), display
 * names may not hold control characters, and the subject's control characters (CR, LF, TAB...)
 * become spaces. The relay is the operator's, so the private-destination guard is off.
 *
 * Outcome by the SMTP reply code: 2xx accepted (the message id is the Message-ID), 4xx
 * transient, 5xx permanent; no reply (connect, TLS, timeout) transient; STARTTLS required but
 * not offered transient. A 5xx to RCPT TO that says the mailbox is bad (enhanced status 5.1.x
 * or 5.2.1, or without one 550, 551 or 553) also asks the worker to suppress the address;
 * policy refusals (5.7.x: relaying denied...) and AUTH failures do not. The command a reply
 * answers is followed through libcurl's debug callback, keeping only the verb: AUTH arguments
 * (the credentials) are never looked at or kept, and neither is the body.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "codec.h"
#include "conf.h"
#include "log.h"
#include "prov.h"
#include "unsub.h"

#define SMTP_ADDR_MAX 254            /* RFC 5321 path limit, less the brackets */
#define SMTP_SUBJECT_MAX 4096        /* bytes of a subject; longer ones are refused */
#define SMTP_NAME_MAX 256            /* bytes of a display name */
#define SMTP_FOLD 78                 /* RFC 5322 recommended line length */
#define SMTP_WORD_RAW 39             /* bytes per encoded-word: 52 base64 chars, 64 in all */
#define SMTP_UNSUB_URL_MAX 500       /* keeps List-Unsubscribe within 998 characters */

/* What a call keeps beside the easy handle (call->priv). */
struct smtp_call {
	curl_mime *mime;
	struct curl_slist *rcpt;
	char message_id[256];
	char verb[12];               /* the last command sent: "RCPT", "DATA", ... */
	char reply_verb[12];         /* the command the last reply answered */
	char reply[200];             /* the last reply line, printable ASCII */
	bool data_sent;              /* DATA was answered 354: later replies are to the data */
};

/* A growing string. */
struct smtp_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

/* smtp_putn - append S[0..N) to B */
static void smtp_putn(struct smtp_buf *b, const char *s, size_t n)
{
	char *np;
	size_t cap;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* smtp_puts - append S to B */
static void smtp_puts(struct smtp_buf *b, const char *s)
{
	smtp_putn(b, s, strlen(s));
}

/* smtp_atext - C may appear in a dot-atom (RFC 5322 atext) */
static bool smtp_atext(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* smtp_addr_ok - S[0..LEN) is a plain addr-spec: a dot-atom local part of 1-64 characters, '@',
 * and a domain of at least two dot-separated labels of letters, digits and inner hyphens */
static bool smtp_addr_ok(const char *s, size_t len)
{
	const char *at = memchr(s, '@', len), *end = s + len, *p, *label;

	if (len == 0 || len > SMTP_ADDR_MAX || at == NULL || at == s || at - s > 64 ||
	    memchr(at + 1, '@', (size_t)(end - at - 1)) != NULL)
		return false;
	for (p = s; p < at; p++)
		if (!(smtp_atext(*p) || (*p == '.' && p != s && p + 1 != at && p[1] != '.')))
			return false;
	label = at + 1;
	if (label == end)
		return false;
	for (p = label; p <= end; p++) {
		if (p == end || *p == '.') {
			if (p == label || p - label > 63 || label[0] == '-' || p[-1] == '-')
				return false;
			if (p < end && p + 1 == end)
				return false;
			label = p + 1;
			continue;
		}
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-'))
			return false;
	}
	return strchr(at + 1, '.') != NULL;
}

/* A sender: "Name <addr>" or "addr" split and checked. */
struct smtp_mailbox {
	char name[SMTP_NAME_MAX + 1];    /* "" when none */
	char addr[SMTP_ADDR_MAX + 1];
};

/* smtp_mailbox_parse - S ("addr", "Name <addr>" or "\"Name\" <addr>") into MB; 0, or -1 with
 * WHY (no control characters anywhere, a plain addr-spec, nothing after '>') */
static int smtp_mailbox_parse(const char *s, struct smtp_mailbox *mb, const char **why)
{
	const char *lt, *gt, *a, *b, *p;
	size_t n;

	memset(mb, 0, sizeof *mb);
	for (p = s; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			*why = "contains a control character (CR, LF, TAB...)";
			return -1;
		}
	if ((lt = strchr(s, '<')) == NULL) {
		a = s;
		b = s + strlen(s);
		while (a < b && *a == ' ')
			a++;
		while (b > a && b[-1] == ' ')
			b--;
		if (!smtp_addr_ok(a, (size_t)(b - a))) {
			*why = "not a plain address (local@domain.tld)";
			return -1;
		}
		memcpy(mb->addr, a, (size_t)(b - a));
		return 0;
	}
	if ((gt = strchr(lt, '>')) == NULL || strchr(gt + 1, '<') != NULL ||
	    strchr(gt + 1, '>') != NULL || gt[1 + strspn(gt + 1, " ")] != '\0') {
		*why = "expected \"Name <local@domain.tld>\"";
		return -1;
	}
	if (!smtp_addr_ok(lt + 1, (size_t)(gt - lt - 1))) {
		*why = "the address in <> is not a plain address (local@domain.tld)";
		return -1;
	}
	memcpy(mb->addr, lt + 1, (size_t)(gt - lt - 1));
	a = s;
	b = lt;
	while (a < b && *a == ' ')
		a++;
	while (b > a && b[-1] == ' ')
		b--;
	if (b - a >= 2 && *a == '"' && b[-1] == '"') {
		a++;
		b--;
	}
	n = (size_t)(b - a);
	if (n > SMTP_NAME_MAX) {
		*why = "display name longer than 256 bytes";
		return -1;
	}
	if (memchr(a, '"', n) != NULL || memchr(a, '\\', n) != NULL) {
		*why = "display name holds a quote or a backslash";
		return -1;
	}
	memcpy(mb->name, a, n);
	mb->name[n] = '\0';
	return 0;
}

/* smtp_ascii - S[0..N) is printable ASCII (space to tilde) */
static bool smtp_ascii(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

/* smtp_encoded_words - S[0..N) as RFC 2047 "=?UTF-8?B?...?=" words of at most SMTP_WORD_RAW
 * bytes each, never splitting a UTF-8 sequence, separated by a fold (CRLF SP) */
static void smtp_encoded_words(struct smtp_buf *b, const char *s, size_t n)
{
	unsigned char enc[4 * ((SMTP_WORD_RAW + 2) / 3) + 4];
	size_t i = 0, take;

	while (i < n) {
		take = n - i < SMTP_WORD_RAW ? n - i : SMTP_WORD_RAW;
		while (take > 1 && i + take < n && ((unsigned char)s[i + take] & 0xc0) == 0x80)
			take--;      /* do not cut a multi-byte character */
		EVP_EncodeBlock(enc, (const unsigned char *)s + i, (int)take);
		if (i > 0)
			smtp_puts(b, "\r\n ");
		smtp_puts(b, "=?UTF-8?B?");
		smtp_puts(b, (const char *)enc);
		smtp_puts(b, "?=");
		i += take;
	}
}

/* smtp_folded - the printable ASCII S[0..N) after a header name of COL columns, folded at
 * spaces to keep lines near SMTP_FOLD; false (B untouched) when a line would pass 998 */
static bool smtp_folded(struct smtp_buf *b, const char *s, size_t n, size_t col)
{
	size_t i, w, line = col, start = b->len;

	for (i = 0; i < n; i++) {
		if (s[i] == ' ' && line > col && i + 1 < n && s[i + 1] != ' ') {
			for (w = i + 1; w < n && s[w] != ' '; w++)
				;
			if (line + (w - i) > SMTP_FOLD) {
				smtp_puts(b, "\r\n");
				line = 0;
			}
		}
		smtp_putn(b, s + i, 1);
		if (++line > 998) {
			b->len = start;
			if (b->p != NULL)
				b->p[start] = '\0';
			return false;
		}
	}
	return true;
}

/* smtp_subject - the "Subject: " header of S into B: control characters made spaces, folded
 * plain ASCII when it is that (and holds no "=?"), else encoded-words */
static void smtp_subject(struct smtp_buf *b, const char *s)
{
	size_t n = strlen(s), i;
	char *clean = malloc(n + 1);

	if (clean == NULL) {
		b->oom = true;
		return;
	}
	for (i = 0; i < n; i++)
		clean[i] = (char)(((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? ' ' : s[i]);
	clean[n] = '\0';
	smtp_puts(b, "Subject: ");
	if (!(smtp_ascii(clean, n) && strstr(clean, "=?") == NULL &&
	    smtp_folded(b, clean, n, strlen("Subject: "))))
		smtp_encoded_words(b, clean, n);
	free(clean);
}

/* smtp_mailbox_header - "NAME: mailbox" for MB into B: an ASCII display name quoted, another
 * one encoded */
static void smtp_mailbox_header(struct smtp_buf *b, const char *name, const struct smtp_mailbox *mb)
{
	smtp_puts(b, name);
	smtp_puts(b, ": ");
	if (mb->name[0] != '\0') {
		if (smtp_ascii(mb->name, strlen(mb->name)) && strstr(mb->name, "=?") == NULL) {
			smtp_puts(b, "\"");
			smtp_puts(b, mb->name);
			smtp_puts(b, "\"");
		} else {
			smtp_encoded_words(b, mb->name, strlen(mb->name));
		}
		smtp_puts(b, " <");
		smtp_puts(b, mb->addr);
		smtp_puts(b, ">");
	} else {
		smtp_puts(b, mb->addr);
	}
}

/* smtp_date - "Date: " + the RFC 5322 date of USEC (UTC) into OUT */
static void smtp_date(int64_t usec, char *out, size_t n)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
		"Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t t = (time_t)(usec / 1000000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, n, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7],
	    tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	    tm.tm_sec);
}

/* smtp_pick - the first non-empty of A, B, C, with the key it came from in *WHERE */
static const char *smtp_pick(const char *a, const char *wa, const char *b, const char *wb,
	const char *c, const char *wc, const char **where)
{
	if (a != NULL && a[0] != '\0')
		return (*where = wa, a);
	if (b != NULL && b[0] != '\0')
		return (*where = wb, b);
	if (c != NULL && c[0] != '\0')
		return (*where = wc, c);
	return (*where = NULL, NULL);
}

/* smtp_check_mailbox - S (may be NULL) parses as a mailbox; else ERR names KEY */
static int smtp_check_mailbox(const char *s, const char *key, char *err, size_t errlen)
{
	struct smtp_mailbox mb;
	const char *why;

	if (s == NULL || s[0] == '\0' || smtp_mailbox_parse(s, &mb, &why) == 0)
		return 0;
	snprintf(err, errlen, "%s: %s", key, why);
	return -1;
}

/* smtp_init - serve the email channel; every sender identity and the unsubscribe URL usable */
static int smtp_init(struct prov *p, char *err, size_t errlen)
{
	const struct conf *c = p->conf;
	const char *u = c->unsubscribe.url;
	char key[CONF_KEY_MAX];
	size_t i;

	if (p->channel != CONF_CH_EMAIL || p->cp == NULL) {
		snprintf(err, errlen, "provider type smtp serves channel email only");
		return -1;
	}
	if (p->cp->url == NULL) {
		snprintf(err, errlen, "url: required");
		return -1;
	}
	if (p->cp->password != NULL && p->cp->username == NULL) {
		snprintf(err, errlen, "password: given without username");
		return -1;
	}
	if (smtp_check_mailbox(p->cp->from, "from", err, errlen) < 0 ||
	    smtp_check_mailbox(p->cp->reply_to, "reply_to", err, errlen) < 0 ||
	    smtp_check_mailbox(c->defaults.email_from, "defaults.email_from", err, errlen) < 0 ||
	    smtp_check_mailbox(c->defaults.reply_to, "defaults.reply_to", err, errlen) < 0)
		return -1;
	for (i = 0; i < c->nclients; i++) {
		snprintf(key, sizeof key, "clients.%s.email_from", c->clients[i].name);
		if (smtp_check_mailbox(c->clients[i].email_from, key, err, errlen) < 0)
			return -1;
		snprintf(key, sizeof key, "clients.%s.reply_to", c->clients[i].name);
		if (smtp_check_mailbox(c->clients[i].reply_to, key, err, errlen) < 0)
			return -1;
	}
	if (u != NULL && u[0] != '\0') {
		if (strlen(u) > SMTP_UNSUB_URL_MAX) {
			snprintf(err, errlen, "unsubscribe.url: longer than %d characters",
			    SMTP_UNSUB_URL_MAX);
			return -1;
		}
		for (i = 0; u[i] != '\0'; i++)
			if (u[i] <= 0x20 || u[i] >= 0x7f || u[i] == '<' || u[i] == '>' || u[i] == '"') {
				snprintf(err, errlen, "unsubscribe.url: holds a space, a control"
				    " character, a quote, < or >");
				return -1;
			}
	}
	if (c->defaults.email_from == NULL && p->cp->from == NULL)
		log_warnx("event=smtp_config provider=%s msg=\"no from and no defaults.email_from:"
		    " only messages of clients with email_from can be sent\"", p->name);
	return 0;
}

/* smtp_fail - a refusal before sending: OUTCOME with DETAIL (printf) into R; -1 */
static int smtp_fail(struct prov_result *r, enum prov_outcome outcome, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int smtp_fail(struct prov_result *r, enum prov_outcome outcome, const char *fmt, ...)
{
	va_list ap;

	r->outcome = outcome;
	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof r->detail, fmt, ap);
	va_end(ap);
	return -1;
}

/* smtp_verb_known - the verb of an SMTP command line S (one of those libcurl sends) into OUT;
 * anything else (AUTH LOGIN's base64 answers, the body) leaves OUT alone */
static void smtp_verb_note(const char *s, size_t n, char *out, size_t outlen)
{
	static const char *const verbs[] = { "EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT",
		"DATA", "QUIT", "RSET", "NOOP", "VRFY", "EXPN", NULL };
	size_t i, vl;

	for (i = 0; verbs[i] != NULL; i++) {
		vl = strlen(verbs[i]);
		if (n >= vl && memcmp(s, verbs[i], vl) == 0 &&
		    (n == vl || s[vl] == ' ' || s[vl] == '\r' || s[vl] == '\n')) {
			snprintf(out, outlen, "%s", verbs[i]);
			return;
		}
	}
}

/* smtp_debug_cb - follow which command the next reply answers (verbs only) */
static int smtp_debug_cb(CURL *e, curl_infotype type, char *data, size_t size, void *arg)
{
	struct smtp_call *sc = arg;

	(void)e;
	if (type == CURLINFO_HEADER_OUT)
		smtp_verb_note(data, size, sc->verb, sizeof sc->verb);
	return 0;
}

/* smtp_header_cb - keep the last reply line before QUIT (libcurl passes SMTP replies as
 * headers) and the command it answers */
static size_t smtp_header_cb(char *data, size_t size, size_t nitems, void *arg)
{
	struct smtp_call *sc = arg;
	size_t len = size * nitems, i, k = 0;

	if (len < 3 || data[0] < '2' || data[0] > '5' || strcmp(sc->verb, "QUIT") == 0)
		return len;          /* the reply to QUIT would hide the one that matters */
	for (i = 0; i < len && k < sizeof sc->reply - 1; i++) {
		unsigned char ch = (unsigned char)data[i];

		if (ch == '\r' || ch == '\n')
			break;
		sc->reply[k++] = (char)((ch >= 0x20 && ch < 0x7f) ? ch : ' ');
	}
	sc->reply[k] = '\0';
	if (k > 3)
		sc->reply[3] = ' ';  /* "250-..." of a multi-line reply reads "250 ..." */
	snprintf(sc->reply_verb, sizeof sc->reply_verb, "%s", sc->verb);
	if (strncmp(sc->reply, "354", 3) == 0)
		sc->data_sent = true;
	return len;
}

/* smtp_header - append LINE to *L; -1 on ENOMEM */
static int smtp_header(struct curl_slist **l, const char *line)
{
	struct curl_slist *n = curl_slist_append(*l, line);

	if (n == NULL)
		return -1;
	*l = n;
	return 0;
}

/* smtp_crlf - S with every line break (LF, CR, CRLF) made CRLF, malloc'd; NULL on ENOMEM */
static char *smtp_crlf(const char *s)
{
	struct smtp_buf b = { 0 };

	for (; *s != '\0'; s++) {
		if (*s == '\r') {
			smtp_puts(&b, "\r\n");
			if (s[1] == '\n')
				s++;
		} else if (*s == '\n') {
			smtp_puts(&b, "\r\n");
		} else {
			smtp_putn(&b, s, 1);
		}
	}
	if (b.p == NULL && !b.oom)
		smtp_puts(&b, "");
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* smtp_part - add a TYPE part of TEXT (UTF-8, quoted-printable, inline) to MIME; -1 on ENOMEM */
static int smtp_part(curl_mime *mime, const char *type, const char *text)
{
	curl_mimepart *part = curl_mime_addpart(mime);
	struct curl_slist *h = NULL;
	char *body;
	CURLcode rc;

	if (part == NULL || (body = smtp_crlf(text)) == NULL)
		return -1;
	rc = curl_mime_data(part, body, CURL_ZERO_TERMINATED);
	free(body);
	if (rc != CURLE_OK || curl_mime_type(part, type) != CURLE_OK ||
	    curl_mime_encoder(part, "quoted-printable") != CURLE_OK ||
	    smtp_header(&h, "Content-Disposition: inline") < 0 ||
	    curl_mime_headers(part, h, 1) != CURLE_OK) {
		curl_slist_free_all(h);
		return -1;
	}
	return 0;
}

/* smtp_message_id - "<IDENTITY@DOMAIN>" into OUT, the identity's ':' made '.'; -1 when the
 * identity holds anything else that is not atext */
static int smtp_message_id(const char *identity, const char *addr, char *out, size_t n)
{
	const char *domain = strchr(addr, '@') + 1;
	size_t i, k = 0;

	if (identity == NULL || identity[0] == '\0' || strlen(identity) + strlen(domain) + 4 > n)
		return -1;
	out[k++] = '<';
	for (i = 0; identity[i] != '\0'; i++) {
		char ch = identity[i];

		if (ch == ':' || ch == '.')
			ch = '.';
		else if (!smtp_atext(ch))
			return -1;
		if (ch == '.' && (k == 1 || out[k - 1] == '.'))
			return -1;
		out[k++] = ch;
	}
	if (out[k - 1] == '.')
		return -1;
	snprintf(out + k, n - k, "@%s>", domain);
	return 0;
}

/* smtp_unsubscribe - the List-Unsubscribe lines for M into *H when its category is not
 * transactional, it has a user and unsubscribe.secret and url are set; -1 on ENOMEM or
 * a token that cannot be made (R filled) */
static int smtp_unsubscribe(const struct prov *p, const struct prov_msg *m,
	struct curl_slist **h, struct prov_result *r)
{
	const struct conf_unsubscribe *u = &p->conf->unsubscribe;
	const struct note *n = m->note;
	char tok[UNSUB_TOKEN_MAX + 1], line[SMTP_UNSUB_URL_MAX + UNSUB_TOKEN_MAX + 64];
	int rc;

	if (n->category == NULL || strcmp(n->category, "transactional") == 0 ||
	    n->user_id == NULL || u->secret == NULL || u->secret[0] == '\0' || u->url == NULL ||
	    u->url[0] == '\0')
		return 0;
	rc = unsub_make(u->secret, n->user_id, n->category, m->now / 1000000 + u->ttl, tok,
	    sizeof tok);
	if (rc != UNSUB_OK)
		return smtp_fail(r, PROV_PERMANENT, "unsubscribe token: %s", unsub_strerror(rc));
	snprintf(line, sizeof line, "List-Unsubscribe: <%s%stoken=%s>", u->url,
	    strchr(u->url, '?') != NULL ? "&" : "?", tok);
	if (smtp_header(h, line) < 0 ||
	    smtp_header(h, "List-Unsubscribe-Post: List-Unsubscribe=One-Click") < 0)
		return smtp_fail(r, PROV_TRANSIENT, "out of memory");
	return 0;
}

/* smtp_headers - the message header lines of M from FROM to REPLY (may be NULL) into *H;
 * 0, or -1 with R filled */
static int smtp_headers(const struct prov *p, const struct prov_msg *m,
	const struct smtp_mailbox *from, const struct smtp_mailbox *reply, const char *msgid,
	struct curl_slist **h, struct prov_result *r)
{
	struct smtp_buf b = { 0 };
	char line[SMTP_ADDR_MAX + 300];

	if (m->subject != NULL) {
		smtp_subject(&b, m->subject);
		if (b.oom || smtp_header(h, b.p) < 0)
			goto oom;
		b.len = 0;
	}
	smtp_mailbox_header(&b, "From", from);
	if (b.oom || smtp_header(h, b.p) < 0)
		goto oom;
	b.len = 0;
	snprintf(line, sizeof line, "To: %s", m->address);
	if (smtp_header(h, line) < 0)
		goto oom;
	if (reply != NULL) {
		smtp_mailbox_header(&b, "Reply-To", reply);
		if (b.oom || smtp_header(h, b.p) < 0)
			goto oom;
	}
	free(b.p);
	smtp_date(m->now, line, sizeof line);
	if (smtp_header(h, line) < 0)
		return smtp_fail(r, PROV_TRANSIENT, "out of memory");
	snprintf(line, sizeof line, "Message-ID: %s", msgid);
	if (smtp_header(h, line) < 0 || smtp_header(h, "MIME-Version: 1.0") < 0)
		return smtp_fail(r, PROV_TRANSIENT, "out of memory");
	if (m->text != NULL && m->html != NULL &&
	    smtp_header(h, "Content-Type: multipart/alternative") < 0)
		return smtp_fail(r, PROV_TRANSIENT, "out of memory");
	return smtp_unsubscribe(p, m, h, r);
oom:
	free(b.p);
	return smtp_fail(r, PROV_TRANSIENT, "out of memory");
}

/* smtp_sender - the From and Reply-To of M into FROM and REPLY (*HAS_REPLY); 0 or -1 with R */
static int smtp_sender(const struct prov *p, const struct prov_msg *m, struct smtp_mailbox *from,
	struct smtp_mailbox *reply, bool *has_reply, struct prov_result *r)
{
	const struct conf_client *cl = m->client;
	const char *s, *where, *why;

	s = smtp_pick(cl ? cl->email_from : NULL, "clients.*.email_from",
	    p->conf->defaults.email_from, "defaults.email_from", p->cp->from, "from", &where);
	if (s == NULL)
		return smtp_fail(r, PROV_PERMANENT, "no sender: set the client's email_from,"
		    " defaults.email_from or the provider's from");
	if (smtp_mailbox_parse(s, from, &why) < 0)
		return smtp_fail(r, PROV_PERMANENT, "sender (%s): %s", where, why);
	s = smtp_pick(cl ? cl->reply_to : NULL, "clients.*.reply_to",
	    p->conf->defaults.reply_to, "defaults.reply_to", p->cp->reply_to, "reply_to", &where);
	*has_reply = s != NULL;
	if (s != NULL && smtp_mailbox_parse(s, reply, &why) < 0)
		return smtp_fail(r, PROV_PERMANENT, "Reply-To (%s): %s", where, why);
	return 0;
}

/* smtp_call_free - release CALL and what the SMTP provider keeps for it (NULL is fine); the
 * easy handle goes first, as libcurl wants the MIME tree to outlive it */
static void smtp_call_free(struct prov_call *call)
{
	struct smtp_call *sc;

	if (call == NULL)
		return;
	sc = call->priv;
	call->priv = NULL;
	prov_call_free(call);
	if (sc != NULL) {
		curl_mime_free(sc->mime);
		curl_slist_free_all(sc->rcpt);
		free(sc);
	}
}

/* smtp_start - the SMTP transaction of M */
static int smtp_start(struct prov *p, const struct prov_msg *m, struct prov_call **callp,
	struct prov_result *r)
{
	const struct conf_channel *cc = &p->conf->channels[CONF_CH_EMAIL];
	const struct conf_provider *cp = p->cp;
	struct smtp_mailbox from = { 0 }, reply = { 0 };
	struct prov_call *call = NULL;
	struct smtp_call *sc = NULL;
	char path[SMTP_ADDR_MAX + 3];
	bool has_reply = false;
	CURL *e;

	*callp = NULL;
	r->http_status = 0;
	r->retry_after = -1;
	r->message_id[0] = '\0';
	if (m->address == NULL || m->address[0] == '\0')
		return smtp_fail(r, PROV_PERMANENT, "no email address");
	if (strpbrk(m->address, "\r\n") != NULL)
		return smtp_fail(r, PROV_PERMANENT, "recipient address contains CR or LF");
	if (!smtp_addr_ok(m->address, strlen(m->address)))
		return smtp_fail(r, PROV_PERMANENT, "recipient address is not a plain address"
		    " (local@domain.tld, ASCII)");
	if (m->text == NULL && m->html == NULL)
		return smtp_fail(r, PROV_PERMANENT, "nothing to send: no text and no HTML part");
	if (m->subject != NULL && strlen(m->subject) > SMTP_SUBJECT_MAX)
		return smtp_fail(r, PROV_PERMANENT, "subject longer than %d bytes",
		    SMTP_SUBJECT_MAX);
	if (smtp_sender(p, m, &from, &reply, &has_reply, r) < 0)
		return -1;
	if ((sc = calloc(1, sizeof *sc)) == NULL)
		goto oom;
	if (smtp_message_id(m->identity, from.addr, sc->message_id, sizeof sc->message_id) < 0) {
		free(sc);
		return smtp_fail(r, PROV_PERMANENT, "message identity unusable in a Message-ID");
	}
	if ((call = prov_call_new(p, cp->timeout, cc->tls_verify, true)) == NULL) {
		free(sc);
		goto oom;
	}
	call->priv = sc;
	e = call->easy;
	if (smtp_headers(p, m, &from, has_reply ? &reply : NULL, sc->message_id, &call->headers,
	    r) < 0) {
		smtp_call_free(call);
		return -1;
	}
	if ((sc->mime = curl_mime_init(e)) == NULL ||
	    (m->text != NULL && smtp_part(sc->mime, "text/plain; charset=utf-8", m->text) < 0) ||
	    (m->html != NULL && smtp_part(sc->mime, "text/html; charset=utf-8", m->html) < 0))
		goto oom;
	snprintf(path, sizeof path, "<%s>", m->address);
	if (smtp_header(&sc->rcpt, path) < 0)
		goto oom;
	snprintf(path, sizeof path, "<%s>", from.addr);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_SMTP | CURLPROTO_SMTPS));
#endif
	curl_easy_setopt(e, CURLOPT_URL, cp->url);
	curl_easy_setopt(e, CURLOPT_USE_SSL, (long)(cp->starttls || strncmp(cp->url, "smtps:", 6) == 0 ?
	    CURLUSESSL_ALL : CURLUSESSL_TRY));
	if (cp->username != NULL) {
		curl_easy_setopt(e, CURLOPT_USERNAME, cp->username);
		curl_easy_setopt(e, CURLOPT_PASSWORD, cp->password != NULL ? cp->password : "");
	}
	curl_easy_setopt(e, CURLOPT_MAIL_FROM, path);
	curl_easy_setopt(e, CURLOPT_MAIL_RCPT, sc->rcpt);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->headers);
	curl_easy_setopt(e, CURLOPT_MIMEPOST, sc->mime);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, smtp_header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, sc);
	curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, smtp_debug_cb);
	curl_easy_setopt(e, CURLOPT_DEBUGDATA, sc);
	curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
	*callp = call;
	return 0;
oom:
	smtp_call_free(call);
	log_warnx("event=smtp_error provider=%s msg=\"out of memory\"", p->name);
	return smtp_fail(r, PROV_TRANSIENT, "out of memory");
}

/* smtp_bad_mailbox - whether the 5xx reply CODE with text REPLY ("550 5.1.1 ...") says the
 * recipient's mailbox itself is bad: enhanced status 5.1.x or 5.2.1, or without an enhanced
 * status 550, 551 or 553 */
static bool smtp_bad_mailbox(long code, const char *reply)
{
	const char *x = reply + (strlen(reply) > 4 ? 4 : strlen(reply));

	if (x[0] == '5' && x[1] == '.' && x[2] >= '0' && x[2] <= '9' && x[3] == '.')
		return x[2] == '1' || (x[2] == '2' && x[4] == '1' && (x[5] == ' ' || x[5] == '\0'));
	return code == 550 || code == 551 || code == 553;
}

/* smtp_cmd_name - how a detail names the command VERB ("RCPT TO", "end of data"...);
 * DATA_SENT: the message itself was sent after DATA */
static const char *smtp_cmd_name(const char *verb, bool data_sent)
{
	if (strcmp(verb, "RCPT") == 0)
		return "RCPT TO";
	if (strcmp(verb, "MAIL") == 0)
		return "MAIL FROM";
	if (strcmp(verb, "DATA") == 0)
		return data_sent ? "end of data" : "DATA";
	if (verb[0] == '\0')
		return "greeting";
	return verb;
}

/* smtp_finish - classify CALL by the SMTP reply code; CALL is freed */
static void smtp_finish(struct prov *p, struct prov_call *call, CURLcode rc,
	struct prov_result *r)
{
	struct smtp_call *sc = call->priv;
	long code = 0;

	(void)p;
	r->http_status = 0;
	r->retry_after = -1;
	r->message_id[0] = '\0';
	r->suppress = false;
	curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &code);
	if (rc == CURLE_OK && code >= 200 && code < 300) {
		r->outcome = PROV_ACCEPTED;
		snprintf(r->message_id, sizeof r->message_id, "%s", sc->message_id);
		snprintf(r->detail, sizeof r->detail, "SMTP %s", sc->reply[0] ? sc->reply : "250");
	} else if (rc == CURLE_USE_SSL_FAILED) {
		r->outcome = PROV_TRANSIENT;
		snprintf(r->detail, sizeof r->detail, "STARTTLS required (starttls = true) but %s",
		    code >= 400 ? "refused by the server" : "not offered by the server");
	} else if (code >= 400 && code < 600) {
		r->outcome = code < 500 ? PROV_TRANSIENT : PROV_PERMANENT;
		if (rc == CURLE_LOGIN_DENIED || strcmp(sc->reply_verb, "AUTH") == 0)
			snprintf(r->detail, sizeof r->detail, "SMTP %ld to AUTH (authentication"
			    " failed): %s", code, sc->reply);
		else
			snprintf(r->detail, sizeof r->detail, "SMTP %ld to %s: %s", code,
			    smtp_cmd_name(sc->reply_verb, sc->data_sent), sc->reply);
		r->suppress = code >= 500 && strcmp(sc->reply_verb, "RCPT") == 0 &&
		    smtp_bad_mailbox(code, sc->reply);
	} else if (rc == CURLE_LOGIN_DENIED) {
		r->outcome = PROV_PERMANENT;
		snprintf(r->detail, sizeof r->detail, "authentication failed: %s",
		    call->errbuf[0] ? call->errbuf : curl_easy_strerror(rc));
	} else if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) {
		r->outcome = PROV_PERMANENT;
		snprintf(r->detail, sizeof r->detail, "curl %d %s", (int)rc, curl_easy_strerror(rc));
	} else {
		r->outcome = PROV_TRANSIENT;
		snprintf(r->detail, sizeof r->detail, "curl %d %s%s%s", (int)rc,
		    curl_easy_strerror(rc), call->errbuf[0] ? ": " : "", call->errbuf);
	}
	smtp_call_free(call);
}

/* smtp_cleanup - nothing kept between calls */
static void smtp_cleanup(struct prov *p)
{
	(void)p;
}

const struct prov_ops prov_smtp_ops = {
	.type = "smtp",
	.init = smtp_init,
	.start = smtp_start,
	.finish = smtp_finish,
	.cleanup = smtp_cleanup,
};
