package lumentest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine/client"
)

// Cluster is n real `lumen server` processes on loopback: n1 bootstraps, the others join it.
type Cluster struct {
	t     testing.TB
	Nodes []*Node
	Token string // the join token
	base  string
	extra []string
}

// AddWorker starts a `lumen worker` that joins through node 0, with extra flags (e.g.
// "--resources", "cpu=2"), and appends it to Nodes.
func (c *Cluster) AddWorker(extra ...string) *Node {
	c.t.Helper()
	id := fmt.Sprintf("w%d", len(c.Nodes)+1)
	nd := &Node{t: c.t, ID: id, DataDir: filepath.Join(c.base, id)}
	nd.args = append([]string{"worker", "--id", id, "--data", nd.DataDir, "--raft", freePort(c.t), "--http", freePort(c.t),
		"--join", c.Nodes[0].URL, "--join-token", c.Token}, c.extra...)
	nd.args = append(nd.args, extra...)
	nd.start()
	c.t.Cleanup(nd.Kill)
	c.Nodes = append(c.Nodes, nd)
	return nd
}

// StartCluster starts n nodes and waits until each serves. Each node keeps its ports and data
// directory across Restart. heartbeat tunes raft's timeouts (0 keeps the default); extra flags
// go to every node.
func StartCluster(t testing.TB, n int, heartbeat time.Duration, extra ...string) *Cluster {
	t.Helper()
	c := &Cluster{t: t, base: t.TempDir(), extra: extra}
	base := c.base
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("n%d", i)
		nd := &Node{t: t, ID: id, DataDir: filepath.Join(base, id)}
		args := []string{"server", "--id", id, "--data", nd.DataDir, "--raft", freePort(t), "--http", freePort(t)}
		if heartbeat > 0 {
			args = append(args, "--heartbeat", heartbeat.String())
		}
		args = append(args, extra...)
		if i > 1 {
			args = append(args, "--join", c.Nodes[0].URL, "--join-token", c.Token)
		}
		nd.args = args
		nd.start()
		t.Cleanup(nd.Kill)
		c.Nodes = append(c.Nodes, nd)
		if i == 1 {
			tok, err := os.ReadFile(filepath.Join(nd.DataDir, "join-token"))
			if err != nil {
				t.Fatal(err)
			}
			c.Token = strings.TrimSpace(string(tok))
		}
	}
	return c
}

func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Alive returns the nodes whose process runs.
func (c *Cluster) Alive() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.Alive() {
			out = append(out, n)
		}
	}
	return out
}

// Leader waits until a running node reports itself leader, up to d.
func (c *Cluster) Leader(d time.Duration) *Node {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		for _, n := range c.Alive() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			st, err := n.Client().Cluster(ctx)
			cancel()
			if err == nil && st.Leader == n.ID {
				return n
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no leader within %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Converge waits until every running node reports the same state hash and applied index, and
// returns the hash.
func (c *Cluster) Converge(d time.Duration) string {
	c.t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for {
		hashes := map[string]bool{}
		var desc []string
		ok := true
		for _, n := range c.Alive() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := n.Client().Cluster(ctx)
			cancel()
			if err != nil {
				ok = false
				desc = append(desc, fmt.Sprintf("%s: %v", n.ID, err))
				continue
			}
			for _, m := range st.Members {
				if m.ID == n.ID {
					hashes[m.Hash] = true
					desc = append(desc, fmt.Sprintf("%s: applied %d hash %.12s", n.ID, m.Applied, m.Hash))
				}
			}
		}
		last = strings.Join(desc, "; ")
		if ok && len(hashes) == 1 {
			for h := range hashes {
				if h != "" {
					return h
				}
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("nodes did not converge within %v: %s", d, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Client returns a client of node i.
func (c *Cluster) Client(i int) *client.Client { return c.Nodes[i].Client() }
