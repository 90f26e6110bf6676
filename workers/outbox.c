/* outbox - publish event_outbox rows to herald.events, delete them once confirmed */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <amqp.h>
#include <json-c/json.h>

#include "db.h"
#include "log.h"
#include "mq.h"
#include "outbox.h"
#include "topology.h"

enum {
	Q_TAKE,
	Q_DEL,
	Q_LOCK,
	Q_UNLOCK,
	Q__N
};

const struct db_stmt outbox_stmts[Q__N] = {
	[Q_TAKE] = { "outbox_take",
		"SELECT id, routing_key, body FROM event_outbox ORDER BY id LIMIT ? "
		"FOR UPDATE SKIP LOCKED", true },
	[Q_DEL] = { "outbox_delete",
		/* the id list drives, each row found by its primary key: only the rows taken are
		 * locked (a scan would lock every row and the gap that concurrent inserts need) */
		"DELETE e FROM JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT UNSIGNED PATH '$')) AS jt "
		"STRAIGHT_JOIN event_outbox AS e ON e.id = jt.id", true },
	/* one drainer at a time on a database: two drains each holding rows the other's delete
	 * then waited for deadlocked (MariaDB 10.11, SKIP LOCKED at READ COMMITTED), and the
	 * rolled-back one's events went out twice; a busy lock means another process drains */
	[Q_LOCK] = { "outbox_lock",
		"SELECT GET_LOCK(CONCAT('herald.outbox.', DATABASE()), 0)", true },
	[Q_UNLOCK] = { "outbox_unlock",
		"SELECT RELEASE_LOCK(CONCAT('herald.outbox.', DATABASE()))", true },
};
const size_t outbox_nstmts = Q__N;

/* outbox_locked - take, publish, confirm, delete, commit (holding the drain lock) */
static int outbox_locked(struct db *db, int base, struct mq *mq, size_t limit)
{
	amqp_basic_properties_t props;
	struct json_object *ids = NULL;
	int n = 0, rc;

	if (db_begin_read_committed(db) < 0)
		return -1;
	if (db_exec(db, base + Q_TAKE, DB_ARGS(db_i64((int64_t)limit))) < 0)
		goto fail;
	if ((ids = json_object_new_array()) == NULL)
		goto fail;
	memset(&props, 0, sizeof props);
	props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
	props.content_type = amqp_cstring_bytes("application/json");
	while ((rc = db_fetch(db, base + Q_TAKE)) == 1) {
		int64_t id = db_col_i64(db, base + Q_TAKE, 0);
		const char *key = db_col_str(db, base + Q_TAKE, 1, NULL);
		size_t len;
		const char *body = db_col_str(db, base + Q_TAKE, 2, &len);
		char msgid[32];

		if (key == NULL || body == NULL)
			continue;
		snprintf(msgid, sizeof msgid, "event-%" PRId64, id);
		props.message_id = amqp_cstring_bytes(msgid);
		if (mq_publish(mq, TOPOLOGY_EVENTS, key, &props, body, len, false) < 0)
			goto fail;
		json_object_array_add(ids, json_object_new_int64(id));
		n++;
	}
	if (rc < 0)
		goto fail;
	if (n == 0) {
		json_object_put(ids);
		db_rollback(db);
		return 0;
	}
	if (mq_confirm(mq) < 0)
		goto fail;
	if (db_exec(db, base + Q_DEL, DB_ARGS(db_str(json_object_to_json_string_ext(ids,
	    JSON_C_TO_STRING_PLAIN)))) < 0 || db_commit(db) < 0)
		goto fail;
	json_object_put(ids);
	return n;
fail:
	log_warnx("event=outbox_failed published=%d", n);
	json_object_put(ids);
	db_rollback(db);
	return -1;
}

/* outbox_drain - the drain lock, the drain, the lock given back; 0 when another process holds
 * the lock (it publishes the rows) */
int outbox_drain(struct db *db, int base, struct mq *mq, size_t limit)
{
	int got = 0, rc;

	if (db_exec(db, base + Q_LOCK, DB_NOARGS) < 0)
		return -1;
	while ((rc = db_fetch(db, base + Q_LOCK)) == 1)
		got = db_col_i64(db, base + Q_LOCK, 0) == 1;
	if (rc < 0 || !got)
		return rc < 0 ? -1 : 0;
	rc = outbox_locked(db, base, mq, limit);
	if (db_exec(db, base + Q_UNLOCK, DB_NOARGS) < 0)
		return -1;      /* logged; the lock goes with the session at the latest */
	while (db_fetch(db, base + Q_UNLOCK) == 1)
		;
	return rc;
}
