package api

import (
	"encoding/base64"
	"encoding/json"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/lumenflow/lumen/host"
)

// DefaultMaxInlineBytes is the default of Config.MaxInlineBytes: the most bytes of JSON that the
// bytes a guest produced (a call's output and log, a job's result) take in one response.
const DefaultMaxInlineBytes = 8 << 20

// Guest bytes in a JSON response. A guest controls every byte it returns or writes, and JSON
// escapes some bytes six-fold (a NUL is \u0000, '<' is \u003c), so guest bytes are never put
// in a response as a plain string. Each is carried in the one of these forms that applies:
//
//   - embedded JSON (a call's "output", a job's "result") when the bytes are one JSON value whose
//     encoding is at most twice their size;
//   - a JSON string ("output_text", "log", "result_text") when the bytes are UTF-8 text (no
//     control character but tab, newline and carriage return) whose encoding is at most twice
//     their size;
//   - base64 ("output_base64", "log_base64", "result_base64") otherwise: 4 bytes for every 3.
//
// Whatever the form, what a response carries is capped by its encoded size (the server's
// MaxInlineBytes, shared by the fields of one response in the order they are added). Bytes past
// the cap are dropped from the end, and "<name>_dropped_bytes" says how many of the guest's bytes
// the response does not carry. The full bytes of a big result are read from the object store
// (submit a task, then GET /v1/objects/{ref}: raw bytes, no encoding).

// inlineKeys names a guest-bytes field's forms in a response.
type inlineKeys struct {
	json, text, base64, dropped string // json empty: never embedded as JSON
}

var (
	outputKeys = inlineKeys{json: "output", text: "output_text", base64: "output_base64", dropped: "output_dropped_bytes"}
	logKeys    = inlineKeys{text: "log", base64: "log_base64", dropped: "log_dropped_bytes"}
	resultKeys = inlineKeys{json: "result", text: "result_text", base64: "result_base64", dropped: "result_dropped_bytes"}
)

// inline adds b to out in the first form of inlineKeys that applies (see above), using at most
// *budget bytes of encoded JSON, and takes what it used from *budget. An empty b adds the text
// form's empty string. It allocates at most the encoded size it adds; b is not kept.
func inline(out gin.H, k inlineKeys, b []byte, budget *int) {
	used, dropped := inlineValue(out, k, b, *budget)
	*budget -= used
	if dropped > 0 {
		out[k.dropped] = dropped
	}
}

func inlineValue(out gin.H, k inlineKeys, b []byte, budget int) (used, dropped int) {
	if budget < 2 { // not even the quotes of an empty string
		return 0, len(b)
	}
	if k.json != "" && len(b) > 0 {
		if n, ok := jsonSize(b); ok && n <= 2*len(b) && n <= budget {
			out[k.json] = json.RawMessage(b)
			return n, 0
		}
	}
	if n, ok := textSize(b); ok && n <= 2*len(b)+2 {
		keep := len(b)
		if n > budget {
			keep = textPrefix(b, budget)
		}
		enc, _ := json.Marshal(string(b[:keep])) // a string always encodes
		out[k.text] = json.RawMessage(enc)
		return len(enc), len(b) - keep
	}
	keep := len(b)
	if base64.StdEncoding.EncodedLen(keep)+2 > budget {
		keep = (budget - 2) / 4 * 3
	}
	enc := make([]byte, base64.StdEncoding.EncodedLen(keep)+2)
	enc[0], enc[len(enc)-1] = '"', '"'
	base64.StdEncoding.Encode(enc[1:len(enc)-1], b[:keep])
	out[k.base64] = json.RawMessage(enc)
	return len(enc), len(b) - keep
}

// runeCost is the size of r, n bytes of UTF-8, in a JSON string as encoding/json writes it (with
// HTML escaping, as gin's JSON renders); -1 for a rune that is not text.
func runeCost(r rune, n int) int {
	switch {
	case r == '"' || r == '\\' || r == '\n' || r == '\r' || r == '\t':
		return 2
	case r == '<' || r == '>' || r == '&' || r == '\u2028' || r == '\u2029':
		return 6
	case r < 0x20 || r == 0x7f || r == utf8.RuneError && n == 1:
		return -1
	}
	return n
}

// textSize is the size of b as a JSON string, quotes included, and whether b is text.
func textSize(b []byte) (int, bool) {
	size := 2
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		c := runeCost(r, n)
		if c < 0 {
			return 0, false
		}
		size += c
		i += n
	}
	return size, true
}

// textPrefix is the length of b's longest prefix, cut between runes, whose JSON string takes at
// most budget bytes. b is text.
func textPrefix(b []byte, budget int) int {
	size := 2
	i := 0
	for i < len(b) {
		r, n := utf8.DecodeRune(b[i:])
		c := runeCost(r, n)
		if size+c > budget {
			break
		}
		size += c
		i += n
	}
	return i
}

// jsonSize bounds the size b takes embedded in a response (encoding/json compacts it and escapes
// '<', '>', '&', U+2028 and U+2029), and says whether b is one JSON value.
func jsonSize(b []byte) (int, bool) {
	if !json.Valid(b) {
		return 0, false
	}
	size := len(b)
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '<', '>', '&':
			size += 5
		case 0xe2: // U+2028 and U+2029 are e2 80 a8 and e2 80 a9
			if i+2 < len(b) && b[i+1] == 0x80 && (b[i+2] == 0xa8 || b[i+2] == 0xa9) {
				size += 3
			}
		}
	}
	return size, true
}

// callFields are a call's log and (when withOutput) output as a response carries them, within
// the server's MaxInlineBytes: the log first (the host caps it, 1 MiB by default), the output in
// what is left. res may be nil (a call
// that failed before it ran).
func (s *Server) callFields(res *host.Result, withOutput bool) gin.H {
	out := gin.H{}
	budget := int(s.cfg.MaxInlineBytes)
	var output, log []byte
	if res != nil {
		output, log = res.Output, res.Log
	}
	inline(out, logKeys, log, &budget)
	if withOutput {
		inline(out, outputKeys, output, &budget)
	}
	return out
}
