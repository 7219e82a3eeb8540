// Command guest is the counter example: an actor whose state lives in its own instance, saved
// and restored across restarts.
package main

import (
	"encoding/json"

	lumen "github.com/lumenflow/lumen/sdk/go"
)

// Counter is the actor's state.
type Counter struct {
	N int `json:"n"`
}

func init() {
	c := lumen.Actor("Counter", func(start int) (*Counter, error) { return &Counter{N: start}, nil })
	lumen.Method(c, "incr", func(c *Counter, by int) (int, error) { c.N += by; return c.N, nil })
	lumen.Method(c, "get", func(c *Counter, _ struct{}) (int, error) { return c.N, nil })
	lumen.SaveLoad(c,
		func(c *Counter) ([]byte, error) { return json.Marshal(c) },
		func(b []byte) (*Counter, error) {
			var c Counter
			err := json.Unmarshal(b, &c)
			return &c, err
		})
}

func main() {}
