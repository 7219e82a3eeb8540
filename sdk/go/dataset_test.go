package lumen

import (
	"errors"
	"math"
	"slices"
	"testing"
)

func TestBatchBuilder_RoundTripsThroughParseBatch(t *testing.T) {
	ids := []int64{math.MinInt64, -1, 0, 42, math.MaxInt64}
	xs := []float64{1.5, math.Inf(-1), 0, -2, 1e300}
	ok := []bool{true, false, true, true, false}
	names := []string{"", "héllo", "a,b", "x", "long string with spaces"}
	valid := []bool{true, false, true, true, true}
	b, err := NewBatchBuilder().Int64("id", ids, nil).Float64("x", xs, valid).Bool("ok", ok, nil).String("name", names, valid).IPC()
	if err != nil {
		t.Fatal(err)
	}
	pb, err := ParseBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	if pb.Rows != 5 || len(pb.Fields) != 4 || pb.Fields[3] != (Field{Name: "name", Type: TypeString, Nullable: true}) {
		t.Fatalf("batch %d rows, fields %v", pb.Rows, pb.Fields)
	}
	gotIDs, _ := pb.Int64s(pb.Column("id"))
	gotXs, _ := pb.Float64s(pb.Column("x"))
	gotOK, _ := pb.Bools(pb.Column("ok"))
	gotNames, _ := pb.Strings(pb.Column("name"))
	wantXs := slices.Clone(xs)
	wantXs[1] = 0 // null
	wantNames := slices.Clone(names)
	wantNames[1] = ""
	if !slices.Equal(gotIDs, ids) || !slices.Equal(gotXs, wantXs) || !slices.Equal(gotOK, ok) || !slices.Equal(gotNames, wantNames) {
		t.Errorf("read back %v %v %v %q", gotIDs, gotXs, gotOK, gotNames)
	}
	if pb.Valid(1, 1) || !pb.Valid(1, 0) || pb.Nulls(1) != 1 || pb.Nulls(0) != 0 || pb.Valid(0, 5) {
		t.Error("validity read back wrong")
	}
	if _, err := pb.Float64s(0); err == nil {
		t.Error("an int64 column read as floats")
	}
	if pb.Column("nope") != -1 {
		t.Error("an unknown column found")
	}
	fields, err := ParseSchema(b)
	if err != nil || !slices.Equal(fields, pb.Fields) {
		t.Errorf("ParseSchema: %v %v", fields, err)
	}
}

func TestBatchBuilder_RefusesRaggedColumns(t *testing.T) {
	if _, err := NewBatchBuilder().Int64("a", []int64{1, 2}, nil).Int64("b", []int64{1}, nil).IPC(); err == nil {
		t.Error("columns of 2 and 1 rows built")
	}
	if _, err := NewBatchBuilder().Int64("a", []int64{1, 2}, []bool{true}).IPC(); err == nil {
		t.Error("2 rows with 1 validity flag built")
	}
	if _, err := NewBatchBuilder().IPC(); err == nil {
		t.Error("a batch of no columns built")
	}
}

func TestParseBatch_RefusesTruncations(t *testing.T) {
	b, err := NewBatchBuilder().Int64("id", []int64{1, 2, 3}, nil).String("s", []string{"a", "b", "c"}, nil).IPC()
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(b) - 8 { // without the end marker the stream is still whole
		if _, err := ParseBatch(b[:n]); !errors.Is(err, ErrBadBatch) {
			t.Fatalf("cut at %d of %d: %v", n, len(b), err)
		}
	}
}

func TestDataset_OutsideAHostIsUnavailable(t *testing.T) {
	if _, err := OpenDataset(`[{"read_csv": "x"}]`); !errors.Is(err, ErrNotUnderLumen) {
		t.Errorf("OpenDataset: %v", err)
	}
	if _, err := CreateDataset(nil); !errors.Is(err, ErrNotUnderLumen) {
		t.Errorf("CreateDataset: %v", err)
	}
}

// FuzzParseBatch: arbitrary bytes parse into a batch or an ErrBadBatch, and every column of a
// parsed batch reads without a panic.
func FuzzParseBatch(f *testing.F) {
	good, _ := NewBatchBuilder().Int64("id", []int64{1, 2}, []bool{true, false}).Float64("x", []float64{1, 2}, nil).
		Bool("b", []bool{true, false}, nil).String("s", []string{"ab", "c"}, nil).IPC()
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		pb, err := ParseBatch(b)
		if err != nil {
			if !errors.Is(err, ErrBadBatch) {
				t.Fatalf("error %v does not wrap ErrBadBatch", err)
			}
			return
		}
		for i := range pb.Fields {
			pb.Int64s(i)
			pb.Float64s(i)
			pb.Bools(i)
			pb.Strings(i)
			for r := -1; r <= pb.Rows; r++ {
				pb.Valid(i, r)
			}
		}
	})
}
