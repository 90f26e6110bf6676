/* txid - transaction and message ids: random (version 4) UUIDs in canonical text form */
#ifndef HERALD_TXID_H
#define HERALD_TXID_H

#include <stdbool.h>

#define TXID_LEN 36          /* "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" without the NUL */

/* txid_new - write a fresh random UUID (lower case, NUL-terminated) into OUT; -1 if no entropy */
int txid_new(char out[TXID_LEN + 1]);
/* txid_valid - true when S is a canonical UUID text (any version, lower case: ids are
 * compared byte for byte, so callers lower-case what a person typed first) */
bool txid_valid(const char *s);

#endif
