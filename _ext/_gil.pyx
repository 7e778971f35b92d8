# cython: language_level=3
"""The compiled half of ``gamestore/gil.py``: per-thread handover state and the handover itself.

Compiled because the handover must look at the waiting thread *while
holding the GIL*: any Python-level system call (``os.pread``) releases it,
and the waiter then reads as running whether it took the GIL or not.
"""

from cpython.ref cimport PyObject, Py_INCREF

cdef extern from *:
    """
    #include <time.h>
    #include <unistd.h>
    #include <stdlib.h>
    #include <string.h>
    #ifdef __linux__
    #include <sys/prctl.h>
    #include <sys/syscall.h>
    #include <linux/futex.h>
    #include <limits.h>
    #endif

    /* per thread: the next handover (monotonic ns, 0 = not marked), the interval, the watched waiter's
       /proc/self/task/<tid>/syscall descriptor (-1: none, hand over blindly) */
    static __thread long long gs_due = 0;
    static __thread long long gs_every = 0;
    static __thread int gs_fd = -1;
    static __thread int gs_sfd = -1;  /* the waiter's /proc/self/task/<tid>/stat (-1: none) */
    static long gs_futex = -1;   /* system call number of a thread blocked on a lock */
    static long long gs_count[8] = {0, 0, 0, 0, 0, 0, 0, 0};  /* handover points due, waiter seen waiting, handed
                                  over, given up, looks joining another thread's handover, given up runnable, wake-ups
                                  resent, yields to a woken waiter */
    /* whether a due look that finds the waiter woken (runnable, not blocked on a lock) steps aside for it too */
    static int gs_yield_woken = 1;
    /* how many marked threads are handing over right now: while one is, every other marked thread hands over at
       its next handover point too, due or not (one that took the GIL the first released keeps it from the waiter) */
    static int gs_handing = 0;

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
    static __thread long long gs_joined = 0;  /* when this thread last looked because another was handing over */
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
        if ((++gs_events & 63) == 0 || __atomic_load_n(&gs_handing, __ATOMIC_RELAXED)) gs_switch();
        return 0;
    }

    /* whether the watched thread is runnable (woken, maybe waiting for a CPU): its stat's state is R */
    static int gs_runnable(int sfd) {
        char buf[256];
        char *p;
        ssize_t n;
        if (sfd < 0) return 0;
        n = pread(sfd, buf, sizeof(buf) - 1, 0);
        if (n <= 0) return 0;
        buf[n] = 0;
        p = strrchr(buf, ')');
        return p != NULL && p[1] == ' ' && p[2] == 'R';
    }

    /* The waiter is runnable while this thread holds the GIL: woken (by its timer, a finished call, a GIL release)
       and waiting for a CPU, maybe the one this thread runs on, or on its way into the kernel; either way it wants the
       GIL next.  Release the GIL and stay off the CPU for a moment (20 us, twice while it is still runnable and not
       blocked on a lock), so that it gets this CPU and the free GIL; then take the GIL back, which waits while the
       waiter holds it (until it sleeps again).  Without this, the look reads the woken waiter as "running", keeps
       the GIL for another interval, and the waiter, queued behind this thread on its CPU, waits for the scheduler
       to preempt it (at the latest its 4 ms tick at HZ=250). */
    static void gs_yield(int fd, int sfd) {
        int naps = 0;
        gs_count[7]++;
        __atomic_add_fetch(&gs_handing, 1, __ATOMIC_RELAXED);
        Py_BEGIN_ALLOW_THREADS
        do {
            gs_nap(20000);
        } while (++naps < 2 && gs_runnable(sfd) && !gs_waiting(fd));
        __atomic_sub_fetch(&gs_handing, 1, __ATOMIC_RELAXED);
        Py_END_ALLOW_THREADS
    }

    /* 1 if the waiter got the GIL (or none was watched), 0 if it stayed blocked (on something else) */
    static int gs_hand_over(void) {
        int ok = 1, waiting = gs_fd >= 0 && gs_waiting(gs_fd);
        if (!waiting && gs_fd >= 0 && gs_yield_woken && gs_runnable(gs_sfd)) {
            gs_yield(gs_fd, gs_sfd);
            waiting = gs_waiting(gs_fd);  /* another thread took the GIL meanwhile: hand over as usual */
        }
        if (gs_fd < 0) {
            Py_BEGIN_ALLOW_THREADS
            gs_nap(0);
            Py_END_ALLOW_THREADS
        } else if (waiting) {
            int fd = gs_fd, resignal = 0;
            gs_count[1]++;
            long long give_up = gs_now() + 1000000;
            __atomic_add_fetch(&gs_handing, 1, __ATOMIC_RELAXED);
            Py_BEGIN_ALLOW_THREADS
            /* the GIL is free: the waiter was signalled; wait until it runs (with the GIL), then a little more
               so that a waiter still on its way to a CPU gets there first */
            do {
                gs_nap(20000);
                ok = !gs_waiting(fd);
                if (!ok && resignal < 4 && gs_sfd >= 0 && !gs_runnable(gs_sfd)) {
                    /* still asleep 20 us after the release: the release's wake-up went to another thread waiting
                       for the GIL (a pool thread that may not even have a CPU yet); take the free GIL and
                       release it again, which wakes the next waiter */
                    Py_BLOCK_THREADS
                    Py_UNBLOCK_THREADS
                    resignal++;
                    gs_count[6]++;
                }
            } while (!ok && gs_now() < give_up);
            if (ok) gs_nap(20000);
            __atomic_sub_fetch(&gs_handing, 1, __ATOMIC_RELAXED);
            Py_END_ALLOW_THREADS
            gs_count[ok ? 2 : 3]++;
            /* still blocked after 1 ms: if it was woken and only waits for a CPU (a busy machine), it still wants
               the GIL, so look again after one interval; if it sleeps on something else, after eight */
            if (!ok && gs_runnable(gs_sfd)) {
                gs_count[5]++;
                ok = 1;
            }
        }
        return ok;
    }

    /* Diagnostics (gaps): stretches of a marked thread's CPU time between two handover points longer than
       gs_gap_ns, each with where it ended (a few Python frames), kept in a list (gs_gaps) for the benchmark. */
    static long long gs_gap_ns = 0;
    static PyObject *gs_gaps = NULL;
    static __thread long long gs_last_cpu = 0;

    static long long gs_cpu(void) {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    }

    static void gs_note_gap(long long cpu) {
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);  /* a profile event may come with an exception in flight: kept as it is */
        PyFrameObject *f = PyEval_GetFrame();
        PyObject *where = PyList_New(0), *item;
        int depth = 0;
        if (where == NULL) { PyErr_Clear(); PyErr_Restore(et, ev, tb); return; }
        Py_XINCREF(f);
        while (f != NULL && depth < 6) {
            PyCodeObject *code = PyFrame_GetCode(f);
            PyFrameObject *back = PyFrame_GetBack(f);
            item = PyUnicode_FromFormat("%U:%d %U", code->co_filename, PyFrame_GetLineNumber(f), code->co_name);
            Py_DECREF(code);
            Py_DECREF(f);
            f = back;
            if (item == NULL || PyList_Append(where, item) < 0) { Py_XDECREF(item); PyErr_Clear(); break; }
            Py_DECREF(item);
            depth++;
        }
        Py_XDECREF(f);
        item = Py_BuildValue("(LLkN)", cpu, gs_now(), PyThread_get_thread_ident(), where);
        if (item == NULL || PyList_Append(gs_gaps, item) < 0) PyErr_Clear();
        Py_XDECREF(item);
        PyErr_Restore(et, ev, tb);
    }

    static int gs_switch(void) {
        long long now;
        if (!gs_due) return 0;
        if (gs_gap_ns) {
            long long cpu = gs_cpu();
            if (gs_last_cpu && cpu - gs_last_cpu > gs_gap_ns && gs_gaps != NULL) gs_note_gap(cpu - gs_last_cpu);
            gs_last_cpu = cpu;
        }
        now = gs_now();
        if (now < gs_due) {
            /* not due: join a handover in progress (looking at most every 20 us) */
            if (!(gs_fd >= 0 && __atomic_load_n(&gs_handing, __ATOMIC_RELAXED)) || now < gs_joined + 20000)
                return 0;
            gs_joined = now;
            gs_count[4]++;
            gs_hand_over();
            return 1;
        }
        gs_count[0]++;
        gs_due = gs_now() + gs_every * (gs_hand_over() ? 1 : 8);
        return 1;
    }

    /* How many threads are marked right now (process-wide).  The wakers look at their loops only while one is:
       the releases they make up for are those of gamestore's own calls, and each look reads two /proc files
       (4,000 looks a second cost ~6% of a core with nothing to do). */
    static int gs_marked = 0;

    /* wake every waker waiting for a marked thread (a thread marked, or a waker told to stop) */
    static void gs_wake_wakers(void) {
    #ifdef __linux__
        syscall(SYS_futex, &gs_marked, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    #endif
    }

    static void gs_marked_add(int delta) {
        if (__atomic_add_fetch(&gs_marked, delta, __ATOMIC_SEQ_CST) == 1 && delta > 0)
            gs_wake_wakers();
    }

    /* a waker with no marked thread to watch sleeps until one is marked (or 100 ms pass) */
    static void gs_wait_for_marked(void) {
    #ifdef __linux__
        struct timespec ts = {0, 100000000L};
        syscall(SYS_futex, &gs_marked, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
    #else
        gs_nap(1000000);
    #endif
    }

    /* The waker (a thread of its own, without the GIL but for a moment): while a thread is marked, every 250 us,
       if the watched thread has been asleep in futex since the last look (it waits for the GIL and no wake-up
       reached it: a release woke another waiter, perhaps a pool thread still without a CPU), take the GIL when
       free and release it: the release wakes the next waiter. */
    static long long gs_woken = 0;
    static void gs_waker(const int *stop, int fd, int sfd) {
        int asleep = 0;
        Py_BEGIN_ALLOW_THREADS
        while (!__atomic_load_n(stop, __ATOMIC_RELAXED)) {
            if (!__atomic_load_n(&gs_marked, __ATOMIC_SEQ_CST)) {
                gs_wait_for_marked();
                asleep = 0;
                continue;
            }
            gs_nap(250000);
            if (gs_waiting(fd) && !gs_runnable(sfd)) {
                if (++asleep >= 2) {
                    Py_BLOCK_THREADS
                    Py_UNBLOCK_THREADS
                    gs_woken++;
                    asleep = 0;
                }
            } else {
                asleep = 0;
            }
        }
        Py_END_ALLOW_THREADS
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
    long long gs_count[8]
    int gs_yield_woken
    int gs_sfd
    long long gs_woken
    void gs_waker(const int *stop, int fd, int sfd)
    int gs_marked
    void gs_marked_add(int delta)
    void gs_wake_wakers()
    long long gs_gap_ns
    PyObject *gs_gaps
    long long gs_last_cpu
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
    cdef int fd, sfd
    cdef Py_tracefunc profilefunc
    cdef object profileobj


def mark(double every, int fd=-1, int sfd=-1):
    """Mark this thread: hand over every ``every`` seconds (0: unmark), to the waiter watched through ``fd`` (its
    ``/proc/self/task/<tid>/syscall``; ``sfd``: its ``stat``, or -1).

    Python code in the thread reaches a handover point every 64 function
    calls or returns (a C profile function, ``PyEval_SetProfile``, set while
    marked).  Returns the previous marking, for :func:`restore`.
    """
    global gs_due, gs_every, gs_fd, gs_sfd, gs_last_cpu
    cdef PyThreadState *ts = PyThreadState_Get()
    cdef _Marking previous = _Marking()
    previous.due, previous.every, previous.fd, previous.sfd = gs_due, gs_every, gs_fd, gs_sfd
    previous.profilefunc = ts.c_profilefunc
    previous.profileobj = <object>ts.c_profileobj if ts.c_profileobj != NULL else None
    was_marked = gs_due != 0
    gs_every = <long long>(every * 1e9)
    gs_due = gs_now() + gs_every if every > 0 else 0
    if every > 0 and not was_marked:
        gs_marked_add(1)
    elif every <= 0 and was_marked:
        gs_marked_add(-1)
    gs_last_cpu = 0  # stretches are measured within a marking
    gs_fd = fd
    gs_sfd = sfd
    if every > 0:
        gs_set_profile(1, NULL, NULL)
        if fd >= 0:
            gs_precise_naps()
    return previous


def restore(_Marking previous):
    global gs_due, gs_every, gs_fd, gs_sfd, gs_last_cpu
    if previous.due and not gs_due:
        gs_marked_add(1)
    elif gs_due and not previous.due:
        gs_marked_add(-1)
    gs_due, gs_every, gs_fd, gs_sfd = previous.due, previous.every, previous.fd, previous.sfd
    gs_last_cpu = 0
    gs_set_profile(0, previous.profilefunc, <void*>previous.profileobj if previous.profileobj is not None else NULL)


def forget():
    """In a forked child: this thread stops handing over (the thread it watched is the parent's)."""
    global gs_due, gs_fd, gs_sfd, gs_marked
    gs_due, gs_fd, gs_sfd = 0, -1, -1
    gs_marked = 0  # the child's only thread; the others' markings were the parent's


def set_futex(long nr):
    """The system call number a thread blocked on a lock shows in ``/proc/self/task/<tid>/syscall``."""
    global gs_futex
    gs_futex = nr


def counts():
    """Process-wide tallies: (handover points due, waiter seen waiting, handed over, given up, looks joining another
    thread's handover, given up while the waiter was runnable, wake-ups sent again, yields to a woken waiter)."""
    return (gs_count[0], gs_count[1], gs_count[2], gs_count[3], gs_count[4], gs_count[5], gs_count[6], gs_count[7])


def set_yield_woken(bint on):
    """Whether a due look that finds the waiter woken (runnable, not blocked on a lock) steps aside for it (default
    on); for side-by-side measurements."""
    global gs_yield_woken
    gs_yield_woken = on



def track_gaps(double threshold):
    """Diagnostics: from now on, note every stretch of more than ``threshold`` seconds of a marked thread's CPU
    time between two handover points (0: stop); :func:`gaps` returns them."""
    global gs_gap_ns, gs_gaps, gs_last_cpu
    if gs_gaps == NULL:
        kept = []
        Py_INCREF(kept)
        gs_gaps = <PyObject*>kept
    gs_gap_ns = <long long>(threshold * 1e9)
    gs_last_cpu = 0


def gaps():
    """(CPU seconds, ``time.monotonic()`` at its end, the thread's ``threading.get_ident()``, [innermost Python
    frames where it ended]) of each stretch noted, and forget them."""
    if gs_gaps == NULL:
        return []
    out = [(ns / 1e9, end / 1e9, ident, where) for ns, end, ident, where in <object>gs_gaps]
    del (<list>gs_gaps)[:]
    return out


cdef class Waker:
    """Keeps a thread waiting for the GIL from sleeping through a release whose wake-up went elsewhere.

    :meth:`run` (in a thread of its own) watches the thread behind ``fd`` (its
    ``/proc/self/task/<tid>/syscall``) and ``sfd`` (its ``stat``) until :meth:`stop`.
    """
    cdef int fd, sfd
    cdef int stopped

    def __init__(self, int fd, int sfd):
        self.fd = fd
        self.sfd = sfd
        self.stopped = 0

    def run(self):
        gs_waker(&self.stopped, self.fd, self.sfd)

    def stop(self):
        self.stopped = 1
        gs_wake_wakers()


def marked():
    """How many threads are marked right now (the wakers look at their loops only while one is)."""
    return gs_marked


def woken():
    """How often a waker took and released the GIL for a thread that slept through a release."""
    return gs_woken
