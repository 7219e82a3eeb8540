package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lumenflow/lumen/model"
)

func TestModelFlags_Config(t *testing.T) {
	parse := func(args ...string) (*modelFlags, error) {
		fl := flag.NewFlagSet("up", flag.ContinueOnError)
		m := addModelFlags(fl)
		return m, fl.Parse(args)
	}
	m, err := parse("--model", "d", "--openai-base-url", "http://x/v1", "--openai-models", "gpt-4o,mine=gpt-4o-mini", "--safety", "s.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.config()
	if err != nil || c.Dir != "d" || c.SafetyFile != "s.json" || c.Provider.BaseURL != "http://x/v1" || c.Provider.Models["mine"] != "gpt-4o-mini" {
		t.Fatalf("config %+v %v", c, err)
	}
	for _, bad := range [][]string{
		{"--openai-key-file", "k"},
		{"--openai-base-url", "http://x/v1", "--openai-models", "a=b,a=c"},
		{"--model-id", "x"},
	} {
		m, err := parse(bad...)
		if err == nil {
			_, err = m.config()
		}
		if err == nil || !strings.Contains(err.Error(), "--") {
			t.Errorf("%v: %v, want an error naming the flag", bad, err)
		}
	}
}

func TestModelTrain_WritesAServableDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	if err := modelCommand([]string{"train", "--out", dir, "--steps", "3", "--tasks", "text", "--quiet"}); err != nil {
		t.Fatal(err)
	}
	if _, err := model.Load(dir); err != nil {
		t.Fatalf("load the trained dir: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "eval.json"))
	if err != nil {
		t.Fatal(err)
	}
	var report struct {
		Steps    int
		Accuracy map[string]model.Accuracy
	}
	if err := json.Unmarshal(b, &report); err != nil || report.Steps != 3 || report.Accuracy["text"].Total == 0 {
		t.Fatalf("eval.json %s: %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "train.ckpt")); !os.IsNotExist(err) {
		t.Errorf("the checkpoint of a finished run was kept: %v", err)
	}
	for _, bad := range [][]string{{"train"}, {"train", "--out", dir, "--size", "huge"}, {"train", "--out", dir, "--tasks", "poetry"}, {"fly"}} {
		if err := modelCommand(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
