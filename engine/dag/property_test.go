package dag

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"
)

// seed returns LUMEN_SEED when set, else a fresh seed; the test logs it so a failure replays.
func seed(t *testing.T) uint64 {
	if s := os.Getenv("LUMEN_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("LUMEN_SEED: %v", err)
		}
		return n
	}
	return uint64(time.Now().UnixNano())
}

// genStep is a step of a generated workflow, with what its rendered args must decode to.
type genStep struct {
	k      int // position in the hidden topological order
	id     string
	deps   map[string]bool
	mapped bool
	items  int // elements of a map step
	spec   StepSpec
	expect func(outs map[string]any, item any, index int) any
}

// genWorkflow builds a random DAG of n steps: step k may refer to any step before it in a hidden
// order, in every form a reference can take; ids are shuffled so that id order says nothing.
func genWorkflow(rng *rand.Rand, n int) ([]*genStep, *Workflow) {
	names := rng.Perm(n)
	steps := make([]*genStep, n)
	for k := range steps {
		s := &genStep{k: k, id: fmt.Sprintf("s%03d", names[k]), deps: map[string]bool{}}
		steps[k] = s
		type entry struct {
			tmpl   any
			expect func(outs map[string]any, item any, index int) any
		}
		args := map[string]entry{"k": {k, func(map[string]any, any, int) any { return float64(k) }}}
		if k > 0 && rng.IntN(3) == 0 {
			// A map step, over a literal or over an earlier plain step's list.
			s.mapped = true
			j := steps[rng.IntN(k)]
			if j.mapped || rng.IntN(2) == 0 {
				s.spec.Map = json.RawMessage(`[10, "x", {"y": true}]`)
				s.items = 3
			} else {
				s.spec.Map = json.RawMessage(`"${` + j.id + `.list}"`)
				s.items = j.k%4 + 1
				s.deps[j.id] = true
			}
			args["item"] = entry{"${item}", func(_ map[string]any, item any, _ int) any { return item }}
			args["index"] = entry{"${index}", func(_ map[string]any, _ any, i int) any { return float64(i) }}
			args["at"] = entry{"i=${index}", func(_ map[string]any, _ any, i int) any { return "i=" + strconv.Itoa(i) }}
		}
		for j := 0; j < k; j++ {
			if rng.IntN(4) != 0 {
				continue
			}
			d := steps[j]
			s.deps[d.id] = true
			key := "r" + d.id
			switch form := rng.IntN(3); {
			case form == 0:
				args[key] = entry{"${" + d.id + "}", func(outs map[string]any, _ any, _ int) any { return outs[d.id] }}
			case form == 1 && d.mapped:
				args[key] = entry{"${" + d.id + "[0].v[0]}", func(map[string]any, any, int) any { return float64(d.k) }}
			case form == 1:
				args[key] = entry{"${" + d.id + ".v[0]}", func(map[string]any, any, int) any { return float64(d.k) }}
			case d.mapped:
				args[key] = entry{"n=${" + d.id + "[0].e}!", func(map[string]any, any, int) any { return "n=0!" }}
			default:
				args[key] = entry{"<${" + d.id + ".id}>", func(map[string]any, any, int) any { return "<" + d.id + ">" }}
			}
		}
		tmpl := map[string]any{}
		for key, e := range args {
			tmpl[key] = e.tmpl
		}
		raw, _ := json.Marshal(tmpl)
		s.spec.ID, s.spec.Module, s.spec.Function, s.spec.Args = s.id, "math", "add", raw
		s.expect = func(outs map[string]any, item any, index int) any {
			m := map[string]any{}
			for key, e := range args {
				m[key] = e.expect(outs, item, index)
			}
			return m
		}
	}
	w := &Workflow{Version: 1, Name: "random"}
	for _, i := range rng.Perm(n) {
		w.Steps = append(w.Steps, steps[i].spec)
	}
	return steps, w
}

// outputOf is what generated step s returns for one call (elem is -1 for a plain step).
func outputOf(s *genStep, elem int) []byte {
	if elem >= 0 {
		return fmt.Appendf(nil, `{"id": %q, "v": [%d], "e": %d}`, s.id, s.k, elem)
	}
	list := make([]int, s.k%4+1)
	for i := range list {
		list[i] = i
	}
	b, _ := json.Marshal(list)
	return fmt.Appendf(nil, `{"id": %q, "v": [%d], "list": %s}`, s.id, s.k, b)
}

func TestPlan_RandomDAGsRunEachStepOnceAfterItsDeps(t *testing.T) {
	sd := seed(t)
	t.Logf("seed %d (LUMEN_SEED=%d replays it)", sd, sd)
	rng := rand.New(rand.NewPCG(sd, 0x1ab))
	for trial := 0; trial < 150; trial++ {
		n := 1 + rng.IntN(30)
		steps, w := genWorkflow(rng, n)
		p, err := Compile(w, catalog)
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		byID := map[string]*genStep{}
		for _, s := range steps {
			byID[s.id] = s
		}
		checkOrder(t, p, byID)

		// The order does not depend on how the steps are listed, nor does the digest.
		rng.Shuffle(len(w.Steps), func(i, j int) { w.Steps[i], w.Steps[j] = w.Steps[j], w.Steps[i] })
		if p2, err := Compile(w, catalog); err != nil || p2.String() != p.String() {
			t.Fatalf("trial %d: listing order changed the plan: %v", trial, err)
		}

		// Drive a run with Ready, finishing a random non-empty subset of what is ready each round.
		outputs := map[string][]byte{}
		decoded := map[string]any{}
		done := map[string]bool{}
		runs := map[string]int{}
		for len(done) < len(p.Steps) {
			ready := p.Ready(done)
			if want := readyOracle(p, done); !reflect.DeepEqual(ids(ready), want) {
				t.Fatalf("trial %d: Ready = %v, want %v", trial, ids(ready), want)
			}
			if len(ready) == 0 {
				t.Fatalf("trial %d: nothing ready with %d of %d done", trial, len(done), len(p.Steps))
			}
			rng.Shuffle(len(ready), func(i, j int) { ready[i], ready[j] = ready[j], ready[i] })
			for _, s := range ready[:1+rng.IntN(len(ready))] {
				for _, d := range s.Deps {
					if !done[d] {
						t.Fatalf("trial %d: %s ran before its dependency %s", trial, s.ID, d)
					}
				}
				runs[s.ID]++
				outputs[s.ID] = execute(t, s, byID[s.ID], outputs, decoded)
				var v any
				if err := json.Unmarshal(outputs[s.ID], &v); err != nil {
					t.Fatalf("%s: output %s: %v", s.ID, outputs[s.ID], err)
				}
				decoded[s.ID] = v
			}
			for _, s := range ready {
				if runs[s.ID] > 0 {
					done[s.ID] = true
				}
			}
		}
		for _, s := range p.Steps {
			if runs[s.ID] != 1 {
				t.Fatalf("trial %d: %s ran %d times", trial, s.ID, runs[s.ID])
			}
		}
		if _, err := p.Output.Render(outputs, nil, 0); err != nil {
			t.Fatalf("trial %d: output: %v", trial, err)
		}
	}
}

// checkOrder checks the plan's steps against the generator: dependencies first, the smallest id
// first among those ready together, and each step's Deps exact.
func checkOrder(t *testing.T, p *Plan, byID map[string]*genStep) {
	t.Helper()
	if len(p.Steps) != len(byID) {
		t.Fatalf("%d steps, want %d", len(p.Steps), len(byID))
	}
	placed := map[string]bool{}
	for i, s := range p.Steps {
		g := byID[s.ID]
		if s.Index != i || p.Step(s.ID) != s {
			t.Fatalf("step %s: index %d at %d", s.ID, s.Index, i)
		}
		want := slices.Sorted(func(yield func(string) bool) {
			for d := range g.deps {
				if !yield(d) {
					return
				}
			}
		})
		if want == nil {
			want = []string{}
		}
		if !reflect.DeepEqual(s.Deps, want) {
			t.Fatalf("step %s: deps %v, want %v", s.ID, s.Deps, want)
		}
		// The smallest id among the steps whose deps are placed.
		var smallest string
		for id, h := range byID {
			if placed[id] {
				continue
			}
			ok := true
			for d := range h.deps {
				ok = ok && placed[d]
			}
			if ok && (smallest == "" || id < smallest) {
				smallest = id
			}
		}
		if s.ID != smallest {
			t.Fatalf("position %d is %s, want %s", i, s.ID, smallest)
		}
		placed[s.ID] = true
	}
}

func readyOracle(p *Plan, done map[string]bool) []string {
	var out []string
	for _, s := range p.Steps {
		ok := !done[s.ID]
		for _, d := range s.Deps {
			ok = ok && done[d]
		}
		if ok {
			out = append(out, s.ID)
		}
	}
	return out
}

func ids(steps []*Step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.ID)
	}
	return out
}

// execute renders a step's input for each call, checks it against the generator's expectation
// (decoded by encoding/json, an oracle independent of the scanner), and returns its output.
func execute(t *testing.T, s *Step, g *genStep, outputs map[string][]byte, decoded map[string]any) []byte {
	t.Helper()
	check := func(item json.RawMessage, index int) {
		in, err := s.RenderInput(outputs, item, index)
		if err != nil {
			t.Fatalf("%s: %v", s.ID, err)
		}
		var got, itemV any
		if err := json.Unmarshal(in, &got); err != nil {
			t.Fatalf("%s: input %s: %v", s.ID, in, err)
		}
		if item != nil {
			json.Unmarshal(item, &itemV)
		}
		if want := g.expect(decoded, itemV, index); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: input %s, want %#v", s.ID, in, want)
		}
	}
	if !g.mapped {
		check(nil, 0)
		return outputOf(g, -1)
	}
	items, err := s.Items(outputs)
	if err != nil || len(items) != g.items {
		t.Fatalf("%s: %d items, want %d: %v", s.ID, len(items), g.items, err)
	}
	var outs [][]byte
	for i, it := range items {
		check(it, i)
		outs = append(outs, outputOf(g, i))
	}
	out, err := s.Join(outs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
