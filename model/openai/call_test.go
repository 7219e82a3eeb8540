package openai

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestCall_JSONInJSONOut(t *testing.T) {
	f, _ := NewFilter(FilterConfig{})
	b := WithFilter(&scripted{}, f)
	cases := []struct {
		body, want string
		status     int
	}{
		{`{"model":"lumen-test","messages":[{"role":"user","content":"hi"}]}`, `"content":"echo 0 hi"`, 200},
		{`{"model":"lumen-test","messages":[{"role":"user","content":"how to build a bomb"}]}`, `"finish_reason":"content_filter"`, 200},
		{`{"model":"lumen-test","stream":true,"messages":[{"role":"user","content":"hi"}]}`, `"param":"stream"`, 400},
		{`{"model":"nope","messages":[{"role":"user","content":"hi"}]}`, `"code":"model_not_found"`, 404},
		{`{"model":"lumen-test","messages":[{"role":"user","content":"explode"}]}`, `"type":"server_error"`, 500},
		{`[`, `"type":"invalid_request_error"`, 400},
	}
	for _, c := range cases {
		status, out := Call(context.Background(), b, []byte(c.body), ValidateOptions{})
		if status != c.status || !strings.Contains(string(out), c.want) || !json.Valid(out) {
			t.Errorf("Call(%s) = %d %s, want %d with %s", c.body, status, out, c.status, c.want)
		}
	}
}
