package dag

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/lumenflow/lumen/sdk/abi"
)

// Workflow is a workflow document as written, decoded by Parse. It encodes back to the same
// format with encoding/json. It is checked by Compile, not here: a Workflow built in code is
// as welcome as a parsed one.
type Workflow struct {
	Version int        `json:"version"`
	Name    string     `json:"name,omitempty"`
	Steps   []StepSpec `json:"steps"`
	// Output is the template of the workflow's result; nil means an object of every step that no
	// other step depends on, keyed by step id.
	Output json.RawMessage `json:"output,omitempty"`
}

// StepSpec is one step as written.
type StepSpec struct {
	ID       string `json:"id"`
	Module   string `json:"module"`   // empty for a pipeline step
	Function string `json:"function"` // empty for a pipeline step
	// Args is the template of the call's input; nil means null (or, for a function whose input
	// is bytes, no bytes).
	Args json.RawMessage `json:"args,omitempty"`
	// Map, when set, makes the step run once per element of an array: a literal array, or a
	// "${ref}" string that names one.
	Map              json.RawMessage `json:"map,omitempty"`
	Retries          *int            `json:"retries,omitempty"` // nil: the engine's default
	RetryGuestErrors bool            `json:"retry_guest_errors,omitempty"`
	TimeoutMs        int64           `json:"timeout_ms,omitempty"` // 0: the engine's default
	Resources        abi.Resources   `json:"resources,omitzero"`
	// Pipeline, when set, makes the step a data pipeline (docs/data.md) rather than a call: an
	// object or array, a template whose references are filled in before it runs. Such a step
	// has no module, function, args or map.
	Pipeline json.RawMessage `json:"pipeline,omitempty"`
}

// Parse decodes a workflow document strictly: unknown fields, duplicate keys, values of the
// wrong type, invalid UTF-8 and trailing data are refused. Every mistake is reported, each as a
// *PathError in an ErrorList; a syntax error stops the reading and is reported alone, with its
// line and column. Parse checks the shape of the document only; Compile checks its meaning.
// A null optional field is the same as a missing one, except args, where null is a value.
func Parse(b []byte) (*Workflow, error) {
	if len(b) > MaxWorkflowBytes {
		return nil, ErrorList{{Path: "$", Msg: fmt.Sprintf("workflow of %d bytes, at most %d", len(b), MaxWorkflowBytes)}}
	}
	root, errs := parseDoc(b, nil)
	if root == nil {
		return nil, errs
	}
	d := &decoder{errs: errs}
	w := d.workflow(root)
	if err := d.errs.sorted(); err != nil {
		return nil, err
	}
	return w, nil
}

type decoder struct{ errs ErrorList }

func (d *decoder) add(path, format string, args ...any) {
	d.errs.add(path, fmt.Sprintf(format, args...))
}

func (d *decoder) want(path, want string, n *node) {
	d.add(path, "want %s, got %s", want, n.kind)
}

func (d *decoder) workflow(n *node) *Workflow {
	if n.kind != kObject {
		d.add("$", "a workflow is a JSON object, got %s", n.kind)
		return nil
	}
	w := &Workflow{}
	var hasVersion, hasSteps bool
	for i, k := range n.keys {
		v, p := n.elems[i], fieldPath("$", k)
		switch k {
		case "version":
			hasVersion = true
			if x, ok := d.integer(p, v); ok {
				if x < math.MinInt32 || x > math.MaxInt32 {
					d.add(p, "%d is out of range", x)
				} else {
					w.Version = int(x)
				}
			}
		case "name":
			if v.kind != kNull {
				w.Name = d.str(p, v)
			}
		case "steps":
			hasSteps = true
			if v.kind != kArray {
				d.want(p, "an array of steps", v)
				continue
			}
			if len(v.elems) > MaxSteps {
				d.add(p, "%d steps, at most %d", len(v.elems), MaxSteps)
				continue
			}
			w.Steps = make([]StepSpec, len(v.elems))
			for j, s := range v.elems {
				d.step(indexPath(p, j), s, &w.Steps[j])
			}
		case "output":
			if v.kind != kNull {
				w.Output = appendNode(nil, v)
			}
		default:
			d.add(p, "unknown field %s (a workflow has version, name, steps and output)", quote(k))
		}
	}
	if !hasVersion {
		d.add("$", `missing field "version" (this engine reads version 1)`)
	}
	if !hasSteps {
		d.add("$", `missing field "steps"`)
	}
	return w
}

func (d *decoder) step(path string, n *node, s *StepSpec) {
	if n.kind != kObject {
		d.want(path, "a step object", n)
		return
	}
	var has [3]bool
	var hasArgs bool
	for i, k := range n.keys {
		v, p := n.elems[i], fieldPath(path, k)
		switch k {
		case "id":
			has[0] = true
			s.ID = d.str(p, v)
		case "module":
			has[1] = true
			s.Module = d.str(p, v)
		case "function":
			has[2] = true
			s.Function = d.str(p, v)
		case "args":
			hasArgs = true
			s.Args = appendNode(nil, v)
		case "pipeline":
			switch v.kind {
			case kNull:
			case kObject, kArray:
				if len(v.elems) == 0 {
					d.add(p, "an empty pipeline: want its steps, from a source to a sink")
					continue
				}
				s.Pipeline = appendNode(nil, v)
			default:
				d.want(p, "a pipeline object or array of steps", v)
			}
		case "map":
			if v.kind != kNull {
				s.Map = appendNode(nil, v)
			}
		case "retries":
			if v.kind == kNull {
				continue
			}
			if x, ok := d.integer(p, v); ok {
				if x < math.MinInt32 || x > math.MaxInt32 {
					d.add(p, "%d is out of range", x)
				} else {
					r := int(x)
					s.Retries = &r
				}
			}
		case "retry_guest_errors":
			switch v.kind {
			case kBool:
				s.RetryGuestErrors = v.text == "true"
			case kNull:
			default:
				d.want(p, "a boolean", v)
			}
		case "timeout_ms":
			if v.kind == kNull {
				continue
			}
			if x, ok := d.integer(p, v); ok {
				s.TimeoutMs = x
			}
		case "resources":
			if v.kind != kNull {
				s.Resources = d.resources(p, v)
			}
		default:
			d.add(p, "unknown field %s (a step has id, module, function, args, map, pipeline, retries, retry_guest_errors, timeout_ms and resources)", quote(k))
		}
	}
	if s.Pipeline != nil {
		// An empty module or function is taken as none, so that a re-encoded StepSpec reads back.
		for f, v := range map[string]string{"module": s.Module, "function": s.Function} {
			if v != "" {
				d.add(fieldPath(path, f), "a pipeline step has no %s", f)
			}
		}
		if hasArgs {
			d.add(fieldPath(path, "args"), "a pipeline step has no args (its pipeline is its template)")
		}
		if s.Map != nil {
			d.add(fieldPath(path, "map"), "a pipeline step has no map")
		}
		if !has[0] {
			d.add(path, "missing field %s", quote("id"))
		}
		return
	}
	for i, f := range [3]string{"id", "module", "function"} {
		if !has[i] {
			d.add(path, "missing field %s", quote(f))
		}
	}
}

func (d *decoder) str(path string, n *node) string {
	if n.kind != kString {
		d.want(path, "a string", n)
		return ""
	}
	return n.text
}

func (d *decoder) integer(path string, n *node) (int64, bool) {
	if n.kind != kNumber {
		d.want(path, "an integer", n)
		return 0, false
	}
	if strings.ContainsAny(n.text, ".eE") {
		d.add(path, "want an integer, got %s", n.text)
		return 0, false
	}
	x, err := strconv.ParseInt(n.text, 10, 64)
	if err != nil {
		d.add(path, "%s is out of range", n.text)
		return 0, false
	}
	return x, true
}

func (d *decoder) number(path string, n *node) float64 {
	if n.kind != kNumber {
		d.want(path, "a number", n)
		return 0
	}
	x, err := strconv.ParseFloat(n.text, 64)
	if err != nil {
		d.add(path, "%s is out of range", n.text)
		return 0
	}
	return x
}

func (d *decoder) resources(path string, n *node) abi.Resources {
	var r abi.Resources
	if n.kind != kObject {
		d.want(path, "a resources object", n)
		return r
	}
	for i, k := range n.keys {
		v, p := n.elems[i], fieldPath(path, k)
		switch k {
		case "cpu":
			r.CPU = d.number(p, v)
		case "gpu":
			r.GPU = d.number(p, v)
		case "memory_bytes":
			r.MemoryBytes, _ = d.integer(p, v)
		case "custom":
			if v.kind == kNull {
				continue
			}
			if v.kind != kObject {
				d.want(p, "an object of resource amounts", v)
				continue
			}
			for j, name := range v.keys {
				if r.Custom == nil {
					r.Custom = make(map[string]float64, len(v.keys))
				}
				r.Custom[name] = d.number(fieldPath(p, name), v.elems[j])
			}
		default:
			d.add(p, "unknown field %s (resources are cpu, memory_bytes, gpu and custom)", quote(k))
		}
	}
	return r
}
