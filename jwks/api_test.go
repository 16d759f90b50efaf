package jwks

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestPublicAPI_NoJWXTypes: no exported declaration of jwks mentions a type
// or value of jwx (deprecated v2 today, v3 tomorrow), so changing the JOSE
// library changes nothing for a service. It walks the exported
// declarations' syntax (signatures, exported fields, var and const types
// and values) for a selector on a jwx import.
func TestPublicAPI_NoJWXTypes(t *testing.T) {
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		jwx := map[string]bool{} // local names of jwx imports in this file
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, "github.com/lestrrat-go/") {
				name := path[strings.LastIndex(path, "/")+1:]
				if imp.Name != nil {
					name = imp.Name.Name
				}
				jwx[name] = true
			}
		}
		report := func(what string, n ast.Node) {
			checked++
			ast.Inspect(n, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok {
					if id, ok := sel.X.(*ast.Ident); ok && jwx[id.Name] {
						t.Errorf("%s: exported %s uses %s.%s", fset.Position(sel.Pos()), what, id.Name, sel.Sel.Name)
					}
				}
				return true
			})
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() || d.Recv != nil && !exportedRecv(d.Recv) {
					continue
				}
				report("func "+d.Name.Name, d.Type)
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if !s.Name.IsExported() {
							continue
						}
						if st, ok := s.Type.(*ast.StructType); ok {
							for _, fld := range st.Fields.List {
								for _, n := range fld.Names {
									if n.IsExported() {
										report("field "+s.Name.Name+"."+n.Name, fld.Type)
									}
								}
							}
							continue
						}
						report("type "+s.Name.Name, s.Type)
					case *ast.ValueSpec:
						for i, n := range s.Names {
							if !n.IsExported() {
								continue
							}
							if s.Type != nil {
								report("var/const "+n.Name, s.Type)
							}
							if i < len(s.Values) {
								report("var/const "+n.Name, s.Values[i])
							}
						}
					}
				}
			}
		}
	}
	if checked < 30 {
		t.Fatalf("checked only %d exported declarations: the walk is broken", checked)
	}
}

func exportedRecv(fl *ast.FieldList) bool {
	e := fl.List[0].Type
	if st, ok := e.(*ast.StarExpr); ok {
		e = st.X
	}
	id, ok := e.(*ast.Ident)
	return ok && id.IsExported()
}

// jwxIdent matches a qualified identifier of a jwx package (jwk.Set).
var jwxIdent = regexp.MustCompile(`\b(jwk|jws|jwa|jwt|jwe)\.[A-Z]\w*`)

// TestPublicAPI_GoDoc: what a service author reads with go doc names no
// jwx package and no publishing side (that moved to Signet's keys/jwksdoc).
func TestPublicAPI_GoDoc(t *testing.T) {
	out, err := exec.Command("go", "doc", "-all", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go doc: %v\n%s", err, out)
	}
	doc := string(out)
	if !strings.Contains(doc, "func NewVerifier(") {
		t.Fatalf("go doc output lacks NewVerifier:\n%s", doc)
	}
	if m := jwxIdent.FindString(doc); m != "" {
		t.Errorf("go doc -all shows %q", m)
	}
	for _, bad := range []string{"lestrrat", "KeySource", "NewHandler", "type Handler", "PublicSet", "SECURITY.md"} {
		if strings.Contains(doc, bad) {
			t.Errorf("go doc -all shows %q", bad)
		}
	}
}
