// Command promlint is `promtool check metrics` without the rest of Prometheus: it reads
// a text exposition on stdin, parses it strictly (prometheus/common's expfmt) and runs
// the same linter promtool runs (client_golang's testutil/promlint). Exit 0: clean;
// 1: unparsable input; 3: lint problems (promtool's codes). Building all of promtool
// pulls in Kubernetes' client and every service discovery SDK (many minutes); this
// builds in seconds.
package main

import (
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func main() {
	problems, err := promlint.New(os.Stdin).Lint()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error while linting:", err)
		os.Exit(1)
	}
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, p.Metric, p.Text)
	}
	if len(problems) > 0 {
		os.Exit(3)
	}
}
