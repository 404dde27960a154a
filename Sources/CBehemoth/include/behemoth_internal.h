#ifndef BEHEMOTH_INTERNAL_H
#define BEHEMOTH_INTERNAL_H
/* Library-internal helpers, hidden from the exported symbol table. */
#define BH_HIDDEN __attribute__((visibility("hidden")))
BH_HIDDEN void bh__set_error(const char *message);
BH_HIDDEN void bh__clear_error(void);
#endif
