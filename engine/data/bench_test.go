package data

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

const benchRows = 10_000_000

var (
	benchOnce sync.Once
	benchRecs []arrow.Record
)

// benchData is 10 M rows of (key int64 with 1000 distinct values, val float64) in 8192-row
// batches, built once.
func benchData() []arrow.Record {
	benchOnce.Do(func() {
		mem := memory.NewGoAllocator()
		schema := arrow.NewSchema([]arrow.Field{{Name: "key", Type: arrow.PrimitiveTypes.Int64}, {Name: "val", Type: arrow.PrimitiveTypes.Float64}}, nil)
		rng := rand.New(rand.NewPCG(1, 1))
		for done := 0; done < benchRows; {
			n := min(8192, benchRows-done)
			b := array.NewRecordBuilder(mem, schema)
			kb, vb := b.Field(0).(*array.Int64Builder), b.Field(1).(*array.Float64Builder)
			for range n {
				kb.Append(int64(rng.IntN(1000)))
				vb.Append(rng.Float64())
			}
			benchRecs = append(benchRecs, b.NewRecord())
			b.Release()
			done += n
		}
	})
	return benchRecs
}

// BenchmarkGroupByAggregate10M: count, sum and mean per key over 10 M rows through the
// streaming executor. Compare rows/s with BenchmarkGroupByGoMapLoop10M.
func BenchmarkGroupByAggregate10M(b *testing.B) {
	recs := benchData()
	ds := FromRecords(recs).GroupBy("key").Aggregate(Agg{"n", AggCount, ""}, Agg{"s", AggSum, "val"}, Agg{"m", AggMean, "val"})
	b.ResetTimer()
	for range b.N {
		n, err := ds.Count(context.Background())
		if err != nil || n != 1000 {
			b.Fatalf("%d groups, %v", n, err)
		}
	}
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkGroupByGoMapLoop10M is the baseline: one pass over the same Arrow arrays into a Go
// map, no executor, no general key encoding.
func BenchmarkGroupByGoMapLoop10M(b *testing.B) {
	recs := benchData()
	type acc struct {
		n   int64
		sum float64
	}
	b.ResetTimer()
	for range b.N {
		m := map[int64]*acc{}
		for _, r := range recs {
			keys := r.Column(0).(*array.Int64).Int64Values()
			vals := r.Column(1).(*array.Float64).Float64Values()
			for i, k := range keys {
				a := m[k]
				if a == nil {
					a = &acc{}
					m[k] = a
				}
				a.n++
				a.sum += vals[i]
			}
		}
		if len(m) != 1000 {
			b.Fatal(len(m))
		}
	}
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkStreamingPeakMemory runs read_csv → filter → add_column → write_parquet over growing
// inputs and reports the Arrow allocator's peak beside the data size: the peak stays flat while
// the data grows.
func BenchmarkStreamingPeakMemory(b *testing.B) {
	for _, rows := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			dir := b.TempDir()
			path := writeBigCSV(b, dir, rows)
			var dataBytes, peak int64
			b.ResetTimer()
			for i := range b.N {
				mem := NewCountingAllocator(memory.NewGoAllocator())
				var p Progress
				ds := ReadCSV(path).Filter("age >= 18").AddColumn("score2", "score * 2").
					WithOptions(Options{Allocator: mem, Progress: &p})
				if _, err := ds.WriteParquet(context.Background(), filepath.Join(dir, fmt.Sprintf("out%d", i))); err != nil {
					b.Fatal(err)
				}
				dataBytes = p.Snapshot()[0].BytesOut
				peak = max(peak, mem.Peak())
			}
			b.ReportMetric(float64(dataBytes), "data_bytes")
			b.ReportMetric(float64(peak), "peak_bytes")
			b.ReportMetric(float64(peak)/float64(dataBytes), "peak/data")
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
