// Package crosslang_test checks that rings written by the Python and C
// producers decode in the Go consumer to exactly the events they emitted
// (clients/python/tests/crosslang_producer.py, clients/c/test/emit_known.c).
package crosslang_test

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

const root = "../.."

type producerOut struct {
	PID   int    `json:"pid"`
	Hot   string `json:"hot"`
	Audit string `json:"audit"`
}

// readAll decodes every record of a ring file.
func readAll(t *testing.T, path string) ([]pipeline.Event, shm.Stats, *shm.Header) {
	t.Helper()
	r, _, err := shm.OpenRing(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var evs []pipeline.Event
	for {
		res, err := r.Poll(1000, func(rec *shm.Record) shm.Disposition {
			var ev pipeline.Event
			if err := pipeline.Decode(rec, &ev); err != nil {
				t.Errorf("record %d (%v): %v", rec.Seq, rec.Type, err)
				return shm.Corrupt
			}
			evs = append(evs, ev)
			return shm.Done
		})
		if err != nil {
			t.Fatal(err)
		}
		if !res.More {
			break
		}
	}
	r.Finish()
	h := *r.Header()
	return evs, r.Stats(), &h
}

// checkKnown asserts the sequence both producers emit.
func checkKnown(t *testing.T, out producerOut, producer string) {
	t.Helper()
	hot, hs, hh := readAll(t, out.Hot)
	audit, as, _ := readAll(t, out.Audit)
	if hh.Identity.Producer != producer {
		t.Errorf("producer name %q, want %q", hh.Identity.Producer, producer)
	}
	if hs.State != shm.StateClosed || as.State != shm.StateClosed {
		t.Errorf("rings not closed: %v %v", hs.State, as.State)
	}
	if hs.Lost != 0 || hs.Corrupt != 0 || as.Lost != 0 || as.Corrupt != 0 || hs.Dropped != 0 || as.Dropped != 0 {
		t.Errorf("hot %+v audit %+v", hs, as)
	}
	var fwd []pipeline.Event
	var ret []*pipeline.Retrieval
	var other []*pipeline.Other
	for _, ev := range hot {
		switch ev.Kind {
		case pipeline.KindForward:
			fwd = append(fwd, ev)
		case pipeline.KindRetrieval:
			ret = append(ret, ev.Retrieval)
		case pipeline.KindEvent:
			other = append(other, ev.Other)
		}
		if ev.TimeNs <= 0 {
			t.Errorf("event without time: %+v", ev)
		}
	}
	if len(fwd) != 10 {
		t.Fatalf("%d forward events, want 10", len(fwd))
	}
	for i, ev := range fwd {
		f := ev.Forward
		want := pipeline.Forward{}.WithGate(float64(i) / 10).WithEntropy(float64(i) / 4).WithLatency(100 + float64(i)).
			WithLayer(int32(i % 3)).WithApplied(i%2 == 0)
		if f != want {
			t.Errorf("forward %d = %+v, want %+v", i, f, want)
		}
	}
	if len(ret) != 2 {
		t.Fatalf("%d retrieval events, want 2", len(ret))
	}
	r0, r1 := ret[0], ret[1]
	counts := func(r *pipeline.Retrieval) [4]int32 {
		l, _ := r.LayerIdx()
		n, _ := r.ResultsCount()
		i, _ := r.InjectedCount()
		b, _ := r.BudgetRemaining()
		return [4]int32{l, n, i, b}
	}
	if counts(r0) != [4]int32{0, 5, 3, 7} ||
		strings.Join(r0.IDs, ",") != "a,b,c" || len(r0.Scores) != 3 || math.Abs(r0.Scores[0]-0.9) > 1e-12 || r0.Scores[2] != 0.7 {
		t.Errorf("retrieval 0 = %+v", r0)
	}
	if c := counts(r1); c[1] != 1 || c[2] != 0 || len(r1.IDs) != 0 || len(r1.Scores) != 0 {
		t.Errorf("retrieval 1 = %+v", r1)
	}
	if len(other) != 1 || other[0].Name != "custom" {
		t.Fatalf("other events %+v", other)
	}
	var data map[string]any
	if err := json.Unmarshal(other[0].Data, &data); err != nil || data["x"] != 1.0 || data["y"] != "z" {
		t.Errorf("custom event data %s", other[0].Data)
	}
	var ops []string
	for _, ev := range audit {
		if ev.Kind != pipeline.KindAudit {
			continue
		}
		a := ev.Audit
		ops = append(ops, a.Operation)
		if !a.Success || a.Error != nil || a.Timestamp <= 0 || a.LostBefore != 0 {
			t.Errorf("audit %+v", a)
		}
		var d map[string]any
		if err := json.Unmarshal(a.Details, &d); err != nil {
			t.Errorf("audit details %s: %v", a.Details, err)
		}
		switch a.Operation {
		case "register":
			md, _ := d["metadata"].(map[string]any)
			if d["id"] != "k1" || d["reliability"] != 0.9 || d["pinned"] != false || d["store_count"] != 1.0 || md["source"] != "xlang" {
				t.Errorf("register details %v", d)
			}
		case "unregister":
			if d["id"] != "k1" || d["store_count"] != 0.0 {
				t.Errorf("unregister details %v", d)
			}
		case "clear":
			if v, ok := d["namespace"]; !ok || v != nil || d["store_count"] != 0.0 {
				t.Errorf("clear details %v", d)
			}
		}
	}
	if strings.Join(ops, ",") != "register,unregister,clear" {
		t.Errorf("audit operations %v", ops)
	}
}

func runProducer(t *testing.T, cmd *exec.Cmd) producerOut {
	t.Helper()
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	var out producerOut
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("producer output %q: %v", b, err)
	}
	return out
}

func TestPythonProducer(t *testing.T) {
	py := testutil.RequireTool(t, "python3")
	dir := t.TempDir()
	cmd := exec.Command(py, filepath.Join(root, "clients/python/tests/crosslang_producer.py"))
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(root, "clients/python"), "AGAOBS_RING_DIR="+dir, "AGAOBS_PRODUCER=xlang-py")
	cmd.Stderr = os.Stderr
	checkKnown(t, runProducer(t, cmd), "xlang-py")
}

func TestCProducer(t *testing.T) {
	cc := testutil.RequireTool(t, "gcc")
	bin := filepath.Join(t.TempDir(), "emit_known")
	build := exec.Command(cc, "-std=c11", "-O2", "-Wall", "-Werror", "-pthread", "-I", filepath.Join(root, "clients/c/include"),
		"-o", bin, filepath.Join(root, "clients/c/test/emit_known.c"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build emit_known: %v\n%s", err, out)
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, dir)
	cmd.Stderr = os.Stderr
	checkKnown(t, runProducer(t, cmd), "xlang-c")
}
