package rollout

import (
	"context"
	"time"

	"github.com/kubectl-stage/kubectl-stage/pkg/peergraph"
)

// peerViewTimeout bounds the reading of one pod's view.
const peerViewTimeout = 5 * time.Second

// readPeers reads the views of the pods the peer gate asks for, through
// the API server's pod proxy as `kubectl stage graph` does, and counts
// each one's known peers among the app's live pods (of either revision).
func (ex *executor) readPeers(ctx context.Context, step Step, snap Snapshot) error {
	var all []peergraph.Peer
	for site, at := range snap.Pods {
		if site == "" {
			continue
		}
		for _, pod := range at.Live() {
			all = append(all, peergraph.PeerOf(pod, site))
		}
	}
	var asked []peergraph.Peer
	for _, pod := range step.Read {
		asked = append(asked, peergraph.PeerOf(pod, snap.Loc.SiteOf(pod)))
	}
	reader := peergraph.Reader{Client: ex.r.client, Timeout: peerViewTimeout, Parallel: 8}
	views, err := reader.Views(ctx, ex.r.w.ref().Namespace, asked)
	if err != nil {
		return err
	}
	graph := peergraph.Build(ex.r.w.ref().Namespace, ex.r.w.ref().Name, all, views)
	read := ex.r.now()
	for _, pod := range step.Read {
		view := PeerView{UID: pod.UID, Read: read}
		if v := views[pod.Name]; v.Err != nil {
			view.Err = v.Err.Error()
		}
		for _, p := range graph.Peers {
			if p.Pod == pod.Name {
				view.Known, view.CrossSite = p.Known, p.CrossSite
			}
		}
		ex.views[pod.Name] = view
	}
	return nil
}
