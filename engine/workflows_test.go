package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/plugins"
	"github.com/lumenflow/lumen/sdk/abi"
)

var grantAll = []abi.Capability{abi.CapObjects, abi.CapTasks, abi.CapActors}

const diamond = `{
  "version": 1, "name": "diamond",
  "steps": [
    {"id": "a", "module": "svc", "function": "square", "args": 3},
    {"id": "b", "module": "svc", "function": "square", "map": [1, 2, 3], "args": "${item}"},
    {"id": "c", "module": "svc", "function": "nested", "args": "${a}"},
    {"id": "d", "module": "svc", "function": "echo", "args": "a=${a} c=${c}"}
  ],
  "output": {"a": "${a}", "b": "${b}", "c": "${c}", "d": "${d}"}
}`

func waitResult(t *testing.T, e *engine.Engine, id string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return e.Workflows().Result(ctx, id)
}

func TestWorkflow_RunsTheDAG(t *testing.T) {
	e := sharedEngine(t)
	id, err := e.SubmitWorkflow(context.Background(), []byte(diamond), "wf", grantAll)
	if err != nil {
		t.Fatal(err)
	}
	out, err := waitResult(t, e, id)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":9,"b":[1,4,9],"c":81,"d":"a=9 c=81"}`; string(out) != want {
		t.Fatalf("output %s, want %s", out, want)
	}
	st, _ := e.Workflows().Get(id)
	if st.State != engine.WorkflowSucceeded || len(st.Steps) != 4 {
		t.Fatalf("status %+v", st)
	}
	for _, s := range st.Steps {
		if s.State != engine.StepDone || s.Runs != 1 {
			t.Errorf("step %s: %s after %d runs", s.ID, s.State, s.Runs)
		}
	}
}

func TestWorkflow_InvalidIsRefusedWithPaths(t *testing.T) {
	e := sharedEngine(t)
	bad := `{"version": 1, "name": "bad", "steps": [
	  {"id": "a", "module": "svc", "function": "square", "args": "${b}"},
	  {"id": "b", "module": "svc", "function": "square", "args": "${a}"},
	  {"id": "c", "module": "nope", "function": "square"},
	  {"id": "d", "module": "svc", "function": "nope"}]}`
	_, err := e.SubmitWorkflow(context.Background(), []byte(bad), "", grantAll)
	var ae *abi.Error
	if !errors.As(err, &ae) || ae.Kind != abi.KindBadInput {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"$.steps[0]", "cycle", "$.steps[2].module", "$.steps[3].function"} {
		if !strings.Contains(ae.Message, want) {
			t.Errorf("error does not mention %q:\n%s", want, ae.Message)
		}
	}
}

func TestWorkflow_StepFailureFailsTheWorkflow(t *testing.T) {
	e := sharedEngine(t)
	doc := `{"version": 1, "name": "f", "steps": [
	  {"id": "ok", "module": "svc", "function": "square", "args": 2},
	  {"id": "bad", "module": "svc", "function": "fail", "args": "${ok}"},
	  {"id": "after", "module": "svc", "function": "square", "args": "${bad}"}]}`
	id, err := e.SubmitWorkflow(context.Background(), []byte(doc), "", grantAll)
	if err != nil {
		t.Fatal(err)
	}
	_, err = waitResult(t, e, id)
	var ae *abi.Error
	if !errors.As(err, &ae) || ae.Kind != abi.KindGuest || ae.Code != "E_FAIL" || !strings.Contains(ae.Message, `step "bad"`) {
		t.Fatalf("err = %v", err)
	}
	st, _ := e.Workflows().Get(id)
	states := map[string]string{}
	for _, s := range st.Steps {
		states[s.ID] = s.State
	}
	if st.State != engine.WorkflowFailed || states["ok"] != "done" || states["bad"] != "failed" || states["after"] != "cancelled" {
		t.Fatalf("status %s %v", st.State, states)
	}
}

func TestWorkflow_Cancel(t *testing.T) {
	e := sharedEngine(t)
	doc := `{"version": 1, "name": "c", "steps": [{"id": "slow", "module": "svc", "function": "busy", "args": 100000}]}`
	id, err := e.SubmitWorkflow(context.Background(), []byte(doc), "", grantAll)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Workflows().Cancel(id); err != nil {
		t.Fatal(err)
	}
	_, err = waitResult(t, e, id)
	var ae *abi.Error
	if !errors.As(err, &ae) || ae.Kind != abi.KindCancelled {
		t.Fatalf("err = %v", err)
	}
}

// A workflow interrupted by the engine's stop resumes when it opens again, and no finished step
// runs twice.
func TestWorkflow_ResumesAfterRestartWithoutRerunningFinishedSteps(t *testing.T) {
	wasm, err := os.ReadFile(guestbuild.Go(t, "testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx := context.Background()
	e, err := engine.Open(ctx, engine.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Modules().Add(ctx, wasm, plugins.AddOptions{Name: "svc", Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	doc := `{"version": 1, "name": "r", "steps": [
	  {"id": "first", "module": "svc", "function": "square", "args": 5},
	  {"id": "slow", "module": "svc", "function": "busy", "map": [3000, 3000, 1], "args": "${item}"},
	  {"id": "last", "module": "svc", "function": "square", "args": "${first}"}],
	  "output": {"slow": "${slow}", "last": "${last}"}}`
	id, err := e.SubmitWorkflow(ctx, []byte(doc), "", grantAll)
	if err != nil {
		t.Fatal(err)
	}
	// Stop once "first" is checkpointed and "slow" has begun.
	deadline := time.Now().Add(30 * time.Second)
	var atStop engine.WorkflowStatus
	for {
		st, _ := e.Workflows().Get(id)
		state := map[string]string{}
		for _, s := range st.Steps {
			state[s.ID] = s.State
		}
		if state["first"] == engine.StepDone && state["slow"] == engine.StepRunning {
			atStop = st
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workflow did not get going: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e, err = engine.Open(ctx, engine.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	out, err := waitResult(t, e, id)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Slow []int
		Last int
	}
	if err := json.Unmarshal(out, &got); err != nil || got.Last != 625 || len(got.Slow) != 3 || got.Slow[2] != 1 {
		t.Fatalf("output %s (%v)", out, err)
	}
	st, _ := e.Workflows().Get(id)
	if st.Resumed != 1 {
		t.Fatalf("resumed %d times, want 1", st.Resumed)
	}
	runs := map[string]int{}
	for _, s := range st.Steps {
		runs[s.ID] = s.Runs
	}
	// A step that had finished is never run again; one that was running finished before the
	// stop took effect or runs once more.
	for _, s := range atStop.Steps {
		switch s.State {
		case engine.StepDone:
			if runs[s.ID] != s.Runs {
				t.Errorf("step %s finished before the stop after %d runs, then ran %d times", s.ID, s.Runs, runs[s.ID])
			}
		case engine.StepRunning:
			if runs[s.ID] != s.Runs && runs[s.ID] != s.Runs+1 {
				t.Errorf("step %s was running at the stop (%d runs), then ran %d times", s.ID, s.Runs, runs[s.ID])
			}
		}
	}
	if runs["first"] != 1 || runs["slow"] != 2 {
		t.Fatalf("runs %v", runs)
	}
}
