package serving_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lumenflow/lumen/engine/serving"
	"github.com/lumenflow/lumen/sdk/abi"
)

// The training step refuses, before training, a node without a data root, an out outside it
// and a spec with unknown fields; the path check it is given decides what is outside.
func TestTrain_StepRefusesBeforeTraining(t *testing.T) {
	ctx := context.Background()
	kind := func(err error) abi.ErrorKind {
		var ae *abi.Error
		if !errors.As(err, &ae) {
			return ""
		}
		return ae.Kind
	}
	none, err := serving.Open(serving.Config{}, serving.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := none.TrainStep(ctx, []byte(`{"out":"m"}`)); kind(err) != abi.KindDenied || !strings.Contains(err.Error(), "--data-root") {
		t.Errorf("no data root: %v", err)
	}
	if _, err := serving.Open(serving.Config{}, serving.Deps{DataRoot: t.TempDir()}); err == nil {
		t.Error("Open accepted a data root without a path check")
	}

	root := t.TempDir()
	var checked []string
	s, err := serving.Open(serving.Config{}, serving.Deps{DataRoot: root, CheckPaths: func(r string, paths []string) error {
		checked = append(checked, paths...)
		if r != root || !filepath.IsLocal(paths[0]) {
			return errors.New("outside the data root")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		`{"out":"../x"}`:           "lumen:model.train: outside the data root",
		`{"out":"m","layers":9}`:   `lumen:model.train: json: unknown field "layers"`,
		`{"out":"m","size":"big"}`: `train: size "big": want tiny or small`,
	} {
		if _, err := s.TrainStep(ctx, []byte(in)); kind(err) != abi.KindBadInput || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", in, err, want)
		}
	}
	if len(checked) != 2 || checked[0] != "../x" && checked[1] != "../x" {
		t.Errorf("paths checked: %v", checked)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("a refused step wrote %v", entries)
	}
}
