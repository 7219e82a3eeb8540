package cluster

import (
	"slices"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/raftstore"
)

// The leader's watch: a node is silent only after DeadAfter of silence the leader itself watched
// in its term. Heartbeats recorded in an earlier term, a fresh election and the leader's own
// stall (a pause) start the watch again; the leader never names itself; former members are
// forgotten.
func TestLiveness_SilentOnlyAfterAWatchedDeadAfter(t *testing.T) {
	cfg := Config{HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 2 * time.Second}
	members := []raftstore.Member{{ID: "n1"}, {ID: "n2"}, {ID: "n3"}}
	l := &liveness{seen: map[string]time.Time{}, last: map[string]wire.Heartbeat{}}
	t0 := time.Unix(1000, 0)
	// Term 3: heard n2 long ago (as if in an earlier term), nothing of n3.
	l.seen["n2"] = t0.Add(-time.Hour)
	l.last["n2"], l.last["gone"] = wire.Heartbeat{ID: "n2"}, wire.Heartbeat{ID: "gone"}
	tick := func(term uint64, now time.Time) []string { return l.silent("n1", term, members, now, cfg) }
	// The first run in a term starts the watch there: the stale heartbeat does not count.
	if got := tick(3, t0); len(got) != 0 {
		t.Fatalf("a fresh leader found %v silent at once", got)
	}
	if _, ok := l.last["gone"]; ok {
		t.Error("a node no longer a member is still in the view")
	}
	// Runs every heartbeat: nobody is silent before DeadAfter from the start of the watch.
	now := t0
	for now.Sub(t0) < cfg.DeadAfter {
		if got := tick(3, now); len(got) != 0 {
			t.Fatalf("at %v into the term: %v silent", now.Sub(t0), got)
		}
		now = now.Add(cfg.HeartbeatInterval)
		if now.Sub(t0) < 1500*time.Millisecond {
			l.seen["n3"] = now // n3 heartbeats for 1.5 s, then falls silent
		}
	}
	// Past DeadAfter: n2 (never heard in this term) is silent; n3 not yet (heard 0.5 s ago);
	// the leader itself, which nobody heard, never.
	now = t0.Add(cfg.DeadAfter + 100*time.Millisecond)
	if got := tick(3, now); !slices.Equal(got, []string{"n2"}) {
		t.Fatalf("after DeadAfter: %v silent, want [n2]", got)
	}
	for ; now.Sub(t0) < 1500*time.Millisecond+cfg.DeadAfter+100*time.Millisecond; now = now.Add(cfg.HeartbeatInterval) {
		tick(3, now)
	}
	if got := tick(3, now); !slices.Equal(got, []string{"n2", "n3"}) {
		t.Fatalf("after n3's DeadAfter: %v silent, want [n2 n3]", got)
	}
	// The leader's own loop stalled for 25 s (a SIGSTOP): it watched nothing, so it starts again.
	now = now.Add(25 * time.Second)
	if got := tick(3, now); len(got) != 0 {
		t.Fatalf("after its own 25 s stall the leader found %v silent", got)
	}
	// A new term starts a new watch, whatever the last one held.
	now = now.Add(cfg.HeartbeatInterval)
	l.seen["n2"] = now
	if got := tick(4, now.Add(cfg.HeartbeatInterval)); len(got) != 0 {
		t.Fatalf("a new term found %v silent at once", got)
	}
	if _, ok := l.seen["n2"]; ok {
		t.Error("a new term kept a heartbeat of the last one")
	}
}
