package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/plugins"
	"github.com/lumenflow/lumen/sdk/abi"
)

// languages are the guests, in the order results are compared: Go's is the reference.
var languages = []string{"go", "c", "rust", "assemblyscript"}

// buildCache holds each language's module, built once per test binary run.
var buildCache struct {
	sync.Mutex
	wasm map[string][]byte
}

// guest builds (once) and returns the conformance guest of lang.
func guest(t testing.TB, lang string) []byte {
	t.Helper()
	buildCache.Lock()
	defer buildCache.Unlock()
	if b, ok := buildCache.wasm[lang]; ok {
		return b
	}
	guestbuild.TrackSources(t, sources[lang]...)
	start := time.Now()
	var path string
	switch lang {
	case "go":
		path = guestbuild.Go(t, "go")
	case "c":
		path = guestbuild.C(t, "c")
	case "rust":
		path = guestbuild.Rust(t, "rust")
	case "assemblyscript":
		path = guestbuild.AssemblyScript(t, "assemblyscript")
	default:
		t.Fatalf("unknown language %q", lang)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built the %s guest in %v: %d bytes", lang, time.Since(start).Round(time.Millisecond), len(b))
	if buildCache.wasm == nil {
		buildCache.wasm = map[string][]byte{}
	}
	buildCache.wasm[lang] = b
	return b
}

// sources are the files each guest is built from, relative to this package.
var sources = map[string][]string{
	"go":             {"go", "../go", "../abi"},
	"c":              {"c", "../c"},
	"rust":           {"rust/src", "rust/Cargo.toml", "../rust/src", "../rust/Cargo.toml"},
	"assemblyscript": {"assemblyscript", "../assemblyscript/assembly", "../assemblyscript/package.json"},
}

// conformance is an engine with every language's guest registered.
type conformance struct {
	eng    *engine.Engine
	digest map[string]string
}

// shared is the engine every test of this binary uses, so that each guest is compiled once.
var shared struct {
	sync.Mutex
	c   *conformance
	dir string
}

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Lock()
	if shared.c != nil {
		shared.c.eng.Close(context.Background())
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	shared.Unlock()
	os.Exit(code)
}

// newConformance returns the shared engine, opening it and registering the guests on first use.
func newConformance(t testing.TB) *conformance {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if shared.c != nil {
		return shared.c
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "lumen-conformance-")
	if err != nil {
		t.Fatal(err)
	}
	shared.dir = dir
	eng, err := engine.Open(ctx, engine.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c := &conformance{eng: eng, digest: map[string]string{}}
	for _, lang := range languages {
		m, err := eng.Modules().Add(ctx, guest(t, lang), plugins.AddOptions{Name: "conformance-" + lang, Version: "1.0.0"})
		if err != nil {
			eng.Close(ctx)
			t.Fatalf("register the %s guest: %v", lang, err)
		}
		c.digest[lang] = m.Digest
	}
	shared.c = c
	return c
}

// outcome is what a call did, reduced to what every language must agree on.
type outcome struct {
	Output  string
	Kind    abi.ErrorKind
	Limit   string
	Code    string
	Message string
}

func (o outcome) String() string {
	if o.Kind == "" {
		return fmt.Sprintf("output %q", o.Output)
	}
	return fmt.Sprintf("%s limit=%q code=%q message=%q", o.Kind, o.Limit, o.Code, o.Message)
}

var grants = host.Grants{Capabilities: []abi.Capability{abi.CapObjects, abi.CapTasks, abi.CapActors, abi.CapTensors}}

func (c *conformance) call(t *testing.T, lang, fn string, in []byte, limits host.Limits) (outcome, *host.Result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := c.eng.Tasks().Call(ctx, engine.CallRequest{
		Module: c.digest[lang], Function: fn, Input: in,
		Job: "conformance", Grants: grants, Limits: limits,
	})
	if err == nil {
		return outcome{Output: string(res.Output)}, res
	}
	var ae *abi.Error
	if !errors.As(err, &ae) {
		t.Fatalf("%s %s: error %v (%T) is not an *abi.Error", lang, fn, err, err)
	}
	o := outcome{Kind: ae.Kind, Limit: ae.Limit, Code: ae.Code, Message: ae.Message}
	if ae.Kind == abi.KindTrap || ae.Kind == abi.KindLimit {
		o.Message = "" // worded by the runtime, not the SDK
	}
	return o, res
}

func TestConformance_SameResultsInEveryLanguage(t *testing.T) {
	c := newConformance(t)
	cases := []struct {
		name, fn string
		input    string
		limits   host.Limits
		want     outcome
		// check, when set, judges the outcome instead of want (all languages must still agree).
		check func(t *testing.T, o outcome, res *host.Result)
	}{
		{name: "echo bytes", fn: "echo", input: "hello\x00\xff bytes", want: outcome{Output: "hello\x00\xff bytes"}},
		{name: "echo empty", fn: "echo", input: "", want: outcome{Output: ""}},
		{name: "json in and out", fn: "add", input: `{"a": 40, "b": 2}`, want: outcome{Output: "42"}},
		{name: "json string and log", fn: "greet", input: `{"name": "Ada \u003c\u0026\u003e \"q\" \u00e9"}`,
			check: func(t *testing.T, o outcome, res *host.Result) {
				const want = `"hello, Ada \u003c\u0026\u003e \"q\" é"`
				if o.Output != want || !bytes.Contains(res.Log, []byte(`greeting Ada <&> "q" é`)) {
					t.Errorf("got %v, log %q; want output %s and a log line `greeting Ada <&> \"q\" é`", o, res.Log, want)
				}
			}},
		{name: "guest error", fn: "fail", want: outcome{Kind: abi.KindGuest, Code: "E_CONF", Message: "conformance failure"}},
		{name: "trap", fn: "trap", want: outcome{Kind: abi.KindTrap}},
		{name: "nested task", fn: "nested", input: "nested bytes", want: outcome{Output: "nested bytes"}},
		{name: "nested task fails", fn: "nested_fail",
			want: outcome{Kind: abi.KindGuest, Message: "lumen: guest_error: conformance failure"}},
		{name: "actor counter", fn: "counter", want: outcome{Output: "3"}},
		{name: "object round trip", fn: "objects", input: "object\x00bytes", want: outcome{Output: "object\x00bytes"}},
		{name: "tensors", fn: "tensors", want: outcome{Output: `{"c":[19,22,43,50],"grad":[11,15,11,15]}`}},
		{name: "host error surfaces", fn: "missing",
			check: func(t *testing.T, o outcome, _ *host.Result) {
				if o.Kind != abi.KindGuest || !strings.HasPrefix(o.Message, "lumen: not_found: ") {
					t.Errorf("got %v; want a guest error whose message starts \"lumen: not_found: \"", o)
				}
			}},
		{name: "deadline", fn: "loop", limits: host.Limits{Timeout: 300 * time.Millisecond},
			want: outcome{Kind: abi.KindLimit, Limit: abi.LimitDeadline}},
		{name: "memory limit", fn: "grow", limits: host.Limits{MemoryPages: 1024},
			want: outcome{Kind: abi.KindLimit, Limit: abi.LimitMemory}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ref outcome
			for i, lang := range languages {
				o, res := c.call(t, lang, tc.fn, []byte(tc.input), tc.limits)
				t.Logf("%-14s %v", lang, o)
				if tc.check != nil {
					tc.check(t, o, res)
				} else if o != tc.want {
					t.Errorf("%s: got %v, want %v", lang, o, tc.want)
				}
				if i == 0 {
					ref = o
				} else if o != ref {
					t.Errorf("%s differs from %s: %v vs %v", lang, languages[0], o, ref)
				}
			}
		})
	}
}

// Every guest declares the same functions, kinds and encodings.
func TestConformance_ManifestsAgree(t *testing.T) {
	c := newConformance(t)
	var ref []string
	for i, lang := range languages {
		m, err := c.eng.Modules().Registry().Resolve(c.digest[lang])
		if err != nil {
			t.Fatal(err)
		}
		var fns []string
		for _, f := range m.Manifest.Functions {
			in, out := f.Input, f.Output
			if in == "" {
				in = abi.EncJSON
			}
			if out == "" {
				out = abi.EncJSON
			}
			fns = append(fns, fmt.Sprintf("%s %s %s %s->%s", f.Name, f.Kind, f.Actor, in, out))
		}
		slices.Sort(fns)
		if i == 0 {
			ref = fns
			continue
		}
		if strings.Join(fns, "\n") != strings.Join(ref, "\n") {
			t.Errorf("%s manifest functions differ from %s:\n%s\nvs\n%s", lang, languages[0],
				strings.Join(fns, "\n"), strings.Join(ref, "\n"))
		}
	}
}

// A module built for another ABI version is refused at upload, both versions named, whatever
// language it was written in.
func TestConformance_OtherABIVersionRefused(t *testing.T) {
	ctx := context.Background()
	eng := newConformance(t).eng
	for _, lang := range languages {
		wasm := guest(t, lang)
		// The marker export's name, "lumen_abi_v1", becomes "lumen_abi_v2": same length, so the
		// module stays well formed.
		v2 := bytes.ReplaceAll(wasm, []byte(abi.ExportVersionMarker), []byte("lumen_abi_v2"))
		if bytes.Equal(v2, wasm) {
			t.Fatalf("%s: no %q in the module", lang, abi.ExportVersionMarker)
		}
		_, err := eng.Modules().Add(ctx, v2, plugins.AddOptions{})
		if err == nil || !strings.Contains(err.Error(), "ABI v2") || !strings.Contains(err.Error(), "ABI v1") {
			t.Errorf("%s: upload of a v2 module: err = %v, want both ABI v2 and ABI v1 named", lang, err)
		}
	}
}

// BenchmarkDispatch measures one call of a task that echoes its empty input, through the engine
// and a warm pooled instance: the per-call overhead of each SDK's dispatch on top of the host's.
func BenchmarkDispatch(b *testing.B) {
	for _, lang := range languages {
		b.Run(lang, func(b *testing.B) {
			c := newConformance(b)
			ctx := context.Background()
			req := engine.CallRequest{Module: c.digest[lang], Function: "echo", Job: "bench", Grants: grants}
			if _, err := c.eng.Tasks().Call(ctx, req); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.eng.Tasks().Call(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
