package host

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/lumenflow/lumen/sdk/abi"
)

// CallRequest is one call of a module's function.
type CallRequest struct {
	Module   *Module // compiled by this Runtime
	Function string  // a function of the module's manifest
	Input    []byte  // copied into the guest; not retained
	Job      string  // instances are pooled per job and never shared between jobs
	Grants   Grants  // what the job allows; see Grants
	Limits   Limits  // zero fields take Config.Defaults
	Context  any     // handed to Services in CallInfo.Context
}

// Result is what a call produced. The caller owns it.
type Result struct {
	Output   []byte        // the function's output; nil on error
	Log      []byte        // stdout, stderr and "LEVEL message\n" log lines, in order, up to MaxOutputBytes
	Duration time.Duration // from Call to return, waiting for a slot included
}

// Call runs req on a pooled instance: a warm one of the same module, job, grants and memory
// limit if one is idle, else a new one. It is safe for concurrent use.
//
// Errors are *abi.Error (use errors.As): KindNotFound for an unknown function, KindBadInput for a
// malformed request, KindDenied when the module imports host functions of a capability the job
// does not grant, KindGuest when the guest reported an error, KindTrap when it trapped or exited,
// KindLimit when a limit stopped it, KindCancelled when ctx was cancelled or the Runtime closed,
// KindSystem for a fault of the host. The Result, with the call's log, comes back alongside every
// error from a call that ran.
//
// The instance goes back to its pool after success or a guest error, and is discarded after
// anything else, as its state may be corrupt.
func (r *Runtime) Call(ctx context.Context, req CallRequest) (*Result, error) {
	start := time.Now()
	m := req.Module
	if m == nil || m.r != r {
		return nil, newErr(abi.KindBadInput, "call: the module was not compiled by this runtime")
	}
	fn, ok := m.fn[req.Function]
	if !ok {
		return nil, newErr(abi.KindNotFound, "module %s has no function %q", m.Digest, req.Function)
	}
	lim, caps, gkey, aerr := r.prepare(m, req.Job, &req.Grants, req.Limits)
	if aerr != nil {
		return nil, aerr
	}
	if uint64(len(req.Input)) > math.MaxUint32 {
		return nil, newErr(abi.KindBadInput, "input of %d bytes does not fit a 32-bit guest", len(req.Input))
	}
	now := start
	if waited, err := r.acquire(ctx); err != nil {
		return nil, waitErr(err)
	} else if waited {
		now = time.Now()
	}
	deadline := now.Add(lim.Timeout)
	key := poolKey{m: m, job: req.Job, grants: gkey, pages: lim.MemoryPages}
	in, err := r.begin(key, true)
	if err != nil {
		r.release()
		return nil, err
	}
	info := CallInfo{Job: req.Job, Module: m.Digest, Function: req.Function, Context: req.Context}
	slot := slotHeld
	var initLog []byte // what a new instance wrote while it initialized
	if in == nil {
		grants := req.Grants
		spec := &instanceSpec{m: m, caps: caps, grants: &grants, lim: lim, info: info, key: key, pooled: true, slot: slot}
		var res *Result
		in, res, aerr = r.instantiate(ctx, now, deadline, spec)
		if res != nil {
			initLog = res.Log
		}
		slot = spec.slot
		now = time.Now()
		if aerr != nil {
			r.end(ctx, nil)
			if slot == slotHeld {
				r.release()
			}
			if res != nil {
				res.Duration = time.Since(start)
			}
			return res, aerr
		}
		r.markBusy(in)
	}
	res, aerr, slot := in.invoke(ctx, now, deadline, fn, req.Input, info, lim, slot)
	r.end(ctx, in)
	if slot == slotHeld {
		r.release()
	}
	res.Duration = time.Since(start)
	if len(initLog) > 0 {
		res.Log = append(initLog, res.Log...)
	}
	if aerr != nil {
		return res, aerr
	}
	return res, nil
}

// prepare resolves a call's limits and effective capabilities, and refuses a call whose job does
// not grant what the module's imports need.
func (r *Runtime) prepare(m *Module, job string, g *Grants, l Limits) (Limits, capSet, string, *abi.Error) {
	if err := l.validate(); err != nil {
		return l, 0, "", newErr(abi.KindBadInput, "limits: %v", err)
	}
	lim := l.or(r.cfg.Defaults)
	granted, err := capsOf(g.Capabilities)
	if err != nil {
		return lim, 0, "", newErr(abi.KindBadInput, "grants: %v", err)
	}
	caps := m.requested&granted | bitBase
	if missing := m.required &^ caps; missing != 0 {
		return lim, 0, "", newErr(abi.KindDenied, "module %s imports host functions of capability %s, which job %q does not grant",
			m.Digest, strings.Join(quoteAll(missing.names()), ", "), job)
	}
	if err := validateGrants(caps, g); err != nil {
		return lim, 0, "", newErr(abi.KindBadInput, "grants: %v", err)
	}
	return lim, caps, grantsKey(caps, g), nil
}

func quoteAll(s []string) []string {
	for i := range s {
		s[i] = fmt.Sprintf("%q", s[i])
	}
	return s
}

// waitErr describes a call that gave up waiting for a slot.
func waitErr(err error) error {
	switch {
	case errors.Is(err, ErrClosed):
		return closedErr()
	case errors.Is(err, context.DeadlineExceeded):
		return limitErr(abi.LimitDeadline, "deadline passed while waiting for a free slot")
	}
	return newErr(abi.KindCancelled, "cancelled while waiting for a free slot: %v", err)
}

// slotState says whether a call holds its concurrency slot.
type slotState uint8

const (
	slotNone    slotState = iota // the work runs outside the concurrency cap (Compile)
	slotHeld                     // the call holds a slot
	slotYielded                  // the call gave its slot back while blocked in a host function
)

// callState is the state of the call an instance is running. It lives in the instance and is
// reset by begin.
type callState struct {
	in         *instance
	cctx       *callCtx
	info       CallInfo
	caps       capSet
	maxOut     int64
	maxResult  int64
	timeout    time.Duration
	log        []byte
	pending    []byte
	hasPending bool
	guestErr   []byte
	erred      bool   // the guest called error
	input      []byte // the call's input, for hostInput
	badInput   bool   // lumen_alloc returned no usable buffer for the input
	inputPtr   uint32
	limit      string // the limit that stopped the call, if one did
	limitMsg   string
	fault      error // a fault of the host, if one happened
	slot       slotState
	datasets   []int64 // the dataset handles the call holds open (datasets.go)
}

// begin starts a call on the instance, to end by deadline or when ctx does.
func (in *instance) begin(ctx context.Context, now, deadline time.Time, info CallInfo, lim Limits, slot slotState) *callState {
	st := &in.st
	*st = callState{
		in:        in,
		cctx:      in.cctx,
		info:      info,
		caps:      in.caps,
		maxOut:    lim.MaxOutputBytes,
		maxResult: lim.MaxResultBytes,
		timeout:   lim.Timeout,
		slot:      slot,
	}
	in.limiter.refused = 0
	in.running = true
	in.cctx.arm(ctx, now, deadline)
	return st
}

// finish ends the call and hands its log to a new Result. An instance whose call was stopped
// is dead.
func (in *instance) finish() (*Result, slotState) {
	st := &in.st
	st.closeDatasets()
	if in.cctx.disarm() {
		in.dead = true
	}
	in.running = false
	res := &Result{Log: st.log}
	slot := st.slot
	*st = callState{}
	return res, slot
}

// invoke runs function fn on input: one entry into wasm, through the trampoline, which calls
// lumen_alloc, has the host copy the input (hostInput) and calls lumen_call.
func (in *instance) invoke(ctx context.Context, now, deadline time.Time, fn int32, input []byte, info CallInfo, lim Limits, slot slotState) (*Result, *abi.Error, slotState) {
	st := in.begin(ctx, now, deadline, info, lim, slot)
	st.input = input
	in.stack[0], in.stack[1] = uint64(uint32(fn)), uint64(len(input))
	err := in.run.CallWithStack(in.cctx, in.stack[:2])
	if err == nil && in.cctx.Err() != nil {
		// The call was stopped while the guest was in a host function, and it returned before
		// wazero noticed. It still failed, and wazero may have closed the module under it.
		err = ctxExit(in.cctx)
	}
	if err != nil {
		aerr := in.failure(err, st)
		res, slot := in.finish()
		return res, aerr, slot
	}
	if st.badInput {
		in.dead = true
		var aerr *abi.Error
		if in.limiter.refused != 0 {
			aerr = in.memoryErr()
		} else {
			aerr = newErr(abi.KindTrap, "%s(%d) returned %#x, not a buffer inside its %d-byte memory",
				abi.ExportAlloc, len(input), st.inputPtr, in.mem().Size())
		}
		res, slot := in.finish()
		return res, aerr, slot
	}
	if st.erred {
		aerr := abi.DecodeGuestError(st.guestErr)
		res, slot := in.finish()
		return res, aerr, slot
	}
	p, l := abi.Unpack(in.stack[0])
	var out []byte
	if l > 0 {
		b, ok := in.mem().Read(p, l)
		if !ok {
			in.dead = true
			size := in.mem().Size()
			res, slot := in.finish()
			return res, newErr(abi.KindTrap, "result out of bounds: %s returned [%#x, +%d) but memory is %d bytes",
				abi.ExportCall, p, l, size), slot
		}
		if int64(l) > st.maxResult {
			res, slot := in.finish()
			return res, limitErr(abi.LimitOutput, "output of %d bytes is over the %d-byte limit", l, lim.MaxResultBytes), slot
		}
		out = make([]byte, l)
		copy(out, b)
	}
	res, slot := in.finish()
	res.Output = out
	return res, nil, slot
}

// hostInput is lumen_internal.input(ptr, len) -> i32, which the trampoline calls after
// lumen_alloc: it copies the call's input to [ptr, ptr+len) of the guest's memory, or records that
// lumen_alloc gave no usable buffer.
func hostInput(ctx context.Context, _ api.Module, stack []uint64) {
	st := stateOf(ctx)
	ptr := uint32(stack[0])
	if st == nil || !st.in.running || uint64(len(st.input)) != uint64(uint32(stack[1])) {
		stack[0] = 0
		return
	}
	if ptr == 0 || !st.in.mem().Write(ptr, st.input) {
		st.badInput, st.inputPtr = true, ptr
		stack[0] = 0
		return
	}
	stack[0] = 1
}

// failure classifies an error from a guest call and marks the instance dead. Only what the host
// observed decides the kind: the limit that stopped the call, the exit code wazero reports for a
// deadline or cancellation, a refused memory grow, a fault of the host; anything else is a trap.
func (in *instance) failure(err error, st *callState) *abi.Error {
	in.dead = true
	if st.limit != "" {
		return limitErr(st.limit, "%s", st.limitMsg)
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return limitErr(abi.LimitDeadline, "the call ran past its deadline (timeout %v)", st.timeout)
		case sys.ExitCodeContextCanceled:
			return newErr(abi.KindCancelled, "the call was cancelled")
		}
		if in.limiter.refused != 0 {
			return in.memoryErr()
		}
		return newErr(abi.KindTrap, "the guest exited with code %d during the call", exit.ExitCode())
	}
	if in.limiter.refused != 0 {
		e := in.memoryErr()
		e.Message += ": " + truncate(err.Error(), maxTrapMessage)
		return e
	}
	if st.fault != nil {
		return newErr(abi.KindSystem, "host fault: %v", st.fault)
	}
	return newErr(abi.KindTrap, "%s", truncate(err.Error(), maxTrapMessage))
}

func (in *instance) memoryErr() *abi.Error {
	l := in.limiter
	if l.tables > 0 {
		total := l.limit + l.tables
		return limitErr(abi.LimitMemory, "the guest asked for %d memory pages; the limit is %d pages (%d MiB), of which its tables reserve %.1f MiB",
			(l.refused+pageSize-1)/pageSize, total/pageSize, total>>20, float64(l.tables)/(1<<20))
	}
	return limitErr(abi.LimitMemory, "the guest asked for %d memory pages; the limit is %d pages (%d MiB)",
		(l.refused+pageSize-1)/pageSize, l.limit/pageSize, l.limit>>20)
}

// errOutputLimit is the panic value that stops a call that wrote past its output limit.
var errOutputLimit = errors.New("output limit exceeded")

// appendLog adds p to the call's log. Past the limit it keeps what fits, records the limit and
// panics with errOutputLimit to stop the guest at once.
func (st *callState) appendLog(p []byte) {
	room := st.maxOut - int64(len(st.log))
	if int64(len(p)) <= room {
		st.log = append(st.log, p...)
		return
	}
	if room > 0 {
		st.log = append(st.log, p[:room]...)
	}
	st.limit = abi.LimitOutput
	st.limitMsg = fmt.Sprintf("the call wrote more than %d bytes to stdout, stderr and the log", st.maxOut)
	panic(errOutputLimit)
}

// sysExit is the exit error wazero reports for a call stopped by its deadline or cancelled.
func sysExit(deadline bool) error {
	if deadline {
		return sys.NewExitError(sys.ExitCodeDeadlineExceeded)
	}
	return sys.NewExitError(sys.ExitCodeContextCanceled)
}

// Prewarm makes sure the pool of req's module, job, grants and memory limit holds at least n
// idle instances, instantiating the missing ones now so that later calls find them warm (req's
// Function and Input are not used). It takes a concurrency slot per instance it makes. Errors are
// as for Call.
func (r *Runtime) Prewarm(ctx context.Context, req CallRequest, n int) error {
	m := req.Module
	if m == nil || m.r != r {
		return newErr(abi.KindBadInput, "prewarm: the module was not compiled by this runtime")
	}
	lim, caps, gkey, aerr := r.prepare(m, req.Job, &req.Grants, req.Limits)
	if aerr != nil {
		return aerr
	}
	key := poolKey{m: m, job: req.Job, grants: gkey, pages: lim.MemoryPages}
	r.mu.Lock()
	have := 0
	if p := r.pools[key]; p != nil {
		have = len(p.idle)
	}
	r.mu.Unlock()
	for ; have < n; have++ {
		if _, err := r.acquire(ctx); err != nil {
			return waitErr(err)
		}
		if _, err := r.begin(key, false); err != nil {
			r.release()
			return err
		}
		grants := req.Grants
		info := CallInfo{Job: req.Job, Module: m.Digest, Function: "_initialize", Context: req.Context}
		spec := &instanceSpec{m: m, caps: caps, grants: &grants, lim: lim, info: info, key: key, pooled: true, slot: slotHeld}
		now := time.Now()
		in, _, aerr := r.instantiate(ctx, now, now.Add(lim.Timeout), spec)
		if spec.slot == slotHeld {
			r.release()
		}
		if aerr != nil {
			r.end(ctx, nil)
			return aerr
		}
		r.markBusy(in)
		r.end(ctx, in)
	}
	return nil
}
