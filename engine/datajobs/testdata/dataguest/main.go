// Command dataguest holds the batch functions of the engine's data job tests: a task that
// scores rows, an actor whose constructor builds a model once, a function that returns a
// malformed batch and one that spins, for cancellation.
package main

import (
	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	lumen "github.com/lumenflow/lumen/sdk/go"
	"github.com/lumenflow/lumen/sdk/go/batch"
)

// Model is a linear scorer whose weight the constructor sets.
type Model struct{ weight float64 }

var loads int64 // constructor runs in this instance

var sink int64 // keeps spin's loop

// withColumns appends float64 columns, null where age is, and int64 columns to rec.
func withColumns(rec arrow.Record, age *array.Int64, f map[string]func(i int) float64, n map[string]func(i int) int64) arrow.Record {
	cols := append([]arrow.Array(nil), rec.Columns()...)
	fields := append([]arrow.Field(nil), rec.Schema().Fields()...)
	for name, fn := range f {
		b := array.NewFloat64Builder(memory.DefaultAllocator)
		for i := 0; i < int(rec.NumRows()); i++ {
			if age.IsNull(i) {
				b.AppendNull()
			} else {
				b.Append(fn(i))
			}
		}
		cols = append(cols, b.NewArray())
		fields = append(fields, arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Float64})
	}
	for name, fn := range n {
		b := array.NewInt64Builder(memory.DefaultAllocator)
		for i := 0; i < int(rec.NumRows()); i++ {
			b.Append(fn(i))
		}
		cols = append(cols, b.NewArray())
		fields = append(fields, arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Int64})
	}
	return array.NewRecord(arrow.NewSchema(fields, nil), cols, rec.NumRows())
}

func ages(rec arrow.Record) (*array.Int64, error) {
	for i, f := range rec.Schema().Fields() {
		if f.Name == "age" {
			if a, ok := rec.Column(i).(*array.Int64); ok {
				return a, nil
			}
		}
	}
	return nil, lumen.NewError("bad_input", "no int64 column age")
}

func init() {
	batch.Task("score", func(rec arrow.Record) (arrow.Record, error) {
		a, err := ages(rec)
		if err != nil {
			return nil, err
		}
		return withColumns(rec, a, map[string]func(int) float64{"score": func(i int) float64 { return float64(a.Value(i)) * 2 }}, nil), nil
	})
	m := lumen.Actor("Model", func(any) (*Model, error) {
		loads++
		return &Model{weight: 0.5}, nil
	})
	batch.Method(m, "predict", func(s *Model, rec arrow.Record) (arrow.Record, error) {
		a, err := ages(rec)
		if err != nil {
			return nil, err
		}
		return withColumns(rec, a,
			map[string]func(int) float64{"pred": func(i int) float64 { return float64(a.Value(i)) * s.weight }},
			map[string]func(int) int64{"loads": func(int) int64 { return loads }}), nil
	})
	lumen.BytesTask("garbage", func([]byte) ([]byte, error) {
		return []byte("\xff\xff\xff\xff\x10\x00\x00\x00not an arrow stream"), nil
	})
	batch.Task("spin", func(rec arrow.Record) (arrow.Record, error) {
		for i := 0; i < 1<<62; i++ {
			sink += int64(i)
		}
		rec.Retain()
		return rec, nil
	})
}

func main() {}
