package rollout

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// healthTimeout bounds one health check.
const healthTimeout = 30 * time.Second

// CheckEnv is what a health check learns about the site it judges.
type CheckEnv struct {
	App       string
	Namespace string
	Site      string
	Revision  int
	// HostIPs are the overlay addresses of the site's new pods.
	HostIPs []string
	PodIPs  []string
}

// RunHealthCheck runs the gates' command and probe for one site; a nil
// error means the site is healthy.
func RunHealthCheck(ctx context.Context, g Gates, env CheckEnv) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	if g.HealthExec != "" {
		cmd := exec.CommandContext(ctx, "sh", "-c", g.HealthExec)
		cmd.Env = append(os.Environ(),
			"STAGE_ROLLOUT_APP="+env.App,
			"STAGE_ROLLOUT_NAMESPACE="+env.Namespace,
			"STAGE_ROLLOUT_SITE="+env.Site,
			fmt.Sprintf("STAGE_ROLLOUT_REVISION=%d", env.Revision),
			"STAGE_ROLLOUT_HOST_IPS="+strings.Join(env.HostIPs, ","),
			"STAGE_ROLLOUT_POD_IPS="+strings.Join(env.PodIPs, ","),
		)
		// A command killed on Ctrl-C may leave children holding its output.
		cmd.WaitDelay = 2 * time.Second
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("health check %q failed (%v): %s", g.HealthExec, err, lastLines(string(out), 5))
		}
	}
	if g.HealthHTTP != "" {
		url := strings.NewReplacer("{site}", env.Site, "{app}", env.App, "{namespace}", env.Namespace).Replace(g.HealthHTTP)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("health probe %s: %v", url, err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("health probe %s: %v", url, err)
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("health probe %s answered %s: %s", url, resp.Status, lastLines(string(body), 5))
		}
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
