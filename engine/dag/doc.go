// Package dag compiles JSON workflows into validated, executable plans; it runs nothing.
//
// It is pure: no I/O, no clock, no goroutines. Parse reads a workflow document, Compile checks it
// against a Catalog of functions and returns a Plan whose steps are in dependency order, and an
// executor (package engine) drives the plan with Ready, RenderInput, Items and Join.
//
// # Format (version 1)
//
//	{
//	  "version": 1,
//	  "name": "wordcount",
//	  "steps": [
//	    {"id": "split", "module": "wordcount@1.0.0", "function": "split",
//	     "args": {"text": "the cat and the hat", "chunks": 4}},
//	    {"id": "count", "module": "wordcount", "function": "count", "map": "${split}", "args": "${item}",
//	     "retries": 2, "timeout_ms": 5000, "resources": {"cpu": 1}},
//	    {"id": "reduce", "module": "wordcount", "function": "reduce",
//	     "args": {"counts": "${count}", "first": "${split[0]}", "n": "${split.meta.total}"}}
//	  ],
//	  "output": "${reduce}"
//	}
//
// A workflow has "version" (1), an optional "name", "steps" and an optional "output". The order
// of steps is irrelevant: each runs once the steps it refers to have finished. A step has:
//
//   - "id": unique, [A-Za-z_][A-Za-z0-9_-]*, at most 64 bytes; "item", "index" and "input" are reserved.
//   - "module" and "function": the task to call ("name", "name@version" or a digest).
//   - "args": any JSON value (default null), a template: see below.
//   - "map": an array, or a "${ref}" string naming one. The step then runs once per element, and
//     its output is the JSON array of the outputs of those runs, in order.
//   - "retries" (0..100; default: the engine's), "retry_guest_errors" (bool), "timeout_ms" (≥ 0;
//     0: the engine's default) and "resources" ({"cpu", "memory_bytes", "gpu", "custom"}).
//
// Unknown fields, duplicate keys and values of the wrong type are refused. A null optional
// field is the same as a missing one, except "args", where null is the value.
//
// # Templates
//
// "args", "map" and "output" are templates: JSON in which a string that is exactly "${ref}" is
// replaced by the value ref names (of any type), and a string with "${ref}" amid other text gets
// the value written into it (a string's text or a number's literal; another type is an error
// when rendering). "$${" is a literal "${". Object keys are never templates. A ref is:
//
//   - step, step.field, step[3], and chains of those: split.meta.items[2].name. A field name is
//     letters, digits, '_' and '-'; an index is a non-negative integer.
//   - item, item.field, item[0]…: the current element, in the args of a step with map.
//   - index: the position of the current element, in the args of a step with map.
//
// The default output is an object of every step no other step refers to, keyed by id.
//
// # Encodings
//
// A function whose input is bytes needs args that render to a JSON string, whose UTF-8 bytes
// are passed, or args that are exactly "${step}" of a step whose output is bytes, whose bytes are
// passed as they are. Missing args pass no bytes. A step whose output is bytes, named in a JSON
// template, is placed there as a JSON string, which fails when rendering if the bytes are not
// valid UTF-8; nothing can be selected inside it. A map step's output is always a JSON array.
//
// # Errors
//
// Parse and Compile report every mistake they find as an ErrorList of *PathError, each naming
// the JSON path of the mistake ("$.steps[2].args.counts") and sorted by it. Rendering fails with
// a *RenderError naming the step, the path and the reason.
package dag
