package util

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/kubectl-stage/kubectl-stage/pkg/enroll"
	"github.com/kubectl-stage/kubectl-stage/pkg/input"
	"github.com/kubectl-stage/kubectl-stage/pkg/rollout"
)

// Command is one verb's options in kubectl's shape: Complete reads the
// arguments and builds clients without talking to the cluster, Validate
// checks the flags, Run does the work.
type Command interface {
	Complete(f kcmdutil.Factory, cmd *cobra.Command, args []string) error
	Validate() error
	Run(ctx context.Context) error
}

// RunE runs o as cobra's RunE; an error that points at an input of the
// workflow gets the flag that gives it.
func RunE(f kcmdutil.Factory, o Command) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := o.Complete(f, cmd, args)
		if err == nil {
			err = o.Validate()
		}
		if err == nil {
			err = o.Run(cmd.Context())
		}
		return WithFlagHints(err)
	}
}

// flagOf is the flag that gives each input the domain packages' errors can
// point at.
var flagOf = map[input.Name]string{
	enroll.InputNode:               "--node",
	enroll.InputOverlayCIDR:        "--overlay-cidr",
	enroll.InputVPN:                "--vpn",
	enroll.InputHubEndpoint:        "--hub-endpoint",
	enroll.InputAPIServerEndpoint:  "--apiserver-endpoint",
	enroll.InputPodCIDR:            "--pod-cidr",
	enroll.InputServiceCIDR:        "--service-cidr",
	enroll.InputTokenTTL:           "--token-ttl",
	enroll.InputCredentialValidity: "--credential-validity",
	enroll.InputSkipCertCheck:      "--skip-apiserver-cert-check",
	enroll.InputForce:              "--force",
	enroll.InputEndpoint:           "--endpoint",
	enroll.InputRelayOnly:          "--relay-only",
	rollout.InputWaves:             "--waves",
	rollout.InputOrder:             "--order",
	rollout.InputMaxAtOnce:         "--max-sites-at-once",
	rollout.InputImage:             "--image",
}

// FlagHintError is a domain error with the flags that fix it.
type FlagHintError struct {
	Err   error
	Flags []string // "--overlay-cidr" or "--overlay-cidr=10.23.0.0/16"
}

func (e *FlagHintError) Error() string {
	return fmt.Sprintf("%v (%s)", e.Err, strings.Join(e.Flags, ", "))
}

func (e *FlagHintError) Unwrap() error { return e.Err }

// WithFlagHints names, after err's message, the flags of the inputs err
// points at; an input without a flag adds nothing.
func WithFlagHints(err error) error {
	var flags []string
	for _, s := range input.Suggestions(err) {
		flag, ok := flagOf[s.Name]
		if !ok {
			continue
		}
		if s.Value != "" {
			flag += "=" + s.Value
		}
		flags = append(flags, flag)
	}
	var hinted *FlagHintError
	if len(flags) == 0 || errors.As(err, &hinted) {
		return err
	}
	return &FlagHintError{Err: err, Flags: flags}
}
