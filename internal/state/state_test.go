package state

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestPutGetSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "s.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	type v struct{ A int }
	if err := s.Put("b", "k", v{7}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("b", "gone", v{1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("b", "gone"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got v
	if ok, err := s.Get("b", "k", &got); !ok || err != nil || got.A != 7 {
		t.Fatalf("get = %v %v %+v", ok, err, got)
	}
	var keys []string
	_ = s.ForEach("b", func(k string, _ []byte) error { keys = append(keys, k); return nil })
	if len(keys) != 1 || keys[0] != "k" {
		t.Fatalf("keys %v", keys)
	}
	if ok, _ := s.Get("missing", "k", &got); ok {
		t.Fatal("missing bucket found")
	}
}

func TestLockedByAnother(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = Open(path, &Options{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, errLocked) {
		t.Fatalf("second open: %v, want errLocked", err)
	}
}

func TestNilStoreIsNoOp(t *testing.T) {
	s, err := Open("", nil)
	if s != nil || err != nil {
		t.Fatalf("Open(\"\") = %v, %v", s, err)
	}
	var x int
	if err := s.Put("b", "k", 1); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Get("b", "k", &x); ok || err != nil {
		t.Fatal("nil store returned data")
	}
	if s.Close() != nil || s.Path() != "" {
		t.Fatal("nil close/path")
	}
}

func TestReplace(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "s.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Put("b", "old", 1)
	if err := s.Replace("b", map[string]any{"x": 1, "y": 2}); err != nil {
		t.Fatal(err)
	}
	var keys []string
	s.ForEach("b", func(k string, _ []byte) error { keys = append(keys, k); return nil })
	if len(keys) != 2 || keys[0] != "x" || keys[1] != "y" {
		t.Fatalf("keys %v", keys)
	}
}
