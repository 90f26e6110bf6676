-- 0002_templates.sql - stored templates (SPEC §6): by name, channel and locale, versioned
--
-- locale '' is the default locale, the fallback when the recipient's locale has no version.
-- A new version is a new row (version = the highest + 1); the worker sends the highest version
-- of (name, channel, locale) and records it in the notification and its audit row. Fields per
-- channel: email subject, body (text part), html; sms body; push subject (title), body, data
-- (a JSON object); webhook subject (event). Same rules as 0001 (see its header).
CREATE TABLE IF NOT EXISTS templates (
	name        VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	channel     VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	locale      VARCHAR(35) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
	version     INT UNSIGNED NOT NULL,
	subject     TEXT NULL,
	body        MEDIUMTEXT NULL,
	html        MEDIUMTEXT NULL,
	data        JSON NULL,
	created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	PRIMARY KEY (name, channel, locale, version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
