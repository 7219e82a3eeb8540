package datajobs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/data"
	"github.com/lumenflow/lumen/engine/datajobs"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/plugins"
)

// dataNode is one engine with a data root and the data guest registered as "dg", shared by the
// subtests of TestDataJobs: compiling the guest (Arrow inside) is the slow part.
type dataNode struct {
	e    *engine.Engine
	root string
}

// input writes files CSV files of rows people each into a folder named after the test and
// returns the folder (relative to the root).
func (n *dataNode) input(t *testing.T, files, rows int) string {
	t.Helper()
	in := strings.NewReplacer("/", "_").Replace(t.Name())
	writePeople(t, filepath.Join(n.root, in), files, rows)
	return in
}

func TestDataJobs(t *testing.T) {
	wasm, err := os.ReadFile(guestbuild.Go(t, "testdata/dataguest"))
	if err != nil {
		t.Fatal(err)
	}
	n := &dataNode{root: t.TempDir()}
	ctx := context.Background()
	n.e, err = engine.Open(ctx, engine.Config{DataDir: compileCache(t), DataRoot: n.root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.e.Close(ctx) })
	if _, err := n.e.Modules().Add(ctx, wasm, plugins.AddOptions{Name: "dg", Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	t.Run("CleanScoreGroupByToParquet", n.cleanScoreGroupByToParquet)
	t.Run("ActorPoolLoadsOncePerWorker", n.actorPoolLoadsOncePerWorker)
	t.Run("RefusesAndFailsCleanly", n.refusesAndFailsCleanly)
	t.Run("Cancel", n.cancel)
	t.Run("ConcurrentStatusPolls", n.concurrentStatusPolls)
	t.Run("WorkflowStep", n.workflowStep)
}

// A workflow's pipeline step runs as a data job named in the step's status; its JSON result is
// what later templates select from, and a failing pipeline fails the workflow naming the step.
func (n *dataNode) workflowStep(t *testing.T) {
	e, in := n.e, n.input(t, 3, 40)
	doc := `{"version": 1, "name": "etl", "steps": [
		{"id": "etl", "pipeline": {"steps": [
			{"read_csv": "` + in + `"}, {"filter": "age is not null"},
			{"map_batches": "dg.score"},
			{"groupby": ["city"], "aggregate": {"n": "count()"}},
			{"write_jsonl": "` + in + `-out"}]}}
	], "output": {"rows": "${etl.write.rows}", "files": "${etl.write.files}"}}`
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, err := e.SubmitWorkflow(ctx, []byte(doc), "wfjob", nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Workflows().Result(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"rows":5,"files":["` + in + `-out/part-00000.jsonl"]}`; string(out) != want {
		t.Errorf("output %s, want %s", out, want)
	}
	wf, _ := e.Workflows().Get(id)
	dj := wf.Steps[0].DataJob
	st, err := e.DataJobs().Status(dj)
	if err != nil || st.State != datajobs.Succeeded || st.Job != "wfjob" || st.Workers != 1 {
		t.Errorf("data job %q: %+v %v", dj, st, err)
	}
	bad := `{"version": 1, "steps": [{"id": "broken", "pipeline": [{"read_csv": "` + in + `"}, {"map_batches": "dg.garbage"}, {"count": {}}]}]}`
	id, err = e.SubmitWorkflow(ctx, []byte(bad), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Workflows().Result(ctx, id); err == nil || !strings.Contains(err.Error(), `step "broken": pipeline`) || !strings.Contains(err.Error(), "malformed batch") {
		t.Errorf("broken pipeline: %v", err)
	}
}

// compileCache returns a fresh data directory whose compile-cache is a folder kept across test
// runs: the data guest holds Arrow (13 MB of WebAssembly), which takes minutes to compile under
// the race detector and a second to load from wazero's cache (keyed by the module's hash and
// wazero's version; entries are written under temporary names and renamed).
func compileCache(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	base, err := os.UserCacheDir()
	if err != nil {
		return dir
	}
	cache := filepath.Join(base, "lumen-test", "compile-cache")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		return dir
	}
	if err := os.Symlink(cache, filepath.Join(dir, "compile-cache")); err != nil {
		t.Fatal(err)
	}
	return dir
}

var cities = []string{"oslo", "lima", "pune", "kyiv", "baku"}

// writePeople writes files CSV files of rows people each: id, age, city (some ages empty).
func writePeople(t *testing.T, dir string, files, rows int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	id := 0
	for f := 0; f < files; f++ {
		var b strings.Builder
		b.WriteString("id,age,city\n")
		for r := 0; r < rows; r++ {
			age := fmt.Sprint((id*37)%90 + 1)
			if id%11 == 0 {
				age = ""
			}
			fmt.Fprintf(&b, "%d,%s,%s\n", id, age, cities[id%len(cities)])
			id++
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("part-%03d.csv", f)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func waitJob(t *testing.T, e *engine.Engine, id string) datajobs.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := e.DataJobs().Wait(ctx, id)
	if err != nil {
		t.Fatalf("wait for %s: %v (status %+v)", id, err, st)
	}
	return st
}

func (n *dataNode) cleanScoreGroupByToParquet(t *testing.T) {
	e, root, in := n.e, n.root, n.input(t, 4, 300)
	out := in + "-out"
	spec := `{"steps": [
		{"read_csv": "` + in + `"},
		{"filter": "age is not null and age >= 18"},
		{"map_batches": {"fn": "dg@1.0.0.score", "concurrency": 2}},
		{"groupby": ["city"], "aggregate": {"n": "count()", "total": "sum(score)", "oldest": "max(age)"}},
		{"write_parquet": "` + out + `"}
	]}`
	id, err := e.DataJobs().Run(context.Background(), "j1", []byte(spec), host.Grants{})
	if err != nil {
		t.Fatal(err)
	}
	st := waitJob(t, e, id)
	if st.State != datajobs.Succeeded || st.Result == nil || st.Result.Write == nil {
		t.Fatalf("status %+v", st)
	}
	if st.Workers != 2 {
		t.Errorf("%d workers built, want 2 (one instance per worker)", st.Workers)
	}
	if len(st.Progress) < 4 || !st.Progress[len(st.Progress)-1].Done {
		t.Errorf("progress %+v", st.Progress)
	}
	// The reference: the same over the generated rows, in Go.
	type agg struct {
		n, oldest int64
		total     float64
	}
	want := map[string]*agg{}
	for id := 0; id < 4*300; id++ {
		if id%11 == 0 {
			continue
		}
		age := int64((id*37)%90 + 1)
		if age < 18 {
			continue
		}
		c := cities[id%len(cities)]
		if want[c] == nil {
			want[c] = &agg{}
		}
		w := want[c]
		w.n++
		w.total += float64(age) * 2
		w.oldest = max(w.oldest, age)
	}
	rows, err := data.ReadParquet(filepath.Join(root, out)).Take(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(want) {
		t.Fatalf("%d groups, want %d: %v", len(rows), len(want), rows)
	}
	for _, r := range rows {
		w := want[r["city"].(string)]
		if w == nil || r["n"].(int64) != w.n || r["total"].(float64) != w.total || r["oldest"].(int64) != w.oldest {
			t.Errorf("row %v, want %+v", r, w)
		}
	}
	if st.Result.Write.Rows != int64(len(want)) {
		t.Errorf("result says %d rows written", st.Result.Write.Rows)
	}
}

// The batch-inference pattern: every worker is an actor whose constructor built the model once,
// and every row is scored.
func (n *dataNode) actorPoolLoadsOncePerWorker(t *testing.T) {
	e, in := n.e, n.input(t, 9, 50)
	spec := `[{"read_csv": "` + in + `"}, {"map_batches": {"fn": "dg.Model.predict", "concurrency": 3}},
		{"aggregate": {"rows": "count()", "scored": "count(pred)", "maxloads": "max(loads)", "minloads": "min(loads)", "sum": "sum(pred)"}},
		{"take": 1}]`
	id, err := e.DataJobs().Run(context.Background(), "", []byte(spec), host.Grants{})
	if err != nil {
		t.Fatal(err)
	}
	st := waitJob(t, e, id)
	if st.State != datajobs.Succeeded {
		t.Fatalf("status %+v", st)
	}
	r := st.Result.Rows[0]
	var sum float64
	var scored int64
	for id := 0; id < 450; id++ {
		if id%11 != 0 {
			sum += float64((id*37)%90+1) * 0.5
			scored++
		}
	}
	if r["rows"].(int64) != 450 || r["scored"].(int64) != scored || r["sum"].(float64) != sum {
		t.Errorf("result %v, want 450 rows, %d scored, sum %v", r, scored, sum)
	}
	if r["maxloads"].(int64) != 1 || r["minloads"].(int64) != 1 {
		t.Errorf("a worker's model was loaded %v..%v times, want once", r["minloads"], r["maxloads"])
	}
	if st.Workers != 3 {
		t.Errorf("%d workers, want 3", st.Workers)
	}
}

func (n *dataNode) refusesAndFailsCleanly(t *testing.T) {
	e, root, in := n.e, n.root, n.input(t, 2, 20)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, in+"-link")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	refused := []struct{ spec, want string }{
		{`[{"read_csv": "../etc"}, {"count": {}}]`, `not a relative path`},
		{`[{"read_csv": "/etc"}, {"count": {}}]`, `not a relative path`},
		{`[{"read_csv": "` + in + `-link/x"}, {"count": {}}]`, `leads outside the data root`},
		{`[{"read_csv": "` + in + `"}, {"write_csv": "` + in + `-link"}]`, `leads outside the data root`},
		{`[{"filter": "x"}]`, `step 0`},
		{`{"steps": 3}`, `pipeline`},
	}
	for _, c := range refused {
		if _, err := e.DataJobs().Run(ctx, "", []byte(c.spec), host.Grants{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.spec, err, c.want)
		}
	}
	failed := []struct{ spec, want string }{
		{`[{"read_csv": "` + in + `"}, {"map_batches": "dg.nope"}]`, `has no function "nope"`},
		{`[{"read_csv": "` + in + `"}, {"map_batches": "nomodule.score"}]`, `resolve "nomodule.score"`},
		{`[{"read_csv": "` + in + `"}, {"map_batches": "dg.Model"}]`, `not a batch function`},
		{`[{"read_csv": "` + in + `"}, {"map_batches": "dg.garbage"}, {"count": {}}]`, `dg.garbage returned a malformed batch`},
		{`[{"read_csv": "missing"}, {"count": {}}]`, `missing`},
		{`[{"read_csv": "` + in + `"}, {"select": ["id"]}, {"map_batches": "dg.score"}, {"count": {}}]`, `no int64 column age`},
	}
	for _, c := range failed {
		id, err := e.DataJobs().Run(ctx, "", []byte(c.spec), host.Grants{})
		if err != nil {
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: refused with %v, want %q", c.spec, err, c.want)
			}
			continue
		}
		st := waitJob(t, e, id)
		if st.State != datajobs.Failed || !strings.Contains(st.Error, c.want) {
			t.Errorf("%s: %s %q, want failed with %q", c.spec, st.State, st.Error, c.want)
		}
	}
	// The node still serves a good job after all that.
	id, err := e.DataJobs().Run(ctx, "", []byte(`[{"read_csv": "`+in+`"}, {"map_batches": "dg.score"}, {"count": {}}]`), host.Grants{})
	if err != nil {
		t.Fatal(err)
	}
	if st := waitJob(t, e, id); st.State != datajobs.Succeeded || *st.Result.Count != 40 {
		t.Fatalf("after failures: %+v", st)
	}
	if _, err := e.DataJobs().Status("dj-nope"); !errors.Is(err, datajobs.ErrNotFound) {
		t.Errorf("unknown job: %v", err)
	}
}

func TestDataJob_NoDataRootRefused(t *testing.T) {
	ctx := context.Background()
	e, err := engine.Open(ctx, engine.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	if _, err := e.DataJobs().Run(ctx, "", []byte(`[{"from_items": [{"a": 1}]}]`), host.Grants{}); !errors.Is(err, datajobs.ErrNoDataRoot) {
		t.Fatalf("got %v, want ErrNoDataRoot", err)
	}
}

func (n *dataNode) cancel(t *testing.T) {
	e, in := n.e, n.input(t, 3, 10)
	id, err := e.DataJobs().Run(context.Background(), "", []byte(`[{"read_csv": "`+in+`"}, {"map_batches": "dg.spin"}, {"count": {}}]`), host.Grants{})
	if err != nil {
		t.Fatal(err)
	}
	// Cancel once the spinning function has a batch.
	deadline := time.Now().Add(time.Minute)
	for {
		st, _ := e.DataJobs().Status(id)
		if st.Workers > 0 || st.Done() || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if err := e.DataJobs().Cancel(id); err != nil {
		t.Fatal(err)
	}
	st := waitJob(t, e, id)
	if st.State != datajobs.Cancelled {
		t.Fatalf("state %s (%s), want cancelled", st.State, st.Error)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("cancel took %v", el)
	}
}

func (n *dataNode) concurrentStatusPolls(t *testing.T) {
	e, in := n.e, n.input(t, 6, 100)
	id, err := e.DataJobs().Run(context.Background(), "", []byte(`[{"read_csv": "`+in+`"}, {"map_batches": {"fn": "dg.score", "concurrency": 2}}, {"sort": ["score"]}, {"count": {}}]`), host.Grants{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				st, err := e.DataJobs().Status(id)
				if err != nil {
					t.Error(err)
					return
				}
				for _, p := range st.Progress {
					if p.RowsOut > p.RowsIn && !strings.Contains(p.Op, "read_csv") {
						t.Errorf("%s: %d rows out of %d in", p.Op, p.RowsOut, p.RowsIn)
					}
				}
				if st.Done() {
					return
				}
			}
		}()
	}
	wg.Wait()
	if st := waitJob(t, e, id); st.State != datajobs.Succeeded || *st.Result.Count != 600 {
		t.Fatalf("%+v", st)
	}
}
