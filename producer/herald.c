/* herald - libherald's connection: config, connect with bounded waits, topology, confirms */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>

#include "herald_int.h"
#include "topology.h"

/* herald_strerror - a short text for STATUS */
const char *herald_strerror(int status)
{
	switch (status) {
	case HERALD_OK: return "ok";
	case HERALD_EINVAL: return "invalid request";
	case HERALD_ECONFIG: return "configuration error";
	case HERALD_ECONNECT: return "broker unreachable or connection lost";
	case HERALD_ETOPOLOGY: return "broker topology could not be declared";
	case HERALD_ETIMEOUT: return "broker did not confirm in time";
	case HERALD_EBLOCKED: return "broker blocked publishing (resource alarm)";
	case HERALD_ENACK: return "broker refused the message";
	case HERALD_ERETURN: return "message could not be routed";
	case HERALD_ENOMEM: return "out of memory";
	case HERALD_EUSAGE: return "bad use of the API";
	}
	return "unknown status";
}

/* herald_error - the last error of H in words */
const char *herald_error(const struct herald *h)
{
	return h == NULL ? "" : h->err;
}

/* herald_fail - record a connection-fatal STATUS with a message in H; returns STATUS */
int herald_fail(struct herald *h, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(h->err, sizeof h->err, fmt, ap);
	va_end(ap);
	if (h->dead == HERALD_OK)
		h->dead = status;
	return status;
}

/* herald_rpc - check the last rpc reply of H's connection; 0, or -1 with H->err set */
static int herald_rpc(struct herald *h, const char *what)
{
	amqp_rpc_reply_t r = amqp_get_rpc_reply(h->conn);

	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		return 0;
	topology_rpc_error(h->conn, HERALD_CHAN, r, what, h->err, sizeof h->err);
	return -1;
}

/* herald_system_ca - the system's CA bundle: $SSL_CERT_FILE, else the first bundle found; or NULL.
 * rabbitmq-c 0.11 loads no default CAs, so without this an amqps:// URL with no ca_file trusts nothing. */
static const char *herald_system_ca(void)
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

/* herald_socket - a TCP or TLS socket for H's broker URL, with the certificate checks */
static amqp_socket_t *herald_socket(struct herald *h)
{
	const struct conf_broker *b = &h->conf.broker;
	const char *ca = b->tls.ca_file;
	amqp_socket_t *s;

	if (!b->parsed.tls) {
		if ((s = amqp_tcp_socket_new(h->conn)) == NULL)
			snprintf(h->err, sizeof h->err, "cannot create a TCP socket");
		return s;
	}
	if ((s = amqp_ssl_socket_new(h->conn)) == NULL) {
		snprintf(h->err, sizeof h->err, "cannot create a TLS socket");
		return NULL;
	}
	amqp_ssl_socket_set_verify_peer(s, b->tls.verify);
	amqp_ssl_socket_set_verify_hostname(s, b->tls.verify);
	if (ca == NULL && b->tls.verify && (ca = herald_system_ca()) == NULL) {
		snprintf(h->err, sizeof h->err, "amqps: no CA to verify the broker with: set broker.tls.ca_file");
		return NULL;
	}
	if (ca != NULL && amqp_ssl_socket_set_cacert(s, ca) != AMQP_STATUS_OK) {
		snprintf(h->err, sizeof h->err, "%s %s: cannot load",
		    b->tls.ca_file != NULL ? "broker.tls.ca_file" : "system CA bundle", ca);
		return NULL;
	}
	if (b->tls.cert_file != NULL && b->tls.key_file != NULL &&
	    amqp_ssl_socket_set_key(s, b->tls.cert_file, b->tls.key_file) != AMQP_STATUS_OK) {
		snprintf(h->err, sizeof h->err, "broker.tls.cert_file %s / key_file %s: cannot load",
		    b->tls.cert_file, b->tls.key_file);
		return NULL;
	}
	return s;
}

/* herald_open_error - H->err for a failed socket open (status RC), the TLS failures in words */
static void herald_open_error(struct herald *h, int rc)
{
	const struct conf_broker *b = &h->conf.broker;
	const struct url *u = &b->parsed;
	const char *ca = b->tls.ca_file != NULL ? b->tls.ca_file : herald_system_ca();

	switch (rc) {
	case AMQP_STATUS_SSL_PEER_VERIFY_FAILED:
		snprintf(h->err, sizeof h->err, "TLS to %s:%d: the broker's certificate is not trusted "
		    "(verified with %s %s)", u->host, u->port,
		    b->tls.ca_file != NULL ? "broker.tls.ca_file" : "the system CAs", ca != NULL ? ca : "");
		break;
	case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED:
		snprintf(h->err, sizeof h->err, "TLS to %s:%d: the broker's certificate is not valid for "
		    "the name %s (rabbitmq-c checks DNS names only: use a host name the certificate carries)",
		    u->host, u->port, u->host);
		break;
	case AMQP_STATUS_SSL_CONNECTION_FAILED:
	case AMQP_STATUS_SSL_ERROR:
		snprintf(h->err, sizeof h->err, "TLS to %s:%d: handshake failed (%s); is it a TLS port?",
		    u->host, u->port, amqp_error_string2(rc));
		break;
	default:
		snprintf(h->err, sizeof h->err, "connect to %s:%d: %s", u->host, u->port,
		    amqp_error_string2(rc));
	}
}

/* herald_connect - open, log in, open the channel, declare the topology, select confirms */
static int herald_connect(struct herald *h)
{
	const struct conf_broker *b = &h->conf.broker;
	const struct url *u = &b->parsed;
	struct timeval tv = { .tv_sec = b->connect_timeout };
	amqp_table_entry_t cap, props[2];
	amqp_table_t client;
	amqp_socket_t *s;
	amqp_rpc_reply_t r;
	int rc;

	if ((h->conn = amqp_new_connection()) == NULL)
		return HERALD_ENOMEM;
	if ((s = herald_socket(h)) == NULL)
		return HERALD_ECONFIG;
	if ((rc = amqp_socket_open_noblock(s, u->host, u->port, &tv)) != AMQP_STATUS_OK) {
		herald_open_error(h, rc);
		return HERALD_ECONNECT;
	}
	amqp_set_rpc_timeout(h->conn, &tv);
	/* ask for connection.blocked, which rabbitmq-c 0.11 does not announce by itself */
	cap.key = amqp_cstring_bytes("connection.blocked");
	cap.value.kind = AMQP_FIELD_KIND_BOOLEAN;
	cap.value.value.boolean = 1;
	props[0].key = amqp_cstring_bytes("capabilities");
	props[0].value.kind = AMQP_FIELD_KIND_TABLE;
	props[0].value.value.table.num_entries = 1;
	props[0].value.value.table.entries = &cap;
	props[1].key = amqp_cstring_bytes("product");
	props[1].value.kind = AMQP_FIELD_KIND_UTF8;
	props[1].value.value.bytes = amqp_cstring_bytes("libherald");
	client.num_entries = 2;
	client.entries = props;
	r = amqp_login_with_properties(h->conn, u->path, 0, 131072, b->heartbeat, &client,
	    AMQP_SASL_METHOD_PLAIN, h->user, u->password);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		char what[URL_PART_MAX * 3 + 64];

		snprintf(what, sizeof what, "log in to %s:%d vhost %s as %s", u->host, u->port, u->path,
		    h->user);
		topology_rpc_error(h->conn, 0, r, what, h->err, sizeof h->err);
		return HERALD_ECONNECT;
	}
	amqp_channel_open(h->conn, HERALD_CHAN);
	if (herald_rpc(h, "open channel") < 0)
		return HERALD_ECONNECT;
	if (topology_declare(h->conn, HERALD_CHAN, &h->conf, h->err, sizeof h->err) < 0)
		return HERALD_ETOPOLOGY;
	amqp_confirm_select(h->conn, HERALD_CHAN);
	if (herald_rpc(h, "confirm.select") < 0)
		return HERALD_ECONNECT;
	/* rabbitmq-c 0.11 writes block: bound them, so a broker that stops reading is an error */
	tv.tv_sec = b->confirm_timeout;
	setsockopt(amqp_get_sockfd(h->conn), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	h->next_tag = 1;
	h->base = 1;
	return HERALD_OK;
}

/* herald_reconnect - drop the lost connection and connect again, up to 3 tries a second apart */
int herald_reconnect(struct herald *h)
{
	int rc = HERALD_ECONNECT, i;

	for (i = 0; i < 3; i++) {
		if (i > 0)
			sleep(1);
		if (h->conn != NULL)
			amqp_destroy_connection(h->conn);
		h->conn = NULL;
		h->blocked = false;
		if ((rc = herald_connect(h)) == HERALD_OK) {
			h->reconnects++;
			return HERALD_OK;
		}
	}
	return rc;
}

/* herald_categories - the NULL-terminated category names of H's conf for the codec */
static int herald_categories(struct herald *h)
{
	size_t i;

	if ((h->categories = calloc(h->conf.ncategories + 1, sizeof *h->categories)) == NULL)
		return -1;
	for (i = 0; i < h->conf.ncategories; i++)
		h->categories[i] = h->conf.categories[i].name;
	h->lim.categories = h->conf.ncategories > 0 ? h->categories : NULL;
	h->lim.max_request = (size_t)h->conf.limits.request_max;
	h->lim.max_metadata = (size_t)h->conf.limits.metadata_max;
	return 0;
}

/* herald_open - config, connection, topology; HERALD_OK with *OUT or a status with ERR */
int herald_open(const char *path, struct herald **out, char *err, size_t errlen)
{
	struct conf_error ce;
	struct herald *h;
	int rc;

	if (out == NULL)
		return HERALD_EUSAGE;
	*out = NULL;
	if ((h = calloc(1, sizeof *h)) == NULL)
		return HERALD_ENOMEM;
	h->window = 1000;
	if (conf_load(path, &h->conf, &ce) < 0) {
		snprintf(h->err, sizeof h->err, "%s", ce.msg);
		rc = HERALD_ECONFIG;
		goto fail;
	}
	if (h->conf.broker.url == NULL) {
		snprintf(h->err, sizeof h->err, "%s: no broker: set broker.url or %s", h->conf.path,
		    CONF_ENV_AMQP);
		rc = HERALD_ECONFIG;
		goto fail;
	}
	snprintf(h->user, sizeof h->user, "%s",
	    h->conf.broker.parsed.user[0] != '\0' ? h->conf.broker.parsed.user : "guest");
	if (herald_categories(h) < 0 ||
	    (h->slots = calloc(h->window, sizeof *h->slots)) == NULL) {
		rc = HERALD_ENOMEM;
		goto fail;
	}
	if ((rc = herald_connect(h)) != HERALD_OK)
		goto fail;
	*out = h;
	return HERALD_OK;
fail:
	if (err != NULL)
		snprintf(err, errlen, "%s", h->err);
	herald_close(h);
	return rc;
}

/* herald_set_window - unconfirmed messages allowed in flight; only before the first submit */
void herald_set_window(struct herald *h, unsigned n)
{
	struct slot *s;

	if (h == NULL || h->head != NULL || h->next_tag != h->base)
		return;
	if (n < 2)
		n = 2;
	if ((s = calloc(n, sizeof *s)) == NULL)
		return;
	free(h->slots);
	h->slots = s;
	h->window = n;
}

/* herald_close - close the connection and free H */
void herald_close(struct herald *h)
{
	if (h == NULL)
		return;
	if (h->head != NULL) {
		if (h->dead == HERALD_OK)
			herald_fail(h, HERALD_EUSAGE, "closed with requests unconfirmed");
		publish_drop(h);
	}
	if (h->conn != NULL) {
		if (h->dead == HERALD_OK && h->next_tag > 0) {
			amqp_channel_close(h->conn, HERALD_CHAN, AMQP_REPLY_SUCCESS);
			amqp_connection_close(h->conn, AMQP_REPLY_SUCCESS);
		}
		amqp_destroy_connection(h->conn);
	}
	free(h->slots);
	free(h->due);
	free(h->categories);
	conf_free(&h->conf);
	free(h);
}
