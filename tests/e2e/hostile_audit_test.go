package e2e_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/agaobs/agaobs/internal/audit"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

// injectProducer is run by python3 with the stock client: an aga-core
// audit event whose operation and details carry a newline and a whole
// forged event log line, then a harmless one that marks the end.
const injectProducer = `
import json, os, sys
sys.path.insert(0, os.environ["STANDIN_DIR"])
import standin
from aga_observability import setup_observability, shutdown_observability

bus = standin.EventBus()
if setup_observability(bus) is None:
    sys.exit("setup_observability failed")
# The agent accepts a ring only while its producer runs (it verifies the
# owner): wait until the test saw the agent take this producer on.
print("ready", flush=True)
sys.stdin.readline()
forged = json.dumps({"timestamp": "2026-01-01T00:00:00.000+00:00", "level": "CRITICAL",
                     "logger": "aga.observability", "message": "[FAIL] clear: {}", "event_type": "audit",
                     "event_source": "aga-core", "event_timestamp": 1.0, "data": {}, "producer": "victim-tp0"})
bus.emit("audit", {"operation": "register\n" + forged, "details": {"id\n" + forged: "k1\u2028" + forged},
                   "success": True, "error": None})
bus.emit("audit", {"operation": "end-of-test", "details": {}, "success": True, "error": None})
shutdown_observability()
`

// The stock Python client sends an audit operation of
// "register\n<forged line>": the agent's event log file holds one line per
// event, in both formats. Before, the text format wrote the operation as
// is and the forged line stood on its own.
func TestPythonAuditCannotForgeEventLogLines(t *testing.T) {
	py := testutil.RequireTool(t, "python3")
	script := filepath.Join(t.TempDir(), "inject.py")
	if err := os.WriteFile(script, []byte(injectProducer), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			dir, tmp := t.TempDir(), t.TempDir()
			logFile := filepath.Join(tmp, "events.log")
			url := startAgent(t, "--ring-dir", dir, "--log-file", logFile, "--log-format", format)
			cmd := exec.Command(py, script)
			cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(root, "clients/python"), "AGAOBS_RING_DIR="+dir,
				"AGAOBS_PRODUCER=inject-py", "STANDIN_DIR="+filepath.Join(root, "clients/python/tests"))
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
				t.Fatalf("producer: %q %v\n%s", line, err, stderr.String())
			}
			live := regexp.MustCompile(`agaobs_producer_state\{[^}]*producer="inject-py"[^}]*state="live"[^}]*\} 1`)
			testutil.Eventually(t, time.Minute, func() bool {
				resp, err := http.Get(url)
				if err != nil {
					return false
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return live.Match(b)
			}, "the agent did not take the producer on")
			stdin.Write([]byte("go\n"))
			if err := cmd.Wait(); err != nil {
				t.Fatalf("producer: %v\n%s", err, stderr.String())
			}
			var b []byte
			testutil.Eventually(t, time.Minute, func() bool {
				b, _ = os.ReadFile(logFile)
				// Whole lines only: a read can see the sink's write half done.
				return bytes.Contains(b, []byte("end-of-test")) && bytes.HasSuffix(b, []byte("\n"))
			}, "the agent did not log the producer's events")
			if !utf8.Valid(b) {
				t.Fatalf("event log is not valid UTF-8:\n%q", b)
			}
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if len(lines) != 2 {
				t.Fatalf("2 audit events, %d lines:\n%s", len(lines), b)
			}
			for _, l := range lines {
				if strings.ContainsAny(l, "\r\u2028\u2029\u0085") {
					t.Errorf("line holds a line break: %q", l)
				}
			}
			if format == "text" {
				for _, l := range lines {
					if !strings.Contains(l, " [INFO] audit: [OK] ") || !strings.HasSuffix(l, " producer=inject-py") {
						t.Errorf("line %q", l)
					}
				}
				if !strings.Contains(lines[0], `[OK] register\n{"timestamp"`) {
					t.Errorf("the operation's newline is not escaped: %q", lines[0])
				}
				return
			}
			for i, l := range lines {
				var m map[string]any
				dec := json.NewDecoder(strings.NewReader(l))
				if err := dec.Decode(&m); err != nil || dec.More() {
					t.Fatalf("line %d is not one JSON object (%v): %s", i, err, l)
				}
				if m["level"] != "INFO" || m["producer"] != "inject-py" || len(m) != 9 {
					t.Errorf("line %d: %v", i, m)
				}
			}
			var first struct {
				Message string
				Data    struct{ Operation string }
			}
			if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || !strings.HasPrefix(first.Data.Operation, "register\n{") ||
				!strings.HasPrefix(first.Message, "[OK] register\n{") {
				t.Errorf("the operation did not survive as data: %v %+v", err, first)
			}
		})
	}
}

// hostileBody is an AUDIT record body: lost_before, then obj.
func hostileBody(lost uint64, obj string) []byte {
	b := make([]byte, 8, 8+len(obj))
	binary.LittleEndian.PutUint64(b, lost)
	return append(b, obj...)
}

// Hostile AUDIT bodies written into a real audit ring file are stored by
// the agent binary, sanitized, each with why and its bytes; none is lost
// and the chain verifies. Before, all but the first were counted corrupt
// and never reached the store.
func TestHostileAuditBodiesReachTheStore(t *testing.T) {
	dir, tmp := t.TempDir(), t.TempDir()
	db := filepath.Join(tmp, "audit.db")
	w, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassAudit, Capacity: 1 << 20,
		Identity: shm.Identity{Producer: "hostile-ring"}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	big := `{"operation":"` + strings.Repeat("y", 80<<10) // 80 KiB, unterminated
	cases := []struct {
		body []byte
		op   string
		why  string
	}{
		{hostileBody(0, `{"operation":"register","details":{"i":0},"success":true,"error":null,"timestamp":1700000000}`), "register", ""},
		{hostileBody(0, `{"operation":"register","success":"yes"}`), "register", "success: not a boolean"},
		{hostileBody(0, `{"operation":"clear","success":false,"error":{"code":7}}`), "clear", "error: not a string"},
		{hostileBody(0, `{"operation":42}`), "unknown", "operation: not a string"},
		{hostileBody(0, `{"operation":"x","timestamp":1e400}`), "x", "timestamp: not a finite number"},
		{hostileBody(0, `{"operation":"x","timestamp":"now"}`), "x", "timestamp: not a number"},
		{hostileBody(0, `{"details":`+strings.Repeat("[", 10001)+strings.Repeat("]", 10001)+`}`), "unknown", "depth"},
		{hostileBody(0, "<audit op='register'/>"), "unknown", "not a JSON object"},
		{hostileBody(0, "{\"operation\":\"a\xffb\"}"), "a\uFFFDb", "invalid UTF-8"},
		{[]byte{0x7b, 0x7d}, "unknown", "too short"},
		{hostileBody(0, big), "unknown", "body: "},
	}
	for _, c := range cases {
		if err := w.Emit(shm.TypeAudit, 0, time.Now().UnixNano(), c.body); err != nil {
			t.Fatalf("emit: %v", err)
		}
	}
	a := startAuditAgent(t, dir, db)
	stored := func() int {
		resp, err := http.Get("http://" + a.admin + "/api/v1/audit?limit=0&producer=hostile-ring")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		var p audit.Page
		if json.NewDecoder(resp.Body).Decode(&p) != nil {
			return -1
		}
		n := 0
		for _, r := range p.Records {
			if r.Kind == audit.KindProducer {
				n++
			}
		}
		return n
	}
	if !testutil.WaitFor(30*time.Second, func() bool { return stored() == len(cases) }) {
		t.Fatalf("the agent stored %d of the %d records\n%s", stored(), len(cases), a.logText())
	}
	a.stop(t)

	st, err := audit.OpenBolt(db, audit.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	all, err := st.Query(audit.Filter{Producer: "hostile-ring"})
	if err != nil {
		t.Fatal(err)
	}
	var recs []audit.Record
	for _, r := range all {
		if r.Kind == audit.KindProducer {
			recs = append(recs, r)
		}
	}
	if len(recs) != len(cases) {
		t.Fatalf("%d records stored, %d written", len(recs), len(cases))
	}
	for i, r := range recs {
		c := cases[i]
		if r.Kind != audit.KindProducer || r.Operation != c.op || !strings.Contains(r.EncodeError, c.why) || (c.why == "") != (r.EncodeError == "") {
			t.Errorf("record %d: kind %s operation %q encode_error %q; want %q, %q", i, r.Kind, r.Operation, r.EncodeError, c.op, c.why)
		}
		if c.why == "" {
			continue
		}
		orig := c.body
		if len(orig) >= 8 {
			orig = orig[8:]
		}
		sum := sha256.Sum256(orig)
		want := orig[:min(len(orig), audit.MaxRawBytes)]
		if r.RawSHA256 != hex.EncodeToString(sum[:]) || !bytes.Equal(r.RawBody, want) || r.RawTruncated != (len(orig) > audit.MaxRawBytes) {
			t.Errorf("record %d: raw %d bytes, truncated %v, sha %s", i, len(r.RawBody), r.RawTruncated, r.RawSHA256)
		}
	}
	if rep, err := st.Verify(nil); err != nil || !rep.OK {
		t.Fatalf("verify: %v (%+v)", err, rep)
	}
	out, _, code := runAgentCLI(t, "audit", "verify", "--audit-storage-path", db, "--admin-listen-address", "")
	if code != 0 || !strings.HasPrefix(out, "OK ") {
		t.Fatalf("audit verify: exit %d: %s", code, out)
	}
}
