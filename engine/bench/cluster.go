package bench

import (
	"fmt"
	"time"

	"github.com/lumenflow/lumen/raftstore"
)

// UnitWrites and UnitMillis are the units of the cluster section.
const (
	UnitWrites = "writes/s"
	UnitMillis = "ms"
)

// The cluster section: the replicated control plane on three nodes over loopback TCP, each with
// its own fsynced badger stores in a temporary folder, as `lumen server` runs them.

// clusterWriters is how many goroutines commit writes at once: a busy control plane's load.
const clusterWriters = 256

func clusterWrites(b *env) (*Result, error) {
	batched, err := raftstore.MeasureWrites(b.ctx, 3, clusterWriters, 0, b.opts.Duration)
	if err != nil {
		return nil, err
	}
	single, err := raftstore.MeasureWrites(b.ctx, 3, clusterWriters, 1, b.opts.Duration/2)
	if err != nil {
		return nil, err
	}
	lat := func(m *raftstore.ClusterMeasure) *Latency {
		return &Latency{P50: float64(m.P50.Microseconds()), P99: float64(m.P99.Microseconds()), N: m.Writes}
	}
	return &Result{
		Value: batched.WritesPerSecond, Unit: UnitWrites, Lat: lat(batched),
		Baseline: &Figure{Name: "one_command_per_log_entry", Value: single.WritesPerSecond, Unit: UnitWrites, Lat: lat(single)},
		Notes: fmt.Sprintf("3 nodes on loopback, fsynced logs and state, %d writers each waiting for its commit; p99 commit %.1f ms (goal ≤ 20 ms)",
			clusterWriters, float64(batched.P99.Microseconds())/1000),
	}, nil
}

func clusterFailover(b *env) (*Result, error) {
	runs := 3
	if b.opts.Quick {
		runs = 1
	}
	var worst, total time.Duration
	for range runs {
		d, err := raftstore.MeasureFailover(b.ctx, 3)
		if err != nil {
			return nil, err
		}
		worst, total = max(worst, d), total+d
	}
	return &Result{
		Value: float64(total.Milliseconds()) / float64(runs), Unit: UnitMillis,
		Extra: []Figure{{Name: "worst", Value: float64(worst.Milliseconds()), Unit: UnitMillis}},
		Notes: fmt.Sprintf("mean of %d: the leader of 3 stops; time until a new leader commits a write (heartbeat and election timeouts 500 ms)", runs),
	}, nil
}
