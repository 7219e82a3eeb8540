package serving_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine/serving"
	"github.com/lumenflow/lumen/model/openai"
)

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

// A batch cut short keeps its finished lines under oai/batch/<id>/<i, 8 digits> (the keys the
// engine wrote before serving was a package: a node upgraded mid-batch reads them); a second
// Service over the same checkpoints runs only the others, and a finished batch deletes them.
func TestBatch_ResumesFromCheckpointsAndForgetsThem(t *testing.T) {
	mdir, cp := untrainedModel(t), newMemCheckpoints()
	cfg := serving.Config{Dir: mdir, BatchConcurrency: 1}
	ms, _ := open(t, cfg, serving.Deps{Checkpoints: cp}).Models()
	reqs := batchLines(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	var first string
	_, err := ms.BatchRunner.RunBatch(ctx, "batch_t1", reqs, func(i int, r openai.BatchResult) {
		if first == "" && r.Completion != nil {
			first = r.Completion.ID
			cancel()
		}
	})
	cancel()
	if err == nil || first == "" {
		t.Fatalf("cut-short run: err %v, first %q", err, first)
	}
	if got := cp.keys(); !reflect.DeepEqual(got, []string{"oai/batch/batch_t1/00000000"}) {
		t.Fatalf("checkpoints after one line: %v", got)
	}

	ms, _ = open(t, cfg, serving.Deps{Checkpoints: cp}).Models()
	res, err := ms.BatchRunner.RunBatch(context.Background(), "batch_t1", reqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Completion == nil || res[0].Completion.ID != first {
		t.Errorf("line 0 was run again: %+v, first run %s", res[0], first)
	}
	for i, r := range res {
		if r.Completion == nil || r.CustomID != reqs[i].CustomID {
			t.Errorf("line %d: %+v", i, r)
		}
	}
	if got := cp.keys(); len(got) != 0 || cp.deletes != 1 {
		t.Errorf("a finished batch kept %v (%d deletes)", got, cp.deletes)
	}
	if _, err := ms.BatchRunner.RunBatch(context.Background(), "a/b", reqs, nil); err == nil || err.Error() != `engine: batch id "a/b"` {
		t.Errorf("batch id with a slash: %v", err)
	}
}

// A checkpoint that fails fails its line, naming it; when the node is closing the line is held
// back instead until the caller gives up, so that the batch runs again rather than ends short.
func TestBatch_CheckpointFailures(t *testing.T) {
	mdir := untrainedModel(t)
	cp := newMemCheckpoints()
	cp.putErr = errors.New("no quorum")
	ms, _ := open(t, serving.Config{Dir: mdir}, serving.Deps{Checkpoints: cp}).Models()
	reqs := batchLines(t, 2)
	res, err := ms.BatchRunner.RunBatch(context.Background(), "b1", reqs, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "engine: batch b1 line ") || !strings.Contains(err.Error(), "checkpoint: no quorum") {
		t.Fatalf("failed checkpoint: %v", err)
	}
	for i, r := range res {
		if r.Err == nil || r.CustomID != reqs[i].CustomID {
			t.Errorf("line %d: %+v", i, r)
		}
	}

	node, stop := context.WithCancel(context.Background())
	stop() // the node is closing
	ms, _ = open(t, serving.Config{Dir: mdir}, serving.Deps{Checkpoints: cp, Context: node}).Models()
	ctx, cancel := context.WithCancel(context.Background())
	type ran struct {
		res []openai.BatchResult
		err error
	}
	done := make(chan ran, 1)
	go func() {
		res, err := ms.BatchRunner.RunBatch(ctx, "b2", reqs, nil)
		done <- ran{res, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("RunBatch returned while the caller's context lived: %v", r.err)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	r := <-done
	if !errors.Is(r.err, context.Canceled) {
		t.Errorf("held back lines: %v", r.err)
	}
}
