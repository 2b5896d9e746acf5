package rollout

import (
	"fmt"
	"strconv"
	"strings"
)

// ParsePeerGate reads --gate-peers MIN[,cross-site=N].
func ParsePeerGate(value string) (PeerGate, error) {
	bad := func(why string) (PeerGate, error) {
		return PeerGate{}, fmt.Errorf("--gate-peers %q: %s; write MIN[,cross-site=N], such as --gate-peers 3,cross-site=1", value, why)
	}
	first, rest, hasRest := strings.Cut(value, ",")
	least, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return bad("MIN is not a number")
	}
	if least < 1 {
		return bad("MIN must be at least 1 (leave the flag out for no peer gate)")
	}
	g := PeerGate{Min: least}
	if hasRest {
		key, n, ok := strings.Cut(strings.TrimSpace(rest), "=")
		if !ok || key != "cross-site" {
			return bad("the only option is cross-site=N")
		}
		if g.CrossSite, err = strconv.Atoi(n); err != nil || g.CrossSite < 0 {
			return bad("cross-site=N needs a number N of 0 or more")
		}
		if g.CrossSite > g.Min {
			return bad(fmt.Sprintf("cross-site=%d cannot exceed MIN %d (the cross-site peers are among the MIN)", g.CrossSite, g.Min))
		}
	}
	return g, nil
}

// FormatPeerGate writes g as --gate-peers takes it.
func FormatPeerGate(g PeerGate) string {
	if g.CrossSite > 0 {
		return fmt.Sprintf("%d,cross-site=%d", g.Min, g.CrossSite)
	}
	return strconv.Itoa(g.Min)
}

// ParseOnFailure reads --on-failure.
func ParseOnFailure(value string) (string, error) {
	switch value {
	case OnFailurePause, OnFailureUndo:
		return value, nil
	}
	return "", fmt.Errorf("--on-failure %q: write pause (stop for you to resume or undo) or undo (return every site to the previous revision)", value)
}
