// Command guest is the pipeline example's three stages, executed many times as a compiled
// workflow: parse a reading, convert it, format it.
package main

import (
	"fmt"
	"strconv"
	"strings"

	lumen "github.com/lumenflow/lumen/sdk/go"
)

// Reading is one parsed sensor reading.
type Reading struct {
	Sensor  string  `json:"sensor"`
	Celsius float64 `json:"celsius"`
}

// Converted adds Fahrenheit.
type Converted struct {
	Reading
	Fahrenheit float64 `json:"fahrenheit"`
}

func init() {
	// parse reads "sensor=celsius".
	lumen.Task("parse", func(line string) (Reading, error) {
		name, val, ok := strings.Cut(line, "=")
		if !ok {
			return Reading{}, lumen.NewError("bad_input", "%q is not sensor=celsius", line)
		}
		c, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return Reading{}, lumen.NewError("bad_input", "%q: %v", val, err)
		}
		return Reading{Sensor: name, Celsius: c}, nil
	})
	lumen.Task("convert", func(r Reading) (Converted, error) {
		return Converted{Reading: r, Fahrenheit: r.Celsius*9/5 + 32}, nil
	})
	lumen.Task("format", func(c Converted) (string, error) {
		return fmt.Sprintf("%s: %.1f°C = %.1f°F", c.Sensor, c.Celsius, c.Fahrenheit), nil
	})
}

func main() {}
