package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/internal/lumentest"
)

// wfView is the part of a workflow's status these tests compare between nodes.
type wfView struct {
	ID      string `json:"id"`
	State   string `json:"state"`
	Node    string `json:"node"`
	Resumed int    `json:"resumed"`
	Steps   []struct {
		ID    string `json:"id"`
		State string `json:"state"`
		Runs  int    `json:"runs"`
	} `json:"steps"`
}

// wfRaw reads workflow id's status from node n: the raw body, decoded, and the HTTP status.
func wfRaw(t *testing.T, n *lumentest.Node, id string) ([]byte, wfView, int) {
	t.Helper()
	b, code, err := n.Client().Do(context.Background(), "GET", "/v1/workflows/"+id, nil)
	var v wfView
	if err == nil {
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("status of %s from %s: %v: %s", id, n.ID, err, b)
		}
	}
	return b, v, code
}

// waitWorkflow polls node n until ok holds for workflow id's status, or fails the test.
func waitWorkflow(t *testing.T, n *lumentest.Node, id, what string, d time.Duration, ok func(wfView) bool) wfView {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		_, v, code := wfRaw(t, n, id)
		if code == 200 && ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s answered %d %+v", what, n.ID, code, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sameEverywhere checks that every node answers workflow id's status and result with the same
// bytes, and returns the status.
func sameEverywhere(t *testing.T, c *lumentest.Cluster, id string) wfView {
	t.Helper()
	var first []byte
	var firstRes []byte
	var view wfView
	for _, n := range c.Alive() {
		b, v, code := wfRaw(t, n, id)
		res, rcode, _ := n.Client().Do(context.Background(), "GET", "/v1/workflows/"+id+"/result", nil)
		if code != 200 {
			t.Errorf("%s answers %d for workflow %s: %s", n.ID, code, id, b)
			continue
		}
		if first == nil {
			first, firstRes, view = b, res, v
			continue
		}
		if !bytes.Equal(b, first) {
			t.Errorf("%s answers a different status:\n%s\nthe first node's:\n%s", n.ID, b, first)
		}
		if !bytes.Equal(res, firstRes) {
			t.Errorf("%s answers a different result (%d): %s, the first node's: %s", n.ID, rcode, res, firstRes)
		}
	}
	return view
}

// The finding: a workflow's status and result were readable only on the node that ran it (the
// others answered 404); after that node was killed and restarted it answered "cancelled" while
// the node that had adopted the workflow answered "succeeded", and it ran a step again. Here, on
// real processes: every node answers the same status and result while the workflow runs, after
// its owner is SIGKILLed and the leader adopts it, and after the old owner restarts (behind the
// cluster's state); the old owner never runs the workflow again; a finished step never runs
// again; a cancel sent to a node that does not run a workflow cancels it everywhere. Under
// LUMEN_ROBUSTNESS=1 the kill, adoption and restart are repeated on each follower in turn.
func TestCluster_WorkflowAnsweredAlikeEverywhereAcrossOwnerDeathAndRestart(t *testing.T) {
	c := lumentest.StartCluster(t, 3, 0, "--heartbeat-interval", "200ms", "--dead-after", "1500ms")
	leader := c.Leader(10 * time.Second)
	wasm, err := os.ReadFile(guestbuild.Go(t, "../../engine/testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	leader.Push(wasm, "svc", "1.0.0")
	c.Converge(10 * time.Second) // every node holds the module before a follower compiles against it
	ctx := context.Background()
	grants := []string{"objects", "tasks", "actors"}
	var followers []*lumentest.Node
	for _, n := range c.Nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}

	// A cancel through a node that does not run the workflow.
	spin := []byte(`{"version": 1, "name": "spin", "steps": [
	  {"id": "long", "module": "svc", "function": "busy", "map": [400000, 400000], "args": "${item}"}]}`)
	st, err := followers[0].Client().SubmitWorkflow(ctx, spin, "", grants)
	if err != nil {
		t.Fatal(err)
	}
	waitWorkflow(t, followers[0], st.ID, "the long step starts", 30*time.Second, func(v wfView) bool { return v.Steps[0].State == "running" })
	if _, code, err := followers[1].Client().Do(ctx, "DELETE", "/v1/workflows/"+st.ID, nil); err != nil || code != 202 {
		t.Errorf("cancel through %s: %d %v", followers[1].ID, code, err) // go on to the rest
	} else {
		for _, n := range c.Nodes {
			waitWorkflow(t, n, st.ID, "cancelled through another node", 15*time.Second, func(v wfView) bool { return v.State == "cancelled" })
		}
		sameEverywhere(t, c, st.ID)
	}

	rounds := 1
	if os.Getenv("LUMEN_ROBUSTNESS") != "" {
		rounds = 4
	}
	for round := range rounds {
		owner := followers[round%len(followers)]
		doc := fmt.Appendf(nil, `{"version": 1, "name": "alike-%d", "steps": [
		  {"id": "first", "module": "svc", "function": "square", "args": %d},
		  {"id": "slow", "module": "svc", "function": "busy", "map": [1, 6000, 6000, 6000], "args": "${item}"},
		  {"id": "last", "module": "svc", "function": "square", "args": "${slow[0]}"}],
		  "output": {"first": "${first}", "slow": "${slow}", "last": "${last}"}}`, round, round+6)
		st, err := owner.Client().SubmitWorkflow(ctx, doc, "", grants)
		if err != nil {
			t.Fatal(err)
		}
		id := st.ID
		atKill := waitWorkflow(t, owner, id, "first done, slow running", 60*time.Second, func(v wfView) bool {
			return v.Steps[0].State == "done" && v.Steps[1].State == "running"
		})
		// While it runs: every node answers, the same, naming the owner; the result is not ready.
		for _, n := range c.Nodes {
			_, v, code := wfRaw(t, n, id)
			if code != 200 || v.ID != id || v.Node != owner.ID {
				t.Errorf("round %d: %s answers %d %+v for a workflow running on %s", round, n.ID, code, v, owner.ID)
			}
			if _, code, _ := n.Client().Do(ctx, "GET", "/v1/workflows/"+id+"/result", nil); code != 202 {
				t.Errorf("round %d: %s answers %d for the result of a running workflow, want 202", round, n.ID, code)
			}
		}

		owner.Kill()
		lead := c.Leader(10 * time.Second)
		adopted := time.Now()
		if v := waitWorkflow(t, lead, id, "adopted by the leader", 30*time.Second, func(v wfView) bool { return v.Resumed == 1 }); v.Node != lead.ID {
			t.Errorf("round %d: the adopted workflow's status names node %q, want %s", round, v.Node, lead.ID)
		}
		t.Logf("round %d: %s adopted %s %v after the kill", round, lead.ID, id, time.Since(adopted).Round(time.Millisecond))
		logBefore := len(owner.Output())
		owner.Restart() // its state is the one it had applied when it died: its own, running

		out, done, err := owner.Client().WorkflowResult(ctx, id, time.Minute)
		if err != nil || !done {
			t.Fatalf("round %d: the restarted old owner's result: %s %v %v\n%s", round, out, done, err, owner.Output()[logBefore:])
		}
		var res struct {
			First int
			Slow  []int
			Last  int
		}
		if err := json.Unmarshal(out, &res); err != nil || res.First != (round+6)*(round+6) || len(res.Slow) != 4 || res.Slow[3] != 6000 || res.Last != 1 {
			t.Fatalf("round %d: output %s (%v)", round, out, err)
		}
		for _, n := range c.Nodes {
			waitWorkflow(t, n, id, "succeeded", 15*time.Second, func(v wfView) bool { return v.State == "succeeded" })
		}
		fin := sameEverywhere(t, c, id)
		if fin.Node != lead.ID || fin.Resumed != 1 {
			t.Errorf("round %d: final status names node %q, resumed %d; want %s, 1", round, fin.Node, fin.Resumed, lead.ID)
		}
		for i, s := range fin.Steps {
			was := atKill.Steps[i]
			switch {
			case was.State == "done" && s.Runs != was.Runs:
				t.Errorf("round %d: step %s finished before the kill, then ran again (%d runs, %d before)", round, s.ID, s.Runs, was.Runs)
			case was.State == "running" && s.Runs != was.Runs+1:
				t.Errorf("round %d: step %s was running at the kill: %d runs, want %d", round, s.ID, s.Runs, was.Runs+1)
			}
		}
		if log := owner.Output()[logBefore:]; strings.Contains(log, id) {
			t.Errorf("round %d: the restarted old owner acted on the workflow it no longer owns:\n%s", round, log)
		}
	}
}
