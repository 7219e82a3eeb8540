package bench

import (
	"fmt"
	"math/rand/v2"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/lumenflow/lumen/engine/data"
)

// UnitRows is a throughput in rows per second.
const UnitRows = "rows/s"

// groupByKeys is the number of distinct keys of data_groupby_10m_rows.
const groupByKeys = 1000

// groupByRows is the figure's input: 10 M rows (Quick: 1 M) of an int64 key among 1000 and a
// float64 value, in batches of 8192, built once per run.
func groupByRows(quick bool) (recs []arrow.Record, rows int) {
	rows = 10_000_000
	if quick {
		rows = 1_000_000
	}
	mem := memory.NewGoAllocator()
	schema := arrow.NewSchema([]arrow.Field{{Name: "key", Type: arrow.PrimitiveTypes.Int64}, {Name: "val", Type: arrow.PrimitiveTypes.Float64}}, nil)
	rng := rand.New(rand.NewPCG(1, 1))
	for done := 0; done < rows; {
		n := min(8192, rows-done)
		b := array.NewRecordBuilder(mem, schema)
		kb, vb := b.Field(0).(*array.Int64Builder), b.Field(1).(*array.Float64Builder)
		for range n {
			kb.Append(int64(rng.IntN(groupByKeys)))
			vb.Append(rng.Float64())
		}
		recs = append(recs, b.NewRecord())
		b.Release()
		done += n
	}
	return recs, rows
}

// dataGroupBy is issue 5's groupby + aggregate figure: count, sum and mean per key over 10 M
// rows with engine/data's streaming executor (a stage per operator, general key encoding,
// spilling past its cap), beside one pass over the same Arrow arrays into a Go map.
func dataGroupBy(b *env) (*Result, error) {
	recs, rows := groupByRows(b.opts.Quick)
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	ds := data.FromRecords(recs).GroupBy("key").Aggregate(
		data.Agg{Name: "n", Func: data.AggCount},
		data.Agg{Name: "s", Func: data.AggSum, Column: "val"},
		data.Agg{Name: "m", Func: data.AggMean, Column: "val"})
	lumen := one(func() (int, error) {
		n, err := ds.Count(b.ctx)
		if err != nil {
			return 0, fmt.Errorf("groupby: %w", err)
		}
		if n != groupByKeys {
			return 0, fmt.Errorf("groupby made %d groups, want %d", n, groupByKeys)
		}
		return rows, nil
	})
	type acc struct {
		n        int64
		sum, avg float64
	}
	loop := one(func() (int, error) {
		m := make(map[int64]*acc, groupByKeys)
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
		for _, a := range m {
			a.avg = a.sum / float64(a.n)
		}
		if len(m) != groupByKeys {
			return 0, fmt.Errorf("map loop made %d groups", len(m))
		}
		return rows, nil
	})
	v, base, err := compare(b.ctx, b.opts.Duration, lumen, loop)
	if err != nil {
		return nil, err
	}
	return &Result{Value: v, Unit: UnitRows,
		Baseline: &Figure{Name: "go_map_loop", Value: base, Unit: UnitRows, Notes: "one pass over the same Arrow arrays into a map[int64] of count and sum, then the means"},
		Notes:    fmt.Sprintf("engine/data FromRecords → GroupBy(key) → count, sum, mean over %d M rows, %d int64 keys, batches of 8192; in process", rows/1_000_000, groupByKeys)}, nil
}
