package data

import (
	"fmt"
	"math"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// vtype is the type of an evaluated expression.
type vtype int

const (
	vNull vtype = iota // the null literal: adapts to the other operand
	vInt
	vFloat
	vString
	vBool
)

func (t vtype) String() string {
	return [...]string{"null", "int64", "float64", "string", "bool"}[t]
}

// vec is a column of evaluated values. A scalar vec has one value broadcast to every row.
// valid nil means every value is valid.
type vec struct {
	t      vtype
	scalar bool
	i      []int64
	f      []float64
	s      []string
	b      []bool
	valid  []bool
}

func (v *vec) ok(k int) bool {
	if v.scalar {
		k = 0
	}
	return v.valid == nil || v.valid[k]
}

func (v *vec) at(k int) int {
	if v.scalar {
		return 0
	}
	return k
}

func (v *vec) float(k int) float64 {
	k = v.at(k)
	if v.t == vInt {
		return float64(v.i[k])
	}
	return v.f[k]
}

// compiled is an expression checked against a schema.
type compiled struct {
	e    *Expr
	t    vtype
	col  int // ExprColumn: column index
	args []*compiled
}

// vtypeOf maps an Arrow type to the expression type its values evaluate as.
func vtypeOf(dt arrow.DataType) (vtype, bool) {
	switch dt.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.DATE32, arrow.DATE64, arrow.TIMESTAMP, arrow.TIME32, arrow.TIME64, arrow.DURATION:
		return vInt, true
	case arrow.FLOAT32, arrow.FLOAT64:
		return vFloat, true
	case arrow.STRING, arrow.LARGE_STRING:
		return vString, true
	case arrow.BOOL:
		return vBool, true
	case arrow.NULL:
		return vNull, true
	}
	return 0, false
}

func numeric(t vtype) bool { return t == vInt || t == vFloat || t == vNull }

// compileExpr type-checks e against schema.
func compileExpr(e *Expr, schema *arrow.Schema) (*compiled, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s at offset %d: %s", ErrBadExpr, e.String(), e.Pos, fmt.Sprintf(format, args...))
	}
	c := &compiled{e: e}
	switch e.Kind {
	case ExprColumn:
		idx, err := columnIndex(schema, e.Name)
		if err != nil {
			return nil, bad("%v", err)
		}
		t, ok := vtypeOf(schema.Field(idx).Type)
		if !ok {
			return nil, fmt.Errorf("%w: column %q has type %s, which expressions do not support", ErrUnsupportedType, e.Name, schema.Field(idx).Type)
		}
		c.col, c.t = idx, t
		return c, nil
	case ExprLiteral:
		switch e.Value.(type) {
		case nil:
			c.t = vNull
		case int64:
			c.t = vInt
		case float64:
			c.t = vFloat
		case string:
			c.t = vString
		case bool:
			c.t = vBool
		default:
			return nil, bad("literal of type %T", e.Value)
		}
		return c, nil
	}
	for _, a := range e.Args {
		ca, err := compileExpr(a, schema)
		if err != nil {
			return nil, err
		}
		c.args = append(c.args, ca)
	}
	if e.Kind == ExprUnary {
		x := c.args[0].t
		switch e.Op {
		case "-":
			if !numeric(x) {
				return nil, bad("- needs a number, got %s", x)
			}
			c.t = x
		case "not":
			if x != vBool && x != vNull {
				return nil, bad("not needs a bool, got %s", x)
			}
			c.t = vBool
		case "is_null", "is_not_null":
			c.t = vBool
		default:
			return nil, bad("unknown operator %q", e.Op)
		}
		return c, nil
	}
	l, r := c.args[0].t, c.args[1].t
	switch e.Op {
	case "+", "-", "*", "%":
		if e.Op == "+" && (l == vString || r == vString) && (l == vString || l == vNull) && (r == vString || r == vNull) {
			c.t = vString
			return c, nil
		}
		if !numeric(l) || !numeric(r) {
			return nil, bad("%s needs numbers, got %s and %s", e.Op, l, r)
		}
		switch {
		case l == vFloat || r == vFloat:
			c.t = vFloat
		case l == vNull && r == vNull:
			c.t = vNull
		default:
			c.t = vInt
		}
	case "/":
		if !numeric(l) || !numeric(r) {
			return nil, bad("/ needs numbers, got %s and %s", l, r)
		}
		c.t = vFloat
	case "==", "!=", "<", "<=", ">", ">=":
		if !(numeric(l) && numeric(r)) && l != r && l != vNull && r != vNull {
			return nil, bad("cannot compare %s with %s", l, r)
		}
		c.t = vBool
	case "and", "or":
		if (l != vBool && l != vNull) || (r != vBool && r != vNull) {
			return nil, bad("%s needs bools, got %s and %s", e.Op, l, r)
		}
		c.t = vBool
	default:
		return nil, bad("unknown operator %q", e.Op)
	}
	return c, nil
}

// columnVec reads an Arrow column as a vec without copying where the layout allows.
func columnVec(arr arrow.Array, t vtype) *vec {
	n := arr.Len()
	v := &vec{t: t}
	if arr.NullN() > 0 {
		v.valid = make([]bool, n)
		for k := range n {
			v.valid[k] = arr.IsValid(k)
		}
	}
	switch a := arr.(type) {
	case *array.Int64:
		v.i = a.Int64Values()
	case *array.Float64:
		v.f = a.Float64Values()
	case *array.String:
		v.s = make([]string, n)
		for k := range n {
			v.s[k] = a.Value(k)
		}
	case *array.LargeString:
		v.s = make([]string, n)
		for k := range n {
			v.s[k] = a.Value(k)
		}
	case *array.Boolean:
		v.b = make([]bool, n)
		for k := range n {
			v.b[k] = a.Value(k)
		}
	case *array.Float32:
		v.f = make([]float64, n)
		for k, x := range a.Float32Values() {
			v.f[k] = float64(x)
		}
	case *array.Null:
		v.t = vNull
		v.scalar = true
		v.valid = []bool{false}
	default:
		v.i = make([]int64, n)
		for k := range n {
			if x, ok := getValue(arr, k).(int64); ok {
				v.i[k] = x
			} else if u, ok := getValue(arr, k).(uint64); ok {
				v.i[k] = int64(u) // uint64 past MaxInt64 wraps, as in Go
			}
		}
	}
	return v
}

// eval evaluates c over rec.
func (c *compiled) eval(rec arrow.Record) *vec {
	n := int(rec.NumRows())
	switch c.e.Kind {
	case ExprColumn:
		return columnVec(rec.Column(c.col), c.t)
	case ExprLiteral:
		v := &vec{t: c.t, scalar: true}
		switch x := c.e.Value.(type) {
		case nil:
			v.valid = []bool{false}
		case int64:
			v.i = []int64{x}
		case float64:
			v.f = []float64{x}
		case string:
			v.s = []string{x}
		case bool:
			v.b = []bool{x}
		}
		return v
	}
	args := make([]*vec, len(c.args))
	scalar := true
	for k, a := range c.args {
		args[k] = a.eval(rec)
		scalar = scalar && args[k].scalar
	}
	if scalar {
		n = 1
	}
	out := &vec{t: c.t, scalar: scalar}
	valid := make([]bool, n)
	out.valid = valid
	switch out.t {
	case vInt:
		out.i = make([]int64, n)
	case vFloat:
		out.f = make([]float64, n)
	case vString:
		out.s = make([]string, n)
	case vBool:
		out.b = make([]bool, n)
	}
	if c.e.Kind == ExprUnary {
		x := args[0]
		for k := range n {
			switch c.e.Op {
			case "is_null":
				out.b[k], valid[k] = !x.ok(k), true
			case "is_not_null":
				out.b[k], valid[k] = x.ok(k), true
			case "not":
				if valid[k] = x.ok(k) && x.t == vBool; valid[k] {
					out.b[k] = !x.b[x.at(k)]
				}
			case "-":
				if valid[k] = x.ok(k) && x.t != vNull; valid[k] {
					if out.t == vInt {
						out.i[k] = -x.i[x.at(k)]
					} else {
						out.f[k] = -x.f[x.at(k)]
					}
				}
			}
		}
		return out
	}
	l, r := args[0], args[1]
	op := c.e.Op
	if op == "and" || op == "or" {
		// Kleene logic: false and null = false, true or null = true.
		for k := range n {
			lv, lok := false, l.ok(k) && l.t == vBool
			rv, rok := false, r.ok(k) && r.t == vBool
			if lok {
				lv = l.b[l.at(k)]
			}
			if rok {
				rv = r.b[r.at(k)]
			}
			if op == "and" {
				switch {
				case lok && !lv || rok && !rv:
					out.b[k], valid[k] = false, true
				case lok && rok:
					out.b[k], valid[k] = true, true
				}
			} else {
				switch {
				case lok && lv || rok && rv:
					out.b[k], valid[k] = true, true
				case lok && rok:
					out.b[k], valid[k] = false, true
				}
			}
		}
		return out
	}
	for k := range n {
		if !l.ok(k) || !r.ok(k) || l.t == vNull || r.t == vNull {
			continue
		}
		li, ri := l.at(k), r.at(k)
		switch op {
		case "+", "-", "*", "%":
			switch out.t {
			case vString:
				out.s[k], valid[k] = l.s[li]+r.s[ri], true
			case vInt:
				a, b := l.i[li], r.i[ri]
				valid[k] = true
				switch op {
				case "+":
					out.i[k] = a + b
				case "-":
					out.i[k] = a - b
				case "*":
					out.i[k] = a * b
				case "%":
					if b == 0 {
						valid[k] = false // x % 0 is null
					} else if b == -1 {
						out.i[k] = 0
					} else {
						out.i[k] = a % b
					}
				}
			case vFloat:
				a, b := l.float(k), r.float(k)
				valid[k] = true
				switch op {
				case "+":
					out.f[k] = a + b
				case "-":
					out.f[k] = a - b
				case "*":
					out.f[k] = a * b
				case "%":
					out.f[k] = math.Mod(a, b)
				}
			}
		case "/":
			out.f[k], valid[k] = l.float(k)/r.float(k), true
		default:
			var c int
			switch {
			case l.t == vInt && r.t == vInt:
				c = cmpOrdered(l.i[li], r.i[ri])
			case numeric(l.t):
				a, b := l.float(k), r.float(k)
				if math.IsNaN(a) || math.IsNaN(b) {
					// NaN compares unequal to everything, as in IEEE 754.
					out.b[k], valid[k] = op == "!=", true
					continue
				}
				c = cmpOrdered(a, b)
			case l.t == vString:
				c = cmpOrdered(l.s[li], r.s[ri])
			case l.t == vBool:
				c = cmpOrdered(b2i(l.b[li]), b2i(r.b[ri]))
			}
			valid[k] = true
			switch op {
			case "==":
				out.b[k] = c == 0
			case "!=":
				out.b[k] = c != 0
			case "<":
				out.b[k] = c < 0
			case "<=":
				out.b[k] = c <= 0
			case ">":
				out.b[k] = c > 0
			case ">=":
				out.b[k] = c >= 0
			}
		}
	}
	return out
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func cmpOrdered[T int64 | float64 | string | int](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// arrowType is the Arrow type a vec of type t is written as.
func (t vtype) arrowType() arrow.DataType {
	switch t {
	case vInt:
		return arrow.PrimitiveTypes.Int64
	case vFloat:
		return arrow.PrimitiveTypes.Float64
	case vString:
		return arrow.BinaryTypes.String
	case vBool:
		return arrow.FixedWidthTypes.Boolean
	}
	return arrow.Null
}

// toArray writes v as an Arrow array of n rows.
func (v *vec) toArray(mem memory.Allocator, n int) arrow.Array {
	if v.t == vNull {
		return array.NewNull(n)
	}
	b := array.NewBuilder(mem, v.t.arrowType())
	defer b.Release()
	b.Reserve(n)
	for k := range n {
		if !v.ok(k) {
			b.AppendNull()
			continue
		}
		j := v.at(k)
		switch bb := b.(type) {
		case *array.Int64Builder:
			bb.Append(v.i[j])
		case *array.Float64Builder:
			bb.Append(v.f[j])
		case *array.StringBuilder:
			bb.Append(v.s[j])
		case *array.BooleanBuilder:
			bb.Append(v.b[j])
		}
	}
	return b.NewArray()
}
