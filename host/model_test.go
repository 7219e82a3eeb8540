package host

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumenflow/lumen/sdk/abi"
)

// chatModels answers model_chat like the engine's models: "echo" completes with the last
// message's content, "busy" is a provider out of retries (429), any other model is not found;
// a request without messages is refused (400). It records the jobs it served.
type chatModels struct {
	mu   sync.Mutex
	jobs []string
}

func (m *chatModels) Chat(ctx context.Context, c *CallInfo, req []byte) (int, []byte, error) {
	m.mu.Lock()
	m.jobs = append(m.jobs, c.Job)
	m.mu.Unlock()
	var r struct {
		Model    string
		Messages []struct{ Content string }
	}
	oaiErr := func(status int, code, param string) (int, []byte, error) {
		b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": code, "type": "invalid_request_error", "param": param, "code": code}})
		return status, b, nil
	}
	if err := json.Unmarshal(req, &r); err != nil {
		return oaiErr(http.StatusBadRequest, "invalid_json", "")
	}
	switch {
	case len(r.Messages) == 0:
		return oaiErr(http.StatusBadRequest, "empty_array", "messages")
	case r.Model == "busy":
		return oaiErr(http.StatusTooManyRequests, "rate_limit_exceeded", "")
	case r.Model == "slow":
		<-ctx.Done()
		return 0, nil, ctx.Err()
	case r.Model != "echo":
		return oaiErr(http.StatusNotFound, "model_not_found", "model")
	}
	b, _ := json.Marshal(map[string]any{"object": "chat.completion", "choices": []any{map[string]any{"message": map[string]any{"role": "assistant", "content": r.Messages[len(r.Messages)-1].Content}}}})
	return http.StatusOK, b, nil
}

func chatCall(t *testing.T, r *Runtime, m *Module, grants []abi.Capability, req string) (int64, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := r.Call(ctx, CallRequest{Module: m, Function: "chat", Input: []byte(req), Job: "job-m", Grants: Grants{Capabilities: grants}, Limits: Limits{Timeout: 2 * time.Second}})
	if err != nil {
		t.Fatalf("chat: %v", err)
	}
	if len(res.Output) < 8 {
		t.Fatalf("short output %q", res.Output)
	}
	return int64(binary.LittleEndian.Uint64(res.Output)), string(res.Output[8:])
}

func TestModelChat_StatusesAndPendingResults(t *testing.T) {
	models := &chatModels{}
	r := newTestRuntime(t, Config{Models: models})
	m := mustCompile(t, r, "modelchat")
	model := []abi.Capability{abi.CapModel}
	for _, tc := range []struct {
		name, req string
		want      int64
		has       string
	}{
		{"completion", `{"model":"echo","messages":[{"role":"user","content":"ping"}]}`, 0, `"content":"ping"`},
		{"refused request", `{"model":"echo","messages":[]}`, abi.ErrBadPayload.Code(), `"param":"messages"`},
		{"unknown model", `{"model":"nope","messages":[{"content":"x"}]}`, abi.ErrNotFound.Code(), `"model_not_found"`},
		{"provider failing", `{"model":"busy","messages":[{"content":"x"}]}`, abi.ErrFailed.Code(), `"rate_limit_exceeded"`},
		{"not JSON", `{"model":`, abi.ErrBadPayload.Code(), `not JSON`},
	} {
		got, out := chatCall(t, r, m, model, tc.req)
		if tc.want == 0 {
			if got != int64(len(out)) || !strings.Contains(out, tc.has) {
				t.Errorf("%s: %d %q", tc.name, got, out)
			}
			continue
		}
		if got != tc.want || !strings.Contains(out, tc.has) {
			t.Errorf("%s: %d %q, want %d with %s", tc.name, got, out, tc.want, tc.has)
		}
	}
	// A model still answering at the call's deadline: the call stops at the deadline.
	start := time.Now()
	_, err := r.Call(context.Background(), CallRequest{Module: m, Function: "chat", Input: []byte(`{"model":"slow","messages":[{"content":"x"}]}`), Job: "job-m", Grants: Grants{Capabilities: model}, Limits: Limits{Timeout: 200 * time.Millisecond}})
	if err == nil || !strings.Contains(err.Error(), "deadline") || time.Since(start) > 5*time.Second {
		t.Errorf("slow model: %v after %v", err, time.Since(start))
	}
	models.mu.Lock()
	if len(models.jobs) == 0 || models.jobs[0] != "job-m" {
		t.Errorf("jobs seen: %v", models.jobs)
	}
	models.mu.Unlock()
}

func TestModelChat_NeedsTheGrantAndAnEngine(t *testing.T) {
	r := newTestRuntime(t, Config{Models: &chatModels{}})
	m := mustCompile(t, r, "modelchat")
	_, err := r.Call(context.Background(), CallRequest{Module: m, Function: "chat", Input: []byte(`{}`), Job: "job-m"})
	if err == nil || !strings.Contains(err.Error(), `capability "model"`) {
		t.Errorf("without the grant: %v", err)
	}
	r2 := newTestRuntime(t, Config{})
	m2 := mustCompile(t, r2, "modelchat")
	if got, out := chatCall(t, r2, m2, []abi.Capability{abi.CapModel}, `{}`); got != abi.ErrUnavailable.Code() || !strings.Contains(out, "no model") {
		t.Errorf("without an engine: %d %q", got, out)
	}
}

// FuzzModelChat sends arbitrary payloads through model_chat: the call never fails as a whole,
// and the status is success or one of the statuses model_chat documents.
func FuzzModelChat(f *testing.F) {
	for _, s := range []string{
		`{"model":"echo","messages":[{"role":"user","content":"ping"}]}`, `{"model":"echo","messages":[]}`,
		`{"model":"busy","messages":[{}]}`, `{"model":`, ``, `null`, `[]`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	r := newTestRuntime(f, Config{Models: &chatModels{}})
	m := mustCompile(f, r, "modelchat")
	allowed := map[int64]bool{abi.ErrBadPayload.Code(): true, abi.ErrNotFound.Code(): true, abi.ErrFailed.Code(): true}
	f.Fuzz(func(t *testing.T, req []byte) {
		if len(req) > 31744 {
			return
		}
		res, err := r.Call(context.Background(), CallRequest{Module: m, Function: "chat", Input: req, Job: "fuzz", Grants: Grants{Capabilities: []abi.Capability{abi.CapModel}}})
		if err != nil {
			t.Fatalf("call failed: %v", err)
		}
		got := int64(binary.LittleEndian.Uint64(res.Output))
		if got < 0 && !allowed[got] {
			t.Fatalf("status %d for %q", got, req)
		}
	})
}
