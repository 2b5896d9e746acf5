package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-stage/kubectl-stage/pkg/cmd"
)

// stage runs `kubectl stage ARGS` in process, echoing the command and, as
// they come, its output lines.
func (d *demo) stage(ctx context.Context, args ...string) error {
	d.step("kubectl stage %s", strings.Join(args, " "))
	out := &indenter{w: d.Out}
	return d.run(ctx, out, out, args)
}

// stageTo runs `kubectl stage ARGS` with its result into w (progress still
// shown).
func (d *demo) stageTo(ctx context.Context, w io.Writer, args ...string) error {
	return d.run(ctx, w, &indenter{w: d.Out}, args)
}

func (d *demo) run(ctx context.Context, out, errOut io.Writer, args []string) error {
	root := cmd.NewCmdStage(genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: out, ErrOut: errOut})
	root.SetArgs(append([]string{"--kubeconfig", d.kubeconfig}, args...))
	if err := root.ExecuteContext(ctx); err != nil {
		return fmt.Errorf("kubectl stage %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// kubectl runs the real kubectl against the demo cluster.
func (d *demo) kubectl(ctx context.Context, stdin io.Reader, args ...string) error {
	c := exec.CommandContext(ctx, d.cp.Tools.Kubectl, append([]string{"--kubeconfig", d.kubeconfig}, args...)...)
	c.Stdin = stdin
	out, err := c.CombinedOutput()
	fmt.Fprint(&indenter{w: d.Out}, string(out))
	if err != nil {
		return fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// indenter writes whole lines, indented under the step that printed them.
type indenter struct {
	w       io.Writer
	partial []byte
}

func (i *indenter) Write(p []byte) (int, error) {
	i.partial = append(i.partial, p...)
	for {
		nl := bytes.IndexByte(i.partial, '\n')
		if nl < 0 {
			return len(p), nil
		}
		if _, err := fmt.Fprintf(i.w, "    %s\n", i.partial[:nl]); err != nil {
			return 0, err
		}
		i.partial = i.partial[nl+1:]
	}
}
