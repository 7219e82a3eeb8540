package openai

import (
	"context"
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
