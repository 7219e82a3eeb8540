package host

import (
	"errors"
	"testing"
)

var errNoGo = errors.New("no go toolchain")

func goGuest() ([]byte, error) { return nil, errNoGo }

func removeGoGuests() {}

func goHostileCases(t *testing.T, r *Runtime) []hostileCase { return nil }
