package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lumenflow/lumen/engine/client"
)

const jobUsage = `usage:
  lumen job submit [--namespace N] [--id ID] (--workflow FILE | --module M --function F [--args JSON])
                   [--grant caps] [--metadata k=v,k=v] [--wait]
  lumen job list [--namespace N] [--status S]
  lumen job status ID
  lumen job stop ID
each takes --url, --token and --json`

// jobRecord is a job as the API answers it (engine.Job, with the result once it succeeded).
type jobRecord struct {
	ID          string            `json:"id"`
	Namespace   string            `json:"namespace"`
	Kind        string            `json:"kind"`
	Entrypoint  string            `json:"entrypoint"`
	Status      string            `json:"status"`
	Message     string            `json:"message,omitempty"`
	Node        string            `json:"node"`
	Submitted   time.Time         `json:"submitted"`
	Started     *time.Time        `json:"started,omitempty"`
	Ended       *time.Time        `json:"ended,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Workflow    string            `json:"workflow,omitempty"`
	Result      json.RawMessage   `json:"result,omitempty"`
	ResultText  *string           `json:"result_text,omitempty"`
	ResultBytes []byte            `json:"result_base64,omitempty"` // a result that is not text
}

func (j *jobRecord) ended() bool {
	return j.Status == "SUCCEEDED" || j.Status == "FAILED" || j.Status == "STOPPED"
}

// jobCommand is `lumen job submit|list|status|stop`.
func jobCommand(args []string) error {
	if len(args) == 0 {
		return errors.New(jobUsage)
	}
	var cf clientFlags
	fl := flag.NewFlagSet("job "+args[0], flag.ContinueOnError)
	cf.register(fl)
	ctx := context.Background()
	switch args[0] {
	case "submit":
		ns := fl.String("namespace", "", "the job's namespace (default \"default\")")
		id := fl.String("id", "", "the job's id (submission id); default: generated")
		wf := fl.String("workflow", "", "run the workflow document in FILE")
		module := fl.String("module", "", "run a task function of this module (digest, name@version or name)")
		function := fl.String("function", "", "the task function --module runs")
		argsJSON := fl.String("args", "", "the task function's arguments, as JSON")
		grants := fl.String("grant", "", "capabilities granted to the job's code, comma-separated (objects,tasks,actors,clock,random,tensors,model)")
		meta := fl.String("metadata", "", "metadata kept with the job, as k=v pairs separated by commas")
		wait := fl.Bool("wait", false, "wait for the job to end; print its result, and fail unless it succeeded")
		if err := fl.Parse(reorder(args[1:], "wait")); err != nil {
			return err
		}
		if fl.NArg() != 0 {
			return fmt.Errorf("lumen job submit: unexpected argument %q\n%s", fl.Arg(0), jobUsage)
		}
		body, err := jobRequest(*ns, *id, *wf, *module, *function, *argsJSON, *grants, *meta)
		if err != nil {
			return err
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		var j jobRecord
		if err := c.JSON(ctx, "POST", "/v1/jobs", body, &j); err != nil {
			return err
		}
		if !*wait {
			if cf.json {
				return printJSON(j)
			}
			fmt.Printf("job %s submitted: %s on node %s (lumen job status %s)\n", j.ID, j.Status, j.Node, j.ID)
			return nil
		}
		return waitForJob(ctx, c, j.ID, cf.json)
	case "list", "ls":
		ns := fl.String("namespace", "", "only the jobs of this namespace")
		status := fl.String("status", "", "only the jobs with this status (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED)")
		if err := fl.Parse(args[1:]); err != nil {
			return err
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		q := url.Values{}
		if *ns != "" {
			q.Set("namespace", *ns)
		}
		if *status != "" {
			q.Set("status", strings.ToUpper(*status))
		}
		var out struct {
			Jobs []jobRecord `json:"jobs"`
		}
		if err := c.JSON(ctx, "GET", "/v1/jobs?"+q.Encode(), nil, &out); err != nil {
			return err
		}
		if cf.json {
			return printJSON(out.Jobs)
		}
		tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAMESPACE\tSTATUS\tNODE\tSUBMITTED\tENTRYPOINT\tMESSAGE")
		for _, j := range out.Jobs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Namespace, j.Status, j.Node,
				j.Submitted.Local().Format("2006-01-02 15:04:05"), j.Entrypoint, oneLine(j.Message, 60))
		}
		return tw.Flush()
	case "status", "stop":
		if err := fl.Parse(reorder(args[1:])); err != nil {
			return err
		}
		if fl.NArg() != 1 {
			return fmt.Errorf("usage: lumen job %s ID", args[0])
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		var j jobRecord
		path := "/v1/jobs/" + url.PathEscape(fl.Arg(0))
		if args[0] == "stop" {
			err = c.JSON(ctx, "DELETE", path, nil, &j)
		} else {
			err = c.JSON(ctx, "GET", path, nil, &j)
		}
		if err != nil {
			return err
		}
		if cf.json {
			return printJSON(j)
		}
		printJob(&j)
		return nil
	}
	return fmt.Errorf("lumen job: unknown subcommand %q\n%s", args[0], jobUsage)
}

// jobRequest builds POST /v1/jobs's body from the flags, checking what the server cannot see
// (the workflow file) and naming the flag at fault.
func jobRequest(ns, id, wf, module, function, args, grants, meta string) ([]byte, error) {
	ep := map[string]any{}
	switch {
	case wf != "" && (module != "" || function != "" || args != ""):
		return nil, errors.New("lumen job submit: give either --workflow, or --module and --function, not both")
	case wf != "":
		doc, err := os.ReadFile(wf)
		if err != nil {
			return nil, fmt.Errorf("--workflow: %w", err)
		}
		if !json.Valid(doc) {
			return nil, fmt.Errorf("--workflow: %s is not JSON", wf)
		}
		ep["workflow"] = json.RawMessage(doc)
	case module == "" || function == "":
		return nil, errors.New("lumen job submit: --workflow FILE, or --module and --function, is required\n" + jobUsage)
	default:
		ep["module"], ep["function"] = module, function
		if args != "" {
			if !json.Valid([]byte(args)) {
				return nil, fmt.Errorf("--args: %q is not JSON (a string argument is written with its quotes: '\"text\"')", args)
			}
			ep["args"] = json.RawMessage(args)
		}
	}
	if grants != "" {
		var gs []string
		for _, g := range strings.Split(grants, ",") {
			gs = append(gs, strings.TrimSpace(g))
		}
		ep["grants"] = gs
	}
	req := map[string]any{"entrypoint": ep}
	if ns != "" {
		req["namespace"] = ns
	}
	if id != "" {
		req["submission_id"] = id
	}
	if meta != "" {
		m := map[string]string{}
		for _, kv := range strings.Split(meta, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("--metadata: %q is not k=v", kv)
			}
			m[k] = v
		}
		req["metadata"] = m
	}
	return json.Marshal(req)
}

// waitForJob waits for a job to end, a few seconds per request, and prints its end: the result
// of a job that succeeded, an error for any other end.
func waitForJob(ctx context.Context, c *client.Client, id string, asJSON bool) error {
	var j jobRecord
	for {
		if err := c.JSON(ctx, "GET", "/v1/jobs/"+url.PathEscape(id)+"?wait=true&timeout_ms=5000", nil, &j); err != nil {
			return err
		}
		if j.ended() {
			break
		}
	}
	if asJSON {
		if err := printJSON(j); err != nil {
			return err
		}
	} else if j.Status == "SUCCEEDED" {
		switch {
		case j.Result != nil:
			fmt.Println(string(j.Result))
		case j.ResultText != nil:
			fmt.Println(*j.ResultText)
		case j.ResultBytes != nil:
			os.Stdout.Write(j.ResultBytes)
		default:
			fmt.Println(j.Message)
		}
	}
	if j.Status != "SUCCEEDED" {
		return fmt.Errorf("job %s %s: %s", j.ID, j.Status, j.Message)
	}
	return nil
}

func printJob(j *jobRecord) {
	fmt.Printf("job %s (%s, namespace %s): %s on node %s\n", j.ID, j.Entrypoint, j.Namespace, j.Status, j.Node)
	if j.Message != "" {
		fmt.Printf("  %s\n", j.Message)
	}
	if j.Workflow != "" {
		fmt.Printf("  workflow %s\n", j.Workflow)
	}
	fmt.Printf("  submitted %s", j.Submitted.Local().Format(time.RFC3339))
	if j.Started != nil {
		fmt.Printf(", started %s", j.Started.Local().Format(time.RFC3339))
	}
	if j.Ended != nil {
		fmt.Printf(", ended %s", j.Ended.Local().Format(time.RFC3339))
	}
	fmt.Println()
	switch {
	case j.Result != nil:
		fmt.Printf("  result %s\n", oneLine(string(j.Result), 200))
	case j.ResultText != nil:
		fmt.Printf("  result %s\n", oneLine(*j.ResultText, 200))
	case j.ResultBytes != nil:
		fmt.Printf("  result: %d bytes that are not text\n", len(j.ResultBytes))
	}
}

// oneLine cuts s to one line of at most n runes.
func oneLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
