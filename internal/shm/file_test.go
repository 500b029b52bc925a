package shm

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/agaobs/agaobs/internal/testutil"
)

func TestEnsureDirModes(t *testing.T) {
	testutil.RequireRoot(t) // chown to a group
	base := t.TempDir()
	sticky := filepath.Join(base, "sticky")
	if err := EnsureDir(sticky, -1); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(sticky)
	if st.Mode()&(os.ModePerm|os.ModeSticky) != 0o777|os.ModeSticky {
		t.Errorf("sticky dir mode %v", st.Mode())
	}
	group := filepath.Join(base, "group")
	if err := EnsureDir(group, 4242); err != nil {
		t.Fatal(err)
	}
	st, _ = os.Stat(group)
	if st.Mode()&(os.ModePerm|os.ModeSetgid|os.ModeSticky) != 0o770|os.ModeSetgid || st.Sys().(*syscall.Stat_t).Gid != 4242 {
		t.Errorf("group dir mode %v gid %d", st.Mode(), st.Sys().(*syscall.Stat_t).Gid)
	}
	// Rings in a setgid directory are group-writable so the agent's group
	// can release space; elsewhere owner-only.
	for dir, want := range map[string]os.FileMode{sticky: 0o600, group: 0o660} {
		w, err := CreateWriter(dir, WriterOptions{Class: ClassHot, Capacity: 4096, Identity: Identity{Producer: "m"}})
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(w.Path())
		if st.Mode().Perm() != want {
			t.Errorf("%s: ring mode %v, want %v", dir, st.Mode().Perm(), want)
		}
		w.Close()
	}
	// An existing directory is left as its owner made it (producers must
	// not undo the agent's group setup).
	if err := os.Chmod(sticky, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := EnsureDir(sticky, -1); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(sticky); st.Mode().Perm() != 0o755 {
		t.Errorf("existing dir changed to %v", st.Mode())
	}
}

func TestCreateWriterAtomicRename(t *testing.T) {
	dir := t.TempDir()
	w, err := CreateWriter(dir, WriterOptions{Class: ClassAudit, Capacity: 4096, Instance: 3, Identity: Identity{Producer: "n"}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || !IsRingFileName(entries[0].Name()) {
		t.Fatalf("dir holds %v, want exactly the renamed ring", entries)
	}
	pid, ns, _, _ := ProcessInfo()
	if entries[0].Name() != ringFileName(pid, ns, 3, ClassAudit) {
		t.Errorf("name %s", entries[0].Name())
	}
	in, err := InspectRing(w.Path())
	if err != nil || in.Header.Class != ClassAudit || in.Stats.Written != 1 || in.Header.Identity.Producer != "n" {
		t.Fatalf("inspect %+v %v", in, err)
	}
}
