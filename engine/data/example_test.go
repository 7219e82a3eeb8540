package data_test

import (
	"context"
	"fmt"

	"github.com/lumenflow/lumen/engine/data"
)

func ExampleDataset_GroupBy() {
	people := []map[string]any{
		{"name": "ada", "age": 36, "city": "London"},
		{"name": "bo", "age": 12, "city": "Paris"},
		{"name": "cy", "age": 41, "city": "Paris"},
		{"name": "di", "age": 29, "city": "London"},
		{"name": "ed", "age": 52, "city": "Paris"},
	}
	rows, err := data.FromItems(people).
		Filter("age >= 18").
		GroupBy("city").
		Aggregate(data.Agg{Name: "n", Func: data.AggCount}, data.Agg{Name: "avg_age", Func: data.AggMean, Column: "age"}).
		Sort([]string{"city"}, false).
		Take(context.Background(), 10)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range rows {
		fmt.Println(r["city"], r["n"], r["avg_age"])
	}
	// Output:
	// London 2 32.5
	// Paris 2 46.5
}

func ExampleParsePipeline() {
	p, err := data.ParsePipeline([]byte(`[
		{"from_items": [{"x": 1}, {"x": 2}, {"x": 3}]},
		{"add_column": {"name": "y", "expr": "x * 10"}},
		{"filter": "y > 10"},
		{"take": 5}
	]`))
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := p.Run(context.Background(), data.BuildOptions{})
	fmt.Println(res.Rows, err)
	_, err = data.ParsePipeline([]byte(`[{"from_items": []}, {"filter": "y >"}]`))
	fmt.Println(err)
	// Output:
	// [map[x:2 y:20] map[x:3 y:30]] <nil>
	// data: bad pipeline: step 1 (filter) field "filter": data: bad expression: at offset 3 of "y >": expected a value, got "end of expression"
}
