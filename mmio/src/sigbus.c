/* See sigbus.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "sigbus.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "compat.h"

typedef struct {
    sigjmp_buf jump;
    const char *lo, *hi;       /* the guarded ranges: mmio's mapping ... */
    const char *lo2, *hi2;     /* ... and the other side of a copy, when it is mapped memory too */
    const char *volatile fault;
    volatile int armed;
} guard_t;

/* initial-exec: the handler must not reach __tls_get_addr (which may allocate) in a dlopen'ed module. */
static __thread guard_t *current_guard __attribute__((tls_model("initial-exec")));
static struct sigaction previous_action;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t retake_lock = PTHREAD_MUTEX_INITIALIZER;
static int install_errno;

/* Set while this thread runs the previous handler: a handler that leads back to mmio's (faulthandler enabled
 * after mmio, which mmio then took SIGBUS back from, restores mmio's handler and raises again) must not loop. */
static __thread int chaining __attribute__((tls_model("initial-exec")));

static void die_of(int sig, siginfo_t *info)
{
    /* The default action: the process dies of SIGBUS, exactly as it would without mmio.
     * A fault re-runs the access on return; a signal sent with kill() must be raised again. */
    signal(sig, SIG_DFL);
    if (info->si_code <= 0)
        raise(sig);
}

/* Pass a SIGBUS mmio does not own to whoever had it before mmio. */
static void chain(int sig, siginfo_t *info, void *context)
{
    if (chaining) {
        die_of(sig, info);
    } else if (previous_action.sa_flags & SA_SIGINFO) {
        chaining = 1;
        previous_action.sa_sigaction(sig, info, context);
        chaining = 0;
    } else if (previous_action.sa_handler == SIG_IGN && info->si_code <= 0) {
        return;  /* sent by kill() and ignored before mmio came: still ignored */
    } else if (previous_action.sa_handler == SIG_DFL || previous_action.sa_handler == SIG_IGN) {
        die_of(sig, info);
    } else {
        chaining = 1;
        previous_action.sa_handler(sig);
        chaining = 0;
    }
}

static int guarded(const guard_t *g, const char *addr)
{
    return (addr >= g->lo && addr < g->hi) || (addr >= g->lo2 && addr < g->hi2);
}

static void on_sigbus(int sig, siginfo_t *info, void *context)
{
    guard_t *g = current_guard;
    const char *addr = (const char *)info->si_addr;
    /* si_code > 0: raised by the kernel for a faulting access, not sent by kill(). */
    if (g && g->armed && info->si_code > 0 && guarded(g, addr)) {
        g->armed = 0;  /* a second fault before the jump is not ours to recover */
        g->fault = addr;
        siglongjmp(g->jump, 1);
    }
    chain(sig, info, context);
}

static void take_sigbus(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGBUS, &action, &previous_action) != 0)
        install_errno = errno;
}

static int holds_sigbus(void)
{
    struct sigaction now;
    return sigaction(SIGBUS, NULL, &now) == 0 && (now.sa_flags & SA_SIGINFO) && now.sa_sigaction == on_sigbus;
}

int mmio_guard_install(void)
{
    pthread_once(&install_once, take_sigbus);
    if (!install_errno && !holds_sigbus()) {
        /* Someone replaced mmio's handler since (faulthandler.disable() puts back the handler it found,
         * signal.signal(SIGBUS, ...), faulthandler.enable() after mmio): take SIGBUS back, passing on to
         * the new handler every SIGBUS mmio does not own. */
        pthread_mutex_lock(&retake_lock);
        if (!holds_sigbus())
            take_sigbus();
        pthread_mutex_unlock(&retake_lock);
    }
    if (install_errno) {
        errno = install_errno;
        return -1;
    }
    return 0;
}

/* Arm g for [lo, hi) and [lo2, hi2) on this thread; the caller runs sigsetjmp(g->jump, 0) next. */
static void arm(guard_t *g, const char *lo, const char *hi, const char *lo2, const char *hi2)
{
    g->lo = lo;
    g->hi = hi;
    g->lo2 = lo2;
    g->hi2 = hi2;
    g->fault = NULL;
    current_guard = g;
    g->armed = 1;
}

static void disarm(guard_t *g)
{
    g->armed = 0;
    current_guard = NULL;
}

static void plain_copy(char *dst, ptrdiff_t dst_step, const char *src, ptrdiff_t src_step, size_t n)
{
    if (dst_step == 1 && src_step == 1) {
        memmove(dst, src, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        dst[(ptrdiff_t)i * dst_step] = src[(ptrdiff_t)i * src_step];
}

int mmio_guarded_copy(char *dst, ptrdiff_t dst_step, const char *src, ptrdiff_t src_step,
                      size_t n, const char *lo, const char *hi, const char *lo2, const char *hi2,
                      const char **fault)
{
    guard_t g;
    arm(&g, lo, hi, lo2, hi2);
    if (sigsetjmp(g.jump, 0)) {
        disarm(&g);
        *fault = g.fault;
        return -1;
    }
    plain_copy(dst, dst_step, src, src_step, n);
    disarm(&g);
    return 0;
}

int mmio_guarded_touch(char *start, size_t n, size_t page, int write, const char **fault)
{
    guard_t g;
    volatile char *p = start;
    arm(&g, start, start + n, NULL, NULL);
    if (sigsetjmp(g.jump, 0)) {
        disarm(&g);
        *fault = g.fault;
        return -1;
    }
    for (size_t i = 0; i < n; i += page) {
        char c = p[i];
        if (write)
            p[i] = c;
    }
    disarm(&g);
    return 0;
}

typedef struct {
    char *start;
    size_t n, page;
    int write, touch_fallback, err;
    const char *fault;
} populate_job;

static void *populate_one(void *arg)
{
    populate_job *job = arg;
    int advice = job->write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ;
    job->err = 0;
    if (job->n == 0)
        return NULL;
    if (madvise(job->start, job->n, advice) == 0)
        return NULL;
    job->err = errno;
    if (job->err == EINVAL && job->touch_fallback) {  /* kernel older than 5.14: touch every page */
        job->err = mmio_guarded_touch(job->start, job->n, job->page, job->write, &job->fault) ? EFAULT : 0;
    } else if (job->err == EFAULT) {
        /* Find the first page that cannot be supplied, for the error message. */
        for (size_t i = 0; i < job->n; i += job->page) {
            if (madvise(job->start + i, job->page, advice) != 0) {
                job->fault = job->start + i;
                break;
            }
        }
    }
    return NULL;
}

enum { MAX_THREADS = 64 };

/* Run job(args[i]) for i < count: args 1.. on new threads (inline where a thread cannot
 * start), args[0] on this thread; return when all are done. */
static void fan_out(void *(*job)(void *), void *args, size_t arg_size, int count)
{
    pthread_t ids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int t = 1; t < count; t++) {
        void *arg = (char *)args + t * arg_size;
        if (pthread_create(&ids[t], NULL, job, arg) == 0)
            started[t] = 1;
        else
            job(arg);
    }
    job(args);
    for (int t = 1; t < count; t++)
        if (started[t])
            pthread_join(ids[t], NULL);
}

/* Threads to use for n bytes cut in grains: at least 1, at most MAX_THREADS and one per grain. */
static int thread_count(int threads, size_t n, size_t grain)
{
    size_t grains = (n + grain - 1) / grain;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if ((size_t)threads > grains)
        threads = (int)grains;
    return threads < 1 ? 1 : threads;
}

/* Bytes per thread: n split evenly, rounded up to whole grains. */
static size_t share(size_t n, int threads, size_t grain)
{
    size_t grains = (n + grain - 1) / grain;
    return (grains + threads - 1) / threads * grain;
}

int mmio_populate(char *start, size_t n, size_t page, int write, int touch_fallback, int threads,
                  const char **fault)
{
    populate_job jobs[MAX_THREADS];
    threads = thread_count(threads, n, page);
    size_t per = share(n, threads, page), offset = 0;
    for (int t = 0; t < threads; t++) {
        size_t len = offset >= n ? 0 : (n - offset < per ? n - offset : per);
        jobs[t] = (populate_job){start + offset, len, page, write, touch_fallback, 0, NULL};
        offset += len;
    }
    fan_out(populate_one, jobs, sizeof jobs[0], threads);
    for (int t = 0; t < threads; t++) {
        if (jobs[t].err) {
            *fault = jobs[t].fault;
            return jobs[t].err;
        }
    }
    return 0;
}

typedef struct {
    char *dst;
    const char *src, *lo, *hi, *lo2, *hi2;
    size_t n;
    int rc;
    const char *fault;
} copy_job;

static void *copy_one(void *arg)
{
    copy_job *job = arg;
    job->rc = job->n ? mmio_guarded_copy(job->dst, 1, job->src, 1, job->n, job->lo, job->hi,
                                         job->lo2, job->hi2, &job->fault) : 0;
    return NULL;
}

int mmio_parallel_copy(char *dst, const char *src, size_t n, int threads,
                       const char *lo, const char *hi, const char *lo2, const char *hi2,
                       const char **fault)
{
    /* Split on 2 MiB boundaries of the destination so no huge page is shared by two threads. */
    enum { GRAIN = 1 << 21 };
    copy_job jobs[MAX_THREADS];
    if (dst < src + n && src < dst + n)
        threads = 1;  /* overlapping ranges: only one memmove copies them right */
    threads = thread_count(threads, n, GRAIN);
    size_t per = share(n, threads, GRAIN), offset = 0;
    for (int t = 0; t < threads; t++) {
        size_t len = offset >= n ? 0 : (n - offset < per ? n - offset : per);
        jobs[t] = (copy_job){dst + offset, src + offset, lo, hi, lo2, hi2, len, 0, NULL};
        offset += len;
    }
    fan_out(copy_one, jobs, sizeof jobs[0], threads);
    for (int t = 0; t < threads; t++) {  /* the first fault by address: jobs run in address order */
        if (jobs[t].rc) {
            *fault = jobs[t].fault;
            return -1;
        }
    }
    return 0;
}

typedef struct {
    int fd;
    char *dst;
    size_t n, done;
    long long offset;
    int err;
} pread_job;

static void *pread_one(void *arg)
{
    pread_job *job = arg;
    while (job->done < job->n) {
        ssize_t got = pread(job->fd, job->dst + job->done, job->n - job->done, (off_t)(job->offset + job->done));
        if (got > 0)
            job->done += (size_t)got;
        else if (got < 0 && errno == EINTR)
            continue;
        else {
            job->err = got < 0 ? errno : 0;
            break;  /* got == 0: the end of the file */
        }
    }
    return NULL;
}

int mmio_parallel_pread(int fd, char *dst, size_t n, long long offset, int threads, size_t *done)
{
    enum { GRAIN = 1 << 21 };  /* whole 2 MiB pieces of the destination per thread, as the copy splits */
    pread_job jobs[MAX_THREADS];
    threads = thread_count(threads, n, GRAIN);
    size_t per = share(n, threads, GRAIN), start = 0;
    for (int t = 0; t < threads; t++) {
        size_t len = start >= n ? 0 : (n - start < per ? n - start : per);
        jobs[t] = (pread_job){fd, dst + start, len, 0, offset + (long long)start, 0};
        start += len;
    }
    fan_out(pread_one, jobs, sizeof jobs[0], threads);
    *done = 0;
    for (int t = 0; t < threads; t++) {  /* the parts in file order: stop at the first short one */
        *done += jobs[t].done;
        if (jobs[t].err)
            return jobs[t].err;
        if (jobs[t].done < jobs[t].n)
            break;
    }
    return 0;
}
