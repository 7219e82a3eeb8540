package data

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

func TestPipeline_ParseErrorsNameStepAndField(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{`[]`, "no steps"},
		{`{"steps": [{"read_csv": "in/"}], "extra": 1}`, `unknown field "extra"`},
		{`[{"filter": "a > 1"}]`, "step 0 (filter): a pipeline starts with a source"},
		{`[{"read_csv": "in/"}, {"read_csv": "x/"}]`, "step 1 (read_csv): a source only comes first"},
		{`[{"read_csv": "in/"}, {"filter": "a >"}]`, `step 1 (filter) field "filter"`},
		{`[{"read_csv": "in/"}, {"add_column": {"name": "x"}}]`, `step 1 (add_column) field "expr"`},
		{`[{"read_csv": "in/"}, {"add_column": {"expr": "1"}}]`, `step 1 (add_column) field "name": missing`},
		{`[{"read_csv": "in/"}, {"groupby": ["a"]}]`, `step 1 (groupby) field "aggregate": missing`},
		{`[{"read_csv": "in/"}, {"groupby": ["a"], "aggregate": {"n": "median(x)"}}]`, `unknown function "median"`},
		{`[{"read_csv": "in/"}, {"groupby": ["a"], "aggregate": {"n": "sum()"}}]`, `sum needs a column`},
		{`[{"read_csv": "in/"}, {"sort": []}]`, `step 1 (sort) field "keys"`},
		{`[{"read_csv": "in/"}, {"write_csv": "o/"}, {"limit": 3}]`, "step 1 (write_csv): a sink must be the last step"},
		{`[{"read_csv": "in/"}, {"map_batches": {"concurrency": 2}}]`, `step 1 (map_batches) field "fn": missing`},
		{`[{"read_csv": "in/"}, {"map_batches": {"fn": "m.f", "concurrency": 5000}}]`, `field "concurrency"`},
		{`[{"read_csv": "in/"}, {"join": {"right": [{"filter": "x"}], "on": ["id"]}}]`, "step 1 (join) right: step 0 (filter)"},
		{`[{"read_csv": "in/"}, {"join": {"right": [{"read_csv": "r/"}], "on": ["id"], "how": "outer"}}]`, `field "how"`},
		{`[{"read_csv": "in/"}, {"teleport": 1}]`, `step 1: unknown operator "teleport"`},
		{`[{"read_csv": "in/", "filter": "x"}]`, "step 0: want one operator key"},
		{`[{"read_csv": {"path": "in/", "sep": ";"}}]`, `step 0 (read_csv) field "read_csv": json: unknown field "sep"`},
		{`[{"from_items": [{"a": [1]}]}]`, `step 0 (from_items)`},
		{`[{"read_csv": "in/"}, {"repartition": 0}]`, `field "repartition"`},
	} {
		_, err := ParsePipeline([]byte(tc.spec))
		if !errors.Is(err, ErrBadPipeline) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant ErrBadPipeline containing %q", tc.spec, err, tc.want)
		}
	}
}

// ioResolver is what the engine's resolver does for a WASM export: a PoolFunc whose workers each
// hold their own state and exchange batches as Arrow IPC bytes.
type ioResolver struct{ built atomic.Int32 }

func (r *ioResolver) Resolve(_ context.Context, fn string) (PoolFunc, error) {
	if fn != "model.score" {
		return nil, fmt.Errorf("no function %q", fn)
	}
	return func(_ context.Context, worker int) (BatchFunc, func() error, error) {
		r.built.Add(1)
		weight := 2.0 // the "model", loaded once per worker
		guest := func(in []byte) ([]byte, error) {
			rec, err := DecodeIPC(in, nil)
			if err != nil {
				return nil, err
			}
			defer rec.Release()
			idx, err := columnIndex(rec.Schema(), "age")
			if err != nil {
				return nil, err
			}
			ages := rec.Column(idx).(*array.Int64)
			b := array.NewFloat64Builder(memory.DefaultAllocator)
			defer b.Release()
			for i := range ages.Len() {
				b.Append(float64(ages.Value(i)) * weight)
			}
			col := b.NewArray()
			defer col.Release()
			cols := append(append([]arrow.Array(nil), rec.Columns()...), col)
			fields := append(append([]arrow.Field(nil), rec.Schema().Fields()...), arrow.Field{Name: "score", Type: arrow.PrimitiveTypes.Float64})
			out := array.NewRecord(arrow.NewSchema(fields, nil), cols, rec.NumRows())
			defer out.Release()
			return EncodeIPC(out)
		}
		return func(_ context.Context, rec arrow.Record) (arrow.Record, error) {
			in, err := EncodeIPC(rec)
			if err != nil {
				return nil, err
			}
			out, err := guest(in)
			if err != nil {
				return nil, err
			}
			return DecodeIPC(out, nil)
		}, nil, nil
	}, nil
}

func TestPipeline_ETLRunsEndToEnd(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "in"), 0o755)
	people := "name,age,city\n"
	want := map[[2]any]int64{}
	for i := range 2000 {
		age := int64(i % 80)
		city := []string{"Paris", "Lagos", "Lima", ""}[i%4]
		people += fmt.Sprintf("p%d,%d,%s\n", i, age, city)
		if age >= 18 && city != "" {
			want[[2]any{city, age - age%10}]++
		}
	}
	for k, part := range []string{people[:len(people)/2], people[len(people)/2:]} {
		if k == 1 {
			part = "name,age,city\n" + part[strings.Index(part, "\n")+1:]
		}
		os.WriteFile(filepath.Join(root, "in", fmt.Sprintf("part%d.csv", k)), []byte(part), 0o644)
	}
	spec, err := os.ReadFile(filepath.Join("testdata", "pipelines", "etl.json"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePipeline(spec)
	if err != nil {
		t.Fatal(err)
	}
	var prog Progress
	res, err := p.Run(context.Background(), BuildOptions{Root: root, Options: Options{BatchRows: 128, Progress: &prog}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Write == nil || len(res.Write.Files) != 1 {
		t.Fatalf("result %+v", res)
	}
	pf, err := file.OpenParquetFile(res.Write.Files[0], false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	rows := tableRows(t, tbl)
	if len(rows) != len(want) {
		t.Fatalf("%d groups, want %d", len(rows), len(want))
	}
	for i, r := range rows {
		k := [2]any{r["city"], r["decade"]}
		if r["n"] != want[k] {
			t.Errorf("group %v: n=%v, want %d", k, r["n"], want[k])
		}
		if i > 0 && (rows[i-1]["city"].(string) > r["city"].(string)) {
			t.Errorf("not sorted by city at %d", i)
		}
	}
	if len(prog.Snapshot()) != 5 {
		t.Errorf("progress has %d operators, want 5: %+v", len(prog.Snapshot()), prog.Snapshot())
	}
}

func TestPipeline_UDFStepsGoThroughTheResolver(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "in"), 0o755)
	body := "id,age\n"
	for i := range 500 {
		body += fmt.Sprintf("%d,%d\n", i, i%50)
	}
	os.WriteFile(filepath.Join(root, "in", "a.csv"), []byte(body), 0o644)
	spec := `[{"read_csv": "in"}, {"map_batches": {"fn": "model.score", "concurrency": 3}}, {"filter": "score >= 90"}, {"take": 1000}]`
	p, err := ParsePipeline([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	r := &ioResolver{}
	res, err := p.Run(context.Background(), BuildOptions{Root: root, Resolver: r, Options: Options{BatchRows: 32}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 50 || r.built.Load() != 3 {
		t.Fatalf("%d rows (want 50), %d workers built (want 3)", len(res.Rows), r.built.Load())
	}
	for _, row := range res.Rows {
		if row["score"].(float64) != float64(row["age"].(int64))*2 {
			t.Fatalf("row %v", row)
		}
	}
	// An unknown function, a missing resolver and a path outside the root fail by step.
	bad, _ := ParsePipeline([]byte(`[{"read_csv": "in"}, {"map_batches": "model.nope"}]`))
	if _, err := bad.Run(context.Background(), BuildOptions{Root: root, Resolver: r}); err == nil || !strings.Contains(err.Error(), `step 1 (map_batches): resolve "model.nope"`) {
		t.Errorf("unknown fn: %v", err)
	}
	if _, err := p.Run(context.Background(), BuildOptions{Root: root}); err == nil || !strings.Contains(err.Error(), "no resolver") {
		t.Errorf("no resolver: %v", err)
	}
	escape, _ := ParsePipeline([]byte(`[{"read_csv": "../etc"}, {"count": {}}]`))
	if _, err := escape.Run(context.Background(), BuildOptions{Root: root}); !errors.Is(err, ErrBadPipeline) || !strings.Contains(err.Error(), `step 0 (read_csv) field "path"`) {
		t.Errorf("path escape: %v", err)
	}
	if got := escape.Paths(); len(got) != 1 || got[0] != "../etc" {
		t.Errorf("Paths = %v", got)
	}
}

func TestPipeline_UnionAndAggregateWithoutKeys(t *testing.T) {
	spec, err := os.ReadFile(filepath.Join("testdata", "pipelines", "union.json"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePipeline(spec)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Run(context.Background(), BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameRows(t, "union+aggregate", res.Rows, []map[string]any{{"n": int64(3), "total": int64(6)}})
}
