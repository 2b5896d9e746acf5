// Command gendocs writes docs/reference.md from the kubectl stage commands.
package main

import (
	"bytes"
	"fmt"
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-stage/kubectl-stage/pkg/cmd"
	"github.com/kubectl-stage/kubectl-stage/pkg/cmd/refdoc"
)

func main() {
	var buf bytes.Buffer
	root := cmd.NewCmdStage(genericiooptions.NewTestIOStreamsDiscard())
	if err := refdoc.Write(&buf, root); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
	if err := os.WriteFile("docs/reference.md", buf.Bytes(), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}
