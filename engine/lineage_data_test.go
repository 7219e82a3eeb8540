package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/plugins"
	"github.com/lumenflow/lumen/sdk/abi"
)

// A data job across nodes loses a node: two partitions of a CSV dataset are read into Arrow IPC
// objects by tasks placed on the workers (the results stay there); the worker holding them is
// stopped as a crash would; a task summing a column over both partitions then runs on the
// surviving worker, and the partitions it reads are rebuilt there from lineage first. The sum
// matches the one computed from the files.
func TestDataJob_PartitionsLostWithTheirNodeAreRebuilt(t *testing.T) {
	wasm, err := os.ReadFile(guestbuild.Go(t, "testdata/datasetguest"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	var want int64
	for p := range 2 {
		dir := filepath.Join(root, "sales", fmt.Sprintf("p%d", p))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		b.WriteString("id,amount,city\n")
		for i := range 500 {
			id := p*1000 + i
			amount := (id*37)%100 - 10
			want += int64(amount)
			fmt.Fprintf(&b, "%d,%d,c%d\n", id, amount, id%3)
		}
		if err := os.WriteFile(filepath.Join(dir, "part.csv"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	withRoot := func(c *engine.Config) { c.DataRoot = root }
	ctx := context.Background()
	server := startInNodeWith(t, "s1", nil, scheduler.Resources{scheduler.CPU: 1}, withRoot)
	w2 := startInNodeWith(t, "w2", server, scheduler.Resources{scheduler.CPU: 1, "w": 1}, withRoot)
	if _, err := server.e.Modules().Add(ctx, wasm, plugins.AddOptions{Name: "ds", Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the server sees the worker", func() bool { return len(server.e.Cluster().Nodes()) == 2 })
	grants := host.Grants{Capabilities: []abi.Capability{abi.CapData, abi.CapObjects}}
	need := abi.Resources{Custom: map[string]float64{"w": 1}}
	parts := make([]int64, 2)
	for p := range parts {
		spec := fmt.Sprintf(`[{"read_csv": "sales/p%d"}]`, p)
		if parts[p], err = server.e.Tasks().Submit(ctx, "data", &abi.TaskRequest{Module: "ds@1.0.0", Function: "partition", ArgsBytes: []byte(spec), Resources: need}, grants); err != nil {
			t.Fatal(err)
		}
	}
	res, err := server.e.Objects().Wait(ctx, "data", &abi.WaitRequest{Handles: parts, NumReturns: 2, TimeoutMs: 60000})
	if err != nil || len(res.Ready) != 2 {
		t.Fatalf("partitions: %+v %v", res, err)
	}
	if n := w2.e.Cluster().Self().TasksRun; n != 2 {
		t.Fatalf("%s ran %d tasks, want both partitions", w2.id, n)
	}
	// A second worker joins; the first one, holding both partitions, dies.
	w3 := startInNodeWith(t, "w3", server, scheduler.Resources{scheduler.CPU: 1, "w": 1}, withRoot)
	waitFor(t, 20*time.Second, "the server sees w3", func() bool { return len(server.e.Cluster().Nodes()) == 3 })
	w2.stop()
	waitFor(t, 30*time.Second, "w2 declared dead", func() bool {
		for _, v := range server.e.Cluster().Nodes() {
			if v.ID == "w2" {
				return v.Dead
			}
		}
		return false
	})
	in := fmt.Sprintf(`{"parts": [{"$ref": %d}, {"$ref": %d}], "column": "amount"}`, parts[0], parts[1])
	h, err := server.e.Tasks().Submit(ctx, "data", &abi.TaskRequest{Module: "ds@1.0.0", Function: "total", Args: []byte(in), Refs: parts, Resources: need}, grants)
	if err != nil {
		t.Fatal(err)
	}
	out, err := server.e.Objects().Get(ctx, "data", h, 90*time.Second)
	if err != nil || string(out) != strconv.FormatInt(want, 10) {
		t.Fatalf("total over the rebuilt partitions: %s %v (want %d)", out, err, want)
	}
	st := server.e.Cluster().Self()
	if st.Rebuilt != 2 {
		t.Errorf("rebuilt %d partitions, want 2", st.Rebuilt)
	}
	if n := w3.e.Cluster().Self().TasksRun; n != 3 {
		t.Errorf("%s ran %d tasks, want the 2 partitions rebuilt and the total", w3.id, n)
	}
	t.Logf("total %d over 1,000 rows; %d partitions rebuilt on %s after %s died", want, st.Rebuilt, w3.id, w2.id)
}
