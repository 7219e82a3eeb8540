package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/lumenflow/lumen/engine/bench"
)

// benchCommand is `lumen bench [--json] [--quick] [--only name,name]`: Ray's microbenchmark
// figures measured on an engine of its own, each beside its same-run baseline. Progress goes to
// stderr; the table or the JSON report to stdout. A figure that cannot be measured fails the
// command after the others are printed.
func benchCommand(args []string) error {
	fl := flag.NewFlagSet("bench", flag.ContinueOnError)
	asJSON := fl.Bool("json", false, "print the report as JSON")
	quick := fl.Bool("quick", false, "measure for less time (about 15 s on 2 cores, against about 60 s)")
	only := fl.String("only", "", "comma-separated figures to measure (default: all): "+strings.Join(bench.Names(), ","))
	dur := fl.Duration("duration", 0, "how long each figure is measured (default 2s; --quick 300ms)")
	actors := fl.Int("actors", 0, "actors many_actors starts (default 10000)")
	data := fl.String("data", "", "data directory of the bench engine (default: a temporary one, removed after)")
	quiet := fl.Bool("quiet", false, "print no progress to stderr")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("usage: lumen bench [--json] [--quick] [--only name,name]")
	}
	opts := bench.Options{Quick: *quick, Duration: *dur, Actors: *actors, DataDir: *data}
	if *only != "" {
		opts.Only = strings.Split(*only, ",")
	}
	if !*quiet {
		opts.Progress = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, opts)
	if rep != nil {
		if *asJSON {
			if perr := printJSON(rep); perr != nil {
				return perr
			}
		} else {
			printBenchTable(rep)
		}
	}
	return err
}

func printBenchTable(rep *bench.Report) {
	m := rep.Machine
	fmt.Printf("%s, %d CPUs (GOMAXPROCS %d), %s/%s, %s; %.0f s\n\n", m.CPUModel, m.CPUs, m.GOMAXPROCS, m.GOOS, m.GOARCH, m.GoVersion, rep.Seconds)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "figure\tlumen\tunit\tp50 µs\tp99 µs\tbaseline\t\tratio\tray\tgoal\tmet\t")
	for _, name := range bench.Names() {
		r := rep.Results[name]
		if r == nil {
			continue
		}
		if r.NotImplemented != "" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t\t\t\t\t\t%s\t%s\t\t\n", name, "—", r.Unit, bench.Num(r.Ray), bench.Num(r.Goal))
			continue
		}
		p50, p99 := "", ""
		if r.Lat != nil {
			p50, p99 = bench.Num(r.Lat.P50), bench.Num(r.Lat.P99)
		}
		base, baseName, ratio := "", "", ""
		if r.Baseline != nil {
			base, baseName, ratio = bench.Num(r.Baseline.Value), r.Baseline.Name, fmt.Sprintf("%.3g", r.Ratio)
		}
		ray, goal, met := "", "", ""
		if r.Ray > 0 {
			ray = bench.Num(r.Ray)
		}
		if r.Goal > 0 {
			goal = bench.Num(r.Goal)
		}
		if r.MeetsGoal != nil {
			met = map[bool]string{true: "yes", false: "no"}[*r.MeetsGoal]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, bench.Num(r.Value), r.Unit, p50, p99, base, baseName, ratio, ray, goal, met)
	}
	tw.Flush()
	fmt.Println()
	for _, name := range bench.Names() {
		if r := rep.Results[name]; r != nil && r.NotImplemented != "" {
			fmt.Printf("%s: %s\n", name, r.NotImplemented)
		}
	}
	fmt.Println("ratio = lumen / baseline, in the figure's unit. --json gives notes and extra figures.")
}
