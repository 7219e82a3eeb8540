package abi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Size caps on the control payloads a guest hands the host. Data travels as objects, not here.
const (
	MaxManifestBytes = 1 << 20 // lumen_manifest output
	MaxRequestBytes  = 1 << 20 // task_submit, wait, actor_create, actor_call payloads
	MaxErrorBytes    = 64 << 10
	MaxFunctions     = 4096
	MaxNameLen       = 256
	MaxWaitHandles   = 100_000
)

// FuncKind says how a manifest function is called.
type FuncKind string

// Function kinds.
const (
	KindTask   FuncKind = "task"   // a stateless function, run on any pooled instance
	KindActor  FuncKind = "actor"  // an actor's constructor: its instance then holds the actor's state
	KindMethod FuncKind = "method" // a method of the actor named by Function.Actor
)

// Encoding is how a function's input or output bytes are read.
type Encoding string

// Encodings.
const (
	EncJSON  Encoding = "json"
	EncBytes Encoding = "bytes"
)

// Methods an actor type may have so that the engine can save its state after each call and load
// it into a restarted instance: Type.__save (no input; output: the state) and Type.__load (input:
// the state).
const (
	SaveMethod = "__save"
	LoadMethod = "__load"
)

// Manifest is what a module declares about itself: returned by lumen_manifest as JSON, and
// extendable at upload. The index of a function in Functions is the fn argument of lumen_call.
type Manifest struct {
	ABI          int          `json:"abi"`
	Functions    []Function   `json:"functions"`
	Capabilities []Capability `json:"capabilities,omitempty"`
	Resources    Resources    `json:"resources,omitzero"`
}

// Function is one callable entry of a manifest.
type Function struct {
	Name   string   `json:"name"`            // tasks: "wordcount"; actors: "Counter"; methods: "Counter.incr"
	Kind   FuncKind `json:"kind"`            // task, actor or method
	Actor  string   `json:"actor,omitempty"` // methods: the actor type's name
	Input  Encoding `json:"input,omitempty"` // default json
	Output Encoding `json:"output,omitempty"`
}

// Resources are what a call needs from its node: hints in a manifest, demands in a request.
type Resources struct {
	CPU         float64            `json:"cpu,omitempty"`
	MemoryBytes int64              `json:"memory_bytes,omitempty"`
	GPU         float64            `json:"gpu,omitempty"`
	Custom      map[string]float64 `json:"custom,omitempty"`
}

// Validate checks the resource amounts are finite and non-negative.
func (r Resources) Validate() error {
	check := func(name string, v float64) error {
		if v < 0 || v != v || v > 1e12 {
			return fmt.Errorf("resource %q: %v is not a non-negative amount", name, v)
		}
		return nil
	}
	if err := check("cpu", r.CPU); err != nil {
		return err
	}
	if err := check("gpu", r.GPU); err != nil {
		return err
	}
	if r.MemoryBytes < 0 {
		return fmt.Errorf("resource \"memory_bytes\": %d is negative", r.MemoryBytes)
	}
	for k, v := range r.Custom {
		if err := validName(k); err != nil {
			return fmt.Errorf("custom resource: %w", err)
		}
		if err := check(k, v); err != nil {
			return err
		}
	}
	return nil
}

// Index returns the position of the function named name, or -1.
func (m *Manifest) Index(name string) int {
	for i := range m.Functions {
		if m.Functions[i].Name == name {
			return i
		}
	}
	return -1
}

// Requests reports whether the manifest requests capability c. CapBase is always requested.
func (m *Manifest) Requests(c Capability) bool {
	if c == CapBase {
		return true
	}
	for _, x := range m.Capabilities {
		if x == c {
			return true
		}
	}
	return false
}

// Validate checks the manifest is well formed: a known ABI version, unique valid names, known kinds
// and encodings, methods whose actor exists, known capabilities. The error names the field.
func (m *Manifest) Validate() error {
	if m.ABI != Version {
		return fmt.Errorf("manifest: abi is %d, this host speaks ABI v%d", m.ABI, Version)
	}
	if len(m.Functions) > MaxFunctions {
		return fmt.Errorf("manifest: %d functions, at most %d", len(m.Functions), MaxFunctions)
	}
	seen := make(map[string]bool, len(m.Functions))
	actors := map[string]bool{}
	for _, f := range m.Functions {
		if f.Kind == KindActor {
			actors[f.Name] = true
		}
	}
	for i, f := range m.Functions {
		at := fmt.Sprintf("manifest: functions[%d]", i)
		if err := validName(f.Name); err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
		if seen[f.Name] {
			return fmt.Errorf("%s: duplicate function name %q", at, f.Name)
		}
		seen[f.Name] = true
		switch f.Kind {
		case KindTask, KindActor:
			if f.Actor != "" {
				return fmt.Errorf("%s (%s): actor is set on a %s", at, f.Name, f.Kind)
			}
			if strings.Contains(f.Name, ".") {
				return fmt.Errorf("%s (%s): a %s name may not contain '.'", at, f.Name, f.Kind)
			}
		case KindMethod:
			if !actors[f.Actor] {
				return fmt.Errorf("%s (%s): method of unknown actor %q", at, f.Name, f.Actor)
			}
			if !strings.HasPrefix(f.Name, f.Actor+".") || len(f.Name) == len(f.Actor)+1 {
				return fmt.Errorf("%s (%s): a method's name must be \"%s.<method>\"", at, f.Name, f.Actor)
			}
		default:
			return fmt.Errorf("%s (%s): unknown kind %q (want task, actor or method)", at, f.Name, f.Kind)
		}
		for _, e := range []Encoding{f.Input, f.Output} {
			if e != "" && e != EncJSON && e != EncBytes {
				return fmt.Errorf("%s (%s): unknown encoding %q (want json or bytes)", at, f.Name, e)
			}
		}
	}
	for i, c := range m.Capabilities {
		if !c.Known() {
			return fmt.Errorf("manifest: capabilities[%d]: unknown capability %q", i, c)
		}
	}
	if err := m.Resources.Validate(); err != nil {
		return fmt.Errorf("manifest: resources: %w", err)
	}
	return nil
}

func validName(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("name of %d bytes, at most %d", len(s), MaxNameLen)
	}
	for _, r := range s {
		ok := r == '_' || r == '-' || r == '.' || r == ':' || r == '@' || r == '/' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return fmt.Errorf("name %q has character %q (allowed: letters, digits, _ - . : @ /)", s, r)
		}
	}
	return nil
}

// TaskRequest is the task_submit payload.
type TaskRequest struct {
	Module           string          `json:"module,omitempty"` // digest or name@version; empty: the caller's own module
	Function         string          `json:"function"`
	Args             json.RawMessage `json:"args,omitempty"`       // the input bytes of a json function
	ArgsBytes        []byte          `json:"args_bytes,omitempty"` // the input of a bytes function (base64 in JSON)
	Refs             []int64         `json:"refs,omitempty"`       // handles the task may read; passed by reference, not copied
	Resources        Resources       `json:"resources,omitzero"`
	MaxRetries       *int            `json:"max_retries,omitempty"` // system failures; default 3
	RetryGuestErrors bool            `json:"retry_guest_errors,omitempty"`
	TimeoutMs        int64           `json:"timeout_ms,omitempty"`
	// Detached lets the task outlive its caller: it does not end when the call that submitted it
	// fails, is cancelled or times out, and does not inherit that call's deadline. It still ends
	// with its job.
	Detached bool `json:"detached,omitempty"`
}

// WaitRequest is the wait payload: block until NumReturns of Handles are ready or TimeoutMs
// passes (a negative timeout waits for ever).
type WaitRequest struct {
	Handles    []int64 `json:"handles"`
	NumReturns int     `json:"num_returns"`
	TimeoutMs  int64   `json:"timeout_ms"`
}

// WaitResult is the pending result of wait, as JSON.
type WaitResult struct {
	Ready    []int64 `json:"ready"`
	NotReady []int64 `json:"not_ready"`
}

// ActorCreateRequest is the actor_create payload.
type ActorCreateRequest struct {
	Module         string          `json:"module,omitempty"`
	Actor          string          `json:"actor"` // the actor type: a function of kind actor
	Args           json.RawMessage `json:"args,omitempty"`
	Name           string          `json:"name,omitempty"` // named actors are found by name within Namespace
	Namespace      string          `json:"namespace,omitempty"`
	Detached       bool            `json:"detached,omitempty"`
	MaxRestarts    int             `json:"max_restarts,omitempty"`
	MaxConcurrency int             `json:"max_concurrency,omitempty"`
	Resources      Resources       `json:"resources,omitzero"`
	// Durable asks that the actor survive the loss of the node it runs on: its type must have
	// __save and __load; the state it saves is kept in the cluster's replicated state, a call is
	// acknowledged only once the state saved after it is stored there, and an actor created
	// again elsewhere loads the last state stored. A durable actor restarts without limit
	// unless MaxRestarts bounds it.
	Durable bool `json:"durable,omitempty"`
	// CheckpointEvery, when above 1, stores the state after every CheckpointEvery-th call
	// instead of after each (it implies Durable): calls are then acknowledged before their state
	// is stored, and the loss of the actor's node loses up to CheckpointEvery-1 acknowledged
	// calls. 0 or 1: after each call.
	CheckpointEvery int `json:"checkpoint_every,omitempty"`
}

// IsDurable says whether the request asks for a durable actor (Durable or CheckpointEvery).
func (r *ActorCreateRequest) IsDurable() bool { return r.Durable || r.CheckpointEvery > 0 }

// ActorCallRequest is the actor_call payload.
type ActorCallRequest struct {
	Actor     int64           `json:"actor"`
	Method    string          `json:"method"` // without the actor prefix: "incr"
	Args      json.RawMessage `json:"args,omitempty"`
	ArgsBytes []byte          `json:"args_bytes,omitempty"`
	Refs      []int64         `json:"refs,omitempty"`
}

// ErrorKind classifies why a call did not produce output. It is the "kind" of the error JSON
// that crosses the ABI and, later, HTTP.
type ErrorKind string

// Error kinds. KindGuest is the guest's own error (it called the error host function); the others
// are decided by the host and a guest cannot forge them.
const (
	KindGuest     ErrorKind = "guest_error"    // the guest reported an error
	KindTrap      ErrorKind = "trap"           // the guest trapped: unreachable, out-of-bounds access, stack overflow
	KindLimit     ErrorKind = "limit_exceeded" // a sandbox limit stopped the call; Error.Limit says which
	KindDenied    ErrorKind = "denied"         // the call needed a capability its job did not grant
	KindBadInput  ErrorKind = "bad_input"      // the request was malformed
	KindNotFound  ErrorKind = "not_found"      // unknown module or function
	KindCancelled ErrorKind = "cancelled"
	KindSystem    ErrorKind = "system" // a host or node failure; retried by the engine
)

// Limit names, for Error.Limit when Kind is KindLimit.
const (
	LimitDeadline = "deadline" // the wall-clock deadline passed
	LimitMemory   = "memory"   // the guest asked for more memory pages than allowed
	LimitOutput   = "output"   // stdout, stderr and log bytes, or the output size
)

// Quota names, for Error.Limit when Kind is KindLimit and the work was refused at admission
// rather than stopped while it ran: nothing of it ran, and the same request may succeed once the
// job (or the node) has room again. The SDKs retry these with backoff; REST answers them 429
// with Retry-After.
const (
	QuotaJobTasks      = "job_tasks"        // the job's tasks in flight and queued on the node
	QuotaJobWaiting    = "job_waiting"      // the job's calls waiting on other work, each holding its instance
	QuotaJobSubmitRate = "job_submit_rate"  // the job's task submissions per second
	QuotaJobObjects    = "job_object_bytes" // the job's object bytes, in memory and spilled
	QuotaJobActors     = "job_actors"       // the job's live actors on the node
	QuotaNodeQueue     = "node_queue"       // the node's queue of tasks waiting for room is full
)

// IsQuota says whether limit names a quota (an admission refusal) rather than a sandbox limit.
func IsQuota(limit string) bool {
	switch limit {
	case QuotaJobTasks, QuotaJobWaiting, QuotaJobSubmitRate, QuotaJobObjects, QuotaJobActors, QuotaNodeQueue:
		return true
	}
	return false
}

// Error is how a failed call is described, to the guest (after ErrFailed) and to clients.
type Error struct {
	Kind    ErrorKind `json:"kind"`
	Message string    `json:"message"`
	Limit   string    `json:"limit,omitempty"`
	Code    string    `json:"code,omitempty"` // a guest's own code, for KindGuest
}

func (e *Error) Error() string {
	if e.Limit != "" {
		return fmt.Sprintf("%s (%s): %s", e.Kind, e.Limit, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Message)
}

// GuestError is what a guest passes to the error host function, as JSON. Kind is ignored by the
// host (it is always KindGuest); Code and Message are kept.
type GuestError struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
}

// DecodeGuestError reads the bytes a guest passed to the error host function. JSON of the
// GuestError shape is read as such; anything else is taken as a message of plain text, with
// invalid UTF-8 replaced. It never fails: a guest's error is always reported.
func DecodeGuestError(b []byte) *Error {
	if len(b) > MaxErrorBytes {
		b = b[:MaxErrorBytes]
	}
	e := &Error{Kind: KindGuest}
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var g GuestError
		if json.Unmarshal(trimmed, &g) == nil && g.Message != "" {
			e.Message, e.Code = g.Message, g.Code
			return e
		}
	}
	e.Message = strings.ToValidUTF8(string(b), "\uFFFD")
	if e.Message == "" {
		e.Message = "guest reported an error without a message"
	}
	return e
}

// decodeStrict decodes a JSON payload of at most max bytes into v, refusing unknown fields and
// trailing data.
func decodeStrict(what string, b []byte, max int, v any) error {
	if len(b) > max {
		return fmt.Errorf("%s: %d bytes, at most %d", what, len(b), max)
	}
	if !utf8.Valid(b) {
		return fmt.Errorf("%s: not valid UTF-8", what)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if d.More() {
		return fmt.Errorf("%s: trailing data after the JSON value", what)
	}
	return nil
}

// DecodeManifest decodes and validates a manifest.
func DecodeManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := decodeStrict("manifest", b, MaxManifestBytes, &m); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// DecodeTaskRequest decodes and validates a task_submit payload.
func DecodeTaskRequest(b []byte) (*TaskRequest, error) {
	var r TaskRequest
	if err := decodeStrict("task request", b, MaxRequestBytes, &r); err != nil {
		return nil, err
	}
	if err := validName(r.Function); err != nil {
		return nil, fmt.Errorf("task request: function: %w", err)
	}
	if r.Module != "" {
		if err := validName(r.Module); err != nil {
			return nil, fmt.Errorf("task request: module: %w", err)
		}
	}
	if len(r.Args) > 0 && len(r.ArgsBytes) > 0 {
		return nil, errors.New("task request: both args and args_bytes are set")
	}
	if r.MaxRetries != nil && (*r.MaxRetries < 0 || *r.MaxRetries > 100) {
		return nil, fmt.Errorf("task request: max_retries %d outside 0..100", *r.MaxRetries)
	}
	if r.TimeoutMs < 0 {
		return nil, fmt.Errorf("task request: timeout_ms %d is negative", r.TimeoutMs)
	}
	if err := validHandles("task request: refs", r.Refs); err != nil {
		return nil, err
	}
	if err := r.Resources.Validate(); err != nil {
		return nil, fmt.Errorf("task request: %w", err)
	}
	return &r, nil
}

// DecodeWaitRequest decodes and validates a wait payload.
func DecodeWaitRequest(b []byte) (*WaitRequest, error) {
	var r WaitRequest
	if err := decodeStrict("wait request", b, MaxRequestBytes, &r); err != nil {
		return nil, err
	}
	if len(r.Handles) > MaxWaitHandles {
		return nil, fmt.Errorf("wait request: %d handles, at most %d", len(r.Handles), MaxWaitHandles)
	}
	if err := validHandles("wait request: handles", r.Handles); err != nil {
		return nil, err
	}
	if r.NumReturns < 1 || r.NumReturns > len(r.Handles) {
		return nil, fmt.Errorf("wait request: num_returns %d outside 1..%d", r.NumReturns, len(r.Handles))
	}
	return &r, nil
}

// DecodeActorCreateRequest decodes and validates an actor_create payload.
func DecodeActorCreateRequest(b []byte) (*ActorCreateRequest, error) {
	var r ActorCreateRequest
	if err := decodeStrict("actor create request", b, MaxRequestBytes, &r); err != nil {
		return nil, err
	}
	if err := validName(r.Actor); err != nil {
		return nil, fmt.Errorf("actor create request: actor: %w", err)
	}
	for _, f := range []struct{ n, v string }{{"module", r.Module}, {"name", r.Name}, {"namespace", r.Namespace}} {
		if f.v != "" {
			if err := validName(f.v); err != nil {
				return nil, fmt.Errorf("actor create request: %s: %w", f.n, err)
			}
		}
	}
	if r.MaxRestarts < -1 || r.MaxRestarts > 1000 {
		return nil, fmt.Errorf("actor create request: max_restarts %d outside -1..1000", r.MaxRestarts)
	}
	if r.MaxConcurrency < 0 || r.MaxConcurrency > 1000 {
		return nil, fmt.Errorf("actor create request: max_concurrency %d outside 0..1000", r.MaxConcurrency)
	}
	if r.CheckpointEvery < 0 || r.CheckpointEvery > 1_000_000 {
		return nil, fmt.Errorf("actor create request: checkpoint_every %d outside 0..1000000", r.CheckpointEvery)
	}
	if err := r.Resources.Validate(); err != nil {
		return nil, fmt.Errorf("actor create request: %w", err)
	}
	return &r, nil
}

// DecodeActorCallRequest decodes and validates an actor_call payload.
func DecodeActorCallRequest(b []byte) (*ActorCallRequest, error) {
	var r ActorCallRequest
	if err := decodeStrict("actor call request", b, MaxRequestBytes, &r); err != nil {
		return nil, err
	}
	if r.Actor <= 0 {
		return nil, fmt.Errorf("actor call request: actor handle %d is not positive", r.Actor)
	}
	if err := validName(r.Method); err != nil {
		return nil, fmt.Errorf("actor call request: method: %w", err)
	}
	if len(r.Args) > 0 && len(r.ArgsBytes) > 0 {
		return nil, errors.New("actor call request: both args and args_bytes are set")
	}
	if err := validHandles("actor call request: refs", r.Refs); err != nil {
		return nil, err
	}
	return &r, nil
}

func validHandles(what string, hs []int64) error {
	for i, h := range hs {
		if h <= 0 {
			return fmt.Errorf("%s[%d]: handle %d is not positive", what, i, h)
		}
	}
	return nil
}
