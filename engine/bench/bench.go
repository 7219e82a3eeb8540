// Package bench measures a single-node engine against Ray's microbenchmark: tasks, actors,
// objects, compiled and durable workflows and the REST path, each figure beside a baseline
// measured in the same run (a raw wazero call of the same export, a Go copy, the same work
// without HTTP). `lumen bench` prints its Report.
//
// Run opens an engine of its own in a temporary data directory and registers the bench guest
// (testdata/bench.wat, embedded as bench.wasm), so it needs nothing installed and touches no
// other engine. Figures run one after another, each for a fixed duration or count; a figure and
// its baseline are measured in turns, so that both see the same machine when its load changes.
//
// To see where a figure's time goes:
//
//	LUMEN_BENCH_PROFILE=many_actors go test ./engine/bench -run Profile -cpuprofile cpu.out
package bench

//go:generate wat2wasm testdata/bench.wat -o testdata/bench.wasm

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/plugins"
)

//go:embed testdata/bench.wasm
var benchWasm []byte

// Guest is the bench guest's module: tasks noop ("ok") and echo (its input), actor A with
// method A.noop ("ok"). It imports nothing and requests no capabilities.
func Guest() []byte { return slices.Clone(benchWasm) }

// The bench guest's functions, by their index in its manifest (lumen_call's fn).
const (
	fnNoop  = 0
	fnEcho  = 1
	fnA     = 2
	fnANoop = 3
)

// Options configure Run. Zero fields take the defaults.
type Options struct {
	// Quick measures for less time and with fewer actors and bytes: the whole run takes at most
	// about 15 s on 2 cores, against about 60 s by default.
	Quick bool
	// Duration is how long each figure is measured (default 2 s; Quick: 300 ms). Baselines,
	// which vary less, get half of it.
	Duration time.Duration
	// Only limits the run to these figures (Names); empty runs them all.
	Only []string
	// Actors is how many actors many_actors starts (default 10,000, as Ray's benchmark does).
	Actors int
	// PutBytes is the size of single_client_put_gigabytes' object (default 80 MiB, Ray's 10M
	// int64s; Quick: 16 MiB).
	PutBytes int
	// GetBytes is the size of single_client_get_gigabytes' object (default 1 GiB; Quick: 16 MiB).
	GetBytes int
	// Clients is the number of client goroutines of multi_client_tasks_async and
	// rest_workflow_submit and of actor pairs of n_n_actor_calls_async (default GOMAXPROCS, at
	// least 2, as Ray uses one per CPU).
	Clients int
	// DataDir is where the engine keeps its state; empty: a temporary directory, removed after.
	// The REST figure fsyncs there, so its file system matters.
	DataDir string
	// Progress, when set, gets one line per figure as it finishes.
	Progress io.Writer
}

func (o Options) withDefaults() Options {
	if o.Duration <= 0 {
		o.Duration = 2 * time.Second
		if o.Quick {
			o.Duration = 300 * time.Millisecond
		}
	}
	if o.Actors <= 0 {
		o.Actors = 10_000
	}
	if o.PutBytes <= 0 {
		o.PutBytes = 80 << 20
		if o.Quick {
			o.PutBytes = 16 << 20
		}
	}
	if o.GetBytes <= 0 {
		o.GetBytes = 1 << 30
		if o.Quick {
			o.GetBytes = 16 << 20
		}
	}
	if o.Clients <= 0 {
		o.Clients = max(2, runtimeProcs())
	}
	return o
}

// Report is what Run measured.
type Report struct {
	Machine Machine `json:"machine"`
	// Settings are the options the figures were measured with.
	Settings Settings `json:"settings"`
	// Results are keyed by Ray's microbenchmark names (Names).
	Results map[string]*Result `json:"results"`
	// Seconds is how long the run took.
	Seconds float64 `json:"seconds"`
}

// Settings are the resolved Options a Report was measured with.
type Settings struct {
	Quick           bool    `json:"quick"`
	DurationSeconds float64 `json:"duration_seconds"`
	Actors          int     `json:"actors"`
	PutBytes        int     `json:"put_bytes"`
	GetBytes        int     `json:"get_bytes"`
	Clients         int     `json:"clients"`
}

// Result is one figure: Lumen's value beside its same-run baseline and Ray's figure.
type Result struct {
	Value float64  `json:"value,omitzero"`
	Unit  string   `json:"unit"`
	Lat   *Latency `json:"latency,omitempty"`
	// Baseline is the same work without Lumen, measured in the same run.
	Baseline *Figure `json:"baseline,omitempty"`
	// Ratio is Value / Baseline.Value, in Unit: for ops/s the share of the baseline's speed
	// Lumen reaches, for µs how many times the baseline's time Lumen takes.
	Ratio float64 `json:"ratio,omitzero"`
	// Extra figures that say where the time goes.
	Extra []Figure `json:"extra,omitempty"`
	// Ray's figure and Lumen's goal on 2 cores, from the anchors, in Unit.
	Ray       float64 `json:"ray,omitzero"`
	Goal      float64 `json:"goal,omitzero"`
	MeetsGoal *bool   `json:"meets_goal,omitempty"`
	// NotImplemented says why a figure has no value yet.
	NotImplemented string `json:"not_implemented,omitempty"`
	Notes          string `json:"notes,omitempty"`
}

// Figure is a measured value: a baseline or an extra.
type Figure struct {
	Name  string   `json:"name"`
	Value float64  `json:"value"`
	Unit  string   `json:"unit"`
	Lat   *Latency `json:"latency,omitempty"`
	Notes string   `json:"notes,omitempty"`
}

// Latency summarises the times of single operations, in microseconds.
type Latency struct {
	P50  float64 `json:"p50_us"`
	P99  float64 `json:"p99_us"`
	Mean float64 `json:"mean_us"`
	N    int     `json:"samples"`
}

// Units.
const (
	UnitOps    = "ops/s"
	UnitGBs    = "GB/s"
	UnitActors = "actors/s"
	UnitMicros = "µs"
)

// figure is one entry of the suite.
type figure struct {
	name string
	run  func(*env) (*Result, error)
}

// suite is every figure, in the order of Ray's benchmark and the anchors.
var suite = []figure{
	{"single_client_tasks_sync", tasksSync},
	{"single_client_tasks_async", tasksAsync},
	{"multi_client_tasks_async", tasksMultiClient},
	{"1_1_actor_calls_sync", actorCallsSync},
	{"1_1_actor_calls_async", actorCallsAsync},
	{"n_n_actor_calls_async", actorCallsNN},
	{"durable_actor_call", durableActorCall}, // actors.go
	{"single_client_put_calls", putCalls},
	{"single_client_get_calls", getCalls},
	{"single_client_put_gigabytes", putGigabytes},
	{"single_client_get_gigabytes", getGigabytes},
	{"object_pull_gigabytes", objectPull},
	{"placement_group_create/removal", placementGroups},
	{"single_client_wait_1k_refs", wait1k},
	{"many_actors", manyActors},
	{"compiled_workflow_execute", compiledExecute},
	{"rest_workflow_submit", restSubmit},
	{"cluster_writes_3_nodes", clusterWrites},
	{"cluster_failover", clusterFailover},
	{"cluster_tasks_3_nodes", clusterTasks},  // cluster_tasks.go
	{"module_push_13mb_3_nodes", modulePush}, // module_push.go
	{"matmul_f32_512_1core", matmulFigure(512, false)},
	{"matmul_f32_512_all_cores", matmulFigure(512, true)},
	{"matmul_f32_1024_1core", matmulFigure(1024, false)},
	{"matmul_f32_1024_all_cores", matmulFigure(1024, true)},
	{"matmul_f32_2048_1core", matmulFigure(2048, false)},
	{"matmul_f32_2048_all_cores", matmulFigure(2048, true)},
	{"transformer_block_fwd_bwd", transformerBlock},
	{"model_prefill_1core", modelPrefill},
	{"model_decode_1core", modelDecode},
	{"model_constrained_vs_free_decode", modelConstrainedVsFree},
	{"model_train_1core", modelTrain},
	{"data_groupby_10m_rows", dataGroupBy},  // data.go
	{"overload_canary_p99", overloadCanary}, // overload.go
}

// Names lists every figure Run measures, in order.
func Names() []string {
	out := make([]string, len(suite))
	for i, f := range suite {
		out[i] = f.name
	}
	return out
}

// env is what the figures share during a run.
type env struct {
	ctx    context.Context
	opts   Options
	eng    *engine.Engine
	raw    *raw
	module string // the bench guest's reference
	job    string

	restOnce sync.Once
	rest     *restServer
	restErr  error
}

// Run opens an engine in a temporary data directory, registers the bench guest and measures
// every figure of opts (Names), one after another. A figure that cannot be measured, or that
// measures no positive value, is an error: Run goes on with the others and returns the report
// of what it measured together with every such error.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts = opts.withDefaults()
	figs, err := selected(opts.Only)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	dir := opts.DataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "lumen-bench-"); err != nil {
			return nil, fmt.Errorf("bench: data directory: %w", err)
		}
		defer os.RemoveAll(dir)
	}
	// many_actors starts opts.Actors actors of one job, which may be more than a job's default
	// cap on a node: the bench engine sets none.
	eng, err := engine.Open(ctx, engine.Config{DataDir: dir, JobActors: -1})
	if err != nil {
		return nil, fmt.Errorf("bench: open engine: %w", err)
	}
	m, err := eng.Modules().Add(ctx, benchWasm, plugins.AddOptions{Name: "bench", Version: "1.0.0", Description: "lumen bench guest"})
	if err != nil && !errors.Is(err, plugins.ErrConflict) {
		eng.Close(context.Background())
		return nil, fmt.Errorf("bench: register the bench guest: %w", err)
	}
	ref := "bench@1.0.0"
	if err != nil { // a data dir whose bench@1.0.0 is another build: use ours by digest
		if m, err = eng.Modules().Add(ctx, benchWasm, plugins.AddOptions{}); err != nil {
			eng.Close(context.Background())
			return nil, fmt.Errorf("bench: register the bench guest: %w", err)
		}
		ref = m.Digest
	}
	rw, err := newRaw(ctx)
	if err != nil {
		eng.Close(context.Background())
		return nil, err
	}
	b := &env{ctx: ctx, opts: opts, eng: eng, raw: rw, module: ref, job: "bench"}
	defer func() {
		if b.rest != nil {
			b.rest.close()
		}
		rw.close(context.Background())
		eng.Close(context.Background())
	}()

	rep := &Report{
		Machine: machine(),
		Settings: Settings{Quick: opts.Quick, DurationSeconds: opts.Duration.Seconds(), Actors: opts.Actors,
			PutBytes: opts.PutBytes, GetBytes: opts.GetBytes, Clients: opts.Clients},
		Results: map[string]*Result{},
	}
	var errs []error
	for _, f := range figs {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		res, err := f.run(b)
		if err == nil {
			err = complete(f.name, res)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("bench: %s: %w", f.name, err))
			if opts.Progress != nil {
				fmt.Fprintf(opts.Progress, "%-32s FAILED: %v\n", f.name, err)
			}
			continue
		}
		rep.Results[f.name] = res
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "%-32s %s\n", f.name, Summary(res))
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, errors.Join(errs...)
}

// selected returns the figures named in only, in suite order; all of them when only is empty.
func selected(only []string) ([]figure, error) {
	if len(only) == 0 {
		return suite, nil
	}
	want := map[string]bool{}
	for _, n := range only {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	var out []figure
	for _, f := range suite {
		if want[f.name] {
			out = append(out, f)
			delete(want, f.name)
		}
	}
	if len(want) > 0 {
		unknown := make([]string, 0, len(want))
		for n := range want {
			unknown = append(unknown, n)
		}
		sort.Strings(unknown)
		return nil, fmt.Errorf("bench: unknown figure %s (known: %s)", strings.Join(unknown, ", "), strings.Join(Names(), ", "))
	}
	return out, nil
}

// complete checks a result and adds Ray's figure, the goal and the ratio to its baseline.
func complete(name string, r *Result) error {
	a := anchors[name]
	r.Ray = a.ray
	if r.Goal == 0 {
		r.Goal = a.goal
	}
	if r.NotImplemented != "" {
		return nil
	}
	if !positive(r.Value) {
		return fmt.Errorf("measured %v %s: not a positive value", r.Value, r.Unit)
	}
	if r.Baseline != nil {
		if !positive(r.Baseline.Value) {
			return fmt.Errorf("baseline %s measured %v %s: not a positive value", r.Baseline.Name, r.Baseline.Value, r.Baseline.Unit)
		}
		r.Ratio = r.Value / r.Baseline.Value
	}
	if r.Goal > 0 {
		met := r.Value >= r.Goal
		if a.lowerIsBetter {
			met = r.Value <= r.Goal
		}
		r.MeetsGoal = &met
	}
	return nil
}

func positive(v float64) bool { return v > 0 && !math.IsInf(v, 0) && !math.IsNaN(v) }
