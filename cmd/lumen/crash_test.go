package main

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/internal/lumentest"
)

// kill -9 of a real `lumen up` in the middle of a workflow loses no finished step: after a
// restart on the same data directory the workflow resumes by itself, finishes, and no step that
// had finished runs again.
func TestUp_KilledMidWorkflowResumesWithoutRerunningFinishedSteps(t *testing.T) {
	wasm, err := os.ReadFile(guestbuild.Go(t, "../../engine/testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	node := lumentest.Start(t, "")
	node.Push(wasm, "svc", "1.0.0")
	c, ctx := node.Client(), context.Background()
	doc := []byte(`{"version": 1, "name": "crash", "steps": [
	  {"id": "first", "module": "svc", "function": "square", "args": 5},
	  {"id": "slow", "module": "svc", "function": "busy", "map": [1, 3000, 3000, 3000], "args": "${item}"},
	  {"id": "last", "module": "svc", "function": "square", "args": "${first}"}],
	  "output": {"slow": "${slow}", "last": "${last}"}}`)
	st, err := c.SubmitWorkflow(ctx, doc, "", []string{"objects", "tasks", "actors"})
	if err != nil {
		t.Fatal(err)
	}
	// Kill once "first" has finished and "slow" is under way.
	deadline := time.Now().Add(60 * time.Second)
	var atKill map[string]int
	for atKill == nil {
		cur, err := c.Workflow(ctx, st.ID)
		if err != nil {
			t.Fatal(err)
		}
		runs, states := map[string]int{}, map[string]string{}
		for _, s := range cur.Steps {
			runs[s.ID], states[s.ID] = s.Runs, s.State
		}
		switch {
		case cur.State != "running":
			t.Fatalf("workflow ended before the kill: %+v", cur)
		case states["first"] == "done" && states["slow"] == "running":
			atKill = runs
		case time.Now().After(deadline):
			t.Fatalf("workflow did not get going: %+v", cur)
		}
		time.Sleep(5 * time.Millisecond)
	}
	node.Kill()
	node.Restart()
	c = node.Client()
	out, done, err := c.WorkflowResult(ctx, st.ID, 2*time.Minute)
	if err != nil || !done {
		t.Fatalf("after the restart: %s %v %v\n%s", out, done, err, node.Output())
	}
	var res struct {
		Slow []int
		Last int
	}
	if err := json.Unmarshal(out, &res); err != nil || res.Last != 625 || len(res.Slow) != 4 || res.Slow[1] != 3000 {
		t.Fatalf("output %s (%v)", out, err)
	}
	fin, err := c.Workflow(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if fin.Resumed != 1 {
		t.Fatalf("resumed %d times, want 1", fin.Resumed)
	}
	for _, s := range fin.Steps {
		if s.ID == "first" && s.Runs != atKill["first"] {
			t.Errorf("step first finished before the kill, then ran again (%d runs, %d before)", s.Runs, atKill["first"])
		}
		if s.ID == "slow" && s.Runs != atKill["slow"]+1 {
			t.Errorf("step slow was running at the kill: %d runs, want %d", s.Runs, atKill["slow"]+1)
		}
	}
}
