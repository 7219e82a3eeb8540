package plugins

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/lumenflow/lumen/sdk/abi"
)

// scriptedInspector answers for any bytes, choosing by their digest among the outcomes an
// inspector can have: the guest it knows, a valid module, one needing capabilities, one of the
// wrong shape, one with a bad manifest, and a compile error.
type scriptedInspector struct{ known *fakeInspector }

func (s scriptedInspector) Inspect(ctx context.Context, wasm []byte) (*abi.ModuleInfo, error) {
	if mi, err := s.known.Inspect(ctx, wasm); err == nil {
		return mi, nil
	}
	sum := sha256.Sum256(wasm)
	switch sum[0] % 6 {
	case 0:
		return taskGuest("").info(), nil
	case 1:
		return taskGuest("", abi.FnObjectPut, abi.FnActorCall, abi.FnLog).info(), nil
	case 2:
		mi := taskGuest("").info()
		mi.Exports = mi.Exports[:2]
		return mi, nil
	case 3:
		mi := taskGuest("").info()
		mi.Manifest.ABI = 2
		return mi, nil
	case 4:
		mi := taskGuest("", abi.FnWait).info()
		mi.Imports = append(mi.Imports, abi.Import{Module: "env", Name: "x"})
		return mi, nil
	}
	return nil, errors.New("compile: invalid module")
}

// FuzzAdd feeds arbitrary bytes, names and versions to Add: it never panics, it either registers the
// module (whose bytes then read back) or refuses with one of the registry's errors, and a refusal
// leaves the store as it was.
func FuzzAdd(f *testing.F) {
	valid, err := os.ReadFile(filepath.Join("testdata", "guest.wasm"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, "", "")
	f.Add(valid, "guest", "1.0.0")
	f.Add(valid, "guest", "1.0")
	f.Add(valid, "Guest", "1.0.0")
	for _, n := range []int{0, 1, 4, 7, 8, 9, 20, len(valid) / 2, len(valid) - 1} {
		f.Add(valid[:n], "", "")
	}
	f.Add(taskGuest("caps", abi.FnObjectPut).wasm(), "caps", "0.1.0-rc.1")
	withCaps := taskGuest("caps", abi.FnObjectPut)
	withCaps.manifest.Capabilities = []abi.Capability{abi.CapObjects}
	f.Add(withCaps.wasm(), "caps", "0.1.0")
	f.Add([]byte("\x00asm\x02\x00\x00\x00"), "", "")
	f.Add([]byte("\x7fELF"), "", "")

	known := newFakeInspector()
	known.add(taskGuest(""))
	r, err := Open(context.Background(), Config{MaxModuleBytes: 64 << 10, Inspector: scriptedInspector{known}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { r.Close() })
	baseline := storeKeys(f, r)

	f.Fuzz(func(t *testing.T, wasm []byte, name, version string) {
		ctx := context.Background()
		m, err := r.Add(ctx, wasm, AddOptions{Name: name, Version: version})
		if err != nil {
			if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrNotWasm) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("Add refused with an error of no kind: %v", err)
			}
			if got := storeKeys(t, r); !slices.Equal(got, baseline) {
				t.Fatalf("a refused Add (%v) left keys %v", err, got)
			}
			if n := len(r.List()); n != 0 {
				t.Fatalf("a refused Add left %d modules", n)
			}
			return
		}
		if m.Digest != digestOf(wasm) || m.Size != int64(len(wasm)) {
			t.Fatalf("Add returned %s (%d bytes) for %d bytes", m.Digest, m.Size, len(wasm))
		}
		if b, err := r.Bytes(m.Digest); err != nil || !slices.Equal(b, wasm) {
			t.Fatalf("Bytes after Add: %v", err)
		}
		if name != "" {
			if got, err := r.Resolve(name + "@" + version); err != nil || got.Digest != m.Digest {
				t.Fatalf("Resolve(%s@%s): %v", name, version, err)
			}
		}
		if err := abi.CheckCapabilities(&m.Info, &m.Manifest); err != nil {
			t.Fatalf("registered a module whose capabilities do not cover its imports: %v", err)
		}
		if err := r.Delete(ctx, m.Digest, nil); err != nil {
			t.Fatal(err)
		}
		if got := storeKeys(t, r); !slices.Equal(got, baseline) {
			t.Fatalf("Delete left keys %v", got)
		}
	})
}

// FuzzParseRef checks reference and version parsing: no panics, a parsed reference prints back
// to itself, and version precedence is an order in which equal means the same string.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{
		"sha256:" + digestOf(nil)[len(DigestPrefix):], "wc", "wc@1.2.3", "wc@1.2.3-rc.1",
		"wc@1.0.0-alpha.beta", "wc@01.0.0", "wc@1.0.0+b", "wc@", "@", "", "sha256:zz",
	} {
		f.Add(s, "x@1.0.0")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		pa, erra := ParseRef(a)
		if erra != nil {
			if !errors.Is(erra, ErrInvalid) {
				t.Fatalf("ParseRef(%q): %v is not ErrInvalid", a, erra)
			}
		} else {
			if pa.String() != a {
				t.Fatalf("ParseRef(%q).String() = %q", a, pa.String())
			}
			if again, err := ParseRef(pa.String()); err != nil || again != pa {
				t.Fatalf("reparse of %q: %+v, %v", a, again, err)
			}
		}
		va, erra := parseVersion(a)
		vb, errb := parseVersion(b)
		if erra != nil || errb != nil {
			return
		}
		ab, ba := va.compare(vb), vb.compare(va)
		if ab != -ba {
			t.Fatalf("compare(%q, %q) = %d but compare(%q, %q) = %d", a, b, ab, b, a, ba)
		}
		if (ab == 0) != (a == b) {
			t.Fatalf("compare(%q, %q) = %d", a, b, ab)
		}
		if va.compare(va) != 0 {
			t.Fatalf("compare(%q, itself) != 0", a)
		}
		if _, err := ParseRef("n@" + a); err != nil {
			t.Fatalf("version %q parses alone but not in a reference: %v", a, err)
		}
	})
}
