/* conf - the libconfig file (SPEC §9, §12) as a fully validated struct conf
 *
 * The known settings are tables of struct conf_key, one line per key: name, kind, field,
 * range, default, checks. conf_walk refuses every member of a group that its table does
 * not name (libconfig itself accepts keys nobody reads), then parses the table's keys in
 * table order, so a later table entry may look at an earlier one (preferences.defaults
 * names categories). Adding a key is one table line plus a field in conf.h.
 *
 * Variants: a group can pass a variant down to its members (the channel a channel group
 * is for; a provider's "type"); a key with .only set exists only for those variants.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <libconfig.h>

#include "conf.h"
#include "log.h"
#include "url.h"

enum conf_kind {
	CONF_K_INT,             /* int within [min, max] */
	CONF_K_BOOL,
	CONF_K_STR,             /* char *; max bytes (0: CONF_STR_MAX), no control characters */
	CONF_K_ENUM,            /* int: index of the string in .names */
	CONF_K_STRS,            /* struct conf_strlist; [min, max] elements of CONF_STR_MAX */
	CONF_K_INTS,            /* struct conf_intlist; [min, max] elements */
	CONF_K_GROUP,           /* a struct of .sub keys */
	CONF_K_MAP,             /* group of named groups: array of .elsize structs, char *name first */
	CONF_K_LIST,            /* list of groups ( {...}, {...} ): array of .elsize structs */
	CONF_K_CUSTOM           /* .parse / .init / .fin */
};

#define CONF_F_REQ     0x01u    /* must be present (and a string not empty) */
#define CONF_F_SECRET  0x02u    /* a non-empty value is a secret (§9) */
#define CONF_F_VARIANT 0x04u    /* list element: this enum picks which .only keys apply */
#define CONF_F_TEXT    0x08u    /* may hold line breaks and tabs (templates) */

#define CONF_STR_MAX 4096
#define CONF_WHY_MAX 256

struct conf_ctx {
	const char *file;
	struct conf *c;
	struct conf_error *err;
};

struct conf_key;

/* Checks run after a value is stored; BASE is the struct holding the key's field. */
typedef int (*conf_check_fn)(struct conf_ctx *x, const struct conf_key *k,
    const config_setting_t *s, const char *path, void *base);

struct conf_key {
	const char *name;
	enum conf_kind kind;
	unsigned flags;
	unsigned only;                  /* variants (1 << v) the key belongs to; 0: all */
	size_t off;                     /* the field in the parent struct */
	size_t noff;                    /* MAP, LIST, CUSTOM arrays: the size_t count */
	long long min, max;             /* INT: value; STR: length; STRS, INTS: count */
	long long def;                  /* INT, BOOL, ENUM */
	const char *defs;               /* STR */
	const int *defv;                /* INTS, ended by 0 */
	const char *const *names;       /* ENUM: values; MAP: elements always present */
	const struct conf_key *sub;     /* GROUP, MAP, LIST: member keys */
	size_t elsize;                  /* MAP, LIST */
	int variant;                    /* GROUP: passed to its members; -1: none */
	const char *what;               /* GROUP with variant, LIST: "channel", "provider type" */
	const char *unknown;            /* GROUP: reason given for an unknown member */
	conf_check_fn check;            /* after the value */
	conf_check_fn elcheck;          /* MAP, LIST: after each element (BASE = element) */
	int (*namecheck)(const char *name, char *why, size_t n);   /* MAP element names */
	void (*elinit)(void *el, const char *name);                 /* MAP: defaults by name */
	int (*init)(struct conf_ctx *x, const struct conf_key *k, void *base, int variant);
	int (*parse)(struct conf_ctx *x, const struct conf_key *k, const config_setting_t *s,
	    const char *path, void *base);
	void (*fin)(const struct conf_key *k, void *base);
};

#define CONF_FLD(T, f) .off = offsetof(T, f)
#define KINT(n, T, f, lo, hi, d, ...) \
	{ .name = n, .kind = CONF_K_INT, CONF_FLD(T, f), .min = lo, .max = hi, .def = d, __VA_ARGS__ }
#define KBOOL(n, T, f, d, ...) \
	{ .name = n, .kind = CONF_K_BOOL, CONF_FLD(T, f), .def = d, __VA_ARGS__ }
#define KSTR(n, T, f, ...) \
	{ .name = n, .kind = CONF_K_STR, CONF_FLD(T, f), __VA_ARGS__ }
#define KENUM(n, T, f, nm, d, ...) \
	{ .name = n, .kind = CONF_K_ENUM, CONF_FLD(T, f), .names = nm, .def = d, __VA_ARGS__ }
#define KSTRS(n, T, f, lo, hi, ...) \
	{ .name = n, .kind = CONF_K_STRS, CONF_FLD(T, f), .min = lo, .max = hi, __VA_ARGS__ }
#define KINTS(n, T, f, lo, hi, dv, ...) \
	{ .name = n, .kind = CONF_K_INTS, CONF_FLD(T, f), .min = lo, .max = hi, .defv = dv, __VA_ARGS__ }
#define KGROUP(n, T, f, sb, ...) \
	{ .name = n, .kind = CONF_K_GROUP, CONF_FLD(T, f), .sub = sb, .variant = -1, __VA_ARGS__ }
#define KMAP(n, T, f, cnt, ET, sb, ...) \
	{ .name = n, .kind = CONF_K_MAP, CONF_FLD(T, f), .noff = offsetof(T, cnt), .sub = sb, \
	  .elsize = sizeof(ET), __VA_ARGS__ }
#define KLIST(n, T, f, cnt, ET, sb, ...) \
	{ .name = n, .kind = CONF_K_LIST, CONF_FLD(T, f), .noff = offsetof(T, cnt), .sub = sb, \
	  .elsize = sizeof(ET), __VA_ARGS__ }
#define KCUSTOM(n, T, f, ps, ...) \
	{ .name = n, .kind = CONF_K_CUSTOM, CONF_FLD(T, f), .parse = ps, __VA_ARGS__ }
#define KCOUNT(nm, ch, lo, d) \
	{ .name = (nm), .kind = CONF_K_INT, .off = offsetof(struct conf_counts, n) + (ch) * sizeof(int), \
	  .min = (lo), .max = 1000000, .def = (d) }
#define KCHAN(nm, ch) \
	{ .name = (nm), .kind = CONF_K_GROUP, .off = (ch) * sizeof(struct conf_channel), \
	  .sub = conf_chan_keys, .variant = (ch), .what = "channel", .check = conf_check_chan }
#define KEND { .name = NULL }
#define PT(t) (1u << (t))

static const char *const conf_channel_names[] = { "email", "sms", "push", "webhook", NULL };
static const char *const conf_prov_names[] = { "smtp", "http", "fcm", "apns", "webhook", NULL };
static const char *const conf_level_names[] = { "debug", "info", "warn", "error", NULL };
static const char *const conf_policy_names[] = { "drop", "defer", NULL };
static const char *const conf_method_names[] = { "POST", "PUT", "GET", NULL };
static const char *const conf_content_names[] = { "form", "json", NULL };
static const char *const conf_auth_names[] = { "none", "basic", "bearer", NULL };
static const char *const conf_preset_names[] = { "none", "twilio", NULL };
static const char *const conf_category_builtin[] = {
	"transactional", "marketing", "reminders", "notifications", NULL
};
static const int conf_tiers_default[] = { 10, 60, 600, 3600, 21600, 0 };

/* Which provider types each channel accepts. */
static const unsigned conf_chan_provs[CONF_CHANNELS] = {
	[CONF_CH_EMAIL] = PT(CONF_PROV_SMTP),
	[CONF_CH_SMS] = PT(CONF_PROV_HTTP),
	[CONF_CH_PUSH] = PT(CONF_PROV_FCM) | PT(CONF_PROV_APNS),
	[CONF_CH_WEBHOOK] = PT(CONF_PROV_WEBHOOK),
};

_Static_assert(LOG_LEVEL_DEBUG == 0 && LOG_LEVEL_ERROR == 3,
    "log.level names follow enum log_level");

/* ---- errors ---------------------------------------------------------------------------- */

/* conf_error_set - fill ERR with "FILE:LINE: KEY: WHY" (FILE, LINE and KEY when known) */
static void conf_error_set(struct conf_error *err, const char *file, int line, const char *key,
    const char *why)
{
	size_t n = 0;

	if (err == NULL)
		return;
	memset(err, 0, sizeof *err);
	snprintf(err->key, sizeof err->key, "%s", key ? key : "");
	err->line = line;
	if (file != NULL && line > 0)
		n = (size_t)snprintf(err->msg, sizeof err->msg, "%s:%d: ", file, line);
	else if (file != NULL)
		n = (size_t)snprintf(err->msg, sizeof err->msg, "%s: ", file);
	if (n < sizeof err->msg && key != NULL && *key != '\0')
		n += (size_t)snprintf(err->msg + n, sizeof err->msg - n, "%s: ", key);
	if (n < sizeof err->msg)
		snprintf(err->msg + n, sizeof err->msg - n, "%s", why);
}

/* conf_fail - report WHY about PATH at setting S (its file and line); always -1 */
static int conf_fail(struct conf_ctx *x, const config_setting_t *s, const char *path,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int conf_fail(struct conf_ctx *x, const config_setting_t *s, const char *path,
    const char *fmt, ...)
{
	char why[CONF_ERR_MAX];
	const char *file = x->file;
	int line = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	if (s != NULL) {
		if (config_setting_source_file(s) != NULL)
			file = config_setting_source_file(s);
		line = config_setting_source_line(s);
	}
	conf_error_set(x->err, file, line, path, why);
	return -1;
}

/* conf_no_include - refuse settings that came through @include: heraldd checks one file's
 * permissions for secrets (§9), so a secret must not hide in another; 0 or -1 */
static int conf_no_include(struct conf_ctx *x, const config_setting_t *s)
{
	int i, n = config_setting_length(s);

	if (config_setting_source_file(s) != NULL &&
	    strcmp(config_setting_source_file(s), x->file) != 0) {
		char why[CONF_ERR_MAX];

		snprintf(why, sizeof why, "@include is not supported (a setting comes from %.200s):"
		    " keep the configuration in one file, whose permissions are checked",
		    config_setting_source_file(s));
		conf_error_set(x->err, x->file, 0, NULL, why);
		return -1;
	}
	for (i = 0; i < n; i++)
		if (conf_no_include(x, config_setting_get_elem(s, (unsigned)i)) < 0)
			return -1;
	return 0;
}

/* conf_oom - report an allocation failure; always -1 */
static int conf_oom(struct conf_ctx *x, const char *path)
{
	return conf_fail(x, NULL, path, "out of memory");
}

/* conf_secret - note that the file holds a secret at PATH (§9) */
static void conf_secret(struct conf_ctx *x, const char *path)
{
	if (!x->c->has_secrets)
		snprintf(x->c->secret_key, sizeof x->c->secret_key, "%s", path);
	x->c->has_secrets = true;
}

/* conf_type_name - "an integer", "a string"... for S, in messages */
static const char *conf_type_name(const config_setting_t *s)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_GROUP:
		return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a float";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_ARRAY:
		return "an array";
	case CONFIG_TYPE_LIST:
		return "a list";
	default:
		return "nothing";
	}
}

/* conf_fmt - snprintf for key paths, where cutting a very long path short is fine */
static void conf_fmt(char *buf, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void conf_fmt(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, n, fmt, ap);
	va_end(ap);
}

/* conf_join - PATH.NAME (or NAME at the top) into BUF */
static void conf_join(char *buf, size_t n, const char *path, const char *name)
{
	if (*path != '\0')
		conf_fmt(buf, n, "%s.%s", path, name);
	else
		conf_fmt(buf, n, "%s", name);
}

/* conf_names_join - "a, b or c" from a NULL-terminated list, into BUF */
static const char *conf_names_join(char *buf, size_t n, const char *const *names)
{
	size_t len = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; names[i] != NULL && len < n; i++)
		len += (size_t)snprintf(buf + len, n - len, "%s%s", i == 0 ? "" :
		    names[i + 1] == NULL ? " or " : ", ", names[i]);
	return buf;
}

/* conf_name_index - index of S in NAMES, or -1 */
static int conf_name_index(const char *const *names, const char *s)
{
	int i;

	for (i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

/* ---- small value checks ---------------------------------------------------------------- */

/* conf_field - the field of K in BASE */
static void *conf_field(const struct conf_key *k, void *base)
{
	return (char *)base + k->off;
}

/* conf_str - the string field of K in BASE */
static const char *conf_str(const struct conf_key *k, void *base)
{
	const char *s;

	memcpy(&s, conf_field(k, base), sizeof s);
	return s;
}

/* conf_id_ok - whether S is a client or provider id: [A-Za-z0-9_.-]{1,64} */
static bool conf_id_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/* conf_weburl - check S begins with one of SCHEMES ("http://"...) and has a host; a
 * password in it is a secret */
static int conf_weburl(struct conf_ctx *x, const config_setting_t *s, const char *path,
    const char *v, const char *const *schemes)
{
	char list[64];
	const char *rest = NULL, *end, *at, *colon;
	int i;

	for (i = 0; schemes[i] != NULL; i++)
		if (strncasecmp(v, schemes[i], strlen(schemes[i])) == 0)
			rest = v + strlen(schemes[i]);
	if (rest == NULL)
		return conf_fail(x, s, path, "URL must begin with %s",
		    conf_names_join(list, sizeof list, schemes));
	end = rest + strcspn(rest, "/?#");
	at = memrchr(rest, '@', (size_t)(end - rest));
	if (at != NULL) {
		colon = memchr(rest, ':', (size_t)(at - rest));
		if (colon != NULL && colon + 1 < at)
			conf_secret(x, path);
		rest = at + 1;
	}
	if (rest == end || *rest == ':')
		return conf_fail(x, s, path, "URL has no host");
	if (strchr(v, ' ') != NULL)
		return conf_fail(x, s, path, "URL holds a space (percent-encode it)");
	return 0;
}

/* ---- checks named in the tables ---------------------------------------------------------- */

/* conf_check_amqp - broker.url: an amqp:// or amqps:// URL (url_parse) */
static int conf_check_amqp(struct conf_ctx *x, const struct conf_key *k, const config_setting_t *s,
    const char *path, void *base)
{
	struct conf_broker *b = base;
	char why[CONF_WHY_MAX];

	if (url_parse(b->url, &b->parsed, why, sizeof why) < 0)
		return conf_fail(x, s, path, "%s", why);
	if (strcmp(b->parsed.scheme, "amqp") != 0 && strcmp(b->parsed.scheme, "amqps") != 0)
		return conf_fail(x, s, path, "scheme must be amqp or amqps, not %s", b->parsed.scheme);
	if (b->parsed.password[0] != '\0')
		conf_secret(x, path);
	(void)k;
	return 0;
}

/* conf_check_mysql - mysql.url: a mysql:// URL (url_parse) */
static int conf_check_mysql(struct conf_ctx *x, const struct conf_key *k, const config_setting_t *s,
    const char *path, void *base)
{
	struct conf_mysql *m = base;
	char why[CONF_WHY_MAX];

	if (url_parse(m->url, &m->parsed, why, sizeof why) < 0)
		return conf_fail(x, s, path, "%s", why);
	if (strcmp(m->parsed.scheme, "mysql") != 0 && strcmp(m->parsed.scheme, "mysqls") != 0)
		return conf_fail(x, s, path, "scheme must be mysql or mysqls, not %s", m->parsed.scheme);
	if (m->parsed.password[0] != '\0')
		conf_secret(x, path);
	(void)k;
	return 0;
}

/* conf_check_http - an http:// or https:// URL */
static int conf_check_http(struct conf_ctx *x, const struct conf_key *k, const config_setting_t *s,
    const char *path, void *base)
{
	static const char *const schemes[] = { "http://", "https://", NULL };

	return conf_weburl(x, s, path, conf_str(k, base), schemes);
}

/* conf_check_smtp - an smtp:// (STARTTLS) or smtps:// URL */
static int conf_check_smtp(struct conf_ctx *x, const struct conf_key *k, const config_setting_t *s,
    const char *path, void *base)
{
	static const char *const schemes[] = { "smtp://", "smtps://", NULL };

	return conf_weburl(x, s, path, conf_str(k, base), schemes);
}

/* conf_check_email - an address ("a@b" or "Name <a@b>") */
static int conf_check_email(struct conf_ctx *x, const struct conf_key *k, const config_setting_t *s,
    const char *path, void *base)
{
	if (strchr(conf_str(k, base), '@') == NULL)
		return conf_fail(x, s, path, "not an email address");
	return 0;
}

/* conf_check_abspath - an absolute path (heraldd changes directory to /) */
static int conf_check_abspath(struct conf_ctx *x, const struct conf_key *k,
    const config_setting_t *s, const char *path, void *base)
{
	if (conf_str(k, base)[0] != '/')
		return conf_fail(x, s, path, "must be an absolute path");
	return 0;
}

/* conf_loopback - whether HOST[0..LEN) ("[v6]" with brackets) is localhost or a loopback
 * address */
static bool conf_loopback(const char *host, size_t len)
{
	char h[64];
	struct in_addr a4;
	struct in6_addr a6;

	if (len == 0 || len >= sizeof h)
		return false;
	memcpy(h, host, len);
	h[len] = '\0';
	if (strcmp(h, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, h, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (len > 2 && h[0] == '[' && h[len - 1] == ']') {
		h[len - 1] = '\0';
		return inet_pton(AF_INET6, h + 1, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
	}
	return false;
}

/* conf_check_listen - "host:port", "[v6]:port" on a loopback address, or "" (off) */
static int conf_check_listen(struct conf_ctx *x, const struct conf_key *k,
    const config_setting_t *s, const char *path, void *base)
{
	const char *v = conf_str(k, base), *colon = strrchr(v, ':');
	char *end;
	long port;

	if (*v == '\0')
		return 0;
	if (colon == NULL || colon == v)
		return conf_fail(x, s, path, "expected HOST:PORT");
	if (v[0] == '[' && colon[-1] != ']')
		return conf_fail(x, s, path, "expected [IPV6]:PORT");
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 1 || port > 65535)
		return conf_fail(x, s, path, "port must be 1..65535");
	if (!conf_loopback(v, (size_t)(colon - v)))
		return conf_fail(x, s, path, "%.*s is not a loopback address (127.0.0.0/8, [::1] or "
		    "localhost): the metrics are served without authentication", (int)(colon - v), v);
	return 0;
}

/* conf_check_secret_len - a signing secret of at least 16 bytes */
static int conf_check_secret_len(struct conf_ctx *x, const struct conf_key *k,
    const config_setting_t *s, const char *path, void *base)
{
	if (strlen(conf_str(k, base)) < 16)
		return conf_fail(x, s, path, "too short: at least 16 characters");
	return 0;
}

/* conf_check_headers - http headers: "Name: value"; auth-looking headers are secrets */
static int conf_check_headers(struct conf_ctx *x, const struct conf_key *k,
    const config_setting_t *s, const char *path, void *base)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~0123456789"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	const struct conf_strlist *l = conf_field(k, base);
	char name[128];
	size_t i, n;

	for (i = 0; i < l->n; i++) {
		n = strspn(l->v[i], tchar);
		if (n == 0 || l->v[i][n] != ':' || n >= sizeof name)
			return conf_fail(x, config_setting_get_elem(s, (unsigned)i), path,
			    "header %zu: expected \"Name: value\"", i + 1);
		memcpy(name, l->v[i], n);
		name[n] = '\0';
		if (strcasestr(name, "auth") || strcasestr(name, "key") ||
		    strcasestr(name, "token") || strcasestr(name, "secret"))
			conf_secret(x, path);
	}
	return 0;
}

/* conf_check_tiers - retry.tiers: 1 s .. 30 days, strictly increasing */
static int conf_check_tiers(struct conf_ctx *x, const struct conf_key *k,
    const config_setting_t *s, const char *path, void *base)
{
	const struct conf_intlist *l = conf_field(k, base);
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (l->v[i] < 1 || l->v[i] > 2592000)
			return conf_fail(x, s, path, "tier %zu: out of range (1..2592000 s)", i + 1);
		if (i > 0 && l->v[i] <= l->v[i - 1])
			return conf_fail(x, s, path, "tier %zu: must be greater than tier %zu", i + 1, i);
	}
	return 0;
}

/* conf_check_tls - broker.tls: cert_file and key_file come together */
static int conf_check_tls(struct conf_ctx *x, const struct conf_key *k, const config_setting_t *s,
    const char *path, void *base)
{
	const struct conf_tls *t = conf_field(k, base);

	if ((t->cert_file == NULL) != (t->key_file == NULL))
		return conf_fail(x, s, path, "cert_file and key_file go together");
	return 0;
}

/* conf_check_mysql_tls - mysql.tls: as broker.tls; the group being there asks for TLS */
static int conf_check_mysql_tls(struct conf_ctx *x, const struct conf_key *k,
    const config_setting_t *s, const char *path, void *base)
{
	struct conf_tls *t = conf_field(k, base);

	if (conf_check_tls(x, k, s, path, base) < 0)
		return -1;
	t->on = true;
	return 0;
}

/* conf_check_log - log: a file or syslog, not both */
static int conf_check_log(struct conf_ctx *x, const struct conf_key *k, const config_setting_t *s,
    const char *path, void *base)
{
	const struct conf_log *l = conf_field(k, base);

	if (l->file != NULL && l->syslog >= 0)
		return conf_fail(x, s, path, "file and syslog exclude each other");
	return 0;
}

/* conf_check_limits - limits: metadata fits in a request */
static int conf_check_limits(struct conf_ctx *x, const struct conf_key *k,
    const config_setting_t *s, const char *path, void *base)
{
	const struct conf_limits *l = conf_field(k, base);

	if (l->metadata_max > l->request_max)
		return conf_fail(x, s, path, "metadata_max exceeds request_max");
	return 0;
}

/* conf_check_autoscale - autoscale: a gap between growing and shrinking (the hysteresis) */
static int conf_check_autoscale(struct conf_ctx *x, const struct conf_key *k,
    const config_setting_t *s, const char *path, void *base)
{
	const struct conf_autoscale *a = conf_field(k, base);

	if (a->down_depth >= a->up_depth)
		return conf_fail(x, s, path, "down_depth must be below up_depth");
	return 0;
}

/* conf_check_secrets - webhook secrets: none empty */
static int conf_check_secrets(struct conf_ctx *x, const struct conf_key *k,
    const config_setting_t *s, const char *path, void *base)
{
	const struct conf_strlist *l = conf_field(k, base);
	size_t i;

	for (i = 0; i < l->n; i++)
		if (l->v[i][0] == '\0')
			return conf_fail(x, s, path, "secret %zu is empty", i + 1);
	return 0;
}

/* conf_check_provider - one provider: a name, and what its type needs */
static int conf_check_provider(struct conf_ctx *x, const struct conf_key *k,
    const config_setting_t *s, const char *path, void *base)
{
	struct conf_provider *p = base;
	char sub[CONF_KEY_MAX];

	(void)k;
	if (p->name == NULL) {
		p->name = strdup(conf_prov_names[p->type]);
		if (p->name == NULL)
			return conf_oom(x, path);
	} else if (!conf_id_ok(p->name)) {
		conf_join(sub, sizeof sub, path, "name");
		return conf_fail(x, config_setting_get_member(s, "name"), sub,
		    "must be 1-64 of A-Z a-z 0-9 _ . -");
	}
	if (p->type != CONF_PROV_HTTP)
		return 0;
	if (p->url == NULL && p->preset != CONF_PRESET_TWILIO)
		return conf_fail(x, s, path, "url: required (or preset = \"twilio\")");
	if (p->auth == CONF_AUTH_BASIC && (p->username == NULL || p->password == NULL))
		return conf_fail(x, s, path, "auth = \"basic\" needs username and password");
	if (p->auth == CONF_AUTH_BEARER && p->token == NULL)
		return conf_fail(x, s, path, "auth = \"bearer\" needs token");
	if (p->preset == CONF_PRESET_TWILIO && (p->username == NULL || p->password == NULL))
		return conf_fail(x, s, path, "preset = \"twilio\" needs username (account SID) "
		    "and password (auth token)");
	return 0;
}

/* conf_check_chan - a channel: autoscale bounds, provider types and unique names */
static int conf_check_chan(struct conf_ctx *x, const struct conf_key *k, const config_setting_t *s,
    const char *path, void *base)
{
	const struct conf_channel *ch = conf_field(k, base);
	const config_setting_t *ps = config_setting_get_member(s, "providers");
	char sub[CONF_KEY_MAX];
	size_t i, j;

	if (ch->workers_max > 0 && (ch->workers_min < 1 || ch->workers_min > ch->workers_max ||
	    ch->workers < ch->workers_min || ch->workers > ch->workers_max))
		return conf_fail(x, s, path, "autoscale needs 1 <= workers_min <= workers <= "
		    "workers_max");
	if (ch->workers_max == 0 && ch->workers_min > 0)
		return conf_fail(x, s, path, "workers_min without workers_max");
	for (i = 0; i < ch->nproviders; i++) {
		const config_setting_t *e = ps ? config_setting_get_elem(ps, (unsigned)i) : s;

		conf_fmt(sub, sizeof sub, "%s.providers[%zu]", path, i);
		if (!(conf_chan_provs[k->variant] & PT(ch->providers[i].type)))
			return conf_fail(x, e, sub, "provider type %s does not serve channel %s",
			    conf_prov_names[ch->providers[i].type], k->name);
		for (j = 0; j < i; j++)
			if (strcmp(ch->providers[i].name, ch->providers[j].name) == 0)
				return conf_fail(x, e, sub, "duplicate provider name \"%s\"",
				    ch->providers[i].name);
	}
	return 0;
}

/* conf_name_category - a category name: [a-z0-9_]{1,32}, not a channel name */
static int conf_name_category(const char *name, char *why, size_t n)
{
	size_t len = strlen(name);

	if (len == 0 || len > 32 || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != len) {
		snprintf(why, n, "category names are 1-32 of a-z 0-9 _");
		return -1;
	}
	if (conf_channel_parse(name) >= 0) {
		snprintf(why, n, "a category may not be named after a channel");
		return -1;
	}
	return 0;
}

/* conf_name_client - a client id usable as a group name */
static int conf_name_client(const char *name, char *why, size_t n)
{
	if (!conf_id_ok(name)) {
		snprintf(why, n, "client ids are 1-64 of A-Z a-z 0-9 _ . -");
		return -1;
	}
	return 0;
}

/* conf_category_init - the built-in categories' defaults (§2, §4) */
static void conf_category_init(void *el, const char *name)
{
	struct conf_category *cat = el;

	if (strcmp(name, "transactional") == 0) {
		cat->priority = 8;
		cat->cap_exempt = true;
		cat->quiet_hours = false;
	} else if (strcmp(name, "marketing") == 0) {
		cat->priority = 1;
	}
}

/* ---- array helpers ------------------------------------------------------------------------ */

/* conf_arr - the array pointer of K in BASE */
static void *conf_arr(const struct conf_key *k, void *base)
{
	void *p;

	memcpy(&p, conf_field(k, base), sizeof p);
	return p;
}

/* conf_arr_n - the element count of K in BASE */
static size_t *conf_arr_n(const struct conf_key *k, void *base)
{
	return (size_t *)(void *)((char *)base + k->noff);
}

/* conf_arr_add - append a zeroed element of SIZE to K's array in BASE; NULL when out of memory */
static void *conf_arr_add(const struct conf_key *k, void *base, size_t size)
{
	size_t *n = conf_arr_n(k, base);
	char *p = realloc(conf_arr(k, base), (*n + 1) * size);

	if (p == NULL)
		return NULL;
	memcpy(conf_field(k, base), &p, sizeof p);
	memset(p + *n * size, 0, size);
	return p + (*n)++ * size;
}

/* conf_strs_free - free a string list */
static void conf_strs_free(struct conf_strlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* conf_strs_get - S (array or list of strings) into L, with the string checks of K */
static int conf_strs_get(struct conf_ctx *x, const struct conf_key *k, const config_setting_t *s,
    const char *path, struct conf_strlist *l);

/* ---- custom keys -------------------------------------------------------------------------- */

/* conf_users_parse - broker.users { BROKERUSER = ["client", ...]; ... } */
static int conf_users_parse(struct conf_ctx *x, const struct conf_key *k, const config_setting_t *s,
    const char *path, void *base)
{
	static const struct conf_key ids = { .name = "clients", .kind = CONF_K_STRS, .min = 1,
	    .max = 256 };
	struct conf_broker_user *u;
	char sub[CONF_KEY_MAX];
	int i, n = config_setting_length(s);
	size_t j;

	if (config_setting_type(s) != CONFIG_TYPE_GROUP)
		return conf_fail(x, s, path, "expected a group of USER = [\"client\", ...], got %s",
		    conf_type_name(s));
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		conf_join(sub, sizeof sub, path, config_setting_name(e));
		u = conf_arr_add(k, base, sizeof *u);
		if (u == NULL || (u->name = strdup(config_setting_name(e))) == NULL)
			return conf_oom(x, sub);
		if (conf_strs_get(x, &ids, e, sub, &u->clients) < 0)
			return -1;
		for (j = 0; j < u->clients.n; j++)
			if (!conf_id_ok(u->clients.v[j]))
				return conf_fail(x, e, sub, "client %zu: ids are 1-64 of "
				    "A-Z a-z 0-9 _ . -", j + 1);
	}
	return 0;
}

/* conf_users_fin - free broker.users */
static void conf_users_fin(const struct conf_key *k, void *base)
{
	struct conf_broker_user *u = conf_arr(k, base);
	size_t i, *n = conf_arr_n(k, base);

	for (i = 0; i < *n; i++) {
		free(u[i].name);
		conf_strs_free(&u[i].clients);
	}
	free(u);
	memset(conf_field(k, base), 0, sizeof(void *));
	*n = 0;
}

/* conf_pref_add - append KEY = ON to preferences.defaults */
static int conf_pref_add(struct conf_ctx *x, const struct conf_key *k, void *base,
    const char *key, bool on, const char *path)
{
	struct conf_pref *p = conf_arr_add(k, base, sizeof *p);

	if (p == NULL || (p->key = strdup(key)) == NULL)
		return conf_oom(x, path);
	p->on = on;
	return 0;
}

/* conf_prefs_parse - preferences.defaults: KEY = bool, or CATEGORY = { CHANNEL = bool; } */
static int conf_prefs_parse(struct conf_ctx *x, const struct conf_key *k, const config_setting_t *s,
    const char *path, void *base)
{
	char sub[CONF_KEY_MAX], sub2[CONF_KEY_MAX], key[CONF_KEY_MAX];
	int i, j, n = config_setting_length(s);

	if (config_setting_type(s) != CONFIG_TYPE_GROUP)
		return conf_fail(x, s, path, "expected a group, got %s", conf_type_name(s));
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *name = config_setting_name(e);
		bool cat = conf_category_find(x->c, name) != NULL;

		conf_join(sub, sizeof sub, path, name);
		if (config_setting_type(e) == CONFIG_TYPE_BOOL) {
			if (!cat && conf_channel_parse(name) < 0)
				return conf_fail(x, e, sub, "not a channel or configured category");
			if (conf_pref_add(x, k, base, name, config_setting_get_bool(e), sub) < 0)
				return -1;
			continue;
		}
		if (config_setting_type(e) != CONFIG_TYPE_GROUP)
			return conf_fail(x, e, sub, "expected true, false or a group of CHANNEL = "
			    "true|false, got %s", conf_type_name(e));
		if (!cat)
			return conf_fail(x, e, sub, "not a configured category");
		for (j = 0; j < config_setting_length(e); j++) {
			const config_setting_t *c = config_setting_get_elem(e, (unsigned)j);

			conf_join(sub2, sizeof sub2, sub, config_setting_name(c));
			if (conf_channel_parse(config_setting_name(c)) < 0)
				return conf_fail(x, c, sub2, "not a channel");
			if (config_setting_type(c) != CONFIG_TYPE_BOOL)
				return conf_fail(x, c, sub2, "expected true or false, got %s",
				    conf_type_name(c));
			conf_fmt(key, sizeof key, "%s.%s", name, config_setting_name(c));
			if (conf_pref_add(x, k, base, key, config_setting_get_bool(c), sub2) < 0)
				return -1;
		}
	}
	return 0;
}

/* conf_prefs_fin - free preferences.defaults */
static void conf_prefs_fin(const struct conf_key *k, void *base)
{
	struct conf_pref *p = conf_arr(k, base);
	size_t i, *n = conf_arr_n(k, base);

	for (i = 0; i < *n; i++)
		free(p[i].key);
	free(p);
	memset(conf_field(k, base), 0, sizeof(void *));
	*n = 0;
}

/* conf_qh_init - quiet_hours.channels default: sms and push */
static int conf_qh_init(struct conf_ctx *x, const struct conf_key *k, void *base, int variant)
{
	bool *on = conf_field(k, base);

	(void)x;
	(void)variant;
	memset(on, 0, CONF_CHANNELS * sizeof *on);
	on[CONF_CH_SMS] = on[CONF_CH_PUSH] = true;
	return 0;
}

/* conf_qh_parse - quiet_hours.channels = ["sms", ...] */
static int conf_qh_parse(struct conf_ctx *x, const struct conf_key *k, const config_setting_t *s,
    const char *path, void *base)
{
	static const struct conf_key names = { .name = "channels", .kind = CONF_K_STRS, .max = 4 };
	struct conf_strlist l = { NULL, 0 };
	bool *on = conf_field(k, base);
	size_t i;
	int ch;

	if (conf_strs_get(x, &names, s, path, &l) < 0) {
		conf_strs_free(&l);
		return -1;
	}
	memset(on, 0, CONF_CHANNELS * sizeof *on);
	for (i = 0; i < l.n; i++) {
		ch = conf_channel_parse(l.v[i]);
		if (ch < 0 || on[ch]) {
			conf_fail(x, s, path, "\"%s\": %s", l.v[i], ch < 0 ? "not a channel" :
			    "listed twice");
			conf_strs_free(&l);
			return -1;
		}
		on[ch] = true;
	}
	conf_strs_free(&l);
	return 0;
}

/* conf_syslog_init - log.syslog default: off */
static int conf_syslog_init(struct conf_ctx *x, const struct conf_key *k, void *base, int variant)
{
	(void)x;
	(void)variant;
	*(int *)conf_field(k, base) = -1;
	return 0;
}

/* conf_syslog_parse - log.syslog = false | true (daemon) | "facility" */
static int conf_syslog_parse(struct conf_ctx *x, const struct conf_key *k,
    const config_setting_t *s, const char *path, void *base)
{
	static const struct { const char *name; int fac; } fac[] = {
		{ "auth", LOG_AUTH }, { "authpriv", LOG_AUTHPRIV }, { "cron", LOG_CRON },
		{ "daemon", LOG_DAEMON }, { "ftp", LOG_FTP }, { "lpr", LOG_LPR },
		{ "mail", LOG_MAIL }, { "news", LOG_NEWS }, { "syslog", LOG_SYSLOG },
		{ "user", LOG_USER }, { "uucp", LOG_UUCP }, { "local0", LOG_LOCAL0 },
		{ "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 },
		{ "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 }, { "local6", LOG_LOCAL6 },
		{ "local7", LOG_LOCAL7 },
	};
	int *out = conf_field(k, base);
	const char *v;
	size_t i;

	if (config_setting_type(s) == CONFIG_TYPE_BOOL) {
		*out = config_setting_get_bool(s) ? LOG_DAEMON : -1;
		return 0;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return conf_fail(x, s, path, "expected a facility name or false, got %s",
		    conf_type_name(s));
	v = config_setting_get_string(s);
	for (i = 0; i < sizeof fac / sizeof fac[0]; i++)
		if (strcmp(v, fac[i].name) == 0) {
			*out = fac[i].fac;
			return 0;
		}
	return conf_fail(x, s, path, "unknown facility (daemon, user, mail, local0..local7...)");
}

/* conf_prov_default - channels.webhook.providers default: one "webhook" provider (§12) */
static int conf_prov_default(struct conf_ctx *x, const struct conf_key *k, void *base, int variant);

/* ---- the tables ---------------------------------------------------------------------------- */

static const struct conf_key conf_tls_keys[] = {
	KSTR("ca_file", struct conf_tls, ca_file),
	KSTR("cert_file", struct conf_tls, cert_file),
	KSTR("key_file", struct conf_tls, key_file),
	KBOOL("verify", struct conf_tls, verify, true),
	KEND
};

static const struct conf_key conf_broker_keys[] = {
	KSTR("url", struct conf_broker, url, .check = conf_check_amqp),
	KINT("prefetch", struct conf_broker, prefetch, 1, 65535, 50),
	KINT("heartbeat", struct conf_broker, heartbeat, 0, 3600, 30),
	KINT("connect_timeout", struct conf_broker, connect_timeout, 1, 3600, 10),
	KINT("confirm_timeout", struct conf_broker, confirm_timeout, 1, 3600, 30),
	KINT("blocked_timeout", struct conf_broker, blocked_timeout, 1, 3600, 30),
	KGROUP("tls", struct conf_broker, tls, conf_tls_keys, .check = conf_check_tls),
	KCUSTOM("users", struct conf_broker, users, conf_users_parse,
	    .noff = offsetof(struct conf_broker, nusers), .fin = conf_users_fin),
	KEND
};

static const struct conf_key conf_mysql_keys[] = {
	KSTR("url", struct conf_mysql, url, .check = conf_check_mysql),
	KINT("connect_timeout", struct conf_mysql, connect_timeout, 1, 3600, 10),
	KINT("read_timeout", struct conf_mysql, read_timeout, 1, 3600, 30),
	KINT("write_timeout", struct conf_mysql, write_timeout, 1, 3600, 30),
	KGROUP("tls", struct conf_mysql, tls, conf_tls_keys, .check = conf_check_mysql_tls),
	KEND
};

static const struct conf_key conf_log_keys[] = {
	KENUM("level", struct conf_log, level, conf_level_names, LOG_LEVEL_INFO),
	KSTR("file", struct conf_log, file, .check = conf_check_abspath),
	KCUSTOM("syslog", struct conf_log, syslog, conf_syslog_parse, .init = conf_syslog_init),
	KEND
};

static const struct conf_key conf_limits_keys[] = {
	KINT("request_max", struct conf_limits, request_max, 1024, 16777216, 65536),
	KINT("metadata_max", struct conf_limits, metadata_max, 0, 1048576, 2048),
	KINT("sms_body_max", struct conf_limits, sms_body_max, 1, 100000, 1600),
	KINT("push_payload_max", struct conf_limits, push_payload_max, 256, 65536, 4096),
	KEND
};

static const struct conf_key conf_category_keys[] = {
	KINT("priority", struct conf_category, priority, 0, 9, 4),
	KBOOL("cap_exempt", struct conf_category, cap_exempt, false),
	KENUM("cap_policy", struct conf_category, cap_policy, conf_policy_names, CONF_CAP_DROP),
	KBOOL("quiet_hours", struct conf_category, quiet_hours, true),
	KEND
};

static const struct conf_key conf_retry_keys[] = {
	KINTS("tiers", struct conf_retry, tiers, 1, 20, conf_tiers_default, .check = conf_check_tiers),
	KEND
};

static const struct conf_key conf_idempotency_keys[] = {
	KINT("window", struct conf_idempotency, window, 60, 2592000, 86400),
	KEND
};

static const struct conf_key conf_preferences_keys[] = {
	KCUSTOM("defaults", struct conf_preferences, defaults, conf_prefs_parse,
	    .noff = offsetof(struct conf_preferences, ndefaults), .fin = conf_prefs_fin),
	KEND
};

static const struct conf_key conf_quiet_hours_keys[] = {
	KCUSTOM("channels", struct conf_quiet_hours, channels, conf_qh_parse, .init = conf_qh_init),
	KEND
};

static const struct conf_key conf_caps_keys[] = {
	KCOUNT("email", CONF_CH_EMAIL, 0, 3),
	KCOUNT("sms", CONF_CH_SMS, 0, 2),
	KCOUNT("push", CONF_CH_PUSH, 0, 5),
	KCOUNT("webhook", CONF_CH_WEBHOOK, 0, 0),
	KEND
};

static const struct conf_key conf_client_caps_keys[] = {
	KCOUNT("email", CONF_CH_EMAIL, 0, -1),
	KCOUNT("sms", CONF_CH_SMS, 0, -1),
	KCOUNT("push", CONF_CH_PUSH, 0, -1),
	KCOUNT("webhook", CONF_CH_WEBHOOK, 0, -1),
	KEND
};

static const struct conf_key conf_quota_keys[] = {
	KCOUNT("email", CONF_CH_EMAIL, 0, 0),
	KCOUNT("sms", CONF_CH_SMS, 0, 0),
	KCOUNT("push", CONF_CH_PUSH, 0, 0),
	KCOUNT("webhook", CONF_CH_WEBHOOK, 0, 0),
	KEND
};

#define PV struct conf_provider
#define P_HTTPISH \
	(PT(CONF_PROV_HTTP) | PT(CONF_PROV_FCM) | PT(CONF_PROV_APNS) | PT(CONF_PROV_WEBHOOK))
static const struct conf_key conf_provider_keys[] = {
	KSTR("name", PV, name),
	KENUM("type", PV, type, conf_prov_names, 0, .flags = CONF_F_REQ | CONF_F_VARIANT),
	KINT("timeout", PV, timeout, 1, 600, 30, .only = PT(CONF_PROV_SMTP)),
	KINT("timeout", PV, timeout, 1, 600, 10, .only = P_HTTPISH),
	/* smtp */
	KSTR("url", PV, url, .only = PT(CONF_PROV_SMTP), .flags = CONF_F_REQ, .check = conf_check_smtp),
	KSTR("username", PV, username, .only = PT(CONF_PROV_SMTP) | PT(CONF_PROV_HTTP)),
	KSTR("password", PV, password, .only = PT(CONF_PROV_SMTP) | PT(CONF_PROV_HTTP),
	    .flags = CONF_F_SECRET),
	KBOOL("starttls", PV, starttls, true, .only = PT(CONF_PROV_SMTP)),
	KSTR("from", PV, from, .only = PT(CONF_PROV_SMTP), .check = conf_check_email),
	KSTR("reply_to", PV, reply_to, .only = PT(CONF_PROV_SMTP), .check = conf_check_email),
	/* http (generic SMS) */
	KSTR("url", PV, url, .only = PT(CONF_PROV_HTTP), .check = conf_check_http),
	KENUM("method", PV, method, conf_method_names, CONF_HTTP_POST, .only = PT(CONF_PROV_HTTP)),
	KSTRS("headers", PV, headers, 0, 32, .only = PT(CONF_PROV_HTTP), .check = conf_check_headers),
	KSTR("body", PV, body, .only = PT(CONF_PROV_HTTP), .flags = CONF_F_TEXT, .max = 65536),
	KENUM("content_type", PV, content_type, conf_content_names, CONF_HTTP_FORM,
	    .only = PT(CONF_PROV_HTTP)),
	KENUM("auth", PV, auth, conf_auth_names, CONF_AUTH_NONE, .only = PT(CONF_PROV_HTTP)),
	KSTR("token", PV, token, .only = PT(CONF_PROV_HTTP), .flags = CONF_F_SECRET),
	KENUM("preset", PV, preset, conf_preset_names, CONF_PRESET_NONE, .only = PT(CONF_PROV_HTTP)),
	/* fcm */
	KSTR("service_account_file", PV, service_account_file, .only = PT(CONF_PROV_FCM),
	    .flags = CONF_F_REQ),
	KSTR("token_url", PV, token_url, .only = PT(CONF_PROV_FCM), .check = conf_check_http),
	KSTR("project_id", PV, project_id, .only = PT(CONF_PROV_FCM)),
	KSTR("url", PV, url, .only = PT(CONF_PROV_FCM), .defs = "https://fcm.googleapis.com",
	    .check = conf_check_http),
	/* apns */
	KSTR("key_file", PV, key_file, .only = PT(CONF_PROV_APNS), .flags = CONF_F_REQ),
	KSTR("key_id", PV, key_id, .only = PT(CONF_PROV_APNS), .flags = CONF_F_REQ),
	KSTR("team_id", PV, team_id, .only = PT(CONF_PROV_APNS), .flags = CONF_F_REQ),
	KSTR("topic", PV, topic, .only = PT(CONF_PROV_APNS), .flags = CONF_F_REQ),
	KSTR("url", PV, url, .only = PT(CONF_PROV_APNS), .defs = "https://api.push.apple.com",
	    .check = conf_check_http),
	/* every type */
	KSTR("ca_file", PV, ca_file),
	/* http: the answer's JSON field (dotted path) holding the provider's message id */
	KSTR("message_id_field", PV, message_id_field, .only = PT(CONF_PROV_HTTP)),
	/* webhook */
	KSTRS("secrets", PV, secrets, 1, 2, .only = PT(CONF_PROV_WEBHOOK), .flags = CONF_F_SECRET,
	    .check = conf_check_secrets),
	KEND
};
#undef PV

static const struct conf_key conf_chan_keys[] = {
	KINT("workers", struct conf_channel, workers, 0, 256, 2),
	KINT("workers_min", struct conf_channel, workers_min, 0, 256, 0),
	KINT("workers_max", struct conf_channel, workers_max, 0, 256, 0),
	KINT("rate", struct conf_channel, rate, 0, 1000000, 0),
	KINT("in_flight", struct conf_channel, in_flight, 1, 65535, 1),
	KBOOL("allow_private", struct conf_channel, allow_private, false, .only = PT(CONF_CH_WEBHOOK)),
	KBOOL("tls_verify", struct conf_channel, tls_verify, true),
	KLIST("providers", struct conf_channel, providers, nproviders, struct conf_provider,
	    conf_provider_keys, .what = "provider type", .elcheck = conf_check_provider,
	    .init = conf_prov_default),
	KEND
};

static const struct conf_key conf_channels_keys[] = {
	KCHAN("email", CONF_CH_EMAIL),
	KCHAN("sms", CONF_CH_SMS),
	KCHAN("push", CONF_CH_PUSH),
	KCHAN("webhook", CONF_CH_WEBHOOK),
	KEND
};

static const struct conf_key conf_client_keys[] = {
	KSTR("email_from", struct conf_client, email_from, .check = conf_check_email),
	KSTR("reply_to", struct conf_client, reply_to, .check = conf_check_email),
	KSTR("sms_sender", struct conf_client, sms_sender, .max = 32),
	KSTRS("webhook_secrets", struct conf_client, webhook_secrets, 1, 2, .flags = CONF_F_SECRET,
	    .check = conf_check_secrets),
	KGROUP("caps", struct conf_client, caps, conf_client_caps_keys),
	KGROUP("quotas", struct conf_client, quotas, conf_quota_keys),
	KEND
};

static const struct conf_key conf_sender_keys[] = {
	KSTR("email_from", struct conf_sender, email_from, .check = conf_check_email),
	KSTR("reply_to", struct conf_sender, reply_to, .check = conf_check_email),
	KSTR("sms_sender", struct conf_sender, sms_sender, .max = 32),
	KEND
};

static const struct conf_key conf_unsubscribe_keys[] = {
	KSTR("secret", struct conf_unsubscribe, secret, .flags = CONF_F_SECRET,
	    .check = conf_check_secret_len),
	KSTR("url", struct conf_unsubscribe, url, .check = conf_check_http),
	KINT("ttl", struct conf_unsubscribe, ttl, 3600, 315360000, 7776000),
	KEND
};

static const struct conf_key conf_metrics_keys[] = {
	KSTR("listen", struct conf_metrics, listen, .defs = "127.0.0.1:9464",
	    .check = conf_check_listen),
	KINT("depth_interval", struct conf_metrics, depth_interval, 1, 3600, 5),
	KEND
};

static const struct conf_key conf_autoscale_keys[] = {
	KINT("interval", struct conf_autoscale, interval, 1, 3600, 10),
	KINT("up_depth", struct conf_autoscale, up_depth, 1, 100000000, 100),
	KINT("down_depth", struct conf_autoscale, down_depth, 0, 100000000, 0),
	KINT("sustain", struct conf_autoscale, sustain, 1, 100, 3),
	KINT("cooldown", struct conf_autoscale, cooldown, 0, 86400, 60),
	KEND
};

static const struct conf_key conf_heraldd_keys[] = {
	KSTR("user", struct conf_heraldd, user, .defs = "herald"),
	KSTR("group", struct conf_heraldd, group),
	KSTR("pidfile", struct conf_heraldd, pidfile, .check = conf_check_abspath),
	KSTR("control", struct conf_heraldd, control, .defs = "/run/herald/heraldd.sock",
	    .check = conf_check_abspath),
	KINT("grace", struct conf_heraldd, grace, 1, 3600, 30),
	KBOOL("daemonize", struct conf_heraldd, daemonize, false),
	KINT("respawn_backoff_max", struct conf_heraldd, respawn_backoff_max, 1, 3600, 60),
	KEND
};

static const struct conf_key conf_scheduler_keys[] = {
	KINT("interval", struct conf_scheduler, interval, 1, 3600, 5),
	KEND
};

static const struct conf_key conf_ledger_keys[] = {
	KINT("batch", struct conf_ledger, batch, 1, 10000, 500),
	KINT("flush_ms", struct conf_ledger, flush_ms, 10, 60000, 200),
	KEND
};

static const struct conf_key conf_retention_keys[] = {
	KINT("days", struct conf_retention, days, 1, 36500, 90),
	KEND
};

/* Top level, in parse order: categories before preferences (which names them). */
static const struct conf_key conf_keys[] = {
	KGROUP("broker", struct conf, broker, conf_broker_keys),
	KGROUP("mysql", struct conf, mysql, conf_mysql_keys),
	KGROUP("log", struct conf, log, conf_log_keys, .check = conf_check_log),
	KGROUP("limits", struct conf, limits, conf_limits_keys, .check = conf_check_limits),
	KMAP("categories", struct conf, categories, ncategories, struct conf_category,
	    conf_category_keys, .names = conf_category_builtin, .namecheck = conf_name_category,
	    .elinit = conf_category_init),
	KGROUP("retry", struct conf, retry, conf_retry_keys),
	KGROUP("idempotency", struct conf, idempotency, conf_idempotency_keys),
	KGROUP("preferences", struct conf, preferences, conf_preferences_keys),
	KGROUP("quiet_hours", struct conf, quiet_hours, conf_quiet_hours_keys),
	KGROUP("caps", struct conf, caps, conf_caps_keys),
	KGROUP("channels", struct conf, channels, conf_channels_keys,
	    .unknown = "unknown channel (email, sms, push or webhook)"),
	KMAP("clients", struct conf, clients, nclients, struct conf_client, conf_client_keys,
	    .namecheck = conf_name_client),
	KGROUP("defaults", struct conf, defaults, conf_sender_keys),
	KGROUP("unsubscribe", struct conf, unsubscribe, conf_unsubscribe_keys),
	KGROUP("metrics", struct conf, metrics, conf_metrics_keys),
	KGROUP("autoscale", struct conf, autoscale, conf_autoscale_keys,
	    .check = conf_check_autoscale),
	KGROUP("heraldd", struct conf, heraldd, conf_heraldd_keys),
	KGROUP("scheduler", struct conf, scheduler, conf_scheduler_keys),
	KGROUP("ledger", struct conf, ledger, conf_ledger_keys),
	KGROUP("retention", struct conf, retention, conf_retention_keys),
	KEND
};

/* ---- the walker ---------------------------------------------------------------------------- */

/* conf_applies - whether K exists for VARIANT */
static bool conf_applies(const struct conf_key *k, int variant)
{
	return k->only == 0 || (variant >= 0 && (k->only & (1u << variant)) != 0);
}

/* conf_find - the key NAME of KEYS for VARIANT; with ANY, for any variant */
static const struct conf_key *conf_find(const struct conf_key *keys, const char *name, int variant,
    bool any)
{
	const struct conf_key *k;

	for (k = keys; k->name != NULL; k++)
		if (strcmp(k->name, name) == 0 && (any || conf_applies(k, variant)))
			return k;
	return NULL;
}

static int conf_defaults(struct conf_ctx *x, const struct conf_key *keys, void *base, int variant,
    const struct conf_key *skip);
static void conf_release(const struct conf_key *keys, void *base);
static int conf_walk(struct conf_ctx *x, const config_setting_t *grp, const struct conf_key *keys,
    void *base, int variant, const char *path, const char *vname, const char *unknown,
    const struct conf_key *skip);

/* conf_map_new - append element NAME with its defaults to map K in BASE; NULL on error */
static void *conf_map_new(struct conf_ctx *x, const struct conf_key *k, void *base,
    const char *name, const char *path)
{
	char *el = conf_arr_add(k, base, k->elsize);
	char *dup = el ? strdup(name) : NULL;

	if (dup == NULL) {
		conf_oom(x, path);
		return NULL;
	}
	memcpy(el, &dup, sizeof dup);
	if (conf_defaults(x, k->sub, el, -1, NULL) < 0)
		return NULL;
	if (k->elinit != NULL)
		k->elinit(el, name);
	return el;
}

/* conf_map_find - element NAME of map K in BASE, or NULL */
static void *conf_map_find(const struct conf_key *k, void *base, const char *name)
{
	char *arr = conf_arr(k, base), *nm;
	size_t i, n = *conf_arr_n(k, base);

	for (i = 0; i < n; i++) {
		memcpy(&nm, arr + i * k->elsize, sizeof nm);
		if (strcmp(nm, name) == 0)
			return arr + i * k->elsize;
	}
	return NULL;
}

/* conf_arr_release - free every element of map or list K in BASE, and the array */
static void conf_arr_release(const struct conf_key *k, void *base)
{
	char *arr = conf_arr(k, base), *nm;
	size_t i, *n = conf_arr_n(k, base);

	for (i = 0; i < *n; i++) {
		if (k->kind == CONF_K_MAP) {
			memcpy(&nm, arr + i * k->elsize, sizeof nm);
			free(nm);
		}
		conf_release(k->sub, arr + i * k->elsize);
	}
	free(arr);
	memset(conf_field(k, base), 0, sizeof(void *));
	*n = 0;
}

/* conf_prov_default - channels.webhook.providers default: one "webhook" provider (§12) */
static int conf_prov_default(struct conf_ctx *x, const struct conf_key *k, void *base, int variant)
{
	struct conf_provider *p;

	if (variant != CONF_CH_WEBHOOK)
		return 0;
	p = conf_arr_add(k, base, sizeof *p);
	if (p == NULL || (p->name = strdup("webhook")) == NULL)
		return conf_oom(x, "channels.webhook.providers");
	p->type = CONF_PROV_WEBHOOK;
	return conf_defaults(x, conf_provider_keys, p, CONF_PROV_WEBHOOK,
	    conf_find(conf_provider_keys, "type", -1, false));
}

/* conf_defaults - set every key of KEYS (for VARIANT, but SKIP) in BASE to its default */
static int conf_defaults(struct conf_ctx *x, const struct conf_key *keys, void *base, int variant,
    const struct conf_key *skip)
{
	const struct conf_key *k;
	const char *const *nm;
	void *f;
	char *dup;
	size_t n;

	for (k = keys; k->name != NULL; k++) {
		if ((skip != NULL && k == skip) || !conf_applies(k, variant))
			continue;
		f = conf_field(k, base);
		switch (k->kind) {
		case CONF_K_INT:
		case CONF_K_ENUM:
			*(int *)f = (int)k->def;
			break;
		case CONF_K_BOOL:
			*(bool *)f = k->def != 0;
			break;
		case CONF_K_STR:
			if (k->defs == NULL)
				break;
			if ((dup = strdup(k->defs)) == NULL)
				return conf_oom(x, k->name);
			free(*(char **)f);
			*(char **)f = dup;
			break;
		case CONF_K_INTS:
			if (k->defv == NULL)
				break;
			for (n = 0; k->defv[n] != 0; n++)
				;
			free(((struct conf_intlist *)f)->v);
			((struct conf_intlist *)f)->v = malloc((n ? n : 1) * sizeof(int));
			if (((struct conf_intlist *)f)->v == NULL)
				return conf_oom(x, k->name);
			memcpy(((struct conf_intlist *)f)->v, k->defv, n * sizeof(int));
			((struct conf_intlist *)f)->n = n;
			break;
		case CONF_K_GROUP:
			if (conf_defaults(x, k->sub, f, k->variant, NULL) < 0)
				return -1;
			break;
		case CONF_K_MAP:
			for (nm = k->names; nm != NULL && *nm != NULL; nm++)
				if (conf_map_new(x, k, base, *nm, k->name) == NULL)
					return -1;
			break;
		case CONF_K_STRS:
		case CONF_K_LIST:
		case CONF_K_CUSTOM:
			if (k->init != NULL && k->init(x, k, base, variant) < 0)
				return -1;
			break;
		}
	}
	return 0;
}

/* conf_release - free what KEYS allocated in BASE (every variant; freed pointers are cleared) */
static void conf_release(const struct conf_key *keys, void *base)
{
	const struct conf_key *k;
	void *f;

	for (k = keys; k->name != NULL; k++) {
		f = conf_field(k, base);
		switch (k->kind) {
		case CONF_K_STR:
			free(*(char **)f);
			*(char **)f = NULL;
			break;
		case CONF_K_STRS:
			conf_strs_free(f);
			break;
		case CONF_K_INTS:
			free(((struct conf_intlist *)f)->v);
			((struct conf_intlist *)f)->v = NULL;
			((struct conf_intlist *)f)->n = 0;
			break;
		case CONF_K_GROUP:
			conf_release(k->sub, f);
			break;
		case CONF_K_MAP:
		case CONF_K_LIST:
			conf_arr_release(k, base);
			break;
		case CONF_K_CUSTOM:
			if (k->fin != NULL)
				k->fin(k, base);
			break;
		default:
			break;
		}
	}
}

/* conf_str_ok - V fits K: length, no control characters; notes secrets */
static int conf_str_ok(struct conf_ctx *x, const struct conf_key *k, const config_setting_t *s,
    const char *path, const char *v)
{
	size_t len = strlen(v);
	size_t max = k->kind == CONF_K_STR && k->max > 0 ? (size_t)k->max : CONF_STR_MAX;
	const unsigned char *p;

	if (len > max)
		return conf_fail(x, s, path, "longer than %zu bytes", max);
	if (len == 0 && (k->flags & CONF_F_REQ))
		return conf_fail(x, s, path, "must not be empty");
	for (p = (const unsigned char *)v; *p != '\0'; p++)
		if ((*p < 0x20 || *p == 0x7f) && !((k->flags & CONF_F_TEXT) &&
		    (*p == '\n' || *p == '\r' || *p == '\t')))
			return conf_fail(x, s, path, "control character not allowed");
	if (((k->flags & CONF_F_SECRET) && len > 0) || strstr(v, "-----BEGIN") != NULL)
		conf_secret(x, path);
	return 0;
}

/* conf_strs_get - S (array or list of strings) into L, with the string checks of K */
static int conf_strs_get(struct conf_ctx *x, const struct conf_key *k, const config_setting_t *s,
    const char *path, struct conf_strlist *l)
{
	int i, n = config_setting_length(s);
	const config_setting_t *e;
	char **v;

	if (config_setting_type(s) != CONFIG_TYPE_ARRAY && config_setting_type(s) != CONFIG_TYPE_LIST)
		return conf_fail(x, s, path, "expected an array of strings [\"...\", ...], got %s",
		    conf_type_name(s));
	if (n < k->min || n > k->max)
		return conf_fail(x, s, path, "expected %lld to %lld strings, got %d", k->min, k->max, n);
	v = calloc((size_t)n + 1, sizeof *v);
	if (v == NULL)
		return conf_oom(x, path);
	conf_strs_free(l);
	l->v = v;
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			return conf_fail(x, e, path, "element %d: expected a string, got %s", i + 1,
			    conf_type_name(e));
		if (conf_str_ok(x, k, e, path, config_setting_get_string(e)) < 0)
			return -1;
		if ((l->v[i] = strdup(config_setting_get_string(e))) == NULL)
			return conf_oom(x, path);
		l->n++;
	}
	return 0;
}

/* conf_ints_get - S (array or list of integers) into L */
static int conf_ints_get(struct conf_ctx *x, const struct conf_key *k, const config_setting_t *s,
    const char *path, struct conf_intlist *l)
{
	int i, n = config_setting_length(s);
	const config_setting_t *e;
	long long v;

	if (config_setting_type(s) != CONFIG_TYPE_ARRAY && config_setting_type(s) != CONFIG_TYPE_LIST)
		return conf_fail(x, s, path, "expected an array of integers [1, 2, ...], got %s",
		    conf_type_name(s));
	if (n < k->min || n > k->max)
		return conf_fail(x, s, path, "expected %lld to %lld integers, got %d", k->min, k->max,
		    n);
	free(l->v);
	l->n = 0;
	l->v = malloc(((size_t)n + 1) * sizeof(int));
	if (l->v == NULL)
		return conf_oom(x, path);
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_INT && config_setting_type(e) != CONFIG_TYPE_INT64)
			return conf_fail(x, e, path, "element %d: expected an integer, got %s", i + 1,
			    conf_type_name(e));
		v = config_setting_get_int64(e);
		if (v < INT_MIN || v > INT_MAX)
			return conf_fail(x, e, path, "element %d: out of range", i + 1);
		l->v[l->n++] = (int)v;
	}
	return 0;
}

/* conf_map_parse - a group of named groups into map K in BASE (existing names are updated) */
static int conf_map_parse(struct conf_ctx *x, const struct conf_key *k, const config_setting_t *s,
    const char *path, void *base)
{
	char sub[CONF_KEY_MAX], why[CONF_WHY_MAX];
	int i, n = config_setting_length(s);
	void *el;

	if (config_setting_type(s) != CONFIG_TYPE_GROUP)
		return conf_fail(x, s, path, "expected a group, got %s", conf_type_name(s));
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *name = config_setting_name(e);

		conf_join(sub, sizeof sub, path, name);
		if (k->namecheck != NULL && k->namecheck(name, why, sizeof why) < 0)
			return conf_fail(x, e, sub, "%s", why);
		if (config_setting_type(e) != CONFIG_TYPE_GROUP)
			return conf_fail(x, e, sub, "expected a group, got %s", conf_type_name(e));
		el = conf_map_find(k, base, name);
		if (el == NULL && (el = conf_map_new(x, k, base, name, sub)) == NULL)
			return -1;
		if (conf_walk(x, e, k->sub, el, -1, sub, NULL, NULL, NULL) < 0)
			return -1;
		if (k->elcheck != NULL && k->elcheck(x, k, e, sub, el) < 0)
			return -1;
	}
	return 0;
}

/* conf_list_parse - a list of groups into list K in BASE (replacing its default) */
static int conf_list_parse(struct conf_ctx *x, const struct conf_key *k, const config_setting_t *s,
    const char *path, void *base)
{
	const struct conf_key *vk;
	char sub[CONF_KEY_MAX], vpath[CONF_KEY_MAX], vname[64];
	int i, n = config_setting_length(s), variant;
	char *el;

	if (config_setting_type(s) != CONFIG_TYPE_LIST)
		return conf_fail(x, s, path, "expected a list of groups ( { ... }, ... ), got %s",
		    conf_type_name(s));
	conf_arr_release(k, base);
	for (vk = k->sub; vk->name != NULL && !(vk->flags & CONF_F_VARIANT); vk++)
		;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const config_setting_t *vs;

		conf_fmt(sub, sizeof sub, "%s[%d]", path, i);
		if (config_setting_type(e) != CONFIG_TYPE_GROUP)
			return conf_fail(x, e, sub, "expected a group, got %s", conf_type_name(e));
		if ((el = conf_arr_add(k, base, k->elsize)) == NULL)
			return conf_oom(x, sub);
		variant = -1;
		vname[0] = '\0';
		if (vk->name != NULL) {
			conf_join(vpath, sizeof vpath, sub, vk->name);
			if ((vs = config_setting_get_member(e, vk->name)) == NULL)
				return conf_fail(x, e, vpath, "required");
			if (config_setting_type(vs) != CONFIG_TYPE_STRING ||
			    conf_name_index(vk->names, config_setting_get_string(vs)) < 0)
				return conf_fail(x, vs, vpath, "must be one of: %s",
				    conf_names_join(vname, sizeof vname, vk->names));
			variant = conf_name_index(vk->names, config_setting_get_string(vs));
			*(int *)conf_field(vk, el) = variant;
			snprintf(vname, sizeof vname, "%s %s", k->what ? k->what : vk->name,
			    vk->names[variant]);
		}
		if (conf_defaults(x, k->sub, el, variant, vk->name ? vk : NULL) < 0)
			return -1;
		if (conf_walk(x, e, k->sub, el, variant, sub, vname, NULL, vk->name ? vk : NULL) < 0)
			return -1;
		if (k->elcheck != NULL && k->elcheck(x, k, e, sub, el) < 0)
			return -1;
	}
	return 0;
}

/* conf_value - parse setting S as key K into BASE, then run K's check */
static int conf_value(struct conf_ctx *x, const struct conf_key *k, const config_setting_t *s,
    void *base, const char *path)
{
	void *f = conf_field(k, base);
	char buf[CONF_WHY_MAX];
	long long v;
	char *dup;
	int i;

	switch (k->kind) {
	case CONF_K_INT:
		if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
			return conf_fail(x, s, path, "expected an integer, got %s", conf_type_name(s));
		v = config_setting_get_int64(s);
		if (v < k->min || v > k->max)
			return conf_fail(x, s, path, "%lld out of range (%lld..%lld)", v, k->min, k->max);
		*(int *)f = (int)v;
		break;
	case CONF_K_BOOL:
		if (config_setting_type(s) != CONFIG_TYPE_BOOL)
			return conf_fail(x, s, path, "expected true or false, got %s", conf_type_name(s));
		*(bool *)f = config_setting_get_bool(s) != 0;
		break;
	case CONF_K_STR:
		if (config_setting_type(s) != CONFIG_TYPE_STRING)
			return conf_fail(x, s, path, "expected a string, got %s", conf_type_name(s));
		if (conf_str_ok(x, k, s, path, config_setting_get_string(s)) < 0)
			return -1;
		if ((dup = strdup(config_setting_get_string(s))) == NULL)
			return conf_oom(x, path);
		free(*(char **)f);
		*(char **)f = dup;
		break;
	case CONF_K_ENUM:
		if (config_setting_type(s) != CONFIG_TYPE_STRING ||
		    (i = conf_name_index(k->names, config_setting_get_string(s))) < 0)
			return conf_fail(x, s, path, "must be one of: %s",
			    conf_names_join(buf, sizeof buf, k->names));
		*(int *)f = i;
		break;
	case CONF_K_STRS:
		if (conf_strs_get(x, k, s, path, f) < 0)
			return -1;
		break;
	case CONF_K_INTS:
		if (conf_ints_get(x, k, s, path, f) < 0)
			return -1;
		break;
	case CONF_K_GROUP:
		if (config_setting_type(s) != CONFIG_TYPE_GROUP)
			return conf_fail(x, s, path, "expected a group { ... }, got %s", conf_type_name(s));
		if (k->what != NULL)
			snprintf(buf, sizeof buf, "%s %s", k->what, k->name);
		if (conf_walk(x, s, k->sub, f, k->variant, path, k->what ? buf : NULL, k->unknown,
		    NULL) < 0)
			return -1;
		break;
	case CONF_K_MAP:
		if (conf_map_parse(x, k, s, path, base) < 0)
			return -1;
		break;
	case CONF_K_LIST:
		if (conf_list_parse(x, k, s, path, base) < 0)
			return -1;
		break;
	case CONF_K_CUSTOM:
		if (k->parse(x, k, s, path, base) < 0)
			return -1;
		break;
	}
	if (k->check != NULL)
		return k->check(x, k, s, path, base);
	return 0;
}

/* conf_walk - refuse members of GRP that KEYS lacks, then parse KEYS' members into BASE */
static int conf_walk(struct conf_ctx *x, const config_setting_t *grp, const struct conf_key *keys,
    void *base, int variant, const char *path, const char *vname, const char *unknown,
    const struct conf_key *skip)
{
	const struct conf_key *k;
	const config_setting_t *s;
	char sub[CONF_KEY_MAX];
	int i, n = config_setting_length(grp);

	for (i = 0; i < n; i++) {
		s = config_setting_get_elem(grp, (unsigned)i);
		if (conf_find(keys, config_setting_name(s), variant, false) != NULL)
			continue;
		conf_join(sub, sizeof sub, path, config_setting_name(s));
		if (vname != NULL && conf_find(keys, config_setting_name(s), variant, true) != NULL)
			return conf_fail(x, s, sub, "not valid for %s", vname);
		return conf_fail(x, s, sub, "%s", unknown ? unknown : "unknown key");
	}
	for (k = keys; k->name != NULL; k++) {
		if ((skip != NULL && k == skip) || !conf_applies(k, variant))
			continue;
		conf_join(sub, sizeof sub, path, k->name);
		s = config_setting_get_member(grp, k->name);
		if (s == NULL) {
			if (k->flags & CONF_F_REQ)
				return conf_fail(x, grp, sub, "required");
			continue;
		}
		if (conf_value(x, k, s, base, sub) < 0)
			return -1;
	}
	return 0;
}

/* ---- loading ------------------------------------------------------------------------------- */

/* conf_env - the value of environment variable NAME, NULL when unset or empty */
static const char *conf_env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

/* conf_env_url - §12: VAR (when set) replaces *URL, which must have scheme S1 or S2 */
static int conf_env_url(struct conf_ctx *x, const char *var, const char *s1, const char *s2,
    char **url, struct url *parsed, bool *from_env)
{
	const char *v = conf_env(var);
	char why[CONF_WHY_MAX];
	char *dup;

	if (v == NULL)
		return 0;
	if (url_parse(v, parsed, why, sizeof why) < 0) {
		conf_error_set(x->err, NULL, 0, var, why);
		return -1;
	}
	if (strcmp(parsed->scheme, s1) != 0 && (s2 == NULL || strcmp(parsed->scheme, s2) != 0)) {
		snprintf(why, sizeof why, "scheme must be %s%s%s, not %s", s1, s2 ? " or " : "",
		    s2 ? s2 : "", parsed->scheme);
		conf_error_set(x->err, NULL, 0, var, why);
		return -1;
	}
	if ((dup = strdup(v)) == NULL) {
		conf_error_set(x->err, NULL, 0, var, "out of memory");
		return -1;
	}
	free(*url);
	*url = dup;
	*from_env = true;
	return 0;
}

/* conf_section_bit - the sections bit of top-level group NAME; 0 if unknown */
static unsigned long conf_section_bit(const char *name)
{
	unsigned long i;

	for (i = 0; conf_keys[i].name != NULL; i++)
		if (strcmp(conf_keys[i].name, name) == 0)
			return 1UL << i;
	return 0;
}

/* conf_read - read and walk the file at X->file into X->c */
static int conf_read(struct conf_ctx *x, FILE *fp)
{
	config_t cfg;
	const config_setting_t *root;
	char dir[PATH_MAX], why[CONF_ERR_MAX];
	const char *slash = strrchr(x->file, '/');
	struct stat st;
	int i, rc = -1;

	if (fstat(fileno(fp), &st) < 0) {
		snprintf(why, sizeof why, "cannot stat: %s", strerror(errno));
		conf_error_set(x->err, x->file, 0, NULL, why);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		conf_error_set(x->err, x->file, 0, NULL, "not a regular file");
		return -1;
	}
	x->c->mode = st.st_mode;
	/* @include "x" is relative to the including file's directory */
	snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - x->file) : 1, slash ? x->file : ".");
	if (dir[0] == '\0')
		snprintf(dir, sizeof dir, "/");
	config_init(&cfg);
	config_set_include_dir(&cfg, dir);
	if (config_read(&cfg, fp) != CONFIG_TRUE) {
		snprintf(why, sizeof why, "%s", config_error_text(&cfg));
		conf_error_set(x->err, config_error_file(&cfg) ? config_error_file(&cfg) : x->file,
		    config_error_line(&cfg), NULL, why);
		goto out;
	}
	root = config_root_setting(&cfg);
	if (conf_no_include(x, root) < 0 ||
	    conf_walk(x, root, conf_keys, x->c, -1, "", NULL, NULL, NULL) < 0)
		goto out;
	for (i = 0; i < config_setting_length(root); i++)
		x->c->sections |= conf_section_bit(config_setting_name(
		    config_setting_get_elem(root, (unsigned)i)));
	x->c->file_read = true;
	rc = 0;
out:
	config_destroy(&cfg);
	return rc;
}

const char *conf_path(const char *cli)
{
	const char *e;

	if (cli != NULL)
		return cli;
	e = conf_env(CONF_ENV_PATH);
	return e != NULL ? e : CONF_PATH_DEFAULT;
}

int conf_load(const char *path, struct conf *out, struct conf_error *err)
{
	struct conf_ctx x;
	char why[CONF_ERR_MAX];
	FILE *fp;
	int rc;

	memset(out, 0, sizeof *out);
	if (err != NULL)
		memset(err, 0, sizeof *err);
	if (path == NULL)
		path = conf_path(NULL);
	x.file = path;
	x.c = out;
	x.err = err;
	if ((out->path = strdup(path)) == NULL) {
		conf_error_set(err, path, 0, NULL, "out of memory");
		return -1;
	}
	if (conf_defaults(&x, conf_keys, out, -1, NULL) < 0)
		goto fail;
	fp = fopen(path, "r");
	if (fp == NULL) {
		bool dflt = strcmp(path, CONF_PATH_DEFAULT) == 0;

		if (!(errno == ENOENT && dflt && (conf_env(CONF_ENV_AMQP) || conf_env(CONF_ENV_MYSQL)))) {
			snprintf(why, sizeof why, "cannot read: %s%s", strerror(errno), dflt ?
			    " (name a file with -c or " CONF_ENV_PATH ", or set " CONF_ENV_AMQP
			    " / " CONF_ENV_MYSQL ")" : "");
			conf_error_set(err, path, 0, NULL, why);
			goto fail;
		}
	} else {
		rc = conf_read(&x, fp);
		fclose(fp);
		if (rc < 0)
			goto fail;
	}
	/* §12: the environment overrides the file's connection settings */
	if (conf_env_url(&x, CONF_ENV_AMQP, "amqp", "amqps", &out->broker.url, &out->broker.parsed,
	    &out->broker.url_from_env) < 0)
		goto fail;
	if (conf_env_url(&x, CONF_ENV_MYSQL, "mysql", "mysqls", &out->mysql.url, &out->mysql.parsed,
	    &out->mysql.url_from_env) < 0)
		goto fail;
	if (out->mysql.url != NULL && out->mysql.parsed.tls)
		out->mysql.tls.on = true;
	return 0;
fail:
	conf_free(out);
	return -1;
}

/* conf_system_ca - the system's CA bundle: $SSL_CERT_FILE, else the first bundle found; or
 * NULL. For a tls group without ca_file: rabbitmq-c 0.11 loads no default CAs, and MariaDB
 * Connector/C 3.3 checks no chain at all without a CA, so both are given this one. */
const char *conf_system_ca(void)
{
	static const char *const bundles[] = {
		"/etc/ssl/certs/ca-certificates.crt",    /* Debian, Ubuntu, Alpine */
		"/etc/pki/tls/certs/ca-bundle.crt",      /* Fedora, RHEL */
		"/etc/ssl/ca-bundle.pem",                /* openSUSE */
		"/etc/ssl/cert.pem",                     /* BSDs, macOS */
	};
	const char *env = getenv("SSL_CERT_FILE");
	size_t i;

	if (env != NULL && env[0] != '\0')
		return env;
	for (i = 0; i < sizeof bundles / sizeof bundles[0]; i++)
		if (access(bundles[i], R_OK) == 0)
			return bundles[i];
	return NULL;
}

void conf_free(struct conf *c)
{
	if (c == NULL)
		return;
	conf_release(conf_keys, c);
	free(c->path);
	memset(c, 0, sizeof *c);
}

bool conf_has(const struct conf *c, const char *section)
{
	if (strcmp(section, "broker") == 0)
		return c->broker.url != NULL;
	if (strcmp(section, "mysql") == 0)
		return c->mysql.url != NULL;
	return (c->sections & conf_section_bit(section)) != 0;
}

int conf_require(const struct conf *c, const char *section, struct conf_error *err)
{
	const char *env = strcmp(section, "broker") == 0 ? CONF_ENV_AMQP :
	    strcmp(section, "mysql") == 0 ? CONF_ENV_MYSQL : NULL;
	char why[CONF_WHY_MAX], key[CONF_KEY_MAX];

	if (conf_has(c, section))
		return 0;
	if (env != NULL && (c->sections & conf_section_bit(section)) != 0) {
		snprintf(key, sizeof key, "%s.url", section);
		snprintf(why, sizeof why, "required by %s (or set %s)", program_invocation_short_name,
		    env);
	} else {
		snprintf(key, sizeof key, "%s", section);
		snprintf(why, sizeof why, "section required by %s%s%s%s",
		    program_invocation_short_name, env ? " (or set " : "", env ? env : "",
		    env ? ")" : "");
	}
	conf_error_set(err, c->path, 0, key, why);
	return -1;
}

int conf_channel_parse(const char *name)
{
	return conf_name_index(conf_channel_names, name);
}

const char *conf_channel_name(int ch)
{
	return ch >= 0 && ch < CONF_CHANNELS ? conf_channel_names[ch] : "?";
}

const char *conf_prov_type_name(int type)
{
	return type >= 0 && type < CONF_PROV_TYPES ? conf_prov_names[type] : "?";
}

const struct conf_category *conf_category_find(const struct conf *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->ncategories; i++)
		if (strcmp(c->categories[i].name, name) == 0)
			return &c->categories[i];
	return NULL;
}

const struct conf_client *conf_client_find(const struct conf *c, const char *id)
{
	size_t i;

	for (i = 0; i < c->nclients; i++)
		if (strcmp(c->clients[i].name, id) == 0)
			return &c->clients[i];
	return NULL;
}
