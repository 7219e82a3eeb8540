// Command guest is the batch-inference example's model: a linear classifier over four features
// and three classes. Its weights are built by the actor's constructor, once per worker of the
// pipeline's map_batches pool, and reused for every batch that worker scores.
package main

import (
	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	lumen "github.com/lumenflow/lumen/sdk/go"
	"github.com/lumenflow/lumen/sdk/go/batch"
)

// Features and classes of the model.
const (
	Features = 4
	Classes  = 3
)

// Classifier holds the model's weights and bias per class.
type Classifier struct {
	w    [Classes][Features]float64
	b    [Classes]float64
	seen int64 // batches scored by this worker
}

// loads counts the constructor's runs in this instance: the test checks it is 1 on every row.
var loads int64

// Weight is the model's weight of feature j for class c (the test computes the same).
func Weight(c, j int) float64 { return float64((c+1)*(j+2)%7-3) / 4 }

// Bias is the model's bias for class c.
func Bias(c int) float64 { return float64(c-1) / 8 }

func newClassifier(any) (*Classifier, error) {
	loads++
	m := &Classifier{}
	for c := 0; c < Classes; c++ {
		for j := 0; j < Features; j++ {
			m.w[c][j] = Weight(c, j)
		}
		m.b[c] = Bias(c)
	}
	lumen.Logf("classifier loaded (%d×%d weights)", Classes, Features)
	return m, nil
}

// predict appends label (the best class), score (its logit), loads and batch (this worker's
// count of batches) to each row.
func (m *Classifier) predict(rec arrow.Record) (arrow.Record, error) {
	var feats [Features]*array.Float64
	for j := range feats {
		name := "f" + string(rune('0'+j))
		idx := rec.Schema().FieldIndices(name)
		if len(idx) != 1 {
			return nil, lumen.NewError("bad_input", "batch has no column %s", name)
		}
		col, ok := rec.Column(idx[0]).(*array.Float64)
		if !ok {
			return nil, lumen.NewError("bad_input", "column %s is %s, want float64", name, rec.Column(idx[0]).DataType())
		}
		feats[j] = col
	}
	m.seen++
	n := int(rec.NumRows())
	label := array.NewInt64Builder(memory.DefaultAllocator)
	score := array.NewFloat64Builder(memory.DefaultAllocator)
	load := array.NewInt64Builder(memory.DefaultAllocator)
	seq := array.NewInt64Builder(memory.DefaultAllocator)
	for i := 0; i < n; i++ {
		best, bestScore := 0, 0.0
		for c := 0; c < Classes; c++ {
			s := m.b[c]
			for j := 0; j < Features; j++ {
				s += m.w[c][j] * feats[j].Value(i)
			}
			if c == 0 || s > bestScore {
				best, bestScore = c, s
			}
		}
		label.Append(int64(best))
		score.Append(bestScore)
		load.Append(loads)
		seq.Append(m.seen)
	}
	cols := append([]arrow.Array(nil), rec.Columns()...)
	fields := append([]arrow.Field(nil), rec.Schema().Fields()...)
	for _, c := range []struct {
		name string
		b    array.Builder
		t    arrow.DataType
	}{{"label", label, arrow.PrimitiveTypes.Int64}, {"score", score, arrow.PrimitiveTypes.Float64},
		{"loads", load, arrow.PrimitiveTypes.Int64}, {"batch", seq, arrow.PrimitiveTypes.Int64}} {
		cols = append(cols, c.b.NewArray())
		fields = append(fields, arrow.Field{Name: c.name, Type: c.t})
	}
	return array.NewRecord(arrow.NewSchema(fields, nil), cols, int64(n)), nil
}

func init() {
	t := lumen.Actor("Classifier", newClassifier)
	batch.Method(t, "predict", func(m *Classifier, rec arrow.Record) (arrow.Record, error) { return m.predict(rec) })
}

func main() {}
