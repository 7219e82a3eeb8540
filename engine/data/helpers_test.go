package data

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"
	"go.uber.org/goleak"
)

// tb is what the helpers need of *testing.T and *rapid.T alike.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// genRows makes n rows of the test schema: id (unique int), k (string or null), v (int or null),
// f (float or null), flag (bool).
func genRows(rng *rand.Rand, n int) []map[string]any {
	rows := make([]map[string]any, n)
	keys := []string{"a", "b", "c", "d", "é"}
	for i := range rows {
		r := map[string]any{"id": int64(i), "flag": rng.IntN(2) == 0}
		if rng.IntN(8) == 0 {
			r["k"] = nil
		} else {
			r["k"] = keys[rng.IntN(len(keys))]
		}
		if rng.IntN(8) == 0 {
			r["v"] = nil
		} else {
			r["v"] = int64(rng.IntN(101) - 50)
		}
		if rng.IntN(8) == 0 {
			r["f"] = nil
		} else {
			r["f"] = float64(rng.IntN(2000)-1000) / 8
		}
		rows[i] = r
	}
	return rows
}

// testOptions are small batches and a counting allocator; cap 0 keeps the default.
func testOptions(batch int, memCap int64) (Options, *CountingAllocator) {
	mem := NewCountingAllocator(memory.NewGoAllocator())
	return Options{Allocator: mem, BatchRows: batch, MemoryCap: memCap, TempDir: os.TempDir()}, mem
}

func takeAll(t tb, d *Dataset) []map[string]any {
	t.Helper()
	rows, err := d.Take(context.Background(), 1<<30)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return rows
}

// checkNoLeak fails if the allocator still holds bytes after a run.
func checkNoLeak(t tb, mem *CountingAllocator) {
	t.Helper()
	if c := mem.Current(); c != 0 {
		t.Fatalf("allocator holds %d bytes after the run: a batch was not released", c)
	}
}

func rowString(r map[string]any) string {
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := "{"
	for _, k := range keys {
		s += fmt.Sprintf("%s:%#v ", k, r[k])
	}
	return s + "}"
}

func sameRows(t tb, what string, got, want []map[string]any) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d\n got: %v\nwant: %v", what, len(got), len(want), head(got), head(want))
	}
	for i := range got {
		if a, b := rowString(got[i]), rowString(want[i]); a != b {
			t.Fatalf("%s: row %d\n got %s\nwant %s", what, i, a, b)
		}
	}
}

func sameRowSet(t tb, what string, got, want []map[string]any) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d\n got: %v\nwant: %v", what, len(got), len(want), head(got), head(want))
	}
	keys := func(rs []map[string]any) []string {
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = rowString(r)
		}
		sort.Strings(out)
		return out
	}
	g, w := keys(got), keys(want)
	for i := range g {
		if g[i] != w[i] {
			t.Fatalf("%s: sorted row %d\n got %s\nwant %s", what, i, g[i], w[i])
		}
	}
}

func head(rs []map[string]any) []string {
	var out []string
	for i, r := range rs {
		if i == 5 {
			out = append(out, "...")
			break
		}
		out = append(out, rowString(r))
	}
	return out
}

func project(rows []map[string]any, cols ...string) []map[string]any {
	out := make([]map[string]any, len(rows))
	for i, r := range rows {
		m := map[string]any{}
		for _, c := range cols {
			m[c] = r[c]
		}
		out[i] = m
	}
	return out
}
