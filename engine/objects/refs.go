package objects

import "bytes"

// RefMarker opens an object ref in JSON: {"$ref":N}.
const RefMarker = `"$ref":`

var refMarker = []byte(RefMarker)

// RefsIn returns the handles of owned that out refers to as {"$ref": N}, and the rest: a call's
// output hands the objects it refers to on to the object holding it (Adopt), and the call
// releases the others.
func RefsIn(out []byte, owned []int64) (kept, dropped []int64) {
	if len(owned) == 0 {
		return nil, nil
	}
	mentioned := map[int64]bool{}
	for rest := out; ; {
		i := bytes.Index(rest, refMarker)
		if i < 0 {
			break
		}
		rest = rest[i+len(refMarker):]
		j := 0
		for j < len(rest) && rest[j] == ' ' {
			j++
		}
		var n int64
		k := j
		for ; k < len(rest) && rest[k] >= '0' && rest[k] <= '9' && k-j < 19; k++ {
			n = n*10 + int64(rest[k]-'0')
		}
		if k > j {
			mentioned[n] = true
		}
	}
	for _, h := range owned {
		if mentioned[h] {
			kept = append(kept, h)
		} else {
			dropped = append(dropped, h)
		}
	}
	return kept, dropped
}
