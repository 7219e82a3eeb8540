package dag

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// workflowFiles are the workflows of testdata, without the sidecar files of outputs.
func workflowFiles(t testing.TB) []string {
	all, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range all {
		if !strings.HasSuffix(f, ".outputs.json") {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		t.Fatal("no workflows in testdata")
	}
	return out
}

// TestGolden compiles each testdata/NAME.json and compares the plan, or the errors, with
// NAME.golden. When NAME.outputs.json gives what each step returns (for a map step, an array of
// what each call returns), the golden file also holds the input of every call and the result of
// a run driven by Ready.
func TestGolden(t *testing.T) {
	for _, file := range workflowFiles(t) {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			got := goldenText(t, src, strings.TrimSuffix(file, ".json")+".outputs.json")
			golden := strings.TrimSuffix(file, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

func goldenText(t *testing.T, src []byte, outputsFile string) string {
	w, err := Parse(src)
	if err != nil {
		return "parse errors:\n" + err.Error() + "\n"
	}
	p, err := Compile(w, catalog)
	if err != nil {
		return "compile errors:\n" + err.Error() + "\n"
	}
	text := p.String()
	given, err := os.ReadFile(outputsFile)
	if os.IsNotExist(err) {
		return text
	}
	if err != nil {
		t.Fatal(err)
	}
	return text + "\nrun:\n" + run(t, p, given)
}

// run executes p one ready step at a time with the outputs given, and writes each call's input
// and the workflow's result.
func run(t *testing.T, p *Plan, given []byte) string {
	var results map[string]json.RawMessage
	if err := json.Unmarshal(given, &results); err != nil {
		t.Fatal(err)
	}
	decode := func(s *Step, raw json.RawMessage) []byte {
		if s.Output != "bytes" {
			return raw
		}
		var b string
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Fatalf("%s: bytes outputs are given as strings: %v", s.ID, err)
		}
		return []byte(b)
	}
	show := func(s *Step, in []byte) string {
		if s.Input == "bytes" {
			return fmt.Sprintf("%q", in)
		}
		return string(in)
	}
	var b bytes.Buffer
	outputs := map[string][]byte{}
	done := map[string]bool{}
	for ready := p.Ready(done); len(ready) > 0; ready = p.Ready(done) {
		s := ready[0]
		raw, ok := results[s.ID]
		if !ok {
			t.Fatalf("no output given for step %s", s.ID)
		}
		if s.Map == nil {
			in, err := s.RenderInput(outputs, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s <- %s\n", s.ID, show(s, in))
			outputs[s.ID] = decode(s, raw)
		} else {
			items, err := s.Items(outputs)
			if err != nil {
				t.Fatal(err)
			}
			var each []json.RawMessage
			if err := json.Unmarshal(raw, &each); err != nil || len(each) != len(items) {
				t.Fatalf("%s: want an array of %d outputs: %v", s.ID, len(items), err)
			}
			var outs [][]byte
			for i, it := range items {
				in, err := s.RenderInput(outputs, it, i)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&b, "%s[%d] <- %s\n", s.ID, i, show(s, in))
				outs = append(outs, decode(s, each[i]))
			}
			if len(items) == 0 {
				fmt.Fprintf(&b, "%s: no elements\n", s.ID)
			}
			if outputs[s.ID], err = s.Join(outs); err != nil {
				t.Fatal(err)
			}
		}
		done[s.ID] = true
	}
	if len(done) != len(p.Steps) {
		t.Fatalf("ran %d of %d steps", len(done), len(p.Steps))
	}
	out, err := p.Output.Render(outputs, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "output = %s\n", out)
	return b.String()
}
