package conformance

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/plugins"
)

// buildExample builds the worked example of an SDK's README and returns the module.
func buildExample(t testing.TB, lang string) []byte {
	t.Helper()
	var path string
	switch lang {
	case "c":
		path = guestbuild.C(t, "../c/example")
	case "rust":
		path = guestbuild.Rust(t, "../rust/example")
	case "assemblyscript":
		path = guestbuild.AssemblyScript(t, "../assemblyscript/example")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The worked example in each SDK's README builds and does what the README says.
func TestSDKExamples_DoWhatTheREADMEsSay(t *testing.T) {
	ctx := context.Background()
	eng := newConformance(t).eng
	for _, lang := range []string{"c", "rust", "assemblyscript"} {
		t.Run(lang, func(t *testing.T) {
			m, err := eng.Modules().Add(ctx, buildExample(t, lang), plugins.AddOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct{ fn, in, want string }{
				{"sum", `{"a": 1, "b": 2}`, "3"},
				{"upper", "hello", "HELLO"},
				{"report", "hello", `{"upper":"HELLO","total":16}`},
			} {
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				res, err := eng.Tasks().Call(cctx, engine.CallRequest{Module: m.Digest, Function: c.fn, Input: []byte(c.in), Job: "example", Grants: grants})
				cancel()
				if err != nil {
					t.Fatalf("%s(%s): %v", c.fn, c.in, err)
				}
				if string(res.Output) != c.want {
					t.Errorf("%s(%s) = %s, want %s", c.fn, c.in, res.Output, c.want)
				}
			}
		})
	}
}
