package plugins

import (
	"fmt"
	"strconv"
	"strings"
)

// DigestPrefix starts every module digest: "sha256:" and 64 lowercase hex digits follow.
const DigestPrefix = "sha256:"

// MaxNameLen and MaxVersionLen bound a module's name and version.
const (
	MaxNameLen    = 64
	MaxVersionLen = 128
)

// Ref is a parsed module reference: a digest, or a name with an optional version. Exactly one of
// Digest and Name is set; Version is set only with Name. An empty Version means "the highest".
type Ref struct {
	Digest  string
	Name    string
	Version string
}

// String renders the reference in the form ParseRef reads.
func (r Ref) String() string {
	switch {
	case r.Digest != "":
		return r.Digest
	case r.Version != "":
		return r.Name + "@" + r.Version
	}
	return r.Name
}

// ParseRef reads a module reference: "sha256:<64 lowercase hex>", "name@MAJOR.MINOR.PATCH[-pre]"
// or "name". Errors wrap ErrInvalid.
func ParseRef(ref string) (Ref, error) {
	if strings.HasPrefix(ref, DigestPrefix) {
		if err := checkDigest(ref); err != nil {
			return Ref{}, err
		}
		return Ref{Digest: ref}, nil
	}
	name, version, hasVersion := strings.Cut(ref, "@")
	if err := checkName(name); err != nil {
		return Ref{}, fmt.Errorf("module reference %q: %w", ref, err)
	}
	if !hasVersion {
		return Ref{Name: name}, nil
	}
	if _, err := parseVersion(version); err != nil {
		return Ref{}, fmt.Errorf("module reference %q: %w", ref, err)
	}
	return Ref{Name: name, Version: version}, nil
}

// checkDigest accepts "sha256:" followed by 64 lowercase hex digits.
func checkDigest(d string) error {
	hex, ok := strings.CutPrefix(d, DigestPrefix)
	if !ok || len(hex) != 64 {
		return fmt.Errorf("%w: digest %q is not %s followed by 64 lowercase hex digits", ErrInvalid, clip(d), DigestPrefix)
	}
	for i := 0; i < len(hex); i++ {
		c := hex[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("%w: digest %q is not %s followed by 64 lowercase hex digits", ErrInvalid, clip(d), DigestPrefix)
		}
	}
	return nil
}

// checkName accepts [a-z0-9][a-z0-9_-]* of at most MaxNameLen bytes.
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty module name", ErrInvalid)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: module name of %d bytes, at most %d", ErrInvalid, len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		lower := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
		if lower || (i > 0 && (c == '_' || c == '-')) {
			continue
		}
		return fmt.Errorf("%w: module name %q: character %q at %d (want [a-z0-9][a-z0-9_-]*)", ErrInvalid, name, c, i)
	}
	return nil
}

// version is a parsed semantic version without build metadata.
type version struct {
	major, minor, patch uint64
	pre                 []string // dot-separated pre-release identifiers; nil for a release
}

// parseVersion reads MAJOR.MINOR.PATCH[-pre] as semver 2.0.0 defines it, without "+build": no
// leading zeros in numbers, pre-release identifiers of [0-9A-Za-z-]. A valid version has one
// spelling, so two versions of equal precedence are the same string.
func parseVersion(s string) (version, error) {
	bad := func(why string) (version, error) {
		return version{}, fmt.Errorf("%w: version %q: %s (want MAJOR.MINOR.PATCH[-pre], e.g. 1.2.0 or 1.2.0-rc.1)", ErrInvalid, clip(s), why)
	}
	if s == "" {
		return bad("empty")
	}
	if len(s) > MaxVersionLen {
		return bad(fmt.Sprintf("%d bytes, at most %d", len(s), MaxVersionLen))
	}
	core, pre, hasPre := strings.Cut(s, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return bad("it needs three dot-separated numbers")
	}
	var nums [3]uint64
	for i, p := range parts {
		n, err := parseNumeric(p)
		if err != nil {
			return bad(err.Error())
		}
		nums[i] = n
	}
	v := version{major: nums[0], minor: nums[1], patch: nums[2]}
	if hasPre {
		if pre == "" {
			return bad("empty pre-release")
		}
		v.pre = strings.Split(pre, ".")
		for _, id := range v.pre {
			if id == "" {
				return bad("empty pre-release identifier")
			}
			numeric := true
			for i := 0; i < len(id); i++ {
				c := id[i]
				switch {
				case c >= '0' && c <= '9':
				case (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-':
					numeric = false
				default:
					return bad(fmt.Sprintf("character %q in pre-release", c))
				}
			}
			if numeric {
				if _, err := parseNumeric(id); err != nil {
					return bad("pre-release " + err.Error())
				}
			}
		}
	}
	return v, nil
}

// parseNumeric reads a semver number: digits, no leading zero, fits in uint64.
func parseNumeric(p string) (uint64, error) {
	if p == "" {
		return 0, fmt.Errorf("empty number")
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return 0, fmt.Errorf("%q is not a number", p)
		}
	}
	if len(p) > 1 && p[0] == '0' {
		return 0, fmt.Errorf("number %q has a leading zero", p)
	}
	n, err := strconv.ParseUint(p, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("number %q is too large", p)
	}
	return n, nil
}

// compare orders versions by semver precedence: -1, 0 or +1.
func (v version) compare(o version) int {
	for _, d := range [3][2]uint64{{v.major, o.major}, {v.minor, o.minor}, {v.patch, o.patch}} {
		if d[0] != d[1] {
			if d[0] < d[1] {
				return -1
			}
			return 1
		}
	}
	switch {
	case v.pre == nil && o.pre == nil:
		return 0
	case v.pre == nil:
		return 1 // a release ranks above its pre-releases
	case o.pre == nil:
		return -1
	}
	for i := 0; i < len(v.pre) && i < len(o.pre); i++ {
		if c := comparePreID(v.pre[i], o.pre[i]); c != 0 {
			return c
		}
	}
	switch {
	case len(v.pre) < len(o.pre):
		return -1
	case len(v.pre) > len(o.pre):
		return 1
	}
	return 0
}

// comparePreID orders two pre-release identifiers: numeric ones numerically and below
// alphanumeric ones, alphanumeric ones in ASCII order.
func comparePreID(a, b string) int {
	an, aerr := strconv.ParseUint(a, 10, 64)
	bn, berr := strconv.ParseUint(b, 10, 64)
	switch {
	case aerr == nil && berr == nil:
		switch {
		case an < bn:
			return -1
		case an > bn:
			return 1
		}
		return 0
	case aerr == nil:
		return -1
	case berr == nil:
		return 1
	}
	return strings.Compare(a, b)
}

// compareVersions orders two version strings already known to be valid.
func compareVersions(a, b string) int {
	va, erra := parseVersion(a)
	vb, errb := parseVersion(b)
	if erra != nil || errb != nil {
		return strings.Compare(a, b) // unreachable for stored versions
	}
	return va.compare(vb)
}

// clip shortens untrusted input quoted in an error message.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
