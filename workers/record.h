/* record - status changes written in batches: status, audit row and outbox event in one
 * transaction per batch (SPEC §3 events, §4 step 9, §7), with the transition table enforced */
#ifndef HERALD_RECORD_H
#define HERALD_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"

struct json_object;
struct note;

enum record_slots {
	RECORD_SLOTS_NONE,           /* leave cap/quota reservations as they are */
	RECORD_SLOTS_KEEP,           /* delivered: the slots stay used (admit_keep) */
	RECORD_SLOTS_RELEASE         /* ended undelivered: give them back (admit_release) */
};

enum record_result {
	RECORD_WRITTEN,              /* status, audit row and event written */
	RECORD_SAME,                 /* already this (non-final) status: nothing written */
	RECORD_REFUSED               /* the transition table forbids it (already final): nothing
	                                written; the message must not be sent */
};

/* One status change. */
struct record {
	const struct note *note;     /* the message (for an undecodable one: a note holding what the
	                                headers said: txid, channel, client, category) */
	const char *status;
	struct json_object *detail;  /* borrowed; NULL: none */
	const char *provider;        /* NULL: unchanged */
	const char *provider_message_id;
	unsigned template_version;   /* 0: unchanged */
	int64_t deferred_until;      /* µs; with status deferred */
	const void *deferred_body;   /* with status deferred: the message to requeue later */
	size_t deferred_len;
	const char *deferred_headers;    /* JSON object text of its AMQP headers, or NULL */
	enum record_slots slots;
	const char *suppress_address;    /* add this address of the channel to the suppressions
	                                    (a permanent rejection of the address itself) */
	/* out */
	enum record_result result;
	char previous[16];           /* the status before ("" none) */
};

extern const struct db_stmt record_stmts[];
extern const size_t record_nstmts;

/* record_allowed - the §4 transition table: RECORD_WRITTEN when FROM ("" or NULL: none yet) may
 * become TO, RECORD_SAME when it already is TO (not final), RECORD_REFUSED otherwise */
enum record_result record_allowed(const char *from, const char *to);
/* record_final - whether STATUS is final (§7) */
int record_final(const char *status);
/* record_take_fn - what the changes must take first in their transaction (a worker's cap and
 * quota slots), run by record_batch with its TAKE_ARG in each attempt before any row is locked;
 * it may change a record's status, detail, slots and deferred_* (a full cap); 0 or a DB_ error */
typedef int (*record_take_fn)(struct db *db, void *arg);

/* record_batch - write the N changes of R in one transaction at NOW (µs) by HOST/WORKER, after
 * TAKE (TAKE_ARG) when not NULL; run again as a whole after a deadlock or a lost
 * connection (the transition table makes a repeat after an unknown commit write nothing
 * twice); 0, or a DB_ error (nothing written) */
int record_batch(struct db *db, int base, int admit_base, struct record *r, size_t n,
	const char *host, const char *worker, int64_t now, record_take_fn take, void *take_arg);
/* record_write - like record_batch, inside the caller's open transaction (a caller that also
 * takes or deletes rows in it: the scheduler); no retry: on a DB_ error the caller rolls back
 * and runs the whole of it again; 0 or a DB_ error */
int record_write(struct db *db, int base, int admit_base, struct record *r, size_t n,
	const char *host, const char *worker, int64_t now);

/* One push device's outcome for a transaction (SPEC §5): accepted, rejected, unregistered
 * (final) or retry; "" when it has none yet. */
struct record_device {
	char platform[16];
	char token[513];
	char outcome[16];
	char message_id[256];
};

/* record_devices_load - the outcomes recorded for TXID's push devices into the matching ones
 * of D[0..N) (by token; others keep theirs); 0 or a DB_ error */
int record_devices_load(struct db *db, int base, const char *txid, struct record_device *d,
	size_t n);
/* record_device - store D's outcome for TXID (autocommit, before the next device is sent, so a
 * kill resends at most the device in flight); an unregistered device is removed from devices;
 * 0 or a DB_ error */
int record_device(struct db *db, int base, const char *txid, const struct record_device *d,
	unsigned attempt, struct json_object *detail);

#endif
