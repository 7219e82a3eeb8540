package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lumenflow/lumen/engine/client"
)

// clientFlags are the flags every client command takes.
type clientFlags struct {
	url, token string
	json       bool
}

func (cf *clientFlags) register(fl *flag.FlagSet) {
	fl.StringVar(&cf.url, "url", "", "API URL (default $LUMEN_URL or "+client.DefaultURL+")")
	fl.StringVar(&cf.token, "token", "", "API token (default $LUMEN_TOKEN or lumen-data/token)")
	fl.BoolVar(&cf.json, "json", false, "print JSON for scripts")
}

func (cf *clientFlags) client() (*client.Client, error) { return client.New(cf.url, cf.token) }

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// moduleCommand is `lumen module push|ls`.
func moduleCommand(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: lumen module push FILE [--name N --version V] | lumen module ls")
	}
	var cf clientFlags
	fl := flag.NewFlagSet("module "+args[0], flag.ContinueOnError)
	cf.register(fl)
	ctx := context.Background()
	switch args[0] {
	case "push":
		name := fl.String("name", "", "bind name@version to the module")
		version := fl.String("version", "", "the version of --name (semver)")
		if err := fl.Parse(reorder(args[1:])); err != nil {
			return err
		}
		if fl.NArg() != 1 {
			return fmt.Errorf("usage: lumen module push FILE [--name N --version V]")
		}
		wasm, err := os.ReadFile(fl.Arg(0))
		if err != nil {
			return err
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		m, err := c.PushModule(ctx, wasm, *name, *version)
		if err != nil {
			return err
		}
		if cf.json {
			return printJSON(m)
		}
		fmt.Printf("%s %s (%d bytes)\n", m.Digest, strings.Join(m.Names, " "), m.Size)
		return nil
	case "ls":
		if err := fl.Parse(args[1:]); err != nil {
			return err
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		mods, err := c.Modules(ctx)
		if err != nil {
			return err
		}
		if cf.json {
			return printJSON(mods)
		}
		tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAMES\tDIGEST\tSIZE\tFUNCTIONS")
		for _, m := range mods {
			var man struct{ Functions []struct{ Name string } }
			json.Unmarshal(m.Manifest, &man)
			fns := make([]string, len(man.Functions))
			for i, f := range man.Functions {
				fns[i] = f.Name
			}
			names := strings.Join(m.Names, ",")
			if names == "" {
				names = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", names, m.Digest[:19], m.Size, strings.Join(fns, " "))
		}
		return tw.Flush()
	}
	return fmt.Errorf("lumen module: unknown subcommand %q (push, ls)", args[0])
}

// callCommand is `lumen call MODULE FUNCTION [INPUT|-]`.
func callCommand(args []string) error {
	var cf clientFlags
	fl := flag.NewFlagSet("call", flag.ContinueOnError)
	cf.register(fl)
	if err := fl.Parse(reorder(args)); err != nil {
		return err
	}
	if fl.NArg() < 2 || fl.NArg() > 3 {
		return fmt.Errorf("usage: lumen call MODULE FUNCTION [INPUT | -]")
	}
	var input []byte
	if fl.NArg() == 3 {
		if fl.Arg(2) == "-" {
			b, err := io.ReadAll(os.Stdin)
			if err != nil {
				return err
			}
			input = b
		} else {
			input = []byte(fl.Arg(2))
		}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	res, err := c.Call(context.Background(), fl.Arg(0), fl.Arg(1), input)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(res)
	}
	if res.Log != "" {
		fmt.Fprint(os.Stderr, res.Log)
	}
	os.Stderr.Write(res.LogBytes)
	if res.LogDropped > 0 {
		fmt.Fprintf(os.Stderr, "lumen: %d bytes of the log not shown (over the server's --max-inline-bytes)\n", res.LogDropped)
	}
	switch {
	case res.Output != nil:
		fmt.Println(string(res.Output))
	case res.OutputBytes != nil:
		os.Stdout.Write(res.OutputBytes)
	default:
		fmt.Print(res.OutputText)
	}
	if res.OutputDropped > 0 {
		fmt.Fprintf(os.Stderr, "lumen: %d bytes of the output not shown (over the server's --max-inline-bytes; submit a task and read its object for all of it)\n", res.OutputDropped)
	}
	return nil
}

// statusCommand is `lumen status`.
func statusCommand(args []string) error {
	var cf clientFlags
	fl := flag.NewFlagSet("status", flag.ContinueOnError)
	cf.register(fl)
	if err := fl.Parse(args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	st, err := c.Status(context.Background())
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(st)
	}
	fmt.Printf("node %s (lumen %s), up %s\n", st.Node, st.Version, (time.Duration(st.Uptime) * time.Second).String())
	keys := make([]string, 0, len(st.Resources))
	for k := range st.Resources {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("  %-14s %s free of %s\n", k, strconv.FormatFloat(st.Available[k], 'f', -1, 64), strconv.FormatFloat(st.Resources[k], 'f', -1, 64))
	}
	fmt.Printf("modules %d, objects %d (%d bytes), live actors %d\n", st.Modules, st.Objects, st.Bytes, st.Actors)
	for state, n := range st.Workflows {
		fmt.Printf("workflows %s: %d\n", state, n)
	}
	if cl := st.Cluster; cl != nil {
		leader := cl.Leader
		if leader == "" {
			leader = "none"
		}
		fmt.Printf("control plane: leader %s, term %d, commit index %d\n", leader, cl.Term, cl.CommitIndex)
		for _, m := range cl.Members {
			role := "follower"
			if m.Leader {
				role = "leader"
			} else if m.Worker {
				role = "worker"
			}
			if m.Dead {
				role += " (dead)"
			}
			if !m.Reached {
				fmt.Printf("  %-10s %-16s %-21s unreachable: %s\n", m.ID, role, m.Raft, m.Error)
				continue
			}
			fmt.Printf("  %-10s %-16s %-21s applied %d, lag %d, tasks run %d, placed out %d (re-run %d), objects rebuilt %d, fetched %s\n",
				m.ID, role, m.Raft, m.Applied, m.Lag, m.TasksRun, m.PlacedOut, m.Retried, m.Rebuilt, byteSize(m.PulledBytes))
		}
	}
	return nil
}

// reorder moves flags before positional arguments, so `push FILE --name x` works like the
// standard flag package's `push --name x FILE`. Flags named in bools (and --json) take no value.
func reorder(args []string, bools ...string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") && a != "-" {
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			isBool := name == "json" || slices.Contains(bools, name)
			if !strings.Contains(a, "=") && !isBool && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	return append(flags, pos...)
}

// byteSize writes n bytes for people: 0 B, 512 B, 3.2 MiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTPE"[exp]) + "iB"
}
