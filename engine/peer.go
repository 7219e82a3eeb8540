package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lumenflow/lumen/engine/cluster"
	"github.com/lumenflow/lumen/engine/peer"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/raftstore"
	"github.com/lumenflow/lumen/sdk/abi"
)

// peerHandler is this node's side of the node-to-node protocol (package engine/peer): what the
// cluster's other nodes ask of it. The public API never reaches these methods.
type peerHandler struct{ e *Engine }

// Peer returns the handler of the node-to-node routes, which the API server mounts with
// PeerCredential.
func (e *Engine) Peer() peer.Handler { return peerHandler{e} }

// PeerCredential returns the credential this cluster's nodes present to each other's peer routes
// (derived from the join token).
func (e *Engine) PeerCredential() string { return peer.Credential(e.cfg.Cluster.JoinToken) }

func (p peerHandler) SubmitPlaced(ctx context.Context, t *wire.PlacedTask) (wire.Submitted, error) {
	e := p.e
	grants := host.Grants{Capabilities: t.Grants}
	var h int64
	var err error
	if t.PlacementGroup != "" {
		h, err = e.Tasks().InGroup(ctx, t.Job, &t.Task, grants, t.PlacementGroup, t.BundleIndex, t.RemoteRefs)
	} else {
		h, err = e.Tasks().here(ctx, t.Job, &t.Task, grants, t.Applied, t.RemoteRefs)
	}
	if err != nil {
		return wire.Submitted{}, err
	}
	e.remote.HoldFor(t.Owner, t.Job, h)
	return wire.Submitted{Ref: h, Job: wire.JobOr(t.Job)}, nil
}

func (p peerHandler) CancelTask(_ context.Context, job string, ref int64) error {
	return p.e.Tasks().Cancel(job, ref)
}

func (p peerHandler) ObjectMeta(ctx context.Context, job string, ref int64, wait time.Duration) (wire.ObjectMeta, error) {
	_, m, err := p.e.remote.ObjectValue(ctx, job, ref, wait)
	return m, peerNotReady(err)
}

func (p peerHandler) ObjectValue(ctx context.Context, job string, ref int64, wait time.Duration) (wire.ObjectValue, error) {
	b, m, err := p.e.remote.ObjectValue(ctx, job, ref, wait)
	return wire.ObjectValue{Value: b, Meta: m}, peerNotReady(err)
}

// peerNotReady makes a get that timed out a not_ready answer: the peer asks again.
func peerNotReady(err error) error {
	var se *host.StatusError
	if errors.As(err, &se) && se.Status == abi.ErrTimeout {
		return wire.New(wire.KindNotReady, se.Message)
	}
	return err
}

func (p peerHandler) ReleaseObject(_ context.Context, job string, ref int64) error {
	return p.e.Objects().Release(job, ref)
}

func (p peerHandler) CreateActor(ctx context.Context, a *wire.PlacedActor) (wire.CreatedActor, error) {
	h, err := p.e.actors.CreateHere(ctx, wire.JobOr(a.Job), &a.Actor, host.Grants{Capabilities: a.Grants}, a.Applied, a.Owner)
	if err != nil {
		return wire.CreatedActor{}, err
	}
	return wire.CreatedActor{Actor: h, Job: wire.JobOr(a.Job)}, nil
}

func (p peerHandler) CallActor(_ context.Context, id int64, c *wire.ActorCall) (wire.Submitted, error) {
	var h int64
	var err error
	if len(c.RemoteRefs) > 0 {
		h, err = p.e.remote.CallActorReading(c.Job, id, c.Method, c.Input, c.RemoteRefs)
	} else {
		h, err = p.e.Actors().Call(c.Job, id, c.Method, c.Input)
	}
	if err != nil {
		return wire.Submitted{}, err
	}
	return wire.Submitted{Ref: h, Job: wire.JobOr(c.Job)}, nil
}

func (p peerHandler) KillActor(_ context.Context, id int64, k *wire.ActorKill) error {
	if k.Owner != nil {
		return p.e.actors.KillPlaced(wire.JobOr(k.Job), id, *k.Owner)
	}
	return p.e.Actors().Kill(k.Job, id)
}

func (p peerHandler) Join(ctx context.Context, j *wire.JoinRequest) (wire.JoinResponse, error) {
	secrets, err := p.e.cluster.Join(ctx, *j)
	return wire.JoinResponse{Secrets: secrets}, err
}

func (p peerHandler) Apply(ctx context.Context, cmd []byte) error { return p.e.cluster.Apply(ctx, cmd) }

func (p peerHandler) ReadIndex(ctx context.Context) (uint64, error) {
	return p.e.cluster.ReadIndex(ctx)
}

func (p peerHandler) Self(context.Context) wire.NodeStatus { return p.e.cluster.Self().Wire() }

func (p peerHandler) Heartbeat(ctx context.Context, hb *wire.Heartbeat) ([]wire.NodeView, error) {
	view, err := p.e.cluster.Heartbeat(ctx, *hb)
	if errors.Is(err, cluster.ErrRemoved) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", raftstore.ErrNotLeader, err)
	}
	return view, nil
}

func (p peerHandler) ModuleBytes(ctx context.Context, digest string) ([]byte, error) {
	return p.e.cluster.HeldModuleBytes(ctx, digest)
}

func (p peerHandler) KeepModuleBytes(ctx context.Context, digest string, wasm []byte) error {
	return p.e.cluster.KeepModuleBytes(ctx, digest, wasm)
}
