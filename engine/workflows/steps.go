package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/lumenflow/lumen/engine/dag"
	"github.com/lumenflow/lumen/sdk/abi"
)

// runStep runs one step: once, or once per element of its map, in parallel, each element's
// output checkpointed as it finishes so a restart re-runs only the missing ones.
func (m *Manager) runStep(ctx context.Context, r *run, s *dag.Step, outputs map[string][]byte) ([]byte, error) {
	c := Call{Job: r.spec.Job, Grants: r.spec.Grants, Module: r.spec.Modules[s.Module], Step: s}
	if s.Pipeline {
		return m.deps.Steps.Pipeline(ctx, c, outputs, func(dataJob string) {
			m.markStep(r, s.ID, func(ss *StepStatus) { ss.DataJob = dataJob })
			m.saveMeta(r)
		})
	}
	run, err := m.deps.Steps.Prepare(ctx, c)
	if err != nil {
		return nil, err
	}
	return m.runStepWith(ctx, r, s, outputs, run)
}

// runStepWith runs a step's calls through run: once, or once per element of its map.
func (m *Manager) runStepWith(ctx context.Context, r *run, s *dag.Step, outputs map[string][]byte, run func([]byte) ([]byte, error)) ([]byte, error) {
	if s.Map == nil {
		input, err := s.RenderInput(outputs, nil, 0)
		if err != nil {
			return nil, &abi.Error{Kind: abi.KindBadInput, Message: err.Error()}
		}
		return run(input)
	}
	items, err := mapItems(s, outputs)
	if err != nil {
		return nil, err
	}
	results := make([][]byte, len(items))
	prefix := Key(r.id, "item/"+s.ID+"/")
	m.store.Scan(prefix, func(k string, v []byte) error {
		if i, err := strconv.Atoi(strings.TrimPrefix(k, prefix)); err == nil && i >= 0 && i < len(items) {
			results[i] = v
		}
		return nil
	})
	finished := 0
	for _, res := range results {
		if res != nil {
			finished++
		}
	}
	m.markStep(r, s.ID, func(ss *StepStatus) { ss.Items, ss.ItemsRan = len(items), finished })
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i, item := range items {
		if results[i] != nil {
			continue
		}
		input, err := s.RenderInput(outputs, item, i)
		if err != nil {
			return nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("element %d: %v", i, err)}
		}
		wg.Add(1)
		go func(i int, input []byte) {
			defer wg.Done()
			out, err := run(input)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = fmt.Errorf("element %d: %w", i, err)
				}
				return
			}
			results[i] = out
			m.markStep(r, s.ID, func(ss *StepStatus) { ss.ItemsRan++ })
			m.checkpoint(r, map[string][]byte{prefix + strconv.Itoa(i): out})
		}(i, input)
	}
	wg.Wait()
	if first != nil {
		var ae *abi.Error
		if errors.As(first, &ae) {
			return nil, &abi.Error{Kind: ae.Kind, Limit: ae.Limit, Code: ae.Code, Message: first.Error()}
		}
		return nil, first
	}
	return joinJSON(s, results)
}

// mapItems renders a map step's array and splits it into elements (at most dag.MaxItems).
func mapItems(s *dag.Step, outputs map[string][]byte) ([]json.RawMessage, error) {
	items, err := s.Items(outputs)
	if err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: err.Error()}
	}
	return items, nil
}

// joinJSON makes the JSON array of a map step's element outputs. A bytes output goes in as a
// JSON string; one that is not UTF-8 cannot.
func joinJSON(s *dag.Step, parts [][]byte) ([]byte, error) {
	out := []byte{'['}
	for i, p := range parts {
		if i > 0 {
			out = append(out, ',')
		}
		switch {
		case s.Output != abi.EncBytes && json.Valid(p):
			out = append(out, p...)
		case utf8.Valid(p):
			b, _ := json.Marshal(string(p))
			out = append(out, b...)
		default:
			return nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("map step %q: element %d's output is neither JSON nor UTF-8 text", s.ID, i)}
		}
	}
	return append(out, ']'), nil
}
