#include <string.h>
#include "behemoth.h"
#include "behemoth_internal.h"

/* One message per thread, as sqlite3_errmsg: valid until the next call on that thread. */
static _Thread_local char last_error[4096];

BH_HIDDEN void bh__set_error(const char *message) {
    if (!message) { last_error[0] = 0; return; }
    strncpy(last_error, message, sizeof last_error - 1);
    last_error[sizeof last_error - 1] = 0;
}

BH_HIDDEN void bh__clear_error(void) { last_error[0] = 0; }

const char *bh_last_error(void) { return last_error; }
