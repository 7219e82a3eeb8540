package data

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	arrowcsv "github.com/apache/arrow/go/v17/arrow/csv"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"go.uber.org/goleak"
)

func tableRows(t *testing.T, tbl arrow.Table) []map[string]any {
	t.Helper()
	tr := array.NewTableReader(tbl, 1000)
	defer tr.Release()
	var rows []map[string]any
	for tr.Next() {
		rows = appendRows(rows, tr.Record(), int(tr.Record().NumRows()))
	}
	return rows
}

func TestParquet_LumenWritesArrowReads(t *testing.T) {
	ctx := context.Background()
	rows := genRows(rand.New(rand.NewPCG(7, 7)), 500)
	opts, mem := testOptions(64, 0)
	dir := t.TempDir()
	res, err := FromItems(rows).WithOptions(opts).Repartition(3).WriteParquet(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 3 || res.Rows != 500 {
		t.Fatalf("wrote %v, %d rows; want 3 files, 500 rows", res.Files, res.Rows)
	}
	var got []map[string]any
	for _, path := range res.Files {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := pqarrow.ReadTable(ctx, f, parquet.NewReaderProperties(memory.DefaultAllocator), pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		f.Close()
		if err != nil {
			t.Fatalf("pqarrow cannot read %s: %v", path, err)
		}
		got = append(got, tableRows(t, tbl)...)
		tbl.Release()
	}
	sameRows(t, "parquet read by pqarrow", got, rows)
	// And Lumen reads the folder back in file order.
	sameRows(t, "parquet read by Lumen", takeAll(t, ReadParquet(dir).WithOptions(opts)), rows)
	checkNoLeak(t, mem)
}

func TestParquet_ArrowWritesLumenReads(t *testing.T) {
	mem := memory.NewGoAllocator()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "i32", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "f32", Type: arrow.PrimitiveTypes.Float32},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
		{Name: "emb", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32)},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	const n = 1000
	for i := range n {
		if i%7 == 0 {
			b.Field(0).AppendNull()
			b.Field(2).AppendNull()
		} else {
			b.Field(0).(*array.Int32Builder).Append(int32(i - 500))
			b.Field(2).(*array.StringBuilder).Append(strings.Repeat("x", i%5) + "y")
		}
		b.Field(1).(*array.Float32Builder).Append(float32(i) / 4)
		b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(int64(i) * 1000))
		lb := b.Field(4).(*array.ListBuilder)
		lb.Append(true)
		lb.ValueBuilder().(*array.Float32Builder).AppendValues([]float32{float32(i), 1}, nil)
	}
	rec := b.NewRecord()
	defer rec.Release()
	tbl := array.NewTableFromRecords(schema, []arrow.Record{rec})
	defer tbl.Release()
	path := filepath.Join(t.TempDir(), "arrow.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pqarrow.WriteTable(tbl, f, 300, nil, pqarrow.DefaultWriterProps()); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want := tableRows(t, tbl)
	opts, cmem := testOptions(128, 0)
	ds := ReadParquet(path).WithOptions(opts)
	sameRows(t, "Lumen reads arrow's parquet", takeAll(t, ds), want)
	// Nested columns flow through the operators too.
	got := takeAll(t, ds.Filter("i32 > 0 and s != 'y'").Sort([]string{"i32"}, true).Limit(5))
	if len(got) != 5 || got[0]["i32"] != int64(499) || got[0]["emb"] != "[999,1]" {
		t.Fatalf("filter+sort over parquet: %v", head(got))
	}
	checkNoLeak(t, cmem)
}

func TestCSV_RoundTrip(t *testing.T) {
	ctx := context.Background()
	rows := genRows(rand.New(rand.NewPCG(3, 3)), 700)
	opts, mem := testOptions(100, 0)
	dir := t.TempDir()
	res, err := FromItems(rows).WithOptions(opts).Repartition(2).WriteCSV(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 2 {
		t.Fatalf("files %v", res.Files)
	}
	sameRows(t, "csv round trip", takeAll(t, ReadCSV(dir).WithOptions(opts)), rows)
	// Arrow's own CSV reader agrees with what we wrote.
	f, err := os.Open(res.Files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := arrowcsv.NewInferringReader(f, arrowcsv.WithHeader(true), arrowcsv.WithChunk(-1), arrowcsv.WithNullReader(true, ""))
	defer r.Release()
	if !r.Next() {
		t.Fatalf("arrow csv: %v", r.Err())
	}
	if got := r.Record().NumRows(); got != 350 {
		t.Fatalf("arrow csv read %d rows of the first file, want 350", got)
	}
	checkNoLeak(t, mem)
}

func TestJSONL_RoundTrip(t *testing.T) {
	ctx := context.Background()
	rows := genRows(rand.New(rand.NewPCG(4, 4)), 700)
	opts, mem := testOptions(100, 0)
	dir := t.TempDir()
	if _, err := FromItems(rows).WithOptions(opts).WriteJSONL(ctx, dir); err != nil {
		t.Fatal(err)
	}
	sameRows(t, "jsonl round trip", takeAll(t, ReadJSONL(dir).WithOptions(opts)), rows)
	checkNoLeak(t, mem)
}

func TestJSONL_NestedValuesAndMissingKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.jsonl")
	os.WriteFile(path, []byte(`{"a": 1, "tags": ["x", "y"]}`+"\n\n"+`{"b": "s", "a": 2.5}`+"\n"+`{"a": null, "meta": {"k": 1}}`+"\n"), 0o644)
	got := takeAll(t, ReadJSONL(path))
	want := []map[string]any{
		{"a": 1.0, "tags": `["x","y"]`, "b": nil, "meta": nil},
		{"a": 2.5, "tags": nil, "b": "s", "meta": nil},
		{"a": nil, "tags": nil, "b": nil, "meta": `{"k":1}`},
	}
	sameRows(t, "jsonl", got, want)
}

// A failed job must name what failed and leave no goroutine behind.
func TestBadInput_ErrorsNameTheCulprit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A valid Parquet file, then a truncated and a garbage one.
	good := filepath.Join(dir, "pq")
	if _, err := FromItems(genRows(rand.New(rand.NewPCG(1, 1)), 300)).WriteParquet(ctx, good); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(good, "part-00000.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	trunc := write("bad/truncated.parquet", string(raw[:len(raw)/2]))
	garbage := write("bad2/garbage.parquet", "PAR1 this is not parquet at all PAR1")
	corrupt := append([]byte(nil), raw...)
	for i := 200; i < len(corrupt)-200; i += 37 {
		corrupt[i] ^= 0x5a
	}
	flipped := write("bad3/flipped.parquet", string(corrupt))

	write("csv/a.csv", "id,name\n1,x\n2,y\n")
	write("csv/b.csv", "id,label\n3,z\n")
	badCell := write("cell.csv", "id,score\n1,2.5\n2,oops\n")
	badLine := write("lines.jsonl", `{"a": 1}`+"\n"+`{"a": 2,}`+"\n")

	wrongSchema := func(_ context.Context, in arrow.Record) (arrow.Record, error) {
		if in.Column(0).(*array.Int64).Value(0) >= 30 {
			return array.NewRecord(arrow.NewSchema([]arrow.Field{{Name: "other", Type: arrow.PrimitiveTypes.Int64}}, nil), []arrow.Array{in.Column(0)}, in.NumRows()), nil
		}
		in.Retain()
		return in, nil
	}
	badOffsets := func(_ context.Context, in arrow.Record) (arrow.Record, error) {
		// A string column whose offsets go backwards: what a buggy guest might hand back.
		offs := memory.NewBufferBytes(arrow.Int32Traits.CastToBytes([]int32{0, 5, 2}))
		data := memory.NewBufferBytes([]byte("hello"))
		d := array.NewData(arrow.BinaryTypes.String, 2, []*memory.Buffer{nil, offs, data}, nil, 0, 0)
		defer d.Release()
		col := array.MakeFromData(d)
		defer col.Release()
		return array.NewRecord(arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String}}, nil), []arrow.Array{col}, 2), nil
	}
	panics := func(context.Context, arrow.Record) (arrow.Record, error) { panic("guest blew up") }
	ids := make([]map[string]any, 100)
	for i := range ids {
		ids[i] = map[string]any{"id": i}
	}
	items := FromItems(ids).WithOptions(Options{BatchRows: 10})

	for _, tc := range []struct {
		name string
		run  func() error
		want []string
		is   error
	}{
		{"missing folder", func() error { _, err := ReadCSV(filepath.Join(dir, "nope")).Count(ctx); return err }, []string{"nope", "no such file"}, os.ErrNotExist},
		{"empty folder", func() error {
			os.Mkdir(filepath.Join(dir, "empty"), 0o755)
			_, err := ReadParquet(filepath.Join(dir, "empty")).Count(ctx)
			return err
		}, []string{"empty", "no .parquet"}, ErrBadInput},
		{"truncated parquet", func() error { _, err := ReadParquet(trunc).Count(ctx); return err }, []string{"truncated.parquet"}, ErrBadInput},
		{"garbage parquet", func() error { _, err := ReadParquet(garbage).Count(ctx); return err }, []string{"garbage.parquet"}, ErrBadInput},
		{"bit-flipped parquet", func() error { _, err := ReadParquet(flipped).Count(ctx); return err }, []string{"flipped.parquet"}, ErrBadInput},
		{"csv files disagree", func() error { _, err := ReadCSV(filepath.Join(dir, "csv")).Count(ctx); return err }, []string{"b.csv", `"label"`, `"name"`}, ErrSchemaMismatch},
		{"csv cell", func() error {
			s := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "score", Type: arrow.PrimitiveTypes.Float64}}, nil)
			_, err := ReadCSV(badCell, CSVOptions{Schema: s}).Count(ctx)
			return err
		}, []string{"cell.csv", "line 3", `"score"`, "oops"}, ErrBadInput},
		{"jsonl line", func() error { _, err := ReadJSONL(badLine).Count(ctx); return err }, []string{"lines.jsonl", "line 2"}, ErrBadInput},
		{"udf wrong schema", func() error {
			_, err := items.MapBatches(wrongSchema, MapOptions{Concurrency: 3}).Count(ctx)
			return err
		}, []string{"batch 3", `"other"`}, ErrSchemaMismatch},
		{"udf malformed batch", func() error { _, err := items.MapBatches(badOffsets, MapOptions{}).Count(ctx); return err }, []string{"batch 0", `column "s"`, "offsets"}, ErrUDF},
		{"udf builds an impossible batch", func() error {
			f := func(context.Context, arrow.Record) (arrow.Record, error) {
				offs := memory.NewBufferBytes(arrow.Int32Traits.CastToBytes([]int32{0, 5, 1 << 20}))
				d := array.NewData(arrow.BinaryTypes.String, 2, []*memory.Buffer{nil, offs, memory.NewBufferBytes([]byte("hello"))}, nil, 0, 0)
				return nil, fmt.Errorf("unreachable: %v", array.MakeFromData(d))
			}
			_, err := items.MapBatches(f, MapOptions{}).Count(ctx)
			return err
		}, []string{"batch 0", "out of bounds"}, ErrUDF},
		{"udf panics", func() error { _, err := items.MapBatches(panics, MapOptions{Concurrency: 2}).Count(ctx); return err }, []string{"batch ", "guest blew up"}, ErrUDF},
		{"udf pool fails to start", func() error {
			pool := func(context.Context, int) (BatchFunc, func() error, error) {
				return nil, nil, errors.New("no model file")
			}
			_, err := items.MapBatches(nil, MapOptions{Pool: pool, Concurrency: 2}).Count(ctx)
			return err
		}, []string{"no model file"}, ErrUDF},
		{"bad expression", func() error { _, err := items.Filter("id >").Count(ctx); return err }, []string{"filter", "offset"}, ErrBadExpr},
		{"unknown column", func() error { _, err := items.Select("id", "nope").Count(ctx); return err }, []string{`"nope"`}, nil},
		{"join key types", func() error {
			_, err := items.Join(FromItems([]map[string]any{{"id": "x"}}), []string{"id"}, JoinInner).Count(ctx)
			return err
		}, []string{`"id"`, "int64", "utf8"}, ErrSchemaMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
			goleak.VerifyNone(t)
		})
	}
}

func TestExecution_CancelStopsEveryStage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	slow := func(ctx context.Context, in arrow.Record) (arrow.Record, error) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
		in.Retain()
		return in, nil
	}
	rows := genRows(rand.New(rand.NewPCG(5, 5)), 5000)
	d := FromItems(rows).WithOptions(Options{BatchRows: 10}).MapBatches(slow, MapOptions{Concurrency: 4}).Sort([]string{"id"}, false)
	done := make(chan error, 1)
	go func() { _, err := d.Count(ctx); done <- err }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled job did not stop")
	}
	goleak.VerifyNone(t)
}

func TestProgress_CountsRowsPerOperator(t *testing.T) {
	var p Progress
	rows := genRows(rand.New(rand.NewPCG(6, 6)), 1000)
	n, err := FromItems(rows).Filter("v >= 0").Limit(100).WithOptions(Options{BatchRows: 64, Progress: &p}).Count(context.Background())
	if err != nil || n != 100 {
		t.Fatalf("count %d, %v", n, err)
	}
	snap := p.Snapshot()
	if len(snap) != 3 {
		t.Fatalf("snapshot %+v", snap)
	}
	src, filt, lim := snap[0], snap[1], snap[2]
	if !strings.Contains(src.Op, "from_items") || !strings.Contains(filt.Op, "filter") || !strings.Contains(lim.Op, "limit") {
		t.Fatalf("ops %q %q %q", src.Op, filt.Op, lim.Op)
	}
	if lim.RowsOut != 100 || filt.RowsOut < 100 || filt.RowsIn < filt.RowsOut || filt.BytesIn == 0 || !lim.Done {
		t.Fatalf("counters %+v", snap)
	}
	// Limit stopped its input early: the source did not read all 1000 rows (it can run ahead
	// of the limit by the batches in flight and queued, a handful of 64-row batches).
	if src.RowsOut > 640 {
		t.Fatalf("source produced %d of 1000 rows for a limit of 100", src.RowsOut)
	}
}

func TestSpill_FolderRemovedAfterFailure(t *testing.T) {
	tmp := t.TempDir()
	rows := genRows(rand.New(rand.NewPCG(8, 8)), 3000)
	failAt := func(_ context.Context, in arrow.Record) (arrow.Record, error) {
		return nil, errors.New("downstream failure")
	}
	var p Progress
	opts := Options{BatchRows: 100, MemoryCap: 16 << 10, TempDir: tmp, Progress: &p}
	_, err := FromItems(rows).Sort([]string{"f"}, false).MapBatches(failAt, MapOptions{}).WithOptions(opts).Count(context.Background())
	if err == nil || !strings.Contains(err.Error(), "downstream failure") {
		t.Fatalf("got %v", err)
	}
	spilled := false
	for _, s := range p.Snapshot() {
		spilled = spilled || s.SpilledBytes > 0
	}
	if !spilled {
		t.Fatal("the sort did not spill; the test checks nothing")
	}
	left, _ := os.ReadDir(tmp)
	if len(left) != 0 {
		t.Fatalf("spill folder left behind: %v", left)
	}
	goleak.VerifyNone(t)
}
