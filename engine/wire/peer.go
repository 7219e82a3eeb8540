package wire

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/lumenflow/lumen/sdk/abi"
)

// The node-to-node protocol's messages (served and sent by package engine/peer under
// /peer/<Version>/…). Every message is JSON except an object's value, which travels as the raw
// body with its description in two headers (ChecksumHeader, RefsHeader): values run to a GiB, and
// a JSON envelope would cost a base64 copy a third larger on both sides, and a second buffer of
// the whole value on the receiver. Those headers mean something on the peer routes only; the
// public API neither reads nor writes them.

// Version is the protocol's version, the second segment of every peer route: a node that speaks
// another version answers 404 for all of them, and the caller treats that node as failed.
const Version = "v1"

// Headers of an object's value answer on the peer routes.
const (
	// ChecksumHeader carries the CRC-32C (Castagnoli) of the value, in hex.
	ChecksumHeader = "Lumen-Checksum"
	// RefsHeader lists, comma-separated, the handles (on the sending node) of the objects the
	// value refers to ({"$ref": N}); FormatRefs writes it and ParseRefs reads it.
	RefsHeader = "Lumen-Refs"
)

// maxRefs caps the handles one value may list in RefsHeader.
const maxRefs = 1 << 16

// RemoteRef tells the node that runs a placed task where an object the task reads lives.
type RemoteRef struct {
	// Ref is the handle the task's request uses for it (its owner's).
	Ref int64 `json:"ref"`
	// Node names the node that holds the value (API is its address, for people: the receiving
	// node takes the address from the cluster's member records); Handle is its handle there, in
	// Job.
	Node   string `json:"node"`
	API    string `json:"api"`
	Handle int64  `json:"handle"`
	Job    string `json:"job"`
	// Size and Checksum (CRC-32C, hex) describe the value, when known (Size -1: not known).
	Size     int64  `json:"size"`
	Checksum string `json:"checksum,omitempty"`
}

// ObjectMeta describes a ready object: what the owner of a placed task's result records.
type ObjectMeta struct {
	Size     int64   `json:"size"`
	Checksum string  `json:"checksum"`
	Refs     []int64 `json:"refs,omitempty"`
}

// ObjectValue is an object's value with its description, as a peer sends it: Value is the body,
// Meta.Checksum and Meta.Refs the headers (Meta.Size is the length of Value).
type ObjectValue struct {
	Value []byte
	Meta  ObjectMeta
}

// ActorOwner names the owner of an actor placed on another node: the owner node, the actor's
// handle there and the owner's run (handles start again after a restart). The holding node kills
// the actor when that owner is declared dead or no longer records it there.
type ActorOwner struct {
	Node   string `json:"node"`
	Handle int64  `json:"handle"`
	Boot   string `json:"boot"`
}

// String is "node/handle/boot", for messages.
func (o ActorOwner) String() string {
	return o.Node + "/" + strconv.FormatInt(o.Handle, 10) + "/" + o.Boot
}

// Check refuses an owner without a node, a positive handle or a run.
func (o ActorOwner) Check() error {
	if o.Node == "" || o.Handle <= 0 || o.Boot == "" || strings.Contains(o.Node, "/") {
		return Errorf(KindBadInput, "actor owner %q is not a node id, a positive handle and a run id", truncate(o.String(), 100))
	}
	return nil
}

// PlacedTask is a task another node placed on the receiver (POST /peer/v1/tasks): it runs there
// and is not placed again. The sender owns its result; the receiver keeps the result until the
// sender releases it, or the cluster declares the sender dead.
type PlacedTask struct {
	Task abi.TaskRequest `json:"task"`
	Job  string          `json:"job,omitempty"`
	// Grants are the capabilities the task's job granted it (never directory or environment
	// grants: those name the sender's paths and values, and such a task is not placed).
	Grants []abi.Capability `json:"grants,omitempty"`
	// PlacementGroup and BundleIndex, when the group is set, run the task in that bundle.
	PlacementGroup string `json:"placement_group,omitempty"`
	BundleIndex    int    `json:"bundle_index,omitempty"`
	// RemoteRefs say where each object of Task.Refs lives.
	RemoteRefs []RemoteRef `json:"remote_refs,omitempty"`
	// Owner is the sending node's id.
	Owner string `json:"owner"`
	// Applied is the sender's applied raft index: the receiver waits until it holds that much
	// of the state (the task's module, above all) before it resolves the task.
	Applied uint64 `json:"applied"`
}

// Check refuses a placed task whose request the ABI's strict decoder refuses, or whose owner or
// bundle is missing.
func (t *PlacedTask) Check() error {
	if err := checkVia(&t.Task, abi.DecodeTaskRequest); err != nil {
		return err
	}
	switch {
	case t.Task.Module == "":
		return New(KindBadInput, "a placed task names its module (a digest)")
	case t.Owner == "":
		return New(KindBadInput, "a placed task names its owner")
	case t.BundleIndex < 0 || (t.BundleIndex != 0 && t.PlacementGroup == ""):
		return Errorf(KindBadInput, "bundle_index %d without a placement group", t.BundleIndex)
	case len(t.RemoteRefs) > maxRefs:
		return Errorf(KindBadInput, "%d remote refs, more than %d", len(t.RemoteRefs), maxRefs)
	}
	return nil
}

// Submitted answers a placed task or an actor call: the handle of its result on the receiver.
type Submitted struct {
	Ref int64  `json:"ref"`
	Job string `json:"job"`
}

// PlacedActor is an actor its owner placed on the receiver (POST /peer/v1/actors): its instance
// runs there and is not placed again.
type PlacedActor struct {
	Actor  abi.ActorCreateRequest `json:"actor"`
	Job    string                 `json:"job,omitempty"`
	Grants []abi.Capability       `json:"grants,omitempty"`
	Owner  ActorOwner             `json:"owner"`
	// Applied is the owner's applied raft index, as in PlacedTask.
	Applied uint64 `json:"applied"`
}

// Check refuses a placed actor whose request the ABI's strict decoder refuses, or whose owner is
// not one.
func (a *PlacedActor) Check() error {
	if err := checkVia(&a.Actor, abi.DecodeActorCreateRequest); err != nil {
		return err
	}
	if a.Actor.Module == "" {
		return New(KindBadInput, "a placed actor names its module (a digest)")
	}
	return a.Owner.Check()
}

// CreatedActor answers a placed actor: its handle on the receiver.
type CreatedActor struct {
	Actor int64  `json:"actor"`
	Job   string `json:"job"`
}

// ActorCall is a call the owner of an actor (or the owner of a named actor, for a node that
// follows it) forwards to the node that runs it (POST /peer/v1/actors/:actor/call).
type ActorCall struct {
	Job    string `json:"job,omitempty"`
	Method string `json:"method"`
	// Input is the call's input, as the caller gave it.
	Input []byte `json:"input"`
	// RemoteRefs, when set, say where the objects the call reads live (their Ref fields are the
	// handles Input uses): the receiver fetches them as the call reads them.
	RemoteRefs []RemoteRef `json:"remote_refs,omitempty"`
}

// Check refuses a call without a method.
func (c *ActorCall) Check() error {
	switch {
	case c.Method == "":
		return New(KindBadInput, "an actor call names its method")
	case len(c.RemoteRefs) > maxRefs:
		return Errorf(KindBadInput, "%d remote refs, more than %d", len(c.RemoteRefs), maxRefs)
	}
	return nil
}

// ActorKill ends an actor on the receiver (POST /peer/v1/actors/:actor/kill). With Owner set, the
// actor is killed only if that owner placed it there (after a restart the receiver may have
// given the handle to another); without, it is the receiver's own actor (a follower's kill of a
// named actor it does not own).
type ActorKill struct {
	Job   string      `json:"job,omitempty"`
	Owner *ActorOwner `json:"owner,omitempty"`
}

// Check refuses a kill whose owner is not one.
func (k *ActorKill) Check() error {
	if k.Owner != nil {
		return k.Owner.Check()
	}
	return nil
}

// Heartbeat is what a node tells the leader every heartbeat interval
// (POST /peer/v1/cluster/heartbeat, answered with the leader's []NodeView).
type Heartbeat struct {
	ID        string             `json:"id"`
	API       string             `json:"api"`
	Total     map[string]float64 `json:"total"`
	Available map[string]float64 `json:"available"`
	TasksRun  int64              `json:"tasks_run"`
}

// Check refuses a heartbeat without a node id.
func (h *Heartbeat) Check() error {
	if h.ID == "" {
		return New(KindBadInput, "a heartbeat names its node")
	}
	return nil
}

// NodeView is one live node as placement sees it.
type NodeView struct {
	Heartbeat
	SeenAgoMs int64 `json:"seen_ago_ms"`
	Dead      bool  `json:"dead,omitempty"`
}

// JoinRequest is what a node sends to join the cluster (POST /peer/v1/cluster/join, on the
// leader; a follower answers not_leader with the leader's API).
type JoinRequest struct {
	ID   string `json:"id"`
	Raft string `json:"raft"`
	API  string `json:"api"`
	// Worker joins as a non-voter: it receives the state and runs work but takes no part in
	// elections and commits.
	Worker bool `json:"worker,omitempty"`
}

// Check refuses a join without the node's id and addresses.
func (j *JoinRequest) Check() error {
	if j.ID == "" || j.Raft == "" || j.API == "" {
		return New(KindBadInput, "a join names the node's id, raft address and api URL")
	}
	return nil
}

// JoinResponse carries the cluster's API tokens to a joining node, so that every node accepts
// the same tokens.
type JoinResponse struct {
	Secrets map[string]string `json:"secrets,omitempty"`
}

// ReadIndex is the leader's answer to GET /peer/v1/cluster/readindex.
type ReadIndex struct {
	Index uint64 `json:"index"`
}

// NodeStatus is what a node says of itself to a peer (GET /peer/v1/cluster/self): its raft state,
// the hash of its replicated state, and its task and object counters.
type NodeStatus struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	Leader       string `json:"leader"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	API          string `json:"api"`
	StateHash    string `json:"state_hash"`
	StateKeys    int    `json:"state_keys"`
	Goroutines   int    `json:"goroutines"`
	TasksRun     int64  `json:"tasks_run"`
	PlacedOut    int64  `json:"placed_out"`
	Retried      int64  `json:"retried"`
	Rebuilt      int64  `json:"rebuilt"`
	PulledBytes  int64  `json:"pulled_bytes"`
}

// FormatRefs writes a RefsHeader value ("" for none).
func FormatRefs(hs []int64) string {
	var b strings.Builder
	for i, h := range hs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(h, 10))
	}
	return b.String()
}

// ParseRefs reads a RefsHeader value: positive handles, comma-separated, at most 65536.
func ParseRefs(v string) ([]int64, error) {
	if v == "" {
		return nil, nil
	}
	parts := strings.Split(v, ",")
	if len(parts) > maxRefs {
		return nil, fmt.Errorf("%s lists %d handles, more than %d", RefsHeader, len(parts), maxRefs)
	}
	out := make([]int64, 0, len(parts))
	for _, p := range parts {
		h, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil || h <= 0 {
			return nil, fmt.Errorf("%s: %q is not a handle", RefsHeader, truncate(p, 40))
		}
		out = append(out, h)
	}
	return out, nil
}

// checkVia passes req through the ABI's strict decoder (the one guests' requests pass), so a peer
// is held to the rules a client or a guest is.
func checkVia[T any](req *T, decode func([]byte) (*T, error)) error {
	raw, err := json.Marshal(req)
	if err == nil {
		_, err = decode(raw)
	}
	if err != nil {
		return New(KindBadInput, err.Error())
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
