package bench

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// putCalls is Ray's `ray.put(0)` in a loop: Engine.Put of a 2-byte value, released at once (a
// dropped ObjectRef in Ray frees its object too).
func putCalls(b *env) (*Result, error) {
	val := []byte("ok")
	v, err := rate(b.ctx, b.opts.Duration, one(func() (int, error) {
		for range inFlight {
			h, err := b.eng.Objects().Put(b.job, val)
			if err != nil {
				return 0, fmt.Errorf("put: %w", err)
			}
			if err := b.eng.Objects().Release(b.job, h); err != nil {
				return 0, fmt.Errorf("release: %w", err)
			}
		}
		return inFlight, nil
	}))
	if err != nil {
		return nil, err
	}
	return &Result{Value: v, Unit: UnitOps, Notes: "Engine.Put + Release of a 2-byte value"}, nil
}

// getCalls is Ray's `ray.get(ref)` of a small object in a loop.
func getCalls(b *env) (*Result, error) {
	h, err := b.eng.Objects().Put(b.job, []byte("ok"))
	if err != nil {
		return nil, fmt.Errorf("put: %w", err)
	}
	defer b.eng.Objects().Release(b.job, h)
	v, err := rate(b.ctx, b.opts.Duration, one(func() (int, error) {
		for range inFlight {
			out, err := b.eng.Objects().Get(b.ctx, b.job, h, -1)
			if err != nil {
				return 0, fmt.Errorf("get: %w", err)
			}
			if len(out) != 2 {
				return 0, fmt.Errorf("get returned %q", out)
			}
		}
		return inFlight, nil
	}))
	if err != nil {
		return nil, err
	}
	return &Result{Value: v, Unit: UnitOps, Notes: "Engine.Get of a ready 2-byte object"}, nil
}

// putGigabytes is Ray's put of a large array, in GB/s, beside a Go copy of the same bytes. Its
// value is a put over the REST API on loopback, the path that moves the bytes from a client
// into the store; Engine.Put in process takes the caller's slice without copying, so its
// figure is reported as an extra, in puts per second.
func putGigabytes(b *env) (*Result, error) {
	size := b.opts.PutBytes
	src := make([]byte, size)
	for i := range src {
		src[i] = byte(i*7 + 1)
	}
	gb := float64(size) / 1e9

	rs, err := b.restServer()
	if err != nil {
		return nil, err
	}
	dst := make([]byte, size)
	memcpy := one(func() (int, error) {
		copy(dst, src)
		return 1, nil
	})
	var lat latencies
	put := one(func() (int, error) {
		t0 := time.Now()
		h, err := rs.put(b.ctx, b.job, src)
		if err != nil {
			return 0, fmt.Errorf("REST put of %d bytes: %w", size, err)
		}
		lat.add(time.Since(t0))
		if err := b.eng.Objects().Release(b.job, h); err != nil {
			return 0, fmt.Errorf("release: %w", err)
		}
		return 1, nil
	}, &lat)
	rest, base, err := compare(b.ctx, b.opts.Duration, put, memcpy)
	if err != nil {
		return nil, err
	}

	inproc, err := rate(b.ctx, b.opts.Duration/4, one(func() (int, error) {
		h, err := b.eng.Objects().Put(b.job, src)
		if err != nil {
			return 0, fmt.Errorf("put: %w", err)
		}
		if err := b.eng.Objects().Release(b.job, h); err != nil {
			return 0, fmt.Errorf("release: %w", err)
		}
		return 1, nil
	}))
	if err != nil {
		return nil, err
	}
	return &Result{Value: rest * gb, Unit: UnitGBs, Lat: lat.summary(),
		Baseline: &Figure{Name: "go_copy", Value: base * gb, Unit: UnitGBs, Notes: "copy() of the same bytes into a preallocated slice"},
		Goal:     base * gb / 2,
		Extra: []Figure{{Name: "engine_put_in_process", Value: inproc, Unit: UnitOps,
			Notes: "Engine.Put + Release of the same object in process: Put takes ownership of the caller's slice without copying, so this is bookkeeping, not bandwidth"}},
		Notes: fmt.Sprintf("POST /v1/objects of %d MiB over loopback HTTP into the store, then released; goal is half the same run's copy bandwidth", size>>20)}, nil
}

// getGigabytes is the get of a large object, in GB/s, beside a Go copy of the same bytes: a GET
// /v1/objects/{ref} of a GetBytes object (1 GiB by default) over loopback HTTP, read into a
// preallocated buffer as a client that knows the size does. The node computes the value's
// CRC-32C for every GET (the checksum other nodes check), which is part of the figure.
// Engine.Get in process hands out the stored slice without copying: an extra, in gets per
// second.
func getGigabytes(b *env) (*Result, error) {
	size := b.opts.GetBytes
	src := make([]byte, size)
	for i := range src {
		src[i] = byte(i*11 + 3)
	}
	gb := float64(size) / 1e9
	rs, err := b.restServer()
	if err != nil {
		return nil, err
	}
	h, err := b.eng.Objects().Put(b.job, src)
	if err != nil {
		return nil, fmt.Errorf("put of %d bytes: %w", size, err)
	}
	defer b.eng.Objects().Release(b.job, h)
	dst := make([]byte, size)
	memcpy := one(func() (int, error) {
		copy(dst, src)
		return 1, nil
	})
	url := fmt.Sprintf("%s/v1/objects/%d?job=%s", rs.c.URL, h, b.job)
	var lat latencies
	get := one(func() (int, error) {
		t0 := time.Now()
		req, err := http.NewRequestWithContext(b.ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+rs.c.Token)
		resp, err := rs.c.HTTP.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(size) {
			return 0, fmt.Errorf("GET object: status %d, %d bytes announced of %d", resp.StatusCode, resp.ContentLength, size)
		}
		if _, err := io.ReadFull(resp.Body, dst); err != nil {
			return 0, fmt.Errorf("GET object: %w", err)
		}
		lat.add(time.Since(t0))
		return 1, nil
	}, &lat)
	rest, base, err := compare(b.ctx, b.opts.Duration, get, memcpy)
	if err != nil {
		return nil, err
	}
	inproc, err := rate(b.ctx, b.opts.Duration/4, one(func() (int, error) {
		out, err := b.eng.Objects().Get(b.ctx, b.job, h, -1)
		if err != nil || len(out) != size {
			return 0, fmt.Errorf("get: %d bytes, %v", len(out), err)
		}
		return 1, nil
	}))
	if err != nil {
		return nil, err
	}
	return &Result{Value: rest * gb, Unit: UnitGBs, Lat: lat.summary(),
		Baseline: &Figure{Name: "go_copy", Value: base * gb, Unit: UnitGBs, Notes: "copy() of the same bytes into a preallocated slice"},
		Extra: []Figure{{Name: "engine_get_in_process", Value: inproc, Unit: UnitOps,
			Notes: "Engine.Get of the same object in process: it hands out the stored slice without copying, so this is bookkeeping, not bandwidth"}},
		Notes: fmt.Sprintf("GET /v1/objects/{ref} of %d MiB over loopback HTTP (checksummed by the node) into a preallocated buffer", size>>20)}, nil
}

// placementGroups is Ray's placement_group_create/removal: a group of one small bundle created
// (until its node has reserved it) and removed, by Clients goroutines at once. On one node each op
// commits two raft writes, fsynced: the group with this node's reservation, and the removal.
func placementGroups(b *env) (*Result, error) {
	spec := engine.PlacementGroupSpec{Bundles: []scheduler.Resources{{scheduler.CPU: 0.001}}}
	var lat latencies
	v, err := rate(b.ctx, b.opts.Duration, many(b.opts.Clients, func(int) (int, error) {
		t0 := time.Now()
		pg, err := b.eng.Groups().Create(b.ctx, spec, true)
		if err != nil {
			return 0, fmt.Errorf("create: %w", err)
		}
		if err := b.eng.Groups().Remove(b.ctx, pg.ID); err != nil {
			return 0, fmt.Errorf("remove: %w", err)
		}
		lat.add(time.Since(t0))
		return 1, nil
	}, &lat))
	if err != nil {
		return nil, err
	}
	return &Result{Value: v, Unit: UnitOps, Lat: lat.summary(), Notes: fmt.Sprintf(
		"create (until reserved) + remove of a one-bundle group, %d clients; two fsynced raft commits per op", b.opts.Clients)}, nil
}

// wait1k is Ray's "single client wait 1k refs": 1000 noop tasks submitted, then ray.wait with
// num_returns=1 on what is not ready, until nothing is left. One op is the whole round.
func wait1k(b *env) (*Result, error) {
	req := b.noopTask()
	hs := make([]int64, inFlight)
	var lat latencies
	v, err := rate(b.ctx, b.opts.Duration, one(func() (int, error) {
		t0 := time.Now()
		for i := range hs {
			h, err := b.eng.Tasks().Submit(b.ctx, b.job, req, host.Grants{})
			if err != nil {
				return 0, fmt.Errorf("submit: %w", err)
			}
			hs[i] = h
		}
		notReady := hs
		for len(notReady) > 0 {
			res, err := b.eng.Objects().Wait(b.ctx, b.job, &abi.WaitRequest{Handles: notReady, NumReturns: 1, TimeoutMs: -1})
			if err != nil {
				return 0, fmt.Errorf("wait: %w", err)
			}
			if len(res.Ready) != 1 || len(res.NotReady) != len(notReady)-1 {
				return 0, fmt.Errorf("wait of %d handles for 1 returned %d ready and %d not", len(notReady), len(res.Ready), len(res.NotReady))
			}
			notReady = res.NotReady
		}
		lat.add(time.Since(t0))
		for _, h := range hs {
			if err := b.take(h, "ok"); err != nil {
				return 0, err
			}
		}
		return 1, nil
	}, &lat))
	if err != nil {
		return nil, err
	}
	return &Result{Value: v, Unit: UnitOps, Lat: lat.summary(),
		Notes: "one op: 1000 noop tasks submitted, then Engine.Wait(num_returns=1) on the rest until none is left; latency excludes the gets"}, nil
}
