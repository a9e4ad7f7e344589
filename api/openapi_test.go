package api

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gorilla/mux"
)

// openapiDocument is the part of an OpenAPI document the tests read.
type openapiDocument struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]struct {
				Enum []string `json:"enum"`
			} `json:"properties"`
		} `json:"schemas"`
		SecuritySchemes map[string]json.RawMessage `json:"securitySchemes"`
	} `json:"components"`
}

// operations lists the HTTP methods a path item documents.
func operations(item map[string]json.RawMessage) []string {
	var out []string
	for k := range item {
		switch k {
		case "get", "put", "post", "delete", "options", "head", "patch", "trace":
			out = append(out, strings.ToUpper(k))
		}
	}
	slices.Sort(out)
	return out
}

func parseOpenAPI(t *testing.T) openapiDocument {
	t.Helper()
	var doc openapiDocument
	// The document is JSON, which YAML 1.2 parsers read as YAML too.
	dec := json.NewDecoder(strings.NewReader(string(openapiDoc)))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("openapi.yaml is not JSON-compatible YAML: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi version %q, want 3.1", doc.OpenAPI)
	}
	return doc
}

// TestOpenAPICoversEveryRoute walks the router: every registered route
// and method must be documented, and every documented one registered.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	t.Parallel()
	doc := parseOpenAPI(t)
	a, err := New(acceptAll{}, Config{MaxBody: 1, Metrics: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string][]string{}
	err = a.router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		if strings.HasPrefix(route.GetName(), "compat:") {
			return nil // another product's protocol, documented in examples/
		}
		methods, err := route.GetMethods()
		if err != nil {
			t.Errorf("route %s has no methods", tpl)
			return nil //nolint:nilerr // reported above; keep walking
		}
		registered[tpl] = append(registered[tpl], methods...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(registered) < 20 {
		t.Fatalf("only %d routes found: %v", len(registered), registered)
	}
	for path, methods := range registered {
		item, ok := doc.Paths[path]
		if !ok {
			t.Errorf("route %s is not in openapi.yaml", path)
			continue
		}
		slices.Sort(methods)
		if got := operations(item); !slices.Equal(got, methods) {
			t.Errorf("%s: openapi.yaml documents %v, the router serves %v", path, got, methods)
		}
	}
	for path := range doc.Paths {
		if _, ok := registered[path]; !ok {
			t.Errorf("openapi.yaml documents %s, which no route serves", path)
		}
	}
	for _, s := range []string{"bearerToken", "clientID", "clientSecret", "basicAuth"} {
		if _, ok := doc.Components.SecuritySchemes[s]; !ok {
			t.Errorf("security scheme %s missing", s)
		}
	}
}

// TestOpenAPIProblemCodes checks that the problem schema lists exactly the
// stable codes the package defines (every const named code...).
func TestOpenAPIProblemCodes(t *testing.T) {
	t.Parallel()
	doc := parseOpenAPI(t)
	documented := doc.Components.Schemas["Problem"].Properties["code"].Enum
	var defined []string
	fset := token.NewFileSet()
	for _, file := range []string{"problem.go", "admin.go"} {
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range vs.Names {
				if strings.HasPrefix(name.Name, "code") && i < len(vs.Values) {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
						s, _ := strconv.Unquote(lit.Value)
						defined = append(defined, s)
					}
				}
			}
			return true
		})
	}
	slices.Sort(defined)
	slices.Sort(documented)
	if len(defined) < 13 || !slices.Equal(defined, documented) {
		t.Fatalf("problem codes: defined %v, documented %v", defined, documented)
	}
}

func TestOpenAPIServedWithoutCredentials(t *testing.T) {
	t.Parallel()
	a, err := New(acceptAll{}, Config{MaxBody: 1})
	if err != nil {
		t.Fatal(err)
	}
	for path, ctype := range map[string]string{"/api/v1/openapi.yaml": "application/yaml", "/api/v1/openapi.json": "application/json"} {
		w := httptest.NewRecorder()
		a.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != ctype || w.Body.String() != string(openapiDoc) {
			t.Fatalf("%s: %d %s", path, w.Code, w.Header().Get("Content-Type"))
		}
	}
}
