package abi

import "sort"

// Capability names a group of host functions or sandbox grants. A module's manifest requests
// capabilities; a job grants them; a call gets the intersection.
type Capability string

// The capabilities of ABI v1. CapBase needs no request and is always granted.
const (
	CapBase    Capability = "base"    // log, error, result_len, result_read
	CapObjects Capability = "objects" // object_put, object_get, object_release
	CapTasks   Capability = "tasks"   // task_submit, task_cancel, wait
	CapActors  Capability = "actors"  // actor_create, actor_call, actor_kill
	CapClock   Capability = "clock"   // WASI sees the real wall clock and monotonic clock
	CapRandom  Capability = "random"  // WASI random_get reads the host's crypto/rand
	CapFS      Capability = "fs"      // WASI sees the directories the job grants (read-only unless granted writable)
	CapEnv     Capability = "env"     // WASI sees the environment variables the job grants
	CapTensors Capability = "tensors" // tensor_*, optim_*: host tensors, autograd and optimisers
	CapModel   Capability = "model"   // model_chat: chat completions from the models the node serves
	CapData    Capability = "data"    // dataset_*: pipelines over the node's data root, datasets built into objects
)

// Capabilities lists every capability a manifest may request, in a stable order.
var Capabilities = []Capability{CapObjects, CapTasks, CapActors, CapClock, CapRandom, CapFS, CapEnv, CapTensors, CapModel, CapData}

// Known reports whether c is a capability of this ABI version.
func (c Capability) Known() bool {
	if c == CapBase {
		return true
	}
	for _, k := range Capabilities {
		if k == c {
			return true
		}
	}
	return false
}

// HostFunc describes one function of the "lumen" import module.
type HostFunc struct {
	Name       string
	Sig        Signature
	Capability Capability
}

// Host function names.
const (
	FnLog           = "log"            // (level i32, ptr i32, len i32) -> i32 status
	FnError         = "error"          // (ptr i32, len i32) -> i32 status
	FnResultLen     = "result_len"     // () -> i32 length of the pending result
	FnResultRead    = "result_read"    // (ptr i32, len i32) -> i32 bytes copied; clears the pending result
	FnObjectPut     = "object_put"     // (ptr i32, len i32) -> i64 handle
	FnObjectGet     = "object_get"     // (handle i64, timeout_ms i64) -> i64 length of the pending result
	FnObjectRelease = "object_release" // (handle i64) -> i32 status
	FnTaskSubmit    = "task_submit"    // (ptr i32, len i32) -> i64 handle of the task's result
	FnTaskCancel    = "task_cancel"    // (handle i64) -> i32 status
	FnWait          = "wait"           // (ptr i32, len i32) -> i64 length of the pending WaitResult JSON
	FnActorCreate   = "actor_create"   // (ptr i32, len i32) -> i64 actor handle
	FnActorCall     = "actor_call"     // (ptr i32, len i32) -> i64 handle of the call's result
	FnActorKill     = "actor_kill"     // (handle i64) -> i32 status

	FnTensorCreate   = "tensor_create"   // (spec_ptr, spec_len, data_ptr, data_len i32) -> i64 tensor handle
	FnTensorOp       = "tensor_op"       // (ptr i32, len i32) -> i64 handle of the op's output
	FnTensorRead     = "tensor_read"     // (handle i64) -> i64 length of the pending raw values
	FnTensorInfo     = "tensor_info"     // (handle i64) -> i64 length of the pending TensorInfo JSON
	FnTensorBackward = "tensor_backward" // (handle i64) -> i32 status
	FnTensorGrad     = "tensor_grad"     // (handle i64) -> i64 handle of the gradient
	FnTensorFree     = "tensor_free"     // (handle i64) -> i32 status
	FnOptimCreate    = "optim_create"    // (ptr i32, len i32) -> i64 optimiser handle
	FnOptimStep      = "optim_step"      // (handle i64) -> i32 status
	FnOptimZeroGrad  = "optim_zero_grad" // (handle i64) -> i32 status

	FnModelChat = "model_chat" // (ptr i32, len i32) -> i64 length of the pending chat-completions JSON

	FnDatasetOpen   = "dataset_open"   // (ptr i32, len i32) -> i64 dataset handle
	FnDatasetNext   = "dataset_next"   // (handle i64) -> i64 length of the pending IPC batch; 0 at the end
	FnDatasetSchema = "dataset_schema" // (handle i64) -> i64 length of the pending IPC schema
	FnDatasetCreate = "dataset_create" // (ptr i32, len i32) -> i64 handle of a dataset to append to
	FnDatasetAppend = "dataset_append" // (handle i64, ptr i32, len i32) -> i32 status
	FnDatasetFinish = "dataset_finish" // (handle i64) -> i64 handle of the object holding the dataset
	FnDatasetClose  = "dataset_close"  // (handle i64) -> i32 status
	FnDatasetWrite  = "dataset_write"  // (handle i64, ptr i32, len i32) -> i64 length of the pending write result JSON
)

// HostFuncs is the "lumen" import module of ABI v1, by name.
var HostFuncs = map[string]HostFunc{
	FnLog:           {FnLog, sig([]ValType{I32, I32, I32}, I32), CapBase},
	FnError:         {FnError, sig([]ValType{I32, I32}, I32), CapBase},
	FnResultLen:     {FnResultLen, sig(nil, I32), CapBase},
	FnResultRead:    {FnResultRead, sig([]ValType{I32, I32}, I32), CapBase},
	FnObjectPut:     {FnObjectPut, sig([]ValType{I32, I32}, I64), CapObjects},
	FnObjectGet:     {FnObjectGet, sig([]ValType{I64, I64}, I64), CapObjects},
	FnObjectRelease: {FnObjectRelease, sig([]ValType{I64}, I32), CapObjects},
	FnTaskSubmit:    {FnTaskSubmit, sig([]ValType{I32, I32}, I64), CapTasks},
	FnTaskCancel:    {FnTaskCancel, sig([]ValType{I64}, I32), CapTasks},
	FnWait:          {FnWait, sig([]ValType{I32, I32}, I64), CapTasks},
	FnActorCreate:   {FnActorCreate, sig([]ValType{I32, I32}, I64), CapActors},
	FnActorCall:     {FnActorCall, sig([]ValType{I32, I32}, I64), CapActors},
	FnActorKill:     {FnActorKill, sig([]ValType{I64}, I32), CapActors},

	FnTensorCreate:   {FnTensorCreate, sig([]ValType{I32, I32, I32, I32}, I64), CapTensors},
	FnTensorOp:       {FnTensorOp, sig([]ValType{I32, I32}, I64), CapTensors},
	FnTensorRead:     {FnTensorRead, sig([]ValType{I64}, I64), CapTensors},
	FnTensorInfo:     {FnTensorInfo, sig([]ValType{I64}, I64), CapTensors},
	FnTensorBackward: {FnTensorBackward, sig([]ValType{I64}, I32), CapTensors},
	FnTensorGrad:     {FnTensorGrad, sig([]ValType{I64}, I64), CapTensors},
	FnTensorFree:     {FnTensorFree, sig([]ValType{I64}, I32), CapTensors},
	FnOptimCreate:    {FnOptimCreate, sig([]ValType{I32, I32}, I64), CapTensors},
	FnOptimStep:      {FnOptimStep, sig([]ValType{I64}, I32), CapTensors},
	FnOptimZeroGrad:  {FnOptimZeroGrad, sig([]ValType{I64}, I32), CapTensors},

	FnModelChat: {FnModelChat, sig([]ValType{I32, I32}, I64), CapModel},

	FnDatasetOpen:   {FnDatasetOpen, sig([]ValType{I32, I32}, I64), CapData},
	FnDatasetNext:   {FnDatasetNext, sig([]ValType{I64}, I64), CapData},
	FnDatasetSchema: {FnDatasetSchema, sig([]ValType{I64}, I64), CapData},
	FnDatasetCreate: {FnDatasetCreate, sig([]ValType{I32, I32}, I64), CapData},
	FnDatasetAppend: {FnDatasetAppend, sig([]ValType{I64, I32, I32}, I32), CapData},
	FnDatasetFinish: {FnDatasetFinish, sig([]ValType{I64}, I64), CapData},
	FnDatasetClose:  {FnDatasetClose, sig([]ValType{I64}, I32), CapData},
	FnDatasetWrite:  {FnDatasetWrite, sig([]ValType{I64, I32, I32}, I64), CapData},
}

// HostFuncNames returns the names of HostFuncs, sorted.
func HostFuncNames() []string {
	names := make([]string, 0, len(HostFuncs))
	for n := range HostFuncs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Log levels for the log host function.
const (
	LogDebug int32 = 0
	LogInfo  int32 = 1
	LogWarn  int32 = 2
	LogError int32 = 3
)

// Status is what a host function returns when it fails: the negated value of one of these codes.
// A return value >= 0 is success (a length, a handle or 0). After a failure the pending result
// holds the error message as UTF-8 (read it with result_len and result_read); for ErrFailed it
// holds the failed task's Error as JSON.
type Status int32

// Status codes. Host functions return their negation.
const (
	StatusOK       Status = 0
	ErrBadPointer  Status = 1  // a pointer or length lies outside the guest's memory
	ErrBadPayload  Status = 2  // the payload does not decode, or fails validation
	ErrDenied      Status = 3  // the capability is not granted to this call
	ErrNotFound    Status = 4  // unknown handle, module, function or actor
	ErrTimeout     Status = 5  // the wait or get timed out; the handle stays valid
	ErrLimit       Status = 6  // a budget was spent: log bytes, object bytes, handles
	ErrFailed      Status = 7  // the task or actor call failed; the pending result is its Error JSON
	ErrUnavailable Status = 8  // the host has no engine behind it for this function
	ErrCancelled   Status = 9  // the task was cancelled
	ErrInternal    Status = 10 // a host fault, not the guest's
	ErrTooLarge    Status = 11 // a payload exceeds its size cap
	ErrNoResult    Status = 12 // result_read with no pending result
	ErrBadLevel    Status = 13 // log level out of range
	maxStatus      Status = 13
)

var statusNames = [...]string{
	StatusOK:       "ok",
	ErrBadPointer:  "bad_pointer",
	ErrBadPayload:  "bad_payload",
	ErrDenied:      "denied",
	ErrNotFound:    "not_found",
	ErrTimeout:     "timeout",
	ErrLimit:       "limit",
	ErrFailed:      "failed",
	ErrUnavailable: "unavailable",
	ErrCancelled:   "cancelled",
	ErrInternal:    "internal",
	ErrTooLarge:    "too_large",
	ErrNoResult:    "no_result",
	ErrBadLevel:    "bad_level",
}

// String returns the status's snake_case name.
func (s Status) String() string {
	if s < 0 || s > maxStatus {
		return "unknown"
	}
	return statusNames[s]
}

// Code returns the value a host function returns for s: its negation.
func (s Status) Code() int64 { return -int64(s) }

// StatusOf reads a host function's return value: StatusOK for r >= 0, the status otherwise.
func StatusOf(r int64) Status {
	if r >= 0 {
		return StatusOK
	}
	if r < -int64(maxStatus) {
		return ErrInternal
	}
	return Status(-r)
}
