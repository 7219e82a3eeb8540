package raftstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// logStableStore is what both implementations under test provide.
type logStableStore interface {
	raft.LogStore
	raft.StableStore
}

// implementations lists every store the conformance suite runs against.
func implementations() []struct {
	name string
	open func(t *testing.T) logStableStore
} {
	return []struct {
		name string
		open func(t *testing.T) logStableStore
	}{
		{"inmem", func(t *testing.T) logStableStore { return raft.NewInmemStore() }},
		{"badger", func(t *testing.T) logStableStore { return openStore(t, t.TempDir()) }},
	}
}

func openStore(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mkLog(i uint64) *raft.Log {
	return &raft.Log{
		Index:      i,
		Term:       i/10 + 1,
		Type:       raft.LogCommand,
		Data:       []byte(fmt.Sprintf("data-%d", i)),
		Extensions: []byte{byte(i)},
		AppendedAt: time.Unix(1700000000+int64(i), int64(i)*1000),
	}
}

func sameLog(a, b raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt)
}

func storeRange(t *testing.T, s raft.LogStore, lo, hi uint64) {
	t.Helper()
	var logs []*raft.Log
	for i := lo; i <= hi; i++ {
		logs = append(logs, mkLog(i))
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs(%d-%d): %v", lo, hi, err)
	}
}

func wantIndexes(t *testing.T, s raft.LogStore, first, last uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if f != first || l != last {
		t.Fatalf("FirstIndex, LastIndex = %d, %d; want %d, %d", f, l, first, last)
	}
}

// wantPresent checks that exactly the indexes in [lo, hi] minus gone are readable in [1, 40].
func wantPresent(t *testing.T, s raft.LogStore, lo, hi uint64, gone func(uint64) bool) {
	t.Helper()
	for i := uint64(1); i <= 40; i++ {
		var got raft.Log
		err := s.GetLog(i, &got)
		want := i >= lo && i <= hi && !gone(i)
		switch {
		case want && err != nil:
			t.Fatalf("GetLog(%d): %v", i, err)
		case want && !sameLog(got, *mkLog(i)):
			t.Fatalf("GetLog(%d) = %+v, want %+v", i, got, *mkLog(i))
		case !want && !errors.Is(err, raft.ErrLogNotFound):
			t.Fatalf("GetLog(%d) = %v, want ErrLogNotFound", i, err)
		}
	}
}

func none(uint64) bool { return false }

func TestConformance_LogStore(t *testing.T) {
	for _, impl := range implementations() {
		t.Run(impl.name, func(t *testing.T) {
			t.Run("Empty", func(t *testing.T) {
				s := impl.open(t)
				wantIndexes(t, s, 0, 0)
				var l raft.Log
				if err := s.GetLog(1, &l); !errors.Is(err, raft.ErrLogNotFound) {
					t.Fatalf("GetLog on empty = %v, want ErrLogNotFound", err)
				}
				if err := s.StoreLogs(nil); err != nil {
					t.Fatalf("StoreLogs(nil): %v", err)
				}
				wantIndexes(t, s, 0, 0)
			})
			t.Run("StoreLogAndLogs", func(t *testing.T) {
				s := impl.open(t)
				if err := s.StoreLog(mkLog(1)); err != nil {
					t.Fatal(err)
				}
				wantIndexes(t, s, 1, 1)
				storeRange(t, s, 2, 20)
				wantIndexes(t, s, 1, 20)
				wantPresent(t, s, 1, 20, none)
			})
			t.Run("Overwrite", func(t *testing.T) {
				s := impl.open(t)
				storeRange(t, s, 1, 5)
				l := mkLog(5)
				l.Term, l.Data = 99, []byte("replaced")
				if err := s.StoreLog(l); err != nil {
					t.Fatal(err)
				}
				var got raft.Log
				if err := s.GetLog(5, &got); err != nil || !sameLog(got, *l) {
					t.Fatalf("GetLog(5) = %+v, %v; want the overwrite", got, err)
				}
				wantIndexes(t, s, 1, 5)
			})
			t.Run("EmptyFieldsAndOtherTypes", func(t *testing.T) {
				s := impl.open(t)
				l := &raft.Log{Index: 7, Term: 3, Type: raft.LogConfiguration}
				if err := s.StoreLog(l); err != nil {
					t.Fatal(err)
				}
				var got raft.Log
				if err := s.GetLog(7, &got); err != nil || !sameLog(got, *l) || !got.AppendedAt.IsZero() {
					t.Fatalf("GetLog(7) = %+v, %v; want %+v", got, err, *l)
				}
			})
			deletes := []struct {
				name        string
				min, max    uint64
				first, last uint64
				gone        func(uint64) bool
			}{
				{"Head", 1, 5, 6, 20, func(i uint64) bool { return i <= 5 }},
				{"Tail", 15, 20, 1, 14, func(i uint64) bool { return i >= 15 }},
				{"Middle", 8, 12, 1, 20, func(i uint64) bool { return i >= 8 && i <= 12 }},
				{"All", 1, 20, 0, 0, func(uint64) bool { return true }},
				{"Beyond", 1, 100, 0, 0, func(uint64) bool { return true }},
			}
			for _, d := range deletes {
				t.Run("DeleteRange"+d.name, func(t *testing.T) {
					s := impl.open(t)
					storeRange(t, s, 1, 20)
					if err := s.DeleteRange(d.min, d.max); err != nil {
						t.Fatalf("DeleteRange(%d, %d): %v", d.min, d.max, err)
					}
					wantIndexes(t, s, d.first, d.last)
					wantPresent(t, s, 1, 20, d.gone)
					// Raft appends after deleting: the indexes follow.
					storeRange(t, s, 21, 25)
					first := d.first
					if first == 0 {
						first = 21
					}
					wantIndexes(t, s, first, 25)
				})
			}
			t.Run("HeadThenTailLikeRaft", func(t *testing.T) {
				// Compaction removes a prefix; a new leader's log overwrites a conflicting suffix.
				s := impl.open(t)
				storeRange(t, s, 1, 30)
				if err := s.DeleteRange(1, 10); err != nil {
					t.Fatal(err)
				}
				if err := s.DeleteRange(25, 30); err != nil {
					t.Fatal(err)
				}
				wantIndexes(t, s, 11, 24)
				wantPresent(t, s, 11, 24, none)
			})
		})
	}
}

func TestConformance_StableStore(t *testing.T) {
	for _, impl := range implementations() {
		t.Run(impl.name, func(t *testing.T) {
			s := impl.open(t)
			if v, err := s.Get([]byte("missing")); err == nil || err.Error() != "not found" || v != nil {
				t.Fatalf(`Get(missing) = %q, %v; want nil, "not found"`, v, err)
			}
			if v, err := s.GetUint64([]byte("missing")); err != nil || v != 0 {
				t.Fatalf("GetUint64(missing) = %d, %v; want 0, nil", v, err)
			}
			for _, tc := range []struct{ key, val []byte }{
				{[]byte("CurrentTerm"), []byte("x")},
				{[]byte("LastVoteCand"), []byte("node-2")},
				{[]byte(""), []byte{0, 1, 2}},
				{[]byte("empty"), []byte{}},
				{[]byte{0xff, 0}, bytes.Repeat([]byte("v"), 1<<16)},
			} {
				if err := s.Set(tc.key, tc.val); err != nil {
					t.Fatalf("Set(%q): %v", tc.key, err)
				}
				got, err := s.Get(tc.key)
				if err != nil || !bytes.Equal(got, tc.val) || got == nil {
					t.Fatalf("Get(%q) = %q, %v; want %q", tc.key, got, err, tc.val)
				}
			}
			// Overwrite.
			if err := s.Set([]byte("LastVoteCand"), []byte("node-3")); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.Get([]byte("LastVoteCand")); string(got) != "node-3" {
				t.Fatalf("Get after overwrite = %q", got)
			}
			// A nil value reads back as missing.
			if err := s.Set([]byte("nil"), nil); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get([]byte("nil")); err == nil || err.Error() != "not found" {
				t.Fatalf("Get after Set(nil) = %v, want not found", err)
			}
			for _, v := range []uint64{0, 1, 1 << 40, ^uint64(0)} {
				if err := s.SetUint64([]byte("CurrentTerm"), v); err != nil {
					t.Fatal(err)
				}
				if got, err := s.GetUint64([]byte("CurrentTerm")); err != nil || got != v {
					t.Fatalf("GetUint64 = %d, %v; want %d", got, err, v)
				}
			}
			// Byte values and uint64 values live apart, as in raft.InmemStore.
			if got, _ := s.Get([]byte("CurrentTerm")); string(got) != "x" {
				t.Fatalf("Get(CurrentTerm) after SetUint64 = %q, want %q", got, "x")
			}
			if got, _ := s.GetUint64([]byte("LastVoteCand")); got != 0 {
				t.Fatalf("GetUint64(LastVoteCand) = %d, want 0", got)
			}
		})
	}
}

func TestStore_ReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	storeRange(t, s, 1, 50)
	if err := s.DeleteRange(1, 9); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(45, 50); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("n2")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s = openStore(t, dir)
	wantIndexes(t, s, 10, 44)
	wantPresent(t, s, 10, 44, none)
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "n2" {
		t.Fatalf("Get after reopen = %q, %v", v, err)
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
		t.Fatalf("GetUint64 after reopen = %d, %v", v, err)
	}
}

// A kill test cannot tell whether writes were fsynced; this one reads the option itself.
func TestStore_OpensBadgerWithSyncWrites(t *testing.T) {
	s := openStore(t, t.TempDir())
	if !s.db.Opts().SyncWrites {
		t.Fatal("badger opened without SyncWrites: a crash could lose log entries raft counted as stored")
	}
}

func TestStore_StoreLogsSplitsAnOversizedBatch(t *testing.T) {
	s := openStore(t, t.TempDir())
	// Badger's transaction limit is 15% of the 64 MiB memtable (~9.6 MiB); 12 MiB of entries
	// must be split yet all land, with the indexes right.
	const n = 96
	logs := make([]*raft.Log, n)
	for i := range logs {
		logs[i] = &raft.Log{Index: uint64(i + 1), Term: 1, Data: bytes.Repeat([]byte{byte(i)}, 128<<10)}
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	wantIndexes(t, s, 1, n)
	for _, i := range []uint64{1, n / 2, n} {
		var got raft.Log
		if err := s.GetLog(i, &got); err != nil || !sameLog(got, *logs[i-1]) {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
	}
}

func TestOpen_RejectsBadConfig(t *testing.T) {
	if _, err := Open(context.Background(), Config{}); err == nil {
		t.Fatal("Open with no Dir succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Open(ctx, Config{Dir: t.TempDir()}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with a cancelled ctx = %v", err)
	}
}

func TestGetLog_CorruptValueIsAnErrorNotAPanic(t *testing.T) {
	s := openStore(t, t.TempDir())
	if err := s.db.Update(func(txn *badgerTxn) error { return txn.Set(logKey(3), []byte{1, 0xff}) }); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := s.GetLog(3, &l); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("GetLog of a corrupt value = %v, want ErrCorrupt", err)
	}
	// A value whose index disagrees with its key is corrupt too.
	if err := s.db.Update(func(txn *badgerTxn) error { return txn.Set(logKey(4), EncodeLog(mkLog(5))) }); err != nil {
		t.Fatal(err)
	}
	if err := s.GetLog(4, &l); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("GetLog of a misplaced value = %v, want ErrCorrupt", err)
	}
}
