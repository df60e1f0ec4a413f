// Command generate writes callqueue's Grafana dashboards into
// deploy/grafana/dashboards/ (`make dashboards`).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/callqueue/callqueue/deploy/grafana"
)

func main() {
	dir := "deploy/grafana/dashboards"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	files, err := grafana.Files()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for name, raw := range files {
		// Committed files, read by Grafana: world-readable like the rest of the checkout.
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o644); err != nil { //nolint:gosec // see above
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("wrote", filepath.Join(dir, name))
	}
}
