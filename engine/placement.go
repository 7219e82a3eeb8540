package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lumenflow/lumen/engine/objects"
	"github.com/lumenflow/lumen/engine/peer"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Tasks placed across nodes, as in Ray: package engine/cluster picks the node (from the leader's
// view of the live nodes); the node that accepted a task owns it: it keeps its result object,
// and when the node running the task dies it runs the task again elsewhere (at-least-once
// execution, exactly-once result).

// remoteTask is a task this node placed on another: enough to submit it again elsewhere.
type remoteTask struct {
	job, digest, function string
	args                  json.RawMessage
	argsBytes             []byte
	grants                []abi.Capability
	timeoutMs             int64
	retries               int
	retryGuest            bool
	demand                scheduler.Resources
	// group and bundle, when group is set, run the task in that bundle of a placement group.
	group  string
	bundle int
	// refs are the objects (this node's handles) the task reads; the task holds them while it
	// runs, and its result for as long as it lives.
	refs []int64
}

// placedOutcome is what a placed task made: its value here (it ran here after all) or where it
// lives.
type placedOutcome struct {
	data []byte
	loc  *objects.Location
}

// runRemote runs t on node first and, when a node fails or dies under it, on another, until
// t.retries are spent; then completes obj with the result. obj holds t's arguments for as long
// as it lives, so that it can be rebuilt from them (its lineage).
func (e *Engine) runRemote(ctx context.Context, obj *objects.Object, first string, t remoteTask) {
	out, err := e.execPlaced(ctx, first, t, nil)
	switch {
	case err != nil:
		e.objects.ReleaseAll(t.refs)
		e.objects.Complete(obj, nil, err)
	case out.loc != nil:
		e.objects.Adopt(obj, t.refs)
		e.objects.CompleteRemote(obj, out.loc, &t)
	default:
		e.objects.ReleaseAll(t.refs)
		e.objects.Complete(obj, out.data, nil)
	}
}

// execPlaced runs t on node first ("": here) and, when a node fails or dies under it, on
// another, until t.retries are spent. Its error is an *abi.Error.
func (e *Engine) execPlaced(ctx context.Context, first string, t remoteTask, exclude map[string]bool) (placedOutcome, error) {
	if exclude == nil {
		exclude = map[string]bool{}
	}
	node := first
	var last error
	for attempt := 0; attempt <= t.retries; attempt++ {
		if attempt > 0 {
			e.live.retried.Add(1)
			node = e.cluster.PlaceOrQueue(t.demand, exclude)
		}
		var out placedOutcome
		var err error
		if node == "" {
			out.data, err = e.runHere(ctx, t)
		} else {
			out.loc, err = e.runOn(ctx, node, t)
		}
		var ae *abi.Error
		switch {
		case err == nil:
			return out, nil
		case errors.As(err, &ae):
			return out, ae // the task's own outcome
		case ctx.Err() != nil:
			return out, &abi.Error{Kind: abi.KindCancelled, Message: "task cancelled"}
		}
		last = err
		if node != "" {
			exclude[node] = true
		}
		e.log.Warn("placed task failed on its node; running it again elsewhere", "node", node, "function", t.function, "err", err)
	}
	return placedOutcome{}, &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("task %s: every node it was placed on failed (last: %v)", t.function, last)}
}

// runHere runs a placed task on this node after all (no other node has room).
func (e *Engine) runHere(ctx context.Context, t remoteTask) ([]byte, error) {
	req := &abi.TaskRequest{Function: t.function, Args: t.args, ArgsBytes: t.argsBytes, Refs: t.refs, TimeoutMs: t.timeoutMs, MaxRetries: &t.retries, RetryGuestErrors: t.retryGuest}
	h, err := e.submitRequest(ctx, t.job, t.digest, req, host.Grants{Capabilities: t.grants}, host.Limits{})
	if err != nil {
		return nil, err
	}
	defer e.objects.Release(t.job, h)
	return e.objects.Get(ctx, t.job, h, -1)
}

// runOn places t on node (its peer routes) and waits there until its result is ready, which
// stays there: runOn returns where. An error that is not an *abi.Error means the node failed (unreachable,
// dead): the caller places the task again.
func (e *Engine) runOn(ctx context.Context, node string, t remoteTask) (*objects.Location, error) {
	rec, err := e.cluster.Member(node)
	if err != nil {
		return nil, err
	}
	api := strings.TrimRight(rec.API, "/")
	remote, err := e.shipRefs(ctx, t.job, t.refs)
	if err != nil {
		return nil, asABIError(err)
	}
	sub, err := e.live.peer.SubmitTask(ctx, api, &wire.PlacedTask{
		Task: abi.TaskRequest{Module: t.digest, Function: t.function, Args: t.args, ArgsBytes: t.argsBytes, Refs: t.refs, TimeoutMs: t.timeoutMs,
			MaxRetries: &t.retries, RetryGuestErrors: t.retryGuest},
		Job: t.job, Grants: t.grants, PlacementGroup: t.group, BundleIndex: t.bundle, RemoteRefs: remote, Owner: e.nodeID(),
		Applied: e.node.KV().Applied()})
	if err != nil {
		return nil, remoteError(err)
	}
	loc := &objects.Location{Node: node, API: api, Job: sub.Job, Handle: sub.Ref, Size: -1, Owned: true}
	release := func() { e.objects.ReleaseRemote(*loc) }
	// Wait for the result, a few seconds at a time, so a node that dies is noticed.
	for {
		if e.cluster.IsDead(node) {
			return nil, fmt.Errorf("node %s was declared dead", node)
		}
		if ctx.Err() != nil {
			// Cancelled: cancel it there too, and let it go.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			e.live.peer.CancelTask(cctx, api, sub.Job, sub.Ref)
			cancel()
			release()
			return nil, ctx.Err()
		}
		m, err := e.live.peer.ObjectMeta(ctx, api, sub.Job, sub.Ref, 2*time.Second)
		we, answered := peer.IsAnswer(err)
		switch {
		case err == nil:
			loc.Size, loc.Sum = m.Size, m.Checksum
			return loc, nil
		case answered && we.Kind == wire.KindNotReady:
			continue
		case !answered && ctx.Err() != nil:
			continue
		case !answered:
			// The task runs again elsewhere: if this node is only out of reach for a while, the
			// result it may still make there is not wanted (released when the node answers).
			release()
			return nil, err
		default:
			err := remoteError(err)
			var ae *abi.Error
			if errors.As(err, &ae) {
				release() // the task's error: nothing to keep there
			}
			return nil, err
		}
	}
}

// remoteError turns another node's error answer into the task's *abi.Error when it is the
// task's outcome (a 4xx: the node ran or refused the task), or into a node failure (5xx, 421,
// no answer), which the owner answers by placing the task again.
func remoteError(err error) error {
	we, answered := peer.IsAnswer(err)
	if !answered {
		return err
	}
	if status := we.Kind.Status(); status >= 500 || status == http.StatusMisdirectedRequest {
		return fmt.Errorf("node answered %d: %s", status, we.Message)
	}
	return &abi.Error{Kind: abi.ErrorKind(we.Kind), Message: we.Message, Limit: we.Limit, Code: we.Code}
}

// maxRemoteResult caps a result fetched from another node.
const maxRemoteResult = 1 << 30

// submitPlaced places a task submitted to this node from outside. It returns ok false when the
// task should run here (it fits here, passes objects by reference, or no other node has room).
func (e *Engine) submitPlaced(ctx context.Context, job string, req *abi.TaskRequest, grants host.Grants) (h int64, ok bool, err error) {
	if !e.cluster.Peers() || len(grants.Dirs) > 0 || grants.Env != nil {
		return 0, false, nil
	}
	fn, err := e.function(ctx, req.Module, req.Function, abi.KindTask)
	if err != nil {
		return 0, true, err
	}
	d := demand(req.Resources, fn.hints)
	node := e.cluster.PlaceOrQueue(d, nil)
	if node == "" {
		return 0, false, nil
	}
	m, err := e.reg.Resolve(req.Module)
	if err != nil {
		return 0, true, err
	}
	t := remoteTask{job: job, digest: m.Digest, function: req.Function, args: req.Args, argsBytes: req.ArgsBytes,
		grants: grants.Capabilities, timeoutMs: req.TimeoutMs, retries: retriesOr(req.MaxRetries), retryGuest: req.RetryGuestErrors, demand: d,
		refs: slices.Clone(req.Refs)}
	if err := e.objects.Retain(job, t.refs); err != nil {
		return 0, true, err
	}
	h, obj := e.objects.Pending(job)
	tctx, cancel := context.WithCancel(e.ctx)
	obj.Cancel = cancel
	e.live.placedOut.Add(1)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer cancel()
		e.runRemote(tctx, obj, node, t)
	}()
	return h, true, nil
}
