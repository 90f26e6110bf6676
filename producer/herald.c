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

#include "broker.h"
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

/* herald_connect - open, log in, open the channel, declare the topology, select confirms */
static int herald_connect(struct herald *h)
{
	const struct conf_broker *b = &h->conf.broker;
	struct timeval tv = { .tv_sec = b->confirm_timeout };
	int config;

	if ((h->conn = broker_open(b, "libherald", HERALD_CHAN, &config, h->err, sizeof h->err)) == NULL)
		return config ? HERALD_ECONFIG : HERALD_ECONNECT;
	if (topology_declare(h->conn, HERALD_CHAN, &h->conf, h->err, sizeof h->err) < 0)
		return HERALD_ETOPOLOGY;
	amqp_confirm_select(h->conn, HERALD_CHAN);
	if (herald_rpc(h, "confirm.select") < 0)
		return HERALD_ECONNECT;
	/* rabbitmq-c 0.11 writes block: bound them, so a broker that stops reading is an error */
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
	snprintf(h->user, sizeof h->user, "%s", broker_user(&h->conf.broker));
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
