package raftstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// How batching works.
//
// A fsynced log write costs about a millisecond or more, and raft writes the leader's log and
// each follower's log before a command commits. One command per write caps a cluster at a few
// hundred commits per second. Two layers of batching lift that cap:
//
//  1. Batcher packs commands from many goroutines into one raft log entry. Its single loop takes
//     the first waiting command, then every command already queued (up to MaxCommands or
//     MaxBytes), encodes them with EncodeBatch and hands the entry to raft.Apply. raft.Apply
//     blocks while the leader is busy writing the previous entries, and meanwhile new commands
//     queue up: the batch size grows with the load by itself, with no timer and no added delay
//     when the load is light. The loop does not wait for the commit: a goroutine per entry waits
//     for the future and answers each caller with its own result, so the next batch is built
//     while the previous one is being replicated.
//  2. raft itself gathers the entries waiting on its apply channel (up to MaxAppendEntries)
//     into one StoreLogs call, which Store writes in one transaction, that is one fsync;
//     followers likewise store each AppendEntries batch with one fsync.
//
// Leave raft.Config.BatchApplyCh off (the default) under a Batcher. With it on, raft v1.8.0
// never answers an entry still sitting in its buffered apply channel when it shuts down, so the
// callers of those commands (and Close) would wait forever. The Batcher already feeds raft
// large entries, so the buffer buys little.
//
// On every node FSM unpacks the entry and calls StateMachine.Apply once per command, in order.

// maxBatchCount bounds the command count DecodeBatch accepts.
const maxBatchCount = 1 << 20

// batchVersion is the first byte of an encoded command batch.
const batchVersion = 1

// EncodeBatch encodes commands as one raft log entry's data:
//
//	version(1 byte) count(uvarint) { len(uvarint) bytes }*count
func EncodeBatch(cmds [][]byte) []byte {
	n := 1 + maxVarintLen
	for _, c := range cmds {
		n += maxVarintLen + len(c)
	}
	b := make([]byte, 0, n)
	b = append(b, batchVersion)
	b = binary.AppendUvarint(b, uint64(len(cmds)))
	for _, c := range cmds {
		b = binary.AppendUvarint(b, uint64(len(c)))
		b = append(b, c...)
	}
	return b
}

// DecodeBatch splits data written by EncodeBatch into its commands. The commands alias data.
// It reads bytes replicated from other nodes: it never panics and reports any flaw as ErrCorrupt.
func DecodeBatch(data []byte) ([][]byte, error) {
	d := decoder{b: data}
	if v := d.byte(); d.err == nil && v != batchVersion {
		return nil, fmt.Errorf("%w: batch encoding version %d, want %d", ErrCorrupt, v, batchVersion)
	}
	count := d.uvarint()
	// Every command takes at least one byte (its length), which bounds the allocation.
	if d.err == nil && (count > uint64(len(d.b)) || count > maxBatchCount) {
		d.fail("batch of %d commands in %d bytes", count, len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	cmds := make([][]byte, 0, count)
	for i := uint64(0); i < count; i++ {
		n := d.uvarint()
		if d.err == nil && n > uint64(len(d.b)) {
			d.fail("command %d: length %d exceeds the %d bytes left", i, n, len(d.b))
		}
		if d.err != nil {
			return nil, d.err
		}
		cmds = append(cmds, d.b[:n:n])
		d.b = d.b[n:]
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after batch", ErrCorrupt, len(d.b))
	}
	return cmds, nil
}

// StateMachine is the replicated state that commands change. raft calls Apply, Snapshot and
// Restore from one goroutine; Apply must be deterministic, since every node applies the same
// commands in the same order and must reach the same state.
type StateMachine interface {
	// Apply applies one command committed in the log entry at index and returns its result,
	// which the Batcher hands back on the node where the command was submitted. Commands packed
	// in one entry share its index and are applied in order.
	Apply(index uint64, cmd []byte) any
	// Snapshot and Restore are raft.FSM's.
	Snapshot() (raft.FSMSnapshot, error)
	Restore(snapshot io.ReadCloser) error
}

// FSM adapts a StateMachine to raft.BatchingFSM: it unpacks the command batches a Batcher
// writes. The response to each log entry is a []any with one result per command, or an error
// wrapping ErrCorrupt when the entry cannot be decoded (on every node alike, so the nodes stay
// equal; nothing is applied from such an entry).
type FSM struct{ sm StateMachine }

var _ raft.BatchingFSM = (*FSM)(nil)

// NewFSM wraps sm.
func NewFSM(sm StateMachine) *FSM { return &FSM{sm: sm} }

// Apply applies one log entry.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	cmds, err := DecodeBatch(l.Data)
	if err != nil {
		return fmt.Errorf("log %d: %w", l.Index, err)
	}
	out := make([]any, len(cmds))
	for i, c := range cmds {
		out[i] = f.sm.Apply(l.Index, c)
	}
	return out
}

// ApplyBatch applies consecutive committed entries.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	for i, l := range logs {
		out[i] = f.Apply(l)
	}
	return out
}

// Snapshot delegates to the StateMachine.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) { return f.sm.Snapshot() }

// Restore delegates to the StateMachine.
func (f *FSM) Restore(r io.ReadCloser) error { return f.sm.Restore(r) }

// Applier is the part of *raft.Raft a Batcher uses.
type Applier interface {
	Apply(cmd []byte, timeout time.Duration) raft.ApplyFuture
}

// BatcherConfig configures NewBatcher. The zero value is usable.
type BatcherConfig struct {
	// MaxCommands caps the commands in one log entry. Zero means 1024; 1 turns batching off.
	MaxCommands int
	// MaxBytes caps the command bytes in one entry (a larger single command still goes alone).
	// Zero means 512 KiB, under badger's 1 MiB value threshold.
	MaxBytes int
	// EnqueueTimeout bounds how long raft.Apply may wait to enqueue an entry. Zero waits forever.
	EnqueueTimeout time.Duration
	// Queue is the number of commands that may wait for the loop. Zero means 4096.
	Queue int
}

type request struct {
	cmd []byte
	out chan result // buffered: the waiter never blocks on a caller that left
}

type result struct {
	v   any
	err error
}

// Batcher submits commands to raft, packing commands from concurrent callers into shared log
// entries (see "How batching works" above). It is safe for concurrent use. Use it on the leader:
// elsewhere every command fails with raft.ErrNotLeader.
type Batcher struct {
	raft Applier
	cfg  BatcherConfig

	mu     sync.RWMutex // held for reading while enqueuing; Close takes it to stop new commands
	closed bool

	reqs    chan *request
	stop    chan struct{}
	done    chan struct{}
	waiters sync.WaitGroup
	once    sync.Once
}

// NewBatcher starts a Batcher over r (normally a *raft.Raft whose FSM is an FSM).
// The caller must Close it.
func NewBatcher(r Applier, cfg BatcherConfig) (*Batcher, error) {
	if r == nil {
		return nil, errors.New("raftstore: NewBatcher needs a raft")
	}
	if cfg.MaxCommands < 0 || cfg.MaxBytes < 0 || cfg.Queue < 0 || cfg.EnqueueTimeout < 0 {
		return nil, fmt.Errorf("raftstore: negative BatcherConfig field: %+v", cfg)
	}
	if cfg.MaxCommands == 0 {
		cfg.MaxCommands = 1024
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 512 << 10
	}
	if cfg.Queue == 0 {
		cfg.Queue = 4096
	}
	b := &Batcher{
		raft: r,
		cfg:  cfg,
		reqs: make(chan *request, cfg.Queue),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go b.loop()
	return b, nil
}

// Apply submits cmd and waits until it is committed and applied on this node, returning what
// StateMachine.Apply returned. Errors from raft (raft.ErrNotLeader, raft.ErrLeadershipLost, …)
// come back wrapped. If ctx expires, or the error is raft.ErrLeadershipLost, the command may still
// commit: callers retry with the same request id and the StateMachine dedupes.
// The Batcher keeps cmd until it is encoded; the caller must not change it meanwhile.
func (b *Batcher) Apply(ctx context.Context, cmd []byte) (any, error) {
	req := &request{cmd: cmd, out: make(chan result, 1)}
	if err := b.enqueue(ctx, req); err != nil {
		return nil, err
	}
	select {
	case r := <-req.out:
		return r.v, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("outcome unknown: %w", ctx.Err())
	}
}

// enqueue queues req unless the Batcher is closed. Holding the read lock while sending means
// that once Close holds the write lock, nothing more is queued after the loop drains the queue.
func (b *Batcher) enqueue(ctx context.Context, req *request) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	select {
	case b.reqs <- req:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops taking commands, fails queued ones with ErrClosed and waits for the entries
// already handed to raft to be answered (raft answers them when they commit, or when it loses
// leadership or shuts down; see BatchApplyCh above). It is safe to call more than once.
func (b *Batcher) Close() error {
	b.once.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		close(b.stop)
		<-b.done
		b.waiters.Wait()
	})
	return nil
}

func (b *Batcher) loop() {
	defer close(b.done)
	var carry *request // taken from the queue but over the previous batch's byte cap
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-b.reqs:
			case <-b.stop:
				b.failQueued()
				return
			}
		}
		batch := []*request{first}
		size := len(first.cmd)
	gather:
		for len(batch) < b.cfg.MaxCommands {
			select {
			case r := <-b.reqs:
				if size+len(r.cmd) > b.cfg.MaxBytes {
					carry = r
					break gather
				}
				batch = append(batch, r)
				size += len(r.cmd)
			default:
				break gather
			}
		}
		cmds := make([][]byte, len(batch))
		for i, r := range batch {
			cmds[i] = r.cmd
		}
		f := b.raft.Apply(EncodeBatch(cmds), b.cfg.EnqueueTimeout)
		b.waiters.Add(1)
		go b.answer(f, batch)
	}
}

func (b *Batcher) failQueued() {
	for {
		select {
		case r := <-b.reqs:
			r.out <- result{err: ErrClosed}
		default:
			return
		}
	}
}

// answer waits for one entry's future and answers each of its commands.
func (b *Batcher) answer(f raft.ApplyFuture, batch []*request) {
	defer b.waiters.Done()
	if err := f.Error(); err != nil {
		err = fmt.Errorf("raftstore: apply: %w", err)
		for _, r := range batch {
			r.out <- result{err: err}
		}
		return
	}
	resp := f.Response()
	results, ok := resp.([]any)
	if !ok || len(results) != len(batch) {
		err, isErr := resp.(error)
		if !isErr {
			err = fmt.Errorf("raftstore: apply: FSM answered %T for a batch of %d; is it a raftstore.FSM?", resp, len(batch))
		}
		for _, r := range batch {
			r.out <- result{err: err}
		}
		return
	}
	for i, r := range batch {
		r.out <- result{v: results[i]}
	}
}
