package data

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"pgregory.net/rapid"
)

// Every operator is checked against a straightforward reference over []map[string]any rows,
// on generated data, with batch sizes and memory caps drawn so the spilling paths run too.

type propCase struct {
	rows []map[string]any
	opts Options
	mem  *CountingAllocator
	seed uint64
}

func drawCase(t *rapid.T) propCase {
	seed := rapid.Uint64().Draw(t, "seed")
	n := rapid.IntRange(0, 300).Draw(t, "rows")
	batch := rapid.IntRange(1, 64).Draw(t, "batch_rows")
	memCap := rapid.SampledFrom([]int64{0, 4 << 10, 16 << 10, 64 << 10}).Draw(t, "memory_cap")
	opts, mem := testOptions(batch, memCap)
	return propCase{rows: genRows(rand.New(rand.NewPCG(seed, 1)), n), opts: opts, mem: mem, seed: seed}
}

func (c propCase) ds() *Dataset { return FromItems(c.rows).WithOptions(c.opts) }

// items gives FromItems rows for the reference: FromItems infers only columns that occur, so an
// empty input has no columns.
func TestOps_FilterSelectAddColumnLimit(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		c := drawCase(rt)
		ctx := context.Background()
		// filter
		got, err := c.ds().Filter("v > 3 and k != 'a'").Take(ctx, 1<<30)
		if err != nil {
			rt.Fatal(err)
		}
		var want []map[string]any
		for _, r := range c.rows {
			v, _ := r["v"].(int64)
			k, kok := r["k"].(string)
			if r["v"] != nil && v > 3 && kok && k != "a" {
				want = append(want, r)
			}
		}
		sameRows(rt, "filter", got, want)
		if len(c.rows) == 0 {
			return
		}
		// select + add_column
		got = takeAll(rt, c.ds().AddColumn("w", "v * 2 - id").Select("w", "k"))
		want = nil
		for _, r := range c.rows {
			var w any
			if v, ok := r["v"].(int64); ok {
				w = v*2 - r["id"].(int64)
			}
			want = append(want, map[string]any{"w": w, "k": r["k"]})
		}
		sameRows(rt, "add_column+select", got, want)
		// limit
		n := rapid.IntRange(0, len(c.rows)+3).Draw(rt, "limit")
		got = takeAll(rt, c.ds().Limit(int64(n)))
		sameRows(rt, "limit", got, c.rows[:min(n, len(c.rows))])
		checkNoLeak(rt, c.mem)
	})
}

// refCompare orders values as Sort does: nulls last, NaN after numbers.
func refCompare(a, b any, desc bool) int {
	if a == nil || b == nil {
		switch {
		case a == nil && b == nil:
			return 0
		case a == nil:
			return 1
		}
		return -1
	}
	var c int
	switch x := a.(type) {
	case int64:
		c = cmp.Compare(x, b.(int64))
	case float64:
		c = cmp.Compare(x, b.(float64))
	case string:
		c = strings.Compare(x, b.(string))
	case bool:
		c = cmp.Compare(b2i(x), b2i(b.(bool)))
	}
	if desc {
		c = -c
	}
	return c
}

func TestOps_SortMatchesStableSort(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		c := drawCase(rt)
		if len(c.rows) == 0 {
			return
		}
		keys := rapid.SampledFrom([][]string{{"k"}, {"v"}, {"f"}, {"k", "v"}, {"flag", "f", "k"}}).Draw(rt, "keys")
		desc := rapid.Bool().Draw(rt, "desc")
		got := takeAll(rt, c.ds().Sort(keys, desc))
		want := append([]map[string]any(nil), c.rows...)
		sort.SliceStable(want, func(i, j int) bool {
			for _, k := range keys {
				if x := refCompare(want[i][k], want[j][k], desc); x != 0 {
					return x < 0
				}
			}
			return false
		})
		sameRows(rt, fmt.Sprintf("sort %v desc=%v", keys, desc), got, want)
		checkNoLeak(rt, c.mem)
	})
}

type refAgg struct {
	n, cnt int64
	sum    int64
	fsum   float64
	fn     int64
	min    any
	max    any
}

func TestOps_GroupByAggregateMatchesMapLoop(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		c := drawCase(rt)
		if len(c.rows) == 0 {
			return
		}
		keys := rapid.SampledFrom([][]string{{"k"}, {"k", "flag"}, {}, {"v"}, {"v", "k"}}).Draw(rt, "keys")
		got := takeAll(rt, c.ds().GroupBy(keys...).Aggregate(
			Agg{"n", AggCount, ""}, Agg{"nv", AggCount, "v"}, Agg{"s", AggSum, "v"}, Agg{"m", AggMean, "f"},
			Agg{"lo", AggMin, "v"}, Agg{"hi", AggMax, "k"}, Agg{"fs", AggSum, "f"}))
		groups := map[string]*refAgg{}
		keyRow := map[string]map[string]any{}
		for _, r := range c.rows {
			kr := map[string]any{}
			for _, k := range keys {
				kr[k] = r[k]
			}
			ks := rowString(kr)
			g := groups[ks]
			if g == nil {
				g = &refAgg{}
				groups[ks], keyRow[ks] = g, kr
			}
			g.n++
			if v, ok := r["v"].(int64); ok {
				g.cnt++
				g.sum += v
				if g.min == nil || v < g.min.(int64) {
					g.min = v
				}
			}
			if f, ok := r["f"].(float64); ok {
				g.fn++
				g.fsum += f
			}
			if k, ok := r["k"].(string); ok && (g.max == nil || k > g.max.(string)) {
				g.max = k
			}
		}
		var want []map[string]any
		for ks, g := range groups {
			row := map[string]any{}
			for k, v := range keyRow[ks] {
				row[k] = v
			}
			row["n"], row["nv"] = g.n, g.cnt
			row["s"], row["lo"], row["hi"] = any(nil), g.min, g.max
			row["m"], row["fs"] = any(nil), any(nil)
			if g.cnt > 0 {
				row["s"] = g.sum
			}
			if g.fn > 0 {
				row["m"] = g.fsum / float64(g.fn)
				row["fs"] = g.fsum
			}
			want = append(want, row)
		}
		// Float sums are exact here (multiples of 1/8 well inside 2^53), so compare exactly.
		sameRowSet(rt, fmt.Sprintf("groupby %v", keys), got, want)
		checkNoLeak(rt, c.mem)
	})
}

func TestOps_RandomShufflePermutesDeterministically(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		c := drawCase(rt)
		if len(c.rows) == 0 {
			return
		}
		seed := rapid.Int64().Draw(rt, "shuffle_seed")
		a := takeAll(rt, c.ds().RandomShuffle(seed))
		b := takeAll(rt, c.ds().RandomShuffle(seed))
		sameRows(rt, "same seed, same order", a, b)
		sameRowSet(rt, "shuffle keeps the rows", a, c.rows)
		if len(c.rows) >= 50 {
			moved := 0
			for i, r := range a {
				if r["id"].(int64) != int64(i) {
					moved++
				}
			}
			if moved < len(a)/2 {
				rt.Fatalf("only %d of %d rows moved", moved, len(a))
			}
		}
		checkNoLeak(rt, c.mem)
	})
}

func TestOps_RepartitionSplitsEvenlyInOrder(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		c := drawCase(rt)
		n := rapid.IntRange(1, 12).Draw(rt, "partitions")
		counts := map[int]int64{}
		var got []map[string]any
		lastPart := -1
		err := c.ds().Repartition(n).run(context.Background(), func(it item) error {
			if it.part < lastPart {
				return fmt.Errorf("partition %d after %d", it.part, lastPart)
			}
			lastPart = it.part
			counts[it.part] += it.rec.NumRows()
			got = appendRows(got, it.rec, int(it.rec.NumRows()))
			return nil
		})
		if err != nil {
			rt.Fatal(err)
		}
		sameRows(rt, "repartition keeps order", got, c.rows)
		total := int64(len(c.rows))
		for p := range n {
			want := (int64(p+1))*total/int64(n) - int64(p)*total/int64(n)
			if counts[p] != want {
				rt.Fatalf("partition %d has %d rows, want %d (total %d, n %d)", p, counts[p], want, total, n)
			}
		}
		checkNoLeak(rt, c.mem)
	})
}

func TestOps_UnionConcatenates(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		c := drawCase(rt)
		if len(c.rows) == 0 {
			return
		}
		cut := rapid.IntRange(0, len(c.rows)).Draw(rt, "cut")
		a := FromItems(c.rows[:cut]).Select("id", "flag")
		b := FromItems(c.rows[cut:]).Select("id", "flag")
		if cut == 0 || cut == len(c.rows) {
			return // FromItems of no rows has no columns
		}
		got := takeAll(rt, a.Union(b).WithOptions(c.opts))
		sameRows(rt, "union", got, project(c.rows, "id", "flag"))
		_, err := a.Union(FromItems(c.rows[cut:]).Select("flag", "id")).WithOptions(c.opts).Count(context.Background())
		if !errors.Is(err, ErrSchemaMismatch) || !strings.Contains(err.Error(), "input 1") {
			rt.Fatalf("union of mismatched inputs: %v", err)
		}
	})
}

func TestOps_JoinMatchesNestedLoop(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		c := drawCase(rt)
		if len(c.rows) == 0 {
			return
		}
		rng := rand.New(rand.NewPCG(c.seed, 2))
		var right []map[string]any
		for i := range rapid.IntRange(1, 40).Draw(rt, "right_rows") {
			var k any = []string{"a", "b", "c", "z"}[rng.IntN(4)]
			if rng.IntN(6) == 0 {
				k = nil
			}
			right = append(right, map[string]any{"k": k, "v": int64(i), "r": int64(rng.IntN(10))})
		}
		how := rapid.SampledFrom([]JoinType{JoinInner, JoinLeft}).Draw(rt, "how")
		if !hasString(c.rows, "k") || !hasString(right, "k") {
			return // an all-null column infers as type null, which does not join with utf8
		}
		got := takeAll(rt, c.ds().Join(FromItems(right), []string{"k"}, how))
		var want []map[string]any
		for _, l := range c.rows {
			matched := false
			for _, r := range right {
				if l["k"] != nil && r["k"] != nil && l["k"] == r["k"] {
					matched = true
					row := map[string]any{}
					for k, v := range l {
						row[k] = v
					}
					row["v_right"], row["r"] = r["v"], r["r"]
					want = append(want, row)
				}
			}
			if !matched && how == JoinLeft {
				row := map[string]any{}
				for k, v := range l {
					row[k] = v
				}
				row["v_right"], row["r"] = nil, nil
				want = append(want, row)
			}
		}
		sameRowSet(rt, "join "+string(how), got, want)
		checkNoLeak(rt, c.mem)
	})
}

func TestOps_FlatMapAndMapBatches(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		c := drawCase(rt)
		if len(c.rows) == 0 {
			return
		}
		got := takeAll(rt, c.ds().FlatMap(func(_ context.Context, r Row) ([]Row, error) {
			v, ok := r["v"].(int64)
			if !ok || v < 0 {
				return nil, nil
			}
			return []Row{{"id": r["id"], "copy": int64(0)}, {"id": r["id"], "copy": int64(1)}}, nil
		}))
		var want []map[string]any
		for _, r := range c.rows {
			if v, ok := r["v"].(int64); ok && v >= 0 {
				want = append(want, map[string]any{"id": r["id"], "copy": int64(0)}, map[string]any{"id": r["id"], "copy": int64(1)})
			}
		}
		sameRows(rt, "flat_map", got, want)

		// map_batches with concurrency and with a pool: output keeps input order.
		conc := rapid.IntRange(1, 4).Draw(rt, "concurrency")
		var built atomic.Int32
		pool := func(_ context.Context, w int) (BatchFunc, func() error, error) {
			built.Add(1)
			scale := int64(10) // the "model", loaded once per worker
			return func(_ context.Context, in arrow.Record) (arrow.Record, error) {
				ids := in.Column(0).(*array.Int64)
				b := array.NewInt64Builder(c.opts.Allocator)
				defer b.Release()
				for i := range ids.Len() {
					b.Append(ids.Value(i) * scale)
				}
				col := b.NewArray()
				defer col.Release()
				sch := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
				return array.NewRecord(sch, []arrow.Array{col}, int64(ids.Len())), nil
			}, nil, nil
		}
		got = takeAll(rt, c.ds().Select("id").MapBatches(nil, MapOptions{Pool: pool, Concurrency: conc}))
		want = nil
		for _, r := range c.rows {
			want = append(want, map[string]any{"x": r["id"].(int64) * 10})
		}
		sameRows(rt, "map_batches pool", got, want)
		if int(built.Load()) != conc {
			rt.Fatalf("pool built %d workers, want %d", built.Load(), conc)
		}
		checkNoLeak(rt, c.mem)
	})
}

// refEval is the row-at-a-time reference for the expression language.
func refEval(e *Expr, row map[string]any) any {
	switch e.Kind {
	case ExprColumn:
		return row[e.Name]
	case ExprLiteral:
		return e.Value
	case ExprUnary:
		x := refEval(e.Args[0], row)
		switch e.Op {
		case "is_null":
			return x == nil
		case "is_not_null":
			return x != nil
		case "not":
			if b, ok := x.(bool); ok {
				return !b
			}
			return nil
		case "-":
			switch v := x.(type) {
			case int64:
				return -v
			case float64:
				return -v
			}
			return nil
		}
	}
	l, r := refEval(e.Args[0], row), refEval(e.Args[1], row)
	switch e.Op {
	case "and", "or":
		lb, lok := l.(bool)
		rb, rok := r.(bool)
		if e.Op == "and" {
			if lok && !lb || rok && !rb {
				return false
			}
			if lok && rok {
				return true
			}
			return nil
		}
		if lok && lb || rok && rb {
			return true
		}
		if lok && rok {
			return false
		}
		return nil
	}
	if l == nil || r == nil {
		return nil
	}
	li, lInt := l.(int64)
	ri, rInt := r.(int64)
	toF := func(v any) float64 {
		if i, ok := v.(int64); ok {
			return float64(i)
		}
		return v.(float64)
	}
	switch e.Op {
	case "+", "-", "*", "%":
		if ls, ok := l.(string); ok {
			return ls + r.(string)
		}
		if lInt && rInt {
			switch e.Op {
			case "+":
				return li + ri
			case "-":
				return li - ri
			case "*":
				return li * ri
			}
			if ri == 0 {
				return nil
			}
			return li % ri
		}
		a, b := toF(l), toF(r)
		switch e.Op {
		case "+":
			return a + b
		case "-":
			return a - b
		case "*":
			return a * b
		}
		return math.Mod(a, b)
	case "/":
		return toF(l) / toF(r)
	}
	var c int
	switch {
	case lInt && rInt:
		c = cmp.Compare(li, ri)
	case isNumber(l):
		a, b := toF(l), toF(r)
		if math.IsNaN(a) || math.IsNaN(b) {
			return e.Op == "!="
		}
		c = cmp.Compare(a, b)
	case isString(l):
		c = strings.Compare(l.(string), r.(string))
	default:
		c = cmp.Compare(b2i(l.(bool)), b2i(r.(bool)))
	}
	switch e.Op {
	case "==":
		return c == 0
	case "!=":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	}
	return c >= 0
}

func hasString(rows []map[string]any, col string) bool {
	for _, r := range rows {
		if _, ok := r[col].(string); ok {
			return true
		}
	}
	return false
}

func isNumber(v any) bool { _, a := v.(int64); _, b := v.(float64); return a || b }
func isString(v any) bool { _, ok := v.(string); return ok }

// genExpr draws a well-typed expression of type typ ("int", "float", "string", "bool") as
// source text, fully parenthesised or not at random (to exercise precedence both ways).
func genExpr(t *rapid.T, typ string, depth int) string {
	leaf := depth <= 0 || rapid.IntRange(0, 3).Draw(t, "leaf") == 0
	if rapid.IntRange(0, 15).Draw(t, "null") == 0 {
		return "null"
	}
	p := func(s string) string { return "(" + s + ")" }
	switch typ {
	case "int":
		if leaf {
			return rapid.SampledFrom([]string{"v", "id", "3", "-2", "0", "`v`"}).Draw(t, "int_leaf")
		}
		op := rapid.SampledFrom([]string{"+", "-", "*", "%"}).Draw(t, "int_op")
		if rapid.Bool().Draw(t, "neg") {
			return "-" + p(genExpr(t, "int", depth-1))
		}
		return p(genExpr(t, "int", depth-1) + " " + op + " " + genExpr(t, "int", depth-1))
	case "float":
		if leaf {
			return rapid.SampledFrom([]string{"f", "1.5", "-0.25", "2e1"}).Draw(t, "float_leaf")
		}
		op := rapid.SampledFrom([]string{"+", "-", "*", "/"}).Draw(t, "float_op")
		other := rapid.SampledFrom([]string{"int", "float"}).Draw(t, "mix")
		return p(genExpr(t, "float", depth-1) + " " + op + " " + genExpr(t, other, depth-1))
	case "string":
		if leaf {
			return rapid.SampledFrom([]string{"k", "'a'", `"b"`, "'it\\'s'"}).Draw(t, "str_leaf")
		}
		return p(genExpr(t, "string", depth-1) + " + " + genExpr(t, "string", depth-1))
	}
	if leaf {
		return rapid.SampledFrom([]string{"flag", "true", "FALSE", "is_null(k)", "(v is not null)"}).Draw(t, "bool_leaf")
	}
	switch rapid.IntRange(0, 4).Draw(t, "bool_form") {
	case 0:
		op := rapid.SampledFrom([]string{"==", "!=", "<", "<=", ">", ">=", "=", "<>"}).Draw(t, "cmp")
		ty := rapid.SampledFrom([]string{"int", "float", "string", "bool"}).Draw(t, "cmp_type")
		ty2 := ty
		if ty == "int" || ty == "float" {
			ty2 = rapid.SampledFrom([]string{"int", "float"}).Draw(t, "cmp_type2")
		}
		return p(genExpr(t, ty, depth-1) + " " + op + " " + genExpr(t, ty2, depth-1))
	case 1:
		return p("not " + p(genExpr(t, "bool", depth-1)))
	case 2:
		return "is_null(" + genExpr(t, rapid.SampledFrom([]string{"int", "string"}).Draw(t, "isnull_type"), depth-1) + ")"
	default:
		op := rapid.SampledFrom([]string{"and", "or", "AND", "||", "&&"}).Draw(t, "logic")
		return p(genExpr(t, "bool", depth-1) + " " + op + " " + genExpr(t, "bool", depth-1))
	}
}

func TestExpr_EvalMatchesRowReference(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		c := drawCase(rt)
		if len(c.rows) == 0 {
			return
		}
		typ := rapid.SampledFrom([]string{"int", "float", "string", "bool"}).Draw(rt, "type")
		src := genExpr(rt, typ, 4)
		e, err := ParseExpr(src)
		if err != nil {
			rt.Fatalf("parse %q: %v", src, err)
		}
		again, err := ParseExpr(e.String())
		if err != nil || again.String() != e.String() {
			rt.Fatalf("String round trip of %q: %q then %v", src, e.String(), err)
		}
		got := takeAll(rt, c.ds().AddColumn("out", src).Select("out"))
		for i, r := range c.rows {
			want := refEval(e, r)
			g := got[i]["out"]
			if gf, ok := g.(float64); ok {
				if wf, ok := want.(float64); ok && (gf == wf || math.IsNaN(gf) && math.IsNaN(wf)) {
					continue
				}
			}
			if fmt.Sprintf("%#v", g) != fmt.Sprintf("%#v", want) {
				rt.Fatalf("%s on row %v: got %#v, want %#v", src, rowString(r), g, want)
			}
		}
		// As a filter, rows where the bool is true stay.
		if typ == "bool" {
			got := takeAll(rt, c.ds().Filter(src).Select("id"))
			var want []map[string]any
			for _, r := range c.rows {
				if b, ok := refEval(e, r).(bool); ok && b {
					want = append(want, map[string]any{"id": r["id"]})
				}
			}
			sameRows(rt, "filter "+src, got, want)
		}
		checkNoLeak(rt, c.mem)
	})
}

func TestExpr_TypeErrorsNameTheExpression(t *testing.T) {
	d := FromItems([]map[string]any{{"a": 1, "s": "x", "b": true}})
	for _, tc := range []struct{ expr, want string }{
		{"a + s", "needs numbers"},
		{"s < 1", "cannot compare"},
		{"a and b", "needs bools"},
		{"nope > 1", `no column "nope"`},
		{"not a", "needs a bool"},
	} {
		_, err := d.AddColumn("x", tc.expr).Count(context.Background())
		if !errors.Is(err, ErrBadExpr) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want ErrBadExpr with %q", tc.expr, err, tc.want)
		}
	}
	if _, err := d.Filter("a + 1").Count(context.Background()); err == nil || !strings.Contains(err.Error(), "not bool") {
		t.Errorf("non-bool filter: %v", err)
	}
}

func TestExpr_ParseErrors(t *testing.T) {
	for _, src := range []string{"", "(a", "a +", "a ==", "'open", "a is 3", "f(x)", "1.2.3", "`", "``", "a b", strings.Repeat("(", 300) + "1" + strings.Repeat(")", 300), "\xff"} {
		if _, err := ParseExpr(src); !errors.Is(err, ErrBadExpr) {
			t.Errorf("ParseExpr(%q) = %v, want ErrBadExpr", src, err)
		}
	}
	e, err := ParseExpr("a + b * c >= 2 and not d or e is null")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.String(), "((((`a` + (`b` * `c`)) >= 2) and (not `d`)) or is_null(`e`))"; got != want {
		t.Errorf("precedence: got %s, want %s", got, want)
	}
	if got := e.Columns(); !slices.Equal(got, []string{"a", "b", "c", "d", "e"}) {
		t.Errorf("Columns = %v", got)
	}
}
