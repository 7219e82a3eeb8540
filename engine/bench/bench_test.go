package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine/bench"
)

// TestRun_QuickMeasuresEveryFigure runs the whole suite with a tiny budget and checks that the
// report has every figure, each with a positive value (and a positive baseline where it has
// one), or the explicit not-implemented entry of placement groups, and that it survives JSON.
func TestRun_QuickMeasuresEveryFigure(t *testing.T) {
	var progress bytes.Buffer
	opts := bench.Options{Quick: true, Duration: 20 * time.Millisecond, Actors: 200, PutBytes: 1 << 20, GetBytes: 1 << 20, Progress: &progress}
	start := time.Now()
	rep, err := bench.Run(context.Background(), opts)
	t.Logf("took %v\n%s", time.Since(start), progress.String())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Machine map[string]any             `json:"machine"`
		Results map[string]json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.Machine["cpus"].(float64) < 1 || back.Machine["goarch"] == "" {
		t.Errorf("machine = %v", back.Machine)
	}
	if len(back.Results) != len(bench.Names()) {
		t.Errorf("%d results, want %d", len(back.Results), len(bench.Names()))
	}
	for _, name := range bench.Names() {
		var r bench.Result
		if err := json.Unmarshal(back.Results[name], &r); err != nil {
			t.Errorf("%s: %v (%s)", name, err, back.Results[name])
			continue
		}
		if !(r.Value > 0) || r.Unit == "" || r.NotImplemented != "" {
			t.Errorf("%s = %+v, want a positive value with a unit", name, r)
		}
		if r.Baseline != nil && (!(r.Baseline.Value > 0) || r.Baseline.Name == "" || !(r.Ratio > 0)) {
			t.Errorf("%s: baseline %+v, ratio %v", name, r.Baseline, r.Ratio)
		}
		gpuSection := strings.HasPrefix(name, "matmul_") || strings.HasPrefix(name, "transformer_") || strings.HasPrefix(name, "cluster_") || strings.HasPrefix(name, "module_push_") || strings.HasPrefix(name, "overload_") || strings.HasPrefix(name, "model_") || strings.HasPrefix(name, "data_") || name == "object_pull_gigabytes" || name == "single_client_get_gigabytes"
		if name != "rest_workflow_submit" && name != "durable_actor_call" && !gpuSection && !(r.Ray > 0) {
			t.Errorf("%s: no Ray figure", name)
		}
	}
	for _, name := range []string{"single_client_tasks_sync", "1_1_actor_calls_sync", "many_actors", "compiled_workflow_execute", "rest_workflow_submit", "single_client_put_gigabytes"} {
		var r bench.Result
		json.Unmarshal(back.Results[name], &r)
		if r.Baseline == nil {
			t.Errorf("%s has no baseline", name)
		}
	}
}

// TestRun_OnlyAndUnknownNames checks --only: the named figures alone, and an unknown name refused
// before anything runs.
func TestRun_OnlyAndUnknownNames(t *testing.T) {
	rep, err := bench.Run(context.Background(), bench.Options{Duration: 10 * time.Millisecond, Only: []string{"single_client_get_calls", "placement_group_create/removal"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 || rep.Results["single_client_get_calls"] == nil {
		t.Errorf("results = %v", rep.Results)
	}
	if _, err := bench.Run(context.Background(), bench.Options{Only: []string{"single_client_tasks_sync", "no_such_figure"}}); err == nil || !strings.Contains(err.Error(), "no_such_figure") {
		t.Errorf("unknown figure: err = %v", err)
	}
}

// TestRun_CancelledFailsLoudly checks that a run that cannot measure says so.
func TestRun_CancelledFailsLoudly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := bench.Run(ctx, bench.Options{Duration: 10 * time.Millisecond, Only: []string{"single_client_tasks_sync"}})
	if err == nil {
		t.Fatal("a cancelled run reported no error")
	}
}

// TestGuest_MatchesWAT checks that testdata/bench.wasm is what bench.wat assembles to, when
// wabt's wat2wasm is installed (go generate ./engine/bench/ rebuilds it).
func TestGuest_MatchesWAT(t *testing.T) {
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Skip("wat2wasm absent here (make toolchain installs wabt, so make test runs this check)")
	}
	out := filepath.Join(t.TempDir(), "bench.wasm")
	if b, err := exec.Command("wat2wasm", "testdata/bench.wat", "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, b)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bench.Guest(), want) {
		t.Error("testdata/bench.wasm is stale: run go generate ./engine/bench/")
	}
}

// TestRun_Profile runs the figures named in LUMEN_BENCH_PROFILE (comma-separated; "all" for
// every one) at full length, for profiling where their time goes:
//
//	LUMEN_BENCH_PROFILE=many_actors go test ./engine/bench -run Profile -cpuprofile cpu.out
func TestRun_Profile(t *testing.T) {
	names := os.Getenv("LUMEN_BENCH_PROFILE")
	if names == "" {
		t.Skip("opt-in: set LUMEN_BENCH_PROFILE to the figures to profile")
	}
	opts := bench.Options{Progress: os.Stderr}
	if names != "all" {
		opts.Only = strings.Split(names, ",")
	}
	if _, err := bench.Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
}
