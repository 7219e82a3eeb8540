package openai

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	oa "github.com/openai/openai-go/v3"
)

// Concurrent chats (streamed and not), uploads and batches against one Handler, under -race.
func TestHandler_Hammer(t *testing.T) {
	_, _, client := newServer(t, &scripted{}, func(c *HandlerConfig) { c.BatchConcurrency = 3 })
	ctx := context.Background()
	reqs := testRequests()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 6; g++ {
		g := g
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 8; i++ {
				req := reqs["text"]
				if (g+i)%2 == 0 {
					stream := client.Chat.Completions.NewStreaming(ctx, req)
					var acc oa.ChatCompletionAccumulator
					for stream.Next() {
						acc.AddChunk(stream.Current())
					}
					if err := stream.Err(); err != nil || acc.Choices[0].Message.Content != "echo 0 hello there world" {
						errs <- fmt.Errorf("stream: %v %+v", err, acc.Choices)
						return
					}
					continue
				}
				c, err := client.Chat.Completions.New(ctx, req)
				if err != nil || c.Choices[0].Message.Content != "echo 0 hello there world" {
					errs <- fmt.Errorf("chat: %v", err)
					return
				}
			}
		}()
	}
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var in strings.Builder
			for i := 0; i < 20; i++ {
				fmt.Fprintf(&in, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"lumen-test","messages":[{"role":"user","content":"line %d"}]}}`+"\n", i, i)
			}
			f, err := client.Files.New(ctx, oa.FileNewParams{File: oa.File(strings.NewReader(in.String()), "in.jsonl", "application/jsonl"), Purpose: oa.FilePurposeBatch})
			if err != nil {
				errs <- err
				return
			}
			b, err := client.Batches.New(ctx, oa.BatchNewParams{InputFileID: f.ID, Endpoint: oa.BatchNewParamsEndpointV1ChatCompletions, CompletionWindow: oa.BatchNewParamsCompletionWindow24h})
			if err != nil {
				errs <- err
				return
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				if time.Now().After(deadline) {
					errs <- fmt.Errorf("batch %s still %s", b.ID, b.Status)
					return
				}
				time.Sleep(5 * time.Millisecond)
				b, err = client.Batches.Get(ctx, b.ID)
				if err != nil {
					errs <- err
					return
				}
				if b.Status == "completed" {
					break
				}
				if b.Status == "failed" || b.Status == "cancelled" {
					errs <- fmt.Errorf("batch %s", b.Status)
					return
				}
			}
			if b.RequestCounts.Completed != 20 {
				errs <- fmt.Errorf("batch counts %+v", b.RequestCounts)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
