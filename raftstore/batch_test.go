package raftstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// fakeRaft applies entries to an FSM. While gate is open (not closed), Apply blocks, as raft's
// does while the leader is busy writing; release holds the answers back.
type fakeRaft struct {
	fsm     *FSM
	mu      sync.Mutex
	entries [][]byte
	release chan struct{}
	gate    chan struct{}
	err     error
}

// queueUntil polls until n commands wait in b's queue, then opens the gate.
func queueUntil(t *testing.T, b *Batcher, fr *fakeRaft, n int) {
	t.Helper()
	defer close(fr.gate)
	deadline := time.Now().Add(5 * time.Second)
	for len(b.reqs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d commands queued, want %d", len(b.reqs), n)
		}
		time.Sleep(time.Millisecond)
	}
}

type fakeFuture struct {
	done chan struct{}
	resp any
	err  error
}

func (f *fakeFuture) Error() error  { <-f.done; return f.err }
func (f *fakeFuture) Response() any { <-f.done; return f.resp }
func (f *fakeFuture) Index() uint64 { return 0 }

func (r *fakeRaft) Apply(data []byte, _ time.Duration) raft.ApplyFuture {
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	r.entries = append(r.entries, data)
	idx := uint64(len(r.entries))
	r.mu.Unlock()
	f := &fakeFuture{done: make(chan struct{})}
	go func() {
		if r.release != nil {
			<-r.release
		}
		f.err = r.err
		if f.err == nil {
			f.resp = r.fsm.Apply(&raft.Log{Index: idx, Type: raft.LogCommand, Data: data})
		}
		close(f.done)
	}()
	return f
}

func TestBatcher_PacksConcurrentCommandsAndAnswersEach(t *testing.T) {
	state := newKV()
	fr := &fakeRaft{fsm: NewFSM(state), gate: make(chan struct{})}
	b, err := NewBatcher(fr, BatcherConfig{MaxCommands: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.Apply(context.Background(), []byte{'k', byte('a' + i), '=', 'v'}); err != nil {
				t.Error(err)
			}
		}()
	}
	// One entry (at most 8 commands) is being "written"; at least 32 queue behind it.
	queueUntil(t, b, fr, 32)
	wg.Wait()
	if _, n := state.hash(); n != 40 {
		t.Fatalf("%d keys applied, want 40", n)
	}
	fr.mu.Lock()
	defer fr.mu.Unlock()
	for _, e := range fr.entries {
		cmds, err := DecodeBatch(e)
		if err != nil || len(cmds) > 8 {
			t.Fatalf("entry of %d commands (%v), want at most 8", len(cmds), err)
		}
	}
	if len(fr.entries) > 12 { // the first, 4 full ones, at worst 7 stragglers alone
		t.Fatalf("%d entries for 40 commands: nothing was batched", len(fr.entries))
	}
}

func TestBatcher_MaxBytesSplitsEntries(t *testing.T) {
	fr := &fakeRaft{fsm: NewFSM(newKV()), gate: make(chan struct{})}
	b, err := NewBatcher(fr, BatcherConfig{MaxBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); b.Apply(context.Background(), []byte{'k', byte('a' + i), '=', '1', '2'}) }()
	}
	queueUntil(t, b, fr, 3) // at most 2 in the blocked entry and 1 carried over
	wg.Wait()
	for _, e := range fr.entries {
		cmds, _ := DecodeBatch(e)
		if len(cmds) != 1 && len(cmds) != 2 {
			t.Fatalf("entry of %d 5-byte commands under a 10-byte cap", len(cmds))
		}
	}
}

func TestBatcher_ErrorsReachEveryCaller(t *testing.T) {
	fr := &fakeRaft{fsm: NewFSM(newKV()), err: raft.ErrNotLeader}
	b, _ := NewBatcher(fr, BatcherConfig{})
	defer b.Close()
	if _, err := b.Apply(context.Background(), []byte("k=v")); !errors.Is(err, raft.ErrNotLeader) {
		t.Fatalf("Apply on a follower = %v, want ErrNotLeader", err)
	}
}

func TestBatcher_ContextAndClose(t *testing.T) {
	fr := &fakeRaft{fsm: NewFSM(newKV()), release: make(chan struct{})}
	b, _ := NewBatcher(fr, BatcherConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := b.Apply(ctx, []byte("k=v")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Apply past its deadline = %v", err)
	}
	close(fr.release)
	b.Close()
	b.Close()
	if _, err := b.Apply(context.Background(), []byte("k=v")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply after Close = %v, want ErrClosed", err)
	}
	if _, err := NewBatcher(nil, BatcherConfig{}); err == nil {
		t.Fatal("NewBatcher(nil) succeeded")
	}
	if _, err := NewBatcher(fr, BatcherConfig{MaxBytes: -1}); err == nil {
		t.Fatal("NewBatcher with a negative MaxBytes succeeded")
	}
}

func TestFSM_CorruptEntryIsAnErrorOnEveryNode(t *testing.T) {
	state := newKV()
	f := NewFSM(state)
	out := f.ApplyBatch([]*raft.Log{
		{Index: 1, Type: raft.LogCommand, Data: []byte{7, 7}},
		{Index: 2, Type: raft.LogConfiguration},
		{Index: 3, Type: raft.LogCommand, Data: EncodeBatch([][]byte{[]byte("a=1"), []byte("b=2")})},
	})
	if err, _ := out[0].(error); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt entry answered %v", out[0])
	}
	if out[1] != nil {
		t.Fatalf("configuration entry answered %v", out[1])
	}
	if res, _ := out[2].([]any); len(res) != 2 || res[0] != uint64(3) {
		t.Fatalf("batch answered %v", out[2])
	}
	if _, n := state.hash(); n != 2 {
		t.Fatalf("%d keys, want 2", n)
	}
}
