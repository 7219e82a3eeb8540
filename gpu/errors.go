package gpu

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by ops wrap one of these in an *OpError, so callers test
// them with errors.Is.
var (
	ErrShape     = errors.New("gpu: shape mismatch")
	ErrDType     = errors.New("gpu: wrong dtype")
	ErrArgument  = errors.New("gpu: invalid argument")
	ErrFreed     = errors.New("gpu: tensor or arena already freed")
	ErrBudget    = errors.New("gpu: arena byte budget exceeded")
	ErrDevice    = errors.New("gpu: device unavailable or tensors on different devices")
	ErrNoGrad    = errors.New("gpu: tensor does not require grad")
	ErrMalformed = errors.New("gpu: malformed safetensors data")
)

// OpError says which op failed, on which shapes, and why.
type OpError struct {
	Op     string  // the op's name, e.g. "matmul"
	Shapes [][]int // the input shapes, when they matter
	Msg    string  // a human explanation
	Err    error   // one of the sentinel errors
}

func (e *OpError) Error() string {
	s := "gpu: " + e.Op
	if len(e.Shapes) > 0 {
		s += " "
		for i, sh := range e.Shapes {
			if i > 0 {
				s += ", "
			}
			s += fmt.Sprint(sh)
		}
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

func (e *OpError) Unwrap() error { return e.Err }

func opErr(op string, sentinel error, format string, args ...any) *OpError {
	return &OpError{Op: op, Msg: fmt.Sprintf(format, args...), Err: sentinel}
}

func shapeErr(op string, format string, ts ...*Tensor) *OpError {
	e := &OpError{Op: op, Msg: format, Err: ErrShape}
	for _, t := range ts {
		if t != nil {
			e.Shapes = append(e.Shapes, t.Shape())
		}
	}
	return e
}

// Must returns t, and panics with err when err is not nil. It is for Go code that knows its
// shapes are right; see [Try].
func Must(t *Tensor, err error) *Tensor {
	if err != nil {
		panic(err)
	}
	return t
}

// Try runs fn and returns the *OpError (or any error) that one of the panicking Tensor methods
// raised inside it; other panics propagate. Try is safe for concurrent use.
func Try(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				var oe *OpError
				if errors.As(e, &oe) {
					err = e
					return
				}
			}
			panic(r)
		}
	}()
	fn()
	return nil
}

func must(t *Tensor, err error) *Tensor {
	if err != nil {
		panic(err)
	}
	return t
}
