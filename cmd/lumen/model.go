package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/lumenflow/lumen/engine/serving"
)

const modelUsage = `usage: lumen model train --out DIR [--size tiny|small] [--steps N] [--tasks t1,t2] [--batch N] [--seed N] [--threads N]

Trains Lumen's multimodal model on its seeded synthetic data, in this process, and writes the
model directory that "lumen up --model DIR" serves: model.safetensors, config.json,
tokenizer.json, and eval.json (held-out exact-match accuracy per task). A checkpoint is kept in
DIR/train.ckpt every 50 steps; running the same command again resumes from it.
Tasks: text, image, audio, tool, json, refusal (default: all).
`

// modelCommand is "lumen model ...".
func modelCommand(args []string) error {
	if len(args) == 0 || args[0] != "train" {
		fmt.Fprint(os.Stderr, modelUsage)
		return errors.New(`want "lumen model train"`)
	}
	return modelTrain(args[1:])
}

func modelTrain(args []string) error {
	fl := flag.NewFlagSet("model train", flag.ContinueOnError)
	fl.Usage = func() { fmt.Fprint(fl.Output(), modelUsage); fl.PrintDefaults() }
	out := fl.String("out", "", "model directory to write (required)")
	size := fl.String("size", "tiny", "model size: tiny or small")
	steps := fl.Int("steps", 0, "training steps (default: the size's)")
	batch := fl.Int("batch", 0, "examples per step (default 32)")
	tasks := fl.String("tasks", "", "comma-separated task families (default: the size's)")
	seed := fl.Uint64("seed", 1, "data seed: the same seed trains the same model")
	threads := fl.Int("threads", 1, "CPU threads for the tensor kernels")
	quiet := fl.Bool("quiet", false, "print only the summary")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		fl.Usage()
		return errors.New("--out is required")
	}
	if *steps < 0 || *batch < 0 || *threads < 1 {
		return errors.New("--steps, --batch and --threads must be positive")
	}
	spec := serving.TrainSpec{Out: *out, Size: *size, Steps: *steps, Batch: *batch, Seed: *seed, Threads: *threads}
	if *tasks != "" {
		for _, t := range strings.Split(*tasks, ",") {
			spec.Tasks = append(spec.Tasks, strings.TrimSpace(t))
		}
	}
	logf := func(format string, a ...any) {
		if !*quiet {
			fmt.Printf(format, a...)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := serving.TrainModel(ctx, spec, logf)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(rep.Accuracy))
	for k := range rep.Accuracy {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Printf("trained %s model (%d parameters, %d steps) in %.1fs; written to %s\n", rep.Size, rep.Params, rep.Steps, rep.TrainSeconds, *out)
	for _, k := range keys {
		a := rep.Accuracy[k]
		fmt.Printf("  held-out accuracy %-16s %5.1f%% (%d/%d)\n", k, 100*a.Rate(), a.Correct, a.Total)
	}
	return nil
}

// modelFlags are the serving flags of "lumen up" and "lumen server".
type modelFlags struct {
	dir, id, baseURL, keyFile, names, safety string
	contextLength, batchConcurrency          int
}

// addModelFlags registers the serving flags on fl.
func addModelFlags(fl *flag.FlagSet) *modelFlags {
	m := &modelFlags{}
	fl.StringVar(&m.dir, "model", "", "serve this model directory (written by lumen model train) on the OpenAI-compatible API")
	fl.StringVar(&m.id, "model-id", "", `the name the --model model is served under (default "lumen-mm")`)
	fl.IntVar(&m.contextLength, "context-length", 0, "the --model model's context length in positions (default its max_seq; at most 131072)")
	fl.StringVar(&m.baseURL, "openai-base-url", "", "serve an external OpenAI-compatible provider too, e.g. https://api.openai.com/v1")
	fl.StringVar(&m.keyFile, "openai-key-file", "", "file holding the provider's API key")
	fl.StringVar(&m.names, "openai-models", "", `names served for the provider: "gpt-4o" or "served=provider,..." (default gpt-4o)`)
	fl.StringVar(&m.safety, "safety", "", "safety filter configuration (JSON; docs/openai.md); default: the built-in categories")
	fl.IntVar(&m.batchConcurrency, "batch-concurrency", 0, "batch lines run at once (default 4)")
	return m
}

// config turns the flags into the node's serving.Config.
func (m *modelFlags) config() (serving.Config, error) {
	c := serving.Config{Dir: m.dir, ID: m.id, ContextLength: m.contextLength, SafetyFile: m.safety, BatchConcurrency: m.batchConcurrency,
		Provider: serving.ProviderConfig{BaseURL: m.baseURL, KeyFile: m.keyFile}}
	if m.names != "" {
		names, err := serving.ParseModelMap(m.names)
		if err != nil {
			return c, fmt.Errorf("--openai-models: %w", err)
		}
		c.Provider.Models = names
	}
	if m.baseURL == "" && (m.keyFile != "" || m.names != "") {
		return c, errors.New("--openai-key-file and --openai-models need --openai-base-url")
	}
	if m.dir == "" && (m.id != "" || m.contextLength != 0) {
		return c, errors.New("--model-id and --context-length need --model")
	}
	return c, nil
}
