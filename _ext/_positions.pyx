# cython: boundscheck=False, wraparound=False, cdivision=True
"""Hot loops of PositionDataset's batch assembly (``gamestore/positions/gather.py`` is the spec).

A batch's positions come from several *sources* (decoded moves record
batches).  Each loop takes, per source, the address of one numpy array
(an ``int64`` table indexed by the position's ``part``) and copies every
position's data straight into the padded output: one copy, no GIL.
Arrays are passed as ndarrays (their data pointers read directly: cheaper
than buffer acquisition on a call per batch); the types and shapes are
checked here, the addresses' arrays are kept alive by the caller.
"""
cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, intptr_t, uint8_t, uintptr_t
from libc.string cimport memcpy, memset
from libc.stdlib cimport free
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from posix.unistd cimport getpid
cimport cython

cnp.import_array()

cdef extern from *:
    void __builtin_prefetch(const void* addr) nogil

#: positions ahead whose source rows a loop prefetches (the rows lie at random in a window's ~20 moves batches: each
#: read is a cache miss, and several in flight overlap their latency)
DEF AHEAD = 8


def address(a):
    """The data address of ndarray ``a`` (0 for None)."""
    if a is None:
        return 0
    if not isinstance(a, cnp.ndarray):
        raise TypeError("address: expected an ndarray")
    return <intptr_t> cnp.PyArray_DATA(<cnp.ndarray> a)


cdef inline void _check(cnp.ndarray a, int typenum, int ndim, str name) except *:
    if cnp.PyArray_TYPE(a) != typenum or cnp.PyArray_NDIM(a) != ndim or not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise TypeError(f"{name}: expected a C-contiguous {ndim}-d array of numpy type {typenum}")


cdef int64_t _policy_loop(Py_ssize_t n, Py_ssize_t width, const int64_t* offs, const int64_t* idxs,
                         const int64_t* probs, const int32_t* p_part, const int64_t* p_row, const int32_t* p_lens,
                         bint wide, int64_t unknown, int64_t* out_idx, uint8_t* out_mask, void* out_prob) noexcept nogil:
    """The padded policy rows of ``n`` positions (the reference: ``gather.fill_policy``); returns the first flat position holding
    ``unknown``, or -1."""
    cdef float* out_f = <float*> out_prob
    cdef double* out_d = <double*> out_prob
    cdef Py_ssize_t i, j, k, at
    cdef int64_t start, p, first = -1
    cdef int32_t ln
    cdef const int32_t* off
    cdef const int64_t* src_idx
    for i in range(min(n, AHEAD)):
        __builtin_prefetch((<const int32_t*> <intptr_t> offs[p_part[i]]) + p_row[i])
    for i in range(n):
        j = i + AHEAD
        if j < n:  # the offset of the position AHEAD on, and the entries of the one half-way
            __builtin_prefetch((<const int32_t*> <intptr_t> offs[p_part[j]]) + p_row[j])
        j = i + AHEAD // 2
        if j < n:
            p = p_part[j]
            start = (<const int32_t*> <intptr_t> offs[p])[p_row[j]]
            __builtin_prefetch((<const int64_t*> <intptr_t> idxs[p]) + start)
            if wide:
                __builtin_prefetch((<const double*> <intptr_t> probs[p]) + start)
            else:
                __builtin_prefetch((<const float*> <intptr_t> probs[p]) + start)
        p = p_part[i]
        off = <const int32_t*> <intptr_t> offs[p]
        src_idx = <const int64_t*> <intptr_t> idxs[p]
        start = off[p_row[i]]
        ln = p_lens[i]
        if ln > width:
            ln = <int32_t> width
        at = i * width
        memcpy(out_idx + at, src_idx + start, ln * sizeof(int64_t))
        if first < 0:
            for k in range(ln):
                if src_idx[start + k] == unknown:
                    first = at + k
                    break
        for k in range(ln, width):
            out_idx[at + k] = -1
        memset(out_mask + at, 1, ln)
        memset(out_mask + at + ln, 0, width - ln)
        if wide:
            memcpy(out_d + at, (<const double*> <intptr_t> probs[p]) + start, ln * sizeof(double))
            memset(out_d + at + ln, 0, (width - ln) * sizeof(double))
        else:
            memcpy(out_f + at, (<const float*> <intptr_t> probs[p]) + start, ln * sizeof(float))
            memset(out_f + at + ln, 0, (width - ln) * sizeof(float))
    return first


cdef void _rows_loop(Py_ssize_t n, Py_ssize_t width, const int64_t* bases, const int64_t* valids,
                     const int32_t* p_part, const int64_t* p_row, uint8_t* dst, uint8_t* p_mask) noexcept nogil:
    """Row ``i`` of ``dst`` (``width`` bytes): source row ``p_row[i]``, zeros where not valid (the reference: ``gather.copy_rows``)."""
    cdef Py_ssize_t i, j, k
    cdef int64_t p
    cdef intptr_t v
    cdef const uint8_t* ahead
    for i in range(n):
        j = i + AHEAD
        if j < n:
            ahead = (<const uint8_t*> <intptr_t> bases[p_part[j]]) + p_row[j] * width
            for k in range(0, width, 64):
                __builtin_prefetch(ahead + k)
        p = p_part[i]
        v = <intptr_t> valids[p]
        if v != 0 and (<const uint8_t*> v)[p_row[i]] == 0:
            memset(dst + i * width, 0, width)
            p_mask[i] = 0
        else:
            memcpy(dst + i * width, (<const uint8_t*> <intptr_t> bases[p]) + p_row[i] * width, width)
            p_mask[i] = 1


cdef int32_t _head_loop(Py_ssize_t n, const int64_t* numbers, const int64_t* players, const int64_t* lenss,
                        const int32_t* p_part, const int64_t* p_row, const int64_t* p_game, const int64_t* g_players,
                        const int64_t* g_winner, const float* g_value, const uint8_t* g_present, Py_ssize_t width,
                        int64_t first_player, int64_t* out_number, int64_t* out_player, int64_t* out_players,
                        int64_t* out_winner, float* out_value, uint8_t* out_mask, float* out_mover, uint8_t* out_has,
                        int32_t* out_lens) noexcept nogil:
    """The per-position columns of ``n`` positions (the reference: ``gather.fill_head``); returns the widest policy."""
    cdef int64_t p, r, g, player, slot
    cdef int32_t ln, widest = 0
    cdef Py_ssize_t i, j
    for i in range(n):
        j = i + AHEAD
        if j < n:
            p = p_part[j]
            r = p_row[j]
            __builtin_prefetch((<const int64_t*> <intptr_t> players[p]) + r)
            __builtin_prefetch((<const int32_t*> <intptr_t> lenss[p]) + r)
            __builtin_prefetch((<const int32_t*> <intptr_t> numbers[p]) + r)
        p = p_part[i]
        r = p_row[i]
        g = p_game[i]
        player = (<const int64_t*> <intptr_t> players[p])[r]
        ln = (<const int32_t*> <intptr_t> lenss[p])[r]
        out_number[i] = (<const int32_t*> <intptr_t> numbers[p])[r]
        out_player[i] = player
        out_players[i] = g_players[g]
        out_winner[i] = g_winner[g]
        memcpy(out_value + i * width, g_value + g * width, width * sizeof(float))
        memcpy(out_mask + i * width, g_present + g * width, width)
        slot = player - first_player
        out_mover[i] = g_value[g * width + slot] if 0 <= slot < width else 0.0
        out_has[i] = ln > 0
        out_lens[i] = ln
        if ln > widest:
            widest = ln
    return widest


cdef inline void _check_games(cnp.ndarray game_players, cnp.ndarray game_winner, cnp.ndarray game_value,
                              cnp.ndarray game_present) except *:
    _check(game_players, cnp.NPY_INT64, 1, "game_players")
    _check(game_winner, cnp.NPY_INT64, 1, "game_winner")
    _check(game_value, cnp.NPY_FLOAT32, 2, "game_value")
    _check(game_present, cnp.NPY_BOOL, 2, "game_present")
    cdef Py_ssize_t ngames = cnp.PyArray_DIM(game_players, 0), width = cnp.PyArray_DIM(game_value, 1)
    if (cnp.PyArray_DIM(game_winner, 0) != ngames or cnp.PyArray_DIM(game_value, 0) != ngames
            or cnp.PyArray_DIM(game_present, 0) != ngames or cnp.PyArray_DIM(game_present, 1) != width):
        raise ValueError("game tables differ in shape")


cdef inline void _check_game_index(const int64_t* p_game, Py_ssize_t n, Py_ssize_t ngames) except *:
    cdef Py_ssize_t i
    for i in range(n):
        if p_game[i] < 0 or p_game[i] >= ngames:
            raise IndexError(f"position {i}: game {p_game[i]} out of range")


# rows of :class:`Assembler`'s address table, per source (then ``vec``/``valid`` of each vector)
cdef enum:
    NUMBER = 0
    PLAYER = 1
    LENS = 2
    OFF = 3
    INDEX = 4
    PROB = 5


cdef inline cnp.ndarray _empty(int nd, Py_ssize_t d0, Py_ssize_t d1, int typenum):
    cdef cnp.npy_intp dims[2]
    dims[0] = d0
    dims[1] = d1
    return cnp.PyArray_EMPTY(nd, dims, typenum, 0)


cdef inline void _put(dict items, str key, object value, object convert) except *:
    items[key] = value if convert is None else convert(value)


# -- Assembler(ahead=depth): a native producer thread makes the window's next batches ---------------------------------
cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_cond_t:
        pass
    ctypedef unsigned long pthread_t
    int pthread_mutex_init(pthread_mutex_t* m, const void* attr)
    int pthread_mutex_destroy(pthread_mutex_t* m)
    int pthread_mutex_lock(pthread_mutex_t* m)
    int pthread_mutex_unlock(pthread_mutex_t* m)
    int pthread_mutex_trylock(pthread_mutex_t* m)
    int pthread_cond_init(pthread_cond_t* c, const void* attr)
    int pthread_cond_destroy(pthread_cond_t* c)
    int pthread_cond_wait(pthread_cond_t* c, pthread_mutex_t* m)
    int pthread_cond_signal(pthread_cond_t* c)
    int pthread_create(pthread_t* t, const void* attr, void* (*start)(void*) noexcept nogil, void* arg)
    int pthread_join(pthread_t t, void** ret)

cdef extern from "<time.h>" nogil:
    cdef struct timespec:
        long tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec* ts)
    int CLOCK_THREAD_CPUTIME_ID

cdef extern from "<stdlib.h>" nogil:
    int posix_memalign(void** memptr, size_t alignment, size_t size)
    void* malloc(size_t size)

#: slots of a producer's ring, at most
DEF MAX_DEPTH = 8
#: alignment of every array inside a producer's blocks (a cache line)
DEF ALIGN = 64

#: blocks a pool keeps per kind, at most
DEF POOL_MAX = 32
#: a block's kind: a pool keeps a free list of each (the head blocks' size is fixed per batch size, the tails' varies
#: with the batch's widest policy)
cdef enum:
    HEAD = 0
    TAIL = 1

ctypedef struct Pool:
    # free lists of blocks (``n[kind]`` of them, with their sizes), under ``mu``; ``pid``: the process that made it
    pthread_mutex_t mu
    long pid
    int cap
    int n[2]
    void* blk[2][POOL_MAX]
    size_t size[2][POOL_MAX]
    # gets served from a free list / by a fresh allocation; of those, a pooled block too small freed first; blocks
    # given back and kept / freed (the free list full, or a forked child)
    Py_ssize_t reused, fresh, replaced, returned, dropped


cdef inline size_t _roomy(size_t need) noexcept nogil:
    """A fresh block's size for ``need`` bytes: a quarter more (a later batch's tail may be wider), in whole pages."""
    return (need + need // 4 + 4095) & ~(<size_t> 4095)


cdef void* _pool_get(Pool* q, int kind, size_t need, size_t* got) noexcept nogil:
    """A block of ``kind`` of at least ``need`` bytes (its size in ``got``): the smallest pooled one that fits, else a
    fresh one with headroom (a pooled one too small is freed first: the pool stays bounded); NULL when out of memory."""
    cdef int i, best = -1, last
    cdef void* p = NULL
    cdef void* small = NULL
    cdef size_t size
    pthread_mutex_lock(&q.mu)
    last = q.n[kind] - 1
    for i in range(q.n[kind]):
        if q.size[kind][i] >= need and (best < 0 or q.size[kind][i] < q.size[kind][best]):
            best = i
    if best >= 0:
        p, got[0] = q.blk[kind][best], q.size[kind][best]
        q.reused += 1
    elif last >= 0:  # every pooled block too small: replace one (the last)
        small, best = q.blk[kind][last], last
        q.replaced += 1
    if best >= 0:
        q.blk[kind][best], q.size[kind][best] = q.blk[kind][last], q.size[kind][last]
        q.n[kind] = last
    if p == NULL:
        q.fresh += 1
    pthread_mutex_unlock(&q.mu)
    if p != NULL:
        return p
    free(small)
    size = _roomy(need)
    if posix_memalign(&p, ALIGN, size) != 0:
        return NULL
    got[0] = size
    return p


cdef void _pool_put(Pool* q, int kind, void* p, size_t size) noexcept nogil:
    """Block ``p`` back into its free list (freed when the list is full: the smallest of the list and ``p`` goes), or
    freed in a forked child (the lock may have been held at the fork)."""
    cdef int i, low = -1
    if p == NULL:
        return
    if q.pid != getpid():
        free(p)
        return
    pthread_mutex_lock(&q.mu)
    if q.n[kind] < q.cap:
        q.blk[kind][q.n[kind]], q.size[kind][q.n[kind]] = p, size
        q.n[kind] += 1
        q.returned += 1
        p = NULL
    else:
        for i in range(q.n[kind]):
            if q.size[kind][i] < size and (low < 0 or q.size[kind][i] < q.size[kind][low]):
                low = i
        if low >= 0:  # keep the larger block
            q.blk[kind][low], p = p, q.blk[kind][low]
            q.size[kind][low] = size
        q.dropped += 1
    pthread_mutex_unlock(&q.mu)
    free(p)


@cython.final
cdef class BlockPool:
    """Blocks made by :class:`Assembler` producers, reused once the arrays over them are gone: at most ``cap`` kept per
    kind (a batch's head and tail blocks).  An Assembler's blocks hold their pool: it lives while any of them is out,
    so the pool can be shared by several Assemblers (the windows of one dataset iteration).  A forked child frees the
    blocks given back to it rather than pooling them (it never takes the lock)."""
    cdef Pool* q

    def __cinit__(self, int cap=12):
        if not 0 <= cap <= POOL_MAX:
            raise ValueError(f"cap must be between 0 and {POOL_MAX}")
        self.q = <Pool*> malloc(sizeof(Pool))
        if self.q == NULL:
            raise MemoryError()
        memset(self.q, 0, sizeof(Pool))
        if pthread_mutex_init(&self.q.mu, NULL) != 0:
            free(self.q)
            self.q = NULL
            raise MemoryError("pthread_mutex_init")
        self.q.cap, self.q.pid = cap, getpid()

    def __dealloc__(self):
        cdef Pool* q = self.q
        cdef int kind, i
        if q == NULL:
            return
        self.q = NULL
        # in a forked child the lists are read only if the lock was free at the fork (else they are left: the memory is
        # the parent's copy)
        if q.pid == getpid() or pthread_mutex_trylock(&q.mu) == 0:
            for kind in range(2):
                for i in range(q.n[kind]):
                    free(q.blk[kind][i])
            if q.pid == getpid():
                pthread_mutex_destroy(&q.mu)
        free(q)

    cdef inline long _get(self, int which):
        cdef Pool* q = self.q
        cdef long n
        if q.pid != getpid():
            return 0
        pthread_mutex_lock(&q.mu)
        if which == 0:
            n = q.reused
        elif which == 1:
            n = q.fresh
        elif which == 2:
            n = q.replaced
        elif which == 3:
            n = q.returned
        elif which == 4:
            n = q.dropped
        else:
            n = q.n[HEAD] + q.n[TAIL]
        pthread_mutex_unlock(&q.mu)
        return n

    @property
    def cap(self):
        """Blocks kept per kind, at most."""
        return self.q.cap

    @property
    def reused(self):
        """Blocks taken from the free lists."""
        return self._get(0)

    @property
    def fresh(self):
        """Blocks allocated (no pooled block fitted)."""
        return self._get(1)

    @property
    def replaced(self):
        """Of the fresh ones: those for which a pooled block too small was freed."""
        return self._get(2)

    @property
    def returned(self):
        """Blocks given back and kept."""
        return self._get(3)

    @property
    def dropped(self):
        """Blocks given back and freed (the free list full)."""
        return self._get(4)

    @property
    def kept(self):
        """Blocks in the free lists now."""
        return self._get(5)


# a ring slot's state
cdef enum:
    EMPTY = 0
    MADE = 1
    REDO = 2  # too wide for max_candidates, or out of memory: the consumer makes the batch synchronously

ctypedef struct Slot:
    Py_ssize_t a, b
    int state
    void* head  # the head arrays (see _head_layout)
    void* tail  # the policy and vector arrays (see _tail_layout)
    size_t head_cap, tail_cap  # their blocks' sizes (what the pool takes back)
    int32_t widest
    int64_t first

ctypedef struct Ahead:
    # what the producer thread reads: plain C, copied from its Assembler (which keeps the arrays behind it alive)
    Pool* q  # its blocks' pool (the Assembler holds its BlockPool)
    const int64_t* t
    const int32_t* p_part
    const int64_t* p_row
    const int64_t* p_game
    const int64_t* g_players
    const int64_t* g_winner
    const float* g_value
    const uint8_t* g_present
    const Py_ssize_t* sizes
    Py_ssize_t nsrc, width, nvec, bs, next_a, limit
    int64_t first_player, max_candidates, unknown
    bint wide
    # the ring, under ``mu``
    pthread_mutex_t mu
    pthread_cond_t made_cv
    pthread_cond_t free_cv
    pthread_t thread
    int depth, take, put, filled, making, stop, done, producer_waits, consumer_waits
    double cpu  # the producer thread's CPU seconds (set when it ends)
    Py_ssize_t made
    Slot ring[MAX_DEPTH]

#: producer threads started and not yet joined (in this process)
cdef Py_ssize_t _live = 0


def live_producers():
    """Native producer threads of :class:`Assembler` started and not yet joined in this process."""
    return _live


cdef inline size_t _up(size_t x) noexcept nogil:
    return (x + (ALIGN - 1)) & ~(<size_t> (ALIGN - 1))


cdef size_t _head_layout(Py_ssize_t n, Py_ssize_t width, size_t* offs) noexcept nogil:
    """Offsets of a batch's head arrays in one block (number, player, num_players, winner: int64 [n]; value: float32
    [n, width]; value_mask: bool [n, width]; value_mover: float32 [n]; has_policy: bool [n]; lens: int32 [n]); its size."""
    cdef size_t sizes[9]
    cdef size_t at = 0
    cdef int i
    sizes[0] = sizes[1] = sizes[2] = sizes[3] = 8 * n
    sizes[4] = 4 * n * width
    sizes[5] = n * width
    sizes[6] = 4 * n
    sizes[7] = n
    sizes[8] = 4 * n
    for i in range(9):
        offs[i] = at
        at = _up(at + sizes[i])
    return at if at > 0 else ALIGN


cdef size_t _tail_layout(Py_ssize_t n, Py_ssize_t k, bint wide, Py_ssize_t nvec, const Py_ssize_t* sizes,
                         size_t* offs) noexcept nogil:
    """Offsets of a batch's policy arrays (index int64 [n, k], mask bool [n, k], prob float64/float32 [n, k]) and
    vector arrays (per vector: float32 rows of ``sizes[v]`` bytes, bool [n]) in one block; its size."""
    cdef size_t at = 0
    cdef Py_ssize_t v
    offs[0] = at
    at = _up(at + 8 * n * k)
    offs[1] = at
    at = _up(at + n * k)
    offs[2] = at
    at = _up(at + (8 if wide else 4) * n * k)
    for v in range(nvec):
        offs[3 + 2 * v] = at
        at = _up(at + n * sizes[v])
        offs[4 + 2 * v] = at
        at = _up(at + n)
    return at if at > 0 else ALIGN


cdef int _make(Ahead* h, Slot* s, size_t* toffs) noexcept nogil:
    """Batch ``s.a:s.b`` into blocks of the pool (what Assembler's synchronous path computes); MADE or REDO."""
    cdef Py_ssize_t a = s.a, n = s.b - s.a, width = h.width, nsrc = h.nsrc, k, v
    cdef const int64_t* t = h.t
    cdef const int32_t* p_part = h.p_part + a
    cdef const int64_t* p_row = h.p_row + a
    cdef size_t ho[9]
    cdef void* block
    cdef uint8_t* hb
    cdef uint8_t* tb
    cdef int32_t widest
    block = _pool_get(h.q, HEAD, _head_layout(n, width, ho), &s.head_cap)
    if block == NULL:
        return REDO
    s.head = block
    hb = <uint8_t*> block
    widest = _head_loop(n, t + NUMBER * nsrc, t + PLAYER * nsrc, t + LENS * nsrc, p_part, p_row, h.p_game + a,
                        h.g_players, h.g_winner, h.g_value, h.g_present, width, h.first_player,
                        <int64_t*> (hb + ho[0]), <int64_t*> (hb + ho[1]), <int64_t*> (hb + ho[2]),
                        <int64_t*> (hb + ho[3]), <float*> (hb + ho[4]), hb + ho[5], <float*> (hb + ho[6]), hb + ho[7],
                        <int32_t*> (hb + ho[8]))
    s.widest = widest
    if 0 <= h.max_candidates < widest:
        return REDO
    k = widest if h.max_candidates < 0 else h.max_candidates
    block = _pool_get(h.q, TAIL, _tail_layout(n, k, h.wide, h.nvec, h.sizes, toffs), &s.tail_cap)
    if block == NULL:
        return REDO
    s.tail = block
    tb = <uint8_t*> block
    s.first = _policy_loop(n, k, t + OFF * nsrc, t + INDEX * nsrc, t + PROB * nsrc, p_part, p_row,
                           <const int32_t*> (hb + ho[8]), h.wide, h.unknown, <int64_t*> (tb + toffs[0]), tb + toffs[1],
                           tb + toffs[2])
    for v in range(h.nvec):
        _rows_loop(n, h.sizes[v], t + (6 + 2 * v) * nsrc, t + (7 + 2 * v) * nsrc, p_part, p_row, tb + toffs[3 + 2 * v],
                   tb + toffs[4 + 2 * v])
    return MADE


cdef void* _produce(void* arg) noexcept nogil:
    """The producer thread: batches ``next_a:next_a + bs`` in order while they fit before ``limit``, into the ring."""
    cdef Ahead* h = <Ahead*> arg
    cdef Slot* s
    cdef int state
    cdef size_t* toffs = <size_t*> malloc((3 + 2 * h.nvec) * sizeof(size_t))
    cdef timespec ts
    pthread_mutex_lock(&h.mu)
    while True:
        while not h.stop and h.filled == h.depth:
            h.producer_waits = 1
            pthread_cond_wait(&h.free_cv, &h.mu)
        h.producer_waits = 0
        if h.stop or h.next_a + h.bs > h.limit:
            break
        s = &h.ring[h.put]
        s.a = h.next_a
        s.b = h.next_a + h.bs
        s.head = s.tail = NULL
        s.widest = 0
        s.first = -1
        h.next_a = s.b
        h.making = 1
        pthread_mutex_unlock(&h.mu)
        state = _make(h, s, toffs) if toffs != NULL else REDO
        pthread_mutex_lock(&h.mu)
        h.making = 0
        s.state = state
        h.put = (h.put + 1) % h.depth
        h.filled += 1
        h.made += 1
        if h.consumer_waits:
            pthread_cond_signal(&h.made_cv)
    h.done = 1
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    h.cpu = ts.tv_sec + ts.tv_nsec * 1e-9
    pthread_cond_signal(&h.made_cv)
    pthread_mutex_unlock(&h.mu)
    free(toffs)
    return NULL


# what _take found
cdef enum:
    TOOK = 0  # the next made batch, in ``out``
    BUSY = 1  # the producer is making it (wait=False only)
    YOURS = 2  # the producer had not started it: the caller makes it (the producer goes on with the one after)
    ENDED = 3  # the producer has stopped

cdef int _take(Ahead* h, Py_ssize_t a, Slot* out, bint wait) noexcept nogil:
    """Batch ``a`` (the next in stream order): from the ring into ``out``, or, when the producer has not started it,
    claimed for the caller (it makes it itself rather than wait: when the producer falls behind, both make batches);
    when the producer is making it: waits (``wait``) or returns BUSY."""
    pthread_mutex_lock(&h.mu)
    while wait and h.filled == 0 and h.making and not h.done:
        h.consumer_waits = 1
        pthread_cond_wait(&h.made_cv, &h.mu)
    h.consumer_waits = 0
    if h.filled == 0:
        if h.making:
            pthread_mutex_unlock(&h.mu)
            return BUSY
        if h.done or h.stop or h.next_a != a:
            pthread_mutex_unlock(&h.mu)
            return ENDED
        h.next_a = a + h.bs
        pthread_mutex_unlock(&h.mu)
        return YOURS
    out[0] = h.ring[h.take]
    h.ring[h.take].state = EMPTY
    h.take = (h.take + 1) % h.depth
    h.filled -= 1
    if h.producer_waits and h.filled <= h.depth // 2:  # wake the producer when half the ring is free
        pthread_cond_signal(&h.free_cv)
    pthread_mutex_unlock(&h.mu)
    return TOOK


@cython.final
cdef class _Block:
    """Owns one producer block (the base of the arrays over it): back to its pool when the last of them is gone."""
    cdef void* p
    cdef size_t size
    cdef int kind
    cdef BlockPool pool

    def __dealloc__(self):
        if self.pool is not None and self.pool.q != NULL:
            _pool_put(self.pool.q, self.kind, self.p, self.size)
        else:
            free(self.p)


cdef inline _Block _owner(void* p, size_t size, int kind, BlockPool pool):
    cdef _Block o = _Block.__new__(_Block)
    o.p, o.size, o.kind, o.pool = p, size, kind, pool
    return o


cdef inline cnp.ndarray _over(_Block owner, size_t off, int nd, Py_ssize_t d0, Py_ssize_t d1, int typenum):
    cdef cnp.npy_intp dims[2]
    dims[0] = d0
    dims[1] = d1
    cdef cnp.ndarray arr = cnp.PyArray_SimpleNewFromData(nd, dims, typenum, (<uint8_t*> owner.p) + off)
    cnp.set_array_base(arr, owner)
    return arr


@cython.no_gc_clear
cdef class Assembler:
    """The batches of one window: positions ``a:b`` of its ``part``/``row``/``game`` (what the numpy reference's
    ``gather.fill_head``, ``fill_policy`` and ``copy_rows`` make), one call per batch, the loops without the GIL,
    outputs allocated here and handed out as a dict by batch key.

    ``tables``: int64 [6 + 2 * vectors, sources], addresses per source (rows :data:`NUMBER` ... :data:`PROB`, then
    ``vec``/``valid`` per vector; the caller keeps the sources alive); ``vectors``: ``(name, shape)`` per vector;
    ``max_candidates``: -1 for none; ``game_id``/``board_type``: the window's per-position object arrays (their
    slices lead a batch's items) or None; ``convert``: applied to every array (``torch.from_numpy``) or None.
    The window's arrays are checked once, here (types, shapes, every part and game inside its table).

    ``ahead`` (0: off; at most 8): at the first :meth:`batch` call ``a:b``, a native thread (it never takes the GIL)
    starts making the batches that follow in stream order (``b:2b-a``, ...; every full batch of ``b - a`` positions
    before the window's end) into a ring of ``ahead`` slots; :meth:`batch` hands a made one out when it is the one
    asked for (waiting for it without the GIL), else (another ``a:b``, a batch too wide for ``max_candidates``, an
    allocation failure) it makes the batch synchronously, as without ``ahead``.  :meth:`close` (and deallocation)
    stops and joins the thread.  ``keep``: what the addresses in ``tables`` point into (the sources), kept alive
    until the thread is joined.  ``pool``: the :class:`BlockPool` the producer takes its blocks from (a batch's arrays
    give them back when they die; default: one of its own, ``ahead + 4`` blocks of each kind), e.g. one shared by the
    windows of an iteration.
    """
    cdef object tables, part, row, game, game_players, game_winner, game_value, game_present, game_id, board_type
    cdef object convert, keep
    #: the pool of the producer's blocks (None without ``ahead``)
    cdef readonly BlockPool pool
    cdef Ahead* h
    cdef int depth
    cdef bint started
    cdef long pid
    cdef Py_ssize_t expect
    cdef size_t* coffs
    #: batches handed out from the producer's ring, and of them those the caller waited for (without the GIL)
    cdef readonly Py_ssize_t taken, waited, made
    #: the CPU seconds of the producer thread (once joined)
    cdef readonly double producer_cpu
    cdef const int64_t* t
    cdef const int32_t* p_part
    cdef const int64_t* p_row
    cdef const int64_t* p_game
    cdef const int64_t* g_players
    cdef const int64_t* g_winner
    cdef const float* g_value
    cdef const uint8_t* g_present
    cdef Py_ssize_t nsrc, total, width, nvec
    cdef int64_t first_player, max_candidates, unknown
    cdef bint wide
    cdef Py_ssize_t* sizes
    cdef list vec_keys
    #: of the last batch: its widest policy, the first flat position of ``policy_index`` holding ``unknown`` (or -1),
    #: its policy lengths and move numbers (what a caller reports an error with)
    cdef readonly int32_t widest
    cdef readonly int64_t first_unknown
    cdef readonly object lens
    cdef readonly object number

    def __cinit__(self):
        self.sizes = NULL
        self.h = NULL
        self.coffs = NULL
        self.depth = 0
        self.started = False

    def __init__(self, cnp.ndarray tables, cnp.ndarray part, cnp.ndarray row, cnp.ndarray game,
                 cnp.ndarray game_players, cnp.ndarray game_winner, cnp.ndarray game_value, cnp.ndarray game_present,
                 int64_t first_player, int64_t max_candidates, bint wide, tuple vectors, int64_t unknown,
                 object game_id=None, object board_type=None, object convert=None, int ahead=0, object keep=None,
                 BlockPool pool=None):
        if not 0 <= ahead <= MAX_DEPTH:
            raise ValueError(f"ahead must be between 0 and {MAX_DEPTH}")
        if ahead > 0 and pool is None:
            pool = BlockPool(ahead + 4)
        _check(tables, cnp.NPY_INT64, 2, "tables")
        _check(part, cnp.NPY_INT32, 1, "part")
        _check(row, cnp.NPY_INT64, 1, "row")
        _check(game, cnp.NPY_INT64, 1, "game")
        _check_games(game_players, game_winner, game_value, game_present)
        cdef Py_ssize_t nvec = len(vectors), nsrc = cnp.PyArray_DIM(tables, 1), total = cnp.PyArray_DIM(part, 0)
        cdef Py_ssize_t i, v, size
        if cnp.PyArray_DIM(tables, 0) != 6 + 2 * nvec:
            raise ValueError("tables: expected 6 + 2 * vectors rows")
        if cnp.PyArray_DIM(row, 0) != total or cnp.PyArray_DIM(game, 0) != total:
            raise ValueError("part, row and game differ in length")
        for name in ("game_id", "board_type"):
            objs = game_id if name == "game_id" else board_type
            if objs is not None and len(objs) != total:
                raise ValueError(f"{name}: expected one item per position")
        cdef const int32_t* p_part = <const int32_t*> cnp.PyArray_DATA(part)
        cdef const int64_t* p_game = <const int64_t*> cnp.PyArray_DATA(game)
        for i in range(total):
            if p_part[i] < 0 or p_part[i] >= nsrc:
                raise IndexError(f"position {i}: part {p_part[i]} out of range")
        _check_game_index(p_game, total, cnp.PyArray_DIM(game_players, 0))
        self.vec_keys = []
        self.sizes = <Py_ssize_t*> PyMem_Malloc((nvec + 1) * sizeof(Py_ssize_t))
        if self.sizes == NULL:
            raise MemoryError()
        for v in range(nvec):
            name, shape = vectors[v]
            shape = tuple(shape)
            size = 1
            for d in shape:
                if d < 0:
                    raise ValueError(f"vector {name!r}: negative shape")
                size *= <Py_ssize_t> d
            self.sizes[v] = size * <Py_ssize_t> sizeof(float)
            self.vec_keys.append((f"vec_{name}", f"vec_{name}_mask", None if len(shape) == 1 else shape))
        self.tables, self.part, self.row, self.game = tables, part, row, game
        self.game_players, self.game_winner, self.game_value, self.game_present = game_players, game_winner, game_value, game_present
        self.game_id, self.board_type, self.convert = game_id, board_type, convert
        self.t = <const int64_t*> cnp.PyArray_DATA(tables)
        self.p_part, self.p_game = p_part, p_game
        self.p_row = <const int64_t*> cnp.PyArray_DATA(row)
        self.g_players = <const int64_t*> cnp.PyArray_DATA(game_players)
        self.g_winner = <const int64_t*> cnp.PyArray_DATA(game_winner)
        self.g_value = <const float*> cnp.PyArray_DATA(game_value)
        self.g_present = <const uint8_t*> cnp.PyArray_DATA(game_present)
        self.nsrc, self.total, self.nvec, self.width = nsrc, total, nvec, cnp.PyArray_DIM(game_value, 1)
        self.first_player, self.max_candidates, self.wide, self.unknown = first_player, max_candidates, wide, unknown
        self.widest, self.first_unknown, self.lens, self.number = 0, -1, None, None
        self.keep, self.depth, self.pool = keep, ahead, pool if ahead > 0 else None
        if ahead > 0 and self.coffs == NULL:
            self.coffs = <size_t*> PyMem_Malloc((3 + 2 * nvec) * sizeof(size_t))
            if self.coffs == NULL:
                raise MemoryError()

    def __dealloc__(self):
        self._stop()
        PyMem_Free(self.coffs)
        PyMem_Free(self.sizes)

    @property
    def running(self):
        """True while this Assembler's producer thread is started and not joined."""
        return self.h != NULL

    def ready(self):
        """Batches the producer has made and nobody took yet (0 without a producer)."""
        cdef Ahead* h = self.h
        cdef int n
        if h == NULL or self.pid != getpid():
            return 0
        pthread_mutex_lock(&h.mu)
        n = h.filled
        pthread_mutex_unlock(&h.mu)
        return n

    def close(self):
        """Stop and join the producer thread (if any) and free the batches it made that were not taken; later
        :meth:`batch` calls are synchronous."""
        self._stop()
        self.started = True  # never (re)started

    cdef void _stop(self) noexcept:
        global _live
        cdef Ahead* h = self.h
        cdef int i
        if h == NULL:
            return
        self.h = NULL
        if self.pid == getpid():
            pthread_mutex_lock(&h.mu)
            h.stop = 1
            pthread_cond_signal(&h.free_cv)
            pthread_mutex_unlock(&h.mu)
            with nogil:  # the thread never takes the GIL
                pthread_join(h.thread, NULL)
            _live -= 1
            self.producer_cpu += h.cpu
            self.made += h.made
            pthread_cond_destroy(&h.made_cv)
            pthread_cond_destroy(&h.free_cv)
            pthread_mutex_destroy(&h.mu)
        # else: a forked child (no thread here; the ring's lock may have been held at the fork): free the blocks only
        for i in range(h.depth):  # (in a child, _pool_put frees them)
            if h.ring[i].state != EMPTY:
                _pool_put(h.q, HEAD, h.ring[i].head, h.ring[i].head_cap)
                _pool_put(h.q, TAIL, h.ring[i].tail, h.ring[i].tail_cap)
        free(h)

    cdef bint _start(self, Py_ssize_t b, Py_ssize_t bs) except -1:
        """Start the producer at batch ``b:b + bs`` (False if it could not start: the batches stay synchronous)."""
        global _live
        self.started = True
        cdef Ahead* h = <Ahead*> malloc(sizeof(Ahead))
        if h == NULL:
            return False
        memset(h, 0, sizeof(Ahead))
        h.t, h.p_part, h.p_row, h.p_game = self.t, self.p_part, self.p_row, self.p_game
        h.g_players, h.g_winner, h.g_value, h.g_present = self.g_players, self.g_winner, self.g_value, self.g_present
        h.sizes, h.nsrc, h.width, h.nvec = self.sizes, self.nsrc, self.width, self.nvec
        h.bs, h.next_a, h.limit = bs, b, self.total
        h.first_player, h.max_candidates, h.unknown, h.wide = self.first_player, self.max_candidates, self.unknown, self.wide
        h.depth, h.q = self.depth, self.pool.q
        if pthread_mutex_init(&h.mu, NULL) != 0:
            free(h)
            return False
        if pthread_cond_init(&h.made_cv, NULL) != 0 or pthread_cond_init(&h.free_cv, NULL) != 0:
            free(h)
            return False
        if pthread_create(&h.thread, NULL, _produce, h) != 0:
            free(h)
            return False
        _live += 1
        self.h, self.pid, self.expect = h, getpid(), b
        return True

    def batch(self, Py_ssize_t a, Py_ssize_t b):
        """Positions ``a:b`` as a dict: ``game_id``, ``board_type`` (when given), ``move_number``, ``player``,
        ``num_players``, ``winner``, ``value``, ``value_mask``, ``value_mover``, ``policy_index``, ``policy_prob``,
        ``policy_mask``, ``has_policy``, then ``vec_<name>`` and ``vec_<name>_mask`` per vector (each array through
        ``convert``); None when the widest policy exceeds ``max_candidates`` (see :attr:`widest`, :attr:`lens`)."""
        if not 0 <= a <= b <= self.total:
            raise ValueError("positions a:b outside the window")
        cdef Ahead* h = self.h
        cdef Slot slot
        cdef int got
        if h != NULL:
            if a == self.expect and b - a == h.bs and self.pid == getpid():
                got = _take(h, a, &slot, False)  # with the GIL: a made batch costs no GIL hand-over
                if got == BUSY:
                    self.waited += 1
                    with nogil:
                        got = _take(h, a, &slot, True)
                if got == TOOK:
                    self.taken += 1
                    self.expect = slot.b
                    if slot.state == MADE:
                        return self._made(&slot)
                    _pool_put(h.q, HEAD, slot.head, slot.head_cap)
                    _pool_put(h.q, TAIL, slot.tail, slot.tail_cap)
                elif got == YOURS:
                    self.expect = b
        elif self.depth > 0 and not self.started and a < b and b + (b - a) <= self.total:
            self._start(b, b - a)
        return self._sync(a, b)

    cdef dict _made(self, Slot* s):
        """The items of a slot the producer made (its blocks now owned by the arrays over them)."""
        cdef Py_ssize_t a = s.a, b = s.b, n = s.b - s.a, width = self.width, v
        cdef size_t ho[9]
        cdef size_t* to = self.coffs
        cdef Py_ssize_t k = s.widest if self.max_candidates < 0 else self.max_candidates
        _head_layout(n, width, ho)
        _tail_layout(n, k, self.wide, self.nvec, self.sizes, to)
        cdef _Block hb = _owner(s.head, s.head_cap, HEAD, self.pool)
        cdef _Block tb = _owner(s.tail, s.tail_cap, TAIL, self.pool)
        number = _over(hb, ho[0], 1, n, 0, cnp.NPY_INT64)
        lens = _over(hb, ho[8], 1, n, 0, cnp.NPY_INT32)
        self.widest, self.lens, self.number, self.first_unknown = s.widest, lens, number, s.first
        cdef object convert = self.convert
        cdef dict items = self._objects(a, b)
        _put(items, "move_number", number, convert)
        _put(items, "player", _over(hb, ho[1], 1, n, 0, cnp.NPY_INT64), convert)
        _put(items, "num_players", _over(hb, ho[2], 1, n, 0, cnp.NPY_INT64), convert)
        _put(items, "winner", _over(hb, ho[3], 1, n, 0, cnp.NPY_INT64), convert)
        _put(items, "value", _over(hb, ho[4], 2, n, width, cnp.NPY_FLOAT32), convert)
        _put(items, "value_mask", _over(hb, ho[5], 2, n, width, cnp.NPY_BOOL), convert)
        _put(items, "value_mover", _over(hb, ho[6], 1, n, 0, cnp.NPY_FLOAT32), convert)
        _put(items, "policy_index", _over(tb, to[0], 2, n, k, cnp.NPY_INT64), convert)
        _put(items, "policy_prob", _over(tb, to[2], 2, n, k, cnp.NPY_FLOAT64 if self.wide else cnp.NPY_FLOAT32), convert)
        _put(items, "policy_mask", _over(tb, to[1], 2, n, k, cnp.NPY_BOOL), convert)
        _put(items, "has_policy", _over(hb, ho[7], 1, n, 0, cnp.NPY_BOOL), convert)
        for v in range(self.nvec):
            key, mask_key, shape = self.vec_keys[v]
            vals = _over(tb, to[3 + 2 * v], 2, n, self.sizes[v] // <Py_ssize_t> sizeof(float), cnp.NPY_FLOAT32)
            _put(items, key, vals if shape is None else vals.reshape((n,) + shape), convert)
            _put(items, mask_key, _over(tb, to[4 + 2 * v], 1, n, 0, cnp.NPY_BOOL), convert)
        return items

    cdef dict _objects(self, Py_ssize_t a, Py_ssize_t b):
        """A batch's items dict, led by its ``game_id`` and ``board_type`` slices (when given)."""
        cdef dict items = {}
        if self.game_id is not None:
            items["game_id"] = self.game_id[a:b]
        if self.board_type is not None:
            items["board_type"] = self.board_type[a:b]
        return items

    cdef object _sync(self, Py_ssize_t a, Py_ssize_t b):
        cdef Py_ssize_t n = b - a, width = self.width, nsrc = self.nsrc, v
        cdef const int64_t* t = self.t
        cdef const int32_t* p_part = self.p_part + a
        cdef const int64_t* p_row = self.p_row + a
        cdef cnp.ndarray number = _empty(1, n, 0, cnp.NPY_INT64), player = _empty(1, n, 0, cnp.NPY_INT64)
        cdef cnp.ndarray players = _empty(1, n, 0, cnp.NPY_INT64), winner = _empty(1, n, 0, cnp.NPY_INT64)
        cdef cnp.ndarray value = _empty(2, n, width, cnp.NPY_FLOAT32), value_mask = _empty(2, n, width, cnp.NPY_BOOL)
        cdef cnp.ndarray mover = _empty(1, n, 0, cnp.NPY_FLOAT32), has_policy = _empty(1, n, 0, cnp.NPY_BOOL)
        cdef cnp.ndarray lens = _empty(1, n, 0, cnp.NPY_INT32)
        cdef int32_t widest
        with nogil:
            widest = _head_loop(n, t + NUMBER * nsrc, t + PLAYER * nsrc, t + LENS * nsrc, p_part, p_row, self.p_game + a,
                                self.g_players, self.g_winner, self.g_value, self.g_present, width, self.first_player,
                                <int64_t*> cnp.PyArray_DATA(number), <int64_t*> cnp.PyArray_DATA(player),
                                <int64_t*> cnp.PyArray_DATA(players), <int64_t*> cnp.PyArray_DATA(winner),
                                <float*> cnp.PyArray_DATA(value), <uint8_t*> cnp.PyArray_DATA(value_mask),
                                <float*> cnp.PyArray_DATA(mover), <uint8_t*> cnp.PyArray_DATA(has_policy),
                                <int32_t*> cnp.PyArray_DATA(lens))
        self.widest, self.lens, self.number, self.first_unknown = widest, lens, number, -1
        if 0 <= self.max_candidates < widest:
            return None
        cdef Py_ssize_t k = widest if self.max_candidates < 0 else self.max_candidates
        cdef cnp.ndarray index = _empty(2, n, k, cnp.NPY_INT64), mask = _empty(2, n, k, cnp.NPY_BOOL)
        cdef cnp.ndarray prob = _empty(2, n, k, cnp.NPY_FLOAT64 if self.wide else cnp.NPY_FLOAT32)
        cdef list vectors = []
        cdef uint8_t** outs = <uint8_t**> PyMem_Malloc((2 * self.nvec + 1) * sizeof(uint8_t*))
        cdef int64_t first
        cdef int64_t* o_index = <int64_t*> cnp.PyArray_DATA(index)
        cdef uint8_t* o_mask = <uint8_t*> cnp.PyArray_DATA(mask)
        cdef void* o_prob = cnp.PyArray_DATA(prob)
        if outs == NULL:
            raise MemoryError()
        try:
            for v in range(self.nvec):
                vals, ok = _empty(2, n, self.sizes[v] // <Py_ssize_t> sizeof(float), cnp.NPY_FLOAT32), _empty(1, n, 0, cnp.NPY_BOOL)
                vectors.append((vals, ok))
                outs[2 * v] = <uint8_t*> cnp.PyArray_DATA(vals)
                outs[2 * v + 1] = <uint8_t*> cnp.PyArray_DATA(ok)
            with nogil:
                first = _policy_loop(n, k, t + OFF * nsrc, t + INDEX * nsrc, t + PROB * nsrc, p_part, p_row,
                                     <const int32_t*> cnp.PyArray_DATA(lens), self.wide, self.unknown, o_index, o_mask,
                                     o_prob)
                for v in range(self.nvec):
                    _rows_loop(n, self.sizes[v], t + (6 + 2 * v) * nsrc, t + (7 + 2 * v) * nsrc, p_part, p_row,
                               outs[2 * v], outs[2 * v + 1])
        finally:
            PyMem_Free(outs)
        self.first_unknown = first
        cdef object convert = self.convert
        cdef dict items = self._objects(a, b)
        _put(items, "move_number", number, convert)
        _put(items, "player", player, convert)
        _put(items, "num_players", players, convert)
        _put(items, "winner", winner, convert)
        _put(items, "value", value, convert)
        _put(items, "value_mask", value_mask, convert)
        _put(items, "value_mover", mover, convert)
        _put(items, "policy_index", index, convert)
        _put(items, "policy_prob", prob, convert)
        _put(items, "policy_mask", mask, convert)
        _put(items, "has_policy", has_policy, convert)
        for v in range(self.nvec):
            key, mask_key, shape = self.vec_keys[v]
            vals, ok = vectors[v]
            _put(items, key, vals if shape is None else vals.reshape((n,) + shape), convert)
            _put(items, mask_key, ok, convert)
        return items


def window_rows(list rows, list games, cnp.ndarray part, cnp.ndarray pos):
    """``(row, game)`` of a window's positions: ``rows[part[i]][pos[i]]`` and ``games[part[i]][pos[i]]`` (int64), in
    one pass without the GIL (the reference: ``PositionDataset._window_columns``' numpy gathers).  ``rows`` and
    ``games``: one 1-d C-contiguous int64 array per part, of equal lengths; every ``(part, pos)`` is checked."""
    _check(part, cnp.NPY_INT32, 1, "part")
    _check(pos, cnp.NPY_INT64, 1, "pos")
    cdef Py_ssize_t n = cnp.PyArray_DIM(part, 0), m = len(rows), i, k
    if len(games) != m or cnp.PyArray_DIM(pos, 0) != n:
        raise ValueError("window_rows: rows and games differ in parts, or part and pos in length")
    cdef const int64_t** r = <const int64_t**> PyMem_Malloc((m + 1) * sizeof(int64_t*))
    cdef const int64_t** g = <const int64_t**> PyMem_Malloc((m + 1) * sizeof(int64_t*))
    cdef Py_ssize_t* sizes = <Py_ssize_t*> PyMem_Malloc((m + 1) * sizeof(Py_ssize_t))
    cdef const int32_t* p_part = <const int32_t*> cnp.PyArray_DATA(part)
    cdef const int64_t* p_pos = <const int64_t*> cnp.PyArray_DATA(pos)
    cdef cnp.ndarray out_row = _empty(1, n, 0, cnp.NPY_INT64), out_game = _empty(1, n, 0, cnp.NPY_INT64)
    cdef int64_t* o_row = <int64_t*> cnp.PyArray_DATA(out_row)
    cdef int64_t* o_game = <int64_t*> cnp.PyArray_DATA(out_game)
    cdef int32_t p
    cdef int64_t q
    try:
        if r == NULL or g == NULL or sizes == NULL:
            raise MemoryError()
        for k in range(m):
            _check(rows[k], cnp.NPY_INT64, 1, "rows")
            _check(games[k], cnp.NPY_INT64, 1, "games")
            sizes[k] = cnp.PyArray_DIM(<cnp.ndarray> rows[k], 0)
            if cnp.PyArray_DIM(<cnp.ndarray> games[k], 0) != sizes[k]:
                raise ValueError(f"part {k}: rows and games differ in length")
            r[k] = <const int64_t*> cnp.PyArray_DATA(<cnp.ndarray> rows[k])
            g[k] = <const int64_t*> cnp.PyArray_DATA(<cnp.ndarray> games[k])
        for i in range(n):
            p, q = p_part[i], p_pos[i]
            if p < 0 or p >= m or q < 0 or q >= sizes[p]:
                raise IndexError(f"position {i}: part {p} position {q} out of range")
        with nogil:
            for i in range(n):
                p, q = p_part[i], p_pos[i]
                o_row[i] = r[p][q]
                o_game[i] = g[p][q]
    finally:
        PyMem_Free(r)
        PyMem_Free(g)
        PyMem_Free(sizes)
    return out_row, out_game


# -- a decoded moves batch's keyed policy entries (gamestore/positions/decode.py: _direct_source) ----------------
def key_codes(const int32_t[::1] kidx, const int32_t[::1] key_map, const int64_t[::1] key_index, int32_t[::1] code,
              int64_t[::1] index):
    """Per policy entry of a batch whose every entry is keyed: ``code[i] = key_map[kidx[i]]`` and ``index[i] =
    key_index[kidx[i]]``, in one pass without the GIL.  Returns -1, -2 when an entry is null (negative: the caller
    takes the general path; nothing is promised about the outputs), or the first entry whose dictionary index is
    outside ``key_map``."""
    cdef Py_ssize_t n = kidx.shape[0], m = key_map.shape[0], i
    cdef Py_ssize_t bad = -1
    cdef int32_t k
    if code.shape[0] != n or index.shape[0] != n or key_index.shape[0] != m:
        raise ValueError("key_codes: shapes differ")
    with nogil:
        for i in range(n):
            k = kidx[i]
            if k < 0:
                bad = -2
                break
            if k >= m:
                bad = i
                break
            code[i] = key_map[k]
            index[i] = key_index[k]
    return bad


# -- decompressing a moves batch's body buffers into a reused buffer (gamestore/positions/direct.py) ----------
include "_zstd_fns.pxi"


cdef Py_ssize_t _unpack_checks(int64_t length, const int64_t* frames, Py_ssize_t n, int64_t cap,
                               Decompressor dctx) except -2:
    """:func:`unpack`'s checks of ``frames`` (int64 [n, 4]) and its context: -1, or the first row outside."""
    cdef Py_ssize_t j
    cdef int64_t p, sz, raw, at
    if ZSTD_decompressDCtx == NULL:
        raise RuntimeError("libzstd not installed (set_zstd)")
    for j in range(n):
        p, sz, raw, at = frames[4 * j], frames[4 * j + 1], frames[4 * j + 2], frames[4 * j + 3]
        if p < 0 or sz < 0 or p > length - sz or at < 0 or raw < -1:
            return j
        if (sz if raw == -1 else raw) > cap - at:
            return j
    if dctx.ctx == NULL:
        dctx.ctx = ZSTD_createDCtx()
        if dctx.ctx == NULL:
            raise MemoryError("ZSTD_createDCtx")
    return -1


cdef Py_ssize_t _unpack_loop(const uint8_t* base, const int64_t* frames, Py_ssize_t n, uint8_t* dst,
                             void* ctx) noexcept nogil:
    """:func:`unpack`'s copies and decompressions (checked by :func:`_unpack_checks`): -1, or the first row that does
    not decompress to its size."""
    cdef Py_ssize_t j
    cdef int64_t p, sz, raw, at
    cdef size_t got
    for j in range(n):
        p, sz, raw, at = frames[4 * j], frames[4 * j + 1], frames[4 * j + 2], frames[4 * j + 3]
        if raw == -1:
            if sz:
                memcpy(dst + at, base + p, <size_t>sz)
        elif raw > 0:
            got = ZSTD_decompressDCtx(ctx, dst + at, <size_t>raw, base + p, <size_t>sz)
            if ZSTD_isError(got) or <int64_t>got != raw:
                return j
    return -1


cdef Py_ssize_t _unpack(const uint8_t* base, int64_t length, const int64_t* frames, Py_ssize_t n, uint8_t* dst,
                        int64_t cap, Decompressor dctx) except -2:
    """:func:`unpack` on pointers (``frames``: int64 [n, 4])."""
    cdef Py_ssize_t bad = _unpack_checks(length, frames, n, cap, dctx)
    if bad >= 0:
        return bad
    with nogil:
        bad = _unpack_loop(base, frames, n, dst, dctx.ctx)
    return bad


def unpack(const uint8_t[::1] src, const int64_t[:, ::1] frames, uint8_t[::1] out, Decompressor dctx):
    """Body buffers of ``src`` into ``out``: row ``j`` of ``frames`` is ``(position, size, decompressed size or
    -1 for a buffer stored uncompressed, place in out)``.  Returns -1, or the first row that is outside ``src``
    or ``out``, or does not decompress to its size (checked before anything is written; one call without the GIL)."""
    if frames.shape[1] != 4:
        raise ValueError("frames: expected 4 columns")
    cdef int64_t length = src.shape[0], cap = out.shape[0]
    return _unpack(&src[0] if length else NULL, length, &frames[0, 0] if frames.shape[0] else NULL,
                   frames.shape[0], &out[0] if cap else NULL, cap, dctx)


# -- the read-ahead's buffer pool (gamestore/positions/direct.py BufferPool.take) ---------------------------
from cpython.list cimport PyList_GET_ITEM
from cpython.ref cimport PyObject, _Py_REFCNT


cdef object _free(list bufs, Py_ssize_t size):
    """The smallest ndarray of ``bufs`` of at least ``size`` bytes whose only reference is the list's, or None (the
    caller's reference taken before the GIL is let go: no other thread can take it too)."""
    cdef Py_ssize_t i, n = len(bufs), best = -1, best_size = 0, s
    cdef PyObject* o
    for i in range(n):
        o = PyList_GET_ITEM(bufs, i)  # borrowed: no reference taken
        if _Py_REFCNT(o) != 1 or not cnp.PyArray_Check(<object>o):
            continue
        s = cnp.PyArray_NBYTES(<cnp.ndarray>o)
        if s >= size and (best < 0 or s < best_size):
            best, best_size = i, s
    return None if best < 0 else <object>PyList_GET_ITEM(bufs, best)


def free_buffer(list bufs, Py_ssize_t size):
    """The smallest buffer of ``bufs`` (1-d uint8 ndarrays) of at least ``size`` bytes whose only reference is the
    list's (no view of it alive), or None: the scan ``sys.getrefcount`` makes in Python, without a call per item (and
    with no thread switch between finding a buffer and holding it)."""
    return _free(bufs, size)


# -- a directly decoded moves batch's per-row columns (gamestore/positions/direct.py DirectDecoder.read) ----------
from libc.stdint cimport int8_t


cdef inline const uint8_t* _bitmap(object valid, Py_ssize_t n, str name) except? NULL:
    if valid is None:
        return NULL
    _check(valid, cnp.NPY_UINT8, 1, name)
    if cnp.PyArray_DIM(<cnp.ndarray>valid, 0) * 8 < n:
        raise ValueError(f"{name}: bitmap shorter than its array")
    return <const uint8_t*> cnp.PyArray_DATA(<cnp.ndarray>valid)


def moves_rows(cnp.ndarray player, object player_valid, cnp.ndarray off, object list_valid, int64_t entries):
    """``(player as int64, -1 where player_valid's bit is unset; policy lengths as int32, 0 where list_valid's is)``
    of a moves batch's ``rows`` (``player`` int8 [rows], ``off`` int32 [rows + 1], the bitmaps little-endian uint8
    or None), or None when the offsets are out of order or outside ``[0, entries]`` (one pass without the GIL)."""
    _check(player, cnp.NPY_INT8, 1, "player")
    _check(off, cnp.NPY_INT32, 1, "off")
    cdef Py_ssize_t n = cnp.PyArray_DIM(player, 0), i
    if cnp.PyArray_DIM(off, 0) != n + 1:
        raise ValueError("off: expected one more item than player")
    cdef const uint8_t* pv = _bitmap(player_valid, n, "player_valid")
    cdef const uint8_t* lv = _bitmap(list_valid, n, "list_valid")
    cdef cnp.npy_intp dims[1]
    dims[0] = n
    cdef cnp.ndarray out_player = cnp.PyArray_EMPTY(1, dims, cnp.NPY_INT64, 0)
    cdef cnp.ndarray out_lens = cnp.PyArray_EMPTY(1, dims, cnp.NPY_INT32, 0)
    cdef const int8_t* p = <const int8_t*> cnp.PyArray_DATA(player)
    cdef const int32_t* o = <const int32_t*> cnp.PyArray_DATA(off)
    cdef int64_t* po = <int64_t*> cnp.PyArray_DATA(out_player)
    cdef int32_t* lo = <int32_t*> cnp.PyArray_DATA(out_lens)
    cdef int64_t d
    cdef bint bad = n > 0 and (o[0] < 0 or o[n] > entries)
    with nogil:
        for i in range(n):
            po[i] = -1 if pv != NULL and not (pv[i >> 3] >> (i & 7)) & 1 else p[i]
            d = <int64_t>o[i + 1] - o[i]
            if d < 0:
                bad = True
            lo[i] = 0 if lv != NULL and not (lv[i >> 3] >> (i & 7)) & 1 else <int32_t>d
    if bad:
        return None
    return out_player, out_lens


# -- a directly decoded moves batch as a source's arrays, in one call (gamestore/positions/direct.py
#    DirectDecoder.source_columns; the reference: DirectDecoder.read, then decode.py's SegmentReader._direct_source) --
from cpython.buffer cimport PyBUF_SIMPLE, PyObject_GetBuffer, PyBuffer_Release

# items of :func:`direct_source`'s ``spec`` (int64): places are byte offsets in ``buf``, -1 for none
cdef enum:
    S_ROWS = 0
    S_ENTRIES = 1
    S_NUMBER = 2        # int32 [rows]
    S_PLAYER = 3        # int8 [rows]
    S_PLAYER_VALID = 4  # bitmap or -1
    S_OFF = 5           # int32 [rows + 1]
    S_LIST_VALID = 6    # bitmap or -1
    S_KEY = 7           # int32 [entries] dictionary indices, or -1: no entry has a key
    S_KEY_VALID = 8     # bitmap or -1
    S_PROB = 9          # float32 [entries]
    S_NVEC = 10         # vectors, then (place of float32 [rows, size], size, bitmap or -1) each after S_HEAD
    S_TOTAL = 11        # bytes of buf the columns need (a buffer taken from a pool's list: at least these)
    S_HEAD = 12


cdef inline cnp.ndarray _view(cnp.ndarray buf, int64_t place, int typenum, int nd, Py_ssize_t d0, Py_ssize_t d1):
    """An array of ``buf``'s memory at byte ``place`` (checked inside ``buf`` by the caller), ``buf`` its base."""
    cdef cnp.npy_intp dims[2]
    dims[0] = d0
    dims[1] = d1
    cdef cnp.ndarray a = cnp.PyArray_SimpleNewFromData(nd, dims, typenum, (<uint8_t*> cnp.PyArray_DATA(buf)) + place)
    cnp.set_array_base(a, buf)
    return a


cdef inline bint _inside(int64_t place, int64_t nbytes, int64_t cap) noexcept:
    return place >= 0 and nbytes >= 0 and place <= cap - nbytes


cdef inline bint _bit(const uint8_t* bits, Py_ssize_t i) noexcept nogil:
    return (bits[i >> 3] >> (i & 7)) & 1


def direct_source(object src, cnp.ndarray frames, object buf, Decompressor dctx, cnp.ndarray spec,
                  cnp.ndarray key_map, cnp.ndarray key_index, tuple names=None):
    """A moves batch decompressed into ``buf`` (:func:`unpack` of ``frames``) and made the arrays of its source, in
    one call: ``(number, player, off, lens, code, index, prob, vectors)`` (``number``, ``off``, ``prob`` and the
    vectors' values views of ``buf``; ``player`` int64 with -1 where null; ``lens`` int32, 0 for a null policy;
    ``code`` int32 ``key_map[key]`` and ``index`` int64 ``key_index[key]`` per policy entry, -1 where it has no key;
    ``vectors`` a list of ``(float32 [rows, size], valid uint8 [rows] or None)``), what ``DirectDecoder.read`` and
    ``SegmentReader._direct_source`` make for a batch whose entries have keys or nothing (no action ids, no float64
    probabilities).  ``spec`` (int64) says where the columns lie (see ``S_*``).  ``buf``: a uint8 array, or a list
    of them (a ``BufferPool``'s: the smallest one free of at least ``spec[S_TOTAL]`` bytes, as ``free_buffer``).
    ``names``: when given, a ninth item, the dict ``names`` -> data address of ``number``, ``player``, ``lens``,
    ``off``, ``index``, ``prob``, then each vector's values and validity (0 for None), what
    ``gather.source_addresses`` records.  Returns the tuple, or an int: the first row of ``frames`` that does not
    decompress (>= 0), -2 when the policy offsets are out of order or outside the entries, -3 when a key's
    dictionary index is outside ``key_map``, -4 when ``buf`` is a list without a free buffer large enough.  The
    loops run without the GIL."""
    _check(spec, cnp.NPY_INT64, 1, "spec")
    if cnp.PyArray_DIM(spec, 0) <= S_TOTAL:
        raise ValueError("spec: expected 12 + 3 * vectors items")
    if type(buf) is list:
        buf = _free(<list>buf, (<const int64_t*> cnp.PyArray_DATA(spec))[S_TOTAL])
        if buf is None:
            return -4
    if not isinstance(buf, cnp.ndarray):
        raise TypeError("buf: expected an ndarray or a list of them")
    return _direct_source(src, frames, <cnp.ndarray>buf, dctx, spec, key_map, key_index, names)


cdef object _direct_source(object src, cnp.ndarray frames, cnp.ndarray buf, Decompressor dctx, cnp.ndarray spec,
                           cnp.ndarray key_map, cnp.ndarray key_index, tuple names):
    _check(frames, cnp.NPY_INT64, 2, "frames")
    _check(buf, cnp.NPY_UINT8, 1, "buf")
    _check(key_map, cnp.NPY_INT32, 1, "key_map")
    _check(key_index, cnp.NPY_INT64, 1, "key_index")
    if cnp.PyArray_DIM(frames, 1) != 4:
        raise ValueError("frames: expected 4 columns")
    cdef Py_ssize_t nspec = cnp.PyArray_DIM(spec, 0)
    cdef const int64_t* s = <const int64_t*> cnp.PyArray_DATA(spec)
    if nspec < S_HEAD or s[S_NVEC] < 0 or nspec != S_HEAD + 3 * s[S_NVEC]:
        raise ValueError("spec: expected 12 + 3 * vectors items")
    cdef Py_ssize_t m = cnp.PyArray_DIM(key_map, 0)
    if cnp.PyArray_DIM(key_index, 0) != m:
        raise ValueError("key_index: expected one item per key_map item")
    cdef int64_t rows = s[S_ROWS], entries = s[S_ENTRIES], cap = cnp.PyArray_DIM(buf, 0)
    cdef Py_ssize_t nvec = s[S_NVEC], v
    if rows < 0 or entries < 0:
        raise ValueError("spec: negative rows or entries")
    # every column inside buf
    cdef bint ok = (_inside(s[S_NUMBER], rows * 4, cap) and _inside(s[S_PLAYER], rows, cap) and _inside(s[S_OFF], (rows + 1) * 4, cap)
          and _inside(s[S_PROB], entries * 4, cap))
    ok = ok and (s[S_PLAYER_VALID] == -1 or _inside(s[S_PLAYER_VALID], (rows + 7) // 8, cap))
    ok = ok and (s[S_LIST_VALID] == -1 or _inside(s[S_LIST_VALID], (rows + 7) // 8, cap))
    ok = ok and (s[S_KEY] == -1 or _inside(s[S_KEY], entries * 4, cap))
    ok = ok and (s[S_KEY] == -1 or s[S_KEY_VALID] == -1 or _inside(s[S_KEY_VALID], (entries + 7) // 8, cap))
    for v in range(nvec):
        ok = ok and s[S_HEAD + 3 * v + 1] >= 0 and _inside(s[S_HEAD + 3 * v], rows * s[S_HEAD + 3 * v + 1] * 4, cap)
        ok = ok and (s[S_HEAD + 3 * v + 2] == -1 or _inside(s[S_HEAD + 3 * v + 2], (rows + 7) // 8, cap))
    if not ok:
        raise ValueError("spec: a column outside buf")
    cdef Py_ssize_t bad
    cdef uint8_t* base = <uint8_t*> cnp.PyArray_DATA(buf)
    cdef cnp.ndarray number = _view(buf, s[S_NUMBER], cnp.NPY_INT32, 1, rows, 0)
    cdef cnp.ndarray off = _view(buf, s[S_OFF], cnp.NPY_INT32, 1, rows + 1, 0)
    cdef cnp.ndarray prob = _view(buf, s[S_PROB], cnp.NPY_FLOAT32, 1, entries, 0)
    cdef cnp.ndarray player = _empty(1, rows, 0, cnp.NPY_INT64), lens = _empty(1, rows, 0, cnp.NPY_INT32)
    cdef cnp.ndarray code = _empty(1, entries, 0, cnp.NPY_INT32), index = _empty(1, entries, 0, cnp.NPY_INT64)
    cdef list vectors = []
    cdef cnp.ndarray valid
    cdef const int32_t* km = <const int32_t*> cnp.PyArray_DATA(key_map)
    cdef const int64_t* ki = <const int64_t*> cnp.PyArray_DATA(key_index)
    cdef int64_t* po = <int64_t*> cnp.PyArray_DATA(player)
    cdef int32_t* lo = <int32_t*> cnp.PyArray_DATA(lens)
    cdef int32_t* co = <int32_t*> cnp.PyArray_DATA(code)
    cdef int64_t* io = <int64_t*> cnp.PyArray_DATA(index)
    cdef const int64_t* fr = <const int64_t*> cnp.PyArray_DATA(frames)
    cdef Py_ssize_t nframes = cnp.PyArray_DIM(frames, 0)
    cdef void* ctx
    cdef Py_buffer pb
    cdef uint8_t** vouts = <uint8_t**> PyMem_Malloc((nvec + 1) * sizeof(uint8_t*))
    if vouts == NULL:
        raise MemoryError()
    try:
        for v in range(nvec):
            vals = _view(buf, s[S_HEAD + 3 * v], cnp.NPY_FLOAT32, 2, rows, s[S_HEAD + 3 * v + 1])
            if s[S_HEAD + 3 * v + 2] == -1:
                vectors.append((vals, None))
                vouts[v] = NULL
            else:
                valid = _empty(1, rows, 0, cnp.NPY_UINT8)
                vectors.append((vals, valid))
                vouts[v] = <uint8_t*> cnp.PyArray_DATA(valid)
        PyObject_GetBuffer(src, &pb, PyBUF_SIMPLE)
        try:
            bad = _unpack_checks(pb.len, fr, nframes, cap, dctx)
            if bad >= 0:
                return bad
            ctx = dctx.ctx
            with nogil:  # one section: decompress, then the per-row and per-entry passes
                bad = _unpack_loop(<const uint8_t*> pb.buf, fr, nframes, base, ctx)
                if bad < 0:
                    bad = _source_loops(base, s, rows, entries, km, ki, m, po, lo, co, io, vouts)
        finally:
            PyBuffer_Release(&pb)
    finally:
        PyMem_Free(vouts)
    if bad >= 0:
        return bad
    if bad < -1:
        return bad
    if names is None:
        return number, player, off, lens, code, index, prob, vectors
    if len(names) != 6 + 2 * nvec:
        raise ValueError("names: expected 6 + 2 * vectors")
    cdef dict addr = {}
    cdef cnp.ndarray a
    for v, a in enumerate((number, player, lens, off, index, prob)):
        addr[names[v]] = <intptr_t> cnp.PyArray_DATA(a)
    for v in range(nvec):
        vals, ok_ = vectors[v]
        addr[names[6 + 2 * v]] = <intptr_t> cnp.PyArray_DATA(<cnp.ndarray>vals)
        addr[names[7 + 2 * v]] = 0 if ok_ is None else <intptr_t> cnp.PyArray_DATA(<cnp.ndarray>ok_)
    return number, player, off, lens, code, index, prob, vectors, addr


cdef Py_ssize_t _source_loops(const uint8_t* base, const int64_t* s, int64_t rows, int64_t entries, const int32_t* key_map,
                              const int64_t* key_index, Py_ssize_t m, int64_t* player, int32_t* lens, int32_t* code,
                              int64_t* index, uint8_t** vouts) noexcept nogil:
    """:func:`direct_source`'s per-row and per-entry passes: -1, or its error code."""
    cdef Py_ssize_t i, v
    cdef const int8_t* p = <const int8_t*> (base + s[S_PLAYER])
    cdef const int32_t* o = <const int32_t*> (base + s[S_OFF])
    cdef const uint8_t* pv = NULL if s[S_PLAYER_VALID] == -1 else base + s[S_PLAYER_VALID]
    cdef const uint8_t* lv = NULL if s[S_LIST_VALID] == -1 else base + s[S_LIST_VALID]
    cdef const int32_t* keys = NULL if s[S_KEY] == -1 else <const int32_t*> (base + s[S_KEY])
    cdef const uint8_t* kv = NULL if keys == NULL or s[S_KEY_VALID] == -1 else base + s[S_KEY_VALID]
    cdef const uint8_t* bits
    cdef int64_t d
    cdef int32_t k
    cdef bint bad = rows > 0 and (o[0] < 0 or o[rows] > entries)
    for i in range(rows):
        player[i] = -1 if pv != NULL and not _bit(pv, i) else p[i]
        d = <int64_t>o[i + 1] - o[i]
        if d < 0:
            bad = True
        lens[i] = 0 if lv != NULL and not _bit(lv, i) else <int32_t>d
    if bad:
        return -2
    for i in range(entries):
        k = -1 if keys == NULL or (kv != NULL and not _bit(kv, i)) else keys[i]
        if k >= m:
            return -3
        if k < 0:
            code[i] = -1
            index[i] = -1
        else:
            code[i] = key_map[k]
            index[i] = key_index[k]
    for v in range(s[S_NVEC]):
        if vouts[v] != NULL:
            bits = base + s[S_HEAD + 3 * v + 2]
            for i in range(rows):
                vouts[v][i] = _bit(bits, i)
    return -1


# -- a plan unit's rows (gamestore/positions/plan.py Plan.unit_rows, unweighted: the reference) ---------------
def unit_rows(cnp.ndarray game_offset, cnp.ndarray game_count, Py_ssize_t glo, Py_ssize_t ghi, int64_t start):
    """``(rows, games)`` (int64) of games ``glo:ghi``: game ``g``'s ``game_count[g]`` rows from ``game_offset[g] -
    start`` on, each with ``g``, in order (one pass)."""
    _check(game_offset, cnp.NPY_INT64, 1, "game_offset")
    _check(game_count, cnp.NPY_INT64, 1, "game_count")
    if not 0 <= glo <= ghi <= min(cnp.PyArray_DIM(game_offset, 0), cnp.PyArray_DIM(game_count, 0)):
        raise IndexError("games glo:ghi outside the tables")
    cdef const int64_t* offs = <const int64_t*> cnp.PyArray_DATA(game_offset)
    cdef const int64_t* counts = <const int64_t*> cnp.PyArray_DATA(game_count)
    cdef Py_ssize_t g, total = 0
    cdef int64_t j, r
    for g in range(glo, ghi):
        if counts[g] < 0:
            raise ValueError("repeats may not contain negative values")
        total += counts[g]
    cdef cnp.ndarray rows = _empty(1, total, 0, cnp.NPY_INT64), games = _empty(1, total, 0, cnp.NPY_INT64)
    cdef int64_t* ro = <int64_t*> cnp.PyArray_DATA(rows)
    cdef int64_t* go = <int64_t*> cnp.PyArray_DATA(games)
    cdef Py_ssize_t at = 0
    for g in range(glo, ghi):  # with the GIL: ~1 us, less than handing it over (the training thread calls this)
        r = offs[g] - start
        for j in range(counts[g]):
            ro[at] = r + j
            go[at] = g
            at += 1
    return rows, games
