/* Counts malloc, calloc, realloc and the aligned ones in the process it is
 * preloaded into (LD_PRELOAD); SIGUSR2 writes the count so far to stderr as
 * "allocations N". loadtest/alloc/db_allocations.py uses it to count what a
 * /db request costs coronet-techempower, libpq's share included. */
#define _GNU_SOURCE
#include <errno.h>
#include <execinfo.h>
#include <stdlib.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <unistd.h>

void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);

static atomic_long count;
static atomic_int trace_left; /* COUNT_MALLOC_TRACE=K: after the first SIGUSR2, the stacks of K allocations */
static int trace_after_signal;
static __thread int tracing;

static void traced(void)
{
  if (atomic_load_explicit(&trace_left, memory_order_relaxed) <= 0 || tracing)
    return;
  if (atomic_fetch_sub(&trace_left, 1) <= 0)
    return;
  tracing = 1;
  void* frames[24];
  int n = backtrace(frames, 24);
  (void)!write(2, "--- allocation\n", 15);
  backtrace_symbols_fd(frames, n, 2);
  tracing = 0;
}

void* malloc(size_t n) { atomic_fetch_add_explicit(&count, 1, memory_order_relaxed); traced(); return __libc_malloc(n); }
void* calloc(size_t n, size_t s) { atomic_fetch_add_explicit(&count, 1, memory_order_relaxed); traced(); return __libc_calloc(n, s); }
void* realloc(void* p, size_t n) { atomic_fetch_add_explicit(&count, 1, memory_order_relaxed); traced(); return __libc_realloc(p, n); }
void free(void* p) { __libc_free(p); }
void* memalign(size_t a, size_t n) { atomic_fetch_add_explicit(&count, 1, memory_order_relaxed); return __libc_memalign(a, n); }
void* aligned_alloc(size_t a, size_t n) { atomic_fetch_add_explicit(&count, 1, memory_order_relaxed); return __libc_memalign(a, n); }
int posix_memalign(void** out, size_t a, size_t n)
{
  atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
  *out = __libc_memalign(a, n);
  return *out ? 0 : ENOMEM;
}

static void report(int sig)
{
  (void)sig;
  char buf[40] = "allocations ";
  char digits[24];
  long v = atomic_load(&count);
  int n = 0;
  do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v > 0);
  int at = 12;
  while (n > 0) buf[at++] = digits[--n];
  buf[at++] = '\n';
  (void)!write(2, buf, (size_t)at);
  if (trace_after_signal > 0) {
    atomic_store(&trace_left, trace_after_signal);
    trace_after_signal = 0;
  }
}

__attribute__((constructor)) static void install(void)
{
  struct sigaction sa = {0};
  sa.sa_handler = report;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR2, &sa, NULL);
  const char* k = getenv("COUNT_MALLOC_TRACE");
  trace_after_signal = k ? atoi(k) : 0;
  void* warm[1];
  backtrace(warm, 1); /* loads libgcc now, not inside malloc */
}
