package docs_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// goFile is one parsed Go file of the module.
type goFile struct {
	rel  string // path from the repository's root, with slashes
	test bool   // a _test.go file
	ast  *ast.File
}

// source holds the module's Go files, parsed once for every test that
// reads the code (parsing them all is most of these tests' time, more so
// under -race).
var source struct {
	once  sync.Once
	files []goFile
	err   error
}

// goFiles returns every Go file of the module: tests and test helpers too,
// not other modules (data/), hidden directories, node_modules or bin.
func goFiles(t *testing.T) []goFile {
	t.Helper()
	source.once.Do(func() {
		fset := token.NewFileSet()
		source.err = filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != repoRoot && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "bin" ||
					fileExists(filepath.Join(path, "go.mod"))) {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(repoRoot, path)
			source.files = append(source.files, goFile{rel: filepath.ToSlash(rel), test: strings.HasSuffix(path, "_test.go"), ast: f})
			return nil
		})
	})
	if source.err != nil {
		t.Fatal(source.err)
	}
	return source.files
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
