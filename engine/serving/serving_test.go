package serving_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/lumenflow/lumen/engine/serving"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/model"
	"github.com/lumenflow/lumen/model/openai"
	"github.com/lumenflow/lumen/sdk/abi"
)

// untrainedModel saves a tiny model with random weights: the service serves it as it would a
// trained one, and its seeded answers are deterministic.
func untrainedModel(t *testing.T) string {
	t.Helper()
	tok, err := model.TrainBPE(model.Corpus(1, 100), 300)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(model.TinyConfig(tok.VocabSize()), tok)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// memCheckpoints is serving.Checkpoints in memory: what a node's replicated state keeps across
// a restart, kept across two Services. putErr, when set, fails every Put.
type memCheckpoints struct {
	mu      sync.Mutex
	kv      map[string][]byte
	putErr  error
	deletes int // DeletePrefix commands that deleted something
}

func newMemCheckpoints() *memCheckpoints { return &memCheckpoints{kv: map[string][]byte{}} }

func (m *memCheckpoints) Scan(prefix string, fn func(key string, val []byte) error) error {
	m.mu.Lock()
	var keys []string
	for k := range m.kv {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = append([]byte(nil), m.kv[k]...)
	}
	m.mu.Unlock()
	for i, k := range keys {
		if err := fn(k, vals[i]); err != nil {
			return err
		}
	}
	return nil
}

func (m *memCheckpoints) Put(key string, val []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.putErr != nil {
		return m.putErr
	}
	m.kv[key] = append([]byte(nil), val...)
	return nil
}

func (m *memCheckpoints) DeletePrefix(prefix string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k := range m.kv {
		if strings.HasPrefix(k, prefix) {
			delete(m.kv, k)
			n++
		}
	}
	if n > 0 {
		m.deletes++
	}
	return nil
}

func (m *memCheckpoints) keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.kv {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func open(t *testing.T, cfg serving.Config, deps serving.Deps) *serving.Service {
	t.Helper()
	if deps.Checkpoints == nil {
		deps.Checkpoints = newMemCheckpoints()
	}
	s, err := serving.Open(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestModel_ChatRoutesFiltersAndRefuses(t *testing.T) {
	s := open(t, serving.Config{Dir: untrainedModel(t), ID: "tiny"}, serving.Deps{})
	ctx := context.Background()

	status, out, ok := s.Chat(ctx, []byte(`{"model":"tiny","seed":1,"max_tokens":2,"messages":[{"role":"user","content":"hi"}]}`))
	var c openai.ChatCompletion
	if !ok || status != http.StatusOK || json.Unmarshal(out, &c) != nil || c.Model != "tiny" || len(c.Choices) != 1 {
		t.Fatalf("chat: %v %d %s", ok, status, out)
	}
	status, out, _ = s.Chat(ctx, []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
	if status != http.StatusNotFound || !strings.Contains(string(out), "model_not_found") {
		t.Errorf("unknown model: %d %s", status, out)
	}
	status, out, _ = s.Chat(ctx, []byte(`{"model":"tiny","messages":[{"role":"user","content":"how do I build a bomb"}]}`))
	if status != http.StatusOK || !strings.Contains(string(out), `"content_filter"`) {
		t.Errorf("unsafe request: %d %s", status, out)
	}
	status, out, _ = s.Chat(ctx, []byte(`{"model":"tiny","messages":[]}`))
	if status != http.StatusBadRequest || !strings.Contains(string(out), `"messages"`) {
		t.Errorf("empty messages: %d %s", status, out)
	}
}

func TestModel_ConfigErrorsNameTheirSource(t *testing.T) {
	for name, mc := range map[string]serving.Config{
		"model dir": {Dir: filepath.Join(t.TempDir(), "nope")},
		"key file":  {Provider: serving.ProviderConfig{BaseURL: "http://127.0.0.1:1/v1", KeyFile: filepath.Join(t.TempDir(), "nokey")}},
		"safety":    {Provider: serving.ProviderConfig{BaseURL: "http://127.0.0.1:1/v1"}, SafetyFile: filepath.Join(t.TempDir(), "nofilter.json")},
		"provider":  {Provider: serving.ProviderConfig{BaseURL: "::not a url"}},
	} {
		_, err := serving.Open(mc, serving.Deps{Checkpoints: newMemCheckpoints()})
		if err == nil {
			t.Errorf("%s: Open accepted %+v", name, mc)
			continue
		}
		if !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %q does not name it", name, err)
		}
	}
	if _, err := serving.ParseModelMap("a=b,a=c"); err == nil {
		t.Error("ParseModelMap accepted a name twice")
	}
	m, err := serving.ParseModelMap("gpt-4o, mine=gpt-4o-mini")
	if err != nil || m["gpt-4o"] != "gpt-4o" || m["mine"] != "gpt-4o-mini" {
		t.Errorf("ParseModelMap: %v %v", m, err)
	}
}

// A Service with no model serves none: Models and Chat say so, and model_chat is unavailable.
func TestModel_NoneServedWithoutAConfig(t *testing.T) {
	s, err := serving.Open(serving.Config{}, serving.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Models(); ok {
		t.Error("Models: a model is served")
	}
	if _, _, ok := s.Chat(context.Background(), []byte(`{}`)); ok {
		t.Error("Chat: a model answered")
	}
	_, _, err = s.HostModels().Chat(context.Background(), &host.CallInfo{Job: "j"}, []byte(`{"model":"tiny"}`))
	var se *host.StatusError
	if !errors.As(err, &se) || se.Status != abi.ErrUnavailable || !strings.Contains(se.Message, "--model DIR") {
		t.Errorf("model_chat without a model: %v", err)
	}
}

// model_chat's allow-list: a job listed may use only its models, "*" lists every other job's,
// and a refusal is an OpenAI-shaped 403 naming the job and the model.
func TestModel_ChatAllowListPerJob(t *testing.T) {
	s := open(t, serving.Config{Dir: untrainedModel(t), ID: "tiny", JobModels: map[string][]string{"jail": {"gpt-4o"}, "*": {"tiny"}}}, serving.Deps{})
	hm := s.HostModels()
	ctx := context.Background()
	req := []byte(`{"model":"tiny","seed":1,"max_tokens":2,"messages":[{"role":"user","content":"hi"}]}`)
	status, out, err := hm.Chat(ctx, &host.CallInfo{Job: "jail"}, req)
	if err != nil || status != http.StatusForbidden || !strings.Contains(string(out), `The job \"jail\" may not use the model 'tiny'.`) || !strings.Contains(string(out), "model_not_allowed") {
		t.Errorf("jail asking tiny: %d %s %v", status, out, err)
	}
	if status, out, err := hm.Chat(ctx, &host.CallInfo{Job: "other"}, req); err != nil || status != http.StatusOK {
		t.Errorf("other job (the * list) asking tiny: %d %s %v", status, out, err)
	}
	if status, out, err := hm.Chat(ctx, &host.CallInfo{Job: "other"}, []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)); err != nil || status != http.StatusForbidden {
		t.Errorf("other job asking gpt-4o: %d %s %v", status, out, err)
	}
}

// FuzzParseModelMap: any --openai-models text parses to a map of non-empty names or is refused
// with an error, never a panic.
func FuzzParseModelMap(f *testing.F) {
	for _, s := range []string{"gpt-4o", "a=b,c=d", "a=b,a=c", "=x", "x=", ",,", " a = b ", "a=b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := serving.ParseModelMap(s)
		if err != nil {
			return
		}
		if len(m) == 0 {
			t.Fatalf("%q: empty map without an error", s)
		}
		for k, v := range m {
			if k == "" || v == "" || strings.TrimSpace(k) != k {
				t.Fatalf("%q: entry %q=%q", s, k, v)
			}
		}
	})
}
