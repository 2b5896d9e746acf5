// Package stageinit implements `kubectl stage init`.
package stageinit

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	cmdutil "github.com/kubectl-stage/kubectl-stage/pkg/cmd/util"
	"github.com/kubectl-stage/kubectl-stage/pkg/dryrun"
	"github.com/kubectl-stage/kubectl-stage/pkg/enroll"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
)

var (
	initLong = templates.LongDesc(`
		Set the staging cluster up once: record the overlay network, the VPN hub
		endpoint and the API server's overlay address, create the VPN PKI (a CA
		and the hub's credentials for OpenVPN, or the hub's key pair for
		WireGuard) in Secrets of the kubectl-stage-system namespace, and
		optionally write the hub's server configuration.

		Re-running init is safe: existing credentials are kept, and the overlay
		CIDR or VPN backend cannot change while nodes are enrolled. The overlay
		must not overlap the cluster's pod or service ranges (read from kubeadm's
		ClusterConfiguration, or given with --pod-cidr and --service-cidr), and
		the API server certificate must be valid for its overlay address.`)

	initExample = templates.Examples(`
		# Initialize with an OpenVPN hub reachable at vpn.example.org:1194
		kubectl stage init --hub-endpoint vpn.example.org:1194 --hub-config-dir ./hub

		# WireGuard instead, on a custom overlay
		kubectl stage init --vpn wireguard --hub-endpoint 203.0.113.7:51820 --overlay-cidr 10.50.0.0/16

		# Check the configuration against the cluster, changing nothing
		kubectl stage init --hub-endpoint vpn.example.org --dry-run=client -o yaml`)
)

// Options are the flags of `kubectl stage init`.
type Options struct {
	enroll.InitOptions
	HubConfigDir  string
	SkipCertCheck bool
	PrintFlags    *cmdutil.PrintFlags

	factory  kcmdutil.Factory
	dryRun   kcmdutil.DryRunStrategy
	enroller *enroll.Enroller
	genericiooptions.IOStreams
}

// NewCmdInit returns the `init` command.
func NewCmdInit(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{
		InitOptions: enroll.InitOptions{OverlayCIDR: "10.23.0.0/16", VPN: "openvpn", TokenTTL: 24 * time.Hour, CredentialValidity: 365 * 24 * time.Hour},
		PrintFlags:  cmdutil.NewPrintFlags(false),
		IOStreams:   streams,
	}
	cmd := &cobra.Command{
		Use:     "init --hub-endpoint HOST[:PORT]",
		Short:   "Set up the staging cluster: overlay network, VPN PKI and hub configuration",
		Long:    initLong,
		Example: initExample,
		Args:    cobra.NoArgs,
		RunE:    cmdutil.RunE(f, o),
	}
	flags := cmd.Flags()
	flags.StringVar(&o.OverlayCIDR, "overlay-cidr", o.OverlayCIDR, "IPv4 overlay network; the hub takes its first address")
	flags.StringVar(&o.HubEndpoint, "hub-endpoint", o.HubEndpoint, "HOST[:PORT] where nodes reach the VPN hub over the internet (port defaults to 1194 for openvpn, 51820 for wireguard)")
	flags.StringVar(&o.VPN, "vpn", o.VPN, "VPN backend: openvpn or wireguard")
	flags.StringVar(&o.APIServerEndpoint, "apiserver-endpoint", o.APIServerEndpoint, "HOST:PORT of the API server over the overlay (default: the hub's overlay address, port 6443)")
	flags.StringVar(&o.PodCIDR, "pod-cidr", o.PodCIDR, "the cluster's pod CIDR(s), comma-separated (default: from kubeadm's ClusterConfiguration)")
	flags.StringVar(&o.ServiceCIDR, "service-cidr", o.ServiceCIDR, "the cluster's service CIDR(s) (default: from kubeadm's ClusterConfiguration)")
	flags.DurationVar(&o.TokenTTL, "token-ttl", o.TokenTTL, "default lifetime of the bootstrap tokens join creates")
	flags.DurationVar(&o.CredentialValidity, "credential-validity", o.CredentialValidity, "lifetime of node VPN credentials")
	flags.StringVar(&o.HubConfigDir, "hub-config-dir", o.HubConfigDir, "also write the hub's VPN server configuration into this directory (files 0600)")
	flags.BoolVar(&o.SkipCertCheck, "skip-apiserver-cert-check", o.SkipCertCheck, "do not check that the API server certificate is valid for its overlay address")
	o.PrintFlags.AddFlags(cmd)
	cmdutil.AddDryRunFlag(cmd)
	return cmd
}

// Complete reads --dry-run and builds the client (without contacting the
// cluster).
func (o *Options) Complete(f kcmdutil.Factory, cmd *cobra.Command, _ []string) error {
	o.factory = f
	var err error
	if o.dryRun, err = cmdutil.DryRunStrategy(cmd); err != nil {
		return err
	}
	o.enroller, err = cmdutil.NewEnroller(f, o.dryRun, o.ErrOut)
	return err
}

// Validate checks the flags that need no cluster: their errors name the
// flag to change (RunE adds it).
func (o *Options) Validate() error {
	if o.HubEndpoint == "" {
		return fmt.Errorf("--hub-endpoint is required: the HOST[:PORT] where nodes reach the VPN hub")
	}
	if err := o.InitOptions.Validate(); err != nil {
		return err
	}
	return o.PrintFlags.Validate()
}

// Run reads the API server's certificate (to check it covers the overlay
// address), initializes the cluster, and prints the stored configuration.
func (o *Options) Run(ctx context.Context) error {
	if !o.SkipCertCheck {
		restConfig, err := o.factory.ToRESTConfig()
		if err != nil {
			return err
		}
		if o.ServingCertificate, err = enroll.ServingCertificate(ctx, restConfig); err != nil {
			return err
		}
	}
	cfg, err := o.enroller.Init(ctx, o.InitOptions)
	if err != nil {
		return err
	}
	if o.dryRun != kcmdutil.DryRunNone {
		return o.printDryRun(cfg)
	}
	if o.HubConfigDir != "" {
		if _, err := o.enroller.WriteHubConfig(ctx, o.HubConfigDir); err != nil {
			return err
		}
	}
	if !o.PrintFlags.HumanReadable() {
		// The ConfigMap as stored: a real object, fit for kubectl and jq.
		stored, err := o.enroller.Store.Client.CoreV1().ConfigMaps(o.enroller.Store.Namespace).Get(ctx, api.ConfigName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		return o.PrintFlags.Print(stored, o.Out)
	}
	_, err = fmt.Fprintf(o.Out, "kubectl-stage initialized: overlay %s, %s hub at %s. Enroll a node with: kubectl stage join SITE --node NAME\n",
		cfg.OverlayCIDR, cfg.VPN, cfg.HubEndpoint)
	return err
}

// printDryRun prints the configuration a real init would store: the
// ConfigMap with -o, a sentence otherwise. No hub configuration is written:
// its credentials are in no cluster.
func (o *Options) printDryRun(cfg *site.Config) error {
	if !o.PrintFlags.HumanReadable() {
		cm, err := o.enroller.Store.ConfigMap(cfg)
		if err != nil {
			return err
		}
		return o.PrintFlags.Print(cm, o.Out)
	}
	_, err := fmt.Fprintf(o.Out, "kubectl-stage would be initialized: overlay %s, %s hub at %s, API server over the overlay %s%s\n",
		cfg.OverlayCIDR, cfg.VPN, cfg.HubEndpoint, cfg.APIServerEndpoint, dryrun.Suffix(o.dryRun))
	return err
}
