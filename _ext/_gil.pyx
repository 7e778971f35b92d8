# cython: language_level=3
"""The compiled half of ``gamestore/gil.py``: per-thread handover state and the handover itself.

Compiled because the handover must look at the waiting thread *while
holding the GIL*: any Python-level system call (``os.pread``) releases it,
and the waiter then reads as running whether it took the GIL or not.
"""

cdef extern from *:
    """
    #include <time.h>
    #include <unistd.h>
    #include <stdlib.h>
    #ifdef __linux__
    #include <sys/prctl.h>
    #endif

    /* per thread: the next handover (monotonic ns, 0 = not marked), the interval, the watched waiter's
       /proc/self/task/<tid>/syscall descriptor (-1: none, hand over blindly) */
    static __thread long long gs_due = 0;
    static __thread long long gs_every = 0;
    static __thread int gs_fd = -1;
    static long gs_futex = -1;   /* system call number of a thread blocked on a lock */
    static long long gs_count[4] = {0, 0, 0, 0};  /* handover points due, waiter seen waiting, handed over, given up */

    static long long gs_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    }

    static void gs_nap(long ns) {
        struct timespec ts = {0, ns};
        nanosleep(&ts, NULL);
    }

    /* whether the watched thread is blocked on a lock right now (no GIL needed) */
    static int gs_waiting(int fd) {
        char buf[24];
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        if (n <= 0) return 0;
        buf[n] = 0;
        if (buf[0] < '0' || buf[0] > '9') return 0;   /* "running" */
        return strtol(buf, NULL, 10) == gs_futex;
    }

    static __thread unsigned gs_events = 0;
    static __thread int gs_slack_set = 0;

    /* A marked thread's naps last what they ask for: 1 us of timer slack instead of Linux's default 50 us
       (set once per thread, kept: it only makes the thread's sleeps more precise). */
    static void gs_precise_naps(void) {
    #ifdef __linux__
        if (!gs_slack_set) {
            prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
            gs_slack_set = 1;
        }
    #endif
    }
    static int gs_switch(void);

    /* The profile function of a marked thread (PyEval_SetProfile): Python code reaches a handover point at
       every 64th call or return, without switch points written into it. */
    static int gs_profile(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg) {
        if ((++gs_events & 63) == 0) gs_switch();
        return 0;
    }

    /* 1 if the waiter got the GIL (or none was watched), 0 if it stayed blocked (on something else) */
    static int gs_hand_over(void) {
        int ok = 1;
        if (gs_fd < 0) {
            Py_BEGIN_ALLOW_THREADS
            gs_nap(0);
            Py_END_ALLOW_THREADS
        } else if (gs_waiting(gs_fd)) {
            int fd = gs_fd;
            gs_count[1]++;
            long long give_up = gs_now() + 1000000;
            Py_BEGIN_ALLOW_THREADS
            /* the GIL is free: the waiter was signalled; wait until it runs (with the GIL), then a little more
               so that a waiter still on its way to a CPU gets there first */
            do {
                gs_nap(20000);
            } while ((ok = !gs_waiting(fd)) == 0 && gs_now() < give_up);
            if (ok) gs_nap(20000);
            Py_END_ALLOW_THREADS
            gs_count[ok ? 2 : 3]++;
        }
        return ok;
    }

    static int gs_switch(void) {
        long long now;
        if (!gs_due) return 0;
        now = gs_now();
        if (now < gs_due) return 0;
        gs_count[0]++;
        gs_due = gs_now() + gs_every * (gs_hand_over() ? 1 : 8);
        return 1;
    }

    /* mark (every > 0) or unmark this thread; the previous profile function is kept in *saved_* */
    static void gs_set_profile(int on, Py_tracefunc prev_func, PyObject *prev_obj) {
        if (on) PyEval_SetProfile(gs_profile, NULL);
        else PyEval_SetProfile(prev_func, prev_obj);
    }
    """
    long long gs_due
    long long gs_every
    long long gs_now()
    int gs_fd
    long gs_futex
    int gs_hand_over()
    int gs_switch()
    long long gs_count[4]
    ctypedef int (*Py_tracefunc)(object, void*, int, object)
    ctypedef struct PyThreadState:
        Py_tracefunc c_profilefunc
        void *c_profileobj
    PyThreadState *PyThreadState_Get()
    void PyEval_SetProfile(Py_tracefunc, object)
    void gs_set_profile(int on, Py_tracefunc prev_func, void *prev_obj)
    void gs_precise_naps()


def switch_point():
    """Hand the GIL over if this thread is marked and due (see ``gamestore.gil.switch_point``)."""
    gs_switch()


cdef class _Marking:
    """A thread's marking before :func:`mark` changed it (its profile function included)."""
    cdef long long due, every
    cdef int fd
    cdef Py_tracefunc profilefunc
    cdef object profileobj


def mark(double every, int fd=-1):
    """Mark this thread: hand over every ``every`` seconds (0: unmark), to the waiter watched through ``fd``.

    Python code in the thread reaches a handover point every 64 function
    calls or returns (a C profile function, ``PyEval_SetProfile``, set while
    marked).  Returns the previous marking, for :func:`restore`.
    """
    global gs_due, gs_every, gs_fd
    cdef PyThreadState *ts = PyThreadState_Get()
    cdef _Marking previous = _Marking()
    previous.due, previous.every, previous.fd = gs_due, gs_every, gs_fd
    previous.profilefunc = ts.c_profilefunc
    previous.profileobj = <object>ts.c_profileobj if ts.c_profileobj != NULL else None
    gs_every = <long long>(every * 1e9)
    gs_due = gs_now() + gs_every if every > 0 else 0
    gs_fd = fd
    if every > 0:
        gs_set_profile(1, NULL, NULL)
        if fd >= 0:
            gs_precise_naps()
    return previous


def restore(_Marking previous):
    global gs_due, gs_every, gs_fd
    gs_due, gs_every, gs_fd = previous.due, previous.every, previous.fd
    gs_set_profile(0, previous.profilefunc, <void*>previous.profileobj if previous.profileobj is not None else NULL)


def forget():
    """In a forked child: this thread stops handing over (the thread it watched is the parent's)."""
    global gs_due, gs_fd
    gs_due, gs_fd = 0, -1


def set_futex(long nr):
    """The system call number a thread blocked on a lock shows in ``/proc/self/task/<tid>/syscall``."""
    global gs_futex
    gs_futex = nr


def counts():
    """Process-wide tallies: (handover points due, waiter seen waiting, handed over, given up)."""
    return (gs_count[0], gs_count[1], gs_count[2], gs_count[3])

