package tasks

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// DefaultMaxRetries is how often a task is retried after a system failure when its request does
// not say.
const DefaultMaxRetries = 3

// Origin says how a task came in. Nothing in the pipeline branches on it: it is counted, so
// that a node can say where its work comes from.
type Origin uint8

// The ways a task comes in.
const (
	FromAPI      Origin = iota // the REST API, a job's call, a Go program
	FromGuest                  // a guest's task_submit
	FromPeer                   // another node placed it here
	FromGroup                  // submitted into a placement group's bundle
	FromStep                   // a workflow step, or one element of a map step
	FromCompiled               // a step of a compiled workflow
	FromCall                   // a synchronous call of a module's function
	FromJob                    // a submitted job's call (engine/jobs)
	numOrigins
)

var originNames = [numOrigins]string{"api", "guest", "peer", "group", "step", "compiled", "call", "job"}

func (o Origin) String() string {
	if o < numOrigins {
		return originNames[o]
	}
	return "unknown"
}

// Placement says where a task may run.
type Placement uint8

const (
	// Here runs the task on this node, waiting for room here: it was placed here already, it
	// draws on a bundle here, or it reads the node's files.
	Here Placement = iota
	// Anywhere runs the task here when it fits now, else on a live node with room (or, when it
	// can never fit here, on one that can hold it, to wait there).
	Anywhere
)

// Spec is one task, however it came in: everything the node needs to admit, place and run it.
type Spec struct {
	Origin    Origin
	Placement Placement
	Job       string
	Module    string // a reference: name, name@version or digest
	Function  string
	Args      json.RawMessage
	ArgsBytes []byte // the input when the function takes bytes; wins over Args
	// Refs are objects of Job the task reads; Submit holds them until the task ends.
	Refs       []int64
	Resources  abi.Resources
	TimeoutMs  int64 // overrides Limits.Timeout when positive
	MaxRetries *int  // nil: DefaultMaxRetries
	RetryGuest bool
	Grants     host.Grants
	Limits     host.Limits
	// Pool is the placement group bundle here the task draws on (nil: the node's resources).
	Pool *Pool
	// Parent is the scope of the call that submitted the task (a guest's task_submit): the task
	// ends when that call fails, is cancelled or times out, and inherits its deadline, unless
	// Detached.
	Parent   *Scope
	Detached bool
	// Node, with Group and Bundle, runs the task in bundle Bundle of placement group Group, which
	// lives on Node (another node): it runs there or fails, and is not rebuilt elsewhere.
	Node, Group string
	Bundle      int
}

func (s *Spec) input() []byte {
	if s.ArgsBytes != nil {
		return s.ArgsBytes
	}
	return []byte(s.Args)
}

func (s *Spec) retries() int { return RetriesOr(s.MaxRetries) }

func (s *Spec) limits() host.Limits { return WithTimeout(s.Limits, s.TimeoutMs) }

// Demand is what a call needs: its request's resources, else its module's hints, else one cpu.
func Demand(req, hints abi.Resources) scheduler.Resources {
	if d := scheduler.FromABI(req); !d.IsZero() {
		return d
	}
	if d := scheduler.FromABI(hints); !d.IsZero() {
		return d
	}
	return scheduler.Resources{scheduler.CPU: 1}
}

// WithTimeout returns lim with its timeout set to ms milliseconds when ms is positive.
func WithTimeout(lim host.Limits, ms int64) host.Limits {
	if ms > 0 {
		lim.Timeout = time.Duration(ms) * time.Millisecond
	}
	return lim
}

// RetriesOr returns *n, or DefaultMaxRetries when n is nil.
func RetriesOr(n *int) int {
	if n == nil {
		return DefaultMaxRetries
	}
	return *n
}

// retryable says whether a failed attempt may run again: system failures always, guest errors
// when the task asks; a trap or a limit never, as the same code on the same input would fail
// again.
func retryable(err error, guest bool) bool {
	var ae *abi.Error
	if !errors.As(err, &ae) {
		return true
	}
	return ae.Kind == abi.KindSystem || (guest && ae.Kind == abi.KindGuest)
}

// AsABIError makes err the *abi.Error a waiting guest reads as the failed task's error.
func AsABIError(err error) *abi.Error { return wire.ABIError(err, "task") }
