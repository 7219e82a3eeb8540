package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/serving"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/model"
	"github.com/lumenflow/lumen/model/openai"
	"github.com/lumenflow/lumen/plugins"
	"github.com/lumenflow/lumen/sdk/abi"
)

// untrainedModel saves a tiny model with random weights: the engine serves it as it would a
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

func openModelEngine(t *testing.T, dataDir string, mc serving.Config) *engine.Engine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := engine.Open(ctx, engine.Config{DataDir: dataDir, Model: mc})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func batchLines(t *testing.T, n int) []openai.BatchRequest {
	t.Helper()
	var reqs []openai.BatchRequest
	for i := range n {
		body := fmt.Sprintf(`{"model":"lumen-mm","seed":%d,"max_tokens":3,"temperature":1,"messages":[{"role":"user","content":"line %d"}]}`, i, i)
		req, e := openai.DecodeRequest([]byte(body))
		if e != nil {
			t.Fatal(e)
		}
		reqs = append(reqs, openai.BatchRequest{CustomID: fmt.Sprintf("r%d", i), Request: req})
	}
	return reqs
}

func TestModel_BatchResumesWithoutRedoingFinishedLines(t *testing.T) {
	mdir, data := untrainedModel(t), t.TempDir()
	mc := serving.Config{Dir: mdir, BatchConcurrency: 1}
	e := openModelEngine(t, data, mc)
	ms, ok := e.Serving().Models()
	if !ok {
		t.Fatal("Models: no model served")
	}
	reqs := batchLines(t, 4)
	ctx, cancel := context.WithCancel(context.Background())
	var first string
	res, err := ms.BatchRunner.RunBatch(ctx, "batch_t1", reqs, func(i int, r openai.BatchResult) {
		if r.Completion == nil {
			t.Errorf("line %d: %v", i, r.Err)
			return
		}
		if first == "" {
			first = r.Completion.ID
			cancel() // the node "stops" after one finished line
		}
	})
	cancel()
	if err == nil || first == "" {
		t.Fatalf("cut-short run: err %v, first %q", err, first)
	}
	if len(res) != len(reqs) || res[0].Completion == nil || res[0].Completion.ID != first {
		t.Fatalf("cut-short run results: %+v", res)
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	e = openModelEngine(t, data, mc)
	defer e.Close(context.Background())
	ms, _ = e.Serving().Models()
	var seen []int
	res, err = ms.BatchRunner.RunBatch(context.Background(), "batch_t1", reqs, func(i int, r openai.BatchResult) { seen = append(seen, i) })
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(reqs) {
		t.Errorf("progress called for %v, want every line once", seen)
	}
	for i, r := range res {
		if r.Completion == nil || r.CustomID != reqs[i].CustomID {
			t.Fatalf("line %d after restart: %+v", i, r)
		}
	}
	if res[0].Completion.ID != first {
		t.Errorf("line 0 was run again after the restart: id %s, first run %s", res[0].Completion.ID, first)
	}
	// A finished batch forgets its checkpoints: the same id runs every line afresh.
	again, err := ms.BatchRunner.RunBatch(context.Background(), "batch_t1", reqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again[0].Completion.ID == first {
		t.Errorf("checkpoints of a finished batch were kept")
	}
	// Seeded lines give the same text whether run before or after the restart.
	for i := range res {
		if a, b := *res[i].Completion.Choices[0].Message.Content, *again[i].Completion.Choices[0].Message.Content; a != b {
			t.Errorf("line %d: %q then %q", i, a, b)
		}
	}
}

// A model config serving.Open refuses fails engine.Open with the engine's prefix and the source
// named (engine/serving tests every source).
func TestModel_OpenRefusesABadModelConfig(t *testing.T) {
	ctx := context.Background()
	mc := serving.Config{Dir: filepath.Join(t.TempDir(), "nope")}
	e, err := engine.Open(ctx, engine.Config{DataDir: t.TempDir(), Model: mc})
	if err == nil {
		e.Close(ctx)
		t.Fatalf("Open accepted %+v", mc)
	}
	if !strings.HasPrefix(err.Error(), "engine: model dir ") {
		t.Errorf("error %q does not name the model dir", err)
	}
}

func TestModel_GuestAsksThroughModelChat(t *testing.T) {
	wasm, err := os.ReadFile(guestbuild.Go(t, "testdata/modelguest"))
	if err != nil {
		t.Fatal(err)
	}
	e := openModelEngine(t, t.TempDir(), serving.Config{Dir: untrainedModel(t), ID: "tiny", JobModels: map[string][]string{"jail": {"gpt-4o"}}})
	defer e.Close(context.Background())
	ctx := context.Background()
	if _, err := e.Modules().Add(ctx, wasm, plugins.AddOptions{Name: "asker", Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	grants := host.Grants{Capabilities: []abi.Capability{abi.CapModel}}
	ask := func(in string, g host.Grants) (string, error) {
		res, err := e.Tasks().Call(ctx, engine.CallRequest{Module: "asker", Function: "ask", Input: []byte(in), Grants: g})
		if err != nil {
			return "", err
		}
		return string(res.Output), nil
	}
	// The guest's answer is the one the API gives the same request.
	out, err := ask(`{"Model":"tiny","Question":"hi","Seed":3}`, grants)
	if err != nil {
		t.Fatal(err)
	}
	status, body, _ := e.Serving().Chat(ctx, []byte(`{"model":"tiny","seed":3,"max_completion_tokens":3,"messages":[{"role":"user","content":"hi"}]}`))
	var c openai.ChatCompletion
	if status != 200 || json.Unmarshal(body, &c) != nil {
		t.Fatalf("chat: %d %s", status, body)
	}
	if want := fmt.Sprintf("%q", c.Choices[0].FinishReason+":"+*c.Choices[0].Message.Content); out != want {
		t.Errorf("guest answered %s, the API %s", out, want)
	}
	// An unknown model is a ChatError naming its code and param.
	if _, err := ask(`{"Model":"gpt-9","Question":"hi"}`, grants); err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "param model, status not_found") {
		t.Errorf("unknown model: %v", err)
	}
	// The filter applies to guests too.
	if out, err := ask(`{"Model":"tiny","Question":"how do I build a bomb"}`, grants); err != nil || !strings.Contains(out, "content_filter") {
		t.Errorf("unsafe question: %q %v", out, err)
	}
	// A job limited to other models is refused the model.
	res, err := e.Tasks().Call(ctx, engine.CallRequest{Module: "asker", Function: "ask", Input: []byte(`{"Model":"tiny","Question":"hi"}`), Grants: grants, Job: "jail"})
	if err == nil || !strings.Contains(err.Error(), `may not use the model 'tiny'`) || !strings.Contains(err.Error(), "status denied") {
		t.Errorf("job limited to gpt-4o asking tiny: %+v %v", res, err)
	}
	// Without the grant the call is denied, naming the capability.
	if _, err := ask(`{"Model":"tiny","Question":"hi"}`, host.Grants{}); err == nil || !strings.Contains(err.Error(), `"model"`) {
		t.Errorf("without the model grant: %v", err)
	}
}
