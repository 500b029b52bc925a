/*
 * Behaviour tests of agaobs_ring.h beyond the byte vectors: file creation
 * (name, mode, directory, atomic replace), doorbell and SIGPIPE safety,
 * truncation, drops and lost_before, the audit ring's bounded wait, closed
 * and failed rings, and concurrent emitters.
 *
 * Usage: ring_test   (uses a fresh directory under $TMPDIR or /tmp)
 */
#include "agaobs_ring.h"

#include <dirent.h>
#include <inttypes.h>
#include <sys/wait.h>

static int failures;
static char base[256];

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            printf("  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);       \
            printf(__VA_ARGS__);                                           \
            printf("\n");                                                  \
        }                                                                  \
    } while (0)

#define ID "{\"producer\":\"ring-test\",\"instance\":0,\"schema_version\":1}"

static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint16_t rd16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* A decoded record of a ring walked from position `from`. */
typedef struct rec {
    uint32_t len;
    uint16_t type, flags;
    uint64_t seq;
    int64_t time_ns;
    const uint8_t *body;
    uint32_t body_len;
} rec;

/* Walks the records in [from, tail) of mem; returns how many (up to max)
   or -1 on a framing error. */
static int walk(const uint8_t *mem, uint64_t from, rec *out, int max) {
    uint64_t cap = rd64(mem + AGAOBS__OFF_CAPACITY);
    uint64_t tail = rd64(mem + AGAOBS__OFF_TAIL);
    const uint8_t *data = mem + AGAOBS_HEADER_SIZE;
    int n = 0;
    uint64_t pos = from;
    while (pos < tail) {
        uint64_t off = pos & (cap - 1);
        uint32_t len = rd32(data + off);
        uint16_t type = rd16(data + off + 4);
        if (type == AGAOBS_TYPE_PADDING) {
            if (len != cap - off) return -1;
            pos += len;
            continue;
        }
        if (len < 24 || off + agaobs__align8(len) > cap || pos + agaobs__align8(len) > tail) return -1;
        if (n < max) {
            rec *r = &out[n];
            r->len = len;
            r->type = type;
            r->flags = rd16(data + off + 6);
            r->seq = rd64(data + off + 8);
            r->time_ns = (int64_t)rd64(data + off + 16);
            r->body = data + off + 24;
            r->body_len = len - 24;
        }
        n++;
        pos += agaobs__align8(len);
    }
    return n;
}

static void set_head(agaobs_ring *r, uint64_t v) {
    atomic_store_explicit((_Atomic uint64_t *)(void *)(r->mem + AGAOBS__OFF_HEAD), v, memory_order_release);
}
static void set_sleeping(agaobs_ring *r, uint32_t gen) {
    atomic_store_explicit((_Atomic uint32_t *)(void *)(r->mem + AGAOBS__OFF_CONSUMER_SLEEPING), gen,
                          memory_order_release);
}

static int count_entries(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    if (d == NULL) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
    }
    closedir(d);
    return n;
}

static void rm_rf(const char *path) {
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot remove %s\n", path);
    }
}

static agaobs_ring_options opts(uint32_t cls) {
    agaobs_ring_options o;
    memset(&o, 0, sizeof o);
    o.ring_class = cls;
    o.identity_json = ID;
    return o;
}

static void test_create_file(void) {
    printf("create_file\n");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/nested/rings", base);
    agaobs_ring r;
    agaobs_ring_options o = opts(AGAOBS_CLASS_HOT);
    o.capacity = 8192;
    o.instance = 3;
    int rc = agaobs_ring_create(&r, dir, &o);
    CHECK(rc == 0, "create: %s", agaobs_strerror(rc));
    if (rc != 0) return;
    struct stat st;
    CHECK(stat(dir, &st) == 0 && (st.st_mode & 07777) == 01777, "dir mode %o", (unsigned)(st.st_mode & 07777));
    struct stat ns;
    uint64_t pidns = stat("/proc/self/ns/pid", &ns) == 0 ? (uint64_t)ns.st_ino : 0;
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/agaobs-%d-%" PRIu64 "-3-hot.ring", dir, (int)getpid(), pidns);
    CHECK(strcmp(agaobs_ring_path(&r), want) == 0, "path %s, want %s", agaobs_ring_path(&r), want);
    CHECK(lstat(want, &st) == 0 && S_ISREG(st.st_mode), "ring file missing");
    CHECK((st.st_mode & 07777) == 0600, "file mode %o", (unsigned)(st.st_mode & 07777));
    CHECK(st.st_size == 4096 + 8192, "size %lld", (long long)st.st_size);
    CHECK(count_entries(dir, ".") == 2, "hidden temp file left behind"); /* "." and ".." only */
    const uint8_t *m = r.mem;
    CHECK(rd64(m) == AGAOBS_MAGIC, "magic");
    CHECK(rd32(m + AGAOBS__OFF_PID) == (uint32_t)getpid(), "pid");
    CHECK(rd64(m + AGAOBS__OFF_PIDNS_INODE) == pidns, "pidns");
    uint64_t ticks = 0;
    CHECK(agaobs__start_time_ticks(&ticks) == 0 && ticks != 0 && rd64(m + AGAOBS__OFF_START_TIME) == ticks,
          "start ticks %" PRIu64, ticks);
    CHECK(rd32(m + AGAOBS__OFF_INSTANCE) == 3, "instance");
    CHECK(rd64(m + AGAOBS__OFF_EPOCH) != 0, "epoch");
    CHECK(rd32(m + AGAOBS__OFF_STATE) == 1, "state");
    CHECK(rd64(m + AGAOBS__OFF_HEARTBEAT) != 0, "heartbeat");
    int64_t ct = (int64_t)rd64(m + AGAOBS__OFF_CREATE_TIME);
    CHECK(llabs(ct - agaobs_now_ns()) < 10 * INT64_C(1000000000), "create time %lld", (long long)ct);
    CHECK(rd32(m + AGAOBS__OFF_MAX_RECORD_LEN) == 1024, "default max_record_len %u", rd32(m + AGAOBS__OFF_MAX_RECORD_LEN));
    rec recs[4];
    CHECK(walk(m, 0, recs, 4) == 1 && recs[0].type == AGAOBS_TYPE_HELLO && recs[0].seq == 1 &&
              recs[0].time_ns == ct && recs[0].body_len == strlen(ID) && memcmp(recs[0].body, ID, strlen(ID)) == 0,
          "hello record");
    uint64_t epoch1 = agaobs_ring_epoch(&r);
    int64_t before = agaobs_now_ns();
    ino_t ino1 = st.st_ino;

    /* Re-created under the same name: replaced atomically (new inode and epoch). */
    agaobs_ring r2;
    rc = agaobs_ring_create(&r2, dir, &o);
    CHECK(rc == 0, "re-create: %s", agaobs_strerror(rc));
    CHECK(lstat(want, &st) == 0 && st.st_ino != ino1, "re-created ring has the old inode");
    CHECK(agaobs_ring_epoch(&r2) != epoch1, "epoch reused");
    CHECK(agaobs_ring_close(&r2) == 0, "close r2");

    /* Close: state closed, closed time set; the file (now r2's) stays. */
    CHECK(agaobs_ring_close(&r) == 0, "close");
    CHECK(agaobs_ring_close(&r) == 0, "second close");
    CHECK(lstat(want, &st) == 0, "file removed by close");
    CHECK(agaobs_emit_forward(&r, 1, 0, 0, 0, 0, 0) == AGAOBS_ECLOSED, "emit after close");
    int fd = open(want, O_RDONLY);
    uint8_t hdr[4096];
    CHECK(fd >= 0 && read(fd, hdr, sizeof hdr) == (ssize_t)sizeof hdr, "read back");
    if (fd >= 0) close(fd);
    CHECK(rd32(hdr + AGAOBS__OFF_STATE) == 2, "closed state %u", rd32(hdr + AGAOBS__OFF_STATE));
    CHECK((int64_t)rd64(hdr + AGAOBS__OFF_CLOSED_TIME) >= before, "closed time");

    /* Audit ring name and defaults. */
    agaobs_ring a;
    agaobs_ring_options ao = opts(AGAOBS_CLASS_AUDIT);
    rc = agaobs_ring_create(&a, dir, &ao);
    CHECK(rc == 0, "create audit: %s", agaobs_strerror(rc));
    snprintf(want, sizeof want, "%s/agaobs-%d-%" PRIu64 "-0-audit.ring", dir, (int)getpid(), pidns);
    CHECK(strcmp(agaobs_ring_path(&a), want) == 0, "audit path %s", agaobs_ring_path(&a));
    CHECK(lstat(want, &st) == 0 && st.st_size == 4096 + (1 << 20), "audit size %lld", (long long)st.st_size);
    CHECK(rd32(a.mem + AGAOBS__OFF_MAX_RECORD_LEN) == (1 << 17), "audit max_record_len");
    agaobs_ring_close(&a);
}

static void test_env_and_setgid_dir(void) {
    printf("env_and_setgid_dir\n");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/group", base);
    CHECK(mkdir(dir, 0700) == 0 && chmod(dir, 02770) == 0, "mkdir setgid");
    setenv("AGAOBS_RING_DIR", dir, 1);
    agaobs_ring r;
    agaobs_ring_options o = opts(AGAOBS_CLASS_HOT);
    o.capacity = 4096;
    int rc = agaobs_ring_create(&r, NULL, &o);
    unsetenv("AGAOBS_RING_DIR");
    CHECK(rc == 0, "create: %s", agaobs_strerror(rc));
    if (rc != 0) return;
    CHECK(strncmp(agaobs_ring_path(&r), dir, strlen(dir)) == 0, "AGAOBS_RING_DIR ignored: %s", agaobs_ring_path(&r));
    struct stat st;
    CHECK(lstat(agaobs_ring_path(&r), &st) == 0 && (st.st_mode & 07777) == 0660, "mode %o",
          (unsigned)(st.st_mode & 07777));
    CHECK(stat(dir, &st) == 0 && (st.st_mode & 07777) == 02770, "existing dir mode changed to %o",
          (unsigned)(st.st_mode & 07777));
    agaobs_ring_close(&r);
}

static void test_failures(void) {
    printf("failures\n");
    agaobs_ring r;
    agaobs_ring_options o = opts(AGAOBS_CLASS_HOT);
    o.identity_json = "{\"role\":\"x\"}";
    CHECK(agaobs_ring_create(&r, base, &o) == -EINVAL, "identity without producer");
    CHECK(agaobs_emit_forward(&r, 1, 0, 0, 0, 0, 0) == AGAOBS_ECLOSED, "emit on failed ring");
    CHECK(agaobs_emit_status(&r, 1, "{}", 2) == AGAOBS_ECLOSED, "status on failed ring");
    agaobs_ring_heartbeat(&r);
    agaobs_ring_mark_closed(&r, 1);
    CHECK(agaobs_ring_close(&r) == 0, "close failed ring");

    o = opts(AGAOBS_CLASS_HOT);
    o.capacity = 5000;
    CHECK(agaobs_ring_create(&r, base, &o) == -EINVAL, "capacity not a power of two");
    o = opts(0);
    CHECK(agaobs_ring_create(&r, base, &o) == -EINVAL, "class 0");
    o = opts(AGAOBS_CLASS_HOT);
    o.capacity = 4096;
    o.max_record_len = 1024;
    CHECK(agaobs_ring_create(&r, base, &o) == -EINVAL, "max_record_len > capacity/8");
    o.max_record_len = 64;
    CHECK(agaobs_ring_create(&r, base, &o) == AGAOBS_ETOOLARGE, "identity longer than max_record_len");

    /* A directory that cannot be created (a file is in the way). */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/plainfile", base);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    if (fd >= 0) close(fd);
    snprintf(path, sizeof path, "%s/plainfile/sub", base);
    o = opts(AGAOBS_CLASS_HOT);
    int rc = agaobs_ring_create(&r, path, &o);
    CHECK(rc < 0 && rc != AGAOBS_ECLOSED, "dir under a file: %d", rc);
    CHECK(agaobs_emit_forward(&r, 1, 0, 0, 0, 0, 0) == AGAOBS_ECLOSED, "emit after failed create");
    agaobs_ring_close(&r);

    /* A zero-initialised ring is a closed ring. */
    agaobs_ring z;
    memset(&z, 0, sizeof z);
    CHECK(agaobs_emit_forward(&z, 1, 0, 0, 0, 0, 0) == AGAOBS_ECLOSED, "zeroed ring");
    CHECK(agaobs_ring_close(&z) == 0, "close zeroed ring");

    /* Unaligned or wrongly sized buffers. */
    static _Alignas(8) uint8_t buf[4096 + 4096 + 8];
    o = opts(AGAOBS_CLASS_HOT);
    o.capacity = 4096;
    CHECK(agaobs_ring_init_buffer(&r, buf + 4, 8192, &o) == -EINVAL, "unaligned buffer");
    CHECK(agaobs_ring_init_buffer(&r, buf, 8200, &o) == -EINVAL, "wrong size");
}

static uint8_t *new_buf(agaobs_ring *r, agaobs_ring_options *o) {
    size_t len = 4096 + o->capacity;
    uint8_t *b = aligned_alloc(4096, len);
    memset(b, 0, len);
    int rc = agaobs_ring_init_buffer(r, b, len, o);
    CHECK(rc == 0, "init_buffer: %s", agaobs_strerror(rc));
    return b;
}

static void test_truncation(void) {
    printf("truncation\n");
    agaobs_ring r;
    agaobs_ring_options o = opts(AGAOBS_CLASS_HOT);
    o.capacity = 4096;
    o.max_record_len = 128; /* body <= 104 */
    uint8_t *b = new_buf(&r, &o);
    const char *ids[] = {"0123456789", "abcdefghij", "klmnopqrst", "uvwxyz0123", "ABCDEFGHIJ", "KLMNOPQRST"};
    double scores[2] = {0.5, 0.25};
    /* fixed 24 + 16 scores = 40; each id 12 -> 5 ids = 100 <= 104, the 6th does not fit */
    CHECK(agaobs_emit_retrieval(&r, 10, 1, 2, 3, 4, 15, scores, 2, ids, 6) == 0, "retrieval");
    /* Scores alone too large. */
    double many[16] = {0};
    CHECK(agaobs_emit_retrieval(&r, 11, 1, 2, 3, 4, 15, many, 16, NULL, 0) == AGAOBS_ETOOLARGE, "scores too large");
    char big[200];
    memset(big, 'x', sizeof big);
    CHECK(agaobs_emit_status(&r, 12, big, sizeof big) == AGAOBS_ETOOLARGE, "status too large");
    CHECK(agaobs_emit_event(&r, 13, "", "{}", 2) == -EINVAL, "empty event name");
    CHECK(agaobs_emit_event(&r, 14, "n", "{}", 2) == 0, "event");
    /* Audit: details replaced by the marker. */
    char audit[300];
    int n = snprintf(audit, sizeof audit,
                     "{\"operation\":\"register\",\"details\":{\"id\":\"%.*s\",\"x\":[1,{\"y\":\"}\"}]},\"success\":true,"
                     "\"error\":null,\"timestamp\":1.5}",
                     120, "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
    CHECK(agaobs_emit_audit(&r, 15, audit, (size_t)n) == AGAOBS_ETOOLARGE, "audit marker still too large for 128");
    agaobs_ring_close(&r);
    free(b);

    o.max_record_len = 256; /* body <= 232 */
    o.capacity = 4096;
    b = new_buf(&r, &o);
    CHECK(agaobs_emit_retrieval(&r, 10, 1, 2, 3, 4, 15, scores, 2, ids, 6) == 0, "retrieval fits");
    CHECK(agaobs_emit_audit(&r, 15, audit, (size_t)n) == 0, "audit truncated");
    const char *nodetails = "{\"operation\":\"clear\",\"success\":true,\"pad\":\"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\"}";
    CHECK(agaobs_emit_audit(&r, 16, nodetails, strlen(nodetails)) == AGAOBS_ETOOLARGE, "no details, still too large");
    const char *notobj = "[1,2,3]";
    char huge[400];
    memset(huge, ' ', sizeof huge);
    memcpy(huge, notobj, strlen(notobj));
    CHECK(agaobs_emit_audit(&r, 17, huge, sizeof huge) == AGAOBS_ETOOLARGE, "not an object");
    /* Whitespace, escaped quotes and brackets inside strings, details last. */
    char last[300];
    n = snprintf(last, sizeof last, "{ \"operation\" : \"x\\\"}\" ,\n \"details\" : [ \"%0200d\" ] }", 0);
    CHECK(agaobs_emit_audit(&r, 18, last, (size_t)n) == 0, "details last");
    rec recs[8];
    int k = walk(b, 0, recs, 8);
    CHECK(k == 4, "records %d", k);
    if (k == 4) {
        rec *rt = &recs[1];
        CHECK(rt->type == AGAOBS_TYPE_RETRIEVAL && rt->flags == 0 && rd16(rt->body + 18) == 6, "retrieval untruncated");
        rec *a = &recs[2];
        char want[400];
        int wn = snprintf(want, sizeof want,
                          "{\"operation\":\"register\",\"details\":{\"_truncated\":true,\"_original_bytes\":%d},"
                          "\"success\":true,\"error\":null,\"timestamp\":1.5}",
                          n == 0 ? 0 : (int)strlen(audit));
        CHECK(a->type == AGAOBS_TYPE_AUDIT && a->flags == AGAOBS_FLAG_TRUNCATED && rd64(a->body) == 0 &&
                  a->body_len == 8 + (uint32_t)wn && memcmp(a->body + 8, want, (size_t)wn) == 0,
              "audit body %.*s", (int)a->body_len - 8, (const char *)a->body + 8);
        rec *a2 = &recs[3];
        snprintf(want, sizeof want, "{ \"operation\" : \"x\\\"}\" ,\n \"details\" : {\"_truncated\":true,\"_original_bytes\":%d} }",
                 (int)strlen(last));
        CHECK(a2->flags == AGAOBS_FLAG_TRUNCATED && a2->body_len == 8 + strlen(want) &&
                  memcmp(a2->body + 8, want, strlen(want)) == 0,
              "details last %.*s", (int)a2->body_len - 8, (const char *)a2->body + 8);
    }
    agaobs_ring_close(&r);
    free(b);

    /* Retrieval ids truncated in a 128-byte ring; check the record. */
    o.max_record_len = 128;
    b = new_buf(&r, &o);
    CHECK(agaobs_emit_retrieval(&r, 10, -1, 2, 3, 4, 15, scores, 2, ids, 6) == 0, "retrieval");
    k = walk(b, 0, recs, 8);
    CHECK(k == 2, "records %d", k);
    if (k == 2) {
        rec *rt = &recs[1];
        CHECK(rt->flags == AGAOBS_FLAG_TRUNCATED, "flags %u", rt->flags);
        CHECK((int32_t)rd32(rt->body) == -1 && rd16(rt->body + 16) == 2 && rd16(rt->body + 18) == 5, "counts");
        CHECK(rt->len == 24 + 100, "len %u", rt->len);
        const uint8_t *p = rt->body + 40;
        for (int i = 0; i < 5; i++) {
            CHECK(rd16(p) == 10 && memcmp(p + 2, ids[i], 10) == 0, "id %d", i);
            p += 12;
        }
    }
    agaobs_ring_close(&r);
    free(b);
}

static void test_drops_and_lost_before(void) {
    printf("drops_and_lost_before\n");
    agaobs_ring r;
    agaobs_ring_options o = opts(AGAOBS_CLASS_AUDIT);
    o.capacity = 4096;
    o.audit_wait_us = -1;
    uint8_t *b = new_buf(&r, &o);
    char js[200];
    int n = snprintf(js, sizeof js, "{\"operation\":\"register\",\"details\":{\"pad\":\"%0100d\"},\"success\":true}", 0);
    int committed = 0, dropped = 0;
    for (int i = 0; i < 40; i++) {
        int rc = agaobs_emit_audit(&r, i, js, (size_t)n);
        if (rc == 0) committed++;
        else if (rc == AGAOBS_EDROPPED) dropped++;
    }
    CHECK(dropped > 0 && committed > 0, "committed %d dropped %d", committed, dropped);
    uint64_t by_type = rd64(b + AGAOBS__OFF_DROPPED_BY_TYPE + 8 * AGAOBS_TYPE_AUDIT);
    CHECK(by_type == (uint64_t)dropped && rd64(b + AGAOBS__OFF_DROPPED_TOTAL) == (uint64_t)dropped, "dropped counters");
    /* Release everything; the next audit carries lost_before = dropped. */
    agaobs_ring_stats st;
    agaobs_ring_get_stats(&r, &st);
    set_head(&r, st.tail);
    CHECK(agaobs_emit_audit(&r, 100, js, (size_t)n) == 0, "audit after release");
    rec recs[64];
    int k = walk(b, st.tail, recs, 64);
    CHECK(k == 1 && rd64(recs[0].body) == (uint64_t)dropped, "lost_before %" PRIu64 ", want %d",
          k == 1 ? rd64(recs[0].body) : 0, dropped);
    CHECK(k == 1 && recs[0].seq == (uint64_t)(1 + committed + dropped + 1), "seq gap: seq %" PRIu64,
          k == 1 ? recs[0].seq : 0);
    CHECK(agaobs_emit_audit(&r, 101, js, (size_t)n) == 0, "audit");
    k = walk(b, st.tail, recs, 64);
    CHECK(k == 2 && rd64(recs[1].body) == 0, "lost_before reset");
    CHECK(rd64(b + AGAOBS__OFF_LAST_SEQ) == (uint64_t)(1 + committed + dropped + 2), "last_seq");
    agaobs_ring_close(&r);
    free(b);

    /* Hot ring: full -> drop without blocking. */
    o = opts(AGAOBS_CLASS_HOT);
    o.capacity = 4096;
    b = new_buf(&r, &o);
    int64_t t0 = agaobs_mono_ns();
    int drops = 0;
    for (int i = 0; i < 1000; i++) drops += agaobs_emit_forward(&r, i, 0, 0, 0, 0, 0) == AGAOBS_EDROPPED;
    int64_t dt = agaobs_mono_ns() - t0;
    CHECK(drops > 900 && dt < 50000000, "drops %d in %lld ns", drops, (long long)dt);
    CHECK(rd64(b + AGAOBS__OFF_DROPPED_BY_TYPE + 8 * AGAOBS_TYPE_FORWARD) == (uint64_t)drops, "by type");
    agaobs_ring_close(&r);
    free(b);
}

static void test_audit_wait(void) {
    printf("audit_wait\n");
    agaobs_ring r;
    agaobs_ring_options o = opts(AGAOBS_CLASS_AUDIT);
    o.capacity = 4096;
    o.audit_wait_us = 2000;
    uint8_t *b = new_buf(&r, &o);
    const char *js = "{\"operation\":\"clear\",\"details\":{},\"success\":true}";
    int rc = 0;
    int i = 0;
    while ((rc = agaobs_emit_audit(&r, i, js, strlen(js))) == 0 && i < 1000) i++;
    CHECK(rc == AGAOBS_EDROPPED, "ring never filled: %d", rc);
    int64_t t0 = agaobs_mono_ns();
    rc = agaobs_emit_audit(&r, 0, js, strlen(js));
    int64_t dt = agaobs_mono_ns() - t0;
    CHECK(rc == AGAOBS_EDROPPED && dt >= 2000000 && dt < 200000000, "rc %d waited %lld ns", rc, (long long)dt);
    agaobs_ring_close(&r);
    free(b);
}

typedef struct {
    agaobs_ring *r;
    int n;
} worker_arg;

static void *worker(void *p) {
    worker_arg *a = (worker_arg *)p;
    for (int i = 0; i < a->n; i++) {
        int rc = agaobs_emit_forward(a->r, i, 0.5, 0.5, 1.0, i, 31);
        if (rc != 0) {
            return (void *)1;
        }
    }
    return NULL;
}

static void test_threads(void) {
    printf("threads\n");
    agaobs_ring r;
    agaobs_ring_options o = opts(AGAOBS_CLASS_HOT);
    o.capacity = 4u << 20;
    uint8_t *b = new_buf(&r, &o);
    enum { T = 4, N = 15000 }; /* 60000 * 56 B < 4 MiB: nothing drops */
    pthread_t th[T];
    worker_arg args[T];
    for (int t = 0; t < T; t++) {
        args[t].r = &r;
        args[t].n = N;
        pthread_create(&th[t], NULL, worker, &args[t]);
    }
    int bad = 0;
    for (int t = 0; t < T; t++) {
        void *res;
        pthread_join(th[t], &res);
        bad += res != NULL;
    }
    CHECK(bad == 0, "emit failed in %d threads", bad);
    static rec recs[T * N + 1];
    int k = walk(b, 0, recs, T * N + 1);
    CHECK(k == T * N + 1, "records %d", k);
    int gaps = 0;
    for (int i = 0; i < k && i < T * N + 1; i++) gaps += recs[i].seq != (uint64_t)i + 1;
    CHECK(gaps == 0, "%d sequence errors", gaps);
    agaobs_ring_close(&r);
    free(b);
}

static int read_available(int fd) {
    uint8_t buf[64];
    ssize_t n = read(fd, buf, sizeof buf);
    return n < 0 ? 0 : (int)n;
}

static void test_doorbell(void) {
    printf("doorbell\n");
    char dir[512], fifo[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/bell", base);
    snprintf(fifo, sizeof fifo, "%s/agaobs.doorbell", dir);
    agaobs_ring r;
    agaobs_ring_options o = opts(AGAOBS_CLASS_HOT);
    o.capacity = 4096 * 4;
    int rc = agaobs_ring_create(&r, dir, &o);
    CHECK(rc == 0, "create: %s", agaobs_strerror(rc));
    if (rc != 0) return;

    /* No FIFO yet: poking fails quietly and retries at most once a second. */
    set_sleeping(&r, 1);
    CHECK(agaobs_emit_forward(&r, 1, 0, 0, 0, 0, 0) == 0, "emit without FIFO");
    CHECK(r.doorbell_fd < 0 && r.doorbell_next_open > agaobs_mono_ns(), "open retry scheduled");

    CHECK(mkfifo(fifo, 0622) == 0, "mkfifo");
    int rfd = open(fifo, O_RDONLY | O_NONBLOCK);
    CHECK(rfd >= 0, "open reader");
    r.doorbell_next_open = 0; /* skip the 1 s back-off */
    set_sleeping(&r, 2);
    CHECK(agaobs_emit_forward(&r, 2, 0, 0, 0, 0, 0) == 0, "emit");
    CHECK(read_available(rfd) == 1, "one poke for generation 2");
    CHECK(agaobs_emit_forward(&r, 3, 0, 0, 0, 0, 0) == 0, "emit");
    CHECK(read_available(rfd) == 0, "no second poke for the same generation");
    set_sleeping(&r, 0);
    CHECK(agaobs_emit_forward(&r, 4, 0, 0, 0, 0, 0) == 0, "emit");
    CHECK(read_available(rfd) == 0, "no poke while the consumer polls");
    set_sleeping(&r, 3);
    CHECK(agaobs_emit_forward(&r, 5, 0, 0, 0, 0, 0) == 0, "emit");
    CHECK(read_available(rfd) == 1, "poke for generation 3");

    /* Full pipe: EAGAIN ignored. */
    int pipe_full_ok = 1;
    for (uint32_t g = 10; g < 10 + 70000; g++) {
        set_sleeping(&r, g);
        agaobs_ring_stats st;
        agaobs_ring_get_stats(&r, &st);
        set_head(&r, st.tail);
        if (agaobs_emit_forward(&r, g, 0, 0, 0, 0, 0) != 0) pipe_full_ok = 0;
    }
    CHECK(pipe_full_ok && r.doorbell_fd >= 0, "full pipe");
    while (read_available(rfd) > 0) {
    }

    /* The agent dies: the reader goes away. SIGPIPE keeps its default action
       (terminate); the write must neither kill us nor leave it pending. */
    signal(SIGPIPE, SIG_DFL);
    close(rfd);
    set_sleeping(&r, 100000);
    CHECK(agaobs_emit_forward(&r, 6, 0, 0, 0, 0, 0) == 0, "emit with a dead agent");
    sigset_t pend;
    sigpending(&pend);
    CHECK(!sigismember(&pend, SIGPIPE), "SIGPIPE left pending");
    CHECK(r.doorbell_fd < 0, "descriptor closed after EPIPE");

    /* A SIGPIPE the host already had pending (blocked) is left alone. */
    rfd = open(fifo, O_RDONLY | O_NONBLOCK);
    set_sleeping(&r, 100001);
    r.doorbell_next_open = 0;
    CHECK(agaobs_emit_forward(&r, 7, 0, 0, 0, 0, 0) == 0 && read_available(rfd) == 1, "reopened");
    close(rfd);
    sigset_t s, old;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &s, &old);
    pthread_kill(pthread_self(), SIGPIPE);
    set_sleeping(&r, 100002);
    CHECK(agaobs_emit_forward(&r, 8, 0, 0, 0, 0, 0) == 0, "emit");
    sigpending(&pend);
    CHECK(sigismember(&pend, SIGPIPE), "host's pending SIGPIPE consumed");
    struct timespec zero = {0, 0};
    sigtimedwait(&s, NULL, &zero);
    sigset_t now_mask;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_sigmask(SIG_SETMASK, NULL, &now_mask);
    CHECK(!sigismember(&now_mask, SIGPIPE), "signal mask not restored");

    /* Close pokes a sleeping agent (forced). */
    rfd = open(fifo, O_RDONLY | O_NONBLOCK);
    r.doorbell_next_open = 0;
    set_sleeping(&r, 100003);
    CHECK(agaobs_emit_forward(&r, 9, 0, 0, 0, 0, 0) == 0 && read_available(rfd) == 1, "poke");
    agaobs_ring_close(&r);
    CHECK(read_available(rfd) == 1, "close pokes");
    close(rfd);
}

/* A child with a dead agent and SIGPIPE's default action must survive many
   pokes (run in a child so a failure is a clean test failure). */
static void test_sigpipe_child(void) {
    printf("sigpipe_child\n");
    char dir[512], fifo[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/bell2", base);
    snprintf(fifo, sizeof fifo, "%s/agaobs.doorbell", dir);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        agaobs_ring r;
        agaobs_ring_options o = opts(AGAOBS_CLASS_HOT);
        o.capacity = 4096;
        if (agaobs_ring_create(&r, dir, &o) != 0 || mkfifo(fifo, 0600) != 0) _exit(3);
        for (uint32_t g = 1; g <= 200; g++) {
            int rfd = open(fifo, O_RDONLY | O_NONBLOCK);
            r.doorbell_next_open = 0;
            set_sleeping(&r, 2 * g);
            agaobs_emit_forward(&r, g, 0, 0, 0, 0, 0); /* opens the FIFO, pokes */
            close(rfd);
            set_sleeping(&r, 2 * g + 1);
            agaobs_emit_forward(&r, g, 0, 0, 0, 0, 0); /* EPIPE */
            agaobs_ring_stats st;
            agaobs_ring_get_stats(&r, &st);
            set_head(&r, st.tail);
        }
        agaobs_ring_close(&r);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status 0x%x (signal %d)", status,
          WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof base, "%s/agaobs-ring-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(base) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_create_file();
    test_env_and_setgid_dir();
    test_failures();
    test_truncation();
    test_drops_and_lost_before();
    test_audit_wait();
    test_threads();
    test_doorbell();
    test_sigpipe_child();
    rm_rf(base);
    if (failures) {
        printf("ring_test: %d failures\n", failures);
        return 1;
    }
    printf("ring_test: all passed\n");
    return 0;
}
