package batch

import (
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

func record(t *testing.T, vals ...int64) arrow.Record {
	t.Helper()
	b := array.NewInt64Builder(memory.DefaultAllocator)
	defer b.Release()
	b.AppendValues(vals, nil)
	col := b.NewArray()
	defer col.Release()
	return array.NewRecord(arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil), []arrow.Array{col}, int64(len(vals)))
}

func TestCall_RoundTripsABatch(t *testing.T) {
	in := record(t, 1, 2, 3)
	defer in.Release()
	b, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Call("double", b, func(rec arrow.Record) (arrow.Record, error) {
		xs := rec.Column(0).(*array.Int64)
		var v []int64
		for i := range xs.Len() {
			v = append(v, xs.Value(i)*2)
		}
		return record(t, v...), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	got := rec.Column(0).(*array.Int64).Int64Values()
	if len(got) != 3 || got[0] != 2 || got[1] != 4 || got[2] != 6 {
		t.Fatalf("got %v", got)
	}
}

func TestCall_BadInputAndNoOutputAreErrors(t *testing.T) {
	if _, err := Call("f", []byte("garbage"), nil); err == nil || !strings.Contains(err.Error(), "f: read Arrow IPC") {
		t.Errorf("garbage: %v", err)
	}
	in := record(t, 1)
	defer in.Release()
	b, _ := Encode(in)
	if _, err := Call("f", b, func(arrow.Record) (arrow.Record, error) { return nil, nil }); err == nil || !strings.Contains(err.Error(), "f returned no batch") {
		t.Errorf("nil batch: %v", err)
	}
	if _, err := Decode(nil); err == nil {
		t.Error("empty stream decoded")
	}
}
