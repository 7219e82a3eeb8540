package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lumenflow/lumen/engine/client"
)

// addDataRootFlag registers --data-root: the folder data jobs and pipeline steps may read and
// write. Without it the node refuses them.
func addDataRootFlag(fl *flag.FlagSet) *string {
	return fl.String("data-root", "", "folder that data pipelines may read and write (paths in pipelines are relative to it); empty: data jobs are refused")
}

// dataRoot checks the --data-root value: an existing folder, made absolute.
func dataRoot(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	abs, err := filepath.Abs(v)
	if err != nil {
		return "", fmt.Errorf("--data-root %s: %w", v, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("--data-root: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("--data-root %s is not a folder", abs)
	}
	return abs, nil
}

// dataOp is one operator's counters, as GET /v1/data/jobs/:id reports them.
type dataOp struct {
	Op       string `json:"op"`
	RowsIn   int64  `json:"rows_in"`
	RowsOut  int64  `json:"rows_out"`
	Spilled  int64  `json:"spilled_bytes"`
	PeakHeld int64  `json:"peak_held_bytes"`
	Done     bool   `json:"done"`
}

// dataProgress renders the per-operator progress of a workflow's pipeline steps that are
// running or just ended, one line per step: "etl: 1:read_csv(in) 1200 → 2:filter(…) 800 …".
// It returns nothing for a workflow without pipeline steps, or when the API cannot say.
func dataProgress(ctx context.Context, c *client.Client, workflow string) []string {
	var wf struct {
		Steps []struct {
			ID      string `json:"id"`
			DataJob string `json:"data_job"`
		} `json:"steps"`
	}
	if err := c.JSON(ctx, "GET", "/v1/workflows/"+workflow, nil, &wf); err != nil {
		return nil
	}
	var lines []string
	for _, s := range wf.Steps {
		if s.DataJob == "" {
			continue
		}
		var job struct {
			State    string   `json:"state"`
			Progress []dataOp `json:"progress"`
		}
		if err := c.JSON(ctx, "GET", "/v1/data/jobs/"+s.DataJob, nil, &job); err != nil {
			continue
		}
		lines = append(lines, fmt.Sprintf("  %s (%s, %s): %s", s.ID, s.DataJob, job.State, opsLine(job.Progress)))
	}
	return lines
}

// opsLine renders operators as "name rows_out[✓]" joined by arrows, with spilled bytes when any.
func opsLine(ops []dataOp) string {
	parts := make([]string, len(ops))
	for i, op := range ops {
		name := op.Op
		if len(name) > 40 {
			name = name[:39] + "…"
		}
		p := fmt.Sprintf("%s %d rows", name, op.RowsOut)
		if op.Spilled > 0 {
			p += fmt.Sprintf(" (spilled %d B)", op.Spilled)
		}
		if op.Done {
			p += " ✓"
		}
		parts[i] = p
	}
	return strings.Join(parts, " → ")
}
