/* admit - SPEC §4 steps 1-6 for one decoded message: what the database and the config say
 * before anything is rendered or sent
 *
 * admit_note() reads the current status, cancellations, the idempotency claim, the recipient,
 * suppressions, preferences, pause, quiet hours and which daily cap and client quota apply, and
 * returns a verdict. It writes only the idempotency claim. The cap and quota slots of a message
 * that may go are taken by admit_take() inside the transaction that records its status, which
 * may still turn it rate_limited or deferred when one is full; claims and slots are
 * keyed by the transaction, so the same transaction coming back (redelivery after a crash, retry
 * tier, scheduler) finds its own claim and slot and goes on. admit_note never writes a status:
 * the caller records the verdict (with its audit row and event) and, when the message ends
 * without delivery, gives the slots back with admit_release() inside that transaction.
 *
 * Statements: the caller's connection holds one registry for every module; this module's
 * statements are admit_stmts[0..ADMIT_NSTMTS), registered at index BASE.
 */
#ifndef HERALD_ADMIT_H
#define HERALD_ADMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "txid.h"

struct conf;
struct json_object;
struct note;

enum admit_verdict {
	ADMIT_SKIP,              /* already final for (transaction, channel): ack, send nothing,
	                            record nothing (the transition table forbids any change) */
	ADMIT_FINAL,             /* ends now with STATUS: cancelled, expired, duplicate, invalid_user,
	                            no_address, suppressed, opt_out, paused, rate_limited */
	ADMIT_DEFER,             /* deferred until DEFER_UNTIL: quiet hours, send_at, cap policy
	                            defer (the slot is not reserved) */
	ADMIT_GO                 /* deliver: recipient resolved, claim held, slots pending
	                            (admit_take) */
};

struct admit_device {
	char platform[16];       /* "ios" or "android" */
	char token[513];
};

#define ADMIT_RKEY_MAX 1024          /* 'u:' + user id, 'a:' + address or 'h:' + 64 hex */

/* The cap and quota slots an ADMIT_GO message needs, left for admit_take() so that taking them
 * costs no transaction of its own: they are taken in the one that records the status. */
struct admit_hold {
	bool pending;            /* slots to take */
	int64_t cap, quota;      /* the limits (0: none) */
	char cday[11], qday[11];     /* their days: the recipient's local date, the UTC date */
	bool cap_defers;         /* a full cap defers (the category's cap policy) until CAP_UNTIL */
	int64_t cap_until;
	char rkey[ADMIT_RKEY_MAX];   /* the recipient key the cap counts under */
};

struct admit {
	enum admit_verdict verdict;
	char current[16];        /* the status recorded now for (transaction, channel); "" none */
	const char *status;      /* ADMIT_FINAL: the status (a static string) */
	struct json_object *detail;  /* ADMIT_FINAL / ADMIT_DEFER: why, for the audit row and
	                            event, e.g. {"reason":"quiet_hours"}, {"reason":"client_quota"},
	                            {"reason":"duplicate","first_transaction_id":"..."}; owned */
	int64_t defer_until;     /* ADMIT_DEFER: µs since the epoch */
	/* ADMIT_GO (and, where known, the others): */
	struct json_object *profile; /* user's profile for templates: user_id, first_name,
	                            last_name, email, phone, timezone, locale (absent keys omitted);
	                            NULL for a `to` recipient; owned */
	char *address;           /* email, E.164 phone or webhook URL; push: NULL (see devices) */
	struct admit_device *devices;  /* push: the devices to send to (suppressed ones left out) */
	size_t ndevices;
	char timezone[65];       /* the recipient's zone ("UTC" for `to`) */
	char locale[36];         /* "" when none */
	bool reserved;           /* the cap and quota slots are held by this transaction */
	struct admit_hold hold;  /* ADMIT_GO: the slots admit_take() is to take */
};

#define ADMIT_NSTMTS 14       /* entries of admit_stmts (== admit_nstmts), for static registries */

extern const struct db_stmt admit_stmts[];
extern const size_t admit_nstmts;

/* admit_note - run §4 steps 1-6 for N at time NOW (µs) into *OUT (zeroed first; admit_free it
 * whatever the result); 0, or DB_ERETRY / DB_ERR when the database failed (nothing decided:
 * the caller may run it again, it is safe to repeat) */
int admit_note(struct db *db, int base, const struct conf *c, const struct note *n, int64_t now,
	struct admit *out);
enum admit_step {
	ADMIT_TAKE_CAP,          /* the cap slot */
	ADMIT_TAKE_QUOTA         /* then the quota slot; held: a->reserved */
};

/* admit_take - inside the caller's open transaction, STEP of the slots admit_note left pending
 * in A (ADMIT_GO; nothing to do otherwise): held, or, when full, A turned for good into what
 * that means, ADMIT_FINAL rate_limited (reason daily_cap or client_quota: a cap slot held is
 * given back) or ADMIT_DEFER (daily_cap, a category that defers), with nothing left pending.
 * A transaction taking the slots of several messages runs the cap step of all of them before
 * the quota step of any, each in counter order (admit_counter_cmp), so that two such
 * transactions lock counters in one order. Safe to run again in a new transaction after a
 * rollback. 0, or a DB_ error (the caller rolls back) */
int admit_take(struct db *db, int base, const struct note *n, struct admit *a,
	enum admit_step step);
/* admit_counter_cmp - the order of the counter rows STEP of notes X and Y (with their admits
 * XA and YA) would lock: <0, 0, >0 */
int admit_counter_cmp(const struct note *x, const struct admit *xa, const struct note *y,
	const struct admit *ya, enum admit_step step);
/* admit_flush_cache - forget the process's copy of the caps and client_quotas tables (read at
 * most every 2 s), so the next admit_note reads them again (tests, `heraldctl caps set` via a
 * reload) */
void admit_flush_cache(void);
/* admit_free - release what admit_note allocated in A */
void admit_free(struct admit *a);
/* admit_release - the message TXID on channel CH ended without delivery: give its cap and quota
 * slots back (at most once each: the reservation row is deleted and only then the counter
 * decremented); run inside the caller's transaction; 0 or a DB_ error */
int admit_release(struct db *db, int base, const char *txid, int ch);
/* admit_keep - TXID on CH was delivered: the slots stay used; the reservation rows go; run
 * inside the caller's transaction; 0 or a DB_ error */
int admit_keep(struct db *db, int base, const char *txid, int ch);

#endif
