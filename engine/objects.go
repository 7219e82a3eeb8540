package engine

import (
	"container/list"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// DefaultObjectStoreBytes caps the bytes held by a node's object store when Config does not.
const DefaultObjectStoreBytes = 1 << 30

// objectStore keeps a node's objects in memory: values put by guests and the results of tasks and
// actor calls. Handles are unique on the node and scoped to a job: a job cannot see another job's
// objects. Objects are reference counted: the call that made one holds it until the call ends
// (unless its output refers to it, which hands it on), a task it is passed to holds it while the
// task runs, and an object whose value refers to others holds them. At zero references an object
// is freed; a task still producing it runs on, but its result is dropped. It is safe for
// concurrent use.
//
// With a spill folder (withSpill), a put or a result that would pass the memory cap first moves
// the least recently used ready objects to files there, and a get of a spilled object reads it
// back (spilling others if need be): the cap bounds memory, not what the store holds. Spill
// files are written and read under the store's lock, so a spill stalls the node's other object
// operations for the time of the I/O; they are removed when their object is freed and when the
// store opens (objects do not survive a restart).
type objectStore struct {
	mu    sync.Mutex
	next  int64
	objs  map[int64]*object
	bytes int64 // in memory
	cap   int64

	spillDir     string     // empty: no spilling, a put past the cap is refused
	lru          *list.List // ready objects in memory, most recently used first; values are handles
	spilledBytes int64      // on disk
	spills       int64      // objects written out, ever
	restores     int64      // objects read back, ever
	// handles of pending objects, for complete (which is given the object)
	handles map[*object]int64
}

// object is one value, ready when its channel is closed; then exactly one of data and err is
// meaningful. cancel, for a task's result, stops the task.
type object struct {
	job      string
	ready    chan struct{}
	data     []byte
	err      error
	cancel   context.CancelFunc
	refs     int     // holders; freed at zero
	children []int64 // objects this one's value refers to, held by it
	freed    bool
	elem     *list.Element // its place in the store's LRU list while in memory and ready
	spilled  string        // the file holding its data while spilled
	size     int64         // len(data), in memory or spilled
}

func newObjectStore(capBytes int64) *objectStore {
	if capBytes <= 0 {
		capBytes = DefaultObjectStoreBytes
	}
	return &objectStore{objs: map[int64]*object{}, cap: capBytes, lru: list.New()}
}

// withSpill makes the store spill to dataDir/objects-spill, emptied now. If the folder cannot
// be made, the store keeps refusing puts past its cap, and says why in the error.
func (s *objectStore) withSpill(dataDir string) *objectStore {
	dir := filepath.Join(dataDir, "objects-spill")
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o700); err == nil {
		s.spillDir = dir
	}
	return s
}

// makeRoomLocked spills least recently used ready objects until n more bytes fit in memory.
func (s *objectStore) makeRoomLocked(n int64) error {
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
func (s *objectStore) keepLocked(h int64, o *object, data []byte) {
	o.data, o.size = data, int64(len(data))
	s.bytes += o.size
	o.elem = s.lru.PushFront(h)
}

// restoreLocked reads a spilled object back into memory.
func (s *objectStore) restoreLocked(h int64, o *object) ([]byte, error) {
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

// handle returns a fresh handle, for objects and actors alike.
func (s *objectStore) handle() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	return s.next
}

// put stores data as a ready object of job.
func (s *objectStore) put(job string, data []byte) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.makeRoomLocked(int64(len(data))); err != nil {
		return 0, &host.StatusError{Status: abi.ErrLimit, Message: err.Error()}
	}
	s.next++
	o := &object{job: job, ready: make(chan struct{}), refs: 1}
	close(o.ready)
	s.objs[s.next] = o
	s.keepLocked(s.next, o, data)
	return s.next, nil
}

// pending creates an object of job that a task or actor call will complete.
func (s *objectStore) pending(job string) (int64, *object) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	o := &object{job: job, ready: make(chan struct{}), refs: 1}
	s.objs[s.next] = o
	if s.handles == nil {
		s.handles = map[*object]int64{}
	}
	s.handles[o] = s.next
	return s.next, o
}

// complete makes a pending object ready with data or err. Output that does not fit the store
// fails the object instead.
func (s *objectStore) complete(o *object, data []byte, err error) {
	s.mu.Lock()
	h := s.handles[o]
	delete(s.handles, o)
	if err == nil && !o.freed {
		if merr := s.makeRoomLocked(int64(len(data))); merr != nil {
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

func (s *objectStore) lookup(job string, h int64) (*object, error) {
	s.mu.Lock()
	o := s.objs[h]
	s.mu.Unlock()
	if o == nil || o.job != job {
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no object %d in job %q", h, job)}
	}
	return o, nil
}

// get waits for object h of job to be ready; timeout < 0 waits until ctx ends.
func (s *objectStore) get(ctx context.Context, job string, h int64, timeout time.Duration) ([]byte, error) {
	o, err := s.lookup(job, h)
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
	defer s.mu.Unlock()
	switch {
	case o.spilled != "":
		return s.restoreLocked(h, o)
	case o.elem != nil:
		s.lru.MoveToFront(o.elem)
	}
	return o.data, nil
}

// release drops one reference to object h of job.
func (s *objectStore) release(job string, h int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.objs[h]
	if o == nil || o.job != job {
		return &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no object %d in job %q", h, job)}
	}
	s.dropLocked(h, o)
	return nil
}

// releaseAll drops one reference to each of hs, ignoring those already gone.
func (s *objectStore) releaseAll(hs []int64) {
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
func (s *objectStore) dropLocked(h int64, o *object) {
	o.refs--
	if o.refs > 0 {
		return
	}
	delete(s.objs, h)
	o.freed = true
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
		o.data = nil
	default:
	}
	for _, c := range o.children {
		if co := s.objs[c]; co != nil {
			s.dropLocked(c, co)
		}
	}
}

// retain adds a reference to each of hs in job: all or none.
func (s *objectStore) retain(job string, hs []int64) error {
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

// adopt makes object parent the holder of children (their references pass to it).
func (s *objectStore) adopt(parent *object, children []int64) {
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

// wait blocks until req.NumReturns of the handles are ready, or the timeout passes, or ctx ends.
func (s *objectStore) wait(ctx context.Context, job string, req *abi.WaitRequest) (*abi.WaitResult, error) {
	objs := make([]*object, len(req.Handles))
	for i, h := range req.Handles {
		o, err := s.lookup(job, h)
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
		go func(o *object) {
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

// spillStats reports the bytes spilled now, and the objects spilled and restored ever.
func (s *objectStore) spillStats() (bytes, spills, restores int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spilledBytes, s.spills, s.restores
}

// stats reports the number of objects and the bytes they hold in memory.
func (s *objectStore) stats() (n int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.objs), s.bytes
}
