package data

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// ipcSeeds are IPC encodings of batches of every supported shape.
func ipcSeeds(t testing.TB) [][]byte {
	mem := memory.NewGoAllocator()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean},
		{Name: "emb", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32)},
		{Name: "fix", Type: arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Int8)},
		{Name: "st", Type: arrow.StructOf(arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Float64}, arrow.Field{Name: "y", Type: arrow.BinaryTypes.LargeString})},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	for i := range 5 {
		if i == 2 {
			b.Field(0).AppendNull()
			b.Field(1).AppendNull()
		} else {
			b.Field(0).(*array.Int64Builder).Append(int64(i * 1000))
			b.Field(1).(*array.StringBuilder).Append(strings.Repeat("ab", i))
		}
		b.Field(2).(*array.BooleanBuilder).Append(i%2 == 0)
		lb := b.Field(3).(*array.ListBuilder)
		lb.Append(true)
		lb.ValueBuilder().(*array.Float32Builder).AppendValues([]float32{float32(i), 0.5}[:i%3], nil)
		fb := b.Field(4).(*array.FixedSizeListBuilder)
		fb.Append(true)
		fb.ValueBuilder().(*array.Int8Builder).AppendValues([]int8{int8(i), -1}, nil)
		sb := b.Field(5).(*array.StructBuilder)
		sb.Append(true)
		sb.FieldBuilder(0).(*array.Float64Builder).Append(float64(i) / 3)
		sb.FieldBuilder(1).(*array.LargeStringBuilder).Append("z")
	}
	rec := b.NewRecord()
	defer rec.Release()
	full, err := EncodeIPC(rec)
	if err != nil {
		t.Fatal(err)
	}
	slice := rec.NewSlice(1, 4)
	defer slice.Release()
	sliced, err := EncodeIPC(slice)
	if err != nil {
		t.Fatal(err)
	}
	var lz bytes.Buffer
	w := ipc.NewWriter(&lz, ipc.WithSchema(schema), ipc.WithLZ4())
	w.Write(rec)
	w.Close()
	return [][]byte{full, sliced, lz.Bytes()}
}

func TestIPC_RoundTripAndRejects(t *testing.T) {
	seeds := ipcSeeds(t)
	for i, b := range seeds {
		rec, err := DecodeIPC(b, nil)
		if err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
		again, err := EncodeIPC(rec)
		if err != nil {
			t.Fatal(err)
		}
		rec2, err := DecodeIPC(again, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !array.RecordEqual(rec, rec2) {
			t.Fatalf("seed %d: round trip differs", i)
		}
		rec.Release()
		rec2.Release()
	}
	full := seeds[0]
	// Every truncation fails cleanly; every single-byte corruption fails cleanly or decodes to a
	// batch that passed validation.
	for n := range len(full) {
		if n == len(full)-8 {
			continue // only the end-of-stream marker cut: a complete stream without it is valid
		}
		if rec, err := DecodeIPC(full[:n], nil); err == nil {
			rec.Release()
			t.Fatalf("truncated to %d bytes: no error", n)
		}
	}
	for i := range full {
		c := bytes.Clone(full)
		c[i] ^= 0xff
		if rec, err := DecodeIPC(c, nil); err == nil {
			rec.Release()
		} else if !errors.Is(err, ErrBadInput) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrUnsupportedType) {
			t.Fatalf("byte %d flipped: error %v wraps no sentinel", i, err)
		}
	}
	// Two batches, and a forged huge metadata length.
	rec, _ := DecodeIPC(full, nil)
	defer rec.Release()
	var two bytes.Buffer
	w := ipc.NewWriter(&two, ipc.WithSchema(rec.Schema()))
	w.Write(rec)
	w.Write(rec)
	w.Close()
	if _, err := DecodeIPC(two.Bytes(), nil); err == nil || !strings.Contains(err.Error(), "one record batch") {
		t.Fatalf("two batches: %v", err)
	}
	forged := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, full[8:]...)
	if _, err := DecodeIPC(forged, nil); !errors.Is(err, ErrBadInput) {
		t.Fatalf("forged length: %v", err)
	}
}

func FuzzDecodeIPC(f *testing.F) {
	for _, s := range ipcSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		rec, err := DecodeIPC(b, mem)
		if err != nil {
			if !errors.Is(err, ErrBadInput) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrUnsupportedType) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		// A batch that passed is safe to read everywhere and re-encodes.
		for _, c := range rec.Columns() {
			for i := range c.Len() {
				_ = valueString(c, i)
			}
		}
		if _, err := EncodeIPC(rec); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		rec.Release()
	})
}

func exprSeeds(t testing.TB) []string {
	b, err := os.ReadFile(filepath.Join("testdata", "exprs.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func FuzzParseExpr(f *testing.F) {
	for _, s := range exprSeeds(f) {
		f.Add(s)
	}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "a", Type: arrow.PrimitiveTypes.Int64}, {Name: "b", Type: arrow.PrimitiveTypes.Float64},
		{Name: "s", Type: arrow.BinaryTypes.String}, {Name: "z", Type: arrow.FixedWidthTypes.Boolean},
	}, nil)
	f.Fuzz(func(t *testing.T, src string) {
		e, err := ParseExpr(src)
		if err != nil {
			if !errors.Is(err, ErrBadExpr) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		again, err := ParseExpr(e.String())
		if err != nil {
			t.Fatalf("%q renders as %q, which does not parse: %v", src, e.String(), err)
		}
		if again.String() != e.String() {
			t.Fatalf("%q: render not stable: %q vs %q", src, e.String(), again.String())
		}
		// Type-checking never panics either.
		_, _ = compileExpr(e, schema)
	})
}

func FuzzParsePipeline(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "pipelines", "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`[{"read_csv": "x"}, {"groupby": [], "aggregate": {"n": "count("}}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePipeline(b)
		if err != nil {
			if !errors.Is(err, ErrBadPipeline) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if len(p.Steps) == 0 {
			t.Fatal("valid pipeline with no steps")
		}
	})
}

func FuzzReadJSONL(f *testing.F) {
	f.Add([]byte(`{"a": 1, "b": "x"}` + "\n" + `{"a": 2.5, "c": [1, 2]}` + "\n"))
	f.Add([]byte("{}\n\n{\"a\":null}\n"))
	f.Add([]byte(`{"a": 1}{"a": 2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeFuzz(t, func(emit func(arrow.Record) error) error {
			_, err := decodeJSONL(context.Background(), memory.NewGoAllocator(), 3, bytes.NewReader(b), 10, nil, emit)
			return err
		})
	})
}

func FuzzReadCSV(f *testing.F) {
	f.Add([]byte("a,b,c\n1,x,true\n2,,false\n"))
	f.Add([]byte("a,a\n1,2\n"))
	f.Add([]byte("x\n1\n2.5\n\"q\"\"\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeFuzz(t, func(emit func(arrow.Record) error) error {
			_, err := decodeCSV(context.Background(), memory.NewGoAllocator(), 3, bytes.NewReader(b), CSVOptions{Delimiter: ',', InferRows: 4}, nil, emit)
			return err
		})
	})
}

// decodeFuzz runs a decoder and checks that it fails with a sentinel error or yields valid
// batches.
func decodeFuzz(t *testing.T, run func(emit func(arrow.Record) error) error) {
	err := run(func(rec arrow.Record) error {
		defer rec.Release()
		if err := validateRecord(rec); err != nil {
			t.Fatalf("decoder made an invalid batch: %v", err)
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrBadInput) && !errors.Is(err, ErrSchemaMismatch) && !errors.Is(err, ErrTooLarge) {
		t.Fatalf("error wraps no sentinel: %v", err)
	}
}

func FuzzReadParquet(f *testing.F) {
	dir := f.TempDir()
	if _, err := FromItems(genRows(rand.New(rand.NewPCG(9, 9)), 40)).WithOptions(Options{BatchRows: 16}).WriteParquet(context.Background(), dir); err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(filepath.Join(dir, "part-00000.parquet"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("PAR1PAR1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "f.parquet")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadParquet(path).WithOptions(Options{BatchRows: 16}).Count(context.Background())
		if err != nil && !errors.Is(err, ErrBadInput) && !errors.Is(err, ErrSchemaMismatch) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("error wraps no sentinel: %v", err)
		}
	})
}
