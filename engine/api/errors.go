package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/plugins"
	"github.com/lumenflow/lumen/raftstore"
	"github.com/lumenflow/lumen/sdk/abi"
)

// classify turns any error the engine returns into Lumen's one error type. It is the only place
// that knows the lower layers' sentinels; wire.Kind.Status is the only place that knows statuses.
// The engine's own errors carry their kind already (wire.Wrap, *wire.Error, *abi.Error).
func classify(err error) *wire.Error {
	out := &wire.Error{Kind: wire.KindInternal, Message: err.Error()}
	var ae *abi.Error
	var se *host.StatusError
	var mbe *http.MaxBytesError
	if we, ok := err.(*wire.Error); ok {
		*out = *we
		return out
	}
	switch {
	case errors.As(err, &ae):
		out.Kind, out.Message, out.Limit, out.Code = wire.Kind(ae.Kind), ae.Message, ae.Limit, ae.Code
	case errors.As(err, &mbe), errors.Is(err, plugins.ErrTooLarge):
		out.Kind = wire.KindTooLarge
	case errors.Is(err, plugins.ErrNotFound):
		out.Kind = wire.KindNotFound
	case errors.Is(err, plugins.ErrNotWasm), errors.Is(err, plugins.ErrInvalid),
		errors.Is(err, raftstore.ErrBadCommand), errors.Is(err, raftstore.ErrCorrupt):
		out.Kind = wire.KindBadInput
	case errors.Is(err, plugins.ErrConflict), errors.Is(err, raftstore.ErrConflict), errors.Is(err, raftstore.ErrMembership):
		out.Kind = wire.KindConflict
	case errors.Is(err, plugins.ErrInUse):
		out.Kind = wire.KindInUse
	case errors.Is(err, plugins.ErrClosed), errors.Is(err, host.ErrClosed), errors.Is(err, raftstore.ErrClosed):
		out.Kind = wire.KindUnavailable
	case errors.As(err, &se):
		out.Kind, out.Message = hostKind(se.Status), se.Message
	case errors.Is(err, raftstore.ErrRemoved):
		out.Kind = wire.KindRemoved
	case errors.Is(err, raftstore.ErrOutcomeUnknown):
		out.Kind, out.Message = wire.KindUnknown, err.Error()+" (retry with the same Idempotency-Key)"
	case raftstore.NotLeader(err), errors.Is(err, raftstore.ErrUnreachable):
		out.Kind = wire.KindUnavailable
	default:
		if k, ok := wire.KindOf(err); ok {
			out.Kind = k
		} else if errors.Is(err, context.DeadlineExceeded) {
			out.Kind = wire.KindTimeout
		} else if errors.Is(err, context.Canceled) {
			out.Kind = wire.KindCancelled
		}
	}
	return out
}

// hostKind is the kind of a host function's failure status.
func hostKind(s abi.Status) wire.Kind {
	switch s {
	case abi.ErrLimit:
		return wire.KindStorage
	case abi.ErrTooLarge:
		return wire.KindTooLarge
	case abi.ErrTimeout:
		return wire.KindTimeout
	case abi.ErrNotFound:
		return wire.KindNotFound
	case abi.ErrDenied:
		return wire.KindDenied
	case abi.ErrCancelled:
		return wire.KindCancelled
	case abi.ErrUnavailable:
		return wire.KindUnavailable
	case abi.ErrBadPayload:
		return wire.KindBadInput
	}
	return wire.KindInternal
}

// fail answers with an error of kind k.
func fail(c *gin.Context, k wire.Kind, msg string) {
	failWith(c, &wire.Error{Kind: k, Message: msg}, nil)
}

// failErr answers with err, classified. extra fields (a call's log) join the body.
func failErr(c *gin.Context, err error, extra gin.H) {
	failWith(c, classify(err), extra)
}

func failWith(c *gin.Context, e *wire.Error, extra gin.H) {
	status := e.Status()
	if status == http.StatusTooManyRequests || e.Kind == wire.KindUnavailable {
		c.Header("Retry-After", "1") // seconds; admission refusals clear as work ends
	}
	if len(extra) == 0 {
		c.AbortWithStatusJSON(status, wire.Body{Error: *e})
		return
	}
	out := gin.H{"error": e}
	for k, v := range extra {
		out[k] = v
	}
	c.AbortWithStatusJSON(status, out)
}
