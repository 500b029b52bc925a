/*
 * Replays testdata/ring/vectors.txt (format: testdata/ring/README.md) with
 * the C writer and compares every ring byte for byte, and the writer's
 * counters with the `check` line.
 *
 * Usage: vectors PATH/TO/vectors.txt
 */
#include "agaobs_ring.h"

#include <inttypes.h>

#define MAX_OPS 4096

typedef struct scenario {
    char name[128];
    agaobs_ring_options opts;
    char *identity;
    int64_t heartbeat;
    char **ops; /* op lines, in order */
    int *op_line;
    size_t n_ops, cap_ops;
    char *check;
    char *file_hex;
    int line;
} scenario;

static int64_t g_heartbeat;
static int64_t fixed_mono(void) { return g_heartbeat; }

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p == NULL) {
        perror("malloc");
        exit(2);
    }
    memcpy(p, s, n);
    return p;
}

static void scenario_free(scenario *s) {
    free(s->identity);
    for (size_t i = 0; i < s->n_ops; i++) free(s->ops[i]);
    free(s->ops);
    free(s->op_line);
    free(s->check);
    free(s->file_hex);
    memset(s, 0, sizeof *s);
}

/* Returns the text after the k-th space of line, or NULL. */
static const char *after_fields(const char *line, int k) {
    const char *p = line;
    for (int i = 0; i < k; i++) {
        p = strchr(p, ' ');
        if (p == NULL) {
            return NULL;
        }
        p++;
    }
    return p;
}

/* Splits a copy of line on single spaces into at most max fields. */
static int split(char *line, char **f, int max) {
    int n = 0;
    char *p = line;
    while (n < max) {
        f[n++] = p;
        p = strchr(p, ' ');
        if (p == NULL) {
            break;
        }
        *p++ = '\0';
    }
    return n;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Applies one op. Returns 0 or a non-dropped emit error. */
static int apply_op(agaobs_ring *r, uint8_t *buf, const char *line, const uint64_t *tails, size_t n_done,
                    char *err, size_t errlen) {
    char *copy = xstrdup(line);
    char *f[1024];
    int nf = split(copy, f, 1024);
    int rc = 0;
    int64_t ts = nf > 1 ? strtoll(f[1], NULL, 0) : 0;
    if (strcmp(f[0], "forward") == 0 && nf == 7) {
        rc = agaobs_emit_forward(r, ts, strtod(f[2], NULL), strtod(f[3], NULL), strtod(f[4], NULL),
                                 (int32_t)strtol(f[5], NULL, 0), (uint32_t)strtoul(f[6], NULL, 0));
    } else if (strcmp(f[0], "retrieval") == 0 && nf >= 9) {
        int ns = (int)strtol(f[7], NULL, 0);
        double scores[256];
        const char *ids[256];
        if (ns < 0 || ns > 256 || nf < 9 + ns) {
            snprintf(err, errlen, "bad retrieval op");
            free(copy);
            return -EINVAL;
        }
        for (int i = 0; i < ns; i++) scores[i] = strtod(f[8 + i], NULL);
        int ni = (int)strtol(f[8 + ns], NULL, 0);
        if (ni < 0 || ni > 256 || nf != 9 + ns + ni) {
            snprintf(err, errlen, "bad retrieval ids");
            free(copy);
            return -EINVAL;
        }
        for (int i = 0; i < ni; i++) ids[i] = f[9 + ns + i];
        rc = agaobs_emit_retrieval(r, ts, (int32_t)strtol(f[2], NULL, 0), (int32_t)strtol(f[3], NULL, 0),
                                   (int32_t)strtol(f[4], NULL, 0), (int32_t)strtol(f[5], NULL, 0),
                                   (uint32_t)strtoul(f[6], NULL, 0), scores, (uint16_t)ns, ids, (uint16_t)ni);
    } else if (strcmp(f[0], "audit") == 0 && nf >= 3) {
        const char *json = after_fields(line, 2);
        rc = agaobs_emit_audit(r, ts, json, strlen(json));
    } else if (strcmp(f[0], "event") == 0 && nf >= 4) {
        const char *json = after_fields(line, 3);
        rc = agaobs_emit_event(r, ts, f[2], json, strlen(json));
    } else if (strcmp(f[0], "status") == 0 && nf >= 3) {
        const char *json = after_fields(line, 2);
        rc = agaobs_emit_status(r, ts, json, strlen(json));
    } else if (strcmp(f[0], "set_head") == 0 && nf == 2) {
        uint64_t head;
        if (f[1][0] == '@') {
            /* "@K": the tail as it was after op K. */
            size_t k = (size_t)strtoul(f[1] + 1, NULL, 10);
            if (k == 0 || k > n_done) {
                snprintf(err, errlen, "set_head %s out of range", f[1]);
                free(copy);
                return -EINVAL;
            }
            head = tails[k - 1];
        } else {
            head = strtoull(f[1], NULL, 0);
        }
        /* Simulates the consumer releasing space. */
        atomic_store_explicit((_Atomic uint64_t *)(void *)(buf + AGAOBS__OFF_HEAD), head, memory_order_release);
    } else if (strcmp(f[0], "close") == 0 && nf == 2) {
        agaobs_ring_mark_closed(r, ts);
    } else {
        snprintf(err, errlen, "unknown or malformed op %s", f[0]);
        free(copy);
        return -EINVAL;
    }
    free(copy);
    if (rc == AGAOBS_EDROPPED) {
        rc = 0; /* drops are part of the scenarios */
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s returned %d (%s)", f[0], rc, agaobs_strerror(rc));
    }
    return rc;
}

/* Runs one scenario; returns 1 on PASS. */
static int run_scenario(scenario *s) {
    char err[256] = "";
    if (s->file_hex == NULL || s->check == NULL || s->identity == NULL) {
        printf("FAIL %s: scenario lacks identity, check or file\n", s->name);
        return 0;
    }
    agaobs_ring_options o = s->opts;
    o.identity_json = s->identity;
    g_heartbeat = s->heartbeat;
    o.mono_now = fixed_mono;
    uint64_t cap = o.capacity ? o.capacity : (o.ring_class == AGAOBS_CLASS_AUDIT ? AGAOBS_DEFAULT_AUDIT_BYTES : AGAOBS_DEFAULT_HOT_BYTES);
    size_t len = (size_t)(AGAOBS_HEADER_SIZE + cap);
    uint8_t *buf = aligned_alloc(64, len);
    uint8_t *want = malloc(len);
    uint64_t *tails = calloc(s->n_ops + 1, sizeof *tails);
    if (buf == NULL || want == NULL || tails == NULL) {
        perror("alloc");
        exit(2);
    }
    memset(buf, 0, len);
    int ok = 1;
    agaobs_ring r;
    int rc = agaobs_ring_init_buffer(&r, buf, len, &o);
    if (rc != 0) {
        printf("FAIL %s: init_buffer: %d (%s)\n", s->name, rc, agaobs_strerror(rc));
        ok = 0;
        goto out;
    }
    for (size_t i = 0; i < s->n_ops; i++) {
        if (apply_op(&r, buf, s->ops[i], tails, i, err, sizeof err) != 0) {
            printf("FAIL %s: line %d: %s\n", s->name, s->op_line[i], err);
            ok = 0;
            goto out;
        }
        agaobs_ring_stats st;
        agaobs_ring_get_stats(&r, &st);
        tails[i] = st.tail;
    }
    agaobs_ring_stats st;
    agaobs_ring_get_stats(&r, &st);
    char got_check[256];
    snprintf(got_check, sizeof got_check, "tail %" PRIu64 " last_seq %" PRIu64 " written %" PRIu64 " dropped %" PRIu64,
             st.tail, st.last_seq, st.written, st.dropped);
    if (strcmp(got_check, s->check) != 0) {
        printf("FAIL %s: check: want \"%s\", writer gives \"%s\"\n", s->name, s->check, got_check);
        ok = 0;
    }
    size_t hl = strlen(s->file_hex);
    if (hl != 2 * len) {
        printf("FAIL %s: file is %zu bytes, ring is %zu\n", s->name, hl / 2, len);
        ok = 0;
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        int hi = hexval((unsigned char)s->file_hex[2 * i]), lo = hexval((unsigned char)s->file_hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            printf("FAIL %s: bad hex at byte %zu\n", s->name, i);
            ok = 0;
            goto out;
        }
        want[i] = (uint8_t)(hi << 4 | lo);
    }
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != want[i]) {
            size_t last = i;
            size_t ndiff = 0;
            for (size_t j = i; j < len; j++) {
                if (buf[j] != want[j]) {
                    ndiff++;
                    last = j;
                }
            }
            printf("FAIL %s: ring bytes differ at offset %zu (0x%zx): want %02x, got %02x (%zu bytes differ, last at 0x%zx)\n",
                   s->name, i, i, want[i], buf[i], ndiff, last);
            ok = 0;
            break;
        }
    }
    if (ok) {
        printf("PASS %s (%zu ops, %s)\n", s->name, s->n_ops, got_check);
    }
out:
    agaobs_ring_close(&r);
    free(buf);
    free(want);
    free(tails);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s testdata/ring/vectors.txt\n", argv[0]);
        return 2;
    }
    FILE *fp = fopen(argv[1], "r");
    if (fp == NULL) {
        perror(argv[1]);
        return 2;
    }
    char *line = NULL;
    size_t linecap = 0;
    ssize_t n;
    int ln = 0;
    scenario cur;
    memset(&cur, 0, sizeof cur);
    int in_ring = 0, passed = 0, failed = 0;
    while ((n = getline(&line, &linecap, fp)) >= 0) {
        ln++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n == 0 || line[0] == '#') {
            continue;
        }
        const char *rest = after_fields(line, 1);
        if (rest == NULL) rest = "";
        char key[32];
        size_t kl = strcspn(line, " ");
        if (kl >= sizeof key) kl = sizeof key - 1;
        memcpy(key, line, kl);
        key[kl] = '\0';
        if (strcmp(key, "ring") == 0) {
            if (in_ring) {
                fprintf(stderr, "line %d: ring %s starts inside ring %s\n", ln, rest, cur.name);
                return 2;
            }
            memset(&cur, 0, sizeof cur);
            snprintf(cur.name, sizeof cur.name, "%s", rest);
            cur.line = ln;
            in_ring = 1;
            continue;
        }
        if (!in_ring) {
            fprintf(stderr, "line %d: %s outside a ring\n", ln, key);
            return 2;
        }
        if (strcmp(key, "class") == 0) {
            cur.opts.ring_class = strcmp(rest, "audit") == 0 ? AGAOBS_CLASS_AUDIT : strcmp(rest, "hot") == 0 ? AGAOBS_CLASS_HOT : 0;
        } else if (strcmp(key, "capacity") == 0) {
            cur.opts.capacity = strtoull(rest, NULL, 0);
        } else if (strcmp(key, "max_record_len") == 0) {
            cur.opts.max_record_len = (uint32_t)strtoul(rest, NULL, 0);
        } else if (strcmp(key, "epoch") == 0) {
            cur.opts.epoch = strtoull(rest, NULL, 0);
        } else if (strcmp(key, "create_time_ns") == 0) {
            cur.opts.create_time_ns = strtoll(rest, NULL, 0);
        } else if (strcmp(key, "pid") == 0) {
            cur.opts.pid = (uint32_t)strtoul(rest, NULL, 0);
        } else if (strcmp(key, "instance") == 0) {
            cur.opts.instance = (uint32_t)strtoul(rest, NULL, 0);
        } else if (strcmp(key, "pidns_inode") == 0) {
            cur.opts.pidns_inode = strtoull(rest, NULL, 0);
        } else if (strcmp(key, "start_time_ticks") == 0) {
            cur.opts.start_time_ticks = strtoull(rest, NULL, 0);
        } else if (strcmp(key, "heartbeat_mono_ns") == 0) {
            cur.heartbeat = strtoll(rest, NULL, 0);
        } else if (strcmp(key, "audit_wait_us") == 0) {
            long long v = strtoll(rest, NULL, 0);
            cur.opts.audit_wait_us = v == 0 ? -1 : v;
        } else if (strcmp(key, "identity") == 0) {
            free(cur.identity);
            cur.identity = xstrdup(rest);
        } else if (strcmp(key, "check") == 0) {
            free(cur.check);
            cur.check = xstrdup(rest);
        } else if (strcmp(key, "file") == 0) {
            free(cur.file_hex);
            cur.file_hex = xstrdup(rest);
        } else if (strcmp(key, "end") == 0) {
            if (run_scenario(&cur)) {
                passed++;
            } else {
                failed++;
            }
            scenario_free(&cur);
            in_ring = 0;
        } else {
            if (cur.n_ops == cur.cap_ops) {
                cur.cap_ops = cur.cap_ops ? 2 * cur.cap_ops : 64;
                cur.ops = realloc(cur.ops, cur.cap_ops * sizeof *cur.ops);
                cur.op_line = realloc(cur.op_line, cur.cap_ops * sizeof *cur.op_line);
                if (cur.ops == NULL || cur.op_line == NULL) {
                    perror("realloc");
                    return 2;
                }
            }
            cur.ops[cur.n_ops] = xstrdup(line);
            cur.op_line[cur.n_ops] = ln;
            cur.n_ops++;
        }
    }
    free(line);
    fclose(fp);
    if (in_ring) {
        printf("FAIL %s: no end line\n", cur.name);
        scenario_free(&cur);
        failed++;
    }
    if (passed + failed == 0) {
        printf("FAIL: no scenarios in %s\n", argv[1]);
        return 1;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
