// Command go is the polyglot workflow's first step, in Go: it cuts a text into its lines.
package main

import (
	"strings"

	lumen "github.com/lumenflow/lumen/sdk/go"
)

// LinesArgs is lines' input.
type LinesArgs struct {
	Text string `json:"text"`
}

func init() {
	// lines returns the lines of the text, each trimmed of surrounding white space; blank lines
	// are dropped.
	lumen.Task("lines", func(in LinesArgs) ([]string, error) {
		out := []string{}
		for line := range strings.SplitSeq(in.Text, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				out = append(out, line)
			}
		}
		return out, nil
	})
	// echo returns its input: the no-op task the SDK benchmark calls.
	lumen.BytesTask("echo", func(b []byte) ([]byte, error) { return b, nil })
}

func main() {}
