package data

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Limits on a pipeline spec.
const (
	MaxPipelineBytes = 1 << 20
	maxPipelineSteps = 1000
	maxPipelineDepth = 8
)

// Resolver finds the user functions a pipeline's map_batches and flat_map steps name. The engine
// implements it over WASM exports: the PoolFunc builds one instance per worker and adapts the
// export with EncodeIPC/DecodeIPC.
type Resolver interface {
	Resolve(ctx context.Context, fn string) (PoolFunc, error)
}

// Pipeline is a parsed, validated JSON pipeline: a source step, transform steps and at most one
// sink step, last. See docs/data.md for the format.
type Pipeline struct {
	Steps []Step
}

// Step is one validated step. Op names it; the fields it uses are set.
type Step struct {
	Index int    `json:"index"`
	Op    string `json:"op"`

	Path        string           `json:"path,omitempty"`        // read_*, write_*
	Delimiter   string           `json:"delimiter,omitempty"`   // read_csv
	Items       []map[string]any `json:"items,omitempty"`       // from_items
	Expr        string           `json:"expr,omitempty"`        // filter, add_column
	Name        string           `json:"name,omitempty"`        // add_column
	Columns     []string         `json:"columns,omitempty"`     // select, sort keys, groupby keys, join keys
	Descending  bool             `json:"descending,omitempty"`  // sort
	Aggs        []Agg            `json:"aggs,omitempty"`        // groupby
	Fn          string           `json:"fn,omitempty"`          // map_batches, flat_map
	Concurrency int              `json:"concurrency,omitempty"` // map_batches, flat_map
	N           int64            `json:"n,omitempty"`           // limit, repartition, take, random_shuffle seed
	How         JoinType         `json:"how,omitempty"`         // join
	Inputs      []*Pipeline      `json:"inputs,omitempty"`      // union: the other inputs; join: the right side
}

var sourceOps = []string{"read_csv", "read_jsonl", "read_parquet", "from_items"}
var sinkOps = []string{"write_parquet", "write_csv", "write_jsonl", "count", "take"}

// ParsePipeline parses and validates a pipeline spec: either a JSON array of steps or an object
// {"steps": [...]}. Each step is an object with one operator key (groupby may be paired with
// aggregate). Errors wrap ErrBadPipeline and name the step index and field.
func ParsePipeline(b []byte) (*Pipeline, error) {
	if len(b) > MaxPipelineBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrBadPipeline, len(b), MaxPipelineBytes)
	}
	return parsePipeline(b, "", 0)
}

func parsePipeline(b []byte, where string, depth int) (*Pipeline, error) {
	if depth > maxPipelineDepth {
		return nil, fmt.Errorf("%w: %spipelines nested deeper than %d", ErrBadPipeline, where, maxPipelineDepth)
	}
	b = bytes.TrimSpace(b)
	var raw []json.RawMessage
	if len(b) > 0 && b[0] == '{' {
		var obj struct {
			Steps []json.RawMessage `json:"steps"`
		}
		if err := strictJSON(b, &obj); err != nil {
			return nil, fmt.Errorf("%w: %s%v", ErrBadPipeline, where, err)
		}
		raw = obj.Steps
	} else if err := strictJSON(b, &raw); err != nil {
		return nil, fmt.Errorf("%w: %sa pipeline is a JSON array of steps or {\"steps\": [...]}: %v", ErrBadPipeline, where, err)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: %sno steps", ErrBadPipeline, where)
	}
	if len(raw) > maxPipelineSteps {
		return nil, fmt.Errorf("%w: %s%d steps, limit %d", ErrBadPipeline, where, len(raw), maxPipelineSteps)
	}
	p := &Pipeline{}
	for i, r := range raw {
		st, err := parseStep(r, i, where, depth)
		if err != nil {
			return nil, err
		}
		isSource := slices.Contains(sourceOps, st.Op)
		isSink := slices.Contains(sinkOps, st.Op)
		switch {
		case i == 0 && !isSource:
			return nil, fmt.Errorf("%w: %sstep 0 (%s): a pipeline starts with a source (%s)", ErrBadPipeline, where, st.Op, strings.Join(sourceOps, ", "))
		case i > 0 && isSource:
			return nil, fmt.Errorf("%w: %sstep %d (%s): a source only comes first (use union or join to combine sources)", ErrBadPipeline, where, i, st.Op)
		case isSink && i != len(raw)-1:
			return nil, fmt.Errorf("%w: %sstep %d (%s): a sink must be the last step", ErrBadPipeline, where, i, st.Op)
		case isSink && depth > 0:
			return nil, fmt.Errorf("%w: %sstep %d (%s): a nested pipeline has no sink", ErrBadPipeline, where, i, st.Op)
		}
		p.Steps = append(p.Steps, st)
	}
	return p, nil
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("text after the JSON value")
	}
	return nil
}

func parseStep(r json.RawMessage, i int, where string, depth int) (Step, error) {
	st := Step{Index: i}
	var obj map[string]json.RawMessage
	if err := strictJSON(r, &obj); err != nil {
		return st, fmt.Errorf("%w: %sstep %d: a step is an object with one operator key: %v", ErrBadPipeline, where, i, err)
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 2 && keys[0] == "aggregate" && keys[1] == "groupby" {
		keys = []string{"groupby"}
	}
	if len(keys) != 1 {
		return st, fmt.Errorf("%w: %sstep %d: want one operator key, got %v", ErrBadPipeline, where, i, keys)
	}
	st.Op = keys[0]
	arg := obj[st.Op]
	bad := func(field string, format string, args ...any) error {
		return fmt.Errorf("%w: %sstep %d (%s) field %q: %s", ErrBadPipeline, where, i, st.Op, field, fmt.Sprintf(format, args...))
	}
	decode := func(field string, v any) error {
		if err := strictJSON(arg, v); err != nil {
			return bad(field, "%v", err)
		}
		return nil
	}
	// pathArg accepts "path" or {"path": "...", ...}.
	pathArg := func(extra any) error {
		if len(arg) > 0 && arg[0] == '"' {
			return decode(st.Op, &st.Path)
		}
		if extra == nil {
			var a struct {
				Path string `json:"path"`
			}
			if err := decode(st.Op, &a); err != nil {
				return err
			}
			st.Path = a.Path
		} else if err := decode(st.Op, extra); err != nil {
			return err
		}
		return nil
	}
	nested := func(field string, raw json.RawMessage) (*Pipeline, error) {
		return parsePipeline(raw, fmt.Sprintf("%sstep %d (%s) %s: ", where, i, st.Op, field), depth+1)
	}
	switch st.Op {
	case "read_csv":
		var a struct {
			Path      string `json:"path"`
			Delimiter string `json:"delimiter"`
		}
		if len(arg) > 0 && arg[0] == '{' {
			if err := decode("read_csv", &a); err != nil {
				return st, err
			}
			st.Path, st.Delimiter = a.Path, a.Delimiter
		} else if err := pathArg(nil); err != nil {
			return st, err
		}
		if len([]rune(st.Delimiter)) > 1 {
			return st, bad("delimiter", "want one character, got %q", st.Delimiter)
		}
	case "read_jsonl", "read_parquet", "write_parquet", "write_csv", "write_jsonl":
		if err := pathArg(nil); err != nil {
			return st, err
		}
	case "from_items":
		if err := decode("from_items", &st.Items); err != nil {
			return st, err
		}
		if ds := FromItems(st.Items); ds.err != nil {
			return st, bad("from_items", "%v", ds.err)
		}
	case "filter":
		if err := decode("filter", &st.Expr); err != nil {
			return st, err
		}
		if _, err := ParseExpr(st.Expr); err != nil {
			return st, bad("filter", "%v", err)
		}
	case "add_column":
		var a struct {
			Name string `json:"name"`
			Expr string `json:"expr"`
		}
		if err := decode("add_column", &a); err != nil {
			return st, err
		}
		if a.Name == "" {
			return st, bad("name", "missing")
		}
		if _, err := ParseExpr(a.Expr); err != nil {
			return st, bad("expr", "%v", err)
		}
		st.Name, st.Expr = a.Name, a.Expr
	case "select":
		if err := decode("select", &st.Columns); err != nil {
			return st, err
		}
		if len(st.Columns) == 0 {
			return st, bad("select", "no columns")
		}
	case "map_batches", "flat_map":
		var a struct {
			Fn          string `json:"fn"`
			Concurrency int    `json:"concurrency"`
		}
		if len(arg) > 0 && arg[0] == '"' {
			if err := decode(st.Op, &a.Fn); err != nil {
				return st, err
			}
		} else if err := decode(st.Op, &a); err != nil {
			return st, err
		}
		if a.Fn == "" {
			return st, bad("fn", "missing")
		}
		if a.Concurrency < 0 || a.Concurrency > 1024 {
			return st, bad("concurrency", "%d is outside 0..1024", a.Concurrency)
		}
		st.Fn, st.Concurrency = a.Fn, a.Concurrency
	case "groupby":
		if err := decode("groupby", &st.Columns); err != nil {
			return st, err
		}
		aggRaw, ok := obj["aggregate"]
		if !ok {
			return st, bad("aggregate", "missing: groupby needs \"aggregate\": {\"out\": \"func(column)\"}")
		}
		if err := addAggs(&st, aggRaw); err != nil {
			return st, bad("aggregate", "%v", err)
		}
	case "aggregate":
		if err := addAggs(&st, arg); err != nil {
			return st, bad("aggregate", "%v", err)
		}
	case "sort":
		var a struct {
			Keys       []string `json:"keys"`
			Descending bool     `json:"descending"`
		}
		if len(arg) > 0 && arg[0] == '[' {
			if err := decode("sort", &a.Keys); err != nil {
				return st, err
			}
		} else if err := decode("sort", &a); err != nil {
			return st, err
		}
		if len(a.Keys) == 0 {
			return st, bad("keys", "no sort keys")
		}
		st.Columns, st.Descending = a.Keys, a.Descending
	case "random_shuffle":
		var a struct {
			Seed int64 `json:"seed"`
		}
		if len(arg) > 0 && arg[0] != '{' {
			if err := decode("random_shuffle", &a.Seed); err != nil {
				return st, err
			}
		} else if err := decode("random_shuffle", &a); err != nil {
			return st, err
		}
		st.N = a.Seed
	case "repartition", "limit", "take":
		if err := decode(st.Op, &st.N); err != nil {
			return st, err
		}
		if st.N < 0 || st.Op == "repartition" && (st.N == 0 || st.N > 1<<20) {
			return st, bad(st.Op, "%d is out of range", st.N)
		}
	case "count":
		var a struct{}
		if len(arg) > 0 && string(arg) != "null" && string(arg) != "true" {
			if err := decode("count", &a); err != nil {
				return st, err
			}
		}
	case "union":
		var raws []json.RawMessage
		if err := decode("union", &raws); err != nil {
			return st, err
		}
		if len(raws) == 0 {
			return st, bad("union", "no inputs to add")
		}
		for k, r := range raws {
			sub, err := nested(fmt.Sprintf("input %d", k), r)
			if err != nil {
				return st, err
			}
			st.Inputs = append(st.Inputs, sub)
		}
	case "join":
		var a struct {
			Right json.RawMessage `json:"right"`
			On    []string        `json:"on"`
			How   string          `json:"how"`
		}
		if err := decode("join", &a); err != nil {
			return st, err
		}
		if len(a.On) == 0 {
			return st, bad("on", "no join keys")
		}
		switch a.How {
		case "", "inner":
			st.How = JoinInner
		case "left":
			st.How = JoinLeft
		default:
			return st, bad("how", "%q is not inner or left", a.How)
		}
		if len(a.Right) == 0 {
			return st, bad("right", "missing")
		}
		sub, err := nested("right", a.Right)
		if err != nil {
			return st, err
		}
		st.Columns, st.Inputs = a.On, []*Pipeline{sub}
	default:
		return st, fmt.Errorf("%w: %sstep %d: unknown operator %q", ErrBadPipeline, where, i, st.Op)
	}
	return st, nil
}

func addAggs(st *Step, raw json.RawMessage) error {
	var m map[string]string
	if err := strictJSON(raw, &m); err != nil {
		return fmt.Errorf("want {\"output\": \"func(column)\"}: %v", err)
	}
	if len(m) == 0 {
		return fmt.Errorf("no aggregates")
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, n := range names {
		a, err := ParseAgg(n, m[n])
		if err != nil {
			return err
		}
		st.Aggs = append(st.Aggs, a)
	}
	return nil
}

// Paths lists every file path the pipeline reads or writes, nested inputs included, so a caller
// can check them against what the job may touch.
func (p *Pipeline) Paths() []string {
	var out []string
	for _, st := range p.Steps {
		if st.Path != "" {
			out = append(out, st.Path)
		}
		for _, in := range st.Inputs {
			out = append(out, in.Paths()...)
		}
	}
	return out
}

// BuildOptions configure Build and Run.
type BuildOptions struct {
	// Root, when set, is the folder every path is relative to; a path that is absolute or
	// climbs out of it (..) is refused.
	Root string
	// Resolver finds the functions of map_batches and flat_map steps. Required when the
	// pipeline has such steps.
	Resolver Resolver
	// Options tune the execution.
	Options Options
}

func (o BuildOptions) path(st Step) (string, error) {
	if o.Root == "" {
		return st.Path, nil
	}
	if !filepath.IsLocal(st.Path) {
		return "", fmt.Errorf("%w: step %d (%s) field \"path\": %q is not a relative path inside the job's folder", ErrBadPipeline, st.Index, st.Op, st.Path)
	}
	return filepath.Join(o.Root, st.Path), nil
}

// Build turns the pipeline into a Dataset, without its sink step (returned separately, nil when
// there is none). UDF names are resolved now.
func (p *Pipeline) Build(ctx context.Context, o BuildOptions) (*Dataset, *Step, error) {
	var d *Dataset
	var sink *Step
	for k := range p.Steps {
		st := p.Steps[k]
		wrap := func(err error) error {
			return fmt.Errorf("step %d (%s): %w", st.Index, st.Op, err)
		}
		switch st.Op {
		case "read_csv", "read_jsonl", "read_parquet":
			path, err := o.path(st)
			if err != nil {
				return nil, nil, err
			}
			switch st.Op {
			case "read_csv":
				co := CSVOptions{}
				if st.Delimiter != "" {
					co.Delimiter = []rune(st.Delimiter)[0]
				}
				d = ReadCSV(path, co)
			case "read_jsonl":
				d = ReadJSONL(path)
			default:
				d = ReadParquet(path)
			}
		case "from_items":
			d = FromItems(st.Items)
		case "filter":
			d = d.Filter(st.Expr)
		case "add_column":
			d = d.AddColumn(st.Name, st.Expr)
		case "select":
			d = d.Select(st.Columns...)
		case "map_batches", "flat_map":
			if o.Resolver == nil {
				return nil, nil, wrap(fmt.Errorf("%w: no resolver for function %q", ErrBadPipeline, st.Fn))
			}
			pool, err := o.Resolver.Resolve(ctx, st.Fn)
			if err != nil {
				return nil, nil, wrap(fmt.Errorf("resolve %q: %w", st.Fn, err))
			}
			d = d.MapBatches(nil, MapOptions{Pool: pool, Concurrency: st.Concurrency, Name: st.Op + "(" + st.Fn + ")"})
		case "groupby", "aggregate":
			d = d.GroupBy(st.Columns...).Aggregate(st.Aggs...)
		case "sort":
			d = d.Sort(st.Columns, st.Descending)
		case "random_shuffle":
			d = d.RandomShuffle(st.N)
		case "repartition":
			d = d.Repartition(int(st.N))
		case "limit":
			d = d.Limit(st.N)
		case "union", "join":
			var others []*Dataset
			for _, in := range st.Inputs {
				sub, _, err := in.Build(ctx, o)
				if err != nil {
					return nil, nil, wrap(err)
				}
				others = append(others, sub)
			}
			if st.Op == "union" {
				d = d.Union(others...)
			} else {
				d = d.Join(others[0], st.Columns, st.How)
			}
		case "write_parquet", "write_csv", "write_jsonl", "count", "take":
			sink = &p.Steps[k]
			continue
		}
		if d.err != nil {
			return nil, nil, wrap(d.err)
		}
	}
	return d.WithOptions(o.Options), sink, nil
}

// Result is what a pipeline's sink produced.
type Result struct {
	Write *WriteResult     `json:"write,omitempty"`
	Count *int64           `json:"count,omitempty"`
	Rows  []map[string]any `json:"rows,omitempty"`
}

// Run builds and runs the pipeline. Without a sink step it counts the rows.
func (p *Pipeline) Run(ctx context.Context, o BuildOptions) (Result, error) {
	d, sink, err := p.Build(ctx, o)
	if err != nil {
		return Result{}, err
	}
	op := "count"
	if sink != nil {
		op = sink.Op
	}
	var res Result
	switch op {
	case "count":
		n, err := d.Count(ctx)
		if err != nil {
			return res, err
		}
		res.Count = &n
		return res, nil
	case "take":
		rows, err := d.Take(ctx, int(sink.N))
		res.Rows = rows
		return res, err
	}
	path, err := o.path(*sink)
	if err != nil {
		return res, err
	}
	var w WriteResult
	switch op {
	case "write_parquet":
		w, err = d.WriteParquet(ctx, path)
	case "write_csv":
		w, err = d.WriteCSV(ctx, path)
	default:
		w, err = d.WriteJSONL(ctx, path)
	}
	res.Write = &w
	if err != nil {
		return res, fmt.Errorf("step %d (%s): %w", sink.Index, sink.Op, err)
	}
	return res, nil
}
