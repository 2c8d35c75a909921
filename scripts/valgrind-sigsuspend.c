/*
 * LD_PRELOAD shim for running Swift programs under valgrind 3.19 (Debian 12), used by `scripts/bench`'s callgrind
 * scenario; not part of sitroom.
 *
 * Swift's async main parks the main thread in libdispatch's _dispatch_sig_thread, which calls
 * sigsuspend(&mask) with `mask` in read-only data. valgrind 3.19's sigsuspend wrapper writes to the mask it is
 * given (to keep its own signals unblocked), faults on the read-only page and aborts ("Valgrind received a
 * signal 11 ... the 'impossible' happened"). Handing the real sigsuspend a copy on the stack avoids that and
 * changes nothing else: sigsuspend never writes the mask back.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>

int sigsuspend(const sigset_t *mask) {
    static int (*real)(const sigset_t *);
    if (!real) real = (int (*)(const sigset_t *))dlsym(RTLD_NEXT, "sigsuspend");
    sigset_t copy = *mask;
    return real(&copy);
}
