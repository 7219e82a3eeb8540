package dag

import (
	"errors"
	"slices"
	"strings"
)

// Limits on what a workflow may hold. A workflow over a limit is refused with a PathError.
const (
	MaxWorkflowBytes = 4 << 20 // the JSON document given to Parse
	MaxSteps         = 10_000  // steps in one workflow
	MaxIDLen         = 64      // bytes in a step id
	MaxNameLen       = 256     // bytes in a workflow, module or function name
	MaxRetries       = 100     // a step's retries
	MaxDepth         = 256     // nesting of arrays and objects in the workflow document
	MaxItems         = 100_000 // elements a map step fans out to
)

// Sentinel errors. A Catalog wraps ErrUnknownModule or ErrUnknownFunction so that Compile can
// point the error at the step's "module" or "function" field.
var (
	ErrUnknownModule   = errors.New("dag: unknown module")
	ErrUnknownFunction = errors.New("dag: unknown function")
)

// PathError is one mistake in a workflow, at a JSON path such as "$.steps[2].args.counts".
type PathError struct {
	Path string // "$" is the whole document
	Msg  string
}

func (e *PathError) Error() string { return e.Path + ": " + e.Msg }

// ErrorList is every mistake Parse or Compile found, sorted by path (array indices in numeric
// order), then by message. It is never empty when returned as an error.
type ErrorList []*PathError

func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap lets errors.As find the first *PathError.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

func (l *ErrorList) add(path, msg string) { *l = append(*l, &PathError{Path: path, Msg: msg}) }

// sorted sorts the list, drops exact duplicates and returns it as an error (nil when empty).
func (l ErrorList) sorted() error {
	if len(l) == 0 {
		return nil
	}
	slices.SortStableFunc(l, func(a, b *PathError) int {
		if c := comparePaths(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Msg, b.Msg)
	})
	l = slices.CompactFunc(l, func(a, b *PathError) bool { return *a == *b })
	return l
}

// comparePaths orders JSON paths as a reader expects: runs of digits compare as numbers, so
// "$.steps[2]" comes before "$.steps[10]", and a path comes before the paths inside it.
func comparePaths(a, b string) int {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if isDigit(a[i]) && isDigit(b[j]) {
			si, sj := i, j
			for i < len(a) && isDigit(a[i]) {
				i++
			}
			for j < len(b) && isDigit(b[j]) {
				j++
			}
			x := strings.TrimLeft(a[si:i], "0")
			y := strings.TrimLeft(b[sj:j], "0")
			if len(x) != len(y) {
				if len(x) < len(y) {
					return -1
				}
				return 1
			}
			if c := strings.Compare(x, y); c != 0 {
				return c
			}
			continue
		}
		if a[i] != b[j] {
			return pathByteOrder(a[i]) - pathByteOrder(b[j])
		}
		i++
		j++
	}
	return (len(a) - i) - (len(b) - j)
}

// pathByteOrder puts the separators first so that "$.a.b" and "$.a[0]" sort right after "$.a"
// and before "$.ab".
func pathByteOrder(c byte) int {
	switch c {
	case '.':
		return -2
	case '[':
		return -1
	}
	return int(c)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// RenderError is why a template could not be rendered: a referenced step has not finished, its
// output lacks the selected field, a value of the wrong type, output that is not valid JSON.
type RenderError struct {
	Step   string // the step whose template failed; "" for the workflow's output
	Path   string // the JSON path of the template string in the workflow
	Ref    string // the reference, as written between "${" and "}"; "" when none is involved
	Reason string
}

func (e *RenderError) Error() string {
	var b strings.Builder
	if e.Step != "" {
		b.WriteString("step ")
		b.WriteString(quote(e.Step))
	} else {
		b.WriteString("workflow output")
	}
	b.WriteString(": ")
	b.WriteString(e.Path)
	if e.Ref != "" {
		b.WriteString(": ${")
		b.WriteString(e.Ref)
		b.WriteString("}")
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// quote is strconv.Quote's job for names we already know are printable.
func quote(s string) string { return string(appendQuoted(nil, s)) }
