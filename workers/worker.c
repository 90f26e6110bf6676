/* worker - placeholder until the pipeline lands (the lead is writing it) */
#include "config.h"

#include <sysexits.h>

#include "log.h"
#include "worker.h"

/* worker_main - not written yet */
int worker_main(const struct conf *c, int ch)
{
	(void)c;
	log_error("event=worker_missing channel=%d", ch);
	return EX_SOFTWARE;
}
