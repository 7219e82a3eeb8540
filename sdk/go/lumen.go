// Package lumen is the Go guest SDK for Lumen: register tasks and actor types as ordinary Go
// functions, then build the package as a WebAssembly reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o add.wasm .
//
// Registration happens in init functions; main is never called in a reactor and may be empty:
//
//	type AddArgs struct{ A, B int }
//
//	func init() {
//		lumen.Task("add", func(in AddArgs) (int, error) { return in.A + in.B, nil })
//	}
//
//	func main() {}
//
// Inputs and outputs are JSON by default; BytesTask and BytesMethod pass raw bytes. Inside a call,
// Put, Get, Submit, Wait and NewActor reach the engine through the host ABI (docs/abi.md). Built
// for any other target, those functions return ErrNotUnderLumen, so task functions can be unit
// tested natively.
//
// A guest instance runs one call at a time; the SDK is not safe for concurrent use and need not be.
package lumen

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/lumenflow/lumen/sdk/abi"
)

// handler runs one registered function on its input bytes.
type handler func(in []byte) ([]byte, error)

type entry struct {
	fn abi.Function
	h  handler
}

var (
	entries      []entry
	byName       = map[string]int{}
	capabilities []abi.Capability
	resources    abi.Resources
	actorState   any // the actor held by this instance, set by its constructor
	actorType    string
)

func register(f abi.Function, h handler) {
	if _, dup := byName[f.Name]; dup {
		panic(fmt.Sprintf("lumen: %q registered twice", f.Name))
	}
	byName[f.Name] = len(entries)
	entries = append(entries, entry{fn: f, h: h})
}

// Task registers a stateless function called name whose input and output are JSON.
func Task[In, Out any](name string, fn func(In) (Out, error)) {
	register(abi.Function{Name: name, Kind: abi.KindTask, Input: abi.EncJSON, Output: abi.EncJSON},
		func(in []byte) ([]byte, error) {
			var v In
			if err := decodeInput(name, in, &v); err != nil {
				return nil, err
			}
			out, err := fn(v)
			if err != nil {
				return nil, err
			}
			return json.Marshal(out)
		})
}

// BytesTask registers a stateless function called name that takes and returns raw bytes.
func BytesTask(name string, fn func([]byte) ([]byte, error)) {
	register(abi.Function{Name: name, Kind: abi.KindTask, Input: abi.EncBytes, Output: abi.EncBytes},
		func(in []byte) ([]byte, error) { return fn(in) })
}

// ActorType is a registered actor type whose state is an *S.
type ActorType[S any] struct{ name string }

// Actor registers an actor type called name. The engine creates an actor by calling ctor with its
// JSON arguments on an instance of its own; the instance then keeps the returned state for the
// actor's methods.
func Actor[S, Args any](name string, ctor func(Args) (*S, error)) *ActorType[S] {
	register(abi.Function{Name: name, Kind: abi.KindActor, Input: abi.EncJSON, Output: abi.EncJSON},
		func(in []byte) ([]byte, error) {
			if actorState != nil {
				return nil, fmt.Errorf("lumen: this instance already holds actor %q", actorType)
			}
			var a Args
			if err := decodeInput(name, in, &a); err != nil {
				return nil, err
			}
			s, err := ctor(a)
			if err != nil {
				return nil, err
			}
			if s == nil {
				return nil, fmt.Errorf("lumen: constructor of %q returned no state", name)
			}
			actorState, actorType = s, name
			return []byte("null"), nil
		})
	return &ActorType[S]{name: name}
}

// Name returns the actor type's name.
func (t *ActorType[S]) Name() string { return t.name }

func (t *ActorType[S]) state(method string) (*S, error) {
	s, ok := actorState.(*S)
	if !ok || actorType != t.name {
		return nil, fmt.Errorf("lumen: method %s.%s called on an instance that holds no %s actor", t.name, method, t.name)
	}
	return s, nil
}

// Method registers a method of an actor type, with JSON input and output.
func Method[S, In, Out any](t *ActorType[S], name string, fn func(*S, In) (Out, error)) {
	full := t.name + "." + name
	register(abi.Function{Name: full, Kind: abi.KindMethod, Actor: t.name, Input: abi.EncJSON, Output: abi.EncJSON},
		func(in []byte) ([]byte, error) {
			s, err := t.state(name)
			if err != nil {
				return nil, err
			}
			var v In
			if err := decodeInput(full, in, &v); err != nil {
				return nil, err
			}
			out, err := fn(s, v)
			if err != nil {
				return nil, err
			}
			return json.Marshal(out)
		})
}

// BytesMethod registers a method of an actor type that takes and returns raw bytes.
func BytesMethod[S any](t *ActorType[S], name string, fn func(*S, []byte) ([]byte, error)) {
	full := t.name + "." + name
	register(abi.Function{Name: full, Kind: abi.KindMethod, Actor: t.name, Input: abi.EncBytes, Output: abi.EncBytes},
		func(in []byte) ([]byte, error) {
			s, err := t.state(name)
			if err != nil {
				return nil, err
			}
			return fn(s, in)
		})
}

// Names of the methods through which the engine saves and restores an actor's state across a
// restart (see SaveLoad).
const (
	SaveMethod = abi.SaveMethod
	LoadMethod = abi.LoadMethod
)

// SaveLoad gives an actor type a way to save its state and load it back, so that an actor
// restarted after a failure resumes from its last saved state instead of its constructor's.
func SaveLoad[S any](t *ActorType[S], save func(*S) ([]byte, error), load func([]byte) (*S, error)) {
	BytesMethod(t, SaveMethod, func(s *S, _ []byte) ([]byte, error) { return save(s) })
	register(abi.Function{Name: t.name + "." + LoadMethod, Kind: abi.KindMethod, Actor: t.name, Input: abi.EncBytes, Output: abi.EncBytes},
		func(in []byte) ([]byte, error) {
			s, err := load(in)
			if err != nil {
				return nil, err
			}
			if s == nil {
				return nil, fmt.Errorf("lumen: load of %q returned no state", t.name)
			}
			actorState, actorType = s, t.name
			return nil, nil
		})
}

// Require declares the capabilities the module asks for (objects, tasks, actors, clock, random,
// fs, env). A module that calls Put or Get needs objects, Submit and Wait need tasks, NewActor
// needs actors; the registry refuses a module whose imports need a capability it did not
// request. The job that runs the module must also grant them.
func Require(caps ...abi.Capability) { capabilities = append(capabilities, caps...) }

// Hints sets the resources a call of this module needs by default.
func Hints(r abi.Resources) { resources = r }

// Manifest returns the manifest this module reports through lumen_manifest.
func Manifest() abi.Manifest {
	m := abi.Manifest{ABI: abi.Version, Functions: make([]abi.Function, len(entries)), Capabilities: capabilities, Resources: resources}
	for i, e := range entries {
		m.Functions[i] = e.fn
	}
	return m
}

// dispatch runs function fn on in, turning a panic into an error so one bad input does not
// cost the instance.
func dispatch(fn uint32, in []byte) (out []byte, err error) {
	if int(fn) >= len(entries) {
		return nil, fmt.Errorf("lumen: no function at index %d (this module has %d)", fn, len(entries))
	}
	defer func() {
		if p := recover(); p != nil {
			err = &Error{Code: "panic", Message: fmt.Sprintf("%s panicked: %v", entries[fn].fn.Name, p)}
		}
	}()
	return entries[fn].h(in)
}

func decodeInput(name string, in []byte, v any) error {
	if len(in) == 0 {
		// No input: leave the zero value, unless the type cannot be empty.
		return nil
	}
	if err := json.Unmarshal(in, v); err != nil {
		return &Error{Code: "bad_input", Message: fmt.Sprintf("%s: input does not decode into %s: %v", name, reflect.TypeOf(v).Elem(), err)}
	}
	return nil
}
