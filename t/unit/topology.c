/* t/unit/topology - the §3 names: versioned channel, delay tier and parking queues */
#include "config.h"

#include "conf.h"
#include "tap.h"
#include "topology.h"

int main(void)
{
	char b[TOPOLOGY_NAME_MAX];

	plan(7);
	is_str(topology_channel_queue(CONF_CH_EMAIL, b, sizeof b), "herald.email.v1",
	    "email channel queue");
	is_str(topology_channel_queue(CONF_CH_WEBHOOK, b, sizeof b), "herald.webhook.v1",
	    "webhook channel queue");
	is_str(topology_tier_queue(CONF_CH_SMS, 10, b, sizeof b), "herald.sms.v1.delay.10s",
	    "delay tier names its TTL");
	is_str(topology_tier_queue(CONF_CH_PUSH, 21600, b, sizeof b), "herald.push.v1.delay.21600s",
	    "6 h tier");
	is_str(topology_parking_queue(CONF_CH_PUSH, b, sizeof b), "herald.push.v1.parked",
	    "parking queue");
	is_str(TOPOLOGY_LEDGER_QUEUE, "herald.ledger.v1", "ledger queue");
	is_int(TOPOLOGY_MAX_PRIORITY, 9, "x-max-priority 9");
	return done();
}
