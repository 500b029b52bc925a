package reliability_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/audit"
	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

// Rings owned by another uid or writable by others are rejected, and the
// agent says so where an operator looks: the ring table with the reason
// and a ring_rejected record on the audit trail.
func TestUnsafeRingsRejectedAndReported(t *testing.T) {
	testutil.RequireRoot(t) // chown to another uid
	dir := t.TempDir()
	mk := func(name string, inst uint32) string {
		w, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassHot, Capacity: 4096, Instance: inst, Identity: shm.Identity{Producer: name}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		return w.Path()
	}
	foreign, open := mk("foreign", 1), mk("world-writable", 2)
	if err := os.Chown(foreign, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o666); err != nil {
		t.Fatal(err)
	}
	var db string
	a := inProcessAgent(t, dir, nil, func(c *config.Config) { db = c.AuditStoragePath })
	want := map[string]string{foreign: "is not the real uid", open: "writable by others"}
	testutil.Eventually(t, 30*time.Second, func() bool {
		n := 0
		for _, r := range a.Consumer().Rings() {
			if w, ok := want[r.Path]; ok && r.State == "rejected" && strings.Contains(r.Reason, w) {
				n++
			}
		}
		return n == 2
	}, "unsafe rings not rejected: %+v", a.Consumer().Rings())
	// The audit trail has both rejections once the writer commits.
	time.Sleep(300 * time.Millisecond)
	if st, err := audit.OpenBolt(db, audit.BoltOptions{ReadOnly: true, LockTimeout: 100 * time.Millisecond}); err == nil {
		st.Close()
		t.Fatal("the store opened read-only while the agent holds it")
	}
	var recs []audit.Record
	testutil.Eventually(t, 30*time.Second, func() bool {
		p, err := audit.QueryPage(a.AuditStore(), audit.Filter{Operation: "ring_rejected"})
		recs = p.Records
		return err == nil && len(recs) >= 2
	}, "ring_rejected records: %+v", recs)
	report(t, "rings owned by another uid or writable by others", "one ring chowned to uid 4242, one chmod 666",
		"both rejected with the reason in the ring table, and ring_rejected records on the audit trail")
}
