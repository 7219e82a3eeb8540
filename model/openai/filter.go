package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"
)

// Category is a kind of request the deployment refuses. A text falls in the category when, after
// normalisation (lower case, every run of non-letters and non-digits made one space), it holds
// one of the phrases as whole words.
type Category struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Phrases     []string `json:"phrases"`
}

// DefaultCategories is the list refused when a deployment configures none. It is deliberately
// small and phrase-based: a floor, not a moderation model.
func DefaultCategories() []Category {
	return []Category{
		{Name: "weapons", Description: "building explosives, chemical, biological or nuclear weapons",
			Phrases: []string{"build a bomb", "make a bomb", "pipe bomb", "make explosives", "synthesize sarin", "nerve agent", "make napalm", "weaponize anthrax", "enrich uranium for a bomb"}},
		{Name: "malware", Description: "writing malicious software",
			Phrases: []string{"write ransomware", "write a keylogger", "create a computer virus", "write malware", "build a botnet"}},
		{Name: "self_harm", Description: "instructions for self-harm or suicide",
			Phrases: []string{"how to kill myself", "ways to kill myself", "how to commit suicide", "best way to self harm"}},
		{Name: "violence", Description: "planning violence against people",
			Phrases: []string{"how to murder", "kill my neighbor", "kill my neighbour", "poison someone", "hurt someone without getting caught"}},
		{Name: "sexual_minors", Description: "sexual content involving minors",
			Phrases: []string{"sexual content involving minors", "child sexual", "sexualize a child"}},
		{Name: "fraud", Description: "fraud and credential theft",
			Phrases: []string{"steal credit card numbers", "write a phishing email", "launder money"}},
	}
}

// FilterConfig configures a deployment's filter. Categories replaces the default list when
// non-nil; Disable removes categories by name; Refusal is the answer given (default: a short
// sentence naming the category).
type FilterConfig struct {
	Categories []Category `json:"categories,omitempty"`
	Disable    []string   `json:"disable,omitempty"`
	Refusal    string     `json:"refusal,omitempty"`
}

// Filter checks requests and answers against refused categories. It is immutable and safe for
// concurrent use.
type Filter struct {
	cats    []Category // phrases normalised
	refusal string
}

// NewFilter builds a filter from a configuration.
func NewFilter(cfg FilterConfig) (*Filter, error) {
	cats := cfg.Categories
	if cats == nil {
		cats = DefaultCategories()
	}
	disabled := map[string]bool{}
	for _, d := range cfg.Disable {
		disabled[d] = true
	}
	known := map[string]bool{}
	f := &Filter{refusal: cfg.Refusal}
	for i, c := range cats {
		if c.Name == "" {
			return nil, fmt.Errorf("filter: categories[%d]: name is empty", i)
		}
		if known[c.Name] {
			return nil, fmt.Errorf("filter: categories[%d]: category %q listed twice", i, c.Name)
		}
		known[c.Name] = true
		if disabled[c.Name] {
			continue
		}
		n := Category{Name: c.Name, Description: c.Description}
		for j, p := range c.Phrases {
			np := normalize(p)
			if np == " " || np == "" {
				return nil, fmt.Errorf("filter: categories[%d].phrases[%d]: phrase has no letters or digits", i, j)
			}
			n.Phrases = append(n.Phrases, np)
		}
		if len(n.Phrases) == 0 {
			return nil, fmt.Errorf("filter: categories[%d]: category %q has no phrases", i, c.Name)
		}
		f.cats = append(f.cats, n)
	}
	for _, d := range cfg.Disable {
		if !known[d] {
			return nil, fmt.Errorf("filter: disable: no category %q", d)
		}
	}
	return f, nil
}

// LoadFilter reads a FilterConfig from a JSON file.
func LoadFilter(path string) (*Filter, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	var cfg FilterConfig
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("filter: %s: %w", path, err)
	}
	return NewFilter(cfg)
}

// Categories lists the active categories' names.
func (f *Filter) Categories() []string {
	var out []string
	for _, c := range f.cats {
		out = append(out, c.Name)
	}
	return out
}

// normalize lower-cases s and turns every run of other characters than letters and digits into
// one space, with a space at each end, so phrases match whole words.
func normalize(s string) string {
	var b strings.Builder
	b.WriteByte(' ')
	space := true
	for _, r := range strings.ToLower(s) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
			space = false
		} else if !space {
			b.WriteByte(' ')
			space = true
		}
	}
	if !space {
		b.WriteByte(' ')
	}
	return b.String()
}

// Check returns the first category text falls in.
func (f *Filter) Check(text string) (string, bool) {
	n := normalize(text)
	for _, c := range f.cats {
		for _, p := range c.Phrases {
			if strings.Contains(n, p) {
				return c.Name, true
			}
		}
	}
	return "", false
}

// CheckRequest checks every message's text and every tool call's arguments.
func (f *Filter) CheckRequest(r *ChatCompletionRequest) (string, bool) {
	for i := range r.Messages {
		m := &r.Messages[i]
		if c, ok := f.Check(m.Text()); ok {
			return c, true
		}
		for _, tc := range m.ToolCalls {
			if c, ok := f.Check(tc.Function.Arguments); ok {
				return c, true
			}
		}
	}
	return "", false
}

// Refusal is the answer given for a category.
func (f *Filter) Refusal(category string) string {
	if f.refusal != "" {
		return f.refusal
	}
	return fmt.Sprintf("I can't help with that: the request falls in a refused category (%s).", category)
}

// WithFilter wraps b so that requests falling in a refused category are answered with a refusal
// and finish_reason "content_filter" without reaching b, and answers that fall in one are
// replaced the same way. When streaming, the chunk that completes a refused phrase and
// everything after it is withheld; the text streamed before it has been sent.
func WithFilter(b Backend, f *Filter) Backend {
	if f == nil {
		return b
	}
	return &filtered{b: b, f: f}
}

type filtered struct {
	b Backend
	f *Filter
}

func (x *filtered) Models() []Model { return x.b.Models() }

type errFiltered struct{ category string }

func (e *errFiltered) Error() string { return "filtered: " + e.category }

func (x *filtered) ChatCompletion(ctx context.Context, req *ChatCompletionRequest, emit func(*ChatCompletionChunk) error) (*ChatCompletion, error) {
	if cat, ok := x.f.CheckRequest(req); ok {
		return x.refuse(req, cat, &ChatCompletionChunk{Model: req.Model}, emit, true)
	}
	var inner func(*ChatCompletionChunk) error
	var last ChatCompletionChunk
	if emit != nil {
		text := map[int]*strings.Builder{}
		inner = func(c *ChatCompletionChunk) error {
			last = ChatCompletionChunk{ID: c.ID, Created: c.Created, Model: c.Model, SystemFingerprint: c.SystemFingerprint}
			for _, ch := range c.Choices {
				sb := text[ch.Index]
				if sb == nil {
					sb = &strings.Builder{}
					text[ch.Index] = sb
				}
				if ch.Delta.Content != nil {
					sb.WriteString(*ch.Delta.Content)
				}
				for _, tc := range ch.Delta.ToolCalls {
					sb.WriteString(" " + tc.Function.Arguments)
				}
				if cat, ok := x.f.Check(sb.String()); ok {
					return &errFiltered{category: cat}
				}
			}
			return emit(c)
		}
	}
	out, err := x.b.ChatCompletion(ctx, req, inner)
	var fe *errFiltered
	if errors.As(err, &fe) {
		return x.refuse(req, fe.category, &last, emit, false)
	}
	if err != nil {
		return out, err
	}
	for i := range out.Choices {
		c := &out.Choices[i]
		text := ""
		if c.Message.Content != nil {
			text = *c.Message.Content
		}
		for _, tc := range c.Message.ToolCalls {
			text += " " + tc.Function.Arguments
		}
		if cat, ok := x.f.Check(text); ok {
			c.Message = AssistantMessage{Role: RoleAssistant, Refusal: strp(x.f.Refusal(cat))}
			c.FinishReason = FinishContentFilter
		}
	}
	return out, nil
}

// refuse answers every choice with the refusal, streaming it when emit is set (with the role
// first when start says nothing was streamed yet).
func (x *filtered) refuse(req *ChatCompletionRequest, cat string, meta *ChatCompletionChunk, emit func(*ChatCompletionChunk) error, start bool) (*ChatCompletion, error) {
	n := req.Choices()
	msg := x.f.Refusal(cat)
	out := &ChatCompletion{ID: meta.ID, Object: "chat.completion", Created: meta.Created, Model: meta.Model, Usage: &Usage{}}
	if out.Model == "" {
		out.Model = req.Model
	}
	for i := 0; i < n; i++ {
		out.Choices = append(out.Choices, Choice{Index: i, FinishReason: FinishContentFilter,
			Message: AssistantMessage{Role: RoleAssistant, Refusal: strp(msg)}})
		if emit == nil {
			continue
		}
		d := ChunkDelta{Refusal: strp(msg)}
		if start {
			d.Role = RoleAssistant
		}
		finish := FinishContentFilter
		chunk := &ChatCompletionChunk{ID: meta.ID, Object: "chat.completion.chunk", Created: meta.Created, Model: out.Model,
			Choices: []ChunkChoice{{Index: i, Delta: d, FinishReason: &finish}}}
		if err := emit(chunk); err != nil {
			return nil, err
		}
	}
	return out, nil
}
