package raftstore

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// BenchmarkStoreLogs measures one fsynced StoreLogs call of 1 or 64 entries of 256 bytes.
func BenchmarkStoreLogs(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			s := openStore(b, b.TempDir())
			data := make([]byte, 256)
			next := uint64(1)
			b.ReportAllocs()
			b.SetBytes(int64(n * len(data)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				logs := make([]*raft.Log, n)
				for j := range logs {
					logs[j] = &raft.Log{Index: next, Term: 1, Data: data, AppendedAt: time.Now()}
					next++
				}
				if err := s.StoreLogs(logs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// clients is how many goroutines submit commands in the cluster benchmarks.
const clients = 256

// BenchmarkApply_Batched commits commands on a 3-node in-process cluster with fsync, from 256
// concurrent clients through a Batcher: many commands share each log entry.
func BenchmarkApply_Batched(b *testing.B) {
	c := newCluster(b, 3)
	ld := c.leader(5 * time.Second)
	bt, err := NewBatcher(ld.r, BatcherConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer bt.Close()
	benchApply(b, func(cmd []byte) error {
		_, err := bt.Apply(context.Background(), cmd)
		return err
	})
	b.ReportMetric(float64(ld.r.LastIndex()), "log-entries")
}

// BenchmarkApply_Unbatched commits the same commands one log entry each, through raft.Apply
// from 256 concurrent clients: only raft's own group commit (up to MaxAppendEntries entries per
// fsync) helps.
func BenchmarkApply_Unbatched(b *testing.B) {
	c := newCluster(b, 3)
	ld := c.leader(5 * time.Second)
	benchApply(b, func(cmd []byte) error {
		return ld.r.Apply(EncodeBatch([][]byte{cmd}), 0).Error()
	})
}

// BenchmarkApply_OneAtATime commits from one client: one command, one entry, one fsync round.
func BenchmarkApply_OneAtATime(b *testing.B) {
	c := newCluster(b, 3)
	ld := c.leader(5 * time.Second)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := ld.r.Apply(EncodeBatch([][]byte{[]byte(fmt.Sprintf("k%d=v", i))}), 0).Error(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}

// benchApply runs apply from about 256 goroutines and reports committed writes per second and
// the p50/p99 commit latency seen by a client.
func benchApply(b *testing.B, apply func([]byte) error) {
	var seq atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0))) // RunParallel starts parallelism × GOMAXPROCS goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			i := seq.Add(1)
			start := time.Now()
			if err := apply([]byte(fmt.Sprintf("key-%d=value-%d", i, i))); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(start))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}

func BenchmarkCluster_Writes3Nodes(b *testing.B) {
	for _, batch := range []int{0, 1} {
		name := "batched"
		if batch == 1 {
			name = "one_per_entry"
		}
		b.Run(name, func(b *testing.B) {
			m, err := MeasureWrites(context.Background(), 3, 256, batch, time.Duration(b.N)*time.Millisecond)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(m.WritesPerSecond, "writes/s")
			b.ReportMetric(float64(m.P50.Microseconds()), "p50_µs")
			b.ReportMetric(float64(m.P99.Microseconds()), "p99_µs")
		})
	}
}

func TestMeasureWritesAndFailover(t *testing.T) {
	m, err := MeasureWrites(context.Background(), 3, 32, 0, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if m.Writes == 0 || m.P99 < m.P50 {
		t.Fatalf("measure %+v", m)
	}
	d, err := MeasureFailover(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("writes %+v; failover %v", m, d)
}
