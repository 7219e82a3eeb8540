package data

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Expression language (docs/data.md):
//
//	expr    := or
//	or      := and { ("or" | "||") and }
//	and     := not { ("and" | "&&") not }
//	not     := ("not" | "!") not | cmp
//	cmp     := sum [ ("==" | "=" | "!=" | "<>" | "<" | "<=" | ">" | ">=") sum ] [ "is" ["not"] "null" ]
//	sum     := product { ("+" | "-") product }
//	product := unary { ("*" | "/" | "%") unary }
//	unary   := "-" unary | primary
//	primary := number | string | "true" | "false" | "null" | column | call | "(" expr ")"
//	column  := identifier | "`" any text but backquote "`"
//	call    := ("is_null" | "is_not_null") "(" expr ")"
//
// Strings are single- or double-quoted with backslash escapes. Keywords are case-insensitive.

// maxExprLen and maxExprDepth bound the work a hostile expression can cause.
const (
	maxExprLen   = 64 << 10
	maxExprDepth = 128
)

// ExprKind says what an Expr node is.
type ExprKind int

// Expression node kinds.
const (
	ExprColumn  ExprKind = iota // a column reference: Name
	ExprLiteral                 // a constant: Value (int64, float64, string, bool or nil)
	ExprUnary                   // Op ("-", "not", "is_null", "is_not_null") applied to Args[0]
	ExprBinary                  // Args[0] Op Args[1]
)

// Expr is a parsed expression. It is immutable once parsed and safe for concurrent use.
type Expr struct {
	Kind  ExprKind
	Name  string // column name (ExprColumn)
	Value any    // constant (ExprLiteral)
	Op    string // operator (ExprUnary, ExprBinary), normalised: + - * / % == != < <= > >= and or not is_null is_not_null
	Args  []*Expr
	Pos   int // byte offset in the source text
}

// String renders e back as source text that parses to the same tree.
func (e *Expr) String() string {
	switch e.Kind {
	case ExprColumn:
		return "`" + e.Name + "`"
	case ExprLiteral:
		switch v := e.Value.(type) {
		case nil:
			return "null"
		case string:
			return quoteExprString(v)
		case float64:
			s := strconv.FormatFloat(v, 'g', -1, 64)
			if !strings.ContainsAny(s, ".eEn") {
				s += ".0"
			}
			return s
		default:
			return fmt.Sprint(v)
		}
	case ExprUnary:
		switch e.Op {
		case "-":
			return "(-" + e.Args[0].String() + ")"
		case "not":
			return "(not " + e.Args[0].String() + ")"
		default:
			return e.Op + "(" + e.Args[0].String() + ")"
		}
	}
	return "(" + e.Args[0].String() + " " + e.Op + " " + e.Args[1].String() + ")"
}

// quoteExprString writes s as a double-quoted string literal of the expression language.
func quoteExprString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Columns lists the columns e refers to, each once, in first-use order.
func (e *Expr) Columns() []string {
	var out []string
	seen := map[string]bool{}
	var walk func(*Expr)
	walk = func(x *Expr) {
		if x.Kind == ExprColumn && !seen[x.Name] {
			seen[x.Name] = true
			out = append(out, x.Name)
		}
		for _, a := range x.Args {
			walk(a)
		}
	}
	walk(e)
	return out
}

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tQuotedIdent
	tNumber
	tString
	tOp
)

type token struct {
	kind tokKind
	text string // identifier, operator or number text; decoded string value
	pos  int
}

type exprParser struct {
	src   string
	toks  []token
	k     int
	depth int
}

// ParseExpr parses an expression. Errors wrap ErrBadExpr and give the byte offset.
func ParseExpr(src string) (*Expr, error) {
	if len(src) > maxExprLen {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrBadExpr, len(src), maxExprLen)
	}
	if !utf8.ValidString(src) {
		return nil, fmt.Errorf("%w: %q is not valid UTF-8", ErrBadExpr, src)
	}
	toks, err := lexExpr(src)
	if err != nil {
		return nil, err
	}
	p := &exprParser{src: src, toks: toks}
	e, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errAt(t.pos, "unexpected %q", t.text)
	}
	return e, nil
}

func (p *exprParser) errAt(pos int, format string, args ...any) error {
	return fmt.Errorf("%w: at offset %d of %q: %s", ErrBadExpr, pos, p.src, fmt.Sprintf(format, args...))
}

func lexExpr(src string) ([]token, error) {
	var toks []token
	bad := func(pos int, format string, args ...any) error {
		return fmt.Errorf("%w: at offset %d of %q: %s", ErrBadExpr, pos, src, fmt.Sprintf(format, args...))
	}
	for i := 0; i < len(src); {
		r, w := utf8.DecodeRuneInString(src[i:])
		switch {
		case r == utf8.RuneError && w == 1:
			return nil, bad(i, "invalid UTF-8")
		case unicode.IsSpace(r):
			i += w
		case r == '_' || unicode.IsLetter(r):
			j := i
			for j < len(src) {
				r2, w2 := utf8.DecodeRuneInString(src[j:])
				if r2 != '_' && r2 != '.' && !unicode.IsLetter(r2) && !unicode.IsDigit(r2) {
					break
				}
				j += w2
			}
			toks = append(toks, token{tIdent, src[i:j], i})
			i = j
		case r >= '0' && r <= '9' || r == '.' && i+1 < len(src) && src[i+1] >= '0' && src[i+1] <= '9':
			j := i
			for j < len(src) && (src[j] >= '0' && src[j] <= '9' || src[j] == '.' || src[j] == 'e' || src[j] == 'E' ||
				(src[j] == '+' || src[j] == '-') && (src[j-1] == 'e' || src[j-1] == 'E')) {
				j++
			}
			toks = append(toks, token{tNumber, src[i:j], i})
			i = j
		case r == '`':
			j := strings.IndexByte(src[i+1:], '`')
			if j < 0 {
				return nil, bad(i, "unterminated `column`")
			}
			if j == 0 {
				return nil, bad(i, "empty column name")
			}
			toks = append(toks, token{tQuotedIdent, src[i+1 : i+1+j], i})
			i += j + 2
		case r == '\'' || r == '"':
			var sb strings.Builder
			j := i + 1
			for {
				if j >= len(src) {
					return nil, bad(i, "unterminated string")
				}
				c := src[j]
				if c == byte(r) {
					j++
					break
				}
				if c == '\\' {
					if j+1 >= len(src) {
						return nil, bad(j, "unterminated escape")
					}
					switch e := src[j+1]; e {
					case 'n':
						sb.WriteByte('\n')
					case 't':
						sb.WriteByte('\t')
					case 'r':
						sb.WriteByte('\r')
					case '\\', '\'', '"':
						sb.WriteByte(e)
					default:
						return nil, bad(j, "unknown escape \\%c", e)
					}
					j += 2
					continue
				}
				sb.WriteByte(c)
				j++
			}
			toks = append(toks, token{tString, sb.String(), i})
			i = j
		default:
			ops := []string{"==", "!=", "<>", "<=", ">=", "&&", "||", "<", ">", "=", "+", "-", "*", "/", "%", "(", ")", "!"}
			found := ""
			for _, op := range ops {
				if strings.HasPrefix(src[i:], op) {
					found = op
					break
				}
			}
			if found == "" {
				return nil, bad(i, "unexpected character %q", r)
			}
			toks = append(toks, token{tOp, found, i})
			i += len(found)
		}
	}
	return append(toks, token{tEOF, "end of expression", len(src)}), nil
}

func (p *exprParser) peek() token { return p.toks[p.k] }

func (p *exprParser) next() token {
	t := p.toks[p.k]
	if t.kind != tEOF {
		p.k++
	}
	return t
}

// keyword reports whether the next token is the keyword or operator s (case-insensitive).
func (p *exprParser) is(s ...string) (string, bool) {
	t := p.peek()
	if t.kind != tIdent && t.kind != tOp {
		return "", false
	}
	for _, x := range s {
		if strings.EqualFold(t.text, x) {
			return x, true
		}
	}
	return "", false
}

func (p *exprParser) enter(pos int) error {
	p.depth++
	if p.depth > maxExprDepth {
		return p.errAt(pos, "nested deeper than %d", maxExprDepth)
	}
	return nil
}

func (p *exprParser) parseOr() (*Expr, error) {
	if err := p.enter(p.peek().pos); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	l, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for {
		if _, ok := p.is("or", "||"); !ok {
			return l, nil
		}
		t := p.next()
		r, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		l = &Expr{Kind: ExprBinary, Op: "or", Args: []*Expr{l, r}, Pos: t.pos}
	}
}

func (p *exprParser) parseAnd() (*Expr, error) {
	l, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	for {
		if _, ok := p.is("and", "&&"); !ok {
			return l, nil
		}
		t := p.next()
		r, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		l = &Expr{Kind: ExprBinary, Op: "and", Args: []*Expr{l, r}, Pos: t.pos}
	}
}

func (p *exprParser) parseNot() (*Expr, error) {
	if _, ok := p.is("not", "!"); ok {
		t := p.next()
		if err := p.enter(t.pos); err != nil {
			return nil, err
		}
		defer func() { p.depth-- }()
		x, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return &Expr{Kind: ExprUnary, Op: "not", Args: []*Expr{x}, Pos: t.pos}, nil
	}
	return p.parseCmp()
}

func (p *exprParser) parseCmp() (*Expr, error) {
	l, err := p.parseSum()
	if err != nil {
		return nil, err
	}
	if op, ok := p.is("==", "=", "!=", "<>", "<=", ">=", "<", ">"); ok {
		t := p.next()
		switch op {
		case "=":
			op = "=="
		case "<>":
			op = "!="
		}
		r, err := p.parseSum()
		if err != nil {
			return nil, err
		}
		l = &Expr{Kind: ExprBinary, Op: op, Args: []*Expr{l, r}, Pos: t.pos}
	}
	if _, ok := p.is("is"); ok {
		t := p.next()
		op := "is_null"
		if _, ok := p.is("not"); ok {
			p.next()
			op = "is_not_null"
		}
		if _, ok := p.is("null"); !ok {
			return nil, p.errAt(p.peek().pos, "expected null after is, got %q", p.peek().text)
		}
		p.next()
		l = &Expr{Kind: ExprUnary, Op: op, Args: []*Expr{l}, Pos: t.pos}
	}
	return l, nil
}

func (p *exprParser) parseSum() (*Expr, error) {
	l, err := p.parseProduct()
	if err != nil {
		return nil, err
	}
	for {
		op, ok := p.is("+", "-")
		if !ok {
			return l, nil
		}
		t := p.next()
		r, err := p.parseProduct()
		if err != nil {
			return nil, err
		}
		l = &Expr{Kind: ExprBinary, Op: op, Args: []*Expr{l, r}, Pos: t.pos}
	}
}

func (p *exprParser) parseProduct() (*Expr, error) {
	l, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		op, ok := p.is("*", "/", "%")
		if !ok {
			return l, nil
		}
		t := p.next()
		r, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		l = &Expr{Kind: ExprBinary, Op: op, Args: []*Expr{l, r}, Pos: t.pos}
	}
}

func (p *exprParser) parseUnary() (*Expr, error) {
	if _, ok := p.is("-"); ok {
		t := p.next()
		if err := p.enter(t.pos); err != nil {
			return nil, err
		}
		defer func() { p.depth-- }()
		x, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return &Expr{Kind: ExprUnary, Op: "-", Args: []*Expr{x}, Pos: t.pos}, nil
	}
	return p.parsePrimary()
}

func (p *exprParser) parsePrimary() (*Expr, error) {
	t := p.next()
	switch t.kind {
	case tNumber:
		if !strings.ContainsAny(t.text, ".eE") {
			if v, err := strconv.ParseInt(t.text, 10, 64); err == nil {
				return &Expr{Kind: ExprLiteral, Value: v, Pos: t.pos}, nil
			}
		}
		v, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return nil, p.errAt(t.pos, "bad number %q", t.text)
		}
		return &Expr{Kind: ExprLiteral, Value: v, Pos: t.pos}, nil
	case tString:
		return &Expr{Kind: ExprLiteral, Value: t.text, Pos: t.pos}, nil
	case tQuotedIdent:
		return &Expr{Kind: ExprColumn, Name: t.text, Pos: t.pos}, nil
	case tIdent:
		switch strings.ToLower(t.text) {
		case "true":
			return &Expr{Kind: ExprLiteral, Value: true, Pos: t.pos}, nil
		case "false":
			return &Expr{Kind: ExprLiteral, Value: false, Pos: t.pos}, nil
		case "null":
			return &Expr{Kind: ExprLiteral, Value: nil, Pos: t.pos}, nil
		case "and", "or", "not", "is":
			return nil, p.errAt(t.pos, "unexpected keyword %q", t.text)
		case "is_null", "is_not_null":
			if _, ok := p.is("("); ok {
				p.next()
				x, err := p.parseOr()
				if err != nil {
					return nil, err
				}
				if _, ok := p.is(")"); !ok {
					return nil, p.errAt(p.peek().pos, "expected ) after %s argument, got %q", t.text, p.peek().text)
				}
				p.next()
				return &Expr{Kind: ExprUnary, Op: strings.ToLower(t.text), Args: []*Expr{x}, Pos: t.pos}, nil
			}
		}
		if _, ok := p.is("("); ok {
			return nil, p.errAt(t.pos, "unknown function %q (known: is_null, is_not_null)", t.text)
		}
		return &Expr{Kind: ExprColumn, Name: t.text, Pos: t.pos}, nil
	case tOp:
		if t.text == "(" {
			x, err := p.parseOr()
			if err != nil {
				return nil, err
			}
			if _, ok := p.is(")"); !ok {
				return nil, p.errAt(p.peek().pos, "expected ), got %q", p.peek().text)
			}
			p.next()
			return x, nil
		}
	}
	return nil, p.errAt(t.pos, "expected a value, got %q", t.text)
}
