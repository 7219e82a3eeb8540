package abi

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Export is a function a module exports.
type Export struct {
	Name string    `json:"name"`
	Sig  Signature `json:"sig"`
}

// Import is a function a module imports.
type Import struct {
	Module string    `json:"module"`
	Name   string    `json:"name"`
	Sig    Signature `json:"sig"`
}

// ModuleInfo is what inspecting a compiled module finds: its function exports and imports, its
// memory bounds and the manifest its lumen_manifest export returned.
type ModuleInfo struct {
	Exports        []Export  `json:"exports"`
	Imports        []Import  `json:"imports"`
	MemoryMinPages uint32    `json:"memory_min_pages"`
	MemoryMaxPages uint32    `json:"memory_max_pages,omitempty"` // 0: no declared maximum
	Manifest       *Manifest `json:"manifest,omitempty"`
}

// ABIVersion returns the ABI version the module declares through its version marker export, or
// 0 when it has none.
func (mi *ModuleInfo) ABIVersion() int {
	for _, e := range mi.Exports {
		if v, ok := strings.CutPrefix(e.Name, VersionMarkerPrefix); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// CheckShape checks a module's exports and imports against ABI v1, before any of its code runs:
// the version marker, the required exports with their types, and imports only from the lumen
// module (known functions, with their types) and WASI. The error names every offending import
// or export.
func CheckShape(mi *ModuleInfo) error {
	if v := mi.ABIVersion(); v != Version {
		if v == 0 {
			return fmt.Errorf("not a Lumen module: it has no %q export (build it with a Lumen SDK for ABI v%d)", ExportVersionMarker, Version)
		}
		return fmt.Errorf("module is built for ABI v%d; this host speaks ABI v%d", v, Version)
	}
	exports := make(map[string]Signature, len(mi.Exports))
	for _, e := range mi.Exports {
		exports[e.Name] = e.Sig
	}
	var problems []string
	for _, name := range sortedKeys(RequiredExports) {
		want := RequiredExports[name]
		got, ok := exports[name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("missing export %q %s", name, want))
		case !got.Equal(want):
			problems = append(problems, fmt.Sprintf("export %q has type %s, want %s", name, got, want))
		}
	}
	for _, im := range mi.Imports {
		switch im.Module {
		case HostModule:
			hf, ok := HostFuncs[im.Name]
			if !ok {
				problems = append(problems, fmt.Sprintf("import %s.%s is not a host function of ABI v%d", im.Module, im.Name, Version))
			} else if !im.Sig.Equal(hf.Sig) {
				problems = append(problems, fmt.Sprintf("import %s.%s has type %s, want %s", im.Module, im.Name, im.Sig, hf.Sig))
			}
		case WASIModule:
		default:
			problems = append(problems, fmt.Sprintf("import %s.%s: module %q is not provided (only %q and %q are)", im.Module, im.Name, im.Module, HostModule, WASIModule))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("module refused: %s", strings.Join(problems, "; "))
	}
	return nil
}

// CheckCapabilities checks that every lumen import is covered by a capability the manifest
// requests. The error names each import and the capability it needs.
func CheckCapabilities(mi *ModuleInfo, m *Manifest) error {
	var problems []string
	for _, im := range mi.Imports {
		if im.Module != HostModule {
			continue
		}
		hf, ok := HostFuncs[im.Name]
		if !ok {
			continue // CheckShape reports it
		}
		if !m.Requests(hf.Capability) {
			problems = append(problems, fmt.Sprintf("import %s.%s needs capability %q, which the manifest does not request", im.Module, im.Name, hf.Capability))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("module refused: %s", strings.Join(problems, "; "))
	}
	return nil
}

// RequiredCapabilities returns the capabilities the module's lumen imports need, sorted.
func RequiredCapabilities(mi *ModuleInfo) []Capability {
	set := map[Capability]bool{}
	for _, im := range mi.Imports {
		if hf, ok := HostFuncs[im.Name]; ok && im.Module == HostModule && hf.Capability != CapBase {
			set[hf.Capability] = true
		}
	}
	out := make([]Capability, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
