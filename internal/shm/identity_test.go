package shm

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// An identity (HELLO body or header JSON) over maxIdentityLen bytes is
// corrupt; this is what kept a 400 KB label value out of /metrics.
func TestParseIdentityCap(t *testing.T) {
	huge := `{"producer":"p","model":"` + strings.Repeat("m", 400<<10) + `"}`
	if _, err := ParseIdentity([]byte(huge)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("400 KB identity: %v, want ErrCorrupt", err)
	}
	pad := func(n int) []byte {
		b := []byte(`{"producer":"p","model":"`)
		rest := n - len(b) - len(`"}`)
		b = append(b, strings.Repeat("m", rest)...)
		return append(b, `"}`...)
	}
	if _, err := ParseIdentity(pad(maxIdentityLen)); err != nil {
		t.Fatalf("identity of exactly %d bytes: %v", maxIdentityLen, err)
	}
	if _, err := ParseIdentity(pad(maxIdentityLen + 1)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("identity of %d bytes: %v, want ErrCorrupt", maxIdentityLen+1, err)
	}
}

// Every string field is valid UTF-8 and at most MaxIdentityField bytes,
// cut at a rune boundary.
func TestParseIdentitySanitizes(t *testing.T) {
	// "é" is 2 bytes: 255 ASCII bytes then "é" puts a rune across byte 256.
	across := strings.Repeat("a", MaxIdentityField-1) + "é" + "tail"
	long := strings.Repeat("z", 1000)
	body := `{"producer":"` + across + `","role":"` + long + `","model":"bad` + "\xff\xfe" + `bytes","pod":"ok",` +
		`"device":"` + strings.Repeat("€", 100) + `"}`
	id, err := ParseIdentity([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if id.Producer != strings.Repeat("a", MaxIdentityField-1) {
		t.Errorf("producer cut inside a rune: %q (%d bytes)", id.Producer, len(id.Producer))
	}
	if id.Role != long[:MaxIdentityField] {
		t.Errorf("role is %d bytes, want %d", len(id.Role), MaxIdentityField)
	}
	if id.Model != "bad\uFFFD\uFFFDbytes" && id.Model != "bad\uFFFDbytes" {
		t.Errorf("model %q: invalid bytes not replaced by U+FFFD", id.Model)
	}
	if id.Pod != "ok" {
		t.Errorf("pod %q", id.Pod)
	}
	// 100 × 3-byte "€" = 300 bytes: 85 whole runes fit in 256 bytes.
	if id.Device != strings.Repeat("€", 85) {
		t.Errorf("device %q (%d bytes)", id.Device, len(id.Device))
	}
	for _, s := range []string{id.Producer, id.Role, id.Model, id.Device, id.Pod} {
		if !utf8.ValidString(s) || len(s) > MaxIdentityField {
			t.Errorf("field %q: valid %v, %d bytes", s, utf8.ValidString(s), len(s))
		}
	}
}

func TestClampIdentityField(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"a\xffb", "a\uFFFDb"},
		{strings.Repeat("x", 300), strings.Repeat("x", MaxIdentityField)},
		// The replacement rune itself must not be cut: 254 bytes + 3-byte U+FFFD.
		{strings.Repeat("x", 254) + "\xff", strings.Repeat("x", 254)},
		{strings.Repeat("x", 253) + "\xff", strings.Repeat("x", 253) + "\uFFFD"},
		{strings.Repeat("x", 255) + "😀", strings.Repeat("x", 255)},
	} {
		if got := clampIdentityField(tc.in); got != tc.want {
			t.Errorf("clamp(%q…) = %q…, want %q…", trunc(tc.in), trunc(got), trunc(tc.want))
		}
	}
}

func trunc(s string) string {
	if len(s) > 8 {
		return s[len(s)-8:]
	}
	return s
}

// The header's identity goes through the same checks: a producer name
// cut and made valid, whatever the raw bytes.
func TestHeaderIdentitySanitized(t *testing.T) {
	_, _, buf := newTestPair(t, ClassHot, 4096, nil)
	raw := []byte(`{"producer":"` + strings.Repeat("n", 400) + "\xff" + `","instance":0,"schema_version":1}`)
	copy(buf[identityOffset:], raw)
	binary.LittleEndian.PutUint32(buf[offIdentityLen:], uint32(len(raw)))
	h, err := parseHeader(buf[:HeaderSize], -1)
	if err != nil {
		t.Fatal(err)
	}
	if h.Identity.Producer != strings.Repeat("n", MaxIdentityField) {
		t.Errorf("header producer %d bytes", len(h.Identity.Producer))
	}
}
