package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestUICommand: `ui` prints the live view's URL, whether an agent
// answers there, and the ssh and kubectl lines to reach it; without an
// admin listener it is a usage error.
func TestUICommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ui/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}()
	t.Setenv("POD_NAME", "")
	cases := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"serving", []string{"ui", "--admin-listen-address", "0.0.0.0:" + port, "--node-name", "gpu-17"}, 0, []string{
			"Live view: http://127.0.0.1:" + port + "/ui/",
			"an agent serves it (text/html",
			"ssh -L " + port + ":127.0.0.1:" + port + " gpu-17",
			"--field-selector spec.nodeName=gpu-17 -o name)\" " + port + ":" + port}},
		{"nobody there", []string{"ui", "--admin-listen-address", free}, 0, []string{"no agent answers there now"}},
		{"no admin listener", []string{"ui", "--admin-listen-address", ""}, 2, []string{"admin_listen_address is empty"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errb := runCLI(t, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, c.code, out, errb)
			}
			for _, w := range c.want {
				if !strings.Contains(out+errb, w) {
					t.Errorf("output lacks %q:\n%s%s", w, out, errb)
				}
			}
		})
	}
	// In a pod, the kubectl line names it.
	t.Setenv("POD_NAME", "agaobs-agent-x7k2p")
	t.Setenv("POD_NAMESPACE", "observability")
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
	_, out, _ := runCLI(t, "ui", "--admin-listen-address", "127.0.0.1:"+port)
	if !strings.Contains(out, "kubectl -n observability port-forward pod/agaobs-agent-x7k2p "+port+":"+port) {
		t.Errorf("in a pod:\n%s", out)
	}
}
