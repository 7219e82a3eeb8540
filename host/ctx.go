package host

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// callCtx is the context.Context every call of an instance runs with; host functions find their
// call through it. It lives as long as the instance rather than one call: wazero watches the
// context of every call into wasm (to stop it at its deadline), and a context per call cost more
// than the call itself. Done is closed at most once, when a call is stopped by its deadline, its
// caller's context or Runtime.Close; the instance is dead from then on.
type callCtx struct {
	parent   context.Context // the caller's context; set by arm, read by the calling goroutine only
	st       *callState
	deadline time.Time
	done     chan struct{}
	why      atomic.Int32 // 0 while running, else stopDeadline or stopCancel
	timer    *time.Timer
	unlink   func() bool // stops the watch on parent
}

const (
	stopDeadline int32 = 1 + iota
	stopCancel
)

func newCallCtx(st *callState) *callCtx {
	return &callCtx{st: st, done: make(chan struct{})}
}

type stateKey struct{}

// Deadline implements context.Context.
func (c *callCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// Done implements context.Context.
func (c *callCtx) Done() <-chan struct{} { return c.done }

// Err implements context.Context.
func (c *callCtx) Err() error {
	switch c.why.Load() {
	case stopDeadline:
		return context.DeadlineExceeded
	case stopCancel:
		return context.Canceled
	}
	return nil
}

// Value implements context.Context.
func (c *callCtx) Value(k any) any {
	if k == (stateKey{}) {
		return c.st
	}
	if c.parent == nil {
		return nil
	}
	return c.parent.Value(k)
}

// stop ends the running call for good. It is safe for concurrent use.
func (c *callCtx) stop(why int32) {
	if c.why.CompareAndSwap(0, why) {
		close(c.done)
	}
}

// arm starts a call that must end by deadline, or when parent does; now is the time.
func (c *callCtx) arm(parent context.Context, now, deadline time.Time) {
	c.parent, c.deadline = parent, deadline
	if dl, ok := parent.Deadline(); ok && dl.Before(deadline) {
		c.deadline = dl
	}
	d := c.deadline.Sub(now)
	if c.timer == nil {
		c.timer = time.AfterFunc(d, func() { c.stop(stopDeadline) })
	} else {
		c.timer.Reset(d)
	}
	if parent.Done() != nil {
		c.unlink = context.AfterFunc(parent, func() {
			if errors.Is(parent.Err(), context.DeadlineExceeded) {
				c.stop(stopDeadline)
			} else {
				c.stop(stopCancel)
			}
		})
	}
}

// disarm ends a call and reports whether it was stopped (or is being stopped right now).
func (c *callCtx) disarm() (stopped bool) {
	if c.timer != nil && !c.timer.Stop() {
		stopped = true
	}
	if c.unlink != nil {
		if !c.unlink() {
			stopped = true
		}
		c.unlink = nil
	}
	c.parent = nil
	return stopped || c.why.Load() != 0
}

// stateOf returns the call a host function serves.
func stateOf(ctx context.Context) *callState {
	if c, ok := ctx.(*callCtx); ok {
		return c.st
	}
	st, _ := ctx.Value(stateKey{}).(*callState)
	return st
}

// ctxExit is the exit error wazero gives a call stopped by ctx.
func ctxExit(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return sysExit(true)
	}
	return sysExit(false)
}
