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
	unlink   func() bool  // stops the watch on parent

	// The deadline timer is not stopped and restarted per call: it stays armed and, when it
	// fires, stops the running call if that call is past its deadline, or re-arms for the
	// running call's deadline, or goes idle. A call re-arms it only for an earlier deadline.
	timer  *time.Timer
	dl     atomic.Int64 // the running call's deadline (Unix ns); 0: none running; -1: stopped by the timer
	fireAt atomic.Int64 // when the timer fires (Unix ns); 0: idle
}

const (
	stopDeadline int32 = 1 + iota
	stopCancel
)

func newCallCtx(st *callState) *callCtx {
	c := &callCtx{st: st, done: make(chan struct{})}
	c.timer = time.AfterFunc(time.Hour, c.tick)
	c.timer.Stop() // armed by the first call
	return c
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
	c.parent = parent
	if dl, ok := parent.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	c.deadline = deadline
	d := deadline.UnixNano()
	c.dl.Store(d)
	if f := c.fireAt.Load(); f == 0 || f > d {
		c.fireAt.Store(d)
		c.timer.Reset(deadline.Sub(now))
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

// tick runs when the timer fires, on the timer's goroutine.
func (c *callCtx) tick() {
	for {
		d := c.dl.Load()
		if d <= 0 { // no call running: go idle, unless one started meanwhile
			c.fireAt.Store(0)
			if c.dl.Load() <= 0 {
				return
			}
			continue
		}
		now := time.Now().UnixNano()
		if now >= d {
			if c.dl.CompareAndSwap(d, -1) {
				c.stop(stopDeadline)
			}
			c.fireAt.Store(0)
			return
		}
		c.fireAt.Store(d)
		c.timer.Reset(time.Duration(d - now))
		return
	}
}

// disarm ends a call and reports whether it was stopped (or is being stopped right now).
func (c *callCtx) disarm() (stopped bool) {
	if c.dl.Swap(0) == -1 {
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
