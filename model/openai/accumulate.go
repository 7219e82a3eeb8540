package openai

import (
	"sort"
	"strings"
)

// Accumulator rebuilds a completion from its stream of chunks. The zero value is ready to use;
// it is not safe for concurrent use.
type Accumulator struct {
	id, model, fingerprint string
	created                int64
	usage                  *Usage
	choices                map[int]*accChoice
}

type accChoice struct {
	role, finish     string
	content, refusal strings.Builder
	hasContent       bool
	hasRefusal       bool
	calls            map[int]*ToolCall
}

// Add folds one chunk in.
func (a *Accumulator) Add(c *ChatCompletionChunk) {
	if a.choices == nil {
		a.choices = map[int]*accChoice{}
	}
	if a.id == "" {
		a.id, a.model, a.created, a.fingerprint = c.ID, c.Model, c.Created, c.SystemFingerprint
	}
	if c.Usage != nil {
		u := *c.Usage
		a.usage = &u
	}
	for _, ch := range c.Choices {
		x := a.choices[ch.Index]
		if x == nil {
			x = &accChoice{calls: map[int]*ToolCall{}}
			a.choices[ch.Index] = x
		}
		if ch.Delta.Role != "" {
			x.role = ch.Delta.Role
		}
		if ch.Delta.Content != nil {
			x.content.WriteString(*ch.Delta.Content)
			x.hasContent = true
		}
		if ch.Delta.Refusal != nil {
			x.refusal.WriteString(*ch.Delta.Refusal)
			x.hasRefusal = true
		}
		for _, tc := range ch.Delta.ToolCalls {
			call := x.calls[tc.Index]
			if call == nil {
				call = &ToolCall{}
				x.calls[tc.Index] = call
			}
			if tc.ID != "" {
				call.ID = tc.ID
			}
			if tc.Type != "" {
				call.Type = tc.Type
			}
			call.Function.Name += tc.Function.Name
			call.Function.Arguments += tc.Function.Arguments
		}
		if ch.FinishReason != nil {
			x.finish = *ch.FinishReason
		}
	}
}

// Completion is the completion the chunks so far add up to.
func (a *Accumulator) Completion() *ChatCompletion {
	out := &ChatCompletion{ID: a.id, Object: "chat.completion", Created: a.created, Model: a.model,
		SystemFingerprint: a.fingerprint, Usage: a.usage, Choices: []Choice{}}
	var idx []int
	for i := range a.choices {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		x := a.choices[i]
		role := x.role
		if role == "" {
			role = RoleAssistant
		}
		m := AssistantMessage{Role: role}
		if x.hasContent {
			m.Content = strp(x.content.String())
		}
		if x.hasRefusal {
			m.Refusal = strp(x.refusal.String())
		}
		var ci []int
		for j := range x.calls {
			ci = append(ci, j)
		}
		sort.Ints(ci)
		for _, j := range ci {
			m.ToolCalls = append(m.ToolCalls, *x.calls[j])
		}
		out.Choices = append(out.Choices, Choice{Index: i, Message: m, FinishReason: x.finish})
	}
	return out
}
