// Command guest is the hello example: three tasks, in ordinary Go.
package main

import (
	"sort"
	"strconv"
	"strings"

	lumen "github.com/lumenflow/lumen/sdk/go"
)

// AddArgs is the input of add.
type AddArgs struct{ A, B int }

// WordCount is one word and how often it occurs.
type WordCount struct {
	Word  string `json:"word"`
	Count int    `json:"count"`
}

func init() {
	lumen.Task("add", func(in AddArgs) (int, error) { return in.A + in.B, nil })

	lumen.BytesTask("wordcount", func(text []byte) ([]byte, error) {
		counts := map[string]int{}
		for _, w := range strings.Fields(strings.ToLower(string(text))) {
			counts[strings.Trim(w, ".,;:!?\"'()")]++
		}
		delete(counts, "")
		out := make([]WordCount, 0, len(counts))
		for w, n := range counts {
			out = append(out, WordCount{w, n})
		}
		sort.Slice(out, func(i, j int) bool {
			if out[i].Count != out[j].Count {
				return out[i].Count > out[j].Count
			}
			return out[i].Word < out[j].Word
		})
		lumen.Logf("%d distinct words", len(out))
		var b strings.Builder
		for _, wc := range out {
			b.WriteString(wc.Word)
			b.WriteByte(' ')
			b.WriteString(strconv.Itoa(wc.Count))
			b.WriteByte('\n')
		}
		return []byte(b.String()), nil
	})

	lumen.Task("divide", func(in AddArgs) (int, error) {
		if in.B == 0 {
			return 0, lumen.NewError("division_by_zero", "cannot divide %d by zero", in.A)
		}
		return in.A / in.B, nil
	})
}

func main() {}
