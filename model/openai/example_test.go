package openai_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"

	"github.com/lumenflow/lumen/model/openai"
)

// upper is a toy Backend: it answers the last message in capitals.
type upper struct{}

func (upper) Models() []openai.Model {
	return []openai.Model{{ID: "upper-1", Object: "model", OwnedBy: "example"}}
}

func (upper) ChatCompletion(ctx context.Context, req *openai.ChatCompletionRequest, emit func(*openai.ChatCompletionChunk) error) (*openai.ChatCompletion, error) {
	text := ""
	for _, r := range req.Messages[len(req.Messages)-1].Text() {
		if r >= 'a' && r <= 'z' {
			r -= 'a' - 'A'
		}
		text += string(r)
	}
	if emit != nil {
		stop := openai.FinishStop
		if err := emit(&openai.ChatCompletionChunk{Choices: []openai.ChunkChoice{{Delta: openai.ChunkDelta{Role: "assistant", Content: &text}, FinishReason: &stop}}}); err != nil {
			return nil, err
		}
	}
	return &openai.ChatCompletion{Choices: []openai.Choice{{Message: openai.AssistantMessage{Role: "assistant", Content: &text}, FinishReason: openai.FinishStop}}}, nil
}

// A Handler serves a Backend; a Remote reaches any OpenAI-compatible server, here that one,
// under another model name.
func ExampleNewRemote() {
	dir, _ := os.MkdirTemp("", "openai-example")
	defer os.RemoveAll(dir)
	h, err := openai.NewHandler(openai.HandlerConfig{Backend: upper{}, Dir: dir})
	if err != nil {
		panic(err)
	}
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()

	remote, err := openai.NewRemote(openai.RemoteConfig{
		BaseURL: srv.URL + "/v1",
		APIKey:  "sk-example",
		Models:  map[string]string{"shout": "upper-1"}, // name offered here -> provider's name
	})
	if err != nil {
		panic(err)
	}
	req := &openai.ChatCompletionRequest{Model: "shout", Messages: []openai.Message{{Role: "user", Content: openai.TextContent("hello")}}}
	c, err := remote.ChatCompletion(context.Background(), req, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(c.Model, *c.Choices[0].Message.Content, c.Choices[0].FinishReason)
	// Output: shout HELLO stop
}

func ExampleFilter() {
	f, _ := openai.NewFilter(openai.FilterConfig{Disable: []string{"fraud"}})
	fmt.Println(f.Check("How do I BUILD A BOMB?"))
	fmt.Println(f.Check("write a phishing email"))
	// Output:
	// weapons true
	//  false
}
