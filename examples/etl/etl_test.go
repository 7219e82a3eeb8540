package etl_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/lumenflow/lumen/internal/lumentest"
)

type group struct {
	city        string
	decade, n   int64
	sum, oldest int64
	avg         float64
}

// reference cleans and groups the example's CSV files in plain Go: what the pipeline must write.
func reference(t *testing.T, dir string) []group {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.csv"))
	if len(files) == 0 {
		t.Fatalf("no CSV files in %s", dir)
	}
	by := map[[2]string]*group{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows[1:] {
			age, err := strconv.ParseInt(r[2], 10, 64)
			if err != nil || age < 0 || age >= 130 || r[3] == "" {
				continue
			}
			dec := age - age%10
			k := [2]string{r[3], strconv.FormatInt(dec, 10)}
			g := by[k]
			if g == nil {
				g = &group{city: r[3], decade: dec}
				by[k] = g
			}
			g.n++
			g.sum += age
			g.oldest = max(g.oldest, age)
		}
	}
	var out []group
	for _, g := range by {
		g.avg = float64(g.sum) / float64(g.n)
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].city != out[j].city {
			return out[i].city < out[j].city
		}
		return out[i].decade < out[j].decade
	})
	return out
}

// readParquet reads the groups back with Arrow's own Parquet reader, not Lumen's.
func readParquet(t *testing.T, path string) []group {
	t.Helper()
	rdr, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Close()
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 1024}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	tr := array.NewTableReader(tbl, 1<<20)
	defer tr.Release()
	var out []group
	for tr.Next() {
		rec := tr.Record()
		col := func(name string) any {
			idx := rec.Schema().FieldIndices(name)
			if len(idx) != 1 {
				t.Fatalf("column %q missing from %v", name, rec.Schema())
			}
			return rec.Column(idx[0])
		}
		city, dec, n := col("city").(*array.String), col("decade").(*array.Int64), col("n").(*array.Int64)
		avg, oldest := col("avg_age").(*array.Float64), col("oldest").(*array.Int64)
		for i := 0; i < int(rec.NumRows()); i++ {
			out = append(out, group{city: city.Value(i), decade: dec.Value(i), n: n.Value(i), avg: avg.Value(i), oldest: oldest.Value(i)})
		}
	}
	return out
}

// copyDir copies the example's input so the test writes nothing into the repository.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The example as a user runs it: `lumen up --data-root`, then `lumen run workflow.json
// --follow`; the Parquet it writes is read back with Arrow's reader and compared with the same
// cleaning and grouping done in plain Go.
func TestETL_LumenRunWritesTheGroupsAsParquet(t *testing.T) {
	root := t.TempDir()
	copyDir(t, filepath.Join("data", "in"), filepath.Join(root, "in"))
	node := lumentest.StartWith(t, "", "--data-root", root)
	cmd := exec.Command(lumentest.Binary(t), "run", "workflow.json", "--follow", "--url", node.URL, "--token", node.Token)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("lumen run: %v\n%s\n%s", err, stdout, stderr.String())
	}
	var res struct {
		Rows  int64
		Files []string
	}
	if err := json.Unmarshal(stdout, &res); err != nil {
		t.Fatalf("output %q: %v", stdout, err)
	}
	want := reference(t, filepath.Join("data", "in"))
	if res.Rows != int64(len(want)) || len(res.Files) != 1 || res.Files[0] != "out/part-00000.parquet" {
		t.Fatalf("result %+v, want %d rows in out/part-00000.parquet", res, len(want))
	}
	if !strings.Contains(stderr.String(), "1:read_csv(in)") || !strings.Contains(stderr.String(), "groupby") {
		t.Errorf("--follow showed no per-operator progress:\n%s", stderr.String())
	}
	got := readParquet(t, filepath.Join(root, res.Files[0]))
	if len(got) != len(want) {
		t.Fatalf("%d groups in the Parquet file, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.city != w.city || g.decade != w.decade || g.n != w.n || g.oldest != w.oldest || math.Abs(g.avg-w.avg) > 1e-9 {
			t.Errorf("group %d = %+v, want %+v", i, g, w)
		}
	}
	t.Logf("%d groups from %d input files; progress:\n%s", len(got), 3, lastLines(stderr.String(), 2))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
