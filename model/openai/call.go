package openai

import (
	"context"
	"encoding/json"
	"net/http"
)

// Call runs one non-streamed chat-completions request given as JSON bytes and returns the HTTP
// status and the JSON answer: the completion, or an error in OpenAI's shape. It applies the same
// decoding, validation and model check as the handler (wrap b with WithFilter for the safety
// filter). It is the body of the model_chat host function, which hands guests this exact
// contract: chat-completions JSON in, chat-completions JSON out. A request with stream=true is
// refused: a guest gets the whole answer at once.
func Call(ctx context.Context, b Backend, body []byte, opt ValidateOptions) (int, []byte) {
	req, e := DecodeRequest(body)
	if e == nil {
		e = req.Validate(opt)
	}
	if e == nil && req.Stream {
		e = Invalid("stream", CodeUnsupported, "stream is not supported here; the whole completion is returned at once.")
	}
	if e == nil {
		e = checkModel(b, req.Model)
	}
	if e == nil {
		c, err := safeCall(ctx, b, req, nil)
		if err == nil {
			fillCompletion(c, req.Model)
			out, err := json.Marshal(c)
			if err == nil {
				return http.StatusOK, out
			}
		}
		e = AsError(err)
	}
	out, _ := json.Marshal(errorBody{Error: e})
	return e.Status, out
}
