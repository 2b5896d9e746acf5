package util

import (
	"io"

	kcmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/kubectl-stage/kubectl-stage/pkg/enroll"
)

// NewEnroller connects to the cluster the kubectl flags select; progress
// lines go to out (stderr), so that stdout stays the command's result.
func NewEnroller(f kcmdutil.Factory, out io.Writer) (*enroll.Enroller, error) {
	client, err := f.KubernetesClientSet()
	if err != nil {
		return nil, err
	}
	return enroll.New(client, out), nil
}
