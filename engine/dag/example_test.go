package dag_test

import (
	"fmt"

	"github.com/lumenflow/lumen/engine/dag"
	"github.com/lumenflow/lumen/sdk/abi"
)

type tasks map[string]abi.Function

func (t tasks) Function(module, function string) (abi.Function, error) {
	if f, ok := t[module+"."+function]; ok {
		return f, nil
	}
	return abi.Function{}, fmt.Errorf("%s has no %s: %w", module, function, dag.ErrUnknownFunction)
}

var wordcount = tasks{
	"wordcount.split":  {Name: "split", Kind: abi.KindTask},
	"wordcount.count":  {Name: "count", Kind: abi.KindTask},
	"wordcount.reduce": {Name: "reduce", Kind: abi.KindTask},
}

// results are what the functions return in this example.
var results = map[string][]byte{"split": []byte(`{"parts": ["the cat", "and the hat"]}`), "reduce": []byte(`5`)}

func Example() {
	w, err := dag.Parse([]byte(`{
	  "version": 1,
	  "name": "wordcount",
	  "steps": [
	    {"id": "reduce", "module": "wordcount", "function": "reduce", "args": {"counts": "${count}"}},
	    {"id": "count", "module": "wordcount", "function": "count", "map": "${split.parts}", "args": {"text": "${item}", "n": "${index}"}},
	    {"id": "split", "module": "wordcount", "function": "split", "args": "the cat and the hat"}
	  ]
	}`))
	if err != nil {
		panic(err)
	}
	plan, err := dag.Compile(w, wordcount)
	if err != nil {
		panic(err)
	}
	// An executor's loop, one step at a time.
	outputs := map[string][]byte{}
	done := map[string]bool{}
	for ready := plan.Ready(done); len(ready) > 0; ready = plan.Ready(done) {
		s := ready[0]
		if s.Map == nil {
			in, _ := s.RenderInput(outputs, nil, 0)
			fmt.Printf("%s(%s)\n", s.ID, in)
			outputs[s.ID] = results[s.ID]
		} else {
			items, _ := s.Items(outputs)
			var outs [][]byte
			for i, it := range items {
				in, _ := s.RenderInput(outputs, it, i)
				fmt.Printf("%s(%s)\n", s.ID, in)
				outs = append(outs, []byte(fmt.Sprint(i+2)))
			}
			outputs[s.ID], _ = s.Join(outs)
		}
		done[s.ID] = true
	}
	result, _ := plan.Output.Render(outputs, nil, 0)
	fmt.Println(string(result))
	// Output:
	// split("the cat and the hat")
	// count({"text":"the cat","n":0})
	// count({"text":"and the hat","n":1})
	// reduce({"counts":[2,3]})
	// {"reduce":5}
}

func ExampleCompile_errors() {
	w, err := dag.Parse([]byte(`{"version": 1, "steps": [
	  {"id": "a", "module": "wordcount", "function": "split", "args": "${b}"},
	  {"id": "b", "module": "wordcount", "function": "count", "args": {"x": "${a.words}", "y": "${item}"}},
	  {"id": "c", "module": "wordcount", "function": "sort", "args": "${nope}"}
	]}`))
	if err != nil {
		panic(err)
	}
	_, err = dag.Compile(w, wordcount)
	fmt.Println(err)
	// Output:
	// $.steps[0].args: cycle: a -> b -> a
	// $.steps[1].args.y: ${item} is only defined in the args of a step with map
	// $.steps[2].args: unknown step "nope"
	// $.steps[2].function: wordcount has no sort: dag: unknown function
}
