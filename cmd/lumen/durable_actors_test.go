package main

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/internal/lumentest"
)

// The outside tester's finding: a counter actor's 100 acknowledged increments were lost with
// its node, the actor created again elsewhere from its constructor. A durable actor
// ("durable": true) stores its state in the replicated state before each call is answered.
//
// Three servers offer an "accel" resource; a worker without it owns a durable counter that
// asks for one, so it runs on a server. After 100 acknowledged increments that server is
// SIGKILLed (a voter: raft carries on with the other two); the very next call, made at once,
// answers 101 from the instance the worker created again on another server, and the one after
// 102. The nodes left converge on the same state. LUMEN_ROBUSTNESS=1: four rounds, the killed
// server restarted between them, the count carried through every kill.
func TestActors_DurableActorLosesNoAcknowledgedCallWithItsNode(t *testing.T) {
	began := time.Now()
	c := lumentest.StartCluster(t, 3, 0, "--heartbeat-interval", "200ms", "--dead-after", "1500ms", "--resources", "cpu=1,accel=1")
	owner := c.AddWorker("--resources", "cpu=1")
	oc := owner.Client()
	ctx := context.Background()
	wasm, err := os.ReadFile(guestbuild.Go(t, "../../engine/testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	c.Nodes[0].Push(wasm, "svc", "1.0.0")
	waitForNodes(t, oc, 4)
	c.Converge(20 * time.Second)
	t.Logf("cluster of 3 servers and a worker ready in %v (guest build included)", time.Since(began))

	var a struct {
		Actor int64  `json:"actor"`
		Job   string `json:"job"`
	}
	body := `{"module":"svc@1.0.0","actor":"Counter","args":0,"durable":true,"resources":{"custom":{"accel":1}},"grants":["objects","tasks","actors"]}`
	deadline := time.Now().Add(20 * time.Second)
	for {
		// The worker may not know the module yet: it follows the replicated registry.
		err := oc.JSON(ctx, "POST", "/v1/actors", []byte(body), &a)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("create: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// LUMEN_ROBUSTNESS=1: more rounds, the killed server restarted on its data between them.
	rounds := 1
	if os.Getenv("LUMEN_ROBUSTNESS") != "" {
		rounds = 4
	}
	n := 0 // the counter's acknowledged value
	for round := 1; round <= rounds; round++ {
		start := time.Now()
		for range 100 {
			n++
			if out, err := callActor(oc, a.Job, a.Actor, "incr", "1"); err != nil || out != strconv.Itoa(n) {
				t.Fatalf("round %d: increment to %d: %q %v", round, n, out, err)
			}
		}
		calls := time.Since(start)
		var rec actorRecord
		deadline = time.Now().Add(20 * time.Second)
		for {
			r, ok := actorRecordOf(t, oc, owner.ID, a.Actor)
			if ok && r.State == "ALIVE" && r.Node != "" && r.Node != owner.ID && r.Restarts == round-1 {
				rec = r
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("actor %d: record %+v (found %v), want it alive on a server", a.Actor, r, ok)
			}
			time.Sleep(50 * time.Millisecond)
		}
		var holder *lumentest.Node
		for _, x := range c.Nodes {
			if x.ID == rec.Node {
				holder = x
			}
		}
		if holder == nil {
			t.Fatalf("the actor runs on %s, not a server of the test", rec.Node)
		}
		holder.Kill()
		killed := time.Now()
		n++
		out, err := callActor(oc, a.Job, a.Actor, "incr", "1")
		if err != nil || out != strconv.Itoa(n) {
			t.Fatalf("round %d: the first call after %s was killed answers %q, %v; want %d\n%s", round, holder.ID, out, err, n, owner.Output())
		}
		recovered := time.Since(killed)
		n++
		if out, err := callActor(oc, a.Job, a.Actor, "incr", "1"); err != nil || out != strconv.Itoa(n) {
			t.Fatalf("round %d: the next call answers %q, %v; want %d", round, out, err, n)
		}
		after, _ := actorRecordOf(t, oc, owner.ID, a.Actor)
		if after.Node == holder.ID || after.Restarts != round {
			t.Fatalf("round %d: after the kill the record says %+v; want it moved off %s, restarted %d times", round, after, holder.ID, round)
		}
		t.Logf("round %d: 100 durable calls through %s in %v (%.1f ms each); %s killed; the next call answered %d from %s after %v",
			round, owner.ID, calls, float64(calls.Microseconds())/100/1000, holder.ID, n-1, after.Node, recovered)
		if round < rounds {
			holder.Restart()
			c.Converge(60 * time.Second)
		}
	}
	hash := c.Converge(30 * time.Second)
	t.Logf("the nodes left converged on state %.12s", hash)
}
