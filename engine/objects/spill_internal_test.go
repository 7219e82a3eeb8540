package objects

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lumenflow/lumen/sdk/abi"
)

func value(i, n int) []byte { return bytes.Repeat([]byte{byte(i)}, n) }

func spillFiles(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "objects-spill"))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// Under a 1000-byte cap, 20 objects of 300 bytes all stay gettable: the least recently used are
// spilled to files and read back on get, memory never passes the cap, and releasing an object
// removes its file.
func TestStore_SpillLeastRecentlyUsedAndRestoreOnGet(t *testing.T) {
	dir := t.TempDir()
	s := New(1000).WithSpill(dir)
	ctx := context.Background()
	var hs []int64
	for i := range 20 {
		h, err := s.Put("j", value(i, 300))
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		hs = append(hs, h)
		if _, b := s.Stats(); b > 1000 {
			t.Fatalf("after put %d: %d bytes in memory, cap 1000", i, b)
		}
	}
	spilled, spills, _ := s.SpillStats()
	if spilled != 17*300 || spills != 17 || spillFiles(t, dir) != 17 {
		t.Fatalf("spilled %d bytes in %d objects (%d files), want 17 objects", spilled, spills, spillFiles(t, dir))
	}
	// The oldest was spilled first: object 0 is on disk, 19 in memory.
	if s.objs[hs[0]].spilled == "" || s.objs[hs[19]].spilled != "" {
		t.Fatal("not least recently used first")
	}
	// Every object reads back whole, in a random order, memory staying under the cap.
	rng := rand.New(rand.NewPCG(1, 2))
	for _, i := range rng.Perm(20) {
		got, err := s.Get(ctx, "j", hs[i], time.Second)
		if err != nil || !bytes.Equal(got, value(i, 300)) {
			t.Fatalf("get %d: %d bytes, %v", i, len(got), err)
		}
		if _, b := s.Stats(); b > 1000 {
			t.Fatalf("after get %d: %d bytes in memory", i, b)
		}
	}
	_, _, restores := s.SpillStats()
	if restores < 17 {
		t.Errorf("%d restores, want at least 17", restores)
	}
	// A get marks the object used: after getting 5 and putting one more, 5 stays in memory.
	s.Get(ctx, "j", hs[5], time.Second)
	if _, err := s.Put("j", value(99, 300)); err != nil {
		t.Fatal(err)
	}
	if s.objs[hs[5]].spilled != "" {
		t.Error("the most recently read object was spilled")
	}
	// Releasing everything removes every file and every byte.
	for _, h := range hs {
		if err := s.Release("j", h); err != nil {
			t.Fatal(err)
		}
	}
	if spilled, _, _ := s.SpillStats(); spilled != 0 || spillFiles(t, dir) != 0 {
		t.Errorf("after release: %d bytes spilled, %d files", spilled, spillFiles(t, dir))
	}
}

func TestStore_SpillLimits(t *testing.T) {
	// Without a spill folder the cap refuses, as before.
	s := New(100)
	if _, err := s.Put("j", value(1, 80)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put("j", value(2, 80)); err == nil || !strings.Contains(err.Error(), "raise the cap") {
		t.Fatalf("no spill folder: %v", err)
	}
	// An object larger than the cap is refused even with one.
	dir := t.TempDir()
	s = New(100).WithSpill(dir)
	if _, err := s.Put("j", value(1, 101)); err == nil {
		t.Fatal("an object over the whole cap was stored")
	}
	// A task's result spills others to fit; a lost spill file is an error naming the object.
	h1, _ := s.Put("j", value(1, 60))
	h2, o := s.Pending("j")
	s.Complete(o, value(2, 60), nil)
	if got, err := s.Get(context.Background(), "j", h2, time.Second); err != nil || len(got) != 60 {
		t.Fatalf("result: %v", err)
	}
	if s.objs[h1].spilled == "" {
		t.Fatal("the put was not spilled for the result")
	}
	os.Remove(s.objs[h1].spilled)
	_, err := s.Get(context.Background(), "j", h1, time.Second)
	var ae *abi.Error
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("object %d: restore", h1)) || !asErr(err, &ae) || ae.Kind != abi.KindSystem {
		t.Fatalf("lost file: %v", err)
	}
	// A restart starts with an empty spill folder.
	if err := os.WriteFile(filepath.Join(dir, "objects-spill", "obj-77"), []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	New(100).WithSpill(dir)
	if n := spillFiles(t, dir); n != 0 {
		t.Errorf("%d stale spill files kept", n)
	}
}

func asErr(err error, ae **abi.Error) bool {
	e, ok := err.(*abi.Error)
	*ae = e
	return ok
}
