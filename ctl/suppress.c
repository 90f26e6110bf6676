/* suppress - "heraldctl suppress list|add|remove" (SPEC §4 step 3): addresses never sent to
 *
 * The channel is --channel, or inferred from the address: one with '@' is an email address
 * (stored lower-cased), '+' and digits a phone number (sms); anything else needs --channel.
 * Each channel's address is checked as the producer checks it.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <json-c/json.h>

#include "conf.h"
#include "ctl.h"
#include "db.h"

#define SUPPRESS_ADDR_MAX 254    /* suppressions.address */

enum { S_LIST, S_PUT, S_DEL, S__N };

static const struct db_stmt suppress_stmts[S__N] = {
	[S_LIST] = { "suppress_list",
		"SELECT address, channel, reason, detail, created_at FROM suppressions"
		" WHERE ? IS NULL OR channel = ? ORDER BY channel, address", true },
	[S_PUT] = { "suppress_put",
		"INSERT INTO suppressions (address, channel, reason, detail) VALUES (?, ?, ?, ?)"
		" ON DUPLICATE KEY UPDATE reason = ?, detail = ?", true },
	[S_DEL] = { "suppress_del", "DELETE FROM suppressions WHERE address = ? AND channel = ?",
		true },
};

static const char suppress_usage[] =
	"usage: heraldctl suppress list [--channel CH] [--format json|table]\n"
	"       heraldctl suppress add ADDRESS [--channel CH] [--reason R] [--detail TEXT]\n"
	"       heraldctl suppress remove ADDRESS [--channel CH]\n"
	"  CH: email, sms, push (a device token) or webhook (a URL); without --channel an address\n"
	"  with '@' is email, '+' and digits sms. R: [a-z0-9_], at most 32 (default manual).\n"
	"  list: one JSON line per suppressed address, or one table.\n"
	CTL_FORMAT_HELP;

/* suppress_channel - the channel of ADDR (CH given, or inferred) into *NAME after checking
 * ADDR, which email addresses are lower-cased in; 0, EX_USAGE or EX_DATAERR (printed) */
static int suppress_channel(const char *cmd, char *addr, const char *ch, const char **name)
{
	int id;

	if (ch != NULL && (id = conf_channel_parse(ch)) < 0) {
		return ctl_usage(cmd, suppress_usage, "--channel '%s': not a channel (email, sms,"
		    " push, webhook)", ch);
	}
	if (ch == NULL) {
		if (strchr(addr, '@') != NULL)
			id = CONF_CH_EMAIL;
		else if (addr[0] == '+' && addr[1] != '\0' && addr[1 + strspn(addr + 1, "0123456789")] == '\0')
			id = CONF_CH_SMS;
		else {
			return ctl_usage(cmd, suppress_usage, "'%s': cannot tell the channel from the"
			    " address: give --channel", addr);
		}
	}
	if ((id == CONF_CH_EMAIL && !ctl_email_ok(ctl_lower(addr))) ||
	    (id == CONF_CH_SMS && !ctl_phone_ok(addr)) ||
	    (id == CONF_CH_PUSH && !ctl_token_ok(addr)) ||
	    (id == CONF_CH_WEBHOOK && !ctl_url_ok(addr)) || strlen(addr) > SUPPRESS_ADDR_MAX) {
		fprintf(stderr, "heraldctl %s: '%s': not a valid %s address%s\n", cmd, addr,
		    conf_channel_name(id), id == CONF_CH_SMS ? " (E.164: + and 2-15 digits)" : "");
		return EX_DATAERR;
	}
	*name = conf_channel_name(id);
	return 0;
}

/* suppress_list - "suppress list [--channel CH]": JSON Lines */
static int suppress_list(struct db *db, const char *ch, enum ctl_fmt fmt)
{
	struct ctl_rows rows = { fmt, NULL };
	int rc;

	if ((rc = db_exec(db, S_LIST, DB_ARGS(db_str(ch), db_str(ch)))) != 0)
		return ctl_db_fail(db, rc);
	while ((rc = db_fetch(db, S_LIST)) == 1) {
		struct json_object *o = json_object_new_object();
		const char *detail = db_col_str(db, S_LIST, 3, NULL);

		json_object_object_add(o, "address", json_object_new_string(db_col_str(db, S_LIST, 0, NULL)));
		json_object_object_add(o, "channel", json_object_new_string(db_col_str(db, S_LIST, 1, NULL)));
		json_object_object_add(o, "reason", json_object_new_string(db_col_str(db, S_LIST, 2, NULL)));
		json_object_object_add(o, "detail", detail ? json_object_new_string(detail) : NULL);
		json_object_object_add(o, "created_at", ctl_time(db_col_time(db, S_LIST, 4)));
		ctl_rows_add(&rows, o);
	}
	ctl_rows_end(&rows);
	return rc < 0 ? ctl_db_fail(db, rc) : 0;
}

/* suppress_cmd - "heraldctl suppress list|add|remove" */
int suppress_cmd(const char *conf, int argc, char **argv)
{
	const char *ch = NULL, *reason = NULL, *detail = NULL, *pos[1], *name = NULL, *format = NULL;
	const struct ctl_opt opts[] = {
		{ "--channel", &ch, NULL }, { "--reason", &reason, NULL }, { "--detail", &detail, NULL },
		{ NULL, NULL, NULL }
	}, chopt[] = { { "--channel", &ch, NULL }, { NULL, NULL, NULL } }, listopt[] = {
		{ "--channel", &ch, NULL }, { "--format", &format, NULL }, { NULL, NULL, NULL }
	};
	enum ctl_fmt fmt;
	char cmd[32], addr[SUPPRESS_ADDR_MAX * 2 + 2];
	struct db *db = NULL;
	int np, rc, sub;

	if (argc < 2)
		return ctl_usage("suppress", suppress_usage, "a subcommand is required");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return fputs(suppress_usage, stdout), EX_OK;
	sub = strcmp(argv[1], "list") == 0 ? 0 : strcmp(argv[1], "add") == 0 ? 1 :
	    strcmp(argv[1], "remove") == 0 ? 2 : -1;
	if (sub < 0)
		return ctl_usage("suppress", suppress_usage, "unknown subcommand '%s'", argv[1]);
	snprintf(cmd, sizeof(cmd), "suppress %s", argv[1]);
	if ((rc = ctl_args(cmd, suppress_usage, argc - 2, argv + 2, sub == 1 ? opts : sub == 2 ? chopt : listopt, pos,
	    sub == 0 ? 0 : 1, &np)) != 0)
		return rc == CTL_HELP ? EX_OK : rc;
	if (sub != 0 && np == 0)
		return ctl_usage(cmd, suppress_usage, "ADDRESS is required");
	if ((rc = ctl_fmt_parse(cmd, suppress_usage, format, &fmt)) != 0)
		return rc;
	if (sub == 0 && ch != NULL && conf_channel_parse(ch) < 0)
		return ctl_usage(cmd, suppress_usage, "--channel '%s': not a channel (email, sms,"
		    " push, webhook)", ch);
	if (sub != 0) {
		if (strlen(pos[0]) >= sizeof(addr)) {
			fprintf(stderr, "heraldctl %s: address longer than %d bytes\n", cmd,
			    SUPPRESS_ADDR_MAX);
			return EX_DATAERR;
		}
		snprintf(addr, sizeof(addr), "%s", pos[0]);
		if ((rc = suppress_channel(cmd, addr, ch, &name)) != 0)
			return rc;
		if (reason == NULL)
			reason = "manual";
		if (reason[0] == '\0' || strlen(reason) > 32 ||
		    reason[strspn(reason, "abcdefghijklmnopqrstuvwxyz0123456789_")] != '\0')
			return ctl_usage(cmd, suppress_usage, "--reason '%s': [a-z0-9_], 1 to 32", reason);
		if (detail != NULL && !ctl_text_ok(detail, 1024))
			return ctl_usage(cmd, suppress_usage, "--detail: at most 1024 characters, no"
			    " control characters");
	}
	if ((rc = ctl_db_open(conf, suppress_stmts, S__N, &db)) != 0)
		return rc;
	if (sub == 0) {
		rc = suppress_list(db, ch, fmt);
	} else if (sub == 1) {
		if ((rc = db_exec(db, S_PUT, DB_ARGS(db_str(addr), db_str(name), db_str(reason),
		    db_str(detail), db_str(reason), db_str(detail)))) != 0)
			rc = ctl_db_fail(db, rc);
		else
			printf("%s %s on %s\n", db_affected(db, S_PUT) == 1 ? "suppressed" :
			    db_affected(db, S_PUT) == 0 ? "already suppressed:" : "updated", addr, name);
	} else if ((rc = db_exec(db, S_DEL, DB_ARGS(db_str(addr), db_str(name)))) != 0) {
		rc = ctl_db_fail(db, rc);
	} else if (db_affected(db, S_DEL) == 0) {
		fprintf(stderr, "heraldctl %s: %s is not suppressed on %s\n", cmd, addr, name);
		rc = 1;
	} else {
		printf("removed %s on %s\n", addr, name);
	}
	db_close(db);
	return rc;
}
