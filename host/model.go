package host

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/tetratelabs/wazero/api"

	"github.com/lumenflow/lumen/sdk/abi"
)

// Models is the engine behind model_chat: chat completions from the models the node serves.
// The contract is the OpenAI chat-completions API's, as bytes: req is the request JSON (the host
// has checked only its size), and Chat returns the HTTP status the API would answer with and its
// body, the completion or an error in OpenAI's shape. err is for a failure outside that
// contract (no model served, the engine closing). Like Services, it is called from the
// goroutine running the guest, must be safe for concurrent use and must return soon after ctx
// ends. The *CallInfo is valid only until Chat returns; resp is the host's after it.
type Models interface {
	Chat(ctx context.Context, c *CallInfo, req []byte) (status int, resp []byte, err error)
}

// model_chat(ptr i32, len i32) -> i64 length of the pending chat-completions JSON.
//
// A completion (HTTP 200) is the pending result and its length is returned. An answer in
// OpenAI's error shape is the pending result too, with the status: ErrBadPayload for a request
// the API refuses (400, 413, 422), ErrNotFound for an unknown model (404), ErrDenied (401, 403),
// ErrFailed for the rest (429 and 5xx after the provider's retries). The call's concurrency slot
// is given back while the model runs.
func hostModelChat(ctx context.Context, st *callState, mod api.Module, stack []uint64) int64 {
	b, code := payload(st, mod, abi.FnModelChat, stack)
	if b == nil && code != 0 {
		return code
	}
	m := st.in.r.cfg.Models
	if m == nil {
		return st.fail(abi.ErrUnavailable, abi.FnModelChat+": no model behind this host")
	}
	if !json.Valid(b) {
		return st.fail(abi.ErrBadPayload, openAIError(abi.FnModelChat+": the request is not JSON"))
	}
	req := append([]byte(nil), b...) // the guest's memory may move while the model runs
	st.yieldSlot()
	status, resp, err := m.Chat(ctx, &st.info, req)
	if !st.reclaimSlot(ctx) && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return st.failErr(abi.FnModelChat, err)
	}
	switch {
	case status == http.StatusOK:
		return st.setPending(abi.FnModelChat, resp)
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge || status == http.StatusUnprocessableEntity:
		return st.failBytes(abi.ErrBadPayload, resp)
	case status == http.StatusNotFound:
		return st.failBytes(abi.ErrNotFound, resp)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return st.failBytes(abi.ErrDenied, resp)
	default:
		return st.failBytes(abi.ErrFailed, resp)
	}
}

// openAIError is msg in OpenAI's error shape, as model_chat's failures are.
func openAIError(msg string) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error", "param": nil, "code": nil}})
	return string(b)
}

// failBytes sets the pending result to b and returns the status's code.
func (st *callState) failBytes(s abi.Status, b []byte) int64 {
	st.pending, st.hasPending = b, true
	return s.Code()
}
