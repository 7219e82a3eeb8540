package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine/client"
	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/internal/lumentest"
)

// actorRecord is the part of GET /v1/actors's records the test reads.
type actorRecord struct {
	Owner    string `json:"owner"`
	Handle   int64  `json:"handle"`
	Node     string `json:"node"`
	Remote   int64  `json:"remote"`
	Restarts int    `json:"restarts"`
	State    string `json:"state"`
	Reason   string `json:"reason"`
}

// actorRecordOf reads the record of actor id owned by owner through c.
func actorRecordOf(t *testing.T, c *client.Client, owner string, id int64) (actorRecord, bool) {
	t.Helper()
	var out struct {
		Actors []actorRecord `json:"actors"`
	}
	if err := c.JSON(context.Background(), "GET", "/v1/actors", nil, &out); err != nil {
		t.Fatal(err)
	}
	for _, r := range out.Actors {
		if r.Owner == owner && r.Handle == id {
			return r, true
		}
	}
	return actorRecord{}, false
}

// callActor calls method of actor id through c and waits for the result.
func callActor(c *client.Client, job string, id int64, method, arg string) (string, error) {
	ctx := context.Background()
	var ref struct {
		Ref int64 `json:"ref"`
	}
	if err := c.JSON(ctx, "POST", fmt.Sprintf("/v1/actors/%d/call/%s?job=%s", id, method, job), []byte(arg), &ref); err != nil {
		return "", err
	}
	out, err := c.Get(ctx, job, ref.Ref, 60*time.Second)
	return string(out), err
}

// A server with no "accel" resource and a worker with it: an actor asking for accel is created
// on the worker and called in order through the server. The worker is killed with SIGKILL: the
// server creates the actor again on a second worker (max_restarts 1), where it answers from a
// fresh constructor. When that worker is killed too, an actor with max_restarts 0 and the first
// one, its restart spent, fail their calls naming the node they were lost with. The nodes left
// end with the same state and no leaked goroutines.
func TestActors_PlacedOnAWorkerAndRestartedWhenItIsKilled(t *testing.T) {
	c := lumentest.StartCluster(t, 1, 0, "--heartbeat-interval", "200ms", "--dead-after", "1500ms", "--resources", "cpu=1")
	plain := c.AddWorker("--resources", "cpu=1")
	w1 := c.AddWorker("--resources", "cpu=1,accel=2")
	server := c.Nodes[0]
	sc := server.Client()
	ctx := context.Background()
	wasm, err := os.ReadFile(guestbuild.Go(t, "../../engine/testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	server.Push(wasm, "svc", "1.0.0")
	waitForNodes(t, sc, 3)
	c.Converge(20 * time.Second)
	base := goroutines(t, c)

	create := func(restarts int) (int64, string) {
		t.Helper()
		var a struct {
			Actor int64  `json:"actor"`
			Job   string `json:"job"`
		}
		body := fmt.Sprintf(`{"module":"svc@1.0.0","actor":"Counter","args":10,"max_restarts":%d,"resources":{"custom":{"accel":1}},"grants":["objects","tasks","actors"]}`, restarts)
		if err := sc.JSON(ctx, "POST", "/v1/actors", []byte(body), &a); err != nil {
			t.Fatal(err)
		}
		return a.Actor, a.Job
	}
	waitRecord := func(id int64, what string, ok func(actorRecord) bool) actorRecord {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			r, found := actorRecordOf(t, sc, server.ID, id)
			if found && ok(r) {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("actor %d: %s: record %+v (found %v)\n%s", id, what, r, found, server.Output())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// A named actor of the server, looked up on a worker, answers calls made there.
	var named struct {
		Actor int64  `json:"actor"`
		Job   string `json:"job"`
	}
	body := `{"module":"svc@1.0.0","actor":"Counter","args":100,"name":"cache","namespace":"shared","grants":["objects","tasks","actors"]}`
	if err := sc.JSON(ctx, "POST", "/v1/actors", []byte(body), &named); err != nil {
		t.Fatal(err)
	}
	pc := plain.Client()
	var found struct {
		Actor int64  `json:"actor"`
		Job   string `json:"job"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := pc.JSON(ctx, "GET", "/v1/actors?namespace=shared&name=cache", nil, &found)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lookup on %s: %v", plain.ID, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, err := callActor(pc, found.Job, found.Actor, "incr", "1"); err != nil || out != "101" {
		t.Fatalf("a call through %s: %q %v", plain.ID, out, err)
	}
	if out, err := callActor(sc, named.Job, named.Actor, "incr", "1"); err != nil || out != "102" {
		t.Fatalf("the same actor through the server: %q %v", out, err)
	}

	a, job := create(1)
	// Calls queued back to back run in the order they came.
	refs := make([]int64, 20)
	for i := range refs {
		var ref struct {
			Ref int64 `json:"ref"`
		}
		if err := sc.JSON(ctx, "POST", fmt.Sprintf("/v1/actors/%d/call/incr?job=%s", a, job), []byte("1"), &ref); err != nil {
			t.Fatal(err)
		}
		refs[i] = ref.Ref
	}
	for i, ref := range refs {
		out, err := sc.Get(ctx, job, ref, 60*time.Second)
		if err != nil || string(out) != strconv.Itoa(11+i) {
			t.Fatalf("call %d through the server: %q %v", i, out, err)
		}
	}
	waitRecord(a, "alive on "+w1.ID, func(r actorRecord) bool { return r.State == "ALIVE" && r.Node == w1.ID && r.Remote > 0 })

	w2 := c.AddWorker("--resources", "cpu=1,accel=2")
	waitForNodes(t, sc, 4)
	w1.Kill()
	rec := waitRecord(a, "restarted on "+w2.ID, func(r actorRecord) bool { return r.State == "ALIVE" && r.Node == w2.ID && r.Restarts == 1 })
	if out, err := callActor(sc, job, a, "incr", "5"); err != nil || out != "15" {
		t.Fatalf("the restarted actor answers %q, %v; want 15 (its constructor ran again)", out, err)
	}
	b, _ := create(0)
	if out, err := callActor(sc, job, b, "incr", "2"); err != nil || out != "12" {
		t.Fatalf("a second placed actor: %q %v", out, err)
	}
	waitRecord(b, "alive on "+w2.ID, func(r actorRecord) bool { return r.State == "ALIVE" && r.Node == w2.ID })
	t.Logf("actor %d moved from %s to %s: %+v", a, w1.ID, w2.ID, rec)

	w2.Kill()
	for _, x := range []struct {
		id   int64
		want string
	}{{a, "max_restarts 1"}, {b, "max_restarts 0"}} {
		deadline := time.Now().Add(60 * time.Second)
		for {
			_, err := callActor(sc, job, x.id, "incr", "1")
			if err != nil && strings.Contains(err.Error(), "may not restart") {
				if !strings.Contains(err.Error(), "lost with node "+w2.ID) || !strings.Contains(err.Error(), x.want) {
					t.Fatalf("actor %d after its node was killed: %v", x.id, err)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("actor %d still answers after its node was killed: %v", x.id, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitRecord(b, "dead", func(r actorRecord) bool {
		return r.State == "DEAD" && strings.Contains(r.Reason, "lost with node "+w2.ID)
	})

	hash := c.Converge(30 * time.Second)
	t.Logf("server and %s converged on state %.12s", plain.ID, hash)
	checkGoroutines(t, c, base)
}
