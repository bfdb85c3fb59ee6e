/* The fast path's per-packet work in C: question key, template lookup, reply patching, and a UDP
 * drain loop over recvmmsg/sendmmsg that answers hits without entering the interpreter.
 *
 * Why C: measured on the bench machine (bench/README.md), CPython cannot move more than ~80k empty
 * UDP echoes per second per core (a blocking recvfrom/sendto loop; a DatagramProtocol does 41k), so
 * issue #4's 100k answers/s per core are out of reach with any per-packet Python. Everything that
 * decides *what* is reusable stays in Python (kdns/server/fastpath.py builds the templates from the
 * plugin chain's own replies); this file only replays them:
 *
 *   reply = query ID (2) | template flags | query RD+CD (RFC 1035 §4.1.1) | template counts (8)
 *         | the client's own question (its spelling: owner names point at it, RFC 1035 §4.1.4)
 *         | answer RRs (A/AAAA, shuffled for loadbalance) | the rest, SOA serial and TTLs patched.
 *
 * An entry is valid while `source.scope_gen[scope] == generation` (kdns.request.Reuse) and, for
 * entries with a lifetime (the cache plugin's), while whole seconds since `stored` stay below `ttl`
 * (CoreDNS cache item.go: ttl - int(now - stored)); TTLs then count down in the reply. Entries that
 * keep the question's exact spelling replay only for queries spelled the same, and truncated replies
 * only to clients that take exactly as many bytes.
 * Every hit is counted per stats slot (Python maps slots to metric labels and harvests them on
 * scrape): requests per transport and family, duration, request and response size histograms.
 *
 * Runs only on the event loop thread, with the GIL held throughout: no locking is needed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define BATCH 64            /* datagrams per recvmmsg/sendmmsg: one syscall pair per 64 queries */
#define MAX_QUERY 4096      /* longest query read: the usual EDNS ceiling; longer ones are cut */
#define MAX_FAST_REPLY 4096 /* larger UDP replies go through the chain (rare, and it copes) */
#define CLASSIC_UDP 512     /* RFC 1035 §4.2.1 */
#define MIN_UDP 512         /* EDNS sizes below 512 are treated as 512 (RFC 6891 §6.2.3) */
#define TCP_MAX 65535       /* RFC 1035 §4.2.2 length prefix */
#define TYPE_OPT 41
#define FLAGS_FROM_QUERY 0x0110 /* RD and CD */
#define MAX_BOUNDS 32

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
    PyObject_HEAD
    uint8_t head[10];      /* flags (RD/CD cleared) + the four counts */
    PyObject *answers;     /* tuple of bytes: A/AAAA RRs loadbalance may shuffle */
    PyObject *after;       /* bytes: the rest of the message */
    Py_ssize_t length;     /* of answers + after */
    int serial_at;         /* offset of the SOA serial in `after`, or -1 */
    PyObject *source;      /* has scope_gen (dict) and serial (int); None: no scope check */
    PyObject *scope;       /* str */
    long long generation;
    double stored;         /* monotonic seconds; used when ttl >= 0 */
    long ttl;              /* lifetime in seconds, or -1: none (no countdown) */
    Py_ssize_t *ttl_at;    /* offsets of TTL fields in `after` to patch with the remaining lifetime */
    Py_ssize_t n_ttl;
    PyObject *question;    /* bytes: replay only for this exact spelling; NULL: any spelling */
    Py_ssize_t only_limit; /* a truncated reply: replay only to clients with this limit; 0: any */
    int slot;
} Entry;

static void Entry_dealloc(Entry *e) {
    Py_XDECREF(e->answers);
    Py_XDECREF(e->after);
    Py_XDECREF(e->source);
    Py_XDECREF(e->scope);
    Py_XDECREF(e->question);
    PyMem_Free(e->ttl_at);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static PyTypeObject EntryType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "kdns.server._hotpath.Entry",
    .tp_basicsize = sizeof(Entry),
    .tp_dealloc = (destructor)Entry_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One reply template (built by kdns.server.fastpath).",
};

/* ---- the table ---------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *entries; /* dict: key bytes -> Entry */
    Py_ssize_t max_entries;
    int shuffle;
    uint64_t rng;
    double time_bounds[MAX_BOUNDS];
    int n_time;
    double size_bounds[MAX_BOUNDS];
    int n_size;
    Stats *stats;
    int n_stats;
    /* drain buffers, allocated once */
    uint8_t (*in)[MAX_QUERY];
    uint8_t (*out)[MAX_FAST_REPLY];
} Table;

static PyObject *str_scope_gen, *str_serial;

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

static int Table_init(Table *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"time_bounds", "size_bounds", "max_entries", "shuffle", NULL};
    PyObject *time_bounds, *size_bounds;
    Py_ssize_t max_entries;
    int shuffle = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOn|p", names, &time_bounds, &size_bounds, &max_entries,
                                     &shuffle))
        return -1;
    if (read_bounds(time_bounds, self->time_bounds, &self->n_time) < 0) return -1;
    if (read_bounds(size_bounds, self->size_bounds, &self->n_size) < 0) return -1;
    self->max_entries = max_entries;
    self->shuffle = shuffle;
    self->rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)self ^ (uint64_t)(monotonic() * 1e9);
    Py_XSETREF(self->entries, PyDict_New());
    if (self->entries == NULL) return -1;
    if (self->in == NULL) self->in = PyMem_Malloc(sizeof(*self->in) * BATCH);
    if (self->out == NULL) self->out = PyMem_Malloc(sizeof(*self->out) * BATCH);
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

/* A plain query we might answer from a template: one question, no answers or authority, at most an
 * OPT of version 0 that ends the packet, opcode QUERY, not a response. Anything else → 0. */
static int parse_question(const uint8_t *d, Py_ssize_t n, int tcp, Question *q) {
    if (n < 17) return 0;
    uint16_t flags = be16(d + 2);
    uint16_t qd = be16(d + 4), an = be16(d + 6), ns = be16(d + 8), ar = be16(d + 10);
    if ((flags & 0xF800) || qd != 1 || an || ns || ar > 1) return 0;
    /* The name ends at its first zero byte; a zero inside a label ends it early, but then the key
     * matches no stored key (those come from well-formed questions) and the query simply misses. */
    const uint8_t *z = memchr(d + 12, 0, (size_t)(n - 12));
    if (z == NULL) return 0;
    Py_ssize_t end = (z - d) + 5;
    if (end > n) return 0;
    uint8_t shape = (uint8_t)(((flags & 0x0020) ? 4 : 0) | ((flags & 0x0010) ? 8 : 0));
    Py_ssize_t limit = tcp ? TCP_MAX : CLASSIC_UDP;
    if (ar) {
        if (n < end + 11 || d[end] != 0) return 0;
        const uint8_t *rr = d + end + 1;
        uint16_t rtype = be16(rr), size = be16(rr + 2), rdlen = be16(rr + 8);
        uint8_t version = rr[5];
        if (rtype != TYPE_OPT || version != 0 || end + 11 + rdlen != n) return 0;
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
    Py_ssize_t len = q->question_end - 12;
    PyObject *key = PyBytes_FromStringAndSize(NULL, len + 1);
    if (key == NULL) return NULL;
    uint8_t *k = (uint8_t *)PyBytes_AS_STRING(key);
    for (Py_ssize_t i = 0; i < len; i++) {
        uint8_t c = d[12 + i];
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

/* Is `e` still valid? Fills *serial (when the template has an SOA) and *remaining (when it has a
 * lifetime). 0: stale (dropped from the table), -1: a Python error, 1: valid. */
static int check_entry(Table *t, PyObject *key, Entry *e, double now, unsigned long *serial, long *remaining) {
    if (e->source != Py_None) {
        PyObject *gens = PyObject_GetAttr(e->source, str_scope_gen);
        if (gens == NULL) return -1;
        PyObject *g = PyDict_GetItemWithError(gens, e->scope);
        long long current = 0;
        if (g != NULL) current = PyLong_AsLongLong(g);
        Py_DECREF(gens);
        if (PyErr_Occurred()) return -1;
        if (current != e->generation) {
            if (PyDict_DelItem(t->entries, key) < 0) return -1;
            return 0;
        }
        if (e->serial_at >= 0) {
            PyObject *s = PyObject_GetAttr(e->source, str_serial);
            if (s == NULL) return -1;
            *serial = PyLong_AsUnsignedLongMask(s);
            Py_DECREF(s);
            if (PyErr_Occurred()) return -1;
        }
    }
    if (e->ttl >= 0) {
        *remaining = e->ttl - (long)(now - e->stored);
        if (*remaining <= 0) { /* expired: the plugin decides (serve_stale, refresh) */
            if (PyDict_DelItem(t->entries, key) < 0) return -1;
            return 0;
        }
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
    int valid = check_entry(t, key, e, e->ttl >= 0 ? monotonic() : 0.0, &serial, &remaining);
    Py_DECREF(key);
    if (valid <= 0) goto done;
    total = q.question_end + e->length;
    if (total > q.limit || total > cap || (e->only_limit && e->only_limit != q.limit) ||
        (e->question != NULL && memcmp(PyBytes_AS_STRING(e->question), data + 12, (size_t)(q.question_end - 12)))) {
        total = 0;
        goto done;
    }
    uint8_t *p = out;
    uint16_t flags = (uint16_t)(be16(e->head) | (be16(data + 2) & FLAGS_FROM_QUERY));
    memcpy(p, data, 2);
    p[2] = (uint8_t)(flags >> 8);
    p[3] = (uint8_t)flags;
    memcpy(p + 4, e->head + 2, 8);
    memcpy(p + 12, data + 12, (size_t)(q.question_end - 12));
    p += q.question_end;
    Py_ssize_t n_answers = PyTuple_GET_SIZE(e->answers);
    Py_ssize_t order[256];
    if (n_answers > 256) n_answers = 256; /* fastpath.py never stores more (it checks) */
    for (Py_ssize_t i = 0; i < n_answers; i++) order[i] = i;
    if (t->shuffle && n_answers > 1) { /* Fisher-Yates */
        for (Py_ssize_t i = n_answers - 1; i > 0; i--) {
            Py_ssize_t j = (Py_ssize_t)(next_random(t) % (uint64_t)(i + 1));
            Py_ssize_t tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
    }
    for (Py_ssize_t i = 0; i < n_answers; i++) {
        PyObject *rr = PyTuple_GET_ITEM(e->answers, order[i]);
        Py_ssize_t len = PyBytes_GET_SIZE(rr);
        memcpy(p, PyBytes_AS_STRING(rr), (size_t)len);
        if (e->ttl >= 0) put32(p + 6, (uint32_t)remaining); /* owner is a 2-byte pointer */
        p += len;
    }
    Py_ssize_t after_len = PyBytes_GET_SIZE(e->after);
    memcpy(p, PyBytes_AS_STRING(e->after), (size_t)after_len);
    if (e->serial_at >= 0) put32(p + e->serial_at, (uint32_t)serial);
    for (Py_ssize_t i = 0; i < e->n_ttl; i++) put32(p + e->ttl_at[i], (uint32_t)remaining);
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
    Py_ssize_t len = build_reply(t, data.buf, data.len, tcp, out, TCP_MAX, &slot);
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

/* ---- the UDP drain loop ---------------------------------------------------------------------------- */

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

static PyObject *Table_drain(Table *t, PyObject *args) {
    int fd, answer_hits, rounds;
    if (!PyArg_ParseTuple(args, "ipi", &fd, &answer_hits, &rounds)) return NULL;
    PyObject *misses = PyList_New(0);
    if (misses == NULL) return NULL;
    struct mmsghdr in_msgs[BATCH], out_msgs[BATCH];
    struct iovec in_iov[BATCH], out_iov[BATCH];
    struct sockaddr_storage addrs[BATCH];
    for (int round = 0; round < rounds; round++) {
        for (int i = 0; i < BATCH; i++) {
            in_iov[i].iov_base = t->in[i];
            in_iov[i].iov_len = MAX_QUERY;
            memset(&in_msgs[i].msg_hdr, 0, sizeof(struct msghdr));
            in_msgs[i].msg_hdr.msg_iov = &in_iov[i];
            in_msgs[i].msg_hdr.msg_iovlen = 1;
            in_msgs[i].msg_hdr.msg_name = &addrs[i];
            in_msgs[i].msg_hdr.msg_namelen = sizeof(addrs[i]);
        }
        int got = recvmmsg(fd, in_msgs, BATCH, MSG_DONTWAIT, NULL);
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            /* e.g. a queued ICMP error for an earlier reply (ECONNREFUSED): keep serving */
            continue;
        }
        unsigned int replies = 0;
        for (int i = 0; i < got; i++) {
            const uint8_t *data = t->in[i];
            Py_ssize_t len = (Py_ssize_t)in_msgs[i].msg_len;
            if (answer_hits) {
                double start = monotonic();
                int slot = -1;
                Py_ssize_t out_len = build_reply(t, data, len, 0, t->out[replies], MAX_FAST_REPLY, &slot);
                if (out_len < 0) goto error;
                if (out_len > 0) {
                    count_hit(t, slot, 0, is_ipv6_client(&addrs[i]), len, out_len, monotonic() - start);
                    out_iov[replies].iov_base = t->out[replies];
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
        if (got < BATCH) break;
    }
    return misses;
error:
    Py_DECREF(misses);
    return NULL;
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

static PyObject *Table_store(Table *t, PyObject *args, PyObject *kw) {
    static char *names[] = {"key", "head", "answers", "after", "serial_at", "source", "scope",
                            "generation", "slot", "stored", "ttl", "ttl_at", "question", "only_limit", NULL};
    PyObject *key, *answers, *after, *source, *scope, *ttl_at = NULL, *question = NULL;
    Py_buffer head;
    int serial_at, slot;
    long long generation;
    double stored = 0.0;
    long ttl = -1;
    Py_ssize_t only_limit = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Sy*O!SiOULi|dlOOn", names, &key, &head, &PyTuple_Type,
                                     &answers, &after, &serial_at, &source, &scope, &generation, &slot, &stored,
                                     &ttl, &ttl_at, &question, &only_limit))
        return NULL;
    if (question == Py_None) question = NULL;
    if (head.len != 10 || slot < 0 || PyTuple_GET_SIZE(answers) > 256 ||
        (question != NULL && (!PyBytes_Check(question) || PyBytes_GET_SIZE(question) != PyBytes_GET_SIZE(key) - 1))) {
        PyBuffer_Release(&head);
        PyErr_SetString(PyExc_ValueError,
                        "head must be 10 bytes, slot >= 0, at most 256 answers, question as long as the key");
        return NULL;
    }
    Py_ssize_t length = PyBytes_GET_SIZE(after);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(answers); i++) {
        PyObject *rr = PyTuple_GET_ITEM(answers, i);
        if (!PyBytes_Check(rr) || PyBytes_GET_SIZE(rr) < 16) {
            PyBuffer_Release(&head);
            PyErr_SetString(PyExc_ValueError, "answers must be resource records as bytes");
            return NULL;
        }
        length += PyBytes_GET_SIZE(rr);
    }
    if ((serial_at >= 0 && serial_at > PyBytes_GET_SIZE(after) - 4) || ensure_slot(t, slot) < 0) {
        PyBuffer_Release(&head);
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "serial_at is outside the template");
        return NULL;
    }
    Entry *e = PyObject_New(Entry, &EntryType);
    if (e == NULL) {
        PyBuffer_Release(&head);
        return NULL;
    }
    memcpy(e->head, head.buf, 10);
    PyBuffer_Release(&head);
    e->answers = Py_NewRef(answers);
    e->after = Py_NewRef(after);
    e->length = length;
    e->serial_at = serial_at;
    e->source = Py_NewRef(source);
    e->scope = Py_NewRef(scope);
    e->generation = generation;
    e->stored = stored;
    e->ttl = ttl;
    e->ttl_at = NULL;
    e->n_ttl = 0;
    e->question = Py_XNewRef(question);
    e->only_limit = only_limit;
    e->slot = slot;
    if (ttl_at != NULL && ttl_at != Py_None) {
        PyObject *fast = PySequence_Fast(ttl_at, "ttl_at must be a sequence of offsets");
        if (fast == NULL) goto fail;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
        e->ttl_at = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n ? n : 1));
        for (Py_ssize_t i = 0; e->ttl_at != NULL && i < n; i++) {
            Py_ssize_t at = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(fast, i));
            if ((at < 0 || at > PyBytes_GET_SIZE(after) - 4) && !PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "a TTL offset is outside the template");
            if (PyErr_Occurred()) break;
            e->ttl_at[i] = at;
            e->n_ttl = i + 1;
        }
        Py_DECREF(fast);
        if (e->ttl_at == NULL) PyErr_NoMemory();
        if (PyErr_Occurred()) goto fail;
    }
    if (PyDict_GET_SIZE(t->entries) >= t->max_entries) PyDict_Clear(t->entries); /* refills on demand */
    if (PyDict_SetItem(t->entries, key, (PyObject *)e) < 0) goto fail;
    Py_DECREF(e);
    Py_RETURN_NONE;
fail:
    Py_DECREF(e);
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

static PyObject *Table_get_shuffle(Table *t, void *Py_UNUSED(c)) { return PyBool_FromLong(t->shuffle); }

static int Table_set_shuffle(Table *t, PyObject *v, void *Py_UNUSED(c)) {
    int on = v ? PyObject_IsTrue(v) : 0;
    if (on < 0) return -1;
    t->shuffle = on;
    return 0;
}

static PyMethodDef Table_methods[] = {
    {"key", (PyCFunction)Table_key, METH_VARARGS,
     "key(data, tcp) -> bytes | None: the table key of a plain query, None for anything unusual."},
    {"answer", (PyCFunction)Table_answer, METH_VARARGS,
     "answer(data, tcp, ipv6) -> bytes | None: the reply from a valid template (counted), else None."},
    {"drain", (PyCFunction)Table_drain, METH_VARARGS,
     "drain(fd, answer_hits, rounds) -> [(data, address)]: reads a non-blocking UDP socket until it is "
     "empty or `rounds` batches were read, answers hits itself, returns the rest."},
    {"store", (PyCFunction)(void (*)(void))Table_store, METH_VARARGS | METH_KEYWORDS,
     "store(key, head, answers, after, serial_at, source, scope, generation, slot[, stored, ttl, ttl_at, "
     "question, only_limit])"},
    {"harvest", (PyCFunction)Table_harvest, METH_NOARGS, "Counts per stats slot since the last harvest."},
    {"clear", (PyCFunction)Table_clear, METH_NOARGS, "Forget every template."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Table_getset[] = {
    {"shuffle", (getter)Table_get_shuffle, (setter)Table_set_shuffle, "shuffle A/AAAA answers (loadbalance)",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods Table_as_sequence = {.sq_length = (lenfunc)Table_len};

static PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "kdns.server._hotpath.Table",
    .tp_basicsize = sizeof(Table),
    .tp_dealloc = (destructor)Table_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Question -> reply template, replayed in C (see kdns/server/fastpath.py).",
    .tp_methods = Table_methods,
    .tp_getset = Table_getset,
    .tp_as_sequence = &Table_as_sequence,
    .tp_init = (initproc)Table_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "kdns.server._hotpath",
                                    "The fast path's per-packet work in C.", -1, NULL};

PyMODINIT_FUNC PyInit__hotpath(void) {
    if (PyType_Ready(&EntryType) < 0 || PyType_Ready(&TableType) < 0) return NULL;
    str_scope_gen = PyUnicode_InternFromString("scope_gen");
    str_serial = PyUnicode_InternFromString("serial");
    if (str_scope_gen == NULL || str_serial == NULL) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Table", (PyObject *)&TableType) < 0 ||
        PyModule_AddIntConstant(m, "BATCH", BATCH) < 0 || PyModule_AddIntConstant(m, "MAX_QUERY", MAX_QUERY) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
