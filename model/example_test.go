package model_test

import (
	"fmt"

	"github.com/lumenflow/lumen/model"
)

// A tokenizer learns merges from a corpus; any bytes round-trip, and digits stay one token each.
func ExampleTrainBPE() {
	corpus := [][]byte{[]byte("the red circle, the red square, the blue circle")}
	tok, err := model.TrainBPE(corpus, 256+len(model.SpecialTokens)+8)
	if err != nil {
		fmt.Println(err)
		return
	}
	ids := tok.Encode([]byte("the red 42"))
	fmt.Println(len(ids), string(tok.Decode(ids)))
	// Output: 6 the red 42
}

// The chat template turns messages into the model's stream: special tokens frame each message.
func ExampleTemplate_Prompt() {
	tok, _ := model.TrainBPE(nil, 256+len(model.SpecialTokens))
	tp := model.Template{Tok: tok, Cfg: model.TinyConfig(tok.VocabSize())}
	items, _ := tp.Prompt(nil, []model.Message{model.TextMessage(model.RoleUser, "hi")})
	for _, it := range items {
		fmt.Print(string(tok.Piece(it.Token)))
	}
	fmt.Println()
	// Output: <|bos|><|user|>hi<|end|><|assistant|>
}
