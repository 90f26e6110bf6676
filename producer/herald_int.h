/* herald_int - libherald's private state, shared by herald.c (connection) and publish.c */
#ifndef HERALD_INT_H
#define HERALD_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <amqp.h>

#include "codec.h"
#include "conf.h"
#include "herald.h"

#define HERALD_CHAN 1
#define HERALD_MSGID_MAX (TXID_LEN + 24)

/* One submitted request until its callback ran. */
struct pend {
	struct pend *next;
	int status;                  /* HERALD_OK until something failed for it */
	char msg[1024];              /* what failed */
	char *reply;                 /* ready reply (invalid requests), else NULL */
	struct request *req;
	struct note **notes;
	size_t n;
	unsigned outstanding;        /* messages published and not yet confirmed */
	size_t published;            /* notes[0..published) were published (both copies) */
	char **body;                 /* per note: its wire body, encoded once for both copies
	                                (and a resend), freed once the ledger copy is out */
	size_t *blen;
	unsigned char *acked;        /* per note: bit 0 channel copy, bit 1 ledger copy confirmed
	                                (or not to be sent), bit 2 channel copy returned */
	bool sealed;                 /* all its messages were published */
	long line;
	herald_reply_cb *cb;
	void *arg;
};

/* One unconfirmed delivery tag. */
struct slot {
	struct pend *p;              /* NULL: confirmed or failed already */
	size_t note;                 /* index in p->notes */
	unsigned char copy;          /* 1: channel copy, 2: ledger copy */
	char msgid[HERALD_MSGID_MAX];
};

/* A ledger record due once its channel copy is confirmed. */
struct due {
	struct pend *p;
	size_t note;
};

struct herald {
	struct conf conf;
	amqp_connection_state_t conn;
	int dead;                    /* HERALD_OK, or the connection's fatal status */
	char err[1024];
	char user[URL_PART_MAX];     /* broker user = the AMQP user_id property */
	const char **categories;     /* NULL-terminated, from conf */
	struct codec_limits lim;
	unsigned window;
	struct slot *slots;          /* ring of window entries, tag % window */
	uint64_t base;               /* oldest unconfirmed tag */
	uint64_t next_tag;           /* tag of the next publish */
	struct pend *head, *tail;
	struct due *due;             /* FIFO [hdue, ndue) of ledger records to publish */
	size_t hdue, ndue, capdue;
	bool recovering;             /* resending after a reconnect: no nested recovery */
	unsigned reconnects;
	bool blocked;
	time_t blocked_since;
};

/* herald_fail - record a connection-fatal STATUS with a message in H; returns STATUS */
int herald_fail(struct herald *h, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* herald_reconnect - drop the lost connection and connect again (topology, confirms) */
int herald_reconnect(struct herald *h);
/* publish_drop - fail every pending request with the connection's status and deliver it */
void publish_drop(struct herald *h);

#endif
