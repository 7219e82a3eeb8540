package openai

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is an error in OpenAI's shape. Status is the HTTP status it is served with.
type Error struct {
	Status  int     `json:"-"`
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// Error types, as OpenAI spells them.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeAuthentication = "authentication_error"
	TypeNotFound       = "not_found_error"
	TypeRateLimit      = "rate_limit_exceeded"
	TypeServer         = "server_error"
)

// Error codes used by this package.
const (
	CodeContextLengthExceeded = "context_length_exceeded"
	CodeInvalidValue          = "invalid_value"
	CodeMissing               = "missing_required_parameter"
	CodeUnsupported           = "unsupported_value"
	CodeInvalidType           = "invalid_type"
	CodeInvalidSchema         = "invalid_json_schema"
	CodeBodyTooLarge          = "request_too_large"
)

// Error renders status, type, code, param and message on one line.
func (e *Error) Error() string {
	s := fmt.Sprintf("openai: %d %s", e.Status, e.Type)
	if e.Code != nil {
		s += " (" + *e.Code + ")"
	}
	if e.Param != nil {
		s += " at " + *e.Param
	}
	return s + ": " + e.Message
}

func strp(s string) *string { return &s }

// Invalid returns a 400 invalid_request_error about param (may be "") with code (may be "").
func Invalid(param, code, format string, args ...any) *Error {
	e := &Error{Status: http.StatusBadRequest, Type: TypeInvalidRequest, Message: fmt.Sprintf(format, args...)}
	if param != "" {
		e.Param = strp(param)
	}
	if code != "" {
		e.Code = strp(code)
	}
	return e
}

// NotFound returns a 404 error.
func NotFound(format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Type: TypeInvalidRequest, Message: fmt.Sprintf(format, args...)}
}

// ContextLengthExceeded is the error a backend returns for a prompt over its context length.
func ContextLengthExceeded(tokens, limit int) *Error {
	return Invalid("messages", CodeContextLengthExceeded,
		"This model's maximum context length is %d tokens. However, your messages resulted in %d tokens. Please reduce the length of the messages.", limit, tokens)
}

// AsError converts any error into an *Error: an *Error (wrapped or not) is kept, anything else
// becomes a 500 server_error that does not leak its text.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Status: http.StatusInternalServerError, Type: TypeServer, Message: "The server had an error while processing your request."}
}

type errorBody struct {
	Error *Error `json:"error"`
}
