/*
 * The defects of issue 12, each as a mode of this program (run by tests/ffi_c.rs, one
 * process per mode, since each needs a fresh process-wide allocator and sink):
 *
 *   oom-init      slotring_init with 2^24 - 1 XL slots (256 GiB) under `ulimit -v`
 *   oom-heap      a 3 GiB heap-fallback event under `ulimit -v`
 *   reenter-set   slotring_set_sink_callback from inside the sink callback
 *   reenter-send  handle_ffi_event / slotring_event_send from inside the callback while
 *                 another thread waits in slotring_set_sink_callback
 *   recursion     a callback that delivers again from inside itself, without bound
 *   send-race     two threads sending one single-hold token; send racing release
 *   token-none    token 0 everywhere; calls that must not choose the allocator
 *
 * Each prints "ok <mode>" and exits 0, or exits non-zero. An alarm turns a deadlock
 * into a failure. Written so that it also builds against the header before the fixes
 * (then `SLOTRING_VERSION_MAJOR` is undefined and only "not OK" is checked where the
 * fix adds a new status code).
 */
#define _DEFAULT_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "slotring.h"

#ifdef SLOTRING_VERSION_MAJOR
#define IS_OOM(s) ((s) == SLOTRING_STATUS_OUT_OF_MEMORY)
#define IS_MISUSE(s) ((s) == SLOTRING_STATUS_MISUSE)
#else
#define IS_OOM(s) ((s) != SLOTRING_STATUS_OK)
#define IS_MISUSE(s) ((s) != SLOTRING_STATUS_OK)
#endif

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "deadlock: the alarm went off\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(3);
}

/* ---- out of memory ---------------------------------------------------------------- */

static int accept_and_release(uint64_t token, void *user) {
    (void)user;
    slotring_event_release(token);
    return 0;
}

static void oom_init(void) {
    size_t huge[SLOTRING_POOL_COUNT] = {0, 0, 0, 0, ((size_t)1 << 24) - 1};
    SlotringStatus s = slotring_init(huge, 0);
    CHECK(IS_OOM(s));
    /* Nothing was chosen: a smaller configuration still works. */
    size_t small[SLOTRING_POOL_COUNT] = {4, 4, 4, 4, 4};
    CHECK(slotring_init(small, 0) == SLOTRING_STATUS_OK);
    uint64_t token;
    CHECK(slotring_event_alloc((const uint8_t *)"x", 1, 1, &token) == SLOTRING_STATUS_OK);
    CHECK(slotring_event_release(token) == SLOTRING_STATUS_OK);
}

static void oom_heap(void) {
    CHECK(slotring_init(NULL, 0) == SLOTRING_STATUS_OK);
    size_t len = (size_t)3 << 30;
    /* calloc maps lazily: the source costs address space, not memory. */
    uint8_t *src = calloc(1, len);
    CHECK(src != NULL);
    uint64_t token = 0;
    SlotringStatus s = slotring_event_alloc(src, len, 1, &token);
    CHECK(IS_OOM(s));
    CHECK(token == 0); /* not written on error */
    CHECK(slotring_set_sink_callback(accept_and_release, NULL) == SLOTRING_STATUS_OK);
    CHECK(IS_OOM(handle_ffi_event(src, len, 1)));
    free(src);
    /* Still usable afterwards. */
    CHECK(slotring_event_alloc((const uint8_t *)"small", 5, 1, &token) == SLOTRING_STATUS_OK);
    CHECK(slotring_event_release(token) == SLOTRING_STATUS_OK);
    SlotringStats stats;
    CHECK(slotring_stats(&stats) == SLOTRING_STATUS_OK);
    CHECK(stats.heap_in_use == 0);
}

/* ---- re-entry from the callback --------------------------------------------------- */

static SlotringStatus inner_status = SLOTRING_STATUS_OK;
static int inner_calls = 0;

static int set_from_callback(uint64_t token, void *user) {
    (void)user;
    inner_calls++;
    inner_status = slotring_set_sink_callback(NULL, NULL);
    slotring_event_release(token);
    return 0;
}

static void reenter_set(void) {
    CHECK(slotring_set_sink_callback(set_from_callback, NULL) == SLOTRING_STATUS_OK);
    CHECK(handle_ffi_event((const uint8_t *)"a", 1, 1) == SLOTRING_STATUS_OK);
    CHECK(inner_calls == 1);
    CHECK(IS_MISUSE(inner_status));
    /* The registration is unchanged, and can be changed from outside. */
    CHECK(handle_ffi_event((const uint8_t *)"b", 1, 1) == SLOTRING_STATUS_OK);
    CHECK(inner_calls == 2);
    CHECK(slotring_set_sink_callback(NULL, NULL) == SLOTRING_STATUS_OK);
    CHECK(handle_ffi_event((const uint8_t *)"c", 1, 1) == SLOTRING_STATUS_NO_SINK);
}

static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int writer_go = 0;
static SlotringStatus inner_send = SLOTRING_STATUS_OK;
static SlotringStatus inner_handle = SLOTRING_STATUS_OK;
static uint64_t spare_token = 0;

static void *registering_thread(void *arg) {
    (void)arg;
    pthread_mutex_lock(&gate);
    while (!writer_go) pthread_cond_wait(&gate_cond, &gate);
    pthread_mutex_unlock(&gate);
    /* Waits for the delivery in flight (the callback below) to finish. */
    CHECK(slotring_set_sink_callback(accept_and_release, NULL) == SLOTRING_STATUS_OK);
    return NULL;
}

static int deliver_from_callback(uint64_t token, void *user) {
    (void)user;
    pthread_mutex_lock(&gate);
    writer_go = 1;
    pthread_cond_signal(&gate_cond);
    pthread_mutex_unlock(&gate);
    usleep(200 * 1000); /* let the other thread queue for the registry's write lock */
    inner_handle = handle_ffi_event((const uint8_t *)"inner", 5, 2);
    inner_send = slotring_event_send(spare_token);
    slotring_event_release(token);
    return 0;
}

static void reenter_send(void) {
    CHECK(slotring_event_alloc((const uint8_t *)"spare", 5, 3, &spare_token) ==
          SLOTRING_STATUS_OK);
    CHECK(slotring_set_sink_callback(deliver_from_callback, NULL) == SLOTRING_STATUS_OK);
    pthread_t writer;
    CHECK(pthread_create(&writer, NULL, registering_thread, NULL) == 0);
    CHECK(handle_ffi_event((const uint8_t *)"outer", 5, 1) == SLOTRING_STATUS_OK);
    CHECK(pthread_join(writer, NULL) == 0);
    CHECK(IS_MISUSE(inner_handle));
    CHECK(IS_MISUSE(inner_send));
    /* The failed send left the spare token's hold where it was. */
    CHECK(slotring_event_release(spare_token) == SLOTRING_STATUS_OK);
    CHECK(slotring_event_release(spare_token) == SLOTRING_STATUS_ALREADY_RELEASED);
    CHECK(slotring_set_sink_callback(NULL, NULL) == SLOTRING_STATUS_OK);
}

static int depth = 0;
static int max_depth = 0;

static int recurse(uint64_t token, void *user) {
    (void)user;
    depth++;
    if (depth > max_depth) max_depth = depth;
    SlotringStatus s = handle_ffi_event((const uint8_t *)"again", 5, 1);
    depth--;
    slotring_event_release(token);
    /* The nested call is refused, so this one takes its event. */
    return IS_MISUSE(s) ? 0 : 1;
}

static void recursion(void) {
    CHECK(slotring_set_sink_callback(recurse, NULL) == SLOTRING_STATUS_OK);
    CHECK(handle_ffi_event((const uint8_t *)"start", 5, 1) == SLOTRING_STATUS_OK);
    CHECK(max_depth == 1);
    CHECK(slotring_set_sink_callback(NULL, NULL) == SLOTRING_STATUS_OK);
}

/* ---- send atomic on the token's hold ---------------------------------------------- */

static volatile uint64_t delivered = 0;
static volatile int refuse = 0;

static int count_delivery(uint64_t token, void *user) {
    (void)user;
    if (__atomic_load_n(&refuse, __ATOMIC_RELAXED)) return 1; /* token left untouched */
    __atomic_fetch_add(&delivered, 1, __ATOMIC_RELAXED);
    slotring_event_release(token);
    return 0;
}

struct racer {
    pthread_barrier_t *barrier;
    uint64_t token;
    int release_instead; /* 0: send, 1: release */
    SlotringStatus status;
};

static void *race(void *arg) {
    struct racer *r = arg;
    pthread_barrier_wait(r->barrier);
    r->status = r->release_instead ? slotring_event_release(r->token)
                                   : slotring_event_send(r->token);
    return NULL;
}

/* One round: a fresh single-hold token, two threads on it at once. */
static void race_round(pthread_barrier_t *barrier, int round, int release_instead,
                       struct racer *a, struct racer *b, uint64_t *token) {
    static uint8_t big[20000];
    /* Every eighth event is a heap event (heap tokens live in a separate table). */
    size_t len = (round % 8 == 7) ? sizeof big : 16;
    CHECK(slotring_event_alloc(big, len, 1, token) == SLOTRING_STATUS_OK);
    struct racer ra = {barrier, *token, 0, SLOTRING_STATUS_OK};
    struct racer rb = {barrier, *token, release_instead, SLOTRING_STATUS_OK};
    *a = ra;
    *b = rb;
    pthread_t ta, tb;
    CHECK(pthread_create(&ta, NULL, race, a) == 0);
    CHECK(pthread_create(&tb, NULL, race, b) == 0);
    CHECK(pthread_join(ta, NULL) == 0);
    CHECK(pthread_join(tb, NULL) == 0);
}

static void send_race(void) {
    CHECK(slotring_set_sink_callback(count_delivery, NULL) == SLOTRING_STATUS_OK);
    pthread_barrier_t barrier;
    CHECK(pthread_barrier_init(&barrier, NULL, 2) == 0);
    uint64_t send_oks = 0;
    struct racer a, b;
    uint64_t token;
    /*
     * Accepting sink. A send never reports failure for an event the sink got, and never
     * delivers without reporting success: deliveries == successful sends. (The callback
     * receives its hold in the same token value, so a racer that comes after the
     * delivery may take the callback's hold: a token counts holds, it does not name
     * owners. That is why "exactly one succeeds" is checked with a Rust sink, in
     * tests/ffi.rs, and here with a refusing sink below.)
     */
    for (int round = 0; round < 20000; round++) {
        race_round(&barrier, round, round % 2, &a, &b, &token);
        int oks = (a.status == SLOTRING_STATUS_OK) + (b.status == SLOTRING_STATUS_OK);
        CHECK(oks >= 1);
        send_oks += (a.status == SLOTRING_STATUS_OK) +
                    (!b.release_instead && b.status == SLOTRING_STATUS_OK);
        uint64_t seen = __atomic_load_n(&delivered, __ATOMIC_RELAXED);
        if (seen != send_oks) {
            fprintf(stderr, "round %d (%s): %llu deliveries for %llu successful sends\n",
                    round, b.release_instead ? "send vs release" : "send vs send",
                    (unsigned long long)seen, (unsigned long long)send_oks);
            exit(1);
        }
    }
    /*
     * Refusing sink: every send fails, and a failed send changes nothing: after both
     * racers, the token still has its one hold (a racer that ran while the other's
     * send had the hold out sees ALREADY_RELEASED).
     */
    __atomic_store_n(&refuse, 1, __ATOMIC_RELAXED);
    for (int round = 0; round < 5000; round++) {
        race_round(&barrier, round, 0, &a, &b, &token);
        CHECK(a.status == SLOTRING_STATUS_SINK_FULL ||
              a.status == SLOTRING_STATUS_ALREADY_RELEASED);
        CHECK(b.status == SLOTRING_STATUS_SINK_FULL ||
              b.status == SLOTRING_STATUS_ALREADY_RELEASED);
        CHECK(slotring_event_release(token) == SLOTRING_STATUS_OK);
        CHECK(slotring_event_release(token) == SLOTRING_STATUS_ALREADY_RELEASED);
    }
    CHECK(__atomic_load_n(&delivered, __ATOMIC_RELAXED) == send_oks);
    pthread_barrier_destroy(&barrier);
    CHECK(slotring_set_sink_callback(NULL, NULL) == SLOTRING_STATUS_OK);
    SlotringStats stats;
    CHECK(slotring_stats(&stats) == SLOTRING_STATUS_OK);
    for (int i = 0; i < SLOTRING_POOL_COUNT; i++) CHECK(stats.pools[i].in_use == 0);
    CHECK(stats.heap_in_use == 0);
}

/* ---- the null token, and what chooses the allocator --------------------------------- */

static void token_none(void) {
    /* None of these may choose the default allocator. */
    SlotringStats stats;
    CHECK(slotring_stats(&stats) == SLOTRING_STATUS_OK);
    CHECK(handle_ffi_event(NULL, 4, 1) == SLOTRING_STATUS_NULL_POINTER);
    CHECK(handle_ffi_event((const uint8_t *)"x", 1, 1) == SLOTRING_STATUS_NO_SINK);
    CHECK(slotring_event_release(0) == SLOTRING_STATUS_FOREIGN_TOKEN);
    CHECK(slotring_event_send(0) == SLOTRING_STATUS_FOREIGN_TOKEN);
    size_t small[SLOTRING_POOL_COUNT] = {2, 2, 2, 2, 2};
    CHECK(slotring_init(small, SLOTRING_INIT_NO_HEAP_FALLBACK) == SLOTRING_STATUS_OK);
    /* Token 0 after an allocation, too. */
    uint64_t token;
    CHECK(slotring_event_alloc((const uint8_t *)"x", 1, 1, &token) == SLOTRING_STATUS_OK);
    CHECK(token != 0);
    const uint8_t *data;
    uint64_t twin;
    CHECK(slotring_event_data(0, &data, NULL, NULL) == SLOTRING_STATUS_FOREIGN_TOKEN);
    CHECK(slotring_event_clone(0, &twin) == SLOTRING_STATUS_FOREIGN_TOKEN);
    CHECK(slotring_event_release(0) == SLOTRING_STATUS_FOREIGN_TOKEN);
    CHECK(slotring_event_send(0) == SLOTRING_STATUS_FOREIGN_TOKEN);
#ifdef SLOTRING_VERSION_MAJOR
    CHECK(SLOTRING_TOKEN_NONE == 0);
    CHECK(slotring_event_release(SLOTRING_TOKEN_NONE) == SLOTRING_STATUS_FOREIGN_TOKEN);
    CHECK(slotring_version() == SLOTRING_VERSION_NUMBER);
    CHECK(strlen(slotring_version_string()) >= 5);
#endif
    CHECK(slotring_event_release(token) == SLOTRING_STATUS_OK);
}

int main(int argc, char **argv) {
    signal(SIGALRM, on_alarm);
    alarm(60);
    if (argc != 2) return 2;
    const char *mode = argv[1];
    if (strcmp(mode, "oom-init") == 0) oom_init();
    else if (strcmp(mode, "oom-heap") == 0) oom_heap();
    else if (strcmp(mode, "reenter-set") == 0) reenter_set();
    else if (strcmp(mode, "reenter-send") == 0) reenter_send();
    else if (strcmp(mode, "recursion") == 0) recursion();
    else if (strcmp(mode, "send-race") == 0) send_race();
    else if (strcmp(mode, "token-none") == 0) token_none();
    else return 2;
    printf("ok %s\n", mode);
    return 0;
}
