package enroll

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-stage/kubectl-stage/pkg/input"
	"github.com/kubectl-stage/kubectl-stage/pkg/ipam"
)

func TestValidateNames(t *testing.T) {
	tests := []struct {
		name    string
		site    bool
		value   string
		wantErr string
	}{
		{name: "site ok", site: true, value: "eu-west-1"},
		{name: "site uppercase", site: true, value: "Tokyo", wantErr: `invalid site name "Tokyo"`},
		{name: "site with dot", site: true, value: "a.b", wantErr: "invalid site name"},
		{name: "site too long", site: true, value: strings.Repeat("a", 64), wantErr: "invalid site name"},
		{name: "node ok", value: "tokyo-1.lab"},
		{name: "node underscore", value: "tokyo_1", wantErr: `invalid node name "tokyo_1"`},
		{name: "node empty", value: "", wantErr: "invalid node name"},
		{name: "node too long", value: strings.Repeat("a", 250), wantErr: "at most 248 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			validate := ValidateNodeName
			if tt.site {
				validate = ValidateSiteName
			}
			err := validate(tt.value)
			if (err != nil) != (tt.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestNormalizeEndpoint(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "vpn.example.org", want: "vpn.example.org:1194"},
		{in: "203.0.113.7:51820", want: "203.0.113.7:51820"},
		{in: "[2001:db8::1]:1194", want: "[2001:db8::1]:1194"},
		{in: "2001:db8::1", want: "[2001:db8::1]:1194"},
		{in: "", wantErr: "is required"},
		{in: "host:99999", wantErr: "port must be 1-65535"},
		{in: "bad_host!:1194", wantErr: "neither an IP address nor a DNS name"},
		{in: "198.18.0.1:+1194", wantErr: "port must be 1-65535"},
		{in: "198.18.0.1:01194", want: "198.18.0.1:1194"},
		{in: "10.23.0.1:6443$(touch PWNED)", wantErr: "port must be 1-65535"},
		{in: "$(touch PWNED)", wantErr: "neither an IP address nor a DNS name"},
		{in: "a\nscript-security 2", wantErr: "neither an IP address nor a DNS name"},
		{in: "[fe80::1%eth0]:1194", wantErr: "zone"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := NormalizeEndpoint("hub endpoint", tt.in, 1194)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("= %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestCheckOverlap(t *testing.T) {
	pool, _ := ipam.NewPool("10.23.0.0/16")
	tests := []struct {
		cidr    string
		wantFix []input.Suggestion // nil: no error
	}{
		{"", nil},
		{"10.244.0.0/16", nil},
		{"10.0.0.0/8", []input.Suggestion{input.Use(InputOverlayCIDR)}},
		{"10.244.0.0/16,10.23.128.0/20", []input.Suggestion{input.Use(InputOverlayCIDR)}},
		{"fd00::/48", nil},
		// A range that does not parse is the range's fault, not the overlay's.
		{"nonsense", []input.Suggestion{input.Use(InputPodCIDR)}},
	}
	for _, tt := range tests {
		err := CheckOverlap(pool, "pod", InputPodCIDR, tt.cidr)
		if (err != nil) != (tt.wantFix != nil) {
			t.Errorf("CheckOverlap(%q) = %v, want an error: %t", tt.cidr, err, tt.wantFix != nil)
			continue
		}
		if fix := input.Suggestions(err); !reflect.DeepEqual(fix, tt.wantFix) {
			t.Errorf("CheckOverlap(%q) suggests %v, want %v", tt.cidr, fix, tt.wantFix)
		}
	}
}

func TestInitOptionsValidate(t *testing.T) {
	valid := InitOptions{OverlayCIDR: "10.23.0.0/16", HubEndpoint: "vpn.example.org", VPN: "openvpn", TokenTTL: time.Hour, CredentialValidity: time.Hour}
	tests := []struct {
		name    string
		change  func(*InitOptions)
		wantErr string
		wantFix []input.Suggestion
	}{
		{name: "valid", change: func(*InitOptions) {}},
		{name: "unknown backend", change: func(o *InitOptions) { o.VPN = "ipsec" }, wantErr: `"ipsec"`, wantFix: []input.Suggestion{input.Use(InputVPN)}},
		{name: "zero token lifetime", change: func(o *InitOptions) { o.TokenTTL = 0 },
			wantErr: "the token lifetime and the credential validity must be positive durations, such as 24h",
			wantFix: []input.Suggestion{input.Use(InputTokenTTL), input.Use(InputCredentialValidity)}},
		{name: "bad overlay", change: func(o *InitOptions) { o.OverlayCIDR = "10.23.0.0" }, wantErr: "10.23.0.0", wantFix: []input.Suggestion{input.Use(InputOverlayCIDR)}},
		{name: "no hub endpoint", change: func(o *InitOptions) { o.HubEndpoint = "" },
			wantErr: "the hub endpoint is required: the address nodes dial, such as vpn.example.org:1194", wantFix: []input.Suggestion{input.Use(InputHubEndpoint)}},
		{name: "bad API server port", change: func(o *InitOptions) { o.APIServerEndpoint = "10.23.0.1:0" },
			wantErr: `invalid API server endpoint "10.23.0.1:0": port must be 1-65535`, wantFix: []input.Suggestion{input.Use(InputAPIServerEndpoint)}},
		{name: "service range overlaps", change: func(o *InitOptions) { o.ServiceCIDR = "10.0.0.0/8" },
			wantErr: "overlay CIDR 10.23.0.0/16 overlaps the cluster's service CIDR 10.0.0.0/8", wantFix: []input.Suggestion{input.Use(InputOverlayCIDR)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid
			tt.change(&o)
			err := o.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "--") {
				t.Errorf("the domain error names a flag: %v", err)
			}
			if fix := input.Suggestions(err); !reflect.DeepEqual(fix, tt.wantFix) {
				t.Errorf("suggests %v, want %v", fix, tt.wantFix)
			}
		})
	}
}

func TestValidateNodeEndpoint(t *testing.T) {
	tests := []struct {
		endpoint string
		wantErr  string
	}{
		{"203.0.113.7:51820", ""},
		{"[2001:db8::7]:51820", ""},
		{"node.example.org:4500", ""},
		{"auto", ""},
		{"Auto", "is not HOST:PORT"},
		{"203.0.113.7", "is not HOST:PORT"},
		{"203.0.113.7:0", "port must be a number 1-65535"},
		{"203.0.113.7:051820", "port must be a number 1-65535"},
		{"203.0.113.7:51820\nPostUp = sh", "port must be a number 1-65535"},
		{"bad host!:51820", "neither an IP address nor a DNS name"},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint, func(t *testing.T) {
			err := ValidateNodeEndpoint(tt.endpoint)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "such as 203.0.113.7:51820, or auto for the address the hub sees its packets come from (a public address the node does not know), or leave it out for a node behind NAT") {
				t.Fatalf("error %v, want one containing %q and naming the fix", err, tt.wantErr)
			}
			var fix *input.FixError
			if !errors.As(err, &fix) || fix.Fix[0].Name != InputEndpoint {
				t.Errorf("the error does not point at the endpoint input: %#v", err)
			}
		})
	}
}
