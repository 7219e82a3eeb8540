package engine

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseOwner(t *testing.T) {
	now := time.Now()
	h, err := parseOwner("n1/42/ab12", now)
	if err != nil || h.owner != "n1" || h.handle != 42 || h.boot != "ab12" || !h.since.Equal(now) {
		t.Fatalf("parseOwner: %+v %v", h, err)
	}
	for _, bad := range []string{"", "n1", "n1/42", "/42/b", "n1/0/b", "n1/-3/b", "n1/x/b", "n1/42/", "n1/42/b/c", "n1/99999999999999999999/b", "n1/+4/b", "n1/042/b"} {
		if _, err := parseOwner(bad, now); err == nil || !strings.Contains(err.Error(), ActorOwnerHeader) {
			t.Errorf("parseOwner(%q) = %v, want an error naming the header", bad, err)
		}
	}
}

// FuzzParseOwner: any header value gives an owner whose parts read back as the value, or an
// error; never a panic.
func FuzzParseOwner(f *testing.F) {
	for _, s := range []string{"n1/42/ab12", "w2/1/0011223344556677", "", "n1//b", "a/b/c/d", "n1/-1/x", "\xff/1/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseOwner(s, time.Time{})
		if err != nil {
			return
		}
		if h.handle <= 0 || h.owner == "" || h.boot == "" || strings.Contains(h.owner, "/") || strings.Contains(h.boot, "/") {
			t.Fatalf("parseOwner(%q) = %+v", s, h)
		}
		if back := h.owner + "/" + strconv.FormatInt(h.handle, 10) + "/" + h.boot; back != s {
			t.Fatalf("parseOwner(%q) reads back as %q", s, back)
		}
	})
}
