package engine

import (
	"context"
	"fmt"
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
type objectStore struct {
	mu    sync.Mutex
	next  int64
	objs  map[int64]*object
	bytes int64
	cap   int64
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
}

func newObjectStore(capBytes int64) *objectStore {
	if capBytes <= 0 {
		capBytes = DefaultObjectStoreBytes
	}
	return &objectStore{objs: map[int64]*object{}, cap: capBytes}
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
	if s.bytes+int64(len(data)) > s.cap {
		return 0, &host.StatusError{Status: abi.ErrLimit, Message: fmt.Sprintf(
			"object store full: %d of %d bytes held, %d more asked; release objects or raise the cap", s.bytes, s.cap, len(data))}
	}
	s.next++
	o := &object{job: job, ready: make(chan struct{}), data: data, refs: 1}
	close(o.ready)
	s.objs[s.next] = o
	s.bytes += int64(len(data))
	return s.next, nil
}

// pending creates an object of job that a task or actor call will complete.
func (s *objectStore) pending(job string) (int64, *object) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	o := &object{job: job, ready: make(chan struct{}), refs: 1}
	s.objs[s.next] = o
	return s.next, o
}

// complete makes a pending object ready with data or err. Output that does not fit the store
// fails the object instead.
func (s *objectStore) complete(o *object, data []byte, err error) {
	s.mu.Lock()
	if err == nil && s.bytes+int64(len(data)) > s.cap {
		err = &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("object store full: cannot keep a result of %d bytes (%d of %d held)", len(data), s.bytes, s.cap)}
	}
	switch {
	case o.freed:
		// Nothing refers to it any more: keep nothing.
	case err == nil:
		o.data = data
		s.bytes += int64(len(data))
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
		s.bytes -= int64(len(o.data))
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

// stats reports the number of objects and the bytes they hold.
func (s *objectStore) stats() (n int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.objs), s.bytes
}
