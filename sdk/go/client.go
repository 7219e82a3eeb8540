package lumen

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/lumenflow/lumen/sdk/abi"
)

// Log writes a line to the call's log at info level.
func Log(msg string) { logAt(abi.LogInfo, msg) }

// Logf formats and writes a line to the call's log at info level.
func Logf(format string, args ...any) { logAt(abi.LogInfo, fmt.Sprintf(format, args...)) }

// Debugf, Warnf and Errorf write a line at their level.
func Debugf(format string, args ...any) { logAt(abi.LogDebug, fmt.Sprintf(format, args...)) }
func Warnf(format string, args ...any)  { logAt(abi.LogWarn, fmt.Sprintf(format, args...)) }
func Errorf(format string, args ...any) { logAt(abi.LogError, fmt.Sprintf(format, args...)) }

func logAt(level int32, msg string) { hostLog(level, []byte(msg)) }

// Ref refers to an object: a value put with Put or the future result of a task or actor call. It
// crosses into task arguments by reference, as {"$ref": handle}, never by copy.
type Ref struct{ h int64 }

// Handle returns the ref's handle, as the ABI numbers it.
func (r Ref) Handle() int64 { return r.h }

// refCollector gathers the refs marshalled into a request's arguments.
var refCollector *[]int64

// MarshalJSON writes {"$ref": handle}.
func (r Ref) MarshalJSON() ([]byte, error) {
	if refCollector != nil {
		*refCollector = append(*refCollector, r.h)
	}
	return fmt.Appendf(nil, `{"$ref":%d}`, r.h), nil
}

// UnmarshalJSON reads {"$ref": handle}.
func (r *Ref) UnmarshalJSON(b []byte) error {
	var v struct {
		H *int64 `json:"$ref"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.H == nil || *v.H <= 0 {
		return fmt.Errorf("lumen: %s is not an object ref ({\"$ref\": handle})", b)
	}
	r.h = *v.H
	return nil
}

// marshalArgs encodes args as JSON and lists the refs inside them.
func marshalArgs(args any) (json.RawMessage, []int64, error) {
	if args == nil {
		return nil, nil, nil
	}
	var refs []int64
	refCollector = &refs
	b, err := json.Marshal(args)
	refCollector = nil
	if err != nil {
		return nil, nil, fmt.Errorf("lumen: encode arguments: %w", err)
	}
	return b, refs, nil
}

// Put stores v, encoded as JSON, as an object and returns its ref. It needs the objects capability.
func Put(v any) (Ref, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return Ref{}, fmt.Errorf("lumen: encode object: %w", err)
	}
	return PutBytes(b)
}

// PutBytes stores b as an object and returns its ref. The host copies b.
func PutBytes(b []byte) (Ref, error) {
	h := hostObjectPut(b)
	if h < 0 {
		return Ref{}, hostError(h)
	}
	return Ref{h}, nil
}

// GetBytes blocks until the object is ready and returns its bytes. For a task's result those are
// the task's output; a failed task gives an *Error with Status ErrFailed.
func (r Ref) GetBytes() ([]byte, error) { return r.GetBytesTimeout(-1) }

// GetBytesTimeout is GetBytes giving up after timeout (negative: no timeout besides the call's own
// deadline) with an error matching ErrTimeout.
func (r Ref) GetBytesTimeout(timeout time.Duration) ([]byte, error) {
	n := hostObjectGet(r.h, timeoutMs(timeout))
	if n < 0 {
		return nil, hostError(n)
	}
	return takeResult(n), nil
}

// Get blocks until the object is ready and decodes it, as JSON, into v.
func (r Ref) Get(v any) error {
	b, err := r.GetBytes()
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("lumen: decode object %d: %w", r.h, err)
	}
	return nil
}

// Get blocks until the object behind r is ready and returns it decoded as a T.
func Get[T any](r Ref) (T, error) {
	var v T
	err := r.Get(&v)
	return v, err
}

// Release says this call no longer needs r, so the object can be freed once nothing else refers
// to it.
func (r Ref) Release() error {
	if st := hostObjectRelease(r.h); st < 0 {
		return hostError(int64(st))
	}
	return nil
}

// TaskOption adjusts a task submitted with Submit.
type TaskOption func(*abi.TaskRequest)

// InModule runs the task from another module, by digest or name@version.
func InModule(ref string) TaskOption { return func(r *abi.TaskRequest) { r.Module = ref } }

// WithResources sets what the task needs from its node.
func WithResources(res abi.Resources) TaskOption {
	return func(r *abi.TaskRequest) { r.Resources = res }
}

// WithRetries sets how many times a system failure is retried (default 3); guestErrors also
// retries the task's own errors.
func WithRetries(n int, guestErrors bool) TaskOption {
	return func(r *abi.TaskRequest) { r.MaxRetries, r.RetryGuestErrors = &n, guestErrors }
}

// WithTimeout sets the task's wall-clock limit.
func WithTimeout(d time.Duration) TaskOption {
	return func(r *abi.TaskRequest) { r.TimeoutMs = d.Milliseconds() }
}

// DetachedTask lets the task outlive this call: it does not end when the call fails, is cancelled
// or times out, and does not inherit the call's deadline. It still ends with the job.
func DetachedTask() TaskOption { return func(r *abi.TaskRequest) { r.Detached = true } }

// Submit starts task function with args (encoded as JSON; refs inside travel by reference) and
// returns the ref of its result at once. It needs the tasks capability.
func Submit(function string, args any, opts ...TaskOption) (Ref, error) {
	raw, refs, err := marshalArgs(args)
	if err != nil {
		return Ref{}, err
	}
	req := abi.TaskRequest{Function: function, Args: raw, Refs: refs}
	for _, o := range opts {
		o(&req)
	}
	return submitRequest(&req)
}

// SubmitBytes starts a bytes task function with input in.
func SubmitBytes(function string, in []byte, opts ...TaskOption) (Ref, error) {
	req := abi.TaskRequest{Function: function, ArgsBytes: in}
	for _, o := range opts {
		o(&req)
	}
	return submitRequest(&req)
}

func submitRequest(req *abi.TaskRequest) (Ref, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return Ref{}, fmt.Errorf("lumen: encode task request: %w", err)
	}
	h := hostTaskSubmit(b)
	if h < 0 {
		return Ref{}, hostError(h)
	}
	return Ref{h}, nil
}

// Cancel asks the engine to cancel the task whose result r is.
func Cancel(r Ref) error {
	if st := hostTaskCancel(r.h); st < 0 {
		return hostError(int64(st))
	}
	return nil
}

// Wait blocks until numReturns of refs are ready or timeout passes (negative: no timeout besides
// the call's deadline), and returns the ready and the not-ready refs, each in the order given.
func Wait(refs []Ref, numReturns int, timeout time.Duration) (ready, notReady []Ref, err error) {
	req := abi.WaitRequest{Handles: make([]int64, len(refs)), NumReturns: numReturns, TimeoutMs: timeoutMs(timeout)}
	for i, r := range refs {
		req.Handles[i] = r.h
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, nil, fmt.Errorf("lumen: encode wait request: %w", err)
	}
	n := hostWait(b)
	if n < 0 {
		return nil, nil, hostError(n)
	}
	var res abi.WaitResult
	if err := json.Unmarshal(takeResult(n), &res); err != nil {
		return nil, nil, fmt.Errorf("lumen: decode wait result: %w", err)
	}
	for _, h := range res.Ready {
		ready = append(ready, Ref{h})
	}
	for _, h := range res.NotReady {
		notReady = append(notReady, Ref{h})
	}
	return ready, notReady, nil
}

// ActorOption adjusts an actor created with NewActor.
type ActorOption func(*abi.ActorCreateRequest)

// Named gives the actor a name others can look it up by, within namespace ("" for the job's).
func Named(name, namespace string) ActorOption {
	return func(r *abi.ActorCreateRequest) { r.Name, r.Namespace = name, namespace }
}

// Detached makes the actor outlive the job that created it.
func Detached() ActorOption { return func(r *abi.ActorCreateRequest) { r.Detached = true } }

// Durable makes the actor survive the loss of the node it runs on: its state (its type's __save)
// is stored through the cluster after each call, before the call is answered, and a new instance
// elsewhere starts from it (__load). Its type must have both methods.
func Durable() ActorOption { return func(r *abi.ActorCreateRequest) { r.Durable = true } }

// CheckpointEvery makes the actor durable with its state stored after every n-th call only: the
// loss of its node loses up to n-1 answered calls, for n-1 fewer stores.
func CheckpointEvery(n int) ActorOption {
	return func(r *abi.ActorCreateRequest) { r.Durable, r.CheckpointEvery = true, n }
}

// MaxRestarts sets how many times the actor is restarted after a failure (-1: without limit).
func MaxRestarts(n int) ActorOption { return func(r *abi.ActorCreateRequest) { r.MaxRestarts = n } }

// MaxConcurrency lets the actor run up to n calls at once.
func MaxConcurrency(n int) ActorOption {
	return func(r *abi.ActorCreateRequest) { r.MaxConcurrency = n }
}

// ActorModule creates the actor from another module, by digest or name@version.
func ActorModule(ref string) ActorOption { return func(r *abi.ActorCreateRequest) { r.Module = ref } }

// ActorResources sets what the actor holds on its node.
func ActorResources(res abi.Resources) ActorOption {
	return func(r *abi.ActorCreateRequest) { r.Resources = res }
}

// ActorHandle refers to a live actor.
type ActorHandle struct{ h int64 }

// Handle returns the actor's handle, as the ABI numbers it.
func (a *ActorHandle) Handle() int64 { return a.h }

// NewActor creates an actor of type actorType, passing args to its constructor. It needs the
// actors capability.
func NewActor(actorType string, args any, opts ...ActorOption) (*ActorHandle, error) {
	raw, _, err := marshalArgs(args)
	if err != nil {
		return nil, err
	}
	req := abi.ActorCreateRequest{Actor: actorType, Args: raw}
	for _, o := range opts {
		o(&req)
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("lumen: encode actor request: %w", err)
	}
	h := hostActorCreate(b)
	if h < 0 {
		return nil, hostError(h)
	}
	return &ActorHandle{h}, nil
}

// Call calls method (without the type prefix: "incr") with args and returns the ref of its result
// at once. Calls from one caller run in the order made.
func (a *ActorHandle) Call(method string, args any) (Ref, error) {
	raw, refs, err := marshalArgs(args)
	if err != nil {
		return Ref{}, err
	}
	return a.call(&abi.ActorCallRequest{Actor: a.h, Method: method, Args: raw, Refs: refs})
}

// CallBytes calls a bytes method with input in.
func (a *ActorHandle) CallBytes(method string, in []byte) (Ref, error) {
	return a.call(&abi.ActorCallRequest{Actor: a.h, Method: method, ArgsBytes: in})
}

func (a *ActorHandle) call(req *abi.ActorCallRequest) (Ref, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return Ref{}, fmt.Errorf("lumen: encode actor call: %w", err)
	}
	h := hostActorCall(b)
	if h < 0 {
		return Ref{}, hostError(h)
	}
	return Ref{h}, nil
}

// Kill stops the actor without restarting it.
func (a *ActorHandle) Kill() error {
	if st := hostActorKill(a.h); st < 0 {
		return hostError(int64(st))
	}
	return nil
}

func timeoutMs(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	if ms := d.Milliseconds(); ms < math.MaxInt64 {
		return ms
	}
	return math.MaxInt64
}
