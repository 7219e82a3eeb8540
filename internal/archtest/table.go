// Package archtest owns Lumen's import rules. The rules live in one place, the table under
// "## Packages and import direction" in docs/architecture.md; this package parses that table and
// its tests check every package of the module, its tests included, against it.
package archtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// The table's fixed form: this heading, then a table with exactly these columns.
const (
	tableHeading = "## Packages and import direction"
	nothing      = "nothing"
)

var tableColumns = []string{"package", "job", "may import (ours)", "tests may also import (ours)", "third-party"}

// thirdParty is what a row allows from outside the module.
type thirdParty int

const (
	stdOnly         thirdParty = iota // the package and its tests: standard library only
	stdOnlyTestsAny                   // the package: standard library only; its tests: any module
	anyModule                         // the package and its tests: any module
)

// thirdPartyWords are the words of the third-party column, indexed by what they mean.
var thirdPartyWords = [...]string{
	stdOnly:         "standard library only",
	stdOnlyTestsAny: "standard library only (tests: any)",
	anyModule:       "any",
}

func (tp thirdParty) String() string { return thirdPartyWords[tp] }

// rule is one row of the table. Paths are module-relative; one ending in "/" is a folder and
// means every package strictly under it.
type rule struct {
	line        int      // in the file, from 1
	pkg         string   // the package, or folder, the row is about
	imports     []string // what the package may import of ours
	testImports []string // what its tests may import of ours beyond imports
	thirdParty  thirdParty
}

// isFolder reports whether a path is a folder pattern.
func isFolder(path string) bool { return strings.HasSuffix(path, "/") }

// matches reports whether a module-relative package is named by pattern: equal to it, or, for a
// folder pattern "x/", strictly under x.
func matches(pattern, pkg string) bool {
	if isFolder(pattern) {
		return strings.HasPrefix(pkg, pattern)
	}
	return pkg == pattern
}

// resolve returns the index of the row that governs pkg: an exact row if there is one, else the
// longest folder row that matches, else -1.
func resolve(rules []rule, pkg string) int {
	best := -1
	for i, r := range rules {
		if !matches(r.pkg, pkg) {
			continue
		}
		if best < 0 || !isFolder(r.pkg) || (isFolder(rules[best].pkg) && len(r.pkg) > len(rules[best].pkg)) {
			best = i
		}
	}
	return best
}

// allows reports whether the row lets its package import pkg of ours; test widens that to what
// its tests may import.
func (r rule) allows(pkg string, test bool) bool {
	for _, a := range r.imports {
		if matches(a, pkg) {
			return true
		}
	}
	if test {
		for _, a := range r.testImports {
			if matches(a, pkg) {
				return true
			}
		}
	}
	return false
}

// parseTable reads the rules table from a markdown document; name is used in errors, which name
// the line at fault. Every malformed row is reported, not only the first.
func parseTable(name string, r io.Reader) ([]rule, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	const (
		beforeHeading = iota
		beforeTable
		afterHeader
		inRows
	)
	var (
		rules   []rule
		errs    []error
		lineNo  int
		state   = beforeHeading
		seen    = map[string]int{}
		failure = func(line int, format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, args...)))
		}
	)
scan:
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		switch state {
		case beforeHeading:
			if line == tableHeading {
				state = beforeTable
			}
		case beforeTable:
			if strings.HasPrefix(line, "## ") {
				break scan
			}
			if strings.HasPrefix(line, "|") {
				cells, ok := splitRow(line)
				if !ok || !slices.Equal(cells, tableColumns) {
					failure(lineNo, "table header is %q, want %q", line, "| "+strings.Join(tableColumns, " | ")+" |")
					break scan
				}
				state = afterHeader
			}
		case afterHeader:
			cells, ok := splitRow(line)
			if !ok || len(cells) != len(tableColumns) || !allDashes(cells) {
				failure(lineNo, "want the table's separator row (| --- | ... |) under its header, got %q", line)
				break scan
			}
			state = inRows
		case inRows:
			if !strings.HasPrefix(line, "|") {
				break scan
			}
			ru, err := parseRow(lineNo, line)
			if err != nil {
				failure(lineNo, "%v", err)
				continue
			}
			if first, dup := seen[ru.pkg]; dup {
				failure(lineNo, "second row for `%s` (first on line %d)", ru.pkg, first)
				continue
			}
			seen[ru.pkg] = lineNo
			rules = append(rules, ru)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	switch {
	case state == beforeHeading:
		errs = append(errs, fmt.Errorf("%s: no %q heading", name, tableHeading))
	case state == beforeTable && len(errs) == 0:
		errs = append(errs, fmt.Errorf("%s: no table under %q", name, tableHeading))
	case state == afterHeader:
		errs = append(errs, fmt.Errorf("%s:%d: the table ends after its header", name, lineNo))
	case state == inRows && len(rules) == 0 && len(errs) == 0:
		errs = append(errs, fmt.Errorf("%s: the table under %q has no rows", name, tableHeading))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return rules, nil
}

// parseRow parses one data row of the table.
func parseRow(lineNo int, line string) (rule, error) {
	cells, ok := splitRow(line)
	if !ok {
		return rule{}, fmt.Errorf("row %q does not end in |", line)
	}
	if len(cells) != len(tableColumns) {
		return rule{}, fmt.Errorf("row has %d cells, want %d (%s)", len(cells), len(tableColumns), strings.Join(tableColumns, ", "))
	}
	ru := rule{line: lineNo}
	var err error
	if ru.pkg, err = parsePath(cells[0]); err != nil {
		return rule{}, fmt.Errorf("package: %w", err)
	}
	if cells[1] == "" {
		return rule{}, fmt.Errorf("`%s` has no job", ru.pkg)
	}
	if ru.imports, err = parseList(cells[2]); err != nil {
		return rule{}, fmt.Errorf("`%s`, may import: %w", ru.pkg, err)
	}
	if ru.testImports, err = parseList(cells[3]); err != nil {
		return rule{}, fmt.Errorf("`%s`, tests may also import: %w", ru.pkg, err)
	}
	for _, t := range ru.testImports {
		if slices.Contains(ru.imports, t) {
			return rule{}, fmt.Errorf("`%s`, tests may also import: `%s` is already in may import", ru.pkg, t)
		}
	}
	tp := slices.Index(thirdPartyWords[:], cells[4])
	if tp < 0 {
		return rule{}, fmt.Errorf("`%s`, third-party: %q is none of %q", ru.pkg, cells[4], thirdPartyWords)
	}
	ru.thirdParty = thirdParty(tp)
	return ru, nil
}

// splitRow splits "| a | b |" into its trimmed cells.
func splitRow(line string) ([]string, bool) {
	if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") || len(line) < 2 {
		return nil, false
	}
	cells := strings.Split(line[1:len(line)-1], "|")
	for i := range cells {
		cells[i] = strings.TrimSpace(cells[i])
	}
	return cells, true
}

func allDashes(cells []string) bool {
	for _, c := range cells {
		c = strings.TrimSuffix(strings.TrimPrefix(c, ":"), ":")
		if len(c) < 3 || strings.Trim(c, "-") != "" {
			return false
		}
	}
	return true
}

// parseList parses "nothing" or a comma-separated list of backticked paths.
func parseList(cell string) ([]string, error) {
	if cell == nothing {
		return nil, nil
	}
	if cell == "" {
		return nil, fmt.Errorf("empty cell: write %q or a list of `paths`", nothing)
	}
	var list []string
	for _, item := range strings.Split(cell, ",") {
		p, err := parsePath(strings.TrimSpace(item))
		if err != nil {
			return nil, err
		}
		if slices.Contains(list, p) {
			return nil, fmt.Errorf("`%s` listed twice", p)
		}
		list = append(list, p)
	}
	return list, nil
}

// parsePath parses one backticked module-relative path: `a/b`, or `a/b/` for a folder.
func parsePath(s string) (string, error) {
	p, ok := strings.CutPrefix(s, "`")
	if ok {
		p, ok = strings.CutSuffix(p, "`")
	}
	if !ok || p == "" {
		return "", fmt.Errorf("%q is not a module-relative path in backticks, such as `engine` or `examples/`", s)
	}
	for _, seg := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("`%s` is not a clean module-relative path", p)
		}
		for _, c := range seg {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				return "", fmt.Errorf("`%s` has %q, which is not allowed in a package path", p, c)
			}
		}
	}
	return p, nil
}
