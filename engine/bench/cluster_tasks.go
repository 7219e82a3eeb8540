package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/api"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/plugins"
	"github.com/lumenflow/lumen/sdk/abi"
)

// clusterNode is one node of the in-process cluster of cluster_tasks_3_nodes: an engine serving
// its API on loopback, as `lumen server` and `lumen worker` do.
type clusterNode struct {
	e   *engine.Engine
	srv *http.Server
	tr  *http.Transport
}

func (n *clusterNode) close() {
	n.srv.Close()
	n.e.Close(context.Background())
	n.tr.CloseIdleConnections()
}

// startClusterNode opens a node offering one cpu in dir: the first bootstraps, the others join
// it, as workers (non-voting) when worker is set.
func startClusterNode(ctx context.Context, dir, id string, join *clusterNode, worker bool) (*clusterNode, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		l.Close()
		return nil, err
	}
	raftAddr := rl.Addr().String()
	rl.Close()
	n := &clusterNode{tr: &http.Transport{MaxIdleConnsPerHost: 64}}
	cc := engine.ClusterConfig{NodeID: id, RaftBind: raftAddr, APIURL: "http://" + l.Addr().String(),
		HTTPClient: &http.Client{Transport: n.tr, Timeout: 30 * time.Second}, HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 5 * time.Second}
	if join != nil {
		tok, err := os.ReadFile(filepath.Join(join.e.DataDir(), engine.JoinTokenFile))
		if err != nil {
			l.Close()
			return nil, err
		}
		cc.Join, cc.JoinToken, cc.Worker = join.e.Cluster().Self().API, strings.TrimSpace(string(tok)), worker
	}
	n.e, err = engine.Open(ctx, engine.Config{DataDir: filepath.Join(dir, id), Resources: scheduler.Resources{scheduler.CPU: 1}, Cluster: cc})
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("node %s: %w", id, err)
	}
	s, err := api.New(n.e, api.Config{})
	if err != nil {
		n.e.Close(context.Background())
		l.Close()
		return nil, err
	}
	n.srv = &http.Server{Handler: s.Handler()}
	go n.srv.Serve(l)
	return n, nil
}

// clusterTasks is task throughput on one node and on three: CPU-bound tasks (spin: a few
// milliseconds of one core each) submitted to one node, each asking for one cpu, with eight in
// flight. Every node offers one cpu. With one node the tasks run one at a time; with three, the
// first node places what does not fit on the two others, which run them and keep their results
// until the first node fetches them. All three nodes share this machine's cores, so the figure
// says how much of the added nodes' room placement turns into throughput here, not what three
// machines would do.
func clusterTasks(b *env) (*Result, error) {
	dir, err := os.MkdirTemp("", "lumen-bench-cluster-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	first, err := startClusterNode(b.ctx, dir, "n1", nil, false)
	if err != nil {
		return nil, err
	}
	nodes := []*clusterNode{first}
	defer func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			nodes[i].close()
		}
	}()
	m, err := first.e.Modules().Add(b.ctx, benchWasm, plugins.AddOptions{})
	if err != nil {
		return nil, err
	}
	const inFlightTasks = 8
	var lat latencies
	var placedBefore atomic.Int64
	run := func(d time.Duration) (float64, error) {
		return rate(b.ctx, d, many(inFlightTasks, func(int) (int, error) {
			t0 := time.Now()
			h, err := first.e.Tasks().Submit(b.ctx, "bench", &abi.TaskRequest{Module: m.Digest, Function: "spin", Resources: abi.Resources{CPU: 1}}, host.Grants{})
			if err != nil {
				return 0, fmt.Errorf("submit: %w", err)
			}
			out, err := first.e.Objects().Get(b.ctx, "bench", h, -1)
			if err != nil || string(out) != "ok" {
				return 0, fmt.Errorf("spin: %q, %v", out, err)
			}
			first.e.Objects().Release("bench", h)
			lat.add(time.Since(t0))
			return 1, nil
		}, &lat))
	}
	one, err := run(b.opts.Duration)
	if err != nil {
		return nil, fmt.Errorf("one node: %w", err)
	}
	for _, id := range []string{"w2", "w3"} {
		w, err := startClusterNode(b.ctx, dir, id, first, true)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, w)
	}
	// Wait until the first node sees both workers' room, and they hold the module.
	deadline := time.Now().Add(30 * time.Second)
	holds := func(n *clusterNode) bool { _, err := n.e.Modules().Registry().Resolve(m.Digest); return err == nil }
	for len(first.e.Cluster().Nodes()) < 3 || !holds(nodes[1]) || !holds(nodes[2]) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the workers did not join within 30 s: %d nodes seen", len(first.e.Cluster().Nodes()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	placedBefore.Store(first.e.Cluster().Self().PlacedOut)
	lat = latencies{}
	three, err := run(b.opts.Duration)
	if err != nil {
		return nil, fmt.Errorf("three nodes: %w", err)
	}
	placed := first.e.Cluster().Self().PlacedOut - placedBefore.Load()
	return &Result{Value: three, Unit: UnitOps, Lat: lat.summary(),
		Baseline: &Figure{Name: "one_node", Value: one, Unit: UnitOps, Notes: "the same load on the first node alone, before the workers join"},
		Notes: fmt.Sprintf("spin tasks (a few ms of a core each) asking one cpu each, %d in flight, submitted to one node; every node offers one cpu; %d of the three-node run's tasks were placed on the workers. The nodes share this machine's %d cores",
			inFlightTasks, placed, runtimeProcs())}, nil
}
