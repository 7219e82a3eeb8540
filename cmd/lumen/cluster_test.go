package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/lumenflow/lumen/engine/client"
	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/internal/lumentest"
)

// clusterDuration is how long the fault tests put load on the cluster: short in make test,
// longer (and with more leader kills) under LUMEN_ROBUSTNESS=1.
func clusterRounds() int {
	if os.Getenv("LUMEN_ROBUSTNESS") != "" {
		return 5
	}
	return 1
}

// baselineGoroutines records each node's goroutine count once the cluster is up and quiet.
func goroutines(t *testing.T, c *lumentest.Cluster) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, n := range c.Alive() {
		st, err := n.Client().Cluster(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range st.Members {
			if m.ID == n.ID {
				out[n.ID] = m.Goroutines
			}
		}
	}
	return out
}

// checkGoroutines fails when a node holds many more goroutines than at base once quiet again
// (leaked per-request or per-election goroutines grow with the load; a steady count does not).
func checkGoroutines(t *testing.T, c *lumentest.Cluster, base map[string]int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		now := goroutines(t, c)
		var over []string
		for id, n := range now {
			if b, ok := base[id]; ok && n > b+40 {
				over = append(over, fmt.Sprintf("%s: %d goroutines, %d at the start", id, n, b))
			}
		}
		if len(over) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines leaked: %v", over)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A real three-process cluster: a module pushed through a follower runs on every node; the
// leader is killed with SIGKILL under write load from every node; a new leader takes over
// within 2 s; no acknowledged write is lost; the old leader restarts, catches up, and every node
// ends with the same state and no leaked goroutines.
func TestCluster_LeaderKilledUnderLoadLosesNoAcknowledgedWrite(t *testing.T) {
	c := lumentest.StartCluster(t, 3, 0)
	leader := c.Leader(10 * time.Second)
	c.Converge(10 * time.Second)
	base := goroutines(t, c)
	ctx := context.Background()

	var follower *lumentest.Node
	for _, n := range c.Nodes {
		if n != leader {
			follower = n
			break
		}
	}
	wasm, err := os.ReadFile(guestbuild.Go(t, "../../engine/testdata/guest"))
	if err != nil {
		t.Fatal(err)
	}
	follower.Push(wasm, "svc", "1.0.0")
	for _, n := range c.Nodes {
		var task struct {
			Ref int64  `json:"ref"`
			Job string `json:"job"`
		}
		err := n.Client().JSON(ctx, "POST", "/v1/tasks", []byte(`{"module":"svc@1.0.0","function":"square","args":12,"grants":["objects","tasks","actors"]}`), &task)
		if err != nil {
			t.Fatalf("task on %s: %v", n.ID, err)
		}
		out, err := n.Client().Get(ctx, task.Job, task.Ref, 30*time.Second)
		if err != nil || string(out) != "144" {
			t.Fatalf("task on %s gave %q, %v", n.ID, out, err)
		}
	}

	var mu sync.Mutex
	acked := map[string]string{}
	var failovers []time.Duration
	for round := 0; round < clusterRounds(); round++ {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					alive := c.Alive()
					n := alive[(w+i)%len(alive)]
					key := fmt.Sprintf("load/r%d/w%d/%05d", round, w, i)
					val := key + "=" + strconv.Itoa(i)
					wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					err := n.Client().KVPut(wctx, key, []byte(val), key)
					cancel()
					if err == nil {
						mu.Lock()
						acked[key] = val
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(700 * time.Millisecond)
		old := c.Leader(10 * time.Second)
		killed := time.Now()
		old.Kill()
		nl := c.Leader(10 * time.Second)
		failovers = append(failovers, time.Since(killed))
		time.Sleep(700 * time.Millisecond)
		close(stop)
		wg.Wait()
		old.Restart()
		t.Logf("round %d: killed leader %s, new leader %s after %v", round, old.ID, nl.ID, failovers[len(failovers)-1])
	}
	hash := c.Converge(30 * time.Second)
	t.Logf("%d writes acknowledged; failovers %v; state %.12s", len(acked), failovers, hash)
	if len(acked) < 20 {
		t.Fatalf("only %d writes acknowledged", len(acked))
	}
	for _, n := range c.Nodes {
		for k, v := range acked {
			got, err := n.Client().KVGet(ctx, k)
			if err != nil || string(got) != v {
				t.Fatalf("%s: acknowledged %s=%q reads %q, %v", n.ID, k, v, got, err)
			}
		}
	}
	for _, d := range failovers {
		if d > 5*time.Second {
			t.Errorf("failover took %v", d)
		}
	}
	checkGoroutines(t, c, base)
}

// kvInput and kvOutput are the operations of the linearizability check: a register per key.
type kvInput struct {
	put        bool
	key, value string
}

type kvOutput struct {
	value string
	found bool
}

var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(kvInput).key
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range byKey {
			out = append(out, ops)
		}
		return out
	},
	Init: func() any { return kvOutput{} },
	Step: func(state, input, output any) (bool, any) {
		st, in := state.(kvOutput), input.(kvInput)
		if in.put {
			return true, kvOutput{value: in.value, found: true}
		}
		return output.(kvOutput) == st, st
	},
	Equal: func(a, b any) bool { return a == b },
}

// Clients write and read a few keys through every node while the leader is killed: porcupine
// finds the history linearizable. A write whose outcome is unknown (its node died, it timed
// out) may take effect at any time after its call; its client continues under a new id.
func TestCluster_KVLinearizableWhileLeadersAreKilled(t *testing.T) {
	c := lumentest.StartCluster(t, 3, 0)
	c.Leader(10 * time.Second)
	c.Converge(10 * time.Second)
	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }

	var mu sync.Mutex
	var ops []porcupine.Operation
	indeterminate, failedReads := 0, 0
	nextClient := 100
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			id := w
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				alive := c.Alive()
				n := alive[rng.IntN(len(alive))]
				key := fmt.Sprintf("lin/%d", rng.IntN(3))
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				if rng.IntN(2) == 0 {
					val := fmt.Sprintf("c%d-%d", w, i)
					call := now()
					err := n.Client().KVPut(ctx, key, []byte(val), "")
					ret := now()
					mu.Lock()
					if err != nil {
						// Unknown outcome: it may apply any time after call.
						ret = 1 << 62
						indeterminate++
					}
					ops = append(ops, porcupine.Operation{ClientId: id, Input: kvInput{put: true, key: key, value: val}, Call: call, Output: kvOutput{}, Return: ret})
					if err != nil {
						id = nextClient
						nextClient++
					}
					mu.Unlock()
				} else {
					call := now()
					v, err := n.Client().KVGet(ctx, key)
					ret := now()
					var ae *client.Error
					found := err == nil
					if errors.As(err, &ae) && ae.Status == 404 {
						err = nil
					}
					mu.Lock()
					if err == nil {
						ops = append(ops, porcupine.Operation{ClientId: id, Input: kvInput{key: key}, Call: call, Output: kvOutput{value: string(v), found: found}, Return: ret})
					} else {
						failedReads++
					}
					mu.Unlock()
				}
				cancel()
			}
		}()
	}
	for round := 0; round < clusterRounds(); round++ {
		time.Sleep(800 * time.Millisecond)
		old := c.Leader(10 * time.Second)
		old.Kill()
		c.Leader(10 * time.Second)
		time.Sleep(800 * time.Millisecond)
		old.Restart()
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	c.Converge(30 * time.Second)

	res, info := porcupine.CheckOperationsVerbose(kvModel, ops, 60*time.Second)
	t.Logf("%d operations (%d writes with unknown outcome, %d failed reads dropped): %v", len(ops), indeterminate, failedReads, res)
	if res != porcupine.Ok {
		path := t.TempDir() + "/history.html"
		porcupine.VisualizePath(kvModel, info, path)
		for _, s := range staleReads(ops) {
			t.Log(s)
		}
		t.Fatalf("history is not linearizable (%v); visualisation in %s", res, path)
	}
	if len(ops) < 50 {
		t.Fatalf("only %d operations completed", len(ops))
	}
}

// The leader is paused (SIGSTOP: it keeps its sockets but answers nothing, as a node cut off
// the network would): the majority elects a new leader and goes on committing; once resumed,
// the old leader steps down, catches up and every node holds the same state.
func TestCluster_IsolatedLeaderStepsDownAndConverges(t *testing.T) {
	c := lumentest.StartCluster(t, 3, 0)
	old := c.Leader(10 * time.Second)
	c.Converge(10 * time.Second)
	ctx := context.Background()
	old.Pause()
	var others []*lumentest.Node
	for _, n := range c.Nodes {
		if n != old {
			others = append(others, n)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	var nl *lumentest.Node
	for nl == nil && time.Now().Before(deadline) {
		for _, n := range others {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			st, err := n.Client().Cluster(cctx)
			cancel()
			if err == nil && st.Leader != "" && st.Leader != old.ID && st.Leader == n.ID {
				nl = n
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if nl == nil {
		t.Fatal("the majority elected no leader while the old one was cut off")
	}
	for i := range 20 {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := others[i%2].Client().KVPut(wctx, fmt.Sprintf("majority/%02d", i), []byte("v"), "")
		cancel()
		if err != nil {
			t.Fatalf("majority write %d: %v", i, err)
		}
	}
	old.Resume()
	c.Converge(30 * time.Second)
	st, err := old.Client().Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader == old.ID {
		t.Fatalf("the resumed old leader still leads: %+v", st)
	}
	if v, err := old.Client().KVGet(ctx, "majority/19"); err != nil || string(v) != "v" {
		t.Fatalf("old leader reads the majority's write as %q, %v", v, err)
	}
}

// staleReads names reads that missed a write which completed, after the write they saw, before
// they began: the plainest kind of linearizability violation, spelled out for the log.
func staleReads(ops []porcupine.Operation) []string {
	puts := map[string]porcupine.Operation{}
	for _, op := range ops {
		if in := op.Input.(kvInput); in.put {
			puts[in.value] = op
		}
	}
	var out []string
	for _, g := range ops {
		in := g.Input.(kvInput)
		if in.put {
			continue
		}
		seen := g.Output.(kvOutput)
		var after int64 = -1
		if seen.found {
			p, ok := puts[seen.value]
			if !ok {
				out = append(out, fmt.Sprintf("read of %s returned %q, which nobody wrote", in.key, seen.value))
				continue
			}
			after = p.Return
		}
		for _, q := range puts {
			qi := q.Input.(kvInput)
			if qi.key == in.key && qi.value != seen.value && q.Call > after && q.Return < g.Call {
				out = append(out, fmt.Sprintf("read of %s at [%d,%d] (client %d) returned %+v, but put %q finished at %d (call %d, client %d)",
					in.key, g.Call, g.Return, g.ClientId, seen, qi.value, q.Return, q.Call, q.ClientId))
				break
			}
		}
		if len(out) > 10 {
			break
		}
	}
	return out
}
