package data

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// writeBigCSV writes n rows (id, g, city, age, score, name) to dir/big.csv.
func writeBigCSV(t testing.TB, dir string, n int) string {
	t.Helper()
	path := filepath.Join(dir, "big.csv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	rng := rand.New(rand.NewPCG(11, 11))
	fmt.Fprintln(w, "id,g,city,age,score,name")
	for i := range n {
		fmt.Fprintf(w, "%d,%d,city%03d,%d,%.3f,name-%08x\n", i, rng.IntN(n/4+1), rng.IntN(300), rng.IntN(90), rng.Float64()*100, rng.Uint32())
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path
}

// TestMemory_JobsOverTheirCapStayUnderIt runs every blocking operator over several times its
// memory cap of data and checks, with a counting allocator, that the job's Arrow memory peaks
// near the cap (not near the data size), that the operator spilled, and that nothing leaked.
func TestMemory_JobsOverTheirCapStayUnderIt(t *testing.T) {
	const (
		rows      = 30_000
		memCap    = 128 << 10
		batchRows = 512
	)
	dir := t.TempDir()
	path := writeBigCSV(t, dir, rows)
	ctx := context.Background()
	// The data size as Arrow batches, measured by a plain read.
	var p0 Progress
	if n, err := ReadCSV(path).WithOptions(Options{BatchRows: batchRows, Progress: &p0}).Count(ctx); err != nil || n != rows {
		t.Fatalf("count %d %v", n, err)
	}
	src := p0.Snapshot()[0]
	dataBytes, batchBytes := src.BytesOut, src.BytesOut/src.BatchesOut
	if dataBytes < 8*memCap {
		t.Fatalf("test data is %d bytes, want well over the %d cap", dataBytes, memCap)
	}
	right := FromItems(func() []map[string]any {
		var r []map[string]any
		for i := range 300 {
			r = append(r, map[string]any{"city": fmt.Sprintf("city%03d", i), "region": i % 7})
		}
		return r
	}())
	for _, tc := range []struct {
		name  string
		build func(d *Dataset) *Dataset
		op    string // the blocking operator's name prefix in progress
		rows  int64
	}{
		{"streaming", func(d *Dataset) *Dataset {
			return d.Filter("age >= 18").AddColumn("score2", "score * 2").Select("id", "score2", "city")
		}, "", -1},
		{"sort", func(d *Dataset) *Dataset { return d.Sort([]string{"name"}, false) }, "sort", rows},
		{"groupby", func(d *Dataset) *Dataset {
			return d.GroupBy("g").Aggregate(Agg{"n", AggCount, ""}, Agg{"s", AggSum, "score"}, Agg{"hi", AggMax, "name"})
		}, "groupby", -1},
		{"random_shuffle", func(d *Dataset) *Dataset { return d.RandomShuffle(1) }, "random_shuffle", rows},
		{"repartition", func(d *Dataset) *Dataset { return d.Repartition(5) }, "repartition", rows},
		{"join", func(d *Dataset) *Dataset { return right.Join(d, []string{"city"}, JoinInner) }, "join", rows},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, mem := testOptions(batchRows, memCap)
			var p Progress
			opts.Progress = &p
			res, err := tc.build(ReadCSV(path)).WithOptions(opts).WriteParquet(ctx, filepath.Join(dir, "out-"+tc.name))
			if err != nil {
				t.Fatal(err)
			}
			if tc.rows >= 0 && res.Rows != tc.rows {
				t.Fatalf("wrote %d rows, want %d", res.Rows, tc.rows)
			}
			checkNoLeak(t, mem)
			peak := mem.Peak()
			// Allowance beyond the cap: a few batches queued per stage, plus the Parquet writer's
			// column buffers for one batch.
			bound := int64(memCap) + 16*batchBytes
			if tc.op == "" {
				bound = 16 * batchBytes
			}
			t.Logf("data %d bytes, batch %d, cap %d: peak %d (%.1f%% of data), bound %d", dataBytes, batchBytes, memCap, peak, 100*float64(peak)/float64(dataBytes), bound)
			if peak > bound {
				t.Errorf("peak %d bytes over the bound %d (data %d)", peak, bound, dataBytes)
			}
			for _, s := range p.Snapshot() {
				if tc.op == "" || !contains(s.Op, tc.op) {
					continue
				}
				t.Logf("%s: held at most %d, spilled %d", s.Op, s.PeakHeld, s.SpilledBytes)
				if s.SpilledBytes == 0 {
					t.Errorf("%s did not spill over %d bytes of data with a %d cap", s.Op, dataBytes, memCap)
				}
				if s.PeakHeld > memCap+2*batchBytes {
					t.Errorf("%s held %d bytes, cap %d", s.Op, s.PeakHeld, memCap)
				}
			}
		})
	}
}

func contains(s, sub string) bool {
	return len(s) >= len(sub) && (s == sub || len(sub) == 0 || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
