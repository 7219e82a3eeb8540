package raftstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// ClusterMeasure is what MeasureWrites reports of a cluster under write load.
type ClusterMeasure struct {
	WritesPerSecond float64
	P50, P99        time.Duration // commit latency of one write, as its writer sees it
	Writes          int
}

// localCluster is n Nodes on loopback TCP, each with its own folder under dir and fsynced
// stores, forwarding to each other directly.
type localCluster struct {
	mu    sync.Mutex
	nodes map[string]*Node
	dir   string
}

func (c *localCluster) node(id string) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *localCluster) Apply(ctx context.Context, leader string, cmd []byte) error {
	if n := c.node(leader); n != nil {
		return n.ApplyEncoded(ctx, cmd)
	}
	return fmt.Errorf("%w: %s is down", ErrUnreachable, leader)
}

func (c *localCluster) ReadIndex(ctx context.Context, leader string) (uint64, error) {
	if n := c.node(leader); n != nil {
		return n.ReadIndex(ctx)
	}
	return 0, fmt.Errorf("%w: %s is down", ErrUnreachable, leader)
}

func startLocalCluster(ctx context.Context, n, maxBatch int) (*localCluster, error) {
	dir, err := os.MkdirTemp("", "lumen-raft-bench-")
	if err != nil {
		return nil, err
	}
	c := &localCluster{nodes: map[string]*Node{}, dir: dir}
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("b%d", i)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			c.close()
			return nil, err
		}
		addr := l.Addr().String()
		l.Close()
		nd, err := OpenNode(ctx, NodeConfig{ID: id, Dir: filepath.Join(dir, id), Bind: addr, Bootstrap: i == 1, Forwarder: c, MaxBatch: maxBatch})
		if err != nil {
			c.close()
			return nil, err
		}
		c.mu.Lock()
		c.nodes[id] = nd
		c.mu.Unlock()
		if i == 1 {
			if _, err := c.leader(ctx); err != nil {
				c.close()
				return nil, err
			}
			continue
		}
		for {
			l, err := c.leader(ctx)
			if err != nil {
				c.close()
				return nil, err
			}
			if err = l.AddVoter(ctx, id, nd.Address()); err == nil {
				break
			} else if ctx.Err() != nil {
				c.close()
				return nil, err
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c, nil
}

func (c *localCluster) leader(ctx context.Context) (*Node, error) {
	for {
		c.mu.Lock()
		for _, n := range c.nodes {
			if n.IsLeader() {
				c.mu.Unlock()
				return n, nil
			}
		}
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, errors.New("raftstore: no leader elected")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (c *localCluster) close() {
	c.mu.Lock()
	for id, n := range c.nodes {
		n.Close()
		delete(c.nodes, id)
	}
	c.mu.Unlock()
	os.RemoveAll(c.dir)
}

// MeasureWrites starts a cluster of nodes on loopback TCP (fsynced stores in a temporary
// folder), and has writers goroutines commit small writes through the leader for d, each
// waiting for its write before the next. maxBatch caps the commands per log entry (1: one
// command per entry, no batching).
func MeasureWrites(ctx context.Context, nodes, writers, maxBatch int, d time.Duration) (*ClusterMeasure, error) {
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := startLocalCluster(sctx, nodes, maxBatch)
	if err != nil {
		return nil, err
	}
	defer c.close()
	l, err := c.leader(sctx)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var lats []time.Duration
	var firstErr error
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	val := make([]byte, 64)
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for i := 0; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				err := l.Apply(ctx, &Command{Ops: []Op{{Kind: OpSet, Key: fmt.Appendf(nil, "bench/%d/%d", w, i), Value: val}}})
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if firstErr != nil {
		return nil, firstErr
	}
	if len(lats) == 0 {
		return nil, errors.New("raftstore: no write committed")
	}
	slices.Sort(lats)
	return &ClusterMeasure{
		WritesPerSecond: float64(len(lats)) / el.Seconds(), Writes: len(lats),
		P50: lats[len(lats)/2], P99: lats[min(len(lats)-1, len(lats)*99/100)],
	}, nil
}

// MeasureFailover starts a cluster of nodes, stops its leader, and returns how long it took
// until another node, as the new leader, committed a write.
func MeasureFailover(ctx context.Context, nodes int) (time.Duration, error) {
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c, err := startLocalCluster(sctx, nodes, 0)
	if err != nil {
		return 0, err
	}
	defer c.close()
	l, err := c.leader(sctx)
	if err != nil {
		return 0, err
	}
	// Wait until every follower holds the log, so any may win the election.
	for {
		ok := true
		c.mu.Lock()
		for _, n := range c.nodes {
			ok = ok && n.KV().Applied() >= l.KV().Applied()
		}
		c.mu.Unlock()
		if ok {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.mu.Lock()
	delete(c.nodes, l.ID())
	c.mu.Unlock()
	t0 := time.Now()
	l.Close()
	for {
		nl, err := c.leader(sctx)
		if err != nil {
			return 0, err
		}
		if err := nl.Apply(sctx, &Command{Ops: []Op{{Kind: OpSet, Key: []byte("after-failover"), Value: []byte("1")}}}); err == nil {
			return time.Since(t0), nil
		} else if sctx.Err() != nil {
			return 0, err
		}
	}
}
