package scheduler

import (
	"math/rand"
	"strings"
	"testing"

	"github.com/lumenflow/lumen/sdk/abi"
)

func TestLedger_RefusesWhatCanNeverFit(t *testing.T) {
	l := NewLedger(Resources{CPU: 2, Memory: 1 << 30})
	err := l.Check(Resources{CPU: 4, "tpu": 1})
	if err == nil || !strings.Contains(err.Error(), "cpu 4 (the node has 2), tpu 1 (the node has 0)") {
		t.Fatalf("Check = %v", err)
	}
	if err := l.Check(Resources{CPU: 2}); err != nil {
		t.Fatal(err)
	}
}

func TestLedger_AcquireRelease(t *testing.T) {
	l := NewLedger(Resources{CPU: 1})
	for i := 0; i < 10; i++ {
		if !l.TryAcquire(Resources{CPU: 0.1}) {
			t.Fatalf("tenth %d of a cpu did not fit", i)
		}
	}
	if l.TryAcquire(Resources{CPU: 0.1}) {
		t.Fatal("eleventh tenth fitted")
	}
	for i := 0; i < 10; i++ {
		l.Release(Resources{CPU: 0.1})
	}
	if !l.Used().IsZero() {
		t.Fatalf("used after release: %v", l.Used())
	}
}

func TestLedger_ReleaseTooMuchPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	NewLedger(Resources{CPU: 1}).Release(Resources{CPU: 1})
}

// Random acquire/release sequences never let usage pass the total or go negative.
func TestLedger_NeverOvercommits(t *testing.T) {
	seed := int64(20261125)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	l := NewLedger(Resources{CPU: 4, Memory: 1000, "x": 2})
	var held []Resources
	for i := 0; i < 10000; i++ {
		if len(held) > 0 && rng.Intn(2) == 0 {
			j := rng.Intn(len(held))
			l.Release(held[j])
			held = append(held[:j], held[j+1:]...)
		} else {
			d := Resources{CPU: float64(rng.Intn(3)) / 2, Memory: float64(rng.Intn(400)), "x": float64(rng.Intn(2))}
			if l.TryAcquire(d) {
				held = append(held, d)
			}
		}
		for k, v := range l.Used() {
			if v > l.Total()[k]+eps || v < -eps {
				t.Fatalf("step %d: %s used %v of %v", i, k, v, l.Total()[k])
			}
		}
	}
}

func TestPlace(t *testing.T) {
	nodes := []Node{
		{ID: "a", Total: Resources{CPU: 4}, Available: Resources{CPU: 1}},
		{ID: "b", Total: Resources{CPU: 4}, Available: Resources{CPU: 3}},
		{ID: "c", Total: Resources{CPU: 2, GPU: 1}, Available: Resources{CPU: 2, GPU: 1}},
	}
	cases := []struct {
		d       Resources
		want    string
		wantErr bool
	}{
		{Resources{CPU: 1}, "b", false}, // b and c both end half loaded: the lower id wins
		{Resources{GPU: 1}, "c", false},
		{Resources{CPU: 3.5}, "", false},
		{Resources{CPU: 8}, "", true},
	}
	for _, c := range cases {
		got, err := Place(nodes, c.d)
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("Place(%v) = %q, %v; want %q, err %v", c.d, got, err, c.want, c.wantErr)
		}
	}
}

func TestFromABI(t *testing.T) {
	r := FromABI(abi.Resources{CPU: 0.5, MemoryBytes: 10, Custom: map[string]float64{"tpu": 2, "zero": 0}})
	if r.String() != "cpu=0.5 memory_bytes=10 tpu=2" {
		t.Fatalf("FromABI = %s", r)
	}
}
