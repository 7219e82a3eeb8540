package datajobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/data"
	"github.com/lumenflow/lumen/engine/datajobs"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/plugins"
	"github.com/lumenflow/lumen/sdk/abi"
	lumen "github.com/lumenflow/lumen/sdk/go"
)

// The guests' datasets end to end: testdata/datasetguest reads CSV folders under the data root
// through dataset_open/next/schema with the Go SDK's own IPC reader (no Arrow in the guest),
// builds derived rows with its IPC writer, finishes them into an object and opens that again.
// Every number is checked against a Go reference computed here from the same files.

var dataGrants = host.Grants{Capabilities: []abi.Capability{abi.CapData, abi.CapObjects}}

const dsJob = "dsjob"

// salesRef is what the guest must find in the sales files.
type salesRef struct {
	rows, nulls, sum, big int64
	files                 int
}

// writeSales writes files CSV files of rows rows each under dir: id, amount (empty every 7th
// id), city; and returns the reference figures.
func writeSales(t testing.TB, dir string, files, rows int) salesRef {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ref := salesRef{files: files}
	cities := []string{"oslo", "lima", "pune"}
	id := 0
	for f := range files {
		var b strings.Builder
		b.WriteString("id,amount,city\n")
		for range rows {
			amount := (id*37)%100 - 10
			ref.rows++
			if id%7 == 0 {
				fmt.Fprintf(&b, "%d,,%s\n", id, cities[id%3])
				ref.nulls++
			} else {
				fmt.Fprintf(&b, "%d,%d,%s\n", id, amount, cities[id%3])
				ref.sum += int64(amount)
				if amount >= 50 {
					ref.big++
				}
			}
			id++
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("part-%03d.csv", f)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return ref
}

type dsNode struct {
	e    *engine.Engine
	root string
	ref  salesRef
}

func newDSNode(t *testing.T) *dsNode {
	t.Helper()
	wasm, err := os.ReadFile(guestbuild.Go(t, "../testdata/datasetguest"))
	if err != nil {
		t.Fatal(err)
	}
	n := &dsNode{root: t.TempDir()}
	n.ref = writeSales(t, filepath.Join(n.root, "sales"), 3, 40)
	ctx := context.Background()
	n.e, err = engine.Open(ctx, engine.Config{DataDir: compileCache(t), DataRoot: n.root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.e.Close(ctx) })
	if _, err := n.e.Modules().Add(ctx, wasm, plugins.AddOptions{Name: "dsg", Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	return n
}

func (n *dsNode) call(t *testing.T, fn string, in any, g host.Grants, lim host.Limits) ([]byte, error) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := n.e.Tasks().Call(ctx, engine.CallRequest{Module: "dsg", Function: fn, Input: b, Job: dsJob, Grants: g, Limits: lim})
	if err != nil {
		return nil, err
	}
	return res.Output, nil
}

type sumOut struct {
	Sum, Nulls, Rows, Batches int64
	Schema                    []lumen.Field
	Object                    struct {
		Ref int64 `json:"$ref"`
	}
	Derived readbackOut
}

type readbackOut struct {
	Rows   int64
	Twice  float64
	Big    int64
	Nulls  int64
	Tagged int64
}

func TestDatasets(t *testing.T) {
	n := newDSNode(t)
	t.Run("SumAndBuildMatchTheReference", n.sumAndBuild)
	t.Run("FilteredPipeline", n.filtered)
	t.Run("AppendRefusesBadBatches", n.appendBad)
	t.Run("OpenRefusesClearly", n.openRefuses)
	t.Run("HandlesEndWithTheCall", n.scopeEnds)
	t.Run("WriteIntoAWritableGrant", n.write)
	if got := n.e.DataJobs().OpenDatasets(); got != 0 {
		t.Errorf("%d datasets still open", got)
	}
}

func (n *dsNode) sum(t *testing.T, pipeline string) sumOut {
	t.Helper()
	b, err := n.call(t, "sum", map[string]string{"pipeline": pipeline, "column": "amount"}, dataGrants, host.Limits{})
	if err != nil {
		t.Fatalf("sum %s: %v", pipeline, err)
	}
	var out sumOut
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("sum output %s: %v", b, err)
	}
	return out
}

func (n *dsNode) sumAndBuild(t *testing.T) {
	ref := n.ref
	out := n.sum(t, `[{"read_csv": "sales"}]`)
	if out.Sum != ref.sum || out.Nulls != ref.nulls || out.Rows != ref.rows || out.Batches != int64(ref.files) {
		t.Errorf("sum, nulls, rows, batches = %d %d %d %d, want %d %d %d %d", out.Sum, out.Nulls, out.Rows, out.Batches, ref.sum, ref.nulls, ref.rows, ref.files)
	}
	var names []string
	for _, f := range out.Schema {
		names = append(names, f.Name+":"+string(f.Type))
	}
	if got := strings.Join(names, ","); got != "id:int64,amount:int64,city:string" {
		t.Errorf("schema %s", got)
	}
	want := readbackOut{Rows: ref.rows, Twice: 2 * float64(ref.sum), Big: ref.big, Nulls: ref.nulls, Tagged: ref.rows}
	if out.Derived != want {
		t.Errorf("derived rows read back in the guest: %+v, want %+v", out.Derived, want)
	}

	// The object, decoded here with Arrow: one batch per input batch, the same figures.
	ctx := context.Background()
	b, err := n.e.Objects().Get(ctx, dsJob, out.Object.Ref, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	st, err := data.ParseIPCStream(b)
	if err != nil {
		t.Fatal(err)
	}
	if st.NumBatches() != ref.files {
		t.Errorf("object holds %d batches, want %d", st.NumBatches(), ref.files)
	}
	var got readbackOut
	for i := range st.NumBatches() {
		rec, err := st.Batch(i)
		if err != nil {
			t.Fatal(err)
		}
		twice := rec.Column(1).(*array.Float64)
		big := rec.Column(2).(*array.Boolean)
		for r := range int(rec.NumRows()) {
			got.Rows++
			got.Twice += twice.Value(r)
			if twice.IsNull(r) {
				got.Nulls++
			}
			if big.Value(r) {
				got.Big++
			}
		}
		got.Tagged += rec.NumRows()
		rec.Release()
	}
	if got != want {
		t.Errorf("object decoded with Arrow: %+v, want %+v", got, want)
	}

	// Another task of the job opens the object by reference.
	args := fmt.Sprintf(`{"ref": {"$ref": %d}}`, out.Object.Ref)
	h, err := n.e.Tasks().Submit(ctx, dsJob, &abi.TaskRequest{Module: "dsg", Function: "readback", Args: json.RawMessage(args), Refs: []int64{out.Object.Ref}}, dataGrants)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := n.e.Objects().Get(ctx, dsJob, h, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var other readbackOut
	if err := json.Unmarshal(rb, &other); err != nil || other != want {
		t.Errorf("readback in another task: %s %v, want %+v", rb, err, want)
	}
}

func (n *dsNode) filtered(t *testing.T) {
	out := n.sum(t, `{"steps": [{"read_csv": "sales"}, {"filter": "amount >= 50"}, {"select": ["id", "amount", "city"]}]}`)
	var want int64
	for id := range int(n.ref.rows) {
		if a := (id*37)%100 - 10; id%7 != 0 && a >= 50 {
			want += int64(a)
		}
	}
	if out.Sum != want || out.Nulls != 0 || out.Rows != n.ref.big || out.Derived.Big != n.ref.big {
		t.Errorf("filtered: sum %d rows %d nulls %d big %d, want %d %d 0 %d", out.Sum, out.Rows, out.Nulls, out.Derived.Big, want, n.ref.big, n.ref.big)
	}
}

func (n *dsNode) appendBad(t *testing.T) {
	b, err := n.call(t, "append_bad", []string{"good", "garbage", "truncated", "float", "good"}, dataGrants, host.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := json.Unmarshal(b, &got); err != nil || len(got) != 6 {
		t.Fatalf("append_bad: %s %v", b, err)
	}
	checks := []struct {
		i    int
		want []string
	}{
		{0, nil},
		{1, []string{"bad_payload", "batch 1", "bad input"}},
		{2, []string{"bad_payload", "batch 2"}},
		{3, []string{"bad_payload", "batch 3", `column "id"`, "float64", "int64"}},
		{4, nil},
		{5, nil}, // finish: the refused batches left the dataset as it was
	}
	for i, msg := range got {
		t.Logf("append %d: %q", i, msg)
	}
	for _, c := range checks {
		if c.want == nil && got[c.i] != "" {
			t.Errorf("step %d: %q, want no error", c.i, got[c.i])
		}
		for _, w := range c.want {
			if !strings.Contains(got[c.i], w) {
				t.Errorf("step %d: %q does not say %q", c.i, got[c.i], w)
			}
		}
	}
}

func (n *dsNode) openRefuses(t *testing.T) {
	outside := t.TempDir()
	writeSales(t, outside, 1, 5)
	if err := os.Symlink(outside, filepath.Join(n.root, "escape")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, pipeline string
		g              host.Grants
		want           []string
	}{
		{"parent path", `[{"read_csv": "../sales"}]`, dataGrants, []string{"bad_payload", `"../sales"`, "not a relative path inside the data root"}},
		{"absolute path", `[{"read_csv": "` + outside + `"}]`, dataGrants, []string{"bad_payload", "not a relative path"}},
		{"symlink out", `[{"read_csv": "escape"}]`, dataGrants, []string{"bad_payload", `"escape"`, "leads outside the data root"}},
		{"missing folder", `[{"read_csv": "no-such-folder"}]`, dataGrants, []string{"not_found", `"no-such-folder"`}},
		{"sink", `[{"read_csv": "sales"}, {"count": {}}]`, dataGrants, []string{"bad_payload", "step 1 (count)", "no sink"}},
		{"not json", `[{"read_csv": `, dataGrants, []string{"bad_payload", "bad pipeline"}},
		{"bad object spec", `{"object": -3}`, dataGrants, []string{"bad_payload", `"object"`}},
		{"unknown object", `{"object": 987654}`, dataGrants, []string{"not_found", "987654"}},
		{"no capability", `[{"read_csv": "sales"}]`, host.Grants{Capabilities: []abi.Capability{abi.CapObjects}}, []string{"denied", `"data"`}},
	}
	for _, c := range cases {
		_, err := n.call(t, "sum", map[string]string{"pipeline": c.pipeline, "column": "amount"}, c.g, host.Limits{})
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		t.Logf("%s: %v", c.name, err)
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v does not say %q", c.name, err, w)
			}
		}
		if strings.Contains(err.Error(), n.root) || c.name != "absolute path" && strings.Contains(err.Error(), outside) {
			t.Errorf("%s: %v shows a host path", c.name, err)
		}
	}
	// The node still serves.
	if out := n.sum(t, `[{"read_csv": "sales"}]`); out.Sum != n.ref.sum {
		t.Errorf("after the refusals: sum %d, want %d", out.Sum, n.ref.sum)
	}
	if got := n.e.DataJobs().OpenDatasets(); got != 0 {
		t.Errorf("%d datasets open after the refusals", got)
	}
}

// dataset_write writes an opened plan or built batches into a writable directory grant, and
// nowhere else.
func (n *dsNode) write(t *testing.T) {
	out, ro := t.TempDir(), t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(out, "link")); err != nil {
		t.Fatal(err)
	}
	g := host.Grants{Capabilities: []abi.Capability{abi.CapData, abi.CapObjects, abi.CapFS},
		Dirs: []host.DirGrant{{HostPath: out, GuestPath: "/out", Writable: true}, {HostPath: ro, GuestPath: "/ro"}}}
	type result struct {
		Rows  int64
		Files []string
	}
	run := func(in map[string]any, g host.Grants) (result, error) {
		b, err := n.call(t, "write", in, g, host.Limits{})
		var r result
		if err == nil {
			err = json.Unmarshal(b, &r)
		}
		return r, err
	}
	r, err := run(map[string]any{"pipeline": `[{"read_csv": "sales"}, {"filter": "amount >= 50"}]`, "sink": `{"write_parquet": "/out/big"}`}, g)
	if err != nil || r.Rows != n.ref.big || len(r.Files) != 1 || r.Files[0] != "/out/big/part-00000.parquet" {
		t.Fatalf("write of a plan: %+v %v, want %d rows in /out/big/part-00000.parquet", r, err, n.ref.big)
	}
	rows, err := data.ReadParquet(filepath.Join(out, "big")).Count(context.Background())
	if err != nil || rows != n.ref.big {
		t.Errorf("the Parquet written: %d rows, %v; want %d", rows, err, n.ref.big)
	}
	r, err = run(map[string]any{"build": []int64{3, 1, 4}, "sink": `{"write_csv": {"path": "/out/built"}}`}, g)
	if err != nil || r.Rows != 3 {
		t.Fatalf("write of built batches: %+v %v", r, err)
	}
	if b, err := os.ReadFile(filepath.Join(out, "built", "part-00000.csv")); err != nil || string(b) != "v\n3\n1\n4\n" {
		t.Errorf("the CSV written: %q %v", b, err)
	}
	bad := []struct {
		name, sink string
		g          host.Grants
		want       []string
	}{
		{"read-only grant", `{"write_csv": "/ro/x"}`, g, []string{"denied", "read-only"}},
		{"no grant", `{"write_csv": "/elsewhere/x"}`, g, []string{"denied", "no directory the job grants"}},
		{"link out", `{"write_csv": "/out/link/x"}`, g, []string{"denied", "leads outside"}},
		{"climbing", `{"write_csv": "/out/../ro/x"}`, g, []string{"bad_payload", "not a clean absolute"}},
		{"relative", `{"write_csv": "out/x"}`, g, []string{"bad_payload", "not a clean absolute"}},
		{"not a sink", `{"count": "/out/x"}`, g, []string{"bad_payload", "not write_parquet"}},
		{"no fs", `{"write_csv": "/out/x"}`, dataGrants, []string{"denied", `"fs"`}},
	}
	for _, c := range bad {
		_, err := run(map[string]any{"build": []int64{1}, "sink": c.sink}, c.g)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		t.Logf("%s: %v", c.name, err)
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v does not say %q", c.name, err, w)
			}
		}
		for _, p := range []string{out, ro, outside} {
			if strings.Contains(err.Error(), p) {
				t.Errorf("%s: %v shows a host path", c.name, err)
			}
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("%d files written outside the grant", len(entries))
	}
}

// A call that returns, or is stopped at its deadline, with a dataset open leaves nothing: not
// the dataset, not its plan's goroutines.
func (n *dsNode) scopeEnds(t *testing.T) {
	base := runtime.NumGoroutine()
	b, err := n.call(t, "leave", `[{"read_csv": "sales"}]`, dataGrants, host.Limits{})
	if err != nil || string(b) != "40" {
		t.Fatalf("leave: %s %v", b, err)
	}
	if got := n.e.DataJobs().OpenDatasets(); got != 0 {
		t.Errorf("%d datasets open after a call that left one open", got)
	}
	_, err = n.call(t, "spin", `[{"read_csv": "sales"}]`, dataGrants, host.Limits{Timeout: 300 * time.Millisecond})
	var ae *abi.Error
	if !errors.As(err, &ae) || ae.Kind != abi.KindLimit {
		t.Fatalf("spin: %v, want a deadline", err)
	}
	if got := n.e.DataJobs().OpenDatasets(); got != 0 {
		t.Errorf("%d datasets open after a call stopped at its deadline", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > base+2 {
		t.Errorf("%d goroutines, %d before the calls", g, base)
	}
}

// The SDK's own IPC writer produces what data.DecodeIPC (every check) accepts, and its reader
// reads what Arrow writes, stepping over the columns it does not read.
func TestDatasetSDK_IPCMatchesArrow(t *testing.T) {
	b, err := lumen.NewBatchBuilder().Int64("id", []int64{1, -2, 3}, []bool{true, false, true}).
		Float64("x", []float64{1.5, 2.5, -3}, nil).Bool("ok", []bool{true, false, true}, nil).
		String("name", []string{"a", "", "ccc"}, []bool{true, false, true}).IPC()
	if err != nil {
		t.Fatal(err)
	}
	rec, err := data.DecodeIPC(b, nil)
	if err != nil {
		t.Fatalf("the SDK's batch does not decode: %v", err)
	}
	defer rec.Release()
	if got := fmt.Sprint(rec.Column(0), rec.Column(1), rec.Column(2), rec.Column(3)); got != `[1 (null) 3] [1.5 2.5 -3] [true false true] ["a" (null) "ccc"]` {
		t.Errorf("decoded with Arrow: %s", got)
	}

	mem := memory.NewGoAllocator()
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "a", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64)},
		{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "st", Type: arrow.StructOf(arrow.Field{Name: "p", Type: arrow.PrimitiveTypes.Int8})},
		{Name: "f", Type: arrow.PrimitiveTypes.Float32},
		{Name: "u", Type: arrow.PrimitiveTypes.Uint16},
	}, nil)
	bld := array.NewRecordBuilder(mem, sc)
	defer bld.Release()
	bld.Field(0).(*array.Int32Builder).AppendValues([]int32{7, -8}, []bool{true, false})
	lb := bld.Field(1).(*array.ListBuilder)
	lb.Append(true)
	lb.ValueBuilder().(*array.Int64Builder).Append(4)
	lb.Append(true)
	bld.Field(2).(*array.StringBuilder).AppendValues([]string{"héllo", "x"}, nil)
	sb := bld.Field(3).(*array.StructBuilder)
	sb.AppendValues([]bool{true, true})
	sb.FieldBuilder(0).(*array.Int8Builder).AppendValues([]int8{1, 2}, nil)
	bld.Field(4).(*array.Float32Builder).AppendValues([]float32{1.25, 2}, nil)
	bld.Field(5).(*array.Uint16Builder).AppendValues([]uint16{65535, 1}, nil)
	r2 := bld.NewRecord()
	defer r2.Release()
	ib, err := data.EncodeIPC(r2)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := lumen.ParseBatch(ib)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := pb.Int64s(0)
	s, _ := pb.Strings(2)
	f, _ := pb.Float64s(4)
	u, _ := pb.Int64s(5)
	if got := fmt.Sprintf("%d %v %v %v %v %v %s %s", pb.Rows, a, pb.Valid(0, 1), s, f, u, pb.Fields[1].Type, pb.Fields[3].Type); got != "2 [7 0] false [héllo x] [1.25 2] [65535 1] other other" {
		t.Errorf("read by the SDK: %s", got)
	}
	if _, err := pb.Int64s(1); err == nil {
		t.Error("a list column read as int64s")
	}
	schema, err := data.EncodeIPCSchema(sc)
	if err != nil {
		t.Fatal(err)
	}
	fields, err := lumen.ParseSchema(schema)
	if err != nil || len(fields) != 6 || fields[2] != (lumen.Field{Name: "s", Type: lumen.TypeString, Nullable: true}) {
		t.Errorf("schema read by the SDK: %v %v", fields, err)
	}
}

// dsSeeds are batches for the append fuzzer: good ones from the SDK and from Arrow, and broken
// ones.
func dsSeeds(t testing.TB) [][]byte {
	good, err := lumen.NewBatchBuilder().Int64("id", []int64{1, 2, 3}, []bool{true, false, true}).
		String("s", []string{"a", "", "c"}, nil).Bool("b", []bool{true, true, false}, nil).IPC()
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.NewGoAllocator()
	sc := arrow.NewSchema([]arrow.Field{{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64), Nullable: true}}, nil)
	bld := array.NewRecordBuilder(mem, sc)
	defer bld.Release()
	lb := bld.Field(0).(*array.ListBuilder)
	lb.Append(true)
	lb.ValueBuilder().(*array.Float64Builder).AppendValues([]float64{1, 2}, nil)
	lb.AppendNull()
	rec := bld.NewRecord()
	defer rec.Release()
	list, err := data.EncodeIPC(rec)
	if err != nil {
		t.Fatal(err)
	}
	schemaOnly, _ := data.EncodeIPCSchema(sc)
	two, _ := data.EncodeIPCStream(sc, []arrow.Record{rec, rec})
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 0x5a
	return [][]byte{good, list, good[:len(good)-9], flipped, schemaOnly, two, []byte("not arrow"), {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}}
}

// FuzzDatasetAppend appends arbitrary bytes, twice, to a dataset being built and finishes it:
// each append is accepted or refused with bad_payload naming the batch, never a panic, and what
// was accepted comes back whole from the finished object.
func FuzzDatasetAppend(f *testing.F) {
	for _, s := range dsSeeds(f) {
		f.Add(s)
	}
	ctx := context.Background()
	e, err := engine.Open(ctx, engine.Config{DataDir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { e.Close(ctx) })
	s := e.DataJobs()
	f.Fuzz(func(t *testing.T, b []byte) {
		c := &host.CallInfo{Job: "fuzz"}
		h, err := s.DatasetCreate(ctx, c, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, decErr := data.DecodeIPC(b, nil)
		if want != nil {
			defer want.Release()
		}
		for i := range 2 {
			err := s.DatasetAppend(ctx, c, h, b)
			var se *host.StatusError
			switch {
			case (err == nil) != (decErr == nil):
				t.Fatalf("append %d: %v, but DecodeIPC says %v", i, err, decErr)
			case err != nil && (!errors.As(err, &se) || se.Status != abi.ErrBadPayload || !strings.HasPrefix(se.Message, fmt.Sprintf("batch %d: ", i))):
				t.Fatalf("append %d: %v, want bad_payload naming batch %d", i, err, i)
			}
		}
		obj, err := s.DatasetFinish(ctx, c, h)
		if decErr != nil {
			var ae *abi.Error
			if !errors.As(err, &ae) || ae.Kind != abi.KindBadInput {
				t.Fatalf("finish of a dataset with nothing appended: %d %v", obj, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		defer e.Objects().Release(c.Job, obj)
		out, err := e.Objects().Get(ctx, c.Job, obj, 0)
		if err != nil {
			t.Fatal(err)
		}
		st, err := data.ParseIPCStream(out)
		if err != nil || st.NumBatches() != 2 {
			t.Fatalf("finished object: %v, %d batches", err, st.NumBatches())
		}
		for i := range 2 {
			got, err := st.Batch(i)
			if err != nil {
				t.Fatalf("batch %d of the object: %v", i, err)
			}
			if !array.RecordEqual(got, want) {
				t.Errorf("batch %d of the object differs from the appended one", i)
			}
			got.Release()
		}
	})
}

// BenchmarkGuestDatasetScan sums a column of a 200,000-row CSV folder from a guest, batch by
// batch through dataset_next and the SDK's IPC reader; BenchmarkNativeDatasetScan is the same
// pipeline summed in Go on the host, the floor the guest's path is measured against.
func BenchmarkGuestDatasetScan(b *testing.B) {
	wasm, err := os.ReadFile(guestbuild.Go(b, "../testdata/datasetguest"))
	if err != nil {
		b.Fatal(err)
	}
	root := b.TempDir()
	ref := writeSales(b, filepath.Join(root, "big"), 4, 50000)
	ctx := context.Background()
	e, err := engine.Open(ctx, engine.Config{DataDir: b.TempDir(), DataRoot: root})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(ctx)
	if _, err := e.Modules().Add(ctx, wasm, plugins.AddOptions{Name: "dsg", Version: "1.0.0"}); err != nil {
		b.Fatal(err)
	}
	in := []byte(`{"pipeline": "[{\"read_csv\": \"big\"}]", "column": "amount"}`)
	// One call first: it instantiates the guest, which later calls find pooled.
	if _, err := e.Tasks().Call(ctx, engine.CallRequest{Module: "dsg", Function: "scan", Input: in, Job: dsJob, Grants: dataGrants}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		res, err := e.Tasks().Call(ctx, engine.CallRequest{Module: "dsg", Function: "scan", Input: in, Job: dsJob, Grants: dataGrants})
		if err != nil || string(res.Output) != fmt.Sprint(ref.sum) {
			b.Fatalf("scan: %v %v, want %d", res, err, ref.sum)
		}
	}
	b.ReportMetric(float64(ref.rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkNativeDatasetScan(b *testing.B) {
	root := b.TempDir()
	ref := writeSales(b, filepath.Join(root, "big"), 4, 50000)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		var total int64
		err := data.ReadCSV(filepath.Join(root, "big")).WithOptions(data.Options{Queue: 1}).Iter(ctx, func(rec arrow.Record) error {
			col := rec.Column(1).(*array.Int64)
			for i := range col.Len() {
				if col.IsValid(i) {
					total += col.Value(i)
				}
			}
			return nil
		})
		if err != nil || total != ref.sum {
			b.Fatalf("native scan: %d %v, want %d", total, err, ref.sum)
		}
	}
	b.ReportMetric(float64(ref.rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// The plan runs only as far ahead of the guest as its queues allow: after one dataset_next of a
// 100-batch dataset the host holds a few batches, not the data, and closing frees them all.
func TestDatasets_HostHoldsAFewBatches(t *testing.T) {
	root := t.TempDir()
	writeSales(t, filepath.Join(root, "big"), 1, 100_000)
	ctx := context.Background()
	e, err := engine.Open(ctx, engine.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	mem := data.NewCountingAllocator(nil)
	const rows = 1000
	d := data.ReadCSV(filepath.Join(root, "big")).WithOptions(data.Options{Allocator: mem, BatchRows: rows, Queue: 1})
	c := &host.CallInfo{Job: "j"}
	s := e.DataJobs()
	h, err := datajobs.StartDataset(s, c, d, root)
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.DatasetNext(ctx, c, h)
	if err != nil || len(first) == 0 {
		t.Fatalf("first batch: %d bytes, %v", len(first), err)
	}
	batchBytes := int64(rows * (8 + 8 + 8)) // id, amount, and city's offsets; city's bytes aside
	// Wait until the plan stops moving: it fills its queues, then blocks.
	deadline := time.Now().Add(5 * time.Second)
	for prev := int64(-1); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		cur := mem.Current()
		if cur == prev {
			break
		}
		prev = cur
	}
	if held := mem.Current(); held > 8*batchBytes || held <= 0 {
		t.Errorf("the host holds %d bytes after one batch of 100, more than 8 batches of about %d", held, batchBytes)
	} else {
		t.Logf("held after one batch: %d bytes (a batch: about %d)", held, batchBytes)
	}
	if err := s.DatasetClose(ctx, c, h); err != nil {
		t.Fatal(err)
	}
	if held := mem.Current(); held != 0 {
		t.Errorf("%d bytes held after close", held)
	}
}
