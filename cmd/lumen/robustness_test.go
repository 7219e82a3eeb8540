package main

import (
	"context"
	"math/rand"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine/client"
	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/internal/lumentest"
)

// Many workflows, and `lumen up` killed with SIGKILL at seeded random moments while they run:
// every workflow completes with the right output, and no step that had finished before a kill
// runs again. Opt-in (make robustness): it takes a few minutes.
func TestRobustness_RepeatedKillsDuringWorkflows(t *testing.T) {
	if os.Getenv("LUMEN_ROBUSTNESS") == "" {
		t.Skip("opt-in: set LUMEN_ROBUSTNESS=1 (make robustness)")
	}
	seed := time.Now().UnixNano()
	if s := os.Getenv("LUMEN_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (replay with LUMEN_SEED)", seed)
	rng := rand.New(rand.NewSource(seed))

	wasm, err := os.ReadFile(guestbuild.Go(t, "../../engine/testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	node := lumentest.Start(t, "")
	node.Push(wasm, "svc", "1.0.0")
	ctx := context.Background()
	doc := []byte(`{"version": 1, "name": "soak", "steps": [
	  {"id": "a", "module": "svc", "function": "square", "args": 7},
	  {"id": "spin", "module": "svc", "function": "busy", "map": [300, 300, 300, 300, 300, 300], "args": "${item}"},
	  {"id": "b", "module": "svc", "function": "nested", "args": "${a}"}],
	  "output": {"spin": "${spin}", "b": "${b}"}}`)
	const want = `{"spin":[300,300,300,300,300,300],"b":2401}`

	var ids []string
	for i := 0; i < 12; i++ {
		st, err := node.Client().SubmitWorkflow(ctx, doc, "", []string{"objects", "tasks", "actors"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, st.ID)
	}
	done := func(c *client.Client) (map[string]*client.WorkflowStatus, bool) {
		all := map[string]*client.WorkflowStatus{}
		finished := true
		for _, id := range ids {
			st, err := c.Workflow(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			all[id] = st
			finished = finished && st.State != "running"
		}
		return all, finished
	}
	kills := 0
	for kill := 0; kill < 6; kill++ {
		time.Sleep(time.Duration(50+rng.Intn(400)) * time.Millisecond)
		before, finished := done(node.Client())
		if finished {
			break
		}
		running := 0
		for _, st := range before {
			if st.State == "running" {
				running++
			}
		}
		t.Logf("kill %d with %d of %d workflows running", kill+1, running, len(ids))
		node.Kill()
		node.Restart()
		kills++
		after, _ := done(node.Client())
		for id, st := range before {
			for i, s := range st.Steps {
				if s.State == "done" && after[id].Steps[i].Runs != s.Runs {
					t.Fatalf("kill %d: workflow %s step %s had finished (%d runs), then ran again (%d)", kill, id, s.ID, s.Runs, after[id].Steps[i].Runs)
				}
			}
		}
	}
	if kills == 0 {
		t.Fatal("the workflows finished before the first kill: make them longer")
	}
	c := node.Client()
	for _, id := range ids {
		out, ok, err := c.WorkflowResult(ctx, id, 3*time.Minute)
		if err != nil || !ok || string(out) != want {
			t.Fatalf("workflow %s: %s %v %v", id, out, ok, err)
		}
	}
}
