package host

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/lumenflow/lumen/sdk/abi"
)

// CallInfo says which call a host function serves.
type CallInfo struct {
	Job      string // the job of the call's CallRequest or InstanceSpec
	Module   string // the module's digest, "sha256:<hex>"
	Function string // the manifest function being called
	// Context is the engine's own per-call value, from CallRequest.Context or
	// InstanceSpec.Context; the host never looks at it.
	Context any
}

// Services is the engine behind the object, task and actor host functions. The host calls it from
// the goroutine running the guest, with the call's context (which ends at the call's deadline);
// implementations must be safe for concurrent use, as calls run in parallel, and must return
// soon after ctx ends: the sandbox cannot stop a guest while it is inside a host function.
//
// The *CallInfo is valid only until the method returns. Byte slices passed in are the
// implementation's to keep; byte slices returned are the host's and must not be changed after.
//
// Errors become the guest's status: an *abi.Error of kind not_found, denied, cancelled or
// bad_input gives ErrNotFound, ErrDenied, ErrCancelled or ErrBadPayload; any other *abi.Error is a
// failed task or actor call and gives ErrFailed, with the error's JSON as the pending result;
// context.DeadlineExceeded gives ErrTimeout, context.Canceled ErrCancelled; a *StatusError gives
// its own status; anything else gives ErrInternal.
type Services interface {
	// ObjectPut stores data as a new object owned by the call's job and returns its handle (> 0).
	ObjectPut(ctx context.Context, c *CallInfo, data []byte) (int64, error)
	// ObjectGet waits until object h is ready and returns its bytes, or the *abi.Error of the
	// failed task that was to produce it. timeout < 0 waits until ctx ends. The call's
	// concurrency slot is released while ObjectGet runs.
	ObjectGet(ctx context.Context, c *CallInfo, h int64, timeout time.Duration) ([]byte, error)
	// ObjectRelease drops the call's reference to object h.
	ObjectRelease(ctx context.Context, c *CallInfo, h int64) error
	// TaskSubmit starts a task and returns the handle of its result object without waiting: the
	// calling guest holds a concurrency slot, so running the task before returning can deadlock a
	// full Runtime.
	TaskSubmit(ctx context.Context, c *CallInfo, req *abi.TaskRequest) (int64, error)
	// TaskCancel asks for the task whose result is object h to be cancelled.
	TaskCancel(ctx context.Context, c *CallInfo, h int64) error
	// Wait blocks until req.NumReturns of req.Handles are ready or req.TimeoutMs passes. The
	// call's concurrency slot is released while Wait runs.
	Wait(ctx context.Context, c *CallInfo, req *abi.WaitRequest) (*abi.WaitResult, error)
	// ActorCreate creates an actor and returns its handle.
	ActorCreate(ctx context.Context, c *CallInfo, req *abi.ActorCreateRequest) (int64, error)
	// ActorCall queues a method call and returns the handle of its result object.
	ActorCall(ctx context.Context, c *CallInfo, req *abi.ActorCallRequest) (int64, error)
	// ActorKill stops actor h without restarting it.
	ActorKill(ctx context.Context, c *CallInfo, h int64) error

	// The datasets of the data capability (docs/abi.md §3.3). Dataset handles are > 0 and the
	// implementation's own; the host passes only handles that the same call opened and has not
	// closed, and closes (DatasetClose) every one the call leaves open when it ends. Batches and
	// schemas cross as Arrow IPC streams, which the implementation must validate: the bytes are
	// the guest's.

	// DatasetOpen starts a dataset from spec, a JSON pipeline without a sink or {"object": h}
	// for an object holding an Arrow IPC stream, and returns its handle. The dataset streams: the
	// implementation holds at most a few batches ahead of the guest.
	DatasetOpen(ctx context.Context, c *CallInfo, spec []byte) (int64, error)
	// DatasetNext returns the next batch of dataset h as an IPC stream of one record batch, or
	// nil once the dataset is exhausted. The call's concurrency slot is released while it runs.
	DatasetNext(ctx context.Context, c *CallInfo, h int64) ([]byte, error)
	// DatasetSchema returns the schema of dataset h as an IPC stream with no batch. The call's
	// concurrency slot is released while it runs.
	DatasetSchema(ctx context.Context, c *CallInfo, h int64) ([]byte, error)
	// DatasetCreate starts an empty dataset for the guest to append to, of the schema in the IPC
	// stream schema, or nil to take the first batch's.
	DatasetCreate(ctx context.Context, c *CallInfo, schema []byte) (int64, error)
	// DatasetAppend checks batch (an IPC stream of one record batch) and adds it to dataset h.
	DatasetAppend(ctx context.Context, c *CallInfo, h int64, batch []byte) error
	// DatasetFinish stores the batches appended to dataset h as one IPC stream in a new object
	// owned by the call, and returns the object's handle. Dataset h is closed after, whatever the
	// outcome.
	DatasetFinish(ctx context.Context, c *CallInfo, h int64) (int64, error)
	// DatasetWrite writes dataset h — the batches appended so far, or what remains of a plan
	// being read, which it then exhausts — as files into a folder of the call's writable
	// directory grants, named by sink (one write_parquet, write_csv or write_jsonl step), and
	// returns the data.WriteResult JSON ({"rows": n, "files": [...]}, files as the guest names
	// them). The host has checked that the call has the fs capability. The call's concurrency
	// slot is released while it runs.
	DatasetWrite(ctx context.Context, c *CallInfo, h int64, sink []byte) ([]byte, error)
	// DatasetClose stops dataset h and frees what it holds. Closing an unknown handle is not an
	// error the host reports when the call ends.
	DatasetClose(ctx context.Context, c *CallInfo, h int64) error
}

// statusOf maps an error of Services to the status the guest sees and the pending result that
// explains it.
func statusOf(err error) (abi.Status, []byte) {
	var se *StatusError
	if errors.As(err, &se) {
		st := se.Status
		if st <= abi.StatusOK || st.String() == "unknown" {
			st = abi.ErrInternal
		}
		return st, []byte(se.Message)
	}
	var ae *abi.Error
	if errors.As(err, &ae) {
		switch ae.Kind {
		case abi.KindNotFound:
			return abi.ErrNotFound, []byte(ae.Message)
		case abi.KindDenied:
			return abi.ErrDenied, []byte(ae.Message)
		case abi.KindCancelled:
			return abi.ErrCancelled, []byte(ae.Message)
		case abi.KindBadInput:
			return abi.ErrBadPayload, []byte(ae.Message)
		}
		b, jerr := json.Marshal(ae)
		if jerr != nil {
			return abi.ErrInternal, []byte(jerr.Error())
		}
		return abi.ErrFailed, b
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return abi.ErrTimeout, []byte(err.Error())
	case errors.Is(err, context.Canceled):
		return abi.ErrCancelled, []byte(err.Error())
	}
	return abi.ErrInternal, []byte(err.Error())
}
