/* conf - the libconfig file (SPEC §9, §12) as a fully validated struct conf */
#ifndef HERALD_CONF_H
#define HERALD_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "url.h"

#define CONF_PATH_DEFAULT "/etc/herald/herald.conf"
#define CONF_ENV_PATH "HERALD_CONFIG"
#define CONF_ENV_AMQP "HERALD_AMQP_URL"
#define CONF_ENV_MYSQL "HERALD_MYSQL_URL"

#define CONF_ERR_MAX 768
#define CONF_KEY_MAX 160

/* The four channels of §5, in this order everywhere (caps, quiet hours, channels). */
enum conf_channel_id {
	CONF_CH_EMAIL,
	CONF_CH_SMS,
	CONF_CH_PUSH,
	CONF_CH_WEBHOOK,
	CONF_CHANNELS
};

enum conf_prov_type {
	CONF_PROV_SMTP,
	CONF_PROV_HTTP,
	CONF_PROV_FCM,
	CONF_PROV_APNS,
	CONF_PROV_WEBHOOK,
	CONF_PROV_TYPES
};

enum conf_cap_policy { CONF_CAP_DROP, CONF_CAP_DEFER };
enum conf_http_method { CONF_HTTP_POST, CONF_HTTP_PUT, CONF_HTTP_GET };
enum conf_http_content { CONF_HTTP_FORM, CONF_HTTP_JSON };
enum conf_http_auth { CONF_AUTH_NONE, CONF_AUTH_BASIC, CONF_AUTH_BEARER };
enum conf_http_preset { CONF_PRESET_NONE, CONF_PRESET_TWILIO };

struct conf_error {
	char msg[CONF_ERR_MAX];      /* "FILE:LINE: KEY: reason", ready to log */
	char key[CONF_KEY_MAX];      /* dotted path of the faulty key, or "" */
	int line;                    /* 0 when the error has no line */
};

struct conf_strlist {
	char **v;
	size_t n;
};

struct conf_intlist {
	int *v;
	size_t n;
};

/* Per-channel counts indexed by enum conf_channel_id (caps, quotas). */
struct conf_counts {
	int n[CONF_CHANNELS];
};

struct conf_tls {
	char *ca_file;               /* NULL: the system CAs ($SSL_CERT_FILE, else the bundle) */
	char *cert_file;             /* client certificate, with key_file; NULL: none */
	char *key_file;
	bool verify;                 /* false: no certificate or name check (tests only) */
	bool on;                     /* mysql.tls: TLS asked (a mysqls:// URL or a mysql.tls group);
	                                the broker's is asked by amqps:// (url.tls) */
};

struct conf_broker_user {
	char *name;                  /* broker (AMQP) user name */
	struct conf_strlist clients; /* client ids it may send as */
};

struct conf_broker {
	char *url;                   /* NULL when neither the file nor the env gives one */
	struct url parsed;           /* valid when url != NULL */
	bool url_from_env;
	int prefetch;
	int heartbeat;               /* seconds, 0 = off */
	int connect_timeout;
	int confirm_timeout;
	int blocked_timeout;
	struct conf_tls tls;
	struct conf_broker_user *users;
	size_t nusers;
};

struct conf_mysql {
	char *url;                   /* NULL when neither the file nor the env gives one */
	struct url parsed;
	bool url_from_env;
	int connect_timeout;
	int read_timeout;
	int write_timeout;
	struct conf_tls tls;
};

struct conf_log {
	int level;                   /* enum log_level (log.h): debug, info, warn, error */
	char *file;                  /* NULL: stderr */
	int syslog;                  /* LOG_DAEMON etc.; -1: off */
};

struct conf_limits {
	int request_max;
	int metadata_max;
	int sms_body_max;
	int push_payload_max;
};

struct conf_category {
	char *name;
	int priority;                /* 0-9, used when a request gives none */
	bool cap_exempt;
	int cap_policy;              /* enum conf_cap_policy */
	bool quiet_hours;            /* false: ignores quiet hours */
};

struct conf_retry {
	struct conf_intlist tiers;   /* seconds, strictly increasing */
};

struct conf_idempotency {
	int window;                  /* seconds */
};

struct conf_pref {
	char *key;                   /* "CHANNEL", "CATEGORY" or "CATEGORY.CHANNEL" */
	bool on;
};

struct conf_preferences {
	struct conf_pref *defaults;
	size_t ndefaults;
};

struct conf_quiet_hours {
	bool channels[CONF_CHANNELS];
};

struct conf_provider {
	char *name;
	int type;                    /* enum conf_prov_type */
	int timeout;                 /* seconds */
	char *url;
	char *username;              /* smtp, http */
	char *password;              /* smtp, http */
	bool starttls;               /* smtp */
	char *from;                  /* smtp */
	char *reply_to;              /* smtp */
	int method;                  /* http: enum conf_http_method */
	struct conf_strlist headers; /* http: "Name: value" */
	char *body;                  /* http: body template */
	int content_type;            /* http: enum conf_http_content */
	int auth;                    /* http: enum conf_http_auth */
	char *token;                 /* http: bearer token */
	int preset;                  /* http: enum conf_http_preset */
	char *service_account_file;  /* fcm */
	char *token_url;             /* fcm */
	char *project_id;            /* fcm; NULL: from the service account file */
	char *key_file;              /* apns */
	char *key_id;                /* apns */
	char *team_id;               /* apns */
	char *topic;                 /* apns */
	struct conf_strlist secrets; /* webhook: 0-2 signing secrets, newest first */
	char *ca_file;               /* CA bundle to verify the provider with; NULL: the system's */
	char *message_id_field;      /* http: dotted path of the message id in a JSON answer */
};

struct conf_channel {
	int workers;
	int workers_min;             /* autoscale when workers_max > 0 */
	int workers_max;
	int rate;                    /* messages/second per provider host, 0 = no limit */
	int in_flight;               /* deliveries a worker has sent and not yet recorded */
	bool allow_private;          /* webhook only */
	bool tls_verify;
	struct conf_provider *providers;   /* failover order */
	size_t nproviders;
};

struct conf_sender {
	char *email_from;
	char *reply_to;
	char *sms_sender;
};

struct conf_client {
	char *name;                  /* client id */
	char *email_from;
	char *reply_to;
	char *sms_sender;
	struct conf_strlist webhook_secrets;
	struct conf_counts caps;     /* -1: the global cap */
	struct conf_counts quotas;   /* per UTC day; 0: none */
};

struct conf_unsubscribe {
	char *secret;
	char *url;
	int ttl;
};

struct conf_metrics {
	char *listen;                /* "host:port" on a loopback address; "" = off */
	int depth_interval;          /* seconds between two reads of the queue depths */
};

/* Autoscale of the channels whose workers_max > 0 (workers/autoscale.h). */
struct conf_autoscale {
	int interval;                /* seconds between two decisions */
	int up_depth;                /* messages waiting per worker above which a channel grows */
	int down_depth;              /* messages waiting at or below which it shrinks */
	int sustain;                 /* decisions in a row a condition must hold */
	int cooldown;                /* seconds after a change before the next one */
};

struct conf_heraldd {
	char *user;
	char *group;
	char *pidfile;
	char *control;               /* the control socket (heraldctl workers) */
	int grace;
	bool daemonize;
	int respawn_backoff_max;
};

struct conf_scheduler {
	int interval;
};

struct conf_ledger {
	int batch;
	int flush_ms;
};

struct conf_retention {
	int days;
};

struct conf {
	char *path;                  /* the file named, read or not */
	bool file_read;              /* false: defaults + environment only */
	mode_t mode;                 /* the file's st_mode, 0 when not read */
	bool has_secrets;            /* the file holds a password, token, secret or key material */
	char secret_key[CONF_KEY_MAX];   /* the first such key, for the refusal message */
	unsigned long sections;      /* top-level groups present in the file (conf_has) */

	struct conf_broker broker;
	struct conf_mysql mysql;
	struct conf_log log;
	struct conf_limits limits;
	struct conf_category *categories;
	size_t ncategories;
	struct conf_retry retry;
	struct conf_idempotency idempotency;
	struct conf_preferences preferences;
	struct conf_quiet_hours quiet_hours;
	struct conf_counts caps;     /* 0 = no cap */
	struct conf_channel channels[CONF_CHANNELS];
	struct conf_client *clients;
	size_t nclients;
	struct conf_sender defaults;
	struct conf_unsubscribe unsubscribe;
	struct conf_metrics metrics;
	struct conf_autoscale autoscale;
	struct conf_heraldd heraldd;
	struct conf_scheduler scheduler;
	struct conf_ledger ledger;
	struct conf_retention retention;
};

/* conf_path - the file to read: CLI (-c), else $HERALD_CONFIG, else CONF_PATH_DEFAULT */
const char *conf_path(const char *cli);
/* conf_load - read and validate PATH (NULL: conf_path(NULL)) into OUT, apply the §12
 * environment; -1 with ERR filled and OUT zeroed on any error. A missing file is
 * accepted only at CONF_PATH_DEFAULT when HERALD_AMQP_URL or HERALD_MYSQL_URL is set. */
int conf_load(const char *path, struct conf *out, struct conf_error *err);
/* conf_free - release everything conf_load allocated; C may be zeroed or loaded */
void conf_free(struct conf *c);
/* conf_has - whether the file held the top-level group SECTION (or, for broker and
 * mysql, whether a URL came from the file or the environment) */
bool conf_has(const struct conf *c, const char *section);
/* conf_require - -1 with "FILE: SECTION: section required by PROG" when !conf_has */
int conf_require(const struct conf *c, const char *section, struct conf_error *err);

/* conf_system_ca - the system's CA bundle for a tls group without ca_file: $SSL_CERT_FILE, else
 * the first of the usual bundle paths readable; NULL when none */
const char *conf_system_ca(void);

/* conf_channel_parse - "email" etc. to enum conf_channel_id; -1 if unknown */
int conf_channel_parse(const char *name);
/* conf_channel_name - enum conf_channel_id to its name */
const char *conf_channel_name(int ch);
/* conf_prov_type_name - enum conf_prov_type to its name */
const char *conf_prov_type_name(int type);
/* conf_category_find - the category NAME, or NULL */
const struct conf_category *conf_category_find(const struct conf *c, const char *name);
/* conf_client_find - the client ID's overrides, or NULL */
const struct conf_client *conf_client_find(const struct conf *c, const char *id);

#endif
