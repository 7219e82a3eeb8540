package dag

import (
	"container/heap"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/lumenflow/lumen/sdk/abi"
)

// Catalog resolves a step's module and function. The engine implements it over its module
// registry. An error wrapping ErrUnknownModule is reported at the step's "module", any other at
// its "function". Compile calls it once per distinct pair, from one goroutine.
type Catalog interface {
	Function(module, function string) (abi.Function, error)
}

// Plan is a compiled workflow: its steps in an order that runs each after its dependencies.
// A Plan is immutable and safe for concurrent use.
type Plan struct {
	Name   string
	Steps  []*Step   // topological order; ties broken by id
	Output *Template // renders the workflow's result from the steps' outputs

	byID   map[string]*Step
	digest string
}

// Step is one step of a plan. Its fields are read-only.
type Step struct {
	ID, Module, Function string
	Index                int       // position in Plan.Steps
	Deps                 []string  // the ids of the steps this one needs, sorted
	Args                 *Template // the call's input (see RenderInput)
	Map                  *Template // nil unless the step has map; renders to the array it maps over
	Retries              *int      // nil: the engine's default
	RetryGuestErrors     bool
	TimeoutMs            int64 // 0: the engine's default
	Resources            abi.Resources
	// Input and Output are the function's encodings, json or bytes: what one call takes and
	// returns. The output of a map step as a whole is always a JSON array (see Join).
	Input, Output abi.Encoding
	// Pipeline marks a data pipeline step: Module and Function are empty, Args is the pipeline's
	// template (RenderInput gives its JSON) and the step outputs the pipeline's JSON result.
	Pipeline bool

	path     string // "$.steps[i]" in the workflow
	inputLit []byte // the bytes input, when it has no reference
	litInput bool
}

// Compile checks a workflow against the catalog and builds its plan. It reports every mistake
// it finds, each with its JSON path, in an ErrorList sorted by path: an invalid or duplicate
// step id, a version other than 1, a bad name, retries outside 0..MaxRetries, a negative
// timeout, invalid resources, a module or function the catalog does not know, a function that is
// not a task, a malformed or unknown reference, ${item} or ${index} outside the args of a map
// step, a map that is not an array, args that cannot be bytes for a function taking bytes,
// a selector into bytes or into a map step's array by field, and each dependency cycle
// ("cycle: a -> b -> a"). A nil Catalog checks no function: every step is taken as a json task.
func Compile(w *Workflow, cat Catalog) (*Plan, error) {
	if w == nil {
		return nil, ErrorList{{Path: "$", Msg: "no workflow"}}
	}
	c := &compiler{w: w, cat: cat, infos: map[string]*stepInfo{}, fns: map[[2]string]fnResult{}}
	return c.compile()
}

type fnResult struct {
	fn  abi.Function
	err error
}

type compiler struct {
	w     *Workflow
	cat   Catalog
	errs  ErrorList
	infos map[string]*stepInfo // by id, for the first step of each valid id
	fns   map[[2]string]fnResult
	steps []cstep // parallel to w.Steps
	// deps[id] are the ids a step refers to; edgePath[{from, to}] is where it first does.
	deps     map[string]map[string]bool
	edgePath map[[2]string]string
}

type cstep struct {
	spec         *StepSpec
	path         string
	valid        bool // the id is valid and the first of its kind
	in, out      abi.Encoding
	args, mapped *Template
}

func (c *compiler) add(path, format string, args ...any) {
	c.errs.add(path, fmt.Sprintf(format, args...))
}

func (c *compiler) compile() (*Plan, error) {
	w := c.w
	if w.Version != 1 {
		c.add("$.version", "unsupported version %d (this engine reads version 1)", w.Version)
	}
	if w.Name != "" {
		if msg := checkName(w.Name); msg != "" {
			c.add("$.name", "%s", msg)
		}
	}
	switch {
	case len(w.Steps) == 0:
		c.add("$.steps", "a workflow needs at least one step")
	case len(w.Steps) > MaxSteps:
		c.add("$.steps", "%d steps, at most %d", len(w.Steps), MaxSteps)
		return nil, c.errs.sorted()
	}
	c.steps = make([]cstep, len(w.Steps))
	for i := range w.Steps {
		c.identify(i)
	}
	for i := range c.steps {
		c.resolve(&c.steps[i])
	}
	c.deps = make(map[string]map[string]bool, len(c.infos))
	c.edgePath = map[[2]string]string{}
	for i := range c.steps {
		c.templates(&c.steps[i])
	}
	output := c.output()
	order := c.order()
	if err := c.errs.sorted(); err != nil {
		return nil, err
	}
	return c.plan(order, output), nil
}

// identify checks step i's id and records the first step of each valid id.
func (c *compiler) identify(i int) {
	s := &c.w.Steps[i]
	cs := &c.steps[i]
	cs.spec, cs.path = s, indexPath("$.steps", i)
	if msg := checkID(s.ID); msg != "" {
		c.add(cs.path+".id", "%s", msg)
		return
	}
	if prev, dup := c.infos[s.ID]; dup {
		c.add(cs.path+".id", "duplicate step id %s (also at $.steps[%d])", quote(s.ID), prev.at)
		return
	}
	cs.valid = true
	c.infos[s.ID] = &stepInfo{at: i, isMap: s.Map != nil}
}

// resolve checks a step's function and settings.
func (c *compiler) resolve(cs *cstep) {
	s, p := cs.spec, cs.path
	cs.in, cs.out = abi.EncJSON, abi.EncJSON
	known := true
	if s.Pipeline != nil {
		c.settings(cs)
		if cs.valid {
			c.infos[s.ID].out = abi.EncJSON
		}
		return
	}
	modMsg, fnMsg := checkName(s.Module), checkName(s.Function)
	if modMsg != "" {
		c.add(p+".module", "%s", modMsg)
	}
	if fnMsg != "" {
		c.add(p+".function", "%s", fnMsg)
	}
	if c.cat != nil {
		known = false
		if modMsg == "" && fnMsg == "" {
			key := [2]string{s.Module, s.Function}
			r, seen := c.fns[key]
			if !seen {
				r.fn, r.err = c.cat.Function(s.Module, s.Function)
				c.fns[key] = r
			}
			switch {
			case r.err != nil && errors.Is(r.err, ErrUnknownModule):
				c.add(p+".module", "%v", r.err)
			case r.err != nil:
				c.add(p+".function", "%v", r.err)
			case r.fn.Kind != abi.KindTask && r.fn.Kind != "":
				c.add(p+".function", "function %s of module %s is %s %s; a step calls a task", quote(s.Function), quote(s.Module), article(string(r.fn.Kind)), r.fn.Kind)
			default:
				known = true
				cs.in, cs.out = encoding(r.fn.Input), encoding(r.fn.Output)
			}
		}
	}
	c.settings(cs)
	if cs.valid && known {
		info := c.infos[s.ID]
		info.out = cs.out
		if info.isMap {
			info.out = abi.EncJSON
		}
	}
}

// settings checks a step's retries, timeout and resources.
func (c *compiler) settings(cs *cstep) {
	s, p := cs.spec, cs.path
	if s.Retries != nil && (*s.Retries < 0 || *s.Retries > MaxRetries) {
		c.add(p+".retries", "retries %d outside 0..%d", *s.Retries, MaxRetries)
	}
	if s.TimeoutMs < 0 {
		c.add(p+".timeout_ms", "timeout_ms %d is negative", s.TimeoutMs)
	}
	if err := s.Resources.Validate(); err != nil {
		c.add(p+".resources", "%v", err)
	}
}

func encoding(e abi.Encoding) abi.Encoding {
	if e == "" {
		return abi.EncJSON
	}
	return e
}

func article(word string) string {
	if word != "" && slices.Contains([]byte("aeiou"), word[0]) {
		return "an"
	}
	return "a"
}

// templates compiles a step's map and args and records what they refer to.
func (c *compiler) templates(cs *cstep) {
	s := cs.spec
	if s.Map != nil {
		ctx := &tctx{owner: s.ID, field: "map", steps: c.infos, errs: &c.errs}
		if t := compileTemplate(s.Map, cs.path+".map", ctx); t != nil {
			cs.mapped = t
			c.checkMap(cs, t)
			c.edges(cs, t)
		}
	}
	args, field, at := []byte(s.Args), "args", cs.path+".args"
	if s.Pipeline != nil {
		args, field, at = s.Pipeline, "pipeline", cs.path+".pipeline"
	}
	if args == nil {
		args = []byte("null")
		if cs.in == abi.EncBytes {
			args = []byte(`""`)
		}
	}
	ctx := &tctx{owner: s.ID, field: field, mapStep: s.Map != nil, steps: c.infos, errs: &c.errs}
	if t := compileTemplate(args, at, ctx); t != nil {
		cs.args = t
		if cs.in == abi.EncBytes {
			c.checkBytesArgs(cs, t)
		}
		c.edges(cs, t)
	}
}

func (c *compiler) checkMap(cs *cstep, t *Template) {
	switch {
	case t.broken:
	case t.top == kArray:
	case t.top == kString && t.whole != nil:
		if r := t.whole; r.root == rootStep && r.bytes {
			c.add(t.path, "map needs an array; step %s outputs bytes", quote(r.step))
		}
	case t.top == kString && len(t.refs) > 0:
		c.add(t.path, "map must be an array or exactly \"${ref}\", not text with a reference in it")
	default:
		c.add(t.path, "map must be an array or a \"${ref}\" naming one, got %s", t.top)
	}
}

func (c *compiler) checkBytesArgs(cs *cstep, t *Template) {
	s := cs.spec
	switch {
	case t.broken:
	case t.top != kString:
		c.add(t.path, "function %s of module %s takes bytes: args must be a string or a \"${ref}\", got %s", quote(s.Function), quote(s.Module), t.top)
	case t.whole != nil && t.whole.root == rootIndex:
		c.add(t.path, "function %s of module %s takes bytes: ${index} is a number, not a string", quote(s.Function), quote(s.Module))
	case t.whole != nil && t.whole.root == rootStep && len(t.whole.sels) == 0 && c.infos[t.whole.step].isMap:
		c.add(t.path, "function %s of module %s takes bytes: step %s has map, so its output is an array, not a string", quote(s.Function), quote(s.Module), quote(t.whole.step))
	}
}

func (c *compiler) edges(cs *cstep, t *Template) {
	if !cs.valid {
		return
	}
	from := cs.spec.ID
	for _, r := range t.refs {
		if r.root != rootStep {
			continue
		}
		d := c.deps[from]
		if d == nil {
			d = map[string]bool{}
			c.deps[from] = d
		}
		d[r.step] = true
		k := [2]string{from, r.step}
		if p, ok := c.edgePath[k]; !ok || comparePaths(r.path, p) < 0 {
			c.edgePath[k] = r.path
		}
	}
}

// output compiles the workflow's output template, or builds the default one.
func (c *compiler) output() *Template {
	ctx := &tctx{field: "output", steps: c.infos, errs: &c.errs}
	if c.w.Output != nil {
		return compileTemplate(c.w.Output, "$.output", ctx)
	}
	used := map[string]bool{}
	for _, d := range c.deps {
		for id := range d {
			used[id] = true
		}
	}
	n := &node{kind: kObject}
	for _, id := range slices.Sorted(maps.Keys(c.infos)) {
		if !used[id] {
			n.keys = append(n.keys, id)
			n.elems = append(n.elems, &node{kind: kString, text: "${" + id + "}"})
		}
	}
	return compileNode(n, pathFrom("$.output"), ctx)
}

// order sorts the valid steps so each comes after its dependencies, the smallest id first among
// those ready together, and reports every cycle that prevents it.
func (c *compiler) order() []string {
	ids := slices.Sorted(maps.Keys(c.infos))
	waiting := make(map[string]int, len(ids))
	dependents := make(map[string][]string, len(ids))
	ready := &idHeap{}
	for _, id := range ids {
		n := 0
		for dep := range c.deps[id] {
			if _, ok := c.infos[dep]; ok {
				n++
				dependents[dep] = append(dependents[dep], id)
			}
		}
		waiting[id] = n
		if n == 0 {
			heap.Push(ready, id)
		}
	}
	order := make([]string, 0, len(ids))
	for ready.Len() > 0 {
		id := heap.Pop(ready).(string)
		order = append(order, id)
		for _, d := range dependents[id] {
			if waiting[d]--; waiting[d] == 0 {
				heap.Push(ready, d)
			}
		}
	}
	if len(order) < len(ids) {
		c.cycles(waiting)
	}
	return order
}

// cycles reports one cycle through each strongly connected component left with unmet
// dependencies, starting at its smallest id.
func (c *compiler) cycles(waiting map[string]int) {
	var left []string
	for id, n := range waiting {
		if n > 0 {
			left = append(left, id)
		}
	}
	slices.Sort(left)
	for _, comp := range sccs(left, func(id string) []string { return c.sortedDeps(id) }) {
		start := slices.Min(comp)
		in := make(map[string]bool, len(comp))
		for _, id := range comp {
			in[id] = true
		}
		if len(comp) == 1 && !c.deps[start][start] {
			continue
		}
		// Breadth-first from start to find the shortest way back to it.
		prev := map[string]string{}
		queue := []string{start}
		var last string
	search:
		for len(queue) > 0 {
			id := queue[0]
			queue = queue[1:]
			for _, d := range c.sortedDeps(id) {
				if d == start {
					last = id
					break search
				}
				if _, seen := prev[d]; !seen && in[d] {
					prev[d] = id
					queue = append(queue, d)
				}
			}
		}
		cycle := []string{start}
		for id := last; id != start; id = prev[id] {
			cycle = append(cycle, id)
		}
		slices.Reverse(cycle[1:])
		cycle = append(cycle, start)
		text := ""
		for i, id := range cycle {
			if i > 0 {
				text += " -> "
			}
			text += id
		}
		c.add(c.edgePath[[2]string{start, cycle[1]}], "cycle: %s", text)
	}
}

func (c *compiler) sortedDeps(id string) []string {
	var out []string
	for d := range c.deps[id] {
		if _, ok := c.infos[d]; ok {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// sccs returns the strongly connected components of the graph on nodes (Tarjan's algorithm,
// iterative so a long chain cannot exhaust the stack).
func sccs(nodes []string, next func(string) []string) [][]string {
	in := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		in[n] = true
	}
	index := map[string]int{}
	low := map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	var out [][]string
	type frame struct {
		id   string
		succ []string
		i    int
	}
	for _, root := range nodes {
		if _, seen := index[root]; seen {
			continue
		}
		var calls []frame
		visit := func(id string) {
			index[id], low[id] = len(index), len(index)
			stack = append(stack, id)
			onStack[id] = true
			calls = append(calls, frame{id: id, succ: next(id)})
		}
		visit(root)
		for len(calls) > 0 {
			f := &calls[len(calls)-1]
			if f.i < len(f.succ) {
				w := f.succ[f.i]
				f.i++
				if !in[w] {
					continue
				}
				if _, seen := index[w]; !seen {
					visit(w)
				} else if onStack[w] {
					low[f.id] = min(low[f.id], index[w])
				}
				continue
			}
			id := f.id
			calls = calls[:len(calls)-1]
			if len(calls) > 0 {
				p := calls[len(calls)-1].id
				low[p] = min(low[p], low[id])
			}
			if low[id] == index[id] {
				var comp []string
				for {
					top := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[top] = false
					comp = append(comp, top)
					if top == id {
						break
					}
				}
				out = append(out, comp)
			}
		}
	}
	return out
}

type idHeap []string

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(string)) }
func (h *idHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (c *compiler) plan(order []string, output *Template) *Plan {
	p := &Plan{Name: c.w.Name, Output: output, Steps: make([]*Step, len(order)), byID: make(map[string]*Step, len(order))}
	for i, id := range order {
		cs := &c.steps[c.infos[id].at]
		s := cs.spec
		st := &Step{
			ID: s.ID, Module: s.Module, Function: s.Function, Index: i,
			Deps: c.sortedDeps(id), Args: cs.args, Map: cs.mapped,
			RetryGuestErrors: s.RetryGuestErrors, TimeoutMs: s.TimeoutMs,
			Resources: s.Resources, Input: cs.in, Output: cs.out, Pipeline: s.Pipeline != nil,
			path: cs.path,
		}
		if st.Deps == nil {
			st.Deps = []string{}
		}
		if s.Retries != nil {
			r := *s.Retries
			st.Retries = &r
		}
		st.Resources.Custom = maps.Clone(s.Resources.Custom)
		if len(st.Resources.Custom) == 0 {
			st.Resources.Custom = nil
		}
		if st.Input == abi.EncBytes && st.Args.parts == nil {
			st.inputLit, st.litInput = unquote(st.Args.lit), true
		}
		p.Steps[i] = st
		p.byID[id] = st
	}
	p.digest = p.computeDigest()
	return p
}

// checkID returns why id is not a valid step id, or "".
func checkID(id string) string {
	ok := id != "" && len(id) <= MaxIDLen
	for i := 0; ok && i < len(id); i++ {
		ok = isIDByte(id[i], i == 0)
	}
	switch {
	case !ok:
		return fmt.Sprintf("invalid step id %s: want a letter or '_', then letters, digits, '_' or '-', at most %d bytes", quote(id), MaxIDLen)
	case id == "item" || id == "index":
		return fmt.Sprintf("step id %s is reserved: ${%s} means the current element of a map", quote(id), id)
	case id == InputRef:
		return fmt.Sprintf("step id %s is reserved: ${input} means the workflow's input", quote(id))
	}
	return ""
}

// checkName returns why s is not a valid module, function or workflow name, or "". The rule is
// the ABI's: letters, digits and _ - . : @ /, at most MaxNameLen bytes.
func checkName(s string) string {
	if s == "" {
		return "empty name"
	}
	if len(s) > MaxNameLen {
		return fmt.Sprintf("name of %d bytes, at most %d", len(s), MaxNameLen)
	}
	for _, r := range s {
		ok := r == '_' || r == '-' || r == '.' || r == ':' || r == '@' || r == '/' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return fmt.Sprintf("name %s has character %s (allowed: letters, digits, _ - . : @ /)", quote(s), strconv.QuoteRune(r))
		}
	}
	return ""
}
