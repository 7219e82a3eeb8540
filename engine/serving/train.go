package serving

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lumenflow/lumen/gpu"
	"github.com/lumenflow/lumen/model"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Training the multimodal model. TrainModel is what `lumen model train` runs, and what the
// built-in workflow function lumen:model.train runs as a step: a workflow that trains survives a
// restart of its node, since the step runs again and the trainer resumes from the checkpoint it
// keeps beside the model (every 50 steps).

// TrainSpec says what to train.
type TrainSpec struct {
	// Out is the model directory to write: safetensors, config, tokenizer, eval.json.
	Out string `json:"out"`
	// Size is "tiny" (tens of seconds on a core) or "small" (the demo model, minutes).
	Size string `json:"size,omitempty"`
	// Steps, Batch and Tasks override the size's schedule; Seed picks the data (default 1);
	// Threads the tensor kernels' threads (default 1).
	Steps   int      `json:"steps,omitempty"`
	Batch   int      `json:"batch,omitempty"`
	Tasks   []string `json:"tasks,omitempty"`
	Seed    uint64   `json:"seed,omitempty"`
	Threads int      `json:"threads,omitempty"`
}

// TrainReport is what a training run measured.
type TrainReport struct {
	Size         string                    `json:"size"`
	Steps        int                       `json:"steps"`
	Tasks        []string                  `json:"tasks"`
	Params       int                       `json:"params"`
	FinalLoss    float64                   `json:"final_loss"`
	TrainSeconds float64                   `json:"train_seconds"`
	TokensPerSec float64                   `json:"train_tokens_per_s"`
	Resumed      int                       `json:"resumed_at_step,omitempty"`
	Accuracy     map[string]model.Accuracy `json:"accuracy"`
	Out          string                    `json:"out"`
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

// checkpointEvery is how often (in steps) training saves a checkpoint it can resume from.
const checkpointEvery = 50

// TrainModel trains a model into spec.Out (created if needed), resuming from Out/train.ckpt
// when a previous run stopped, and evaluates it on held-out data. logf, when set, gets progress
// lines. It stops with ctx.
func TrainModel(ctx context.Context, spec TrainSpec, logf func(format string, args ...any)) (*TrainReport, error) {
	if spec.Size == "" {
		spec.Size = "tiny"
	}
	plan, ok := trainPlans[spec.Size]
	switch {
	case spec.Out == "":
		return nil, errors.New("train: out (the model directory) is required")
	case !ok:
		return nil, fmt.Errorf("train: size %q: want tiny or small", spec.Size)
	case spec.Steps < 0 || spec.Batch < 0 || spec.Threads < 0:
		return nil, errors.New("train: steps, batch and threads must not be negative")
	}
	if spec.Steps > 0 {
		plan.steps = spec.Steps
	}
	if spec.Batch > 0 {
		plan.batch = spec.Batch
	}
	if len(spec.Tasks) > 0 {
		plan.tasks = nil
		for _, t := range spec.Tasks {
			known := false
			for _, k := range model.AllTasks {
				known = known || k == t
			}
			if !known {
				return nil, fmt.Errorf("train: unknown task %q (want %s)", t, strings.Join(model.AllTasks, ", "))
			}
			plan.tasks = append(plan.tasks, t)
		}
	}
	if spec.Seed == 0 {
		spec.Seed = 1
	}
	if spec.Threads == 0 {
		spec.Threads = 1
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	defer gpu.SetThreads(gpu.SetThreads(spec.Threads))
	if err := os.MkdirAll(spec.Out, 0o755); err != nil {
		return nil, err
	}
	start := time.Now()
	tr, resumed, err := newOrResumedTrainer(spec.Out, plan, spec.Seed, logf)
	if err != nil {
		return nil, err
	}
	ckpt := filepath.Join(spec.Out, "train.ckpt")
	tokens, last := 0, 0.0
	for tr.Step < tr.Cfg.Steps {
		if err := ctx.Err(); err != nil {
			// The checkpoint stays: the next run resumes from it.
			return nil, fmt.Errorf("train: stopped at step %d: %w", tr.Step, err)
		}
		l, n, err := tr.TrainStep()
		if err != nil {
			return nil, fmt.Errorf("train step %d: %w", tr.Step, err)
		}
		tokens, last = tokens+n, l
		if tr.Step%checkpointEvery == 0 || tr.Step == tr.Cfg.Steps {
			if err := tr.SaveCheckpoint(ckpt); err != nil {
				return nil, err
			}
			el := time.Since(start).Seconds()
			logf("step %d/%d  loss %.3f  %.0f tokens/s  %.0fs\n", tr.Step, tr.Cfg.Steps, l, float64(tokens)/el, el)
		}
	}
	took := time.Since(start)
	m := tr.Model
	m.Freeze()
	if err := m.Save(spec.Out); err != nil {
		return nil, err
	}
	acc, err := model.Evaluate(m, model.NewGenerator(424242, tr.Cfg.Tasks).Take(plan.evalEvery*len(tr.Cfg.Tasks)))
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	rep := &TrainReport{Size: spec.Size, Steps: tr.Step, Tasks: tr.Cfg.Tasks, Params: m.NumParams(), FinalLoss: last,
		TrainSeconds: took.Seconds(), TokensPerSec: float64(tokens) / took.Seconds(), Resumed: resumed, Accuracy: acc, Out: spec.Out}
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(spec.Out, "eval.json"), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	os.Remove(ckpt)
	return rep, nil
}

// newOrResumedTrainer resumes DIR/train.ckpt when it is there (returning the step it resumed
// at), else learns the tokenizer and starts a fresh model.
func newOrResumedTrainer(dir string, plan trainPlan, seed uint64, logf func(string, ...any)) (*model.Trainer, int, error) {
	ckpt := filepath.Join(dir, "train.ckpt")
	if _, err := os.Stat(ckpt); err == nil {
		tr, err := model.ResumeTrainer(ckpt)
		if err != nil {
			return nil, 0, fmt.Errorf("resume %s: %w", ckpt, err)
		}
		logf("resuming from %s at step %d\n", ckpt, tr.Step)
		return tr, tr.Step, nil
	}
	tok, err := model.TrainBPE(model.Corpus(seed, plan.corpus), 256+len(model.SpecialTokens)+plan.merges)
	if err != nil {
		return nil, 0, fmt.Errorf("tokenizer: %w", err)
	}
	m, err := model.New(plan.config(tok.VocabSize()), tok)
	if err != nil {
		return nil, 0, err
	}
	tr, err := model.NewTrainer(m, model.TrainConfig{Steps: plan.steps, Batch: plan.batch, LR: plan.lr, Warmup: plan.warmup, Seed: seed, Tasks: plan.tasks})
	return tr, 0, err
}

// TrainStepFunction describes the built-in workflow function lumen:model.train (module
// "lumen:model", function "train"): a task whose input is a TrainSpec and whose output is the
// TrainReport, both JSON. The engine's workflow runner lists it and runs it with TrainStep.
var TrainStepFunction = abi.Function{Name: "train", Kind: abi.KindTask, Input: abi.EncJSON, Output: abi.EncJSON}

// TrainStep runs lumen:model.train as a workflow step: input is a TrainSpec whose out is
// relative to the node's data root (and must stay inside it); the output is the TrainReport,
// with out relative again. Errors are *abi.Error: KindBadInput for a spec refused or a run that
// failed, KindDenied on a node without a data root, KindCancelled when ctx ended.
func (s *Service) TrainStep(ctx context.Context, input []byte) ([]byte, error) {
	var spec TrainSpec
	dec := json.NewDecoder(bytes.NewReader(input))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: "lumen:model.train: " + err.Error()}
	}
	root := s.deps.DataRoot
	if root == "" {
		return nil, &abi.Error{Kind: abi.KindDenied, Message: "lumen:model.train writes under the node's data root, and this node has none (start it with --data-root)"}
	}
	rel := spec.Out
	if err := s.deps.CheckPaths(root, []string{rel}); err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: "lumen:model.train: " + err.Error()}
	}
	spec.Out = filepath.Join(root, rel)
	rep, err := TrainModel(ctx, spec, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, &abi.Error{Kind: abi.KindCancelled, Message: err.Error()}
		}
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: err.Error()}
	}
	rep.Out = rel
	return json.Marshal(rep)
}
