package bench

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"github.com/lumenflow/lumen/plugins"
)

// modulePushBytes is the size of module_push_13mb_3_nodes's module: the size of an outside
// tester's module whose push took 55 s on three nodes when its bytes travelled in the raft log.
const modulePushBytes = 13 << 20

// paddedGuest returns the bench guest padded by a custom section named "lumen.bench.pad" to
// exactly size bytes, the padding starting with seed: different seeds give different digests,
// and the registry inspects the guest as it would the bench guest.
func paddedGuest(size int, seed uint64) []byte {
	const name = "lumen.bench.pad"
	out := make([]byte, 0, size)
	out = append(out, benchWasm...)
	pad := size - len(out) - 1 - 4 - 1 - len(name)
	n := 1 + len(name) + pad
	if pad < 8 || n >= 1<<28 {
		panic(fmt.Sprintf("paddedGuest(%d): out of range", size))
	}
	out = append(out, 0x00, byte(n)|0x80, byte(n>>7)|0x80, byte(n>>14)|0x80, byte(n>>21)) // id, 4-byte size
	out = append(out, byte(len(name)))
	out = append(out, name...)
	out = binary.LittleEndian.AppendUint64(out, seed)
	return out[:size]
}

// modulePush is the time to push a 13 MiB module through a follower of three voting nodes (each
// with its fsynced stores, over loopback TCP), from the call to its answer, and whether the
// leader stayed put: the raft term must not move across the pushes. Each push is a new module.
func modulePush(b *env) (*Result, error) {
	dir, err := os.MkdirTemp("", "lumen-bench-push-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var nodes []*clusterNode
	defer func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			nodes[i].close()
		}
	}()
	for i, id := range []string{"n1", "n2", "n3"} {
		var join *clusterNode
		if i > 0 {
			join = nodes[0]
		}
		n, err := startClusterNode(b.ctx, dir, id, join, false)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(nodes[0].e.Cluster().Nodes()) < 3 || !nodes[0].e.Cluster().Raft().IsLeader() {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the cluster did not form within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	follower := nodes[1].e
	pushes := 5
	if b.opts.Quick {
		pushes = 2
	}
	term := nodes[0].e.Cluster().Raft().Term()
	var lat latencies
	var total time.Duration
	for i := range pushes {
		wasm := paddedGuest(modulePushBytes, uint64(i)+1)
		t0 := time.Now()
		if _, err := follower.Modules().Add(b.ctx, wasm, plugins.AddOptions{}); err != nil {
			return nil, fmt.Errorf("push %d: %w", i, err)
		}
		d := time.Since(t0)
		lat.add(d)
		total += d
	}
	leaderKept := 1.0
	if !nodes[0].e.Cluster().Raft().IsLeader() || nodes[0].e.Cluster().Raft().Term() != term {
		leaderKept = 0
	}
	mean := float64(total.Microseconds()) / 1000 / float64(pushes)
	return &Result{Value: mean, Unit: UnitMillis, Lat: lat.summary(),
		Extra: []Figure{{Name: "leader_kept", Value: leaderKept, Unit: "bool", Notes: "1 when the raft term did not move across the pushes"}},
		Notes: fmt.Sprintf("mean of %d pushes of a new %d MiB module through a follower of 3 voting nodes on loopback (fsynced stores), from the call to its answer", pushes, modulePushBytes>>20)}, nil
}
