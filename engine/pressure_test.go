package engine_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// The tests below hold the engine under pressure from its own jobs: what a task starts ends
// with it, and one job cannot take the node from another.

func callIn(e *engine.Engine, job, fn, in string, lim host.Limits) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := e.Tasks().Call(ctx, engine.CallRequest{Job: job, Module: "svc", Function: fn, Input: []byte(in), Grants: allCaps, Limits: lim})
	if err != nil {
		return "", err
	}
	return string(res.Output), nil
}

// TestPressure_ChildrenEndWithAFailedParent: a task that fails, or runs out of time, ends the
// tasks it started (they inherit its deadline); a detached child runs on. Before, a spinning
// child ran on to its own time limit after its parent had failed.
func TestPressure_ChildrenEndWithAFailedParent(t *testing.T) {
	e := sharedEngine(t)
	sfx := runSuffix()
	if _, err := callIn(e, "orphans"+sfx, "orphan", "0", host.Limits{}); err == nil {
		t.Fatal("orphan returned no error")
	}
	waitFor(t, 5*time.Second, "the failed parent's spinning child ends", func() bool { return e.Tasks().Load("orphans"+sfx).Tasks == 0 })

	// The parent asks a minute for its child and has two seconds itself: both end at two.
	start := time.Now()
	_, err := callIn(e, "inherits"+sfx, "inherit", "0", host.Limits{Timeout: 2 * time.Second})
	var ae *abi.Error
	if !errors.As(err, &ae) || ae.Limit != abi.LimitDeadline {
		t.Fatalf("inherit with 2s: %v, want its deadline", err)
	}
	waitFor(t, 5*time.Second, "the child that inherited the deadline ends", func() bool { return e.Tasks().Load("inherits"+sfx).Tasks == 0 })
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("the child ran %v, past its parent's deadline of 2s", d)
	}

	if _, err := callIn(e, "detached"+sfx, "orphan", "1", host.Limits{}); err == nil {
		t.Fatal("orphan returned no error")
	}
	time.Sleep(500 * time.Millisecond)
	if n := e.Tasks().Load("detached" + sfx).Tasks; n != 1 {
		t.Fatalf("detached child: %d tasks of its job run, want it running on", n)
	}
}

// TestPressure_JobEndEndsWhatItStarted: the children a job's root leaves running end when the
// job ends; stopping the job after its root returned releases what it still holds.
func TestPressure_JobEndEndsWhatItStarted(t *testing.T) {
	e := sharedEngine(t)
	ctx := context.Background()
	id := "spawner" + runSuffix()
	j, err := e.Jobs().Submit(ctx, taskJob(id, "", "spawn", "2"))
	if err != nil {
		t.Fatal(err)
	}
	if j = waitJobEnd(t, e, j.ID); j.Status != engine.JobSucceeded {
		t.Fatalf("spawner: %+v", j)
	}
	waitFor(t, 10*time.Second, "the children of a job that ended end", func() bool { return e.Tasks().Load(id).Tasks == 0 })
	if !e.Tasks().Load(id).Ended {
		t.Fatal("the node takes tasks of a job that ended")
	}
	stopped, err := e.Jobs().Stop(ctx, id)
	if err != nil || stopped.Status != engine.JobSucceeded || !stopped.Released {
		t.Fatalf("stop after its root returned: %+v, %v; want SUCCEEDED and released", stopped, err)
	}
	if _, err := e.Jobs().Stop(ctx, id); err != nil {
		t.Fatalf("stopping a released job again: %v", err)
	}
}

// TestPressure_ForkBombStaysWithinItsQuota: a task that submits two copies of itself and waits
// for both is held to its job's quota on the node and fails with limit_exceeded naming it; a
// trivial task of another job keeps running meanwhile, and nothing of the bomb outlives it.
func TestPressure_ForkBombStaysWithinItsQuota(t *testing.T) {
	e := sharedEngine(t)
	q := engine.Quota{Tasks: 300, Waiting: 64}
	spec := taskJob("bomb"+runSuffix(), "", "bomb", "0")
	spec.Quota = q
	bomb, err := e.Jobs().Submit(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	id, peak := bomb.ID, 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		bomb = waitJobEnd(t, e, id)
	}()
	canaries := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		if l := e.Tasks().Load(id); l.Tasks > peak {
			peak = l.Tasks
		}
		if got, err := callIn(e, "canary", "square", "9", host.Limits{}); err != nil || got != "81" {
			t.Fatalf("canary during the bomb: %q, %v", got, err)
		}
		canaries++
	}
	if bomb.Status != engine.JobFailed || bomb.Error == nil || bomb.Error.Kind != abi.KindGuest && bomb.Error.Kind != abi.KindLimit {
		t.Fatalf("bomb: %+v, want it failed on its quota", bomb)
	}
	if peak > q.Tasks {
		t.Fatalf("the bomb held %d tasks at once, over its quota of %d", peak, q.Tasks)
	}
	waitFor(t, 10*time.Second, "the bomb's tasks end with its root", func() bool { return e.Tasks().Load(id).Tasks == 0 })
	t.Logf("bomb: %s; peak %d tasks; %d canary calls ran meanwhile", bomb.Message, peak, canaries)
	if canaries == 0 {
		t.Fatal("no canary ran while the bomb did")
	}
}

// TestPressure_QuotaRefusalIs429 checks the one mapping: a quota refusal is 429, a sandbox
// limit 422.
func TestPressure_QuotaRefusalIs429(t *testing.T) {
	if s := (&wire.Error{Kind: wire.KindLimit, Limit: abi.QuotaJobTasks}).Status(); s != 429 {
		t.Fatalf("quota: %d", s)
	}
	if s := (&wire.Error{Kind: wire.KindLimit, Limit: abi.LimitMemory}).Status(); s != 422 {
		t.Fatalf("sandbox limit: %d", s)
	}
}

// TestPressure_GuestSubmitBacksOffOnAFullQuota: a guest whose task_submit meets its job's
// tasks quota is held back (the host retries with backoff) instead of failed: a fan-out of six
// under a quota of two tasks in flight completes.
func TestPressure_GuestSubmitBacksOffOnAFullQuota(t *testing.T) {
	e := sharedEngine(t)
	spec := taskJob("narrow"+runSuffix(), "", "fanout", `{"N":6}`)
	spec.Quota = engine.Quota{Tasks: 2}
	j, err := e.Jobs().Submit(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if j = waitJobEnd(t, e, j.ID); j.Status != engine.JobSucceeded {
		t.Fatalf("fan-out of six under a quota of two: %s %s", j.Status, j.Message)
	}
	out, err := e.Jobs().Result(context.Background(), j.ID)
	if err != nil || string(out) != "55" {
		t.Fatalf("result %s, %v; want 55", out, err)
	}
}
