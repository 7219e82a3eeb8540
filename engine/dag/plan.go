package dag

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lumenflow/lumen/sdk/abi"
)

// Step returns the step with the given id, or nil.
func (p *Plan) Step(id string) *Step { return p.byID[id] }

// Ready returns the steps that are not done and whose dependencies all are, in plan order: what
// an executor may start now. done is keyed by step id; the caller owns it.
func (p *Plan) Ready(done map[string]bool) []*Step {
	var out []*Step
	for _, s := range p.Steps {
		if done[s.ID] {
			continue
		}
		ok := true
		for _, d := range s.Deps {
			if !done[d] {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// Digest is a stable hash of the plan as compiled: its name, and every step's id, function,
// encodings, settings and templates as written. Any change to the workflow that can change
// what runs changes the digest, so checkpoints keyed by it are not reused by a changed
// workflow. Module references are hashed as written: an engine that resolves "name" to the
// newest version should add the resolved module digests to its checkpoint keys.
func (p *Plan) Digest() string { return p.digest }

func (p *Plan) computeDigest() string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	put := func(s string) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	put("lumen/dag plan v1")
	put(p.Name)
	put(strconv.Itoa(len(p.Steps)))
	for _, s := range p.Steps {
		put(s.ID)
		put(s.Module)
		put(s.Function)
		if s.Pipeline {
			put("pipeline")
		}
		if s.Map != nil {
			put(s.Map.String())
		} else {
			put("-")
		}
		put(s.Args.String())
		if s.Retries != nil {
			put(strconv.Itoa(*s.Retries))
		} else {
			put("-")
		}
		put(strconv.FormatBool(s.RetryGuestErrors))
		put(strconv.FormatInt(s.TimeoutMs, 10))
		put(resourcesText(s.Resources))
		put(string(s.Input))
		put(string(s.Output))
	}
	put(p.Output.String())
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// resourcesText writes resources canonically, custom names sorted.
func resourcesText(r abi.Resources) string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	var b strings.Builder
	b.WriteString("{")
	sep := ""
	if r.CPU != 0 {
		b.WriteString(`"cpu":` + f(r.CPU))
		sep = ","
	}
	if r.MemoryBytes != 0 {
		b.WriteString(sep + `"memory_bytes":` + strconv.FormatInt(r.MemoryBytes, 10))
		sep = ","
	}
	if r.GPU != 0 {
		b.WriteString(sep + `"gpu":` + f(r.GPU))
		sep = ","
	}
	if len(r.Custom) > 0 {
		b.WriteString(sep + `"custom":{`)
		for i, k := range slices.Sorted(maps.Keys(r.Custom)) {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(quote(k) + ":" + f(r.Custom[k]))
		}
		b.WriteString("}")
	}
	b.WriteString("}")
	return b.String()
}

// RenderInput returns the bytes to call the step's function with. For a json input they are
// Args rendered. For a bytes input, Args must render to a JSON string, whose UTF-8 bytes are
// passed, or be exactly "${step}" of a step whose output is bytes, whose bytes are passed as
// they are. The result may share memory with outputs or with the plan; the caller must not
// modify it. RenderInput is safe for concurrent use.
func (s *Step) RenderInput(outputs map[string][]byte, item json.RawMessage, index int) ([]byte, error) {
	if s.Input != abi.EncBytes {
		return s.Args.Render(outputs, item, index)
	}
	if s.litInput {
		return s.inputLit, nil
	}
	if r := s.Args.whole; r != nil && r.bytes {
		out, ok := outputs[r.step]
		if !ok {
			return nil, s.Args.fail(r, fmt.Sprintf("step %s has no output yet", quote(r.step)))
		}
		return out, nil
	}
	js, err := s.Args.Render(outputs, item, index)
	if err != nil {
		return nil, err
	}
	if js[0] != '"' {
		return nil, s.Args.fail(s.Args.whole, fmt.Sprintf("function %s takes bytes: args must be a string, got %s", quote(s.Function), rawKind(js)))
	}
	return unquote(js), nil
}

// Items renders the array a map step maps over and returns its elements, each valid JSON, in
// order; at most MaxItems. It returns nil for a step without map. The elements may share memory
// with the plan; the caller must not modify them.
func (s *Step) Items(outputs map[string][]byte) ([]json.RawMessage, error) {
	if s.Map == nil {
		return nil, nil
	}
	b, err := s.Map.Render(outputs, nil, 0)
	if err != nil {
		return nil, err
	}
	if k := rawKind(b); k != kArray {
		return nil, s.Map.fail(s.Map.whole, fmt.Sprintf("map needs an array, got %s", k))
	}
	items, err := splitArray(b, MaxItems)
	if err != nil {
		return nil, s.Map.fail(s.Map.whole, "map: "+err.Error())
	}
	return items, nil
}

// Join builds the output of a map step from the outputs of its calls, in element order: a JSON
// array of them. A json output must be valid JSON; a bytes output becomes a JSON string and
// must be valid UTF-8.
func (s *Step) Join(outputs [][]byte) ([]byte, error) {
	n := 2 + len(outputs)
	for _, o := range outputs {
		n += len(o) + 2
	}
	out := make([]byte, 0, n)
	out = append(out, '[')
	for i, o := range outputs {
		if i > 0 {
			out = append(out, ',')
		}
		if s.Output == abi.EncBytes {
			if !utf8.Valid(o) {
				return nil, &RenderError{Step: s.ID, Path: s.path, Reason: fmt.Sprintf("the output of element %d is bytes that are not valid UTF-8, so it cannot be placed in the step's JSON array", i)}
			}
			out = appendQuoted(out, o)
			continue
		}
		v, err := validDoc(o)
		if err != nil {
			return nil, &RenderError{Step: s.ID, Path: s.path, Reason: fmt.Sprintf("the output of element %d is not valid JSON: %v", i, err)}
		}
		out = append(out, v...)
	}
	return append(out, ']'), nil
}

// String describes the plan, one step after another: what the golden tests compare.
func (p *Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "plan %s\ndigest %s\n", quote(p.Name), p.digest)
	for _, s := range p.Steps {
		if s.Pipeline {
			fmt.Fprintf(&b, "step %d %s: pipeline (%s -> %s", s.Index, s.ID, s.Input, s.Output)
		} else {
			fmt.Fprintf(&b, "step %d %s: %s %s (%s -> %s", s.Index, s.ID, s.Module, s.Function, s.Input, s.Output)
		}
		if s.Map != nil {
			b.WriteString(", mapped -> json")
		}
		b.WriteString(")\n")
		if len(s.Deps) > 0 {
			fmt.Fprintf(&b, "  deps: %s\n", strings.Join(s.Deps, ", "))
		}
		if s.Map != nil {
			fmt.Fprintf(&b, "  map: %s\n", s.Map)
		}
		fmt.Fprintf(&b, "  args: %s\n", s.Args)
		var opts []string
		if s.Retries != nil {
			opts = append(opts, fmt.Sprintf("retries=%d", *s.Retries))
		}
		if s.RetryGuestErrors {
			opts = append(opts, "retry_guest_errors")
		}
		if s.TimeoutMs != 0 {
			opts = append(opts, fmt.Sprintf("timeout_ms=%d", s.TimeoutMs))
		}
		if r := resourcesText(s.Resources); r != "{}" {
			opts = append(opts, "resources="+r)
		}
		if len(opts) > 0 {
			fmt.Fprintf(&b, "  %s\n", strings.Join(opts, " "))
		}
	}
	fmt.Fprintf(&b, "output: %s\n", p.Output)
	return b.String()
}
