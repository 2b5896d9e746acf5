package refdoc_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-stage/kubectl-stage/pkg/cmd"
	"github.com/kubectl-stage/kubectl-stage/pkg/cmd/refdoc"
)

// The committed reference must be what the commands say today.
func TestReferenceIsUpToDate(t *testing.T) {
	var buf bytes.Buffer
	if err := refdoc.Write(&buf, cmd.NewCmdStage(genericiooptions.NewTestIOStreamsDiscard())); err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("../../../docs/reference.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), committed) {
		t.Error("docs/reference.md is out of date: run make docs")
	}
	for _, want := range []string{"## kubectl stage join", "## kubectl stage rollout undo", "--max-sites-at-once", "--hub-endpoint"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("the reference lacks %q", want)
		}
	}
}
