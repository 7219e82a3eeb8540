package batchinference_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/internal/lumentest"
)

const (
	files, rowsPerFile = 12, 500
	workers            = 3
)

// The model of guest/main.go, computed independently here.
func weight(c, j int) float64 { return float64((c+1)*(j+2)%7-3) / 4 }
func bias(c int) float64      { return float64(c-1) / 8 }

func classify(f [4]float64) (int64, float64) {
	best, bestScore := 0, 0.0
	for c := 0; c < 3; c++ {
		s := bias(c)
		for j := 0; j < 4; j++ {
			s += weight(c, j) * f[j]
		}
		if c == 0 || s > bestScore {
			best, bestScore = c, s
		}
	}
	return int64(best), bestScore
}

// writeInputs writes files CSV files of id and four features; it returns the features by id.
func writeInputs(t *testing.T, dir string, seed uint64) map[int64][4]float64 {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	feats := map[int64][4]float64{}
	for f := 0; f < files; f++ {
		var b strings.Builder
		b.WriteString("id,f0,f1,f2,f3\n")
		for r := 0; r < rowsPerFile; r++ {
			id := int64(f*rowsPerFile + r)
			var x [4]float64
			fmt.Fprintf(&b, "%d", id)
			for j := range x {
				s := strconv.FormatFloat(rng.Float64()*20-10, 'f', 3, 64)
				x[j], _ = strconv.ParseFloat(s, 64)
				b.WriteString("," + s)
			}
			b.WriteString("\n")
			feats[id] = x
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("part-%02d.csv", f)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return feats
}

type jobStatus struct {
	ID       string
	State    string
	Error    string
	Workers  int64
	Progress []struct {
		Op         string `json:"op"`
		BatchesOut int64  `json:"batches_out"`
		RowsOut    int64  `json:"rows_out"`
	}
	Result struct {
		Write struct {
			Files []string
			Rows  int64
		}
	}
}

// The example's pipeline on a real `lumen up`: 6,000 rows in 12 batches scored by a pool of 3
// workers, each an actor of the guest's Classifier whose constructor built the weights. Every
// row is scored as the model here says, every row carries loads = 1 (its worker built the model
// once), and some worker scored several batches with that one model.
func TestBatchInference_ModelLoadedOncePerWorker(t *testing.T) {
	wasm, err := os.ReadFile(guestbuild.Go(t, "guest"))
	if err != nil {
		t.Fatal(err)
	}
	pipeline, err := os.ReadFile("pipeline.json")
	if err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	root := t.TempDir()
	feats := writeInputs(t, filepath.Join(root, "in"), seed)
	node := lumentest.StartWith(t, "", "--data-root", root)
	node.Push(wasm, "classifier", "1.0.0")
	c, ctx := node.Client(), context.Background()
	var st jobStatus
	if err := c.JSON(ctx, "POST", "/v1/data/jobs", pipeline, &st); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for st.State == "running" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if err := c.JSON(ctx, "GET", "/v1/data/jobs/"+st.ID, nil, &st); err != nil {
			t.Fatal(err)
		}
	}
	if st.State != "succeeded" {
		t.Fatalf("job %s: %s %s", st.ID, st.State, st.Error)
	}
	if st.Workers != workers {
		t.Errorf("%d workers built, want %d", st.Workers, workers)
	}
	if st.Result.Write.Rows != files*rowsPerFile {
		t.Errorf("%d rows written, want %d", st.Result.Write.Rows, files*rowsPerFile)
	}
	for _, op := range st.Progress {
		if strings.Contains(op.Op, "map_batches") && (op.BatchesOut != files || op.RowsOut != files*rowsPerFile) {
			t.Errorf("%s: %d batches, %d rows out", op.Op, op.BatchesOut, op.RowsOut)
		}
	}
	scored, maxBatch := 0, int64(0)
	for _, f := range st.Result.Write.Files {
		scored += checkScores(t, filepath.Join(root, f), feats, &maxBatch)
	}
	if scored != files*rowsPerFile {
		t.Errorf("%d rows scored, want %d", scored, files*rowsPerFile)
	}
	if maxBatch < 2 {
		t.Errorf("no worker scored more than one batch (max %d): the pool did not reuse its model", maxBatch)
	}
	if n := strings.Count(node.Output(), "classifier loaded"); n != 0 && n != workers {
		t.Errorf("the node logged %d model loads, want %d", n, workers)
	}
}

// checkScores reads one output file with Arrow's Parquet reader and checks each row's label
// and score; it returns the rows it checked.
func checkScores(t *testing.T, path string, feats map[int64][4]float64, maxBatch *int64) int {
	t.Helper()
	rdr, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Close()
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 4096}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	tr := array.NewTableReader(tbl, 4096)
	defer tr.Release()
	n := 0
	for tr.Next() {
		rec := tr.Record()
		col := func(name string) any { return rec.Column(rec.Schema().FieldIndices(name)[0]) }
		ids, labels, scores := col("id").(*array.Int64), col("label").(*array.Int64), col("score").(*array.Float64)
		loads, batches := col("loads").(*array.Int64), col("batch").(*array.Int64)
		for i := 0; i < int(rec.NumRows()); i++ {
			x, ok := feats[ids.Value(i)]
			if !ok {
				t.Fatalf("row %d: unknown id %d", i, ids.Value(i))
			}
			wl, ws := classify(x)
			if labels.Value(i) != wl || scores.Value(i) != ws {
				t.Fatalf("id %d: label %d score %v, want %d %v", ids.Value(i), labels.Value(i), scores.Value(i), wl, ws)
			}
			if loads.Value(i) != 1 {
				t.Fatalf("id %d: its worker loaded the model %d times", ids.Value(i), loads.Value(i))
			}
			*maxBatch = max(*maxBatch, batches.Value(i))
			n++
		}
	}
	return n
}
