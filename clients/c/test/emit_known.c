/*
 * Producer for the Go cross-language test: creates a hot and an audit ring in
 * DIR, emits a fixed set of records, closes both rings and prints
 * {"pid":N,"hot":"PATH","audit":"PATH"} on one line.
 *
 * Usage: emit_known DIR
 *
 * Records (besides each ring's HELLO):
 *   hot:   10 FORWARD (i = 0..9: layer i%3, applied when i is even,
 *          gate i/10, entropy i/4, latency 100+i, all has-bits),
 *          RETRIEVAL (0, 5, 3, 7, all has-bits, scores 0.9 0.8 0.7, ids a b c),
 *          RETRIEVAL (0, 1, 0, 0, all has-bits, no scores, no ids),
 *          EVENT custom {"x":1,"y":"z"}
 *   audit: AUDIT register k1, unregister k1, clear
 */
#include "agaobs_ring.h"

static const char *identity =
    "{\"producer\":\"xlang-c\",\"role\":\"xlang-c\",\"instance\":0,\"process\":\"emit_known\","
    "\"client\":\"c/1\",\"schema_version\":1}";

static int check(int rc, const char *what) {
    if (rc != 0) {
        fprintf(stderr, "emit_known: %s: %s (%d)\n", what, agaobs_strerror(rc), rc);
        exit(1);
    }
    return rc;
}

static void audit(agaobs_ring *r, const char *op, const char *details) {
    char buf[512];
    int64_t now = agaobs_now_ns();
    int n = snprintf(buf, sizeof buf,
                     "{\"operation\":\"%s\",\"details\":%s,\"success\":true,\"error\":null,\"timestamp\":%.6f}", op,
                     details, (double)now / 1e9);
    if (n < 0 || (size_t)n >= sizeof buf) {
        fprintf(stderr, "emit_known: audit JSON too long\n");
        exit(1);
    }
    check(agaobs_emit_audit(r, now, buf, (size_t)n), op);
}

/* Prints s as a JSON string. */
static void print_json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    agaobs_ring hot, aud;
    agaobs_ring_options o;
    memset(&o, 0, sizeof o);
    o.identity_json = identity;
    o.instance = 0;
    o.ring_class = AGAOBS_CLASS_HOT;
    check(agaobs_ring_create(&hot, dir, &o), "create hot ring");
    o.ring_class = AGAOBS_CLASS_AUDIT;
    check(agaobs_ring_create(&aud, dir, &o), "create audit ring");

    for (int i = 0; i < 10; i++) {
        uint32_t fields = AGAOBS_FWD_HAS_ALL | (i % 2 == 0 ? AGAOBS_FWD_APPLIED : 0);
        check(agaobs_emit_forward(&hot, agaobs_now_ns(), i / 10.0, i / 4.0, 100.0 + i, i % 3, fields), "forward");
    }
    const double scores[3] = {0.9, 0.8, 0.7};
    const char *const ids[3] = {"a", "b", "c"};
    check(agaobs_emit_retrieval(&hot, agaobs_now_ns(), 0, 5, 3, 7, AGAOBS_RET_HAS_ALL, scores, 3, ids, 3),
          "retrieval");
    check(agaobs_emit_retrieval(&hot, agaobs_now_ns(), 0, 1, 0, 0, AGAOBS_RET_HAS_ALL, NULL, 0, NULL, 0),
          "retrieval (empty)");

    audit(&aud, "register",
          "{\"id\":\"k1\",\"reliability\":0.9,\"pinned\":false,\"metadata\":{\"source\":\"xlang\"},\"store_count\":1}");
    audit(&aud, "unregister", "{\"id\":\"k1\",\"store_count\":0}");
    audit(&aud, "clear", "{\"namespace\":null,\"store_count\":0}");

    static const char ev[] = "{\"x\":1,\"y\":\"z\"}";
    check(agaobs_emit_event(&hot, agaobs_now_ns(), "custom", ev, sizeof ev - 1), "event");

    agaobs_ring_heartbeat(&hot);
    agaobs_ring_heartbeat(&aud);
    char hot_path[PATH_MAX], aud_path[PATH_MAX];
    snprintf(hot_path, sizeof hot_path, "%s", agaobs_ring_path(&hot));
    snprintf(aud_path, sizeof aud_path, "%s", agaobs_ring_path(&aud));
    check(agaobs_ring_close(&hot), "close hot ring");
    check(agaobs_ring_close(&aud), "close audit ring");
    printf("{\"pid\":%ld,\"hot\":", (long)getpid());
    print_json_string(hot_path);
    printf(",\"audit\":");
    print_json_string(aud_path);
    printf("}\n");
    return 0;
}
