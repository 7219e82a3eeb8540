package host

import (
	"errors"
	"fmt"

	"github.com/lumenflow/lumen/sdk/abi"
)

// ErrClosed is returned, as the message of a KindSystem *abi.Error, by calls on a closed
// Runtime or Instance. errors.Is(err, ErrClosed) matches it.
var ErrClosed = errors.New("host: runtime closed")

// maxTrapMessage caps the wazero message (with its wasm stack trace) kept in a trap error.
const maxTrapMessage = 4 << 10

// wrappedError is an *abi.Error (for errors.As) that also matches a sentinel (for errors.Is).
type wrappedError struct {
	e     *abi.Error
	cause error
}

func (w *wrappedError) Error() string   { return w.e.Error() }
func (w *wrappedError) Unwrap() []error { return []error{w.e, w.cause} }

func newErr(kind abi.ErrorKind, format string, args ...any) *abi.Error {
	return &abi.Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

func limitErr(limit, format string, args ...any) *abi.Error {
	return &abi.Error{Kind: abi.KindLimit, Limit: limit, Message: fmt.Sprintf(format, args...)}
}

func closedErr() error {
	return &wrappedError{e: &abi.Error{Kind: abi.KindSystem, Message: ErrClosed.Error()}, cause: ErrClosed}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// StatusError lets a Services implementation choose the status a host function returns to the
// guest, with Message as the pending result. Use it for statuses the default mapping does not
// produce, such as abi.ErrLimit or abi.ErrTooLarge.
type StatusError struct {
	Status  abi.Status
	Message string
}

func (e *StatusError) Error() string { return fmt.Sprintf("%s: %s", e.Status, e.Message) }
