// Command guest is the wordcount example's three steps: split a text into chunks, count the
// words of one chunk, and merge the counts into a ranking.
package main

import (
	"sort"
	"strings"
	"unicode"

	lumen "github.com/lumenflow/lumen/sdk/go"
)

// SplitArgs is split's input.
type SplitArgs struct {
	Text   string `json:"text"`
	Chunks int    `json:"chunks"`
}

// MergeArgs is reduce's input: one count per chunk.
type MergeArgs struct {
	Counts []map[string]int `json:"counts"`
	Top    int              `json:"top"`
}

// Ranked is one word of the result.
type Ranked struct {
	Word  string `json:"word"`
	Count int    `json:"count"`
}

func init() {
	// split cuts the text into at most Chunks runs of whole lines.
	lumen.Task("split", func(in SplitArgs) ([]string, error) {
		if in.Chunks < 1 {
			return nil, lumen.NewError("bad_input", "chunks must be at least 1, not %d", in.Chunks)
		}
		lines := strings.Split(in.Text, "\n")
		per := (len(lines) + in.Chunks - 1) / in.Chunks
		var out []string
		for i := 0; i < len(lines); i += per {
			out = append(out, strings.Join(lines[i:min(i+per, len(lines))], "\n"))
		}
		return out, nil
	})
	// count counts the words of one chunk, lower-cased, letters only.
	lumen.Task("count", func(chunk string) (map[string]int, error) {
		counts := map[string]int{}
		for _, w := range strings.FieldsFunc(strings.ToLower(chunk), func(r rune) bool { return !unicode.IsLetter(r) && r != '\'' }) {
			if w = strings.Trim(w, "'"); w != "" {
				counts[w]++
			}
		}
		return counts, nil
	})
	// reduce merges the counts and ranks the Top words, most frequent first, ties by word.
	lumen.Task("reduce", func(in MergeArgs) ([]Ranked, error) {
		total := map[string]int{}
		for _, c := range in.Counts {
			for w, n := range c {
				total[w] += n
			}
		}
		out := make([]Ranked, 0, len(total))
		for w, n := range total {
			out = append(out, Ranked{w, n})
		}
		sort.Slice(out, func(i, j int) bool {
			if out[i].Count != out[j].Count {
				return out[i].Count > out[j].Count
			}
			return out[i].Word < out[j].Word
		})
		if in.Top > 0 && len(out) > in.Top {
			out = out[:in.Top]
		}
		return out, nil
	})
}

func main() {}
