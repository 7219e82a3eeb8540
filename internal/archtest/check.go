package archtest

import (
	"fmt"
	"strings"
)

// listedPackage is one package of the module with its imports as `go list` reports them (full
// import paths). Path is module-relative.
type listedPackage struct {
	Path         string
	Imports      []string // the package's own files
	TestImports  []string // its in-package _test.go files
	XTestImports []string // its external test package, Path_test
}

// importKind says which files of a package an import comes from.
type importKind int

const (
	codeImport  importKind = iota // the package's own files
	testImport                    // in-package test files
	xTestImport                   // the external test package
)

func (k importKind) subject(pkg string) string {
	switch k {
	case testImport:
		return pkg + " (tests)"
	case xTestImport:
		return pkg + "_test"
	}
	return pkg
}

// checkImports checks every package against the rules and returns what is wrong, in a stable
// order, and how many packages it checked (those a row governs). module is the module path; std
// reports whether an import path outside the module is in the standard library; doc names the
// table's file in messages. Besides forbidden imports it reports rows that govern no package,
// entries that name no package, and allowances no package uses, so the table stays exact.
func checkImports(module, doc string, rules []rule, pkgs []listedPackage, std func(string) bool) (problems []string, checked int) {
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	at := func(r rule) string { return fmt.Sprintf("%s:%d", doc, r.line) }

	type usage struct {
		governs          int
		imports, tests   []bool // per entry of rule.imports and rule.testImports
		thirdPartyInCode bool
		thirdPartyInTest bool
	}
	uses := make([]usage, len(rules))
	for i, r := range rules {
		uses[i].imports = make([]bool, len(r.imports))
		uses[i].tests = make([]bool, len(r.testImports))
	}

	for _, p := range pkgs {
		ri := resolve(rules, p.Path)
		if ri < 0 {
			report("%s: no row of the table in %s governs this package; add one", p.Path, doc)
			continue
		}
		r, u := rules[ri], &uses[ri]
		u.governs++
		checked++
		for kind, list := range [][]string{codeImport: p.Imports, testImport: p.TestImports, xTestImport: p.XTestImports} {
			kind := importKind(kind)
			for _, im := range list {
				rel, ours := strings.CutPrefix(im, module+"/")
				if !ours {
					if std(im) || im == "C" || im == "unsafe" {
						continue
					}
					switch {
					case r.thirdParty == stdOnly || (r.thirdParty == stdOnlyTestsAny && kind == codeImport):
						report("%s imports %s, outside the standard library, but row `%s` (%s) says %q", kind.subject(p.Path), im, r.pkg, at(r), r.thirdParty)
					case kind == codeImport:
						u.thirdPartyInCode = true
					default:
						u.thirdPartyInTest = true
					}
					continue
				}
				if kind == xTestImport && rel == p.Path {
					continue // an external test imports the package it tests
				}
				allowed := false
				for i, a := range r.imports {
					if matches(a, rel) {
						allowed = true
						if kind == codeImport {
							u.imports[i] = true
						}
					}
				}
				if kind != codeImport {
					for i, a := range r.testImports {
						if matches(a, rel) {
							allowed = true
							u.tests[i] = true
						}
					}
				}
				if !allowed {
					report("forbidden import: %s imports %s; row `%s` (%s) allows %s", kind.subject(p.Path), rel, r.pkg, at(r), allowance(r, kind))
				}
			}
		}
	}

	names := func(pattern string) bool {
		for _, p := range pkgs {
			if matches(pattern, p.Path) {
				return true
			}
		}
		return false
	}
	for i, r := range rules {
		u := uses[i]
		if u.governs == 0 {
			report("%s: stale row `%s`: it governs no package of the module", at(r), r.pkg)
			continue
		}
		for j, a := range r.imports {
			switch {
			case !names(a):
				report("%s: row `%s` allows `%s`, which names no package of the module", at(r), r.pkg, a)
			case !u.imports[j]:
				report("%s: row `%s` allows `%s`, but no package it governs imports it outside tests; drop it, or move it to tests may also import", at(r), r.pkg, a)
			}
		}
		for j, a := range r.testImports {
			switch {
			case !names(a):
				report("%s: row `%s` lets tests import `%s`, which names no package of the module", at(r), r.pkg, a)
			case !u.tests[j]:
				report("%s: row `%s` lets tests import `%s`, but no test of a package it governs imports it; drop it", at(r), r.pkg, a)
			}
		}
		switch {
		case r.thirdParty == anyModule && !u.thirdPartyInCode && u.thirdPartyInTest:
			report("%s: row `%s` says %q, but only tests import outside the standard library; say %q", at(r), r.pkg, r.thirdParty, stdOnlyTestsAny)
		case r.thirdParty == anyModule && !u.thirdPartyInCode:
			report("%s: row `%s` says %q, but nothing it governs imports outside the standard library; say %q", at(r), r.pkg, r.thirdParty, stdOnly)
		case r.thirdParty == stdOnlyTestsAny && !u.thirdPartyInTest:
			report("%s: row `%s` says %q, but no test imports outside the standard library; say %q", at(r), r.pkg, r.thirdParty, stdOnly)
		}
	}
	return problems, checked
}

// allowance says what a row lets files of the given kind import of ours.
func allowance(r rule, kind importKind) string {
	list := r.imports
	if kind != codeImport {
		list = append(append([]string(nil), r.imports...), r.testImports...)
	}
	if len(list) == 0 {
		return nothing
	}
	return "`" + strings.Join(list, "`, `") + "`"
}
