package model

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/lumenflow/lumen/gpu"
)

// Files of a saved model directory.
const (
	WeightsFile   = "model.safetensors"
	ConfigFile    = "config.json"
	TokenizerFile = "tokenizer.json"
)

// Save writes the model to dir (created if needed): weights in safetensors, config.json and
// tokenizer.json beside them.
func (m *Model) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	cfg, err := json.MarshalIndent(m.Config, "", "  ")
	if err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	tok, err := m.Tok.MarshalJSON()
	if err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, ConfigFile), cfg); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, TokenizerFile), tok); err != nil {
		return err
	}
	ts := make(map[string]*gpu.Tensor, len(m.names))
	for i, n := range m.names {
		ts[n] = m.params[i]
	}
	tmp := filepath.Join(dir, WeightsFile+".tmp")
	if err := gpu.SaveSafetensors(tmp, ts, map[string]string{"format": "lumen-model"}); err != nil {
		return fmt.Errorf("save model weights: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, WeightsFile)); err != nil {
		return fmt.Errorf("save model weights: %w", err)
	}
	return nil
}

// Load reads a model saved by [Model.Save]. Errors name the file and field at fault.
func Load(dir string) (*Model, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("load model %s: %w", ConfigFile, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("load model %s: %w", ConfigFile, err)
	}
	tok, err := LoadTokenizer(filepath.Join(dir, TokenizerFile))
	if err != nil {
		return nil, err
	}
	if tok.VocabSize() != cfg.Vocab {
		return nil, fmt.Errorf("load model: %s vocab_size %d, but %s has %d tokens", ConfigFile, cfg.Vocab, TokenizerFile, tok.VocabSize())
	}
	ts, _, err := gpu.LoadSafetensors(filepath.Join(dir, WeightsFile), nil)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", WeightsFile, err)
	}
	m, err := fromTensors(cfg, tok, ts)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", WeightsFile, err)
	}
	return m, nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
