package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/gpu"
	"github.com/lumenflow/lumen/model"
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

// trainPlan is the tokenizer and schedule of a model size.
type trainPlan struct {
	config    func(vocab int) model.Config
	corpus    int // corpus lines the BPE merges are learned from
	merges    int // merges on top of bytes and special tokens
	steps     int
	batch     int
	lr        float64
	warmup    int
	tasks     []string
	evalEvery int // held-out examples per task
}

var trainPlans = map[string]trainPlan{
	// tiny trains in tens of seconds on one core: text, image and audio, as examples/multimodal does.
	"tiny": {config: model.TinyConfig, corpus: 2000, merges: 120, steps: 200, batch: 32, lr: 3e-3, warmup: 20,
		tasks: []string{model.TaskText, model.TaskImage, model.TaskAudio}, evalEvery: 40},
	// small is the demo model: minutes on a CPU, every task.
	"small": {config: model.SmallConfig, corpus: 4000, merges: 200, steps: 1000, batch: 32, lr: 2e-3, warmup: 50,
		tasks: model.AllTasks, evalEvery: 100},
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
	plan, ok := trainPlans[*size]
	switch {
	case *out == "":
		fl.Usage()
		return errors.New("--out is required")
	case !ok:
		return fmt.Errorf("--size %q: want tiny or small", *size)
	case *steps < 0 || *batch < 0 || *threads < 1:
		return errors.New("--steps, --batch and --threads must be positive")
	}
	if *steps > 0 {
		plan.steps = *steps
	}
	if *batch > 0 {
		plan.batch = *batch
	}
	if *tasks != "" {
		plan.tasks = nil
		for _, t := range strings.Split(*tasks, ",") {
			t = strings.TrimSpace(t)
			known := false
			for _, k := range model.AllTasks {
				known = known || k == t
			}
			if !known {
				return fmt.Errorf("--tasks: unknown task %q (want %s)", t, strings.Join(model.AllTasks, ", "))
			}
			plan.tasks = append(plan.tasks, t)
		}
	}
	defer gpu.SetThreads(gpu.SetThreads(*threads))
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	logf := func(format string, a ...any) {
		if !*quiet {
			fmt.Printf(format, a...)
		}
	}
	start := time.Now()
	tr, err := newOrResumedTrainer(*out, plan, *seed, logf)
	if err != nil {
		return err
	}
	ckpt := filepath.Join(*out, "train.ckpt")
	tokens, last := 0, 0.0
	for tr.Step < tr.Cfg.Steps {
		l, n, err := tr.TrainStep()
		if err != nil {
			return fmt.Errorf("train step %d: %w", tr.Step, err)
		}
		tokens, last = tokens+n, l
		if tr.Step%50 == 0 || tr.Step == tr.Cfg.Steps {
			if err := tr.SaveCheckpoint(ckpt); err != nil {
				return err
			}
			el := time.Since(start).Seconds()
			logf("step %d/%d  loss %.3f  %.0f tokens/s  %.0fs\n", tr.Step, tr.Cfg.Steps, l, float64(tokens)/el, el)
		}
	}
	took := time.Since(start)
	m := tr.Model
	m.Freeze()
	if err := m.Save(*out); err != nil {
		return err
	}
	acc, err := model.Evaluate(m, model.NewGenerator(424242, tr.Cfg.Tasks).Take(plan.evalEvery*len(tr.Cfg.Tasks)))
	if err != nil {
		return fmt.Errorf("evaluate: %w", err)
	}
	report := struct {
		Size         string                    `json:"size"`
		Steps        int                       `json:"steps"`
		Tasks        []string                  `json:"tasks"`
		Params       int                       `json:"params"`
		FinalLoss    float64                   `json:"final_loss"`
		TrainSeconds float64                   `json:"train_seconds"`
		TokensPerSec float64                   `json:"train_tokens_per_s"`
		Accuracy     map[string]model.Accuracy `json:"accuracy"`
	}{*size, tr.Step, tr.Cfg.Tasks, m.NumParams(), last, took.Seconds(), float64(tokens) / took.Seconds(), acc}
	b, _ := json.MarshalIndent(report, "", "  ")
	if err := os.WriteFile(filepath.Join(*out, "eval.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	os.Remove(ckpt)
	keys := make([]string, 0, len(acc))
	for k := range acc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Printf("trained %s model (%d parameters, %d steps) in %.1fs; written to %s\n", *size, m.NumParams(), tr.Step, took.Seconds(), *out)
	for _, k := range keys {
		fmt.Printf("  held-out accuracy %-16s %5.1f%% (%d/%d)\n", k, 100*acc[k].Rate(), acc[k].Correct, acc[k].Total)
	}
	return nil
}

// newOrResumedTrainer resumes DIR/train.ckpt when it is there, else learns the tokenizer and
// starts a fresh model.
func newOrResumedTrainer(dir string, plan trainPlan, seed uint64, logf func(string, ...any)) (*model.Trainer, error) {
	ckpt := filepath.Join(dir, "train.ckpt")
	if _, err := os.Stat(ckpt); err == nil {
		tr, err := model.ResumeTrainer(ckpt)
		if err != nil {
			return nil, fmt.Errorf("resume %s: %w", ckpt, err)
		}
		logf("resuming from %s at step %d\n", ckpt, tr.Step)
		return tr, nil
	}
	tok, err := model.TrainBPE(model.Corpus(seed, plan.corpus), 256+len(model.SpecialTokens)+plan.merges)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	m, err := model.New(plan.config(tok.VocabSize()), tok)
	if err != nil {
		return nil, err
	}
	return model.NewTrainer(m, model.TrainConfig{Steps: plan.steps, Batch: plan.batch, LR: plan.lr, Warmup: plan.warmup, Seed: seed, Tasks: plan.tasks})
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

// config turns the flags into the engine's ModelConfig.
func (m *modelFlags) config() (engine.ModelConfig, error) {
	c := engine.ModelConfig{Dir: m.dir, ID: m.id, ContextLength: m.contextLength, SafetyFile: m.safety, BatchConcurrency: m.batchConcurrency,
		Provider: engine.ProviderConfig{BaseURL: m.baseURL, KeyFile: m.keyFile}}
	if m.names != "" {
		names, err := engine.ParseModelMap(m.names)
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
