package peerlogs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kubectl-stage/kubectl-stage/pkg/access"
	"github.com/kubectl-stage/kubectl-stage/pkg/api"
)

// DefaultWindow is how long followed lines wait to be ordered by time.
const DefaultWindow = 200 * time.Millisecond

// Request is what is asked of the API server for each peer's log.
type Request struct {
	Follow   bool
	Previous bool
	// Since and SinceTime start the log at a time (zero: at its start).
	Since     time.Duration
	SinceTime *metav1.Time
	// Tail is how many of the last lines to read (negative: all).
	Tail int64
}

func (r Request) options(container string) *corev1.PodLogOptions {
	o := &corev1.PodLogOptions{Container: container, Follow: r.Follow, Previous: r.Previous, Timestamps: true, SinceTime: r.SinceTime}
	if r.Since > 0 {
		secs := int64(r.Since.Round(time.Second) / time.Second)
		o.SinceSeconds = &secs
	}
	if r.Tail >= 0 {
		o.TailLines = &r.Tail
	}
	return o
}

// Streamer reads the logs of a target's peers through the API server (the
// kubelets' log endpoint, as kubectl logs does) and writes them merged.
type Streamer struct {
	Client    kubernetes.Interface
	Namespace string
	Target    Target
	// Sites keeps the peers at these sites (every site when empty).
	Sites []string
	// Container is the container to read (the pod's default when empty).
	Container string
	Request   Request
	Format    Format
	// MaxRequests bounds the log streams open at once.
	MaxRequests int
	// Window is how long followed lines wait to be ordered (DefaultWindow
	// when zero).
	Window time.Duration
	// Out gets the log lines; ErrOut the peers that join and leave a
	// followed stream, and the errors of single peers.
	Out, ErrOut io.Writer
}

// Run writes the peers' logs; when following, until ctx ends, with peers
// joining and leaving as their pods come and go. An interrupted run (ctx
// cancelled) is not an error.
func (s *Streamer) Run(ctx context.Context) error {
	if err := access.CheckRead(ctx, s.Client, fmt.Sprintf("read the logs of %s in namespace %s", s.Target, s.Namespace), s.rules()); err != nil {
		return err
	}
	sel, err := s.Target.Selector(ctx, s.Client, s.Namespace)
	if err != nil {
		return err
	}
	sites, err := loadSites(ctx, s.Client)
	if err != nil {
		return err
	}
	if err := CheckSites(s.Sites, sites.known); err != nil {
		return err
	}
	if s.Request.Follow {
		return s.follow(ctx, sel, sites)
	}
	list, err := s.Client.CoreV1().Pods(s.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return err
	}
	pods := make([]*corev1.Pod, len(list.Items))
	for i := range list.Items {
		pods[i] = &list.Items[i]
		sites.learn(ctx, pods[i].Spec.NodeName)
	}
	peers, err := Select(pods, sites.of, s.Sites, s.Container)
	if err != nil {
		return err
	}
	if len(peers) == 0 {
		return s.Target.NoPodsError(s.Namespace, sel, s.Sites)
	}
	return s.readAll(ctx, peers)
}

// rules are the permissions Run needs.
func (s *Streamer) rules() []access.Rule {
	rules := []access.Rule{
		{Verb: "list", Resource: "nodes"},
		{Verb: "list", Resource: "pods", Namespace: s.Namespace},
		{Verb: "get", Resource: "pods", Subresource: "log", Namespace: s.Namespace},
	}
	if s.Request.Follow {
		rules = append(rules, access.Rule{Verb: "watch", Resource: "pods", Namespace: s.Namespace})
	}
	if s.Target.Kind != "" {
		rules = append(rules, access.Rule{Verb: "get", Group: "apps", Resource: strings.ToLower(s.Target.Kind) + "s", Namespace: s.Namespace})
	}
	return rules
}

// readAll reads every peer's log to its end, at most MaxRequests at once,
// and writes them merged.
func (s *Streamer) readAll(ctx context.Context, peers []Peer) error {
	logs := make([][]Line, len(peers))
	errs := make([]error, len(peers))
	slots := make(chan struct{}, max(s.MaxRequests, 1))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-slots }()
			errs[i] = s.read(ctx, p, func(l Line) bool { logs[i] = append(logs[i], l); return true })
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	for _, l := range Merge(logs) {
		if _, err := io.WriteString(s.Out, s.Format.Render(peers[l.Peer], l)); err != nil {
			return err
		}
	}
	var failed []error
	for i, err := range errs {
		if err != nil {
			failed = append(failed, fmt.Errorf("%s: %w", peers[i].Prefix(), err))
		}
	}
	return errors.Join(failed...)
}

// read streams p's log into emit, line by line, until the log ends, ctx
// ends or emit returns false.
func (s *Streamer) read(ctx context.Context, p Peer, emit func(Line) bool) error {
	stream, err := s.Client.CoreV1().Pods(p.Namespace).GetLogs(p.Pod, s.Request.options(p.Container)).Stream(ctx)
	if err != nil {
		return err
	}
	defer stream.Close()
	r := bufio.NewReader(stream)
	var prev time.Time
	for {
		raw, err := r.ReadString('\n')
		if raw != "" {
			l := ParseLine(raw, prev)
			l.Peer, prev = p.Index, l.Time
			if !emit(l) {
				return nil
			}
		}
		if errors.Is(err, io.EOF) || (err != nil && ctx.Err() != nil) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// siteCache is the site of each node, read once and completed by node as
// peers appear on new nodes.
type siteCache struct {
	client kubernetes.Interface
	of     map[string]string
	known  []string
}

func loadSites(ctx context.Context, client kubernetes.Interface) (*siteCache, error) {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing nodes for their sites: %w", err)
	}
	c := &siteCache{client: client, of: map[string]string{}}
	for _, n := range nodes.Items {
		site := n.Labels[api.LabelSite]
		c.of[n.Name] = site
		if site != "" && !slices.Contains(c.known, site) {
			c.known = append(c.known, site)
		}
	}
	slices.Sort(c.known)
	return c, nil
}

// learn reads the site of a node not seen yet.
func (c *siteCache) learn(ctx context.Context, node string) {
	if _, ok := c.of[node]; ok || node == "" {
		return
	}
	n, err := c.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err == nil {
		c.of[node] = n.Labels[api.LabelSite]
	}
}

// follower is the state of a followed stream, owned by follow's loop.
type follower struct {
	s       *Streamer
	sites   *siteCache
	events  *podEvents
	ctx     context.Context // ends every stream
	wg      sync.WaitGroup
	lines   chan Line
	ended   chan ended
	active  map[string]*active // by pod UID
	waiting []Peer
	seen    map[string]bool // pods that joined (or cannot) once
	peers   map[int]Peer    // every peer that joined, by Index
	// joined is each joined pod's peer and its container's restart count
	// when its stream started.
	joined map[string]joined
}

type joined struct {
	peer     Peer
	restarts int32
}

type active struct {
	peer   Peer
	cancel context.CancelFunc
}

type ended struct {
	uid string
	err error
}

// follow streams every peer's log as lines come, pods joining the stream
// as they start and leaving it when deleted, until ctx ends.
func (s *Streamer) follow(ctx context.Context, sel labels.Selector, sites *siteCache) error {
	ctx, cancel := context.WithCancel(ctx)
	factory := informers.NewSharedInformerFactoryWithOptions(s.Client, 0, informers.WithNamespace(s.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel.String() }))
	informer := factory.Core().V1().Pods().Informer()
	f := &follower{
		s: s, sites: sites, ctx: ctx, events: &podEvents{signal: make(chan struct{}, 1)},
		lines: make(chan Line, 1024), ended: make(chan ended),
		active: map[string]*active{}, seen: map[string]bool{}, peers: map[int]Peer{}, joined: map[string]joined{},
	}
	if _, err := informer.AddEventHandler(f.events.handler()); err != nil {
		cancel()
		return err
	}
	factory.Start(ctx.Done())
	defer func() {
		// Every stream and the informer stop before Run returns.
		cancel()
		f.wg.Wait()
		factory.Shutdown()
	}()
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		return nil
	}

	var pods []*corev1.Pod
	for _, obj := range informer.GetStore().List() {
		pod := obj.(*corev1.Pod)
		sites.learn(ctx, pod.Spec.NodeName)
		pods = append(pods, pod)
	}
	peers, err := Select(pods, sites.of, s.Sites, s.Container)
	if err != nil {
		return err
	}
	if len(peers) == 0 {
		return s.Target.NoPodsError(s.Namespace, sel, s.Sites)
	}
	if len(peers) > s.MaxRequests {
		return fmt.Errorf("following %d peers needs %d log streams at once, more than the limit of %d: raise it with --max-log-requests=%d, or choose fewer peers with --site",
			len(peers), len(peers), s.MaxRequests, len(peers))
	}
	byUID := map[string]*corev1.Pod{}
	for _, pod := range pods {
		byUID[string(pod.UID)] = pod
	}
	for _, p := range peers {
		f.join(p, restarts(byUID[p.UID], p.Container))
	}
	return f.loop()
}

// loop is the only goroutine that touches the follower's state: it takes
// pod events, lines and ended streams, and writes the lines due.
func (f *follower) loop() error {
	delay := f.s.Window
	if delay <= 0 {
		delay = DefaultWindow
	}
	window := &Window{Delay: delay}
	tick := time.NewTicker(delay / 4)
	defer tick.Stop()
	write := func(lines []Line) error {
		for _, l := range lines {
			if _, err := io.WriteString(f.s.Out, f.s.Format.Render(f.peers[l.Peer], l)); err != nil {
				return err
			}
		}
		return nil
	}
	for {
		select {
		case <-f.ctx.Done():
			// Lines already read are written before the streams stop.
		drain:
			for {
				select {
				case l := <-f.lines:
					window.Add(l, time.Now())
				default:
					break drain
				}
			}
			return write(window.Flush())
		case <-f.events.signal:
			for _, ev := range f.events.take() {
				f.handle(ev)
			}
		case l := <-f.lines:
			window.Add(l, time.Now())
		case e := <-f.ended:
			f.end(e)
		case now := <-tick.C:
			if err := write(window.Due(now)); err != nil {
				return err
			}
		}
	}
}

// handle lets a started pod join the stream, once, and a deleted one leave.
func (f *follower) handle(ev podEvent) {
	uid := string(ev.pod.UID)
	if ev.deleted {
		f.leave(uid)
		return
	}
	if !HasLog(ev.pod) {
		return
	}
	if f.seen[uid] {
		if j, n, ok := f.restarted(ev.pod); ok {
			f.join(j.peer, n)
		}
		return
	}
	f.sites.learn(f.ctx, ev.pod.Spec.NodeName)
	p, ok, err := PeerOf(ev.pod, f.sites.of, f.s.Sites, f.s.Container)
	f.seen[uid] = true
	switch {
	case err != nil:
		fmt.Fprintf(f.s.ErrOut, "warning: not following %s: %v\n", ev.pod.Name, err)
	case ok:
		p.Index = len(f.peers)
		f.join(p, restarts(ev.pod, p.Container))
	}
}

// restarted says whether a joined pod's container restarted after its
// stream ended (the kubelet ends it when the container stops), with the
// new restart count: the new run is then followed.
func (f *follower) restarted(pod *corev1.Pod) (joined, int32, bool) {
	uid := string(pod.UID)
	j, ok := f.joined[uid]
	if !ok || f.active[uid] != nil || slices.ContainsFunc(f.waiting, func(p Peer) bool { return p.UID == uid }) {
		return joined{}, 0, false
	}
	n := restarts(pod, j.peer.Container)
	return j, n, n > j.restarts
}

// restarts is the restart count of the pod's container.
func restarts(pod *corev1.Pod, container string) int32 {
	for _, c := range pod.Status.ContainerStatuses {
		if c.Name == container {
			return c.RestartCount
		}
	}
	return 0
}

// join starts p's stream, or queues p while MaxRequests streams are open.
func (f *follower) join(p Peer, restarts int32) {
	f.seen[p.UID] = true
	f.peers[p.Index] = p
	f.joined[p.UID] = joined{peer: p, restarts: restarts}
	if len(f.active) >= f.s.MaxRequests {
		f.waiting = append(f.waiting, p)
		fmt.Fprintf(f.s.ErrOut, "waiting: [%s] joins when one of the %d streams (--max-log-requests) ends\n", p.Prefix(), f.s.MaxRequests)
		return
	}
	ctx, cancel := context.WithCancel(f.ctx)
	f.active[p.UID] = &active{peer: p, cancel: cancel}
	fmt.Fprintf(f.s.ErrOut, "+ [%s]\n", p.Prefix())
	f.wg.Go(func() {
		err := f.s.read(ctx, p, func(l Line) bool {
			select {
			case f.lines <- l:
				return true
			case <-ctx.Done():
				return false
			}
		})
		if ctx.Err() != nil {
			err = nil
		}
		select {
		case f.ended <- ended{uid: p.UID, err: err}:
		case <-f.ctx.Done():
		}
	})
}

// leave stops the stream of a deleted pod.
func (f *follower) leave(uid string) {
	f.waiting = slices.DeleteFunc(f.waiting, func(p Peer) bool { return p.UID == uid })
	a, ok := f.active[uid]
	if !ok {
		return
	}
	a.cancel()
	delete(f.active, uid)
	fmt.Fprintf(f.s.ErrOut, "- [%s]\n", a.peer.Prefix())
	f.startWaiting()
}

// end notes a stream that ended by itself (its container stopped) or failed.
func (f *follower) end(e ended) {
	a, ok := f.active[e.uid]
	if !ok {
		return
	}
	a.cancel()
	delete(f.active, e.uid)
	if e.err != nil {
		fmt.Fprintf(f.s.ErrOut, "error: [%s]: %v\n", a.peer.Prefix(), e.err)
	}
	f.startWaiting()
}

func (f *follower) startWaiting() {
	for len(f.waiting) > 0 && len(f.active) < f.s.MaxRequests {
		p := f.waiting[0]
		f.waiting = f.waiting[1:]
		f.join(p, f.joined[p.UID].restarts)
	}
}

// podEvents queues the informer's pod events for the loop without ever
// blocking the informer.
type podEvents struct {
	mu     sync.Mutex
	items  []podEvent
	signal chan struct{}
}

type podEvent struct {
	pod     *corev1.Pod
	deleted bool
}

func (q *podEvents) handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { q.put(obj, false) },
		UpdateFunc: func(_, obj any) { q.put(obj, false) },
		DeleteFunc: func(obj any) { q.put(obj, true) },
	}
}

func (q *podEvents) put(obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	q.mu.Lock()
	q.items = append(q.items, podEvent{pod: pod, deleted: deleted})
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *podEvents) take() []podEvent {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}
