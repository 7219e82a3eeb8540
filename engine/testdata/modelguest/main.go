// Command modelguest asks the node's models through lumen.Chat (model_chat).
package main

import (
	"errors"
	"fmt"

	"github.com/lumenflow/lumen/sdk/abi"
	lumen "github.com/lumenflow/lumen/sdk/go"
)

// Ask is a question for a model.
type Ask struct {
	Model    string
	Question string
	Seed     int64
}

func init() {
	lumen.Require(abi.CapModel)
	// ask answers with the first choice's text and finish reason.
	lumen.Task("ask", func(a Ask) (string, error) {
		resp, err := lumen.Chat(lumen.ChatRequest{Model: a.Model, Seed: &a.Seed, MaxTokens: 3,
			Messages: []lumen.ChatMessage{{Role: "user", Content: a.Question}}})
		if err != nil {
			var ce *lumen.ChatError
			if errors.As(err, &ce) {
				return "", lumen.NewError("chat_"+ce.Code, "%s (param %s, status %s)", ce.Message, ce.Param, ce.Status)
			}
			return "", err
		}
		if len(resp.Choices) != 1 {
			return "", fmt.Errorf("%d choices", len(resp.Choices))
		}
		return resp.Choices[0].FinishReason + ":" + resp.Text(), nil
	})
	// raw passes JSON bytes through ChatJSON.
	lumen.BytesTask("raw", func(b []byte) ([]byte, error) { return lumen.ChatJSON(b) })
}

func main() {}
