package bench

import (
	"fmt"
	"time"

	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// createActor creates an actor A of the bench guest and returns its handle at once; the actor
// starts in the background.
func (b *env) createActor() (int64, error) {
	id, err := b.eng.Actors().Create(b.ctx, b.job, &abi.ActorCreateRequest{Module: b.module, Actor: "A"}, host.Grants{})
	if err != nil {
		return 0, fmt.Errorf("create actor: %w", err)
	}
	return id, nil
}

// callNoop calls A.noop on actor id and returns the handle of its result.
func (b *env) callNoop(id int64) (int64, error) {
	h, err := b.eng.Actors().Call(b.job, id, "noop", nil)
	if err != nil {
		return 0, fmt.Errorf("call actor %d: %w", id, err)
	}
	return h, nil
}

// readyActors creates n actors and waits until each has answered a call.
func (b *env) readyActors(n int) ([]int64, error) {
	ids := make([]int64, n)
	for i := range ids {
		id, err := b.createActor()
		if err != nil {
			b.killActors(ids[:i])
			return nil, err
		}
		ids[i] = id
	}
	for _, id := range ids {
		h, err := b.callNoop(id)
		if err == nil {
			err = b.take(h, "ok")
		}
		if err != nil {
			b.killActors(ids)
			return nil, err
		}
	}
	return ids, nil
}

// killActors kills the actors and waits until none is alive, so that the next figure does not
// pay for their shutdown.
func (b *env) killActors(ids []int64) error {
	for _, id := range ids {
		if id != 0 {
			b.eng.Actors().Kill(b.job, id)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for b.eng.Stats().Actors > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d actors still alive a minute after being killed", b.eng.Stats().Actors)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// callGet calls A.noop on actor id inFlight times, then gets every result.
func (b *env) callGet(id int64, hs []int64) (int, error) {
	for i := range hs {
		h, err := b.callNoop(id)
		if err != nil {
			return 0, err
		}
		hs[i] = h
	}
	for _, h := range hs {
		if err := b.take(h, "ok"); err != nil {
			return 0, err
		}
	}
	return len(hs), nil
}

// actorCallsSync is Ray's `ray.get(actor.small_value.remote())` in a loop.
func actorCallsSync(b *env) (*Result, error) {
	ids, err := b.readyActors(1)
	if err != nil {
		return nil, err
	}
	defer b.killActors(ids)
	return b.syncFigure(fnANoop, func() (int64, error) { return b.callNoop(ids[0]) },
		"Engine.CallActor + Get + Release of A.noop on one actor, one at a time")
}

// actorCallsAsync is Ray's `ray.get([actor.small_value.remote() for _ in range(1000)])`.
func actorCallsAsync(b *env) (*Result, error) {
	ids, err := b.readyActors(1)
	if err != nil {
		return nil, err
	}
	defer b.killActors(ids)
	hs := make([]int64, inFlight)
	v, base, err := b.versus(fnANoop, 1, one(func() (int, error) { return b.callGet(ids[0], hs) }))
	if err != nil {
		return nil, err
	}
	return &Result{Value: v, Unit: UnitOps, Baseline: base,
		Notes: "1000 calls of A.noop queued on one actor, then each got and released; calls counted"}, nil
}

// actorCallsNN is Ray's n:n actor calls: Clients client goroutines, each with an actor of its
// own, making 1000 async calls at a time.
func actorCallsNN(b *env) (*Result, error) {
	n := b.opts.Clients
	ids, err := b.readyActors(n)
	if err != nil {
		return nil, err
	}
	defer b.killActors(ids)
	hs := make([][]int64, n)
	for i := range hs {
		hs[i] = make([]int64, inFlight)
	}
	v, base, err := b.versus(fnANoop, n, many(n, func(i int) (int, error) { return b.callGet(ids[i], hs[i]) }))
	if err != nil {
		return nil, err
	}
	return &Result{Value: v, Unit: UnitOps, Baseline: base,
		Notes: fmt.Sprintf("%d client goroutines, each with its own actor, 1000 calls in flight; calls counted", n)}, nil
}

// manyActors is Ray's "start 10k actors": create Actors actors and wait for each to answer one
// call. Its baseline is raw wazero instantiating the compiled guest as many times, each instance
// running A and A.noop and kept alive until the end, as the actors are; it runs before and after
// the actors, so that both see the same machine.
func manyActors(b *env) (*Result, error) {
	n := b.opts.Actors
	before, err := b.rawInstantiate(n)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	ids := make([]int64, n)
	for i := range ids {
		id, err := b.createActor()
		if err != nil {
			b.killActors(ids)
			return nil, err
		}
		ids[i] = id
	}
	hs := make([]int64, n)
	for i, id := range ids {
		h, err := b.callNoop(id)
		if err != nil {
			b.killActors(ids)
			return nil, err
		}
		hs[i] = h
	}
	for _, h := range hs {
		if err := b.take(h, "ok"); err != nil {
			b.killActors(ids)
			return nil, err
		}
	}
	el := time.Since(start)
	killStart := time.Now()
	if err := b.killActors(ids); err != nil {
		return nil, err
	}
	kill := time.Since(killStart)
	after, err := b.rawInstantiate(n)
	if err != nil {
		return nil, err
	}
	return &Result{Value: float64(n) / el.Seconds(), Unit: UnitActors,
		Baseline: &Figure{Name: "raw_wazero_instantiate", Value: float64(2*n) / (before + after).Seconds(), Unit: UnitActors,
			Notes: "instantiate the compiled guest on bare wazero and call A and A.noop, each instance kept alive; measured before and after the actors"},
		Extra: []Figure{{Name: "kill", Value: float64(n) / kill.Seconds(), Unit: UnitActors, Notes: "KillActor of every actor until none is alive"}},
		Notes: fmt.Sprintf("%d actors of the bench guest created, then one A.noop call each, until all answered", n)}, nil
}

// rawInstantiate instantiates the guest n times on raw wazero, runs A and A.noop on each and
// keeps them all alive; it returns how long that took, then closes them.
func (b *env) rawInstantiate(n int) (time.Duration, error) {
	insts := make([]*rawInstance, 0, n)
	defer func() {
		for _, in := range insts {
			in.close(b.ctx)
		}
	}()
	start := time.Now()
	for range n {
		in, err := b.raw.instance(b.ctx)
		if err != nil {
			return 0, err
		}
		insts = append(insts, in)
		if _, err := in.invoke(b.ctx, fnA, nil); err != nil {
			return 0, fmt.Errorf("raw A: %w", err)
		}
		if out, err := in.invoke(b.ctx, fnANoop, nil); err != nil || string(out) != "ok" {
			return 0, fmt.Errorf("raw A.noop: %q, %v", out, err)
		}
	}
	return time.Since(start), nil
}

// durableActorCall measures calls of a durable actor (abi.ActorCreateRequest.Durable: each
// call answered once the state __save returns after it is stored through raft) beside the same
// calls of a plain actor, in turns in the same run: calls per second and the latency of each,
// one call at a time.
func durableActorCall(b *env) (*Result, error) {
	plain, err := b.readyActors(1)
	if err != nil {
		return nil, err
	}
	defer b.killActors(plain)
	did, err := b.eng.Actors().Create(b.ctx, b.job, &abi.ActorCreateRequest{Module: b.module, Actor: "A", Durable: true}, host.Grants{})
	if err != nil {
		return nil, fmt.Errorf("create a durable actor: %w", err)
	}
	defer b.killActors([]int64{did})
	var dlat, plat latencies
	oneAtATime := func(id int64, lat *latencies) side {
		return one(func() (int, error) {
			t0 := time.Now()
			h, err := b.callNoop(id)
			if err == nil {
				err = b.take(h, "ok")
			}
			if err != nil {
				return 0, err
			}
			lat.add(time.Since(t0))
			return 1, nil
		}, lat)
	}
	v, base, err := compare(b.ctx, b.opts.Duration, oneAtATime(did, &dlat), oneAtATime(plain[0], &plat))
	if err != nil {
		return nil, err
	}
	hs := make([]int64, inFlight)
	async, err := rate(b.ctx, b.opts.Duration/2, one(func() (int, error) { return b.callGet(did, hs) }))
	if err != nil {
		return nil, err
	}
	return &Result{Value: v, Unit: UnitOps, Lat: dlat.summary(),
		Extra: []Figure{{Name: "durable_actor_calls_async", Value: async, Unit: UnitOps,
			Notes: "1000 calls of A.noop queued on the durable actor, then each got: the calls waiting in its mailbox share one commit (up to 256)"}},
		Baseline: &Figure{Name: "plain_actor_call", Value: base, Unit: UnitOps, Lat: plat.summary(),
			Notes: "the same A.noop calls on a plain actor, one at a time, measured in turns with the durable one"},
		Notes: "A.noop on a durable actor, one at a time: each call answered after A.__save's state is committed through the node's raft (one voter here, badger with synchronous writes); ratio = durable / plain calls per second"}, nil
}
