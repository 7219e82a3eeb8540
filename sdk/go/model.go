package lumen

import (
	"encoding/json"
	"fmt"

	"github.com/lumenflow/lumen/sdk/abi"
)

// ChatRequest is a chat-completions request as OpenAI's API takes it. Only the common fields
// have names here; Extra holds any other field (tools, response_format, stop, ...) by its JSON
// name. Content is a string, or parts ([]map[string]any) for images and audio.
type ChatRequest struct {
	Model       string         `json:"model"`
	Messages    []ChatMessage  `json:"messages"`
	MaxTokens   int            `json:"max_completion_tokens,omitempty"`
	Temperature *float64       `json:"temperature,omitempty"`
	Seed        *int64         `json:"seed,omitempty"`
	Extra       map[string]any `json:"-"`
}

// MarshalJSON writes the named fields and then Extra's.
func (r ChatRequest) MarshalJSON() ([]byte, error) {
	type plain ChatRequest
	b, err := json.Marshal(plain(r))
	if err != nil || len(r.Extra) == 0 {
		return b, err
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, v := range r.Extra {
		if _, named := m[k]; !named {
			m[k] = v
		}
	}
	return json.Marshal(m)
}

// ChatMessage is one message of a conversation.
type ChatMessage struct {
	Role       string         `json:"role"`
	Content    any            `json:"content"` // a string, or content parts
	ToolCalls  []ChatToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
}

// ChatToolCall is a function call the model asks for; Arguments is JSON text.
type ChatToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// ChatResponse is a chat completion.
type ChatResponse struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role      string         `json:"role"`
			Content   *string        `json:"content"`
			Refusal   *string        `json:"refusal"`
			ToolCalls []ChatToolCall `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

// Text is the first choice's content ("" when it has none: a refusal or tool calls).
func (r *ChatResponse) Text() string {
	if len(r.Choices) == 0 || r.Choices[0].Message.Content == nil {
		return ""
	}
	return *r.Choices[0].Message.Content
}

// ChatError is a chat request the node answered with an error in OpenAI's shape.
type ChatError struct {
	Status  abi.Status // the model_chat status: ErrBadPayload, ErrNotFound, ErrDenied, ErrFailed
	Message string
	Type    string
	Param   string // the request field at fault, OpenAI's path spelling
	Code    string // e.g. "model_not_found", "context_length_exceeded"
}

func (e *ChatError) Error() string {
	if e.Param != "" {
		return fmt.Sprintf("lumen: chat: %s (%s, param %s)", e.Message, e.Code, e.Param)
	}
	return fmt.Sprintf("lumen: chat: %s (%s)", e.Message, e.Code)
}

// Chat asks the models the node serves (its own, or an external provider's) for a chat
// completion, through the model_chat host function. The module must request the model
// capability (lumen.Require(abi.CapModel)) and its job must grant it. A request the API refuses
// gives a *ChatError naming the field; other failures give an *Error.
func Chat(req ChatRequest) (*ChatResponse, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("lumen: encode chat request: %w", err)
	}
	out, err := ChatJSON(b)
	if err != nil {
		return nil, err
	}
	var resp ChatResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("lumen: decode chat completion: %w", err)
	}
	return &resp, nil
}

// ChatJSON is Chat on JSON bytes: the request as OpenAI's API takes it, the completion as it
// answers.
func ChatJSON(req []byte) ([]byte, error) {
	n := hostModelChat(req)
	if n >= 0 {
		return takeResult(n), nil
	}
	st := abi.StatusOf(n)
	detail := takeResult(-1)
	var body struct {
		Error *struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(detail, &body) == nil && body.Error != nil {
		e := &ChatError{Status: st, Message: body.Error.Message, Type: body.Error.Type}
		if body.Error.Param != nil {
			e.Param = *body.Error.Param
		}
		if body.Error.Code != nil {
			e.Code = *body.Error.Code
		}
		return nil, e
	}
	msg := string(detail)
	if msg == "" {
		msg = st.String()
	}
	return nil, &Error{Status: st, Message: msg}
}
