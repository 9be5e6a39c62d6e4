package deploy_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// serviceDir is the service's main package, beside this module.
const serviceDir = "../cmd/alert-domains"

// serviceRoutes are the HTTP paths the service registers on its mux
// (mux.Handle/HandleFunc("GET /path", ...)), read from its source.
func serviceRoutes(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(serviceDir)
	if err != nil {
		t.Fatalf("the service's source: %v", err)
	}
	fset := token.NewFileSet()
	var routes []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(serviceDir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 2 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			pattern, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			if path, ok := strings.CutPrefix(pattern, "GET "); ok {
				routes = append(routes, path)
			} else if strings.HasPrefix(pattern, "/") {
				routes = append(routes, pattern)
			}
			return true
		})
	}
	slices.Sort(routes)
	if len(routes) == 0 {
		t.Fatalf("no HTTP routes found in %s", serviceDir)
	}
	return routes
}

func TestServiceRoutes(t *testing.T) {
	got := serviceRoutes(t)
	for _, want := range []string{"/livez", "/readyz", "/metrics"} {
		if !slices.Contains(got, want) {
			t.Errorf("the service registers %v, without %s", got, want)
		}
	}
}
