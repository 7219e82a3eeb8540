package host

import (
	"context"
	"fmt"
	"slices"

	"github.com/tetratelabs/wazero/api"

	"github.com/lumenflow/lumen/sdk/abi"
)

// The dataset_* host functions (capability abi.CapData): a guest reads a dataset that runs on the
// host — a JSON pipeline over the node's data root, or an object holding Arrow IPC — one record
// batch at a time, and builds a dataset of its own batch by batch into an object. Batches cross
// as Arrow IPC streams (docs/abi.md §3.3). The host checks handles, pointers and sizes; the
// engine (Services) decodes and validates every byte the guest sends.
//
// A dataset handle belongs to the call that opened it: the host refuses it in any other call, and
// closes what a call left open when the call ends (closeDatasets), whatever way it ends.

// MaxOpenDatasets is how many dataset handles one call may hold open at once; the next
// dataset_open or dataset_create returns abi.ErrLimit.
const MaxOpenDatasets = 64

// dataset_open(ptr i32, len i32) -> i64 dataset handle.
func hostDatasetOpen(ctx context.Context, st *callState, mod api.Module, stack []uint64) int64 {
	b, code := payload(st, mod, abi.FnDatasetOpen, stack)
	if b == nil && code != 0 {
		return code
	}
	if len(b) == 0 {
		return st.fail(abi.ErrBadPayload, abi.FnDatasetOpen+": empty spec: want a JSON pipeline or {\"object\": handle}")
	}
	return datasetStart(st, abi.FnDatasetOpen, func(s Services) (int64, error) {
		return s.DatasetOpen(ctx, &st.info, append([]byte(nil), b...))
	})
}

// dataset_create(ptr i32, len i32) -> i64 handle of a dataset to append to. The bytes are an
// Arrow IPC schema stream, or empty when the first appended batch fixes the schema.
func hostDatasetCreate(ctx context.Context, st *callState, mod api.Module, stack []uint64) int64 {
	b, code := payload(st, mod, abi.FnDatasetCreate, stack)
	if b == nil && code != 0 {
		return code
	}
	var schema []byte
	if len(b) > 0 {
		schema = append([]byte(nil), b...)
	}
	return datasetStart(st, abi.FnDatasetCreate, func(s Services) (int64, error) {
		return s.DatasetCreate(ctx, &st.info, schema)
	})
}

// datasetStart runs open, which makes a dataset, within the call's handle budget, and records
// the new handle as the call's.
func datasetStart(st *callState, what string, open func(Services) (int64, error)) int64 {
	if len(st.datasets) >= MaxOpenDatasets {
		return st.fail(abi.ErrLimit, fmt.Sprintf("%s: this call holds %d open datasets, the most it may; close one first", what, MaxOpenDatasets))
	}
	s, code := st.services(what)
	if s == nil {
		return code
	}
	h, err := open(s)
	if err != nil {
		return st.failErr(what, err)
	}
	if h <= 0 {
		return checkHandle(st, what, h)
	}
	st.datasets = append(st.datasets, h)
	return h
}

// datasetHandle is the common start of the handle-taking dataset functions: a handle this call
// opened and an engine behind the host.
func datasetHandle(st *callState, what string, h int64) (Services, int64) {
	if h <= 0 {
		return nil, st.fail(abi.ErrNotFound, fmt.Sprintf("%s: handle %d is not positive", what, h))
	}
	if !slices.Contains(st.datasets, h) {
		return nil, st.fail(abi.ErrNotFound, fmt.Sprintf("%s: dataset %d is not open in this call (closed, finished, or another call's)", what, h))
	}
	return st.services(what)
}

// forget drops h from the call's open datasets.
func (st *callState) forget(h int64) {
	if i := slices.Index(st.datasets, h); i >= 0 {
		st.datasets = slices.Delete(st.datasets, i, i+1)
	}
}

// dataset_next(handle i64) -> i64 length of the pending batch (an Arrow IPC stream: schema, one
// record batch, end of stream), or 0 once the dataset is exhausted. The call's concurrency slot
// is given back while it waits for the batch.
func hostDatasetNext(ctx context.Context, st *callState, _ api.Module, stack []uint64) int64 {
	h := int64(stack[0])
	s, code := datasetHandle(st, abi.FnDatasetNext, h)
	if s == nil {
		return code
	}
	st.yieldSlot()
	b, err := s.DatasetNext(ctx, &st.info, h)
	if !st.reclaimSlot(ctx) && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return st.failErr(abi.FnDatasetNext, err)
	}
	if len(b) == 0 {
		return 0 // the end: no pending result
	}
	return st.setPending(abi.FnDatasetNext, b)
}

// dataset_schema(handle i64) -> i64 length of the pending schema, an Arrow IPC stream holding
// the schema message and the end-of-stream marker. The slot is given back while the engine runs
// the dataset far enough to know it.
func hostDatasetSchema(ctx context.Context, st *callState, _ api.Module, stack []uint64) int64 {
	h := int64(stack[0])
	s, code := datasetHandle(st, abi.FnDatasetSchema, h)
	if s == nil {
		return code
	}
	st.yieldSlot()
	b, err := s.DatasetSchema(ctx, &st.info, h)
	if !st.reclaimSlot(ctx) && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return st.failErr(abi.FnDatasetSchema, err)
	}
	if len(b) == 0 {
		return st.fail(abi.ErrInternal, abi.FnDatasetSchema+": the engine returned no schema")
	}
	return st.setPending(abi.FnDatasetSchema, b)
}

// dataset_append(handle i64, ptr i32, len i32) -> i32 status. The bytes are one Arrow IPC
// stream of one batch, at most the call's result limit (Limits.MaxResultBytes).
func hostDatasetAppend(ctx context.Context, st *callState, mod api.Module, stack []uint64) int64 {
	h := int64(stack[0])
	ptr, n := uint32(stack[1]), uint32(stack[2])
	b, ok := view(mod, ptr, n)
	if !ok {
		return badPointer(st, mod, abi.FnDatasetAppend, ptr, n)
	}
	s, code := datasetHandle(st, abi.FnDatasetAppend, h)
	if s == nil {
		return code
	}
	if int64(n) > st.maxResult {
		return st.fail(abi.ErrTooLarge, fmt.Sprintf("%s: batch of %d bytes is over the %d-byte limit", abi.FnDatasetAppend, n, st.maxResult))
	}
	if n == 0 {
		return st.fail(abi.ErrBadPayload, abi.FnDatasetAppend+": empty batch: want an Arrow IPC stream of one record batch")
	}
	if err := s.DatasetAppend(ctx, &st.info, h, append([]byte(nil), b...)); err != nil {
		return st.failErr(abi.FnDatasetAppend, err)
	}
	return 0
}

// dataset_finish(handle i64) -> i64 handle of a new object holding every appended batch as one
// Arrow IPC stream. The dataset handle is closed, whether finish succeeds or not.
func hostDatasetFinish(ctx context.Context, st *callState, _ api.Module, stack []uint64) int64 {
	h := int64(stack[0])
	s, code := datasetHandle(st, abi.FnDatasetFinish, h)
	if s == nil {
		return code
	}
	st.forget(h)
	obj, err := s.DatasetFinish(ctx, &st.info, h)
	if err != nil {
		return st.failErr(abi.FnDatasetFinish, err)
	}
	return checkHandle(st, abi.FnDatasetFinish, obj)
}

// dataset_write(handle i64, ptr i32, len i32) -> i64 length of the pending write result: writes
// the dataset as files into a writable directory the job grants, which only a call with the fs
// capability may reach. The slot is given back while the files are written.
func hostDatasetWrite(ctx context.Context, st *callState, mod api.Module, stack []uint64) int64 {
	h := int64(stack[0])
	b, code := payload(st, mod, abi.FnDatasetWrite, stack[1:])
	if b == nil && code != 0 {
		return code
	}
	s, code := datasetHandle(st, abi.FnDatasetWrite, h)
	if s == nil {
		return code
	}
	if !st.caps.has(bitFS) {
		return st.fail(abi.ErrDenied, fmt.Sprintf("%s: writes go to the job's writable directory grants, which need capability %q", abi.FnDatasetWrite, abi.CapFS))
	}
	sink := append([]byte(nil), b...)
	st.yieldSlot()
	out, err := s.DatasetWrite(ctx, &st.info, h, sink)
	if !st.reclaimSlot(ctx) && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return st.failErr(abi.FnDatasetWrite, err)
	}
	return st.setPending(abi.FnDatasetWrite, out)
}

// dataset_close(handle i64) -> i32 status: stops the dataset's execution and frees what it holds.
func hostDatasetClose(ctx context.Context, st *callState, _ api.Module, stack []uint64) int64 {
	h := int64(stack[0])
	s, code := datasetHandle(st, abi.FnDatasetClose, h)
	if s == nil {
		return code
	}
	st.forget(h)
	if err := s.DatasetClose(ctx, &st.info, h); err != nil {
		return st.failErr(abi.FnDatasetClose, err)
	}
	return 0
}

// closeDatasets closes the datasets the call left open. It runs as the call ends, on the
// goroutine that ran it, with its own context: the call's may have ended.
func (st *callState) closeDatasets() {
	if len(st.datasets) == 0 {
		return
	}
	hs := st.datasets
	st.datasets = nil
	s := st.in.r.cfg.Services
	if s == nil {
		return
	}
	info := st.info
	for _, h := range hs {
		func() {
			defer func() { recover() }() // a panicking engine must not take the host down here
			s.DatasetClose(context.Background(), &info, h)
		}()
	}
}
