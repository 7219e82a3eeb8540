package lumen

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lumenflow/lumen/sdk/abi"
)

// Error is an error with a code. Returned from a task or method, its code and message reach the
// caller as a guest error. Returned by the SDK, it describes a host function that failed: Status
// says how, and for a failed task or actor call Kind, Limit and Message come from the engine.
type Error struct {
	Status  abi.Status    // the host function's status; StatusOK for an error made by the guest
	Kind    abi.ErrorKind // for a failed task or call: guest_error, trap, limit_exceeded, ...
	Limit   string        // for limit_exceeded: deadline, memory or output
	Code    string
	Message string
}

func (e *Error) Error() string {
	switch {
	case e.Status == abi.ErrFailed && e.Limit != "":
		return fmt.Sprintf("lumen: %s (%s): %s", e.Kind, e.Limit, e.Message)
	case e.Status == abi.ErrFailed:
		return fmt.Sprintf("lumen: %s: %s", e.Kind, e.Message)
	case e.Status != abi.StatusOK:
		return fmt.Sprintf("lumen: %s: %s", e.Status, e.Message)
	case e.Code != "":
		return e.Code + ": " + e.Message
	}
	return e.Message
}

// Is makes errors.Is(err, ErrTimeout) and the other sentinels match on Status.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Status == e.Status && t.Status != abi.StatusOK
}

// Sentinels for errors.Is on errors returned by the SDK.
var (
	ErrTimeout       = &Error{Status: abi.ErrTimeout}     // Get or Wait ran out of time; the ref stays valid
	ErrDenied        = &Error{Status: abi.ErrDenied}      // the job did not grant the capability
	ErrNotFound      = &Error{Status: abi.ErrNotFound}    // unknown ref, module, function or actor
	ErrFailed        = &Error{Status: abi.ErrFailed}      // the task or actor call failed; see Kind and Message
	ErrCancelled     = &Error{Status: abi.ErrCancelled}   // the task was cancelled
	ErrNotUnderLumen = &Error{Status: abi.ErrUnavailable} // not running under a Lumen host, or no engine behind it
)

// NewError returns an error with a code, for a task to return.
func NewError(code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// guestErrorJSON encodes err for the error host function.
func guestErrorJSON(err error) []byte {
	g := abi.GuestError{Message: err.Error()}
	var e *Error
	if errors.As(err, &e) && e.Status == abi.StatusOK {
		g.Code, g.Message = e.Code, e.Message
	}
	b, _ := json.Marshal(g)
	return b
}

// hostError turns a negative host function return into an *Error, reading the pending result
// for its details.
func hostError(r int64) error {
	st := abi.StatusOf(r)
	detail := takeResult(-1)
	e := &Error{Status: st, Message: string(detail)}
	if st == abi.ErrFailed {
		var ae abi.Error
		if json.Unmarshal(detail, &ae) == nil && ae.Kind != "" {
			e.Kind, e.Limit, e.Code, e.Message = ae.Kind, ae.Limit, ae.Code, ae.Message
		}
	}
	if e.Message == "" {
		e.Message = st.String()
	}
	return e
}
