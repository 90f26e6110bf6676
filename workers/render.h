/* render - a message's content for its channel (SPEC §6): the stored template for the
 * recipient's locale (falling back to the language, then the default locale), inline fields
 * of the request overriding it, rendered against the request's data and the user's profile */
#ifndef HERALD_RENDER_H
#define HERALD_RENDER_H

#include <stddef.h>

#include "db.h"

struct admit;
struct conf;
struct json_object;
struct note;

struct rendered {
	char *subject;               /* email subject, push title, webhook event; NULL if none */
	char *text;                  /* email text part, SMS body, push body; NULL if none */
	char *html;                  /* email HTML part; NULL if none */
	struct json_object *extra;   /* push data object; NULL if none; owned */
	unsigned template_version;   /* 0: inline content only */
	char template_locale[36];
};

#define RENDER_MAX_OUT (1u << 20)    /* bytes of one rendered field */

extern const struct db_stmt render_stmts[];
extern const size_t render_nstmts;

/* render_note - render N for the recipient A into *OUT (render_free it); 0, RENDER_FAILED with
 * ERR saying what and where (the message ends failed), or a DB_ error */
#define RENDER_FAILED 1
int render_note(struct db *db, int base, const struct conf *c, const struct note *n,
	const struct admit *a, struct rendered *out, char *err, size_t errlen);
/* render_free - release what render_note put in R */
void render_free(struct rendered *r);

#endif
