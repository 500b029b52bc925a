package health

import (
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// fakeSource is a Source whose components the test sets.
type fakeSource struct {
	mu sync.Mutex
	m  map[string]Component
}

func newFake(m map[string]Component) *fakeSource { return &fakeSource{m: m} }

func (f *fakeSource) set(m map[string]Component) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m = m
}

func (f *fakeSource) Components(time.Time) map[string]Component {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.m)
}

// statuses builds components with no fields.
func statuses(kv ...string) map[string]Component {
	m := make(map[string]Component, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = Component{Status: Status(kv[i+1])}
	}
	return m
}

// do sends one request to srv and returns the code, headers and body.
func do(t *testing.T, srv *httptest.Server, method, path string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}
