package tasks

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/sdk/abi"
)

// TestPool_JobsTakeTurns: a job with many waiters delays another job's waiter by one of its
// own, not by all of them.
func TestPool_JobsTakeTurns(t *testing.T) {
	one := scheduler.Resources{scheduler.CPU: 1}
	p := NewPool(one)
	if err := p.Acquire(context.Background(), one); err != nil {
		t.Fatal(err)
	}
	order := make(chan string, 8)
	// Enqueue in a known order: five of flood, then one of canary.
	for i := range 5 {
		go acquireInto(p, "flood", one, order, "flood")
		waitFor(t, func() bool { return p.Queued() == i+1 })
	}
	go acquireInto(p, "canary", one, order, "canary")
	waitFor(t, func() bool { return p.Queued() == 6 })
	var got []string
	for range 6 {
		p.Release(one)
		got = append(got, <-order)
	}
	if got[0] != "flood" || got[1] != "canary" {
		t.Fatalf("grant order %v: the canary should be served second", got)
	}
}

func acquireInto(p *Pool, job string, d scheduler.Resources, out chan<- string, name string) {
	if p.AcquireFor(context.Background(), job, d) == nil {
		out <- name
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPool_BoundedQueueRefusesAtOnce: past its bound, the pool refuses with the node_queue quota
// instead of queueing; a call given its resources back (Reacquire) is never refused.
func TestPool_BoundedQueueRefusesAtOnce(t *testing.T) {
	one := scheduler.Resources{scheduler.CPU: 1}
	p := NewPool(one)
	p.SetMaxQueued(2)
	p.Acquire(context.Background(), one)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range 2 {
		go p.AcquireFor(ctx, "a", one)
		waitFor(t, func() bool { return p.Queued() == i+1 })
	}
	err := p.AcquireFor(ctx, "b", one)
	var ae *abi.Error
	if !errors.As(err, &ae) || ae.Kind != abi.KindLimit || ae.Limit != abi.QuotaNodeQueue {
		t.Fatalf("third waiter: %v, want limit_exceeded (node_queue)", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Reacquire(ctx, "b", one) }()
	waitFor(t, func() bool { return p.Queued() == 3 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("reacquire: %v, want it queued until cancelled", err)
	}
}

// TestAdmission_Quotas: a job's tasks in flight, waiting calls and submission rate are capped
// on the node, each refusal naming its quota; an ended job refuses everything.
func TestAdmission_Quotas(t *testing.T) {
	n := newNode(t, 1)
	p := n.p
	p.SetQuota("q", Quota{Tasks: 2, Waiting: 1, SubmitRate: 0.01, SubmitBurst: 3})
	a, err := p.admit("q")
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.admit("q")
	if err != nil {
		t.Fatal(err)
	}
	wantQuota(t, "third task", func() error { _, err := p.admit("q"); return err }(), abi.QuotaJobTasks)
	p.done(a)
	p.done(b)
	// A third admitted spends the burst of three (the refused one took none): the next comes
	// too soon.
	c, err := p.admit("q")
	if err != nil {
		t.Fatal(err)
	}
	p.done(c)
	_, err = p.admit("q")
	wantQuota(t, "fourth submission in a burst of three", err, abi.QuotaJobSubmitRate)
	if l := p.Load("q"); l.Tasks != 0 {
		t.Fatalf("load %+v after every task ended", l)
	}

	release := make(chan struct{})
	go p.Wait("q", func() error { <-release; return nil })
	waitFor(t, func() bool { return p.Load("q").Waiting == 1 })
	wantQuota(t, "second waiting call", p.Wait("q", func() error { return nil }), abi.QuotaJobWaiting)
	close(release)
	waitFor(t, func() bool { return p.Load("q").Waiting == 0 })

	p.EndJob("q", nil)
	_, err = p.admit("q")
	var ae *abi.Error
	if !errors.As(err, &ae) || ae.Kind != abi.KindCancelled {
		t.Fatalf("task of an ended job: %v, want cancelled", err)
	}
	if other, err := p.admit("other"); err != nil {
		t.Fatalf("another job: %v", err)
	} else {
		p.done(other)
	}
}

func wantQuota(t *testing.T, what string, err error, quota string) {
	t.Helper()
	var ae *abi.Error
	if !errors.As(err, &ae) || ae.Kind != abi.KindLimit || ae.Limit != quota {
		t.Fatalf("%s: %v, want limit_exceeded (%s)", what, err, quota)
	}
}

// TestEndJob_CancelsItsRunningTasks: ending a job ends its tasks here, however they came in; the
// results say cancelled.
func TestEndJob_CancelsItsRunningTasks(t *testing.T) {
	n := newNode(t, 2)
	h, err := n.p.Submit(context.Background(), &Spec{Job: "j", Module: "svc", Function: "spin", Args: []byte("0"), TimeoutMs: 60_000, Grants: grants})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return n.p.Counts().Ran == 1 })
	n.p.EndJob("j", errors.New("stopped by the test"))
	_, err = n.get(t, "j", h)
	var ae *abi.Error
	if !errors.As(err, &ae) || ae.Kind != abi.KindCancelled {
		t.Fatalf("spinning task of an ended job: %v, want cancelled", err)
	}
	waitFor(t, func() bool { return n.p.Load("j").Tasks == 0 })
}

// TestBound_ChildInheritsDeadlineAndTimeoutIsCapped: a task submitted by a call ends by that
// call's deadline unless detached; a timeout over the node's cap is refused.
func TestBound_ChildInheritsDeadlineAndTimeoutIsCapped(t *testing.T) {
	p := &Pipeline{Deps: Deps{DefaultTimeout: 30 * time.Second, MaxTimeout: time.Hour}}
	parent := &Scope{Deadline: time.Now().Add(2 * time.Second)}
	s := &Spec{TimeoutMs: 60_000, Parent: parent}
	if err := p.bound(s); err != nil || s.TimeoutMs > 2000 || s.TimeoutMs < 1000 {
		t.Fatalf("child asking a minute of a call with 2s left: timeout %dms, %v", s.TimeoutMs, err)
	}
	s = &Spec{Parent: parent}
	if err := p.bound(s); err != nil || s.TimeoutMs > 2000 {
		t.Fatalf("child with the default timeout: %dms, %v", s.TimeoutMs, err)
	}
	s = &Spec{TimeoutMs: 60_000, Parent: parent, Detached: true}
	if err := p.bound(s); err != nil || s.TimeoutMs != 60_000 {
		t.Fatalf("detached child: %dms, %v", s.TimeoutMs, err)
	}
	s = &Spec{TimeoutMs: 2 * 3600_000}
	if err := p.bound(s); err == nil {
		t.Fatal("a two-hour timeout on a node capped at one was accepted")
	}
	s = &Spec{Parent: &Scope{Deadline: time.Now().Add(-time.Second)}}
	var ae *abi.Error
	if err := p.bound(s); !errors.As(err, &ae) || ae.Limit != abi.LimitDeadline {
		t.Fatalf("child of a call past its deadline: %v", err)
	}
}
