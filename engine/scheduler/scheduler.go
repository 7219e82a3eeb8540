// Package scheduler decides where work runs and whether it may start: resource arithmetic,
// admission on one node, and placement across nodes. It is pure: no I/O, no clock, no goroutines;
// callers hold their own locks.
package scheduler

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/lumenflow/lumen/sdk/abi"
)

// Resource names besides custom ones.
const (
	CPU    = "cpu"
	Memory = "memory_bytes"
	GPU    = "gpu"
)

// Resources maps a resource name to an amount. Missing names are zero.
type Resources map[string]float64

// FromABI converts a request's or manifest's resources.
func FromABI(r abi.Resources) Resources {
	out := Resources{}
	if r.CPU > 0 {
		out[CPU] = r.CPU
	}
	if r.MemoryBytes > 0 {
		out[Memory] = float64(r.MemoryBytes)
	}
	if r.GPU > 0 {
		out[GPU] = r.GPU
	}
	for k, v := range r.Custom {
		if v > 0 {
			out[k] = v
		}
	}
	return out
}

// IsZero reports whether r asks for nothing.
func (r Resources) IsZero() bool {
	for _, v := range r {
		if v > 0 {
			return false
		}
	}
	return true
}

// Clone returns a copy of r.
func (r Resources) Clone() Resources {
	out := make(Resources, len(r))
	for k, v := range r {
		out[k] = v
	}
	return out
}

// eps absorbs float rounding in fractional amounts (0.1 + 0.2 fits in 0.3).
const eps = 1e-9

// Fits reports whether d fits in r.
func (r Resources) Fits(d Resources) bool {
	for k, v := range d {
		if v > r[k]+eps {
			return false
		}
	}
	return true
}

// String renders r sorted by name: "cpu=1 memory_bytes=1048576".
func (r Resources) String() string {
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%s", k, fmtAmount(r[k]))
	}
	return strings.Join(parts, " ")
}

func fmtAmount(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%g", v)
}

// Ledger tracks what one node has and what is in use. It is not safe for concurrent use.
type Ledger struct {
	total Resources
	used  Resources
}

// NewLedger returns a ledger of total, nothing in use.
func NewLedger(total Resources) *Ledger { return &Ledger{total: total.Clone(), used: Resources{}} }

// Total returns a copy of the node's resources.
func (l *Ledger) Total() Resources { return l.total.Clone() }

// Used returns a copy of what is in use.
func (l *Ledger) Used() Resources { return l.used.Clone() }

// Available returns what is free now.
func (l *Ledger) Available() Resources {
	out := l.total.Clone()
	for k, v := range l.used {
		out[k] -= v
	}
	return out
}

// Check says whether d can ever run on this node: an error names each resource it asks more of
// than the node has in all, so such work is refused at once instead of queueing for ever.
func (l *Ledger) Check(d Resources) error {
	var short []string
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if d[k] > l.total[k]+eps {
			short = append(short, fmt.Sprintf("%s %s (the node has %s)", k, fmtAmount(d[k]), fmtAmount(l.total[k])))
		}
	}
	if len(short) > 0 {
		return fmt.Errorf("can never fit on this node: it asks for %s", strings.Join(short, ", "))
	}
	return nil
}

// TryAcquire takes d if it fits in what is free now. It allocates nothing.
func (l *Ledger) TryAcquire(d Resources) bool {
	for k, v := range d {
		if l.used[k]+v > l.total[k]+eps {
			return false
		}
	}
	for k, v := range d {
		l.used[k] += v
	}
	return true
}

// Release gives d back. Releasing more than was taken is a programmer error.
func (l *Ledger) Release(d Resources) {
	for k, v := range d {
		l.used[k] -= v
		if l.used[k] < -eps {
			panic(fmt.Sprintf("scheduler: released %s %v more than was acquired", k, -l.used[k]))
		}
		if l.used[k] < eps {
			delete(l.used, k)
		}
	}
}

// Node is a node as placement sees it.
type Node struct {
	ID        string
	Total     Resources
	Available Resources
}

// Place picks the node for d: among the nodes where d fits now, the one whose busiest resource
// would be least loaded after placing it (spreading load), ties broken by id. If d fits nowhere
// now but some node could hold it, it returns "" and no error: wait and try again. If no node
// could ever hold it, the error says so.
func Place(nodes []Node, d Resources) (string, error) {
	best, bestLoad := "", math.Inf(1)
	ever := false
	for _, n := range nodes {
		if !n.Total.Fits(d) {
			continue
		}
		ever = true
		if !n.Available.Fits(d) {
			continue
		}
		load := 0.0
		for k, tot := range n.Total {
			if tot <= 0 {
				continue
			}
			used := tot - n.Available[k] + d[k]
			load = math.Max(load, used/tot)
		}
		if load < bestLoad-eps || (math.Abs(load-bestLoad) <= eps && n.ID < best) {
			best, bestLoad = n.ID, load
		}
	}
	if !ever {
		return "", fmt.Errorf("no node can ever hold %s", d)
	}
	return best, nil
}
