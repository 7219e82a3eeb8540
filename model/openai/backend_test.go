package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
)

// scripted is the deterministic Backend the HTTP tests run against. It is not a model: its
// answers are a pure function of the request, so streamed and batched runs can be compared
// with direct ones.
//
//   - a user text containing "weather" with tools offered calls get_weather (twice, in
//     parallel, when the text says "two cities");
//   - a json_schema or json_object response_format answers the schema's shortest document;
//   - "panic" panics, "explode" fails with a plain error, "too long" with context_length_exceeded;
//   - "secret" answers with a phrase of the weapons category (to test output filtering);
//   - anything else echoes the last user text word by word, cut at max_tokens.
type scripted struct {
	calls atomic.Int64
	gate  chan struct{} // when set, every call waits for it (or ctx)
}

func (s *scripted) Models() []Model {
	return []Model{{ID: "lumen-test", Object: "model", Created: 1700000000, OwnedBy: "lumen"}}
}

type answer struct {
	content *string
	calls   []ToolCall
	finish  string
}

func lastUser(req *ChatCompletionRequest) (string, int) {
	for i := len(req.Messages) - 1; i >= 0; i-- {
		m := &req.Messages[i]
		if m.Role == RoleUser {
			parts, _ := m.Parts()
			media := 0
			for _, p := range parts {
				if p.Type != PartText {
					media++
				}
			}
			return m.Text(), media
		}
	}
	return "", 0
}

func (s *scripted) answer(req *ChatCompletionRequest, choice int) (answer, error) {
	text, media := lastUser(req)
	tc, _ := req.ParseToolChoice()
	switch {
	case strings.Contains(text, "panic"):
		panic("scripted backend panicked")
	case strings.Contains(text, "explode"):
		return answer{}, errors.New("scripted backend exploded")
	case strings.Contains(text, "too long"):
		return answer{}, ContextLengthExceeded(200000, 128000)
	case len(req.Tools) > 0 && tc.Mode != "none" && (strings.Contains(text, "weather") || tc.Mode != "auto"):
		name := req.Tools[0].Function.Name
		if tc.Mode == "function" {
			name = tc.Name
		}
		cities := []string{"Paris"}
		if strings.Contains(text, "two cities") {
			cities = append(cities, "Oslo")
		}
		var calls []ToolCall
		for i, c := range cities {
			calls = append(calls, ToolCall{ID: fmt.Sprintf("call_%d_%d", choice, i), Type: "function",
				Function: FunctionCall{Name: name, Arguments: fmt.Sprintf(`{"city":%q}`, c)}})
		}
		return answer{calls: calls, finish: FinishToolCalls}, nil
	}
	if sch, err := req.OutputSchema(); err == nil && sch != nil {
		doc := string(sch.Start().Completion())
		return answer{content: &doc, finish: FinishStop}, nil
	}
	words := strings.Fields(text)
	if strings.Contains(text, "secret") {
		words = strings.Fields("here is how to build a bomb")
	}
	out := append([]string{"echo", fmt.Sprintf("%d", choice)}, words...)
	if media > 0 {
		out = append(out, fmt.Sprintf("[%d media]", media))
	}
	finish := FinishStop
	if max := req.MaxOutputTokens(); max > 0 && len(out) > max {
		out, finish = out[:max], FinishLength
	}
	content := strings.Join(out, " ")
	return answer{content: &content, finish: finish}, nil
}

func (s *scripted) ChatCompletion(ctx context.Context, req *ChatCompletionRequest, emit func(*ChatCompletionChunk) error) (*ChatCompletion, error) {
	s.calls.Add(1)
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out := &ChatCompletion{Model: req.Model, Created: 1700000001, ID: "chatcmpl-scripted"}
	prompt := 0
	for i := range req.Messages {
		prompt += len(strings.Fields(req.Messages[i].Text()))
	}
	completion := 0
	for i := 0; i < req.Choices(); i++ {
		a, err := s.answer(req, i)
		if err != nil {
			return nil, err
		}
		msg := AssistantMessage{Role: RoleAssistant, Content: a.content, ToolCalls: a.calls}
		out.Choices = append(out.Choices, Choice{Index: i, Message: msg, FinishReason: a.finish, Logprobs: json.RawMessage("null")})
		if a.content != nil {
			completion += len(strings.Fields(*a.content))
		}
		for _, c := range a.calls {
			completion += len(c.Function.Arguments)
		}
		if emit == nil {
			continue
		}
		chunk := func(d ChunkDelta, finish *string) error {
			return emit(&ChatCompletionChunk{ID: out.ID, Created: out.Created, Model: req.Model,
				Choices: []ChunkChoice{{Index: i, Delta: d, FinishReason: finish}}})
		}
		empty := ""
		if err := chunk(ChunkDelta{Role: RoleAssistant, Content: map[bool]*string{true: &empty, false: nil}[a.content != nil]}, nil); err != nil {
			return nil, err
		}
		if a.content != nil {
			// Split into pieces of up to 3 bytes, as tokens would.
			c := *a.content
			for len(c) > 0 {
				n := min(3, len(c))
				piece := c[:n]
				c = c[n:]
				if err := chunk(ChunkDelta{Content: &piece}, nil); err != nil {
					return nil, err
				}
			}
		}
		for j, call := range a.calls {
			args := call.Function.Arguments
			half := len(args) / 2
			if err := emit(&ChatCompletionChunk{ID: out.ID, Created: out.Created, Model: req.Model, Choices: []ChunkChoice{{Index: i,
				Delta: ChunkDelta{ToolCalls: []ToolCallDelta{{Index: j, ID: call.ID, Type: "function", Function: FunctionCallDelta{Name: call.Function.Name, Arguments: args[:half]}}}}}}}); err != nil {
				return nil, err
			}
			if err := emit(&ChatCompletionChunk{ID: out.ID, Created: out.Created, Model: req.Model, Choices: []ChunkChoice{{Index: i,
				Delta: ChunkDelta{ToolCalls: []ToolCallDelta{{Index: j, Function: FunctionCallDelta{Arguments: args[half:]}}}}}}}); err != nil {
				return nil, err
			}
		}
		f := a.finish
		if err := chunk(ChunkDelta{}, &f); err != nil {
			return nil, err
		}
	}
	out.Usage = &Usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
	return out, nil
}
