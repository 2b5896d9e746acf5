// Package collect is `kubectl stage collect`: one experiment record for a
// bug report, read from the API server only. It never reads a Secret, so
// none can end up in the record.
package collect

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/peergraph"
	"github.com/kubectl-stage/kubectl-stage/pkg/printing"
	"github.com/kubectl-stage/kubectl-stage/pkg/rollout"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
	"github.com/kubectl-stage/kubectl-stage/pkg/version"
)

// Manifest is manifest.yaml: what the record holds, and what could not be
// collected.
type Manifest struct {
	CollectedAt metav1.Time  `json:"collectedAt"`
	Plugin      version.Info `json:"plugin"`
	Namespace   string       `json:"namespace,omitempty"`
	App         string       `json:"app,omitempty"`
	Files       []File       `json:"files"`
	// Problems are what was asked for and not collected, with why.
	Problems []Problem `json:"problems,omitempty"`
}

// File is one file of the record.
type File struct {
	Path  string `json:"path"`
	What  string `json:"what"`
	Bytes int    `json:"bytes"`
}

// Problem is a part that could not be collected.
type Problem struct {
	What  string `json:"what"`
	Error string `json:"error"`
}

// Collector reads the record.
type Collector struct {
	Client kubernetes.Interface
	Graph  peergraph.Reader
	// Now stamps the record.
	Now func() time.Time
}

// record is one collection in progress.
type record struct {
	sink     Sink
	manifest Manifest
}

func (r *record) add(path, what string, data []byte) error {
	if err := r.sink.Add(path, data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	r.manifest.Files = append(r.manifest.Files, File{Path: path, What: what, Bytes: len(data)})
	return nil
}

// addObject writes obj as YAML with its apiVersion and kind, without
// managed fields; an error reading it is a problem of the record, not a
// failure of the collection.
func (r *record) addObject(path, what string, obj runtime.Object, readErr error) error {
	if readErr != nil {
		r.problem(what, readErr)
		return nil
	}
	dropManagedFields(obj)
	if err := printing.SetKinds(obj); err != nil {
		return fmt.Errorf("printing %s: %w", what, err)
	}
	var buf bytes.Buffer
	if err := (&printers.YAMLPrinter{}).PrintObj(obj, &buf); err != nil {
		return fmt.Errorf("printing %s: %w", what, err)
	}
	return r.add(path, what, buf.Bytes())
}

func (r *record) problem(what string, err error) {
	r.manifest.Problems = append(r.manifest.Problems, Problem{What: what, Error: err.Error()})
}

func dropManagedFields(obj runtime.Object) {
	items := []runtime.Object{obj}
	if meta.IsListType(obj) {
		items, _ = meta.ExtractList(obj)
	}
	for _, item := range items {
		if m, err := meta.Accessor(item); err == nil {
			m.SetManagedFields(nil)
		}
	}
}

// Collect writes the record of the staging cluster, and of app in
// namespace when app is set, into sink, and commits it. Parts that cannot
// be read are listed as problems in the manifest; an error is returned
// only when the record cannot be written (nothing is left then).
func (c Collector) Collect(ctx context.Context, sink Sink, namespace, app string) (*Manifest, error) {
	r := &record{sink: sink, manifest: Manifest{CollectedAt: metav1.NewTime(c.Now()), Plugin: version.Get(), Namespace: namespace, App: app, Files: []File{}}}
	if err := c.collect(ctx, r, namespace, app); err != nil {
		sink.Abort()
		return nil, err
	}
	data, err := yaml.Marshal(r.manifest)
	if err != nil {
		sink.Abort()
		return nil, err
	}
	if err := sink.Add("manifest.yaml", data); err != nil {
		sink.Abort()
		return nil, err
	}
	return &r.manifest, sink.Commit()
}

func (c Collector) collect(ctx context.Context, r *record, namespace, app string) error {
	report, err := site.NewStore(c.Client).BuildReport(ctx, c.Now())
	if err == nil {
		if err := r.addObject("sites.yaml", "the sites: nodes, readiness, peers per app", &report.Sites, nil); err != nil {
			return err
		}
		if err := r.addObject("enrolled-nodes.yaml", "the enrolled nodes: site, overlay IP, state, credential and token expiry", &report.Nodes, nil); err != nil {
			return err
		}
	} else {
		r.problem("the sites and enrolled nodes", err)
	}
	nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err := r.addObject("nodes.yaml", "the cluster's Nodes: conditions, addresses, versions", nodes, err); err != nil {
		return err
	}
	if err := c.collectWebhook(ctx, r); err != nil {
		return err
	}
	if app == "" {
		return nil
	}
	return c.collectApp(ctx, r, namespace, app)
}

// collectWebhook records the webhook's configuration: its registrations
// and its Deployment (no Secret: the serving key is in one).
func (c Collector) collectWebhook(ctx context.Context, r *record) error {
	hooks, err := c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err == nil {
		hooks.Items = slices.DeleteFunc(hooks.Items, func(h admissionregistrationv1.MutatingWebhookConfiguration) bool {
			return !slices.ContainsFunc(h.Webhooks, func(w admissionregistrationv1.MutatingWebhook) bool { return strings.HasSuffix(w.Name, "."+api.Group) })
		})
	}
	if err := r.addObject("webhook/mutatingwebhookconfigurations.yaml", "the stage webhook's registrations", hooks, err); err != nil {
		return err
	}
	deployments, err := c.Client.AppsV1().Deployments(api.SystemNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=kubectl-stage"})
	return r.addObject("webhook/deployments.yaml", "the stage webhook's Deployment (flags, image, replicas)", deployments, err)
}

func (c Collector) collectApp(ctx context.Context, r *record, namespace, app string) error {
	pods, err := c.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.Set{api.LabelApp: app}.String()})
	if err := r.addObject("app/pods.yaml", "the app's pods", pods, err); err != nil {
		return err
	}
	if pods == nil {
		return nil
	}
	involved := map[string]bool{}
	for _, p := range pods.Items {
		involved["Pod/"+p.Name] = true
		if err := c.collectLogs(ctx, r, &p); err != nil {
			return err
		}
	}
	refs := c.workloads(ctx, namespace, pods.Items)
	for _, ref := range refs {
		involved[ref.Kind+"/"+ref.Name] = true
		if err := c.collectRollout(ctx, r, ref); err != nil {
			return err
		}
	}
	events, err := c.Client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{})
	if err == nil {
		events.Items = slices.DeleteFunc(events.Items, func(e corev1.Event) bool { return !involved[e.InvolvedObject.Kind+"/"+e.InvolvedObject.Name] })
	}
	if err := r.addObject("app/events.yaml", "events of the app's pods and workloads", events, err); err != nil {
		return err
	}
	graph, err := c.Graph.Read(ctx, namespace, app)
	return r.addObject("app/graph.yaml", "who knows whom (kubectl stage graph)", graph, err)
}

// collectLogs records each container's log, and its previous one when it
// restarted.
func (c Collector) collectLogs(ctx context.Context, r *record, p *corev1.Pod) error {
	restarts := map[string]int32{}
	for _, s := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
		restarts[s.Name] = s.RestartCount
	}
	for _, ctr := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
		for _, previous := range []bool{false, true} {
			if previous && restarts[ctr.Name] == 0 {
				continue
			}
			path := fmt.Sprintf("app/logs/%s/%s.log", p.Name, ctr.Name)
			what := fmt.Sprintf("log of %s/%s", p.Name, ctr.Name)
			if previous {
				path = fmt.Sprintf("app/logs/%s/%s.previous.log", p.Name, ctr.Name)
				what = "previous " + what
			}
			stream, err := c.Client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: ctr.Name, Previous: previous, Timestamps: true}).Stream(ctx)
			if err != nil {
				r.problem(what, err)
				continue
			}
			data, err := io.ReadAll(stream)
			_ = stream.Close()
			if err != nil {
				r.problem(what, err)
				continue
			}
			if err := r.add(path, what, data); err != nil {
				return err
			}
		}
	}
	return nil
}

// workloads are the Deployments, StatefulSets and DaemonSets the pods
// belong to; a per-site Deployment counts as the one it was split from.
func (c Collector) workloads(ctx context.Context, namespace string, pods []corev1.Pod) []rollout.Ref {
	var refs []rollout.Ref
	add := func(kind, name string) {
		ref := rollout.Ref{Kind: kind, Name: name, Namespace: namespace}
		if !slices.Contains(refs, ref) {
			refs = append(refs, ref)
		}
	}
	for _, p := range pods {
		owner := metav1.GetControllerOf(&p)
		switch {
		case owner == nil:
		case owner.Kind == rollout.KindStatefulSet || owner.Kind == rollout.KindDaemonSet:
			add(owner.Kind, owner.Name)
		case owner.Kind == "ReplicaSet":
			rs, err := c.Client.AppsV1().ReplicaSets(namespace).Get(ctx, owner.Name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			if d := metav1.GetControllerOf(rs); d != nil && d.Kind == rollout.KindDeployment {
				add(rollout.KindDeployment, c.splitFrom(ctx, namespace, d.Name))
			}
		}
	}
	return refs
}

// splitFrom is the Deployment a per-site Deployment was split from, or
// name itself.
func (c Collector) splitFrom(ctx context.Context, namespace, name string) string {
	d, err := c.Client.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil || d.Annotations[api.AnnotationSiteOf] == "" {
		return name
	}
	return d.Annotations[api.AnnotationSiteOf]
}

func (c Collector) collectRollout(ctx context.Context, r *record, ref rollout.Ref) error {
	base := fmt.Sprintf("app/rollouts/%s-%s", strings.ToLower(ref.Kind), ref.Name)
	roller, err := rollout.New(ctx, c.Client, ref, io.Discard)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		r.problem("the rollout of "+ref.String(), err)
		return nil
	}
	status, err := roller.Status(ctx)
	var obj runtime.Object
	if err == nil {
		obj = status.Object()
	}
	if err := r.addObject(base+".yaml", "the rollout of "+ref.String()+" (kubectl stage rollout status)", obj, err); err != nil {
		return err
	}
	_, history, err := roller.State(ctx)
	var list runtime.Object
	if err == nil {
		list = history.Objects(ref)
	}
	return r.addObject(base+"-history.yaml", "its revisions (kubectl stage rollout history)", list, err)
}
