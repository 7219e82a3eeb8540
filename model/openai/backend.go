package openai

import (
	"context"
	"fmt"
	"runtime/debug"
)

// Backend serves chat completions: a local model or a remote provider.
type Backend interface {
	// Models lists the models the backend serves.
	Models() []Model
	// ChatCompletion runs one validated request. When emit is non-nil the request asked for
	// stream=true: the backend calls emit for every chunk in order, then returns the same
	// completion it would have returned without streaming.
	ChatCompletion(ctx context.Context, req *ChatCompletionRequest, emit func(*ChatCompletionChunk) error) (*ChatCompletion, error)
}

// checkModel refuses a model the backend does not list.
func checkModel(b Backend, model string) *Error {
	for _, m := range b.Models() {
		if m.ID == model {
			return nil
		}
	}
	e := NotFound("The model '%s' does not exist or you do not have access to it.", model)
	e.Param = strp("model")
	e.Code = strp("model_not_found")
	return e
}

// safeCall runs b.ChatCompletion, turning a panic into a 500 error (with the stack in its
// unexported detail) so that one bad request cannot take the server or a batch down.
func safeCall(ctx context.Context, b Backend, req *ChatCompletionRequest, emit func(*ChatCompletionChunk) error) (c *ChatCompletion, err error) {
	defer func() {
		if p := recover(); p != nil {
			c, err = nil, &panicError{msg: fmt.Sprintf("backend panic: %v\n%s", p, debug.Stack())}
		}
	}()
	c, err = b.ChatCompletion(ctx, req, emit)
	if err == nil && c == nil {
		err = &panicError{msg: "backend returned neither a completion nor an error"}
	}
	return c, err
}

// panicError is a backend failure whose text is for the server log only.
type panicError struct{ msg string }

func (e *panicError) Error() string { return e.msg }
