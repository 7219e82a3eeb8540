// Package openai speaks OpenAI's chat-completions wire format: the request, response and chunk
// types, request validation with OpenAI-shaped errors, the [Backend] interface a model serves
// through, an http.Handler for /v1/chat/completions, /v1/models, /v1/files and /v1/batches, a
// safety [Filter], and [Remote], a Backend that forwards to an external OpenAI-compatible
// endpoint with retries.
//
// The package knows nothing of the engine: batches run through a [BatchRunner] (by default a
// bounded pool over the Backend; the engine plugs in a workflow), and files and batch records
// live in a directory given in [HandlerConfig].
//
// # Errors
//
// Every failure that reaches a client is an *[Error]: OpenAI's {"error": {message, type, param,
// code}} with an HTTP status. Validation names the offending field in param using OpenAI's
// path spelling, e.g. "messages[2].content[0].image_url.url".
package openai
