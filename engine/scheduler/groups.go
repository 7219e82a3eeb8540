package scheduler

import (
	"fmt"
	"sort"
)

// Strategy says how a placement group's bundles spread over nodes (Ray's strategies).
type Strategy string

// The strategies.
const (
	// Pack puts the bundles on as few nodes as it can: one if any node holds them all.
	Pack Strategy = "PACK"
	// Spread puts them on as many distinct nodes as it can: one each if it can.
	Spread Strategy = "SPREAD"
	// StrictPack puts every bundle on one node, or fails.
	StrictPack Strategy = "STRICT_PACK"
	// StrictSpread puts each bundle on a different node, or fails.
	StrictSpread Strategy = "STRICT_SPREAD"
)

// ParseStrategy checks a strategy's name.
func ParseStrategy(s string) (Strategy, error) {
	switch st := Strategy(s); st {
	case Pack, Spread, StrictPack, StrictSpread:
		return st, nil
	case "":
		return Pack, nil
	}
	return "", fmt.Errorf("unknown placement strategy %q (PACK, SPREAD, STRICT_PACK or STRICT_SPREAD)", s)
}

// PlaceBundles assigns every bundle to a node, all or none: out[i] is bundle i's node. The
// bundles assigned to a node fit its available resources together. It fails, saying whether
// the group could ever be placed (on the nodes' totals) or only not now.
func PlaceBundles(nodes []Node, bundles []Resources, st Strategy) ([]string, error) {
	if len(bundles) == 0 {
		return nil, fmt.Errorf("a placement group needs at least one bundle")
	}
	if out := placeBundles(nodes, bundles, st, false); out != nil {
		return out, nil
	}
	if placeBundles(nodes, bundles, st, true) == nil {
		return nil, fmt.Errorf("%s group of %d bundles can never be placed on these %d nodes", st, len(bundles), len(nodes))
	}
	return nil, fmt.Errorf("%s group of %d bundles cannot be placed now: not enough free resources", st, len(bundles))
}

func placeBundles(nodes []Node, bundles []Resources, st Strategy, totals bool) []string {
	room := make([]Resources, len(nodes))
	for i, n := range nodes {
		if totals {
			room[i] = n.Total.Clone()
		} else {
			room[i] = n.Available.Clone()
		}
	}
	switch st {
	case StrictPack:
		return strictPack(nodes, room, bundles)
	case StrictSpread:
		return strictSpread(nodes, room, bundles)
	case Pack:
		if out := strictPack(nodes, room, bundles); out != nil {
			return out
		}
		return greedy(nodes, room, bundles, true)
	default: // Spread
		if out := strictSpread(nodes, room, bundles); out != nil {
			return out
		}
		return greedy(nodes, room, bundles, false)
	}
}

func sum(bundles []Resources) Resources {
	out := Resources{}
	for _, b := range bundles {
		for k, v := range b {
			out[k] += v
		}
	}
	return out
}

// strictPack puts everything on the node that fits the sum and is left least loaded.
func strictPack(nodes []Node, room []Resources, bundles []Resources) []string {
	cands := make([]Node, len(nodes))
	for i, n := range nodes {
		cands[i] = Node{ID: n.ID, Total: n.Total, Available: room[i]}
	}
	id, err := Place(cands, sum(bundles))
	if err != nil || id == "" {
		return nil
	}
	out := make([]string, len(bundles))
	for i := range out {
		out[i] = id
	}
	return out
}

// strictSpread finds a node per bundle, all distinct, by bipartite matching (augmenting paths):
// it finds an assignment whenever one exists.
func strictSpread(nodes []Node, room []Resources, bundles []Resources) []string {
	if len(bundles) > len(nodes) {
		return nil
	}
	owner := make([]int, len(nodes)) // node -> bundle, -1 when free
	for i := range owner {
		owner[i] = -1
	}
	var try func(b int, seen []bool) bool
	try = func(b int, seen []bool) bool {
		for j := range nodes {
			if seen[j] || !room[j].Fits(bundles[b]) {
				continue
			}
			seen[j] = true
			if owner[j] < 0 || try(owner[j], seen) {
				owner[j] = b
				return true
			}
		}
		return false
	}
	for b := range bundles {
		if !try(b, make([]bool, len(nodes))) {
			return nil
		}
	}
	out := make([]string, len(bundles))
	for j, b := range owner {
		if b >= 0 {
			out[b] = nodes[j].ID
		}
	}
	return out
}

// greedy places the largest bundles first, each on the node that already holds the most bundles
// (pack) or the fewest (spread) among those it fits, ties to the roomier node then the id.
func greedy(nodes []Node, room []Resources, bundles []Resources, pack bool) []string {
	order := make([]int, len(bundles))
	for i := range order {
		order[i] = i
	}
	size := func(r Resources) float64 {
		s := 0.0
		for _, v := range r {
			s += v
		}
		return s
	}
	sort.SliceStable(order, func(a, b int) bool { return size(bundles[order[a]]) > size(bundles[order[b]]) })
	count := make([]int, len(nodes))
	out := make([]string, len(bundles))
	for _, b := range order {
		best := -1
		for j := range nodes {
			if !room[j].Fits(bundles[b]) {
				continue
			}
			if best < 0 {
				best = j
				continue
			}
			better := count[j] > count[best]
			if !pack {
				better = count[j] < count[best]
			}
			if count[j] == count[best] {
				better = size(room[j]) > size(room[best]) || (size(room[j]) == size(room[best]) && nodes[j].ID < nodes[best].ID)
			}
			if better {
				best = j
			}
		}
		if best < 0 {
			return nil
		}
		for k, v := range bundles[b] {
			room[best][k] -= v
		}
		count[best]++
		out[b] = nodes[best].ID
	}
	return out
}
