package wire

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/lumenflow/lumen/sdk/abi"
)

// Kind classifies a failure. It is the "kind" of every error body Lumen's API writes, the value
// clients branch on, and the one thing that decides the HTTP status (Status).
type Kind string

// The kinds. A guest's own failures keep the ABI's names (guest_error, trap, limit_exceeded).
const (
	KindBadInput     Kind = "bad_input"            // the request was malformed (400)
	KindUnauthorized Kind = "unauthorized"         // no credential (401)
	KindForbidden    Kind = "forbidden"            // a credential that does not admit the request (403)
	KindDenied       Kind = "denied"               // the work needed a capability its job was not granted (403)
	KindNotFound     Kind = "not_found"            // no such module, object, actor, job, … (404)
	KindConflict     Kind = "conflict"             // the state forbids it now: a condition failed, a job ended (409)
	KindInUse        Kind = "in_use"               // a module still in use (409)
	KindCancelled    Kind = "cancelled"            // the work was cancelled (409)
	KindTooLarge     Kind = "too_large"            // a body, module or value over its cap (413)
	KindNotLeader    Kind = "not_leader"           // a control-plane write reached a follower (421)
	KindRemoved      Kind = "removed_from_cluster" // this node left the cluster's configuration: ask another node (410)
	KindGuest        Kind = "guest_error"          // the guest reported an error (422)
	KindTrap         Kind = "trap"                 // the guest trapped (422)
	KindLimit        Kind = "limit_exceeded"       // a sandbox limit stopped the guest; Limit says which (422)
	KindStorage      Kind = "limit"                // a host-side limit of the node (object store, spill) was reached (507)
	KindUnavailable  Kind = "unavailable"          // retry later: no leader, node closing, overloaded (503)
	KindTimeout      Kind = "timeout"              // the wait or call ran out of time (504)
	KindUnknown      Kind = "outcome_unknown"      // a write whose commit could not be confirmed (504)
	KindNotReady     Kind = "not_ready"            // a value not produced yet; ask again (202)
	KindInternal     Kind = "internal"             // a bug or an unexpected host failure (500)
)

var statuses = map[Kind]int{
	KindBadInput:     http.StatusBadRequest,
	KindUnauthorized: http.StatusUnauthorized,
	KindForbidden:    http.StatusForbidden,
	KindDenied:       http.StatusForbidden,
	KindNotFound:     http.StatusNotFound,
	KindConflict:     http.StatusConflict,
	KindInUse:        http.StatusConflict,
	KindCancelled:    http.StatusConflict,
	KindTooLarge:     http.StatusRequestEntityTooLarge,
	KindNotLeader:    http.StatusMisdirectedRequest,
	KindRemoved:      http.StatusGone,
	KindGuest:        http.StatusUnprocessableEntity,
	KindTrap:         http.StatusUnprocessableEntity,
	KindLimit:        http.StatusUnprocessableEntity,
	KindStorage:      http.StatusInsufficientStorage,
	KindUnavailable:  http.StatusServiceUnavailable,
	KindTimeout:      http.StatusGatewayTimeout,
	KindUnknown:      http.StatusGatewayTimeout,
	KindNotReady:     http.StatusAccepted,
	KindInternal:     http.StatusInternalServerError,
}

// Status is the HTTP status an error of kind k answers with: the one mapping of Lumen's API.
// A kind it does not know (a newer peer's, say) is a 500.
func (k Kind) Status() int {
	if s, ok := statuses[k]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Status is the HTTP status of e: its kind's, except a quota refusal (KindLimit naming a quota,
// abi.IsQuota), which is 429 Too Many Requests: nothing ran, and the request may be sent again
// after Retry-After.
func (e *Error) Status() int {
	if e.Kind == KindLimit && abi.IsQuota(e.Limit) {
		return http.StatusTooManyRequests
	}
	return e.Kind.Status()
}

// KindOfStatus is the kind a client reads into a status that came without a body it understands.
func KindOfStatus(status int) Kind {
	switch status {
	case http.StatusBadRequest:
		return KindBadInput
	case http.StatusUnauthorized:
		return KindUnauthorized
	case http.StatusForbidden:
		return KindForbidden
	case http.StatusNotFound:
		return KindNotFound
	case http.StatusConflict:
		return KindConflict
	case http.StatusRequestEntityTooLarge:
		return KindTooLarge
	case http.StatusMisdirectedRequest:
		return KindNotLeader
	case http.StatusGone:
		return KindRemoved
	case http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusBadGateway:
		return KindUnavailable
	case http.StatusGatewayTimeout:
		return KindTimeout
	}
	return KindInternal
}

// Error is Lumen's one error type: what an API error body carries ({"error": Error}) and what
// the engine's own failures are. Kind decides the status; Message is for people. Limit and Code
// are set for a guest's failures (which sandbox limit, the guest's own code). LeaderAPI is set
// on a not_leader answer: where the leader's API is.
type Error struct {
	Kind      Kind   `json:"kind"`
	Message   string `json:"message"`
	Limit     string `json:"limit,omitempty"`
	Code      string `json:"code,omitempty"`
	LeaderAPI string `json:"leader_api,omitempty"`
}

// New returns an *Error of kind k.
func New(k Kind, msg string) *Error { return &Error{Kind: k, Message: msg} }

// Errorf returns an *Error of kind k with a formatted message. Unlike fmt.Errorf it wraps
// nothing: use Wrap to keep a cause.
func Errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Limit != "" {
		return fmt.Sprintf("%s (%s): %s", e.Kind, e.Limit, e.Message)
	}
	return string(e.Kind) + ": " + e.Message
}

// Is reports whether target is an *Error of the same kind and message: sentinel errors declared
// with New match themselves however often they are wrapped or decoded from JSON.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && t.Message == e.Message
}

// wrapped is an error with a kind laid over a cause that keeps its own message and identity.
type wrapped struct {
	kind  Kind
	cause error
}

func (w *wrapped) Error() string { return w.cause.Error() }
func (w *wrapped) Unwrap() error { return w.cause }

// Wrap gives err kind k (nil stays nil); errors.Is and errors.As still see err and what it wraps.
func Wrap(k Kind, err error) error {
	if err == nil {
		return nil
	}
	return &wrapped{kind: k, cause: err}
}

// KindOf is the kind err was given, by Wrap or as an *Error anywhere in its chain; ok is false
// when it has none.
func KindOf(err error) (k Kind, ok bool) {
	for err != nil {
		switch e := err.(type) {
		case *wrapped:
			return e.kind, true
		case *Error:
			return e.Kind, true
		}
		if u, isJoin := err.(interface{ Unwrap() []error }); isJoin {
			for _, inner := range u.Unwrap() {
				if k, ok := KindOf(inner); ok {
					return k, true
				}
			}
			return "", false
		}
		err = errors.Unwrap(err)
	}
	return "", false
}

// Body is the JSON shape of every error answer of Lumen's API: {"error": {...}}.
type Body struct {
	Error Error `json:"error"`
}

// DefaultJob is the job of work submitted without one: objects, tasks and actors are scoped by
// job, and "" means this one.
const DefaultJob = "default"

// JobOr is job, or DefaultJob when it is empty.
func JobOr(job string) string {
	if job == "" {
		return DefaultJob
	}
	return job
}
