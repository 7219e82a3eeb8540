package dag

import (
	"strings"
	"sync"
	"testing"
)

const digestBase = `{"version": 1, "name": "wc", "steps": [
	{"id": "split", "module": "wordcount@1.0.0", "function": "split", "args": {"text": "abc", "n": 4}},
	{"id": "count", "module": "wordcount", "function": "count", "map": "${split.parts}", "args": "${item}", "retries": 2, "timeout_ms": 5000, "resources": {"cpu": 1}},
	{"id": "reduce", "module": "wordcount", "function": "reduce", "args": {"c": "${count}"}}
], "output": "${reduce}"}`

func TestPlan_DigestIsStableAndChangesWithTheWorkflow(t *testing.T) {
	base := mustCompile(t, digestBase).Digest()
	if !strings.HasPrefix(base, "sha256:") || len(base) != 7+64 {
		t.Fatalf("digest %q", base)
	}
	same := []string{
		// Steps listed in another order, other spacing, escapes that spell the same strings,
		// null optional fields: the same plan.
		`{"output": "${reduce}", "steps": [
			{"id": "reduce", "module": "wordcount", "function": "reduce", "args": {"c": "${count}"}, "map": null},
			{"id": "count", "module": "wordcount", "function": "count", "map": "${split.parts}", "args": "${item}", "retries": 2, "timeout_ms": 5000, "resources": {"cpu": 1.0}},
			{"id": "split", "module": "wordcount@1.0.0", "function": "split", "args": {"text": "\u0061bc", "n": 4}}
		], "name": "wc", "version": 1}`,
	}
	for _, src := range same {
		if d := mustCompile(t, src).Digest(); d != base {
			t.Errorf("same workflow, digest %s, want %s", d, base)
		}
	}
	changes := map[string][2]string{
		"name":       {`"name": "wc"`, `"name": "wc2"`},
		"literal":    {`"n": 4`, `"n": 5`},
		"number":     {`"n": 4`, `"n": 4.0`},
		"key order":  {`{"text": "abc", "n": 4}`, `{"n": 4, "text": "abc"}`},
		"module":     {`"wordcount@1.0.0"`, `"wordcount@1.0.1"`},
		"function":   {`"function": "reduce"`, `"function": "count"`},
		"retries":    {`"retries": 2`, `"retries": 3`},
		"no retries": {`"retries": 2,`, ``},
		"guest":      {`"retries": 2`, `"retries": 2, "retry_guest_errors": true`},
		"timeout":    {`"timeout_ms": 5000`, `"timeout_ms": 5001`},
		"resources":  {`{"cpu": 1}`, `{"cpu": 1, "custom": {"tpu": 1}}`},
		"map":        {`"${split.parts}"`, `"${split.words}"`},
		"args ref":   {`"${item}"`, `{"w": "${item}"}`},
		"output":     {`"output": "${reduce}"`, `"output": {"r": "${reduce}"}`},
		"id":         {`"id": "reduce"`, `"id": "reduce2"`},
	}
	for name, c := range changes {
		src := strings.Replace(digestBase, c[0], c[1], 1)
		if src == digestBase {
			t.Fatalf("%s: %q not found", name, c[0])
		}
		if name == "id" {
			src = strings.Replace(src, `"${reduce}"`, `"${reduce2}"`, 1)
		}
		if d := mustCompile(t, src).Digest(); d == base {
			t.Errorf("%s changed, digest did not", name)
		}
	}
}

func TestPlan_RenderIsSafeForConcurrentUse(t *testing.T) {
	p := mustCompile(t, digestBase)
	outputs := map[string][]byte{"split": []byte(`{"parts": ["a", "b"]}`), "count": []byte(`[1, 2]`), "reduce": []byte(`3`)}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				items, err := p.Step("count").Items(outputs)
				if err != nil || len(items) != 2 {
					t.Error(err)
					return
				}
				in, err := p.Step("count").RenderInput(outputs, items[i%2], i%2)
				if err != nil || string(in) != string(items[i%2]) {
					t.Errorf("%s, %v", in, err)
					return
				}
				if out, err := p.Output.Render(outputs, nil, 0); err != nil || string(out) != "3" {
					t.Errorf("%s, %v", out, err)
					return
				}
				p.Ready(map[string]bool{"split": true})
			}
		}()
	}
	wg.Wait()
}
