package data

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
)

// streamSeeds are multi-batch streams and schema streams built from ipcSeeds' batches, and
// broken ones.
func streamSeeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, b := range ipcSeeds(t) {
		rec, err := DecodeIPC(b, nil)
		if err != nil {
			t.Fatal(err)
		}
		two, err := EncodeIPCStream(rec.Schema(), []arrow.Record{rec, rec})
		if err != nil {
			t.Fatal(err)
		}
		sch, err := EncodeIPCSchema(rec.Schema())
		if err != nil {
			t.Fatal(err)
		}
		rec.Release()
		out = append(out, two, sch, b, two[:len(two)-13])
	}
	return append(out, []byte{}, []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, []byte("not arrow"))
}

func TestIPCStream_RoundTripsBatchesAndSchemas(t *testing.T) {
	rec := mustRecord(t, ipcSeeds(t)[0])
	defer rec.Release()
	b, err := EncodeIPCStream(rec.Schema(), []arrow.Record{rec, rec, rec})
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseIPCStream(b)
	if err != nil {
		t.Fatal(err)
	}
	if st.NumBatches() != 3 || CheckSchema(rec.Schema(), st.Schema()) != nil {
		t.Fatalf("%d batches, schema %v", st.NumBatches(), st.Schema())
	}
	for i := range 3 {
		got, err := st.Batch(i)
		if err != nil {
			t.Fatal(err)
		}
		if !array.RecordEqual(got, rec) {
			t.Errorf("batch %d differs", i)
		}
		got.Release()
	}
	n, err := st.Dataset().Count(context.Background())
	if err != nil || n != 3*rec.NumRows() {
		t.Errorf("dataset of the stream: %d rows, %v", n, err)
	}
	sch, err := EncodeIPCSchema(rec.Schema())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeIPCSchema(sch); err != nil || CheckSchema(rec.Schema(), got) != nil {
		t.Errorf("schema round trip: %v %v", got, err)
	}
	empty, err := ParseIPCStream(sch)
	if err != nil || empty.NumBatches() != 0 {
		t.Errorf("a schema stream as a dataset: %v", err)
	}
	if _, err := DecodeIPCSchema(b); !errors.Is(err, ErrBadInput) {
		t.Errorf("DecodeIPCSchema of a stream with batches: %v", err)
	}
	if _, err := st.Batch(3); !errors.Is(err, ErrBadInput) {
		t.Errorf("batch past the end: %v", err)
	}
}

func TestCheckSchema_NamesTheColumn(t *testing.T) {
	a := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "x", Type: arrow.PrimitiveTypes.Float64}}, nil)
	b := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64, Nullable: true}, {Name: "x", Type: arrow.BinaryTypes.String}}, nil)
	err := CheckSchema(a, b)
	if !errors.Is(err, ErrSchemaMismatch) || !strings.Contains(err.Error(), `column "x" has type utf8, want float64`) {
		t.Errorf("CheckSchema: %v", err)
	}
	if err := CheckSchema(a, a); err != nil {
		t.Errorf("a schema against itself: %v", err)
	}
}

func mustRecord(t *testing.T, b []byte) arrow.Record {
	t.Helper()
	rec, err := DecodeIPC(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// FuzzParseIPCStream: arbitrary bytes opened as the object of dataset_open {"object": h} and as
// dataset_create's schema end in a data error or in batches of the stream's schema, never a
// panic.
func FuzzParseIPCStream(f *testing.F) {
	for _, s := range streamSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := DecodeIPCSchema(b); err != nil && !errors.Is(err, ErrBadInput) && !errors.Is(err, ErrUnsupportedType) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("DecodeIPCSchema: error wraps no sentinel: %v", err)
		}
		st, err := ParseIPCStream(b)
		if err != nil {
			if !errors.Is(err, ErrBadInput) && !errors.Is(err, ErrUnsupportedType) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		for i := range st.NumBatches() {
			if rec, err := st.Batch(i); err == nil {
				if err := CheckSchema(st.Schema(), rec.Schema()); err != nil {
					t.Errorf("batch %d: %v", i, err)
				}
				rec.Release()
			}
		}
	})
}

// TestIPCStream_SurvivesMutations corrupts the seeds at random, a few bytes at a time, and opens
// each: the fuzzer's job, done here at native speed on every run. The seed is fixed; a failure
// names the round, which replays it.
func TestIPCStream_SurvivesMutations(t *testing.T) {
	seeds := streamSeeds(t)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		b := append([]byte(nil), seeds[r.IntN(len(seeds))]...)
		if len(b) == 0 {
			continue
		}
		for range 1 + r.IntN(4) {
			b[r.IntN(len(b))] = byte(r.Uint32())
		}
		if _, err := DecodeIPCSchema(b); err != nil && !errors.Is(err, ErrBadInput) && !errors.Is(err, ErrUnsupportedType) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("round %d: DecodeIPCSchema: %v", i, err)
		}
		st, err := ParseIPCStream(b)
		if err != nil {
			continue
		}
		for j := range st.NumBatches() {
			if rec, err := st.Batch(j); err == nil {
				if err := CheckSchema(st.Schema(), rec.Schema()); err != nil {
					t.Fatalf("round %d batch %d: %v", i, j, err)
				}
				rec.Release()
			}
		}
	}
}
