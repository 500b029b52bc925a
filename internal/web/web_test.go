package web

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/agaobs/agaobs/internal/testutil"
)

// A web config file (exporter-toolkit format) protects a listener with
// basic auth; a bad file is a startup error naming it; a busy port is a
// startup error naming the address.
func TestBasicAuthAndErrors(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "web.yml")
	os.WriteFile(cfg, []byte("basic_auth_users:\n  prom: "+string(hash)+"\n"), 0o600)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	log := slog.New(slog.DiscardHandler)
	s, err := Listen("metrics", "127.0.0.1:0", h, cfg, Options{}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	url := "http://" + s.Addr() + "/"
	var code int
	testutil.WaitFor(30*time.Second, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		code = resp.StatusCode
		resp.Body.Close()
		return true
	})
	if code != http.StatusUnauthorized {
		t.Errorf("without credentials: %d, want 401", code)
	}
	req, _ := http.NewRequest("GET", url, nil)
	req.SetBasicAuth("prom", "s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("with credentials: %v %v", resp, err)
	}
	resp.Body.Close()

	if _, err := Listen("metrics", s.Addr(), h, "", Options{}, log); err == nil || !strings.Contains(err.Error(), "cannot bind "+s.Addr()) {
		t.Errorf("busy port: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yml")
	os.WriteFile(bad, []byte("tls_server_config:\n  cert_file: /nonexistent\n"), 0o600)
	if _, err := Listen("metrics", "127.0.0.1:0", h, bad, Options{}, log); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad web config: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}
