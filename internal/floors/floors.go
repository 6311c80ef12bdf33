// Package floors states which way the module's imports may run (DESIGN §1: the house has
// floors; nothing points back up) and finds the import chains that break a rule. Its test,
// run by make lint, checks the module's production import graph (test files excluded) as
// go list reports it.
//
// The floors, from the ground up:
//   - functions/pf, the SDK, and every package below it reach neither runtime/ nor trigger/
//     nor Gin: a function author's binary must not pull in the host or an HTTP framework;
//   - trigger/ does not reach runtime/ (it talks to an Invoker of its own);
//   - runtime/ reaches neither trigger/ nor Gin;
//   - nothing outside cmd/ imports a package under cmd/: commands sit on top.
package floors

import (
	"slices"
	"strings"
)

// Module is the path of the module whose floors are checked.
const Module = "github.com/fnhost/fnhost"

// Graph is a production import graph: each package's import path mapped to the import paths
// it imports directly, as go list's Imports field gives them (test files excluded).
type Graph map[string][]string

// Rule forbids the packages that From selects to reach, directly or through any chain of
// imports, a package that Forbidden selects.
type Rule struct {
	// Name says what the rule protects, in a failure message.
	Name string
	// From selects the packages the rule applies to.
	From func(pkg string) bool
	// Forbidden selects the packages they must not reach.
	Forbidden func(pkg string) bool
}

// Violation is one package reaching a forbidden one.
type Violation struct {
	// Rule is the Name of the rule broken.
	Rule string
	// Chain is the import chain, from the package the rule applies to, to the forbidden
	// package, each element importing the next. It is a shortest such chain.
	Chain []string
}

// String is the violation as one line: the rule, then the chain joined by arrows.
func (v Violation) String() string {
	return v.Rule + ": " + strings.Join(v.Chain, " -> ")
}

// Under reports whether pkg is the package at path or below it (path/...).
func Under(pkg, path string) bool {
	return pkg == path || strings.HasPrefix(pkg, path+"/")
}

// under returns a selector for the module's packages at or below dir.
func under(dir string) func(string) bool {
	return func(pkg string) bool { return Under(pkg, Module+"/"+dir) }
}

// gin selects the Gin framework's packages.
func gin(pkg string) bool { return Under(pkg, "github.com/gin-gonic/gin") }

// either selects what any of fs selects.
func either(fs ...func(string) bool) func(string) bool {
	return func(pkg string) bool {
		for _, f := range fs {
			if f(pkg) {
				return true
			}
		}
		return false
	}
}

// Rules are the module's floors (see the package doc).
func Rules() []Rule {
	cmd := under("cmd")
	return []Rule{
		{
			Name:      "functions/pf must not reach runtime/, trigger/ or gin",
			From:      under("functions/pf"),
			Forbidden: either(under("runtime"), under("trigger"), gin),
		},
		{
			Name:      "trigger/ must not reach runtime/",
			From:      under("trigger"),
			Forbidden: under("runtime"),
		},
		{
			Name:      "runtime/ must not reach trigger/ or gin",
			From:      under("runtime"),
			Forbidden: either(under("trigger"), gin),
		},
		{
			Name:      "only cmd/ may import cmd/",
			From:      func(pkg string) bool { return Under(pkg, Module) && !cmd(pkg) },
			Forbidden: cmd,
		},
	}
}

// Check returns every violation of rules in g, sorted. For each package a rule applies to, it
// reports one shortest chain to each forbidden package reached first on a path, and does not
// look past a forbidden package: a chain names where the floor is broken, not everything
// beyond it.
func Check(g Graph, rules []Rule) []Violation {
	var out []Violation
	pkgs := make([]string, 0, len(g))
	for p := range g {
		pkgs = append(pkgs, p)
	}
	slices.Sort(pkgs)
	for _, r := range rules {
		for _, p := range pkgs {
			if r.From(p) {
				out = append(out, reach(g, r, p)...)
			}
		}
	}
	return out
}

// reach walks g breadth first from start and returns a chain to each forbidden package r
// meets, in the order met.
func reach(g Graph, r Rule, start string) []Violation {
	parent := map[string]string{start: ""}
	queue := []string{start}
	var out []Violation
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		imports := slices.Clone(g[p])
		slices.Sort(imports)
		for _, q := range imports {
			if _, seen := parent[q]; seen {
				continue
			}
			parent[q] = p
			if r.Forbidden(q) {
				out = append(out, Violation{Rule: r.Name, Chain: chain(parent, q)})
				continue
			}
			queue = append(queue, q)
		}
	}
	return out
}

// chain follows parent back from end to the start of the walk.
func chain(parent map[string]string, end string) []string {
	var c []string
	for p := end; p != ""; p = parent[p] {
		c = append(c, p)
	}
	slices.Reverse(c)
	return c
}
