// Command benchjson reads `go test -bench` output on stdin and writes a JSON summary: every
// benchmark's figures, and the ratios between benchmarks that are measured side by side.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// Result is one benchmark line.
type Result struct {
	Package    string             `json:"package"`
	Name       string             `json:"name"`
	Iterations int64              `json:"iterations"`
	Metrics    map[string]float64 `json:"metrics"` // "ns/op", "B/op", "allocs/op" and custom units
}

// Ratio compares two benchmarks of one run.
type Ratio struct {
	Name  string  `json:"name"`
	Of    string  `json:"of"`
	Over  string  `json:"over"`
	Value float64 `json:"value"`
	Note  string  `json:"note"`
}

// pairs lists the comparisons the project reports: each numerator beside its baseline.
var pairs = []struct{ name, of, over, note string }{
	{"lumen_call_over_raw_wazero_wat", "BenchmarkCall_Pooled_WAT", "BenchmarkRawWazeroCall", "ns/op of a pooled Lumen call with a small JSON argument over a raw wazero export call"},
	{"lumen_call_over_raw_wazero_go", "BenchmarkCall_Pooled_Go", "BenchmarkRawWazeroCall_Go", "the same for a Go SDK guest"},
	{"compile_cold_over_disk_cache", "BenchmarkCompile_Cold", "BenchmarkCompile_DiskCache", "how much the on-disk compilation cache saves"},
	{"instantiate_go_over_wat", "BenchmarkInstantiate_Go", "BenchmarkInstantiate_WAT", "instantiation cost of a Go-sized guest over a C-sized one"},
}

var line = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

func main() {
	var out struct {
		Goos       string   `json:"goos,omitempty"`
		Goarch     string   `json:"goarch,omitempty"`
		CPU        string   `json:"cpu,omitempty"`
		Benchmarks []Result `json:"benchmarks"`
		Ratios     []Ratio  `json:"ratios"`
	}
	pkg := ""
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "pkg: "):
			pkg = strings.TrimPrefix(l, "pkg: ")
		case strings.HasPrefix(l, "goos: "):
			out.Goos = strings.TrimPrefix(l, "goos: ")
		case strings.HasPrefix(l, "goarch: "):
			out.Goarch = strings.TrimPrefix(l, "goarch: ")
		case strings.HasPrefix(l, "cpu: "):
			out.CPU = strings.TrimPrefix(l, "cpu: ")
		}
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n, _ := strconv.ParseInt(m[2], 10, 64)
		r := Result{Package: pkg, Name: m[1], Iterations: n, Metrics: map[string]float64{}}
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				r.Metrics[f[i+1]] = v
			}
		}
		out.Benchmarks = append(out.Benchmarks, r)
	}
	find := func(name string) (float64, bool) {
		for _, b := range out.Benchmarks {
			if b.Name == name {
				v, ok := b.Metrics["ns/op"]
				return v, ok
			}
		}
		return 0, false
	}
	for _, p := range pairs {
		a, ok1 := find(p.of)
		b, ok2 := find(p.over)
		if ok1 && ok2 && b > 0 {
			out.Ratios = append(out.Ratios, Ratio{Name: p.name, Of: p.of, Over: p.over, Value: a / b, Note: p.note})
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
