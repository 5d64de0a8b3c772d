/* Eidetic's worker pool: the fork-join under every batched kernel (Parallel.run and
   Parallel.forRanges in Swift). A training step forks a few hundred times, each fork a
   millisecond or less of work. Threads that block between forks must be woken by the
   kernel, and on a virtual machine a halted vCPU takes the hypervisor tens of microseconds
   or more to resume, while the forking thread waits at the join. So workers spin for a
   while (~1 ms) after each job, then sleep on a condition variable, as OpenMP runtimes do
   (libgomp's GOMP_SPINCOUNT). They spin only when there are no more threads than cores;
   oversubscribed, a spinning worker would steal the core of the thread it waits for.
   EIDETIC_SPIN_US sets the spin in microseconds (0: never spin, e.g. when several runs
   share a machine's cores). Measured on the 2-core VM, DCGAN step at 2 threads: +6 % over
   Dispatch's concurrentPerform (six interleaved pairs, every pair faster).

   A job is `chunks` independent calls fn(ctx, chunk, worker), taken from a shared counter by
   the calling thread (worker 0) and workers 1 … workers − 1; `worker` names a per-thread
   scratch slot. Results must not depend on which thread runs a chunk (the callers' chunks
   are fixed by the data, never by the thread count). A job submitted from inside a job runs
   inline on the submitting thread. */
#define _GNU_SOURCE   /* sched_getaffinity, CPU_COUNT */
#include "ckernels.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define EK_PAUSE() _mm_pause()
#else
#define EK_PAUSE() do {} while (0)
#endif

#define EK_POOL_MAX 512   /* < 2^16: the worker count shares a word with the generation */

static pthread_mutex_t ek_pool_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ek_pool_wake = PTHREAD_COND_INITIALIZER;
/* The job's generation and its worker count in one word (generation << 16 | workers), so a
   worker reads both at once: one that sees generation g knows whether it takes part in g,
   and a participant's job cannot be replaced before it reports done. */
static atomic_ulong ek_pool_word;
static atomic_int ek_pool_sleepers;
static atomic_size_t ek_pool_next;
static atomic_size_t ek_pool_active;
static size_t ek_pool_chunks;
static ek_pool_fn ek_pool_job;
static void *ek_pool_ctx;
static size_t ek_pool_threads;     /* workers started (1 … ek_pool_threads) */
static atomic_long ek_pool_spin_ns;  /* spin before sleeping; 0 when oversubscribed or asked */
static _Thread_local int ek_pool_inside;

static long ek_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void ek_pool_chunks_loop(size_t worker) {
    size_t c;
    while ((c = atomic_fetch_add_explicit(&ek_pool_next, 1, memory_order_relaxed)) < ek_pool_chunks)
        ek_pool_job(ek_pool_ctx, c, worker);
}

static void *ek_pool_worker(void *arg) {
    /* the generation current when the thread was created: the job about to be posted (which
       may count on this thread) is the next one, whenever the thread gets to run */
    size_t self = (uintptr_t)arg & 0xFFFF;
    unsigned long seen = (uintptr_t)arg >> 16;
    ek_pool_inside = 1;
    for (;;) {
        long spin = atomic_load_explicit(&ek_pool_spin_ns, memory_order_relaxed);
        if (spin > 0) {
            long until = ek_now_ns() + spin;
            for (unsigned i = 1; atomic_load_explicit(&ek_pool_word, memory_order_acquire) >> 16 == seen; i++) {
                EK_PAUSE();
                if (i % 1024 == 0 && ek_now_ns() > until) break;
            }
        }
        if (atomic_load(&ek_pool_word) >> 16 == seen) {
            pthread_mutex_lock(&ek_pool_mutex);
            atomic_fetch_add(&ek_pool_sleepers, 1);
            while (atomic_load(&ek_pool_word) >> 16 == seen) pthread_cond_wait(&ek_pool_wake, &ek_pool_mutex);
            atomic_fetch_sub(&ek_pool_sleepers, 1);
            pthread_mutex_unlock(&ek_pool_mutex);
        }
        unsigned long word = atomic_load(&ek_pool_word);
        seen = word >> 16;
        if (self < (word & 0xFFFF)) {
            ek_pool_chunks_loop(self);
            atomic_fetch_sub_explicit(&ek_pool_active, 1, memory_order_release);
        }
    }
    return NULL;
}

static int ek_cores(void) {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Starts workers up to `workers` − 1; returns how many worker threads exist. */
static size_t ek_pool_grow(size_t workers) {
    if (workers > EK_POOL_MAX) workers = EK_POOL_MAX;
    while (ek_pool_threads + 1 < workers) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        uintptr_t arg = (uintptr_t)(atomic_load(&ek_pool_word) >> 16) << 16 | (ek_pool_threads + 1);
        int failed = pthread_create(&t, &attr, ek_pool_worker, (void *)arg);
        pthread_attr_destroy(&attr);
        if (failed) break;
        ek_pool_threads++;
    }
    static long asked = -2;
    if (asked == -2) {
        const char *env = getenv("EIDETIC_SPIN_US");
        asked = env && *env ? atol(env) : 1000;
        if (asked < 0) asked = 0;
    }
    atomic_store_explicit(&ek_pool_spin_ns, (int)(ek_pool_threads + 1) <= ek_cores() ? asked * 1000 : 0, memory_order_relaxed);
    return ek_pool_threads;
}

static pthread_mutex_t ek_pool_submit = PTHREAD_MUTEX_INITIALIZER;

void ek_pool_run(size_t workers, size_t chunks, ek_pool_fn fn, void *ctx) {
    if (workers > chunks) workers = chunks;
    if (workers <= 1 || ek_pool_inside || pthread_mutex_trylock(&ek_pool_submit) != 0) {
        /* one worker, a job inside a job, or another thread's job in flight: inline */
        for (size_t c = 0; c < chunks; c++) fn(ctx, c, 0);
        return;
    }
    size_t threads = ek_pool_grow(workers);
    if (workers > threads + 1) workers = threads + 1;
    ek_pool_job = fn; ek_pool_ctx = ctx; ek_pool_chunks = chunks;
    atomic_store(&ek_pool_next, 0);
    atomic_store(&ek_pool_active, workers - 1);
    unsigned long generation = (atomic_load(&ek_pool_word) >> 16) + 1;
    atomic_store(&ek_pool_word, generation << 16 | workers);
    if (atomic_load(&ek_pool_sleepers) > 0) {
        pthread_mutex_lock(&ek_pool_mutex);
        pthread_cond_broadcast(&ek_pool_wake);
        pthread_mutex_unlock(&ek_pool_mutex);
    }
    ek_pool_inside = 1;
    ek_pool_chunks_loop(0);
    ek_pool_inside = 0;
    for (unsigned i = 1; atomic_load_explicit(&ek_pool_active, memory_order_acquire) != 0; i++) {
        EK_PAUSE();
        if (i % 4096 == 0) sched_yield();
    }
    pthread_mutex_unlock(&ek_pool_submit);
}
