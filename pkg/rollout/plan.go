// Package rollout rolls a new version of a P2P app across sites in waves.
//
// A wave replaces the app's pods at one or more sites and is gated on those
// pods being Ready for a while (and on an optional health check) before the
// next wave starts. The rollout's state is kept in annotations on the
// workload, so a rollout can be watched, paused, resumed or undone from any
// machine, and one interrupted by Ctrl-C continues where it stopped.
//
// Per-site waves on stock Kubernetes:
//   - StatefulSets and DaemonSets are switched to the OnDelete update
//     strategy for the rollout, the new template is written, and each wave
//     deletes the pods of its sites; the workload's own controller recreates
//     them from the new revision (same names, same volumes). Sites not yet
//     reached keep their pods untouched.
//   - A Deployment has no OnDelete strategy, so the rollout gives each site
//     its own Deployment (<name>-<site>, pinned to the site) created from the
//     new template; once it is Ready the original Deployment is scaled down
//     by that site's pods. Later rollouts update the per-site Deployments.
package rollout

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/input"
)

// Wave tokens of a plan's waves.
const (
	WaveCanary = "canary" // one site
	WaveRest   = "rest"   // every remaining site, at most MaxAtOnce at a time
)

// The inputs of a rollout that its errors can point at.
const (
	InputWaves     input.Name = "waves"
	InputOrder     input.Name = "site order"
	InputMaxAtOnce input.Name = "most sites at once"
	InputImage     input.Name = "image"
)

// PlanWaves orders the sites and groups them into waves.
//
// order lists sites that go first, in that order; the others follow by
// name. waves is a list of tokens: "canary" (one site), a number of sites,
// or "rest"; sites left when the tokens run out form a final "rest".
// maxAtOnce caps the sites of any wave (0: no cap).
func PlanWaves(sites, order, waves []string, maxAtOnce int) ([][]string, error) {
	if len(sites) == 0 {
		return nil, fmt.Errorf("the app has no pods on any site; deploy it first")
	}
	if maxAtOnce < 0 {
		return nil, input.Fix(fmt.Errorf("the most sites in one wave must be 0 (no limit) or more, not %d", maxAtOnce), input.Use(InputMaxAtOnce))
	}
	queue, err := orderSites(sites, order)
	if err != nil {
		return nil, err
	}
	var plan [][]string
	take := func(n int) {
		for n > 0 && len(queue) > 0 {
			size := min(n, len(queue))
			if maxAtOnce > 0 {
				size = min(size, maxAtOnce)
			}
			plan = append(plan, slices.Clone(queue[:size]))
			queue = queue[size:]
			n -= size
		}
	}
	for _, token := range waves {
		switch token = strings.TrimSpace(token); token {
		case WaveCanary:
			take(1)
		case WaveRest:
			take(len(queue))
		default:
			n, err := strconv.Atoi(token)
			if err != nil || n < 1 {
				return nil, input.Fix(fmt.Errorf("%q is not a wave; use %q, %q or a number of sites, for example canary,2,rest",
					token, WaveCanary, WaveRest), input.Use(InputWaves))
			}
			take(n)
		}
	}
	take(len(queue))
	return plan, nil
}

func orderSites(sites, order []string) ([]string, error) {
	rest := slices.Sorted(slices.Values(sites))
	rest = slices.Compact(rest)
	queue := make([]string, 0, len(rest))
	for _, s := range order {
		s = strings.TrimSpace(s)
		i := slices.Index(rest, s)
		if i < 0 {
			if slices.Contains(queue, s) {
				return nil, input.Fix(fmt.Errorf("the site order names site %q twice", s), input.Use(InputOrder))
			}
			return nil, input.Fix(fmt.Errorf("the site order names site %q, where the app has no pods; its sites are: %s",
				s, strings.Join(slices.Sorted(slices.Values(sites)), ", ")), input.Use(InputOrder))
		}
		queue = append(queue, s)
		rest = slices.Delete(rest, i, i+1)
	}
	return append(queue, rest...), nil
}

// ImageSpec is one image change: a container name (empty: the only
// container) and its new image.
type ImageSpec struct {
	Container string
	Image     string
}

// ParseImages reads image changes of the form [CONTAINER=]IMAGE.
func ParseImages(values []string) ([]ImageSpec, error) {
	specs := make([]ImageSpec, 0, len(values))
	for _, v := range values {
		container, image, named := strings.Cut(v, "=")
		if !named {
			container, image = "", v
		}
		if image == "" || strings.ContainsAny(image, " \t") || (named && container == "") {
			return nil, input.Fix(fmt.Errorf("image %q: expected [CONTAINER=]IMAGE, for example node=registry.example/p2p:v2", v), input.Use(InputImage))
		}
		specs = append(specs, ImageSpec{Container: container, Image: image})
	}
	return specs, nil
}

// SetImages returns a copy of tmpl with the images replaced. An unnamed
// spec needs a pod with exactly one container.
func SetImages(tmpl *corev1.PodTemplateSpec, specs []ImageSpec) (*corev1.PodTemplateSpec, error) {
	out := tmpl.DeepCopy()
	names := func() string {
		var n []string
		for _, c := range out.Spec.InitContainers {
			n = append(n, c.Name)
		}
		for _, c := range out.Spec.Containers {
			n = append(n, c.Name)
		}
		return strings.Join(n, ", ")
	}
	for _, spec := range specs {
		if spec.Container == "" {
			if len(out.Spec.Containers) != 1 {
				return nil, input.Fix(fmt.Errorf("the pod has %d containers (%s); name the one to change: CONTAINER=%s",
					len(out.Spec.Containers), names(), spec.Image), input.Set(InputImage, "CONTAINER="+spec.Image))
			}
			out.Spec.Containers[0].Image = spec.Image
			continue
		}
		found := false
		for _, list := range [][]corev1.Container{out.Spec.Containers, out.Spec.InitContainers} {
			for i := range list {
				if list[i].Name == spec.Container {
					list[i].Image, found = spec.Image, true
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("the pod has no container %q; its containers are: %s", spec.Container, names())
		}
	}
	return out, nil
}

// Images summarises a template's images for history and messages.
func Images(tmpl *corev1.PodTemplateSpec) string {
	var parts []string
	for _, c := range tmpl.Spec.Containers {
		parts = append(parts, c.Name+"="+c.Image)
	}
	return strings.Join(parts, ",")
}
