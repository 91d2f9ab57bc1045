/* LD_PRELOAD for provisiond under valgrind 3.19 (Debian 12).
 *
 * Swift's async main ends the main thread through libdispatch, which parks
 * it in sigsuspend() with a mask kept in read-only memory. Valgrind 3.19
 * rewrites that mask in place (it removes the signals it reserves for
 * itself), faults on the read-only page and aborts with "the 'impossible'
 * happened". Passing a copy on the stack avoids it; the main thread only
 * ever waits there, so the measured code is unchanged. */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

int sigsuspend(const sigset_t *mask) {
    sigset_t copy = *mask;
    return (int)syscall(SYS_rt_sigsuspend, &copy, 8);
}
