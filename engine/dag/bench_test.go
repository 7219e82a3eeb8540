package dag

import (
	"encoding/json"
	"strings"
	"testing"
)

// BenchmarkRender renders the args of the reduce step of a wordcount-like plan: the hot path of
// a compiled workflow executed many times.
func BenchmarkRender(b *testing.B) {
	p := mustCompile(b, `{"version": 1, "steps": [
		{"id": "split", "module": "wordcount", "function": "split"},
		{"id": "count", "module": "wordcount", "function": "count", "map": "${split.parts}", "args": {"text": "${item}", "n": "${index}"}},
		{"id": "reduce", "module": "wordcount", "function": "reduce", "args": {"counts": "${count}", "first": "${split.parts[0]}", "n": "${split.meta.total}", "label": "run-${split.meta.total}", "fixed": [1, 2, 3]}},
		{"id": "lit", "module": "wordcount", "function": "split", "args": {"text": "the cat and the hat", "chunks": 4}}
	]}`)
	outputs := map[string][]byte{
		"split": []byte(`{"parts": ["the cat", "and the", "hat"], "meta": {"total": 5}}`),
		"count": []byte(`[{"the": 1, "cat": 1}, {"and": 1, "the": 1}, {"hat": 1}]`),
	}
	run := func(b *testing.B, tpl *Template, outputs map[string][]byte, item json.RawMessage) {
		out, err := tpl.Render(outputs, item, 1)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(out)))
		b.ReportAllocs()
		for b.Loop() {
			tpl.Render(outputs, item, 1)
		}
	}
	b.Run("small", func(b *testing.B) { run(b, p.Step("reduce").Args, outputs, nil) })
	// The same result the obvious way, for scale: decode the outputs, build the value, encode it.
	b.Run("small_encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var split struct {
				Parts []any `json:"parts"`
				Meta  struct {
					Total json.Number `json:"total"`
				} `json:"meta"`
			}
			var count any
			if json.Unmarshal(outputs["split"], &split) != nil || json.Unmarshal(outputs["count"], &count) != nil {
				b.Fatal("decode")
			}
			json.Marshal(map[string]any{"counts": count, "first": split.Parts[0], "n": split.Meta.Total,
				"label": "run-" + split.Meta.Total.String(), "fixed": []int{1, 2, 3}})
		}
	})
	b.Run("item", func(b *testing.B) { run(b, p.Step("count").Args, outputs, json.RawMessage(`"the cat"`)) })
	b.Run("literal", func(b *testing.B) { run(b, p.Step("lit").Args, outputs, nil) })
	// A field near the start of a 1 MiB output: only what precedes it is read.
	big := map[string][]byte{
		"split": []byte(`{"meta": {"total": 5}, "parts": ["x", "` + strings.Repeat("y", 1<<20) + `"]}`),
		"count": []byte(`[]`),
	}
	b.Run("selective_1MiB", func(b *testing.B) {
		p := mustCompile(b, `{"version": 1, "steps": [{"id": "split", "module": "wordcount", "function": "split"},
			{"id": "r", "module": "wordcount", "function": "reduce", "args": {"n": "${split.meta.total}"}}]}`)
		run(b, p.Step("r").Args, big, nil)
	})
	// The whole 1 MiB output inserted: it is checked once per render.
	b.Run("whole_1MiB", func(b *testing.B) {
		p := mustCompile(b, `{"version": 1, "steps": [{"id": "split", "module": "wordcount", "function": "split"},
			{"id": "r", "module": "wordcount", "function": "reduce", "args": {"all": "${split}"}}]}`)
		run(b, p.Step("r").Args, big, nil)
	})
}

// BenchmarkCompile compiles the wordcount workflow of testdata.
func BenchmarkCompile(b *testing.B) {
	src := []byte(`{"version": 1, "name": "wordcount", "steps": [
		{"id": "split", "module": "wordcount@1.0.0", "function": "split", "args": {"text": "the cat and the hat", "chunks": 4}},
		{"id": "count", "module": "wordcount", "function": "count", "map": "${split.parts}", "args": "${item}", "retries": 2, "timeout_ms": 5000, "resources": {"cpu": 1}},
		{"id": "reduce", "module": "wordcount", "function": "reduce", "args": {"counts": "${count}", "first": "${split.parts[0]}", "n": "${split.meta.total}"}}
	], "output": "${reduce}"}`)
	b.ReportAllocs()
	for b.Loop() {
		w, err := Parse(src)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Compile(w, catalog); err != nil {
			b.Fatal(err)
		}
	}
}
