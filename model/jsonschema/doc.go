// Package jsonschema compiles the strict-mode subset of JSON Schema that OpenAI's structured
// outputs accept into a byte-level pushdown automaton, so that a decoder can mask every token that
// would take its output off the schema.
//
// Three parts work together:
//
//   - [Compile] turns a schema document into a [Schema]; an unsupported or malformed keyword is
//     refused with a *[SchemaError] that names its JSON pointer.
//   - [Schema.Start] returns a [Matcher] at the start of a document. [Matcher.Advance] takes one
//     byte at a time and refuses (leaving the matcher unchanged) any byte that cannot continue a
//     valid document; [Matcher.Accepting] says the bytes so far are a complete valid document.
//     Every state the matcher can reach can still be completed: unsatisfiable branches are
//     pruned when the schema is compiled.
//   - [Masker] holds a token trie over a vocabulary; [Masker.Allowed] walks it once per step,
//     sharing the work of common prefixes, and marks the tokens that keep a matcher live.
//
// [Schema.Validate] validates a finished document independently of the automaton.
//
// # The language the matcher emits
//
// The matcher accepts compact JSON only: no whitespace between tokens. Object properties come in
// the schema's property order, each at most once, and every required property appears; optional
// properties may be skipped. Properties the schema does not list are never emitted, even where
// additionalProperties allows them (Validate accepts them). Numbers follow JSON's grammar with
// at most 16 integer digits, 16 fraction digits and 2 exponent digits (so each fits a float64);
// integers are emitted without fraction or exponent. Objects and arrays nest at most MaxNesting
// deep. enum and const values are emitted in their compact form with the key order of the
// schema. Strings are valid UTF-8 with JSON's escapes.
// Every document the matcher accepts parses with encoding/json and passes Validate.
//
// # Concurrency
//
// A Schema and a Masker are immutable after construction and safe for concurrent use. A Matcher
// is not; Clone it to explore alternatives (cloning is cheap: stacks are persistent and shared).
package jsonschema
