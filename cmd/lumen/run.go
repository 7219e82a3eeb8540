package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/lumenflow/lumen/engine/client"
)

// runCommand is `lumen run workflow.json [--follow]`: submit a workflow and, with --follow,
// show its steps' progress until it ends, then print its output.
func runCommand(args []string) error {
	var cf clientFlags
	fl := flag.NewFlagSet("run", flag.ContinueOnError)
	cf.register(fl)
	follow := fl.Bool("follow", false, "show progress until the workflow ends, then print its output")
	job := fl.String("job", "", "the job to run in (default \"default\")")
	grants := fl.String("grant", "", "capabilities granted to the steps, comma-separated (objects,tasks,actors,clock,random)")
	if err := fl.Parse(reorder(args, "follow")); err != nil {
		return err
	}
	if fl.NArg() != 1 {
		return fmt.Errorf("usage: lumen run WORKFLOW.json [--follow] [--job J] [--grant caps]")
	}
	doc, err := os.ReadFile(fl.Arg(0))
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var g []string
	if *grants != "" {
		g = strings.Split(*grants, ",")
	}
	ctx := context.Background()
	st, err := c.SubmitWorkflow(ctx, doc, *job, g)
	if err != nil {
		return err
	}
	if !*follow {
		if cf.json {
			return printJSON(st)
		}
		fmt.Println(st.ID)
		return nil
	}
	tty := isTerminal(os.Stderr)
	last := ""
	for {
		out, done, err := c.WorkflowResult(ctx, st.ID, 250*time.Millisecond)
		cur, serr := c.Workflow(ctx, st.ID)
		if serr == nil && !cf.json {
			line := progressLine(cur)
			if ops := dataProgress(ctx, c, st.ID); len(ops) > 0 && !tty {
				line += "\n" + strings.Join(ops, "\n") // data.go: per-operator progress
			} else if len(ops) > 0 {
				line += " |" + strings.Join(ops, " |")
			}
			if tty {
				fmt.Fprintf(os.Stderr, "\r\033[K%s", line)
			} else if line != last {
				fmt.Fprintln(os.Stderr, line)
			}
			last = line
		}
		if err != nil {
			if tty {
				fmt.Fprintln(os.Stderr)
			}
			return fmt.Errorf("workflow %s failed: %w", st.ID, err)
		}
		if done {
			if tty {
				fmt.Fprintln(os.Stderr)
			}
			if cf.json {
				fmt.Println(string(out))
				return nil
			}
			fmt.Println(string(out))
			return nil
		}
	}
}

// progressLine renders a workflow's progress: a bar over its steps (map elements counted) and
// the state of each step.
func progressLine(st *client.WorkflowStatus) string {
	total, done := 0.0, 0.0
	var parts []string
	for _, s := range st.Steps {
		total++
		switch {
		case s.State == "done":
			done++
		case s.Items > 0:
			done += float64(s.ItemsRan) / float64(s.Items)
		}
		p := s.ID + ":" + s.State
		if s.Items > 0 && s.State == "running" {
			p = fmt.Sprintf("%s:%d/%d", s.ID, s.ItemsRan, s.Items)
		}
		parts = append(parts, p)
	}
	const width = 24
	n := 0
	if total > 0 {
		n = int(done / total * width)
	}
	return fmt.Sprintf("%s [%s%s] %3.0f%% %s  %s", st.ID, strings.Repeat("#", n), strings.Repeat(".", width-n), 100*done/max(total, 1), st.State, strings.Join(parts, " "))
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
