/*
 * A C host exercising every function of include/slotring.h, including bad input.
 * Built and run by tests/ffi_c.rs (twice: "pooled" mode with small pools and no heap
 * fallback, "heap" mode with the defaults). Prints "ok <mode>" and exits 0 on success;
 * any failed check prints the line and exits 1.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slotring.h"

static int failures = 0;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                          \
        }                                                                        \
    } while (0)

#define EXPECT(call, status)                                                     \
    do {                                                                         \
        SlotringStatus got_ = (call);                                            \
        if (got_ != (status)) {                                                  \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %s\n", __FILE__, \
                    __LINE__, #call, (int)got_, slotring_status_message(got_), #status); \
            failures++;                                                          \
        }                                                                        \
    } while (0)

/* The C sink: counts events, checks their payloads, releases their tokens. Refuses
 * events of type 999 (to test SINK_FULL). */
typedef struct {
    pthread_mutex_t lock;
    unsigned long delivered;
    unsigned long bytes;
    unsigned long bad;
} sink_state;

static int32_t c_sink(uint64_t token, void *user) {
    sink_state *s = (sink_state *)user;
    const uint8_t *data = NULL;
    size_t len = 0;
    uint32_t type = 0;
    if (slotring_event_data(token, &data, &len, &type) != SLOTRING_STATUS_OK) {
        pthread_mutex_lock(&s->lock);
        s->bad++;
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    if (type == 999) {
        return 1; /* refused: the token stays with the library */
    }
    int ok = 1;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != (uint8_t)(type + i)) {
            ok = 0;
            break;
        }
    }
    pthread_mutex_lock(&s->lock);
    s->delivered++;
    s->bytes += len;
    if (!ok) s->bad++;
    pthread_mutex_unlock(&s->lock);
    if (slotring_event_release(token) != SLOTRING_STATUS_OK) {
        pthread_mutex_lock(&s->lock);
        s->bad++;
        pthread_mutex_unlock(&s->lock);
    }
    return 0;
}

static void fill(uint8_t *buf, size_t len, uint32_t type) {
    for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)(type + i);
}

static void check_all_free(void) {
    SlotringStats stats;
    EXPECT(slotring_stats(&stats), SLOTRING_STATUS_OK);
    for (int i = 0; i < SLOTRING_POOL_COUNT; i++) {
        if (stats.pools[i].in_use != 0) {
            fprintf(stderr, "pool %d: %zu slots still in use\n", i, stats.pools[i].in_use);
            failures++;
        }
    }
    CHECK(stats.heap_in_use == 0);
}

/* Token operations common to both modes, on an event of `len` bytes. */
static void token_round_trip(size_t len) {
    uint8_t *buf = malloc(len ? len : 1);
    fill(buf, len, 7);
    uint64_t token = 0, twin = 0;
    EXPECT(slotring_event_alloc(buf, len, 7, &token), SLOTRING_STATUS_OK);
    const uint8_t *data = NULL;
    size_t got_len = 0;
    uint32_t type = 0;
    EXPECT(slotring_event_data(token, &data, &got_len, &type), SLOTRING_STATUS_OK);
    CHECK(got_len == len);
    CHECK(type == 7);
    CHECK(len == 0 || memcmp(data, buf, len) == 0);
    /* Out pointers are optional. */
    EXPECT(slotring_event_data(token, NULL, &got_len, NULL), SLOTRING_STATUS_OK);
    EXPECT(slotring_event_clone(token, &twin), SLOTRING_STATUS_OK);
    EXPECT(slotring_event_clone(token, NULL), SLOTRING_STATUS_NULL_POINTER);
    EXPECT(slotring_event_release(token), SLOTRING_STATUS_OK);
    /* The clone's hold keeps the data alive and unchanged. */
    CHECK(len == 0 || memcmp(data, buf, len) == 0);
    EXPECT(slotring_event_release(twin), SLOTRING_STATUS_OK);
    /* Released twice (the slot is free but not reused yet). */
    EXPECT(slotring_event_release(token), SLOTRING_STATUS_ALREADY_RELEASED);
    EXPECT(slotring_event_data(token, &data, &got_len, &type), SLOTRING_STATUS_ALREADY_RELEASED);
    /* Reuse the slot: the old token is stale now. */
    uint64_t next = 0;
    EXPECT(slotring_event_alloc(buf, len, 8, &next), SLOTRING_STATUS_OK);
    CHECK(next != token);
    SlotringStatus stale = slotring_event_release(token);
    CHECK(stale == SLOTRING_STATUS_STALE_TOKEN || stale == SLOTRING_STATUS_ALREADY_RELEASED);
    EXPECT(slotring_event_clone(token, &twin), stale);
    EXPECT(slotring_event_release(next), SLOTRING_STATUS_OK);
    free(buf);
}

static void bad_input(void) {
    uint64_t token = 0;
    uint8_t byte = 1;
    EXPECT(slotring_event_alloc(NULL, 3, 1, &token), SLOTRING_STATUS_NULL_POINTER);
    EXPECT(slotring_event_alloc(&byte, 1, 1, NULL), SLOTRING_STATUS_NULL_POINTER);
    EXPECT(handle_ffi_event(NULL, 3, 1), SLOTRING_STATUS_NULL_POINTER);
    /* A length no allocator accepts: refused before the pointer is ever read. */
    EXPECT(handle_ffi_event(&byte, (size_t)1 << 40, 1), SLOTRING_STATUS_TOO_LARGE);
    EXPECT(slotring_event_alloc(&byte, SIZE_MAX, 1, &token), SLOTRING_STATUS_TOO_LARGE);
    EXPECT(slotring_stats(NULL), SLOTRING_STATUS_NULL_POINTER);
    /* Forged tokens: unknown pool tag, out-of-range slot, unknown heap entry. */
    EXPECT(slotring_event_release(0x0000000133000000ull), SLOTRING_STATUS_FOREIGN_TOKEN);
    EXPECT(slotring_event_release(0x0000000100FFFFFFull), SLOTRING_STATUS_FOREIGN_TOKEN);
    EXPECT(slotring_event_release(0x00000001FFFFFFFFull), SLOTRING_STATUS_FOREIGN_TOKEN);
    EXPECT(slotring_event_send(0x0000000133000000ull), SLOTRING_STATUS_FOREIGN_TOKEN);
    /* Empty payloads are fine, with or without a pointer. */
    EXPECT(slotring_event_alloc(NULL, 0, 5, &token), SLOTRING_STATUS_OK);
    size_t len = 99;
    EXPECT(slotring_event_data(token, NULL, &len, NULL), SLOTRING_STATUS_OK);
    CHECK(len == 0);
    EXPECT(slotring_event_release(token), SLOTRING_STATUS_OK);
    /* Init after use, and bad flags. */
    EXPECT(slotring_init(NULL, 0), SLOTRING_STATUS_ALREADY_INITIALIZED);
    EXPECT(slotring_init(NULL, 0x80), SLOTRING_STATUS_INVALID_ARGUMENT);
    CHECK(strcmp(slotring_status_message(SLOTRING_STATUS_OK), "ok") == 0);
    CHECK(strcmp(slotring_status_message(-5), "unknown status") == 0);
    for (int code = 0; code <= SLOTRING_STATUS_PANIC; code++) {
        CHECK(slotring_status_message(code) != NULL);
        CHECK(strcmp(slotring_status_message(code), "unknown status") != 0);
    }
}

static sink_state sink = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};

static void sink_paths(size_t len) {
    uint8_t *buf = malloc(len ? len : 1);
    fill(buf, len, 3);
    /* No sink yet. */
    EXPECT(handle_ffi_event(buf, len, 3), SLOTRING_STATUS_NO_SINK);
    uint64_t token = 0;
    EXPECT(slotring_event_alloc(buf, len, 3, &token), SLOTRING_STATUS_OK);
    EXPECT(slotring_event_send(token), SLOTRING_STATUS_NO_SINK);
    /* With the C sink. */
    EXPECT(slotring_set_sink_callback(c_sink, &sink), SLOTRING_STATUS_OK);
    unsigned long before = sink.delivered;
    EXPECT(handle_ffi_event(buf, len, 3), SLOTRING_STATUS_OK);
    CHECK(sink.delivered == before + 1);
    /* The refused send left the hold with us; now it goes through. */
    EXPECT(slotring_event_send(token), SLOTRING_STATUS_OK);
    CHECK(sink.delivered == before + 2);
    EXPECT(slotring_event_send(token), SLOTRING_STATUS_ALREADY_RELEASED);
    /* A refusing sink: SINK_FULL, and nothing leaks. */
    fill(buf, len, 999 & 0xFF);
    EXPECT(handle_ffi_event(buf, len, 999), SLOTRING_STATUS_SINK_FULL);
    EXPECT(slotring_event_alloc(buf, len, 999, &token), SLOTRING_STATUS_OK);
    EXPECT(slotring_event_send(token), SLOTRING_STATUS_SINK_FULL);
    EXPECT(slotring_event_release(token), SLOTRING_STATUS_OK);
    EXPECT(slotring_set_sink_callback(NULL, NULL), SLOTRING_STATUS_OK);
    EXPECT(handle_ffi_event(buf, len, 3), SLOTRING_STATUS_NO_SINK);
    CHECK(sink.bad == 0);
    free(buf);
}

/* Several C threads delivering at once through the C sink. */
#define THREADS 4
#define PER_THREAD 20000

static void *producer(void *arg) {
    size_t len = (size_t)(uintptr_t)arg;
    uint8_t buf[3000];
    for (int i = 0; i < PER_THREAD; i++) {
        size_t n = (len + (size_t)i) % sizeof buf;
        uint32_t type = (uint32_t)(i % 200);
        fill(buf, n, type);
        SlotringStatus s = handle_ffi_event(buf, n, type);
        if (s != SLOTRING_STATUS_OK) {
            fprintf(stderr, "producer: %s\n", slotring_status_message(s));
            __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);
            break;
        }
    }
    return NULL;
}

static void threads(void) {
    EXPECT(slotring_set_sink_callback(c_sink, &sink), SLOTRING_STATUS_OK);
    unsigned long before = sink.delivered;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        CHECK(pthread_create(&t[i], NULL, producer, (void *)(uintptr_t)(i * 37)) == 0);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    CHECK(sink.delivered == before + THREADS * PER_THREAD);
    CHECK(sink.bad == 0);
    EXPECT(slotring_set_sink_callback(NULL, NULL), SLOTRING_STATUS_OK);
}

/* Write in place: reserve, write through the pointer, publish or abandon; bad input
 * (null, wrong length, double publish, publish after abandon, forged handles) gets a
 * typed status and changes nothing. */
static void reserve_paths(void) {
    uint64_t res = 0, token = SLOTRING_TOKEN_NONE;
    uint8_t *room = NULL;
    size_t cap = 0;
    EXPECT(slotring_event_reserve(10, 5, NULL, &room, &cap), SLOTRING_STATUS_NULL_POINTER);
    EXPECT(slotring_event_reserve(10, 5, &res, NULL, &cap), SLOTRING_STATUS_NULL_POINTER);
    EXPECT(slotring_event_reserve(16385, 5, &res, &room, &cap), SLOTRING_STATUS_TOO_LARGE);
    CHECK(res == 0 && room == NULL);
    EXPECT(slotring_event_reserve(10, 5, &res, &room, &cap), SLOTRING_STATUS_OK);
    CHECK(res != 0 && room != NULL && cap == 64);
    memcpy(room, "in place", 8);
    EXPECT(slotring_event_publish(res, 8, NULL), SLOTRING_STATUS_NULL_POINTER);
    EXPECT(slotring_event_publish(res, cap + 1, &token), SLOTRING_STATUS_TOO_LARGE);
    CHECK(token == SLOTRING_TOKEN_NONE);
    EXPECT(slotring_event_publish(res, 8, &token), SLOTRING_STATUS_OK);
    EXPECT(slotring_event_publish(res, 8, &token), SLOTRING_STATUS_NO_RESERVATION);
    EXPECT(slotring_event_abandon(res), SLOTRING_STATUS_NO_RESERVATION);
    const uint8_t *data = NULL;
    size_t len = 0;
    uint32_t type = 0;
    EXPECT(slotring_event_data(token, &data, &len, &type), SLOTRING_STATUS_OK);
    CHECK(len == 8 && type == 5 && memcmp(data, "in place", 8) == 0);
    EXPECT(slotring_event_release(token), SLOTRING_STATUS_OK);
    /* Abandon: the slot goes back, the handle is dead. */
    EXPECT(slotring_event_reserve(0, 1, &res, &room, NULL), SLOTRING_STATUS_OK);
    room[0] = 42;
    EXPECT(slotring_event_abandon(res), SLOTRING_STATUS_OK);
    EXPECT(slotring_event_abandon(res), SLOTRING_STATUS_NO_RESERVATION);
    EXPECT(slotring_event_publish(res, 1, &token), SLOTRING_STATUS_NO_RESERVATION);
    /* Handles never issued. */
    EXPECT(slotring_event_abandon(0), SLOTRING_STATUS_NO_RESERVATION);
    EXPECT(slotring_event_abandon(UINT64_MAX), SLOTRING_STATUS_NO_RESERVATION);
    EXPECT(slotring_event_publish(res + 1000, 1, &token), SLOTRING_STATUS_NO_RESERVATION);
    /* An empty event from a reservation. */
    EXPECT(slotring_event_reserve(0, 2, &res, &room, &cap), SLOTRING_STATUS_OK);
    EXPECT(slotring_event_publish(res, 0, &token), SLOTRING_STATUS_OK);
    EXPECT(slotring_event_data(token, NULL, &len, NULL), SLOTRING_STATUS_OK);
    CHECK(len == 0);
    EXPECT(slotring_event_release(token), SLOTRING_STATUS_OK);
}

static int pooled_mode(void) {
    size_t capacities[SLOTRING_POOL_COUNT] = {4, 2, 2, 1, 1};
    EXPECT(slotring_init(capacities, SLOTRING_INIT_NO_HEAP_FALLBACK | SLOTRING_INIT_NO_SPILL),
           SLOTRING_STATUS_OK);
    SlotringStats stats;
    EXPECT(slotring_stats(&stats), SLOTRING_STATUS_OK);
    CHECK(stats.pools[0].capacity == 4 && stats.pools[0].slot_size == 64);
    CHECK(stats.pools[4].capacity == 1 && stats.pools[4].slot_size == 16384);
    token_round_trip(10);
    token_round_trip(0);
    token_round_trip(16384);
    bad_input();
    /* Above every class without the heap fallback. */
    uint8_t *big = calloc(20000, 1);
    uint64_t token = 0;
    EXPECT(slotring_event_alloc(big, 20000, 1, &token), SLOTRING_STATUS_TOO_LARGE);
    EXPECT(handle_ffi_event(big, 16385, 1), SLOTRING_STATUS_TOO_LARGE);
    free(big);
    /* Exhaustion without spilling: the fifth XS event is refused, nothing leaks. */
    uint64_t held[4];
    uint8_t byte = 1;
    for (int i = 0; i < 4; i++) EXPECT(slotring_event_alloc(&byte, 1, 1, &held[i]), SLOTRING_STATUS_OK);
    EXPECT(slotring_event_alloc(&byte, 1, 1, &token), SLOTRING_STATUS_POOL_EXHAUSTED);
    EXPECT(slotring_stats(&stats), SLOTRING_STATUS_OK);
    CHECK(stats.pools[0].in_use == 4 && stats.pools[0].failures >= 1);
    /* A full class refuses reservations too, and a release makes room again. */
    uint64_t res = 0;
    uint8_t *room = NULL;
    EXPECT(slotring_event_reserve(1, 1, &res, &room, NULL), SLOTRING_STATUS_POOL_EXHAUSTED);
    for (int i = 0; i < 4; i++) EXPECT(slotring_event_release(held[i]), SLOTRING_STATUS_OK);
    reserve_paths();
    sink_paths(40);
    check_all_free();
    return 0;
}

static int heap_mode(void) {
    EXPECT(slotring_init(NULL, 0), SLOTRING_STATUS_OK);
    token_round_trip(48);
    token_round_trip(100000); /* heap fallback: a heap-table token */
    bad_input();
    reserve_paths();
    sink_paths(48);
    sink_paths(50000);
    threads();
    SlotringStats stats;
    EXPECT(slotring_stats(&stats), SLOTRING_STATUS_OK);
    CHECK(stats.heap_allocations >= 3);
    CHECK(stats.pools[0].allocations > 0);
    check_all_free();
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s pooled|heap\n", argv[0]);
        return 2;
    }
    if (strcmp(argv[1], "pooled") == 0) {
        pooled_mode();
    } else if (strcmp(argv[1], "heap") == 0) {
        heap_mode();
    } else {
        fprintf(stderr, "unknown mode %s\n", argv[1]);
        return 2;
    }
    if (failures != 0) {
        fprintf(stderr, "%d check(s) failed in %s mode\n", failures, argv[1]);
        return 1;
    }
    printf("ok %s\n", argv[1]);
    return 0;
}
