package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine/client"
	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/internal/lumentest"
)

// A server with room for one task at a time and two workers: tasks submitted to the server run
// on the workers too (their module reached them by replication). One worker is killed with
// SIGKILL while it runs tasks: the leader declares it dead, the server runs its tasks again
// elsewhere, and every task's result arrives exactly once, right — no loss, no duplicate.
func TestWorkers_TasksPlacedAcrossNodesSurviveAWorkerKilled(t *testing.T) {
	c, ws, sc := workerCluster(t, "cpu=1", "cpu=2", "cpu=2")
	server, w1, w2 := c.Nodes[0], ws[0], ws[1]
	ctx := context.Background()

	const n = 16
	type sub struct {
		Ref int64  `json:"ref"`
		Job string `json:"job"`
	}
	subs := make([]sub, n)
	for i := range n {
		body := fmt.Sprintf(`{"module":"svc@1.0.0","function":"busy","args":%d,"resources":{"cpu":1},"grants":["objects","tasks","actors"]}`, 3000+i)
		if err := sc.JSON(ctx, "POST", "/v1/tasks", []byte(body), &subs[i]); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	// Kill w2 once it is running something.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := w2.Client().Cluster(ctx)
		if err == nil && memberOf(st, w2.ID).TasksRun > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no task was placed on %s: %+v\n%s", w2.ID, st, server.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	w2.Kill()

	var wg sync.WaitGroup
	results := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := sc.Get(ctx, subs[i].Job, subs[i].Ref, 90*time.Second)
			results[i], errs[i] = string(out), err
		}()
	}
	wg.Wait()
	lost := 0
	for i := range n {
		if errs[i] != nil || results[i] != strconv.Itoa(3000+i) {
			lost++
			t.Errorf("task %d: %q, %v", i, results[i], errs[i])
		}
	}
	st, err := sc.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv, m1 := memberOf(st, server.ID), memberOf(st, w1.ID)
	if !memberOf(st, w2.ID).Dead {
		t.Errorf("the killed worker was not declared dead: %+v", memberOf(st, w2.ID))
	}
	t.Logf("%d tasks: %d results, %d lost, 0 duplicates possible (one result object each); runs: server %d, %s %d, killed %s ≥1; server placed %d out and ran %d again after the worker died",
		n, n-lost, lost, srv.TasksRun, w1.ID, m1.TasksRun, w2.ID, srv.PlacedOut, srv.Retried)
	if srv.PlacedOut == 0 || m1.TasksRun == 0 {
		t.Errorf("tasks did not spread: server placed %d, %s ran %d", srv.PlacedOut, w1.ID, m1.TasksRun)
	}
	if srv.Retried == 0 {
		t.Errorf("no task was run again after the worker died")
	}
}

// workerCluster starts a server offering serverRes and one worker per workerRes (--resources
// values), with heartbeats every 200 ms and nodes declared dead after 1.5 s, pushes the engine's
// test guest as svc@1.0.0, and waits until the server sees every node.
func workerCluster(t *testing.T, serverRes string, workerRes ...string) (*lumentest.Cluster, []*lumentest.Node, *client.Client) {
	t.Helper()
	timing := []string{"--heartbeat-interval", "200ms", "--dead-after", "1500ms"}
	c := lumentest.StartCluster(t, 1, 0, append(timing, "--resources", serverRes)...)
	var ws []*lumentest.Node
	for _, res := range workerRes {
		ws = append(ws, c.AddWorker("--resources", res))
	}
	wasm, err := os.ReadFile(guestbuild.Go(t, "../../engine/testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	c.Nodes[0].Push(wasm, "svc", "1.0.0")
	sc := c.Nodes[0].Client()
	waitForNodes(t, sc, 1+len(workerRes))
	return c, ws, sc
}

// waitForNodes waits until the node behind c sees n live nodes' resources (from the leader's
// heartbeat answers).
func waitForNodes(t *testing.T, c *client.Client, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := c.Cluster(context.Background())
		if err == nil && len(st.Nodes) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node does not see %d nodes: %+v %v", n, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func memberOf(st *client.ClusterStatus, id string) client.ClusterMember {
	for _, m := range st.Members {
		if m.ID == id {
			return m
		}
	}
	return client.ClusterMember{}
}

// A workflow runs on the server that accepted it. That server is killed with SIGKILL in the
// middle: the leader declares it dead, adopts the workflow and finishes it from its checkpoints;
// the step that had finished before the kill does not run again.
func TestCluster_WorkflowOfADeadNodeCarriesOnElsewhere(t *testing.T) {
	c := lumentest.StartCluster(t, 3, 0, "--heartbeat-interval", "200ms", "--dead-after", "1500ms")
	leader := c.Leader(10 * time.Second)
	var owner *lumentest.Node
	for _, n := range c.Nodes {
		if n != leader {
			owner = n
			break
		}
	}
	wasm, err := os.ReadFile(guestbuild.Go(t, "../../engine/testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	owner.Push(wasm, "svc", "1.0.0")
	ctx := context.Background()
	oc := owner.Client()
	doc := []byte(`{"version": 1, "name": "carry-on", "steps": [
	  {"id": "first", "module": "svc", "function": "square", "args": 6},
	  {"id": "slow", "module": "svc", "function": "busy", "map": [1, 8000, 8000, 8000, 8000], "args": "${item}"},
	  {"id": "last", "module": "svc", "function": "square", "args": "${first}"}],
	  "output": {"slow": "${slow}", "last": "${last}"}}`)
	st, err := oc.SubmitWorkflow(ctx, doc, "", []string{"objects", "tasks", "actors"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		cur, err := oc.Workflow(ctx, st.ID)
		if err != nil {
			t.Fatal(err)
		}
		states := map[string]string{}
		for _, s := range cur.Steps {
			states[s.ID] = s.State
		}
		if cur.State != "running" {
			t.Fatalf("workflow ended before the kill: %+v", cur)
		}
		if states["first"] == "done" && states["slow"] == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workflow did not get going: %+v", cur)
		}
		time.Sleep(5 * time.Millisecond)
	}
	owner.Kill()

	lc := c.Leader(10 * time.Second).Client()
	deadline = time.Now().Add(90 * time.Second)
	for {
		out, done, err := lc.WorkflowResult(ctx, st.ID, 5*time.Second)
		if err == nil && done {
			var res struct {
				Slow []int
				Last int
			}
			if err := json.Unmarshal(out, &res); err != nil || res.Last != 1296 || len(res.Slow) != 5 || res.Slow[4] != 8000 {
				t.Fatalf("output %s (%v)", out, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the workflow did not finish elsewhere: %s %v %v", out, done, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	fin, err := lc.Workflow(ctx, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range fin.Steps {
		if s.ID == "first" && s.Runs != 1 {
			t.Errorf("step first finished before the kill, then ran again (%d runs)", s.Runs)
		}
	}
	if fin.Resumed != 1 {
		t.Errorf("resumed %d times, want 1", fin.Resumed)
	}
	t.Logf("workflow %s finished on %s after its node died: %+v", st.ID, fin.State, fin.Steps)
}

// A STRICT_SPREAD placement group over a server and two workers puts one bundle on each node,
// each reserved by its node; a task sent to a worker's bundle runs on that worker.
func TestCluster_PlacementGroupAcrossNodes(t *testing.T) {
	c := lumentest.StartCluster(t, 1, 0, "--heartbeat-interval", "200ms", "--resources", "cpu=1")
	c.AddWorker("--resources", "cpu=1")
	c.AddWorker("--resources", "cpu=1")
	server := c.Nodes[0]
	sc := server.Client()
	ctx := context.Background()
	wasm, err := os.ReadFile(guestbuild.Go(t, "../../engine/testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	server.Push(wasm, "svc", "1.0.0")
	waitForNodes(t, sc, 3)
	var pg struct {
		ID    string   `json:"id"`
		Nodes []string `json:"nodes"`
		Ready []bool   `json:"ready"`
	}
	body := []byte(`{"strategy":"STRICT_SPREAD","bundles":[{"cpu":1},{"cpu":1},{"cpu":1}]}`)
	if err := sc.JSON(ctx, "POST", "/v1/placement_groups", body, &pg); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, n := range pg.Nodes {
		seen[n] = true
		if !pg.Ready[i] {
			t.Errorf("bundle %d on %s not reserved: %+v", i, n, pg)
		}
	}
	if len(seen) != 3 {
		t.Fatalf("STRICT_SPREAD bundles share nodes: %v", pg.Nodes)
	}
	// A fourth bundle cannot be spread anywhere.
	if err := sc.JSON(ctx, "POST", "/v1/placement_groups", []byte(`{"strategy":"STRICT_SPREAD","bundles":[{"cpu":1}]}`), nil); err == nil {
		t.Fatal("a group placed on resources already reserved")
	}
	for i, n := range pg.Nodes {
		if n == server.ID {
			continue
		}
		var task struct {
			Ref int64  `json:"ref"`
			Job string `json:"job"`
		}
		req := fmt.Sprintf(`{"module":"svc@1.0.0","function":"square","args":%d,"resources":{"cpu":1},"placement_group":%q,"bundle_index":%d,"grants":["objects","tasks","actors"]}`, i+5, pg.ID, i)
		if err := sc.JSON(ctx, "POST", "/v1/tasks", []byte(req), &task); err != nil {
			t.Fatal(err)
		}
		out, err := sc.Get(ctx, task.Job, task.Ref, 60*time.Second)
		if err != nil || string(out) != strconv.Itoa((i+5)*(i+5)) {
			t.Fatalf("task in bundle %d on %s: %q %v", i, n, out, err)
		}
		st, err := sc.Cluster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if memberOf(st, n).TasksRun == 0 {
			t.Fatalf("the task of bundle %d did not run on %s", i, n)
		}
	}
	if _, _, err := sc.Do(ctx, "DELETE", "/v1/placement_groups/"+pg.ID, nil); err != nil {
		t.Fatal(err)
	}

	// Actor names are the cluster's: a name taken on the server cannot be taken on a worker,
	// and looking it up there gives a handle there whose calls reach it.
	create := []byte(`{"module":"svc@1.0.0","actor":"Counter","args":1,"name":"cache","namespace":"shared","grants":["objects","tasks","actors"]}`)
	if err := sc.JSON(ctx, "POST", "/v1/actors", create, nil); err != nil {
		t.Fatal(err)
	}
	wc := c.Nodes[1].Client()
	err = wc.JSON(ctx, "POST", "/v1/actors", create, nil)
	if err == nil || !strings.Contains(err.Error(), "already lives") || !strings.Contains(err.Error(), server.ID) {
		t.Fatalf("the same name on a worker: %v", err)
	}
	var found struct {
		Actor int64  `json:"actor"`
		Job   string `json:"job"`
	}
	if err := wc.JSON(ctx, "GET", "/v1/actors?namespace=shared&name=cache", nil, &found); err != nil {
		t.Fatalf("lookup on a worker: %v", err)
	}
	if out, err := callActor(wc, found.Job, found.Actor, "incr", "1"); err != nil || out != "2" {
		t.Fatalf("a call through the worker's handle: %q %v", out, err)
	}
}
