/* worker - one channel worker process (SPEC §4): consume, admit, render, deliver, record, ack */
#ifndef HERALD_WORKER_H
#define HERALD_WORKER_H

struct conf;

/* worker_main - run the worker of channel CH (enum conf_channel_id) with config C until
 * SIGTERM/SIGINT (drain: finish in-flight deliveries, record, ack); returns an EX_ exit code */
int worker_main(const struct conf *c, int ch);

#endif
