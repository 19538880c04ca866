/*
 * Compiled by tests/ffi_c.rs with -std=c99 -pedantic -Werror (and run), and as C++11
 * (compiled only): the header needs nothing beyond C99 or C++11.
 */
#include <stdio.h>
#include <string.h>

#include "slotring.h"

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    /* The header a host compiles against must match the library it links. */
    if (slotring_version() != SLOTRING_VERSION_NUMBER) return 1;
    if (SLOTRING_VERSION_NUMBER != SLOTRING_VERSION_MAJOR * 1000000 +
                                       SLOTRING_VERSION_MINOR * 1000 + SLOTRING_VERSION_PATCH)
        return 1;
    if (strlen(slotring_version_string()) < 5) return 1;
    uint64_t token = SLOTRING_TOKEN_NONE;
    SlotringStatus s = slotring_event_release(token);
    if (s != SLOTRING_STATUS_FOREIGN_TOKEN) return 1;
    if (strcmp(slotring_status_message(SLOTRING_STATUS_MISUSE), "unknown status") == 0) return 1;
    if (strcmp(slotring_status_message(SLOTRING_STATUS_OUT_OF_MEMORY), "unknown status") == 0)
        return 1;
    printf("ok %s\n", argv[1]);
    return 0;
}
