/* The fast path's per-packet work in C: the template table (question key, lookup, validity, reply
 * patching) and, beside it, a UDP drain loop over recvmmsg/sendmmsg that answers hits without
 * entering the interpreter.
 *
 * Why C: measured on the bench machine (bench/README.md), CPython cannot move more than ~80k empty
 * UDP echoes per second per core, so answers at knotd's rate need per-packet work without Python.
 * Everything that decides *what* is replayed stays in Python: kdns/server/fastpath.py builds each
 * Template from the plugin chain's own reply bytes and says when it is valid; kdns/server/replay.py is
 * the same table in pure Python (used when this extension is not built, and to prove both agree).
 * This file only replays:
 *
 *   reply = query ID (2) | template flags | query RD+CD (RFC 1035 §4.1.1) | template counts (8)
 *         | the client's own question (its spelling: owner names point at it, RFC 1035 §4.1.4)
 *         | the template's parts: fixed bytes, and groups of records shuffled per reply
 *           (loadbalance), with the SOA serial and, for replies with a lifetime, TTLs patched.
 *
 * An entry is valid while each of its dependencies (mapping, key, expected) still holds: the dict
 * `mapping` maps `key` to exactly the object `expected` (or has no `key` when expected is None).
 * The index replaces those objects when the data behind an answer changes, so a check is one dict
 * lookup and a pointer comparison. Entries with a lifetime (the cache's) also stop when whole
 * seconds since `stored` reach it (CoreDNS cache item.go: ttl - int(now - stored)).
 * Limits (batch size, buffer sizes, table size, group size) come from Python (kdns/server/limits.py)
 * when the table is made: they are defined once, there.
 *
 * Runs only on the event loop thread, with the GIL held throughout: no locking is needed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* Protocol facts, not tunables. */
#define HEADER 12
#define CLASSIC_UDP 512     /* RFC 1035 §4.2.1 */
#define MIN_UDP 512         /* EDNS sizes below 512 are treated as 512 (RFC 6891 §6.2.3) */
#define TCP_MAX 65535       /* RFC 1035 §4.2.2 length prefix */
#define TYPE_OPT 41
#define FLAGS_FROM_QUERY 0x0110 /* RD and CD */
#define MAX_BOUNDS 32
#define MAX_BATCH 1024

/* ---- stats slots ----------------------------------------------------------------------------- */

typedef struct {
    uint64_t count[2][2]; /* [tcp][ipv6] */
    uint64_t duration[MAX_BOUNDS + 1];
    double duration_sum;
    uint64_t request[2][MAX_BOUNDS + 1]; /* [tcp][bucket] */
    double request_sum[2];
    uint64_t response[2][MAX_BOUNDS + 1];
    double response_sum[2];
    int touched;
} Stats;

/* ---- entries ------------------------------------------------------------------------------------ */

typedef struct {
    PyObject *mapping; /* dict */
    PyObject *key;
    PyObject *expected; /* NULL: the key must be absent */
} Dep;

/* One allocation per template: the fields, then (inline, in the variable part) the deps, the TTL
 * offsets and the reply body, so a template costs its bytes and a small header, not three objects. */
typedef struct {
    PyObject_VAR_HEAD      /* ob_size: bytes in `data` */
    uint8_t head[10];      /* flags (RD/CD cleared) + the four counts */
    uint16_t n_deps;
    int32_t n_ttl;         /* TTL offsets outside groups, patched with the remaining lifetime */
    int32_t serial_at;     /* offset of the SOA serial in the body, or -1 */
    int32_t length;        /* of the body */
    int32_t only_limit;    /* a truncated reply: replay only to clients with this limit; 0: any */
    int32_t slot;
    long lifetime;         /* seconds, or -1: none (no countdown) */
    double stored;         /* monotonic seconds; used when lifetime >= 0 */
    PyObject *groups;      /* NULL: the body is inline; else a tuple of bytes and groups (tuples of bytes) */
    PyObject *serial_source; /* has .serial; NULL when serial_at < 0 */
    PyObject *spelling;    /* bytes: replay only for this exact question; NULL: any spelling */
    char data[];           /* Dep deps[n_deps]; int32_t ttl_at[n_ttl]; uint8_t body[length] (inline bodies) */
} Entry;

static Dep *entry_deps(Entry *e) { return (Dep *)e->data; }
static int32_t *entry_ttl_at(Entry *e) { return (int32_t *)(e->data + sizeof(Dep) * e->n_deps); }
static uint8_t *entry_body(Entry *e) {
    return (uint8_t *)(e->data + sizeof(Dep) * e->n_deps + sizeof(int32_t) * (size_t)e->n_ttl);
}

static void Entry_dealloc(Entry *e) {
    Dep *deps = entry_deps(e);
    for (Py_ssize_t i = 0; i < e->n_deps; i++) {
        Py_XDECREF(deps[i].mapping);
        Py_XDECREF(deps[i].key);
        Py_XDECREF(deps[i].expected);
    }
    Py_XDECREF(e->groups);
    Py_XDECREF(e->serial_source);
    Py_XDECREF(e->spelling);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static PyTypeObject EntryType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "kdns.server._hotpath.Entry",
    .tp_basicsize = offsetof(Entry, data),
    .tp_itemsize = 1,
    .tp_dealloc = (destructor)Entry_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One reply template (built by kdns.server.fastpath).",
};

/* ---- the table ---------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *entries; /* dict: key bytes -> Entry */
    Py_ssize_t max_entries;
    Py_ssize_t max_group;
    int batch;
    Py_ssize_t max_query;
    Py_ssize_t max_reply; /* largest UDP reply the drain writes itself */
    uint64_t rng;
    double time_bounds[MAX_BOUNDS];
    int n_time;
    double size_bounds[MAX_BOUNDS];
    int n_size;
    Stats *stats;
    int n_stats;
    uint8_t *in;  /* batch × max_query */
    uint8_t *out; /* batch × max_reply */
} Table;

static PyObject *str_serial;
/* Template attribute names, interned once (store() reads eleven per template). */
static PyObject *str_head, *str_parts, *str_deps, *str_serial_source, *str_ttl_at, *str_spelling, *str_stored,
    *str_serial_at, *str_lifetime, *str_only_limit, *str_slot;

static double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int read_bounds(PyObject *seq, double *out, int *n) {
    PyObject *fast = PySequence_Fast(seq, "bounds must be a sequence of numbers");
    if (fast == NULL) return -1;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(fast);
    if (len > MAX_BOUNDS) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "at most %d bucket bounds", MAX_BOUNDS);
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        out[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(fast, i));
        if (PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
    }
    *n = (int)len;
    Py_DECREF(fast);
    return 0;
}

/* An integer attribute of `obj` within [lo, hi]. */
static int int_attr(PyObject *obj, PyObject *name, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t *out) {
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL) return -1;
    Py_ssize_t n = PyLong_AsSsize_t(v);
    Py_DECREF(v);
    if (n == -1 && PyErr_Occurred()) return -1;
    if (n < lo || n > hi) {
        PyErr_Format(PyExc_ValueError, "%U must be in %zd..%zd, not %zd", name, lo, hi, n);
        return -1;
    }
    *out = n;
    return 0;
}

/* The same for a limit named by a C string (read once per table). */
static int limit_attr(PyObject *obj, const char *name, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t *out) {
    PyObject *key = PyUnicode_FromString(name);
    if (key == NULL) return -1;
    int r = int_attr(obj, key, lo, hi, out);
    Py_DECREF(key);
    return r;
}

static int Table_init(Table *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"limits", "time_bounds", "size_bounds", NULL};
    PyObject *limits, *time_bounds, *size_bounds;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO", names, &limits, &time_bounds, &size_bounds)) return -1;
    Py_ssize_t batch;
    if (limit_attr(limits, "max_entries", 1, PY_SSIZE_T_MAX, &self->max_entries) < 0 ||
        limit_attr(limits, "max_group", 1, 4096, &self->max_group) < 0 ||
        limit_attr(limits, "batch", 1, MAX_BATCH, &batch) < 0 ||
        limit_attr(limits, "max_query", HEADER, TCP_MAX, &self->max_query) < 0 ||
        limit_attr(limits, "max_udp_reply", CLASSIC_UDP, TCP_MAX, &self->max_reply) < 0)
        return -1;
    self->batch = (int)batch;
    if (read_bounds(time_bounds, self->time_bounds, &self->n_time) < 0) return -1;
    if (read_bounds(size_bounds, self->size_bounds, &self->n_size) < 0) return -1;
    self->rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)self ^ (uint64_t)(monotonic() * 1e9);
    Py_XSETREF(self->entries, PyDict_New());
    if (self->entries == NULL) return -1;
    PyMem_Free(self->in);
    PyMem_Free(self->out);
    self->in = PyMem_Malloc((size_t)self->batch * (size_t)self->max_query);
    self->out = PyMem_Malloc((size_t)self->batch * (size_t)self->max_reply);
    if (self->in == NULL || self->out == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void Table_dealloc(Table *self) {
    Py_XDECREF(self->entries);
    PyMem_Free(self->stats);
    PyMem_Free(self->in);
    PyMem_Free(self->out);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ---- parsing the question ------------------------------------------------------------------------- */

typedef struct {
    Py_ssize_t question_end; /* offset just past QTYPE and QCLASS */
    Py_ssize_t limit;        /* largest reply the client takes on this transport */
    uint8_t shape;           /* EDNS (0 none, 1 plain, 2 DO) | AD << 2 | CD << 3 */
} Question;

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* A plain query we might answer from a template: one question whose name is labels only (no
 * pointer: a question has nothing before it to point at), no answers or authority, at most an OPT
 * of version 0 owned by the root that ends the packet, opcode QUERY, not a response. Anything else
 * → 0, and the chain decides. */
static int parse_question(const uint8_t *d, Py_ssize_t n, int tcp, Question *q) {
    if (n < HEADER + 5) return 0;
    uint16_t flags = be16(d + 2);
    uint16_t qd = be16(d + 4), an = be16(d + 6), ns = be16(d + 8), ar = be16(d + 10);
    if ((flags & 0xF800) || qd != 1 || an || ns || ar > 1) return 0;
    Py_ssize_t i = HEADER;
    while (i < n && d[i] != 0) {
        if (d[i] > 63) return 0; /* a pointer or an extended label type */
        i += d[i] + 1;
    }
    if (i >= n || i - HEADER + 1 > 255) return 0; /* RFC 1035 §2.3.4 */
    Py_ssize_t end = i + 5;
    if (end > n) return 0;
    uint8_t shape = (uint8_t)(((flags & 0x0020) ? 4 : 0) | ((flags & 0x0010) ? 8 : 0));
    Py_ssize_t limit = tcp ? TCP_MAX : CLASSIC_UDP;
    if (ar) {
        if (n < end + 11 || d[end] != 0) return 0;
        const uint8_t *rr = d + end + 1;
        uint16_t rtype = be16(rr), size = be16(rr + 2), rdlen = be16(rr + 8);
        uint8_t version = rr[5];
        if (rtype != TYPE_OPT || version != 0 || end + 11 + rdlen != n) return 0;
        /* Each option must fit the OPT's RDATA exactly (RFC 6891 §6.1.2): else the query is a
         * FORMERR, which only the full reader answers. */
        Py_ssize_t o = end + 11;
        while (o < n) {
            if (o + 4 > n) return 0;
            o += 4 + be16(d + o + 2);
        }
        if (o != n) return 0;
        shape |= (rr[6] & 0x80) ? 2 : 1;
        if (!tcp) limit = size < MIN_UDP ? MIN_UDP : size;
    } else if (end != n) {
        return 0;
    }
    q->question_end = end;
    q->limit = limit;
    q->shape = shape;
    return 1;
}

/* Lower-cased qname + QTYPE + QCLASS, then the shape byte: the table's key. */
static PyObject *make_key(const uint8_t *d, const Question *q) {
    Py_ssize_t len = q->question_end - HEADER;
    PyObject *key = PyBytes_FromStringAndSize(NULL, len + 1);
    if (key == NULL) return NULL;
    uint8_t *k = (uint8_t *)PyBytes_AS_STRING(key);
    for (Py_ssize_t i = 0; i < len; i++) {
        uint8_t c = d[HEADER + i];
        k[i] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
    }
    k[len] = q->shape;
    return key;
}

/* ---- answering ---------------------------------------------------------------------------------- */

static uint64_t next_random(Table *t) { /* xorshift64*: shuffling needs speed, not secrecy */
    t->rng ^= t->rng >> 12;
    t->rng ^= t->rng << 25;
    t->rng ^= t->rng >> 27;
    return t->rng * 0x2545F4914F6CDD1DULL;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Offset of the TTL in a record whose owner name starts it: past the name, TYPE and CLASS; -1 when
 * the owner does not end inside the record (checked at store, so replays never see -1). */
static Py_ssize_t rr_ttl_offset(const uint8_t *rr, Py_ssize_t len) {
    Py_ssize_t i = 0;
    while (i < len) {
        if (rr[i] == 0) return i + 1 + 4 + 4 <= len ? i + 1 + 4 : -1;
        if ((rr[i] & 0xC0) == 0xC0) return i + 2 + 4 + 4 <= len ? i + 2 + 4 : -1;
        i += rr[i] + 1;
    }
    return -1;
}

/* Is `e` still valid? Fills *serial (when it patches one) and *remaining (when it has a lifetime).
 * 0: stale (dropped from the table), -1: a Python error, 1: valid. */
static int check_entry(Table *t, PyObject *key, Entry *e, unsigned long *serial, long *remaining) {
    Dep *deps = entry_deps(e);
    for (Py_ssize_t i = 0; i < e->n_deps; i++) {
        Dep *dep = &deps[i];
        PyObject *current = PyDict_GetItemWithError(dep->mapping, dep->key); /* borrowed */
        if (current == NULL && PyErr_Occurred()) return -1;
        if (current != dep->expected) {
            if (PyDict_DelItem(t->entries, key) < 0) return -1;
            return 0;
        }
    }
    if (e->serial_source != NULL) {
        PyObject *s = PyObject_GetAttr(e->serial_source, str_serial);
        if (s == NULL) return -1;
        *serial = PyLong_AsUnsignedLongMask(s);
        Py_DECREF(s);
        if (PyErr_Occurred()) return -1;
    }
    if (e->lifetime >= 0) {
        /* Whole seconds since `stored`, compared as a double first: a clock that is NaN, infinite or
         * in the future (no time.monotonic() reading) makes the entry expired, never an undefined
         * conversion to long. */
        double age = monotonic() - e->stored;
        if (!(age >= 0 && age < (double)e->lifetime)) { /* expired: the plugin decides (serve_stale, refresh) */
            if (PyDict_DelItem(t->entries, key) < 0) return -1;
            return 0;
        }
        *remaining = e->lifetime - (long)age;
    }
    return 1;
}

static int bucket(const double *bounds, int n, double value) { /* bisect_left: first bound >= value */
    int i = 0;
    while (i < n && bounds[i] < value) i++;
    return i;
}

static void count_hit(Table *t, int slot, int tcp, int ipv6, Py_ssize_t request, Py_ssize_t response,
                      double seconds) {
    if (slot < 0 || slot >= t->n_stats) return;
    Stats *s = &t->stats[slot];
    s->touched = 1;
    s->count[tcp][ipv6]++;
    s->duration[bucket(t->time_bounds, t->n_time, seconds)]++;
    s->duration_sum += seconds;
    s->request[tcp][bucket(t->size_bounds, t->n_size, (double)request)]++;
    s->request_sum[tcp] += (double)request;
    s->response[tcp][bucket(t->size_bounds, t->n_size, (double)response)]++;
    s->response_sum[tcp] += (double)response;
}

/* Copy one group, shuffled (Fisher-Yates), patching each record's TTL when counting down. */
static uint8_t *write_group(Table *t, uint8_t *p, PyObject *group, long remaining, int count_down) {
    Py_ssize_t n = PyTuple_GET_SIZE(group);
    Py_ssize_t order[4096];
    for (Py_ssize_t i = 0; i < n; i++) order[i] = i;
    for (Py_ssize_t i = n - 1; i > 0; i--) {
        Py_ssize_t j = (Py_ssize_t)(next_random(t) % (uint64_t)(i + 1));
        Py_ssize_t tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *rr = PyTuple_GET_ITEM(group, order[i]);
        Py_ssize_t len = PyBytes_GET_SIZE(rr);
        memcpy(p, PyBytes_AS_STRING(rr), (size_t)len);
        if (count_down) put32(p + rr_ttl_offset(p, len), (uint32_t)remaining);
        p += len;
    }
    return p;
}

/* Write the reply to `data` into `out` (capacity `cap`). Returns its length, 0 for a miss (no entry,
 * stale, or larger than the client takes or `cap`), -1 on a Python error. *slot gets the stats slot. */
static Py_ssize_t build_reply(Table *t, const uint8_t *data, Py_ssize_t n, int tcp, uint8_t *out,
                              Py_ssize_t cap, int *slot) {
    Question q;
    if (!parse_question(data, n, tcp, &q)) return 0;
    PyObject *key = make_key(data, &q);
    if (key == NULL) return -1;
    Entry *e = (Entry *)PyDict_GetItemWithError(t->entries, key); /* borrowed */
    if (e == NULL) {
        Py_DECREF(key);
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_INCREF(e); /* check_entry may drop it from the table */
    unsigned long serial = 0;
    long remaining = 0;
    Py_ssize_t total = 0;
    int valid = check_entry(t, key, e, &serial, &remaining);
    Py_DECREF(key);
    if (valid <= 0) goto done;
    total = q.question_end + e->length;
    if (total > q.limit || total > cap || (e->only_limit && e->only_limit != q.limit) ||
        (e->spelling != NULL &&
         memcmp(PyBytes_AS_STRING(e->spelling), data + HEADER, (size_t)(q.question_end - HEADER)))) {
        total = 0;
        goto done;
    }
    uint16_t flags = (uint16_t)(be16(e->head) | (be16(data + 2) & FLAGS_FROM_QUERY));
    memcpy(out, data, 2);
    out[2] = (uint8_t)(flags >> 8);
    out[3] = (uint8_t)flags;
    memcpy(out + 4, e->head + 2, 8);
    memcpy(out + HEADER, data + HEADER, (size_t)(q.question_end - HEADER));
    uint8_t *body = out + q.question_end;
    if (e->groups == NULL) {
        memcpy(body, entry_body(e), (size_t)e->length);
    } else {
        uint8_t *p = body;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(e->groups); i++) {
            PyObject *part = PyTuple_GET_ITEM(e->groups, i);
            if (PyBytes_Check(part)) {
                Py_ssize_t len = PyBytes_GET_SIZE(part);
                memcpy(p, PyBytes_AS_STRING(part), (size_t)len);
                p += len;
            } else {
                p = write_group(t, p, part, remaining, e->lifetime >= 0);
            }
        }
    }
    if (e->serial_at >= 0) put32(body + e->serial_at, (uint32_t)serial);
    int32_t *ttl_at = entry_ttl_at(e);
    for (int32_t i = 0; i < e->n_ttl; i++) put32(body + ttl_at[i], (uint32_t)remaining);
    *slot = e->slot;
done:
    Py_DECREF(e);
    return valid < 0 ? -1 : total;
}

static PyObject *Table_answer(Table *t, PyObject *args) {
    Py_buffer data;
    int tcp, ipv6;
    if (!PyArg_ParseTuple(args, "y*pp", &data, &tcp, &ipv6)) return NULL;
    double start = monotonic();
    int slot = -1;
    uint8_t *out = PyMem_Malloc(TCP_MAX);
    if (out == NULL) {
        PyBuffer_Release(&data);
        return PyErr_NoMemory();
    }
    Py_ssize_t len = build_reply(t, data.buf, data.len, tcp, out, tcp ? TCP_MAX : t->max_reply, &slot);
    PyObject *result = NULL;
    if (len > 0) {
        count_hit(t, slot, tcp, ipv6, data.len, len, monotonic() - start);
        result = PyBytes_FromStringAndSize((char *)out, len);
    } else if (len == 0) {
        result = Py_NewRef(Py_None);
    }
    PyMem_Free(out);
    PyBuffer_Release(&data);
    return result;
}

/* ---- storing, stats, housekeeping ----------------------------------------------------------------- */

static PyObject *Table_key(Table *Py_UNUSED(t), PyObject *args) {
    Py_buffer data;
    int tcp;
    if (!PyArg_ParseTuple(args, "y*p", &data, &tcp)) return NULL;
    Question q;
    PyObject *key = parse_question(data.buf, data.len, tcp, &q) ? make_key(data.buf, &q) : Py_NewRef(Py_None);
    PyBuffer_Release(&data);
    return key;
}

static int ensure_slot(Table *t, int slot) {
    if (slot < t->n_stats) return 0;
    int n = slot + 16;
    Stats *grown = PyMem_Realloc(t->stats, sizeof(Stats) * (size_t)n);
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(grown + t->n_stats, 0, sizeof(Stats) * (size_t)(n - t->n_stats));
    t->stats = grown;
    t->n_stats = n;
    return 0;
}

/* The length of a template's parts, checking their shape: bytes, or a tuple of bytes and groups
 * (tuples of 2..max_group records, each with an owner that ends inside it). -1 with an exception. */
static Py_ssize_t parts_length(Table *t, PyObject *parts) {
    if (PyBytes_Check(parts)) return PyBytes_GET_SIZE(parts);
    if (!PyTuple_Check(parts)) {
        PyErr_SetString(PyExc_TypeError, "parts must be bytes or a tuple");
        return -1;
    }
    Py_ssize_t length = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(parts); i++) {
        PyObject *part = PyTuple_GET_ITEM(parts, i);
        if (PyBytes_Check(part)) {
            length += PyBytes_GET_SIZE(part);
            continue;
        }
        if (!PyTuple_Check(part) || PyTuple_GET_SIZE(part) < 2 || PyTuple_GET_SIZE(part) > t->max_group) {
            PyErr_Format(PyExc_ValueError, "a group is a tuple of 2..%zd records", t->max_group);
            return -1;
        }
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(part); j++) {
            PyObject *rr = PyTuple_GET_ITEM(part, j);
            if (!PyBytes_Check(rr) || rr_ttl_offset((const uint8_t *)PyBytes_AS_STRING(rr), PyBytes_GET_SIZE(rr)) < 0) {
                PyErr_SetString(PyExc_ValueError, "a group holds resource records as bytes");
                return -1;
            }
            length += PyBytes_GET_SIZE(rr);
        }
    }
    return length;
}

/* The TTL offsets of a template, checked against its length; a new list, NULL with an exception. */
static PyObject *read_offsets(PyObject *seq, Py_ssize_t limit) {
    PyObject *list = PySequence_List(seq);
    if (list == NULL) return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        Py_ssize_t at = PyLong_AsSsize_t(PyList_GET_ITEM(list, i));
        if (at == -1 && PyErr_Occurred()) break;
        if (at < 0 || at > limit - 4) {
            PyErr_SetString(PyExc_ValueError, "a TTL offset is outside the template");
            break;
        }
    }
    if (PyErr_Occurred()) {
        Py_DECREF(list);
        return NULL;
    }
    return list;
}

static PyObject *Table_store(Table *t, PyObject *args) {
    PyObject *key, *tpl;
    if (!PyArg_ParseTuple(args, "SO", &key, &tpl)) return NULL;
    PyObject *head = NULL, *parts = NULL, *deps = NULL, *source = NULL, *ttl_at = NULL, *spelling = NULL;
    PyObject *stored = NULL, *offsets = NULL;
    Entry *e = NULL;
    Py_ssize_t serial_at, lifetime, only_limit, slot;
    if ((head = PyObject_GetAttr(tpl, str_head)) == NULL || (parts = PyObject_GetAttr(tpl, str_parts)) == NULL ||
        (deps = PyObject_GetAttr(tpl, str_deps)) == NULL ||
        (source = PyObject_GetAttr(tpl, str_serial_source)) == NULL ||
        (ttl_at = PyObject_GetAttr(tpl, str_ttl_at)) == NULL ||
        (spelling = PyObject_GetAttr(tpl, str_spelling)) == NULL ||
        (stored = PyObject_GetAttr(tpl, str_stored)) == NULL ||
        int_attr(tpl, str_serial_at, -1, TCP_MAX, &serial_at) < 0 ||
        int_attr(tpl, str_lifetime, -1, 0xFFFFFFFF, &lifetime) < 0 || /* the TTLs it patches are 32 bits */
        int_attr(tpl, str_only_limit, 0, TCP_MAX, &only_limit) < 0 || int_attr(tpl, str_slot, 0, 1 << 20, &slot) < 0)
        goto fail;
    if (!PyBytes_Check(head) || PyBytes_GET_SIZE(head) != 10 || !PyTuple_Check(deps) ||
        (spelling != Py_None &&
         (!PyBytes_Check(spelling) || PyBytes_GET_SIZE(spelling) != PyBytes_GET_SIZE(key) - 1))) {
        PyErr_SetString(PyExc_ValueError, "head must be 10 bytes, deps a tuple, spelling as long as the key");
        goto fail;
    }
    Py_ssize_t length = parts_length(t, parts);
    if (length < 0) goto fail;
    if ((serial_at >= 0 && (serial_at > length - 4 || source == Py_None)) || ensure_slot(t, (int)slot) < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "serial_at needs a source and a place");
        goto fail;
    }
    Py_ssize_t n_deps = PyTuple_GET_SIZE(deps);
    if (n_deps > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "too many dependencies");
        goto fail;
    }
    offsets = read_offsets(ttl_at, length);
    if (offsets == NULL) goto fail;
    Py_ssize_t n_ttl = PyList_GET_SIZE(offsets);
    int inline_body = PyBytes_Check(parts);
    Py_ssize_t size = (Py_ssize_t)sizeof(Dep) * n_deps + (Py_ssize_t)sizeof(int32_t) * n_ttl + (inline_body ? length : 0);
    e = (Entry *)PyObject_NewVar(Entry, &EntryType, size);
    if (e == NULL) goto fail;
    e->n_deps = (uint16_t)n_deps;
    e->n_ttl = (int32_t)n_ttl;
    e->groups = NULL;
    e->serial_source = NULL;
    e->spelling = NULL;
    Dep *edeps = entry_deps(e);
    memset(edeps, 0, sizeof(Dep) * (size_t)n_deps);
    for (Py_ssize_t i = 0; i < n_deps; i++) {
        PyObject *dep = PyTuple_GET_ITEM(deps, i);
        if (!PyTuple_Check(dep) || PyTuple_GET_SIZE(dep) != 3 || !PyDict_Check(PyTuple_GET_ITEM(dep, 0))) {
            PyErr_SetString(PyExc_ValueError, "a dependency is (dict, key, expected)");
            goto fail;
        }
        PyObject *expected = PyTuple_GET_ITEM(dep, 2);
        edeps[i].mapping = Py_NewRef(PyTuple_GET_ITEM(dep, 0));
        edeps[i].key = Py_NewRef(PyTuple_GET_ITEM(dep, 1));
        edeps[i].expected = expected == Py_None ? NULL : Py_NewRef(expected);
    }
    int32_t *ettl = entry_ttl_at(e);
    for (Py_ssize_t i = 0; i < n_ttl; i++) ettl[i] = (int32_t)PyLong_AsSsize_t(PyList_GET_ITEM(offsets, i));
    if (inline_body)
        memcpy(entry_body(e), PyBytes_AS_STRING(parts), (size_t)length);
    else
        e->groups = Py_NewRef(parts);
    memcpy(e->head, PyBytes_AS_STRING(head), 10);
    e->length = (int32_t)length;
    e->serial_at = (int32_t)serial_at;
    e->serial_source = serial_at >= 0 ? Py_NewRef(source) : NULL;
    e->stored = PyFloat_AsDouble(stored);
    e->lifetime = (long)lifetime;
    e->spelling = spelling == Py_None ? NULL : Py_NewRef(spelling);
    e->only_limit = (int32_t)only_limit;
    e->slot = (int32_t)slot;
    if (PyErr_Occurred()) goto fail;
    if (PyDict_GET_SIZE(t->entries) >= t->max_entries) PyDict_Clear(t->entries); /* refills on demand */
    if (PyDict_SetItem(t->entries, key, (PyObject *)e) < 0) goto fail;
    Py_DECREF(e);
    Py_DECREF(head);
    Py_DECREF(parts);
    Py_DECREF(deps);
    Py_DECREF(source);
    Py_DECREF(ttl_at);
    Py_DECREF(spelling);
    Py_DECREF(stored);
    Py_DECREF(offsets);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(offsets);
    Py_XDECREF(e);
    Py_XDECREF(head);
    Py_XDECREF(parts);
    Py_XDECREF(deps);
    Py_XDECREF(source);
    Py_XDECREF(ttl_at);
    Py_XDECREF(spelling);
    Py_XDECREF(stored);
    return NULL;
}

static PyObject *counts_tuple(const uint64_t *counts, int n) {
    PyObject *t = PyTuple_New(n);
    if (t == NULL) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(counts[i]);
        if (v == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

/* [(slot, ((udp4, udp6), (tcp4, tcp6)), durations, duration_sum,
 *   ((udp request sizes, sum, udp response sizes, sum), (tcp …)))] for slots hit since the last call. */
static PyObject *Table_harvest(Table *t, PyObject *Py_UNUSED(ignored)) {
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    for (int slot = 0; slot < t->n_stats; slot++) {
        Stats *s = &t->stats[slot];
        if (!s->touched) continue;
        PyObject *protos[2];
        for (int tcp = 0; tcp < 2; tcp++) {
            protos[tcp] = Py_BuildValue("(NdNd)", counts_tuple(s->request[tcp], t->n_size + 1), s->request_sum[tcp],
                                        counts_tuple(s->response[tcp], t->n_size + 1), s->response_sum[tcp]);
        }
        PyObject *item = Py_BuildValue("(i((KK)(KK))NdNN)", slot, (unsigned long long)s->count[0][0],
                                       (unsigned long long)s->count[0][1], (unsigned long long)s->count[1][0],
                                       (unsigned long long)s->count[1][1], counts_tuple(s->duration, t->n_time + 1),
                                       s->duration_sum, protos[0], protos[1]);
        if (item == NULL || PyList_Append(out, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(item);
        memset(s, 0, sizeof(Stats));
    }
    return out;
}

static PyObject *Table_clear(Table *t, PyObject *Py_UNUSED(ignored)) {
    PyDict_Clear(t->entries);
    Py_RETURN_NONE;
}

static Py_ssize_t Table_len(Table *t) { return PyDict_GET_SIZE(t->entries); }

static PyMethodDef Table_methods[] = {
    {"key", (PyCFunction)Table_key, METH_VARARGS,
     "key(data, tcp) -> bytes | None: the table key of a plain query, None for anything unusual."},
    {"answer", (PyCFunction)Table_answer, METH_VARARGS,
     "answer(data, tcp, ipv6) -> bytes | None: the reply from a valid template (counted), else None."},
    {"store", (PyCFunction)Table_store, METH_VARARGS, "store(key, template): see kdns.server.fastpath.Template."},
    {"harvest", (PyCFunction)Table_harvest, METH_NOARGS, "Counts per stats slot since the last harvest."},
    {"clear", (PyCFunction)Table_clear, METH_NOARGS, "Forget every template."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Table_as_sequence = {.sq_length = (lenfunc)Table_len};

static PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "kdns.server._hotpath.Table",
    .tp_basicsize = sizeof(Table),
    .tp_dealloc = (destructor)Table_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Question -> reply template, replayed in C (see kdns/server/fastpath.py).",
    .tp_methods = Table_methods,
    .tp_as_sequence = &Table_as_sequence,
    .tp_init = (initproc)Table_init,
    .tp_new = PyType_GenericNew,
};

/* ---- the UDP drain loop, beside the table ---------------------------------------------------------- */

static int is_ipv6_client(const struct sockaddr_storage *a) {
    if (a->ss_family != AF_INET6) return 0;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)a;
    return !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr);
}

/* The address as socket.recvfrom returns it: (host, port) or (host, port, flowinfo, scope_id). */
static PyObject *address_tuple(const struct sockaddr_storage *a) {
    char host[INET6_ADDRSTRLEN];
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)a;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
        return Py_BuildValue("(si)", host, ntohs(s4->sin_port));
    }
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)a;
    inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
    return Py_BuildValue("(siII)", host, ntohs(s6->sin6_port), ntohl(s6->sin6_flowinfo), s6->sin6_scope_id);
}

static void send_all(int fd, struct mmsghdr *msgs, unsigned int count) {
    unsigned int sent = 0;
    while (sent < count) {
        int r = sendmmsg(fd, msgs + sent, count - sent, MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR) continue;
            /* A full send buffer or an unreachable client: drop this one, as any UDP server would. */
            sent++;
            continue;
        }
        sent += (unsigned int)r;
    }
}

/* Answer one datagram from the table, asking `prepare` once on a miss (it may store a template).
 * Returns the reply length (0: not answered here), -1 on a Python error. */
static Py_ssize_t answer_datagram(Table *t, const uint8_t *data, Py_ssize_t len, uint8_t *out, int *slot,
                                  PyObject *prepare) {
    Py_ssize_t out_len = build_reply(t, data, len, 0, out, t->max_reply, slot);
    if (out_len != 0 || prepare == Py_None) return out_len;
    Question q;
    if (!parse_question(data, len, 0, &q)) return 0;
    PyObject *arg = PyBytes_FromStringAndSize((const char *)data, len);
    if (arg == NULL) return -1;
    PyObject *stored = PyObject_CallOneArg(prepare, arg);
    Py_DECREF(arg);
    if (stored == NULL) return -1;
    int again = PyObject_IsTrue(stored);
    Py_DECREF(stored);
    if (again < 0) return -1;
    return again ? build_reply(t, data, len, 0, out, t->max_reply, slot) : 0;
}

static PyObject *drain(PyObject *Py_UNUSED(module), PyObject *args) {
    Table *t;
    int fd, answer_hits, rounds;
    PyObject *prepare;
    if (!PyArg_ParseTuple(args, "O!ipiO", &TableType, &t, &fd, &answer_hits, &rounds, &prepare)) return NULL;
    PyObject *misses = PyList_New(0);
    if (misses == NULL) return NULL;
    int batch = t->batch;
    struct mmsghdr in_msgs[MAX_BATCH], out_msgs[MAX_BATCH];
    struct iovec in_iov[MAX_BATCH], out_iov[MAX_BATCH];
    struct sockaddr_storage addrs[MAX_BATCH];
    for (int round = 0; round < rounds; round++) {
        for (int i = 0; i < batch; i++) {
            in_iov[i].iov_base = t->in + (size_t)i * (size_t)t->max_query;
            in_iov[i].iov_len = (size_t)t->max_query;
            memset(&in_msgs[i].msg_hdr, 0, sizeof(struct msghdr));
            in_msgs[i].msg_hdr.msg_iov = &in_iov[i];
            in_msgs[i].msg_hdr.msg_iovlen = 1;
            in_msgs[i].msg_hdr.msg_name = &addrs[i];
            in_msgs[i].msg_hdr.msg_namelen = sizeof(addrs[i]);
        }
        int got = recvmmsg(fd, in_msgs, (unsigned int)batch, MSG_DONTWAIT, NULL);
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            /* EINTR, or a queued ICMP error for an earlier reply (ECONNREFUSED): keep serving */
            continue;
        }
        unsigned int replies = 0;
        for (int i = 0; i < got; i++) {
            const uint8_t *data = in_iov[i].iov_base;
            Py_ssize_t len = (Py_ssize_t)in_msgs[i].msg_len;
            if (answer_hits) {
                double start = monotonic();
                int slot = -1;
                uint8_t *out = t->out + (size_t)replies * (size_t)t->max_reply;
                Py_ssize_t out_len = answer_datagram(t, data, len, out, &slot, prepare);
                if (out_len < 0) goto error;
                if (out_len > 0) {
                    count_hit(t, slot, 0, is_ipv6_client(&addrs[i]), len, out_len, monotonic() - start);
                    out_iov[replies].iov_base = out;
                    out_iov[replies].iov_len = (size_t)out_len;
                    memset(&out_msgs[replies].msg_hdr, 0, sizeof(struct msghdr));
                    out_msgs[replies].msg_hdr.msg_iov = &out_iov[replies];
                    out_msgs[replies].msg_hdr.msg_iovlen = 1;
                    out_msgs[replies].msg_hdr.msg_name = &addrs[i];
                    out_msgs[replies].msg_hdr.msg_namelen = in_msgs[i].msg_hdr.msg_namelen;
                    replies++;
                    continue;
                }
            }
            PyObject *addr = address_tuple(&addrs[i]);
            PyObject *item = addr ? Py_BuildValue("(y#N)", (const char *)data, len, addr) : NULL;
            if (item == NULL || PyList_Append(misses, item) < 0) {
                Py_XDECREF(item);
                goto error;
            }
            Py_DECREF(item);
        }
        if (replies) send_all(fd, out_msgs, replies);
        if (got < batch) break;
    }
    return misses;
error:
    Py_DECREF(misses);
    return NULL;
}

static PyMethodDef module_methods[] = {
    {"drain", (PyCFunction)drain, METH_VARARGS,
     "drain(table, fd, answer_hits, rounds, prepare) -> [(data, address)]: reads a non-blocking UDP socket "
     "until it is empty or `rounds` batches were read, answers what the table holds (asking prepare(data) "
     "once per miss, which may store a template), returns the rest."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "kdns.server._hotpath",
                                    "The fast path's per-packet work in C.", -1, module_methods};

PyMODINIT_FUNC PyInit__hotpath(void) {
    if (PyType_Ready(&EntryType) < 0 || PyType_Ready(&TableType) < 0) return NULL;
    struct { PyObject **slot; const char *name; } names[] = {
        {&str_serial, "serial"}, {&str_head, "head"}, {&str_parts, "parts"}, {&str_deps, "deps"},
        {&str_serial_source, "serial_source"}, {&str_ttl_at, "ttl_at"}, {&str_spelling, "spelling"},
        {&str_stored, "stored"}, {&str_serial_at, "serial_at"}, {&str_lifetime, "lifetime"},
        {&str_only_limit, "only_limit"}, {&str_slot, "slot"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].name);
        if (*names[i].slot == NULL) return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Table", (PyObject *)&TableType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
