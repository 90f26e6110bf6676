-- 0001_core.sql - herald's first schema: users, limits, notifications and their trail (SPEC §4-§8)
--
-- Portable: runs unchanged on MySQL 8.0 and MariaDB 10.11 (InnoDB, utf8mb4, DYNAMIC rows; no
-- vendor-only syntax; no triggers or procedures, which binary logging makes need SUPER).
-- heraldctl db migrate runs a file one statement at a time: a statement ends with ';' at the end
-- of a line, and no line inside a statement (comment or string) may end with ';'. Write
-- comments on lines of their own, starting with '--'.
--
-- Times: DATETIME(6), always UTC. db.c sets each session's time_zone to '+00:00', so the
-- CURRENT_TIMESTAMP(6) defaults are UTC too. Not TIMESTAMP: it ends in 2038 and converts
-- through the session time zone.
--
-- Transaction ids: CHAR(36) CHARACTER SET ascii, the canonical UUID text, not BINARY(16). The id
-- is text everywhere else (producer answers, events, webhook bodies, logs, heraldctl status),
-- MariaDB 10.11 has no UUID_TO_BIN() and MySQL 8 no UUID type, so text needs no conversion in
-- any statement or ad-hoc query and cannot be converted wrongly. The 20 extra bytes sit only
-- in notifications' unique key and the small per-transaction tables: the big child tables
-- (audit trail, device outcomes) refer to the notification's BIGINT id instead.
--
-- Exact identifiers (user ids, tokens, keys, addresses) are utf8mb4_bin or ascii_bin; the
-- application normalises addresses (lower-case e-mail, E.164 phone) before it stores them.
-- Recipient keys (caps, idempotency): 'u:' + user_id for a user, 'a:' + address for a `to`
-- recipient, 'h:' + hex SHA-256 of the address when it is longer than 250 bytes.
--
-- Statuses (§7): queued, deferred, ready, retry (not final); done, failed, opt_out, paused,
-- rate_limited, invalid_user, no_address, suppressed, duplicate, expired, cancelled (final).

-- schema_migrations: one row per applied file, written by heraldctl db migrate after the file's
-- last statement. checksum: SHA-256 (hex) of the file; a change after applying is refused.
CREATE TABLE IF NOT EXISTS schema_migrations (
	version     INT UNSIGNED NOT NULL,
	name        VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	checksum    CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	applied_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	PRIMARY KEY (version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- ---------------------------------------------------------------------------------------------
-- Users (§8). user_id is the external id the producers use; it is the key everywhere, so that
-- notifications keep it after the user is deleted. paused_until: NULL not paused;
-- '9999-12-31 23:59:59' paused until unpaused.
CREATE TABLE IF NOT EXISTS users (
	user_id       VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	first_name    VARCHAR(255) NULL,
	last_name     VARCHAR(255) NULL,
	email         VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
	phone         VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NULL,
	timezone      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'UTC',
	locale        VARCHAR(35) CHARACTER SET ascii COLLATE ascii_bin NULL,
	paused_until  DATETIME(6) NULL,
	webhook_url   VARCHAR(2048) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
	created_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	updated_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
	PRIMARY KEY (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- devices: push targets; a token belongs to one user (an import that meets it moves it).
CREATE TABLE IF NOT EXISTS devices (
	id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
	user_id     VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	platform    VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	token       VARCHAR(512) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	updated_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
	PRIMARY KEY (id),
	UNIQUE KEY devices_token (token),
	KEY devices_user (user_id),
	CONSTRAINT devices_user_fk FOREIGN KEY (user_id) REFERENCES users (user_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- preferences: pref_key is CHANNEL, CATEGORY or CATEGORY.CHANNEL (§4 step 4); a missing key is on.
CREATE TABLE IF NOT EXISTS preferences (
	user_id     VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	pref_key    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	enabled     BOOLEAN NOT NULL,
	updated_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
	PRIMARY KEY (user_id, pref_key),
	CONSTRAINT preferences_user_fk FOREIGN KEY (user_id) REFERENCES users (user_id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- quiet_hours: one window per user in the user's time zone, minutes since local midnight;
-- start > end wraps midnight (22:00-07:00 is 1320, 420).
CREATE TABLE IF NOT EXISTS quiet_hours (
	user_id       VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	start_minute  SMALLINT UNSIGNED NOT NULL,
	end_minute    SMALLINT UNSIGNED NOT NULL,
	updated_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
	PRIMARY KEY (user_id),
	CONSTRAINT quiet_hours_user_fk FOREIGN KEY (user_id) REFERENCES users (user_id) ON DELETE CASCADE,
	CONSTRAINT quiet_hours_minutes_ck CHECK (start_minute < 1440 AND end_minute < 1440)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- suppressions: addresses never to send to on a channel (hard bounce, provider-reported invalid,
-- complaint, manual). Keyed by address first: heraldctl suppress works by address.
CREATE TABLE IF NOT EXISTS suppressions (
	address     VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	channel     VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	reason      VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	detail      VARCHAR(1024) NULL,
	created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	PRIMARY KEY (address, channel)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- ---------------------------------------------------------------------------------------------
-- Caps and quotas (§4 step 6). caps: values set with heraldctl caps; they win over the config
-- file. client_id '' is the value for every client (a primary key cannot hold NULL);
-- daily_cap NULL means no cap.
CREATE TABLE IF NOT EXISTS caps (
	channel     VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	client_id   VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',
	daily_cap   INT UNSIGNED NULL,
	updated_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
	PRIMARY KEY (channel, client_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- client_quotas: per-client daily quota per channel (UTC day); over it: rate_limited, client_quota.
CREATE TABLE IF NOT EXISTS client_quotas (
	client_id    VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	channel      VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	daily_quota  INT UNSIGNED NOT NULL,
	updated_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
	PRIMARY KEY (client_id, channel)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- daily_counters: slots used per day. scope 'cap': subject is the recipient key, day the
-- recipient's local day; scope 'quota': subject is the client id, day the UTC day.
-- Reserve atomically in one statement (never exceeds CAP, whatever the concurrency):
--   INSERT INTO daily_counters (scope, subject, channel, day, n) VALUES (?, ?, ?, ?, 1)
--   ON DUPLICATE KEY UPDATE n = LAST_INSERT_ID(IF(n < CAP, n + 1, n))
-- affected rows 1: first slot today; 2: slot number LAST_INSERT_ID(); 0: cap reached.
CREATE TABLE IF NOT EXISTS daily_counters (
	scope    VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	subject  VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	channel  VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	day      DATE NOT NULL,
	n        INT UNSIGNED NOT NULL,
	PRIMARY KEY (scope, subject, channel, day),
	KEY daily_counters_day (day),
	CONSTRAINT daily_counters_scope_ck CHECK (scope IN ('cap', 'quota'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- counter_reservations: the slot a transaction holds, so that a retry, a redelivery or the
-- scheduler finds it and goes on instead of counting again. Written in the same transaction as
-- the counter. Delivered: delete the row (the slot stays used). Ended without delivery: delete
-- the row and, only when that deleted one, decrement the counter (n > 0), in one transaction,
-- so a slot is never given back twice.
CREATE TABLE IF NOT EXISTS counter_reservations (
	transaction_id  CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	channel         VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	scope           VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	subject         VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	day             DATE NOT NULL,
	created_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	PRIMARY KEY (transaction_id, channel, scope),
	KEY counter_reservations_day (day),
	CONSTRAINT counter_reservations_scope_ck CHECK (scope IN ('cap', 'quota'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- idempotency_claims (§2): the first transaction that used (client, key, recipient). A later
-- transaction finding an unexpired claim ends duplicate; an expired claim may be taken over
-- (UPDATE ... WHERE expires_at <= now).
CREATE TABLE IF NOT EXISTS idempotency_claims (
	client_id        VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	idempotency_key  VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	recipient        VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	transaction_id   CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	created_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	expires_at       DATETIME(6) NOT NULL,
	PRIMARY KEY (client_id, idempotency_key, recipient),
	KEY idempotency_claims_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- ---------------------------------------------------------------------------------------------
-- Notifications (§7): the current status per (transaction id, channel). user_id is the external
-- id without a foreign key (history outlives the user); recipient is the address of a `to`
-- request. created_at is the producer's acceptance time; purge goes by it. deferred_until is
-- set while the status is deferred: when the scheduler requeues it (cleared on leaving).
-- Indexes: the unique key serves every per-message lookup and status TXID; user_created serves
-- history USER [--since] newest first (and --batch, filtered on the user's rows); batch_status
-- serves cancel --batch; deferred the scheduler's due scan; created purge --older-than.
CREATE TABLE IF NOT EXISTS notifications (
	id                   BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
	transaction_id       CHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	channel              VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	status               VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	user_id              VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
	recipient            VARCHAR(2048) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
	client_id            VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	category             VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	priority             TINYINT UNSIGNED NOT NULL,
	batch_id             VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
	metadata             JSON NULL,
	template             VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
	template_version     INT UNSIGNED NULL,
	attempt              SMALLINT UNSIGNED NOT NULL DEFAULT 0,
	provider             VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,
	provider_message_id  VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
	detail               JSON NULL,
	send_at              DATETIME(6) NULL,
	expires_at           DATETIME(6) NULL,
	deferred_until       DATETIME(6) NULL,
	created_at           DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	updated_at           DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
	PRIMARY KEY (id),
	UNIQUE KEY notifications_txid_channel (transaction_id, channel),
	KEY notifications_user_created (user_id, created_at, id),
	KEY notifications_batch_status (batch_id, status),
	KEY notifications_deferred (deferred_until),
	KEY notifications_created (created_at),
	CONSTRAINT notifications_status_ck CHECK (status IN ('queued', 'deferred', 'ready', 'retry',
		'done', 'failed', 'opt_out', 'paused', 'rate_limited', 'invalid_user', 'no_address',
		'suppressed', 'duplicate', 'expired', 'cancelled')),
	CONSTRAINT notifications_priority_ck CHECK (priority <= 9)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- notification_audit: append-only trail, one row per status change, written in the transaction
-- that changes the status. old_status NULL: the first record. detail: error, provider response,
-- provider message id, template version. Rows go only with their notification (purge).
CREATE TABLE IF NOT EXISTS notification_audit (
	id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
	notification_id  BIGINT UNSIGNED NOT NULL,
	old_status       VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NULL,
	new_status       VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	changed_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	host             VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	worker           VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	attempt          SMALLINT UNSIGNED NOT NULL DEFAULT 0,
	detail           JSON NULL,
	PRIMARY KEY (id),
	KEY notification_audit_notification (notification_id, id),
	CONSTRAINT notification_audit_fk FOREIGN KEY (notification_id) REFERENCES notifications (id)
		ON DELETE CASCADE,
	CONSTRAINT notification_audit_status_ck CHECK (new_status IN ('queued', 'deferred', 'ready',
		'retry', 'done', 'failed', 'opt_out', 'paused', 'rate_limited', 'invalid_user',
		'no_address', 'suppressed', 'duplicate', 'expired', 'cancelled'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- device_outcomes (§5 push): each device's outcome, so a retry sends only to devices not yet
-- accepted. outcome: accepted, rejected, unregistered (final) or retry. The token is copied:
-- an unregistered device is removed from devices.
CREATE TABLE IF NOT EXISTS device_outcomes (
	notification_id      BIGINT UNSIGNED NOT NULL,
	token                VARCHAR(512) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	platform             VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	outcome              VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	attempt              SMALLINT UNSIGNED NOT NULL DEFAULT 0,
	provider_message_id  VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
	detail               JSON NULL,
	updated_at           DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
	PRIMARY KEY (notification_id, token),
	CONSTRAINT device_outcomes_fk FOREIGN KEY (notification_id) REFERENCES notifications (id)
		ON DELETE CASCADE,
	CONSTRAINT device_outcomes_outcome_ck CHECK (outcome IN ('accepted', 'rejected',
		'unregistered', 'retry'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- deferred_messages: the message a deferred notification is requeued with by the scheduler
-- (body and AMQP headers as the worker received them); deleted when it is requeued.
CREATE TABLE IF NOT EXISTS deferred_messages (
	notification_id  BIGINT UNSIGNED NOT NULL,
	body             MEDIUMBLOB NOT NULL,
	headers          JSON NULL,
	created_at       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	PRIMARY KEY (notification_id),
	CONSTRAINT deferred_messages_fk FOREIGN KEY (notification_id) REFERENCES notifications (id)
		ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- event_outbox (§3 events): written in the status change's transaction, published to
-- herald.events after commit (id as the AMQP message id, so consumers can drop a repeat), and
-- deleted once the broker confirmed it. Publishers take rows in id order with
-- SELECT ... FOR UPDATE SKIP LOCKED (MySQL 8.0.1+, MariaDB 10.6+).
CREATE TABLE IF NOT EXISTS event_outbox (
	id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
	routing_key  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	body         MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	created_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- cancellations (§7 cancel): a worker meeting a cancelled transaction or batch ends it
-- cancelled, so messages still in a queue (not yet in notifications) are caught too.
CREATE TABLE IF NOT EXISTS cancellations (
	kind        VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	target      VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	PRIMARY KEY (kind, target),
	KEY cancellations_created (created_at),
	CONSTRAINT cancellations_kind_ck CHECK (kind IN ('transaction', 'batch'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
