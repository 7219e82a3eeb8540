package objects_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine/objects"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// kindOf returns the kind of err's *abi.Error, or "" when it has none.
func kindOf(err error) abi.ErrorKind {
	var ae *abi.Error
	if errors.As(err, &ae) {
		return ae.Kind
	}
	return ""
}

// statusOf returns the status of err's *host.StatusError, or abi.StatusOK when it has none.
func statusOf(err error) abi.Status {
	var se *host.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return abi.StatusOK
}

// An object lives while anything holds it: Retain adds a holder, Release drops one, and at zero
// the object is freed with its bytes; an object holding others (Adopt) frees them with it.
func TestStore_RefCountFreesAtZero(t *testing.T) {
	ctx := context.Background()
	s := objects.New(0)
	h, err := s.Put("j", []byte("value"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Retain("j", []int64{h}); err != nil {
		t.Fatal(err)
	}
	if err := s.Release("j", h); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "j", h, 0); err != nil || string(got) != "value" {
		t.Fatalf("after one of two releases: %q, %v", got, err)
	}
	if err := s.Release("j", h); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "j", h, 0); kindOf(err) != abi.KindNotFound {
		t.Fatalf("get after the last release: %v, want not_found", err)
	}
	if err := s.Release("j", h); kindOf(err) != abi.KindNotFound {
		t.Fatalf("a third release: %v, want not_found", err)
	}
	if n, b := s.Stats(); n != 0 || b != 0 {
		t.Fatalf("%d objects, %d bytes left", n, b)
	}

	// Retain is all or none: one unknown handle retains nothing.
	a, _ := s.Put("j", []byte("a"))
	if err := s.Retain("j", []int64{a, 999}); kindOf(err) != abi.KindNotFound {
		t.Fatalf("retain with an unknown handle: %v", err)
	}
	s.Release("j", a)
	if s.Has("j", a) {
		t.Fatal("a failed retain held the object")
	}

	// A parent holds its children: releasing it frees them; ReleaseAll skips what is gone.
	c1, _ := s.Put("j", []byte("c1"))
	c2, _ := s.Put("j", []byte("c2"))
	p, po := s.Pending("j")
	s.Adopt(po, []int64{c1, c2})
	s.Complete(po, []byte(fmt.Sprintf(`[{"$ref":%d},{"$ref":%d}]`, c1, c2)), nil)
	if got := s.ChildrenOf("j", p); !slices.Equal(got, []int64{c1, c2}) {
		t.Fatalf("children %v, want %v", got, []int64{c1, c2})
	}
	s.ReleaseAll([]int64{p, 12345})
	if s.Has("j", c1) || s.Has("j", c2) || s.Has("j", p) {
		t.Fatal("the children outlived their parent")
	}

	// A result whose object was freed while its task ran is dropped.
	h, o := s.Pending("j")
	s.Release("j", h)
	s.Complete(o, []byte("late"), nil)
	if n, b := s.Stats(); n != 0 || b != 0 {
		t.Fatalf("a dropped result kept: %d objects, %d bytes", n, b)
	}
}

// Handles are scoped to a job: every operation of another job finds nothing, and changes nothing.
func TestStore_JobCannotSeeAnotherJobsObject(t *testing.T) {
	ctx := context.Background()
	s := objects.New(0)
	h, err := s.Put("a", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"get":     func() error { _, err := s.Get(ctx, "b", h, 0); return err }(),
		"lookup":  func() error { _, err := s.Lookup("b", h); return err }(),
		"release": s.Release("b", h),
		"retain":  s.Retain("b", []int64{h}),
		"wait": func() error {
			_, err := s.Wait(ctx, "b", &abi.WaitRequest{Handles: []int64{h}, NumReturns: 1})
			return err
		}(),
	} {
		if kindOf(err) != abi.KindNotFound || !strings.Contains(err.Error(), `job "b"`) {
			t.Errorf("%s from job b: %v, want not_found naming the job", name, err)
		}
	}
	if s.Has("b", h) || s.ChildrenOf("b", h) != nil {
		t.Error("job b sees job a's object")
	}
	// Job b's checksum of other bytes is not cached as the checksum of job a's object.
	s.SumOf("b", h, []byte("x"))
	if got := s.SumOf("a", h, []byte("secret")); got != objects.Checksum([]byte("secret")) {
		t.Errorf("job a's checksum %s, want %s", got, objects.Checksum([]byte("secret")))
	}
	if got, err := s.Get(ctx, "a", h, 0); err != nil || string(got) != "secret" {
		t.Fatalf("job a's own get: %q, %v", got, err)
	}
	// Job b's release did not take job a's reference: one release frees it.
	if err := s.Release("a", h); err != nil || s.Has("a", h) {
		t.Fatalf("job a's release: %v (still held: %v)", err, s.Has("a", h))
	}
}

// Past the cap, a store with a spill folder moves the least recently used objects to disk and
// reads them back whole; without one, a put is refused with ErrLimit and a result that does not
// fit fails its object.
func TestStore_SpillPastTheCapAndReadBack(t *testing.T) {
	ctx := context.Background()
	s := objects.New(1000).WithSpill(t.TempDir())
	var hs []int64
	for i := range 12 {
		h, err := s.Put("j", bytes.Repeat([]byte{byte(i)}, 250))
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		hs = append(hs, h)
	}
	if n, b := s.Stats(); n != 12 || b > 1000 {
		t.Fatalf("%d objects, %d bytes in memory (cap 1000)", n, b)
	}
	if spilled, spills, _ := s.SpillStats(); spilled != 8*250 || spills != 8 {
		t.Fatalf("%d bytes in %d spills, want 8 objects", spilled, spills)
	}
	for i, h := range hs {
		got, err := s.Get(ctx, "j", h, time.Second)
		if err != nil || !bytes.Equal(got, bytes.Repeat([]byte{byte(i)}, 250)) {
			t.Fatalf("get %d: %d bytes, %v", i, len(got), err)
		}
		if _, b := s.Stats(); b > 1000 {
			t.Fatalf("after get %d: %d bytes in memory", i, b)
		}
	}
	if _, _, restores := s.SpillStats(); restores < 8 {
		t.Fatalf("%d restores, want at least 8", restores)
	}

	full := objects.New(100)
	if _, err := full.Put("j", make([]byte, 101)); statusOf(err) != abi.ErrLimit || !strings.Contains(err.Error(), "raise the cap") {
		t.Fatalf("a put past the cap without spilling: %v, want ErrLimit saying what to do", err)
	}
	h, o := full.Pending("j")
	full.Complete(o, make([]byte, 101), nil)
	if _, err := full.Get(ctx, "j", h, 0); kindOf(err) != abi.KindSystem || !strings.Contains(err.Error(), "cannot keep a result of 101 bytes") {
		t.Fatalf("a result past the cap: %v", err)
	}
}

// Wait returns as soon as num_returns objects are ready, or what is ready when its timeout
// passes (at once for 0), ready ones listed first up to num_returns.
func TestStore_WaitNumReturnsAndTimeout(t *testing.T) {
	ctx := context.Background()
	s := objects.New(0)
	h1, o1 := s.Pending("j")
	h2, o2 := s.Pending("j")
	h3, _ := s.Pending("j")
	s.Complete(o1, []byte("1"), nil)
	all := []int64{h1, h2, h3}

	for _, c := range []struct {
		name          string
		num           int
		timeoutMs     int64
		ready, others []int64
	}{
		{"one ready is enough", 1, -1, []int64{h1}, []int64{h2, h3}},
		{"timeout 0 answers now", 2, 0, []int64{h1}, []int64{h2, h3}},
		{"timeout passes", 3, 30, []int64{h1}, []int64{h2, h3}},
	} {
		start := time.Now()
		res, err := s.Wait(ctx, "j", &abi.WaitRequest{Handles: all, NumReturns: c.num, TimeoutMs: c.timeoutMs})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !slices.Equal(res.Ready, c.ready) || !slices.Equal(res.NotReady, c.others) {
			t.Errorf("%s: ready %v, not ready %v; want %v, %v", c.name, res.Ready, res.NotReady, c.ready, c.others)
		}
		if took := time.Since(start); c.timeoutMs > 0 && took < time.Duration(c.timeoutMs)*time.Millisecond {
			t.Errorf("%s: returned after %v, before its timeout", c.name, took)
		}
	}

	// Without a timeout, it returns when the second object becomes ready.
	go func() {
		time.Sleep(10 * time.Millisecond)
		s.Complete(o2, nil, &abi.Error{Kind: abi.KindGuest, Message: "failed"}) // a failed object is ready too
	}()
	res, err := s.Wait(ctx, "j", &abi.WaitRequest{Handles: all, NumReturns: 2, TimeoutMs: -1})
	if err != nil || !slices.Equal(res.Ready, []int64{h1, h2}) || !slices.Equal(res.NotReady, []int64{h3}) {
		t.Fatalf("wait for two: %+v, %v", res, err)
	}
	if _, err := s.Get(ctx, "j", h2, 0); kindOf(err) != abi.KindGuest {
		t.Fatalf("the failed object's get: %v", err)
	}

	// A get of an object still pending times out with ErrTimeout; an ended context ends a wait.
	if _, err := s.Get(ctx, "j", h3, 10*time.Millisecond); statusOf(err) != abi.ErrTimeout {
		t.Fatalf("get of a pending object: %v, want ErrTimeout", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := s.Wait(cctx, "j", &abi.WaitRequest{Handles: all, NumReturns: 3, TimeoutMs: -1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait past its context: %v", err)
	}
}

// A value on another node is fetched through Fetch on the first get, by one fetch however many
// gets ask at once, and kept here; freeing an object whose copy there this node owns calls
// ReleaseRemote, freeing a borrowed one does not.
func TestStore_RemoteValueFetchedOnceAndReleased(t *testing.T) {
	ctx := context.Background()
	s := objects.New(0)
	var fetches atomic.Int32
	s.Fetch = func(ctx context.Context, h int64, o *objects.Object) ([]byte, error) {
		fetches.Add(1)
		loc := s.LocationOf(o)
		time.Sleep(10 * time.Millisecond) // let the other gets queue behind this one
		return []byte(fmt.Sprintf("from %s/%d", loc.Node, loc.Handle)), nil
	}
	var mu sync.Mutex
	var released []objects.Location
	s.ReleaseRemote = func(loc objects.Location) {
		mu.Lock()
		released = append(released, loc)
		mu.Unlock()
	}

	owned := &objects.Location{Node: "w1", API: "http://w1", Job: "j", Handle: 7, Size: -1, Owned: true}
	h, o := s.Pending("j")
	s.CompleteRemote(o, owned, "the task that made it")
	if o.Lineage() != "the task that made it" {
		t.Fatalf("lineage %v", o.Lineage())
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if got, err := s.Get(ctx, "j", h, time.Second); err != nil || string(got) != "from w1/7" {
				t.Errorf("get: %q, %v", got, err)
			}
		})
	}
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for 8 concurrent gets, want 1", n)
	}
	if _, loc := s.Locate(h); loc == nil || loc.Node != owned.Node || loc.Handle != owned.Handle || !loc.Owned {
		t.Fatalf("location %+v, want %+v", loc, owned)
	}

	borrowed := s.Remote("j", &objects.Location{Node: "w2", Job: "j", Handle: 3, Size: -1})
	s.Release("j", borrowed)
	s.Release("j", h)
	if len(released) != 1 || released[0].Node != "w1" || released[0].Handle != 7 {
		t.Fatalf("released %+v, want only the owned copy on w1", released)
	}

	// Without a Fetch (not in a cluster) a remote value cannot be read, and says why.
	alone := objects.New(0)
	r := alone.Remote("j", &objects.Location{Node: "w2", Job: "j", Handle: 3, Size: -1})
	if _, err := alone.Get(ctx, "j", r, 0); kindOf(err) != abi.KindSystem || !strings.Contains(err.Error(), "cannot reach it") {
		t.Fatalf("get without Fetch: %v", err)
	}
}

// MapRefs stands a local object for each handle a fetched value refers to, the same one on every
// fetch, held by the value's object; a rebuilt value is kept here and then needs no fetch.
func TestStore_MapRefsAndKeepRebuilt(t *testing.T) {
	ctx := context.Background()
	s := objects.New(0)
	loc := objects.Location{Node: "w1", API: "http://w1", Job: "j", Handle: 5, Size: -1, Owned: true}
	h := s.Remote("j", &loc)
	o, err := s.Lookup("j", h)
	if err != nil {
		t.Fatal(err)
	}
	m := s.MapRefs(o, loc, []int64{9, 10})
	again := s.MapRefs(o, loc, []int64{10, 9})
	if len(m) != 2 || m[9] == m[10] || again[9] != m[9] || again[10] != m[10] {
		t.Fatalf("first %v, second %v", m, again)
	}
	if _, cl := s.Locate(m[9]); cl == nil || cl.Node != "w1" || cl.Handle != 9 || cl.Owned {
		t.Fatalf("the stand-in for 9 is at %+v, want borrowed handle 9 on w1", cl)
	}

	// The task ran again here: the value stays here for good.
	o.LockPull()
	err = s.KeepRebuilt(h, o, []byte("rebuilt"))
	o.UnlockPull()
	if err != nil {
		t.Fatal(err)
	}
	if s.LocationOf(o) != nil {
		t.Fatal("a rebuilt value still has a location elsewhere")
	}
	if got, err := s.Get(ctx, "j", h, 0); err != nil || string(got) != "rebuilt" {
		t.Fatalf("get of the rebuilt value: %q, %v", got, err)
	}
	s.Release("j", h)
	if s.Has("j", m[9]) || s.Has("j", m[10]) {
		t.Fatal("the stand-ins outlived the object that holds them")
	}
}

// ReleaseJob cancels a job's pending tasks and frees all its objects, whoever holds them, and
// leaves other jobs' objects alone.
func TestStore_ReleaseJob(t *testing.T) {
	s := objects.New(0)
	h1, _ := s.Put("a", []byte("1"))
	s.Retain("a", []int64{h1})
	_, o := s.Pending("a")
	cancelled := false
	o.Cancel = func() { cancelled = true }
	other, _ := s.Put("b", []byte("2"))
	s.ReleaseJob("a")
	if !cancelled {
		t.Error("the pending task was not cancelled")
	}
	if n, _ := s.Stats(); n != 1 || !s.Has("b", other) {
		t.Fatalf("%d objects left, want only job b's", n)
	}
}

func TestRefsIn(t *testing.T) {
	for _, c := range []struct {
		out           string
		owned         []int64
		kept, dropped []int64
	}{
		{`{"a":{"$ref":3},"b":{"$ref": 12}}`, []int64{3, 4, 12}, []int64{3, 12}, []int64{4}},
		{`{"$ref":33}`, []int64{3}, nil, []int64{3}}, // 33 is not 3
		{`"$ref":`, []int64{1}, nil, []int64{1}},
		{`anything`, nil, nil, nil},
	} {
		kept, dropped := objects.RefsIn([]byte(c.out), c.owned)
		if !slices.Equal(kept, c.kept) || !slices.Equal(dropped, c.dropped) {
			t.Errorf("RefsIn(%s, %v) = %v, %v; want %v, %v", c.out, c.owned, kept, dropped, c.kept, c.dropped)
		}
	}
}

func TestChecksumIsCRC32C(t *testing.T) {
	// The CRC-32C check value (RFC 3720, B.4).
	if got := objects.Checksum([]byte("123456789")); got != "e3069283" {
		t.Fatalf("Checksum(123456789) = %s, want e3069283", got)
	}
}
