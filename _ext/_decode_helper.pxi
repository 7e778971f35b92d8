# Included by _decode.pyx (before _decode_point.pxi): a second thread for a point read's zstd frames.
#
# A point read (get_game) decompresses ~50 buffers of one moves batch, ~20% of its time, while the calling
# thread holds the GIL; the machine's other core is idle then.  One helper thread (plain C, never touches
# Python) takes frames from the same list as the calling thread, largest first; the caller runs its share and
# waits only for a frame the helper already took, without the GIL (another thread, an event loop, runs).  When the helper is busy with another thread's read, or
# cannot start, the caller decodes every frame itself (as before).  Only fresh batches (not yet in the batch
# cache, seen by no other thread) are split; a frame that fails is left to the sequential pass, which decodes
# it again and raises the usual typed error.  After a fork the child starts a helper of its own.

cdef extern from *:
    """
    #include <pthread.h>
    #include <string.h>
    typedef size_t (*gsh_dec_fn)(void*, void*, size_t, const void*, size_t);
    typedef unsigned (*gsh_iserr_fn)(size_t);
    typedef void* (*gsh_create_fn)(void);
    typedef size_t (*gsh_ctl_fn)(void*);

    typedef struct {
        const uint8_t *src;   /* the zstd frame, or the raw bytes (copy) */
        int64_t n;            /* its bytes */
        uint8_t *dst;
        int64_t raw;          /* the buffer's whole size */
        int64_t need;         /* decode at least this prefix */
        int64_t done;         /* bytes decoded; < 0: failed (left to the sequential pass) */
        int k;                /* body buffer index */
        int copy;
        int fin;              /* run to the end (by either thread); set under gsh.m */
    } gsh_job;

    static struct {
        pthread_mutex_t m;
        pthread_cond_t work, done;
        gsh_job *jobs;
        int n, next, finished, started, busy, atfork;
        unsigned gen;
        long long runs;
        gsh_dec_fn dec, cont;
        gsh_iserr_fn iserr;
        gsh_create_fn create;
        gsh_ctl_fn begin, next_size;
    } gsh = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER};

    /* The bytes of src[:n] decoded into dst (raw once whole), at least need: block by block from the start
       with the streaming API, else the whole frame; -1 when it does not decode, -2 without a context. */
    static int64_t gsh_inflate(void *dctx, uint8_t *dst, int64_t raw, const uint8_t *src, int64_t n, int64_t need) {
        size_t got, step;
        int64_t done = 0, left = n;
        const uint8_t *at = src;
        if (dctx == NULL) return -2;
        if (need < raw && gsh.cont != NULL) {
            if (gsh.iserr(gsh.begin(dctx))) return -2;
            for (;;) {
                step = gsh.next_size(dctx);
                if (step == 0 || (int64_t)step > left) break;
                got = gsh.cont(dctx, dst + done, (size_t)(raw - done), at, step);
                if (gsh.iserr(got)) return -1;
                at += step; left -= (int64_t)step; done += (int64_t)got;
                if (done >= need) return done;
            }
        }
        got = gsh.dec(dctx, dst, (size_t)raw, src, (size_t)n);
        if (gsh.iserr(got) || (int64_t)got != raw) return -1;
        return raw;
    }

    static void gsh_run(gsh_job *j, void *dctx) {
        if (j->copy) {
            memcpy(j->dst, j->src, (size_t)j->need);
            j->done = j->need;
        } else {
            j->done = gsh_inflate(dctx, j->dst, j->raw, j->src, j->n, j->need);
        }
    }

    /* Take and run jobs until none is left; entered and left with gsh.m held. */
    static void gsh_drain(void *dctx) {
        while (gsh.next < gsh.n) {
            gsh_job *j = &gsh.jobs[gsh.next++];
            pthread_mutex_unlock(&gsh.m);
            gsh_run(j, dctx);
            pthread_mutex_lock(&gsh.m);
            j->fin = 1;
            ++gsh.finished;
            pthread_cond_signal(&gsh.done);  /* the caller may wait for this job (gsh_until) or all (gsh_end) */
        }
    }

    static void *gsh_main(void *arg) {
        void *dctx = gsh.create();
        unsigned seen;
        (void)arg;
        pthread_mutex_lock(&gsh.m);
        seen = gsh.gen;
        for (;;) {
            while (gsh.gen == seen) pthread_cond_wait(&gsh.work, &gsh.m);
            seen = gsh.gen;
            gsh_drain(dctx);
        }
        return NULL;
    }

    static void gsh_after_fork(void) {  /* the child has no helper thread: it starts its own */
        pthread_mutex_init(&gsh.m, NULL);
        pthread_cond_init(&gsh.work, NULL);
        pthread_cond_init(&gsh.done, NULL);
        gsh.started = gsh.busy = 0;
        gsh.n = gsh.next = gsh.finished = 0;
        gsh.jobs = NULL;
    }

    /* Start the helper thread once; with gsh.m held. 0, or -1 when it cannot start. */
    static int gsh_ensure_started(void) {
        pthread_t t;
        pthread_attr_t a;
        int rc;
        if (gsh.started) return 0;
        if (!gsh.atfork) {
            if (pthread_atfork(NULL, NULL, gsh_after_fork) != 0) return -1;
            gsh.atfork = 1;
        }
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&a, 256 * 1024);
        rc = pthread_create(&t, &a, gsh_main, NULL);
        pthread_attr_destroy(&a);
        if (rc != 0) return -1;
        gsh.started = 1;
        return 0;
    }

    /* Hand jobs[0:n) to the helper, which takes them in order, and return at once: 0, or -1 (nothing handed
       over) when the helper serves another thread's read or cannot start.  After 0 the caller runs gsh_until
       for each prefix of the jobs it needs, and gsh_end before it frees the jobs or their memory. */
    static int gsh_start(gsh_job *jobs, int n) {
        int i;
        pthread_mutex_lock(&gsh.m);
        if (gsh.busy || gsh.create == NULL || gsh_ensure_started() != 0) {
            pthread_mutex_unlock(&gsh.m);
            return -1;
        }
        for (i = 0; i < n; i++) jobs[i].fin = 0;
        gsh.busy = 1;
        gsh.jobs = jobs;
        gsh.n = n;
        gsh.next = gsh.finished = 0;
        gsh.gen++;
        pthread_cond_signal(&gsh.work);
        pthread_mutex_unlock(&gsh.m);
        return 0;
    }

    /* Jobs [0, upto) of the started run, to the end: this thread takes those the helper has not taken yet,
       then waits for the helper's. */
    static void gsh_until(int upto, void *dctx) {
        int i;
        pthread_mutex_lock(&gsh.m);
        if (upto > gsh.n) upto = gsh.n;
        while (gsh.next < upto) {
            gsh_job *j = &gsh.jobs[gsh.next++];
            pthread_mutex_unlock(&gsh.m);
            gsh_run(j, dctx);
            pthread_mutex_lock(&gsh.m);
            j->fin = 1;
            ++gsh.finished;
        }
        for (i = 0; i < upto; i++)
            while (!gsh.jobs[i].fin) pthread_cond_wait(&gsh.done, &gsh.m);
        pthread_mutex_unlock(&gsh.m);
    }

    /* End the started run: no job is taken from now on; wait for the ones running. */
    static void gsh_end(void) {
        pthread_mutex_lock(&gsh.m);
        gsh.n = gsh.next;
        while (gsh.finished < gsh.next) pthread_cond_wait(&gsh.done, &gsh.m);
        gsh.busy = 0;
        gsh.jobs = NULL;
        gsh.n = gsh.next = gsh.finished = 0;
        gsh.runs++;
        pthread_mutex_unlock(&gsh.m);
    }

    static void gsh_install(void *create, void *dec, void *iserr, void *begin, void *next_size, void *cont) {
        pthread_mutex_lock(&gsh.m);
        gsh.create = (gsh_create_fn)create;
        gsh.dec = (gsh_dec_fn)dec;
        gsh.iserr = (gsh_iserr_fn)iserr;
        gsh.begin = (gsh_ctl_fn)begin;
        gsh.next_size = (gsh_ctl_fn)next_size;
        gsh.cont = (begin != NULL && next_size != NULL) ? (gsh_dec_fn)cont : NULL;
        pthread_mutex_unlock(&gsh.m);
    }
    """
    ctypedef struct gsh_job:
        const uint8_t* src
        int64_t n
        uint8_t* dst
        int64_t raw
        int64_t need
        int64_t done
        int k
        int copy
        int fin
    int64_t gsh_inflate(void* dctx, uint8_t* dst, int64_t raw, const uint8_t* src, int64_t n, int64_t need) nogil
    int gsh_start(gsh_job* jobs, int n) nogil
    void gsh_until(int upto, void* dctx) nogil
    void gsh_end() nogil
    long long gsh_runs "gsh.runs"
    void gsh_install(void* create, void* dec, void* iserr, void* begin, void* next_size, void* cont) nogil

#: split a fresh batch's frames with the helper thread (set by gamestore/pointread.py: more than one core)
cdef bint _helper_on = False
#: below this many compressed bytes, waking the helper costs more than it saves
cdef int64_t HELPER_MIN_BYTES = 16384


def set_point_helper(bint on):
    """Split the zstd frames of a fresh batch between the reading thread and a helper thread (True), or decode
    them all on the reading thread (False).  Returns the former setting."""
    global _helper_on
    cdef bint was = _helper_on
    _helper_on = on
    return was


def point_helper_runs():
    """Point reads whose frames were split with the helper thread so far (in this process)."""
    return gsh_runs
