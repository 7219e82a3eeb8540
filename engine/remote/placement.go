package remote

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/lumenflow/lumen/engine/objects"
	"github.com/lumenflow/lumen/engine/peer"
	"github.com/lumenflow/lumen/engine/tasks"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Tasks placed across nodes, as in Ray: package engine/cluster picks the node (from the leader's
// view of the live nodes) and package engine/tasks decides and retries; RunOn is how a task runs
// on the node chosen, over the node-to-node protocol. The node that accepted a task owns it: it
// keeps its result object, and when the node running the task dies it runs the task again
// elsewhere (at-least-once execution, exactly-once result).

// RunOn places t on node (its peer routes) and waits there until its result is ready, which
// stays there: RunOn returns where. An error that is not an *abi.Error means the node failed (unreachable,
// dead): the caller places the task again.
func (p *Plane) RunOn(ctx context.Context, node string, t *tasks.Placed) (*objects.Location, error) {
	rec, err := p.d.Cluster.Member(node)
	if err != nil {
		return nil, err
	}
	api := strings.TrimRight(rec.API, "/")
	remote, err := p.ShipRefs(ctx, t.Job, t.Refs)
	if err != nil {
		return nil, tasks.AsABIError(err)
	}
	sub, err := p.d.Peer.SubmitTask(ctx, api, &wire.PlacedTask{
		Task: abi.TaskRequest{Module: t.Digest, Function: t.Function, Args: t.Args, ArgsBytes: t.ArgsBytes, Refs: t.Refs, TimeoutMs: t.TimeoutMs,
			MaxRetries: &t.Retries, RetryGuestErrors: t.RetryGuest},
		Job: t.Job, Grants: t.Grants, PlacementGroup: t.Group, BundleIndex: t.Bundle, RemoteRefs: remote, Owner: p.d.NodeID,
		Applied: p.d.Cluster.Raft().KV().Applied()})
	if err != nil {
		return nil, remoteError(err)
	}
	loc := &objects.Location{Node: node, API: api, Job: sub.Job, Handle: sub.Ref, Size: -1, Owned: true}
	release := func() { p.d.Objects.ReleaseRemote(*loc) }
	// Wait for the result, a few seconds at a time, so a node that dies is noticed.
	slow := false
	ccfg := p.d.Cluster.Config()
	beat, _ := ccfg.Intervals()
	for {
		if p.d.Cluster.IsDead(node) {
			return nil, fmt.Errorf("node %s was declared dead", node)
		}
		if ctx.Err() != nil {
			// Cancelled: cancel it there too, and let it go.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			p.d.Peer.CancelTask(cctx, api, sub.Job, sub.Ref)
			cancel()
			release()
			return nil, ctx.Err()
		}
		m, err := p.d.Peer.ObjectMeta(ctx, api, sub.Job, sub.Ref, 2*time.Second)
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
			// No answer is not a death: a busy or paused node answers late, and running the task
			// again elsewhere would run it twice. Only the cluster declares a node dead (checked
			// at the top of the loop); until then, ask again after a pause.
			if !slow {
				p.d.Log.Warn("placed task's node does not answer; waiting for it (it is not declared dead)", "node", node, "function", t.Function, "err", err)
				slow = true
			}
			select {
			case <-ctx.Done():
			case <-time.After(beat):
			}
			continue
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
