package objects

import (
	"container/list"
	"context"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// DefaultBytes caps the bytes held by a node's object store when its owner does not.
const DefaultBytes = 1 << 30

// DefaultSpillBytes caps the bytes a store spills to disk at once unless SetSpillCap says
// otherwise: past it, a put that does not fit in memory is refused, so that no job fills the
// node's disk.
const DefaultSpillBytes = 8 << 30

// Store keeps a node's objects in memory: values put by guests and the results of tasks and
// actor calls. Handles are unique on the node and scoped to a job: a job cannot see another job's
// objects. Objects are reference counted: the call that made one holds it until the call ends
// (unless its output refers to it, which hands it on), a task it is passed to holds it while the
// task runs, and an object whose value refers to others holds them. At zero references an object
// is freed; a task still producing it runs on, but its result is dropped. It is safe for
// concurrent use.
//
// With a spill folder (WithSpill), a put or a result that would pass the memory cap first moves
// the least recently used ready objects to files there, and a get of a spilled object reads it
// back (spilling others if need be): the cap bounds memory, not what the store holds. Spill
// files are written and read under the store's lock, so a spill stalls the node's other object
// operations for the time of the I/O; they are removed when their object is freed and when the
// store opens (objects do not survive a restart).
type Store struct {
	mu    sync.Mutex
	next  int64
	objs  map[int64]*Object
	bytes int64 // in memory
	cap   int64

	spillDir     string     // empty: no spilling, a put past the cap is refused
	lru          *list.List // ready objects in memory, most recently used first; values are handles
	spilledBytes int64      // on disk
	spillCap     int64      // the most spilled at once (0: DefaultSpillBytes)
	// jobBytes are each job's object bytes here, in memory and spilled; JobQuota, when set,
	// caps them (<= 0: no cap). Set once before the store is shared.
	jobBytes map[string]int64
	JobQuota func(job string) int64
	spills   int64 // objects written out, ever
	restores int64 // objects read back, ever
	// handles of pending objects, for Complete (which is given the object)
	handles map[*Object]int64

	// Fetch reads the value of an object that lives on another node (its location), rebuilding
	// it from its lineage when that node is lost; the store calls it with no lock held, the
	// caller holding o's pull lock (LockPull). ReleaseRemote tells a node that holds an object
	// this node owns that it is no longer needed; the store calls it under its lock, so it must
	// not block or call the store. Both are the engine's (its remote.go), set once before the
	// store is shared; nil outside a cluster.
	Fetch         func(ctx context.Context, h int64, o *Object) ([]byte, error)
	ReleaseRemote func(loc Location)
	pulled        int64 // objects fetched from other nodes, ever
}

// Object is one value, ready when its channel is closed; then exactly one of data and err is
// meaningful. Cancel, for a task's result, stops the task: the engine sets it right after
// Pending and calls it to cancel the task.
type Object struct {
	job      string
	ready    chan struct{}
	data     []byte
	err      error
	Cancel   context.CancelFunc
	refs     int     // holders; freed at zero
	children []int64 // objects this one's value refers to, held by it
	freed    bool
	elem     *list.Element // its place in the store's LRU list while in memory and ready
	spilled  string        // the file holding its data while spilled
	size     int64         // len(data), in memory or spilled
	counted  bool          // size is counted in its job's bytes

	// loc, when set, is where the value lives on another node: a get fetches it from there and
	// keeps a copy here. lineage, for the result of a task this node placed on another, is that
	// task: when the node holding the value is lost, running it again rebuilds the value.
	// The lineage is the engine's (its placement's task): the store keeps it, never looking inside.
	loc     *Location
	lineage any
	pullMu  sync.Mutex // one fetch or rebuild at a time
	sum     string     // CRC-32C of the value, hex, once computed (values do not change)
}

// Ready is closed when o's value or error is set.
func (o *Object) Ready() <-chan struct{} { return o.ready }

// Err is the error o failed with, or nil; meaningful once Ready is closed.
func (o *Object) Err() error { return o.err }

// Lineage is the task that made o on another node, as given to CompleteRemote (nil when none);
// it is set before Ready is closed and does not change after.
func (o *Object) Lineage() any { return o.lineage }

// LockPull takes o's pull lock: one fetch or rebuild of o's value at a time. Fetch runs under
// it, and so must the engine's rebuild.
func (o *Object) LockPull() { o.pullMu.Lock() }

// UnlockPull releases o's pull lock.
func (o *Object) UnlockPull() { o.pullMu.Unlock() }

// Location is where an object's value lives on another node.
type Location struct {
	Node, API string // the holding node and its API URL
	Job       string
	Handle    int64  // the object's handle there
	Size      int64  // -1: not known
	Sum       string // CRC-32C of the value, hex; "": not known
	// Owned: this node owns the copy there (the result of a task it placed), so freeing the
	// object here releases it there. A borrowed location (an argument pulled from its owner) is
	// released by its owner.
	Owned bool
	// children maps the holder's handles that the value refers to ({"$ref": N}) to this node's
	// objects standing for them, made as the value is fetched.
	children map[int64]int64
}

// New returns an empty store that holds up to capBytes in memory (DefaultBytes when capBytes
// <= 0) and refuses puts past that cap until WithSpill gives it a folder to spill to.
func New(capBytes int64) *Store {
	if capBytes <= 0 {
		capBytes = DefaultBytes
	}
	return &Store{objs: map[int64]*Object{}, cap: capBytes, lru: list.New(), jobBytes: map[string]int64{}, spillCap: DefaultSpillBytes}
}

// WithSpill makes the store spill to dataDir/objects-spill, emptied now. If the folder cannot
// be made, the store keeps refusing puts past its cap, and says why in the error.
func (s *Store) WithSpill(dataDir string) *Store {
	dir := filepath.Join(dataDir, "objects-spill")
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o700); err == nil {
		s.spillDir = dir
	}
	return s
}

// makeRoomLocked spills least recently used ready objects until n more bytes fit in memory.
func (s *Store) makeRoomLocked(n int64) error {
	for s.bytes+n > s.cap {
		back := s.lru.Back()
		if s.spillDir == "" || back == nil || n > s.cap {
			why := "release objects or raise the cap"
			if s.spillDir != "" {
				why = "nothing more to spill"
			}
			return fmt.Errorf("object store full: %d of %d bytes held, %d more asked; %s", s.bytes, s.cap, n, why)
		}
		h := back.Value.(int64)
		o := s.objs[h]
		if s.spilledBytes+o.size > s.spillCap {
			return fmt.Errorf("object store full: %d of %d bytes held in memory and %d spilled, the node's spill cap of %d; release objects", s.bytes, s.cap, s.spilledBytes, s.spillCap)
		}
		path := filepath.Join(s.spillDir, "obj-"+strconv.FormatInt(h, 10))
		if err := os.WriteFile(path, o.data, 0o600); err != nil {
			os.Remove(path)
			return fmt.Errorf("object store full: %d of %d bytes held, and spilling object %d failed: %v", s.bytes, s.cap, h, err)
		}
		s.lru.Remove(back)
		o.elem, o.spilled, o.data = nil, path, nil
		s.bytes -= o.size
		s.spilledBytes += o.size
		s.spills++
	}
	return nil
}

// keepLocked records that ready object h now holds data in memory.
func (s *Store) keepLocked(h int64, o *Object, data []byte) {
	o.data, o.size = data, int64(len(data))
	s.bytes += o.size
	o.elem = s.lru.PushFront(h)
	if !o.counted {
		s.jobBytes[o.job] += o.size
		o.counted = true
	}
}

// quotaLocked refuses n more bytes of job past its quota.
func (s *Store) quotaLocked(job string, n int64) error {
	if s.JobQuota == nil {
		return nil
	}
	if q := s.JobQuota(job); q > 0 && s.jobBytes[job]+n > q {
		return &abi.Error{Kind: abi.KindLimit, Limit: abi.QuotaJobObjects,
			Message: fmt.Sprintf("job %s holds %d bytes of objects on this node; %d more would pass its quota of %d (object_bytes): release objects", job, s.jobBytes[job], n, q)}
	}
	return nil
}

// JobBytes reports the bytes of job's objects here, in memory and spilled.
func (s *Store) JobBytes(job string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jobBytes[job]
}

// SetSpillCap caps the bytes spilled at once (<= 0: DefaultSpillBytes).
func (s *Store) SetSpillCap(n int64) *Store {
	if n <= 0 {
		n = DefaultSpillBytes
	}
	s.spillCap = n
	return s
}

// restoreLocked reads a spilled object back into memory.
func (s *Store) restoreLocked(h int64, o *Object) ([]byte, error) {
	data, err := os.ReadFile(o.spilled)
	if err == nil && int64(len(data)) != o.size {
		err = fmt.Errorf("%d bytes where %d were written", len(data), o.size)
	}
	if err != nil {
		return nil, &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("object %d: restore from its spill file: %v", h, err)}
	}
	if err := s.makeRoomLocked(o.size); err != nil {
		return data, nil // it does not fit in memory now: hand the bytes over, keep the file
	}
	os.Remove(o.spilled)
	s.spilledBytes -= o.size
	o.spilled = ""
	s.restores++
	s.keepLocked(h, o, data)
	return data, nil
}

// NewHandle returns a fresh handle, for objects and actors alike.
func (s *Store) NewHandle() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	return s.next
}

// Put stores data as a ready object of job.
func (s *Store) Put(job string, data []byte) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.quotaLocked(job, int64(len(data))); err != nil {
		return 0, err
	}
	if err := s.makeRoomLocked(int64(len(data))); err != nil {
		return 0, &host.StatusError{Status: abi.ErrLimit, Message: err.Error()}
	}
	s.next++
	o := &Object{job: job, ready: make(chan struct{}), refs: 1}
	close(o.ready)
	s.objs[s.next] = o
	s.keepLocked(s.next, o, data)
	return s.next, nil
}

// Pending creates an object of job that a task or actor call will complete.
func (s *Store) Pending(job string) (int64, *Object) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	o := &Object{job: job, ready: make(chan struct{}), refs: 1}
	s.objs[s.next] = o
	if s.handles == nil {
		s.handles = map[*Object]int64{}
	}
	s.handles[o] = s.next
	return s.next, o
}

// Complete makes a pending object ready with data or err. Output that does not fit the store
// fails the object instead.
func (s *Store) Complete(o *Object, data []byte, err error) {
	s.mu.Lock()
	h := s.handles[o]
	delete(s.handles, o)
	if err == nil && !o.freed {
		if qerr := s.quotaLocked(o.job, int64(len(data))); qerr != nil {
			err = qerr
		} else if merr := s.makeRoomLocked(int64(len(data))); merr != nil {
			err = &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("cannot keep a result of %d bytes: %v", len(data), merr)}
		}
	}
	switch {
	case o.freed:
		// Nothing refers to it any more: keep nothing.
	case err == nil:
		s.keepLocked(h, o, data)
	default:
		o.err = err
	}
	s.mu.Unlock()
	close(o.ready)
}

// Lookup returns object h of job; a job cannot see another job's objects: for those, and for
// handles not held, it returns an *abi.Error of kind not_found.
func (s *Store) Lookup(job string, h int64) (*Object, error) {
	s.mu.Lock()
	o := s.objs[h]
	s.mu.Unlock()
	if o == nil || o.job != job {
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no object %d in job %q", h, job)}
	}
	return o, nil
}

// SumOf returns the CRC-32C of data, the value of object h of job, computing it once per object.
func (s *Store) SumOf(job string, h int64, data []byte) string {
	s.mu.Lock()
	o := s.objs[h]
	if o == nil || o.job != job {
		o = nil
	} else if o.sum != "" {
		defer s.mu.Unlock()
		return o.sum
	}
	s.mu.Unlock()
	sum := Checksum(data)
	if o != nil {
		s.mu.Lock()
		o.sum = sum
		s.mu.Unlock()
	}
	return sum
}

// Has says whether object h of job is held.
func (s *Store) Has(job string, h int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.objs[h]
	return o != nil && o.job == job
}

// Get waits for object h of job to be ready; timeout < 0 waits until ctx ends.
func (s *Store) Get(ctx context.Context, job string, h int64, timeout time.Duration) ([]byte, error) {
	o, err := s.Lookup(job, h)
	if err != nil {
		return nil, err
	}
	select {
	case <-o.ready:
	default:
		var expire <-chan time.Time
		if timeout >= 0 {
			t := time.NewTimer(timeout)
			defer t.Stop()
			expire = t.C
		}
		select {
		case <-o.ready:
		case <-expire:
			return nil, &host.StatusError{Status: abi.ErrTimeout, Message: fmt.Sprintf("object %d not ready after %v", h, timeout)}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if o.err != nil {
		return nil, o.err
	}
	s.mu.Lock()
	switch {
	case o.spilled != "":
		defer s.mu.Unlock()
		return s.restoreLocked(h, o)
	case o.elem != nil:
		s.lru.MoveToFront(o.elem)
	case o.loc != nil:
		s.mu.Unlock()
		return s.pull(ctx, h, o)
	}
	s.mu.Unlock()
	return o.data, nil
}

// pull fetches the value of object h from the node that holds it and keeps a copy here, when it
// fits (spilling others if need be); concurrent gets of it share one fetch.
func (s *Store) pull(ctx context.Context, h int64, o *Object) ([]byte, error) {
	o.pullMu.Lock()
	defer o.pullMu.Unlock()
	s.mu.Lock()
	switch {
	case o.freed:
		s.mu.Unlock()
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("object %d was released", h)}
	case o.spilled != "":
		defer s.mu.Unlock()
		return s.restoreLocked(h, o)
	case o.elem != nil: // fetched while this get waited for the lock
		s.lru.MoveToFront(o.elem)
		s.mu.Unlock()
		return o.data, nil
	}
	fetch := s.Fetch
	s.mu.Unlock()
	if fetch == nil {
		return nil, &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("object %d lives on another node and this node cannot reach it", h)}
	}
	data, err := fetch(ctx, h, o)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pulled++
	if !o.freed && o.elem == nil && o.spilled == "" && s.makeRoomLocked(int64(len(data))) == nil {
		s.keepLocked(h, o, data)
	}
	return data, nil
}

// Remote makes a ready object of job whose value lives at loc, and returns its handle.
func (s *Store) Remote(job string, loc *Location) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	o := &Object{job: job, ready: make(chan struct{}), refs: 1, loc: loc, size: loc.Size}
	close(o.ready)
	s.objs[s.next] = o
	return s.next
}

// CompleteRemote makes a pending object ready with its value at loc, made by task lineage.
func (s *Store) CompleteRemote(o *Object, loc *Location, lineage any) {
	s.mu.Lock()
	delete(s.handles, o)
	if o.freed {
		s.mu.Unlock()
		if loc.Owned && s.ReleaseRemote != nil {
			s.ReleaseRemote(*loc)
		}
		close(o.ready)
		return
	}
	o.loc, o.lineage, o.size = loc, lineage, loc.Size
	s.mu.Unlock()
	close(o.ready)
}

// Locate returns where the value of ready object h lives: nil when it is here.
func (s *Store) Locate(h int64) (*Object, *Location) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.objs[h]
	if o == nil || o.loc == nil {
		return o, nil
	}
	l := *o.loc
	return o, &l
}

// LocationOf returns a copy of where the value of ready object o lives: nil when it is here.
func (s *Store) LocationOf(o *Object) *Location {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.loc == nil {
		return nil
	}
	l := *o.loc
	return &l
}

// Relocate records that the value of object o now lives at loc (its task ran again there). The
// caller holds o's pull lock.
func (s *Store) Relocate(o *Object, loc *Location) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o.loc = loc
}

// KeepRebuilt keeps data, the value of object h (o) rebuilt on this node, here for good: o no
// longer has a location elsewhere. An object freed meanwhile keeps nothing. The caller holds o's
// pull lock.
func (s *Store) KeepRebuilt(h int64, o *Object, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !o.freed {
		if err := s.makeRoomLocked(int64(len(data))); err != nil {
			return &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("object %d rebuilt but cannot be kept: %v", h, err)}
		}
		o.loc = nil
		s.keepLocked(h, o, data)
	}
	return nil
}

// MapRefs returns, for each handle refs names on loc's node (the handles o's value there refers
// to), the local object standing for it, making the missing ones (held by o) as borrowed
// locations there. Fetching o's value again maps each handle to the same object.
func (s *Store) MapRefs(o *Object, loc Location, refs []int64) map[int64]int64 {
	s.mu.Lock()
	if o.loc != nil && o.loc.children == nil {
		o.loc.children = map[int64]int64{}
	}
	m := map[int64]int64{}
	var missing []int64
	for _, r := range refs {
		if o.loc != nil {
			if h, ok := o.loc.children[r]; ok {
				m[r] = h
				continue
			}
		}
		missing = append(missing, r)
	}
	s.mu.Unlock()
	var made []int64
	for _, r := range missing {
		h := s.Remote(o.job, &Location{Node: loc.Node, API: loc.API, Job: loc.Job, Handle: r, Size: -1})
		m[r] = h
		made = append(made, h)
	}
	s.mu.Lock()
	if o.loc != nil {
		for _, r := range missing {
			o.loc.children[r] = m[r]
		}
	}
	s.mu.Unlock()
	s.Adopt(o, made)
	return m
}

// ChildrenOf returns the objects object h of job refers to, which a node fetching its value must
// know of.
func (s *Store) ChildrenOf(job string, h int64) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o := s.objs[h]; o != nil && o.job == job {
		return slices.Clone(o.children)
	}
	return nil
}

// Release drops one reference to object h of job.
func (s *Store) Release(job string, h int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.objs[h]
	if o == nil || o.job != job {
		return &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no object %d in job %q", h, job)}
	}
	s.dropLocked(h, o)
	return nil
}

// ReleaseAll drops one reference to each of hs, ignoring those already gone.
func (s *Store) ReleaseAll(hs []int64) {
	if len(hs) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range hs {
		if o := s.objs[h]; o != nil {
			s.dropLocked(h, o)
		}
	}
}

// dropLocked drops a reference to o and frees it, and what it holds, at zero.
func (s *Store) dropLocked(h int64, o *Object) {
	o.refs--
	if o.refs > 0 {
		return
	}
	delete(s.objs, h)
	o.freed = true
	if o.loc != nil && o.loc.Owned && s.ReleaseRemote != nil {
		s.ReleaseRemote(*o.loc)
	}
	select {
	case <-o.ready:
		switch {
		case o.spilled != "":
			os.Remove(o.spilled)
			s.spilledBytes -= o.size
			o.spilled = ""
		case o.elem != nil:
			s.lru.Remove(o.elem)
			o.elem = nil
			s.bytes -= o.size
		}
		if o.counted {
			if s.jobBytes[o.job] -= o.size; s.jobBytes[o.job] <= 0 {
				delete(s.jobBytes, o.job)
			}
			o.counted = false
		}
		o.data = nil
	default:
	}
	for _, c := range o.children {
		if co := s.objs[c]; co != nil {
			s.dropLocked(c, co)
		}
	}
}

// ReleaseJob cancels the pending tasks of job and frees its objects, whoever holds them.
func (s *Store) ReleaseJob(job string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, o := range s.objs {
		if o.job != job {
			continue
		}
		if o.Cancel != nil {
			o.Cancel()
		}
		if s.objs[h] == o { // still there: a child freed with its parent is gone
			o.refs = 1
			s.dropLocked(h, o)
		}
	}
}

// Retain adds a reference to each of hs in job: all or none.
func (s *Store) Retain(job string, hs []int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range hs {
		if o := s.objs[h]; o == nil || o.job != job {
			return &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no object %d in job %q", h, job)}
		}
	}
	for _, h := range hs {
		s.objs[h].refs++
	}
	return nil
}

// Adopt makes object parent the holder of children (their references pass to it).
func (s *Store) Adopt(parent *Object, children []int64) {
	if len(children) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if parent.freed {
		for _, c := range children {
			if co := s.objs[c]; co != nil {
				s.dropLocked(c, co)
			}
		}
		return
	}
	parent.children = append(parent.children, children...)
}

// Wait blocks until req.NumReturns of the handles are ready, or the timeout passes, or ctx ends.
func (s *Store) Wait(ctx context.Context, job string, req *abi.WaitRequest) (*abi.WaitResult, error) {
	objs := make([]*Object, len(req.Handles))
	for i, h := range req.Handles {
		o, err := s.Lookup(job, h)
		if err != nil {
			return nil, err
		}
		objs[i] = o
	}
	result := func() (*abi.WaitResult, int) {
		res := &abi.WaitResult{Ready: []int64{}, NotReady: []int64{}}
		for i, o := range objs {
			select {
			case <-o.ready:
				if len(res.Ready) < req.NumReturns {
					res.Ready = append(res.Ready, req.Handles[i])
					continue
				}
			default:
			}
			res.NotReady = append(res.NotReady, req.Handles[i])
		}
		return res, len(res.Ready)
	}
	if res, n := result(); n >= req.NumReturns || req.TimeoutMs == 0 {
		return res, nil
	}
	// One goroutine per handle not yet ready, each reporting once; all end with wctx.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{}, len(objs))
	for _, o := range objs {
		go func(o *Object) {
			select {
			case <-o.ready:
				done <- struct{}{}
			case <-wctx.Done():
			}
		}(o)
	}
	var expire <-chan time.Time
	if req.TimeoutMs > 0 {
		t := time.NewTimer(time.Duration(req.TimeoutMs) * time.Millisecond)
		defer t.Stop()
		expire = t.C
	}
	for {
		select {
		case <-done:
			if res, n := result(); n >= req.NumReturns {
				return res, nil
			}
		case <-expire:
			res, _ := result()
			return res, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum is the CRC-32C (Castagnoli) of b, in hex: what Location.Sum and SumOf hold.
func Checksum(b []byte) string {
	var s [4]byte
	v := crc32.Checksum(b, castagnoli)
	s[0], s[1], s[2], s[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	return hex.EncodeToString(s[:])
}

// SpillStats reports the bytes spilled now, and the objects spilled and restored ever.
func (s *Store) SpillStats() (bytes, spills, restores int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spilledBytes, s.spills, s.restores
}

// Stats reports the number of objects and the bytes they hold in memory.
func (s *Store) Stats() (n int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.objs), s.bytes
}
