package lumen

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/lumenflow/lumen/sdk/abi"
)

func TestChatRequest_ExtraFieldsJoinTheNamedOnes(t *testing.T) {
	temp := 0.0
	r := ChatRequest{Model: "m", Messages: []ChatMessage{{Role: "user", Content: "hi"}}, Temperature: &temp,
		Extra: map[string]any{"response_format": map[string]any{"type": "json_object"}, "model": "ignored"}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["model"] != "m" || m["temperature"] != 0.0 || m["response_format"].(map[string]any)["type"] != "json_object" {
		t.Errorf("request JSON %s", b)
	}
	if _, ok := m["Extra"]; ok {
		t.Errorf("Extra leaked as a field: %s", b)
	}
}

func TestChat_OutsideAHostIsUnavailable(t *testing.T) {
	_, err := Chat(ChatRequest{Model: "m"})
	var e *Error
	if !errors.As(err, &e) || e.Status != abi.ErrUnavailable {
		t.Errorf("Chat outside a host: %v", err)
	}
}
