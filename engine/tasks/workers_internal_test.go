package tasks

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Workers run every function, reuse idle goroutines rather than start new ones, and all exit
// when done closes (the package's goleak check sees to the last).
func TestWorkers_RunEverythingReuseAndExit(t *testing.T) {
	done := make(chan struct{})
	w := newWorkers(done, time.Minute)
	var ran atomic.Int64
	var wg sync.WaitGroup
	for round := 0; round < 20; round++ {
		for i := 0; i < 10; i++ {
			wg.Add(1)
			w.run(func() { ran.Add(1); wg.Done() })
		}
		wg.Wait()
	}
	if ran.Load() != 200 {
		t.Fatalf("ran %d functions, want 200", ran.Load())
	}
	// Workers park in the idle list right after their function; give the last ones a moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		w.mu.Lock()
		idle := len(w.ready)
		w.mu.Unlock()
		if idle > 0 && idle <= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d idle workers after 20 rounds of 10 functions, want 1..10: goroutines are not reused", idle)
		}
		runtime.Gosched()
	}
	close(done)
	for {
		w.mu.Lock()
		idle := len(w.ready)
		w.mu.Unlock()
		if idle == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d workers still idle after done closed", idle)
		}
		time.Sleep(time.Millisecond)
	}
}

// A worker that times out while run hands it a function still runs that function.
func TestWorkers_IdleTimeoutRacingARun(t *testing.T) {
	done := make(chan struct{})
	defer close(done)
	w := newWorkers(done, time.Microsecond)
	var ran atomic.Int64
	for i := 0; i < 2000; i++ {
		var wg sync.WaitGroup
		wg.Add(1)
		w.run(func() { ran.Add(1); wg.Done() })
		wg.Wait()
	}
	if ran.Load() != 2000 {
		t.Fatalf("ran %d, want 2000", ran.Load())
	}
}
