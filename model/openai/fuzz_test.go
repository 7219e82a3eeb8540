package openai

import (
	"os"
	"path/filepath"
	"testing"
)

func seed(f *testing.F, glob string, extra ...string) {
	files, _ := filepath.Glob(glob)
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range extra {
		f.Add([]byte(s))
	}
}

// FuzzDecodeRequest: decoding and validating any body never panics, and a refusal is a 4xx
// OpenAI error.
func FuzzDecodeRequest(f *testing.F) {
	seed(f, "testdata/requests/*.json", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}`,
		`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"1","content":"x"}],"stop":"x","n":2}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		req, e := DecodeRequest(body)
		if e == nil {
			e = req.Validate(ValidateOptions{})
		}
		if e != nil && (e.Status < 400 || e.Status > 499 || e.Message == "" || e.Type == "") {
			t.Fatalf("bad error %+v", e)
		}
		if e == nil {
			_, _ = req.OutputSchema()
			_, _ = req.StopSequences()
			for i := range req.Messages {
				_ = req.Messages[i].Text()
			}
		}
	})
}

// FuzzParseBatchInput: any file parses without panicking; every problem names its line.
func FuzzParseBatchInput(f *testing.F) {
	seed(f, "testdata/batches/*.jsonl", "\n\n", `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{}}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		reqs, errs := ParseBatchInput(data, BatchEndpoint, ValidateOptions{})
		for _, e := range errs {
			if e.Line == nil || e.Code == "" || e.Message == "" {
				t.Fatalf("batch error without line or code: %+v", e)
			}
		}
		seen := map[string]bool{}
		for _, r := range reqs {
			if r.CustomID == "" || seen[r.CustomID] || (r.Request == nil && r.Err == nil) {
				t.Fatalf("request %+v", r)
			}
			seen[r.CustomID] = true
		}
	})
}
