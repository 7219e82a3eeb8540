package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
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
	timing := []string{"--heartbeat-interval", "200ms", "--dead-after", "1500ms"}
	c := lumentest.StartCluster(t, 1, 0, append(timing, "--resources", "cpu=1")...)
	w1 := c.AddWorker("--resources", "cpu=2")
	w2 := c.AddWorker("--resources", "cpu=2")
	server := c.Nodes[0]
	ctx := context.Background()
	wasm, err := os.ReadFile(guestbuild.Go(t, "../../engine/testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	server.Push(wasm, "svc", "1.0.0")
	sc := server.Client()

	// Wait until the server sees both workers' resources.
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := sc.Cluster(ctx)
		if err == nil && len(st.Nodes) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server does not see the workers: %+v %v", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

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
	deadline = time.Now().Add(30 * time.Second)
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

func memberOf(st *client.ClusterStatus, id string) client.ClusterMember {
	for _, m := range st.Members {
		if m.ID == id {
			return m
		}
	}
	return client.ClusterMember{}
}
