package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
)

// decodeOne takes a body that is one JSON value and nothing else.
func TestDecodeOne_RefusesTrailingData(t *testing.T) {
	for _, tc := range []struct {
		body    string
		ok      bool
		trailer bool // refused for what follows the value
	}{
		{`{}`, true, false},
		{" \n{\"a\":1}\r\n\t ", true, false},
		{`{} {}`, false, true},
		{`{}}`, false, true},
		{`{}]`, false, true},
		{`{}x`, false, true},
		{`{} null`, false, true},
		{`{}` + "\x00", false, true},
		{`[1,2] 3`, false, true},
		{`"s""t"`, false, true},
		{`{`, false, false},
		{``, false, false},
		{`{"a":1,}`, false, false},
	} {
		var v any
		err := decodeOne([]byte(tc.body), &v)
		if (err == nil) != tc.ok {
			t.Errorf("decodeOne(%q) = %v, want ok=%v", tc.body, err, tc.ok)
			continue
		}
		if tc.trailer && !strings.Contains(err.Error(), "trailing data") {
			t.Errorf("decodeOne(%q) = %v, want it to name the trailing data", tc.body, err)
		}
		if err2 := decodeOne([]byte(tc.body), nil); (err2 == nil) != tc.ok {
			t.Errorf("decodeOne(%q, nil) = %v, want ok=%v", tc.body, err2, tc.ok)
		}
	}
}

// FuzzDecodeOne: a body is accepted exactly when it is one JSON value (json.Valid's rule), and
// one accepted decodes to what json.Unmarshal makes of it.
func FuzzDecodeOne(f *testing.F) {
	for _, s := range []string{`{}`, `{} {}`, `{}}`, `[1] ]`, `"a"`, `1 2`, ` null `, "{\"module\":\"m\"}\n{}", `{"a":[1,{"b":null}]}x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got any
		err := decodeOne(b, &got)
		if (err == nil) != json.Valid(b) {
			t.Fatalf("decodeOne(%q) = %v; json.Valid = %v", b, err, json.Valid(b))
		}
		if err != nil {
			return
		}
		var want any
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("json.Unmarshal(%q): %v", b, err)
		}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if !bytes.Equal(g, w) {
			t.Fatalf("decodeOne(%q) = %s, json.Unmarshal = %s", b, g, w)
		}
	})
}

// inlined renders what inline adds as gin renders it and returns the JSON.
func inlined(t testing.TB, k inlineKeys, b []byte, budget int) (gin.H, []byte, int) {
	out := gin.H{}
	left := budget
	inline(out, k, b, &left)
	enc, err := json.Marshal(out) // HTML-escaped, as gin's c.JSON
	if err != nil {
		t.Fatal(err)
	}
	return out, enc, budget - left
}

// Guest bytes are carried in a form that cannot grow past twice their size or the budget, and
// what is carried, with the count of what is dropped, gives back the guest's bytes.
func TestInline_FormsAndCap(t *testing.T) {
	nuls := make([]byte, 1<<20)
	for _, tc := range []struct {
		name   string
		b      []byte
		budget int
		key    string
	}{
		{"json", []byte(`{"a": [1, 2]}`), 1 << 20, "output"},
		{"json with html", []byte(`"<<<<<<<<"`), 1 << 20, "output_base64"},
		{"text", []byte("héllo\n\t\"world\" <b>"), 1 << 20, "output_text"},
		{"empty", nil, 1 << 20, "output_text"},
		{"nuls", nuls, 1 << 20, "output_base64"},
		{"nuls cut", nuls, 4096, "output_base64"},
		{"text cut", []byte(strings.Repeat("héllo ", 10000)), 1000, "output_text"},
		{"invalid utf-8", []byte("ok\xff\xfe"), 1 << 20, "output_base64"},
		{"control", []byte("bell\x07"), 1 << 20, "output_base64"},
		{"all angle brackets", bytes.Repeat([]byte("<"), 5000), 1 << 20, "output_base64"},
		{"budget too small", []byte("abc"), 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, enc, used := inlined(t, outputKeys, tc.b, tc.budget)
			// The fields' own size is what was taken from the budget, and within it.
			if used > tc.budget || used > 2*len(tc.b)+4 {
				t.Fatalf("used %d of %d for %d bytes", used, tc.budget, len(tc.b))
			}
			if len(enc) > used+len(`{"output_base64":,"output_dropped_bytes":12345678}`) {
				t.Fatalf("encoded %d bytes for a field of %d", len(enc), used)
			}
			var got struct {
				Output  json.RawMessage `json:"output"`
				Text    *string         `json:"output_text"`
				B64     []byte          `json:"output_base64"`
				Dropped int             `json:"output_dropped_bytes"`
			}
			if err := json.Unmarshal(enc, &got); err != nil {
				t.Fatal(err)
			}
			var back []byte
			switch tc.key {
			case "output":
				back = tc.b // compacted: checked for equality of value below
				var a, b any
				json.Unmarshal(got.Output, &a)
				json.Unmarshal(tc.b, &b)
				if ga, _ := json.Marshal(a); string(ga) != func() string { gb, _ := json.Marshal(b); return string(gb) }() {
					t.Fatalf("embedded %s, want %s", got.Output, tc.b)
				}
			case "output_text":
				if got.Text == nil {
					t.Fatalf("no output_text: %s", enc)
				}
				back = []byte(*got.Text)
			case "output_base64":
				if _, ok := out["output_base64"]; !ok {
					t.Fatalf("no output_base64: %.200s", enc)
				}
				back = got.B64
			case "":
				if got.Dropped != len(tc.b) {
					t.Fatalf("dropped %d, want all %d", got.Dropped, len(tc.b))
				}
				return
			}
			if len(back)+got.Dropped != len(tc.b) || !bytes.Equal(back, tc.b[:len(back)]) {
				t.Fatalf("carried %d bytes and %d dropped of %d, or not a prefix", len(back), got.Dropped, len(tc.b))
			}
			if tc.key == "output_text" && !utf8.Valid(back) {
				t.Fatal("text cut inside a rune")
			}
		})
	}
}

// FuzzInline: whatever the bytes and the budget, the fields fit the budget, never exceed twice
// the bytes (plus quotes and base64's padding), and give back a prefix of them with the count of the rest.
func FuzzInline(f *testing.F) {
	f.Add([]byte("hello"), 100)
	f.Add([]byte{0, 0, 0, '<', 0xe2, 0x80, 0xa8}, 9)
	f.Add([]byte(`{"a":"<&>"}`), 40)
	f.Fuzz(func(t *testing.T, b []byte, budget int) {
		if budget < 0 || budget > 1<<20 {
			return
		}
		out, enc, used := inlined(t, logKeys, b, budget)
		if used > budget || used > 2*len(b)+4 {
			t.Fatalf("used %d of %d for %d bytes", used, budget, len(b))
		}
		var got struct {
			Log     *string `json:"log"`
			B64     *string `json:"log_base64"`
			Dropped int     `json:"log_dropped_bytes"`
		}
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatal(err)
		}
		var back []byte
		switch {
		case got.Log != nil:
			back = []byte(*got.Log)
		case got.B64 != nil:
			var err error
			if back, err = base64.StdEncoding.DecodeString(*got.B64); err != nil {
				t.Fatal(err)
			}
		}
		if len(back)+got.Dropped != len(b) || !bytes.Equal(back, b[:len(back)]) {
			t.Fatalf("%v: carried %q + %d dropped, from %q", out, back, got.Dropped, b)
		}
	})
}
