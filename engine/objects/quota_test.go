package objects_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lumenflow/lumen/engine/objects"
	"github.com/lumenflow/lumen/sdk/abi"
)

// TestStore_JobQuotaCountsMemoryAndSpill: a job's objects, in memory or spilled, count against
// its quota; a put or a result past it is refused naming the quota, another job is not held
// back, and releasing gives the room back.
func TestStore_JobQuotaCountsMemoryAndSpill(t *testing.T) {
	s := objects.New(100).WithSpill(t.TempDir())
	s.JobQuota = func(job string) int64 {
		if job == "small" {
			return 150
		}
		return 0
	}
	a, err := s.Put("small", make([]byte, 80))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put("small", make([]byte, 60)); err != nil { // spills a: 140 of 150
		t.Fatal(err)
	}
	_, err = s.Put("small", make([]byte, 20))
	var ae *abi.Error
	if !errors.As(err, &ae) || ae.Kind != abi.KindLimit || ae.Limit != abi.QuotaJobObjects {
		t.Fatalf("put past the job's quota: %v", err)
	}
	h, o := s.Pending("small")
	s.Complete(o, make([]byte, 20), nil)
	if _, err := s.Get(context.Background(), "small", h, -1); !errors.As(err, &ae) || ae.Limit != abi.QuotaJobObjects {
		t.Fatalf("a result past the job's quota: %v", err)
	}
	if _, err := s.Put("other", make([]byte, 90)); err != nil {
		t.Fatalf("another job: %v", err)
	}
	if got := s.JobBytes("small"); got != 140 {
		t.Fatalf("job bytes %d, want 140", got)
	}
	if err := s.Release("small", a); err != nil {
		t.Fatal(err)
	}
	if got := s.JobBytes("small"); got != 60 {
		t.Fatalf("job bytes after a release %d, want 60", got)
	}
	if _, err := s.Put("small", make([]byte, 20)); err != nil {
		t.Fatalf("put after a release: %v", err)
	}
}

// TestStore_SpillHasACap: past the node's spill cap a put that does not fit in memory is
// refused, and says so, instead of filling the disk.
func TestStore_SpillHasACap(t *testing.T) {
	s := objects.New(100).WithSpill(t.TempDir()).SetSpillCap(150)
	for i := range 2 {
		if _, err := s.Put("j", make([]byte, 100)); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	_, err := s.Put("j", make([]byte, 100))
	if err == nil || !strings.Contains(err.Error(), "spill cap") {
		t.Fatalf("put past the spill cap: %v", err)
	}
}
