package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/audit"
	"github.com/agaobs/agaobs/internal/config"
)

// recordingStore records the largest page the admin API asks the store
// for, and can fail the n-th query.
type recordingStore struct {
	audit.Store
	mu       sync.Mutex
	maxLimit int
	queries  int
	failAt   int // 1-based; 0: never
}

func (s *recordingStore) Query(f audit.Filter) ([]audit.Record, error) {
	s.mu.Lock()
	s.queries++
	n := s.queries
	if f.Limit == 0 || f.Limit > s.maxLimit {
		s.maxLimit = f.Limit
		if f.Limit == 0 {
			s.maxLimit = -1 // unbounded
		}
	}
	s.mu.Unlock()
	if s.failAt > 0 && n == s.failAt {
		return nil, errors.New("disk on fire")
	}
	return s.Store.Query(f)
}

func (s *recordingStore) reset(failAt int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxLimit, s.queries, s.failAt = 0, 0, failAt
}

// adminWithRecords builds an agent (no listeners, not running) whose
// memory audit store holds n records, and serves its admin API.
func adminWithRecords(t *testing.T, n int) (*httptest.Server, *recordingStore) {
	t.Helper()
	cfg := config.Default()
	tmp := t.TempDir()
	cfg.RingDir, cfg.StatePath = tmp, filepath.Join(tmp, "state.db")
	cfg.AuditStorageBackend = "memory"
	cfg.PrometheusEnabled, cfg.HealthEnabled, cfg.AdminListenAddress = false, false, ""
	cfg.GPUEnabled, cfg.BPFEnabled, cfg.LogEnabled = false, false, false
	a, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.closeAll)
	now := time.Now()
	for i := 0; i < n; i += 1000 {
		var batch []*audit.Record
		for j := i; j < min(i+1000, n); j++ {
			op := "register"
			if j%2 == 1 {
				op = "retrieve"
			}
			batch = append(batch, &audit.Record{Time: now, Kind: audit.KindAgent, Producer: "p", Operation: op,
				Details: json.RawMessage(fmt.Sprintf(`{"n":%d,"html":"<&>"}`, j)), Success: true})
		}
		if _, err := a.auditStore.Append(batch); err != nil {
			t.Fatal(err)
		}
	}
	rs := &recordingStore{Store: a.auditStore}
	a.auditStore = rs
	srv := httptest.NewServer(a.adminHandler())
	t.Cleanup(srv.Close)
	return srv, rs
}

func getBody(t *testing.T, url string) (int, []byte, error) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// GET /api/v1/audit never serves more than 10 000 records: a larger limit,
// or 0, gets 10 000 and a next_cursor, and following the cursors returns
// every record once, in order. The page is streamed: the store is never
// asked for more than a chunk at a time.
func TestAuditLimitCappedAndStreamed(t *testing.T) {
	const total = audit.MaxPageLimit + 2500
	srv, rs := adminWithRecords(t, total)
	for _, limit := range []string{"100000000", "0"} {
		rs.reset(0)
		code, body, err := getBody(t, srv.URL+"/api/v1/audit?limit="+limit)
		if err != nil || code != 200 {
			t.Fatalf("limit=%s: %d %v", limit, code, err)
		}
		var p audit.Page
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("limit=%s: %v", limit, err)
		}
		if len(p.Records) != audit.MaxPageLimit || p.NextCursor != strconv.Itoa(audit.MaxPageLimit) {
			t.Errorf("limit=%s: %d records, next_cursor %q; want %d and %q", limit, len(p.Records), p.NextCursor,
				audit.MaxPageLimit, strconv.Itoa(audit.MaxPageLimit))
		}
		if rs.maxLimit < 0 || rs.maxLimit > 1000 {
			t.Errorf("limit=%s: the store was asked for %d records at once; want chunks of at most 1000", limit, rs.maxLimit)
		}
	}

	// Paging through everything with the cursor.
	var seqs []uint64
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		_, body, err := getBody(t, srv.URL+"/api/v1/audit?limit=0&cursor="+cursor)
		if err != nil {
			t.Fatal(err)
		}
		var p audit.Page
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			seqs = append(seqs, r.Seq)
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if len(seqs) != total {
		t.Fatalf("paged %d records, want %d", len(seqs), total)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("record %d has seq %d: out of order or repeated", i, s)
		}
	}
}

// The streamed reply is byte for byte what encoding the whole page gave
// (records keep the bytes they were hashed in, HTML escaping included),
// for pages that end inside, at and past a chunk, with filters.
func TestAuditStreamMatchesPage(t *testing.T) {
	srv, rs := adminWithRecords(t, 2600)
	for _, q := range []string{"", "limit=1", "limit=999", "limit=1000", "limit=1001", "limit=2600", "limit=2601",
		"limit=1500&operation=retrieve", "operation=register&limit=0", "cursor=2590&limit=5", "cursor=2600", "producer=nobody"} {
		code, got, err := getBody(t, srv.URL+"/api/v1/audit?"+q)
		if err != nil || code != 200 {
			t.Fatalf("%s: %d %v", q, code, err)
		}
		f, err := audit.FilterFromValues(mustQuery(t, q), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if f.Limit == 0 {
			f.Limit = audit.MaxPageLimit
		}
		p, err := audit.QueryPage(rs.Store, f)
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		json.NewEncoder(&want).Encode(p)
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s: streamed reply differs from the encoded page:\n got %.300s\nwant %.300s", q, got, want.Bytes())
		}
	}
}

// A store error before the first byte is a 500; one in a later chunk cuts
// the reply, so a client never takes a short page for a whole one.
func TestAuditStreamErrors(t *testing.T) {
	srv, rs := adminWithRecords(t, 2500)
	rs.reset(1)
	code, body, _ := getBody(t, srv.URL+"/api/v1/audit?limit=2000")
	if code != http.StatusInternalServerError || !bytes.Contains(body, []byte("disk on fire")) {
		t.Errorf("first query failing: %d %q, want 500 with the error", code, body)
	}
	rs.reset(2)
	code, body, err := getBody(t, srv.URL+"/api/v1/audit?limit=2000")
	var p audit.Page
	if err == nil && json.Unmarshal(body, &p) == nil {
		t.Errorf("second chunk failing: %d, a well-formed page of %d records", code, len(p.Records))
	}
}

func mustQuery(t *testing.T, q string) map[string][]string {
	t.Helper()
	req, err := http.NewRequest("GET", "/?"+q, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req.URL.Query()
}

// GET /api/v1/alerts: limit 0 (all) or above 10 000 is served as 10 000.
func TestAlertsLimitCapped(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
		bad  bool
	}{{"", 100, false}, {"5", 5, false}, {"10000", 10000, false}, {"0", 10000, false}, {"100000000", 10000, false},
		{"-1", 0, true}, {"x", 0, true}} {
		got, err := alertsLimit(c.in)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("alertsLimit(%q) = %d, %v; want %d (error %v)", c.in, got, err, c.want, c.bad)
		}
	}
}

// GET /api/v1/anomalies: the detector's view, its filters checked.
func TestAnomaliesEndpoint(t *testing.T) {
	srv, _ := adminWithRecords(t, 0)
	for _, c := range []struct {
		query string
		code  int
		want  string
	}{
		{"", 200, `"enabled": true`},
		{"?layers=all&producer=tp0&signal=gate_mean", 200, `"learning_period": "30m"`},
		{"?layers=some", 400, "layers: want all or anomalous"},
		{"?signal=latency_p95", 400, "signal: unknown"},
	} {
		code, body, err := getBody(t, srv.URL+"/api/v1/anomalies"+c.query)
		if err != nil {
			t.Fatal(err)
		}
		if code != c.code || !strings.Contains(string(body), c.want) {
			t.Errorf("%s: %d %s; want %d containing %q", c.query, code, body, c.code, c.want)
		}
	}
}
