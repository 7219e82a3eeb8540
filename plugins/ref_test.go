package plugins

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	hex := strings.Repeat("0123456789abcdef", 4)
	for _, c := range []struct {
		in   string
		want Ref
	}{
		{"sha256:" + hex, Ref{Digest: "sha256:" + hex}},
		{"wordcount", Ref{Name: "wordcount"}},
		{"word_count-2", Ref{Name: "word_count-2"}},
		{"0", Ref{Name: "0"}},
		{"wc@1.2.3", Ref{Name: "wc", Version: "1.2.3"}},
		{"wc@0.0.0-rc.1", Ref{Name: "wc", Version: "0.0.0-rc.1"}},
		{"wc@10.20.30-alpha-1.x-y.0", Ref{Name: "wc", Version: "10.20.30-alpha-1.x-y.0"}},
	} {
		got, err := ParseRef(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
		if got.String() != c.in {
			t.Errorf("ParseRef(%q).String() = %q", c.in, got.String())
		}
	}
	for _, in := range []string{
		"", "@1.0.0", "wc@", "wc@1", "wc@1.2", "wc@1.2.3.4", "wc@v1.2.3", "wc@01.2.3", "wc@1.02.3",
		"wc@1.2.03", "wc@1.2.3-", "wc@1.2.3-01", "wc@1.2.3-a..b", "wc@1.2.3+build", "wc@1.2.3-a+b",
		"wc@1.2.3@4", "wc@18446744073709551616.0.0", "wc@1.2.3-é", "Wc", "_wc", "-wc", "w.c", "w/c",
		"w c", strings.Repeat("a", 65), "wc@1.0.0-" + strings.Repeat("a", MaxVersionLen),
		"sha256:", "sha256:" + hex[:63], "sha256:" + hex + "0", "sha256:" + strings.ToUpper(hex),
		"sha256:" + hex[:63] + "g", "sha512:" + hex,
	} {
		if got, err := ParseRef(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseRef(%q) = %+v, %v; want ErrInvalid", in, got, err)
		}
	}
}

// TestVersion_Precedence checks the order semver 2.0.0 §11 gives as its example, and more.
func TestVersion_Precedence(t *testing.T) {
	ordered := []string{
		"0.0.0", "0.0.1", "0.1.0", "0.9.9", "1.0.0-0", "1.0.0-2", "1.0.0-10", "1.0.0-alpha",
		"1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
		"1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0-rc.1", "2.0.0",
		"18446744073709551615.0.0",
	}
	for i, a := range ordered {
		for j, b := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := compareVersions(a, b); got != want {
				t.Errorf("compare(%s, %s) = %d, want %d", a, b, got, want)
			}
		}
	}
}
