package web

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A handler that streams for longer than WriteTimeout and ReadTimeout
// survives when it clears its deadlines, with its context not cancelled;
// without clearDeadlines the same handler is cut off, so the test can
// tell.
func TestLongHandlerClearsDeadlines(t *testing.T) {
	// Generous, so that on a loaded machine the handler still starts (and
	// clears its deadlines) well before they pass.
	const timeout = 500 * time.Millisecond
	stream := func(clear bool) http.Handler {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			for _, part := range []string{"a", "b", "c"} {
				io.WriteString(w, part)
				if rc.Flush() != nil {
					return
				}
				// The workload: run past both timeouts.
				select {
				case <-time.After(2 * timeout):
				case <-r.Context().Done():
					io.WriteString(w, "cancelled")
					return
				}
			}
			io.WriteString(w, "done")
		})
		if clear {
			return longLived(h)
		}
		return h
	}
	opts := Options{ReadTimeout: timeout, WriteTimeout: timeout}
	mux := http.NewServeMux()
	mux.Handle("/long", stream(true))
	mux.Handle("/short", stream(false))
	s := startServerHandler(t, opts, mux)

	client := &http.Client{Timeout: 30 * time.Second}
	get := func(path string) (string, error) {
		resp, err := client.Get("http://" + s.Addr() + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if body, err := get("/long"); err != nil || body != "abcdone" {
		t.Errorf("with clearDeadlines: %q %v, want the whole stream", body, err)
	}
	if body, err := get("/short"); err == nil && body == "abcdone" {
		t.Errorf("without clearDeadlines the stream survived a %v write timeout: the test cannot fail", timeout)
	} else if strings.Contains(body, "done") {
		t.Errorf("without clearDeadlines: %q", body)
	}
}
