package scheduler

import (
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// valid checks an assignment: every bundle on a node, the bundles of a node fit it together,
// and the strategy's hard constraint.
func valid(nodes []Node, bundles []Resources, st Strategy, out []string) error {
	if len(out) != len(bundles) {
		return fmt.Errorf("%d assignments for %d bundles", len(out), len(bundles))
	}
	room := map[string]Resources{}
	for _, n := range nodes {
		room[n.ID] = n.Available.Clone()
	}
	used := map[string]int{}
	for i, id := range out {
		r, ok := room[id]
		if !ok {
			return fmt.Errorf("bundle %d on unknown node %q", i, id)
		}
		for k, v := range bundles[i] {
			r[k] -= v
			if r[k] < -eps {
				return fmt.Errorf("node %s overcommitted on %s", id, k)
			}
		}
		used[id]++
	}
	switch st {
	case StrictPack:
		if len(used) != 1 {
			return fmt.Errorf("STRICT_PACK on %d nodes", len(used))
		}
	case StrictSpread:
		if len(used) != len(bundles) {
			return fmt.Errorf("STRICT_SPREAD shares nodes: %v", out)
		}
	}
	return nil
}

// exists says by brute force whether some assignment satisfies st's hard constraint (for PACK
// and SPREAD: whether some assignment exists at all).
func exists(nodes []Node, bundles []Resources, st Strategy) bool {
	out := make([]string, len(bundles))
	var rec func(i int) bool
	rec = func(i int) bool {
		if i == len(bundles) {
			return valid(nodes, bundles, st, out) == nil
		}
		for _, n := range nodes {
			out[i] = n.ID
			if rec(i + 1) {
				return true
			}
		}
		return false
	}
	return rec(0)
}

func genCluster(t *rapid.T) ([]Node, []Resources) {
	nn := rapid.IntRange(1, 4).Draw(t, "nodes")
	var nodes []Node
	for i := range nn {
		tot := Resources{CPU: float64(rapid.IntRange(0, 8).Draw(t, "cpu")), GPU: float64(rapid.IntRange(0, 2).Draw(t, "gpu"))}
		avail := Resources{CPU: float64(rapid.IntRange(0, int(tot[CPU])).Draw(t, "acpu")), GPU: float64(rapid.IntRange(0, int(tot[GPU])).Draw(t, "agpu"))}
		nodes = append(nodes, Node{ID: fmt.Sprintf("n%d", i), Total: tot, Available: avail})
	}
	nb := rapid.IntRange(1, 4).Draw(t, "bundles")
	var bundles []Resources
	for range nb {
		bundles = append(bundles, Resources{CPU: float64(rapid.IntRange(0, 4).Draw(t, "bcpu")), GPU: float64(rapid.IntRange(0, 1).Draw(t, "bgpu"))})
	}
	return nodes, bundles
}

// Every strategy returns only valid assignments; the strict ones find one whenever one exists;
// PACK uses one node whenever one node can hold everything, SPREAD distinct nodes whenever
// possible; and a refusal says "never" exactly when the totals could not hold the group either.
func TestPlaceBundles_Properties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nodes, bundles := genCluster(t)
		for _, st := range []Strategy{Pack, Spread, StrictPack, StrictSpread} {
			out, err := PlaceBundles(nodes, bundles, st)
			if err == nil {
				if verr := valid(nodes, bundles, st, out); verr != nil {
					t.Fatalf("%s: %v (out %v)", st, verr, out)
				}
			}
			if (st == StrictPack || st == StrictSpread) && (err == nil) != exists(nodes, bundles, st) {
				t.Fatalf("%s: err %v, but brute force says feasible=%v", st, err, exists(nodes, bundles, st))
			}
			if st == Pack && exists(nodes, bundles, StrictPack) {
				if err != nil || valid(nodes, bundles, StrictPack, out) != nil {
					t.Fatalf("PACK did not use one node though one holds all: %v %v", out, err)
				}
			}
			if st == Spread && exists(nodes, bundles, StrictSpread) {
				if err != nil || valid(nodes, bundles, StrictSpread, out) != nil {
					t.Fatalf("SPREAD shared nodes though it need not: %v %v", out, err)
				}
			}
			if err != nil && strings.Contains(err.Error(), "never") {
				full := make([]Node, len(nodes))
				for i, n := range nodes {
					full[i] = Node{ID: n.ID, Total: n.Total, Available: n.Total}
				}
				if _, ferr := PlaceBundles(full, bundles, st); ferr == nil {
					t.Fatalf("%s said never, but the totals hold it", st)
				}
			}
		}
	})
}

func TestParseStrategy(t *testing.T) {
	for _, s := range []string{"PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD", ""} {
		if _, err := ParseStrategy(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	if _, err := ParseStrategy("pack"); err == nil {
		t.Error("lower-case strategy accepted")
	}
	if _, err := PlaceBundles([]Node{{ID: "a"}}, nil, Pack); err == nil {
		t.Error("empty group accepted")
	}
}
